#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the libFuzzer harnesses (clang, -fsanitize=fuzzer,address,undefined)
# and run each for SECONDS (default 60), one after the other.
#
#   scripts/fuzz.sh [SECONDS] [HARNESS...]
#
# HARNESS: segment, control, instance_doc, cache_load, zk_snapshot, formats (default: all).
# Each starts from its checked-in seeds (fuzz/corpus/<harness>) plus what
# earlier runs found (build-fuzz/corpus/<harness>, not checked in). A crash,
# sanitizer report, leak or timeout (-timeout=10 s per input) fails the
# script and leaves the input as build-fuzz/artifacts/<harness>/crash-*;
# replay it with build-fuzz/fuzz/fuzz_<harness> FILE. Each run's last stats
# line (executions, coverage) is printed.
# Environment: FUZZ_BUILD (build dir, default build-fuzz), FUZZ_JOBS (runs
# in parallel, default 1), FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
secs=${1:-60}
shift || true
harnesses=("$@")
[[ ${#harnesses[@]} -gt 0 ]] || harnesses=(segment control instance_doc cache_load zk_snapshot formats)
build=${FUZZ_BUILD:-build-fuzz}
[[ "$build" == /* ]] || build="$root/$build"

targets=()
for h in "${harnesses[@]}"; do
    [[ -d "$root/fuzz/corpus/$h" ]] || { echo "fuzz.sh: unknown harness '$h'" >&2; exit 2; }
    targets+=("fuzz_$h")
done
CC=${CC:-clang} "$root/scripts/build.sh" "$build" -DDISC_FUZZ=ON -- "${targets[@]}" >/dev/null

declare -A max_len=([segment]=65536 [cache_load]=65536 [control]=8192 [instance_doc]=8192 [zk_snapshot]=65536 [formats]=8192)
run_one() {
    # (rc is set with `|| rc=$?`: under set -e a bare failing command would
    # end this background subshell before it could report the failure)
    local h=$1 work="$build/corpus/$1" art="$build/artifacts/$1/" log="$build/fuzz-$1.log" rc=0
    mkdir -p "$work" "$art"
    # LSan needs ptrace-free operation; quiet discd's logs; no core files.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$build/fuzz/fuzz_$h" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len="${max_len[$h]}" -artifact_prefix="$art" -print_final_stats=1 \
        ${FUZZ_ARGS:-} "$work" "$root/fuzz/corpus/$h" >"$log" 2>&1 || rc=$?
    local execs
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
    local cov
    cov=$(grep -E '#[0-9]+.*cov:' "$log" | tail -1 | sed -E 's/.*cov: ([0-9]+).*/\1/' || true)
    if [[ $rc -eq 0 ]]; then
        echo "fuzz.sh: $h: ok, ${execs:-?} executions in ${secs}s, coverage ${cov:-?} edges"
    else
        echo "fuzz.sh: $h: FAILED (exit $rc) after ${execs:-?} executions; see $log" >&2
        grep -E 'ERROR|SUMMARY|artifact' "$log" | head -5 >&2 || true
    fi
    return $rc
}

failed=0
jobs=${FUZZ_JOBS:-1}
pids=()
names=()
for h in "${harnesses[@]}"; do
    run_one "$h" &
    pids+=($!)
    names+=("$h")
    if [[ ${#pids[@]} -ge $jobs ]]; then
        wait "${pids[0]}" || failed=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do
    wait "$p" || failed=1
done
exit $failed
