#!/usr/bin/env bash
# The speed scoreboard of issue 19, rerunnable by anyone: dsq against llama.cpp on a synthetic
# TinyLlama-1.1B-shaped F16 model (22 blocks, d_model 2048, d_ff 5632, vocab 32000), the two tools'
# runs interleaved in one session, then dsq's calibrated GPTQ times on the shared tiny models.
#
#   bench/scoreboard.sh [LLAMA_SRC]
#
# LLAMA_SRC: a llama.cpp source tree (default: the snapshot `fetch github:ggerganov/llama.cpp`
# left in /work/.mirror/ggerganov+llama.cpp/repo, cloned into $WORK/llama.cpp). It is built outside the repository
# into LLAMA_SRC/build (llama-quantize and llama-bench, -DGGML_NATIVE=ON) unless LLAMA_BIN points
# at a directory that already has them.
# Environment: DSQ (default build/bin/dsq), BENCH_BIN (build/bin: bench_quant_stream makes the
# model), WORK (default /tmp/dsq-scoreboard; needs ~6 GB), SHARED (default ../shared), RUNS
# (repetitions of each timed row, default 2), EVAL_WINDOWS (512-id windows dsq eval scores, default
# 8), GPTQ=0 skips the GPTQ rows.
# Prints one line per measurement: row, tool, seconds / tokens per second, peak RSS, load average.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DSQ=${DSQ:-$here/build/bin/dsq}
BENCH_BIN=${BENCH_BIN:-$here/build/bin}
WORK=${WORK:-/tmp/dsq-scoreboard}
SHARED=${SHARED:-$here/../shared}
RUNS=${RUNS:-2}
EVAL_WINDOWS=${EVAL_WINDOWS:-8}
mkdir -p "$WORK"
[[ -x $DSQ ]] || { echo "scoreboard: '$DSQ' is not an executable (build first)" >&2; exit 2; }
[[ -x $BENCH_BIN/bench_quant_stream ]] || { echo "scoreboard: no $BENCH_BIN/bench_quant_stream" >&2; exit 2; }

# --- the peer -------------------------------------------------------------------------------
if [[ -z ${LLAMA_BIN:-} ]]; then
  src=${1:-}
  if [[ -z $src ]]; then
    mirror=/work/.mirror/ggerganov+llama.cpp/repo
    [[ -d $mirror ]] || { echo "scoreboard: give a llama.cpp source tree (or fetch one)" >&2; exit 2; }
    src=$WORK/llama.cpp
    if [[ ! -d $src ]]; then
      git clone -q "$mirror" "$src"
    fi
  fi
  if [[ ! -x $src/build/bin/llama-bench || ! -x $src/build/bin/llama-quantize ]]; then
    cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
      > "$WORK/llama-configure.log" 2>&1
    cmake --build "$src/build" -j"$(nproc)" --target llama-quantize llama-bench > "$WORK/llama-build.log" 2>&1
  fi
  LLAMA_BIN=$src/build/bin
  llama_commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo "$src")
else
  llama_commit=unknown
fi
dsq_commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)

# --- the model and the ids ------------------------------------------------------------------
tl=$WORK/tl.gguf
if [[ ! -f $tl ]]; then
  "$BENCH_BIN/bench_quant_stream" make 22 "$WORK/tl.dsq" 1b > /dev/null
  "$DSQ" -q convert "$WORK/tl.dsq" -o "$tl"
  rm -f "$WORK/tl.dsq"
fi
ids=$WORK/ids-${EVAL_WINDOWS}x512.u32
/usr/bin/python3 - "$ids" "$EVAL_WINDOWS" <<'EOF'
import random, struct, sys
rng = random.Random(19)
n = 512 * int(sys.argv[2])
open(sys.argv[1], "wb").write(struct.pack("<%dI" % n, *[rng.randrange(32000) for _ in range(n)]))
EOF
prompt=$(/usr/bin/python3 -c "import random; r=random.Random(7); print(','.join(str(r.randrange(32000)) for _ in range(16)))")

echo "# $(date -u '+%Y-%m-%d %H:%M UTC')  $(nproc) cores  dsq $dsq_commit  llama.cpp $llama_commit"
echo "# row | tool | result | peak RSS | load average"
load() { cut -d' ' -f1 /proc/loadavg; }
# timed ROW TOOL CMD...: wall seconds and peak RSS of one run.
timed() {
  local row=$1 tool=$2
  shift 2
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" > "$WORK/out.txt" 2> "$WORK/err.txt" ||
    { echo "scoreboard: $row / $tool failed:" >&2; tail -5 "$WORK/err.txt" >&2; exit 1; }
  read -r secs kb < "$WORK/time.txt"
  printf '%-34s | %-14s | %8.2f s | %6.2f GB | %s\n' "$row" "$tool" "$secs" "$(awk -v k="$kb" 'BEGIN { print k / 1048576 }')" "$(load)"
}
# rate ROW TOOL VALUE: a tokens/s figure with the RSS of the run that produced it.
rate() {
  read -r _ kb < "$WORK/time.txt"
  printf '%-34s | %-14s | %8.2f t/s | %6.2f GB | %s\n' "$1" "$2" "$3" "$(awk -v k="$kb" 'BEGIN { print k / 1048576 }')" "$(load)"
}
jget() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$2)" "$1"; }
# llama-bench's JSON: avg_ts of its single test.
lbench() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[0]['avg_ts'])" "$1"; }

# --- RTN: llama-quantize Q4_0 / Q8_0 against dsq's int4/int8 sym g32, interleaved -----------
for r in $(seq "$RUNS"); do
  timed "RTN 4-bit g32 (Q4_0)" llama-quantize "$LLAMA_BIN/llama-quantize" "$tl" "$WORK/q4_0.gguf" Q4_0
  timed "RTN 4-bit g32 (int4_sym_g32)" dsq "$DSQ" -q quantize "$tl" -o "$WORK/int4.dsq" --scheme int4_sym_g32
  timed "RTN 8-bit g32 (Q8_0)" llama-quantize "$LLAMA_BIN/llama-quantize" "$tl" "$WORK/q8_0.gguf" Q8_0
  timed "RTN 8-bit g32 (int8_sym_g32)" dsq "$DSQ" -q quantize "$tl" -o "$WORK/int8.dsq" --scheme int8_sym_g32
done
rm -f "$WORK/q8_0.gguf" "$WORK/int8.dsq"

# pair ROW "LLAMA-BENCH ARGS" DSQ_ROW JSON_KEY DSQ_COMMAND...: llama-bench's rate, then dsq's
# (DSQ_COMMAND gets --json; JSON_KEY names the rate in it), each with its run's peak RSS.
pair() {
  local row=$1 largs=$2 drow=$3 key=$4
  shift 4
  # shellcheck disable=SC2086  # largs: several words, no paths with spaces under $WORK
  timed "$row" llama-bench "$LLAMA_BIN/llama-bench" $largs -r 1 -o json
  cp "$WORK/out.txt" "$WORK/lb.json"
  rate "$row" llama-bench "$(lbench "$WORK/lb.json")"
  timed "$drow" dsq "$@" --json "$WORK/d.json"
  rate "$row" dsq "$(jget "$WORK/d.json" "['$key']")"
}

# --- prompt processing: 512-id windows (dsq eval over EVAL_WINDOWS windows; llama-bench pp512) --
# --- then decode: 128 ids after a 16-id prompt (dsq generate; llama-bench tg128) ------------
for phase in pp tg; do
  for r in $(seq "$RUNS"); do
    for kinds in "F16:$tl:$tl" "4-bit:$WORK/q4_0.gguf:$WORK/int4.dsq"; do
      IFS=: read -r kind lfile dfile <<< "$kinds"
      if [[ $phase == pp ]]; then
        pair "pp512 $kind" "-m $lfile -p 512 -n 0" "eval $EVAL_WINDOWS x 512 $kind (incl. load)" \
          tokens_per_second "$DSQ" -q eval "$dfile" --tokens "$ids" --ctx 512
      else
        pair "tg128 $kind" "-m $lfile -p 0 -n 128" "generate 128 $kind" decode_tokens_per_second \
          "$DSQ" -q generate "$dfile" --prompt-ids "$prompt" -n 128
      fi
    done
  done
done

# --- GPTQ on the shared tiny models (the peers' figures are in the issue: GPU / PyTorch) ------
if [[ ${GPTQ:-1} != 0 && -d $SHARED/models ]]; then
  for r in $(seq "$RUNS"); do
    timed "GPTQ W4 g32 stories260K 128x512" dsq "$DSQ" -q quantize "$SHARED/models/stories260K/hf" \
      -o "$WORK/g1.dsq" --method gptq --bits 4 --group 32 \
      --calib "$SHARED/data/tinystories-calib.stories260K.u32" --calib-samples 128 --calib-len 512
    timed "GPTQ W4 g128 qwen2-tiny 128x512" dsq "$DSQ" -q quantize "$SHARED/models/qwen2-tiny" \
      -o "$WORK/g2.dsq" --method gptq --bits 4 --group 128 \
      --calib "$SHARED/data/wikitext-2-valid.tokens.txt" --calib-samples 128 --calib-len 512
  done
fi
