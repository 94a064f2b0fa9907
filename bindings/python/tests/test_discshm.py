# SPDX-License-Identifier: MIT
"""The Python binding against a live discd: every call's results are checked
against what was registered through discctl (and against discctl's own
reading of the segment where it has one)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time

import pytest

import discshm
from discshm import Filter, Health, NotFoundError, Origin, PickPolicy, Registry, WaitTimeout

from discd_proc import Discd, slow


@pytest.fixture(scope="module")
def reg(discd):
    """Registry of the module's discd with a known population:
       pay    v1.2 (env=prod, endpoint Get)  weight 10  127.0.0.1:7101
       pay    v1.10                          weight 30  127.0.0.1:7102
       pay    v2.0-rc.1 az=eu-1              weight 20  127.0.0.1:7103
       payroll v1                            weight 10  127.0.0.1:7201
       orders v3                             weight 10  /run/orders.sock (unix)
    """
    ids = {}
    ids["pay1"] = discd.register("pay", "127.0.0.1:7101", "--version", "1.2", "--tag", "env=prod",
                                 "--tag", "team=core", "--endpoint",
                                 "Get,request=GetReq,response=Payment,mean_us=120,p95_us=900")
    ids["pay2"] = discd.register("pay", "127.0.0.1:7102", "--version", "1.10", "--weight", "30",
                                 "--tag", "env=prod")
    ids["pay3"] = discd.register("pay", "127.0.0.1:7103", "--version", "2.0-rc.1", "--weight",
                                 "20", "--az", "eu-1", "--tag", "env=staging")
    ids["payroll"] = discd.register("payroll", "127.0.0.1:7201", "--version", "1")
    ids["orders"] = discd.register("orders", "/run/orders.sock", "--network", "unix",
                                   "--version", "3")
    r = Registry(discd.name)
    deadline = time.monotonic() + 5 * slow()
    while r.status().n_instances < 5:
        assert time.monotonic() < deadline, "registrations not published"
        time.sleep(0.01)
    r.ids = ids
    yield r
    r.close()


def ctl_json(discd: Discd, *args: str):
    return json.loads(discd.ctl(*args, "--json").stdout)


def test_lookup_matches_discctl(discd, reg):
    got = reg.lookup("pay")
    assert [i.id for i in got] == sorted(reg.ids[k] for k in ("pay1", "pay2", "pay3"))
    want = {o["id"]: o for o in ctl_json(discd, "get", "pay")["instances"]}
    for inst in got:
        w = want[inst.id]
        assert (inst.service, inst.version, inst.address, inst.weight) == \
            (w["service"], w["version"], w["address"], w["weight"])
        assert inst.host == w["host"] and inst.az == w["az"]
        assert inst.origin is Origin.LOCAL and inst.health is Health.PASSING
        assert inst.addr_kind is discshm.AddrKind.TCP
        assert abs(inst.registered_at_ms - time.time() * 1000) < 600_000
    p1 = next(i for i in got if i.id == reg.ids["pay1"])
    assert p1.tags == {"env": "prod", "team": "core"}
    assert p1.endpoints == (discshm.Endpoint("Get", "GetReq", "Payment", 120, 900),)


def test_lookup_id_and_count(reg):
    o = reg.lookup_id(reg.ids["orders"])
    assert (o.service, o.address, o.addr_kind) == ("orders", "/run/orders.sock",
                                                   discshm.AddrKind.UNIX)
    assert reg.count("pay") == 3 and reg.count("nothing") == 0
    assert "payroll" in reg and "nothing" not in reg
    assert reg.service_names() == [("orders", 1), ("pay", 3), ("payroll", 1)]


def test_errors_carry_errno(reg):
    with pytest.raises(NotFoundError) as e:
        reg.lookup("nothing")
    assert e.value.errno == errno.ENOENT and isinstance(e.value, (OSError, LookupError))
    assert "disc_lookup" in str(e.value)
    with pytest.raises(NotFoundError):
        reg.lookup_id("00000000-0000-4000-8000-000000000000")
    with pytest.raises(discshm.DiscError) as e:
        reg.lookup("x" * 300)
    assert e.value.errno == errno.ENAMETOOLONG
    with pytest.raises(discshm.DiscError) as e:
        reg.find(Filter(tags={f"k{i}": "v" for i in range(9)}))
    assert e.value.errno == errno.E2BIG
    with pytest.raises(discshm.DiscError) as e:
        reg.find(Filter(health=1 << 9))
    assert e.value.errno == errno.EINVAL
    with pytest.raises(NotFoundError):
        Registry("no-such-registry-here")


def test_filtered_lookup(reg):
    ids = reg.ids
    byid = lambda lst: sorted(i.id for i in lst)  # noqa: E731
    assert byid(reg.find(service="pay", min_version="1.3")) == sorted([ids["pay2"], ids["pay3"]])
    assert byid(reg.find(service="pay", tags={"env": "prod"})) == sorted([ids["pay1"],
                                                                         ids["pay2"]])
    assert byid(reg.find(service="pay", tags={"team": None})) == [ids["pay1"]]
    assert byid(reg.find(service="pay", az="eu-1")) == [ids["pay3"]]
    assert byid(reg.find(service="pay", endpoint="Get")) == [ids["pay1"]]
    assert byid(reg.find(service_prefix="pay")) == sorted([ids["pay1"], ids["pay2"], ids["pay3"],
                                                          ids["payroll"]])
    assert byid(reg.find(Filter(service_prefix="pay", version="1"))) == [ids["payroll"]]
    assert reg.find(service="pay", health=Health.CRITICAL) == []
    # Owners: discctl registered them as this process's uid.
    me = os.geteuid()
    assert {i.owner_uid for i in reg.find(service="pay")} == {me}
    assert len(reg.find(service="pay", owners=[me])) == 3
    assert reg.find(service="pay", owners=[me + 4242]) == []
    assert len(reg.find(service="pay", owners=[me + 4242, me])) == 3
    assert len(reg.find(service="pay", health=discshm.NOT_CRITICAL)) == 3
    assert len(reg.find(service="pay", health=[Health.PASSING, Health.WARNING])) == 3
    with pytest.raises(NotFoundError):
        reg.find(service="nothing")
    # Sorted by service, then id.
    every = reg.find()
    assert [(i.service, i.id) for i in every] == sorted((i.service, i.id) for i in every)


def test_iteration_is_the_whole_registry(discd, reg):
    dump = ctl_json(discd, "dump")
    assert sorted(i.id for i in reg) == sorted(o["id"] for o in dump["instances"])


def test_services_view(reg):
    s = {x.name: x for x in reg.services()}
    assert list(s) == ["orders", "pay", "payroll"]
    assert s["pay"].n_instances == 3
    assert list(s["pay"].versions.items()) == [("1.2", 1), ("1.10", 1), ("2.0-rc.1", 1)]
    assert [x.name for x in reg.services(tags={"env": "staging"})] == ["pay"]


def test_pick(discd, reg):
    pay = {reg.ids[k] for k in ("pay1", "pay2", "pay3")}
    # Consistent hashing: same key, same instance, and the same one discctl picks.
    for key in ("user-1", "user-2", "user-3", "user-4"):
        a = reg.pick("pay", key=key)
        assert a.id in pay and reg.pick("pay", key=key.encode()).id == a.id
        assert discd.ctl("pick", "pay", "--key", key).stdout.strip() == a.address
    # Smooth weighted round robin: over sum(weights) picks, exactly weight each.
    with discshm.Picker(PickPolicy.ROUND_ROBIN) as rr:
        n = {}
        for _ in range(60):
            i = reg.pick("pay", picker=rr)
            n[i.weight] = n.get(i.weight, 0) + 1
        assert n == {10: 10, 30: 30, 20: 20}
    # Random stays within the matching set.
    assert {reg.pick("pay", min_version="1.11").id for _ in range(20)} == {reg.ids["pay3"]}
    with pytest.raises(NotFoundError):
        reg.pick("pay", az="nowhere")
    with pytest.raises(ValueError):
        reg.pick("pay", policy=PickPolicy.HASH)


def test_status(discd, reg):
    st = reg.status()
    assert st.writer_pid == discd.proc.pid
    assert st.writer_alive and not st.degraded and not st.zk_connected
    assert (st.n_services, st.n_instances) == (3, 5)
    assert st.generation >= 2 and st.abi_major >= 1 and st.segment_bytes >= st.used_bytes > 0


def test_wait_for_change_and_changes(discd, reg):
    seen = reg.status().change_seq
    with pytest.raises(WaitTimeout) as e:
        reg.wait_for_change(0.1, seen)
    assert e.value.errno == errno.ETIMEDOUT and isinstance(e.value, TimeoutError)
    t = threading.Timer(0.2, lambda: discd.register("late", "127.0.0.1:7301"))
    t.start()
    t0 = time.monotonic()
    new = reg.wait_for_change(10 * slow(), seen)
    t.join()
    assert new != seen and time.monotonic() - t0 >= 0.15
    deadline = time.monotonic() + 5 * slow()
    while "late" not in reg:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # changes(): one status per change, ending with WaitTimeout when quiet.
    it = reg.changes(timeout=10 * slow())
    gone = reg.lookup("late")[0].id
    threading.Timer(0.1, lambda: discd.ctl("deregister", gone)).start()
    st = next(it)
    assert st.change_seq != new
    deadline = time.monotonic() + 5 * slow()
    while "late" in reg:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(WaitTimeout):
        next(reg.changes(timeout=0.2))


def test_threads_share_a_registry(discd, reg):
    errors = []

    def reader():
        try:
            for _ in range(300):
                got = reg.lookup("pay")
                assert len(got) == 3 and all(i.service == "pay" for i in got)
                assert reg.pick("pay", key="k").id in {i.id for i in got}
        except Exception as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=reader) for _ in range(4)]
    for t in ts:
        t.start()
    for k in range(5):  # churn another service meanwhile
        discd.ctl("deregister", discd.register("churn", f"127.0.0.1:{7400 + k}"))
    for t in ts:
        t.join()
    assert errors == []


def test_large_results_grow_the_buffer(discd):
    with Discd("pybig") as d:
        tag = "x" * 250
        for k in range(40):
            d.register("big", f"127.0.0.1:{8000 + k}", *sum((["--tag", f"t{j}={tag}"]
                                                             for j in range(30)), []))
        with Registry(d.name) as r:
            deadline = time.monotonic() + 5 * slow()
            while r.count("big") < 40:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            got = r.lookup("big")  # > 64 KiB: the first call answers ENOBUFS
            assert len(got) == 40 and all(len(i.tags) == 30 for i in got)


def test_closed_registry_and_other_process(discd, reg):
    r = Registry(discd.name)
    r.close()
    with pytest.raises(ValueError):
        r.lookup("pay")
    # A reader in another process sees the same picture.
    code = ("import discshm, sys; r = discshm.Registry(sys.argv[1]); "
            "print(len(r.lookup('pay')), r.count('orders'))")
    env = discd.env()
    pkg_dir = os.path.dirname(os.path.dirname(os.path.abspath(discshm.__file__)))
    env["PYTHONPATH"] = pkg_dir + ":" + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code, discd.name], capture_output=True,
                         text=True, env=env, check=True).stdout
    assert out.split() == ["3", "1"]


def test_stale_after_the_writer_stops():
    d = Discd("pystale").start()
    try:
        d.register("s", "127.0.0.1:7601")
        with Registry(d.name) as r:
            deadline = time.monotonic() + 5 * slow()
            while "s" not in r:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            st = r.status()
            assert r.stale() == 0 and st.stale == 0 and st.reason == "none"
            assert st.writer_dead_since_ms == 0 and st.writer_dead_after_ms >= 2000
            assert d.stop() == 0
            st = r.status()
            assert not st.writer_alive and st.degraded and st.reason == "writer-stopped"
            assert st.flags & discshm.ST_WRITER_STOPPED
            assert r.stale() & discshm.STALE_WRITER_DEAD
            assert abs(st.writer_dead_since_ms - time.time() * 1000) < 60_000
            # The last picture still answers.
            assert [i.address for i in r.lookup("s")] == ["127.0.0.1:7601"]
    finally:
        d.cleanup()


def test_version_cmp():
    assert discshm.version_cmp("1.10", "1.9") > 0
    assert discshm.version_cmp("2.0-rc.1", "2.0") < 0
    assert discshm.version_cmp("1.2", "1.2.0") == 0


def test_open_options_dir_and_owner(discd, reg):
    """dir= and owner= reach disc_open_ex: the right owner opens the same
    registry from an explicit directory (with $DISCSHM_DIR pointing elsewhere),
    a wrong owner is refused with EPERM and libdiscshm's message naming the
    path and both uids, and a wrong directory is ENOENT."""
    regdir = os.environ["DISCSHM_DIR"]
    me = os.getuid()
    other = 65534 if me != 65534 else 65533
    saved = os.environ.pop("DISCSHM_DIR")
    try:
        with Registry(discd.name, dir=regdir, owner=me) as r:
            assert sorted(i.id for i in r.lookup("pay")) == \
                sorted(reg.ids[k] for k in ("pay1", "pay2", "pay3"))
        with pytest.raises(discshm.DiscError) as e:
            Registry(discd.name, dir=regdir, owner=other)
        assert e.value.errno == errno.EPERM
        assert f"uid {me}" in str(e.value) and f"uid {other}" in str(e.value), str(e.value)
        assert regdir in str(e.value), str(e.value)
        with pytest.raises(NotFoundError):
            Registry(discd.name, dir=os.path.join(regdir, "no-such-dir"))
        with pytest.raises(ValueError):
            Registry(discd.name, dir=regdir, owner=-1)
    finally:
        os.environ["DISCSHM_DIR"] = saved
