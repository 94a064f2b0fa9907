/* SPDX-License-Identifier: MIT */
/*
 * fuzz_control.c — libFuzzer harness: one control-socket request line
 * through the parser discd uses (ctl_parse_request), then the validation
 * the op's handler runs before touching the registry: a register request's
 * "instance" and "check" objects (instance_from_request), the "id" of the
 * ops that take one. Differentially, the register/deregister fast path
 * (daemon/control/fastreq.c, which discd tries first): a line it takes
 * must parse with jansson to the same op, seq and id, and its instance
 * must come out of instance_from_fields exactly as out of
 * instance_from_request (the same fields, or the same error); else the
 * harness traps.
 */
#include <stdint.h>
#include <string.h>

#include "fastreq.h"
#include "instance.h"
#include "log.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct instance_defaults def = {
    .host = "fuzz-host", .az = "az-1", .interval_ms = 1000, .timeout_ms = 500, .misses = 3};

static void check(int ok)
{
    if (!ok)
        __builtin_trap();
}

/* The fast path's reading of a line jansson parsed as q. */
static void same_as_fast(const struct ctl_fast *f, const struct ctl_request *q)
{
    check(strcmp(q->op, f->op == CTL_FAST_REGISTER ? "register" : "deregister") == 0);
    check(f->has_seq == (q->seq != NULL));
    check(!f->has_seq || json_integer_value(q->seq) == f->seq);
    if (f->op == CTL_FAST_DEREGISTER) {
        json_t *id = json_object_get(q->msg, "id");
        check(json_is_string(id) && strcmp(json_string_value(id), f->id) == 0);
        return;
    }
    struct instance *a = NULL, *b = NULL;
    struct instance_error ea = {0}, eb = {0};
    int ra = instance_from_fields(f->instance, f->check, &def, &a, &ea);
    int rb = instance_from_request(json_object_get(q->msg, "instance"),
                                   json_object_get(q->msg, "check"), &def, &b, &eb);
    check(ra == rb);
    if (ra < 0) {
        check(strcmp(ea.field, eb.field) == 0 && strcmp(ea.message, eb.message) == 0);
        return;
    }
    memcpy(b->id, a->id, sizeof(a->id));
    b->registered_at_ms = a->registered_at_ms;
    json_t *ja = instance_to_json(a, INSTANCE_JSON_CHECK);
    json_t *jb = instance_to_json(b, INSTANCE_JSON_CHECK);
    check(ja && jb && json_equal(ja, jb));
    check(memcmp(&a->check, &b->check, sizeof(a->check)) == 0 && a->health == b->health);
    json_decref(ja);
    json_decref(jb);
    instance_unref(a);
    instance_unref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        log_set_level(LOG_LVL_ERROR);
        quiet = 1;
    }
    static struct ctl_fast fast;
    int taken = ctl_fast_scan((const char *)data, size, &fast);
    struct ctl_request q;
    struct ctl_error e;
    int rc = ctl_parse_request((const char *)data, size, &q, &e);
    if (taken) {
        check(rc == 1); /* jansson parses every line the fast path takes */
        same_as_fast(&fast, &q);
    }
    if (rc == 1) {
        if (strcmp(q.op, "register") == 0) {
            struct instance *inst = NULL;
            struct instance_error ierr = {0};
            if (instance_from_request(json_object_get(q.msg, "instance"),
                                      json_object_get(q.msg, "check"), &def, &inst, &ierr) == 0) {
                json_t *j = instance_to_json(inst, 0);
                json_decref(j);
                instance_unref(inst);
            }
        } else {
            json_t *id = json_object_get(q.msg, "id");
            if (json_is_string(id))
                (void)instance_check_id(json_string_value(id));
            json_t *svc = json_object_get(q.msg, "service");
            if (json_is_string(svc))
                (void)instance_check_service_name(json_string_value(svc));
        }
    }
    json_decref(q.msg);
    return 0;
}
