# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Sourced by build.sh and test.sh (not run): their shared command line
#   [BUILD_DIR] [-DVAR=VALUE ...] [-- REST ...]
# parse_build_args ME WHAT ARGS... sets build_dir (absolute; default build/,
# relative to the repository root $root), cmake_flags (the -D flags) and
# rest (what follows "--"); anything else is an error naming ME and WHAT
# (what "--" introduces), exit status 2.

parse_build_args() {
    local me=$1 what=$2
    shift 2
    build_dir=build
    if [[ $# -gt 0 && "$1" != -* ]]; then
        build_dir=$1
        shift
    fi
    # shellcheck disable=SC2154 # $root: set by the script that sources this
    [[ "$build_dir" == /* ]] || build_dir="$root/$build_dir"
    cmake_flags=()
    rest=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
        --)
            shift
            rest=("$@")
            break
            ;;
        -D*) cmake_flags+=("$1") ;;
        *)
            echo "$me: unexpected argument '$1' (expected -DVAR=VALUE or -- $what)" >&2
            exit 2
            ;;
        esac
        shift
    done
}
