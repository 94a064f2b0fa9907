/* SPDX-License-Identifier: MIT */
/*
 * fuzz_formats.c — libFuzzer harness: the foreign registry formats
 * (daemon/zk/formats/) on bytes another ZooKeeper client wrote. Input:
 * "<format name>\n" (else the first byte chooses one, modulo their
 * number), then the node's name, a NUL, and the node's data (what the
 * import engine passes: the name to every format, the data to those that
 * read it). A parsed node must make a
 * document the instance model accepts (instance_from_document), as the
 * bridge then requires; anything else is a bug. The rest of the input is
 * also tried as an `import` config line.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "instance.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        log_set_level(LOG_LVL_ERROR);
        quiet = 1;
    }
    if (size < 1)
        return 0;
    size_t nfmt;
    const struct fmt_ops *const *all = fmt_all(&nfmt);
    const struct fmt_ops *f = all[data[0] % nfmt];
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    const char *nl = memchr(data, '\n', size < 32 ? size : 32);
    if (nl) {
        char fname[32];
        size_t fl = (size_t)(nl - (const char *)data);
        memcpy(fname, data, fl);
        fname[fl] = '\0';
        const struct fmt_ops *named = fmt_find(fname);
        if (named) {
            f = named;
            rest = nl + 1;
            n = size - fl - 1;
        }
    }
    const char *nul = memchr(rest, '\0', n);
    size_t name_len = nul ? (size_t)(nul - rest) : n;
    char *name = malloc(name_len + 1);
    char *payload = malloc(n - name_len + 1);
    if (!name || !payload) {
        free(name);
        free(payload);
        return 0;
    }
    memcpy(name, rest, name_len);
    name[name_len] = '\0';
    size_t dlen = nul ? n - name_len - 1 : 0;
    if (dlen)
        memcpy(payload, nul + 1, dlen);
    payload[dlen] = '\0';

    struct fmt_source src;
    char err[256];
    char line[64];
    snprintf(line, sizeof(line), "%s %s", f->name,
             f->layout == FMT_LAYOUT_SINGLE ? "/fuzz/svc" : "/fuzz");
    if (fmt_source_parse(line, &src, err, sizeof(err)) != 0)
        __builtin_trap();
    char path[4096];
    snprintf(path, sizeof(path), "/fuzz/svc/%.3000s", name);
    struct fmt_node node = {
        .src = &src,
        .path = path,
        .service_dir = f->layout == FMT_LAYOUT_SINGLE ? src.service : "org.example.Svc",
        .name = name,
        .data = f->needs_data ? payload : NULL,
        .len = f->needs_data ? dlen : 0,
        .ctime_ms = 1,
    };
    if (f->is_instance)
        (void)f->is_instance(name);
    json_t *doc = NULL;
    char why[FMT_WHY_MAX];
    int rc = f->parse(&node, &doc, why);
    if (rc == 0) {
        struct instance *inst = NULL;
        struct instance_error ierr = {0};
        int irc = instance_from_document(doc, &inst, &ierr);
        /* the instance model may refuse a host or service name the format
         * cannot judge (the engine counts those as bad data), but a
         * document must never be malformed in shape */
        if (irc != 0 && irc != -EINVAL && irc != -ENOMEM)
            __builtin_trap();
        instance_unref(inst);
        json_decref(doc);
    } else if (doc || (rc != -EINVAL && rc != -ENOMEM) || !why[0]) {
        __builtin_trap(); /* a refusal says why and leaves nothing behind */
    }
    /* the same bytes as an operator's config line */
    (void)fmt_source_parse(payload, &src, err, sizeof(err));
    free(name);
    free(payload);
    return 0;
}
