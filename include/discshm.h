/* SPDX-License-Identifier: MIT */
/*
 * discshm.h — libdiscshm, the reader side of the discshm service registry.
 *
 * A discd daemon publishes the host's view of the region's service registry
 * into a shared-memory segment: a file on tmpfs in a registry directory only
 * discd's uid can write (default /run/discshm). This library checks who
 * owns it, maps it read-only and answers queries with lock-free reads: no
 * socket, no syscall, no lock and no write to shared memory on the lookup
 * path.
 *
 * Conventions
 *   - Every function that can fail returns 0 (or a count) on success and a
 *     negative errno value on failure. The errors used are listed below.
 *   - A disc_handle is thread-safe: any number of threads may use one handle
 *     at once. It must not be used across fork(): a child opens its own.
 *   - Nothing read from shared memory is trusted: every offset is
 *     bounds-checked and every loop is bounded. A corrupted, truncated or
 *     garbage segment yields -EBADMSG, never a crash.
 *   - The library depends on libc only (C11 atomics, futex via syscall).
 *
 * Errors
 *   -ENOENT           no such segment / service / instance
 *   -EBADMSG          the segment (or a record in it) failed validation
 *   -EPROTONOSUPPORT  the segment's ABI major version is not ours
 *   -EAGAIN           the writer overtook this read too often; try again
 *   -ENOBUFS          the caller's buffer is too small (see *needed)
 *   -ETIMEDOUT        disc_wait_change timed out
 *   -EINVAL           a bad argument
 *   -ENAMETOOLONG     a name longer than its DISC_*_MAX limit
 *   -ENOMEM           out of process memory (open only)
 *   -EPERM            the registry's objects are not trustworthy: wrong
 *                     owner, writable by others, not a regular file, a
 *                     symlink, or in a directory others can write
 *                     (disc_open_ex says which)
 */
#ifndef DISCSHM_H
#define DISCSHM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Limits (bytes, excluding the terminating NUL) ----------------------
 * The daemon refuses registrations beyond these; readers rely on them to
 * size buffers. */
#define DISC_ID_LEN            36 /* textual UUID */
#define DISC_SERVICE_MAX       255
#define DISC_VERSION_MAX       64
#define DISC_HOST_MAX          255
#define DISC_AZ_MAX            64
#define DISC_ADDRESS_MAX       255
#define DISC_TAG_KEY_MAX       64
#define DISC_TAG_VALUE_MAX     255
#define DISC_TAGS_MAX          32
#define DISC_ENDPOINT_NAME_MAX 128
#define DISC_TYPE_NAME_MAX     255
#define DISC_ENDPOINTS_MAX     64

/* Default registry name when neither an argument nor $DISCSHM_NAME is set. */
#define DISC_DEFAULT_NAME "discshm"
/* The environment variable consulted by disc_open(NULL, ...). */
#define DISC_NAME_ENV "DISCSHM_NAME"

/*
 * Where registries live. A registry NAME is the file DIR/NAME (the data
 * segment) and DIR/NAME.lock (discd's one-writer lock). DIR is, in order:
 * the `dir` open option; $DISCSHM_DIR; for root DISC_SYSTEM_DIR; for other
 * users $XDG_RUNTIME_DIR/DISC_USER_SUBDIR (a registry of their own) and
 * then DISC_SYSTEM_DIR. discd uses the same rule (its --dir, then
 * $DISCSHM_DIR, then DISC_SYSTEM_DIR for root and
 * $XDG_RUNTIME_DIR/DISC_USER_SUBDIR otherwise).
 *
 * Before trusting a byte a reader checks: DIR is a real directory owned by
 * the expected owner and not writable by group or others; the directory
 * holding DIR is owned by root or the expected owner and not writable by
 * group or others; the object is a regular file (opened with O_NOFOLLOW)
 * owned by the expected owner and not writable by group or others. The
 * expected owner is the `owner` open option, else $DISCSHM_OWNER (a decimal
 * uid), else the owner of DIR. Anything else is -EPERM.
 */
#define DISC_DIR_ENV     "DISCSHM_DIR"
#define DISC_OWNER_ENV   "DISCSHM_OWNER"
#define DISC_SYSTEM_DIR  "/run/discshm"
#define DISC_USER_SUBDIR "discshm"

/* ---- Instances ------------------------------------------------------------ */

/* Address kinds. */
enum disc_addr_kind {
    DISC_ADDR_TCP = 1,  /* "host:port" ("[v6]:port" for IPv6) */
    DISC_ADDR_UNIX = 2, /* an absolute unix-socket path */
};

/* Health as last judged by the writer. An instance is "in rotation" when it
 * is unknown, passing or warning: critical instances (a failing check with
 * a deregister-after delay) and instances in maintenance (taken out by an
 * operator, `discctl maint`) stay registered but are skipped by pickers and
 * by DISC_HEALTH_NOT_CRITICAL filters. */
enum disc_health {
    DISC_HEALTH_UNKNOWN = 0,
    DISC_HEALTH_PASSING = 1,
    DISC_HEALTH_WARNING = 2,
    DISC_HEALTH_CRITICAL = 3,
    DISC_HEALTH_MAINTENANCE = 4, /* out of rotation on purpose; its check still runs */
};

/* Where an instance came from, as seen by this host's writer. */
enum disc_origin {
    DISC_ORIGIN_LOCAL = 1,  /* registered with this host's discd */
    DISC_ORIGIN_REMOTE = 2, /* learned from the region (ZooKeeper) */
    DISC_ORIGIN_CACHE = 3,  /* restored from the file cache, not yet confirmed */
};

/* disc_instance.owner_uid when the owner is not known (e.g. an instance
 * document from a discd that did not record it). No real uid has this value. */
#define DISC_OWNER_UNKNOWN 0xffffffffu

/*
 * A view of one instance. All strings are NUL-terminated and point either
 * into the shared segment (zero-copy calls; valid until disc_read_end) or into
 * the caller's buffer (copy-out calls; valid as long as that buffer).
 * Tags and endpoints are read with disc_instance_tag / disc_instance_endpoint.
 */
struct disc_instance {
    const char *id;      /* textual UUID, 36 chars */
    const char *service; /* service name */
    const char *version;
    const char *host;    /* host id of the registering host */
    const char *az;      /* availability zone / region, may be "" */
    const char *address; /* see addr_kind */
    uint32_t weight;     /* load-balancing weight (default 10) */
    uint8_t addr_kind;   /* enum disc_addr_kind */
    uint8_t health;      /* enum disc_health */
    uint8_t origin;      /* enum disc_origin */
    uint8_t reserved_;
    uint16_t n_tags;
    uint16_t n_endpoints;
    int64_t registered_at_ms; /* CLOCK_REALTIME, milliseconds */
    /* uid that registered the instance: for origin LOCAL the SO_PEERCRED uid
     * of the registering connection on this host (for static definitions the
     * uid discd recorded when loading them); for REMOTE / CACHE the uid on the
     * registering host (uids are host-local: compare them only if the hosts
     * share a user database). DISC_OWNER_UNKNOWN if not known. */
    uint32_t owner_uid;
    uint32_t reserved2_;
    /* private: the validated record this view was made from */
    const void *rec_;
    uint32_t rec_size_;
    uint32_t rec_pad_;
};

/* One endpoint of an instance. Latencies are 0 when unknown. */
struct disc_endpoint {
    const char *name;
    const char *request_type;
    const char *response_type;
    uint32_t mean_us;
    uint32_t p95_us;
};

/* Tag i (0 <= i < inst->n_tags): sets *key and *value. -EINVAL if i is out of
 * range, -EBADMSG if the record is damaged. */
int disc_instance_tag(const struct disc_instance *inst, unsigned i, const char **key,
                      const char **value);

/* Value of the tag named key, or NULL if the instance has no such tag. */
const char *disc_instance_tag_get(const struct disc_instance *inst, const char *key);

/* Endpoint i (0 <= i < inst->n_endpoints). -EINVAL if out of range,
 * -EBADMSG if the record is damaged. */
int disc_instance_endpoint(const struct disc_instance *inst, unsigned i, struct disc_endpoint *out);

/* ---- Handles --------------------------------------------------------------- */

typedef struct disc_handle disc_handle;

/* Flags for disc_open. */
#define DISC_OPEN_VERIFY         0x1u /* verify each record's checksum on every read */
#define DISC_OPEN_CACHE_FALLBACK 0x2u /* no segment: open discd's file cache instead */

/* The file cache disc_open falls back to: $DISCSHM_CACHE if set, else
 * DISC_DEFAULT_CACHE_DIR "/<name>.cache" (discd's default --cache-file). */
#define DISC_CACHE_ENV         "DISCSHM_CACHE"
#define DISC_DEFAULT_CACHE_DIR "/var/cache/discshm"

/*
 * Map the registry `name` (NULL: $DISCSHM_NAME, else DISC_DEFAULT_NAME)
 * from its registry directory (see DISC_DIR_ENV), after the ownership
 * checks described there. The data object is mapped PROT_READ; the reader
 * writes nothing shared. When the writer restarts, the handle follows the
 * new segment on its next read without being reopened. With
 * DISC_OPEN_CACHE_FALLBACK and no segment, the file cache is opened instead
 * (see disc_open_file); such a handle does not switch to the segment when
 * discd starts: check disc_status and reopen.
 * Same as disc_open_ex with only name and flags set.
 * Returns 0 and sets *out, or -ENOENT (no segment), -EPERM (untrusted
 * object or directory), -EBADMSG, -EPROTONOSUPPORT, -EACCES, -EINVAL,
 * -ENAMETOOLONG, -ENOMEM.
 */
int disc_open(const char *name, unsigned flags, disc_handle **out);

/* Options for disc_open_ex. A zeroed struct means "all defaults". */
struct disc_open_opts {
    const char *name; /* registry name; NULL: $DISCSHM_NAME, else DISC_DEFAULT_NAME */
    unsigned flags;   /* DISC_OPEN_* */
    /* Expected owner uid of the registry directory and its objects, used
     * when owner_set is non-zero; otherwise $DISCSHM_OWNER, else the owner
     * of the registry directory. */
    uint32_t owner;
    uint32_t owner_set;
    uint32_t reserved_;
    const char *dir;   /* registry directory; NULL: see DISC_DIR_ENV */
    const char *file;  /* non-NULL: open this file-cache image instead of a
                          registry (as disc_open_file); name and dir unused */
    const char *cache; /* DISC_OPEN_CACHE_FALLBACK image; NULL: $DISCSHM_CACHE,
                          else DISC_DEFAULT_CACHE_DIR/<name>.cache */
    char *err;         /* optional: on failure a one-line message naming the
                          path and cause (e.g. the owner found and expected) */
    size_t errlen;     /* size of err */
};

/*
 * Open a registry (or, with opts->file, a file-cache image) with explicit
 * options; see disc_open and struct disc_open_opts. opts NULL = defaults.
 * On failure, if opts->err is set it receives a message such as
 * "/run/discshm/orders is owned by uid 65534, expected uid 0".
 * Returns what disc_open returns.
 */
int disc_open_ex(const struct disc_open_opts *opts, disc_handle **out);

/*
 * Open a file-cache image written by discd (see DISC_OPEN_CACHE_FALLBACK)
 * directly. Everything works as on a live segment except disc_wait_change,
 * which only times out: the file never changes. disc_status reports
 * DISC_ST_FROM_CACHE | DISC_ST_DEGRADED (the writer is not alive). A
 * truncated or corrupted file fails its checksum: -EBADMSG. The file and
 * its directory get the same ownership checks as a registry (see
 * DISC_DIR_ENV; the expected owner defaults to the directory's owner):
 * -EPERM. flags: DISC_OPEN_VERIFY only.
 */
int disc_open_file(const char *path, unsigned flags, disc_handle **out);

/* Unmap and free. No read section of this handle may be open. NULL is a no-op. */
void disc_close(disc_handle *h);

/* ---- Copy-out queries -------------------------------------------------------
 * Each call runs its own read section and copies what it returns into
 * caller memory, so results stay valid after the writer moves on. */

/*
 * Every instance of `service`. Lays out an array of struct disc_instance at
 * the start of buf followed by copies of the records; sets *list to that
 * array and returns the number of instances (0 is not returned: a service
 * with no instances does not exist, -ENOENT).
 * If buflen is too small returns -ENOBUFS and sets *needed (when non-NULL)
 * to a size that was sufficient at that moment.
 */
int disc_lookup(disc_handle *h, const char *service, void *buf, size_t buflen,
                struct disc_instance **list, size_t *needed);

/* The instance with textual UUID `id`, copied into buf as for disc_lookup.
 * Returns 0, -ENOENT, -ENOBUFS (with *needed). */
int disc_lookup_id(disc_handle *h, const char *id, void *buf, size_t buflen,
                   struct disc_instance **inst, size_t *needed);

/* Number of instances of `service` (0 if it does not exist), or -errno. */
int disc_count(disc_handle *h, const char *service);

/* One service in a listing. */
struct disc_service_info {
    const char *name;
    uint32_t n_instances;
    uint32_t reserved_;
};

/*
 * All services, sorted by name. Lays out an array of struct
 * disc_service_info followed by the names in buf; returns the count,
 * or -ENOBUFS with *needed.
 */
int disc_list_services(disc_handle *h, void *buf, size_t buflen, struct disc_service_info **list,
                       size_t *needed);

/* ---- Zero-copy read sections -------------------------------------------------
 *
 *   struct disc_read rd;
 *   int rc;
 *   do {
 *       if ((rc = disc_read_begin(h, &rd)) < 0) break;
 *       ... disc_read_service / disc_read_instance ... (use, don't keep)
 *   } while ((rc = disc_read_end(&rd)) == -EAGAIN);
 *
 * Everything obtained inside a section is valid only if disc_read_end then
 * returns 0: a section that stalls for long (e.g. the process was stopped)
 * may be overtaken by the writer, and then its results must be discarded.
 * Sections are short: do not block inside one. Sections may not nest on one
 * thread.
 *
 * Work budget: every section may do a bounded amount of work, a small
 * multiple of a full walk of a registry the size of its snapshot (plus a
 * constant for many small lookups, with a hard cap). Calls made after the
 * budget is spent return -EBADMSG, so no segment — damaged, hostile, or
 * with records that reference each other in circles — can keep a reader
 * busy for long. The copy-out calls stay far below it; a zero-copy caller
 * doing many full walks should open a new section for each. */

struct disc_read {
    /* private */
    disc_handle *h_;
    void *map_;
    const unsigned char *base_;
    uint64_t root_; /* the root word the section loaded (low 32 bits: the snapshot) */
    uint64_t gen_;
    uint32_t svc_;   /* the service record last validated in this section (0: none) */
    uint32_t svc_n_; /* its validated instance count */
    int16_t slot_;
    uint16_t flags_;
    uint32_t work_; /* work budget left + 1; 0 = not computed yet */
};

/* A service found inside a read section. */
struct disc_service_view {
    const char *name;
    uint32_t n_instances;
    /* private */
    uint32_t rec_;
};

/* Open a read section on the current snapshot. Returns 0, -EBADMSG,
 * -EAGAIN (the segment was being replaced; try again), -ENOENT (the
 * registry is gone, see DISC_ST_GONE), -EPERM (its replacement failed the
 * ownership checks). */
int disc_read_begin(disc_handle *h, struct disc_read *rd);

/* Close the section. 0: everything read in it was consistent.
 * -EAGAIN: the writer may have reused memory the section read (it lasted
 * longer than the writer's reclaim delay, default 1 s, or the writer was
 * short of memory); discard what was read and retry. */
int disc_read_end(struct disc_read *rd);

/* Generation of the snapshot the section reads. */
uint64_t disc_read_generation(const struct disc_read *rd);

/* Find a service. 0 and *sv filled, or -ENOENT, -EBADMSG. */
int disc_read_service(struct disc_read *rd, const char *service, struct disc_service_view *sv);

/* Instance i of a service found in this section. 0, -EINVAL, -EBADMSG. */
int disc_read_instance(struct disc_read *rd, const struct disc_service_view *sv, uint32_t i,
                       struct disc_instance *out);

/* The instance with textual UUID `id`. 0, -ENOENT, -EBADMSG. */
int disc_read_instance_by_id(struct disc_read *rd, const char *id, struct disc_instance *out);

/*
 * Iterate services in hash order. Set *cursor to 0 before the first call;
 * each call fills *sv and returns 1, or returns 0 at the end (or -EBADMSG).
 */
int disc_read_next_service(struct disc_read *rd, uint64_t *cursor, struct disc_service_view *sv);

/* ---- Status and change notification ---------------------------------------- */

/* Flags in disc_status.flags */
#define DISC_ST_WRITER_ALIVE  0x01u /* writer heartbeat is recent */
#define DISC_ST_RECYCLED      0x02u /* handle's segment was replaced (transient) */
#define DISC_ST_ZK_CONFIGURED 0x04u /* the writer syncs with ZooKeeper */
#define DISC_ST_ZK_CONNECTED  0x08u /* ...and is connected now */
#define DISC_ST_DEGRADED      0x10u /* data may be stale (see degraded_*) */
#define DISC_ST_FROM_CACHE    0x20u /* snapshot came from the file cache */
#define DISC_ST_COOLING_OFF   0x40u /* removals held after a reconnect */
#define DISC_ST_HELD_CHANGES  0x80u /* protection is holding back removals */
/* The writer shut down cleanly (see writer_dead_since_ms). */
#define DISC_ST_WRITER_STOPPED 0x100u
/* The registry's objects were removed (discd stopped with --unlink-on-exit,
 * or its directory was cleaned) and no new discd replaced them. The data is
 * the last picture and will not change; once the writer is also gone
 * (dead or stopped, see DISC_WRITER_DEAD_MS, or it removed the objects
 * itself) read sections and lookups fail with -ENOENT instead of serving
 * it. degraded_reason is then DISC_DEG_REMOVED. Checked at every disc_status and every few thousand
 * read sections; a new discd under the same name is followed as after a restart. */
#define DISC_ST_GONE 0x200u

/* Why the registry is degraded (disc_status.degraded_reason). */
enum disc_degraded_reason {
    DISC_DEG_NONE = 0,
    DISC_DEG_ZK_DISCONNECTED = 1, /* connection to ZooKeeper lost */
    DISC_DEG_ZK_EXPIRED = 2,      /* session expired, re-establishing */
    DISC_DEG_ZK_UNREACHABLE = 3,  /* never connected since start */
    DISC_DEG_WRITER_DEAD = 4,     /* the writer stopped heartbeating (crashed or hung) */
    DISC_DEG_WRITER_STOPPED = 5,  /* the writer shut down cleanly */
    DISC_DEG_ZK_SYNC_FAILING = 6, /* connected, but sync rounds fail (the daemon's status
                                   * says why: zookeeper.last_error) */
    DISC_DEG_REMOVED = 7,         /* the registry's objects were removed (DISC_ST_GONE) */
};

/* A short, stable name for a disc_degraded_reason: "none",
 * "zookeeper-disconnected", "zookeeper-session-expired",
 * "zookeeper-unreachable", "writer-dead", "writer-stopped",
 * "zookeeper-sync-failing", "registry-removed"; "unknown" for any other
 * value. Never NULL. */
const char *disc_status_reason_str(uint32_t reason);

struct disc_status {
    uint64_t generation; /* current snapshot generation */
    uint32_t change_seq; /* futex word value (see disc_wait_change) */
    uint32_t flags;      /* DISC_ST_* */
    uint32_t abi_major, abi_minor;
    int32_t writer_pid;
    uint32_t degraded_reason;  /* enum disc_degraded_reason */
    int64_t heartbeat_age_ms;  /* since the writer last heartbeated */
    int64_t degraded_since_ms; /* CLOCK_REALTIME ms, 0 if not degraded */
    int64_t last_sync_ms;      /* CLOCK_REALTIME ms of last ZooKeeper sync, 0 if none */
    int64_t published_at_ms;   /* CLOCK_REALTIME ms the snapshot was published */
    uint32_t n_services;
    uint32_t n_instances;
    uint64_t segment_bytes; /* size of the data object */
    uint64_t used_bytes;    /* arena bytes in use by live + retired records */
    uint64_t overtakes;     /* times the writer reused memory before its
                               reclaim delay (retired-bytes budget) */
    uint32_t held_changes;  /* removals held by protection */
    uint32_t reserved_;
    /* When the writer is not alive: CLOCK_REALTIME ms it shut down
     * (DISC_ST_WRITER_STOPPED) or last heartbeated; 0 while it is alive. */
    int64_t writer_dead_since_ms;
    uint32_t writer_dead_after_ms; /* the heartbeat threshold in use (see below) */
    uint32_t stale;                /* DISC_STALE_* bits, as disc_stale() returns */
};

/*
 * Writer liveness. discd refreshes a heartbeat in the segment header every
 * publish tick (--heartbeat, default 250 ms) and stores the threshold
 * readers apply: 8 ticks, at least 2000 ms (so 2000 ms by default). A
 * heartbeat older than that, or the "stopped" mark discd sets at once on a
 * clean shutdown (SIGTERM), makes the writer dead: DISC_ST_WRITER_ALIVE is
 * clear, DISC_ST_DEGRADED set, degraded_reason DISC_DEG_WRITER_DEAD (or
 * DISC_DEG_WRITER_STOPPED). Segments from writers that store no threshold
 * use DISC_WRITER_DEAD_MS.
 */
#define DISC_WRITER_DEAD_MS 5000

/* Fill *st. 0 or -errno. */
int disc_status(disc_handle *h, struct disc_status *st);

/* ---- Staleness ------------------------------------------------------------------
 * Whether what the registry answers is current. The segment keeps answering
 * when its writer is gone (the last picture stays mapped), so a service
 * decides itself whether to keep using it or to fail:
 *
 *   n = disc_pick(h, &f, p, NULL, 0, buf, sizeof(buf), &inst, NULL);
 *   if (n == 0 && (disc_stale(h) & DISC_STALE_WRITER_DEAD))
 *       log("discovery data is stale; using the last known instance");
 *
 * disc_stale costs a read section's begin and end plus one clock_gettime
 * (vDSO): no syscall, no lock, tens of nanoseconds; it may be called after
 * every copy-out query or pick. Inside a zero-copy section use
 * disc_read_stale, which tells about the snapshot that section reads. */
#define DISC_STALE_WRITER_DEAD 0x1u /* writer dead or stopped: nothing will change any more */
#define DISC_STALE_DEGRADED    0x2u /* the writer is cut off from the region (ZooKeeper) */
#define DISC_STALE_FROM_CACHE  0x4u /* the snapshot came from the file cache, unconfirmed */

/* DISC_STALE_* bits for h's current segment (0: current), or -errno
 * (-EINVAL, -EBADMSG, -EAGAIN). */
int disc_stale(disc_handle *h);

/* DISC_STALE_* bits for the snapshot of an open read section; never fails
 * (0 for a closed section). */
uint32_t disc_read_stale(const struct disc_read *rd);

/*
 * Block until the registry changes. *seen holds the change_seq the caller
 * last saw (take it from disc_status or from a previous call); returns 0 as
 * soon as the current value differs (and stores it in *seen), -ETIMEDOUT
 * after timeout_ms (negative: wait forever). Uses a futex on the segment; a
 * writer restart also wakes waiters.
 */
int disc_wait_change(disc_handle *h, uint32_t *seen, int timeout_ms);

/* A short human-readable text for a negative return code of this library. */
const char *disc_strerror(int rc);

/* ---- Client side: filters, pickers, views ------------------------------------
 * See docs/CLIENT.md for a walk-through and examples/ for programs to copy.
 * Picks and filter iteration never allocate; the copy-out calls sort their
 * results with qsort(3) (which may take temporary memory from libc), and
 * disc_picker_create allocates the picker. Every call is thread-safe (a
 * picker serialises its own state, see below). */

/* ---- Filters ----
 * A filter is a plain struct the caller fills in; every field that is set
 * must match (AND). A zeroed struct (or a NULL filter) matches every
 * instance. The strings are borrowed: they must stay valid while the
 * filter is in use. Example:
 *
 *   struct disc_filter f;
 *   disc_filter_init(&f);
 *   f.service = "orders";
 *   f.min_version = "2.1";
 *   f.az = "eu-west-1a";
 *   f.health_mask = DISC_HEALTH_NOT_CRITICAL;
 *   disc_filter_add_tag(&f, "env", "prod");
 */

#define DISC_FILTER_TAGS_MAX   8
#define DISC_FILTER_OWNERS_MAX 8

/* One tag condition: the instance has a tag `key` whose value is `value`
 * (value NULL: any value). */
struct disc_tag_match {
    const char *key;
    const char *value;
};

/* Health masks for disc_filter.health_mask: bit (1u << enum disc_health)
 * for each accepted state. 0 accepts every state in filters; pickers read
 * 0 as DISC_HEALTH_NOT_CRITICAL (see Pickers). DISC_HEALTH_NOT_CRITICAL is
 * "in rotation": unknown, passing or warning — neither critical nor in
 * maintenance. */
#define DISC_HEALTH_BIT(state) (1u << (state))
#define DISC_HEALTH_NOT_CRITICAL                                                                   \
    (DISC_HEALTH_BIT(DISC_HEALTH_UNKNOWN) | DISC_HEALTH_BIT(DISC_HEALTH_PASSING) |                 \
     DISC_HEALTH_BIT(DISC_HEALTH_WARNING))
#define DISC_HEALTH_AT_LEAST_WARNING                                                               \
    (DISC_HEALTH_BIT(DISC_HEALTH_PASSING) | DISC_HEALTH_BIT(DISC_HEALTH_WARNING))
#define DISC_HEALTH_PASSING_ONLY DISC_HEALTH_BIT(DISC_HEALTH_PASSING)
#define DISC_HEALTH_MASK_ALL                                                                       \
    (DISC_HEALTH_NOT_CRITICAL | DISC_HEALTH_BIT(DISC_HEALTH_CRITICAL) |                            \
     DISC_HEALTH_BIT(DISC_HEALTH_MAINTENANCE))

struct disc_filter {
    const char *service;        /* exact service name (one hash lookup) */
    const char *service_prefix; /* service name starts with this (scans all services) */
    const char *version;        /* exact version string */
    const char *min_version;    /* disc_version_cmp(instance version, this) >= 0 */
    const char *az;             /* exact availability zone ("" matches an empty az) */
    const char *host;           /* exact host id */
    const char *endpoint;       /* the instance serves an endpoint with this name */
    uint32_t health_mask;       /* DISC_HEALTH_* mask; 0 = any health */
    uint32_t n_tags;            /* conditions used in tags[] */
    struct disc_tag_match tags[DISC_FILTER_TAGS_MAX]; /* all must hold */
    uint32_t n_owners;                                /* 0: any owner */
    uint32_t owners[DISC_FILTER_OWNERS_MAX];          /* owner_uid must be one of these */
};

/* Reset *f to "match everything". */
void disc_filter_init(struct disc_filter *f);

/* Add a tag condition (value NULL: the key with any value). 0, -EINVAL
 * (NULL or empty key), -ENAMETOOLONG, -E2BIG (already DISC_FILTER_TAGS_MAX). */
int disc_filter_add_tag(struct disc_filter *f, const char *key, const char *value);

/* Require the instance's owner_uid to be `uid` or one of the uids added
 * before (a set: "registered by root or by uid X" is two calls). 0, -EINVAL
 * (NULL filter, or uid DISC_OWNER_UNKNOWN), -E2BIG (already
 * DISC_FILTER_OWNERS_MAX). */
int disc_filter_add_owner(struct disc_filter *f, uint32_t uid);

/* Validate a filter: 0 (NULL is valid), -EINVAL (n_tags or n_owners too large, a NULL
 * tag key, unknown health bits), -ENAMETOOLONG (a string beyond its
 * DISC_*_MAX). Every call below that takes a filter runs this first. */
int disc_filter_check(const struct disc_filter *f);

/* 1 if the instance matches the filter (NULL: matches), 0 if not, -EINVAL
 * for a NULL instance or a filter with n_tags > DISC_FILTER_TAGS_MAX.
 * Works on zero-copy and copy-out views alike; no validation of the
 * filter's strings beyond that (see disc_filter_check). */
int disc_instance_matches(const struct disc_filter *f, const struct disc_instance *inst);

/*
 * Compare two versions: <0, 0 or >0 like strcmp. Semantic-version-ish:
 * the part before the first '-' or '+' is a list of '.'-separated
 * components compared one by one, numerically when both are digits (any
 * length, no overflow), numbers before non-numbers, otherwise bytewise;
 * a missing component counts as 0 ("1.2" == "1.2.0"). If those are equal,
 * a version with a pre-release ("-rc.1") is lower than one without, and two
 * pre-releases compare component by component (more components is
 * higher). Build metadata after '+' is ignored. NULL compares as "".
 */
int disc_version_cmp(const char *a, const char *b);

/* ---- Filtered queries ---- */

/* Iterator over the instances matching a filter inside a read section.
 * With filter->service set it visits that one service; otherwise it walks
 * every service once (hash order), skipping those that fail service_prefix
 * before looking at their instances. Instances of one service come
 * together, sorted by id. */
struct disc_filter_iter {
    /* private */
    const struct disc_filter *f_;
    uint64_t cursor_;
    struct disc_service_view sv_;
    uint32_t next_;
    uint8_t single_, have_sv_, done_, pad_;
};

/* Start iterating. 0, -ENOENT (filter->service names no service),
 * -EINVAL / -ENAMETOOLONG (bad filter), -EBADMSG. The filter must outlive
 * the iterator. */
int disc_read_filter_begin(struct disc_read *rd, const struct disc_filter *f,
                           struct disc_filter_iter *it);

/* Next matching instance: 1 and *out filled (a zero-copy view), 0 at the
 * end, or -EBADMSG. */
int disc_read_filter_next(struct disc_read *rd, struct disc_filter_iter *it,
                          struct disc_instance *out);

/*
 * Copy-out: every instance matching f, laid out in buf as for disc_lookup
 * (array of views, then record copies), sorted by service name then id.
 * Returns the count (0: nothing matched), -ENOENT if filter->service names
 * no service, -ENOBUFS with *needed, -EINVAL / -ENAMETOOLONG for a bad filter.
 */
int disc_lookup_filtered(disc_handle *h, const struct disc_filter *f, void *buf, size_t buflen,
                         struct disc_instance **list, size_t *needed);

/* ---- Pickers ----
 * A picker chooses one instance among those matching a filter. Policies:
 *
 *   DISC_PICK_RANDOM       weighted random: P(i) = weight_i / sum(weights).
 *                          The random stream is the picker's own (seeded by
 *                          the caller, advanced with one atomic add per pick:
 *                          lock-free, no global state).
 *   DISC_PICK_ROUND_ROBIN  smooth weighted round robin (as in nginx): over
 *                          every sum(weights) consecutive picks instance i is
 *                          chosen exactly weight_i times, spread out evenly.
 *                          The per-instance state lives in the picker and is
 *                          guarded by a mutex inside it (held for one pass
 *                          over the candidates). The state is keyed by the
 *                          candidate set: when the set or a weight changes,
 *                          the cycle restarts. Use one picker per target
 *                          (service + filter).
 *   DISC_PICK_HASH         consistent hashing on a caller key, weighted
 *                          rendezvous (highest-random-weight) hashing: each
 *                          candidate scores -ln(u)/weight with u = hash(key,
 *                          instance id) in (0,1); the lowest score wins. When
 *                          an instance leaves, exactly the keys it owned move
 *                          (to the others in proportion to weight); when one
 *                          joins, only keys it now wins move. Stateless; the
 *                          hash does not depend on the segment, so every
 *                          process and every host picks the same instance for
 *                          the same key and candidate set.
 *
 * Instances with weight 0 are never picked (the writer stores 10 for an
 * unset weight). Nor are critical instances or instances in maintenance,
 * unless the filter's health_mask names those states: a filter with
 * health_mask 0 (or a NULL filter) picks as DISC_HEALTH_NOT_CRITICAL. A pick makes one or two
 * passes over the candidates, allocates nothing, and returns -ENOENT when no instance matches. A
 * picker is process-local memory: after fork() the child creates its own. */

enum disc_pick_policy {
    DISC_PICK_RANDOM = 1,
    DISC_PICK_ROUND_ROBIN = 2,
    DISC_PICK_HASH = 3,
};

typedef struct disc_picker disc_picker;

/* Default and maximum number of candidates a round-robin picker tracks. */
#define DISC_PICK_RR_DEFAULT 1024u
#define DISC_PICK_RR_MAX     (1u << 20)

/* A buffer of this many bytes always holds one copied-out instance
 * (disc_pick, disc_lookup_id). */
#define DISC_INSTANCE_BUF_MAX (65536u + 256u)

/*
 * Create a picker. seed: start of the random stream (DISC_PICK_RANDOM; use
 * different seeds in different processes). max_candidates: for
 * DISC_PICK_ROUND_ROBIN the most candidates one pick may see (0 =
 * DISC_PICK_RR_DEFAULT, at most DISC_PICK_RR_MAX); ignored otherwise.
 * 0, -EINVAL, -ENOMEM.
 */
int disc_picker_create(enum disc_pick_policy policy, uint64_t seed, uint32_t max_candidates,
                       disc_picker **out);

/* Free a picker. No pick may be running on it. NULL is a no-op. */
void disc_picker_destroy(disc_picker *p);

/* The picker's policy. */
enum disc_pick_policy disc_picker_policy(const disc_picker *p);

/*
 * Zero-copy pick inside a read section: *out is a view valid until
 * disc_read_end. key/key_len: the consistent-hash key (DISC_PICK_HASH needs
 * a non-NULL key; the others ignore it). 0, -ENOENT (nothing matched, or
 * filter->service names no service), -E2BIG (more candidates than a
 * round-robin picker's max_candidates), -EINVAL, -ENAMETOOLONG, -EBADMSG.
 * A round-robin pick advances the picker even if disc_read_end then
 * reports -EAGAIN.
 */
int disc_read_pick(struct disc_read *rd, const struct disc_filter *f, disc_picker *p,
                   const void *key, size_t key_len, struct disc_instance *out);

/*
 * Copy-out pick: runs its own read section and copies the chosen instance
 * into buf (a struct disc_instance, then its record; DISC_INSTANCE_BUF_MAX
 * bytes always suffice). Returns 0 and sets *inst, or the errors of
 * disc_read_pick, -ENOBUFS with *needed, -EAGAIN.
 */
int disc_pick(disc_handle *h, const struct disc_filter *f, disc_picker *p, const void *key,
              size_t key_len, void *buf, size_t buflen, struct disc_instance **inst,
              size_t *needed);

/* ---- Views: the `services` and `endpoints` queries ---- */

/* One version of a service and how many instances run it. */
struct disc_version_count {
    const char *version;
    uint32_t n_instances;
    uint32_t reserved_;
};

struct disc_service_summary {
    const char *name;
    const struct disc_version_count *versions; /* sorted by disc_version_cmp */
    uint32_t n_versions;
    uint32_t n_instances;
};

/*
 * Every service with at least one instance matching f (NULL: all), sorted by
 * name, each with its distinct versions and instance counts (of matching
 * instances). Everything is laid out in buf. Returns the number of
 * services, -ENOBUFS with *needed (an upper bound), -EINVAL,
 * -ENAMETOOLONG, -EAGAIN. Cost: instances x distinct versions per service.
 */
int disc_services(disc_handle *h, const struct disc_filter *f, void *buf, size_t buflen,
                  struct disc_service_summary **list, size_t *needed);

/* One endpoint of one version of a service, aggregated over its instances. */
struct disc_endpoint_info {
    const char *name;    /* fully qualified: "service.endpoint" */
    const char *service; /* the service part */
    const char *version;
    const char *request_type;  /* as registered by the first instance seen */
    const char *response_type; /* idem */
    uint32_t n_instances;      /* matching instances of that version serving it */
    uint32_t n_reporting;      /* of those, instances reporting a mean latency */
    uint32_t mean_us;          /* mean of the reported means; 0 if none */
    uint32_t p95_us;           /* largest reported upper-95 latency; 0 if none */
    uint64_t reserved_;
};

/*
 * Every (service, version, endpoint) served by instances matching f (NULL:
 * all), sorted by fully qualified name then version. Laid out in buf;
 * returns the count, -ENOBUFS with *needed (an upper bound), -EINVAL,
 * -ENAMETOOLONG, -EAGAIN.
 */
int disc_endpoints(disc_handle *h, const struct disc_filter *f, void *buf, size_t buflen,
                   struct disc_endpoint_info **list, size_t *needed);

#ifdef __cplusplus
}
#endif
#endif /* DISCSHM_H */
