/* SPDX-License-Identifier: MIT */
/*
 * fuzz_instance_doc.c — libFuzzer harness: a ZooKeeper instance document
 * (the bytes of a node under <root>/hosts/<host>/) through what discd
 * does with it: zk_sync parses and checks it once (zk_sync_parse_doc, as
 * for every node it reads), the bridge (zk_bridge.c cb_remote_upsert)
 * hands that parsed document to instance_from_document; an accepted
 * instance is turned back into a document and into a segment record, as
 * discd then does.
 */
#include <stdint.h>

#include "instance.h"
#include "log.h"
#include "segwriter.h"
#include "zk_sync.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        log_set_level(LOG_LVL_ERROR);
        quiet = 1;
    }
    json_t *doc = NULL;
    (void)zk_sync_parse_doc((const char *)data, size, NULL, 65536, &doc, NULL);
    struct instance *inst = NULL;
    struct instance_error ierr = {0};
    if (doc && instance_from_document(doc, &inst, &ierr) == 0) {
        json_t *back = instance_to_json(inst, 0);
        struct instance *again = NULL;
        /* What discd writes it reads back the same way. */
        if (back && instance_from_document(back, &again, &ierr) != 0)
            __builtin_trap();
        if (again)
            instance_unref(again);
        json_decref(back);
        struct segw_instance sw;
        instance_to_segw(inst, &sw);
        instance_unref(inst);
    }
    json_decref(doc);
    return 0;
}
