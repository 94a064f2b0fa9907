#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the discd of the last commit before the ZooKeeper aggregate snapshot
# layout (the parent of the commit that added daemon/zk/zk_snapshot.c), for
# the mixed-version region test (tests/zk_daemon/test_mixed_version.c; ctest
# runs this as its fixture `mixed_version_old_discd`).
#
#   scripts/build-old-discd.sh OUT_DIR [SEGDUMP_SOURCE]
#
# Takes the tree from this checkout's git history (`git archive`, nothing in
# the checkout changes), builds only its `discd` and `discshm_static`
# targets (the old discd publishes the old segment layout, which only the
# old libdiscshm reads), and, if SEGDUMP_SOURCE is given, links that program
# (tests/zk_daemon/zkd_segdump.c) against the old libdiscshm. Results go to
# OUT_DIR/<commit>/{discd,zkd_segdump}, cached by commit id; OUT_DIR/current
# is a symbolic link to the last one built. The old tree is built as it
# is, never patched: with its own CMake defaults (-O2, no -Werror: its
# warnings cannot be fixed any more) and without debug info.
#
# When the checkout has no history at all (a source tarball, a shallow
# clone) it writes the reason to OUT_DIR/unavailable, exits 77 (ctest: the
# fixture is reported skipped) and test_mixed_version reports itself
# skipped with that reason: such a tree cannot hold the old discd. With
# history, it fails, saying why, when the commit found is not the one
# meant or does not build. JOBS=n limits ninja's parallelism (default 2).
set -euo pipefail

die() {
    echo "build-old-discd: $*" >&2
    exit 1
}

[[ $# -ge 1 && $# -le 2 ]] || die "usage: build-old-discd.sh OUT_DIR [SEGDUMP_SOURCE]"
out=$1
segdump_src=${2:-}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
marker=daemon/zk/zk_snapshot.c

mkdir -p "$out"
rm -f "$out/unavailable"
unavailable() {
    echo "build-old-discd: SKIPPED: $*" >&2
    echo "$*" >"$out/unavailable"
    rm -f "$out/current"
    exit 77
}
git -C "$root" rev-parse --git-dir >/dev/null 2>&1 ||
    unavailable "$root is not a git checkout: the mixed-version test builds the discd from before $marker out of the history; run it in a clone of the repository"
if [[ $(git -C "$root" rev-parse --is-shallow-repository) == true ]]; then
    unavailable "$root is a shallow clone (git clone --depth): the history that holds the discd from before $marker is missing; run 'git fetch --unshallow' (or clone without --depth)"
fi
# The oldest commit that adds the file (it was added once; a later re-add
# would not move the layout change).
added=$(git -C "$root" log --diff-filter=A --format=%H -- "$marker" | tail -n 1)
[[ -n "$added" ]] || die "no commit in the history of HEAD adds $marker"
old=$(git -C "$root" rev-parse --verify --quiet "$added^") ||
    die "commit $added (adds $marker) has no parent in this clone"
if git -C "$root" cat-file -e "$old:$marker" 2>/dev/null; then
    die "commit $old (parent of $added) already has $marker: not the tree before the snapshot layout"
fi
git -C "$root" cat-file -e "$old:daemon/zk/zk_sync.c" 2>/dev/null ||
    die "commit $old has no daemon/zk/zk_sync.c: not a discd tree with ZooKeeper sync"

dir=$out/$old
mkdir -p "$out"
if [[ -x "$dir/discd" && -f "$dir/built" ]]; then
    echo "build-old-discd: $old: discd cached in $dir"
else
    echo "build-old-discd: building discd of $old ($(git -C "$root" log -1 --format='%cs %s' "$old" | cut -c1-100)) in $dir"
    rm -rf "$dir"
    mkdir -p "$dir/src"
    git -C "$root" archive --format=tar "$old" | tar -x -C "$dir/src"
    # Only what discd needs: no client library, tools, tests or man pages.
    cmake -S "$dir/src" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -DNDEBUG" -DDISC_WERROR=OFF \
        -DDISC_BUILD_CLIENT=OFF -DDISC_BUILD_TOOLS=OFF -DDISC_BUILD_TESTS=OFF \
        -DDISC_BUILD_BENCHMARKS=OFF -DDISC_BUILD_EXAMPLES=OFF -DDISC_MANPAGES=OFF \
        -DDISC_SANITIZE= >"$dir/cmake.log" 2>&1 ||
        { cat "$dir/cmake.log" >&2; die "configuring the tree of $old failed (log above)"; }
    ninja -C "$dir/build" -j "${JOBS:-2}" discd discshm_static >"$dir/ninja.log" 2>&1 ||
        { tail -n 60 "$dir/ninja.log" >&2; die "building discd of $old failed (log above)"; }
    cp "$dir/build/daemon/discd" "$dir/discd"
    echo "$old" >"$dir/built"
fi
if [[ -n "$segdump_src" ]]; then
    # Rebuilt every time (a fraction of a second): the source belongs to
    # the current tree and may have changed since the cache was made.
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -O1 -Wall -Wextra -Werror -I "$dir/src/include" \
        -o "$dir/zkd_segdump" "$segdump_src" "$dir/build/libdiscshm/libdiscshm.a" ||
        die "linking $segdump_src against the libdiscshm of $old failed"
fi
ln -sfn "$old" "$out/current"
echo "build-old-discd: $out/current -> $old: $("$dir/discd" --version)"
