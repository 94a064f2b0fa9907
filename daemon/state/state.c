/* SPDX-License-Identifier: MIT */
/* state.c — discd's persistent local registrations (see state.h). */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* Compact when the journal has this many more records than live ones. */
#define COMPACT_SLACK 4096u

struct state {
    pthread_mutex_t mu;
    int fd;          /* the journal, O_APPEND */
    int dfd;         /* its directory */
    char path[4096]; /* DIR/NAME.state */
    char tmp[4096];  /* DIR/NAME.state.tmp */
    char base[256];  /* NAME.state */
    json_t *live;    /* id -> the put record's line (json string) */
    char *zk_line;   /* the last zk record, or NULL */
    int64_t zk_session;
    char zk_passwd[16];
    size_t records; /* lines in the journal (written or pending) */
    char *pend;     /* records not written yet: one write(2) per sync */
    size_t pend_len, pend_cap;
    bool dirty;  /* appended since the last sync */
    bool failed; /* a write failed: report on every sync */
};

/* mkdir -p with mode for the missing components. */
static int mkdirs(const char *path, mode_t mode)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Owned by us and not writable by group/others. */
static int check_trust(const struct stat *st, const char *what, const char *path, char *err)
{
    if (st->st_uid != geteuid()) {
        snprintf(err, STATE_ERR_MAX,
                 "refusing state %s %.200s: owned by uid %u, not by discd's uid %u (another user "
                 "could inject registrations); fix with chown or choose --state-dir",
                 what, path, (unsigned)st->st_uid, (unsigned)geteuid());
        return -EPERM;
    }
    if (st->st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, STATE_ERR_MAX,
                 "refusing state %s %.300s: writable by group or others (mode %04o); fix with "
                 "chmod go-w",
                 what, path, (unsigned)(st->st_mode & 07777));
        return -EPERM;
    }
    return 0;
}

/* ---- records ---- */

/*
 * Journal lines are written by hand, not through a jansson tree: a put
 * record built with instance_to_json, trimmed, packed and dumped cost ~43 µs
 * from cold caches on the control thread right after the commit that a
 * reader on the same CPU waits behind (docs/DESIGN.md, "Publish policy"),
 * about two dozen allocations for one line. The writer below emits the very
 * bytes json_dumps(JSON_COMPACT) gives for that tree (same member order,
 * same escapes: \" \\ \b \f \n \r \t, other bytes below 0x20 as \u00XX with
 * upper-case hex, everything else as is, integers in decimal), so the loader
 * (jansson) reads it back unchanged; tests/daemon/test_state.c checks the
 * two byte for byte. The strings of an instance are valid UTF-8 (both
 * request parsers check it), which json_dumps would otherwise refuse.
 */
struct line {
    char *p;
    size_t len, cap;
    bool oom;
};

static void line_grow(struct line *l, size_t more)
{
    if (l->oom || l->len + more + 1 <= l->cap)
        return;
    size_t cap = l->cap ? l->cap : 512;
    while (cap < l->len + more + 1)
        cap *= 2;
    char *np = realloc(l->p, cap);
    if (!np) {
        l->oom = true;
        return;
    }
    l->p = np;
    l->cap = cap;
}

static void line_raw(struct line *l, const char *s, size_t n)
{
    line_grow(l, n);
    if (l->oom)
        return;
    memcpy(l->p + l->len, s, n);
    l->len += n;
    l->p[l->len] = '\0';
}

static void line_lit(struct line *l, const char *s)
{
    line_raw(l, s, strlen(s));
}

static void line_int(struct line *l, long long v)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%lld", v);
    line_raw(l, b, (size_t)n);
}

/* A JSON string, escaped as json_dumps escapes it. */
static void line_str(struct line *l, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    line_raw(l, "\"", 1);
    const char *run = s;
    for (;; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        line_raw(l, run, (size_t)(s - run));
        if (ch == '\0')
            break;
        char esc[6] = {'\\', 0};
        size_t n = 2;
        switch (ch) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            n = 6;
        }
        line_raw(l, esc, n);
        run = s + 1;
    }
    line_raw(l, "\"", 1);
}

/* ,"key": */
static void line_key(struct line *l, const char *key, bool first)
{
    if (!first)
        line_raw(l, ",", 1);
    line_str(l, key);
    line_raw(l, ":", 1);
}

/* The line's text (with its "\n"), or NULL when out of memory. */
static char *line_done(struct line *l, size_t *len)
{
    line_raw(l, "\n", 1);
    if (l->oom) {
        free(l->p);
        return NULL;
    }
    *len = l->len;
    return l->p;
}

char *state_put_line(const struct instance *inst, size_t *len)
{
    struct line l = {0};
    line_grow(&l, 384 + strlen(inst->service) + strlen(inst->address));
    line_lit(&l, "{\"put\":{\"id\":");
    line_str(&l, inst->id);
    line_lit(&l, ",\"uid\":");
    line_int(&l, (long long)inst->owner_uid);
    line_lit(&l, ",\"registered_at_ms\":");
    line_int(&l, (long long)inst->registered_at_ms);
    /* instance_to_json's members without id, registered_at_ms, health,
     * origin, owner_uid and check, in its order */
    line_lit(&l, ",\"instance\":{\"service\":");
    line_str(&l, inst->service);
    line_lit(&l, ",\"version\":");
    line_str(&l, inst->version);
    line_lit(&l, ",\"host\":");
    line_str(&l, inst->host);
    line_lit(&l, ",\"az\":");
    line_str(&l, inst->az);
    line_lit(&l, inst->addr_kind == DISC_ADDR_UNIX ? ",\"network\":\"unix\",\"address\":"
                                                   : ",\"network\":\"tcp\",\"address\":");
    line_str(&l, inst->address);
    line_lit(&l, ",\"weight\":");
    line_int(&l, (long long)inst->weight);
    line_lit(&l, ",\"tags\":{");
    for (uint16_t i = 0; i < inst->n_tags; i++) {
        line_key(&l, inst->tags[i].key, i == 0);
        line_str(&l, inst->tags[i].value);
    }
    line_lit(&l, "},\"endpoints\":[");
    for (uint16_t i = 0; i < inst->n_endpoints; i++) {
        const struct segw_endpoint *e = &inst->endpoints[i];
        line_lit(&l, i == 0 ? "{\"name\":" : ",{\"name\":");
        line_str(&l, e->name);
        line_lit(&l, ",\"request\":");
        line_str(&l, e->request_type);
        line_lit(&l, ",\"response\":");
        line_str(&l, e->response_type);
        line_lit(&l, ",\"mean_us\":");
        line_int(&l, (long long)e->mean_us);
        line_lit(&l, ",\"p95_us\":");
        line_int(&l, (long long)e->p95_us);
        line_lit(&l, "}");
    }
    const struct instance_check *c = &inst->check;
    line_lit(&l, "]},\"check\":{\"type\":");
    line_str(&l, instance_check_kind_name(c->kind));
    line_lit(&l, ",\"interval_ms\":");
    line_int(&l, (long long)c->interval_ms);
    line_lit(&l, ",\"timeout_ms\":");
    line_int(&l, (long long)c->timeout_ms);
    line_lit(&l, ",\"misses\":");
    line_int(&l, (long long)c->misses);
    if (c->kind == CHECK_TTL) {
        line_lit(&l, ",\"ttl_ms\":");
        line_int(&l, (long long)c->ttl_ms);
    }
    if (c->kind == CHECK_TCP || c->kind == CHECK_HTTP) {
        line_lit(&l, ",\"target\":");
        line_str(&l, c->target);
    }
    if (c->kind == CHECK_HTTP) {
        line_lit(&l, ",\"path\":");
        line_str(&l, c->path);
    }
    if (c->deregister_after_ms) {
        line_lit(&l, ",\"deregister_after_ms\":");
        line_int(&l, (long long)c->deregister_after_ms);
    }
    if (c->maintenance) {
        line_lit(&l, ",\"maintenance\":");
        line_str(&l, c->maint_reason);
    }
    line_lit(&l, "}}}");
    return line_done(&l, len);
}

static char *del_line(const char *id, size_t *len)
{
    struct line l = {0};
    line_lit(&l, "{\"del\":");
    line_str(&l, id);
    line_lit(&l, "}");
    return line_done(&l, len);
}

/* A record built as a jansson tree (the zk record: rare). */
static char *record_line(json_t *rec)
{
    char *s = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    return line;
}

/* Rebuild a local instance from a put record with the registration rules. */
static int instance_from_record(json_t *put, const struct instance_defaults *def,
                                struct instance **out, char *why, size_t whylen)
{
    const char *id = json_string_value(json_object_get(put, "id"));
    json_t *uid = json_object_get(put, "uid");
    json_t *at = json_object_get(put, "registered_at_ms");
    if (!id || instance_check_id(id) < 0 || !json_is_integer(uid) || json_integer_value(uid) < 0 ||
        json_integer_value(uid) > UINT32_MAX || !json_is_integer(at)) {
        snprintf(why, whylen, "bad id, uid or registered_at_ms");
        return -EINVAL;
    }
    struct instance_error ierr = {0};
    int rc = instance_from_request(json_object_get(put, "instance"), json_object_get(put, "check"),
                                   def, out, &ierr);
    if (rc < 0) {
        snprintf(why, whylen, "%s%s%s", ierr.message, ierr.field[0] ? " at " : "", ierr.field);
        return rc;
    }
    snprintf((*out)->id, sizeof((*out)->id), "%s", id);
    (*out)->owner_uid = (uint32_t)json_integer_value(uid);
    (*out)->registered_at_ms = json_integer_value(at);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int parse_zk(json_t *zk, int64_t *id, char passwd[16])
{
    const char *s = json_string_value(json_object_get(zk, "session"));
    const char *p = json_string_value(json_object_get(zk, "passwd"));
    if (!s || !p || strlen(p) != 32)
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 16);
    if (errno || *end || !*s)
        return -EINVAL;
    for (int i = 0; i < 16; i++) {
        int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        passwd[i] = (char)(hi << 4 | lo);
    }
    *id = (int64_t)v;
    return 0;
}

static char *zk_line(int64_t id, const char passwd[16])
{
    char sid[32], pw[33];
    snprintf(sid, sizeof(sid), "%" PRIx64, (uint64_t)id);
    for (int i = 0; i < 16; i++)
        snprintf(pw + 2 * i, 3, "%02x", (unsigned char)passwd[i]);
    return record_line(json_pack("{s:{s:s, s:s}}", "zk", "session", sid, "passwd", pw));
}

/* Replay the journal into st->live / st->zk_*. */
static int replay(struct state *st, FILE *f, char *err)
{
    (void)err;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned lineno = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[n - 1] != '\n') {
            log_warn("state %s:%u: torn last record ignored (discd stopped while writing it; it "
                     "was never acknowledged)",
                     st->path, lineno);
            break;
        }
        st->records++;
        json_error_t jerr;
        json_t *rec = json_loadb(line, (size_t)n - 1, JSON_REJECT_DUPLICATES, &jerr);
        json_t *put = json_object_get(rec, "put");
        json_t *del = json_object_get(rec, "del");
        json_t *zk = json_object_get(rec, "zk");
        const char *id = put ? json_string_value(json_object_get(put, "id")) : NULL;
        if (put && id && instance_check_id(id) == 0) {
            json_object_set_new(st->live, id, json_stringn(line, (size_t)n));
        } else if (json_is_string(del)) {
            json_object_del(st->live, json_string_value(del));
        } else if (zk && parse_zk(zk, &st->zk_session, st->zk_passwd) == 0) {
            free(st->zk_line);
            st->zk_line = strndup(line, (size_t)n);
        } else {
            log_warn("state %s:%u: unreadable record skipped%s%s", st->path, lineno,
                     rec ? "" : ": ", rec ? "" : jerr.text);
        }
        json_decref(rec);
    }
    free(line);
    return 0;
}

static int write_all(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, s, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        s += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Queue a record; state_sync writes the queue with one write(2). */
static int append_locked(struct state *st, const char *line, size_t len)
{
    if (st->pend_len + len > st->pend_cap) {
        size_t cap = st->pend_cap ? st->pend_cap : 65536;
        while (cap < st->pend_len + len)
            cap *= 2;
        char *nb = realloc(st->pend, cap);
        if (!nb)
            return -ENOMEM;
        st->pend = nb;
        st->pend_cap = cap;
    }
    memcpy(st->pend + st->pend_len, line, len);
    st->pend_len += len;
    st->records++;
    st->dirty = true;
    return 0;
}

/* Write the queued records and make them durable. */
static int flush_locked(struct state *st)
{
    if (!st->dirty)
        return 0;
    int rc = write_all(st->fd, st->pend, st->pend_len);
    if (rc == 0 && fdatasync(st->fd) < 0)
        rc = -errno;
    if (rc < 0) {
        if (!st->failed)
            log_error("state %s: cannot write: %s; registrations may not survive a restart",
                      st->path, strerror(-rc));
        st->failed = true;
    } else if (st->failed) {
        log_info("state %s: writing again", st->path);
        st->failed = false;
    }
    st->pend_len = 0;
    if (st->pend_cap > (1u << 20)) { /* give back a burst's buffer */
        free(st->pend);
        st->pend = NULL;
        st->pend_cap = 0;
    }
    st->dirty = false;
    return rc;
}

static int compact_locked(struct state *st)
{
    int fd = open(st->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    size_t n = 0;
    if (st->zk_line) {
        rc = write_all(fd, st->zk_line, strlen(st->zk_line));
        n++;
    }
    const char *k;
    json_t *v;
    json_object_foreach(st->live, k, v)
    {
        if (rc == 0)
            rc = write_all(fd, json_string_value(v), json_string_length(v));
        n++;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (rc == 0 && rename(st->tmp, st->path) < 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        unlink(st->tmp);
        return rc;
    }
    if (fsync(st->dfd) < 0)
        rc = -errno;
    /* Continue appending to the new file. */
    close(st->fd);
    st->fd = fd;
    if (lseek(fd, 0, SEEK_END) < 0 || fcntl(fd, F_SETFL, O_APPEND) < 0)
        rc = -errno;
    st->records = n;
    st->pend_len = 0; /* the live set written above includes them */
    st->dirty = false;
    return rc;
}

/* ---- public ---- */

int state_open(const char *dir, const char *name, const struct instance_defaults *def,
               struct state **out, struct state_loaded *loaded, char *err)
{
    memset(loaded, 0, sizeof(*loaded));
    *out = NULL;
    int rc = mkdirs(dir, 0700);
    if (rc < 0) {
        snprintf(err, STATE_ERR_MAX, "cannot create the state directory %.400s: %s", dir,
                 strerror(-rc));
        return rc;
    }
    struct state *st = calloc(1, sizeof(*st));
    if (!st || !(st->live = json_object())) {
        free(st);
        snprintf(err, STATE_ERR_MAX, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&st->mu, NULL);
    st->fd = st->dfd = -1;
    snprintf(st->base, sizeof(st->base), "%.200s.state", name);
    int n1 = snprintf(st->path, sizeof(st->path), "%s/%s", dir, st->base);
    int n2 = snprintf(st->tmp, sizeof(st->tmp), "%s/%s.tmp", dir, st->base);
    if (n1 < 0 || n2 < 0 || (size_t)n2 >= sizeof(st->tmp)) {
        snprintf(err, STATE_ERR_MAX, "state directory path %.400s is too long", dir);
        rc = -ENAMETOOLONG;
        goto fail;
    }
    st->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat sb;
    if (st->dfd < 0 || fstat(st->dfd, &sb) < 0) {
        rc = -errno;
        snprintf(err, STATE_ERR_MAX, "state directory %.400s: %s", dir, strerror(-rc));
        goto fail;
    }
    if ((rc = check_trust(&sb, "directory", dir, err)) < 0)
        goto fail;
    st->fd = openat(st->dfd, st->base, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (st->fd < 0 || fstat(st->fd, &sb) < 0) {
        rc = -errno;
        snprintf(err, STATE_ERR_MAX, "state file %.400s: %s", st->path,
                 rc == -ELOOP ? "is a symbolic link" : strerror(-rc));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, STATE_ERR_MAX, "state file %.400s is not a regular file", st->path);
        rc = -EINVAL;
        goto fail;
    }
    if ((rc = check_trust(&sb, "file", st->path, err)) < 0)
        goto fail;
    int rfd = dup(st->fd);
    FILE *f = rfd >= 0 ? fdopen(rfd, "r") : NULL;
    if (!f) {
        rc = -errno;
        if (rfd >= 0)
            close(rfd);
        snprintf(err, STATE_ERR_MAX, "state file %.400s: %s", st->path, strerror(-rc));
        goto fail;
    }
    rewind(f);
    rc = replay(st, f, err);
    fclose(f);
    if (rc < 0)
        goto fail;
    /* Rebuild the instances with the registration rules. */
    size_t cnt = json_object_size(st->live);
    loaded->insts = calloc(cnt + 1, sizeof(*loaded->insts));
    if (!loaded->insts) {
        snprintf(err, STATE_ERR_MAX, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(st->live, tmp, k, v)
    {
        json_t *rec = json_loadb(json_string_value(v), json_string_length(v), 0, NULL);
        char why[512] = "not JSON";
        struct instance *inst = NULL;
        if (!rec ||
            instance_from_record(json_object_get(rec, "put"), def, &inst, why, sizeof(why)) < 0) {
            log_warn("state %s: instance %s not restored: %s", st->path, k, why);
            loaded->skipped++;
            json_object_del(st->live, k);
        } else {
            loaded->insts[loaded->n++] = inst;
        }
        json_decref(rec);
    }
    if (st->zk_line && st->zk_session != 0) { /* 0: closed by a clean stop */
        loaded->have_zk = true;
        loaded->zk_session = st->zk_session;
        memcpy(loaded->zk_passwd, st->zk_passwd, sizeof(loaded->zk_passwd));
    }
    *out = st;
    return 0;
fail:
    state_loaded_free(loaded);
    state_close(st);
    return rc;
}

void state_loaded_free(struct state_loaded *loaded)
{
    for (size_t i = 0; i < loaded->n; i++)
        instance_unref(loaded->insts[i]);
    free(loaded->insts);
    memset(loaded, 0, sizeof(*loaded));
}

int state_put(struct state *st, const struct instance *inst)
{
    size_t len;
    char *line = state_put_line(inst, &len);
    if (!line)
        return -ENOMEM;
    pthread_mutex_lock(&st->mu);
    int rc = append_locked(st, line, len);
    /* (the line is ours and valid UTF-8: no second scan) */
    if (rc == 0 && json_object_set_new(st->live, inst->id, json_stringn_nocheck(line, len)) < 0)
        rc = -ENOMEM;
    pthread_mutex_unlock(&st->mu);
    free(line);
    return rc;
}

int state_del(struct state *st, const char *id)
{
    size_t len;
    char *line = del_line(id, &len);
    if (!line)
        return -ENOMEM;
    pthread_mutex_lock(&st->mu);
    int rc = 0;
    if (json_object_get(st->live, id)) {
        rc = append_locked(st, line, len);
        json_object_del(st->live, id);
    }
    pthread_mutex_unlock(&st->mu);
    free(line);
    return rc;
}

int state_set_zk_session(struct state *st, int64_t id, const char passwd[16])
{
    pthread_mutex_lock(&st->mu);
    int rc = 0;
    if (!st->zk_line || st->zk_session != id || memcmp(st->zk_passwd, passwd, 16) != 0) {
        char *line = zk_line(id, passwd);
        rc = line ? append_locked(st, line, strlen(line)) : -ENOMEM;
        if (rc == 0) {
            free(st->zk_line);
            st->zk_line = line;
            st->zk_session = id;
            memcpy(st->zk_passwd, passwd, 16);
        } else {
            free(line);
        }
    }
    pthread_mutex_unlock(&st->mu);
    return rc == 0 ? state_sync(st) : rc;
}

int state_sync(struct state *st)
{
    if (!st)
        return 0;
    pthread_mutex_lock(&st->mu);
    int rc = flush_locked(st);
    if (rc == 0 && st->records > 2 * json_object_size(st->live) + COMPACT_SLACK) {
        rc = compact_locked(st);
        if (rc < 0)
            log_error("state %s: cannot compact: %s", st->path, strerror(-rc));
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int state_compact(struct state *st)
{
    pthread_mutex_lock(&st->mu);
    int rc = compact_locked(st);
    pthread_mutex_unlock(&st->mu);
    if (rc < 0)
        log_error("state %s: cannot compact: %s", st->path, strerror(-rc));
    return rc;
}

static void on_added(struct instance *inst, void *arg)
{
    if (!inst->from_file)
        state_put(arg, inst);
}

static void on_removed(struct instance *inst, const char *reason, void *arg)
{
    (void)reason;
    if (!inst->from_file)
        state_del(arg, inst->id);
}

int state_attach(struct state *st, struct registry *reg)
{
    struct registry_listener l = {.local_added = on_added,
                                  .local_removed = on_removed,
                                  .local_replaced = on_added, /* e.g. maintenance changed */
                                  .arg = st};
    return registry_add_listener(reg, &l);
}

const char *state_path(const struct state *st)
{
    return st->path;
}

size_t state_count(struct state *st)
{
    pthread_mutex_lock(&st->mu);
    size_t n = json_object_size(st->live);
    pthread_mutex_unlock(&st->mu);
    return n;
}

void state_close(struct state *st)
{
    if (!st)
        return;
    if (st->fd >= 0) {
        flush_locked(st);
        close(st->fd);
    }
    free(st->pend);
    if (st->dfd >= 0)
        close(st->dfd);
    json_decref(st->live);
    free(st->zk_line);
    pthread_mutex_destroy(&st->mu);
    free(st);
}
