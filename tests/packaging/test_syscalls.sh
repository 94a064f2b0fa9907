#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# discd.service restricts system calls (SystemCallFilter=@system-service
# ~@privileged). Run discd under strace through start-up, registrations with
# tcp and http checks, a file-cache write, status, metrics (control op and
# HTTP), a SIGHUP reload and shutdown, and check that every system call it made is in that set (as
# systemd-analyze expands it), so the filter cannot kill it in those paths.
#   test_syscalls.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"
command -v strace >/dev/null || fail "strace is not installed (scripts/setup.sh)"

unit=$build/packaging/discd.service
[[ -f $unit ]] || fail "no $unit"
tmp=$(mktemp -d /tmp/discshm-sys.XXXXXX)
# a private registry directory (readers trust it: ours, in a 0700 directory)
export DISCSHM_DIR=$tmp/reg
mkdir -m 0755 "$DISCSHM_DIR"
name=sysc$$
pid=
spid=
cleanup() {
    [[ -z $pid ]] || kill "$pid" 2>/dev/null || true
    [[ -z $spid ]] || wait "$spid" 2>/dev/null || true
    rm -rf "$tmp" # the registry directory with it
}
trap cleanup EXIT

# The unit's filter lines, expanded.
allow=$(sed -n 's/^SystemCallFilter=\([^~].*\)/\1/p' "$unit")
deny=$(sed -n 's/^SystemCallFilter=~\(.*\)/\1/p' "$unit")
[[ $allow == "@system-service" ]] || fail "unexpected SystemCallFilter= in the unit: $allow"
systemd-analyze syscall-filter >"$tmp/sets" 2>/dev/null
expand() { # names of the calls in the given sets, recursively
    local s
    for s in "$@"; do
        if [[ $s == @* ]]; then
            expand $(awk -v g="$s" '/^@/ { in_g = ($1 == g); next } in_g && /^ +[-@a-z_0-9]+$/ { print $1 }' "$tmp/sets")
        else
            echo "$s"
        fi
    done
}
expand $allow | sort -u >"$tmp/allowed-all"
expand $deny | sort -u >"$tmp/denied"
comm -23 "$tmp/allowed-all" "$tmp/denied" >"$tmp/allowed"
[[ $(wc -l <"$tmp/allowed") -gt 100 ]] || fail "could not expand @system-service"

strace -f -qq -o "$tmp/trace" "$build/daemon/discd" --name "$name" --socket "$tmp/d.sock" \
    --cache-file "$tmp/d.cache" --metrics-listen 127.0.0.1:0 --state-dir "$tmp/state" \
    --services-dir "$tmp/services.d" >"$tmp/log" 2>&1 &
spid=$! # strace; signals go to discd, its child
ctl=("$build/tools/discctl" --name "$name" --socket "$tmp/d.sock")
for ((i = 0; i < 100; i++)); do
    "${ctl[@]}" status >/dev/null 2>&1 && break
    sleep 0.1
done
pid=$(ps --ppid "$spid" -o pid= | tr -d ' ')
[[ -n $pid ]] || fail "discd did not start under strace: $(cat "$tmp/log")"
"${ctl[@]}" register --service s --address 127.0.0.1:1 --check tcp --interval 200 >/dev/null
"${ctl[@]}" register --service s --address 127.0.0.1:1 --check http --interval 200 >/dev/null
id=$("${ctl[@]}" register --service t --address 127.0.0.1:2)
"${ctl[@]}" deregister "$id"
"${ctl[@]}" metrics >/dev/null
url=$(sed -n 's/.*metrics: serving \(http:[^ ]*\).*/\1/p' "$tmp/log")
[[ -n $url ]] || fail "discd did not log its metrics URL"
curl -fsS "$url" >/dev/null || fail "scrape $url"
sleep 2.5 # checks fail and remove; the file cache is written
kill -HUP "$pid"
sleep 0.3
"${ctl[@]}" status >/dev/null
kill -TERM "$pid"
pid=
wait "$spid" || fail "discd exited with $? (log: $(cat "$tmp/log"))"
[[ -s $tmp/d.cache ]] || fail "no file cache written"

awk '{ s = $2; if (s ~ /^[a-z_0-9]+\(/) { sub(/\(.*/, "", s); print s } }' "$tmp/trace" | sort -u >"$tmp/used"
# execve is strace starting discd (systemd execs before the filter applies).
grep -vx execve "$tmp/used" | comm -23 - "$tmp/allowed" >"$tmp/outside"
[[ ! -s $tmp/outside ]] || fail "discd made system calls outside the unit's filter: $(tr '\n' ' ' <"$tmp/outside")"
echo "ok: discd used $(wc -l <"$tmp/used") distinct system calls, all in the unit's SystemCallFilter"
