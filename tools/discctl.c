/* SPDX-License-Identifier: MIT */
/*
 * discctl.c — the operator CLI of discshm: entry point, common options and
 * subcommand dispatch. See `discctl --help` and docs/DISCCTL.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discctl.h"

static const struct {
    const char *name;
    ctl_cmd_fn fn;
} commands[] = {
    {"register", cmd_register},
    {"deregister", cmd_deregister},
    {"services", cmd_ls},
    {"ls", cmd_ls}, /* alias of services */
    {"get", cmd_get},
    {"pick", cmd_pick},
    {"endpoints", cmd_endpoints},
    {"watch", cmd_watch},
    {"status", cmd_status},
    {"dump", cmd_dump},
    {"confirm", cmd_confirm},
    {"pass", cmd_ttl},
    {"warn", cmd_ttl},
    {"fail", cmd_ttl},
    {"maint", cmd_maint},
    {"metrics", cmd_metrics},
    {"reload", cmd_reload},
};

int ctl_common_opts(struct ctl *ctl, int argc, char **argv)
{
    int out = 0;
    bool done = false; /* after "--" everything is an operand */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (done || i == 0 || a[0] != '-') {
            argv[out++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            done = true;
            argv[out++] = argv[i];
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            ctl_help(ctl->cmd);
            return -1;
        }
        if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0) {
            ctl->json = true;
            continue;
        }
        const char *v;
        int r;
        if ((r = ctl_opt(argc, argv, &i, "--name", &v)) != 0 ||
            (r = ctl_opt(argc, argv, &i, "--socket", &v)) != 0) {
            if (r < 0) {
                ctl_usage_error(ctl, "option %s needs a value", a);
                return -2;
            }
            if (!*v) {
                ctl_usage_error(ctl, "option %.8s needs a non-empty value", a);
                return -2;
            }
            if (strncmp(a, "--name", 6) == 0)
                ctl->name = v;
            else
                ctl->socket = v;
            continue;
        }
        argv[out++] = argv[i]; /* a subcommand option */
    }
    argv[out] = NULL;
    return out;
}

int main(int argc, char **argv)
{
    struct ctl ctl = {0};
    setvbuf(stdout, NULL, _IOLBF, 0); /* watch and scripts read line by line */

    /* Common options may come before the subcommand too. */
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        const char *v;
        int r;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            ctl_help(NULL);
            return EXIT_OK;
        }
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("discctl %s\n", DISCCTL_VERSION);
            return EXIT_OK;
        }
        if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0) {
            ctl.json = true;
        } else if ((r = ctl_opt(argc, argv, &i, "--name", &v)) != 0 ||
                   (r = ctl_opt(argc, argv, &i, "--socket", &v)) != 0) {
            if (r < 0 || !*v)
                return ctl_usage_error(&ctl, "option %s needs a value", a);
            if (strncmp(a, "--name", 6) == 0)
                ctl.name = v;
            else
                ctl.socket = v;
        } else {
            return ctl_usage_error(&ctl, "unknown option '%s'", a);
        }
    }
    if (i >= argc)
        return ctl_usage_error(&ctl, "no command given");

    const char *cmd = argv[i];
    if (strcmp(cmd, "help") == 0) {
        if (i + 1 < argc && !ctl_help(argv[i + 1]))
            return ctl_usage_error(&ctl, "no command '%s'", argv[i + 1]);
        if (i + 1 >= argc)
            ctl_help(NULL);
        return EXIT_OK;
    }
    for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
        if (strcmp(cmd, commands[k].name) != 0)
            continue;
        ctl.cmd = commands[k].name;
        int n = ctl_common_opts(&ctl, argc - i, argv + i);
        if (n == -1)
            return EXIT_OK;
        if (n < 0)
            return EXIT_USAGE;
        return commands[k].fn(&ctl, n, argv + i);
    }
    return ctl_usage_error(&ctl, "unknown command '%s'", cmd);
}
