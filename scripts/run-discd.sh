#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Set up a fresh machine, build, and run discd in the foreground on its
# embedded default (standalone: host-local registry, no ZooKeeper).
#
#   scripts/run-discd.sh [DISCD_ARGS ...]
#
# Arguments are passed to discd unchanged. Ctrl-C stops it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

"$root/scripts/setup.sh"
# Only the daemon: a broken test or tool must not keep it from running.
if ! "$root/scripts/build.sh" build -- discd; then
    echo "run-discd.sh: building discd failed (target discd comes from daemon/discd.cmake)" >&2
    exit 1
fi

discd="$root/build/daemon/discd"
if [[ ! -x "$discd" ]]; then
    echo "run-discd.sh: $discd was not built (is the discd target in daemon/discd.cmake?)" >&2
    exit 1
fi
echo "run-discd.sh: exec $discd $*"
exec "$discd" "$@"
