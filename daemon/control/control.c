/* SPDX-License-Identifier: MIT */
/* control.c — the control socket server (see control.h, docs/PROTOCOL.md). */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "fastreq.h"
#include "request.h"
#include "services.h"
#include "policy.h"
#ifdef DISC_HAVE_HEALTH
#include "health.h"
#endif

#define READ_CHUNK       65536u
#define HEALTH_NOTE_MAX_ 255u /* HEALTH_NOTE_MAX of health.h, also without a checker */
#define EPOLL_BATCH      256
#define OPS_MAX          32 /* room for the counters of ops[] plus "invalid" */

/* A response held back until the publisher has published the change it
 * acknowledges (need_seq), or queued behind such a response (need_seq 0)
 * so that responses keep the order of the requests. */
struct held_reply {
    struct held_reply *next;
    uint64_t need_seq; /* registry change seq to wait for; 0: ready */
    json_t *resp;      /* waiting: the response ("generation" added on release) */
    char *line;        /* ready: serialised response with its "\n" */
    size_t len;
    json_t *seq;                  /* the request's seq (for an error on refusal) */
    char reg_id[DISC_ID_LEN + 1]; /* register: the new instance; "" otherwise */
};

struct conn {
    int fd;
    uint64_t serial; /* for logs */
    uid_t uid;
    gid_t gid;
    pid_t pid;
    uint32_t *groups; /* supplementary groups (SO_PEERGROUPS) */
    size_t n_groups;
    /* responses held until their change is published (see struct held_reply) */
    struct held_reply *held, *held_tail;
    size_t held_bytes;
    struct conn *prev, *next;
    /* input: bytes received, not yet consumed */
    char *in;
    size_t in_len, in_cap;
    /* output: out[out_off, out_len) still to send */
    char *out;
    size_t out_off, out_len, out_cap;
    bool closing;    /* close once the output is flushed; read nothing more */
    bool paused;     /* not reading: output backlog above CONTROL_OUT_HIGH */
    uint32_t events; /* current epoll interest */
    /* session instances owned by this connection */
    char (*sess)[DISC_ID_LEN + 1];
    size_t n_sess, cap_sess;
    uint32_t ping_interval_ms, ping_timeout_ms;
    uint64_t ping_seq, pong_seq;
    bool ping_pending;
    uint32_t missed;
    int64_t next_ping_ms, ping_deadline_ms;
    ssize_t heap_idx;     /* -1: no timer */
    uint64_t errors_sent; /* error responses, for the per-op error counters */
};

struct removal_req {
    struct removal_req *next;
    char id[DISC_ID_LEN + 1];
    char reason[128];
    int health; /* -1: remove the instance; else publish this judgement */
};

struct control {
    int lfd, efd, epfd, reserve_fd;
    char *rbuf; /* READ_CHUNK bytes: the control thread reads requests into it */
    char sock_path[108];
    uint32_t max_conns;
    char registry_name[201];
    char version[32];
    bool zk_configured;
    struct registry *reg;
    struct publisher *pub;
    struct health *health;
    pthread_t thread;
    bool joined;
    atomic_bool stop;
    atomic_uint n_conns;
    struct conn *conns;       /* list */
    int64_t listen_resume_ms; /* > 0: accepting paused (out of fds) until then */
    bool fd_shortage_logged;  /* warned once per shortage */
    uint64_t next_serial;
    int64_t started_ms;
    /* timers: binary min-heap of connections with session instances */
    struct conn **heap;
    size_t heap_len, heap_cap;
    /* shared with other threads */
    pthread_mutex_t mu;
    struct instance_defaults defaults; /* host/az point into def_host/def_az */
    char def_host[DISC_HOST_MAX + 1];
    char def_az[DISC_AZ_MAX + 1];
    struct removal_req *removals;
    json_t *(*zk_status)(void *);
    void *zk_status_arg;
    int (*confirm)(void *, const char *);
    void *confirm_arg;
    char *(*metrics)(void *, struct control *, size_t *); /* set at start */
    void *metrics_arg;
    /* metrics: requests and error responses per entry of ops[], the last
     * one for lines without a valid op; session checks (pings) */
    _Atomic uint64_t op_requests[OPS_MAX], op_errors[OPS_MAX];
    _Atomic uint64_t sess_run, sess_failed;
    /* persistence (control thread, except reload_requested) */
    void (*sync)(void *);
    void *sync_arg;
    char (*orphans)[DISC_ID_LEN + 1]; /* restored session instances awaiting their client */
    size_t n_orphans;
    int64_t grace_until_ms;
    struct services *services; /* static definitions, NULL: none */
    atomic_bool reload_requested;
    /* publisher progress (mu), handled by the control thread */
    struct publisher_progress pub_progress;
    size_t held_conns; /* (mu) n_held as on_publish sees it: 0, nothing to release */
    struct publisher_reject *pub_rej;
    size_t n_pub_rej, cap_pub_rej;
    /* control thread only */
    struct policy *policy;
    struct publisher_progress progress; /* as last applied */
    size_t n_held;                      /* connections with held responses */
    bool progress_owed;                 /* on_publish ran on this thread: apply before sleeping */
    /* the scan of a register/deregister line (~7 KiB, last: the fields
     * above stay together) */
    struct ctl_fast fast;
};

/* The control thread's own struct control (NULL on every other thread):
 * tells on_publish that a commit was made inline, on this thread. */
static _Thread_local struct control *tl_control;

static char listen_tag, event_tag; /* epoll data.ptr sentinels */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- timer heap ---- */

static int64_t conn_due(const struct conn *cn)
{
    return cn->ping_pending && cn->ping_deadline_ms < cn->next_ping_ms ? cn->ping_deadline_ms
                                                                       : cn->next_ping_ms;
}

static void heap_swap(struct control *c, size_t a, size_t b)
{
    struct conn *t = c->heap[a];
    c->heap[a] = c->heap[b];
    c->heap[b] = t;
    c->heap[a]->heap_idx = (ssize_t)a;
    c->heap[b]->heap_idx = (ssize_t)b;
}

static void heap_fix(struct control *c, size_t i)
{
    while (i > 0 && conn_due(c->heap[(i - 1) / 2]) > conn_due(c->heap[i])) {
        heap_swap(c, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < c->heap_len && conn_due(c->heap[l]) < conn_due(c->heap[m]))
            m = l;
        if (r < c->heap_len && conn_due(c->heap[r]) < conn_due(c->heap[m]))
            m = r;
        if (m == i)
            return;
        heap_swap(c, i, m);
        i = m;
    }
}

static int heap_add(struct control *c, struct conn *cn)
{
    if (c->heap_len == c->heap_cap) {
        size_t ncap = c->heap_cap ? c->heap_cap * 2 : 64;
        struct conn **nh = realloc(c->heap, ncap * sizeof(*nh));
        if (!nh)
            return -ENOMEM;
        c->heap = nh;
        c->heap_cap = ncap;
    }
    c->heap[c->heap_len] = cn;
    cn->heap_idx = (ssize_t)c->heap_len++;
    heap_fix(c, (size_t)cn->heap_idx);
    return 0;
}

static void heap_del(struct control *c, struct conn *cn)
{
    if (cn->heap_idx < 0)
        return;
    size_t i = (size_t)cn->heap_idx;
    cn->heap_idx = -1;
    c->heap_len--;
    if (i != c->heap_len) {
        c->heap[i] = c->heap[c->heap_len];
        c->heap[i]->heap_idx = (ssize_t)i;
        heap_fix(c, i);
    }
}

/* ---- output ---- */

static void conn_set_events(struct control *c, struct conn *cn)
{
    uint32_t ev = 0;
    if (!cn->closing && !cn->paused)
        ev |= EPOLLIN;
    if (cn->out_len > cn->out_off)
        ev |= EPOLLOUT;
    if (ev == cn->events)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = cn};
    if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, cn->fd, &e) == 0)
        cn->events = ev;
}

/* Append bytes to the output buffer. -ENOMEM / -E2BIG (backlog limit). */
static int out_append(struct conn *cn, const char *data, size_t len)
{
    if (cn->out_off > 0 && cn->out_off == cn->out_len)
        cn->out_off = cn->out_len = 0;
    size_t need = cn->out_len + len;
    if (need - cn->out_off > CONTROL_OUT_MAX)
        return -E2BIG;
    if (need > cn->out_cap) {
        if (cn->out_off > 0) { /* compact first */
            memmove(cn->out, cn->out + cn->out_off, cn->out_len - cn->out_off);
            cn->out_len -= cn->out_off;
            cn->out_off = 0;
            need = cn->out_len + len;
        }
        if (need > cn->out_cap) {
            size_t ncap = cn->out_cap ? cn->out_cap : 4096;
            while (ncap < need)
                ncap *= 2;
            char *nb = realloc(cn->out, ncap);
            if (!nb)
                return -ENOMEM;
            cn->out = nb;
            cn->out_cap = ncap;
        }
    }
    memcpy(cn->out + cn->out_len, data, len);
    cn->out_len += len;
    return 0;
}

/* Send as much as the socket takes. -1 if the connection is dead. */
static int conn_flush(struct conn *cn)
{
    while (cn->out_off < cn->out_len) {
        ssize_t n = send(cn->fd, cn->out + cn->out_off, cn->out_len - cn->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        cn->out_off += (size_t)n;
    }
    cn->out_off = cn->out_len = 0;
    if (cn->out_cap > (1u << 20)) { /* give back a big dump buffer */
        free(cn->out);
        cn->out = NULL;
        cn->out_cap = 0;
    }
    return 0;
}

/* Queue a ready line behind the held responses. -ENOMEM. */
static int held_append_line(struct conn *cn, char *s)
{
    struct held_reply *h = calloc(1, sizeof(*h));
    size_t n = strlen(s);
    char *line = h ? malloc(n + 2) : NULL;
    if (!line) {
        free(h);
        return -ENOMEM;
    }
    memcpy(line, s, n);
    line[n] = '\n';
    line[n + 1] = '\0';
    h->line = line;
    h->len = n + 1;
    cn->held_tail->next = h;
    cn->held_tail = h;
    cn->held_bytes += h->len;
    return 0;
}

static void send_json(struct conn *cn, json_t *resp)
{
    char *s = json_dumps(resp, JSON_COMPACT);
    json_decref(resp);
    if (s && cn->held) { /* keep the order: behind a response still held */
        int rc = held_append_line(cn, s);
        free(s);
        if (rc < 0) {
            log_warn("conn %llu: dropping connection: cannot queue a response (%s)",
                     (unsigned long long)cn->serial, strerror(-rc));
            cn->closing = true;
        }
        return;
    }
    int rc = s ? out_append(cn, s, strlen(s)) : -ENOMEM;
    if (rc == 0)
        rc = out_append(cn, "\n", 1);
    free(s);
    if (rc < 0) {
        log_warn("conn %llu: dropping connection: cannot queue a response (%s)",
                 (unsigned long long)cn->serial, strerror(-rc));
        cn->closing = true;
        cn->out_off = cn->out_len = 0;
    }
}

static void reply_error(struct conn *cn, json_t *seq, const char *code, const char *field,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void reply_error(struct conn *cn, json_t *seq, const char *code, const char *field,
                        const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *err = json_pack("{s:s, s:s}", "code", code, "message", msg);
    if (err && field && *field)
        json_object_set_new(err, "field", json_string(field));
    json_t *resp = json_pack("{s:b, s:o}", "ok", 0, "error", err);
    if (resp && seq)
        json_object_set(resp, "seq", seq);
    cn->errors_sent++;
    log_debug("conn %llu: error %s%s%s: %s", (unsigned long long)cn->serial, code,
              field && *field ? " at " : "", field ? field : "", msg);
    send_json(cn, resp);
}

/* A success response {"ok":true, "seq":..} to which the caller adds fields. */
static json_t *ok_response(json_t *seq)
{
    json_t *resp = json_pack("{s:b}", "ok", 1);
    if (resp && seq)
        json_object_set(resp, "seq", seq);
    return resp;
}

/* ---- responses held until their change is published ---- */

/* Connections with held responses: n_held (control thread) changes by
 * delta, and held_conns (under mu), what on_publish reads, follows it. */
static void held_conns_add(struct control *c, int delta)
{
    c->n_held = (size_t)((ptrdiff_t)c->n_held + delta);
    pthread_mutex_lock(&c->mu);
    c->held_conns = c->n_held;
    pthread_mutex_unlock(&c->mu);
}

/* Hold resp (ownership taken) until the publisher reports every registry
 * change up to need_seq as handled. reg_id: the instance a register created
 * (its refusal by the publisher turns resp into an error). */
static void hold_response(struct control *c, struct conn *cn, json_t *resp, uint64_t need_seq,
                          const char *reg_id, json_t *seq)
{
    struct held_reply *h = resp ? calloc(1, sizeof(*h)) : NULL;
    if (!h) {
        json_decref(resp);
        log_warn("conn %llu: dropping connection: cannot hold a response (out of memory)",
                 (unsigned long long)cn->serial);
        cn->closing = true;
        return;
    }
    h->need_seq = need_seq;
    h->resp = resp;
    h->seq = seq ? json_incref(seq) : NULL;
    if (reg_id)
        snprintf(h->reg_id, sizeof(h->reg_id), "%s", reg_id);
    if (!cn->held) {
        cn->held = h;
        /* on_publish wakes this thread only while responses are held:
         * either it sees this one, or the progress it has already reported
         * (without a wake-up) is applied before this thread sleeps */
        held_conns_add(c, 1);
        c->progress_owed = true;
    } else {
        cn->held_tail->next = h;
    }
    cn->held_tail = h;
    cn->held_bytes += 256; /* rough: counts against the output backlog */
}

static void held_free(struct held_reply *h)
{
    json_decref(h->resp);
    json_decref(h->seq);
    free(h->line);
    free(h);
}

static void held_drop_all(struct control *c, struct conn *cn)
{
    if (cn->held)
        held_conns_add(c, -1);
    while (cn->held) {
        struct held_reply *h = cn->held;
        cn->held = h->next;
        held_free(h);
    }
    cn->held_tail = NULL;
    cn->held_bytes = 0;
}

/* Send the held responses whose changes are handled, in order. */
static void held_release(struct control *c, struct conn *cn)
{
    const struct publisher_progress *pr = &c->progress;
    while (cn->held) {
        struct held_reply *h = cn->held;
        /* A removal the publisher keeps but cannot publish yet (segment
         * full) is answered as such; a registration waits until it is
         * published or refused. */
        bool stuck = h->need_seq > pr->done_seq && h->need_seq <= pr->stuck_seq && !h->reg_id[0];
        if (h->need_seq > pr->done_seq && !stuck)
            break;
        int rc = 0;
        if (h->line) {
            rc = out_append(cn, h->line, h->len);
            cn->held_bytes -= h->len;
        } else {
            if (stuck) /* kept in the registry, not visible yet: say so */
                json_object_set_new(h->resp, "published", json_false());
            else if (json_is_true(json_object_get(h->resp, "ok")))
                json_object_set_new(h->resp, "generation",
                                    json_integer((json_int_t)pr->generation));
            char *line = json_dumps(h->resp, JSON_COMPACT);
            rc = line ? out_append(cn, line, strlen(line)) : -ENOMEM;
            if (rc == 0)
                rc = out_append(cn, "\n", 1);
            free(line);
            cn->held_bytes -= 256;
        }
        cn->held = h->next;
        held_free(h);
        if (rc < 0) {
            log_warn("conn %llu: dropping connection: cannot queue a response (%s)",
                     (unsigned long long)cn->serial, strerror(-rc));
            cn->closing = true;
            cn->out_off = cn->out_len = 0;
            break;
        }
    }
    if (!cn->held) {
        cn->held_tail = NULL;
        cn->held_bytes = 0;
        held_conns_add(c, -1);
    }
}

/* ---- removal of local instances ---- */

static bool has_health_check(const struct instance *inst)
{
    return inst->check.kind == CHECK_TCP || inst->check.kind == CHECK_HTTP ||
           inst->check.kind == CHECK_TTL;
}

/* Remove a local instance (control thread). 0, -ENOENT, -EPERM. */
static int remove_local(struct control *c, const char *id, const char *reason)
{
    struct instance *inst = NULL;
    int rc = registry_remove_local(c->reg, id, reason, &inst);
    if (rc < 0)
        return rc;
#ifdef DISC_HAVE_HEALTH
    if (c->health && has_health_check(inst))
        health_remove(c->health, id);
#endif
    log_info("removed %s (%s %s): %s", inst->id, inst->service, inst->address, reason);
    instance_unref(inst);
    return 0;
}

/* Stop tracking a session instance of cn (it was deregistered). The ping
 * cadence stays as it is until the connection owns none. */
static void sess_forget(struct control *c, struct conn *cn, const char *id)
{
    for (size_t i = 0; i < cn->n_sess; i++) {
        if (strcmp(cn->sess[i], id) == 0) {
            memcpy(cn->sess[i], cn->sess[--cn->n_sess], sizeof(cn->sess[0]));
            break;
        }
    }
    if (cn->n_sess == 0) {
        heap_del(c, cn);
        cn->ping_pending = false;
    }
}

/* Drop ids that were removed by someone else (e.g. root deregistered them
 * from another connection). O(n) once per ping interval. */
static void sess_prune(struct control *c, struct conn *cn)
{
    for (size_t i = 0; i < cn->n_sess;) {
        struct instance *inst = registry_get(c->reg, cn->sess[i]);
        if (inst) {
            instance_unref(inst);
            i++;
        } else {
            memcpy(cn->sess[i], cn->sess[--cn->n_sess], sizeof(cn->sess[0]));
        }
    }
}

/* Track a new session instance of cn (room in cn->sess was reserved):
 * the connection is pinged at the smallest interval of its instances. */
static void sess_add(struct control *c, struct conn *cn, const struct instance *inst)
{
    memcpy(cn->sess[cn->n_sess++], inst->id, sizeof(cn->sess[0]));
    int64_t now = now_ms();
    bool first = cn->heap_idx < 0;
    if (first || inst->check.interval_ms < cn->ping_interval_ms)
        cn->ping_interval_ms = inst->check.interval_ms;
    if (first || inst->check.timeout_ms < cn->ping_timeout_ms)
        cn->ping_timeout_ms = inst->check.timeout_ms;
    if (first) {
        cn->missed = 0;
        cn->next_ping_ms = now + cn->ping_interval_ms;
        heap_add(c, cn);
    } else if (cn->next_ping_ms > now + cn->ping_interval_ms) {
        cn->next_ping_ms = now + cn->ping_interval_ms;
        heap_fix(c, (size_t)cn->heap_idx);
    }
}

/* A ping went unanswered: remove the instances whose miss budget is spent. */
static void sess_missed(struct control *c, struct conn *cn)
{
    cn->missed++;
    atomic_fetch_add_explicit(&c->sess_run, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->sess_failed, 1, memory_order_relaxed);
    log_debug("conn %llu: ping %llu unanswered (%u in a row)", (unsigned long long)cn->serial,
              (unsigned long long)cn->ping_seq, cn->missed);
    for (size_t i = 0; i < cn->n_sess;) {
        struct instance *inst = registry_get(c->reg, cn->sess[i]);
        if (inst && cn->missed < inst->check.misses) {
            instance_unref(inst);
            i++;
            continue;
        }
        if (inst) {
            char reason[96];
            snprintf(reason, sizeof(reason), "session check: %u pings unanswered", cn->missed);
            remove_local(c, inst->id, reason);
            instance_unref(inst);
        }
        memcpy(cn->sess[i], cn->sess[--cn->n_sess], sizeof(cn->sess[0]));
    }
}

static void sess_send_ping(struct conn *cn, int64_t now)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "{\"event\":\"ping\",\"seq\":%llu}\n",
                     (unsigned long long)++cn->ping_seq);
    if (out_append(cn, line, (size_t)n) == 0) {
        cn->ping_pending = true;
        cn->ping_deadline_ms = now + cn->ping_timeout_ms;
    }
}

/* ---- connections ---- */

static void conn_close(struct control *c, struct conn *cn, const char *why)
{
    for (size_t i = 0; i < cn->n_sess; i++)
        remove_local(c, cn->sess[i], "session connection closed");
    cn->n_sess = 0;
    heap_del(c, cn);
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, cn->fd, NULL);
    close(cn->fd);
    if (cn->prev)
        cn->prev->next = cn->next;
    else
        c->conns = cn->next;
    if (cn->next)
        cn->next->prev = cn->prev;
    atomic_fetch_sub(&c->n_conns, 1);
    log_debug("conn %llu: closed (%s)", (unsigned long long)cn->serial, why);
    held_drop_all(c, cn);
    free(cn->groups);
    free(cn->in);
    free(cn->out);
    free(cn->sess);
    free(cn);
}

static void refuse_connection(int fd, const char *msg)
{
    char line[256];
    int n = snprintf(line, sizeof(line),
                     "{\"ok\":false,\"error\":{\"code\":\"limit\",\"message\":\"%s\"}}\n", msg);
    ssize_t w = send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    close(fd);
}

/* The peer's supplementary groups (for group: rules); none if unknown. */
static void peer_groups(struct conn *cn)
{
    socklen_t len = 32 * sizeof(gid_t);
    for (int tries = 0; tries < 3; tries++) {
        gid_t *g = malloc(len ? len : sizeof(gid_t));
        if (!g)
            return;
        socklen_t got = len;
        if (getsockopt(cn->fd, SOL_SOCKET, SO_PEERGROUPS, g, &got) == 0) {
            size_t n = got / sizeof(gid_t);
            cn->groups = malloc((n ? n : 1) * sizeof(*cn->groups));
            for (size_t i = 0; cn->groups && i < n; i++)
                cn->groups[i] = (uint32_t)g[i];
            cn->n_groups = cn->groups ? n : 0;
            free(g);
            return;
        }
        free(g);
        if (errno != ERANGE)
            return;
        len = got > len ? got : len * 2;
    }
}

static void accept_all(struct control *c)
{
    for (int budget = 0; budget < 256; budget++) {
        int fd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && c->reserve_fd >= 0) {
                /* Out of descriptors: accept with the reserve and refuse. */
                close(c->reserve_fd);
                c->reserve_fd = -1;
                int tmp = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
                if (tmp >= 0)
                    refuse_connection(tmp, "out of file descriptors");
                c->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (!c->fd_shortage_logged)
                    log_warn("control: out of file descriptors; refusing connections");
                c->fd_shortage_logged = true;
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* No reserve either: stop polling the listener for a while
                 * rather than spinning on it. */
                struct epoll_event e = {.events = 0, .data.ptr = &listen_tag};
                epoll_ctl(c->epfd, EPOLL_CTL_MOD, c->lfd, &e);
                if (!c->fd_shortage_logged)
                    log_warn("control: accept: %s; pausing accepts 100 ms at a time until "
                             "descriptors are free",
                             strerror(errno));
                c->fd_shortage_logged = true;
                c->listen_resume_ms = now_ms() + 100;
            }
            return; /* EAGAIN or a transient error: wait for the next event */
        }
        if (atomic_load(&c->n_conns) >= c->max_conns) {
            refuse_connection(fd, "too many connections");
            log_warn("control: refused a connection: %u connections open (max-connections)",
                     c->max_conns);
            continue;
        }
        if (c->fd_shortage_logged) {
            log_info("control: descriptors available again");
            c->fd_shortage_logged = false;
        }
        struct conn *cn = calloc(1, sizeof(*cn));
        if (!cn) {
            close(fd);
            continue;
        }
        cn->fd = fd;
        cn->heap_idx = -1;
        cn->serial = ++c->next_serial;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            cn->uid = cred.uid;
            cn->gid = cred.gid;
            cn->pid = cred.pid;
        } else {
            cn->uid = (uid_t)-1; /* unknown: never matches an owner, never root */
            cn->gid = (gid_t)-1;
        }
        peer_groups(cn);
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = cn};
        if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
            close(fd);
            free(cn);
            continue;
        }
        cn->events = EPOLLIN;
        cn->next = c->conns;
        if (c->conns)
            c->conns->prev = cn;
        c->conns = cn;
        atomic_fetch_add(&c->n_conns, 1);
        log_debug("conn %llu: accepted (pid %d uid %u)", (unsigned long long)cn->serial,
                  (int)cn->pid, (unsigned)cn->uid);
    }
}

/* ---- request handlers ---- */

struct req {
    struct control *c;
    struct conn *cn;
    json_t *msg;                 /* NULL for a line the fast path took */
    json_t *seq;                 /* borrowed, may be NULL */
    const struct ctl_fast *fast; /* the line scanned by ctl_fast_scan, or NULL */
    struct instance *inst;       /* fast register: the instance built from it */
};

/* Read the "id" member: a textual UUID. NULL after replying with an error. */
static const char *req_id(struct req *r)
{
    if (r->fast) {
        if (instance_check_id(r->fast->id) == 0)
            return r->fast->id;
        reply_error(r->cn, r->seq, "bad_request", "id", "id must be a textual UUID");
        return NULL;
    }
    json_t *v = json_object_get(r->msg, "id");
    if (!v) {
        reply_error(r->cn, r->seq, "bad_request", "id", "id is required");
        return NULL;
    }
    if (!json_is_string(v) || instance_check_id(json_string_value(v)) < 0) {
        reply_error(r->cn, r->seq, "bad_request", "id", "id must be a textual UUID");
        return NULL;
    }
    return json_string_value(v);
}

/* Find a local instance the peer may manage. NULL after replying. */
static struct instance *req_owned_instance(struct req *r, const char *id)
{
    struct instance *inst = registry_get(r->c->reg, id);
    if (!inst) {
        reply_error(r->cn, r->seq, "not_found", "id", "no instance %s", id);
        return NULL;
    }
    if (inst->origin != DISC_ORIGIN_LOCAL) {
        reply_error(r->cn, r->seq, "forbidden", "id",
                    "instance %s belongs to host %s, not to this daemon", id, inst->host);
        instance_unref(inst);
        return NULL;
    }
    if (r->cn->uid != 0 && r->cn->uid != inst->owner_uid) {
        reply_error(r->cn, r->seq, "forbidden", "id",
                    "instance %s was registered by uid %u; uid %u may not change it", id,
                    (unsigned)inst->owner_uid, (unsigned)r->cn->uid);
        instance_unref(inst);
        return NULL;
    }
    return inst;
}

/* Start the health checker's tcp/http/ttl check of inst. 0, -ENOSYS (no
 * checker), -EINVAL (definition refused), other -errno. */
static int start_check(struct control *c, struct instance *inst, const char **why)
{
#ifdef DISC_HAVE_HEALTH
    struct health_check_def def = {
        .kind = (enum health_kind)inst->check.kind,
        .interval_ms = inst->check.interval_ms,
        .timeout_ms = inst->check.timeout_ms,
        .misses = inst->check.misses,
        .ttl_ms = inst->check.ttl_ms,
        .deregister_after_ms = inst->check.deregister_after_ms,
    };
    snprintf(def.target, sizeof(def.target), "%s", inst->check.target);
    snprintf(def.path, sizeof(def.path), "%s", inst->check.path);
    /* quiet: the caller kicks the checker after the registry change
     * (kick_checker), so its thread does not run before the commit */
    int rc = c->health ? health_add_quiet(c->health, inst->id, &def) : -ENOSYS;
    if (why) /* why the checker refused it */
        *why = rc == -EINVAL ? health_explain(inst->id, &def) : NULL;
    return rc;
#else
    (void)c;
    (void)inst;
    if (why)
        *why = NULL;
    return -ENOSYS;
#endif
}

/* Let the checker take the checks start_check queued (after the registry
 * change, hence after an idle change's commit: its thread, woken earlier,
 * ran before the commit on a busy CPU, with its first check; perf trace,
 * 97 of 120 tcp-checked registrations). */
static void kick_checker(struct control *c)
{
#ifdef DISC_HAVE_HEALTH
    health_kick(c->health);
#else
    (void)c;
#endif
}

/* Error reply naming the policy rule or limit that refused a registration. */
static void reply_refused(struct req *r, const char *code, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void reply_refused(struct req *r, const char *code, const char *rule, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *err = json_pack("{s:s, s:s, s:s, s:s}", "code", code, "message", msg, "field",
                            "instance.service", "rule", rule);
    json_t *resp = json_pack("{s:b, s:o}", "ok", 0, "error", err);
    if (resp && r->seq)
        json_object_set(resp, "seq", r->seq);
    log_info("conn %llu: registration refused: %s", (unsigned long long)r->cn->serial, msg);
    r->cn->errors_sent++;
    send_json(r->cn, resp);
}

/* Apply the registration policy: may this peer register inst->service, and
 * does it fit the peer's per-uid limits? false after replying. */
static bool policy_allows(struct req *r, const struct instance *inst)
{
    struct conn *cn = r->cn;
    struct policy_peer peer = {
        .uid = cn->uid, .gid = cn->gid, .groups = cn->groups, .n_groups = cn->n_groups};
    struct policy_decision d;
    pthread_mutex_lock(&r->c->mu); /* control_set_policy may swap it (SIGHUP) */
    policy_check(r->c->policy, &peer, inst->service, &d);
    pthread_mutex_unlock(&r->c->mu);
    if (!d.allowed) {
        reply_refused(r, "forbidden", d.rule, "uid %u may not register service '%s': %s",
                      (unsigned)cn->uid, inst->service, d.rule);
        return false;
    }
    if (!d.limited)
        return true;
    struct registry_usage u;
    registry_owner_usage(r->c->reg, cn->uid, &u);
    uint32_t bytes = instance_record_bytes(inst);
    if (u.instances >= d.max_instances) {
        reply_refused(r, "limit", d.limit,
                      "uid %u already has %u instance(s); %s allows %u instances per uid",
                      (unsigned)cn->uid, u.instances, d.limit, d.max_instances);
        return false;
    }
    if (u.bytes + bytes > d.max_bytes) {
        reply_refused(r, "limit", d.limit,
                      "uid %u holds %llu bytes of instance records and this one needs %u; %s "
                      "allows %llu bytes per uid",
                      (unsigned)cn->uid, (unsigned long long)u.bytes, bytes, d.limit,
                      (unsigned long long)d.max_bytes);
        return false;
    }
    return true;
}

/* Register inst (one reference, the caller's, taken over): the policy, the
 * health check, the registry; the reply is held until it is published. */
static void register_instance(struct req *r, struct instance *inst)
{
    struct control *c = r->c;
    int rc;
    inst->owner_uid = r->cn->uid;
    if (!policy_allows(r, inst)) {
        instance_unref(inst);
        return;
    }
    if (has_health_check(inst)) {
        const char *why = NULL;
        rc = start_check(c, inst, &why);
        if (rc < 0) {
            if (rc == -ENOSYS)
                reply_error(r->cn, r->seq, "bad_request", "check.type",
                            "%s checks are not available in this discd",
                            instance_check_kind_name(inst->check.kind));
            else if (rc == -EINVAL)
                reply_error(r->cn, r->seq, "bad_request", "check",
                            "the health checker refused this check definition: %s",
                            why ? why : "invalid values");
            else
                reply_error(r->cn, r->seq, "internal", NULL, "cannot start the check: %s",
                            strerror(-rc));
            instance_unref(inst);
            return;
        }
    }
    if (inst->check.kind == CHECK_SESSION && r->cn->n_sess == r->cn->cap_sess) {
        size_t ncap = r->cn->cap_sess ? r->cn->cap_sess * 2 : 4;
        void *ns = realloc(r->cn->sess, ncap * sizeof(r->cn->sess[0]));
        if (!ns) {
            rc = -ENOMEM;
            goto undo;
        }
        r->cn->sess = ns;
        r->cn->cap_sess = ncap;
    }
    rc = registry_add_local(c->reg, inst);
    if (has_health_check(inst))
        kick_checker(c);
    if (rc < 0)
        goto undo;
    if (inst->check.kind == CHECK_SESSION) {
        sess_add(c, r->cn, inst);
    }
    log_info("registered %s: service=%s version=%s address=%s check=%s uid=%u", inst->id,
             inst->service, inst->version, inst->address,
             instance_check_kind_name(inst->check.kind), (unsigned)inst->owner_uid);
    json_t *resp = ok_response(r->seq);
    json_object_set_new(resp, "id", json_string(inst->id));
    json_object_set_new(resp, "owner_uid", json_integer(inst->owner_uid));
    /* Acknowledged once published (the reply then carries the generation). */
    hold_response(c, r->cn, resp, registry_last_seq(c->reg), inst->id, r->seq);
    instance_unref(inst);
    return;
undo:
#ifdef DISC_HAVE_HEALTH
    if (c->health && has_health_check(inst)) {
        health_remove(c->health, inst->id);
        kick_checker(c);
    }
#endif
    if (rc == -ENOSPC)
        reply_error(r->cn, r->seq, "limit", NULL,
                    "too many local instances (max-instances reached)");
    else
        reply_error(r->cn, r->seq, "internal", NULL, "cannot register: %s", strerror(-rc));
    instance_unref(inst);
}

static void op_register(struct req *r)
{
    struct control *c = r->c;
    struct instance_error ierr = {0};
    struct instance *inst = NULL;
    pthread_mutex_lock(&c->mu);
    int rc = instance_from_request(json_object_get(r->msg, "instance"),
                                   json_object_get(r->msg, "check"), &c->defaults, &inst, &ierr);
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) {
        reply_error(r->cn, r->seq, ierr.code ? ierr.code : "bad_request", ierr.field, "%s",
                    ierr.message);
        return;
    }
    register_instance(r, inst);
}

static void fast_register(struct req *r)
{
    register_instance(r, r->inst);
}

static void op_deregister(struct req *r)
{
    const char *id = req_id(r);
    if (!id)
        return;
    struct instance *inst = req_owned_instance(r, id);
    if (!inst)
        return;
    char reason[64];
    snprintf(reason, sizeof(reason), "deregistered by uid %u", (unsigned)r->cn->uid);
    int rc = remove_local(r->c, inst->id, reason);
    if (rc == 0) {
        sess_forget(r->c, r->cn, inst->id);
        hold_response(r->c, r->cn, ok_response(r->seq), registry_last_seq(r->c->reg), NULL, r->seq);
    } else {
        reply_error(r->cn, r->seq, "not_found", "id", "no instance %s", id);
    }
    instance_unref(inst);
}

/* pass / warn / fail: feed a ttl check, with an optional note. */
static void op_ttl(struct req *r, uint8_t health)
{
    const char *id = req_id(r);
    if (!id)
        return;
    json_t *jn = json_object_get(r->msg, "note");
    if (jn && (!json_is_string(jn) || json_string_length(jn) > HEALTH_NOTE_MAX_ ||
               strlen(json_string_value(jn)) != json_string_length(jn))) {
        reply_error(r->cn, r->seq, "bad_request", "note",
                    "note must be a string of at most %u bytes (no NUL)", HEALTH_NOTE_MAX_);
        return;
    }
    struct instance *inst = req_owned_instance(r, id);
    if (!inst)
        return;
    if (inst->check.kind != CHECK_TTL) {
        reply_error(r->cn, r->seq, "bad_request", "id",
                    "instance %s has a %s check, not ttl: only ttl checks are fed by "
                    "pass/warn/fail",
                    id, instance_check_kind_name(inst->check.kind));
        instance_unref(inst);
        return;
    }
    int rc = -ENOENT;
#ifdef DISC_HAVE_HEALTH
    if (r->c->health)
        rc = health_ttl_report(r->c->health, inst->id, health, jn ? json_string_value(jn) : NULL);
#else
    (void)health;
#endif
    if (rc == 0)
        send_json(r->cn, ok_response(r->seq));
    else
        reply_error(r->cn, r->seq, "not_found", "id", "instance %s is not being checked", id);
    instance_unref(inst);
}

static void op_pass(struct req *r)
{
    op_ttl(r, DISC_HEALTH_PASSING);
}

static void op_warn(struct req *r)
{
    op_ttl(r, DISC_HEALTH_WARNING);
}

static void op_fail(struct req *r)
{
    op_ttl(r, DISC_HEALTH_CRITICAL);
}

/* The checker's judgement of a local instance (PASSING without a checker). */
static uint8_t check_health(struct control *c, const struct instance *inst, char *note, size_t len)
{
    uint8_t h = DISC_HEALTH_PASSING;
    if (note && len)
        note[0] = '\0';
#ifdef DISC_HAVE_HEALTH
    if (c->health && has_health_check(inst))
        health_status(c->health, inst->id, &h, note, len);
#else
    (void)c;
    (void)inst;
#endif
    return h;
}

/* Put inst in or out of maintenance (control thread). 0, or -errno. */
static int set_maintenance(struct control *c, struct instance *inst, bool on, const char *reason,
                           unsigned uid)
{
    if (inst->check.maintenance == on &&
        (!on || strcmp(inst->check.maint_reason, reason ? reason : "") == 0))
        return 0;
    struct instance *n = instance_clone(inst);
    if (!n)
        return -ENOMEM;
    n->check.maintenance = on;
    snprintf(n->check.maint_reason, sizeof(n->check.maint_reason), "%s",
             on && reason ? reason : "");
    n->health = on ? DISC_HEALTH_MAINTENANCE : check_health(c, inst, NULL, 0);
    int rc = registry_replace_local(c->reg, n, true);
    if (rc == 0)
        log_info("%s (%s %s): maintenance %s by uid %u%s%s", n->id, n->service, n->address,
                 on ? "on" : "off", uid, on && reason && *reason ? ": " : "",
                 on && reason ? reason : "");
    instance_unref(n);
    return rc;
}

struct maint_sel {
    const char *service;
    uid_t uid;
    struct instance **list;
    size_t n, cap;
    unsigned foreign; /* local instances of the service the peer may not manage */
    bool oom;
};

static int maint_collect(struct instance *inst, void *arg)
{
    struct maint_sel *m = arg;
    if (strcmp(inst->service, m->service) != 0)
        return 0;
    if (m->uid != 0 && m->uid != inst->owner_uid) {
        m->foreign++;
        return 0;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct instance **l = realloc(m->list, cap * sizeof(*l));
        if (!l) {
            m->oom = true;
            return 1;
        }
        m->list = l;
        m->cap = cap;
    }
    m->list[m->n++] = instance_ref(inst);
    return 0;
}

/* maint: {"id":ID | "service":S, "enable":bool, "reason":TEXT} */
static void op_maint(struct req *r)
{
    json_t *en = json_object_get(r->msg, "enable");
    if (!json_is_boolean(en)) {
        reply_error(r->cn, r->seq, "bad_request", "enable",
                    "enable must be true (take out of rotation) or false (put back)");
        return;
    }
    bool on = json_is_true(en);
    json_t *jr = json_object_get(r->msg, "reason");
    if (jr && (!json_is_string(jr) || json_string_length(jr) > INSTANCE_MAINT_REASON_MAX ||
               strlen(json_string_value(jr)) != json_string_length(jr))) {
        reply_error(r->cn, r->seq, "bad_request", "reason",
                    "reason must be a string of at most %u bytes (no NUL)",
                    INSTANCE_MAINT_REASON_MAX);
        return;
    }
    const char *reason = jr ? json_string_value(jr) : "";
    json_t *svc = json_object_get(r->msg, "service");
    bool has_id = json_object_get(r->msg, "id") != NULL;
    if (has_id == (svc != NULL)) {
        reply_error(r->cn, r->seq, "bad_request", has_id ? "service" : "id",
                    "give either id or service, not %s", has_id ? "both" : "neither");
        return;
    }
    struct maint_sel m = {.uid = r->cn->uid};
    if (has_id) {
        const char *id = req_id(r);
        if (!id)
            return;
        struct instance *inst = req_owned_instance(r, id);
        if (!inst)
            return;
        m.list = malloc(sizeof(*m.list));
        if (m.list)
            m.list[m.n++] = inst;
        else
            instance_unref(inst);
        m.oom = !m.list;
    } else {
        if (!json_is_string(svc) || instance_check_service_name(json_string_value(svc)) < 0) {
            reply_error(r->cn, r->seq, "bad_request", "service",
                        "service must be a service name (1..255 of letters, digits, . _ : -)");
            return;
        }
        m.service = json_string_value(svc);
        registry_foreach(r->c->reg, REGISTRY_LOCAL, maint_collect, &m);
    }
    json_t *ids = json_array();
    int rc = m.oom || !ids ? -ENOMEM : 0;
    for (size_t i = 0; i < m.n; i++) {
        if (rc == 0 &&
            (rc = set_maintenance(r->c, m.list[i], on, reason, (unsigned)r->cn->uid)) == 0)
            json_array_append_new(ids, json_string(m.list[i]->id));
        instance_unref(m.list[i]);
    }
    free(m.list);
    if (rc < 0) {
        json_decref(ids);
        reply_error(r->cn, r->seq, "internal", NULL, "cannot change maintenance: %s",
                    strerror(-rc));
        return;
    }
    if (!has_id && m.n == 0) {
        json_decref(ids);
        if (m.foreign)
            reply_error(r->cn, r->seq, "forbidden", "service",
                        "the %u local instance(s) of %s were registered by other uids; uid %u "
                        "may not change them",
                        m.foreign, m.service, (unsigned)r->cn->uid);
        else
            reply_error(r->cn, r->seq, "not_found", "service",
                        "no local instance of service %s (maintenance applies to instances "
                        "registered with this discd)",
                        m.service);
        return;
    }
    json_t *resp = ok_response(r->seq);
    json_object_set_new(resp, "ids", ids);
    json_object_set_new(resp, "maintenance", json_boolean(on));
    send_json(r->cn, resp);
}

static void op_pong(struct req *r)
{
    json_t *v = json_object_get(r->msg, "seq");
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        reply_error(r->cn, NULL, "bad_request", "seq",
                    "pong needs the integer seq of the ping it answers");
        return;
    }
    uint64_t seq = (uint64_t)json_integer_value(v);
    struct conn *cn = r->cn;
    if (seq > cn->ping_seq || seq <= cn->pong_seq)
        return; /* not a ping we sent, or already answered: ignore */
    cn->pong_seq = seq;
    cn->missed = 0;
    if (seq == cn->ping_seq && cn->ping_pending) {
        atomic_fetch_add_explicit(&r->c->sess_run, 1, memory_order_relaxed);
        cn->ping_pending = false;
        if (cn->heap_idx >= 0)
            heap_fix(r->c, (size_t)cn->heap_idx);
    }
}

struct collect {
    json_t *arr;
    const char *service;
    struct control *c;
    int failed;
};

static int collect_instance(struct instance *inst, void *arg)
{
    struct collect *col = arg;
    if (col->service && strcmp(inst->service, col->service) != 0)
        return 0;
    json_t *o = instance_to_json(inst, inst->origin == DISC_ORIGIN_LOCAL ? INSTANCE_JSON_CHECK : 0);
    json_t *chk = o ? json_object_get(o, "check") : NULL;
    if (chk && has_health_check(inst)) {
        /* What the checker says now, whatever is published (maintenance). */
        char note[HEALTH_NOTE_MAX_ + 1];
        uint8_t h = check_health(col->c, inst, note, sizeof(note));
        json_object_set_new(chk, "status", json_string(instance_health_name(h)));
        json_object_set_new(chk, "note", json_string(note));
#ifdef DISC_HAVE_HEALTH
        const char *via = "";
        if (col->c->health && health_tcp_via(col->c->health, inst->id, &via) == 0 && *via)
            json_object_set_new(chk, "via", json_string(via)); /* tcp: sock_diag or connect */
#endif
    }
    if (!o || json_array_append_new(col->arr, o) < 0)
        col->failed = 1;
    return col->failed;
}

static void send_instances(struct req *r, const char *service)
{
    struct collect col = {.arr = json_array(), .service = service, .c = r->c};
    if (!col.arr) {
        reply_error(r->cn, r->seq, "internal", NULL, "out of memory");
        return;
    }
    registry_foreach(r->c->reg, REGISTRY_ALL, collect_instance, &col);
    if (col.failed) {
        json_decref(col.arr);
        reply_error(r->cn, r->seq, "internal", NULL, "out of memory");
        return;
    }
    json_t *resp = ok_response(r->seq);
    json_object_set_new(resp, "instances", col.arr);
    send_json(r->cn, resp);
}

static void op_query(struct req *r)
{
    json_t *v = json_object_get(r->msg, "service");
    if (!v) {
        reply_error(r->cn, r->seq, "bad_request", "service", "service is required");
        return;
    }
    if (!json_is_string(v) || instance_check_service_name(json_string_value(v)) < 0) {
        reply_error(r->cn, r->seq, "bad_request", "service",
                    "service must be a service name (1..255 of letters, digits, . _ : -)");
        return;
    }
    send_instances(r, json_string_value(v));
}

static void op_dump(struct req *r)
{
    send_instances(r, NULL);
}

/* services: name -> {"versions": {v:true}, "instances": N} */
static int collect_service(struct instance *inst, void *arg)
{
    json_t *map = arg;
    json_t *s = json_object_get(map, inst->service);
    if (!s) {
        s = json_pack("{s:{}, s:i}", "versions", "instances", 0);
        if (!s || json_object_set_new(map, inst->service, s) < 0)
            return 1;
    }
    json_object_set_new(json_object_get(s, "versions"), inst->version, json_true());
    json_t *n = json_object_get(s, "instances");
    json_integer_set(n, json_integer_value(n) + 1);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keys of a JSON object, sorted (array of borrowed strings; free() it). */
static const char **sorted_keys(json_t *obj, size_t *n)
{
    *n = json_object_size(obj);
    const char **keys = malloc((*n ? *n : 1) * sizeof(*keys));
    if (!keys)
        return NULL;
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        (void)v;
        keys[i++] = k;
    }
    qsort(keys, *n, sizeof(*keys), cmp_str);
    return keys;
}

static void op_services(struct req *r)
{
    json_t *map = json_object();
    json_t *arr = json_array();
    size_t n = 0;
    const char **keys = NULL;
    if (!map || !arr || registry_foreach(r->c->reg, REGISTRY_ALL, collect_service, map) != 0 ||
        !(keys = sorted_keys(map, &n))) {
        json_decref(map);
        json_decref(arr);
        reply_error(r->cn, r->seq, "internal", NULL, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_object_get(map, keys[i]);
        json_t *vers = json_array();
        size_t nv = 0;
        const char **vk = sorted_keys(json_object_get(s, "versions"), &nv);
        for (size_t j = 0; vk && j < nv; j++)
            json_array_append_new(vers, json_string(vk[j]));
        free(vk);
        json_array_append_new(arr, json_pack("{s:s, s:o, s:O}", "name", keys[i], "versions", vers,
                                             "instances", json_object_get(s, "instances")));
    }
    free(keys);
    json_decref(map);
    json_t *resp = ok_response(r->seq);
    json_object_set_new(resp, "services", arr);
    send_json(r->cn, resp);
}

/* endpoints: "service.endpoint\nversion" -> aggregate */
static int collect_endpoint(struct instance *inst, void *arg)
{
    json_t *map = arg;
    for (uint16_t i = 0; i < inst->n_endpoints; i++) {
        const struct segw_endpoint *e = &inst->endpoints[i];
        char key[DISC_SERVICE_MAX + DISC_ENDPOINT_NAME_MAX + DISC_VERSION_MAX + 4];
        snprintf(key, sizeof(key), "%s.%s\n%s", inst->service, e->name, inst->version);
        json_t *a = json_object_get(map, key);
        if (!a) {
            char name[DISC_SERVICE_MAX + DISC_ENDPOINT_NAME_MAX + 2];
            snprintf(name, sizeof(name), "%s.%s", inst->service, e->name);
            a = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:i}", "name", name, "version",
                          inst->version, "request", e->request_type, "response", e->response_type,
                          "mean_sum", (json_int_t)0, "mean_n", (json_int_t)0, "p95_us",
                          (json_int_t)0, "instances", 0);
            if (!a || json_object_set_new(map, key, a) < 0)
                return 1;
        }
        json_t *cnt = json_object_get(a, "instances");
        json_integer_set(cnt, json_integer_value(cnt) + 1);
        if (e->mean_us) {
            json_t *s = json_object_get(a, "mean_sum"), *n = json_object_get(a, "mean_n");
            json_integer_set(s, json_integer_value(s) + e->mean_us);
            json_integer_set(n, json_integer_value(n) + 1);
        }
        json_t *p = json_object_get(a, "p95_us");
        if (e->p95_us > json_integer_value(p))
            json_integer_set(p, e->p95_us);
    }
    return 0;
}

static void op_endpoints(struct req *r)
{
    json_t *map = json_object();
    json_t *arr = json_array();
    size_t n = 0;
    const char **keys = NULL;
    if (!map || !arr || registry_foreach(r->c->reg, REGISTRY_ALL, collect_endpoint, map) != 0 ||
        !(keys = sorted_keys(map, &n))) {
        json_decref(map);
        json_decref(arr);
        reply_error(r->cn, r->seq, "internal", NULL, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_object_get(map, keys[i]);
        json_int_t sum = json_integer_value(json_object_get(a, "mean_sum"));
        json_int_t cnt = json_integer_value(json_object_get(a, "mean_n"));
        json_object_del(a, "mean_sum");
        json_object_del(a, "mean_n");
        json_object_set_new(a, "mean_us", json_integer(cnt ? sum / cnt : 0));
        json_array_append(arr, a);
    }
    free(keys);
    json_decref(map);
    json_t *resp = ok_response(r->seq);
    json_object_set_new(resp, "endpoints", arr);
    send_json(r->cn, resp);
}

static int count_service(struct instance *inst, void *arg)
{
    return json_object_set_new(arg, inst->service, json_true()) < 0;
}

static void op_status(struct req *r)
{
    struct control *c = r->c;
    struct publisher_stats ps;
    publisher_get_stats(c->pub, &ps);
    json_t *set = json_object();
    if (set)
        registry_foreach(c->reg, REGISTRY_ALL, count_service, set);
    uint32_t nl = registry_count_local(c->reg), nr = registry_count_remote(c->reg);
    json_t *zk = NULL;
    pthread_mutex_lock(&c->mu);
    json_t *(*hook)(void *) = c->zk_status;
    void *hook_arg = c->zk_status_arg;
    char host[DISC_HOST_MAX + 1];
    snprintf(host, sizeof(host), "%s", c->def_host);
    pthread_mutex_unlock(&c->mu);
    if (hook)
        zk = hook(hook_arg);
    if (!zk)
        zk = json_pack("{s:b, s:s}", "configured", c->zk_configured, "state",
                       c->zk_configured ? "unknown" : "standalone");
    json_t *resp = ok_response(r->seq);
    json_object_set_new(resp, "registry", json_string(c->registry_name));
    json_object_set_new(resp, "generation", json_integer((json_int_t)ps.generation));
    json_object_set_new(resp, "instances", json_integer((json_int_t)nl + nr));
    json_object_set_new(resp, "local_instances", json_integer(nl));
    json_object_set_new(resp, "services", json_integer((json_int_t)json_object_size(set)));
    json_object_set_new(resp, "connections", json_integer(atomic_load(&c->n_conns)));
    json_object_set_new(resp, "uptime_s", json_integer((now_ms() - c->started_ms) / 1000));
    json_object_set_new(resp, "zookeeper", zk);
#ifdef DISC_HAVE_HEALTH
    if (c->health) {
        char tl[256];
        health_tcp_local_state(c->health, tl, sizeof(tl));
        json_object_set_new(resp, "tcp_checks_local", json_string(tl));
    }
#endif
    json_object_set_new(resp, "version", json_string(c->version));
    json_object_set_new(resp, "pid", json_integer(getpid()));
    json_object_set_new(resp, "host_id", json_string(host));
    json_object_set_new(
        resp, "publisher",
        json_pack(
            "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "commits",
            (json_int_t)ps.commits, "idle_commits", (json_int_t)ps.idle_commits, "inline_commits",
            (json_int_t)ps.inline_commits, "coalesced_commits", (json_int_t)ps.coalesced_commits,
            "changes", (json_int_t)ps.changes, "commit_errors", (json_int_t)ps.commit_errors,
            "last_commit_us", (json_int_t)ps.last_commit_us, "rejected", (json_int_t)ps.rejected,
            "segment_bytes", (json_int_t)ps.seg.segment_bytes, "grows", (json_int_t)ps.grows,
            "grow_errors", (json_int_t)ps.grow_errors, "last_grow_us", (json_int_t)ps.last_grow_us,
            "unchanged_puts", (json_int_t)ps.seg.unchanged_puts));
    json_decref(set);
    send_json(r->cn, resp);
}

/* Apply held removals (protection); root or the daemon's uid only. */
static void op_confirm(struct req *r)
{
    struct control *c = r->c;
    json_t *svc = json_object_get(r->msg, "service");
    if (svc && (!json_is_string(svc) || instance_check_service_name(json_string_value(svc)) < 0)) {
        reply_error(r->cn, r->seq, "bad_request", "service", "service must be a service name");
        return;
    }
    if (r->cn->uid != 0 && r->cn->uid != getuid()) {
        reply_error(r->cn, r->seq, "forbidden", NULL,
                    "confirm is for root or uid %u (the daemon's); uid %u may not",
                    (unsigned)getuid(), (unsigned)r->cn->uid);
        return;
    }
    pthread_mutex_lock(&c->mu);
    int (*hook)(void *, const char *) = c->confirm;
    void *hook_arg = c->confirm_arg;
    pthread_mutex_unlock(&c->mu);
    int n = hook ? hook(hook_arg, svc ? json_string_value(svc) : NULL) : 0;
    json_t *resp = ok_response(r->seq);
    json_object_set_new(resp, "confirmed", json_integer(n));
    send_json(r->cn, resp);
}

/* The text of every metric (the metrics part's renderer). */
static void op_metrics(struct req *r)
{
    struct control *c = r->c;
    size_t len = 0;
    char *text = c->metrics ? c->metrics(c->metrics_arg, c, &len) : NULL;
    if (!text) {
        reply_error(r->cn, r->seq, "internal", NULL, "metrics are not available%s",
                    c->metrics ? ": out of memory" : "");
        return;
    }
    json_t *resp = ok_response(r->seq);
    json_object_set_new(resp, "content_type", json_string("text/plain; version=0.0.4"));
    json_object_set_new(resp, "text", json_stringn(text, len));
    free(text);
    send_json(r->cn, resp);
}

/* ---- persistence: restored instances, re-attach, static definitions ---- */

/* Register a local instance no request made (restored or static): start its
 * check and add it. 0, or -errno with a message in err (256 bytes). */
static int add_unrequested(struct control *c, struct instance *inst, char *err)
{
    int rc = 0;
    const char *why = NULL;
    if (has_health_check(inst) && (rc = start_check(c, inst, &why)) < 0) {
        snprintf(err, 256, "%s%s",
                 rc == -ENOSYS   ? "checks of this type are not available in this discd"
                 : rc == -EINVAL ? "the health checker refused the check definition: "
                                 : strerror(-rc),
                 rc == -EINVAL ? (why ? why : "invalid values") : "");
        return rc;
    }
    rc = registry_add_local(c->reg, inst);
    if (has_health_check(inst))
        kick_checker(c);
    if (rc < 0) {
#ifdef DISC_HAVE_HEALTH
        if (c->health && has_health_check(inst))
            health_remove(c->health, inst->id);
#endif
        snprintf(err, 256, "%s",
                 rc == -EEXIST   ? "another instance has this id"
                 : rc == -ENOSPC ? "too many local instances (max-instances reached)"
                                 : strerror(-rc));
    }
    return rc;
}

/* Register the instances restored from the state file (before the thread
 * starts). Session instances wait grace_ms for their client (op attach). */
static void restore_all(struct control *c, const struct control_config *cfg)
{
    if (cfg->n_restore == 0)
        return;
    c->orphans = calloc(cfg->n_restore, sizeof(*c->orphans));
    c->grace_until_ms = now_ms() + cfg->session_grace_ms;
    unsigned restored = 0;
    for (size_t i = 0; i < cfg->n_restore; i++) {
        struct instance *inst = cfg->restore[i];
        char err[256];
        if (inst->check.kind == CHECK_SESSION && !c->orphans) {
            log_error("cannot restore %s (%s %s): out of memory", inst->id, inst->service,
                      inst->address);
            continue;
        }
        if (add_unrequested(c, inst, err) < 0) {
            log_error("cannot restore %s (%s %s): %s", inst->id, inst->service, inst->address, err);
            continue;
        }
        restored++;
        log_info("restored %s: service=%s version=%s address=%s check=%s uid=%u", inst->id,
                 inst->service, inst->version, inst->address,
                 instance_check_kind_name(inst->check.kind), (unsigned)inst->owner_uid);
        if (inst->check.kind == CHECK_SESSION)
            memcpy(c->orphans[c->n_orphans++], inst->id, sizeof(c->orphans[0]));
    }
    log_info("restored %u of %zu local instances; %zu session instances wait up to %u ms for "
             "their clients to re-attach",
             restored, cfg->n_restore, c->n_orphans, cfg->session_grace_ms);
}

/* epoll timeout, shortened to the end of the session grace period. */
static int grace_timeout(struct control *c, int timeout)
{
    if (c->n_orphans == 0)
        return timeout;
    int64_t d = c->grace_until_ms - now_ms();
    int g = d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
    return timeout < 0 || g < timeout ? g : timeout;
}

/* The grace period is over: remove the session instances nobody re-attached. */
static void run_grace(struct control *c)
{
    if (c->n_orphans == 0 || now_ms() < c->grace_until_ms)
        return;
    for (size_t i = 0; i < c->n_orphans; i++)
        remove_local(c, c->orphans[i],
                     "session client did not re-attach within the grace period after a restart");
    c->n_orphans = 0;
}

static void op_attach(struct req *r)
{
    struct control *c = r->c;
    const char *id = req_id(r);
    if (!id)
        return;
    struct instance *inst = req_owned_instance(r, id);
    if (!inst)
        return;
    size_t i = 0;
    while (i < c->n_orphans && strcmp(c->orphans[i], inst->id) != 0)
        i++;
    if (i == c->n_orphans) {
        reply_error(r->cn, r->seq, "bad_request", "id",
                    "instance %s is not waiting to be re-attached (only session instances "
                    "restored after a discd restart are, during the session grace period)",
                    id);
        instance_unref(inst);
        return;
    }
    if (r->cn->n_sess == r->cn->cap_sess) {
        size_t ncap = r->cn->cap_sess ? r->cn->cap_sess * 2 : 4;
        void *ns = realloc(r->cn->sess, ncap * sizeof(r->cn->sess[0]));
        if (!ns) {
            reply_error(r->cn, r->seq, "internal", NULL, "out of memory");
            instance_unref(inst);
            return;
        }
        r->cn->sess = ns;
        r->cn->cap_sess = ncap;
    }
    memcpy(c->orphans[i], c->orphans[--c->n_orphans], sizeof(c->orphans[0]));
    sess_add(c, r->cn, inst);
    log_info("re-attached %s (%s %s) to conn %llu (uid %u)", inst->id, inst->service, inst->address,
             (unsigned long long)r->cn->serial, (unsigned)r->cn->uid);
    json_t *resp = ok_response(r->seq);
    json_object_set_new(resp, "id", json_string(inst->id));
    send_json(r->cn, resp);
    instance_unref(inst);
}

static int static_add(void *arg, struct instance *inst, char *err)
{
    int rc = add_unrequested(arg, inst, err);
    if (rc == 0)
        log_info("registered %s from a static definition: service=%s version=%s address=%s "
                 "check=%s",
                 inst->id, inst->service, inst->version, inst->address,
                 instance_check_kind_name(inst->check.kind));
    return rc;
}

static void static_remove(void *arg, const char *id, const char *reason)
{
    remove_local(arg, id, reason);
}

/* Apply the static definitions directory now. res->errors is the caller's. */
static int reload_static(struct control *c, struct services_result *res)
{
    struct instance_defaults def;
    char host[DISC_HOST_MAX + 1], az[DISC_AZ_MAX + 1];
    pthread_mutex_lock(&c->mu);
    def = c->defaults;
    snprintf(host, sizeof(host), "%s", c->def_host);
    snprintf(az, sizeof(az), "%s", c->def_az);
    pthread_mutex_unlock(&c->mu);
    def.host = host;
    def.az = az;
    struct services_ops ops = {.add = static_add, .remove = static_remove, .arg = c};
    int rc = services_apply(c->services, &def, &ops, res);
    log_info("static definitions: %u files, %u added, %u changed, %u removed, %u unchanged, "
             "%zu errors",
             res->files, res->added, res->changed, res->removed, res->kept,
             json_array_size(res->errors));
    return rc;
}

/* Re-read the static definitions; root or the daemon's uid only. */
static void op_reload(struct req *r)
{
    struct control *c = r->c;
    if (r->cn->uid != 0 && r->cn->uid != getuid()) {
        reply_error(r->cn, r->seq, "forbidden", NULL,
                    "reload is for root or uid %u (the daemon's); uid %u may not",
                    (unsigned)getuid(), (unsigned)r->cn->uid);
        return;
    }
    struct services_result res = {0};
    int rc = c->services ? reload_static(c, &res) : 0;
    if (rc < 0) {
        json_decref(res.errors);
        reply_error(r->cn, r->seq, "internal", NULL, "cannot reload: %s", strerror(-rc));
        return;
    }
    json_t *resp = ok_response(r->seq);
    json_object_set_new(resp, "files", json_integer(res.files));
    json_object_set_new(resp, "added", json_integer(res.added));
    json_object_set_new(resp, "changed", json_integer(res.changed));
    json_object_set_new(resp, "removed", json_integer(res.removed));
    json_object_set_new(resp, "unchanged", json_integer(res.kept));
    json_object_set_new(resp, "static", json_integer((json_int_t)services_count(c->services)));
    json_object_set_new(resp, "errors", res.errors ? res.errors : json_array());
    send_json(r->cn, resp);
}

struct op_def {
    const char *name;
    void (*fn)(struct req *);
};

static const struct op_def ops[] = {
    {"register", op_register}, {"deregister", op_deregister},
    {"pass", op_pass},         {"warn", op_warn},
    {"fail", op_fail},         {"maint", op_maint},
    {"pong", op_pong},         {"query", op_query},
    {"services", op_services}, {"endpoints", op_endpoints},
    {"status", op_status},     {"dump", op_dump},
    {"confirm", op_confirm},   {"metrics", op_metrics},
    {"attach", op_attach},     {"reload", op_reload},
};
#define N_OPS (sizeof(ops) / sizeof(ops[0]))
_Static_assert(N_OPS < OPS_MAX, "raise OPS_MAX");

/* Run ops[i] for r and count it. */
static void run_op(struct req *r, size_t i, void (*fn)(struct req *))
{
    uint64_t errors = r->cn->errors_sent;
    fn(r);
    atomic_fetch_add_explicit(&r->c->op_requests[i], 1, memory_order_relaxed);
    if (r->cn->errors_sent != errors)
        atomic_fetch_add_explicit(&r->c->op_errors[i], 1, memory_order_relaxed);
}

/* The index of op in ops[]. */
static size_t op_index(void (*fn)(struct req *))
{
    size_t i = 0;
    while (i < N_OPS && ops[i].fn != fn)
        i++;
    return i;
}

/*
 * The fast path for register and deregister (fastreq.h): a line of the
 * plain shape is scanned with no jansson tree and, for register, its
 * instance built from the scan with instance_from_fields (the same checks
 * as instance_from_request). False when it does not take the line, having
 * done nothing: a line it cannot scan, or a registration whose instance
 * is refused (jansson's path then makes the error reply, so every reply
 * is the same as without the fast path). The tree jansson would build
 * (two dozen allocations, ~20k instructions, from cold caches after an
 * idle gap) was a third of the time from the socket to the segment.
 */
static bool handle_fast(struct control *c, struct conn *cn, const char *line, size_t len)
{
    struct ctl_fast *f = &c->fast;
    if (ctl_fast_scan(line, len, f) != 1)
        return false;
    struct instance *inst = NULL;
    if (f->op == CTL_FAST_REGISTER) {
        struct instance_error ierr = {0};
        pthread_mutex_lock(&c->mu);
        int rc = instance_from_fields(f->instance, f->check, &c->defaults, &inst, &ierr);
        pthread_mutex_unlock(&c->mu);
        if (rc < 0)
            return false;
    }
    json_t *seq = f->has_seq ? json_integer(f->seq) : NULL;
    if (f->has_seq && !seq) {
        instance_unref(inst);
        return false;
    }
    struct req r = {.c = c, .cn = cn, .seq = seq, .fast = f, .inst = inst};
    if (inst)
        run_op(&r, op_index(op_register), fast_register);
    else
        run_op(&r, op_index(op_deregister), op_deregister);
    json_decref(seq);
    return true;
}

static void handle_line(struct control *c, struct conn *cn, const char *line, size_t len)
{
    if (handle_fast(c, cn, line, len))
        return;
    struct ctl_request q;
    struct ctl_error e;
    int rc = ctl_parse_request(line, len, &q, &e);
    if (rc == 0)
        return; /* blank line: not a request */
    if (rc < 0) {
        reply_error(cn, q.seq, e.code, e.field, "%s", e.message);
        goto out;
    }
    struct req r = {.c = c, .cn = cn, .msg = q.msg, .seq = q.seq};
    for (size_t i = 0; i < N_OPS; i++) {
        if (strcmp(q.op, ops[i].name) == 0) {
            run_op(&r, i, ops[i].fn);
            json_decref(q.msg);
            return;
        }
    }
    reply_error(cn, q.seq, "unknown_op", "op",
                "unknown op (expected register, deregister, pass, warn, fail, maint, pong, "
                "query, services, endpoints, status, dump, confirm, metrics, attach or reload)");
out:
    json_decref(q.msg);
    /* No valid op: counted as the pseudo-op "invalid". */
    atomic_fetch_add_explicit(&c->op_requests[N_OPS], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->op_errors[N_OPS], 1, memory_order_relaxed);
}

/* Consume complete lines from the input buffer while the output backlog
 * allows. */
static void process_input(struct control *c, struct conn *cn)
{
    size_t off = 0;
    while (!cn->closing) {
        if (cn->out_len - cn->out_off + cn->held_bytes > CONTROL_OUT_HIGH) {
            cn->paused = true;
            break;
        }
        char *start = cn->in + off;
        size_t avail = cn->in_len - off;
        size_t scan = avail < CONTROL_MAX_LINE + 1 ? avail : CONTROL_MAX_LINE + 1;
        char *nl = memchr(start, '\n', scan);
        if (!nl) {
            if (avail > CONTROL_MAX_LINE) {
                reply_error(cn, NULL, "too_large", NULL,
                            "request line longer than %u bytes; closing the connection",
                            CONTROL_MAX_LINE);
                cn->closing = true;
            }
            break;
        }
        handle_line(c, cn, start, (size_t)(nl - start));
        off += (size_t)(nl - start) + 1;
    }
    if (off > 0) {
        memmove(cn->in, cn->in + off, cn->in_len - off);
        cn->in_len -= off;
    }
    if (cn->closing)
        cn->in_len = 0;
}

/* Read what the peer sent and handle its complete lines. NULL, or why the
 * connection must be closed. */
static const char *conn_read_input(struct control *c, struct conn *cn)
{
    if (cn->in_cap - cn->in_len < READ_CHUNK) {
        size_t ncap = cn->in_len + READ_CHUNK;
        char *nb = realloc(cn->in, ncap);
        if (!nb)
            return "out of memory";
        cn->in = nb;
        cn->in_cap = ncap;
    }
    ssize_t n = recv(cn->fd, cn->in + cn->in_len, cn->in_cap - cn->in_len, MSG_DONTWAIT);
    if (n == 0) {
        /* End of requests (maybe only a half-close): answer what was sent,
         * including a last line without "\n", then close. */
        process_input(c, cn);
        if (!cn->closing && cn->in_len > 0 && !cn->paused)
            handle_line(c, cn, cn->in, cn->in_len);
        if (!cn->paused) {
            cn->closing = true;
            cn->in_len = 0;
        }
        if (cn->out_len == cn->out_off && !cn->paused && !cn->held)
            return "peer closed";
        return NULL;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == EWOULDBLOCK)
            return NULL;
        return strerror(errno);
    }
    cn->in_len += (size_t)n;
    process_input(c, cn);
    return NULL;
}

/* Returns false if the connection was closed. A connection with no partial
 * line left reads into the thread's buffer (c->rbuf) and keeps only what is
 * left unhandled: idle connections hold no input buffer, and a request
 * costs no allocation (a fresh 64 KiB buffer per request made the heap grow
 * and shrink, with page faults, on every request). */
static bool conn_readable(struct control *c, struct conn *cn)
{
    bool borrowed = cn->in_len == 0 && c->rbuf;
    if (borrowed) {
        free(cn->in);
        cn->in = c->rbuf;
        cn->in_cap = READ_CHUNK;
    }
    const char *why = conn_read_input(c, cn);
    if (borrowed || cn->in_len == 0) {
        char *own = NULL;
        if (cn->in_len > 0 && !(own = malloc(cn->in_len)))
            why = why ? why : "out of memory";
        else if (own)
            memcpy(own, cn->in, cn->in_len);
        if (!borrowed)
            free(cn->in);
        cn->in = own;
        cn->in_cap = own ? cn->in_len : 0;
        if (!own)
            cn->in_len = 0;
    }
    if (why) {
        conn_close(c, cn, why);
        return false;
    }
    return true;
}

/* After output progress: resume a paused connection, close a finished one. */
static bool conn_after_io(struct control *c, struct conn *cn)
{
    if (c->sync)
        c->sync(c->sync_arg); /* acknowledged changes are durable first */
    if (conn_flush(cn) < 0) {
        conn_close(c, cn, "send failed");
        return false;
    }
    if (cn->paused && cn->out_len - cn->out_off + cn->held_bytes <= CONTROL_OUT_HIGH / 2) {
        cn->paused = false;
        process_input(c, cn);
        if (c->sync)
            c->sync(c->sync_arg);
        if (conn_flush(cn) < 0) {
            conn_close(c, cn, "send failed");
            return false;
        }
    }
    if (cn->closing && cn->out_len == cn->out_off && !cn->held) {
        conn_close(c, cn, "closed by server after an error");
        return false;
    }
    conn_set_events(c, cn);
    return true;
}

static void run_timers(struct control *c)
{
    int64_t now = now_ms();
    for (int budget = 0; budget < 4096 && c->heap_len > 0; budget++) {
        struct conn *cn = c->heap[0];
        if (conn_due(cn) > now)
            break;
        if (cn->ping_pending && now >= cn->ping_deadline_ms) {
            cn->ping_pending = false;
            sess_missed(c, cn);
        }
        if (cn->n_sess > 0 && now >= cn->next_ping_ms)
            sess_prune(c, cn);
        if (cn->n_sess > 0 && now >= cn->next_ping_ms) {
            sess_send_ping(cn, now);
            cn->next_ping_ms = now + cn->ping_interval_ms;
        }
        if (cn->n_sess == 0) {
            heap_del(c, cn);
            cn->ping_pending = false;
        } else {
            heap_fix(c, 0);
        }
        conn_after_io(c, cn);
    }
}

/* The checker's judgement of a local instance changed: publish it (unless
 * the instance is in maintenance, which wins) and log the transition. */
static void apply_health(struct control *c, const char *id, uint8_t health, const char *reason)
{
    struct instance *inst = registry_get(c->reg, id);
    if (!inst || inst->origin != DISC_ORIGIN_LOCAL) {
        instance_unref(inst);
        return; /* removed meanwhile */
    }
    if (inst->check.maintenance) {
        log_info("%s (%s %s): check now %s (%s); stays in maintenance", inst->id, inst->service,
                 inst->address, instance_health_name(health), reason);
    } else if (inst->health != health) {
        struct instance *n = instance_clone(inst);
        if (n)
            n->health = health;
        int rc = n ? registry_replace_local(c->reg, n, false) : -ENOMEM;
        if (rc == 0)
            log_info("%s (%s %s): health %s -> %s: %s", inst->id, inst->service, inst->address,
                     instance_health_name(inst->health), instance_health_name(health), reason);
        else
            log_error("%s: cannot publish health %s: %s", inst->id, instance_health_name(health),
                      strerror(-rc));
        instance_unref(n);
    }
    instance_unref(inst);
}

/* Publisher thread (or a thread that committed inline): record progress
 * and refusals, and wake the control thread when it has something to do
 * with them: a refusal, or responses held until a change is published. A
 * commit of remote changes alone (the ZooKeeper worker's) wakes nobody. */
static void on_publish(void *arg, const struct publisher_progress *pr,
                       const struct publisher_reject *rej, size_t n_rej)
{
    struct control *c = arg;
    pthread_mutex_lock(&c->mu);
    bool wanted = n_rej > 0 || c->held_conns > 0;
    c->pub_progress = *pr;
    if (n_rej > c->cap_pub_rej - c->n_pub_rej) {
        size_t ncap = c->n_pub_rej + n_rej + 16;
        struct publisher_reject *n = realloc(c->pub_rej, ncap * sizeof(*n));
        if (n) {
            c->pub_rej = n;
            c->cap_pub_rej = ncap;
        }
    }
    for (size_t i = 0; i < n_rej && c->n_pub_rej < c->cap_pub_rej; i++)
        c->pub_rej[c->n_pub_rej++] = rej[i];
    pthread_mutex_unlock(&c->mu);
    if (tl_control == c) {
        /* An inline commit (the control thread published its own change):
         * the loop applies it before it sleeps again, no eventfd round trip
         * (write, epoll wake-up, read) before the held replies go out. */
        c->progress_owed = true;
        return;
    }
    if (!wanted)
        return; /* a response held later finds this progress (hold_response) */
    uint64_t one = 1;
    ssize_t w = write(c->efd, &one, sizeof(one));
    (void)w;
}

/* A local instance the publisher refused: remove it, and turn the held
 * register response into an error naming the cause. */
static void handle_reject(struct control *c, const struct publisher_reject *rj)
{
    const char *why = rj->error == -ENOSPC ? "the shared-memory segment is full"
                                           : "the segment writer refused the record";
    for (struct conn *cn = c->conns; cn; cn = cn->next) {
        for (struct held_reply *h = cn->held; h; h = h->next) {
            if (h->line || strcmp(h->reg_id, rj->id) != 0)
                continue;
            json_t *err =
                json_pack("{s:s, s:s}", "code",
                          rj->error == -ENOSPC ? "segment_full" : "bad_request", "message", "");
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "instance %s was not registered: %s (%s); nothing was kept%s", rj->id, why,
                     strerror(-rj->error),
                     rj->error == -ENOSPC ? "; it cannot grow (discd's log says why: "
                                            "--max-segment-size or a full file system)"
                                          : "");
            json_object_set_new(err, "message", json_string(msg));
            json_t *resp = json_pack("{s:b, s:o}", "ok", 0, "error", err);
            if (resp && h->seq)
                json_object_set(resp, "seq", h->seq);
            if (resp) {
                json_decref(h->resp);
                h->resp = resp;
            }
            sess_forget(c, cn, rj->id);
        }
    }
    char reason[96];
    snprintf(reason, sizeof(reason), "not published: %s", why);
    remove_local(c, rj->id, reason);
}

static void run_publish_progress(struct control *c)
{
    pthread_mutex_lock(&c->mu);
    struct publisher_progress pr = c->pub_progress;
    size_t n = c->n_pub_rej;
    struct publisher_reject *rej = n ? malloc(n * sizeof(*rej)) : NULL;
    if (rej)
        memcpy(rej, c->pub_rej, n * sizeof(*rej));
    c->n_pub_rej = 0;
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; rej && i < n; i++)
        handle_reject(c, &rej[i]);
    free(rej);
    c->progress = pr;
    if (c->n_held == 0)
        return;
    for (struct conn *cn = c->conns, *next; cn; cn = next) {
        next = cn->next;
        if (cn->held) {
            held_release(c, cn);
            conn_after_io(c, cn);
        }
    }
}

static void run_removals(struct control *c)
{
    uint64_t v;
    ssize_t n = read(c->efd, &v, sizeof(v));
    (void)n;
    c->progress_owed = false;
    run_publish_progress(c);
    pthread_mutex_lock(&c->mu);
    struct removal_req *list = c->removals;
    c->removals = NULL;
    pthread_mutex_unlock(&c->mu);
    /* Oldest first: a health change and a removal of one id keep their order. */
    struct removal_req *rev = NULL;
    while (list) {
        struct removal_req *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    for (list = rev; list;) {
        struct removal_req *next = list->next;
        if (list->health >= 0)
            apply_health(c, list->id, (uint8_t)list->health, list->reason);
        else if (remove_local(c, list->id, list->reason) < 0)
            log_debug("removal of %s (%s) skipped: not registered", list->id, list->reason);
        free(list);
        list = next;
    }
}

static void resume_listening(struct control *c)
{
    if (c->listen_resume_ms == 0 || now_ms() < c->listen_resume_ms)
        return;
    c->listen_resume_ms = 0;
    if (c->reserve_fd < 0)
        c->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &listen_tag};
    epoll_ctl(c->epfd, EPOLL_CTL_MOD, c->lfd, &e);
}

static int epoll_timeout(struct control *c)
{
    if (c->listen_resume_ms > 0)
        return 100;
    if (c->heap_len == 0)
        return -1; /* no session instances: sleep until something happens */
    int64_t d = conn_due(c->heap[0]) - now_ms();
    return d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
}

static void *control_main(void *arg)
{
    struct control *c = arg;
    pthread_setname_np(pthread_self(), "disc-control"); /* for top, perf and traces */
    registry_thread_online();
    /* A request's change is published by this thread when the publisher is
     * idle (no hand-off; on_publish below then runs here too). */
    tl_control = c;
    if (c->pub)
        publisher_allow_inline(c->pub, true);
    struct epoll_event evs[EPOLL_BATCH];
    while (!atomic_load(&c->stop)) {
        int n = epoll_wait(c->epfd, evs, EPOLL_BATCH, grace_timeout(c, epoll_timeout(c)));
        if (n < 0 && errno != EINTR) {
            log_error("control: epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &listen_tag) {
                accept_all(c);
                continue;
            }
            if (p == &event_tag) {
                run_removals(c);
                continue;
            }
            /* Each connection appears at most once per batch and only its own
             * event closes it, so cn is valid here. */
            struct conn *cn = p;
            uint32_t ev = evs[i].events;
            if ((ev & EPOLLIN) && !conn_readable(c, cn))
                continue;
            if ((ev & (EPOLLERR | EPOLLHUP)) && !(ev & EPOLLIN)) {
                conn_close(c, cn, "hang-up");
                continue;
            }
            conn_after_io(c, cn);
        }
        run_timers(c);
        run_grace(c);
        if (atomic_exchange(&c->reload_requested, false)) {
            struct services_result res = {0};
            reload_static(c, &res);
            json_decref(res.errors);
        }
        if (c->sync)
            c->sync(c->sync_arg);
        resume_listening(c);
        /* Commits made inline on this thread during the turn: send the
         * replies they release (after the batch, so closing a connection
         * cannot leave a later event of it dangling). What this releases
         * may commit again (a refusal removes its instance): loop. */
        while (c->progress_owed) {
            c->progress_owed = false;
            run_publish_progress(c);
        }
    }
    if (c->pub)
        publisher_allow_inline(c->pub, false);
    registry_thread_offline();
    return NULL;
}

/* ---- setup ---- */

static int make_socket(struct control *c, const struct control_config *cfg, char *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(cfg->socket_path) >= sizeof(sa.sun_path)) {
        snprintf(err, 256, "socket path %s is too long", cfg->socket_path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, cfg->socket_path);
    snprintf(c->sock_path, sizeof(c->sock_path), "%s", cfg->socket_path);
    /* Create the parent directory if it is missing (one level). */
    char dir[sizeof(sa.sun_path)];
    snprintf(dir, sizeof(dir), "%s", cfg->socket_path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
            int e = errno;
            snprintf(err, 256, "cannot create %s: %s", dir, strerror(e));
            return -e;
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, 256, "socket: %s", strerror(e));
        return -e;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == EADDRINUSE) {
        /* Something is there: a live server, or a stale socket file. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (probe >= 0)
            close(probe);
        struct stat st;
        if (live || lstat(cfg->socket_path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
            close(fd);
            snprintf(err, 256, "%s is in use (%s)", cfg->socket_path,
                     live ? "another server answers on it" : "not a socket");
            return -EADDRINUSE;
        }
        unlink(cfg->socket_path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            goto bound;
    } else {
        goto bound;
    }
    {
        int e = errno;
        close(fd);
        snprintf(err, 256, "bind %s: %s", cfg->socket_path, strerror(e));
        return -e;
    }
bound:
    if ((cfg->socket_gid >= 0 && (gid_t)cfg->socket_gid != getegid() &&
         chown(cfg->socket_path, (uid_t)-1, (gid_t)cfg->socket_gid) < 0) ||
        chmod(cfg->socket_path, cfg->socket_mode) < 0 || listen(fd, SOMAXCONN) < 0) {
        int e = errno;
        close(fd);
        unlink(cfg->socket_path);
        snprintf(err, 256, "socket %s: %s", cfg->socket_path, strerror(e));
        return -e;
    }
    c->lfd = fd;
    return 0;
}

static void set_defaults_locked(struct control *c, const struct instance_defaults *def)
{
    snprintf(c->def_host, sizeof(c->def_host), "%s", def->host ? def->host : "");
    snprintf(c->def_az, sizeof(c->def_az), "%s", def->az ? def->az : "");
    c->defaults = *def;
    c->defaults.host = c->def_host;
    c->defaults.az = c->def_az;
}

int control_start(const struct control_config *cfg, struct registry *reg, struct publisher *pub,
                  struct health *health, struct control **out, char *err)
{
    struct control *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, 256, "out of memory");
        return -ENOMEM;
    }
    c->lfd = c->efd = c->epfd = -1;
    c->reg = reg;
    c->pub = pub;
    c->health = health;
    c->max_conns = cfg->max_connections ? cfg->max_connections : 4096;
    c->zk_configured = cfg->zk_configured;
    c->started_ms = now_ms();
    snprintf(c->registry_name, sizeof(c->registry_name), "%s", cfg->registry_name);
    snprintf(c->version, sizeof(c->version), "%s", cfg->version ? cfg->version : "");
    pthread_mutex_init(&c->mu, NULL);
    set_defaults_locked(c, &cfg->defaults);
    c->sync = cfg->sync;
    c->metrics = cfg->metrics;
    c->metrics_arg = cfg->metrics_arg;
    c->sync_arg = cfg->sync_arg;
    char perr[POLICY_ERR_MAX];
    c->policy = policy_new(cfg->register_rules, cfg->n_register_rules, cfg->register_limits,
                           cfg->n_register_limits, (uint32_t)geteuid(), perr);
    int rc = -EINVAL;
    if (!c->policy) {
        snprintf(err, 256, "registration policy: %.200s", perr);
        goto fail;
    }
    policy_log(c->policy);
    /* The wake-up eventfd first: the publisher's listener writes to it. */
    c->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    c->rbuf = malloc(READ_CHUNK); /* NULL: each connection allocates its own */
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (c->efd < 0 || c->epfd < 0) {
        rc = -errno;
        snprintf(err, 256, "epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = &event_tag};
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->efd, &e2) < 0) {
        rc = -errno;
        snprintf(err, 256, "epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    if (pub) { /* before the thread starts: progress reaches it from the first turn */
        struct publisher_stats ps;
        publisher_get_stats(pub, &ps);
        c->progress.generation = ps.generation;
        publisher_set_listener(pub, on_publish, c);
    }
    /* Restored and static instances are registered before any request. */
    restore_all(c, cfg);
    if (cfg->services_dir && (c->services = services_new(cfg->services_dir, geteuid()))) {
        struct services_result res = {0};
        reload_static(c, &res);
        json_decref(res.errors);
    }
    if (c->sync)
        c->sync(c->sync_arg);
    /* The segment goes into place (when discd deferred it) holding what was
     * just restored, and before the socket exists: whoever waits for the
     * socket finds the segment complete. */
    if (pub)
        publisher_install(pub);
    rc = make_socket(c, cfg, err);
    if (rc < 0)
        goto fail;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &listen_tag};
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->lfd, &e) < 0) {
        rc = -errno;
        snprintf(err, 256, "epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    rc = pthread_create(&c->thread, NULL, control_main, c);
    if (rc != 0) {
        rc = -rc;
        snprintf(err, 256, "pthread_create: %s", strerror(-rc));
        goto fail;
    }
    *out = c;
    return 0;
fail:
    if (pub)
        publisher_set_listener(pub, NULL, NULL);
    policy_free(c->policy);
    if (c->lfd >= 0) {
        close(c->lfd);
        unlink(c->sock_path);
    }
    if (c->efd >= 0)
        close(c->efd);
    if (c->epfd >= 0)
        close(c->epfd);
    if (c->reserve_fd > 0)
        close(c->reserve_fd);
    free(c->orphans);
    free(c->rbuf);
    services_free(c->services);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return rc;
}

void control_halt(struct control *c)
{
    if (!c || c->joined)
        return;
    atomic_store(&c->stop, true);
    uint64_t one = 1;
    ssize_t w = write(c->efd, &one, sizeof(one));
    (void)w;
    pthread_join(c->thread, NULL);
    c->joined = true;
}

void control_stop(struct control *c)
{
    if (!c)
        return;
    control_halt(c);
    if (c->pub)
        publisher_set_listener(c->pub, NULL, NULL);
    close(c->lfd);
    unlink(c->sock_path);
    while (c->conns) {
        struct conn *cn = c->conns;
        c->conns = cn->next;
        held_drop_all(c, cn);
        free(cn->groups);
        close(cn->fd);
        free(cn->in);
        free(cn->out);
        free(cn->sess);
        free(cn);
    }
    while (c->removals) {
        struct removal_req *next = c->removals->next;
        free(c->removals);
        c->removals = next;
    }
    close(c->efd);
    close(c->epfd);
    if (c->reserve_fd >= 0)
        close(c->reserve_fd);
    free(c->heap);
    free(c->orphans);
    free(c->rbuf);
    services_free(c->services);
    free(c->pub_rej);
    policy_free(c->policy);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void control_set_defaults(struct control *c, const struct instance_defaults *def)
{
    pthread_mutex_lock(&c->mu);
    set_defaults_locked(c, def);
    pthread_mutex_unlock(&c->mu);
}

int control_set_policy(struct control *c, const char (*rules)[POLICY_TEXT_MAX], size_t n_rules,
                       const char (*limits)[POLICY_TEXT_MAX], size_t n_limits, char *err)
{
    char perr[POLICY_ERR_MAX];
    struct policy *np = policy_new(rules, n_rules, limits, n_limits, (uint32_t)geteuid(), perr);
    if (!np) {
        snprintf(err, 256, "registration policy: %.200s", perr);
        return -EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    struct policy *old = c->policy;
    c->policy = np;
    pthread_mutex_unlock(&c->mu);
    policy_free(old);
    policy_log(np);
    return 0;
}

void control_request_removal(struct control *c, const char *id, const char *reason)
{
    struct removal_req *rq = calloc(1, sizeof(*rq));
    if (!rq) {
        log_error("cannot queue the removal of %s: out of memory", id);
        return;
    }
    snprintf(rq->id, sizeof(rq->id), "%s", id);
    snprintf(rq->reason, sizeof(rq->reason), "%s", reason ? reason : "check failed");
    rq->health = -1;
    pthread_mutex_lock(&c->mu);
    rq->next = c->removals;
    c->removals = rq;
    pthread_mutex_unlock(&c->mu);
    uint64_t one = 1;
    ssize_t w = write(c->efd, &one, sizeof(one));
    (void)w;
}

void control_request_health(struct control *c, const char *id, uint8_t health, const char *reason)
{
    struct removal_req *rq = calloc(1, sizeof(*rq));
    if (!rq) {
        log_error("cannot queue the health change of %s: out of memory", id);
        return;
    }
    snprintf(rq->id, sizeof(rq->id), "%s", id);
    snprintf(rq->reason, sizeof(rq->reason), "%s", reason ? reason : "");
    rq->health = health;
    pthread_mutex_lock(&c->mu);
    rq->next = c->removals;
    c->removals = rq;
    pthread_mutex_unlock(&c->mu);
    uint64_t one = 1;
    ssize_t w = write(c->efd, &one, sizeof(one));
    (void)w;
}

void control_request_reload(struct control *c)
{
    atomic_store(&c->reload_requested, true);
    uint64_t one = 1;
    ssize_t w = write(c->efd, &one, sizeof(one));
    (void)w;
}

void control_set_confirm(struct control *c, int (*fn)(void *arg, const char *service), void *arg)
{
    pthread_mutex_lock(&c->mu);
    c->confirm = fn;
    c->confirm_arg = arg;
    pthread_mutex_unlock(&c->mu);
}

void control_set_zk_status(struct control *c, json_t *(*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&c->mu);
    c->zk_status = fn;
    c->zk_status_arg = arg;
    pthread_mutex_unlock(&c->mu);
}

uint32_t control_connections(struct control *c)
{
    return atomic_load(&c->n_conns);
}

bool control_op_stats(struct control *c, size_t i, const char **name, uint64_t *requests,
                      uint64_t *errors)
{
    if (i > N_OPS)
        return false;
    *name = i < N_OPS ? ops[i].name : "invalid";
    *requests = atomic_load_explicit(&c->op_requests[i], memory_order_relaxed);
    *errors = atomic_load_explicit(&c->op_errors[i], memory_order_relaxed);
    return true;
}

void control_session_stats(struct control *c, uint64_t *run, uint64_t *failed)
{
    *run = atomic_load_explicit(&c->sess_run, memory_order_relaxed);
    *failed = atomic_load_explicit(&c->sess_failed, memory_order_relaxed);
}
