/* SPDX-License-Identifier: MIT */
/*
 * format.h — adapters for registries that other frameworks keep in
 * ZooKeeper (Dubbo, Finagle/Aurora ServerSets, Kitex/Hertz, Curator), so
 * discd can import their instances (daemon/zk/import.h) beside its own.
 *
 * One small file per format (daemon/zk/formats/<format>.c) fills one
 * struct fmt_ops: where its instances live under a base path (path rules),
 * whether their data must be read, and how one node maps to discd's
 * instance model. The import engine does all the ZooKeeper work (watches,
 * listings, reads, change detection, removals, counters); a format only
 * parses. Mapping table: docs/IMPORT.md.
 *
 * HOW A FORMAT PLUGS IN
 *   1. Write daemon/zk/formats/<name>.c defining
 *          const struct fmt_ops fmt_<name> = { .name = "<name>", ... };
 *      with a parse function that builds the document with the fmt_doc_*
 *      helpers below (they derive the id, apply the limits, add the
 *      `source` tag). It must not crash or leak on any bytes (a libFuzzer
 *      harness, fuzz/fuzz_formats.c, runs every format on random input).
 *   2. Add `extern const struct fmt_ops fmt_<name>;` below and its address
 *      to the table in formats.c, and the file to formats.cmake.
 *   3. Add its row to docs/IMPORT.md and a unit test in tests/unit.
 * Nothing else changes: config (`import = <name> [BASE] ...`), the engine,
 * the status counters and the metrics pick it up from the table.
 *
 * Threads: parse functions are pure (no global state) and may run on any
 * thread; the engine calls them on zk_sync's worker thread.
 */
#ifndef DISC_FMT_FORMAT_H
#define DISC_FMT_FORMAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FMT_SOURCES_MAX    16  /* import sources per discd */
#define FMT_SOURCE_NAME    64  /* bytes of a source name, NUL included */
#define FMT_PATH_MAX       512 /* bytes of a base path, NUL included */
#define FMT_WHY_MAX        160 /* bytes of a parse error, NUL included */
#define FMT_DEFAULT_WEIGHT 10  /* discd's own default weight (Hertz/Kitex default too) */

/* Where instance nodes live below the base path. */
enum fmt_layout {
    /* <base>/<service node>[/<instance_dir>]/<instance node>: every child of
     * the base is a service (Dubbo, Kitex/Hertz, Curator). */
    FMT_LAYOUT_SERVICES,
    /* <base>/<instance node>: the base itself is one service (ServerSets);
     * its name comes from the source's `service=` or the base's last
     * component. */
    FMT_LAYOUT_SINGLE,
};

struct fmt_ops;

/* One configured import source: `import = FORMAT [BASE] [name=N] [service=S]`. */
struct fmt_source {
    const struct fmt_ops *fmt;
    char name[FMT_SOURCE_NAME]; /* the `source` tag value; default: the format's name */
    char base[FMT_PATH_MAX];    /* absolute, no trailing '/' except "/" itself */
    char service[256];          /* FMT_LAYOUT_SINGLE: the service name */
};

/* One foreign instance node, as the engine hands it to a format. */
struct fmt_node {
    const struct fmt_source *src;
    const char *path;        /* the node's full path */
    const char *service_dir; /* SERVICES: the service node's name (raw znode name);
                              * SINGLE: src->service */
    const char *name;        /* the node's own name (last path component) */
    const char *data;        /* needs_data: its data, NUL-terminated (may hold NULs); else NULL */
    size_t len;              /* bytes of data */
    int64_t ctime_ms;        /* stat ctime: when it was created (0: unknown) */
};

struct fmt_ops {
    const char *name;         /* the format's name in config: [a-z0-9-]+ */
    const char *summary;      /* one line: the layout, for --help and docs */
    const char *default_base; /* used when the config line gives none; NULL: required */
    enum fmt_layout layout;
    /* SERVICES only: instances sit under <service node>/<instance_dir>
     * (Dubbo: "providers"); NULL: directly under the service node. */
    const char *instance_dir;
    /* The engine reads a node's data (and watches it for in-place changes)
     * only if true; otherwise the name says everything (Dubbo). */
    bool needs_data;
    /* Is a child of a service node (or of its instance_dir) one of this
     * format's instance nodes? Others are skipped and counted as bad names,
     * never read. NULL: every child is. */
    bool (*is_instance)(const char *name);
    /* Is a child of the base a service node? Others are ignored (not
     * counted: e.g. "zookeeper" under "/"). NULL: every child is. */
    bool (*is_service)(const char *name);
    /*
     * Map one node to a native instance document (the JSON that
     * instance_from_document reads), built with fmt_doc_*. 0 and *doc (a
     * new reference), or -EINVAL with a reason in why[FMT_WHY_MAX]
     * ("bad URL encoding in the node name", "no port", ...): the engine
     * skips the node and counts it. -ENOMEM on out-of-memory.
     * 0 with *doc NULL: a valid node this format does not import by rule
     * (Curator: a document discd exported itself, which the native tree
     * already carries); the engine ignores it and counts it in `ignored`,
     * not as bad data.
     */
    int (*parse)(const struct fmt_node *node, json_t **doc, char *why);
};

/* The formats, in the order --help lists them. */
extern const struct fmt_ops fmt_dubbo;
extern const struct fmt_ops fmt_serverset;
extern const struct fmt_ops fmt_kitex;
extern const struct fmt_ops fmt_curator;

/* The format called name, or NULL. */
const struct fmt_ops *fmt_find(const char *name);

/* Every format: n_out receives the count. */
const struct fmt_ops *const *fmt_all(size_t *n_out);

/*
 * Parse one `import` config value "FORMAT [BASE] [name=NAME] [service=NAME]"
 * into *out. 0, or -EINVAL with a message in err[errlen] naming what is
 * wrong (unknown format, listing the known ones; relative base; bad name).
 */
int fmt_source_parse(const char *text, struct fmt_source *out, char *err, size_t errlen);

/*
 * Check a set of sources against each other and discd's own root: names
 * unique, no two sources of one format on the same base, no base inside
 * zk_root (or zk_root inside a FMT_LAYOUT_SINGLE base). 0 or -EINVAL with
 * err naming the two sources.
 */
int fmt_sources_check(const struct fmt_source *src, size_t n, const char *zk_root, char *err,
                      size_t errlen);

/* ---- building a document (for parse functions) ------------------------- */

/* A document being built; fields are private to fmt_common.c. */
struct fmt_doc {
    json_t *doc, *tags, *eps;
    unsigned n_tags, dropped;
    const struct fmt_node *node;
};

/*
 * Start the document of node: "id" is foreign_id lowercased if it is a
 * canonical UUID, else a name-based UUID (SHA-1, RFC 4122 v5) of the
 * format's name and the node's path, so the same node has the same id on
 * every host and after every restart; a non-UUID foreign_id (not NULL, at
 * most 255 bytes) is kept as the tag "foreign_id". "service", "host",
 * "address" (host:port, [v6]:port for IPv6) and "weight"
 * (FMT_DEFAULT_WEIGHT) are set, "registered_at_ms" from the node's ctime.
 * -EINVAL with why (empty service or host, port not 1..65535), -ENOMEM.
 */
int fmt_doc_begin(struct fmt_doc *d, const struct fmt_node *node, const char *foreign_id,
                  const char *service, const char *host, long port, char *why);

/* Set a string field ("version", "health", "az"). 0 or -ENOMEM. */
int fmt_doc_set_str(struct fmt_doc *d, const char *field, const char *value);

/* Set the weight, clamped to 1..10000. 0 or -ENOMEM. */
int fmt_doc_set_weight(struct fmt_doc *d, long long weight);

/*
 * Add a tag. Tags that do not fit the instance model (key 1..64 printable
 * bytes, value at most 255 bytes, at most 30 foreign tags, the key
 * "source" is the engine's) are dropped and counted: the document then
 * carries "tags_dropped" = the count. 0 (added or dropped) or -ENOMEM.
 */
int fmt_doc_tag(struct fmt_doc *d, const char *key, const char *value);

/* Add an endpoint by name (at most 64; longer names or more are dropped
 * and counted like tags). 0 or -ENOMEM. */
int fmt_doc_endpoint(struct fmt_doc *d, const char *name);

/* Add the endpoint `name` and the tag "endpoint.<name>" = host:port
 * ([v6]:port for IPv6), as formats with named extra ports do. 0 or -ENOMEM. */
int fmt_doc_named_endpoint(struct fmt_doc *d, const char *name, const char *host, long port);

/* Finish: adds "source" and "tags_dropped", returns the document (the
 * builder's reference). */
json_t *fmt_doc_end(struct fmt_doc *d);

/* Drop a document being built (after an error). */
void fmt_doc_abort(struct fmt_doc *d);

/* ---- small shared parsers ----------------------------------------------- */

/* node's data as a JSON object (duplicate keys refused); NULL with why
 * ("not JSON: <jansson's reason>", "not a JSON object") if it is not one. */
json_t *fmt_json_object(const struct fmt_node *node, char *why);

/*
 * Percent-decode src[0..len) into dst[0..dstlen) (NUL-terminated; '+' is
 * kept). -EINVAL on a bad escape ("%" not followed by two hex digits) or an
 * encoded NUL, -EILSEQ if the decoded bytes are not valid UTF-8, -E2BIG if
 * it does not fit. Returns the decoded length.
 */
long fmt_url_decode(const char *src, size_t len, char *dst, size_t dstlen);

/*
 * Split "host:port" / "[v6]:port" (the port 1..65535) into host[hostlen]
 * and *port. 0 or -EINVAL.
 */
int fmt_split_hostport(const char *s, char *host, size_t hostlen, long *port);

#endif /* DISC_FMT_FORMAT_H */
