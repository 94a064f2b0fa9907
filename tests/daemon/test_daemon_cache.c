/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_cache.c — discd's file cache (--cache-file): written after
 * changes, and what a reader falls back to when no segment exists (as after
 * a reboot, before discd starts).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon_util.h"

static struct discd_proc d;
static char cache[400];

static void teardown(void)
{
    dt_finish(&d);
    unsetenv(DISC_CACHE_ENV);
}

/* Start discd `tag` with --cache-file <its directory>/<rel> (the path in cache). */
static void start_with_cache(const char *tag, const char *rel)
{
    cr_assert_eq(discd_proc_init(&d, tag), 0);
    snprintf(cache, sizeof(cache), "%s/%s", d.dir, rel);
    char *extra[] = {"--cache-file", cache, NULL};
    cr_assert_eq(discd_proc_start(&d, extra, 10000 * dt_slow()), 0);
}

static int wait_cache_count(const char *svc, int want, int timeout_ms)
{
    long long end = proc_now_ms() + timeout_ms;
    do {
        disc_handle *h;
        if (disc_open_file(cache, 0, &h) == 0) {
            int n = disc_count(h, svc);
            disc_close(h);
            if (n == want)
                return 0;
        }
        proc_sleep_ms(50);
    } while (proc_now_ms() < end);
    return -1;
}

Test(daemon_cache, written_after_changes_and_used_without_a_segment, .fini = teardown)
{
    start_with_cache("cache", "registry.cache");

    struct discd_conn c;
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    char id1[DISC_ID_LEN + 1], id2[DISC_ID_LEN + 1];
    dt_register(&c, "cached", "127.0.0.1:9001", "{\"type\":\"none\"}", id1);
    dt_register(&c, "cached", "127.0.0.1:9002", "{\"type\":\"none\"}", id2);
    cr_assert_eq(wait_cache_count("cached", 2, 10000), 0, "the cache follows registrations");

    json_t *r = dt_callf(&d, "{\"op\":\"deregister\",\"id\":\"%s\"}", id1);
    cr_assert(dt_ok(r));
    json_decref(r);
    cr_assert_eq(wait_cache_count("cached", 1, 10000), 0, "...and deregistrations");
    discd_conn_close(&c);

    /* discd gone and its segment with it (a reboot): the fallback serves the
     * last picture, flagged as coming from the cache. */
    cr_assert_eq(discd_proc_stop(&d, 5000), 0);
    char seg[4400];
    snprintf(seg, sizeof(seg), "%s/%s", getenv("DISCSHM_DIR"), d.name);
    cr_assert_eq(unlink(seg), 0);
    disc_handle *h;
    cr_assert_eq(disc_open(d.name, 0, &h), -ENOENT);
    setenv(DISC_CACHE_ENV, cache, 1);
    cr_assert_eq(disc_open(d.name, DISC_OPEN_CACHE_FALLBACK, &h), 0);
    static char buf[1 << 16];
    struct disc_instance *list;
    size_t need;
    cr_assert_eq(disc_lookup(h, "cached", buf, sizeof(buf), &list, &need), 1);
    cr_assert_str_eq(list[0].id, id2);
    cr_assert_str_eq(list[0].address, "127.0.0.1:9002");
    struct disc_status st;
    cr_assert_eq(disc_status(h, &st), 0);
    cr_assert(st.flags & DISC_ST_FROM_CACHE);
    cr_assert(st.flags & DISC_ST_DEGRADED);
    disc_close(h);
}

Test(daemon_cache, unwritable_cache_is_logged_and_discd_keeps_serving, .fini = teardown)
{
    start_with_cache("cachebad", "no-such-dir/registry.cache");
    struct discd_conn c;
    cr_assert_eq(discd_conn_open(&d, &c), 0);
    char id[DISC_ID_LEN + 1];
    dt_register(&c, "x", "127.0.0.1:9003", "{\"type\":\"none\"}", id);
    disc_handle *h = dt_open_reader(&d);
    cr_assert_eq(dt_wait_count(h, "x", 1, 5000), 1, "discd keeps serving");
    disc_close(h);
    discd_conn_close(&c);
    /* the failure is in the log, once, naming the file */
    long long end = proc_now_ms() + 5000;
    int found = 0;
    while (!found && proc_now_ms() < end) {
        FILE *f = fopen(d.log, "r");
        char line[1024];
        while (f && fgets(line, sizeof(line), f))
            if (strstr(line, "cannot write file cache") && strstr(line, "no-such-dir"))
                found = 1;
        if (f)
            fclose(f);
        if (!found)
            proc_sleep_ms(100);
    }
    cr_assert(found, "an unwritable cache is logged");
}
