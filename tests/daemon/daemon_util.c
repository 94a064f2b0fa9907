/* SPDX-License-Identifier: MIT */
/* daemon_util.c — see daemon_util.h. */
#include "daemon_util.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

int dt_slow(void)
{
    const char *s = getenv("DISC_SANITIZE");
    if (!s || !*s)
        return 1;
    return strstr(s, "thread") ? 6 : 3;
}

void dt_start(struct discd_proc *d, const char *tag, char *const extra[])
{
    cr_assert_eq(discd_proc_init(d, tag), 0, "discd_proc_init");
    int rc = discd_proc_start(d, extra, 10000 * dt_slow());
    if (rc != 0)
        proc_dump_log(&d->proc);
    cr_assert_eq(rc, 0, "discd did not start: %s", strerror(-rc));
}

static int log_has_sanitizer_report(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, "Sanitizer") != NULL || strstr(line, "runtime error:") != NULL;
    fclose(f);
    return found;
}

void dt_finish(struct discd_proc *d)
{
    if (!d->dir[0])
        return;
    int code = 0;
    if (proc_alive(&d->proc))
        code = discd_proc_stop(d, 10000 * dt_slow());
    int san = log_has_sanitizer_report(d->log);
    if (san || code != 0)
        proc_dump_log(&d->proc);
    discd_proc_cleanup(d);
    cr_assert_eq(code, 0, "discd did not shut down cleanly on SIGTERM (%d)", code);
    cr_assert_eq(san, 0, "sanitizer report in discd's log");
}

json_t *dt_call(struct discd_conn *c, const char *line)
{
    if (discd_conn_send(c, line) < 0)
        return NULL;
    char *reply = NULL;
    if (discd_conn_reply(c, &reply, 5000 * dt_slow(), 1) < 0)
        return NULL;
    json_t *j = json_loads(reply, 0, NULL);
    if (!j)
        fprintf(stderr, "unparsable reply: %s\n", reply);
    free(reply);
    return j;
}

json_t *dt_call1(const struct discd_proc *d, const char *line)
{
    struct discd_conn c;
    if (discd_conn_open(d, &c) < 0)
        return NULL;
    json_t *j = dt_call(&c, line);
    discd_conn_close(&c);
    return j;
}

json_t *dt_callf(const struct discd_proc *d, const char *fmt, ...)
{
    char line[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    return dt_call1(d, line);
}

void dt_register(struct discd_conn *c, const char *svc, const char *addr, const char *check,
                 char id[DISC_ID_LEN + 1])
{
    char line[4096];
    snprintf(line, sizeof(line),
             "{\"op\":\"register\",\"instance\":{\"service\":\"%s\",\"address\":\"%s\"}%s%s}", svc,
             addr, check ? ",\"check\":" : "", check ? check : "");
    json_t *r = dt_call(c, line);
    cr_assert(r, "no reply to %s", line);
    cr_assert(dt_ok(r), "register failed: %s", json_dumps(r, 0));
    const char *s = json_string_value(json_object_get(r, "id"));
    cr_assert(s && strlen(s) == DISC_ID_LEN);
    memcpy(id, s, DISC_ID_LEN + 1);
    json_decref(r);
}

void dt_pipeline(struct discd_conn *c, const char *buf, size_t len, int n, int seq_from)
{
    cr_assert_eq(discd_conn_send_raw(c, buf, len), 0);
    for (int i = 0; i < n; i++) {
        char *reply = NULL;
        cr_assert_gt(discd_conn_reply(c, &reply, 10000 * dt_slow(), 1), 0, "no reply to request %d",
                     i);
        char expect[48] = "";
        if (seq_from >= 0)
            snprintf(expect, sizeof(expect), "\"seq\":%d", seq_from + i);
        cr_assert(strstr(reply, "\"ok\":true") && strstr(reply, expect), "reply %d: %s", i, reply);
        free(reply);
    }
}

int dt_ok(json_t *reply)
{
    return reply && json_is_true(json_object_get(reply, "ok"));
}

const char *dt_err_code(json_t *reply)
{
    const char *s = json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
    return s ? s : "";
}

const char *dt_err_field(json_t *reply)
{
    const char *s = json_string_value(json_object_get(json_object_get(reply, "error"), "field"));
    return s ? s : "";
}

disc_handle *dt_open_reader(const struct discd_proc *d)
{
    disc_handle *h = NULL;
    int rc = disc_open(d->name, 0, &h);
    cr_assert_eq(rc, 0, "disc_open(%s): %s", d->name, disc_strerror(rc));
    return h;
}

disc_handle *dt_start_conn(struct discd_proc *d, const char *tag, char *const extra[],
                           struct discd_conn *c)
{
    dt_start(d, tag, extra);
    disc_handle *h = dt_open_reader(d);
    int rc = discd_conn_open(d, c);
    cr_assert_eq(rc, 0, "cannot connect to discd's socket: %s", strerror(-rc));
    return h;
}

int dt_wait_count(disc_handle *h, const char *service, int want, int timeout_ms)
{
    long long deadline = proc_now_ms() + (long long)timeout_ms * dt_slow();
    int n;
    for (;;) {
        n = disc_count(h, service);
        if (n == -ENOENT)
            n = 0;
        if (n == want || proc_now_ms() >= deadline)
            return n;
        proc_sleep_ms(1);
    }
}

static int cmp_by_id(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "id"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "id"));
    return strcmp(x ? x : "", y ? y : "");
}

char *dt_dump_canonical(const struct discd_proc *d)
{
    json_t *r = dt_call1(d, "{\"op\":\"dump\"}");
    cr_assert(dt_ok(r), "dump failed");
    json_t *arr = json_object_get(r, "instances");
    size_t n = json_array_size(arr);
    json_t **items = calloc(n ? n : 1, sizeof(*items));
    cr_assert(items);
    for (size_t i = 0; i < n; i++)
        items[i] = json_array_get(arr, i);
    qsort(items, n, sizeof(*items), cmp_by_id);
    json_t *sorted = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(sorted, items[i]);
    char *s = json_dumps(sorted, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(sorted);
    json_decref(r);
    free(items);
    cr_assert(s);
    return s;
}

long long dt_status_int(const struct discd_proc *d, const char *path_fmt, ...)
{
    char path[256], key[128];
    va_list ap;
    va_start(ap, path_fmt);
    vsnprintf(path, sizeof(path), path_fmt, ap);
    va_end(ap);
    json_t *r = dt_call1(d, "{\"op\":\"status\"}");
    cr_assert(dt_ok(r), "status failed");
    json_t *v = r;
    for (const char *p = path; v && *p;) {
        size_t n = strcspn(p, ".");
        cr_assert_lt(n, sizeof(key), "status path %s", path);
        memcpy(key, p, n);
        key[n] = '\0';
        v = json_is_array(v) ? json_array_get(v, strtoul(key, NULL, 10)) : json_object_get(v, key);
        p += n + (p[n] == '.');
    }
    cr_assert(json_is_integer(v), "status.%s missing", path);
    long long x = json_integer_value(v);
    json_decref(r);
    return x;
}

/* ---- churn ---- */

static void churn_log(int fd, const char *fmt, const char *id)
{
    char line[128];
    int n = snprintf(line, sizeof(line), fmt, id);
    if (write(fd, line, (size_t)n) != n)
        _exit(20);
}

/* The child: never returns. */
static void churn_child(const struct discd_proc *d, const char *svc, const char *log)
{
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    struct discd_conn c;
    if (fd < 0 || discd_conn_open(d, &c) < 0)
        _exit(21);
    char live[4096][DISC_ID_LEN + 1];
    int n_live = 0;
    unsigned seed = (unsigned)getpid();
    for (int k = 0;; k++) {
        char line[512], *reply = NULL;
        bool dereg = n_live > 0 && rand_r(&seed) % 3 == 0;
        int victim = dereg ? (int)(rand_r(&seed) % (unsigned)n_live) : -1;
        if (dereg) {
            churn_log(fd, "D %s\n", live[victim]);
            snprintf(line, sizeof(line), "{\"op\":\"deregister\",\"id\":\"%s\"}", live[victim]);
        } else {
            churn_log(fd, "R%s\n", "");
            snprintf(line, sizeof(line),
                     "{\"op\":\"register\",\"instance\":{\"service\":\"%s\",\"address\":"
                     "\"10.9.%d.%d:%d\"},\"check\":{\"type\":\"none\"}}",
                     svc, (k / 250) % 250, k % 250, 1000 + k % 60000);
        }
        if (discd_conn_send(&c, line) < 0 || discd_conn_reply(&c, &reply, 10000, 1) < 0)
            _exit(0); /* discd went away: the last logged step is in flight */
        json_t *r = json_loads(reply, 0, NULL);
        free(reply);
        if (!dt_ok(r))
            _exit(22);
        if (dereg) {
            churn_log(fd, "-%s\n", live[victim]);
            memcpy(live[victim], live[--n_live], sizeof(live[0]));
        } else {
            const char *id = json_string_value(json_object_get(r, "id"));
            if (!id || n_live == 4096)
                _exit(23);
            churn_log(fd, "+%s\n", id);
            snprintf(live[n_live++], sizeof(live[0]), "%s", id);
        }
        json_decref(r);
    }
}

void dt_churn_start(struct dt_churn *ch, const struct discd_proc *d, const char *svc)
{
    snprintf(ch->log, sizeof(ch->log), "%s/churn-%s.log", d->dir, svc);
    fflush(NULL);
    ch->pid = fork();
    cr_assert_geq(ch->pid, 0);
    if (ch->pid == 0)
        churn_child(d, svc, ch->log);
}

int dt_churn_wait(struct dt_churn *ch, int timeout_ms)
{
    long long deadline = proc_now_ms() + (long long)timeout_ms * dt_slow();
    int st = 0;
    while (waitpid(ch->pid, &st, WNOHANG) == 0) {
        if (proc_now_ms() > deadline) {
            kill(ch->pid, SIGKILL);
            waitpid(ch->pid, &st, 0);
            break;
        }
        proc_sleep_ms(5);
    }
    ch->pid = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "churn child failed (status %d)", st);
    FILE *f = fopen(ch->log, "r");
    cr_assert(f);
    int acked = 0;
    char line[128];
    while (fgets(line, sizeof(line), f))
        acked += line[0] == '+';
    fclose(f);
    return acked;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

int dt_churn_verify(struct dt_churn *ch, const struct discd_proc *d, const char *svc)
{
    /* Expected: acknowledged registrations minus acknowledged deregistrations. */
    enum { MAX = 1 << 14 };
    static char want[MAX][DISC_ID_LEN + 1], have[MAX][DISC_ID_LEN + 1], gone[MAX][DISC_ID_LEN + 1];
    int n_want = 0, n_have = 0, n_gone = 0;
    char pending_del[DISC_ID_LEN + 1] = "";
    bool pending_reg = false;
    FILE *f = fopen(ch->log, "r");
    cr_assert(f, "no churn log %s", ch->log);
    char line[128];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        pending_reg = line[0] == 'R';
        if (line[0] == 'D')
            snprintf(pending_del, sizeof(pending_del), "%.36s", line + 2);
        else
            pending_del[0] = '\0';
        if (line[0] == '+') {
            cr_assert_lt(n_want, MAX);
            snprintf(want[n_want++], DISC_ID_LEN + 1, "%.36s", line + 1);
        } else if (line[0] == '-') {
            cr_assert_lt(n_gone, MAX);
            snprintf(gone[n_gone++], DISC_ID_LEN + 1, "%.36s", line + 1);
            for (int i = 0; i < n_want; i++)
                if (strcmp(want[i], line + 1) == 0)
                    memcpy(want[i], want[--n_want], sizeof(want[0]));
        }
    }
    fclose(f);
    json_t *r = dt_call1(d, "{\"op\":\"dump\"}");
    cr_assert(dt_ok(r), "dump failed");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r, "instances"), i, v)
    {
        const char *s = json_string_value(json_object_get(v, "service"));
        const char *o = json_string_value(json_object_get(v, "origin"));
        if (!s || strcmp(s, svc) != 0 || !o || strcmp(o, "local") != 0)
            continue;
        cr_assert_lt(n_have, MAX);
        snprintf(have[n_have++], DISC_ID_LEN + 1, "%s",
                 json_string_value(json_object_get(v, "id")));
    }
    json_decref(r);
    qsort(want, (size_t)n_want, sizeof(want[0]), cmp_str);
    qsort(have, (size_t)n_have, sizeof(have[0]), cmp_str);
    /* Walk both sorted lists: the in-flight registration may add one unknown
     * id, the in-flight deregistration may have removed pending_del. */
    int a = 0, b = 0, unknown = 0;
    while (a < n_want || b < n_have) {
        int c = a >= n_want ? 1 : b >= n_have ? -1 : strcmp(want[a], have[b]);
        if (c == 0) {
            a++;
            b++;
        } else if (c < 0) {
            cr_assert_str_eq(want[a], pending_del,
                             "acknowledged registration %s lost by the restart", want[a]);
            a++;
        } else {
            for (int g = 0; g < n_gone; g++)
                cr_assert_str_neq(have[b], gone[g], "acknowledged deregistration of %s undone",
                                  have[b]);
            unknown++;
            cr_assert(pending_reg && unknown == 1,
                      "instance %s is there but was never acknowledged (or was deregistered "
                      "and came back)",
                      have[b]);
            b++;
        }
    }
    unlink(ch->log);
    return n_have;
}

int dt_run_as(const struct discd_proc *d, uid_t uid, const char *line, const char *code,
              char idout[DISC_ID_LEN + 1])
{
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(pfd[0]);
        if (setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
            _exit(10);
        struct discd_conn c;
        if (discd_conn_open(d, &c) < 0)
            _exit(11);
        if (discd_conn_send(&c, line) < 0)
            _exit(12);
        char *reply = NULL;
        if (discd_conn_reply(&c, &reply, 5000, 1) < 0)
            _exit(13);
        json_t *r = json_loads(reply, 0, NULL);
        if (!r)
            _exit(14);
        if (code ? strcmp(dt_err_code(r), code) != 0 : !dt_ok(r)) {
            fprintf(stderr, "unexpected reply as uid %u: %s\n", (unsigned)uid, reply);
            _exit(15);
        }
        const char *id = json_string_value(json_object_get(r, "id"));
        if (idout && id) {
            /* Keep no session: the registration uses check none. */
            if (write(pfd[1], id, DISC_ID_LEN) != DISC_ID_LEN)
                _exit(16);
        }
        _exit(0);
    }
    close(pfd[1]);
    if (idout) {
        ssize_t n = read(pfd[0], idout, DISC_ID_LEN);
        idout[n > 0 ? n : 0] = '\0';
    }
    close(pfd[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

int dt_log_has(const struct discd_proc *d, const char *needle)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return 0;
    char line[4096];
    int found = 0;
    while (fgets(line, sizeof(line), f))
        found += strstr(line, needle) != NULL;
    fclose(f);
    return found;
}
