/* SPDX-License-Identifier: MIT */
/*
 * zkd_peer.h — a foreign host in a discd region, written with zk_sync
 * itself (the ZooKeeper layer discd uses) and driven from the test
 * process: it publishes and withdraws documents of its own making
 * (zk_sync_publish_local / zk_sync_withdraw_local), valid or not, as a
 * buggy or hostile host would. Header-only, for the tests linked with
 * disczk (test_zkd_baddoc, test_zkd_protect).
 */
#ifndef DISC_TEST_ZKD_PEER_H
#define DISC_TEST_ZKD_PEER_H

#include <criterion/criterion.h>
#include <string.h>

#include "zk_sync.h"
#include "zkd_util.h"

/* Start host_id's session under root (the discd tests' session timeout, no
 * cooling-off, no jitter, no callbacks: it reads nothing back). Asserts;
 * stop it with zk_sync_stop. */
static inline struct zk_sync *zkd_peer_start(const char *connect, const char *root,
                                             const char *host_id)
{
    struct zk_sync_config cfg = {
        .connect = connect,
        .root = root,
        .host_id = host_id,
        .session_timeout_ms = ZKD_SESSION_MS,
        .cooloff_ms = 0,
        .jitter_ms = 0,
    };
    struct zk_sync *zs = NULL;
    int rc = zk_sync_start(&cfg, NULL, NULL, &zs);
    cr_assert_eq(rc, 0, "foreign host %s did not start: %s", host_id, strerror(-rc));
    return zs;
}

#endif /* DISC_TEST_ZKD_PEER_H */
