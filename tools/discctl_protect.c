/* SPDX-License-Identifier: MIT */
/*
 * discctl_protect.c — `discctl confirm [SERVICE]`: apply the removals that
 * discd's protection is holding (docs/DAEMON.md, "Protection") through the
 * control socket's "confirm" op.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discctl.h"

const char ctl_help_confirm[] =
    "NAME\n"
    "    discctl confirm - apply removals held by discd's protection\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl confirm [SERVICE]\n"
    "\n"
    "DESCRIPTION\n"
    "    discd holds remote removals that would empty a service or shrink it\n"
    "    by more than --protect-shrink in one step ('discctl status --json'\n"
    "    shows them under zookeeper.protection). confirm applies the held\n"
    "    removals of SERVICE at once, or of every service when SERVICE is\n"
    "    omitted, and prints how many were applied. Only root or the user\n"
    "    discd runs as may confirm.\n"
    "\n"
    "%s\n"
    "%s";

int cmd_confirm(struct ctl *ctl, int argc, char **argv)
{
    const char *service = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            continue;
        if (argv[i][0] == '-')
            return ctl_usage_error(ctl, "unknown option '%s'", argv[i]);
        if (service)
            return ctl_usage_error(ctl, "one service at most (discctl confirm [SERVICE])");
        service = argv[i];
    }
    json_t *req = service ? json_pack("{s:s, s:s}", "op", "confirm", "service", service)
                          : json_pack("{s:s}", "op", "confirm");
    json_t *r;
    int ec = ctl_call(ctl, req, "confirm", &r);
    if (ec)
        return ec;
    json_int_t n = json_integer_value(json_object_get(r, "confirmed"));
    if (ctl->json)
        ctl_print_json(json_pack("{s:s?, s:I}", "service", service, "confirmed", n));
    else
        printf("%lld held removal(s) of %s applied\n", (long long)n,
               service ? service : "all services");
    json_decref(r);
    return EXIT_OK;
}
