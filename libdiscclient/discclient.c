/* SPDX-License-Identifier: MIT */
/*
 * discclient.c — libdiscclient: register with discd over its control socket
 * and keep the session answered (see include/discclient.h).
 *
 * One mutex (io) guards the socket and the input buffer. Requests hold it
 * from sending until their response line arrived, answering pings on the
 * way. The optional background thread polls the socket and, when it is
 * readable, takes the mutex and answers what arrived; when a request holds
 * the mutex the thread simply waits for it and then finds nothing to read.
 */
#include "discclient.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DISC_CLIENT_API __attribute__((visibility("default")))

/* A response larger than this is refused (a dump of 100k instances fits). */
#define MAX_LINE (512u << 20)
#define ERR_MAX  512

/* A session instance this client registered: re-attached after a reconnect. */
struct tracked {
    char orig[DISC_ID_LEN + 1]; /* the id the caller got from disc_client_register */
    char cur[DISC_ID_LEN + 1];  /* its id now (differs once re-registered) */
    char *req;                  /* the register request, to register again if discd lost it */
};

/* Reconnect backoff (thread mode): first delay, doubled up to the max. */
#define RECONNECT_MIN_MS 50
#define RECONNECT_MAX_MS 2000

struct disc_client {
    pthread_mutex_t io;
    struct sockaddr_un sa; /* the socket, for reconnecting */
    struct tracked *sess;  /* session instances of this client */
    size_t n_sess, cap_sess;
    int fd;
    int stop_fd; /* eventfd that ends the background thread, -1 in manual mode */
    bool have_thread;
    pthread_t thread;
    bool connected;
    int timeout_ms;
    unsigned skip; /* responses of timed-out requests still to come: drop them */
    char *buf;     /* received bytes not yet consumed: [start, len) */
    size_t start, len, cap;
    char err[ERR_MAX];
    uint64_t generation; /* from the last register/deregister reply (io) */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- low-level I/O (io held) ------------------------------------------------ */

/* Send all of data, waiting up to timeout_ms for room. */
static int send_all(struct disc_client *cl, const char *data, size_t len, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    while (len > 0) {
        ssize_t n = send(cl->fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int64_t left = end - mono_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            struct pollfd p = {.fd = cl->fd, .events = POLLOUT};
            if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
                return -errno;
            continue;
        }
        cl->connected = false;
        return -ENOTCONN;
    }
    return 0;
}

/* Read what is available (after waiting up to timeout_ms for something).
 * Returns bytes read (0 on timeout / nothing available) or -ENOTCONN. */
static int read_some(struct disc_client *cl, int timeout_ms)
{
    if (timeout_ms != 0) {
        struct pollfd p = {.fd = cl->fd, .events = POLLIN};
        int r = poll(&p, 1, timeout_ms);
        if (r == 0 || (r < 0 && errno == EINTR))
            return 0;
    }
    if (cl->start > 0 && cl->start == cl->len) {
        cl->start = cl->len = 0;
    } else if (cl->start > cl->cap / 2) { /* compact */
        memmove(cl->buf, cl->buf + cl->start, cl->len - cl->start);
        cl->len -= cl->start;
        cl->start = 0;
    }
    if (cl->cap - cl->len < 4096) {
        if (cl->cap >= MAX_LINE) {
            cl->connected = false; /* a line that never ends: give up on the peer */
            return -ENOTCONN;
        }
        size_t cap = cl->cap ? cl->cap * 2 : 8192;
        char *b = realloc(cl->buf, cap);
        if (!b)
            return -ENOMEM;
        cl->buf = b;
        cl->cap = cap;
    }
    ssize_t n = recv(cl->fd, cl->buf + cl->len, cl->cap - cl->len - 1, MSG_DONTWAIT);
    if (n > 0) {
        cl->len += (size_t)n;
        return (int)n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    cl->connected = false;
    return -ENOTCONN;
}

/* The next complete line in the buffer (NUL-terminated in place, without
 * "\n"), or NULL. */
static char *next_line(struct disc_client *cl, size_t *len)
{
    if (cl->start >= cl->len) /* also: nothing received yet, buf is NULL */
        return NULL;
    char *s = cl->buf + cl->start;
    char *nl = memchr(s, '\n', cl->len - cl->start);
    if (!nl)
        return NULL;
    *nl = '\0';
    *len = (size_t)(nl - s);
    cl->start += *len + 1;
    return s;
}

/* If line is an event, handle it (answer a ping) and return 1; a response
 * returns 0. Events never carry "ok" and start with the "event" key in
 * discd's output; anything else is treated as a response. */
static int handle_event(struct disc_client *cl, const char *line, size_t len, int *pings)
{
    const char *p = line;
    while (*p == ' ')
        p++;
    if (strncmp(p, "{\"event\"", 8) != 0)
        return 0;
    json_t *j = json_loadb(line, len, 0, NULL);
    if (!j)
        return 1; /* a malformed event: ignore it */
    const char *ev = json_string_value(json_object_get(j, "event"));
    json_t *seq = json_object_get(j, "seq");
    if (ev && strcmp(ev, "ping") == 0 && json_is_integer(seq)) {
        char pong[64];
        int n = snprintf(pong, sizeof(pong), "{\"op\":\"pong\",\"seq\":%lld}\n",
                         (long long)json_integer_value(seq));
        if (send_all(cl, pong, (size_t)n, cl->timeout_ms) == 0 && pings)
            (*pings)++;
    }
    json_decref(j);
    return 1;
}

/* Handle every complete line already buffered (events, and responses of
 * timed-out requests). Returns pings answered. */
static int drain_buffered(struct disc_client *cl)
{
    int pings = 0;
    char *line;
    size_t len;
    while ((line = next_line(cl, &len))) {
        if (!handle_event(cl, line, len, &pings) && cl->skip > 0)
            cl->skip--;
        /* any other unsolicited response is dropped */
    }
    return pings;
}

/* Read everything available without blocking and handle it. */
static int process_locked(struct disc_client *cl)
{
    int pings = 0, r;
    if (!cl->connected)
        return -ENOTCONN;
    /* Bounded: at most 64 reads per call so a flood cannot pin the caller. */
    for (int i = 0; i < 64 && (r = read_some(cl, 0)) > 0; i++)
        pings += drain_buffered(cl);
    pings += drain_buffered(cl);
    if (!cl->connected)
        return -ENOTCONN;
    return pings;
}

/* ---- requests ------------------------------------------------------------------ */

/* Send request (no newline) and wait for its response line; *resp gets a
 * malloc'd copy. */
static int request_locked(struct disc_client *cl, const char *request, char **resp)
{
    if (!cl->connected)
        return -ENOTCONN;
    size_t rl = strlen(request);
    if (memchr(request, '\n', rl))
        return -EINVAL;
    char *msg = malloc(rl + 2);
    if (!msg)
        return -ENOMEM;
    memcpy(msg, request, rl);
    msg[rl] = '\n';
    msg[rl + 1] = '\0';
    int64_t end = mono_ms() + cl->timeout_ms;
    int rc = send_all(cl, msg, rl + 1, cl->timeout_ms);
    free(msg);
    if (rc < 0)
        return rc;
    for (;;) {
        char *line;
        size_t len;
        while ((line = next_line(cl, &len))) {
            if (handle_event(cl, line, len, NULL))
                continue;
            if (cl->skip > 0) { /* a late answer to an earlier, timed-out request */
                cl->skip--;
                continue;
            }
            *resp = strndup(line, len);
            drain_buffered(cl); /* pings that came with the response */
            return *resp ? 0 : -ENOMEM;
        }
        int64_t left = end - mono_ms();
        if (left <= 0) {
            cl->skip++;
            return -ETIMEDOUT;
        }
        rc = read_some(cl, (int)left);
        if (rc < 0)
            return rc;
    }
}

static int code_to_errno(const char *code)
{
    static const struct {
        const char *code;
        int err;
    } map[] = {
        {"bad_json", EINVAL}, {"bad_request", EINVAL}, {"unknown_op", EOPNOTSUPP},
        {"too_large", E2BIG}, {"not_found", ENOENT},   {"forbidden", EPERM},
        {"limit", ENOSPC},    {"internal", EIO},       {"segment_full", ENOSPC},
    };
    for (size_t i = 0; code && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(code, map[i].code) == 0)
            return -map[i].err;
    return -EIO;
}

/* Run a request built as JSON; on an ok response returns 0 and, if out is
 * non-NULL, the parsed response (caller decrefs). */
static int json_request(struct disc_client *cl, json_t *req, json_t **out)
{
    char *text = json_dumps(req, JSON_COMPACT);
    if (!text)
        return -ENOMEM;
    char *line = NULL;
    pthread_mutex_lock(&cl->io);
    cl->err[0] = '\0';
    int rc = request_locked(cl, text, &line);
    if (rc == 0) {
        json_t *r = json_loads(line, 0, NULL);
        if (!json_is_object(r)) {
            snprintf(cl->err, sizeof(cl->err), "daemon sent a response that is not JSON");
            rc = -EIO;
        } else if (!json_is_true(json_object_get(r, "ok"))) {
            json_t *e = json_object_get(r, "error");
            const char *code = json_string_value(json_object_get(e, "code"));
            const char *message = json_string_value(json_object_get(e, "message"));
            const char *field = json_string_value(json_object_get(e, "field"));
            if (field)
                snprintf(cl->err, sizeof(cl->err), "%s: %s (field %s)", code ? code : "error",
                         message ? message : "", field);
            else
                snprintf(cl->err, sizeof(cl->err), "%s: %s", code ? code : "error",
                         message ? message : "");
            rc = code_to_errno(code);
        } else {
            json_t *g = json_object_get(r, "generation");
            if (json_object_get(r, "id") || json_is_integer(g) || json_object_get(r, "published"))
                cl->generation = json_is_integer(g) ? (uint64_t)json_integer_value(g) : 0;
            if (out) {
                *out = r;
                r = NULL;
            }
        }
        json_decref(r);
    }
    pthread_mutex_unlock(&cl->io);
    free(line);
    free(text);
    return rc;
}

/* ---- session instances and reconnecting (io held) ------------------------------- */

static struct tracked *tracked_find(struct disc_client *cl, const char *id)
{
    for (size_t i = 0; i < cl->n_sess; i++)
        if (strcmp(cl->sess[i].orig, id) == 0 || strcmp(cl->sess[i].cur, id) == 0)
            return &cl->sess[i];
    return NULL;
}

/* Remember a session instance; takes req on success. */
static int track(struct disc_client *cl, const char *id, char *req)
{
    if (cl->n_sess == cl->cap_sess) {
        size_t cap = cl->cap_sess ? cl->cap_sess * 2 : 4;
        struct tracked *v = realloc(cl->sess, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        cl->sess = v;
        cl->cap_sess = cap;
    }
    struct tracked *t = &cl->sess[cl->n_sess++];
    memcpy(t->orig, id, sizeof(t->orig));
    memcpy(t->cur, id, sizeof(t->cur));
    t->req = req;
    return 0;
}

static void untrack(struct disc_client *cl, const char *id)
{
    struct tracked *t = tracked_find(cl, id);
    if (!t)
        return;
    free(t->req);
    *t = cl->sess[--cl->n_sess];
}

/* The "ok" and error code of a response line; the id member if wanted. */
static bool response_ok(const char *line, char *code, size_t clen, char id[DISC_ID_LEN + 1])
{
    json_t *r = json_loads(line, 0, NULL);
    bool ok = json_is_true(json_object_get(r, "ok"));
    const char *c = json_string_value(json_object_get(json_object_get(r, "error"), "code"));
    snprintf(code, clen, "%s", c ? c : "");
    const char *s = json_string_value(json_object_get(r, "id"));
    if (id)
        snprintf(id, DISC_ID_LEN + 1, "%s", s && strlen(s) == DISC_ID_LEN ? s : "");
    json_decref(r);
    return ok;
}

/*
 * Open a new connection to the same socket and re-attach every session
 * instance (op attach); one that discd no longer has is registered again
 * (its id changes; tracked->cur). Returns how many got a new id (>= 0),
 * or -errno (-ECONNREFUSED / -ENOENT while discd is down, -ENOTCONN if the
 * new connection broke too).
 */
static int reconnect_locked(struct disc_client *cl)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc;
    while ((rc = connect(fd, (struct sockaddr *)&cl->sa, sizeof(cl->sa))) < 0 && errno == EINTR)
        ;
    if (rc < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    close(cl->fd);
    cl->fd = fd;
    cl->connected = true;
    cl->start = cl->len = 0;
    cl->skip = 0;
    int renewed = 0;
    for (size_t i = 0; i < cl->n_sess; i++) {
        struct tracked *t = &cl->sess[i];
        char req[128], code[32], id[DISC_ID_LEN + 1], *line = NULL;
        snprintf(req, sizeof(req), "{\"op\":\"attach\",\"id\":\"%s\"}", t->cur);
        if ((rc = request_locked(cl, req, &line)) < 0)
            return rc;
        bool ok = response_ok(line, code, sizeof(code), NULL);
        free(line);
        line = NULL;
        if (ok)
            continue;
        if (strcmp(code, "unknown_op") == 0 || strcmp(code, "not_found") == 0 ||
            strcmp(code, "bad_request") == 0) {
            /* discd lost it (no state, grace over, or an older discd): register again */
            if ((rc = request_locked(cl, t->req, &line)) < 0)
                return rc;
            ok = response_ok(line, code, sizeof(code), id);
            free(line);
            if (ok && id[0]) {
                memcpy(t->cur, id, sizeof(t->cur));
                renewed++;
                continue;
            }
        }
        snprintf(cl->err, sizeof(cl->err), "re-attaching %s after a reconnect failed: %s", t->orig,
                 code);
    }
    return renewed;
}

/* ---- the background thread ------------------------------------------------------ */

/* The connection was lost: reconnect with backoff and re-attach. Returns
 * false if the client is being closed meanwhile. */
static bool reconnect_loop(struct disc_client *cl)
{
    int delay = RECONNECT_MIN_MS;
    for (;;) {
        struct pollfd p = {.fd = cl->stop_fd, .events = POLLIN};
        int r = poll(&p, 1, delay);
        if (r > 0)
            return false;
        pthread_mutex_lock(&cl->io);
        int rc = reconnect_locked(cl);
        pthread_mutex_unlock(&cl->io);
        if (rc >= 0)
            return true;
        delay = delay * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : delay * 2;
    }
}

static void *pinger_main(void *arg)
{
    struct disc_client *cl = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = cl->stop_fd, .events = POLLIN},
                              {.fd = cl->fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (p[0].revents)
            return NULL;
        if (p[1].revents) {
            pthread_mutex_lock(&cl->io);
            int rc = process_locked(cl);
            pthread_mutex_unlock(&cl->io);
            if (rc == -ENOTCONN && !reconnect_loop(cl))
                return NULL; /* closing */
        }
    }
}

/* ---- public API ----------------------------------------------------------------- */

DISC_CLIENT_API int disc_client_default_socket(const char *name, char *buf, size_t len)
{
    if (!buf || len == 0)
        return -EINVAL;
    if (!name || !*name)
        name = getenv(DISC_NAME_ENV);
    if (!name || !*name)
        name = DISC_DEFAULT_NAME;
    if (strchr(name, '/'))
        return -EINVAL;
    /* A user's own discd ($XDG_RUNTIME_DIR, private to the user) if it has a
     * socket there, else the system's (/run/discd, writable only by root):
     * never a directory any user could create first, such as /tmp. */
    const char *rt = getenv("XDG_RUNTIME_DIR");
    if (rt && *rt) {
        int n = snprintf(buf, len, "%s/discd/%s.sock", rt, name);
        struct stat st;
        if (n > 0 && (size_t)n < len && (size_t)n < sizeof(((struct sockaddr_un *)0)->sun_path) &&
            lstat(buf, &st) == 0 && S_ISSOCK(st.st_mode))
            return 0;
    }
    int n = snprintf(buf, len, "/run/discd/%s.sock", name);
    if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return -ENAMETOOLONG;
    return 0;
}

DISC_CLIENT_API int disc_client_connect(const char *socket_path, unsigned flags, disc_client **out)
{
    if (!out || (flags & ~DISC_CLIENT_MANUAL))
        return -EINVAL;
    *out = NULL;
    char def[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (!socket_path) {
        int rc = disc_client_default_socket(NULL, def, sizeof(def));
        if (rc < 0)
            return rc;
        socket_path = def;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t pl = strlen(socket_path);
    if (pl == 0)
        return -EINVAL;
    if (pl >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, socket_path, pl + 1);

    struct disc_client *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return -ENOMEM;
    cl->sa = sa;
    cl->stop_fd = -1;
    cl->timeout_ms = DISC_CLIENT_DEFAULT_TIMEOUT_MS;
    cl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc;
    if (cl->fd < 0) {
        rc = -errno;
        free(cl);
        return rc;
    }
    while ((rc = connect(cl->fd, (struct sockaddr *)&sa, sizeof(sa))) < 0 && errno == EINTR)
        ;
    if (rc < 0 || fcntl(cl->fd, F_SETFL, O_NONBLOCK) < 0) {
        rc = -errno;
        close(cl->fd);
        free(cl);
        return rc;
    }
    pthread_mutex_init(&cl->io, NULL);
    cl->connected = true;
    if (!(flags & DISC_CLIENT_MANUAL)) {
        cl->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (cl->stop_fd < 0 || (rc = pthread_create(&cl->thread, NULL, pinger_main, cl)) != 0) {
            rc = cl->stop_fd < 0 ? -errno : -rc;
            if (cl->stop_fd >= 0)
                close(cl->stop_fd);
            close(cl->fd);
            pthread_mutex_destroy(&cl->io);
            free(cl);
            return rc;
        }
        cl->have_thread = true;
    }
    *out = cl;
    return 0;
}

DISC_CLIENT_API void disc_client_close(disc_client *cl)
{
    if (!cl)
        return;
    if (cl->have_thread) {
        uint64_t one = 1;
        ssize_t w = write(cl->stop_fd, &one, sizeof(one));
        (void)w;
        pthread_join(cl->thread, NULL);
    }
    if (cl->stop_fd >= 0)
        close(cl->stop_fd);
    close(cl->fd); /* discd drops this connection's session instances */
    pthread_mutex_destroy(&cl->io);
    for (size_t i = 0; i < cl->n_sess; i++)
        free(cl->sess[i].req);
    free(cl->sess);
    free(cl->buf);
    free(cl);
}

DISC_CLIENT_API int disc_client_set_timeout(disc_client *cl, int timeout_ms)
{
    if (!cl || timeout_ms <= 0)
        return -EINVAL;
    pthread_mutex_lock(&cl->io);
    cl->timeout_ms = timeout_ms;
    pthread_mutex_unlock(&cl->io);
    return 0;
}

/* json_string that tolerates NULL (returns NULL) — callers check. */
static int put_str(json_t *obj, const char *key, const char *val)
{
    if (!val)
        return 0;
    json_t *s = json_string(val);
    if (!s)
        return -EINVAL; /* not UTF-8 */
    return json_object_set_new(obj, key, s) == 0 ? 0 : -ENOMEM;
}

static int put_uint(json_t *obj, const char *key, uint32_t val)
{
    if (!val)
        return 0;
    return json_object_set_new(obj, key, json_integer((json_int_t)val)) == 0 ? 0 : -ENOMEM;
}

/* A member of a public description struct and its JSON key: a string
 * (const char *, left out when NULL) or a number (uint32_t, left out when 0). */
struct member {
    const char *key;
    size_t off;
    bool num;
};

static const struct member instance_members[] = {
    {"service", offsetof(struct disc_instance_desc, service), false},
    {"version", offsetof(struct disc_instance_desc, version), false},
    {"host", offsetof(struct disc_instance_desc, host), false},
    {"az", offsetof(struct disc_instance_desc, az), false},
    {"address", offsetof(struct disc_instance_desc, address), false},
    {"network", offsetof(struct disc_instance_desc, network), false},
    {"weight", offsetof(struct disc_instance_desc, weight), true},
};

static const struct member endpoint_members[] = {
    {"name", offsetof(struct disc_endpoint_desc, name), false},
    {"request", offsetof(struct disc_endpoint_desc, request_type), false},
    {"response", offsetof(struct disc_endpoint_desc, response_type), false},
    {"mean_us", offsetof(struct disc_endpoint_desc, mean_us), true},
    {"p95_us", offsetof(struct disc_endpoint_desc, p95_us), true},
};

static const struct member check_members[] = {
    {"interval_ms", offsetof(struct disc_check_desc, interval_ms), true},
    {"timeout_ms", offsetof(struct disc_check_desc, timeout_ms), true},
    {"misses", offsetof(struct disc_check_desc, misses), true},
    {"ttl_ms", offsetof(struct disc_check_desc, ttl_ms), true},
    {"path", offsetof(struct disc_check_desc, path), false},
    {"target", offsetof(struct disc_check_desc, target), false},
    {"deregister_after_ms", offsetof(struct disc_check_desc, deregister_after_ms), true},
};

/* Put the n members of desc listed in m into obj, in that order; the first
 * error (-EINVAL: not UTF-8, -ENOMEM) stops it. */
static int put_members(json_t *obj, const void *desc, const struct member *m, size_t n)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        const char *p = (const char *)desc + m[i].off;
        rc = m[i].num ? put_uint(obj, m[i].key, *(const uint32_t *)(const void *)p)
                      : put_str(obj, m[i].key, *(const char *const *)(const void *)p);
    }
    return rc;
}

#define PUT_MEMBERS(obj, desc, table)                                                              \
    put_members((obj), (desc), (table), sizeof(table) / sizeof((table)[0]))

static json_t *build_instance(const struct disc_instance_desc *d, int *rc)
{
    json_t *o = json_object();
    if (!o) {
        *rc = -ENOMEM;
        return NULL;
    }
    *rc = PUT_MEMBERS(o, d, instance_members);
    if (!*rc && d->n_tags) {
        json_t *tags = json_object();
        for (size_t i = 0; tags && !*rc && i < d->n_tags; i++)
            *rc = put_str(tags, d->tags[i].key, d->tags[i].value);
        if (!tags || json_object_set_new(o, "tags", tags) < 0)
            *rc = -ENOMEM;
    }
    if (!*rc && d->n_endpoints) {
        json_t *eps = json_array();
        for (size_t i = 0; eps && !*rc && i < d->n_endpoints; i++) {
            json_t *eo = json_object();
            if (!eo) {
                *rc = -ENOMEM;
                break;
            }
            *rc = PUT_MEMBERS(eo, &d->endpoints[i], endpoint_members);
            if (json_array_append_new(eps, eo) < 0 && !*rc)
                *rc = -ENOMEM;
        }
        if (!eps || json_object_set_new(o, "endpoints", eps) < 0)
            *rc = -ENOMEM;
    }
    if (*rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *build_check(const struct disc_check_desc *c, int *rc)
{
    static const char *const types[] = {"session", "tcp", "http", "ttl", "none"};
    json_t *o = json_object();
    if (!o) {
        *rc = -ENOMEM;
        return NULL;
    }
    *rc = json_object_set_new(o, "type", json_string(types[c->type])) ? -ENOMEM : 0;
    if (!*rc)
        *rc = PUT_MEMBERS(o, c, check_members);
    if (*rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Checks that need no daemon: missing required fields, NULL pointers
 * inside arrays, counts and enum values out of range. */
static int check_desc(const struct disc_instance_desc *d, const struct disc_check_desc *c)
{
    if (!d->service || !d->address)
        return -EINVAL;
    if (d->n_tags > DISC_TAGS_MAX || (d->n_tags && !d->tags))
        return -EINVAL;
    for (size_t i = 0; i < d->n_tags; i++)
        if (!d->tags[i].key || !d->tags[i].value)
            return -EINVAL;
    if (d->n_endpoints > DISC_ENDPOINTS_MAX || (d->n_endpoints && !d->endpoints))
        return -EINVAL;
    for (size_t i = 0; i < d->n_endpoints; i++)
        if (!d->endpoints[i].name)
            return -EINVAL;
    if (c && ((unsigned)c->type > DISC_CHECK_NONE))
        return -EINVAL;
    return 0;
}

DISC_CLIENT_API int disc_client_register(disc_client *cl, const struct disc_instance_desc *inst,
                                         const struct disc_check_desc *check, char *id_out)
{
    if (!cl || !inst)
        return -EINVAL;
    int rc = check_desc(inst, check);
    if (rc < 0)
        return rc;
    json_t *ij = build_instance(inst, &rc);
    if (!ij)
        return rc;
    json_t *cj = NULL;
    if (check && !(cj = build_check(check, &rc))) {
        json_decref(ij);
        return rc;
    }
    json_t *req = json_object();
    bool built = req && json_object_set_new(req, "op", json_string("register")) == 0 &&
                 json_object_set(req, "instance", ij) == 0 &&
                 (!cj || json_object_set(req, "check", cj) == 0);
    json_decref(ij); /* req holds its own references now */
    json_decref(cj);
    if (!built) {
        json_decref(req);
        return -ENOMEM;
    }
    json_t *resp = NULL;
    rc = json_request(cl, req, &resp);
    char *text = rc == 0 && (!check || check->type == DISC_CHECK_SESSION)
                     ? json_dumps(req, JSON_COMPACT)
                     : NULL;
    json_decref(req);
    if (rc < 0)
        return rc;
    const char *id = json_string_value(json_object_get(resp, "id"));
    if (!id || strlen(id) != DISC_ID_LEN) {
        free(text);
        json_decref(resp);
        return -EIO;
    }
    if (id_out)
        memcpy(id_out, id, DISC_ID_LEN + 1);
    if (text) { /* a session instance: re-attached after a reconnect */
        pthread_mutex_lock(&cl->io);
        if (track(cl, id, text) < 0)
            free(text);
        pthread_mutex_unlock(&cl->io);
    }
    json_decref(resp);
    return 0;
}

static int id_request(disc_client *cl, const char *op, const char *id)
{
    if (!cl || !id || !*id)
        return -EINVAL;
    char cur[DISC_ID_LEN + 1];
    pthread_mutex_lock(&cl->io);
    struct tracked *t = tracked_find(cl, id);
    if (t) {
        memcpy(cur, t->cur, sizeof(cur)); /* re-registered under a new id */
        id = cur;
    }
    pthread_mutex_unlock(&cl->io);
    json_t *req = json_pack("{s:s, s:s}", "op", op, "id", id);
    if (!req)
        return -EINVAL; /* id not UTF-8 */
    int rc = json_request(cl, req, NULL);
    json_decref(req);
    return rc;
}

DISC_CLIENT_API int disc_client_deregister(disc_client *cl, const char *id)
{
    int rc = id_request(cl, "deregister", id);
    if (rc == 0 || rc == -ENOENT) {
        pthread_mutex_lock(&cl->io);
        untrack(cl, id);
        pthread_mutex_unlock(&cl->io);
    }
    return rc;
}

DISC_CLIENT_API int disc_client_pass(disc_client *cl, const char *id)
{
    return id_request(cl, "pass", id);
}

DISC_CLIENT_API uint64_t disc_client_generation(disc_client *cl)
{
    if (!cl)
        return 0;
    pthread_mutex_lock(&cl->io);
    uint64_t g = cl->generation;
    pthread_mutex_unlock(&cl->io);
    return g;
}

DISC_CLIENT_API int disc_client_request(disc_client *cl, const char *request, char **response)
{
    if (!cl || !request || !response)
        return -EINVAL;
    *response = NULL;
    pthread_mutex_lock(&cl->io);
    cl->err[0] = '\0';
    int rc = request_locked(cl, request, response);
    pthread_mutex_unlock(&cl->io);
    return rc;
}

DISC_CLIENT_API size_t disc_client_error(disc_client *cl, char *buf, size_t len)
{
    if (!cl)
        return 0;
    pthread_mutex_lock(&cl->io);
    size_t n = strlen(cl->err);
    if (buf && len > 0)
        snprintf(buf, len, "%s", cl->err);
    pthread_mutex_unlock(&cl->io);
    return n;
}

DISC_CLIENT_API int disc_client_reconnect(disc_client *cl)
{
    if (!cl)
        return -EINVAL;
    pthread_mutex_lock(&cl->io);
    cl->err[0] = '\0';
    int rc = reconnect_locked(cl);
    pthread_mutex_unlock(&cl->io);
    return rc;
}

DISC_CLIENT_API int disc_client_instance_id(disc_client *cl, const char *id, char *id_out)
{
    if (!cl || !id || !id_out)
        return -EINVAL;
    pthread_mutex_lock(&cl->io);
    struct tracked *t = tracked_find(cl, id);
    if (t)
        memcpy(id_out, t->cur, DISC_ID_LEN + 1);
    pthread_mutex_unlock(&cl->io);
    return t ? 0 : -ENOENT;
}

DISC_CLIENT_API int disc_client_fd(disc_client *cl)
{
    return cl ? cl->fd : -EINVAL;
}

DISC_CLIENT_API int disc_client_process(disc_client *cl)
{
    if (!cl)
        return -EINVAL;
    pthread_mutex_lock(&cl->io);
    int rc = process_locked(cl);
    pthread_mutex_unlock(&cl->io);
    return rc;
}

DISC_CLIENT_API int disc_client_connected(disc_client *cl)
{
    if (!cl)
        return 0;
    pthread_mutex_lock(&cl->io);
    int c = cl->connected;
    pthread_mutex_unlock(&cl->io);
    return c;
}

DISC_CLIENT_API const char *disc_client_strerror(int rc)
{
    switch (-rc) {
    case 0:
        return "success";
    case EINVAL:
        return "invalid argument or request refused by discd";
    case ENOENT:
        return "no such instance, or no discd socket at that path";
    case EPERM:
        return "the instance belongs to another user";
    case ENOSPC:
        return "a discd limit was reached";
    case E2BIG:
        return "request too large";
    case EOPNOTSUPP:
        return "operation not supported by this discd";
    case EIO:
        return "discd failed or answered nonsense";
    case ETIMEDOUT:
        return "discd did not answer in time";
    case ENOTCONN:
        return "connection to discd lost";
    case ECONNREFUSED:
        return "discd is not running (connection refused)";
    case EACCES:
        return "permission denied on the discd socket";
    case ENAMETOOLONG:
        return "socket path too long";
    case ENOMEM:
        return "out of memory";
    default:
        return rc < 0 ? strerror(-rc) : "unknown error";
    }
}
