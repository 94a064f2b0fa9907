/* SPDX-License-Identifier: MIT */
/* instance.c — parse, validate and serialise instances (see instance.h). */
#include "instance.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <uuid/uuid.h>

/* ---- small helpers ---- */

static int fail(struct instance_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct instance_error *err, const char *field, const char *fmt, ...)
{
    err->code = "bad_request";
    snprintf(err->field, sizeof(err->field), "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int64_t now_realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* No control characters (they would corrupt logs and table output). */
static bool printable(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    }
    return true;
}

/*
 * An object the checks below read: a jansson object (j; a non-object reads
 * as having no members, as json_object_get does), or a flat one scanned by
 * the register fast path (f; NULL: no members).
 */
struct src {
    const json_t *j;
    const struct instance_fobj *f;
};

static struct src jsrc(const json_t *j)
{
    return (struct src){.j = j, .f = NULL};
}

/* The flat member key, or NULL. */
static const struct instance_fval *fget(const struct instance_fobj *f, const char *key)
{
    for (unsigned i = 0; f && i < f->n; i++) {
        if (strcmp(f->v[i].key, key) == 0)
            return &f->v[i];
    }
    return NULL;
}

/*
 * Read an optional string member. Returns 1 and *out if present and valid,
 * 0 if absent, -EINVAL (with *err) if wrong-typed, too long, or containing
 * NUL or control characters. min_len applies only when present.
 */
static int get_string(struct src obj, const char *key, const char *field, size_t min_len,
                      size_t max_len, const char **out, struct instance_error *err)
{
    const char *s;
    size_t len;
    if (obj.j) {
        const json_t *v = json_object_get(obj.j, key);
        if (!v)
            return 0;
        if (!json_is_string(v))
            return fail(err, field, "%s must be a string", field);
        s = json_string_value(v);
        len = json_string_length(v);
    } else {
        const struct instance_fval *v = fget(obj.f, key);
        if (!v)
            return 0;
        if (v->type != IFV_STR)
            return fail(err, field, "%s must be a string", field);
        s = v->str;
        len = v->len;
    }
    if (strlen(s) != len)
        return fail(err, field, "%s contains a NUL character", field);
    if (len < min_len)
        return fail(err, field, "%s must not be empty", field);
    if (len > max_len)
        return fail(err, field, "%s is too long (%zu bytes, max %zu)", field, len, max_len);
    if (!printable(s))
        return fail(err, field, "%s contains control characters", field);
    *out = s;
    return 1;
}

/* Optional integer member in [lo, hi]. 1 present, 0 absent, -EINVAL. */
static int get_int(struct src obj, const char *key, const char *field, json_int_t lo, json_int_t hi,
                   json_int_t *out, struct instance_error *err)
{
    json_int_t x;
    if (obj.j) {
        const json_t *v = json_object_get(obj.j, key);
        if (!v)
            return 0;
        if (!json_is_integer(v))
            return fail(err, field, "%s must be an integer", field);
        x = json_integer_value(v);
    } else {
        const struct instance_fval *v = fget(obj.f, key);
        if (!v)
            return 0;
        if (v->type != IFV_INT)
            return fail(err, field, "%s must be an integer", field);
        x = v->num;
    }
    if (x < lo || x > hi)
        return fail(err, field,
                    "%s must be between %" JSON_INTEGER_FORMAT " and %" JSON_INTEGER_FORMAT, field,
                    lo, hi);
    *out = x;
    return 1;
}

/* Refuse key if not in `allowed` (NULL-terminated). */
static int allowed_key(const char *key, const char *prefix, const char *const allowed[],
                       struct instance_error *err)
{
    for (int i = 0; allowed[i]; i++) {
        if (strcmp(key, allowed[i]) == 0)
            return 0;
    }
    char field[160];
    snprintf(field, sizeof(field), "%s.%.100s", prefix, key);
    return fail(err, field, "unknown field %s", field);
}

/* Refuse members not in `allowed` (NULL-terminated). */
static int only_keys(struct src obj, const char *prefix, const char *const allowed[],
                     struct instance_error *err)
{
    int rc = 0;
    if (obj.j) {
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)obj.j, key, v)
        {
            if ((rc = allowed_key(key, prefix, allowed, err)) < 0)
                return rc;
        }
    }
    for (unsigned i = 0; obj.f && i < obj.f->n; i++) {
        if ((rc = allowed_key(obj.f->v[i].key, prefix, allowed, err)) < 0)
            return rc;
    }
    return 0;
}

static bool is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '_' || c == ':' || c == '-';
}

int instance_check_service_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DISC_SERVICE_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!is_name_char(s[i]))
            return -EINVAL;
    }
    return 0;
}

int instance_check_id(const char *s)
{
    if (strlen(s) != DISC_ID_LEN)
        return -EINVAL;
    uuid_t u;
    return uuid_parse(s, u) == 0 ? 0 : -EINVAL;
}

static bool valid_port(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i]))
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

int instance_check_tcp_address(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DISC_ADDRESS_MAX)
        return -EINVAL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || !valid_port(close + 2))
            return -EINVAL;
        char v6[64];
        size_t len = (size_t)(close - s - 1);
        if (len == 0 || len >= sizeof(v6))
            return -EINVAL;
        memcpy(v6, s + 1, len);
        v6[len] = '\0';
        struct in6_addr a;
        return inet_pton(AF_INET6, v6, &a) == 1 ? 0 : -EINVAL;
    }
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !valid_port(colon + 1))
        return -EINVAL;
    size_t hlen = (size_t)(colon - s);
    if (hlen > 253)
        return -EINVAL;
    /* A host name or IPv4 literal: letters, digits, '-', '.', '_'; labels non-empty. */
    char prev = '.';
    for (size_t i = 0; i < hlen; i++) {
        char c = s[i];
        if (c == '.' && prev == '.')
            return -EINVAL;
        if (!(isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_'))
            return -EINVAL;
        prev = c;
    }
    return prev == '.' ? -EINVAL : 0;
}

/* ---- lifetime ---- */

struct instance *instance_ref(struct instance *inst)
{
    if (inst)
        atomic_fetch_add_explicit(&inst->refs, 1, memory_order_relaxed);
    return inst;
}

static void instance_free(struct instance *inst)
{
    if (inst->strings) {
        free(inst->strings);
    } else {
        free(inst->service);
        free(inst->version);
        free(inst->host);
        free(inst->az);
        free(inst->address);
        for (uint16_t i = 0; i < inst->n_tags; i++) {
            free((char *)inst->tags[i].key);
            free((char *)inst->tags[i].value);
        }
        free(inst->tags);
    }
    for (uint16_t i = 0; i < inst->n_endpoints; i++) {
        free((char *)inst->endpoints[i].name);
        free((char *)inst->endpoints[i].request_type);
        free((char *)inst->endpoints[i].response_type);
    }
    free(inst->endpoints);
    free(inst);
}

void instance_unref(struct instance *inst)
{
    if (inst && atomic_fetch_sub_explicit(&inst->refs, 1, memory_order_acq_rel) == 1)
        instance_free(inst);
}

/* ---- names ---- */

static const char *const check_names[] = {"none", "session", "tcp", "http", "ttl"};
static const char *const health_names[] = {"unknown", "passing", "warning", "critical",
                                           "maintenance"};

const char *instance_check_kind_name(enum instance_check_kind kind)
{
    return (unsigned)kind <= CHECK_TTL ? check_names[kind] : NULL;
}

const char *instance_health_name(uint8_t health)
{
    return health <= DISC_HEALTH_MAINTENANCE ? health_names[health] : "unknown";
}

const char *instance_origin_name(uint8_t origin)
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

/* ---- parsing ---- */

/* Duplicate s into *dst; -ENOMEM. */
static int dup_into(char **dst, const char *s)
{
    *dst = strdup(s ? s : "");
    return *dst ? 0 : -ENOMEM;
}

static int oom(struct instance_error *err)
{
    err->code = "internal";
    err->field[0] = '\0';
    snprintf(err->message, sizeof(err->message), "out of memory");
    return -ENOMEM;
}

/* snprintf(dst, size, "%s", s) without printf's machinery (it is on the
 * register path, which runs from cold caches). */
static void copy_str(char *dst, size_t size, const char *s)
{
    size_t n = strlen(s);
    if (n >= size)
        n = size - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* One tag of the tags object: key, its value read from tags, checked and
 * kept (borrowed) in *out. */
static int parse_tag(struct src tags, const char *key, struct segw_tag *out,
                     struct instance_error *err)
{
    char field[160] = "instance.tags.";
    size_t plen = strlen(field), klen = strlen(key);
    memcpy(field + plen, key, klen < 64 ? klen : 64);
    field[plen + (klen < 64 ? klen : 64)] = '\0';
    if (klen == 0 || klen > DISC_TAG_KEY_MAX || !printable(key))
        return fail(err, field, "tag keys must be 1..%d printable bytes", DISC_TAG_KEY_MAX);
    const char *val = NULL;
    int rc = get_string(tags, key, field, 0, DISC_TAG_VALUE_MAX, &val, err);
    if (rc < 0)
        return rc;
    out->key = key;
    out->value = val;
    return 0;
}

/* obj's optional "tags" member, checked, into tags[*n] (borrowed). */
static int parse_tags(struct src obj, struct segw_tag tags_out[DISC_TAGS_MAX], size_t *n_out,
                      struct instance_error *err)
{
    struct src tags = {0};
    size_t n;
    if (obj.j) {
        const json_t *t = json_object_get(obj.j, "tags");
        if (!t)
            return 0;
        if (!json_is_object(t))
            return fail(err, "instance.tags", "instance.tags must be an object of strings");
        tags.j = t;
        n = json_object_size(t);
    } else {
        const struct instance_fval *t = fget(obj.f, "tags");
        if (!t)
            return 0;
        if (t->type != IFV_OBJ)
            return fail(err, "instance.tags", "instance.tags must be an object of strings");
        tags.f = t->obj;
        n = t->obj->n;
    }
    if (n > DISC_TAGS_MAX)
        return fail(err, "instance.tags", "instance.tags has %zu entries (max %d)", n,
                    DISC_TAGS_MAX);
    int rc;
    size_t k = 0;
    if (tags.j) {
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)tags.j, key, v)
        {
            if ((rc = parse_tag(tags, key, &tags_out[k++], err)) < 0)
                return rc;
        }
    }
    for (unsigned i = 0; tags.f && i < tags.f->n; i++) {
        if ((rc = parse_tag(tags, tags.f->v[i].key, &tags_out[k++], err)) < 0)
            return rc;
    }
    *n_out = k;
    return 0;
}

/* Copy s to *p, NUL-terminated, and advance *p; the copy. */
static char *put_str(char **p, const char *s)
{
    size_t n = strlen(s) + 1;
    char *r = memcpy(*p, s, n);
    *p += n;
    return r;
}

/* The instance's strings and tags, copied into one allocation
 * (inst->strings): one malloc per instance instead of one per string. */
static int pack_strings(struct instance *inst, const char *const in[5], const struct segw_tag *tags,
                        size_t n_tags)
{
    const char *str[5];
    for (int i = 0; i < 5; i++)
        str[i] = in[i] ? in[i] : "";
    size_t bytes = n_tags * sizeof(*tags);
    for (int i = 0; i < 5; i++)
        bytes += strlen(str[i]) + 1;
    for (size_t i = 0; i < n_tags; i++)
        bytes += strlen(tags[i].key) + strlen(tags[i].value) + 2;
    char *block = malloc(bytes ? bytes : 1);
    if (!block)
        return -ENOMEM;
    inst->strings = block;
    struct segw_tag *t = n_tags ? (struct segw_tag *)(void *)block : NULL;
    char *p = block + n_tags * sizeof(*tags);
    inst->service = put_str(&p, str[0]);
    inst->version = put_str(&p, str[1]);
    inst->host = put_str(&p, str[2]);
    inst->az = put_str(&p, str[3]);
    inst->address = put_str(&p, str[4]);
    for (size_t i = 0; i < n_tags; i++) {
        t[i].key = put_str(&p, tags[i].key);
        t[i].value = put_str(&p, tags[i].value);
    }
    inst->tags = t;
    inst->n_tags = (uint16_t)n_tags;
    return 0;
}

static int parse_endpoints(const json_t *eps, struct instance *inst, struct instance_error *err)
{
    if (!eps)
        return 0;
    if (!json_is_array(eps))
        return fail(err, "instance.endpoints", "instance.endpoints must be an array");
    size_t n = json_array_size(eps);
    if (n > DISC_ENDPOINTS_MAX)
        return fail(err, "instance.endpoints", "instance.endpoints has %zu entries (max %d)", n,
                    DISC_ENDPOINTS_MAX);
    if (n == 0)
        return 0;
    inst->endpoints = calloc(n, sizeof(*inst->endpoints));
    if (!inst->endpoints)
        return oom(err);
    static const char *const allowed[] = {"name", "request", "response", "mean_us", "p95_us", NULL};
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(eps, i);
        char prefix[64], field[160];
        snprintf(prefix, sizeof(prefix), "instance.endpoints[%zu]", i);
        if (!json_is_object(e))
            return fail(err, prefix, "%s must be an object", prefix);
        int rc = only_keys(jsrc(e), prefix, allowed, err);
        if (rc < 0)
            return rc;
        const char *name = NULL, *req = "", *resp = "";
        json_int_t mean = 0, p95 = 0;
        snprintf(field, sizeof(field), "%s.name", prefix);
        rc = get_string(jsrc(e), "name", field, 1, DISC_ENDPOINT_NAME_MAX, &name, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return fail(err, field, "%s is required", field);
        snprintf(field, sizeof(field), "%s.request", prefix);
        if ((rc = get_string(jsrc(e), "request", field, 0, DISC_TYPE_NAME_MAX, &req, err)) < 0)
            return rc;
        snprintf(field, sizeof(field), "%s.response", prefix);
        if ((rc = get_string(jsrc(e), "response", field, 0, DISC_TYPE_NAME_MAX, &resp, err)) < 0)
            return rc;
        snprintf(field, sizeof(field), "%s.mean_us", prefix);
        if ((rc = get_int(jsrc(e), "mean_us", field, 0, UINT32_MAX, &mean, err)) < 0)
            return rc;
        snprintf(field, sizeof(field), "%s.p95_us", prefix);
        if ((rc = get_int(jsrc(e), "p95_us", field, 0, UINT32_MAX, &p95, err)) < 0)
            return rc;
        struct segw_endpoint *ep = &inst->endpoints[inst->n_endpoints++];
        ep->name = strdup(name);
        ep->request_type = strdup(req);
        ep->response_type = strdup(resp);
        ep->mean_us = (uint32_t)mean;
        ep->p95_us = (uint32_t)p95;
        if (!ep->name || !ep->request_type || !ep->response_type)
            return oom(err);
    }
    return 0;
}

/* The fields common to requests and documents. host/az fall back to the
 * given defaults (NULL: required). */
static int parse_common(struct src obj, const char *def_host, const char *def_az,
                        struct instance *inst, struct instance_error *err)
{
    const char *service = NULL, *version = "", *host = def_host, *az = def_az;
    const char *address = NULL, *network = "tcp";
    json_int_t weight = 10;
    int rc;

    if ((rc = get_string(obj, "service", "instance.service", 1, DISC_SERVICE_MAX, &service, err)) <
        0)
        return rc;
    if (rc == 0)
        return fail(err, "instance.service", "instance.service is required");
    if (instance_check_service_name(service) < 0)
        return fail(err, "instance.service",
                    "instance.service may only contain letters, digits and . _ : -");
    if ((rc = get_string(obj, "version", "instance.version", 0, DISC_VERSION_MAX, &version, err)) <
        0)
        return rc;
    if ((rc = get_string(obj, "host", "instance.host", 1, DISC_HOST_MAX, &host, err)) < 0)
        return rc;
    if (!host)
        return fail(err, "instance.host", "instance.host is required");
    if ((rc = get_string(obj, "az", "instance.az", 0, DISC_AZ_MAX, &az, err)) < 0)
        return rc;
    if ((rc = get_string(obj, "network", "instance.network", 1, 16, &network, err)) < 0)
        return rc;
    if (strcmp(network, "tcp") == 0)
        inst->addr_kind = DISC_ADDR_TCP;
    else if (strcmp(network, "unix") == 0)
        inst->addr_kind = DISC_ADDR_UNIX;
    else
        return fail(err, "instance.network", "instance.network must be \"tcp\" or \"unix\"");
    if ((rc = get_string(obj, "address", "instance.address", 1, DISC_ADDRESS_MAX, &address, err)) <
        0)
        return rc;
    if (rc == 0)
        return fail(err, "instance.address", "instance.address is required");
    if (inst->addr_kind == DISC_ADDR_TCP && instance_check_tcp_address(address) < 0)
        return fail(err, "instance.address",
                    "instance.address must be host:port or [ipv6]:port with a port 1..65535");
    if (inst->addr_kind == DISC_ADDR_UNIX &&
        (address[0] != '/' || strlen(address) > INSTANCE_UNIX_PATH_MAX))
        return fail(err, "instance.address",
                    "instance.address must be an absolute path of at most %u bytes for network "
                    "\"unix\"",
                    INSTANCE_UNIX_PATH_MAX);
    if ((rc = get_int(obj, "weight", "instance.weight", 1, 10000, &weight, err)) < 0)
        return rc;
    inst->weight = (uint32_t)weight;

    struct segw_tag tags[DISC_TAGS_MAX];
    size_t n_tags = 0;
    if ((rc = parse_tags(obj, tags, &n_tags, err)) < 0)
        return rc;
    const char *const str[5] = {service, version, host, az, address};
    if (pack_strings(inst, str, tags, n_tags) < 0)
        return oom(err);
    if (!obj.j) /* the fast path takes no arrays */
        return fget(obj.f, "endpoints")
                   ? fail(err, "instance.endpoints", "instance.endpoints must be an array")
                   : 0;
    return parse_endpoints(json_object_get(obj.j, "endpoints"), inst, err);
}

static int parse_check(struct src chk, const struct instance_defaults *def,
                       const struct instance *inst, struct instance_check *out,
                       struct instance_error *err)
{
    memset(out, 0, sizeof(*out));
    out->kind = CHECK_SESSION;
    out->interval_ms = def->interval_ms;
    out->misses = def->misses;
    if (!chk.j && !chk.f)
        chk.j = json_null();
    if (chk.j && !json_is_null(chk.j) && !json_is_object(chk.j))
        return fail(err, "check", "check must be an object");
    static const char *const allowed[] = {
        "type", "interval_ms", "timeout_ms",          "misses",      "ttl_ms",
        "path", "target",      "deregister_after_ms", "maintenance", NULL};
    int rc;
    if ((chk.f || json_is_object(chk.j)) && (rc = only_keys(chk, "check", allowed, err)) < 0)
        return rc;

    const char *type = "session";
    if ((rc = get_string(chk, "type", "check.type", 1, 16, &type, err)) < 0)
        return rc;
    bool known = false;
    for (int k = CHECK_NONE; k <= CHECK_TTL; k++) {
        if (strcmp(type, check_names[k]) == 0) {
            out->kind = (enum instance_check_kind)k;
            known = true;
        }
    }
    if (!known)
        return fail(err, "check.type", "check.type must be one of session, tcp, http, ttl, none");

    json_int_t v = 0; /* set by get_int when it returns 1 (GCC -O3 cannot tell) */
    if ((rc = get_int(chk, "interval_ms", "check.interval_ms", CHECK_INTERVAL_MIN_MS,
                      CHECK_INTERVAL_MAX_MS, &v, err)) < 0)
        return rc;
    if (rc)
        out->interval_ms = (uint32_t)v;
    uint32_t def_timeout = def->timeout_ms ? def->timeout_ms : CHECK_TIMEOUT_DEFAULT_MS;
    out->timeout_ms = def_timeout < out->interval_ms ? def_timeout : out->interval_ms / 2;
    if ((rc = get_int(chk, "timeout_ms", "check.timeout_ms", 1, CHECK_INTERVAL_MAX_MS, &v, err)) <
        0)
        return rc;
    if (rc) {
        if ((uint32_t)v >= out->interval_ms)
            return fail(err, "check.timeout_ms",
                        "check.timeout_ms must be less than the interval (%u ms)",
                        out->interval_ms);
        out->timeout_ms = (uint32_t)v;
    }
    if ((rc = get_int(chk, "misses", "check.misses", 1, CHECK_MISSES_MAX, &v, err)) < 0)
        return rc;
    if (rc)
        out->misses = (uint32_t)v;
    if ((rc = get_int(chk, "ttl_ms", "check.ttl_ms", CHECK_TTL_MIN_MS, CHECK_TTL_MAX_MS, &v, err)) <
        0)
        return rc;
    if (rc)
        out->ttl_ms = (uint32_t)v;
    else if (out->kind == CHECK_TTL)
        return fail(err, "check.ttl_ms", "check.ttl_ms is required for a ttl check");

    if ((rc = get_int(chk, "deregister_after_ms", "check.deregister_after_ms", 0,
                      CHECK_DEREGISTER_AFTER_MAX_MS, &v, err)) < 0)
        return rc;
    if (rc && v > 0) {
        if (v < CHECK_DEREGISTER_AFTER_MIN_MS)
            return fail(err, "check.deregister_after_ms",
                        "check.deregister_after_ms must be 0 (remove at once) or between %u and "
                        "%u",
                        CHECK_DEREGISTER_AFTER_MIN_MS, CHECK_DEREGISTER_AFTER_MAX_MS);
        if (out->kind != CHECK_TCP && out->kind != CHECK_HTTP && out->kind != CHECK_TTL)
            return fail(err, "check.deregister_after_ms",
                        "check.deregister_after_ms applies to tcp, http and ttl checks, not %s",
                        type);
        out->deregister_after_ms = (uint32_t)v;
    }
    const char *maint = NULL;
    if ((rc = get_string(chk, "maintenance", "check.maintenance", 0, INSTANCE_MAINT_REASON_MAX,
                         &maint, err)) < 0)
        return rc;
    if (maint) {
        out->maintenance = true;
        copy_str(out->maint_reason, sizeof(out->maint_reason), maint);
    }

    const char *path = "/";
    if ((rc = get_string(chk, "path", "check.path", 1, INSTANCE_CHECK_PATH_MAX, &path, err)) < 0)
        return rc;
    if (path[0] != '/' || strchr(path, ' '))
        return fail(err, "check.path", "check.path must start with '/' and contain no spaces");
    copy_str(out->path, sizeof(out->path), path);

    const char *target = NULL;
    if ((rc = get_string(chk, "target", "check.target", 1, DISC_ADDRESS_MAX, &target, err)) < 0)
        return rc;
    if (target && instance_check_tcp_address(target) < 0)
        return fail(err, "check.target", "check.target must be host:port");
    if (!target && (out->kind == CHECK_TCP || out->kind == CHECK_HTTP)) {
        if (inst->addr_kind != DISC_ADDR_TCP)
            return fail(err, "check.target",
                        "check.target is required for a %s check of a unix-socket instance", type);
        target = inst->address;
    }
    if (target)
        copy_str(out->target, sizeof(out->target), target);
    return 0;
}

/*
 * A random (version 4) UUID for a new registration. The bytes come from
 * getrandom(2), 16 ids' worth at a time, kept per thread: one system call
 * per 16 registrations instead of one per registration on the path from the
 * control socket to the segment. (libuuid's uuid_generate_random, used at
 * first, also re-seeds and mixes in its own PRNG on every call: getpid,
 * getuid, getppid, gettid, gettimeofday, ~7 us a call here.) The ids are
 * public, so unused bytes in the pool are no secret; discd does not fork
 * (a forked child would repeat the parent's next ids). Formatting stays
 * libuuid's. getrandom only fails without kernel support (< 3.17) or when
 * interrupted before the pool is ready; then libuuid's generator is used.
 */
#define ID_POOL_IDS 16
static _Thread_local struct {
    unsigned char bytes[ID_POOL_IDS * sizeof(uuid_t)];
    unsigned next; /* ids handed out; ID_POOL_IDS: empty */
} id_pool = {.next = ID_POOL_IDS};

static void new_instance_id(char out[DISC_ID_LEN + 1])
{
    uuid_t u;
    if (id_pool.next == ID_POOL_IDS &&
        getrandom(id_pool.bytes, sizeof(id_pool.bytes), 0) == (ssize_t)sizeof(id_pool.bytes))
        id_pool.next = 0;
    if (id_pool.next < ID_POOL_IDS) {
        memcpy(u, id_pool.bytes + id_pool.next++ * sizeof(uuid_t), sizeof(uuid_t));
        u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
        u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    } else {
        uuid_generate_random(u);
    }
    uuid_unparse_lower(u, out);
}

/* instance_from_request and instance_from_fields: obj is the instance
 * object (present), check the check object or null. */
static int from_request(struct src obj, struct src check, const struct instance_defaults *def,
                        struct instance **out, struct instance_error *err)
{
    static const char *const allowed[] = {"service", "version", "host",      "az",   "address",
                                          "network", "weight",  "endpoints", "tags", NULL};
    int rc = only_keys(obj, "instance", allowed, err);
    if (rc < 0)
        return rc;
    struct instance *inst = calloc(1, sizeof(*inst));
    if (!inst)
        return oom(err);
    atomic_init(&inst->refs, 1);
    if ((rc = parse_common(obj, def->host, def->az ? def->az : "", inst, err)) < 0 ||
        (rc = parse_check(check, def, inst, &inst->check, err)) < 0) {
        instance_free(inst);
        return rc;
    }
    new_instance_id(inst->id);
    inst->registered_at_ms = now_realtime_ms();
    inst->origin = DISC_ORIGIN_LOCAL;
    inst->health = inst->check.maintenance ? DISC_HEALTH_MAINTENANCE : DISC_HEALTH_PASSING;
    *out = inst;
    return 0;
}

int instance_from_request(const json_t *obj, const json_t *check,
                          const struct instance_defaults *def, struct instance **out,
                          struct instance_error *err)
{
    *out = NULL;
    if (!obj)
        return fail(err, "instance", "instance is required");
    if (!json_is_object(obj))
        return fail(err, "instance", "instance must be an object");
    return from_request(jsrc(obj), jsrc(check), def, out, err);
}

int instance_from_fields(const struct instance_fobj *obj, const struct instance_fobj *check,
                         const struct instance_defaults *def, struct instance **out,
                         struct instance_error *err)
{
    *out = NULL;
    if (!obj)
        return fail(err, "instance", "instance is required");
    return from_request((struct src){.f = obj}, (struct src){.f = check}, def, out, err);
}

int instance_from_document(const json_t *doc, struct instance **out, struct instance_error *err)
{
    *out = NULL;
    if (!json_is_object(doc))
        return fail(err, "", "an instance document must be a JSON object");
    const char *id = NULL;
    int rc = get_string(jsrc(doc), "id", "instance.id", 1, DISC_ID_LEN, &id, err);
    if (rc < 0)
        return rc;
    if (rc == 0 || instance_check_id(id) < 0)
        return fail(err, "instance.id", "instance.id must be a textual UUID");
    struct instance *inst = calloc(1, sizeof(*inst));
    if (!inst)
        return oom(err);
    atomic_init(&inst->refs, 1);
    snprintf(inst->id, sizeof(inst->id), "%s", id);
    for (char *p = inst->id; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    inst->origin = DISC_ORIGIN_REMOTE;
    inst->health = DISC_HEALTH_PASSING;
    json_int_t at = 0, owner = DISC_OWNER_UNKNOWN;
    const char *health = NULL, *origin = NULL;
    if ((rc = parse_common(jsrc(doc), NULL, "", inst, err)) < 0 ||
        (rc = get_int(jsrc(doc), "registered_at_ms", "instance.registered_at_ms", 0, INT64_MAX, &at,
                      err)) < 0 ||
        (rc = get_int(jsrc(doc), "owner_uid", "instance.owner_uid", 0, DISC_OWNER_UNKNOWN - 1,
                      &owner, err)) < 0 ||
        (rc = get_string(jsrc(doc), "health", "instance.health", 1, 16, &health, err)) < 0 ||
        (rc = get_string(jsrc(doc), "origin", "instance.origin", 1, 16, &origin, err)) < 0)
        goto bad;
    inst->registered_at_ms = at;
    inst->owner_uid = (uint32_t)owner;
    if (health) {
        bool known = false;
        for (uint8_t h = 0; h <= DISC_HEALTH_MAINTENANCE; h++) {
            if (strcmp(health, health_names[h]) == 0) {
                inst->health = h;
                known = true;
            }
        }
        if (!known) {
            rc = fail(err, "instance.health", "instance.health is not a known state");
            goto bad;
        }
    }
    if (origin) {
        if (strcmp(origin, "cache") == 0)
            inst->origin = DISC_ORIGIN_CACHE;
        else if (strcmp(origin, "local") != 0 && strcmp(origin, "remote") != 0) {
            rc = fail(err, "instance.origin", "instance.origin must be local, remote or cache");
            goto bad;
        }
    }
    *out = inst;
    return 0;
bad:
    instance_free(inst);
    return rc;
}

/* ---- serialising ---- */

json_t *instance_to_json(const struct instance *inst, unsigned flags)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_t *tags = json_object();
    json_t *eps = json_array();
    int bad = !tags || !eps;
    bad |= json_object_set_new(o, "id", json_string(inst->id));
    bad |= json_object_set_new(o, "service", json_string(inst->service));
    bad |= json_object_set_new(o, "version", json_string(inst->version));
    bad |= json_object_set_new(o, "host", json_string(inst->host));
    bad |= json_object_set_new(o, "az", json_string(inst->az));
    bad |= json_object_set_new(o, "network",
                               json_string(inst->addr_kind == DISC_ADDR_UNIX ? "unix" : "tcp"));
    bad |= json_object_set_new(o, "address", json_string(inst->address));
    bad |= json_object_set_new(o, "weight", json_integer(inst->weight));
    for (uint16_t i = 0; tags && i < inst->n_tags; i++)
        bad |= json_object_set_new(tags, inst->tags[i].key, json_string(inst->tags[i].value));
    bad |= json_object_set_new(o, "tags", tags);
    for (uint16_t i = 0; eps && i < inst->n_endpoints; i++) {
        const struct segw_endpoint *e = &inst->endpoints[i];
        json_t *je = json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", e->name, "request",
                               e->request_type, "response", e->response_type, "mean_us",
                               (json_int_t)e->mean_us, "p95_us", (json_int_t)e->p95_us);
        bad |= json_array_append_new(eps, je);
    }
    bad |= json_object_set_new(o, "endpoints", eps);
    bad |= json_object_set_new(o, "registered_at_ms", json_integer(inst->registered_at_ms));
    bad |= json_object_set_new(o, "health", json_string(instance_health_name(inst->health)));
    bad |= json_object_set_new(o, "origin", json_string(instance_origin_name(inst->origin)));
    if (inst->owner_uid != DISC_OWNER_UNKNOWN)
        bad |= json_object_set_new(o, "owner_uid", json_integer(inst->owner_uid));
    if (flags & INSTANCE_JSON_CHECK) {
        const struct instance_check *c = &inst->check;
        json_t *jc = json_pack("{s:s, s:I, s:I, s:I}", "type", instance_check_kind_name(c->kind),
                               "interval_ms", (json_int_t)c->interval_ms, "timeout_ms",
                               (json_int_t)c->timeout_ms, "misses", (json_int_t)c->misses);
        if (jc && c->kind == CHECK_TTL)
            bad |= json_object_set_new(jc, "ttl_ms", json_integer(c->ttl_ms));
        if (jc && (c->kind == CHECK_TCP || c->kind == CHECK_HTTP))
            bad |= json_object_set_new(jc, "target", json_string(c->target));
        if (jc && c->kind == CHECK_HTTP)
            bad |= json_object_set_new(jc, "path", json_string(c->path));
        if (jc && c->deregister_after_ms)
            bad |= json_object_set_new(jc, "deregister_after_ms",
                                       json_integer(c->deregister_after_ms));
        if (jc && c->maintenance)
            bad |= json_object_set_new(jc, "maintenance", json_string(c->maint_reason));
        bad |= json_object_set_new(o, "check", jc);
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

struct instance *instance_clone(const struct instance *inst)
{
    struct instance *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    /* Everything but the reference count, which other threads change
     * (atomically) while we copy: it is not ours to read non-atomically. */
    _Static_assert(offsetof(struct instance, refs) == 0, "refs comes first");
    memcpy((char *)c + offsetof(struct instance, id),
           (const char *)inst + offsetof(struct instance, id),
           sizeof(*c) - offsetof(struct instance, id));
    atomic_init(&c->refs, 1);
    c->service = c->version = c->host = c->az = c->address = NULL;
    c->tags = NULL;
    c->strings = NULL;
    c->endpoints = NULL;
    c->n_tags = c->n_endpoints = 0;
    bool bad = dup_into(&c->service, inst->service) < 0 ||
               dup_into(&c->version, inst->version) < 0 || dup_into(&c->host, inst->host) < 0 ||
               dup_into(&c->az, inst->az) < 0 || dup_into(&c->address, inst->address) < 0;
    if (!bad && inst->n_tags) {
        c->tags = calloc(inst->n_tags, sizeof(*c->tags));
        bad = !c->tags;
        for (uint16_t i = 0; !bad && i < inst->n_tags; i++, c->n_tags++) {
            c->tags[i].key = strdup(inst->tags[i].key);
            c->tags[i].value = strdup(inst->tags[i].value);
            bad = !c->tags[i].key || !c->tags[i].value;
        }
    }
    if (!bad && inst->n_endpoints) {
        c->endpoints = calloc(inst->n_endpoints, sizeof(*c->endpoints));
        bad = !c->endpoints;
        for (uint16_t i = 0; !bad && i < inst->n_endpoints; i++, c->n_endpoints++) {
            const struct segw_endpoint *e = &inst->endpoints[i];
            c->endpoints[i] = *e;
            c->endpoints[i].name = strdup(e->name);
            c->endpoints[i].request_type = strdup(e->request_type);
            c->endpoints[i].response_type = strdup(e->response_type);
            bad = !c->endpoints[i].name || !c->endpoints[i].request_type ||
                  !c->endpoints[i].response_type;
        }
    }
    if (bad) {
        instance_free(c);
        return NULL;
    }
    return c;
}

void instance_to_segw(const struct instance *inst, struct segw_instance *out)
{
    memset(out, 0, sizeof(*out));
    out->id = inst->id;
    out->service = inst->service;
    out->version = inst->version;
    out->host = inst->host;
    out->az = inst->az;
    out->address = inst->address;
    out->addr_kind = inst->addr_kind;
    out->health = inst->health;
    out->origin = inst->origin;
    out->weight = inst->weight;
    out->registered_at_ms = inst->registered_at_ms;
    out->owner_uid = inst->owner_uid;
    out->tags = inst->tags;
    out->n_tags = inst->n_tags;
    out->endpoints = inst->endpoints;
    out->n_endpoints = inst->n_endpoints;
}

uint32_t instance_record_bytes(const struct instance *inst)
{
    struct segw_instance si;
    instance_to_segw(inst, &si);
    long n = segw_record_size(&si);
    return n > 0 ? (uint32_t)n : 0;
}
