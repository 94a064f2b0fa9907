/* SPDX-License-Identifier: MIT */
/*
 * discctl_pick.c — `discctl pick`: let libdiscshm's picker choose one
 * instance among those matching the filters and print its address, so that
 * shell scripts can do `addr=$(discctl pick orders --az eu-1a)`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "discctl.h"

/* A seed that differs between runs: two picks in a row should not always
 * choose the same instance. */
static uint64_t random_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
        return seed;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
}

int cmd_pick(struct ctl *ctl, int argc, char **argv)
{
    struct disc_filter f;
    disc_filter_init(&f);
    const char *by = NULL, *key = NULL;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--") == 0)
            continue;
        int r = ctl_lookup_opt(ctl, argc, argv, &i, &f);
        if (r < 0)
            return EXIT_USAGE;
        if (r > 0)
            continue;
        if ((r = ctl_opt(argc, argv, &i, "--by", &by)) != 0 ||
            (r = ctl_opt(argc, argv, &i, "--key", &key)) != 0) {
            if (r < 0)
                return ctl_usage_error(ctl, "%s needs a value", opt);
            continue;
        }
        if (ctl_service_operand(ctl, opt, &f))
            return EXIT_USAGE;
    }
    /* --key alone means --by hash; a key with random would be ignored,
     * which is surely not what the caller meant. */
    enum disc_pick_policy policy = key ? DISC_PICK_HASH : DISC_PICK_RANDOM;
    if (by && strcmp(by, "random") == 0)
        policy = DISC_PICK_RANDOM;
    else if (by && strcmp(by, "hash") == 0)
        policy = DISC_PICK_HASH;
    else if (by)
        return ctl_usage_error(ctl, "unknown --by '%s' (random or hash)", by);
    if (policy == DISC_PICK_HASH && !key)
        return ctl_usage_error(ctl, "--by hash needs --key KEY");
    if (policy == DISC_PICK_RANDOM && key)
        return ctl_usage_error(ctl, "--key only applies to --by hash");
    int ec = ctl_filter_finish(ctl, &f);
    if (ec)
        return ec;

    disc_picker *p;
    int rc = disc_picker_create(policy, random_seed(), 0, &p);
    if (rc < 0) {
        ctl_err(ctl, "cannot create a picker: %s", disc_strerror(rc));
        return EXIT_ERR;
    }
    disc_handle *h;
    if ((ec = ctl_open(ctl, &h))) {
        disc_picker_destroy(p);
        return ec;
    }
    /* DISC_INSTANCE_BUF_MAX always holds one instance; -EAGAIN (the writer
     * overtook the read) is retried a bounded number of times. */
    void *buf = malloc(DISC_INSTANCE_BUF_MAX);
    struct disc_instance *in = NULL;
    rc = buf ? -EAGAIN : -ENOMEM;
    for (int attempt = 0; buf && rc == -EAGAIN && attempt < 16; attempt++)
        rc = disc_pick(h, &f, p, key, key ? strlen(key) : 0, buf, DISC_INSTANCE_BUF_MAX, &in, NULL);
    if (rc == 0) {
        if (ctl->json)
            ctl_print_json(ctl_instance_json(in));
        else
            printf("%s\n", in->address);
        ec = ctl_stale_check(ctl, h);
    } else if (rc == -ENOENT) {
        /* disc_pick says -ENOENT for both; a count tells them apart. */
        bool exists = !f.service || disc_count(h, f.service) > 0;
        struct disc_filter shown = f;
        if (!shown.health_mask)
            shown.health_mask = DISC_HEALTH_NOT_CRITICAL; /* what the picker applied */
        ctl_not_found(ctl, h, &shown, exists);
        ctl_stale_check(ctl, h); /* the warning only: not found wins */
        ec = EXIT_NOTFOUND;
    } else {
        ctl_err(ctl, "%s", disc_strerror(rc));
        ec = EXIT_ERR;
    }
    free(buf);
    disc_close(h);
    disc_picker_destroy(p);
    return ec;
}
