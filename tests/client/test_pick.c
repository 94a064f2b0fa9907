/* SPDX-License-Identifier: MIT */
/*
 * test_pick.c — pickers: distribution, exactness, key movement, threads,
 * a separate reader process, and error paths.
 *
 * Tolerances (stated here, asserted below):
 *   weighted random: over 100k picks every instance's share is within
 *     0.02 (absolute) of weight/sum.
 *   smooth WRR: after every full cycle (sum of weights picks) each instance
 *     was chosen exactly weight times per cycle — also with 4 threads.
 *   consistent hash (rendezvous): when one of n instances leaves, exactly
 *     the keys it owned move (no other key), and that is between 0.5/n and
 *     1.5/n of all keys; when one joins, keys only move to it; with equal
 *     weights each instance owns between 0.8/n and 1.2/n of 50k keys; with
 *     unequal weights shares are within 0.02 of weight/sum.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "discshm.h"
#include "gen.h"

#define MAXI 32

static struct seg_writer *w;
static disc_handle *h;
static char shm[64];
static struct gen_inst insts[MAXI];
static int ninst;
static uint64_t idseed = 12345;
static pid_t child;

static void setup(void)
{
    gen_shm_name(shm, sizeof(shm), "pick");
    cr_assert_eq(segw_open(shm, NULL, &w), 0);
    ninst = 0;
    child = 0;
}

static void teardown(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    disc_close(h);
    h = NULL;
    segw_close(w, true);
}

TestSuite(pick, .init = setup, .fini = teardown, .timeout = 120);

/* Stage one instance of `service` (committed by the caller). Returns its index. */
static int add(const char *service, uint32_t weight, const char *az)
{
    cr_assert_lt(ninst, MAXI);
    struct gen_inst *in = &insts[ninst];
    memset(in, 0, sizeof(*in));
    gen_uuid(&idseed, in->id);
    snprintf(in->service, sizeof(in->service), "%s", service);
    snprintf(in->version, sizeof(in->version), "1.0.%d", ninst);
    snprintf(in->host, sizeof(in->host), "host-%d", ninst % 3);
    snprintf(in->az, sizeof(in->az), "%s", az);
    snprintf(in->address, sizeof(in->address), "127.0.0.1:%d", 7000 + ninst);
    in->weight = weight;
    in->health = DISC_HEALTH_PASSING;
    cr_assert_eq(gen_put(w, in), 0);
    return ninst++;
}

static void commit(void)
{
    cr_assert_gt(segw_commit(w), 0);
    if (!h)
        cr_assert_eq(disc_open(shm, 0, &h), 0);
}

static int index_of(const char *id)
{
    for (int i = 0; i < ninst; i++)
        if (strcmp(insts[i].id, id) == 0)
            return i;
    cr_assert_fail("picked unknown id %s", id);
    return -1;
}

/* One copy-out pick; returns the index of the chosen instance. */
static int pick1(disc_handle *hh, disc_picker *p, const struct disc_filter *f, const char *key)
{
    static _Thread_local unsigned char b[DISC_INSTANCE_BUF_MAX];
    struct disc_instance *in;
    int rc = disc_pick(hh, f, p, key, key ? strlen(key) : 0, b, sizeof(b), &in, NULL);
    cr_assert_eq(rc, 0, "disc_pick: %s", disc_strerror(rc));
    return index_of(in->id);
}

static struct disc_filter svc_filter(const char *service)
{
    struct disc_filter f;
    disc_filter_init(&f);
    f.service = service;
    return f;
}

static const uint32_t W[] = {1, 2, 3, 5, 10, 20, 9}; /* sum 50 */
#define NW ((int)(sizeof(W) / sizeof(*W)))

static void add_weighted(void)
{
    for (int i = 0; i < NW; i++)
        add("pick", W[i], i % 2 ? "az-a" : "az-b");
    add("other", 10, "az-a");
    commit();
}

Test(pick, weighted_random_matches_weights)
{
    add_weighted();
    disc_picker *p;
    cr_assert_eq(disc_picker_create(DISC_PICK_RANDOM, 99, 0, &p), 0);
    struct disc_filter f = svc_filter("pick");
    const int N = 100000;
    int count[MAXI] = {0};
    for (int k = 0; k < N; k++)
        count[pick1(h, p, &f, NULL)]++;
    for (int i = 0; i < NW; i++) {
        double share = (double)count[i] / N, want = W[i] / 50.0;
        cr_log_info("random: weight %u share %.4f want %.4f", W[i], share, want);
        cr_assert(share > want - 0.02 && share < want + 0.02, "weight %u: share %.4f", W[i], share);
    }
    cr_assert_eq(count[NW], 0, "picked outside the filter");

    /* Same seed, same stream; another seed, another stream. */
    disc_picker *a, *b, *c;
    cr_assert_eq(disc_picker_create(DISC_PICK_RANDOM, 5, 0, &a), 0);
    cr_assert_eq(disc_picker_create(DISC_PICK_RANDOM, 5, 0, &b), 0);
    cr_assert_eq(disc_picker_create(DISC_PICK_RANDOM, 6, 0, &c), 0);
    int differ = 0;
    for (int k = 0; k < 200; k++) {
        int x = pick1(h, a, &f, NULL);
        cr_assert_eq(x, pick1(h, b, &f, NULL));
        differ += x != pick1(h, c, &f, NULL);
    }
    cr_assert_gt(differ, 0);
    disc_picker_destroy(a);
    disc_picker_destroy(b);
    disc_picker_destroy(c);
    disc_picker_destroy(p);
}

Test(pick, smooth_round_robin_exact_per_cycle)
{
    add_weighted();
    disc_picker *p;
    cr_assert_eq(disc_picker_create(DISC_PICK_ROUND_ROBIN, 0, 0, &p), 0);
    struct disc_filter f = svc_filter("pick");
    int count[MAXI] = {0};
    int last = -1, run = 0, max_run = 0;
    for (int cycle = 1; cycle <= 40; cycle++) {
        for (int k = 0; k < 50; k++) {
            int i = pick1(h, p, &f, NULL);
            count[i]++;
            run = i == last ? run + 1 : 1;
            last = i;
            max_run = run > max_run ? run : max_run;
        }
        for (int i = 0; i < NW; i++)
            cr_assert_eq(count[i], cycle * (int)W[i], "cycle %d instance %d: %d", cycle, i,
                         count[i]);
    }
    /* Smooth: the heaviest (20 of 50) never runs more than twice in a row. */
    cr_assert_leq(max_run, 2, "max run %d", max_run);

    /* Zero-copy picks continue the same cycle. */
    for (int k = 0; k < 50; k++) {
        struct disc_read rd;
        struct disc_instance in;
        int rc;
        cr_assert_eq(disc_read_begin(h, &rd), 0);
        rc = disc_read_pick(&rd, &f, p, NULL, 0, &in);
        cr_assert_eq(rc, 0);
        count[index_of(in.id)]++;
        cr_assert_eq(disc_read_end(&rd), 0);
    }
    for (int i = 0; i < NW; i++)
        cr_assert_eq(count[i], 41 * (int)W[i]);

    /* The set changes: the cycle restarts over the new set, exact again. */
    cr_assert_eq(segw_del(w, insts[4].id), 0);
    commit();
    memset(count, 0, sizeof(count));
    for (int k = 0; k < 3 * 40; k++)
        count[pick1(h, p, &f, NULL)]++;
    for (int i = 0; i < NW; i++)
        cr_assert_eq(count[i], i == 4 ? 0 : 3 * (int)W[i], "after removal, instance %d", i);
    disc_picker_destroy(p);
}

struct rr_thread {
    disc_picker *p;
    int picks;
    int count[MAXI];
};

static void *rr_worker(void *arg)
{
    struct rr_thread *t = arg;
    struct disc_filter f = svc_filter("pick");
    for (int k = 0; k < t->picks; k++)
        t->count[pick1(h, t->p, &f, NULL)]++;
    return NULL;
}

Test(pick, round_robin_shared_by_threads)
{
    add_weighted();
    disc_picker *p;
    cr_assert_eq(disc_picker_create(DISC_PICK_ROUND_ROBIN, 0, 0, &p), 0);
    enum { T = 4, CYCLES = 150 };
    struct rr_thread th[T];
    pthread_t tid[T];
    for (int t = 0; t < T; t++) {
        memset(&th[t], 0, sizeof(th[t]));
        th[t].p = p;
        th[t].picks = CYCLES * 50;
        cr_assert_eq(pthread_create(&tid[t], NULL, rr_worker, &th[t]), 0);
    }
    int total[MAXI] = {0};
    for (int t = 0; t < T; t++) {
        pthread_join(tid[t], NULL);
        for (int i = 0; i < MAXI; i++)
            total[i] += th[t].count[i];
    }
    for (int i = 0; i < NW; i++)
        cr_assert_eq(total[i], T * CYCLES * (int)W[i], "instance %d: %d", i, total[i]);
    disc_picker_destroy(p);
}

static void hash_all(disc_picker *p, const struct disc_filter *f, int nkeys, int *owner)
{
    char key[32];
    for (int k = 0; k < nkeys; k++) {
        snprintf(key, sizeof(key), "user-%d", k);
        owner[k] = pick1(h, p, f, key);
    }
}

Test(pick, consistent_hash_moves_only_the_leavers_keys)
{
    enum { N = 10, KEYS = 50000 };
    for (int i = 0; i < N; i++)
        add("hash", 10, "az-a");
    commit();
    disc_picker *p;
    cr_assert_eq(disc_picker_create(DISC_PICK_HASH, 0, 0, &p), 0);
    struct disc_filter f = svc_filter("hash");
    int *before = calloc(KEYS, sizeof(int)), *after = calloc(KEYS, sizeof(int));
    hash_all(p, &f, KEYS, before);

    int count[MAXI] = {0};
    for (int k = 0; k < KEYS; k++)
        count[before[k]]++;
    for (int i = 0; i < N; i++) {
        double share = (double)count[i] / KEYS;
        cr_assert(share > 0.8 / N && share < 1.2 / N, "instance %d owns %.4f", i, share);
    }

    /* One of n leaves. */
    const int gone = 3;
    cr_assert_eq(segw_del(w, insts[gone].id), 0);
    commit();
    hash_all(p, &f, KEYS, after);
    int moved = 0;
    for (int k = 0; k < KEYS; k++) {
        if (before[k] != gone)
            cr_assert_eq(after[k], before[k], "key %d moved although its owner stayed", k);
        else
            cr_assert_neq(after[k], gone);
        moved += after[k] != before[k];
    }
    double frac = (double)moved / KEYS;
    cr_log_info("hash: instance left, %d of %d keys moved (%.4f, 1/n = %.4f)", moved, KEYS, frac,
                1.0 / N);
    cr_assert(frac >= 0.5 / N && frac <= 1.5 / N, "moved %.4f", frac);

    /* One joins: keys move only to it. */
    int fresh = add("hash", 10, "az-b");
    commit();
    int *joined = calloc(KEYS, sizeof(int));
    hash_all(p, &f, KEYS, joined);
    moved = 0;
    for (int k = 0; k < KEYS; k++) {
        if (joined[k] != after[k]) {
            cr_assert_eq(joined[k], fresh, "key %d moved to an old instance", k);
            moved++;
        }
    }
    frac = (double)moved / KEYS;
    cr_log_info("hash: instance joined, %d of %d keys moved (%.4f, 1/n = %.4f)", moved, KEYS, frac,
                1.0 / N);
    cr_assert(frac >= 0.5 / N && frac <= 1.5 / N, "moved %.4f", frac);

    /* Another handle and picker (same host) agree key by key. */
    disc_handle *h2;
    disc_picker *p2;
    cr_assert_eq(disc_open(shm, 0, &h2), 0);
    cr_assert_eq(disc_picker_create(DISC_PICK_HASH, 777, 0, &p2), 0);
    for (int k = 0; k < 2000; k++) {
        char key[32];
        snprintf(key, sizeof(key), "user-%d", k);
        cr_assert_eq(pick1(h2, p2, &f, key), joined[k]);
    }
    disc_picker_destroy(p2);
    disc_close(h2);
    free(before);
    free(after);
    free(joined);
    disc_picker_destroy(p);
}

Test(pick, consistent_hash_honours_weights)
{
    const uint32_t ws[] = {10, 20, 30, 40};
    for (int i = 0; i < 4; i++)
        add("hw", ws[i], "az-a");
    commit();
    disc_picker *p;
    cr_assert_eq(disc_picker_create(DISC_PICK_HASH, 0, 0, &p), 0);
    struct disc_filter f = svc_filter("hw");
    enum { KEYS = 50000 };
    int *owner = calloc(KEYS, sizeof(int)), count[MAXI] = {0};
    hash_all(p, &f, KEYS, owner);
    for (int k = 0; k < KEYS; k++)
        count[owner[k]]++;
    for (int i = 0; i < 4; i++) {
        double share = (double)count[i] / KEYS, want = ws[i] / 100.0;
        cr_log_info("hash: weight %u share %.4f want %.4f", ws[i], share, want);
        cr_assert(share > want - 0.02 && share < want + 0.02, "weight %u share %.4f", ws[i], share);
    }
    free(owner);
    disc_picker_destroy(p);
}

Test(pick, filters_restrict_the_candidates)
{
    add_weighted();
    struct disc_filter f = svc_filter("pick");
    f.az = "az-a"; /* odd indexes: weights 2, 5, 20 (sum 27) */
    disc_picker *rr, *rnd, *hs;
    cr_assert_eq(disc_picker_create(DISC_PICK_ROUND_ROBIN, 0, 0, &rr), 0);
    cr_assert_eq(disc_picker_create(DISC_PICK_RANDOM, 1, 0, &rnd), 0);
    cr_assert_eq(disc_picker_create(DISC_PICK_HASH, 0, 0, &hs), 0);
    int count[MAXI] = {0};
    for (int k = 0; k < 27 * 10; k++)
        count[pick1(h, rr, &f, NULL)]++;
    for (int i = 0; i < NW; i++)
        cr_assert_eq(count[i], i % 2 ? 10 * (int)W[i] : 0, "instance %d", i);
    for (int k = 0; k < 2000; k++) {
        int i = pick1(h, rnd, &f, NULL);
        cr_assert(i < NW && i % 2 == 1);
        char key[16];
        snprintf(key, sizeof(key), "%d", k);
        i = pick1(h, hs, &f, key);
        cr_assert(i < NW && i % 2 == 1);
    }
    /* Prefix filters span services. */
    struct disc_filter all;
    disc_filter_init(&all);
    all.az = "az-a";
    memset(count, 0, sizeof(count));
    for (int k = 0; k < 37 * 4; k++)
        count[pick1(h, rr, &all, NULL)]++;
    cr_assert_eq(count[NW], 40); /* "other", weight 10 of 37 */
    disc_picker_destroy(rr);
    disc_picker_destroy(rnd);
    disc_picker_destroy(hs);
}

Test(pick, errors)
{
    add_weighted();
    disc_picker *p, *small, *hs;
    unsigned char b[DISC_INSTANCE_BUF_MAX];
    struct disc_instance *in;
    size_t needed = 0;
    cr_assert_eq(disc_picker_create(7, 0, 0, &p), -EINVAL);
    cr_assert_eq(disc_picker_create(DISC_PICK_ROUND_ROBIN, 0, DISC_PICK_RR_MAX + 1, &p), -EINVAL);
    cr_assert_eq(disc_picker_create(DISC_PICK_RANDOM, 0, 0, &p), 0);
    cr_assert_eq(disc_picker_policy(p), DISC_PICK_RANDOM);

    struct disc_filter f = svc_filter("missing");
    cr_assert_eq(disc_pick(h, &f, p, NULL, 0, b, sizeof(b), &in, NULL), -ENOENT);
    f = svc_filter("pick");
    f.az = "az-z";
    cr_assert_eq(disc_pick(h, &f, p, NULL, 0, b, sizeof(b), &in, NULL), -ENOENT);
    f.az = NULL;
    cr_assert_eq(disc_pick(h, &f, p, NULL, 0, b, 16, &in, &needed), -ENOBUFS);
    cr_assert_gt(needed, 16);
    cr_assert_leq(needed, DISC_INSTANCE_BUF_MAX);
    cr_assert_eq(disc_pick(h, &f, p, NULL, 0, b, needed, &in, NULL), 0);
    cr_assert_str_eq(in->service, "pick");

    cr_assert_eq(disc_picker_create(DISC_PICK_HASH, 0, 0, &hs), 0);
    cr_assert_eq(disc_pick(h, &f, hs, NULL, 0, b, sizeof(b), &in, NULL), -EINVAL);
    cr_assert_eq(disc_pick(h, &f, hs, "", 0, b, sizeof(b), &in, NULL), 0); /* empty key is a key */

    cr_assert_eq(disc_picker_create(DISC_PICK_ROUND_ROBIN, 0, 3, &small), 0);
    cr_assert_eq(disc_pick(h, &f, small, NULL, 0, b, sizeof(b), &in, NULL), -E2BIG);
    f.n_tags = 99;
    cr_assert_eq(disc_pick(h, &f, p, NULL, 0, b, sizeof(b), &in, NULL), -EINVAL);
    disc_picker_destroy(small);
    disc_picker_destroy(hs);
    disc_picker_destroy(p);
    disc_picker_destroy(NULL);
}

/* The child reports through a pipe: RR counts over 2 cycles, then the
 * owner index of 1000 hash keys. */
Test(pick, separate_reader_process)
{
    add_weighted();
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        close(fds[0]);
        disc_handle *ch;
        disc_picker *rr, *hs;
        if (disc_open(shm, 0, &ch) < 0 ||
            disc_picker_create(DISC_PICK_ROUND_ROBIN, 0, 0, &rr) < 0 ||
            disc_picker_create(DISC_PICK_HASH, 0, 0, &hs) < 0)
            _exit(2);
        struct disc_filter f = svc_filter("pick");
        int out[MAXI + 1000] = {0};
        unsigned char b[DISC_INSTANCE_BUF_MAX];
        struct disc_instance *in;
        for (int k = 0; k < 100; k++) {
            if (disc_pick(ch, &f, rr, NULL, 0, b, sizeof(b), &in, NULL) < 0)
                _exit(3);
            for (int i = 0; i < ninst; i++)
                out[i] += strcmp(insts[i].id, in->id) == 0;
        }
        for (int k = 0; k < 1000; k++) {
            char key[32];
            snprintf(key, sizeof(key), "session-%d", k);
            if (disc_pick(ch, &f, hs, key, strlen(key), b, sizeof(b), &in, NULL) < 0)
                _exit(4);
            out[MAXI + k] = -1;
            for (int i = 0; i < ninst; i++)
                if (strcmp(insts[i].id, in->id) == 0)
                    out[MAXI + k] = i;
        }
        ssize_t n = write(fds[1], out, sizeof(out));
        _exit(n == (ssize_t)sizeof(out) ? 0 : 5);
    }
    close(fds[1]);
    int got[MAXI + 1000];
    size_t have = 0;
    while (have < sizeof(got)) {
        ssize_t n = read(fds[0], (char *)got + have, sizeof(got) - have);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(fds[0]);
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    child = 0;
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    cr_assert_eq(have, sizeof(got));
    for (int i = 0; i < NW; i++)
        cr_assert_eq(got[i], 2 * (int)W[i], "child RR instance %d", i);
    disc_picker *hs;
    cr_assert_eq(disc_picker_create(DISC_PICK_HASH, 0, 0, &hs), 0);
    struct disc_filter f = svc_filter("pick");
    for (int k = 0; k < 1000; k++) {
        char key[32];
        snprintf(key, sizeof(key), "session-%d", k);
        cr_assert_eq(got[MAXI + k], pick1(h, hs, &f, key), "key %d", k);
    }
    disc_picker_destroy(hs);
}

/* With no health condition a picker takes only instances in rotation:
 * critical and maintenance instances are never chosen, by any policy; a mask
 * that names their state makes them eligible again. */
Test(pick, default_skips_critical_and_maintenance)
{
    int ok = add("rot", 10, "az-a");
    int crit = add("rot", 1000, "az-a");
    int maint = add("rot", 1000, "az-a");
    insts[crit].health = DISC_HEALTH_CRITICAL;
    insts[maint].health = DISC_HEALTH_MAINTENANCE;
    cr_assert_eq(gen_put(w, &insts[crit]), 0);
    cr_assert_eq(gen_put(w, &insts[maint]), 0);
    commit();
    struct disc_filter f = svc_filter("rot");
    static const enum disc_pick_policy pol[] = {DISC_PICK_RANDOM, DISC_PICK_ROUND_ROBIN,
                                                DISC_PICK_HASH};
    for (int k = 0; k < 3; k++) {
        disc_picker *p;
        cr_assert_eq(disc_picker_create(pol[k], 7, 0, &p), 0);
        int seen_other = 0;
        for (int i = 0; i < 200; i++) {
            char key[16];
            snprintf(key, sizeof(key), "k%d", i);
            cr_assert_eq(pick1(h, p, &f, key), ok, "policy %d picked an instance out of rotation",
                         (int)pol[k]);
            cr_assert_eq(pick1(h, p, NULL, key), ok);
        }
        /* Asking for every state: the heavy critical / maintenance ones win most picks. */
        struct disc_filter all = f;
        all.health_mask = DISC_HEALTH_MASK_ALL;
        for (int i = 0; i < 200; i++) {
            char key[16];
            snprintf(key, sizeof(key), "k%d", i);
            seen_other += pick1(h, p, &all, key) != ok;
        }
        cr_assert_gt(seen_other, 100, "policy %d: %d of 200", (int)pol[k], seen_other);
        disc_picker_destroy(p);
    }
    /* Filters keep "0 = any": all three are listed. */
    cr_assert_eq(disc_count(h, "rot"), 3);
    struct disc_filter maint_only = f;
    maint_only.health_mask = DISC_HEALTH_BIT(DISC_HEALTH_MAINTENANCE);
    unsigned char buf[DISC_INSTANCE_BUF_MAX];
    struct disc_instance *list;
    cr_assert_eq(disc_lookup_filtered(h, &maint_only, buf, sizeof(buf), &list, NULL), 1);
    cr_assert_str_eq(list[0].id, insts[maint].id);
    cr_assert_eq(disc_lookup_filtered(h, &f, buf, sizeof(buf), &list, NULL), 3);
}
