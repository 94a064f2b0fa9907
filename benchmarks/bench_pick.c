/* SPDX-License-Identifier: MIT */
/*
 * bench_pick.c — latency of filtered lookups and picks, against plain
 * lookups measured in the same run on the same registry.
 *
 * The registry (default 1000 services x 10 instances, 3 azs, tags, health
 * mixed) is published with the real segment writer into a private shm
 * name; one thread then times each operation individually with
 * CLOCK_MONOTONIC (the timer's own cost is reported as the first row and is
 * included in every other row), on a random service each time.
 *
 *   bench_pick [--services N] [--instances M] [--ops K]
 *              [--quick] [--md FILE] [--json FILE]   (bench_report.h)
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_report.h"
#include "discshm.h"
#include "segwriter.h"

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int nsvc = 1000, ninst = 10, nops = 200000;
static char (*names)[32];
static int64_t *lat;
static disc_handle *h;
static unsigned char *buf;
static const size_t BUFSZ = 1 << 20;

enum op {
    OP_NOTHING,
    OP_LOOKUP,
    OP_ZC_SERVICE,
    OP_LOOKUP_FILTERED,
    OP_ZC_FILTERED,
    OP_PICK_RANDOM,
    OP_PICK_RR,
    OP_PICK_HASH,
    OP_PICK_RANDOM_FILTERED,
    OP_ZC_PICK_RANDOM,
    OP_ZC_PICK_HASH,
    OP_PREFIX_SCAN,
};

static const char *const op_name[] = {
    "timer only (clock_gettime pair)",
    "disc_lookup (copy-out, 10 instances) [baseline]",
    "zero-copy read section: disc_read_service + 10 x disc_read_instance [baseline]",
    "disc_lookup_filtered: service + az + not critical (copy-out)",
    "zero-copy: disc_read_filter_begin/next, same filter",
    "disc_pick weighted random, service only (copy-out)",
    "disc_pick smooth round robin, service only (copy-out)",
    "disc_pick consistent hash, service only (copy-out)",
    "disc_pick weighted random, service + az + not critical + tag (copy-out)",
    "zero-copy: read section + disc_read_pick weighted random",
    "zero-copy: read section + disc_read_pick consistent hash",
    "disc_lookup_filtered: service_prefix over 1000 services (100 match) + az",
};

static disc_picker *p_rand, **p_rr, *p_hash; /* one round-robin picker per service */
static struct bench_report *rep;

static int run_op(enum op op, int s, uint64_t r)
{
    const char *svc = names[s];
    struct disc_filter f;
    struct disc_instance *list, in;
    struct disc_read rd;
    int rc = 0;
    disc_filter_init(&f);
    f.service = svc;
    switch (op) {
    case OP_NOTHING:
        return 0;
    case OP_LOOKUP:
        return disc_lookup(h, svc, buf, BUFSZ, &list, NULL);
    case OP_ZC_SERVICE:
        do {
            struct disc_service_view sv;
            if ((rc = disc_read_begin(h, &rd)) < 0)
                return rc;
            rc = disc_read_service(&rd, svc, &sv);
            for (uint32_t i = 0; rc == 0 && i < sv.n_instances; i++)
                rc = disc_read_instance(&rd, &sv, i, &in);
        } while (disc_read_end(&rd) == -EAGAIN);
        return rc;
    case OP_LOOKUP_FILTERED:
        f.az = "az-b";
        f.health_mask = DISC_HEALTH_NOT_CRITICAL;
        return disc_lookup_filtered(h, &f, buf, BUFSZ, &list, NULL);
    case OP_ZC_FILTERED:
        f.az = "az-b";
        f.health_mask = DISC_HEALTH_NOT_CRITICAL;
        do {
            struct disc_filter_iter it;
            int n = 0;
            if ((rc = disc_read_begin(h, &rd)) < 0)
                return rc;
            rc = disc_read_filter_begin(&rd, &f, &it);
            while (rc == 0 && (rc = disc_read_filter_next(&rd, &it, &in)) == 1) {
                n++;
                rc = 0;
            }
            rc = rc < 0 ? rc : n;
        } while (disc_read_end(&rd) == -EAGAIN);
        return rc;
    case OP_PICK_RANDOM:
        return disc_pick(h, &f, p_rand, NULL, 0, buf, BUFSZ, &list, NULL);
    case OP_PICK_RR:
        return disc_pick(h, &f, p_rr[s], NULL, 0, buf, BUFSZ, &list, NULL);
    case OP_PICK_HASH:
        return disc_pick(h, &f, p_hash, &r, sizeof(r), buf, BUFSZ, &list, NULL);
    case OP_PICK_RANDOM_FILTERED:
        f.az = "az-b";
        f.health_mask = DISC_HEALTH_NOT_CRITICAL;
        disc_filter_add_tag(&f, "env", "prod");
        rc = disc_pick(h, &f, p_rand, NULL, 0, buf, BUFSZ, &list, NULL);
        return rc == -ENOENT ? 0 : rc;
    case OP_ZC_PICK_RANDOM:
    case OP_ZC_PICK_HASH:
        do {
            if ((rc = disc_read_begin(h, &rd)) < 0)
                return rc;
            rc = disc_read_pick(&rd, &f, op == OP_ZC_PICK_RANDOM ? p_rand : p_hash, &r, sizeof(r),
                                &in);
        } while (disc_read_end(&rd) == -EAGAIN);
        return rc;
    case OP_PREFIX_SCAN: {
        char prefix[8];
        snprintf(prefix, sizeof(prefix), "g%d.", (int)(r % 10));
        f.service = NULL;
        f.service_prefix = prefix;
        f.az = "az-b";
        return disc_lookup_filtered(h, &f, buf, BUFSZ, &list, NULL);
    }
    }
    return -EINVAL;
}

static void bench(enum op op)
{
    int ops = op == OP_PREFIX_SCAN ? nops / 20 : nops;
    for (int k = 0; k < ops / 10; k++) /* warm-up */
        run_op(op, (int)(next_rand() % (uint64_t)nsvc), next_rand());
    for (int k = 0; k < ops; k++) {
        int svc = (int)(next_rand() % (uint64_t)nsvc);
        uint64_t r = next_rand();
        int64_t t0 = now_ns();
        int rc = run_op(op, svc, r);
        int64_t t1 = now_ns();
        if (rc < 0) {
            fprintf(stderr, "%s: %s\n", op_name[op], disc_strerror(rc));
            exit(1);
        }
        lat[k] = t1 - t0;
    }
    qsort(lat, (size_t)ops, sizeof(*lat), cmp_i64);
    long long med = (long long)lat[ops / 2], p99 = (long long)lat[(size_t)ops * 99 / 100];
    printf("| %s | %lld | %lld | %d |\n", op_name[op], med, p99, ops);
    bench_md(rep, "| %s | %lld | %lld | %d |\n", op_name[op], med, p99, ops);
    bench_row(rep, op_name[op], "ns", (double)med, (double)p99, "\"ops\": %d", ops);
}

int main(int argc, char **argv)
{
    struct bench_opts opts;
    if (bench_parse_args(&argc, argv, &opts) < 0)
        return 1;
    if (opts.quick)
        nops = 20000;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_pick: %s needs a value\n", argv[i]);
            return 1;
        }
        if (strcmp(argv[i], "--services") == 0)
            nsvc = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--instances") == 0)
            ninst = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--ops") == 0)
            nops = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_pick [--services N] [--instances M] [--ops K] [--quick] "
                            "[--md FILE] [--json FILE]\n");
            return 1;
        }
    }
    if (nsvc < 10 || ninst < 1 || nops < 100) {
        fprintf(stderr, "need --services >= 10, --instances >= 1, --ops >= 100\n");
        return 1;
    }
    char shm[64];
    snprintf(shm, sizeof(shm), "bench_pick_%d", (int)getpid());
    struct seg_writer *w;
    int rc = segw_open(shm, NULL, &w);
    if (rc < 0) {
        fprintf(stderr, "segw_open: %s\n", strerror(-rc));
        return 1;
    }
    names = calloc((size_t)nsvc, sizeof(*names));
    lat = calloc((size_t)nops, sizeof(*lat));
    buf = malloc(BUFSZ);
    static const char *const azs[] = {"az-a", "az-b", "az-c"};
    static const char *const envs[] = {"prod", "staging"};
    for (int s = 0; s < nsvc; s++) {
        snprintf(names[s], sizeof(names[s]), "g%d.service-%04d", s % 10, s);
        for (int i = 0; i < ninst; i++) {
            char id[DISC_ID_LEN + 1], addr[32];
            uint64_t a = next_rand(), b = next_rand();
            snprintf(id, sizeof(id), "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32),
                     (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xffff, (unsigned)(b >> 48),
                     (unsigned long long)(b & 0xffffffffffffull));
            snprintf(addr, sizeof(addr), "10.%d.%d.%d:8080", s / 250, s % 250, i);
            struct segw_tag tags[] = {{"env", envs[i % 2]}, {"team", "core"}};
            struct segw_endpoint eps[] = {{"Get", "GetRequest", "GetResponse", 120, 400},
                                          {"Put", "PutRequest", "PutResponse", 300, 900}};
            struct segw_instance in = {
                .id = id,
                .service = names[s],
                .version = i % 3 ? "1.4.2" : "1.5.0",
                .host = "host-1",
                .az = azs[i % 3],
                .address = addr,
                .addr_kind = DISC_ADDR_TCP,
                .health = (uint8_t)(i == 7 ? DISC_HEALTH_CRITICAL : DISC_HEALTH_PASSING),
                .weight = (uint32_t)(5 + i),
                .registered_at_ms = 1700000000000,
                .tags = tags,
                .n_tags = 2,
                .endpoints = eps,
                .n_endpoints = 2,
            };
            if ((rc = segw_put(w, &in)) < 0) {
                fprintf(stderr, "segw_put: %s\n", strerror(-rc));
                return 1;
            }
        }
    }
    if (segw_commit(w) <= 0 || disc_open(shm, 0, &h) < 0) {
        fprintf(stderr, "cannot publish / open the registry\n");
        segw_close(w, true);
        return 1;
    }
    disc_picker_create(DISC_PICK_RANDOM, 1, 0, &p_rand);
    p_rr = calloc((size_t)nsvc, sizeof(*p_rr));
    for (int s = 0; s < nsvc; s++)
        disc_picker_create(DISC_PICK_ROUND_ROBIN, 0, (uint32_t)ninst, &p_rr[s]);
    disc_picker_create(DISC_PICK_HASH, 0, 0, &p_hash);

    rep = bench_report_open("bench_pick", "Filtered lookup and pick latency (issue 6)", &opts, 0,
                            NULL);
    if (!rep)
        return 1;
    printf("registry: %d services x %d instances; one thread; per-op latency in ns\n\n", nsvc,
           ninst);
    bench_md(rep,
             "Registry: %d services x %d instances, 3 azs, 2 tags and 2 endpoints each, one "
             "critical instance per service. One thread; each operation timed on its own with a "
             "CLOCK_MONOTONIC pair (the first row is the pair alone and is inside every other "
             "row); a random service per operation. The two [baseline] rows are the plain "
             "lookups of the same run.\n\n"
             "| operation | median ns | p99 ns | ops |\n|---|---:|---:|---:|\n",
             nsvc, ninst);
    printf("| operation | median ns | p99 ns | ops |\n|---|---:|---:|---:|\n");
    for (int op = OP_NOTHING; op <= OP_PREFIX_SCAN; op++)
        bench((enum op)op);

    disc_picker_destroy(p_rand);
    for (int s = 0; s < nsvc; s++)
        disc_picker_destroy(p_rr[s]);
    free(p_rr);
    disc_picker_destroy(p_hash);
    disc_close(h);
    segw_close(w, true);
    free(names);
    free(lat);
    free(buf);
    return bench_report_close(rep) < 0 ? 1 : 0;
}
