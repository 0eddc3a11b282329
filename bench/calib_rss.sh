#!/usr/bin/env bash
# Peak RSS of a calibrated `dsq quantize` (layer-by-layer pipeline) vs the number of blocks.
#
#   bench/calib_rss.sh BUILD_DIR WORKDIR [METHOD]        # METHOD: gptq (default), awq, awq+gptq, ...
#
# Builds two synthetic Llama models of realistic width (default TinyLlama-1.1B widths: d_model 2048,
# d_ff 5632, 32 heads / 4 kv heads of 64, vocab 32000, f16) with 4 and with 16 blocks
# (`bench_quant_stream make N out.dsq WIDTH`, lib/model/synthetic.h), writes a random calibration
# ids file (little-endian uint32 ids < vocab, seed 0) and runs, for each model, in its own process:
#
#   dsq quantize MODEL -o OUT --method METHOD --bits 4 --group 128 --calib IDS \
#       --calib-samples S --calib-len L
#
# under /usr/bin/time -v, then prints one row per model: blocks, wall time, max RSS, and the load
# average before the run. The pipeline holds one block, the calibration hidden states and one
# group's statistics, so the two peaks should differ by well under 10%.
#
# Environment (defaults in brackets):
#   SAMPLES [128], LEN [512]   calibration windows x tokens per window (128 x 512 is dsq's default;
#                              on a 2-core machine 16 x 512 keeps both runs near 20 minutes)
#   WIDTH [1b]                 synthetic width: small (1024/2816), 1b, 7b (4096/11008)
#   BLOCKS ["4 16"]            block counts to compare
#   MAX_LOAD [1.5]             wait (sleep 30, at most WAIT_MAX [600] s) until the 1-minute load
#                              average is below this before each timed run; 0 disables waiting
#   THREADS [unset]            passed as dsq -t
#   EXTRA [unset]              more `dsq quantize` flags, e.g. "--awq-grid 4" (word-split)
# glibc's malloc raises its mmap threshold dynamically, which lets the peak creep up by a few percent
# with the block count (bench/RESULTS.md); MALLOC_MMAP_THRESHOLD_=131072 in the environment pins it.
# Models and the ids file are kept in WORKDIR and reused by later runs (e.g. another METHOD);
# quantized outputs are deleted after each run. BUILD_DIR must contain bin/dsq and
# bin/bench_quant_stream (configure with -DDSQ_BUILD_BENCH=ON).
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
fi
BUILD_DIR=$1
WORKDIR=$2
METHOD=${3:-gptq}
SAMPLES=${SAMPLES:-128}
LEN=${LEN:-512}
WIDTH=${WIDTH:-1b}
BLOCKS=${BLOCKS:-"4 16"}
MAX_LOAD=${MAX_LOAD:-1.5}
WAIT_MAX=${WAIT_MAX:-600}

DSQ=$BUILD_DIR/bin/dsq
MAKE=$BUILD_DIR/bin/bench_quant_stream
for b in "$DSQ" "$MAKE"; do
  [[ -x $b ]] || { echo "calib_rss.sh: '$b' not found (build dsq and bench_quant_stream)" >&2; exit 1; }
done
mkdir -p "$WORKDIR"

case $WIDTH in
  small) VOCAB=4096 ;;
  1b | 7b) VOCAB=32000 ;;
  *) echo "calib_rss.sh: unknown WIDTH '$WIDTH' (small, 1b, 7b)" >&2; exit 2 ;;
esac

# bench_* programs do not pick OpenBLAS kernels themselves (dsq does): choose them from the CPU.
if [[ -z ${OPENBLAS_CORETYPE:-} ]]; then
  if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi

load1() { cut -d' ' -f1 /proc/loadavg; }

# Waits until the 1-minute load average is below MAX_LOAD (or WAIT_MAX seconds have passed).
wait_for_idle() {
  [[ $MAX_LOAD == 0 ]] && return 0
  local waited=0
  while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }'; do
    if ((waited >= WAIT_MAX)); then
      echo "calib_rss.sh: load average still $(load1) after ${WAIT_MAX}s; measuring anyway" >&2
      return 0
    fi
    sleep 30
    waited=$((waited + 30))
  done
}

# Calibration ids: enough for twice the windows, uniformly random below the vocabulary size.
IDS=$WORKDIR/calib-$VOCAB.u32
N_IDS=$((2 * SAMPLES * LEN > 262144 ? 2 * SAMPLES * LEN : 262144))
if [[ ! -s $IDS || $(stat -c %s "$IDS") -lt $((4 * N_IDS)) ]]; then
  python3 - "$IDS" "$N_IDS" "$VOCAB" <<'EOF'
import random, struct, sys
path, n, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(0)
with open(path, "wb") as f:
    f.write(struct.pack("<%dI" % n, *(rng.randrange(vocab) for _ in range(n))))
EOF
fi

THREAD_FLAGS=()
[[ -n ${THREADS:-} ]] && THREAD_FLAGS=(-t "$THREADS")
read -r -a EXTRA_FLAGS <<< "${EXTRA:-}"

echo "# dsq quantize --method $METHOD --bits 4 --group 128 ${EXTRA:-}, calibration $SAMPLES x $LEN ids," \
  "width $WIDTH, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
ROWS=()
RSS=()
for n in $BLOCKS; do
  MODEL=$WORKDIR/synth-$WIDTH-$n.dsq
  if [[ ! -s $MODEL ]]; then
    "$MAKE" make "$n" "$MODEL.tmp" "$WIDTH" >&2
    mv "$MODEL.tmp" "$MODEL"
  fi
  OUT=$WORKDIR/q-$METHOD-$n.dsq
  TIMELOG=$WORKDIR/time-$METHOD-$n.txt
  LOG=$WORKDIR/quantize-$METHOD-$n.log
  rm -rf "$OUT" "$OUT.partial"
  wait_for_idle
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  /usr/bin/time -v -o "$TIMELOG" "$DSQ" "${THREAD_FLAGS[@]}" quantize "$MODEL" -o "$OUT" \
    --method "$METHOD" --bits 4 --group 128 --calib "$IDS" --calib-samples "$SAMPLES" \
    --calib-len "$LEN" "${EXTRA_FLAGS[@]}" >"$LOG" 2>&1 || { echo "calib_rss.sh: dsq quantize failed, see $LOG" >&2; exit 1; }
  LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
  WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0;
           for (i = 1; i <= n; ++i) s = s * 60 + t[i]; printf "%.1f", s }' "$TIMELOG")
  USER_S=$(awk -F': ' '/User time/ { print $2 }' "$TIMELOG")
  RSS_KB=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TIMELOG")
  SRC_MB=$(awk -v b="$(stat -c %s "$MODEL")" 'BEGIN { printf "%.1f", b / 1e6 }')
  ROWS+=("| $n | $SRC_MB MB | $WALL s | $USER_S s | $(awk -v k="$RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }') MiB | $LOAD_BEFORE / $LOAD_AFTER |")
  RSS+=("$RSS_KB")
  rm -rf "$OUT" "$OUT.partial"
done

echo "| blocks | source | wall | user CPU | max RSS | load avg before / after |"
echo "|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${ROWS[@]}"
if [[ ${#RSS[@]} -ge 2 ]]; then
  awk -v a="${RSS[0]}" -v b="${RSS[${#RSS[@]}-1]}" \
    'BEGIN { printf "max RSS, last / first: %.3f (%+.1f%%)\n", b / a, 100 * (b - a) / a }'
fi
