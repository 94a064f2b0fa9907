/* SPDX-License-Identifier: MIT */
/*
 * curator.c — Apache Curator x-discovery (format.h; also what Spring Cloud
 * Zookeeper and Dubbo 3's application-level registry write):
 * BASE/<service name>/<instance id>, ephemeral for DYNAMIC, data the JSON
 * of Curator's ServiceInstance as its JsonInstanceSerializer writes it:
 *   {"name":"pay","id":"<id>","address":"10.0.0.1","port":8080,
 *    "sslPort":8443,"payload":{"@class":"java.util.LinkedHashMap","zone":"a"},
 *    "registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC",
 *    "uriSpec":{"parts":[{"value":"scheme","variable":true},...]},
 *    "enabled":true}
 * ("enabled" is absent in Curator's default, compatible mode: it means true.)
 *
 * Mapping (docs/IMPORT.md): service = name (it must be the service node's
 * name), id = the Curator id if it is a UUID, else one derived from the
 * node's path (the Curator id kept as the tag "foreign_id"); address =
 * address:port (address:sslPort if port is null); sslPort = the endpoint
 * "ssl" and the tag "endpoint.ssl" = address:sslPort; enabled false =
 * health maintenance (taken out of rotation on purpose), else passing;
 * serviceType, the uriSpec template and the payload's Java class as tags
 * (service_type, uri_spec, payload_class); the payload's string, number and
 * boolean members as tags under their own names, and those of its
 * "metadata" object (Spring Cloud's and Dubbo's ZookeeperInstance); a
 * payload that is a string or number is the tag "payload".
 *
 * Documents discd exported itself (curator.h: they carry the member
 * CURATOR_EXPORT_MARK) are not imported: parse returns 0 with no document
 * and the engine ignores the node. The native tree already carries those
 * instances to every discd of the region, so an instance never appears
 * twice.
 *
 * The export side (curator_export_doc) writes the same form for discd's
 * local instances.
 */
#include "curator.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "format.h"

/* The node name of an instance registered as DYNAMIC_SEQUENTIAL is its id
 * followed by ZooKeeper's 10-digit sequence number. */
static bool is_id_plus_sequence(const char *name, const char *id)
{
    size_t n = strlen(id);
    if (strncmp(name, id, n) != 0 || strlen(name) != n + 10)
        return false;
    for (size_t i = n; i < n + 10; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
    }
    return true;
}

/* port / sslPort: absent or null (0), or an integer 1..65535. */
static int port_of(json_t *v, long *port)
{
    *port = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
        return -EINVAL;
    *port = (long)json_integer_value(v);
    return 0;
}

/* The template UriSpec's parts stand for: variables as {name}. -EINVAL if
 * it is not {"parts":[{"value":string,"variable":bool},...]}; -E2BIG if the
 * template is longer than out. */
static int uri_spec_of(json_t *spec, char *out, size_t len)
{
    json_t *parts = json_object_get(spec, "parts");
    if (!json_is_object(spec) || !json_is_array(parts))
        return -EINVAL;
    size_t k = 0;
    out[0] = '\0';
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p)
    {
        json_t *val = json_object_get(p, "value"), *var = json_object_get(p, "variable");
        if (!json_is_string(val) || (var && !json_is_boolean(var)))
            return -EINVAL;
        bool is_var = json_is_true(var);
        int n = snprintf(out + k, len - k, is_var ? "{%s}" : "%s", json_string_value(val));
        if (n < 0 || (size_t)n >= len - k)
            return -E2BIG;
        k += (size_t)n;
    }
    return 0;
}

/* A scalar as a tag value; false for objects, arrays and null. */
static bool scalar_text(json_t *v, char *buf, size_t len, const char **out)
{
    if (json_is_string(v)) {
        *out = json_string_value(v);
    } else if (json_is_integer(v)) {
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        *out = buf;
    } else if (json_is_real(v)) {
        snprintf(buf, len, "%.17g", json_real_value(v));
        *out = buf;
    } else if (json_is_boolean(v)) {
        *out = json_is_true(v) ? "true" : "false";
    } else {
        return false;
    }
    return true;
}

/* The scalar members of obj as tags (keys as they are). */
static int tags_of_members(struct fmt_doc *d, json_t *obj)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        char num[64];
        const char *text;
        if (strcmp(key, "@class") != 0 && scalar_text(v, num, sizeof(num), &text) &&
            fmt_doc_tag(d, key, text) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int payload_tags(struct fmt_doc *d, json_t *payload)
{
    char num[64];
    const char *text;
    if (json_is_object(payload)) {
        if (tags_of_members(d, payload) < 0)
            return -ENOMEM;
        json_t *meta = json_object_get(payload, "metadata");
        if (json_is_object(meta) && tags_of_members(d, meta) < 0)
            return -ENOMEM;
        json_t *cls = json_object_get(payload, "@class");
        if (json_is_string(cls) && fmt_doc_tag(d, "payload_class", json_string_value(cls)) < 0)
            return -ENOMEM;
    } else if (scalar_text(payload, num, sizeof(num), &text)) {
        if (fmt_doc_tag(d, "payload", text) < 0)
            return -ENOMEM;
    }
    return 0;
}

static const char *const service_types[] = {"DYNAMIC", "STATIC", "PERMANENT", "DYNAMIC_SEQUENTIAL"};

static bool known_service_type(const char *s)
{
    for (size_t i = 0; i < sizeof(service_types) / sizeof(service_types[0]); i++) {
        if (strcmp(s, service_types[i]) == 0)
            return true;
    }
    return false;
}

static int curator_parse(const struct fmt_node *node, json_t **out, char *why)
{
    *out = NULL;
    json_t *root = fmt_json_object(node, why);
    if (!root)
        return -EINVAL;
    int rc = -EINVAL;
    struct fmt_doc d = {0};
    bool begun = false;
    if (json_object_get(root, CURATOR_EXPORT_MARK)) {
        rc = 0; /* discd's own export: the native tree carries it */
        goto out;
    }
    json_t *name = json_object_get(root, "name"), *id = json_object_get(root, "id");
    json_t *address = json_object_get(root, "address");
    json_t *enabled = json_object_get(root, "enabled"),
           *stype = json_object_get(root, "serviceType");
    json_t *spec = json_object_get(root, "uriSpec");
    if (!json_is_string(name) || !json_is_string(id) || !json_string_value(id)[0]) {
        snprintf(why, FMT_WHY_MAX, "name and id must be strings");
        goto out;
    }
    if (strcmp(json_string_value(name), node->service_dir) != 0) {
        snprintf(why, FMT_WHY_MAX, "name '%.40s' is not its service node '%.40s'",
                 json_string_value(name), node->service_dir);
        goto out;
    }
    const char *fid = json_string_value(id);
    if (strcmp(node->name, fid) != 0) {
        if (!is_id_plus_sequence(node->name, fid)) {
            snprintf(why, FMT_WHY_MAX, "id '%.60s' is not the node's name", fid);
            goto out;
        }
        fid = node->name; /* DYNAMIC_SEQUENTIAL: ids may repeat, node names do not */
    }
    if (!json_is_string(address)) {
        snprintf(why, FMT_WHY_MAX, "no address");
        goto out;
    }
    long port, ssl;
    if (port_of(json_object_get(root, "port"), &port) < 0 ||
        port_of(json_object_get(root, "sslPort"), &ssl) < 0) {
        snprintf(why, FMT_WHY_MAX, "port and sslPort must be null or 1..65535");
        goto out;
    }
    if (!port && !ssl) {
        snprintf(why, FMT_WHY_MAX, "no port (port and sslPort are null)");
        goto out;
    }
    if (enabled && !json_is_boolean(enabled)) {
        snprintf(why, FMT_WHY_MAX, "enabled must be true or false");
        goto out;
    }
    if (stype && !json_is_null(stype) &&
        (!json_is_string(stype) || !known_service_type(json_string_value(stype)))) {
        snprintf(why, FMT_WHY_MAX,
                 "serviceType must be DYNAMIC, STATIC, PERMANENT or "
                 "DYNAMIC_SEQUENTIAL");
        goto out;
    }
    char uri[256] = "";
    if (spec && !json_is_null(spec) && uri_spec_of(spec, uri, sizeof(uri)) == -EINVAL) {
        snprintf(why, FMT_WHY_MAX, "uriSpec must be {\"parts\":[{\"value\":..,\"variable\":..}]}");
        goto out;
    }
    const char *host = json_string_value(address);
    rc = fmt_doc_begin(&d, node, fid, node->service_dir, host, port ? port : ssl, why);
    if (rc < 0)
        goto out;
    begun = true;
    rc = -ENOMEM;
    /* The payload first: the format's own tags below win over its keys. */
    if (payload_tags(&d, json_object_get(root, "payload")) < 0)
        goto out;
    if (fmt_doc_set_str(&d, "health", json_is_false(enabled) ? "maintenance" : "passing") < 0)
        goto out;
    if (json_is_string(stype) && fmt_doc_tag(&d, "service_type", json_string_value(stype)) < 0)
        goto out;
    if (uri[0] && fmt_doc_tag(&d, "uri_spec", uri) < 0)
        goto out;
    if (ssl && fmt_doc_named_endpoint(&d, "ssl", host, ssl) < 0)
        goto out;
    *out = fmt_doc_end(&d);
    begun = false;
    rc = *out ? 0 : -ENOMEM;
out:
    if (begun)
        fmt_doc_abort(&d);
    json_decref(root);
    return rc;
}

json_t *curator_export_doc(const struct curator_export *e)
{
    json_t *mark = json_pack("{s:s, s:s}", "host", e->host_id, "service", e->service);
    if (!mark)
        return NULL;
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:i, s:n, s:n, s:I, s:s, s:n, s:b, s:o}", "name", e->service,
                  "id", e->id, "address", e->host, "port", (int)e->port, "sslPort", "payload",
                  "registrationTimeUTC", (json_int_t)e->registered_at_ms, "serviceType", "DYNAMIC",
                  "uriSpec", "enabled", 1, CURATOR_EXPORT_MARK, mark);
    return doc;
}

const struct fmt_ops fmt_curator = {
    .name = "curator",
    .summary = "Apache Curator x-discovery (also Spring Cloud Zookeeper, Dubbo 3 "
               "application-level): BASE/<service>/<id>, JSON ServiceInstance",
    .default_base = "/services",
    .layout = FMT_LAYOUT_SERVICES,
    .instance_dir = NULL,
    .needs_data = true,
    .is_instance = NULL,
    .is_service = NULL,
    .parse = curator_parse,
};
