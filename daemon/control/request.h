/* SPDX-License-Identifier: MIT */
/*
 * request.h — parsing one request line of the control protocol
 * (docs/PROTOCOL.md), with no socket: JSON syntax, the object shape, "seq"
 * and "op". control.c replies with what it finds; the fuzz harness
 * fuzz/fuzz_control.c calls it directly.
 */
#ifndef DISC_CONTROL_REQUEST_H
#define DISC_CONTROL_REQUEST_H

#include <jansson.h>
#include <stddef.h>

struct ctl_request {
    json_t *msg;    /* the parsed line (NULL if not JSON); json_decref when done */
    json_t *seq;    /* borrowed from msg; NULL if absent or invalid */
    const char *op; /* borrowed from msg; NULL unless the request is well formed */
};

struct ctl_error {
    const char *code;  /* protocol error code: "bad_json", "bad_request" */
    const char *field; /* the offending member, or NULL */
    char message[256];
};

/*
 * Parse one line (without its "\n"). Returns 1 with req filled (op set),
 * 0 for a blank line (not a request: no reply), or -1 with err filled
 * (and req->seq set when the line had a valid seq, to echo in the reply).
 * In every case the caller json_decrefs req->msg.
 */
int ctl_parse_request(const char *line, size_t len, struct ctl_request *req, struct ctl_error *err);

#endif /* DISC_CONTROL_REQUEST_H */
