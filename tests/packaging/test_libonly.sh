#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The reader library alone builds and installs with a C compiler and libc:
# with every optional part off, configuring must not look for any other
# package (pkg-config is made unusable), and the install holds libdiscshm
# only.
#   test_libonly.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d /tmp/discshm-libonly.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

cmake -S "$src" -B "$tmp/b" -G Ninja -DDISC_BUILD_CLIENT=OFF -DDISC_BUILD_DAEMON=OFF \
    -DDISC_BUILD_TOOLS=OFF -DDISC_MANPAGES=OFF -DPKG_CONFIG_EXECUTABLE=/nonexistent/pkg-config \
    -DCMAKE_INSTALL_PREFIX="$tmp/i" >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "configure (library only)"; }
ninja -C "$tmp/b" install >>"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "build (library only)"; }
(cd "$tmp/i" && find . \( -type f -o -type l \) | sort) >"$tmp/files"
grep -vE '^\./(include/discshm\.h|lib[^/]*/(libdiscshm\.(a|so(\.[0-9.]+)?)|pkgconfig/discshm\.pc|cmake/discshm/discshm[A-Za-z-]*\.cmake))$' \
    "$tmp/files" >"$tmp/other" || true
[[ ! -s $tmp/other ]] || fail "library-only install has more: $(cat "$tmp/other")"
readelf -d "$tmp/i"/lib*/libdiscshm.so | grep NEEDED >"$tmp/needed"
[[ $(grep -cv 'libc\.so' "$tmp/needed") == 0 ]] || fail "libdiscshm needs more than libc: $(cat "$tmp/needed")"
echo "ok: library-only build: $(wc -l <"$tmp/files") files installed, libdiscshm needs only libc"
