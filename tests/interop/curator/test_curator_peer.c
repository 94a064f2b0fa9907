/* SPDX-License-Identifier: MIT */
/*
 * test_curator_peer — the Curator test rig itself, against a real ZooKeeper:
 * CuratorPeer (Apache Curator's ServiceDiscovery from Debian's jars) writes
 * x-discovery documents where and as the import format expects them
 * (<base>/<name>/<id>, ephemeral, owned by its session; JSON name, id,
 * address, port, sslPort, payload with Jackson's "@class", registrationTimeUTC,
 * serviceType, uriSpec parts, enabled only outside compatible mode), removes
 * them when it unregisters, and loses them when it is SIGKILLed and its
 * session expires. What daemon/zk/formats/curator.c parses rests on these
 * facts; the discd tests (test_curator_interop) rest on this rig.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zookeeper/zookeeper.h>

#include "curator_peer.h"
#include "daemon_util.h"
#include "zk_server.h"
#include "zkc.h"

#define PEER_SESSION_MS 4000

static struct zk_cluster zk;
static struct cpeer peer, compat;
static zhandle_t *zh;

static void setup(void)
{
    cr_assert_eq(zk_cluster_start(&zk, 1, 60000), 0, "ZooKeeper did not start");
    zh = zkc_open(zk.connect, NULL, 10000);
    cr_assert(zh);
}

static void teardown(void)
{
    cpeer_kill(&peer);
    cpeer_kill(&compat);
    zkc_close(zh);
    zh = NULL;
    zk_cluster_destroy(&zk);
}

TestSuite(curator_peer, .init = setup, .fini = teardown);

/* The node's data parsed, and its ephemeral owner as hex. */
static json_t *read_doc(const char *path, char owner[32])
{
    char buf[8192];
    int rc = zkc_get(zh, path, buf, sizeof(buf), NULL);
    cr_assert_eq(rc, ZOK, "get %s: %s", path, zerror(rc));
    struct Stat st;
    cr_assert_eq(zoo_exists(zh, path, 0, &st), ZOK);
    snprintf(owner, 32, "%llx", (unsigned long long)st.ephemeralOwner);
    json_error_t err;
    json_t *doc = json_loads(buf, 0, &err);
    cr_assert(doc, "%s is not JSON: %s", path, buf);
    return doc;
}

Test(curator_peer, writes_x_discovery_documents_and_removes_them)
{
    struct cpeer_opts o = {.connect = zk.connect, .session_ms = PEER_SESSION_MS};
    cr_assert_eq(cpeer_start(&peer, &o), 0);
    long long t0 = proc_real_ms();
    json_t *r = cpeer_ok(&peer, "{\"op\":\"register\",\"instance\":{\"name\":\"pay\","
                                "\"address\":\"10.0.0.1\",\"port\":8080,\"sslPort\":8443,"
                                "\"payload\":{\"zone\":\"a\",\"n\":3},"
                                "\"uriSpec\":\"{scheme}://{address}:{port}\"}}");
    char id[128], path[300], owner[32];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r, "id")));
    json_decref(r);
    cr_assert_eq(strlen(id), 36, "Curator makes UUID ids: %s", id);
    snprintf(path, sizeof(path), "/services/pay/%s", id);

    json_t *d = read_doc(path, owner);
    cr_expect_str_eq(owner, peer.session, "ephemeral, owned by the peer's session");
    cr_expect_str_eq(json_string_value(json_object_get(d, "name")), "pay");
    cr_expect_str_eq(json_string_value(json_object_get(d, "id")), id);
    cr_expect_str_eq(json_string_value(json_object_get(d, "address")), "10.0.0.1");
    cr_expect_eq(json_integer_value(json_object_get(d, "port")), 8080);
    cr_expect_eq(json_integer_value(json_object_get(d, "sslPort")), 8443);
    cr_expect_str_eq(json_string_value(json_object_get(d, "serviceType")), "DYNAMIC");
    cr_expect(json_is_true(json_object_get(d, "enabled")));
    json_int_t ts = json_integer_value(json_object_get(d, "registrationTimeUTC"));
    cr_expect(ts >= t0 - 60000 && ts <= proc_real_ms() + 60000, "registrationTimeUTC %lld",
              (long long)ts);
    json_t *pl = json_object_get(d, "payload");
    cr_expect(json_is_string(json_object_get(pl, "@class")), "Jackson's type id in the payload");
    cr_expect_str_eq(json_string_value(json_object_get(pl, "zone")), "a");
    cr_expect_eq(json_integer_value(json_object_get(pl, "n")), 3);
    json_t *parts = json_object_get(json_object_get(d, "uriSpec"), "parts");
    cr_expect_eq(json_array_size(parts), 5, "uriSpec as Jackson writes UriSpec: parts");
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(parts, 0), "value")),
                     "scheme");
    cr_expect(json_is_true(json_object_get(json_array_get(parts, 0), "variable")));
    json_decref(d);

    /* Disabled, with an id that is not a UUID. */
    json_decref(cpeer_ok(&peer,
                         "{\"op\":\"register\",\"instance\":{\"name\":\"pay\",\"id\":"
                         "\"pay-2\",\"address\":\"10.0.0.2\",\"port\":81,\"enabled\":false}}"));
    d = read_doc("/services/pay/pay-2", owner);
    cr_expect(json_is_false(json_object_get(d, "enabled")));
    cr_expect(json_is_null(json_object_get(d, "payload")));
    cr_expect(json_is_null(json_object_get(d, "sslPort")));
    json_decref(d);

    /* Curator's default serializer (compatible mode) writes no "enabled". */
    o.compat = true;
    cr_assert_eq(cpeer_start(&compat, &o), 0);
    json_decref(cpeer_ok(&compat, "{\"op\":\"register\",\"instance\":{\"name\":\"pay\",\"id\":"
                                  "\"old-1\",\"address\":\"10.0.0.3\",\"port\":82}}"));
    d = read_doc("/services/pay/old-1", owner);
    cr_expect_str_eq(owner, compat.session);
    cr_expect_null(json_object_get(d, "enabled"), "compatible mode writes no enabled field");
    cr_expect_str_eq(json_string_value(json_object_get(d, "id")), "old-1");
    json_decref(d);

    /* queryForInstances sees all three, across the two peers. */
    r = cpeer_ok(&peer, "{\"op\":\"query\",\"name\":\"pay\"}");
    cr_expect_eq(json_array_size(json_object_get(r, "instances")), 3);
    json_decref(r);

    json_decref(cpeer_ok(&peer, "{\"op\":\"unregister\",\"id\":\"%s\"}", id));
    cr_expect_eq(zoo_exists(zh, path, 0, NULL), ZNONODE, "unregister deletes the node");
    cr_expect_eq(zkc_count(zh, "/services/pay"), 2);
}

Test(curator_peer, killed_peer_loses_its_nodes_at_session_expiry)
{
    struct cpeer_opts o = {.connect = zk.connect, .session_ms = PEER_SESSION_MS};
    cr_assert_eq(cpeer_start(&peer, &o), 0);
    json_decref(cpeer_ok(&peer, "{\"op\":\"register\",\"instance\":{\"name\":\"k\",\"id\":"
                                "\"k-1\",\"address\":\"10.0.0.9\",\"port\":9}}"));
    cr_assert_eq(zoo_exists(zh, "/services/k/k-1", 0, NULL), ZOK);
    long long t0 = proc_now_ms();
    cpeer_kill(&peer);
    cr_expect_eq(zoo_exists(zh, "/services/k/k-1", 0, NULL), ZOK,
                 "the node outlives the process until the session expires");
    int rc = ZOK;
    while (rc == ZOK && proc_now_ms() - t0 < 4 * PEER_SESSION_MS * dt_slow()) {
        proc_sleep_ms(100);
        rc = zoo_exists(zh, "/services/k/k-1", 0, NULL);
    }
    cr_expect_eq(rc, ZNONODE, "the node is gone once the session expired");
}
