/* SPDX-License-Identifier: MIT */
/*
 * test_fastreq.c — the control thread's register/deregister fast path
 * (daemon/control/fastreq.c) in-process: the lines it takes give the same
 * instance, seq and id as jansson's path (json_loadb with duplicates
 * refused, then instance_from_request), a refused instance gives the same
 * error, and every shape it leaves to jansson is left.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fastreq.h"
#include "instance.h"

static const struct instance_defaults defs = {
    .host = "hostA", .az = "az1", .interval_ms = 1000, .timeout_ms = 500, .misses = 3};

static struct ctl_fast fast; /* large: not on the stack */

/* jansson's path for a register line: rc and *out / *err. */
static int via_jansson(const char *line, struct instance **out, struct instance_error *err)
{
    json_t *msg = json_loadb(line, strlen(line), JSON_REJECT_DUPLICATES, NULL);
    cr_assert(msg, "jansson cannot parse a line the fast path took: %s", line);
    cr_assert_str_eq(json_string_value(json_object_get(msg, "op")), "register");
    int rc = instance_from_request(json_object_get(msg, "instance"), json_object_get(msg, "check"),
                                   &defs, out, err);
    json_decref(msg);
    return rc;
}

/* Both paths build the same instance (but for the fresh id and time). */
static void same_instance(struct instance *a, struct instance *b)
{
    memcpy(b->id, a->id, sizeof(a->id));
    b->registered_at_ms = a->registered_at_ms;
    json_t *ja = instance_to_json(a, INSTANCE_JSON_CHECK);
    json_t *jb = instance_to_json(b, INSTANCE_JSON_CHECK);
    cr_assert(ja && jb);
    char *sa = json_dumps(ja, JSON_COMPACT), *sb = json_dumps(jb, JSON_COMPACT);
    cr_assert(json_equal(ja, jb), "fast %s\njansson %s", sa, sb);
    cr_assert_eq(memcmp(&a->check, &b->check, sizeof(a->check)), 0);
    cr_assert_eq(a->health, b->health);
    free(sa);
    free(sb);
    json_decref(ja);
    json_decref(jb);
}

static const char *const taken[] = {
    "{\"op\":\"register\",\"instance\":{\"service\":\"svc\",\"address\":\"10.0.0.1:80\"}}",
    "{\"op\":\"register\",\"instance\":{\"service\":\"pubbench\",\"version\":\"1.0\","
    "\"address\":\"10.0.1.2:8080\",\"tags\":{\"env\":\"bench\"}},\"check\":{\"type\":\"none\"}}",
    "  { \"seq\" : 7 , \"op\" : \"register\" ,\t\"instance\" : { \"service\" : \"a.b_c:d-e\" , "
    "\"host\":\"h1\",\"az\":\"\",\"network\":\"unix\",\"address\":\"/run/x.sock\",\"weight\":250,"
    "\"tags\":{}} , \"check\" : { } }  \r",
    "{\"op\":\"register\",\"instance\":{\"service\":\"web\",\"address\":\"[::1]:443\",\"tags\":"
    "{\"a\":\"1\",\"b\":\"\",\"zone\":\"x y\"}},\"check\":{\"type\":\"http\",\"interval_ms\":2000,"
    "\"timeout_ms\":700,\"misses\":5,\"path\":\"/healthz\",\"deregister_after_ms\":60000,"
    "\"maintenance\":\"upgrading\"}}",
    "{\"op\":\"register\",\"instance\":{\"service\":\"t\",\"address\":\"h:1\"},\"check\":{\"type\":"
    "\"ttl\",\"ttl_ms\":5000},\"seq\":123456789012345678}",
    "{\"op\":\"register\",\"instance\":{\"service\":\"t\",\"address\":\"h:1\"},\"check\":{\"type\":"
    "\"tcp\",\"target\":\"127.0.0.1:9\"},\"seq\":0}",
};

Test(fastreq, takes_plain_register_lines_and_builds_what_jansson_builds)
{
    for (size_t k = 0; k < sizeof(taken) / sizeof(taken[0]); k++) {
        const char *line = taken[k];
        cr_assert_eq(ctl_fast_scan(line, strlen(line), &fast), 1, "not taken: %s", line);
        cr_assert_eq(fast.op, CTL_FAST_REGISTER);
        struct instance *a = NULL, *b = NULL;
        struct instance_error ea = {0}, eb = {0};
        int ra = instance_from_fields(fast.instance, fast.check, &defs, &a, &ea);
        int rb = via_jansson(line, &b, &eb);
        cr_assert_eq(ra, 0, "%s: %s", line, ea.message);
        cr_assert_eq(rb, 0, "%s: %s", line, eb.message);
        same_instance(a, b);
        instance_unref(a);
        instance_unref(b);
    }
    const char *l = taken[2];
    cr_assert_eq(ctl_fast_scan(l, strlen(l), &fast), 1);
    cr_assert(fast.has_seq);
    cr_assert_eq(fast.seq, 7);
    l = taken[4];
    cr_assert_eq(ctl_fast_scan(l, strlen(l), &fast), 1);
    cr_assert_eq(fast.seq, 123456789012345678LL);
    l = taken[0];
    cr_assert_eq(ctl_fast_scan(l, strlen(l), &fast), 1);
    cr_assert_not(fast.has_seq);
    cr_assert_null(fast.check);
}

/* Lines it scans whose instance is refused: the same error as jansson's
 * path (the control thread then lets that path reply). */
Test(fastreq, refused_instances_fail_as_on_the_jansson_path)
{
    static const char *const bad[] = {
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"nope\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s s\",\"address\":\"h:1\"}}",
        "{\"op\":\"register\",\"instance\":{\"address\":\"h:1\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\",\"color\":"
        "\"red\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\",\"weight\":\"9\"}"
        "}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\",\"weight\":0}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\",\"tags\":{\"k\":"
        "1}}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\",\"tags\":\"x\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\",\"endpoints\":{}}"
        "}",
        "{\"op\":\"register\",\"instance\":{\"service\":7,\"address\":\"h:1\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"},\"check\":{"
        "\"type\":"
        "\"ttl\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"},\"check\":{"
        "\"when\":"
        "\"now\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"},\"check\":{"
        "\"type\":"
        "\"http\",\"interval_ms\":1000,\"timeout_ms\":1000}}",
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        const char *line = bad[k];
        cr_assert_eq(ctl_fast_scan(line, strlen(line), &fast), 1, "not taken: %s", line);
        struct instance *a = NULL, *b = NULL;
        struct instance_error ea = {0}, eb = {0};
        int ra = instance_from_fields(fast.instance, fast.check, &defs, &a, &ea);
        int rb = via_jansson(line, &b, &eb);
        cr_assert(ra < 0 && rb < 0, "accepted: %s", line);
        cr_assert_eq(ra, rb);
        cr_assert_str_eq(ea.field, eb.field, "%s", line);
        cr_assert_str_eq(ea.message, eb.message, "%s", line);
    }
}

Test(fastreq, deregister_lines_give_their_id)
{
    const char *line = "{\"op\":\"deregister\",\"id\":\"0b6c3f0e-6b8e-4b55-9d2b-1a2b3c4d5e6f\","
                       "\"seq\":42}";
    cr_assert_eq(ctl_fast_scan(line, strlen(line), &fast), 1);
    cr_assert_eq(fast.op, CTL_FAST_DEREGISTER);
    cr_assert_str_eq(fast.id, "0b6c3f0e-6b8e-4b55-9d2b-1a2b3c4d5e6f");
    cr_assert_eq(fast.seq, 42);
    line = "{\"op\":\"deregister\",\"id\":\"not-a-uuid\"}"; /* checked by the caller */
    cr_assert_eq(ctl_fast_scan(line, strlen(line), &fast), 1);
    cr_assert_str_eq(fast.id, "not-a-uuid");
}

/* Every shape outside the plain one is left to jansson (which parses it,
 * or refuses it with its own message). */
Test(fastreq, leaves_other_shapes_to_jansson)
{
    static const char *const left[] = {
        "",
        "   ",
        "[]",
        "{}",
        "{\"op\":\"status\"}",
        "{\"op\":\"register\"}",
        "{\"op\":\"deregister\"}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\\u0041\",\"address\":\"h:1\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\\\"\",\"address\":\"h:1\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"caf\xc3\xa9\",\"address\":\"h:1\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\x7f\",\"address\":\"h:1\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\",\"endpoints\":[]}"
        "}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"},\"check\":null}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"},\"seq\":-1}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"},\"seq\":1.5}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"},\"seq\":1e3}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"},\"seq\":01}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"},\"seq\":"
        "1234567890123456789}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"},\"seq\":true}",
        "{\"op\":\"register\",\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":"
        "\"h:1\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"service\":\"t\",\"address\":\"h:"
        "1\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"},\"extra\":"
        "\"x\"}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"},\"id\":\"x\"}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"}} x",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"},}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"}",
        "{\"op\":\"register\" \"instance\":{\"service\":\"s\",\"address\":\"h:1\"}}",
        "{\"op\"\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\",\"tags\":{\"a\":"
        "{\"b\":\"c\"}}}}",
        "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\"}}\n",
        "{\"op\":\"register\",\r\"instance\":{\"service\":\"s\",\"address\":\"h:1\"}}",
        "{\"op\":\"deregister\",\"id\":\"x\",\"check\":{}}",
        "{\"op\":7,\"id\":\"x\"}",
    };
    for (size_t k = 0; k < sizeof(left) / sizeof(left[0]); k++)
        cr_assert_eq(ctl_fast_scan(left[k], strlen(left[k]), &fast), 0, "taken: %s", left[k]);
    /* an embedded NUL byte */
    const char nul[] = "{\"op\":\"deregister\",\"id\":\"a\0b\"}";
    cr_assert_eq(ctl_fast_scan(nul, sizeof(nul) - 1, &fast), 0);
    /* longer than CTL_FAST_LINE_MAX: jansson's, even when plain */
    static char big[CTL_FAST_LINE_MAX + 200];
    int n = snprintf(big, sizeof(big),
                     "{\"op\":\"register\",\"instance\":{\"service\":\"s\","
                     "\"address\":\"h:1\",\"version\":\"");
    memset(big + n, 'v', CTL_FAST_LINE_MAX);
    strcpy(big + n + CTL_FAST_LINE_MAX, "\"}}");
    cr_assert_eq(ctl_fast_scan(big, strlen(big), &fast), 0);
}

/* Tags: more than the flat object holds is left to jansson; up to it,
 * taken in order. */
Test(fastreq, tags_in_order_and_overflow)
{
    char line[1024];
    int n = snprintf(line, sizeof(line),
                     "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\","
                     "\"tags\":{");
    for (int i = 0; i < INSTANCE_FOBJ_MAX; i++)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "%s\"k%02d\":\"v%d\"", i ? "," : "",
                      INSTANCE_FOBJ_MAX - i, i);
    snprintf(line + n, sizeof(line) - (size_t)n, "}}}");
    cr_assert_eq(ctl_fast_scan(line, strlen(line), &fast), 1);
    struct instance *a = NULL, *b = NULL;
    struct instance_error ea = {0}, eb = {0};
    cr_assert_eq(instance_from_fields(fast.instance, fast.check, &defs, &a, &ea), 0, "%s",
                 ea.message);
    cr_assert_eq(via_jansson(line, &b, &eb), 0);
    cr_assert_eq(a->n_tags, INSTANCE_FOBJ_MAX);
    cr_assert_str_eq(a->tags[0].key, b->tags[0].key);
    same_instance(a, b);
    instance_unref(a);
    instance_unref(b);
    n = snprintf(line, sizeof(line),
                 "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\","
                 "\"tags\":{");
    for (int i = 0; i <= INSTANCE_FOBJ_MAX; i++)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "%s\"k%d\":\"v\"", i ? "," : "", i);
    snprintf(line + n, sizeof(line) - (size_t)n, "}}}");
    cr_assert_eq(ctl_fast_scan(line, strlen(line), &fast), 0);
}
