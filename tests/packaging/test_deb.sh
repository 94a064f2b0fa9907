#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian packages built by scripts/package-deb.sh with dpkg -i
# and use them as an operator would, then purge them:
#  - the maintainer scripts created the system user discd (sysusers.d) and
#    its directories (tmpfiles.d), and enabled discd.service;
#  - systemd-analyze verify passes on the installed unit (its man pages exist);
#  - discd runs as user discd with the installed config (the unit's paths),
#    discctl registers, and a consumer built against the installed -dev
#    package with pkg-config and with find_package(discshm) finds it;
#  - dpkg --purge removes everything but the user.
# Needs root (it installs into the system).
#   test_deb.sh DEB_DIR SOURCE_DIR
set -euo pipefail
debs=${1:?deb dir}
src=${2:?source dir}
fail() {
    echo "FAIL: $*" >&2
    [[ ! -s ${tmp:-/nonexistent}/discd.log ]] || { echo "--- discd's log:" >&2; cat "$tmp/discd.log" >&2; }
    exit 1
}
[[ $(id -u) -eq 0 ]] || fail "needs root (dpkg -i)"
pkgs=(libdiscshm1 libdiscclient1 libdiscshm-dev discd)
tmp=$(mktemp -d /tmp/discshm-debtest.XXXXXX)
name=debtest$$
pid=
# The package's tmpfiles.d gives these directories to user discd; other
# discd runs on this machine (as root) may use them too. Leave them as found:
# remember owner and mode (or absence) now, restore after the purge.
dirs=(/run/discd /run/discshm /var/lib/discd /var/cache/discshm)
declare -A was
for d in "${dirs[@]}"; do
    was[$d]=$(stat -c '%u:%g %a' "$d" 2>/dev/null || echo absent)
done
cleanup() {
    [[ -z $pid ]] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    dpkg --purge "${pkgs[@]}" >/dev/null 2>&1 || true
    rm -rf "$tmp"
    rm -f "/run/discd/$name.sock" "/var/lib/discd/$name.state" "/var/cache/discshm/$name.cache"
    rm -f "/dev/shm/$name" "/dev/shm/$name".* "/run/discshm/$name" "/run/discshm/$name".*
    for d in "${dirs[@]}"; do
        if [[ ${was[$d]} == absent ]]; then
            rmdir "$d" 2>/dev/null || true
        elif [[ -d $d ]]; then
            chown "${was[$d]% *}" "$d"
            chmod "${was[$d]#* }" "$d"
        fi
    done
}
trap cleanup EXIT

files=()
for p in "${pkgs[@]}"; do
    f=$(ls "$debs/${p}_"*.deb 2>/dev/null | head -n1)
    [[ -n $f ]] || fail "no ${p}_*.deb in $debs"
    files+=("$f")
done
dpkg -i "${files[@]}" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i"; }
for p in "${pkgs[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$p") == "install ok installed" ]] || fail "$p not installed"
done
version=$(dpkg-query -W -f='${Version}' discd)
[[ $(/usr/sbin/discd --version) == "discd ${version%%-*}" ]] || fail "discd --version vs package $version"
echo "ok: dpkg -i ${pkgs[*]} ($version)"

# Maintainer scripts: user, directories, enabled unit.
getent passwd discd >/dev/null || fail "no system user discd (sysusers.d)"
for d in "${dirs[@]}"; do
    [[ -d $d && $(stat -c %U "$d") == discd ]] || fail "$d missing or not owned by discd (tmpfiles.d)"
done
[[ -L /etc/systemd/system/multi-user.target.wants/discd.service ]] || fail "discd.service not enabled"
systemd-analyze verify /lib/systemd/system/discd.service || fail "systemd-analyze verify (installed)"
for page in discd.8 discd.conf.5 discctl.1 libdiscshm.3; do
    man -w "${page%.*}" >/dev/null 2>&1 || man -w "${page##*.}" "${page%.*}" >/dev/null || fail "man page $page not installed"
done
dpkg -L discd | grep -qx /etc/discd/discd.conf || fail "discd.conf not in the package"
grep -qx /etc/discd/discd.conf /var/lib/dpkg/info/discd.conffiles || fail "discd.conf is not a conffile"
echo "ok: user, directories, enabled unit, verify, man pages, conffile"

# discd as the unit runs it (user discd, installed config), on a name of our own.
setpriv --reuid=discd --regid=discd --clear-groups /usr/sbin/discd --config /etc/discd/discd.conf \
    --check-config >/dev/null || fail "installed config does not pass --check-config as discd"
sock=/run/discd/$name.sock
setpriv --reuid=discd --regid=discd --clear-groups /usr/sbin/discd --config /etc/discd/discd.conf \
    --name "$name" --socket "$sock" --cache-file "/var/cache/discshm/$name.cache" \
    --services-dir "$tmp/services.d" >"$tmp/discd.log" 2>&1 &
pid=$!
for ((i = 0; i < 300; i++)); do
    discctl --name "$name" --socket "$sock" status >/dev/null 2>&1 && break
    sleep 0.1
done
# The segment: in the registry directory (discd --dir) or, before that, /dev/shm.
seg=$(ls -d "/run/discshm/$name" "/dev/shm/$name" 2>/dev/null | head -n1 || true)
[[ -n $seg && $(stat -c %U "$seg") == discd ]] || fail "no segment $name owned by discd"
discctl --name "$name" --socket "$sock" register --service debsvc --address 10.9.8.7:6543 >/dev/null ||
    fail "discctl register"

# Consumers built against the installed -dev package.
cc -std=c11 -Wall -Werror -o "$tmp/consumer-pc" "$src/tests/packaging/consumer/consumer.c" \
    $(pkg-config --cflags --libs discshm discclient) || fail "build with pkg-config"
cmake -S "$src/tests/packaging/consumer" -B "$tmp/cb" -G Ninja >"$tmp/cmake.log" 2>&1 &&
    ninja -C "$tmp/cb" >>"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; fail "build with find_package"; }
for c in "$tmp/consumer-pc" "$tmp/cb/consumer"; do
    deps=$(ldd "$c")
    grep -qE "libdiscshm.so.1 => (/usr)?/lib/" <<<"$deps" || fail "$c does not use the packaged libdiscshm: $deps"
done
out=
for ((i = 0; i < 200; i++)); do
    out=$("$tmp/consumer-pc" "$name" debsvc 2>&1) && break
    sleep 0.1
done
[[ $out == 10.9.8.7:6543 ]] || fail "consumer (pkg-config) printed: $out"
out=$("$tmp/cb/consumer" "$name" debsvc "$sock") || fail "consumer (find_package): $out"
grep -q '^self-visible ' <<<"$out" || fail "consumer (find_package) did not see itself: $out"
[[ $(stat -c '%U %a' "/var/lib/discd/$name.state") == "discd 600" ]] ||
    fail "no state file /var/lib/discd/$name.state of user discd, mode 0600"
kill -TERM "$pid"
wait "$pid" || fail "discd exited with $?"
pid=
echo "ok: discd as user discd with the installed config; consumers from the -dev package find its instances"

dpkg --purge "${pkgs[@]}" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg --purge"; }
for f in /usr/sbin/discd /usr/bin/discctl /usr/include/discshm.h /lib/systemd/system/discd.service \
    /etc/discd/discd.conf /etc/systemd/system/multi-user.target.wants/discd.service; do
    [[ ! -e $f ]] || fail "$f left after purge"
done
echo "ok: dpkg --purge"
