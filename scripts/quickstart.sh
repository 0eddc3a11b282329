#!/usr/bin/env bash
# The README's main-job command: install, build, then run dsq's quick-start on a model directory
# (default: the example model under examples/, else ../shared/models/stories260K/hf).
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
set -x
"$dsq" convert "$model" -o "$out/model.dsq"
"$dsq" inspect "$out/model.dsq"
