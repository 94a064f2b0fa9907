/* SPDX-License-Identifier: MIT */
/* discd_proc.c — run a real discd for tests (see discd_proc.h). */
#include "discd_proc.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

const char *discd_binary(void)
{
    static char path[4096];
    const char *dir = getenv("DISC_BUILD_DIR");
    if (!dir)
        return NULL;
    snprintf(path, sizeof(path), "%s/daemon/discd", dir);
    return path;
}

/* Remove path and what is below it, down to depth levels of directories. */
static void remove_tree(const char *path, int depth)
{
    DIR *dir = depth > 0 ? opendir(path) : NULL;
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[1024];
            snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
            if (unlink(p) < 0 && errno == EISDIR)
                remove_tree(p, depth - 1);
        }
        closedir(dir);
    }
    rmdir(path);
}

int discd_proc_init(struct discd_proc *d, const char *tag)
{
    static atomic_uint counter;
    memset(d, 0, sizeof(*d));
    /* Beside the test executable's registry directory when there is one
     * (tests/common/registry_dir.c): removed with it, and a directory that
     * readers trust for a file cache (nobody else can write its parent). */
    const char *reg = getenv("DISCSHM_DIR");
    const char *tmp = getenv("TMPDIR");
    if (reg && *reg)
        snprintf(d->dir, sizeof(d->dir), "%s/../discd-test-XXXXXX", reg);
    else
        snprintf(d->dir, sizeof(d->dir), "%s/discd-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(d->dir))
        return -errno;
    /* Other uids (permission tests) must be able to reach the socket. */
    chmod(d->dir, 0755);
    snprintf(d->name, sizeof(d->name), "dt%d_%u_%.40s", (int)getpid(),
             atomic_fetch_add(&counter, 1), tag ? tag : "t");
    snprintf(d->sock, sizeof(d->sock), "%s/discd.sock", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/discd.log", d->dir);
    snprintf(d->state_dir, sizeof(d->state_dir), "%s/state", d->dir);
    snprintf(d->services_dir, sizeof(d->services_dir), "%s/services.d", d->dir);
    return 0;
}

int discd_proc_spawn(struct discd_proc *d, char *const extra_args[])
{
    const char *bin = d->binary ? d->binary : discd_binary();
    if (!bin)
        return -ENOENT;
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)bin;
    argv[n++] = "--name";
    argv[n++] = d->name;
    argv[n++] = "--socket";
    argv[n++] = d->sock;
    argv[n++] = "--log-level";
    argv[n++] = "debug";
    argv[n++] = "--state-dir"; /* never the system's /var/lib/discd */
    argv[n++] = d->state_dir;
    argv[n++] = "--services-dir";
    argv[n++] = d->services_dir;
    for (int i = 0; extra_args && extra_args[i] && n < 63; i++)
        argv[n++] = extra_args[i];
    argv[n] = NULL;
    return proc_spawn(&d->proc, argv, NULL, d->log);
}

int discd_proc_start(struct discd_proc *d, char *const extra_args[], int timeout_ms)
{
    int rc = discd_proc_spawn(d, extra_args);
    if (rc < 0)
        return rc;
    long long deadline = proc_now_ms() + timeout_ms;
    while (proc_now_ms() < deadline) {
        if (!proc_alive(&d->proc))
            return -ECHILD;
        char *r = discd_proc_request(d, "{\"op\":\"status\"}", 500);
        if (r) {
            int ok = strstr(r, "\"ok\":true") != NULL || strstr(r, "\"ok\": true") != NULL;
            free(r);
            if (ok)
                return 0;
        }
        proc_sleep_ms(10);
    }
    proc_kill(&d->proc);
    return -ETIMEDOUT;
}

int discd_proc_stop(struct discd_proc *d, int timeout_ms)
{
    return proc_stop(&d->proc, timeout_ms);
}

void discd_proc_kill(struct discd_proc *d)
{
    proc_kill(&d->proc);
}

void discd_proc_cleanup(struct discd_proc *d)
{
    if (!d->dir[0])
        return;
    proc_kill(&d->proc);
    const char *reg = getenv("DISCSHM_DIR");
    if (d->name[0] && reg && *reg) {
        /* The registry's objects (the directory itself belongs to the test
         * executable: tests/common/registry_dir.c). */
        static const char *const suffixes[] = {"", ".lock"};
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
            char p[4400];
            snprintf(p, sizeof(p), "%s/%s%s", reg, d->name, suffixes[i]);
            unlink(p);
        }
    }
    remove_tree(d->dir, 2);
    d->dir[0] = '\0';
}

int discd_conn_open_path(const char *path, struct discd_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    c->fd = fd;
    return 0;
}

int discd_conn_open(const struct discd_proc *d, struct discd_conn *c)
{
    return discd_conn_open_path(d->sock, c);
}

void discd_conn_close(struct discd_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

int discd_conn_send_raw(struct discd_conn *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int discd_conn_send(struct discd_conn *c, const char *line)
{
    /* The line and its newline in one sendmsg, as a client does: two
     * writes would wake discd for an incomplete line first. */
    size_t len = strlen(line);
    struct iovec iov[2] = {{(void *)line, len}, {"\n", 1}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t n;
    do
        n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if ((size_t)n >= len + 1)
        return 0;
    /* a short write (a full socket buffer): send the rest */
    int rc = (size_t)n < len ? discd_conn_send_raw(c, line + n, len - (size_t)n) : 0;
    return rc < 0 ? rc : discd_conn_send_raw(c, "\n", 1);
}

int discd_conn_read_line(struct discd_conn *c, char **line, int timeout_ms)
{
    long long deadline = proc_now_ms() + timeout_ms;
    for (;;) {
        char *nl = c->buf ? memchr(c->buf, '\n', c->len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            char *out = malloc(n + 1);
            if (!out)
                return -ENOMEM;
            memcpy(out, c->buf, n);
            out[n] = '\0';
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            *line = out;
            return (int)n;
        }
        long long left = deadline - proc_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno != EINTR)
            return -errno;
        if (pr <= 0)
            continue;
        if (c->cap - c->len < 65536) {
            size_t ncap = c->cap ? c->cap * 2 : 131072;
            char *nb = realloc(c->buf, ncap);
            if (!nb)
                return -ENOMEM;
            c->buf = nb;
            c->cap = ncap;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n == 0)
            return -EPIPE;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return errno == ECONNRESET ? -EPIPE : -errno;
        }
        c->len += (size_t)n;
    }
}

int discd_conn_reply(struct discd_conn *c, char **line, int timeout_ms, int answer_pings)
{
    long long deadline = proc_now_ms() + timeout_ms;
    for (;;) {
        long long left = deadline - proc_now_ms();
        int rc = discd_conn_read_line(c, line, left > 0 ? (int)left : 0);
        if (rc < 0)
            return rc;
        if (strncmp(*line, "{\"event\"", 8) != 0)
            return rc;
        c->pings_seen++;
        if (answer_pings) {
            const char *s = strstr(*line, "\"seq\":");
            long long seq = s ? strtoll(s + 6, NULL, 10) : 0;
            char pong[64];
            snprintf(pong, sizeof(pong), "{\"op\":\"pong\",\"seq\":%lld}", seq);
            discd_conn_send(c, pong);
        }
        free(*line);
        *line = NULL;
    }
}

char *discd_proc_request(const struct discd_proc *d, const char *line, int timeout_ms)
{
    struct discd_conn c;
    if (discd_conn_open(d, &c) < 0)
        return NULL;
    char *reply = NULL;
    if (discd_conn_send(&c, line) < 0 || discd_conn_reply(&c, &reply, timeout_ms, 1) < 0) {
        free(reply);
        reply = NULL;
    }
    discd_conn_close(&c);
    return reply;
}
