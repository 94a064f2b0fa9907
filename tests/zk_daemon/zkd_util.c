/* SPDX-License-Identifier: MIT */
/* zkd_util.c — see zkd_util.h. */
#include "zkd_util.h"
#include "zk_server.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void zkd_root(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "/discd-%d-%s", (int)getpid(), tag);
}

void zkd_zookeeper(struct zk_cluster *zk, char *root, size_t len, const char *tag)
{
    int rc = zk_cluster_start(zk, 1, 60000 * dt_slow());
    cr_assert_eq(rc, 0, "ZooKeeper did not start: %s", strerror(-rc));
    zkd_root(root, len, tag);
}

void zkd_start(struct zkd *z, const char *tag, const char *connect, const char *root)
{
    zkd_start_extra(z, tag, connect, root, NULL);
}

/* Start z->proc (initialised) with the ZooKeeper arguments. */
static int zkd_spawn(struct zkd *z, const char *connect, const char *root, const char *extra)
{
    char a_zk[512], a_root[300], a_host[96], a_to[64];
    snprintf(a_zk, sizeof(a_zk), "--zk=%s", connect);
    snprintf(a_root, sizeof(a_root), "--zk-root=%s", root);
    snprintf(a_host, sizeof(a_host), "--host-id=%s", z->host_id);
    snprintf(a_to, sizeof(a_to), "--zk-session-timeout=%d", ZKD_SESSION_MS);
    char *const args[] = {a_zk, a_root, a_host, a_to, (char *)extra, NULL};
    int rc = discd_proc_start(&z->proc, args, 10000 * dt_slow());
    if (rc)
        proc_dump_log(&z->proc.proc);
    return rc;
}

void zkd_start_extra(struct zkd *z, const char *tag, const char *connect, const char *root,
                     const char *extra)
{
    memset(z, 0, sizeof(*z));
    snprintf(z->host_id, sizeof(z->host_id), "%s-%d", tag, (int)getpid());
    cr_assert_eq(discd_proc_init(&z->proc, tag), 0);
    cr_assert_eq(zkd_spawn(z, connect, root, extra), 0, "discd %s did not start", tag);
    z->h = dt_open_reader(&z->proc);
}

void zkd_start_binary(struct zkd *z, const char *bin, const char *tag, const char *connect,
                      const char *root, const char *extra)
{
    memset(z, 0, sizeof(*z));
    snprintf(z->host_id, sizeof(z->host_id), "%s-%d", tag, (int)getpid());
    cr_assert_eq(discd_proc_init(&z->proc, tag), 0);
    z->proc.binary = bin;
    cr_assert_eq(zkd_spawn(z, connect, root, extra), 0, "discd %s (%s) did not start", tag, bin);
}

void zkd_restart(struct zkd *z, const char *connect, const char *root)
{
    cr_assert_eq(zkd_spawn(z, connect, root, NULL), 0, "discd %s did not restart", z->host_id);
}

void zkd_conf_write(struct zkd_conf *c, const char *text)
{
    snprintf(c->dir, sizeof(c->dir), "/tmp/zkd-conf-XXXXXX");
    cr_assert(mkdtemp(c->dir), "mkdtemp: %s", strerror(errno));
    snprintf(c->path, sizeof(c->path), "%s/discd.conf", c->dir);
    FILE *f = fopen(c->path, "w");
    cr_assert(f, "%s: %s", c->path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

void zkd_conf_remove(struct zkd_conf *c)
{
    if (c->path[0]) {
        unlink(c->path);
        rmdir(c->dir);
        c->path[0] = '\0';
    }
}

void zkd_start_conf(struct zkd *z, const char *tag, const char *connect, const char *root,
                    const struct zkd_conf *c)
{
    char extra[200];
    snprintf(extra, sizeof(extra), "--config=%s", c->path);
    zkd_start_extra(z, tag, connect, root, extra);
    struct disc_status st;
    cr_assert(zkd_wait_synced(z, 20000, &st), "discd %s did not sync", tag);
}

void zkd_finish(struct zkd *z)
{
    if (z->h) {
        disc_close(z->h);
        z->h = NULL;
    }
    dt_finish(&z->proc);
}

void zkd_abort(struct zkd *z)
{
    if (z->h) {
        disc_close(z->h);
        z->h = NULL;
    }
    discd_proc_cleanup(&z->proc);
}

void zkd_teardown(struct zk_cluster *zk, struct zkd *z, ...)
{
    va_list ap;
    va_start(ap, z);
    for (; z; z = va_arg(ap, struct zkd *))
        zkd_abort(z);
    va_end(ap);
    zk_cluster_destroy(zk);
}

void zkd_register(struct zkd *z, const char *svc, const char *addr, char id[DISC_ID_LEN + 1])
{
    json_t *r = dt_callf(&z->proc,
                         "{\"op\":\"register\",\"instance\":{\"service\":\"%s\",\"address\":"
                         "\"%s\"},\"check\":{\"type\":\"none\"}}",
                         svc, addr);
    cr_assert(dt_ok(r), "register %s on %s failed", svc, z->host_id);
    const char *s = json_string_value(json_object_get(r, "id"));
    cr_assert(s && strlen(s) == DISC_ID_LEN);
    memcpy(id, s, DISC_ID_LEN + 1);
    json_decref(r);
}

void zkd_deregister(struct zkd *z, const char *id)
{
    json_t *r = dt_callf(&z->proc, "{\"op\":\"deregister\",\"id\":\"%s\"}", id);
    cr_assert(dt_ok(r), "deregister %s on %s failed", id, z->host_id);
    json_decref(r);
}

int zkd_count(struct zkd *z, const char *svc)
{
    int n = disc_count(z->h, svc);
    return n == -ENOENT ? 0 : n;
}

bool zkd_wait_count(struct zkd *z, const char *svc, int want, int timeout_ms)
{
    long long deadline = proc_now_ms() + (long long)timeout_ms * dt_slow();
    for (;;) {
        if (zkd_count(z, svc) == want)
            return true;
        if (proc_now_ms() >= deadline)
            return false;
        proc_sleep_ms(5);
    }
}

bool zkd_wait_flags(struct zkd *z, uint32_t mask, uint32_t want, int timeout_ms,
                    struct disc_status *st)
{
    long long deadline = proc_now_ms() + (long long)timeout_ms * dt_slow();
    for (;;) {
        int rc = disc_status(z->h, st);
        cr_assert_eq(rc, 0, "disc_status: %s", disc_strerror(rc));
        if ((st->flags & mask) == want)
            return true;
        if (proc_now_ms() >= deadline)
            return false;
        proc_sleep_ms(10);
    }
}

bool zkd_wait_synced(struct zkd *z, int timeout_ms, struct disc_status *st)
{
    const uint32_t mask = DISC_ST_ZK_CONFIGURED | DISC_ST_ZK_CONNECTED | DISC_ST_DEGRADED;
    const uint32_t want = DISC_ST_ZK_CONFIGURED | DISC_ST_ZK_CONNECTED;
    long long deadline = proc_now_ms() + (long long)timeout_ms * dt_slow();
    for (;;) {
        int rc = disc_status(z->h, st);
        cr_assert_eq(rc, 0, "disc_status: %s", disc_strerror(rc));
        if ((st->flags & mask) == want && st->last_sync_ms > 0)
            return true;
        if (proc_now_ms() >= deadline)
            return false;
        proc_sleep_ms(10);
    }
}

void zkd_all_synced(int timeout_ms, struct zkd *z, ...)
{
    va_list ap;
    va_start(ap, z);
    for (; z; z = va_arg(ap, struct zkd *)) {
        struct disc_status st;
        if (!zkd_wait_synced(z, timeout_ms, &st)) {
            va_end(ap);
            cr_assert_fail("%s never synced with ZooKeeper (flags %#x)", z->host_id, st.flags);
        }
    }
    va_end(ap);
}

void zkd_expect_instance(struct zkd *z, const char *svc, const char *id, uint8_t origin,
                         const char *host)
{
    char buf[8192];
    struct disc_instance *list = NULL;
    int n = disc_lookup(z->h, svc, buf, sizeof(buf), &list, NULL);
    cr_assert_eq(n, 1, "%s: disc_lookup(%s) = %d, want 1", z->host_id, svc, n);
    cr_assert_str_eq(list[0].id, id);
    cr_assert_eq(list[0].origin, origin, "%s: %s origin %u, want %u", z->host_id, svc,
                 list[0].origin, origin);
    cr_assert_str_eq(list[0].host, host);
}

void zkd_zk_state(struct zkd *z, char *buf, size_t len)
{
    json_t *r = dt_call1(&z->proc, "{\"op\":\"status\"}");
    cr_assert(dt_ok(r), "status failed");
    json_t *zk = json_object_get(r, "zookeeper");
    cr_assert(json_is_true(json_object_get(zk, "configured")), "status.zookeeper.configured");
    const char *s = json_string_value(json_object_get(zk, "state"));
    cr_assert(s, "status.zookeeper.state missing");
    snprintf(buf, len, "%s", s);
    json_decref(r);
}

const char *zkd_last_error(struct zkd *z, char *buf, size_t len)
{
    json_t *r = dt_call1(&z->proc, "{\"op\":\"status\"}");
    cr_assert(dt_ok(r), "%s: status failed", z->host_id);
    const char *e =
        json_string_value(json_object_get(json_object_get(r, "zookeeper"), "last_error"));
    snprintf(buf, len, "%s", e && *e ? e : "(none)");
    json_decref(r);
    return buf;
}

long long zkd_counter(struct zkd *z, const char *key)
{
    return dt_status_int(&z->proc, "zookeeper.counters.%s", key);
}
