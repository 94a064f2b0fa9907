/* SPDX-License-Identifier: MIT */
/*
 * test_curator_interop — discd against a real Apache Curator
 * ServiceDiscovery (CuratorPeer.java, Debian's jars), a real ZooKeeper and
 * real discd processes on two "hosts" (own host ids, registries, sockets):
 *
 * - import: instances the Java peer registers show up in discd's segment
 *   (read through libdiscshm) with the mapped fields, go when it
 *   unregisters, and go when it is SIGKILLed and its session expires;
 * - export: the Java peer's queryForInstances finds discd's local
 *   instances (id = node name = discd's id), loses them on
 *   `discctl deregister` and `discctl maint on`, and gets them back on
 *   `maint off`; with import and export on the same base path no instance
 *   is ever shown twice, on the exporting host or on the other one, and
 *   imported instances are not exported again.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "curator_peer.h"
#include "ctl_run.h"
#include "daemon_util.h"
#include "zk_server.h"
#include "zkd_util.h"

#define PEER_SESSION_MS 4000

static struct zk_cluster zk;
static struct cpeer peer;
static struct zkd a, b;
static char root[128];
static struct zkd_conf conf;

static void setup(void)
{
    cr_assert_eq(zk_cluster_start(&zk, 1, 60000), 0, "ZooKeeper did not start");
    zkd_root(root, sizeof(root), "curator");
}

static void teardown(void)
{
    cpeer_kill(&peer);
    zkd_abort(&a);
    zkd_abort(&b);
    zk_cluster_destroy(&zk);
    zkd_conf_remove(&conf);
    ctl_run_release_all();
}

TestSuite(curator_interop, .init = setup, .fini = teardown);

/* Poll until the peer's queryForInstances(name) returns want instances;
 * returns the last answer (caller decrefs). */
static json_t *peer_wait_query(const char *name, size_t want, int timeout_ms)
{
    long long end = proc_now_ms() + (long long)timeout_ms * dt_slow();
    for (;;) {
        json_t *r = cpeer_ok(&peer, "{\"op\":\"query\",\"name\":\"%s\"}", name);
        if (json_array_size(json_object_get(r, "instances")) == want || proc_now_ms() > end)
            return r;
        json_decref(r);
        proc_sleep_ms(100);
    }
}

/* The instance id of z's segment, copied into buf (asserts it is there). */
static struct disc_instance *lookup_id(struct zkd *z, const char *id, char *buf, size_t len)
{
    struct disc_instance *inst = NULL;
    int rc = disc_lookup_id(z->h, id, buf, len, &inst, NULL);
    cr_assert_eq(rc, 0, "instance %s not in %s's segment: %d", id, z->host_id, rc);
    return inst;
}

/* The one instance of svc in z's segment (asserts there is exactly one). */
static struct disc_instance *only(struct zkd *z, const char *svc, char *buf, size_t len)
{
    struct disc_instance *list = NULL;
    int n = disc_lookup(z->h, svc, buf, len, &list, NULL);
    cr_assert_eq(n, 1, "%s on %s: %d instances, want 1", svc, z->host_id, n);
    return list;
}

static long long import_counter(struct zkd *z, const char *key)
{
    json_t *r = dt_call1(&z->proc, "{\"op\":\"status\"}");
    cr_assert(dt_ok(r), "status failed");
    json_t *src = json_array_get(json_object_get(json_object_get(r, "zookeeper"), "import"), 0);
    if (!json_is_object(src)) {
        char *t = json_dumps(json_object_get(json_object_get(r, "zookeeper"), "import"),
                             JSON_COMPACT | JSON_ENCODE_ANY);
        cr_assert_fail("status.zookeeper.import[0] missing: %s", t ? t : "?");
    }
    long long v = json_integer_value(json_object_get(src, key));
    json_decref(r);
    return v;
}

/* discctl args... on z's discd: must succeed. */
static void discctl(struct zkd *z, const char *const *args)
{
    struct ctl_result r = ctl_run(&z->proc, 10000 * dt_slow(), args);
    cr_assert_eq(r.code, 0, "discctl %s failed: %s%s", args[0], r.out, r.err);
    ctl_result_free(&r);
}

Test(curator_interop, java_instances_appear_in_discd_and_go_on_unregister_and_expiry)
{
    zkd_conf_write(&conf, "import = curator\nzk-cooloff = 200\n");
    zkd_start_conf(&b, "b", zk.connect, root, &conf);

    struct cpeer_opts o = {.connect = zk.connect, .session_ms = PEER_SESSION_MS};
    cr_assert_eq(cpeer_start(&peer, &o), 0);
    json_t *r = cpeer_ok(&peer, "{\"op\":\"register\",\"instance\":{\"name\":\"pay\","
                                "\"address\":\"10.0.0.1\",\"port\":8080,\"sslPort\":8443,"
                                "\"payload\":{\"zone\":\"a\",\"tier\":2},"
                                "\"uriSpec\":\"{scheme}://{address}:{port}\"}}");
    char id1[64];
    snprintf(id1, sizeof(id1), "%s", json_string_value(json_object_get(r, "id")));
    json_decref(r);
    json_decref(cpeer_ok(&peer, "{\"op\":\"register\",\"instance\":{\"name\":\"pay\",\"id\":"
                                "\"pay-2\",\"address\":\"10.0.0.2\",\"port\":81,"
                                "\"enabled\":false}}"));
    cr_assert(zkd_wait_count(&b, "pay", 2, 15000), "discd b did not import both: %d",
              zkd_count(&b, "pay"));

    char buf[16384];
    struct disc_instance *i1 = lookup_id(&b, id1, buf, sizeof(buf));
    cr_expect_str_eq(i1->service, "pay");
    cr_expect_str_eq(i1->address, "10.0.0.1:8080");
    cr_expect_eq(i1->addr_kind, DISC_ADDR_TCP);
    cr_expect_eq(i1->origin, DISC_ORIGIN_REMOTE);
    cr_expect_eq(i1->health, DISC_HEALTH_PASSING);
    cr_expect_eq(i1->weight, 10);
    cr_expect_str_eq(disc_instance_tag_get(i1, "source") ?: "", "curator");
    cr_expect_str_eq(disc_instance_tag_get(i1, "zone") ?: "", "a");
    cr_expect_str_eq(disc_instance_tag_get(i1, "tier") ?: "", "2");
    cr_expect_str_eq(disc_instance_tag_get(i1, "endpoint.ssl") ?: "", "10.0.0.1:8443");
    cr_expect_str_eq(disc_instance_tag_get(i1, "service_type") ?: "", "DYNAMIC");
    cr_expect_str_eq(disc_instance_tag_get(i1, "uri_spec") ?: "", "{scheme}://{address}:{port}");

    /* pay-2: not a UUID (a derived id, the Curator id as a tag); disabled */
    struct disc_instance *list = NULL;
    int n = disc_lookup(b.h, "pay", buf, sizeof(buf), &list, NULL);
    cr_assert_eq(n, 2);
    struct disc_instance *i2 = strcmp(list[0].id, id1) == 0 ? &list[1] : &list[0];
    cr_expect_str_eq(disc_instance_tag_get(i2, "foreign_id") ?: "", "pay-2");
    cr_expect_eq(strlen(i2->id), 36);
    cr_expect_eq(i2->health, DISC_HEALTH_MAINTENANCE, "enabled=false: out of rotation");
    cr_expect_str_eq(i2->address, "10.0.0.2:81");

    /* unregister: gone from discd */
    json_decref(cpeer_ok(&peer, "{\"op\":\"unregister\",\"id\":\"%s\"}", id1));
    cr_assert(zkd_wait_count(&b, "pay", 1, 15000), "unregistered instance still there");
    cr_expect_neq(disc_lookup_id(b.h, id1, buf, sizeof(buf), &i1, NULL), 0);

    /* SIGKILL: the session expires, the node goes, discd drops it */
    cpeer_kill(&peer);
    cr_assert(zkd_wait_count(&b, "pay", 0, 4 * PEER_SESSION_MS + 15000),
              "instance of the killed peer still there after its session expired");
    zkd_finish(&b);
}

Test(curator_interop, curator_finds_discd_exports_and_nothing_appears_twice)
{
    zkd_conf_write(&conf, "import = curator\nexport-curator = /services\nzk-cooloff = 200\n");
    zkd_start_conf(&a, "a", zk.connect, root, &conf);
    zkd_start_conf(&b, "b", zk.connect, root, &conf);
    struct cpeer_opts o = {.connect = zk.connect, .session_ms = PEER_SESSION_MS};
    cr_assert_eq(cpeer_start(&peer, &o), 0);

    char id[DISC_ID_LEN + 1];
    zkd_register(&a, "cpp", "127.0.0.1:7000", id);
    json_t *r = peer_wait_query("cpp", 1, 15000);
    json_t *inst = json_array_get(json_object_get(r, "instances"), 0);
    cr_assert(inst, "Curator does not see discd's export");
    cr_expect_str_eq(json_string_value(json_object_get(inst, "id")), id);
    cr_expect_str_eq(json_string_value(json_object_get(inst, "name")), "cpp");
    cr_expect_str_eq(json_string_value(json_object_get(inst, "address")), "127.0.0.1");
    cr_expect_eq(json_integer_value(json_object_get(inst, "port")), 7000);
    cr_expect_str_eq(json_string_value(json_object_get(inst, "serviceType")), "DYNAMIC");
    cr_expect(json_is_true(json_object_get(inst, "enabled")));
    json_decref(r);

    /* Both discd have seen the exported node (import ignored it) and show
     * the instance exactly once: a's local one, b's from the native tree. */
    long long end = proc_now_ms() + 15000LL * dt_slow();
    while ((import_counter(&a, "ignored_now") < 1 || import_counter(&b, "ignored_now") < 1) &&
           proc_now_ms() < end)
        proc_sleep_ms(100);
    cr_expect_eq(import_counter(&a, "ignored_now"), 1);
    cr_expect_eq(import_counter(&b, "ignored_now"), 1);
    cr_assert(zkd_wait_count(&b, "cpp", 1, 15000));
    char buf[16384];
    struct disc_instance *x = only(&a, "cpp", buf, sizeof(buf));
    cr_expect_eq(x->origin, DISC_ORIGIN_LOCAL);
    x = only(&b, "cpp", buf, sizeof(buf));
    cr_expect_eq(x->origin, DISC_ORIGIN_REMOTE);
    cr_expect_str_eq(x->id, id);
    cr_expect_null(disc_instance_tag_get(x, "source"), "b shows the native instance");

    /* A Java instance is imported by both and exported by neither. */
    json_decref(cpeer_ok(&peer, "{\"op\":\"register\",\"instance\":{\"name\":\"pay\",\"id\":"
                                "\"j1\",\"address\":\"10.0.0.5\",\"port\":5}}"));
    cr_assert(zkd_wait_count(&a, "pay", 1, 15000));
    cr_assert(zkd_wait_count(&b, "pay", 1, 15000));
    r = cpeer_ok(&peer, "{\"op\":\"query\",\"name\":\"pay\"}");
    cr_expect_eq(json_array_size(json_object_get(r, "instances")), 1,
                 "an imported instance is not exported again");
    json_decref(r);

    /* maint on: out of rotation, withdrawn; off: back */
    discctl(&a, (const char *const[]){"maint", id, "on", NULL});
    json_decref(r = peer_wait_query("cpp", 0, 15000));
    r = cpeer_ok(&peer, "{\"op\":\"query\",\"name\":\"cpp\"}");
    cr_expect_eq(json_array_size(json_object_get(r, "instances")), 0, "maintenance: withdrawn");
    json_decref(r);
    discctl(&a, (const char *const[]){"maint", id, "off", NULL});
    r = peer_wait_query("cpp", 1, 15000);
    cr_expect_eq(json_array_size(json_object_get(r, "instances")), 1, "maint off: exported again");
    json_decref(r);

    /* discctl deregister: Curator stops seeing it, b drops it */
    discctl(&a, (const char *const[]){"deregister", id, NULL});
    r = peer_wait_query("cpp", 0, 15000);
    cr_expect_eq(json_array_size(json_object_get(r, "instances")), 0,
                 "deregistered instance still found by Curator");
    json_decref(r);
    cr_expect(zkd_wait_count(&b, "cpp", 0, 15000));
    cr_expect_eq(zkd_count(&a, "cpp"), 0);
    cpeer_stop(&peer);
    zkd_finish(&a);
    zkd_finish(&b);
}
