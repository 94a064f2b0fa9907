/* SPDX-License-Identifier: MIT */
/*
 * proc.h — test harness: run child processes and never leak them.
 *
 * Every process started with proc_spawn is remembered by the harness; an
 * atexit handler kills (SIGKILL) and reaps any that are still running when
 * the process that spawned them exits (not in forked copies of it), and each child also gets
 * PR_SET_PDEATHSIG=SIGKILL so it dies if the test process is killed. Tests should still stop their
 * children explicitly (proc_stop / proc_kill) in their teardown.
 *
 * Functions return 0 or a negative errno value.
 */
#ifndef DISC_TEST_PROC_H
#define DISC_TEST_PROC_H

#include <stdbool.h>
#include <sys/types.h>

struct proc {
    pid_t pid;   /* 0 when not running */
    bool exited; /* reaped */
    int status;  /* raw waitpid status once exited */
    char log_path[4096];
};

/*
 * Start argv[0] (a path; not searched in $PATH) with argv. env_extra is a
 * NULL-terminated list of "KEY=VALUE" strings added to (or replacing in) the
 * current environment; NULL for none. stdout and stderr of the child are
 * appended to log_path (NULL: /dev/null); stdin is /dev/null.
 * Fills *p. -errno if the fork failed; if exec fails, the child exits 127.
 */
int proc_spawn(struct proc *p, char *const argv[], char *const env_extra[], const char *log_path);

/* Send signal sig. -ESRCH if the process has already been reaped. */
int proc_signal(struct proc *p, int sig);

/* True while the child has not exited (reaps it if it has). */
bool proc_alive(struct proc *p);

/*
 * Wait up to timeout_ms (negative: forever) for the child to exit.
 * 0 and p->status set, or -ETIMEDOUT.
 */
int proc_wait(struct proc *p, int timeout_ms);

/*
 * SIGTERM, wait up to timeout_ms, then SIGKILL and reap. Returns the exit
 * code (>= 0) if the child exited by itself after SIGTERM, -EINTR if it had
 * to be killed or died of a signal, -ESRCH if it was not running.
 */
int proc_stop(struct proc *p, int timeout_ms);

/* SIGKILL and reap. No-op if not running. */
void proc_kill(struct proc *p);

/* Exit code if the child exited normally, else -1 (signal) or -2 (not reaped). */
int proc_exit_code(const struct proc *p);

/* Print the child's log file to stderr (for failing tests). */
void proc_dump_log(const struct proc *p);

/* Print the file at path to stderr between "---- <title> ----" and
 * "---- end ----"; nothing if it cannot be opened. */
void proc_dump_file(const char *path, const char *title);

/* Milliseconds of CLOCK_MONOTONIC. */
long long proc_now_ms(void);

/* Milliseconds of CLOCK_REALTIME (Unix time), the clock of the segment
 * header's timestamps. */
long long proc_real_ms(void);

/* Sleep for ms milliseconds. */
void proc_sleep_ms(int ms);

#endif /* DISC_TEST_PROC_H */
