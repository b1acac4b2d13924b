/* st_tool.c: safetensors files for the shell tests (tests/test_convert.sh).
 *
 *   st_tool diff A B [TOL]     the same tensor names, dtypes and shapes; with
 *                              no TOL the same bytes, else every tensor's
 *                              max |a - b| / max |b| <= TOL. Exit 0 if so, 1
 *                              if not (the first difference on stdout).
 *   st_tool edit IN OUT OP...  a copy with OPs applied (F32/F16/BF16 only):
 *                              drop=NAME, copy=NAME:NEW (an extra
 *                              tensor), transpose=NAME, only=NAME (drop
 *                              every tensor not named by an only=)
 *   st_tool names FILE         the tensor names, one per line
 *   st_tool retype FILE NAME DTYPE
 *                              rewrites NAME's dtype in the header in place
 *                              (a name of the same length: F32 -> I32)
 * Errors exit 2. */
#include "interop/safetensors.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *msg)
{
    fprintf(stderr, "st_tool: %s\n", msg);
    exit(2);
}

static void open_or_die(struct mt_st_file *f, const char *path)
{
    char err[600];
    if (mt_st_open(f, path, err, sizeof err) != 0) die(err);
}

static unsigned char *raw(struct mt_st_file *f, const struct mt_st_tensor *t)
{
    size_t n = (size_t)(t->end - t->begin);
    unsigned char *b = malloc(n + 1);
    if (!b || fseek(f->f, (long)(f->data_start + t->begin), SEEK_SET) != 0 || fread(b, 1, n, f->f) != n)
        die("cannot read a tensor");
    return b;
}

static float *values(struct mt_st_file *f, const struct mt_st_tensor *t)
{
    char err[600];
    float *v = malloc((size_t)mt_st_numel(t) * sizeof *v + 4);
    if (!v || mt_st_read_f32(f, t, v, err, sizeof err) != 0) die(err);
    return v;
}

static int diff(const char *pa, const char *pb, const char *tol_s)
{
    struct mt_st_file a, b;
    open_or_die(&a, pa);
    open_or_die(&b, pb);
    const double tol = tol_s ? atof(tol_s) : -1;
    double worst = 0;
    if (a.n != b.n) return printf("%s has %d tensors, %s %d\n", pa, a.n, pb, b.n), 1;
    for (int i = 0; i < a.n; i++) {
        const struct mt_st_tensor *x = &a.t[i], *y = mt_st_find(&b, x->name);
        if (!y) return printf("%s has no tensor %s\n", pb, x->name), 1;
        if (x->dtype != y->dtype) return printf("%s: dtype %s vs %s\n", x->name, x->dtype_name, y->dtype_name), 1;
        int same_shape = x->ndim == y->ndim;
        for (int d = 0; same_shape && d < x->ndim; d++) same_shape = x->shape[d] == y->shape[d];
        if (!same_shape) return printf("%s: shapes differ\n", x->name), 1;
        if (tol < 0) {
            unsigned char *u = raw(&a, x), *v = raw(&b, y);
            int eq = memcmp(u, v, (size_t)(x->end - x->begin)) == 0;
            free(u);
            free(v);
            if (!eq) return printf("%s: the bytes differ\n", x->name), 1;
            continue;
        }
        float *u = values(&a, x), *v = values(&b, y);
        double e = 0, m = 1e-30;
        for (int64_t k = 0; k < mt_st_numel(x); k++) {
            double d = fabs((double)u[k] - v[k]);
            e = d > e || d != d ? d : e;
            m = fmax(m, fabs(v[k]));
        }
        free(u);
        free(v);
        if (!(e / m <= tol)) return printf("%s: max rel deviation %.3g > %g\n", x->name, e / m, tol), 1;
        worst = fmax(worst, e / m);
    }
    printf("%d tensors %s (max rel deviation %.3g)\n", a.n, tol < 0 ? "bit-identical" : "agree", worst);
    mt_st_close(&a);
    mt_st_close(&b);
    return 0;
}

/* op "<kind>=<arg>" on the tensor `name`: 1 if it is of this kind and names
 * it. copy=OLD:NEW sets *to to NEW. */
static int op_hits(const char *op, const char *kind, const char *name, const char **to)
{
    const size_t k = strlen(kind), n = strlen(name);
    if (strncmp(op, kind, k) != 0 || op[k] != '=') return 0;
    const char *arg = op + k + 1, *colon = strchr(arg, ':');
    if (!to) return strcmp(arg, name) == 0;
    if (!colon || (size_t)(colon - arg) != n || strncmp(arg, name, n) != 0) return 0;
    *to = colon + 1;
    return 1;
}

static int edit(const char *in, const char *out, int nops, char **ops)
{
    struct mt_st_file f;
    open_or_die(&f, in);
    struct mt_st_writer *w = mt_st_writer_new(out);
    for (int pass = 0; pass < 2; pass++) /* declare all, then write all */
        for (int i = 0; i < f.n; i++) {
            const struct mt_st_tensor *t = &f.t[i];
            const char *names[2] = {t->name, NULL};
            int tr = 0, only = 0, listed = 0;
            for (int k = 0; k < nops; k++) {
                if (op_hits(ops[k], "drop", t->name, NULL)) names[0] = NULL;
                only |= strncmp(ops[k], "only=", 5) == 0;
                listed |= op_hits(ops[k], "only", t->name, NULL);
                tr |= op_hits(ops[k], "transpose", t->name, NULL);
                op_hits(ops[k], "copy", t->name, &names[1]);
            }
            if (only && !listed) continue;
            if (tr && t->ndim != 2) die("transpose needs a 2-D tensor");
            const int64_t r = t->shape[0], c = t->ndim == 2 ? t->shape[1] : 1;
            float *v = pass ? values(&f, t) : NULL;
            if (pass && tr) {
                float *u = malloc((size_t)(r * c) * sizeof *u);
                for (int64_t a = 0; a < r; a++)
                    for (int64_t b = 0; b < c; b++) u[b * r + a] = v[a * c + b];
                free(v);
                v = u;
            }
            for (int k = 0; k < 2; k++) {
                if (!names[k]) continue;
                int64_t shape[8];
                memcpy(shape, t->shape, sizeof shape);
                if (tr) shape[0] = c, shape[1] = r;
                if (pass == 0) mt_st_writer_declare(w, names[k], t->dtype, t->ndim, shape);
                else mt_st_writer_data(w, names[k], v);
            }
            free(v);
        }
    mt_st_writer_close(w);
    mt_st_close(&f);
    return 0;
}

static int retype(const char *path, const char *name, const char *dtype)
{
    FILE *f = fopen(path, "r+b");
    if (!f) die("cannot open the file");
    unsigned char len8[8];
    if (fread(len8, 1, 8, f) != 8) die("short file");
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
    char *h = malloc(n + 1);
    if (!h || fread(h, 1, n, f) != n) die("short header");
    h[n] = 0;
    char key[300];
    snprintf(key, sizeof key, "\"%s\"", name);
    char *at = strstr(h, key), *dt = at ? strstr(at, "\"dtype\"") : NULL;
    char *q = dt ? strchr(dt + 7, '"') : NULL, *qe = q ? strchr(q + 1, '"') : NULL;
    if (!qe) die("tensor not found in the header");
    if ((size_t)(qe - q - 1) != strlen(dtype)) die("the new dtype name must have the old one's length");
    memcpy(q + 1, dtype, strlen(dtype));
    if (fseek(f, 8, SEEK_SET) != 0 || fwrite(h, 1, n, f) != n || fclose(f) != 0) die("cannot write");
    free(h);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "diff") == 0) return diff(argv[2], argv[3], argc > 4 ? argv[4] : NULL);
    if (argc >= 4 && strcmp(argv[1], "edit") == 0) return edit(argv[2], argv[3], argc - 4, argv + 4);
    if (argc == 3 && strcmp(argv[1], "names") == 0) {
        struct mt_st_file f;
        open_or_die(&f, argv[2]);
        for (int i = 0; i < f.n; i++) printf("%s\n", f.t[i].name);
        mt_st_close(&f);
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "retype") == 0) return retype(argv[2], argv[3], argv[4]);
    die("usage: st_tool diff A B [TOL] | edit IN OUT OP... | names FILE | retype FILE NAME DTYPE");
    return 2;
}
