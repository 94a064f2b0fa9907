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

/* Run the example to completion; returns its exit code, log in out. */
static int run(char *const argv[], char *out, size_t outlen)
{
    unlink(logpath);
    cr_assert_eq(proc_spawn(&pr, argv, NULL, logpath), 0);
    cr_assert_eq(proc_wait(&pr, 10000), 0, "example did not finish");
    int code = proc_exit_code(&pr);
    FILE *fp = fopen(logpath, "r");
    size_t n = fp ? fread(out, 1, outlen - 1, fp) : 0;
    out[n] = 0;
    if (fp)
        fclose(fp);
    return code;
}

Test(examples, resolve_and_connect)
{
    char addr[32], out[4096], exe[512];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    add("web", addr, "az-a", DISC_HEALTH_PASSING);
    add("web", "127.0.0.1:1", "az-b", DISC_HEALTH_PASSING);  /* nobody listens */
    add("web", "127.0.0.1:2", "az-a", DISC_HEALTH_CRITICAL); /* filtered out */
    cr_assert_gt(segw_commit(w), 0);
    bin(exe, sizeof(exe), "resolve_and_connect");

    char *ok[] = {exe, "-r", shm, "-a", "az-a", "web", NULL};
    int code = run(ok, out, sizeof(out));
    cr_assert_eq(code, 0, "exit %d, output:\n%s", code, out);
    cr_assert_not_null(strstr(out, "connected to"), "%s", out);
    cr_assert_not_null(strstr(out, addr), "%s", out);
    /* The connection really reached our listener. */
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 2000), 1);
    int c = accept(lfd, NULL, NULL);
    cr_assert_geq(c, 0);
    close(c);

    /* Round robin over both healthy instances: the dead one is retried past. */
    char *any[] = {exe, "-r", shm, "-p", "rr", "web", NULL};
    for (int i = 0; i < 2; i++) {
        code = run(any, out, sizeof(out));
        cr_assert_eq(code, 0, "exit %d, output:\n%s", code, out);
    }

    char *none[] = {exe, "-r", shm, "-a", "az-nowhere", "web", NULL};
    code = run(none, out, sizeof(out));
    cr_assert_eq(code, 2, "exit %d, output:\n%s", code, out);
    cr_assert_not_null(strstr(out, "none matches"), "%s", out);

    char *missing[] = {exe, "-r", shm, "nosuch", NULL};
    code = run(missing, out, sizeof(out));
    cr_assert_eq(code, 2, "exit %d, output:\n%s", code, out);
    cr_assert_not_null(strstr(out, "no such service"), "%s", out);

    char noreg[96];
    snprintf(noreg, sizeof(noreg), "%s_absent", shm);
    char *unavailable[] = {exe, "-r", noreg, "web", NULL};
    code = run(unavailable, out, sizeof(out));
    cr_assert_eq(code, 3, "exit %d, output:\n%s", code, out);
    cr_assert_not_null(strstr(out, "unavailable"), "%s", out);

    char *dead[] = {exe, "-r", shm, "-a", "az-b", "-p", "hash", "-k", "u1", "web", NULL};
    code = run(dead, out, sizeof(out));
    cr_assert_eq(code, 4, "exit %d, output:\n%s", code, out);
}

static int log_has(const char *needle)
{
    char out[8192];
    FILE *fp = fopen(logpath, "r");
    size_t n = fp ? fread(out, 1, sizeof(out) - 1, fp) : 0;
    out[n] = 0;
    if (fp)
        fclose(fp);
    return strstr(out, needle) != NULL;
}

Test(examples, watch_changes)
{
    add("api", "10.1.0.1:80", "az-a", DISC_HEALTH_PASSING);
    cr_assert_gt(segw_commit(w), 0);
    char exe[512];
    bin(exe, sizeof(exe), "watch_changes");
    char *argv[] = {exe, "-r", shm, "-n", "3", "api", NULL};
    unlink(logpath);
    cr_assert_eq(proc_spawn(&pr, argv, NULL, logpath), 0);
    long long t0 = proc_now_ms();
    while (!log_has("has 1 instance(s)") && proc_now_ms() - t0 < 5000)
        proc_sleep_ms(10);
    cr_assert(log_has("has 1 instance(s)"), "initial set not printed");

    /* A change elsewhere is not a change of "api": nothing printed. */
    add("other", "10.9.9.9:1", "", DISC_HEALTH_PASSING);
    cr_assert_gt(segw_commit(w), 0);
    add("api", "10.1.0.2:80", "az-b", DISC_HEALTH_PASSING);
    cr_assert_gt(segw_commit(w), 0);
    t0 = proc_now_ms();
    while (!log_has("has 2 instance(s)") && proc_now_ms() - t0 < 5000)
        proc_sleep_ms(10);
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
    char addr[32], out[4096], exe[512];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    add("svc", addr, "az-a", DISC_HEALTH_MAINTENANCE);
    add("svc", "127.0.0.1:3", "az-a", DISC_HEALTH_CRITICAL);
    cr_assert_gt(segw_commit(w), 0);
    bin(exe, sizeof(exe), "resolve_and_connect");

    /* Neither is in rotation. */
    char *dflt[] = {exe, "-r", shm, "-p", "random", "svc", NULL};
    int code = run(dflt, out, sizeof(out));
    cr_assert_eq(code, 2, "exit %d, output:\n%s", code, out);
    cr_assert_not_null(strstr(out, "2 instance(s), none matches"), "%s", out);
    /* -c takes any state: a random pick among both until the listener's. */
    char *any[] = {exe, "-r", shm, "-p", "rr", "-c", "svc", NULL};
    code = run(any, out, sizeof(out));
    cr_assert_eq(code, 0, "exit %d, output:\n%s", code, out);
    cr_assert_not_null(strstr(out, "health maintenance"), "%s", out);

    /* The writer says it stopped: the example warns and still connects. */
    segw_mark_stopped(w);
    code = run(any, out, sizeof(out));
    cr_assert_eq(code, 0, "exit %d, output:\n%s", code, out);
    cr_assert_not_null(strstr(out, "stale (writer-stopped)"), "%s", out);
}

Test(examples, watch_changes_reports_a_stopped_writer)
{
    add("api", "10.1.0.1:80", "az-a", DISC_HEALTH_PASSING);
    cr_assert_gt(segw_commit(w), 0);
    char exe[512];
    bin(exe, sizeof(exe), "watch_changes");
    char *argv[] = {exe, "-r", shm, "api", NULL};
    unlink(logpath);
    cr_assert_eq(proc_spawn(&pr, argv, NULL, logpath), 0);
    long long t0 = proc_now_ms();
    while (!log_has("has 1 instance(s)") && proc_now_ms() - t0 < 5000)
        proc_sleep_ms(10);
    cr_assert(log_has("has 1 instance(s)"), "initial set not printed");
    segw_mark_stopped(w);
    t0 = proc_now_ms();
    while (!log_has("registry stale: writer-stopped") && proc_now_ms() - t0 < 5000)
        proc_sleep_ms(10);
    cr_assert(log_has("registry stale: writer-stopped"), "stop not reported");
}
