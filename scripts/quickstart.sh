#!/usr/bin/env bash
# The README's main-job command: install missing packages, build, then run dsq's quick-start on a
# model (default: the example model under examples/ if there is one, else
# ../shared/models/stories260K/hf): convert, inspect, quantize (RTN and GPTQ, W4 g128) and eval
# each quantized model against the original.
# Environment: OUT_DIR (default build/quickstart), EVAL_TOKENS / EVAL_TEXT (eval data; default the
# TinyStories eval ids beside the stories260K model), CALIB (GPTQ calibration data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
model=${1:-}
if [ -z "$model" ]; then
  if [ -d examples/model ]; then model=examples/model; else model=../shared/models/stories260K/hf; fi
fi
[ -e "$model" ] || { echo "quickstart: model '$model' not found" >&2; exit 1; }
out=${OUT_DIR:-build/quickstart}
mkdir -p "$out"
dsq=build/bin/dsq
data=../shared/data
eval_args=()
if [ -n "${EVAL_TEXT:-}" ]; then eval_args=(--text "$EVAL_TEXT")
elif [ -n "${EVAL_TOKENS:-}" ]; then eval_args=(--tokens "$EVAL_TOKENS")
elif [ -f "$data/tinystories-eval.stories260K.u32" ] && [[ "$model" == *stories260K* ]]; then
  eval_args=(--tokens "$data/tinystories-eval.stories260K.u32")
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
    --method gptq --calib "$calib" --json "$out/quantize-gptq.json"
fi
if [ ${#eval_args[@]} -gt 0 ]; then
  "$dsq" eval "$out/model-rtn-w4g128.dsq" --ref "$out/model.dsq" "${eval_args[@]}" --ctx 512 --bos \
    --json "$out/eval-rtn.json"
  if [ -n "$calib" ]; then
    "$dsq" eval "$out/model-gptq-w4g128.dsq" --ref "$out/model.dsq" "${eval_args[@]}" --ctx 512 \
      --bos --json "$out/eval-gptq.json"
  fi
fi
{ set +x; } 2>/dev/null
echo "quickstart: outputs in $out"
