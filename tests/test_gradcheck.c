/* test_gradcheck.c: every backward kernel against central finite differences.
 *
 * For a forward f with inputs x and a fixed random weighting R of its output,
 *     L(x) = sum(f(x) * R)            (computed in double on the host)
 * the backward kernel called with dout = R must return dL/dx. Each input
 * element is perturbed by +-h and compared with (L(x+h) - L(x-h)) / 2h:
 *     |analytic - fd| <= ATOL + RTOL * |fd|
 * Inputs are ~U[-1,1] floats; h = 1e-2 keeps the truncation error (h^2/6
 * f''') near 1e-5 and the float rounding of L divided by 2h near 1e-5; the
 * largest error seen is 3e-5 (layernorm), so ATOL = 2e-4, RTOL = 1e-3 leave
 * a margin of about 7 for other compilers and flags. To show the check has teeth, each
 * line also requires that the analytic gradient scaled by 0.9 (a formula off
 * by a constant factor) would FAIL it.
 *
 * Also checked: the accumulation contract (layernorm_bwd, embed_bwd,
 * bias_bwd and the beta = 1 weight-gradient GEMM add into their outputs:
 * called twice from zero they give twice the result) and the overwrite
 * contract (gelu_bwd, attn_bwd dqkv, xent_bwd ignore what the output held:
 * pre-filled with NaN they give the same finite result).
 *
 * Runs on cpu-ref, then on cpu. TAP output; exit 0 iff all pass. */
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
#include "cpu/cpu_internal.h"
#include "tap.h"

static const double H = 1e-2, ATOL = 2e-4, RTOL = 1e-3, WRONG_FACTOR = 0.9;

/* ---- host and device helpers ------------------------------------------------------------ */

static uint64_t rng_state = 0x6a09e667f3bcc908ull;
static float urand(void) /* U[-1,1), splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((z >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *hrand(size_t n, float scale)
{
    float *x = malloc(n * sizeof *x);
    assert(x);
    for (size_t i = 0; i < n; i++) x[i] = scale * urand();
    return x;
}

static void *up(mt_backend *be, const void *host, size_t bytes)
{
    void *d = be->iface->alloc(be, bytes);
    assert(d);
    be->iface->upload(be, d, host, bytes);
    return d;
}

static float *upf(mt_backend *be, const float *host, size_t n) { return up(be, host, n * sizeof(float)); }

static float *dfill(mt_backend *be, size_t n, float v)
{
    float *h = malloc(n * sizeof *h);
    assert(h);
    for (size_t i = 0; i < n; i++) h[i] = v;
    float *d = upf(be, h, n);
    free(h);
    return d;
}

static void down(mt_backend *be, float *host, const float *d, size_t n)
{
    be->iface->download(be, host, d, n * sizeof(float));
}

static void dfree(mt_backend *be, void *d) { be->iface->dealloc(be, d); }

/* sum(out * R) in double, out downloaded from the device */
static double weighted_sum(mt_backend *be, const float *dout_dev, const float *R, size_t n)
{
    float *h = malloc(n * sizeof *h);
    assert(h);
    down(be, h, dout_dev, n);
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)h[i] * R[i];
    free(h);
    return s;
}

/* ---- the kernels under test ---------------------------------------------------------------
 * Each has up to three float inputs. loss() runs the forward on the backend
 * from the host inputs and returns L; grad() runs the backward with dout = R
 * into zeroed (or, with prefill = NaN, poisoned) gradient buffers and downloads them.
 * `rep` runs the backward that many times (2 checks accumulation). */

enum { MAXIN = 3 };
struct kernel {
    const char *name;
    int nin;
    const char *in_name[MAXIN];
    size_t n_in[MAXIN];
    float *x0[MAXIN]; /* initial inputs */
    double (*loss)(mt_backend *be, float **in);
    void (*grad)(mt_backend *be, float **in, float **g, int rep, float prefill);
    int accumulates; /* 1: += contract, 0: = contract */
};

/* embed: out (B,T,C) = wte[tok - off] + wpe[t]; inputs wte (Vl,C), wpe (T,C) */
enum { E_B = 2, E_T = 3, E_C = 4, E_V = 6 };
static int e_off, e_Vl;
static int32_t e_tok[E_B * E_T];
static float e_R[E_B * E_T * E_C];

static double loss_embed(mt_backend *be, float **in)
{
    float *wte = upf(be, in[0], (size_t)e_Vl * E_C), *wpe = upf(be, in[1], E_T * E_C);
    int32_t *tok = up(be, e_tok, sizeof e_tok);
    float *out = dfill(be, E_B * E_T * E_C, NAN);
    be->iface->embed_fwd(be, out, tok, wte, wpe, E_B, E_T, E_C, 0, e_off, e_Vl);
    double L = weighted_sum(be, out, e_R, E_B * E_T * E_C);
    dfree(be, wte), dfree(be, wpe), dfree(be, tok), dfree(be, out);
    return L;
}

static void grad_embed(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    (void)in;
    int32_t *tok = up(be, e_tok, sizeof e_tok);
    float *dout = upf(be, e_R, E_B * E_T * E_C);
    float *dwte = dfill(be, (size_t)e_Vl * E_C, prefill), *dwpe = dfill(be, E_T * E_C, prefill);
    for (int r = 0; r < rep; r++) be->iface->embed_bwd(be, dwte, dwpe, dout, tok, E_B, E_T, E_C, e_off, e_Vl);
    down(be, g[0], dwte, (size_t)e_Vl * E_C), down(be, g[1], dwpe, E_T * E_C);
    dfree(be, tok), dfree(be, dout), dfree(be, dwte), dfree(be, dwpe);
}

/* layernorm: out (N,C); inputs inp (N,C), w (C), b (C) */
enum { L_N = 3, L_C = 5 };
static float l_R[L_N * L_C];

static double loss_layernorm(mt_backend *be, float **in)
{
    float *x = upf(be, in[0], L_N * L_C), *w = upf(be, in[1], L_C), *b = upf(be, in[2], L_C);
    float *out = dfill(be, L_N * L_C, NAN), *mean = dfill(be, L_N, NAN), *rstd = dfill(be, L_N, NAN);
    be->iface->layernorm_fwd(be, out, mean, rstd, x, w, b, L_N, L_C);
    double L = weighted_sum(be, out, l_R, L_N * L_C);
    dfree(be, x), dfree(be, w), dfree(be, b), dfree(be, out), dfree(be, mean), dfree(be, rstd);
    return L;
}

static void grad_layernorm(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    float *x = upf(be, in[0], L_N * L_C), *w = upf(be, in[1], L_C), *b = upf(be, in[2], L_C);
    float *out = dfill(be, L_N * L_C, 0), *mean = dfill(be, L_N, 0), *rstd = dfill(be, L_N, 0);
    be->iface->layernorm_fwd(be, out, mean, rstd, x, w, b, L_N, L_C);
    float *dout = upf(be, l_R, L_N * L_C);
    float *dx = dfill(be, L_N * L_C, prefill), *dw = dfill(be, L_C, prefill), *db = dfill(be, L_C, prefill);
    for (int r = 0; r < rep; r++) be->iface->layernorm_bwd(be, dx, dw, db, dout, x, w, mean, rstd, L_N, L_C);
    down(be, g[0], dx, L_N * L_C), down(be, g[1], dw, L_C), down(be, g[2], db, L_C);
    dfree(be, x), dfree(be, w), dfree(be, b), dfree(be, out), dfree(be, mean), dfree(be, rstd);
    dfree(be, dout), dfree(be, dx), dfree(be, dw), dfree(be, db);
}

/* bias: y (N,C) = x + bias; input bias (C) (dx = dy is no kernel's job) */
enum { B_N = 4, B_C = 5 };
static float b_R[B_N * B_C], b_x[B_N * B_C];

static double loss_bias(mt_backend *be, float **in)
{
    float *y = upf(be, b_x, B_N * B_C), *bias = upf(be, in[0], B_C);
    be->iface->bias_add(be, y, bias, B_N, B_C);
    double L = weighted_sum(be, y, b_R, B_N * B_C);
    dfree(be, y), dfree(be, bias);
    return L;
}

static void grad_bias(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    (void)in;
    float *dy = upf(be, b_R, B_N * B_C), *db = dfill(be, B_C, prefill);
    for (int r = 0; r < rep; r++) be->iface->bias_bwd(be, db, dy, B_N, B_C);
    down(be, g[0], db, B_C);
    dfree(be, dy), dfree(be, db);
}

/* gelu: out (n); input x (n) */
enum { G_N = 24 };
static float g_R[G_N];

static double loss_gelu(mt_backend *be, float **in)
{
    float *x = upf(be, in[0], G_N), *out = dfill(be, G_N, NAN);
    be->iface->gelu_fwd(be, out, x, G_N);
    double L = weighted_sum(be, out, g_R, G_N);
    dfree(be, x), dfree(be, out);
    return L;
}

static void grad_gelu(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    float *x = upf(be, in[0], G_N), *dout = upf(be, g_R, G_N), *dx = dfill(be, G_N, prefill);
    for (int r = 0; r < rep; r++) be->iface->gelu_bwd(be, dx, x, dout, G_N);
    down(be, g[0], dx, G_N);
    dfree(be, x), dfree(be, dout), dfree(be, dx);
}

/* attention: out (B,T,NH,HS); input qkv (B,T,NH,3,HS) */
enum { A_B = 2, A_T = 4, A_NH = 2, A_HS = 3 };
enum { A_NQKV = A_B * A_T * A_NH * 3 * A_HS, A_NOUT = A_B * A_T * A_NH * A_HS, A_NATT = A_B * A_NH * A_T * A_T };
static float a_R[A_NOUT];

static double loss_attn(mt_backend *be, float **in)
{
    float *qkv = upf(be, in[0], A_NQKV), *out = dfill(be, A_NOUT, NAN), *att = dfill(be, A_NATT, NAN);
    be->iface->attn_fwd(be, out, att, qkv, A_B, A_T, 0, A_NH, A_HS);
    double L = weighted_sum(be, out, a_R, A_NOUT);
    dfree(be, qkv), dfree(be, out), dfree(be, att);
    return L;
}

static void grad_attn(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    float *qkv = upf(be, in[0], A_NQKV), *out = dfill(be, A_NOUT, 0), *att = dfill(be, A_NATT, 0);
    be->iface->attn_fwd(be, out, att, qkv, A_B, A_T, 0, A_NH, A_HS);
    float *dout = upf(be, a_R, A_NOUT), *dqkv = dfill(be, A_NQKV, prefill), *datt = dfill(be, A_NATT, prefill);
    for (int r = 0; r < rep; r++) be->iface->attn_bwd(be, dqkv, datt, dout, qkv, att, A_B, A_T, A_NH, A_HS);
    down(be, g[0], dqkv, A_NQKV);
    dfree(be, qkv), dfree(be, out), dfree(be, att), dfree(be, dout), dfree(be, dqkv), dfree(be, datt);
}

/* cross-entropy chain: losses (N) from logits (N,ld), V columns used;
 * L = sum_n losses[n] * dlosses[n] */
enum { X_N = 3, X_V = 7, X_LD = 9 };
static int32_t x_tg[X_N];
static float x_dl[X_N];

static double loss_xent(mt_backend *be, float **in)
{
    float *logits = upf(be, in[0], X_N * X_LD);
    int32_t *tg = up(be, x_tg, sizeof x_tg);
    float *mx = dfill(be, X_N, NAN), *se = dfill(be, X_N, NAN), *tgt = dfill(be, X_N, NAN), *loss = dfill(be, X_N, NAN);
    be->iface->xent_max(be, mx, logits, X_N, X_V, X_LD);
    be->iface->xent_sumexp(be, se, tgt, logits, mx, tg, X_N, X_V, 0, X_LD);
    be->iface->xent_loss(be, loss, mx, se, tgt, X_N);
    double L = weighted_sum(be, loss, x_dl, X_N);
    dfree(be, logits), dfree(be, tg), dfree(be, mx), dfree(be, se), dfree(be, tgt), dfree(be, loss);
    return L;
}

static void grad_xent(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    float *logits = upf(be, in[0], X_N * X_LD);
    int32_t *tg = up(be, x_tg, sizeof x_tg);
    float *mx = dfill(be, X_N, 0), *se = dfill(be, X_N, 0), *tgt = dfill(be, X_N, 0);
    be->iface->xent_max(be, mx, logits, X_N, X_V, X_LD);
    be->iface->xent_sumexp(be, se, tgt, logits, mx, tg, X_N, X_V, 0, X_LD);
    float *dl = upf(be, x_dl, X_N), *dlog = dfill(be, X_N * X_LD, prefill);
    for (int r = 0; r < rep; r++) be->iface->xent_bwd(be, dlog, dl, logits, mx, se, tg, X_N, X_V, 0, X_LD);
    down(be, g[0], dlog, X_N * X_LD);
    /* the padding columns [V, ld) are neither read nor written: no gradient */
    for (int n = 0; n < X_N; n++)
        for (int c = X_V; c < X_LD; c++) g[0][n * X_LD + c] = 0.0f;
    dfree(be, logits), dfree(be, tg), dfree(be, mx), dfree(be, se), dfree(be, tgt), dfree(be, dl), dfree(be, dlog);
}

/* linear layer through GEMM: y (N,O) = x (N,I) W^T + b, W (O,I), b (O)
 *   dx = dy W (overwrite, beta 0);  dW += dy^T x (beta 1);  db += colsum(dy) */
enum { F_N = 3, F_I = 4, F_O = 5 };
static float f_R[F_N * F_O];

static void gemm(mt_backend *be, enum mt_trans ta, enum mt_trans tb, int m, int n, int k, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    struct mt_gemm_args g = {ta, tb, m, n, k, 1, 1.0f, beta, a, lda, 0, b, ldb, 0, c, ldc, 0};
    be->iface->gemm(be, &g);
}

static double loss_linear(mt_backend *be, float **in)
{
    float *x = upf(be, in[0], F_N * F_I), *w = upf(be, in[1], F_O * F_I), *b = upf(be, in[2], F_O);
    float *y = dfill(be, F_N * F_O, NAN);
    gemm(be, MT_TRANS_N, MT_TRANS_T, F_N, F_O, F_I, x, F_I, w, F_I, 0.0f, y, F_O);
    be->iface->bias_add(be, y, b, F_N, F_O);
    double L = weighted_sum(be, y, f_R, F_N * F_O);
    dfree(be, x), dfree(be, w), dfree(be, b), dfree(be, y);
    return L;
}

static void grad_linear(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    float *x = upf(be, in[0], F_N * F_I), *w = upf(be, in[1], F_O * F_I), *dy = upf(be, f_R, F_N * F_O);
    /* dx is overwritten (beta 0) on every call, so for the accumulation
     * check it starts at zero and is summed on the host instead. */
    float *dx = dfill(be, F_N * F_I, 0), *dw = dfill(be, F_O * F_I, prefill), *db = dfill(be, F_O, prefill);
    float *acc = calloc(F_N * F_I, sizeof *acc), *tmp = malloc(F_N * F_I * sizeof *tmp);
    for (int r = 0; r < rep; r++) {
        gemm(be, MT_TRANS_N, MT_TRANS_N, F_N, F_I, F_O, dy, F_O, w, F_I, 0.0f, dx, F_I);
        gemm(be, MT_TRANS_T, MT_TRANS_N, F_O, F_I, F_N, dy, F_O, x, F_I, 1.0f, dw, F_I);
        be->iface->bias_bwd(be, db, dy, F_N, F_O);
        down(be, tmp, dx, F_N * F_I);
        for (int i = 0; i < F_N * F_I; i++) acc[i] += tmp[i];
    }
    memcpy(g[0], acc, F_N * F_I * sizeof *acc);
    down(be, g[1], dw, F_O * F_I), down(be, g[2], db, F_O);
    dfree(be, x), dfree(be, w), dfree(be, dy), dfree(be, dx), dfree(be, dw), dfree(be, db);
    free(acc), free(tmp);
}

static struct kernel KERNELS[] = {
    {"embed (full vocab)", 2, {"dwte", "dwpe"}, {0}, {0}, loss_embed, grad_embed, 1},
    {"embed (shard, off=2)", 2, {"dwte", "dwpe"}, {0}, {0}, loss_embed, grad_embed, 1},
    {"layernorm", 3, {"dinp", "dw", "db"}, {L_N * L_C, L_C, L_C}, {0}, loss_layernorm, grad_layernorm, 1},
    {"bias", 1, {"dbias"}, {B_C}, {0}, loss_bias, grad_bias, 1},
    {"gelu", 1, {"dinp"}, {G_N}, {0}, loss_gelu, grad_gelu, 0},
    {"attention", 1, {"dqkv"}, {A_NQKV}, {0}, loss_attn, grad_attn, 0},
    {"xent chain", 1, {"dlogits"}, {X_N * X_LD}, {0}, loss_xent, grad_xent, 0},
    {"linear (gemm + bias)", 3, {"dx", "dW", "db"}, {F_N * F_I, F_O * F_I, F_O}, {0}, loss_linear, grad_linear, 1},
};
enum { NKERNELS = sizeof KERNELS / sizeof KERNELS[0] };

static void setup(void)
{
    for (int i = 0; i < E_B * E_T; i++) e_tok[i] = i % 4; /* tokens 0..3 repeat */
    for (int i = 0; i < E_B * E_T * E_C; i++) e_R[i] = urand();
    for (int i = 0; i < L_N * L_C; i++) l_R[i] = urand();
    for (int i = 0; i < B_N * B_C; i++) b_R[i] = urand(), b_x[i] = urand();
    for (int i = 0; i < G_N; i++) g_R[i] = urand();
    for (int i = 0; i < A_NOUT; i++) a_R[i] = urand();
    for (int n = 0; n < X_N; n++) x_tg[n] = (n * 3 + 1) % X_V, x_dl[n] = urand();
    for (int i = 0; i < F_N * F_O; i++) f_R[i] = urand();
    /* shapes that depend on the variant, then the initial inputs */
    KERNELS[0].n_in[0] = (size_t)E_V * E_C, KERNELS[0].n_in[1] = E_T * E_C;
    KERNELS[1].n_in[0] = (size_t)(E_V - 3) * E_C, KERNELS[1].n_in[1] = E_T * E_C;
    for (int k = 0; k < NKERNELS; k++)
        for (int j = 0; j < KERNELS[k].nin; j++) KERNELS[k].x0[j] = hrand(KERNELS[k].n_in[j], 1.0f);
    /* gelu inputs over its bend and tails */
    for (int i = 0; i < G_N; i++) KERNELS[4].x0[0][i] = -4.0f + 8.0f * i / (G_N - 1) + 0.1f * urand();
    /* layernorm weights around 1 */
    for (int i = 0; i < L_C; i++) KERNELS[2].x0[1][i] += 1.0f;
    /* logits of a few units, padding columns poisoned (they must not matter) */
    for (int n = 0; n < X_N; n++)
        for (int c = 0; c < X_LD; c++) KERNELS[6].x0[0][n * X_LD + c] = c < X_V ? 2.0f * urand() : NAN;
}

/* the embed variant is chosen by global offset */
static void select_variant(int k)
{
    if (k == 0) e_off = 0, e_Vl = E_V;
    if (k == 1) e_off = 2, e_Vl = E_V - 3; /* shard rows 2..4: tokens 0, 1 fall outside */
}

static void gradcheck(mt_backend *be, int k)
{
    struct kernel *K = &KERNELS[k];
    select_variant(k);
    float *in[MAXIN] = {0}, *g[MAXIN] = {0};
    for (int j = 0; j < K->nin; j++) {
        in[j] = malloc(K->n_in[j] * sizeof(float));
        g[j] = malloc(K->n_in[j] * sizeof(float));
        memcpy(in[j], K->x0[j], K->n_in[j] * sizeof(float));
    }
    K->grad(be, in, g, 1, 0.0f);
    double max_err = 0.0, max_wrong_excess = -INFINITY;
    long bad = 0, checked = 0;
    char first[160] = "";
    for (int j = 0; j < K->nin; j++) {
        for (size_t i = 0; i < K->n_in[j]; i++) {
            float v = in[j][i];
            if (isnan(v)) continue; /* poisoned padding */
            in[j][i] = (float)(v + H);
            double lp = K->loss(be, in);
            in[j][i] = (float)(v - H);
            double lm = K->loss(be, in);
            in[j][i] = v;
            double fd = (lp - lm) / (2 * H), a = g[j][i], tol = ATOL + RTOL * fabs(fd);
            double err = fabs(a - fd);
            checked++;
            if (err > max_err) max_err = err;
            if (!(err <= tol) && bad++ == 0)
                snprintf(first, sizeof first, "%s[%zu]: analytic %.6g, finite difference %.6g", K->in_name[j], i, a, fd);
            double excess = fabs(WRONG_FACTOR * a - fd) - tol;
            if (excess > max_wrong_excess) max_wrong_excess = excess;
        }
    }
    int sensitive = max_wrong_excess > 0; /* a 10%-wrong gradient would have failed */
    tap_ok(bad == 0 && sensitive, "%s: %ld elements vs central differences, max |err| %.2e (tol %.0e+%.0e|fd|)%s [%s]",
           K->name, checked, max_err, ATOL, RTOL, sensitive ? "" : " NOT SENSITIVE to a 0.9x gradient",
           be->iface->name(be));
    if (bad) tap_diag("  %ld out of tolerance; first %s", bad, first);
    for (int j = 0; j < K->nin; j++) free(in[j]), free(g[j]);
}

/* += kernels: two calls from zero give exactly twice one call.
 * = kernels: a NaN-filled output gives the same, finite, result as a zeroed one. */
static void contract(mt_backend *be, int k)
{
    struct kernel *K = &KERNELS[k];
    select_variant(k);
    float *g1[MAXIN] = {0}, *g2[MAXIN] = {0};
    for (int j = 0; j < K->nin; j++) {
        g1[j] = malloc(K->n_in[j] * sizeof(float));
        g2[j] = malloc(K->n_in[j] * sizeof(float));
    }
    K->grad(be, K->x0, g1, 1, 0.0f);
    if (K->accumulates)
        K->grad(be, K->x0, g2, 2, 0.0f);
    else
        K->grad(be, K->x0, g2, 1, NAN);
    long bad = 0;
    for (int j = 0; j < K->nin; j++)
        for (size_t i = 0; i < K->n_in[j]; i++) {
            double want = K->accumulates ? 2.0 * g1[j][i] : g1[j][i];
            if (!(fabs(g2[j][i] - want) <= 1e-6 * fabs(want)) || !isfinite(g2[j][i])) bad++;
        }
    tap_ok(bad == 0, "%s: %s [%s]", K->name,
           K->accumulates ? "accumulates (+=): two calls give twice one call"
                          : "overwrites (=): a NaN-filled output gives the same finite result",
           be->iface->name(be));
    for (int j = 0; j < K->nin; j++) free(g1[j]), free(g2[j]);
}

int main(void)
{
    setup();
    mt_backend *bes[2] = {mt_backend_cpu_create(1), mt_backend_cpu_create(0)};
    tap_plan(2 * 2 * NKERNELS);
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < NKERNELS; k++) {
            gradcheck(bes[b], k);
            contract(bes[b], k);
        }
    for (int b = 0; b < 2; b++) bes[b]->iface->free(bes[b]);
    for (int k = 0; k < NKERNELS; k++)
        for (int j = 0; j < KERNELS[k].nin; j++) free(KERNELS[k].x0[j]);
    return tap_done();
}
