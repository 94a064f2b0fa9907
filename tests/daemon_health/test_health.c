/* SPDX-License-Identifier: MIT */
/*
 * test_health.c — the checker thread (daemon/checks/health.c) against real sockets:
 * TCP listeners that stop listening, a small HTTP server that starts answering
 * 500, TTLs that lapse, and removal.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "health.h"
#include "proc.h"

/* ---- what the checker reported ---------------------------------------------- */

#define MAX_REPORTS 64

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    char ids[MAX_REPORTS][64];
    char reasons[MAX_REPORTS][256];
    int64_t at_ms[MAX_REPORTS];
    int remove_rc[MAX_REPORTS];
    struct health *h;
} rep = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void on_fail(const char *id, const char *reason, void *arg)
{
    /* Runs on the checker thread: record, assert later on the test thread. */
    if (arg != &rep)
        return;
    /* The callback may call back into the checker: the instance is already
     * forgotten, and this must not deadlock. */
    int rc = health_remove(rep.h, id);
    pthread_mutex_lock(&rep.mu);
    if (rep.n < MAX_REPORTS) {
        snprintf(rep.ids[rep.n], sizeof(rep.ids[0]), "%s", id);
        snprintf(rep.reasons[rep.n], sizeof(rep.reasons[0]), "%s", reason);
        rep.at_ms[rep.n] = proc_now_ms();
        rep.remove_rc[rep.n] = rc;
        rep.n++;
    }
    pthread_cond_broadcast(&rep.cv);
    pthread_mutex_unlock(&rep.mu);
}

static int find_report(const char *id)
{
    for (int i = 0; i < rep.n; i++)
        if (strcmp(rep.ids[i], id) == 0)
            return i;
    return -1;
}

/* Index of id's report, or -1 if it was not reported within timeout_ms. */
static int wait_report(const char *id, int timeout_ms)
{
    int64_t end = proc_now_ms() + timeout_ms;
    pthread_mutex_lock(&rep.mu);
    int i;
    while ((i = find_report(id)) < 0 && proc_now_ms() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&rep.cv, &rep.mu, &ts);
    }
    pthread_mutex_unlock(&rep.mu);
    return i;
}

/* Wait (up to timeout_ms) until *v >= min; true if it got there. Tests wait
 * for progress (connections, requests, misses) instead of sleeping a fixed
 * time and hoping the checker kept up on a loaded machine. */
static bool wait_atomic_geq(atomic_int *v, int min, int timeout_ms)
{
    int64_t end = proc_now_ms() + timeout_ms;
    while (atomic_load(v) < min) {
        if (proc_now_ms() >= end)
            return false;
        proc_sleep_ms(5);
    }
    return true;
}

/* Misses of tcp checks counted by the checker so far. */
static uint64_t tcp_misses(void)
{
    struct health_stats st;
    health_get_stats(rep.h, &st);
    return st.failed[HEALTH_TCP];
}

/* Wait (up to timeout_ms) until the checker has counted `min` tcp misses. */
static bool wait_tcp_misses(uint64_t min, int timeout_ms)
{
    int64_t end = proc_now_ms() + timeout_ms;
    while (tcp_misses() < min) {
        if (proc_now_ms() >= end)
            return false;
        proc_sleep_ms(5);
    }
    return true;
}

static bool was_reported(const char *id)
{
    pthread_mutex_lock(&rep.mu);
    bool r = find_report(id) >= 0;
    pthread_mutex_unlock(&rep.mu);
    return r;
}

/* ---- a TCP listener that accepts (and optionally answers HTTP) --------------------- */

struct server {
    int lfd;
    uint16_t port;
    int stop_pipe[2];
    pthread_t thread;
    bool http;
    atomic_int status;   /* HTTP status to answer */
    atomic_int accepted; /* connections accepted */
    atomic_int requests; /* HTTP requests answered */
    char last_request[256];
    pthread_mutex_t mu;
};

static int listen_on(uint16_t port, uint16_t *out_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind: %s", strerror(errno));
    cr_assert(listen(fd, 4096) == 0); /* room for a slow accept thread */
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *out_port = ntohs(sa.sin_port);
    return fd;
}

/* Wait until nothing waits in lfd's accept queue (TCP_INFO's tcpi_unacked
 * is the queue length on a listening socket). */
static bool wait_accept_queue_empty(int lfd, int timeout_ms)
{
    int64_t end = proc_now_ms() + timeout_ms;
    for (;;) {
        struct tcp_info ti;
        socklen_t len = sizeof(ti);
        cr_assert_eq(getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
        if (ti.tcpi_unacked == 0)
            return true;
        if (proc_now_ms() >= end)
            return false;
        proc_sleep_ms(5);
    }
}

static void serve_http(struct server *s, int c)
{
    char buf[2048];
    size_t got = 0;
    struct pollfd p = {.fd = c, .events = POLLIN};
    while (got < sizeof(buf) - 1 && poll(&p, 1, 1000) == 1) {
        ssize_t r = read(c, buf + got, sizeof(buf) - 1 - got);
        if (r <= 0)
            return;
        got += (size_t)r;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    if (!strstr(buf, "\r\n\r\n"))
        return;
    pthread_mutex_lock(&s->mu);
    snprintf(s->last_request, sizeof(s->last_request), "%.*s", (int)strcspn(buf, "\r"), buf);
    pthread_mutex_unlock(&s->mu);
    char resp[128];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 %d Test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                     atomic_load(&s->status));
    ssize_t w = write(c, resp, (size_t)n);
    (void)w;
    atomic_fetch_add(&s->requests, 1);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = s->stop_pipe[0], .events = POLLIN},
                              {.fd = s->lfd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0)
            continue;
        if (p[0].revents)
            return NULL;
        if (p[1].revents & POLLIN) {
            int c = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0)
                continue;
            atomic_fetch_add(&s->accepted, 1);
            if (s->http)
                serve_http(s, c);
            close(c);
        }
    }
}

/* Start a server on `port` (0: any free port). */
static void server_start(struct server *s, bool http, uint16_t port)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->http = http;
    atomic_store(&s->status, 200);
    s->lfd = listen_on(port, &s->port);
    cr_assert(pipe2(s->stop_pipe, O_CLOEXEC) == 0);
    cr_assert(pthread_create(&s->thread, NULL, server_main, s) == 0);
}

/* Stop listening: connects to the port are refused afterwards. */
static void server_stop(struct server *s)
{
    if (s->lfd < 0)
        return;
    ssize_t w = write(s->stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(s->thread, NULL);
    close(s->lfd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    s->lfd = -1;
}

static struct health_check_def tcp_def(uint16_t port, uint32_t interval, uint32_t misses)
{
    struct health_check_def d = {
        .kind = HEALTH_TCP, .interval_ms = interval, .timeout_ms = interval / 2, .misses = misses};
    snprintf(d.target, sizeof(d.target), "127.0.0.1:%u", port);
    return d;
}

static void setup(void)
{
    rep.n = 0;
    rep.h = health_start(on_fail, &rep);
    cr_assert_not_null(rep.h, "health_start: %s", strerror(errno));
}

static void teardown(void)
{
    health_stop(rep.h);
    rep.h = NULL;
}

TestSuite(health, .init = setup, .fini = teardown, .timeout = 60);

/* The checker starts with check-tcp-local = diag (discd's default): local
 * targets are judged from sock_diag, without a connection. Tests of the
 * connect path (they count accepts) switch to connect first. */
static void connect_mode(void)
{
    health_set_tcp_local(rep.h, HEALTH_TCP_LOCAL_CONNECT);
}

/* ---- tcp ------------------------------------------------------------------------ */

Test(health, tcp_listener_that_stops_is_reported_live_one_is_not)
{
    connect_mode(); /* the connect path: counts the listeners' accepts */
    struct server live, dying;
    server_start(&live, false, 0);
    server_start(&dying, false, 0);
    struct health_check_def dl = tcp_def(live.port, 100, 3);
    struct health_check_def dd = tcp_def(dying.port, 100, 3);
    cr_assert_eq(health_add(rep.h, "live", &dl), 0);
    cr_assert_eq(health_add(rep.h, "dying", &dd), 0);
    cr_assert_eq(health_count(rep.h), 2);

    cr_assert(wait_atomic_geq(&dying.accepted, 5, 10000), "checks did not connect (%d)",
              atomic_load(&dying.accepted));
    cr_assert(!was_reported("dying"), "reported while listening");

    int64_t stopped = proc_now_ms();
    server_stop(&dying);
    int i = wait_report("dying", 5000);
    cr_assert(i >= 0, "a listener that stopped listening was not reported");
    /* Three consecutive misses need at least two intervals after the first. */
    cr_assert_geq(rep.at_ms[i] - stopped, 180, "reported after %lld ms, before 3 misses",
                  (long long)(rep.at_ms[i] - stopped));
    cr_assert(strstr(rep.reasons[i], "refused"), "reason: %s", rep.reasons[i]);
    cr_assert_eq(rep.remove_rc[i], -ENOENT, "reported instance still known");

    int before = atomic_load(&live.accepted);
    cr_assert(wait_atomic_geq(&live.accepted, before + 5, 10000),
              "live instance no longer checked");
    cr_assert(!was_reported("live"));
    cr_assert_eq(health_count(rep.h), 1);
    server_stop(&live);
}

Test(health, tcp_short_outage_below_misses_is_not_reported)
{
    connect_mode(); /* the connect path: counts the listeners' accepts */
    struct server s;
    server_start(&s, false, 0);
    uint16_t port = s.port;
    struct health_check_def d = tcp_def(port, 100, 8);
    cr_assert_eq(health_add(rep.h, "flappy", &d), 0);
    cr_assert(wait_atomic_geq(&s.accepted, 3, 10000), "checks did not connect");
    uint64_t misses = tcp_misses();
    server_stop(&s);
    /* three misses of eight, counted by the checker (not guessed from a sleep) */
    cr_assert(wait_tcp_misses(misses + 3, 10000), "the outage was not noticed");
    server_start(&s, false, port);
    /* ten passes after it: as long as 8 misses would have taken */
    cr_assert(wait_atomic_geq(&s.accepted, 10, 10000), "not checked after the outage");
    cr_assert(!was_reported("flappy"));
    server_stop(&s);
}

Test(health, tcp_timeout_counts_as_miss)
{
    connect_mode(); /* the connect path: counts the listeners' accepts */
    /* A listener whose accept queue is full drops SYNs: connect times out. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    cr_assert(listen(fd, 0) == 0);
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    int fill[4];
    for (int k = 0; k < 4; k++) { /* never accepted: fills the queue */
        fill[k] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fill[k], (struct sockaddr *)&sa, sizeof(sa));
    }
    proc_sleep_ms(100);
    struct health_check_def d = tcp_def(ntohs(sa.sin_port), 200, 2);
    d.timeout_ms = 50;
    cr_assert_eq(health_add(rep.h, "stuck", &d), 0);
    int i = wait_report("stuck", 5000);
    cr_assert(i >= 0, "an unanswered connect was not reported");
    cr_assert(strstr(rep.reasons[i], "timed out"), "reason: %s", rep.reasons[i]);
    for (int k = 0; k < 4; k++)
        close(fill[k]);
    close(fd);
}

/* ---- http ---------------------------------------------------------------------- */

Test(health, http_server_returning_500_is_reported)
{
    struct server good, bad;
    server_start(&good, true, 0);
    server_start(&bad, true, 0);
    struct health_check_def d = {
        .kind = HEALTH_HTTP, .interval_ms = 100, .timeout_ms = 80, .misses = 3};
    snprintf(d.path, sizeof(d.path), "/healthz?x=1");
    snprintf(d.target, sizeof(d.target), "127.0.0.1:%u", good.port);
    cr_assert_eq(health_add(rep.h, "good", &d), 0);
    snprintf(d.target, sizeof(d.target), "127.0.0.1:%u", bad.port);
    cr_assert_eq(health_add(rep.h, "bad", &d), 0);

    cr_assert(wait_atomic_geq(&bad.requests, 5, 10000), "no HTTP requests arrived (%d)",
              atomic_load(&bad.requests));
    cr_assert(!was_reported("bad"), "reported while answering 200");
    pthread_mutex_lock(&bad.mu);
    cr_assert(strncmp(bad.last_request, "GET /healthz?x=1 HTTP/1.1", 25) == 0, "request line: %s",
              bad.last_request);
    pthread_mutex_unlock(&bad.mu);

    atomic_store(&bad.status, 500);
    int i = wait_report("bad", 5000);
    cr_assert(i >= 0, "a server answering 500 was not reported");
    cr_assert(strstr(rep.reasons[i], "500"), "reason: %s", rep.reasons[i]);

    int before = atomic_load(&good.requests);
    cr_assert(wait_atomic_geq(&good.requests, before + 5, 10000), "good no longer checked");
    cr_assert(!was_reported("good"));
    server_stop(&good);
    server_stop(&bad);
}

Test(health, http_non_2xx_statuses_fail_and_dead_server_fails)
{
    struct server s;
    server_start(&s, true, 0);
    atomic_store(&s.status, 302);
    struct health_check_def d = {
        .kind = HEALTH_HTTP, .interval_ms = 100, .timeout_ms = 80, .misses = 2};
    snprintf(d.target, sizeof(d.target), "127.0.0.1:%u", s.port);
    cr_assert_eq(health_add(rep.h, "redirect", &d), 0);
    int i = wait_report("redirect", 5000);
    cr_assert(i >= 0);
    cr_assert(strstr(rep.reasons[i], "302"), "reason: %s", rep.reasons[i]);
    pthread_mutex_lock(&s.mu);
    cr_assert(strncmp(s.last_request, "GET / HTTP/1.1", 14) == 0, "%s", s.last_request);
    pthread_mutex_unlock(&s.mu);

    /* Nothing listening any more: connection refused. */
    atomic_store(&s.status, 204);
    int before = atomic_load(&s.requests);
    cr_assert_eq(health_add(rep.h, "gone", &d), 0);
    cr_assert(wait_atomic_geq(&s.requests, before + 4, 10000), "gone was not checked");
    cr_assert(!was_reported("gone"), "204 must pass");
    server_stop(&s);
    cr_assert(wait_report("gone", 5000) >= 0);
}

/* ---- ttl ----------------------------------------------------------------------- */

Test(health, ttl_lapse_is_reported_and_passes_keep_it)
{
    /* ttl 1 s, a pass every 100 ms: a loaded machine may delay a pass by
     * a few hundred ms without the instance lapsing */
    struct health_check_def d = {
        .kind = HEALTH_TTL, .interval_ms = 50, .misses = 2, .ttl_ms = 1000};
    int64_t start = proc_now_ms(); /* before the adds: the ttl runs from no earlier */
    cr_assert_eq(health_add(rep.h, "ttl", &d), 0);
    cr_assert_eq(health_add(rep.h, "ttl-idle", &d), 0);
    int64_t last_pass = start;
    for (int k = 0; k < 25; k++) { /* 2.5 s of passes, 2.5 ttls */
        proc_sleep_ms(100);
        last_pass = proc_now_ms(); /* before the pass: the ttl restarts no earlier */
        cr_assert_eq(health_pass(rep.h, "ttl"), 0);
    }
    cr_assert(!was_reported("ttl"), "passing instance was reported");
    int idle = wait_report("ttl-idle", 5000);
    cr_assert(idle >= 0, "an instance that never passed outlived its ttl");
    cr_assert_geq(rep.at_ms[idle] - start, 1000, "reported before the ttl lapsed");
    cr_assert(strstr(rep.reasons[idle], "ttl"), "reason: %s", rep.reasons[idle]);

    int i = wait_report("ttl", 5000);
    cr_assert(i >= 0, "ttl lapse not reported");
    cr_assert_geq(rep.at_ms[i] - last_pass, 1000, "reported %lld ms after the last pass",
                  (long long)(rep.at_ms[i] - last_pass));
    cr_assert_eq(health_pass(rep.h, "ttl"), -ENOENT, "reported instance was not forgotten");
}

/* ---- remove and API errors ------------------------------------------------------------ */

Test(health, remove_stops_checks)
{
    connect_mode(); /* the connect path: counts the listeners' accepts */
    struct server s;
    server_start(&s, false, 0);
    struct health_check_def d = tcp_def(s.port, 50, 3);
    cr_assert_eq(health_add(rep.h, "r1", &d), 0);
    cr_assert(wait_atomic_geq(&s.accepted, 3, 10000), "r1 was not checked");
    cr_assert_eq(health_remove(rep.h, "r1"), 0);
    cr_assert_eq(health_remove(rep.h, "r1"), -ENOENT);
    cr_assert_eq(health_count(rep.h), 0);
    proc_sleep_ms(100); /* a check in flight at removal may still connect */
    /* ... and wait in the accept queue until the (maybe slow) server takes it */
    cr_assert(wait_accept_queue_empty(s.lfd, 10000), "the server stopped accepting");
    int after = atomic_load(&s.accepted);
    proc_sleep_ms(500);
    cr_assert_eq(atomic_load(&s.accepted), after, "removed instance still checked");

    /* A failing instance removed before its misses add up is never reported. */
    server_stop(&s);
    struct health_check_def dead = tcp_def(s.port, 100, 5);
    uint64_t misses = tcp_misses();
    cr_assert_eq(health_add(rep.h, "r2", &dead), 0);
    cr_assert(wait_tcp_misses(misses + 1, 10000), "r2 was not checked");
    cr_assert_eq(health_remove(rep.h, "r2"), 0);
    proc_sleep_ms(700);
    cr_assert(!was_reported("r2"));

    /* The id can be added again after removal. */
    cr_assert_eq(health_add(rep.h, "r2", &dead), 0);
    cr_assert_eq(health_count(rep.h), 1);
}

Test(health, bad_arguments_are_refused_and_change_nothing)
{
    struct health_check_def ok = tcp_def(9, 1000, 3);
    struct health_check_def d;

    d = ok;
    d.kind = HEALTH_SESSION;
    cr_assert_eq(health_add(rep.h, "x", &d), -EINVAL);
    d.kind = HEALTH_NONE;
    cr_assert_eq(health_add(rep.h, "x", &d), -EINVAL);
    d = ok;
    d.misses = 0;
    cr_assert_eq(health_add(rep.h, "x", &d), -EINVAL);
    d = ok;
    d.timeout_ms = d.interval_ms;
    cr_assert_eq(health_add(rep.h, "x", &d), -EINVAL);
    d = ok;
    d.interval_ms = 0;
    cr_assert_eq(health_add(rep.h, "x", &d), -EINVAL);
    const char *bad_targets[] = {"",    "127.0.0.1",    "127.0.0.1:0", "127.0.0.1:70000",
                                 ":80", "127.0.0.1:8x", "[::1:80",     "no.such.host.invalid:80"};
    for (size_t k = 0; k < sizeof(bad_targets) / sizeof(bad_targets[0]); k++) {
        d = ok;
        snprintf(d.target, sizeof(d.target), "%s", bad_targets[k]);
        cr_assert_eq(health_add(rep.h, "x", &d), -EINVAL, "target '%s' accepted", bad_targets[k]);
    }
    d = ok;
    memset(d.target, 'a', sizeof(d.target)); /* not NUL-terminated */
    cr_assert_eq(health_add(rep.h, "x", &d), -EINVAL);
    d = ok;
    d.kind = HEALTH_HTTP;
    snprintf(d.path, sizeof(d.path), "no-slash");
    cr_assert_eq(health_add(rep.h, "x", &d), -EINVAL);
    snprintf(d.path, sizeof(d.path), "/a b");
    cr_assert_eq(health_add(rep.h, "x", &d), -EINVAL);
    snprintf(d.path, sizeof(d.path), "/");
    snprintf(d.target, sizeof(d.target), "user@host:80");
    cr_assert_eq(health_add(rep.h, "x", &d), -EINVAL);
    d = ok;
    d.kind = HEALTH_TTL;
    d.ttl_ms = 0;
    cr_assert_eq(health_add(rep.h, "x", &d), -EINVAL);
    cr_assert_eq(health_add(rep.h, "", &ok), -EINVAL);
    cr_assert_eq(health_add(rep.h, NULL, &ok), -EINVAL);
    cr_assert_eq(health_add(rep.h, "x", NULL), -EINVAL);
    cr_assert_eq(health_count(rep.h), 0, "a refused add left something behind");

    cr_assert_eq(health_add(rep.h, "x", &ok), 0);
    cr_assert_eq(health_add(rep.h, "x", &ok), -EEXIST);
    cr_assert_eq(health_pass(rep.h, "x"), -EINVAL, "pass on a tcp check");
    cr_assert_eq(health_pass(rep.h, "nope"), -ENOENT);
    cr_assert_eq(health_remove(rep.h, "nope"), -ENOENT);
    cr_assert_eq(health_count(rep.h), 1);
    d = ok;
    snprintf(d.target, sizeof(d.target), "[::1]:9");
    cr_assert_eq(health_add(rep.h, "v6", &d), 0, "bracketed IPv6 target refused");
}

struct churn_arg {
    int base;
    uint16_t port;
};

static atomic_int churn_errors;

/* Adds 250 instances and removes every other one; counts unexpected results
 * (asserting is for the test's own thread). */
static void *churn_main(void *p)
{
    struct churn_arg *a = p;
    char id[32];
    struct health_check_def d = tcp_def(a->port, 100, 3);
    for (int k = 0; k < 250; k++) {
        snprintf(id, sizeof(id), "c%d-%d", a->base, k);
        if (health_add(rep.h, id, &d) != 0)
            atomic_fetch_add(&churn_errors, 1);
    }
    proc_sleep_ms(150); /* let checks be in flight while we remove */
    for (int k = 0; k < 250; k += 2) {
        snprintf(id, sizeof(id), "c%d-%d", a->base, k);
        if (health_remove(rep.h, id) != 0)
            atomic_fetch_add(&churn_errors, 1);
    }
    return NULL;
}

Test(health, concurrent_add_remove_from_several_threads)
{
    connect_mode(); /* the connect path: counts the listeners' accepts */
    struct server s;
    server_start(&s, false, 0);
    enum { THREADS = 4 };
    pthread_t t[THREADS];
    struct churn_arg args[THREADS];
    for (int k = 0; k < THREADS; k++) {
        args[k] = (struct churn_arg){.base = k, .port = s.port};
        cr_assert_eq(pthread_create(&t[k], NULL, churn_main, &args[k]), 0);
    }
    for (int k = 0; k < THREADS; k++)
        pthread_join(t[k], NULL);
    cr_assert_eq(atomic_load(&churn_errors), 0);
    cr_assert_eq(health_count(rep.h), THREADS * 125);
    int before = atomic_load(&s.accepted);
    /* 500 instances at 100 ms: 5,000 connects a second when the machine keeps up */
    cr_assert(wait_atomic_geq(&s.accepted, before + 1000, 20000), "only %d checks ran",
              atomic_load(&s.accepted) - before);
    cr_assert_eq(rep.n, 0, "a live instance was reported: %s", rep.n ? rep.reasons[0] : "");
    server_stop(&s);
}

/* ---- at scale -------------------------------------------------------------------- */

/* 10,000 tcp instances on four live listeners and one dead target, all
 * sharing the checker's pooled sockets (a socket whose connect was refused
 * is reset and reused for a live target, and the other way round): the
 * dead instance is reported with its reason, and no check of a live one
 * ever misses — each live instance is reported at its first miss
 * (misses 1), so one wrong result would show. */
Test(health, ten_thousand_tcp_checks_remove_the_dead_and_keep_the_live, .timeout = 120)
{
    connect_mode(); /* the connect path: counts the listeners' accepts */
    enum { N = 10000, NS = 4 };
    struct server s[NS];
    for (int k = 0; k < NS; k++) {
        server_start(&s[k], false, 0);
        cr_assert(listen(s[k].lfd, 4096) == 0); /* room for a slow accept thread */
    }
    uint16_t dead_port;
    close(listen_on(0, &dead_port)); /* nothing listens there any more */

    struct health_check_def dd = tcp_def(dead_port, 100, 2);
    cr_assert_eq(health_add(rep.h, "dead", &dd), 0);
    for (int i = 0; i < N; i++) {
        struct health_check_def d = tcp_def(s[i % NS].port, 4000, 1);
        d.timeout_ms = 2000;
        char id[32];
        snprintf(id, sizeof(id), "live-%05d", i);
        cr_assert_eq(health_add(rep.h, id, &d), 0);
    }

    int i = wait_report("dead", 30000);
    cr_assert(i >= 0, "the dead instance was not reported");
    cr_assert(strstr(rep.reasons[i], "refused"), "reason: %s", rep.reasons[i]);

    /* Wait until every live instance has been checked at least once (the
     * first checks are spread over one interval). */
    int64_t end = proc_now_ms() + 90000;
    int accepted = 0;
    for (;;) {
        accepted = 0;
        for (int k = 0; k < NS; k++)
            accepted += atomic_load(&s[k].accepted);
        struct health_stats st;
        health_get_stats(rep.h, &st);
        if ((accepted >= N && st.run[HEALTH_TCP] >= (uint64_t)N + 2) || proc_now_ms() > end)
            break;
        proc_sleep_ms(50);
    }
    cr_assert_geq(accepted, N, "only %d connects reached the listeners", accepted);

    struct health_stats st;
    health_get_stats(rep.h, &st);
    pthread_mutex_lock(&rep.mu);
    int n = rep.n;
    char first[64] = "", why[256] = "";
    for (int k = 0; k < rep.n; k++)
        if (strcmp(rep.ids[k], "dead") != 0) {
            snprintf(first, sizeof(first), "%s", rep.ids[k]);
            snprintf(why, sizeof(why), "%s", rep.reasons[k]);
            break;
        }
    pthread_mutex_unlock(&rep.mu);
    cr_assert_eq(n, 1, "%d instances reported; first live one: %s (%s)", n, first, why);
    cr_assert_eq(st.failed[HEALTH_TCP], 2, "misses: %llu (the dead instance's 2 only)",
                 (unsigned long long)st.failed[HEALTH_TCP]);
    cr_assert_geq(st.run[HEALTH_TCP], (uint64_t)N + 2);
    cr_assert_eq(st.reported, 1);
    cr_assert_eq(health_count(rep.h), N);
    for (int k = 0; k < NS; k++)
        server_stop(&s[k]);
}

/* ---- tcp checks of local targets by sock_diag (check-tcp-local = diag) -------------- */

/* A listening socket at addr:port (port 0: any), or -1 with errno. */
static int listen_at(int family, const char *addr, uint16_t port, int backlog, bool v6only,
                     uint16_t *out_port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET6) {
        int on = v6only;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        inet_pton(AF_INET6, addr, &s6->sin6_addr);
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        inet_pton(AF_INET, addr, &s4->sin_addr);
        len = sizeof(*s4);
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *out_port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                         : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* A port nothing listens on (bound, then closed). */
static uint16_t closed_port(void)
{
    uint16_t p;
    int fd = listen_at(AF_INET, "127.0.0.1", 0, 1, false, &p);
    cr_assert(fd >= 0);
    close(fd);
    return p;
}

/* A non-loopback IPv4 address of a local interface, or false. */
static bool iface_addr(char *out, size_t len)
{
    struct ifaddrs *ifa = NULL;
    bool found = false;
    if (getifaddrs(&ifa) < 0)
        return false;
    for (struct ifaddrs *i = ifa; i && !found; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && (i->ifa_flags & IFF_UP) &&
            !(i->ifa_flags & IFF_LOOPBACK))
            found = inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, out,
                              (socklen_t)len) != NULL;
    freeifaddrs(ifa);
    return found;
}

struct verdict {
    char target[80];
    bool expect_pass;
    const char *diag_reason; /* expected in the failure reason with sock_diag */
    const char *conn_reason; /* ... and with connect */
    bool passed;
    char via[16];
    char reason[256];
};

/* Check every target once or more in `mode` (misses 1: any failed check is
 * reported at once) and record what the checker decided. */
static void judge_all(enum health_tcp_local mode, struct verdict *v, int n)
{
    health_set_tcp_local(rep.h, mode);
    for (int k = 0; k < n; k++) {
        struct health_check_def d = {
            .kind = HEALTH_TCP, .interval_ms = 300, .timeout_ms = 150, .misses = 1};
        snprintf(d.target, sizeof(d.target), "%s", v[k].target);
        char id[32];
        snprintf(id, sizeof(id), "j%d-%d", (int)mode, k);
        cr_assert_eq(health_add(rep.h, id, &d), 0, "add %s", v[k].target);
    }
    /* Until every instance's first check has started (they are spread
     * over one interval; a loaded machine may take longer), then until
     * those checks are over (a connect's timeout, with a margin). */
    int64_t end = proc_now_ms() + 20000;
    for (int k = 0; k < n && proc_now_ms() < end;) {
        char id[32];
        snprintf(id, sizeof(id), "j%d-%d", (int)mode, k);
        const char *via = "";
        if (health_tcp_via(rep.h, id, &via) < 0 || *via)
            k++; /* reported (and forgotten), or checked */
        else
            proc_sleep_ms(20);
    }
    proc_sleep_ms(400);
    for (int k = 0; k < n; k++) {
        char id[32];
        snprintf(id, sizeof(id), "j%d-%d", (int)mode, k);
        const char *via = "";
        pthread_mutex_lock(&rep.mu);
        int i = find_report(id);
        if (i >= 0)
            snprintf(v[k].reason, sizeof(v[k].reason), "%s", rep.reasons[i]);
        pthread_mutex_unlock(&rep.mu);
        v[k].passed = i < 0;
        v[k].via[0] = '\0';
        if (i < 0) {
            cr_assert_eq(health_tcp_via(rep.h, id, &via), 0);
            snprintf(v[k].via, sizeof(v[k].via), "%s", via);
            cr_assert_eq(health_remove(rep.h, id), 0);
        }
    }
}

/* After judge_all(mode): each target passed or failed as expected; a pass
 * was decided by mode's own means ("sock_diag" or "connect"), a failure
 * names mode's expected reason (and, with sock_diag, says so). */
static void expect_verdicts(enum health_tcp_local mode, const struct verdict *v, int n)
{
    bool diag = mode == HEALTH_TCP_LOCAL_DIAG;
    const char *name = diag ? "sock_diag" : "connect";
    for (int k = 0; k < n; k++) {
        cr_assert_eq(v[k].passed, v[k].expect_pass, "%s: %s %s (%s)", name, v[k].target,
                     v[k].passed ? "passed" : "failed", v[k].reason);
        if (v[k].passed)
            cr_assert_str_eq(v[k].via, name, "%s", v[k].target);
        else
            cr_assert(strstr(v[k].reason, diag ? v[k].diag_reason : v[k].conn_reason) &&
                          (!diag || strstr(v[k].reason, "sock_diag")),
                      "%s: %s: reason '%s'", name, v[k].target, v[k].reason);
    }
}

Test(health, sock_diag_judges_local_listeners_as_connect_does)
{
    uint16_t pa, pf, pw, pd, p6, px;
    int la = listen_at(AF_INET, "127.0.0.1", 0, 64, false, &pa);
    int lf = listen_at(AF_INET, "127.0.0.1", 0, 1, false, &pf);
    int lw = listen_at(AF_INET, "0.0.0.0", 0, 64, false, &pw);
    int ld = listen_at(AF_INET6, "::", 0, 64, false, &pd);
    int l6 = listen_at(AF_INET6, "::", 0, 64, true, &p6);
    int lx = listen_at(AF_INET, "127.0.0.2", 0, 64, false, &px);
    cr_assert(la >= 0 && lf >= 0 && lw >= 0 && ld >= 0 && l6 >= 0 && lx >= 0, "listeners: %s",
              strerror(errno));
    uint16_t pc = closed_port();
    /* Fill lf's accept queue (backlog 1: full with two waiting): the kernel
     * drops further SYNs, so a connect would time out. */
    struct sockaddr_in sf = {.sin_family = AF_INET, .sin_port = htons(pf)};
    sf.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fill[4];
    for (int k = 0; k < 4; k++) {
        fill[k] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fill[k], (struct sockaddr *)&sf, sizeof(sf));
    }
    proc_sleep_ms(100);

    char ifa[INET_ADDRSTRLEN];
    bool have_ifa = iface_addr(ifa, sizeof(ifa));
    struct verdict v[16];
    int n = 0;
#define V(pass, dr, cr, ...)                                                                       \
    do {                                                                                           \
        v[n] = (struct verdict){.expect_pass = pass, .diag_reason = dr, .conn_reason = cr};        \
        snprintf(v[n].target, sizeof(v[n].target), __VA_ARGS__);                                   \
        n++;                                                                                       \
    } while (0)
    V(true, NULL, NULL, "127.0.0.1:%u", pa);
    V(false, "nothing listens on 127.0.0.1", "refused", "127.0.0.1:%u", pc);
    V(false, "accept queue of 127.0.0.1", "timed out", "127.0.0.1:%u", pf);
    V(true, NULL, NULL, "127.0.0.1:%u", pw);                         /* v4 wildcard */
    V(false, "nothing listens on [::1]", "refused", "[::1]:%u", pw); /* not for IPv6 */
    V(true, NULL, NULL, "127.0.0.1:%u", pd);                         /* dual-stack :: */
    V(true, NULL, NULL, "[::1]:%u", pd);
    V(true, NULL, NULL, "[::ffff:127.0.0.1]:%u", pd);                        /* v4-mapped target */
    V(false, "nothing listens on 127.0.0.1", "refused", "127.0.0.1:%u", p6); /* V6ONLY */
    V(true, NULL, NULL, "[::1]:%u", p6);
    V(false, "nothing listens on 127.0.0.1", "refused", "127.0.0.1:%u", px); /* 127.0.0.2 only */
    V(false, "nothing listens on [::1]", "refused", "[::1]:%u", pa);
    if (have_ifa)
        V(true, NULL, NULL, "%s:%u", ifa, pw); /* a local interface's address */
#undef V

    struct health_stats st0, st1;
    health_get_stats(rep.h, &st0);
    judge_all(HEALTH_TCP_LOCAL_DIAG, v, n);
    health_get_stats(rep.h, &st1);
    expect_verdicts(HEALTH_TCP_LOCAL_DIAG, v, n);
    cr_assert_geq(st1.tcp_diag - st0.tcp_diag, (uint64_t)n);
    cr_assert_eq(st1.tcp_connect, st0.tcp_connect, "a local target was connected to");
    /* No connection reached a listener: nothing waits in its queue. */
    int fl = fcntl(la, F_GETFL);
    fcntl(la, F_SETFL, fl | O_NONBLOCK);
    cr_assert(accept(la, NULL, NULL) < 0 && errno == EAGAIN, "sock_diag connected");

    char why[256];
    health_tcp_local_state(rep.h, why, sizeof(why));
    cr_assert(strncmp(why, "sock_diag (last listing: ", 25) == 0, "%s", why);

    /* The same targets by connect: the same verdicts. */
    judge_all(HEALTH_TCP_LOCAL_CONNECT, v, n);
    expect_verdicts(HEALTH_TCP_LOCAL_CONNECT, v, n);
    health_tcp_local_state(rep.h, why, sizeof(why));
    cr_assert(strstr(why, "connect"), "%s", why);
    for (int k = 0; k < 4; k++)
        close(fill[k]);
    int fds[] = {la, lf, lw, ld, l6, lx};
    for (int k = 0; k < 6; k++)
        close(fds[k]);
}

Test(health, sock_diag_mode_connects_to_targets_that_are_not_local)
{
    /* TEST-NET-2: not an address of this host, whatever its interfaces. */
    struct health_check_def d = {
        .kind = HEALTH_TCP, .interval_ms = 100, .timeout_ms = 50, .misses = 1000};
    snprintf(d.target, sizeof(d.target), "198.51.100.1:9");
    cr_assert_eq(health_add(rep.h, "far", &d), 0);
    const char *via = "";
    int64_t end = proc_now_ms() + 5000;
    while (proc_now_ms() < end && health_tcp_via(rep.h, "far", &via) == 0 && !*via)
        proc_sleep_ms(20);
    cr_assert_str_eq(via, "connect");
    struct health_stats st;
    health_get_stats(rep.h, &st);
    cr_assert_geq(st.tcp_connect, 1);
    cr_assert_eq(st.tcp_diag, 0);
}

/* ---- another uid against a dead service's check -------------------------------------- */

/* A listener owned by uid 65534 (setpriv), in its own process: FAMILY ADDR
 * PORT OPT (v6only, dev=IFNAME or -). Returns its pid once it listens (or
 * -1: *err says why); it exits when *stdin_w is closed. */
static pid_t hostile_listener(const char *family, const char *addr, uint16_t port, const char *opt,
                              int *stdin_w, char *err, size_t errlen)
{
    static const char script[] =
        "import os, socket, sys\n"
        "fam, addr, port, opt = sys.argv[1:5]\n"
        "s = socket.socket(socket.AF_INET6 if fam == '6' else socket.AF_INET)\n"
        "if opt == 'v6only': s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n"
        "if opt.startswith('dev='):\n"
        "    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, opt[4:].encode())\n"
        "try:\n"
        "    s.bind((addr, int(port))); s.listen(16)\n"
        "except OSError as e:\n"
        "    print('error', e, flush=True); sys.exit(1)\n"
        "print('listening uid', os.getuid(), flush=True)\n"
        "sys.stdin.read()\n";
    char ports[16];
    snprintf(ports, sizeof(ports), "%u", port);
    int in[2], out[2];
    cr_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execl("/usr/bin/setpriv", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
              "/usr/bin/python3", "-c", script, family, addr, ports, opt, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    char line[256] = "";
    size_t got = 0;
    struct pollfd p = {.fd = out[0], .events = POLLIN};
    while (got < sizeof(line) - 1 && !strchr(line, '\n') && poll(&p, 1, 10000) == 1) {
        ssize_t r = read(out[0], line + got, sizeof(line) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        line[got] = '\0';
    }
    close(out[0]);
    *stdin_w = in[1];
    if (strncmp(line, "listening uid 65534", 19) != 0) {
        snprintf(err, errlen, "%s", line[0] ? line : "no answer");
        close(in[1]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

static void hostile_stop(pid_t pid, int stdin_w)
{
    close(stdin_w);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* The service's check targets 127.0.0.1:P and the service is gone. Another
 * uid can listen on P anywhere else: on another loopback address, on ::
 * with IPV6_V6ONLY, or on the wildcard bound to another interface. None of
 * these makes the check pass, with sock_diag as with connect. (What it can
 * do — listen on 127.0.0.1:P itself once P is free — passes any tcp check,
 * connect included: docs/DESIGN.md, "tcp checks of local targets".) */
Test(health, another_uid_cannot_make_a_dead_services_check_pass)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to run the attacker as uid 65534");
    char ifname[IF_NAMESIZE] = "";
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) == 0) {
        for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
            if (!(i->ifa_flags & IFF_LOOPBACK) && (i->ifa_flags & IFF_UP)) {
                snprintf(ifname, sizeof(ifname), "%s", i->ifa_name);
                break;
            }
        freeifaddrs(ifa);
    }
    char dev[32];
    snprintf(dev, sizeof(dev), "dev=%s", ifname);
    struct {
        const char *family, *addr, *opt, *reason;
    } attacks[] = {
        {"4", "127.0.0.2", "-", "nothing listens on 127.0.0.1"},
        {"6", "::", "v6only", "nothing listens on 127.0.0.1"},
        {"4", "0.0.0.0", dev, "refused"}, /* bound to a device: connected to */
    };
    int n_attacks = ifname[0] ? 3 : 2;
    for (int a = 0; a < n_attacks; a++) {
        uint16_t port = closed_port();
        int w;
        char err[256];
        pid_t pid = hostile_listener(attacks[a].family, attacks[a].addr, port, attacks[a].opt, &w,
                                     err, sizeof(err));
        cr_assert(pid > 0, "attacker %s %s: %s", attacks[a].addr, attacks[a].opt, err);
        struct health_check_def d = tcp_def(port, 100, 2);
        char id[32];
        snprintf(id, sizeof(id), "victim-%d", a);
        cr_assert_eq(health_add(rep.h, id, &d), 0);
        int i = wait_report(id, 5000);
        hostile_stop(pid, w);
        cr_assert(i >= 0, "uid 65534 listening on %s:%u (%s) made the check pass", attacks[a].addr,
                  port, attacks[a].opt);
        cr_assert(strstr(rep.reasons[i], attacks[a].reason), "attack %d: reason '%s'", a,
                  rep.reasons[i]);
    }

    /* The baseline every tcp check shares: the port itself, once free. */
    uint16_t port = closed_port();
    int w;
    char err[256];
    pid_t pid = hostile_listener("4", "127.0.0.1", port, "-", &w, err, sizeof(err));
    cr_assert(pid > 0, "attacker: %s", err);
    struct verdict v = {.expect_pass = true};
    snprintf(v.target, sizeof(v.target), "127.0.0.1:%u", port);
    judge_all(HEALTH_TCP_LOCAL_DIAG, &v, 1);
    bool by_diag = v.passed;
    judge_all(HEALTH_TCP_LOCAL_CONNECT, &v, 1);
    hostile_stop(pid, w);
    cr_assert(by_diag && v.passed, "the port's holder passes with sock_diag (%d) and connect (%d)",
              by_diag, v.passed);
}
