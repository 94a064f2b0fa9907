/* SPDX-License-Identifier: MIT */
/* service.c — the systemd notify protocol for discd (see service.h). */
#include "service.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "log.h"

bool service_managed(void)
{
    const char *s = getenv("NOTIFY_SOCKET");
    return s && *s;
}

uint64_t service_watchdog_usec(void)
{
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

/* Send "head" and, if status is not NULL, "STATUS=status". A failure is
 * logged at debug level: the manager may be gone; discd carries on. */
static void notify(const char *head, const char *status)
{
    if (!service_managed())
        return;
    char msg[700];
    snprintf(msg, sizeof(msg), "%s%s%s%s", head, head[0] && status ? "\n" : "",
             status ? "STATUS=" : "", status ? status : "");
    int rc = sd_notify(0, msg);
    if (rc < 0)
        log_debug("sd_notify(%s): %s", head[0] ? head : "STATUS", strerror(-rc));
}

/* notify with a status line made from fmt and ap. */
static void notifyv(const char *head, const char *fmt, va_list ap)
{
    char status[512];
    vsnprintf(status, sizeof(status), fmt, ap);
    notify(head, status);
}

void service_ready(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    notifyv("READY=1", fmt, ap);
    va_end(ap);
}

void service_status(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    notifyv("", fmt, ap);
    va_end(ap);
}

void service_watchdog(void)
{
    notify("WATCHDOG=1", NULL);
}

void service_reloading(void)
{
    notify("RELOADING=1", NULL);
}

void service_stopping(const char *why)
{
    char status[300];
    snprintf(status, sizeof(status), "stopping: %s", why);
    notify("STOPPING=1", status);
}
