#!/usr/bin/env bash
# `mpirun -n N dsq quantize` against one process (bench/RESULTS.md, "MPI"): wall time for N ranks
# of one thread each on a synthetic Llama of real width, the bytes broadcast per block, and that
# the outputs are byte-identical.
#
#   bench/mpi_scaling.sh BUILD_DIR WORKDIR
#
# Environment: WIDTH [1b] (small, 1b: TinyLlama 2048/5632, 7b: 4096/11008, v3: one DeepSeek-V3
# MoE layer stored like the release, FP8 linears, with EXPERTS [16] routed experts of V3's shape,
# 8 per token), BLOCKS [2] (Llama widths), SAMPLES [16] x LEN [512] calibration ids,
# RANKS ["1 2"], METHOD [gptq].
# BUILD_DIR needs bin/dsq (built with MPI) and bin/bench_quant_stream (bin/bench_deepseek_v3_layer
# for v3).
set -euo pipefail
if [[ $# -ne 2 ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
fi
build=$1
work=$2
mkdir -p "$work"
width=${WIDTH:-1b}
blocks=${BLOCKS:-2}
model=$work/llama-$width-$blocks.dsq
ids=$work/calib.u32
if [ "$width" = v3 ]; then
  blocks=1
  model=$work/v3-moe-e${EXPERTS:-16}.dsq
  [ -f "$model" ] || "$build/bin/bench_deepseek_v3_layer" make "${EXPERTS:-16}" "$model" "$ids" 0 1 4096 >&2
fi
[ -f "$model" ] || "$build/bin/bench_quant_stream" make "$blocks" "$model" "$width"
[ -f "$ids" ] || python3 -c "
import random, struct, sys
random.seed(0)
open(sys.argv[1], 'wb').write(struct.pack('<%dI' % 200000, *[random.randrange(32000) for _ in range(200000)]))" "$ids"
flags=(--method "${METHOD:-gptq}" --bits 4 --group 128 --calib "$ids" --calib-samples "${SAMPLES:-16}"
       --calib-len "${LEN:-512}")
printf '| ranks x threads | wall s | speed-up | identical to 1 rank | load before |\n|---|---:|---:|---|---|\n'
base=""
for n in ${RANKS:-1 2}; do
  out=$work/out-$n.dsq
  rm -rf "$out" "$out.partial"
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  t0=$(date +%s.%N)
  if [ "$n" = 1 ]; then
    OMP_NUM_THREADS=1 "$build/bin/dsq" -q -t 1 quantize "$model" -o "$out" "${flags[@]}" \
      --json "$work/report-$n.json"
  else
    mpirun --allow-run-as-root --oversubscribe --mca btl self,vader -x OMP_NUM_THREADS=1 -n "$n" \
      "$build/bin/dsq" -q -t 1 quantize "$model" -o "$out" "${flags[@]}" --json "$work/report-$n.json"
  fi
  t=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
  [ -z "$base" ] && base=$t
  same=$(cmp -s "$out" "$work/out-1.dsq" && echo yes || echo NO)
  printf '| %s x 1 | %s | %s | %s | %s |\n' "$n" "$t" \
    "$(python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$base" "$t")" "$same" "$load"
done
# Bytes each block's results cost to broadcast: every quantized linear once, to N-1 ranks.
"$build/bin/dsq" -q inspect "$work/out-1.dsq" --json "$work/inspect.json" > /dev/null
python3 - "$work/inspect.json" "$blocks" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); blocks = int(sys.argv[2])
q = sum(t["bytes"] for t in j["tensors"] if t["name"].startswith("blk.") and t.get("dtype") == "qint")
print(f"\nbroadcast per block: {q / blocks / 1e6:.1f} MB of quantized linears, sent once to each other rank")
PY
