/* SPDX-License-Identifier: MIT */
/*
 * discctl_reload.c — `discctl reload`: make discd re-read its static service
 * definitions (--services-dir, docs/DAEMON.md "Static service definitions")
 * through the control socket's "reload" op, and report what changed and
 * every file in error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discctl.h"

const char ctl_help_reload[] =
    "NAME\n"
    "    discctl reload - re-read discd's static service definitions\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl reload\n"
    "\n"
    "DESCRIPTION\n"
    "    discd registers the instances defined in its --services-dir\n"
    "    (/etc/discd/services.d/*.json by default) at start. reload makes it\n"
    "    read the directory again now (as SIGHUP does): new definitions are\n"
    "    registered, changed ones re-registered with the same id, removed ones\n"
    "    deregistered. It prints the counts, then each error as\n"
    "    'FILE:LINE: message' on stderr; definitions in error keep what they\n"
    "    had registered before, the others are applied. Only root or the user\n"
    "    discd runs as may reload.\n"
    "\n"
    "    Exit status 1 when any definition is in error (the rest was applied).\n"
    "\n"
    "%s\n"
    "%s";

int cmd_reload(struct ctl *ctl, int argc, char **argv)
{
    if (ctl_no_operands(ctl, argc, argv))
        return EXIT_USAGE;
    json_t *r;
    int ec = ctl_call(ctl, json_pack("{s:s}", "op", "reload"), "reload", &r);
    if (ec)
        return ec;
    json_t *errors = json_object_get(r, "errors");
    if (ctl->json) {
        ctl_print_json(json_incref(r));
    } else {
        printf("%lld file(s): %lld added, %lld changed, %lld removed, %lld unchanged; %lld "
               "static instance(s)\n",
               (long long)json_integer_value(json_object_get(r, "files")),
               (long long)json_integer_value(json_object_get(r, "added")),
               (long long)json_integer_value(json_object_get(r, "changed")),
               (long long)json_integer_value(json_object_get(r, "removed")),
               (long long)json_integer_value(json_object_get(r, "unchanged")),
               (long long)json_integer_value(json_object_get(r, "static")));
    }
    size_t i;
    json_t *v;
    json_array_foreach(errors, i, v) ctl_err(ctl, "%s", json_string_value(v));
    ec = json_array_size(errors) > 0 ? EXIT_ERR : EXIT_OK;
    json_decref(r);
    return ec;
}
