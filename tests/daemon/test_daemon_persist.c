/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_persist.c — nothing registered is lost by a discd restart
 * (docs/DESIGN.md, "Persistence"), standalone:
 *   - SIGKILL during churn (a client registering and deregistering on its
 *     own connection), three times: afterwards the local instances are
 *     exactly the acknowledged ones, by id;
 *   - SIGKILL right after an acknowledgement (of a registration that the
 *     control thread published itself, before its fdatasync): the restart
 *     has it; the same for a deregistration;
 *   - restored instances keep their ids and owners; session instances wait
 *     --session-grace for their client to re-attach (op attach), the others
 *     are removed after it; other uids may not attach;
 *   - a state file or directory another uid could have written is refused;
 *     a torn or unreadable record is skipped with a log line.
 */
#include <criterion/criterion.h>
#include <errno.h>
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

TestSuite(daemon_persist, .fini = teardown);

static void restart(char *const extra[])
{
    int rc = discd_proc_start(&d, extra, 10000 * dt_slow());
    if (rc)
        proc_dump_log(&d.proc);
    cr_assert_eq(rc, 0, "restart failed");
}

Test(daemon_persist, sigkill_during_churn_loses_no_acknowledged_change)
{
    dt_start(&d, "churn", NULL);
    const char *svcs[] = {"churn-a", "churn-b", "churn-c"};
    int kept[3];
    for (int round = 0; round < 3; round++) {
        struct dt_churn ch;
        dt_churn_start(&ch, &d, svcs[round]);
        proc_sleep_ms(250 + 100 * round);
        discd_proc_kill(&d); /* mid-request, most likely */
        int acked = dt_churn_wait(&ch, 10000);
        cr_assert_gt(acked, 5, "only %d registrations before the kill", acked);
        restart(NULL);
        kept[round] = dt_churn_verify(&ch, &d, svcs[round]);
        fprintf(stderr, "round %d: %d registrations acknowledged, %d instances after restart\n",
                round, acked, kept[round]);
    }
    /* Earlier rounds survived the later restarts too. */
    for (int round = 0; round < 2; round++) {
        json_t *r = dt_callf(&d, "{\"op\":\"query\",\"service\":\"%s\"}", svcs[round]);
        cr_assert(dt_ok(r));
        cr_assert_eq((int)json_array_size(json_object_get(r, "instances")), kept[round]);
        json_decref(r);
    }
    /* The segment shows them too. */
    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, svcs[2], kept[2], 3000), kept[2]);
    disc_close(h);
}

/* The control thread publishes an idle change itself, before the journal is
 * synced (DESIGN.md, "Persistence"); the reply still waits for the sync. A
 * kill as soon as the reply arrives must find the change in the state file:
 * a registration is there after the restart, a deregistration stays done. */
Test(daemon_persist, sigkill_right_after_the_ack_keeps_the_change)
{
    dt_start(&d, "ackkill", NULL);
    for (int round = 0; round < 3; round++) {
        struct discd_conn c;
        cr_assert_eq(discd_conn_open(&d, &c), 0);
        char id[DISC_ID_LEN + 1];
        dt_register(&c, "ackkill", "127.0.0.1:7", "{\"type\":\"none\"}", id);
        discd_proc_kill(&d);
        discd_conn_close(&c);
        restart(NULL);
        json_t *r = dt_callf(&d, "{\"op\":\"query\",\"service\":\"ackkill\"}");
        cr_assert(dt_ok(r));
        json_t *list = json_object_get(r, "instances");
        cr_assert_eq(json_array_size(list), 1, "round %d: acknowledged registration lost: %s",
                     round, json_dumps(r, 0));
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "id")), id);
        json_decref(r);

        cr_assert_eq(discd_conn_open(&d, &c), 0);
        char line[128];
        snprintf(line, sizeof(line), "{\"op\":\"deregister\",\"id\":\"%s\"}", id);
        r = dt_call(&c, line);
        cr_assert(dt_ok(r), "deregister failed: %s", json_dumps(r, 0));
        json_decref(r);
        discd_proc_kill(&d);
        discd_conn_close(&c);
        restart(NULL);
        r = dt_callf(&d, "{\"op\":\"query\",\"service\":\"ackkill\"}");
        cr_assert(dt_ok(r));
        cr_assert_eq(json_array_size(json_object_get(r, "instances")), 0,
                     "round %d: acknowledged deregistration undone: %s", round, json_dumps(r, 0));
        json_decref(r);
    }
}

static char *attach_line(const char *id)
{
    static char line[128];
    snprintf(line, sizeof(line), "{\"op\":\"attach\",\"id\":\"%s\"}", id);
    return line;
}

Test(daemon_persist, restored_ids_owners_and_session_grace)
{
    dt_start(&d, "grace", NULL);
    struct discd_conn c1, c2;
    cr_assert_eq(discd_conn_open(&d, &c1), 0);
    cr_assert_eq(discd_conn_open(&d, &c2), 0);
    char a[DISC_ID_LEN + 1], s1[DISC_ID_LEN + 1], s2[DISC_ID_LEN + 1], nb[DISC_ID_LEN + 1] = "";
    dt_register(&c1, "p-none", "127.0.0.1:1", "{\"type\":\"none\"}", a);
    dt_register(&c1, "p-sess", "127.0.0.1:2", NULL, s1);
    dt_register(&c2, "p-sess", "127.0.0.1:3", NULL, s2);
    bool root = geteuid() == 0;
    if (root)
        cr_assert_eq(dt_run_as(&d, 65534,
                               "{\"op\":\"register\",\"instance\":{\"service\":\"p-nobody\","
                               "\"address\":\"127.0.0.1:4\"},\"check\":{\"type\":\"none\"}}",
                               NULL, nb),
                     0);
    char *before = dt_dump_canonical(&d);

    discd_proc_kill(&d);
    discd_conn_close(&c1);
    discd_conn_close(&c2);
    char *extra[] = {"--session-grace", "1500", NULL};
    restart(extra);
    long long t0 = proc_now_ms();
    char *after = dt_dump_canonical(&d);
    cr_assert_str_eq(after, before, "restored registry differs (ids, fields, checks)");
    free(before);
    free(after);
    cr_assert(dt_log_has(&d, "2 session instances wait up to 1500 ms"));

    /* Owners are restored: nobody may not take over or remove root's
     * instances, but still owns its own. */
    if (root) {
        cr_assert_eq(dt_run_as(&d, 65534, attach_line(s1), "forbidden", NULL), 0,
                     "another uid attached root's session instance");
        char line[128];
        snprintf(line, sizeof(line), "{\"op\":\"deregister\",\"id\":\"%s\"}", a);
        cr_assert_eq(dt_run_as(&d, 65534, line, "forbidden", NULL), 0);
        snprintf(line, sizeof(line), "{\"op\":\"deregister\",\"id\":\"%s\"}", nb);
        cr_assert_eq(dt_run_as(&d, 65534, line, NULL, NULL), 0, "nobody lost its instance");
    }
    /* s1's client comes back; s2's does not. */
    struct discd_conn c3;
    cr_assert_eq(discd_conn_open(&d, &c3), 0);
    json_t *r = dt_call(&c3, attach_line(s1));
    cr_assert(dt_ok(r), "attach failed: %s", json_dumps(r, 0));
    cr_assert_str_eq(json_string_value(json_object_get(r, "id")), s1);
    json_decref(r);
    r = dt_call(&c3, attach_line(s1)); /* once only */
    cr_assert_str_eq(dt_err_code(r), "bad_request");
    json_decref(r);
    r = dt_call(&c3, attach_line(a)); /* not a session instance */
    cr_assert_str_eq(dt_err_code(r), "bad_request");
    json_decref(r);
    r = dt_call(&c3, attach_line("00000000-0000-4000-8000-000000000000"));
    cr_assert_str_eq(dt_err_code(r), "not_found");
    json_decref(r);

    /* Keep answering c3's pings past the grace period. */
    while (proc_now_ms() < t0 + 1500 + 700) {
        char *line = NULL;
        if (discd_conn_reply(&c3, &line, 50, 1) > 0)
            cr_assert_fail("unexpected response: %s", line);
        free(line);
    }
    cr_assert_gt(c3.pings_seen, 0, "the re-attached instance is not pinged");
    r = dt_call1(&d, "{\"op\":\"query\",\"service\":\"p-sess\"}");
    json_t *list = json_object_get(r, "instances");
    cr_assert_eq(json_array_size(list), 1, "%s", json_dumps(r, 0));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "id")), s1);
    json_decref(r);
    cr_assert(dt_log_has(&d, "did not re-attach within the grace period"));
    /* The re-attached instance is owned by c3 now: closing it removes it. */
    discd_conn_close(&c3);
    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, "p-sess", 0, 3000), 0);
    cr_assert_eq(disc_count(h, "p-none"), 1);
    disc_close(h);
}

static void state_file(char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s.state", d.state_dir, d.name);
}

/* Start discd expecting it to refuse with a log line containing why. */
static void expect_refusal(const char *why)
{
    cr_assert_eq(discd_proc_spawn(&d, NULL), 0);
    cr_assert_eq(proc_wait(&d.proc, 10000 * dt_slow()), 0, "discd did not exit");
    cr_assert_eq(proc_exit_code(&d.proc), 1);
    cr_assert(dt_log_has(&d, why), "no '%s' in the log", why);
}

Test(daemon_persist, state_another_uid_could_write_is_refused)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to create files of another uid");
    dt_start(&d, "trust", NULL);
    char id[DISC_ID_LEN + 1];
    json_t *r = dt_call1(&d, "{\"op\":\"register\",\"instance\":{\"service\":\"t\",\"address\":"
                             "\"127.0.0.1:1\"},\"check\":{\"type\":\"none\"}}");
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r, "id")));
    json_decref(r);
    cr_assert_eq(discd_proc_stop(&d, 5000), 0);
    char path[600];
    state_file(path, sizeof(path));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "state file mode %o", st.st_mode & 0777);
    cr_assert_eq(stat(d.state_dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700, "state dir mode %o", st.st_mode & 0777);

    /* Each attack its own error. */
    cr_assert_eq(chown(path, 65534, 65534), 0);
    expect_refusal("owned by uid 65534, not by discd's uid 0");
    cr_assert_eq(chown(path, 0, 0), 0);
    cr_assert_eq(chmod(path, 0620), 0);
    expect_refusal("writable by group or others (mode 0620)");
    cr_assert_eq(chmod(path, 0600), 0);
    cr_assert_eq(chmod(d.state_dir, 0777), 0);
    expect_refusal("refusing state directory");
    cr_assert_eq(chmod(d.state_dir, 0700), 0);
    cr_assert_eq(chown(d.state_dir, 65534, 65534), 0);
    expect_refusal("refusing state directory");
    cr_assert_eq(chown(d.state_dir, 0, 0), 0);
    /* A symbolic link in place of the file is refused too. */
    char moved[700];
    snprintf(moved, sizeof(moved), "%s.real", path);
    cr_assert_eq(rename(path, moved), 0);
    cr_assert_eq(symlink(moved, path), 0);
    expect_refusal("is a symbolic link");
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(rename(moved, path), 0);

    /* Repaired: it starts and restores the instance. */
    restart(NULL);
    r = dt_call1(&d, "{\"op\":\"query\",\"service\":\"t\"}");
    cr_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(r, "instances"), 0), "id")),
                     id);
    json_decref(r);
}

Test(daemon_persist, torn_and_unreadable_records_are_skipped_and_logged)
{
    dt_start(&d, "torn", NULL);
    char a[DISC_ID_LEN + 1], b[DISC_ID_LEN + 1];
    struct discd_conn c;
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    dt_register(&c, "torn", "127.0.0.1:1", "{\"type\":\"none\"}", a);
    discd_proc_kill(&d);
    discd_conn_close(&c);
    char path[600];
    state_file(path, sizeof(path));
    FILE *f = fopen(path, "a");
    cr_assert(f);
    fputs("this is not json\n", f);              /* line 2 */
    fputs("{\"put\":{\"id\":\"half-written", f); /* torn: no newline */
    fclose(f);
    restart(NULL);
    cr_assert(dt_log_has(&d, ".state:2: unreadable record skipped"));
    cr_assert(dt_log_has(&d, ".state:3: torn last record ignored"));
    cr_assert_eq(dt_status_int(&d, "local_instances"), 1);
    /* Appends after the torn tail are readable: the file was compacted. */
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    dt_register(&c, "torn", "127.0.0.1:2", "{\"type\":\"none\"}", b);
    discd_proc_kill(&d);
    discd_conn_close(&c);
    restart(NULL);
    cr_assert_eq(dt_status_int(&d, "local_instances"), 2);
    cr_assert_eq(dt_log_has(&d, "unreadable record skipped"), 1, "compaction kept a bad record");
    cr_assert_eq(dt_log_has(&d, "torn last record"), 1, "compaction kept the torn record");
}
