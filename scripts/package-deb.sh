#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the Debian binary packages from debian/ and check them with lintian.
#
#   scripts/package-deb.sh [--install-test] [OUT_DIR]     (default: out/deb)
#
# The source tree (files git knows about, with local changes) is copied to a
# temporary directory so dpkg-buildpackage's outputs and debian/ build state
# stay out of the repository; then `dpkg-buildpackage -b -us -uc` runs there
# (DEB_BUILD_OPTIONS is passed through, e.g. nocheck), lintian checks the
# result (any error fails; warnings are printed), and the .deb files plus
# the lintian report are copied to OUT_DIR.
# --install-test then installs them with dpkg -i, exercises and purges them
# (tests/packaging/test_deb.sh OUT_DIR; needs root). CI runs
#   DEB_BUILD_OPTIONS="nocheck noautodbgsym" scripts/package-deb.sh --install-test
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
install_test=0
if [[ "${1:-}" == --install-test ]]; then
    install_test=1
    shift
fi
out=${1:-out/deb}
[[ "$out" == /* ]] || out="$root/$out"

tmp=$(mktemp -d /tmp/discshm-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/discshm"
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -xf - -C "$tmp/discshm"

echo "package-deb.sh: dpkg-buildpackage -b -us -uc in $tmp/discshm (DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-})"
if ! (cd "$tmp/discshm" && dpkg-buildpackage -b -us -uc >"$tmp/build.log" 2>&1); then
    tail -n 60 "$tmp/build.log" >&2
    echo "package-deb.sh: dpkg-buildpackage failed (log above)" >&2
    exit 1
fi
changes=$(ls "$tmp"/*.changes)
lintian --fail-on error --display-info "$changes" >"$tmp/lintian.txt" 2>&1 || lintian_rc=$?
mkdir -p "$out"
rm -f "$out"/*.deb
cp "$tmp"/*.deb "$tmp/lintian.txt" "$out/"
echo "package-deb.sh: built $(cd "$out" && ls *.deb | tr '\n' ' ')"
if [[ -s $tmp/lintian.txt ]]; then
    echo "package-deb.sh: lintian:"
    sed 's/^/    /' "$tmp/lintian.txt"
fi
if [[ ${lintian_rc:-0} -ne 0 ]]; then
    echo "package-deb.sh: lintian reported errors" >&2
    exit 1
fi
echo "package-deb.sh: lintian: no errors"
if [[ $install_test -eq 1 ]]; then
    "$root/tests/packaging/test_deb.sh" "$out" "$root"
fi
