/* SPDX-License-Identifier: MIT */
/*
 * services.h — static service definitions: a directory of *.json files
 * (default /etc/discd/services.d) whose instances discd registers at start
 * and re-applies on SIGHUP and `discctl reload` (docs/DAEMON.md, "Static
 * service definitions").
 *
 * A file holds one definition (a JSON object) or an array of them. A
 * definition has the members of a register request — "instance" (required)
 * and "check" (optional, default {"type":"none"}) — plus an optional "id"
 * (a lowercase textual UUID). Without "id", the id is derived from the
 * file name and the entry's position (a name-based UUID, RFC 4122 v5), so
 * it is the same at every start. Instances and checks are validated exactly
 * like registrations; a "session" check is refused (no connection owns a
 * static instance). Files whose names do not end in ".json" or start with
 * '.' are ignored.
 *
 * Errors never stop the others: a file that is not valid JSON, or a bad
 * entry, is reported as "PATH:LINE: message" and skipped; on a reload the
 * instances it defined before are kept until it is fixed.
 *
 * Not thread-safe: the control thread owns a services set.
 */
#ifndef DISC_SERVICES_H
#define DISC_SERVICES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "instance.h"

#define SERVICES_DEFAULT_DIR "/etc/discd/services.d"

struct services;

/* How a set of definitions is applied to the registry (control thread). */
struct services_ops {
    /* Register inst (a new reference is taken by the callee as needed).
     * 0, or -errno with a message (256 bytes) in err. */
    int (*add)(void *arg, struct instance *inst, char *err);
    /* Remove the instance with this id (reason for the log). */
    void (*remove)(void *arg, const char *id, const char *reason);
    void *arg;
};

/* An empty set for directory dir; owner_uid becomes every instance's owner. */
struct services *services_new(const char *dir, uint32_t owner_uid);

/* Remove nothing, free the set. NULL is a no-op. */
void services_free(struct services *s);

/* Result of one load. */
struct services_result {
    unsigned files;   /* definition files read */
    unsigned added;   /* instances registered */
    unsigned changed; /* instances re-registered with a changed definition */
    unsigned removed; /* instances whose definition is gone */
    unsigned kept;    /* unchanged */
    json_t *errors;   /* array of "PATH:LINE: message" strings (owned by the caller) */
};

/*
 * Read the directory and make the registered static instances equal to it:
 * add new definitions, re-register changed ones (same id), remove those whose
 * file or entry is gone. Definitions in error keep what they had before.
 * A missing directory means no definitions (not an error). def supplies the
 * registration defaults. Fills *res (res->errors always set, maybe empty).
 * Returns 0, or -ENOMEM.
 */
int services_apply(struct services *s, const struct instance_defaults *def,
                   const struct services_ops *ops, struct services_result *res);

/* Static instance count. */
size_t services_count(const struct services *s);

/* True if id is a static instance of this set. */
int services_has(const struct services *s, const char *id);

#endif /* DISC_SERVICES_H */
