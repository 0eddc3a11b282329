#!/usr/bin/env bash
# The README's test command: install, build with -Werror under AddressSanitizer + UBSan (into
# ${BUILD_DIR:-build-test}, beside the main command's Release build/), run the whole GoogleTest
# suite with ctest. DSQ_TEST_SANITIZE="" builds without sanitizers (faster, for a quick local run).
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build-test}
sanitize=${DSQ_TEST_SANITIZE-address,undefined}
# The benchmarks are not run by the suite (the main command's Release build compiles them);
# leaving them out of the sanitized build saves CI about two minutes.
bash scripts/build.sh -DDSQ_WERROR=ON -DDSQ_SANITIZE="$sanitize" -DDSQ_BUILD_BENCH=OFF
# Leaks are errors; UBSan prints where. MPI ranks run without leak detection (tests/tools/cli_mpi_test.cpp).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" --timeout 900
