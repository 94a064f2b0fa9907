/* SPDX-License-Identifier: MIT */
/*
 * test_discclient.c — the C client API (libdiscclient) against a real
 * discd: sessions kept by the background thread or by disc_client_process,
 * SIGKILL of a registered process, close, ttl passes, errors.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl_run.h"
#include "daemon_util.h"
#include "discclient.h"
#include "discd_proc.h"
#include "discshm.h"
#include "proc.h"

static struct discd_proc d;
static pid_t child;

static void setup(void)
{
    child = 0;
    dt_start(&d, "cli", NULL);
}

static void teardown(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    dt_finish(&d);
}

TestSuite(discclient, .init = setup, .fini = teardown, .timeout = 120);

/* Short enough for quick tests, with room for a loaded (sanitized) run to
 * answer each ping in time. */
static const struct disc_check_desc fast_session = {
    .type = DISC_CHECK_SESSION, .interval_ms = 200, .timeout_ms = 150, .misses = 2};

static disc_client *connect_or_die(unsigned flags)
{
    disc_client *cl = NULL;
    int rc = disc_client_connect(d.sock, flags, &cl);
    cr_assert_eq(rc, 0, "connect %s: %s", d.sock, disc_client_strerror(rc));
    return cl;
}

Test(discclient, sigkill_of_registered_process_removes_its_instance)
{
    /* A separate program (tests/tools/client_service.c): registers with a
     * 200 ms session and then only sleeps in pause(). */
    struct ctl_bg svc;
    ctl_bg_exec(&svc, (char *const[]){(char *)ctl_helper("client_service"), d.sock, "killed",
                                      "127.0.0.1:7000", "200", NULL});
    child = svc.pid;
    char id[256] = "";
    cr_assert_eq(ctl_bg_line(&svc, id, sizeof(id), 10000 * dt_slow()), 0,
                 "the service did not register");
    cr_assert_eq(strlen(id), DISC_ID_LEN, "%s", id);

    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, "killed", 1, 5000 * dt_slow()), 1);
    char buf[DISC_INSTANCE_BUF_MAX];
    struct disc_instance *in;
    cr_assert_eq(disc_lookup_id(h, id, buf, sizeof(buf), &in, NULL), 0);
    cr_assert_str_eq(in->service, "killed");

    /* Six ping intervals with a main thread that never runs library code. */
    proc_sleep_ms(1200);
    cr_assert_eq(disc_count(h, "killed"), 1, "the background thread did not answer pings");

    long long t0 = proc_now_ms();
    ctl_bg_kill(&svc); /* SIGKILL */
    child = 0;
    cr_assert_eq(dt_wait_count(h, "killed", 0, 3000 * dt_slow()), 0,
                 "instance of a killed process still published");
    cr_assert_eq(disc_lookup_id(h, id, buf, sizeof(buf), &in, NULL), -ENOENT);
    cr_log_info("removed %lld ms after SIGKILL", proc_now_ms() - t0);
    disc_close(h);
}

Test(discclient, manual_mode_needs_process_and_process_keeps_session)
{
    disc_handle *h = dt_open_reader(&d);
    struct disc_instance_desc desc = {.service = "manual", .address = "127.0.0.1:7001"};

    /* Nobody answers: removed after `misses` pings. */
    disc_client *idle = connect_or_die(DISC_CLIENT_MANUAL);
    cr_assert_eq(disc_client_register(idle, &desc, &fast_session, NULL), 0);
    cr_assert_eq(dt_wait_count(h, "manual", 1, 5000 * dt_slow()), 1);
    cr_assert_eq(dt_wait_count(h, "manual", 0, 3000 * dt_slow()), 0,
                 "unanswered session was not removed");

    /* An event loop calling disc_client_process keeps it. */
    disc_client *cl = connect_or_die(DISC_CLIENT_MANUAL);
    char id[DISC_ID_LEN + 1];
    cr_assert_eq(disc_client_register(cl, &desc, &fast_session, id), 0);
    int pings = 0;
    long long end = proc_now_ms() + 1000;
    while (proc_now_ms() < end) {
        struct pollfd p = {.fd = disc_client_fd(cl), .events = POLLIN};
        if (poll(&p, 1, 50) == 1) {
            int n = disc_client_process(cl);
            cr_assert_geq(n, 0, "process: %s", disc_client_strerror(n));
            pings += n;
        }
    }
    cr_assert_geq(pings, 3, "only %d pings answered in 1 s at 200 ms", pings);
    cr_assert_eq(disc_count(h, "manual"), 1, "answered session was removed");
    cr_assert(disc_client_connected(cl));

    /* close: removed at once, no ping interval needed */
    disc_client_close(cl);
    cr_assert_eq(dt_wait_count(h, "manual", 0, 1000 * dt_slow()), 0);
    disc_client_close(idle);
    disc_close(h);
}

Test(discclient, close_keeps_non_session_instances_and_deregister_removes)
{
    disc_handle *h = dt_open_reader(&d);
    disc_client *cl = connect_or_die(0);
    struct disc_tag tags[] = {{"env", "test"}, {"shard", "7"}};
    struct disc_endpoint_desc eps[] = {
        {.name = "Get", .request_type = "GetReq", .response_type = "GetResp", .mean_us = 50}};
    struct disc_instance_desc desc = {.service = "kept",
                                      .version = "3.0",
                                      .az = "z1",
                                      .address = "127.0.0.1:7002",
                                      .weight = 42,
                                      .tags = tags,
                                      .n_tags = 2,
                                      .endpoints = eps,
                                      .n_endpoints = 1};
    struct disc_check_desc none = {.type = DISC_CHECK_NONE};
    char id_none[DISC_ID_LEN + 1], id_sess[DISC_ID_LEN + 1];
    cr_assert_eq(disc_client_register(cl, &desc, &none, id_none), 0);
    cr_assert_eq(disc_client_register(cl, &desc, NULL, id_sess), 0);
    cr_assert_eq(dt_wait_count(h, "kept", 2, 5000 * dt_slow()), 2);

    char buf[DISC_INSTANCE_BUF_MAX];
    struct disc_instance *in;
    cr_assert_eq(disc_lookup_id(h, id_none, buf, sizeof(buf), &in, NULL), 0);
    cr_assert_eq(in->weight, 42);
    cr_assert_str_eq(in->az, "z1");
    cr_assert_str_eq(disc_instance_tag_get(in, "shard"), "7");
    struct disc_endpoint ep;
    cr_assert_eq(disc_instance_endpoint(in, 0, &ep), 0);
    cr_assert_str_eq(ep.response_type, "GetResp");

    disc_client_close(cl);
    cr_assert_eq(dt_wait_count(h, "kept", 1, 3000 * dt_slow()), 1);
    cr_assert_eq(disc_lookup_id(h, id_none, buf, sizeof(buf), &in, NULL), 0,
                 "the none-check instance went away with the connection");

    cl = connect_or_die(0);
    cr_assert_eq(disc_client_deregister(cl, id_none), 0);
    cr_assert_eq(dt_wait_count(h, "kept", 0, 3000 * dt_slow()), 0);
    cr_assert_eq(disc_client_deregister(cl, id_none), -ENOENT);
    char msg[256];
    cr_assert_gt(disc_client_error(cl, msg, sizeof(msg)), 0);
    cr_assert(strstr(msg, "not_found"), "%s", msg);
    disc_client_close(cl);
    disc_close(h);
}

Test(discclient, ttl_passes_keep_the_instance)
{
    disc_handle *h = dt_open_reader(&d);
    disc_client *cl = connect_or_die(0);
    struct disc_instance_desc desc = {.service = "ttl", .address = "127.0.0.1:7003"};
    struct disc_check_desc ttl = {
        .type = DISC_CHECK_TTL, .interval_ms = 100, .timeout_ms = 50, .misses = 1, .ttl_ms = 400};
    char id[DISC_ID_LEN + 1];
    cr_assert_eq(disc_client_register(cl, &desc, &ttl, id), 0);
    for (int k = 0; k < 10; k++) { /* 1.5 s of passes every 150 ms */
        proc_sleep_ms(150);
        cr_assert_eq(disc_client_pass(cl, id), 0);
    }
    cr_assert_eq(disc_count(h, "ttl"), 1, "passing ttl instance was removed");
    cr_assert_eq(dt_wait_count(h, "ttl", 0, 4000 * dt_slow()), 0, "ttl lapse not removed");
    disc_client_close(cl);
    disc_close(h);
}

Test(discclient, errors)
{
    disc_client *cl = NULL;
    char path[300];
    snprintf(path, sizeof(path), "%s/none.sock", d.dir);
    cr_assert_eq(disc_client_connect(path, 0, &cl), -ENOENT);
    cr_assert_eq(disc_client_connect(path, 0x80, &cl), -EINVAL);

    /* A socket file nobody listens on. */
    snprintf(path, sizeof(path), "%s/dead.sock", d.dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cr_assert_lt(strlen(path), sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(disc_client_connect(path, 0, &cl), -ECONNREFUSED);
    close(fd);

    cl = connect_or_die(0);
    char id[DISC_ID_LEN + 1];
    struct disc_instance_desc bad = {.service = "bad name", .address = "127.0.0.1:1"};
    cr_assert_eq(disc_client_register(cl, &bad, NULL, id), -EINVAL);
    char msg[256];
    disc_client_error(cl, msg, sizeof(msg));
    cr_assert(strstr(msg, "instance.service"), "error does not name the field: %s", msg);

    struct disc_instance_desc no_addr = {.service = "x"};
    cr_assert_eq(disc_client_register(cl, &no_addr, NULL, id), -EINVAL);
    struct disc_tag nulltag = {"k", NULL};
    struct disc_instance_desc t = {
        .service = "x", .address = "1.2.3.4:5", .tags = &nulltag, .n_tags = 1};
    cr_assert_eq(disc_client_register(cl, &t, NULL, id), -EINVAL);
    struct disc_check_desc badcheck = {.type = (enum disc_check_type)9};
    struct disc_instance_desc okd = {.service = "x", .address = "1.2.3.4:5"};
    cr_assert_eq(disc_client_register(cl, &okd, &badcheck, id), -EINVAL);

    /* pass on a session instance: refused by the daemon */
    cr_assert_eq(disc_client_register(cl, &okd, NULL, id), 0);
    cr_assert_eq(disc_client_pass(cl, id), -EINVAL);

    /* raw request */
    char *resp = NULL;
    cr_assert_eq(disc_client_request(cl, "{\"op\":\"status\"}", &resp), 0);
    cr_assert(strstr(resp, "\"ok\":true"), "%s", resp);
    free(resp);
    cr_assert_eq(disc_client_request(cl, "{\"op\":\"nope\"}", &resp), 0);
    cr_assert(strstr(resp, "unknown_op"), "%s", resp);
    free(resp);
    cr_assert_eq(disc_client_request(cl, "two\nlines", &resp), -EINVAL);
    disc_client_close(cl);

    /* default path: no socket in $XDG_RUNTIME_DIR/discd -> the system's */
    setenv("XDG_RUNTIME_DIR", "/run/user/1234", 1);
    setenv("DISCSHM_NAME", "fromenv", 1);
    cr_assert_eq(disc_client_default_socket(NULL, path, sizeof(path)), 0);
    cr_assert_str_eq(path, "/run/discd/fromenv.sock");
    cr_assert_eq(disc_client_default_socket("given", path, 10), -ENAMETOOLONG);
    /* a user's own discd: its socket in $XDG_RUNTIME_DIR/discd is taken;
     * a plain file of that name is not a discd */
    char rt[] = "/tmp/dc-xdg-XXXXXX", dir[64], sock[96];
    cr_assert(mkdtemp(rt));
    snprintf(dir, sizeof(dir), "%s/discd", rt);
    snprintf(sock, sizeof(sock), "%s/given.sock", dir);
    cr_assert_eq(mkdir(dir, 0700), 0);
    setenv("XDG_RUNTIME_DIR", rt, 1);
    FILE *f = fopen(sock, "w");
    cr_assert(f);
    fclose(f);
    cr_assert_eq(disc_client_default_socket("given", path, sizeof(path)), 0);
    cr_assert_str_eq(path, "/run/discd/given.sock", "a plain file was taken for a socket");
    cr_assert_eq(unlink(sock), 0);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(disc_client_default_socket("given", path, sizeof(path)), 0);
    cr_assert_str_eq(path, sock);
    /* without $XDG_RUNTIME_DIR: the system's, never /tmp */
    unsetenv("XDG_RUNTIME_DIR");
    cr_assert_eq(disc_client_default_socket("given", path, sizeof(path)), 0);
    cr_assert_str_eq(path, "/run/discd/given.sock");
    close(fd);
    unlink(sock);
    rmdir(dir);
    rmdir(rt);
}

Test(discclient, daemon_restart_is_reported)
{
    disc_client *cl = connect_or_die(DISC_CLIENT_MANUAL);
    struct disc_instance_desc desc = {.service = "r", .address = "127.0.0.1:1"};
    cr_assert_eq(disc_client_register(cl, &desc, NULL, NULL), 0);
    discd_proc_kill(&d);
    /* The connection is gone: process and requests say so. */
    long long end = proc_now_ms() + 3000;
    int rc = 0;
    while (proc_now_ms() < end && (rc = disc_client_process(cl)) >= 0)
        proc_sleep_ms(20);
    cr_assert_eq(rc, -ENOTCONN);
    cr_assert(!disc_client_connected(cl));
    cr_assert_eq(disc_client_register(cl, &desc, NULL, NULL), -ENOTCONN);
    disc_client_close(cl);
    cr_assert_eq(discd_proc_start(&d, NULL, 10000 * dt_slow()), 0, "restart");
}

/* The ids of the local instances of svc, ','-joined in reply order. */
static void ids_of(const char *svc, char *out, size_t len, int *n)
{
    json_t *r = dt_callf(&d, "{\"op\":\"query\",\"service\":\"%s\"}", svc);
    cr_assert(dt_ok(r));
    out[0] = '\0';
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r, "instances"), i, v)
    {
        strncat(out, json_string_value(json_object_get(v, "id")), len - strlen(out) - 2);
        strcat(out, ",");
    }
    *n = (int)json_array_size(json_object_get(r, "instances"));
    json_decref(r);
}

Test(discclient, thread_mode_reattaches_after_a_restart_and_a_lost_client_is_removed)
{
    disc_client *cl = connect_or_die(0);
    struct disc_instance_desc desc = {.service = "ra", .address = "127.0.0.1:1"};
    char s[DISC_ID_LEN + 1], t[DISC_ID_LEN + 1];
    cr_assert_eq(disc_client_register(cl, &desc, &fast_session, s), 0);
    struct discd_conn c; /* a client that will not come back */
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    dt_register(&c, "ra", "127.0.0.1:2", NULL, t);

    discd_proc_kill(&d);
    discd_conn_close(&c);
    proc_sleep_ms(300); /* the client notices and backs off */
    /* The grace period must outlast the client's back-off and reconnect,
     * which a loaded (sanitized) run slows down. */
    const int grace_ms = 1500 * dt_slow();
    char grace[16];
    snprintf(grace, sizeof(grace), "%d", grace_ms);
    char *extra[] = {"--session-grace", grace, NULL};
    cr_assert_eq(discd_proc_start(&d, extra, 10000 * dt_slow()), 0, "restart");
    long long t0 = proc_now_ms();
    char line[80];
    snprintf(line, sizeof(line), "re-attached %s", s);
    while (!dt_log_has(&d, line) && proc_now_ms() < t0 + 5000 * dt_slow())
        proc_sleep_ms(20);
    cr_assert_eq(dt_log_has(&d, line), 1, "the client did not re-attach");
    cr_assert(disc_client_connected(cl));

    /* Past the grace period (discd logs the removal of the lost client's
     * instance once it has removed it; on a loaded machine that can be well
     * after grace_ms): the lost client's instance is gone, ours is there
     * once, with its id, and stays while the thread answers pings. */
    const char *expired = "did not re-attach within the grace period";
    while (!dt_log_has(&d, expired) && proc_now_ms() < t0 + grace_ms + 5000 * dt_slow())
        proc_sleep_ms(20);
    cr_assert(dt_log_has(&d, expired), "the lost client's instance was not removed");
    char ids[512];
    int n;
    ids_of("ra", ids, sizeof(ids), &n);
    cr_assert_eq(n, 1, "instances of ra: %s", ids);
    cr_assert(strncmp(ids, s, DISC_ID_LEN) == 0, "%s instead of %s", ids, s);
    proc_sleep_ms(800);
    ids_of("ra", ids, sizeof(ids), &n);
    cr_assert_eq(n, 1, "the re-attached session was not kept answered");
    char now[DISC_ID_LEN + 1];
    cr_assert_eq(disc_client_instance_id(cl, s, now), 0);
    cr_assert_str_eq(now, s);
    cr_assert_eq(disc_client_deregister(cl, s), 0);
    ids_of("ra", ids, sizeof(ids), &n);
    cr_assert_eq(n, 0);
    disc_client_close(cl);
}

Test(discclient, manual_reconnect_registers_again_when_discd_lost_the_instance)
{
    disc_client *cl = connect_or_die(DISC_CLIENT_MANUAL);
    struct disc_instance_desc desc = {.service = "rr", .address = "127.0.0.1:1"};
    char s[DISC_ID_LEN + 1];
    cr_assert_eq(disc_client_register(cl, &desc, NULL, s), 0);
    discd_proc_kill(&d);
    /* Down: reconnecting fails and says why. */
    cr_assert_eq(disc_client_reconnect(cl), -ECONNREFUSED);
    /* A discd without the old state (e.g. its state directory was lost). */
    char state2[400];
    snprintf(state2, sizeof(state2), "%s/state2", d.dir);
    char *extra[] = {"--state-dir", state2, NULL};
    cr_assert_eq(discd_proc_start(&d, extra, 10000 * dt_slow()), 0, "restart");
    int rc = disc_client_reconnect(cl);
    cr_assert_eq(rc, 1, "reconnect: %d", rc);
    char now[DISC_ID_LEN + 1], ids[512];
    cr_assert_eq(disc_client_instance_id(cl, s, now), 0);
    cr_assert_str_neq(now, s);
    int n;
    ids_of("rr", ids, sizeof(ids), &n);
    cr_assert_eq(n, 1, "%s", ids);
    cr_assert(strncmp(ids, now, DISC_ID_LEN) == 0);
    /* The caller's original id still works. */
    cr_assert_eq(disc_client_deregister(cl, s), 0);
    ids_of("rr", ids, sizeof(ids), &n);
    cr_assert_eq(n, 0);
    cr_assert_eq(disc_client_instance_id(cl, s, now), -ENOENT);
    disc_client_close(cl);
}
