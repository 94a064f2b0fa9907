/* SPDX-License-Identifier: MIT */
/*
 * bench_zkraw.h — the raw ZooKeeper baseline that bench_zk and bench_zk_prop
 * measure discd / zk_sync against, in the same run on the same server: a
 * plain C-client session (THREADED) whose watcher counts child-watch events,
 * and one "seed design" round on two such sessions:
 *
 *   session W arms a child watch on a directory; t0; session P creates a
 *   node there; t1 = W's watch fires; W lists the directory and gets the new
 *   node: t2.
 *
 * It also starts the benchmarks' ZooKeeper server (the program links
 * tests/harness/zk_server.c) and makes instance ids.
 *
 * Only benchmarks use this; it exits the program with a message on any
 * ZooKeeper failure (a benchmark has nothing sensible to go on with).
 */
#ifndef DISC_BENCH_ZKRAW_H
#define DISC_BENCH_ZKRAW_H

#include <zookeeper/zookeeper.h>

struct zk_cluster;

/*
 * Quiet the C client's log (errors only) and start one standalone
 * ZooKeeper server (tests/harness/zk_server.h; up to 60 s). Exits the
 * program with a message if it does not start.
 */
void zkraw_server_start(struct zk_cluster *zk);

/*
 * A session to `connect` (host:port list) with a session timeout of
 * session_ms, connected (waits up to 5 s; exits if it does not connect).
 * Its watcher counts ZOO_CHILD_EVENTs (see zkraw_round). Close it with
 * zkraw_close.
 */
zhandle_t *zkraw_connect(const char *connect, int session_ms);

/* Close a session from zkraw_connect and free its watch counter. */
void zkraw_close(zhandle_t *zh);

/* Create `path` as a persistent node without data; an existing one is fine. */
void zkraw_mkpath(zhandle_t *zh, const char *path);

/*
 * One round: w (from zkraw_connect) arms a child watch on dir; p creates
 * `node` (a child of dir) ephemeral with doc[0..len); the times from just
 * before the create until w's watch fired (*t_watch) and until w has listed
 * dir and read `node` (*t_path), in microseconds. Exits if any call fails
 * or the watch does not fire within 10 s.
 */
void zkraw_round(zhandle_t *w, zhandle_t *p, const char *dir, const char *node, const char *doc,
                 int len, double *t_watch, double *t_path);

/* A random instance id as discd makes them: a lowercase UUID (36 chars). */
void zkraw_new_id(char out[37]);

/* Delete every child of dir (best effort; for keeping a directory small). */
void zkraw_clear_dir(zhandle_t *zh, const char *dir);

#endif /* DISC_BENCH_ZKRAW_H */
