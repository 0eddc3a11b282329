#!/usr/bin/env bash
# RTN vs GPTQ vs AWQ vs AWQ+GPTQ on the trained tiny checkpoints (bench/RESULTS.md, "Qwen2 and
# Qwen3"): calibrated (N x 512 windows) on a mix of the two in-domain texts through each model's
# tokenizer, the TinyStories calibration part (bytes [0, 712780) of tinystories-train-excerpt.txt,
# ../shared/models/MANIFEST.md) and WikiText-2 valid; evaluated on the held-out TinyStories and
# WikiText-2 test ids (ctx 512) against the bf16 model.
# Usage: bench/tiny_models_quant.sh [BUILD_DIR] [OUT_DIR]
#   MODELS="qwen2-tiny qwen3-tiny" METHODS="rtn gptq awq awq+gptq" SCHEMES="int4_asym_g128"
#   SAMPLES=128 to change the grid; EXTRA="--expert-min-tokens 64" adds flags to calibrated runs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
out=${2:-$(mktemp -d)}
shared=${DSQ_SHARED_DIR:-$here/../shared}
dsq=$build/bin/dsq
refs=$shared/models/tiny-references
mkdir -p "$out"
head -c 712780 "$shared/data/tinystories-train-excerpt.txt" > "$out/tinystories-calib.txt"
calib=(--calib "$out/tinystories-calib.txt" --calib "$shared/data/wikitext-2-valid.tokens.txt")
printf '| model | method | scheme | bpw | PPL tinystories | KLD tinystories | top-1 | KLD wikitext2 | quantize s | fallback experts |\n'
printf '|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n'
for model in ${MODELS:-qwen2-tiny qwen3-tiny}; do
  src=$shared/models/$model
  case $model in deepseek*) ids=deepseek ;; *) ids=qwen ;; esac
  for scheme in ${SCHEMES:-int4_asym_g128}; do
    for method in ${METHODS:-rtn gptq awq awq+gptq}; do
      f=$out/${model}_${method}_${scheme}.dsq
      extra=()
      [ "$method" != rtn ] && extra=("${calib[@]}" --calib-samples "${SAMPLES:-128}" ${EXTRA:-})
      t0=$(date +%s.%N)
      "$dsq" -q quantize "$src" -o "$f" --scheme "$scheme" --method "$method" "${extra[@]}" \
        --json "$f.quant.json" > /dev/null
      t1=$(date +%s.%N)
      for set in tinystories wikitext2; do
        "$dsq" -q eval "$f" --tokens "$refs/$set.$ids-tok.u32" --ctx 512 --ref "$src" --batch 4 \
          --json "$f.$set.json" > /dev/null
      done
      python3 - "$f" "$model" "$method" "$scheme" "$t0" "$t1" <<'PY'
import json, sys
f, model, method, scheme, t0, t1 = sys.argv[1:]
qj = json.load(open(f + ".quant.json"))
q = qj["summary"]
# MoE: experts whose statistics were topped up (or used every token) instead of routed-only.
fb = {tuple(t["name"].split(".")[1:4:2]) for t in qj["tensors"]
      if "_exps." in t["name"] and t.get("extra", {}).get("expert_fallback") in ("top-up", "all-tokens")}
n_exp = len({t["name"] for t in qj["tensors"] if "_exps." in t["name"]}) // 3
a = json.load(open(f + ".tinystories.json"))
b = json.load(open(f + ".wikitext2.json"))
print(f"| {model} | {method} | {scheme} | {q['quantized_bits_per_weight']:.3f} | {a['perplexity']:.4f} | "
      f"{a['kld_mean']:.5f} | {a['top1_agreement']:.4f} | {b['kld_mean']:.5f} | {float(t1) - float(t0):.1f} | "
      f"{f'{len(fb)} of {n_exp}' if n_exp else '-'} |")
PY
    done
  done
done
