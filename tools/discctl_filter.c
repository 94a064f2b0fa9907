/* SPDX-License-Identifier: MIT */
/*
 * discctl_filter.c — the filter options shared by `get` and `pick`, parsed
 * straight into libdiscshm's struct disc_filter (the library does the
 * matching; discctl never filters by hand).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "discctl.h"

int ctl_filter_opt(const struct ctl *ctl, int argc, char **argv, int *i, struct disc_filter *f)
{
    static const char *const opts[] = {"--version",  "--min-version", "--az",     "--host", "--tag",
                                       "--endpoint", "--health",      "--prefix", "--owner"};
    const char *v = NULL, *opt = argv[*i];
    size_t k;
    int r = 0;
    if (strcmp(opt, "--all") == 0) { /* every health, maintenance included */
        f->health_mask = DISC_HEALTH_MASK_ALL;
        return 1;
    }
    for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
        if ((r = ctl_opt(argc, argv, i, opts[k], &v)) != 0)
            break;
    if (r == 0)
        return 0;
    if (r < 0) {
        ctl_usage_error(ctl, "%s needs a value", opt);
        return -1;
    }
    switch (k) {
    case 0:
        f->version = v;
        break;
    case 1:
        f->min_version = v;
        break;
    case 2:
        f->az = v;
        break;
    case 3:
        f->host = v;
        break;
    case 4: {
        char *eq = strchr(v, '=');
        if (eq)
            *eq = '\0'; /* argv is ours to edit */
        int rc = disc_filter_add_tag(f, v, eq ? eq + 1 : NULL);
        if (rc < 0) {
            ctl_usage_error(ctl, "bad --tag '%s': %s", v, disc_strerror(rc));
            return -1;
        }
        break;
    }
    case 5:
        f->endpoint = v;
        break;
    case 6: {
        unsigned mask;
        if (ctl_parse_health(v, &mask) < 0) {
            ctl_usage_error(ctl,
                            "unknown health '%s' (passing, warning, critical, unknown, "
                            "maintenance, not-critical or any)",
                            v);
            return -1;
        }
        f->health_mask = mask;
        break;
    }
    case 8: {
        uint32_t uid;
        struct passwd *pw = NULL;
        if (ctl_parse_u32(v, 0, DISC_OWNER_UNKNOWN - 1, &uid) < 0) {
            if (!(pw = getpwnam(v))) {
                ctl_usage_error(ctl, "--owner: '%s' is neither a uid nor a user name", v);
                return -1;
            }
            uid = (uint32_t)pw->pw_uid;
        }
        int rc = disc_filter_add_owner(f, uid);
        if (rc < 0) {
            ctl_usage_error(ctl, "--owner %s: %s (at most %d owners)", v, disc_strerror(rc),
                            DISC_FILTER_OWNERS_MAX);
            return -1;
        }
        break;
    }
    default:
        if (!*v) {
            ctl_usage_error(ctl, "--prefix needs a non-empty value");
            return -1;
        }
        f->service_prefix = v;
    }
    return 1;
}

int ctl_lookup_opt(struct ctl *ctl, int argc, char **argv, int *i, struct disc_filter *f)
{
    int r = ctl_filter_opt(ctl, argc, argv, i, f);
    return r ? r : ctl_stale_opt(ctl, argc, argv, i);
}

int ctl_service_operand(const struct ctl *ctl, const char *arg, struct disc_filter *f)
{
    if (arg[0] == '-')
        return ctl_usage_error(ctl, "unknown option '%s'", arg);
    if (f->service)
        return ctl_usage_error(ctl, "unexpected argument '%s'", arg);
    f->service = arg;
    return 0;
}

int ctl_filter_finish(const struct ctl *ctl, const struct disc_filter *f)
{
    if (!f->service && !f->service_prefix)
        return ctl_usage_error(ctl, "which service? (discctl %s SERVICE, or --prefix PREFIX)",
                               ctl->cmd);
    int rc = disc_filter_check(f);
    if (rc < 0)
        return ctl_usage_error(ctl, "bad filter: %s", disc_strerror(rc));
    return 0;
}

const char *ctl_filter_target(const struct disc_filter *f, char *buf, size_t len)
{
    if (f->service)
        return f->service;
    snprintf(buf, len, "%s*", f->service_prefix);
    return buf;
}
