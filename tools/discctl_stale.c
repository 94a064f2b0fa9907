/* SPDX-License-Identifier: MIT */
/*
 * discctl_stale.c — the staleness rule of the reading commands (get, pick,
 * services/ls, endpoints): they still print what the segment holds, but say
 * on stderr why it may be out of date and exit EXIT_STALE unless
 * --allow-stale was given. See docs/DISCCTL.md, "Stale data".
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "discctl.h"

int ctl_stale_opt(struct ctl *ctl, int argc, char **argv, int *i)
{
    if (strcmp(argv[*i], "--allow-stale") == 0) {
        ctl->allow_stale = true;
        return 1;
    }
    const char *v;
    int r = ctl_opt(argc, argv, i, "--max-degraded", &v);
    if (r == 0)
        return 0;
    if (r < 0 || ctl_parse_u32(v, 0, 86400000, &ctl->max_degraded_ms) < 0) {
        ctl_usage_error(ctl,
                        "--max-degraded needs a number of milliseconds (0..86400000), not '%s'",
                        r < 0 ? "" : v);
        return -1;
    }
    ctl->max_degraded_set = true;
    return 1;
}

void ctl_time_text(long long ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !localtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, len, "-");
}

int ctl_stale_check(const struct ctl *ctl, disc_handle *h)
{
    struct disc_status st;
    if (disc_status(h, &st) < 0)
        return 0; /* the query itself worked; nothing more to say */
    uint32_t max_deg = ctl->max_degraded_set ? ctl->max_degraded_ms : CTL_MAX_DEGRADED_MS;
    char when[32], age[16];
    bool stale = false;
    if (st.stale & DISC_STALE_WRITER_DEAD) {
        ctl_time_text(st.writer_dead_since_ms, when, sizeof(when));
        ctl_age(st.writer_dead_since_ms, age, sizeof(age));
        if (st.flags & DISC_ST_WRITER_STOPPED)
            ctl_err(ctl,
                    "warning: stale data: the writer (discd pid %d) stopped at %s (%s ago); "
                    "this is the last picture it published",
                    (int)st.writer_pid, when, age);
        else
            ctl_err(ctl,
                    "warning: stale data: the writer (discd pid %d) is dead since %s (%s ago, "
                    "no heartbeat for %u ms or more); this is the last picture it published",
                    (int)st.writer_pid, when, age, st.writer_dead_after_ms);
        stale = true;
    } else if (st.stale & DISC_STALE_DEGRADED) {
        long long since = st.degraded_since_ms, dur = since > 0 ? ctl_now_ms() - since : 0;
        if (since <= 0 || dur >= (long long)max_deg) {
            ctl_time_text(since, when, sizeof(when));
            ctl_age(since, age, sizeof(age));
            ctl_err(ctl,
                    "warning: stale data: degraded (%s) since %s (%s ago, more than the %u ms "
                    "--max-degraded allows); changes in the region may be missing",
                    disc_status_reason_str(st.degraded_reason), when, age, max_deg);
            stale = true;
        }
    }
    if (st.stale & DISC_STALE_FROM_CACHE) {
        ctl_err(ctl, "warning: stale data: the snapshot was restored from the file cache and is "
                     "not yet confirmed by ZooKeeper");
        stale = true;
    }
    if (!stale)
        return 0;
    return ctl->allow_stale ? 0 : EXIT_STALE;
}
