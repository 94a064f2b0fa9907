/* SPDX-License-Identifier: MIT */
/*
 * registry_dir.c — linked into every test executable (see disc_test in
 * tests/CMakeLists.txt): before any test runs, create a private registry
 * directory and point $DISCSHM_DIR at it, so every writer (in-process or
 * a spawned discd) and every reader of this test executable uses it and
 * nothing lands in the system directory; after the last test, remove it
 * with everything in it.
 *
 * Layout: $TMPDIR/discshm-test-XXXXXX (root-or-us owned, 0755) / reg
 * (0755). The outer directory is what the trust checks require of the
 * directory holding a registry directory: owned by root or the registry's
 * owner and writable by nobody else. 0755 (not 0700) so tests can let a
 * second uid reach the registry and attack it.
 * An explicitly set $DISCSHM_DIR is left alone (and not removed).
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rm_tree.h"

static char top[4096]; /* test-only state of this executable's runner */

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    const char *cur = getenv("DISCSHM_DIR");
    if (cur && *cur)
        return;
    const char *tmp = getenv("TMPDIR");
    snprintf(top, sizeof(top), "%s/discshm-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(top)) {
        perror("registry_dir: mkdtemp");
        top[0] = 0;
        return;
    }
    chmod(top, 0755);
    char reg[4200];
    snprintf(reg, sizeof(reg), "%s/reg", top);
    if (mkdir(reg, 0755) < 0 || chmod(reg, 0755) < 0)
        perror("registry_dir: mkdir");
    setenv("DISCSHM_DIR", reg, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    if (top[0])
        rm_tree(top);
}
