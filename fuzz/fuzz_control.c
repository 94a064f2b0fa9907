/* SPDX-License-Identifier: MIT */
/*
 * fuzz_control.c — libFuzzer harness: one control-socket request line
 * through the parser discd uses (ctl_parse_request), then the validation
 * the op's handler runs before touching the registry: a register request's
 * "instance" and "check" objects (instance_from_request), the "id" of the
 * ops that take one.
 */
#include <stdint.h>
#include <string.h>

#include "instance.h"
#include "log.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        log_set_level(LOG_LVL_ERROR);
        quiet = 1;
    }
    struct ctl_request q;
    struct ctl_error e;
    int rc = ctl_parse_request((const char *)data, size, &q, &e);
    if (rc == 1) {
        if (strcmp(q.op, "register") == 0) {
            struct instance_defaults def = {.host = "fuzz-host",
                                            .az = "az-1",
                                            .interval_ms = 1000,
                                            .timeout_ms = 500,
                                            .misses = 3};
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
