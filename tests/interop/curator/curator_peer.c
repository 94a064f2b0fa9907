/* SPDX-License-Identifier: MIT */
/* curator_peer.c — see curator_peer.h. */
#include "curator_peer.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon_util.h"

#ifndef CURATOR_PEER_CLASSPATH
#error "CURATOR_PEER_CLASSPATH must be defined by the build (tests/interop/CMakeLists.txt)"
#endif
#ifndef CURATOR_PEER_JAVA
#define CURATOR_PEER_JAVA "/usr/bin/java"
#endif

/* Read one line (without '\n') into a new JSON value; NULL on EOF, timeout or
 * a line that is not JSON. */
static json_t *read_line(struct cpeer *p, int timeout_ms)
{
    long long end = proc_now_ms() + timeout_ms;
    for (;;) {
        char *nl = memchr(p->buf, '\n', p->len);
        if (nl) {
            *nl = '\0';
            json_error_t err;
            json_t *v = json_loads(p->buf, 0, &err);
            if (!v)
                fprintf(stderr, "curator peer: not JSON: %s\n", p->buf);
            size_t used = (size_t)(nl - p->buf) + 1;
            memmove(p->buf, p->buf + used, p->len - used);
            p->len -= used;
            return v;
        }
        if (p->len == sizeof(p->buf)) {
            fprintf(stderr, "curator peer: answer longer than %zu bytes\n", sizeof(p->buf));
            return NULL;
        }
        long long left = end - proc_now_ms();
        if (left <= 0)
            return NULL;
        struct pollfd pfd = {.fd = p->from_fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        ssize_t r = read(p->from_fd, p->buf + p->len, sizeof(p->buf) - p->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return NULL;
        p->len += (size_t)r;
    }
}

int cpeer_start(struct cpeer *p, const struct cpeer_opts *o)
{
    memset(p, 0, sizeof(*p));
    p->to_fd = p->from_fd = -1;
    char tmpl[] = "/tmp/curator-peer-XXXXXX";
    int logfd = mkstemp(tmpl);
    if (logfd < 0)
        return -errno;
    snprintf(p->log_path, sizeof(p->log_path), "%s", tmpl);

    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
        close(logfd);
        return -errno;
    }
    char session[32], base[512];
    snprintf(session, sizeof(session), "%d", o->session_ms > 0 ? o->session_ms : 4000);
    snprintf(base, sizeof(base), "%s", o->base ? o->base : "/services");
    char *argv[] = {(char *)CURATOR_PEER_JAVA,
                    "-Xshare:auto",
                    "-XX:TieredStopAtLevel=1",
                    "-Djava.net.preferIPv4Stack=true",
                    "-cp",
                    (char *)CURATOR_PEER_CLASSPATH,
                    "CuratorPeer",
                    "--connect",
                    (char *)o->connect,
                    "--base",
                    base,
                    "--session-ms",
                    session,
                    o->compat ? "--compat" : NULL,
                    NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(logfd);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        return e;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(logfd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(logfd);
    close(in[0]);
    close(out[1]);
    p->pid = pid;
    p->to_fd = in[1];
    p->from_fd = out[0];
    json_t *ready = read_line(p, 60000 * dt_slow());
    const char *op = json_string_value(json_object_get(ready, "op"));
    if (!op || strcmp(op, "ready") != 0) {
        json_decref(ready);
        fprintf(stderr, "curator peer did not become ready\n");
        cpeer_dump_log(p);
        cpeer_kill(p);
        return -ETIMEDOUT;
    }
    snprintf(p->session, sizeof(p->session), "%s",
             json_string_value(json_object_get(ready, "session")) ?: "");
    json_decref(ready);
    return 0;
}

static json_t *vcall(struct cpeer *p, const char *fmt, va_list ap)
{
    if (!p->pid)
        return NULL;
    char line[8192];
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    if (n < 0 || n >= (int)sizeof(line) - 1)
        return NULL;
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(p->to_fd, line + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return NULL;
        off += (int)w;
    }
    return read_line(p, 30000 * dt_slow());
}

json_t *cpeer_call(struct cpeer *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *r = vcall(p, fmt, ap);
    va_end(ap);
    return r;
}

json_t *cpeer_ok(struct cpeer *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *r = vcall(p, fmt, ap);
    va_end(ap);
    if (!json_is_true(json_object_get(r, "ok"))) {
        char *s = r ? json_dumps(r, 0) : NULL;
        cpeer_dump_log(p);
        cr_assert_fail("curator peer command failed: %s", s ? s : "(no answer)");
    }
    return r;
}

static void reap(struct cpeer *p, int timeout_ms)
{
    long long end = proc_now_ms() + timeout_ms;
    while (p->pid) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid || (r < 0 && errno == ECHILD)) {
            p->pid = 0;
            break;
        }
        if (proc_now_ms() >= end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            p->pid = 0;
            break;
        }
        usleep(10000);
    }
    if (p->to_fd >= 0)
        close(p->to_fd);
    if (p->from_fd >= 0)
        close(p->from_fd);
    p->to_fd = p->from_fd = -1;
}

void cpeer_stop(struct cpeer *p)
{
    if (!p->pid)
        return;
    json_decref(cpeer_call(p, "{\"op\":\"quit\"}"));
    reap(p, 5000 * dt_slow());
    if (p->log_path[0])
        unlink(p->log_path);
    p->log_path[0] = '\0';
}

void cpeer_kill(struct cpeer *p)
{
    if (p->pid)
        kill(p->pid, SIGKILL);
    reap(p, 5000);
    if (p->log_path[0])
        unlink(p->log_path);
    p->log_path[0] = '\0';
}

void cpeer_dump_log(const struct cpeer *p)
{
    if (!p->log_path[0])
        return;
    char title[300];
    snprintf(title, sizeof(title), "curator peer log (%s)", p->log_path);
    proc_dump_file(p->log_path, title);
}
