/* SPDX-License-Identifier: MIT */
/*
 * policy.h — who may register which service names, and how much.
 *
 * discd's registration policy (docs/DAEMON.md, "Registration policy"):
 *
 *   register-rule  = allow|deny WHO NAMES
 *   register-limit = WHO [instances=N] [bytes=N]
 *
 * WHO is `any`, `uid:N`, `user:NAME`, `gid:N` or `group:NAME` (a group
 * matches the peer's primary gid from SO_PEERCRED or one of its
 * supplementary groups from SO_PEERGROUPS). NAMES is a service name
 * (exact), a prefix ending in `*` (`orders.*` matches every name starting
 * with "orders."), or `*` (every name).
 *
 * Rules are tried in order; the first whose WHO and NAMES both match
 * decides. When no rule matches, the registration is refused. Limits are
 * per uid: the first limit line whose WHO matches the peer applies to that
 * uid's local instances (count, and arena bytes of their records); no
 * matching line means no per-uid limit. Root (uid 0) is never refused and
 * never limited by the policy.
 *
 * Without any register-rule line the built-in rule is `allow any *`; without
 * any register-limit line the built-in limit is `any instances=1024
 * bytes=1048576` for every uid except root and the uid discd runs as.
 *
 * This module parses and decides; it keeps no counts (the registry does,
 * registry_owner_usage) and does no I/O except name lookups (getpwnam,
 * getgrnam) when parsing.
 */
#ifndef DISC_POLICY_H
#define DISC_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POLICY_TEXT_MAX 256 /* one rule or limit line */
#define POLICY_ERR_MAX  256

/* Built-in limits (no register-limit line given). */
#define POLICY_DEFAULT_INSTANCES 1024u
#define POLICY_DEFAULT_BYTES     1048576u

struct policy;

/* The registering peer. */
struct policy_peer {
    uint32_t uid;
    uint32_t gid;           /* primary gid (SO_PEERCRED) */
    const uint32_t *groups; /* supplementary gids (SO_PEERGROUPS); may be NULL */
    size_t n_groups;
};

/* What policy_check decided. rule/limit texts name the line that decided,
 * e.g. "register-rule 2 (deny any system.*)" or "built-in rule (allow any *)". */
struct policy_decision {
    bool allowed;
    char rule[POLICY_TEXT_MAX + 48];
    bool limited;           /* a limit applies to this uid */
    uint32_t max_instances; /* UINT32_MAX: no limit on the count */
    uint64_t max_bytes;     /* UINT64_MAX: no limit on bytes */
    char limit[POLICY_TEXT_MAX + 48];
};

/* Validate one register-rule / register-limit value (for config parsing).
 * 0, or -EINVAL with a message in err (POLICY_ERR_MAX bytes). */
int policy_check_rule_text(const char *text, char *err);
int policy_check_limit_text(const char *text, char *err);

/*
 * Build a policy from the configured lines (n_rules == 0 / n_limits == 0:
 * the built-in defaults above). daemon_uid is the uid discd runs as (exempt
 * from the built-in limit). Returns NULL with err filled on a bad line or
 * out of memory.
 */
struct policy *policy_new(const char (*rules)[POLICY_TEXT_MAX], size_t n_rules,
                          const char (*limits)[POLICY_TEXT_MAX], size_t n_limits,
                          uint32_t daemon_uid, char *err);

void policy_free(struct policy *p);

/* Decide whether peer may register service, and which limits apply. */
void policy_check(const struct policy *p, const struct policy_peer *peer, const char *service,
                  struct policy_decision *d);

/* Log the effective policy (info level), one line per rule / limit. */
void policy_log(const struct policy *p);

#endif /* DISC_POLICY_H */
