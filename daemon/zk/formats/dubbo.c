/* SPDX-License-Identifier: MIT */
/*
 * dubbo.c — Apache Dubbo's interface-level registry (format.h):
 *   /<group, default dubbo>/<URL-encoded interface>/providers/<URL-encoded provider URL>
 * Everything is in the node's name, e.g. (decoded)
 *   dubbo://10.0.0.5:20880/org.example.Greeter?application=demo&version=1.0.0&weight=200
 * Mapping (docs/IMPORT.md): service = the interface, address = the URL's
 * host:port, version = its version parameter, weight = its weight
 * parameter (Dubbo's default 100), every parameter a tag plus "protocol";
 * disabled=true or enabled=false: maintenance. The node has no data.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

#define DUBBO_DEFAULT_WEIGHT 100
#define URL_MAX              8192

static int dubbo_parse(const struct fmt_node *node, json_t **out, char *why)
{
    *out = NULL;
    char *url = malloc(URL_MAX);
    char *iface = malloc(1024);
    if (!url || !iface) {
        free(url);
        free(iface);
        return -ENOMEM;
    }
    int rc = -EINVAL;
    struct fmt_doc d = {0};
    long n = fmt_url_decode(node->name, strlen(node->name), url, URL_MAX);
    if (n < 0) {
        snprintf(why, FMT_WHY_MAX,
                 n == -E2BIG    ? "provider URL too long"
                 : n == -EILSEQ ? "provider URL is not UTF-8 once decoded"
                                : "bad URL encoding in the node name");
        goto out;
    }
    if (fmt_url_decode(node->service_dir, strlen(node->service_dir), iface, 1024) < 0) {
        snprintf(why, FMT_WHY_MAX, "bad URL encoding (or not UTF-8) in the interface node's name");
        goto out;
    }
    char *sep = strstr(url, "://");
    if (!sep || sep == url) {
        snprintf(why, FMT_WHY_MAX, "not a URL (no \"scheme://\")");
        goto out;
    }
    *sep = '\0';
    const char *scheme = url;
    char *auth = sep + 3;
    char *query = strchr(auth, '?');
    if (query)
        *query++ = '\0';
    char *path = strchr(auth, '/');
    if (path)
        *path++ = '\0';
    char *at = strrchr(auth, '@'); /* user:password@ is never published */
    if (at)
        auth = at + 1;
    char host[256];
    long port = 0;
    if (strchr(auth, ':') == NULL || (auth[0] == '[' && !strstr(auth, "]:"))) {
        snprintf(why, FMT_WHY_MAX, "no port in the provider URL");
        goto out;
    }
    if (fmt_split_hostport(auth, host, sizeof(host), &port) < 0) {
        snprintf(why, FMT_WHY_MAX, "bad host:port in the provider URL");
        goto out;
    }
    const char *service = iface;
    rc = fmt_doc_begin(&d, node, NULL, service, host, port, why);
    if (rc < 0)
        goto out;
    rc = -ENOMEM;
    if (fmt_doc_set_weight(&d, DUBBO_DEFAULT_WEIGHT) < 0 || fmt_doc_tag(&d, "protocol", scheme) < 0)
        goto out;
    if (path && *path && strcmp(path, iface) != 0 && fmt_doc_tag(&d, "path", path) < 0)
        goto out;
    bool off = false;
    for (char *save = NULL, *kv = query ? strtok_r(query, "&", &save) : NULL; kv;
         kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        const char *val = "";
        if (eq) {
            *eq = '\0';
            val = eq + 1;
        }
        if (!*kv)
            continue;
        if (strcmp(kv, "weight") == 0) {
            char *end = NULL;
            long long w = strtoll(val, &end, 10);
            if (!*val || *end) {
                snprintf(why, FMT_WHY_MAX, "weight parameter '%.40s' is not an integer", val);
                rc = -EINVAL;
                goto out;
            }
            if (fmt_doc_set_weight(&d, w) < 0)
                goto out;
        }
        if (strcmp(kv, "version") == 0 && strlen(val) <= 64 &&
            fmt_doc_set_str(&d, "version", val) < 0)
            goto out;
        if ((strcmp(kv, "disabled") == 0 && strcmp(val, "true") == 0) ||
            (strcmp(kv, "enabled") == 0 && strcmp(val, "false") == 0))
            off = true;
        if (fmt_doc_tag(&d, kv, val) < 0)
            goto out;
    }
    if (off && fmt_doc_set_str(&d, "health", "maintenance") < 0)
        goto out;
    *out = fmt_doc_end(&d);
    rc = *out ? 0 : -ENOMEM;
out:
    if (rc < 0)
        fmt_doc_abort(&d);
    free(url);
    free(iface);
    return rc;
}

const struct fmt_ops fmt_dubbo = {
    .name = "dubbo",
    .summary =
        "Apache Dubbo interface-level: BASE/<interface>/providers/<URL-encoded provider URL>",
    .default_base = "/dubbo",
    .layout = FMT_LAYOUT_SERVICES,
    .instance_dir = "providers",
    .needs_data = false,
    .parse = dubbo_parse,
};
