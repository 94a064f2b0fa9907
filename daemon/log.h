/* SPDX-License-Identifier: MIT */
/*
 * log.h — discd's logger: one line per message on stderr,
 *   2026-01-31T12:00:00.123Z discd[1234] INFO message
 * The level can be changed at any time from any thread (SIGHUP reload).
 *
 * Under systemd (log_detect_journal: $JOURNAL_STREAM names the device and
 * inode of stderr) each line is instead "<P>LEVEL message", P the syslog
 * priority (3 error, 4 warn, 6 info, 7 debug), so the journal records the
 * level; it adds the timestamp and pid itself.
 */
#ifndef DISC_LOG_H
#define DISC_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_LVL_ERROR = 0,
    LOG_LVL_WARN = 1,
    LOG_LVL_INFO = 2,
    LOG_LVL_DEBUG = 3,
};

/* Switch to the journal format if $JOURNAL_STREAM matches stderr (call once,
 * before other threads log). Returns true if it did. */
bool log_detect_journal(void);

/* Set the most verbose level that is printed (default: info). */
void log_set_level(enum log_level level);

/* The current level. */
enum log_level log_get_level(void);

/* Parse "error", "warn", "info" or "debug". 0 and *out, or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);

/* Name of a level ("info", ...). */
const char *log_level_name(enum log_level level);

/* Print one message (a newline is added) if level is enabled. Thread-safe:
 * each message is written with a single write(2). */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif /* DISC_LOG_H */
