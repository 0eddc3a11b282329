#!/usr/bin/env bash
# Mixed precision by budget (bench/RESULTS.md, "Mixed precision"): for each model and target,
# `dsq quantize --method gptq --target-bpw T` against the uniform GPTQ scheme with the smallest
# bits per weight at or above T (among the same candidates: int2/3/4/5/6/8, sym and asym, groups
# 32/64/128/256 and per channel). Bits per weight are dsq eval's (every block linear). KLD against
# the float model on held-out ids (ctx 512).
#   stories260K: calibrated on the TinyStories calibration ids, evaluated on the TinyStories eval
#   ids (BOS). qwen2-tiny, qwen3-tiny, deepseek-v3-tiny: calibrated on the TinyStories calibration
#   text + WikiText-2 valid (as bench/tiny_models_quant.sh), evaluated on the held-out TinyStories
#   and WikiText-2 ids of tiny-references.
# Usage: bench/mixed_precision.sh [BUILD_DIR] [OUT_DIR]
#   MODELS="stories260K qwen2-tiny deepseek-v3-tiny" TARGETS="3.5 4.0 4.5" SAMPLES=128
#   EXTRA="--kld-tokens 8192" adds flags to the mixed runs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
out=${2:-$(mktemp -d)}
shared=${DSQ_SHARED_DIR:-$here/../shared}
dsq=$build/bin/dsq
refs=$shared/models/tiny-references
mkdir -p "$out"
head -c 712780 "$shared/data/tinystories-train-excerpt.txt" > "$out/tinystories-calib.txt"
schemes=()
for b in 2 3 4 5 6 8; do for s in sym asym; do for g in g32 g64 g128 g256 perchannel; do
  schemes+=("int${b}_${s}_$g")
done; done; done

bpw_of() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['summary']['block_linear_bits_per_weight'])" "$1"; }

printf '| model | target | mixed bpw | mixed KLD | uniform | uniform bpw | uniform KLD | KLD ratio | mixed KLD (2nd set) | uniform KLD (2nd set) | mixed s | uniform s |\n'
printf '|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n'
for model in ${MODELS:-stories260K qwen2-tiny deepseek-v3-tiny}; do
  case $model in
    stories260K)
      src=$shared/models/stories260K/hf
      calib=(--calib "$shared/data/tinystories-calib.stories260K.u32")
      evals=("$shared/data/tinystories-eval.stories260K.u32")
      eflags=(--bos) ;;
    deepseek*|qwen*)
      src=$shared/models/$model
      case $model in deepseek*) ids=deepseek ;; *) ids=qwen ;; esac
      calib=(--calib "$out/tinystories-calib.txt" --calib "$shared/data/wikitext-2-valid.tokens.txt")
      evals=("$refs/tinystories.$ids-tok.u32" "$refs/wikitext2.$ids-tok.u32")
      eflags=() ;;
  esac
  calib+=(--calib-samples "${SAMPLES:-128}")
  # Every uniform scheme's bits per weight (RTN: the layout does not depend on the method).
  declare -A bpw=()
  for s in "${schemes[@]}"; do
    f=$out/${model}_rtn_$s.dsq
    "$dsq" -q quantize "$src" -o "$f" --scheme "$s" --json "$f.json" > /dev/null
    bpw[$s]=$(bpw_of "$f.json")
    rm -f "$f"
  done
  kld() {  # model file -> "KLD1 KLD2"
    local r=()
    for e in "${evals[@]}"; do
      "$dsq" -q eval "$1" --tokens "$e" --ctx 512 "${eflags[@]}" --ref "$src" --batch 4 \
        --json "$1.eval.json" > /dev/null
      r+=("$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['kld_mean'])" "$1.eval.json")")
      mv "$1.eval.json" "$1.eval$((${#r[@]})).json"
    done
    echo "${r[@]}"
  }
  for t in ${TARGETS:-3.5 4.0 4.5}; do
    best=""
    for s in "${schemes[@]}"; do
      if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)" "${bpw[$s]}" "$t"; then
        if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "${bpw[$s]}" "${bpw[$best]}"; then best=$s; fi
      fi
    done
    u=$out/${model}_gptq_$best.dsq
    if [ ! -f "$u" ]; then
      t0=$(date +%s.%N)
      "$dsq" -q quantize "$src" -o "$u" --scheme "$best" --method gptq "${calib[@]}" > /dev/null
      echo "$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")" > "$u.seconds"
    fi
    mx=$out/${model}_mixed_$t.dsq
    t0=$(date +%s.%N)
    "$dsq" -q quantize "$src" -o "$mx" --method gptq "${calib[@]}" --target-bpw "$t" ${EXTRA:-} \
      --json "$mx.json" > /dev/null
    ms=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
    read -r mk1 mk2 _ <<< "$(kld "$mx") -"
    read -r uk1 uk2 _ <<< "$(kld "$u") -"
    python3 - "$model" "$t" "$(bpw_of "$mx.json")" "$mk1" "$best" "${bpw[$best]}" "$uk1" "$mk2" "$uk2" "$ms" "$(cat "$u.seconds")" <<'PY'
import sys
m, t, mb, mk, u, ub, uk, mk2, uk2, ms, us = sys.argv[1:]
f = lambda x: f"{float(x):.5f}" if x != "-" else "-"
print(f"| {m} | {t} | {float(mb):.4f} | {f(mk)} | {u} | {float(ub):.4f} | {f(uk)} | "
      f"{float(mk) / float(uk):.2f} | {f(mk2)} | {f(uk2)} | {ms} | {us} |")
PY
  done
  unset bpw
done
