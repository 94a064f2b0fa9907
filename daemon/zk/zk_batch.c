/* SPDX-License-Identifier: MIT */
/*
 * zk_batch.c — batches of asynchronous ZooKeeper requests (zk_batch.h).
 */
#include "zk_batch.h"

#include <stdlib.h>
#include <string.h>

void zk_batch_init(struct zk_batch *b)
{
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->pending = 0;
}

void zk_batch_add(struct zk_batch *b)
{
    pthread_mutex_lock(&b->mu);
    b->pending++;
    pthread_mutex_unlock(&b->mu);
}

void zk_batch_issued(struct zk_batch *b, int rc, int *op_rc)
{
    if (rc != ZOK) {
        *op_rc = rc;
        zk_batch_done(b);
    }
}

void zk_batch_done(struct zk_batch *b)
{
    pthread_mutex_lock(&b->mu);
    if (--b->pending == 0) {
        pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
}

bool zk_batch_wait(struct zk_batch *b)
{
    pthread_mutex_lock(&b->mu);
    bool slept = b->pending > 0;
    while (b->pending > 0) {
        pthread_cond_wait(&b->cv, &b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return slept;
}

void zk_batch_destroy(struct zk_batch *b)
{
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
}

int zk_batch_copy_value(const char *value, int value_len, const struct Stat *stat, size_t max,
                        char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!value || value_len < 0 || (size_t)value_len > max ||
        (stat && stat->dataLength != value_len)) {
        return ZOK;
    }
    char *p = malloc((size_t)value_len + 1);
    if (!p) {
        return ZSYSTEMERROR;
    }
    memcpy(p, value, (size_t)value_len);
    p[value_len] = '\0';
    *out = p;
    *len = (size_t)value_len;
    return ZOK;
}

int zk_batch_copy_children(const struct String_vector *in, struct String_vector *out)
{
    out->count = 0;
    out->data = NULL;
    if (!in || in->count <= 0) {
        return ZOK;
    }
    out->data = calloc((size_t)in->count, sizeof(char *));
    if (!out->data) {
        return ZSYSTEMERROR;
    }
    for (int32_t i = 0; i < in->count; i++) {
        out->data[i] = strdup(in->data[i]);
        if (!out->data[i]) {
            return ZSYSTEMERROR;
        }
        out->count = i + 1;
    }
    return ZOK;
}
