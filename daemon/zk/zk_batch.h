/* SPDX-License-Identifier: MIT */
/*
 * zk_batch.h — waiting for a batch of asynchronous ZooKeeper requests, and
 * copying their results out of the client's completion callbacks. Shared
 * by the native region sync (zk_sync.c), the import engine (import.c) and
 * the Curator export (export.c).
 *
 * Use: zk_batch_init; for each request, zk_batch_add before issuing it and
 * zk_batch_issued with the zoo_a* return code after (a request the client
 * refused is completed at once); each completion callback ends with
 * zk_batch_done; zk_batch_wait returns when every request has completed
 * (the client completes every request, with ZCONNECTIONLOSS or ZCLOSING at
 * the latest, so the wait ends); zk_batch_destroy. The completion callback
 * runs on the client's completion thread, so it wakes the waiter once, when
 * the last request of the batch completes (one wake-up per batch, not per
 * reply). The copy helpers return ZOK or ZSYSTEMERROR (out of memory).
 */
#ifndef DISC_ZK_BATCH_H
#define DISC_ZK_BATCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <zookeeper/zookeeper.h>

struct zk_batch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t pending; /* requests issued and not yet completed (under mu) */
};

void zk_batch_init(struct zk_batch *b);

/* One more request is about to be issued. */
void zk_batch_add(struct zk_batch *b);

/* After issuing: rc is the zoo_a* return code. If it is not ZOK the client
 * will never call the completion, so the request completes now with *op_rc
 * = rc. */
void zk_batch_issued(struct zk_batch *b, int rc, int *op_rc);

/* One request completed (last statement of a completion callback). */
void zk_batch_done(struct zk_batch *b);

/* Wait until every request added so far has completed. True if the caller
 * had to sleep (a wake-up), false if all had completed already. */
bool zk_batch_wait(struct zk_batch *b);

/* After the last zk_batch_wait. */
void zk_batch_destroy(struct zk_batch *b);

/* Copy a get's value into *out (NUL-terminated, *len bytes) when there is
 * one (value not NULL), it is whole (value_len equals the stat's data
 * length; stat may be NULL) and at most max bytes; otherwise leave *out
 * NULL (the caller judges the size from the stat). */
int zk_batch_copy_value(const char *value, int value_len, const struct Stat *stat, size_t max,
                        char **out, size_t *len);

/* Copy a listing's names into *out (owned; free with
 * deallocate_String_vector). On failure *out holds what was copied. */
int zk_batch_copy_children(const struct String_vector *in, struct String_vector *out);

#endif /* DISC_ZK_BATCH_H */
