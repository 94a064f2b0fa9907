/* SPDX-License-Identifier: MIT */
/*
 * test_cache.c — the file-cache image: segw_export writes it atomically,
 * disc_open_file / DISC_OPEN_CACHE_FALLBACK read it, a damaged file is
 * refused by its checksum.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "segtest.h"

static char name[64], dir[4200], path[4300];
static struct seg_writer *w;
static char buf[1 << 20];

static void setup(void)
{
    seg_name(name, sizeof(name), "cache");
    seg_cache_dir(dir, sizeof(dir), "cache", path, sizeof(path), "reg.cache");
    struct segw_config cfg = {.segment_bytes = 16u << 20};
    cr_assert_eq(segw_open(name, &cfg, &w), 0);
    seg_fill(w, 600, 60, 1);
}

static void teardown(void)
{
    segw_close(w, true);
    unlink(path);
    rmdir(dir);
    unsetenv(DISC_CACHE_ENV);
}

TestSuite(cache, .init = setup, .fini = teardown);

Test(cache, export_then_read_everything)
{
    int64_t size = segw_export(w, path);
    cr_assert_gt(size, 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, size);

    disc_handle *h;
    cr_assert_eq(disc_open_file(path, DISC_OPEN_VERIFY, &h), 0);
    char svc[32];
    for (unsigned k = 0; k < 60; k++) {
        snprintf(svc, sizeof(svc), "svc-%u", k);
        struct disc_instance *list;
        size_t need;
        cr_assert_eq(disc_lookup(h, svc, buf, sizeof(buf), &list, &need), 10, "%s", svc);
        for (int i = 0; i < 10; i++)
            cr_assert(seg_check(&list[i], svc));
    }
    struct disc_instance *one;
    size_t need;
    char id[DISC_ID_LEN + 1];
    seg_id(id, 123);
    cr_assert_eq(disc_lookup_id(h, id, buf, sizeof(buf), &one, &need), 0);
    struct disc_status ds;
    cr_assert_eq(disc_status(h, &ds), 0);
    cr_assert(ds.flags & DISC_ST_FROM_CACHE);
    cr_assert(ds.flags & DISC_ST_DEGRADED);
    cr_assert_not(ds.flags & DISC_ST_WRITER_ALIVE);
    cr_assert_eq(ds.n_instances, 600);
    cr_assert_eq(ds.n_services, 60);
    uint32_t seen = ds.change_seq;
    cr_assert_eq(disc_wait_change(h, &seen, 20), -ETIMEDOUT);
    disc_close(h);
}

Test(cache, fallback_only_when_no_segment)
{
    cr_assert_gt(segw_export(w, path), 0);
    setenv(DISC_CACHE_ENV, path, 1);
    disc_handle *h;
    /* the segment exists: it is used, live */
    cr_assert_eq(disc_open(name, DISC_OPEN_CACHE_FALLBACK, &h), 0);
    struct disc_status ds;
    disc_status(h, &ds);
    cr_assert_not(ds.flags & DISC_ST_FROM_CACHE);
    disc_close(h);

    /* no segment: without the flag -ENOENT, with it the cache */
    char other[64];
    seg_name(other, sizeof(other), "absent");
    cr_assert_eq(disc_open(other, 0, &h), -ENOENT);
    cr_assert_eq(disc_open(other, DISC_OPEN_CACHE_FALLBACK, &h), 0);
    disc_status(h, &ds);
    cr_assert(ds.flags & DISC_ST_FROM_CACHE);
    cr_assert_eq(disc_count(h, "svc-7"), 10);
    disc_close(h);

    /* no segment and no cache: the segment's error */
    setenv(DISC_CACHE_ENV, "/nonexistent/x.cache", 1);
    cr_assert_eq(disc_open(other, DISC_OPEN_CACHE_FALLBACK, &h), -ENOENT);
}

static void damage(const char *p, long at, int truncate)
{
    int fd = open(p, O_RDWR);
    cr_assert_geq(fd, 0);
    if (truncate) {
        cr_assert_eq(ftruncate(fd, at), 0);
    } else {
        unsigned char c;
        cr_assert_eq(pread(fd, &c, 1, at), 1);
        c ^= 0x40;
        cr_assert_eq(pwrite(fd, &c, 1, at), 1);
    }
    close(fd);
}

Test(cache, damaged_files_are_refused)
{
    int64_t size = segw_export(w, path);
    cr_assert_gt(size, 0);
    disc_handle *h;
    damage(path, 5000, 0); /* one flipped bit inside a record */
    cr_assert_eq(disc_open_file(path, 0, &h), -EBADMSG);

    cr_assert_gt(segw_export(w, path), 0, "a new export replaces the damaged file");
    cr_assert_eq(disc_open_file(path, 0, &h), 0);
    disc_close(h);

    damage(path, size / 2, 1); /* truncated */
    cr_assert_eq(disc_open_file(path, 0, &h), -EBADMSG);
    damage(path, 10, 1);
    cr_assert_eq(disc_open_file(path, 0, &h), -EBADMSG);
    cr_assert_eq(disc_open_file(dir, 0, &h), -EPERM, "a directory is not a cache");
    cr_assert_eq(disc_open_file("/nonexistent/x", 0, &h), -ENOENT);
}

Test(cache, live_segment_is_not_a_cache_file)
{
    char p[4400];
    snprintf(p, sizeof(p), "%s/%s", getenv("DISCSHM_DIR"), name);
    disc_handle *h;
    cr_assert_eq(disc_open_file(p, 0, &h), -EBADMSG, "magic differs: never confused");
}

Test(cache, failed_export_keeps_the_previous_file)
{
    cr_assert_gt(segw_export(w, path), 0);
    struct stat before, after;
    stat(path, &before);
    char bad[4400];
    snprintf(bad, sizeof(bad), "%s/missing-dir/reg.cache", dir);
    cr_assert_eq(segw_export(w, bad), -ENOENT);
    stat(path, &after);
    cr_assert_eq(before.st_ino, after.st_ino);
    /* an export after changes reflects them */
    char id[DISC_ID_LEN + 1];
    seg_id(id, 0);
    cr_assert_eq(segw_del(w, id), 0);
    segw_commit(w);
    cr_assert_gt(segw_export(w, path), 0);
    disc_handle *h;
    cr_assert_eq(disc_open_file(path, 0, &h), 0);
    cr_assert_eq(disc_count(h, "svc-0"), 9);
    disc_close(h);
}
