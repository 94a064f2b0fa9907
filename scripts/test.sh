#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Set up, build with -Werror, and run the whole test suite with ctest.
#
#   scripts/test.sh [BUILD_DIR] [-DVAR=VALUE ...] [-- CTEST_ARGS ...]
#
# BUILD_DIR defaults to build/ (relative paths are relative to the repository
# root). -D flags go to cmake, e.g.
#   scripts/test.sh build-asan -DDISC_SANITIZE=address,undefined
#   scripts/test.sh build-tsan -DDISC_SANITIZE=thread -- -L 'unit|daemon'
# CTEST_ARGS are added to ctest's (e.g. -L label, -R regex, -E regex).
# TEST_JOBS=n sets ctest's parallelism (default 2).
#
# Sanitizer builds: unless the caller sets them, ASAN_OPTIONS, UBSAN_OPTIONS
# and TSAN_OPTIONS make the first report fatal and write every report, also
# from child processes whose output the tests redirect (discd), into
# BUILD_DIR/sanitizer-logs/. Any report there fails the run and is printed.
# Exit status: non-zero if the build, any test or any sanitizer report failed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

source "$root/scripts/build-args.sh"
parse_build_args test.sh "ctest args" "$@"
ctest_extra=("${rest[@]}")

"$root/scripts/setup.sh"
"$root/scripts/build.sh" "$build_dir" -DDISC_WERROR=ON "${cmake_flags[@]}"

sanitize=$(sed -n 's/^DISC_SANITIZE:STRING=//p' "$build_dir/CMakeCache.txt")
san_logs="$build_dir/sanitizer-logs"
rm -rf "$san_logs"
if [[ -n "$sanitize" ]]; then
    mkdir -p "$san_logs"
    # halt_on_error: Criterion has already recorded a test as passed when its
    # worker exits, so a report made only at exit (TSan's exit code 66, LSan
    # leaks) would not fail it; the log files below catch those.
    common="halt_on_error=1:abort_on_error=0:print_stacktrace=1"
    export ASAN_OPTIONS="${ASAN_OPTIONS:-$common:detect_leaks=1:log_path=$san_logs/asan}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-$common:log_path=$san_logs/ubsan}"
    export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$root/tests/sanitizer/lsan.supp:print_suppressions=0}"
    tsan_default="$common:second_deadlock_stack=1:log_path=$san_logs/tsan"
    if [[ -f "$root/tests/sanitizer/tsan.supp" ]]; then
        tsan_default+=":suppressions=$root/tests/sanitizer/tsan.supp"
    fi
    export TSAN_OPTIONS="${TSAN_OPTIONS:-$tsan_default}"
    echo "test.sh: sanitizers: $sanitize (reports go to $san_logs)"
fi

# Sanitizer runtimes of this toolchain (GCC 12 / LLVM 14) need executables
# loaded within 2^40 bytes of their default base: with more ASLR entropy than
# vm.mmap_rnd_bits=28 (newer distribution kernels set 32) TSan dies with
# "unexpected memory mapping". Run such a suite with ASLR off for the tests
# (DISC_NO_ASLR=1 forces that).
run_prefix=()
rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)
if [[ "${DISC_NO_ASLR:-0}" == 1 || (-n "$sanitize" && "$rnd_bits" -gt 28) ]]; then
    run_prefix=(setarch "$(uname -m)" -R)
    echo "test.sh: vm.mmap_rnd_bits=$rnd_bits: running the tests with ASLR disabled"
fi

# Tests labelled `heavy` (Java peers, large scales) run in the plain build
# only: under a sanitizer they would cost CI minutes for code the plain run
# already covers (DISC_TEST_HEAVY=1 runs them anyway).
heavy_filter=()
if [[ -n "$sanitize" && "${DISC_TEST_HEAVY:-0}" != 1 ]]; then
    heavy_filter=(-LE heavy)
    echo "test.sh: sanitizer build: leaving out tests labelled heavy"
fi

rc=0
"${run_prefix[@]}" ctest --test-dir "$build_dir" --output-on-failure --no-tests=error \
    -j "${TEST_JOBS:-2}" "${heavy_filter[@]}" "${ctest_extra[@]}" || rc=$?

if [[ -n "$sanitize" ]] && compgen -G "$san_logs/*" >/dev/null; then
    echo "test.sh: sanitizer reports found:" >&2
    for f in "$san_logs"/*; do
        echo "===== $f" >&2
        head -n 150 "$f" >&2
    done
    rc=1
fi
if [[ $rc -ne 0 ]]; then
    echo "test.sh: FAILED ($build_dir)" >&2
else
    echo "test.sh: all tests passed ($build_dir)"
fi
exit "$rc"
