/* SPDX-License-Identifier: MIT */
/*
 * service.h — discd under a service manager (systemd's notify protocol,
 * sd_notify(3) from libsystemd): readiness, STATUS= lines, the watchdog and
 * STOPPING=1. Every call is a no-op when $NOTIFY_SOCKET is not set, so
 * discd behaves the same outside systemd. See docs/DAEMON.md, "systemd".
 *
 * Protocol as discd uses it:
 *   READY=1      once the first segment is published and the socket serves
 *   STATUS=...   at start-up, then whenever the summary changes
 *   WATCHDOG=1   every WATCHDOG_USEC/2, only while the publisher thread is
 *                still turning (its heartbeat count advances)
 *   RELOADING=1 / READY=1 around a SIGHUP reload
 *   STOPPING=1   when a stop signal arrives
 */
#ifndef DISC_SERVICE_H
#define DISC_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

/* True if a service manager listens ($NOTIFY_SOCKET is set). */
bool service_managed(void);

/* The watchdog period requested by the manager in microseconds, 0 if none
 * (sd_watchdog_enabled: $WATCHDOG_USEC, and $WATCHDOG_PID if set is ours). */
uint64_t service_watchdog_usec(void);

/* READY=1 with a STATUS= line (printf-style). */
void service_ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* STATUS= line (printf-style). */
void service_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* WATCHDOG=1. */
void service_watchdog(void);

/* RELOADING=1 (before a SIGHUP reload); service_ready ends it. */
void service_reloading(void);

/* STOPPING=1 with a STATUS= line saying why. */
void service_stopping(const char *why);

#endif /* DISC_SERVICE_H */
