/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_systemd.c — discd as a systemd service, without systemd:
 *  - the notify protocol, received on a datagram socket the test owns as
 *    $NOTIFY_SOCKET: READY=1 only once the segment can be opened, STATUS=
 *    lines, WATCHDOG=1 with $WATCHDOG_USEC (none without it, none when
 *    $WATCHDOG_PID names another process), STOPPING=1 on SIGTERM;
 *  - journal log format when $JOURNAL_STREAM names stderr, plain otherwise;
 *  - --check-config / -t.
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
#include <unistd.h>

#include "daemon_util.h"

/* The test's end of $NOTIFY_SOCKET. */
struct notify_sock {
    int fd;
    char path[300];
};

static void notify_open(struct notify_sock *n, const struct discd_proc *d)
{
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(n->fd, 0);
    snprintf(n->path, sizeof(n->path), "%s/notify.sock", d->dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cr_assert_lt(strlen(n->path), sizeof(sa.sun_path));
    memcpy(sa.sun_path, n->path, strlen(n->path) + 1);
    cr_assert_eq(bind(n->fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind: %s", strerror(errno));
}

/* Next datagram (NUL-terminated) within timeout_ms: its length, or -1. */
static int notify_recv(struct notify_sock *n, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = {.fd = n->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    ssize_t r = recv(n->fd, buf, cap - 1, 0);
    if (r < 0)
        return -1;
    buf[r] = '\0';
    return (int)r;
}

/* Wait for a datagram with a line starting with `want`; counts WATCHDOG=1 seen on the way. */
static int notify_wait_for(struct notify_sock *n, const char *want, int timeout_ms, int *watchdogs,
                           char *msg, size_t cap)
{
    long long end = proc_now_ms() + timeout_ms;
    while (proc_now_ms() < end) {
        if (notify_recv(n, msg, cap, (int)(end - proc_now_ms())) < 0)
            return -1;
        if (watchdogs && strstr(msg, "WATCHDOG=1"))
            (*watchdogs)++;
        size_t wl = strlen(want);
        for (const char *p = msg; (p = strstr(p, want)) != NULL; p += wl)
            if (p == msg || p[-1] == '\n')
                return 0;
    }
    return -1;
}

/* Start discd on d's name, socket and directories (at its default log
 * level) with env added to its environment, as systemd would. Asserts. */
static void spawn_with_env(struct discd_proc *d, char *const env[])
{
    char *argv[] = {
        (char *)discd_binary(), "--name",     d->name,          "--socket",      d->sock,
        "--state-dir",          d->state_dir, "--services-dir", d->services_dir, NULL};
    cr_assert_eq(proc_spawn(&d->proc, argv, env, d->log), 0);
}

Test(systemd, notify_ready_status_watchdog_stopping)
{
    struct discd_proc d;
    cr_assert_eq(discd_proc_init(&d, "sdn"), 0);
    struct notify_sock n;
    notify_open(&n, &d);
    char env_sock[400], env_wd[64];
    snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", n.path);
    /* WATCHDOG=1 every third of 600 ms (x slow factor). */
    snprintf(env_wd, sizeof(env_wd), "WATCHDOG_USEC=%d", 600000 * dt_slow());
    char *env[] = {env_sock, env_wd, NULL};
    spawn_with_env(&d, env);

    char msg[1024];
    int wd = 0;
    int rc = notify_wait_for(&n, "READY=1", 10000 * dt_slow(), &wd, msg, sizeof(msg));
    if (rc < 0)
        proc_dump_log(&d.proc);
    cr_assert_eq(rc, 0, "no READY=1 from discd");
    /* READY=1 comes after the segment is published and the socket serves. */
    disc_handle *h = NULL;
    cr_assert_eq(disc_open(d.name, 0, &h), 0, "READY=1 arrived but the segment cannot be opened");
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert(st.flags & DISC_ST_WRITER_ALIVE);
    disc_close(h);
    cr_assert_not_null(strstr(msg, "STATUS=serving registry"), "READY without STATUS: %s", msg);
    json_t *s = dt_call1(&d, "{\"op\":\"status\"}");
    cr_assert(s && dt_ok(s), "socket does not answer after READY=1");
    json_decref(s);

    /* Within 2 watchdog periods: at least 3 WATCHDOG=1 (one per third). */
    wd = 0;
    long long end = proc_now_ms() + 1200LL * dt_slow();
    while (proc_now_ms() < end) {
        if (notify_recv(&n, msg, sizeof(msg), (int)(end - proc_now_ms())) < 0)
            break;
        if (strstr(msg, "WATCHDOG=1"))
            wd++;
    }
    cr_assert_geq(wd, 3, "only %d WATCHDOG=1 in two watchdog periods", wd);

    /* A registration changes the STATUS= summary. */
    struct discd_conn c;
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    char id[DISC_ID_LEN + 1];
    dt_register(&c, "sdsvc", "127.0.0.1:1", "{\"type\":\"none\"}", id);
    cr_assert_eq(notify_wait_for(&n, "STATUS=1 local and 0 remote instances", 3000 * dt_slow(),
                                 NULL, msg, sizeof(msg)),
                 0, "no STATUS= line with the new instance count");
    discd_conn_close(&c);

    cr_assert_eq(proc_signal(&d.proc, SIGTERM), 0);
    cr_assert_eq(notify_wait_for(&n, "STOPPING=1", 5000 * dt_slow(), NULL, msg, sizeof(msg)), 0,
                 "no STOPPING=1 after SIGTERM");
    cr_assert_not_null(strstr(msg, "STATUS=stopping: SIGTERM"), "%s", msg);
    cr_assert_eq(proc_wait(&d.proc, 10000 * dt_slow()), 0);
    cr_assert_eq(proc_exit_code(&d.proc), 0);
    close(n.fd);
    dt_finish(&d);
}

/* No WATCHDOG_USEC, or a WATCHDOG_PID that is not discd: READY=1 but no WATCHDOG=1. */
static void no_watchdog(const char *tag, bool other_pid)
{
    struct discd_proc d;
    cr_assert_eq(discd_proc_init(&d, tag), 0);
    struct notify_sock n;
    notify_open(&n, &d);
    char env_sock[400], env_pid[64];
    snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", n.path);
    snprintf(env_pid, sizeof(env_pid), "WATCHDOG_PID=%d", (int)getpid());
    char *env[] = {env_sock, other_pid ? "WATCHDOG_USEC=300000" : NULL, env_pid, NULL};
    spawn_with_env(&d, env);
    char msg[1024];
    int wd = 0;
    cr_assert_eq(notify_wait_for(&n, "READY=1", 10000 * dt_slow(), &wd, msg, sizeof(msg)), 0);
    long long end = proc_now_ms() + 1000;
    while (proc_now_ms() < end)
        if (notify_recv(&n, msg, sizeof(msg), (int)(end - proc_now_ms())) > 0 &&
            strstr(msg, "WATCHDOG=1"))
            wd++;
    cr_assert_eq(wd, 0, "WATCHDOG=1 sent although the watchdog is not discd's");
    close(n.fd);
    dt_finish(&d);
}

Test(systemd, no_watchdog_without_watchdog_usec)
{
    no_watchdog("sdnw", false);
}

Test(systemd, no_watchdog_for_another_pid)
{
    no_watchdog("sdnp", true);
}

/* First log line of d's log that contains needle (malloc'd), or NULL. */
static char *log_line(const struct discd_proc *d, const char *needle)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return NULL;
    char line[4096];
    char *found = NULL;
    while (!found && fgets(line, sizeof(line), f))
        if (strstr(line, needle))
            found = strdup(line);
    fclose(f);
    return found;
}

static void journal_case(const char *tag, bool match)
{
    struct discd_proc d;
    cr_assert_eq(discd_proc_init(&d, tag), 0);
    /* discd's stderr is d.log (opened O_APPEND by proc_spawn): create it first. */
    FILE *f = fopen(d.log, "w");
    cr_assert_not_null(f);
    fclose(f);
    struct stat st;
    cr_assert_eq(stat(d.log, &st), 0);
    char env_js[128];
    snprintf(env_js, sizeof(env_js), "JOURNAL_STREAM=%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (match ? 0 : 1));
    char *env[] = {env_js, NULL};
    spawn_with_env(&d, env);
    char *line = NULL;
    for (int i = 0; i < 100 * dt_slow() && !(line = log_line(&d, "ready: registry")); i++)
        proc_sleep_ms(100);
    cr_assert_not_null(line, "discd did not log readiness");
    if (match)
        cr_assert(strncmp(line, "<6>INFO ready: registry", 23) == 0, "journal format expected: %s",
                  line);
    else
        cr_assert(line[0] != '<' && strstr(line, "Z discd[") && strstr(line, " INFO ready:"),
                  "plain format expected: %s", line);
    free(line);
    cr_assert_eq(proc_stop(&d.proc, 10000 * dt_slow()), 0);
    if (match) {
        line = log_line(&d, "shutting down");
        cr_assert(line && strncmp(line, "<6>INFO SIGTERM received", 24) == 0, "%s", line);
        free(line);
    }
    dt_finish(&d);
}

Test(systemd, journal_format_when_stderr_is_the_journal)
{
    journal_case("sdj", true);
}

Test(systemd, plain_format_when_journal_stream_is_another_file)
{
    journal_case("sdjn", false);
}

/* Run discd with argv and wait for its exit: exit code; its output in d.log. */
static int run_check(struct discd_proc *d, char *const argv[])
{
    cr_assert_eq(proc_spawn(&d->proc, argv, NULL, d->log), 0);
    cr_assert_eq(proc_wait(&d->proc, 10000 * dt_slow()), 0);
    return proc_exit_code(&d->proc);
}

Test(systemd, check_config)
{
    struct discd_proc d;
    cr_assert_eq(discd_proc_init(&d, "sdcc"), 0);
    char good[400], bad[400];
    snprintf(good, sizeof(good), "%s/good.conf", d.dir);
    snprintf(bad, sizeof(bad), "%s/bad.conf", d.dir);
    FILE *f = fopen(good, "w");
    fprintf(f, "# ok\nlog-level = debug\ncheck-interval = 2000\n");
    fclose(f);
    f = fopen(bad, "w");
    fprintf(f, "log-level = debug\n\ncheck-interval = often\n");
    fclose(f);

    char *ok_argv[] = {(char *)discd_binary(), "--config", good, "--check-config", NULL};
    /* (--check-config starts nothing: no state directory is touched.) */
    cr_assert_eq(run_check(&d, ok_argv), 0);
    char *l = log_line(&d, "configuration OK");
    cr_assert_not_null(l, "no 'configuration OK'");
    cr_assert_not_null(strstr(l, good));
    free(l);
    /* It only checks: no segment was created, no socket either. */
    disc_handle *h = NULL;
    cr_assert_eq(disc_open(d.name, 0, &h), -ENOENT);

    char *bad_argv[] = {(char *)discd_binary(), "-c", bad, "-t", NULL};
    cr_assert_eq(run_check(&d, bad_argv), 1);
    char where[450];
    snprintf(where, sizeof(where), "%s:3: check-interval: 'often'", bad);
    l = log_line(&d, where);
    cr_assert_not_null(l, "the error does not name %s", where);
    free(l);

    /* A bad flag after a good file is an error too. */
    char *flag_argv[] = {(char *)discd_binary(), "-c", good, "--heartbeat", "1", "-t", NULL};
    cr_assert_eq(run_check(&d, flag_argv), 1);
    l = log_line(&d, "--heartbeat: '1' is not an integer in 10..2000");
    cr_assert_not_null(l);
    free(l);
    discd_proc_cleanup(&d);
}
