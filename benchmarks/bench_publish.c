/* SPDX-License-Identifier: MIT */
/*
 * bench_publish.c — publish latency of a real discd against its two lower
 * bounds, measured in the same run, and the change rate it sustains.
 *
 *   (a) register (or deregister) on discd's control socket -> the change is
 *       visible in the segment to a reader in another process that waits in
 *       disc_wait_change (time from just before the client's write() to the
 *       reader's return from the futex wait, once it sees the change). This
 *       is visibility, not the acknowledgement: discd replies only after the
 *       state journal's fdatasync, later (its own row, "reply received");
 *   (b) the baseline Unix-socket round trip between two processes (a
 *       request and a reply of about the sizes of a register);
 *   (c) a futex wake-up between two processes (shared mapping, the same
 *       kind of futex as the segment's change word).
 * The three are interleaved sample by sample, each after the same idle gap
 * (the publisher is idle, every process is asleep), so they share the
 * machine's noise. Target (issue 13): (a) <= (b) + (c) at p50 and p99.
 *
 *   (d) throughput: C connections pipeline N registrations (then N
 *       deregistrations) as fast as discd acknowledges them (a reply is
 *       sent once the change is published); changes/s and commits made.
 *
 *   bench_publish [--quick] [--md FILE] [--json FILE] [--samples N]
 *                 [--burst N]
 *
 * discd is $DISC_BUILD_DIR/daemon/discd (default: the build directory this
 * executable is in), started with tests/harness/discd_proc.c in a private
 * registry directory on /dev/shm (bench_discd.h: its state-file syncs cost
 * no disk I/O, the numbers are the daemon's, not the disk's).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_discd.h"
#include "bench_report.h"
#include "discd_proc.h"
#include "discshm.h"

#define SVC "pubbench"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_publish: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
    exit(1);
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

struct dist {
    double p50, p99, mean;
    int n;
};

static struct dist summarize(int64_t *v, int n)
{
    struct dist d = {0, 0, 0, n};
    if (n == 0)
        return d;
    qsort(v, (size_t)n, sizeof(*v), cmp_i64);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += (double)v[i];
    int i99 = (int)((double)n * 0.99);
    d.p50 = (double)v[n / 2] / 1e3;
    d.p99 = (double)v[i99 < n ? i99 : n - 1] / 1e3;
    d.mean = sum / n / 1e3;
    return d;
}

static void full_write(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write", errno);
        p += w;
        len -= (size_t)w;
    }
}

static void full_read(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("read", r < 0 ? errno : EPIPE);
        p += r;
        len -= (size_t)r;
    }
}

/* ---- (a) the reader process: waits on the change futex ------------------------ */

struct rd_cmd {
    int32_t want; /* instances of SVC to wait for */
};
struct rd_ans {
    int64_t t_ns; /* return from the futex wait that made the change visible */
    int32_t wakes;
};

static void reader_main(const char *name, int cmd_fd, int ans_fd)
{
    disc_handle *h;
    int rc = disc_open(name, 0, &h);
    if (rc < 0)
        die("reader: disc_open", rc);
    struct rd_cmd cmd;
    for (;;) {
        ssize_t r = read(cmd_fd, &cmd, sizeof(cmd));
        if (r != (ssize_t)sizeof(cmd))
            _exit(0);
        struct disc_status st;
        rc = disc_status(h, &st);
        if (rc < 0)
            die("reader: disc_status", rc);
        uint32_t seen = st.change_seq;
        char ready = 'r';
        full_write(ans_fd, &ready, 1);
        struct rd_ans ans = {0, 0};
        for (;;) {
            rc = disc_wait_change(h, &seen, 10000);
            int64_t t = now_ns();
            if (rc < 0)
                die("reader: disc_wait_change", rc);
            ans.wakes++;
            int n = disc_count(h, SVC);
            if (n == cmd.want || (n == -ENOENT && cmd.want == 0)) {
                ans.t_ns = t;
                break;
            }
        }
        full_write(ans_fd, &ans, sizeof(ans));
    }
}

/* ---- (b) socket echo and (c) futex waiter processes --------------------------- */

static void echo_main(int fd)
{
    char req[512], rep[160];
    memset(rep, 'y', sizeof(rep));
    rep[sizeof(rep) - 1] = '\n';
    for (;;) {
        ssize_t r = read(fd, req, sizeof(req));
        if (r <= 0)
            _exit(0);
        full_write(fd, rep, sizeof(rep));
    }
}

struct futex_page {
    _Atomic uint32_t word;
    _Atomic int64_t woke_ns;
};

static long futex(_Atomic uint32_t *w, int op, uint32_t val)
{
    return syscall(SYS_futex, (uint32_t *)w, op, val, NULL, NULL, 0);
}

static void futex_main(struct futex_page *fp, int ack_fd)
{
    uint32_t seen = atomic_load(&fp->word);
    for (;;) {
        while (atomic_load(&fp->word) == seen)
            futex(&fp->word, FUTEX_WAIT, seen); /* shared mapping: not FUTEX_PRIVATE */
        int64_t t = now_ns();
        seen = atomic_load(&fp->word);
        if (seen == UINT32_MAX)
            _exit(0);
        atomic_store(&fp->woke_ns, t);
        char c = 'w';
        full_write(ack_fd, &c, 1);
    }
}

/* ---- discd helpers -------------------------------------------------------------- */

/* Send a request line and its newline in one write, as a client does. */
static void send_line(struct discd_conn *c, const char *line)
{
    int rc = discd_conn_send(c, line);
    if (rc < 0)
        die("send", rc);
}

/* Read one reply; must be ok; copies "id" if asked. */
static void expect_ok(struct discd_conn *c, char *id_out)
{
    char *line = NULL;
    int rc = discd_conn_reply(c, &line, 30000, 1);
    if (rc < 0)
        die("reply", rc);
    if (!strstr(line, "\"ok\":true")) {
        fprintf(stderr, "bench_publish: discd refused: %s\n", line);
        exit(1);
    }
    if (id_out) {
        const char *p = strstr(line, "\"id\":\"");
        if (!p) {
            fprintf(stderr, "bench_publish: no id in %s\n", line);
            exit(1);
        }
        snprintf(id_out, DISC_ID_LEN + 1, "%s", p + 6);
    }
    free(line);
}

/* An integer member of the status reply's "publisher" object. */
static long long pub_stat(const struct discd_proc *d, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    return (long long)bench_discd_number(d, "{\"op\":\"status\"}", "\"publisher\":", pat);
}

static void register_line(char *buf, size_t len, const char *svc, unsigned i)
{
    snprintf(buf, len,
             "{\"op\":\"register\",\"instance\":{\"service\":\"%s\",\"version\":\"1.0\","
             "\"address\":\"10.%u.%u.%u:8080\",\"tags\":{\"env\":\"bench\"}},"
             "\"check\":{\"type\":\"none\"}}",
             svc, (i >> 16) & 255, (i >> 8) & 255, i & 255);
}

/* ---- (d) throughput -------------------------------------------------------------- */

struct tput {
    double reg_per_s, dereg_per_s;
    long long changes, commits, idle_commits, coalesced_commits;
};

/* C connections, n changes in all, at most `window` unanswered per connection. */
static double pipeline(const struct discd_proc *d, struct discd_conn *cs, int nc, unsigned n,
                       char (*ids)[DISC_ID_LEN + 1], bool dereg)
{
    const unsigned window = 256;
    unsigned sent[64] = {0}, got[64] = {0}, per = n / (unsigned)nc;
    int64_t t0 = now_ns();
    for (;;) {
        bool all = true;
        for (int k = 0; k < nc; k++) {
            char line[512];
            while (sent[k] < per && sent[k] - got[k] < window) {
                unsigned i = (unsigned)k * per + sent[k];
                if (dereg)
                    snprintf(line, sizeof(line), "{\"op\":\"deregister\",\"id\":\"%s\"}", ids[i]);
                else
                    register_line(line, sizeof(line), "tput", i);
                send_line(&cs[k], line);
                sent[k]++;
            }
            if (got[k] < sent[k]) {
                expect_ok(&cs[k], dereg ? NULL : ids[(unsigned)k * per + got[k]]);
                got[k]++;
            }
            if (got[k] < per)
                all = false;
        }
        if (all)
            break;
    }
    (void)d;
    return (double)(per * (unsigned)nc) / ((double)(now_ns() - t0) / 1e9);
}

static struct tput throughput(const struct discd_proc *d, unsigned n, int nc)
{
    struct discd_conn cs[64];
    for (int k = 0; k < nc; k++) {
        int rc = discd_conn_open(d, &cs[k]);
        if (rc < 0)
            die("connect", rc);
    }
    char(*ids)[DISC_ID_LEN + 1] = calloc(n, DISC_ID_LEN + 1);
    if (!ids)
        die("calloc", ENOMEM);
    struct tput t = {0};
    long long c0 = pub_stat(d, "commits"), ch0 = pub_stat(d, "changes");
    long long i0 = pub_stat(d, "idle_commits"), k0 = pub_stat(d, "coalesced_commits");
    t.reg_per_s = pipeline(d, cs, nc, n, ids, false);
    t.dereg_per_s = pipeline(d, cs, nc, n, ids, true);
    t.commits = pub_stat(d, "commits") - c0;
    t.changes = pub_stat(d, "changes") - ch0;
    /* -1 when the discd measured predates these counters */
    t.idle_commits = i0 < 0 ? -1 : pub_stat(d, "idle_commits") - i0;
    t.coalesced_commits = k0 < 0 ? -1 : pub_stat(d, "coalesced_commits") - k0;
    for (int k = 0; k < nc; k++)
        discd_conn_close(&cs[k]);
    free(ids);
    return t;
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr, "usage: bench_publish [--quick] [--md FILE] [--json FILE] [--samples N] "
                    "[--burst N]\n");
    exit(2);
}

struct row {
    const char *name;
    struct dist d;
};

int main(int argc, char **argv)
{
    int samples = 600;
    unsigned burst = 20000;
    struct bench_opts opts;
    if (bench_parse_args(&argc, argv, &opts) < 0)
        usage();
    if (!opts.md)
        opts.md = "/dev/stdout"; /* the section is the program's output */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--samples") && i + 1 < argc)
            samples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--burst") && i + 1 < argc)
            burst = (unsigned)strtoul(argv[++i], NULL, 10);
        else
            usage();
    }
    if (opts.quick) {
        samples = 100;
        burst = 4000;
    }
    if (samples < 10 || burst < 64)
        usage();
    struct bench_report *rep = bench_report_open(
        "bench_publish", "Publish latency: control socket -> visible in the segment", &opts, 0,
        NULL);
    if (!rep)
        return 1;
    int erc = bench_discd_env();
    if (erc < 0)
        die("setting up a registry directory", erc);

    struct discd_proc d;
    int rc = discd_proc_init(&d, "pub");
    if (rc == 0)
        rc = discd_proc_start(&d, NULL, 20000);
    if (rc < 0) {
        fprintf(stderr, "bench_publish: cannot start %s (see %s)\n", discd_binary(), d.log);
        die("discd", rc);
    }
    long long discd_pid = -1;
    {
        char *line = discd_proc_request(&d, "{\"op\":\"status\"}", 5000);
        const char *p = line ? strstr(line, "\"pid\":") : NULL;
        discd_pid = p ? strtoll(p + 6, NULL, 10) : -1;
        free(line);
    }

    /* helper processes */
    int cmd[2], ans[2], sp[2], ack[2];
    if (pipe(cmd) < 0 || pipe(ans) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0 ||
        pipe(ack) < 0)
        die("pipe", errno);
    struct futex_page *fp =
        mmap(NULL, sizeof(*fp), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (fp == MAP_FAILED)
        die("mmap", errno);
    pid_t kids[3];
    if ((kids[0] = fork()) == 0) {
        reader_main(d.name, cmd[0], ans[1]);
        _exit(0);
    }
    if ((kids[1] = fork()) == 0) {
        echo_main(sp[1]);
        _exit(0);
    }
    if ((kids[2] = fork()) == 0) {
        futex_main(fp, ack[1]);
        _exit(0);
    }
    close(cmd[0]);
    close(ans[1]);
    close(sp[1]);
    close(ack[1]);

    struct discd_conn c;
    rc = discd_conn_open(&d, &c);
    if (rc < 0)
        die("connect", rc);
    long long c0 = pub_stat(&d, "commits");
    long long idle0 = pub_stat(&d, "idle_commits");

    int64_t *va = calloc((size_t)samples, sizeof(int64_t));
    int64_t *vdereg = calloc((size_t)samples, sizeof(int64_t));
    int64_t *vack = calloc((size_t)samples, sizeof(int64_t));
    int64_t *vb = calloc((size_t)samples, sizeof(int64_t));
    int64_t *vc = calloc((size_t)samples, sizeof(int64_t));
    if (!va || !vdereg || !vack || !vb || !vc)
        die("calloc", ENOMEM);
    uint32_t rng = 12345;
    long spurious = 0;
    for (int s = 0; s < samples; s++) {
        for (int op = 0; op < 2; op++) { /* register, then deregister it */
            static char id[DISC_ID_LEN + 1];
            struct rd_cmd rc_ = {op == 0 ? 1 : 0};
            full_write(cmd[1], &rc_, sizeof(rc_));
            char r;
            full_read(ans[0], &r, 1);
            rng = rng * 1103515245u + 12345u;
            sleep_us(3000 + (rng >> 16) % 2000); /* idle: > the 2 ms coalescing window */
            char line[512];
            if (op == 0)
                register_line(line, sizeof(line), SVC, (unsigned)s);
            else
                snprintf(line, sizeof(line), "{\"op\":\"deregister\",\"id\":\"%s\"}", id);
            int64_t t0 = now_ns();
            send_line(&c, line);
            expect_ok(&c, op == 0 ? id : NULL);
            int64_t t_ack = now_ns();
            struct rd_ans a;
            full_read(ans[0], &a, sizeof(a));
            spurious += a.wakes - 1;
            (op == 0 ? va : vdereg)[s] = a.t_ns - t0;
            if (op == 0)
                vack[s] = t_ack - t0;
        }
        /* (b) socket round trip */
        rng = rng * 1103515245u + 12345u;
        sleep_us(3000 + (rng >> 16) % 2000);
        char req[260];
        memset(req, 'x', sizeof(req));
        req[sizeof(req) - 1] = '\n';
        char reply[160];
        int64_t t0 = now_ns();
        full_write(sp[0], req, sizeof(req));
        full_read(sp[0], reply, sizeof(reply));
        vb[s] = now_ns() - t0;
        /* (c) futex wake-up */
        rng = rng * 1103515245u + 12345u;
        sleep_us(3000 + (rng >> 16) % 2000);
        t0 = now_ns();
        atomic_fetch_add(&fp->word, 1);
        futex(&fp->word, FUTEX_WAKE, 1);
        char w;
        full_read(ack[0], &w, 1);
        vc[s] = atomic_load(&fp->woke_ns) - t0;
    }
    long long commits_iso = pub_stat(&d, "commits") - c0;
    long long idle_iso = idle0 < 0 ? -1 : pub_stat(&d, "idle_commits") - idle0;
    discd_conn_close(&c);

    struct row rows[] = {
        {"(a) register -> visible to a waiting reader", summarize(va, samples)},
        {"(a') deregister -> gone for a waiting reader", summarize(vdereg, samples)},
        {"register -> reply received (published)", summarize(vack, samples)},
        {"(b) unix-socket round trip, 2 processes", summarize(vb, samples)},
        {"(c) futex wake-up, 2 processes", summarize(vc, samples)},
    };
    struct dist a = rows[0].d, b = rows[3].d, cc = rows[4].d;
    double lim50 = b.p50 + cc.p50, lim99 = b.p99 + cc.p99;

    int nconn = 4;
    struct tput t = throughput(&d, burst, nconn);

    for (int k = 0; k < 3; k++) {
        kill(kids[k], SIGKILL);
        waitpid(kids[k], NULL, 0);
    }
    rc = discd_proc_stop(&d, 10000);
    discd_proc_cleanup(&d);
    bench_discd_env_cleanup();

    /* ---- report ---- */
    bench_md(
        rep,
        "discd: `%s/daemon/discd` (pid %lld, default settings; registry and state on "
        "/dev/shm). (a) is a `register` on its control socket until a reader process "
        "blocked in `disc_wait_change` has returned and sees the instance (visibility, not the "
        "acknowledgement: the reply comes after the state journal's fdatasync and is the "
        "row `register -> reply received`); (b) a Unix-socket "
        "round trip between two processes (260-byte request, 160-byte reply); (c) a futex "
        "wake-up between two processes (shared mapping). %d samples of each, interleaved, "
        "each after an idle gap of 3-5 ms (longer than the 2 ms coalescing window). "
        "Microseconds.\n\n| what | p50 | p99 | mean |\n|---|---:|---:|---:|\n",
        getenv("DISC_BUILD_DIR"), discd_pid, samples);
    const char *jn[] = {"(a) register -> visible", "(a') deregister -> gone",
                        "register -> reply received", "(b) unix-socket round trip",
                        "(c) futex wake-up"};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bench_md(rep, "| %s | %.1f | %.1f | %.1f |\n", rows[i].name, rows[i].d.p50, rows[i].d.p99,
                 rows[i].d.mean);
        char m[BENCH_JNUM_LEN];
        bench_row(rep, jn[i], "us", rows[i].d.p50, rows[i].d.p99, "\"mean\": %s, \"samples\": %d",
                  bench_jnum(m, rows[i].d.mean), rows[i].d.n);
    }
    bench_md(rep, "| (b)+(c) | %.1f | %.1f | |\n\n", lim50, lim99);
    bench_md(rep,
             "Ratio (a) / ((b)+(c)): p50 %.2f, p99 %.2f. Isolated changes: %d, commits %lld, of "
             "which published at once (idle) %lld; reader wake-ups that did not yet show the "
             "change: %ld.\n\n",
             a.p50 / lim50, a.p99 / lim99, 2 * samples, commits_iso, idle_iso, spurious);
    bench_target(rep, "publish: (a) p50, us, at most (b)+(c) p50", a.p50, "<=", lim50);
    bench_target(rep, "publish: (a) p99, us, at most (b)+(c) p99", a.p99, "<=", lim99);
    bench_md(rep,
             "\nThroughput: %d connections pipeline %u registrations, then deregister them (at "
             "most 256 unanswered per connection; a reply is sent once the change is "
             "published).\n\n| what | changes/s | commits | changes per commit | at once (idle) "
             "| coalesced (stream) |\n|---|---:|---:|---:|---:|---:|\n"
             "| registrations | %.0f | %lld | %.1f | %lld | %lld |\n| deregistrations | %.0f | "
             "| | | |\n\n",
             nconn, burst, t.reg_per_s, t.commits,
             t.commits ? (double)t.changes / (double)t.commits : 0.0, t.idle_commits,
             t.coalesced_commits, t.dereg_per_s);
    char b1[BENCH_JNUM_LEN];
    bench_row(rep, "register throughput", "ops/s", t.reg_per_s, NAN, NULL);
    bench_row(rep, "deregister throughput", "ops/s", t.dereg_per_s, NAN,
              "\"commits\": %lld, \"changes\": %lld, \"changes_per_commit\": %s", t.commits,
              t.changes, bench_jnum(b1, t.commits ? (double)t.changes / (double)t.commits : NAN));
    if (bench_report_close(rep) < 0)
        return 1;
    return rc == 0 ? 0 : 1;
}
