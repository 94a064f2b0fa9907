#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install every Debian package discshm needs to build, test and run.
# Idempotent: packages already installed are left alone; `apt-get update` runs
# (once) only when something is missing. Non-interactive. Uses sudo when not root.
set -euo pipefail

PACKAGES=(
    build-essential cmake ninja-build pkg-config # toolchain
    liburcu-dev libjansson-dev uuid-dev            # discd internals
    libzookeeper-mt-dev zookeeper zookeeper-bin    # ZooKeeper C client; server (pulls a JRE) for tests
    libcurl4-openssl-dev libsystemd-dev            # health checks; sd_notify
    libcriterion-dev                               # test framework
    clang libclang-rt-14-dev clang-format          # alternative sanitizer runtimes; scripts/format.sh
    libfuzzer-14-dev                               # libFuzzer for fuzz/ (scripts/fuzz.sh)
    libmicrohttpd-dev python3-prometheus-client    # discd metrics listener; its test's Prometheus parser
    python3-pytest python3-kazoo                   # pytest suites (metrics, Python binding); a ZooKeeper client for them
    zlib1g-dev                                     # CRC-32 of the ZooKeeper aggregate snapshots (daemon/zk/zk_snapshot.c)
    golang-go                                      # the Go binding's tests (bindings/go)
    openjdk-17-jdk-headless libcurator-discovery-java libcurator-recipes-java # Curator interop tests (javac; ServiceDiscovery needs recipes' CuratorCache)
    valgrind                                       # callgrind instruction counts (benchmarks/, scripts/bench.sh)
    scdoc man-db strace debhelper lintian fakeroot dpkg-dev # man pages; packaging tests (tests/packaging, debian/)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "setup: all ${#PACKAGES[@]} required packages are installed"
    exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "setup: need root or sudo to install: ${missing[*]}" >&2
    exit 1
fi

echo "setup: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
echo "setup: done"
