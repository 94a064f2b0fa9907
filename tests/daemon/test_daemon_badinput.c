/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_badinput.c — table-driven bad input against a real discd.
 * Every case must get a JSON error with the expected code (and field), the
 * daemon must keep serving, and the registry (dump) must be unchanged.
 * Also: lines that never end, oversized lines, thousands of idle
 * connections (no CPU), the connection limit.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "daemon_util.h"

static struct discd_proc d;

static void teardown(void)
{
    dt_finish(&d);
}

TestSuite(daemon_badinput, .fini = teardown);

struct bad_case {
    const char *name;
    const char *line; /* sent followed by "\n" unless generated */
    const char *code;
    const char *field; /* NULL: not checked; "" : must be absent */
};

#define REG(inst)       "{\"op\":\"register\",\"instance\":" inst "}"
#define REGC(inst, chk) "{\"op\":\"register\",\"instance\":" inst ",\"check\":" chk "}"
#define OKI             "{\"service\":\"s\",\"address\":\"127.0.0.1:80\"}"

static const struct bad_case cases[] = {
    {"not json", "hello world", "bad_json", ""},
    {"truncated object", "{\"op\":\"status\"", "bad_json", ""},
    {"scalar", "42", "bad_json", ""},
    {"array", "[{\"op\":\"status\"}]", "bad_request", ""},
    {"empty object", "{}", "bad_request", "op"},
    {"op not a string", "{\"op\":5}", "bad_request", "op"},
    {"unknown op", "{\"op\":\"explode\"}", "unknown_op", "op"},
    {"seq not an integer", "{\"op\":\"status\",\"seq\":\"x\"}", "bad_request", "seq"},
    {"duplicate keys", "{\"op\":\"status\",\"op\":\"dump\"}", "bad_json", ""},
    {"register without instance", "{\"op\":\"register\"}", "bad_request", "instance"},
    {"instance not an object", REG("[]"), "bad_request", "instance"},
    {"missing service", REG("{\"address\":\"127.0.0.1:80\"}"), "bad_request", "instance.service"},
    {"service wrong type", REG("{\"service\":5,\"address\":\"127.0.0.1:80\"}"), "bad_request",
     "instance.service"},
    {"service empty", REG("{\"service\":\"\",\"address\":\"127.0.0.1:80\"}"), "bad_request",
     "instance.service"},
    {"service bad chars", REG("{\"service\":\"a b/c\",\"address\":\"127.0.0.1:80\"}"),
     "bad_request", "instance.service"},
    {"service with NUL escape", REG("{\"service\":\"a\\u0000b\",\"address\":\"127.0.0.1:80\"}"),
     "bad_json", ""},
    {"missing address", REG("{\"service\":\"s\"}"), "bad_request", "instance.address"},
    {"address without port", REG("{\"service\":\"s\",\"address\":\"localhost\"}"), "bad_request",
     "instance.address"},
    {"address port 0", REG("{\"service\":\"s\",\"address\":\"h:0\"}"), "bad_request",
     "instance.address"},
    {"address port too big", REG("{\"service\":\"s\",\"address\":\"h:65536\"}"), "bad_request",
     "instance.address"},
    {"address bad ipv6", REG("{\"service\":\"s\",\"address\":\"[zz::1]:80\"}"), "bad_request",
     "instance.address"},
    {"address with space", REG("{\"service\":\"s\",\"address\":\"a b:80\"}"), "bad_request",
     "instance.address"},
    {"unix address relative",
     REG("{\"service\":\"s\",\"network\":\"unix\",\"address\":\"x.sock\"}"), "bad_request",
     "instance.address"},
    {"unknown network", REG("{\"service\":\"s\",\"network\":\"udp\",\"address\":\"h:1\"}"),
     "bad_request", "instance.network"},
    {"weight zero", REG("{\"service\":\"s\",\"address\":\"h:1\",\"weight\":0}"), "bad_request",
     "instance.weight"},
    {"weight too big", REG("{\"service\":\"s\",\"address\":\"h:1\",\"weight\":10001}"),
     "bad_request", "instance.weight"},
    {"weight as string", REG("{\"service\":\"s\",\"address\":\"h:1\",\"weight\":\"10\"}"),
     "bad_request", "instance.weight"},
    {"weight as float", REG("{\"service\":\"s\",\"address\":\"h:1\",\"weight\":1.5}"),
     "bad_request", "instance.weight"},
    {"version not a string", REG("{\"service\":\"s\",\"address\":\"h:1\",\"version\":2}"),
     "bad_request", "instance.version"},
    {"tags not an object", REG("{\"service\":\"s\",\"address\":\"h:1\",\"tags\":[\"a\"]}"),
     "bad_request", "instance.tags"},
    {"tag value not a string", REG("{\"service\":\"s\",\"address\":\"h:1\",\"tags\":{\"k\":1}}"),
     "bad_request", "instance.tags.k"},
    {"tag key empty", REG("{\"service\":\"s\",\"address\":\"h:1\",\"tags\":{\"\":\"v\"}}"),
     "bad_request", "instance.tags."},
    {"endpoints not an array", REG("{\"service\":\"s\",\"address\":\"h:1\",\"endpoints\":{}}"),
     "bad_request", "instance.endpoints"},
    {"endpoint not an object", REG("{\"service\":\"s\",\"address\":\"h:1\",\"endpoints\":[1]}"),
     "bad_request", "instance.endpoints[0]"},
    {"endpoint without name",
     REG("{\"service\":\"s\",\"address\":\"h:1\",\"endpoints\":[{\"request\":\"R\"}]}"),
     "bad_request", "instance.endpoints[0].name"},
    {"endpoint negative latency",
     REG("{\"service\":\"s\",\"address\":\"h:1\",\"endpoints\":[{\"name\":\"a\"},{\"name\":\"b\","
         "\"mean_us\":-1}]}"),
     "bad_request", "instance.endpoints[1].mean_us"},
    {"unknown instance field", REG("{\"service\":\"s\",\"address\":\"h:1\",\"colour\":\"red\"}"),
     "bad_request", "instance.colour"},
    {"client-chosen id", REG("{\"service\":\"s\",\"address\":\"h:1\",\"id\":\"x\"}"), "bad_request",
     "instance.id"},
    {"check not an object", REGC(OKI, "\"session\""), "bad_request", "check"},
    {"unknown check type", REGC(OKI, "{\"type\":\"icmp\"}"), "bad_request", "check.type"},
    {"ttl without ttl_ms", REGC(OKI, "{\"type\":\"ttl\"}"), "bad_request", "check.ttl_ms"},
    {"timeout not below interval", REGC(OKI, "{\"interval_ms\":1000,\"timeout_ms\":1000}"),
     "bad_request", "check.timeout_ms"},
    {"misses zero", REGC(OKI, "{\"misses\":0}"), "bad_request", "check.misses"},
    {"interval too small", REGC(OKI, "{\"interval_ms\":1}"), "bad_request", "check.interval_ms"},
    {"http path without slash", REGC(OKI, "{\"type\":\"http\",\"path\":\"health\"}"), "bad_request",
     "check.path"},
    {"tcp check bad target", REGC(OKI, "{\"type\":\"tcp\",\"target\":\"nope\"}"), "bad_request",
     "check.target"},
    {"unknown check field", REGC(OKI, "{\"type\":\"none\",\"every\":5}"), "bad_request",
     "check.every"},
    {"deregister without id", "{\"op\":\"deregister\"}", "bad_request", "id"},
    {"deregister malformed id", "{\"op\":\"deregister\",\"id\":\"1234\"}", "bad_request", "id"},
    {"deregister id not a string", "{\"op\":\"deregister\",\"id\":7}", "bad_request", "id"},
    {"deregister unknown id",
     "{\"op\":\"deregister\",\"id\":\"00000000-0000-4000-8000-000000000000\"}", "not_found", "id"},
    {"pass unknown id", "{\"op\":\"pass\",\"id\":\"00000000-0000-4000-8000-000000000000\"}",
     "not_found", "id"},
    {"query without service", "{\"op\":\"query\"}", "bad_request", "service"},
    {"query service wrong type", "{\"op\":\"query\",\"service\":[1]}", "bad_request", "service"},
    {"pong without seq", "{\"op\":\"pong\"}", "bad_request", "seq"},
    {"invalid utf-8", "{\"op\":\"query\",\"service\":\"\xff\xfe\"}", "bad_json", ""},
    {"binary garbage", "\x01\x02\x03\xff\xfe\x80garbage\x7f", "bad_json", ""},
};

/* Generated cases: oversized fields and documents. */
static char *repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

static char *gen_case(int which, const char **code, const char **field)
{
    char *buf = malloc(70000), *x;
    *code = "bad_request";
    switch (which) {
    case 0: /* service name 256 bytes */
        x = repeat('a', 256);
        snprintf(buf, 70000, REG("{\"service\":\"%s\",\"address\":\"h:1\"}"), x);
        *field = "instance.service";
        break;
    case 1: /* 33 tags */
        strcpy(buf, "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\","
                    "\"tags\":{");
        for (int i = 0; i < 33; i++)
            sprintf(buf + strlen(buf), "%s\"k%d\":\"v\"", i ? "," : "", i);
        strcat(buf, "}}}");
        *field = "instance.tags";
        x = NULL;
        break;
    case 2: /* tag value 256 bytes */
        x = repeat('v', 256);
        snprintf(buf, 70000, REG("{\"service\":\"s\",\"address\":\"h:1\",\"tags\":{\"k\":\"%s\"}}"),
                 x);
        *field = "instance.tags.k";
        break;
    case 3: /* 65 endpoints */
        strcpy(buf, "{\"op\":\"register\",\"instance\":{\"service\":\"s\",\"address\":\"h:1\","
                    "\"endpoints\":[");
        for (int i = 0; i < 65; i++)
            sprintf(buf + strlen(buf), "%s{\"name\":\"e%d\"}", i ? "," : "", i);
        strcat(buf, "]}}");
        *field = "instance.endpoints";
        x = NULL;
        break;
    case 4: /* endpoint name 129 bytes */
        x = repeat('e', 129);
        snprintf(buf, 70000,
                 REG("{\"service\":\"s\",\"address\":\"h:1\",\"endpoints\":[{\"name\":\"%s\"}]}"),
                 x);
        *field = "instance.endpoints[0].name";
        break;
    case 5: /* version 65 bytes */
        x = repeat('1', 65);
        snprintf(buf, 70000, REG("{\"service\":\"s\",\"address\":\"h:1\",\"version\":\"%s\"}"), x);
        *field = "instance.version";
        break;
    case 6: /* a 60 KiB document (under the line limit) with an oversized address */
        x = repeat('a', 60000);
        snprintf(buf, 70000, REG("{\"service\":\"s\",\"address\":\"%s:80\"}"), x);
        *field = "instance.address";
        break;
    case 7: /* JSON nested deeper than the parser allows */
        x = NULL;
        for (int i = 0; i < 5000; i++)
            buf[i] = '[';
        buf[5000] = '\0';
        *code = "bad_json";
        *field = "";
        break;
    default:
        free(buf);
        return NULL;
    }
    free(x);
    return buf;
}

static void expect_error(struct discd_conn *c, const char *what, const char *line, size_t len,
                         const char *code, const char *field)
{
    cr_assert_eq(discd_conn_send_raw(c, line, len), 0, "%s: send", what);
    cr_assert_eq(discd_conn_send_raw(c, "\n", 1), 0, "%s: send", what);
    char *reply = NULL;
    int n = discd_conn_reply(c, &reply, 5000 * dt_slow(), 1);
    cr_assert_gt(n, 0, "%s: no reply (%s)", what, strerror(-n));
    json_t *r = json_loads(reply, 0, NULL);
    cr_assert(r, "%s: reply is not JSON: %s", what, reply);
    cr_assert(json_is_false(json_object_get(r, "ok")), "%s: accepted: %s", what, reply);
    cr_assert_str_eq(dt_err_code(r), code, "%s: code (reply %s)", what, reply);
    if (field)
        cr_assert_str_eq(dt_err_field(r), field, "%s: field (reply %s)", what, reply);
    cr_assert(json_is_string(json_object_get(json_object_get(r, "error"), "message")),
              "%s: no message", what);
    json_decref(r);
    free(reply);
}

static void expect_unchanged(const char *what, const char *baseline)
{
    char *now = dt_dump_canonical(&d);
    cr_assert_str_eq(now, baseline, "%s: registry changed", what);
    free(now);
}

Test(daemon_badinput, table_of_bad_requests)
{
    dt_start(&d, "bad", NULL);
    /* Some state that must survive every case. */
    struct discd_conn keep;
    cr_assert_eq(discd_conn_open(&d, &keep), 0);
    char id1[DISC_ID_LEN + 1], id2[DISC_ID_LEN + 1];
    dt_register(&keep, "kept", "127.0.0.1:81", "{\"type\":\"none\"}", id1);
    dt_register(&keep, "kept", "127.0.0.1:82", NULL, id2);
    char *baseline = dt_dump_canonical(&d);

    size_t n_cases = sizeof(cases) / sizeof(cases[0]);
    int total = 0;
    for (size_t i = 0; i < n_cases; i++) {
        struct discd_conn c;
        cr_assert_eq(discd_conn_open(&d, &c), 0);
        expect_error(&c, cases[i].name, cases[i].line, strlen(cases[i].line), cases[i].code,
                     cases[i].field);
        /* The same connection keeps working after an error. */
        json_t *r = dt_call(&c, "{\"op\":\"status\"}");
        cr_assert(dt_ok(r), "%s: connection unusable after the error", cases[i].name);
        json_decref(r);
        discd_conn_close(&c);
        expect_unchanged(cases[i].name, baseline);
        total++;
    }
    for (int g = 0;; g++) {
        const char *code, *field;
        char *line = gen_case(g, &code, &field);
        if (!line)
            break;
        char what[32];
        snprintf(what, sizeof(what), "generated case %d", g);
        struct discd_conn c;
        cr_assert_eq(discd_conn_open(&d, &c), 0);
        expect_error(&c, what, line, strlen(line), code, field);
        discd_conn_close(&c);
        free(line);
        expect_unchanged(what, baseline);
        total++;
    }
    /* pass on an instance without a ttl check. */
    char line[128];
    snprintf(line, sizeof(line), "{\"op\":\"pass\",\"id\":\"%s\"}", id1);
    expect_error(&keep, "pass without ttl check", line, strlen(line), "bad_request", "id");
    expect_unchanged("pass without ttl check", baseline);
    total++;
    cr_assert_geq(total, 30);
    fprintf(stderr, "%d bad-input cases rejected, registry unchanged\n", total);
    discd_conn_close(&keep);
    free(baseline);
}

Test(daemon_badinput, oversized_line_gets_too_large_and_is_closed)
{
    dt_start(&d, "big", NULL);
    char *baseline = dt_dump_canonical(&d);
    struct discd_conn c;
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    size_t n = 70000;
    char *big = malloc(n);
    memset(big, 'x', n);
    memcpy(big, "{\"op\":\"", 7);
    /* The daemon may close before we finish sending: ignore send errors. */
    discd_conn_send_raw(&c, big, n);
    discd_conn_send_raw(&c, "\n", 1);
    char *reply = NULL;
    cr_assert_gt(discd_conn_read_line(&c, &reply, 5000 * dt_slow()), 0);
    json_t *r = json_loads(reply, 0, NULL);
    cr_assert_str_eq(dt_err_code(r), "too_large", "reply: %s", reply);
    json_decref(r);
    free(reply);
    cr_assert_eq(discd_conn_read_line(&c, &reply, 5000 * dt_slow()), -EPIPE,
                 "connection not closed after too_large");
    discd_conn_close(&c);
    free(big);
    char *now = dt_dump_canonical(&d);
    cr_assert_str_eq(now, baseline);
    free(now);
    free(baseline);
}

Test(daemon_badinput, endless_line_does_not_block_others)
{
    dt_start(&d, "endless", NULL);
    struct discd_conn slow, other;
    cr_assert_eq(discd_conn_open(&d, &slow), 0);
    /* A line that never ends: a few bytes now and then, never a newline. */
    cr_assert_eq(discd_conn_send_raw(&slow, "{\"op\":\"sta", 10), 0);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(discd_conn_send_raw(&slow, "     ", 5), 0);
        json_t *r = dt_call1(&d, "{\"op\":\"status\"}");
        cr_assert(dt_ok(r), "daemon stopped serving while a line was pending");
        json_decref(r);
    }
    /* Beyond the limit the connection is dropped, even without a newline. */
    char *chunk = malloc(65536);
    memset(chunk, ' ', 65536);
    discd_conn_send_raw(&slow, chunk, 65536);
    char *reply = NULL;
    cr_assert_gt(discd_conn_read_line(&slow, &reply, 5000 * dt_slow()), 0);
    cr_assert(strstr(reply, "too_large"), "reply: %s", reply);
    free(reply);
    cr_assert_eq(discd_conn_read_line(&slow, &reply, 5000 * dt_slow()), -EPIPE);
    free(chunk);
    discd_conn_close(&slow);
    cr_assert_eq(discd_conn_open(&d, &other), 0);
    json_t *r = dt_call(&other, "{\"op\":\"status\"}");
    cr_assert(dt_ok(r));
    json_decref(r);
    discd_conn_close(&other);
}

/* utime+stime of a process, in clock ticks. */
static long long cpu_ticks(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    cr_assert(p);
    unsigned long long ut = 0, st = 0;
    /* fields after ")": state(3) ... utime(14) stime(15) */
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 14)
            ut = strtoull(tok, NULL, 10);
        if (field == 15) {
            st = strtoull(tok, NULL, 10);
            break;
        }
    }
    return (long long)(ut + st);
}

Test(daemon_badinput, thousands_of_idle_connections_cost_no_cpu)
{
    enum { N = 2000 };
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < N + 100) {
        rl.rlim_cur = rl.rlim_max < N + 100 ? rl.rlim_max : N + 100;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < N + 100)
        cr_skip_test("fd limit too low");
    dt_start(&d, "idle", NULL);
    char *baseline = dt_dump_canonical(&d);
    struct discd_conn *conns = calloc(N, sizeof(*conns));
    for (int i = 0; i < N; i++)
        cr_assert_eq(discd_conn_open(&d, &conns[i]), 0, "connection %d", i);
    /* Half of them also sent half a request. */
    for (int i = 0; i < N; i += 2)
        cr_assert_eq(discd_conn_send_raw(&conns[i], "{\"op\":", 6), 0);
    long long deadline = proc_now_ms() + 5000 * dt_slow();
    while (dt_status_int(&d, "connections") < N + 1 && proc_now_ms() < deadline)
        proc_sleep_ms(10);
    cr_assert_geq(dt_status_int(&d, "connections"), N + 1);
    long long t0 = cpu_ticks(d.proc.pid);
    proc_sleep_ms(1000);
    long long used = cpu_ticks(d.proc.pid) - t0;
    fprintf(stderr, "%d idle connections: discd used %lld ticks of CPU in 1 s\n", N, used);
    cr_assert_leq(used, 5, "idle connections cost CPU (%lld ticks/s)", used);
    long long t = proc_now_ms();
    json_t *r = dt_call1(&d, "{\"op\":\"status\"}");
    cr_assert(dt_ok(r));
    json_decref(r);
    cr_assert_lt(proc_now_ms() - t, 1000 * dt_slow(), "status slow with idle connections");
    for (int i = 0; i < N; i++)
        discd_conn_close(&conns[i]);
    free(conns);
    char *now = dt_dump_canonical(&d);
    cr_assert_str_eq(now, baseline);
    free(now);
    free(baseline);
}

Test(daemon_badinput, connection_limit)
{
    cr_assert_eq(discd_proc_init(&d, "limit"), 0);
    char *extra[] = {"--max-connections", "8", NULL};
    cr_assert_eq(discd_proc_start(&d, extra, 10000 * dt_slow()), 0);
    struct discd_conn c[8], over;
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(discd_conn_open(&d, &c[i]), 0);
        json_t *r = dt_call(&c[i], "{\"op\":\"status\"}"); /* make sure it is accepted */
        cr_assert(dt_ok(r));
        json_decref(r);
    }
    cr_assert_eq(discd_conn_open(&d, &over), 0);
    char *reply = NULL;
    cr_assert_gt(discd_conn_read_line(&over, &reply, 5000 * dt_slow()), 0);
    cr_assert(strstr(reply, "\"code\":\"limit\""), "reply: %s", reply);
    free(reply);
    cr_assert_eq(discd_conn_read_line(&over, &reply, 5000 * dt_slow()), -EPIPE);
    discd_conn_close(&over);
    discd_conn_close(&c[0]);
    /* A slot is free again. */
    long long deadline = proc_now_ms() + 5000 * dt_slow();
    json_t *r = NULL;
    while (proc_now_ms() < deadline) {
        r = dt_call1(&d, "{\"op\":\"status\"}");
        if (dt_ok(r))
            break;
        json_decref(r);
        r = NULL;
        proc_sleep_ms(10);
    }
    cr_assert(dt_ok(r), "no connection accepted after one closed");
    json_decref(r);
    for (int i = 1; i < 8; i++)
        discd_conn_close(&c[i]);
}

Test(daemon_badinput, instance_limit)
{
    cr_assert_eq(discd_proc_init(&d, "ilimit"), 0);
    char *extra[] = {"--max-instances", "3", NULL};
    cr_assert_eq(discd_proc_start(&d, extra, 10000 * dt_slow()), 0);
    struct discd_conn c;
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    char id[DISC_ID_LEN + 1];
    for (int i = 0; i < 3; i++)
        dt_register(&c, "lim", "127.0.0.1:1", "{\"type\":\"none\"}", id);
    char *baseline = dt_dump_canonical(&d);
    const char *line = REGC(OKI, "{\"type\":\"none\"}");
    expect_error(&c, "over max-instances", line, strlen(line), "limit", NULL);
    expect_unchanged("over max-instances", baseline);
    free(baseline);
    discd_conn_close(&c);
}

Test(daemon_badinput, out_of_file_descriptors_is_survived)
{
    dt_start(&d, "nofd", NULL);
    /* Leave discd 64 descriptors: far below max-connections (4096). */
    struct rlimit low = {64, 64};
    cr_assert_eq(prlimit(d.proc.pid, RLIMIT_NOFILE, &low, NULL), 0);
    json_t *r;

    enum { N = 100 };
    struct discd_conn c[N];
    int refused = 0;
    for (int i = 0; i < N; i++) {
        int orc = discd_conn_open(&d, &c[i]);
        cr_assert_eq(orc, 0, "connect %d: %s", i, strerror(-orc));
    }
    for (int i = 0; i < N; i++) {
        /* Each connection is either served or told "limit" and closed. */
        json_t *s = dt_call(&c[i], "{\"op\":\"status\"}");
        if (!dt_ok(s)) {
            char *line = NULL;
            refused++;
            if (s)
                cr_assert_str_eq(dt_err_code(s), "limit");
            free(line);
        }
        json_decref(s);
    }
    cr_assert_gt(refused, 0, "64 descriptors cannot serve %d connections", N);
    long long t0 = cpu_ticks(d.proc.pid);
    proc_sleep_ms(500);
    cr_assert_leq(cpu_ticks(d.proc.pid) - t0, 10, "discd spins when out of descriptors");
    for (int i = 0; i < N; i++)
        discd_conn_close(&c[i]);
    /* Descriptors are free again: service resumes. */
    long long deadline = proc_now_ms() + 5000 * dt_slow();
    r = NULL;
    while (!dt_ok(r) && proc_now_ms() < deadline) {
        json_decref(r);
        proc_sleep_ms(20);
        r = dt_call1(&d, "{\"op\":\"status\"}");
    }
    cr_assert(dt_ok(r), "no service after descriptors were released");
    json_decref(r);
}
