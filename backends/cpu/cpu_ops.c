/* cpu_ops.c: the fast "cpu" compute members, except GEMM (cpu_gemm.c).
 *
 * They are written for the GPT-2 124M
 * step (N = 256 rows, C = 768, Vp = 50304, 124M parameters) on a few cores,
 * where GEMM should take most of the time: OpenMP over rows (or column blocks),
 * `omp simd` inner loops with no calls in them, one pass over memory in
 * AdamW, and an exp that vectorises (fast_expf) for softmax, cross-entropy and
 * GELU. Without OpenMP the same code runs serially; the pragmas vanish.
 *
 * Determinism: no result depends on the number of threads. Threads split
 * rows, column blocks or fixed-size blocks, never the terms of one sum:
 * bias_bwd, layernorm_bwd (dw, db) and embed_bwd sum rows in order inside a
 * column block; sum_squares uses the block scheme of backend.h and matches
 * cpu-ref bit for bit.
 *
 * Shape letters: B batch, T sequence, C channels, NH heads, HS head size,
 * N = B*T rows, V_local vocabulary columns of this shard, ld logits row stride. */
#ifdef HAVE_CONFIG_H
#include "config.h" /* HAVE_BLAS and friends, when built by configure */
#endif
#include "cpu/cpu_internal.h"
#include "core/error.h"
#include "core/half.h"
#include "core/philox.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef HAVE_BLAS
#include <cblas.h> /* openblas_get_parallel, for the set-up check */
#endif

/* Below this many elements a loop runs on one thread. A fork/join costs a
 * few microseconds on a quiet machine and 30-60 us on a shared 2-vCPU VM, so
 * loops that only stream memory (about 0.1 ns per element) need far more
 * elements to gain than loops with an exp or a reduction in them. */
enum { PAR_MIN = 1 << 15, PAR_MIN_STREAM = 1 << 18 };
/* Column block for the reductions that split columns across threads: one
 * thread owns 64 columns (4 cache lines) and walks all rows in order. */
enum { COL_BLOCK = 64 };

/* ---- a vectorisable expf -------------------------------------------------------
 * libm's expf is a call, and a call in a loop stops vectorisation (without
 * -ffast-math glibc declares no vector variants), which made exp the largest
 * non-GEMM cost (12.9M of them per cross-entropy pass). This one is straight
 * arithmetic: e^x = 2^n e^r with n = round(x / ln 2), |r| <= ln(2)/2, and e^r
 * from its Taylor series to r^7 (truncation < 6e-9 relative); measured error
 * is within 2 ulp of exp(). Out-of-range inputs are handled with integer
 * selects, which vectorise where float compares may not: x below
 * ln(FLT_MIN) gives 0, above 88 gives +inf, NaN stays NaN. */

static inline int32_t f2i(float x)
{
    int32_t i;
    memcpy(&i, &x, sizeof i);
    return i;
}

static inline float i2f(int32_t i)
{
    float x;
    memcpy(&x, &i, sizeof x);
    return x;
}

/* Maps float bits to an int32 with the same order as the floats (negative
 * floats have their magnitude bits flipped). The map is its own inverse. */
static inline int32_t order_key(int32_t bits) { return bits ^ ((bits >> 31) & 0x7fffffff); }

/* cond ? a : b for cond in {0, 1}, as masks. gcc 12 turns the equivalent
 * ternaries here into branches and then gives up vectorising the loop. */
static inline int32_t select_bits(int cond, int32_t a, int32_t b)
{
    int32_t mask = -(int32_t)cond;
    return (a & mask) | (b & ~mask);
}

static inline float fast_expf(float x)
{
    const float lo = -87.33654f; /* ln(FLT_MIN): keeps 2^n a normal number */
    const float hi = 88.0f;      /* keeps n <= 127 */
    const int32_t klo = order_key(f2i(lo)), khi = order_key(f2i(hi));
    int32_t ix = f2i(x);
    int32_t key = order_key(ix);
    int32_t kc = key < klo ? klo : key;
    kc = kc > khi ? khi : kc;
    float xc = i2f(order_key(kc)); /* x clamped to [lo, hi] */
    /* n = round(xc / ln 2): adding 1.5 * 2^23 rounds to an integer, and the
     * low mantissa bits of the sum then hold n. */
    float t = xc * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    int32_t ni = f2i(t) - 0x4B400000;
    /* r = xc - n ln 2, with ln 2 split in two so that n * hi-part is exact. */
    float r = xc - n * 0.693145751953125f - n * 1.428606820309417e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t iy = f2i(p * i2f((ni + 127) << 23));
    iy = select_bits(key < klo, 0, iy);
    iy = select_bits(key > khi, 0x7f800000, iy);
    iy = select_bits((ix & 0x7fffffff) > 0x7f800000, ix, iy); /* NaN in, NaN out */
    return i2f(iy);
}

/* ---- set-up check ------------------------------------------------------------------
 * A pthreads build of OpenBLAS keeps its own worker threads next to the
 * OpenMP ones. After every parallel region libgomp's workers spin for a
 * while (OMP_WAIT_POLICY unset), and the next GEMM's OpenBLAS threads then
 * share the cores with them: in bench_ops on 2 cores a training step's op
 * sequence took 1.7 s instead of 1.0 s (GEMM 1.33 s instead of 0.80 s). The
 * OpenMP build of OpenBLAS shares libgomp's threads, and a passive wait
 * policy makes idle OpenMP threads sleep; either removes the contention. */
void mt_cpu_ops_init(void)
{
#if defined(HAVE_BLAS) && defined(_OPENMP) && defined(OPENBLAS_THREAD)
    static int checked;
    if (checked) return;
    checked = 1;
    const char *wait = getenv("OMP_WAIT_POLICY");
    int passive = (wait && (wait[0] | 0x20) == 'p') || getenv("GOMP_SPINCOUNT");
    if (openblas_get_parallel() == OPENBLAS_THREAD && !passive && omp_get_max_threads() > 1)
        mt_warn("cpu backend: OpenBLAS uses its own pthreads beside OpenMP, and the two thread "
                "pools slow each other down (GEMM about 1.7x slower in bench_ops); link the "
                "OpenMP build of OpenBLAS or run with OMP_WAIT_POLICY=passive");
#endif
}

/* ---- embedding --------------------------------------------------------------------- */

/* out (N,C) = or += table[ids - vocab_offset] (nothing from outside the shard),
 * ids (1,N), table (V_local,C) */
void mt_cpu_embed_fwd(mt_backend *be, mt_tensor out_, mt_tensor ids_, mt_tensor table_,
                      int vocab_offset, int accumulate)
{
    (void)be;
    const int N = (int)out_.rows, C = (int)out_.cols, V = (int)table_.rows;
    const int32_t *ids = mt_ip(ids_);
    const float *table = mt_fp(table_);
    float *out = mt_fp(out_);
    OMP(parallel for if ((size_t)N * C > PAR_MIN_STREAM) schedule(static))
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * C;
        int row = ids[n] - vocab_offset;
        const float *e = row >= 0 && row < V ? table + (size_t)row * C : NULL;
        if (e && accumulate) {
            OMP(simd)
            for (int c = 0; c < C; c++) o[c] += e[c];
        } else if (e) {
            memcpy(o, e, (size_t)C * sizeof *o);
        } else if (!accumulate) {
            memset(o, 0, (size_t)C * sizeof *o);
        }
    }
}

/* dtable (V_local,C) += dout (N,C) rows by id */
void mt_cpu_embed_bwd(mt_backend *be, mt_tensor dtable_, mt_tensor dout_, mt_tensor ids_,
                      int vocab_offset)
{
    (void)be;
    /* forward: out[n,:] = table[ids[n] - vocab_offset, :]
     * Threads own column blocks and walk the rows in n order, so an id that
     * repeats is summed in the same order as cpu-ref (bitwise equal). */
    const int N = (int)dout_.rows, C = (int)dout_.cols, V = (int)dtable_.rows;
    const int32_t *ids = mt_ip(ids_);
    const float *dout = mt_fp(dout_);
    float *dtable = mt_fp(dtable_);
    int nblk = (C + COL_BLOCK - 1) / COL_BLOCK;
    OMP(parallel for if ((size_t)N * C > PAR_MIN && nblk > 1) schedule(static))
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * C;
            int row = ids[n] - vocab_offset;
            if (row >= 0 && row < V) {
                float *w = dtable + (size_t)row * C;
                OMP(simd)
                for (int c = c0; c < c1; c++) w[c] += d[c];
            }
        }
    }
}

/* ---- layernorm and RMSNorm ---------------------------------------------------------- */

/* out, inp (N,C); mean, rstd (N); w, b (C) */
void mt_cpu_layernorm_fwd(mt_backend *be, mt_tensor out_, mt_tensor mean_, mt_tensor rstd_,
                          mt_tensor inp_, mt_tensor w_, mt_tensor b_, double eps)
{
    (void)be;
    const int N = (int)inp_.rows, C = (int)inp_.cols;
    const float *inp = mt_fp(inp_), *w = mt_fp(w_), *b = mt_fp(b_);
    float *out = mt_fp(out_), *mean = mt_fp(mean_), *rstd = mt_fp(rstd_);
    OMP(parallel for if ((size_t)N * C > PAR_MIN) schedule(static))
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double s = 0.0;
        OMP(simd reduction(+ : s))
        for (int c = 0; c < C; c++) s += x[c];
        float mu = (float)(s / C);
        double ss = 0.0; /* two passes: no cancellation in E[x^2] - E[x]^2 */
        OMP(simd reduction(+ : ss))
        for (int c = 0; c < C; c++) {
            float dx = x[c] - mu;
            ss += dx * dx;
        }
        float r = (float)(1.0 / sqrt(ss / C + eps));
        float *o = out + (size_t)n * C;
        OMP(simd)
        for (int c = 0; c < C; c++) o[c] = (x[c] - mu) * r * w[c] + b[c];
        mean[n] = mu;
        rstd[n] = r;
    }
}

/* dinp (N,C) +=, dw, db (C) +=; dout, inp (N,C); w (C); mean, rstd (N) */
void mt_cpu_layernorm_bwd(mt_backend *be, mt_tensor dinp_, mt_tensor dw_, mt_tensor db_,
                          mt_tensor dout_, mt_tensor inp_, mt_tensor w_, mt_tensor mean_,
                          mt_tensor rstd_)
{
    (void)be;
    /* forward: norm = (inp - mean) * rstd;  out = norm * w + b
     * dnorm = dout * w;  dinp += rstd * (dnorm - mean_c(dnorm) - norm * mean_c(dnorm * norm))
     * dw += sum_n dout * norm;  db += sum_n dout   (column sums, rows in order) */
    const int N = (int)inp_.rows, C = (int)inp_.cols;
    const float *dout = mt_fp(dout_), *inp = mt_fp(inp_), *w = mt_fp(w_);
    const float *mean = mt_fp(mean_), *rstd = mt_fp(rstd_);
    float *dinp = mt_fp(dinp_), *dw = mt_fp(dw_), *db = mt_fp(db_);
    int nblk = (C + COL_BLOCK - 1) / COL_BLOCK;
    OMP(parallel if ((size_t)N * C > PAR_MIN))
    {
        OMP(for schedule(static) nowait)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C;
            const float *d = dout + (size_t)n * C;
            float mu = mean[n], r = rstd[n];
            double sum_dn = 0.0, sum_dn_norm = 0.0;
            OMP(simd reduction(+ : sum_dn, sum_dn_norm))
            for (int c = 0; c < C; c++) {
                float dn = d[c] * w[c];
                sum_dn += dn;
                sum_dn_norm += dn * ((x[c] - mu) * r);
            }
            float mean_dn = (float)(sum_dn / C), mean_dn_norm = (float)(sum_dn_norm / C);
            float *di = dinp + (size_t)n * C;
            OMP(simd)
            for (int c = 0; c < C; c++) {
                float norm = (x[c] - mu) * r;
                di[c] += r * (d[c] * w[c] - mean_dn - norm * mean_dn_norm);
            }
        }
        /* dw, db: a thread owns a column block and sums its rows in order. */
        OMP(for schedule(static))
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * COL_BLOCK, len = C - c0 < COL_BLOCK ? C - c0 : COL_BLOCK;
            double acc_w[COL_BLOCK], acc_b[COL_BLOCK];
            for (int j = 0; j < len; j++) acc_w[j] = acc_b[j] = 0.0;
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C + c0;
                const float *d = dout + (size_t)n * C + c0;
                float mu = mean[n], r = rstd[n];
                OMP(simd)
                for (int j = 0; j < len; j++) {
                    acc_w[j] += d[j] * ((x[j] - mu) * r);
                    acc_b[j] += d[j];
                }
            }
            for (int j = 0; j < len; j++) {
                dw[c0 + j] += (float)acc_w[j];
                db[c0 + j] += (float)acc_b[j];
            }
        }
    }
}

/* out, inp (N,C); rstd (N); w (C) */
void mt_cpu_rmsnorm_fwd(mt_backend *be, mt_tensor out_, mt_tensor rstd_, mt_tensor inp_,
                        mt_tensor w_, double eps)
{
    (void)be;
    const int N = (int)inp_.rows, C = (int)inp_.cols;
    const float *inp = mt_fp(inp_), *w = mt_fp(w_);
    float *out = mt_fp(out_), *rstd = mt_fp(rstd_);
    OMP(parallel for if ((size_t)N * C > PAR_MIN) schedule(static))
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double ss = 0.0;
        OMP(simd reduction(+ : ss))
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        float *o = out + (size_t)n * C;
        OMP(simd)
        for (int c = 0; c < C; c++) o[c] = x[c] * r * w[c];
        rstd[n] = r;
    }
}

/* dinp (N,C) +=, dw (C) +=; dout, inp (N,C); w (C); rstd (N) */
void mt_cpu_rmsnorm_bwd(mt_backend *be, mt_tensor dinp_, mt_tensor dw_, mt_tensor dout_,
                        mt_tensor inp_, mt_tensor w_, mt_tensor rstd_)
{
    (void)be;
    /* forward: norm = inp * rstd;  out = norm * w
     * dinp += rstd * (dout * w - norm * mean_c(dout * w * norm));  dw += sum_n dout * norm */
    const int N = (int)inp_.rows, C = (int)inp_.cols;
    const float *dout = mt_fp(dout_), *inp = mt_fp(inp_), *w = mt_fp(w_), *rstd = mt_fp(rstd_);
    float *dinp = mt_fp(dinp_), *dw = mt_fp(dw_);
    int nblk = (C + COL_BLOCK - 1) / COL_BLOCK;
    OMP(parallel if ((size_t)N * C > PAR_MIN))
    {
        OMP(for schedule(static) nowait)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float r = rstd[n];
            double sum_dn_norm = 0.0;
            OMP(simd reduction(+ : sum_dn_norm))
            for (int c = 0; c < C; c++) sum_dn_norm += d[c] * w[c] * (x[c] * r);
            float mean_dn_norm = (float)(sum_dn_norm / C);
            float *di = dinp + (size_t)n * C;
            OMP(simd)
            for (int c = 0; c < C; c++) di[c] += r * (d[c] * w[c] - x[c] * r * mean_dn_norm);
        }
        OMP(for schedule(static))
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * COL_BLOCK, len = C - c0 < COL_BLOCK ? C - c0 : COL_BLOCK;
            double acc_w[COL_BLOCK];
            for (int j = 0; j < len; j++) acc_w[j] = 0.0;
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C + c0, *d = dout + (size_t)n * C + c0;
                float r = rstd[n];
                OMP(simd)
                for (int j = 0; j < len; j++) acc_w[j] += d[j] * (x[j] * r);
            }
            for (int j = 0; j < len; j++) dw[c0 + j] += (float)acc_w[j];
        }
    }
}

/* ---- bias, activations, elementwise --------------------------------------------------- */

/* y (N,C) += bias (C) broadcast over rows */
void mt_cpu_bias_add(mt_backend *be, mt_tensor y_, mt_tensor bias_)
{
    (void)be;
    const int N = (int)y_.rows, C = (int)y_.cols;
    float *y = mt_fp(y_);
    const float *bias = mt_fp(bias_);
    OMP(parallel for if ((size_t)N * C > PAR_MIN_STREAM) schedule(static))
    for (int n = 0; n < N; n++) {
        float *yn = y + (size_t)n * C;
        OMP(simd)
        for (int c = 0; c < C; c++) yn[c] += bias[c];
    }
}

/* dbias (C) += column sums of dy (N,C); a thread owns a column block, rows in order */
void mt_cpu_bias_bwd(mt_backend *be, mt_tensor dbias_, mt_tensor dy_)
{
    (void)be;
    const int N = (int)dy_.rows, C = (int)dy_.cols;
    const float *dy = mt_fp(dy_);
    float *dbias = mt_fp(dbias_);
    int nblk = (C + COL_BLOCK - 1) / COL_BLOCK;
    OMP(parallel for if ((size_t)N * C > PAR_MIN && nblk > 1) schedule(static))
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * COL_BLOCK, len = C - c0 < COL_BLOCK ? C - c0 : COL_BLOCK;
        double acc[COL_BLOCK];
        for (int j = 0; j < len; j++) acc[j] = 0.0;
        for (int n = 0; n < N; n++) {
            const float *d = dy + (size_t)n * C + c0;
            OMP(simd)
            for (int j = 0; j < len; j++) acc[j] += d[j];
        }
        for (int j = 0; j < len; j++) dbias[c0 + j] += (float)acc[j];
    }
}

/* GELU, tanh approximation (Hendrycks & Gimpel 2016; torch approximate='tanh'),
 * evaluated as x * sigmoid(2u) with u = sqrt(2/pi) (x + 0.044715 x^3), which
 * equals 0.5 x (1 + tanh(u)) and needs one exp. */
#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

/* the exact GELU x Phi(x) and tanh, through libm's erff and tanhf */
static void act_libm_fwd(float *out, const float *inp, size_t n, enum mt_act act)
{
    OMP(parallel for if (parallel : n > PAR_MIN) schedule(static))
    for (size_t i = 0; i < n; i++) {
        const float x = inp[i];
        out[i] = act == MT_ACT_TANH ? tanhf(x) : 0.5f * x * (1.0f + erff(x * 0.70710678f));
    }
}

static void act_libm_bwd(float *dinp, const float *inp, const float *dout, size_t n,
                         enum mt_act act)
{
    OMP(parallel for if (parallel : n > PAR_MIN) schedule(static))
    for (size_t i = 0; i < n; i++) {
        const float x = inp[i];
        float s;
        if (act == MT_ACT_TANH) {
            const float t = tanhf(x);
            s = 1.0f - t * t;
        } else {
            s = 0.5f * (1.0f + erff(x * 0.70710678f)) + x * 0.39894228f * expf(-0.5f * x * x);
        }
        dinp[i] = s * dout[i];
    }
}

/* out, inp (any shape) */
void mt_cpu_act_fwd(mt_backend *be, mt_tensor out_, mt_tensor inp_, enum mt_act act)
{
    (void)be;
    const size_t n = (size_t)mt_numel(inp_);
    const float *inp = mt_fp(inp_);
    float *out = mt_fp(out_);
    if (act != MT_ACT_GELU_TANH) {
        act_libm_fwd(out, inp, n, act);
        return;
    }
    OMP(parallel for simd if (parallel : n > PAR_MIN) schedule(static))
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_K * (x + GELU_A * x * x * x);
        out[i] = x / (1.0f + fast_expf(-2.0f * u));
    }
}

/* dinp = act'(inp) * dout (overwrites; dinp may alias dout). */
void mt_cpu_act_bwd(mt_backend *be, mt_tensor dinp_, mt_tensor inp_, mt_tensor dout_,
                    enum mt_act act)
{
    (void)be;
    if (act != MT_ACT_GELU_TANH) {
        act_libm_bwd(mt_fp(dinp_), mt_fp(inp_), mt_fp(dout_), (size_t)mt_numel(inp_), act);
        return;
    }
    /* forward: out = x s, s = sigmoid(2u);  d out/dx = s + 2 x s (1 - s) du/dx,
     * with 1 - s = e s for e = exp(-2u) (no cancellation when s is near 1). */
    const size_t n = (size_t)mt_numel(inp_);
    const float *inp = mt_fp(inp_), *dout = mt_fp(dout_);
    float *dinp = mt_fp(dinp_);
    OMP(parallel for simd if (parallel : n > PAR_MIN) schedule(static))
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_K * (x + GELU_A * x * x * x);
        float e = fast_expf(-2.0f * u);
        float s = 1.0f / (1.0f + e);
        float du = GELU_K * (1.0f + 3.0f * GELU_A * x * x);
        dinp[i] = (s + 2.0f * x * s * (e * s) * du) * dout[i];
    }
}

/* out (N,F) = silu(gate) * up; inp (N,2F) rows [gate | up] */
void mt_cpu_swiglu_fwd(mt_backend *be, mt_tensor out_, mt_tensor inp_)
{
    (void)be;
    const int N = (int)out_.rows, F = (int)out_.cols;
    const float *inp = mt_fp(inp_);
    float *out = mt_fp(out_);
    OMP(parallel for if ((size_t)N * F > PAR_MIN) schedule(static))
    for (int n = 0; n < N; n++) {
        const float *g = inp + (size_t)n * 2 * F, *u = g + F;
        float *o = out + (size_t)n * F;
        OMP(simd)
        for (int j = 0; j < F; j++) o[j] = g[j] / (1.0f + fast_expf(-g[j])) * u[j];
    }
}

/* dinp (N,2F) = [d gate | d up] (overwrites); inp (N,2F); dout (N,F) */
void mt_cpu_swiglu_bwd(mt_backend *be, mt_tensor dinp_, mt_tensor inp_, mt_tensor dout_)
{
    (void)be;
    /* forward: out = s(g) g u;  d/dg = u s (1 + g (1 - s)),  d/du = s g */
    const int N = (int)dout_.rows, F = (int)dout_.cols;
    const float *inp = mt_fp(inp_), *dout = mt_fp(dout_);
    float *dinp = mt_fp(dinp_);
    OMP(parallel for if ((size_t)N * F > PAR_MIN) schedule(static))
    for (int n = 0; n < N; n++) {
        const float *g = inp + (size_t)n * 2 * F, *u = g + F, *d = dout + (size_t)n * F;
        float *dg = dinp + (size_t)n * 2 * F, *du = dg + F;
        OMP(simd)
        for (int j = 0; j < F; j++) {
            float gj = g[j], uj = u[j], dj = d[j];
            float s = 1.0f / (1.0f + fast_expf(-gj));
            dg[j] = dj * uj * s * (1.0f + gj * (1.0f - s));
            du[j] = dj * s * gj;
        }
    }
}

/* out = a + b, any shape; out may alias a or b */
void mt_cpu_add(mt_backend *be, mt_tensor out_, mt_tensor a_, mt_tensor b_)
{
    (void)be;
    const size_t n = (size_t)mt_numel(out_);
    const float *a = mt_fp(a_), *b = mt_fp(b_);
    float *out = mt_fp(out_);
    OMP(parallel for simd if (parallel : n > PAR_MIN_STREAM) schedule(static))
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* x *= s */
void mt_cpu_scale(mt_backend *be, mt_tensor x_, float s)
{
    (void)be;
    const size_t n = (size_t)mt_numel(x_);
    float *x = mt_fp(x_);
    OMP(parallel for simd if (parallel : n > PAR_MIN_STREAM) schedule(static))
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* dst (half storage) = src rounded to nearest even */
void mt_cpu_to_half(mt_backend *be, mt_tensor dst, mt_tensor src)
{
    (void)be;
    const size_t n = (size_t)mt_numel(src);
    const float *x = mt_fp(src);
    uint16_t *h = (uint16_t *)dst.data;
    if (dst.dtype == MT_DTYPE_BF16) {
        OMP(parallel for simd if (parallel : n > PAR_MIN_STREAM) schedule(static))
        for (size_t i = 0; i < n; i++) h[i] = mt_f32_to_bf16(x[i]);
    } else {
        OMP(parallel for simd if (parallel : n > PAR_MIN_STREAM) schedule(static))
        for (size_t i = 0; i < n; i++) h[i] = mt_f32_to_f16(x[i]);
    }
}

/* x rounded to the nearest fp16 value, as mt_round_f16 (core/half.h) rounds
 * it bit for bit, without its branches, so that the loop vectorises (the
 * branchy version took 1.1 ms per call at the teaching shape, three
 * quarters of an --fp16 step): |x| >= 2^-14 (fp16's normal range) rounds
 * to nearest even at mantissa bit 13 in the bits, and overflows to inf
 * from 65520 on; below 2^-14 the quantum is fp16's subnormal step 2^-24,
 * which adding and subtracting 0.5 (whose ulp that is) rounds to, ties to
 * even; NaN stays NaN, quiet, with fp16's payload. Checked equal to
 * mt_round_f16 over all 2^32 inputs once; test_ops checks the edges. */
static inline float round_f16_fast(float x)
{
    const int32_t u = f2i(x), sign = u & (int32_t)0x80000000u, a = u & 0x7fffffff;
    int32_t r = (a + 0xfff + ((a >> 13) & 1)) & ~0x1fff;
    r = select_bits(r >= 0x47800000, 0x7f800000, r);          /* 65536 and up: inf */
    const int32_t sub = f2i((i2f(a) + 0.5f) - 0.5f);          /* the subnormal grid */
    r = select_bits(a < 0x38800000, sub, r);
    r = select_bits(a > 0x7f800000, (a & ~0x1fff) | 0x00400000, r); /* NaN: fp16's payload, quiet */
    return i2f(r | sign);
}

void mt_cpu_round_half(mt_backend *be, mt_tensor x_, enum mt_dtype to)
{
    (void)be;
    const size_t n = (size_t)mt_numel(x_);
    float *x = mt_fp(x_);
    if (to == MT_DTYPE_BF16) {
        OMP(parallel for simd if (parallel : n > PAR_MIN_STREAM) schedule(static))
        for (size_t i = 0; i < n; i++) x[i] = mt_round_bf16(x[i]);
    } else {
        OMP(parallel for simd if (parallel : n > PAR_MIN_STREAM) schedule(static))
        for (size_t i = 0; i < n; i++) x[i] = round_f16_fast(x[i]);
    }
}

/* ---- dropout ---------------------------------------------------------------------------
 * The keep flags of a run of n consecutive elements a0, a0+1, ... (the other
 * coordinates fixed), one Philox block per four: the same decisions as
 * mt_dropout_keep (core/philox.h) element by element, in a quarter of the
 * work. */
static void keep_run(unsigned char *keep, const struct mt_dropout_args *d, uint32_t thr,
                     uint32_t a0, int n, uint32_t b, uint32_t c, uint32_t dd)
{
    uint32_t bits[4];
    for (int i = 0; i < n; i++) {
        const uint32_t a = a0 + (uint32_t)i;
        if (i == 0 || (a & 3) == 0) mt_philox_block(d->seed, d->stream, a >> 2, b, c, dd, bits);
        keep[i] = bits[a & 3] >= thr;
    }
}

/* x (N,C) in place; element (n,c) has coordinates (col0 + c, n % T, sample0 + n / T, 0) */
void mt_cpu_dropout(mt_backend *be, mt_tensor x_, const struct mt_dropout_args *d)
{
    (void)be;
    const int N = (int)x_.rows, C = (int)x_.cols;
    const uint32_t thr = mt_dropout_threshold(d->p);
    const float scale = mt_dropout_scale(d->p);
    float *x = mt_fp(x_);
    OMP(parallel if ((size_t)N * C > PAR_MIN))
    {
        unsigned char *keep = mt_cpu_xmalloc((size_t)C);
        OMP(for schedule(static))
        for (int n = 0; n < N; n++) {
            keep_run(keep, d, thr, (uint32_t)d->col0, C, (uint32_t)(n % d->T),
                     (uint32_t)(d->sample0 + n / d->T), 0);
            float *xn = x + (size_t)n * C;
            for (int c = 0; c < C; c++) xn[c] = keep[c] ? xn[c] * scale : 0.0f;
        }
        free(keep);
    }
}

/* ---- rotary embedding ------------------------------------------------------------------ */

/* qkv (B*T, width) in place, rows t0..T-1 of each sequence; table (maxT, R) */
void mt_cpu_rope(mt_backend *be, mt_tensor qkv_, mt_tensor table_, const struct mt_attn_args *a,
                 int inverse)
{
    (void)be;
    const int R = (int)table_.cols, hR = R / 2, W = mt_qkv_width(a), Tq = a->T - a->t0;
    const int nrows = a->B * Tq, nheads = a->heads + a->groups;
    float *qkv = mt_fp(qkv_);
    const float *table = mt_fp(table_);
    const float sgn = inverse ? -1.0f : 1.0f;
    OMP(parallel for if ((size_t)nrows * nheads * R > PAR_MIN) schedule(static))
    for (int r = 0; r < nrows; r++) {
        const int b = r / Tq, t = a->t0 + r % Tq;
        float *row = qkv + ((size_t)b * a->T + t) * W;
        const float *cs = table + (size_t)mt_rope_row(a, b, t) * R, *sn = cs + hR;
        for (int k = 0; k < nheads; k++) {
            float *x = row + (k < a->heads ? mt_q_offset(a, k) : mt_k_offset(a, k - a->heads));
            OMP(simd)
            for (int i = 0; i < hR; i++) {
                float x1 = x[i], x2 = x[hR + i], c = cs[i], s = sgn * sn[i];
                x[i] = x1 * c - x2 * s;
                x[hR + i] = x2 * c + x1 * s;
            }
        }
    }
}

/* ---- attention ------------------------------------------------------------------------
 * One (b,h) pair is the unit of parallel work in the forward (one (b,g)
 * group in the backward, whose heads share their keys' and values'
 * gradients): B*NH = 48 independent T x T problems in the 124M step, equal
 * in cost, so a static schedule balances. Inside, rows of the score matrix
 * are dot products over HS and the value sums are axpys over HS, both with
 * unit stride. Measured against the alternative (2*B*NH cblas_sgemm calls
 * for QK^T and att V, issued outside any parallel region, plus an OpenMP
 * softmax) at T = 64, HS = 64 on 2 cores: 0.67-0.70 ms either way for the
 * forward, so the plain C stays: it needs no BLAS, skips the masked half and
 * cannot nest BLAS threads. Attention dropout multiplies the probabilities
 * as they are used (att keeps them undropped, for the softmax backward). */

static inline float dot_f(const float *restrict x, const float *restrict y, int n)
{
    float s = 0.0f;
    OMP(simd reduction(+ : s))
    for (int i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

/* keep[j] * scale for the keys j <= jmax of query t of (b, h): the dropout
 * factor of each probability */
static void attn_factors(float *f, const struct mt_attn_args *a, int b, int h, int t, int jmax,
                         unsigned char *keep)
{
    const struct mt_dropout_args *d = &a->dropout;
    const float scale = mt_dropout_scale(d->p);
    keep_run(keep, d, mt_dropout_threshold(d->p), 0, jmax + 1, (uint32_t)t,
             (uint32_t)(d->sample0 + b), (uint32_t)(d->col0 + h));
    for (int j = 0; j <= jmax; j++) f[j] = keep[j] ? scale : 0.0f;
}

/* The forward of both forms: att (B*heads*(T-t0), T) receives the
 * probabilities (unfused), or att is NULL and lse (B*heads*(T-t0)) their
 * rows' log-sum-exp (flash; the row then lives in a thread's scratch). */
static void attn_fwd(float *out, float *att, float *lse, const float *qkv, const struct mt_attn_args *a)
{
    const int B = a->B, T = a->T, t0 = a->t0, NH = a->heads, HS = a->head_dim;
    const int Tq = T - t0, per = a->heads / a->groups, drop = a->dropout.p > 0.0f;
    const size_t tok_stride = (size_t)mt_qkv_width(a); /* floats between consecutive tokens */
    float scale = 1.0f / sqrtf((float)HS);
    double work = (double)B * NH * Tq * T * HS;
    (void)work; /* only read by the OpenMP if clause */
    OMP(parallel if (B * NH > 1 && work > 1e5))
    {
        float *f = drop ? mt_cpu_xmalloc((size_t)T * sizeof *f) : NULL;
        unsigned char *keep = drop ? mt_cpu_xmalloc((size_t)T) : NULL;
        float *row = att ? NULL : mt_cpu_xmalloc((size_t)T * sizeof *row);
        OMP(for schedule(static))
        for (int bh = 0; bh < B * NH; bh++) {
            int b = bh / NH, h = bh % NH;
            const float *base = qkv + (size_t)b * T * tok_stride;
            const int qo = mt_q_offset(a, h), ko = mt_k_offset(a, h / per), vo = ko + HS;
            for (int i = 0; i < Tq; i++) {
                const int t = t0 + i, j0 = mt_attn_first_key(a, b, t), jmax = mt_attn_last_key(a, b, t);
                const float *q = base + (size_t)t * tok_stride + qo;
                float *arow = att ? att + ((size_t)bh * Tq + i) * T : row;
                float mx = -INFINITY;
                for (int j = j0; j <= jmax; j++) {
                    arow[j] = scale * dot_f(q, base + (size_t)j * tok_stride + ko, HS);
                    mx = arow[j] > mx ? arow[j] : mx;
                }
                float sum = 0.0f;
                OMP(simd reduction(+ : sum))
                for (int j = j0; j <= jmax; j++) {
                    arow[j] = fast_expf(arow[j] - mx);
                    sum += arow[j];
                }
                float inv = 1.0f / sum;
                OMP(simd)
                for (int j = j0; j <= jmax; j++) arow[j] *= inv;
                if (att) {
                    for (int j = 0; j < j0; j++) arow[j] = 0.0f;
                    for (int j = jmax + 1; j < T; j++) arow[j] = 0.0f;
                }
                else
                    lse[(size_t)bh * Tq + i] = mx + logf(sum);
                if (drop) attn_factors(f, a, b, h, t, jmax, keep);
                float *o = out + ((size_t)b * Tq + i) * NH * HS + (size_t)h * HS;
                for (int d = 0; d < HS; d++) o[d] = 0.0f;
                for (int j = j0; j <= jmax; j++) {
                    const float *v = base + (size_t)j * tok_stride + vo;
                    float aj = drop ? arow[j] * f[j] : arow[j];
                    OMP(simd)
                    for (int d = 0; d < HS; d++) o[d] += aj * v[d];
                }
            }
        }
        free(f);
        free(keep);
        free(row);
    }
}

/* out (B*(T-t0), heads*HS), att (B*heads*(T-t0), T), qkv (B*T, width) */
void mt_cpu_attn_fwd(mt_backend *be, mt_tensor out, mt_tensor att, mt_tensor qkv,
                     const struct mt_attn_args *a)
{
    (void)be;
    attn_fwd(mt_fp(out), mt_fp(att), NULL, mt_fp(qkv), a);
}

/* flash: the same rows, only their log-sum-exp kept */
void mt_cpu_flash_attn_fwd(mt_backend *be, mt_tensor out, mt_tensor lse, mt_tensor qkv,
                           const struct mt_attn_args *a)
{
    (void)be;
    attn_fwd(mt_fp(out), NULL, mt_fp(lse), mt_fp(qkv), a);
}

/* The probabilities a backward row works from: the saved ones (unfused),
 * or (flash) exp(scale q.k_j - lse) recomputed into the thread's row. */
struct attn_saved {
    const float *att;             /* (B*heads*T, T), or NULL: flash */
    float *datt;                  /* (B*heads*T, T) scratch (unfused) */
    const float *out, *lse;       /* flash */
};

/* The backward of both forms. forward, per (b,h):  s[i,j] = scale q_i.k_j;
 *   att = softmax_j(s);  out_i = sum_j att[i,j] f[i,j] v_j  (f: dropout factor, 1 without)
 * backward:  datt[i,j] = f[i,j] dout_i.v_j;  dv_j += att[i,j] f[i,j] dout_i
 *   ds[i,j] = att[i,j] (datt[i,j] - D_i), D_i = sum_l att[i,l] datt[i,l] (= dout_i.out_i)
 *   dq_i += scale ds[i,j] k_j;  dk_j += scale ds[i,j] q_i
 * Each (b,g) writes only its own heads' q, k, v slots of dqkv, so threads
 * never share; the group's heads add into its k and v slots in order. */
static void attn_bwd(float *dqkv, const float *dout, const float *qkv, const struct attn_saved *sv,
                     const struct mt_attn_args *a)
{
    const int B = a->B, T = a->T, NH = a->heads, HS = a->head_dim, G = a->groups;
    const int per = NH / G, drop = a->dropout.p > 0.0f, flash = sv->att == NULL;
    const size_t tok_stride = (size_t)mt_qkv_width(a);
    float scale = 1.0f / sqrtf((float)HS);
    double work = (double)B * NH * T * T * HS;
    (void)work; /* only read by the OpenMP if clause */
    OMP(parallel if (B * G > 1 && work > 1e5))
    {
        float *f = drop ? mt_cpu_xmalloc((size_t)T * sizeof *f) : NULL;
        unsigned char *keep = drop ? mt_cpu_xmalloc((size_t)T) : NULL;
        float *rows = flash ? mt_cpu_xmalloc(2 * (size_t)T * sizeof *rows) : NULL;
        OMP(for schedule(static))
        for (int bg = 0; bg < B * G; bg++) {
            int b = bg / G, g = bg % G;
            const float *base = qkv + (size_t)b * T * tok_stride;
            float *dbase = dqkv + (size_t)b * T * tok_stride;
            const int ko = mt_k_offset(a, g), vo = ko + HS;
            for (int t = 0; t < T; t++) {
                float *r = dbase + (size_t)t * tok_stride;
                memset(r + mt_q_offset(a, g * per), 0, (size_t)(per + 2) * HS * sizeof(float));
            }
            for (int h = g * per; h < (g + 1) * per; h++) {
                const int bh = b * NH + h, qo = mt_q_offset(a, h);
                for (int i = 0; i < T; i++) {
                    const int j0 = mt_attn_first_key(a, b, i), jmax = mt_attn_last_key(a, b, i);
                    const size_t r = (size_t)bh * T + i;
                    const float *dout_i = dout + ((size_t)b * T + i) * NH * HS + (size_t)h * HS;
                    const float *q = base + (size_t)i * tok_stride + qo;
                    float *dq = dbase + (size_t)i * tok_stride + qo;
                    float *arow = flash ? rows : (float *)sv->att + r * T;
                    float *da = flash ? rows + T : sv->datt + r * T;
                    if (flash) {
                        const float l = sv->lse[r];
                        for (int j = j0; j <= jmax; j++)
                            arow[j] = scale * dot_f(q, base + (size_t)j * tok_stride + ko, HS);
                        OMP(simd)
                        for (int j = j0; j <= jmax; j++) arow[j] = fast_expf(arow[j] - l);
                    }
                    if (drop) attn_factors(f, a, b, h, i, jmax, keep);
                    float row = 0.0f; /* D_i */
                    for (int j = j0; j <= jmax; j++) {
                        const float *v = base + (size_t)j * tok_stride + vo;
                        float *dv = dbase + (size_t)j * tok_stride + vo;
                        da[j] = dot_f(dout_i, v, HS);
                        float aj = arow[j];
                        if (drop) da[j] *= f[j], aj *= f[j];
                        if (!flash) row += arow[j] * da[j];
                        OMP(simd)
                        for (int d = 0; d < HS; d++) dv[d] += aj * dout_i[d];
                    }
                    if (flash) row = dot_f(dout_i, sv->out + ((size_t)b * T + i) * NH * HS + (size_t)h * HS, HS);
                    else {
                        for (int j = 0; j < j0; j++) da[j] = 0.0f;
                        for (int j = jmax + 1; j < T; j++) da[j] = 0.0f;
                    }
                    for (int j = j0; j <= jmax; j++) {
                        const float *k = base + (size_t)j * tok_stride + ko;
                        float *dk = dbase + (size_t)j * tok_stride + ko;
                        float ds = scale * arow[j] * (da[j] - row);
                        da[j] = ds;
                        OMP(simd)
                        for (int d = 0; d < HS; d++) {
                            dq[d] += ds * k[d];
                            dk[d] += ds * q[d];
                        }
                    }
                }
            }
        }
        free(f);
        free(keep);
        free(rows);
    }
}

/* dqkv (B*T, width) overwritten, datt (B*heads*T, T) scratch, dout (B*T, heads*HS),
 * qkv (B*T, width), att (B*heads*T, T); t0 = 0 */
void mt_cpu_attn_bwd(mt_backend *be, mt_tensor dqkv, mt_tensor datt, mt_tensor dout, mt_tensor qkv,
                     mt_tensor att, const struct mt_attn_args *a)
{
    (void)be;
    const struct attn_saved sv = {mt_fp(att), mt_fp(datt), NULL, NULL};
    attn_bwd(mt_fp(dqkv), mt_fp(dout), mt_fp(qkv), &sv, a);
}

/* flash: rowdot unused (D_i is recomputed per row) */
void mt_cpu_flash_attn_bwd(mt_backend *be, mt_tensor dqkv, mt_tensor rowdot, mt_tensor dout,
                           mt_tensor qkv, mt_tensor out, mt_tensor lse, const struct mt_attn_args *a)
{
    (void)be, (void)rowdot;
    const struct attn_saved sv = {NULL, NULL, mt_fp(out), mt_fp(lse)};
    attn_bwd(mt_fp(dqkv), mt_fp(dout), mt_fp(qkv), &sv, a);
}

/* ---- softmax cross-entropy (vocab-parallel order, see backend.h) -----------------------
 * Rows are independent, so threads split rows; a row (50304 columns in the
 * 124M model) is long enough that per-row work dwarfs scheduling. */

/* rowmax (N); logits (N,ld), V_local columns used */
void mt_cpu_xent_max(mt_backend *be, mt_tensor rowmax_, mt_tensor logits_, int V_local)
{
    (void)be;
    const int N = (int)logits_.rows;
    const size_t ld = (size_t)logits_.cols;
    const float *logits = mt_fp(logits_);
    float *rowmax = mt_fp(rowmax_);
    OMP(parallel for if ((size_t)N * V_local > PAR_MIN) schedule(static))
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * ld;
        /* 16 running maxima: one vector accumulator would wait on the
         * latency of each max (3x slower); max is exact in any order */
        float acc[16];
        for (int j = 0; j < 16; j++) acc[j] = -INFINITY;
        int c = 0;
        for (; c + 16 <= V_local; c += 16) {
            OMP(simd)
            for (int j = 0; j < 16; j++) acc[j] = l[c + j] > acc[j] ? l[c + j] : acc[j];
        }
        float mx = -INFINITY;
        for (int j = 0; j < 16; j++) mx = acc[j] > mx ? acc[j] : mx;
        for (; c < V_local; c++) mx = l[c] > mx ? l[c] : mx;
        rowmax[n] = mx;
    }
}

static int local_target(int32_t target, int vocab_offset, int V_local)
{
    int c = target - vocab_offset;
    return c >= 0 && c < V_local ? c : -1;
}

/* sumexp, tgt (N); logits (N,ld); rowmax (N); targets (N) global ids */
void mt_cpu_xent_sumexp(mt_backend *be, mt_tensor sumexp_, mt_tensor tgt_, mt_tensor logits_,
                        mt_tensor rowmax_, mt_tensor targets_, int V_local, int vocab_offset)
{
    (void)be;
    const int N = (int)logits_.rows;
    const size_t ld = (size_t)logits_.cols;
    const float *logits = mt_fp(logits_), *rowmax = mt_fp(rowmax_);
    const int32_t *targets = mt_ip(targets_);
    float *sumexp = mt_fp(sumexp_), *tgt = mt_fp(tgt_);
    OMP(parallel for if ((size_t)N * V_local > PAR_MIN) schedule(static))
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * ld;
        float mx = rowmax[n];
        double s = 0.0;
        OMP(simd reduction(+ : s))
        for (int c = 0; c < V_local; c++) s += fast_expf(l[c] - mx);
        sumexp[n] = (float)s;
        int c = local_target(targets[n], vocab_offset, V_local);
        tgt[n] = c >= 0 ? l[c] : 0.0f;
    }
}

/* losses, rowmax, sumexp, tgt (N) */
void mt_cpu_xent_loss(mt_backend *be, mt_tensor losses_, mt_tensor rowmax_, mt_tensor sumexp_,
                      mt_tensor tgt_)
{
    (void)be;
    const int N = (int)mt_numel(losses_);
    const float *rowmax = mt_fp(rowmax_), *sumexp = mt_fp(sumexp_), *tgt = mt_fp(tgt_);
    float *losses = mt_fp(losses_);
    for (int n = 0; n < N; n++) losses[n] = (float)(log((double)sumexp[n]) + rowmax[n] - tgt[n]);
}

/* dlogits (N,ld) overwritten in the V_local used columns, may alias logits (N,ld);
 * dlosses, rowmax, sumexp, targets (N) */
void mt_cpu_xent_bwd(mt_backend *be, mt_tensor dlogits_, mt_tensor dlosses_, mt_tensor logits_,
                     mt_tensor rowmax_, mt_tensor sumexp_, mt_tensor targets_, int V_local,
                     int vocab_offset)
{
    (void)be;
    /* forward: loss = log(sum_c exp(l_c - max)) + max - l_target
     * dloss/dl_c = softmax_c - [c == target] */
    const int N = (int)logits_.rows;
    const size_t ld = (size_t)logits_.cols;
    const float *dlosses = mt_fp(dlosses_), *logits = mt_fp(logits_);
    const float *rowmax = mt_fp(rowmax_), *sumexp = mt_fp(sumexp_);
    const int32_t *targets = mt_ip(targets_);
    float *dlogits = mt_fp(dlogits_);
    OMP(parallel for if ((size_t)N * V_local > PAR_MIN) schedule(static))
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * ld;
        float *d = dlogits + (size_t)n * ld;
        float mx = rowmax[n], dl = dlosses[n];
        float f = dl / sumexp[n];
        int tc = local_target(targets[n], vocab_offset, V_local);
        float lt = tc >= 0 ? l[tc] : 0.0f; /* read before an in-place write overwrites it */
        OMP(simd)
        for (int c = 0; c < V_local; c++) d[c] = fast_expf(l[c] - mx) * f;
        if (tc >= 0) d[tc] = (fast_expf(lt - mx) / sumexp[n] - 1.0f) * dl;
    }
}

/* ---- optimizer and reductions --------------------------------------------------------- */

/* sqrt(q) for q >= 0, vectorisable. libm's sqrtf may set errno, so without
 * -fno-math-errno gcc keeps it a scalar call with a branch, which made AdamW
 * twice as slow as its memory traffic (113 vs 58 ms for 124M parameters).
 * 1/sqrt(q) from the classic exponent-halving estimate, refined by three
 * Newton steps (relative error 3e-2 -> 1e-3 -> 2e-6 -> float rounding, a few
 * ulp), times q. q = 0 gives 0. Only used where an ulp does not matter. */
static inline float sqrt_newton(float q)
{
    float y = i2f(0x5f3759df - (f2i(q) >> 1));
    y = y * (1.5f - 0.5f * q * y * y);
    y = y * (1.5f - 0.5f * q * y * y);
    y = y * (1.5f - 0.5f * q * y * y);
    return q * y;
}

/* param, grad, m, v (n). One pass: AdamW over 124M parameters moves 28
 * bytes per parameter, so each element is loaded and stored once, and grad
 * is zeroed in the same pass when asked. */
/* one element of AdamW; the loop below supplies the constants */
static inline void adamw_elem(float *p, const float *g, float *m, float *v, float gs, float b1,
                              float b2, float decay, float step_size, float inv_bc2, float eps)
{
    float gi = *g * gs;
    float mi = b1 * *m + (1.0f - b1) * gi;
    float vi = b2 * *v + (1.0f - b2) * (gi * gi);
    *p = *p * decay - step_size * mi / (sqrt_newton(vi * inv_bc2) + eps);
    *m = mi;
    *v = vi;
}

void mt_cpu_adamw(mt_backend *be, mt_tensor param_, mt_tensor grad_, mt_tensor m_, mt_tensor v_,
                  const struct mt_adamw_args *a, int zero_grad)
{
    (void)be;
    const size_t n = (size_t)mt_numel(param_);
    float *param = mt_fp(param_), *grad = mt_fp(grad_), *m = mt_fp(m_), *v = mt_fp(v_);
    const float b1 = a->beta1, b2 = a->beta2, eps = a->eps, gs = a->grad_scale;
    const float decay = (float)(1.0 - (double)a->lr * a->weight_decay);
    const float step_size = (float)(a->lr / (1.0 - pow(a->beta1, a->step))); /* lr / bc1 */
    const float inv_bc2 = (float)(1.0 / (1.0 - pow(a->beta2, a->step)));
    /* two loops rather than a conditional store, which would stop vectorisation */
    if (zero_grad) {
        OMP(parallel for simd if (parallel : n > PAR_MIN) schedule(static))
        for (size_t i = 0; i < n; i++) {
            adamw_elem(param + i, grad + i, m + i, v + i, gs, b1, b2, decay, step_size, inv_bc2, eps);
            grad[i] = 0.0f;
        }
    } else {
        OMP(parallel for simd if (parallel : n > PAR_MIN) schedule(static))
        for (size_t i = 0; i < n; i++)
            adamw_elem(param + i, grad + i, m + i, v + i, gs, b1, b2, decay, step_size, inv_bc2, eps);
    }
}

/* param, grad, buf (n): one pass, as AdamW */
void mt_cpu_sgd(mt_backend *be, mt_tensor param_, mt_tensor grad_, mt_tensor buf_,
                const struct mt_sgd_args *a, int zero_grad)
{
    (void)be;
    const size_t n = (size_t)mt_numel(param_);
    float *param = mt_fp(param_), *grad = mt_fp(grad_), *buf = mt_fp(buf_);
    const float lr = a->lr, mom = a->momentum, wd = a->weight_decay, gs = a->grad_scale;
    if (mom != 0.0f) {
        OMP(parallel for simd if (parallel : n > PAR_MIN) schedule(static))
        for (size_t i = 0; i < n; i++) {
            float b = mom * buf[i] + (grad[i] * gs + wd * param[i]);
            buf[i] = b;
            param[i] -= lr * b;
            if (zero_grad) grad[i] = 0.0f;
        }
    } else {
        OMP(parallel for simd if (parallel : n > PAR_MIN) schedule(static))
        for (size_t i = 0; i < n; i++) {
            param[i] -= lr * (grad[i] * gs + wd * param[i]);
            if (zero_grad) grad[i] = 0.0f;
        }
    }
}

/* x (R,C): the sums in double in index order, as cpu-ref (bitwise equal):
 * rows one per thread; columns in blocks, each block's partial sums walked
 * down the rows so that x is read along its rows */
enum { SQ_COLS = 256 };

void mt_cpu_sq_sums(mt_backend *be, mt_tensor rows_, mt_tensor cols_, mt_tensor x_, float scale,
                    float eps)
{
    (void)be;
    const int64_t R = x_.rows, C = x_.cols;
    const float *x = mt_fp(x_);
    float *rows = mt_fp(rows_), *cols = mt_fp(cols_);
    const double sc = scale;
    OMP(parallel for if (R * C > PAR_MIN) schedule(static))
    for (int64_t i = 0; i < R; i++) {
        double s = 0.0;
        for (int64_t j = 0; j < C; j++) {
            double g = (double)x[i * C + j] * sc;
            s += g * g + eps;
        }
        rows[i] = (float)s;
    }
    OMP(parallel for if (R * C > PAR_MIN) schedule(static))
    for (int64_t j0 = 0; j0 < C; j0 += SQ_COLS) {
        double acc[SQ_COLS] = {0};
        const int64_t w = C - j0 < SQ_COLS ? C - j0 : SQ_COLS;
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < w; j++) {
                double g = (double)x[i * C + j0 + j] * sc;
                acc[j] += g * g + eps;
            }
        for (int64_t j = 0; j < w; j++) cols[j0 + j] = (float)acc[j];
    }
}

void mt_cpu_adafactor_precond(mt_backend *be, mt_tensor grad_, mt_tensor R_, mt_tensor C_,
                              mt_tensor V_, const struct mt_adafactor_args *a)
{
    (void)be;
    const int64_t rows = grad_.rows, cols = grad_.cols;
    float *g = mt_fp(grad_);
    const float s = a->scale;
    if (mt_numel(V_)) {
        float *V = mt_fp(V_);
        const float b = a->beta2t, eps1 = a->eps1;
        const int64_t n = rows * cols;
        OMP(parallel for simd if (parallel : n > PAR_MIN) schedule(static))
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i] * s;
            float v = b * V[i] + (1.0f - b) * (gi * gi + eps1);
            V[i] = v;
            g[i] = gi / sqrtf(v);
        }
        return;
    }
    const float *R = mt_fp(R_), *C = mt_fp(C_);
    OMP(parallel for if (rows * cols > PAR_MIN) schedule(static))
    for (int64_t i = 0; i < rows; i++) {
        const float r = s / sqrtf(R[i] * a->inv_row_mean);
        float *gi = g + i * cols;
        for (int64_t j = 0; j < cols; j++) gi[j] = gi[j] * r / sqrtf(C[j]);
    }
}

void mt_cpu_adafactor_apply(mt_backend *be, mt_tensor param_, mt_tensor upd_, mt_tensor M_,
                            const struct mt_adafactor_args *a, int zero_grad)
{
    (void)be;
    const size_t n = (size_t)mt_numel(param_);
    float *p = mt_fp(param_), *u = mt_fp(upd_), *M = mt_fp(M_);
    const float step = a->lr * a->update_scale, b1 = a->beta1, wd = a->weight_decay * a->lr;
    OMP(parallel for simd if (parallel : n > PAR_MIN) schedule(static))
    for (size_t i = 0; i < n; i++) {
        float ui = step * u[i];
        if (b1 != 0.0f) {
            ui = b1 * M[i] + (1.0f - b1) * ui;
            M[i] = ui;
        }
        p[i] = p[i] - wd * p[i] - ui;
        if (zero_grad) u[i] = 0.0f;
    }
}

/* out1[0] = sum x^2 over x (n), in the block order of backend.h: block sums
 * (sequential double sums of MT_REDUCE_BLOCK elements) added in index order.
 * Bitwise equal to cpu-ref. Threads take groups of 8 blocks and walk the 8
 * blocks side by side: each block is still summed strictly in order, but the
 * 8 independent add chains hide the latency of a double add, which would
 * otherwise bound the loop at ~4 cycles per element. The 8 sums are named
 * scalars because gcc keeps an array of them in memory (2x slower). */
enum { SSQ_GROUP = 8 };

void mt_cpu_sum_squares(mt_backend *be, double *out1, mt_tensor x_)
{
    (void)be;
    const size_t n = (size_t)mt_numel(x_);
    const float *x = mt_fp(x_);
    const size_t BLK = MT_REDUCE_BLOCK;
    size_t nblocks = (n + BLK - 1) / BLK;
    size_t nfull = n / BLK;            /* blocks of exactly BLK elements */
    size_t ngroups = nfull / SSQ_GROUP; /* groups of SSQ_GROUP full blocks */
    double *bs = mt_cpu_xmalloc((nblocks ? nblocks : 1) * sizeof *bs);
    OMP(parallel if (n > PAR_MIN))
    {
        OMP(for schedule(static) nowait)
        for (size_t grp = 0; grp < ngroups; grp++) {
            const float *x0 = x + grp * SSQ_GROUP * BLK;
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0, v;
            for (size_t i = 0; i < BLK; i++) {
                v = x0[i], s0 += v * v;
                v = x0[BLK + i], s1 += v * v;
                v = x0[2 * BLK + i], s2 += v * v;
                v = x0[3 * BLK + i], s3 += v * v;
                v = x0[4 * BLK + i], s4 += v * v;
                v = x0[5 * BLK + i], s5 += v * v;
                v = x0[6 * BLK + i], s6 += v * v;
                v = x0[7 * BLK + i], s7 += v * v;
            }
            double *o = bs + grp * SSQ_GROUP;
            o[0] = s0, o[1] = s1, o[2] = s2, o[3] = s3, o[4] = s4, o[5] = s5, o[6] = s6, o[7] = s7;
        }
        /* the few blocks left over (fewer than SSQ_GROUP, the last maybe partial) */
        OMP(for schedule(static))
        for (size_t blk = ngroups * SSQ_GROUP; blk < nblocks; blk++) {
            size_t i0 = blk * BLK, i1 = n - i0 < BLK ? n : i0 + BLK;
            double s = 0.0;
            for (size_t i = i0; i < i1; i++) s += (double)x[i] * (double)x[i];
            bs[blk] = s;
        }
    }
    double total = 0.0;
    for (size_t blk = 0; blk < nblocks; blk++) total += bs[blk];
    free(bs);
    out1[0] = total;
}

/* out1[0] = sum x (n), in the block order of sum_squares (bitwise equal to
 * cpu-ref): block sums in parallel, added in order */
void mt_cpu_sum(mt_backend *be, double *out1, mt_tensor x_)
{
    (void)be;
    const size_t n = (size_t)mt_numel(x_);
    const float *x = mt_fp(x_);
    const size_t BLK = MT_REDUCE_BLOCK, nblocks = (n + BLK - 1) / BLK;
    double *bs = mt_cpu_xmalloc((nblocks ? nblocks : 1) * sizeof *bs);
    OMP(parallel for if (n > PAR_MIN) schedule(static))
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t i0 = blk * BLK, i1 = n - i0 < BLK ? n : i0 + BLK;
        double s = 0.0;
        for (size_t i = i0; i < i1; i++) s += (double)x[i];
        bs[blk] = s;
    }
    double total = 0.0;
    for (size_t blk = 0; blk < nblocks; blk++) total += bs[blk];
    free(bs);
    out1[0] = total;
}

/* out1[0] = number of inf or nan elements of x (n). An integer count is exact
 * in any order, so a plain reduction is deterministic. */
void mt_cpu_count_nonfinite(mt_backend *be, double *out1, mt_tensor x_)
{
    (void)be;
    const size_t n = (size_t)mt_numel(x_);
    const float *x = mt_fp(x_);
    long long count = 0;
    OMP(parallel for simd if (parallel : n > PAR_MIN) reduction(+ : count) schedule(static))
    for (size_t i = 0; i < n; i++) count += (f2i(x[i]) & 0x7f800000) == 0x7f800000;
    out1[0] = (double)count;
}
