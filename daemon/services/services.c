/* SPDX-License-Identifier: MIT */
/* services.c — static service definitions from a directory (see services.h). */
#include "services.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uuid/uuid.h>

#include "log.h"

#define MAX_FILE_BYTES (16u << 20)

/* Namespace of the name-based ids of definitions without "id". */
static const char ID_NAMESPACE[] = "6d0e2f5c-93a4-4b8e-b1f7-4c2a9e7d3b15";

struct sdef {
    char id[DISC_ID_LEN + 1];
    char file[256]; /* base name */
    int line;
    char *canon; /* the definition, canonical JSON: detects changes */
    struct instance *inst;
};

struct sset {
    struct sdef *v;
    size_t n, cap;
};

struct services {
    char dir[4096];
    uint32_t owner_uid;
    struct sset cur;
};

static void sdef_clear(struct sdef *d)
{
    free(d->canon);
    instance_unref(d->inst);
    d->canon = NULL;
    d->inst = NULL;
}

static void sset_free(struct sset *s)
{
    for (size_t i = 0; i < s->n; i++)
        sdef_clear(&s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static struct sdef *sset_find(struct sset *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].id, id) == 0)
            return &s->v[i];
    return NULL;
}

/* Append a zeroed slot. */
static struct sdef *sset_push(struct sset *s)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        struct sdef *nv = realloc(s->v, ncap * sizeof(*nv));
        if (!nv)
            return NULL;
        s->v = nv;
        s->cap = ncap;
    }
    memset(&s->v[s->n], 0, sizeof(s->v[0]));
    return &s->v[s->n++];
}

struct services *services_new(const char *dir, uint32_t owner_uid)
{
    struct services *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    snprintf(s->dir, sizeof(s->dir), "%s", dir && *dir ? dir : SERVICES_DEFAULT_DIR);
    s->owner_uid = owner_uid;
    return s;
}

void services_free(struct services *s)
{
    if (!s)
        return;
    sset_free(&s->cur);
    free(s);
}

size_t services_count(const struct services *s)
{
    return s ? s->cur.n : 0;
}

int services_has(const struct services *s, const char *id)
{
    return s && sset_find((struct sset *)&s->cur, id) != NULL;
}

/* ---- parsing ---- */

struct load {
    struct services *s;
    const struct instance_defaults *def;
    json_t *errors;
    struct sset next;
    char (*failed_files)[256]; /* files that could not be read at all */
    size_t n_failed_files;
    char (*failed_ids)[DISC_ID_LEN + 1]; /* entries in error whose id is known */
    size_t n_failed_ids;
    int oom;
};

static void report(struct load *l, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(struct load *l, const char *file, int line, const char *fmt, ...)
{
    char msg[700];
    int n = snprintf(msg, sizeof(msg), "%s/%s:%d: ", l->s->dir, file, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    log_warn("services: %s", msg);
    if (json_array_append_new(l->errors, json_string(msg)) < 0)
        l->oom = 1;
}

static void fail_id(struct load *l, const char *id)
{
    void *nv = realloc(l->failed_ids, (l->n_failed_ids + 1) * sizeof(*l->failed_ids));
    if (!nv) {
        l->oom = 1;
        return;
    }
    l->failed_ids = nv;
    snprintf(l->failed_ids[l->n_failed_ids++], DISC_ID_LEN + 1, "%s", id);
}

static void fail_file(struct load *l, const char *file)
{
    void *nv = realloc(l->failed_files, (l->n_failed_files + 1) * sizeof(*l->failed_files));
    if (!nv) {
        l->oom = 1;
        return;
    }
    l->failed_files = nv;
    snprintf(l->failed_files[l->n_failed_files++], 256, "%s", file);
}

/*
 * Byte offsets of the top-level values of a JSON text: of the value itself
 * for an object, of each element for an array. Returns the count found (at
 * most max). The text is already known to be valid JSON.
 */
static size_t element_offsets(const char *t, size_t len, size_t *off, size_t max)
{
    size_t i = 0;
    while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
        i++;
    if (i >= len)
        return 0;
    if (t[i] != '[') {
        off[0] = i;
        return 1;
    }
    size_t n = 0;
    int depth = 0;
    bool in_str = false, expect = true;
    for (; i < len; i++) {
        char c = t[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        if (depth == 1 && expect && c != ']') {
            if (n < max)
                off[n] = i;
            n++;
            expect = false;
        }
        if (c == '"')
            in_str = true;
        else if (c == '[' || c == '{')
            depth++;
        else if (c == ']' || c == '}')
            depth--;
        else if (c == ',' && depth == 1)
            expect = true;
    }
    return n < max ? n : max;
}

static int line_of(const char *t, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off; i++)
        line += t[i] == '\n';
    return line;
}

static void derive_id(const char *file, size_t index, char out[DISC_ID_LEN + 1])
{
    uuid_t ns, u;
    uuid_parse(ID_NAMESPACE, ns);
    char name[300];
    int n = snprintf(name, sizeof(name), "%s#%zu", file, index);
    uuid_generate_sha1(u, ns, name, (size_t)n);
    uuid_unparse_lower(u, out);
}

static void load_entry(struct load *l, const char *file, int line, size_t index, json_t *e)
{
    char id[DISC_ID_LEN + 1];
    if (!json_is_object(e)) {
        report(l, file, line, "entry %zu: a definition must be a JSON object", index + 1);
        return;
    }
    json_t *jid = json_object_get(e, "id");
    if (jid) {
        const char *s = json_string_value(jid);
        if (!s || strlen(s) != DISC_ID_LEN || instance_check_id(s) < 0) {
            report(l, file, line, "entry %zu: id must be a textual UUID (field id)", index + 1);
            return;
        }
        for (size_t i = 0; i < DISC_ID_LEN; i++)
            id[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]);
        id[DISC_ID_LEN] = '\0';
    } else {
        derive_id(file, index, id);
    }
    const char *key;
    json_t *v;
    json_object_foreach(e, key, v)
    {
        if (strcmp(key, "id") && strcmp(key, "instance") && strcmp(key, "check")) {
            report(l, file, line, "entry %zu: unknown member '%s' (expected id, instance, check)",
                   index + 1, key);
            fail_id(l, id);
            return;
        }
    }
    json_t *check = json_object_get(e, "check");
    json_t *none = NULL;
    if (!check)
        check = none = json_pack("{s:s}", "type", "none");
    const char *type = json_string_value(json_object_get(check, "type"));
    if (type && strcmp(type, "session") == 0) {
        report(l, file, line,
               "entry %zu: a session check needs a connection to own the instance; use tcp, "
               "http, ttl or none in a definition file (field check.type)",
               index + 1);
        json_decref(none);
        fail_id(l, id);
        return;
    }
    if (json_is_object(check) && !json_object_get(check, "type")) {
        report(l, file, line, "entry %zu: check.type is required in a definition file", index + 1);
        json_decref(none);
        fail_id(l, id);
        return;
    }
    struct instance_error ierr = {0};
    struct instance *inst = NULL;
    int rc = instance_from_request(json_object_get(e, "instance"), check, l->def, &inst, &ierr);
    if (rc < 0) {
        report(l, file, line, "entry %zu: %s%s%s%s", index + 1, ierr.message,
               ierr.field[0] ? " (field " : "", ierr.field, ierr.field[0] ? ")" : "");
        json_decref(none);
        fail_id(l, id);
        return;
    }
    struct sdef *dup = sset_find(&l->next, id);
    if (dup) {
        report(l, file, line, "entry %zu: id %s is already defined at %s:%d", index + 1, id,
               dup->file, dup->line);
        instance_unref(inst);
        json_decref(none);
        return;
    }
    memcpy(inst->id, id, sizeof(inst->id));
    inst->owner_uid = l->s->owner_uid;
    inst->from_file = true;
    json_t *canon_doc =
        json_pack("{s:O, s:O}", "instance", json_object_get(e, "instance"), "check", check);
    char *canon = canon_doc ? json_dumps(canon_doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(canon_doc);
    json_decref(none);
    struct sdef *d = canon ? sset_push(&l->next) : NULL;
    if (!d) {
        free(canon);
        instance_unref(inst);
        l->oom = 1;
        return;
    }
    memcpy(d->id, id, sizeof(d->id));
    snprintf(d->file, sizeof(d->file), "%s", file);
    d->line = line;
    d->canon = canon;
    d->inst = inst;
}

static void load_file(struct load *l, const char *file)
{
    char path[4400];
    snprintf(path, sizeof(path), "%s/%s", l->s->dir, file);
    FILE *f = fopen(path, "re");
    if (!f) {
        report(l, file, 0, "cannot open: %s", strerror(errno));
        fail_file(l, file);
        return;
    }
    char *text = malloc(MAX_FILE_BYTES + 1);
    size_t len = text ? fread(text, 1, MAX_FILE_BYTES + 1, f) : 0;
    bool err = ferror(f);
    fclose(f);
    if (!text || err || len > MAX_FILE_BYTES) {
        report(l, file, 0, "%s",
               !text ? "out of memory"
               : err ? "read error"
                     : "larger than 16 MiB");
        fail_file(l, file);
        free(text);
        return;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        report(l, file, jerr.line > 0 ? jerr.line : 1, "not valid JSON: %s (column %d)", jerr.text,
               jerr.column);
        fail_file(l, file);
        free(text);
        return;
    }
    size_t n = json_is_array(doc) ? json_array_size(doc) : 1;
    size_t *off = calloc(n + 1, sizeof(*off));
    size_t found = off ? element_offsets(text, len, off, n) : 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(doc) ? json_array_get(doc, i) : doc;
        int line = i < found ? line_of(text, off[i]) : 1;
        load_entry(l, file, line, i, e);
    }
    free(off);
    json_decref(doc);
    free(text);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json names of the directory, sorted. -ENOENT if it does not exist. */
static int list_dir(struct load *l, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(l->s->dir);
    if (!d)
        return -errno;
    size_t cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (e->d_name[0] == '.' || nl < 6 || nl > 255 || strcmp(e->d_name + nl - 5, ".json") != 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(*names, cap * sizeof(*nv));
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            *names = nv;
        }
        if (!((*names)[*n] = strdup(e->d_name))) {
            rc = -ENOMEM;
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (*n)
        qsort(*names, *n, sizeof(**names), cmp_name);
    return rc;
}

static bool file_failed(const struct load *l, const char *file)
{
    for (size_t i = 0; i < l->n_failed_files; i++)
        if (strcmp(l->failed_files[i], file) == 0)
            return true;
    return false;
}

static bool id_failed(const struct load *l, const char *id)
{
    for (size_t i = 0; i < l->n_failed_ids; i++)
        if (strcmp(l->failed_ids[i], id) == 0)
            return true;
    return false;
}

int services_apply(struct services *s, const struct instance_defaults *def,
                   const struct services_ops *ops, struct services_result *res)
{
    memset(res, 0, sizeof(*res));
    res->errors = json_array();
    struct load l = {.s = s, .def = def, .errors = res->errors};
    if (!res->errors)
        return -ENOMEM;
    char **names = NULL;
    size_t n = 0;
    int rc = list_dir(&l, &names, &n);
    if (rc == -ENOENT || rc == -ENOTDIR) {
        log_debug("services: %s does not exist: no static definitions", s->dir);
        rc = 0;
    } else if (rc < 0) {
        report(&l, ".", 0, "cannot read the directory: %s", strerror(-rc));
        /* unreadable: keep everything as it is */
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return rc == -ENOMEM ? rc : 0;
    }
    for (size_t i = 0; i < n; i++) {
        load_file(&l, names[i]);
        free(names[i]);
    }
    free(names);
    res->files = (unsigned)n;
    char err[256];
    /* Old definitions: unchanged, changed, gone, or kept because in error. */
    struct sset keep = {0};
    for (size_t i = 0; i < s->cur.n; i++) {
        struct sdef *o = &s->cur.v[i];
        struct sdef *nd = sset_find(&l.next, o->id);
        if (!nd && (file_failed(&l, o->file) || id_failed(&l, o->id))) {
            struct sdef *k = sset_push(&keep);
            if (k) {
                *k = *o; /* ownership moves */
                memset(o, 0, sizeof(*o));
                res->kept++;
            }
            continue;
        }
        if (nd && strcmp(nd->canon, o->canon) == 0) {
            instance_unref(nd->inst);
            nd->inst = instance_ref(o->inst);
            res->kept++;
            continue;
        }
        ops->remove(ops->arg, o->id,
                    nd ? "static definition changed" : "static definition removed");
        if (!nd)
            res->removed++;
        else
            nd->line = -nd->line - 1; /* mark: re-register below as "changed" */
    }
    /* New and changed definitions. */
    for (size_t i = 0; i < l.next.n; i++) {
        struct sdef *d = &l.next.v[i];
        bool changed = d->line < 0;
        if (changed)
            d->line = -d->line - 1;
        if (!changed && sset_find(&s->cur, d->id))
            continue; /* unchanged: already registered */
        if (ops->add(ops->arg, d->inst, err) < 0) {
            report(&l, d->file, d->line, "cannot register %s: %s", d->id, err);
            sdef_clear(d);
            d->id[0] = '\0';
            continue;
        }
        if (changed)
            res->changed++;
        else
            res->added++;
    }
    /* The new current set: the loaded definitions plus those kept. */
    sset_free(&s->cur);
    for (size_t i = 0; i < l.next.n; i++) {
        if (!l.next.v[i].id[0])
            continue;
        struct sdef *d = sset_push(&s->cur);
        if (!d) {
            l.oom = 1;
            sdef_clear(&l.next.v[i]);
            continue;
        }
        *d = l.next.v[i];
    }
    for (size_t i = 0; i < keep.n; i++) {
        struct sdef *d = sset_push(&s->cur);
        if (!d) {
            l.oom = 1;
            sdef_clear(&keep.v[i]);
            continue;
        }
        *d = keep.v[i];
    }
    free(l.next.v);
    free(keep.v);
    free(l.failed_files);
    free(l.failed_ids);
    return l.oom ? -ENOMEM : 0;
}
