/* SPDX-License-Identifier: MIT */
/*
 * test_discctl_checks.c — checks that behave like an operator expects, on a
 * real discd: a failing check with deregister_after_ms marks the instance
 * critical (kept, out of rotation), passing again restores it, staying
 * critical removes it; the default removes at once; `discctl pass|warn|fail`
 * feed a ttl check (the note shown by get --json); `discctl maint` takes
 * instances out of rotation and back; `discctl watch` shows each
 * transition; refusals name their reason. Every wait polls a libdiscshm
 * reader with a deadline.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ctl_run.h"
#include "daemon_util.h"
#include "discd_proc.h"
#include "discshm.h"

static struct discd_proc d;
static disc_handle *h;

static void setup(void)
{
    dt_start(&d, "checks", NULL);
    h = dt_open_reader(&d);
}

static void teardown(void)
{
    disc_close(h);
    h = NULL;
    ctl_run_release_all();
    dt_finish(&d);
}

TestSuite(discctl_checks, .init = setup, .fini = teardown, .timeout = 120);

/* Published health of id, or -1 if it is not in the segment. */
static int health_of(const char *id)
{
    static unsigned char buf[DISC_INSTANCE_BUF_MAX];
    struct disc_instance *in;
    int rc = disc_lookup_id(h, id, buf, sizeof(buf), &in, NULL);
    return rc == 0 ? in->health : -1;
}

/* Poll until id's health is want (-1: gone); returns the last seen. */
static int wait_health(const char *id, int want, int timeout_ms)
{
    long long end = proc_now_ms() + (long long)timeout_ms * dt_slow();
    int got;
    while ((got = health_of(id)) != want && proc_now_ms() < end)
        proc_sleep_ms(20);
    return got;
}

/* discctl register ARGS...; asserts success; copies the id. */
static void reg(char id[DISC_ID_LEN + 1], const char *const *args)
{
    ctl_register(&d, 10000 * dt_slow(), args, id);
    cr_assert_eq(wait_health(id, DISC_HEALTH_PASSING, 5000), DISC_HEALTH_PASSING);
}
#define REG(id, ...) reg((id), (const char *const[]){__VA_ARGS__, NULL})

/* Run discctl and expect exit code `code`. */
static void expect(int code, const char *const *args)
{
    struct ctl_result r = ctl_run(&d, 10000 * dt_slow(), args);
    cr_assert_eq(r.code, code, "discctl %s %s: exit %d, want %d; stderr: %s", args[0],
                 args[1] ? args[1] : "", r.code, code, r.err);
    ctl_result_free(&r);
}
#define EXPECT(code, ...) expect((code), (const char *const[]){__VA_ARGS__, NULL})

/* The check object get --json --all gives for id (new reference). */
static json_t *check_of(const char *service, const char *id)
{
    struct ctl_result r = CTL(&d, "get", "--json", "--all", service);
    cr_assert_eq(r.code, 0, "get: %s", r.err);
    json_t *j = ctl_json(&r);
    ctl_result_free(&r);
    json_t *found = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "instances"), i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "id")), id) == 0)
            found = json_incref(json_object_get(v, "check"));
    }
    json_decref(j);
    cr_assert(json_is_object(found), "no check object for %s", id);
    return found;
}

static bool log_has(const char *needle)
{
    FILE *f = fopen(d.log, "r");
    char line[2048];
    bool found = false;
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

Test(discctl_checks, ttl_fail_marks_critical_pass_restores_then_deregister_after)
{
    char id[DISC_ID_LEN + 1];
    REG(id, "--service", "web", "--address", "127.0.0.1:8001", "--check", "ttl", "--ttl", "60000",
        "--interval", "100", "--deregister-after", "1500");

    EXPECT(0, "fail", id, "--note", "disk full");
    cr_assert_eq(wait_health(id, DISC_HEALTH_CRITICAL, 5000), DISC_HEALTH_CRITICAL);
    /* Kept, but out of rotation: default get and pick find nothing. */
    struct ctl_result r = CTL(&d, "get", "web");
    cr_assert_eq(r.code, 3);
    cr_assert(strstr(r.err, "1 more not in rotation"), "%s", r.err);
    ctl_result_free(&r);
    EXPECT(3, "pick", "web");
    EXPECT(0, "get", "web", "--all");
    EXPECT(0, "get", "web", "--health", "critical");
    json_t *chk = check_of("web", id);
    cr_assert_str_eq(json_string_value(json_object_get(chk, "status")), "critical");
    cr_assert_str_eq(json_string_value(json_object_get(chk, "note")), "disk full");
    cr_assert_eq(json_integer_value(json_object_get(chk, "deregister_after_ms")), 1500);
    json_decref(chk);

    EXPECT(0, "pass", id, "--note", "cleaned up");
    cr_assert_eq(wait_health(id, DISC_HEALTH_PASSING, 5000), DISC_HEALTH_PASSING);
    EXPECT(0, "get", "web");
    r = CTL(&d, "pick", "web");
    cr_assert_eq(r.code, 0);
    cr_assert_str_eq(r.out, "127.0.0.1:8001\n");
    ctl_result_free(&r);
    chk = check_of("web", id);
    cr_assert_str_eq(json_string_value(json_object_get(chk, "note")), "cleaned up");
    json_decref(chk);

    /* Critical again and left so: removed, but only after it was critical. */
    long long t0 = proc_now_ms();
    EXPECT(0, "fail", id);
    cr_assert_eq(wait_health(id, DISC_HEALTH_CRITICAL, 5000), DISC_HEALTH_CRITICAL);
    cr_assert_eq(wait_health(id, -1, 10000), -1, "still registered after deregister-after");
    cr_assert_geq(proc_now_ms() - t0, 1500, "removed before deregister_after_ms");
    cr_assert(log_has("health passing -> critical"));
    cr_assert(log_has("health critical -> passing"));
    cr_assert(log_has("deregister_after_ms 1500"));
}

Test(discctl_checks, default_is_removal_at_once)
{
    char id[DISC_ID_LEN + 1];
    REG(id, "--service", "web", "--address", "127.0.0.1:8002", "--check", "ttl", "--ttl", "60000",
        "--interval", "100");
    EXPECT(0, "fail", id);
    cr_assert_eq(wait_health(id, -1, 5000), -1,
                 "a failed ttl check without deregister-after "
                 "must remove the instance");
    cr_assert_not(log_has("health passing -> critical"));
}

Test(discctl_checks, warn_stays_in_rotation_with_its_note)
{
    char id[DISC_ID_LEN + 1];
    REG(id, "--service", "web", "--address", "127.0.0.1:8003", "--check", "ttl", "--ttl", "60000",
        "--interval", "100");
    EXPECT(0, "warn", id, "--note", "queue 90% full");
    cr_assert_eq(wait_health(id, DISC_HEALTH_WARNING, 5000), DISC_HEALTH_WARNING);
    EXPECT(0, "get", "web"); /* warning is in rotation */
    EXPECT(0, "pick", "web");
    json_t *chk = check_of("web", id);
    cr_assert_str_eq(json_string_value(json_object_get(chk, "status")), "warning");
    cr_assert_str_eq(json_string_value(json_object_get(chk, "note")), "queue 90% full");
    json_decref(chk);
    struct ctl_result r = CTL(&d, "get", "web");
    cr_assert(strstr(r.out, "NOTE") && strstr(r.out, "queue 90% full"), "%s", r.out);
    ctl_result_free(&r);
    EXPECT(0, "pass", id);
    cr_assert_eq(wait_health(id, DISC_HEALTH_PASSING, 5000), DISC_HEALTH_PASSING);
}

/* A tcp listener on 127.0.0.1:port (0: any); returns the fd, sets *port. */
static int listen_on(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)*port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(fd, 64), 0);
    socklen_t sl = sizeof(sin);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    *port = ntohs(sin.sin_port);
    return fd;
}

Test(discctl_checks, tcp_check_critical_while_down_restored_when_back)
{
    int port = 0;
    int lfd = listen_on(&port);
    char addr[32], id[DISC_ID_LEN + 1];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    REG(id, "--service", "db", "--address", addr, "--check", "tcp", "--interval", "100",
        "--timeout", "50", "--misses", "2", "--deregister-after", "60000");
    close(lfd); /* connection refused from now on */
    cr_assert_eq(wait_health(id, DISC_HEALTH_CRITICAL, 5000), DISC_HEALTH_CRITICAL);
    json_t *chk = check_of("db", id);
    /* A loopback target is judged from sock_diag (check-tcp-local = diag). */
    cr_assert(strstr(json_string_value(json_object_get(chk, "note")), "nothing listens on"),
              "note: %s", json_string_value(json_object_get(chk, "note")));
    cr_assert_str_eq(json_string_value(json_object_get(chk, "via")), "sock_diag");
    json_decref(chk);
    struct ctl_result r = CTL(&d, "status");
    cr_assert(strstr(r.out, "local tcp checks: sock_diag (last listing: "), "%s", r.out);
    ctl_result_free(&r);
    lfd = listen_on(&port);
    cr_assert_eq(wait_health(id, DISC_HEALTH_PASSING, 5000), DISC_HEALTH_PASSING);
    close(lfd);
}

Test(discctl_checks, maint_takes_out_of_rotation_and_back)
{
    char a[DISC_ID_LEN + 1], b[DISC_ID_LEN + 1];
    REG(a, "--service", "api", "--address", "127.0.0.1:9001");
    REG(b, "--service", "api", "--address", "127.0.0.1:9002");
    EXPECT(0, "maint", a, "on", "--reason", "deploying 2.1");
    cr_assert_eq(wait_health(a, DISC_HEALTH_MAINTENANCE, 5000), DISC_HEALTH_MAINTENANCE);
    /* Default get and pick see only b; --all and --health maintenance see a. */
    struct ctl_result r = CTL(&d, "get", "--json", "api");
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, b) && !strstr(r.out, a), "%s", r.out);
    ctl_result_free(&r);
    for (int i = 0; i < 20; i++) {
        r = CTL(&d, "pick", "api");
        cr_assert_str_eq(r.out, "127.0.0.1:9002\n", "picked an instance in maintenance");
        ctl_result_free(&r);
    }
    r = CTL(&d, "get", "api", "--all");
    cr_assert(strstr(r.out, "maintenance") && strstr(r.out, "deploying 2.1"), "%s", r.out);
    ctl_result_free(&r);
    json_t *chk = check_of("api", a);
    cr_assert_str_eq(json_string_value(json_object_get(chk, "maintenance")), "deploying 2.1");
    json_decref(chk);

    /* A whole service, then back. */
    r = CTL(&d, "maint", "--service", "api", "on");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, b), "%s", r.out);
    ctl_result_free(&r);
    cr_assert_eq(wait_health(b, DISC_HEALTH_MAINTENANCE, 5000), DISC_HEALTH_MAINTENANCE);
    EXPECT(3, "pick", "api");
    EXPECT(0, "maint", "--service", "api", "off");
    cr_assert_eq(wait_health(a, DISC_HEALTH_PASSING, 5000), DISC_HEALTH_PASSING);
    cr_assert_eq(wait_health(b, DISC_HEALTH_PASSING, 5000), DISC_HEALTH_PASSING);
    cr_assert(log_has("maintenance on by uid 0: deploying 2.1"));

    /* Refusals say why. */
    r = CTL(&d, "maint", "--service", "nosuch", "on");
    cr_assert_eq(r.code, 3);
    cr_assert(strstr(r.err, "no local instance of service nosuch"), "%s", r.err);
    ctl_result_free(&r);
    r = CTL(&d, "maint", a);
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "on (out of rotation) or off"), "%s", r.err);
    ctl_result_free(&r);
}

Test(discctl_checks, maint_keeps_the_check_running)
{
    char id[DISC_ID_LEN + 1];
    REG(id, "--service", "web", "--address", "127.0.0.1:8004", "--check", "ttl", "--ttl", "60000",
        "--interval", "100", "--deregister-after", "60000");
    EXPECT(0, "maint", id, "on");
    cr_assert_eq(wait_health(id, DISC_HEALTH_MAINTENANCE, 5000), DISC_HEALTH_MAINTENANCE);
    EXPECT(0, "fail", id, "--note", "broken");
    /* The check judges it critical; maintenance still wins. */
    long long end = proc_now_ms() + 5000 * dt_slow();
    json_t *chk = NULL;
    for (;;) {
        chk = check_of("web", id);
        if (strcmp(json_string_value(json_object_get(chk, "status")), "critical") == 0 ||
            proc_now_ms() > end)
            break;
        json_decref(chk);
        proc_sleep_ms(50);
    }
    cr_assert_str_eq(json_string_value(json_object_get(chk, "status")), "critical");
    json_decref(chk);
    cr_assert_eq(health_of(id), DISC_HEALTH_MAINTENANCE);
    /* Out of maintenance it shows what the check says. */
    EXPECT(0, "maint", id, "off");
    cr_assert_eq(wait_health(id, DISC_HEALTH_CRITICAL, 5000), DISC_HEALTH_CRITICAL);
}

Test(discctl_checks, watch_shows_each_transition)
{
    char id[DISC_ID_LEN + 1];
    REG(id, "--service", "web", "--address", "127.0.0.1:8005", "--check", "ttl", "--ttl", "60000",
        "--interval", "100", "--deregister-after", "60000");
    struct ctl_bg w;
    ctl_bg_start(&w, &d, (const char *const[]){"watch", "web", NULL});
    char line[1024];
    cr_assert_eq(ctl_bg_line(&w, line, sizeof(line), 10000 * dt_slow()), 0, "no start line");
    cr_assert(strncmp(line, "# watching web", 14) == 0, "%s", line);
    static const char *const steps[][3] = {
        {"fail", "passing -> critical", NULL},
        {"pass", "critical -> passing", NULL},
        {"maint", "passing -> maintenance", "on"},
        {"maint", "maintenance -> passing", "off"},
    };
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        if (steps[k][2])
            EXPECT(0, steps[k][0], id, steps[k][2]);
        else
            EXPECT(0, steps[k][0], id);
        cr_assert_eq(ctl_bg_line(&w, line, sizeof(line), 10000 * dt_slow()), 0,
                     "watch printed nothing after %s", steps[k][0]);
        char want[160];
        snprintf(want, sizeof(want), "~ %s web health %s", id, steps[k][1]);
        cr_assert_str_eq(line, want);
    }
    ctl_bg_kill(&w);
}

Test(discctl_checks, refusals_name_their_reason)
{
    struct ctl_result r =
        CTL(&d, "register", "--service", "x", "--address", "127.0.0.1:1", "--weight", "0");
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "--weight") && strstr(r.err, "allowed: 1..10000"), "%s", r.err);
    ctl_result_free(&r);
    r = CTL(&d, "register", "--service", "x", "--address", "127.0.0.1:1", "--check", "tcp",
            "--target", "no-such-host.invalid:80");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "refused this check definition: the tcp target does not resolve"), "%s",
              r.err);
    ctl_result_free(&r);
    r = CTL(&d, "register", "--service", "x", "--address", "127.0.0.1:1", "--deregister-after",
            "5000");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "deregister_after_ms applies to tcp, http and ttl checks, not none"),
              "%s", r.err);
    ctl_result_free(&r);

    char id[DISC_ID_LEN + 1];
    REG(id, "--service", "x", "--address", "127.0.0.1:1");
    r = CTL(&d, "pass", id);
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "has a none check, not ttl"), "%s", r.err);
    ctl_result_free(&r);
    r = CTL(&d, "warn", "00000000-0000-4000-8000-000000000000");
    cr_assert_eq(r.code, 3);
    cr_assert(strstr(r.err, "no instance 00000000-0000-4000-8000-000000000000"), "%s", r.err);
    ctl_result_free(&r);
}

Test(discctl_checks, maintenance_survives_a_restart_and_a_crash)
{
    char id[DISC_ID_LEN + 1], other[DISC_ID_LEN + 1];
    REG(id, "--service", "api", "--address", "127.0.0.1:9101");
    REG(other, "--service", "api", "--address", "127.0.0.1:9102");
    EXPECT(0, "maint", id, "on", "--reason", "disk swap");
    cr_assert_eq(wait_health(id, DISC_HEALTH_MAINTENANCE, 5000), DISC_HEALTH_MAINTENANCE);

    /* Clean restart: restored with its id, still out of rotation. */
    cr_assert_eq(discd_proc_stop(&d, 10000 * dt_slow()), 0);
    cr_assert_eq(discd_proc_start(&d, NULL, 10000 * dt_slow()), 0);
    cr_assert_eq(wait_health(id, DISC_HEALTH_MAINTENANCE, 5000), DISC_HEALTH_MAINTENANCE);
    cr_assert_eq(wait_health(other, DISC_HEALTH_PASSING, 5000), DISC_HEALTH_PASSING);
    json_t *chk = check_of("api", id);
    cr_assert_str_eq(json_string_value(json_object_get(chk, "maintenance")), "disk swap");
    json_decref(chk);

    /* Back in rotation, then a crash: the acknowledged "off" is kept too. */
    EXPECT(0, "maint", id, "off");
    cr_assert_eq(wait_health(id, DISC_HEALTH_PASSING, 5000), DISC_HEALTH_PASSING);
    discd_proc_kill(&d);
    cr_assert_eq(discd_proc_start(&d, NULL, 10000 * dt_slow()), 0);
    cr_assert_eq(wait_health(id, DISC_HEALTH_PASSING, 5000), DISC_HEALTH_PASSING);
    struct ctl_result r = CTL(&d, "pick", "api", "--by", "hash", "--key", "k");
    cr_assert_eq(r.code, 0, "%s", r.err);
    ctl_result_free(&r);
}
