/* SPDX-License-Identifier: MIT */
/* request.c — parsing one control request line (see request.h). */
#include "request.h"

#include <stdio.h>
#include <string.h>

static int refuse(struct ctl_error *err, const char *code, const char *field, const char *msg)
{
    err->code = code;
    err->field = field;
    snprintf(err->message, sizeof(err->message), "%s", msg);
    return -1;
}

int ctl_parse_request(const char *line, size_t len, struct ctl_request *req, struct ctl_error *err)
{
    memset(req, 0, sizeof(*req));
    memset(err, 0, sizeof(*err));
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    size_t skip = 0;
    while (skip < len && (line[skip] == ' ' || line[skip] == '\t'))
        skip++;
    if (skip == len)
        return 0; /* blank line: not a request */
    json_error_t jerr;
    req->msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req->msg) {
        err->code = "bad_json";
        snprintf(err->message, sizeof(err->message), "invalid JSON at byte %d: %s", jerr.position,
                 jerr.text);
        return -1;
    }
    if (!json_is_object(req->msg))
        return refuse(err, "bad_request", NULL, "a request must be a JSON object");
    json_t *seq = json_object_get(req->msg, "seq");
    if (seq && !json_is_integer(seq))
        return refuse(err, "bad_request", "seq", "seq must be an integer");
    req->seq = seq;
    json_t *op = json_object_get(req->msg, "op");
    if (!op)
        return refuse(err, "bad_request", "op", "op is required");
    if (!json_is_string(op))
        return refuse(err, "bad_request", "op", "op must be a string");
    req->op = json_string_value(op);
    return 1;
}
