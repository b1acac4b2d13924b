/* cases.h: reading the tokenizer case files of tests/data (JSON lines with
 * a "name", the text as "text" or as "hex" bytes, and arrays of reference
 * ids under one or two keys), for test_tokenizer and test_wordpiece.
 * Header-only; needs tap.h. */
#ifndef MT_TEST_CASES_H
#define MT_TEST_CASES_H
#include "core/io.h"
#include "core/json.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned hexval(const char *s, int k)
{
    unsigned v = 0;
    for (int i = 0; i < k; i++) v = v << 4 | (unsigned)mt_json_hexval(s[i]);
    return v;
}

/* The value of string field `key` of a JSON line, decoded to bytes (out has
 * room for the whole line). Returns the length, or -1 when absent. */
static long json_str_field(const char *line, const char *key, char *out)
{
    const char *err;
    size_t n, at;
    char *s = mt_json_get_string(line, strlen(line), key, &n, &err, &at);
    if (!s) return -1;
    memcpy(out, s, n); /* decoding never lengthens a string */
    free(s);
    return (long)n;
}

/* the integers of field `key` (an array) into ids; returns the count or -1 */
static long json_ids_field(const char *line, const char *key, int32_t *ids)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return -1;
    p = strchr(p, '[');
    if (!p) return -1;
    p++;
    long n = 0;
    for (;;) {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ']') return n;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) return -1;
        ids[n++] = (int32_t)v;
        p = end;
    }
}

struct case_ {
    char *text; /* bytes */
    size_t len;
    int32_t *ids[2]; /* the arrays of the two keys asked for */
    size_t nids[2];
    char name[128];
    char *line; /* the JSON line itself, for other fields */
};

/* The lines of SRCDIR/tests/data/FILE; key1 may be NULL. */
static struct case_ *load_cases(const char *srcdir, const char *file, const char *key0,
                                const char *key1, size_t *count)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/tests/data/%s", srcdir, file);
    size_t len;
    char *all = mt_read_file(path, &len, NULL);
    size_t cap = 64, n = 0;
    struct case_ *cs = malloc(cap * sizeof *cs);
    char *line = all;
    while (line < all + len) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        size_t ll = strlen(line);
        if (ll > 0) {
            if (n == cap) cs = realloc(cs, (cap *= 2) * sizeof *cs);
            struct case_ *c = &cs[n];
            c->line = strdup(line);
            c->text = malloc(ll + 1);
            long tl = json_str_field(line, "text", c->text);
            if (tl < 0) { /* hex-encoded bytes */
                char *hex = malloc(ll + 1);
                long hl = json_str_field(line, "hex", hex);
                tl = hl < 0 ? 0 : hl / 2;
                for (long k = 0; k < tl; k++) c->text[k] = (char)hexval(hex + 2 * k, 2);
                free(hex);
            }
            c->len = (size_t)tl;
            const char *keys[2] = {key0, key1};
            for (int k = 0; k < 2; k++) {
                c->ids[k] = malloc((ll + 1) * sizeof *c->ids[k]);
                long ni = keys[k] ? json_ids_field(line, keys[k], c->ids[k]) : -1;
                c->nids[k] = ni < 0 ? 0 : (size_t)ni;
            }
            char nm[sizeof c->name];
            long nml = json_str_field(line, "name", nm);
            if (nml < 0) snprintf(c->name, sizeof c->name, "line %zu", n + 1);
            else snprintf(c->name, sizeof c->name, "%.*s", (int)nml, nm);
            n++;
        }
        if (!nl) break;
        line = nl + 1;
    }
    free(all);
    *count = n;
    return cs;
}

static void free_cases(struct case_ *cs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(cs[i].text);
        free(cs[i].ids[0]);
        free(cs[i].ids[1]);
        free(cs[i].line);
    }
    free(cs);
}

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    char line[600];
    size_t o = 0;
    for (size_t i = 0; i < n && o < sizeof line - 20; i++)
        o += (size_t)snprintf(line + o, sizeof line - o, "%s%d", i ? " " : "", ids[i]);
    tap_diag("  %s: [%s]%s", what, line, o >= sizeof line - 20 ? " ..." : "");
}

#endif
