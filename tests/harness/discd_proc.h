/* SPDX-License-Identifier: MIT */
/*
 * discd_proc.h — test harness: run a real discd and talk to its socket.
 *
 *   struct discd_proc d;
 *   cr_assert_eq(discd_proc_init(&d, "mytest"), 0);      // temp dir + unique name
 *   cr_assert_eq(discd_proc_start(&d, NULL, 5000), 0);   // spawn, wait for `status`
 *   char *r = discd_proc_request(&d, "{\"op\":\"status\"}", 2000);
 *   ...
 *   free(r);
 *   discd_proc_cleanup(&d);   // teardown: kill if running, remove objects, rm dir
 *
 * The binary is $DISC_BUILD_DIR/daemon/discd unless d.binary names another
 * (set it after discd_proc_init). The daemon runs in the
 * foreground with --name <unique> --socket <dir>/discd.sock
 * --state-dir <dir>/state --services-dir <dir>/services.d and logs to
 * <dir>/discd.log (later extra args override these). Its registry directory
 * is $DISCSHM_DIR, which every test executable gets set to a private
 * directory (tests/common/registry_dir.c), so readers in the test find it
 * with a plain disc_open(d.name, ...). A restart on the same
 * d restores what the previous discd registered, as in production. The harness has no JSON
 * dependency: replies are returned as raw lines (without the trailing newline) for the test to
 * parse.
 *
 * Functions return 0 or a negative errno value unless said otherwise.
 */
#ifndef DISC_TEST_DISCD_PROC_H
#define DISC_TEST_DISCD_PROC_H

#include <stddef.h>

#include "proc.h"

struct discd_proc {
    struct proc proc;
    char dir[256];          /* mkdtemp directory (mode 0755), removed by cleanup */
    char name[128];         /* unique registry name (contains the test's pid) */
    char sock[300];         /* control socket path */
    char log[300];          /* discd's stdout+stderr */
    char state_dir[300];    /* --state-dir <dir>/state (created by discd) */
    char services_dir[300]; /* --services-dir <dir>/services.d (absent unless a test makes it) */
    const char *binary;     /* discd to run (e.g. an older build); NULL: discd_binary() */
};

/* Path of the discd binary ($DISC_BUILD_DIR/daemon/discd), or NULL. */
const char *discd_binary(void);

/* Create a temp dir and choose a unique registry name containing tag. */
int discd_proc_init(struct discd_proc *d, const char *tag);

/*
 * Start discd (name, socket and dir from d) with extra_args (NULL-terminated,
 * may be NULL) appended, then wait up to timeout_ms until its socket
 * answers {"op":"status"} with ok. May be called again after a stop or
 * kill to restart on the same name. -ETIMEDOUT if it never answered (the
 * process is killed then), -ECHILD if it exited during start-up.
 */
int discd_proc_start(struct discd_proc *d, char *const extra_args[], int timeout_ms);

/* Same as discd_proc_start but does not wait for readiness (for tests that
 * expect discd to refuse to start). */
int discd_proc_spawn(struct discd_proc *d, char *const extra_args[]);

/* SIGTERM and wait up to timeout_ms; returns discd's exit code (>= 0), or
 * -EINTR if it had to be SIGKILLed, -ESRCH if it was not running. */
int discd_proc_stop(struct discd_proc *d, int timeout_ms);

/* SIGKILL and reap (simulates a crash). */
void discd_proc_kill(struct discd_proc *d);

/* Kill if running, remove the registry's objects ($DISCSHM_DIR/<name> and
 * <name>.lock), remove the dir. */
void discd_proc_cleanup(struct discd_proc *d);

/* A buffered client connection to the control socket. */
struct discd_conn {
    int fd;
    char *buf;
    size_t len, cap;
    unsigned pings_seen; /* ping events skipped by discd_conn_reply */
};

/* Connect to d's socket (blocking fd). */
int discd_conn_open(const struct discd_proc *d, struct discd_conn *c);

/* Connect to an arbitrary socket path. */
int discd_conn_open_path(const char *path, struct discd_conn *c);

/* Close the connection. */
void discd_conn_close(struct discd_conn *c);

/* Send bytes as they are (no newline added). */
int discd_conn_send_raw(struct discd_conn *c, const void *data, size_t len);

/* Send line followed by "\n", in one sendmsg (one wake-up of discd). */
int discd_conn_send(struct discd_conn *c, const char *line);

/*
 * Read one line (without "\n") into a malloc'd string *line. Returns its
 * length, -ETIMEDOUT, or -EPIPE if the peer closed the connection.
 */
int discd_conn_read_line(struct discd_conn *c, char **line, int timeout_ms);

/*
 * Read the next response line, skipping event lines ({"event":...}).
 * When answer_pings is non-zero each skipped ping is answered with a pong
 * carrying its seq. Returns as discd_conn_read_line.
 */
int discd_conn_reply(struct discd_conn *c, char **line, int timeout_ms, int answer_pings);

/* Send one request line on a fresh connection and return the malloc'd
 * response line, or NULL on any failure. */
char *discd_proc_request(const struct discd_proc *d, const char *line, int timeout_ms);

#endif /* DISC_TEST_DISCD_PROC_H */
