/* SPDX-License-Identifier: MIT */
/* bench_zkraw.c — see bench_zkraw.h. */
#include "bench_zkraw.h"
#include "zk_server.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

/* One per session, its watcher context. */
struct zkraw_watch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int count;    /* child-watch events so far */
    double at_us; /* when the last one arrived (CLOCK_MONOTONIC) */
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char *what, const char *arg)
{
    fprintf(stderr, "raw ZooKeeper: %s %s\n", what, arg);
    exit(1);
}

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)state;
    (void)path;
    struct zkraw_watch *wa = ctx;
    if (type != ZOO_CHILD_EVENT) {
        return;
    }
    pthread_mutex_lock(&wa->mu);
    wa->count++;
    wa->at_us = now_us();
    pthread_cond_signal(&wa->cv);
    pthread_mutex_unlock(&wa->mu);
}

void zkraw_server_start(struct zk_cluster *zk)
{
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    int rc = zk_cluster_start(zk, 1, 60000);
    if (rc != 0) {
        fprintf(stderr, "ZooKeeper did not start: %s\n", strerror(-rc));
        exit(1);
    }
}

zhandle_t *zkraw_connect(const char *connect, int session_ms)
{
    struct zkraw_watch *wa = calloc(1, sizeof(*wa));
    if (!wa) {
        die("out of memory for", connect);
    }
    pthread_mutex_init(&wa->mu, NULL);
    pthread_cond_init(&wa->cv, NULL);
    zhandle_t *zh = zookeeper_init(connect, watcher, session_ms, NULL, wa, 0);
    if (!zh) {
        fprintf(stderr, "raw ZooKeeper: zookeeper_init %s: %s\n", connect, strerror(errno));
        exit(1);
    }
    /* as long as the session may take: the client retries a server that
     * drops it with a back-off of its own */
    double t0 = now_us(), limit_us = (session_ms > 10000 ? session_ms : 10000) * 1e3;
    while (zoo_state(zh) != ZOO_CONNECTED_STATE && now_us() - t0 < limit_us) {
        usleep(10000);
    }
    int state = zoo_state(zh);
    if (state != ZOO_CONNECTED_STATE) {
        fprintf(stderr, "raw ZooKeeper: no session with %s after %.1f s (client state %d)\n",
                connect, (now_us() - t0) / 1e6, state);
        exit(1);
    }
    return zh;
}

void zkraw_close(zhandle_t *zh)
{
    struct zkraw_watch *wa = (struct zkraw_watch *)zoo_get_context(zh);
    zookeeper_close(zh); /* no watcher call after this returns */
    pthread_cond_destroy(&wa->cv);
    pthread_mutex_destroy(&wa->mu);
    free(wa);
}

void zkraw_mkpath(zhandle_t *zh, const char *path)
{
    int rc = zoo_create(zh, path, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    if (rc != ZOK && rc != ZNODEEXISTS) {
        fprintf(stderr, "raw ZooKeeper: create %s: %s\n", path, zerror(rc));
        exit(1);
    }
}

/* Wait until wa has counted `target` events; 0 or -ETIMEDOUT. */
static int wait_count(struct zkraw_watch *wa, int target, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    pthread_mutex_lock(&wa->mu);
    int rc = 0;
    while (wa->count < target && rc == 0) {
        rc = pthread_cond_timedwait(&wa->cv, &wa->mu, &dl);
    }
    int ok = wa->count >= target;
    pthread_mutex_unlock(&wa->mu);
    return ok ? 0 : -ETIMEDOUT;
}

void zkraw_round(zhandle_t *w, zhandle_t *p, const char *dir, const char *node, const char *doc,
                 int len, double *t_watch, double *t_path)
{
    struct zkraw_watch *wa = (struct zkraw_watch *)zoo_get_context(w);
    struct String_vector sv;
    char buf[1024];
    pthread_mutex_lock(&wa->mu);
    int target = wa->count + 1;
    pthread_mutex_unlock(&wa->mu);
    if (zoo_get_children(w, dir, 1, &sv) != ZOK) {
        die("cannot list", dir);
    }
    deallocate_String_vector(&sv);
    double t0 = now_us();
    if (zoo_create(p, node, doc, len, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0) != ZOK) {
        die("cannot create", node);
    }
    if (wait_count(wa, target, 10000) != 0) {
        die("no child watch event within 10 s for", node);
    }
    pthread_mutex_lock(&wa->mu);
    *t_watch = wa->at_us - t0;
    pthread_mutex_unlock(&wa->mu);
    /* what a watcher does next in the seed design: list, then get the new one */
    if (zoo_get_children(w, dir, 0, &sv) != ZOK) {
        die("cannot list", dir);
    }
    deallocate_String_vector(&sv);
    int blen = sizeof(buf);
    if (zoo_get(w, node, 0, buf, &blen, NULL) != ZOK) {
        die("cannot read", node);
    }
    *t_path = now_us() - t0;
}

void zkraw_clear_dir(zhandle_t *zh, const char *dir)
{
    struct String_vector sv;
    if (zoo_get_children(zh, dir, 0, &sv) != ZOK) {
        return;
    }
    for (int k = 0; k < sv.count; k++) {
        char node[512];
        snprintf(node, sizeof(node), "%s/%s", dir, sv.data[k]);
        zoo_delete(zh, node, -1);
    }
    deallocate_String_vector(&sv);
}

void zkraw_new_id(char out[37])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}
