/* SPDX-License-Identifier: MIT */
/*
 * zk_agent_client.c — see zk_agent_client.h.
 */
#include "zk_agent_client.h"

#include "zk_server.h"

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
#include <uuid/uuid.h>

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int agent_start(struct agent *a, const char *exe, const char *connect, const char *root,
                const char *host_id, int session_ms, int cooloff_ms, const char *log_dir)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->host, sizeof(a->host), "%s", host_id);
    snprintf(a->log_path, sizeof(a->log_path), "%s/%s.log", log_dir, host_id);
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) {
        return -errno;
    }
    if (pipe2(out, O_CLOEXEC) != 0) {
        int e = errno;
        close(in[0]);
        close(in[1]);
        return -e;
    }
    signal(SIGPIPE, SIG_IGN);
    char sess[16], cool[16];
    snprintf(sess, sizeof(sess), "%d", session_ms);
    snprintf(cool, sizeof(cool), "%d", cooloff_ms);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        int log = open(a->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(in[0], 0);
        dup2(out[1], 1);
        if (log >= 0) {
            dup2(log, 2);
        }
        execl(exe, exe, connect, root, host_id, sess, cool, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    a->pid = pid;
    a->to_child = in[1];
    a->from_child = out[0];
    return 0;
}

static int read_line(struct agent *a, char *resp, size_t len, long long deadline)
{
    for (;;) {
        char *nl = memchr(a->buf, '\n', a->blen);
        if (nl) {
            size_t n = (size_t)(nl - a->buf);
            size_t c = n < len - 1 ? n : len - 1;
            memcpy(resp, a->buf, c);
            resp[c] = '\0';
            memmove(a->buf, nl + 1, a->blen - n - 1);
            a->blen -= n + 1;
            return 0;
        }
        if (a->blen == sizeof(a->buf)) {
            a->blen = 0; /* overlong line: drop */
        }
        long long left = deadline - mono_ms();
        if (left <= 0) {
            return -ETIMEDOUT;
        }
        struct pollfd p = {.fd = a->from_child, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return r == 0 ? -ETIMEDOUT : -errno;
        }
        ssize_t got = read(a->from_child, a->buf + a->blen, sizeof(a->buf) - a->blen);
        if (got <= 0) {
            return -EPIPE;
        }
        a->blen += (size_t)got;
    }
}

int agent_cmd(struct agent *a, char *resp, size_t len, int timeout_ms, const char *fmt, ...)
{
    if (a->pid <= 0) {
        return -ESRCH;
    }
    char line[1 << 16];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 1) {
        return -E2BIG;
    }
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(a->to_child, line + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -EPIPE;
        }
        off += (int)w;
    }
    char scratch[64];
    if (!resp) {
        resp = scratch;
        len = sizeof(scratch);
    }
    return read_line(a, resp, len, mono_ms() + timeout_ms);
}

static int cmp_strp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* "ids N a b c" in canonical form from a list in any order. */
static void canonical_ids(const char *list, char *out, size_t len)
{
    char copy[1 << 15];
    char *words[1024];
    size_t n = 0;
    snprintf(copy, sizeof(copy), "%s", list);
    for (char *save, *w = strtok_r(copy, " ", &save); w && n < 1024;
         w = strtok_r(NULL, " ", &save)) {
        words[n++] = w;
    }
    qsort(words, n, sizeof(*words), cmp_strp);
    size_t off = (size_t)snprintf(out, len, "ids %zu", n);
    for (size_t i = 0; i < n && off < len; i++) {
        off += (size_t)snprintf(out + off, len - off, " %s", words[i]);
    }
}

int agent_wait_ids(struct agent *a, const char *want, int timeout_ms, char *last, size_t len)
{
    static char expect[1 << 15], got[1 << 15];
    canonical_ids(want, expect, sizeof(expect));
    long long deadline = mono_ms() + timeout_ms;
    for (;;) {
        int rc = agent_cmd(a, got, sizeof(got), 5000, "ids");
        if (rc == 0 && strcmp(got, expect) == 0) {
            if (last) {
                snprintf(last, len, "%s", got);
            }
            return 0;
        }
        if (mono_ms() >= deadline || (rc != 0 && rc != -ETIMEDOUT)) {
            if (last) {
                snprintf(last, len, "%s (want %s)", rc == 0 ? got : strerror(-rc), expect);
            }
            return rc != 0 ? rc : -ETIMEDOUT;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

long long agent_stat(struct agent *a, const char *key)
{
    char line[4096], pat[80];
    if (agent_cmd(a, line, sizeof(line), 5000, "stats") != 0) {
        return -1;
    }
    snprintf(pat, sizeof(pat), " %s=", key);
    char *p = strstr(line, pat);
    return p ? atoll(p + strlen(pat)) : -1;
}

long long agent_removed(struct agent *a, const char *id)
{
    char resp[128];
    if (agent_cmd(a, resp, sizeof(resp), 5000, "removed %s", id) != 0 ||
        strncmp(resp, "removed ", 8) != 0) {
        return -1;
    }
    return atoll(resp + 8);
}

int agent_signal(struct agent *a, int sig)
{
    if (a->pid <= 0) {
        return -ESRCH;
    }
    return kill(a->pid, sig) == 0 ? 0 : -errno;
}

void agent_kill(struct agent *a)
{
    if (a->pid > 0) {
        kill(a->pid, SIGKILL);
        kill(a->pid, SIGCONT);
        while (waitpid(a->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        a->pid = 0;
    }
    if (a->to_child > 0) {
        close(a->to_child);
        close(a->from_child);
        a->to_child = a->from_child = 0;
    }
}

int agent_stop(struct agent *a)
{
    int code = -ESRCH;
    if (a->pid > 0) {
        code = -1;
        agent_cmd(a, NULL, 0, 200, "quit");
        long long deadline = mono_ms() + 5000;
        while (mono_ms() < deadline) {
            int status;
            if (waitpid(a->pid, &status, WNOHANG) == a->pid) {
                a->pid = 0;
                code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                break;
            }
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    agent_kill(a);
    return code;
}

void agent_dump_log(const struct agent *a)
{
    FILE *f = fopen(a->log_path, "r");
    if (!f) {
        return;
    }
    fprintf(stderr, "---- agent %s log ----\n", a->host);
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        fputs(line, stderr);
    }
    fclose(f);
}

void agent_uuid(char out[37])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

int agents_setup(struct zk_cluster *zk, int nodes, int timeout_ms, const char *tag, char *tmp,
                 size_t tmplen)
{
    snprintf(tmp, tmplen, "/tmp/disc-%s-%d-XXXXXX", tag, (int)getpid());
    if (!mkdtemp(tmp))
        return -errno;
    return zk_cluster_start(zk, nodes, timeout_ms);
}

int agents_teardown(struct zk_cluster *zk, struct agent *ag, size_t n, const char *tmp)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (getenv("DISC_TEST_VERBOSE"))
            agent_dump_log(&ag[i]);
        bool running = ag[i].pid > 0;
        int code = agent_stop(&ag[i]);
        if (running && code != 0) {
            agent_dump_log(&ag[i]);
            fprintf(stderr, "agent %s exited with %d (its log is above)\n", ag[i].host, code);
            bad++;
        }
    }
    zk_cluster_destroy(zk);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (tmp[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return bad;
}
