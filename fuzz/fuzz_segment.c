/*
 * fuzz_segment.c — libFuzzer harness: open an arbitrary image file and
 * walk all of it through libdiscshm's public API, with or without
 * DISC_OPEN_VERIFY (the input's last byte chooses, and one of three filters): every lookup, list,
 * filter, pick and view call, the zero-copy walks and the tag / endpoint accessors. Any crash,
 * sanitizer report, leak or hang (libFuzzer's -timeout) is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "discshm.h"
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned char buf[1 << 20];

/* Read every string of a view (so a bad pointer is caught here). */
static size_t touch(const struct disc_instance *v)
{
    size_t n = strlen(v->id) + strlen(v->service) + strlen(v->version) + strlen(v->host) +
               strlen(v->az) + strlen(v->address);
    for (unsigned i = 0; i < v->n_tags; i++) {
        const char *k, *val;
        if (disc_instance_tag(v, i, &k, &val) == 0)
            n += strlen(k) + strlen(val);
    }
    for (unsigned i = 0; i < v->n_endpoints; i++) {
        struct disc_endpoint e;
        if (disc_instance_endpoint(v, i, &e) == 0)
            n += strlen(e.name) + strlen(e.request_type) + strlen(e.response_type);
    }
    (void)disc_instance_tag_get(v, "zone");
    return n;
}

static void with_filter(disc_handle *h, const struct disc_filter *f)
{
    struct disc_instance *list;
    int n = disc_lookup_filtered(h, f, buf, sizeof(buf), &list, NULL);
    for (int i = 0; i < n; i++)
        touch(&list[i]);
    struct disc_service_summary *sum;
    n = disc_services(h, f, buf, sizeof(buf), &sum, NULL);
    for (int i = 0; i < n; i++)
        for (uint32_t k = 0; k < sum[i].n_versions; k++)
            (void)strlen(sum[i].versions[k].version);
    struct disc_endpoint_info *ep;
    n = disc_endpoints(h, f, buf, sizeof(buf), &ep, NULL);
    for (int i = 0; i < n; i++)
        (void)strlen(ep[i].name);
    static const enum disc_pick_policy pol[] = {DISC_PICK_RANDOM, DISC_PICK_ROUND_ROBIN,
                                                DISC_PICK_HASH};
    for (int i = 0; i < 3; i++) {
        disc_picker *p;
        if (disc_picker_create(pol[i], 7, 0, &p) < 0)
            continue;
        struct disc_instance *one;
        if (disc_pick(h, f, p, "key", 3, buf, sizeof(buf), &one, NULL) == 0)
            touch(one);
        disc_picker_destroy(p);
    }
}

static void walk(disc_handle *h, unsigned variant)
{
    struct disc_status st;
    (void)disc_status(h, &st);
    /* Zero-copy: every service, every instance, lookups by name and id. */
    struct disc_read rd;
    char names[8][DISC_SERVICE_MAX + 1];
    char ids[8][DISC_ID_LEN + 1];
    int nn = 0, ni = 0;
    if (disc_read_begin(h, &rd) == 0) {
        (void)disc_read_generation(&rd);
        uint64_t cur = 0;
        struct disc_service_view sv;
        while (disc_read_next_service(&rd, &cur, &sv) == 1) {
            if (nn < 8)
                snprintf(names[nn++], sizeof(names[0]), "%s", sv.name);
            for (uint32_t i = 0; i < sv.n_instances; i++) {
                struct disc_instance v;
                if (disc_read_instance(&rd, &sv, i, &v) < 0)
                    break;
                touch(&v);
                if (ni < 8)
                    snprintf(ids[ni++], sizeof(ids[0]), "%s", v.id);
            }
        }
        for (int i = 0; i < nn; i++) {
            if (disc_read_service(&rd, names[i], &sv) == 0)
                (void)disc_read_instance(&rd, &sv, sv.n_instances, NULL);
        }
        for (int i = 0; i < ni; i++) {
            struct disc_instance v;
            if (disc_read_instance_by_id(&rd, ids[i], &v) == 0)
                touch(&v);
        }
        disc_read_end(&rd);
    }
    /* Copy-out calls. */
    struct disc_service_info *info;
    (void)disc_list_services(h, buf, sizeof(buf), &info, NULL);
    for (int i = 0; i < nn; i++) {
        struct disc_instance *list;
        int n = disc_lookup(h, names[i], buf, sizeof(buf), &list, NULL);
        for (int k = 0; k < n; k++)
            touch(&list[k]);
        (void)disc_count(h, names[i]);
    }
    for (int i = 0; i < ni; i++) {
        struct disc_instance *one;
        if (disc_lookup_id(h, ids[i], buf, sizeof(buf), &one, NULL) == 0)
            touch(one);
    }
    /* One filter per input (chosen by its last byte), to keep executions fast. */
    struct disc_filter f;
    disc_filter_init(&f);
    switch (variant % 3) {
    case 0:
        with_filter(h, NULL);
        break;
    case 1:
        f.service_prefix = "s";
        f.min_version = "1.0";
        f.health_mask = DISC_HEALTH_NOT_CRITICAL;
        f.endpoint = "get";
        disc_filter_add_tag(&f, "zone", NULL);
        with_filter(h, &f);
        break;
    default:
        f.service = nn > 0 ? names[0] : "svc-1";
        f.az = "az-1";
        f.version = "1.1";
        with_filter(h, &f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_image_file(data, size, path, sizeof(path));
    if (fd < 0)
        return 0;
    /* The last byte picks DISC_OPEN_VERIFY and the filter variant. */
    unsigned variant = size ? data[size - 1] : 0;
    disc_handle *h;
    if (disc_open_file(path, (variant & 0x80) ? DISC_OPEN_VERIFY : 0, &h) == 0) {
        walk(h, variant);
        disc_close(h);
    }
    close(fd);
    return 0;
}
