/* SPDX-License-Identifier: MIT */
/* config.c — defaults, config file and flags for discd (see config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "discshm.h"
#include "format.h"
#include "metrics.h"
#include "regdir.h"

enum opt_type {
    OPT_STR,
    OPT_U32,
    OPT_U64,
    OPT_MODE,
    OPT_LEVEL,
    OPT_BOOL,
    OPT_FRACTION,
    OPT_RULE,   /* repeatable: appended to register_rules */
    OPT_LIMIT,  /* repeatable: appended to register_limits */
    OPT_IMPORT, /* repeatable: appended to imports */
};

struct opt_def {
    const char *name;
    enum opt_type type;
    size_t offset;
    size_t size; /* OPT_STR: buffer size */
    uint64_t min, max;
    const char *arg;   /* metavariable in --help */
    const char *deflt; /* default, as shown in --help */
    bool reloadable;   /* applied on SIGHUP */
    const char *help;
};

#define F(field) offsetof(struct discd_config, field), sizeof(((struct discd_config *)0)->field)

static const struct opt_def opts[] = {
    {"name", OPT_STR, F(name), 1, 0, "NAME", "$DISCSHM_NAME, else \"discshm\"", false,
     "Registry name: the objects are DIR/NAME (the data segment) and DIR/NAME.lock (the "
     "one-writer lock), see --dir. Letters, digits, '.', '_', '-'; at most 200 bytes; not "
     "starting with '.' nor ending in \".lock\". Only one discd may publish a given name."},
    {"dir", OPT_STR, F(dir), 0, 0, "DIR",
     "$DISCSHM_DIR, else /run/discshm for root, else "
     "$XDG_RUNTIME_DIR/discshm",
     false,
     "Registry directory. Created (0755) if missing; it must be owned by discd's uid and "
     "writable by nobody else, and sit in a directory owned by root or by discd's uid that "
     "nobody else can write: discd refuses to start otherwise. Readers make the same checks "
     "(libdiscshm looks in $DISCSHM_DIR, else the same defaults)."},
    {"socket", OPT_STR, F(socket), 1, 0, "PATH", "$RUNTIME_DIR/discd/NAME.sock", false,
     "Control socket path. RUNTIME_DIR is /run for root, else $XDG_RUNTIME_DIR (without it a "
     "non-root discd needs --socket: /tmp is never used). Clients look in "
     "$XDG_RUNTIME_DIR/discd, then /run/discd. "
     "The directory is created (0755) if missing; a stale socket file is replaced."},
    {"socket-mode", OPT_MODE, F(socket_mode), 0, 07777, "OCTAL", "0666", false,
     "Permission bits of the control socket. The default lets every local user register "
     "(within the registration policy); deregister and pass are still limited to the "
     "registering uid (or root)."},
    {"socket-group", OPT_STR, F(socket_group), 0, 0, "GROUP", "discd's group", false,
     "Group (name or number) the control socket is given, e.g. with socket-mode 0660 so only "
     "that group (and discd's uid) may connect."},
    {"register-rule", OPT_RULE, F(register_rules), 0, 0, "RULE", "\"allow any *\"", false,
     "RULE is 'allow|deny WHO NAMES': who may register which service names; repeatable, tried "
     "in order, the first rule whose "
     "WHO (any, uid:N, user:NAME, gid:N, group:NAME) and NAMES (a name, a prefix ending in "
     "'*', or '*') match decides; no match refuses. Root is never refused."},
    {"register-limit", OPT_LIMIT, F(register_limits), 0, 0, "LIMIT",
     "\"any instances=1024 bytes=1048576\" except root and discd's uid", false,
     "LIMIT is 'WHO [instances=N] [bytes=N]': per-uid limits on local instances and their "
     "record bytes; repeatable, the first line "
     "whose WHO matches the registering peer applies to its uid; no match: no limit."},
    {"log-level", OPT_LEVEL, F(log_level), 0, 0, "LEVEL", "info", true,
     "error, warn, info or debug. Logs go to stderr, one line per message with a UTC "
     "timestamp."},
    {"check-interval", OPT_U32, F(check_interval_ms), 50, 3600000, "MS", "1000", true,
     "Default check interval for registrations that do not set check.interval_ms (session "
     "pings, tcp/http probes)."},
    {"check-timeout", OPT_U32, F(check_timeout_ms), 1, 3600000, "MS", "500", true,
     "Default time a ping or probe may take before it counts as missed; clamped to half the "
     "interval when not below it."},
    {"check-misses", OPT_U32, F(check_misses), 1, 100, "N", "3", true,
     "Default number of consecutive missed checks after which an instance is removed."},
    {"check-tcp-local", OPT_STR, F(check_tcp_local), 1, 0, "diag|connect", "diag", true,
     "How tcp checks of targets local to discd's network namespace (loopback or an address "
     "of a local interface) are made. diag: from one NETLINK_SOCK_DIAG listing of the "
     "listening sockets per tick, shared by every check due in it; a check passes when the "
     "listener the kernel would pick for the target exists and its accept queue is not full "
     "(what a connect would find, at a fraction of its cost). Other targets, unix sockets and "
     "listeners bound to a device are connected to, and so is every target when sock_diag "
     "is unavailable (said by 'discctl status'). connect: every tcp check connects."},
    {"max-connections", OPT_U32, F(max_connections), 1, 1000000, "N", "4096", false,
     "Control connections served at once; one more is accepted, answered with a \"limit\" "
     "error and closed. Each connection uses one file descriptor: the soft RLIMIT_NOFILE is "
     "raised as far as the hard limit allows."},
    {"max-instances", OPT_U32, F(max_instances), 1, 10000000, "N", "100000", false,
     "Local registrations held at once; beyond it register fails with \"limit\"."},
    {"publish-coalesce", OPT_U32, F(publish_coalesce_ms), 0, 1000, "MS", "2", false,
     "A change that finds the publisher idle (no commit for the last MS) is published at "
     "once; later changes of a stream are published together, MS after the previous "
     "commit (0: never wait)."},
    {"publish-coalesce-max", OPT_U32, F(publish_coalesce_max), 1, 1000000, "N", "1024", false,
     "Publish without waiting once N changes are queued."},
    {"heartbeat", OPT_U32, F(heartbeat_ms), 10, 2000, "MS", "250", false,
     "How often the writer heartbeat in the segment header is refreshed (and retired memory "
     "reclaimed). Readers consider the writer dead after 8 heartbeats without one (at least 2000 "
     "ms), and at once after a clean shutdown."},
    {"segment-bytes", OPT_U64, F(segment_bytes), 0, UINT64_C(1) << 40, "BYTES", "4194304", false,
     "Initial size of the data segment, 1 MiB to 4 GiB; 0: the writer's default. It is fully "
     "allocated (a restart briefly needs it twice), so a full file system is reported then, "
     "never met later. When registrations need more, discd rolls over to a segment twice as "
     "large (see max-segment-size)."},
    {"max-segment-size", OPT_U64, F(max_segment_bytes), UINT64_C(1) << 20, UINT64_C(4294963200),
     "BYTES", "1073741824", false,
     "Largest segment discd grows to. A full segment is replaced by one twice as large "
     "(built beside it, fully allocated, then renamed into place; readers move to it at their "
     "next read, and a roll briefly needs both). Only at this size, or when the file system "
     "cannot hold the larger segment, is a registration refused with segment_full (logged "
     "with the cause). At most 4294963200 (offsets are 32-bit); not above segment-bytes: "
     "never grow."},
    {"reclaim-after", OPT_U32, F(reclaim_after_ms), 1, 600000, "MS", "1000", false,
     "Segment memory that a publish replaced is reused after MS (earlier only when replaced "
     "records exceed a quarter of the segment). A reader section that lasts longer than "
     "this is retried."},
    {"unlink-on-exit", OPT_BOOL, F(unlink_on_exit), 0, 1, NULL, "false", false,
     "Remove every object (segment and lock, and the registry directory if discd created it "
     "and it is empty) on a clean shutdown; open readers then report the registry as gone "
     "(DISC_ST_GONE). By default they stay so readers keep the last picture and the next "
     "discd recycles them."},
    {"zk", OPT_STR, F(zk), 0, 0, "CONNECT", "\"\" (standalone)", false,
     "ZooKeeper connect string (host:port,host:port[/chroot]). Empty: standalone mode, a "
     "host-local registry."},
    {"zk-root", OPT_STR, F(zk_root), 1, 0, "PATH", "/discshm", false,
     "Root znode of the registry in ZooKeeper."},
    {"zk-cooloff", OPT_U32, F(zk_cooloff_ms), 0, 3600000, "MS", "0 (2 x check-interval)", false,
     "Cooling-off after each ZooKeeper (re)connect: removals found by sync are held this long "
     "so instances that have not re-announced yet are not dropped; additions apply at once."},
    {"zk-auth-file", OPT_STR, F(zk_auth_file), 0, 0, "PATH", "\"\" (none: nodes world-writable)",
     false,
     "File holding ZooKeeper digest credentials, one line \"user:password\". It must belong to "
     "discd's user and be readable by nobody else (mode 0600 or 0400), or discd refuses to start. "
     "With it, discd authenticates and creates its nodes writable only by this identity and "
     "readable by all (docs/ZOOKEEPER.md, ACLs)."},
    {"zk-audit-interval", OPT_U32, F(zk_audit_ms), 0, 86400000, "MS", "60000", false,
     "How often every remote instance node's stat is checked, so a node another ZooKeeper "
     "client changed in place is read again (one exists per node; 0: off)."},
    {"import", OPT_IMPORT, F(imports), 0, 0, "SOURCE", "none", false,
     "SOURCE is 'FORMAT [BASE] [name=NAME] [service=NAME]': read a registry another framework "
     "keeps in ZooKeeper (needs --zk), read-only, beside discd's own tree; repeatable, one "
     "line per source (at most 16). FORMAT: dubbo (BASE default /dubbo: "
     "BASE/<interface>/providers/<URL>), serverset (BASE required, one service: "
     "BASE/member_<seq>; service= names it, default the last component of BASE), kitex "
     "(Kitex/Hertz, BASE default /: BASE/<service>/<ip>:<port>), curator (Apache Curator "
     "x-discovery, also Spring Cloud Zookeeper and Dubbo 3; BASE default /services: "
     "BASE/<service>/<id>). NAME (default FORMAT) is "
     "the value of the \"source\" tag of its instances. See docs/IMPORT.md."},
    {"export-curator", OPT_STR, F(export_curator), 0, 0, "BASE", "none", false,
     "Publish this host's local instances in Apache Curator x-discovery form (needs --zk), so "
     "Java ServiceDiscovery clients find them: BASE/<service>/<instance id>, ephemeral on "
     "discd's session, JSON name, id (= the node name), address, port, serviceType DYNAMIC, "
     "enabled true. Removed on deregistration, when a check fails (critical) and in "
     "maintenance; instances with a unix-socket address are not exported. Curator's own "
     "default BASE is /services. With 'import = curator' on the same BASE, discd does not "
     "import its own exports again (the native tree carries them). See docs/IMPORT.md."},
    {"zk-snapshots", OPT_BOOL, F(zk_snapshots), 0, 1, NULL, "true", false,
     "Keep an aggregate snapshot of this host's instances in ZooKeeper (<root>/snap/HOST) and "
     "read other hosts' snapshots on a first sync, instead of one read per instance. A read "
     "accelerator only: the instance nodes stay the truth (docs/ZOOKEEPER.md, Aggregate "
     "snapshots). false: neither, as discd before snapshots."},
    {"zk-session-timeout", OPT_U32, F(zk_session_timeout_ms), 1000, 600000, "MS", "10000", false,
     "ZooKeeper session timeout requested."},
    {"host-id", OPT_STR, F(host_id), 1, 0, "ID", "the hostname", false,
     "This host's id: the default \"host\" of local registrations and its ZooKeeper key."},
    {"az", OPT_STR, F(az), 0, 0, "ZONE", "\"\"", false,
     "Availability zone / region: the default \"az\" of local registrations."},
    {"cache-file", OPT_STR, F(cache_file), 0, 0, "PATH", "\"\" (none)", false,
     "File cache: after changes (at most every 2 s) the registry is written here atomically, "
     "checksummed; readers opening with DISC_OPEN_CACHE_FALLBACK use it when no segment exists. "
     "Conventional path: /var/cache/discshm/NAME.cache."},
    {"protect-shrink", OPT_FRACTION, F(protect_shrink), 0, 1, "FRACTION", "0.5", false,
     "Hold remote removals that would empty a service or shrink it by more than this fraction "
     "in one step (0 disables). See docs/DAEMON.md, Protection."},
    {"protect-hold", OPT_U32, F(protect_hold_ms), 0, 3600000, "MS", "0 (2 x check-interval)", false,
     "How long held removals wait before they are applied anyway."},
    {"metrics-listen", OPT_STR, F(metrics_listen), 0, 0, "ADDR:PORT", "\"\" (off)", false,
     "Serve Prometheus metrics over HTTP at http://ADDR:PORT/metrics (numeric IPv4 or "
     "[IPv6] address; port 0 picks a free one, logged). Metrics carry no secrets but reveal "
     "the registry's size and activity: bind to 127.0.0.1 unless a scraper elsewhere needs "
     "them. 'discctl metrics' prints the same text without a listener."},
    {"state-dir", OPT_STR, F(state_dir), 1, 0, "DIR",
     "$STATE_DIRECTORY (systemd), else /var/lib/discd (root), else $XDG_STATE_HOME/discd or "
     "~/.local/state/discd",
     false,
     "Where discd keeps its local registrations (DIR/NAME.state, mode 0600) so a restart or a "
     "crash loses none, and its ZooKeeper session so a quick restart keeps its nodes. Created "
     "0700 if missing; the directory and the file must belong to discd's uid and not be "
     "writable by others, else discd refuses to start."},
    {"services-dir", OPT_STR, F(services_dir), 1, 0, "DIR", "/etc/discd/services.d", false,
     "Static service definitions: every DIR/*.json is registered at start and re-applied on "
     "SIGHUP and 'discctl reload' (added, changed, removed files). A bad file is reported with "
     "file:line and the others still load. A missing directory means none."},
    {"session-grace", OPT_U32, F(session_grace_ms), 0, 3600000, "MS", "15000", false,
     "After a restart, session instances restored from the state file wait this long for their "
     "client to reconnect and re-attach (libdiscclient does it by itself) before they are "
     "removed."},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static const struct opt_def *find_opt(const char *name)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    }
    return NULL;
}

void config_defaults(struct discd_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    const char *env = getenv(DISC_NAME_ENV);
    snprintf(cfg->name, sizeof(cfg->name), "%s", env && *env ? env : DISC_DEFAULT_NAME);
    cfg->socket_mode = 0666;
    cfg->socket_gid = -1;
    cfg->log_level = LOG_LVL_INFO;
    cfg->check_interval_ms = 1000;
    cfg->check_timeout_ms = 500;
    cfg->check_misses = 3;
    snprintf(cfg->check_tcp_local, sizeof(cfg->check_tcp_local), "diag");
    cfg->max_connections = 4096;
    cfg->max_instances = 100000;
    cfg->publish_coalesce_ms = 2;
    cfg->publish_coalesce_max = 1024;
    cfg->heartbeat_ms = 250;
    cfg->reclaim_after_ms = 1000;
    cfg->max_segment_bytes = UINT64_C(1) << 30;
    snprintf(cfg->zk_root, sizeof(cfg->zk_root), "/discshm");
    cfg->zk_session_timeout_ms = 10000;
    cfg->zk_audit_ms = 60000;
    cfg->zk_snapshots = true;
    cfg->protect_shrink = 0.5;
    snprintf(cfg->services_dir, sizeof(cfg->services_dir), "/etc/discd/services.d");
    cfg->session_grace_ms = 15000;
}

static int parse_u64(const char *s, int base, uint64_t *out)
{
    if (!*s || *s == '-' || isspace((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, base);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 200 || s[0] == '.' || (n >= 5 && strcmp(s + n - 5, ".lock") == 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

int config_set(struct discd_config *cfg, const char *key, const char *value, char *err)
{
    const struct opt_def *o = find_opt(key);
    if (!o) {
        snprintf(err, CONFIG_ERR_MAX, "unknown setting '%s'", key);
        return -ENOENT;
    }
    char *field = (char *)cfg + o->offset;
    uint64_t v = 0;
    char sub[POLICY_ERR_MAX];
    switch (o->type) {
    case OPT_IMPORT: {
        struct fmt_source src, prev;
        char sub2[CONFIG_ERR_MAX];
        if (fmt_source_parse(value, &src, sub2, sizeof(sub2)) < 0) {
            snprintf(err, CONFIG_ERR_MAX, "%s", sub2);
            return -EINVAL;
        }
        if (cfg->n_imports >= CONFIG_IMPORT_MAX || strlen(value) >= CONFIG_IMPORT_LEN) {
            snprintf(err, CONFIG_ERR_MAX, "import: more than %d sources", CONFIG_IMPORT_MAX);
            return -EINVAL;
        }
        for (uint32_t i = 0; i < cfg->n_imports; i++) {
            if (fmt_source_parse(cfg->imports[i], &prev, sub2, sizeof(sub2)) == 0 &&
                (strcmp(prev.name, src.name) == 0 ||
                 (prev.fmt == src.fmt && strcmp(prev.base, src.base) == 0))) {
                snprintf(
                    err, CONFIG_ERR_MAX,
                    "import: source '%s' (%s %.150s) repeats import '%.150s': give each source "
                    "its own base and name=",
                    src.name, src.fmt->name, src.base, cfg->imports[i]);
                return -EINVAL;
            }
        }
        snprintf(cfg->imports[cfg->n_imports++], CONFIG_IMPORT_LEN, "%s", value);
        return 0;
    }
    case OPT_RULE:
    case OPT_LIMIT: {
        bool rule = o->type == OPT_RULE;
        uint32_t *n = rule ? &cfg->n_register_rules : &cfg->n_register_limits;
        int rc = rule ? policy_check_rule_text(value, sub) : policy_check_limit_text(value, sub);
        if (rc < 0) {
            snprintf(err, CONFIG_ERR_MAX, "%s: %s", key, sub);
            return -EINVAL;
        }
        if (*n >= CONFIG_POLICY_MAX) {
            snprintf(err, CONFIG_ERR_MAX, "%s: more than %d lines", key, CONFIG_POLICY_MAX);
            return -EINVAL;
        }
        snprintf(rule ? cfg->register_rules[*n] : cfg->register_limits[*n], POLICY_TEXT_MAX, "%s",
                 value);
        (*n)++;
        return 0;
    }
    case OPT_STR:
        if (strlen(value) >= o->size) {
            snprintf(err, CONFIG_ERR_MAX, "%s: value too long (max %zu bytes)", key, o->size - 1);
            return -EINVAL;
        }
        if (o->min && !*value) {
            snprintf(err, CONFIG_ERR_MAX, "%s: value must not be empty", key);
            return -EINVAL;
        }
        if (strcmp(key, "name") == 0 && !valid_name(value)) {
            snprintf(err, CONFIG_ERR_MAX,
                     "name: '%s' is not a valid registry name (1..200 of A-Z a-z 0-9 . _ -, "
                     "not starting with '.', not ending in \".lock\")",
                     value);
            return -EINVAL;
        }
        if (strcmp(key, "check-tcp-local") == 0 && strcmp(value, "diag") != 0 &&
            strcmp(value, "connect") != 0) {
            snprintf(err, CONFIG_ERR_MAX, "check-tcp-local: '%s' is not diag or connect", value);
            return -EINVAL;
        }
        if (strcmp(key, "zk-root") == 0 && value[0] != '/') {
            snprintf(err, CONFIG_ERR_MAX, "zk-root: must start with '/'");
            return -EINVAL;
        }
        snprintf(field, o->size, "%s", value);
        return 0;
    case OPT_LEVEL:
        if (log_level_parse(value, (enum log_level *)(void *)field) < 0) {
            snprintf(err, CONFIG_ERR_MAX, "%s: '%s' is not one of error, warn, info, debug", key,
                     value);
            return -EINVAL;
        }
        return 0;
    case OPT_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "1") ||
            !strcmp(value, "on"))
            *(bool *)(void *)field = true;
        else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "0") ||
                 !strcmp(value, "off"))
            *(bool *)(void *)field = false;
        else {
            snprintf(err, CONFIG_ERR_MAX, "%s: '%s' is not a boolean (true/false)", key, value);
            return -EINVAL;
        }
        return 0;
    case OPT_FRACTION: {
        char *end = NULL;
        errno = 0;
        double d = *value ? strtod(value, &end) : -1.0;
        if (errno || !end || *end || !(d >= 0.0 && d <= 1.0)) {
            snprintf(err, CONFIG_ERR_MAX, "%s: '%s' is not a number in 0..1", key, value);
            return -EINVAL;
        }
        *(double *)(void *)field = d;
        return 0;
    }
    case OPT_U32:
    case OPT_U64:
    case OPT_MODE:
        if (parse_u64(value, o->type == OPT_MODE ? 8 : 10, &v) < 0 || v < o->min || v > o->max) {
            if (o->type == OPT_MODE)
                snprintf(err, CONFIG_ERR_MAX, "%s: '%s' is not an octal mode (e.g. 0660)", key,
                         value);
            else
                snprintf(err, CONFIG_ERR_MAX, "%s: '%s' is not an integer in %" PRIu64 "..%" PRIu64,
                         key, value, o->min, o->max);
            return -EINVAL;
        }
        if (o->type == OPT_U64)
            *(uint64_t *)(void *)field = v;
        else
            *(uint32_t *)(void *)field = (uint32_t)v;
        return 0;
    }
    return -EINVAL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int config_load_file(struct discd_config *cfg, const char *path, char *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(err, CONFIG_ERR_MAX, "%s: %s", path, strerror(e));
        return -e;
    }
    char line[8192];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, CONFIG_ERR_MAX, "%s:%d: line too long", path, lineno);
            rc = -EINVAL;
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, CONFIG_ERR_MAX, "%s:%d: expected 'key = value'", path, lineno);
            rc = -EINVAL;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        char sub[CONFIG_ERR_MAX];
        if (strcmp(key, "config") == 0) {
            snprintf(err, CONFIG_ERR_MAX, "%s:%d: 'config' cannot be set in a config file", path,
                     lineno);
            rc = -EINVAL;
            break;
        }
        if ((rc = config_set(cfg, key, value, sub)) < 0) {
            snprintf(err, CONFIG_ERR_MAX, "%s:%d: %.400s", path, lineno, sub);
            rc = -EINVAL;
            break;
        }
    }
    fclose(f);
    if (rc == 0)
        snprintf(cfg->config_file, sizeof(cfg->config_file), "%s", path);
    return rc;
}

/* Long options: every table entry plus config, check-config, help, version. */
enum { OPT_ID_CONFIG = 1000, OPT_ID_HELP, OPT_ID_VERSION, OPT_ID_CHECK };

int config_from_args(struct discd_config *cfg, int argc, char *const argv[], bool *exit_now,
                     char *err)
{
    struct option longopts[N_OPTS + 5];
    for (size_t i = 0; i < N_OPTS; i++) {
        longopts[i].name = opts[i].name;
        longopts[i].has_arg = opts[i].type == OPT_BOOL ? optional_argument : required_argument;
        longopts[i].flag = NULL;
        longopts[i].val = (int)i;
    }
    longopts[N_OPTS] = (struct option){"config", required_argument, NULL, OPT_ID_CONFIG};
    longopts[N_OPTS + 1] = (struct option){"help", no_argument, NULL, OPT_ID_HELP};
    longopts[N_OPTS + 2] = (struct option){"version", no_argument, NULL, OPT_ID_VERSION};
    longopts[N_OPTS + 3] = (struct option){"check-config", no_argument, NULL, OPT_ID_CHECK};
    longopts[N_OPTS + 4] = (struct option){NULL, 0, NULL, 0};

    *exit_now = false;
    config_defaults(cfg);
    /* Two passes: the config file first, so that flags override it. */
    for (int pass = 0; pass < 2; pass++) {
        optind = 0; /* full re-initialisation of getopt */
        opterr = 0;
        int c, idx;
        while ((c = getopt_long(argc, argv, ":c:hVt", longopts, &idx)) != -1) {
            if (c == '?' || c == ':') {
                const char *what = optopt ? NULL : argv[optind - 1];
                if (c == ':')
                    snprintf(err, CONFIG_ERR_MAX, "option %s needs a value", argv[optind - 1]);
                else if (what)
                    snprintf(err, CONFIG_ERR_MAX, "unknown option '%s' (see --help)", what);
                else
                    snprintf(err, CONFIG_ERR_MAX, "unknown option '-%c' (see --help)", optopt);
                return -EINVAL;
            }
            if (c == 'h' || c == OPT_ID_HELP) {
                if (pass == 0) {
                    config_usage(stdout);
                    *exit_now = true;
                    return 0;
                }
                continue;
            }
            if (c == 'V' || c == OPT_ID_VERSION) {
                if (pass == 0) {
                    printf("discd %s\n", DISCD_VERSION);
                    *exit_now = true;
                    return 0;
                }
                continue;
            }
            if (c == 't' || c == OPT_ID_CHECK) {
                cfg->check_only = true;
                continue;
            }
            if (c == 'c' || c == OPT_ID_CONFIG) {
                if (pass == 0 && config_load_file(cfg, optarg, err) < 0)
                    return -EINVAL;
                continue;
            }
            if (pass == 0)
                continue;
            const struct opt_def *o = &opts[c];
            const char *value = optarg;
            if (o->type == OPT_BOOL && !value)
                value = "true";
            char sub[CONFIG_ERR_MAX];
            if (config_set(cfg, o->name, value, sub) < 0) {
                snprintf(err, CONFIG_ERR_MAX, "--%.500s", sub);
                return -EINVAL;
            }
        }
        if (optind < argc) {
            snprintf(err, CONFIG_ERR_MAX, "unexpected argument '%s' (see --help)", argv[optind]);
            return -EINVAL;
        }
    }
    return 0;
}

int config_finalize(struct discd_config *cfg, char *err)
{
    if (!cfg->host_id[0]) {
        char host[256] = "";
        if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
            snprintf(host, sizeof(host), "localhost");
        snprintf(cfg->host_id, sizeof(cfg->host_id), "%s", host);
    }
    if (!cfg->socket[0]) {
        /* root: the system's /run/discd, where every client looks; another
         * user: its private runtime directory. Never /tmp, where any user
         * could create the directory first (the clients do not look there). */
        const char *rt = geteuid() == 0 ? "/run" : getenv("XDG_RUNTIME_DIR");
        if (!rt || !*rt) {
            snprintf(err, CONFIG_ERR_MAX,
                     "no control socket path: set --socket (or $XDG_RUNTIME_DIR for a user's "
                     "discd); /tmp is not used, any user could take the name there first");
            return -EINVAL;
        }
        int n = snprintf(cfg->socket, sizeof(cfg->socket), "%s/discd/%s.sock", rt, cfg->name);
        if (n < 0 || (size_t)n >= sizeof(cfg->socket)) {
            snprintf(err, CONFIG_ERR_MAX,
                     "the default socket path %s/discd/%s.sock is too long; set --socket", rt,
                     cfg->name);
            return -ENAMETOOLONG;
        }
    }
    if (!cfg->state_dir[0]) {
        const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
        const char *sd = getenv("STATE_DIRECTORY"); /* systemd's StateDirectory= */
        int n;
        if (sd && sd[0] == '/')
            n = snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%.*s", (int)strcspn(sd, ":"), sd);
        else if (geteuid() == 0)
            n = snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/discd");
        else if (xdg && xdg[0] == '/')
            n = snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s/discd", xdg);
        else if (home && home[0] == '/')
            n = snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s/.local/state/discd", home);
        else
            n = -1;
        if (n < 0 || (size_t)n >= sizeof(cfg->state_dir)) {
            snprintf(err, CONFIG_ERR_MAX,
                     "no default state directory (HOME and XDG_STATE_HOME are unset or too "
                     "long); set --state-dir");
            return -EINVAL;
        }
    }
    if (cfg->check_timeout_ms >= cfg->check_interval_ms)
        cfg->check_timeout_ms = cfg->check_interval_ms / 2;
    if (cfg->export_curator[0]) {
        struct fmt_source ex;
        char line[sizeof(cfg->export_curator) + 16], sub[CONFIG_ERR_MAX];
        snprintf(line, sizeof(line), "curator %s", cfg->export_curator);
        if (!cfg->zk[0]) {
            snprintf(err, CONFIG_ERR_MAX, "export-curator needs ZooKeeper: set zk");
            return -EINVAL;
        }
        if (cfg->export_curator[0] != '/' || fmt_source_parse(line, &ex, sub, sizeof(sub)) < 0 ||
            fmt_sources_check(&ex, 1, cfg->zk_root, sub, sizeof(sub)) < 0) {
            snprintf(err, CONFIG_ERR_MAX,
                     "export-curator: '%.200s' is not an absolute ZooKeeper path outside "
                     "zk-root %.100s (no empty, '.' or '..' component, no trailing '/')",
                     cfg->export_curator, cfg->zk_root);
            return -EINVAL;
        }
    }
    if (cfg->n_imports > 0) {
        struct fmt_source src[CONFIG_IMPORT_MAX];
        char sub[CONFIG_ERR_MAX];
        if (!cfg->zk[0]) {
            snprintf(err, CONFIG_ERR_MAX, "import '%.300s' needs ZooKeeper: set zk",
                     cfg->imports[0]);
            return -EINVAL;
        }
        for (uint32_t i = 0; i < cfg->n_imports; i++) {
            if (fmt_source_parse(cfg->imports[i], &src[i], sub, sizeof(sub)) < 0) {
                snprintf(err, CONFIG_ERR_MAX, "%s", sub);
                return -EINVAL;
            }
        }
        if (fmt_sources_check(src, cfg->n_imports, cfg->zk_root, sub, sizeof(sub)) < 0) {
            snprintf(err, CONFIG_ERR_MAX, "%s", sub);
            return -EINVAL;
        }
    }
    char merr[256];
    if (metrics_check_listen(cfg->metrics_listen, merr) < 0) {
        snprintf(err, CONFIG_ERR_MAX, "metrics-listen: %s", merr);
        return -EINVAL;
    }
    cfg->socket_gid = -1;
    if (cfg->socket_group[0]) {
        uint64_t gid;
        struct group *gr = getgrnam(cfg->socket_group);
        if (gr)
            cfg->socket_gid = (int64_t)gr->gr_gid;
        else if (parse_u64(cfg->socket_group, 10, &gid) == 0 && gid < UINT32_MAX)
            cfg->socket_gid = (int64_t)gid;
        else {
            snprintf(err, CONFIG_ERR_MAX, "socket-group: no group named '%s'", cfg->socket_group);
            return -EINVAL;
        }
    }
    if (!cfg->dir[0] && !disc__dir_candidate(0, cfg->dir, sizeof(cfg->dir))) {
        snprintf(err, CONFIG_ERR_MAX,
                 "no registry directory: set --dir (or $%s, or $XDG_RUNTIME_DIR for a user "
                 "registry)",
                 DISC_DIR_ENV);
        return -ENOENT;
    }
    if (cfg->dir[0] != '/') {
        snprintf(err, CONFIG_ERR_MAX, "dir: '%.200s' must be an absolute path", cfg->dir);
        return -EINVAL;
    }
    return 0;
}

/* Print text word-wrapped at width, every line indented by indent. */
static void wrap(FILE *out, const char *text, int indent, int width)
{
    int col = indent;
    fprintf(out, "%*s", indent, "");
    for (const char *p = text; *p;) {
        while (*p == ' ')
            p++;
        int wl = (int)strcspn(p, " ");
        if (wl == 0)
            break;
        if (col > indent && col + 1 + wl > width) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", wl, p);
        col += wl;
        p += wl;
    }
    fputc('\n', out);
}

void config_usage(FILE *out)
{
    fprintf(out, "NAME\n"
                 "    discd - per-host service-discovery daemon publishing into shared memory\n"
                 "\n"
                 "SYNOPSIS\n"
                 "    discd [--config FILE] [OPTION...]\n"
                 "\n"
                 "DESCRIPTION\n");
    wrap(out,
         "discd accepts service registrations on a unix socket (newline-delimited JSON, see "
         "docs/PROTOCOL.md), checks the local instances (session pings, tcp, http, ttl), and "
         "publishes the registry into POSIX shared memory, where libdiscshm readers look it "
         "up without any system call. Without --zk it runs standalone: a host-local registry. "
         "It stays in the foreground and logs to stderr.",
         4, 78);
    fprintf(out, "\nOPTIONS\n");
    fprintf(out, "    -c, --config FILE\n");
    wrap(out,
         "Read settings from FILE first: one 'key = value' per line, keys are the long option "
         "names below without '--', '#' starts a comment line. Flags override the file.",
         8, 78);
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt_def *o = &opts[i];
        if (o->arg)
            fprintf(out, "    --%s %s\n", o->name, o->arg);
        else
            fprintf(out, "    --%s[=true|false]\n", o->name);
        char text[1024];
        snprintf(text, sizeof(text), "%s Default: %s.%s", o->help, o->deflt,
                 o->reloadable ? " Reloaded on SIGHUP." : "");
        wrap(out, text, 8, 78);
    }
    fprintf(out, "    -t, --check-config\n");
    wrap(out,
         "Check the configuration (the config file and the flags) and exit: status 0 and "
         "\"configuration OK\" on stdout, or 1 and the first error on stderr, naming FILE:LINE "
         "for an error in the file.",
         8, 78);
    fprintf(out, "    -h, --help\n        Print this help and exit.\n");
    fprintf(out, "    -V, --version\n        Print the version and exit.\n");
    fprintf(out, "\nSIGNALS\n");
    wrap(out,
         "SIGTERM, SIGINT: close the socket and every connection, publish what is pending, "
         "exit 0.",
         4, 78);
    wrap(out,
         "SIGHUP: re-read the config file (flags still override it) and apply log-level, "
         "check-interval, check-timeout and check-misses; the check defaults apply to new "
         "registrations. Other changed settings are reported and need a restart.",
         4, 78);
    fprintf(out, "\nENVIRONMENT\n");
    wrap(out,
         "DISCSHM_NAME: default registry name. DISCSHM_DIR: default registry directory. "
         "XDG_RUNTIME_DIR: base of the default socket path and, for a non-root discd, of the "
         "default registry directory.",
         4, 78);
    wrap(out,
         "NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID: set by systemd for a Type=notify "
         "service; discd then sends READY=1 once the segment is published and the socket "
         "serves, STATUS= lines, WATCHDOG=1 while its publisher thread runs, and STOPPING=1 "
         "on SIGTERM. JOURNAL_STREAM: see LOGS.",
         4, 78);
    fprintf(out, "\nFILES\n");
    wrap(out,
         "DIR/NAME (data segment, 0644, read-only to readers), DIR/NAME.lock (one-writer "
         "lock, 0600), the control socket. DIR is /run/discshm for root.",
         4, 78);
    fprintf(out, "\nLOGS\n");
    wrap(out,
         "stderr, one line per event: UTC timestamp, discd[pid], level, message. info "
         "logs every registration and removal with its reason. When stderr is the systemd "
         "journal ($JOURNAL_STREAM), each line is \"<PRIORITY>LEVEL message\" instead, so the "
         "journal keeps the level.",
         4, 78);
    fprintf(out, "\nEXIT STATUS\n");
    wrap(out,
         "0 after a clean shutdown, after --help or --version, and when --check-config finds "
         "no error; 1 when the daemon cannot start (bad option or "
         "config file, another discd already publishes the registry name, socket or "
         "segment errors).",
         4, 78);
    fprintf(out, "\nSEE ALSO\n    discctl(1), discd.conf(5), libdiscshm(3), docs/DAEMON.md, "
                 "docs/PROTOCOL.md\n");
}

void config_log(const struct discd_config *cfg)
{
    log_info("config: name=%s socket=%s socket-mode=%04o socket-group=%s log-level=%s config=%s",
             cfg->name, cfg->socket, cfg->socket_mode,
             cfg->socket_group[0] ? cfg->socket_group : "(discd's)", log_level_name(cfg->log_level),
             cfg->config_file[0] ? cfg->config_file : "(none)");
    log_info("config: check-interval=%u check-timeout=%u check-misses=%u check-tcp-local=%s "
             "max-connections=%u max-instances=%u publish-coalesce=%u/%u heartbeat=%u",
             cfg->check_interval_ms, cfg->check_timeout_ms, cfg->check_misses, cfg->check_tcp_local,
             cfg->max_connections, cfg->max_instances, cfg->publish_coalesce_ms,
             cfg->publish_coalesce_max, cfg->heartbeat_ms);
    log_info("config: state-dir=%s services-dir=%s session-grace=%u", cfg->state_dir,
             cfg->services_dir, cfg->session_grace_ms);
    log_info("config: dir=%s segment-bytes=%llu max-segment-size=%llu reclaim-after=%u "
             "unlink-on-exit=%s",
             cfg->dir, (unsigned long long)cfg->segment_bytes,
             (unsigned long long)cfg->max_segment_bytes, cfg->reclaim_after_ms,
             cfg->unlink_on_exit ? "true" : "false");
    for (uint32_t i = 0; i < cfg->n_imports; i++)
        log_info("config: import = %s", cfg->imports[i]);
    if (cfg->export_curator[0])
        log_info("config: export-curator = %s", cfg->export_curator);
    log_info("config: mode=%s zk=%s zk-root=%s host-id=%s az=%s",
             cfg->zk[0] ? "zookeeper" : "standalone", cfg->zk[0] ? cfg->zk : "-", cfg->zk_root,
             cfg->host_id, cfg->az[0] ? cfg->az : "-");
}
