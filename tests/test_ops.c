/* test_ops.c: every compute member of the "cpu" backend against "cpu-ref",
 * then of "cuda" against "cpu-ref" when the build has it and a device is
 * present (otherwise those cases are printed as SKIP lines, never passes).
 *
 * Each op runs on both backends with the same random inputs (fixed seed) on
 * several shapes, odd sizes included, and every output element must satisfy
 *     |cpu - ref| <= atol + rtol * |ref|
 * with the (atol, rtol) written next to the op in CASES below. NaN must meet
 * NaN and inf the same inf. One TAP line per (op, variant, shape), giving the
 * largest absolute error and the largest relative error (over elements with
 * |ref| > atol, where a relative error means something). Also checked:
 * sum_squares equal bit for bit across backends, the column reductions
 * bitwise independent of the OpenMP thread count, the memory members and the
 * world-of-one communicator. Exit status 0 iff all pass.
 *
 * Calls go through be->iface->member directly: this test covers the backend,
 * not the validating wrappers of src/backend/backend.c.
 *
 * Run: tests/test_ops   (OMP_NUM_THREADS=2 as in make check) */
#ifdef HAVE_CONFIG_H
#include "config.h" /* HAVE_BLAS and friends, when built by configure */
#endif
#undef NDEBUG
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "cpu/cpu_internal.h"
#include "tap.h"

static mt_backend *fast; /* "cpu", then "cuda" when a device is present */
static mt_backend *ref;  /* "cpu-ref" */

/* ---- random inputs ---------------------------------------------------------------- */

static uint64_t rng_state = 0x5eed5eed12345678ull;

static uint64_t rng_next(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float urand(void) { return (float)((rng_next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }
static int irand(int n) { return (int)(rng_next() % (uint64_t)n); }

static void *xmalloc(size_t nbytes)
{
    void *p = malloc(nbytes ? nbytes : 1);
    assert(p);
    return p;
}

/* host (n): offset + scale * U[-1,1) */
static float *host_rand(size_t n, float scale, float offset)
{
    float *x = xmalloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = offset + scale * urand();
    return x;
}

static float *host_fill(size_t n, float v)
{
    float *x = xmalloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = v;
    return x;
}

/* ---- one buffer on each backend ------------------------------------------------------ */

struct dpair {
    void *f, *r; /* the same contents on fast and on ref */
    size_t bytes;
};

static struct dpair dp_new(const void *host, size_t bytes)
{
    struct dpair p = {fast->iface->alloc(fast, bytes), ref->iface->alloc(ref, bytes), bytes};
    assert(p.f && p.r);
    assert(((uintptr_t)p.f & 63) == 0 && ((uintptr_t)p.r & 63) == 0);
    fast->iface->upload(fast, p.f, host, bytes);
    ref->iface->upload(ref, p.r, host, bytes);
    return p;
}

/* floats from a host array */
static struct dpair dp_floats(const float *host, size_t n) { return dp_new(host, n * sizeof(float)); }

/* n floats all equal to v (NaN to prove an output is overwritten) */
static struct dpair dp_const(size_t n, float v)
{
    float *h = host_fill(n, v);
    struct dpair p = dp_floats(h, n);
    free(h);
    return p;
}

static void dp_free(struct dpair *p)
{
    fast->iface->dealloc(fast, p->f);
    ref->iface->dealloc(ref, p->r);
}

#define F(p) ((float *)(p).f)
#define R(p) ((float *)(p).r)
#define FI(p) ((int32_t *)(p).f)
#define RI(p) ((int32_t *)(p).r)

/* ---- comparison ---------------------------------------------------------------------- */

struct cmp {
    double atol, rtol;
    double max_abs, max_rel;
    long bad;
    char first[160]; /* the first failing element, for the diagnostic */
};

static struct cmp cmp_init(double atol, double rtol)
{
    struct cmp c = {atol, rtol, 0, 0, 0, ""};
    return c;
}

static void cmp_arrays(struct cmp *c, const char *tensor, const float *got, const float *want,
                       size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double a = got[i], r = want[i];
        int ok;
        if (isnan(r) || isnan(a))
            ok = isnan(r) && isnan(a);
        else if (isinf(r) || isinf(a))
            ok = a == r;
        else {
            double d = fabs(a - r);
            ok = d <= c->atol + c->rtol * fabs(r);
            if (d > c->max_abs) c->max_abs = d;
            if (fabs(r) > c->atol && d / fabs(r) > c->max_rel) c->max_rel = d / fabs(r);
        }
        if (!ok && c->bad++ == 0)
            snprintf(c->first, sizeof c->first, "%s[%zu]: %s %.9g ref %.9g", tensor, i,
                     fast->iface->name(fast), a, r);
    }
}

/* download n floats of a pair and compare cpu (got) with ref (want) */
static void cmp_pair(struct cmp *c, const char *tensor, struct dpair p, size_t n)
{
    float *hf = xmalloc(n * sizeof *hf), *hr = xmalloc(n * sizeof *hr);
    fast->iface->download(fast, hf, p.f, n * sizeof *hf);
    ref->iface->download(ref, hr, p.r, n * sizeof *hr);
    cmp_arrays(c, tensor, hf, hr, n);
    free(hf);
    free(hr);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void cmp_report(const struct cmp *c, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    tap_ok(c->bad == 0, "%s abs=%.2e rel=%.2e (tol %.0e+%.0e|ref|)", what, c->max_abs, c->max_rel,
           c->atol, c->rtol);
    if (c->bad) tap_diag("  %ld elements out of tolerance; first %s", c->bad, c->first);
}

/* ---- shapes ------------------------------------------------------------------------------ */

struct shape {
    const char *name;
    int B, T, C, NH, HS, V; /* V: vocabulary (xent columns, embedding rows) */
    size_t n;               /* length for the elementwise ops and reductions */
};

static const struct shape SHAPES[] = {
    {"tiny-odd", 1, 7, 13, 1, 3, 37, 4097},            /* N = 7 */
    {"odd", 3, 5, 13, 2, 3, 37, 3 * 4096 + 5},         /* N = 15, several reduce blocks */
    {"small", 2, 32, 64, 4, 16, 301, 100003},          /* 25 blocks: groups of 8 and a tail */
    {"gpt2-slice", 2, 16, 768, 12, 64, 50304, (1 << 20) + 3}, /* 124M widths, few rows */
};
enum { NSHAPES = sizeof SHAPES / sizeof SHAPES[0] };

/* Embedding tables are (V, C); for the 50304 x 768 slice that is 154 MB per
 * backend, so embedding tests cap the vocabulary. */
static int emb_vocab(const struct shape *s) { return s->V < 4096 ? s->V : 4096; }

/* ---- op tests ----------------------------------------------------------------------------- */

struct op_case;
typedef void (*op_test_fn)(const struct op_case *oc, const struct shape *s);
struct op_case {
    const char *name;
    op_test_fn run;
    double atol, rtol; /* per element: |cpu - ref| <= atol + rtol * |ref| */
};

static void t_embed_fwd(const struct op_case *oc, const struct shape *s)
{
    int B = s->B, T = s->T, C = s->C, V = emb_vocab(s), N = B * T;
    /* variants: whole vocabulary; a shard [V/3, V/3 + V/2) with tokens outside
     * it and pos0 = 2 (decode-style offset); no position table */
    for (int variant = 0; variant < 3; variant++) {
        int off = variant == 1 ? V / 3 : 0, Vl = variant == 1 ? V / 2 + 1 : V;
        int pos0 = variant == 1 ? 2 : 0, maxT = T + 2;
        int32_t *tok = xmalloc((size_t)N * sizeof *tok);
        for (int i = 0; i < N; i++) tok[i] = irand(V);
        float *hwte = host_rand((size_t)Vl * C, 1.0f, 0.0f), *hwpe = host_rand((size_t)maxT * C, 1.0f, 0.0f);
        struct dpair dtok = dp_new(tok, (size_t)N * sizeof *tok), wte = dp_floats(hwte, (size_t)Vl * C),
                     wpe = dp_floats(hwpe, (size_t)maxT * C), out = dp_const((size_t)N * C, NAN);
        int use_wpe = variant != 2;
        fast->iface->embed_fwd(fast, F(out), FI(dtok), F(wte), use_wpe ? F(wpe) : NULL, B, T, C, pos0, off, Vl);
        ref->iface->embed_fwd(ref, R(out), RI(dtok), R(wte), use_wpe ? R(wpe) : NULL, B, T, C, pos0, off, Vl);
        struct cmp c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "out", out, (size_t)N * C);
        static const char *vname[] = {"full", "shard+pos0", "no-wpe"};
        cmp_report(&c, "%s %s [%s]", oc->name, vname[variant], s->name);
        dp_free(&dtok), dp_free(&wte), dp_free(&wpe), dp_free(&out);
        free(tok), free(hwte), free(hwpe);
    }
}

static void t_embed_bwd(const struct op_case *oc, const struct shape *s)
{
    int B = s->B, T = s->T, C = s->C, V = emb_vocab(s), N = B * T;
    for (int variant = 0; variant < 3; variant++) {
        int off = variant == 1 ? V / 3 : 0, Vl = variant == 1 ? V / 2 + 1 : V;
        int32_t *tok = xmalloc((size_t)N * sizeof *tok);
        /* tokens from a narrow range so that rows repeat (the ordered sums) */
        for (int i = 0; i < N; i++) tok[i] = off + irand(Vl < 5 ? Vl : 5) + (variant == 1 && i % 3 == 0 ? -off : 0);
        float *hd = host_rand((size_t)N * C, 1.0f, 0.0f);
        float *hdwte = host_rand((size_t)Vl * C, 1.0f, 0.0f), *hdwpe = host_rand((size_t)T * C, 1.0f, 0.0f);
        struct dpair dtok = dp_new(tok, (size_t)N * sizeof *tok), dout = dp_floats(hd, (size_t)N * C),
                     dwte = dp_floats(hdwte, (size_t)Vl * C), dwpe = dp_floats(hdwpe, (size_t)T * C);
        int use_wpe = variant != 2;
        fast->iface->embed_bwd(fast, F(dwte), use_wpe ? F(dwpe) : NULL, F(dout), FI(dtok), B, T, C, off, Vl);
        ref->iface->embed_bwd(ref, R(dwte), use_wpe ? R(dwpe) : NULL, R(dout), RI(dtok), B, T, C, off, Vl);
        struct cmp c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "dwte", dwte, (size_t)Vl * C);
        cmp_pair(&c, "dwpe", dwpe, (size_t)T * C);
        static const char *vname[] = {"full", "shard", "no-wpe"};
        cmp_report(&c, "%s %s [%s]", oc->name, vname[variant], s->name);
        dp_free(&dtok), dp_free(&dout), dp_free(&dwte), dp_free(&dwpe);
        free(tok), free(hd), free(hdwte), free(hdwpe);
    }
}

static void t_layernorm_fwd(const struct op_case *oc, const struct shape *s)
{
    int N = s->B * s->T, C = s->C;
    float *hx = host_rand((size_t)N * C, 2.0f, 3.0f); /* mean 3: centering matters */
    float *hw = host_rand(C, 1.0f, 1.0f), *hb = host_rand(C, 0.5f, 0.0f);
    struct dpair x = dp_floats(hx, (size_t)N * C), w = dp_floats(hw, C), b = dp_floats(hb, C),
                 out = dp_const((size_t)N * C, NAN), mean = dp_const(N, NAN), rstd = dp_const(N, NAN);
    fast->iface->layernorm_fwd(fast, F(out), F(mean), F(rstd), F(x), F(w), F(b), N, C);
    ref->iface->layernorm_fwd(ref, R(out), R(mean), R(rstd), R(x), R(w), R(b), N, C);
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "out", out, (size_t)N * C);
    cmp_pair(&c, "mean", mean, N);
    cmp_pair(&c, "rstd", rstd, N);
    cmp_report(&c, "%s N=%d C=%d [%s]", oc->name, N, C, s->name);
    dp_free(&x), dp_free(&w), dp_free(&b), dp_free(&out), dp_free(&mean), dp_free(&rstd);
    free(hx), free(hw), free(hb);
}

/* mean and rstd of x (N,C) on the host, in double, as the forward saves them */
static void host_ln_stats(const float *x, int N, int C, float *mean, float *rstd)
{
    for (int n = 0; n < N; n++) {
        double s = 0, ss = 0;
        for (int c = 0; c < C; c++) s += x[(size_t)n * C + c];
        double mu = s / C;
        for (int c = 0; c < C; c++) ss += (x[(size_t)n * C + c] - mu) * (x[(size_t)n * C + c] - mu);
        mean[n] = (float)mu;
        rstd[n] = (float)(1.0 / sqrt(ss / C + 1e-5));
    }
}

static void t_layernorm_bwd(const struct op_case *oc, const struct shape *s)
{
    int N = s->B * s->T, C = s->C;
    float *hx = host_rand((size_t)N * C, 2.0f, 3.0f), *hw = host_rand(C, 1.0f, 1.0f);
    float *hd = host_rand((size_t)N * C, 1.0f, 0.0f);
    float *hmean = xmalloc(N * sizeof(float)), *hrstd = xmalloc(N * sizeof(float));
    host_ln_stats(hx, N, C, hmean, hrstd);
    /* gradients start non-zero: the member accumulates */
    float *hdi = host_rand((size_t)N * C, 1.0f, 0.0f), *hdw = host_rand(C, 1.0f, 0.0f), *hdb = host_rand(C, 1.0f, 0.0f);
    struct dpair x = dp_floats(hx, (size_t)N * C), w = dp_floats(hw, C), dout = dp_floats(hd, (size_t)N * C),
                 mean = dp_floats(hmean, N), rstd = dp_floats(hrstd, N), dinp = dp_floats(hdi, (size_t)N * C),
                 dw = dp_floats(hdw, C), db = dp_floats(hdb, C);
    fast->iface->layernorm_bwd(fast, F(dinp), F(dw), F(db), F(dout), F(x), F(w), F(mean), F(rstd), N, C);
    ref->iface->layernorm_bwd(ref, R(dinp), R(dw), R(db), R(dout), R(x), R(w), R(mean), R(rstd), N, C);
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "dinp", dinp, (size_t)N * C);
    cmp_pair(&c, "dw", dw, C);
    cmp_pair(&c, "db", db, C);
    cmp_report(&c, "%s N=%d C=%d [%s]", oc->name, N, C, s->name);
    dp_free(&x), dp_free(&w), dp_free(&dout), dp_free(&mean), dp_free(&rstd), dp_free(&dinp), dp_free(&dw), dp_free(&db);
    free(hx), free(hw), free(hd), free(hmean), free(hrstd), free(hdi), free(hdw), free(hdb);
}

static void t_bias_add(const struct op_case *oc, const struct shape *s)
{
    int N = s->B * s->T, C = s->C;
    float *hy = host_rand((size_t)N * C, 1.0f, 0.0f), *hb = host_rand(C, 1.0f, 0.0f);
    struct dpair y = dp_floats(hy, (size_t)N * C), b = dp_floats(hb, C);
    fast->iface->bias_add(fast, F(y), F(b), N, C);
    ref->iface->bias_add(ref, R(y), R(b), N, C);
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "y", y, (size_t)N * C);
    cmp_report(&c, "%s N=%d C=%d [%s]", oc->name, N, C, s->name);
    dp_free(&y), dp_free(&b), free(hy), free(hb);
}

static void t_bias_bwd(const struct op_case *oc, const struct shape *s)
{
    int N = s->B * s->T, C = s->C;
    float *hd = host_rand((size_t)N * C, 1.0f, 0.0f), *hb = host_rand(C, 1.0f, 0.0f);
    struct dpair dy = dp_floats(hd, (size_t)N * C), db = dp_floats(hb, C);
    fast->iface->bias_bwd(fast, F(db), F(dy), N, C);
    ref->iface->bias_bwd(ref, R(db), R(dy), N, C);
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "dbias", db, C);
    cmp_report(&c, "%s N=%d C=%d [%s]", oc->name, N, C, s->name);
    dp_free(&dy), dp_free(&db), free(hd), free(hb);
}

static void t_gelu_fwd(const struct op_case *oc, const struct shape *s)
{
    size_t n = s->n;
    float *hx = host_rand(n, 6.0f, 0.0f); /* both tails and the bend */
    struct dpair x = dp_floats(hx, n), out = dp_const(n, NAN);
    fast->iface->gelu_fwd(fast, F(out), F(x), n);
    ref->iface->gelu_fwd(ref, R(out), R(x), n);
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "out", out, n);
    cmp_report(&c, "%s n=%zu [%s]", oc->name, n, s->name);
    dp_free(&x), dp_free(&out), free(hx);
}

static void t_gelu_bwd(const struct op_case *oc, const struct shape *s)
{
    size_t n = s->n;
    float *hx = host_rand(n, 6.0f, 0.0f), *hd = host_rand(n, 1.0f, 0.0f);
    for (int alias = 0; alias < 2; alias++) {
        struct dpair x = dp_floats(hx, n), dout = dp_floats(hd, n), dinp = dp_const(n, NAN);
        struct dpair *dst = alias ? &dout : &dinp; /* alias: dinp == dout */
        fast->iface->gelu_bwd(fast, F(*dst), F(x), F(dout), n);
        ref->iface->gelu_bwd(ref, R(*dst), R(x), R(dout), n);
        struct cmp c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "dinp", *dst, n);
        cmp_report(&c, "%s%s n=%zu [%s]", oc->name, alias ? " in-place" : "", n, s->name);
        dp_free(&x), dp_free(&dout), dp_free(&dinp);
    }
    free(hx), free(hd);
}

static void t_add(const struct op_case *oc, const struct shape *s)
{
    size_t n = s->n;
    float *ha = host_rand(n, 1.0f, 0.0f), *hb = host_rand(n, 1.0f, 0.0f);
    for (int alias = 0; alias < 2; alias++) {
        struct dpair a = dp_floats(ha, n), b = dp_floats(hb, n), out = dp_const(n, NAN);
        struct dpair *dst = alias ? &a : &out; /* alias: out == a (the residual add) */
        fast->iface->add(fast, F(*dst), F(a), F(b), n);
        ref->iface->add(ref, R(*dst), R(a), R(b), n);
        struct cmp c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "out", *dst, n);
        cmp_report(&c, "%s%s n=%zu [%s]", oc->name, alias ? " in-place" : "", n, s->name);
        dp_free(&a), dp_free(&b), dp_free(&out);
    }
    free(ha), free(hb);
}

static void t_scale(const struct op_case *oc, const struct shape *s)
{
    size_t n = s->n;
    float *hx = host_rand(n, 1.0f, 0.0f);
    struct dpair x = dp_floats(hx, n);
    fast->iface->scale(fast, F(x), 0.37f, n);
    ref->iface->scale(ref, R(x), 0.37f, n);
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "x", x, n);
    cmp_report(&c, "%s n=%zu [%s]", oc->name, n, s->name);
    dp_free(&x), free(hx);
}

static void t_attn_fwd(const struct op_case *oc, const struct shape *s)
{
    int B = s->B, T = s->T, NH = s->NH, HS = s->HS;
    size_t nqkv = (size_t)B * T * NH * 3 * HS;
    float *hqkv = host_rand(nqkv, 2.0f, 0.0f); /* scores of a few units: a peaked softmax */
    struct dpair qkv = dp_floats(hqkv, nqkv);
    /* t0 = 0 (training) */
    size_t nout = (size_t)B * T * NH * HS, natt = (size_t)B * NH * T * T;
    struct dpair out = dp_const(nout, NAN), att = dp_const(natt, NAN);
    fast->iface->attn_fwd(fast, F(out), F(att), F(qkv), B, T, 0, NH, HS);
    ref->iface->attn_fwd(ref, R(out), R(att), R(qkv), B, T, 0, NH, HS);
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "out", out, nout);
    cmp_pair(&c, "att", att, natt);
    cmp_report(&c, "%s t0=0 B=%d T=%d NH=%d HS=%d [%s]", oc->name, B, T, NH, HS, s->name);
    /* t0 = T-1 (decoding one token): against ref, and against the last row of t0 = 0 */
    size_t nout1 = (size_t)B * NH * HS, natt1 = (size_t)B * NH * T;
    struct dpair out1 = dp_const(nout1, NAN), att1 = dp_const(natt1, NAN);
    fast->iface->attn_fwd(fast, F(out1), F(att1), F(qkv), B, T, T - 1, NH, HS);
    ref->iface->attn_fwd(ref, R(out1), R(att1), R(qkv), B, T, T - 1, NH, HS);
    c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "out", out1, nout1);
    cmp_pair(&c, "att", att1, natt1);
    cmp_report(&c, "%s t0=T-1 B=%d T=%d NH=%d HS=%d [%s]", oc->name, B, T, NH, HS, s->name);
    float *full_out = xmalloc(nout * sizeof(float)), *full_att = xmalloc(natt * sizeof(float));
    float *last_out = xmalloc(nout1 * sizeof(float)), *last_att = xmalloc(natt1 * sizeof(float));
    float *dec_out = xmalloc(nout1 * sizeof(float)), *dec_att = xmalloc(natt1 * sizeof(float));
    ref->iface->download(ref, full_out, R(out), nout * sizeof(float));
    ref->iface->download(ref, full_att, R(att), natt * sizeof(float));
    fast->iface->download(fast, dec_out, F(out1), nout1 * sizeof(float));
    fast->iface->download(fast, dec_att, F(att1), natt1 * sizeof(float));
    for (int b = 0; b < B; b++) {
        memcpy(last_out + (size_t)b * NH * HS, full_out + ((size_t)b * T + T - 1) * NH * HS, (size_t)NH * HS * sizeof(float));
        for (int h = 0; h < NH; h++)
            memcpy(last_att + ((size_t)b * NH + h) * T, full_att + (((size_t)b * NH + h) * T + T - 1) * T, (size_t)T * sizeof(float));
    }
    c = cmp_init(oc->atol, oc->rtol);
    cmp_arrays(&c, "out", dec_out, last_out, nout1);
    cmp_arrays(&c, "att", dec_att, last_att, natt1);
    cmp_report(&c, "%s cpu t0=T-1 == last row of ref t0=0 [%s]", oc->name, s->name);
    dp_free(&qkv), dp_free(&out), dp_free(&att), dp_free(&out1), dp_free(&att1);
    free(hqkv), free(full_out), free(full_att), free(last_out), free(last_att), free(dec_out), free(dec_att);
}

static void t_attn_bwd(const struct op_case *oc, const struct shape *s)
{
    int B = s->B, T = s->T, NH = s->NH, HS = s->HS;
    size_t nqkv = (size_t)B * T * NH * 3 * HS, nout = (size_t)B * T * NH * HS, natt = (size_t)B * NH * T * T;
    float *hqkv = host_rand(nqkv, 2.0f, 0.0f), *hd = host_rand(nout, 1.0f, 0.0f);
    struct dpair qkv = dp_floats(hqkv, nqkv), dout = dp_floats(hd, nout), out = dp_const(nout, 0.0f),
                 att = dp_const(natt, 0.0f), dqkv = dp_const(nqkv, NAN), datt = dp_const(natt, NAN);
    /* both backends take the same saved probabilities: ref's forward */
    ref->iface->attn_fwd(ref, R(out), R(att), R(qkv), B, T, 0, NH, HS);
    float *hatt = xmalloc(natt * sizeof(float));
    ref->iface->download(ref, hatt, R(att), natt * sizeof(float));
    fast->iface->upload(fast, F(att), hatt, natt * sizeof(float));
    fast->iface->attn_bwd(fast, F(dqkv), F(datt), F(dout), F(qkv), F(att), B, T, NH, HS);
    ref->iface->attn_bwd(ref, R(dqkv), R(datt), R(dout), R(qkv), R(att), B, T, NH, HS);
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "dqkv", dqkv, nqkv);
    cmp_report(&c, "%s B=%d T=%d NH=%d HS=%d [%s]", oc->name, B, T, NH, HS, s->name);
    dp_free(&qkv), dp_free(&dout), dp_free(&out), dp_free(&att), dp_free(&dqkv), dp_free(&datt);
    free(hqkv), free(hd), free(hatt);
}

/* The cross-entropy chain, each backend on its own intermediate results.
 * Variants: the whole vocabulary; a shard [V/3, V/3 + V/2) of a row stride
 * ld > V_local with targets all over [0, V); the shard again with the
 * gradient written in place over the logits. */
static void t_xent(const struct op_case *oc, const struct shape *s)
{
    int N = s->B * s->T, V = s->V;
    for (int variant = 0; variant < 3; variant++) {
        int off = variant ? V / 3 : 0, Vl = variant ? V / 2 + 1 : V, ld = variant ? Vl + 5 : V;
        size_t nl = (size_t)N * ld;
        float *hl = host_rand(nl, 4.0f, 0.0f);
        int32_t *htg = xmalloc((size_t)N * sizeof *htg);
        for (int n = 0; n < N; n++) htg[n] = irand(V);
        if (variant) htg[0] = off, htg[N - 1] = off + Vl - 1; /* shard edges */
        float *hdl = host_rand(N, 1.0f, 0.0f);
        struct dpair logits = dp_floats(hl, nl), tg = dp_new(htg, (size_t)N * sizeof *htg),
                     dloss = dp_floats(hdl, N), rowmax = dp_const(N, NAN), sumexp = dp_const(N, NAN),
                     tgt = dp_const(N, NAN), losses = dp_const(N, NAN), dlog = dp_floats(hl, nl);
        /* padding columns [Vl, ld) of the output must be left alone */
        struct dpair *dst = variant == 2 ? &logits : &dlog;
        static const char *vname[] = {"full", "shard ld>V", "shard in-place"};
        struct cmp c;
        mt_backend *bes[2] = {fast, ref};
        for (int k = 0; k < 2; k++) {
            mt_backend *be = bes[k];
#define SIDE(p) ((float *)(k ? (p).r : (p).f))
            be->iface->xent_max(be, SIDE(rowmax), SIDE(logits), N, Vl, ld);
            be->iface->xent_sumexp(be, SIDE(sumexp), SIDE(tgt), SIDE(logits), SIDE(rowmax),
                                   (int32_t *)(k ? tg.r : tg.f), N, Vl, off, ld);
            be->iface->xent_loss(be, SIDE(losses), SIDE(rowmax), SIDE(sumexp), SIDE(tgt), N);
            be->iface->xent_bwd(be, SIDE(*dst), SIDE(dloss), SIDE(logits), SIDE(rowmax), SIDE(sumexp),
                                (int32_t *)(k ? tg.r : tg.f), N, Vl, off, ld);
#undef SIDE
        }
        c = cmp_init(0, 0); /* a max is exact */
        cmp_pair(&c, "rowmax", rowmax, N);
        cmp_report(&c, "xent_max %s N=%d V_local=%d ld=%d [%s]", vname[variant], N, Vl, ld, s->name);
        c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "sumexp", sumexp, N);
        cmp_pair(&c, "tgt", tgt, N);
        cmp_report(&c, "xent_sumexp %s [%s]", vname[variant], s->name);
        c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "losses", losses, N);
        cmp_report(&c, "xent_loss %s [%s]", vname[variant], s->name);
        c = cmp_init(1e-8, oc->rtol); /* softmax entries ~ 1/V: an absolute floor to match */
        cmp_pair(&c, "dlogits", *dst, nl);
        cmp_report(&c, "xent_bwd %s [%s]", vname[variant], s->name);
        dp_free(&logits), dp_free(&tg), dp_free(&dloss), dp_free(&rowmax), dp_free(&sumexp);
        dp_free(&tgt), dp_free(&losses), dp_free(&dlog);
        free(hl), free(htg), free(hdl);
    }
}

static void t_adamw(const struct op_case *oc, const struct shape *s)
{
    size_t n = s->n;
    const struct mt_adamw_args args = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                                       .weight_decay = 0.1f, .grad_scale = 0.5f, .step = 3};
    float *hp = host_rand(n, 1.0f, 0.0f), *hg = host_rand(n, 1.0f, 0.0f);
    float *hm = host_rand(n, 0.1f, 0.0f), *hv = host_rand(n, 0.01f, 0.01f); /* v >= 0 */
    for (int zero_grad = 0; zero_grad < 2; zero_grad++) {
        struct dpair p = dp_floats(hp, n), g = dp_floats(hg, n), m = dp_floats(hm, n), v = dp_floats(hv, n);
        fast->iface->adamw(fast, F(p), F(g), F(m), F(v), n, &args, zero_grad);
        ref->iface->adamw(ref, R(p), R(g), R(m), R(v), n, &args, zero_grad);
        struct cmp c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "param", p, n);
        cmp_pair(&c, "m", m, n);
        cmp_pair(&c, "v", v, n);
        /* grad: zeroed exactly, or left exactly as it was */
        float *want = zero_grad ? host_fill(n, 0.0f) : hg, *got = xmalloc(n * sizeof(float));
        struct cmp cg = cmp_init(0, 0);
        fast->iface->download(fast, got, g.f, n * sizeof(float));
        cmp_arrays(&cg, "grad(cpu)", got, want, n);
        ref->iface->download(ref, got, g.r, n * sizeof(float));
        cmp_arrays(&cg, "grad(ref)", got, want, n);
        c.bad += cg.bad;
        if (cg.bad && !c.first[0]) memcpy(c.first, cg.first, sizeof c.first);
        cmp_report(&c, "%s zero_grad=%d n=%zu [%s]", oc->name, zero_grad, n, s->name);
        if (zero_grad) free(want);
        free(got);
        dp_free(&p), dp_free(&g), dp_free(&m), dp_free(&v);
    }
    free(hp), free(hg), free(hm), free(hv);
}

static void t_sum_squares(const struct op_case *oc, const struct shape *s)
{
    size_t n = s->n;
    float *hx = host_rand(n, 1.0f, 0.0f);
    struct dpair x = dp_floats(hx, n);
    double out_f = NAN, out_r = NAN;
    double *df = fast->iface->alloc(fast, sizeof(double)), *dr = ref->iface->alloc(ref, sizeof(double));
    fast->iface->sum_squares(fast, df, F(x), n);
    ref->iface->sum_squares(ref, dr, R(x), n);
    fast->iface->download(fast, &out_f, df, sizeof out_f);
    ref->iface->download(ref, &out_r, dr, sizeof out_r);
    (void)oc;
    tap_ok(memcmp(&out_f, &out_r, sizeof out_f) == 0, "sum_squares n=%zu %s == cpu-ref bitwise (%.17g, %.17g) [%s]",
           n, fast->iface->name(fast), out_f, out_r, s->name);
    fast->iface->dealloc(fast, df), ref->iface->dealloc(ref, dr);
    dp_free(&x), free(hx);
}

static void t_count_nonfinite(const struct op_case *oc, const struct shape *s)
{
    size_t n = s->n;
    float *hx = host_rand(n, 1e30f, 0.0f);
    static const float bad[] = {NAN, INFINITY, -INFINITY, -NAN};
    int nbad = 0;
    for (int i = 0; i < 11; i++) {
        size_t at = (size_t)irand((int)n);
        if (isfinite(hx[at])) nbad++;
        hx[at] = bad[i % 4];
    }
    hx[n - 1] = hx[n - 1] * 1e10f; /* overflows to inf unless tiny */
    if (!isfinite(hx[n - 1])) nbad = -1; /* recount below */
    if (nbad < 0) {
        nbad = 0;
        for (size_t i = 0; i < n; i++) nbad += !isfinite(hx[i]);
    }
    struct dpair x = dp_floats(hx, n);
    double out_f = -1, out_r = -1;
    double *df = fast->iface->alloc(fast, sizeof(double)), *dr = ref->iface->alloc(ref, sizeof(double));
    fast->iface->count_nonfinite(fast, df, F(x), n);
    ref->iface->count_nonfinite(ref, dr, R(x), n);
    fast->iface->download(fast, &out_f, df, sizeof out_f);
    ref->iface->download(ref, &out_r, dr, sizeof out_r);
    (void)oc;
    tap_ok(out_f == nbad && out_r == nbad, "count_nonfinite n=%zu %s %.0f ref %.0f expected %d [%s]", n,
           fast->iface->name(fast), out_f,
           out_r, nbad, s->name);
    fast->iface->dealloc(fast, df), ref->iface->dealloc(ref, dr);
    dp_free(&x), free(hx);
}

/* The table: tolerances are stated here, per op, with the reason. */
static const struct op_case CASES[] = {
    /* copies and at most one add, done the same way: exact */
    {"embed_fwd", t_embed_fwd, 0, 0},
    /* the same float adds in the same (b,t) order: exact */
    {"embed_bwd", t_embed_bwd, 0, 0},
    /* float vs double arithmetic on values ~1-10: a few ulp */
    {"layernorm_fwd", t_layernorm_fwd, 1e-5, 1e-5},
    /* dinp: short float sums vs double; dw, db: column sums over N rows */
    {"layernorm_bwd", t_layernorm_bwd, 1e-5, 1e-4},
    {"bias_add", t_bias_add, 0, 0},     /* one float add */
    {"bias_bwd", t_bias_bwd, 1e-6, 1e-6}, /* double sums in the same order */
    /* fast_expf (2 ulp) vs double tanh */
    {"gelu_fwd", t_gelu_fwd, 1e-6, 1e-5},
    {"gelu_bwd", t_gelu_bwd, 1e-6, 1e-5},
    {"add", t_add, 0, 0},
    {"scale", t_scale, 0, 0},
    /* float dot products over HS and sums over T vs double */
    {"attn_fwd", t_attn_fwd, 1e-5, 1e-4},
    {"attn_bwd", t_attn_bwd, 1e-5, 1e-4},
    /* float exp and a double sum over V vs double exp (xent_max is exact,
     * xent_bwd uses an absolute floor of 1e-8) */
    {"xent", t_xent, 1e-5, 1e-5},
    /* float vs double update, values ~1, steps ~1e-3 */
    {"adamw", t_adamw, 1e-7, 1e-6},
    {"sum_squares", t_sum_squares, 0, 0},         /* bitwise, by contract */
    {"count_nonfinite", t_count_nonfinite, 0, 0}, /* an exact count */
};
enum { NCASES = sizeof CASES / sizeof CASES[0] };

/* ---- GEMM: every transpose, padded ld, batches with gaps, alpha and beta ---------------
 * Tolerance: inputs U[-1,1), float accumulation (blocked or BLAS) against a
 * double sum over k <= 768: |C| ~ sqrt(k)/3 and the error ~ 1e-6 |C|. */
static const double GEMM_ATOL = 1e-4, GEMM_RTOL = 1e-4;

struct gemm_dims {
    int m, n, k;
    int full; /* also run the ld/batch/alpha/beta variants */
};
static const struct gemm_dims GEMM_DIMS[] = {
    {1, 1, 1, 1},     {7, 13, 5, 1},      {33, 17, 65, 1},
    {100, 530, 300, 1}, /* > one MC and NC tile and one KC slice of the blocked GEMM */
    {64, 768, 768, 0},  /* a 124M projection, fewer rows */
    {5, 3, 0, 0},       /* k = 0: C = beta C */
};

static void test_gemm_one(int m, int n, int k, enum mt_trans ta, enum mt_trans tb, int pad, int batch,
                          float alpha, float beta)
{
    /* stored shapes: A is (m,k) or (k,m), B is (k,n) or (n,k) */
    int arows = ta == MT_TRANS_N ? m : k, acols = ta == MT_TRANS_N ? k : m;
    int brows = tb == MT_TRANS_N ? k : n, bcols = tb == MT_TRANS_N ? n : k;
    int lda = acols + pad, ldb = bcols + 2 * pad, ldc = n + 3 * pad;
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    int64_t gap = batch > 1 ? 11 : 0; /* batches not packed back to back */
    int64_t sa = (int64_t)arows * lda + gap, sb = (int64_t)brows * ldb + gap, sc = (int64_t)m * ldc + gap;
    size_t na = (size_t)(sa * batch), nb = (size_t)(sb * batch), nc = (size_t)(sc * batch);
    float *ha = host_rand(na ? na : 1, 1.0f, 0.0f), *hb = host_rand(nb ? nb : 1, 1.0f, 0.0f);
    float *hc = beta == 0.0f ? host_fill(nc, NAN) : host_rand(nc, 1.0f, 0.0f);
    /* the gaps and the padding must survive: mark them */
    for (int p = 0; p < batch; p++)
        for (int i = 0; i < m; i++)
            for (int j = n; j < ldc; j++) hc[p * sc + (int64_t)i * ldc + j] = -7.0f;
    struct dpair a = dp_floats(ha, na ? na : 1), b = dp_floats(hb, nb ? nb : 1), c = dp_floats(hc, nc);
    struct mt_gemm_args g = {ta, tb, m, n, k, batch, alpha, beta, NULL, lda, sa, NULL, ldb, sb, NULL, ldc, sc};
    g.a = F(a), g.b = F(b), g.c = F(c);
    fast->iface->gemm(fast, &g);
    g.a = R(a), g.b = R(b), g.c = R(c);
    ref->iface->gemm(ref, &g);
    struct cmp cm = cmp_init(GEMM_ATOL, GEMM_RTOL);
    cmp_pair(&cm, "C", c, nc);
    cmp_report(&cm, "gemm %c%c m=%d n=%d k=%d batch=%d ld+%d alpha=%g beta=%g%s", ta ? 'T' : 'N', tb ? 'T' : 'N',
               m, n, k, batch, pad, alpha, beta, beta == 0.0f ? " (C was NaN)" : "");
    dp_free(&a), dp_free(&b), dp_free(&c);
    free(ha), free(hb), free(hc);
}

static void test_gemm(void)
{
    for (size_t d = 0; d < sizeof GEMM_DIMS / sizeof GEMM_DIMS[0]; d++) {
        const struct gemm_dims *gd = &GEMM_DIMS[d];
        for (int t = 0; t < 4; t++) {
            enum mt_trans ta = t & 1 ? MT_TRANS_T : MT_TRANS_N, tb = t & 2 ? MT_TRANS_T : MT_TRANS_N;
            test_gemm_one(gd->m, gd->n, gd->k, ta, tb, 0, 1, 1.0f, 0.0f); /* plain, over NaN */
            if (!gd->full) continue;
            test_gemm_one(gd->m, gd->n, gd->k, ta, tb, 3, 1, 0.5f, 1.0f);  /* padded ld, accumulate */
            test_gemm_one(gd->m, gd->n, gd->k, ta, tb, 1, 3, 1.5f, -0.5f); /* batch with gaps */
            test_gemm_one(gd->m, gd->n, gd->k, ta, tb, 2, 2, -1.0f, 0.0f); /* batch over NaN */
        }
    }
}

/* ---- thread-count independence ------------------------------------------------------------- */

#ifdef _OPENMP
/* Runs the cpu reductions at 1 and 2 threads and compares the bytes. */
static void test_thread_determinism(void)
{
    int N = 256, C = 768, V = 300, T = 64, B = N / T;
    size_t nss = 100 * MT_REDUCE_BLOCK + 123;
    float *hx = host_rand((size_t)N * C, 2.0f, 1.0f), *hd = host_rand((size_t)N * C, 1.0f, 0.0f);
    float *hw = host_rand(C, 1.0f, 1.0f), *hmean = xmalloc(N * sizeof(float)), *hrstd = xmalloc(N * sizeof(float));
    float *hss = host_rand(nss, 1.0f, 0.0f);
    int32_t *tok = xmalloc((size_t)N * sizeof *tok);
    for (int i = 0; i < N; i++) tok[i] = irand(7); /* many repeats */
    host_ln_stats(hx, N, C, hmean, hrstd);
    const char *names[] = {"bias_bwd", "layernorm_bwd", "embed_bwd", "sum_squares"};
    size_t sizes[] = {(size_t)C, (size_t)N * C + 2 * C, (size_t)V * C + (size_t)T * C, 2};
    float *res[2][4];
    int saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r + 1);
        /* bias_bwd */
        float *db = calloc(C, sizeof(float));
        fast->iface->bias_bwd(fast, db, hd, N, C);
        res[r][0] = db;
        /* layernorm_bwd: dinp, dw, db in one array */
        float *lo = calloc((size_t)N * C + 2 * C, sizeof(float));
        fast->iface->layernorm_bwd(fast, lo, lo + (size_t)N * C, lo + (size_t)N * C + C, hd, hx, hw, hmean, hrstd, N, C);
        res[r][1] = lo;
        /* embed_bwd: dwte (V,C) then dwpe (T,C) */
        float *eo = calloc((size_t)V * C + (size_t)T * C, sizeof(float));
        fast->iface->embed_bwd(fast, eo, eo + (size_t)V * C, hd, tok, B, T, C, 0, V);
        res[r][2] = eo;
        /* sum_squares: a double, kept as two floats' worth of bytes */
        float *so = calloc(2, sizeof(float));
        fast->iface->sum_squares(fast, (double *)(void *)so, hss, nss);
        res[r][3] = so;
    }
    omp_set_num_threads(saved);
    for (int i = 0; i < 4; i++) {
        tap_ok(memcmp(res[0][i], res[1][i], sizes[i] * sizeof(float)) == 0,
               "%s bitwise equal with 1 and 2 OpenMP threads (N=%d C=%d)", names[i], N, C);
        free(res[0][i]), free(res[1][i]);
    }
    free(hx), free(hd), free(hw), free(hmean), free(hrstd), free(hss), free(tok);
}
#endif

/* ---- memory members, vtables, communicator --------------------------------------------- */

static void test_memory(mt_backend *be)
{
    const char *nm = be->iface->name(be);
    /* memset0 */
    size_t n = 1000;
    float *h = host_rand(n, 1.0f, 0.0f), *back = xmalloc(n * sizeof(float));
    float *d = be->iface->alloc(be, n * sizeof(float));
    be->iface->upload(be, d, h, n * sizeof(float));
    be->iface->memset0(be, d + 10, 100 * sizeof(float));
    be->iface->download(be, back, d, n * sizeof(float));
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= back[i] == (i >= 10 && i < 110 ? 0.0f : h[i]);
    tap_ok(ok, "memset0 zeroes exactly its range [%s]", nm);
    /* copy_2d: a (7 x 5) block out of a (7 x 9) matrix into a (7 x 6) one, then contiguous */
    float *src = be->iface->alloc(be, 63 * sizeof(float)), *dst = be->iface->alloc(be, 42 * sizeof(float));
    float hs[63], hd[42], out[42];
    for (int i = 0; i < 63; i++) hs[i] = (float)i;
    for (int i = 0; i < 42; i++) hd[i] = -1.0f;
    be->iface->upload(be, src, hs, sizeof hs);
    be->iface->upload(be, dst, hd, sizeof hd);
    be->iface->copy_2d(be, dst, 6 * sizeof(float), src + 2, 9 * sizeof(float), 5 * sizeof(float), 7);
    be->iface->download(be, out, dst, sizeof out);
    ok = 1;
    for (int r = 0; r < 7; r++)
        for (int c = 0; c < 6; c++) ok &= out[r * 6 + c] == (c < 5 ? hs[r * 9 + 2 + c] : -1.0f);
    be->iface->copy_2d(be, dst, 0, src, 0, 42 * sizeof(float), 1);
    be->iface->download(be, out, dst, sizeof out);
    for (int i = 0; i < 42; i++) ok &= out[i] == hs[i];
    tap_ok(ok, "copy_2d pitched and contiguous [%s]", nm);
    void *z = be->iface->alloc(be, 0);
    tap_ok(z != NULL && ((uintptr_t)d & 63) == 0, "alloc: 64-byte aligned, size 0 gives a pointer [%s]", nm);
    be->iface->dealloc(be, z);
    be->iface->dealloc(be, d), be->iface->dealloc(be, src), be->iface->dealloc(be, dst);
    free(h), free(back);
}

/* Every mandatory member set; the name is want ("cuda-emu" for the emulation
 * of "cuda" in test_ops_emu). */
static void test_iface(mt_backend *be, const char *want)
{
    const char *missing = "";
    int complete = mt_backend_iface_complete(be->iface, &missing);
    const char *nm = be->iface->name(be);
    tap_ok(complete && strncmp(nm, want, strlen(want)) == 0,
           "vtable \"%s\": mandatory members set%s%s, name \"%s\"", want,
           complete ? "" : ", missing ", missing, nm);
}

static void test_comm(mt_backend *be)
{
    const char *nm = be->iface->name(be);
    mt_comm *w = be->iface->comm_world(be);
    int ok = w && be->iface->comm_rank(w) == 0 && be->iface->comm_size(w) == 1 && be->iface->comm_world(be) == w;
    mt_comm *sub = be->iface->comm_split(be, w, 3, 0);
    ok &= sub && sub != w && be->iface->comm_rank(sub) == 0 && be->iface->comm_size(sub) == 1;
    float buf[5] = {1, 2, 3, 4, 5}, recv[5] = {0};
    be->iface->all_reduce(be, w, buf, 5, MT_DTYPE_F32, MT_REDOP_AVG);
    be->iface->all_reduce(be, sub, buf, 5, MT_DTYPE_F32, MT_REDOP_SUM);
    be->iface->broadcast(be, w, buf, 5, MT_DTYPE_F32, 0);
    for (int i = 0; i < 5; i++) ok &= buf[i] == (float)(i + 1);
    be->iface->all_gather(be, sub, recv, buf, 5, MT_DTYPE_F32);
    for (int i = 0; i < 5; i++) ok &= recv[i] == buf[i];
    double dsend[3] = {1.5, 2.5, 3.5}, drecv[3] = {0};
    be->iface->reduce_scatter(be, w, drecv, dsend, 3, MT_DTYPE_F64, MT_REDOP_SUM);
    for (int i = 0; i < 3; i++) ok &= drecv[i] == dsend[i];
    be->iface->all_gather(be, w, buf, buf, 5, MT_DTYPE_F32); /* in place */
    be->iface->reduce_scatter(be, w, buf, buf, 5, MT_DTYPE_F32, MT_REDOP_MAX);
    for (int i = 0; i < 5; i++) ok &= buf[i] == (float)(i + 1);
    be->iface->comm_free(be, sub);
    be->iface->comm_free(be, w); /* the world belongs to the backend: a no-op */
    ok &= be->iface->comm_world(be) == w && be->iface->comm_size(w) == 1;
    tap_ok(ok, "world of one: rank 0 size 1, split, collectives are copies or no-ops [%s]", nm);
}

/* The same op cases, GEMMs and memory members with "cuda" in the place of
 * "cpu" (the same tolerances). The communicator test passes host buffers,
 * so it stays CPU-only; the CUDA world of one is exercised by training. */
static void test_cuda(void)
{
    char err[256] = "";
    mt_backend *cuda = mt_backend_init("cuda", err, sizeof err);
    if (!cuda) {
#ifdef HAVE_CUDA
        const char *why = "no CUDA device";
#else
        const char *why = "CUDA backend not built";
#endif
        tap_diag("cuda: %s", err);
        tap_skip(why, "vtable \"cuda\"");
        tap_skip(why, "gemm, every variant [cuda]");
        for (int c = 0; c < NCASES; c++)
            for (int s = 0; s < NSHAPES; s++) tap_skip(why, "%s [%s] [cuda]", CASES[c].name, SHAPES[s].name);
        tap_skip(why, "memory members [cuda]");
        return;
    }
    mt_backend *cpu = fast;
    fast = cuda;
    test_iface(cuda, "cuda");
    test_gemm();
    for (int c = 0; c < NCASES; c++)
        for (int s = 0; s < NSHAPES; s++) CASES[c].run(&CASES[c], &SHAPES[s]);
    test_memory(cuda);
    cuda->iface->free(cuda);
    fast = cpu;
}

int main(void)
{
    fast = mt_backend_cpu_create(0);
    ref = mt_backend_cpu_create(1);
#ifdef MT_CUDA_EMU_TEST
    /* tests/test_ops_emu: the CUDA backend's source on the CPU emulation;
     * the CPU cases are test_ops's */
    tap_diag("cuda: the backend's source run on the CPU emulation (backends/cuda/emu)");
    test_cuda();
    fast->iface->free(fast);
    ref->iface->free(ref);
    return tap_done();
#endif
#ifdef _OPENMP
    tap_diag("OpenMP: %d threads", omp_get_max_threads());
#else
    tap_diag("built without OpenMP");
#endif
#ifdef HAVE_BLAS
    tap_diag("cpu gemm: cblas_sgemm");
#else
    tap_diag("cpu gemm: blocked C fallback");
#endif
    test_iface(fast, "cpu");
    test_iface(ref, "cpu-ref");
    test_gemm();
    for (int c = 0; c < NCASES; c++)
        for (int s = 0; s < NSHAPES; s++) CASES[c].run(&CASES[c], &SHAPES[s]);
#ifdef _OPENMP
    test_thread_determinism();
#else
    for (int i = 0; i < 4; i++) tap_skip("built without OpenMP", "thread-count determinism check %d", i + 1);
#endif
    test_memory(fast);
    test_memory(ref);
    test_comm(fast);
    test_comm(ref);
    test_cuda();
    fast->iface->free(fast);
    ref->iface->free(ref);
    return tap_done();
}
