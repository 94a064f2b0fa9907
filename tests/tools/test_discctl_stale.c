/* SPDX-License-Identifier: MIT */
/*
 * test_discctl_stale.c — honest staleness with real discd processes: after
 * a SIGTERM the segment says "writer stopped" at once, after a SIGKILL the
 * heartbeat threshold declares the writer dead; libdiscshm (disc_status,
 * disc_stale, disc_status_reason_str) and discctl (status, get, pick, ls,
 * endpoints: warning + exit 5, --allow-stale: exit 0) report it; a restart
 * makes the data fresh again. Also: get on a missing service names it.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_run.h"
#include "daemon_util.h"
#include "discd_proc.h"
#include "discshm.h"

#define EXIT_STALE       5
#define EXIT_UNAVAILABLE 4

static struct discd_proc d;
/* A short tick: 8 ticks are below the 2000 ms floor, so the threshold is
 * 2000 ms (what discd stores and readers apply is asserted below). */
static char *const fast_tick[] = {"--heartbeat", "50", NULL};

static void setup(void)
{
    dt_start(&d, "stale", fast_tick);
}

static void teardown(void)
{
    ctl_run_release_all();
    dt_finish(&d);
}

TestSuite(discctl_stale, .init = setup, .fini = teardown, .timeout = 120);

/* Register one instance of web and wait until a reader sees it. */
static void register_web(void)
{
    struct ctl_result r =
        CTL(&d, "register", "--service", "web", "--address", "127.0.0.1:8080", "--endpoint", "Get");
    cr_assert_eq(r.code, 0, "register: %s", r.err);
    ctl_result_free(&r);
    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, "web", 1, 5000 * dt_slow()), 1);
    disc_close(h);
}

/* Every reading command: exit `want`, and a stale warning on stderr iff
 * want is EXIT_STALE or allow. */
static void expect_reads(int want, bool allow)
{
    static const char *const cmds[][4] = {
        {"get", "web", NULL},
        {"pick", "web", NULL},
        {"ls", NULL},
        {"endpoints", "web", NULL},
    };
    for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
        const char *args[6];
        size_t n = 0;
        for (; cmds[k][n]; n++)
            args[n] = cmds[k][n];
        if (allow)
            args[n++] = "--allow-stale";
        args[n] = NULL;
        struct ctl_result r = ctl_run(&d, 10000 * dt_slow(), args);
        cr_assert_eq(r.code, want, "%s%s: exit %d, want %d (stderr: %s)", cmds[k][0],
                     allow ? " --allow-stale" : "", r.code, want, r.err);
        bool warned = strstr(r.err, "warning: stale data") != NULL;
        cr_assert_eq(warned, want == EXIT_STALE || allow, "%s: stderr '%s'", cmds[k][0], r.err);
        /* The data is still printed. */
        cr_assert(strstr(r.out, k == 3   ? "web.Get"
                                : k == 2 ? "web"
                                         : "127.0.0.1:8080"),
                  "%s printed '%s'", cmds[k][0], r.out);
        ctl_result_free(&r);
    }
}

/* discctl --json status's segment object (asserts it parses). */
static json_t *status_json(int *code)
{
    struct ctl_result r = CTL(&d, "--json", "status");
    *code = r.code;
    json_t *j = ctl_json(&r);
    ctl_result_free(&r);
    json_t *seg = json_incref(json_object_get(j, "segment"));
    json_decref(j);
    cr_assert(json_is_object(seg), "no segment object in status");
    return seg;
}

Test(discctl_stale, fresh_data_exits_0_and_says_nothing)
{
    register_web();
    expect_reads(0, false);
    disc_handle *h = dt_open_reader(&d);
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert(st.flags & DISC_ST_WRITER_ALIVE);
    cr_assert_eq(st.writer_dead_after_ms, 2000u, "threshold %u", st.writer_dead_after_ms);
    cr_assert_eq(st.writer_dead_since_ms, 0);
    cr_assert_eq(st.stale, 0u);
    cr_assert_eq(disc_stale(h), 0);
    disc_close(h);
}

Test(discctl_stale, sigterm_marks_the_writer_stopped_at_once)
{
    register_web();
    disc_handle *h = dt_open_reader(&d);
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    uint32_t seen = st.change_seq;
    long long before = proc_real_ms();
    cr_assert_eq(discd_proc_stop(&d, 10000 * dt_slow()), 0, "discd did not exit 0");
    long long after = proc_real_ms();

    /* No waiting: the mark was made before discd exited. */
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert_not(st.flags & DISC_ST_WRITER_ALIVE);
    cr_assert(st.flags & DISC_ST_WRITER_STOPPED);
    cr_assert(st.flags & DISC_ST_DEGRADED);
    cr_assert_eq(st.degraded_reason, DISC_DEG_WRITER_STOPPED);
    cr_assert_str_eq(disc_status_reason_str(st.degraded_reason), "writer-stopped");
    cr_assert(st.writer_dead_since_ms >= before - 1 && st.writer_dead_since_ms <= after + 1,
              "dead since %lld, stop between %lld and %lld", (long long)st.writer_dead_since_ms,
              before, after);
    cr_assert_eq(disc_stale(h), (int)DISC_STALE_WRITER_DEAD);
    cr_assert_eq(st.stale, DISC_STALE_WRITER_DEAD);
    /* Waiters were woken by the mark. */
    cr_assert_eq(disc_wait_change(h, &seen, 0), 0);
    /* The last picture is still there. */
    cr_assert_eq(disc_count(h, "web"), 1);

    struct ctl_result r = CTL(&d, "status");
    cr_assert_eq(r.code, EXIT_UNAVAILABLE, "status exit %d", r.code);
    cr_assert(strstr(r.out, "dead since") && strstr(r.out, "shut down"), "status: %s", r.out);
    cr_assert(strstr(r.out, "writer-stopped"), "status: %s", r.out);
    ctl_result_free(&r);
    int code;
    json_t *seg = status_json(&code);
    cr_assert_eq(code, EXIT_UNAVAILABLE);
    cr_assert(json_is_true(json_object_get(seg, "writer_stopped")));
    cr_assert_str_eq(json_string_value(json_object_get(seg, "degraded_reason")), "writer-stopped");
    cr_assert_eq(json_array_size(json_object_get(seg, "stale")), 1);
    json_decref(seg);

    expect_reads(EXIT_STALE, false);
    expect_reads(0, true);

    /* A new discd on the same name: readers follow, the data is fresh. */
    cr_assert_eq(discd_proc_start(&d, fast_tick, 10000 * dt_slow()), 0);
    /* (discd restores its registrations: the same web instance is back.) */
    cr_assert_eq(dt_wait_count(h, "web", 1, 5000 * dt_slow()), 1);
    cr_assert_eq(disc_stale(h), 0);
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert(st.flags & DISC_ST_WRITER_ALIVE);
    cr_assert_not(st.flags & DISC_ST_WRITER_STOPPED);
    expect_reads(0, false);
    disc_close(h);
}

Test(discctl_stale, sigkill_is_declared_dead_within_the_threshold)
{
    register_web();
    disc_handle *h = dt_open_reader(&d);
    long long killed = proc_real_ms(), t0 = proc_now_ms();
    discd_proc_kill(&d);

    /* Poll until dead; it must happen within the threshold (2000 ms after
     * the last heartbeat) plus scheduling slack. */
    struct disc_status st;
    long long deadline = t0 + 2000 + 3000 * dt_slow();
    do {
        cr_assert_eq(disc_status(h, &st), 0);
        if (!(st.flags & DISC_ST_WRITER_ALIVE))
            break;
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    } while (proc_now_ms() < deadline);
    cr_assert_not(st.flags & DISC_ST_WRITER_ALIVE, "still alive %lld ms after SIGKILL",
                  proc_now_ms() - t0);
    /* Not noticed before the threshold: the heartbeat age is past it. */
    cr_assert_geq(st.heartbeat_age_ms, 2000);
    cr_assert_not(st.flags & DISC_ST_WRITER_STOPPED, "a crash is not a clean stop");
    cr_assert_eq(st.degraded_reason, DISC_DEG_WRITER_DEAD);
    cr_assert_str_eq(disc_status_reason_str(st.degraded_reason), "writer-dead");
    /* Dead since its last heartbeat, which was shortly before the kill. */
    cr_assert(st.writer_dead_since_ms <= killed + 5 &&
                  st.writer_dead_since_ms >= killed - 1000 * dt_slow(),
              "dead since %lld, killed at %lld", (long long)st.writer_dead_since_ms, killed);
    cr_assert_eq(disc_stale(h), (int)DISC_STALE_WRITER_DEAD);

    struct ctl_result r = CTL(&d, "status");
    cr_assert_eq(r.code, EXIT_UNAVAILABLE);
    cr_assert(strstr(r.out, "dead since") && strstr(r.out, "no heartbeat"), "status: %s", r.out);
    ctl_result_free(&r);
    expect_reads(EXIT_STALE, false);
    expect_reads(0, true);
    disc_close(h);
}

Test(discctl_stale, get_and_pick_on_a_missing_service_name_it)
{
    register_web();
    const char *cmds[] = {"get", "pick"};
    for (int k = 0; k < 2; k++) {
        struct ctl_result r = CTL(&d, cmds[k], "no-such-svc");
        cr_assert_eq(r.code, 3, "%s exit %d", cmds[k], r.code);
        cr_assert(strstr(r.err, "no service 'no-such-svc'"), "%s: %s", cmds[k], r.err);
        cr_assert_str_eq(r.out, "");
        ctl_result_free(&r);
    }
    /* The service exists, the filter matches nothing: that is said instead. */
    struct ctl_result r = CTL(&d, "get", "web", "--az", "nowhere");
    cr_assert_eq(r.code, 3);
    cr_assert(strstr(r.err, "no instance of 'web' matches"), "%s", r.err);
    ctl_result_free(&r);
}

Test(discctl_stale, reason_strings)
{
    static const char *const want[] = {"none",
                                       "zookeeper-disconnected",
                                       "zookeeper-session-expired",
                                       "zookeeper-unreachable",
                                       "writer-dead",
                                       "writer-stopped",
                                       "zookeeper-sync-failing",
                                       "registry-removed"};
    for (uint32_t i = 0; i < 8; i++)
        cr_assert_str_eq(disc_status_reason_str(i), want[i]);
    cr_assert_str_eq(disc_status_reason_str(8), "unknown");
    cr_assert_str_eq(disc_status_reason_str(UINT32_MAX), "unknown");
}
