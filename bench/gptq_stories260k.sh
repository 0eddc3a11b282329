#!/usr/bin/env bash
# RTN vs GPTQ vs AWQ vs AWQ+GPTQ on stories260K (bench/RESULTS.md, "GPTQ" and "AWQ"): W4 g32 and
# W3 g32 asymmetric, calibrated on the TinyStories calibration ids (128 x 512), evaluated on the
# TinyStories eval ids (ctx 512, BOS) against the FP32 model.
# Usage: bench/gptq_stories260k.sh [BUILD_DIR] [OUT_DIR]   (METHODS="rtn awq" to run a subset)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
out=${2:-$(mktemp -d)}
shared=${DSQ_SHARED_DIR:-$here/../shared}
dsq=$build/bin/dsq
model=$shared/models/stories260K/hf
calib=$shared/data/tinystories-calib.stories260K.u32
eval_ids=$shared/data/tinystories-eval.stories260K.u32
mkdir -p "$out"
printf '| method | bits | group | bpw | PPL | KLD | top-1 | quantize s |\n|---|---:|---:|---:|---:|---:|---:|---:|\n'
for bits in 4 3; do
  for method in ${METHODS:-rtn gptq awq awq+gptq}; do
    f=$out/${method}_w${bits}g32.dsq
    extra=()
    [ "$method" != rtn ] && extra=(--calib "$calib")
    t0=$(date +%s.%N)
    "$dsq" -q quantize "$model" -o "$f" --bits "$bits" --group 32 --method "$method" "${extra[@]}" \
      --json "$f.quant.json" > /dev/null
    t1=$(date +%s.%N)
    "$dsq" -q eval "$f" --tokens "$eval_ids" --ctx 512 --bos --ref "$model" --batch 4 \
      --json "$f.eval.json" > /dev/null
    python3 - "$f" "$method" "$bits" "$t0" "$t1" <<'PY'
import json, sys
f, method, bits, t0, t1 = sys.argv[1:]
q = json.load(open(f + ".quant.json"))["summary"]
e = json.load(open(f + ".eval.json"))
ppl, kld, top1 = e["perplexity"], e["kld_mean"], e["top1_agreement"]
print(f"| {method} | {bits} | 32 | {q['quantized_bits_per_weight']:.3f} | {ppl:.4f} | {kld:.5f} | "
      f"{top1:.4f} | {float(t1) - float(t0):.1f} |")
PY
  done
done
