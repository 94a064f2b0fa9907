#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# cmake --install into a temporary prefix, check what it holds (files,
# sonames, exported symbols, versions, systemd unit), build a tiny consumer
# out of tree once with pkg-config and once with find_package(discshm), and
# run both against a live discd from that prefix: an instance registered with
# the installed discctl is found by the consumers.
#   test_install.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d /tmp/discshm-install.XXXXXX)
# a private registry directory (readers trust it: ours, in a 0700 directory)
export DISCSHM_DIR=$tmp/reg
mkdir -m 0755 "$DISCSHM_DIR"
# On failure, show discd's log too.
fail() {
    echo "FAIL: $*" >&2
    [[ ! -s $tmp/discd.log ]] || { echo "--- discd's log:" >&2; cat "$tmp/discd.log" >&2; }
    exit 1
}
name=pkgtest$$
discd_pid=
cleanup() {
    if [[ -n $discd_pid ]]; then
        kill "$discd_pid" 2>/dev/null || true
        wait "$discd_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp" # the registry directory with it
}
trap cleanup EXIT

p=$tmp/usr
cmake --install "$build" --prefix "$p" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
libdir=$(cache_value CMAKE_INSTALL_LIBDIR)

# 1. Everything a packager expects, where it is expected.
for f in include/discshm.h include/discclient.h "$libdir/libdiscshm.so" "$libdir/libdiscclient.so" \
    "$libdir/libdiscshm.a" "$libdir/libdiscclient.a" \
    "$libdir/pkgconfig/discshm.pc" "$libdir/pkgconfig/discclient.pc" \
    "$libdir/cmake/discshm/discshmConfig.cmake" "$libdir/cmake/discshm/discshmConfigVersion.cmake" \
    sbin/discd bin/discctl share/man/man8/discd.8 share/man/man1/discctl.1 \
    share/man/man5/discd.conf.5 share/man/man3/libdiscshm.3 lib/systemd/system/discd.service \
    lib/tmpfiles.d/discd.conf lib/sysusers.d/discd.conf etc/discd/discd.conf \
    share/bash-completion/completions/discctl; do
    [[ -e "$p/$f" ]] || fail "not installed: $f"
done
[[ ! -e "$p/bin/discd" ]] || fail "discd installed in bin/ (belongs in sbin/)"
echo "ok: installed files"

# 2. Shared libraries: file libX.so.MAJOR.MINOR.PATCH, soname libX.so.MAJOR,
#    exactly the symbols of the version script, each declared in the header.
for lib in discshm discclient; do
    real=$(readlink -f "$p/$libdir/lib$lib.so")
    soname=$(readelf -d "$real" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    major=${soname#lib$lib.so.}
    [[ $(basename "$real") =~ ^lib$lib\.so\.$major\.[0-9]+\.[0-9]+$ ]] ||
        fail "lib$lib: file $(basename "$real") does not match soname $soname"
    [[ -L "$p/$libdir/$soname" && $(readlink -f "$p/$libdir/$soname") == "$real" ]] ||
        fail "lib$lib: no $soname link to $(basename "$real")"
    map=$src/lib$lib/lib$lib.map
    header=$src/include/$([[ $lib == discshm ]] && echo discshm.h || echo discclient.h)
    nm -D --defined-only "$real" | awk '$2 ~ /^[TDBRW]$/ { sub(/@.*/, "", $3); print $3 }' |
        sort -u >"$tmp/exported"
    grep -oE '^ +[a-z_0-9]+;' "$map" | tr -d ' ;' | sort -u >"$tmp/listed"
    if ! diff -u "$tmp/listed" "$tmp/exported"; then
        fail "lib$lib exports differ from $map (- listed only, + exported only)"
    fi
    while read -r sym; do
        grep -qE "\\b$sym\\(" "$header" || fail "$sym is exported but not declared in $header"
    done <"$tmp/exported"
    # Declarations only: comments may name functions too.
    sed -e 's#/\*.*\*/##g' -e '/^[[:space:]]*\/\?\*/d' "$header" |
        grep -oE '\bdisc_[a-z_0-9]+\(' | tr -d '(' | sort -u >"$tmp/declared"
    missing=$(comm -23 "$tmp/declared" "$tmp/exported")
    [[ -z $missing ]] || fail "declared in $header but not exported (add to $map): $missing"
    echo "ok: lib$lib: $(basename "$real"), soname $soname, $(wc -l <"$tmp/exported") symbols"
done

# 3. One version everywhere: pkg-config, discd --version, discctl -V / --version.
export PKG_CONFIG_PATH=$p/$libdir/pkgconfig
version=$(pkg-config --modversion discshm)
[[ $(pkg-config --modversion discclient) == "$version" ]] || fail "discclient.pc version"
[[ $("$p/sbin/discd" --version) == "discd $version" ]] || fail "discd --version: $("$p/sbin/discd" --version)"
[[ $("$p/bin/discctl" -V) == "discctl $version" ]] || fail "discctl -V"
[[ $("$p/bin/discctl" --version) == "discctl $version" ]] || fail "discctl --version"
echo "ok: version $version"

# 4. The consumer, built out of tree twice.
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/consumer-pc" "$src/tests/packaging/consumer/consumer.c" \
    $(pkg-config --cflags --libs discshm discclient) -Wl,-rpath,"$p/$libdir"
cmake -S "$src/tests/packaging/consumer" -B "$tmp/cbuild" -G Ninja -DCMAKE_PREFIX_PATH="$p" \
    -DCMAKE_C_FLAGS="-Wall -Werror" >"$tmp/cmake.log" || { cat "$tmp/cmake.log"; fail "find_package consumer: configure"; }
ninja -C "$tmp/cbuild" >"$tmp/ninja.log" || { cat "$tmp/ninja.log"; fail "find_package consumer: build"; }
for c in "$tmp/consumer-pc" "$tmp/cbuild/consumer"; do
    deps=$(ldd "$c")
    for lib in discshm discclient; do
        grep -q "lib$lib.so.* => $p/" <<<"$deps" || fail "$c does not load lib$lib from the install prefix: $deps"
    done
done
echo "ok: consumers built with pkg-config and find_package"

# 5. Against a live discd from the prefix.
sock=$tmp/discd.sock
"$p/sbin/discd" --name "$name" --socket "$sock" --state-dir "$tmp/state" --services-dir "$tmp/services.d" \
    >"$tmp/discd.log" 2>&1 &
discd_pid=$!
# Waits below are generous (the machine may be loaded); they end as soon as
# the condition holds.
for ((i = 0; i < 300; i++)); do
    "$p/bin/discctl" --name "$name" --socket "$sock" status >/dev/null 2>&1 && break
    sleep 0.1
done
ctl=("$p/bin/discctl" --name "$name" --socket "$sock")
"${ctl[@]}" register --service pkgsvc --address 10.1.2.3:4567 >/dev/null || fail "discctl register"
# discd publishes asynchronously (within --publish-coalesce ms).
out=
for ((i = 0; i < 200; i++)); do
    out=$("$tmp/consumer-pc" "$name" pkgsvc 2>&1) && break
    sleep 0.1
done
[[ $out == "10.1.2.3:4567" ]] || fail "consumer-pc printed '$out'"
out=$("$tmp/cbuild/consumer" "$name" pkgsvc "$sock") || fail "consumer (find_package)"
[[ $(grep -c '^self-visible ' <<<"$out") == 1 ]] || fail "consumer's own registration not seen: $out"
[[ $(grep -c '^10.1.2.3:4567$' <<<"$out") == 1 && $(grep -c '^127.0.0.1:1$' <<<"$out") == 1 ]] ||
    fail "consumer (find_package) printed: $out"
# Its session ended when it exited: discd removes the instance.
for ((i = 0; i < 200; i++)); do
    [[ $("$tmp/consumer-pc" "$name" pkgsvc) == "10.1.2.3:4567" ]] && break
    sleep 0.1
done
[[ $("$tmp/consumer-pc" "$name" pkgsvc) == "10.1.2.3:4567" ]] || fail "session instance not removed"
kill -TERM "$discd_pid"
wait "$discd_pid" || fail "discd exited with $?"
discd_pid=
echo "ok: consumers against a live discd"

# 6. The systemd unit as installed (its paths moved into the prefix) passes
#    systemd-analyze verify; report its security exposure.
unit=$tmp/discd.service
sed "s|$(cache_value CMAKE_INSTALL_PREFIX)/|$p/|g" "$p/lib/systemd/system/discd.service" >"$unit"
grep -q "^ExecStart=$p/sbin/discd " "$unit" || fail "unit's ExecStart is not the installed discd"
systemd-analyze verify --man=no "$unit" || fail "systemd-analyze verify discd.service"
exposure=$(systemd-analyze security --offline=true "$unit" 2>/dev/null |
    sed -n 's/.*Overall exposure level for discd.service: \([0-9.]*\).*/\1/p')
[[ -n $exposure ]] || fail "systemd-analyze security gave no exposure level"
echo "ok: systemd-analyze verify; security exposure $exposure"
# The example config is valid as installed.
"$p/sbin/discd" --config "$p/etc/discd/discd.conf" --check-config >/dev/null || fail "installed discd.conf"
echo "ok: installed discd.conf passes --check-config"
