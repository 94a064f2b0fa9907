/* SPDX-License-Identifier: MIT */
/* fastreq.c — scanning register and deregister lines without jansson
 * (see fastreq.h). Every refusal here means "not taken": return 0 and let
 * jansson parse the line. */
#include "fastreq.h"

#include <string.h>

struct scan {
    const char *p, *end;
    char *out, *out_end; /* copies of strings, NUL-terminated */
    struct ctl_fast *f;
    unsigned n_objs;
};

static int peek(const struct scan *s)
{
    return s->p < s->end ? (unsigned char)*s->p : -1;
}

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t'))
        s->p++;
}

/* A string at s->p (its opening quote): printable ASCII, no escapes.
 * Copied out NUL-terminated; NULL if not taken. */
static const char *scan_string(struct scan *s, size_t *len)
{
    const char *start = ++s->p;
    while (s->p < s->end && *s->p != '"') {
        unsigned char ch = (unsigned char)*s->p;
        if (ch < 0x20 || ch >= 0x7f || ch == '\\')
            return NULL;
        s->p++;
    }
    if (s->p >= s->end)
        return NULL;
    size_t n = (size_t)(s->p - start);
    if ((size_t)(s->out_end - s->out) < n + 1)
        return NULL;
    char *r = s->out;
    memcpy(r, start, n);
    r[n] = '\0';
    s->out += n + 1;
    s->p++; /* closing quote */
    *len = n;
    return r;
}

/* A non-negative integer without fraction or exponent, at most 18 digits
 * (so no overflow), no leading zero. false if not taken. */
static bool scan_int(struct scan *s, json_int_t *out)
{
    const char *start = s->p;
    json_int_t v = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        if (s->p - start == 18)
            return false; /* 19 digits may not fit: jansson's */
        v = v * 10 + (*s->p - '0');
        s->p++;
    }
    size_t n = (size_t)(s->p - start);
    if (n == 0 || (n > 1 && *start == '0'))
        return false;
    int c = peek(s);
    if (c != ' ' && c != '\t' && c != ',' && c != '}')
        return false; /* ".", "e", a letter, the end of the line: jansson's */
    *out = v;
    return true;
}

/* An object at s->p (its "{"), members into a new flat object; depth 0 is
 * the request. false if not taken. */
static bool scan_object(struct scan *s, unsigned depth, const struct instance_fobj **out)
{
    if (s->n_objs == CTL_FAST_OBJS)
        return false;
    struct instance_fobj *o = &s->f->objs[s->n_objs++];
    o->n = 0;
    s->p++;
    skip_ws(s);
    if (peek(s) == '}') {
        s->p++;
        *out = o;
        return true;
    }
    for (;;) {
        skip_ws(s);
        if (peek(s) != '"' || o->n == INSTANCE_FOBJ_MAX)
            return false;
        size_t klen;
        const char *key = scan_string(s, &klen);
        if (!key)
            return false;
        for (unsigned i = 0; i < o->n; i++) {
            if (strcmp(o->v[i].key, key) == 0)
                return false; /* a duplicate: jansson refuses it, with its message */
        }
        skip_ws(s);
        if (peek(s) != ':')
            return false;
        s->p++;
        skip_ws(s);
        struct instance_fval *v = &o->v[o->n];
        memset(v, 0, sizeof(*v));
        v->key = key;
        int c = peek(s);
        if (c == '"') {
            v->type = IFV_STR;
            if (!(v->str = scan_string(s, &v->len)))
                return false;
        } else if (c >= '0' && c <= '9') {
            v->type = IFV_INT;
            if (!scan_int(s, &v->num))
                return false;
        } else if (c == '{' && depth < 2) {
            v->type = IFV_OBJ;
            if (!scan_object(s, depth + 1, &v->obj))
                return false;
        } else {
            return false;
        }
        o->n++;
        skip_ws(s);
        c = peek(s);
        s->p++;
        if (c == '}') {
            *out = o;
            return true;
        }
        if (c != ',')
            return false;
    }
}

int ctl_fast_scan(const char *line, size_t len, struct ctl_fast *out)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    if (len == 0 || len > CTL_FAST_LINE_MAX)
        return 0;
    struct scan s = {.p = line,
                     .end = line + len,
                     .out = out->text,
                     .out_end = out->text + sizeof(out->text),
                     .f = out};
    out->op = 0;
    out->has_seq = false;
    out->seq = 0;
    out->instance = out->check = NULL;
    out->id = NULL;
    skip_ws(&s);
    const struct instance_fobj *top;
    if (peek(&s) != '{' || !scan_object(&s, 0, &top))
        return 0;
    skip_ws(&s);
    if (s.p != s.end)
        return 0; /* something after the object */
    const char *op = NULL;
    for (unsigned i = 0; i < top->n; i++) {
        const struct instance_fval *v = &top->v[i];
        if (strcmp(v->key, "op") == 0 && v->type == IFV_STR)
            op = v->str;
        else if (strcmp(v->key, "seq") == 0 && v->type == IFV_INT) {
            out->has_seq = true;
            out->seq = v->num;
        } else if (strcmp(v->key, "instance") == 0 && v->type == IFV_OBJ)
            out->instance = v->obj;
        else if (strcmp(v->key, "check") == 0 && v->type == IFV_OBJ)
            out->check = v->obj;
        else if (strcmp(v->key, "id") == 0 && v->type == IFV_STR)
            out->id = v->str;
        else
            return 0; /* another member, or one of another type */
    }
    if (!op)
        return 0;
    if (strcmp(op, "register") == 0 && out->instance && !out->id)
        out->op = CTL_FAST_REGISTER;
    else if (strcmp(op, "deregister") == 0 && out->id && !out->instance && !out->check)
        out->op = CTL_FAST_DEREGISTER;
    else
        return 0;
    return 1;
}
