/* SPDX-License-Identifier: MIT */
/*
 * test_filter.c — filters return exactly the expected instances.
 *
 * A generated registry (200 services, random instances) is published with
 * the real segment writer; for every filter the expected set is computed
 * by brute force from the generator's own data (versions compared as the
 * integer tuples they were made from) and compared, id by id, with the
 * copy-out lookup and with the zero-copy iterator.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discshm.h"
#include "gen.h"

static struct gen_fixture fx;

static void setup(void)
{
    cr_assert_eq(gen_fixture_open(&fx, "filter", 42, 200, 8, DISC_OPEN_VERIFY), 0);
}

static void teardown(void)
{
    gen_fixture_close(&fx);
}

TestSuite(filter, .init = setup, .fini = teardown, .timeout = 60);

/* ---- brute force ---- */

static int tuple_cmp(int a0, int a1, int a2, int b0, int b1, int b2)
{
    if (a0 != b0)
        return a0 < b0 ? -1 : 1;
    if (a1 != b1)
        return a1 < b1 ? -1 : 1;
    return a2 == b2 ? 0 : (a2 < b2 ? -1 : 1);
}

static int expect_match(const struct disc_filter *f, const struct gen_inst *in)
{
    if (!f)
        return 1;
    if (f->service && strcmp(in->service, f->service) != 0)
        return 0;
    if (f->service_prefix && strncmp(in->service, f->service_prefix, strlen(f->service_prefix)))
        return 0;
    if (f->version && strcmp(in->version, f->version) != 0)
        return 0;
    if (f->min_version) {
        int a = 0, b = 0, c = 0;
        sscanf(f->min_version, "%d.%d.%d", &a, &b, &c);
        if (tuple_cmp(in->vmaj, in->vmin, in->vpatch, a, b, c) < 0)
            return 0;
    }
    if (f->az && strcmp(in->az, f->az) != 0)
        return 0;
    if (f->host && strcmp(in->host, f->host) != 0)
        return 0;
    if (f->health_mask && !(f->health_mask & (1u << in->health)))
        return 0;
    for (uint32_t t = 0; t < f->n_tags; t++) {
        int found = 0;
        for (int k = 0; k < in->n_tags; k++)
            if (strcmp(in->tag_key[k], f->tags[t].key) == 0 &&
                (!f->tags[t].value || strcmp(in->tag_val[k], f->tags[t].value) == 0))
                found = 1;
        if (!found)
            return 0;
    }
    if (f->endpoint) {
        int found = 0;
        for (int e = 0; e < in->n_eps; e++)
            if (strcmp(in->ep[e], f->endpoint) == 0)
                found = 1;
        if (!found)
            return 0;
    }
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Compare the library's answers for f with brute force; returns the size
 * of the expected set. */
static int check(const struct disc_filter *f, const char *what)
{
    const char **want = calloc((size_t)fx.g.n, sizeof(*want));
    int nw = 0;
    for (int i = 0; i < fx.g.n; i++)
        if (expect_match(f, &fx.g.inst[i]))
            want[nw++] = fx.g.inst[i].id;
    qsort(want, (size_t)nw, sizeof(*want), cmp_str);

    /* copy-out */
    struct disc_instance *list;
    size_t needed = 0;
    int n = disc_lookup_filtered(fx.h, f, fx.buf, GEN_BUF_BYTES, &list, &needed);
    cr_assert_eq(n, nw, "%s: copy-out returned %d, expected %d", what, n, nw);
    const char **got = calloc((size_t)fx.g.n + 1, sizeof(*got));
    for (int i = 0; i < n; i++) {
        got[i] = list[i].id;
        cr_assert_eq(disc_instance_matches(f, &list[i]), 1, "%s", what);
        if (i > 0) { /* sorted by service then id */
            int c = strcmp(list[i - 1].service, list[i].service);
            cr_assert(c < 0 || (c == 0 && strcmp(list[i - 1].id, list[i].id) < 0), "%s", what);
        }
    }
    qsort(got, (size_t)n, sizeof(*got), cmp_str);
    for (int i = 0; i < n; i++)
        cr_assert_str_eq(got[i], want[i], "%s: copy-out #%d", what, i);

    /* zero-copy iterator */
    static char ids[8192][DISC_ID_LEN + 1];
    int nz = 0, rc;
    struct disc_read rd;
    do {
        nz = 0;
        cr_assert_eq(disc_read_begin(fx.h, &rd), 0);
        struct disc_filter_iter it;
        struct disc_instance in;
        rc = disc_read_filter_begin(&rd, f, &it);
        while (rc == 0 && (rc = disc_read_filter_next(&rd, &it, &in)) == 1) {
            cr_assert_lt(nz, 8192);
            memcpy(ids[nz++], in.id, DISC_ID_LEN + 1);
            rc = 0;
        }
    } while (disc_read_end(&rd) == -EAGAIN);
    cr_assert_eq(rc, 0, "%s: iterator rc %d", what, rc);
    cr_assert_eq(nz, nw, "%s: iterator found %d, expected %d", what, nz, nw);
    for (int i = 0; i < nz; i++)
        got[i] = ids[i];
    qsort(got, (size_t)nz, sizeof(*got), cmp_str);
    for (int i = 0; i < nz; i++)
        cr_assert_str_eq(got[i], want[i], "%s: iterator #%d", what, i);
    free(got);
    free(want);
    return nw;
}

/* Asserts the filter is discriminating on this registry: some but not all. */
static void check_some(const struct disc_filter *f, const char *what)
{
    int n = check(f, what);
    cr_assert(n > 0 && n < fx.g.n, "%s matched %d of %d: not a useful case", what, n, fx.g.n);
}

Test(filter, each_kind)
{
    struct disc_filter f;

    disc_filter_init(&f);
    cr_assert_eq(check(&f, "empty filter"), fx.g.n);
    cr_assert_eq(check(NULL, "NULL filter"), fx.g.n);

    for (int i = 0; i < fx.g.n; i += 97) {
        disc_filter_init(&f);
        f.service = fx.g.inst[i].service;
        check_some(&f, "service");
    }
    disc_filter_init(&f);
    f.service_prefix = "g3.";
    check_some(&f, "prefix g3.");
    f.service_prefix = "g1"; /* groups are 0..9: must not match g10.. */
    check_some(&f, "prefix g1");
    f.service_prefix = "nope";
    cr_assert_eq(check(&f, "prefix nope"), 0);

    disc_filter_init(&f);
    f.version = "1.2";
    check_some(&f, "version 1.2");
    f.version = "1.2.0";
    check_some(&f, "version 1.2.0 (a different string)");

    const char *mins[] = {"0.5", "1", "1.10.1", "2.0.2", "2.11"};
    for (unsigned i = 0; i < sizeof(mins) / sizeof(*mins); i++) {
        disc_filter_init(&f);
        f.min_version = mins[i];
        check_some(&f, mins[i]);
    }

    disc_filter_init(&f);
    f.az = "az-b";
    check_some(&f, "az-b");
    f.az = "";
    check_some(&f, "empty az");

    disc_filter_init(&f);
    f.host = "host-7";
    check_some(&f, "host");

    disc_filter_init(&f);
    cr_assert_eq(disc_filter_add_tag(&f, "env", "prod"), 0);
    check_some(&f, "tag env=prod");
    disc_filter_init(&f);
    cr_assert_eq(disc_filter_add_tag(&f, "canary", NULL), 0);
    check_some(&f, "tag canary (any value)");
    disc_filter_init(&f);
    cr_assert_eq(disc_filter_add_tag(&f, "canary", ""), 0);
    check_some(&f, "tag canary=\"\"");
    disc_filter_init(&f);
    cr_assert_eq(disc_filter_add_tag(&f, "env", "staging"), 0);
    cr_assert_eq(disc_filter_add_tag(&f, "team", "red"), 0);
    check_some(&f, "two tags");

    disc_filter_init(&f);
    f.endpoint = "Login";
    check_some(&f, "endpoint");

    disc_filter_init(&f);
    f.health_mask = DISC_HEALTH_NOT_CRITICAL;
    check_some(&f, "not critical");
    f.health_mask = DISC_HEALTH_PASSING_ONLY;
    check_some(&f, "passing only");
    f.health_mask = DISC_HEALTH_AT_LEAST_WARNING;
    check_some(&f, "at least warning");
}

Test(filter, combinations)
{
    struct disc_filter f;
    disc_filter_init(&f);
    f.service_prefix = "g2.";
    f.min_version = "1.3";
    f.health_mask = DISC_HEALTH_NOT_CRITICAL;
    check_some(&f, "prefix+min_version+health");
    f.az = "az-a";
    check(&f, "prefix+min_version+health+az");

    /* Random combinations anchored on a real instance so most are non-empty. */
    uint64_t s = 7;
    int nonempty = 0;
    for (int round = 0; round < 120; round++) {
        const struct gen_inst *in = &fx.g.inst[gen_rand(&s) % (uint64_t)fx.g.n];
        char minv[32];
        disc_filter_init(&f);
        uint64_t bits = gen_rand(&s);
        if (bits & 1)
            f.service_prefix = round % 2 ? "g" : (in->group == 4 ? "g4." : "g");
        if (bits & 2)
            f.service = in->service;
        if (bits & 4)
            f.az = in->az;
        if (bits & 8)
            f.host = in->host;
        if (bits & 16) {
            snprintf(minv, sizeof(minv), "%d.%d", in->vmaj, in->vmin);
            f.min_version = minv;
        }
        if (bits & 32)
            f.version = in->version;
        if ((bits & 64) && in->n_tags)
            disc_filter_add_tag(&f, in->tag_key[0], in->tag_val[0]);
        if ((bits & 128) && in->n_eps)
            f.endpoint = in->ep[in->n_eps - 1];
        if (bits & 256)
            f.health_mask = DISC_HEALTH_BIT(in->health);
        if (bits & 512)
            f.health_mask = DISC_HEALTH_BIT((in->health + 1) % 4); /* excludes the anchor */
        char what[64];
        snprintf(what, sizeof(what), "random combination %d (bits %llx)", round,
                 (unsigned long long)(bits & 1023));
        nonempty += check(&f, what) > 0;
    }
    cr_assert_gt(nonempty, 60);
}

Test(filter, missing_service_and_bad_filters)
{
    struct disc_filter f;
    struct disc_instance *list;
    size_t needed;
    disc_filter_init(&f);
    f.service = "no.such.service";
    cr_assert_eq(disc_lookup_filtered(fx.h, &f, fx.buf, GEN_BUF_BYTES, &list, &needed), -ENOENT);
    struct disc_read rd;
    struct disc_filter_iter it;
    cr_assert_eq(disc_read_begin(fx.h, &rd), 0);
    cr_assert_eq(disc_read_filter_begin(&rd, &f, &it), -ENOENT);
    disc_read_end(&rd);

    /* An exact service that fails the prefix: empty, not an error. */
    f.service = fx.g.inst[0].service;
    f.service_prefix = "zzz";
    cr_assert_eq(disc_lookup_filtered(fx.h, &f, fx.buf, GEN_BUF_BYTES, &list, &needed), 0);

    disc_filter_init(&f);
    f.n_tags = DISC_FILTER_TAGS_MAX + 1;
    cr_assert_eq(disc_lookup_filtered(fx.h, &f, fx.buf, GEN_BUF_BYTES, &list, &needed), -EINVAL);
    disc_filter_init(&f);
    f.health_mask = 1u << 7;
    cr_assert_eq(disc_filter_check(&f), -EINVAL);
    disc_filter_init(&f);
    char longaz[DISC_AZ_MAX + 2];
    memset(longaz, 'a', sizeof(longaz) - 1);
    longaz[sizeof(longaz) - 1] = 0;
    f.az = longaz;
    cr_assert_eq(disc_lookup_filtered(fx.h, &f, fx.buf, GEN_BUF_BYTES, &list, &needed),
                 -ENAMETOOLONG);
    disc_filter_init(&f);
    f.n_tags = 1; /* tags[0].key is NULL */
    cr_assert_eq(disc_filter_check(&f), -EINVAL);

    disc_filter_init(&f);
    for (int i = 0; i < DISC_FILTER_TAGS_MAX; i++)
        cr_assert_eq(disc_filter_add_tag(&f, "k", "v"), 0);
    cr_assert_eq(disc_filter_add_tag(&f, "k", "v"), -E2BIG);
    cr_assert_eq(f.n_tags, DISC_FILTER_TAGS_MAX);
    cr_assert_eq(disc_filter_add_tag(&f, "", "v"), -EINVAL);
    cr_assert_eq(disc_instance_matches(&f, NULL), -EINVAL);
}

Test(filter, enobufs_then_needed_is_enough)
{
    struct disc_filter f;
    disc_filter_init(&f);
    f.service_prefix = "g5.";
    struct disc_instance *list = NULL;
    size_t needed = 0;
    cr_assert_eq(disc_lookup_filtered(fx.h, &f, NULL, 0, &list, &needed), -ENOBUFS);
    cr_assert_gt(needed, 0);
    cr_assert_eq(disc_lookup_filtered(fx.h, &f, fx.buf, needed - 1, &list, &needed), -ENOBUFS);
    void *exact = malloc(needed);
    int n = disc_lookup_filtered(fx.h, &f, exact, needed, &list, &needed);
    cr_assert_gt(n, 0);
    cr_assert_eq(n, check(&f, "g5."));
    for (int i = 0; i < n; i++)
        cr_assert_eq(strncmp(list[i].service, "g5.", 3), 0);
    free(exact);
}

Test(filter, version_compare)
{
    struct {
        const char *a, *b;
        int want;
    } cases[] = {
        {"1.2", "1.2.0", 0},
        {"1.2", "1.10", -1},
        {"1.10", "1.9", 1},
        {"2", "1.99.99", 1},
        {"01.2", "1.2", 0},
        {"1.2.3", "1.2.3.1", -1},
        {"1.0-rc1", "1.0", -1},
        {"1.0-rc.2", "1.0-rc.10", -1},
        {"1.0-rc", "1.0-rc.1", -1},
        {"1.0-alpha", "1.0-beta", -1},
        {"1.0+build5", "1.0+build7", 0},
        {"1.0.0+x", "1.0", 0},
        {"", "0", 0},
        {NULL, "0.0", 0},
        {"1.a", "1.1", 1},
        {"99999999999999999999.1", "99999999999999999998.9", 1},
        {"20130417193315", "20130417193316", -1},
    };
    for (unsigned i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        int c = disc_version_cmp(cases[i].a, cases[i].b);
        int r = disc_version_cmp(cases[i].b, cases[i].a);
        cr_assert_eq((c > 0) - (c < 0), cases[i].want, "%s vs %s: %d", cases[i].a, cases[i].b, c);
        cr_assert_eq((r > 0) - (r < 0), -cases[i].want, "%s vs %s (swapped)", cases[i].a,
                     cases[i].b);
    }
}
