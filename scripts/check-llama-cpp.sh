#!/usr/bin/env bash
# Loads dsq's GGUF exports in llama.cpp and checks that llama.cpp continues a prompt greedily with
# exactly the text dsq generates from the same file: float exports (`dsq convert -o x.gguf`) and
# quantized ones (`dsq quantize --method rtn ... -o x.gguf`, whose int4_sym / int8_sym groups
# become Q4_0 / Q8_0 blocks). llama.cpp is not part of dsq's build or CI: build it outside the
# repository (docs/EXPORT.md says how) and point this script at its bin/ directory.
#
#   scripts/check-llama-cpp.sh DSQ LLAMA_BIN_DIR [SHARED_DIR]
#
# DSQ: the dsq binary (build/bin/dsq). LLAMA_BIN_DIR must hold llama-simple (greedy sampling).
# SHARED_DIR defaults to ../shared beside the repository. MODELS and SCHEMES (environment) narrow
# the matrix. Prints one line per case and exits 1 when any continuation differs.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
fi
DSQ=$1
LLAMA=$2
SHARED=${3:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
MODELS=${MODELS:-"stories260K/hf qwen2-tiny"}
SCHEMES=${SCHEMES:-"f32 keep int4_sym_g32 int4_sym_g128 int8_sym_perchannel"}
PROMPT=${PROMPT:-"Once upon a time"}
N=${N:-24}
[[ -x $DSQ ]] || { echo "error: '$DSQ' is not an executable" >&2; exit 2; }
[[ -x $LLAMA/llama-simple ]] || { echo "error: '$LLAMA/llama-simple' not found" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for m in $MODELS; do
  for s in $SCHEMES; do
    out=$work/m.gguf
    case $s in
      f32 | f16 | bf16 | keep) "$DSQ" convert "$SHARED/models/$m" -o "$out" --dtype "$s" -q ;;
      *) "$DSQ" quantize "$SHARED/models/$m" -o "$out" --method rtn --scheme "$s" -q ;;
    esac
    # dsq prints the text on its last line; llama-simple prints the prompt (with "<s> " for a
    # SentencePiece BOS) and the continuation.
    want=$("$DSQ" generate "$out" -p "$PROMPT" -n "$N" 2>/dev/null | tail -n 1)
    got=$("$LLAMA/llama-simple" -m "$out" -n "$N" "$PROMPT" 2>/dev/null | sed 's/^<s> //')
    if [[ "$got" == "$want" ]]; then
      printf '%-16s %-22s same  %s\n' "$m" "$s" "$want"
    else
      printf '%-16s %-22s DIFF\n  dsq:       %s\n  llama.cpp: %s\n' "$m" "$s" "$want" "$got"
      status=1
    fi
  done
done
exit $status
