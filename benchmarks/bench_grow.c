/* SPDX-License-Identifier: MIT */
/*
 * bench_grow.c — a registry of a million instances (issue 13): bytes per
 * instance, the cost of publishing one change at that size, and of a full
 * republish (a roll-over to a larger segment, segw_grow), each beside the
 * same measurement on a 1,000-instance registry in the same run.
 *
 *   bench_grow [--quick] [--md FILE] [--json FILE] [--instances N]
 *
 * Instances are those of the segment tests (tests/unit/segtest.h: 2 tags, 1
 * endpoint, ~40-byte strings), 100 per service, written through the segment
 * writer library (segw_put / segw_commit in batches of 8192, rolling over
 * from 4 MiB as discd's publisher does). The segment lives in a private
 * directory on /dev/shm (tmpfs, like /run/discshm). --quick: 100,000.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../tests/unit/segtest.h"
#include "bench_report.h"

#define PER_SVC 100u
#define BATCH   8192u

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static double pct(long long *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_ll);
    int i = (int)(p * (n - 1) + 0.5);
    return (double)v[i];
}

static void svc_name(char *buf, size_t len, unsigned n)
{
    snprintf(buf, len, "svc-%05u", n / PER_SVC);
}

struct reg {
    struct seg_writer *w;
    unsigned n;
    int grows;
    double build_s;
};

static int grow_for(struct seg_writer *w, uint64_t extra)
{
    struct segw_stats st;
    segw_stats(w, &st);
    uint64_t need = st.used_bytes - st.retired_bytes + extra;
    return segw_grow(w, segw_grow_size(st.segment_bytes, need, SEGW_MAX_SEGMENT_BYTES));
}

static int build(struct reg *r, const char *dir, const char *name, unsigned n)
{
    struct segw_config cfg = {.segment_bytes = 4u << 20, .dir = dir};
    int rc = segw_open(name, &cfg, &r->w);
    if (rc < 0)
        return rc;
    r->n = n;
    static struct seg_inst s;
    long long t0 = now_ns();
    for (unsigned b = 0; b < n; b += BATCH) {
        unsigned end = b + BATCH < n ? b + BATCH : n;
        for (int attempt = 0;; attempt++) {
            int64_t c = 0;
            for (unsigned i = b; i < end && c == 0; i++) {
                char svc[32];
                svc_name(svc, sizeof(svc), i);
                c = segw_put(r->w, seg_make(&s, i, svc, 0));
            }
            if (c == 0)
                c = segw_commit(r->w);
            if (c > 0)
                break;
            segw_unstage(r->w);
            if (c != -ENOSPC || attempt > 2)
                return c < 0 ? (int)c : -EIO;
            if ((rc = grow_for(r->w, (uint64_t)(end - b) * 400)) < 0)
                return rc;
            r->grows++;
        }
    }
    r->build_s = (double)(now_ns() - t0) / 1e9;
    return 0;
}

/* One change (a new version of an existing instance) published: put +
 * commit, `samples` times; latencies in ns into v. */
static int one_change(struct reg *r, long long *v, int samples)
{
    static struct seg_inst s;
    for (int k = 0; k < samples; k++) {
        unsigned i = (unsigned)(k * 2654435761u) % r->n;
        char svc[32];
        svc_name(svc, sizeof(svc), i);
        long long t0 = now_ns();
        int rc = segw_put(r->w, seg_make(&s, i, svc, 1 + (unsigned)k));
        int64_t g = rc < 0 ? rc : segw_commit(r->w);
        v[k] = now_ns() - t0;
        if (g == -ENOSPC) { /* retired memory is reclaimed after 1 s: make room */
            segw_unstage(r->w);
            if ((rc = grow_for(r->w, 1 << 20)) < 0)
                return rc;
            k--;
            continue;
        }
        if (g <= 0)
            return g < 0 ? (int)g : -EIO;
    }
    return 0;
}

/* A full republish: roll over to a segment twice the size (every live
 * record copied, tables rebuilt, rename, old one RECYCLED). ns. */
static long long roll(struct reg *r, int *rc)
{
    struct segw_stats st;
    segw_stats(r->w, &st);
    long long t0 = now_ns();
    *rc = segw_grow(r->w, st.segment_bytes * 2);
    return now_ns() - t0;
}

int main(int argc, char **argv)
{
    struct bench_opts opts;
    if (bench_parse_args(&argc, argv, &opts) < 0)
        return 2;
    unsigned n = opts.quick ? 100000u : 1000000u;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--instances") == 0 && i + 1 < argc) {
            n = (unsigned)strtoul(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: bench_grow [--quick] [--md FILE] [--json FILE] "
                            "[--instances N]\n");
            return 2;
        }
    }
    if (n < 10000) {
        fprintf(stderr, "bench_grow: --instances must be at least 10000\n");
        return 2;
    }
    char top[] = "/dev/shm/bench-grow-XXXXXX", dir[64];
    if (!mkdtemp(top)) {
        perror("bench_grow: mkdtemp");
        return 1;
    }
    snprintf(dir, sizeof(dir), "%s/reg", top);
    const int samples = opts.quick ? 200 : 1000;
    long long *big = calloc((size_t)samples, sizeof(long long));
    long long *small = calloc((size_t)samples, sizeof(long long));
    struct reg B = {0}, S = {0};
    int rc = build(&S, dir, "small", 1000);
    if (rc == 0)
        rc = build(&B, dir, "big", n);
    /* Steady state: what the build retired is reused after the writer's
     * reclaim delay (1 s); reclaim it now, not inside the first samples. */
    if (rc == 0) {
        struct timespec pause = {1, 100000000};
        nanosleep(&pause, NULL);
        segw_tick(S.w);
        segw_tick(B.w);
    }
    if (rc == 0)
        rc = one_change(&S, small, samples);
    if (rc == 0)
        rc = one_change(&B, big, samples);
    int rrc = 0;
    long long roll_small = rc == 0 ? roll(&S, &rrc) : 0;
    rc = rc ? rc : rrc;
    long long roll_big = rc == 0 ? roll(&B, &rrc) : 0;
    rc = rc ? rc : rrc;
    if (rc < 0) {
        fprintf(stderr, "bench_grow: %s\n", strerror(-rc));
        segw_close(S.w, true);
        segw_close(B.w, true);
        rmdir(dir);
        rmdir(top);
        return 1;
    }
    /* After the roll the arena is compact: live bytes only. */
    struct segw_stats sb, ss;
    segw_stats(B.w, &sb);
    segw_stats(S.w, &ss);
    double bpi = (double)sb.used_bytes / sb.n_instances;
    double bpi_small = (double)ss.used_bytes / ss.n_instances;
    double c50 = pct(big, samples, 0.5), c99 = pct(big, samples, 0.99);
    double s50 = pct(small, samples, 0.5), s99 = pct(small, samples, 0.99);

    struct bench_report *rep = bench_report_open(
        "bench_grow", "A million instances in one registry: size and publish cost (issue 13)",
        &opts, 0, NULL);
    if (!rep)
        return 1;
    bench_md(rep,
             "%u instances in %u services (100 each; 2 tags, 1 endpoint), written through the "
             "segment writer in commits of 8192 from a 4 MiB segment: %.1f s, %d roll-overs, "
             "final segment %llu MiB. Baseline: the same on a 1,000-instance registry, same "
             "run. %d samples of one change.\n\n",
             n, sb.n_services, B.build_s, B.grows, (unsigned long long)(sb.segment_bytes >> 20),
             samples);
    bench_md(rep, "| row | %u instances | 1,000 instances | ratio |\n|---|---|---|---|\n", n);
    bench_md(rep, "| bytes per instance (live, after a roll) | %.0f | %.0f | %.2f |\n", bpi,
             bpi_small, bpi / bpi_small);
    bench_md(rep, "| one change: put + commit, median (us) | %.1f | %.1f | %.1f |\n", c50 / 1e3,
             s50 / 1e3, c50 / s50);
    bench_md(rep, "| one change: put + commit, p99 (us) | %.1f | %.1f | %.1f |\n", c99 / 1e3,
             s99 / 1e3, c99 / s99);
    bench_md(rep, "| full republish: roll-over to 2x (ms) | %.1f | %.2f | %.0f |\n", roll_big / 1e6,
             roll_small / 1e6, (double)roll_big / (double)roll_small);
    bench_md(rep, "\nOne change is measured in steady state (what the build retired is "
                  "reclaimed first); its p99 on a loaded machine is mostly preemption. "
                  "One change costs a copy of one bucket, one page of each table, the table "
                  "directories and the service record (its 100 offsets), so it grows only with the "
                  "directory (4 bytes per 256 buckets). A roll-over copies every live record and "
                  "rebuilds the tables (fallocate of the new file included); it happens only when "
                  "the segment doubles.\n\n");
    char b1[BENCH_JNUM_LEN], b2[BENCH_JNUM_LEN];
    bench_row(rep, "bytes_per_instance", "bytes", bpi, NAN,
              "\"instances\": %u, \"baseline_1k\": %s, \"segment_bytes\": %llu", n,
              bench_jnum(b1, bpi_small), (unsigned long long)sb.segment_bytes);
    bench_row(rep, "one_change_commit", "us", c50 / 1e3, c99 / 1e3,
              "\"instances\": %u, \"baseline_1k_median\": %s, \"baseline_1k_p99\": %s", n,
              bench_jnum(b1, s50 / 1e3), bench_jnum(b2, s99 / 1e3));
    bench_row(rep, "full_republish_roll", "ms", roll_big / 1e6, NAN,
              "\"instances\": %u, \"baseline_1k\": %s", n, bench_jnum(b1, roll_small / 1e6));
    bench_row(rep, "build", "s", B.build_s, NAN, "\"instances\": %u, \"roll_overs\": %d", n,
              B.grows);
    segw_close(S.w, true);
    segw_close(B.w, true);
    rmdir(dir);
    rmdir(top);
    free(big);
    free(small);
    return bench_report_close(rep) < 0 ? 1 : 0;
}
