/* SPDX-License-Identifier: MIT */
/*
 * gen_seeds.c — writes the fuzzers' seed corpora from real artefacts:
 * file-cache images exported by the segment writer (fuzz_segment,
 * fuzz_cache_load), instance documents as discd writes them to ZooKeeper
 * (fuzz_instance_doc), the request lines of docs/PROTOCOL.md
 * (fuzz_control), and aggregate snapshots of those documents as zk_sync
 * writes them (fuzz_zk_snapshot: a flags byte, then the chunks). Run by scripts/fuzz-seeds.sh;
 * usage: gen_seeds OUT_DIR.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "instance.h"
#include "log.h"
#include "segwriter.h"
#include "zk_snapshot.h"

static const char *out;

static void put_file(const char *dir, const char *name, const void *data, size_t len)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", out, dir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/%s/%s", out, dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        perror(p);
        exit(1);
    }
    fclose(f);
}

static void copy_file(const char *from, const char *dir, const char *name)
{
    FILE *f = fopen(from, "rb");
    if (!f) {
        perror(from);
        exit(1);
    }
    static char b[1 << 22];
    size_t n = fread(b, 1, sizeof(b), f);
    fclose(f);
    put_file(dir, name, b, n);
}

/* Register requests: the protocol's example and a few shapes besides. */
static const char *requests[] = {
    ("{\"op\":\"register\",\"seq\":1,\"instance\":{\"service\":\"payments\",\"version\":\"2.3.1\","
     "\"address\":\"10.0.0.7:8443\",\"weight\":20,\"tags\":{\"env\":\"prod\"},\"endpoints\":[{"
     "\"name\":\"charge\",\"request\":\"ChargeReq\",\"response\":\"ChargeResp\",\"mean_us\":900,"
     "\"p95_us\":4000}]},\"check\":{\"type\":\"http\",\"path\":\"/"
     "healthz\",\"interval_ms\":1000}}"),
    "{\"op\":\"register\",\"instance\":{\"service\":\"orders\",\"address\":\"[::1]:80\"}}",
    ("{\"op\":\"register\",\"instance\":{\"service\":\"sock\",\"network\":\"unix\",\"address\":"
     "\"/run/sock\",\"tags\":{\"zone\":\"a\",\"k\":\"\"}},\"check\":{\"type\":\"ttl\",\"ttl_ms\":"
     "5000}}"),
    ("{\"op\":\"register\",\"instance\":{\"service\":\"tcpchk\",\"address\":\"127.0.0.1:9\"},"
     "\"check\":{\"type\":\"tcp\",\"interval_ms\":500,\"timeout_ms\":100,\"misses\":2}}"),
    "{\"op\":\"deregister\",\"id\":\"0b7c6f1e-8a53-4d0f-9a52-4d6b1d1f7c20\"}",
    "{\"op\":\"pass\",\"id\":\"0b7c6f1e-8a53-4d0f-9a52-4d6b1d1f7c20\"}",
    "{\"op\":\"pong\",\"seq\":12}",
    "{\"op\":\"query\",\"service\":\"payments\"}",
    "{\"op\":\"services\"}",
    "{\"op\":\"endpoints\"}",
    "{\"op\":\"status\"}",
    "{\"op\":\"confirm\",\"service\":\"orders\"}",
    "{\"op\":\"dump\"}",
    /* lines the register fast path takes (daemon/control/fastreq.c) */
    ("{ \"seq\": 7, \"op\": \"register\", \"instance\": {\"service\": \"pubbench\", "
     "\"version\": \"1.0\", \"address\": \"10.0.1.2:8080\", \"tags\": {\"env\": \"bench\", "
     "\"tier\": \"\"}}, \"check\": {\"type\": \"none\"}}"),
    ("{\"op\":\"register\",\"instance\":{\"service\":\"web\",\"host\":\"h1\",\"az\":\"\","
     "\"address\":\"web.local:443\"},\"check\":{\"type\":\"http\",\"timeout_ms\":700,"
     "\"deregister_after_ms\":60000,\"maintenance\":\"upgrading\"}}"),
    /* ... and one whose instance is refused (weight 0): jansson's path replies */
    "{\"op\":\"register\",\"instance\":{\"service\":\"w\",\"address\":\"h:1\",\"weight\":0}}",
};

static void segments(void)
{
    char name[64], path[4096];
    snprintf(name, sizeof(name), "fuzzseed-%d", (int)getpid());
    snprintf(path, sizeof(path), "%s/seed.cache", out);
    struct segw_config cfg = {.segment_bytes = 4u << 20};
    struct seg_writer *w;
    int rc = segw_open(name, &cfg, &w);
    if (rc < 0) {
        fprintf(stderr, "segw_open: %s\n", strerror(-rc));
        exit(1);
    }
    static const unsigned sizes[] = {0, 1, 4, 24};
    unsigned n = 0;
    for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        for (; n < sizes[k]; n++) {
            char id[DISC_ID_LEN + 1], svc[32], addr[32], ver[16];
            snprintf(id, sizeof(id), "%08x-0000-4000-8000-%012x", n * 2654435761u, n);
            snprintf(svc, sizeof(svc), "svc-%u", n % 5);
            snprintf(addr, sizeof(addr), "10.0.0.%u:%u", n, 8000 + n);
            snprintf(ver, sizeof(ver), "1.%u", n % 3);
            struct segw_tag tags[2] = {{"zone", n & 1 ? "odd" : "even"}, {"env", "prod"}};
            struct segw_endpoint eps[1] = {{"get", "GetReq", "GetResp", 100 + n, 900 + n}};
            struct segw_instance in = {.id = id,
                                       .service = svc,
                                       .version = ver,
                                       .host = n % 2 ? "host-a" : "host-b",
                                       .az = "az-1",
                                       .address = addr,
                                       .addr_kind = DISC_ADDR_TCP,
                                       .health = (uint8_t)(n % 4),
                                       .origin = DISC_ORIGIN_LOCAL,
                                       .weight = 1 + n % 7,
                                       .registered_at_ms = 1700000000000LL,
                                       .tags = tags,
                                       .n_tags = n % 3,
                                       .endpoints = eps,
                                       .n_endpoints = n % 2};
            if ((rc = segw_put(w, &in)) < 0) {
                fprintf(stderr, "segw_put: %s\n", strerror(-rc));
                exit(1);
            }
        }
        if (n)
            segw_commit(w);
        if (segw_export(w, path) < 0) {
            fprintf(stderr, "segw_export failed\n");
            exit(1);
        }
        char f[32];
        snprintf(f, sizeof(f), "image-%u", n);
        copy_file(path, "segment", f);
        copy_file(path, "cache_load", f);
    }
    segw_close(w, true);
    unlink(path);
}

static void documents_and_requests(void)
{
    struct instance_defaults def = {
        .host = "host-a", .az = "az-1", .interval_ms = 1000, .timeout_ms = 500, .misses = 3};
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
        char f[32];
        snprintf(f, sizeof(f), "request-%zu", i);
        put_file("control", f, requests[i], strlen(requests[i]));
        json_t *msg = json_loads(requests[i], 0, NULL);
        json_t *ij = json_object_get(msg, "instance");
        struct instance *inst = NULL;
        struct instance_error err = {0};
        if (ij &&
            instance_from_request(ij, json_object_get(msg, "check"), &def, &inst, &err) == 0) {
            json_t *j = instance_to_json(inst, 0);
            char *doc = json_dumps(j, JSON_COMPACT);
            json_decref(j);
            snprintf(f, sizeof(f), "document-%zu", i);
            put_file("instance_doc", f, doc, strlen(doc));
            free(doc);
            instance_unref(inst);
        }
        json_decref(msg);
    }
}

/* Snapshots of n documents in chunks of chunk_max bytes, in the harness's
 * input format (flags byte: chunk count - 1; bit 2 set in the "fix" copies). */
static void snapshots(void)
{
    static const size_t sizes[] = {0, 1, 5, 12};
    static const size_t chunk_max[] = {4096, 4096, 4096, 700};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        struct zk_snap_entry e[16];
        char names[16][64], docs[16][200];
        for (size_t i = 0; i < sizes[k]; i++) {
            snprintf(names[i], sizeof(names[i]), "%08zx-0000-4000-8000-%012zx-%zu", i, i,
                     1700000000000 + i);
            snprintf(docs[i], sizeof(docs[i]),
                     "{\"id\":\"%08zx-0000-4000-8000-%012zx\",\"service\":\"svc-%zu\","
                     "\"address\":\"10.0.0.%zu:80\",\"host\":\"host-a\"}",
                     i, i, i % 3, i);
            e[i] = (struct zk_snap_entry){names[i], strlen(names[i]), docs[i], strlen(docs[i])};
        }
        struct zk_snap_chunks c;
        if (zk_snap_encode(e, sizes[k], 1 + k, chunk_max[k], &c) != 0 || c.count > 4) {
            fprintf(stderr, "zk_snap_encode failed\n");
            exit(1);
        }
        size_t len = 1;
        for (size_t i = 0; i < c.count; i++) {
            len += c.len[i];
        }
        char *buf = malloc(len);
        if (!buf) {
            exit(1);
        }
        buf[0] = (char)(c.count - 1);
        size_t off = 1;
        for (size_t i = 0; i < c.count; i++) {
            memcpy(buf + off, c.data[i], c.len[i]);
            off += c.len[i];
        }
        char f[32];
        snprintf(f, sizeof(f), "snapshot-%zu", sizes[k]);
        put_file("zk_snapshot", f, buf, len);
        buf[0] |= 4;
        snprintf(f, sizeof(f), "snapshot-%zu-fix", sizes[k]);
        put_file("zk_snapshot", f, buf, len);
        free(buf);
        zk_snap_chunks_free(&c);
    }
}

/* Foreign registry nodes (fuzz_formats): "<format>\n<node name>\0<data>",
 * the formats' documented examples and malformed ones. */
static void formats(void)
{
    static const struct {
        const char *fmt, *name, *data;
    } seeds[] = {
        {"dubbo",
         "dubbo%3A%2F%2F192.168.1.100%3A20880%2Forg.apache.dubbo.demo.DemoService%3Fanyhost%3Dtrue"
         "%26application%3Ddemo-provider%26dubbo%3D2.0.2%26interface%3Dorg.apache.dubbo.demo."
         "DemoService%26methods%3DsayHello%2CsayHelloAsync%26pid%3D2828%26side%3Dprovider"
         "%26timestamp%3D1600000000000",
         ""},
        {"dubbo",
         "tri%3A%2F%2F%5Bfe80%3A%3A1%5D%3A50051%2Fx%3Fgroup%3Dg1%26version%3D1.0.0%26weight%3D200"
         "%26disabled%3Dtrue",
         ""},
        {"dubbo", "dubbo%3A%2F%2F192.168.1.102%3A20880%2Fx%3Fa%3D%ZZ", ""},
        {"dubbo", "dubbo%3A%2F%2F192.168.1.103%2Fx%3Fside%3Dprovider", ""},
        {"serverset", "member_0000000000",
         "{\"serviceEndpoint\":{\"host\":\"10.1.2.3\",\"port\":31181},\"additionalEndpoints\":"
         "{\"aurora\":{\"host\":\"10.1.2.3\",\"port\":31181},\"http\":{\"host\":\"10.1.2.3\","
         "\"port\":31182}},\"status\":\"ALIVE\",\"shard\":0}"},
        {"serverset", "member_0000000001",
         "{\"serviceEndpoint\":{\"host\":\"10.1.2.4\",\"port\":31181},\"status\":\"STARTING\"}"},
        {"serverset", "member_0000000002",
         "{\"serviceEndpoint\": {\"host\": \"10.1.2.5\", \"port\": 3"},
        {"kitex", "10.0.0.9:8888", "{\"Weight\":10,\"Tags\":{\"idc\":\"hl\",\"cluster\":\"a\"}}"},
        {"kitex", "[::1]:8888", ""},
        {"kitex", "10.0.0.11:8888", "{\"Weight\": \"ten\"}"},
        {"curator", "e769edef-fdb8-4ad6-abae-697537f0aa7c",
         "{\"name\":\"org.example.Svc\",\"id\":\"e769edef-fdb8-4ad6-abae-697537f0aa7c\","
         "\"address\":\"10.0.0.1\",\"port\":8080,\"sslPort\":8443,\"payload\":{\"@class\":\"java."
         "util.LinkedHashMap\",\"zone\":\"a\",\"n\":3},\"registrationTimeUTC\":1796061799095,"
         "\"serviceType\":\"DYNAMIC\",\"uriSpec\":{\"parts\":[{\"value\":\"scheme\",\"variable\":"
         "true},{\"value\":\"://"
         "\",\"variable\":false},{\"value\":\"address\",\"variable\":true},{\"value\":\":\","
         "\"variable\":false},{\"value\":\"port\",\"variable\":true}]},\"enabled\":true}"},
        {"curator", "old-1",
         "{\"name\":\"org.example.Svc\",\"id\":\"old-1\",\"address\":\"10.0.0.3\",\"port\":82,"
         "\"sslPort\":null,\"payload\":null,\"registrationTimeUTC\":1796061800410,\"serviceType\":"
         "\"DYNAMIC\",\"uriSpec\":null}"},
        {"curator", "pay-2",
         "{\"name\":\"org.example.Svc\",\"id\":\"pay-2\",\"address\":\"fd00::2\",\"port\":null,"
         "\"sslPort\":443,\"payload\":{\"@class\":\"org.springframework.cloud.zookeeper.discovery."
         "ZookeeperInstance\",\"id\":\"app-1\",\"name\":\"app\",\"metadata\":{\"version\":\"1.2\"}}"
         ",\"enabled\":false}"},
        {"curator", "w0000000003",
         "{\"name\":\"org.example.Svc\",\"id\":\"w\",\"address\":\"h\",\"port\":5,\"serviceType\":"
         "\"DYNAMIC_SEQUENTIAL\",\"payload\":\"text\"}"},
        {"curator", "0d3c8a1e-5b1f-4c1a-9f59-2a8f1e9b7c11",
         "{\"name\":\"org.example.Svc\",\"id\":\"0d3c8a1e-5b1f-4c1a-9f59-2a8f1e9b7c11\","
         "\"address\":\"10.0.0.7\",\"port\":7000,\"sslPort\":null,\"payload\":null,"
         "\"registrationTimeUTC\":1700000000000,\"serviceType\":\"DYNAMIC\",\"uriSpec\":null,"
         "\"enabled\":true,\"discshm\":{\"host\":\"host-a\",\"service\":\"org.example.Svc\"}}"},
        {"curator", "x",
         "{\"name\":\"org.example.Svc\",\"id\":\"x\",\"address\":\"h\",\"port\":\"80\",\"enabled\":"
         "\"yes\",\"uriSpec\":{\"parts\":[{\"value\":3}]}}"},
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        char buf[2048], fname[64];
        int n = snprintf(buf, sizeof(buf), "%s\n%s", seeds[i].fmt, seeds[i].name);
        size_t dl = strlen(seeds[i].data);
        memcpy(buf + n + 1, seeds[i].data, dl); /* after the NUL snprintf wrote */
        snprintf(fname, sizeof(fname), "%s-%zu", seeds[i].fmt, i);
        put_file("formats", fname, buf, (size_t)n + 1 + dl);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds OUT_DIR\n");
        return 2;
    }
    out = argv[1];
    log_set_level(LOG_LVL_ERROR);
    mkdir(out, 0755);
    segments();
    documents_and_requests();
    snapshots();
    formats();
    return 0;
}
