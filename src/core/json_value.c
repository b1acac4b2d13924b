/* json_value.c: see json_value.h */
#include "core/json_value.h"
#include "core/error.h"
#include "core/json.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_value(struct mt_json *p, struct mt_jvalue *v, int depth);

static char *dup_range(const unsigned char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) mt_die("out of memory");
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static int literal(struct mt_json *p, const char *word)
{
    size_t n = strlen(word);
    if (p->n - p->i < n || memcmp(p->s + p->i, word, n) != 0) return mt_json_fail(p, MT_JSON_E_VALUE);
    p->i += n;
    return 0;
}

/* appends a member (value slot, and the key for objects) */
static struct mt_jvalue *add_member(struct mt_jvalue *v, int *cap, char *key)
{
    if (v->n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        v->v = realloc(v->v, (size_t)*cap * sizeof *v->v);
        if (v->type == MT_J_OBJECT) v->keys = realloc(v->keys, (size_t)*cap * sizeof *v->keys);
        if (!v->v || (v->type == MT_J_OBJECT && !v->keys)) mt_die("out of memory");
    }
    if (v->type == MT_J_OBJECT) v->keys[v->n] = key;
    memset(&v->v[v->n], 0, sizeof v->v[v->n]);
    return &v->v[v->n++];
}

static int parse_container(struct mt_json *p, struct mt_jvalue *v, int depth, int object)
{
    v->type = object ? MT_J_OBJECT : MT_J_ARRAY;
    const char close = object ? '}' : ']';
    int cap = 0;
    p->i++; /* the opening bracket */
    mt_json_ws(p);
    if (p->i < p->n && p->s[p->i] == (unsigned char)close) {
        p->i++;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        if (object) {
            size_t len = 0, kcap = 0;
            mt_json_ws(p);
            if (mt_json_key(p, &key, &len, &kcap) != 0) {
                free(key);
                return -1;
            }
        }
        struct mt_jvalue *m = add_member(v, &cap, key);
        if (parse_value(p, m, depth + 1) != 0) return -1;
        int r = mt_json_next(p, close);
        if (r == 0) return 0;
        if (r < 0) {
            if (p->i >= p->n) return mt_json_fail(p, object ? MT_JSON_E_OBJECT_EOF : MT_JSON_E_ARRAY_EOF);
            return mt_json_fail(p, object ? MT_JSON_E_OBJECT_SEP : MT_JSON_E_ARRAY_SEP);
        }
    }
}

static int parse_value(struct mt_json *p, struct mt_jvalue *v, int depth)
{
    if (depth > p->max_depth) return mt_json_fail(p, MT_JSON_E_DEPTH);
    mt_json_ws(p);
    if (p->i >= p->n) return mt_json_fail(p, MT_JSON_E_VALUE_END);
    const unsigned char c = p->s[p->i];
    if (c == '{' || c == '[') return parse_container(p, v, depth, c == '{');
    if (c == '"') {
        size_t len = 0, cap = 0;
        v->type = MT_J_STRING;
        if (mt_json_string(p, &v->str, &len, &cap) != 0) return -1;
        if (!v->str) v->str = dup_range((const unsigned char *)"", 0);
        return 0;
    }
    if (c == 't' || c == 'f') {
        v->type = MT_J_BOOL;
        v->num = c == 't';
        return literal(p, c == 't' ? "true" : "false");
    }
    if (c == 'n') {
        v->type = MT_J_NULL;
        return literal(p, "null");
    }
    const size_t start = p->i;
    if (mt_json_number(p) != 0) return -1;
    v->type = MT_J_NUMBER;
    v->str = dup_range(p->s + start, p->i - start);
    v->num = strtod(v->str, NULL);
    if (strcmp(v->str, "NaN") == 0) v->num = NAN;
    return 0;
}

int mt_json_parse(const char *text, size_t len, struct mt_jvalue *out, char *err, size_t errlen)
{
    struct mt_json p;
    mt_json_init(&p, text, len);
    p.flags = MT_JSON_NAN_INFINITY;
    memset(out, 0, sizeof *out);
    int rc = parse_value(&p, out, 0);
    if (rc == 0) {
        mt_json_ws(&p);
        if (p.i != p.n) rc = mt_json_fail_msg(&p, "trailing data after the JSON value");
    }
    if (rc != 0) {
        mt_json_free(out);
        return mt_errf(err, errlen, "%s at byte %zu", p.err ? p.err : "malformed JSON", p.err_at);
    }
    return 0;
}

void mt_json_free(struct mt_jvalue *v)
{
    for (int i = 0; i < v->n; i++) {
        mt_json_free(&v->v[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->v);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

const struct mt_jvalue *mt_json_get(const struct mt_jvalue *obj, const char *key)
{
    if (!obj || obj->type != MT_J_OBJECT) return NULL;
    for (int i = obj->n - 1; i >= 0; i--)
        if (strcmp(obj->keys[i], key) == 0) return &obj->v[i];
    return NULL;
}

int mt_json_get_number(const struct mt_jvalue *obj, const char *key, double *out)
{
    const struct mt_jvalue *v = mt_json_get(obj, key);
    if (!v || v->type != MT_J_NUMBER) return 0;
    *out = v->num;
    return 1;
}

int mt_json_get_int(const struct mt_jvalue *obj, const char *key, long long *out)
{
    const struct mt_jvalue *v = mt_json_get(obj, key);
    if (!v || v->type != MT_J_NUMBER) return 0;
    char *end = NULL;
    long long x = strtoll(v->str, &end, 10);
    if (!end || *end) return 0; /* a fraction or an exponent */
    *out = x;
    return 1;
}

int mt_json_get_bool(const struct mt_jvalue *obj, const char *key, int *out)
{
    const struct mt_jvalue *v = mt_json_get(obj, key);
    if (!v || v->type != MT_J_BOOL) return 0;
    *out = (int)v->num;
    return 1;
}

const char *mt_json_get_str(const struct mt_jvalue *obj, const char *key)
{
    const struct mt_jvalue *v = mt_json_get(obj, key);
    return v && v->type == MT_J_STRING ? v->str : NULL;
}
