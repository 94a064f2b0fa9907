# SPDX-License-Identifier: MIT
"""Import of foreign registries (issue 12; daemon/zk/import.c, docs/IMPORT.md)
against a real ZooKeeper and a real discd. The fixtures are written by
another ZooKeeper client (Debian's python3-kazoo), after the formats'
documented examples, malformed ones included; what discd makes of them is
read through libdiscshm (discctl get --json) and the status op.

Run by ctest (label zk) with /usr/bin/python3 -m pytest; about 20 s.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from urllib.parse import quote

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
from discd_proc import Discd, slow  # noqa: E402
from zk_server import ZkServer  # noqa: E402

# The namespace of discd's name-based ids (daemon/zk/formats/fmt_common.c).
IMPORT_NS = uuid.UUID("6b2f0e51-934c-4d1a-8e07-5d3bc2917a44")

DUBBO_IFACE = "org.apache.dubbo.demo.DemoService"
DUBBO_GOOD = [
    # the provider URL of Dubbo's demo, as its registry writes it
    f"dubbo://192.168.1.100:20880/{DUBBO_IFACE}?anyhost=true&application=demo-provider"
    f"&dubbo=2.0.2&generic=false&interface={DUBBO_IFACE}&methods=sayHello,sayHelloAsync"
    "&pid=2828&release=2.7.8&side=provider&timestamp=1600000000000",
    f"dubbo://192.168.1.101:20880/{DUBBO_IFACE}?application=demo-provider&group=g1"
    f"&interface={DUBBO_IFACE}&side=provider&version=1.0.0&weight=200",
]
DUBBO_BAD_ENCODING = "dubbo%3A%2F%2F192.168.1.102%3A20880%2Fx%3Fa%3D%ZZ"
DUBBO_NO_PORT = f"dubbo://192.168.1.103/{DUBBO_IFACE}?application=demo-provider"

SS_BASE = "/aurora/www-data/prod/hello"
SS_MEMBERS = {
    # Aurora's announcer: a primary endpoint, named extra ones, status, shard
    "member_0000000000": {"serviceEndpoint": {"host": "10.1.2.3", "port": 31181},
                          "additionalEndpoints": {"aurora": {"host": "10.1.2.3", "port": 31181},
                                                  "http": {"host": "10.1.2.3", "port": 31182}},
                          "status": "ALIVE", "shard": 0},
    "member_0000000001": {"serviceEndpoint": {"host": "10.1.2.4", "port": 31181},
                          "additionalEndpoints": {}, "status": "STARTING", "shard": 1},
}
SS_BAD = {"member_0000000002": b'{"serviceEndpoint": {"host": "10.1.2.5", "port": 3',  # bad JSON
          "member_0000000003": b'{"serviceEndpoint": {"host": "10.1.2.6"}, "status": "ALIVE"}'}

KITEX_GOOD = {"/echo/10.0.0.9:8888": {"Weight": 10, "Tags": {"idc": "hl", "cluster": "a"}},
              "/echo/10.0.0.10:8888": {"Weight": 30, "Tags": {}}}
KITEX_BAD_DATA = "/echo/10.0.0.11:8888"
KITEX_NO_PORT = "/echo/10.0.0.12"
KITEX_UNREADABLE = "/echo/10.0.0.13:8888"


def wait_for(pred, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout * slow()
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def instances(d: Discd, service: str, *filters: str) -> list[dict]:
    r = d.ctl("get", service, "--all", "--allow-stale", *filters, "--json", check=False)
    if r.returncode not in (0, 3):  # 3: no such service
        raise AssertionError(f"discctl get {service}: {r.returncode} {r.stderr}")
    return json.loads(r.stdout)["instances"] if r.returncode == 0 else []


def sources(d: Discd) -> dict:
    st = d.request({"op": "status"})
    return {s["source"]: s for s in st["zookeeper"].get("import", [])}


def first_sync_done(src: dict) -> bool:
    """Every source has read every fixture node (the bad and unreadable ones
    too): the counters that follow are final, not a snapshot mid-sync."""
    try:
        dub, ss, kx = src["dubbo"], src["aurora"], src["kitex"]
    except KeyError:
        return False
    return (dub["instances"] + dub["skipped_bad_data"] == 4
            and ss["instances"] + ss["skipped_bad_data"] + ss["skipped_bad_name"] == 5
            and kx["instances"] + kx["skipped_bad_data"] + kx["skipped_bad_name"]
            + kx["skipped_unreadable"] >= 6)


def write_fixtures(kz: KazooClient) -> None:
    prov = f"/dubbo/{quote(DUBBO_IFACE, safe='')}/providers"
    for url in DUBBO_GOOD + [DUBBO_NO_PORT]:
        kz.create(f"{prov}/{quote(url, safe='')}", b"", makepath=True)
    kz.create(f"{prov}/{DUBBO_BAD_ENCODING}", b"", makepath=True)
    kz.create(f"/dubbo/{quote(DUBBO_IFACE, safe='')}/consumers/"
              + quote("consumer://192.168.1.50/x?side=consumer", safe=""), b"", makepath=True)
    for name, doc in SS_MEMBERS.items():
        kz.create(f"{SS_BASE}/{name}", json.dumps(doc).encode(), makepath=True)
    for name, data in SS_BAD.items():
        kz.create(f"{SS_BASE}/{name}", data, makepath=True)
    kz.create(f"{SS_BASE}/leader", b"", makepath=True)  # not a member node
    for path, doc in KITEX_GOOD.items():
        kz.create(path, json.dumps(doc).encode(), makepath=True)
    kz.create(KITEX_BAD_DATA, b"{\"Weight\": \"ten\"}", makepath=True)
    kz.create(KITEX_NO_PORT, b"{}", makepath=True)
    # nodes only another identity may read: a Kitex node and a whole service
    mallory = [make_digest_acl("mallory", "secret", all=True)]
    kz.create(KITEX_UNREADABLE, b'{"Weight": 1}', acl=mallory)
    kz.create("/locked", b"", acl=mallory)


@pytest.fixture(scope="module")
def zk():
    with ZkServer() as server:
        kz = KazooClient(hosts=server.connect)
        kz.start(timeout=30)
        write_fixtures(kz)
        yield server, kz
        kz.stop()
        kz.close()


ARGS = ["--import", "dubbo", "--import", f"serverset {SS_BASE} name=aurora", "--import", "kitex",
        "--zk-cooloff", "300", "--protect-hold", "1000", "--zk-session-timeout", "2000"]


def start(server: ZkServer, tag: str, protect_hold_ms: int = 1000) -> Discd:
    args = [str(protect_hold_ms) if a == "1000" and ARGS[i - 1] == "--protect-hold" else a
            for i, a in enumerate(ARGS)]
    return Discd(tag, ["--zk", server.connect, *args]).start()


def test_documented_examples_show_up_and_bad_nodes_are_skipped_and_counted(zk):
    server, _kz = zk
    d = start(server, "imp1")
    try:
        # Dubbo: service = interface, address from the URL, weight param (default 100)
        dub = wait_for(lambda: len(instances(d, DUBBO_IFACE)) == 2 and instances(d, DUBBO_IFACE),
                       "the two good Dubbo providers")
        by_addr = {i["address"]: i for i in dub}
        a = by_addr["192.168.1.100:20880"]
        b = by_addr["192.168.1.101:20880"]
        assert a["weight"] == 100 and b["weight"] == 200
        assert b["version"] == "1.0.0" and a["version"] == ""
        assert a["tags"]["source"] == "dubbo" and a["tags"]["protocol"] == "dubbo"
        assert a["tags"]["application"] == "demo-provider" and b["tags"]["group"] == "g1"
        assert a["origin"] == "remote" and a["health"] == "passing"
        path = (f"/dubbo/{quote(DUBBO_IFACE, safe='')}/providers/"
                + quote(DUBBO_GOOD[0], safe=""))
        assert a["id"] == str(uuid.uuid5(IMPORT_NS, "dubbo:" + path))

        # ServerSets: one service named by the source, endpoints, shard, status -> health
        ss = wait_for(lambda: len(instances(d, "hello")) == 2 and instances(d, "hello"),
                      "the two good ServerSet members")
        m0 = next(i for i in ss if i["address"] == "10.1.2.3:31181")
        m1 = next(i for i in ss if i["address"] == "10.1.2.4:31181")
        assert m0["health"] == "passing" and m1["health"] == "critical"
        assert m0["tags"]["shard"] == "0" and m0["tags"]["status"] == "ALIVE"
        assert m0["tags"]["source"] == "aurora"
        assert m0["tags"]["foreign_id"] == "member_0000000000"
        assert m0["tags"]["endpoint.http"] == "10.1.2.3:31182"
        assert sorted(e["name"] for e in m0["endpoints"]) == ["aurora", "http"]
        assert m0["id"] == str(uuid.uuid5(IMPORT_NS, f"serverset:{SS_BASE}/member_0000000000"))
        # in rotation only: the STARTING member is left out by the default filter
        r = d.ctl("get", "hello", "--json")
        assert [i["address"] for i in json.loads(r.stdout)["instances"]] == ["10.1.2.3:31181"]

        # Kitex/Hertz: /<service>/<ip>:<port>, Weight and Tags
        kx = wait_for(lambda: len(instances(d, "echo")) == 2 and instances(d, "echo"),
                      "the two good Kitex instances")
        k9 = next(i for i in kx if i["address"] == "10.0.0.9:8888")
        assert k9["weight"] == 10 and k9["tags"]["idc"] == "hl" and k9["tags"]["source"] == "kitex"
        assert next(i for i in kx if i["address"] == "10.0.0.10:8888")["weight"] == 30

        # readers can filter on the source tag
        assert len(instances(d, "echo", "--tag", "source=kitex")) == 2
        assert instances(d, "echo", "--tag", "source=dubbo") == []

        # the bad ones: skipped and counted per source, nothing else imported
        src = wait_for(lambda: (s := sources(d)) and first_sync_done(s) and s, "the counters")
        assert src["dubbo"]["skipped_bad_data"] == 2  # bad encoding, no port
        assert src["dubbo"]["instances"] == 2 and src["dubbo"]["services"] == 1
        assert src["dubbo"]["reads"] == 0  # everything is in the node names
        assert src["aurora"]["skipped_bad_name"] == 1  # "leader"
        assert src["aurora"]["instances"] == 2
        assert src["kitex"]["skipped_bad_data"] == 1 and src["kitex"]["skipped_bad_name"] == 1
        # unreadable: the node and the service /locked, skipped and counted, blocking nothing
        assert src["kitex"]["skipped_unreadable"] == 2
        # Kitex reads "/": the other sources' bases, ZooKeeper's own node and discd's
        # own tree are never taken for Kitex services (echo and the locked one are)
        assert src["kitex"]["services"] == 2 and src["kitex"]["instances"] == 2
        st = d.ctl("status").stdout
        assert "import dubbo: dubbo /dubbo: 2 instances in 1 services" in st
        assert "bad data 2" in st
        log = d.log_text()
        assert "bad URL encoding" in log and "no port in the provider URL" in log
        assert "not JSON" in log
    finally:
        assert d.stop() == 0, d.log_text()
        d.cleanup()


def test_changes_removals_and_in_place_updates(zk):
    server, kz = zk
    d = start(server, "imp2")
    try:
        wait_for(lambda: len(instances(d, "echo")) == 2, "kitex instances")
        before = wait_for(lambda: (s := sources(d)) and first_sync_done(s) and s["kitex"],
                          "the counters of the first sync")
        # a new node appears, then goes: only the new name is read
        kz.create("/echo/10.0.0.20:8888", b'{"Weight": 5}')
        wait_for(lambda: len(instances(d, "echo")) == 3, "the new Kitex instance")
        after = wait_for(lambda: (k := sources(d)["kitex"])["instances"] == 3 and k, "counters")
        assert after["reads"] - before["reads"] == 1, (before, after)
        kz.delete("/echo/10.0.0.20:8888")
        wait_for(lambda: len(instances(d, "echo")) == 2, "its removal")
        # data changed in place (Curator-style updates): read again
        kz.set(f"{SS_BASE}/member_0000000001", json.dumps(
            {"serviceEndpoint": {"host": "10.1.2.4", "port": 31181}, "status": "ALIVE",
             "shard": 1}).encode())
        wait_for(lambda: all(i["health"] == "passing" for i in instances(d, "hello")),
                 "member 1 ALIVE after its in-place update")
        assert sources(d)["aurora"]["changed_in_place"] >= 1
        # a bad node fixed in place is imported
        kz.set(KITEX_BAD_DATA, b'{"Weight": 7}')
        wait_for(lambda: len(instances(d, "echo")) == 3, "the repaired Kitex node")
        # and rewritten into garbage, dropped again
        kz.set(KITEX_BAD_DATA, b"garbage{")
        wait_for(lambda: len(instances(d, "echo")) == 2, "the node rewritten into garbage")
        # a whole service goes (Dubbo providers deleted): removed, not blocking anything
        kz.create("/dubbo/org.example.Other/providers/"
                  + quote("tri://10.9.9.9:50051/org.example.Other?side=provider", safe=""),
                  b"", makepath=True)
        wait_for(lambda: len(instances(d, "org.example.Other")) == 1, "a second Dubbo service")
        kz.delete("/dubbo/org.example.Other", recursive=True)
        wait_for(lambda: instances(d, "org.example.Other") == [], "the deleted Dubbo service",
                 timeout=15)  # held by protection (1 -> 0) for --protect-hold
        assert len(instances(d, DUBBO_IFACE)) == 2
    finally:
        assert d.stop() == 0, d.log_text()
        d.cleanup()


def test_kept_through_an_outage_and_protected_when_zookeeper_comes_back_empty(zk):
    server, kz = zk
    # a hold long enough to be seen on a loaded machine
    d = start(server, "imp3", protect_hold_ms=5000)
    try:
        wait_for(lambda: len(instances(d, "echo")) == 2 and len(instances(d, "hello")) == 2,
                 "the imports")
        before = {i["id"] for s in ("echo", "hello", DUBBO_IFACE) for i in instances(d, s)}
        assert len(before) == 6
        kz.stop()
        server.kill()
        # ZooKeeper down, past the session timeout: nothing imported goes away
        t_end = time.monotonic() + 2.5
        while time.monotonic() < t_end:
            now = {i["id"] for s in ("echo", "hello", DUBBO_IFACE) for i in instances(d, s)}
            assert now == before
            time.sleep(0.25)
        # back with the same data: the same instances, and changes flow again
        server.start(port=server.port)
        kz.start(timeout=30)
        kz.create("/echo/10.0.0.30:8888", b'{"Weight": 5}')
        wait_for(lambda: len(instances(d, "echo")) == 3, "a change after the outage", 20)
        now = {i["id"] for s in ("echo", "hello", DUBBO_IFACE) for i in instances(d, s)}
        assert before <= now and len(now) == 7
        before = now

        # back EMPTY: cooling-off, then protection (every service emptied at once)
        # hold the removals; they are applied only after --protect-hold
        kz.stop()
        server.kill()
        server.start(port=server.port, empty=True)
        def holding() -> bool:
            return (d.request({"op": "status"})["zookeeper"]["protection"]["held_now"] > 0
                    and "held" in d.ctl("status").stdout)

        def picture_while_held():
            # held before and after the read: the read saw the held picture
            if not holding():
                return None
            now = {i["id"] for s in ("echo", "hello", DUBBO_IFACE) for i in instances(d, s)}
            return now if holding() else None

        now = wait_for(picture_while_held, "protection holding the removals", 20)
        assert now == before, "protection let imported instances go at once"
        wait_for(lambda: all(instances(d, s) == [] for s in ("echo", "hello", DUBBO_IFACE)),
                 "the held removals applied after --protect-hold", 20)
    finally:
        kz.start(timeout=30)
        try:
            write_fixtures(kz)  # leave the module fixture as it was for later tests
        except Exception:  # noqa: BLE001 - the test failed before ZooKeeper lost its data
            pass
        assert d.stop() == 0, d.log_text()
        d.cleanup()
