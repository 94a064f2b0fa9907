/* SPDX-License-Identifier: MIT */
/*
 * zk_sync.h — discd's ZooKeeper layer: one session per host, the host's local
 * instances written as ephemeral nodes, every other host's instances read
 * back through one-shot child watches. Self-contained: it knows nothing of
 * the registry; the daemon plugs it in through the callbacks below.
 *
 * Tree (docs/ZOOKEEPER.md has the load figures):
 *   <root>                       persistent
 *   <root>/hosts                 persistent
 *   <root>/hosts/<host-id>       container (the server deletes it once empty)
 *   <root>/hosts/<host-id>/<id>-<seq>   ephemeral, data = the instance JSON
 *   <root>/snap/<host-id>/<i>    ephemeral chunks of the host's aggregate snapshot
 *                                (zk_snapshot.h), a read accelerator only
 * <id> is a lowercase canonical UUID (36 chars). Instance documents are
 * immutable: publishing a changed document for the same id writes a new node
 * <id>-<seq'> (seq' > seq, see zk_sync_publish_local) and then deletes the
 * old one, so readers never see the id disappear during an update.
 *
 * Threads: zk_sync_start creates one worker thread that owns all ZooKeeper
 * I/O and all sync state. Every callback runs on that thread, one at a time,
 * never concurrently with another callback. The ZooKeeper client library adds
 * its own two threads (I/O and completion); they only queue events for the
 * worker. zk_sync_publish_local / zk_sync_withdraw_local / zk_sync_get_status
 * may be called from any thread at any time and never block on ZooKeeper.
 *
 * Functions return 0 or a negative errno value.
 */
#ifndef DISC_ZK_SYNC_H
#define DISC_ZK_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zk_sync;
struct json_t; /* jansson's json_t */

/* Log levels, same order as discd's log.h (error = 0 ... debug = 3). */
enum zk_sync_log_level {
    ZK_SYNC_LOG_ERROR = 0,
    ZK_SYNC_LOG_WARN = 1,
    ZK_SYNC_LOG_INFO = 2,
    ZK_SYNC_LOG_DEBUG = 3,
};

enum zk_sync_state {
    ZK_SYNC_CONNECTING = 0,   /* no session yet (start-up, or a new one being made) */
    ZK_SYNC_CONNECTED = 1,    /* session up */
    ZK_SYNC_DISCONNECTED = 2, /* connection lost, session may still be alive */
    ZK_SYNC_EXPIRED = 3,      /* session expired; a new one follows (jittered) */
};

/* Monotonic counters since zk_sync_start, plus a few current sizes. */
struct zk_sync_counters {
    uint64_t sessions;           /* sessions established (1 + expiries recovered) */
    uint64_t expirations;        /* sessions lost to expiry */
    uint64_t sessions_abandoned; /* given up after 2 x timeout without a server */
    uint64_t reconnects;         /* connected transitions after the first */
    uint64_t watches_fired;      /* child/deleted watch events received */
    uint64_t lists;              /* zoo_get_children calls */
    uint64_t reads;              /* zoo_get calls (instance documents fetched) */
    uint64_t creates;            /* own ephemeral nodes created */
    uint64_t deletes;            /* own nodes deleted (withdrawn, replaced, foreign) */
    uint64_t skipped_bad_name;   /* children that are not <uuid>[-<seq>] / bad host ids */
    uint64_t skipped_bad_data;   /* not JSON, not an object, wrong/missing id or service */
    uint64_t skipped_too_large;  /* documents larger than max_doc_bytes */
    uint64_t skipped_unreadable; /* nodes or host subtrees we may not read (ZNOAUTH) */
    uint64_t conflicts;          /* an id claimed by a second host (see "Conflicts") */
    uint64_t tree_created;       /* <root>/hosts found missing and created again */
    uint64_t repairs;            /* own nodes rewritten by another client, re-created */
    uint64_t audits;             /* audit passes over the remote nodes' stats */
    uint64_t audit_changed;      /* nodes the audit found changed in place (re-read) */
    uint64_t sync_errors;        /* rounds that ended with an error (retried) */
    uint64_t held_removals;      /* removals held by the cooling-off period */
    uint64_t held_reported;      /* held removals reported after the period */
    uint64_t held_restored;      /* held ids that came back during the period */
    uint64_t upserts;            /* on_remote_upsert calls */
    uint64_t removes;            /* on_remote_remove calls */
    uint64_t sync_rounds;        /* listing rounds that completed (watch-driven or full) */
    uint64_t full_syncs;         /* of those, full resyncs of the whole tree */
    uint64_t docs_parsed;        /* remote documents parsed (once per read: the parsed
                                  * document is what on_remote_upsert_doc gets) */
    uint64_t worker_wakeups;     /* times the worker thread blocked and was woken: for
                                  * events or local changes (all queued ones are drained
                                  * per wake-up), for a batch of async replies (one per
                                  * batch of up to 256), or a synchronous client call */
    uint64_t batches;            /* batches of upserts/removes delivered (on_batch_end) */
    uint64_t early_creates;      /* creates issued at once by zk_sync_publish_local (the
                                  * worker's reconcile then confirms them) */
    uint64_t fast_listings;      /* child events of known hosts listed, and their new
                                  * nodes read and parsed, from the client's completion
                                  * thread before the worker woke ("Fast path") */
    /* aggregate snapshots (docs/ZOOKEEPER.md, "Aggregate snapshots") */
    uint64_t snap_writes;      /* own snapshot generations written */
    uint64_t snap_chunk_reads; /* snapshot chunks read (other hosts') */
    uint64_t snap_used;        /* documents taken from snapshots instead of a read */
    uint64_t snap_skipped;     /* snapshots not used: missing chunk, bad checksum, mixed
                                * generations, unknown version, not owned by the host's
                                * session, rewritten in place (each logged) */
    uint64_t snap_bad_entries; /* snapshot entries not used: wrong CRC or bad document */
    uint64_t read_bytes;       /* node data bytes read (documents and snapshot chunks) */
    /* current sizes */
    uint64_t hosts;            /* host subtrees watched (own included) */
    uint64_t remote_instances; /* remote ids currently reported (held ones included) */
    uint64_t held_now;         /* removals currently held */
    uint64_t local_desired;    /* local instances the daemon asked for */
    uint64_t local_in_zk;      /* of those, seen in ZooKeeper by the last listing */
};

struct zk_sync_status {
    enum zk_sync_state state;
    int64_t since_ms;       /* CLOCK_REALTIME ms when `state` was entered */
    int64_t last_sync_ms;   /* CLOCK_REALTIME ms of the last complete listing of the
                             * tree (all hosts), 0 = never; stale while not connected */
    bool cooling;           /* inside the cooling-off period (removals held) */
    bool rebuilding;        /* the tree was lost and re-created: removals of hosts that
                             * have not re-announced are held (region_wait_ms) */
    bool local_applied;     /* every local publish/withdraw is reflected in ZooKeeper */
    bool synced;            /* connected and the last round completed without error */
    int64_t error_since_ms; /* CLOCK_REALTIME ms of the first failed round in a row, 0 = none */
    char last_error[160];   /* what the last failed round hit ("" = none) */
    struct zk_sync_counters counters;
    /* CLOCK_REALTIME ms the current session was established, 0 = none */
    int64_t session_since_ms;
};

/*
 * Callbacks. All are optional (NULL = ignored) and run on the worker thread
 * only, one at a time. They may call zk_sync_publish_local / withdraw /
 * get_status, but not zk_sync_stop. Strings are valid for the call only.
 */
struct zk_sync_callbacks {
    /* An instance of ANOTHER host appeared or changed. `json` is the node's
     * data (len bytes, NUL-terminated as a convenience), already checked to
     * be a JSON object whose "id" equals `id` and with a "service" string;
     * the daemon validates it fully. The host's own nodes are never reported
     * (the daemon already has them; see counters.local_in_zk). */
    void (*on_remote_upsert)(void *arg, const char *host_id, const char *id, const char *json,
                             size_t len);
    /* The same, with the document as zk_sync parsed it (jansson, JSON_REJECT_
     * DUPLICATES; borrowed: valid for the call only, do not modify), so the
     * daemon does not parse it again. When set, it is called instead of
     * on_remote_upsert. */
    void (*on_remote_upsert_doc)(void *arg, const char *host_id, const char *id,
                                 const struct json_t *doc, const char *json, size_t len);
    /* An instance of another host is gone (node deleted, host subtree gone,
     * or session of that host expired). Held during cooling-off. */
    void (*on_remote_remove)(void *arg, const char *host_id, const char *id);
    /* The connection state changed, a round failed or recovered, cooling-off
     * ended, or (at most once a second) a round completed: the status is
     * current every round. */
    void (*on_state)(void *arg, const struct zk_sync_status *status);
    /* Around a batch of on_remote_upsert(_doc) / on_remote_remove calls: all
     * the changes settled from one listing (or one audit, one release of
     * held removals). The daemon may make a batch visible at once (one
     * segment commit, one wake-up of its publisher). Never nested; no
     * blocking ZooKeeper wait happens inside a batch except the rare
     * fallback read of a conflict's next claimant. */
    void (*on_batch_begin)(void *arg);
    void (*on_batch_end)(void *arg);
    /* First and last thing the worker thread does (e.g. rcu_register_thread). */
    void (*on_thread_start)(void *arg);
    void (*on_thread_stop)(void *arg);
    /* One log line without a trailing newline. NULL: "zk_sync LEVEL msg" on stderr. */
    void (*log)(void *arg, enum zk_sync_log_level level, const char *msg);
};

/*
 * Extensions: other trees synced on the SAME session and worker thread as
 * the native tree (one session per host), e.g. the import of foreign
 * registries (daemon/zk/import.h) and the Curator export. Each is a table
 * of hooks, all optional, all called on the worker thread, never
 * concurrently with each other or with the callbacks above:
 *
 *   on_watch   a watch event (child, data, created, deleted) on `path`,
 *              offered to every extension in turn (two may share a base
 *              path, e.g. Curator import and export). An extension returns
 *              true when the path is one of its own (it armed the watch);
 *              the native tree then ignores it. It should only note the
 *              work and do it in `round`.
 *   on_session the connection state changed; new_session is true when a
 *              session was just established (the previous one's ephemeral
 *              nodes and watches are gone), false on a reconnect of the
 *              same session or when not connected.
 *   round      one sync round while connected, after the native listings
 *              and before the local reconcile; zh is the session's handle
 *              (ZooKeeper calls may be made on it, synchronously or async
 *              and awaited before returning). full: the jittered full
 *              resync after a (re)connect (re-list everything). cooling:
 *              inside the cooling-off period (hold removals). acl: the ACL
 *              zk_sync creates its own nodes with. Report a failure with
 *              zk_sync_round_error (the round is retried after 500 ms); an
 *              extension's bad nodes are its own business, not errors.
 *   pending    true when the extension has work now (events noted, local
 *              changes): the worker runs a round without waiting.
 *   deadline   the earliest CLOCK_MONOTONIC ms the extension needs a round
 *              at (0: none); the worker runs at least once a second anyway.
 *              pending and deadline are called with zk_sync's lock held:
 *              read flags (atomics), take no lock another thread holds
 *              while it calls into zk_sync.
 * From other threads an extension wakes the worker with zk_sync_wake.
 */
struct _zhandle;
struct ACL_vector;

struct zk_sync_round {
    struct _zhandle *zh;
    bool full;
    bool cooling;
    const struct ACL_vector *acl;
};

struct zk_sync_ext {
    void *arg;
    bool (*on_watch)(void *arg, int type, const char *path);
    void (*on_session)(void *arg, enum zk_sync_state state, bool new_session);
    void (*round)(void *arg, struct zk_sync *zs, const struct zk_sync_round *r);
    bool (*pending)(void *arg);
    int64_t (*deadline)(void *arg);
};

#define ZK_SYNC_EXT_MAX 4

/* A ZooKeeper session's credentials (the C client's clientid_t), to resume
 * the session from another process (a restarted daemon). */
struct zk_sync_session {
    int64_t id; /* 0: none */
    char passwd[16];
};

struct zk_sync_config {
    const char *connect;    /* ZooKeeper connect string "h1:p1,h2:p2[/chroot]" (required) */
    const char *root;       /* absolute path, e.g. "/discd" (required, no trailing '/') */
    const char *host_id;    /* this host's id: 1..255 chars of [A-Za-z0-9._:-] (required) */
    int session_timeout_ms; /* 0: 10000. The server may clamp it to its min/max. */
    int cooloff_ms;         /* removals held after each (re)connect; <0: 2000, 0: off */
    int jitter_ms;          /* max random delay of the resync after a reconnect and of a
                             * new session after expiry; <0: min(1000, timeout/4) */
    size_t max_doc_bytes;   /* 0: 65536. Larger documents are skipped (remote) or
                             * refused (local, -E2BIG). */
    enum zk_sync_log_level log_level;    /* most verbose level passed to log */
    enum zk_sync_log_level zk_log_level; /* the ZooKeeper C client's own level
                                          * (process-wide); its lines go to `log`,
                                          * rate-limited (zk_sync.c, client_log) */
    /* Digest credentials "user:password" (NULL: none, nodes world-writable).
     * With them the session authenticates and every node it creates is
     * writable only by this identity and readable by all (docs/ZOOKEEPER.md,
     * "ACLs"). Copied. */
    const char *auth;
    int audit_ms;       /* re-check every remote node's stat (mzxid, aversion) this
                         * often and re-read what changed in place; 0: 60000, <0: off */
    int region_wait_ms; /* after the tree was lost (ZooKeeper back empty, <root>/hosts
                         * deleted), hold removals of hosts that have not re-announced
                         * this long; 0: 2 x session timeout + jitter + cooloff, <0: off */
    /* Resume this session for the first connection instead of opening a new
     * one (NULL or id 0: new). If the server has expired it, zk_sync gets
     * ZOO_EXPIRED_SESSION_STATE and opens a new session as after any expiry.
     * Ephemeral nodes of a resumed session stay in place. */
    const struct zk_sync_session *resume;
    /* Extensions (see struct zk_sync_ext), at most ZK_SYNC_EXT_MAX; copied. */
    const struct zk_sync_ext *ext;
    size_t n_ext;
    /* Aggregate snapshots: 0 (default) write this host's snapshot under
     * <root>/snap/<host> and read other hosts' snapshots on initial sync;
     * < 0 neither (the layout of discd before snapshots, e.g. to stand in
     * for an old version in a mixed-version region). */
    int snapshots;
};

/*
 * Validate cfg, copy it and start the worker thread, which opens the session
 * in the background (start never waits for ZooKeeper). cb may be NULL.
 * -EINVAL for a bad config (message logged), -ENOMEM, or -errno from
 * pthread_create. On success *out is the handle.
 */
int zk_sync_start(const struct zk_sync_config *cfg, const struct zk_sync_callbacks *cb, void *arg,
                  struct zk_sync **out);

/*
 * Stop the worker, close the session (ZooKeeper deletes this host's
 * ephemeral nodes at once) and free everything. No callback runs after it
 * returns. NULL is a no-op. Must not be called from a callback.
 */
void zk_sync_stop(struct zk_sync *zs);

/*
 * Desire local instance `id` (lowercase canonical UUID) with document
 * json[0..len). Never fails for lack of ZooKeeper: the desired set is kept in
 * memory and applied whenever a session is up (again). Publishing the same
 * document again is a no-op; a different document for the same id replaces
 * it under a new node name <id>-<seq>, seq = max(previous + 1, CLOCK_REALTIME
 * ms), so a restarted daemon never reuses a name that readers have cached.
 * While the session is up and this host's subtree exists, the create of the
 * new node is issued at once from the calling thread (async, never waits:
 * "early create", counters.early_creates), saving the hand-over to the worker
 * on the propagation path; the worker's reconcile confirms it as usual.
 * -EINVAL if id is not a UUID or json is not an object with "id" == id and a
 * "service" string; -E2BIG above max_doc_bytes; -ENOMEM.
 */
int zk_sync_publish_local(struct zk_sync *zs, const char *id, const char *json, size_t len);

/*
 * Stop desiring local instance id: its node is deleted now or, if
 * disconnected, as soon as a session is up; it never comes back.
 * -ENOENT if id is not currently published, -EINVAL if not a UUID.
 */
int zk_sync_withdraw_local(struct zk_sync *zs, const char *id);

/*
 * The credentials of the current session (last one established) into *out,
 * e.g. to save them for a restarted daemon (zk_sync_config.resume). Any
 * thread. 0, or -ENOTCONN if no session was established yet.
 */
int zk_sync_get_session(struct zk_sync *zs, struct zk_sync_session *out);

/* Snapshot of state and counters; any thread. */
void zk_sync_get_status(struct zk_sync *zs, struct zk_sync_status *out);

/*
 * Wait up to timeout_ms until every publish/withdraw made before the call is
 * applied in ZooKeeper (status.local_applied). 0 or -ETIMEDOUT. For tests,
 * benchmarks and orderly shutdown; not from a callback.
 */
int zk_sync_wait_local_applied(struct zk_sync *zs, int timeout_ms);

/* Wake the worker (e.g. an extension has new work); any thread. */
void zk_sync_wake(struct zk_sync *zs);

/*
 * From an extension's round only: the round failed at `what` on `path` with
 * ZooKeeper error rc (zerror names it). The first error of a round becomes
 * status.last_error and the round is retried after 500 ms.
 */
void zk_sync_round_error(struct zk_sync *zs, const char *what, const char *path, int rc);

/* "connecting", "connected", "disconnected", "expired". */
const char *zk_sync_state_name(enum zk_sync_state state);

/* True if s is a lowercase canonical UUID (8-4-4-4-12 hex digits). */
bool zk_sync_is_uuid(const char *s);

/* True if s is a valid host id (see zk_sync_config.host_id). */
bool zk_sync_is_host_id(const char *s);

/*
 * Check an instance document as zk_sync does for remote nodes: at most max
 * bytes, a JSON object, "id" a string equal to expect_id (if not NULL), and
 * "service" a non-empty string. 0, -E2BIG or -EINVAL; *why (if not NULL) gets
 * a static reason string.
 */
int zk_sync_check_doc(const char *json, size_t len, const char *expect_id, size_t max,
                      const char **why);

/*
 * The same checks, keeping the parsed document: on success *out is a new
 * reference (json_decref it) to the JSON object. What zk_sync does with every
 * remote node it reads (one parse per read); the fuzz harness
 * fuzz_instance_doc goes through it. 0, -E2BIG or -EINVAL (*out NULL).
 */
int zk_sync_parse_doc(const char *json, size_t len, const char *expect_id, size_t max,
                      struct json_t **out, const char **why);

#endif /* DISC_ZK_SYNC_H */
