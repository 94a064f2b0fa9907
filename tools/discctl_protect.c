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
    char *line = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!line) {
        ctl_err(ctl, "out of memory");
        return EXIT_ERR;
    }
    disc_client *cl;
    int ec = ctl_connect(ctl, &cl, false);
    if (ec) {
        free(line);
        return ec;
    }
    char *resp = NULL;
    int rc = disc_client_request(cl, line, &resp);
    free(line);
    if (rc < 0) {
        ctl_err(ctl, "%s", disc_client_strerror(rc));
        disc_client_close(cl);
        return ctl_exit_code(rc);
    }
    json_t *r = json_loads(resp, 0, NULL);
    free(resp);
    ec = EXIT_OK;
    if (!r || !json_is_true(json_object_get(r, "ok"))) {
        char msg[512];
        if (disc_client_error(cl, msg, sizeof(msg)) == 0)
            snprintf(msg, sizeof(msg), "the daemon refused the request");
        ctl_err(ctl, "%s", msg);
        ec = EXIT_ERR;
    } else {
        json_int_t n = json_integer_value(json_object_get(r, "confirmed"));
        if (ctl->json)
            ctl_print_json(json_pack("{s:s?, s:I}", "service", service, "confirmed", n));
        else
            printf("%lld held removal(s) of %s applied\n", (long long)n,
                   service ? service : "all services");
    }
    json_decref(r);
    disc_client_close(cl);
    return ec;
}
