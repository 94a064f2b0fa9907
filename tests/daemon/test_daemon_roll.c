/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_roll.c — readers in other processes while the segment is
 * replaced under them (issue 13, "the segment grows by itself"; issue 10's
 * restart window):
 *
 *   - growth: discd starts with a 1 MiB segment and registrations go far
 *     past it; the segment rolls over to larger ones several times. Every
 *     registration is acknowledged (none gets segment_full), reader processes
 *     check invariants on every read and see no error, and they end on the
 *     final segment. Nothing but the segment and its lock is left in the
 *     registry directory.
 *   - restarts: discd is killed or stopped and started again, several times,
 *     while reader processes sample the persisted set: the count never drops
 *     below it (the new segment is renamed into place only once the restored
 *     state is committed).
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_util.h"
#include "discd_proc.h"
#include "discshm.h"
#include "proc.h"

static struct discd_proc d;

static void teardown(void)
{
    dt_finish(&d);
}

TestSuite(roll, .fini = teardown, .timeout = 300);

/* ---- reader processes --------------------------------------------------------- */

struct sampler_result {
    long long reads;      /* read calls made (each checked) */
    long long errors;     /* reads that broke an invariant */
    long long full_reads; /* full copy-out lookups checked */
    int min_count;        /* smallest count seen */
    int final_count;
    unsigned long long final_segment_bytes;
    int moves; /* segment size changes seen */
    char why[200];
};

struct sampler {
    pid_t pid;
    int stop_w;   /* closed by the parent: stop */
    int result_r; /* the child's struct sampler_result */
};

static void fail(struct sampler_result *r, const char *fmt, long long a, long long b)
{
    if (!r->errors)
        snprintf(r->why, sizeof(r->why), fmt, a, b);
    r->errors++;
}

/* One full copy-out lookup: ids strictly ascending, every instance of svc,
 * every address ours. Returns the count or -1 (r->why set). */
static int check_lookup(disc_handle *h, const char *svc, void *buf, size_t len,
                        struct sampler_result *r)
{
    struct disc_instance *in;
    int n = disc_lookup(h, svc, buf, len, &in, NULL);
    if (n == -ENOENT)
        return 0;
    if (n < 0) {
        fail(r, "disc_lookup: %lld (%lld)", n, 0);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(in[i].service, svc) != 0 || strncmp(in[i].address, "10.", 3) != 0) {
            fail(r, "instance %lld of %lld is not ours", i, n);
            return -1;
        }
        if (i > 0 && strcmp(in[i - 1].id, in[i].id) >= 0) {
            fail(r, "ids not ascending at %lld of %lld", i, n);
            return -1;
        }
    }
    r->full_reads++;
    return n;
}

/* Sample svc until told to stop: every read is checked (no error; the count
 * never below floor, and with monotonic never below the last one seen; the
 * segment never shrinks). */
static void sampler_main(const char *name, const char *svc, int floor, int monotonic, int stop_r,
                         int result_w)
{
    struct sampler_result r = {.min_count = 1 << 30};
    size_t len = 64u << 20;
    void *buf = malloc(len);
    disc_handle *h = NULL;
    int rc = buf ? disc_open(name, 0, &h) : -ENOMEM;
    if (rc < 0) {
        fail(&r, "disc_open: %lld (%lld)", rc, 0);
    } else {
        int last = floor;
        unsigned long long seg = 0;
        for (unsigned long i = 0;; i++) {
            struct pollfd p = {.fd = stop_r, .events = POLLIN};
            if (poll(&p, 1, 0) != 0)
                break;
            int n = disc_count(h, svc);
            r.reads++;
            if (n == -ENOENT)
                n = 0;
            if (n < 0)
                fail(&r, "disc_count: %lld (read %lld)", n, r.reads);
            else if (n < floor || (monotonic && n < last))
                fail(&r, "count %lld below %lld", n, monotonic ? last : floor);
            if (n >= 0 && n < r.min_count)
                r.min_count = n;
            if (n >= 0)
                last = n > last ? n : last;
            struct disc_status st;
            rc = disc_status(h, &st);
            r.reads++;
            if (rc < 0) {
                fail(&r, "disc_status: %lld (read %lld)", rc, r.reads);
            } else {
                if (st.segment_bytes < seg)
                    fail(&r, "segment shrank from %lld to %lld", (long long)seg,
                         (long long)st.segment_bytes);
                if (seg && st.segment_bytes != seg)
                    r.moves++;
                seg = st.segment_bytes;
            }
            if (i % 16 == 0) {
                r.reads++;
                int m = check_lookup(h, svc, buf, len, &r);
                if (m >= 0 && (m < floor || (monotonic && m < last)))
                    fail(&r, "lookup found %lld, below %lld", m, monotonic ? last : floor);
                if (m > last)
                    last = m;
            }
        }
        r.final_count = check_lookup(h, svc, buf, len, &r);
        struct disc_status st;
        if (disc_status(h, &st) == 0)
            r.final_segment_bytes = st.segment_bytes;
        disc_close(h);
    }
    free(buf);
    ssize_t w = write(result_w, &r, sizeof(r));
    _exit(w == (ssize_t)sizeof(r) ? 0 : 1);
}

/* The parent's ends of every sampler's pipes: a child closes them, so a
 * sampler sees EOF when the parent closes its stop pipe. */
static int parent_fds[16];
static int n_parent_fds;

static void sampler_start(struct sampler *s, const char *svc, int floor, int monotonic)
{
    int stop[2], res[2];
    cr_assert_eq(pipe(stop), 0);
    cr_assert_eq(pipe(res), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(stop[1]);
        close(res[0]);
        for (int i = 0; i < n_parent_fds; i++)
            close(parent_fds[i]);
        sampler_main(d.name, svc, floor, monotonic, stop[0], res[1]);
    }
    close(stop[0]);
    close(res[1]);
    s->pid = pid;
    s->stop_w = stop[1];
    s->result_r = res[0];
    if (n_parent_fds + 2 <= (int)(sizeof(parent_fds) / sizeof(parent_fds[0]))) {
        parent_fds[n_parent_fds++] = stop[1];
        parent_fds[n_parent_fds++] = res[0];
    }
}

static void forget_fd(int fd)
{
    for (int i = 0; i < n_parent_fds; i++)
        if (parent_fds[i] == fd)
            parent_fds[i] = parent_fds[--n_parent_fds];
}

static void sampler_finish(struct sampler *s, struct sampler_result *r)
{
    forget_fd(s->stop_w);
    forget_fd(s->result_r);
    close(s->stop_w);
    memset(r, 0, sizeof(*r));
    ssize_t n = read(s->result_r, r, sizeof(*r));
    close(s->result_r);
    int status = 0;
    cr_assert_eq(waitpid(s->pid, &status, 0), s->pid);
    cr_assert(n == (ssize_t)sizeof(*r) && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "reader process %d died (status %#x)", (int)s->pid, status);
}

/* ---- growth -------------------------------------------------------------------- */

/* A register request whose record takes ~300 bytes per tag (ntags tags of
 * 250 bytes). */
static void reg_line(char *line, size_t len, int i, int ntags)
{
    char val[251];
    memset(val, 'a' + i % 26, 250);
    val[250] = 0;
    int at = snprintf(line, len,
                      "{\"op\":\"register\",\"seq\":%d,\"instance\":{\"service\":\"grow\","
                      "\"address\":\"10.%d.%d.%d:80\",\"tags\":{",
                      i, i / 65536, i / 256 % 256, i % 256);
    for (int t = 0; t < ntags; t++)
        at += snprintf(line + at, len - (size_t)at, "%s\"t%d\":\"%s\"", t ? "," : "", t, val);
    snprintf(line + at, len - (size_t)at, "}},\"check\":{\"type\":\"none\"}}\n");
}

/* 6000 registrations of ~1.2 KB; under the sanitizers (3-6 times slower)
 * the same bytes in fewer, larger registrations */
#define N_GROW  6000
#define BATCH   200
#define READERS 3
#define MIB     1048576ull

Test(roll, registering_past_the_segment_moves_readers_without_an_error)
{
    dt_start(
        &d, "grow",
        (char *const[]){"--segment-bytes", "1048576", "--max-segment-size", "268435456", NULL});
    struct sampler s[READERS];
    for (int k = 0; k < READERS; k++)
        sampler_start(&s[k], "grow", 0, 1);

    struct discd_conn c;
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    static char line[16384];
    const int n_grow = N_GROW / dt_slow(), ntags = 4 * dt_slow();
    int n_ok = 0;
    for (int b = 0; b < n_grow; b += BATCH) {
        for (int i = b; i < b + BATCH && i < n_grow; i++) {
            reg_line(line, sizeof(line), i, ntags);
            cr_assert_eq(discd_conn_send(&c, line), 0);
        }
        for (int i = b; i < b + BATCH && i < n_grow; i++) {
            char *reply = NULL;
            cr_assert_geq(discd_conn_reply(&c, &reply, 20000 * dt_slow(), 1), 0, "reply %d", i);
            json_t *j = json_loads(reply, 0, NULL);
            cr_assert(dt_ok(j), "registration %d failed: %s", i, reply);
            n_ok++;
            json_decref(j);
            free(reply);
        }
    }
    discd_conn_close(&c);
    cr_assert_eq(n_ok, n_grow);

    json_t *st = dt_callf(&d, "{\"op\":\"status\"}");
    json_t *pub = json_object_get(st, "publisher");
    long long grows = json_integer_value(json_object_get(pub, "grows"));
    long long seg = json_integer_value(json_object_get(pub, "segment_bytes"));
    long long rejected = json_integer_value(json_object_get(pub, "rejected"));
    json_decref(st);
    fprintf(stderr, "%d registrations: %lld roll-overs, segment now %lld bytes\n", n_grow, grows,
            seg);
    cr_assert_eq(rejected, 0);
    /* How many roll-overs depends on how the publisher batches (it grows
     * once by as much as a batch needs): 4-5 in the plain build, fewer
     * under the slower sanitizers. */
    cr_assert_geq(grows, 2, "registered past the initial size several times: %lld rolls", grows);
    cr_assert_geq((unsigned long long)seg, 8 * MIB);
    cr_assert_eq(dt_log_has(&d, "publisher: segment grown from"), grows);

    /* Readers on their next read are on the final segment, with everything. */
    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, "grow", n_grow, 5000), n_grow);
    struct disc_status ds;
    cr_assert_eq(disc_status(h, &ds), 0);
    cr_assert_eq(ds.segment_bytes, (unsigned long long)seg);
    disc_close(h);
    for (int k = 0; k < READERS; k++) {
        struct sampler_result r;
        sampler_finish(&s[k], &r);
        fprintf(stderr,
                "reader %d: %lld reads (%lld full lookups), %d segment moves, %lld errors %s\n", k,
                r.reads, r.full_reads, r.moves, r.errors, r.why);
        cr_assert_eq(r.errors, 0, "reader %d: %s", k, r.why);
        cr_assert_eq(r.final_count, n_grow, "reader %d", k);
        cr_assert_eq(r.final_segment_bytes, (unsigned long long)seg, "reader %d ended elsewhere",
                     k);
        cr_assert_gt(r.full_reads, 1, "reader %d hardly read", k);
    }

    /* Only the segment and its lock: the old segments and temporaries are gone. */
    DIR *dir = opendir(getenv("DISCSHM_DIR"));
    cr_assert_not_null(dir);
    int mine = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (strstr(e->d_name, d.name)) {
            mine++;
            cr_assert(strcmp(e->d_name, d.name) == 0 || strstr(e->d_name, ".lock"),
                      "left behind: %s", e->d_name);
        }
    }
    closedir(dir);
    cr_assert_eq(mine, 2);
}

/* ---- restarts -------------------------------------------------------------------- */

#define N_KEPT 300

Test(roll, readers_never_see_fewer_than_the_persisted_set_across_restarts)
{
    dt_start(&d, "keep", NULL);
    struct discd_conn c;
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    static char line[4096];
    for (int i = 0; i < N_KEPT; i++) {
        reg_line(line, sizeof(line), i, 4);
        json_t *r = dt_call(&c, line);
        cr_assert(dt_ok(r));
        json_decref(r);
    }
    discd_conn_close(&c);
    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, "grow", N_KEPT, 5000), N_KEPT);
    disc_close(h);

    struct sampler s[2];
    for (int k = 0; k < 2; k++)
        sampler_start(&s[k], "grow", N_KEPT, 0);
    for (int round = 0; round < 4; round++) {
        if (round % 2)
            discd_proc_kill(&d); /* crash: the old segment's writer is just gone */
        else
            cr_assert_eq(discd_proc_stop(&d, 10000 * dt_slow()), 0); /* clean: marked stopped */
        int rc = discd_proc_start(&d, NULL, 10000 * dt_slow());
        if (rc)
            proc_dump_log(&d.proc);
        cr_assert_eq(rc, 0, "restart %d", round);
        proc_sleep_ms(50);
    }
    for (int k = 0; k < 2; k++) {
        struct sampler_result r;
        sampler_finish(&s[k], &r);
        fprintf(stderr, "reader %d: %lld reads across 4 restarts, min count %d, %lld errors %s\n",
                k, r.reads, r.min_count, r.errors, r.why);
        cr_assert_eq(r.errors, 0, "reader %d: %s", k, r.why);
        cr_assert_geq(r.min_count, N_KEPT);
        cr_assert_eq(r.final_count, N_KEPT);
    }
}
