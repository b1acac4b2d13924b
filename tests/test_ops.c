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
#include "core/half.h"
#include "core/philox.h"
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
    int64_t rows, cols; /* as a tensor: rows x cols of f32 (i32 for dp_ids) */
    enum mt_dtype dtype;
};

static struct dpair dp_new(const void *host, size_t bytes)
{
    struct dpair p = {fast->iface->alloc(fast, bytes), ref->iface->alloc(ref, bytes), bytes,
                      1, (int64_t)(bytes / 4), MT_DTYPE_F32};
    assert(p.f && p.r);
    assert(((uintptr_t)p.f & 63) == 0 && ((uintptr_t)p.r & 63) == 0);
    fast->iface->upload(fast, p.f, host, bytes);
    ref->iface->upload(ref, p.r, host, bytes);
    return p;
}

/* floats from a host array */
static struct dpair dp_floats(const float *host, size_t n) { return dp_new(host, n * sizeof(float)); }

/* the pair seen as rows x cols tensors */
static struct dpair dp_shape(struct dpair p, int64_t rows, int64_t cols)
{
    assert(rows * cols * 4 == (int64_t)p.bytes);
    p.rows = rows, p.cols = cols;
    return p;
}

/* rows x cols floats from a host array, as a tensor pair */
static struct dpair dp_mat(const float *host, int64_t rows, int64_t cols)
{
    return dp_shape(dp_floats(host, (size_t)(rows * cols)), rows, cols);
}

/* rows x cols floats equal to v */
static struct dpair dp_cmat(int64_t rows, int64_t cols, float v);

/* n int32 ids as a (1, n) tensor pair */
static struct dpair dp_ids(const int32_t *host, size_t n)
{
    struct dpair p = dp_new(host, n * sizeof *host);
    p.rows = 1, p.cols = (int64_t)n, p.dtype = MT_DTYPE_I32;
    return p;
}

/* n floats all equal to v (NaN to prove an output is overwritten) */
static struct dpair dp_const(size_t n, float v)
{
    float *h = host_fill(n, v);
    struct dpair p = dp_floats(h, n);
    free(h);
    return p;
}

static struct dpair dp_cmat(int64_t rows, int64_t cols, float v)
{
    return dp_shape(dp_const((size_t)(rows * cols), v), rows, cols);
}

static void dp_free(struct dpair *p)
{
    fast->iface->dealloc(fast, p->f);
    ref->iface->dealloc(ref, p->r);
}

#define F(p) ((float *)(p).f)
#define R(p) ((float *)(p).r)
/* the fast and ref tensors of a pair */
#define TF(p) mt_tensor_of((p).f, (p).dtype, (p).rows, (p).cols)
#define TR(p) mt_tensor_of((p).r, (p).dtype, (p).rows, (p).cols)
/* a statement run on both backends: ON(X) names the pair's side */
#define BOTH(stmt) \
    do { \
        for (int side_ = 0; side_ < 2; side_++) { \
            mt_backend *be = side_ ? ref : fast; \
            (void)be; \
            stmt; \
        } \
    } while (0)
#define ON(p) (side_ ? TR(p) : TF(p))

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
    int C = s->C, V = emb_vocab(s), N = s->B * s->T;
    /* variants: whole vocabulary; a shard [V/3, V/3 + V/2) with ids outside
     * it; the shard accumulated into a non-zero output (a position table
     * added after the word embedding) */
    for (int variant = 0; variant < 3; variant++) {
        int off = variant ? V / 3 : 0, Vl = variant ? V / 2 + 1 : V, acc = variant == 2;
        int32_t *tok = xmalloc((size_t)N * sizeof *tok);
        for (int i = 0; i < N; i++) tok[i] = irand(V);
        float *ht = host_rand((size_t)Vl * C, 1.0f, 0.0f), *ho = host_rand((size_t)N * C, 1.0f, 0.0f);
        struct dpair ids = dp_ids(tok, (size_t)N), table = dp_mat(ht, Vl, C),
                     out = acc ? dp_mat(ho, N, C) : dp_cmat(N, C, NAN);
        BOTH(be->iface->embed_fwd(be, ON(out), ON(ids), ON(table), off, acc));
        struct cmp c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "out", out, (size_t)N * C);
        static const char *vname[] = {"full", "shard", "shard accumulate"};
        cmp_report(&c, "%s %s [%s]", oc->name, vname[variant], s->name);
        dp_free(&ids), dp_free(&table), dp_free(&out);
        free(tok), free(ht), free(ho);
    }
}

static void t_embed_bwd(const struct op_case *oc, const struct shape *s)
{
    int C = s->C, V = emb_vocab(s), N = s->B * s->T;
    for (int variant = 0; variant < 2; variant++) {
        int off = variant ? V / 3 : 0, Vl = variant ? V / 2 + 1 : V;
        int32_t *tok = xmalloc((size_t)N * sizeof *tok);
        /* ids from a narrow range so that rows repeat (the ordered sums) */
        for (int i = 0; i < N; i++) tok[i] = off + irand(Vl < 5 ? Vl : 5) + (variant && i % 3 == 0 ? -off : 0);
        float *hd = host_rand((size_t)N * C, 1.0f, 0.0f), *hdt = host_rand((size_t)Vl * C, 1.0f, 0.0f);
        struct dpair ids = dp_ids(tok, (size_t)N), dout = dp_mat(hd, N, C), dtab = dp_mat(hdt, Vl, C);
        BOTH(be->iface->embed_bwd(be, ON(dtab), ON(dout), ON(ids), off));
        struct cmp c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "dtable", dtab, (size_t)Vl * C);
        cmp_report(&c, "%s %s [%s]", oc->name, variant ? "shard" : "full", s->name);
        dp_free(&ids), dp_free(&dout), dp_free(&dtab);
        free(tok), free(hd), free(hdt);
    }
}

static const double LN_EPS = 1e-5, RMS_EPS = 1e-6;

static void t_layernorm_fwd(const struct op_case *oc, const struct shape *s)
{
    int N = s->B * s->T, C = s->C;
    float *hx = host_rand((size_t)N * C, 2.0f, 3.0f); /* mean 3: centering matters */
    float *hw = host_rand(C, 1.0f, 1.0f), *hb = host_rand(C, 0.5f, 0.0f);
    struct dpair x = dp_mat(hx, N, C), w = dp_mat(hw, 1, C), b = dp_mat(hb, 1, C),
                 out = dp_cmat(N, C, NAN), mean = dp_cmat(1, N, NAN), rstd = dp_cmat(1, N, NAN);
    BOTH(be->iface->layernorm_fwd(be, ON(out), ON(mean), ON(rstd), ON(x), ON(w), ON(b), LN_EPS));
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "out", out, (size_t)N * C);
    cmp_pair(&c, "mean", mean, N);
    cmp_pair(&c, "rstd", rstd, N);
    cmp_report(&c, "%s N=%d C=%d [%s]", oc->name, N, C, s->name);
    dp_free(&x), dp_free(&w), dp_free(&b), dp_free(&out), dp_free(&mean), dp_free(&rstd);
    free(hx), free(hw), free(hb);
}

/* mean and rstd of x (N,C) on the host, in double, as the forward saves
 * them; rms = 1: no centring (RMSNorm), mean is then 0 */
static void host_norm_stats(const float *x, int N, int C, float *mean, float *rstd, int rms)
{
    for (int n = 0; n < N; n++) {
        double s = 0, ss = 0;
        for (int c = 0; c < C; c++) s += x[(size_t)n * C + c];
        double mu = rms ? 0.0 : s / C;
        for (int c = 0; c < C; c++) ss += (x[(size_t)n * C + c] - mu) * (x[(size_t)n * C + c] - mu);
        if (mean) mean[n] = (float)mu;
        rstd[n] = (float)(1.0 / sqrt(ss / C + (rms ? RMS_EPS : LN_EPS)));
    }
}

static void t_layernorm_bwd(const struct op_case *oc, const struct shape *s)
{
    int N = s->B * s->T, C = s->C;
    float *hx = host_rand((size_t)N * C, 2.0f, 3.0f), *hw = host_rand(C, 1.0f, 1.0f);
    float *hd = host_rand((size_t)N * C, 1.0f, 0.0f);
    float *hmean = xmalloc(N * sizeof(float)), *hrstd = xmalloc(N * sizeof(float));
    host_norm_stats(hx, N, C, hmean, hrstd, 0);
    /* gradients start non-zero: the member accumulates */
    float *hdi = host_rand((size_t)N * C, 1.0f, 0.0f), *hdw = host_rand(C, 1.0f, 0.0f), *hdb = host_rand(C, 1.0f, 0.0f);
    struct dpair x = dp_mat(hx, N, C), w = dp_mat(hw, 1, C), dout = dp_mat(hd, N, C),
                 mean = dp_mat(hmean, 1, N), rstd = dp_mat(hrstd, 1, N), dinp = dp_mat(hdi, N, C),
                 dw = dp_mat(hdw, 1, C), db = dp_mat(hdb, 1, C);
    BOTH(be->iface->layernorm_bwd(be, ON(dinp), ON(dw), ON(db), ON(dout), ON(x), ON(w), ON(mean), ON(rstd)));
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "dinp", dinp, (size_t)N * C);
    cmp_pair(&c, "dw", dw, C);
    cmp_pair(&c, "db", db, C);
    cmp_report(&c, "%s N=%d C=%d [%s]", oc->name, N, C, s->name);
    dp_free(&x), dp_free(&w), dp_free(&dout), dp_free(&mean), dp_free(&rstd), dp_free(&dinp), dp_free(&dw), dp_free(&db);
    free(hx), free(hw), free(hd), free(hmean), free(hrstd), free(hdi), free(hdw), free(hdb);
}

static void t_rmsnorm_fwd(const struct op_case *oc, const struct shape *s)
{
    int N = s->B * s->T, C = s->C;
    float *hx = host_rand((size_t)N * C, 2.0f, 1.0f), *hw = host_rand(C, 1.0f, 1.0f);
    struct dpair x = dp_mat(hx, N, C), w = dp_mat(hw, 1, C), out = dp_cmat(N, C, NAN),
                 rstd = dp_cmat(1, N, NAN);
    BOTH(be->iface->rmsnorm_fwd(be, ON(out), ON(rstd), ON(x), ON(w), RMS_EPS));
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "out", out, (size_t)N * C);
    cmp_pair(&c, "rstd", rstd, N);
    cmp_report(&c, "%s N=%d C=%d [%s]", oc->name, N, C, s->name);
    dp_free(&x), dp_free(&w), dp_free(&out), dp_free(&rstd);
    free(hx), free(hw);
}

static void t_rmsnorm_bwd(const struct op_case *oc, const struct shape *s)
{
    int N = s->B * s->T, C = s->C;
    float *hx = host_rand((size_t)N * C, 2.0f, 1.0f), *hw = host_rand(C, 1.0f, 1.0f);
    float *hd = host_rand((size_t)N * C, 1.0f, 0.0f), *hrstd = xmalloc(N * sizeof(float));
    host_norm_stats(hx, N, C, NULL, hrstd, 1);
    float *hdi = host_rand((size_t)N * C, 1.0f, 0.0f), *hdw = host_rand(C, 1.0f, 0.0f);
    struct dpair x = dp_mat(hx, N, C), w = dp_mat(hw, 1, C), dout = dp_mat(hd, N, C),
                 rstd = dp_mat(hrstd, 1, N), dinp = dp_mat(hdi, N, C), dw = dp_mat(hdw, 1, C);
    BOTH(be->iface->rmsnorm_bwd(be, ON(dinp), ON(dw), ON(dout), ON(x), ON(w), ON(rstd)));
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "dinp", dinp, (size_t)N * C);
    cmp_pair(&c, "dw", dw, C);
    cmp_report(&c, "%s N=%d C=%d [%s]", oc->name, N, C, s->name);
    dp_free(&x), dp_free(&w), dp_free(&dout), dp_free(&rstd), dp_free(&dinp), dp_free(&dw);
    free(hx), free(hw), free(hd), free(hrstd), free(hdi), free(hdw);
}

static void t_bias_add(const struct op_case *oc, const struct shape *s)
{
    int N = s->B * s->T, C = s->C;
    float *hy = host_rand((size_t)N * C, 1.0f, 0.0f), *hb = host_rand(C, 1.0f, 0.0f);
    struct dpair y = dp_mat(hy, N, C), b = dp_mat(hb, 1, C);
    BOTH(be->iface->bias_add(be, ON(y), ON(b)));
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "y", y, (size_t)N * C);
    cmp_report(&c, "%s N=%d C=%d [%s]", oc->name, N, C, s->name);
    dp_free(&y), dp_free(&b), free(hy), free(hb);
}

static void t_bias_bwd(const struct op_case *oc, const struct shape *s)
{
    int N = s->B * s->T, C = s->C;
    float *hd = host_rand((size_t)N * C, 1.0f, 0.0f), *hb = host_rand(C, 1.0f, 0.0f);
    struct dpair dy = dp_mat(hd, N, C), db = dp_mat(hb, 1, C);
    BOTH(be->iface->bias_bwd(be, ON(db), ON(dy)));
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "dbias", db, C);
    cmp_report(&c, "%s N=%d C=%d [%s]", oc->name, N, C, s->name);
    dp_free(&dy), dp_free(&db), free(hd), free(hb);
}

static const char *const ACT_NAMES[] = {"gelu_tanh", "gelu", "tanh"};

static void t_act_fwd(const struct op_case *oc, const struct shape *s)
{
    size_t n = s->n;
    float *hx = host_rand(n, 6.0f, 0.0f); /* both tails and the bend */
    for (int k = 0; k < 3; k++) {
        const enum mt_act act = (enum mt_act)k;
        struct dpair x = dp_floats(hx, n), out = dp_const(n, NAN);
        BOTH(be->iface->act_fwd(be, ON(out), ON(x), act));
        struct cmp c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "out", out, n);
        cmp_report(&c, "%s %s n=%zu [%s]", oc->name, ACT_NAMES[k], n, s->name);
        dp_free(&x), dp_free(&out);
    }
    free(hx);
}

static void t_act_bwd(const struct op_case *oc, const struct shape *s)
{
    size_t n = s->n;
    float *hx = host_rand(n, 6.0f, 0.0f), *hd = host_rand(n, 1.0f, 0.0f);
    for (int k = 0; k < 3; k++)
        for (int alias = 0; alias < 2; alias++) {
            const enum mt_act act = (enum mt_act)k;
            struct dpair x = dp_floats(hx, n), dout = dp_floats(hd, n), dinp = dp_const(n, NAN);
            struct dpair *dst = alias ? &dout : &dinp; /* alias: dinp == dout */
            BOTH(be->iface->act_bwd(be, ON(*dst), ON(x), ON(dout), act));
            struct cmp c = cmp_init(oc->atol, oc->rtol);
            cmp_pair(&c, "dinp", *dst, n);
            cmp_report(&c, "%s %s%s n=%zu [%s]", oc->name, ACT_NAMES[k], alias ? " in-place" : "", n,
                       s->name);
            dp_free(&x), dp_free(&dout), dp_free(&dinp);
        }
    free(hx), free(hd);
}

/* swiglu over (N, F) with F = the shape's C (inputs (N, 2F)) */
static void t_swiglu_fwd(const struct op_case *oc, const struct shape *s)
{
    int N = s->B * s->T, F = s->C;
    float *hx = host_rand((size_t)N * 2 * F, 6.0f, 0.0f);
    struct dpair x = dp_mat(hx, N, 2 * F), out = dp_cmat(N, F, NAN);
    BOTH(be->iface->swiglu_fwd(be, ON(out), ON(x)));
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "out", out, (size_t)N * F);
    cmp_report(&c, "%s N=%d F=%d [%s]", oc->name, N, F, s->name);
    dp_free(&x), dp_free(&out), free(hx);
}

static void t_swiglu_bwd(const struct op_case *oc, const struct shape *s)
{
    int N = s->B * s->T, F = s->C;
    float *hx = host_rand((size_t)N * 2 * F, 6.0f, 0.0f), *hd = host_rand((size_t)N * F, 1.0f, 0.0f);
    struct dpair x = dp_mat(hx, N, 2 * F), dout = dp_mat(hd, N, F), dinp = dp_cmat(N, 2 * F, NAN);
    BOTH(be->iface->swiglu_bwd(be, ON(dinp), ON(x), ON(dout)));
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "dinp", dinp, (size_t)N * 2 * F);
    cmp_report(&c, "%s N=%d F=%d [%s]", oc->name, N, F, s->name);
    dp_free(&x), dp_free(&dout), dp_free(&dinp), free(hx), free(hd);
}

static void t_add(const struct op_case *oc, const struct shape *s)
{
    size_t n = s->n;
    float *ha = host_rand(n, 1.0f, 0.0f), *hb = host_rand(n, 1.0f, 0.0f);
    for (int alias = 0; alias < 2; alias++) {
        struct dpair a = dp_floats(ha, n), b = dp_floats(hb, n), out = dp_const(n, NAN);
        struct dpair *dst = alias ? &a : &out; /* alias: out == a (the residual add) */
        BOTH(be->iface->add(be, ON(*dst), ON(a), ON(b)));
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
    BOTH(be->iface->scale(be, ON(x), 0.37f));
    struct cmp c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "x", x, n);
    cmp_report(&c, "%s n=%zu [%s]", oc->name, n, s->name);
    dp_free(&x), free(hx);
}

/* values that exercise every branch of the rounding: ties (an f32 exactly
 * between two halves, odd and even), fp16's overflow edge (65504 is its
 * largest value, 65520 the first that rounds to inf), its subnormals and
 * underflow, bf16's carry into the exponent, NaN and the infinities; then
 * random values over many magnitudes */
static float *round_inputs(size_t n)
{
    static const float special[] = {0.0f, -0.0f, 1.0f, 1.00390625f /* 1 + 2^-8: bf16 tie, even */,
                                    1.01171875f /* 1 + 3 2^-8: tie, odd */, 1.00048828125f /* fp16 tie */,
                                    65504.0f, 65519.0f, 65520.0f, -65520.0f, 1e6f, 6.0e-8f, 2.9e-8f, 3.0e-8f,
                                    1e-9f, 3.3895314e38f /* bf16 carries to inf */, INFINITY, -INFINITY, NAN};
    float *x = host_rand(n, 1.0f, 0.0f);
    for (size_t i = 0; i < n; i++) x[i] *= powf(2.0f, (float)(irand(60) - 30));
    for (size_t i = 0; i < n && i < sizeof special / sizeof special[0]; i++) x[i] = special[i];
    /* by their bits: NaNs with payloads, 2^-14 (fp16's smallest normal) and
     * the float below it, 2^-25 (a tie to zero), 3 2^-25 (a tie up), the
     * float below 65520 */
    static const uint32_t bits[] = {0x7f801234u, 0xffc00001u, 0x7fbfe000u, 0x38800000u, 0x387fffffu,
                                    0x33000000u, 0x33c00000u, 0x477fefffu, 0xb87fffffu};
    const size_t off = sizeof special / sizeof special[0];
    for (size_t i = 0; off + i < n && i < sizeof bits / sizeof bits[0]; i++) memcpy(&x[off + i], &bits[i], 4);
    return x;
}

/* round_half: fast vs ref bitwise, and ref against core/half.h on the host */
static void t_round_half(const struct op_case *oc, const struct shape *s)
{
    const size_t n = s->n;
    float *hx = round_inputs(n), *got = xmalloc(n * sizeof *got);
    for (int t = 0; t < 2; t++) {
        const enum mt_dtype to = t ? MT_DTYPE_F16 : MT_DTYPE_BF16;
        struct dpair x = dp_floats(hx, n);
        BOTH(be->iface->round_half(be, ON(x), to));
        struct cmp c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "x", x, n);
        cmp_report(&c, "%s %s n=%zu [%s]", oc->name, mt_dtype_name(to), n, s->name);
        ref->iface->download(ref, got, x.r, n * sizeof *got);
        long bad = 0;
        for (size_t i = 0; i < n; i++) {
            const float want = t ? mt_round_f16(hx[i]) : mt_round_bf16(hx[i]);
            if (memcmp(&want, &got[i], 4) != 0 && !(isnan(want) && isnan(got[i])) && bad++ == 0)
                tap_diag("  x[%zu] = %.9g: ref %.9g, core/half.h %.9g", i, hx[i], got[i], want);
        }
        tap_ok(bad == 0, "%s %s n=%zu [%s]: ref equals core/half.h bit for bit (%ld differ)", oc->name,
               mt_dtype_name(to), n, s->name, bad);
        dp_free(&x);
        /* to_half: the same rounding into half storage, on both and against core/half.h */
        struct dpair src = dp_floats(hx, n);
        struct dpair h = dp_new(hx, (n + 1) / 2 * 4); /* n 16-bit slots (contents overwritten) */
        h.dtype = to, h.rows = 1, h.cols = (int64_t)n;
        BOTH(be->iface->to_half(be, ON(h), ON(src)));
        uint16_t *hf = xmalloc(n * 2), *hr = xmalloc(n * 2);
        fast->iface->download(fast, hf, h.f, n * 2);
        ref->iface->download(ref, hr, h.r, n * 2);
        long diff = 0, bad_ref = 0;
        for (size_t i = 0; i < n; i++) {
            const uint16_t want = t ? mt_f32_to_f16(hx[i]) : mt_f32_to_bf16(hx[i]);
            diff += hf[i] != hr[i];
            if (hr[i] != want && bad_ref++ == 0)
                tap_diag("  x[%zu] = %.9g: ref 0x%04x, core/half.h 0x%04x", i, hx[i], hr[i], want);
        }
        tap_ok(diff == 0 && bad_ref == 0, "to_half %s n=%zu [%s]: fast equals ref, ref equals core/half.h "
               "bit for bit (%ld, %ld differ)", mt_dtype_name(to), n, s->name, diff, bad_ref);
        free(hf), free(hr);
        dp_free(&src), dp_free(&h);
    }
    free(hx), free(got);
}

/* dropout of x (N, C) for samples of T positions: fast vs ref exactly, the
 * kept fraction near 1 - p, kept elements x / (1 - p), and the mask a
 * function of the global coordinates: the two halves of the rows (later
 * samples: sample0 moved) and the two halves of the columns (col0 moved)
 * give the same elements as the whole, as a data- or tensor-parallel split
 * of the same tensor must */
static void t_dropout(const struct op_case *oc, const struct shape *s)
{
    int T = s->T, N = s->B * s->T, C = s->C;
    const float p = 0.25f;
    struct mt_dropout_args d = {p, 0x1234abcd5678ull, 77, 1000, T, 3};
    float *hx = host_rand((size_t)N * C, 1.0f, 2.0f); /* no zeros */
    struct dpair x = dp_mat(hx, N, C);
    BOTH(be->iface->dropout(be, ON(x), &d));
    struct cmp c = cmp_init(0, 0);
    cmp_pair(&c, "x", x, (size_t)N * C);
    cmp_report(&c, "%s p=%.2f N=%d C=%d [%s]", oc->name, p, N, C, s->name);
    float *got = xmalloc((size_t)N * C * sizeof(float));
    fast->iface->download(fast, got, x.f, (size_t)N * C * sizeof(float));
    long zeros = 0, wrong = 0;
    for (size_t i = 0; i < (size_t)N * C; i++) {
        if (got[i] == 0.0f) zeros++;
        else if (got[i] != hx[i] * mt_dropout_scale(p)) wrong++;
    }
    double frac = (double)zeros / ((double)N * C), sd = sqrt(p * (1 - p) / ((double)N * C));
    tap_ok(wrong == 0 && fabs(frac - p) <= 4 * sd + 1e-9,
           "%s: %.4f of elements dropped (p %.2f, 4 sd %.4f), kept ones scaled by 1/(1-p) [%s]",
           oc->name, frac, p, 4 * sd, s->name);
    /* the pieces: rows of later samples, columns further right */
    int nb = s->B / 2 > 0 ? s->B / 2 : 1, c2 = C / 2 > 0 ? C / 2 : 1;
    float *piece = xmalloc((size_t)N * C * sizeof(float));
    long differ = 0;
    for (int part = 0; part < 2; part++) {
        int r0 = part ? nb * T : 0, nr = part ? N - nb * T : nb * T;
        int k0 = part ? c2 : 0, nc = part ? C - c2 : c2;
        if (nr <= 0 || nc <= 0) continue;
        float *h = xmalloc((size_t)nr * nc * sizeof(float));
        for (int r = 0; r < nr; r++)
            for (int k = 0; k < nc; k++) h[(size_t)r * nc + k] = hx[(size_t)(r0 + r) * C + k0 + k];
        struct dpair xp = dp_mat(h, nr, nc);
        struct mt_dropout_args dp = d;
        dp.sample0 += r0 / T, dp.col0 += k0;
        fast->iface->dropout(fast, TF(xp), &dp);
        fast->iface->download(fast, piece, xp.f, (size_t)nr * nc * sizeof(float));
        for (int r = 0; r < nr; r++)
            for (int k = 0; k < nc; k++)
                differ += piece[(size_t)r * nc + k] != got[(size_t)(r0 + r) * C + k0 + k];
        dp_free(&xp), free(h);
    }
    tap_ok(differ == 0, "%s: a block of rows (later samples) and of columns (col0) draws the "
           "whole tensor's mask there (%ld differ) [%s]", oc->name, differ, s->name);
    dp_free(&x), free(hx), free(got), free(piece);
}

/* the attention layouts tested per shape: MHA causal; grouped (groups < heads
 * where heads allow) causal; MHA over all keys; grouped with dropout;
 * padded sequences; packed documents (--reset-attention-mask) */
struct attn_variant {
    const char *name;
    int grouped, causal;
    float p;
    int padded; /* sequences shorter than T (lengths), padding after */
    int docs;   /* each sequence packs documents: a query sees only its own (doc_start) */
};
static const struct attn_variant ATTN_VARIANTS[] = {
    {"mha causal", 0, 1, 0.0f, 0, 0}, {"gqa causal", 1, 1, 0.0f, 0, 0}, {"mha full", 0, 0, 0.0f, 0, 0},
    {"gqa causal dropout", 1, 1, 0.2f, 0, 0}, {"mha full padded", 0, 0, 0.0f, 1, 0},
    {"gqa full padded dropout", 1, 0, 0.2f, 1, 0}, {"gqa causal documents dropout", 1, 1, 0.2f, 0, 1}};
enum { NATTN = sizeof ATTN_VARIANTS / sizeof ATTN_VARIANTS[0] };

static struct mt_attn_args attn_args(const struct shape *s, const struct attn_variant *v, int t0)
{
    int groups = s->NH;
    if (v->grouped) groups = s->NH % 2 == 0 && s->NH > 2 ? s->NH / 2 : 1;
    struct mt_attn_args a = {s->B, s->T, t0, s->NH, groups, s->HS, v->causal, NULL,
                             {v->p, 99, 5, 17, 1, 2}, NULL, NULL};
    return a;
}

/* the lengths of a padded variant: between 1 and T, shorter for later b */
static struct dpair attn_lengths(const struct mt_attn_args *a)
{
    int32_t *h = xmalloc((size_t)a->B * sizeof *h);
    for (int b = 0; b < a->B; b++) h[b] = 1 + (a->T - 1) * (a->B - b) / (a->B + 1);
    struct dpair p = dp_ids(h, (size_t)a->B);
    free(h);
    return p;
}
/* the document starts of a packed variant: documents of 1 + (T + b) / 3
 * tokens or so, the last cut at T (a query sees keys from its document's
 * first token on) */
static struct dpair attn_docs(const struct mt_attn_args *a)
{
    int32_t *h = xmalloc((size_t)a->B * a->T * sizeof *h);
    for (int b = 0; b < a->B; b++) {
        const int len = 1 + (a->T + b) / 3;
        for (int t = 0; t < a->T; t++) h[(size_t)b * a->T + t] = t / len * len;
    }
    struct dpair p = dp_ids(h, (size_t)a->B * a->T);
    free(h);
    return p;
}

/* a variant's masks on both backends */
struct attn_masks {
    struct dpair lens, docs;
};
static struct attn_masks attn_masks_of(const struct mt_attn_args *a, const struct attn_variant *v)
{
    struct attn_masks m = {{0}, {0}};
    if (v->padded) m.lens = attn_lengths(a);
    if (v->docs) m.docs = attn_docs(a);
    return m;
}
static void attn_masks_free(struct attn_masks *m)
{
    if (m->lens.bytes) dp_free(&m->lens);
    if (m->docs.bytes) dp_free(&m->docs);
}
/* the masks of side 0 (fast) or 1 (ref) into a */
static void attn_masks_on(struct mt_attn_args *a, const struct attn_masks *m, int side)
{
    a->lengths = m->lens.bytes ? (const int32_t *)(side ? m->lens.r : m->lens.f) : NULL;
    a->doc_start = m->docs.bytes ? (const int32_t *)(side ? m->docs.r : m->docs.f) : NULL;
}
/* the attention arguments of a side, with that side's masks */
#define ON_ATTN(a, m) (attn_masks_on(&(a), &(m), side_), &(a))

static void t_attn_fwd(const struct op_case *oc, const struct shape *s)
{
    for (int vi = 0; vi < NATTN; vi++) {
        const struct attn_variant *v = &ATTN_VARIANTS[vi];
        struct mt_attn_args a = attn_args(s, v, 0);
        int B = a.B, T = a.T, NH = a.heads, HS = a.head_dim, W = mt_qkv_width(&a);
        size_t nqkv = (size_t)B * T * W;
        float *hqkv = host_rand(nqkv, 2.0f, 0.0f); /* scores of a few units: a peaked softmax */
        struct dpair qkv = dp_mat(hqkv, (int64_t)B * T, W);
        struct attn_masks masks = attn_masks_of(&a, v);
        /* t0 = 0 (training) */
        size_t nout = (size_t)B * T * NH * HS, natt = (size_t)B * NH * T * T;
        struct dpair out = dp_cmat((int64_t)B * T, NH * HS, NAN), att = dp_cmat((int64_t)B * NH * T, T, NAN);
        BOTH(be->iface->attn_fwd(be, ON(out), ON(att), ON(qkv), ON_ATTN(a, masks)));
        attn_masks_free(&masks);
        struct cmp c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "out", out, nout);
        cmp_pair(&c, "att", att, natt);
        cmp_report(&c, "%s %s groups=%d B=%d T=%d NH=%d HS=%d [%s]", oc->name, v->name, a.groups, B, T,
                   NH, HS, s->name);
        if (!v->causal || v->p > 0 || v->padded || v->docs) {
            dp_free(&qkv), dp_free(&out), dp_free(&att), free(hqkv);
            continue;
        }
        /* t0 = T-1 (decoding one token): against ref, and against the last row of t0 = 0 */
        struct mt_attn_args a1 = attn_args(s, v, T - 1);
        size_t nout1 = (size_t)B * NH * HS, natt1 = (size_t)B * NH * T;
        struct dpair out1 = dp_cmat(B, NH * HS, NAN), att1 = dp_cmat((int64_t)B * NH, T, NAN);
        BOTH(be->iface->attn_fwd(be, ON(out1), ON(att1), ON(qkv), &a1));
        c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "out", out1, nout1);
        cmp_pair(&c, "att", att1, natt1);
        cmp_report(&c, "%s %s t0=T-1 [%s]", oc->name, v->name, s->name);
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
        cmp_report(&c, "%s %s t0=T-1 == last row of ref t0=0 [%s]", oc->name, v->name, s->name);
        dp_free(&qkv), dp_free(&out), dp_free(&att), dp_free(&out1), dp_free(&att1);
        free(hqkv), free(full_out), free(full_att), free(last_out), free(last_att), free(dec_out), free(dec_att);
    }
}

static void t_attn_bwd(const struct op_case *oc, const struct shape *s)
{
    for (int vi = 0; vi < NATTN; vi++) {
        const struct attn_variant *v = &ATTN_VARIANTS[vi];
        struct mt_attn_args a = attn_args(s, v, 0);
        int B = a.B, T = a.T, NH = a.heads, HS = a.head_dim, W = mt_qkv_width(&a);
        size_t nqkv = (size_t)B * T * W, nout = (size_t)B * T * NH * HS, natt = (size_t)B * NH * T * T;
        float *hqkv = host_rand(nqkv, 2.0f, 0.0f), *hd = host_rand(nout, 1.0f, 0.0f);
        struct dpair qkv = dp_mat(hqkv, (int64_t)B * T, W), dout = dp_mat(hd, (int64_t)B * T, NH * HS),
                     out = dp_cmat((int64_t)B * T, NH * HS, 0.0f), att = dp_cmat((int64_t)B * NH * T, T, 0.0f),
                     dqkv = dp_cmat((int64_t)B * T, W, NAN), datt = dp_cmat((int64_t)B * NH * T, T, NAN);
        struct attn_masks masks = attn_masks_of(&a, v);
        /* both backends take the same saved probabilities: ref's forward */
        attn_masks_on(&a, &masks, 1);
        ref->iface->attn_fwd(ref, TR(out), TR(att), TR(qkv), &a);
        float *hatt = xmalloc(natt * sizeof(float));
        ref->iface->download(ref, hatt, R(att), natt * sizeof(float));
        fast->iface->upload(fast, F(att), hatt, natt * sizeof(float));
        BOTH(be->iface->attn_bwd(be, ON(dqkv), ON(datt), ON(dout), ON(qkv), ON(att), ON_ATTN(a, masks)));
        attn_masks_free(&masks);
        struct cmp c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "dqkv", dqkv, nqkv);
        cmp_report(&c, "%s %s groups=%d B=%d T=%d NH=%d HS=%d [%s]", oc->name, v->name, a.groups, B, T,
                   NH, HS, s->name);
        dp_free(&qkv), dp_free(&dout), dp_free(&out), dp_free(&att), dp_free(&dqkv), dp_free(&datt);
        free(hqkv), free(hd), free(hatt);
    }
}

/* Flash attention: each shape, and with the first one also a shape of
 * several ragged tiles (T 71 over the CUDA kernels' 32-row tiles) and one
 * of heads wider than 128 (their 16-row tiles). Held to the unfused maps of
 * cpu-ref, the reference; cpu-ref's own flash form to the same. */
static int flash_shapes(const struct shape *s, struct shape *out)
{
    int n = 0;
    out[n++] = *s;
    if (s == &SHAPES[0]) {
        out[n++] = (struct shape){"multi-tile T=71", 2, 71, 0, 4, 16, 0, 0};
        out[n++] = (struct shape){"wide-head HS=160", 1, 37, 0, 2, 160, 0, 0};
    }
    return n;
}

/* n floats of the ref side of a pair, on the host */
static float *ref_host(struct dpair p, size_t n)
{
    float *h = xmalloc(n * sizeof *h);
    ref->iface->download(ref, h, p.r, n * sizeof *h);
    return h;
}

static float *fast_host(struct dpair p, size_t n)
{
    float *h = xmalloc(n * sizeof *h);
    fast->iface->download(fast, h, p.f, n * sizeof *h);
    return h;
}

static void t_flash_fwd(const struct op_case *oc, const struct shape *s0)
{
    struct shape shapes[3];
    const int ns = flash_shapes(s0, shapes);
    for (int si = 0; si < ns; si++)
        for (int vi = 0; vi < NATTN; vi++) {
            const struct shape *s = &shapes[si];
            const struct attn_variant *v = &ATTN_VARIANTS[vi];
            for (int dec = 0; dec < 2; dec++) {
                if (dec && (!v->causal || v->p > 0 || v->padded || v->docs)) continue;
                struct mt_attn_args a = attn_args(s, v, dec ? s->T - 1 : 0);
                const int B = a.B, T = a.T, Tq = T - a.t0, NH = a.heads, HS = a.head_dim;
                const size_t nqkv = (size_t)B * T * mt_qkv_width(&a), nout = (size_t)B * Tq * NH * HS;
                const size_t nl = (size_t)B * NH * Tq;
                float *hqkv = host_rand(nqkv, 2.0f, 0.0f);
                struct dpair qkv = dp_mat(hqkv, (int64_t)B * T, mt_qkv_width(&a));
                struct dpair out = dp_cmat((int64_t)B * Tq, NH * HS, NAN), lse = dp_cmat((int64_t)nl, 1, NAN);
                struct dpair uout = dp_cmat((int64_t)B * Tq, NH * HS, NAN), att = dp_cmat((int64_t)nl, T, NAN);
                struct attn_masks masks = attn_masks_of(&a, v);
                BOTH(be->iface->flash_attn_fwd(be, ON(out), ON(lse), ON(qkv), ON_ATTN(a, masks)));
                attn_masks_on(&a, &masks, 1);
                ref->iface->attn_fwd(ref, TR(uout), TR(att), TR(qkv), &a); /* the unfused reference */
                float *want = ref_host(uout, nout), *got = fast_host(out, nout), *rflash = ref_host(out, nout);
                struct cmp c = cmp_init(oc->atol, oc->rtol);
                cmp_arrays(&c, "out", got, want, nout);
                cmp_pair(&c, "lse", lse, nl);
                cmp_report(&c, "%s %s%s groups=%d B=%d T=%d NH=%d HS=%d vs unfused [%s]", oc->name, v->name,
                           dec ? " t0=T-1" : "", a.groups, B, T, NH, HS, s->name);
                c = cmp_init(1e-6, 1e-6);
                cmp_arrays(&c, "out", rflash, want, nout);
                cmp_report(&c, "%s cpu-ref's flash form vs its unfused one, %s%s [%s]", oc->name, v->name,
                           dec ? " t0=T-1" : "", s->name);
                attn_masks_free(&masks);
                dp_free(&qkv), dp_free(&out), dp_free(&lse), dp_free(&uout), dp_free(&att);
                free(hqkv), free(want), free(got), free(rflash);
            }
        }
}

static void t_flash_bwd(const struct op_case *oc, const struct shape *s0)
{
    struct shape shapes[3];
    const int ns = flash_shapes(s0, shapes);
    for (int si = 0; si < ns; si++)
        for (int vi = 0; vi < NATTN; vi++) {
            const struct shape *s = &shapes[si];
            const struct attn_variant *v = &ATTN_VARIANTS[vi];
            struct mt_attn_args a = attn_args(s, v, 0);
            const int B = a.B, T = a.T, NH = a.heads, HS = a.head_dim, W = mt_qkv_width(&a);
            const size_t nqkv = (size_t)B * T * W, nout = (size_t)B * T * NH * HS, nl = (size_t)B * NH * T;
            float *hqkv = host_rand(nqkv, 2.0f, 0.0f), *hd = host_rand(nout, 1.0f, 0.0f);
            struct dpair qkv = dp_mat(hqkv, (int64_t)B * T, W), dout = dp_mat(hd, (int64_t)B * T, NH * HS);
            struct dpair out = dp_cmat((int64_t)B * T, NH * HS, NAN), lse = dp_cmat((int64_t)nl, 1, NAN);
            struct dpair rowdot = dp_cmat((int64_t)nl, 1, NAN), dqkv = dp_cmat((int64_t)B * T, W, NAN);
            struct dpair att = dp_cmat((int64_t)nl, T, NAN), datt = dp_cmat((int64_t)nl, T, NAN);
            struct dpair udqkv = dp_cmat((int64_t)B * T, W, NAN);
            struct attn_masks masks = attn_masks_of(&a, v);
            attn_masks_on(&a, &masks, 1);
            /* the reference: cpu-ref's unfused backward from its own probabilities */
            ref->iface->attn_fwd(ref, TR(out), TR(att), TR(qkv), &a);
            ref->iface->attn_bwd(ref, TR(udqkv), TR(datt), TR(dout), TR(qkv), TR(att), &a);
            /* both flash backwards from cpu-ref's flash forward (the same out and lse) */
            ref->iface->flash_attn_fwd(ref, TR(out), TR(lse), TR(qkv), &a);
            float *hout = ref_host(out, nout), *hlse = ref_host(lse, nl);
            fast->iface->upload(fast, out.f, hout, nout * sizeof(float));
            fast->iface->upload(fast, lse.f, hlse, nl * sizeof(float));
            BOTH(be->iface->flash_attn_bwd(be, ON(dqkv), ON(rowdot), ON(dout), ON(qkv), ON(out), ON(lse),
                                           ON_ATTN(a, masks)));
            float *want = ref_host(udqkv, nqkv), *got = fast_host(dqkv, nqkv), *rflash = ref_host(dqkv, nqkv);
            struct cmp c = cmp_init(oc->atol, oc->rtol);
            cmp_arrays(&c, "dqkv", got, want, nqkv);
            cmp_report(&c, "%s %s groups=%d B=%d T=%d NH=%d HS=%d vs unfused [%s]", oc->name, v->name, a.groups,
                       B, T, NH, HS, s->name);
            c = cmp_init(1e-6, 1e-5);
            cmp_arrays(&c, "dqkv", rflash, want, nqkv);
            cmp_report(&c, "%s cpu-ref's flash form vs its unfused one, %s [%s]", oc->name, v->name, s->name);
            /* again on the fast backend, over a dirty output: the same bits */
            float *first = got;
            attn_masks_on(&a, &masks, 0);
            fast->iface->flash_attn_bwd(fast, TF(dqkv), TF(rowdot), TF(dout), TF(qkv), TF(out), TF(lse), &a);
            got = fast_host(dqkv, nqkv);
            tap_ok(memcmp(first, got, nqkv * sizeof(float)) == 0, "%s %s repeats bitwise [%s]", oc->name,
                   v->name, s->name);
            attn_masks_free(&masks);
            dp_free(&qkv), dp_free(&dout), dp_free(&out), dp_free(&lse), dp_free(&rowdot), dp_free(&dqkv);
            dp_free(&att), dp_free(&datt), dp_free(&udqkv);
            free(hqkv), free(hd), free(hout), free(hlse), free(want), free(got), free(rflash), free(first);
        }
}

/* a rope table of maxT rows for R rotated dims (cos then sin of R/2 angles) */
static float *rope_table(int maxT, int R)
{
    float *t = xmalloc((size_t)maxT * (R ? R : 1) * sizeof(float));
    for (int p = 0; p < maxT; p++)
        for (int i = 0; i < R / 2; i++) {
            double ang = p * pow(10000.0, -2.0 * i / R);
            t[(size_t)p * R + i] = (float)cos(ang);
            t[(size_t)p * R + R / 2 + i] = (float)sin(ang);
        }
    return t;
}

/* rope on grouped qkv rows, the whole head and the first half of it rotated,
 * from t0 = 0 and from t0 = T-1 (decoding), and with position ids that
 * restart at each packed document (--reset-position-ids); forward against
 * ref, and the inverse after the forward gives the input back */
static void t_rope(const struct op_case *oc, const struct shape *s)
{
    static const struct attn_variant gqa = {"gqa", 1, 1, 0.0f, 0, 0};
    for (int reset = 0; reset < 2; reset++)
        for (int partial = 0; partial < 2; partial++)
            for (int dec = 0; dec < 2 - reset; dec++) {
                struct mt_attn_args a = attn_args(s, &gqa, dec ? s->T - 1 : 0);
                int R = (partial ? a.head_dim / 2 : a.head_dim) & ~1, W = mt_qkv_width(&a);
                if (R == 0) R = 2 <= a.head_dim ? 2 : 0;
                if (R == 0) continue;
                size_t nqkv = (size_t)a.B * a.T * W;
                float *hqkv = host_rand(nqkv, 1.0f, 0.0f), *ht = rope_table(a.T + 3, R);
                struct dpair qkv = dp_mat(hqkv, (int64_t)a.B * a.T, W), table = dp_mat(ht, a.T + 3, R), pos = {0};
                if (reset) { /* t minus its document's start */
                    struct dpair docs = attn_docs(&a);
                    int32_t *h = xmalloc((size_t)a.B * a.T * sizeof *h);
                    ref->iface->download(ref, h, docs.r, docs.bytes);
                    for (int i = 0; i < a.B * a.T; i++) h[i] = i % a.T - h[i];
                    pos = dp_ids(h, (size_t)a.B * a.T);
                    dp_free(&docs), free(h);
                }
#define ON_POS (a.positions = reset ? (const int32_t *)(side_ ? pos.r : pos.f) : NULL, &a)
                BOTH(be->iface->rope(be, ON(qkv), ON(table), ON_POS, 0));
                struct cmp c = cmp_init(oc->atol, oc->rtol);
                cmp_pair(&c, "qkv", qkv, nqkv);
                cmp_report(&c, "%s R=%d of HS=%d t0=%d groups=%d%s [%s]", oc->name, R, a.head_dim, a.t0, a.groups,
                           reset ? " positions restarting per document" : "", s->name);
                BOTH(be->iface->rope(be, ON(qkv), ON(table), ON_POS, 1));
#undef ON_POS
                c = cmp_init(1e-6, 1e-6); /* a rotation and its inverse in float */
                float *back = xmalloc(nqkv * sizeof(float));
                fast->iface->download(fast, back, qkv.f, nqkv * sizeof(float));
                cmp_arrays(&c, "qkv", back, hqkv, nqkv);
                cmp_report(&c, "%s inverse after forward is the identity R=%d t0=%d%s [%s]", oc->name, R, a.t0,
                           reset ? " (positions)" : "", s->name);
                if (reset) dp_free(&pos);
                dp_free(&qkv), dp_free(&table), free(hqkv), free(ht), free(back);
            }
}

/* The cross-entropy chain, each backend on its own intermediate results.
 * Variants: the whole vocabulary; a shard [V/3, V/3 + V/2) of a row stride
 * ld > V_local (padding columns take no part) with targets all over [0, V);
 * the shard again with the gradient written in place over the logits. */
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
        struct dpair logits = dp_mat(hl, N, ld), tg = dp_ids(htg, (size_t)N),
                     dloss = dp_mat(hdl, 1, N), rowmax = dp_cmat(1, N, NAN), sumexp = dp_cmat(1, N, NAN),
                     tgt = dp_cmat(1, N, NAN), losses = dp_cmat(1, N, NAN), dlog = dp_mat(hl, N, ld);
        /* padding columns [Vl, ld) of the output must be left alone */
        struct dpair *dst = variant == 2 ? &logits : &dlog;
        static const char *vname[] = {"full", "shard ld>V", "shard in-place"};
        struct cmp c;
        BOTH(be->iface->xent_max(be, ON(rowmax), ON(logits), Vl);
             be->iface->xent_sumexp(be, ON(sumexp), ON(tgt), ON(logits), ON(rowmax), ON(tg), Vl, off);
             be->iface->xent_loss(be, ON(losses), ON(rowmax), ON(sumexp), ON(tgt));
             be->iface->xent_bwd(be, ON(*dst), ON(dloss), ON(logits), ON(rowmax), ON(sumexp), ON(tg), Vl,
                                 off));
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
        BOTH(be->iface->adamw(be, ON(p), ON(g), ON(m), ON(v), &args, zero_grad));
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

static void t_sgd(const struct op_case *oc, const struct shape *s)
{
    size_t n = s->n;
    float *hp = host_rand(n, 1.0f, 0.0f), *hg = host_rand(n, 1.0f, 0.0f), *hb = host_rand(n, 0.1f, 0.0f);
    for (int variant = 0; variant < 2; variant++) {
        /* with momentum (and zeroing the gradient), and plain SGD */
        const struct mt_sgd_args args = {.lr = 0.05f, .momentum = variant ? 0.0f : 0.9f,
                                         .weight_decay = 0.1f, .grad_scale = 0.5f};
        struct dpair p = dp_floats(hp, n), g = dp_floats(hg, n), b = dp_floats(hb, n);
        struct dpair none = dp_shape(dp_floats(hb, 0), 0, 0);
        BOTH(be->iface->sgd(be, ON(p), ON(g), variant ? ON(none) : ON(b), &args, !variant));
        struct cmp c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "param", p, n);
        if (!variant) cmp_pair(&c, "buf", b, n);
        else cmp_pair(&c, "grad", g, n); /* left as it was */
        cmp_report(&c, "sgd momentum=%g n=%zu [%s]", args.momentum, n, s->name);
        dp_free(&p), dp_free(&g), dp_free(&b), dp_free(&none);
    }
    free(hp), free(hg), free(hb);
}

/* Adafactor's ops on an (N, C) matrix and on a vector */
static void t_adafactor(const struct op_case *oc, const struct shape *s)
{
    const int64_t R = (int64_t)s->B * s->T, C = s->C;
    const size_t n = (size_t)(R * C);
    float *hg = host_rand(n, 1.0f, 0.0f), *hp = host_rand(n, 1.0f, 0.0f), *hm = host_rand(n, 0.1f, 0.0f);
    float *hr = host_rand((size_t)R, 0.5f, 1.0f), *hc = host_rand((size_t)C, 0.5f, 1.0f); /* > 0 */
    float *hv = host_rand(n, 0.5f, 1.0f);
    const struct mt_adafactor_args a = {.scale = 0.5f, .eps1 = 1e-30f, .beta2t = 0.6f,
                                        .inv_row_mean = 0.9f, .lr = 1e-2f, .update_scale = 0.7f,
                                        .beta1 = 0.9f, .weight_decay = 0.1f};
    /* row and column sums: double sums in index order on every backend */
    struct dpair g = dp_mat(hg, R, C), rs = dp_cmat(1, R, NAN), cs = dp_cmat(1, C, NAN);
    BOTH(be->iface->sq_sums(be, ON(rs), ON(cs), ON(g), a.scale, 1e-3f));
    struct cmp c = cmp_init(0, 0);
    cmp_pair(&c, "rows", rs, (size_t)R);
    cmp_pair(&c, "cols", cs, (size_t)C);
    cmp_report(&c, "sq_sums %lldx%lld bitwise [%s]", (long long)R, (long long)C, s->name);
    /* factored preconditioning */
    struct dpair rr = dp_mat(hr, 1, R), cc = dp_mat(hc, 1, C), none = dp_shape(dp_floats(hv, 0), 0, 0);
    BOTH(be->iface->adafactor_precond(be, ON(g), ON(rr), ON(cc), ON(none), &a));
    c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "update", g, n);
    cmp_report(&c, "adafactor_precond factored %lldx%lld [%s]", (long long)R, (long long)C, s->name);
    dp_free(&g);
    /* unfactored: the second moment is updated too */
    g = dp_mat(hg, R, C);
    struct dpair v = dp_mat(hv, R, C);
    BOTH(be->iface->adafactor_precond(be, ON(g), ON(none), ON(none), ON(v), &a));
    c = cmp_init(oc->atol, oc->rtol);
    cmp_pair(&c, "update", g, n);
    cmp_pair(&c, "V", v, n);
    cmp_report(&c, "adafactor_precond unfactored n=%zu [%s]", n, s->name);
    /* the update, with and without a first moment */
    for (int first = 0; first < 2; first++) {
        struct mt_adafactor_args b = a;
        b.beta1 = first ? 0.9f : 0.0f;
        struct dpair p = dp_floats(hp, n), u = dp_floats(hg, n), m = dp_floats(hm, n);
        BOTH(be->iface->adafactor_apply(be, ON(p), ON(u), first ? ON(m) : ON(none), &b, 1));
        c = cmp_init(oc->atol, oc->rtol);
        cmp_pair(&c, "param", p, n);
        if (first) cmp_pair(&c, "M", m, n);
        cmp_pair(&c, "upd (zeroed)", u, n);
        cmp_report(&c, "adafactor_apply beta1=%g n=%zu [%s]", b.beta1, n, s->name);
        dp_free(&p), dp_free(&u), dp_free(&m);
    }
    dp_free(&g), dp_free(&v), dp_free(&rs), dp_free(&cs), dp_free(&rr), dp_free(&cc), dp_free(&none);
    free(hg), free(hp), free(hm), free(hr), free(hc), free(hv);
}

static void t_sum(const struct op_case *oc, const struct shape *s)
{
    size_t n = s->n;
    float *hx = host_rand(n, 1.0f, 0.0f);
    struct dpair x = dp_floats(hx, n);
    double out_f = NAN, out_r = NAN;
    double *df = fast->iface->alloc(fast, sizeof(double)), *dr = ref->iface->alloc(ref, sizeof(double));
    fast->iface->sum(fast, df, TF(x));
    ref->iface->sum(ref, dr, TR(x));
    fast->iface->download(fast, &out_f, df, sizeof out_f);
    ref->iface->download(ref, &out_r, dr, sizeof out_r);
    (void)oc;
    tap_ok(memcmp(&out_f, &out_r, sizeof out_f) == 0, "sum n=%zu %s == cpu-ref bitwise (%.17g, %.17g) [%s]",
           n, fast->iface->name(fast), out_f, out_r, s->name);
    fast->iface->dealloc(fast, df), ref->iface->dealloc(ref, dr);
    dp_free(&x), free(hx);
}

static void t_sum_squares(const struct op_case *oc, const struct shape *s)
{
    size_t n = s->n;
    float *hx = host_rand(n, 1.0f, 0.0f);
    struct dpair x = dp_floats(hx, n);
    double out_f = NAN, out_r = NAN;
    double *df = fast->iface->alloc(fast, sizeof(double)), *dr = ref->iface->alloc(ref, sizeof(double));
    fast->iface->sum_squares(fast, df, TF(x));
    ref->iface->sum_squares(ref, dr, TR(x));
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
    fast->iface->count_nonfinite(fast, df, TF(x));
    ref->iface->count_nonfinite(ref, dr, TR(x));
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
    {"rmsnorm_fwd", t_rmsnorm_fwd, 1e-5, 1e-5},
    {"rmsnorm_bwd", t_rmsnorm_bwd, 1e-5, 1e-4},
    {"bias_add", t_bias_add, 0, 0},     /* one float add */
    {"bias_bwd", t_bias_bwd, 1e-6, 1e-6}, /* double sums in the same order */
    /* fast_expf (2 ulp) vs double tanh */
    {"act_fwd", t_act_fwd, 1e-6, 1e-5},
    {"act_bwd", t_act_bwd, 1e-6, 1e-5},
    /* fast_expf vs double exp in the sigmoid, values to |x| ~ 6 */
    {"swiglu_fwd", t_swiglu_fwd, 1e-5, 1e-5},
    {"swiglu_bwd", t_swiglu_bwd, 1e-5, 1e-5},
    {"add", t_add, 0, 0},
    {"scale", t_scale, 0, 0},
    {"round_half", t_round_half, 0, 0}, /* bitwise: one bit manipulation everywhere */
    /* the same Philox bits and the same float multiply: exact */
    {"dropout", t_dropout, 0, 0},
    /* float rotation vs double, |x| <= 1 */
    {"rope", t_rope, 1e-6, 1e-5},
    /* float dot products over HS and sums over T vs double */
    {"attn_fwd", t_attn_fwd, 1e-5, 1e-4},
    {"attn_bwd", t_attn_bwd, 1e-5, 1e-4},
    /* the same, the probabilities recomputed from the saved log-sum-exp */
    {"flash_attn_fwd", t_flash_fwd, 1e-5, 1e-4},
    {"flash_attn_bwd", t_flash_bwd, 1e-5, 1e-4},
    /* float exp and a double sum over V vs double exp (xent_max is exact,
     * xent_bwd uses an absolute floor of 1e-8) */
    {"xent", t_xent, 1e-5, 1e-5},
    /* float vs double update, values ~1, steps ~1e-3 */
    {"adamw", t_adamw, 1e-7, 1e-6},
    /* float vs double update, values ~1, steps ~5e-2 */
    {"sgd", t_sgd, 1e-7, 1e-6},
    /* float vs double rsqrt products (|update| ~ 1) and updates */
    {"adafactor", t_adafactor, 1e-6, 1e-5},
    {"sum_squares", t_sum_squares, 0, 0},         /* bitwise, by contract */
    {"sum", t_sum, 0, 0},                         /* bitwise, by contract */
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

/* the cpu GEMM library under test, appended to the case names */
static const char *gemm_label = "";

/* mixed precision's GEMM (mt_backend_set_gemm_precision), through the
 * mt_gemm wrapper that rounds: 0 in the plain tests */
static enum mt_dtype gemm_half;

static float round_to(enum mt_dtype t, float x) { return t == MT_DTYPE_BF16 ? mt_round_bf16(x) : mt_round_f16(x); }

/* The half GEMM's definition, on the host, in cpu-ref's order: inputs
 * rounded, products summed over l in double, alpha times the sum rounded to
 * f32 and then to the half type, then beta C added in f32 (C scaled first). */
static long gemm_half_oracle(const struct mt_gemm_args *g, const float *ha, const float *hb, float *hc,
                             const float *got)
{
    long bad = 0;
    for (int p = 0; p < g->batch; p++)
        for (int i = 0; i < g->m; i++)
            for (int j = 0; j < g->n; j++) {
                double acc = 0.0;
                for (int l = 0; l < g->k; l++) {
                    const size_t ai = g->ta == MT_TRANS_N ? (size_t)i * g->lda + l : (size_t)l * g->lda + i;
                    const size_t bi = g->tb == MT_TRANS_N ? (size_t)l * g->ldb + j : (size_t)j * g->ldb + l;
                    acc += (double)round_to(gemm_half, ha[p * g->stride_a + ai]) *
                           (double)round_to(gemm_half, hb[p * g->stride_b + bi]);
                }
                const float prod = round_to(gemm_half, g->alpha == 0.0f ? 0.0f : (float)((double)g->alpha * acc));
                float *c = &hc[p * g->stride_c + (int64_t)i * g->ldc + j];
                float want = prod;
                if (g->beta != 0.0f) {
                    float cb = *c;
                    if (g->beta != 1.0f) cb *= g->beta;
                    want = cb + prod;
                }
                const float have = got[p * g->stride_c + (int64_t)i * g->ldc + j];
                if (memcmp(&want, &have, 4) != 0 && bad++ == 0)
                    tap_diag("  C[%d][%d][%d]: cpu-ref %.9g, the definition %.9g", p, i, j, have, want);
            }
    return bad;
}

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
    struct mt_gemm_args g = {ta, tb, m, n, k, batch, alpha, beta, NULL, lda, sa, NULL, ldb, sb, NULL, ldc, sc,
                             MT_DTYPE_F32, MT_DTYPE_F32, MT_DTYPE_F32, MT_DTYPE_F32};
    g.a = F(a), g.b = F(b), g.c = F(c);
    if (gemm_half) mt_gemm(fast, &g);
    else fast->iface->gemm(fast, &g);
    g.a = R(a), g.b = R(b), g.c = R(c);
    if (gemm_half) mt_gemm(ref, &g);
    else ref->iface->gemm(ref, &g);
    /* half: the fast backend's f32 sums may round to the neighbouring half
     * value (one unit in the last place: up to 2^-7 relative for bf16, 2^-10
     * for fp16, just above a power of two); allowed: two units */
    struct cmp cm = !gemm_half ? cmp_init(GEMM_ATOL, GEMM_RTOL)
                    : gemm_half == MT_DTYPE_BF16 ? cmp_init(1e-2, 1.6e-2) : cmp_init(2e-3, 2e-3);
    cmp_pair(&cm, "C", c, nc);
    const char *what = gemm_half ? mt_dtype_name(gemm_half) : "";
    cmp_report(&cm, "gemm%s%s %c%c m=%d n=%d k=%d batch=%d ld+%d alpha=%g beta=%g%s%s", *what ? " " : "", what,
               ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, batch, pad, alpha, beta, beta == 0.0f ? " (C was NaN)" : "",
               gemm_label);
    if (gemm_half) {
        float *got = xmalloc(nc * sizeof *got);
        ref->iface->download(ref, got, c.r, nc * sizeof *got);
        const long bad = gemm_half_oracle(&g, ha, hb, hc, got);
        tap_ok(bad == 0, "gemm %s %c%c m=%d n=%d k=%d batch=%d ld+%d: cpu-ref is the definition bit for bit "
               "(%ld differ)", what, ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, batch, pad, bad);
        free(got);
    }
    dp_free(&a), dp_free(&b), dp_free(&c);
    free(ha), free(hb), free(hc);
}

/* The GEMMs of --bf16 and --fp16 on a few shapes: contiguous (the
 * product written in place), padded and batched with gaps (the product
 * added from scratch), and fp16 overflowing to inf */
static void test_gemm_half(void)
{
    static const struct gemm_dims D[] = {{7, 13, 5, 1}, {33, 17, 65, 1}, {64, 200, 768, 0}};
    for (int t = 0; t < 2; t++) {
        gemm_half = t ? MT_DTYPE_F16 : MT_DTYPE_BF16;
        mt_backend_set_gemm_precision(fast, gemm_half);
        mt_backend_set_gemm_precision(ref, gemm_half);
        for (size_t d = 0; d < sizeof D / sizeof D[0]; d++)
            for (int tr = 0; tr < 4; tr++) {
                enum mt_trans ta = tr & 1 ? MT_TRANS_T : MT_TRANS_N, tb = tr & 2 ? MT_TRANS_T : MT_TRANS_N;
                if (!D[d].full && tr) continue;
                test_gemm_one(D[d].m, D[d].n, D[d].k, ta, tb, 0, 1, 1.0f, 0.0f);
                if (!D[d].full) continue;
                test_gemm_one(D[d].m, D[d].n, D[d].k, ta, tb, 3, 1, 0.5f, 1.0f);
                test_gemm_one(D[d].m, D[d].n, D[d].k, ta, tb, 1, 3, 1.5f, -0.5f);
            }
        /* alpha 1e5 takes products of |x| ~ 1 past 65504: fp16 gives inf, bf16 not */
        test_gemm_one(7, 13, 5, MT_TRANS_N, MT_TRANS_N, 0, 1, 1e5f, 0.0f);
        mt_backend_set_gemm_precision(fast, MT_DTYPE_F32);
        mt_backend_set_gemm_precision(ref, MT_DTYPE_F32);
    }
    gemm_half = MT_DTYPE_F32;
}

static void test_gemm_half_inputs(void);

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
    test_gemm_half();
    test_gemm_half_inputs();
}

/* A GEMM with bf16 / f16 inputs issued directly (as the mixed-precision
 * wrapper issues it to backends that multiply half values): on cpu-ref
 * bitwise its f32 GEMM of the same values widened; on a fast backend that
 * supports it (cuda: cublasGemmEx) within f32 summation error of cpu-ref. */
static void test_gemm_half_inputs(void)
{
    static const struct gemm_dims D[] = {{7, 13, 5, 1}, {33, 17, 65, 1}, {64, 200, 300, 1}};
    for (int t = 0; t < 2; t++) {
        const enum mt_dtype ht = t ? MT_DTYPE_F16 : MT_DTYPE_BF16;
        const int native = mt_backend_supports(fast, MT_OP_GEMM, ht);
        if (!native)
            tap_skip("the backend multiplies f32 only (the wrapper rounds f32 copies for it)",
                     "gemm with %s inputs [%s vs cpu-ref]", mt_dtype_name(ht), mt_backend_name(fast));
        for (size_t d = 0; d < sizeof D / sizeof D[0]; d++)
            for (int tr = 0; tr < 4; tr++) {
                const int m = D[d].m, n = D[d].n, k = D[d].k, batch = 2;
                const enum mt_trans ta = tr & 1 ? MT_TRANS_T : MT_TRANS_N, tb = tr & 2 ? MT_TRANS_T : MT_TRANS_N;
                const int lda = (ta == MT_TRANS_N ? k : m) + 1, ldb = (tb == MT_TRANS_N ? n : k) + 1;
                const int64_t sa = (int64_t)lda * (ta == MT_TRANS_N ? m : k) + 3;
                const int64_t sb = (int64_t)ldb * (tb == MT_TRANS_N ? k : n) + 3;
                const size_t na = (size_t)(sa * batch), nb = (size_t)(sb * batch), nc = (size_t)m * n * batch;
                float *xa = host_rand(na, 1.0f, 0.0f), *xb = host_rand(nb, 1.0f, 0.0f);
                uint16_t *ha = xmalloc(na * 2 + 4), *hb = xmalloc(nb * 2 + 4);
                for (size_t i = 0; i < na; i++) {
                    ha[i] = t ? mt_f32_to_f16(xa[i]) : mt_f32_to_bf16(xa[i]);
                    xa[i] = t ? mt_f16_to_f32(ha[i]) : mt_bf16_to_f32(ha[i]);
                }
                for (size_t i = 0; i < nb; i++) {
                    hb[i] = t ? mt_f32_to_f16(xb[i]) : mt_f32_to_bf16(xb[i]);
                    xb[i] = t ? mt_f16_to_f32(hb[i]) : mt_bf16_to_f32(hb[i]);
                }
                struct dpair a = dp_new(ha, (na + 1) / 2 * 4), b = dp_new(hb, (nb + 1) / 2 * 4);
                struct dpair af = dp_floats(xa, na), bf = dp_floats(xb, nb);
                float *hc = host_rand(nc, 1.0f, 0.0f);
                struct dpair c = dp_floats(hc, nc), c32 = dp_floats(hc, nc);
                struct mt_gemm_args g = {ta, tb, m, n, k, batch, 1.5f, 0.5f, NULL, lda, sa, NULL, ldb, sb, NULL, n,
                                         (int64_t)m * n, ht, ht, MT_DTYPE_F32, MT_DTYPE_F32};
                for (int side = native ? 0 : 1; side < 2; side++) {
                    mt_backend *be = side ? ref : fast;
                    g.a = side ? a.r : a.f, g.b = side ? b.r : b.f, g.c = side ? c.r : c.f;
                    be->iface->gemm(be, &g);
                }
                struct mt_gemm_args g32 = g;
                g32.a_type = g32.b_type = MT_DTYPE_F32;
                g32.a = af.r, g32.b = bf.r, g32.c = c32.r;
                ref->iface->gemm(ref, &g32);
                float *r1 = xmalloc(nc * 4), *r2 = xmalloc(nc * 4);
                ref->iface->download(ref, r1, c.r, nc * 4);
                ref->iface->download(ref, r2, c32.r, nc * 4);
                tap_ok(!memcmp(r1, r2, nc * 4), "gemm with %s inputs %c%c m=%d n=%d k=%d batch=%d: cpu-ref "
                       "equals its f32 GEMM of the widened values bit for bit", mt_dtype_name(ht),
                       ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, batch);
                if (native) {
                    struct cmp cm = cmp_init(GEMM_ATOL, GEMM_RTOL);
                    cmp_pair(&cm, "C", c, nc);
                    cmp_report(&cm, "gemm with %s inputs %c%c m=%d n=%d k=%d batch=%d [%s vs cpu-ref]",
                               mt_dtype_name(ht), ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, batch,
                               mt_backend_name(fast));
                }
                free(xa), free(xb), free(ha), free(hb), free(hc), free(r1), free(r2);
                dp_free(&a), dp_free(&b), dp_free(&af), dp_free(&bf), dp_free(&c), dp_free(&c32);
            }
    }
}

/* C (m,n) = A (m,k) B (n,k)^T on the cpu backend (host memory) with LIB forced */
static void gemm_with(enum mt_cpu_gemm_lib lib, int m, int n, int k, const float *a, const float *b, float *c)
{
    enum mt_cpu_gemm_lib old = mt_cpu_gemm_set_library(lib);
    struct mt_gemm_args g = {MT_TRANS_N, MT_TRANS_T, m, n, k, 1, 1.0f, 0.0f, a, k, 0, b, k, 0, c, n, 0,
                             MT_DTYPE_F32, MT_DTYPE_F32, MT_DTYPE_F32, MT_DTYPE_F32};
    fast->iface->gemm(fast, &g);
    mt_cpu_gemm_set_library(old);
}

/* The cpu backend's GEMM goes through BLAS, oneDNN or its built-in GEMM
 * (cpu_gemm.c): each one built is held to cpu-ref over every case above,
 * and the automatic choice is checked to be oneDNN for a GEMM of at most
 * 2^27 multiply-adds and BLAS above (bitwise the forced library's result). */
static void test_gemm_libraries(void)
{
    static const struct { enum mt_cpu_gemm_lib lib; const char *name; } L[] = {
        {MT_CPU_GEMM_BLAS, "blas"}, {MT_CPU_GEMM_DNNL, "dnnl"}, {MT_CPU_GEMM_BUILTIN, "builtin"}};
    for (int i = 0; i < 3; i++) {
        char label[32];
        snprintf(label, sizeof label, " [cpu gemm %s]", L[i].name);
        if (!mt_cpu_gemm_available(L[i].lib)) {
            tap_skip("not built (configure did not find it)", "gemm, every variant%s", label);
            continue;
        }
        enum mt_cpu_gemm_lib old = mt_cpu_gemm_set_library(L[i].lib);
        gemm_label = label;
        for (size_t d = 0; d < sizeof GEMM_DIMS / sizeof GEMM_DIMS[0]; d++) {
            const struct gemm_dims *gd = &GEMM_DIMS[d];
            for (int t = 0; t < 4; t++) {
                enum mt_trans ta = t & 1 ? MT_TRANS_T : MT_TRANS_N, tb = t & 2 ? MT_TRANS_T : MT_TRANS_N;
                test_gemm_one(gd->m, gd->n, gd->k, ta, tb, 0, 1, 1.0f, 0.0f);
                if (gd->full) test_gemm_one(gd->m, gd->n, gd->k, ta, tb, 1, 3, 1.5f, -0.5f);
            }
        }
        gemm_label = "";
        mt_cpu_gemm_set_library(old);
    }
    if (!mt_cpu_gemm_available(MT_CPU_GEMM_DNNL) || !mt_cpu_gemm_available(MT_CPU_GEMM_BLAS)) {
        tap_skip("needs both BLAS and oneDNN", "automatic GEMM library choice by size");
        return;
    }
    /* 256 x 512 x 1024 = 2^27 (oneDNN's), 256 x 512 x 1025 just above (BLAS's) */
    const int m = 256, n = 512, kmax = 1025;
    float *a = host_rand((size_t)m * kmax, 1.0f, 0.0f), *b = host_rand((size_t)n * kmax, 1.0f, 0.0f);
    float *c_auto = host_fill((size_t)m * n, 0.0f), *c_lib = host_fill((size_t)m * n, 0.0f);
    int ok = 1;
    for (int k = 1024; k <= 1025; k++) {
        gemm_with(MT_CPU_GEMM_AUTO, m, n, k, a, b, c_auto);
        gemm_with(k == 1024 ? MT_CPU_GEMM_DNNL : MT_CPU_GEMM_BLAS, m, n, k, a, b, c_lib);
        ok &= !memcmp(c_auto, c_lib, (size_t)m * n * sizeof *c_lib);
    }
    tap_ok(ok, "automatic GEMM library: oneDNN for 256x512x1024 (2^27 multiply-adds), BLAS for 256x512x1025 "
               "(bitwise the forced library's C)");
    free(a), free(b), free(c_auto), free(c_lib);
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
    host_norm_stats(hx, N, C, hmean, hrstd, 0);
    const char *names[] = {"bias_bwd", "layernorm_bwd", "embed_bwd", "sum_squares"};
    size_t sizes[] = {(size_t)C, (size_t)N * C + 2 * C, (size_t)V * C, 2};
    (void)T, (void)B;
    float *res[2][4];
    int saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r + 1);
        /* bias_bwd */
        float *db = calloc(C, sizeof(float));
        fast->iface->bias_bwd(fast, mt_f32(db, 1, C), mt_f32(hd, N, C));
        res[r][0] = db;
        /* layernorm_bwd: dinp, dw, db in one array */
        float *lo = calloc((size_t)N * C + 2 * C, sizeof(float));
        fast->iface->layernorm_bwd(fast, mt_f32(lo, N, C), mt_f32(lo + (size_t)N * C, 1, C),
                                   mt_f32(lo + (size_t)N * C + C, 1, C), mt_f32(hd, N, C),
                                   mt_f32(hx, N, C), mt_f32(hw, 1, C), mt_f32(hmean, 1, N),
                                   mt_f32(hrstd, 1, N));
        res[r][1] = lo;
        /* embed_bwd: dtable (V,C) */
        float *eo = calloc((size_t)V * C, sizeof(float));
        fast->iface->embed_bwd(fast, mt_f32(eo, V, C), mt_f32(hd, N, C), mt_i32(tok, 1, N), 0);
        res[r][2] = eo;
        /* sum_squares: a double, kept as two floats' worth of bytes */
        float *so = calloc(2, sizeof(float));
        fast->iface->sum_squares(fast, (double *)(void *)so, mt_f32(hss, 1, (int64_t)nss));
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

/* ---- the counter-based generator behind dropout ------------------------------------------
 * Philox4x32-10 against the known-answer vectors of Random123 (kat_vectors,
 * "philox4x32 10"), and the block/element forms agreeing. */
static void test_philox(void)
{
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
        {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu,
         0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
        {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u,
         0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}};
    int ok = 1;
    for (int v = 0; v < 3; v++) {
        uint32_t out[4];
        mt_philox4x32(kat[v], kat[v] + 4, out);
        for (int i = 0; i < 4; i++) ok &= out[i] == kat[v][6 + i];
    }
    tap_ok(ok, "philox4x32-10 equals the three Random123 known-answer vectors");
    uint32_t blk[4];
    mt_philox_block(42, 7, 5, 1, 2, 3, blk);
    ok = 1;
    for (int i = 0; i < 4; i++) ok &= mt_philox_bits(42, 7, 20 + (uint32_t)i, 1, 2, 3) == blk[i];
    ok &= mt_philox_bits(42, 8, 20, 1, 2, 3) != blk[0] && mt_philox_bits(43, 7, 20, 1, 2, 3) != blk[0];
    tap_ok(ok, "philox: element a uses word a %% 4 of block a / 4; another stream or seed, other bits");
    ok = mt_dropout_threshold(0.0) == 0 && mt_dropout_threshold(0.5) == 0x80000000u &&
         mt_dropout_threshold(1.0) == 0xffffffffu && mt_dropout_scale(0.1) == (float)(1.0 / 0.9);
    tap_ok(ok, "dropout threshold floor(p 2^32) and scale 1/(1-p) in float");
}

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
    tap_diag("cpu gemm: %s", mt_cpu_gemm_describe());
    test_philox();
    test_iface(fast, "cpu");
    test_iface(ref, "cpu-ref");
    test_gemm();
    test_gemm_libraries();
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
