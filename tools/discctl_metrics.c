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
    if (ctl_no_operands(ctl, argc, argv))
        return EXIT_USAGE;
    json_t *r;
    int ec = ctl_call(ctl, json_pack("{s:s}", "op", "metrics"), "metrics", &r);
    if (ec)
        return ec;
    json_t *text = json_object_get(r, "text");
    if (!json_is_string(text)) {
        ctl_err(ctl, "discd answered the metrics request without metrics");
        ec = EXIT_ERR;
    } else if (ctl->json) {
        json_object_del(r, "ok");
        json_object_del(r, "seq");
        ctl_print_json(json_incref(r));
    } else {
        fwrite(json_string_value(text), 1, json_string_length(text), stdout);
    }
    json_decref(r);
    return ec;
}
