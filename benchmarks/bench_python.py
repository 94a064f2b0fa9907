# SPDX-License-Identifier: MIT
"""bench_python.py — the Python binding's lookup against the IPC alternative,
in the same run.

  A  discshm.Registry.lookup(service): libdiscshm through ctypes, reading
     the segment of a live discd in this process (no IPC), results turned
     into Instance objects (tags, endpoints included).
  B  the same query answered by a Python server in another process over a
     Unix socket (one persistent connection, one request line, one JSON
     reply line parsed into dicts): the least a service-discovery call over
     local IPC costs from Python.

Both answer "the instances of service S" over the same data (the server
loads the registry once at start through the binding, so it answers from a
dict without touching shared memory). Reports per-call median, p99 and mean
over interleaved rounds, and the ratio B/A.

    DISC_BUILD_DIR=build DISCSHM_LIBRARY=build/libdiscshm/libdiscshm.so \\
        /usr/bin/python3 benchmarks/bench_python.py [--instances N] [--calls N]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "harness"))

import discshm  # noqa: E402
from discd_proc import Discd  # noqa: E402

SERVER = r"""
import json, os, socket, sys
sys.path.insert(0, sys.argv[3])
import discshm
reg = discshm.Registry(sys.argv[2])
table = {}
for inst in reg:
    table.setdefault(inst.service, []).append({
        "id": inst.id, "service": inst.service, "version": inst.version, "host": inst.host,
        "az": inst.az, "address": inst.address, "weight": inst.weight,
        "health": int(inst.health), "origin": int(inst.origin), "tags": dict(inst.tags),
        "endpoints": [e.__dict__ for e in inst.endpoints]})
answers = {k.encode(): (json.dumps(v) + "\n").encode() for k, v in table.items()}
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sys.argv[1]); srv.listen(4)
print("ready", flush=True)
conn, _ = srv.accept()
f = conn.makefile("rb")
for line in f:
    conn.sendall(answers.get(line.rstrip(b"\n"), b"[]\n"))
"""


def percentile(xs: list[int], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=5, help="instances of the looked-up service")
    ap.add_argument("--calls", type=int, default=20000, help="calls per method")
    args = ap.parse_args()

    with Discd("pybench") as d:
        for k in range(args.instances):
            d.register("payments", f"10.0.0.{k + 1}:8080", "--version", "1.4.2", "--tag",
                       "env=prod", "--tag", "az=eu-1a", "--endpoint",
                       "Charge,request=ChargeReq,response=Receipt,mean_us=800")
        for k in range(50):  # other services in the registry
            d.register(f"svc{k}", f"10.1.0.{k + 1}:9000")
        reg = discshm.Registry(d.name)
        while reg.status().n_instances < args.instances + 50:
            time.sleep(0.01)

        tmp = tempfile.mkdtemp(prefix="bench-py-")
        path = os.path.join(tmp, "s.sock")
        srv = subprocess.Popen([sys.executable, "-c", SERVER, path, d.name,
                                os.path.join(HERE, "..", "bindings", "python")],
                               stdout=subprocess.PIPE, env=d.env())
        try:
            assert srv.stdout.readline().strip() == b"ready"
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(path)
            cf = c.makefile("rb")

            def ipc(service: str = "payments"):
                c.sendall(service.encode() + b"\n")
                return json.loads(cf.readline())

            # Same answer from both.
            a = sorted(i.id for i in reg.lookup("payments"))
            b = sorted(o["id"] for o in ipc())
            assert a == b and len(a) == args.instances

            # What a caller does with the answer: take address and weight of
            # each instance (A decodes fields on access; B has parsed it all);
            # A2 decodes every field including tags and endpoints.
            def a_use():
                return [(i.address, i.weight) for i in reg.lookup("payments")]

            def a_all():
                return [i.asdict() for i in reg.lookup("payments")]

            def b_use():
                return [(o["address"], o["weight"]) for o in ipc()]

            assert sorted(a_use()) == sorted(b_use())
            ta: list[int] = []
            ta2: list[int] = []
            tb: list[int] = []
            clock = time.perf_counter_ns
            for _ in range(500):  # warm-up
                a_use()
                a_all()
                b_use()
            rounds = 20
            per = args.calls // rounds
            for _ in range(rounds):  # interleaved, so load changes hit both alike
                for _ in range(per):
                    t0 = clock()
                    a_use()
                    ta.append(clock() - t0)
                for _ in range(per):
                    t0 = clock()
                    a_all()
                    ta2.append(clock() - t0)
                for _ in range(per):
                    t0 = clock()
                    b_use()
                    tb.append(clock() - t0)
            c.close()
        finally:
            srv.kill()
            srv.wait()
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            os.rmdir(tmp)
        reg.close()

    def row(name: str, xs: list[int]) -> tuple:
        return (name, statistics.median(xs) / 1000, percentile(xs, 0.99) / 1000,
                statistics.fmean(xs) / 1000)

    rows = [row("discshm lookup, address+weight used", ta),
            row("Python Unix-socket service, same query", tb),
            row("discshm lookup, every field decoded", ta2)]
    print(f"python {sys.version.split()[0]}, {args.instances} instances per answer, "
          f"{len(ta)} calls each, interleaved in 20 rounds")
    print(f"{'method':48} {'median us':>10} {'p99 us':>10} {'mean us':>10}")
    for r in rows:
        print(f"{r[0]:48} {r[1]:10.1f} {r[2]:10.1f} {r[3]:10.1f}")
    print(f"ratio socket/discshm: median {rows[1][1] / rows[0][1]:.1f}x, "
          f"p99 {rows[1][2] / rows[0][2]:.1f}x; socket/discshm-all-fields: median "
          f"{rows[1][1] / rows[2][1]:.1f}x")


if __name__ == "__main__":
    main()
