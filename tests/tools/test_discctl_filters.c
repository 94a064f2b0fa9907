/* SPDX-License-Identifier: MIT */
/*
 * test_discctl_filters.c — discctl get / pick / services / endpoints with
 * libdiscshm's filters and pickers, against a real discd: every filter
 * returns exactly the expected instances, pick chooses among exactly those,
 * a hash pick is stable and agrees with an in-process libdiscshm picker,
 * nothing matching exits 3.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_run.h"
#include "daemon_util.h"
#include "discd_proc.h"
#include "discshm.h"

static struct discd_proc d;

/* The registry every test starts from (registered in setup). */
enum { A, B, C, E, U, N_INST };
static char ids[N_INST][DISC_ID_LEN + 1];
static const char *const addrs[N_INST] = {"127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003",
                                          "127.0.0.1:8004", "/tmp/users-ctlf.sock"};

static void reg(int which, const char *const *args)
{
    const char *full[40] = {"--address", addrs[which]};
    size_t n = 2;
    for (size_t k = 0; args[k] && n < 38; k++)
        full[n++] = args[k];
    full[n] = NULL;
    ctl_register(&d, 10000 * dt_slow(), full, ids[which]);
}
#define REG(which, ...) reg((which), (const char *const[]){__VA_ARGS__, NULL})

static void setup(void)
{
    dt_start(&d, "ctlf", NULL);
    REG(A, "--service", "orders", "--version", "2.1.0", "--az", "eu-1a", "--host", "h1", "--tag",
        "env=prod", "--tag", "team=red", "--endpoint", "Create,mean_us=100,p95_us=300");
    REG(B, "--service", "orders", "--version", "2.0.0", "--az", "eu-1b", "--host", "h2", "--tag",
        "env=staging");
    REG(C, "--service", "orders", "--version", "3.0.0-rc.1", "--az", "eu-1a", "--host", "h2",
        "--tag", "env=prod", "--tag", "team=blue", "--endpoint", "Create,mean_us=300,p95_us=900",
        "--endpoint", "List");
    REG(E, "--service", "orders-eu", "--version", "1.0", "--az", "eu-1a", "--host", "h1", "--tag",
        "env=prod");
    REG(U, "--service", "users", "--version", "1.0", "--network", "unix");
    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, "orders", 3, 5000 * dt_slow()), 3);
    cr_assert_eq(dt_wait_count(h, "users", 1, 5000 * dt_slow()), 1);
    cr_assert_eq(dt_wait_count(h, "orders-eu", 1, 5000 * dt_slow()), 1);
    disc_close(h);
}

static void teardown(void)
{
    ctl_run_release_all();
    dt_finish(&d);
}

TestSuite(discctl_filters, .init = setup, .fini = teardown, .timeout = 120);

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The ids of `which` (a string of letters among "ABCEU"), sorted, joined. */
static void expected_ids(const char *which, char *out, size_t len)
{
    const char *list[N_INST];
    size_t n = 0;
    for (const char *w = which; *w; w++)
        list[n++] = ids[strchr("ABCEU", *w) - "ABCEU"];
    qsort(list, n, sizeof(list[0]), cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? " " : "", list[i]);
}

/* The ids of get --json's instances, sorted, joined by ' '. */
static void got_ids(json_t *j, char *out, size_t len)
{
    json_t *arr = json_object_get(j, "instances");
    cr_assert(json_is_array(arr));
    const char *list[64];
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        cr_assert_lt(n, 64);
        list[n++] = json_string_value(json_object_get(v, "id"));
    }
    qsort(list, n, sizeof(list[0]), cmp_str);
    out[0] = '\0';
    for (i = 0; i < n; i++)
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? " " : "", list[i]);
}

/* Run `discctl get --json ARGS...` and check the exact set (and exit 3 for
 * an empty one). */
static void check_get(const char *const *args, const char *want)
{
    const char *full[24] = {"get", "--json"};
    size_t n = 2;
    for (size_t k = 0; args[k] && n < 22; k++)
        full[n++] = args[k];
    full[n] = NULL;
    struct ctl_result r = ctl_run(&d, 10000 * dt_slow(), full);
    char exp[512], got[512];
    expected_ids(want, exp, sizeof(exp));
    cr_assert_eq(r.code, *want ? 0 : 3, "get %s %s %s: exit %d (%s)", args[0],
                 args[1] ? args[1] : "", args[1] && args[2] ? args[2] : "", r.code, r.err);
    json_t *j = ctl_json(&r);
    got_ids(j, got, sizeof(got));
    json_decref(j); /* before asserting: a failure must not leak it */
    cr_assert_str_eq(got, exp, "get %s %s %s: want %s", args[0], args[1] ? args[1] : "",
                     args[1] && args[2] ? args[2] : "", want);
    ctl_result_free(&r);
}
#define GET(want, ...) check_get((const char *const[]){__VA_ARGS__, NULL}, (want))

Test(discctl_filters, get_each_filter_returns_exactly_the_matching_ids)
{
    GET("ABC", "orders");
    GET("B", "orders", "--version", "2.0.0");
    GET("", "orders", "--version", "2.0");
    GET("AC", "orders", "--min-version", "2.1");
    GET("", "orders", "--min-version", "3"); /* 3.0.0-rc.1 < 3 */
    GET("C", "orders", "--min-version", "3.0.0-rc");
    GET("AC", "orders", "--az", "eu-1a");
    GET("B", "orders", "--az=eu-1b");
    GET("BC", "orders", "--host", "h2");
    GET("AC", "orders", "--tag", "env=prod");
    GET("C", "orders", "--tag", "env=prod", "--tag", "team=blue");
    GET("AC", "orders", "--tag", "team");
    GET("", "orders", "--tag", "env=nope");
    GET("AC", "orders", "--endpoint", "Create");
    GET("C", "orders", "--endpoint", "List");
    GET("A", "orders", "--endpoint", "Create", "--az", "eu-1a", "--host", "h1");
    /* discd publishes local instances as passing (it removes failing ones). */
    GET("ABC", "orders", "--health", "passing");
    GET("ABC", "orders", "--health", "not-critical");
    GET("", "orders", "--health", "critical");
    GET("ABCE", "--prefix", "orders");
    GET("E", "--prefix", "orders-");
    GET("AE", "--prefix", "orders", "--host", "h1", "--az", "eu-1a");
    GET("U", "--prefix", "u");
    GET("", "--prefix", "nomatch");
    GET("", "no-such-service");

    /* Human output with --prefix names the service of each row. */
    struct ctl_result r = CTL(&d, "get", "--prefix", "orders", "--host", "h1");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "SERVICE") && strstr(r.out, "orders-eu") && strstr(r.out, ids[A]) &&
                  strstr(r.out, ids[E]) && !strstr(r.out, ids[B]),
              "%s", r.out);
    ctl_result_free(&r);

    /* Bad filters are usage errors. */
    const char *const bad[][6] = {
        {"get", NULL},
        {"get", "--prefix", "", NULL},
        {"get", "orders", "--health", "sickly", NULL},
        {"get", "orders", "--tag", "=x", NULL},
        {"get", "orders", "--tag", "a", "--tag"},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        r = ctl_run(&d, 10000, bad[k]);
        cr_assert_eq(r.code, 2, "'%s %s' exited %d", bad[k][1] ? bad[k][1] : "",
                     bad[k][1] && bad[k][2] ? bad[k][2] : "", r.code);
        cr_assert(strlen(r.err) > 0);
        ctl_result_free(&r);
    }
    /* Nine tag conditions: one more than a filter holds. */
    const char *many[24] = {"get", "orders"};
    char tags[9][8];
    for (int k = 0; k < 9; k++) {
        snprintf(tags[k], sizeof(tags[k]), "t%d=v", k);
        many[2 + 2 * k] = "--tag";
        many[3 + 2 * k] = tags[k];
    }
    r = ctl_run(&d, 10000, many);
    cr_assert_eq(r.code, 2, "9 tags: exit %d", r.code);
    ctl_result_free(&r);
}

/* pick once; returns the exit code and copies stdout (without "\n"). */
static int pick(char *out, size_t len, const char *const *args)
{
    const char *full[24] = {"pick"};
    size_t n = 1;
    for (size_t k = 0; args[k] && n < 22; k++)
        full[n++] = args[k];
    full[n] = NULL;
    struct ctl_result r = ctl_run(&d, 10000 * dt_slow(), full);
    snprintf(out, len, "%s", r.out);
    out[strcspn(out, "\n")] = '\0';
    int code = r.code;
    if (code == 0)
        cr_assert_eq(strlen(r.out), strlen(out) + 1, "not exactly one line: '%s'", r.out);
    ctl_result_free(&r);
    return code;
}
#define PICK(out, ...) pick((out), sizeof(out), (const char *const[]){__VA_ARGS__, NULL})

Test(discctl_filters, pick_chooses_among_the_matching_instances)
{
    /* Random (default): always one of A, C; both come up (each 1/2 a pick:
     * 16 identical picks in a row have probability 2^-15). */
    bool seen_a = false, seen_c = false;
    char out[512];
    for (int k = 0; k < 16; k++) {
        cr_assert_eq(PICK(out, "orders", "--az", "eu-1a"), 0);
        cr_assert(strcmp(out, addrs[A]) == 0 || strcmp(out, addrs[C]) == 0, "picked '%s'", out);
        seen_a |= strcmp(out, addrs[A]) == 0;
        seen_c |= strcmp(out, addrs[C]) == 0;
    }
    cr_assert(seen_a && seen_c, "random pick never varied");

    /* One candidate: that one, whatever the policy. */
    cr_assert_eq(PICK(out, "orders", "--tag", "env=staging", "--by", "random"), 0);
    cr_assert_str_eq(out, addrs[B]);
    cr_assert_eq(PICK(out, "--prefix", "orders-"), 0);
    cr_assert_str_eq(out, addrs[E]);
    cr_assert_eq(PICK(out, "users", "--key", "anything"), 0);
    cr_assert_str_eq(out, addrs[U]);

    /* --json: the instance object of a matching instance. */
    struct ctl_result r = CTL(&d, "pick", "orders", "--min-version", "2.1", "--json");
    cr_assert_eq(r.code, 0, "%s", r.err);
    json_t *j = ctl_json(&r);
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *addr = json_string_value(json_object_get(j, "address"));
    cr_assert(id && addr);
    cr_assert((strcmp(id, ids[A]) == 0 && strcmp(addr, addrs[A]) == 0) ||
                  (strcmp(id, ids[C]) == 0 && strcmp(addr, addrs[C]) == 0),
              "%s", r.out);
    cr_assert_str_eq(json_string_value(json_object_get(j, "service")), "orders");
    json_decref(j);
    ctl_result_free(&r);

    /* Nothing matches: exit 3, nothing on stdout. */
    cr_assert_eq(PICK(out, "orders", "--az", "nowhere"), 3);
    cr_assert_str_eq(out, "");
    cr_assert_eq(PICK(out, "no-such-service"), 3);
    cr_assert_eq(PICK(out, "orders", "--health", "critical", "--by", "hash", "--key", "k"), 3);
    cr_assert_str_eq(out, "");

    /* Usage errors. */
    cr_assert_eq(PICK(out, "orders", "--by", "hash"), 2);
    cr_assert_eq(PICK(out, "orders", "--by", "round-robin"), 2);
    cr_assert_eq(PICK(out, "orders", "--by", "random", "--key", "k"), 2);
    cr_assert_eq(PICK(out, "--az", "eu-1a"), 2);
}

Test(discctl_filters, pick_by_hash_is_stable_and_agrees_with_libdiscshm)
{
    disc_handle *h = dt_open_reader(&d);
    disc_picker *p;
    cr_assert_eq(disc_picker_create(DISC_PICK_HASH, 0, 0, &p), 0);
    struct disc_filter f;
    disc_filter_init(&f);
    f.service = "orders";
    char buf[DISC_INSTANCE_BUF_MAX];
    for (int k = 0; k < 8; k++) {
        char key[32], first[512], again[512];
        snprintf(key, sizeof(key), "user-%d", k);
        cr_assert_eq(PICK(first, "orders", "--by", "hash", "--key", key), 0);
        for (int rep = 0; rep < 2; rep++) {
            cr_assert_eq(PICK(again, "orders", "--key", key), 0); /* --key implies hash */
            cr_assert_str_eq(again, first, "key %s moved between calls", key);
        }
        /* The same instance as a picker in this process: the hash depends
         * on the key and the candidates only. */
        struct disc_instance *in;
        cr_assert_eq(disc_pick(h, &f, p, key, strlen(key), buf, sizeof(buf), &in, NULL), 0);
        cr_assert_str_eq(first, in->address, "key %s", key);
    }
    /* With a filter, the hash chooses among the matching ones only. */
    for (int k = 0; k < 4; k++) {
        char key[32], out[512];
        snprintf(key, sizeof(key), "session-%d", k);
        cr_assert_eq(PICK(out, "orders", "--az", "eu-1a", "--by", "hash", "--key", key), 0);
        cr_assert(strcmp(out, addrs[A]) == 0 || strcmp(out, addrs[C]) == 0, "%s", out);
    }
    disc_picker_destroy(p);
    disc_close(h);
}

Test(discctl_filters, services_and_endpoints_views)
{
    /* services (ls is an alias): the same listing. */
    struct ctl_result r = CTL(&d, "services", "--json");
    cr_assert_eq(r.code, 0, "%s", r.err);
    struct ctl_result r2 = CTL(&d, "ls", "--json");
    cr_assert_eq(r2.code, 0, "%s", r2.err);
    cr_assert_str_eq(r.out, r2.out);
    ctl_result_free(&r2);
    json_t *j = ctl_json(&r);
    json_t *svcs = json_object_get(j, "services");
    cr_assert_eq(json_array_size(svcs), 3);
    const char *names[] = {"orders", "orders-eu", "users"};
    const int counts[] = {3, 1, 1};
    for (size_t k = 0; k < 3; k++) {
        json_t *s = json_array_get(svcs, k);
        cr_assert_str_eq(json_string_value(json_object_get(s, "name")), names[k]);
        cr_assert_eq(json_integer_value(json_object_get(s, "instances")), counts[k]);
    }
    /* orders' versions in version order, one instance each. */
    json_t *vers = json_object_get(json_array_get(svcs, 0), "versions");
    cr_assert_eq(json_array_size(vers), 3);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(vers, 0), "version")),
                     "2.0.0");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(vers, 2), "version")),
                     "3.0.0-rc.1");
    json_decref(j);
    ctl_result_free(&r);

    r = CTL(&d, "services", "--prefix", "orders", "--json");
    cr_assert_eq(r.code, 0, "%s", r.err);
    j = ctl_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "services")), 2);
    json_decref(j);
    ctl_result_free(&r);

    /* endpoints: orders.Create aggregated per version, orders.List once. */
    r = CTL(&d, "endpoints", "orders", "--json");
    cr_assert_eq(r.code, 0, "%s", r.err);
    j = ctl_json(&r);
    json_t *eps = json_object_get(j, "endpoints");
    cr_assert_eq(json_array_size(eps), 3, "%s", r.out);
    size_t i;
    json_t *e;
    int create = 0, list = 0;
    json_array_foreach(eps, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *ver = json_string_value(json_object_get(e, "version"));
        if (strcmp(name, "orders.Create") == 0) {
            create++;
            bool v21 = strcmp(ver, "2.1.0") == 0;
            cr_assert(v21 || strcmp(ver, "3.0.0-rc.1") == 0, "%s", ver);
            cr_assert_eq(json_integer_value(json_object_get(e, "mean_us")), v21 ? 100 : 300);
            cr_assert_eq(json_integer_value(json_object_get(e, "p95_us")), v21 ? 300 : 900);
        } else {
            cr_assert_str_eq(name, "orders.List");
            list++;
        }
    }
    cr_assert(create == 2 && list == 1, "%s", r.out);
    json_decref(j);
    ctl_result_free(&r);
}
