/* SPDX-License-Identifier: MIT */
/*
 * test_formats.c — the foreign registry formats (daemon/zk/formats/): each
 * parser on its format's documented examples and on malformed input, the
 * mapping to discd's instance model (every document must pass
 * instance_from_document), ids, tags and limits, and the `import` lines.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <uuid/uuid.h>

#include "format.h"
#include "instance.h"

static struct fmt_source source(const char *line)
{
    struct fmt_source s;
    char err[256];
    int rc = fmt_source_parse(line, &s, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s: %s", line, err);
    return s;
}

/* Parse one node; on success the document must be a valid instance. */
static int parse(const struct fmt_source *src, const char *dir, const char *name, const char *data,
                 json_t **doc, struct instance **inst, char *why)
{
    char path[2048];
    if (src->fmt->layout == FMT_LAYOUT_SINGLE)
        snprintf(path, sizeof(path), "%s/%s", src->base, name);
    else if (src->fmt->instance_dir)
        snprintf(path, sizeof(path), "%s/%s/%s/%s", src->base, dir, src->fmt->instance_dir, name);
    else
        snprintf(path, sizeof(path), "%s/%s/%s", strcmp(src->base, "/") ? src->base : "", dir,
                 name);
    struct fmt_node n = {
        .src = src,
        .path = path,
        .service_dir = src->fmt->layout == FMT_LAYOUT_SINGLE ? src->service : dir,
        .name = name,
        .data = data,
        .len = data ? strlen(data) : 0,
        .ctime_ms = 1700000000000,
    };
    why[0] = '\0';
    *doc = NULL;
    int rc = src->fmt->parse(&n, doc, why);
    if (rc == 0) {
        struct instance_error ierr = {0};
        int irc = instance_from_document(*doc, inst, &ierr);
        cr_assert_eq(irc, 0, "document refused by the instance model: %s at %s", ierr.message,
                     ierr.field);
        cr_assert_eq((*inst)->registered_at_ms, 1700000000000);
    }
    return rc;
}

static const char *tag(const struct instance *in, const char *key)
{
    for (uint16_t i = 0; i < in->n_tags; i++) {
        if (strcmp(in->tags[i].key, key) == 0)
            return in->tags[i].value;
    }
    return NULL;
}

/* Percent-encode s (every byte but unreserved ones), as Dubbo's registry does. */
static void encode(const char *s, char *out, size_t len)
{
    size_t o = 0;
    for (; *s && o + 4 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '-' || c == '_' || c == '*')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, len - o, "%%%02X", c);
    }
    out[o] = '\0';
}

#define IFACE "org.apache.dubbo.demo.DemoService"

Test(dubbo, documented_provider_url)
{
    struct fmt_source s = source("dubbo");
    cr_assert_str_eq(s.base, "/dubbo");
    char name[2048];
    encode("dubbo://192.168.1.100:20880/" IFACE "?anyhost=true&application=demo-provider"
           "&dubbo=2.0.2&interface=" IFACE "&methods=sayHello,sayHelloAsync&pid=2828"
           "&side=provider&timestamp=1600000000000",
           name, sizeof(name));
    json_t *doc;
    struct instance *in = NULL;
    char why[FMT_WHY_MAX];
    cr_assert_eq(parse(&s, IFACE, name, NULL, &doc, &in, why), 0, "%s", why);
    cr_assert_str_eq(in->service, IFACE);
    cr_assert_str_eq(in->address, "192.168.1.100:20880");
    cr_assert_str_eq(in->host, "192.168.1.100");
    cr_assert_eq(in->weight, 100, "Dubbo's default weight");
    cr_assert_str_eq(tag(in, "source"), "dubbo");
    cr_assert_str_eq(tag(in, "protocol"), "dubbo");
    cr_assert_str_eq(tag(in, "application"), "demo-provider");
    cr_assert_str_eq(tag(in, "methods"), "sayHello,sayHelloAsync");
    cr_assert_null(tag(in, "tags_dropped"));
    cr_assert_eq(in->health, DISC_HEALTH_PASSING);
    /* the id: a name-based UUID of the format and the path, the same every time */
    json_t *doc2;
    struct instance *in2 = NULL;
    cr_assert_eq(parse(&s, IFACE, name, NULL, &doc2, &in2, why), 0);
    cr_assert_str_eq(in->id, in2->id);
    cr_assert_eq(in->id[14], '5', "version 5 UUID: %s", in->id);
    json_decref(doc);
    json_decref(doc2);
    instance_unref(in);
    instance_unref(in2);
}

Test(dubbo, weight_version_group_and_disabled)
{
    struct fmt_source s = source("dubbo /dubbo-g1 name=dubbo-g1");
    char name[2048];
    encode("tri://[fe80::1]:50051/" IFACE "?group=g1&version=1.0.0&weight=200&disabled=true", name,
           sizeof(name));
    json_t *doc;
    struct instance *in = NULL;
    char why[FMT_WHY_MAX];
    cr_assert_eq(parse(&s, IFACE, name, NULL, &doc, &in, why), 0, "%s", why);
    cr_assert_str_eq(in->address, "[fe80::1]:50051");
    cr_assert_eq(in->weight, 200);
    cr_assert_str_eq(in->version, "1.0.0");
    cr_assert_str_eq(tag(in, "group"), "g1");
    cr_assert_str_eq(tag(in, "source"), "dubbo-g1");
    cr_assert_eq(in->health, DISC_HEALTH_MAINTENANCE);
    json_decref(doc);
    instance_unref(in);
    /* weights outside the instance model's 1..10000 are clamped */
    encode("dubbo://10.0.0.1:1/x?weight=0", name, sizeof(name));
    cr_assert_eq(parse(&s, IFACE, name, NULL, &doc, &in, why), 0, "%s", why);
    cr_assert_eq(in->weight, 1);
    json_decref(doc);
    instance_unref(in);
}

Test(dubbo, malformed_names_are_refused_with_a_reason)
{
    struct fmt_source s = source("dubbo");
    char name[2048];
    json_t *doc;
    struct instance *in = NULL;
    char why[FMT_WHY_MAX];
    cr_assert_eq(parse(&s, IFACE, "dubbo%3A%2F%2F1.2.3.4%3A20880%2Fx%ZZ", NULL, &doc, &in, why),
                 -EINVAL);
    cr_assert(strstr(why, "bad URL encoding"), "%s", why);
    cr_assert_eq(parse(&s, IFACE, "dubbo%3A%2F%2F1.2.3.4%3A2", NULL, &doc, &in, why), 0, "%s", why);
    json_decref(doc);
    instance_unref(in);
    cr_assert_eq(parse(&s, IFACE, "abc%4", NULL, &doc, &in, why), -EINVAL, "truncated escape");
    cr_assert_eq(parse(&s, IFACE, "a%00b", NULL, &doc, &in, why), -EINVAL, "encoded NUL");
    encode("dubbo://192.168.1.103/" IFACE "?side=provider", name, sizeof(name));
    cr_assert_eq(parse(&s, IFACE, name, NULL, &doc, &in, why), -EINVAL);
    cr_assert(strstr(why, "no port"), "%s", why);
    encode("dubbo://192.168.1.103:0/x", name, sizeof(name));
    cr_assert_eq(parse(&s, IFACE, name, NULL, &doc, &in, why), -EINVAL, "port 0");
    encode("dubbo://192.168.1.103:70000/x", name, sizeof(name));
    cr_assert_eq(parse(&s, IFACE, name, NULL, &doc, &in, why), -EINVAL, "port 70000");
    encode("192.168.1.103:20880/x", name, sizeof(name));
    cr_assert_eq(parse(&s, IFACE, name, NULL, &doc, &in, why), -EINVAL, "no scheme");
    encode("dubbo://1.2.3.4:20880/x?weight=heavy", name, sizeof(name));
    cr_assert_eq(parse(&s, IFACE, name, NULL, &doc, &in, why), -EINVAL);
    cr_assert(strstr(why, "weight"), "%s", why);
    /* escapes that decode to bytes which are not UTF-8 (found by fuzz_formats:
     * they once came back as -ENOMEM from jansson's refusal) */
    cr_assert_eq(parse(&s, IFACE, "tri%3A%2F%2F%5B%DA%DA%5D%3A6077%2Fx", NULL, &doc, &in, why),
                 -EINVAL);
    cr_assert(strstr(why, "not UTF-8"), "%s", why);
    cr_assert_null(doc);
    cr_assert_eq(parse(&s, IFACE, "dubbo%3A%2F%2Fh%3A1%2Fx%3Fk%3D%C3%A9", NULL, &doc, &in, why), 0,
                 "%s", why);
    cr_assert_str_eq(tag(in, "k"), "\xc3\xa9");
    json_decref(doc);
    instance_unref(in);
}

Test(dubbo, parameters_beyond_the_tag_limits_are_dropped_and_counted)
{
    struct fmt_source s = source("dubbo");
    char url[8192] = "dubbo://10.0.0.1:20880/x?";
    for (int i = 0; i < 40; i++) {
        size_t n = strlen(url);
        snprintf(url + n, sizeof(url) - n, "p%02d=v&", i);
    }
    size_t n = strlen(url); /* a value longer than 255 bytes */
    snprintf(url + n, sizeof(url) - n, "long=");
    memset(url + strlen(url), 'x', 300);
    char name[16384];
    encode(url, name, sizeof(name));
    json_t *doc;
    struct instance *in = NULL;
    char why[FMT_WHY_MAX];
    cr_assert_eq(parse(&s, "x", name, NULL, &doc, &in, why), 0, "%s", why);
    cr_assert_eq(in->n_tags, 32, "30 foreign tags + source + tags_dropped: %u", in->n_tags);
    /* 41 parameters + protocol = 42 tags offered: protocol and 29 parameters fit, 11 more
     * and the over-long value are dropped */
    cr_assert_str_eq(tag(in, "tags_dropped"), "12");
    json_decref(doc);
    instance_unref(in);
}

#define SS_BASE "/aurora/www-data/prod/hello"

Test(serverset, documented_member)
{
    struct fmt_source s = source("serverset " SS_BASE);
    cr_assert_str_eq(s.service, "hello", "named after the base's last component");
    cr_assert(s.fmt->is_instance("member_0000000007"));
    cr_assert_not(s.fmt->is_instance("leader"));
    cr_assert_not(s.fmt->is_instance("member_"));
    json_t *doc;
    struct instance *in = NULL;
    char why[FMT_WHY_MAX];
    const char *data =
        "{\"serviceEndpoint\":{\"host\":\"10.1.2.3\",\"port\":31181},"
        "\"additionalEndpoints\":{\"aurora\":{\"host\":\"10.1.2.3\",\"port\":31181},"
        "\"http\":{\"host\":\"10.1.2.3\",\"port\":31182}},\"status\":\"ALIVE\",\"shard\":0}";
    cr_assert_eq(parse(&s, NULL, "member_0000000000", data, &doc, &in, why), 0, "%s", why);
    cr_assert_str_eq(in->service, "hello");
    cr_assert_str_eq(in->address, "10.1.2.3:31181");
    cr_assert_eq(in->health, DISC_HEALTH_PASSING);
    cr_assert_eq(in->weight, FMT_DEFAULT_WEIGHT);
    cr_assert_str_eq(tag(in, "shard"), "0");
    cr_assert_str_eq(tag(in, "status"), "ALIVE");
    cr_assert_str_eq(tag(in, "foreign_id"), "member_0000000000");
    cr_assert_str_eq(tag(in, "endpoint.http"), "10.1.2.3:31182");
    cr_assert_eq(in->n_endpoints, 2);
    json_decref(doc);
    instance_unref(in);
}

Test(serverset, status_maps_to_health)
{
    struct fmt_source s = source("serverset /ss service=web");
    cr_assert_str_eq(s.service, "web");
    static const struct {
        const char *status;
        uint8_t health;
    } cases[] = {
        {"\"ALIVE\"", DISC_HEALTH_PASSING},     {"\"WARNING\"", DISC_HEALTH_WARNING},
        {"\"STARTING\"", DISC_HEALTH_CRITICAL}, {"\"STOPPING\"", DISC_HEALTH_CRITICAL},
        {"\"STOPPED\"", DISC_HEALTH_CRITICAL},  {"\"DEAD\"", DISC_HEALTH_CRITICAL},
        {"\"UNKNOWN\"", DISC_HEALTH_UNKNOWN},   {NULL, DISC_HEALTH_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char data[256];
        snprintf(data, sizeof(data), "{\"serviceEndpoint\":{\"host\":\"h1\",\"port\":80}%s%s}",
                 cases[i].status ? ",\"status\":" : "", cases[i].status ? cases[i].status : "");
        json_t *doc;
        struct instance *in = NULL;
        char why[FMT_WHY_MAX];
        cr_assert_eq(parse(&s, NULL, "member_1", data, &doc, &in, why), 0, "%s", why);
        cr_assert_eq(in->health, cases[i].health, "%s", data);
        json_decref(doc);
        instance_unref(in);
    }
}

Test(serverset, malformed_members)
{
    struct fmt_source s = source("serverset /ss");
    static const char *bad[] = {
        "",
        "{\"serviceEndpoint\": {\"host\": \"10.1.2.5\", \"port\": 3",
        "[]",
        "{}",
        "{\"serviceEndpoint\":{\"host\":\"h\"}}",
        "{\"serviceEndpoint\":{\"host\":\"h\",\"port\":0}}",
        "{\"serviceEndpoint\":{\"host\":\"h\",\"port\":65536}}",
        "{\"serviceEndpoint\":{\"host\":7,\"port\":80}}",
        "{\"serviceEndpoint\":{\"host\":\"h\",\"port\":80},\"status\":1}",
        "{\"serviceEndpoint\":{\"host\":\"h\",\"port\":80},\"shard\":\"x\"}",
        "{\"serviceEndpoint\":{\"host\":\"h\",\"port\":80},\"additionalEndpoints\":{\"a\":1}}",
        "{\"serviceEndpoint\":{\"host\":\"h\",\"port\":80},\"serviceEndpoint\":{}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *doc;
        struct instance *in = NULL;
        char why[FMT_WHY_MAX];
        cr_assert_eq(parse(&s, NULL, "member_1", bad[i], &doc, &in, why), -EINVAL, "%s", bad[i]);
        cr_assert(why[0], "a reason for %s", bad[i]);
    }
}

Test(kitex, documented_node)
{
    struct fmt_source s = source("kitex");
    cr_assert_str_eq(s.base, "/");
    cr_assert(s.fmt->is_instance("10.0.0.9:8888"));
    cr_assert(s.fmt->is_instance("[::1]:8888"));   /* Hertz: net.JoinHostPort */
    cr_assert(s.fmt->is_instance("fe80::1:8888")); /* Kitex: host + ":" + port */
    cr_assert_not(s.fmt->is_instance("fe80::zz:8888"));
    cr_assert_not(s.fmt->is_instance("a:b:8888"));
    cr_assert_not(s.fmt->is_instance("10.0.0.12"));
    cr_assert_not(s.fmt->is_instance("10.0.0.12:http"));
    cr_assert_not(s.fmt->is_service("zookeeper"));
    json_t *doc;
    struct instance *in = NULL;
    char why[FMT_WHY_MAX];
    cr_assert_eq(parse(&s, "echo", "10.0.0.9:8888", "{\"Weight\":30,\"Tags\":{\"idc\":\"hl\"}}",
                       &doc, &in, why),
                 0, "%s", why);
    cr_assert_str_eq(in->service, "echo");
    cr_assert_str_eq(in->address, "10.0.0.9:8888");
    cr_assert_eq(in->weight, 30);
    cr_assert_str_eq(tag(in, "idc"), "hl");
    cr_assert_str_eq(tag(in, "foreign_id"), "10.0.0.9:8888");
    cr_assert_str_eq(tag(in, "source"), "kitex");
    json_decref(doc);
    instance_unref(in);
    cr_assert_eq(parse(&s, "echo", "fe80::1:8888", "{}", &doc, &in, why), 0, "%s", why);
    cr_assert_str_eq(in->address, "[fe80::1]:8888");
    json_decref(doc);
    instance_unref(in);
    /* no data, or Weight 0: Kitex's default weight */
    cr_assert_eq(parse(&s, "echo", "10.0.0.9:8888", "", &doc, &in, why), 0, "%s", why);
    cr_assert_eq(in->weight, 10);
    json_decref(doc);
    instance_unref(in);
    cr_assert_eq(parse(&s, "echo", "10.0.0.9:8888", "{\"Weight\":0,\"Tags\":null}", &doc, &in, why),
                 0, "%s", why);
    cr_assert_eq(in->weight, 10);
    json_decref(doc);
    instance_unref(in);
}

Test(kitex, malformed_nodes)
{
    struct fmt_source s = source("kitex /kx");
    static const char *bad[] = {"{",
                                "[1]",
                                "{\"Weight\":\"ten\"}",
                                "{\"Tags\":[]}",
                                "{\"Tags\":{\"a\":1}}",
                                "{\"Weight\":1,\"Weight\":2}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *doc;
        struct instance *in = NULL;
        char why[FMT_WHY_MAX];
        cr_assert_eq(parse(&s, "echo", "10.0.0.9:8888", bad[i], &doc, &in, why), -EINVAL, "%s",
                     bad[i]);
        cr_assert(why[0]);
    }
    json_t *doc;
    struct instance *in = NULL;
    char why[FMT_WHY_MAX];
    cr_assert_eq(parse(&s, "echo", "10.0.0.12", "{}", &doc, &in, why), -EINVAL, "no port");
    /* a node name whose host part is not UTF-8 (found by fuzz_formats) */
    cr_assert_eq(parse(&s, "echo", "h\xe5\xe5st:8", "{}", &doc, &in, why), -EINVAL);
    cr_assert(strstr(why, "host is not UTF-8"), "%s", why);
    cr_assert_null(doc);
}

Test(builder, a_foreign_uuid_is_kept_lowercased)
{
    struct fmt_source s = source("kitex /kx");
    struct fmt_node n = {.src = &s, .path = "/kx/a/b", .service_dir = "a", .name = "b"};
    struct fmt_doc d;
    char why[FMT_WHY_MAX];
    cr_assert_eq(fmt_doc_begin(&d, &n, "0F8E1D2C-3B4A-4958-8776-655443322110", "svc", "h", 1, why),
                 0);
    json_t *doc = fmt_doc_end(&d);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "id")),
                     "0f8e1d2c-3b4a-4958-8776-655443322110");
    cr_assert_null(json_object_get(json_object_get(doc, "tags"), "foreign_id"));
    json_decref(doc);
    /* a non-UUID foreign id: a name-based id, the foreign one kept as a tag */
    cr_assert_eq(fmt_doc_begin(&d, &n, "worker-7", "svc", "h", 1, why), 0);
    doc = fmt_doc_end(&d);
    uuid_t ns, u;
    char want[37];
    uuid_parse("6b2f0e51-934c-4d1a-8e07-5d3bc2917a44", ns);
    uuid_generate_sha1(u, ns, "kitex:/kx/a/b", strlen("kitex:/kx/a/b"));
    uuid_unparse_lower(u, want);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "id")), want);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "tags"), "foreign_id")),
                     "worker-7");
    json_decref(doc);
    /* a foreign "source" tag cannot replace the source's */
    cr_assert_eq(fmt_doc_begin(&d, &n, NULL, "svc", "h", 1, why), 0);
    cr_assert_eq(fmt_doc_tag(&d, "source", "forged"), 0);
    doc = fmt_doc_end(&d);
    json_t *tags = json_object_get(doc, "tags");
    cr_assert_str_eq(json_string_value(json_object_get(tags, "source")), "kitex");
    cr_assert_str_eq(json_string_value(json_object_get(tags, "tags_dropped")), "1");
    json_decref(doc);
}

Test(config, import_lines)
{
    struct fmt_source s;
    char err[256];
    cr_assert_eq(fmt_source_parse("nacos /x", &s, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "unknown format 'nacos'") && strstr(err, "dubbo"), "%s", err);
    cr_assert_eq(fmt_source_parse("serverset", &s, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "needs a base path"), "%s", err);
    cr_assert_eq(fmt_source_parse("dubbo relative", &s, err, sizeof(err)), -EINVAL);
    cr_assert_eq(fmt_source_parse("dubbo /a/", &s, err, sizeof(err)), -EINVAL);
    cr_assert_eq(fmt_source_parse("dubbo /a/../b", &s, err, sizeof(err)), -EINVAL);
    cr_assert_eq(fmt_source_parse("dubbo /a /b", &s, err, sizeof(err)), -EINVAL);
    cr_assert_eq(fmt_source_parse("dubbo name=bad/name", &s, err, sizeof(err)), -EINVAL);
    cr_assert_eq(fmt_source_parse("dubbo service=x", &s, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "service="), "%s", err);
    cr_assert_eq(fmt_source_parse("serverset /", &s, err, sizeof(err)), -EINVAL, "no name from /");
    cr_assert_eq(fmt_source_parse("kitex / color=red", &s, err, sizeof(err)), -EINVAL);
    struct fmt_source two[2] = {source("dubbo"), source("dubbo /other")};
    cr_assert_eq(fmt_sources_check(two, 2, "/discshm", err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "two sources named 'dubbo'"), "%s", err);
    two[1] = source("dubbo /other name=d2");
    cr_assert_eq(fmt_sources_check(two, 2, "/discshm", err, sizeof(err)), 0, "%s", err);
    two[1] = source("kitex /discshm/x");
    cr_assert_eq(fmt_sources_check(two, 2, "/discshm", err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "inside discd's own zk-root"), "%s", err);
    two[1] = source("serverset /disc service=s");
    cr_assert_eq(fmt_sources_check(two, 2, "/disc/root", err, sizeof(err)), -EINVAL);
}

Test(parsers, url_decode_and_hostport)
{
    char out[16];
    cr_assert_eq(fmt_url_decode("a%2Fb+c", 7, out, sizeof(out)), 5);
    cr_assert_str_eq(out, "a/b+c");
    cr_assert_eq(fmt_url_decode("%", 1, out, sizeof(out)), -EINVAL);
    cr_assert_eq(fmt_url_decode("%g0", 3, out, sizeof(out)), -EINVAL);
    cr_assert_eq(fmt_url_decode("0123456789abcdef", 16, out, sizeof(out)), -E2BIG);
    cr_assert_eq(fmt_url_decode("%C3%A9", 6, out, sizeof(out)), 2, "U+00E9");
    cr_assert_eq(fmt_url_decode("%F0%9F%98%80", 12, out, sizeof(out)), 4, "U+1F600");
    cr_assert_eq(fmt_url_decode("%DA", 3, out, sizeof(out)), -EILSEQ, "lone lead byte");
    cr_assert_eq(fmt_url_decode("%80", 3, out, sizeof(out)), -EILSEQ, "lone continuation");
    cr_assert_eq(fmt_url_decode("%C0%AF", 6, out, sizeof(out)), -EILSEQ, "overlong '/'");
    cr_assert_eq(fmt_url_decode("%ED%A0%80", 9, out, sizeof(out)), -EILSEQ, "surrogate");
    cr_assert_eq(fmt_url_decode("%F4%90%80%80", 12, out, sizeof(out)), -EILSEQ, "> U+10FFFF");
    char host[64];
    long port;
    cr_assert_eq(fmt_split_hostport("[::1]:80", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 80);
    cr_assert_eq(fmt_split_hostport("::1:80", host, sizeof(host), &port), -EINVAL);
    cr_assert_eq(fmt_split_hostport(":80", host, sizeof(host), &port), -EINVAL);
    cr_assert_eq(fmt_split_hostport("h:", host, sizeof(host), &port), -EINVAL);
    cr_assert_eq(fmt_split_hostport("h:123456", host, sizeof(host), &port), -EINVAL);
    cr_assert_eq(fmt_split_hostport("h:-1", host, sizeof(host), &port), -EINVAL);
}
