/* SPDX-License-Identifier: MIT */
/*
 * fastreq.h — the control thread's fast path for the two requests that
 * change the registry, register and deregister: a scanner that reads a
 * request line of the plain shape clients send (one object, members that
 * are strings without escapes, non-negative integers or nested objects)
 * straight into flat objects (struct instance_fobj), with no jansson tree
 * and no allocation. It takes a line only when it can read all of it;
 * anything else (escapes, non-ASCII bytes, arrays, true/false/null,
 * negative or fractional numbers, duplicate or unknown members, other ops,
 * lines over CTL_FAST_LINE_MAX bytes, malformed JSON) is left to
 * ctl_parse_request and jansson, which then make the reply, errors
 * included. Why it exists: docs/DESIGN.md "Publish policy".
 */
#ifndef DISC_CONTROL_FASTREQ_H
#define DISC_CONTROL_FASTREQ_H

#include <stdbool.h>
#include <stddef.h>

#include "instance.h"

#define CTL_FAST_LINE_MAX 2048u /* longer lines go to jansson */
#define CTL_FAST_OBJS     4     /* the request, instance, instance.tags, check */

enum ctl_fast_op { CTL_FAST_REGISTER = 1, CTL_FAST_DEREGISTER };

struct ctl_fast {
    enum ctl_fast_op op;
    bool has_seq;
    json_int_t seq;
    const struct instance_fobj *instance; /* register: the "instance" object */
    const struct instance_fobj *check;    /* register: "check", NULL if absent */
    const char *id;                       /* deregister: "id" (not yet checked) */
    /* storage the pointers above point into */
    struct instance_fobj objs[CTL_FAST_OBJS];
    char text[CTL_FAST_LINE_MAX + CTL_FAST_LINE_MAX / 2];
};

/*
 * Scan one request line (without its "\n", trailing blanks and "\r"
 * allowed as for ctl_parse_request). Returns 1 with *out filled when the
 * line is a register or deregister request of the shape described above,
 * 0 when it is not (the caller then parses it with ctl_parse_request).
 * It checks JSON syntax and the members' names and types only; the
 * values are checked by instance_from_fields / instance_check_id, exactly
 * as on the jansson path.
 */
int ctl_fast_scan(const char *line, size_t len, struct ctl_fast *out);

#endif /* DISC_CONTROL_FASTREQ_H */
