/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_session.c — session checks and SO_PEERCRED permissions with a
 * real discd: closing the registering connection removes its instances at
 * once; unanswered pings remove them after `misses`; answered pings keep
 * them; only the registering uid (or root) may deregister or pass.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon_util.h"

static struct discd_proc d;

static void teardown(void)
{
    dt_finish(&d);
}

TestSuite(daemon_session, .fini = teardown);

Test(daemon_session, connection_close_removes_session_instances)
{
    struct discd_conn a, b;
    disc_handle *h = dt_start_conn(&d, "sclose", NULL, &a);
    cr_assert_eq(discd_conn_open(&d, &b), 0);
    char ida[DISC_ID_LEN + 1], ida2[DISC_ID_LEN + 1], idb[DISC_ID_LEN + 1];
    dt_register(&a, "sess", "127.0.0.1:1001", NULL, ida); /* default check: session */
    dt_register(&a, "sess", "127.0.0.1:1002", "{\"type\":\"session\"}", ida2);
    dt_register(&b, "sess", "127.0.0.1:1003", NULL, idb);
    cr_assert_eq(dt_wait_count(h, "sess", 3, 2000), 3);

    long long t0 = proc_now_ms();
    discd_conn_close(&a);
    cr_assert_eq(dt_wait_count(h, "sess", 1, 2000), 1, "closing did not remove both instances");
    long long dt = proc_now_ms() - t0;
    fprintf(stderr, "session close -> removal visible in %lld ms\n", dt);
    /* "at once": well below one check interval (1000 ms by default). */
    cr_assert_lt(dt, 500 * dt_slow());
    char buf[4096];
    struct disc_instance *list;
    cr_assert_eq(disc_lookup(h, "sess", buf, sizeof(buf), &list, NULL), 1);
    cr_assert_str_eq(list[0].id, idb, "the other connection's instance must stay");
    discd_conn_close(&b);
    cr_assert_eq(dt_wait_count(h, "sess", 0, 2000), 0);
    disc_close(h);
}

Test(daemon_session, unanswered_pings_remove_after_misses)
{
    struct discd_conn a;
    disc_handle *h = dt_start_conn(&d, "smiss", NULL, &a);
    char id[DISC_ID_LEN + 1];
    long long t0 = proc_now_ms();
    dt_register(&a, "deaf", "127.0.0.1:1",
                "{\"type\":\"session\",\"interval_ms\":100,\"timeout_ms\":50,\"misses\":3}", id);
    cr_assert_eq(dt_wait_count(h, "deaf", 1, 2000), 1);
    /* We read nothing from now on, so no ping is answered. Three pings at
     * ~100/200/300 ms, each missed 50 ms later: removal no earlier than ~350 ms. */
    while (proc_now_ms() - t0 < 200)
        proc_sleep_ms(5);
    cr_assert_eq(disc_count(h, "deaf"), 1, "removed before `misses` pings were missed");
    cr_assert_eq(dt_wait_count(h, "deaf", 0, 3000), 0, "unanswered session not removed");
    long long elapsed = proc_now_ms() - t0;
    fprintf(stderr, "3 unanswered pings (100 ms interval) -> removed after %lld ms\n", elapsed);
    cr_assert_geq(elapsed, 300);

    /* The connection itself stays open, and it did receive the pings. */
    char *line = NULL;
    int n = discd_conn_read_line(&a, &line, 1000);
    cr_assert_gt(n, 0);
    cr_assert(strstr(line, "\"event\":\"ping\""), "expected a ping, got %s", line);
    free(line);
    discd_conn_close(&a);
    disc_close(h);
}

Test(daemon_session, answered_pings_keep_the_instance)
{
    struct discd_conn a;
    disc_handle *h = dt_start_conn(&d, "sans", NULL, &a);
    char id[DISC_ID_LEN + 1];
    dt_register(&a, "alive", "127.0.0.1:1",
                "{\"type\":\"session\",\"interval_ms\":100,\"timeout_ms\":60,\"misses\":2}", id);
    long long until = proc_now_ms() + 1200;
    unsigned pings = 0;
    while (proc_now_ms() < until) {
        char *line = NULL;
        int n = discd_conn_read_line(&a, &line, 50);
        if (n > 0) {
            cr_assert(strstr(line, "\"event\":\"ping\""));
            const char *s = strstr(line, "\"seq\":");
            cr_assert(s);
            char pong[64];
            snprintf(pong, sizeof(pong), "{\"op\":\"pong\",\"seq\":%lld}",
                     strtoll(s + 6, NULL, 10));
            cr_assert_eq(discd_conn_send(&a, pong), 0);
            pings++;
        }
        free(line);
    }
    cr_assert_geq(pings, 5, "expected about 12 pings, got %u", pings);
    cr_assert_eq(disc_count(h, "alive"), 1, "an answering session was removed");
    /* A pong gets no response line: the next line is the status reply. */
    json_t *r = dt_call(&a, "{\"op\":\"status\"}");
    cr_assert(dt_ok(r));
    json_decref(r);
    discd_conn_close(&a);
    disc_close(h);
}

Test(daemon_session, only_owner_or_root_may_deregister_or_pass)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to run children as other uids");
    dt_start(&d, "perm", NULL);
    struct discd_conn c;
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    char root_id[DISC_ID_LEN + 1];
    dt_register(&c, "perm", "127.0.0.1:1", "{\"type\":\"none\"}", root_id);
    char *before = dt_dump_canonical(&d);

    char line[256];
    snprintf(line, sizeof(line), "{\"op\":\"deregister\",\"id\":\"%s\"}", root_id);
    cr_assert_eq(dt_run_as(&d, 65534, line, "forbidden", NULL), 0,
                 "nobody deregistered root's instance");
    snprintf(line, sizeof(line), "{\"op\":\"pass\",\"id\":\"%s\"}", root_id);
    cr_assert_eq(dt_run_as(&d, 65534, line, "forbidden", NULL), 0, "nobody passed root's instance");
    char *after = dt_dump_canonical(&d);
    cr_assert_str_eq(before, after, "registry changed after a forbidden request");
    free(before);
    free(after);

    /* nobody registers (socket mode 0666 allows it); another uid may not
     * deregister it; the owner may, and root may. */
    char nb_id[DISC_ID_LEN + 1] = "", nb_id2[DISC_ID_LEN + 1] = "";
    const char *reg = "{\"op\":\"register\",\"instance\":{\"service\":\"perm\",\"address\":"
                      "\"127.0.0.1:2\"},\"check\":{\"type\":\"none\"}}";
    cr_assert_eq(dt_run_as(&d, 65534, reg, NULL, nb_id), 0);
    cr_assert_eq(strlen(nb_id), DISC_ID_LEN);
    cr_assert_eq(dt_run_as(&d, 65534, reg, NULL, nb_id2), 0);
    snprintf(line, sizeof(line), "{\"op\":\"deregister\",\"id\":\"%s\"}", nb_id);
    cr_assert_eq(dt_run_as(&d, 65533, line, "forbidden", NULL), 0,
                 "uid 65533 deregistered nobody's");
    cr_assert_eq(dt_run_as(&d, 65534, line, NULL, NULL), 0, "the owner could not deregister");
    json_t *r = dt_callf(&d, "{\"op\":\"deregister\",\"id\":\"%s\"}", nb_id2);
    cr_assert(dt_ok(r), "root could not deregister another uid's instance");
    json_decref(r);
    cr_assert_eq(dt_status_int(&d, "local_instances"), 1);
    discd_conn_close(&c);
}

Test(daemon_session, socket_mode_is_configurable)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to run children as other uids");
    cr_assert_eq(discd_proc_init(&d, "smode"), 0);
    char *extra[] = {"--socket-mode", "0600", NULL};
    cr_assert_eq(discd_proc_start(&d, extra, 10000 * dt_slow()), 0);
    pid_t pid = fork();
    if (pid == 0) {
        if (setresuid(65534, 65534, 65534) < 0)
            _exit(10);
        struct discd_conn c;
        _exit(discd_conn_open(&d, &c) == -EACCES ? 0 : 1);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mode 0600 let another uid connect");
}

/* A listening TCP socket on 127.0.0.1; *port receives its port. */
static int listen_tcp(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 64), 0);
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

Test(daemon_session, health_checker_failures_remove_instances)
{
    struct discd_conn c;
    disc_handle *h = dt_start_conn(&d, "hchk", NULL, &c);
    int port;
    int lfd = listen_tcp(&port);
    char addr[64], tcp_id[DISC_ID_LEN + 1], ttl_id[DISC_ID_LEN + 1];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    dt_register(&c, "tcpchk", addr,
                "{\"type\":\"tcp\",\"interval_ms\":100,\"timeout_ms\":50,"
                "\"misses\":2}",
                tcp_id);
    dt_register(&c, "ttlchk", addr,
                "{\"type\":\"ttl\",\"ttl_ms\":400,\"interval_ms\":100,"
                "\"misses\":1}",
                ttl_id);
    char pass[128];
    snprintf(pass, sizeof(pass), "{\"op\":\"pass\",\"id\":\"%s\"}", ttl_id);
    /* Live: the listener accepts (backlog) and the ttl is passed in time. */
    for (int i = 0; i < 8; i++) {
        json_t *r = dt_call(&c, pass);
        cr_assert(dt_ok(r), "pass failed");
        json_decref(r);
        proc_sleep_ms(100);
    }
    cr_assert_eq(disc_count(h, "tcpchk"), 1, "live tcp instance removed");
    cr_assert_eq(disc_count(h, "ttlchk"), 1, "passed ttl instance removed");
    /* Dead: stop listening, stop passing. */
    close(lfd);
    cr_assert_eq(dt_wait_count(h, "tcpchk", 0, 5000), 0, "dead tcp instance kept");
    cr_assert_eq(dt_wait_count(h, "ttlchk", 0, 5000), 0, "lapsed ttl instance kept");
    cr_assert_eq(dt_status_int(&d, "local_instances"), 0);
    /* The removal went through the registry: pass now says not_found. */
    json_t *r = dt_call(&c, pass);
    cr_assert_str_eq(dt_err_code(r), "not_found");
    json_decref(r);
    discd_conn_close(&c);
    disc_close(h);
}
