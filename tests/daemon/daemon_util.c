/* daemon_util.c — see daemon_util.h. */
#include "daemon_util.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

long long dt_status_int(const struct discd_proc *d, const char *key)
{
    json_t *r = dt_call1(d, "{\"op\":\"status\"}");
    cr_assert(dt_ok(r), "status failed");
    json_t *v = json_object_get(r, key);
    cr_assert(json_is_integer(v), "status.%s missing", key);
    long long x = json_integer_value(v);
    json_decref(r);
    return x;
}
