/* SPDX-License-Identifier: MIT */
/*
 * test_examples.c — the example programs, run as real processes against a
 * registry published by the test and a real listening TCP socket.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "discshm.h"
#include "gen.h"
#include "proc.h"

static struct seg_writer *w;
static char shm[64], tmpdir[64], logpath[128];
static struct proc pr;
static int lfd = -1;
static int port;
static uint64_t idseed = 99;

static void setup(void)
{
    gen_shm_name(shm, sizeof(shm), "examples");
    cr_assert_eq(segw_open(shm, NULL, &w), 0);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/disc_client_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    snprintf(logpath, sizeof(logpath), "%s/out.log", tmpdir);
    memset(&pr, 0, sizeof(pr));

    /* A real listener on an ephemeral loopback port. */
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    cr_assert_eq(listen(lfd, 8), 0);
    socklen_t sl = sizeof(sin);
    getsockname(lfd, (struct sockaddr *)&sin, &sl);
    port = ntohs(sin.sin_port);
}

static void teardown(void)
{
    proc_kill(&pr);
    if (lfd >= 0)
        close(lfd);
    segw_close(w, true);
    unlink(logpath);
    rmdir(tmpdir);
}

TestSuite(examples, .init = setup, .fini = teardown, .timeout = 60);

static void add(const char *service, const char *address, const char *az, uint8_t health)
{
    struct gen_inst in;
    memset(&in, 0, sizeof(in));
    gen_uuid(&idseed, in.id);
    snprintf(in.service, sizeof(in.service), "%s", service);
    snprintf(in.version, sizeof(in.version), "2.1");
    snprintf(in.host, sizeof(in.host), "host-1");
    snprintf(in.az, sizeof(in.az), "%s", az);
    snprintf(in.address, sizeof(in.address), "%s", address);
    in.weight = 10;
    in.health = health;
    cr_assert_eq(gen_put(w, &in), 0);
}

static void bin(char *out, size_t len, const char *name)
{
    const char *dir = getenv("DISC_BUILD_DIR");
    cr_assert_not_null(dir, "DISC_BUILD_DIR not set (run through ctest)");
    snprintf(out, len, "%s/examples/example_%s", dir, name);
}

/* Start the example with its output going to a fresh log. */
static void spawn(char *const argv[])
{
    unlink(logpath);
    cr_assert_eq(proc_spawn(&pr, argv, NULL, logpath), 0);
}

/* The example's output so far, NUL-terminated in out. */
static void read_log(char *out, size_t len)
{
    FILE *fp = fopen(logpath, "r");
    size_t n = fp ? fread(out, 1, len - 1, fp) : 0;
    out[n] = 0;
    if (fp)
        fclose(fp);
}

static int log_has(const char *needle)
{
    char out[8192];
    read_log(out, sizeof(out));
    return strstr(out, needle) != NULL;
}

/* Poll the log for needle for up to 5 s; whether it came. */
static bool wait_log(const char *needle)
{
    long long t0 = proc_now_ms();
    while (!log_has(needle) && proc_now_ms() - t0 < 5000)
        proc_sleep_ms(10);
    return log_has(needle);
}

/* Run the example to completion; asserts its exit code and, unless needle
 * is NULL, that its output contains needle. */
static void expect_run(char *const argv[], int code, const char *needle)
{
    char out[4096];
    spawn(argv);
    cr_assert_eq(proc_wait(&pr, 10000), 0, "example did not finish");
    int got = proc_exit_code(&pr);
    read_log(out, sizeof(out));
    cr_assert_eq(got, code, "exit %d, output:\n%s", got, out);
    if (needle)
        cr_assert_not_null(strstr(out, needle), "%s", out);
}

Test(examples, resolve_and_connect)
{
    char addr[32], exe[512];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    add("web", addr, "az-a", DISC_HEALTH_PASSING);
    add("web", "127.0.0.1:1", "az-b", DISC_HEALTH_PASSING);  /* nobody listens */
    add("web", "127.0.0.1:2", "az-a", DISC_HEALTH_CRITICAL); /* filtered out */
    cr_assert_gt(segw_commit(w), 0);
    bin(exe, sizeof(exe), "resolve_and_connect");

    char *ok[] = {exe, "-r", shm, "-a", "az-a", "web", NULL};
    expect_run(ok, 0, "connected to");
    cr_assert(log_has(addr), "not connected to %s", addr);
    /* The connection really reached our listener. */
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 2000), 1);
    int c = accept(lfd, NULL, NULL);
    cr_assert_geq(c, 0);
    close(c);

    /* Round robin over both healthy instances: the dead one is retried past. */
    char *any[] = {exe, "-r", shm, "-p", "rr", "web", NULL};
    for (int i = 0; i < 2; i++)
        expect_run(any, 0, NULL);

    char *none[] = {exe, "-r", shm, "-a", "az-nowhere", "web", NULL};
    expect_run(none, 2, "none matches");

    char *missing[] = {exe, "-r", shm, "nosuch", NULL};
    expect_run(missing, 2, "no such service");

    char noreg[96];
    snprintf(noreg, sizeof(noreg), "%s_absent", shm);
    char *unavailable[] = {exe, "-r", noreg, "web", NULL};
    expect_run(unavailable, 3, "unavailable");

    char *dead[] = {exe, "-r", shm, "-a", "az-b", "-p", "hash", "-k", "u1", "web", NULL};
    expect_run(dead, 4, NULL);
}

Test(examples, watch_changes)
{
    add("api", "10.1.0.1:80", "az-a", DISC_HEALTH_PASSING);
    cr_assert_gt(segw_commit(w), 0);
    char exe[512];
    bin(exe, sizeof(exe), "watch_changes");
    char *argv[] = {exe, "-r", shm, "-n", "3", "api", NULL};
    spawn(argv);
    cr_assert(wait_log("has 1 instance(s)"), "initial set not printed");

    /* A change elsewhere is not a change of "api": nothing printed. */
    add("other", "10.9.9.9:1", "", DISC_HEALTH_PASSING);
    cr_assert_gt(segw_commit(w), 0);
    add("api", "10.1.0.2:80", "az-b", DISC_HEALTH_PASSING);
    cr_assert_gt(segw_commit(w), 0);
    wait_log("has 2 instance(s)");
    cr_assert(log_has("10.1.0.2:80"), "second set not printed");
    cr_assert(!log_has("10.9.9.9"));

    add("api", "10.1.0.3:80", "az-b", DISC_HEALTH_WARNING);
    cr_assert_gt(segw_commit(w), 0);
    cr_assert_eq(proc_wait(&pr, 5000), 0, "watcher did not exit after 3 sets");
    cr_assert_eq(proc_exit_code(&pr), 0);
    cr_assert(log_has("has 3 instance(s)"));
    cr_assert(log_has("warning"));
}

Test(examples, resolve_skips_maintenance_and_warns_when_stale)
{
    char addr[32], exe[512];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    add("svc", addr, "az-a", DISC_HEALTH_MAINTENANCE);
    add("svc", "127.0.0.1:3", "az-a", DISC_HEALTH_CRITICAL);
    cr_assert_gt(segw_commit(w), 0);
    bin(exe, sizeof(exe), "resolve_and_connect");

    /* Neither is in rotation. */
    char *dflt[] = {exe, "-r", shm, "-p", "random", "svc", NULL};
    expect_run(dflt, 2, "2 instance(s), none matches");
    /* -c takes any state: a random pick among both until the listener's. */
    char *any[] = {exe, "-r", shm, "-p", "rr", "-c", "svc", NULL};
    expect_run(any, 0, "health maintenance");

    /* The writer says it stopped: the example warns and still connects. */
    segw_mark_stopped(w);
    expect_run(any, 0, "stale (writer-stopped)");
}

Test(examples, watch_changes_reports_a_stopped_writer)
{
    add("api", "10.1.0.1:80", "az-a", DISC_HEALTH_PASSING);
    cr_assert_gt(segw_commit(w), 0);
    char exe[512];
    bin(exe, sizeof(exe), "watch_changes");
    char *argv[] = {exe, "-r", shm, "api", NULL};
    spawn(argv);
    cr_assert(wait_log("has 1 instance(s)"), "initial set not printed");
    segw_mark_stopped(w);
    cr_assert(wait_log("registry stale: writer-stopped"), "stop not reported");
}
