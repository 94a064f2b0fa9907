/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_persist.c — a discd restart in ZooKeeper mode (docs/DESIGN.md,
 * "Persistence"). Host A is SIGKILLed while a client registers and
 * deregisters on it, and restarted at once; a reader process samples host
 * B's segment all the while:
 *   - A's local instances afterwards are exactly the acknowledged ones, and
 *     B converges to the same set, by id;
 *   - B never sees A's other instances vanish (A resumed its ZooKeeper
 *     session, so its ephemeral nodes never went away);
 * then A is killed for longer than its session timeout: the session cannot
 * be resumed, A opens a new one and re-creates its nodes with the same ids.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zk_server.h"
#include "zkd_util.h"

#define STABLE "ps-stable"
#define CHURN  "ps-churn"

static struct zk_cluster zk;
static struct zkd a, b;
static char root[128];

static void teardown(void)
{
    zkd_teardown(&zk, &a, &b, NULL);
}

TestSuite(zkd_persist, .fini = teardown, .timeout = 170);

/* A reader process on B's registry: samples the count of STABLE until its
 * stop pipe closes, then writes "min samples" to its result pipe. */
struct sampler {
    pid_t pid;
    int stop_w, res_r;
};

static void sampler_start(struct sampler *s, const char *name)
{
    int stop[2], res[2];
    cr_assert_eq(pipe(stop), 0);
    cr_assert_eq(pipe(res), 0);
    fflush(NULL);
    s->pid = fork();
    cr_assert_geq(s->pid, 0);
    if (s->pid == 0) {
        close(stop[1]);
        close(res[0]);
        fcntl(stop[0], F_SETFL, O_NONBLOCK);
        disc_handle *h = NULL;
        if (disc_open(name, 0, &h) < 0)
            _exit(2);
        long min = 1L << 30, samples = 0;
        char c;
        while (read(stop[0], &c, 1) < 0) {
            int n = disc_count(h, STABLE);
            if (n < min)
                min = n;
            samples++;
            usleep(500);
        }
        char out[64];
        int len = snprintf(out, sizeof(out), "%ld %ld", min, samples);
        if (write(res[1], out, (size_t)len) != len)
            _exit(3);
        _exit(0);
    }
    close(stop[0]);
    close(res[1]);
    s->stop_w = stop[1];
    s->res_r = res[0];
}

static void sampler_stop(struct sampler *s, long *min, long *samples)
{
    close(s->stop_w);
    char out[64] = "";
    ssize_t n = read(s->res_r, out, sizeof(out) - 1);
    close(s->res_r);
    int st;
    waitpid(s->pid, &st, 0);
    cr_assert(n > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "sampler failed (%d)", st);
    out[n] = '\0';
    cr_assert_eq(sscanf(out, "%ld %ld", min, samples), 2);
}

/* Sorted ids of svc in a registry, ','-joined, via the segment of z. */
static void seg_ids(struct zkd *z, const char *svc, char *out, size_t len)
{
    static char buf[1 << 20];
    struct disc_instance *list;
    size_t need;
    int n = disc_lookup(z->h, svc, buf, sizeof(buf), &list, &need);
    char(*ids)[DISC_ID_LEN + 1] = calloc((size_t)(n > 0 ? n : 1), DISC_ID_LEN + 1);
    for (int i = 0; i < n; i++)
        memcpy(ids[i], list[i].id, DISC_ID_LEN + 1);
    qsort(ids, (size_t)(n > 0 ? n : 0), DISC_ID_LEN + 1,
          (int (*)(const void *, const void *))strcmp);
    out[0] = '\0';
    for (int i = 0; i < n && strlen(out) + DISC_ID_LEN + 2 < len; i++) {
        strcat(out, ids[i]);
        strcat(out, ",");
    }
    free(ids);
}

/* The last "session 0x... established" of z's log (all runs), and how many. */
static int last_session(struct zkd *z, char *sid, size_t len)
{
    FILE *f = fopen(z->proc.log, "r");
    cr_assert(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        char *p = strstr(line, "session 0x");
        if (p && strstr(p, "established")) {
            snprintf(sid, len, "%.*s", (int)strcspn(p + 8, " "), p + 8);
            n++;
        }
    }
    fclose(f);
    return n;
}

static void wait_same_ids(const char *svc, const char *want, int timeout_ms)
{
    static char got[1 << 16];
    long long end = proc_now_ms() + (long long)timeout_ms * dt_slow();
    do {
        seg_ids(&b, svc, got, sizeof(got));
        if (strcmp(got, want) == 0)
            return;
        proc_sleep_ms(20);
    } while (proc_now_ms() < end);
    cr_assert_str_eq(got, want, "host B does not show host A's %s instances", svc);
}

Test(zkd_persist, restart_during_churn_keeps_every_instance_in_the_region)
{
    zkd_zookeeper(&zk, root, sizeof(root), "persist");
    zkd_start(&a, "pa", zk.connect, root);
    zkd_start(&b, "pb", zk.connect, root);
    struct disc_status st;
    zkd_all_synced(20000, &a, &b, NULL);
    char id[DISC_ID_LEN + 1];
    for (int i = 0; i < 3; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "10.1.0.%d:80", i + 1);
        zkd_register(&a, STABLE, addr, id);
    }
    cr_assert(zkd_wait_count(&b, STABLE, 3, 10000), "B did not learn A's instances");
    static char stable[4096];
    seg_ids(&a, STABLE, stable, sizeof(stable));
    char sid1[64];
    cr_assert_eq(last_session(&a, sid1, sizeof(sid1)), 1);

    /* Fast restart during churn, B sampled throughout. */
    struct sampler smp;
    sampler_start(&smp, b.proc.name);
    struct dt_churn ch;
    dt_churn_start(&ch, &a.proc, CHURN);
    proc_sleep_ms(400);
    discd_proc_kill(&a.proc);
    int acked = dt_churn_wait(&ch, 10000);
    cr_assert_gt(acked, 5);
    zkd_restart(&a, zk.connect, root);
    cr_assert(zkd_wait_synced(&a, 20000, &st));
    int n = dt_churn_verify(&ch, &a.proc, CHURN);
    static char want[1 << 16];
    long long end = proc_now_ms() + 5000 * dt_slow();
    do { /* A's segment catches up with its registry */
        seg_ids(&a, CHURN, want, sizeof(want));
        proc_sleep_ms(10);
    } while ((int)(strlen(want) / (DISC_ID_LEN + 1)) != n && proc_now_ms() < end);
    cr_assert_eq((int)(strlen(want) / (DISC_ID_LEN + 1)), n);
    wait_same_ids(CHURN, want, 15000);
    proc_sleep_ms(500);
    long min, samples;
    sampler_stop(&smp, &min, &samples);
    fprintf(stderr,
            "fast restart: %d acknowledged registrations, %d instances after; B's count of %s "
            "never below %ld in %ld samples\n",
            acked, n, STABLE, min, samples);
    cr_assert_gt(samples, 100);
    cr_assert_eq(min, 3, "host B saw host A's instances vanish during a fast restart");
    char sid2[64];
    cr_assert_eq(last_session(&a, sid2, sizeof(sid2)), 2);
    cr_assert_str_eq(sid2, sid1, "the ZooKeeper session was not resumed");
    cr_assert_eq(dt_log_has(&a.proc, "resuming session "), 1);

    /* Slow restart: the session expires; A re-creates its nodes (same ids). */
    discd_proc_kill(&a.proc);
    proc_sleep_ms(ZKD_SESSION_MS + 3000);
    zkd_restart(&a, zk.connect, root);
    cr_assert(zkd_wait_synced(&a, 30000, &st));
    char sid3[64];
    cr_assert_eq(last_session(&a, sid3, sizeof(sid3)), 3);
    cr_assert_str_neq(sid3, sid1, "an expired session cannot have been resumed");
    wait_same_ids(STABLE, stable, 15000);
    wait_same_ids(CHURN, want, 15000);

    /* Clean stop: SIGTERM closes the session, so the state file forgets it
     * and the next start opens a new one without trying the closed one. */
    int resumes = dt_log_has(&a.proc, "resuming session ");
    cr_assert_eq(discd_proc_stop(&a.proc, 10000 * dt_slow()), 0, "discd did not stop on SIGTERM");
    zkd_restart(&a, zk.connect, root);
    cr_assert(zkd_wait_synced(&a, 30000, &st));
    char sid4[64];
    cr_assert_eq(last_session(&a, sid4, sizeof(sid4)), 4);
    cr_assert_str_neq(sid4, sid3, "a session closed by a clean stop cannot be resumed");
    cr_assert_eq(dt_log_has(&a.proc, "resuming session "), resumes,
                 "a clean stop left its closed session to be resumed");
    cr_assert_eq(dt_log_has(&a.proc, "a ZooKeeper session to resume"), resumes);
    wait_same_ids(STABLE, stable, 15000);
    zkd_finish(&a);
    zkd_finish(&b);
}
