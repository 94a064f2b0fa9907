/* SPDX-License-Identifier: MIT */
/* zkc.c — see zkc.h. */
#include "zkc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void ignore_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)type;
    (void)state;
    (void)path;
    (void)ctx;
}

static void quiet_log(const char *msg)
{
    (void)msg;
}

zhandle_t *zkc_open(const char *connect, const char *digest, int timeout_ms)
{
    zhandle_t *zh = zookeeper_init2(connect, ignore_watch, 10000, NULL, NULL, 0, quiet_log);
    if (!zh)
        return NULL;
    for (int waited = 0; zoo_state(zh) != ZOO_CONNECTED_STATE; waited += 10) {
        if (waited >= timeout_ms) {
            zookeeper_close(zh);
            return NULL;
        }
        usleep(10000);
    }
    if (digest) {
        /* the sync call: a request after it is processed after the auth */
        if (zoo_add_auth(zh, "digest", digest, (int)strlen(digest), NULL, NULL) != ZOK) {
            zookeeper_close(zh);
            return NULL;
        }
    }
    return zh;
}

void zkc_close(zhandle_t *zh)
{
    if (zh)
        zookeeper_close(zh);
}

int zkc_create(zhandle_t *zh, const char *path, const char *data, int perms, int flags)
{
    struct ACL acl = {.perms = perms, .id = ZOO_ANYONE_ID_UNSAFE};
    struct ACL_vector v = {.count = 1, .data = &acl};
    return zoo_create(zh, path, data, data ? (int)strlen(data) : -1, &v, flags, NULL, 0);
}

int zkc_create_parents(zhandle_t *zh, const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            int rc = zoo_create(zh, buf, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
            *p = saved;
            if (rc != ZOK && rc != ZNODEEXISTS)
                return rc;
            if (!saved)
                return ZOK;
        }
    }
}

int zkc_set(zhandle_t *zh, const char *path, const char *data)
{
    return zoo_set(zh, path, data, (int)strlen(data), -1);
}

int zkc_get(zhandle_t *zh, const char *path, char *buf, size_t len, int *version)
{
    int n = (int)len - 1;
    struct Stat st;
    int rc = zoo_get(zh, path, 0, buf, &n, &st);
    if (rc != ZOK)
        return rc;
    buf[n < 0 ? 0 : n] = '\0';
    if (version)
        *version = st.version;
    return ZOK;
}

int zkc_delete(zhandle_t *zh, const char *path)
{
    return zoo_delete(zh, path, -1);
}

/* Collect path and everything below it, children first. */
static int collect(zhandle_t *zh, const char *path, char ***v, int *n, int *cap)
{
    struct String_vector sv = {0, NULL};
    int rc = zoo_get_children(zh, path, 0, &sv);
    if (rc != ZOK)
        return rc;
    for (int i = 0; i < sv.count && rc == ZOK; i++) {
        char child[1024];
        snprintf(child, sizeof(child), "%s/%s", path, sv.data[i]);
        rc = collect(zh, child, v, n, cap);
        if (rc == ZNONODE)
            rc = ZOK;
    }
    deallocate_String_vector(&sv);
    if (rc != ZOK)
        return rc;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = realloc(*v, (size_t)*cap * sizeof(**v));
    }
    (*v)[(*n)++] = strdup(path);
    return ZOK;
}

int zkc_deleteall(zhandle_t *zh, const char *path)
{
    /* one atomic multi of every delete, children first; listed and tried
     * again if the tree changed in between */
    int rc = ZNOTEMPTY;
    for (int attempt = 0; attempt < 50; attempt++) {
        char **v = NULL;
        int n = 0, cap = 0;
        rc = collect(zh, path, &v, &n, &cap);
        if (rc == ZOK) {
            zoo_op_t *ops = calloc((size_t)n, sizeof(*ops));
            zoo_op_result_t *res = calloc((size_t)n, sizeof(*res));
            for (int i = 0; i < n; i++)
                zoo_delete_op_init(&ops[i], v[i], -1);
            rc = zoo_multi(zh, n, ops, res);
            free(ops);
            free(res);
            if (rc == ZNONODE)
                rc = ZNOTEMPTY; /* a node vanished meanwhile */
        }
        for (int i = 0; i < n; i++)
            free(v[i]);
        free(v);
        if (rc != ZNOTEMPTY)
            break;
    }
    return rc;
}

int zkc_count(zhandle_t *zh, const char *path)
{
    struct String_vector sv = {0, NULL};
    int rc = zoo_get_children(zh, path, 0, &sv);
    if (rc != ZOK)
        return rc < 0 ? rc : -rc;
    int n = sv.count;
    deallocate_String_vector(&sv);
    return n;
}

int zkc_find_child(zhandle_t *zh, const char *path, const char *prefix, char *out, size_t len)
{
    struct String_vector sv = {0, NULL};
    int rc = zoo_get_children(zh, path, 0, &sv);
    if (rc != ZOK)
        return rc;
    rc = ZNONODE;
    for (int i = 0; i < sv.count; i++) {
        if (strncmp(sv.data[i], prefix, strlen(prefix)) == 0) {
            snprintf(out, len, "%s", sv.data[i]);
            rc = ZOK;
            break;
        }
    }
    deallocate_String_vector(&sv);
    return rc;
}

int zkc_set_world_acl(zhandle_t *zh, const char *path, int perms)
{
    struct ACL acl = {.perms = perms, .id = ZOO_ANYONE_ID_UNSAFE};
    struct ACL_vector v = {.count = 1, .data = &acl};
    return zoo_set_acl(zh, path, -1, &v);
}
