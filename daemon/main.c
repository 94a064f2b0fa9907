/* SPDX-License-Identifier: MIT */
/*
 * main.c — discd: configuration, start-up, signals, shutdown.
 *
 * Threads: main (signals only), publisher (segment writer), control
 * (socket), health checker (when built in). See docs/DAEMON.md.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "log.h"
#include "cache_load.h"
#include "metrics.h"
#include "publisher.h"
#include "registry.h"
#include "service.h"
#include "state.h"
#include "zk_bridge.h"
#ifdef DISC_HAVE_HEALTH
#include "health.h"
#endif

#if defined(__SANITIZE_THREAD__)
/*
 * liburcu synchronises with its own inline-assembly atomics and futexes,
 * which ThreadSanitizer cannot see; reports whose stacks run through it are
 * false positives (e.g. cds_lfht_destroy's worker freeing its work item,
 * call_rcu callbacks freeing retired nodes). Our own code stays checked.
 */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "race:liburcu-cds.so\n"
           "race:liburcu-memb.so\n"
           "race:liburcu-common.so\n"
           "called_from_lib:liburcu-cds.so\n"
           "called_from_lib:liburcu-memb.so\n";
}
#endif

/* The daemon's top-level context. */
struct discd {
    struct discd_config cfg;
    struct registry *reg;
    struct publisher *pub;
    struct health *health;
    struct zk_bridge *zk; /* NULL in standalone mode (no --zk) */
    struct state *state;  /* the state file (local registrations, ZooKeeper session) */
    _Atomic(struct control *) control;
    struct metrics *metrics;
};

/* A start that failed part-way: stop and free what was started (a part not
 * started yet is NULL), in the order shutdown uses: the threads that change
 * the registry first, the state file (a registry listener) last. The
 * segment is unlinked when unlink is set (a failed start leaves nothing
 * behind); loaded, if not NULL, is freed too. Returns discd's exit status. */
static int fail_start(struct discd *d, bool unlink, struct state_loaded *loaded)
{
    zk_bridge_stop(d->zk);
#ifdef DISC_HAVE_HEALTH
    health_stop(d->health);
#endif
    publisher_stop(d->pub, unlink);
    registry_free(d->reg);
    zk_bridge_free(d->zk);
    metrics_free(d->metrics);
    if (loaded)
        state_loaded_free(loaded);
    state_close(d->state);
    return 1;
}

/* The control socket's "metrics" op renders the same text as the listener. */
static char *metrics_hook(void *arg, struct control *ctl, size_t *len)
{
    return metrics_render(arg, ctl, len);
}

#ifdef DISC_HAVE_HEALTH
/* Health checker thread: an instance failed its checks. */
static void on_health_fail(const char *id, const char *reason, void *arg)
{
    struct discd *d = arg;
    struct control *c = atomic_load(&d->control);
    if (c)
        control_request_removal(c, id, reason);
}

/* Health checker thread: an instance's judgement changed (critical, passing
 * again, warning). */
static void on_health_state(const char *id, uint8_t health, const char *reason, void *arg)
{
    struct discd *d = arg;
    struct control *c = atomic_load(&d->control);
    if (c)
        control_request_health(c, id, health, reason);
}
#endif

/* Control thread: acknowledged changes become durable before the reply. */
static void sync_state(void *arg)
{
    state_sync(arg);
}

/* ZooKeeper worker: a new session is saved for the next start to resume. */
static void save_zk_session(void *arg, const struct zk_sync_session *s)
{
    state_set_zk_session(arg, s->id, s->passwd);
}

static void fill_defaults(const struct discd_config *cfg, struct instance_defaults *def)
{
    def->host = cfg->host_id;
    def->az = cfg->az;
    def->interval_ms = cfg->check_interval_ms;
    def->timeout_ms = cfg->check_timeout_ms;
    def->misses = cfg->check_misses;
}

/* Allow max_connections descriptors plus headroom, as far as the hard limit permits. */
static void raise_fd_limit(uint32_t max_conns)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t)max_conns + 256;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
        log_warn("file descriptor limit is %llu; fewer than max-connections=%u connections "
                 "may be served",
                 (unsigned long long)rl.rlim_cur, max_conns);
}

static void reload(struct discd *d, int argc, char *const argv[])
{
    struct discd_config ncfg;
    char err[CONFIG_ERR_MAX];
    bool exit_now;
    if (config_from_args(&ncfg, argc, argv, &exit_now, err) < 0 ||
        config_finalize(&ncfg, err) < 0) {
        log_error("SIGHUP: configuration not reloaded: %s", err);
        return;
    }
    d->cfg.log_level = ncfg.log_level;
    d->cfg.check_interval_ms = ncfg.check_interval_ms;
    d->cfg.check_timeout_ms = ncfg.check_timeout_ms;
    d->cfg.check_misses = ncfg.check_misses;
    memcpy(d->cfg.check_tcp_local, ncfg.check_tcp_local, sizeof(ncfg.check_tcp_local));
#ifdef DISC_HAVE_HEALTH
    health_set_tcp_local(d->health, strcmp(ncfg.check_tcp_local, "connect") == 0
                                        ? HEALTH_TCP_LOCAL_CONNECT
                                        : HEALTH_TCP_LOCAL_DIAG);
#endif
    log_set_level(ncfg.log_level);
    struct instance_defaults def;
    fill_defaults(&d->cfg, &def);
    control_set_defaults(atomic_load(&d->control), &def);
    control_request_reload(atomic_load(&d->control)); /* static definitions */
    /* The registration policy: validated by config_finalize already. */
    char perr[256];
    if (control_set_policy(
            atomic_load(&d->control), (const char(*)[POLICY_TEXT_MAX])ncfg.register_rules,
            ncfg.n_register_rules, (const char(*)[POLICY_TEXT_MAX])ncfg.register_limits,
            ncfg.n_register_limits, perr) < 0) {
        log_error("SIGHUP: registration policy not reloaded (the previous one stays): %s", perr);
    } else {
        memcpy(d->cfg.register_rules, ncfg.register_rules, sizeof(ncfg.register_rules));
        memcpy(d->cfg.register_limits, ncfg.register_limits, sizeof(ncfg.register_limits));
        d->cfg.n_register_rules = ncfg.n_register_rules;
        d->cfg.n_register_limits = ncfg.n_register_limits;
    }
    if (memcmp(&ncfg, &d->cfg, sizeof(ncfg)) != 0)
        log_warn("SIGHUP: settings other than log-level, check-* and register-rule/limit "
                 "changed; restart discd to apply them");
    log_info("SIGHUP: reloaded: log-level=%s check-interval=%u check-timeout=%u "
             "check-misses=%u check-tcp-local=%s register-rules=%u register-limits=%u",
             log_level_name(ncfg.log_level), ncfg.check_interval_ms, ncfg.check_timeout_ms,
             ncfg.check_misses, ncfg.check_tcp_local, ncfg.n_register_rules,
             ncfg.n_register_limits);
}

/* Main-thread state for the service manager (service.h). */
struct service_tick {
    uint64_t watchdog_usec;   /* 0: no watchdog */
    int64_t last_watchdog_ms; /* monotonic */
    uint64_t last_ticks;      /* publisher heartbeat count at the last WATCHDOG=1 */
    char last_status[256];
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Called by the main thread at least every third of the watchdog period:
 * WATCHDOG=1 only if the publisher thread has refreshed the heartbeat since
 * the last one (a hung publisher lets systemd restart discd; WatchdogSec
 * must be at least 3 x --heartbeat), STATUS= when the summary changed. */
static void service_turn(struct discd *d, struct service_tick *st)
{
    struct publisher_stats ps;
    publisher_get_stats(d->pub, &ps);
    int64_t now = mono_ms();
    if (st->watchdog_usec) {
        if (ps.ticks != st->last_ticks) {
            service_watchdog();
            st->last_ticks = ps.ticks;
            st->last_watchdog_ms = now;
        } else if (now - st->last_watchdog_ms > (int64_t)(st->watchdog_usec / 2000)) {
            log_warn("systemd watchdog: the publisher thread has not refreshed the heartbeat "
                     "for %lld ms; not sending WATCHDOG=1",
                     (long long)(now - st->last_watchdog_ms));
        }
    }
    char status[256];
    snprintf(status, sizeof(status), "%u local and %u remote instances, generation %llu%s",
             registry_count_local(d->reg), registry_count_remote(d->reg),
             (unsigned long long)ps.generation, d->cfg.zk[0] ? ", zookeeper mode" : "");
    if (strcmp(status, st->last_status) != 0) {
        service_status("%s", status);
        snprintf(st->last_status, sizeof(st->last_status), "%s", status);
    }
}

int main(int argc, char *argv[])
{
    static struct discd d; /* zeroed; compared bytewise on reload */
    char err[CONFIG_ERR_MAX];
    bool exit_now = false;
    if (config_from_args(&d.cfg, argc, argv, &exit_now, err) < 0 ||
        config_finalize(&d.cfg, err) < 0) {
        fprintf(stderr, "discd: %s\n", err);
        return 1;
    }
    if (exit_now)
        return 0;
    if (d.cfg.check_only) {
        printf("discd: configuration OK (%s)\n",
               d.cfg.config_file[0] ? d.cfg.config_file : "no config file; flags only");
        return 0;
    }
    log_set_level(d.cfg.log_level);
    log_detect_journal();

    /* Signals are taken synchronously by this thread only. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(d.cfg.max_connections);

    log_info("discd %s starting (pid %d)", DISCD_VERSION, (int)getpid());
    config_log(&d.cfg);

    struct registry_config rcfg = {.max_local = d.cfg.max_instances};
    d.reg = registry_new(&rcfg);
    if (!d.reg) {
        log_error("cannot create the registry: %s", strerror(errno));
        return 1;
    }
    struct publisher_config pcfg = {
        .name = d.cfg.name,
        .coalesce_ms = d.cfg.publish_coalesce_ms,
        .coalesce_max = d.cfg.publish_coalesce_max,
        .tick_ms = d.cfg.heartbeat_ms,
        .cache_file = d.cfg.cache_file, /* written after changes, at most every 2 s */
        .max_segment_bytes = d.cfg.max_segment_bytes,
    };
    char segerr[512] = "";
    pcfg.segw = (struct segw_config){.segment_bytes = d.cfg.segment_bytes,
                                     .reclaim_after_ms = d.cfg.reclaim_after_ms,
                                     .dir = d.cfg.dir,
                                     /* in place once the restored state is committed */
                                     .defer_install = true,
                                     .err = segerr,
                                     .errlen = sizeof(segerr)};
    int rc = publisher_start(d.reg, &pcfg, &d.pub);
    if (rc == -EBUSY) {
        log_error("another discd is already publishing registry '%s' (its lock %s/%s.lock "
                  "is held); stop it first or start this one with a different --name",
                  d.cfg.name, d.cfg.dir, d.cfg.name);
        fprintf(stderr,
                "discd: another discd is already publishing registry '%s'; refusing to start\n",
                d.cfg.name);
        registry_free(d.reg);
        return 1;
    }
    if (rc < 0) {
        const char *why = segerr[0] ? segerr : strerror(-rc);
        log_error("cannot create the segment of registry '%s' in %s: %s%s", d.cfg.name, d.cfg.dir,
                  why,
                  rc == -ENOSPC ? " (the file system is full: free space or lower "
                                  "--segment-bytes)"
                                : "");
        fprintf(stderr, "discd: cannot create the segment of registry '%s' in %s: %s\n", d.cfg.name,
                d.cfg.dir, why);
        registry_free(d.reg);
        return 1;
    }
#ifdef DISC_HAVE_HEALTH
    d.health = health_start(on_health_fail, &d);
    if (!d.health) {
        log_error("cannot start the health checker: %s", strerror(errno));
        return fail_start(&d, true, NULL);
    }
    health_set_state_cb(d.health, on_health_state, &d);
    health_set_tcp_local(d.health, strcmp(d.cfg.check_tcp_local, "connect") == 0
                                       ? HEALTH_TCP_LOCAL_CONNECT
                                       : HEALTH_TCP_LOCAL_DIAG);
#endif
    /* The state file: local registrations to restore, the ZooKeeper session. */
    struct state_loaded loaded;
    {
        struct instance_defaults def;
        fill_defaults(&d.cfg, &def);
        char serr[STATE_ERR_MAX];
        rc = state_open(d.cfg.state_dir, d.cfg.name, &def, &d.state, &loaded, serr);
        if (rc == 0)
            rc = state_attach(d.state, d.reg);
        if (rc < 0) {
            log_error("%s", serr);
            fprintf(stderr, "discd: %s\n", serr);
            return fail_start(&d, false, NULL);
        }
        log_info("state %s: %zu local instances to restore%s", state_path(d.state), loaded.n,
                 loaded.have_zk ? ", a ZooKeeper session to resume" : "");
    }
    /* ZooKeeper mode: start syncing before the control socket serves, so the
     * registry listener sees every local registration (zk_bridge.h). */
    if (d.cfg.zk[0]) {
        /* Publish the last saved region picture first (origin CACHE): readers
         * have data now even if ZooKeeper is unreachable. zk_bridge drops
         * what the region does not confirm after its first full sync. */
        if (d.cfg.cache_file[0]) {
            int n = cache_load(d.reg, d.cfg.cache_file, d.cfg.host_id);
            if (n > 0) {
                publisher_set_snapshot_flags(d.pub, DISC_ST_FROM_CACHE);
                log_info("file cache %s: %d instances published until ZooKeeper confirms them",
                         d.cfg.cache_file, n);
            } else if (n < 0 && n != -ENOENT) {
                log_warn("file cache %s ignored: %s", d.cfg.cache_file,
                         n == -EBADMSG ? "damaged (checksum or format)" : strerror(-n));
            }
        }
        struct zk_sync_session resume = {.id = loaded.zk_session};
        memcpy(resume.passwd, loaded.zk_passwd, sizeof(resume.passwd));
        struct zk_bridge_persist persist = {
            .resume = loaded.have_zk ? &resume : NULL,
            .save = save_zk_session,
            .arg = d.state,
        };
        rc = zk_bridge_start(&d.cfg, d.reg, d.pub, &persist, &d.zk);
        if (rc < 0) {
            log_error("cannot start the ZooKeeper layer: %s", strerror(-rc));
            fprintf(stderr, "discd: cannot start the ZooKeeper layer: %s\n", strerror(-rc));
            return fail_start(&d, true, &loaded);
        }
    }
    struct control_config ccfg = {
        .socket_path = d.cfg.socket,
        .socket_mode = d.cfg.socket_mode,
        .socket_gid = d.cfg.socket_gid,
        .register_rules = d.cfg.register_rules,
        .n_register_rules = d.cfg.n_register_rules,
        .register_limits = d.cfg.register_limits,
        .n_register_limits = d.cfg.n_register_limits,
        .max_connections = d.cfg.max_connections,
        .registry_name = d.cfg.name,
        .version = DISCD_VERSION,
        .zk_configured = d.cfg.zk[0] != '\0',
        .restore = loaded.insts,
        .n_restore = loaded.n,
        .session_grace_ms = d.cfg.session_grace_ms,
        .services_dir = d.cfg.services_dir,
        .sync = sync_state,
        .sync_arg = d.state,
    };
    fill_defaults(&d.cfg, &ccfg.defaults);
    struct metrics_sources msrc = {
        .reg = d.reg,
        .pub = d.pub,
        .health = d.health,
        .zk = d.zk,
        .registry_name = d.cfg.name,
        .version = DISCD_VERSION,
    };
    d.metrics = metrics_new(&msrc);
    char cerr[256] = "out of memory";
    if (!d.metrics || (d.cfg.metrics_listen[0] &&
                       metrics_http_start(d.metrics, d.cfg.metrics_listen, cerr) < 0)) {
        /* Asked for and not available: say so and stop rather than run unseen. */
        log_error("cannot serve metrics: %s", cerr);
        fprintf(stderr, "discd: cannot serve metrics: %s\n", cerr);
        return fail_start(&d, true, &loaded);
    }
    ccfg.metrics = metrics_hook; /* the "metrics" op */
    ccfg.metrics_arg = d.metrics;
    struct control *ctl = NULL;
    rc = control_start(&ccfg, d.reg, d.pub, d.health, &ctl, cerr);
    if (rc == 0)
        metrics_set_control(d.metrics, ctl); /* HTTP scrapes answer 503 until now */
    state_loaded_free(&loaded);
    if (rc == 0)
        state_compact(d.state); /* the restored set, once */
    if (rc < 0) {
        log_error("cannot serve the control socket: %s", cerr);
        fprintf(stderr, "discd: %s\n", cerr);
        return fail_start(&d, true, NULL);
    }
    /* Readers keep the previous discd's picture until the new segment holds
     * everything restored (state file, static definitions, file cache): only
     * then is it renamed into place. */
    publisher_install(d.pub);
    atomic_store(&d.control, ctl);
    zk_bridge_attach_control(d.zk, ctl); /* status op: "zookeeper" object */
    log_info("ready: registry '%s' in %s, socket %s, %s mode", d.cfg.name, d.cfg.dir, d.cfg.socket,
             d.cfg.zk[0] ? "zookeeper" : "standalone");

    service_ready("serving registry '%s' (%s mode), socket %s", d.cfg.name,
                  d.cfg.zk[0] ? "zookeeper" : "standalone", d.cfg.socket);
    struct service_tick st = {.watchdog_usec = service_watchdog_usec(),
                              .last_watchdog_ms = mono_ms()};
    if (st.watchdog_usec)
        log_info("systemd watchdog: WATCHDOG=1 every %llu ms while the publisher runs",
                 (unsigned long long)(st.watchdog_usec / 3000));

    for (;;) {
        siginfo_t si;
        int sig;
        if (service_managed()) {
            /* Wake every third of the watchdog period (at most 5 s) for WATCHDOG=1 and STATUS=. */
            uint64_t us = st.watchdog_usec ? st.watchdog_usec / 3 : 5000000;
            if (us > 5000000)
                us = 5000000;
            struct timespec ts = {.tv_sec = (time_t)(us / 1000000),
                                  .tv_nsec = (long)(us % 1000000) * 1000};
            sig = sigtimedwait(&sigs, &si, &ts);
            service_turn(&d, &st);
        } else {
            sig = sigwaitinfo(&sigs, &si);
        }
        if (sig < 0)
            continue; /* EINTR, or the timeout */
        if (sig == SIGHUP) {
            log_info("SIGHUP received: reloading");
            service_reloading();
            reload(&d, argc, argv);
            service_ready("reloaded: log-level=%s", log_level_name(d.cfg.log_level));
            continue;
        }
        log_info("%s received from pid %d: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                 (int)si.si_pid);
        service_stopping(sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }

    /* Readers learn at once that this writer is going away (dead since now). */
    publisher_announce_stop(d.pub);
    /* Order: no more scrapes -> no more requests (health_add) -> no more
     * checks (on_fail) -> free. */
    metrics_http_stop(d.metrics);
    control_halt(ctl);
#ifdef DISC_HAVE_HEALTH
    health_stop(d.health);
#endif
    atomic_store(&d.control, NULL);
    control_stop(ctl);
    /* ZooKeeper after control and health (no more local changes), before the
     * registry and publisher it feeds: closing the session removes this
     * host's nodes from the region at once (docs/ZOOKEEPER.md). */
    zk_bridge_stop(d.zk);
    publisher_stop(d.pub, d.cfg.unlink_on_exit);
    registry_free(d.reg);
    zk_bridge_free(d.zk);
    metrics_free(d.metrics);
    state_close(d.state); /* after the last local change and ZooKeeper callback */
    log_info("stopped");
    return 0;
}
