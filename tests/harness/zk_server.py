# SPDX-License-Identifier: MIT
"""zk_server.py — a standalone ZooKeeper server for the pytest suites, the
Python counterpart of zk_server.h: Debian's jars run directly with java (no
systemd, no /etc or /var), on a free 127.0.0.1 port, in a fresh temporary
directory, with the same JVM and server settings as the C harness. The JVM
is stopped by pid (SIGKILL) and the directory removed.

    with ZkServer() as zk:
        zk.connect   # "127.0.0.1:PORT"

Environment overrides: DISC_ZK_JAVA, DISC_ZK_CLASSPATH (as zk_server.h).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from discd_proc import die_with_parent

JAVA = "/usr/bin/java"
CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter(port: int, word: bytes, timeout: float = 1.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


class ZkServer:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix=f"disc-zk-py{os.getpid()}-")
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def connect(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0, port: int = 0, empty: bool = False) -> "ZkServer":
        """Start the server (again, after kill). port: reuse this port (so
        clients' connect strings stay valid); empty: with a fresh data
        directory, as a ZooKeeper that lost its data."""
        if empty:
            shutil.rmtree(os.path.join(self.dir, "data"), ignore_errors=True)
        for _attempt in range(3):  # a port taken between probing and binding: retry
            self.port = port or _free_port()
            data = os.path.join(self.dir, "data")
            os.makedirs(data, exist_ok=True)
            cfg = os.path.join(self.dir, "zoo.cfg")
            with open(cfg, "w") as f:
                f.write("tickTime=500\ninitLimit=20\nsyncLimit=6\n"
                        f"dataDir={data}\nclientPort={self.port}\nclientPortAddress=127.0.0.1\n"
                        "admin.enableServer=false\n"
                        "4lw.commands.whitelist=ruok,srvr,stat,mntr,cons\n")
            java = os.environ.get("DISC_ZK_JAVA") or JAVA
            cp = os.environ.get("DISC_ZK_CLASSPATH") or CLASSPATH
            with open(os.path.join(self.dir, "zk.log"), "ab") as log:
                self.proc = subprocess.Popen(
                    [java, "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                     "-XX:-UsePerfData", "-Djava.net.preferIPv4Stack=true",
                     "-Dzookeeper.admin.enableServer=false",
                     "-Dzookeeper.jmx.log4j.disable=true",
                     "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                     "-Dznode.container.checkIntervalMs=1000", "-cp", cp, MAIN, cfg],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    preexec_fn=die_with_parent)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    # srvr, not ruok: imok comes before the server takes sessions
                    if b"Mode: standalone" in four_letter(self.port, b"srvr"):
                        return self
                except OSError:
                    pass
                time.sleep(0.1)
            self.kill()
        raise RuntimeError("ZooKeeper did not start; log in " + self.dir)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "ZkServer":
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc) -> None:
        self.cleanup()
