/* SPDX-License-Identifier: MIT */
/*
 * state.h — discd's persistent state: the local registrations made through
 * the socket, and the ZooKeeper session, kept in one file per registry
 * (STATE_DIR/NAME.state) so that a restarted or crashed discd restores them
 * with their ids and owners (docs/DESIGN.md, "Persistence").
 *
 * Format: an append-only journal of JSON lines, one record per line:
 *   {"put":{"id":..,"uid":N,"registered_at_ms":N,"instance":{..},"check":{..}}}
 *   {"del":"<id>"}
 *   {"zk":{"session":"<hex id>","passwd":"<32 hex>"}}
 * Each change is queued in memory as it happens; state_sync appends the queue
 * with one write(2) and makes it durable (fdatasync). The control thread
 * calls it before it sends the replies of what it has read (so a pipelined
 * burst costs one write and one fdatasync), hence an acknowledged
 * registration or deregistration survives a crash, even of the machine. When the journal holds many
 * more records than live instances it is compacted: the live set is written to a temporary file,
 * fsync'ed and renamed over the journal, then the directory is fsync'ed, so a crash leaves the old
 * or the new file, never a mix. A torn last line (a crash in the middle of a write) is ignored on
 * load.
 *
 * Trust: the directory is created 0700 if missing; the directory and the
 * file must be owned by discd's uid and not writable by group or others,
 * else state_open refuses them (another uid could otherwise inject
 * registrations under any owner).
 *
 * Thread-safe: one mutex. Functions return 0 or a negative errno value.
 */
#ifndef DISC_STATE_H
#define DISC_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "instance.h"
#include "registry.h"

#define STATE_ERR_MAX 512

struct state;

/* What a state file held at start. */
struct state_loaded {
    struct instance **insts; /* local instances (origin LOCAL, owner_uid set), one ref each */
    size_t n;
    bool have_zk;       /* a ZooKeeper session was saved */
    int64_t zk_session; /* its id */
    char zk_passwd[16]; /* its password */
    unsigned skipped;   /* records that could not be used (logged) */
};

/*
 * Open (creating if missing) STATE_DIR/NAME.state and read it: *loaded gets
 * the instances to restore (validated again with the registration rules;
 * def supplies nothing a record lacks except for defaults). Refuses
 * (-EPERM, message in err) a directory or file owned by another uid or
 * writable by group/others, and a path that is not a directory / regular
 * file. Other failures: -errno with err.
 */
int state_open(const char *dir, const char *name, const struct instance_defaults *def,
               struct state **out, struct state_loaded *loaded, char *err);

/* Free what state_open put into *loaded (the instance references). */
void state_loaded_free(struct state_loaded *loaded);

/* Journal a local instance (added or replaced). Not yet durable. */
int state_put(struct state *st, const struct instance *inst);

/*
 * The put record of inst as the journal holds it: one JSON line ending in
 * "\n", the bytes json_dumps(JSON_COMPACT) gives for
 * {"put":{"id","uid","registered_at_ms","instance":{..},"check":{..}}}
 * with instance_to_json's members and order, written without a jansson
 * tree. *len gets its length. Caller frees; NULL when out of memory.
 */
char *state_put_line(const struct instance *inst, size_t *len);

/* Journal the removal of a local instance. Not yet durable. */
int state_del(struct state *st, const char *id);

/* Journal the ZooKeeper session credentials (if changed) and sync. */
int state_set_zk_session(struct state *st, int64_t id, const char passwd[16]);

/* Make every journaled record durable (fdatasync) if any is pending;
 * compacts when the journal has grown to several times the live set.
 * Cheap when nothing is pending. */
int state_sync(struct state *st);

/* Rewrite the file with only the live records now (atomic). */
int state_compact(struct state *st);

/* Journal every local addition and removal of reg from now on (a registry
 * listener), except static instances (instance.from_file). */
int state_attach(struct state *st, struct registry *reg);

/* Path of the state file (for logs). */
const char *state_path(const struct state *st);

/* Number of live instances in the state. */
size_t state_count(struct state *st);

/* Sync and close. NULL is a no-op. */
void state_close(struct state *st);

#endif /* DISC_STATE_H */
