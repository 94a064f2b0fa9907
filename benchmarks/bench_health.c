/* SPDX-License-Identifier: MIT */
/*
 * bench_health.c — CPU cost of a real discd's health checks.
 *
 * Starts a discd (tests/harness/discd_proc.c: $DISC_BUILD_DIR/daemon/discd,
 * default the build directory this executable is in; private registry and
 * state directory on /dev/shm), registers N instances with tcp checks (1 s
 * interval by default) against K local listeners that run in a child
 * process (so their accept/close work is not charged to discd), warms up
 * for two intervals and then measures over a window:
 *
 *   - discd's CPU time (user + system, /proc/<pid>/stat) and its checker
 *     thread's ("disc-health", /proc/<pid>/task/<tid>/stat, when the discd
 *     names it), as a share of one core;
 *   - the checks done (accepts counted by the listeners) and the instances
 *     still registered at the end (a reported instance is removed: all
 *     targets are alive, so every one must remain);
 *   - the floor, in the same run: this process doing the same number of
 *     connects per second to the same listeners with nothing else (a reused
 *     socket per listener: connect, epoll_wait, connect(AF_UNSPEC) to reset
 *     it), its own CPU from getrusage(RUSAGE_THREAD). The kernel's loopback handshake and
 *     reset are most of a tcp check's cost and no checker can avoid them.
 *
 * Then the same for http checks (libcurl multi) at a lower rate, to state
 * the CPU per http check and the http rate one core sustains.
 *
 *   bench_health [--quick] [--md FILE] [--json FILE] [--kind tcp|http|ttl|all]
 *                [--instances N] [--interval MS] [--seconds S]
 *                [--http-instances N] [--listeners K] [--tcp-mode diag|connect|both]
 *
 * The tcp checks target loopback listeners, so discd's check-tcp-local
 * decides how they are made: diag (discd's default: one sock_diag listing
 * of the listeners per tick) or connect. --tcp-mode both (the default) runs
 * a discd of each, as two rows of the same run; the target is judged on
 * discd's default (diag) when it ran. Each row also states the checks
 * discd made each way (discd_tcp_checks_total), so a row can never
 * silently measure the other path.
 *
 * --kind all (the default) runs tcp with --instances and http with
 * --http-instances; a single kind runs --instances of it.
 *
 * Target (issue 13): 10k tcp checks/s at a 1 s interval <= 10 % of one core.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_discd.h"
#include "bench_report.h"
#include "discd_proc.h"

#define MAX_LISTENERS 64

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_health: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* utime + stime (seconds) from a /proc .../stat file; *comm gets the name. */
static double stat_cpu_s(const char *path, char *comm, size_t commlen)
{
    char buf[1024];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *l = strchr(buf, '('), *r = strrchr(buf, ')');
    if (!l || !r)
        return -1;
    if (comm)
        snprintf(comm, commlen, "%.*s", (int)(r - l - 1), l + 1);
    unsigned long ut = 0, st = 0;
    if (sscanf(r + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

struct cpu_sample {
    double proc, thread; /* thread < 0: no thread named disc-health */
};

static struct cpu_sample discd_cpu(long pid)
{
    struct cpu_sample c = {-1, -1};
    char path[128];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    c.proc = stat_cpu_s(path, NULL, 0);
    snprintf(path, sizeof(path), "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char tp[300], comm[32];
        snprintf(tp, sizeof(tp), "/proc/%ld/task/%s/stat", pid, de->d_name);
        double t = stat_cpu_s(tp, comm, sizeof(comm));
        if (t >= 0 && !strcmp(comm, "disc-health"))
            c.thread = t;
    }
    if (d)
        closedir(d);
    return c;
}

/* The listeners' process: accept (and for http answer 200) until the stop
 * pipe closes. Event-driven, so a slow client never holds up the others. */
static void serve(int *lfd, int n, int stop_fd, atomic_ulong *accepted)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    /* data.u64: fd in the low 32 bits, bit 32 set for listening sockets */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)stop_fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd, &ev);
    for (int i = 0; i < n; i++) {
        ev.data.u64 = (uint64_t)lfd[i] | (1ull << 32);
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd[i], &ev);
    }
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    for (;;) {
        struct epoll_event evs[64];
        int k = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < k; i++) {
            int fd = (int)(uint32_t)evs[i].data.u64;
            if (fd == stop_fd)
                _exit(0);
            if (!(evs[i].data.u64 >> 32)) { /* a request arrived (or the client left) */
                char buf[2048];
                if (read(fd, buf, sizeof(buf)) > 0) {
                    ssize_t w = write(fd, resp, sizeof(resp) - 1);
                    (void)w;
                }
                close(fd);
                continue;
            }
            int c;
            while ((c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
                atomic_fetch_add(accepted, 1);
                struct epoll_event cev = {.events = EPOLLIN, .data.u64 = (uint64_t)c};
                if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) < 0)
                    close(c);
            }
        }
    }
}

struct listeners {
    pid_t child;
    int stop_w;
    unsigned n;
    unsigned port[MAX_LISTENERS];
    atomic_ulong *accepted;
};

static void listeners_start(struct listeners *L, unsigned n)
{
    int lfd[MAX_LISTENERS];
    L->n = n;
    for (unsigned i = 0; i < n; i++) {
        lfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        if (lfd[i] < 0 || bind(lfd[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            listen(lfd[i], 4096) < 0 || getsockname(lfd[i], (struct sockaddr *)&sa, &len) < 0)
            die("listener", errno);
        L->port[i] = ntohs(sa.sin_port);
    }
    L->accepted =
        mmap(NULL, sizeof(*L->accepted), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int stop[2];
    if (L->accepted == MAP_FAILED || pipe2(stop, O_CLOEXEC) < 0)
        die("setup", errno);
    L->child = fork();
    if (L->child < 0)
        die("fork", errno);
    if (L->child == 0) {
        close(stop[1]);
        /* The listeners are the test's scenery: on a loaded machine they
         * must keep accepting, or their queues overflow and connects time
         * out (which would be a true finding about them, not the checker). */
        errno = 0;
        int prio = getpriority(PRIO_PROCESS, 0);
        if (errno == 0 && setpriority(PRIO_PROCESS, 0, prio - 5) < 0)
            perror("bench_health: setpriority (listeners keep the default priority)");
        serve(lfd, (int)n, stop[0], L->accepted);
    }
    close(stop[0]);
    L->stop_w = stop[1];
    for (unsigned i = 0; i < n; i++)
        close(lfd[i]);
}

static void listeners_stop(struct listeners *L)
{
    close(L->stop_w);
    waitpid(L->child, NULL, 0);
    munmap(L->accepted, sizeof(*L->accepted));
}

/* ---- discd ------------------------------------------------------------------------ */

static long long status_int(const struct discd_proc *d, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    return (long long)bench_discd_number(d, "{\"op\":\"status\"}", NULL, pat);
}

/* A sample of discd's metrics text (JSON-escaped in the reply), e.g.
 * discd_checks_total{kind=\"tcp\"}; -1 if absent. */
static double metric(const struct discd_proc *d, const char *name, const char *kind)
{
    char *line = discd_proc_request(d, "{\"op\":\"metrics\"}", 10000);
    if (!line)
        die("metrics", EIO);
    char pat[160];
    snprintf(pat, sizeof(pat), "\\n%s{kind=\\\"%s\\\"} ", name, kind);
    const char *p = strstr(line, pat);
    double v = p ? strtod(p + strlen(pat), NULL) : -1;
    free(line);
    return v;
}

/* Register n instances with a check of `kind` on the listeners, pipelined. */
static void register_all(const struct discd_proc *d, const struct listeners *L, unsigned n,
                         const char *kind, unsigned interval)
{
    struct discd_conn c;
    int rc = discd_conn_open(d, &c);
    if (rc < 0)
        die("connect", rc);
    unsigned sent = 0, got = 0;
    while (got < n) {
        while (sent < n && sent - got < 256) {
            char line[512], check[200];
            if (!strcmp(kind, "ttl")) /* never passed: long enough not to lapse */
                snprintf(check, sizeof(check),
                         "{\"type\":\"ttl\",\"ttl_ms\":3600000,\"interval_ms\":%u}", interval);
            else
                snprintf(check, sizeof(check),
                         "{\"type\":\"%s\",\"target\":\"127.0.0.1:%u\",\"interval_ms\":%u,"
                         "\"timeout_ms\":%u,\"misses\":3}",
                         kind, L->port[sent % L->n], interval, interval / 2);
            snprintf(line, sizeof(line),
                     "{\"op\":\"register\",\"instance\":{\"service\":\"hb-%s\",\"address\":"
                     "\"10.9.%u.%u:80\"},\"check\":%s}",
                     kind, sent / 250, sent % 250, check);
            if ((rc = discd_conn_send(&c, line)) < 0)
                die("send", rc);
            sent++;
        }
        char *line = NULL;
        if ((rc = discd_conn_reply(&c, &line, 30000, 1)) < 0)
            die("reply", rc);
        if (!strstr(line, "\"ok\":true")) {
            fprintf(stderr, "bench_health: register refused: %s\n", line);
            exit(1);
        }
        free(line);
        got++;
    }
    discd_conn_close(&c);
}

struct result {
    double wall, checks, misses, cpu, thread_cpu, per_check_us, share, thread_share;
    double via_diag, via_connect; /* tcp checks of the window by path */
    long long remaining;
};

/* A sample of discd_tcp_checks_total{via="..."}; -1 if absent. */
static double via_metric(const struct discd_proc *d, const char *via)
{
    char pat[160];
    snprintf(pat, sizeof(pat), "\\ndiscd_tcp_checks_total{via=\\\"%s\\\"} ", via);
    return bench_discd_number(d, "{\"op\":\"metrics\"}", NULL, pat);
}

/* One discd, n instances of kind, measured over `seconds`. */
static struct result run_discd(unsigned n, const char *kind, unsigned interval, double seconds,
                               unsigned n_lis, const char *tcp_mode)
{
    struct listeners L;
    listeners_start(&L, n_lis);
    struct discd_proc d;
    int rc = discd_proc_init(&d, "health");
    char *extra[] = {"--max-instances", "1000000", "--check-tcp-local", (char *)tcp_mode, NULL};
    if (rc == 0)
        rc = discd_proc_start(&d, extra, 20000);
    if (rc < 0) {
        fprintf(stderr, "bench_health: cannot start %s (log %s)\n", discd_binary(), d.log);
        die("discd", rc);
    }
    long pid = (long)status_int(&d, "pid");
    register_all(&d, &L, n, kind, interval);
    sleep_s(2.0 * interval / 1000.0); /* every instance on its cadence */

    double w0 = now_s();
    struct cpu_sample c0 = discd_cpu(pid);
    double k0 = metric(&d, "discd_checks_total", kind);
    double f0 = metric(&d, "discd_check_failures_total", kind);
    double vd0 = via_metric(&d, "sock_diag"), vc0 = via_metric(&d, "connect");
    sleep_s(seconds);
    double w1 = now_s();
    struct cpu_sample c1 = discd_cpu(pid);
    double k1 = metric(&d, "discd_checks_total", kind);
    double f1 = metric(&d, "discd_check_failures_total", kind);
    double vd1 = via_metric(&d, "sock_diag"), vc1 = via_metric(&d, "connect");
    struct result r = {0};
    r.via_diag = vd1 - vd0;
    r.via_connect = vc1 - vc0;
    r.misses = f1 - f0;
    r.remaining = status_int(&d, "local_instances");
    discd_proc_stop(&d, 20000);
    if (r.remaining != (long long)n) { /* say why, from discd's log */
        FILE *lf = fopen(d.log, "r");
        char line[1024];
        int shown = 0;
        while (lf && shown < 5 && fgets(line, sizeof(line), lf))
            if (strstr(line, "WARN") || strstr(line, "ERROR") || strstr(line, "remov"))
                fprintf(stderr, "discd: %s", line), shown++;
        if (lf)
            fclose(lf);
    }
    discd_proc_cleanup(&d);
    listeners_stop(&L);

    r.wall = w1 - w0;
    r.checks = k1 - k0;
    r.cpu = c1.proc - c0.proc;
    r.thread_cpu = c0.thread >= 0 && c1.thread >= 0 ? c1.thread - c0.thread : -1;
    r.share = 100.0 * r.cpu / r.wall;
    r.thread_share = r.thread_cpu >= 0 ? 100.0 * r.thread_cpu / r.wall : -1;
    r.per_check_us = r.checks > 0 ? r.cpu * 1e6 / r.checks : 0;
    return r;
}

/* The floor: `rate` connects/s for `seconds` from this thread, nothing else. */
static struct result run_floor(double rate, double seconds, unsigned n_lis)
{
    struct listeners L;
    listeners_start(&L, n_lis);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int fd[MAX_LISTENERS];
    for (unsigned i = 0; i < n_lis; i++) {
        fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLET, .data.u32 = i};
        if (fd[i] < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev) < 0)
            die("floor socket", errno);
    }
    struct rusage r0, r1;
    double w0 = now_s();
    getrusage(RUSAGE_THREAD, &r0);
    double done = 0;
    while (now_s() - w0 < seconds) {
        /* batches of n_lis every 5 ms-ish, like a checker's tick */
        double due = (now_s() - w0) * rate;
        while (done < due) {
            for (unsigned i = 0; i < n_lis && done < due; i++, done++) {
                sa.sin_port = htons((uint16_t)L.port[i]);
                connect(fd[i], (struct sockaddr *)&sa, sizeof(sa));
            }
            struct epoll_event evs[MAX_LISTENERS];
            epoll_wait(ep, evs, MAX_LISTENERS, 100);
            for (unsigned i = 0; i < n_lis; i++) {
                struct sockaddr unspec = {.sa_family = AF_UNSPEC};
                connect(fd[i], &unspec, sizeof(unspec));
            }
        }
        sleep_s(0.005);
    }
    double w1 = now_s();
    getrusage(RUSAGE_THREAD, &r1);
    for (unsigned i = 0; i < n_lis; i++)
        close(fd[i]);
    close(ep);
    listeners_stop(&L);
    struct result r = {0};
    r.wall = w1 - w0;
    r.checks = done;
    r.cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
            (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
            (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
            (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    r.share = 100.0 * r.cpu / r.wall;
    r.per_check_us = r.checks > 0 ? r.cpu * 1e6 / r.checks : 0;
    r.thread_share = -1;
    r.remaining = -1;
    return r;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_health [--quick] [--md FILE] [--json FILE] "
                    "[--kind tcp|http|ttl|all] [--instances N] [--interval MS] [--seconds S] "
                    "[--http-instances N] [--listeners K] [--tcp-mode diag|connect|both]\n");
    exit(2);
}

static void md_row(struct bench_report *rep, const char *what, const struct result *r, unsigned n)
{
    char th[32] = "n/a";
    if (r->thread_share >= 0)
        snprintf(th, sizeof(th), "%.1f", r->thread_share);
    bench_md(rep, "| %s | %.0f | %.1f | %s | %.1f | %.0f | %lld of %u |\n", what,
             r->checks / r->wall, r->share, th, r->per_check_us, r->misses, r->remaining, n);
}

/* run_discd with n tcp instances and check-tcp-local = mode ("connect" or
 * "diag"), and its markdown row, naming how many checks took each path. */
static struct result run_tcp_row(struct bench_report *rep, unsigned n, unsigned interval,
                                 double seconds, unsigned n_lis, const char *mode)
{
    struct result r = run_discd(n, "tcp", interval, seconds, n_lis, mode);
    bool diag = strcmp(mode, "diag") == 0;
    char what[160];
    snprintf(what, sizeof(what),
             "discd, %u tcp instances, check-tcp-local = %s (%.0f by %s, %.0f by %s)", n, mode,
             diag ? r.via_diag : r.via_connect, diag ? "sock_diag" : "connect",
             diag ? r.via_connect : r.via_diag, diag ? "connect" : "sock_diag");
    md_row(rep, what, &r, n);
    return r;
}

static void json_row(struct bench_report *rep, const char *name, const struct result *r, unsigned n)
{
    char b[4][BENCH_JNUM_LEN];
    bench_row(rep, name, "us", r->per_check_us, NAN,
              "\"cpu_percent\": %s, \"checker_thread_percent\": %s, \"checks_per_s\": %s, "
              "\"misses\": %s, \"instances\": %u, \"instances_left\": %lld",
              bench_jnum(b[0], r->share), bench_jnum(b[1], r->thread_share),
              bench_jnum(b[2], r->checks / r->wall), bench_jnum(b[3], r->misses), n, r->remaining);
}

int main(int argc, char **argv)
{
    unsigned n_inst = 10000, interval = 1000, n_lis = 16, n_http = 2000;
    double seconds = 15;
    const char *kind = "all", *tcp_mode = "both";
    struct bench_opts opts;
    if (bench_parse_args(&argc, argv, &opts) < 0)
        usage();
    if (!opts.md)
        opts.md = "/dev/stdout"; /* the section is the program's output */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--instances"))
            n_inst = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--interval"))
            interval = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--seconds"))
            seconds = strtod(v, NULL);
        else if (!strcmp(a, "--http-instances"))
            n_http = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--listeners"))
            n_lis = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--kind"))
            kind = v;
        else if (!strcmp(a, "--tcp-mode"))
            tcp_mode = v;
        else
            usage();
    }
    bool all = !strcmp(kind, "all"), do_tcp = all || !strcmp(kind, "tcp"),
         do_http = all || !strcmp(kind, "http"), do_ttl = !strcmp(kind, "ttl");
    if (!do_tcp && !do_http && !do_ttl)
        usage();
    bool tcp_diag = !strcmp(tcp_mode, "both") || !strcmp(tcp_mode, "diag"),
         tcp_conn = !strcmp(tcp_mode, "both") || !strcmp(tcp_mode, "connect");
    if (!tcp_diag && !tcp_conn)
        usage();
    if (!all && do_http)
        n_http = n_inst;
    if (opts.quick) {
        n_inst = n_inst < 2000 ? n_inst : 2000;
        n_http = n_http < 300 ? n_http : 300;
        seconds = 3;
    }
    if (n_inst == 0 || interval < 100 || n_lis == 0 || n_lis > MAX_LISTENERS || seconds <= 0)
        usage();
    char title[128];
    snprintf(title, sizeof(title), "Health checks: CPU of a real discd, %s checks",
             all ? "tcp and http" : kind);
    struct bench_report *rep = bench_report_open("bench_health", title, &opts, 0, NULL);
    if (!rep)
        return 1;
    int erc = bench_discd_env();
    if (erc < 0)
        die("setting up a registry directory", erc);

    bench_md(rep,
             "discd: `%s/daemon/discd` (default settings), %u local listeners in another "
             "process (their accept and close are not discd's), interval %u ms, timeout %u ms, "
             "3 misses; CPU from /proc/<pid>/stat over a %.0f s window after two intervals of "
             "warm-up, checks and misses from discd's own counters (metrics op). The floor is "
             "this program doing the same connects with nothing else (a reused socket: "
             "connect, epoll_wait, connect(AF_UNSPEC) to reset).\n\n"
             "| what | checks/s | CPU, %% of one core | checker thread | CPU per check, us "
             "| misses | instances left |\n|---|---:|---:|---:|---:|---:|---:|\n",
             getenv("DISC_BUILD_DIR"), n_lis, interval, interval / 2, seconds);
    struct result fl = {0}, tcp = {0}, tcpc = {0}, http = {0}, ttl = {0};
    if (do_tcp) {
        double rate = (double)n_inst * 1000.0 / interval;
        fl = run_floor(rate, seconds / 3 < 2 ? 2 : seconds / 3, n_lis);
        bench_md(rep, "| floor: bare connect + reset loop | %.0f | %.1f | | %.1f | | |\n",
                 fl.checks / fl.wall, fl.share, fl.per_check_us);
        if (tcp_conn)
            tcpc = run_tcp_row(rep, n_inst, interval, seconds, n_lis, "connect");
        if (tcp_diag)
            tcp = run_tcp_row(rep, n_inst, interval, seconds, n_lis, "diag");
    }
    if (do_http) {
        http = run_discd(n_http, "http", interval, seconds, n_lis, "diag");
        char what[96];
        snprintf(what, sizeof(what), "discd, %u http instances (libcurl multi)", n_http);
        md_row(rep, what, &http, n_http);
    }
    if (do_ttl) {
        ttl = run_discd(n_inst, "ttl", interval, seconds, n_lis, "diag");
        char what[96];
        snprintf(what, sizeof(what), "discd, %u ttl instances", n_inst);
        md_row(rep, what, &ttl, n_inst);
    }
    bench_discd_env_cleanup();
    bench_md(rep, "\n");

    if (do_tcp) {
        json_row(rep, "floor: connect + reset, CPU per connect", &fl, 0);
        if (tcp_conn)
            json_row(rep, "discd tcp (check-tcp-local = connect): CPU per check", &tcpc, n_inst);
        if (tcp_diag)
            json_row(rep, "discd tcp (check-tcp-local = diag): CPU per check", &tcp, n_inst);
        if (tcp_conn && tcp_diag)
            bench_md(rep,
                     "sock_diag: %.2f us of CPU per check against %.2f us by connect in the same "
                     "run (%.1f x less); %.2f x the connect floor.\n\n",
                     tcp.per_check_us, tcpc.per_check_us,
                     tcp.per_check_us > 0 ? tcpc.per_check_us / tcp.per_check_us : NAN,
                     fl.per_check_us > 0 ? tcp.per_check_us / fl.per_check_us : NAN);
        if (!tcp_diag)
            tcp = tcpc; /* the target below is judged on what ran */
        /* The target is 10,000 checks/s at a 1 s interval in 10 % of
         * one core, i.e. 10 us of CPU per check. The machine may not let
         * discd run that many (a shared VM): the CPU at 10,000 checks/s is
         * then the CPU per check measured times 10,000. */
        double achieved = tcp.wall > 0 ? tcp.checks / tcp.wall : 0;
        bool at_10k = achieved >= 9500 && tcp.misses == 0;
        double at_nominal = at_10k ? tcp.share : tcp.per_check_us * 10000 / 1e4;
        bench_md(rep,
                 "discd's CPU per tcp check (check-tcp-local = %s) is %.2f x the floor's. %s\n\n",
                 tcp_diag ? "diag" : "connect",
                 fl.per_check_us > 0 ? tcp.per_check_us / fl.per_check_us : NAN,
                 at_10k ? "It ran 10,000 checks/s: the CPU share is measured."
                        : "It did not run 10,000 checks/s here (the checks/s column), so the "
                          "share of a core at 10,000 checks/s below is the CPU per check "
                          "measured x 10,000 (projected).");
        bench_target(rep, "10k tcp checks/s at a 1 s interval: discd CPU, % of one core",
                     at_nominal, "<=", 10.0);
    }
    if (do_http) {
        double per_core = http.per_check_us > 0 ? 1e6 / http.per_check_us : NAN;
        json_row(rep, "discd http: CPU per check", &http, n_http);
        char b[BENCH_JNUM_LEN];
        bench_row(rep, "http checks one core sustains", "ops/s", per_core, NAN,
                  "\"cpu_per_check_us\": %s", bench_jnum(b, http.per_check_us));
        bench_md(rep,
                 "http: %.0f us of CPU per check, so one core sustains about %.0f http checks/s "
                 "(1 s / CPU per check).\n\n",
                 http.per_check_us, per_core);
    }
    if (do_ttl)
        json_row(rep, "discd ttl: CPU per check", &ttl, n_inst);
    return bench_report_close(rep) < 0 ? 1 : 0;
}
