/* SPDX-License-Identifier: MIT */
/*
 * gen.c — random registries for the client tests (see gen.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen.h"

uint64_t gen_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

void gen_uuid(uint64_t *s, char out[DISC_ID_LEN + 1])
{
    uint64_t a = gen_rand(s), b = gen_rand(s);
    snprintf(out, DISC_ID_LEN + 1, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xffff, (unsigned)(b >> 48),
             (unsigned long long)(b & 0xffffffffffffull));
}

static const char *const EP_NAMES[] = {"Get", "Put", "List", "Delete", "Login", "Watch", "Stats"};
static const char *const AZS[] = {"az-a", "az-b", "az-c", ""};
static const char *const ENVS[] = {"prod", "staging", "dev"};
static const char *const TEAMS[] = {"red", "blue"};

void gen_build(struct gen_reg *g, uint64_t seed, int n_services, int max_inst)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    g->inst = calloc((size_t)n_services * (size_t)max_inst, sizeof(*g->inst));
    g->n = 0;
    g->n_services = n_services;
    for (int sv = 0; sv < n_services; sv++) {
        int ninst = 1 + (int)(gen_rand(&s) % (uint64_t)max_inst);
        for (int k = 0; k < ninst; k++) {
            struct gen_inst *in = &g->inst[g->n++];
            gen_uuid(&s, in->id);
            in->group = sv % 10;
            snprintf(in->service, sizeof(in->service), "g%d.svc%03d", in->group, sv);
            in->vmaj = (int)(gen_rand(&s) % 3);
            in->vmin = (int)(gen_rand(&s) % 12);
            in->vpatch = (int)(gen_rand(&s) % 3);
            if (in->vpatch == 0 && gen_rand(&s) % 2)
                snprintf(in->version, sizeof(in->version), "%d.%d", in->vmaj, in->vmin);
            else
                snprintf(in->version, sizeof(in->version), "%d.%d.%d", in->vmaj, in->vmin,
                         in->vpatch);
            snprintf(in->host, sizeof(in->host), "host-%d", (int)(gen_rand(&s) % 8));
            snprintf(in->az, sizeof(in->az), "%s", AZS[gen_rand(&s) % 4]);
            snprintf(in->address, sizeof(in->address), "10.0.%d.%d:%d", sv % 250, k,
                     2000 + (int)(gen_rand(&s) % 1000));
            in->weight = 1 + (uint32_t)(gen_rand(&s) % 20);
            in->health = (uint8_t)(gen_rand(&s) % 4);
            in->n_tags = 0;
            if (gen_rand(&s) % 4) {
                strcpy(in->tag_key[in->n_tags], "env");
                strcpy(in->tag_val[in->n_tags++], ENVS[gen_rand(&s) % 3]);
            }
            if (gen_rand(&s) % 2) {
                strcpy(in->tag_key[in->n_tags], "team");
                strcpy(in->tag_val[in->n_tags++], TEAMS[gen_rand(&s) % 2]);
            }
            if (gen_rand(&s) % 5 == 0) {
                strcpy(in->tag_key[in->n_tags], "canary");
                strcpy(in->tag_val[in->n_tags++], gen_rand(&s) % 2 ? "yes" : "");
            }
            /* Endpoints depend on the service and major version: instances
             * of one version agree on them, as real deployments do. */
            uint64_t es = (uint64_t)sv * 31 + (uint64_t)in->vmaj + 7;
            in->n_eps = (int)(gen_rand(&es) % 4);
            int first = (int)(gen_rand(&es) % 7);
            for (int e = 0; e < in->n_eps; e++) {
                const char *name = EP_NAMES[(first + e) % 7];
                snprintf(in->ep[e], sizeof(in->ep[e]), "%s", name);
                snprintf(in->ep_req[e], sizeof(in->ep_req[e]), "svc%03d.%sRequest", sv, name);
                snprintf(in->ep_resp[e], sizeof(in->ep_resp[e]), "svc%03d.%sResponse", sv, name);
                int reports = gen_rand(&s) % 3 != 0;
                in->ep_mean[e] = reports ? 100 + (uint32_t)(gen_rand(&s) % 5000) : 0;
                in->ep_p95[e] = reports ? in->ep_mean[e] * 3 + (uint32_t)(gen_rand(&s) % 100) : 0;
            }
        }
    }
}

void gen_free(struct gen_reg *g)
{
    free(g->inst);
    g->inst = NULL;
    g->n = 0;
}

int gen_put(struct seg_writer *w, const struct gen_inst *in)
{
    struct segw_tag tags[GEN_TAGS_MAX];
    struct segw_endpoint eps[GEN_EPS_MAX];
    for (int t = 0; t < in->n_tags; t++)
        tags[t] = (struct segw_tag){in->tag_key[t], in->tag_val[t]};
    for (int e = 0; e < in->n_eps; e++)
        eps[e] = (struct segw_endpoint){in->ep[e], in->ep_req[e], in->ep_resp[e], in->ep_mean[e],
                                        in->ep_p95[e]};
    struct segw_instance si = {
        .id = in->id,
        .service = in->service,
        .version = in->version,
        .host = in->host,
        .az = in->az,
        .address = in->address,
        .addr_kind = DISC_ADDR_TCP,
        .health = in->health,
        .origin = DISC_ORIGIN_LOCAL,
        .weight = in->weight,
        .registered_at_ms = 1700000000000,
        .tags = tags,
        .n_tags = (uint16_t)in->n_tags,
        .endpoints = eps,
        .n_endpoints = (uint16_t)in->n_eps,
    };
    return segw_put(w, &si);
}

int gen_publish(struct seg_writer *w, const struct gen_reg *g)
{
    for (int i = 0; i < g->n; i++) {
        int rc = gen_put(w, &g->inst[i]);
        if (rc < 0)
            return rc;
    }
    int64_t gen = segw_commit(w);
    return gen > 0 ? 0 : (int)(gen < 0 ? gen : -1);
}

void gen_shm_name(char *out, size_t len, const char *what)
{
    snprintf(out, len, "t_client_%s_%d", what, (int)getpid());
}

int gen_fixture_open(struct gen_fixture *fx, const char *what, uint64_t seed, int n_services,
                     int max_inst, int open_flags)
{
    memset(fx, 0, sizeof(*fx));
    gen_shm_name(fx->shm, sizeof(fx->shm), what);
    int rc = segw_open(fx->shm, NULL, &fx->w);
    if (rc != 0)
        return rc;
    gen_build(&fx->g, seed, n_services, max_inst);
    rc = gen_publish(fx->w, &fx->g);
    if (rc == 0)
        rc = disc_open(fx->shm, open_flags, &fx->h);
    if (rc == 0 && !(fx->buf = malloc(GEN_BUF_BYTES)))
        rc = -ENOMEM;
    if (rc != 0)
        gen_fixture_close(fx);
    return rc;
}

void gen_fixture_close(struct gen_fixture *fx)
{
    if (fx->h)
        disc_close(fx->h);
    if (fx->w)
        segw_close(fx->w, true);
    gen_free(&fx->g);
    free(fx->buf);
    memset(fx, 0, sizeof(*fx));
}
