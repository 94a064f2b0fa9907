/* SPDX-License-Identifier: MIT */
/*
 * test_million.c — one registry of 1,000,000 instances (issue 13), built
 * through the segment writer library directly (not 1M socket round trips):
 * 10,000 services of 100 instances, committed in batches of 8192 into a
 * segment that starts at 4 MiB and rolls over (segw_grow, the publisher's
 * growth policy segw_grow_size) whenever a batch does not fit. A reader in
 * another process follows every roll-over and checks every read (no error,
 * the count never goes back); at the end it checks the count, the count of
 * a sample of services, and a sample of instances by id against the digest
 * each instance carries (tests/unit/segtest.h).
 *
 * Label `heavy` (left out of the sanitizer builds): about 10 s and ~1 GiB
 * of /tmp (a 512 MiB segment, briefly beside its 256 MiB predecessor).
 */
#include <poll.h>

#include "../unit/segtest.h"

#define N_INST    1000000u
#define PER_SVC   100u
#define BATCH     8192u
#define SAMPLE    5000u
#define SVC_CHECK 500u

struct million_result {
    long long reads, errors, moves;
    unsigned final_instances;
    char why[200];
};

static void fail(struct million_result *r, const char *what, long long v)
{
    if (!r->errors)
        snprintf(r->why, sizeof(r->why), "%s (%lld)", what, v);
    r->errors++;
}

static void service_name(char *buf, size_t len, unsigned n)
{
    snprintf(buf, len, "svc-%05u", n / PER_SVC);
}

/* The reader process: follow the growing registry until the stop pipe
 * closes, then check the final picture. */
static void reader(const char *name, int stop_r, int out_w)
{
    struct million_result r = {0};
    disc_handle *h = NULL;
    int rc = disc_open(name, 0, &h);
    if (rc < 0) {
        fail(&r, "disc_open", rc);
        goto out;
    }
    unsigned last = 0;
    unsigned long long seg = 0;
    static char buf[1 << 16];
    for (unsigned i = 0;; i++) {
        struct pollfd p = {.fd = stop_r, .events = POLLIN};
        int stopping = poll(&p, 1, 0) != 0;
        struct disc_status st;
        r.reads++;
        if ((rc = disc_status(h, &st)) < 0) {
            fail(&r, "disc_status", rc);
        } else {
            if (st.n_instances < last)
                fail(&r, "instance count went back", st.n_instances);
            last = st.n_instances;
            if (seg && st.segment_bytes != seg)
                r.moves++;
            seg = st.segment_bytes;
        }
        /* one instance published so far, by id */
        if (last > 0) {
            char id[DISC_ID_LEN + 1], svc[32];
            unsigned n = (i * 2654435761u) % last;
            seg_id(id, n);
            service_name(svc, sizeof(svc), n);
            struct disc_instance *in;
            r.reads++;
            rc = disc_lookup_id(h, id, buf, sizeof(buf), &in, NULL);
            if (rc < 0)
                fail(&r, "disc_lookup_id of a published instance", rc);
            else if (!seg_check(in, svc))
                fail(&r, "instance does not match its digest", n);
        }
        if (stopping)
            break;
    }
    r.final_instances = last;
    if (last != N_INST)
        fail(&r, "final instance count", last);
    for (unsigned k = 0; k < SAMPLE; k++) {
        unsigned n = (k * 2654435761u + 12345) % N_INST;
        char id[DISC_ID_LEN + 1], svc[32];
        seg_id(id, n);
        service_name(svc, sizeof(svc), n);
        struct disc_instance *in;
        r.reads++;
        rc = disc_lookup_id(h, id, buf, sizeof(buf), &in, NULL);
        if (rc < 0 || !seg_check(in, svc))
            fail(&r, "sampled instance", n);
    }
    for (unsigned k = 0; k < SVC_CHECK; k++) {
        char svc[32];
        service_name(svc, sizeof(svc), (k * 7919u % (N_INST / PER_SVC)) * PER_SVC);
        r.reads++;
        if ((rc = disc_count(h, svc)) != (int)PER_SVC)
            fail(&r, "service count", rc);
    }
out:
    disc_close(h);
    ssize_t w = write(out_w, &r, sizeof(r));
    _exit(w == (ssize_t)sizeof(r) ? 0 : 1);
}

Test(million, one_registry_of_a_million_instances, .timeout = 600)
{
    char name[64];
    seg_name(name, sizeof(name), "million");
    struct segw_config cfg = {.segment_bytes = 4u << 20};
    struct seg_writer *w;
    cr_assert_eq(segw_open(name, &cfg, &w), 0);

    int stop[2], res[2];
    cr_assert_eq(pipe(stop), 0);
    cr_assert_eq(pipe(res), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(stop[1]);
        close(res[0]);
        reader(name, stop[0], res[1]);
    }
    close(stop[0]);
    close(res[1]);

    static struct seg_inst s;
    int grows = 0;
    long long t0 = seg_now_ms();
    for (unsigned b = 0; b < N_INST; b += BATCH) {
        unsigned end = b + BATCH < N_INST ? b + BATCH : N_INST;
        for (int attempt = 0;; attempt++) {
            int64_t rc = 0;
            for (unsigned n = b; n < end && rc == 0; n++) {
                char svc[32];
                service_name(svc, sizeof(svc), n);
                rc = segw_put(w, seg_make(&s, n, svc, 0));
            }
            if (rc == 0)
                rc = segw_commit(w);
            if (rc > 0)
                break;
            cr_assert_eq(rc, -ENOSPC, "batch at %u: %s", b, strerror((int)-rc));
            cr_assert_lt(attempt, 3, "batch at %u does not fit even after growing", b);
            segw_unstage(w);
            struct segw_stats st;
            segw_stats(w, &st);
            uint64_t need = st.used_bytes - st.retired_bytes + (uint64_t)(end - b) * 400;
            uint64_t size = segw_grow_size(st.segment_bytes, need, SEGW_MAX_SEGMENT_BYTES);
            cr_assert_eq(segw_grow(w, size), 0, "grow to %llu", (unsigned long long)size);
            grows++;
        }
    }
    long long t1 = seg_now_ms();
    struct segw_stats st;
    segw_stats(w, &st);
    fprintf(stderr,
            "%u instances in %u services: %lld ms, %d roll-overs, segment %llu bytes, %llu used "
            "(%.0f bytes per instance)\n",
            st.n_instances, st.n_services, t1 - t0, grows, (unsigned long long)st.segment_bytes,
            (unsigned long long)st.used_bytes, (double)st.used_bytes / st.n_instances);
    cr_assert_eq(st.n_instances, N_INST);
    cr_assert_eq(st.n_services, N_INST / PER_SVC);
    cr_assert_geq(grows, 5, "from 4 MiB to hold a million instances");

    close(stop[1]);
    struct million_result r = {0};
    ssize_t n = read(res[0], &r, sizeof(r));
    close(res[0]);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    fprintf(stderr, "reader: %lld reads, %lld segment moves, %lld errors %s\n", r.reads, r.moves,
            r.errors, r.why);
    cr_assert(n == (ssize_t)sizeof(r) && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "reader died (%#x)", status);
    cr_assert_eq(r.errors, 0, "reader: %s", r.why);
    cr_assert_eq(r.final_instances, N_INST);
    cr_assert_geq(r.moves, 1, "the reader followed the roll-overs");
    segw_close(w, true);
}
