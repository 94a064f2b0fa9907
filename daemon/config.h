/* SPDX-License-Identifier: MIT */
/*
 * config.h — discd's settings: defaults, config file, command-line flags.
 *
 * Every setting has one name used both as a long flag (--check-interval 500)
 * and as a config-file key (check-interval = 500). The file format is one
 * "key = value" per line; blank lines and lines starting with '#' are
 * ignored; values are taken verbatim after trimming blanks (no quoting).
 * Precedence: built-in defaults < config file < command-line flags.
 * docs/DAEMON.md documents every key; config_usage prints the same.
 */
#ifndef DISC_CONFIG_H
#define DISC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"
#include "policy.h"

#define CONFIG_ERR_MAX    512
#define CONFIG_POLICY_MAX 64   /* register-rule / register-limit lines each */
#define CONFIG_IMPORT_MAX 16   /* import lines (FMT_SOURCES_MAX) */
#define CONFIG_IMPORT_LEN 1024 /* bytes of one import line */

struct discd_config {
    char config_file[4096]; /* --config: the file that was loaded ("" none) */
    char name[201];         /* registry / shm name */
    char socket[108];       /* control socket path */
    uint32_t socket_mode;   /* permission bits of the socket */
    char socket_group[64];  /* group of the socket (name or number); "" = discd's gid */
    int64_t socket_gid;     /* resolved by config_finalize; -1 = leave it */
    enum log_level log_level;
    uint32_t check_interval_ms;
    uint32_t check_timeout_ms;
    uint32_t check_misses;
    char check_tcp_local[16]; /* "diag" or "connect": how tcp checks of local targets are made */
    uint32_t max_connections;
    uint32_t max_instances; /* local registrations */
    uint32_t publish_coalesce_ms;
    uint32_t publish_coalesce_max;
    uint32_t heartbeat_ms;      /* segment writer tick */
    uint64_t segment_bytes;     /* initial size; 0 = writer default */
    uint64_t max_segment_bytes; /* roll over to larger segments up to this */
    uint32_t reclaim_after_ms;  /* reuse retired segment memory after this long */
    char dir[4096];             /* registry directory (resolved by config_finalize) */
    bool unlink_on_exit;
    /* ZooKeeper (stored for the ZooKeeper layer; standalone when zk is "") */
    char zk[1024];
    char zk_root[256];
    uint32_t zk_session_timeout_ms;
    uint32_t zk_cooloff_ms;  /* 0: 2 x check-interval */
    char zk_auth_file[4096]; /* digest credentials "user:password" ("" none) */
    uint32_t zk_audit_ms;    /* re-check remote nodes' stats this often; 0 off */
    bool zk_snapshots;       /* write and read aggregate snapshots (default true) */
    char host_id[256];
    char az[65];
    char cache_file[4096];
    /* Protection (daemon/registry/protect.h): hold remote removals that shrink a
     * service by more than this fraction in one step; 0 disables. */
    double protect_shrink;
    uint32_t protect_hold_ms; /* 0: the cooling-off period (2 x check-interval) */
    char metrics_listen[128]; /* "ADDR:PORT" of the metrics HTTP listener, "" none */
    bool check_only;          /* --check-config / -t: validate and exit */
    /* Persistence (daemon/state/, daemon/services/) */
    char state_dir[4096];      /* local registrations and the ZooKeeper session */
    char services_dir[4096];   /* static service definitions (*.json) */
    uint32_t session_grace_ms; /* restored session instances wait this long for their client */
    /* Registration policy (daemon/control/policy.h): repeatable lines, in order
     * (config file first, then flags). None: the built-in defaults. */
    char register_rules[CONFIG_POLICY_MAX][POLICY_TEXT_MAX];
    uint32_t n_register_rules;
    char register_limits[CONFIG_POLICY_MAX][POLICY_TEXT_MAX];
    uint32_t n_register_limits;
    /* Foreign registries read from ZooKeeper (daemon/zk/import.h): repeatable
     * "FORMAT [BASE] [name=NAME] [service=NAME]" lines, each checked when
     * set (fmt_source_parse) and against each other and zk-root by
     * config_finalize. */
    char imports[CONFIG_IMPORT_MAX][CONFIG_IMPORT_LEN];
    uint32_t n_imports;
    /* export-curator: base path of the Curator export (daemon/zk/export.h), "" off. */
    char export_curator[512];
};

/* Fill *cfg with the built-in defaults (name from $DISCSHM_NAME). */
void config_defaults(struct discd_config *cfg);

/*
 * Set one setting by its name (without "--"). 0, or -EINVAL/-ENOENT with a
 * message in err (CONFIG_ERR_MAX bytes).
 */
int config_set(struct discd_config *cfg, const char *key, const char *value, char *err);

/* Apply a config file. 0 or -errno with a message ("file:line: ...") in err. */
int config_load_file(struct discd_config *cfg, const char *path, char *err);

/*
 * Build the configuration from defaults, the config file named by
 * --config/-c (if any) and the other flags of argv. Sets *exit_now when
 * --help or --version was handled (return 0). --check-config/-t sets
 * cfg->check_only. -EINVAL with err on a bad
 * flag or value. Does not modify argv.
 */
int config_from_args(struct discd_config *cfg, int argc, char *const argv[], bool *exit_now,
                     char *err);

/* Fill in derived defaults: socket path, host id. Call after loading. */
int config_finalize(struct discd_config *cfg, char *err);

/* The --help text. */
void config_usage(FILE *out);

/* Log the effective settings at info level. */
void config_log(const struct discd_config *cfg);

#endif /* DISC_CONFIG_H */
