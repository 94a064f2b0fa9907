/* SPDX-License-Identifier: MIT */
/*
 * test_policy.c — the registration policy in-process (daemon/control/policy.c):
 * rule syntax errors, first-match order, exact / prefix / any names, uid and
 * group matching (primary and supplementary gids), limits per uid, the
 * built-in defaults and root's exemption.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

static struct policy *mk(const char *const *rules, size_t nr, const char *const *limits, size_t nl)
{
    static char r[8][POLICY_TEXT_MAX], l[8][POLICY_TEXT_MAX];
    for (size_t i = 0; i < nr; i++)
        snprintf(r[i], POLICY_TEXT_MAX, "%s", rules[i]);
    for (size_t i = 0; i < nl; i++)
        snprintf(l[i], POLICY_TEXT_MAX, "%s", limits[i]);
    char err[POLICY_ERR_MAX];
    struct policy *p = policy_new(r, nr, l, nl, 1000, err);
    cr_assert_not_null(p, "%s", err);
    return p;
}

static struct policy_decision check(struct policy *p, uint32_t uid, uint32_t gid,
                                    const uint32_t *groups, size_t ng, const char *svc)
{
    struct policy_peer peer = {.uid = uid, .gid = gid, .groups = groups, .n_groups = ng};
    struct policy_decision d;
    policy_check(p, &peer, svc, &d);
    return d;
}

Test(policy, syntax_errors_name_the_problem)
{
    char err[POLICY_ERR_MAX];
    cr_assert_lt(policy_check_rule_text("permit any *", err), 0);
    cr_assert(strstr(err, "allow|deny"), "%s", err);
    cr_assert_lt(policy_check_rule_text("allow uid:x *", err), 0);
    cr_assert(strstr(err, "number"), "%s", err);
    cr_assert_lt(policy_check_rule_text("allow user:no-such-user-xyz *", err), 0);
    cr_assert(strstr(err, "no such user"), "%s", err);
    cr_assert_lt(policy_check_rule_text("allow any", err), 0);
    cr_assert(strstr(err, "NAMES missing"), "%s", err);
    cr_assert_lt(policy_check_rule_text("allow any bad/name", err), 0);
    cr_assert_lt(policy_check_rule_text("allow any a b", err), 0);
    cr_assert_lt(policy_check_limit_text("any", err), 0);
    cr_assert(strstr(err, "no limit given"), "%s", err);
    cr_assert_lt(policy_check_limit_text("any instances=-1", err), 0);
    cr_assert_lt(policy_check_limit_text("any widgets=3", err), 0);
    cr_assert_eq(policy_check_rule_text("deny group:root orders.*", err), 0);
    cr_assert_eq(policy_check_limit_text("uid:7 instances=3 bytes=4096", err), 0);
}

Test(policy, first_matching_rule_decides)
{
    const char *rules[] = {"deny any system.*", "allow uid:65534 app.*", "allow gid:50 exact",
                           "deny uid:65534 *", "allow any *"};
    struct policy *p = mk(rules, 5, NULL, 0);
    struct policy_decision d = check(p, 65534, 65534, NULL, 0, "system.auth");
    cr_assert(!d.allowed);
    cr_assert_str_eq(d.rule, "register-rule 1 (deny any system.*)");
    d = check(p, 65534, 65534, NULL, 0, "app.web");
    cr_assert(d.allowed);
    cr_assert_str_eq(d.rule, "register-rule 2 (allow uid:65534 app.*)");
    d = check(p, 65534, 65534, NULL, 0, "other");
    cr_assert(!d.allowed);
    cr_assert_str_eq(d.rule, "register-rule 4 (deny uid:65534 *)");
    d = check(p, 7, 7, NULL, 0, "other");
    cr_assert(d.allowed);
    /* exact names are exact; groups match primary or supplementary gids */
    d = check(p, 65534, 65534, (const uint32_t[]){3, 50}, 2, "exact");
    cr_assert(d.allowed);
    cr_assert_str_eq(d.rule, "register-rule 3 (allow gid:50 exact)");
    d = check(p, 65534, 50, NULL, 0, "exact");
    cr_assert(d.allowed);
    d = check(p, 65534, 65534, NULL, 0, "exactly");
    cr_assert(!d.allowed);
    /* root is never refused */
    d = check(p, 0, 0, NULL, 0, "system.auth");
    cr_assert(d.allowed);
    cr_assert(!d.limited);
    policy_free(p);
}

Test(policy, no_rule_matching_refuses)
{
    const char *rules[] = {"allow uid:5 a"};
    struct policy *p = mk(rules, 1, NULL, 0);
    struct policy_decision d = check(p, 6, 6, NULL, 0, "a");
    cr_assert(!d.allowed);
    cr_assert(strstr(d.rule, "no register-rule allows it"), "%s", d.rule);
    policy_free(p);
}

Test(policy, limits_first_match_per_uid)
{
    const char *limits[] = {"uid:65534 instances=3", "group:root bytes=4096",
                            "any instances=10 bytes=100000"};
    struct policy *p = mk(NULL, 0, limits, 3);
    struct policy_decision d = check(p, 65534, 65534, NULL, 0, "x");
    cr_assert(d.allowed); /* built-in rule */
    cr_assert_str_eq(d.rule, "built-in rule (allow any *)");
    cr_assert(d.limited);
    cr_assert_eq(d.max_instances, 3u);
    cr_assert_eq(d.max_bytes, UINT64_MAX);
    cr_assert_str_eq(d.limit, "register-limit 1 (uid:65534 instances=3)");
    d = check(p, 12, 0, NULL, 0, "x"); /* primary group 0 = root's group */
    cr_assert_eq(d.max_instances, UINT32_MAX);
    cr_assert_eq(d.max_bytes, 4096u);
    d = check(p, 12, 12, NULL, 0, "x");
    cr_assert_eq(d.max_instances, 10u);
    /* configured limits apply to discd's own uid too (1000 here) */
    d = check(p, 1000, 1000, NULL, 0, "x");
    cr_assert(d.limited);
    policy_free(p);
}

Test(policy, built_in_defaults)
{
    struct policy *p = mk(NULL, 0, NULL, 0);
    struct policy_decision d = check(p, 65534, 65534, NULL, 0, "anything");
    cr_assert(d.allowed);
    cr_assert(d.limited);
    cr_assert_eq(d.max_instances, POLICY_DEFAULT_INSTANCES);
    cr_assert_eq(d.max_bytes, POLICY_DEFAULT_BYTES);
    cr_assert(strstr(d.limit, "built-in"), "%s", d.limit);
    d = check(p, 1000, 1000, NULL, 0, "anything"); /* discd's own uid */
    cr_assert(d.allowed);
    cr_assert(!d.limited);
    d = check(p, 0, 0, NULL, 0, "anything");
    cr_assert(!d.limited);
    policy_free(p);
}
