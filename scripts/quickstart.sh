#!/usr/bin/env bash
# The README's main-job command: install missing packages, build, then run dsq's quick-start on a
# model (default: the example model under examples/ if there is one, else
# ../shared/models/stories260K/hf, else - a fresh clone without ../shared - a model dsq trains
# itself on Debian's `fortunes` text): convert, inspect, quantize (RTN and GPTQ, W4 g128), prune
# and heal by distillation, eval each against the original, gate the GPTQ model with dsq check and
# draw everything with dsq report.
# Environment: OUT_DIR (default build/quickstart), EVAL_TOKENS / EVAL_TEXT (eval data; default the
# TinyStories eval ids beside the stories260K model), CALIB (calibration data), EVAL_CTX (default
# 512; 256 for the self-trained model), EVAL_MAX_TOKENS (score only the first N ids; default all),
# TRAIN_STEPS (the self-trained model's steps, default 600), DISTILL_STEPS (default 150),
# DSQ_SHARED_DIR (default ../shared; point it elsewhere to take the fresh-clone path), DSQ_BIN (a
# built dsq to use instead of building build/bin/dsq).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DSQ_BIN:-}" ]; then bash scripts/build.sh; fi
shared=${DSQ_SHARED_DIR:-../shared}
model=${1:-}
out=${OUT_DIR:-build/quickstart}
mkdir -p "$out"
dsq=${DSQ_BIN:-build/bin/dsq}
data=$shared/data
ctx=${EVAL_CTX:-512}
if [ -z "$model" ]; then
  if [ -d examples/model ]; then model=examples/model
  elif [ -d "$shared/models/stories260K/hf" ]; then model=$shared/models/stories260K/hf
  else
    # A fresh clone without ../shared: train a small model on Debian's fortunes (every cookie
    # file but the .dat indexes, '%' separators dropped; the last tenth held out for eval).
    bash scripts/apt-install-missing.sh fortunes
    text=$out/text
    mkdir -p "$text"
    find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' -print0 |
      sort -z | xargs -0 cat | grep -v '^%$' > "$text/all.txt"
    lines=$(wc -l < "$text/all.txt")
    head -n $((lines * 9 / 10)) "$text/all.txt" > "$text/train.txt"
    tail -n +$((lines * 9 / 10 + 1)) "$text/all.txt" > "$text/eval.txt"
    set -x
    "$dsq" train --text "$text/train.txt" -o "$out/trained.dsq" --vocab 2048 --d-model 128 \
      --layers 4 --seq-len 256 --steps "${TRAIN_STEPS:-600}" --json "$out/train.json"
    { set +x; } 2>/dev/null
    model=$out/trained.dsq
    EVAL_TEXT=${EVAL_TEXT:-$text/eval.txt}
    CALIB=${CALIB:-$text/train.txt}
    ctx=${EVAL_CTX:-256}
  fi
fi
[ -e "$model" ] || { echo "quickstart: model '$model' not found" >&2; exit 1; }
eval_args=()
if [ -n "${EVAL_TEXT:-}" ]; then eval_args=(--text "$EVAL_TEXT")
elif [ -n "${EVAL_TOKENS:-}" ]; then eval_args=(--tokens "$EVAL_TOKENS")
elif [ -f "$data/tinystories-eval.stories260K.u32" ] && [[ "$model" == *stories260K* ]]; then
  eval_args=(--tokens "$data/tinystories-eval.stories260K.u32")
fi
if [ ${#eval_args[@]} -gt 0 ] && [ -n "${EVAL_MAX_TOKENS:-}" ]; then
  eval_args+=(--max-tokens "$EVAL_MAX_TOKENS")
fi
calib=${CALIB:-}
if [ -z "$calib" ] && [ -f "$data/tinystories-calib.stories260K.u32" ] && [[ "$model" == *stories260K* ]]; then
  calib="$data/tinystories-calib.stories260K.u32"
fi

set -x
"$dsq" convert "$model" -o "$out/model.dsq"
"$dsq" inspect "$out/model.dsq"
"$dsq" quantize "$out/model.dsq" -o "$out/model-rtn-w4g128.dsq" --bits 4 --group 128 --method rtn \
  --json "$out/quantize-rtn.json"
if [ -n "$calib" ]; then
  "$dsq" quantize "$out/model.dsq" -o "$out/model-gptq-w4g128.dsq" --bits 4 --group 128 \
    --method gptq --calib "$calib" --calib-len "$ctx" --json "$out/quantize-gptq.json"
fi
if [ -n "$calib" ]; then
  # Structured pruning (20% of FFN channels), then the pruned model healed against the original.
  "$dsq" prune "$out/model.dsq" -o "$out/model-pruned.dsq" --ffn 0.2 --calib "$calib" \
    --calib-samples 64 --calib-len "$ctx" --json "$out/prune.json"
  "$dsq" distill "$out/model-pruned.dsq" --teacher "$out/model.dsq" --data "$calib" \
    -o "$out/model-pruned-distilled.dsq" --samples 256 --seq-len "$ctx" --steps "${DISTILL_STEPS:-150}" \
    --json "$out/distill.json"
fi
if [ ${#eval_args[@]} -gt 0 ]; then
  reports=()
  for m in rtn-w4g128 gptq-w4g128 pruned pruned-distilled; do
    [ -f "$out/model-$m.dsq" ] || continue
    "$dsq" eval "$out/model-$m.dsq" --ref "$out/model.dsq" "${eval_args[@]}" --ctx "$ctx" --bos \
      --json "$out/eval-$m.json"
    reports+=("$m=$out/eval-$m.json")
  done
  if [ -f "$out/model-gptq-w4g128.dsq" ]; then
    # A CI gate on the 4-bit model (examples/budget-quickstart.json); --junit for CI systems.
    "$dsq" check "$out/model-gptq-w4g128.dsq" --ref "$out/model.dsq" \
      --budget examples/budget-quickstart.json "${eval_args[@]}" --ctx "$ctx" --bos \
      --junit "$out/check.xml" --json "$out/check.json"
  fi
  [ -f "$out/distill.json" ] && reports+=("distill=$out/distill.json")
  "$dsq" report "${reports[@]}" -o "$out/report.html"
fi
{ set +x; } 2>/dev/null
echo "quickstart: outputs in $out"
