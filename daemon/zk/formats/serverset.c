/* SPDX-License-Identifier: MIT */
/*
 * serverset.c — Finagle / Aurora ServerSets (format.h): BASE/member_<seq>,
 * ephemeral sequential, data a JSON ServiceInstance:
 *   {"serviceEndpoint":{"host":"10.0.0.7","port":31337},
 *    "additionalEndpoints":{"http":{"host":"10.0.0.7","port":31338}},
 *    "status":"ALIVE","shard":3}
 * Mapping (docs/IMPORT.md): service = the source's service= (default: the
 * base's last component), address = serviceEndpoint, each additional
 * endpoint an endpoint (by name) plus the tag "endpoint.<name>" =
 * host:port, "shard" and "status" tags; health from status: ALIVE passing,
 * WARNING warning, UNKNOWN or none unknown, anything else (STARTING,
 * STOPPING, STOPPED, DEAD) critical.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "format.h"

static bool serverset_is_instance(const char *name)
{
    return strncmp(name, "member_", 7) == 0 && name[7] != '\0';
}

/* {"host": string, "port": integer} */
static int endpoint_of(json_t *ep, const char **host, long *port)
{
    json_t *h = json_object_get(ep, "host"), *p = json_object_get(ep, "port");
    if (!json_is_object(ep) || !json_is_string(h) || !json_is_integer(p))
        return -EINVAL;
    json_int_t v = json_integer_value(p);
    if (v < 1 || v > 65535)
        return -EINVAL;
    *host = json_string_value(h);
    *port = (long)v;
    return 0;
}

static int serverset_parse(const struct fmt_node *node, json_t **out, char *why)
{
    *out = NULL;
    json_t *root = fmt_json_object(node, why);
    if (!root)
        return -EINVAL;
    int rc = -EINVAL;
    struct fmt_doc d = {0};
    const char *host = NULL;
    long port = 0;
    json_t *se = json_object_get(root, "serviceEndpoint");
    if (!se) {
        snprintf(why, FMT_WHY_MAX, "no serviceEndpoint");
        goto out;
    }
    if (endpoint_of(se, &host, &port) < 0) {
        snprintf(why, FMT_WHY_MAX, "serviceEndpoint wants {\"host\": string, \"port\": 1..65535}");
        goto out;
    }
    json_t *status = json_object_get(root, "status");
    json_t *shard = json_object_get(root, "shard");
    json_t *extra = json_object_get(root, "additionalEndpoints");
    if ((status && !json_is_string(status)) || (shard && !json_is_integer(shard)) ||
        (extra && !json_is_object(extra))) {
        snprintf(why, FMT_WHY_MAX,
                 "status must be a string, shard an integer, additionalEndpoints an object");
        goto out;
    }
    rc = fmt_doc_begin(&d, node, node->name, node->service_dir, host, port, why);
    if (rc < 0)
        goto out;
    rc = -ENOMEM;
    const char *st = status ? json_string_value(status) : NULL;
    const char *health = !st || strcmp(st, "UNKNOWN") == 0 ? "unknown"
                         : strcmp(st, "ALIVE") == 0        ? "passing"
                         : strcmp(st, "WARNING") == 0      ? "warning"
                                                           : "critical";
    if (fmt_doc_set_str(&d, "health", health) < 0 || (st && fmt_doc_tag(&d, "status", st) < 0))
        goto out;
    if (shard) {
        char s[32];
        snprintf(s, sizeof(s), "%lld", (long long)json_integer_value(shard));
        if (fmt_doc_tag(&d, "shard", s) < 0)
            goto out;
    }
    const char *name;
    json_t *ep;
    json_object_foreach(extra, name, ep)
    {
        const char *eh;
        long epp;
        if (endpoint_of(ep, &eh, &epp) < 0) {
            snprintf(why, FMT_WHY_MAX,
                     "additionalEndpoints.%.40s wants {\"host\": string, \"port\": 1..65535}",
                     name);
            rc = -EINVAL;
            goto out;
        }
        if (fmt_doc_named_endpoint(&d, name, eh, epp) < 0)
            goto out;
    }
    *out = fmt_doc_end(&d);
    rc = *out ? 0 : -ENOMEM;
out:
    if (rc < 0)
        fmt_doc_abort(&d);
    json_decref(root);
    return rc;
}

const struct fmt_ops fmt_serverset = {
    .name = "serverset",
    .summary = "Finagle/Aurora ServerSets: BASE/member_<seq>, JSON serviceEndpoint, "
               "additionalEndpoints, status, shard (BASE is one service)",
    .default_base = NULL,
    .layout = FMT_LAYOUT_SINGLE,
    .needs_data = true,
    .is_instance = serverset_is_instance,
    .parse = serverset_parse,
};
