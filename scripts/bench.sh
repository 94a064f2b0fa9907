#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the benchmarks (Release, in their own build directory), run every
# benchmark in the list below and write benchmarks/RESULTS.md and
# benchmarks/results.json from what they report.
#
#   scripts/bench.sh [--quick] [--out DIR] [--build DIR] [--only REGEX] [--no-build]
#
#   --quick       smoke run: each benchmark with --quick (a few seconds each);
#                 output goes to BUILD/bench-quick/ unless --out is given, so
#                 a quick run never overwrites the committed results
#   --out DIR     where RESULTS.md and results.json go
#                 (default: benchmarks/ for a full run)
#   --build DIR   build directory (default build-bench; relative to the repo)
#   --only REGEX  run only the benchmarks whose id matches (grep -E)
#   --no-build    use the binaries already in the build directory
#
# Each benchmark follows the convention in benchmarks/bench_report.h: it
# takes --quick, --md FILE (its section of RESULTS.md) and --json FILE (its
# rows and targets). Each program's output is kept in BUILD/bench-logs/.
# Exit status: 0 when every benchmark exited 0 and wrote a valid section and
# JSON file; 1 otherwise (the failing ones are named, with their log's tail).
# Numbers never fail a run: a target not met is reported as such.
#
# Adding a benchmark: a benchmarks/<name>.cmake target linked with
# bench_report, and one line in BENCHMARKS below.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# id | program | arguments of a full run | arguments of a --quick run
# (--quick, --md and --json are added by this script). A program ending in
# .py is benchmarks/<program>, run by Debian's python3 against this build.
BENCHMARKS=(
    "lookup|bench_lookup||"
    "pick|bench_pick|--services 1000 --instances 10 --ops 200000|--services 1000 --instances 10"
    "health-tcp|bench_health|--kind tcp --instances 10000 --interval 1000 --seconds 15|--kind tcp"
    "health-ttl|bench_health|--kind ttl --instances 10000 --interval 1000 --seconds 10|--kind ttl"
    "health-http|bench_health|--kind http --instances 1000 --interval 1000 --seconds 10|--kind http"
    "publish|bench_publish||"
    "grow|bench_grow||"
    "zk|bench_zk|-n 1000 -s 10000:100,100000:1000|"
    "zk-prop|bench_zk_prop|-n 1000|"
    "python|bench_python.py||"
    "import|bench_import|-n 10000 -s 1000 -H 100 -r 3|"
)

usage() {
    sed -n '3,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

quick=0
out=
build=build-bench
only=
do_build=1
while [[ $# -gt 0 ]]; do
    case "$1" in
    --quick) quick=1 ;;
    --out)
        [[ $# -ge 2 ]] || usage 2
        out=$2
        shift
        ;;
    --build)
        [[ $# -ge 2 ]] || usage 2
        build=$2
        shift
        ;;
    --only)
        [[ $# -ge 2 ]] || usage 2
        only=$2
        shift
        ;;
    --no-build) do_build=0 ;;
    -h | --help) usage 0 ;;
    *)
        echo "bench.sh: unknown argument '$1'" >&2
        usage 2
        ;;
    esac
    shift
done

[[ "$build" == /* ]] || build="$root/$build"
if [[ -z "$out" ]]; then
    if [[ $quick -eq 1 ]]; then out="$build/bench-quick"; else out="$root/benchmarks"; fi
fi
[[ "$out" == /* ]] || out="$PWD/$out"
logs="$build/bench-logs"
mkdir -p "$out" "$logs"
work=$(mktemp -d "${TMPDIR:-/tmp}/discshm-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

py=/usr/bin/python3
[[ -x "$py" ]] || py=python3

programs=()
selected=()
for entry in "${BENCHMARKS[@]}"; do
    IFS='|' read -r id prog _ _ <<<"$entry"
    if [[ -n "$only" ]] && ! grep -Eq -- "$only" <<<"$id"; then
        continue
    fi
    selected+=("$entry")
    if [[ "$prog" == *.py ]]; then
        prog="discd discctl discshm" # what the Python benchmarks load and run
    fi
    for p in $prog; do
        [[ " ${programs[*]} " == *" $p "* ]] || programs+=("$p")
    done
done
if [[ ${#selected[@]} -eq 0 ]]; then
    echo "bench.sh: no benchmark id matches '$only'" >&2
    exit 2
fi

if [[ $do_build -eq 1 ]]; then
    "$root/scripts/build.sh" "$build" -DCMAKE_BUILD_TYPE=Release -DDISC_BUILD_BENCHMARKS=ON \
        -DDISC_BUILD_TESTS=OFF -DDISC_BUILD_EXAMPLES=OFF -- "${programs[@]}"
fi

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Machine and source facts for the header.
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "commit_subject=$(git -C "$root" log -1 --format=%s 2>/dev/null || true)"
    if [[ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
        echo "dirty=1"
    else
        echo "dirty=0"
    fi
    echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "cores=$(nproc)"
    echo "kernel=$(uname -srm)"
    echo "compiler=$(cc --version | head -1)"
    echo "quick=$quick"
    echo "load_before=$(loadavg)"
} >"$work/machine.env"

timeout_s=900
[[ $quick -eq 1 ]] && timeout_s=120
failed=()
: >"$work/runs.tsv"
for entry in "${selected[@]}"; do
    IFS='|' read -r id prog full_args quick_args <<<"$entry"
    args=$full_args
    [[ $quick -eq 1 ]] && args="$quick_args --quick"
    cmd=("$build/benchmarks/$prog")
    if [[ "$prog" == *.py ]]; then
        cmd=(env "DISC_BUILD_DIR=$build" "DISCSHM_LIBRARY=$build/libdiscshm/libdiscshm.so"
            "$py" "$root/benchmarks/$prog")
    fi
    md="$work/$id.md"
    json="$work/$id.json"
    log="$logs/$id.log"
    echo "==== bench $id: $prog $args"
    before=$(loadavg)
    start=$(date +%s.%N)
    rc=0
    # shellcheck disable=SC2086 # args are word lists on purpose
    (cd "$work" && timeout --kill-after=10 "$timeout_s" "${cmd[@]}" $args --md "$md" --json "$json") \
        >"$log" 2>&1 || rc=$?
    end=$(date +%s.%N)
    after=$(loadavg)
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    status=ok
    if [[ $rc -ne 0 ]]; then
        status="exit $rc"
        [[ $rc -eq 124 || $rc -eq 137 ]] && status="timed out after ${timeout_s}s"
    elif ! "$py" "$root/scripts/bench-report.py" check "$md" "$json" >>"$log" 2>&1; then
        status="invalid output"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$prog" "$args" "$status" "$secs" \
        "$before" "$after" "$log" >>"$work/runs.tsv"
    echo "==== bench $id: $status in ${secs}s"
    if [[ $status != ok ]]; then
        failed+=("$id ($status)")
        tail -n 20 "$log" | sed 's/^/    /'
    fi
done
echo "load_after=$(loadavg)" >>"$work/machine.env"

"$py" "$root/scripts/bench-report.py" assemble "$work" "$out/RESULTS.md" "$out/results.json"
echo "bench.sh: wrote $out/RESULTS.md and $out/results.json"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "bench.sh: FAILED: ${failed[*]} (logs in $logs/)" >&2
    exit 1
fi
