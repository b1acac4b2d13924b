/* trace.c: see trace.h */
#include "plot/trace.h"
#include "core/error.h"
#include "core/io.h"
#include "core/json_value.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mt_series_push(struct mt_series *s, double x, double y)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->x = realloc(s->x, (size_t)s->cap * sizeof *s->x);
        s->y = realloc(s->y, (size_t)s->cap * sizeof *s->y);
        if (!s->x || !s->y) mt_die("out of memory");
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
}

/* member key of a line: its number, NaN for null, and 0 when absent */
static int value(const struct mt_jvalue *o, const char *key, double *out)
{
    const struct mt_jvalue *v = mt_json_get(o, key);
    if (!v) return 0;
    *out = v->type == MT_J_NUMBER ? v->num : NAN;
    return 1;
}

void mt_trace_read(struct mt_trace *t, const char *path)
{
    memset(t, 0, sizeof *t);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strlen(base);
    if (bl > 6 && strcmp(base + bl - 6, ".jsonl") == 0) bl -= 6;
    else if (bl > 5 && strcmp(base + bl - 5, ".json") == 0) bl -= 5;
    snprintf(t->name, sizeof t->name, "%.*s", (int)bl, base);

    size_t len;
    char *text = mt_read_file(path, &len, "trace");
    long lineno = 0;
    for (char *line = text; line < text + len;) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        const size_t n = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
        lineno++;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k < n) {
            struct mt_jvalue v;
            char err[200];
            if (mt_json_parse(line, n, &v, err, sizeof err) != 0)
                mt_user_error("plot reads the JSON lines of train --log-json", "%s:%ld: %s", path, lineno, err);
            double it, y;
            if (!value(&v, "iteration", &it) || !isfinite(it))
                mt_user_error("plot reads the JSON lines of train --log-json", "%s:%ld: no \"iteration\"",
                              path, lineno);
            if (value(&v, "loss", &y)) mt_series_push(&t->loss, it, y);
            if (value(&v, "val_loss", &y)) mt_series_push(&t->val_loss, it, y);
            if (value(&v, "lr", &y)) mt_series_push(&t->lr, it, y);
            if (value(&v, "tokens_per_sec", &y)) mt_series_push(&t->tokens_per_sec, it, y);
            mt_json_free(&v);
        }
        line += n + 1;
    }
    free(text);
    if (t->loss.n == 0 && t->val_loss.n == 0)
        mt_user_error("give the file train --log-json wrote", "%s holds no \"loss\" or \"val_loss\"", path);
}

static void series_free(struct mt_series *s)
{
    free(s->x);
    free(s->y);
    memset(s, 0, sizeof *s);
}

void mt_trace_free(struct mt_trace *t)
{
    series_free(&t->loss);
    series_free(&t->val_loss);
    series_free(&t->lr);
    series_free(&t->tokens_per_sec);
}
