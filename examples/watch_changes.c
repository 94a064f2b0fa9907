/* SPDX-License-Identifier: MIT */
/*
 * watch_changes.c — print the instances of a service every time they
 * change, blocking on the registry's change counter (a futex in shared
 * memory: no socket, no polling). Copy and adapt.
 *
 *   watch_changes [-r registry] [-n sets] SERVICE
 *
 *   -n sets   exit after printing this many instance sets (default: run
 *             until SIGINT / SIGTERM)
 *
 * It also says when the data goes stale (discd stopped or crashed: nothing
 * will change until it is back) and when it is fresh again.
 *
 * Exit codes: 0 done, 1 usage, 3 registry unavailable.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "discshm.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static const char *health_name(unsigned h)
{
    static const char *const names[] = {"unknown", "passing", "warning", "critical", "maintenance"};
    return h < 5 ? names[h] : "?";
}

/* FNV-1a over what we print: tells a real change of this service from a
 * change elsewhere in the registry. */
static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (h ^ 0xff) * 0x100000001b3ull;
}

/* Look the service up, growing the buffer as disc_lookup asks. Returns the
 * count (0: the service does not exist) or a negative error. */
static int lookup(disc_handle *h, const char *service, void **buf, size_t *cap,
                  struct disc_instance **list)
{
    for (int tries = 0; tries < 8; tries++) {
        size_t needed = 0;
        int n = disc_lookup(h, service, *buf, *cap, list, &needed);
        if (n != -ENOBUFS)
            return n == -ENOENT ? 0 : n;
        void *nb = realloc(*buf, needed);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = needed;
    }
    return -EAGAIN;
}

int main(int argc, char **argv)
{
    const char *registry = NULL;
    long max_sets = -1;
    int opt;
    while ((opt = getopt(argc, argv, "r:n:")) != -1) {
        if (opt == 'r')
            registry = optarg;
        else if (opt == 'n')
            max_sets = strtol(optarg, NULL, 10);
        else
            goto usage;
    }
    if (optind != argc - 1)
        goto usage;
    const char *service = argv[optind];

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    disc_handle *h;
    int rc = disc_open(registry, 0, &h);
    if (rc < 0) {
        fprintf(stderr, "registry %s unavailable: %s\n", registry ? registry : "(default)",
                disc_strerror(rc));
        return 3;
    }
    struct disc_status st;
    if ((rc = disc_status(h, &st)) < 0) {
        fprintf(stderr, "status: %s\n", disc_strerror(rc));
        disc_close(h);
        return 3;
    }
    /* Take the counter before the first lookup: a change in between is
     * then seen by the first wait, never lost. */
    uint32_t seen = st.change_seq;
    void *buf = NULL;
    size_t cap = 0;
    uint64_t last = 0;
    long printed = 0;
    int first = 1;
    bool was_stale = false;
    while (!stop && (max_sets < 0 || printed < max_sets)) {
        struct disc_instance *list = NULL;
        int n = lookup(h, service, &buf, &cap, &list);
        if (n < 0) {
            fprintf(stderr, "lookup: %s\n", disc_strerror(n));
        } else {
            uint64_t sig = 0xcbf29ce484222325ull;
            for (int i = 0; i < n; i++) {
                sig = fnv(fnv(fnv(sig, list[i].id), list[i].address), health_name(list[i].health));
                char w[16];
                snprintf(w, sizeof(w), "%u", list[i].weight);
                sig = fnv(sig, w);
            }
            if (first || sig != last) {
                disc_status(h, &st);
                printf("generation %llu: %s has %d instance(s)\n",
                       (unsigned long long)st.generation, service, n);
                for (int i = 0; i < n; i++)
                    printf("  %s %s version %s az %s weight %u %s\n", list[i].id, list[i].address,
                           list[i].version, list[i].az[0] ? list[i].az : "-", list[i].weight,
                           health_name(list[i].health));
                fflush(stdout);
                printed++;
                first = 0;
                last = sig;
            }
        }
        if (max_sets >= 0 && printed >= max_sets)
            break;
        /* Wake up now and then to notice a signal or a dead writer (a
         * clean stop wakes us at once; a crash shows by its heartbeat). */
        while (!stop) {
            int now_stale = disc_stale(h);
            if (now_stale >= 0 && (now_stale != 0) != was_stale) {
                if (now_stale && disc_status(h, &st) == 0)
                    printf("registry stale: %s\n", disc_status_reason_str(st.degraded_reason));
                else if (!now_stale)
                    printf("registry fresh again\n");
                fflush(stdout);
                was_stale = now_stale != 0;
            }
            if ((rc = disc_wait_change(h, &seen, 1000)) != -ETIMEDOUT)
                break;
        }
        if (rc < 0 && rc != -ETIMEDOUT) {
            fprintf(stderr, "wait: %s\n", disc_strerror(rc));
            break;
        }
    }
    free(buf);
    disc_close(h);
    return 0;
usage:
    fprintf(stderr, "usage: watch_changes [-r registry] [-n sets] SERVICE\n");
    return 1;
}
