/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_basic.c — a real discd: registrations reach a libdiscshm reader,
 * deregistration removes them (and how fast), the read ops answer, signals
 * behave, and a second discd on the same registry name refuses to start.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon_util.h"

static struct discd_proc d;

static void teardown(void)
{
    dt_finish(&d);
}

TestSuite(daemon_basic, .fini = teardown);

Test(daemon_basic, register_is_visible_to_reader_and_deregister_removes)
{
    struct discd_conn c;
    disc_handle *h = dt_start_conn(&d, "basic", NULL, &c);

    json_t *r = dt_call(&c, "{\"op\":\"register\",\"seq\":7,\"instance\":{\"service\":\"web\","
                            "\"version\":\"1.2\",\"address\":\"10.0.0.1:8080\",\"weight\":25,"
                            "\"az\":\"eu-1a\",\"tags\":{\"env\":\"prod\"},\"endpoints\":[{\"name\":"
                            "\"get\",\"request\":\"GetReq\",\"response\":\"GetResp\",\"mean_us\":"
                            "120,\"p95_us\":400}]},\"check\":{\"type\":\"none\"}}");
    cr_assert(dt_ok(r), "register failed");
    cr_assert_eq(json_integer_value(json_object_get(r, "seq")), 7, "seq is echoed");
    char id[DISC_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r, "id")));
    json_decref(r);

    /* A separate process (this test, not discd) sees it through shared memory. */
    cr_assert_eq(dt_wait_count(h, "web", 1, 2000), 1, "instance not published");
    char buf[8192];
    struct disc_instance *list;
    int n = disc_lookup(h, "web", buf, sizeof(buf), &list, NULL);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(list[0].id, id);
    cr_assert_str_eq(list[0].address, "10.0.0.1:8080");
    cr_assert_str_eq(list[0].version, "1.2");
    cr_assert_str_eq(list[0].az, "eu-1a");
    cr_assert_eq(list[0].weight, 25);
    cr_assert_eq(list[0].origin, DISC_ORIGIN_LOCAL);
    cr_assert_str_eq(disc_instance_tag_get(&list[0], "env"), "prod");
    struct disc_endpoint ep;
    cr_assert_eq(disc_instance_endpoint(&list[0], 0, &ep), 0);
    cr_assert_str_eq(ep.name, "get");
    cr_assert_str_eq(ep.request_type, "GetReq");
    cr_assert_eq(ep.p95_us, 400);

    /* query / services / endpoints / status agree. */
    r = dt_call(&c, "{\"op\":\"query\",\"service\":\"web\"}");
    cr_assert(dt_ok(r));
    json_t *inst = json_array_get(json_object_get(r, "instances"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(inst, "id")), id);
    cr_assert_str_eq(json_string_value(json_object_get(inst, "origin")), "local");
    cr_assert_str_eq(json_string_value(json_object_get(inst, "health")), "passing");
    cr_assert(json_integer_value(json_object_get(inst, "registered_at_ms")) > 0);
    json_decref(r);
    r = dt_call(&c, "{\"op\":\"query\",\"service\":\"nothere\"}");
    cr_assert(dt_ok(r));
    cr_assert_eq(json_array_size(json_object_get(r, "instances")), 0);
    json_decref(r);
    r = dt_call(&c, "{\"op\":\"services\"}");
    cr_assert(dt_ok(r));
    json_t *svc = json_array_get(json_object_get(r, "services"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(svc, "name")), "web");
    cr_assert_eq(json_integer_value(json_object_get(svc, "instances")), 1);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(svc, "versions"), 0)), "1.2");
    json_decref(r);
    r = dt_call(&c, "{\"op\":\"endpoints\"}");
    cr_assert(dt_ok(r));
    json_t *e = json_array_get(json_object_get(r, "endpoints"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(e, "name")), "web.get");
    cr_assert_eq(json_integer_value(json_object_get(e, "mean_us")), 120);
    json_decref(r);
    cr_assert_eq(dt_status_int(&d, "instances"), 1);
    cr_assert_eq(dt_status_int(&d, "local_instances"), 1);
    cr_assert_eq(dt_status_int(&d, "services"), 1);
    cr_assert(dt_status_int(&d, "generation") >= 1);

    /* Deregister: gone from the reader too; a second deregister is not_found. */
    char line[256];
    snprintf(line, sizeof(line), "{\"op\":\"deregister\",\"id\":\"%s\"}", id);
    r = dt_call(&c, line);
    cr_assert(dt_ok(r));
    json_decref(r);
    cr_assert_eq(dt_wait_count(h, "web", 0, 2000), 0, "removal not published");
    r = dt_call(&c, line);
    cr_assert_str_eq(dt_err_code(r), "not_found");
    cr_assert_str_eq(dt_err_field(r), "id");
    json_decref(r);
    discd_conn_close(&c);
    disc_close(h);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

Test(daemon_basic, removal_visibility_latency)
{
    struct discd_conn c;
    disc_handle *h = dt_start_conn(&d, "latency", NULL, &c);
    enum { ROUNDS = 20 };
    long long us[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        char id[DISC_ID_LEN + 1], line[128];
        dt_register(&c, "lat", "127.0.0.1:9000", "{\"type\":\"none\"}", id);
        cr_assert_eq(dt_wait_count(h, "lat", 1, 2000), 1);
        snprintf(line, sizeof(line), "{\"op\":\"deregister\",\"id\":\"%s\"}", id);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cr_assert_eq(discd_conn_send(&c, line), 0);
        /* Spin on the reader: the first moment the removal is visible. */
        int n;
        while ((n = disc_count(h, "lat")) > 0) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            cr_assert((t1.tv_sec - t0.tv_sec) < 5 * dt_slow(), "removal never became visible");
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        us[i] = (t1.tv_sec - t0.tv_sec) * 1000000LL + (t1.tv_nsec - t0.tv_nsec) / 1000;
        char *reply;
        cr_assert(discd_conn_reply(&c, &reply, 5000, 1) > 0);
        cr_assert(strstr(reply, "\"ok\":true"));
        free(reply);
    }
    qsort(us, ROUNDS, sizeof(us[0]), cmp_ll);
    fprintf(stderr, "removal latency: median %lld us, max %lld us\n", us[ROUNDS / 2],
            us[ROUNDS - 1]);
    /* Coalescing waits at most 2 ms; allow generous scheduling noise. */
    cr_assert_lt(us[ROUNDS / 2], 50000LL * dt_slow(), "median removal latency too high");
    discd_conn_close(&c);
    disc_close(h);
}

Test(daemon_basic, sigterm_exits_cleanly_and_removes_socket)
{
    dt_start(&d, "term", NULL);
    struct stat st;
    cr_assert_eq(stat(d.sock, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0666, "default socket mode is 0666");
    int code = discd_proc_stop(&d, 5000 * dt_slow());
    if (code != 0)
        proc_dump_log(&d.proc);
    cr_assert_eq(code, 0, "discd exit code after SIGTERM");
    cr_assert_neq(stat(d.sock, &st), 0, "socket file left behind");
}

Test(daemon_basic, sigint_exits_cleanly)
{
    dt_start(&d, "int", NULL);
    cr_assert_eq(proc_signal(&d.proc, SIGINT), 0);
    cr_assert_eq(proc_wait(&d.proc, 5000 * dt_slow()), 0);
    cr_assert_eq(proc_exit_code(&d.proc), 0);
}

Test(daemon_basic, second_discd_on_same_name_refuses)
{
    dt_start(&d, "dup", NULL);
    struct discd_proc d2;
    cr_assert_eq(discd_proc_init(&d2, "dup2"), 0);
    snprintf(d2.name, sizeof(d2.name), "%s", d.name); /* same registry, other socket */
    cr_assert_eq(discd_proc_spawn(&d2, NULL), 0);
    int rc = proc_wait(&d2.proc, 10000 * dt_slow());
    if (rc != 0) {
        discd_proc_kill(&d2);
        d2.name[0] = '\0'; /* do not unlink the first daemon's segment */
        discd_proc_cleanup(&d2);
        cr_assert_fail("second discd did not exit");
    }
    int code = proc_exit_code(&d2.proc);
    char log[8192] = "";
    FILE *f = fopen(d2.log, "r");
    if (f) {
        size_t n = fread(log, 1, sizeof(log) - 1, f);
        log[n] = '\0';
        fclose(f);
    }
    d2.name[0] = '\0';
    discd_proc_cleanup(&d2);
    cr_assert_eq(code, 1, "exit code of the refused discd");
    cr_assert(strstr(log, "already publishing registry"), "no clear message: %s", log);
    /* The first one is unaffected. */
    cr_assert_eq(dt_status_int(&d, "instances"), 0);
}

Test(daemon_basic, bad_flags_and_help)
{
    cr_assert_eq(discd_proc_init(&d, "flags"), 0);
    char *bad[] = {"--check-interval", "abc", NULL};
    cr_assert_eq(discd_proc_spawn(&d, bad), 0);
    cr_assert_eq(proc_wait(&d.proc, 5000 * dt_slow()), 0);
    cr_assert_eq(proc_exit_code(&d.proc), 1);
    char *help[] = {"--help", NULL};
    cr_assert_eq(discd_proc_spawn(&d, help), 0);
    cr_assert_eq(proc_wait(&d.proc, 5000 * dt_slow()), 0);
    cr_assert_eq(proc_exit_code(&d.proc), 0);
    FILE *f = fopen(d.log, "r");
    cr_assert(f);
    char text[65536];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    const char *flags[] = {"--name",
                           "--socket",
                           "--socket-mode",
                           "--check-interval",
                           "--check-misses",
                           "--max-connections",
                           "--zk",
                           "--zk-root",
                           "--zk-session-timeout",
                           "--host-id",
                           "--az",
                           "--cache-file",
                           "--config",
                           "SIGHUP"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        cr_assert(strstr(text, flags[i]), "--help does not document %s", flags[i]);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

static long long check_interval_of(json_t *r, const char *id)
{
    json_t *arr = json_object_get(r, "instances");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        if (strcmp(json_string_value(json_object_get(o, "id")), id) == 0)
            return json_integer_value(json_object_get(json_object_get(o, "check"), "interval_ms"));
    }
    return -1;
}

Test(daemon_basic, config_file_and_sighup_reload)
{
    cr_assert_eq(discd_proc_init(&d, "hup"), 0);
    char conf[512];
    snprintf(conf, sizeof(conf), "%s/discd.conf", d.dir);
    write_file(conf, "# test config\ncheck-interval = 900\ncheck-misses=4\naz = zone-a\n");
    char *extra[] = {"--config", conf, NULL};
    int rc = discd_proc_start(&d, extra, 10000 * dt_slow());
    if (rc)
        proc_dump_log(&d.proc);
    cr_assert_eq(rc, 0);
    struct discd_conn c;
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    char id1[DISC_ID_LEN + 1], id2[DISC_ID_LEN + 1];
    dt_register(&c, "cfg", "127.0.0.1:1", "{\"type\":\"none\"}", id1);
    write_file(conf, "check-interval = 700\naz = zone-a\n");
    cr_assert_eq(proc_signal(&d.proc, SIGHUP), 0);
    /* The reload is asynchronous: poll until new registrations use it. */
    long long deadline = proc_now_ms() + 5000 * dt_slow(), iv = -1;
    while (proc_now_ms() < deadline) {
        dt_register(&c, "cfg", "127.0.0.1:2", "{\"type\":\"none\"}", id2);
        json_t *r = dt_call(&c, "{\"op\":\"dump\"}");
        iv = check_interval_of(r, id2);
        cr_assert_eq(check_interval_of(r, id1), 900, "config file value not applied");
        cr_assert_str_eq(json_string_value(json_object_get(
                             json_array_get(json_object_get(r, "instances"), 0), "az")),
                         "zone-a");
        json_decref(r);
        if (iv == 700)
            break;
        proc_sleep_ms(20);
    }
    cr_assert_eq(iv, 700, "check-interval not reloaded on SIGHUP");
    cr_assert(proc_alive(&d.proc), "discd died on SIGHUP");
    discd_conn_close(&c);
    cr_assert_eq(discd_proc_stop(&d, 5000 * dt_slow()), 0);
}

Test(daemon_basic, largest_valid_instance_is_published_whole)
{
    dt_start(&d, "maxinst", NULL);
    disc_handle *h = dt_open_reader(&d);
    /* Every field at its maximum: 32 tags (64-byte keys, 255-byte values),
     * 64 endpoints (128-byte names, 255-byte type names). */
    size_t cap = 65536, len = 0;
    char *line = malloc(cap);
    char val[256], key[65], ename[129];
    memset(val, 'v', 255);
    val[255] = '\0';
    len += (size_t)snprintf(line + len, cap - len,
                            "{\"op\":\"register\",\"instance\":{\"service\":\"maxi\",\"version\":"
                            "\"%.64s\",\"address\":\"10.0.0.1:1\",\"tags\":{",
                            val);
    for (int i = 0; i < 32; i++) {
        memset(key, 'k', 64);
        key[64] = '\0';
        snprintf(key, 64, "k%02d", i);
        key[strlen(key)] = 'k'; /* keep 64 bytes: overwrite the NUL snprintf left */
        len += (size_t)snprintf(line + len, cap - len, "%s\"%s\":\"%s\"", i ? "," : "", key, val);
    }
    len += (size_t)snprintf(line + len, cap - len, "},\"endpoints\":[");
    for (int i = 0; i < 64; i++) {
        memset(ename, 'e', 128);
        ename[128] = '\0';
        ename[0] = (char)('A' + i % 26);
        ename[1] = (char)('a' + i / 26);
        len += (size_t)snprintf(line + len, cap - len,
                                "%s{\"name\":\"%s\",\"request\":\"%s\",\"response\":\"%s\","
                                "\"mean_us\":4294967295,\"p95_us\":4294967295}",
                                i ? "," : "", ename, val, val);
    }
    len += (size_t)snprintf(line + len, cap - len, "]},\"check\":{\"type\":\"none\"}}");
    cr_assert_lt(len, 65536, "test document must fit one line (%zu)", len);
    json_t *r = dt_call1(&d, line);
    cr_assert(dt_ok(r), "maximal instance refused: %s", json_dumps(r, 0));
    json_decref(r);
    free(line);
    cr_assert_eq(dt_wait_count(h, "maxi", 1, 2000), 1, "maximal instance not published");
    size_t need = 0;
    struct disc_instance *list;
    char small[64];
    cr_assert_eq(disc_lookup(h, "maxi", small, sizeof(small), &list, &need), -ENOBUFS);
    char *buf = malloc(need);
    cr_assert_eq(disc_lookup(h, "maxi", buf, need, &list, NULL), 1);
    cr_assert_eq(list[0].n_tags, 32);
    cr_assert_eq(list[0].n_endpoints, 64);
    struct disc_endpoint ep;
    cr_assert_eq(disc_instance_endpoint(&list[0], 63, &ep), 0);
    cr_assert_eq(strlen(ep.response_type), 255);
    cr_assert_eq(ep.p95_us, 4294967295u);
    free(buf);
    disc_close(h);
}
