/* SPDX-License-Identifier: MIT */
/*
 * zkd_segdump — print a registry's segment as text, read through libdiscshm
 * in a process of its own. test_mixed_version runs two builds of it: one
 * linked against this tree's libdiscshm and one against the libdiscshm of
 * the older tree its old discd comes from (scripts/build-old-discd.sh), since
 * each library reads only its own segment layout. It uses only the public
 * API and libc, so the same source builds against both.
 *
 *   zkd_segdump NAME      (the registry directory from $DISCSHM_DIR)
 *
 * Output, exit 0:
 *   status writer=PID flags=0xF abi=MAJOR instances=N last_sync=0|1
 *   <id> <origin> service=S host=H version=V az=A kind=K address=X weight=W
 *     health=H owner=U registered_at=MS tags=[k=v,...] endpoints=[n:req:resp:mean:p95,...]
 * (one line per instance, sorted by id; "origin" is kept apart from the rest
 * so that the same instance read on its own host and on another compares
 * equal after it). Errors go to stderr, exit 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discshm.h"

struct line {
    char id[DISC_ID_LEN + 1];
    char *text;
};

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct line *)a)->id, ((const struct line *)b)->id);
}

/* One instance as text (malloc'd), or NULL (errno set). */
static char *instance_text(const struct disc_instance *v)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fprintf(f, "%s %u service=%s host=%s version=%s az=%s kind=%u address=%s weight=%u", v->id,
            v->origin, v->service, v->host, v->version, v->az, v->addr_kind, v->address, v->weight);
    fprintf(f, " health=%u owner=%u registered_at=%lld tags=[", v->health, v->owner_uid,
            (long long)v->registered_at_ms);
    int ok = 1;
    for (unsigned i = 0; i < v->n_tags; i++) {
        const char *k, *val;
        if (disc_instance_tag(v, i, &k, &val) < 0) {
            ok = 0;
            break;
        }
        fprintf(f, "%s%s=%s", i ? "," : "", k, val);
    }
    fputs("] endpoints=[", f);
    for (unsigned i = 0; ok && i < v->n_endpoints; i++) {
        struct disc_endpoint e;
        if (disc_instance_endpoint(v, i, &e) < 0) {
            ok = 0;
            break;
        }
        fprintf(f, "%s%s:%s:%s:%u:%u", i ? "," : "", e.name, e.request_type, e.response_type,
                e.mean_us, e.p95_us);
    }
    fputc(']', f);
    if (fclose(f) != 0 || !ok) {
        free(buf);
        errno = EBADMSG;
        return NULL;
    }
    return buf;
}

static void free_lines(struct line *lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i].text);
    free(lines);
}

/* Read every instance in one read section; -errno (-EAGAIN: the section
 * overlapped a reclaim, read again). */
static int read_all(disc_handle *h, struct line **out, size_t *out_n)
{
    struct disc_read rd;
    int rc = disc_read_begin(h, &rd);
    if (rc < 0)
        return rc;
    struct line *lines = NULL;
    size_t n = 0, cap = 0;
    uint64_t cur = 0;
    struct disc_service_view sv;
    while ((rc = disc_read_next_service(&rd, &cur, &sv)) == 1) {
        for (uint32_t i = 0; i < sv.n_instances; i++) {
            struct disc_instance v;
            rc = disc_read_instance(&rd, &sv, i, &v);
            if (rc < 0)
                break;
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                struct line *grown = realloc(lines, cap * sizeof(*lines));
                if (!grown) {
                    rc = -ENOMEM;
                    break;
                }
                lines = grown;
            }
            snprintf(lines[n].id, sizeof(lines[n].id), "%s", v.id);
            lines[n].text = instance_text(&v);
            if (!lines[n].text) {
                rc = -errno;
                break;
            }
            n++;
        }
        if (rc < 0)
            break;
    }
    int end = disc_read_end(&rd);
    if (end == -EAGAIN || (rc >= 0 && end < 0))
        rc = end; /* a torn section's other errors mean nothing */
    if (rc < 0) {
        free_lines(lines, n);
        return rc;
    }
    *out = lines;
    *out_n = n;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s NAME (registry directory from $DISCSHM_DIR)\n", argv[0]);
        return 2;
    }
    disc_handle *h;
    int rc = disc_open(argv[1], 0, &h);
    if (rc < 0) {
        fprintf(stderr, "zkd_segdump: disc_open(%s): %s\n", argv[1], disc_strerror(rc));
        return 1;
    }
    struct line *lines = NULL;
    size_t n = 0;
    for (int attempt = 0; attempt < 100; attempt++) {
        rc = read_all(h, &lines, &n);
        if (rc != -EAGAIN)
            break;
    }
    struct disc_status st;
    int src = rc < 0 ? rc : disc_status(h, &st);
    if (rc < 0 || src < 0) {
        fprintf(stderr, "zkd_segdump: reading %s: %s\n", argv[1], disc_strerror(rc < 0 ? rc : src));
        if (rc >= 0)
            free_lines(lines, n);
        disc_close(h);
        return 1;
    }
    qsort(lines, n, sizeof(*lines), by_id);
    printf("status writer=%d flags=0x%x abi=%u instances=%zu last_sync=%d\n", (int)st.writer_pid,
           st.flags, st.abi_major, n, st.last_sync_ms > 0);
    for (size_t i = 0; i < n; i++)
        printf("%s\n", lines[i].text);
    free_lines(lines, n);
    disc_close(h);
    return fflush(stdout) == 0 ? 0 : 1;
}
