# SPDX-License-Identifier: MIT
"""discd's Prometheus metrics, scraped over HTTP (--metrics-listen) and
through `discctl metrics`, parsed with the real Prometheus text parser
(Debian's python3-prometheus-client), checked against activity caused by the
test: registrations, health checks that pass and fail, publishes, control
errors. Run by ctest (label `metrics`) with /usr/bin/python3 -m pytest.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
from discd_proc import Discd, slow  # noqa: E402

# family -> (type, label names); every one must be present in every scrape.
EXPECTED = {
    "discd_info": ("gauge", {"version", "registry"}),
    "discd_start_time_seconds": ("gauge", set()),
    "discd_instances": ("gauge", {"origin", "health"}),
    "discd_services": ("gauge", set()),
    "discd_segment_instances": ("gauge", set()),
    "discd_segment_generation": ("gauge", set()),
    "discd_publishes": ("counter", set()),
    "discd_publish_changes": ("counter", set()),
    "discd_publish_errors": ("counter", set()),
    "discd_publish_unchanged_puts": ("counter", set()),
    "discd_publish_duration_seconds": ("histogram", set()),
    "discd_segment_bytes": ("gauge", {"kind"}),
    "discd_segment_reclaimed_bytes": ("counter", set()),
    "discd_segment_overtakes": ("counter", set()),
    "discd_cache_writes": ("counter", set()),
    "discd_cache_write_errors": ("counter", set()),
    "discd_checks": ("counter", {"kind"}),
    "discd_check_failures": ("counter", {"kind"}),
    "discd_checked_instances": ("gauge", set()),
    "discd_tcp_checks": ("counter", {"via"}),
    "discd_control_requests": ("counter", {"op"}),
    "discd_control_errors": ("counter", {"op"}),
    "discd_control_connections": ("gauge", set()),
    "discd_zookeeper_configured": ("gauge", set()),
    "discd_zookeeper_state": ("gauge", {"state"}),
    "discd_zookeeper_session_age_seconds": ("gauge", set()),
    "discd_zookeeper_last_sync_age_seconds": ("gauge", set()),
    "discd_zookeeper_sessions": ("counter", set()),
    "discd_zookeeper_expirations": ("counter", set()),
    "discd_zookeeper_reconnects": ("counter", set()),
    "discd_zookeeper_syncs": ("counter", {"kind"}),
    "discd_zookeeper_operations": ("counter", {"op"}),
    "discd_zookeeper_remote_changes": ("counter", {"change"}),
    "discd_zookeeper_hosts": ("gauge", set()),
    "discd_zookeeper_worker_wakeups": ("counter", set()),
    "discd_zookeeper_batches": ("counter", set()),
    "discd_zookeeper_documents_parsed": ("counter", set()),
    "discd_zookeeper_held_removals": ("gauge", set()),
    "discd_import_instances": ("gauge", {"source"}),
    "discd_import_operations": ("counter", {"source", "op"}),
    "discd_import_changes": ("counter", {"source", "change"}),
    "discd_import_skipped": ("counter", {"source", "reason"}),
    "discd_import_held_removals": ("gauge", {"source"}),
    "discd_bad_documents": ("counter", {"reason"}),
}


class Scrape:
    """One parsed exposition: families by name, sample values by name+labels."""

    def __init__(self, text: str):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.values: dict[tuple, float] = {}
        for f in self.families.values():
            for s in f.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                assert key not in self.values, f"duplicate sample {key}"
                self.values[key] = s.value

    def get(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        assert key in self.values, f"no sample {name}{labels}"
        return self.values[key]


def start_with_listener(tag: str, *extra: str) -> tuple[Discd, int]:
    d = Discd(tag, [*extra, "--metrics-listen", "127.0.0.1:0"]).start()
    m = re.search(r"metrics: serving http://127\.0\.0\.1:(\d+)/metrics", d.log_text())
    assert m, "discd did not log its metrics address:\n" + d.log_text()
    return d, int(m.group(1))


def scrape_http(port: int, path: str = "/metrics") -> Scrape:
    for attempt in range(50):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                        timeout=5 * slow()) as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                return Scrape(r.read().decode())
        except urllib.error.HTTPError as e:  # 503 only while discd is starting
            assert e.code == 503 and attempt < 49, f"HTTP {e.code}"
            time.sleep(0.02)
    raise AssertionError("unreachable")


def scrape_ctl(d: Discd) -> Scrape:
    return Scrape(d.ctl("metrics").stdout)


def wait_for(pred, what: str, timeout: float = 10.0) -> Scrape:
    deadline = time.monotonic() + timeout * slow()
    while True:
        s = pred()
        if s is not None:
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def discd_http():
    d, port = start_with_listener("metrics")
    try:
        yield d, port
        assert d.stop() == 0, d.log_text()
    finally:
        d.cleanup()


def check_shape(s: Scrape) -> None:
    for name, (typ, labels) in EXPECTED.items():
        assert name in s.families, f"family {name} missing"
        f = s.families[name]
        assert f.type == typ, f"{name}: type {f.type}, expected {typ}"
        for smp in f.samples:
            got = set(smp.labels) - ({"le"} if typ == "histogram" else set())
            assert got == labels, f"{smp.name}: labels {got}, expected {labels}"
    # Histogram buckets are cumulative and end in +Inf == count.
    h = [x for x in s.families["discd_publish_duration_seconds"].samples
         if x.name.endswith("_bucket")]
    vals = [x.value for x in h]
    assert vals == sorted(vals)
    assert h[-1].labels["le"] == "+Inf"
    assert vals[-1] == s.get("discd_publish_duration_seconds_count")


def test_http_and_discctl_serve_the_same_families(discd_http):
    d, port = discd_http
    a = scrape_http(port)
    check_shape(a)
    b = scrape_ctl(d)
    check_shape(b)
    assert set(a.families) == set(b.families)
    assert a.get("discd_info", version=a.families["discd_info"].samples[0].labels["version"],
                 registry=d.name) == 1
    # Standalone: ZooKeeper not configured, no state set.
    assert a.get("discd_zookeeper_configured") == 0
    for st in ("connecting", "connected", "disconnected", "expired"):
        assert a.get("discd_zookeeper_state", state=st) == 0
    # "/" serves the same; other paths and methods are refused.
    check_shape(scrape_http(port, "/"))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=5)
    assert e.value.code == 404
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405
    assert "GET" in e.value.headers["Allow"]
    # discctl metrics --json wraps the same text.
    j = d.ctl("metrics", "--json").stdout
    assert '"content_type"' in j and "discd_publishes_total" in j


def test_values_follow_activity(discd_http):
    d, port = discd_http
    s0 = scrape_http(port)
    local = lambda s, h="passing": s.get("discd_instances", origin="local", health=h)  # noqa
    assert local(s0) == 0
    assert s0.get("discd_services") == 0
    assert s0.get("discd_control_requests_total", op="register") == 0

    # A service that answers tcp checks, and one that does not.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    good = f"127.0.0.1:{lsock.getsockname()[1]}"
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    bad = f"127.0.0.1:{closed.getsockname()[1]}"  # bound, not listening: refused
    try:
        d.register("alpha", good, "--check", "tcp", "--interval", "100", "--timeout", "50")
        d.register("alpha", bad, "--check", "tcp", "--interval", "100", "--timeout", "50",
                   "--misses", "100")
        gone = d.register("beta", "127.0.0.1:7001")

        def settled():
            s = scrape_http(port)
            if (local(s) == 3 and s.get("discd_services") == 2
                    and s.get("discd_check_failures_total", kind="tcp") >= 3
                    and s.get("discd_checks_total", kind="tcp")
                    >= s.get("discd_check_failures_total", kind="tcp") + 3):
                return s
            return None

        s1 = wait_for(settled, "3 local instances, 2 services, tcp checks passing and failing")
        assert s1.get("discd_segment_instances") == 3
        assert s1.get("discd_checked_instances") == 2
        assert s1.get("discd_control_requests_total", op="register") == 3
        assert s1.get("discd_control_errors_total", op="register") == 0
        assert s1.get("discd_publishes_total") > s0.get("discd_publishes_total")
        assert s1.get("discd_publish_changes_total") >= 3
        assert (s1.get("discd_publish_duration_seconds_count")
                == s1.get("discd_publishes_total"))
        assert s1.get("discd_publish_duration_seconds_sum") > 0
        assert s1.get("discd_segment_generation") > s0.get("discd_segment_generation")
        assert s1.get("discd_segment_bytes", kind="used") > s0.get("discd_segment_bytes",
                                                                     kind="used")
        # Failures keep counting while the bad instance keeps missing.
        f1 = s1.get("discd_check_failures_total", kind="tcp")
        s2 = wait_for(lambda: (lambda s: s if s.get("discd_check_failures_total", kind="tcp")
                               > f1 else None)(scrape_http(port)), "more tcp failures")
        assert s2.get("discd_check_failures_total", kind="http") == 0

        # Errors by op: a deregister of an unknown id, a line with no valid op.
        e0 = s2.get("discd_control_errors_total", op="deregister")
        i0 = s2.get("discd_control_errors_total", op="invalid")
        r = d.request({"op": "deregister", "id": "00000000-0000-4000-8000-000000000000"})
        assert not r["ok"]
        r = d.request({"op": "no-such-op"})
        assert not r["ok"]
        # A removal: the instance goes, its record is retired, then reclaimed.
        d.ctl("deregister", gone)

        def removed():
            s = scrape_ctl(d)
            if (local(s) == 2 and s.get("discd_services") == 1
                    and s.get("discd_segment_reclaimed_bytes_total")
                    > s2.get("discd_segment_reclaimed_bytes_total")):
                return s
            return None

        s3 = wait_for(removed, "the removal published and its memory reclaimed")
        assert s3.get("discd_control_errors_total", op="deregister") == e0 + 1
        assert s3.get("discd_control_requests_total", op="deregister") == 2
        assert s3.get("discd_control_errors_total", op="invalid") == i0 + 1
        # A request is counted once answered: this scrape sees the previous ones.
        n = s3.get("discd_control_requests_total", op="metrics")
        assert scrape_ctl(d).get("discd_control_requests_total", op="metrics") == n + 1
    finally:
        lsock.close()
        closed.close()


def test_session_checks_are_counted():
    with Discd("msess", ["--check-interval", "100", "--check-timeout", "50"]) as d:
        holder = subprocess.Popen(
            [d.discctl, "--name", d.name, "--socket", d.sock, "register", "--service", "held",
             "--address", "127.0.0.1:7002", "--check", "session", "--hold"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=d.env())
        try:
            s = wait_for(lambda: (lambda s: s if s.get("discd_checks_total", kind="session") >= 5
                                  else None)(scrape_ctl(d)), "answered session pings")
            assert s.get("discd_check_failures_total", kind="session") == 0
            assert s.get("discd_instances", origin="local", health="passing") == 1
            # A holder that stops answering (SIGSTOP) misses pings until removed.
            holder.send_signal(19)  # SIGSTOP
            s = wait_for(lambda: (lambda s: s if s.get("discd_instances", origin="local",
                                                       health="passing") == 0 else None)(
                scrape_ctl(d)), "the silent session instance removed")
            assert s.get("discd_check_failures_total", kind="session") >= 3
        finally:
            holder.kill()
            holder.wait()


def test_bad_listen_values_stop_start_up():
    for value, why in (("localhost:9464", "numeric"), ("127.0.0.1", "ADDR:PORT"),
                       ("127.0.0.1:70000", "0..65535"), ("[::1:9464", "brackets")):
        d = Discd("mbad", ["--metrics-listen", value])
        try:
            r = subprocess.run(d.argv(), capture_output=True, text=True, timeout=10 * slow())
            assert r.returncode == 1, (value, r.stderr)
            assert why in r.stderr and "metrics-listen" in r.stderr, r.stderr
        finally:
            d.cleanup()


def test_port_in_use_stops_start_up():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    d = Discd("mbusy", ["--metrics-listen", f"127.0.0.1:{port}"])
    try:
        r = subprocess.run(d.argv(), capture_output=True, text=True, timeout=10 * slow())
        assert r.returncode == 1
        assert f"127.0.0.1:{port}" in r.stderr and "in use" in r.stderr, r.stderr
        # a failed start removes what it created (segment, lock)
        left = [f for f in os.listdir(d.regdir) if d.name in f]
        assert left == [], left
    finally:
        taken.close()
        d.cleanup()


def test_zookeeper_metrics_follow_the_region():
    """Two discd hosts on one ZooKeeper: state, session age, syncs, remote
    changes and skipped foreign documents, then the server killed."""
    from kazoo.client import KazooClient
    from zk_server import ZkServer

    with ZkServer() as zk:
        common = ["--zk", zk.connect, "--zk-root", "/mtest", "--zk-session-timeout", "4000",
                  "--zk-cooloff", "0", "--metrics-listen", "127.0.0.1:0"]
        a, pa = start_with_listener("mzka", "--host-id", "ha", *common[:-2])
        try:
            b = Discd("mzkb", ["--host-id", "hb", *common]).start()
            try:
                def connected():
                    s = scrape_http(pa)
                    return s if (s.get("discd_zookeeper_state", state="connected") == 1
                                 and s.get("discd_zookeeper_syncs_total", kind="full") >= 1
                                 and s.get("discd_zookeeper_session_age_seconds") > 0) else None

                s1 = wait_for(connected, "discd a connected and synced", 30)
                assert s1.get("discd_zookeeper_configured") == 1
                assert s1.get("discd_zookeeper_sessions_total") == 1
                assert s1.get("discd_zookeeper_state", state="connecting") == 0
                # b's registration reaches a through the region.
                b.register("remote-svc", "127.0.0.1:7501")

                # The instance is in a's registry as soon as it is applied; the
                # ZooKeeper counters are published when the sync round that
                # applied it ends, a moment later: wait for both.
                def remote_seen():
                    s = scrape_http(pa)
                    return s if (s.get("discd_instances", origin="remote", health="passing") == 1
                                 and s.get("discd_zookeeper_remote_changes_total",
                                           change="upsert") >= 1) else None

                s2 = wait_for(remote_seen, "b's instance in a's registry and counted", 30)
                assert s2.get("discd_zookeeper_hosts") == 2
                assert s2.get("discd_zookeeper_session_age_seconds") > \
                    s1.get("discd_zookeeper_session_age_seconds")
                assert s2.get("discd_zookeeper_operations_total", op="watch_fired") >= 1
                # Foreign documents: not JSON, and a node name that is not an id.
                kz = KazooClient(hosts=zk.connect)
                kz.start(timeout=30)
                try:
                    uid = "0b8e6a52-5f6f-4d36-9a77-2f0f7b1c5d01"
                    kz.create(f"/mtest/hosts/rogue/{uid}-1", b"this is not json", makepath=True)
                    kz.create("/mtest/hosts/rogue/not-an-id", b"{}")
                finally:
                    kz.stop()
                    kz.close()

                def skipped():
                    s = scrape_ctl(a)
                    return s if (s.get("discd_bad_documents_total", reason="bad_data") >= 1
                                 and s.get("discd_bad_documents_total", reason="bad_name") >= 1
                                 ) else None

                s3 = wait_for(skipped, "the rogue documents skipped and counted", 30)
                assert s3.get("discd_instances", origin="remote", health="passing") == 1
                # The server goes away: a reports it.
                zk.kill()

                def lost():
                    s = scrape_http(pa)
                    return s if s.get("discd_zookeeper_state", state="connected") == 0 else None

                s4 = wait_for(lost, "a noticing ZooKeeper is gone", 30)
                assert (s4.get("discd_zookeeper_state", state="disconnected")
                        + s4.get("discd_zookeeper_state", state="expired")
                        + s4.get("discd_zookeeper_state", state="connecting")) == 1
            finally:
                assert b.stop() == 0, b.log_text()
                b.cleanup()
        finally:
            assert a.stop() == 0, a.log_text()
            a.cleanup()


def test_health_transitions_move_instances_between_series():
    with Discd("mhealth") as d:
        a = d.register("t", "127.0.0.1:7701")
        b = d.register("t", "127.0.0.1:7702", "--check", "ttl", "--ttl", "600000")
        series = lambda s, h: s.get("discd_instances", origin="local", health=h)  # noqa: E731

        def counts(want: dict):
            def pred():
                s = scrape_ctl(d)
                return s if all(series(s, h) == n for h, n in want.items()) else None
            return pred

        wait_for(counts({"passing": 2, "maintenance": 0, "warning": 0}), "2 passing")
        d.ctl("maint", a, "on")
        s = wait_for(counts({"passing": 1, "maintenance": 1}), "one in maintenance")
        # Every change so far rewrote a record. A new reason alone is a
        # change of the instance (journaled) but not of its published
        # record: an identical put, counted, in metrics and status alike.
        assert s.get("discd_publish_unchanged_puts_total") == 0
        g0 = s.get("discd_segment_generation")
        d.ctl("maint", a, "on", "--reason", "disk swap")
        s = wait_for(lambda: (lambda s: s if s.get("discd_publish_unchanged_puts_total") == 1
                              else None)(scrape_ctl(d)), "an unchanged put counted")
        assert s.get("discd_segment_generation") > g0
        assert d.request({"op": "status"})["publisher"]["unchanged_puts"] == 1
        assert "; 1 unchanged puts" in d.ctl("status").stdout
        d.ctl("warn", b)
        s = wait_for(counts({"passing": 0, "maintenance": 1, "warning": 1}), "one warning")
        assert sum(series(s, h) for h in ("unknown", "critical")) == 0
        d.ctl("maint", a, "off")
        d.ctl("pass", b)
        wait_for(counts({"passing": 2, "maintenance": 0, "warning": 0}), "both passing again")
