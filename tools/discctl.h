/* SPDX-License-Identifier: MIT */
/*
 * discctl.h — shared pieces of discctl (the operator CLI): options common to
 * every subcommand, exit codes, output helpers.
 *
 * Reads come from the shared-memory segment (libdiscshm); writes go through
 * discd's control socket (libdiscclient).
 */
#ifndef DISCCTL_H
#define DISCCTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "discclient.h"
#include "discshm.h"

/* Exit codes (documented in docs/DISCCTL.md and --help). */
enum {
    EXIT_OK = 0,
    EXIT_ERR = 1,         /* the operation failed (e.g. the daemon refused it) */
    EXIT_USAGE = 2,       /* bad command line */
    EXIT_NOTFOUND = 3,    /* no such service / instance / nothing matched */
    EXIT_UNAVAILABLE = 4, /* no registry segment, writer dead, or daemon unreachable */
    EXIT_STALE = 5,       /* printed, but stale (writer dead, degraded, file cache) */
};

/* Default of --max-degraded: how long ZooKeeper may be degraded before
 * reads count as stale. */
#define CTL_MAX_DEGRADED_MS 10000u

/* Options every subcommand accepts. */
struct ctl {
    const char *name;   /* registry name (NULL: $DISCSHM_NAME, else "discshm") */
    const char *socket; /* control socket (NULL: the default for name) */
    bool json;          /* machine-readable output */
    const char *cmd;    /* the subcommand being run, for messages */
    /* staleness (get, pick, services, endpoints; discctl_stale.c) */
    bool allow_stale;         /* --allow-stale: warn but exit 0 */
    bool max_degraded_set;    /* --max-degraded given */
    uint32_t max_degraded_ms; /* --max-degraded */
};

/* A subcommand: parses its own arguments (argv[0] is its name). */
typedef int (*ctl_cmd_fn)(struct ctl *ctl, int argc, char **argv);

int cmd_register(struct ctl *ctl, int argc, char **argv);
int cmd_deregister(struct ctl *ctl, int argc, char **argv);
int cmd_ls(struct ctl *ctl, int argc, char **argv);
int cmd_get(struct ctl *ctl, int argc, char **argv);
int cmd_pick(struct ctl *ctl, int argc, char **argv);
int cmd_endpoints(struct ctl *ctl, int argc, char **argv);
int cmd_watch(struct ctl *ctl, int argc, char **argv);
int cmd_status(struct ctl *ctl, int argc, char **argv);
int cmd_dump(struct ctl *ctl, int argc, char **argv);
int cmd_confirm(struct ctl *ctl, int argc, char **argv); /* discctl_protect.c */
int cmd_ttl(struct ctl *ctl, int argc, char **argv);     /* pass/warn/fail, discctl_checks.c */
int cmd_maint(struct ctl *ctl, int argc, char **argv);   /* discctl_checks.c */

/* The daemon's check objects (docs/PROTOCOL.md, query: type, ..., status,
 * note, maintenance) of the local instances in list, as {id: check|null};
 * empty when discd does not answer. Never NULL unless out of memory. */
json_t *ctl_local_checks(const struct ctl *ctl, const struct disc_instance *list, int n);

/* A one-line note for a check object: "maintenance: REASON; check S", or
 * the check's note; "" if none. */
void ctl_check_note(json_t *chk, char *buf, size_t len);

/* The manual of confirm (a printf format taking the common options and exit status). */
extern const char ctl_help_confirm[];

int cmd_metrics(struct ctl *ctl, int argc, char **argv); /* discctl_metrics.c */
extern const char ctl_help_metrics[];                    /* as ctl_help_confirm */
int cmd_reload(struct ctl *ctl, int argc, char **argv);  /* discctl_reload.c */
extern const char ctl_help_reload[];

/* ---- help (discctl_help.c) ---- */

/* Print the manual of cmd (NULL: the whole command) to stdout. Returns
 * false if there is no such subcommand. */
bool ctl_help(const char *cmd);

/* Print "discctl CMD: <msg>" and a hint to --help to stderr; returns
 * EXIT_USAGE. */
int ctl_usage_error(const struct ctl *ctl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print "discctl CMD: <msg>" to stderr. */
void ctl_err(const struct ctl *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Parse the options shared by every subcommand (--name, --socket, --json,
 * --help) out of argv in place: they are removed, the rest is kept in order.
 * Returns the new argc, or -1 after printing help (exit 0), or -2 on a usage
 * error (message printed; exit 2).
 */
int ctl_common_opts(struct ctl *ctl, int argc, char **argv);

/* "--opt=value" or "--opt value" at argv[*i]: 1 and *val set (*i advanced
 * past a separate value), 0 if argv[*i] is not opt, -1 if the value is
 * missing. */
int ctl_opt(int argc, char **argv, int *i, const char *opt, const char **val);

/* For a command that takes no arguments (after the common options): 0 if
 * argv[1..] holds nothing but "--", else EXIT_USAGE after printing "unknown
 * option" or "unexpected argument ... (discctl CMD takes none)". */
int ctl_no_operands(const struct ctl *ctl, int argc, char **argv);

/* Parse an unsigned decimal in [min, max]; -EINVAL otherwise. */
int ctl_parse_u32(const char *s, unsigned long min, unsigned long max, uint32_t *out);

/* ---- registry access (discctl_util.c) ---- */

/* Open the segment; on failure prints why and returns the exit code
 * (EXIT_UNAVAILABLE or EXIT_ERR), else 0. */
int ctl_open(const struct ctl *ctl, disc_handle **h);

/* Connect to the daemon; on failure prints why (unless quiet) and returns
 * the exit code, else 0. */
int ctl_connect(const struct ctl *ctl, disc_client **cl, bool quiet);

/*
 * One request/response with discd: send req (a JSON object, consumed; NULL
 * = out of memory), and on {"ok":true} return EXIT_OK with the parsed
 * response in *resp (caller decrefs). Otherwise print why, naming `what`
 * ("confirm", "reload", ...) and discd's error code and message, and return
 * the exit code: EXIT_UNAVAILABLE (no answer), EXIT_NOTFOUND (not_found),
 * EXIT_ERR (any other refusal).
 */
int ctl_call(const struct ctl *ctl, json_t *req, const char *what, json_t **resp);

/* Exit code for a negative errno from libdiscshm / libdiscclient. */
int ctl_exit_code(int rc);

/* A copy-out call of the disc_services / disc_endpoints / disc_lookup_filtered
 * kind, with its list type erased. */
typedef int (*ctl_view_fn)(disc_handle *h, const struct disc_filter *f, void *buf, size_t len,
                           void **list, size_t *needed);

/* Run fn with a malloc'd buffer, growing it on -ENOBUFS and retrying on
 * -EAGAIN (a section overtaken by the writer), at most 16 times. Returns
 * fn's count and sets *list and *buf (free(*buf) when done), or a negative
 * errno (-EAGAIN if it never settled). */
int ctl_view_all(disc_handle *h, const struct disc_filter *f, ctl_view_fn fn, void **list,
                 void **buf);

/*
 * Copy out every instance matching f (NULL: all) into a malloc'd buffer
 * (growing it as needed). Returns the count (>= 0) and sets *list and *buf
 * (free(*buf) when done), or a negative errno.
 */
int ctl_lookup_all(disc_handle *h, const struct disc_filter *f, struct disc_instance **list,
                   void **buf);

/* ---- filter options of get and pick (discctl_filter.c) ---- */

/*
 * If argv[*i] is a filter option (--version, --min-version, --az, --host,
 * --tag KEY[=VALUE], --endpoint, --health, --prefix), store it in *f
 * (advancing *i past a separate value) and return 1; 0 if it is not one;
 * -1 after printing a usage error. --tag edits argv in place.
 */
int ctl_filter_opt(const struct ctl *ctl, int argc, char **argv, int *i, struct disc_filter *f);

/* ctl_filter_opt, else ctl_stale_opt: the options of the commands that look
 * instances up (get, pick). 1 if argv[*i] was one, 0 if not, -1 after a
 * usage error. */
int ctl_lookup_opt(struct ctl *ctl, int argc, char **argv, int *i, struct disc_filter *f);

/* An argument that is no option of the command: the SERVICE operand, stored
 * in f->service. 0, or EXIT_USAGE (message printed) for an unknown option
 * (it starts with '-') or a second operand. */
int ctl_service_operand(const struct ctl *ctl, const char *arg, struct disc_filter *f);

/* After parsing: require SERVICE or --prefix and validate the filter with
 * disc_filter_check. 0, or EXIT_USAGE (message printed). */
int ctl_filter_finish(const struct ctl *ctl, const struct disc_filter *f);

/* Explain on stderr why nothing matched f: no such service (exists false),
 * or nothing matched — with how many instances only the health condition
 * hid (critical or in maintenance). */
void ctl_not_found(const struct ctl *ctl, disc_handle *h, const struct disc_filter *f, bool exists);

/* What the filter targets, for messages: the service, or "PREFIX*". */
const char *ctl_filter_target(const struct disc_filter *f, char *buf, size_t len);

/* ---- staleness (discctl_stale.c) ---- */

/* If argv[*i] is --allow-stale or --max-degraded MS, store it in *ctl and
 * return 1; 0 if not; -1 after a usage error. */
int ctl_stale_opt(struct ctl *ctl, int argc, char **argv, int *i);

/* After a successful read: warn on stderr if the data is stale (writer dead
 * or stopped, degraded longer than --max-degraded, from the file cache).
 * Returns EXIT_STALE, or 0 if fresh or --allow-stale. */
int ctl_stale_check(const struct ctl *ctl, disc_handle *h);

/* Local "YYYY-MM-DD HH:MM:SS" of a CLOCK_REALTIME ms timestamp ("-" for 0). */
void ctl_time_text(long long ms, char *buf, size_t len);

/* ---- output (discctl_util.c) ---- */

const char *ctl_health_name(unsigned health);
const char *ctl_origin_name(unsigned origin);

/* Parse a health name ("passing", "warning", "critical", "unknown",
 * "not-critical", "any") into a filter mask; -EINVAL if unknown. */
int ctl_parse_health(const char *s, unsigned *mask);

/* The instance as a JSON object (the same fields as the protocol's query
 * response). NULL on allocation failure. */
json_t *ctl_instance_json(const struct disc_instance *inst);

/* Print j (compact, one line) to stdout and release it. */
void ctl_print_json(json_t *j);

/* A text table: add rows of `ncols` strings, then print aligned. */
struct ctl_table {
    size_t ncols, nrows, cap;
    char **cells; /* row-major, strdup'ed */
};
void ctl_table_init(struct ctl_table *t, size_t ncols, const char *const *header);
void ctl_table_add(struct ctl_table *t, const char *const *row);
void ctl_table_print(struct ctl_table *t); /* prints and frees */

/* Milliseconds of CLOCK_REALTIME. */
long long ctl_now_ms(void);

/* Human-readable age of a CLOCK_REALTIME ms timestamp ("3s", "5m", "2h"). */
void ctl_age(long long then_ms, char *buf, size_t len);

#endif /* DISCCTL_H */
