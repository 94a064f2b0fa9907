/* SPDX-License-Identifier: MIT */
/*
 * segtest.h — helpers shared by the segment tests: unique registry names,
 * generated instances whose content can be re-derived (and so checked) by
 * a reader that only knows the id, filled registries, file-cache
 * directories and forked reader processes.
 */
#ifndef DISC_SEGTEST_H
#define DISC_SEGTEST_H

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "discshm.h"
#include "segwriter.h"

/* A registry name unique to this process and call. */
static inline void seg_name(char *buf, size_t len, const char *what)
{
    static int counter; /* test-only helper state */
    snprintf(buf, len, "dtest-%s-%d-%d", what, (int)getpid(), counter++);
}

/* Deterministic UUID-shaped id for number n. */
static inline void seg_id(char *buf, unsigned n)
{
    snprintf(buf, DISC_ID_LEN + 1, "%08x-%04x-4%03x-8%03x-%012x", n * 2654435761u, n & 0xffff,
             (n >> 4) & 0xfff, (n >> 8) & 0xfff, n);
}

/* What a reader can recompute from an instance: a digest of its fields. */
static inline uint32_t seg_digest(const char *id, const char *service, const char *version,
                                  const char *address, uint32_t weight)
{
    uint32_t h = 2166136261u;
    const char *parts[4] = {id, service, version, address};
    for (int p = 0; p < 4; p++) {
        for (const char *c = parts[p]; *c; c++)
            h = (h ^ (unsigned char)*c) * 16777619u;
        h = (h ^ 0xff) * 16777619u;
    }
    return h ^ weight;
}

/* Storage for one generated instance. */
struct seg_inst {
    char id[DISC_ID_LEN + 1];
    char service[64];
    char version[16];
    char address[32];
    char digest[16];
    struct segw_tag tags[2];
    struct segw_endpoint eps[1];
    struct segw_instance in;
};

/* Fill `s` for instance number n of `service` at revision rev; the tag
 * "digest" lets any reader verify the instance is internally consistent. */
static inline const struct segw_instance *seg_make(struct seg_inst *s, unsigned n,
                                                   const char *service, unsigned rev)
{
    memset(s, 0, sizeof(*s));
    seg_id(s->id, n);
    snprintf(s->service, sizeof(s->service), "%s", service);
    snprintf(s->version, sizeof(s->version), "1.%u", rev);
    snprintf(s->address, sizeof(s->address), "10.%u.%u.%u:%u", (n >> 16) & 255, (n >> 8) & 255,
             n & 255, 1000 + rev % 50000);
    uint32_t weight = 1 + (n + rev) % 100;
    snprintf(s->digest, sizeof(s->digest), "%08x",
             seg_digest(s->id, s->service, s->version, s->address, weight));
    s->tags[0] = (struct segw_tag){"digest", s->digest};
    s->tags[1] = (struct segw_tag){"zone", (n & 1) ? "odd" : "even"};
    s->eps[0] = (struct segw_endpoint){"get", "GetReq", "GetResp", 100 + n % 7, 900 + n % 11};
    s->in = (struct segw_instance){.id = s->id,
                                   .service = s->service,
                                   .version = s->version,
                                   .host = "host-a",
                                   .az = "az-1",
                                   .address = s->address,
                                   .addr_kind = DISC_ADDR_TCP,
                                   .health = DISC_HEALTH_PASSING,
                                   .origin = DISC_ORIGIN_LOCAL,
                                   .weight = weight,
                                   .registered_at_ms = 1700000000000LL + n,
                                   .tags = s->tags,
                                   .n_tags = 2,
                                   .endpoints = s->eps,
                                   .n_endpoints = 1};
    return &s->in;
}

/* Put instances 0..n-1 (seg_make at revision rev), instance i into service
 * "svc-<i % nsvc>", and commit them. */
static inline void seg_fill(struct seg_writer *w, unsigned n, unsigned nsvc, unsigned rev)
{
    struct seg_inst s;
    char svc[32];
    for (unsigned i = 0; i < n; i++) {
        snprintf(svc, sizeof(svc), "svc-%u", i % nsvc);
        cr_assert_eq(segw_put(w, seg_make(&s, i, svc, rev)), 0);
    }
    cr_assert_gt(segw_commit(w), 0);
}

/* Create dir = $DISCSHM_DIR/../disc-<tag>-XXXXXX for a file-cache image and
 * set path to dir/<file>. Beside the registry directory because readers
 * refuse files in a directory others can write, such as /tmp
 * (tests/common/registry_dir.c). The caller removes both. */
static inline void seg_cache_dir(char *dir, size_t dir_len, const char *tag, char *path,
                                 size_t path_len, const char *file)
{
    snprintf(dir, dir_len, "%s/../disc-%s-XXXXXX", getenv("DISCSHM_DIR"), tag);
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, path_len, "%s/%s", dir, file);
}

/* 1 if the view is consistent with what seg_make produced for its id. */
static inline int seg_check(const struct disc_instance *v, const char *want_service)
{
    const char *d = disc_instance_tag_get(v, "digest");
    if (!d || (want_service && strcmp(v->service, want_service) != 0))
        return 0;
    char buf[16];
    snprintf(buf, sizeof(buf), "%08x",
             seg_digest(v->id, v->service, v->version, v->address, v->weight));
    return strcmp(buf, d) == 0 && strlen(v->id) == DISC_ID_LEN;
}

/* CLOCK_MONOTONIC in milliseconds. */
static inline long long seg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* How long a stress test churns: $DISC_STRESS_SECONDS, default 5. */
static inline int seg_stress_seconds(void)
{
    const char *s = getenv("DISC_STRESS_SECONDS");
    int v = s ? atoi(s) : 5;
    return v > 0 ? v : 5;
}

/* Run fn(arg) in a child process; returns its wait status. */
static inline int seg_in_child(int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(arg));
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

/*
 * Fork a child that runs fn(arg, ready_fd) and _exits with its return
 * value; fn writes one byte to ready_fd once it is where the test wants it
 * (say, inside a read section), then may stall, pause or go on. Returns the
 * child's pid once that byte has arrived, or -1 (the child reaped) if fork
 * failed or the child ended without sending it.
 */
static inline pid_t seg_fork_ready(int (*fn)(void *arg, int ready_fd), void *arg)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        _exit(fn(arg, p[1]));
    }
    close(p[1]);
    char c;
    ssize_t n = pid > 0 ? read(p[0], &c, 1) : -1;
    close(p[0]);
    if (pid > 0 && n != 1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

#endif /* DISC_SEGTEST_H */
