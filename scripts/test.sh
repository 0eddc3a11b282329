#!/usr/bin/env bash
# The README's test command: install, build, run the whole GoogleTest suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh -DDSQ_WERROR=ON
build=${BUILD_DIR:-build}
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" --timeout 900
