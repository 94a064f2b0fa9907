/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_static.c — static service definitions (--services-dir):
 * registered at start with ids that stay the same across restarts; added,
 * changed and removed files applied on SIGHUP and on the reload op; a bad
 * file or entry reported as FILE:LINE in the log and the reply while the
 * others load, keeping what it had before; never written to the state file;
 * reload refused to other uids.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon_util.h"

static struct discd_proc d;

static void teardown(void)
{
    dt_finish(&d);
}

TestSuite(daemon_static, .fini = teardown);

static void write_def(const char *file, const char *text)
{
    mkdir(d.services_dir, 0755);
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", d.services_dir, file);
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void remove_def(const char *file)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", d.services_dir, file);
    cr_assert_eq(unlink(path), 0);
}

/* "address=id" of every local instance of svc, sorted by address, ';'-joined. */
static char *instances_of(const char *svc)
{
    json_t *r = dt_callf(&d, "{\"op\":\"query\",\"service\":\"%s\"}", svc);
    cr_assert(dt_ok(r));
    static char out[4096];
    char items[32][128];
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(json_object_get(r, "instances"), i, v)
    {
        if (n < 32)
            snprintf(items[n++], sizeof(items[0]), "%s=%s",
                     json_string_value(json_object_get(v, "address")),
                     json_string_value(json_object_get(v, "id")));
    }
    json_decref(r);
    qsort(items, n, sizeof(items[0]), (int (*)(const void *, const void *))strcmp);
    out[0] = '\0';
    for (i = 0; i < n; i++) {
        strcat(out, items[i]);
        strcat(out, ";");
    }
    return out;
}

static int count_of(const char *svc)
{
    json_t *r = dt_callf(&d, "{\"op\":\"query\",\"service\":\"%s\"}", svc);
    int n = (int)json_array_size(json_object_get(r, "instances"));
    json_decref(r);
    return n;
}

#define FIXED_ID "0badc0de-0000-4000-8000-000000000001"

static const char A_JSON[] =
    "[\n"
    "  {\"instance\": {\"service\": \"st-web\", \"address\": \"127.0.0.1:8080\"}},\n"
    "  {\"id\": \"" FIXED_ID "\",\n"
    "   \"instance\": {\"service\": \"st-web\", \"address\": \"127.0.0.1:8081\",\n"
    "                \"tags\": {\"env\": \"prod\"}}}\n"
    "]\n";

/* Entry 2 (line 3) has a weight out of range; entry 1 is fine. */
static const char C_JSON[] =
    "[\n"
    "  {\"instance\": {\"service\": \"st-api\", \"address\": \"127.0.0.1:9090\"},\n"
    "   \"check\": {\"type\": \"ttl\", \"ttl_ms\": 60000}},\n"
    "  {\"instance\": {\"service\": \"st-api\", \"address\": \"127.0.0.1:9091\",\n"
    "                \"weight\": 0}},\n"
    "  {\"instance\": {\"service\": \"st-api\", \"address\": \"127.0.0.1:9092\"},\n"
    "   \"check\": {\"type\": \"session\"}}\n"
    "]\n";

Test(daemon_static, files_restart_sighup_reload)
{
    cr_assert_eq(discd_proc_init(&d, "static"), 0);
    write_def("a.json", A_JSON);
    write_def("b.json", "{\n  \"instance\": {\"service\": \"st-b\",\n  \"address\": }\n}\n");
    write_def("c.json", C_JSON);
    write_def("notes.txt", "not a definition");
    cr_assert_eq(discd_proc_start(&d, NULL, 10000 * dt_slow()), 0);

    /* a: both; b: not JSON at line 3; c: entry 1 only. */
    cr_assert_eq(count_of("st-web"), 2);
    cr_assert_eq(count_of("st-b"), 0);
    cr_assert_eq(count_of("st-api"), 1);
    cr_assert(strstr(instances_of("st-web"), "127.0.0.1:8081=" FIXED_ID ";"));
    cr_assert_eq(dt_log_has(&d, "/b.json:3: not valid JSON"), 1);
    cr_assert_eq(dt_log_has(&d, "/c.json:4: entry 2: instance.weight must be between 1 and 10000"),
                 1);
    cr_assert_eq(dt_log_has(&d, "/c.json:6: entry 3: a session check needs a connection"), 1);
    cr_assert_eq(dt_log_has(&d, "notes.txt"), 0);

    /* Same ids after a restart (derived from file and position), and the
     * static instances are not in the state file: a definition removed while
     * discd is down does not come back from it. */
    char web[4096], api[4096];
    snprintf(web, sizeof(web), "%s", instances_of("st-web"));
    snprintf(api, sizeof(api), "%s", instances_of("st-api"));
    discd_proc_kill(&d);
    cr_assert_eq(discd_proc_start(&d, NULL, 10000 * dt_slow()), 0);
    cr_assert_str_eq(instances_of("st-web"), web);
    cr_assert_str_eq(instances_of("st-api"), api);
    discd_proc_kill(&d);
    remove_def("c.json");
    cr_assert_eq(discd_proc_start(&d, NULL, 10000 * dt_slow()), 0);
    cr_assert_eq(count_of("st-api"), 0, "a static instance came back from the state file");
    cr_assert_str_eq(instances_of("st-web"), web);

    /* SIGHUP: a.json changed (entry 1 moves to :8090, same id), d.json new,
     * b.json still broken. */
    char id0[DISC_ID_LEN + 1];
    snprintf(id0, sizeof(id0), "%.36s", strchr(web, '=') + 1);
    char changed[1024];
    snprintf(changed, sizeof(changed), "%s", A_JSON);
    memcpy(strstr(changed, "8080"), "8090", 4);
    write_def("a.json", changed);
    write_def("d.json",
              "{\"instance\": {\"service\": \"st-d\", \"address\": \"127.0.0.1:7000\"}}\n");
    cr_assert_eq(proc_signal(&d.proc, SIGHUP), 0);
    long long deadline = proc_now_ms() + 5000 * dt_slow();
    while (count_of("st-d") != 1 && proc_now_ms() < deadline)
        proc_sleep_ms(20);
    cr_assert_eq(count_of("st-d"), 1, "SIGHUP did not apply a new file");
    char *now = instances_of("st-web");
    cr_assert(strstr(now, id0) && strstr(now, "127.0.0.1:8090") && !strstr(now, ":8080"),
              "changed definition not applied with the same id: %s", now);
    cr_assert_eq(dt_log_has(&d, "1 added, 1 changed, 0 removed, 1 unchanged, 1 errors"), 1);

    /* reload op: b fixed, d broken (keeps its instance), a removed. */
    write_def("b.json", "{\"instance\": {\"service\": \"st-b\", \"address\": \"127.0.0.1:6000\"}}");
    write_def("d.json", "{\"instance\": {\"service\": \"st-d\", \"address\": \"127.0.0.1:7000\"},\n"
                        " \"check\": {\"type\": \"ping\"}}\n");
    remove_def("a.json");
    json_t *r = dt_call1(&d, "{\"op\":\"reload\"}");
    cr_assert(dt_ok(r), "%s", json_dumps(r, 0));
    cr_assert_eq(json_integer_value(json_object_get(r, "added")), 1);
    cr_assert_eq(json_integer_value(json_object_get(r, "removed")), 2);
    cr_assert_eq(json_integer_value(json_object_get(r, "static")), 2); /* b, and d kept */
    json_t *errs = json_object_get(r, "errors");
    cr_assert_eq(json_array_size(errs), 1, "%s", json_dumps(r, 0));
    const char *e = json_string_value(json_array_get(errs, 0));
    cr_assert(strstr(e, "/d.json:1: entry 1: check.type must be one of"), "%s", e);
    json_decref(r);
    cr_assert_eq(count_of("st-web"), 0);
    cr_assert_eq(count_of("st-b"), 1);
    cr_assert_eq(count_of("st-d"), 1, "a definition in error lost its instance");

    /* Only root or discd's uid may reload. */
    if (geteuid() == 0)
        cr_assert_eq(dt_run_as(&d, 65534, "{\"op\":\"reload\"}", "forbidden", NULL), 0);
}
