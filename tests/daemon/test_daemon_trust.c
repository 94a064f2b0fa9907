/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_trust.c — the host trust boundary with real processes: a
 * second uid (65534, via setpriv) attacks a live registry's objects, runs a
 * squatter discd and fills the tmpfs; 8 reader threads ride through 100
 * discd restarts; discd leaves nothing behind it does not mean to; readers
 * learn that a removed registry is gone. See docs/DESIGN.md, Threat model.
 *
 * Each attack gets its own error (EACCES, or -EPERM for a reader offered
 * an untrusted object), discd keeps serving, and honest readers read
 * exactly what was registered.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon_util.h"

#define NOBODY 65534

static struct discd_proc d, d2;
static char buf[1 << 16];
static char mounted[4400]; /* a tmpfs this test mounted */

static void teardown(void)
{
    dt_finish(&d2);
    dt_finish(&d);
    if (mounted[0]) {
        umount2(mounted, MNT_DETACH);
        rmdir(mounted);
        mounted[0] = 0;
    }
}

/* A fresh --state-dir for the next start of p: these tests restart discd
 * to get a fresh, empty registry (restoring registrations across restarts
 * is tested elsewhere). */
static char *fresh_state(const struct discd_proc *p)
{
    static char paths[8][400];
    static int n;
    char *b = paths[n++ % 8];
    snprintf(b, 400, "%s/state-%d", p->dir, n);
    return b;
}

static const char *regdir(void)
{
    return getenv("DISCSHM_DIR");
}

/* The test executable's private top directory (parent of $DISCSHM_DIR). */
static void top_path(char *out, size_t len, const char *leaf)
{
    snprintf(out, len, "%s/../%s", regdir(), leaf);
}

static void need_root_and_setpriv(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to act as a second uid (CI runs the tests as root)");
    if (access("/usr/bin/setpriv", X_OK) != 0)
        cr_skip_test("setpriv (util-linux) is not installed");
}

/* Run argv as uid/gid 65534 with no groups; returns its exit code. */
static int as_nobody(const char *const *argv, const char *log)
{
    char *full[16];
    int n = 0;
    full[n++] = "/usr/bin/setpriv";
    full[n++] = "--reuid=65534";
    full[n++] = "--regid=65534";
    full[n++] = "--clear-groups";
    for (int i = 0; argv[i] && n < 15; i++)
        full[n++] = (char *)argv[i];
    full[n] = NULL;
    struct proc p;
    cr_assert_eq(proc_spawn(&p, full, NULL, log), 0);
    cr_assert_eq(proc_wait(&p, 20000 * dt_slow()), 0, "%s did not finish", argv[0]);
    return proc_exit_code(&p);
}

static const char *attack_bin(void)
{
    static char path[4200];
    snprintf(path, sizeof(path), "%s/tests/daemon/attack", getenv("DISC_BUILD_DIR"));
    return path;
}

/* attack OP PATH as uid 65534; returns the errno it got (0: it succeeded). */
static int attack(const char *op, const char *path)
{
    const char *argv[] = {attack_bin(), op, path, NULL};
    return as_nobody(argv, NULL);
}

/* Names in dir that contain `name` (the registry's objects). */
static int objects_named(const char *dir, const char *name, char *list, size_t len)
{
    DIR *dd = opendir(dir);
    int n = 0;
    list[0] = 0;
    if (!dd)
        return 0;
    struct dirent *e;
    while ((e = readdir(dd)) != NULL)
        if (strstr(e->d_name, name)) {
            n++;
            size_t l = strlen(list);
            snprintf(list + l, len - l, "%s ", e->d_name);
        }
    closedir(dd);
    return n;
}

static void reg_none(struct discd_proc *p, const char *svc, const char *addr, char *id)
{
    struct discd_conn c;
    cr_assert_eq(discd_conn_open(p, &c), 0);
    dt_register(&c, svc, addr, "{\"type\":\"none\"}", id);
    discd_conn_close(&c);
}

/* Every instance of svc has an address from the expected set. */
static int all_addresses_start_with(disc_handle *h, const char *svc, const char *prefix, int *n)
{
    struct disc_instance *list;
    size_t need;
    int rc = disc_lookup(h, svc, buf, sizeof(buf), &list, &need);
    *n = rc;
    for (int i = 0; i < rc; i++)
        if (strncmp(list[i].address, prefix, strlen(prefix)) != 0)
            return 0;
    return 1;
}

/* ---- 8 reader threads through 100 discd restarts -------------------------- */

#define STORM_THREADS 8
#define STORM_INST    8

struct storm {
    disc_handle *h;
    atomic_int stop;
    atomic_ulong reads, retries, empty, bad;
    char why[256];
    pthread_mutex_t mu;
};

static void storm_fail(struct storm *s, const char *fmt, const char *what, int v)
{
    pthread_mutex_lock(&s->mu);
    if (!s->why[0])
        snprintf(s->why, sizeof(s->why), fmt, what, v);
    else if (strlen(s->why) < 200)
        snprintf(s->why + strlen(s->why), sizeof(s->why) - strlen(s->why), "; %s %d", what, v);
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&s->bad, 1);
}

/* An instance as registered by the storm: service "storm", address
 * 127.0.0.1:91NN with NN < STORM_INST. */
static int storm_ok(const struct disc_instance *in)
{
    int port;
    return in->id && strlen(in->id) == DISC_ID_LEN && strcmp(in->service, "storm") == 0 &&
           sscanf(in->address, "127.0.0.1:%d", &port) == 1 && port >= 9100 &&
           port < 9100 + STORM_INST;
}

static void *storm_reader(void *arg)
{
    struct storm *s = arg;
    char *mine = malloc(1 << 16);
    for (unsigned long i = 0; !atomic_load(&s->stop); i++) {
        if (i % 3 == 0) {
            struct disc_instance *list;
            size_t need;
            int n = disc_lookup(s->h, "storm", mine, 1 << 16, &list, &need);
            if (n == -ENOENT) {
                atomic_fetch_add(&s->empty, 1);
            } else if (n < 0 || n > STORM_INST) {
                storm_fail(s, "%s %d", "lookup returned", n);
            } else {
                for (int k = 0; k < n; k++)
                    if (!storm_ok(&list[k]) || (k > 0 && strcmp(list[k - 1].id, list[k].id) >= 0))
                        storm_fail(s, "%s %d", "lookup: bad or unsorted instance at", k);
            }
        } else if (i % 3 == 1) {
            struct disc_read rd;
            int rc = disc_read_begin(s->h, &rd);
            if (rc == -EAGAIN) {
                atomic_fetch_add(&s->retries, 1);
                continue;
            }
            if (rc < 0) {
                storm_fail(s, "%s %d", "read_begin", rc);
                continue;
            }
            struct disc_service_view sv;
            int bad = 0;
            rc = disc_read_service(&rd, "storm", &sv);
            if (rc == 0) {
                bad |= sv.n_instances > STORM_INST;
                for (uint32_t k = 0; k < sv.n_instances && !bad; k++) {
                    struct disc_instance v;
                    bad |= disc_read_instance(&rd, &sv, k, &v) != 0 || !storm_ok(&v);
                }
            } else {
                bad |= rc != -ENOENT;
            }
            /* only a consistent section may be judged */
            if (disc_read_end(&rd) == -EAGAIN)
                atomic_fetch_add(&s->retries, 1);
            else if (bad)
                storm_fail(s, "%s %d", "zero-copy section saw a bad instance, rc", rc);
        } else {
            struct disc_status st;
            int rc = disc_status(s->h, &st);
            if (rc < 0)
                storm_fail(s, "%s %d", "status", rc);
            else if (st.n_instances > STORM_INST)
                storm_fail(s, "%s %d", "status: instances", (int)st.n_instances);
            else if (st.flags & DISC_ST_GONE)
                storm_fail(s, "%s %#x", "status: gone, flags", (int)st.flags);
        }
        atomic_fetch_add(&s->reads, 1);
    }
    free(mine);
    return NULL;
}

Test(trust, restart_storm_threaded_readers, .fini = teardown, .timeout = 900)
{
    const int restarts = getenv("DISC_SANITIZE") && *getenv("DISC_SANITIZE") ? 25 : 100;
    char *extra[] = {
        "--segment-bytes", "4194304", "--publish-coalesce", "0", "--state-dir", NULL, NULL};
    cr_assert_eq(discd_proc_init(&d, "storm"), 0);
    extra[5] = fresh_state(&d);
    cr_assert_eq(discd_proc_start(&d, extra, 10000 * dt_slow()), 0);
    char id[DISC_ID_LEN + 1], addr[32];
    for (int k = 0; k < STORM_INST; k++) {
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", 9100 + k);
        reg_none(&d, "storm", addr, id);
    }
    static struct storm s;
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.mu, NULL);
    s.h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(s.h, "storm", STORM_INST, 5000 * dt_slow()), STORM_INST);
    pthread_t t[STORM_THREADS];
    for (int i = 0; i < STORM_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, storm_reader, &s), 0);

    for (int r = 0; r < restarts; r++) {
        if (r % 2)
            discd_proc_kill(&d); /* a crash */
        else
            cr_assert_eq(discd_proc_stop(&d, 10000 * dt_slow()), 0);
        extra[5] = fresh_state(&d);
        int rc = discd_proc_start(&d, extra, 10000 * dt_slow());
        if (rc)
            proc_dump_log(&d.proc);
        cr_assert_eq(rc, 0, "restart %d: %s", r, strerror(-rc));
        for (int k = 0; k < STORM_INST; k++) {
            snprintf(addr, sizeof(addr), "127.0.0.1:%d", 9100 + k);
            reg_none(&d, "storm", addr, id);
        }
    }
    cr_assert_eq(dt_wait_count(s.h, "storm", STORM_INST, 5000 * dt_slow()), STORM_INST,
                 "the shared handle followed every restart");
    atomic_store(&s.stop, 1);
    for (int i = 0; i < STORM_THREADS; i++)
        pthread_join(t[i], NULL);
    struct disc_status st;
    cr_assert_eq(disc_status(s.h, &st), 0);
    cr_assert_eq(st.writer_pid, d.proc.pid, "the handle reads the last discd's segment");
    cr_log_info("restart storm: %d restarts, %lu reads (%lu empty, %lu retried), %lu bad", restarts,
                atomic_load(&s.reads), atomic_load(&s.empty), atomic_load(&s.retries),
                atomic_load(&s.bad));
    cr_assert_eq(atomic_load(&s.bad), 0, "invariant violations: %s", s.why);
    cr_assert_gt(atomic_load(&s.reads), (unsigned long)restarts * 10, "readers made progress");
    disc_close(s.h);
}

/* ---- leaving nothing behind; gone registries --------------------------------- */

Test(trust, unlink_on_exit_leaves_nothing_and_readers_see_gone, .fini = teardown, .timeout = 120)
{
    char *extra[] = {"--unlink-on-exit", NULL};
    dt_start(&d, "gone", extra);
    char id[DISC_ID_LEN + 1], list[512];
    reg_none(&d, "svc", "127.0.0.1:7001", id);
    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, "svc", 1, 5000 * dt_slow()), 1);
    uint32_t seen;
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    seen = st.change_seq;

    cr_assert_eq(discd_proc_stop(&d, 10000 * dt_slow()), 0);
    cr_assert_eq(objects_named(regdir(), d.name, list, sizeof(list)), 0,
                 "--unlink-on-exit removes every object, lock included: %s", list);
    cr_assert_eq(disc_wait_change(h, &seen, 2000), 0, "waiters wake when the registry goes");
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert(st.flags & DISC_ST_GONE, "flags %#x", st.flags);
    cr_assert(st.flags & DISC_ST_DEGRADED);
    cr_assert(!(st.flags & DISC_ST_WRITER_ALIVE));
    cr_assert_eq(st.degraded_reason, DISC_DEG_REMOVED);
    struct disc_instance *l;
    size_t need;
    cr_assert_eq(disc_lookup(h, "svc", buf, sizeof(buf), &l, &need), -ENOENT,
                 "a removed registry is not served");
    struct disc_read rd;
    cr_assert_eq(disc_read_begin(h, &rd), -ENOENT);

    /* A new discd under the name: the same handle follows it. */
    char *fresh[] = {"--state-dir", fresh_state(&d), NULL};
    cr_assert_eq(discd_proc_start(&d, fresh, 10000 * dt_slow()), 0);
    reg_none(&d, "svc", "127.0.0.1:7002", id);
    cr_assert_eq(dt_wait_count(h, "svc", 1, 5000 * dt_slow()), 1);
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert(!(st.flags & DISC_ST_GONE));
    cr_assert_eq(st.writer_pid, d.proc.pid);
    disc_close(h);
}

Test(trust, crashed_writer_and_cleaned_directory_is_reported_gone, .fini = teardown, .timeout = 120)
{
    dt_start(&d, "clean", NULL);
    char id[DISC_ID_LEN + 1], p[4400];
    reg_none(&d, "svc", "127.0.0.1:7003", id);
    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, "svc", 1, 5000 * dt_slow()), 1);
    discd_proc_kill(&d);
    /* an operator (or a reboot's tmpfiles) cleans the directory */
    snprintf(p, sizeof(p), "%s/%s", regdir(), d.name);
    cr_assert_eq(unlink(p), 0);
    snprintf(p, sizeof(p), "%s/%s.lock", regdir(), d.name);
    cr_assert_eq(unlink(p), 0);
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert(st.flags & DISC_ST_GONE, "found by st_nlink == 0: flags %#x", st.flags);
    /* Served (flagged) until the writer counts as dead, then not at all. */
    long long end = proc_now_ms() + (DISC_WRITER_DEAD_MS + 3000) * dt_slow();
    int n;
    while ((n = disc_count(h, "svc")) == 1 && proc_now_ms() < end)
        proc_sleep_ms(100);
    cr_assert_eq(n, -ENOENT, "a gone registry of a dead writer is not served forever");
    disc_close(h);
}

Test(trust, failed_start_leaves_nothing_behind, .fini = teardown, .timeout = 120)
{
    /* A start that fails after the segment exists (the socket's directory
     * cannot be made) removes the segment and the lock again. */
    cr_assert_eq(discd_proc_init(&d, "failed"), 0);
    char file[400], sock[500], list[512];
    snprintf(file, sizeof(file), "%s/not-a-dir", d.dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fclose(f);
    snprintf(sock, sizeof(sock), "%s/x.sock", file);
    char *extra[] = {"--socket", sock, NULL};
    cr_assert_eq(discd_proc_spawn(&d, extra), 0);
    cr_assert_eq(proc_wait(&d.proc, 10000 * dt_slow()), 0);
    cr_assert_eq(proc_exit_code(&d.proc), 1);
    cr_assert_eq(objects_named(regdir(), d.name, list, sizeof(list)), 0, "left behind: %s", list);

    /* A start refused because another discd publishes the name touches
     * nothing of the running one. */
    dt_start(&d2, "busy", NULL);
    char id[DISC_ID_LEN + 1];
    reg_none(&d2, "svc", "127.0.0.1:7004", id);
    struct discd_proc dup = d2;
    snprintf(dup.log, sizeof(dup.log), "%s/dup.log", d2.dir);
    snprintf(dup.sock, sizeof(dup.sock), "%s/dup.sock", d2.dir);
    cr_assert_eq(discd_proc_spawn(&dup, NULL), 0);
    cr_assert_eq(proc_wait(&dup.proc, 10000 * dt_slow()), 0);
    cr_assert_eq(proc_exit_code(&dup.proc), 1, "a second discd for the name refuses to start");
    cr_assert_eq(objects_named(regdir(), d2.name, list, sizeof(list)), 2, "%s", list);
    disc_handle *h = dt_open_reader(&d2);
    cr_assert_eq(disc_count(h, "svc"), 1);
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert_eq(st.writer_pid, d2.proc.pid);
    disc_close(h);
}

/* ---- a second uid attacks --------------------------------------------------------- */

Test(trust, second_uid_cannot_touch_the_objects, .fini = teardown, .timeout = 180)
{
    need_root_and_setpriv();
    cr_assert_eq(discd_proc_init(&d, "attacked"), 0);
    char data[4400], lock[4400], tmp[4400], grow[4400], log[500];
    snprintf(data, sizeof(data), "%s/%s", regdir(), d.name);
    snprintf(lock, sizeof(lock), "%s/%s.lock", regdir(), d.name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.new-1", regdir(), d.name);
    snprintf(grow, sizeof(grow), "%s/.%s.grow-1", regdir(), d.name); /* a roll-over's */
    snprintf(log, sizeof(log), "%s/attack.log", d.dir);

    /* Before discd: pre-create every name, as a file, a directory, a symlink. */
    const char *names[] = {data, lock, tmp, grow};
    const char *kinds[] = {"mkfile", "mkdir", "symlink"};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 3; k++)
            cr_assert_eq(attack(kinds[k], names[i]), EACCES, "%s %s", kinds[k], names[i]);

    char *extra[] = {"--segment-bytes", "4194304", NULL};
    cr_assert_eq(discd_proc_start(&d, extra, 10000 * dt_slow()), 0, "discd starts regardless");
    char *restart[] = {"--segment-bytes", "4194304", "--state-dir", fresh_state(&d), NULL};
    char id[DISC_ID_LEN + 1], addr[32];
    for (int k = 0; k < 3; k++) {
        snprintf(addr, sizeof(addr), "10.1.0.%d:80", k);
        reg_none(&d, "svc", addr, id);
    }
    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, "svc", 3, 5000 * dt_slow()), 3);

    /* Against the live objects. */
    struct {
        const char *op, *path;
    } tries[] = {{"truncate", data},  {"overwrite", data}, {"unlink", data}, {"truncate", lock},
                 {"overwrite", lock}, {"lock", lock},      {"unlink", lock}, {"mkfile", tmp},
                 {"mkdir", tmp},      {"symlink", tmp}};
    int want = 3;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        cr_assert_eq(attack(tries[i].op, tries[i].path), EACCES, "%s %s", tries[i].op,
                     tries[i].path);
        snprintf(addr, sizeof(addr), "10.1.0.%d:80", ++want - 1);
        reg_none(&d, "svc", addr, id); /* discd keeps serving */
        int n;
        cr_assert_eq(dt_wait_count(h, "svc", want, 5000 * dt_slow()), want);
        cr_assert(all_addresses_start_with(h, "svc", "10.1.0.", &n), "honest data only");
        cr_assert_eq(n, want);
    }

    /* The data object is readable by design; a read lock on it does not
     * stop a restart (the writer's lock is the 0600 lock object). */
    const char *argv[] = {attack_bin(), "lock", data, "3000", NULL};
    char *full[] = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                    "--clear-groups",   (char *)argv[0], (char *)argv[1],
                    (char *)argv[2],    (char *)argv[3], NULL};
    struct proc holder;
    cr_assert_eq(proc_spawn(&holder, full, NULL, log), 0);
    proc_sleep_ms(300);
    discd_proc_kill(&d);
    cr_assert_eq(discd_proc_start(&d, restart, 10000 * dt_slow()), 0,
                 "a read lock on the data object does not block a restart");
    reg_none(&d, "svc", "10.1.0.99:80", id);
    cr_assert_eq(dt_wait_count(h, "svc", 1, 5000 * dt_slow()), 1, "readers follow the restart");
    proc_kill(&holder);
    disc_close(h);
}

/* A non-root discd never puts its socket under /tmp (where any uid could
 * create /tmp/discd first): without --socket and $XDG_RUNTIME_DIR it
 * refuses to start and says why. */
Test(trust, no_default_socket_under_tmp, .fini = teardown)
{
    need_root_and_setpriv();
    cr_assert_eq(discd_proc_init(&d, "nosock"), 0);
    char dir[4400], log[500], cmd[700];
    top_path(dir, sizeof(dir), "nosock");
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(chown(dir, NOBODY, NOBODY), 0);
    snprintf(log, sizeof(log), "%s/nosock.log", d.dir);
    const char *argv[] = {"/usr/bin/env", "-u",     "XDG_RUNTIME_DIR",
                          discd_binary(), "--name", d.name,
                          "--dir",        dir,      NULL};
    cr_assert_eq(as_nobody(argv, log), 1, "a non-root discd started without a socket path");
    snprintf(cmd, sizeof(cmd), "grep -q 'no control socket path: set --socket' %s", log);
    cr_assert_eq(system(cmd), 0, "it is told why (see %s)", log);
}

Test(trust, squatter_discd_is_refused, .fini = teardown, .timeout = 180)
{
    need_root_and_setpriv();
    /* The honest registry. */
    dt_start(&d, "squat", NULL);
    char id[DISC_ID_LEN + 1];
    reg_none(&d, "svc", "10.2.0.1:443", id);

    /* A squatter discd under the same name, as uid 65534, in the honest
     * directory: it cannot create anything there. */
    char log[500], sock[500];
    snprintf(log, sizeof(log), "%s/squatter.log", d.dir);
    snprintf(sock, sizeof(sock), "%s/squat.sock", d.dir);
    chmod(d.dir, 0777); /* so only the registry directory stands in its way */
    char sqstate[600], sqsvc[600], cmd[800];
    snprintf(sqstate, sizeof(sqstate), "%s/sqstate", d.dir);
    snprintf(sqsvc, sizeof(sqsvc), "%s/sqsvc", d.dir);
    const char *in_honest[] = {discd_binary(), "--name", d.name,           "--socket", sock,
                               "--state-dir",  sqstate,  "--services-dir", sqsvc,      NULL};
    cr_assert_eq(as_nobody(in_honest, log), 1, "the squatter cannot start in our directory");
    snprintf(cmd, sizeof(cmd), "grep -q 'owned by uid 0, expected uid 65534' %s", log);
    cr_assert_eq(system(cmd), 0, "it is told why (see %s)", log);

    /* In a directory of its own, under the same name. */
    char sqdir[4400], sqsock[4500], msg[512];
    top_path(sqdir, sizeof(sqdir), "squatter");
    cr_assert_eq(mkdir(sqdir, 0755), 0);
    cr_assert_eq(chown(sqdir, NOBODY, NOBODY), 0);
    snprintf(sqsock, sizeof(sqsock), "%s/sq.sock", sqdir);
    char sqs[4500], sqv[4500];
    snprintf(sqs, sizeof(sqs), "%s/state", sqdir);
    snprintf(sqv, sizeof(sqv), "%s/services.d", sqdir);
    char *full[] = {"/usr/bin/setpriv",
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    (char *)discd_binary(),
                    "--name",
                    d.name,
                    "--dir",
                    sqdir,
                    "--socket",
                    sqsock,
                    "--state-dir",
                    sqs,
                    "--services-dir",
                    sqv,
                    NULL};
    cr_assert_eq(proc_spawn(&d2.proc, full, NULL, log), 0);
    struct discd_conn c;
    long long end = proc_now_ms() + 10000 * dt_slow();
    while (discd_conn_open_path(sqsock, &c) < 0 && proc_now_ms() < end)
        proc_sleep_ms(20);
    cr_assert(proc_now_ms() < end, "the squatter discd runs");
    dt_register(&c, "svc", "6.6.6.6:443", "{\"type\":\"none\"}", id);
    discd_conn_close(&c);

    /* Root readers expecting root refuse it, with the path and owner. */
    struct disc_open_opts o = {.name = d.name,
                               .dir = sqdir,
                               .owner = 0,
                               .owner_set = 1,
                               .err = msg,
                               .errlen = sizeof(msg)};
    disc_handle *h;
    cr_assert_eq(disc_open_ex(&o, &h), -EPERM);
    cr_assert(strstr(msg, "squatter") && strstr(msg, "uid 65534") && strstr(msg, "expected uid 0"),
              "message: %s", msg);
    setenv(DISC_OWNER_ENV, "0", 1);
    o.owner_set = 0;
    msg[0] = 0;
    cr_assert_eq(disc_open_ex(&o, &h), -EPERM, "$DISCSHM_OWNER=0 refuses it too");
    cr_assert(strstr(msg, "uid 65534"), "message: %s", msg);
    /* The honest registry (the default directory) is untouched. */
    cr_assert_eq(disc_open(d.name, 0, &h), 0);
    unsetenv(DISC_OWNER_ENV);
    int n;
    cr_assert(all_addresses_start_with(h, "svc", "10.2.0.1:443", &n), "never the squatter's");
    cr_assert_eq(n, 1);
    disc_close(h);
    proc_stop(&d2.proc, 5000);
    d2.dir[0] = 0;
}

Test(trust, untrusted_directories_are_refused, .fini = teardown, .timeout = 120)
{
    need_root_and_setpriv();
    cr_assert_eq(discd_proc_init(&d, "baddir"), 0);
    char msg[512], dir[4400], sub[4500];
    disc_handle *h;
    /* A registry directory another uid owns (it made it first): discd and
     * readers expecting root refuse it. */
    top_path(dir, sizeof(dir), "theirs");
    const char *mk[] = {attack_bin(), "mkdir", dir, NULL};
    chmod(regdir(), 0755);
    char topdir[4400];
    top_path(topdir, sizeof(topdir), "");
    chmod(topdir, 0777); /* let it make the directory first ... */
    int made = as_nobody(mk, NULL);
    chmod(topdir, 0755); /* ... and then be an honest parent again */
    cr_assert_eq(made, 0);
    char *extra[] = {"--dir", dir, NULL};
    cr_assert_eq(discd_proc_spawn(&d, extra), 0);
    cr_assert_eq(proc_wait(&d.proc, 10000 * dt_slow()), 0);
    cr_assert_eq(proc_exit_code(&d.proc), 1, "discd refuses a directory owned by uid 65534");
    struct disc_open_opts o = {
        .name = d.name, .dir = dir, .owner_set = 1, .err = msg, .errlen = sizeof(msg)};
    cr_assert_eq(disc_open_ex(&o, &h), -EPERM);
    cr_assert(strstr(msg, "owned by uid 65534"), "%s", msg);

    /* World-writable, or inside a world-writable directory, or a symlink. */
    top_path(dir, sizeof(dir), "open");
    cr_assert_eq(mkdir(dir, 0755), 0);
    chmod(dir, 01777);
    o.dir = dir;
    cr_assert_eq(disc_open_ex(&o, &h), -EPERM);
    cr_assert(strstr(msg, "writable by group or others"), "%s", msg);
    snprintf(sub, sizeof(sub), "%s/reg", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    o.dir = sub;
    cr_assert_eq(disc_open_ex(&o, &h), -EPERM);
    cr_assert(strstr(msg, "the directory holding"), "%s", msg);
    char *extra2[] = {"--dir", sub, NULL};
    cr_assert_eq(discd_proc_spawn(&d, extra2), 0);
    cr_assert_eq(proc_wait(&d.proc, 10000 * dt_slow()), 0);
    cr_assert_eq(proc_exit_code(&d.proc), 1, "discd refuses a directory in a world-writable one");
    top_path(dir, sizeof(dir), "link");
    cr_assert_eq(symlink(regdir(), dir), 0);
    o.dir = dir;
    cr_assert_eq(disc_open_ex(&o, &h), -EPERM);
    cr_assert(strstr(msg, "symbolic link"), "%s", msg);
}

/* ---- a full tmpfs ---------------------------------------------------------------- */

/* Mount a small tmpfs (`leaf` under the test's top directory) with a
 * world-writable directory on it, like /run/lock on /run: reg (for discd)
 * and fill (a file uid 65534 may create there). Skips without CAP_SYS_ADMIN. */
static void small_tmpfs(const char *leaf, const char *size, char *reg, char *fill, size_t len)
{
    char fs[4400], pub[4500];
    top_path(fs, sizeof(fs), leaf);
    cr_assert_eq(mkdir(fs, 0755), 0);
    char opts[64];
    snprintf(opts, sizeof(opts), "size=%s,mode=0755", size);
    if (mount("tmpfs", fs, "tmpfs", 0, opts) < 0) {
        int e = errno;
        rmdir(fs);
        cr_skip_test("cannot mount a small tmpfs here (%s): the full-tmpfs test needs "
                     "CAP_SYS_ADMIN",
                     strerror(e));
    }
    snprintf(mounted, sizeof(mounted), "%s", fs);
    snprintf(pub, sizeof(pub), "%s/lock", fs);
    snprintf(reg, len, "%s/reg", fs);
    snprintf(fill, len, "%s/fill", pub);
    cr_assert_eq(mkdir(pub, 0755), 0);
    cr_assert_eq(chmod(pub, 01777), 0);
}

Test(trust, full_tmpfs_keeps_serving_and_refuses_a_new_segment, .fini = teardown, .timeout = 180)
{
    need_root_and_setpriv();
    char reg[4600], fill[4600], list[512];
    small_tmpfs("fs", "12m", reg, fill, sizeof(reg));

    char *extra[] = {"--dir", reg, "--segment-bytes", "4194304", NULL};
    dt_start(&d, "full", extra);
    struct disc_open_opts o = {.name = d.name, .dir = reg};
    disc_handle *h;
    cr_assert_eq(disc_open_ex(&o, &h), 0);
    char id[DISC_ID_LEN + 1], addr[32];
    for (int k = 0; k < 10; k++) {
        snprintf(addr, sizeof(addr), "10.3.0.%d:80", k);
        reg_none(&d, "svc", addr, id);
    }
    cr_assert_eq(dt_wait_count(h, "svc", 10, 5000 * dt_slow()), 10);

    cr_assert_eq(attack("fill", fill), ENOSPC, "uid 65534 fills the tmpfs");
    for (int k = 10; k < 20; k++) {
        snprintf(addr, sizeof(addr), "10.3.0.%d:80", k);
        reg_none(&d, "svc", addr, id);
    }
    cr_assert_eq(dt_wait_count(h, "svc", 20, 5000 * dt_slow()), 20,
                 "the segment was allocated up front: publishing goes on");
    cr_assert(proc_alive(&d.proc), "no SIGBUS");

    /* A restart now cannot get a new segment: a clear error, nothing left
     * behind, and readers keep the last snapshot. */
    cr_assert_eq(discd_proc_stop(&d, 10000 * dt_slow()), 0);
    cr_assert_eq(discd_proc_spawn(&d, extra), 0);
    cr_assert_eq(proc_wait(&d.proc, 10000 * dt_slow()), 0);
    cr_assert_eq(proc_exit_code(&d.proc), 1);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "grep -q 'No space left on device' %s", d.log);
    cr_assert_eq(system(cmd), 0, "the log says why");
    cr_assert_eq(objects_named(reg, d.name, list, sizeof(list)), 2, "segment + lock only: %s",
                 list);
    int n;
    cr_assert(all_addresses_start_with(h, "svc", "10.3.0.", &n));
    cr_assert_eq(n, 20, "readers keep the last published snapshot");

    /* Space back: discd starts, readers follow. */
    cr_assert_eq(unlink(fill), 0);
    char *again[] = {"--dir",         reg, "--segment-bytes", "4194304", "--state-dir",
                     fresh_state(&d), NULL};
    cr_assert_eq(discd_proc_start(&d, again, 10000 * dt_slow()), 0);
    reg_none(&d, "svc", "10.3.1.1:80", id);
    cr_assert_eq(dt_wait_count(h, "svc", 1, 5000 * dt_slow()), 1);
    disc_close(h);
}

/* A registration of ~8 KB (32 tags of 250 bytes) on c; returns the reply. */
static json_t *reg_big(struct discd_conn *c, int i)
{
    static char line[12000];
    char val[251];
    memset(val, 'a' + i % 26, 250);
    val[250] = 0;
    int at = snprintf(line, sizeof(line),
                      "{\"op\":\"register\",\"instance\":{\"service\":\"big\",\"address\":"
                      "\"10.4.%d.%d:80\",\"tags\":{",
                      i / 200, i % 200 + 1);
    for (int t = 0; t < 32; t++)
        at += snprintf(line + at, sizeof(line) - (size_t)at, "%s\"k%02d\":\"%s\"", t ? "," : "", t,
                       val);
    snprintf(line + at, sizeof(line) - (size_t)at, "}},\"check\":{\"type\":\"none\"}}");
    json_t *r = dt_call(c, line);
    cr_assert_not_null(r);
    return r;
}

Test(trust, full_tmpfs_stops_growth_not_serving, .fini = teardown, .timeout = 180)
{
    need_root_and_setpriv();
    char reg[4600], fill[4600];
    small_tmpfs("fs-grow", "16m", reg, fill, sizeof(reg));
    char *extra[] = {"--dir",    reg, "--segment-bytes", "1048576", "--max-segment-size",
                     "67108864", NULL};
    dt_start(&d, "growfull", extra);
    struct disc_open_opts o = {.name = d.name, .dir = reg};
    disc_handle *h;
    cr_assert_eq(disc_open_ex(&o, &h), 0);

    /* uid 65534 fills the file system: the segment cannot grow any more. */
    cr_assert_eq(attack("fill", fill), ENOSPC, "uid 65534 fills the tmpfs");
    struct discd_conn c;
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    int ok = 0, full = 0;
    for (int i = 0; i < 400 && !full; i++) {
        json_t *r = reg_big(&c, i);
        if (dt_ok(r))
            ok++;
        else if (strcmp(dt_err_code(r), "segment_full") == 0)
            full++;
        else
            cr_assert_fail("unexpected reply %s", json_dumps(r, 0));
        json_decref(r);
    }
    cr_assert_eq(full, 1, "a 1 MiB segment on a full tmpfs took %d registrations", ok);
    cr_assert_gt(ok, 10);
    cr_assert_geq(dt_log_has(&d, "No space left on device; the current segment keeps serving"), 1,
                  "the log names the cause");
    cr_assert(proc_alive(&d.proc), "no SIGBUS");
    cr_assert_eq(disc_count(h, "big"), ok, "readers keep every acknowledged registration");

    /* Space back: the next registrations roll over to a larger segment
     * (after the retry pause) and readers follow it. */
    cr_assert_eq(unlink(fill), 0);
    long long deadline = proc_now_ms() + 15000LL * dt_slow();
    int again = 0;
    while (again < 20 && proc_now_ms() < deadline) {
        json_t *r = reg_big(&c, 1000 + again);
        if (dt_ok(r))
            again++;
        else
            proc_sleep_ms(200);
        json_decref(r);
    }
    discd_conn_close(&c);
    cr_assert_eq(again, 20, "registrations resume once the file system has room");
    cr_assert_geq(dt_log_has(&d, "publisher: segment grown from 1048576"), 1);
    cr_assert_eq(dt_wait_count(h, "big", ok + again, 5000), ok + again);
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert_gt(st.segment_bytes, 1048576, "the reader is on the larger segment");
    disc_close(h);
}
