#!/usr/bin/env bash
# Installs missing packages, configures and builds dsq (Release) into ${BUILD_DIR:-build}.
# Extra arguments go to cmake's configure step, e.g. -DDSQ_SANITIZE=address,undefined.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${BUILD_DIR:-build}
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" "$@" > "$build/configure.log" 2>&1 \
  || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)"
