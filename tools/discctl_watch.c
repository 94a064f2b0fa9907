/* SPDX-License-Identifier: MIT */
/*
 * discctl_watch.c — `discctl watch`: wait for publications with
 * disc_wait_change (a futex on the segment) and print the difference
 * between consecutive snapshots.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "discctl.h"

#define WATCH_SLICE_MS 1000

struct snap {
    struct disc_instance *list; /* sorted by service, then id */
    void *buf;
    int n;
    uint64_t generation;
};

static int take_snapshot(disc_handle *h, const struct disc_filter *f, struct snap *s)
{
    memset(s, 0, sizeof(*s));
    int n = ctl_lookup_all(h, f, &s->list, &s->buf);
    if (n == -ENOENT) /* the watched service does not exist (yet) */
        n = 0;
    if (n < 0)
        return n;
    s->n = n;
    struct disc_status st;
    if (disc_status(h, &st) == 0)
        s->generation = st.generation;
    return 0;
}

static int cmp_inst(const struct disc_instance *a, const struct disc_instance *b)
{
    int c = strcmp(a->service, b->service);
    return c ? c : strcmp(a->id, b->id);
}

static void emit(const struct ctl *ctl, char kind, const struct disc_instance *in,
                 const struct disc_instance *old, uint64_t gen)
{
    if (ctl->json) {
        const char *ev = kind == '+' ? "added" : kind == '-' ? "removed" : "changed";
        json_t *j = json_pack("{s:s, s:I, s:o}", "event", ev, "generation", (json_int_t)gen,
                              "instance", ctl_instance_json(in));
        if (j && old)
            json_object_set_new(j, "old_health", json_string(ctl_health_name(old->health)));
        ctl_print_json(j);
    } else if (kind == '~') {
        printf("~ %s %s health %s -> %s\n", in->id, in->service, ctl_health_name(old->health),
               ctl_health_name(in->health));
    } else {
        printf("%c %s %s %s %s\n", kind, in->id, in->service, *in->version ? in->version : "\"\"",
               in->address);
    }
}

/* Print what changed from a to b; returns the number of changes. */
static long diff(const struct ctl *ctl, const struct snap *a, const struct snap *b)
{
    long changes = 0;
    int i = 0, j = 0;
    while (i < a->n || j < b->n) {
        int c = i >= a->n ? 1 : j >= b->n ? -1 : cmp_inst(&a->list[i], &b->list[j]);
        if (c < 0) {
            emit(ctl, '-', &a->list[i++], NULL, b->generation);
            changes++;
        } else if (c > 0) {
            emit(ctl, '+', &b->list[j++], NULL, b->generation);
            changes++;
        } else {
            if (a->list[i].health != b->list[j].health) {
                emit(ctl, '~', &b->list[j], &a->list[i], b->generation);
                changes++;
            }
            i++;
            j++;
        }
    }
    return changes;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cmd_watch(struct ctl *ctl, int argc, char **argv)
{
    struct disc_filter f;
    disc_filter_init(&f);
    uint32_t count = 0, timeout_s = 0;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *v;
        int r;
        if (strcmp(opt, "--") == 0)
            continue;
        if ((r = ctl_opt(argc, argv, &i, "--count", &v)) != 0) {
            if (r < 0 || ctl_parse_u32(v, 1, UINT32_MAX, &count) < 0)
                return ctl_usage_error(ctl, "--count needs a positive number");
            continue;
        }
        if ((r = ctl_opt(argc, argv, &i, "--timeout", &v)) != 0) {
            if (r < 0 || ctl_parse_u32(v, 1, 86400 * 365, &timeout_s) < 0)
                return ctl_usage_error(ctl, "--timeout needs a number of seconds");
            continue;
        }
        if (ctl_service_operand(ctl, opt, &f))
            return EXIT_USAGE;
    }
    int rc = disc_filter_check(&f);
    if (rc < 0)
        return ctl_usage_error(ctl, "bad service name: %s", disc_strerror(rc));

    disc_handle *h;
    int ec = ctl_open(ctl, &h);
    if (ec)
        return ec;
    /* Note the change counter before the first snapshot so that nothing
     * published in between is missed. */
    struct disc_status st;
    struct snap prev;
    if ((rc = disc_status(h, &st)) < 0 || (rc = take_snapshot(h, &f, &prev)) < 0) {
        ctl_err(ctl, "%s", disc_strerror(rc));
        disc_close(h);
        return EXIT_UNAVAILABLE;
    }
    uint32_t seen = st.change_seq;
    if (ctl->json)
        ctl_print_json(json_pack("{s:s, s:I, s:i, s:s?}", "event", "start", "generation",
                                 (json_int_t)prev.generation, "instances", prev.n, "service",
                                 f.service));
    else
        printf("# watching %s at generation %llu (%d instance%s)\n",
               f.service ? f.service : "all services", (unsigned long long)prev.generation, prev.n,
               prev.n == 1 ? "" : "s");

    long long end = timeout_s ? mono_ms() + (long long)timeout_s * 1000 : 0;
    long total = 0;
    bool warned_dead = false;
    ec = EXIT_OK;
    for (;;) {
        /* Wait in slices of at most WATCH_SLICE_MS to notice a dead writer
         * (a crashed discd publishes nothing until it is restarted). */
        int wait_ms = WATCH_SLICE_MS;
        if (end) {
            long long left = end - mono_ms();
            if (left <= 0)
                break;
            if (left < wait_ms)
                wait_ms = (int)left;
        }
        rc = disc_wait_change(h, &seen, wait_ms);
        if (rc == -ETIMEDOUT) {
            if (disc_status(h, &st) == 0) {
                bool dead = !(st.flags & DISC_ST_WRITER_ALIVE);
                if (dead && !warned_dead)
                    ctl_err(ctl,
                            "warning: the writer (pid %d) stopped heartbeating %lld ms ago; "
                            "waiting for it to come back",
                            (int)st.writer_pid, (long long)st.heartbeat_age_ms);
                warned_dead = dead;
            }
            continue;
        }
        if (rc < 0) {
            ctl_err(ctl, "waiting for changes: %s", disc_strerror(rc));
            ec = EXIT_UNAVAILABLE;
            break;
        }
        struct snap cur;
        if ((rc = take_snapshot(h, &f, &cur)) < 0) {
            ctl_err(ctl, "reading the registry: %s", disc_strerror(rc));
            ec = EXIT_UNAVAILABLE;
            break;
        }
        total += diff(ctl, &prev, &cur);
        free(prev.buf);
        prev = cur;
        if (count && total >= (long)count)
            break;
    }
    free(prev.buf);
    disc_close(h);
    return ec;
}
