/* SPDX-License-Identifier: MIT */
/*
 * discclient.h — libdiscclient, the registration side of discshm for C
 * services.
 *
 * A service connects to the host's discd over its control socket, registers
 * one or more instances of itself and keeps the connection's session
 * answered; when the process exits (even by SIGKILL) the kernel closes the
 * connection and discd removes the session instances at once. Reading the
 * registry is libdiscshm's job (discshm.h); this library only writes.
 *
 *   disc_client *cl;
 *   int rc = disc_client_connect(NULL, 0, &cl);      // default socket, thread
 *   struct disc_instance_desc d = {.service = "orders", .version = "2.1.0",
 *                                  .address = "10.0.0.7:8080"};
 *   char id[DISC_ID_LEN + 1];
 *   rc = disc_client_register(cl, &d, NULL, id);     // NULL: session check
 *   ... serve ...
 *   disc_client_close(cl);                           // session instances go away
 *
 * Keeping the session answered. discd pings a connection that owns session
 * instances ({"event":"ping"} lines) and removes those instances after
 * `misses` unanswered pings. Two ways to answer:
 *   - Thread mode (default, flags 0): the library runs one background thread
 *     per client that answers pings. Nothing else to do.
 *   - Event-loop mode (DISC_CLIENT_MANUAL): no thread. Add disc_client_fd()
 *     to your poll/epoll set for reading and call disc_client_process()
 *     whenever it is readable (at least once per check interval).
 * Requests (register, deregister, ...) are synchronous in both modes and
 * answer any ping that arrives while they wait for their response.
 *
 * Surviving a discd restart. discd keeps its registrations in a state file
 * and restores them at start with the same ids; a restored session
 * instance waits discd's --session-grace (15 s by default) for its client.
 *   - Thread mode: when the connection is lost, the background thread
 *     reconnects to the same socket with backoff (50 ms, doubling up to
 *     2 s, until it succeeds or the client is closed) and re-attaches every
 *     session instance it registered by id (protocol op "attach"): same id,
 *     no duplicate. Requests made while it is reconnecting fail with
 *     -ENOTCONN; retry them.
 *   - Event-loop mode: when disc_client_process returns -ENOTCONN, call
 *     disc_client_reconnect (with your own backoff) until it succeeds, then
 *     watch the new disc_client_fd.
 * If discd no longer has an instance (it ran without its state file, or the
 * client came back after the grace period), the client registers it again
 * with the same description; it then has a new id, which
 * disc_client_instance_id reports. disc_client_deregister and
 * disc_client_pass accept the original id either way.
 *
 * Conventions: every function returning int returns 0 (or a documented
 * non-negative value) on success and a negative errno value on failure. A
 * client is thread-safe: any thread may call any function on it, requests
 * are serialised. A client does not survive fork(): the child must not use
 * (or close) the parent's client; it connects its own. The parent keeps
 * its session.
 *
 * Errors
 *   -EINVAL        bad argument (checked locally), or the daemon answered
 *                  bad_request / bad_json (see disc_client_error)
 *   -ENOENT        no such instance (daemon "not_found"), or no socket at path
 *   -EPERM         the instance belongs to another uid (daemon "forbidden")
 *   -ENOSPC        a daemon limit was reached (daemon "limit")
 *   -E2BIG         the request was too large (daemon "too_large")
 *   -EOPNOTSUPP    the daemon does not know the operation ("unknown_op")
 *   -EIO           the daemon failed internally ("internal") or answered
 *                  something that is not a protocol response
 *   -ETIMEDOUT     no response within the client's timeout
 *   -ENOTCONN      the connection to discd was lost (thread mode
 *                  reconnects by itself; event-loop mode calls
 *                  disc_client_reconnect)
 *   -ECONNREFUSED  nothing listens on the socket (discd not running)
 *   -ENAMETOOLONG  the socket path is too long for a unix socket
 *   -ENOMEM        out of memory
 */
#ifndef DISCCLIENT_H
#define DISCCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "discshm.h" /* DISC_ID_LEN and the field limits */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct disc_client disc_client;

/* ---- What to register ---------------------------------------------------- */

/* One tag (both strings required). */
struct disc_tag {
    const char *key;   /* <= DISC_TAG_KEY_MAX bytes */
    const char *value; /* <= DISC_TAG_VALUE_MAX bytes */
};

/* One endpoint of the service. Only name is required. */
struct disc_endpoint_desc {
    const char *name;          /* <= DISC_ENDPOINT_NAME_MAX */
    const char *request_type;  /* NULL: none */
    const char *response_type; /* NULL: none */
    uint32_t mean_us;          /* 0: unknown */
    uint32_t p95_us;           /* 0: unknown */
};

/*
 * An instance. NULL / 0 fields take the daemon's defaults. The strings are
 * only read during disc_client_register. The daemon validates everything
 * and refuses the whole registration if one field is bad (see
 * docs/PROTOCOL.md for the exact rules); disc_client_error then names the
 * field.
 */
struct disc_instance_desc {
    const char *service; /* required: 1..255 chars of [A-Za-z0-9._:-] */
    const char *version; /* NULL: "" */
    const char *host;    /* NULL: the daemon's host id */
    const char *az;      /* NULL: the daemon's availability zone */
    const char *address; /* required: "host:port" (tcp) or an absolute path (unix) */
    const char *network; /* NULL: "tcp"; or "unix" */
    uint32_t weight;     /* 0: the default (10); else 1..10000 */
    const struct disc_tag *tags;
    size_t n_tags; /* <= DISC_TAGS_MAX */
    const struct disc_endpoint_desc *endpoints;
    size_t n_endpoints; /* <= DISC_ENDPOINTS_MAX */
};

/* How discd decides that the instance is gone. */
enum disc_check_type {
    DISC_CHECK_SESSION = 0, /* this connection answers pings (the default) */
    DISC_CHECK_TCP = 1,     /* discd connects to target (default: the address) */
    DISC_CHECK_HTTP = 2,    /* discd GETs http://target<path>, wants 2xx */
    DISC_CHECK_TTL = 3,     /* the service calls disc_client_pass every ttl_ms */
    DISC_CHECK_NONE = 4,    /* no check: stays until deregistered */
};

/* A check. Zero fields take the daemon's defaults. */
struct disc_check_desc {
    enum disc_check_type type;
    uint32_t interval_ms; /* 0: daemon default (1000) */
    uint32_t timeout_ms;  /* 0: daemon default (500); must be < interval */
    uint32_t misses;      /* 0: daemon default (3) */
    uint32_t ttl_ms;      /* DISC_CHECK_TTL: required */
    const char *path;     /* http: NULL = "/" */
    const char *target;   /* tcp/http: NULL = the instance address */
    /* tcp/http/ttl: 0 = removed after `misses` failures (default); else
     * kept as critical (out of rotation) and removed only after this long */
    uint32_t deregister_after_ms;
};

/* ---- Connections ---------------------------------------------------------- */

/* Flags for disc_client_connect. */
#define DISC_CLIENT_MANUAL 0x1u /* no background thread: use disc_client_fd/_process */

/* Request timeout used until disc_client_set_timeout changes it. */
#define DISC_CLIENT_DEFAULT_TIMEOUT_MS 5000

/*
 * The default control socket of registry `name` (NULL: $DISCSHM_NAME, else
 * "discshm"): $XDG_RUNTIME_DIR/discd/<name>.sock when that socket exists (a
 * user's own discd), else /run/discd/<name>.sock (the system's discd, for
 * every user). Never a path under /tmp, where any user could create the
 * directory first and receive the registrations. Writes it into buf (len
 * bytes). 0, -EINVAL, -ENAMETOOLONG (does not fit buf or a unix socket
 * address).
 */
int disc_client_default_socket(const char *name, char *buf, size_t len);

/*
 * Connect to discd's control socket at socket_path (NULL: the default,
 * disc_client_default_socket(NULL)). Unless flags has
 * DISC_CLIENT_MANUAL, starts the background thread that answers pings.
 * Returns 0 and sets *out, or -ENOENT / -ECONNREFUSED (no daemon), -EACCES,
 * -ENAMETOOLONG, -EINVAL, -ENOMEM.
 */
int disc_client_connect(const char *socket_path, unsigned flags, disc_client **out);

/*
 * Close the connection and free the client. discd removes every session
 * instance this connection registered at once; instances with another
 * check (tcp/http/ttl/none) stay until deregistered or failing. Call
 * disc_client_deregister first to remove those. No other call on cl may be
 * running, or be made afterwards. NULL is a no-op.
 */
void disc_client_close(disc_client *cl);

/* Change the timeout for each later request (ms, > 0). 0 or -EINVAL. */
int disc_client_set_timeout(disc_client *cl, int timeout_ms);

/* ---- Requests ---------------------------------------------------------------- */

/*
 * Register an instance. check NULL means a session check with the daemon's
 * defaults. On success writes the instance id (a textual UUID) into
 * id_out, which must hold DISC_ID_LEN + 1 bytes (id_out may be NULL if the
 * caller does not need it). A session instance is owned by this client's
 * connection: it disappears when the client is closed or the process dies.
 */
int disc_client_register(disc_client *cl, const struct disc_instance_desc *inst,
                         const struct disc_check_desc *check, char *id_out);

/* Remove instance id (registered by this uid, or any as root). */
int disc_client_deregister(disc_client *cl, const char *id);

/*
 * Read-your-writes: discd answers register and deregister only once the
 * change is published in the shared-memory segment, and its reply carries
 * the segment generation that contains it. This returns that generation
 * for the last successful register/deregister on cl (0 if none yet, or if
 * discd said the change is kept but not visible yet because the segment is
 * full). A reader sees the change once disc_status(h).generation is at
 * least this value: the reply already waited for that, so a lookup made
 * after the call returns sees it. Processes that read through an already
 * open handle can wait with disc_wait_change until the generation is
 * reached (discctl register does this unless --no-wait).
 */
uint64_t disc_client_generation(disc_client *cl);

/* Report that a DISC_CHECK_TTL instance is alive (call every < ttl_ms). */
int disc_client_pass(disc_client *cl, const char *id);

/*
 * Send one raw protocol request (a JSON object without the trailing
 * newline, see docs/PROTOCOL.md) and wait for its response. On success
 * (the daemon answered at all, "ok" true or false) returns 0 and sets
 * *response to a malloc'd NUL-terminated JSON line the caller frees.
 * Meant for tools (status, dump, ...).
 */
int disc_client_request(disc_client *cl, const char *request, char **response);

/*
 * Copy the daemon's message for the last failed request on this client
 * ("<code>: <message> (field <path>)") into buf (len bytes, truncated,
 * always NUL-terminated when len > 0). Returns the full length, 0 if the
 * last request did not fail on the daemon's side.
 */
size_t disc_client_error(disc_client *cl, char *buf, size_t len);

/* ---- Event-loop mode ----------------------------------------------------------- */

/* The connection's file descriptor, to poll for reading (POLLIN/EPOLLIN).
 * Do not read, write or close it yourself. -EINVAL for a NULL client. */
int disc_client_fd(disc_client *cl);

/*
 * Reconnect to the same socket now and re-attach this client's session
 * instances (see "Surviving a discd restart" above); the descriptor
 * (disc_client_fd) changes. Returns how many instances had to be registered
 * again under a new id (>= 0), or -ECONNREFUSED / -ENOENT while discd is
 * down, -ENOTCONN if the new connection broke as well; call it again later.
 * Event-loop mode; thread mode does this by itself.
 */
int disc_client_reconnect(disc_client *cl);

/*
 * The current id of session instance id (as returned by
 * disc_client_register) into id_out (DISC_ID_LEN + 1 bytes): the same id
 * unless it was registered again after discd lost it. 0, or -ENOENT if id
 * is not a session instance of this client.
 */
int disc_client_instance_id(disc_client *cl, const char *id, char *id_out);

/*
 * Read what the daemon sent and answer its pings. Never blocks. Call when
 * disc_client_fd is readable. Returns the number of pings answered (>= 0)
 * or -ENOTCONN when the daemon closed the connection (call
 * disc_client_reconnect). Also usable in thread mode (it is then rarely
 * needed).
 */
int disc_client_process(disc_client *cl);

/* 1 while the connection to discd is up, 0 after it was lost. */
int disc_client_connected(disc_client *cl);

/* A short human-readable text for a negative return code of this library. */
const char *disc_client_strerror(int rc);

#ifdef __cplusplus
}
#endif
#endif /* DISCCLIENT_H */
