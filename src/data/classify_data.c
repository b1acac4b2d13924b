/* classify_data.c: see classify_data.h */
#include "data/classify_data.h"
#include "core/error.h"
#include "core/io.h"
#include "core/json_value.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HINT_TSV "a TSV line is TEXT<TAB>LABEL; JSON lines are {\"text\": ..., \"label\": ...}"

/* the label of text s (len n), or -1 when it is none of them */
static int parse_label(const struct mt_class_read *o, const char *s, size_t n)
{
    for (int k = 0; k < o->nnames; k++)
        if (strlen(o->names[k]) == n && memcmp(o->names[k], s, n) == 0) return k;
    if (n == 0 || n > 9) return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = 10 * v + (s[i] - '0');
    }
    return v;
}

MT_NORETURN static void bad_label(const struct mt_class_data *d, long line, const char *s, size_t n,
                                  const struct mt_class_read *o)
{
    char hint[256];
    int at = snprintf(hint, sizeof hint, "labels are 0..%d", o->num_classes - 1);
    for (int k = 0; k < o->nnames && at < (int)sizeof hint - 40; k++)
        at += snprintf(hint + at, sizeof hint - (size_t)at, "%s%s", k ? ", " : " or ", o->names[k]);
    snprintf(hint + at, sizeof hint - (size_t)at, " (--num-classes %d)", o->num_classes);
    mt_user_error(hint, "%s:%ld: label '%.*s' is not one of the %d classes", d->path, line,
                  (int)(n > 60 ? 60 : n), s, o->num_classes);
}

static void add(struct mt_class_data *d, size_t *cap, const struct mt_tokenizer *tok, const char *text,
                size_t n, int label, long line)
{
    if (d->n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        d->ex = realloc(d->ex, *cap * sizeof *d->ex);
        if (!d->ex) mt_die("out of memory");
    }
    struct mt_class_example *e = &d->ex[d->n++];
    e->ids = mt_tokenizer_encode_all(tok, text, n, &e->n);
    e->label = label;
    e->line = line;
    if (e->n == 0) mt_user_error("every example needs some text", "%s:%ld: the text is empty", d->path, line);
}

/* one JSON line (kept when its split is the one asked for) */
static void json_line(struct mt_class_data *d, size_t *cap, const struct mt_tokenizer *tok,
                      const struct mt_class_read *o, const char *s, size_t n, long line)
{
    struct mt_jvalue v;
    char err[200];
    if (mt_json_parse(s, n, &v, err, sizeof err) != 0)
        mt_user_error(HINT_TSV, "%s:%ld: %s", d->path, line, err);
    const char *split = mt_json_get_str(&v, "split");
    if (split && (strcmp(split, "train") == 0) != (o->want_train != 0)) {
        mt_json_free(&v);
        return;
    }
    const char *text = mt_json_get_str(&v, o->text_key);
    if (!text)
        mt_user_error(HINT_TSV, "%s:%ld: no string \"%s\" in the object", d->path, line, o->text_key);
    const struct mt_jvalue *lv = mt_json_get(&v, o->label_key);
    int label = -1;
    if (!lv) {
        if (!o->labels_optional)
            mt_user_error(HINT_TSV, "%s:%ld: no \"%s\" in the object", d->path, line, o->label_key);
    } else {
        const char *ls = lv->type == MT_J_STRING ? lv->str : lv->type == MT_J_NUMBER ? lv->str : "";
        label = parse_label(o, ls, strlen(ls));
        if (label < 0 || label >= o->num_classes) bad_label(d, line, ls, strlen(ls), o);
    }
    add(d, cap, tok, text, strlen(text), label, line);
    mt_json_free(&v);
}

static void tsv_line(struct mt_class_data *d, size_t *cap, const struct mt_tokenizer *tok,
                     const struct mt_class_read *o, const char *s, size_t n, long line)
{
    const char *tab = NULL;
    for (size_t i = n; i > 0; i--)
        if (s[i - 1] == '\t') {
            tab = s + i - 1;
            break;
        }
    if (!tab) {
        if (o->labels_optional) {
            add(d, cap, tok, s, n, -1, line);
            return;
        }
        mt_user_error(HINT_TSV, "%s:%ld: no tab: the label column is missing", d->path, line);
    }
    const char *ls = tab + 1;
    size_t ln = (size_t)(s + n - ls);
    while (ln > 0 && (ls[ln - 1] == ' ' || ls[ln - 1] == '\r')) ln--;
    const int label = parse_label(o, ls, ln);
    if (line == 1 && label < 0) return; /* a header ("sentence<TAB>label") */
    if (label < 0 || label >= o->num_classes) bad_label(d, line, ls, ln, o);
    add(d, cap, tok, s, (size_t)(tab - s), label, line);
}

void mt_class_data_read(struct mt_class_data *d, const char *path, const struct mt_tokenizer *tok,
                        const struct mt_class_read *o)
{
    memset(d, 0, sizeof *d);
    snprintf(d->path, sizeof d->path, "%s", path);
    size_t len, cap = 0;
    char *text = mt_read_file(path, &len, "the classification data");
    int json = -1;
    long line = 0;
    for (size_t i = 0; i < len;) {
        const char *s = text + i, *nl = memchr(s, '\n', len - i);
        size_t n = nl ? (size_t)(nl - s) : len - i;
        i += n + 1;
        line++;
        size_t k = 0;
        while (k < n && (s[k] == ' ' || s[k] == '\r')) k++;
        if (k == n) continue;
        if (json < 0) json = s[k] == '{';
        if (json) json_line(d, &cap, tok, o, s, n, line);
        else tsv_line(d, &cap, tok, o, s, n, line);
    }
    free(text);
    if (d->n == 0) mt_user_error(HINT_TSV, "%s holds no examples", path);
}

int mt_class_names(char *buf, const char **names, int max)
{
    int n = 0;
    for (char *p = buf; p && *p && n < max;) {
        char *c = strchr(p, ',');
        if (c) *c = 0;
        names[n++] = p;
        p = c ? c + 1 : NULL;
    }
    return n;
}

void mt_class_data_free(struct mt_class_data *d)
{
    for (size_t i = 0; i < d->n; i++) free(d->ex[i].ids);
    free(d->ex);
    memset(d, 0, sizeof *d);
}

void mt_class_batch(const struct mt_tokenizer *tok, const struct mt_class_example *const *ex, int B,
                    int T, int bert, int32_t *tokens, int32_t *types, int32_t *lengths, int32_t *labels)
{
    for (int b = 0; b < B; b++) {
        const struct mt_class_example *e = ex[b];
        int32_t *t = tokens + (size_t)b * T;
        int n = 0;
        if (bert) {
            const size_t keep = e->n < (size_t)(T - 2) ? e->n : (size_t)(T - 2);
            t[n++] = tok->cls;
            for (size_t i = 0; i < keep; i++) t[n++] = e->ids[i];
            t[n++] = tok->sep;
        } else {
            const size_t keep = e->n < (size_t)T ? e->n : (size_t)T;
            for (size_t i = 0; i < keep; i++) t[n++] = e->ids[i];
        }
        lengths[b] = n;
        labels[b] = e->label < 0 ? 0 : e->label;
        for (int i = 0; i < T; i++) {
            if (types) types[(size_t)b * T + i] = 0;
            if (i >= n) t[i] = bert ? tok->pad : 0;
        }
    }
}
