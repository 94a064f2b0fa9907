/* SPDX-License-Identifier: MIT */
/*
 * test_fmt_curator — the Apache Curator x-discovery format
 * (daemon/zk/formats/curator.c): documents as Curator's
 * JsonInstanceSerializer writes them (the shapes test_curator_peer checks
 * against the real library) map to the instance model; discd's own
 * exports are skipped; malformed ones are refused with a reason; every
 * mapped document is accepted by instance_from_document.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "curator.h"
#include "format.h"
#include "instance.h"

static struct fmt_source src;

static void setup(void)
{
    char err[256];
    cr_assert_eq(fmt_source_parse("curator", &src, err, sizeof(err)), 0, "%s", err);
}

TestSuite(fmt_curator, .init = setup);

/* Parse data as node BASE/service/name; returns parse's result. */
static int parse_as(const char *service, const char *name, const char *data, json_t **doc,
                    char *why)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s/%s", src.base, service, name);
    struct fmt_node n = {.src = &src,
                         .path = path,
                         .service_dir = service,
                         .name = name,
                         .data = data,
                         .len = strlen(data),
                         .ctime_ms = 1700000000123};
    why[0] = '\0';
    return src.fmt->parse(&n, doc, why);
}

/* Parse, expect success, check the instance model takes it. */
static json_t *map_ok(const char *service, const char *name, const char *data)
{
    json_t *doc = NULL;
    char why[FMT_WHY_MAX];
    int rc = parse_as(service, name, data, &doc, why);
    cr_assert_eq(rc, 0, "parse failed: %s (%s)", why, data);
    cr_assert(doc, "no document for %s", data);
    struct instance *inst = NULL;
    struct instance_error err;
    cr_assert_eq(instance_from_document(doc, &inst, &err), 0, "instance model refused: %s %s",
                 err.field, err.message);
    instance_unref(inst);
    return doc;
}

static void expect_refused(const char *service, const char *name, const char *data,
                           const char *why_part)
{
    json_t *doc = NULL;
    char why[FMT_WHY_MAX];
    int rc = parse_as(service, name, data, &doc, why);
    cr_expect_eq(rc, -EINVAL, "accepted: %s", data);
    cr_expect_null(doc);
    cr_expect(strstr(why, why_part), "reason '%s' does not mention '%s' (%s)", why, why_part, data);
    json_decref(doc);
}

static const char *tag(json_t *doc, const char *key)
{
    return json_string_value(json_object_get(json_object_get(doc, "tags"), key));
}

static const char *str(json_t *doc, const char *key)
{
    return json_string_value(json_object_get(doc, key));
}

#define UUID1 "E769EDEF-fdb8-4ad6-abae-697537f0aa7c"

Test(fmt_curator, layout_and_defaults)
{
    cr_expect_str_eq(src.fmt->name, "curator");
    cr_expect_str_eq(src.base, "/services");
    cr_expect_eq(src.fmt->layout, FMT_LAYOUT_SERVICES);
    cr_expect(src.fmt->needs_data);
    cr_expect_str_eq(src.name, "curator");
}

Test(fmt_curator, full_document_maps_every_field)
{
    const char *data =
        "{\"name\":\"pay\",\"id\":\"" UUID1 "\",\"address\":\"10.0.0.1\",\"port\":8080,"
        "\"sslPort\":8443,\"payload\":{\"@class\":\"java.util.LinkedHashMap\",\"zone\":\"a\","
        "\"n\":3,\"on\":true,\"deep\":{\"x\":1}},\"registrationTimeUTC\":1796061799095,"
        "\"serviceType\":\"DYNAMIC\",\"uriSpec\":{\"parts\":[{\"value\":\"scheme\",\"variable\":"
        "true},{\"value\":\"://\",\"variable\":false},{\"value\":\"address\",\"variable\":true},"
        "{\"value\":\":\",\"variable\":false},{\"value\":\"port\",\"variable\":true}]},"
        "\"enabled\":true}";
    json_t *d = map_ok("pay", UUID1, data);
    cr_expect_str_eq(str(d, "id"), "e769edef-fdb8-4ad6-abae-697537f0aa7c", "UUID kept, lowercased");
    cr_expect_str_eq(str(d, "service"), "pay");
    cr_expect_str_eq(str(d, "address"), "10.0.0.1:8080");
    cr_expect_str_eq(str(d, "health"), "passing");
    cr_expect_eq(json_integer_value(json_object_get(d, "weight")), FMT_DEFAULT_WEIGHT);
    cr_expect_str_eq(tag(d, "source"), "curator");
    cr_expect_str_eq(tag(d, "zone"), "a");
    cr_expect_str_eq(tag(d, "n"), "3");
    cr_expect_str_eq(tag(d, "on"), "true");
    cr_expect_null(tag(d, "deep"), "nested payload objects are not tags");
    cr_expect_null(tag(d, "@class"));
    cr_expect_str_eq(tag(d, "payload_class"), "java.util.LinkedHashMap");
    cr_expect_str_eq(tag(d, "service_type"), "DYNAMIC");
    cr_expect_str_eq(tag(d, "uri_spec"), "{scheme}://{address}:{port}");
    cr_expect_str_eq(tag(d, "endpoint.ssl"), "10.0.0.1:8443");
    cr_expect_null(tag(d, "foreign_id"), "a UUID id is the id itself");
    json_t *eps = json_object_get(d, "endpoints");
    cr_expect_eq(json_array_size(eps), 1);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(eps, 0), "name")), "ssl");
    json_decref(d);
}

Test(fmt_curator, enabled_missing_means_true_false_means_maintenance)
{
    json_t *d = map_ok("pay", "old-1",
                       "{\"name\":\"pay\",\"id\":\"old-1\",\"address\":\"10.0.0.3\",\"port\":82,"
                       "\"sslPort\":null,\"payload\":null,\"registrationTimeUTC\":1,"
                       "\"serviceType\":\"DYNAMIC\",\"uriSpec\":null}");
    cr_expect_str_eq(str(d, "health"), "passing", "compatible mode writes no enabled: true");
    json_decref(d);
    d = map_ok("pay", "off",
               "{\"name\":\"pay\",\"id\":\"off\",\"address\":\"h\",\"port\":1,"
               "\"enabled\":false}");
    cr_expect_str_eq(str(d, "health"), "maintenance");
    json_decref(d);
}

Test(fmt_curator, foreign_ids_get_a_stable_uuid_and_stay_a_tag)
{
    const char *data = "{\"name\":\"pay\",\"id\":\"pay-2\",\"address\":\"10.0.0.2\",\"port\":81}";
    json_t *a = map_ok("pay", "pay-2", data), *b = map_ok("pay", "pay-2", data);
    cr_expect_eq(strlen(str(a, "id")), 36);
    cr_expect_str_eq(str(a, "id"), str(b, "id"), "the same node gets the same id every time");
    cr_expect_str_eq(tag(a, "foreign_id"), "pay-2");
    json_t *c = map_ok("cart", "pay-2",
                       "{\"name\":\"cart\",\"id\":\"pay-2\",\"address\":\"10.0.0.2\",\"port\":81}");
    cr_expect_str_neq(str(a, "id"), str(c, "id"), "another path, another id");
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

Test(fmt_curator, dynamic_sequential_nodes_use_the_node_name)
{
    json_t *a = map_ok("q", "w0000000003",
                       "{\"name\":\"q\",\"id\":\"w\",\"address\":\"h\",\"port\":5,"
                       "\"serviceType\":\"DYNAMIC_SEQUENTIAL\"}");
    json_t *b = map_ok("q", "w0000000004",
                       "{\"name\":\"q\",\"id\":\"w\",\"address\":\"h\",\"port\":5,"
                       "\"serviceType\":\"DYNAMIC_SEQUENTIAL\"}");
    cr_expect_str_eq(tag(a, "foreign_id"), "w0000000003");
    cr_expect_str_neq(str(a, "id"), str(b, "id"));
    cr_expect_str_eq(tag(a, "service_type"), "DYNAMIC_SEQUENTIAL");
    json_decref(a);
    json_decref(b);
}

Test(fmt_curator, spring_cloud_and_dubbo_payload_metadata_become_tags)
{
    json_t *d = map_ok(
        "orders", "i1",
        "{\"name\":\"orders\",\"id\":\"i1\",\"address\":\"10.1.1.1\",\"port\":8081,"
        "\"payload\":{\"@class\":\"org.springframework.cloud.zookeeper.discovery."
        "ZookeeperInstance\",\"id\":\"orders-1\",\"name\":\"orders\",\"metadata\":{\"version\":"
        "\"1.2\",\"instance_status\":\"UP\"}}}");
    cr_expect_str_eq(tag(d, "version"), "1.2");
    cr_expect_str_eq(tag(d, "instance_status"), "UP");
    cr_expect_str_eq(tag(d, "payload_class"),
                     "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance");
    json_decref(d);
    d = map_ok("s", "i2",
               "{\"name\":\"s\",\"id\":\"i2\",\"address\":\"h\",\"port\":1,"
               "\"payload\":\"plain text\"}");
    cr_expect_str_eq(tag(d, "payload"), "plain text");
    json_decref(d);
}

Test(fmt_curator, ssl_only_and_ipv6_addresses)
{
    json_t *d = map_ok("s", "i",
                       "{\"name\":\"s\",\"id\":\"i\",\"address\":\"10.0.0.4\","
                       "\"port\":null,\"sslPort\":443}");
    cr_expect_str_eq(str(d, "address"), "10.0.0.4:443");
    cr_expect_str_eq(tag(d, "endpoint.ssl"), "10.0.0.4:443");
    json_decref(d);
    d = map_ok("s", "i",
               "{\"name\":\"s\",\"id\":\"i\",\"address\":\"fd00::1\",\"port\":80,"
               "\"sslPort\":443}");
    cr_expect_str_eq(str(d, "address"), "[fd00::1]:80");
    cr_expect_str_eq(tag(d, "endpoint.ssl"), "[fd00::1]:443");
    json_decref(d);
}

Test(fmt_curator, discd_exports_are_skipped_not_counted_as_bad)
{
    struct curator_export e = {.service = "cpp",
                               .id = "0d3c8a1e-5b1f-4c1a-9f59-2a8f1e9b7c11",
                               .host = "10.0.0.7",
                               .port = 7000,
                               .registered_at_ms = 1700000000000,
                               .host_id = "host-a"};
    json_t *x = curator_export_doc(&e);
    cr_assert(x);
    cr_expect_str_eq(str(x, "name"), "cpp");
    cr_expect_str_eq(str(x, "id"), e.id);
    cr_expect_str_eq(str(x, "address"), "10.0.0.7");
    cr_expect_eq(json_integer_value(json_object_get(x, "port")), 7000);
    cr_expect_str_eq(str(x, "serviceType"), "DYNAMIC");
    cr_expect(json_is_true(json_object_get(x, "enabled")));
    cr_expect(json_is_null(json_object_get(x, "payload")));
    cr_expect_eq(json_integer_value(json_object_get(x, "registrationTimeUTC")), 1700000000000);
    char *s = json_dumps(x, JSON_COMPACT);
    json_t *doc = (json_t *)1;
    char why[FMT_WHY_MAX];
    cr_expect_eq(parse_as("cpp", e.id, s, &doc, why), 0);
    cr_expect_null(doc, "discd's own export is not imported again");
    free(s);
    json_decref(x);
}

Test(fmt_curator, malformed_documents_are_refused_with_a_reason)
{
    expect_refused("s", "i", "", "not JSON");
    expect_refused("s", "i", "{\"name\":", "not JSON");
    expect_refused("s", "i", "[1,2]", "not a JSON object");
    expect_refused("s", "i", "{\"name\":\"s\",\"name\":\"s\",\"id\":\"i\"}", "not JSON");
    expect_refused("s", "i", "{\"id\":\"i\",\"address\":\"h\",\"port\":1}", "name and id");
    expect_refused("s", "i", "{\"name\":\"s\",\"id\":5,\"address\":\"h\",\"port\":1}",
                   "name and id");
    expect_refused("s", "i", "{\"name\":\"other\",\"id\":\"i\",\"address\":\"h\",\"port\":1}",
                   "service node");
    expect_refused("s", "i", "{\"name\":\"s\",\"id\":\"j\",\"address\":\"h\",\"port\":1}",
                   "node's name");
    expect_refused("s", "i", "{\"name\":\"s\",\"id\":\"i\",\"port\":1}", "no address");
    expect_refused("s", "i", "{\"name\":\"s\",\"id\":\"i\",\"address\":\"h\"}", "no port");
    expect_refused("s", "i", "{\"name\":\"s\",\"id\":\"i\",\"address\":\"h\",\"port\":null}",
                   "no port");
    expect_refused("s", "i", "{\"name\":\"s\",\"id\":\"i\",\"address\":\"h\",\"port\":\"80\"}",
                   "port");
    expect_refused("s", "i", "{\"name\":\"s\",\"id\":\"i\",\"address\":\"h\",\"port\":70000}",
                   "port");
    expect_refused("s", "i", "{\"name\":\"s\",\"id\":\"i\",\"address\":\"h\",\"port\":0}", "port");
    expect_refused("s", "i",
                   "{\"name\":\"s\",\"id\":\"i\",\"address\":\"h\",\"port\":1,\"enabled\":\"no\"}",
                   "enabled");
    expect_refused(
        "s", "i",
        "{\"name\":\"s\",\"id\":\"i\",\"address\":\"h\",\"port\":1,\"serviceType\":\"LOCAL\"}",
        "serviceType");
    expect_refused("s", "i",
                   "{\"name\":\"s\",\"id\":\"i\",\"address\":\"h\",\"port\":1,\"uriSpec\":"
                   "{\"parts\":[{\"value\":3}]}}",
                   "uriSpec");
    expect_refused("s", "i", "{\"name\":\"s\",\"id\":\"i\",\"address\":\"\",\"port\":1}", "host");
}
