/* SPDX-License-Identifier: MIT */
/* policy.c — the registration policy (see policy.h, docs/DAEMON.md). */
#include "policy.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum who_kind { WHO_ANY, WHO_UID, WHO_GID };

struct who {
    enum who_kind kind;
    uint32_t id;
};

struct rule {
    bool allow;
    struct who who;
    char pattern[POLICY_TEXT_MAX]; /* exact name, or prefix when is_prefix */
    bool is_prefix;
    char text[POLICY_TEXT_MAX];
};

struct limit {
    struct who who;
    uint32_t max_instances;
    uint64_t max_bytes;
    char text[POLICY_TEXT_MAX];
};

struct policy {
    struct rule *rules;
    size_t n_rules;
    bool default_rules;
    struct limit *limits;
    size_t n_limits;
    bool default_limits;
    uint32_t daemon_uid;
};

/* Split off the next blank-separated word of *s into buf. false at the end. */
static bool next_word(const char **s, char *buf, size_t cap)
{
    const char *p = *s;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        return false;
    size_t n = 0;
    while (p[n] && !isspace((unsigned char)p[n]))
        n++;
    snprintf(buf, cap, "%.*s", (int)n, p);
    *s = p + n;
    return true;
}

static int parse_id(const char *s, uint32_t *out)
{
    if (!*s || !isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v >= UINT32_MAX)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

static int parse_who(const char *w, struct who *out, char *err)
{
    if (strcmp(w, "any") == 0) {
        out->kind = WHO_ANY;
        out->id = 0;
        return 0;
    }
    if (strncmp(w, "uid:", 4) == 0 || strncmp(w, "gid:", 4) == 0) {
        out->kind = w[0] == 'u' ? WHO_UID : WHO_GID;
        if (parse_id(w + 4, &out->id) == 0)
            return 0;
        snprintf(err, POLICY_ERR_MAX, "'%s': expected a number after '%.4s'", w, w);
        return -EINVAL;
    }
    if (strncmp(w, "user:", 5) == 0) {
        struct passwd *pw = getpwnam(w + 5);
        if (!pw) {
            snprintf(err, POLICY_ERR_MAX, "'%s': no such user", w);
            return -EINVAL;
        }
        out->kind = WHO_UID;
        out->id = (uint32_t)pw->pw_uid;
        return 0;
    }
    if (strncmp(w, "group:", 6) == 0) {
        struct group *gr = getgrnam(w + 6);
        if (!gr) {
            snprintf(err, POLICY_ERR_MAX, "'%s': no such group", w);
            return -EINVAL;
        }
        out->kind = WHO_GID;
        out->id = (uint32_t)gr->gr_gid;
        return 0;
    }
    snprintf(err, POLICY_ERR_MAX, "'%s': expected any, uid:N, user:NAME, gid:N or group:NAME", w);
    return -EINVAL;
}

/* NAMES: "*", "prefix*", or an exact service name ([A-Za-z0-9._:-]). */
static int parse_pattern(const char *w, struct rule *r, char *err)
{
    size_t n = strlen(w);
    r->is_prefix = n > 0 && w[n - 1] == '*';
    size_t body = r->is_prefix ? n - 1 : n;
    if (!r->is_prefix && body == 0)
        goto bad;
    if (body > 255)
        goto bad;
    for (size_t i = 0; i < body; i++) {
        char c = w[i];
        if (!(isalnum((unsigned char)c) || c == '.' || c == '_' || c == ':' || c == '-'))
            goto bad;
    }
    snprintf(r->pattern, sizeof(r->pattern), "%.*s", (int)body, w);
    return 0;
bad:
    snprintf(err, POLICY_ERR_MAX,
             "'%.100s': expected a service name, a prefix ending in '*', or '*'", w);
    return -EINVAL;
}

static int parse_rule(const char *text, struct rule *r, char *err)
{
    memset(r, 0, sizeof(*r));
    if (strlen(text) >= POLICY_TEXT_MAX) {
        snprintf(err, POLICY_ERR_MAX, "rule longer than %d bytes", POLICY_TEXT_MAX - 1);
        return -EINVAL;
    }
    snprintf(r->text, sizeof(r->text), "%s", text);
    char w[POLICY_TEXT_MAX];
    const char *s = text;
    if (!next_word(&s, w, sizeof(w)) || (strcmp(w, "allow") && strcmp(w, "deny"))) {
        snprintf(err, POLICY_ERR_MAX, "expected 'allow|deny WHO NAMES', got '%s'", text);
        return -EINVAL;
    }
    r->allow = strcmp(w, "allow") == 0;
    if (!next_word(&s, w, sizeof(w))) {
        snprintf(err, POLICY_ERR_MAX, "'%s': WHO and NAMES missing", text);
        return -EINVAL;
    }
    if (parse_who(w, &r->who, err) < 0)
        return -EINVAL;
    if (!next_word(&s, w, sizeof(w))) {
        snprintf(err, POLICY_ERR_MAX, "'%s': NAMES missing (a name, a prefix*, or *)", text);
        return -EINVAL;
    }
    if (parse_pattern(w, r, err) < 0)
        return -EINVAL;
    if (next_word(&s, w, sizeof(w))) {
        snprintf(err, POLICY_ERR_MAX, "'%s': unexpected '%s' after NAMES", text, w);
        return -EINVAL;
    }
    return 0;
}

static int parse_limit(const char *text, struct limit *l, char *err)
{
    memset(l, 0, sizeof(*l));
    l->max_instances = UINT32_MAX;
    l->max_bytes = UINT64_MAX;
    if (strlen(text) >= POLICY_TEXT_MAX) {
        snprintf(err, POLICY_ERR_MAX, "limit longer than %d bytes", POLICY_TEXT_MAX - 1);
        return -EINVAL;
    }
    snprintf(l->text, sizeof(l->text), "%s", text);
    char w[POLICY_TEXT_MAX];
    const char *s = text;
    if (!next_word(&s, w, sizeof(w))) {
        snprintf(err, POLICY_ERR_MAX, "expected 'WHO [instances=N] [bytes=N]'");
        return -EINVAL;
    }
    if (parse_who(w, &l->who, err) < 0)
        return -EINVAL;
    int n = 0;
    while (next_word(&s, w, sizeof(w))) {
        char *eq = strchr(w, '=');
        uint64_t v = 0;
        char *end = NULL;
        if (eq) {
            errno = 0;
            v = strtoull(eq + 1, &end, 10);
        }
        if (!eq || !isdigit((unsigned char)eq[1]) || errno || *end) {
            snprintf(err, POLICY_ERR_MAX, "'%.100s': expected instances=N or bytes=N", w);
            return -EINVAL;
        }
        *eq = '\0';
        if (strcmp(w, "instances") == 0 && v < UINT32_MAX)
            l->max_instances = (uint32_t)v;
        else if (strcmp(w, "bytes") == 0 && v < UINT64_MAX)
            l->max_bytes = v;
        else {
            snprintf(err, POLICY_ERR_MAX, "'%.100s': unknown limit or value out of range", w);
            return -EINVAL;
        }
        n++;
    }
    if (n == 0) {
        snprintf(err, POLICY_ERR_MAX, "'%.100s': no limit given (instances=N, bytes=N)", text);
        return -EINVAL;
    }
    return 0;
}

int policy_check_rule_text(const char *text, char *err)
{
    struct rule r;
    return parse_rule(text, &r, err);
}

int policy_check_limit_text(const char *text, char *err)
{
    struct limit l;
    return parse_limit(text, &l, err);
}

struct policy *policy_new(const char (*rules)[POLICY_TEXT_MAX], size_t n_rules,
                          const char (*limits)[POLICY_TEXT_MAX], size_t n_limits,
                          uint32_t daemon_uid, char *err)
{
    struct policy *p = calloc(1, sizeof(*p));
    size_t nr = n_rules ? n_rules : 1, nl = n_limits ? n_limits : 1;
    if (p) {
        p->rules = calloc(nr, sizeof(*p->rules));
        p->limits = calloc(nl, sizeof(*p->limits));
    }
    if (!p || !p->rules || !p->limits) {
        snprintf(err, POLICY_ERR_MAX, "out of memory");
        policy_free(p);
        return NULL;
    }
    p->daemon_uid = daemon_uid;
    p->default_rules = n_rules == 0;
    p->default_limits = n_limits == 0;
    char sub[POLICY_ERR_MAX];
    for (size_t i = 0; i < nr; i++) {
        const char *text = n_rules ? rules[i] : "allow any *";
        if (parse_rule(text, &p->rules[i], sub) < 0) {
            snprintf(err, POLICY_ERR_MAX, "register-rule %zu: %.200s", i + 1, sub);
            policy_free(p);
            return NULL;
        }
    }
    p->n_rules = nr;
    for (size_t i = 0; i < nl; i++) {
        char deflt[96];
        snprintf(deflt, sizeof(deflt), "any instances=%u bytes=%u", POLICY_DEFAULT_INSTANCES,
                 POLICY_DEFAULT_BYTES);
        const char *text = n_limits ? limits[i] : deflt;
        if (parse_limit(text, &p->limits[i], sub) < 0) {
            snprintf(err, POLICY_ERR_MAX, "register-limit %zu: %.200s", i + 1, sub);
            policy_free(p);
            return NULL;
        }
    }
    p->n_limits = nl;
    return p;
}

void policy_free(struct policy *p)
{
    if (!p)
        return;
    free(p->rules);
    free(p->limits);
    free(p);
}

static bool who_matches(const struct who *w, const struct policy_peer *peer)
{
    switch (w->kind) {
    case WHO_ANY:
        return true;
    case WHO_UID:
        return peer->uid == w->id;
    case WHO_GID:
        if (peer->gid == w->id)
            return true;
        for (size_t i = 0; i < peer->n_groups; i++)
            if (peer->groups[i] == w->id)
                return true;
        return false;
    }
    return false;
}

static bool name_matches(const struct rule *r, const char *service)
{
    if (r->is_prefix)
        return strncmp(service, r->pattern, strlen(r->pattern)) == 0;
    return strcmp(service, r->pattern) == 0;
}

void policy_check(const struct policy *p, const struct policy_peer *peer, const char *service,
                  struct policy_decision *d)
{
    memset(d, 0, sizeof(*d));
    d->max_instances = UINT32_MAX;
    d->max_bytes = UINT64_MAX;
    if (peer->uid == 0) {
        d->allowed = true;
        snprintf(d->rule, sizeof(d->rule), "root (uid 0) is not restricted by the policy");
        return;
    }
    d->allowed = false;
    snprintf(d->rule, sizeof(d->rule), "no register-rule allows it (rules deny by default)");
    for (size_t i = 0; i < p->n_rules; i++) {
        const struct rule *r = &p->rules[i];
        if (who_matches(&r->who, peer) && name_matches(r, service)) {
            d->allowed = r->allow;
            if (p->default_rules)
                snprintf(d->rule, sizeof(d->rule), "built-in rule (%s)", r->text);
            else
                snprintf(d->rule, sizeof(d->rule), "register-rule %zu (%s)", i + 1, r->text);
            break;
        }
    }
    if (p->default_limits && peer->uid == p->daemon_uid)
        return; /* the built-in limit spares discd's own uid */
    for (size_t i = 0; i < p->n_limits; i++) {
        const struct limit *l = &p->limits[i];
        if (who_matches(&l->who, peer)) {
            d->limited = true;
            d->max_instances = l->max_instances;
            d->max_bytes = l->max_bytes;
            if (p->default_limits)
                snprintf(d->limit, sizeof(d->limit), "built-in register-limit (%s)", l->text);
            else
                snprintf(d->limit, sizeof(d->limit), "register-limit %zu (%s)", i + 1, l->text);
            return;
        }
    }
}

void policy_log(const struct policy *p)
{
    for (size_t i = 0; i < p->n_rules; i++)
        log_info("policy: %s %zu: %s", p->default_rules ? "built-in rule" : "register-rule", i + 1,
                 p->rules[i].text);
    for (size_t i = 0; i < p->n_limits; i++)
        log_info("policy: %s %zu: %s%s", p->default_limits ? "built-in limit" : "register-limit",
                 i + 1, p->limits[i].text,
                 p->default_limits ? " (not for root or discd's own uid)" : "");
    log_info("policy: root (uid 0) is never refused or limited by the policy");
}
