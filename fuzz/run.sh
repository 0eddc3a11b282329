#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan) and runs each one for SECONDS on seed
# corpora made from ../shared; exits non-zero on the first finding (crash, sanitizer report, hang,
# leak) and prints the executions and coverage of each run.
# Usage: fuzz/run.sh [SECONDS] [BUILD_DIR]   (HARNESSES="dsq gguf" to run a subset; MAX_LEN=131072
# keeps a long campaign on the small seeds; FUZZ_OPT="-O1" compiles faster than the default "-O2 -g",
# which CI takes for its short runs)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
build=${2:-$here/build-fuzz}
cd "$here"
bash scripts/install-deps.sh
bash scripts/apt-install-missing.sh clang libclang-rt-14-dev
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDSQ_FUZZ=ON \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="${FUZZ_OPT:--O2 -g} -DNDEBUG" \
    -DDSQ_SANITIZE=address,undefined -DDSQ_BUILD_TESTS=OFF -DDSQ_BUILD_BENCH=OFF \
    > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
fi
harnesses=${HARNESSES:-dsq gguf safetensors hf_config llama2c tokenizer stats report calib resume}
targets=(--target)
for h in $harnesses; do targets+=("fuzz_$h"); done
cmake --build "$build" -j"$(nproc)" "${targets[@]}" > "$build.build.log" 2>&1 ||
  { tail -50 "$build.build.log"; exit 1; }
corpus=$build/corpus
if [ ! -d "$corpus/dsq" ]; then
  # The corpus is made with the release binary when there is one, else with the test command's
  # sanitized one (slower; what CI has).
  maker=$here/build/bin/dsq
  [ -x "$maker" ] || maker=$here/build-test/bin/dsq
  [ -x "$maker" ] || { bash scripts/build.sh > /dev/null; maker=$here/build/bin/dsq; }
  bash fuzz/make_corpus.sh "$maker" "$corpus"
fi
# The resume-state seeds come from the production writers, through the harness itself.
if [[ " $harnesses " == *" resume "* && ! -d "$corpus/resume" ]]; then
  DSQ_FUZZ_WRITE_SEEDS="$corpus/resume" "$build/bin/fuzz_resume" -runs=0 > /dev/null 2>&1 ||
    { echo "fuzz_resume could not write its seeds"; exit 1; }
fi
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0:malloc_limit_mb=2048
export UBSAN_OPTIONS=print_stacktrace=1
status=0
for h in $harnesses; do
  work=$build/work/$h
  mkdir -p "$work" "$build/findings/$h"
  cp -n "$corpus/$h"/* "$work/" 2>/dev/null || true
  log=$build/fuzz_$h.log
  # Inputs earlier campaigns found (fuzz/regressions/<harness>/) run first, once each.
  if [ -d "fuzz/regressions/$h" ] && ! "$build/bin/fuzz_$h" fuzz/regressions/"$h"/* > "$log" 2>&1; then
    printf '%-12s FAIL on a regression input (see %s)\n' "$h" "$log"
    grep -E "ERROR|SUMMARY|runtime error" "$log" | head -5
    status=1
    continue
  fi
  if "$build/bin/fuzz_$h" "$work" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 \
      -max_len="${MAX_LEN:-1200000}" -print_final_stats=1 -artifact_prefix="$build/findings/$h/" > "$log" 2>&1; then
    printf '%-12s ok   %s\n' "$h" "$(grep -E 'stat::number_of_executed_units|cov:' "$log" | tail -2 | tr '\n' ' ')"
  else
    printf '%-12s FAIL (see %s)\n' "$h" "$log"
    grep -E "ERROR|SUMMARY|escaped|crash|Test unit written" "$log" | head -10
    status=1
  fi
done
exit $status
