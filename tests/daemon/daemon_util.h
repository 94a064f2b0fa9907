/*
 * daemon_util.h — helpers shared by the discd integration tests: start a
 * discd (Criterion asserts), JSON requests, waiting on a libdiscshm reader.
 */
#ifndef DISC_TEST_DAEMON_UTIL_H
#define DISC_TEST_DAEMON_UTIL_H

#include <jansson.h>

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

/* error.code of a reply ("" if ok or malformed). */
const char *dt_err_code(json_t *reply);
/* error.field of a reply ("" if none). */
const char *dt_err_field(json_t *reply);
/* true if reply has "ok":true */
int dt_ok(json_t *reply);

/* Open the registry of d with libdiscshm (asserts). */
disc_handle *dt_open_reader(const struct discd_proc *d);

/* Poll disc_count(h, service) until it equals want or timeout_ms passes.
 * Returns the last count seen (negative errno from disc_count is mapped to 0
 * for -ENOENT). */
int dt_wait_count(disc_handle *h, const char *service, int want, int timeout_ms);

/* The dump's instances, canonical (sorted by id, keys sorted), as a string
 * to compare registry states. Caller frees. Asserts on failure. */
char *dt_dump_canonical(const struct discd_proc *d);

/* Value of an integer field of the status reply (asserts). */
long long dt_status_int(const struct discd_proc *d, const char *key);

#endif /* DISC_TEST_DAEMON_UTIL_H */
