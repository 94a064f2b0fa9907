/* SPDX-License-Identifier: MIT */
/*
 * curator_peer.h — drive CuratorPeer.java (a real Apache Curator
 * ServiceDiscovery client, built by the test setup against Debian's jars)
 * from a C test: start it as a child process, send it one JSON command per
 * line, read its JSON answers, stop or SIGKILL it by pid.
 *
 * The JVM gets PR_SET_PDEATHSIG=SIGKILL, so a dying test leaves no peer
 * behind; tests still stop it explicitly. Its stderr goes to a log file,
 * printed by cpeer_dump_log when a test fails.
 */
#ifndef DISC_TEST_CURATOR_PEER_H
#define DISC_TEST_CURATOR_PEER_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

struct cpeer {
    pid_t pid;   /* 0 when not running */
    int to_fd;   /* the peer's stdin */
    int from_fd; /* the peer's stdout */
    char buf[1 << 16];
    size_t len;
    char log_path[256];
    char session[32]; /* ZooKeeper session id (hex), from the ready line */
};

/* Options of one peer. */
struct cpeer_opts {
    const char *connect; /* ZooKeeper connect string (required) */
    const char *base;    /* ServiceDiscovery base path; NULL: /services */
    int session_ms;      /* session timeout; 0: 4000 */
    bool compat;         /* Curator's default serializer (writes no "enabled") */
};

/* Start the peer and wait (up to 60 s, scaled under sanitizers) for its
 * ready line. 0, or a negative errno value (the log is printed). */
int cpeer_start(struct cpeer *p, const struct cpeer_opts *o);

/* Send one command (printf-style JSON object) and return the answer (a new
 * reference), or NULL if the peer died or did not answer in 30 s. */
json_t *cpeer_call(struct cpeer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* cpeer_call that asserts "ok":true (Criterion) and returns the answer. */
json_t *cpeer_ok(struct cpeer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* {"op":"quit"}, wait for exit (5 s, then SIGKILL). Idempotent. */
void cpeer_stop(struct cpeer *p);

/* SIGKILL and reap (the session stays until ZooKeeper expires it). Idempotent. */
void cpeer_kill(struct cpeer *p);

/* Print the peer's stderr log. */
void cpeer_dump_log(const struct cpeer *p);

#endif /* DISC_TEST_CURATOR_PEER_H */
