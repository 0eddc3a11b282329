#!/usr/bin/env bash
# DeepSeek-V3 / R1 at real widths: GPTQ W4 g128 time and peak RSS of a MoE block (and optionally
# dense blocks) measured with two expert counts, for the extrapolation to R1 in bench/RESULTS.md.
#
#   bench/deepseek_v3_layer.sh BUILD_DIR WORKDIR
#
# For each expert count E in EXPERTS it writes (once; reused by later runs) a synthetic model with
# V3's layer shapes stored like the release (FP8 e4m3 linears with 128x128 block scales; DENSE
# dense + 1 MoE layer, vocab 4096; `bench_deepseek_v3_layer make`), then runs, in its own process
# under /usr/bin/time -v, `bench_deepseek_v3_layer quant` (dsq quantize --method gptq --bits 4
# --group 128 with SAMPLES x LEN calibration tokens) and prints one row: E, wall time, the
# pipeline's time for each block (its log line "block L: ..., Xs"), peak RSS.
#
# With the total number of calibration tokens fixed, the routed-token work of a MoE block (8 routes
# per token) does not depend on E, so the two runs separate the per-expert fixed cost (load, Hessian
# factorization, updates, packing) from the rest of the block:
#   t_e = (m(E2) - m(E1)) / (E2 - E1)     m = the MoE block's time
#   F   = m(E1) - E1 * t_e                 attention, router, shared expert, routed-token statistics
# and R1's 58 MoE layers of 256 experts take 58 * (F + 256 * t_e). The peak RSS must not grow with E
# (one expert is held at a time): the two peaks are compared.
#
# Environment (defaults in brackets):
#   EXPERTS ["16 64"]    the two expert counts
#   DENSE [0]            dense layers before the MoE layer (V3 has 3; their time is measured
#                        separately, see RESULTS.md)
#   SAMPLES [128], LEN [512]
#   MAX_LOAD [1.5]       wait (at most 600 s) until the 1-minute load is below this; 0 disables
# BUILD_DIR must contain bin/bench_deepseek_v3_layer (configure with -DDSQ_BUILD_BENCH=ON).
set -euo pipefail

if [[ $# -ne 2 ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
fi
BUILD_DIR=$1
WORKDIR=$2
EXPERTS=${EXPERTS:-"16 64"}
SAMPLES=${SAMPLES:-128}
DENSE=${DENSE:-0}
LEN=${LEN:-512}
MAX_LOAD=${MAX_LOAD:-1.5}
BIN=$BUILD_DIR/bin/bench_deepseek_v3_layer
[[ -x $BIN ]] || { echo "error: $BIN not found (configure with -DDSQ_BUILD_BENCH=ON)" >&2; exit 2; }
mkdir -p "$WORKDIR"

wait_load() {
  [[ $MAX_LOAD == 0 ]] && return 0
  local waited=0
  while awk -v m="$MAX_LOAD" '{ exit !($1 >= m) }' /proc/loadavg && ((waited < 600)); do
    sleep 30
    waited=$((waited + 30))
  done
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)," \
  "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
echo "calibration: $SAMPLES x $LEN tokens; GPTQ W4 g128; $DENSE dense + 1 MoE layer"
printf '%-8s %10s %12s %12s %8s\n' experts wall_s moe_block_s peak_rss_gib load
declare -A M RSS
for e in $EXPERTS; do
  src=$WORKDIR/d${DENSE}e$e.dsq
  ids=$WORKDIR/calib.u32
  if [[ ! -f $src ]]; then
    "$BIN" make "$e" "$src" "$ids" "$DENSE" 1 4096 >&2
  fi
  wait_load
  load=$(cut -d' ' -f1 /proc/loadavg)
  log=$WORKDIR/d${DENSE}e$e.$SAMPLES.log
  /usr/bin/time -v "$BIN" quant "$src" "$WORKDIR/out$e.dsq" "$ids" "$SAMPLES" "$LEN" >"$log" 2>&1
  rm -f "$WORKDIR/out$e.dsq"
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, a, ":"); s = 0;
           for (i = 1; i <= n; ++i) s = s * 60 + a[i]; print s }' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.2f", $2 / 1048576 }' "$log")
  sed -n 's/.*\(block [0-9]*\): .*, \([0-9.]*\)s$/  \1: \2 s/p' "$log" >&2
  M[$e]=$(sed -n "s/.*block $DENSE: .*, \([0-9.]*\)s$/\1/p" "$log" | tail -1)
  RSS[$e]=$rss
  printf '%-8s %10s %12s %12s %8s\n' "$e" "$wall" "${M[$e]}" "$rss" "$load"
done
read -r e1 e2 <<<"$EXPERTS"
[[ -n ${e2:-} ]] || exit 0  # one expert count: its row only
awk -v e1="$e1" -v e2="$e2" -v m1="${M[$e1]}" -v m2="${M[$e2]}" \
  -v r1="${RSS[$e1]}" -v r2="${RSS[$e2]}" 'BEGIN {
  te = (m2 - m1) / (e2 - e1); F = m1 - e1 * te;
  printf "per expert %.2f s; MoE block without its routed experts %.1f s; 58 R1 MoE layers ~ %.1f h\n",
         te, F, 58 * (F + 256 * te) / 3600;
  printf "peak RSS %s GiB (E=%s) vs %s GiB (E=%s): %+.1f%%\n", r1, e1, r2, e2, 100 * (r2 - r1) / r1 }'
