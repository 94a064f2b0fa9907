/* SPDX-License-Identifier: MIT */
/*
 * instance.h — discd's model of one service instance.
 *
 * An instance is immutable once shared: it is created by one of the
 * instance_from_* parsers (which validate every field), may be adjusted by
 * its creator (origin, owner, health) until it is handed to the registry,
 * and from then on only read. Lifetime is reference counted; the registry
 * drops its reference after an RCU grace period, so a pointer obtained
 * inside an RCU read section stays valid for that section, and
 * instance_ref() keeps it beyond.
 *
 * This module knows nothing about sockets or threads: it is also used to
 * validate instance documents read from ZooKeeper or the file cache.
 */
#ifndef DISC_INSTANCE_H
#define DISC_INSTANCE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "discshm.h"
#include "segwriter.h"

/* Check kinds (values equal those of enum health_kind in health.h). */
enum instance_check_kind {
    CHECK_NONE = 0,
    CHECK_SESSION = 1,
    CHECK_TCP = 2,
    CHECK_HTTP = 3,
    CHECK_TTL = 4,
};

#define INSTANCE_CHECK_PATH_MAX 255

/* Validation bounds of a check definition (documented in docs/PROTOCOL.md). */
#define CHECK_INTERVAL_MIN_MS    50u
#define CHECK_INTERVAL_MAX_MS    3600000u
#define CHECK_MISSES_MAX         100u
#define CHECK_TTL_MIN_MS         100u
#define CHECK_TTL_MAX_MS         86400000u
#define CHECK_TIMEOUT_DEFAULT_MS 500u
/* check.deregister_after_ms: 0 (remove at once) or in this range. */
#define CHECK_DEREGISTER_AFTER_MIN_MS 100u
#define CHECK_DEREGISTER_AFTER_MAX_MS (7u * 86400000u)
/* check.maintenance: the reason, at most this many bytes. */
#define INSTANCE_MAINT_REASON_MAX 255u
/* A unix-socket address must fit sockaddr_un.sun_path. */
#define INSTANCE_UNIX_PATH_MAX 107u

struct instance_check {
    enum instance_check_kind kind;
    uint32_t interval_ms;
    uint32_t timeout_ms;
    uint32_t misses;
    uint32_t ttl_ms;                        /* CHECK_TTL only */
    char target[DISC_ADDRESS_MAX + 1];      /* tcp/http "host:port" */
    char path[INSTANCE_CHECK_PATH_MAX + 1]; /* http request path */
    /* tcp/http/ttl: after `misses` failures the instance is removed at once
     * (0, the default) or marked critical and removed only once it has
     * stayed critical this long; passing again restores it. */
    uint32_t deregister_after_ms;
    /* Out of rotation on purpose (discctl maint): published as
     * DISC_HEALTH_MAINTENANCE whatever the check says; the check runs on. */
    bool maintenance;
    char maint_reason[INSTANCE_MAINT_REASON_MAX + 1];
};

struct instance {
    atomic_uint refs;
    char id[DISC_ID_LEN + 1];
    char *service;
    char *version;
    char *host;
    char *az;
    char *address;
    uint8_t addr_kind; /* enum disc_addr_kind */
    uint8_t health;    /* enum disc_health */
    uint8_t origin;    /* enum disc_origin */
    uint32_t weight;
    int64_t registered_at_ms; /* CLOCK_REALTIME */
    uint32_t owner_uid;       /* uid that registered it: local, the SO_PEERCRED uid of the
                                 registering peer; remote/cache, the uid on the registering
                                 host ("owner_uid" in the document); DISC_OWNER_UNKNOWN
                                 when a document does not say */
    bool from_file;           /* local: a static definition (services.d), not journaled */
    struct segw_tag *tags;
    uint16_t n_tags;
    /* service, version, host, az, address, tags and the tags' strings in
     * one allocation (instances parsed by instance.c), or NULL: each is
     * its own allocation (instance_clone) */
    void *strings;
    struct segw_endpoint *endpoints;
    uint16_t n_endpoints;
    struct instance_check check; /* local instances only */
};

/* Why a document was refused. code is a protocol error code
 * ("bad_request", ...); field is a JSON path such as "instance.tags.env"
 * or "instance.endpoints[2].name" ("" when no single field is at fault). */
struct instance_error {
    const char *code;
    char field[160];
    char message[256];
};

/* Daemon-wide defaults applied to a registration. */
struct instance_defaults {
    const char *host;     /* host id */
    const char *az;       /* may be "" */
    uint32_t interval_ms; /* check interval */
    uint32_t timeout_ms;  /* check timeout (clamped below the interval) */
    uint32_t misses;      /* consecutive misses before removal */
};

/*
 * Build a new local instance from a register request's "instance" object
 * and optional "check" object (NULL: a session check). Every field is
 * validated (types, lengths, characters, address syntax); unknown fields
 * are refused. Assigns a fresh random UUID and registered_at_ms = now;
 * origin LOCAL, health PASSING, owner_uid 0 (the caller sets it).
 * Returns 0 and *out (one reference), -EINVAL with *err filled, -ENOMEM.
 */
int instance_from_request(const json_t *inst, const json_t *check,
                          const struct instance_defaults *def, struct instance **out,
                          struct instance_error *err);

/*
 * A JSON object as a flat list of members, as the control thread's register
 * fast path scans it from a request line (control/fastreq.c) without
 * building a jansson tree: strings (NUL-terminated, no NUL inside),
 * integers and nested objects, at most INSTANCE_FOBJ_MAX members, no
 * duplicate keys. instance_from_fields reads it with the same validation
 * as instance_from_request reads a jansson object.
 */
#define INSTANCE_FOBJ_MAX 16
enum instance_fval_type { IFV_STR = 1, IFV_INT, IFV_OBJ };
struct instance_fobj;
struct instance_fval {
    const char *key; /* NUL-terminated */
    enum instance_fval_type type;
    const char *str;                 /* IFV_STR: NUL-terminated */
    size_t len;                      /* IFV_STR: strlen(str) */
    json_int_t num;                  /* IFV_INT */
    const struct instance_fobj *obj; /* IFV_OBJ */
};
struct instance_fobj {
    unsigned n;
    struct instance_fval v[INSTANCE_FOBJ_MAX];
};

/*
 * instance_from_request for a request scanned into flat objects: inst is
 * the "instance" object, check the "check" object (NULL: absent). The
 * same checks, defaults and results as instance_from_request given the
 * same members as jansson objects.
 */
int instance_from_fields(const struct instance_fobj *inst, const struct instance_fobj *check,
                         const struct instance_defaults *def, struct instance **out,
                         struct instance_error *err);

/*
 * Build an instance from a full instance document as produced by
 * instance_to_json (e.g. read from ZooKeeper or a cache file): "id",
 * "service", "host" and "address" are required, "registered_at_ms",
 * "health" and "origin" are optional, unknown fields are ignored for
 * forward compatibility. origin defaults to REMOTE, owner_uid (optional)
 * to DISC_OWNER_UNKNOWN. Returns as
 * instance_from_request.
 */
int instance_from_document(const json_t *doc, struct instance **out, struct instance_error *err);

/* Flags for instance_to_json. */
#define INSTANCE_JSON_CHECK 0x1u /* include the "check" object */

/*
 * The instance as a JSON object: the registered fields plus "id",
 * "registered_at_ms", "health", "origin" and "owner_uid" (when known).
 * NULL on out-of-memory.
 */
json_t *instance_to_json(const struct instance *inst, unsigned flags);

/* A new, unshared copy of inst (one reference) with the same id, fields and
 * check, for replacing it in the registry with a changed health or
 * maintenance state; NULL on out-of-memory. */
struct instance *instance_clone(const struct instance *inst);

/* Fill *out for segw_put. Pointers refer into inst (keep a reference). */
void instance_to_segw(const struct instance *inst, struct segw_instance *out);

/* Arena bytes of the instance's record in the segment (segw_record_size of
 * instance_to_segw); what per-uid byte limits count. 0 if it would not fit. */
uint32_t instance_record_bytes(const struct instance *inst);

/* Take / drop a reference. instance_unref frees at zero; NULL is a no-op. */
struct instance *instance_ref(struct instance *inst);
void instance_unref(struct instance *inst);

/* "session", "tcp", ... ; NULL for an unknown kind. */
const char *instance_check_kind_name(enum instance_check_kind kind);

/* "unknown", "passing", "warning", "critical", "maintenance". */
const char *instance_health_name(uint8_t health);

/* "local", "remote", "cache". */
const char *instance_origin_name(uint8_t origin);

/* Validate a tcp address "host:port" or "[v6]:port". 0 or -EINVAL. */
int instance_check_tcp_address(const char *s);

/* Validate a service name (1..255 of [A-Za-z0-9._:-]). 0 or -EINVAL. */
int instance_check_service_name(const char *s);

/* Validate a textual UUID (36 chars, lower- or upper-case hex). 0 or -EINVAL. */
int instance_check_id(const char *s);

#endif /* DISC_INSTANCE_H */
