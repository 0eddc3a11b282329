#!/usr/bin/env bash
# Loads dsq's GGUF exports in llama.cpp and checks that llama.cpp continues a prompt greedily with
# exactly the text dsq generates from the same file: float exports (`dsq convert -o x.gguf`) and
# quantized ones (`dsq quantize --method rtn ... -o x.gguf`, or METHOD/SCHEME such as
# gptq/int4_sym_g128 calibrated on CALIB; int4_sym / int8_sym groups become Q4_0 / Q8_0 blocks).
# llama.cpp is not part of dsq's build or CI: build it outside the repository (docs/EXPORT.md
# says how) and point this script at its bin/ directory.
#
#   scripts/check-llama-cpp.sh DSQ LLAMA_BIN_DIR [SHARED_DIR]
#
# Float exports of a model with a greedy reference in tiny-references/REFERENCE.json are also
# compared with transformers' continuation. Then, per case, llama-perplexity's PPL on TEXT
# (CHUNKS windows of CTX ids) against
# `dsq eval --llama-ppl` (the same protocol: BOS-led windows, second halves scored) of the same
# file: they must agree within PPL_TOL (relative, default 0.005).
#
# DSQ: the dsq binary (build/bin/dsq). LLAMA_BIN_DIR must hold llama-simple (greedy sampling) and
# llama-perplexity. SHARED_DIR defaults to ../shared beside the repository. MODELS, SCHEMES, TEXT,
# CTX, CHUNKS (environment) narrow the matrix. Prints one line per case and exits 1 when any
# continuation differs or any perplexity is outside the tolerance.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
fi
DSQ=$1
LLAMA=$2
SHARED=${3:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
MODELS=${MODELS:-"stories260K/hf qwen2-tiny"}
SCHEMES=${SCHEMES:-"f32 f16 keep int4_sym_g32 int4_sym_g128 int8_sym_perchannel gptq/int4_sym_g128 int4_asym_g128"}
PROMPT=${PROMPT:-"Once upon a time"}
N=${N:-32}
# Quantized exports are compared over fewer ids: llama.cpp's CPU kernels quantize the activations
# to 8 bits for Q4_0/Q8_0 dot products (dsq multiplies in f32), so the logits differ by a little
# and a near-tie can flip late in a long continuation (qwen2-tiny W4 g128 and W8: at id 31 of 32).
N_QUANT=${N_QUANT:-24}
CALIB=${CALIB:-$SHARED/data/tinystories-train-excerpt.txt}
TEXT=${TEXT:-$SHARED/data/wikitext-2-raw-test.txt}
CTX=${CTX:-256}
CHUNKS=${CHUNKS:-32}
PPL_TOL=${PPL_TOL:-0.005}
[[ -x $DSQ ]] || { echo "error: '$DSQ' is not an executable" >&2; exit 2; }
for b in llama-simple llama-perplexity; do
  [[ -x $LLAMA/$b ]] || { echo "error: '$LLAMA/$b' not found" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for m in $MODELS; do
  for s in $SCHEMES; do
    out=$work/m.gguf
    case $s in
      f32 | f16 | bf16 | keep) "$DSQ" convert "$SHARED/models/$m" -o "$out" --dtype "$s" -q ;;
      */*) "$DSQ" quantize "$SHARED/models/$m" -o "$out" --method "${s%%/*}" --scheme "${s#*/}" \
             --calib "$CALIB" --calib-samples 64 --calib-len 256 -q ;;
      *) "$DSQ" quantize "$SHARED/models/$m" -o "$out" --method rtn --scheme "$s" -q ;;
    esac
    # dsq prints the text on its last line; llama-simple prints the prompt (with "<s> " for a
    # SentencePiece BOS) and the continuation.
    n=$N
    [[ $s =~ ^(f32|f16|bf16|keep)$ ]] || n=$N_QUANT
    want=$("$DSQ" generate "$out" -p "$PROMPT" -n "$n" 2>/dev/null | tail -n 1)
    got=$("$LLAMA/llama-simple" -m "$out" -n "$n" "$PROMPT" 2>/dev/null | sed 's/^<s> //')
    if [[ "$got" == "$want" ]]; then
      printf '%-16s %-22s same %2d ids  %s\n' "$m" "$s" "$n" "$want"
    else
      printf '%-16s %-22s DIFF\n  dsq:       %s\n  llama.cpp: %s\n' "$m" "$s" "$want" "$got"
      status=1
    fi
    # Float exports against transformers' greedy continuation (tiny-references/REFERENCE.json).
    ref=$(/usr/bin/python3 -c 'import json, sys
e = json.load(open(sys.argv[1]))["models"].get(sys.argv[2], {}).get("greedy")
print(sys.argv[3] + e["text"] if e and int(sys.argv[4]) == len(e["ids"]) - len(e["prompt_ids"]) else "")' \
      "$SHARED/models/tiny-references/REFERENCE.json" "$m" "$PROMPT" "$n")
    if [[ -n $ref && $s =~ ^(f32|f16|bf16|keep)$ ]]; then
      if [[ "$got" == "$ref" ]]; then
        printf '%-16s %-22s same text as transformers (REFERENCE.json)\n' "$m" "$s"
      else
        printf '%-16s %-22s DIFF from transformers\n  transformers: %s\n' "$m" "$s" "$ref"
        status=1
      fi
    fi
    ppl_l=$("$LLAMA/llama-perplexity" -m "$out" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" 2>&1 |
      sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
    ppl_d=$("$DSQ" eval "$out" --text "$TEXT" --ctx "$CTX" --max-tokens $((CTX * CHUNKS)) \
      --llama-ppl --json - -q | sed -n 's/^ *"perplexity": \([0-9.e+-]*\),*$/\1/p')
    if awk -v a="$ppl_l" -v b="$ppl_d" -v t="$PPL_TOL" \
         'BEGIN { d = (a - b) / b; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= t) }'; then
      verdict=within
    else
      verdict=OUTSIDE
      status=1
    fi
    printf '%-16s %-22s ppl llama.cpp %s  dsq %s  %s %s\n' "$m" "$s" "$ppl_l" "$ppl_d" "$verdict" "$PPL_TOL"
  done
done
exit $status
