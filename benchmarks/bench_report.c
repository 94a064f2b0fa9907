/* SPDX-License-Identifier: MIT */
/* bench_report.c — see bench_report.h. */
#include "bench_report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bench_report {
    FILE *md;
    char *json_path;
    char *name, *title, *command;
    bool quick;
    FILE *rows, *targets; /* open_memstream buffers of JSON members */
    char *rows_buf, *targets_buf;
    size_t rows_len, targets_len;
    int n_rows, n_targets;
    bool failed;
};

/* The command line without --md/--json and their files (where this run put
 * its output is not part of the experiment), quoted where the shell would
 * need it. */
static char *join_command(int argc, char **argv)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--md") || !strcmp(a, "--json")) && i + 1 < argc) {
            i++;
            continue;
        }
        if (i == 0) {
            const char *slash = strrchr(a, '/');
            a = slash ? slash + 1 : a; /* build directories differ */
        }
        bool plain = *a != '\0' && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                             "0123456789-_=./,:+%") == strlen(a);
        fprintf(f, plain ? "%s%s" : "%s'%s'", i ? " " : "", a);
    }
    fclose(f);
    return buf;
}

int bench_parse_args(int *argc, char **argv, struct bench_opts *o)
{
    int out = 1;
    *o = (struct bench_opts){0};
    char *command = join_command(*argc, argv);
    snprintf(o->command, sizeof(o->command), "%s", command ? command : argv[0]);
    free(command);
    for (int i = 1; i < *argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            o->quick = true;
        } else if (!strcmp(argv[i], "--md") || !strcmp(argv[i], "--json")) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "%s: %s needs a file name\n", argv[0], argv[i]);
                return -EINVAL;
            }
            if (argv[i][2] == 'm')
                o->md = argv[++i];
            else
                o->json = argv[++i];
        } else {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    *argc = out;
    return 0;
}

/* Write s as a JSON string (quotes included). */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

const char *bench_jnum(char *buf, double v)
{
    if (!isfinite(v))
        return "null";
    snprintf(buf, BENCH_JNUM_LEN, "%.10g", v);
    return buf;
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.10g", v);
    else
        fputs("null", f);
}

struct bench_report *bench_report_open(const char *name, const char *title,
                                       const struct bench_opts *o, int argc, char **argv)
{
    struct bench_report *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->name = strdup(name);
    r->title = strdup(title);
    r->command = argv ? join_command(argc, argv) : strdup(o->command);
    r->quick = o->quick;
    r->json_path = o->json ? strdup(o->json) : NULL;
    r->rows = open_memstream(&r->rows_buf, &r->rows_len);
    r->targets = open_memstream(&r->targets_buf, &r->targets_len);
    if (!r->name || !r->title || !r->command || !r->rows || !r->targets ||
        (o->json && !r->json_path)) {
        fprintf(stderr, "%s: out of memory\n", name);
        bench_report_close(r);
        return NULL;
    }
    if (o->md) {
        r->md = fopen(o->md, "w");
        if (!r->md) {
            fprintf(stderr, "%s: cannot create %s: %s\n", name, o->md, strerror(errno));
            bench_report_close(r);
            return NULL;
        }
        fprintf(r->md, "## %s\n\nCommand%s:\n\n```\n%s\n```\n\n", title,
                o->quick ? " (quick smoke run: few samples, read nothing into the numbers)" : "",
                r->command);
    }
    return r;
}

void bench_md(struct bench_report *r, const char *fmt, ...)
{
    if (!r->md)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->md, fmt, ap);
    va_end(ap);
}

void bench_row(struct bench_report *r, const char *name, const char *unit, double median,
               double p99, const char *extra, ...)
{
    FILE *f = r->rows;
    fputs(r->n_rows++ ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
    json_str(f, name);
    fputs(", \"unit\": ", f);
    json_str(f, unit);
    fputs(", \"median\": ", f);
    json_num(f, median);
    fputs(", \"p99\": ", f);
    json_num(f, p99);
    if (extra) {
        fputs(", ", f);
        va_list ap;
        va_start(ap, extra);
        vfprintf(f, extra, ap);
        va_end(ap);
    }
    fputc('}', f);
}

bool bench_target(struct bench_report *r, const char *name, double value, const char *op,
                  double limit)
{
    bool ge = op[0] == '>';
    bool met = isfinite(value) && (ge ? value >= limit : value <= limit);
    const char *sym = ge ? "≥" : "≤";
    if (isfinite(value))
        bench_md(r, "- target: %s: %.3g (limit %s %.3g): **%s**\n", name, value, sym, limit,
                 met ? "met" : "NOT met");
    else
        bench_md(r, "- target: %s: not measured in this run (limit %s %.3g): **NOT met**\n", name,
                 sym, limit);
    FILE *f = r->targets;
    fputs(r->n_targets++ ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
    json_str(f, name);
    fputs(", \"value\": ", f);
    json_num(f, value);
    fprintf(f, ", \"op\": \"%s\", \"limit\": ", ge ? ">=" : "<=");
    json_num(f, limit);
    fprintf(f, ", \"met\": %s}", met ? "true" : "false");
    return met;
}

int bench_report_close(struct bench_report *r)
{
    if (!r)
        return 0;
    int rc = 0;
    if (r->rows)
        fclose(r->rows);
    if (r->targets)
        fclose(r->targets);
    if (r->json_path && r->rows_buf && r->targets_buf) {
        FILE *f = fopen(r->json_path, "w");
        if (!f) {
            fprintf(stderr, "%s: cannot create %s: %s\n", r->name, r->json_path, strerror(errno));
            rc = -EIO;
        } else {
            fputs("{\"benchmark\": ", f);
            json_str(f, r->name);
            fputs(", \"title\": ", f);
            json_str(f, r->title);
            fputs(", \"command\": ", f);
            json_str(f, r->command);
            fprintf(f, ", \"quick\": %s,\n  \"rows\": [%s%s],\n  \"targets\": [%s%s]}\n",
                    r->quick ? "true" : "false", r->rows_buf, r->n_rows ? "\n  " : "",
                    r->targets_buf, r->n_targets ? "\n  " : "");
            if (ferror(f))
                rc = -EIO;
            if (fclose(f) != 0)
                rc = -EIO;
            if (rc < 0)
                fprintf(stderr, "%s: error writing %s\n", r->name, r->json_path);
        }
    }
    if (r->md) {
        fputc('\n', r->md);
        if (ferror(r->md) || fclose(r->md) != 0) {
            fprintf(stderr, "%s: error writing the markdown section\n", r->name);
            rc = -EIO;
        }
    }
    free(r->rows_buf);
    free(r->targets_buf);
    free(r->json_path);
    free(r->name);
    free(r->title);
    free(r->command);
    free(r);
    return rc;
}
