/* test_golden.c: megatron-c's GPT against golden values from an independent
 * float64 PyTorch implementation (tests/golden/gen_gpt_golden.py; format in
 * tests/golden/README).
 *
 * For each backend (default "cpu-ref,cpu"; env MT_GOLDEN_BACKENDS overrides,
 * comma-separated): load the golden parameters, forward one batch (logits,
 * loss), backward (every parameter gradient), then 10 AdamW steps from the
 * same start (losses, pre-clip gradient norms, final parameters).
 *
 * Deviation measure for a tensor: max |a - r| / max(max |r|, 1e-6), i.e.
 * relative to the tensor's largest reference magnitude. Scalars: |a-r|/|r|.
 * Tolerances (fp32 against a float64 reference; the numbers in brackets are
 * what float32 PyTorch itself reaches, printed by gen_gpt_golden.py
 * --fp32-drift):
 *   logits          1e-5  [4e-7]
 *   loss            1e-5  [4e-8]
 *   gradients       1e-4  per tensor [5e-7]
 *   step losses     1e-5  every step [3e-7]
 *   step grad norms 1e-4  every step [5e-7]
 *   final params    5e-4  per tensor [2e-5], with two exceptions in
 *                   linear_qkv, where Adam (eps 1e-8) turns rounding noise in
 *                   near-zero gradients into O(lr) updates:
 *     - key rows of linear_qkv.weight: 1e-2 [9e-4 in layer 0];
 *     - key part of linear_qkv.bias: not checked (reported). Its gradient is
 *       identically zero (a per-query constant added to every score leaves
 *       the softmax unchanged), so the float64 reference does not move it
 *       while any fp32 implementation moves it by amplified noise [1.6e-3].
 *
 * Golden file: argv[1], else $MT_GOLDEN, else tests/golden/gpt_tiny.bin
 * under $srcdir or the current directory. A missing or malformed file is a
 * hard error (exit 99). Output is TAP; exit 0 when every test passes. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime, strtok_r */
#endif
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "backend/backend.h"
#include "model/model.h"
#include "model/params.h"
#include "optim/optimizer.h"
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOL_LOGITS 1e-5
#define TOL_LOSS 1e-5
#define TOL_GRAD 1e-4
#define TOL_STEP_LOSS 1e-5
#define TOL_STEP_NORM 1e-4
#define TOL_FINAL 5e-4
#define TOL_FINAL_KEY 1e-2

#include "tap.h"

static void bail(const char *fmt, ...)
{
    va_list ap;
    printf("Bail out! ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(99);
}

/* ---------------------------------------------------------- golden file */
struct rec {
    char *name;
    int ndim;
    uint32_t dims[8];
    size_t n;
    double *d;
};
static struct rec *recs;
static int nrecs;

static int host_is_le(void)
{
    const uint16_t x = 1;
    return *(const unsigned char *)&x == 1;
}

static void swap_bytes(void *p, size_t size)
{
    unsigned char *b = p;
    for (size_t i = 0; i < size / 2; i++) {
        unsigned char t = b[i];
        b[i] = b[size - 1 - i];
        b[size - 1 - i] = t;
    }
}

/* 1 on success, 0 on a clean EOF, bails on a truncated record */
static int read_u32(FILE *f, uint32_t *v, const char *path, int eof_ok)
{
    size_t got = fread(v, 1, 4, f);
    if (got == 0 && eof_ok && feof(f)) return 0;
    if (got != 4) bail("%s: truncated record", path);
    if (!host_is_le()) swap_bytes(v, 4);
    return 1;
}

static void load_golden(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) bail("cannot open golden file %s (regenerate: python3 tests/golden/gen_gpt_golden.py)",
                 path);
    char magic[8];
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "MTGOLD01", 8) != 0)
        bail("%s: not a golden file (bad magic)", path);
    int cap = 0;
    uint32_t len;
    while (read_u32(f, &len, path, 1)) {
        if (len == 0 || len > 4096) bail("%s: bad record name length %u", path, len);
        if (nrecs == cap) {
            cap = cap ? 2 * cap : 128;
            recs = realloc(recs, (size_t)cap * sizeof *recs);
            if (!recs) bail("out of memory");
        }
        struct rec *r = &recs[nrecs];
        memset(r, 0, sizeof *r);
        r->name = malloc(len + 1);
        if (!r->name || fread(r->name, 1, len, f) != len) bail("%s: truncated record", path);
        r->name[len] = 0;
        uint32_t nd;
        read_u32(f, &nd, path, 0);
        if (nd > 8) bail("%s: record %s has %u dims", path, r->name, nd);
        r->ndim = (int)nd;
        r->n = 1;
        for (uint32_t i = 0; i < nd; i++) {
            read_u32(f, &r->dims[i], path, 0);
            r->n *= r->dims[i];
        }
        if (r->n > ((size_t)1 << 28)) bail("%s: record %s too large", path, r->name);
        r->d = malloc((r->n ? r->n : 1) * sizeof(double));
        if (!r->d || fread(r->d, sizeof(double), r->n, f) != r->n)
            bail("%s: truncated data of record %s", path, r->name);
        if (!host_is_le())
            for (size_t i = 0; i < r->n; i++) swap_bytes(&r->d[i], sizeof(double));
        nrecs++;
    }
    fclose(f);
}

static struct rec *find_rec(const char *name)
{
    for (int i = 0; i < nrecs; i++)
        if (strcmp(recs[i].name, name) == 0) return &recs[i];
    return NULL;
}

static struct rec *need_rec(const char *name, size_t n)
{
    struct rec *r = find_rec(name);
    if (!r) bail("golden file has no record %s", name);
    if (n && r->n != n) bail("golden record %s has %zu values, expected %zu", name, r->n, n);
    return r;
}

static int file_exists(const char *p)
{
    FILE *f = fopen(p, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

static const char *golden_path(int argc, char **argv)
{
    static char buf[4096];
    if (argc > 1) return argv[1];
    const char *e = getenv("MT_GOLDEN");
    if (e && *e) return e;
    const char *srcdir = getenv("srcdir");
    const char *rel[] = {"tests/golden/gpt_tiny.bin", "golden/gpt_tiny.bin"};
    if (srcdir && *srcdir)
        for (int i = 0; i < 2; i++) {
            snprintf(buf, sizeof buf, "%s/%s", srcdir, rel[i]);
            if (file_exists(buf)) return buf;
        }
    for (int i = 0; i < 2; i++)
        if (file_exists(rel[i])) return rel[i];
    /* not found: name the first candidate in the error */
    if (srcdir && *srcdir) {
        snprintf(buf, sizeof buf, "%s/%s", srcdir, rel[0]);
        return buf;
    }
    return rel[0];
}

/* ------------------------------------------------------------- helpers */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double max_abs_d(const double *r, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(r[i]) > m) m = fabs(r[i]);
    return m;
}

/* max |a - r| over the elements with mask[i] (mask NULL: all); NaN -> inf */
static double max_abs_err(const float *a, const double *r, size_t n, const char *mask)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        double d = fabs((double)a[i] - r[i]);
        if (!(d == d)) d = INFINITY;
        if (d > m) m = d;
    }
    return m;
}

static double rel_scalar(double a, double r)
{
    double d = fabs(a - r) / fmax(fabs(r), 1e-6);
    return d == d ? d : INFINITY;
}

static int is_qkv(const char *name, const char *suffix)
{
    const char *p = strstr(name, "self_attention.linear_qkv.");
    return p && strcmp(p + strlen("self_attention.linear_qkv."), suffix) == 0;
}

/* mask of the key rows (weight: rows, bias: elements) of a fused QKV tensor
 * laid out per head as [q(HS), k(HS), v(HS)]; elems_per_row = C or 1 */
static void key_mask(char *mask, int C, int HS, size_t elems_per_row)
{
    for (int row = 0; row < 3 * C; row++) {
        int is_key = (row % (3 * HS)) / HS == 1;
        memset(mask + (size_t)row * elems_per_row, is_key, elems_per_row);
    }
}

/* --------------------------------------------------------------- model */
struct golden {
    struct mt_transformer_config cfg;
    int B, T, nsteps;
    double lr, beta1, beta2, eps, wd, clip;
    int32_t *tok, *tgt, *step_tok, *step_tgt;
};

static int32_t *to_i32(const struct rec *r)
{
    int32_t *o = malloc(r->n * sizeof *o);
    for (size_t i = 0; i < r->n; i++) o[i] = (int32_t)r->d[i];
    return o;
}

static void to_f32(float *o, const double *d, size_t n)
{
    for (size_t i = 0; i < n; i++) o[i] = (float)d[i];
}

/* Loads the golden initial parameters; returns 1 on success. Every tensor of
 * the table must have a golden record of the same size and vice versa. */
static int load_params(struct mt_model *m, const char *prefix, char *why, size_t whylen)
{
    int ngold = 0;
    for (int i = 0; i < nrecs; i++)
        if (strncmp(recs[i].name, prefix, strlen(prefix)) == 0) ngold++;
    if (ngold != m->table.n) {
        snprintf(why, whylen, "golden has %d %s tensors, the model table %d", ngold, prefix,
                 m->table.n);
        return 0;
    }
    for (int i = 0; i < nrecs; i++) {
        struct rec *r = &recs[i];
        if (strncmp(r->name, prefix, strlen(prefix)) != 0) continue;
        const char *pname = r->name + strlen(prefix);
        int idx = mt_params_find(&m->table, pname);
        if (idx < 0) {
            snprintf(why, whylen, "model has no parameter %s", pname);
            return 0;
        }
        const struct mt_param *p = &m->table.p[idx];
        int shape_ok = p->numel == r->n && p->ndim == r->ndim && (int64_t)r->dims[0] == p->shape[0] &&
                       (r->ndim == 1 || (int64_t)r->dims[1] == p->shape[1]);
        if (!shape_ok) {
            snprintf(why, whylen, "%s: shape differs from the golden file", pname);
            return 0;
        }
        float *h = malloc(r->n * sizeof *h);
        to_f32(h, r->d, r->n);
        mt_model_set_param(m, idx, h);
        free(h);
    }
    return 1;
}

/* Compares every table tensor (grad or param, as read by getter) with the
 * records "<prefix><name>". Returns the number of tensors above tolerance;
 * *worst / worst_name get the largest deviation. final != 0 applies the
 * linear_qkv key-row rules described at the top. */
static int compare_tensors(struct mt_model *m, const char *prefix,
                           void (*getter)(struct mt_model *, int, float *), double tol, int final,
                           double *worst, char *worst_name, size_t wlen, double *worst_key_w,
                           double *worst_key_b)
{
    int nbad = 0;
    int C = m->cfg.hidden_size, HS = m->cfg.kv_channels;
    char name[256];
    *worst = 0;
    worst_name[0] = 0;
    for (int idx = 0; idx < m->table.n; idx++) {
        const struct mt_param *p = &m->table.p[idx];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        struct rec *r = need_rec(name, p->numel);
        float *a = malloc(p->numel * sizeof *a);
        getter(m, idx, a);
        double scale = fmax(max_abs_d(r->d, r->n), 1e-6);
        double dev;
        int bad;
        if (final && (is_qkv(p->name, "weight") || is_qkv(p->name, "bias"))) {
            int isw = is_qkv(p->name, "weight");
            char *mask = malloc(p->numel);
            key_mask(mask, C, HS, isw ? (size_t)C : 1);
            double dkey = max_abs_err(a, r->d, p->numel, mask) / scale;
            for (size_t i = 0; i < p->numel; i++) mask[i] = !mask[i];
            dev = max_abs_err(a, r->d, p->numel, mask) / scale;
            free(mask);
            if (isw) {
                if (dkey > *worst_key_w) *worst_key_w = dkey;
                bad = !(dev <= tol) || !(dkey <= TOL_FINAL_KEY);
                if (!(dkey <= TOL_FINAL_KEY))
                    tap_diag("  %s key rows: dev %.3g > %.1g", p->name, dkey, TOL_FINAL_KEY);
            } else {
                if (dkey > *worst_key_b) *worst_key_b = dkey;
                bad = !(dev <= tol);
            }
        } else {
            dev = max_abs_err(a, r->d, p->numel, NULL) / scale;
            bad = !(dev <= tol);
        }
        if (bad) {
            nbad++;
            tap_diag("  %s: dev %.3g > %.1g", name, dev, tol);
        }
        if (dev > *worst || !(dev == dev)) {
            *worst = dev;
            snprintf(worst_name, wlen, "%s", p->name);
        }
        free(a);
    }
    return nbad;
}

static void get_grad(struct mt_model *m, int idx, float *h) { mt_model_get_grad(m, idx, h); }
static void get_param(struct mt_model *m, int idx, float *h) { mt_model_get_param(m, idx, h); }

#define TESTS_PER_BACKEND 7

static void run_backend(const char *bename, const struct golden *g)
{
    char err[512], why[512], wname[MT_PARAM_NAME_MAX + 16];
    double t0 = now_s();
    mt_backend *be = mt_backend_init(bename, err, sizeof err);
    if (!be) {
        for (int i = 0; i < TESTS_PER_BACKEND; i++)
            tap_ok(0, "%s: backend unavailable (%s)", bename, err);
        return;
    }
    tap_diag("backend %s", bename);
    struct mt_model m;
    mt_model_init(&m, &g->cfg, be, g->B, g->T, NULL, 1);
    int loaded = load_params(&m, "param/", why, sizeof why);
    if (!tap_ok(loaded, "%s: golden parameters loaded into the model", bename)) {
        tap_diag("%s", why);
        for (int i = 1; i < TESTS_PER_BACKEND; i++) tap_ok(0, "%s: skipped after load failure", bename);
        mt_model_free(&m);
        mt_backend_free(be);
        return;
    }
    const int B = g->B, T = g->T, V = g->cfg.vocab_size;
    const size_t N = (size_t)B * T;

    /* forward: logits and loss */
    mt_model_zero_grad(&m);
    float loss = mt_model_forward(&m, g->tok, g->tgt, B, T, 0);
    float *logits = malloc(N * V * sizeof *logits);
    mt_tensor_download(be, logits, m.logits);
    struct rec *rl = need_rec("logits", N * V);
    double lmax = max_abs_d(rl->d, rl->n);
    double labs = max_abs_err(logits, rl->d, rl->n, NULL);
    double lrel = labs / fmax(lmax, 1e-6);
    tap_ok(lrel <= TOL_LOGITS, "%s: logits (max rel dev %.3g <= %.0e)", bename, lrel, TOL_LOGITS);
    tap_diag("max abs dev logits: %.3g (max |logit| %.3g)", labs, lmax);
    tap_diag("max rel dev logits: %.3g", lrel);
    free(logits);

    double rloss = need_rec("loss", 1)->d[0];
    double dloss = rel_scalar(loss, rloss);
    tap_ok(dloss <= TOL_LOSS, "%s: loss %.8f vs %.8f (rel dev %.3g <= %.0e)", bename, loss,
           rloss, dloss, TOL_LOSS);
    tap_diag("max rel dev loss: %.3g", dloss);

    /* backward: every gradient */
    mt_model_backward(&m, 1.0f);
    double wg, kw = 0, kb = 0;
    int nbad = compare_tensors(&m, "grad/", get_grad, TOL_GRAD, 0, &wg, wname, sizeof wname,
                               &kw, &kb);
    tap_ok(nbad == 0, "%s: gradients of all %d tensors (worst %.3g <= %.0e)", bename,
           m.table.n, wg, TOL_GRAD);
    tap_diag("max rel dev grad: %.3g (%s)", wg, wname);

    /* 10 AdamW steps from the golden start */
    load_params(&m, "param/", why, sizeof why);
    mt_model_zero_grad(&m);
    struct mt_optim_config oc = {(float)g->beta1, (float)g->beta2, (float)g->eps, (float)g->wd,
                                 (float)g->clip, .kind = MT_OPTIM_ADAM};
    struct mt_optimizer o;
    mt_optim_init(&o, &oc, be, &m.table);
    const double *rsl = need_rec("step/loss", g->nsteps)->d;
    const double *rsn = need_rec("step/grad_norm", g->nsteps)->d;
    double wl = 0, wn = 0;
    int wl_at = 0, wn_at = 0;
    for (int s = 0; s < g->nsteps; s++) {
        float l = mt_model_forward(&m, g->step_tok + (size_t)s * N, g->step_tgt + (size_t)s * N, B, T, 0);
        mt_model_backward(&m, 1.0f);
        double gn = mt_optim_step(&o, m.params, m.grads, (float)g->lr, 1.0f);
        double dl = rel_scalar(l, rsl[s]), dn = rel_scalar(gn, rsn[s]);
        if (getenv("MT_GOLDEN_VERBOSE"))
            tap_diag("step %2d loss %.8f (%.8f) grad norm %.8f (%.8f)", s + 1, l, rsl[s], gn,
                     rsn[s]);
        if (dl > wl || !(dl == dl)) wl = dl, wl_at = s + 1;
        if (dn > wn || !(dn == dn)) wn = dn, wn_at = s + 1;
    }
    tap_ok(wl <= TOL_STEP_LOSS, "%s: losses of %d AdamW steps (worst rel dev %.3g <= %.0e)",
           bename, g->nsteps, wl, TOL_STEP_LOSS);
    tap_diag("max rel dev step loss: %.3g (step %d)", wl, wl_at);
    tap_ok(wn <= TOL_STEP_NORM, "%s: pre-clip grad norms of %d steps (worst rel dev %.3g <= %.0e)",
           bename, g->nsteps, wn, TOL_STEP_NORM);
    tap_diag("max rel dev step grad norm: %.3g (step %d)", wn, wn_at);

    double wf;
    kw = kb = 0;
    nbad = compare_tensors(&m, "final/", get_param, TOL_FINAL, 1, &wf, wname, sizeof wname, &kw,
                           &kb);
    tap_ok(nbad == 0,
           "%s: parameters after %d steps (worst %.3g <= %.0e; qkv key rows %.3g <= %.0e)",
           bename, g->nsteps, wf, TOL_FINAL, kw, TOL_FINAL_KEY);
    tap_diag("max rel dev final param: %.3g (%s; excluding linear_qkv key rows)", wf, wname);
    tap_diag("max rel dev final linear_qkv key weight rows: %.3g", kw);
    tap_diag("max rel dev final linear_qkv key bias (zero gradient, not checked): %.3g", kb);

    mt_optim_free(&o);
    mt_model_free(&m);
    mt_backend_free(be);
    tap_diag("%s took %.3f s", bename, now_s() - t0);
}

int main(int argc, char **argv)
{
    double t0 = now_s();
    const char *path = golden_path(argc, argv);
    if (!file_exists(path))
        bail("golden file %s not found (pass a path as argv[1] or MT_GOLDEN; regenerate with "
             "python3 tests/golden/gen_gpt_golden.py)",
             path);
    load_golden(path);
    printf("# golden file %s: %d records\n", path, nrecs);

    struct golden g;
    memset(&g, 0, sizeof g);
    mt_config_defaults(&g.cfg);
    const double *c = need_rec("config", 10)->d;
    g.cfg.num_layers = (int)c[0];
    g.cfg.hidden_size = (int)c[1];
    g.cfg.num_attention_heads = (int)c[2];
    g.cfg.ffn_hidden_size = (int)c[3];
    g.cfg.max_position_embeddings = (int)c[4];
    g.cfg.vocab_size = (int)c[5];
    g.cfg.padded_vocab_size = (int)c[6];
    g.cfg.init_method_std = 0.02f;
    mt_config_derive(&g.cfg);
    g.B = (int)c[7];
    g.T = (int)c[8];
    g.nsteps = (int)c[9];
    const double *a = need_rec("adamw", 6)->d;
    g.lr = a[0], g.beta1 = a[1], g.beta2 = a[2], g.eps = a[3], g.wd = a[4], g.clip = a[5];
    size_t N = (size_t)g.B * g.T;
    g.tok = to_i32(need_rec("tokens", N));
    g.tgt = to_i32(need_rec("targets", N));
    g.step_tok = to_i32(need_rec("step/tokens", (size_t)g.nsteps * N));
    g.step_tgt = to_i32(need_rec("step/targets", (size_t)g.nsteps * N));
    printf("# L=%d C=%d NH=%d F=%d maxpos=%d V=%d Vp=%d B=%d T=%d steps=%d\n",
           g.cfg.num_layers, g.cfg.hidden_size, g.cfg.num_attention_heads, g.cfg.ffn_hidden_size,
           g.cfg.max_position_embeddings, g.cfg.vocab_size, g.cfg.padded_vocab_size, g.B, g.T,
           g.nsteps);

    const char *list = getenv("MT_GOLDEN_BACKENDS");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list && *list ? list : "cpu-ref,cpu");
    int nbe = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        run_backend(tok, &g);
        nbe++;
    }
    tap_diag("total %.3f s, %d of %d tests failed", now_s() - t0, tap_failed, tap_count);

    free(g.tok);
    free(g.tgt);
    free(g.step_tok);
    free(g.step_tgt);
    for (int i = 0; i < nrecs; i++) {
        free(recs[i].name);
        free(recs[i].d);
    }
    free(recs);
    (void)nbe;
    return tap_done();
}
