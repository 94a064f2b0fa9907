/* SPDX-License-Identifier: MIT */
/*
 * discctl_read.c — the subcommands that read the segment: services (ls),
 * get, endpoints, dump, status. Filtering is libdiscshm's (disc_filter).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discctl.h"

static int call_services(disc_handle *h, const struct disc_filter *f, void *buf, size_t len,
                         void **list, size_t *needed)
{
    return disc_services(h, f, buf, len, (struct disc_service_summary **)list, needed);
}

static int call_endpoints(disc_handle *h, const struct disc_filter *f, void *buf, size_t len,
                          void **list, size_t *needed)
{
    return disc_endpoints(h, f, buf, len, (struct disc_endpoint_info **)list, needed);
}

/* ---- ls ----------------------------------------------------------------------- */

int cmd_ls(struct ctl *ctl, int argc, char **argv)
{
    struct disc_filter f;
    disc_filter_init(&f);
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = ctl_opt(argc, argv, &i, "--prefix", &v);
        if (r < 0)
            return ctl_usage_error(ctl, "--prefix needs a value");
        if (r > 0) {
            f.service_prefix = v;
            continue;
        }
        if ((r = ctl_stale_opt(ctl, argc, argv, &i)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            continue;
        }
        return ctl_usage_error(ctl, "unexpected argument '%s'", argv[i]);
    }
    disc_handle *h;
    int ec = ctl_open(ctl, &h);
    if (ec)
        return ec;
    struct disc_service_summary *list;
    void *buf;
    int n = ctl_view_all(h, &f, call_services, (void **)&list, &buf);
    if (n < 0) {
        ctl_err(ctl, "%s", disc_strerror(n));
        disc_close(h);
        return n == -EINVAL || n == -ENAMETOOLONG ? EXIT_USAGE : EXIT_ERR;
    }
    if (ctl->json) {
        json_t *arr = json_array();
        for (int i = 0; arr && i < n; i++) {
            json_t *vers = json_array();
            for (uint32_t k = 0; vers && k < list[i].n_versions; k++)
                json_array_append_new(vers, json_pack("{s:s, s:I}", "version",
                                                      list[i].versions[k].version, "instances",
                                                      (json_int_t)list[i].versions[k].n_instances));
            json_array_append_new(arr,
                                  json_pack("{s:s, s:I, s:o}", "name", list[i].name, "instances",
                                            (json_int_t)list[i].n_instances, "versions", vers));
        }
        ctl_print_json(json_pack("{s:o}", "services", arr));
    } else {
        struct ctl_table t;
        ctl_table_init(&t, 3, (const char *const[]){"SERVICE", "INSTANCES", "VERSIONS"});
        for (int i = 0; i < n; i++) {
            char count[16], vers[1024] = "";
            snprintf(count, sizeof(count), "%u", list[i].n_instances);
            size_t off = 0;
            for (uint32_t k = 0; k < list[i].n_versions && off < sizeof(vers); k++) {
                const char *v = list[i].versions[k].version;
                int w = snprintf(vers + off, sizeof(vers) - off, "%s%s(%u)", k ? " " : "",
                                 *v ? v : "\"\"", list[i].versions[k].n_instances);
                if (w < 0)
                    break;
                off += (size_t)w;
            }
            ctl_table_add(&t, (const char *const[]){list[i].name, count, vers});
        }
        ctl_table_print(&t);
    }
    free(buf);
    ec = ctl_stale_check(ctl, h);
    disc_close(h);
    return ec;
}

/* ---- get ---------------------------------------------------------------------- */

static void tags_text(const struct disc_instance *in, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < in->n_tags && off < len; i++) {
        const char *k, *v;
        if (disc_instance_tag(in, i, &k, &v) < 0)
            continue;
        int w = snprintf(buf + off, len - off, "%s%s=%s", off ? "," : "", k, v);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

void ctl_not_found(const struct ctl *ctl, disc_handle *h, const struct disc_filter *f, bool exists)
{
    char target[DISC_SERVICE_MAX + 2];
    const char *what = ctl_filter_target(f, target, sizeof(target));
    if (!exists) {
        ctl_err(ctl, "no service '%s' in the registry", what);
        return;
    }
    /* Say how many the health condition hid (critical, maintenance). */
    int hidden = 0;
    if (f->health_mask && f->health_mask != DISC_HEALTH_MASK_ALL) {
        struct disc_filter all = *f;
        struct disc_instance *list;
        void *buf = NULL;
        all.health_mask = 0;
        hidden = ctl_lookup_all(h, &all, &list, &buf);
        free(buf);
    }
    if (hidden > 0)
        ctl_err(ctl,
                "no instance of '%s' matches (%d more not in rotation: critical or in "
                "maintenance; --all shows them)",
                what, hidden);
    else
        ctl_err(ctl, "no instance of '%s' matches", what);
}

int cmd_get(struct ctl *ctl, int argc, char **argv)
{
    struct disc_filter f;
    disc_filter_init(&f);
    f.health_mask = DISC_HEALTH_NOT_CRITICAL; /* in rotation, unless --health / --all */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            continue;
        int r = ctl_lookup_opt(ctl, argc, argv, &i, &f);
        if (r < 0)
            return EXIT_USAGE;
        if (r > 0)
            continue;
        if (ctl_service_operand(ctl, argv[i], &f))
            return EXIT_USAGE;
    }
    int ec = ctl_filter_finish(ctl, &f);
    if (ec)
        return ec;

    disc_handle *h;
    if ((ec = ctl_open(ctl, &h)))
        return ec;
    struct disc_instance *list;
    void *buf = NULL;
    int n = ctl_lookup_all(h, &f, &list, &buf);
    if (n < 0 && n != -ENOENT) {
        ctl_err(ctl, "%s", disc_strerror(n));
        disc_close(h);
        return EXIT_ERR;
    }
    bool exists = n != -ENOENT;
    if (n == -ENOENT)
        n = 0;
    /* Notes and maintenance reasons live in discd, not in the segment. */
    json_t *checks = ctl_local_checks(ctl, list, n);
    bool any_note = false;
    for (int i = 0; i < n && !any_note; i++) {
        char note[512];
        ctl_check_note(json_object_get(checks, list[i].id), note, sizeof(note));
        any_note = note[0] != '\0';
    }
    if (ctl->json) {
        json_t *arr = json_array();
        for (int i = 0; arr && i < n; i++) {
            json_t *o = ctl_instance_json(&list[i]);
            json_t *chk = json_object_get(checks, list[i].id);
            if (o && json_is_object(chk))
                json_object_set(o, "check", chk);
            json_array_append_new(arr, o);
        }
        ctl_print_json(json_pack("{s:o}", "instances", arr));
    } else if (n > 0) {
        /* A SERVICE column only when --prefix may match several services,
         * a NOTE column only when some check has a note. */
        size_t skip = f.service ? 1 : 0;
        static const char *const header[] = {"SERVICE", "ID",     "VERSION", "ADDRESS", "HOST",
                                             "AZ",      "WEIGHT", "HEALTH",  "ORIGIN",  "OWNER",
                                             "AGE",     "TAGS",   "NOTE"};
        struct ctl_table t;
        ctl_table_init(&t, 12 - skip + any_note, header + skip);
        for (int i = 0; i < n; i++) {
            char weight[16], age[16], tags[2048], note[512], owner[16] = "-";
            ctl_check_note(json_object_get(checks, list[i].id), note, sizeof(note));
            snprintf(weight, sizeof(weight), "%u", list[i].weight);
            if (list[i].owner_uid != DISC_OWNER_UNKNOWN)
                snprintf(owner, sizeof(owner), "%u", list[i].owner_uid);
            ctl_age(list[i].registered_at_ms, age, sizeof(age));
            tags_text(&list[i], tags, sizeof(tags));
            const char *const row[] = {list[i].service,
                                       list[i].id,
                                       list[i].version,
                                       list[i].address,
                                       list[i].host,
                                       list[i].az,
                                       weight,
                                       ctl_health_name(list[i].health),
                                       ctl_origin_name(list[i].origin),
                                       owner,
                                       age,
                                       tags,
                                       note};
            ctl_table_add(&t, row + skip);
        }
        ctl_table_print(&t);
    }
    json_decref(checks);
    if (n == 0 && !ctl->json)
        ctl_not_found(ctl, h, &f, exists);
    free(buf);
    ec = ctl_stale_check(ctl, h);
    disc_close(h);
    return n > 0 ? (ec ? ec : EXIT_OK) : EXIT_NOTFOUND;
}

/* ---- endpoints ------------------------------------------------------------------ */

int cmd_endpoints(struct ctl *ctl, int argc, char **argv)
{
    struct disc_filter f;
    disc_filter_init(&f);
    for (int i = 1; i < argc; i++) {
        int r = ctl_stale_opt(ctl, argc, argv, &i);
        if (r < 0)
            return EXIT_USAGE;
        if (r > 0 || strcmp(argv[i], "--") == 0)
            continue;
        if (argv[i][0] == '-' && argv[i][1])
            return ctl_usage_error(ctl, "unknown option '%s'", argv[i]);
        if (f.service)
            return ctl_usage_error(ctl, "unexpected argument '%s'", argv[i]);
        f.service = argv[i];
    }
    if (f.service && f.service[0] == '\0')
        return ctl_usage_error(ctl, "the service name is empty");
    disc_handle *h;
    int ec = ctl_open(ctl, &h);
    if (ec)
        return ec;
    struct disc_endpoint_info *list;
    void *buf;
    int n = ctl_view_all(h, &f, call_endpoints, (void **)&list, &buf);
    if (n < 0) {
        if (n == -ENOENT)
            ctl_err(ctl, "no service '%s' in the registry", f.service);
        else
            ctl_err(ctl, "%s", disc_strerror(n));
        disc_close(h);
        return n == -ENOENT ? EXIT_NOTFOUND : EXIT_ERR;
    }
    if (ctl->json) {
        json_t *arr = json_array();
        for (int i = 0; arr && i < n; i++)
            json_array_append_new(
                arr, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s}", "name",
                               list[i].name, "service", list[i].service, "version", list[i].version,
                               "instances", (json_int_t)list[i].n_instances, "reporting",
                               (json_int_t)list[i].n_reporting, "mean_us",
                               (json_int_t)list[i].mean_us, "p95_us", (json_int_t)list[i].p95_us,
                               "request", list[i].request_type ? list[i].request_type : "",
                               "response", list[i].response_type ? list[i].response_type : ""));
        ctl_print_json(json_pack("{s:o}", "endpoints", arr));
    } else {
        struct ctl_table t;
        ctl_table_init(&t, 7,
                       (const char *const[]){"ENDPOINT", "VERSION", "INSTANCES", "MEAN_US",
                                             "P95_US", "REQUEST", "RESPONSE"});
        for (int i = 0; i < n; i++) {
            char cnt[16], mean[16], p95[16];
            snprintf(cnt, sizeof(cnt), "%u", list[i].n_instances);
            snprintf(mean, sizeof(mean), "%u", list[i].mean_us);
            snprintf(p95, sizeof(p95), "%u", list[i].p95_us);
            if (!list[i].mean_us)
                strcpy(mean, "-");
            if (!list[i].p95_us)
                strcpy(p95, "-");
            ctl_table_add(&t, (const char *const[]){list[i].name, list[i].version, cnt, mean, p95,
                                                    list[i].request_type, list[i].response_type});
        }
        ctl_table_print(&t);
    }
    free(buf);
    ec = ctl_stale_check(ctl, h);
    disc_close(h);
    return ec;
}

/* ---- dump ----------------------------------------------------------------------- */

int cmd_dump(struct ctl *ctl, int argc, char **argv)
{
    if (ctl_no_operands(ctl, argc, argv))
        return EXIT_USAGE;
    disc_handle *h;
    int ec = ctl_open(ctl, &h);
    if (ec)
        return ec;
    struct disc_instance *list;
    void *buf;
    /* One copy-out call is one read section: a consistent snapshot. */
    int n = ctl_lookup_all(h, NULL, &list, &buf);
    struct disc_status st;
    if (n < 0 || disc_status(h, &st) < 0) {
        ctl_err(ctl, "%s", disc_strerror(n < 0 ? n : -EBADMSG));
        disc_close(h);
        return EXIT_ERR;
    }
    json_t *arr = json_array();
    for (int i = 0; arr && i < n; i++)
        json_array_append_new(arr, ctl_instance_json(&list[i]));
    const char *name = ctl->name ? ctl->name : getenv(DISC_NAME_ENV);
    ctl_print_json(json_pack("{s:s, s:I, s:o}", "registry",
                             name && *name ? name : DISC_DEFAULT_NAME, "generation",
                             (json_int_t)st.generation, "instances", arr));
    free(buf);
    disc_close(h);
    return EXIT_OK;
}

/* ---- status ---------------------------------------------------------------------- */

static const char *zk_state(const struct disc_status *st)
{
    if (!(st->flags & DISC_ST_ZK_CONFIGURED))
        return "standalone";
    return st->flags & DISC_ST_ZK_CONNECTED ? "connected" : "disconnected";
}

static json_t *status_json(const struct disc_status *st)
{
    json_t *j = json_pack(
        "{s:I, s:I, s:i, s:b, s:I, s:s, s:b, s:b, s:s, s:I, s:I, s:b, s:b, s:I, s:I, s:I, s:I, "
        "s:I, s:I, s:I, s:i, s:i}",
        "generation", (json_int_t)st->generation, "change_seq", (json_int_t)st->change_seq,
        "writer_pid", (int)st->writer_pid, "writer_alive", (st->flags & DISC_ST_WRITER_ALIVE) != 0,
        "heartbeat_age_ms", (json_int_t)st->heartbeat_age_ms, "zookeeper", zk_state(st), "degraded",
        (st->flags & DISC_ST_DEGRADED) != 0, "from_cache", (st->flags & DISC_ST_FROM_CACHE) != 0,
        "degraded_reason", disc_status_reason_str(st->degraded_reason), "degraded_since_ms",
        (json_int_t)st->degraded_since_ms, "last_sync_ms", (json_int_t)st->last_sync_ms,
        "cooling_off", (st->flags & DISC_ST_COOLING_OFF) != 0, "held",
        (st->flags & DISC_ST_HELD_CHANGES) != 0, "held_changes", (json_int_t)st->held_changes,
        "published_at_ms", (json_int_t)st->published_at_ms, "services", (json_int_t)st->n_services,
        "instances", (json_int_t)st->n_instances, "segment_bytes", (json_int_t)st->segment_bytes,
        "used_bytes", (json_int_t)st->used_bytes, "overtakes", (json_int_t)st->overtakes,
        "abi_major", (int)st->abi_major, "abi_minor", (int)st->abi_minor);
    if (j) {
        json_object_set_new(j, "writer_stopped", json_boolean(st->flags & DISC_ST_WRITER_STOPPED));
        json_object_set_new(j, "writer_dead_since_ms", json_integer(st->writer_dead_since_ms));
        json_object_set_new(j, "writer_dead_after_ms", json_integer(st->writer_dead_after_ms));
        json_t *stale = json_array();
        if (st->stale & DISC_STALE_WRITER_DEAD)
            json_array_append_new(stale, json_string("writer-dead"));
        if (st->stale & DISC_STALE_DEGRADED)
            json_array_append_new(stale, json_string("degraded"));
        if (st->stale & DISC_STALE_FROM_CACHE)
            json_array_append_new(stale, json_string("from-cache"));
        json_object_set_new(j, "stale", stale);
    }
    return j;
}

int cmd_status(struct ctl *ctl, int argc, char **argv)
{
    if (ctl_no_operands(ctl, argc, argv))
        return EXIT_USAGE;
    disc_handle *h = NULL;
    struct disc_status st;
    bool have_seg = false;
    int rc = disc_open(ctl->name, 0, &h);
    if (rc == 0 && (rc = disc_status(h, &st)) == 0)
        have_seg = true;

    /* The daemon's view, if its socket answers (quietly: it is optional). */
    json_t *daemon = NULL;
    disc_client *cl;
    if (ctl_connect(ctl, &cl, true) == 0) {
        disc_client_set_timeout(cl, 2000);
        char *resp = NULL;
        if (disc_client_request(cl, "{\"op\":\"status\"}", &resp) == 0) {
            daemon = json_loads(resp, 0, NULL);
            if (daemon && json_is_true(json_object_get(daemon, "ok")))
                json_object_del(daemon, "ok");
            else {
                json_decref(daemon);
                daemon = NULL;
            }
        }
        free(resp);
        disc_client_close(cl);
    }

    const char *name = ctl->name ? ctl->name : getenv(DISC_NAME_ENV);
    if (!name || !*name)
        name = DISC_DEFAULT_NAME;
    if (ctl->json) {
        json_t *seg = have_seg ? status_json(&st) : json_null();
        ctl_print_json(json_pack("{s:s, s:o, s:o}", "registry", name, "segment", seg, "daemon",
                                 daemon ? daemon : json_null()));
    } else {
        printf("registry:        %s\n", name);
        if (!have_seg) {
            printf("segment:         unavailable (%s)\n", disc_strerror(rc));
        } else {
            char age[16], pub[16], since[16], sync[16];
            ctl_age(st.published_at_ms, pub, sizeof(pub));
            ctl_age(st.degraded_since_ms, since, sizeof(since));
            ctl_age(st.last_sync_ms, sync, sizeof(sync));
            snprintf(age, sizeof(age), "%lld ms", (long long)st.heartbeat_age_ms);
            printf("generation:      %llu (published %s ago)\n", (unsigned long long)st.generation,
                   pub);
            printf("services:        %u\n", st.n_services);
            printf("instances:       %u\n", st.n_instances);
            if (st.flags & DISC_ST_WRITER_ALIVE) {
                printf("writer:          pid %d, alive (heartbeat %s ago)\n", (int)st.writer_pid,
                       age);
            } else {
                char when[32], ago[16];
                ctl_time_text(st.writer_dead_since_ms, when, sizeof(when));
                ctl_age(st.writer_dead_since_ms, ago, sizeof(ago));
                printf("writer:          pid %d, dead since %s (%s ago): %s\n", (int)st.writer_pid,
                       when, ago,
                       st.flags & DISC_ST_WRITER_STOPPED ? "shut down"
                                                         : "no heartbeat (crashed or hung)");
            }
            printf("zookeeper:       %s", zk_state(&st));
            if (st.flags & DISC_ST_ZK_CONFIGURED)
                printf(", last sync %s ago", sync);
            printf("\n");
            if (st.flags & DISC_ST_DEGRADED && st.degraded_since_ms > 0)
                printf("degraded:        yes, %s, since %s ago\n",
                       disc_status_reason_str(st.degraded_reason), since);
            else if (st.flags & DISC_ST_DEGRADED)
                printf("degraded:        yes, %s\n", disc_status_reason_str(st.degraded_reason));
            else
                printf("degraded:        no\n");
            if (st.flags & DISC_ST_FROM_CACHE)
                printf("from cache:      yes (snapshot restored from the file cache)\n");
            if (st.flags & DISC_ST_COOLING_OFF)
                printf("cooling off:     yes (removals held after a reconnect)\n");
            if (st.flags & DISC_ST_HELD_CHANGES)
                printf("held changes:    %u (protection holding back removals)\n", st.held_changes);
            printf("memory:          %llu of %llu bytes used\n", (unsigned long long)st.used_bytes,
                   (unsigned long long)st.segment_bytes);
            printf("overtakes:       %llu\n", (unsigned long long)st.overtakes);
        }
        if (!daemon) {
            printf("daemon:          not reachable on its socket\n");
        } else {
            json_t *v;
            printf("daemon:          reachable\n");
            if ((v = json_object_get(daemon, "uptime_s")))
                printf("  uptime:        %lld s\n", (long long)json_integer_value(v));
            if ((v = json_object_get(daemon, "connections")))
                printf("  connections:   %lld\n", (long long)json_integer_value(v));
            if ((v = json_object_get(daemon, "local_instances")))
                printf("  local:         %lld instances\n", (long long)json_integer_value(v));
            if ((v = json_object_get(daemon, "publisher")) && json_is_object(v)) {
#define PUB_N(k) ((long long)json_integer_value(json_object_get(v, k)))
                printf("  publisher:     %lld commits (%lld idle, %lld coalesced) of %lld "
                       "changes; %lld unchanged puts\n",
                       PUB_N("commits"), PUB_N("idle_commits"), PUB_N("coalesced_commits"),
                       PUB_N("changes"), PUB_N("unchanged_puts"));
#undef PUB_N
            }
            if ((v = json_object_get(daemon, "tcp_checks_local")) && json_is_string(v))
                printf("  local tcp checks: %s\n", json_string_value(v));
            if ((v = json_object_get(daemon, "zookeeper")) && json_is_object(v)) {
                json_t *e = json_object_get(v, "last_error");
                char esince[16];
                ctl_age(json_integer_value(json_object_get(v, "error_since_ms")), esince,
                        sizeof(esince));
                if (json_is_true(json_object_get(v, "synced")))
                    printf("  zk sync:       synced (every round completes)\n");
                else if (json_is_string(e) && json_string_length(e) > 0)
                    printf("  zk sync:       STUCK for %s: %s\n", esince, json_string_value(e));
                else
                    printf("  zk sync:       not synced (%s)\n",
                           json_string_value(json_object_get(v, "state")));
                size_t ii;
                json_t *src;
                json_array_foreach(json_object_get(v, "import"), ii, src)
                {
#define IMP_N(k) ((long long)json_integer_value(json_object_get(src, k)))
                    printf("  import %s: %s %s: %lld instances in %lld services; skipped %lld "
                           "(bad name %lld, bad data %lld, too large %lld, unreadable %lld); "
                           "held %lld\n",
                           json_string_value(json_object_get(src, "source")),
                           json_string_value(json_object_get(src, "format")),
                           json_string_value(json_object_get(src, "base")), IMP_N("instances"),
                           IMP_N("services"), IMP_N("bad_now"), IMP_N("skipped_bad_name"),
                           IMP_N("skipped_bad_data"), IMP_N("skipped_too_large"),
                           IMP_N("skipped_unreadable"), IMP_N("held_now"));
#undef IMP_N
                }
                json_t *ex = json_object_get(v, "export");
                if (json_is_object(ex))
                    printf("  export %s %s: %lld of %lld local instances exported; %lld "
                           "repairs, %lld errors\n",
                           json_string_value(json_object_get(ex, "format")),
                           json_string_value(json_object_get(ex, "base")),
                           (long long)json_integer_value(json_object_get(ex, "exported")),
                           (long long)json_integer_value(json_object_get(ex, "desired")),
                           (long long)json_integer_value(json_object_get(ex, "repairs")),
                           (long long)json_integer_value(json_object_get(ex, "errors")));
                char *z = json_dumps(v, JSON_COMPACT);
                if (z)
                    printf("  zookeeper:     %s\n", z);
                free(z);
            }
        }
        json_decref(daemon);
    }
    disc_close(h);
    if (!have_seg)
        return rc == -ENOENT || rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -EACCES
                   ? EXIT_UNAVAILABLE
                   : EXIT_ERR;
    return st.flags & DISC_ST_WRITER_ALIVE ? EXIT_OK : EXIT_UNAVAILABLE;
}
