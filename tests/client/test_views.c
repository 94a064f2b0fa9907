/* SPDX-License-Identifier: MIT */
/*
 * test_views.c — the `services` and `endpoints` views against a generated
 * registry: every service, version, count, endpoint and latency aggregate
 * is recomputed by brute force from the generator's data.
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
    cr_assert_eq(gen_fixture_open(&fx, "views", 4242, 200, 8, 0), 0);
}

static void teardown(void)
{
    gen_fixture_close(&fx);
}

TestSuite(views, .init = setup, .fini = teardown, .timeout = 60);

/* Instances the test's filters select (brute force, see check_services). */
static int selected(const struct gen_inst *in, const char *prefix, int not_critical)
{
    if (prefix && strncmp(in->service, prefix, strlen(prefix)) != 0)
        return 0;
    if (not_critical && in->health == DISC_HEALTH_CRITICAL)
        return 0;
    return 1;
}

static void check_services(const char *prefix, int not_critical)
{
    struct disc_filter f;
    disc_filter_init(&f);
    f.service_prefix = prefix;
    f.health_mask = not_critical ? DISC_HEALTH_NOT_CRITICAL : 0;
    struct disc_service_summary *list;
    size_t needed = 0;
    int n = disc_services(fx.h, &f, fx.buf, GEN_BUF_BYTES, &list, &needed);
    cr_assert_geq(n, 0, "disc_services: %s", disc_strerror(n));
    cr_assert_leq(needed, GEN_BUF_BYTES);

    /* Expected services: those with at least one selected instance. */
    int want_svc = 0, seen_instances = 0;
    for (int s = 0; s < fx.g.n_services; s++) {
        char name[32];
        snprintf(name, sizeof(name), "g%d.svc%03d", s % 10, s);
        int count = 0;
        for (int i = 0; i < fx.g.n; i++)
            count += strcmp(fx.g.inst[i].service, name) == 0 &&
                     selected(&fx.g.inst[i], prefix, not_critical);
        want_svc += count > 0;
    }
    cr_assert_eq(n, want_svc, "services: got %d want %d", n, want_svc);
    for (int k = 0; k < n; k++) {
        const struct disc_service_summary *s = &list[k];
        if (k > 0)
            cr_assert_lt(strcmp(list[k - 1].name, s->name), 0, "sorted by name");
        uint32_t total = 0;
        for (uint32_t v = 0; v < s->n_versions; v++) {
            const struct disc_version_count *vc = &s->versions[v];
            if (v > 0)
                cr_assert_leq(disc_version_cmp(s->versions[v - 1].version, vc->version), 0);
            uint32_t want = 0;
            for (int i = 0; i < fx.g.n; i++)
                want += strcmp(fx.g.inst[i].service, s->name) == 0 &&
                        strcmp(fx.g.inst[i].version, vc->version) == 0 &&
                        selected(&fx.g.inst[i], prefix, not_critical);
            cr_assert_eq(vc->n_instances, want, "%s %s: %u want %u", s->name, vc->version,
                         vc->n_instances, want);
            for (uint32_t u = 0; u < v; u++)
                cr_assert_str_neq(s->versions[u].version, vc->version, "duplicate version");
            total += vc->n_instances;
        }
        cr_assert_eq(total, s->n_instances);
        seen_instances += (int)total;
    }
    int want_inst = 0;
    for (int i = 0; i < fx.g.n; i++)
        want_inst += selected(&fx.g.inst[i], prefix, not_critical);
    cr_assert_eq(seen_instances, want_inst);
}

Test(views, services_versions_and_counts)
{
    check_services(NULL, 0);
    check_services("g6.", 0);
    check_services(NULL, 1);
    check_services("g1", 1);
}

Test(views, services_enobufs_then_needed)
{
    struct disc_service_summary *list;
    size_t needed = 0;
    cr_assert_eq(disc_services(fx.h, NULL, NULL, 0, &list, &needed), -ENOBUFS);
    cr_assert_gt(needed, 0);
    cr_assert_eq(disc_services(fx.h, NULL, fx.buf, 100, &list, &needed), -ENOBUFS);
    void *b = malloc(needed);
    cr_assert_eq(disc_services(fx.h, NULL, b, needed, &list, &needed), fx.g.n_services);
    free(b);

    struct disc_filter f;
    disc_filter_init(&f);
    f.service = "no.such";
    cr_assert_eq(disc_services(fx.h, &f, fx.buf, GEN_BUF_BYTES, &list, &needed), 0);
    f.service = fx.g.inst[0].service;
    cr_assert_eq(disc_services(fx.h, &f, fx.buf, GEN_BUF_BYTES, &list, &needed), 1);
    cr_assert_str_eq(list[0].name, fx.g.inst[0].service);
    f.n_tags = 100;
    cr_assert_eq(disc_services(fx.h, &f, fx.buf, GEN_BUF_BYTES, &list, &needed), -EINVAL);
}

struct ep_want {
    char name[64];
    const char *version, *req, *resp;
    uint32_t n, n_rep, p95;
    uint64_t sum;
};

static void check_endpoints(const char *prefix)
{
    struct disc_filter f;
    disc_filter_init(&f);
    f.service_prefix = prefix;
    struct disc_endpoint_info *list;
    size_t needed = 0;
    int n = disc_endpoints(fx.h, &f, fx.buf, GEN_BUF_BYTES, &list, &needed);
    cr_assert_geq(n, 0, "disc_endpoints: %s", disc_strerror(n));

    struct ep_want *want = calloc((size_t)fx.g.n * GEN_EPS_MAX, sizeof(*want));
    int nw = 0;
    for (int i = 0; i < fx.g.n; i++) {
        const struct gen_inst *in = &fx.g.inst[i];
        if (!selected(in, prefix, 0))
            continue;
        for (int e = 0; e < in->n_eps; e++) {
            char fq[64];
            snprintf(fq, sizeof(fq), "%s.%s", in->service, in->ep[e]);
            int j = 0;
            while (j < nw && (strcmp(want[j].name, fq) || strcmp(want[j].version, in->version)))
                j++;
            if (j == nw) {
                snprintf(want[nw].name, sizeof(want[nw].name), "%s", fq);
                want[nw].version = in->version;
                want[nw].req = in->ep_req[e];
                want[nw].resp = in->ep_resp[e];
                nw++;
            }
            want[j].n++;
            if (in->ep_mean[e]) {
                want[j].n_rep++;
                want[j].sum += in->ep_mean[e];
            }
            if (in->ep_p95[e] > want[j].p95)
                want[j].p95 = in->ep_p95[e];
        }
    }
    cr_assert_gt(nw, 0);
    cr_assert_eq(n, nw, "endpoints: got %d want %d", n, nw);
    for (int k = 0; k < n; k++) {
        const struct disc_endpoint_info *x = &list[k];
        if (k > 0) {
            int c = strcmp(list[k - 1].name, x->name);
            cr_assert(c < 0 || (c == 0 && disc_version_cmp(list[k - 1].version, x->version) <= 0));
        }
        int j = 0;
        while (j < nw && (strcmp(want[j].name, x->name) || strcmp(want[j].version, x->version)))
            j++;
        cr_assert_lt(j, nw, "unexpected endpoint %s %s", x->name, x->version);
        cr_assert_eq(strncmp(x->name, x->service, strlen(x->service)), 0);
        cr_assert_eq(x->name[strlen(x->service)], '.');
        cr_assert_str_eq(x->request_type, want[j].req);
        cr_assert_str_eq(x->response_type, want[j].resp);
        cr_assert_eq(x->n_instances, want[j].n, "%s", x->name);
        cr_assert_eq(x->n_reporting, want[j].n_rep, "%s", x->name);
        uint32_t mean =
            want[j].n_rep ? (uint32_t)((want[j].sum + want[j].n_rep / 2) / want[j].n_rep) : 0;
        cr_assert_eq(x->mean_us, mean, "%s mean %u want %u", x->name, x->mean_us, mean);
        cr_assert_eq(x->p95_us, want[j].p95, "%s", x->name);
        want[j].n = UINT32_MAX; /* each expected entry is met once */
    }
    free(want);
}

Test(views, endpoints_match_generated)
{
    check_endpoints(NULL);
    check_endpoints("g8.");
    struct disc_endpoint_info *list;
    size_t needed = 0;
    cr_assert_eq(disc_endpoints(fx.h, NULL, fx.buf, 64, &list, &needed), -ENOBUFS);
    void *b = malloc(needed);
    cr_assert_gt(disc_endpoints(fx.h, NULL, b, needed, &list, &needed), 0);
    free(b);
}
