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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "health.h"

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

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

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
        rep.at_ms[rep.n] = mono_ms();
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
    int64_t end = mono_ms() + timeout_ms;
    pthread_mutex_lock(&rep.mu);
    int i;
    while ((i = find_report(id)) < 0 && mono_ms() < end) {
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
    int64_t end = mono_ms() + timeout_ms;
    while (atomic_load(v) < min) {
        if (mono_ms() >= end)
            return false;
        sleep_ms(5);
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
    int64_t end = mono_ms() + timeout_ms;
    while (tcp_misses() < min) {
        if (mono_ms() >= end)
            return false;
        sleep_ms(5);
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
    int64_t end = mono_ms() + timeout_ms;
    for (;;) {
        struct tcp_info ti;
        socklen_t len = sizeof(ti);
        cr_assert_eq(getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
        if (ti.tcpi_unacked == 0)
            return true;
        if (mono_ms() >= end)
            return false;
        sleep_ms(5);
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

/* ---- tcp ------------------------------------------------------------------------ */

Test(health, tcp_listener_that_stops_is_reported_live_one_is_not)
{
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

    int64_t stopped = mono_ms();
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
    sleep_ms(100);
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
    int64_t start = mono_ms(); /* before the adds: the ttl runs from no earlier */
    cr_assert_eq(health_add(rep.h, "ttl", &d), 0);
    cr_assert_eq(health_add(rep.h, "ttl-idle", &d), 0);
    int64_t last_pass = start;
    for (int k = 0; k < 25; k++) { /* 2.5 s of passes, 2.5 ttls */
        sleep_ms(100);
        last_pass = mono_ms(); /* before the pass: the ttl restarts no earlier */
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
    struct server s;
    server_start(&s, false, 0);
    struct health_check_def d = tcp_def(s.port, 50, 3);
    cr_assert_eq(health_add(rep.h, "r1", &d), 0);
    cr_assert(wait_atomic_geq(&s.accepted, 3, 10000), "r1 was not checked");
    cr_assert_eq(health_remove(rep.h, "r1"), 0);
    cr_assert_eq(health_remove(rep.h, "r1"), -ENOENT);
    cr_assert_eq(health_count(rep.h), 0);
    sleep_ms(100); /* a check in flight at removal may still connect */
    /* ... and wait in the accept queue until the (maybe slow) server takes it */
    cr_assert(wait_accept_queue_empty(s.lfd, 10000), "the server stopped accepting");
    int after = atomic_load(&s.accepted);
    sleep_ms(500);
    cr_assert_eq(atomic_load(&s.accepted), after, "removed instance still checked");

    /* A failing instance removed before its misses add up is never reported. */
    server_stop(&s);
    struct health_check_def dead = tcp_def(s.port, 100, 5);
    uint64_t misses = tcp_misses();
    cr_assert_eq(health_add(rep.h, "r2", &dead), 0);
    cr_assert(wait_tcp_misses(misses + 1, 10000), "r2 was not checked");
    cr_assert_eq(health_remove(rep.h, "r2"), 0);
    sleep_ms(700);
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
    sleep_ms(150); /* let checks be in flight while we remove */
    for (int k = 0; k < 250; k += 2) {
        snprintf(id, sizeof(id), "c%d-%d", a->base, k);
        if (health_remove(rep.h, id) != 0)
            atomic_fetch_add(&churn_errors, 1);
    }
    return NULL;
}

Test(health, concurrent_add_remove_from_several_threads)
{
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
    int64_t end = mono_ms() + 90000;
    int accepted = 0;
    for (;;) {
        accepted = 0;
        for (int k = 0; k < NS; k++)
            accepted += atomic_load(&s[k].accepted);
        struct health_stats st;
        health_get_stats(rep.h, &st);
        if ((accepted >= N && st.run[HEALTH_TCP] >= (uint64_t)N + 2) || mono_ms() > end)
            break;
        sleep_ms(50);
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
