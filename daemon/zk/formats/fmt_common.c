/* SPDX-License-Identifier: MIT */
/*
 * fmt_common.c — what every format shares (format.h): the format table,
 * `import` config lines, the document builder and small parsers.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "format.h"

#define FOREIGN_TAGS_MAX 30 /* DISC_TAGS_MAX (32) minus "source" and "tags_dropped" */
#define TAG_KEY_MAX      64
#define TAG_VALUE_MAX    255
#define ENDPOINTS_MAX    64
#define ENDPOINT_NAME    128

static const struct fmt_ops *const formats[] = {
    &fmt_dubbo,
    &fmt_serverset,
    &fmt_kitex,
    &fmt_curator,
};

#define N_FORMATS (sizeof(formats) / sizeof(formats[0]))

const struct fmt_ops *fmt_find(const char *name)
{
    for (size_t i = 0; i < N_FORMATS; i++) {
        if (strcmp(formats[i]->name, name) == 0)
            return formats[i];
    }
    return NULL;
}

const struct fmt_ops *const *fmt_all(size_t *n_out)
{
    *n_out = N_FORMATS;
    return formats;
}

/* ---- config lines ----------------------------------------------------------- */

static bool valid_source_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= FMT_SOURCE_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-' || c == ':'))
            return false;
    }
    return true;
}

/* An absolute ZooKeeper path: "/" or "/a/b" (no empty component, no trailing '/'). */
static bool valid_path(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n >= FMT_PATH_MAX || p[0] != '/')
        return false;
    if (n == 1)
        return true;
    if (p[n - 1] == '/' || strstr(p, "//"))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x21 || c == 0x7f)
            return false;
    }
    for (const char *c = p; (c = strchr(c, '/')) != NULL; c++) {
        if (strncmp(c, "/./", 3) == 0 || strncmp(c, "/../", 4) == 0 || strcmp(c, "/.") == 0 ||
            strcmp(c, "/..") == 0)
            return false;
    }
    return true;
}

static bool valid_service(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-' || c == ':'))
            return false;
    }
    return true;
}

int fmt_source_parse(const char *text, struct fmt_source *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char buf[1024];
    if (strlen(text) >= sizeof(buf)) {
        snprintf(err, errlen, "import: line too long");
        return -EINVAL;
    }
    snprintf(buf, sizeof(buf), "%s", text);
    char *save = NULL;
    char *word = strtok_r(buf, " \t", &save);
    if (!word) {
        snprintf(err, errlen, "import: expected 'FORMAT [BASE] [name=NAME] [service=NAME]'");
        return -EINVAL;
    }
    out->fmt = fmt_find(word);
    if (!out->fmt) {
        char known[256] = "";
        for (size_t i = 0; i < N_FORMATS; i++) {
            size_t k = strlen(known);
            snprintf(known + k, sizeof(known) - k, "%s%s", k ? ", " : "", formats[i]->name);
        }
        snprintf(err, errlen, "import: unknown format '%.64s' (known: %s)", word, known);
        return -EINVAL;
    }
    snprintf(out->name, sizeof(out->name), "%s", out->fmt->name);
    bool have_base = false;
    while ((word = strtok_r(NULL, " \t", &save)) != NULL) {
        if (word[0] == '/') {
            if (have_base) {
                snprintf(err, errlen, "import: two base paths ('%s' and '%.200s')", out->base,
                         word);
                return -EINVAL;
            }
            if (!valid_path(word)) {
                snprintf(err, errlen,
                         "import: base '%.200s' is not an absolute ZooKeeper path (no empty, '.' "
                         "or '..' component, no trailing '/', at most %d bytes)",
                         word, FMT_PATH_MAX - 1);
                return -EINVAL;
            }
            snprintf(out->base, sizeof(out->base), "%s", word);
            have_base = true;
        } else if (strncmp(word, "name=", 5) == 0) {
            if (!valid_source_name(word + 5)) {
                snprintf(err, errlen,
                         "import: name '%.64s' must be 1..%d of A-Z a-z 0-9 . _ - :", word + 5,
                         FMT_SOURCE_NAME - 1);
                return -EINVAL;
            }
            snprintf(out->name, sizeof(out->name), "%s", word + 5);
        } else if (strncmp(word, "service=", 8) == 0) {
            if (out->fmt->layout != FMT_LAYOUT_SINGLE) {
                snprintf(err, errlen,
                         "import: service= applies to formats whose base is one service "
                         "(serverset), not to %s (its service names come from the tree)",
                         out->fmt->name);
                return -EINVAL;
            }
            if (!valid_service(word + 8)) {
                snprintf(
                    err, errlen,
                    "import: service '%.200s' must be 1..255 of A-Z a-z 0-9 . _ - :", word + 8);
                return -EINVAL;
            }
            snprintf(out->service, sizeof(out->service), "%s", word + 8);
        } else {
            snprintf(err, errlen,
                     "import: unexpected '%.100s' (want a base path starting with '/', "
                     "name=NAME or service=NAME)",
                     word);
            return -EINVAL;
        }
    }
    if (!have_base) {
        if (!out->fmt->default_base) {
            snprintf(err, errlen, "import: format %s needs a base path (e.g. 'import = %s %s')",
                     out->fmt->name, out->fmt->name,
                     out->fmt->layout == FMT_LAYOUT_SINGLE ? "/aurora/role/prod/job" : "/path");
            return -EINVAL;
        }
        snprintf(out->base, sizeof(out->base), "%s", out->fmt->default_base);
    }
    if (out->fmt->layout == FMT_LAYOUT_SINGLE && !out->service[0]) {
        const char *last = strrchr(out->base, '/');
        if (!last || !valid_service(last + 1)) {
            snprintf(err, errlen,
                     "import: cannot name the service after base '%.200s'; add service=NAME",
                     out->base);
            return -EINVAL;
        }
        snprintf(out->service, sizeof(out->service), "%s", last + 1);
    }
    return 0;
}

/* a is b or inside b. */
static bool path_within(const char *a, const char *b)
{
    if (strcmp(b, "/") == 0)
        return true;
    size_t n = strlen(b);
    return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '/');
}

int fmt_sources_check(const struct fmt_source *src, size_t n, const char *zk_root, char *err,
                      size_t errlen)
{
    if (n > FMT_SOURCES_MAX) {
        snprintf(err, errlen, "import: more than %d sources", FMT_SOURCES_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const struct fmt_source *a = &src[i];
        if (zk_root && zk_root[0] && path_within(a->base, zk_root)) {
            snprintf(err, errlen, "import: source %s: base %s is inside discd's own zk-root %s",
                     a->name, a->base, zk_root);
            return -EINVAL;
        }
        if (zk_root && zk_root[0] && a->fmt->layout == FMT_LAYOUT_SINGLE &&
            path_within(zk_root, a->base)) {
            snprintf(err, errlen, "import: source %s: discd's zk-root %s is inside its base %s",
                     a->name, zk_root, a->base);
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            const struct fmt_source *b = &src[j];
            if (strcmp(a->name, b->name) == 0) {
                snprintf(err, errlen,
                         "import: two sources named '%s' (%s %s and %s %s): give each a "
                         "different name=",
                         a->name, b->fmt->name, b->base, a->fmt->name, a->base);
                return -EINVAL;
            }
            if (a->fmt == b->fmt && strcmp(a->base, b->base) == 0) {
                snprintf(err, errlen, "import: sources %s and %s both read %s %s", b->name, a->name,
                         a->fmt->name, a->base);
                return -EINVAL;
            }
        }
    }
    return 0;
}

/* ---- document builder ------------------------------------------------------- */

/* Namespace of discd's name-based ids for imported nodes (a fixed random UUID). */
static const uuid_t import_ns = {0x6b, 0x2f, 0x0e, 0x51, 0x93, 0x4c, 0x4d, 0x1a,
                                 0x8e, 0x07, 0x5d, 0x3b, 0xc2, 0x91, 0x7a, 0x44};

static bool is_uuid_any_case(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

static bool printable(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    }
    return true;
}

/* Strict UTF-8 (what jansson accepts): no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t more;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            more = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= more)
            return false;
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += more + 1;
    }
    return true;
}

int fmt_doc_begin(struct fmt_doc *d, const struct fmt_node *node, const char *foreign_id,
                  const char *service, const char *host, long port, char *why)
{
    memset(d, 0, sizeof(*d));
    d->node = node;
    if (!service || !*service) {
        snprintf(why, FMT_WHY_MAX, "no service name");
        return -EINVAL;
    }
    if (!host || !*host) {
        snprintf(why, FMT_WHY_MAX, "no host");
        return -EINVAL;
    }
    if (port < 1 || port > 65535) {
        snprintf(why, FMT_WHY_MAX, "port %ld not in 1..65535", port);
        return -EINVAL;
    }
    /* ZooKeeper hands names and data to the C client as bytes; the instance
     * model (and jansson) hold UTF-8 only */
    const char *not_utf8 =
        !utf8_valid((const unsigned char *)service, strlen(service)) ? "service"
        : !utf8_valid((const unsigned char *)host, strlen(host))     ? "host"
        : foreign_id && !utf8_valid((const unsigned char *)foreign_id, strlen(foreign_id))
            ? "foreign id"
            : NULL;
    if (not_utf8) {
        snprintf(why, FMT_WHY_MAX, "%s is not UTF-8", not_utf8);
        return -EINVAL;
    }
    char id[37];
    bool foreign_uuid = foreign_id && is_uuid_any_case(foreign_id);
    if (foreign_uuid) {
        for (int i = 0; i < 36; i++)
            id[i] = (char)tolower((unsigned char)foreign_id[i]);
        id[36] = '\0';
    } else {
        char name[FMT_PATH_MAX * 4];
        int n = snprintf(name, sizeof(name), "%s:%s", node->src->fmt->name, node->path);
        if (n < 0 || (size_t)n >= sizeof(name)) {
            snprintf(why, FMT_WHY_MAX, "path too long");
            return -EINVAL;
        }
        uuid_t u;
        uuid_generate_sha1(u, import_ns, name, (size_t)n);
        uuid_unparse_lower(u, id);
    }
    char address[300];
    int an =
        snprintf(address, sizeof(address), strchr(host, ':') ? "[%s]:%ld" : "%s:%ld", host, port);
    if (an < 0 || (size_t)an >= 256) {
        snprintf(why, FMT_WHY_MAX, "address too long");
        return -EINVAL;
    }
    d->doc = json_object();
    d->tags = json_object();
    d->eps = json_array();
    if (!d->doc || !d->tags || !d->eps)
        goto oom;
    int bad = 0;
    bad |= json_object_set_new(d->doc, "id", json_string(id));
    bad |= json_object_set_new(d->doc, "service", json_string(service));
    bad |= json_object_set_new(d->doc, "host", json_string(host));
    bad |= json_object_set_new(d->doc, "address", json_string(address));
    bad |= json_object_set_new(d->doc, "weight", json_integer(FMT_DEFAULT_WEIGHT));
    if (node->ctime_ms > 0)
        bad |= json_object_set_new(d->doc, "registered_at_ms", json_integer(node->ctime_ms));
    if (bad)
        goto oom;
    if (foreign_id && !foreign_uuid && fmt_doc_tag(d, "foreign_id", foreign_id) < 0)
        goto oom;
    return 0;
oom:
    fmt_doc_abort(d);
    return -ENOMEM;
}

int fmt_doc_set_str(struct fmt_doc *d, const char *field, const char *value)
{
    return json_object_set_new(d->doc, field, json_string(value)) ? -ENOMEM : 0;
}

int fmt_doc_set_weight(struct fmt_doc *d, long long weight)
{
    if (weight < 1)
        weight = 1;
    if (weight > 10000)
        weight = 10000;
    return json_object_set_new(d->doc, "weight", json_integer(weight)) ? -ENOMEM : 0;
}

int fmt_doc_tag(struct fmt_doc *d, const char *key, const char *value)
{
    size_t kl = strlen(key);
    bool fits = kl > 0 && kl <= TAG_KEY_MAX && printable(key) && strlen(value) <= TAG_VALUE_MAX &&
                strcmp(key, "source") != 0 && strcmp(key, "tags_dropped") != 0;
    bool present = fits && json_object_get(d->tags, key) != NULL;
    if (!fits || (!present && d->n_tags >= FOREIGN_TAGS_MAX)) {
        d->dropped++;
        return 0;
    }
    json_t *v = json_string(value);
    if (!v) {
        if (!json_stringn(value, strlen(value))) {
            d->dropped++; /* not UTF-8: jansson refuses it */
            return 0;
        }
        return -ENOMEM;
    }
    if (json_object_set_new(d->tags, key, v))
        return -ENOMEM;
    if (!present)
        d->n_tags++;
    return 0;
}

int fmt_doc_endpoint(struct fmt_doc *d, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > ENDPOINT_NAME || !printable(name) ||
        json_array_size(d->eps) >= ENDPOINTS_MAX) {
        d->dropped++;
        return 0;
    }
    json_t *e = json_pack("{s:s}", "name", name);
    if (!e) {
        d->dropped++; /* not UTF-8 */
        return 0;
    }
    return json_array_append_new(d->eps, e) ? -ENOMEM : 0;
}

int fmt_doc_named_endpoint(struct fmt_doc *d, const char *name, const char *host, long port)
{
    char key[128], addr[300];
    snprintf(key, sizeof(key), "endpoint.%.100s", name);
    snprintf(addr, sizeof(addr), strchr(host, ':') ? "[%.256s]:%ld" : "%.256s:%ld", host, port);
    if (fmt_doc_endpoint(d, name) < 0 || fmt_doc_tag(d, key, addr) < 0)
        return -ENOMEM;
    return 0;
}

json_t *fmt_doc_end(struct fmt_doc *d)
{
    int bad = json_object_set_new(d->tags, "source", json_string(d->node->src->name));
    if (d->dropped) {
        char n[24];
        snprintf(n, sizeof(n), "%u", d->dropped);
        bad |= json_object_set_new(d->tags, "tags_dropped", json_string(n));
    }
    bad |= json_object_set_new(d->doc, "tags", d->tags);
    d->tags = NULL;
    if (json_array_size(d->eps) > 0)
        bad |= json_object_set_new(d->doc, "endpoints", d->eps);
    else
        json_decref(d->eps);
    d->eps = NULL;
    json_t *doc = d->doc;
    d->doc = NULL;
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

void fmt_doc_abort(struct fmt_doc *d)
{
    json_decref(d->doc);
    json_decref(d->tags);
    json_decref(d->eps);
    d->doc = d->tags = d->eps = NULL;
}

/* ---- small parsers ---------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long fmt_url_decode(const char *src, size_t len, char *dst, size_t dstlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -EINVAL;
            int h = hexval(src[i + 1]), l = hexval(src[i + 2]);
            if (h < 0 || l < 0)
                return -EINVAL;
            c = (char)(h * 16 + l);
            if (c == '\0')
                return -EINVAL;
            i += 2;
        } else if (c == '\0') {
            return -EINVAL;
        }
        if (o + 1 >= dstlen)
            return -E2BIG;
        dst[o++] = c;
    }
    if (dstlen == 0)
        return -E2BIG;
    dst[o] = '\0';
    /* escapes can spell any byte; the instance model holds UTF-8 only */
    if (!utf8_valid((const unsigned char *)dst, o))
        return -EILSEQ;
    return (long)o;
}

int fmt_split_hostport(const char *s, char *host, size_t hostlen, long *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || strchr(s, ':') != colon)
            return -EINVAL;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -EINVAL;
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5)
        return -EINVAL;
    long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = v;
    return 0;
}

json_t *fmt_json_object(const struct fmt_node *node, char *why)
{
    json_error_t jerr;
    json_t *root =
        json_loadb(node->data ? node->data : "", node->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(why, FMT_WHY_MAX, "not JSON: %.100s", jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(why, FMT_WHY_MAX, "not a JSON object");
        json_decref(root);
        return NULL;
    }
    return root;
}
