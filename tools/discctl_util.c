/* SPDX-License-Identifier: MIT */
/*
 * discctl_util.c — registry access, error mapping and output helpers shared
 * by discctl's subcommands.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "discctl.h"

/* "discctl CMD: " + the message + newline on stderr. */
static void ctl_verr(const struct ctl *ctl, const char *fmt, va_list ap)
{
    fprintf(stderr, "discctl%s%s: ", ctl && ctl->cmd ? " " : "", ctl && ctl->cmd ? ctl->cmd : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void ctl_err(const struct ctl *ctl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctl_verr(ctl, fmt, ap);
    va_end(ap);
}

int ctl_usage_error(const struct ctl *ctl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctl_verr(ctl, fmt, ap);
    va_end(ap);
    if (ctl && ctl->cmd)
        fprintf(stderr, "Try 'discctl %s --help'.\n", ctl->cmd);
    else
        fprintf(stderr, "Try 'discctl --help'.\n");
    return EXIT_USAGE;
}

int ctl_opt(int argc, char **argv, int *i, const char *opt, const char **val)
{
    size_t ol = strlen(opt);
    if (strncmp(argv[*i], opt, ol) != 0)
        return 0;
    if (argv[*i][ol] == '=') {
        *val = argv[*i] + ol + 1;
        return 1;
    }
    if (argv[*i][ol] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

int ctl_no_operands(const struct ctl *ctl, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            continue;
        if (argv[i][0] == '-' && argv[i][1])
            return ctl_usage_error(ctl, "unknown option '%s'", argv[i]);
        return ctl_usage_error(ctl, "unexpected argument '%s' (discctl %s takes none)", argv[i],
                               ctl->cmd);
    }
    return 0;
}

int ctl_parse_u32(const char *s, unsigned long min, unsigned long max, uint32_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

int ctl_exit_code(int rc)
{
    switch (-rc) {
    case 0:
        return EXIT_OK;
    case ENOENT:
        return EXIT_NOTFOUND;
    case ECONNREFUSED:
    case ENOTCONN:
    case ETIMEDOUT:
    case EPROTONOSUPPORT:
        return EXIT_UNAVAILABLE;
    default:
        return EXIT_ERR;
    }
}

int ctl_open(const struct ctl *ctl, disc_handle **h)
{
    char why[512] = "";
    struct disc_open_opts o = {.name = ctl->name, .err = why, .errlen = sizeof(why)};
    int rc = disc_open_ex(&o, h);
    if (rc == 0)
        return 0;
    const char *name = ctl->name ? ctl->name : getenv(DISC_NAME_ENV);
    if (!name || !*name)
        name = DISC_DEFAULT_NAME;
    if (rc == -ENOENT) {
        ctl_err(ctl, "no registry '%s' (%s: is discd running?)", name, why[0] ? why : "no segment");
        return EXIT_UNAVAILABLE;
    }
    if (rc == -EPERM) {
        ctl_err(ctl, "registry '%s' refused: %s", name, why[0] ? why : disc_strerror(rc));
        return EXIT_UNAVAILABLE;
    }
    ctl_err(ctl, "cannot open registry '%s': %s", name, why[0] ? why : disc_strerror(rc));
    return rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -EACCES ? EXIT_UNAVAILABLE : EXIT_ERR;
}

int ctl_connect(const struct ctl *ctl, disc_client **cl, bool quiet)
{
    char def[256];
    const char *path = ctl->socket;
    if (!path) {
        int rc = disc_client_default_socket(ctl->name, def, sizeof(def));
        if (rc < 0) {
            if (!quiet)
                ctl_err(ctl, "no default socket path: %s", disc_client_strerror(rc));
            return EXIT_USAGE;
        }
        path = def;
    }
    int rc = disc_client_connect(path, DISC_CLIENT_MANUAL, cl);
    if (rc == 0)
        return 0;
    if (!quiet)
        ctl_err(ctl, "cannot connect to discd at %s: %s", path, disc_client_strerror(rc));
    return rc == -ENAMETOOLONG || rc == -EINVAL ? EXIT_USAGE : EXIT_UNAVAILABLE;
}

int ctl_view_all(disc_handle *h, const struct disc_filter *f, ctl_view_fn fn, void **list,
                 void **buf)
{
    size_t len = 64 * 1024;
    *buf = NULL;
    for (int attempt = 0; attempt < 16; attempt++) {
        void *b = malloc(len);
        if (!b)
            return -ENOMEM;
        size_t needed = 0;
        int n = fn(h, f, b, len, list, &needed);
        if (n >= 0) {
            *buf = b;
            return n;
        }
        free(b);
        if (n != -ENOBUFS && n != -EAGAIN)
            return n;
        if (n == -ENOBUFS)
            len = needed > len ? needed + needed / 4 : len * 2; /* it may grow meanwhile */
    }
    return -EAGAIN;
}

static int call_lookup(disc_handle *h, const struct disc_filter *f, void *buf, size_t len,
                       void **list, size_t *needed)
{
    return disc_lookup_filtered(h, f, buf, len, (struct disc_instance **)list, needed);
}

int ctl_lookup_all(disc_handle *h, const struct disc_filter *f, struct disc_instance **list,
                   void **buf)
{
    return ctl_view_all(h, f, call_lookup, (void **)list, buf);
}

const char *ctl_health_name(unsigned health)
{
    switch (health) {
    case DISC_HEALTH_PASSING:
        return "passing";
    case DISC_HEALTH_WARNING:
        return "warning";
    case DISC_HEALTH_CRITICAL:
        return "critical";
    case DISC_HEALTH_MAINTENANCE:
        return "maintenance";
    default:
        return "unknown";
    }
}

const char *ctl_origin_name(unsigned origin)
{
    switch (origin) {
    case DISC_ORIGIN_LOCAL:
        return "local";
    case DISC_ORIGIN_REMOTE:
        return "remote";
    case DISC_ORIGIN_CACHE:
        return "cache";
    default:
        return "unknown";
    }
}

int ctl_parse_health(const char *s, unsigned *mask)
{
    static const struct {
        const char *name;
        unsigned mask;
    } names[] = {
        {"passing", DISC_HEALTH_BIT(DISC_HEALTH_PASSING)},
        {"warning", DISC_HEALTH_BIT(DISC_HEALTH_WARNING)},
        {"critical", DISC_HEALTH_BIT(DISC_HEALTH_CRITICAL)},
        {"unknown", DISC_HEALTH_BIT(DISC_HEALTH_UNKNOWN)},
        {"maintenance", DISC_HEALTH_BIT(DISC_HEALTH_MAINTENANCE)},
        {"not-critical", DISC_HEALTH_NOT_CRITICAL},
        {"any", DISC_HEALTH_MASK_ALL},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0) {
            *mask = names[i].mask;
            return 0;
        }
    return -EINVAL;
}

json_t *ctl_instance_json(const struct disc_instance *in)
{
    json_t *tags = json_object();
    json_t *eps = json_array();
    for (unsigned i = 0; tags && i < in->n_tags; i++) {
        const char *k, *v;
        if (disc_instance_tag(in, i, &k, &v) == 0)
            json_object_set_new(tags, k, json_string(v));
    }
    for (unsigned i = 0; eps && i < in->n_endpoints; i++) {
        struct disc_endpoint ep;
        if (disc_instance_endpoint(in, i, &ep) < 0)
            continue;
        json_t *e = json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", ep.name, "request",
                              ep.request_type ? ep.request_type : "", "response",
                              ep.response_type ? ep.response_type : "", "mean_us",
                              (json_int_t)ep.mean_us, "p95_us", (json_int_t)ep.p95_us);
        if (e)
            json_array_append_new(eps, e);
    }
    if (!tags || !eps) {
        json_decref(tags);
        json_decref(eps);
        return NULL;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:I, s:s, s:s}", "id",
                          in->id, "service", in->service, "version", in->version, "host", in->host,
                          "az", in->az, "address", in->address, "network",
                          in->addr_kind == DISC_ADDR_UNIX ? "unix" : "tcp", "weight",
                          (json_int_t)in->weight, "tags", tags, "endpoints", eps,
                          "registered_at_ms", (json_int_t)in->registered_at_ms, "health",
                          ctl_health_name(in->health), "origin", ctl_origin_name(in->origin));
    if (o)
        json_object_set_new(o, "owner_uid",
                            in->owner_uid == DISC_OWNER_UNKNOWN ? json_null()
                                                                : json_integer(in->owner_uid));
    return o;
}

void ctl_print_json(json_t *j)
{
    if (!j) {
        fprintf(stderr, "discctl: out of memory building JSON\n");
        return;
    }
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    json_decref(j);
}

void ctl_table_init(struct ctl_table *t, size_t ncols, const char *const *header)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    ctl_table_add(t, header);
}

void ctl_table_add(struct ctl_table *t, const char *const *row)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));
        if (!c)
            return; /* the row is lost; the table stays consistent */
        t->cells = c;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = strdup(row[i] ? row[i] : "");
    t->nrows++;
}

void ctl_table_print(struct ctl_table *t)
{
    size_t width[32] = {0};
    size_t nc = t->ncols < 32 ? t->ncols : 32;
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < nc; c++) {
            const char *s = t->cells[r * t->ncols + c];
            size_t l = s ? strlen(s) : 0;
            if (l > width[c])
                width[c] = l;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < nc; c++) {
            const char *s = t->cells[r * t->ncols + c];
            if (c + 1 == nc)
                printf("%s\n", s ? s : "");
            else
                printf("%-*s  ", (int)width[c], s ? s : "");
        }
    }
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

long long ctl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ctl_age(long long then_ms, char *buf, size_t len)
{
    long long s = (ctl_now_ms() - then_ms) / 1000;
    if (then_ms <= 0)
        snprintf(buf, len, "-");
    else if (s < 0)
        snprintf(buf, len, "0s");
    else if (s < 120)
        snprintf(buf, len, "%llds", s);
    else if (s < 7200)
        snprintf(buf, len, "%lldm", s / 60);
    else if (s < 172800)
        snprintf(buf, len, "%lldh", s / 3600);
    else
        snprintf(buf, len, "%lldd", s / 86400);
}

/* See discctl.h. */
int ctl_call(const struct ctl *ctl, json_t *req, const char *what, json_t **resp)
{
    *resp = NULL;
    char *line = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!line) {
        ctl_err(ctl, "out of memory");
        return EXIT_ERR;
    }
    disc_client *cl;
    int ec = ctl_connect(ctl, &cl, false);
    if (ec) {
        free(line);
        return ec;
    }
    char *out = NULL;
    int rc = disc_client_request(cl, line, &out);
    free(line);
    disc_client_close(cl);
    if (rc < 0) {
        ctl_err(ctl, "%s: %s", what, disc_client_strerror(rc));
        return EXIT_UNAVAILABLE;
    }
    json_t *j = json_loads(out, 0, NULL);
    free(out);
    if (!j) {
        ctl_err(ctl, "%s: unreadable answer from discd", what);
        return EXIT_ERR;
    }
    if (json_is_true(json_object_get(j, "ok"))) {
        *resp = j;
        return EXIT_OK;
    }
    json_t *err = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    ctl_err(ctl, "%s refused: %s%s%s", what, code ? code : "error", msg ? ": " : "",
            msg ? msg : "");
    ec = code && strcmp(code, "not_found") == 0 ? EXIT_NOTFOUND : EXIT_ERR;
    json_decref(j);
    return ec;
}
