/* SPDX-License-Identifier: MIT */
/*
 * test_segment.c — the writer and libdiscshm together: publishing,
 * copy-on-write, lookups, listing, errors, restarts, permissions.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "layout.h"
#include "reader_internal.h"
#include "segtest.h"

static char name[64];
static struct seg_writer *w;
static disc_handle *h;
static char buf[1 << 20];

static void setup(void)
{
    seg_name(name, sizeof(name), "seg");
    struct segw_config cfg = {.segment_bytes = 64ull << 20, .poison = true};
    cr_assert_eq(segw_open(name, &cfg, &w), 0);
    cr_assert_eq(disc_open(name, DISC_OPEN_VERIFY, &h), 0);
}

static void teardown(void)
{
    disc_close(h);
    h = NULL;
    segw_close(w, true);
    w = NULL;
}

TestSuite(segment, .init = setup, .fini = teardown);

Test(segment, empty_registry)
{
    struct disc_instance *list;
    size_t need = 0;
    cr_assert_eq(disc_lookup(h, "nothing", buf, sizeof(buf), &list, &need), -ENOENT);
    cr_assert_eq(disc_count(h, "nothing"), 0);
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert_eq(st.generation, 1);
    cr_assert_eq(st.n_instances, 0);
    cr_assert(st.flags & DISC_ST_WRITER_ALIVE);
    cr_assert_eq(st.abi_major, DISC_ABI_MAJOR);
}

Test(segment, roundtrip_every_field)
{
    struct seg_inst s;
    const struct segw_instance *in = seg_make(&s, 7, "payments", 3);
    cr_assert_eq(segw_put(w, in), 0);
    cr_assert_eq(segw_commit(w), 2);

    struct disc_instance *list;
    size_t need;
    cr_assert_eq(disc_lookup(h, "payments", buf, sizeof(buf), &list, &need), 1);
    struct disc_instance *v = &list[0];
    cr_assert_str_eq(v->id, s.id);
    cr_assert_str_eq(v->service, "payments");
    cr_assert_str_eq(v->version, "1.3");
    cr_assert_str_eq(v->host, "host-a");
    cr_assert_str_eq(v->az, "az-1");
    cr_assert_str_eq(v->address, s.address);
    cr_assert_eq(v->weight, in->weight);
    cr_assert_eq(v->addr_kind, DISC_ADDR_TCP);
    cr_assert_eq(v->health, DISC_HEALTH_PASSING);
    cr_assert_eq(v->origin, DISC_ORIGIN_LOCAL);
    cr_assert_eq(v->registered_at_ms, 1700000000007LL);
    cr_assert_eq(v->n_tags, 2);
    cr_assert_str_eq(disc_instance_tag_get(v, "zone"), "odd");
    cr_assert_null(disc_instance_tag_get(v, "nope"));
    struct disc_endpoint ep;
    cr_assert_eq(disc_instance_endpoint(v, 0, &ep), 0);
    cr_assert_str_eq(ep.name, "get");
    cr_assert_str_eq(ep.request_type, "GetReq");
    cr_assert_str_eq(ep.response_type, "GetResp");
    cr_assert_eq(ep.mean_us, 100 + 7 % 7);
    cr_assert_eq(disc_instance_endpoint(v, 1, &ep), -EINVAL);
    cr_assert(seg_check(v, "payments"));

    struct disc_instance *one;
    cr_assert_eq(disc_lookup_id(h, s.id, buf, sizeof(buf), &one, &need), 0);
    cr_assert_str_eq(one->address, s.address);
    cr_assert_eq(
        disc_lookup_id(h, "00000000-0000-0000-0000-000000000000", buf, sizeof(buf), &one, &need),
        -ENOENT);
}

Test(segment, burst_is_one_generation_and_sorted)
{
    struct seg_inst s;
    for (unsigned i = 0; i < 100; i++)
        cr_assert_eq(segw_put(w, seg_make(&s, 1000 - i, "burst", 0)), 0);
    cr_assert_eq(segw_pending(w), 100);
    cr_assert_eq(segw_commit(w), 2, "a burst of 100 changes is one publish");
    cr_assert_eq(segw_commit(w), 0, "nothing staged: no publish");
    struct disc_instance *list;
    size_t need;
    cr_assert_eq(disc_lookup(h, "burst", buf, sizeof(buf), &list, &need), 100);
    for (int i = 1; i < 100; i++)
        cr_assert_lt(strcmp(list[i - 1].id, list[i].id), 0, "instances sorted by id");
}

Test(segment, update_shares_unchanged_records)
{
    struct seg_inst s;
    for (unsigned i = 0; i < 5; i++)
        segw_put(w, seg_make(&s, i, "svc", 0));
    segw_put(w, seg_make(&s, 99, "other", 0));
    segw_commit(w);

    struct disc_read rd;
    struct disc_service_view sv;
    struct disc_instance before[5], other_before;
    cr_assert_eq(disc_read_begin(h, &rd), 0);
    cr_assert_eq(disc_read_service(&rd, "svc", &sv), 0);
    for (unsigned i = 0; i < 5; i++)
        cr_assert_eq(disc_read_instance(&rd, &sv, i, &before[i]), 0);
    cr_assert_eq(disc_read_service(&rd, "other", &sv), 0);
    cr_assert_eq(disc_read_instance(&rd, &sv, 0, &other_before), 0);
    cr_assert_eq(disc_read_end(&rd), 0);

    /* change instance 2 only */
    segw_put(w, seg_make(&s, 2, "svc", 1));
    segw_commit(w);

    cr_assert_eq(disc_read_begin(h, &rd), 0);
    cr_assert_eq(disc_read_service(&rd, "svc", &sv), 0);
    cr_assert_eq(sv.n_instances, 5);
    int changed = 0;
    for (unsigned i = 0; i < 5; i++) {
        struct disc_instance v;
        cr_assert_eq(disc_read_instance(&rd, &sv, i, &v), 0);
        if (strcmp(v.version, "1.1") == 0) {
            changed++;
            cr_assert_neq(v.rec_, before[i].rec_, "changed instance has a new record");
        } else {
            cr_assert_eq(v.rec_, before[i].rec_, "unchanged instance record is shared");
        }
    }
    cr_assert_eq(changed, 1);
    cr_assert_eq(disc_read_service(&rd, "other", &sv), 0);
    struct disc_instance ov;
    cr_assert_eq(disc_read_instance(&rd, &sv, 0, &ov), 0);
    cr_assert_eq(ov.rec_, other_before.rec_, "untouched service shares its instance");
    cr_assert_eq(disc_read_end(&rd), 0);
}

/* Record offsets of service "svc" and of its instances 0..4 (by number)
 * as published now. */
static uint32_t svc_recs(uint32_t inst[5])
{
    struct disc_read rd;
    struct disc_service_view sv;
    cr_assert_eq(disc_read_begin(h, &rd), 0);
    cr_assert_eq(disc_read_service(&rd, "svc", &sv), 0);
    cr_assert_eq(sv.n_instances, 5);
    for (unsigned i = 0; i < 5; i++) {
        struct disc_instance v;
        cr_assert_eq(disc_read_instance(&rd, &sv, i, &v), 0);
        unsigned n = (unsigned)strtoul(v.id + 24, NULL, 16); /* seg_id: the number ends it */
        cr_assert_lt(n, 5);
        inst[n] = (uint32_t)((const unsigned char *)v.rec_ - (const unsigned char *)rd.base_);
    }
    cr_assert_eq(disc_read_end(&rd), 0);
    return sv.rec_;
}

/* A put of exactly the published record (a re-registration, a resync)
 * rewrites nothing: the service record and every instance record stay
 * (so no table page was copied for them either), the commit still
 * publishes a generation, and segw_stats counts it. A change in the same
 * commit is published as usual, and a delete superseded by an identical
 * put before the commit keeps the instance. */
Test(segment, identical_put_rewrites_nothing)
{
    struct seg_inst s;
    for (unsigned i = 0; i < 5; i++)
        cr_assert_eq(segw_put(w, seg_make(&s, i, "svc", 0)), 0);
    int64_t g0 = segw_commit(w);
    cr_assert_gt(g0, 0);
    uint32_t r0[5], r1[5], r2[5];
    uint32_t sv0 = svc_recs(r0);
    struct segw_stats st;

    cr_assert_eq(segw_put(w, seg_make(&s, 2, "svc", 0)), 0);
    cr_assert_eq(segw_put(w, seg_make(&s, 3, "svc", 0)), 0);
    cr_assert_gt(segw_commit(w), g0, "a commit of identical puts still publishes");
    segw_stats(w, &st);
    cr_assert_eq(st.unchanged_puts, 2);
    cr_assert_eq(svc_recs(r1), sv0, "the service record is not rewritten");
    cr_assert_arr_eq(r1, r0, sizeof(r0), "no instance record is rewritten");

    /* one identical, one changed (instance 4, revision 1) */
    cr_assert_eq(segw_put(w, seg_make(&s, 2, "svc", 0)), 0);
    cr_assert_eq(segw_put(w, seg_make(&s, 4, "svc", 1)), 0);
    cr_assert_gt(segw_commit(w), 0);
    segw_stats(w, &st);
    cr_assert_eq(st.unchanged_puts, 3);
    cr_assert_neq(svc_recs(r2), sv0, "the changed instance's service is rewritten");
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(r2[i], r0[i], "instance %u is shared", i);
    cr_assert_neq(r2[4], r0[4], "instance 4 has a new record");
    struct disc_instance *one;
    size_t need;
    seg_id(s.id, 4);
    cr_assert_eq(disc_lookup_id(h, s.id, buf, sizeof(buf), &one, &need), 0);
    cr_assert_str_eq(one->version, "1.1");

    /* a delete, then the identical record again, before one commit */
    seg_id(s.id, 1);
    cr_assert_eq(segw_del(w, s.id), 0);
    cr_assert_eq(segw_put(w, seg_make(&s, 1, "svc", 0)), 0);
    cr_assert_gt(segw_commit(w), 0);
    segw_stats(w, &st);
    cr_assert_eq(st.unchanged_puts, 4);
    uint32_t r3[5];
    svc_recs(r3);
    cr_assert_arr_eq(r3, r2, sizeof(r2));
    cr_assert_eq(st.n_instances, 5);
}

Test(segment, delete_and_service_vanishes)
{
    struct seg_inst s;
    segw_put(w, seg_make(&s, 1, "a", 0));
    segw_put(w, seg_make(&s, 2, "a", 0));
    segw_commit(w);
    cr_assert_eq(disc_count(h, "a"), 2);
    seg_id(s.id, 1);
    cr_assert_eq(segw_del(w, s.id), 0);
    segw_commit(w);
    cr_assert_eq(disc_count(h, "a"), 1);
    seg_id(s.id, 2);
    cr_assert_eq(segw_del(w, s.id), 0);
    segw_commit(w);
    struct disc_instance *list;
    size_t need;
    cr_assert_eq(disc_lookup(h, "a", buf, sizeof(buf), &list, &need), -ENOENT);
    cr_assert_eq(segw_del(w, s.id), -ENOENT, "deleting an absent id is an error");
    struct disc_instance *one;
    cr_assert_eq(disc_lookup_id(h, s.id, buf, sizeof(buf), &one, &need), -ENOENT);
}

Test(segment, move_between_services)
{
    struct seg_inst s;
    segw_put(w, seg_make(&s, 5, "from", 0));
    segw_commit(w);
    segw_put(w, seg_make(&s, 5, "to", 1));
    segw_commit(w);
    cr_assert_eq(disc_count(h, "from"), 0);
    cr_assert_eq(disc_count(h, "to"), 1);
}

/* Random bursts of updates, joins, moves between services and deletes
 * against a model: after every commit each service lists exactly the
 * model's instances, ids strictly ascending, each the latest version. The
 * writer places an updated instance where its old record was and joins
 * new ones by id (a binary search when few join, a merge when many do):
 * burst sizes 1..80 over services of 0..~100 instances reach both. */
Test(segment, bursts_keep_services_exact_and_sorted)
{
    enum { NID = 240, NSVC = 3 };
    static const char *const svcs[NSVC] = {"ma", "mb", "mc"};
    int where[NID], rev[NID]; /* service index or -1; version */
    for (int i = 0; i < NID; i++)
        where[i] = -1, rev[i] = 0;
    unsigned seed = 12345;
    struct seg_inst s;
    for (int round = 0; round < 60; round++) {
        int burst = 1 + (int)(rand_r(&seed) % (round % 3 == 0 ? 80 : 6));
        for (int k = 0; k < burst; k++) {
            int id = (int)(rand_r(&seed) % NID), op = (int)(rand_r(&seed) % 10);
            if (op < 2 && where[id] >= 0) {
                char sid[DISC_ID_LEN + 1];
                seg_id(sid, (unsigned)id);
                cr_assert_eq(segw_del(w, sid), 0);
                where[id] = -1;
                continue;
            }
            /* mostly updates in place, some joins and moves */
            int to = where[id] >= 0 && op < 7 ? where[id] : (int)(rand_r(&seed) % NSVC);
            rev[id]++;
            cr_assert_eq(segw_put(w, seg_make(&s, (unsigned)id, svcs[to], (unsigned)rev[id])), 0);
            where[id] = to;
        }
        cr_assert_gt(segw_commit(w), 0);
        for (int sv = 0; sv < NSVC; sv++) {
            int want = 0;
            for (int i = 0; i < NID; i++)
                want += where[i] == sv;
            struct disc_instance *list;
            size_t need;
            int n = disc_lookup(h, svcs[sv], buf, sizeof(buf), &list, &need);
            if (want == 0) {
                cr_assert_eq(n, -ENOENT, "round %d: %s should be gone", round, svcs[sv]);
                continue;
            }
            cr_assert_eq(n, want, "round %d: %s lists %d, model %d", round, svcs[sv], n, want);
            for (int j = 0; j < n; j++) {
                if (j)
                    cr_assert_lt(strcmp(list[j - 1].id, list[j].id), 0, "ids ascending");
                int id = -1;
                for (int i = 0; i < NID && id < 0; i++) {
                    char sid[DISC_ID_LEN + 1];
                    seg_id(sid, (unsigned)i);
                    if (!strcmp(sid, list[j].id))
                        id = i;
                }
                cr_assert(id >= 0 && where[id] == sv, "round %d: %s lists a stray id", round,
                          svcs[sv]);
                char ver[16];
                snprintf(ver, sizeof(ver), "1.%d", rev[id]);
                cr_assert_str_eq(list[j].version, ver, "the latest version");
                cr_assert(seg_check(&list[j], svcs[sv]));
            }
        }
    }
}

Test(segment, put_then_delete_before_commit)
{
    struct seg_inst s;
    segw_put(w, seg_make(&s, 5, "x", 0));
    cr_assert_eq(segw_del(w, s.id), 0);
    segw_commit(w);
    cr_assert_eq(disc_count(h, "x"), 0);
}

Test(segment, invalid_puts_change_nothing)
{
    struct seg_inst s;
    const struct segw_instance *good = seg_make(&s, 1, "ok", 0);
    struct segw_instance bad = *good;
    bad.id = "short";
    cr_assert_eq(segw_put(w, &bad), -EINVAL);
    bad = *good;
    char longname[DISC_SERVICE_MAX + 2];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    bad.service = longname;
    cr_assert_eq(segw_put(w, &bad), -ENAMETOOLONG);
    bad = *good;
    bad.service = "";
    cr_assert_eq(segw_put(w, &bad), -EINVAL);
    bad = *good;
    bad.addr_kind = 9;
    cr_assert_eq(segw_put(w, &bad), -EINVAL);
    bad = *good;
    bad.n_tags = DISC_TAGS_MAX + 1;
    cr_assert_eq(segw_put(w, &bad), -E2BIG);
    bad = *good;
    bad.address = NULL;
    cr_assert_eq(segw_put(w, &bad), -EINVAL);
    cr_assert_eq(segw_pending(w), 0);
    cr_assert_eq(segw_commit(w), 0);
}

Test(segment, buffer_too_small)
{
    struct seg_inst s;
    for (unsigned i = 0; i < 10; i++)
        segw_put(w, seg_make(&s, i, "big", 0));
    segw_commit(w);
    struct disc_instance *list;
    size_t need = 0;
    cr_assert_eq(disc_lookup(h, "big", buf, 64, &list, &need), -ENOBUFS);
    cr_assert_gt(need, 64);
    cr_assert_eq(disc_lookup(h, "big", buf, need, &list, &need), 10);
    struct disc_service_info *si;
    cr_assert_eq(disc_list_services(h, buf, 8, &si, &need), -ENOBUFS);
    cr_assert_eq(disc_list_services(h, buf, need, &si, &need), 1);
}

Test(segment, bad_arguments)
{
    struct disc_instance *list;
    size_t need;
    char longname[DISC_SERVICE_MAX + 10];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    cr_assert_eq(disc_lookup(h, longname, buf, sizeof(buf), &list, &need), -ENAMETOOLONG);
    cr_assert_eq(disc_lookup(NULL, "x", buf, sizeof(buf), &list, &need), -EINVAL);
    disc_handle *h2;
    cr_assert_eq(disc_open("../etc/passwd", 0, &h2), -EINVAL);
    cr_assert_eq(disc_open("dtest-does-not-exist", 0, &h2), -ENOENT);
    cr_assert_eq(disc_open(name, 0x80, &h2), -EINVAL);
    cr_assert_eq(disc_wait_change(h, NULL, 0), -EINVAL);
}

Test(segment, env_name)
{
    disc_handle *h2;
    setenv(DISC_NAME_ENV, name, 1);
    cr_assert_eq(disc_open(NULL, 0, &h2), 0);
    disc_close(h2);
    unsetenv(DISC_NAME_ENV);
}

Test(segment, many_services_resize_and_list)
{
    struct seg_inst s;
    char svc[32];
    for (unsigned i = 0; i < 3000; i++) {
        snprintf(svc, sizeof(svc), "svc-%05u", i);
        cr_assert_eq(segw_put(w, seg_make(&s, i, svc, 0)), 0);
        if (i % 500 == 499)
            cr_assert_gt(segw_commit(w), 0);
    }
    for (unsigned i = 0; i < 3000; i += 37) {
        snprintf(svc, sizeof(svc), "svc-%05u", i);
        cr_assert_eq(disc_count(h, svc), 1, "%s", svc);
    }
    struct disc_service_info *si;
    size_t need;
    cr_assert_eq(disc_list_services(h, buf, sizeof(buf), &si, &need), 3000);
    for (unsigned i = 0; i < 3000; i++) {
        snprintf(svc, sizeof(svc), "svc-%05u", i);
        cr_assert_str_eq(si[i].name, svc);
        cr_assert_eq(si[i].n_instances, 1);
    }
    /* zero-copy iteration sees each exactly once */
    struct disc_read rd;
    cr_assert_eq(disc_read_begin(h, &rd), 0);
    uint64_t cur = 0;
    struct disc_service_view sv;
    unsigned n = 0;
    while (disc_read_next_service(&rd, &cur, &sv) == 1)
        n++;
    cr_assert_eq(disc_read_end(&rd), 0);
    cr_assert_eq(n, 3000);
}

Test(segment, memory_is_reclaimed_after_churn)
{
    struct seg_inst s;
    for (unsigned i = 0; i < 100; i++)
        segw_put(w, seg_make(&s, i, "c", 0));
    segw_commit(w);
    struct segw_stats st0, st1;
    segw_tick(w);
    segw_stats(w, &st0);
    for (unsigned rev = 1; rev < 2000; rev++) {
        segw_put(w, seg_make(&s, rev % 100, "c", rev));
        cr_assert_gt(segw_commit(w), 0);
    }
    /* Retired memory comes back once it has been retired for the writer's
     * reclaim delay (default 1 s), whatever readers do. */
    struct timespec ts = {1, 50000000};
    nanosleep(&ts, NULL);
    segw_tick(w);
    segw_stats(w, &st1);
    cr_assert_eq(st1.retired_bytes, 0, "everything retired more than 1 s ago is reclaimed");
    cr_assert_lt(st1.used_bytes, st0.used_bytes + 4096, "used %lu -> %lu",
                 (unsigned long)st0.used_bytes, (unsigned long)st1.used_bytes);
    cr_assert_eq(st1.overtakes, 0);
}

static int child_wait_change(void *arg)
{
    const char *n = arg;
    disc_handle *hh;
    if (disc_open(n, 0, &hh) < 0)
        return 10;
    struct disc_status st;
    disc_status(hh, &st);
    uint32_t seen = st.change_seq;
    int rc = disc_wait_change(hh, &seen, 5000);
    if (rc != 0)
        return 11;
    int c = disc_count(hh, "woke");
    disc_close(hh);
    return c == 1 ? 0 : 12;
}

Test(segment, wait_change_wakes_other_process)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_wait_change(name));
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
    struct seg_inst s;
    segw_put(w, seg_make(&s, 1, "woke", 0));
    segw_commit(w);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
}

Test(segment, wait_change_times_out)
{
    struct disc_status st;
    disc_status(h, &st);
    uint32_t seen = st.change_seq;
    cr_assert_eq(disc_wait_change(h, &seen, 50), -ETIMEDOUT);
}

Test(segment, second_writer_refused)
{
    struct seg_writer *w2 = NULL;
    cr_assert_eq(segw_open(name, NULL, &w2), -EBUSY);
    cr_assert_null(w2);
}

Test(segment, restart_reader_follows)
{
    struct seg_inst s;
    segw_put(w, seg_make(&s, 1, "before", 0));
    segw_commit(w);
    cr_assert_eq(disc_count(h, "before"), 1);
    struct disc_status st;
    disc_status(h, &st);
    uint32_t seen = st.change_seq;

    /* A crash-and-restart: the old writer's lock is gone with it. */
    segw_close(w, false);
    struct segw_config cfg = {.segment_bytes = 64ull << 20};
    cr_assert_eq(segw_open(name, &cfg, &w), 0);
    cr_assert_eq(disc_wait_change(h, &seen, 1000), 0, "waiters wake when the segment is recycled");
    segw_put(w, seg_make(&s, 2, "after", 0));
    segw_commit(w);
    cr_assert_eq(disc_count(h, "before"), 0, "the new writer starts from its own picture");
    cr_assert_eq(disc_count(h, "after"), 1, "the same handle follows the new segment");
}

Test(segment, grow_moves_readers_and_keeps_everything)
{
    struct seg_inst s;
    for (unsigned i = 0; i < 300; i++)
        cr_assert_eq(segw_put(w, seg_make(&s, i, i % 2 ? "odd" : "even", 1)), 0);
    int64_t g = segw_commit(w);
    cr_assert_gt(g, 0);
    /* a section open on the old segment across the roll-over */
    struct disc_read rd;
    cr_assert_eq(disc_read_begin(h, &rd), 0);
    uint32_t seen;
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    seen = st.change_seq;
    cr_assert_eq(st.segment_bytes, 64ull << 20);

    segw_put(w, seg_make(&s, 999, "staged", 0));
    cr_assert_eq(segw_grow(w, 128ull << 20), -EBUSY, "nothing may be staged");
    segw_unstage(w);
    cr_assert_eq(segw_grow(w, 64ull << 20), -EINVAL, "not larger");
    cr_assert_eq(segw_grow(w, 8ull << 30), -EINVAL, "beyond 32-bit offsets");
    cr_assert_eq(segw_grow(w, 128ull << 20), 0);
    struct segw_stats ws;
    segw_stats(w, &ws);
    cr_assert_eq(ws.segment_bytes, 128ull << 20);
    cr_assert_eq(ws.grows, 1);
    cr_assert_eq(ws.generation, (uint64_t)g + 1, "generations go on");
    cr_assert_eq(ws.n_instances, 300);

    cr_assert_eq(disc_read_end(&rd), 0, "a section on the old segment stays valid");
    cr_assert_eq(disc_wait_change(h, &seen, 1000), 0, "waiters wake at the roll-over");
    cr_assert_eq(disc_count(h, "odd"), 150);
    cr_assert_eq(disc_count(h, "even"), 150);
    struct disc_instance *list;
    int n = disc_lookup(h, "odd", buf, sizeof(buf), &list, NULL);
    cr_assert_eq(n, 150);
    for (int i = 0; i < n; i++)
        cr_assert(seg_check(&list[i], "odd"));
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert_eq(st.segment_bytes, 128ull << 20, "the reader is on the new segment");
    cr_assert_eq(st.generation, (uint64_t)g + 1);

    /* Publishing goes on in the new one. */
    segw_put(w, seg_make(&s, 1000, "after", 0));
    cr_assert_eq(segw_commit(w), g + 2);
    cr_assert_eq(disc_count(h, "after"), 1);
    cr_assert_eq(segw_grow_size(1 << 20, 100, 64 << 20), 2 << 20, "double");
    cr_assert_eq(segw_grow_size(1 << 20, 3 << 20, 64 << 20), 8 << 20, "room for twice the need");
    cr_assert_eq(segw_grow_size(1 << 20, 3 << 20, 4 << 20), 4 << 20, "capped");
    cr_assert_eq(segw_grow_size(4 << 20, 1, 4 << 20), 4 << 20, "at the maximum");
}

Test(segment, deferred_install_keeps_the_predecessor_until_installed)
{
    struct seg_inst s;
    segw_put(w, seg_make(&s, 1, "old", 0));
    segw_commit(w);
    segw_close(w, false); /* a writer that is gone; its segment stays */
    struct segw_config cfg = {.segment_bytes = 1u << 20, .defer_install = true};
    cr_assert_eq(segw_open(name, &cfg, &w), 0);
    for (unsigned i = 10; i < 20; i++)
        segw_put(w, seg_make(&s, i, "restored", 0));
    cr_assert_gt(segw_commit(w), 0);
    cr_assert_eq(segw_grow(w, 2u << 20), 0, "growing before the install works too");
    cr_assert_eq(disc_count(h, "old"), 1, "readers keep the predecessor");
    cr_assert_eq(disc_count(h, "restored"), 0);
    cr_assert_eq(segw_install(w), 0);
    cr_assert_eq(segw_install(w), 0, "once");
    cr_assert_eq(disc_count(h, "restored"), 10, "then follow to the new segment");
    cr_assert_eq(disc_count(h, "old"), 0);
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert_eq(st.segment_bytes, 2u << 20);
}

Test(segment, deferred_segment_never_installed_leaves_nothing)
{
    segw_close(w, true);
    disc_close(h);
    h = NULL;
    struct segw_config cfg = {.segment_bytes = 1u << 20, .defer_install = true};
    cr_assert_eq(segw_open(name, &cfg, &w), 0);
    disc_handle *h2;
    cr_assert_eq(disc_open(name, 0, &h2), -ENOENT, "not visible before segw_install");
    segw_close(w, true);
    w = NULL;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", getenv("DISCSHM_DIR"));
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "ls -a %s | grep -q -- '%s'", dir, name);
    cr_assert_neq(system(cmd), 0, "nothing of %s left in %s", name, dir);
}

Test(segment, data_object_is_read_only_for_readers)
{
    char path[4400];
    snprintf(path, sizeof(path), "%s/%s", getenv("DISCSHM_DIR"), name);
    struct stat sb;
    cr_assert_eq(lstat(path, &sb), 0);
    cr_assert(S_ISREG(sb.st_mode));
    cr_assert_eq(sb.st_mode & 0777, 0644);
    cr_assert_geq((long long)sb.st_blocks * 512, (long long)sb.st_size, "fully allocated");
    snprintf(path, sizeof(path), "%s/%s.lock", getenv("DISCSHM_DIR"), name);
    cr_assert_eq(lstat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600, "nobody else can open the lock to lock it");
    snprintf(path, sizeof(path), "%s/%s.readers", getenv("DISCSHM_DIR"), name);
    cr_assert_eq(lstat(path, &sb), -1, "no reader-writable object exists");
    snprintf(path, sizeof(path), "%s/%s", getenv("DISCSHM_DIR"), name);

    /* The library's mapping is PROT_READ: a write through it faults. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* sanitizers install their own handler */
        struct disc_map *m = atomic_load(&h->cur);
        ((volatile unsigned char *)m->base)[DISC_HEADER_SIZE] = 1;
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "write must fault, status %d", st);

    /* Another uid cannot open the data object for writing. */
    if (geteuid() == 0) {
        pid = fork();
        if (pid == 0) {
            if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
                _exit(3);
            int fd = open(path, O_RDWR);
            if (fd >= 0 || errno != EACCES)
                _exit(1);
            disc_handle *hh;
            _exit(disc_open(name, 0, &hh) == 0 && disc_count(hh, "x") == 0 ? 0 : 2);
        }
        waitpid(pid, &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "nobody: O_RDWR refused but reading works (status %d)", st);
    }
}

struct fork_arg {
    const char *name;
};

static int child_reads_after_fork(void *arg)
{
    /* A child after fork opens its own handle and reads. */
    disc_handle *hh;
    if (disc_open(((struct fork_arg *)arg)->name, DISC_OPEN_VERIFY, &hh) < 0)
        return 1;
    int c = disc_count(hh, "forked");
    disc_close(hh);
    return c == 3 ? 0 : 2;
}

Test(segment, fork_child_can_open_and_read)
{
    struct seg_inst s;
    for (unsigned i = 0; i < 3; i++)
        segw_put(w, seg_make(&s, i, "forked", 0));
    segw_commit(w);
    struct fork_arg a = {name};
    int st = seg_in_child(child_reads_after_fork, &a);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
