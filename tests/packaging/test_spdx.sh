#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every source file git knows about (C, Go, shell, Python, CMake) names its
# license with an SPDX-License-Identifier line near its top (LICENSE: MIT).
#   test_spdx.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"
cd "$src"
missing=()
n=0
while IFS= read -r -d '' f; do
    [[ -f $f ]] || continue
    case $f in
    */corpus/* | */testdata/*) continue ;;
    *.c | *.h | *.go | *.sh | *.py | *.cmake | CMakeLists.txt | */CMakeLists.txt | .ci/run) ;;
    *) continue ;;
    esac
    n=$((n + 1))
    head -c 400 "$f" | grep -q 'SPDX-License-Identifier: MIT' || missing+=("$f")
done < <(git ls-files -z 2>/dev/null)
[[ $n -gt 50 ]] || fail "found only $n source files (is $src a git checkout?)"
[[ ${#missing[@]} -eq 0 ]] || fail "no 'SPDX-License-Identifier: MIT' line in: ${missing[*]}"
echo "ok: $n source files carry SPDX-License-Identifier: MIT"
