/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_restart.c — a reader that stays open follows discd across a
 * SIGKILL + restart (and sees the restored registrations); 10k registrations through the socket all
 * become visible in shared memory within a time bound.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_util.h"

static struct discd_proc d;

static void teardown(void)
{
    dt_finish(&d);
}

TestSuite(daemon_restart, .fini = teardown);

Test(daemon_restart, sigkill_then_restart_reader_follows)
{
    struct discd_conn c;
    disc_handle *h = dt_start_conn(&d, "restart", NULL, &c);
    char id[DISC_ID_LEN + 1];
    for (int i = 0; i < 5; i++)
        dt_register(&c, "before", "127.0.0.1:1000", "{\"type\":\"none\"}", id);
    cr_assert_eq(dt_wait_count(h, "before", 5, 2000), 5);
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    int old_pid = st.writer_pid;

    discd_proc_kill(&d); /* crash: no clean shutdown, socket file left behind */
    discd_conn_close(&c);
    /* The reader keeps the last picture. */
    cr_assert_eq(disc_count(h, "before"), 5, "last picture lost after the writer died");

    int rc = discd_proc_start(&d, NULL, 10000 * dt_slow());
    if (rc)
        proc_dump_log(&d.proc);
    cr_assert_eq(rc, 0, "restart on the same name failed (stale lock or socket?)");
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    for (int i = 0; i < 2; i++)
        dt_register(&c, "after", "127.0.0.1:2000", "{\"type\":\"none\"}", id);

    /* The same handle, never reopened, now reads the new daemon's segment. */
    cr_assert_eq(dt_wait_count(h, "after", 2, 5000), 2, "reader did not follow the new segment");
    /* The "none"-checked registrations were restored from the state file. */
    cr_assert_eq(disc_count(h, "before"), 5, "registrations lost by the restart");
    char buf[8192];
    struct disc_instance *list;
    cr_assert_eq(disc_lookup(h, "after", buf, sizeof(buf), &list, NULL), 2);
    cr_assert_str_eq(list[0].address, "127.0.0.1:2000");
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert_eq(st.writer_pid, d.proc.pid);
    cr_assert_neq(st.writer_pid, old_pid);
    cr_assert(st.flags & DISC_ST_WRITER_ALIVE);
    discd_conn_close(&c);
    disc_close(h);
}

Test(daemon_restart, ten_thousand_registrations)
{
    enum { N = 10000, SERVICES = 100, BATCH = 250 };
    struct discd_conn c;
    disc_handle *h = dt_start_conn(&d, "tenk", NULL, &c);
    long long t0 = proc_now_ms();
    /* Pipeline in batches: send BATCH requests, then read BATCH replies. */
    char *buf = malloc((size_t)BATCH * 256);
    for (int done = 0; done < N; done += BATCH) {
        size_t len = 0;
        for (int i = done; i < done + BATCH; i++)
            len += (size_t)sprintf(buf + len,
                                   "{\"op\":\"register\",\"seq\":%d,\"instance\":{\"service\":"
                                   "\"bulk%03d\",\"address\":\"10.%d.%d.%d:%d\"},\"check\":{"
                                   "\"type\":\"none\"}}\n",
                                   i, i % SERVICES, i / 65536, (i / 256) % 256, i % 256,
                                   1000 + i % 50000);
        dt_pipeline(&c, buf, len, BATCH, done);
    }
    free(buf);
    long long t_reg = proc_now_ms() - t0;
    /* Every instance visible to the reader. */
    long long deadline = proc_now_ms() + 10000 * dt_slow();
    int total = 0;
    for (;;) {
        total = 0;
        for (int s = 0; s < SERVICES; s++) {
            char name[16];
            snprintf(name, sizeof(name), "bulk%03d", s);
            int n = disc_count(h, name);
            total += n > 0 ? n : 0;
        }
        if (total == N || proc_now_ms() > deadline)
            break;
        proc_sleep_ms(5);
    }
    long long t_all = proc_now_ms() - t0;
    fprintf(stderr, "%d registrations: acknowledged in %lld ms, all visible in %lld ms\n", N, t_reg,
            t_all);
    cr_assert_eq(total, N, "only %d of %d instances visible", total, N);
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert_eq(st.n_instances, N);
    cr_assert_eq(st.n_services, SERVICES);
    cr_assert_eq(dt_status_int(&d, "local_instances"), N);
    cr_assert_lt(t_all, 20000LL * dt_slow(), "10k registrations took too long");
    /* Closing the connection removes nothing: the checks are "none". */
    discd_conn_close(&c);
    proc_sleep_ms(50);
    cr_assert_eq(dt_status_int(&d, "local_instances"), N);
    disc_close(h);
}

Test(daemon_restart, ten_thousand_session_instances_on_one_connection)
{
    enum { N = 10000, BATCH = 500 };
    struct discd_conn c;
    disc_handle *h = dt_start_conn(&d, "tenks", NULL, &c);
    char *buf = malloc((size_t)BATCH * 200);
    for (int done = 0; done < N; done += BATCH) {
        size_t len = 0;
        for (int i = done; i < done + BATCH; i++)
            len += (size_t)sprintf(buf + len,
                                   "{\"op\":\"register\",\"instance\":{\"service\":\"sess%02d\","
                                   "\"address\":\"127.0.0.1:%d\"},\"check\":{\"type\":\"session\","
                                   "\"interval_ms\":200,\"timeout_ms\":150,\"misses\":3}}\n",
                                   i % 10, 1000 + i);
        dt_pipeline(&c, buf, len, BATCH, -1);
    }
    free(buf);
    /* Answer pings for a while: nothing may be removed. */
    long long until = proc_now_ms() + 1500;
    while (proc_now_ms() < until) {
        char *line = NULL;
        if (discd_conn_reply(&c, &line, 50, 1) > 0)
            cr_assert_fail("unexpected response: %s", line);
        free(line);
    }
    cr_assert_geq(c.pings_seen, 4, "only %u pings in 1.5 s", c.pings_seen);
    cr_assert_eq(dt_status_int(&d, "local_instances"), N, "answered sessions were removed");
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert_eq(st.n_instances, N);
    /* One close removes all of them. */
    long long t0 = proc_now_ms();
    discd_conn_close(&c);
    long long deadline = t0 + 10000 * dt_slow();
    while (proc_now_ms() < deadline) {
        cr_assert_eq(disc_status(h, &st), 0);
        if (st.n_instances == 0)
            break;
        proc_sleep_ms(2);
    }
    cr_assert_eq(st.n_instances, 0, "%u instances left after the session closed", st.n_instances);
    fprintf(stderr, "closing a session of %d instances: all removed in %lld ms\n", N,
            proc_now_ms() - t0);
    disc_close(h);
}
