/* SPDX-License-Identifier: MIT */
/*
 * test_instance.c — the instance model in-process: defaults, validation
 * errors that name the field, and the document round trip used for
 * ZooKeeper / the file cache.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "instance.h"

static const struct instance_defaults defs = {
    .host = "hostA", .az = "az1", .interval_ms = 1000, .timeout_ms = 500, .misses = 3};

static struct instance *parse(const char *inst, const char *check, struct instance_error *err)
{
    json_t *ji = json_loads(inst, 0, NULL);
    json_t *jc = check ? json_loads(check, 0, NULL) : NULL;
    cr_assert(ji);
    struct instance *out = NULL;
    int rc = instance_from_request(ji, jc, &defs, &out, err);
    json_decref(ji);
    json_decref(jc);
    cr_assert_eq(rc < 0, out == NULL);
    return out;
}

Test(instance, defaults_are_applied)
{
    struct instance_error err;
    struct instance *i = parse("{\"service\":\"svc\",\"address\":\"[::1]:80\"}", NULL, &err);
    cr_assert(i, "%s: %s", err.field, err.message);
    cr_assert_str_eq(i->host, "hostA");
    cr_assert_str_eq(i->az, "az1");
    cr_assert_str_eq(i->version, "");
    cr_assert_eq(i->weight, 10);
    cr_assert_eq(i->addr_kind, DISC_ADDR_TCP);
    cr_assert_eq(i->check.kind, CHECK_SESSION);
    cr_assert_eq(i->check.interval_ms, 1000);
    cr_assert_eq(i->check.timeout_ms, 500);
    cr_assert_eq(i->check.misses, 3);
    cr_assert_eq(instance_check_id(i->id), 0);
    cr_assert_eq(i->origin, DISC_ORIGIN_LOCAL);
    instance_unref(i);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* New ids are random version-4 UUIDs, lower case, all different. */
Test(instance, new_ids_are_distinct_version_4_uuids)
{
    enum { N = 2000 };
    static char ids[N][DISC_ID_LEN + 1];
    for (int k = 0; k < N; k++) {
        struct instance_error err;
        struct instance *i = parse("{\"service\":\"svc\",\"address\":\"[::1]:80\"}", NULL, &err);
        cr_assert(i, "%s: %s", err.field, err.message);
        cr_assert_eq(instance_check_id(i->id), 0, "%s", i->id);
        cr_assert_eq(strlen(i->id), DISC_ID_LEN);
        cr_assert_eq(i->id[14], '4', "%s: not version 4", i->id);
        cr_assert(strchr("89ab", i->id[19]), "%s: not the RFC 4122 variant", i->id);
        for (const char *p = i->id; *p; p++)
            cr_assert(!(*p >= 'A' && *p <= 'F'), "%s: upper case", i->id);
        memcpy(ids[k], i->id, DISC_ID_LEN + 1);
        instance_unref(i);
    }
    qsort(ids, N, sizeof(ids[0]), cmp_id);
    for (int k = 1; k < N; k++)
        cr_assert_str_neq(ids[k - 1], ids[k], "the same id twice");
}

Test(instance, check_defaults_follow_the_kind)
{
    struct instance_error err;
    struct instance *i = parse("{\"service\":\"svc\",\"address\":\"h:80\"}",
                               "{\"type\":\"http\",\"interval_ms\":200}", &err);
    cr_assert(i, "%s: %s", err.field, err.message);
    cr_assert_eq(i->check.kind, CHECK_HTTP);
    cr_assert_str_eq(i->check.target, "h:80", "target defaults to the address");
    cr_assert_str_eq(i->check.path, "/");
    cr_assert_lt(i->check.timeout_ms, 200, "timeout clamped below the interval");
    instance_unref(i);
    i = parse("{\"service\":\"svc\",\"network\":\"unix\",\"address\":\"/run/x.sock\"}",
              "{\"type\":\"tcp\"}", &err);
    cr_assert_null(i);
    cr_assert_str_eq(err.field, "check.target");
}

Test(instance, errors_name_the_field)
{
    struct {
        const char *inst, *check, *field;
    } t[] = {
        {"{\"address\":\"h:1\"}", NULL, "instance.service"},
        {"{\"service\":\"s\",\"address\":\"h:1\",\"tags\":{\"a\":\"b\",\"c\":[]}}", NULL,
         "instance.tags.c"},
        {"{\"service\":\"s\",\"address\":\"h:1\",\"endpoints\":[{\"name\":\"x\",\"p95_us\":"
         "4294967296}]}",
         NULL, "instance.endpoints[0].p95_us"},
        {"{\"service\":\"s\",\"address\":\"h:1\",\"host\":\"\"}", NULL, "instance.host"},
        {"{\"service\":\"s\",\"address\":\"h:1\",\"az\":7}", NULL, "instance.az"},
        {"{\"service\":\"s\",\"address\":\"h:1\"}", "{\"type\":\"ttl\",\"ttl_ms\":5}",
         "check.ttl_ms"},
    };
    for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
        struct instance_error err = {0};
        struct instance *i = parse(t[k].inst, t[k].check, &err);
        cr_assert_null(i, "case %zu accepted", k);
        cr_assert_str_eq(err.code, "bad_request");
        cr_assert_str_eq(err.field, t[k].field, "case %zu: %s", k, err.message);
    }
}

Test(instance, document_round_trip)
{
    struct instance_error err;
    struct instance *a =
        parse("{\"service\":\"svc\",\"version\":\"2\",\"address\":\"10.1.2.3:443\",\"weight\":7,"
              "\"tags\":{\"k\":\"v\",\"x\":\"\"},\"endpoints\":[{\"name\":\"e\",\"request\":\"Q\","
              "\"response\":\"A\",\"mean_us\":3,\"p95_us\":9}]}",
              "{\"type\":\"none\"}", &err);
    cr_assert(a);
    json_t *doc = instance_to_json(a, 0);
    cr_assert(doc);
    struct instance *b = NULL;
    cr_assert_eq(instance_from_document(doc, &b, &err), 0, "%s: %s", err.field, err.message);
    json_t *doc2 = instance_to_json(b, 0);
    /* A document read back is remote (it came from another host) even though
     * its author wrote origin "local"; everything else is identical. */
    cr_assert_str_eq(json_string_value(json_object_get(doc2, "origin")), "remote");
    cr_assert_eq(b->origin, DISC_ORIGIN_REMOTE);
    json_object_del(doc, "origin");
    json_object_del(doc2, "origin");
    char *s1 = json_dumps(doc, JSON_SORT_KEYS), *s2 = json_dumps(doc2, JSON_SORT_KEYS);
    cr_assert_str_eq(s1, s2);
    struct segw_instance si;
    instance_to_segw(b, &si);
    cr_assert_str_eq(si.id, a->id);
    cr_assert_eq(si.n_tags, 2);
    cr_assert_eq(si.endpoints[0].p95_us, 9);
    free(s1);
    free(s2);
    json_decref(doc);
    json_decref(doc2);
    instance_unref(a);
    instance_unref(b);

    json_t *bad = json_loads(
        "{\"id\":\"nope\",\"service\":\"s\",\"host\":\"h\",\"address\":\"h:1\"}", 0, NULL);
    cr_assert_neq(instance_from_document(bad, &b, &err), 0);
    cr_assert_str_eq(err.field, "instance.id");
    json_decref(bad);
}

/* owner_uid: carried by documents (ZooKeeper, file cache), unknown when a
 * document does not say, never settable through a registration. */
Test(instance, owner_uid_in_documents)
{
    struct instance_error err;
    struct instance *i = parse("{\"service\":\"svc\",\"address\":\"h:1\"}", NULL, &err);
    cr_assert(i);
    i->owner_uid = 65534;
    json_t *doc = instance_to_json(i, 0);
    cr_assert_eq(json_integer_value(json_object_get(doc, "owner_uid")), 65534);
    struct instance *back = NULL;
    cr_assert_eq(instance_from_document(doc, &back, &err), 0);
    cr_assert_eq(back->owner_uid, 65534u);
    instance_unref(back);
    json_object_del(doc, "owner_uid");
    cr_assert_eq(instance_from_document(doc, &back, &err), 0);
    cr_assert_eq(back->owner_uid, DISC_OWNER_UNKNOWN);
    instance_unref(back);
    json_object_set_new(doc, "owner_uid", json_integer((json_int_t)DISC_OWNER_UNKNOWN));
    cr_assert_lt(instance_from_document(doc, &back, &err), 0);
    cr_assert_str_eq(err.field, "instance.owner_uid");
    json_decref(doc);
    instance_unref(i);
    /* A client cannot claim an owner. */
    cr_assert_null(parse("{\"service\":\"svc\",\"address\":\"h:1\",\"owner_uid\":0}", NULL, &err));
}

/* A parsed instance keeps its strings and tags in one block; a clone has
 * its own copies and outlives the original (ASan in CI checks the frees). */
Test(instance, clone_outlives_a_parsed_instance)
{
    struct instance_error err;
    struct instance *i = parse("{\"service\":\"svc\",\"version\":\"2\",\"address\":\"h:80\","
                               "\"tags\":{\"b\":\"2\",\"a\":\"\",\"env\":\"prod\"}}",
                               NULL, &err);
    cr_assert(i, "%s: %s", err.field, err.message);
    cr_assert_eq(i->n_tags, 3);
    cr_assert_str_eq(i->tags[0].key, "b");
    cr_assert_str_eq(i->tags[1].value, "");
    cr_assert_str_eq(i->tags[2].value, "prod");
    struct instance *c = instance_clone(i);
    cr_assert(c);
    instance_unref(i);
    cr_assert_str_eq(c->service, "svc");
    cr_assert_str_eq(c->version, "2");
    cr_assert_str_eq(c->host, "hostA");
    cr_assert_str_eq(c->az, "az1");
    cr_assert_str_eq(c->address, "h:80");
    cr_assert_eq(c->n_tags, 3);
    cr_assert_str_eq(c->tags[0].key, "b");
    cr_assert_str_eq(c->tags[0].value, "2");
    cr_assert_str_eq(c->tags[2].key, "env");
    instance_unref(c);
}
