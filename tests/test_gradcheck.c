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
 * Also checked: the accumulation contract (layernorm_bwd, rmsnorm_bwd,
 * embed_bwd, bias_bwd and the beta = 1 weight-gradient GEMM add into their
 * outputs: called twice from zero they give twice the result) and the
 * overwrite contract (gelu_bwd, swiglu_bwd, attn_bwd and flash_attn_bwd dqkv, xent_bwd ignore
 * what the output held: pre-filled with NaN they give the same finite
 * result). Dropout and rope work in place on the gradient: no contract.
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

/* tensors on the device from host data, and their release */
static mt_tensor tup(mt_backend *be, const float *host, int64_t rows, int64_t cols)
{
    return mt_f32(upf(be, host, (size_t)(rows * cols)), rows, cols);
}
static mt_tensor tfill(mt_backend *be, int64_t rows, int64_t cols, float v)
{
    return mt_f32(dfill(be, (size_t)(rows * cols), v), rows, cols);
}
static void tfree(mt_backend *be, mt_tensor t) { dfree(be, t.data); }
static void tdown(mt_backend *be, float *host, mt_tensor t)
{
    down(be, host, mt_fp(t), (size_t)mt_numel(t));
}
static double tweighted(mt_backend *be, mt_tensor out, const float *R)
{
    return weighted_sum(be, mt_fp(out), R, (size_t)mt_numel(out));
}

/* embed: out (N,C) = table[ids - off] (then += a second lookup, as positions
 * are added); input table (Vl,C) */
enum { E_N = 6, E_C = 4, E_V = 6 };
static int e_off, e_Vl;
static int32_t e_tok[E_N];
static float e_R[E_N * E_C];

static double loss_embed(mt_backend *be, float **in)
{
    mt_tensor table = tup(be, in[0], e_Vl, E_C), out = tfill(be, E_N, E_C, NAN);
    mt_tensor ids = mt_i32(up(be, e_tok, sizeof e_tok), 1, E_N);
    be->iface->embed_fwd(be, out, ids, table, e_off, 0);
    be->iface->embed_fwd(be, out, ids, table, e_off, 1); /* the same rows once more */
    double L = tweighted(be, out, e_R);
    tfree(be, table), tfree(be, out), dfree(be, ids.data);
    return L;
}

static void grad_embed(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    (void)in;
    mt_tensor ids = mt_i32(up(be, e_tok, sizeof e_tok), 1, E_N);
    mt_tensor dout = tup(be, e_R, E_N, E_C), dtab = tfill(be, e_Vl, E_C, prefill);
    for (int r = 0; r < 2 * rep; r++) be->iface->embed_bwd(be, dtab, dout, ids, e_off);
    tdown(be, g[0], dtab);
    dfree(be, ids.data), tfree(be, dout), tfree(be, dtab);
}

/* layernorm: out (N,C); inputs inp (N,C), w (C), b (C) */
enum { L_N = 3, L_C = 5 };
static float l_R[L_N * L_C];

static double loss_layernorm(mt_backend *be, float **in)
{
    mt_tensor x = tup(be, in[0], L_N, L_C), w = tup(be, in[1], 1, L_C), b = tup(be, in[2], 1, L_C);
    mt_tensor out = tfill(be, L_N, L_C, NAN), mean = tfill(be, 1, L_N, NAN), rstd = tfill(be, 1, L_N, NAN);
    be->iface->layernorm_fwd(be, out, mean, rstd, x, w, b, 1e-5);
    double L = tweighted(be, out, l_R);
    tfree(be, x), tfree(be, w), tfree(be, b), tfree(be, out), tfree(be, mean), tfree(be, rstd);
    return L;
}

static void grad_layernorm(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    mt_tensor x = tup(be, in[0], L_N, L_C), w = tup(be, in[1], 1, L_C), b = tup(be, in[2], 1, L_C);
    mt_tensor out = tfill(be, L_N, L_C, 0), mean = tfill(be, 1, L_N, 0), rstd = tfill(be, 1, L_N, 0);
    be->iface->layernorm_fwd(be, out, mean, rstd, x, w, b, 1e-5);
    mt_tensor dout = tup(be, l_R, L_N, L_C);
    mt_tensor dx = tfill(be, L_N, L_C, prefill), dw = tfill(be, 1, L_C, prefill), db = tfill(be, 1, L_C, prefill);
    for (int r = 0; r < rep; r++) be->iface->layernorm_bwd(be, dx, dw, db, dout, x, w, mean, rstd);
    tdown(be, g[0], dx), tdown(be, g[1], dw), tdown(be, g[2], db);
    tfree(be, x), tfree(be, w), tfree(be, b), tfree(be, out), tfree(be, mean), tfree(be, rstd);
    tfree(be, dout), tfree(be, dx), tfree(be, dw), tfree(be, db);
}

/* rmsnorm: out (N,C); inputs inp (N,C), w (C) */
static double loss_rmsnorm(mt_backend *be, float **in)
{
    mt_tensor x = tup(be, in[0], L_N, L_C), w = tup(be, in[1], 1, L_C);
    mt_tensor out = tfill(be, L_N, L_C, NAN), rstd = tfill(be, 1, L_N, NAN);
    be->iface->rmsnorm_fwd(be, out, rstd, x, w, 1e-6);
    double L = tweighted(be, out, l_R);
    tfree(be, x), tfree(be, w), tfree(be, out), tfree(be, rstd);
    return L;
}

static void grad_rmsnorm(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    mt_tensor x = tup(be, in[0], L_N, L_C), w = tup(be, in[1], 1, L_C);
    mt_tensor out = tfill(be, L_N, L_C, 0), rstd = tfill(be, 1, L_N, 0);
    be->iface->rmsnorm_fwd(be, out, rstd, x, w, 1e-6);
    mt_tensor dout = tup(be, l_R, L_N, L_C), dx = tfill(be, L_N, L_C, prefill), dw = tfill(be, 1, L_C, prefill);
    for (int r = 0; r < rep; r++) be->iface->rmsnorm_bwd(be, dx, dw, dout, x, w, rstd);
    tdown(be, g[0], dx), tdown(be, g[1], dw);
    tfree(be, x), tfree(be, w), tfree(be, out), tfree(be, rstd), tfree(be, dout), tfree(be, dx), tfree(be, dw);
}

/* bias: y (N,C) = x + bias; input bias (C) (dx = dy is no kernel's job) */
enum { B_N = 4, B_C = 5 };
static float b_R[B_N * B_C], b_x[B_N * B_C];

static double loss_bias(mt_backend *be, float **in)
{
    mt_tensor y = tup(be, b_x, B_N, B_C), bias = tup(be, in[0], 1, B_C);
    be->iface->bias_add(be, y, bias);
    double L = tweighted(be, y, b_R);
    tfree(be, y), tfree(be, bias);
    return L;
}

static void grad_bias(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    (void)in;
    mt_tensor dy = tup(be, b_R, B_N, B_C), db = tfill(be, 1, B_C, prefill);
    for (int r = 0; r < rep; r++) be->iface->bias_bwd(be, db, dy);
    tdown(be, g[0], db);
    tfree(be, dy), tfree(be, db);
}

/* gelu: out (n); input x (n) */
enum { G_N = 24 };
static float g_R[G_N];

static double loss_act(mt_backend *be, float **in, enum mt_act act)
{
    mt_tensor x = tup(be, in[0], 1, G_N), out = tfill(be, 1, G_N, NAN);
    be->iface->act_fwd(be, out, x, act);
    double L = tweighted(be, out, g_R);
    tfree(be, x), tfree(be, out);
    return L;
}

static void grad_act(mt_backend *be, float **in, float **g, int rep, float prefill, enum mt_act act)
{
    mt_tensor x = tup(be, in[0], 1, G_N), dout = tup(be, g_R, 1, G_N), dx = tfill(be, 1, G_N, prefill);
    for (int r = 0; r < rep; r++) be->iface->act_bwd(be, dx, x, dout, act);
    tdown(be, g[0], dx);
    tfree(be, x), tfree(be, dout), tfree(be, dx);
}
/* the three activations as kernels of the table */
#define ACT_KERNEL_(name, act) \
    static double loss_##name(mt_backend *be, float **in) { return loss_act(be, in, act); } \
    static void grad_##name(mt_backend *be, float **in, float **g, int rep, float prefill) \
    { \
        grad_act(be, in, g, rep, prefill, act); \
    }
ACT_KERNEL_(gelu, MT_ACT_GELU_TANH)
ACT_KERNEL_(gelu_erf, MT_ACT_GELU)
ACT_KERNEL_(tanh, MT_ACT_TANH)

/* swiglu: out (N,F); input x (N,2F) = [gate | up] */
enum { S_N = 3, S_F = 4 };
static float s_R[S_N * S_F];

static double loss_swiglu(mt_backend *be, float **in)
{
    mt_tensor x = tup(be, in[0], S_N, 2 * S_F), out = tfill(be, S_N, S_F, NAN);
    be->iface->swiglu_fwd(be, out, x);
    double L = tweighted(be, out, s_R);
    tfree(be, x), tfree(be, out);
    return L;
}

static void grad_swiglu(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    mt_tensor x = tup(be, in[0], S_N, 2 * S_F), dout = tup(be, s_R, S_N, S_F);
    mt_tensor dx = tfill(be, S_N, 2 * S_F, prefill);
    for (int r = 0; r < rep; r++) be->iface->swiglu_bwd(be, dx, x, dout);
    tdown(be, g[0], dx);
    tfree(be, x), tfree(be, dout), tfree(be, dx);
}

/* dropout: y = x * mask / (1-p) in place; input x (N,C); the backward is the
 * same member on the gradient */
enum { D_T = 3, D_N = 6, D_C = 5 };
static float d_R[D_N * D_C];
static const struct mt_dropout_args D_ARGS = {0.3f, 12345, 9, 40, D_T, 7};

static double loss_dropout(mt_backend *be, float **in)
{
    mt_tensor x = tup(be, in[0], D_N, D_C);
    be->iface->dropout(be, x, &D_ARGS);
    double L = tweighted(be, x, d_R);
    tfree(be, x);
    return L;
}

static void grad_dropout(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    (void)in, (void)prefill; /* in place: overwrites by construction */
    float *acc = calloc(D_N * D_C, sizeof *acc), *tmp = malloc(D_N * D_C * sizeof *tmp);
    for (int r = 0; r < rep; r++) {
        mt_tensor dx = tup(be, d_R, D_N, D_C);
        be->iface->dropout(be, dx, &D_ARGS);
        tdown(be, tmp, dx);
        for (int i = 0; i < D_N * D_C; i++) acc[i] += tmp[i];
        tfree(be, dx);
    }
    memcpy(g[0], acc, D_N * D_C * sizeof *acc);
    free(acc), free(tmp);
}

/* attention over grouped qkv (2 groups of 2 query heads); variants select
 * causal or not and dropout. out (B*T, NH*HS); input qkv (B*T, width) */
enum { A_B = 2, A_T = 4, A_NH = 4, A_G = 2, A_HS = 3 };
enum { A_W = A_G * (A_NH / A_G + 2) * A_HS, A_NQKV = A_B * A_T * A_W, A_NOUT = A_B * A_T * A_NH * A_HS,
       A_NATT = A_B * A_NH * A_T * A_T };
static float a_R[A_NOUT];
static struct mt_attn_args a_args = {.B = A_B, .T = A_T, .heads = A_NH, .groups = A_G, .head_dim = A_HS, .causal = 1};

static double loss_attn(mt_backend *be, float **in)
{
    mt_tensor qkv = tup(be, in[0], A_B * A_T, A_W), out = tfill(be, A_B * A_T, A_NH * A_HS, NAN);
    mt_tensor att = tfill(be, A_B * A_NH * A_T, A_T, NAN);
    be->iface->attn_fwd(be, out, att, qkv, &a_args);
    double L = tweighted(be, out, a_R);
    tfree(be, qkv), tfree(be, out), tfree(be, att);
    return L;
}

static void grad_attn(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    mt_tensor qkv = tup(be, in[0], A_B * A_T, A_W), out = tfill(be, A_B * A_T, A_NH * A_HS, 0);
    mt_tensor att = tfill(be, A_B * A_NH * A_T, A_T, 0);
    be->iface->attn_fwd(be, out, att, qkv, &a_args);
    mt_tensor dout = tup(be, a_R, A_B * A_T, A_NH * A_HS), dqkv = tfill(be, A_B * A_T, A_W, prefill);
    mt_tensor datt = tfill(be, A_B * A_NH * A_T, A_T, prefill);
    for (int r = 0; r < rep; r++) be->iface->attn_bwd(be, dqkv, datt, dout, qkv, att, &a_args);
    tdown(be, g[0], dqkv);
    tfree(be, qkv), tfree(be, out), tfree(be, att), tfree(be, dout), tfree(be, dqkv), tfree(be, datt);
}

/* flash attention: the same maps, its backward from the saved log-sum-exp */
static double loss_flash(mt_backend *be, float **in)
{
    mt_tensor qkv = tup(be, in[0], A_B * A_T, A_W), out = tfill(be, A_B * A_T, A_NH * A_HS, NAN);
    mt_tensor lse = tfill(be, A_B * A_NH * A_T, 1, NAN);
    be->iface->flash_attn_fwd(be, out, lse, qkv, &a_args);
    double L = tweighted(be, out, a_R);
    tfree(be, qkv), tfree(be, out), tfree(be, lse);
    return L;
}

static void grad_flash(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    mt_tensor qkv = tup(be, in[0], A_B * A_T, A_W), out = tfill(be, A_B * A_T, A_NH * A_HS, 0);
    mt_tensor lse = tfill(be, A_B * A_NH * A_T, 1, 0);
    be->iface->flash_attn_fwd(be, out, lse, qkv, &a_args);
    mt_tensor dout = tup(be, a_R, A_B * A_T, A_NH * A_HS), dqkv = tfill(be, A_B * A_T, A_W, prefill);
    mt_tensor rowdot = tfill(be, A_B * A_NH * A_T, 1, prefill);
    for (int r = 0; r < rep; r++) be->iface->flash_attn_bwd(be, dqkv, rowdot, dout, qkv, out, lse, &a_args);
    tdown(be, g[0], dqkv);
    tfree(be, qkv), tfree(be, out), tfree(be, lse), tfree(be, dout), tfree(be, dqkv), tfree(be, rowdot);
}

/* rope on the grouped qkv rows (half of each head rotated, so pass-through
 * dims are checked too): y = rope(x); input x (B*T, width); the backward is
 * the inverse rotation of the gradient */
enum { P_R = 2 }; /* of A_HS = 3 */
static float p_table[A_T * P_R], p_R[A_NQKV];

static double loss_rope(mt_backend *be, float **in)
{
    mt_tensor x = tup(be, in[0], A_B * A_T, A_W), table = tup(be, p_table, A_T, P_R);
    be->iface->rope(be, x, table, &a_args, 0);
    double L = tweighted(be, x, p_R);
    tfree(be, x), tfree(be, table);
    return L;
}

static void grad_rope(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    (void)in, (void)prefill; /* in place */
    float *acc = calloc(A_NQKV, sizeof *acc), *tmp = malloc(A_NQKV * sizeof *tmp);
    mt_tensor table = tup(be, p_table, A_T, P_R);
    for (int r = 0; r < rep; r++) {
        mt_tensor dx = tup(be, p_R, A_B * A_T, A_W);
        be->iface->rope(be, dx, table, &a_args, 1);
        tdown(be, tmp, dx);
        for (int i = 0; i < A_NQKV; i++) acc[i] += tmp[i];
        tfree(be, dx);
    }
    memcpy(g[0], acc, A_NQKV * sizeof *acc);
    tfree(be, table), free(acc), free(tmp);
}

/* cross-entropy chain: losses (N) from logits (N,ld), V columns used;
 * L = sum_n losses[n] * dlosses[n] */
enum { X_N = 3, X_V = 7, X_LD = 9 };
static int32_t x_tg[X_N];
static float x_dl[X_N];

static double loss_xent(mt_backend *be, float **in)
{
    mt_tensor logits = tup(be, in[0], X_N, X_LD), tg = mt_i32(up(be, x_tg, sizeof x_tg), 1, X_N);
    mt_tensor mx = tfill(be, 1, X_N, NAN), se = tfill(be, 1, X_N, NAN), tgt = tfill(be, 1, X_N, NAN),
              loss = tfill(be, 1, X_N, NAN);
    be->iface->xent_max(be, mx, logits, X_V);
    be->iface->xent_sumexp(be, se, tgt, logits, mx, tg, X_V, 0);
    be->iface->xent_loss(be, loss, mx, se, tgt);
    double L = tweighted(be, loss, x_dl);
    tfree(be, logits), dfree(be, tg.data), tfree(be, mx), tfree(be, se), tfree(be, tgt), tfree(be, loss);
    return L;
}

static void grad_xent(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    mt_tensor logits = tup(be, in[0], X_N, X_LD), tg = mt_i32(up(be, x_tg, sizeof x_tg), 1, X_N);
    mt_tensor mx = tfill(be, 1, X_N, 0), se = tfill(be, 1, X_N, 0), tgt = tfill(be, 1, X_N, 0);
    be->iface->xent_max(be, mx, logits, X_V);
    be->iface->xent_sumexp(be, se, tgt, logits, mx, tg, X_V, 0);
    mt_tensor dl = tup(be, x_dl, 1, X_N), dlog = tfill(be, X_N, X_LD, prefill);
    for (int r = 0; r < rep; r++) be->iface->xent_bwd(be, dlog, dl, logits, mx, se, tg, X_V, 0);
    tdown(be, g[0], dlog);
    /* the padding columns [V, ld) are neither read nor written: no gradient */
    for (int n = 0; n < X_N; n++)
        for (int c = X_V; c < X_LD; c++) g[0][n * X_LD + c] = 0.0f;
    tfree(be, logits), dfree(be, tg.data), tfree(be, mx), tfree(be, se), tfree(be, tgt), tfree(be, dl),
        tfree(be, dlog);
}

/* linear layer through GEMM: y (N,O) = x (N,I) W^T + b, W (O,I), b (O)
 *   dx = dy W (overwrite, beta 0);  dW += dy^T x (beta 1);  db += colsum(dy) */
enum { F_N = 3, F_I = 4, F_O = 5 };
static float f_R[F_N * F_O];

static void gemm(mt_backend *be, enum mt_trans ta, enum mt_trans tb, int m, int n, int k, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    struct mt_gemm_args g = {ta, tb, m, n, k, 1, 1.0f, beta, a, lda, 0, b, ldb, 0, c, ldc, 0,
                             MT_DTYPE_F32, MT_DTYPE_F32, MT_DTYPE_F32, MT_DTYPE_F32};
    be->iface->gemm(be, &g);
}

static double loss_linear(mt_backend *be, float **in)
{
    float *x = upf(be, in[0], F_N * F_I), *w = upf(be, in[1], F_O * F_I);
    mt_tensor b = tup(be, in[2], 1, F_O), y = tfill(be, F_N, F_O, NAN);
    gemm(be, MT_TRANS_N, MT_TRANS_T, F_N, F_O, F_I, x, F_I, w, F_I, 0.0f, mt_fp(y), F_O);
    be->iface->bias_add(be, y, b);
    double L = tweighted(be, y, f_R);
    dfree(be, x), dfree(be, w), tfree(be, b), tfree(be, y);
    return L;
}

static void grad_linear(mt_backend *be, float **in, float **g, int rep, float prefill)
{
    float *x = upf(be, in[0], F_N * F_I), *w = upf(be, in[1], F_O * F_I);
    mt_tensor dy = tup(be, f_R, F_N, F_O);
    /* dx is overwritten (beta 0) on every call, so for the accumulation
     * check it starts at zero and is summed on the host instead. */
    float *dx = dfill(be, F_N * F_I, 0), *dw = dfill(be, F_O * F_I, prefill);
    mt_tensor db = tfill(be, 1, F_O, prefill);
    float *acc = calloc(F_N * F_I, sizeof *acc), *tmp = malloc(F_N * F_I * sizeof *tmp);
    for (int r = 0; r < rep; r++) {
        gemm(be, MT_TRANS_N, MT_TRANS_N, F_N, F_I, F_O, mt_fp(dy), F_O, w, F_I, 0.0f, dx, F_I);
        gemm(be, MT_TRANS_T, MT_TRANS_N, F_O, F_I, F_N, mt_fp(dy), F_O, x, F_I, 1.0f, dw, F_I);
        be->iface->bias_bwd(be, db, dy);
        down(be, tmp, dx, F_N * F_I);
        for (int i = 0; i < F_N * F_I; i++) acc[i] += tmp[i];
    }
    memcpy(g[0], acc, F_N * F_I * sizeof *acc);
    down(be, g[1], dw, F_O * F_I), tdown(be, g[2], db);
    dfree(be, x), dfree(be, w), tfree(be, dy), dfree(be, dx), dfree(be, dw), tfree(be, db);
    free(acc), free(tmp);
}

/* accumulates: 1 for the += contract, 0 for =, 2 for in-place maps whose
 * gradient the check sums on the host (no contract of their own) */
static struct kernel KERNELS[] = {
    {"embed (full vocab)", 1, {"dtable"}, {E_V * E_C}, {0}, loss_embed, grad_embed, 1},
    {"embed (shard, off=2)", 1, {"dtable"}, {(E_V - 3) * E_C}, {0}, loss_embed, grad_embed, 1},
    {"layernorm", 3, {"dinp", "dw", "db"}, {L_N * L_C, L_C, L_C}, {0}, loss_layernorm, grad_layernorm, 1},
    {"rmsnorm", 2, {"dinp", "dw"}, {L_N * L_C, L_C}, {0}, loss_rmsnorm, grad_rmsnorm, 1},
    {"bias", 1, {"dbias"}, {B_C}, {0}, loss_bias, grad_bias, 1},
    {"gelu", 1, {"dinp"}, {G_N}, {0}, loss_gelu, grad_gelu, 0},
    {"gelu_erf", 1, {"dinp"}, {G_N}, {0}, loss_gelu_erf, grad_gelu_erf, 0},
    {"tanh", 1, {"dinp"}, {G_N}, {0}, loss_tanh, grad_tanh, 0},
    {"swiglu", 1, {"dinp"}, {S_N * 2 * S_F}, {0}, loss_swiglu, grad_swiglu, 0},
    {"dropout (in place, p 0.3)", 1, {"dx"}, {D_N * D_C}, {0}, loss_dropout, grad_dropout, 2},
    {"rope (in place, 2 of 3 dims)", 1, {"dqkv"}, {A_NQKV}, {0}, loss_rope, grad_rope, 2},
    {"attention (gqa, causal)", 1, {"dqkv"}, {A_NQKV}, {0}, loss_attn, grad_attn, 0},
    {"attention (gqa, all keys)", 1, {"dqkv"}, {A_NQKV}, {0}, loss_attn, grad_attn, 0},
    {"attention (gqa, causal, dropout 0.25)", 1, {"dqkv"}, {A_NQKV}, {0}, loss_attn, grad_attn, 0},
    {"attention (gqa, all keys, padded)", 1, {"dqkv"}, {A_NQKV}, {0}, loss_attn, grad_attn, 0},
    {"flash attention (gqa, causal)", 1, {"dqkv"}, {A_NQKV}, {0}, loss_flash, grad_flash, 0},
    {"flash attention (gqa, all keys)", 1, {"dqkv"}, {A_NQKV}, {0}, loss_flash, grad_flash, 0},
    {"flash attention (gqa, causal, dropout 0.25)", 1, {"dqkv"}, {A_NQKV}, {0}, loss_flash, grad_flash, 0},
    {"flash attention (gqa, all keys, padded)", 1, {"dqkv"}, {A_NQKV}, {0}, loss_flash, grad_flash, 0},
    {"xent chain", 1, {"dlogits"}, {X_N * X_LD}, {0}, loss_xent, grad_xent, 0},
    {"linear (gemm + bias)", 3, {"dx", "dW", "db"}, {F_N * F_I, F_O * F_I, F_O}, {0}, loss_linear, grad_linear, 1},
};
enum { NKERNELS = sizeof KERNELS / sizeof KERNELS[0] };

static int kernel_index(const char *prefix)
{
    for (int k = 0; k < NKERNELS; k++)
        if (strncmp(KERNELS[k].name, prefix, strlen(prefix)) == 0) return k;
    assert(!"no such kernel");
    return -1;
}

static void setup(void)
{
    for (int i = 0; i < E_N; i++) e_tok[i] = i % 4; /* ids 0..3 repeat */
    for (int i = 0; i < E_N * E_C; i++) e_R[i] = urand();
    for (int i = 0; i < L_N * L_C; i++) l_R[i] = urand();
    for (int i = 0; i < B_N * B_C; i++) b_R[i] = urand(), b_x[i] = urand();
    for (int i = 0; i < G_N; i++) g_R[i] = urand();
    for (int i = 0; i < S_N * S_F; i++) s_R[i] = urand();
    for (int i = 0; i < D_N * D_C; i++) d_R[i] = urand();
    for (int i = 0; i < A_NOUT; i++) a_R[i] = urand();
    for (int i = 0; i < A_NQKV; i++) p_R[i] = urand();
    for (int t = 0; t < A_T; t++) /* angles t * 0.7: cos, then sin */
        p_table[t * P_R] = (float)cos(0.7 * t), p_table[t * P_R + 1] = (float)sin(0.7 * t);
    for (int n = 0; n < X_N; n++) x_tg[n] = (n * 3 + 1) % X_V, x_dl[n] = urand();
    for (int i = 0; i < F_N * F_O; i++) f_R[i] = urand();
    for (int k = 0; k < NKERNELS; k++)
        for (int j = 0; j < KERNELS[k].nin; j++) KERNELS[k].x0[j] = hrand(KERNELS[k].n_in[j], 1.0f);
    /* gelu inputs over its bend and tails; swiglu gates too */
    for (int k = 0; k < 3; k++) {
        float *gx = KERNELS[kernel_index(k == 0 ? "gelu" : k == 1 ? "gelu_erf" : "tanh")].x0[0];
        for (int i = 0; i < G_N; i++) gx[i] = -4.0f + 8.0f * i / (G_N - 1) + 0.1f * urand();
    }
    float *sx = KERNELS[kernel_index("swiglu")].x0[0];
    for (int i = 0; i < S_N * 2 * S_F; i++) sx[i] *= 3.0f;
    /* norm weights around 1 */
    for (int i = 0; i < L_C; i++) KERNELS[kernel_index("layernorm")].x0[1][i] += 1.0f;
    for (int i = 0; i < L_C; i++) KERNELS[kernel_index("rmsnorm")].x0[1][i] += 1.0f;
    /* logits of a few units, padding columns poisoned (they must not matter) */
    float *lx = KERNELS[kernel_index("xent")].x0[0];
    for (int n = 0; n < X_N; n++)
        for (int c = 0; c < X_LD; c++) lx[n * X_LD + c] = c < X_V ? 2.0f * urand() : NAN;
}

/* the embed variant is chosen by global offset, the attention one by its
 * mask and dropout */
static void select_variant(int k)
{
    if (k == 0) e_off = 0, e_Vl = E_V;
    if (k == 1) e_off = 2, e_Vl = E_V - 3; /* shard rows 2..4: ids 0, 1 fall outside */
    const char *nm = KERNELS[k].name;
    a_args.causal = strstr(nm, "all keys") == NULL;
    struct mt_dropout_args none = {0}, drop = {0.25f, 777, 3, 11, 1, 1};
    a_args.dropout = strstr(nm, "dropout 0.25") ? drop : none;
    /* host memory: the backends checked here are the CPU ones */
    static const int32_t lengths[A_B] = {3, 2};
    a_args.lengths = strstr(nm, "padded") ? lengths : NULL;
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
    if (K->accumulates == 2) { /* in place: linear in the gradient, checked by gradcheck */
        for (int j = 0; j < K->nin; j++) free(g1[j]), free(g2[j]);
        return;
    }
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
    int in_place = 0;
    for (int k = 0; k < NKERNELS; k++) in_place += KERNELS[k].accumulates == 2;
    tap_plan(2 * (2 * NKERNELS - in_place));
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
