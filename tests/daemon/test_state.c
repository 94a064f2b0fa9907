/* SPDX-License-Identifier: MIT */
/*
 * test_state.c — the state journal's put record (daemon/state/state.c)
 * in-process: state_put_line writes, without a jansson tree, the very bytes
 * the jansson-built record gave (every field, escapes, UTF-8, every check
 * kind and option), and a journal written with it is read back by
 * state_open into the same instances, ids, owners and times.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "instance.h"
#include "state.h"

static const struct instance_defaults defs = {
    .host = "hostA", .az = "az1", .interval_ms = 1000, .timeout_ms = 500, .misses = 3};

/* The record as it was built before state_put_line: instance_to_json with
 * the check, trimmed and packed, dumped compact, "\n" appended. */
static char *jansson_line(const struct instance *inst)
{
    json_t *doc = instance_to_json(inst, INSTANCE_JSON_CHECK);
    cr_assert(doc, "instance_to_json failed");
    json_t *check = json_incref(json_object_get(doc, "check"));
    static const char *const drop[] = {"id",    "registered_at_ms", "health", "origin",
                                       "check", "owner_uid"};
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
        json_object_del(doc, drop[i]);
    json_t *rec = json_pack("{s:{s:s, s:I, s:I, s:o, s:o*}}", "put", "id", inst->id, "uid",
                            (json_int_t)inst->owner_uid, "registered_at_ms",
                            (json_int_t)inst->registered_at_ms, "instance", doc, "check", check);
    cr_assert(rec);
    char *s = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    cr_assert(s);
    size_t n = strlen(s);
    char *line = malloc(n + 2);
    cr_assert(line);
    memcpy(line, s, n);
    memcpy(line + n, "\n", 2);
    free(s);
    return line;
}

static void same_line(const struct instance *inst)
{
    size_t len = 0;
    char *ours = state_put_line(inst, &len);
    char *ref = jansson_line(inst);
    cr_assert(ours);
    cr_assert_eq(len, strlen(ours));
    cr_assert_str_eq(ours, ref, "state_put_line and jansson differ:\n%s%s", ours, ref);
    free(ours);
    free(ref);
}

static struct instance *parse(const char *inst, const char *check)
{
    json_t *ji = json_loads(inst, 0, NULL);
    json_t *jc = check ? json_loads(check, 0, NULL) : NULL;
    cr_assert(ji, "bad test JSON %s", inst);
    cr_assert(!check || jc, "bad test JSON %s", check);
    struct instance *out = NULL;
    struct instance_error err = {0};
    int rc = instance_from_request(ji, jc, &defs, &out, &err);
    json_decref(ji);
    json_decref(jc);
    cr_assert_eq(rc, 0, "%s: %s at %s", inst, err.message, err.field);
    return out;
}

/* Registrations as clients send them: every field, quotes, backslashes,
 * slashes and UTF-8 where the rules allow them, every check kind. */
static const char *const regs[][2] = {
    {"{\"service\":\"svc\",\"address\":\"10.0.0.1:80\"}", NULL},
    {"{\"service\":\"pay.v2_x-y\",\"version\":\"1.2.3-\\\"rc\\\"\\\\b\",\"host\":\"h/1\","
     "\"az\":\"\",\"network\":\"tcp\",\"address\":\"[::1]:443\",\"weight\":10000,"
     "\"tags\":{\"env\":\"prod\",\"quote\\\"key\":\"back\\\\slash\",\"utf8\":\"caf\\u00e9 "
     "\\u65e5\\ud83d\\ude00\",\"empty\":\"\",\"/\":\"a/b\"},"
     "\"endpoints\":[{\"name\":\"Get\\\"It\",\"request\":\"pkg.Req\",\"response\":\"pkg.Resp\","
     "\"mean_us\":120,\"p95_us\":4294967295},{\"name\":\"Put\",\"request\":\"a\\\\b\","
     "\"response\":\"\\u00fc\",\"mean_us\":0,\"p95_us\":0}]}",
     "{\"type\":\"http\",\"interval_ms\":2000,\"timeout_ms\":700,\"misses\":5,"
     "\"path\":\"/healthz?a=\\\"b\\\"&c=\\\\d\",\"deregister_after_ms\":60000,"
     "\"maintenance\":\"upgrading \\\"db\\\" \\u00e0 \\\\ 10/12\"}"},
    {"{\"service\":\"u\",\"network\":\"unix\",\"address\":\"/run/x \\\"y\\\".sock\",\"weight\":1}",
     "{\"type\":\"ttl\",\"ttl_ms\":5000,\"misses\":1}"},
    {"{\"service\":\"t\",\"address\":\"h:1\",\"tags\":{}}",
     "{\"type\":\"tcp\",\"target\":\"127.0.0.1:9\",\"deregister_after_ms\":100}"},
    {"{\"service\":\"n\",\"address\":\"h:2\"}", "{\"type\":\"none\",\"maintenance\":\"\"}"},
    {"{\"service\":\"s\",\"address\":\"h:3\"}", "{\"type\":\"session\",\"interval_ms\":50}"},
};
#define N_REGS (sizeof(regs) / sizeof(regs[0]))

Test(state, put_line_is_what_jansson_wrote_for_registrations)
{
    for (size_t k = 0; k < N_REGS; k++) {
        struct instance *inst = parse(regs[k][0], regs[k][1]);
        inst->owner_uid = k == 1 ? 4294967294u : (uint32_t)k * 1000;
        inst->registered_at_ms = k == 2 ? -1 : (int64_t)1764580000000 + (int64_t)k;
        same_line(inst);
        instance_unref(inst);
    }
}

/* A random string: printable ASCII (quotes and backslashes often), control
 * bytes 0x01-0x1f, DEL and two- to four-byte UTF-8 sequences. */
static void random_str(char *buf, size_t cap, unsigned *seed)
{
    size_t n = (size_t)(rand_r(seed) % 24), o = 0;
    while (n-- > 0 && o + 5 < cap) {
        int kind = rand_r(seed) % 8;
        if (kind == 0)
            buf[o++] = "\"\\/"[rand_r(seed) % 3];
        else if (kind == 1)
            buf[o++] = (char)(1 + rand_r(seed) % 0x1f);
        else if (kind == 2)
            buf[o++] = 0x7f;
        else if (kind == 3) { /* U+0080..U+07FF */
            unsigned cp = 0x80 + (unsigned)rand_r(seed) % 0x780;
            buf[o++] = (char)(0xc0 | cp >> 6);
            buf[o++] = (char)(0x80 | (cp & 0x3f));
        } else if (kind == 4) { /* U+0800..U+FFFF, no surrogates */
            unsigned cp = 0x800 + (unsigned)rand_r(seed) % 0xd000;
            buf[o++] = (char)(0xe0 | cp >> 12);
            buf[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            buf[o++] = (char)(0x80 | (cp & 0x3f));
        } else if (kind == 5) { /* U+10000.. */
            unsigned cp = 0x10000 + (unsigned)rand_r(seed) % 0xfffff;
            buf[o++] = (char)(0xf0 | cp >> 18);
            buf[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            buf[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            buf[o++] = (char)(0x80 | (cp & 0x3f));
        } else {
            buf[o++] = (char)(0x20 + rand_r(seed) % 0x5f);
        }
    }
    buf[o] = '\0';
}

/* src into dst, cut (if it must be) where a UTF-8 character starts. */
static void copy_utf8(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Every string field of an instance, filled with what no registration
 * would pass (control bytes too): the writer still escapes as jansson. */
Test(state, put_line_escapes_every_field_as_jansson)
{
    unsigned seed = 13;
    static char s[32][128];
    for (int iter = 0; iter < 3000; iter++) {
        for (size_t i = 0; i < 32; i++)
            random_str(s[i], sizeof(s[i]), &seed);
        struct segw_tag tags[4];
        struct segw_endpoint eps[3];
        uint16_t nt = (uint16_t)(rand_r(&seed) % 5), ne = (uint16_t)(rand_r(&seed) % 4);
        for (uint16_t i = 0; i < nt; i++) { /* distinct keys: a JSON object's */
            snprintf(s[8 + i], sizeof(s[8 + i]), "%u%s", (unsigned)i, s[20 + i]);
            tags[i] = (struct segw_tag){.key = s[8 + i], .value = s[12 + i]};
        }
        for (uint16_t i = 0; i < ne; i++)
            eps[i] = (struct segw_endpoint){.name = s[24 + i],
                                            .request_type = s[27 + i],
                                            .response_type = s[16 + i],
                                            .mean_us = (uint32_t)rand_r(&seed),
                                            .p95_us = i == 1 ? UINT32_MAX : (uint32_t)i};
        struct instance inst = {
            .service = s[0],
            .version = s[1],
            .host = s[2],
            .az = s[3],
            .address = s[4],
            .addr_kind = (uint8_t)(rand_r(&seed) % 2 ? DISC_ADDR_UNIX : DISC_ADDR_TCP),
            .weight = (uint32_t)rand_r(&seed) * 3u,
            .registered_at_ms = (int64_t)rand_r(&seed) * (iter % 2 ? 1000003 : -7),
            .owner_uid = iter % 7 == 0 ? UINT32_MAX - 1 : (uint32_t)rand_r(&seed),
            .tags = tags,
            .n_tags = nt,
            .endpoints = eps,
            .n_endpoints = ne,
        };
        copy_utf8(inst.id, sizeof(inst.id), s[5]);
        struct instance_check *c = &inst.check;
        c->kind = (enum instance_check_kind)(rand_r(&seed) % 5);
        c->interval_ms = (uint32_t)rand_r(&seed);
        c->timeout_ms = (uint32_t)rand_r(&seed);
        c->misses = (uint32_t)rand_r(&seed) % 101;
        c->ttl_ms = (uint32_t)rand_r(&seed);
        snprintf(c->target, sizeof(c->target), "%s", s[6]);
        snprintf(c->path, sizeof(c->path), "%s", s[7]);
        c->deregister_after_ms = rand_r(&seed) % 2 ? (uint32_t)rand_r(&seed) : 0;
        c->maintenance = rand_r(&seed) % 2;
        snprintf(c->maint_reason, sizeof(c->maint_reason), "%s", s[31]);
        same_line(&inst);
    }
}

static char tmpdir[64];

static void rm_tmpdir(void)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/t.state", tmpdir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/t.state.tmp", tmpdir);
    unlink(p);
    rmdir(tmpdir);
}

/* The same document, id, owner and time. */
static void same_instance(const struct instance *a, const struct instance *b)
{
    cr_assert_str_eq(a->id, b->id);
    cr_assert_eq(a->owner_uid, b->owner_uid);
    cr_assert_eq(a->registered_at_ms, b->registered_at_ms);
    json_t *ja = instance_to_json(a, INSTANCE_JSON_CHECK);
    json_t *jb = instance_to_json(b, INSTANCE_JSON_CHECK);
    char *sa = json_dumps(ja, JSON_COMPACT), *sb = json_dumps(jb, JSON_COMPACT);
    cr_assert(json_equal(ja, jb), "written %s\nread back %s", sa, sb);
    cr_assert_eq(memcmp(&a->check, &b->check, sizeof(a->check)), 0);
    free(sa);
    free(sb);
    json_decref(ja);
    json_decref(jb);
}

Test(state, journal_written_without_a_tree_reads_back_the_same, .fini = rm_tmpdir)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_state.XXXXXX");
    cr_assert(mkdtemp(tmpdir));
    struct state *st = NULL;
    struct state_loaded ld;
    char err[STATE_ERR_MAX];
    cr_assert_eq(state_open(tmpdir, "t", &defs, &st, &ld, err), 0, "%s", err);
    cr_assert_eq(ld.n, 0);
    state_loaded_free(&ld);
    struct instance *inst[N_REGS];
    for (size_t k = 0; k < N_REGS; k++) {
        inst[k] = parse(regs[k][0], regs[k][1]);
        inst[k]->owner_uid = (uint32_t)(k * 17 + 1);
        inst[k]->registered_at_ms = (int64_t)1764580000000 + (int64_t)k;
        cr_assert_eq(state_put(st, inst[k]), 0);
    }
    /* a replacement (maintenance changed) and a removal */
    inst[0]->check.maintenance = true;
    inst[0]->health = DISC_HEALTH_MAINTENANCE;
    snprintf(inst[0]->check.maint_reason, sizeof(inst[0]->check.maint_reason), "moving \"rack\"");
    cr_assert_eq(state_put(st, inst[0]), 0);
    cr_assert_eq(state_del(st, inst[3]->id), 0);
    cr_assert_eq(state_sync(st), 0);
    cr_assert_eq(state_count(st), N_REGS - 1);
    state_close(st);

    /* The journal holds the jansson-identical lines, then the del record. */
    char path[128];
    snprintf(path, sizeof(path), "%s/t.state", tmpdir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char *line = NULL;
    size_t cap = 0;
    for (size_t k = 0; k <= N_REGS + 1; k++) {
        cr_assert(getline(&line, &cap, f) > 0, "journal line %zu missing", k);
        if (k <= N_REGS) {
            /* the first put of inst[0] was before maintenance: skip it */
            if (k == 0)
                continue;
            char *ref = jansson_line(inst[k == N_REGS ? 0 : k]);
            cr_assert_str_eq(line, ref);
            free(ref);
        } else {
            char want[128];
            snprintf(want, sizeof(want), "{\"del\":\"%s\"}\n", inst[3]->id);
            cr_assert_str_eq(line, want);
        }
    }
    free(line);
    fclose(f);

    cr_assert_eq(state_open(tmpdir, "t", &defs, &st, &ld, err), 0, "%s", err);
    cr_assert_eq(ld.skipped, 0);
    cr_assert_eq(ld.n, N_REGS - 1);
    for (size_t k = 0; k < N_REGS; k++) {
        const struct instance *got = NULL;
        for (size_t i = 0; i < ld.n; i++)
            if (strcmp(ld.insts[i]->id, inst[k]->id) == 0)
                got = ld.insts[i];
        if (k == 3) {
            cr_assert_null(got, "removed instance restored");
        } else {
            cr_assert(got, "instance %zu not restored", k);
            same_instance(inst[k], got);
        }
    }
    state_loaded_free(&ld);
    state_close(st);
    for (size_t k = 0; k < N_REGS; k++)
        instance_unref(inst[k]);
}
