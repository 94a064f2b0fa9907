#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Format C sources with clang-format and the repository's .clang-format.
#
#   scripts/format.sh [--check] [FILE ...]
#
# Without FILEs: every *.c and *.h file git knows about or would add (ignored
# files such as build dirs are skipped). --check changes nothing and exits
# non-zero if any file is not formatted.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

check=0
if [[ "${1:-}" == --check ]]; then
    check=1
    shift
fi

if ! command -v clang-format >/dev/null 2>&1; then
    echo "format.sh: clang-format not found; run scripts/setup.sh" >&2
    exit 1
fi

files=("$@")
if [[ ${#files[@]} -eq 0 ]]; then
    mapfile -t files < <(git -C "$root" ls-files --cached --others --exclude-standard \
        -- '*.c' '*.h' | sed "s|^|$root/|")
fi
if [[ ${#files[@]} -eq 0 ]]; then
    echo "format.sh: no C files"
    exit 0
fi

if [[ $check -eq 1 ]]; then
    clang-format --style=file --dry-run -Werror "${files[@]}"
    echo "format.sh: ${#files[@]} files are formatted"
else
    clang-format --style=file -i "${files[@]}"
    echo "format.sh: formatted ${#files[@]} files"
fi
