# SPDX-License-Identifier: MIT
# Shared by the tests/packaging scripts (sourced). They run as ctest tests
# with the build and source directories as arguments.
set -euo pipefail

build=${1:?build dir}
src=${2:?source dir}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# A CMake cache value of the build ("" if unset).
cache_value() {
    sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"
}

# Every long option (--word) a help text mentions, one per line, sorted.
help_flags() {
    grep -oE -- '(^|[ [(,])--[a-z][a-z0-9-]*' | sed 's/^[ [(,]//' | sort -u
}

# A man page rendered as plain text on one long line per paragraph (no hyphenation).
render_man() {
    MANWIDTH=1000 man -l "$1" 2>/dev/null | sed 's/‐/-/g'
}
