/* SPDX-License-Identifier: MIT */
/*
 * test_discctl.c — discctl against a real discd: register, get (with
 * filters), ls, endpoints, dump, --json, watch, --hold sessions, exit codes
 * and the manual pages. Reads are cross-checked with a libdiscshm reader in
 * the test process.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl_run.h"
#include "daemon_util.h"
#include "discd_proc.h"
#include "discshm.h"
#include "proc.h"

static struct discd_proc d;

static void setup(void)
{
    dt_start(&d, "ctl", NULL);
}

static void teardown(void)
{
    ctl_run_release_all();
    dt_finish(&d);
}

TestSuite(discctl, .init = setup, .fini = teardown, .timeout = 120);

/* Register via discctl; asserts success; copies the printed id. */
static void reg(char id[DISC_ID_LEN + 1], const char *const *args)
{
    ctl_register(&d, 10000 * dt_slow(), args, id);
}
#define REG(id, ...) reg((id), (const char *const[]){__VA_ARGS__, NULL})

/* The ids (sorted as printed) of get --json's instances, joined by ' '. */
static char *get_ids(json_t *j)
{
    static char buf[4096];
    buf[0] = '\0';
    json_t *arr = json_object_get(j, "instances");
    cr_assert(json_is_array(arr));
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        strcat(buf, i ? " " : "");
        strcat(buf, json_string_value(json_object_get(v, "id")));
    }
    return buf;
}

Test(discctl, register_then_get_ls_endpoints_dump)
{
    char a[DISC_ID_LEN + 1], b[DISC_ID_LEN + 1], c[DISC_ID_LEN + 1];
    REG(a, "--service", "orders", "--version", "2.1.0", "--address", "127.0.0.1:8080", "--az",
        "eu-1a", "--weight", "20", "--tag", "env=prod", "--tag", "team=red", "--endpoint",
        "Create,request=CreateReq,response=Order,mean_us=120,p95_us=400");
    REG(b, "--service", "orders", "--version", "2.0.0", "--address", "127.0.0.1:8081", "--az",
        "eu-1b", "--tag", "env=staging");
    REG(c, "--service", "users", "--address", "/run/users.sock", "--network", "unix");

    /* What discctl registered is what a libdiscshm reader sees. */
    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, "orders", 2, 5000 * dt_slow()), 2);
    char buf[DISC_INSTANCE_BUF_MAX];
    struct disc_instance *in;
    cr_assert_eq(disc_lookup_id(h, a, buf, sizeof(buf), &in, NULL), 0);
    cr_assert_str_eq(in->version, "2.1.0");
    cr_assert_eq(in->weight, 20);
    cr_assert_str_eq(disc_instance_tag_get(in, "team"), "red");
    cr_assert_eq(in->n_endpoints, 1);

    /* get: table by default, every instance listed */
    struct ctl_result r = CTL(&d, "get", "orders");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "ID") && strstr(r.out, "ADDRESS"), "no header: %s", r.out);
    cr_assert(strstr(r.out, a) && strstr(r.out, b) && !strstr(r.out, c), "%s", r.out);
    ctl_result_free(&r);

    /* get --json with filters */
    r = CTL(&d, "get", "orders", "--json");
    json_t *j = ctl_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "instances")), 2);
    json_t *first = json_array_get(json_object_get(j, "instances"), 0);
    json_t *ia = strcmp(json_string_value(json_object_get(first, "id")), a) == 0
                     ? first
                     : json_array_get(json_object_get(j, "instances"), 1);
    cr_assert_str_eq(json_string_value(json_object_get(ia, "address")), "127.0.0.1:8080");
    cr_assert_eq(json_integer_value(json_object_get(ia, "weight")), 20);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(ia, "tags"), "env")),
                     "prod");
    json_t *ep = json_array_get(json_object_get(ia, "endpoints"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(ep, "response")), "Order");
    cr_assert_eq(json_integer_value(json_object_get(ep, "p95_us")), 400);
    cr_assert_str_eq(json_string_value(json_object_get(ia, "origin")), "local");
    json_decref(j);
    ctl_result_free(&r);

    const char *filters[][3] = {
        {"--tag", "env=prod", NULL},    {"--az", "eu-1b", NULL},
        {"--version", "2.0.0", NULL},   {"--min-version", "2.1", NULL},
        {"--endpoint", "Create", NULL}, {"--tag", "team", NULL},
    };
    const char *expect[] = {a, b, b, a, a, a};
    for (size_t k = 0; k < sizeof(expect) / sizeof(expect[0]); k++) {
        r = CTL(&d, "get", "orders", filters[k][0], filters[k][1], "--json");
        cr_assert_eq(r.code, 0, "get %s %s: %s", filters[k][0], filters[k][1], r.err);
        j = ctl_json(&r);
        cr_assert_str_eq(get_ids(j), expect[k], "filter %s %s", filters[k][0], filters[k][1]);
        json_decref(j);
        ctl_result_free(&r);
    }

    /* ls */
    r = CTL(&d, "ls", "--json");
    cr_assert_eq(r.code, 0);
    j = ctl_json(&r);
    json_t *svcs = json_object_get(j, "services");
    cr_assert_eq(json_array_size(svcs), 2);
    json_t *orders = json_array_get(svcs, 0);
    cr_assert_str_eq(json_string_value(json_object_get(orders, "name")), "orders");
    cr_assert_eq(json_integer_value(json_object_get(orders, "instances")), 2);
    cr_assert_eq(json_array_size(json_object_get(orders, "versions")), 2);
    json_decref(j);
    ctl_result_free(&r);
    r = CTL(&d, "ls");
    cr_assert(strstr(r.out, "SERVICE") && strstr(r.out, "users"), "%s", r.out);
    ctl_result_free(&r);

    /* endpoints */
    r = CTL(&d, "endpoints", "--json");
    cr_assert_eq(r.code, 0);
    j = ctl_json(&r);
    json_t *e0 = json_array_get(json_object_get(j, "endpoints"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(e0, "name")), "orders.Create");
    cr_assert_eq(json_integer_value(json_object_get(e0, "mean_us")), 120);
    json_decref(j);
    ctl_result_free(&r);

    /* dump: all three, with the segment's generation */
    r = CTL(&d, "dump");
    cr_assert_eq(r.code, 0, "%s", r.err);
    j = ctl_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "instances")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(j, "registry")), d.name);
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert_eq((uint64_t)json_integer_value(json_object_get(j, "generation")), st.generation);
    cr_assert(strstr(r.out, c) && strstr(r.out, "\"network\":\"unix\""), "%s", r.out);
    json_decref(j);
    ctl_result_free(&r);

    /* deregister: gone from the segment */
    r = CTL(&d, "deregister", b);
    cr_assert_eq(r.code, 0, "%s", r.err);
    ctl_result_free(&r);
    cr_assert_eq(dt_wait_count(h, "orders", 1, 5000 * dt_slow()), 1);
    disc_close(h);
}

Test(discctl, exit_codes)
{
    struct ctl_result r;
    /* 3: not found */
    r = CTL(&d, "get", "no-such-service");
    cr_assert_eq(r.code, 3, "%d %s", r.code, r.err);
    ctl_result_free(&r);
    r = CTL(&d, "deregister", "00000000-0000-4000-8000-000000000000");
    cr_assert_eq(r.code, 3, "%d %s", r.code, r.err);
    cr_assert(strstr(r.err, "not_found"), "%s", r.err);
    ctl_result_free(&r);
    char id[DISC_ID_LEN + 1];
    REG(id, "--service", "svc", "--address", "127.0.0.1:1", "--az", "a");
    r = CTL(&d, "get", "svc", "--az", "b");
    cr_assert_eq(r.code, 3, "nothing matched must be 3, got %d", r.code);
    ctl_result_free(&r);
    r = CTL(&d, "endpoints", "no-such-service");
    cr_assert_eq(r.code, 3);
    ctl_result_free(&r);

    /* 2: usage */
    const char *const usage[][6] = {
        {"bogus", NULL},
        {"get", NULL},
        {"get", "svc", "--frobnicate", NULL},
        {"get", "svc", "--health", "sickly"},
        {"register", "--service", "x", NULL},
        {"register", "--address", "1.2.3.4:5", NULL},
        {"register", "--service", "x", "--weight"},
        {"deregister", NULL},
        {"watch", "--count", "zero", NULL},
        {"ls", "extra", NULL},
    };
    for (size_t k = 0; k < sizeof(usage) / sizeof(usage[0]); k++) {
        r = ctl_run(&d, 10000, usage[k]);
        cr_assert_eq(r.code, 2, "'%s %s' exited %d (%s)", usage[k][0],
                     usage[k][1] ? usage[k][1] : "", r.code, r.err);
        cr_assert(strlen(r.err) > 0, "no message for a usage error");
        ctl_result_free(&r);
    }
    r = CTL(&d, "register", "--service", "x", "--address", "1.2.3.4:5", "--check", "session");
    cr_assert_eq(r.code, 2, "session without --hold must be refused");
    ctl_result_free(&r);

    /* 1: the daemon refused (bad service name), and said why */
    r = CTL(&d, "register", "--service", "bad name!", "--address", "1.2.3.4:5");
    cr_assert_eq(r.code, 1, "%d %s", r.code, r.err);
    cr_assert(strstr(r.err, "instance.service"), "the field is not named: %s", r.err);
    ctl_result_free(&r);
    r = CTL(&d, "register", "--service", "ok", "--address", "not-an-address");
    cr_assert_eq(r.code, 1, "%d %s", r.code, r.err);
    ctl_result_free(&r);

    /* 4: registry or daemon unavailable */
    char other[256];
    snprintf(other, sizeof(other), "nosuchreg%d", (int)getpid());
    r = ctl_run(NULL, 10000, (const char *const[]){"--name", other, "ls", NULL});
    cr_assert_eq(r.code, 4, "%d %s", r.code, r.err);
    ctl_result_free(&r);
    r = ctl_run(NULL, 10000,
                (const char *const[]){"--socket", "/nonexistent/discd.sock", "register",
                                      "--service", "x", "--address", "1.2.3.4:5", NULL});
    cr_assert_eq(r.code, 4, "%d %s", r.code, r.err);
    ctl_result_free(&r);

    /* 0: status of a live daemon, and it names both sides */
    r = CTL(&d, "status", "--json");
    cr_assert_eq(r.code, 0, "%s", r.err);
    json_t *j = ctl_json(&r);
    cr_assert(json_is_true(json_object_get(json_object_get(j, "segment"), "writer_alive")));
    cr_assert(json_is_object(json_object_get(j, "daemon")), "daemon status missing");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "segment"), "instances")),
                 1);
    json_decref(j);
    ctl_result_free(&r);
}

Test(discctl, help_pages)
{
    const char *cmds[] = {"register",  "deregister", "services", "ls",   "get",   "pick",
                          "endpoints", "watch",      "status",   "dump", "reload"};
    struct ctl_result r = ctl_run(NULL, 10000, (const char *const[]){"--help", NULL});
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, "SYNOPSIS") && strstr(r.out, "EXIT STATUS"));
    for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++)
        cr_assert(strstr(r.out, cmds[k]), "top page does not list %s", cmds[k]);
    ctl_result_free(&r);
    for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
        r = ctl_run(NULL, 10000, (const char *const[]){cmds[k], "--help", NULL});
        cr_assert_eq(r.code, 0);
        char name[64];
        snprintf(name, sizeof(name), "discctl %s - ", cmds[k]);
        cr_assert(strstr(r.out, name) && strstr(r.out, "SYNOPSIS") &&
                      strstr(r.out, "EXIT STATUS") && strstr(r.out, "--json"),
                  "incomplete manual for %s:\n%s", cmds[k], r.out);
        ctl_result_free(&r);
        r = ctl_run(NULL, 10000, (const char *const[]){"help", cmds[k], NULL});
        cr_assert(r.code == 0 && strstr(r.out, name));
        ctl_result_free(&r);
    }
}

Test(discctl, watch_prints_changes_as_published)
{
    struct ctl_bg w;
    ctl_bg_start(&w, &d, (const char *const[]){"watch", "--json", "--count", "3", NULL});
    char line[8192];
    cr_assert_eq(ctl_bg_line(&w, line, sizeof(line), 10000 * dt_slow()), 0, "no start line");
    cr_assert(strstr(line, "\"event\":\"start\""), "%s", line);

    char a[DISC_ID_LEN + 1], b[DISC_ID_LEN + 1];
    REG(a, "--service", "w1", "--address", "127.0.0.1:1");
    cr_assert_eq(ctl_bg_line(&w, line, sizeof(line), 5000 * dt_slow()), 0, "no added event");
    cr_assert(strstr(line, "\"event\":\"added\"") && strstr(line, a), "%s", line);

    REG(b, "--service", "w2", "--address", "127.0.0.1:2");
    cr_assert_eq(ctl_bg_line(&w, line, sizeof(line), 5000 * dt_slow()), 0);
    cr_assert(strstr(line, "\"event\":\"added\"") && strstr(line, b), "%s", line);

    struct ctl_result r = CTL(&d, "deregister", a);
    cr_assert_eq(r.code, 0);
    ctl_result_free(&r);
    cr_assert_eq(ctl_bg_line(&w, line, sizeof(line), 5000 * dt_slow()), 0);
    cr_assert(strstr(line, "\"event\":\"removed\"") && strstr(line, a), "%s", line);
    cr_assert_eq(ctl_bg_wait(&w, 5000 * dt_slow()), 0, "watch --count 3 did not exit 0");

    /* Human output, one service, ends at --timeout. */
    ctl_bg_start(&w, &d, (const char *const[]){"watch", "w2", "--timeout", "2", NULL});
    cr_assert_eq(ctl_bg_line(&w, line, sizeof(line), 10000 * dt_slow()), 0);
    cr_assert(strncmp(line, "# watching w2", 13) == 0, "%s", line);
    r = CTL(&d, "deregister", b);
    ctl_result_free(&r);
    cr_assert_eq(ctl_bg_line(&w, line, sizeof(line), 5000 * dt_slow()), 0);
    cr_assert(line[0] == '-' && strstr(line, b), "%s", line);
    cr_assert_eq(ctl_bg_wait(&w, 10000 * dt_slow()), 0);
}

/* `discctl register --hold` of service at 127.0.0.1:9 with a session check
 * every 200 ms, in the background; waits for the id it prints. */
static void start_held(struct ctl_bg *s, const char *service, char id[256])
{
    ctl_bg_start(s, &d,
                 (const char *const[]){"register", "--service", service, "--address", "127.0.0.1:9",
                                       "--check", "session", "--interval", "200", "--hold", NULL});
    cr_assert_eq(ctl_bg_line(s, id, 256, 10000 * dt_slow()), 0, "no id printed");
    cr_assert_eq(strlen(id), DISC_ID_LEN, "%s", id);
}

Test(discctl, hold_keeps_a_session_until_killed)
{
    struct ctl_bg s;
    char id[256];
    start_held(&s, "held", id);
    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, "held", 1, 5000 * dt_slow()), 1);
    /* Several ping intervals pass: discctl answers them, the instance stays. */
    proc_sleep_ms(1200);
    cr_assert_eq(disc_count(h, "held"), 1, "session not kept answered");
    /* SIGKILL: no chance to deregister; the closed connection removes it. */
    ctl_bg_kill(&s);
    cr_assert_eq(dt_wait_count(h, "held", 0, 3000 * dt_slow()), 0, "instance survived its session");
    disc_close(h);
}

Test(discctl, hold_reattaches_after_a_discd_restart)
{
    struct ctl_bg s;
    char id[256];
    start_held(&s, "held2", id);
    discd_proc_kill(&d);
    proc_sleep_ms(300);
    cr_assert_eq(discd_proc_start(&d, NULL, 10000 * dt_slow()), 0, "restart");
    char line[80];
    snprintf(line, sizeof(line), "re-attached %.36s", id);
    long long end = proc_now_ms() + 8000 * dt_slow();
    while (!dt_log_has(&d, line) && proc_now_ms() < end)
        proc_sleep_ms(20);
    cr_assert_eq(dt_log_has(&d, line), 1, "discctl did not re-attach %s", id);
    /* Still running, same id, kept answered over several pings. */
    proc_sleep_ms(1000);
    cr_assert_eq(waitpid(s.pid, NULL, WNOHANG), 0, "discctl --hold exited");
    json_t *r = dt_call1(&d, "{\"op\":\"query\",\"service\":\"held2\"}");
    json_t *list = json_object_get(r, "instances");
    cr_assert_eq(json_array_size(list), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "id")), id);
    json_decref(r);
    ctl_bg_kill(&s);
    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, "held2", 0, 3000 * dt_slow()), 0, "instance survived discctl");
    disc_close(h);
}

Test(discctl, reload_reports_file_and_line)
{
    char dir[400], path[500];
    snprintf(dir, sizeof(dir), "%s", d.services_dir);
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/x.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"instance\": {\"service\": \"rl\",\n \"address\": \"127.0.0.1:1\"}}\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/y.json", dir);
    f = fopen(path, "w");
    fputs("[\n {\"instance\": {\"service\": \"rl\", \"address\": \"nohost\"}}\n]\n", f);
    fclose(f);
    struct ctl_result r = CTL(&d, "reload");
    cr_assert_eq(r.code, 1, "exit %d: %s", r.code, r.err);
    cr_assert(strstr(r.out, "2 file(s): 1 added"), "%s", r.out);
    cr_assert(strstr(r.err, "/y.json:2: entry 1: "), "%s", r.err);
    ctl_result_free(&r);
    cr_assert_eq(unlink(path), 0);
    r = CTL(&d, "reload");
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_assert(strstr(r.out, "1 file(s): 0 added, 0 changed, 0 removed, 1 unchanged"), "%s", r.out);
    ctl_result_free(&r);
}

Test(discctl, watch_follows_a_restarted_discd)
{
    char a[DISC_ID_LEN + 1], b[DISC_ID_LEN + 1];
    REG(a, "--service", "before", "--address", "127.0.0.1:1");
    struct ctl_bg w;
    ctl_bg_start(&w, &d, (const char *const[]){"watch", "--count", "4", "--timeout", "30", NULL});
    char line[8192];
    cr_assert_eq(ctl_bg_line(&w, line, sizeof(line), 10000 * dt_slow()), 0);
    cr_assert(strstr(line, "(1 instance)"), "%s", line);

    /* A crash and a restart: a fresh segment replaces the old one and the
     * registration of "before" is restored from the state file with its id.
     * (The fresh segment is empty until its first commit, so the watch may
     * report it removed and added again.) */
    discd_proc_kill(&d);
    cr_assert_eq(discd_proc_start(&d, NULL, 10000 * dt_slow()), 0, "restart");
    REG(b, "--service", "after", "--address", "127.0.0.1:2");

    bool a_present = true, saw_added = false;
    for (int k = 0; k < 4 && !saw_added; k++) {
        cr_assert_eq(ctl_bg_line(&w, line, sizeof(line), 10000 * dt_slow()), 0,
                     "watch did not follow the new segment");
        if (strstr(line, a))
            a_present = line[0] == '+';
        saw_added |= line[0] == '+' && strstr(line, b) != NULL;
    }
    cr_assert(saw_added, "no addition of %s seen; last line: %s", b, line);
    cr_assert(a_present, "the restored instance %s is missing after the restart", a);
    ctl_bg_kill(&w);
}
