/* SPDX-License-Identifier: MIT */
/*
 * kitex.c — CloudWeGo Kitex / Hertz ZooKeeper registries (format.h):
 * BASE/<service>/<ip>:<port>, ephemeral, data JSON {"Weight":10,"Tags":{...}}.
 * Their registries write under the connection's root, so the default BASE
 * is "/" (the "zookeeper" node, discd's own zk-root and other sources'
 * bases are not taken for services there).
 * Mapping (docs/IMPORT.md): service = the service node's name, address =
 * the node's name (IPv6: Hertz writes "[v6]:port", Kitex "v6:port"), weight = Weight (missing or 0:
 * 10, Kitex's default), every Tags entry a tag. Empty data means no weight and no tags.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "format.h"

/* "<ip>:<port>": Hertz writes IPv6 as "[v6]:port" (net.JoinHostPort), Kitex
 * as "v6:port" (host + ":" + port); both are taken. */
static int node_hostport(const char *name, char *host, size_t len, long *port)
{
    if (fmt_split_hostport(name, host, len, port) == 0)
        return 0;
    const char *colon = strrchr(name, ':');
    if (!colon || colon == name || name[0] == '[' || (size_t)(colon - name) >= len)
        return -EINVAL;
    char bracketed[300];
    snprintf(bracketed, sizeof(bracketed), "[%.*s]%s", (int)(colon - name), name, colon);
    struct in6_addr a;
    if (fmt_split_hostport(bracketed, host, len, port) < 0 || inet_pton(AF_INET6, host, &a) != 1)
        return -EINVAL;
    return 0;
}

static bool kitex_is_instance(const char *name)
{
    char host[256];
    long port;
    return node_hostport(name, host, sizeof(host), &port) == 0;
}

static bool kitex_is_service(const char *name)
{
    return strcmp(name, "zookeeper") != 0;
}

static int kitex_parse(const struct fmt_node *node, json_t **out, char *why)
{
    *out = NULL;
    char host[256];
    long port;
    if (node_hostport(node->name, host, sizeof(host), &port) < 0) {
        snprintf(why, FMT_WHY_MAX, "node name is not <ip>:<port>");
        return -EINVAL;
    }
    json_t *root = NULL; /* no data: weight and tags default */
    if (node->len > 0 && !(root = fmt_json_object(node, why)))
        return -EINVAL;
    int rc = -EINVAL;
    struct fmt_doc d = {0};
    json_t *w = root ? json_object_get(root, "Weight") : NULL;
    json_t *tags = root ? json_object_get(root, "Tags") : NULL;
    if ((w && !json_is_integer(w)) || (tags && !json_is_object(tags) && !json_is_null(tags))) {
        snprintf(why, FMT_WHY_MAX, "Weight must be an integer and Tags an object");
        goto out;
    }
    rc = fmt_doc_begin(&d, node, node->name, node->service_dir, host, port, why);
    if (rc < 0)
        goto out;
    rc = -ENOMEM;
    if (w && json_integer_value(w) > 0 && fmt_doc_set_weight(&d, json_integer_value(w)) < 0)
        goto out;
    const char *k;
    json_t *v;
    json_object_foreach(json_is_object(tags) ? tags : NULL, k, v)
    {
        if (!json_is_string(v)) {
            snprintf(why, FMT_WHY_MAX, "Tags.%.60s is not a string", k);
            rc = -EINVAL;
            goto out;
        }
        if (fmt_doc_tag(&d, k, json_string_value(v)) < 0)
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

const struct fmt_ops fmt_kitex = {
    .name = "kitex",
    .summary = "CloudWeGo Kitex/Hertz: BASE/<service>/<ip>:<port>, JSON {\"Weight\",\"Tags\"}",
    .default_base = "/",
    .layout = FMT_LAYOUT_SERVICES,
    .needs_data = true,
    .is_instance = kitex_is_instance,
    .is_service = kitex_is_service,
    .parse = kitex_parse,
};
