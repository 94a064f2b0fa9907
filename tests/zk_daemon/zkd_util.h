/* SPDX-License-Identifier: MIT */
/*
 * zkd_util.h — helpers for the discd + ZooKeeper end-to-end tests: start a
 * discd in ZooKeeper mode, register/deregister over its socket, and poll its
 * segment (libdiscshm) with deadlines.
 */
#ifndef DISC_TEST_ZKD_UTIL_H
#define DISC_TEST_ZKD_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon_util.h"
#include "discshm.h"

struct zk_cluster;

/* Session timeout given to every discd (ms): short, so expiry tests are fast. */
#define ZKD_SESSION_MS 4000

/* One discd in ZooKeeper mode plus a reader on its segment. */
struct zkd {
    struct discd_proc proc;
    disc_handle *h;
    char host_id[64];
};

/* A ZooKeeper root unique to this test process (e.g. "/discd-1234-region"). */
void zkd_root(char *buf, size_t len, const char *tag);

/* The opening of most tests: a standalone ZooKeeper (zk_cluster_start with
 * one node, up to 60 s scaled by dt_slow()) and a root of this test's for
 * tag in buf (zkd_root). Asserts. */
void zkd_zookeeper(struct zk_cluster *zk, char *root, size_t len, const char *tag);

/* Start discd with --zk=connect --zk-root=root --host-id=<tag>-<pid> and a
 * short session timeout, open a reader on its segment. Asserts. */
void zkd_start(struct zkd *z, const char *tag, const char *connect, const char *root);

/* The same with one more discd argument (e.g. "--cache-file=PATH"; NULL: none). */
void zkd_start_extra(struct zkd *z, const char *tag, const char *connect, const char *root,
                     const char *extra);

/* The same with another discd binary (bin: e.g. an older version's build,
 * test_mixed_version) and no reader: its segment may have a layout this
 * tree's libdiscshm refuses (z->h stays NULL; read it with a program linked
 * against the library of its own tree). zkd_restart runs bin again. Asserts. */
void zkd_start_binary(struct zkd *z, const char *bin, const char *tag, const char *connect,
                      const char *root, const char *extra);

/* A discd config file holding text, in a new temporary directory (for
 * options zkd_start_extra's one argument cannot carry: pass
 * "--config=<c->path>"). Asserts. */
struct zkd_conf {
    char dir[64];
    char path[128];
};
void zkd_conf_write(struct zkd_conf *c, const char *text);

/* Remove the file and its directory. Idempotent; no asserts. */
void zkd_conf_remove(struct zkd_conf *c);

/* zkd_start_extra with "--config=<c->path>", then wait (up to 20 s) until
 * that discd has synced (zkd_wait_synced). Asserts. */
void zkd_start_conf(struct zkd *z, const char *tag, const char *connect, const char *root,
                    const struct zkd_conf *c);

/* Start z's discd again after a stop or kill, with the arguments zkd_start
 * gave it (same host id, registry name and state directory). Asserts. */
void zkd_restart(struct zkd *z, const char *connect, const char *root);

/* Close the reader, SIGTERM discd (must exit 0), clean up. Idempotent. */
void zkd_finish(struct zkd *z);

/* Teardown after a failure: close the reader, kill discd, clean up; no
 * asserts, so every process is reaped. Idempotent. */
void zkd_abort(struct zkd *z);

/* A test file's teardown: zkd_abort every discd of the NULL-terminated
 * list, then destroy the ZooKeeper cluster (after them: no discd outlives
 * its ZooKeeper). No asserts. */
void zkd_teardown(struct zk_cluster *zk, struct zkd *z, ...) __attribute__((sentinel));

/* Register {"service":svc,"address":addr} with check "none" on a fresh
 * connection (the instance stays until deregistered). Asserts; copies the id. */
void zkd_register(struct zkd *z, const char *svc, const char *addr, char id[DISC_ID_LEN + 1]);

/* Deregister id. Asserts ok. */
void zkd_deregister(struct zkd *z, const char *id);

/* disc_count with -ENOENT mapped to 0. */
int zkd_count(struct zkd *z, const char *svc);

/* Poll until the count of svc is want; returns true if reached before
 * timeout_ms (scaled by dt_slow()). */
bool zkd_wait_count(struct zkd *z, const char *svc, int want, int timeout_ms);

/* Poll disc_status until (flags & mask) == want; fills *st with the last status.
 * Returns true if reached in time (timeout scaled by dt_slow()). */
bool zkd_wait_flags(struct zkd *z, uint32_t mask, uint32_t want, int timeout_ms,
                    struct disc_status *st);

/* Poll until the header says ZK_CONFIGURED|ZK_CONNECTED, not DEGRADED, and
 * last_sync_ms > 0 (a full listing completed). Fills *st. */
bool zkd_wait_synced(struct zkd *z, int timeout_ms, struct disc_status *st);

/* zkd_wait_synced (timeout_ms each) on every discd of the NULL-terminated
 * list, in order; asserts, naming the host that did not sync. */
void zkd_all_synced(int timeout_ms, struct zkd *z, ...) __attribute__((sentinel));

/* The one instance of svc in z's segment: asserts there is exactly one and
 * that its origin and host are as given. */
void zkd_expect_instance(struct zkd *z, const char *svc, const char *id, uint8_t origin,
                         const char *host);

/* status.zookeeper.last_error of z's discd (the last failed sync round's
 * reason, "(none)" if none) copied into buf; returns buf. Asserts. */
const char *zkd_last_error(struct zkd *z, char *buf, size_t len);

/* status.zookeeper.counters.<key> of z's discd (asserts it is there). */
long long zkd_counter(struct zkd *z, const char *key);

/* status.zookeeper.state ("connected", ...) copied into buf. Asserts. */
void zkd_zk_state(struct zkd *z, char *buf, size_t len);

#endif /* DISC_TEST_ZKD_UTIL_H */
