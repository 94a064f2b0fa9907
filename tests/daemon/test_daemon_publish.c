/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_publish.c — the publisher's idle/busy policy in a real discd
 * (DESIGN.md, "Publish policy"): a change that finds the publisher idle
 * (nothing committed for the last --publish-coalesce ms) is published at
 * once, in a commit of its own, by the control thread itself (no hand-off
 * to the publisher thread); a pipelined burst is coalesced into fewer
 * commits. Counted with the publisher's commit counters in `status`; no
 * timing is asserted.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon_util.h"

static struct discd_proc d;

static void teardown(void)
{
    dt_finish(&d);
}

TestSuite(daemon_publish, .fini = teardown);

struct pub_counts {
    long long commits, idle, coalesced, changes, inlined;
};

static struct pub_counts counts(void)
{
    json_t *r = dt_callf(&d, "{\"op\":\"status\"}");
    cr_assert(dt_ok(r), "status failed");
    json_t *p = json_object_get(r, "publisher");
    cr_assert(json_is_object(p), "status has no publisher object");
    struct pub_counts c = {
        json_integer_value(json_object_get(p, "commits")),
        json_integer_value(json_object_get(p, "idle_commits")),
        json_integer_value(json_object_get(p, "coalesced_commits")),
        json_integer_value(json_object_get(p, "changes")),
        json_integer_value(json_object_get(p, "inline_commits")),
    };
    cr_assert(json_is_integer(json_object_get(p, "idle_commits")) &&
              json_is_integer(json_object_get(p, "coalesced_commits")) &&
              json_is_integer(json_object_get(p, "inline_commits")));
    cr_assert_leq(c.inlined, c.idle, "inline commits are idle commits");
    json_decref(r);
    cr_assert_eq(c.commits, c.idle + c.coalesced, "every commit is either at once or coalesced");
    return c;
}

static void register_line(char *buf, size_t len, const char *svc, int i)
{
    snprintf(buf, len,
             "{\"op\":\"register\",\"instance\":{\"service\":\"%s\",\"address\":\"10.0.%d.%d:80\"},"
             "\"check\":{\"type\":\"none\"}}",
             svc, i / 250, i % 250);
}

/* Longer than the coalescing window the tests give discd. The commit of a
 * change ends before its reply is sent, so after the reply and this pause
 * the publisher has certainly committed nothing for a whole window: the
 * next change finds it idle whatever the machine's speed. */
static void pause_past_window(void)
{
    struct timespec ts = {0, 12 * 1000 * 1000};
    while (nanosleep(&ts, &ts) < 0)
        ;
}

/* One change at a time, each after a pause longer than the window: every
 * one finds the publisher idle, so each is a commit of its own made
 * without waiting, and is visible as soon as it is acknowledged. The
 * control thread commits it itself, unless the publisher thread happened to
 * be in its heartbeat turn (once a second here) at that moment. */
Test(daemon_publish, isolated_changes_are_published_at_once_in_one_commit_each)
{
    char *extra[] = {"--publish-coalesce", "5", "--heartbeat", "1000", NULL};
    dt_start(&d, "pubidle", extra);
    long long t0 = proc_now_ms();
    disc_handle *h = dt_open_reader(&d);
    struct discd_conn c;
    cr_assert_eq(discd_conn_open(&d, &c), 0);

    struct pub_counts c0 = counts();
    enum { N = 25 };
    char ids[N][DISC_ID_LEN + 1];
    for (int i = 0; i < N; i++) {
        char line[512];
        register_line(line, sizeof(line), "iso", i);
        pause_past_window();
        json_t *r = dt_call(&c, line);
        cr_assert(dt_ok(r), "register %d failed", i);
        snprintf(ids[i], sizeof(ids[i]), "%s", json_string_value(json_object_get(r, "id")));
        json_decref(r);
        /* Acknowledged means published: no waiting for the reader. */
        cr_assert_eq(disc_count(h, "iso"), i + 1, "register %d acknowledged but not visible", i);
    }
    for (int i = 0; i < N; i++) {
        char line[1024];
        snprintf(line, sizeof(line), "{\"op\":\"deregister\",\"id\":\"%s\"}", ids[i]);
        pause_past_window();
        json_t *r = dt_call(&c, line);
        cr_assert(dt_ok(r), "deregister %d failed", i);
        json_decref(r);
        int n = disc_count(h, "iso");
        cr_assert_eq(n < 0 ? 0 : n, N - 1 - i, "deregister %d acknowledged but still visible", i);
    }
    struct pub_counts c1 = counts();
    cr_assert_eq(c1.changes - c0.changes, 2 * N);
    cr_assert_eq(c1.commits - c0.commits, 2 * N, "one commit per isolated change, got %lld",
                 c1.commits - c0.commits);
    cr_assert_eq(c1.idle - c0.idle, 2 * N, "every isolated change published at once");
    cr_assert_eq(c1.coalesced - c0.coalesced, 0);
    /* Each heartbeat turn can send at most one change to the publisher
     * thread (the change finds the writer busy); all others are inline. */
    long long beats = (proc_now_ms() - t0) / 1000 + 2;
    cr_assert_geq(c1.inlined - c0.inlined, 2 * N - beats,
                  "only %lld of %d isolated changes committed by the control thread",
                  c1.inlined - c0.inlined, 2 * N);
    discd_conn_close(&c);
    disc_close(h);
}

/* A pipelined burst: the first change finds the publisher idle and is
 * committed at once, the rest arrive within the window (1 s here, so even
 * a slow sanitizer build parses the burst well within it) and are
 * coalesced into few commits; after a pause the next change is at once
 * again. Every acknowledged registration is visible. */
Test(daemon_publish, burst_is_coalesced_into_fewer_commits)
{
    char *extra[] = {"--publish-coalesce", "1000", NULL};
    struct discd_conn c;
    disc_handle *h = dt_start_conn(&d, "pubburst", extra, &c);

    struct pub_counts c0 = counts();
    enum { N = 300 };
    /* One write with every request: discd reads and applies them back to
     * back while the publisher commits the first. */
    size_t cap = (size_t)N * 160, len = 0;
    char *all = malloc(cap);
    cr_assert(all);
    for (int i = 0; i < N; i++) {
        char line[256];
        register_line(line, sizeof(line), "burst", i);
        len += (size_t)snprintf(all + len, cap - len, "%s\n", line);
        cr_assert(len < cap);
    }
    cr_assert_eq(discd_conn_send_raw(&c, all, len), 0);
    free(all);
    for (int i = 0; i < N; i++) {
        char *line = NULL;
        cr_assert_geq(discd_conn_reply(&c, &line, 30000 * dt_slow(), 1), 0, "reply %d missing", i);
        cr_assert(strstr(line, "\"ok\":true"), "register %d: %s", i, line);
        free(line);
    }
    cr_assert_eq(disc_count(h, "burst"), N, "every acknowledged registration is visible");
    struct pub_counts c1 = counts();
    long long commits = c1.commits - c0.commits, coal = c1.coalesced - c0.coalesced;
    cr_assert_eq(c1.changes - c0.changes, N);
    cr_assert_lt(commits, N / 4, "a burst of %d changes took %lld commits", N, commits);
    cr_assert(coal >= 1 || commits == 1,
              "the burst was published in %lld commits, none of them coalesced", commits);

    /* Idle again: the next change is a commit of its own, at once. */
    struct timespec ts = {1, 100 * 1000 * 1000};
    while (nanosleep(&ts, &ts) < 0)
        ;
    char line[256];
    register_line(line, sizeof(line), "burst", N);
    json_t *r = dt_call(&c, line);
    cr_assert(dt_ok(r));
    json_decref(r);
    struct pub_counts c2 = counts();
    cr_assert_eq(c2.commits - c1.commits, 1);
    cr_assert_eq(c2.idle - c1.idle, 1);
    cr_assert_eq(disc_count(h, "burst"), N + 1);
    discd_conn_close(&c);
    disc_close(h);
}
