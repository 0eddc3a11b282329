#!/usr/bin/env bash
# A long local fuzz campaign: runs each harness until it has executed RUNS inputs in total
# (default 10^7), in slices of SLICE seconds so that an interrupted campaign loses at most one
# slice, and keeps a ledger of what every slice executed. Reports the totals per harness as the
# rows bench/RESULTS.md records (executions, coverage, corpus, findings).
#
#   fuzz/campaign.sh [BUILD_DIR]            (after fuzz/run.sh built the harnesses and the seeds)
#
# Environment: HARNESSES (default: all ten), RUNS [10000000], SLICE [1800], MAX_LEN [131072;
# 16384 for tokenizer] (a long campaign stays on the small seeds of fuzz/tiny_seeds.py, the cut
# tokenizer files and the headers of the real files), NICE [19] (the campaign uses the cycles
# other work leaves), TMPDIR [/dev/shm] (every execution writes its input to a file; tmpfs keeps
# that off the disk).
# Ledger: BUILD_DIR/campaign/<harness>.ledger, one line per slice: date, seconds, executions, cov.
# stats runs in process (DSQ_FUZZ_STATS_DIRECT=1, fuzz/stats_fuzz.cpp says why) under libFuzzer's
# -fork=1 -ignore_crashes=1: a crash inside libhdf5 does not end the campaign. Every crash is then
# replayed through production's isolated reader, where it must end as a one-line error, and its
# stack must start in libhdf5 (allocator and libc frames aside): such an input goes to
# findings/stats/libhdf5/ and counts as contained; any other is a finding. Allocations beyond the
# fuzzer's limit (-ignore_ooms=1) are treated alike; a timeout ends the campaign.
# To stop a campaign, interrupt its harness (`pkill -INT -x fuzz_gguf`): the slice's executions
# go into the ledger and the campaign ends. Do not SIGSTOP a running harness: libFuzzer's
# -timeout is wall-clock time, so a stopped process reports a false timeout.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build-fuzz}
runs=${RUNS:-10000000}
slice=${SLICE:-1800}
export TMPDIR=${TMPDIR:-/dev/shm}
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0:malloc_limit_mb=2048
export UBSAN_OPTIONS=print_stacktrace=1
mkdir -p "$build/campaign"
# With the kernel's autogroup scheduling (sched_autogroup_enabled=1, the default on Debian), nice
# only orders processes within one session: a campaign started from its own session (setsid, a
# second terminal) got an even share of the CPU against the benchmarks beside it. Lowering the
# session's autogroup makes it take idle cycles only.
[[ -w /proc/self/autogroup ]] && echo "${NICE:-19}" > /proc/self/autogroup 2>/dev/null
total() { awk '{ s += $3 } END { print s + 0 }' "$1" 2>/dev/null || echo 0; }
# contained BIN INPUT: INPUT crashes the in-process stats harness (or makes an allocation beyond
# the fuzzer's limit) inside libhdf5, and the production path (the harness's default mode, libhdf5
# in a forked child) reads it cleanly. The first frame of the report's stack that is not the
# allocator, the sanitizer, libFuzzer or libc must be libhdf5's. The input is replayed up to 100
# times in one process: some crash only once libhdf5 has freed and reused blocks of earlier reads.
# The replay's memory limit is above the campaign's: libhdf5 can hold 2 GB before it asks for 16,
# and the report of the oversized allocation must not race the one of the memory in use.
contained() {
  "$1" "$2" > /dev/null 2>&1 || return 1
  local report
  report=$(DSQ_FUZZ_STATS_DIRECT=1 "$1" -runs=100 -malloc_limit_mb=2560 -rss_limit_mb=8192 "$2" 2>&1 |
           sed -n '/ERROR: /,$p')
  # Memory in use beyond the limit has no one culprit frame: not classified, a finding.
  [[ $report == *'out-of-memory (used:'* ]] && return 1
  grep -E '^ +#[0-9]+ 0x' <<< "$report" |
    grep -vE ' in (malloc|calloc|realloc|free|operator (new|delete)|__interceptor_[a-z_]+|mem[a-z]+|str[a-z]+|__mem[a-z_0-9]+|__str[a-z_0-9]+|raise|abort|gsignal|__pthread_kill[a-z_]*|__assert_fail[a-z_]*|__libc_[a-z_]+|__asan[a-zA-Z_:]*|__sanitizer[a-zA-Z_:]*|fuzzer::[a-zA-Z_:]*)[ (]' |
    grep -vE 'sysdeps/|/libc\.so' | head -1 | grep -q '/libhdf5'
}
for h in ${HARNESSES:-dsq gguf safetensors hf_config llama2c tokenizer stats report calib resume}; do
  ledger=$build/campaign/$h.ledger
  touch "$ledger"
  mkdir -p "$build/findings/$h" "$build/work/$h"
  max_len=${MAX_LEN:-131072}
  [[ -z ${MAX_LEN:-} && $h == tokenizer ]] && max_len=16384
  # The environment and flags of stats' in-process mode (above). libhdf5 gets malloc returning
  # NULL for a size read from a corrupt file, as in production; dsq's own allocations use
  # operator new, which still reports and aborts.
  vars=() mode=()
  if [[ $h == stats ]]; then
    vars=(DSQ_FUZZ_STATS_DIRECT=1
          "ASAN_OPTIONS=${ASAN_OPTIONS/allocator_may_return_null=0/allocator_may_return_null=1}")
    mode=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=0)
  fi
  while (( $(total "$ledger") < runs )); do
    left=$((runs - $(total "$ledger")))
    log=$build/campaign/$h.$(date +%s).log
    start=$(date +%s)
    env "${vars[@]}" nice -n "${NICE:-19}" "$build/bin/fuzz_$h" "$build/work/$h" "${mode[@]}" \
      -runs="$left" -max_total_time="$slice" -timeout=20 -rss_limit_mb=2560 -max_len="$max_len" \
      -print_final_stats=1 -artifact_prefix="$build/findings/$h/" > "$log" 2>&1
    rc=$?
    # Stopped by SIGINT: libFuzzer exits 72 ("run interrupted", or under -fork "a child was
    # interrupted"). Not a failure in itself; the slice is counted and the campaign ends.
    interrupted=0
    ((rc == 72)) && grep -qE 'libFuzzer: (run|a child was) interrupted' "$log" && interrupted=1 rc=0
    if [[ $h == stats ]]; then
      # Only contained crashes and allocations: the campaign goes on. Anything else ends it. (A
      # second campaign beside this one may triage the same files: one that vanished midway was
      # moved by the other.)
      mkdir -p "$build/findings/$h/libhdf5"
      bad=0
      for f in "$build/findings/$h"/crash-* "$build/findings/$h"/oom-*; do
        [[ -f $f ]] || continue
        if contained "$build/bin/fuzz_$h" "$f"; then
          mv "$f" "$build/findings/$h/libhdf5/" 2> /dev/null
        elif [[ -f $f ]]; then
          bad=1
        fi
      done
      [[ -n $(find "$build/findings/$h" -maxdepth 1 -type f \( -name 'leak-*' \
        -o -name 'timeout-*' \)) ]] && bad=1
      # (A slice that ran nothing, e.g. a harness that does not start, keeps its exit status.)
      if ((bad)); then
        ((rc)) || rc=1
      elif grep -qE '^#[0-9]+' "$log"; then
        rc=0
      fi
    fi
    # Every harness process keeps its input in $TMPDIR/dsq-fuzz-PID (fuzz_util.h); stats' -fork
    # jobs leave hundreds, in memory on tmpfs: those of processes gone are removed.
    for d in "$TMPDIR"/dsq-fuzz-*; do
      [[ -d $d ]] && ! kill -0 "${d##*-}" 2> /dev/null && rm -rf "$d"
    done
    # Executions of the slice: the final stats, or the last status line of an interrupted run.
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [[ -z $n ]] && n=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
    echo "$(date -u +%FT%TZ) $(( $(date +%s) - start )) ${n:-0} $cov" >> "$ledger"
    if ((rc != 0)); then
      echo "$h: FINDING or failure (exit $rc), see $log" >&2
      grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -5 >&2
      break
    elif ((interrupted)); then
      echo "$h: interrupted (SIGINT); the slice's executions are in the ledger" >&2
      break
    fi
  done
  # Findings: crash-, leak-, timeout- and oom- artifacts (libFuzzer's slow-unit- files are not).
  printf '%-12s %12d executions  %s  findings: %d\n' "$h" "$(total "$ledger")" \
    "$(tail -1 "$ledger" | cut -d' ' -f4-)" \
    "$(find "$build/findings/$h" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)"
  [[ $h == stats ]] && echo "stats: $(find "$build/findings/stats/libhdf5" -type f 2>/dev/null | wc -l) inputs contained (crashes or oversized allocations inside libhdf5, each read cleanly by the isolated reader)"
done
