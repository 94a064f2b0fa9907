/* SPDX-License-Identifier: MIT */
/*
 * zk_agent.c — test helper process: one zk_sync handle (one "host") driven
 * over stdin, reporting what it sees on stdout. One command per line, one
 * response line per command (dump: a count line, then that many lines):
 *
 *   pub <id> <json>   -> ok | err <errno>
 *   wd <id>           -> ok | err <errno>
 *   wait <ms>         -> ok | err <errno>   (zk_sync_wait_local_applied)
 *   ids               -> ids <n> <id> <id> ...   (remote ids seen, sorted)
 *   doc <id>          -> doc <host> <json> | none
 *   removed <id>      -> removed <times on_remote_remove was called for id>
 *   stats             -> stats key=value ...
 *   quit              -> (exits 0 after zk_sync_stop)
 *
 * Usage: zk_agent <connect> <root> <host-id> <session-ms> <cooloff-ms>
 */
#include "zk_sync.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEEN 4096

struct seen {
    char id[37];
    char host[256];
    char *json; /* NULL once removed */
    unsigned removed;
};

struct agent {
    pthread_mutex_t mu;
    struct seen *v;
    size_t n;
};

static struct seen *find(struct agent *a, const char *id, bool create)
{
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->v[i].id, id) == 0) {
            return &a->v[i];
        }
    }
    if (!create || a->n == MAX_SEEN) {
        return NULL;
    }
    struct seen *s = &a->v[a->n++];
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", id);
    return s;
}

static void on_upsert(void *arg, const char *host, const char *id, const char *json, size_t len)
{
    struct agent *a = arg;
    pthread_mutex_lock(&a->mu);
    struct seen *s = find(a, id, true);
    if (s) {
        free(s->json);
        s->json = strndup(json, len);
        for (char *p = s->json; p && *p; p++) {
            if (*p == '\n') {
                *p = ' ';
            }
        }
        snprintf(s->host, sizeof(s->host), "%s", host);
    }
    pthread_mutex_unlock(&a->mu);
}

static void on_remove(void *arg, const char *host, const char *id)
{
    (void)host;
    struct agent *a = arg;
    pthread_mutex_lock(&a->mu);
    struct seen *s = find(a, id, true);
    if (s) {
        free(s->json);
        s->json = NULL;
        s->removed++;
    }
    pthread_mutex_unlock(&a->mu);
}

static int cmp_seen(const void *x, const void *y)
{
    return strcmp(((const struct seen *)x)->id, ((const struct seen *)y)->id);
}

static void print_stats(struct zk_sync *zs)
{
    struct zk_sync_status st;
    zk_sync_get_status(zs, &st);
    const struct zk_sync_counters *c = &st.counters;
    printf("stats state=%s cooling=%d applied=%d sessions=%llu expirations=%llu abandoned=%llu "
           "reconnects=%llu "
           "watches_fired=%llu lists=%llu reads=%llu creates=%llu deletes=%llu "
           "skipped_bad_name=%llu skipped_bad_data=%llu skipped_too_large=%llu conflicts=%llu "
           "held_removals=%llu held_reported=%llu held_restored=%llu held_now=%llu "
           "upserts=%llu removes=%llu hosts=%llu local_desired=%llu local_in_zk=%llu "
           "last_sync_ms=%lld\n",
           zk_sync_state_name(st.state), st.cooling, st.local_applied,
           (unsigned long long)c->sessions, (unsigned long long)c->expirations,
           (unsigned long long)c->sessions_abandoned, (unsigned long long)c->reconnects,
           (unsigned long long)c->watches_fired, (unsigned long long)c->lists,
           (unsigned long long)c->reads, (unsigned long long)c->creates,
           (unsigned long long)c->deletes, (unsigned long long)c->skipped_bad_name,
           (unsigned long long)c->skipped_bad_data, (unsigned long long)c->skipped_too_large,
           (unsigned long long)c->conflicts, (unsigned long long)c->held_removals,
           (unsigned long long)c->held_reported, (unsigned long long)c->held_restored,
           (unsigned long long)c->held_now, (unsigned long long)c->upserts,
           (unsigned long long)c->removes, (unsigned long long)c->hosts,
           (unsigned long long)c->local_desired, (unsigned long long)c->local_in_zk,
           (long long)st.last_sync_ms);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: zk_agent <connect> <root> <host-id> <session-ms> <cooloff-ms>\n");
        return 2;
    }
    static struct agent a;
    static char line[1 << 17];
    a.v = calloc(MAX_SEEN, sizeof(*a.v));
    pthread_mutex_init(&a.mu, NULL);
    struct zk_sync_config cfg = {
        .connect = argv[1],
        .root = argv[2],
        .host_id = argv[3],
        .session_timeout_ms = atoi(argv[4]),
        .cooloff_ms = atoi(argv[5]),
        .jitter_ms = 200,
        .log_level = ZK_SYNC_LOG_INFO,
        .zk_log_level = ZK_SYNC_LOG_ERROR,
    };
    struct zk_sync_callbacks cb = {.on_remote_upsert = on_upsert, .on_remote_remove = on_remove};
    struct zk_sync *zs;
    int rc = zk_sync_start(&cfg, &cb, &a, &zs);
    if (rc != 0) {
        fprintf(stderr, "zk_sync_start: %s\n", strerror(-rc));
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\n")] = '\0';
        char *arg1 = strchr(line, ' ');
        if (arg1) {
            *arg1++ = '\0';
        }
        if (strcmp(line, "pub") == 0 && arg1) {
            char *json = strchr(arg1, ' ');
            if (!json) {
                printf("err %d\n", EINVAL);
                continue;
            }
            *json++ = '\0';
            rc = zk_sync_publish_local(zs, arg1, json, strlen(json));
            rc ? printf("err %d\n", -rc) : printf("ok\n");
        } else if (strcmp(line, "wd") == 0 && arg1) {
            rc = zk_sync_withdraw_local(zs, arg1);
            rc ? printf("err %d\n", -rc) : printf("ok\n");
        } else if (strcmp(line, "wait") == 0 && arg1) {
            rc = zk_sync_wait_local_applied(zs, atoi(arg1));
            rc ? printf("err %d\n", -rc) : printf("ok\n");
        } else if (strcmp(line, "ids") == 0) {
            pthread_mutex_lock(&a.mu);
            qsort(a.v, a.n, sizeof(*a.v), cmp_seen);
            size_t live = 0;
            for (size_t i = 0; i < a.n; i++) {
                live += a.v[i].json != NULL;
            }
            printf("ids %zu", live);
            for (size_t i = 0; i < a.n; i++) {
                if (a.v[i].json) {
                    printf(" %s", a.v[i].id);
                }
            }
            printf("\n");
            pthread_mutex_unlock(&a.mu);
        } else if (strcmp(line, "doc") == 0 && arg1) {
            pthread_mutex_lock(&a.mu);
            struct seen *s = find(&a, arg1, false);
            if (s && s->json) {
                printf("doc %s %s\n", s->host, s->json);
            } else {
                printf("none\n");
            }
            pthread_mutex_unlock(&a.mu);
        } else if (strcmp(line, "removed") == 0 && arg1) {
            pthread_mutex_lock(&a.mu);
            struct seen *s = find(&a, arg1, false);
            printf("removed %u\n", s ? s->removed : 0);
            pthread_mutex_unlock(&a.mu);
        } else if (strcmp(line, "stats") == 0) {
            print_stats(zs);
        } else if (strcmp(line, "quit") == 0) {
            break;
        } else {
            printf("err %d\n", EINVAL);
        }
    }
    zk_sync_stop(zs);
    return 0;
}
