/* cpu_ref_ops.c: the "cpu-ref" compute members, the oracle for every test.
 *
 * Plain loops that follow the formulas in backend.h line by line: no
 * threads, no BLAS, no blocking. Inputs and outputs are float; every sum that
 * runs over a long dimension (GEMM k, layernorm mean/variance, softmax
 * normalisers, attention dot products, column sums) is accumulated in double,
 * and transcendental functions are evaluated in double, so the reference is
 * more accurate than anything it is compared with. Speed is not a goal.
 *
 * Every member computes f32 tensors (the wrappers check the types; cpu-ref
 * implements every op, so it has no `supports` member).
 *
 * Shape letters: B batch, T sequence, C channels, NH heads, HS head size,
 * N = B*T rows, V_local vocabulary columns held by this shard, ld row stride
 * of the logits. */
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

static void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size);
    if (!p) mt_die("cpu-ref: out of memory (%zu x %zu bytes of scratch)", count, size);
    return p;
}

/* ---- GEMM ------------------------------------------------------------------ */

/* Element e of a matrix of type t (f32, or bf16 / f16 storage), as a float */
static float elem(const void *x, enum mt_dtype t, size_t e)
{
    switch (t) {
    case MT_DTYPE_BF16: return mt_bf16_to_f32(((const uint16_t *)x)[e]);
    case MT_DTYPE_F16: return mt_f16_to_f32(((const uint16_t *)x)[e]);
    default: return ((const float *)x)[e];
    }
}

/* Element (i, l) of op(X) for a row-major X with row stride ld. */
static float op_at(const void *x, enum mt_dtype t, enum mt_trans tr, int ld, int i, int l)
{
    return elem(x, t, tr == MT_TRANS_N ? (size_t)i * ld + l : (size_t)l * ld + i);
}

/* C = alpha * op(A) op(B) + beta * C for each batch entry.
 * op(A) (m,k), op(B) (k,n), C (m,n); ld and strides as in struct mt_gemm_args.
 * A and B f32, or both bf16 / f16 (then exact in double, as f32 values are) */
void mt_cpu_ref_gemm(mt_backend *be, const struct mt_gemm_args *g)
{
    (void)be;
    const size_t esize = mt_dtype_size(g->a_type);
    for (int p = 0; p < g->batch; p++) {
        const char *a = (const char *)g->a + (size_t)p * g->stride_a * esize;
        const char *b = (const char *)g->b + (size_t)p * g->stride_b * esize;
        float *c = (float *)g->c + p * g->stride_c;
        for (int i = 0; i < g->m; i++) {
            for (int j = 0; j < g->n; j++) {
                double acc = 0.0;
                for (int l = 0; l < g->k; l++)
                    acc += (double)op_at(a, g->a_type, g->ta, g->lda, i, l) *
                           (double)op_at(b, g->b_type, g->tb, g->ldb, l, j);
                /* As in BLAS: alpha = 0 does not use A and B, beta = 0 does
                 * not read C (which may hold NaN). */
                double out = g->alpha == 0.0f ? 0.0 : (double)g->alpha * acc;
                if (g->beta != 0.0f) out += (double)g->beta * c[(size_t)i * g->ldc + j];
                c[(size_t)i * g->ldc + j] = (float)out;
            }
        }
    }
}

/* ---- embedding --------------------------------------------------------------- */

/* out (N,C) = or += table[ids - vocab_offset] (zero / nothing outside the shard),
 * ids (1,N), table (V_local,C) */
void mt_cpu_ref_embed_fwd(mt_backend *be, mt_tensor out, mt_tensor ids, mt_tensor table,
                          int vocab_offset, int accumulate)
{
    (void)be;
    const int64_t N = out.rows, C = out.cols, V = table.rows;
    const int32_t *id = mt_ip(ids);
    const float *tb = mt_fp(table);
    float *o = mt_fp(out);
    for (int64_t n = 0; n < N; n++) {
        int64_t row = (int64_t)id[n] - vocab_offset; /* row of this shard, if any */
        int here = row >= 0 && row < V;
        for (int64_t c = 0; c < C; c++) {
            float v = here ? tb[row * C + c] : 0.0f;
            if (accumulate) o[n * C + c] += v;
            else o[n * C + c] = v;
        }
    }
}

/* dtable (V_local,C) += rows of dout (N,C) by id, rows visited in n order */
void mt_cpu_ref_embed_bwd(mt_backend *be, mt_tensor dtable, mt_tensor dout, mt_tensor ids,
                          int vocab_offset)
{
    (void)be;
    /* forward: out[n,:] = table[ids[n] - vocab_offset, :] */
    const int64_t N = dout.rows, C = dout.cols, V = dtable.rows;
    const int32_t *id = mt_ip(ids);
    const float *d = mt_fp(dout);
    float *dt = mt_fp(dtable);
    for (int64_t n = 0; n < N; n++) {
        int64_t row = (int64_t)id[n] - vocab_offset;
        if (row >= 0 && row < V)
            for (int64_t c = 0; c < C; c++) dt[row * C + c] += d[n * C + c];
    }
}

/* ---- layernorm and RMSNorm ------------------------------------------------------ */

/* out, inp (N,C); mean, rstd (N); w, b (C) */
void mt_cpu_ref_layernorm_fwd(mt_backend *be, mt_tensor out_, mt_tensor mean_, mt_tensor rstd_,
                              mt_tensor inp_, mt_tensor w_, mt_tensor b_, double eps)
{
    (void)be;
    const int N = (int)inp_.rows, C = (int)inp_.cols;
    const float *inp = mt_fp(inp_), *w = mt_fp(w_), *b = mt_fp(b_);
    float *out = mt_fp(out_), *mean = mt_fp(mean_), *rstd = mt_fp(rstd_);
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double s = 0.0;
        for (int c = 0; c < C; c++) s += x[c];
        double mu = s / C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (x[c] - mu) * (x[c] - mu);
        double r = 1.0 / sqrt(ss / C + eps); /* biased variance, as torch */
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = (float)((x[c] - mu) * r * w[c] + b[c]);
        mean[n] = (float)mu;
        rstd[n] = (float)r;
    }
}

/* dinp (N,C) +=, dw, db (C) +=; dout, inp (N,C); w (C); mean, rstd (N) */
void mt_cpu_ref_layernorm_bwd(mt_backend *be, mt_tensor dinp_, mt_tensor dw_, mt_tensor db_,
                              mt_tensor dout_, mt_tensor inp_, mt_tensor w_, mt_tensor mean_,
                              mt_tensor rstd_)
{
    (void)be;
    /* forward: norm = (inp - mean) * rstd;  out = norm * w + b
     * dnorm = dout * w;  dinp += rstd * (dnorm - mean_c(dnorm) - norm * mean_c(dnorm * norm)) */
    const int N = (int)inp_.rows, C = (int)inp_.cols;
    const float *dout = mt_fp(dout_), *inp = mt_fp(inp_), *w = mt_fp(w_);
    const float *mean = mt_fp(mean_), *rstd = mt_fp(rstd_);
    float *dinp = mt_fp(dinp_), *dw = mt_fp(dw_), *db = mt_fp(db_);
    double *dw_acc = xcalloc((size_t)C, sizeof *dw_acc);
    double *db_acc = xcalloc((size_t)C, sizeof *db_acc);
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *d = dout + (size_t)n * C;
        double mu = mean[n], r = rstd[n];
        double sum_dn = 0.0, sum_dn_norm = 0.0;
        for (int c = 0; c < C; c++) {
            double norm = (x[c] - mu) * r;
            double dn = (double)d[c] * w[c];
            sum_dn += dn;
            sum_dn_norm += dn * norm;
            dw_acc[c] += (double)d[c] * norm; /* rows summed in order */
            db_acc[c] += d[c];
        }
        double mean_dn = sum_dn / C, mean_dn_norm = sum_dn_norm / C;
        float *di = dinp + (size_t)n * C;
        for (int c = 0; c < C; c++) {
            double norm = (x[c] - mu) * r;
            double dn = (double)d[c] * w[c];
            di[c] += (float)(r * (dn - mean_dn - norm * mean_dn_norm));
        }
    }
    for (int c = 0; c < C; c++) {
        dw[c] += (float)dw_acc[c];
        db[c] += (float)db_acc[c];
    }
    free(dw_acc);
    free(db_acc);
}

/* out, inp (N,C); rstd (N); w (C) */
void mt_cpu_ref_rmsnorm_fwd(mt_backend *be, mt_tensor out_, mt_tensor rstd_, mt_tensor inp_,
                            mt_tensor w_, double eps)
{
    (void)be;
    const int N = (int)inp_.rows, C = (int)inp_.cols;
    const float *inp = mt_fp(inp_), *w = mt_fp(w_);
    float *out = mt_fp(out_), *rstd = mt_fp(rstd_);
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        double r = 1.0 / sqrt(ss / C + eps);
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = (float)(x[c] * r * w[c]);
        rstd[n] = (float)r;
    }
}

/* dinp (N,C) +=, dw (C) +=; dout, inp (N,C); w (C); rstd (N) */
void mt_cpu_ref_rmsnorm_bwd(mt_backend *be, mt_tensor dinp_, mt_tensor dw_, mt_tensor dout_,
                            mt_tensor inp_, mt_tensor w_, mt_tensor rstd_)
{
    (void)be;
    /* forward: norm = inp * rstd, rstd = (mean(inp^2) + eps)^(-1/2);  out = norm * w
     * dnorm = dout * w;  dinp += rstd * (dnorm - norm * mean_c(dnorm * norm));
     * dw += sum_n dout * norm */
    const int N = (int)inp_.rows, C = (int)inp_.cols;
    const float *dout = mt_fp(dout_), *inp = mt_fp(inp_), *w = mt_fp(w_), *rstd = mt_fp(rstd_);
    float *dinp = mt_fp(dinp_), *dw = mt_fp(dw_);
    double *dw_acc = xcalloc((size_t)C, sizeof *dw_acc);
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        double r = rstd[n], sum_dn_norm = 0.0;
        for (int c = 0; c < C; c++) {
            double norm = x[c] * r;
            sum_dn_norm += (double)d[c] * w[c] * norm;
            dw_acc[c] += (double)d[c] * norm;
        }
        double mean_dn_norm = sum_dn_norm / C;
        float *di = dinp + (size_t)n * C;
        for (int c = 0; c < C; c++)
            di[c] += (float)(r * ((double)d[c] * w[c] - x[c] * r * mean_dn_norm));
    }
    for (int c = 0; c < C; c++) dw[c] += (float)dw_acc[c];
    free(dw_acc);
}

/* ---- bias, activations, elementwise ----------------------------------------------- */

/* y (N,C) +=  bias (C) broadcast over rows */
void mt_cpu_ref_bias_add(mt_backend *be, mt_tensor y_, mt_tensor bias_)
{
    (void)be;
    const int64_t N = y_.rows, C = y_.cols;
    float *y = mt_fp(y_);
    const float *bias = mt_fp(bias_);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) y[n * C + c] += bias[c];
}

/* dbias (C) += column sums of dy (N,C), rows in order */
void mt_cpu_ref_bias_bwd(mt_backend *be, mt_tensor dbias_, mt_tensor dy_)
{
    (void)be;
    const int64_t N = dy_.rows, C = dy_.cols;
    const float *dy = mt_fp(dy_);
    float *dbias = mt_fp(dbias_);
    for (int64_t c = 0; c < C; c++) {
        double s = 0.0;
        for (int64_t n = 0; n < N; n++) s += dy[n * C + c];
        dbias[c] += (float)s;
    }
}

/* GELU, tanh approximation (Hendrycks & Gimpel 2016; torch approximate='tanh'),
 * the exact GELU x Phi(x), and tanh, in double. */
#define GELU_K 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_A 0.044715
#define INV_SQRT2 0.7071067811865476
#define INV_SQRT_2PI 0.3989422804014327

static double act_value(double x, enum mt_act act)
{
    switch (act) {
    case MT_ACT_GELU: return 0.5 * x * (1.0 + erf(x * INV_SQRT2));
    case MT_ACT_TANH: return tanh(x);
    default: return 0.5 * x * (1.0 + tanh(GELU_K * (x + GELU_A * x * x * x)));
    }
}

static double act_slope(double x, enum mt_act act)
{
    switch (act) {
    case MT_ACT_GELU: return 0.5 * (1.0 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
    case MT_ACT_TANH: {
        const double t = tanh(x);
        return 1.0 - t * t;
    }
    default: {
        const double th = tanh(GELU_K * (x + GELU_A * x * x * x));
        const double du = GELU_K * (1.0 + 3.0 * GELU_A * x * x); /* d(inner)/dx */
        return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du;
    }
    }
}

/* out, inp (any shape) */
void mt_cpu_ref_act_fwd(mt_backend *be, mt_tensor out_, mt_tensor inp_, enum mt_act act)
{
    (void)be;
    const size_t n = (size_t)mt_numel(inp_);
    const float *inp = mt_fp(inp_);
    float *out = mt_fp(out_);
    for (size_t i = 0; i < n; i++) out[i] = (float)act_value(inp[i], act);
}

/* dinp = act'(inp) * dout, overwrites; dinp may alias dout. */
void mt_cpu_ref_act_bwd(mt_backend *be, mt_tensor dinp_, mt_tensor inp_, mt_tensor dout_,
                        enum mt_act act)
{
    (void)be;
    const size_t n = (size_t)mt_numel(inp_);
    const float *inp = mt_fp(inp_), *dout = mt_fp(dout_);
    float *dinp = mt_fp(dinp_);
    for (size_t i = 0; i < n; i++) /* dout[i] is read before the aliased write */
        dinp[i] = (float)(act_slope(inp[i], act) * dout[i]);
}

/* out (N,F) = silu(gate) * up; inp (N,2F) rows [gate | up] */
void mt_cpu_ref_swiglu_fwd(mt_backend *be, mt_tensor out_, mt_tensor inp_)
{
    (void)be;
    const int64_t N = out_.rows, F = out_.cols;
    const float *inp = mt_fp(inp_);
    float *out = mt_fp(out_);
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < F; j++) {
            double g = inp[n * 2 * F + j], u = inp[n * 2 * F + F + j];
            out[n * F + j] = (float)(g / (1.0 + exp(-g)) * u);
        }
}

/* dinp (N,2F) = [d gate | d up] (overwrites); inp (N,2F); dout (N,F) */
void mt_cpu_ref_swiglu_bwd(mt_backend *be, mt_tensor dinp_, mt_tensor inp_, mt_tensor dout_)
{
    (void)be;
    /* forward: out = s(g) g u with s the logistic function;
     * d out/d g = u s(g) (1 + g (1 - s(g))),  d out/d u = s(g) g */
    const int64_t N = dout_.rows, F = dout_.cols;
    const float *inp = mt_fp(inp_), *dout = mt_fp(dout_);
    float *dinp = mt_fp(dinp_);
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < F; j++) {
            double g = inp[n * 2 * F + j], u = inp[n * 2 * F + F + j], d = dout[n * F + j];
            double sg = 1.0 / (1.0 + exp(-g));
            dinp[n * 2 * F + j] = (float)(d * u * sg * (1.0 + g * (1.0 - sg)));
            dinp[n * 2 * F + F + j] = (float)(d * sg * g);
        }
}

/* out = a + b (any shape); out may alias a or b */
void mt_cpu_ref_add(mt_backend *be, mt_tensor out_, mt_tensor a_, mt_tensor b_)
{
    (void)be;
    const size_t n = (size_t)mt_numel(out_);
    const float *a = mt_fp(a_), *b = mt_fp(b_);
    float *out = mt_fp(out_);
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* x *= s */
void mt_cpu_ref_scale(mt_backend *be, mt_tensor x_, float s)
{
    (void)be;
    const size_t n = (size_t)mt_numel(x_);
    float *x = mt_fp(x_);
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* x = the nearest bf16 / fp16 value, element by element */
void mt_cpu_ref_round_half(mt_backend *be, mt_tensor x_, enum mt_dtype to)
{
    (void)be;
    const size_t n = (size_t)mt_numel(x_);
    float *x = mt_fp(x_);
    for (size_t i = 0; i < n; i++) x[i] = to == MT_DTYPE_BF16 ? mt_round_bf16(x[i]) : mt_round_f16(x[i]);
}

/* dst (half storage) = src rounded to nearest even */
void mt_cpu_ref_to_half(mt_backend *be, mt_tensor dst, mt_tensor src)
{
    (void)be;
    const size_t n = (size_t)mt_numel(src);
    const float *x = mt_fp(src);
    uint16_t *h = (uint16_t *)dst.data;
    for (size_t i = 0; i < n; i++) h[i] = dst.dtype == MT_DTYPE_BF16 ? mt_f32_to_bf16(x[i]) : mt_f32_to_f16(x[i]);
}

/* x (N,C) in place: element (n, c) kept with coordinates (col0 + c, n % T,
 * sample0 + n / T, 0) and scaled, or zeroed */
void mt_cpu_ref_dropout(mt_backend *be, mt_tensor x_, const struct mt_dropout_args *d)
{
    (void)be;
    const int64_t N = x_.rows, C = x_.cols;
    const uint32_t thr = mt_dropout_threshold(d->p);
    const float scale = mt_dropout_scale(d->p);
    float *x = mt_fp(x_);
    for (int64_t n = 0; n < N; n++) {
        const uint32_t pos = (uint32_t)(n % d->T), sample = (uint32_t)(d->sample0 + n / d->T);
        for (int64_t c = 0; c < C; c++) {
            int keep = mt_dropout_keep(d->seed, d->stream, thr, (uint32_t)(d->col0 + c), pos,
                                       sample, 0);
            x[n * C + c] = keep ? x[n * C + c] * scale : 0.0f;
        }
    }
}

/* ---- rotary embedding and attention ---------------------------------------------- */

/* Rotates the first R dims of the head at x by the angles of one table row. */
static void rotate_head(float *x, const float *cs, int R, int inverse)
{
    const int h = R / 2;
    for (int i = 0; i < h; i++) {
        double c = cs[i], s = inverse ? -(double)cs[h + i] : cs[h + i];
        double x1 = x[i], x2 = x[h + i];
        x[i] = (float)(x1 * c - x2 * s);
        x[h + i] = (float)(x2 * c + x1 * s);
    }
}

/* qkv (B*T, width) in place, rows t0..T-1 of each sequence; table (maxT, R) */
void mt_cpu_ref_rope(mt_backend *be, mt_tensor qkv_, mt_tensor table_,
                     const struct mt_attn_args *a, int inverse)
{
    (void)be;
    const int R = (int)table_.cols, W = mt_qkv_width(a);
    float *qkv = mt_fp(qkv_);
    const float *table = mt_fp(table_);
    for (int b = 0; b < a->B; b++)
        for (int t = a->t0; t < a->T; t++) {
            float *row = qkv + ((size_t)b * a->T + t) * W;
            const float *cs = table + (size_t)mt_rope_row(a, b, t) * R;
            for (int h = 0; h < a->heads; h++) rotate_head(row + mt_q_offset(a, h), cs, R, inverse);
            for (int g = 0; g < a->groups; g++) rotate_head(row + mt_k_offset(a, g), cs, R, inverse);
        }
}

/* the dropout factor of attention probability (b, h, query t, key j): 1 without dropout */
static double attn_keep(const struct mt_attn_args *a, int b, int h, int t, int j)
{
    const struct mt_dropout_args *d = &a->dropout;
    if (d->p <= 0.0f) return 1.0;
    int keep = mt_dropout_keep(d->seed, d->stream, mt_dropout_threshold(d->p), (uint32_t)j,
                               (uint32_t)t, (uint32_t)(d->sample0 + b), (uint32_t)(d->col0 + h));
    return keep ? (double)mt_dropout_scale(d->p) : 0.0;
}

/* Both forms' forward: out (B*(T-t0), heads*HS); att (B*heads*(T-t0), T)
 * receives the probabilities (unfused), or att is NULL and lse
 * (B*heads*(T-t0)) each row's log-sum-exp (flash); qkv (B*T, width) */
static void attn_fwd(float *out, float *att, float *lse, const float *qkv, const struct mt_attn_args *a)
{
    const int B = a->B, T = a->T, t0 = a->t0, NH = a->heads, HS = a->head_dim;
    const int Tq = T - t0, W = mt_qkv_width(a), per = a->heads / a->groups;
    double scale = 1.0 / sqrt((double)HS);
    double *s = xcalloc((size_t)T, sizeof *s); /* one row of scores (T) */
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const int qo = mt_q_offset(a, h), ko = mt_k_offset(a, h / per), vo = ko + HS;
            for (int i = 0; i < Tq; i++) {
                int t = t0 + i; /* absolute position of the query */
                const int j0 = mt_attn_first_key(a, b, t), jmax = mt_attn_last_key(a, b, t); /* it sees keys j0..jmax */
                const float *q = qkv + ((size_t)b * T + t) * W + qo;
                double mx = -INFINITY;
                for (int j = j0; j <= jmax; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * W + ko;
                    double dot = 0.0;
                    for (int d = 0; d < HS; d++) dot += (double)q[d] * k[d];
                    s[j] = dot * scale;
                    if (s[j] > mx) mx = s[j];
                }
                double sum = 0.0;
                for (int j = j0; j <= jmax; j++) {
                    s[j] = exp(s[j] - mx);
                    sum += s[j];
                }
                const size_t row = ((size_t)b * NH + h) * Tq + i;
                if (att)
                    for (int j = 0; j < T; j++) att[row * T + j] = j >= j0 && j <= jmax ? (float)(s[j] / sum) : 0.0f;
                else
                    lse[row] = (float)(mx + log(sum));
                float *o = out + ((size_t)b * Tq + i) * NH * HS + (size_t)h * HS;
                for (int d = 0; d < HS; d++) {
                    double acc = 0.0;
                    for (int j = j0; j <= jmax; j++)
                        acc += s[j] / sum * attn_keep(a, b, h, t, j) *
                               qkv[((size_t)b * T + j) * W + vo + d];
                    o[d] = (float)acc;
                }
            }
        }
    }
    free(s);
}

void mt_cpu_ref_attn_fwd(mt_backend *be, mt_tensor out, mt_tensor att, mt_tensor qkv,
                         const struct mt_attn_args *a)
{
    (void)be;
    attn_fwd(mt_fp(out), mt_fp(att), NULL, mt_fp(qkv), a);
}

/* dqkv (B*T, width) overwritten, datt (B*heads*T, T) scratch, dout (B*T, heads*HS),
 * qkv (B*T, width), att (B*heads*T, T); t0 = 0 */
void mt_cpu_ref_attn_bwd(mt_backend *be, mt_tensor dqkv_, mt_tensor datt_, mt_tensor dout_,
                         mt_tensor qkv_, mt_tensor att_, const struct mt_attn_args *a)
{
    (void)be;
    /* forward, per (b,h):  s[i,j] = scale * q_i.k_j;  att = softmax_j(s) (j <= i when
     *                      causal);  out_i = sum_j att[i,j] m[i,j] v_j  (m: dropout factor)
     * backward:            datt[i,j] = m[i,j] dout_i.v_j;  dv_j += att[i,j] m[i,j] dout_i
     *                      ds[i,j] = att[i,j] (datt[i,j] - sum_l att[i,l] datt[i,l])
     *                      dq_i = scale sum_j ds[i,j] k_j;  dk_j += scale sum_i ds[i,j] q_i
     * The heads of a group add into its dk, dv in head order. */
    const int B = a->B, T = a->T, NH = a->heads, HS = a->head_dim;
    const int W = mt_qkv_width(a), per = a->heads / a->groups;
    const float *dout = mt_fp(dout_), *qkv = mt_fp(qkv_), *att = mt_fp(att_);
    float *dqkv = mt_fp(dqkv_), *datt = mt_fp(datt_);
    double scale = 1.0 / sqrt((double)HS);
    size_t th = (size_t)T * HS;
    double *dq = xcalloc(th, sizeof *dq); /* (T,HS) for one head */
    double *dk = xcalloc(th, sizeof *dk); /* (T,HS) for one group */
    double *dv = xcalloc(th, sizeof *dv);
    for (int b = 0; b < B; b++) {
        for (int g = 0; g < a->groups; g++) {
            const int ko = mt_k_offset(a, g), vo = ko + HS;
            memset(dk, 0, th * sizeof *dk);
            memset(dv, 0, th * sizeof *dv);
            for (int h = g * per; h < (g + 1) * per; h++) {
                const int qo = mt_q_offset(a, h);
                memset(dq, 0, th * sizeof *dq);
                for (int i = 0; i < T; i++) {
                    const int j0 = mt_attn_first_key(a, b, i), jmax = mt_attn_last_key(a, b, i);
                    const float *arow = att + (((size_t)b * NH + h) * T + i) * T;
                    float *da = datt + (((size_t)b * NH + h) * T + i) * T;
                    const float *dout_i = dout + ((size_t)b * T + i) * NH * HS + (size_t)h * HS;
                    const float *q = qkv + ((size_t)b * T + i) * W + qo;
                    double row = 0.0; /* sum_l att[i,l] datt[i,l] */
                    for (int j = 0; j < T; j++) {
                        if (j < j0 || j > jmax) {
                            da[j] = 0.0f;
                            continue;
                        }
                        const float *v = qkv + ((size_t)b * T + j) * W + vo;
                        const double m = attn_keep(a, b, h, i, j);
                        double dot = 0.0;
                        for (int d = 0; d < HS; d++) {
                            dot += (double)dout_i[d] * v[d];
                            dv[(size_t)j * HS + d] += (double)arow[j] * m * dout_i[d];
                        }
                        da[j] = (float)(dot * m);
                        row += (double)arow[j] * dot * m;
                    }
                    for (int j = j0; j <= jmax; j++) {
                        const float *k = qkv + ((size_t)b * T + j) * W + ko;
                        double ds = (double)arow[j] * ((double)da[j] - row);
                        for (int d = 0; d < HS; d++) {
                            dq[(size_t)i * HS + d] += scale * ds * k[d];
                            dk[(size_t)j * HS + d] += scale * ds * q[d];
                        }
                    }
                }
                for (int t = 0; t < T; t++)
                    for (int d = 0; d < HS; d++)
                        dqkv[((size_t)b * T + t) * W + qo + d] = (float)dq[(size_t)t * HS + d];
            }
            for (int t = 0; t < T; t++)
                for (int d = 0; d < HS; d++) {
                    dqkv[((size_t)b * T + t) * W + ko + d] = (float)dk[(size_t)t * HS + d];
                    dqkv[((size_t)b * T + t) * W + vo + d] = (float)dv[(size_t)t * HS + d];
                }
        }
    }
    free(dq);
    free(dk);
    free(dv);
}

/* Flash attention's maps as plain loops: the forward is attn_fwd's, with
 * the row's log-sum-exp saved instead of its probabilities; the backward takes
 * them back as exp(s - lse) from the saved (float) lse, the row sum D from
 * dout . out, all in double. out (B*(T-t0), heads*HS), lse (B*heads*(T-t0)) */
void mt_cpu_ref_flash_attn_fwd(mt_backend *be, mt_tensor out, mt_tensor lse, mt_tensor qkv,
                               const struct mt_attn_args *a)
{
    (void)be;
    attn_fwd(mt_fp(out), NULL, mt_fp(lse), mt_fp(qkv), a);
}

/* dqkv (B*T, width) overwritten; rowdot unused (D is a double here) */
void mt_cpu_ref_flash_attn_bwd(mt_backend *be, mt_tensor dqkv_, mt_tensor rowdot_, mt_tensor dout_,
                               mt_tensor qkv_, mt_tensor out_, mt_tensor lse_,
                               const struct mt_attn_args *a)
{
    (void)be, (void)rowdot_;
    /* p[i,j] = exp(scale q_i.k_j - lse_i);  D_i = dout_i . out_i
     * dp[i,j] = m[i,j] dout_i.v_j;  dv_j += p m dout_i;  ds = p (dp - D_i)
     * dq_i = scale sum_j ds k_j;  dk_j += scale sum_i ds q_i (heads in order) */
    const int B = a->B, T = a->T, NH = a->heads, HS = a->head_dim;
    const int W = mt_qkv_width(a), per = a->heads / a->groups;
    const float *dout = mt_fp(dout_), *qkv = mt_fp(qkv_), *out = mt_fp(out_), *lse = mt_fp(lse_);
    float *dqkv = mt_fp(dqkv_);
    double scale = 1.0 / sqrt((double)HS);
    size_t th = (size_t)T * HS;
    double *dq = xcalloc(HS, sizeof *dq), *dk = xcalloc(th, sizeof *dk), *dv = xcalloc(th, sizeof *dv);
    for (int b = 0; b < B; b++)
        for (int g = 0; g < a->groups; g++) {
            const int ko = mt_k_offset(a, g), vo = ko + HS;
            memset(dk, 0, th * sizeof *dk);
            memset(dv, 0, th * sizeof *dv);
            for (int h = g * per; h < (g + 1) * per; h++) {
                const int qo = mt_q_offset(a, h);
                for (int i = 0; i < T; i++) {
                    const int j0 = mt_attn_first_key(a, b, i), jmax = mt_attn_last_key(a, b, i);
                    const float *q = qkv + ((size_t)b * T + i) * W + qo;
                    const float *dout_i = dout + ((size_t)b * T + i) * NH * HS + (size_t)h * HS;
                    const float *out_i = out + ((size_t)b * T + i) * NH * HS + (size_t)h * HS;
                    const double l = lse[((size_t)b * NH + h) * T + i];
                    double D = 0.0;
                    for (int d = 0; d < HS; d++) D += (double)dout_i[d] * out_i[d];
                    memset(dq, 0, HS * sizeof *dq);
                    for (int j = j0; j <= jmax; j++) {
                        const float *k = qkv + ((size_t)b * T + j) * W + ko, *v = k + HS;
                        double qk = 0.0, dp = 0.0;
                        for (int d = 0; d < HS; d++) {
                            qk += (double)q[d] * k[d];
                            dp += (double)dout_i[d] * v[d];
                        }
                        const double p = exp(qk * scale - l), m = attn_keep(a, b, h, i, j);
                        const double ds = p * (dp * m - D);
                        for (int d = 0; d < HS; d++) {
                            dv[(size_t)j * HS + d] += p * m * dout_i[d];
                            dq[d] += scale * ds * k[d];
                            dk[(size_t)j * HS + d] += scale * ds * q[d];
                        }
                    }
                    for (int d = 0; d < HS; d++) dqkv[((size_t)b * T + i) * W + qo + d] = (float)dq[d];
                }
            }
            for (int t = 0; t < T; t++)
                for (int d = 0; d < HS; d++) {
                    dqkv[((size_t)b * T + t) * W + ko + d] = (float)dk[(size_t)t * HS + d];
                    dqkv[((size_t)b * T + t) * W + vo + d] = (float)dv[(size_t)t * HS + d];
                }
        }
    free(dq), free(dk), free(dv);
}

/* ---- softmax cross-entropy (vocab-parallel order, see backend.h) ---------------- */

/* rowmax (N); logits (N,ld), V_local columns used */
void mt_cpu_ref_xent_max(mt_backend *be, mt_tensor rowmax_, mt_tensor logits_, int V_local)
{
    (void)be;
    const int64_t N = logits_.rows, ld = logits_.cols;
    const float *logits = mt_fp(logits_);
    float *rowmax = mt_fp(rowmax_);
    for (int64_t n = 0; n < N; n++) {
        float mx = -INFINITY;
        for (int c = 0; c < V_local; c++) {
            float v = logits[n * ld + c];
            if (v > mx) mx = v;
        }
        rowmax[n] = mx;
    }
}

/* Column of this shard holding the target of a row, or -1 when another shard has it. */
static int local_target(int32_t target, int vocab_offset, int V_local)
{
    int c = target - vocab_offset;
    return c >= 0 && c < V_local ? c : -1;
}

/* sumexp, tgt (N); logits (N,ld); rowmax (N); targets (N) global ids */
void mt_cpu_ref_xent_sumexp(mt_backend *be, mt_tensor sumexp_, mt_tensor tgt_, mt_tensor logits_,
                            mt_tensor rowmax_, mt_tensor targets_, int V_local, int vocab_offset)
{
    (void)be;
    const int64_t N = logits_.rows, ld = logits_.cols;
    const float *logits = mt_fp(logits_), *rowmax = mt_fp(rowmax_);
    const int32_t *targets = mt_ip(targets_);
    float *sumexp = mt_fp(sumexp_), *tgt = mt_fp(tgt_);
    for (int64_t n = 0; n < N; n++) {
        const float *l = logits + n * ld;
        double s = 0.0;
        for (int c = 0; c < V_local; c++) s += exp((double)l[c] - rowmax[n]);
        sumexp[n] = (float)s;
        int c = local_target(targets[n], vocab_offset, V_local);
        tgt[n] = c >= 0 ? l[c] : 0.0f;
    }
}

/* losses, rowmax, sumexp, tgt (N) */
void mt_cpu_ref_xent_loss(mt_backend *be, mt_tensor losses_, mt_tensor rowmax_,
                          mt_tensor sumexp_, mt_tensor tgt_)
{
    (void)be;
    const int64_t N = mt_numel(losses_);
    const float *rowmax = mt_fp(rowmax_), *sumexp = mt_fp(sumexp_), *tgt = mt_fp(tgt_);
    float *losses = mt_fp(losses_);
    for (int64_t n = 0; n < N; n++)
        losses[n] = (float)(log((double)sumexp[n]) + rowmax[n] - tgt[n]);
}

/* dlogits (N,ld) overwritten in the V_local used columns, may alias logits (N,ld);
 * dlosses, rowmax, sumexp, targets (N) */
void mt_cpu_ref_xent_bwd(mt_backend *be, mt_tensor dlogits_, mt_tensor dlosses_,
                         mt_tensor logits_, mt_tensor rowmax_, mt_tensor sumexp_,
                         mt_tensor targets_, int V_local, int vocab_offset)
{
    (void)be;
    const int64_t N = logits_.rows, ld = logits_.cols;
    const float *dlosses = mt_fp(dlosses_), *logits = mt_fp(logits_);
    const float *rowmax = mt_fp(rowmax_), *sumexp = mt_fp(sumexp_);
    const int32_t *targets = mt_ip(targets_);
    float *dlogits = mt_fp(dlogits_);
    for (int64_t n = 0; n < N; n++) {
        int tc = local_target(targets[n], vocab_offset, V_local);
        for (int c = 0; c < V_local; c++) {
            size_t at = (size_t)(n * ld + c);
            double p = exp((double)logits[at] - rowmax[n]) / sumexp[n];
            dlogits[at] = (float)((p - (c == tc ? 1.0 : 0.0)) * dlosses[n]);
        }
    }
}

/* ---- optimizer and reductions ------------------------------------------------------ */

/* param, grad, m, v (n) */
void mt_cpu_ref_adamw(mt_backend *be, mt_tensor param_, mt_tensor grad_, mt_tensor m_,
                      mt_tensor v_, const struct mt_adamw_args *a, int zero_grad)
{
    (void)be;
    const size_t n = (size_t)mt_numel(param_);
    float *param = mt_fp(param_), *grad = mt_fp(grad_), *m = mt_fp(m_), *v = mt_fp(v_);
    double bc1 = 1.0 - pow(a->beta1, a->step); /* bias corrections */
    double bc2 = 1.0 - pow(a->beta2, a->step);
    for (size_t i = 0; i < n; i++) {
        double g = (double)grad[i] * a->grad_scale;
        double p = param[i] * (1.0 - (double)a->lr * a->weight_decay);
        double mi = a->beta1 * (double)m[i] + (1.0 - a->beta1) * g;
        double vi = a->beta2 * (double)v[i] + (1.0 - a->beta2) * g * g;
        p -= a->lr * (mi / bc1) / (sqrt(vi / bc2) + a->eps);
        param[i] = (float)p;
        m[i] = (float)mi;
        v[i] = (float)vi;
        if (zero_grad) grad[i] = 0.0f;
    }
}

/* param, grad, buf (n); buf unused when momentum is 0 */
void mt_cpu_ref_sgd(mt_backend *be, mt_tensor param_, mt_tensor grad_, mt_tensor buf_,
                    const struct mt_sgd_args *a, int zero_grad)
{
    (void)be;
    const size_t n = (size_t)mt_numel(param_);
    float *param = mt_fp(param_), *grad = mt_fp(grad_), *buf = mt_fp(buf_);
    for (size_t i = 0; i < n; i++) {
        double g = (double)grad[i] * a->grad_scale + (double)a->weight_decay * param[i];
        if (a->momentum != 0.0f) {
            g = (double)a->momentum * buf[i] + g;
            buf[i] = (float)g;
        }
        param[i] = (float)(param[i] - (double)a->lr * g);
        if (zero_grad) grad[i] = 0.0f;
    }
}

/* sum over n elements of x at a stride of (scale x)^2 + eps, in index order */
static float sq_line(const float *x, int64_t stride, int64_t n, double scale, double eps)
{
    double s = 0.0;
    for (int64_t k = 0; k < n; k++) {
        double g = (double)x[k * stride] * scale;
        s += g * g + eps;
    }
    return (float)s;
}

/* x (R,C): row and column sums of (scale x)^2 + eps */
void mt_cpu_ref_sq_sums(mt_backend *be, mt_tensor rows_, mt_tensor cols_, mt_tensor x_,
                        float scale, float eps)
{
    (void)be;
    const int64_t R = x_.rows, C = x_.cols;
    const float *x = mt_fp(x_);
    float *rows = mt_fp(rows_), *cols = mt_fp(cols_);
    for (int64_t i = 0; i < R; i++) rows[i] = sq_line(x + i * C, 1, C, scale, eps);
    for (int64_t j = 0; j < C; j++) cols[j] = sq_line(x + j, C, R, scale, eps);
}

void mt_cpu_ref_adafactor_precond(mt_backend *be, mt_tensor grad_, mt_tensor R_, mt_tensor C_,
                                  mt_tensor V_, const struct mt_adafactor_args *a)
{
    (void)be;
    const int64_t rows = grad_.rows, cols = grad_.cols;
    float *g = mt_fp(grad_);
    if (mt_numel(V_)) {
        float *V = mt_fp(V_);
        for (int64_t i = 0; i < rows * cols; i++) {
            double gi = (double)g[i] * a->scale;
            double v = (double)a->beta2t * V[i] + (1.0 - (double)a->beta2t) * (gi * gi + a->eps1);
            V[i] = (float)v;
            g[i] = (float)(gi / sqrt((double)V[i]));
        }
        return;
    }
    const float *R = mt_fp(R_), *C = mt_fp(C_);
    for (int64_t i = 0; i < rows; i++) {
        double r = 1.0 / sqrt((double)R[i] * a->inv_row_mean);
        for (int64_t j = 0; j < cols; j++)
            g[i * cols + j] = (float)((double)g[i * cols + j] * a->scale * r / sqrt((double)C[j]));
    }
}

void mt_cpu_ref_adafactor_apply(mt_backend *be, mt_tensor param_, mt_tensor upd_, mt_tensor M_,
                                const struct mt_adafactor_args *a, int zero_grad)
{
    (void)be;
    const size_t n = (size_t)mt_numel(param_);
    float *p = mt_fp(param_), *u = mt_fp(upd_), *M = mt_fp(M_);
    const double step = (double)a->lr * a->update_scale;
    for (size_t i = 0; i < n; i++) {
        double ui = step * u[i];
        if (a->beta1 != 0.0f) {
            ui = (double)a->beta1 * M[i] + (1.0 - (double)a->beta1) * ui;
            M[i] = (float)ui;
        }
        p[i] = (float)((double)p[i] - (double)a->weight_decay * a->lr * p[i] - ui);
        if (zero_grad) u[i] = 0.0f;
    }
}

/* sum of x (square = 0) or x^2 over x (n) in the fixed block order of
 * backend.h, which the fast backend reproduces bit for bit */
static double block_sum(mt_tensor x_, int square)
{
    const size_t n = (size_t)mt_numel(x_);
    const float *x = mt_fp(x_);
    double total = 0.0;
    for (size_t b0 = 0; b0 < n; b0 += MT_REDUCE_BLOCK) {
        size_t b1 = n - b0 < MT_REDUCE_BLOCK ? n : b0 + MT_REDUCE_BLOCK;
        double s = 0.0;
        for (size_t i = b0; i < b1; i++) s += square ? (double)x[i] * (double)x[i] : (double)x[i];
        total += s;
    }
    return total;
}

void mt_cpu_ref_sum_squares(mt_backend *be, double *out1, mt_tensor x)
{
    (void)be;
    out1[0] = block_sum(x, 1);
}

void mt_cpu_ref_sum(mt_backend *be, double *out1, mt_tensor x)
{
    (void)be;
    out1[0] = block_sum(x, 0);
}

/* out1[0] = number of inf or nan elements of x (n) */
void mt_cpu_ref_count_nonfinite(mt_backend *be, double *out1, mt_tensor x_)
{
    (void)be;
    const size_t n = (size_t)mt_numel(x_);
    const float *x = mt_fp(x_);
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) count++;
    out1[0] = (double)count;
}
