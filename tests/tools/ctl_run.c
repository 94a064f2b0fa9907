/* SPDX-License-Identifier: MIT */
/*
 * ctl_run.c — run the discctl binary from tests and capture its output.
 */
#include "ctl_run.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "discshm.h"
#include "proc.h"

const char *ctl_binary(void)
{
    static char path[4096];
    const char *b = getenv("DISC_BUILD_DIR");
    cr_assert(b && *b, "DISC_BUILD_DIR is not set (run the tests through ctest)");
    snprintf(path, sizeof(path), "%s/tools/discctl", b);
    struct stat st;
    cr_assert(stat(path, &st) == 0, "no discctl at %s", path);
    return path;
}

/* argv for exec: [setpriv --reuid=U --regid=U --clear-groups] binary,
 * [--name N --socket S], args..., NULL (malloc'd; the strings of the
 * setpriv prefix live in ids, 2 x 32 bytes). */
static char **build_argv_as(const struct discd_proc *d, uid_t uid, char ids[2][32],
                            const char *const *args)
{
    size_t n = 0;
    while (args[n])
        n++;
    char **argv = calloc(n + 10, sizeof(*argv));
    cr_assert_not_null(argv);
    size_t k = 0;
    if (uid != (uid_t)-1) {
        snprintf(ids[0], 32, "--reuid=%u", (unsigned)uid);
        snprintf(ids[1], 32, "--regid=%u", (unsigned)uid);
        argv[k++] = "/usr/bin/setpriv";
        argv[k++] = ids[0];
        argv[k++] = ids[1];
        argv[k++] = "--clear-groups";
    }
    argv[k++] = (char *)ctl_binary();
    if (d) {
        argv[k++] = "--name";
        argv[k++] = (char *)d->name;
        argv[k++] = "--socket";
        argv[k++] = (char *)d->sock;
    }
    for (size_t i = 0; i < n; i++)
        argv[k++] = (char *)args[i];
    return argv;
}

static char **build_argv(const struct discd_proc *d, const char *const *args)
{
    static char unused[2][32];
    return build_argv_as(d, (uid_t)-1, unused, args);
}

static pid_t spawn(char **argv, int out_fd, int err_fd)
{
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Wait for pid until deadline (CLOCK_MONOTONIC ms), then SIGKILL.
 * Exit code or -1. */
static int reap(pid_t pid, long long deadline)
{
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (proc_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        proc_sleep_ms(5);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * Output buffers handed out by ctl_run and not released yet. A failed
 * assertion ends a test between ctl_run and ctl_result_free; the suite's
 * fini then calls ctl_run_release_all so that LeakSanitizer does not report
 * the captured output. Criterion runs each test in its own process, so a
 * per-process table is enough.
 */
#define LIVE_MAX 256
static char *live[LIVE_MAX];

static void live_add(char *p)
{
    for (size_t i = 0; i < LIVE_MAX; i++)
        if (!live[i]) {
            live[i] = p;
            return;
        }
    free(p);
    cr_assert_fail("more than %d discctl outputs not freed: call ctl_result_free", LIVE_MAX);
}

/* Free p and forget it (p NULL, or not ours: a no-op besides free). */
static void live_free(char *p)
{
    for (size_t i = 0; p && i < LIVE_MAX; i++)
        if (live[i] == p)
            live[i] = NULL;
    free(p);
}

void ctl_run_release_all(void)
{
    for (size_t i = 0; i < LIVE_MAX; i++) {
        free(live[i]);
        live[i] = NULL;
    }
}

/* Grow *buf as needed; on failure the old buffer is freed, not lost. */
static void append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = (*len + n + 1) * 2;
        char *nb = realloc(*buf, ncap);
        if (!nb) {
            free(*buf);
            *buf = NULL;
        }
        cr_assert_not_null(nb, "out of memory capturing discctl output");
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

struct ctl_result ctl_run(const struct discd_proc *d, int timeout_ms, const char *const *args)
{
    return ctl_run_as(d, (uid_t)-1, timeout_ms, args);
}

struct ctl_result ctl_run_as(const struct discd_proc *d, uid_t uid, int timeout_ms,
                             const char *const *args)
{
    int po[2], pe[2];
    cr_assert(pipe2(po, O_CLOEXEC) == 0 && pipe2(pe, O_CLOEXEC) == 0);
    char ids[2][32];
    char **argv = build_argv_as(d, uid, ids, args);
    pid_t pid = spawn(argv, po[1], pe[1]);
    free(argv);
    close(po[1]);
    close(pe[1]);

    struct ctl_result r = {0};
    size_t ol = 0, oc = 0, el = 0, ec = 0;
    append(&r.out, &ol, &oc, "", 0);
    append(&r.err, &el, &ec, "", 0);
    long long deadline = proc_now_ms() + timeout_ms;
    int fds[2] = {po[0], pe[0]};
    bool eof[2] = {false, false};
    while (!eof[0] || !eof[1]) {
        long long left = deadline - proc_now_ms();
        if (left <= 0)
            break;
        /* poll skips negative descriptors: the ends already at EOF */
        struct pollfd p[2] = {{.fd = eof[0] ? -1 : fds[0], .events = POLLIN},
                              {.fd = eof[1] ? -1 : fds[1], .events = POLLIN}};
        if (poll(p, 2, (int)left) <= 0)
            continue;
        for (int k = 0; k < 2; k++) {
            if (!p[k].revents)
                continue;
            char chunk[8192];
            ssize_t n = read(fds[k], chunk, sizeof(chunk));
            if (n > 0 && k == 0)
                append(&r.out, &ol, &oc, chunk, (size_t)n);
            else if (n > 0)
                append(&r.err, &el, &ec, chunk, (size_t)n);
            else
                eof[k] = true;
        }
    }
    close(fds[0]);
    close(fds[1]);
    r.code = reap(pid, deadline);
    live_add(r.out);
    live_add(r.err);
    return r;
}

void ctl_result_free(struct ctl_result *r)
{
    live_free(r->out);
    live_free(r->err);
    r->out = r->err = NULL;
}

json_t *ctl_json(const struct ctl_result *r)
{
    json_error_t e;
    json_t *j = json_loads(r->out, 0, &e);
    cr_assert_not_null(j, "discctl output is not JSON (%s): %s", e.text, r->out);
    return j;
}

void ctl_bg_exec(struct ctl_bg *bg, char *const *argv)
{
    int po[2];
    cr_assert(pipe2(po, O_CLOEXEC) == 0);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    memset(bg, 0, sizeof(*bg));
    bg->pid = spawn((char **)argv, po[1], devnull);
    close(po[1]);
    close(devnull);
    bg->out_fd = po[0];
}

void ctl_bg_start(struct ctl_bg *bg, const struct discd_proc *d, const char *const *args)
{
    char **argv = build_argv(d, args);
    ctl_bg_exec(bg, argv);
    free(argv);
}

const char *ctl_helper(const char *name)
{
    static char path[4096];
    const char *b = getenv("DISC_BUILD_DIR");
    cr_assert(b && *b, "DISC_BUILD_DIR is not set (run the tests through ctest)");
    snprintf(path, sizeof(path), "%s/tests/tools/%s", b, name);
    struct stat st;
    cr_assert(stat(path, &st) == 0, "no test helper at %s", path);
    return path;
}

int ctl_bg_line(struct ctl_bg *bg, char *line, size_t len, int timeout_ms)
{
    long long deadline = proc_now_ms() + timeout_ms;
    for (;;) {
        char *nl = memchr(bg->buf, '\n', bg->len);
        if (nl) {
            size_t l = (size_t)(nl - bg->buf);
            snprintf(line, len, "%.*s", (int)l, bg->buf);
            memmove(bg->buf, nl + 1, bg->len - l - 1);
            bg->len -= l + 1;
            return 0;
        }
        long long left = deadline - proc_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = bg->out_fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        if (bg->len == sizeof(bg->buf))
            return -ENOBUFS;
        ssize_t n = read(bg->out_fd, bg->buf + bg->len, sizeof(bg->buf) - bg->len);
        if (n <= 0)
            return -EPIPE;
        bg->len += (size_t)n;
    }
}

int ctl_bg_wait(struct ctl_bg *bg, int timeout_ms)
{
    if (bg->pid <= 0)
        return -1;
    int code = reap(bg->pid, proc_now_ms() + timeout_ms);
    bg->pid = 0;
    close(bg->out_fd);
    bg->out_fd = -1;
    return code;
}

void ctl_bg_kill(struct ctl_bg *bg)
{
    if (bg->pid > 0) {
        kill(bg->pid, SIGKILL);
        waitpid(bg->pid, NULL, 0);
        bg->pid = 0;
    }
    if (bg->out_fd >= 0) {
        close(bg->out_fd);
        bg->out_fd = -1;
    }
}

void ctl_register(const struct discd_proc *d, int timeout_ms, const char *const *args, char *id)
{
    const char *full[40] = {"register"};
    size_t n = 1;
    for (size_t k = 0; args[k] && n < 39; k++)
        full[n++] = args[k];
    full[n] = NULL;
    struct ctl_result r = ctl_run(d, timeout_ms, full);
    cr_assert_eq(r.code, 0, "register failed (%d): %s", r.code, r.err);
    cr_assert_eq(strlen(r.out), DISC_ID_LEN + 1, "not an id line: '%s'", r.out);
    memcpy(id, r.out, DISC_ID_LEN);
    id[DISC_ID_LEN] = '\0';
    ctl_result_free(&r);
}
