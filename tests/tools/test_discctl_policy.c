/* SPDX-License-Identifier: MIT */
/*
 * test_discctl_policy.c — registrations have owners and limits (issue 14)
 * and read-your-writes (issue 10), against real discd processes.
 *
 * The attacker is uid 65534 (discctl run through `setpriv --reuid=65534
 * --regid=65534 --clear-groups`): it registers a name the policy reserves,
 * exceeds its instance and byte limits, deregisters root's instance, and
 * connects to sockets whose mode/group exclude it. Each attempt must get its
 * own error naming the rule or limit, and nothing else may change. Owners
 * are checked through libdiscshm in the test process and through discctl.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_run.h"
#include "daemon_util.h"
#include "discd_proc.h"
#include "discshm.h"

#define NOBODY ((uid_t)65534)

static struct discd_proc d;
static bool started;

static void need_root(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to run discctl as uid 65534 (setpriv)");
}

static void start(char *const extra[])
{
    dt_start(&d, "pol", extra);
    started = true;
}

static void teardown(void)
{
    ctl_run_release_all();
    if (started)
        dt_finish(&d);
    started = false;
}

TestSuite(policy, .fini = teardown, .timeout = 120);

/* Run discctl register as uid (or ourselves with (uid_t)-1) with args;
 * returns the result (caller frees). */
static struct ctl_result reg_as(uid_t uid, const char *const *args)
{
    const char *full[40] = {"register"};
    size_t n = 1;
    for (; args[n - 1] && n < 39; n++)
        full[n] = args[n - 1];
    full[n] = NULL;
    return ctl_run_as(&d, uid, 10000 * dt_slow(), full);
}
#define REG_AS(uid, ...) reg_as((uid), (const char *const[]){__VA_ARGS__, NULL})

/* Register and expect success; copies the id. */
static void reg_ok(uid_t uid, char id[DISC_ID_LEN + 1], const char *const *args)
{
    struct ctl_result r = reg_as(uid, args);
    cr_assert_eq(r.code, 0, "register as uid %d failed (%d): %s", (int)uid, r.code, r.err);
    cr_assert_eq(strlen(r.out), DISC_ID_LEN + 1, "not an id line: '%s'", r.out);
    memcpy(id, r.out, DISC_ID_LEN);
    id[DISC_ID_LEN] = '\0';
    ctl_result_free(&r);
}
#define REG_OK(uid, id, ...) reg_ok((uid), (id), (const char *const[]){__VA_ARGS__, NULL})

/* Expect a refusal (exit 1) whose message contains every given text. */
static void expect_refused(struct ctl_result *r, const char *a, const char *b)
{
    cr_assert_eq(r->code, 1, "expected a refusal (exit 1), got %d: out '%s' err '%s'", r->code,
                 r->out, r->err);
    cr_assert_str_empty(r->out, "a refused registration printed an id: %s", r->out);
    cr_assert(strstr(r->err, a), "the error does not name '%s': %s", a, r->err);
    cr_assert(!b || strstr(r->err, b), "the error does not name '%s': %s", b, r->err);
    ctl_result_free(r);
}

/* Owner of instance id as libdiscshm sees it (asserts it exists). */
static uint32_t owner_of(disc_handle *h, const char *id)
{
    char buf[DISC_INSTANCE_BUF_MAX];
    struct disc_instance *in = NULL;
    int rc = disc_lookup_id(h, id, buf, sizeof(buf), &in, NULL);
    cr_assert_eq(rc, 0, "instance %s not in the segment: %s", id, disc_strerror(rc));
    return in->owner_uid;
}

static int count_service(const char *svc)
{
    disc_handle *h = dt_open_reader(&d);
    int n = disc_count(h, svc);
    disc_close(h);
    return n;
}

Test(policy, reserved_name_is_refused_naming_the_rule)
{
    need_root();
    start((char *const[]){"--register-rule", "deny any system.*", "--register-rule",
                          "allow uid:65534 app.*", NULL});
    struct ctl_result r = REG_AS(NOBODY, "--service", "system.auth", "--address", "127.0.0.1:1000");
    expect_refused(&r, "register-rule 1 (deny any system.*)", "uid 65534");
    /* A name no rule allows: refused, saying so. */
    r = REG_AS(NOBODY, "--service", "billing", "--address", "127.0.0.1:1001");
    expect_refused(&r, "no register-rule allows it", "uid 65534");
    cr_assert_eq(count_service("system.auth"), 0);
    cr_assert_eq(count_service("billing"), 0);
    /* Root is not restricted; 65534 may use its own prefix. */
    char a[DISC_ID_LEN + 1], b[DISC_ID_LEN + 1];
    REG_OK((uid_t)-1, a, "--service", "system.auth", "--address", "127.0.0.1:1002");
    REG_OK(NOBODY, b, "--service", "app.web", "--address", "127.0.0.1:1003");
    cr_assert_eq(count_service("system.auth"), 1);
    cr_assert_eq(count_service("app.web"), 1);
    /* The refusal is logged with the rule. */
    FILE *f = fopen(d.log, "r");
    cr_assert_not_null(f);
    char line[2048];
    bool logged = false;
    while (fgets(line, sizeof(line), f))
        logged |= strstr(line, "registration refused") && strstr(line, "register-rule 1");
    fclose(f);
    cr_assert(logged, "discd did not log the refusal with its rule");
}

Test(policy, instance_limit_is_refused_naming_the_limit)
{
    need_root();
    start((char *const[]){"--register-limit", "uid:65534 instances=3 bytes=100000", NULL});
    char ids[3][DISC_ID_LEN + 1];
    for (int i = 0; i < 3; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", 2000 + i);
        REG_OK(NOBODY, ids[i], "--service", "quota", "--address", addr);
    }
    struct ctl_result r = REG_AS(NOBODY, "--service", "quota", "--address", "127.0.0.1:2003");
    expect_refused(&r, "register-limit 1 (uid:65534 instances=3 bytes=100000)",
                   "already has 3 instance(s)");
    cr_assert_eq(count_service("quota"), 3);
    /* Root is not limited by 65534's line. */
    char rid[DISC_ID_LEN + 1];
    REG_OK((uid_t)-1, rid, "--service", "quota", "--address", "127.0.0.1:2004");
    /* The limit counts what the uid holds now: free one, register again. */
    r = CTL_AS(&d, NOBODY, "deregister", ids[0]);
    cr_assert_eq(r.code, 0, "%s", r.err);
    ctl_result_free(&r);
    REG_OK(NOBODY, ids[0], "--service", "quota", "--address", "127.0.0.1:2005");
    cr_assert_eq(count_service("quota"), 4);
}

Test(policy, byte_limit_is_refused_naming_the_limit)
{
    need_root();
    start((char *const[]){"--register-limit", "uid:65534 bytes=1000", NULL});
    /* ~660-byte records (two 250-byte tags): one fits in 1000, two do not. */
    char big[300];
    memset(big, 'v', 250);
    big[250] = '\0';
    char t1[320], t2[320];
    snprintf(t1, sizeof(t1), "a=%s", big);
    snprintf(t2, sizeof(t2), "b=%s", big);
    char id[DISC_ID_LEN + 1];
    REG_OK(NOBODY, id, "--service", "fat", "--address", "127.0.0.1:3000", "--tag", t1, "--tag", t2);
    struct ctl_result r =
        REG_AS(NOBODY, "--service", "fat", "--address", "127.0.0.1:3001", "--tag", t1, "--tag", t2);
    expect_refused(&r, "register-limit 1 (uid:65534 bytes=1000)", "allows 1000 bytes per uid");
    cr_assert_eq(count_service("fat"), 1);
    /* A small record still fits. */
    REG_OK(NOBODY, id, "--service", "thin", "--address", "127.0.0.1:3002");
}

Test(policy, deregistering_another_uids_instance_is_refused)
{
    need_root();
    start(NULL);
    char rootid[DISC_ID_LEN + 1], mine[DISC_ID_LEN + 1];
    REG_OK((uid_t)-1, rootid, "--service", "shared", "--address", "127.0.0.1:4000");
    REG_OK(NOBODY, mine, "--service", "shared", "--address", "127.0.0.1:4001");
    struct ctl_result r = CTL_AS(&d, NOBODY, "deregister", rootid);
    cr_assert_eq(r.code, 1, "deregistering root's instance: exit %d: %s", r.code, r.err);
    cr_assert(strstr(r.err, "forbidden") && strstr(r.err, "registered by uid 0"), "%s", r.err);
    ctl_result_free(&r);
    cr_assert_eq(count_service("shared"), 2, "root's instance must stay");
    /* Its own instance it may remove; root may remove anyone's. */
    r = CTL_AS(&d, NOBODY, "deregister", mine);
    cr_assert_eq(r.code, 0, "%s", r.err);
    ctl_result_free(&r);
    cr_assert_eq(count_service("shared"), 1);
}

Test(policy, owners_show_in_libdiscshm_and_discctl_and_filter)
{
    need_root();
    start(NULL); /* the default policy: any uid may register any name */
    char rootid[DISC_ID_LEN + 1], nid[DISC_ID_LEN + 1];
    REG_OK((uid_t)-1, rootid, "--service", "owned", "--address", "127.0.0.1:5000");
    REG_OK(NOBODY, nid, "--service", "owned", "--address", "127.0.0.1:5001");

    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(owner_of(h, rootid), 0u);
    cr_assert_eq(owner_of(h, nid), 65534u);
    /* Filters: one owner, a set, none matching. */
    struct disc_filter f;
    disc_filter_init(&f);
    f.service = "owned";
    cr_assert_eq(disc_filter_add_owner(&f, 65534), 0);
    char buf[2 * DISC_INSTANCE_BUF_MAX];
    struct disc_instance *list;
    int n = disc_lookup_filtered(h, &f, buf, sizeof(buf), &list, NULL);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(list[0].id, nid);
    cr_assert_eq(disc_filter_add_owner(&f, 0), 0);
    cr_assert_eq(disc_lookup_filtered(h, &f, buf, sizeof(buf), &list, NULL), 2);
    disc_filter_init(&f);
    f.service = "owned";
    disc_filter_add_owner(&f, 4242);
    cr_assert_eq(disc_lookup_filtered(h, &f, buf, sizeof(buf), &list, NULL), 0);
    cr_assert_eq(disc_filter_add_owner(&f, DISC_OWNER_UNKNOWN), -EINVAL);
    /* The zero-copy iterator and the picker apply the same filter. */
    disc_filter_init(&f);
    f.service = "owned";
    disc_filter_add_owner(&f, 0);
    disc_picker *p;
    cr_assert_eq(disc_picker_create(DISC_PICK_RANDOM, 7, 0, &p), 0);
    for (int i = 0; i < 20; i++) {
        struct disc_instance *in;
        cr_assert_eq(disc_pick(h, &f, p, NULL, 0, buf, sizeof(buf), &in, NULL), 0);
        cr_assert_str_eq(in->id, rootid);
    }
    disc_picker_destroy(p);
    struct disc_read rd;
    int seen = 0, rc;
    do {
        seen = 0;
        cr_assert_eq(disc_read_begin(h, &rd), 0);
        struct disc_filter_iter it;
        cr_assert_eq(disc_read_filter_begin(&rd, &f, &it), 0);
        struct disc_instance v;
        while (disc_read_filter_next(&rd, &it, &v) == 1) {
            cr_assert_eq(v.owner_uid, 0u);
            seen++;
        }
    } while ((rc = disc_read_end(&rd)) == -EAGAIN);
    cr_assert_eq(seen, 1);
    disc_close(h);

    /* discctl: the owner column / field, and --owner UID|USER. */
    struct ctl_result r = CTL_AS(&d, NOBODY, "get", "owned", "--json");
    cr_assert_eq(r.code, 0, "%s", r.err);
    json_t *j = ctl_json(&r);
    size_t i;
    json_t *v;
    int found = 0;
    json_array_foreach(json_object_get(j, "instances"), i, v)
    {
        const char *id = json_string_value(json_object_get(v, "id"));
        json_int_t o = json_integer_value(json_object_get(v, "owner_uid"));
        cr_assert_eq(o, strcmp(id, nid) == 0 ? 65534 : 0, "owner of %s", id);
        found++;
    }
    cr_assert_eq(found, 2);
    json_decref(j);
    ctl_result_free(&r);
    r = CTL(&d, "get", "owned", "--owner", "nobody");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "OWNER") && strstr(r.out, nid) && strstr(r.out, "65534"), "%s", r.out);
    cr_assert_null(strstr(r.out, rootid));
    ctl_result_free(&r);
    r = CTL(&d, "get", "owned", "--owner", "root", "--owner", "65534", "--json");
    cr_assert_eq(r.code, 0, "%s", r.err);
    j = ctl_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "instances")), 2);
    json_decref(j);
    ctl_result_free(&r);
    r = CTL(&d, "get", "owned", "--owner", "4242");
    cr_assert_eq(r.code, 3, "no instance of uid 4242: exit %d", r.code);
    ctl_result_free(&r);
    r = CTL(&d, "get", "owned", "--owner", "no-such-user-here");
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "neither a uid nor a user name"), "%s", r.err);
    ctl_result_free(&r);
}

Test(policy, socket_mode_and_group_are_honoured)
{
    need_root();
    start((char *const[]){"--socket-mode", "0660", "--socket-group", "65534", NULL});
    struct stat st;
    cr_assert_eq(stat(d.sock, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0660, "mode %o", st.st_mode & 07777);
    cr_assert_eq(st.st_gid, 65534u);
    /* gid 65534 (setpriv --regid) may connect through the group bits. */
    char id[DISC_ID_LEN + 1];
    REG_OK(NOBODY, id, "--service", "grp", "--address", "127.0.0.1:6000");
    dt_finish(&d);
    started = false;

    start((char *const[]){"--socket-mode", "0600", NULL});
    cr_assert_eq(stat(d.sock, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
    cr_assert_eq(st.st_gid, getegid());
    struct ctl_result r = REG_AS(NOBODY, "--service", "grp", "--address", "127.0.0.1:6001");
    cr_assert_eq(r.code, 4, "uid 65534 got through a 0600 socket: exit %d %s", r.code, r.out);
    cr_assert(strstr(r.err, "ermission denied"), "%s", r.err);
    ctl_result_free(&r);
    cr_assert_eq(count_service("grp"), 0);
}

Test(policy, register_then_get_always_finds_it)
{
    start(NULL);
    for (int i = 0; i < 40; i++) {
        char svc[32], addr[32], id[DISC_ID_LEN + 1];
        snprintf(svc, sizeof(svc), "ryw-%d", i);
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", 7000 + i);
        REG_OK((uid_t)-1, id, "--service", svc, "--address", addr);
        struct ctl_result r = CTL(&d, "get", svc);
        cr_assert_eq(r.code, 0, "round %d: get right after register: exit %d %s", i, r.code, r.err);
        cr_assert(strstr(r.out, id), "round %d: %s", i, r.out);
        ctl_result_free(&r);
        r = CTL(&d, "deregister", id);
        cr_assert_eq(r.code, 0, "%s", r.err);
        ctl_result_free(&r);
        r = CTL(&d, "get", svc);
        cr_assert_eq(r.code, 3, "round %d: get right after deregister: exit %d %s", i, r.code,
                     r.out);
        ctl_result_free(&r);
    }
    /* --json carries the generation, and the segment has reached it. */
    struct ctl_result r =
        CTL(&d, "register", "--json", "--service", "ryw-gen", "--address", "127.0.0.1:7999");
    cr_assert_eq(r.code, 0, "%s", r.err);
    json_t *j = ctl_json(&r);
    json_int_t gen = json_integer_value(json_object_get(j, "generation"));
    cr_assert_gt(gen, 0);
    disc_handle *h = dt_open_reader(&d);
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert_geq(st.generation, (uint64_t)gen);
    disc_close(h);
    json_decref(j);
    ctl_result_free(&r);
    r = CTL(&d, "register", "--no-wait", "--service", "ryw-nw", "--address", "127.0.0.1:7998");
    cr_assert_eq(r.code, 0, "%s", r.err);
    ctl_result_free(&r);
}

/* Write the config file at path (a tmpfile the test owns). */
static void write_config(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* SIGHUP discd and wait until it logged the n-th "SIGHUP received". */
static void hup_and_wait(int n)
{
    cr_assert_eq(kill(d.proc.pid, SIGHUP), 0);
    for (int i = 0; i < 1000 * dt_slow(); i++) {
        FILE *f = fopen(d.log, "r");
        cr_assert_not_null(f);
        char line[2048];
        int seen = 0, done = 0;
        while (fgets(line, sizeof(line), f)) {
            seen += strstr(line, "SIGHUP received") != NULL;
            done += strstr(line, "SIGHUP: reloaded") != NULL ||
                    strstr(line, "SIGHUP: configuration not reloaded") != NULL;
        }
        fclose(f);
        if (seen >= n && done >= n)
            return;
        usleep(10000);
    }
    cr_assert_fail("discd did not finish reload %d", n);
}

Test(policy, sighup_reloads_the_registration_policy)
{
    need_root();
    char conf[] = "/tmp/discshm-policy-XXXXXX.conf";
    int fd = mkstemps(conf, 5);
    cr_assert_geq(fd, 0);
    close(fd);
    write_config(conf, "register-rule = deny uid:65534 app.*\n"
                       "register-rule = allow any *\n"
                       "register-limit = uid:65534 instances=1\n");
    start((char *const[]){"--config", conf, NULL});
    struct ctl_result r = REG_AS(NOBODY, "--service", "app.web", "--address", "127.0.0.1:1100");
    expect_refused(&r, "register-rule 1 (deny uid:65534 app.*)", "uid 65534");

    /* The operator edits the rules and reloads: the new rule and limit apply at once. */
    write_config(conf, "register-rule = allow any *\n"
                       "register-limit = uid:65534 instances=2\n");
    hup_and_wait(1);
    char a[DISC_ID_LEN + 1], b[DISC_ID_LEN + 1];
    REG_OK(NOBODY, a, "--service", "app.web", "--address", "127.0.0.1:1101");
    REG_OK(NOBODY, b, "--service", "app.web", "--address", "127.0.0.1:1102");
    r = REG_AS(NOBODY, "--service", "app.web", "--address", "127.0.0.1:1103");
    expect_refused(&r, "register-limit 1 (uid:65534 instances=2)", "uid 65534");
    cr_assert_eq(count_service("app.web"), 2);
    cr_assert(dt_log_has(&d, "register-rules=1 register-limits=1"));
    cr_assert(!dt_log_has(&d, "settings other than"), "a policy change is not a restart-only one");

    /* A bad line: the reload is refused naming it, and the policy in force stays. */
    write_config(conf, "register-rule = deny uid:65534 app.*\n"
                       "register-rule = perhaps any *\n");
    hup_and_wait(2);
    cr_assert(dt_log_has(&d, "configuration not reloaded"));
    cr_assert(dt_log_has(&d, "perhaps"), "the error does not name the bad line");
    r = CTL(&d, "deregister", a);
    cr_assert_eq(r.code, 0, "%s", r.err);
    ctl_result_free(&r);
    char c2[DISC_ID_LEN + 1];
    REG_OK(NOBODY, c2, "--service", "app.web", "--address", "127.0.0.1:1104");
    cr_assert_eq(count_service("app.web"), 2);
    unlink(conf);
}
