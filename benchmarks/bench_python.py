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
            [--quick] [--md FILE] [--json FILE]

--quick, --md and --json follow benchmarks/bench_report.h (scripts/bench.sh
runs it); --quick makes 2000 calls per method.
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
    ap.add_argument("--quick", action="store_true", help="smoke run: 2000 calls per method")
    ap.add_argument("--md", help="write this benchmark's section of RESULTS.md here")
    ap.add_argument("--json", help="write its rows as JSON here")
    command = " ".join(["bench_python.py"] + [
        a for i, a in enumerate(sys.argv[1:])
        if a not in ("--md", "--json") and sys.argv[i] not in ("--md", "--json")])
    args = ap.parse_args()
    if args.quick:
        args.calls = 2000

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
    if args.md:
        with open(args.md, "w", encoding="utf-8") as f:
            f.write("## Python binding: lookup vs a local Unix-socket service (issue 11)\n\n")
            f.write(f"Command{' (quick smoke run)' if args.quick else ''}:\n\n"
                    f"```\n{command}\n```\n\n")
            f.write(f"Python {sys.version.split()[0]}; a live discd holds {args.instances} "
                    "instances of the looked-up service (2 tags, 1 endpoint each) and 50 other "
                    "services. The socket service is a Python server in another process "
                    "answering one request line with one JSON line over a persistent "
                    f"connection. {len(ta)} calls of each, interleaved in 20 rounds; "
                    "time.perf_counter_ns per call.\n\n")
            f.write("| method | median us | p99 us | mean us |\n|---|---:|---:|---:|\n")
            for r in rows:
                f.write(f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]:.1f} |\n")
            f.write(f"\nSocket service / discshm lookup (address+weight): median "
                    f"{rows[1][1] / rows[0][1]:.1f}x, p99 {rows[1][2] / rows[0][2]:.1f}x; "
                    f"socket / discshm with every field decoded: median "
                    f"{rows[1][1] / rows[2][1]:.1f}x.\n\n")
    if args.json:
        doc = {"benchmark": "bench_python", "title": "Python binding lookup vs a Unix-socket "
               "service", "command": command, "quick": args.quick,
               "rows": [{"name": r[0], "unit": "us", "median": r[1], "p99": r[2], "mean": r[3],
                         "calls": len(ta)} for r in rows],
               "targets": []}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
