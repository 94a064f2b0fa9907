#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Configure (CMake + Ninja) and build discshm.
#
#   scripts/build.sh [BUILD_DIR] [-DVAR=VALUE ...] [-- NINJA_TARGET ...]
#
# BUILD_DIR defaults to build/; a relative path is taken relative to the
# repository root. Extra -D flags go to cmake (they stick in the cache, as
# usual with CMake). The build type is RelWithDebInfo (-O2 -g) unless
# -DCMAKE_BUILD_TYPE=... is given. Tests, benchmarks and examples are built
# (-DDISC_BUILD_TESTS=ON etc.) unless a -D flag for them says otherwise.
# JOBS=n limits ninja's parallelism.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

source "$root/scripts/build-args.sh"
parse_build_args build.sh targets "$@"
targets=("${rest[@]}")

# A build dir configured with another generator cannot be reused by -G Ninja.
cache="$build_dir/CMakeCache.txt"
if [[ -f "$cache" ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$cache"; then
    echo "build.sh: $build_dir was configured with another generator; remove it first" >&2
    exit 2
fi

build_type=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
for f in "${cmake_flags[@]}"; do
    [[ "$f" == -DCMAKE_BUILD_TYPE=* ]] && build_type=()
done
# A developer build has everything: tests, benchmarks and examples are off by
# default in CMakeLists.txt (a packager's build) and on here, unless given.
dev_parts=()
for opt in DISC_BUILD_TESTS DISC_BUILD_BENCHMARKS DISC_BUILD_EXAMPLES; do
    given=0
    for f in "${cmake_flags[@]}"; do
        [[ "$f" == "-D$opt="* || "$f" == "-D$opt:"* ]] && given=1
    done
    [[ $given -eq 1 ]] || dev_parts+=("-D$opt=ON")
done

echo "build.sh: configuring $build_dir ${cmake_flags[*]}"
cmake -S "$root" -B "$build_dir" -G Ninja "${build_type[@]}" "${dev_parts[@]}" "${cmake_flags[@]}" >/dev/null
ninja_args=(-C "$build_dir")
[[ -n "${JOBS:-}" ]] && ninja_args+=(-j "$JOBS")
echo "build.sh: building ${targets[*]:-all} in $build_dir"
ninja "${ninja_args[@]}" "${targets[@]}"
