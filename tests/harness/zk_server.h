/* SPDX-License-Identifier: MIT */
/*
 * zk_server.h — test harness: real ZooKeeper servers from the Debian package.
 *
 * Starts `java ... org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg`
 * directly (no systemd, no /etc or /var paths) in a fresh mkdtemp directory,
 * on free 127.0.0.1 ports only. One node is a standalone server; three (or
 * more) form an ensemble. Every JVM is a child of the calling process; the
 * harness remembers each pid, kills and reaps it in zk_cluster_destroy and,
 * as a safety net, in an atexit handler; each JVM also gets
 * PR_SET_PDEATHSIG=SIGKILL so it dies with the test process.
 *
 * Environment overrides (optional): DISC_ZK_JAVA (java binary, default
 * /usr/bin/java), DISC_ZK_CLASSPATH (default the Debian jars below),
 * DISC_ZK_HEAP (the JVM's -Xmx, default 128m).
 *
 * Functions return 0 (or a documented non-negative value) or a negative
 * errno value. Not thread-safe: use a cluster from one thread.
 */
#ifndef DISC_TEST_ZK_SERVER_H
#define DISC_TEST_ZK_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define ZK_MAX_NODES 5
#define ZK_PATH_LEN  320 /* base_dir (< 256) plus a short file name */

struct zk_node {
    int myid;          /* 1-based server id */
    int client_port;   /* 127.0.0.1 port for clients and four-letter words */
    int peer_port;     /* quorum port (ensemble only) */
    int election_port; /* leader-election port (ensemble only) */
    pid_t pid;         /* JVM pid, 0 when not running */
    bool paused;       /* SIGSTOPped by zk_node_pause */
    char dir[ZK_PATH_LEN];
    char cfg_path[ZK_PATH_LEN];
    char log_path[ZK_PATH_LEN]; /* JVM stdout+stderr (appended across restarts) */
};

struct zk_cluster {
    int n;              /* number of nodes; 1 = standalone */
    char base_dir[256]; /* mkdtemp directory, removed by destroy */
    char connect[256];  /* "127.0.0.1:p1,127.0.0.1:p2,..." */
    struct zk_node nodes[ZK_MAX_NODES];
};

/*
 * Create the directory and config of an n-node cluster (1 <= n <= ZK_MAX_NODES)
 * and start every node. Waits up to timeout_ms for the cluster to serve
 * (`srvr` reports Mode: standalone, or on every node of an ensemble
 * Mode: leader or follower; `ruok` is not enough: imok comes before the
 * server takes sessions). Retries with new ports if a JVM dies at once
 * (a port taken between probing and binding). On failure everything started
 * is killed and the directory removed. -ETIMEDOUT, -ENOENT (java missing) or
 * another -errno.
 */
int zk_cluster_start(struct zk_cluster *c, int n, int timeout_ms);

/* Kill (SIGCONT + SIGKILL) and reap every node, remove base_dir. Idempotent. */
void zk_cluster_destroy(struct zk_cluster *c);

/* Start node i again (same ports and data dir) without waiting. -EALREADY if running. */
int zk_node_start(struct zk_cluster *c, int i);

/* SIGTERM node i, wait up to timeout_ms, then SIGKILL; always reaps. -ESRCH if not running. */
int zk_node_stop(struct zk_cluster *c, int i, int timeout_ms);

/* SIGKILL node i and reap it. -ESRCH if not running. */
int zk_node_kill(struct zk_cluster *c, int i);

/*
 * Delete node i's snapshots and transaction logs (keeps myid), so its next
 * start comes back empty: a lost data directory. -EBUSY while it runs.
 */
int zk_node_wipe_data(struct zk_cluster *c, int i);

/* SIGSTOP / SIGCONT node i (a hung server). -ESRCH if not running. */
int zk_node_pause(struct zk_cluster *c, int i);
int zk_node_resume(struct zk_cluster *c, int i);

/* True while node i's JVM has not exited (reaps it if it has). */
bool zk_node_running(struct zk_cluster *c, int i);

/*
 * Wait up to timeout_ms until node i serves clients: standalone `imok`,
 * ensemble Mode leader/follower in `srvr`. -ETIMEDOUT, -ECHILD if the JVM died.
 */
int zk_node_wait_ready(struct zk_cluster *c, int i, int timeout_ms);

/* Wait until every running, unpaused node is ready (see zk_node_wait_ready). */
int zk_cluster_wait_ready(struct zk_cluster *c, int timeout_ms);

/*
 * Index (0-based) of the node whose `srvr` says Mode: leader (standalone:
 * Mode: standalone), polling up to timeout_ms. -ETIMEDOUT if none.
 */
int zk_cluster_leader(struct zk_cluster *c, int timeout_ms);

/*
 * Send a four-letter word ("ruok", "srvr", "mntr", ...) to 127.0.0.1:port and
 * read the whole reply into buf (NUL-terminated, truncated to len-1). Every
 * step (connect, send, each read) is bounded by timeout_ms. Returns the reply
 * length or -errno (-ETIMEDOUT, -ECONNREFUSED, ...).
 */
int zk_four_letter(int port, const char *word, char *buf, size_t len, int timeout_ms);

/* Connect string of node i alone ("127.0.0.1:port"), in a static-free buffer. */
void zk_node_connect_string(const struct zk_cluster *c, int i, char *buf, size_t len);

/* Print the last bytes of each node's log to stderr (for failing tests). */
void zk_cluster_dump_logs(const struct zk_cluster *c);

#endif /* DISC_TEST_ZK_SERVER_H */
