/* SPDX-License-Identifier: MIT */
/*
 * ctl_run.h — run the discctl binary from tests and capture its output.
 */
#ifndef DISC_TEST_CTL_RUN_H
#define DISC_TEST_CTL_RUN_H

#include <jansson.h>
#include <sys/types.h>

#include "discd_proc.h"

/* Output of one discctl run. */
struct ctl_result {
    int code;  /* exit code, or -1 if it died of a signal / timed out */
    char *out; /* stdout (malloc'd, NUL-terminated) */
    char *err; /* stderr */
};

/* Path of discctl ($DISC_BUILD_DIR/tools/discctl); asserts it exists. */
const char *ctl_binary(void);

/*
 * Run discctl with --name/--socket of d (d NULL: no such options) followed
 * by the NULL-terminated args; wait at most timeout_ms (then SIGKILL).
 */
struct ctl_result ctl_run(const struct discd_proc *d, int timeout_ms, const char *const *args);

/* Convenience: ctl_run with the arguments listed inline. */
#define CTL(d, ...) ctl_run((d), 10000, (const char *const[]){__VA_ARGS__, NULL})

/* ctl_run as another user: `setpriv --reuid=UID --regid=UID --clear-groups
 * discctl ...` (the caller must be root; uid (uid_t)-1: as ourselves). */
struct ctl_result ctl_run_as(const struct discd_proc *d, uid_t uid, int timeout_ms,
                             const char *const *args);
#define CTL_AS(d, uid, ...) ctl_run_as((d), (uid), 10000, (const char *const[]){__VA_ARGS__, NULL})

/* `discctl register ARGS...` (NULL-terminated args, at most 38): asserts it
 * succeeds and prints an id line, and copies the id to id (DISC_ID_LEN + 1
 * bytes). */
void ctl_register(const struct discd_proc *d, int timeout_ms, const char *const *args, char *id);

/* Free the captured output. */
void ctl_result_free(struct ctl_result *r);

/* Free every output ctl_run returned that was not freed yet (a failed
 * assertion skips the test's ctl_result_free). Call from the suite's fini. */
void ctl_run_release_all(void);

/* Parse r->out as one JSON document (asserts). */
json_t *ctl_json(const struct ctl_result *r);

/* A discctl running in the background with its stdout on a pipe. */
struct ctl_bg {
    pid_t pid;
    int out_fd; /* read end of its stdout */
    char buf[65536];
    size_t len;
};

/* Start discctl in the background (same argument rules as ctl_run). */
void ctl_bg_start(struct ctl_bg *bg, const struct discd_proc *d, const char *const *args);

/* Start any program (argv[0] is its path) in the background the same way. */
void ctl_bg_exec(struct ctl_bg *bg, char *const *argv);

/* Path of a test helper built next to the tests: $DISC_BUILD_DIR/tests/tools/NAME
 * (asserts it exists). */
const char *ctl_helper(const char *name);

/* Next line of its stdout (without "\n") into line (len bytes); 0, or
 * -ETIMEDOUT, or -EPIPE at end of output. */
int ctl_bg_line(struct ctl_bg *bg, char *line, size_t len, int timeout_ms);

/* Wait for it to exit (at most timeout_ms, then SIGKILL); exit code or -1. */
int ctl_bg_wait(struct ctl_bg *bg, int timeout_ms);

/* SIGKILL and reap (no-op when already reaped). */
void ctl_bg_kill(struct ctl_bg *bg);

#endif /* DISC_TEST_CTL_RUN_H */
