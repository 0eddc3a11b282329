#!/bin/bash
# The distillation runs of bench/RESULTS.md ("Distillation"): pruned students healed against their
# teacher, with the held-out curve on the evaluation text and the final KLD from `dsq eval --ref`.
#
#   stories260K, 20% of FFN channels pruned (activation importance, as the issue's baseline),
#     trained on the TinyStories calibration ids, held-out curve on the TinyStories eval ids;
#     lr 3e-4 (the default) and 1e-3, top-64 labels; and the exact full-vocabulary loss (--top-k 0).
#   qwen2-tiny, 25% of FFN channels pruned (activation importance on WikiText-2 valid), trained on
#     WikiText-2 valid text (part of its training corpus), held-out curve on WikiText-2 raw test.
#
# Usage: bench/distill.sh [DSQ_BINARY] [WORK_DIR]   (../shared beside the checkout)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dsq=${1:-$here/build/bin/dsq}
work=${2:-$(mktemp -d)}
S=${DSQ_SHARED_DIR:-$here/../shared}
M=$S/models
mkdir -p "$work"
cd "$work"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "dsq: $dsq ($(git -C "$here" rev-parse --short HEAD))"

kld() {  # kld MODEL REF IDS
  "$dsq" -q eval "$1" --ref "$2" --tokens "$3" --json kld.json >/dev/null
  python3 -c "import json; j=json.load(open('kld.json')); print('%.4f %.4f' % (j['kld_mean'], j['perplexity']))"
}
curve() {  # curve REPORT.json
  python3 - "$1" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
print("  step  tokens   minutes  train_loss  heldout_kl")
for p in j["curve"]:
    print("%6d %7d %8.2f %10.4f %10.4f" % (p["step"], p["tokens"], p["minutes"], p["train_loss"], p["heldout_kl"]))
print("teacher pass %.1f s, training %.1f s, %.0f tokens/s" % (j["teacher_seconds"], j["train_seconds"], j["tokens_per_second"]))
EOF
}

# stories260K
T=$M/stories260K/stories260K.gguf
CAL=$S/data/tinystories-calib.stories260K.u32
EV=$S/data/tinystories-eval.stories260K.u32
"$dsq" -q prune "$T" -o s-p20.dsq --ffn 0.2 --calib "$CAL"
echo "stories260K pruned 20%: eval KLD/PPL $(kld s-p20.dsq "$T" "$EV")"
run_stories() {  # name extra-flags...
  local name=$1; shift
  rm -rf "$name.dsq" "$name.dsq.partial"
  /usr/bin/time -f "  wall %e s, peak RSS %M KB" "$dsq" -q distill s-p20.dsq --teacher "$T" --data "$CAL" \
    --heldout-data "$EV" --heldout 16 -o "$name.dsq" --samples 1200 --seq-len 256 --steps 600 \
    --eval-every 100 --json "$name.json" "$@"
  echo "$name: eval KLD/PPL $(kld "$name.dsq" "$T" "$EV")"
  curve "$name.json"
}
run_stories s-lr3e-4
run_stories s-lr1e-3 --lr 1e-3
run_stories s-exact --lr 1e-3 --top-k 0

# qwen2-tiny
Q=$M/qwen2-tiny
WT=$S/data/wikitext-2-valid.tokens.txt
WE=$M/tiny-references/wikitext2.qwen-tok.u32
TE=$M/tiny-references/tinystories.qwen-tok.u32
"$dsq" -q prune "$Q" -o q-p25.dsq --ffn 0.25 --calib "$WT"
echo "qwen2-tiny pruned 25%: eval KLD/PPL wikitext2 $(kld q-p25.dsq "$Q" "$WE"), tinystories $(kld q-p25.dsq "$Q" "$TE")"
rm -rf q-d.dsq q-d.dsq.partial
/usr/bin/time -f "  wall %e s, peak RSS %M KB" "$dsq" -q distill q-p25.dsq --teacher "$Q" --data "$WT" \
  --heldout-data "$WE" --heldout 16 -o q-d.dsq --samples 1455 --seq-len 256 --steps 1000 \
  --eval-every 100 --json q-d.json
echo "qwen2-tiny distilled: eval KLD/PPL wikitext2 $(kld q-d.dsq "$Q" "$WE"), tinystories $(kld q-d.dsq "$Q" "$TE")"
curve q-d.json
