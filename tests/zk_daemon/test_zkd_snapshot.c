/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_snapshot.c — aggregate snapshots (docs/ZOOKEEPER.md, "Aggregate
 * snapshots") with real discd processes and a plain ZooKeeper client in the
 * test (zkc.c) acting as another host or as an attacker:
 *   - a host's snapshot covers all its instances: a fresh discd takes every
 *     document from it (no per-instance read) and holds them all;
 *   - a snapshot older than the listing: names it lacks are read one by one,
 *     names no longer listed are not served;
 *   - a corrupted chunk, a chunk rewritten in place by another client and a
 *     chunk replaced by another client's session are skipped and counted;
 *     the fresh discd still holds exactly the real documents;
 *   - mixed versions: a discd with --zk-snapshots=false (the layout before
 *     snapshots, standing in for an old discd) and a new one, read by a new
 *     and an old fresh discd: all converge; the old writer has no snapshot.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zk_server.h"
#include "zk_snapshot.h"
#include "zkc.h"
#include "zkd_util.h"

static struct zk_cluster zk;
static struct zkd a, b, c, d;
static zhandle_t *cli, *mallory;

static void teardown(void)
{
    zkc_close(cli);
    zkc_close(mallory);
    cli = mallory = NULL;
    zkd_teardown(&zk, &a, &b, &c, &d, NULL);
}

static void setup(char *root, size_t len, const char *tag)
{
    zkd_zookeeper(&zk, root, len, tag);
    cli = zkc_open(zk.connect, NULL, 10000);
    cr_assert(cli, "plain ZooKeeper client did not connect");
}

/* Read and decode z's (or any host's) snapshot; -errno / ZooKeeper error. */
static int read_snapshot(const char *root, const char *host, struct zk_snap *out)
{
    static char buf[4][ZK_SNAP_CHUNK_MAX];
    const void *data[4];
    size_t lens[4];
    char path[512];
    size_t count = 1;
    for (size_t i = 0; i < count && i < 4; i++) {
        snprintf(path, sizeof(path), "%s/snap/%s/%zu", root, host, i);
        int len = (int)sizeof(buf[i]);
        int rc = zoo_get(cli, path, 0, buf[i], &len, NULL);
        if (rc != ZOK) {
            return rc;
        }
        struct zk_snap_hdr h;
        if (zk_snap_parse_chunk(buf[i], (size_t)len, &h, NULL) != 0) {
            return -EINVAL;
        }
        count = h.count;
        data[i] = buf[i];
        lens[i] = (size_t)len;
    }
    return count > 4 ? -E2BIG : zk_snap_decode(data, lens, count, out, NULL);
}

/* Wait until host's snapshot holds exactly want documents. */
static bool wait_snapshot(const char *root, const char *host, size_t want, int timeout_ms)
{
    long long end = proc_now_ms() + (long long)timeout_ms * dt_slow();
    for (;;) {
        struct zk_snap s;
        int rc = read_snapshot(root, host, &s);
        size_t n = rc == 0 ? s.n : 0;
        if (rc == 0) {
            zk_snap_free(&s);
        }
        if (rc == 0 && n == want) {
            return true;
        }
        if (proc_now_ms() > end) {
            cr_log_error("snapshot of %s: rc %d, %zu documents, want %zu", host, rc, n, want);
            return false;
        }
        proc_sleep_ms(20);
    }
}

static void doc(char *out, size_t len, const char *id, const char *svc, const char *addr)
{
    snprintf(out, len, "{\"id\":\"%s\",\"service\":\"%s\",\"host\":\"x\",\"address\":\"%s\"}", id,
             svc, addr);
}

/* Register n instances of svc on z at NET.0:80 .. NET.<n-1>:80, ids[i] the
 * i-th. */
static void register_n(struct zkd *z, const char *svc, const char *net, int n, char (*ids)[37])
{
    for (int i = 0; i < n; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "%s.%d:80", net, i);
        zkd_register(z, svc, addr, ids[i]);
    }
}

/* The address of instance id in z's segment ("" if absent). */
static void addr_of(struct zkd *z, const char *id, char *out, size_t len)
{
    char buf[8192];
    struct disc_instance *inst = NULL;
    int rc = disc_lookup_id(z->h, id, buf, sizeof(buf), &inst, NULL);
    snprintf(out, len, "%s", rc >= 0 && inst ? inst->address : "");
}

Test(zkd_snapshot, covers_everything, .fini = teardown)
{
    char root[128], ids[20][37];
    setup(root, sizeof(root), "cover");
    zkd_start(&a, "snpa", zk.connect, root);
    register_n(&a, "snap-cover", "10.1.0", 20, ids);
    cr_assert(wait_snapshot(root, a.host_id, 20, 15000), "a's snapshot never held all 20");
    /* the worker counts the write once its reply is in, and publishes the
     * counters at the end of that round: the node can be read before */
    long long writes = 0;
    for (int t = 0; t < 100 * dt_slow() && (writes = zkd_counter(&a, "snap_writes")) < 1; t++)
        usleep(50000);
    cr_assert_geq(writes, 1);
    zkd_start(&c, "snpc", zk.connect, root);
    cr_assert(zkd_wait_count(&c, "snap-cover", 20, 15000), "fresh c: %d of 20",
              zkd_count(&c, "snap-cover"));
    cr_assert_eq(zkd_counter(&c, "snap_used"), 20, "every document should come from the snapshot");
    cr_assert_eq(zkd_counter(&c, "snap_skipped"), 0);
    cr_assert_eq(zkd_counter(&c, "snap_bad_entries"), 0);
    /* one probe (exists) on a's nodes, no get of a document */
    cr_assert_leq(zkd_counter(&c, "reads"), 1 + 1, "reads %lld", zkd_counter(&c, "reads"));
    for (int i = 0; i < 20; i++) {
        char want[32], got[64];
        snprintf(want, sizeof(want), "10.1.0.%d:80", i);
        addr_of(&c, ids[i], got, sizeof(got));
        cr_assert_str_eq(got, want, "instance %d", i);
    }
    /* later changes propagate through the instance nodes as before */
    char extra[37];
    zkd_register(&a, "snap-cover", "10.1.1.1:80", extra);
    cr_assert(zkd_wait_count(&c, "snap-cover", 21, 10000));
    /* a single registration on a settled discd takes the early-create path
     * (no write of the worker's own): the snapshot follows it all the same */
    cr_assert(wait_snapshot(root, a.host_id, 21, 15000), "a's snapshot missed a registration");
    zkd_deregister(&a, ids[0]);
    cr_assert(zkd_wait_count(&c, "snap-cover", 20, 10000));
    cr_assert(wait_snapshot(root, a.host_id, 20, 15000), "a's snapshot did not follow");
    zkd_finish(&c);
    zkd_finish(&a);
}

/* Host x played by the test's own session: instance nodes and a snapshot,
 * both ephemeral of that one session, as zk_sync writes them. */
static void put_host_x(const char *root, const char *host, char (*names)[64], char (*docs)[256],
                       int nlisted, int nsnap_from, int nsnap)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/hosts/%s", root, host);
    cr_assert_eq(zkc_create_parents(cli, path), ZOK);
    for (int i = 0; i < nlisted; i++) {
        snprintf(path, sizeof(path), "%s/hosts/%s/%s", root, host, names[i]);
        cr_assert_eq(zoo_create(cli, path, docs[i], (int)strlen(docs[i]), &ZOO_OPEN_ACL_UNSAFE,
                                ZOO_EPHEMERAL, NULL, 0),
                     ZOK);
    }
    struct zk_snap_entry e[8];
    for (int i = 0; i < nsnap; i++) {
        int k = nsnap_from + i;
        e[i] = (struct zk_snap_entry){names[k], strlen(names[k]), docs[k], strlen(docs[k])};
    }
    struct zk_snap_chunks ch;
    cr_assert_eq(zk_snap_encode(e, (size_t)nsnap, 1, ZK_SNAP_CHUNK_MAX, &ch), 0);
    snprintf(path, sizeof(path), "%s/snap/%s", root, host);
    cr_assert_eq(zkc_create_parents(cli, path), ZOK);
    snprintf(path, sizeof(path), "%s/snap/%s/0", root, host);
    cr_assert_eq(zoo_create(cli, path, ch.data[0], (int)ch.len[0], &ZOO_OPEN_ACL_UNSAFE,
                            ZOO_EPHEMERAL, NULL, 0),
                 ZOK);
    zk_snap_chunks_free(&ch);
}

/* names[i] sorted, "<id>-1", service svc[i] */
static void make_docs(char (*names)[64], char (*docs)[256], char (*ids)[37], int n,
                      const char *const *svc)
{
    for (int i = 0; i < n; i++) {
        zkc_new_id(ids[i]);
    }
    qsort(ids, (size_t)n, sizeof(ids[0]), (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < n; i++) {
        snprintf(names[i], 64, "%s-1", ids[i]);
        char addr[32];
        snprintf(addr, sizeof(addr), "10.2.0.%d:80", i);
        doc(docs[i], 256, ids[i], svc[i], addr);
    }
}

Test(zkd_snapshot, stale_snapshot_against_listing, .fini = teardown)
{
    char root[128], host[64], names[4][64], docs[4][256], ids[4][37];
    setup(root, sizeof(root), "stale");
    snprintf(host, sizeof(host), "x-%d", (int)getpid());
    /* listed: 0, 1, 2. snapshot: 1, 2, 3 -- 0 is newer than the snapshot, 3 is gone */
    static const char *const svc[4] = {"snap-new", "snap-kept", "snap-kept", "snap-gone"};
    make_docs(names, docs, ids, 4, svc);
    /* the snapshot holds names 1..3 but only 0..2 are listed: node 3 "was removed" */
    put_host_x(root, host, names, docs, 3, 1, 3);
    zkd_start(&c, "snsc", zk.connect, root);
    cr_assert(zkd_wait_count(&c, "snap-kept", 2, 15000));
    cr_assert(zkd_wait_count(&c, "snap-new", 1, 15000), "the name the snapshot lacks was not read");
    struct disc_status st;
    cr_assert(zkd_wait_synced(&c, 15000, &st));
    cr_assert_eq(zkd_count(&c, "snap-gone"), 0, "a name no longer listed was served");
    cr_assert_eq(zkd_counter(&c, "snap_used"), 2);
    cr_assert_eq(zkd_counter(&c, "snap_skipped"), 0);
    /* the snapshot-only document 3 appears once its node is created */
    char path[512];
    snprintf(path, sizeof(path), "%s/hosts/%s/%s", root, host, names[3]);
    cr_assert_eq(zoo_create(cli, path, docs[3], (int)strlen(docs[3]), &ZOO_OPEN_ACL_UNSAFE,
                            ZOO_EPHEMERAL, NULL, 0),
                 ZOK);
    cr_assert(zkd_wait_count(&c, "snap-gone", 1, 10000));
    zkd_finish(&c);
}

Test(zkd_snapshot, corrupted_chunk_is_skipped, .fini = teardown)
{
    char root[128], host[64], names[3][64], docs[3][256], ids[3][37];
    setup(root, sizeof(root), "corrupt");
    snprintf(host, sizeof(host), "x-%d", (int)getpid());
    static const char *const svc[3] = {"snap-c", "snap-c", "snap-c"};
    make_docs(names, docs, ids, 3, svc);
    put_host_x(root, host, names, docs, 3, 0, 3);
    /* flip one byte of a document inside the chunk (its CRCs no longer match) */
    char path[512], buf[8192];
    snprintf(path, sizeof(path), "%s/snap/%s/0", root, host);
    int len = (int)sizeof(buf);
    cr_assert_eq(zoo_get(cli, path, 0, buf, &len, NULL), ZOK);
    char *at = memmem(buf, (size_t)len, "10.2.0.1:80", 11);
    cr_assert(at);
    at[5] = '9';
    cr_assert_eq(zoo_delete(cli, path, -1), ZOK);
    cr_assert_eq(zoo_create(cli, path, buf, len, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0),
                 ZOK);
    zkd_start(&c, "snkc", zk.connect, root);
    cr_assert(zkd_wait_count(&c, "snap-c", 3, 15000));
    cr_assert_eq(zkd_counter(&c, "snap_skipped"), 1);
    cr_assert_eq(zkd_counter(&c, "snap_used"), 0);
    char got[64];
    addr_of(&c, ids[1], got, sizeof(got));
    cr_assert_str_eq(got, "10.2.0.1:80", "the corrupted document was served");
    zkd_finish(&c);
}

/* A forged snapshot of a's documents with every address changed. */
static void forge(const char *root, struct zkd *owner, struct zk_snap_chunks *ch)
{
    struct zk_snap s;
    cr_assert_eq(read_snapshot(root, owner->host_id, &s), 0);
    static char docs[16][512];
    struct zk_snap_entry e[16];
    cr_assert_leq(s.n, 16);
    for (size_t i = 0; i < s.n; i++) {
        snprintf(docs[i], sizeof(docs[i]), "%.*s", (int)s.e[i].doc_len, s.e[i].doc);
        char *at = strstr(docs[i], "10.3.");
        cr_assert(at);
        at[3] = '6'; /* 10.3.x -> 10.6.x */
        e[i] = (struct zk_snap_entry){s.e[i].name, s.e[i].name_len, docs[i], strlen(docs[i])};
    }
    cr_assert_eq(zk_snap_encode(e, s.n, s.gen + 1, ZK_SNAP_CHUNK_MAX, ch), 0);
    zk_snap_free(&s);
}

static void expect_real(struct zkd *z, char (*ids)[37], int n)
{
    for (int i = 0; i < n; i++) {
        char want[32], got[64];
        snprintf(want, sizeof(want), "10.3.0.%d:80", i);
        addr_of(z, ids[i], got, sizeof(got));
        cr_assert_str_eq(got, want, "%s: instance %d has a forged address", z->host_id, i);
    }
}

Test(zkd_snapshot, forged_chunk_is_skipped, .fini = teardown)
{
    char root[128], ids[5][37], path[512];
    setup(root, sizeof(root), "forge");
    zkd_start(&a, "snfa", zk.connect, root);
    register_n(&a, "snap-f", "10.3.0", 5, ids);
    cr_assert(wait_snapshot(root, a.host_id, 5, 15000));
    mallory = zkc_open(zk.connect, NULL, 10000);
    cr_assert(mallory);
    snprintf(path, sizeof(path), "%s/snap/%s/0", root, a.host_id);

    /* 1: rewritten in place (setData) with valid checksums. If a writes its
     * snapshot again before c reads it (a reconnect of a's session on a
     * loaded machine makes a rewrite it), c never meets the forgery: that
     * attempt proves nothing about c, so it is made again (at most 3). */
    struct zk_snap_chunks ch;
    long long skipped = 0, used = 0;
    for (int attempt = 1;; attempt++) {
        long long a_before = zkd_counter(&a, "snap_writes");
        forge(root, &a, &ch);
        cr_assert_eq(zoo_set(mallory, path, ch.data[0], (int)ch.len[0], -1), ZOK);
        zkd_start(&c, "snfc", zk.connect, root);
        cr_assert(zkd_wait_count(&c, "snap-f", 5, 15000));
        expect_real(&c, ids, 5);
        skipped = zkd_counter(&c, "snap_skipped");
        used = zkd_counter(&c, "snap_used");
        bool a_rewrote = zkd_counter(&a, "snap_writes") != a_before;
        zkd_finish(&c);
        if (skipped > 0 || !a_rewrote || attempt == 3) {
            break;
        }
        cr_log_info("attempt %d: a rewrote its snapshot before c read the forgery; again", attempt);
        zk_snap_chunks_free(&ch);
    }
    /* more than one skip: c read it again after a reconnect of its own */
    cr_assert_geq(skipped, 1, "c never skipped the forged chunk");
    cr_assert_eq(used, 0, "c used a snapshot chunk another client rewrote");

    /* 2: replaced by a node of another session (delete + create) */
    long long a_writes = zkd_counter(&a, "snap_writes");
    cr_assert_eq(zoo_delete(mallory, path, -1), ZOK);
    cr_assert_eq(zoo_create(mallory, path, ch.data[0], (int)ch.len[0], &ZOO_OPEN_ACL_UNSAFE,
                            ZOO_EPHEMERAL, NULL, 0),
                 ZOK);
    zk_snap_chunks_free(&ch);
    zkd_start(&d, "snfd", zk.connect, root);
    cr_assert(zkd_wait_count(&d, "snap-f", 5, 15000));
    expect_real(&d, ids, 5);
    /* Either d met the forged chunk and skipped it, or a's audit had already
     * put its own snapshot back (a slow machine) and d used that one. */
    skipped = zkd_counter(&d, "snap_skipped");
    if (skipped == 0) {
        cr_assert_gt(zkd_counter(&a, "snap_writes"), a_writes,
                     "d skipped nothing, yet a never rewrote its replaced snapshot");
    } else {
        cr_assert_eq(zkd_counter(&d, "snap_used"), 0, "d used a chunk of another session");
    }
    zkd_finish(&d);
    zkd_finish(&a);
}

Test(zkd_snapshot, mixed_versions, .fini = teardown)
{
    char root[128], id[37], path[512];
    setup(root, sizeof(root), "mixed");
    /* a: the layout before snapshots (stands in for an old discd); b: new */
    zkd_start_extra(&a, "snma", zk.connect, root, "--zk-snapshots=false");
    zkd_start(&b, "snmb", zk.connect, root);
    for (int i = 0; i < 12; i++) {
        zkd_register(&a, "snap-old", "10.4.0.1:80", id);
        zkd_register(&b, "snap-new", "10.4.0.2:80", id);
    }
    cr_assert(wait_snapshot(root, b.host_id, 12, 15000));
    cr_assert(zkd_wait_count(&a, "snap-new", 12, 15000), "old discd does not see the new one's");
    cr_assert(zkd_wait_count(&b, "snap-old", 12, 15000), "new discd does not see the old one's");
    snprintf(path, sizeof(path), "%s/snap/%s", root, a.host_id);
    cr_assert_eq(zkc_count(cli, path), ZNONODE, "the old-layout discd wrote a snapshot");
    /* a fresh new discd: b's documents from its snapshot, a's one by one */
    zkd_start(&c, "snmc", zk.connect, root);
    cr_assert(zkd_wait_count(&c, "snap-old", 12, 15000));
    cr_assert(zkd_wait_count(&c, "snap-new", 12, 15000));
    cr_assert_eq(zkd_counter(&c, "snap_used"), 12);
    cr_assert_eq(zkd_counter(&c, "snap_skipped"), 0);
    cr_assert_geq(zkd_counter(&c, "reads"), 12, "a's documents are read one by one");
    /* a fresh old-layout discd reads everything one by one and sees no junk */
    zkd_start_extra(&d, "snmd", zk.connect, root, "--zk-snapshots=false");
    cr_assert(zkd_wait_count(&d, "snap-old", 12, 15000));
    cr_assert(zkd_wait_count(&d, "snap-new", 12, 15000));
    cr_assert_eq(zkd_counter(&d, "snap_used"), 0);
    cr_assert_eq(zkd_counter(&d, "snap_chunk_reads"), 0);
    cr_assert_eq(zkd_counter(&d, "skipped_bad_name"), 0, "the snapshot nodes showed in a listing");
    /* changes still flow both ways */
    zkd_register(&a, "snap-old", "10.4.0.1:81", id);
    cr_assert(zkd_wait_count(&c, "snap-old", 13, 10000));
    zkd_register(&b, "snap-new", "10.4.0.2:81", id);
    cr_assert(zkd_wait_count(&d, "snap-new", 13, 10000));
    zkd_finish(&d);
    zkd_finish(&c);
    zkd_finish(&b);
    zkd_finish(&a);
}
