/* SPDX-License-Identifier: MIT */
/*
 * test_garbage.c — garbage in: random bytes, truncated objects, offsets that
 * point outside, and randomly corrupted real segments. The reader must
 * return an error (or data) and never crash; every read runs in a child
 * process so a crash is seen as a signal.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "layout.h"
#include "segtest.h"

#define SEG_BYTES (2u << 20)

static char name[64], bad[64];
static struct seg_writer *w;
static unsigned char *image; /* a copy of a real data object */

/* Objects live in the registry directory ($DISCSHM_DIR, set for every test
 * executable by tests/common/registry_dir.c). */
static void obj_path(char *p, size_t len, const char *n)
{
    snprintf(p, len, "%s/%s", getenv("DISCSHM_DIR"), n);
}

static void put_object(const char *n, const void *data, size_t len)
{
    char p[4400];
    obj_path(p, sizeof(p), n);
    unlink(p);
    int fd = open(p, O_RDWR | O_CREAT | O_EXCL, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)len), 0);
    if (len) {
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        cr_assert_neq(m, MAP_FAILED);
        memcpy(m, data, len);
        munmap(m, len);
    }
    close(fd);
}

static void read_object(const char *n, unsigned char **out, size_t *len)
{
    char p[4400];
    obj_path(p, sizeof(p), n);
    int fd = open(p, O_RDONLY);
    cr_assert_geq(fd, 0);
    struct stat st;
    fstat(fd, &st);
    *len = (size_t)st.st_size;
    *out = malloc(*len);
    void *m = mmap(NULL, *len, PROT_READ, MAP_SHARED, fd, 0);
    memcpy(*out, m, *len);
    munmap(m, *len);
    close(fd);
}

static void setup(void)
{
    seg_name(name, sizeof(name), "garb");
    seg_name(bad, sizeof(bad), "bad");
    struct segw_config cfg = {.segment_bytes = SEG_BYTES};
    cr_assert_eq(segw_open(name, &cfg, &w), 0);
    seg_fill(w, 1500, 150, 0);
    size_t len;
    read_object(name, &image, &len);
    cr_assert_eq(len, SEG_BYTES);
}

static void teardown(void)
{
    char p[4400];
    obj_path(p, sizeof(p), bad);
    unlink(p);
    segw_close(w, true);
    free(image);
}

TestSuite(garbage, .init = setup, .fini = teardown);

static void install_bad(const void *data, size_t len, int with_slots)
{
    (void)with_slots; /* ABI 1 had a reader-slot object; ABI 2 has none */
    put_object(bad, data, len);
}

/* Exercise every read path; exit code: 0 = all calls returned, and bit 1 set
 * when some call reported -EBADMSG. */
static int read_everything(void *arg)
{
    (void)arg;
    disc_handle *h;
    int rc = disc_open(bad, DISC_OPEN_VERIFY, &h);
    if (rc < 0)
        return rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -EAGAIN ? 2 : 0;
    static char buf[1 << 20];
    int saw_bad = 0;
    char svc[32];
    struct disc_instance *list;
    size_t need;
    for (unsigned i = 0; i < 160; i++) {
        snprintf(svc, sizeof(svc), "svc-%u", i);
        rc = disc_lookup(h, svc, buf, sizeof(buf), &list, &need);
        saw_bad |= rc == -EBADMSG;
        for (int k = 0; k < rc; k++) {
            const char *kk, *vv;
            struct disc_endpoint ep;
            for (unsigned t = 0; t < list[k].n_tags; t++)
                disc_instance_tag(&list[k], t, &kk, &vv);
            for (unsigned e = 0; e < list[k].n_endpoints; e++)
                disc_instance_endpoint(&list[k], e, &ep);
            saw_bad |= disc_lookup_id(h, list[k].id, buf, sizeof(buf), &list, &need) == -EBADMSG;
            break;
        }
    }
    struct disc_service_info *si;
    saw_bad |= disc_list_services(h, buf, sizeof(buf), &si, &need) == -EBADMSG;
    struct disc_status st;
    saw_bad |= disc_status(h, &st) == -EBADMSG;
    struct disc_read rd;
    if (disc_read_begin(h, &rd) == 0) {
        uint64_t cur = 0;
        struct disc_service_view sv;
        for (int n = 0; n < 100000; n++) {
            int r = disc_read_next_service(&rd, &cur, &sv);
            if (r <= 0) {
                saw_bad |= r == -EBADMSG;
                break;
            }
            struct disc_instance v;
            for (uint32_t i = 0; i < sv.n_instances && i < 64; i++)
                saw_bad |= disc_read_instance(&rd, &sv, i, &v) == -EBADMSG;
        }
        disc_read_end(&rd);
    } else {
        saw_bad = 1;
    }
    disc_close(h);
    return saw_bad ? 2 : 0;
}

static int run_reader(void)
{
    int st = seg_in_child(read_everything, NULL);
    cr_assert(WIFEXITED(st), "reader crashed: signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return WEXITSTATUS(st);
}

static int open_rc(void)
{
    disc_handle *h = NULL;
    int rc = disc_open(bad, 0, &h);
    disc_close(h);
    return rc;
}

Test(garbage, missing_object)
{
    cr_assert_eq(open_rc(), -ENOENT);
}

Test(garbage, random_bytes)
{
    unsigned char *junk = malloc(65536);
    srand(7);
    for (int i = 0; i < 65536; i++)
        junk[i] = (unsigned char)rand();
    install_bad(junk, 65536, 1);
    cr_assert_eq(open_rc(), -EBADMSG);
    free(junk);
}

Test(garbage, empty_and_truncated_objects)
{
    install_bad(image, 0, 1);
    cr_assert_eq(open_rc(), -EBADMSG);
    install_bad(image, 100, 1);
    cr_assert_eq(open_rc(), -EBADMSG);
    /* whole header but the object is shorter than it says */
    install_bad(image, SEG_BYTES / 2, 1);
    cr_assert_eq(open_rc(), -EBADMSG);
}

Test(garbage, abi_major_mismatch)
{
    unsigned char *copy = malloc(SEG_BYTES);
    memcpy(copy, image, SEG_BYTES);
    ((struct disc_hdr *)copy)->abi_major = DISC_ABI_MAJOR + 1;
    install_bad(copy, SEG_BYTES, 1);
    cr_assert_eq(open_rc(), -EPROTONOSUPPORT);
    free(copy);
}

Test(garbage, header_bounds_lies)
{
    unsigned char *copy = malloc(SEG_BYTES);
    struct disc_hdr *hd = (struct disc_hdr *)copy;
    memcpy(copy, image, SEG_BYTES);
    hd->arena_end = SEG_BYTES + 4096; /* arena past the object */
    install_bad(copy, SEG_BYTES, 1);
    cr_assert_eq(open_rc(), -EBADMSG);
    memcpy(copy, image, SEG_BYTES);
    hd->arena_off = hd->arena_end + 8; /* arena ends before it starts */
    install_bad(copy, SEG_BYTES, 1);
    cr_assert_eq(open_rc(), -EBADMSG);
    free(copy);
}

Test(garbage, root_and_tables_outside)
{
    unsigned char *copy = malloc(SEG_BYTES);
    struct disc_hdr *hd = (struct disc_hdr *)copy;
    uint32_t snap = (uint32_t)atomic_load(&((struct disc_hdr *)image)->root);

    memcpy(copy, image, SEG_BYTES);
    atomic_store(&hd->root, (uint64_t)SEG_BYTES * 2); /* root offset past the end */
    install_bad(copy, SEG_BYTES, 1);
    cr_assert_eq(run_reader(), 2);

    memcpy(copy, image, SEG_BYTES);
    struct disc_snapshot *s = (struct disc_snapshot *)(copy + snap);
    s->svc_table = 0xfffffff0u;
    s->id_table = 13; /* misaligned, inside the header */
    install_bad(copy, SEG_BYTES, 1);
    cr_assert_eq(run_reader(), 2);
    free(copy);
}

Test(garbage, random_corruption_never_crashes, .timeout = 150)
{
    unsigned char *copy = malloc(SEG_BYTES);
    const struct disc_hdr *hd = (const struct disc_hdr *)image;
    uint32_t used_end = DISC_HEADER_SIZE + (uint32_t)atomic_load(&hd->used_bytes) + 65536;
    srand(12345);
    int detected = 0, iterations = 150;
    for (int it = 0; it < iterations; it++) {
        memcpy(copy, image, SEG_BYTES);
        int flips = 1 + rand() % 64;
        for (int f = 0; f < flips; f++) {
            uint32_t at = DISC_HEADER_SIZE + (uint32_t)rand() % (used_end - DISC_HEADER_SIZE);
            switch (rand() % 3) {
            case 0:
                copy[at] = (unsigned char)rand();
                break;
            case 1: /* a plausible-looking offset */
                at &= ~3u;
                *(uint32_t *)(copy + at) = (uint32_t)rand() % (SEG_BYTES + 8192);
                break;
            default: /* a huge count */
                at &= ~3u;
                *(uint32_t *)(copy + at) = 0xffffffffu - (uint32_t)rand() % 16;
            }
        }
        install_bad(copy, SEG_BYTES, 1);
        detected += run_reader() == 2;
    }
    cr_log_info("corruption detected in %d of %d corrupted segments", detected, iterations);
    cr_assert_gt(detected, iterations / 4, "checks must notice most corruption");
    free(copy);
}
