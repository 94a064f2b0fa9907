/* SPDX-License-Identifier: MIT */
/*
 * zkc.h — a plain ZooKeeper client for the end-to-end tests: what another
 * ZooKeeper client (zkCli, an operator, an attacker) would do to discd's
 * tree. Synchronous calls on one session; every helper asserts nothing and
 * returns the ZooKeeper result code (ZOK, ZNOAUTH, ...), so tests can check
 * refusals.
 */
#ifndef DISC_TEST_ZKC_H
#define DISC_TEST_ZKC_H

#include <stddef.h>
#include <uuid/uuid.h>
#include <zookeeper/zookeeper.h>

/* A random instance id as discd makes them: a lowercase UUID (36 chars).
 * Inline so that a test using only this needs libuuid, not zkc.c. */
static inline void zkc_new_id(char out[37])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

/* Connect (and, if digest is not NULL, add digest auth "user:password");
 * waits up to timeout_ms for the session. NULL on failure. */
zhandle_t *zkc_open(const char *connect, const char *digest, int timeout_ms);

void zkc_close(zhandle_t *zh);

/* Create path with data (NULL: no data), persistent or ephemeral, ACL
 * world:anyone with `perms` (ZOO_PERM_* bits). Parents must exist. */
int zkc_create(zhandle_t *zh, const char *path, const char *data, int perms, int flags);

/* Create every missing component of path (persistent, open ACL). */
int zkc_create_parents(zhandle_t *zh, const char *path);

/* setData (any version). */
int zkc_set(zhandle_t *zh, const char *path, const char *data);

/* Data of path into buf (NUL-terminated); *version gets stat.version if not NULL. */
int zkc_get(zhandle_t *zh, const char *path, char *buf, size_t len, int *version);

int zkc_delete(zhandle_t *zh, const char *path);

/* Delete path and everything below it (zkCli's deleteall), in one atomic
 * zoo_multi so hosts re-creating their nodes meanwhile cannot make it fail. */
int zkc_deleteall(zhandle_t *zh, const char *path);

/* Number of children of path (or a negative ZooKeeper error). */
int zkc_count(zhandle_t *zh, const char *path);

/* The first child of path whose name starts with prefix, into out. */
int zkc_find_child(zhandle_t *zh, const char *path, const char *prefix, char *out, size_t len);

/* setACL path to world:anyone with perms. */
int zkc_set_world_acl(zhandle_t *zh, const char *path, int perms);

#endif /* DISC_TEST_ZKC_H */
