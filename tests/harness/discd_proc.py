# SPDX-License-Identifier: MIT
"""discd_proc.py — the Python side of the test harness (see discd_proc.h).

Runs a real discd with a unique registry name in a temporary directory, talks
to its control socket, runs discctl against it, and cleans up (stopping the
process by pid, removing its registry objects and directory). Used by
the pytest suites (tests/metrics, bindings/python) and the Python benchmark.

    with Discd("mytest") as d:           # started; stopped (must exit 0) and cleaned
        d.ctl("register", "--service", "s", "--address", "127.0.0.1:1")
        d.request({"op": "status"})

Paths come from $DISC_BUILD_DIR (set by ctest); the tests' defaults assume
the repository's build/ directory.
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any, Sequence

_counter = 0
_regdir_top: str | None = None


def registry_dir() -> str:
    """This process's registry directory, $DISCSHM_DIR: created on first use
    (TMPDIR/discshm-test-XXXXXX/reg, as the C tests' tests/common/registry_dir.c)
    and exported, so discd, discctl and in-process readers (the bindings) all
    use it; removed with everything in it when the process exits. An
    explicitly set $DISCSHM_DIR is used as it is."""
    global _regdir_top
    cur = os.environ.get("DISCSHM_DIR")
    if cur:
        return cur
    base = os.environ.get("TMPDIR") or "/tmp"
    _regdir_top = tempfile.mkdtemp(prefix="discshm-test-", dir=base)
    os.chmod(_regdir_top, 0o755)  # readers require: nobody else can write it
    reg = os.path.join(_regdir_top, "reg")
    os.mkdir(reg, 0o755)
    os.chmod(reg, 0o755)
    os.environ["DISCSHM_DIR"] = reg
    atexit.register(shutil.rmtree, _regdir_top, True)
    return reg


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the test process dies, so a
    killed test leaves no discd (or ZooKeeper) behind (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def build_dir() -> str:
    d = os.environ.get("DISC_BUILD_DIR")
    if d:
        return d
    return os.path.join(os.path.dirname(__file__), "..", "..", "build")


def slow() -> int:
    """Timeouts are multiplied by this under the sanitizers (as dt_slow)."""
    s = os.environ.get("DISC_SANITIZE", "")
    return 4 if "thread" in s else 2 if s else 1


class Discd:
    """One discd process for a test."""

    def __init__(self, tag: str, extra_args: Sequence[str] = ()):
        global _counter
        _counter += 1
        base = os.environ.get("TMPDIR") or "/tmp"
        self.dir = tempfile.mkdtemp(prefix="discd-test-", dir=base)
        os.chmod(self.dir, 0o755)
        self.regdir = registry_dir()
        self.name = f"py{os.getpid()}_{_counter}_{tag}"[:60]
        self.sock = os.path.join(self.dir, "discd.sock")
        self.log = os.path.join(self.dir, "discd.log")
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.discd = os.path.join(build_dir(), "daemon", "discd")
        self.discctl = os.path.join(build_dir(), "tools", "discctl")

    # -- lifecycle -----------------------------------------------------------------

    def env(self) -> dict:
        """Environment for readers of this registry (libdiscshm, bindings)."""
        e = dict(os.environ)
        e["DISCSHM_NAME"] = self.name
        e["DISCSHM_DIR"] = self.regdir
        return e

    def argv(self) -> list[str]:
        """discd's command line: this registry, socket and private dirs, then
        the extra arguments (for tests that run discd themselves)."""
        # never the system's /var/lib/discd or /etc/discd/services.d
        return [self.discd, "--name", self.name, "--dir", self.regdir, "--socket", self.sock,
                "--log-level", "debug",
                "--state-dir", os.path.join(self.dir, "state"),
                "--services-dir", os.path.join(self.dir, "services.d"), *self.extra_args]

    def start(self, timeout: float = 10.0) -> "Discd":
        argv = self.argv()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout * slow()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"discd exited with {self.proc.returncode} during start-up:\n"
                                   + self.log_text())
            try:
                if self.request({"op": "status"}, timeout=0.5).get("ok"):
                    return self
            except OSError:
                pass
            time.sleep(0.01)
        self.kill()
        raise TimeoutError("discd did not answer on its socket:\n" + self.log_text())

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code (-9 if it had to be killed)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout * slow())
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def cleanup(self) -> None:
        self.kill()
        for suffix in ("", ".lock"):
            try:
                os.unlink(os.path.join(self.regdir, self.name + suffix))
            except FileNotFoundError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Discd":
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc: Any) -> None:
        try:
            rc = self.stop()
            if exc[0] is None and rc != 0:
                raise AssertionError(f"discd exited with {rc}:\n" + self.log_text())
        finally:
            self.cleanup()

    def log_text(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- talking to it ---------------------------------------------------------------

    def request(self, msg: dict, timeout: float = 5.0) -> dict:
        """One request on a fresh connection; the reply (events skipped)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout * slow())
            s.connect(self.sock)
            s.sendall(json.dumps(msg).encode() + b"\n")
            buf = b""
            while True:
                while b"\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise ConnectionError("discd closed the connection without a reply")
                    buf += chunk
                line, buf = buf.split(b"\n", 1)
                reply = json.loads(line)
                if "event" not in reply:
                    return reply

    def ctl(self, *args: str, check: bool = True, timeout: float = 10.0
            ) -> subprocess.CompletedProcess:
        """Run discctl --name N --socket S ARGS; check: assert exit 0."""
        argv = [self.discctl, "--name", self.name, "--socket", self.sock, *args]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * slow(),
                           env=self.env())
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {r.returncode}: {r.stderr}")
        return r

    def register(self, service: str, address: str, *args: str) -> str:
        """discctl register (check none unless args say otherwise); the new id."""
        r = self.ctl("register", "--service", service, "--address", address, *args)
        return r.stdout.strip()


def sanitizer_reports() -> list[str]:
    """Sanitizer report files of this build (test.sh fails the run on any)."""
    return glob.glob(os.path.join(build_dir(), "sanitizer-logs", "*"))
