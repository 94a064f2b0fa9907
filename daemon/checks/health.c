/* SPDX-License-Identifier: MIT */
/*
 * health.c — the checker thread behind health.h.
 *
 * One thread, one epoll set. Instances live in a hash table (by id) and in a
 * binary min-heap ordered by the time of their next event: the start of the
 * next check, or, while a check is in flight, its deadline. So a tick costs
 * O(due * log n), not O(n).
 *
 *   tcp   non-blocking connect(); EPOLLOUT says it succeeded, EPOLLERR (and
 *         SO_ERROR) why it failed. The connection is then reset, which
 *         leaves no TIME_WAIT. IPv4/IPv6 sockets are not closed but kept in
 *         a small pool, registered in the epoll set once (edge-triggered),
 *         and reused: connect(AF_UNSPEC) resets the connection and makes
 *         the socket connectable again. So a passing check costs two system
 *         calls (connect, the resetting connect) plus its share of one
 *         epoll_wait, instead of six (socket, connect, epoll_ctl, SO_ERROR,
 *         SO_LINGER, close), and no socket is allocated and freed per check.
 *         A target local to discd's network namespace is not connected to
 *         (with check-tcp-local = diag, the default): the first such check
 *         of a tick takes one NETLINK_SOCK_DIAG listing of the listening
 *         sockets (sockdiag.h), and every local check of that tick is
 *         judged from it at once, with no descriptor and no event.
 *   http  a libcurl easy handle per instance (reused), driven by one multi handle through
 *         curl_multi_socket_action (curl's sockets live in the same epoll set).
 *   ttl   no I/O: at each examination the instance fails if its last pass is
 *         older than ttl_ms.
 *
 * Locking: the checker's working state (heap, descriptors, curl handles,
 * miss counters) is private to the checker thread and needs no lock, so a
 * slow batch of checks never blocks the threads calling the API. One mutex
 * guards only the id table and two inboxes: health_add puts the new instance
 * in the table and the add inbox, health_remove takes it out of the table and
 * puts it in the remove inbox, and the checker drains both once per loop.
 * on_fail is called with no lock held (it may call health_remove & co).
 */
#include "health.h"
#include "sockdiag.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HEALTH_ID_MAX       63
#define HEALTH_INTERVAL_MIN 10u
#define HEALTH_INTERVAL_MAX (24u * 3600u * 1000u)
#define HEALTH_MISSES_MAX   1000u
/* When no descriptor is free a check is postponed this long, not failed. */
#define HEALTH_RETRY_MS 50u
#define HEALTH_TICK_MS  5u
#define HEALTH_EVENTS   256
/* A sock_diag listing serves the checks of later ticks too while it is
 * younger than HEALTH_DIAG_REUSE x the CPU its dump took (at most
 * HEALTH_DIAG_AGE_MAX ms): the listing's cost stays under about 1/50 of a
 * core however many listening sockets the host (or another uid) has. */
#define HEALTH_DIAG_REUSE   50u
#define HEALTH_DIAG_AGE_MAX 1000u
/* Idle sockets kept per address family for reuse by tcp checks. */
#define HEALTH_POOL_MAX 1024
#define HEALTH_REASON   160
#define HEALTH_URL_MAX  (DISC_ADDRESS_MAX + HEALTH_PATH_MAX + 16)

/* Tags in the low bits of epoll_data.u64 (instances are malloc'ed, so
 * their addresses have the low bits clear). */
#define TAG_TCP    0u
#define TAG_CURL   1u
#define TAG_WAKEUP 2u
#define TAG_MASK   3u

/* A tcp check's socket: registered in the epoll set (data: the slot) from
 * its creation until it is closed; owner is the instance whose check it
 * carries, NULL while it waits in the pool. Checker thread only. */
struct tslot {
    int fd;
    int family;
    struct hinst *owner;
    struct tslot *next; /* pool */
};

enum inst_state {
    ST_IDLE = 0,
    ST_TCP,  /* a connect() is in flight on fd */
    ST_HTTP, /* easy is attached to the multi handle */
};

struct hinst {
    char id[HEALTH_ID_MAX + 1];
    struct health_check_def def;
    struct sockaddr_storage addr; /* tcp target, resolved at add time */
    socklen_t addrlen;
    char url[HEALTH_URL_MAX];             /* http */
    char unix_path[DISC_ADDRESS_MAX + 1]; /* http over a unix socket */
    /* Under health.mu: */
    bool removed;                   /* taken out by health_remove; in the remove inbox */
    struct hinst *hnext;            /* hash chain */
    struct hinst *add_next;         /* add inbox */
    struct hinst *rm_next;          /* remove inbox */
    _Atomic uint64_t last_pass_ms;  /* written by health_pass */
    _Atomic uint8_t ttl_health;     /* last ttl report: PASSING, WARNING or CRITICAL */
    _Atomic uint8_t cur_health;     /* the checker's judgement (written by the checker) */
    _Atomic uint8_t via;            /* tcp: how the last check was made (VIA_*) */
    bool poked;                     /* in the poke inbox (examine now) */
    struct hinst *poke_next;        /* poke inbox */
    char note[HEALTH_NOTE_MAX + 1]; /* ttl note, or the last failure's output */
    /* Checker thread only: */
    enum inst_state state;
    bool in_heap;
    struct tslot *slot;  /* ST_TCP */
    CURL *easy;          /* http: made at the first check, attached while ST_HTTP */
    uint64_t started_ms; /* start of the current / last check */
    uint32_t fails;
    size_t heap_idx;
    uint64_t critical_since_ms; /* when it turned critical (deregister_after_ms) */
    struct hinst *fail_next;    /* reported list */
    char reason[HEALTH_REASON + 48];
};

enum { VIA_NONE = 0, VIA_DIAG = 1, VIA_CONNECT = 2 };

struct curl_done {
    CURL *easy;
    CURLcode result;
};

/* A change of judgement, told to on_state after the loop (no lock held). */
struct hevent {
    struct hevent *next;
    uint8_t health;
    char id[HEALTH_ID_MAX + 1];
    char reason[HEALTH_REASON + 48];
};

struct heap_ent {
    uint64_t key; /* next start, or deadline while in flight (ms) */
    struct hinst *e;
};

struct health {
    pthread_t thread;
    health_fail_fn on_fail;
    void *arg;
    health_state_fn on_state; /* may be NULL */
    void *state_arg;
    int epfd;
    int wakefd;
    bool curl_inited;

    pthread_mutex_t mu; /* guards the table, count, inboxes and stop */
    bool stop;
    struct hinst **buckets;
    size_t nbuckets; /* power of two */
    uint32_t count;
    struct hinst *add_inbox, *rm_inbox, *poke_inbox;

    /* Checker thread only: */
    CURLM *multi;
    int64_t curl_due_ms;   /* absolute time curl wants a timeout call, -1 none */
    struct heap_ent *heap; /* min-heap on key */
    size_t heap_len, heap_cap;
    uint32_t inflight, max_inflight;
    struct tslot *pool[2]; /* idle sockets: [0] AF_INET, [1] AF_INET6 */
    uint32_t pool_len[2];
    struct hinst *unscheduled; /* added, but heap_push failed (ENOMEM) */
    struct hevent *events;     /* judgement changes of one loop, newest first */
    struct curl_done *done;    /* finished transfers of one loop */
    size_t done_cap;
    uint32_t rng;
    /* tcp checks of local targets (sockdiag.h) */
    _Atomic int tcp_local; /* enum health_tcp_local */
    struct sockdiag *sd;   /* opened at the first local check */
    bool sd_off;           /* sock_diag does not work here: connect from now on */
    uint64_t round;        /* run_due calls */
    uint64_t sd_round;     /* the round of the last refresh */
    bool sd_ok;            /* that refresh succeeded */
    uint64_t sd_until_ms;  /* the listing serves checks until then */
    _Atomic uint32_t sd_listeners, sd_cost_us, sd_age_ms; /* last listing (status) */
    _Atomic bool sd_listed;                               /* a listing was taken */
    char sd_err[HEALTH_REASON];                           /* why sd_off (under mu) */
    /* health_get_stats; written by the checker thread only */
    _Atomic uint64_t st_run[HEALTH_TTL + 1], st_failed[HEALTH_TTL + 1], st_reported;
    _Atomic uint64_t st_tcp_diag, st_tcp_connect;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- hash table ------------------------------------------------------------ */

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static struct hinst **table_slot(struct health *h, const char *id)
{
    struct hinst **pp = &h->buckets[hash_id(id) & (h->nbuckets - 1)];
    while (*pp && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

static int table_grow(struct health *h)
{
    size_t n = h->nbuckets * 2;
    struct hinst **b = calloc(n, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < h->nbuckets; i++) {
        struct hinst *e = h->buckets[i];
        while (e) {
            struct hinst *next = e->hnext;
            size_t j = hash_id(e->id) & (n - 1);
            e->hnext = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(h->buckets);
    h->buckets = b;
    h->nbuckets = n;
    return 0;
}

/* ---- heap ----------------------------------------------------------------------
 * Entries carry a copy of the key so sifting compares within the array and
 * does not touch (cache-miss on) every instance on the path. */

static void heap_set(struct health *h, size_t i, struct heap_ent ent)
{
    h->heap[i] = ent;
    ent.e->heap_idx = i;
}

static void heap_up(struct health *h, size_t i)
{
    struct heap_ent ent = h->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->heap[p].key <= ent.key)
            break;
        heap_set(h, i, h->heap[p]);
        i = p;
    }
    heap_set(h, i, ent);
}

static void heap_down(struct health *h, size_t i)
{
    struct heap_ent ent = h->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        uint64_t mk = ent.key;
        if (l < h->heap_len && h->heap[l].key < mk) {
            m = l;
            mk = h->heap[l].key;
        }
        if (l + 1 < h->heap_len && h->heap[l + 1].key < mk)
            m = l + 1;
        if (m == i)
            break;
        heap_set(h, i, h->heap[m]);
        i = m;
    }
    heap_set(h, i, ent);
}

static int heap_push(struct health *h, struct hinst *e, uint64_t key)
{
    if (h->heap_len == h->heap_cap) {
        size_t cap = h->heap_cap ? h->heap_cap * 2 : 64;
        struct heap_ent *n = realloc(h->heap, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        h->heap = n;
        h->heap_cap = cap;
    }
    heap_set(h, h->heap_len++, (struct heap_ent){key, e});
    e->in_heap = true;
    heap_up(h, e->heap_idx);
    return 0;
}

static void heap_remove(struct health *h, struct hinst *e)
{
    if (!e->in_heap)
        return;
    e->in_heap = false;
    size_t i = e->heap_idx;
    struct heap_ent last = h->heap[--h->heap_len];
    if (last.e != e) {
        heap_set(h, i, last);
        heap_up(h, i);
        heap_down(h, last.e->heap_idx);
    }
}

/* Change e's key and restore the heap order. */
static void heap_rekey(struct health *h, struct hinst *e, uint64_t key)
{
    uint64_t old = h->heap[e->heap_idx].key;
    h->heap[e->heap_idx].key = key;
    if (key < old)
        heap_up(h, e->heap_idx);
    else
        heap_down(h, e->heap_idx);
}

/* ---- validation ------------------------------------------------------------------ */

/* Resolve a tcp target: "host:port", "[v6]:port" or an absolute unix path. */
static int resolve_target(const char *target, struct sockaddr_storage *ss, socklen_t *len)
{
    if (target[0] == '/') {
        struct sockaddr_un *su = (struct sockaddr_un *)ss;
        size_t n = strlen(target);
        if (n >= sizeof(su->sun_path))
            return -EINVAL;
        memset(su, 0, sizeof(*su));
        su->sun_family = AF_UNIX;
        memcpy(su->sun_path, target, n + 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        return 0;
    }
    char host[DISC_ADDRESS_MAX + 1];
    const char *colon = strrchr(target, ':');
    if (!colon || colon == target || colon[1] == '\0')
        return -EINVAL;
    const char *hs = target, *he = colon;
    if (*hs == '[') {
        if (he[-1] != ']' || he - hs < 3)
            return -EINVAL;
        hs++;
        he--;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (*end || errno || port < 1 || port > 65535)
        return -EINVAL;

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res)
        return -EINVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    /* A v4-mapped IPv6 address is the IPv4 address it stands for. Connected
     * to as such: an IPv6 socket that once connected to a mapped address
     * keeps the kernel's IPv4 handling after its reset, so the pooled
     * socket could never again connect to a real IPv6 address (its SYNs go
     * nowhere and the check times out). */
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
        struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = s6->sin6_port};
        memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
        memset(ss, 0, sizeof(*ss));
        memcpy(ss, &s4, sizeof(s4));
        *len = sizeof(s4);
    }
    return 0;
}

static bool str_in(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

/* "host:port" usable as a URL authority: no characters that would change
 * the URL's meaning, and a numeric port. */
static bool http_authority_ok(const char *t)
{
    const char *colon = strrchr(t, ':');
    if (!colon || colon == t)
        return false;
    for (const char *p = t; p < colon; p++)
        if ((unsigned char)*p <= ' ' || strchr("/?#@\\\"<>", *p))
            return false;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    return colon[1] && !*end && !errno && port >= 1 && port <= 65535;
}

/* Why a definition cannot be checked, or NULL if it can. */
static const char *problem(const char *id, const struct health_check_def *d)
{
    if (!id || !d || !id[0] || !str_in(id, HEALTH_ID_MAX + 1))
        return "the instance id is empty or too long";
    if (d->kind != HEALTH_TCP && d->kind != HEALTH_HTTP && d->kind != HEALTH_TTL)
        return "only tcp, http and ttl checks run in the checker";
    if (d->interval_ms < HEALTH_INTERVAL_MIN || d->interval_ms > HEALTH_INTERVAL_MAX)
        return "the interval is outside 10 ms .. 24 h";
    if (d->misses < 1 || d->misses > HEALTH_MISSES_MAX)
        return "misses is outside 1 .. 1000";
    if (!str_in(d->target, sizeof(d->target)) || !str_in(d->path, sizeof(d->path)))
        return "the target or path is not terminated";
    if (d->kind == HEALTH_TTL)
        return d->ttl_ms >= 1 && d->ttl_ms <= HEALTH_INTERVAL_MAX
                   ? NULL
                   : "the ttl is outside 1 ms .. 24 h";
    if (d->timeout_ms < 1 || d->timeout_ms >= d->interval_ms)
        return "the timeout must be at least 1 ms and less than the interval";
    if (!d->target[0])
        return "a tcp or http check needs a target";
    if (d->kind == HEALTH_HTTP) {
        if (d->path[0] && d->path[0] != '/')
            return "the http path must start with '/'";
        for (const char *p = d->path; *p; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                return "the http path contains spaces or control characters";
        if (d->target[0] != '/' && !http_authority_ok(d->target))
            return "the http target is not host:port with a port in 1..65535 (or a unix path)";
        if (d->target[0] == '/' && strlen(d->target) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return "the unix socket path of the http target is too long";
    }
    return NULL;
}

static int validate(const char *id, const struct health_check_def *d)
{
    return problem(id, d) ? -EINVAL : 0;
}

const char *health_explain(const char *id, const struct health_check_def *def)
{
    const char *why = problem(id, def);
    if (why || def->kind != HEALTH_TCP)
        return why;
    struct sockaddr_storage ss;
    socklen_t len;
    return resolve_target(def->target, &ss, &len) < 0
               ? "the tcp target does not resolve to an address (host:port, [v6]:port or an "
                 "absolute unix path)"
               : NULL;
}

/* ---- checks --------------------------------------------------------------------------- */

static void wake(struct health *h)
{
    uint64_t one = 1;
    ssize_t r = write(h->wakefd, &one, sizeof(one));
    (void)r; /* EAGAIN: a wakeup is already pending */
}

static int pool_index(int family)
{
    return family == AF_INET ? 0 : family == AF_INET6 ? 1 : -1;
}

/* A socket of `family` for a tcp check: from the pool, or a new one added
 * to the epoll set. NULL and errno on failure. */
static struct tslot *slot_get(struct health *h, int family)
{
    int pi = pool_index(family);
    if (pi >= 0 && h->pool[pi]) {
        struct tslot *s = h->pool[pi];
        h->pool[pi] = s->next;
        h->pool_len[pi]--;
        return s;
    }
    struct tslot *s = malloc(sizeof(*s));
    if (!s)
        return NULL;
    s->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    s->family = family;
    s->owner = NULL;
    /* Edge-triggered: a pooled socket (state CLOSE) polls as EPOLLHUP, which
     * level-triggering would report on every wait. */
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLET,
                             .data.u64 = (uint64_t)(uintptr_t)s | TAG_TCP};
    if (s->fd < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
        int err = errno;
        if (s->fd >= 0)
            close(s->fd);
        free(s);
        errno = err;
        return NULL;
    }
    return s;
}

/* Close a slot's socket with a reset, not a FIN: thousands of checks a
 * second would otherwise pile up TIME_WAIT sockets and ephemeral ports.
 * close() also drops it from the epoll set (the fd is never dup'ed). */
static void slot_close(struct tslot *s)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(s->fd);
    free(s);
}

/* The check on s is over: reset its connection and pool it (or close it). */
static void slot_put(struct health *h, struct tslot *s)
{
    s->owner = NULL;
    int pi = pool_index(s->family);
    if (pi < 0 || h->pool_len[pi] >= HEALTH_POOL_MAX) {
        slot_close(s);
        return;
    }
    /* connect(AF_UNSPEC): an established connection is reset (RST, no
     * TIME_WAIT), one in progress abandoned; the socket is unconnected
     * again. The reset leaves ECONNRESET pending, which the next connect()
     * clears (tcp_connect_init), so that check sees only its own errors;
     * an event of the pooled socket in between has no owner and is
     * ignored. */
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    if (connect(s->fd, &unspec, sizeof(unspec)) < 0) {
        slot_close(s);
        return;
    }
    s->next = h->pool[pi];
    h->pool[pi] = s;
    h->pool_len[pi]++;
}

/* Close whatever the in-flight check holds. Checker thread only. */
static void release_check(struct health *h, struct hinst *e)
{
    if (e->state == ST_TCP) {
        slot_put(h, e->slot);
        e->slot = NULL;
        h->inflight--;
    } else if (e->state == ST_HTTP) {
        curl_multi_remove_handle(h->multi, e->easy); /* the handle is kept for the next check */
        h->inflight--;
    }
    e->state = ST_IDLE;
}

/* Free an instance whose check is not in flight. */
static void inst_free(struct hinst *e)
{
    if (e->easy)
        curl_easy_cleanup(e->easy);
    free(e);
}

/* A failed check: a miss, and the instance is reported when it has missed
 * `misses` in a row. Returns true when the caller must report it. */
static bool record_fail(struct health *h, struct hinst *e, const char *what)
{
    atomic_fetch_add_explicit(&h->st_run[e->def.kind], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->st_failed[e->def.kind], 1, memory_order_relaxed);
    e->fails++;
    snprintf(e->reason, sizeof(e->reason), "%s (%u consecutive miss%s)", what, e->fails,
             e->fails == 1 ? "" : "es");
    return e->fails >= e->def.misses;
}

/* A passed check: the miss streak ends. */
static void record_pass(struct health *h, struct hinst *e)
{
    atomic_fetch_add_explicit(&h->st_run[e->def.kind], 1, memory_order_relaxed);
    e->fails = 0;
}

/* Queue a change of judgement for on_state. Checker thread only. */
static void emit(struct health *h, struct hinst *e, uint8_t health, const char *reason)
{
    atomic_store(&e->cur_health, health);
    if (!h->on_state)
        return;
    struct hevent *ev = malloc(sizeof(*ev));
    if (!ev)
        return; /* out of memory: this transition is not told (the next one is) */
    ev->health = health;
    snprintf(ev->id, sizeof(ev->id), "%s", e->id);
    snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
    ev->next = h->events;
    h->events = ev;
}

/* A check result. ok: the instance is judged ok_health (passing, or warning
 * for a ttl "warn"). Not ok: a miss; after `misses` of them it is either to
 * be removed (returns true) or, with deregister_after_ms, marked critical
 * and removed only once it stayed critical that long. */
static bool judge(struct health *h, struct hinst *e, bool ok, uint8_t ok_health, const char *what,
                  uint64_t now)
{
    uint8_t cur = atomic_load(&e->cur_health);
    if (ok) {
        record_pass(h, e);
        if (cur != ok_health)
            emit(h, e, ok_health, what && *what ? what : "check passing");
        return false;
    }
    bool out = record_fail(h, e, what);
    if (e->def.kind != HEALTH_TTL) { /* a ttl note is the reporter's */
        pthread_mutex_lock(&h->mu);
        snprintf(e->note, sizeof(e->note), "%s", e->reason);
        pthread_mutex_unlock(&h->mu);
    }
    if (!out || !e->def.deregister_after_ms)
        return out;
    if (cur != DISC_HEALTH_CRITICAL) {
        e->critical_since_ms = now;
        emit(h, e, DISC_HEALTH_CRITICAL, e->reason);
        return false;
    }
    if (now - e->critical_since_ms < e->def.deregister_after_ms)
        return false;
    char last[HEALTH_REASON + 48];
    snprintf(last, sizeof(last), "%s", e->reason);
    snprintf(e->reason, sizeof(e->reason), "critical for %llu ms (deregister_after_ms %u): %.120s",
             (unsigned long long)(now - e->critical_since_ms), e->def.deregister_after_ms, last);
    return true;
}

/* Schedule the next check one interval after the start of the last one. */
static void reschedule(struct health *h, struct hinst *e, uint64_t now)
{
    uint64_t next = e->started_ms + e->def.interval_ms;
    heap_rekey(h, e, next > now ? next : now);
}

static size_t http_discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

static int start_tcp(struct health *h, struct hinst *e, char *err, size_t errlen)
{
    struct tslot *s = slot_get(h, e->addr.ss_family);
    if (!s)
        return -errno;
    if (connect(s->fd, (struct sockaddr *)&e->addr, e->addrlen) < 0 && errno != EINPROGRESS) {
        int rc = -errno;
        slot_put(h, s);
        snprintf(err, errlen, "tcp connect: %s", strerror(-rc));
        return rc == -EAGAIN ? -ECONNREFUSED : rc; /* unix sockets: backlog full */
    }
    /* Even an immediate success is reported through epoll (the socket's
     * edge-triggered registration sees the state change): one code path. */
    s->owner = e;
    e->slot = s;
    e->state = ST_TCP;
    return 0;
}

static int start_http(struct health *h, struct hinst *e)
{
    if (e->easy) { /* configured by an earlier check */
        if (curl_multi_add_handle(h->multi, e->easy) != CURLM_OK)
            return -ENOMEM;
        e->state = ST_HTTP;
        return 0;
    }
    CURL *c = curl_easy_init();
    if (!c)
        return -ENOMEM;
    curl_easy_setopt(c, CURLOPT_URL, e->url);
    if (e->unix_path[0])
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, e->unix_path);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)e->def.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)e->def.timeout_ms);
    /* A health check must see the service as it is now: no reused connection. */
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "discd-health/1");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_discard);
    curl_easy_setopt(c, CURLOPT_PRIVATE, (void *)e);
    if (curl_multi_add_handle(h->multi, c) != CURLM_OK) {
        curl_easy_cleanup(c);
        return -ENOMEM;
    }
    e->easy = c;
    e->state = ST_HTTP;
    return 0;
}

/* sock_diag does not work in this process: say why (health_tcp_local_state)
 * and connect from now on. */
static void diag_off(struct health *h, const char *what, int err)
{
    h->sd_off = true;
    pthread_mutex_lock(&h->mu);
    snprintf(h->sd_err, sizeof(h->sd_err), "%s: %s", what, strerror(err < 0 ? -err : err));
    pthread_mutex_unlock(&h->mu);
}

/* Judge a tcp check from the listener listing of this round, if its target
 * is local; SD_CONNECT when it must connect instead. */
static enum sockdiag_verdict diag_verdict(struct health *h, struct hinst *e, uint64_t now,
                                          char *why, size_t len)
{
    if (h->sd_off ||
        atomic_load_explicit(&h->tcp_local, memory_order_relaxed) != HEALTH_TCP_LOCAL_DIAG ||
        (e->addr.ss_family != AF_INET && e->addr.ss_family != AF_INET6))
        return SD_CONNECT;
    if (!h->sd) {
        h->sd = sockdiag_open();
        if (!h->sd) {
            if (sockdiag_err_permanent(errno))
                diag_off(h, "NETLINK_SOCK_DIAG socket", errno);
            return SD_CONNECT;
        }
        h->sd_round = h->round - 1;
    }
    /* One listing per round, shared by its checks, and by later rounds'
     * while it is young compared with its cost. */
    if (h->sd_round != h->round && !(h->sd_ok && now < h->sd_until_ms)) {
        h->sd_round = h->round;
        struct timespec c0, c1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
        int rc = sockdiag_refresh(h->sd, now);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
        uint64_t cost_us =
            (uint64_t)((c1.tv_sec - c0.tv_sec) * 1000000 + (c1.tv_nsec - c0.tv_nsec) / 1000);
        uint64_t age = cost_us * HEALTH_DIAG_REUSE / 1000u;
        if (age > HEALTH_DIAG_AGE_MAX)
            age = HEALTH_DIAG_AGE_MAX;
        h->sd_until_ms = now + age;
        h->sd_ok = rc == 0;
        atomic_store_explicit(&h->sd_listeners, (uint32_t)sockdiag_listeners(h->sd),
                              memory_order_relaxed);
        atomic_store_explicit(&h->sd_cost_us, (uint32_t)cost_us, memory_order_relaxed);
        atomic_store_explicit(&h->sd_age_ms, (uint32_t)age, memory_order_relaxed);
        atomic_store_explicit(&h->sd_listed, rc == 0, memory_order_relaxed);
        if (rc < 0 && sockdiag_err_permanent(rc)) {
            diag_off(h, "inet_diag dump of tcp listeners", rc);
            sockdiag_close(h->sd);
            h->sd = NULL;
        }
    }
    if (!h->sd_ok)
        return SD_CONNECT; /* this round only (a passing failure) */
    return sockdiag_judge(h->sd, (const struct sockaddr *)&e->addr, why, len);
}

/* Begin e's check (tcp/http) or examine it (ttl). Returns true if e must be
 * reported. */
static bool start_check(struct health *h, struct hinst *e, uint64_t now)
{
    e->started_ms = now;
    if (e->def.kind == HEALTH_TTL) {
        bool failed;
        uint8_t rep = atomic_load(&e->ttl_health);
        uint64_t last = atomic_load(&e->last_pass_ms); /* may be newer than now */
        char note[HEALTH_NOTE_MAX + 1];
        pthread_mutex_lock(&h->mu);
        snprintf(note, sizeof(note), "%s", e->note);
        pthread_mutex_unlock(&h->mu);
        if (rep == DISC_HEALTH_CRITICAL) {
            /* A reported failure is all the misses at once. */
            char what[HEALTH_NOTE_MAX + 48];
            snprintf(what, sizeof(what), "ttl: reported failing%s%s", note[0] ? ": " : "", note);
            if (e->fails + 1 < e->def.misses)
                e->fails = e->def.misses - 1;
            failed = judge(h, e, false, 0, what, now);
        } else if (last < now && now - last > e->def.ttl_ms) {
            failed = judge(h, e, false, 0, "ttl expired", now);
        } else {
            failed = judge(h, e, true, rep, note[0] ? note : "ttl pass", now);
        }
        heap_rekey(h, e, now + e->def.interval_ms);
        return failed;
    }
    char err[HEALTH_REASON] = "";
    if (e->def.kind == HEALTH_TCP) {
        enum sockdiag_verdict v = diag_verdict(h, e, now, err, sizeof(err));
        if (v != SD_CONNECT) {
            atomic_store_explicit(&e->via, VIA_DIAG, memory_order_relaxed);
            atomic_fetch_add_explicit(&h->st_tcp_diag, 1, memory_order_relaxed);
            bool failed = judge(h, e, v == SD_PASS, DISC_HEALTH_PASSING,
                                v == SD_PASS ? "tcp listener: ok (sock_diag)" : err, now);
            reschedule(h, e, now);
            return failed;
        }
        err[0] = '\0';
    }
    if (h->inflight >= h->max_inflight) {
        heap_rekey(h, e, now + HEALTH_RETRY_MS);
        return false;
    }
    if (e->def.kind == HEALTH_TCP) {
        atomic_store_explicit(&e->via, VIA_CONNECT, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->st_tcp_connect, 1, memory_order_relaxed);
    }
    int rc = e->def.kind == HEALTH_TCP ? start_tcp(h, e, err, sizeof(err)) : start_http(h, e);
    if (rc == -EMFILE || rc == -ENFILE || rc == -ENOBUFS || rc == -ENOMEM) {
        /* Our problem, not the instance's: try again shortly. */
        heap_rekey(h, e, now + HEALTH_RETRY_MS);
        return false;
    }
    if (rc < 0) {
        bool failed = judge(h, e, false, 0, err[0] ? err : strerror(-rc), now);
        reschedule(h, e, now);
        return failed;
    }
    h->inflight++;
    /* http: curl enforces the timeout; ours is a backstop a little later. */
    heap_rekey(h, e, now + e->def.timeout_ms + (e->def.kind == HEALTH_HTTP ? 200u : 0u));
    return false;
}

/* The in-flight check of e finished (ok or not). */
static bool finish_check(struct health *h, struct hinst *e, bool ok, const char *what, uint64_t now)
{
    release_check(h, e);
    bool failed = judge(h, e, ok, DISC_HEALTH_PASSING, what, now);
    reschedule(h, e, now);
    return failed;
}

/* ---- curl glue ------------------------------------------------------------------- */

static int curl_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    struct health *h = userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = {.data.u64 = ((uint64_t)(unsigned)s << 2) | TAG_CURL};
    if (what & CURL_POLL_IN)
        ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev.events |= EPOLLOUT;
    if (epoll_ctl(h->epfd, EPOLL_CTL_MOD, s, &ev) < 0 && errno == ENOENT)
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, s, &ev);
    return 0;
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct health *h = userp;
    h->curl_due_ms = timeout_ms < 0 ? -1 : (int64_t)(now_ms() + (uint64_t)timeout_ms);
    return 0;
}

/* ---- the checker thread ------------------------------------------------------------ */

/* e missed its last allowed check: stop checking it and queue it for the
 * report (the table is updated under the lock later, in collect_reports). */
static void fail_out(struct health *h, struct hinst *e, struct hinst **failed)
{
    release_check(h, e);
    heap_remove(h, e);
    atomic_fetch_add_explicit(&h->st_reported, 1, memory_order_relaxed);
    e->fail_next = *failed;
    *failed = e;
}

static void finish_http(struct health *h, CURL *easy, CURLcode result, struct hinst **failed,
                        uint64_t now)
{
    void *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    struct hinst *e = priv;
    if (!e || e->state != ST_HTTP || e->easy != easy)
        return;
    char what[HEALTH_REASON];
    bool ok = false;
    if (result != CURLE_OK) {
        snprintf(what, sizeof(what), "http GET: %s", curl_easy_strerror(result));
    } else {
        long code = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
        ok = code >= 200 && code < 300;
        snprintf(what, sizeof(what), "http GET: %s%ld", ok ? "" : "status ", code);
    }
    if (finish_check(h, e, ok, what, now))
        fail_out(h, e, failed);
}

static void handle_curl_done(struct health *h, struct hinst **failed, uint64_t now)
{
    /* Take every message off curl's list before removing any handle:
     * curl_multi_remove_handle walks the remaining messages, so removing
     * while reading is quadratic in the number of completions. */
    size_t n = 0;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        if (n == h->done_cap) {
            size_t cap = h->done_cap ? h->done_cap * 2 : 64;
            struct curl_done *d = realloc(h->done, cap * sizeof(*d));
            if (!d)
                break; /* the rest are finished by their deadline backstop */
            h->done = d;
            h->done_cap = cap;
        }
        h->done[n++] = (struct curl_done){m->easy_handle, m->data.result};
    }
    for (size_t i = 0; i < n; i++)
        finish_http(h, h->done[i].easy, h->done[i].result, failed, now);
}

static void handle_tcp_event(struct health *h, struct tslot *s, uint32_t events,
                             struct hinst **failed, uint64_t now)
{
    struct hinst *e = s->owner;
    if (!e || e->state != ST_TCP || e->slot != s)
        return; /* a pooled socket's own reset, or a stale event from this batch */
    int err = 0;
    if (events & (EPOLLERR | EPOLLHUP)) { /* why (also clears it) */
        socklen_t len = sizeof(err);
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
    } else if (!(events & EPOLLOUT)) {
        return; /* not decided yet */
    }
    char what[HEALTH_REASON] = "tcp connect: ok";
    if (err) /* formatted only when needed: this is the per-check hot path */
        snprintf(what, sizeof(what), "tcp connect: %s", strerror(err));
    if (finish_check(h, e, err == 0, what, now))
        fail_out(h, e, failed);
}

/* Start due checks and expire in-flight ones whose deadline passed. */
static void run_due(struct health *h, struct hinst **failed, uint64_t now)
{
    h->round++; /* a new sock_diag listing for the local tcp checks due now */
    /* Bounded: each instance is handled at most once per call. */
    for (size_t budget = h->heap_len; budget > 0 && h->heap_len > 0; budget--) {
        if (h->heap[0].key > now)
            break;
        struct hinst *e = h->heap[0].e;
        bool fail;
        if (e->state != ST_IDLE) {
            /* http: curl enforces CURLOPT_TIMEOUT_MS itself; this is the
             * backstop for a transfer it has not reported yet. */
            char what[HEALTH_REASON];
            snprintf(what, sizeof(what), "%s: timed out after %u ms",
                     e->state == ST_TCP ? "tcp connect" : "http GET", e->def.timeout_ms);
            fail = finish_check(h, e, false, what, now);
        } else {
            fail = start_check(h, e, now);
        }
        if (fail)
            fail_out(h, e, failed);
    }
}

/* Under the lock: take the inboxes, drop failed instances from the table
 * and return those to report (an instance health_remove took out meanwhile
 * is not reported: it is in the remove inbox and freed from there). */
static struct hinst *collect(struct health *h, struct hinst *failed, struct hinst **adds,
                             struct hinst **rms, struct hinst **pokes, bool *stop)
{
    struct hinst *report = NULL;
    pthread_mutex_lock(&h->mu);
    while (failed) {
        struct hinst *e = failed;
        failed = e->fail_next;
        if (e->removed)
            continue;
        struct hinst **pp = table_slot(h, e->id);
        if (*pp == e)
            *pp = e->hnext;
        h->count--;
        e->fail_next = report;
        report = e;
    }
    /* Keep only the adds that were not removed again already (those are
     * in the remove inbox, which frees them). */
    *adds = NULL;
    while (h->add_inbox) {
        struct hinst *e = h->add_inbox;
        h->add_inbox = e->add_next;
        if (!e->removed) {
            e->add_next = *adds;
            *adds = e;
        }
    }
    *rms = h->rm_inbox;
    h->add_inbox = h->rm_inbox = NULL;
    *pokes = NULL;
    while (h->poke_inbox) {
        struct hinst *e = h->poke_inbox;
        h->poke_inbox = e->poke_next;
        e->poked = false;
        if (!e->removed) {
            e->poke_next = *pokes;
            *pokes = e;
        }
    }
    *stop = h->stop;
    pthread_mutex_unlock(&h->mu);
    return report;
}

static void drain_inboxes(struct health *h, struct hinst *adds, struct hinst *rms, uint64_t now)
{
    /* Adds that found no heap room last time (out of memory) come first. */
    struct hinst *retry = h->unscheduled;
    h->unscheduled = NULL;
    while (retry || adds) {
        struct hinst *e;
        if (retry) {
            e = retry;
            retry = e->add_next;
        } else {
            e = adds;
            adds = e->add_next;
        }
        /* Spread first checks over one interval so a burst of registrations
         * does not turn into a burst of connects every interval. */
        h->rng = h->rng * 1103515245u + 12345u;
        e->started_ms = now;
        if (heap_push(h, e, now + (h->rng >> 8) % e->def.interval_ms) < 0) {
            e->add_next = h->unscheduled;
            h->unscheduled = e;
        }
    }
    while (rms) {
        struct hinst *e = rms;
        rms = e->rm_next;
        if (!e->in_heap) /* it may still wait in the unscheduled list */
            for (struct hinst **pp = &h->unscheduled; *pp; pp = &(*pp)->add_next)
                if (*pp == e) {
                    *pp = e->add_next;
                    break;
                }
        release_check(h, e);
        heap_remove(h, e);
        inst_free(e);
    }
}

/* How long epoll_wait may sleep: until the next heap key or curl timer. */
static int next_timeout(struct health *h, uint64_t now)
{
    int64_t due = -1;
    if (h->heap_len)
        due = (int64_t)h->heap[0].key;
    if (h->curl_due_ms >= 0 && (due < 0 || h->curl_due_ms < due))
        due = h->curl_due_ms;
    if (due < 0)
        return 1000;
    if ((uint64_t)due <= now)
        return 0;
    uint64_t d = (uint64_t)due - now;
    /* Sleep at least a tick so checks due close together run as one batch
     * (fewer wakeups); a check starts at most a tick late. */
    if (d < HEALTH_TICK_MS)
        d = HEALTH_TICK_MS;
    return d > 1000 ? 1000 : (int)d;
}

static void *checker_main(void *arg)
{
    struct health *h = arg;
    struct epoll_event evs[HEALTH_EVENTS];
    bool stop = false;
    int running;

    while (!stop) {
        int n = epoll_wait(h->epfd, evs, HEALTH_EVENTS, next_timeout(h, now_ms()));
        uint64_t now = now_ms();
        struct hinst *failed = NULL;
    more:
        for (int i = 0; i < n; i++) {
            uint64_t d = evs[i].data.u64;
            switch (d & TAG_MASK) {
            case TAG_WAKEUP: {
                uint64_t v;
                ssize_t r = read(h->wakefd, &v, sizeof(v));
                (void)r;
                break;
            }
            case TAG_TCP:
                handle_tcp_event(h, (struct tslot *)(uintptr_t)d, evs[i].events, &failed, now);
                break;
            case TAG_CURL: {
                int mask = 0;
                if (evs[i].events & EPOLLIN)
                    mask |= CURL_CSELECT_IN;
                if (evs[i].events & EPOLLOUT)
                    mask |= CURL_CSELECT_OUT;
                if (evs[i].events & (EPOLLERR | EPOLLHUP))
                    mask |= CURL_CSELECT_ERR;
                curl_multi_socket_action(h->multi, (curl_socket_t)(d >> 2), mask, &running);
                break;
            }
            }
        }
        /* A full batch: take every result that is ready before run_due
         * judges in-flight checks by their deadlines (after a stall, a
         * connect that succeeded must not be counted as timed out). */
        if (n == HEALTH_EVENTS) {
            n = epoll_wait(h->epfd, evs, HEALTH_EVENTS, 0);
            goto more;
        }
        if (h->curl_due_ms >= 0 && (uint64_t)h->curl_due_ms <= now) {
            h->curl_due_ms = -1;
            curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        handle_curl_done(h, &failed, now);
        run_due(h, &failed, now);

        struct hinst *adds, *rms, *pokes;
        struct hinst *report = collect(h, failed, &adds, &rms, &pokes, &stop);
        /* Examine poked ttl instances now (a pass, warn or fail was reported). */
        for (; pokes; pokes = pokes->poke_next)
            if (pokes->in_heap && pokes->state == ST_IDLE)
                heap_rekey(h, pokes, now);
        drain_inboxes(h, adds, rms, now);
        while (h->events) {
            struct hevent *ev = h->events;
            h->events = ev->next;
            h->on_state(ev->id, ev->health, ev->reason, h->state_arg);
            free(ev);
        }
        while (report) {
            struct hinst *e = report;
            report = e->fail_next;
            h->on_fail(e->id, e->reason, h->arg);
            inst_free(e);
        }
    }
    return NULL;
}

/* ---- public API ---------------------------------------------------------------------- */

/* After the checker thread has ended (or never started). */
static void health_free(struct health *h)
{
    if (h->buckets) {
        for (size_t i = 0; i < h->nbuckets; i++) {
            struct hinst *e = h->buckets[i];
            while (e) {
                struct hinst *next = e->hnext;
                release_check(h, e);
                inst_free(e);
                e = next;
            }
        }
    }
    while (h->rm_inbox) { /* removed ones are no longer in the table */
        struct hinst *e = h->rm_inbox;
        h->rm_inbox = e->rm_next;
        release_check(h, e);
        inst_free(e);
    }
    for (int pi = 0; pi < 2; pi++)
        while (h->pool[pi]) {
            struct tslot *s = h->pool[pi];
            h->pool[pi] = s->next;
            slot_close(s);
        }
    sockdiag_close(h->sd);
    if (h->multi)
        curl_multi_cleanup(h->multi);
    if (h->curl_inited)
        curl_global_cleanup();
    if (h->epfd >= 0)
        close(h->epfd);
    if (h->wakefd >= 0)
        close(h->wakefd);
    free(h->buckets);
    free(h->heap);
    free(h->done);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

struct health *health_start(health_fail_fn on_fail, void *arg)
{
    if (!on_fail) {
        errno = EINVAL;
        return NULL;
    }
    struct health *h = calloc(1, sizeof(*h));
    if (!h) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->on_fail = on_fail;
    h->arg = arg;
    h->epfd = h->wakefd = -1;
    h->curl_due_ms = -1;
    h->rng = (uint32_t)now_ms() ^ (uint32_t)(uintptr_t)h;

    /* Leave a good share of the descriptor limit to the rest of the daemon. */
    struct rlimit rl;
    uint64_t lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (uint64_t)rl.rlim_cur : 1024;
    h->max_inflight = lim > 256 ? (uint32_t)(lim / 2 > 65536 ? 65536 : lim / 2) : 64;

    int err = ENOMEM;
    h->nbuckets = 1024;
    h->buckets = calloc(h->nbuckets, sizeof(*h->buckets));
    if (!h->buckets)
        goto fail;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto fail;
    h->curl_inited = true;
    h->multi = curl_multi_init();
    if (!h->multi)
        goto fail;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);

    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    h->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->epfd < 0 || h->wakefd < 0) {
        err = errno;
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_WAKEUP};
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->wakefd, &ev) < 0) {
        err = errno;
        goto fail;
    }
    err = pthread_create(&h->thread, NULL, checker_main, h);
    if (err)
        goto fail;
    pthread_setname_np(h->thread, "disc-health"); /* for top, perf and bench_health */
    return h;
fail:
    health_free(h);
    errno = err;
    return NULL;
}

void health_stop(struct health *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_mutex_unlock(&h->mu);
    wake(h);
    pthread_join(h->thread, NULL);
    health_free(h);
}

static int add_check(struct health *h, const char *id, const struct health_check_def *def,
                     bool wake_now)
{
    if (!h)
        return -EINVAL;
    int rc = validate(id, def);
    if (rc < 0)
        return rc;
    struct hinst *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    strcpy(e->id, id);
    e->def = *def;
    if (def->kind == HEALTH_TCP) {
        /* May block on DNS for a host name: it runs in the caller's thread,
         * never in the checker's. */
        if (resolve_target(def->target, &e->addr, &e->addrlen) < 0) {
            inst_free(e);
            return -EINVAL;
        }
    } else if (def->kind == HEALTH_HTTP) {
        const char *path = def->path[0] ? def->path : "/";
        if (def->target[0] == '/') {
            if (strlen(def->target) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
                inst_free(e);
                return -EINVAL;
            }
            strcpy(e->unix_path, def->target);
            snprintf(e->url, sizeof(e->url), "http://localhost%s", path);
        } else {
            snprintf(e->url, sizeof(e->url), "http://%s%s", def->target, path);
        }
    }

    atomic_store(&e->last_pass_ms, now_ms());
    atomic_store(&e->ttl_health, DISC_HEALTH_PASSING);
    atomic_store(&e->cur_health, DISC_HEALTH_PASSING);

    pthread_mutex_lock(&h->mu);
    if (h->stop) {
        pthread_mutex_unlock(&h->mu);
        inst_free(e);
        return -EINVAL;
    }
    struct hinst **slot = table_slot(h, id);
    if (*slot) {
        pthread_mutex_unlock(&h->mu);
        inst_free(e);
        return -EEXIST;
    }
    *slot = e;
    h->count++;
    bool first = !h->add_inbox;
    e->add_next = h->add_inbox;
    h->add_inbox = e;
    if (h->count > h->nbuckets)
        (void)table_grow(h); /* a failed grow only lengthens chains */
    pthread_mutex_unlock(&h->mu);
    if (first && wake_now)
        wake(h);
    return 0;
}

int health_add(struct health *h, const char *id, const struct health_check_def *def)
{
    return add_check(h, id, def, true);
}

int health_add_quiet(struct health *h, const char *id, const struct health_check_def *def)
{
    return add_check(h, id, def, false);
}

void health_kick(struct health *h)
{
    if (h)
        wake(h);
}

int health_remove(struct health *h, const char *id)
{
    if (!h || !id)
        return -EINVAL;
    pthread_mutex_lock(&h->mu);
    struct hinst **slot = table_slot(h, id);
    struct hinst *e = *slot;
    if (!e) {
        pthread_mutex_unlock(&h->mu);
        return -ENOENT;
    }
    *slot = e->hnext;
    h->count--;
    /* Its descriptors and heap slot belong to the checker: it frees it. */
    e->removed = true;
    bool first = !h->rm_inbox;
    e->rm_next = h->rm_inbox;
    h->rm_inbox = e;
    pthread_mutex_unlock(&h->mu);
    if (first)
        wake(h);
    return 0;
}

void health_set_state_cb(struct health *h, health_state_fn on_state, void *arg)
{
    pthread_mutex_lock(&h->mu);
    h->on_state = on_state;
    h->state_arg = arg;
    pthread_mutex_unlock(&h->mu);
}

int health_ttl_report(struct health *h, const char *id, uint8_t health, const char *note)
{
    if (!h || !id ||
        (health != DISC_HEALTH_PASSING && health != DISC_HEALTH_WARNING &&
         health != DISC_HEALTH_CRITICAL))
        return -EINVAL;
    pthread_mutex_lock(&h->mu);
    struct hinst *e = *table_slot(h, id);
    int rc = 0;
    bool first = false;
    if (!e) {
        rc = -ENOENT;
    } else if (e->def.kind != HEALTH_TTL) {
        rc = -EINVAL;
    } else {
        if (health != DISC_HEALTH_CRITICAL)
            atomic_store(&e->last_pass_ms, now_ms());
        atomic_store(&e->ttl_health, health);
        snprintf(e->note, sizeof(e->note), "%s", note ? note : "");
        if (!e->poked) {
            e->poked = true;
            first = !h->poke_inbox;
            e->poke_next = h->poke_inbox;
            h->poke_inbox = e;
        }
    }
    pthread_mutex_unlock(&h->mu);
    if (first)
        wake(h);
    return rc;
}

int health_status(struct health *h, const char *id, uint8_t *health, char *note, size_t len)
{
    if (!h || !id || !health)
        return -EINVAL;
    pthread_mutex_lock(&h->mu);
    struct hinst *e = *table_slot(h, id);
    if (e) {
        *health = atomic_load(&e->cur_health);
        if (note && len)
            snprintf(note, len, "%s", e->note);
    }
    pthread_mutex_unlock(&h->mu);
    return e ? 0 : -ENOENT;
}

int health_pass(struct health *h, const char *id)
{
    if (!h || !id)
        return -EINVAL;
    pthread_mutex_lock(&h->mu);
    struct hinst *e = *table_slot(h, id);
    int rc = 0;
    if (!e) {
        rc = -ENOENT;
    } else if (e->def.kind != HEALTH_TTL) {
        rc = -EINVAL;
    } else {
        atomic_store(&e->last_pass_ms, now_ms());
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

uint32_t health_count(struct health *h)
{
    if (!h)
        return 0;
    pthread_mutex_lock(&h->mu);
    uint32_t n = h->count;
    pthread_mutex_unlock(&h->mu);
    return n;
}

void health_get_stats(struct health *h, struct health_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!h)
        return;
    for (int k = 0; k <= HEALTH_TTL; k++) {
        st->run[k] = atomic_load_explicit(&h->st_run[k], memory_order_relaxed);
        st->failed[k] = atomic_load_explicit(&h->st_failed[k], memory_order_relaxed);
    }
    st->reported = atomic_load_explicit(&h->st_reported, memory_order_relaxed);
    st->tcp_diag = atomic_load_explicit(&h->st_tcp_diag, memory_order_relaxed);
    st->tcp_connect = atomic_load_explicit(&h->st_tcp_connect, memory_order_relaxed);
}

void health_set_tcp_local(struct health *h, enum health_tcp_local mode)
{
    if (h)
        atomic_store_explicit(&h->tcp_local, (int)mode, memory_order_relaxed);
}

void health_tcp_local_state(struct health *h, char *buf, size_t len)
{
    if (!h || !len)
        return;
    if (atomic_load_explicit(&h->tcp_local, memory_order_relaxed) != HEALTH_TCP_LOCAL_DIAG) {
        snprintf(buf, len, "connect (check-tcp-local = connect)");
        return;
    }
    pthread_mutex_lock(&h->mu);
    if (h->sd_err[0])
        snprintf(buf, len, "connect (sock_diag unavailable: %s)", h->sd_err);
    else if (!atomic_load_explicit(&h->sd_listed, memory_order_relaxed))
        snprintf(buf, len, "sock_diag (no listing taken yet)");
    else
        snprintf(buf, len,
                 "sock_diag (last listing: %u listeners, %u us of CPU, serves checks for %u ms)",
                 atomic_load_explicit(&h->sd_listeners, memory_order_relaxed),
                 atomic_load_explicit(&h->sd_cost_us, memory_order_relaxed),
                 atomic_load_explicit(&h->sd_age_ms, memory_order_relaxed));
    pthread_mutex_unlock(&h->mu);
}

int health_tcp_via(struct health *h, const char *id, const char **via)
{
    if (!h || !id || !via)
        return -EINVAL;
    pthread_mutex_lock(&h->mu);
    struct hinst *e = *table_slot(h, id);
    if (e) {
        uint8_t v = atomic_load_explicit(&e->via, memory_order_relaxed);
        *via = v == VIA_DIAG ? "sock_diag" : v == VIA_CONNECT ? "connect" : "";
    }
    pthread_mutex_unlock(&h->mu);
    return e ? 0 : -ENOENT;
}
