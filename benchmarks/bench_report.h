/* SPDX-License-Identifier: MIT */
/*
 * bench_report.h — the output convention every benchmark in benchmarks/
 * follows (scripts/bench.sh assembles RESULTS.md and results.json from it).
 *
 * Common flags, taken out of argv by bench_parse_args():
 *   --quick       a smoke run (the whole program in about 20 s at most)
 *   --md FILE     the benchmark's section of RESULTS.md ("## Title", the
 *                 exact command, tables, ratios, "target:" lines)
 *   --json FILE   {"benchmark": NAME, "title": ..., "command": ...,
 *                  "quick": bool, "rows": [{"name", "unit", "median",
 *                  "p99", ...}], "targets": [{"name", "value", "op",
 *                  "limit", "met"}]}
 *
 * A report collects rows and targets in memory and writes both files at
 * bench_report_close(); markdown text goes to the --md file as it comes.
 * Without --md / --json nothing is written (the program prints to stdout as
 * it always did). Not thread-safe: use one report from one thread. Only
 * benchmarks use this; it is not part of any installed library.
 */
#ifndef DISC_BENCH_REPORT_H
#define DISC_BENCH_REPORT_H

#include <stdbool.h>

struct bench_opts {
    bool quick;
    const char *md;     /* NULL: no markdown section */
    const char *json;   /* NULL: no JSON file */
    char command[1024]; /* the command line as given (see bench_report_open) */
};

/*
 * Take --quick, --md FILE and --json FILE out of argv (argv is compacted,
 * *argc lowered; argv[0] stays), after recording the whole command line in
 * o->command. Returns 0, or -EINVAL with a message on stderr when --md or
 * --json lacks its file.
 */
int bench_parse_args(int *argc, char **argv, struct bench_opts *o);

struct bench_report;

/*
 * Start a report. name: the program's short name ("bench_lookup"); title:
 * the section heading; argv/argc: the original command line (recorded as
 * the exact command), or NULL/0: the one bench_parse_args recorded in o. Opens the --md file and
 * writes "## title" and the command. Returns NULL (message on stderr) if a file cannot be created.
 */
struct bench_report *bench_report_open(const char *name, const char *title,
                                       const struct bench_opts *o, int argc, char **argv);

/* Append printf-formatted markdown to the section (nothing without --md). */
void bench_md(struct bench_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Add a JSON row. unit: "ns", "us", "ms", "ops/s", "%", "instr", ...;
 * median / p99: NAN when not applicable (written as null). extra: NULL, or
 * printf-formatted further members without braces, e.g. "\"n\": %d".
 */
void bench_row(struct bench_report *r, const char *name, const char *unit, double median,
               double p99, const char *extra, ...) __attribute__((format(printf, 6, 7)));

/*
 * v as a JSON number ("%.10g"), or "null" when it is not finite, in buf
 * (at least BENCH_JNUM_LEN bytes); for the extra members of bench_row:
 * bench_row(r, ..., "\"ratio\": %s", bench_jnum(b, x)).
 */
#define BENCH_JNUM_LEN 32
const char *bench_jnum(char *buf, double v);

/*
 * Add a target: met when value `op` limit holds (op "<=" or ">="). Writes a
 * line "- target: NAME: VALUE (limit OP LIMIT): met / NOT met" to the
 * section and a JSON target. A NAN value (not measured) is NOT met and
 * says so. Returns whether it is met.
 */
bool bench_target(struct bench_report *r, const char *name, double value, const char *op,
                  double limit);

/*
 * Write the JSON file, close both files and free the report. Returns 0, or
 * -EIO (message on stderr) if anything could not be written.
 */
int bench_report_close(struct bench_report *r);

#endif /* DISC_BENCH_REPORT_H */
