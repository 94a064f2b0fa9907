#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Regenerate the checked-in seed corpora in fuzz/corpus/ from real
# artefacts (images exported by the segment writer, documents discd writes
# to ZooKeeper, the request lines of docs/PROTOCOL.md): see fuzz/gen_seeds.c.
#
#   scripts/fuzz-seeds.sh [BUILD_DIR]     (default build-fuzz; built with clang)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build-fuzz}
[[ "$build" == /* ]] || build="$root/$build"
CC=${CC:-clang} "$root/scripts/build.sh" "$build" -DDISC_FUZZ=ON -- gen_seeds >/dev/null
# fnv-image-*: images as discd wrote them before the word-wise checksum
# (docs/FUZZING.md); gen_seeds cannot make them, so they stay.
mkdir -p "$root/fuzz/corpus"
find "$root/fuzz/corpus" -type f ! -name 'fnv-image-*' -delete
"$build/fuzz/gen_seeds" "$root/fuzz/corpus"
echo "fuzz-seeds.sh: wrote $(find "$root/fuzz/corpus" -type f | wc -l) seeds to fuzz/corpus"
