/* SPDX-License-Identifier: MIT */
/*
 * bench_health.c — CPU cost of the health checker thread (daemon/checks/health.c).
 *
 * One checker thread checks N instances (default 10 000) every interval
 * (default 1 s) against a few local listeners that run in a child process,
 * so the parent's CPU time is the checker's (the main thread only sleeps).
 * After a warm-up the process CPU time (getrusage) and the checker thread's
 * own CPU time (/proc/self/task/<tid>/stat) are measured over a window.
 *
 *   bench_health [--instances N] [--interval MS] [--listeners K]
 *                [--seconds S] [--kind tcp|http|ttl]
 *                [--quick] [--md FILE] [--json FILE]   (bench_report.h)
 * --quick caps the run at 2000 instances and a 3 s window.
 */
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_report.h"
#include "health.h"

#define MAX_LISTENERS 64

static atomic_uint fails;

static void on_fail(const char *id, const char *reason, void *arg)
{
    (void)arg;
    if (atomic_fetch_add(&fails, 1) < 5)
        fprintf(stderr, "reported %s: %s\n", id, reason);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) of `who`; *sys gets the system part. */
static double rusage_s(int who, double *sys)
{
    struct rusage ru;
    getrusage(who, &ru);
    double s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    if (sys)
        *sys = s;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + s;
}

/* CPU seconds of every thread but the main one (that is, the checker). */
static double other_threads_cpu_s(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    double total = 0;
    long tick = sysconf(_SC_CLK_TCK);
    struct dirent *de;
    while ((de = readdir(d))) {
        int tid = atoi(de->d_name);
        if (tid <= 0 || tid == getpid())
            continue;
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        char *p = strrchr(buf, ')'); /* fields after "(comm)" */
        unsigned long ut = 0, st = 0;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            total += (double)(ut + st) / (double)tick;
    }
    closedir(d);
    return total;
}

/* The child: accept (and for http answer 200) until the stop pipe closes.
 * Event-driven, so a slow client never holds up the others. */
static void serve(int *lfd, int n, int stop_fd, int http, atomic_ulong *accepted)
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
                if (!http) {
                    close(c);
                    continue;
                }
                struct epoll_event cev = {.events = EPOLLIN, .data.u64 = (uint64_t)c};
                if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) < 0)
                    close(c);
            }
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_health [--instances N] [--interval MS] [--listeners K] "
                    "[--seconds S] [--kind tcp|http|ttl] [--quick] [--md FILE] [--json FILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned n_inst = 10000, interval = 1000, n_lis = 4, seconds = 15;
    const char *kind = "tcp";
    int argc0 = argc;
    char **argv0 = malloc(sizeof(char *) * (size_t)(argc + 1));
    memcpy(argv0, argv, sizeof(char *) * (size_t)(argc + 1));
    struct bench_opts opts;
    if (bench_parse_args(&argc, argv, &opts) < 0)
        usage();
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--instances"))
            n_inst = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--interval"))
            interval = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--listeners"))
            n_lis = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--kind"))
            kind = argv[++i];
        else
            usage();
    }
    int http = !strcmp(kind, "http"), ttl = !strcmp(kind, "ttl");
    if ((!http && !ttl && strcmp(kind, "tcp")) || n_inst == 0 || interval < 10 || n_lis == 0 ||
        n_lis > MAX_LISTENERS || seconds == 0)
        usage();
    if (opts.quick) {
        n_inst = n_inst < 2000 ? n_inst : 2000;
        seconds = 3;
    }
    char title[128];
    snprintf(title, sizeof(title), "Health checker: CPU of the checker thread, %s checks", kind);
    struct bench_report *rep = bench_report_open("bench_health", title, &opts, argc0, argv0);
    if (!rep)
        return 1;

    int lfd[MAX_LISTENERS];
    unsigned port[MAX_LISTENERS];
    for (unsigned i = 0; i < n_lis; i++) {
        lfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        if (lfd[i] < 0 || bind(lfd[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            listen(lfd[i], 4096) < 0 || getsockname(lfd[i], (struct sockaddr *)&sa, &len) < 0) {
            perror("listener");
            return 1;
        }
        port[i] = ntohs(sa.sin_port);
    }
    atomic_ulong *accepted =
        mmap(NULL, sizeof(*accepted), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int stop[2];
    if (accepted == MAP_FAILED || pipe2(stop, O_CLOEXEC) < 0) {
        perror("setup");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        close(stop[1]);
        serve(lfd, (int)n_lis, stop[0], http, accepted);
    }
    close(stop[0]);
    for (unsigned i = 0; i < n_lis; i++)
        close(lfd[i]);

    struct health *h = health_start(on_fail, NULL);
    if (!h) {
        perror("health_start");
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        return 1;
    }
    double t_add = now_s();
    for (unsigned i = 0; i < n_inst; i++) {
        struct health_check_def d = {.interval_ms = interval,
                                     .timeout_ms = interval / 2,
                                     .misses = 3,
                                     .ttl_ms = 3600 * 1000};
        d.kind = ttl ? HEALTH_TTL : http ? HEALTH_HTTP : HEALTH_TCP;
        snprintf(d.target, sizeof(d.target), "127.0.0.1:%u", port[i % n_lis]);
        char id[40];
        snprintf(id, sizeof(id), "bench-%08u", i);
        int rc = health_add(h, id, &d);
        if (rc < 0) {
            fprintf(stderr, "health_add: %s\n", strerror(-rc));
            return 1;
        }
    }
    t_add = now_s() - t_add;

    /* Warm up for two intervals so every instance is on its cadence. */
    struct timespec warm = {(2 * interval) / 1000, (long)((2 * interval) % 1000) * 1000000L};
    nanosleep(&warm, NULL);

    double w0 = now_s(), s0, c0 = rusage_s(RUSAGE_SELF, &s0), t0 = other_threads_cpu_s();
    unsigned long a0 = atomic_load(accepted);
    struct timespec win = {seconds, 0};
    while (nanosleep(&win, &win) < 0 && errno == EINTR)
        ;
    double w1 = now_s(), s1, c1 = rusage_s(RUSAGE_SELF, &s1), t1 = other_threads_cpu_s();
    unsigned long a1 = atomic_load(accepted);

    health_stop(h);
    close(stop[1]);
    waitpid(child, NULL, 0);
    double child_cpu = rusage_s(RUSAGE_CHILDREN, NULL);

    double wall = w1 - w0;
    double cpu = c1 - c0;
    double checks = ttl ? (double)n_inst * wall * 1000.0 / interval : (double)(a1 - a0);
    printf("kind=%s instances=%u interval_ms=%u listeners=%u window_s=%.1f\n", kind, n_inst,
           interval, ttl ? 0 : n_lis, wall);
    printf("add %u instances: %.1f ms\n", n_inst, t_add * 1000);
    printf("checks in window: %.0f (%.0f/s, expected %.0f/s)\n", checks, checks / wall,
           (double)n_inst * 1000.0 / interval);
    printf("process CPU: %.3f s = %.2f%% of one core (user %.3f s, system %.3f s)\n", cpu,
           100.0 * cpu / wall, cpu - (s1 - s0), s1 - s0);
    if (t0 >= 0)
        printf("checker thread CPU (/proc, 10 ms ticks): %.2f s = %.2f%% of one core\n", t1 - t0,
               100.0 * (t1 - t0) / wall);
    if (checks > 0)
        printf("CPU per check: %.1f us\n", cpu * 1e6 / checks);
    printf("listener process CPU (whole run, not the checker): %.3f s\n", child_cpu);
    printf("instances reported failed: %u\n", atomic_load(&fails));

    double pct = 100.0 * cpu / wall, per_check = checks > 0 ? cpu * 1e6 / checks : NAN;
    bench_md(rep,
             "%u %s instances at a %u ms interval (%u listeners in a child process), "
             "measured over %.1f s after a %u ms warm-up: CPU of the process (the checker "
             "thread; the main thread sleeps), checks counted by the listeners.\n\n"
             "| checks | rate | checker CPU (%% of one core) | CPU per check us | user s | "
             "system s | failures |\n|---|---|---|---|---|---|---|\n"
             "| %s | %.0f/s (expected %.0f/s) | %.2f | %.1f | %.3f | %.3f | %u |\n\n",
             n_inst, kind, interval, ttl ? 0 : n_lis, wall, 2 * interval, kind, checks / wall,
             (double)n_inst * 1000.0 / interval, pct, per_check, cpu - (s1 - s0), s1 - s0,
             atomic_load(&fails));
    char rn[128];
    snprintf(rn, sizeof(rn), "checker CPU, %u %s instances @ %u ms", n_inst, kind, interval);
    bench_row(rep, rn, "% of one core", pct, NAN,
              "\"checks_per_s\": %.1f, \"failures\": %u, \"add_ms\": %.1f", checks / wall,
              atomic_load(&fails), t_add * 1000);
    snprintf(rn, sizeof(rn), "CPU per check, %s", kind);
    bench_row(rep, rn, "us", per_check, NAN, NULL);
    /* The CPU figure stands for the target only if the checks really ran at
     * the rate and every instance stayed healthy (a listener that falls
     * behind on a loaded machine makes connects time out: fewer checks). */
    bool at_rate =
        checks / wall >= 0.95 * (double)n_inst * 1000.0 / interval && atomic_load(&fails) == 0;
    if (!at_rate)
        bench_md(rep,
                 "The checks did not run at the intended rate here (%.0f/s of %.0f/s, %u "
                 "instances reported failed: the listener process fell behind on a loaded "
                 "machine), so the CPU figure is not a measurement of that rate.\n\n",
                 checks / wall, (double)n_inst * 1000.0 / interval, atomic_load(&fails));
    if (!http && !ttl && n_inst == 10000 && interval == 1000)
        bench_target(rep, "10k tcp checks/s at a 1 s interval: checker CPU, % of one core",
                     at_rate ? pct : NAN, "<=", 10.0);
    free(argv0);
    if (bench_report_close(rep) < 0)
        return 1;
    return 0; /* failures are reported in the results, not as a crash */
}
