/* SPDX-License-Identifier: MIT */
/*
 * daemon_util.h — helpers shared by the discd integration tests: start a
 * discd (Criterion asserts), JSON requests, waiting on a libdiscshm reader.
 */
#ifndef DISC_TEST_DAEMON_UTIL_H
#define DISC_TEST_DAEMON_UTIL_H

#include <jansson.h>
#include <sys/types.h>

#include "discd_proc.h"
#include "discshm.h"

/* Timeouts in tests are multiplied by this (sanitizer builds run slower). */
int dt_slow(void);

/* Init + start a discd with extra args (NULL-terminated or NULL); asserts. */
void dt_start(struct discd_proc *d, const char *tag, char *const extra[]);

/* Teardown: stop d with SIGTERM if it still runs (it must exit 0), look for
 * sanitizer reports in its log (printing the log if there are), clean up,
 * then assert both. */
void dt_finish(struct discd_proc *d);

/* Send a line on c and parse the reply (pings are answered). NULL on failure. */
json_t *dt_call(struct discd_conn *c, const char *line);

/* Same on a fresh connection. */
json_t *dt_call1(const struct discd_proc *d, const char *line);

/* printf-style dt_call1. */
json_t *dt_callf(const struct discd_proc *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Register {"service":svc,"address":addr} with check (a JSON object text, or
 * NULL for the default session check) on c; asserts success; copies the id. */
void dt_register(struct discd_conn *c, const char *svc, const char *addr, const char *check,
                 char id[DISC_ID_LEN + 1]);

/* Pipelining: send the n request lines in buf (len bytes, each ending in
 * "\n") in one write, then read n replies (answering pings); each must be
 * ok and, when seq_from >= 0, carry "seq":<seq_from + i>. Asserts. */
void dt_pipeline(struct discd_conn *c, const char *buf, size_t len, int n, int seq_from);

/* error.code of a reply ("" if ok or malformed). */
const char *dt_err_code(json_t *reply);
/* error.field of a reply ("" if none). */
const char *dt_err_field(json_t *reply);
/* true if reply has "ok":true */
int dt_ok(json_t *reply);

/* Open the registry of d with libdiscshm (asserts). */
disc_handle *dt_open_reader(const struct discd_proc *d);

/* The opening most tests share: dt_start, dt_open_reader, and one
 * connection c to d's socket (asserts). Returns the reader. */
disc_handle *dt_start_conn(struct discd_proc *d, const char *tag, char *const extra[],
                           struct discd_conn *c);

/* Poll disc_count(h, service) until it equals want or timeout_ms passes.
 * Returns the last count seen (negative errno from disc_count is mapped to 0
 * for -ENOENT). */
int dt_wait_count(disc_handle *h, const char *service, int want, int timeout_ms);

/* The dump's instances, canonical (sorted by id, keys sorted), as a string
 * to compare registry states. Caller frees. Asserts on failure. */
char *dt_dump_canonical(const struct discd_proc *d);

/* In a child running as uid (and gid): connect to d, send line, expect
 * error code (or ok when code is NULL). If idout is non-NULL, the reply's
 * "id" is copied there. Returns the child's exit status: 0 on success. */
int dt_run_as(const struct discd_proc *d, uid_t uid, const char *line, const char *code,
              char idout[DISC_ID_LEN + 1]);

/* How many lines of d's log (all its runs) contain needle. */
int dt_log_has(const struct discd_proc *d, const char *needle);

/* The integer at a path of d's status reply (asserts it is there): keys
 * joined by '.', a number indexing an array, e.g. "local_instances" or
 * "zookeeper.import.0.upserts". path_fmt is a printf format. */
long long dt_status_int(const struct discd_proc *d, const char *path_fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Churn: a child process that registers instances of one service (check
 * none) and deregisters some of them on one connection, as fast as discd
 * acknowledges, until the connection fails (discd killed) or it is stopped.
 * Every step is logged to a file before it is sent and again once it is
 * acknowledged, so that after a crash the test knows exactly which changes
 * were acknowledged and which one (at most) was in flight.
 */
struct dt_churn {
    pid_t pid;
    char log[320];
};

/* Start the churn child on d's socket for service svc (asserts). */
void dt_churn_start(struct dt_churn *ch, const struct discd_proc *d, const char *svc);

/* Wait up to timeout_ms for the child to exit by itself (its connection
 * failed); SIGKILL it otherwise. Returns the number of acknowledged
 * registrations it made. */
int dt_churn_wait(struct dt_churn *ch, int timeout_ms);

/*
 * Assert that the local instances of svc in d's dump are exactly the
 * acknowledged registrations minus the acknowledged deregistrations; the
 * one change in flight when the connection failed may have either outcome.
 * Returns the number of instances. Removes the log.
 */
int dt_churn_verify(struct dt_churn *ch, const struct discd_proc *d, const char *svc);

#endif /* DISC_TEST_DAEMON_UTIL_H */
