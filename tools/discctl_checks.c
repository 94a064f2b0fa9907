/* SPDX-License-Identifier: MIT */
/*
 * discctl_checks.c — `discctl pass|warn|fail ID [--note TEXT]` (feed a ttl
 * check) and `discctl maint ID|--service S on|off [--reason TEXT]` (take
 * instances out of rotation without deregistering them). Both are control
 * ops (docs/PROTOCOL.md: pass, warn, fail, maint).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discctl.h"

/* pass, warn, fail */
int cmd_ttl(struct ctl *ctl, int argc, char **argv)
{
    const char *id = NULL, *note = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = ctl_opt(argc, argv, &i, "--note", &v);
        if (r < 0)
            return ctl_usage_error(ctl, "--note needs a text");
        if (r > 0) {
            note = v;
            continue;
        }
        if (strcmp(argv[i], "--") == 0)
            continue;
        if (argv[i][0] == '-')
            return ctl_usage_error(ctl, "unknown option '%s'", argv[i]);
        if (id)
            return ctl_usage_error(ctl, "unexpected argument '%s' (one ID)", argv[i]);
        id = argv[i];
    }
    if (!id)
        return ctl_usage_error(ctl, "which instance? (discctl %s ID [--note TEXT])", ctl->cmd);
    json_t *req = json_pack("{s:s, s:s}", "op", ctl->cmd, "id", id);
    if (req && note)
        json_object_set_new(req, "note", json_string(note));
    json_t *resp;
    char what[96];
    snprintf(what, sizeof(what), "%s %.40s", ctl->cmd, id);
    int ec = ctl_call(ctl, req, what, &resp);
    if (ec)
        return ec;
    if (ctl->json)
        ctl_print_json(
            json_pack("{s:s, s:s, s:s}", "id", id, "reported", ctl->cmd, "note", note ? note : ""));
    else
        printf("%s: %s reported\n", id, ctl->cmd);
    json_decref(resp);
    return EXIT_OK;
}

int cmd_maint(struct ctl *ctl, int argc, char **argv)
{
    const char *id = NULL, *service = NULL, *reason = NULL, *state = NULL;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        int r = ctl_opt(argc, argv, &i, "--reason", &reason);
        if (r == 0)
            r = ctl_opt(argc, argv, &i, "--service", &service);
        if (r < 0)
            return ctl_usage_error(ctl, "%s needs a value", opt);
        if (r > 0)
            continue;
        if (strcmp(argv[i], "--") == 0)
            continue;
        if (argv[i][0] == '-')
            return ctl_usage_error(ctl, "unknown option '%s'", argv[i]);
        if (strcmp(argv[i], "on") == 0 || strcmp(argv[i], "off") == 0) {
            if (state)
                return ctl_usage_error(ctl, "on or off, once");
            state = argv[i];
            continue;
        }
        if (id)
            return ctl_usage_error(ctl, "unexpected argument '%s'", argv[i]);
        id = argv[i];
    }
    if (!!id == !!service)
        return ctl_usage_error(ctl, "give one instance ID or --service SERVICE (%s)",
                               id ? "not both" : "neither was given");
    if (!state)
        return ctl_usage_error(ctl, "on (out of rotation) or off (back in rotation)?");
    bool on = strcmp(state, "on") == 0;
    if (reason && !on)
        return ctl_usage_error(ctl, "--reason goes with 'on'");
    json_t *req = json_pack("{s:s, s:b}", "op", "maint", "enable", on);
    if (req)
        json_object_set_new(req, id ? "id" : "service", json_string(id ? id : service));
    if (req && reason)
        json_object_set_new(req, "reason", json_string(reason));
    json_t *resp;
    int ec = ctl_call(ctl, req, "maint", &resp);
    if (ec)
        return ec;
    json_t *ids = json_object_get(resp, "ids");
    if (ctl->json) {
        ctl_print_json(json_pack("{s:O, s:b}", "ids", ids, "maintenance", on));
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(ids, i, v)
        {
            printf("%s: maintenance %s\n", json_string_value(v), state);
        }
    }
    json_decref(resp);
    return EXIT_OK;
}

json_t *ctl_local_checks(const struct ctl *ctl, const struct disc_instance *list, int n)
{
    json_t *map = json_object();
    disc_client *cl = NULL;
    for (int i = 0; map && i < n; i++) {
        if (list[i].origin != DISC_ORIGIN_LOCAL || json_object_get(map, list[i].id))
            continue;
        if (!cl && ctl_connect(ctl, &cl, true) != 0)
            break; /* discd not reachable: the segment's view only */
        disc_client_set_timeout(cl, 2000);
        json_t *req = json_pack("{s:s, s:s}", "op", "query", "service", list[i].service);
        char *line = req ? json_dumps(req, JSON_COMPACT) : NULL, *out = NULL;
        json_decref(req);
        json_t *resp =
            line && disc_client_request(cl, line, &out) == 0 ? json_loads(out, 0, NULL) : NULL;
        free(line);
        free(out);
        size_t k;
        json_t *inst;
        json_array_foreach(json_object_get(resp, "instances"), k, inst)
        {
            json_t *chk = json_object_get(inst, "check");
            const char *id = json_string_value(json_object_get(inst, "id"));
            if (id && json_is_object(chk))
                json_object_set(map, id, chk);
        }
        json_decref(resp);
        /* Instances the daemon did not list still get an entry: no retry. */
        if (!json_object_get(map, list[i].id))
            json_object_set_new(map, list[i].id, json_null());
    }
    if (cl)
        disc_client_close(cl);
    return map;
}

void ctl_check_note(json_t *chk, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!json_is_object(chk))
        return;
    json_t *m = json_object_get(chk, "maintenance");
    const char *note = json_string_value(json_object_get(chk, "note"));
    const char *status = json_string_value(json_object_get(chk, "status"));
    if (json_is_string(m))
        snprintf(buf, len, "maintenance%s%s%s%s", *json_string_value(m) ? ": " : "",
                 json_string_value(m), status ? "; check " : "", status ? status : "");
    else if (note && *note)
        snprintf(buf, len, "%s", note);
}
