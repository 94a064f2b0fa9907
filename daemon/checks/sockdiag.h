/* SPDX-License-Identifier: MIT */
/*
 * sockdiag.h — tcp checks of local targets answered by the kernel.
 *
 * For a target whose address belongs to discd's own network namespace
 * (loopback, or an address of a local interface), whether a connect would
 * succeed is decided by the listening socket the kernel would pick: one
 * NETLINK_SOCK_DIAG dump (inet_diag, TCP, state LISTEN, IPv4 and IPv6)
 * lists every listener with its address, port, accept-queue length and
 * backlog. A check passes when the listener the kernel would choose for
 * the target exists and its accept queue is not full. One dump serves
 * every check of a tick, so a check costs a lookup instead of a connect
 * and a reset (docs/DESIGN.md, "tcp checks of local targets").
 *
 * Not thread-safe: one checker thread owns a struct sockdiag.
 */
#ifndef DISC_SOCKDIAG_H
#define DISC_SOCKDIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct sockdiag;

enum sockdiag_verdict {
    SD_CONNECT = 0, /* cannot tell here: use connect (not local, bound to a device) */
    SD_PASS,        /* a listener the kernel would pick has room in its accept queue */
    SD_NO_LISTENER, /* nothing listens on the target: a connect is refused */
    SD_QUEUE_FULL,  /* the chosen listener's accept queue is full: a connect times out */
};

/* Open the netlink socket. NULL with errno set (EPROTONOSUPPORT when the
 * kernel has no sock_diag, EPERM/EACCES when a security policy refuses). */
struct sockdiag *sockdiag_open(void);

/* Close. NULL is a no-op. */
void sockdiag_close(struct sockdiag *sd);

/* Take a fresh listing of the listeners (and, at most once a second, of
 * the local addresses; now_ms is the caller's monotonic clock). 0, or
 * -errno: the listing is then unusable until the next successful refresh. */
int sockdiag_refresh(struct sockdiag *sd, uint64_t now_ms);

/* Whether `err` (from sockdiag_open or sockdiag_refresh) means sock_diag
 * will not work in this process at all (as opposed to a passing failure). */
bool sockdiag_err_permanent(int err);

/* Judge an IPv4 or IPv6 target against the last listing. why (may be NULL)
 * gets a sentence for the failing verdicts. */
enum sockdiag_verdict sockdiag_judge(const struct sockdiag *sd, const struct sockaddr *target,
                                     char *why, size_t whylen);

/* Whether addr is local to this network namespace (loopback, or an
 * address of a local interface in the last listing). */
bool sockdiag_is_local(const struct sockdiag *sd, const struct sockaddr *addr);

/* Listeners in the last listing. */
size_t sockdiag_listeners(const struct sockdiag *sd);

#endif /* DISC_SOCKDIAG_H */
