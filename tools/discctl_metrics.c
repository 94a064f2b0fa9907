/* SPDX-License-Identifier: MIT */
/*
 * discctl_metrics.c — `discctl metrics`: print discd's metrics in the
 * Prometheus text format, fetched through the control socket's "metrics"
 * op (no HTTP listener needed). docs/DAEMON.md, "Metrics", lists them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discctl.h"

const char ctl_help_metrics[] =
    "NAME\n"
    "    discctl metrics - print discd's metrics (Prometheus text format)\n"
    "\n"
    "SYNOPSIS\n"
    "    discctl metrics\n"
    "\n"
    "DESCRIPTION\n"
    "    Asks discd over its control socket for its counters and gauges and\n"
    "    prints them in the Prometheus text exposition format 0.0.4, exactly\n"
    "    as its HTTP listener (discd --metrics-listen ADDR:PORT) serves them\n"
    "    at /metrics: instances by origin and health, services, publishes and\n"
    "    their latency histogram, segment bytes, health checks by kind,\n"
    "    control requests and errors by op, ZooKeeper state and sync counts,\n"
    "    skipped region documents. docs/DAEMON.md lists every metric. With\n"
    "    --json: {\"content_type\": ..., \"text\": ...}.\n"
    "\n"
    "%s\n"
    "%s"
    "\n"
    "EXAMPLES\n"
    "    discctl metrics | grep '^discd_instances'\n"
    "    discctl metrics > /var/lib/node_exporter/textfile/discd.prom\n";

int cmd_metrics(struct ctl *ctl, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") != 0)
            return ctl_usage_error(ctl, "unexpected argument '%s' (discctl metrics takes none)",
                                   argv[i]);
    }
    disc_client *cl;
    int ec = ctl_connect(ctl, &cl, false);
    if (ec)
        return ec;
    char *resp = NULL;
    int rc = disc_client_request(cl, "{\"op\":\"metrics\"}", &resp);
    if (rc < 0) {
        char msg[512];
        if (disc_client_error(cl, msg, sizeof(msg)) == 0)
            snprintf(msg, sizeof(msg), "%s", disc_client_strerror(rc));
        ctl_err(ctl, "%s", msg);
        disc_client_close(cl);
        return ctl_exit_code(rc);
    }
    json_t *r = json_loads(resp, 0, NULL);
    free(resp);
    json_t *text = json_object_get(r, "text");
    ec = EXIT_OK;
    if (!json_is_true(json_object_get(r, "ok")) || !json_is_string(text)) {
        char msg[512];
        if (disc_client_error(cl, msg, sizeof(msg)) == 0)
            snprintf(msg, sizeof(msg), "discd answered the metrics request without metrics");
        ctl_err(ctl, "%s", msg);
        ec = EXIT_ERR;
    } else if (ctl->json) {
        json_object_del(r, "ok");
        json_object_del(r, "seq");
        ctl_print_json(json_incref(r));
    } else {
        fwrite(json_string_value(text), 1, json_string_length(text), stdout);
    }
    json_decref(r);
    disc_client_close(cl);
    return ec;
}
