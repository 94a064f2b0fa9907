/* SPDX-License-Identifier: MIT */
/*
 * zk_agent_client.h — drive zk_agent child processes from a test: one
 * process per simulated host, each with its own zk_sync session.
 * Children get PR_SET_PDEATHSIG=SIGKILL; agent_kill reaps them.
 */
#ifndef DISC_TEST_ZK_AGENT_CLIENT_H
#define DISC_TEST_ZK_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct agent {
    pid_t pid; /* 0 when not running */
    int to_child;
    int from_child;
    char host[64];
    char log_path[320];
    char buf[1 << 16]; /* unread output */
    size_t blen;
};

/* Start an agent for host_id. log_dir receives <host>.log (stderr). */
int agent_start(struct agent *a, const char *zk_exe, const char *connect, const char *root,
                const char *host_id, int session_ms, int cooloff_ms, const char *log_dir);

/* Send one command line, read the first response line into resp. -ETIMEDOUT, -EPIPE. */
int agent_cmd(struct agent *a, char *resp, size_t len, int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/*
 * Poll `ids` every 50 ms until the agent's remote ids equal want (a
 * space-separated list in any order, "" for none). 0 or -ETIMEDOUT; the last
 * answer is left in last (if not NULL).
 */
int agent_wait_ids(struct agent *a, const char *want, int timeout_ms, char *last, size_t len);

/* Value of key=N in the agent's `stats` line, or -1. */
long long agent_stat(struct agent *a, const char *key);

/* How many times the agent's zk_sync reported id removed (its
 * on_remote_remove callback), or -1 if the agent did not answer. */
long long agent_removed(struct agent *a, const char *id);

/* Send a signal (SIGSTOP/SIGCONT/...). */
int agent_signal(struct agent *a, int sig);

/* SIGKILL and reap; no-op if not running. */
void agent_kill(struct agent *a);

/*
 * `quit`, wait up to 5 s, then SIGKILL. Returns the agent's exit code (0 on a
 * clean exit; sanitizer reports make it non-zero), -1 if it had to be killed
 * or died of a signal, -ESRCH if it was not running.
 */
int agent_stop(struct agent *a);

/* Print the agent's stderr log. */
void agent_dump_log(const struct agent *a);

/*
 * Suite fixture shared by the zk tests. agents_setup makes the log
 * directory (/tmp/disc-<tag>-<pid>-XXXXXX, into tmp) and starts a ZooKeeper
 * of `nodes` servers (1 = standalone); 0 or -errno. agents_teardown stops
 * every running agent of ag[0..n) (printing the log of any that exited
 * badly, or of all with $DISC_TEST_VERBOSE), destroys the cluster and removes
 * tmp; it returns how many agents exited badly (a sanitizer report, a crash).
 */
struct zk_cluster;
int agents_setup(struct zk_cluster *zk, int nodes, int timeout_ms, const char *tag, char *tmp,
                 size_t tmplen);
int agents_teardown(struct zk_cluster *zk, struct agent *ag, size_t n, const char *tmp);

/* A random lowercase UUID. */
void agent_uuid(char out[37]);

#endif
