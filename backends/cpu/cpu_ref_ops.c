/* cpu_ref_ops.c: the "cpu-ref" compute members, the oracle for every test.
 *
 * Plain loops that follow the formulas in backend.h line by line: no
 * threads, no BLAS, no blocking. Inputs and outputs are float; every sum that
 * runs over a long dimension (GEMM k, layernorm mean/variance, softmax
 * normalisers, attention dot products, column sums) is accumulated in double,
 * and transcendental functions are evaluated in double, so the reference is
 * more accurate than anything it is compared with. Speed is not a goal.
 *
 * Shape letters: B batch, T sequence, C channels, NH heads, HS head size,
 * N = B*T rows, V_local vocabulary columns held by this shard, ld row stride
 * of the logits. */
#ifdef HAVE_CONFIG_H
#include "config.h" /* HAVE_BLAS and friends, when built by configure */
#endif
#include "cpu/cpu_internal.h"
#include "core/error.h"
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

/* Element (i, l) of op(X) for a row-major X with row stride ld. */
static float op_at(const float *x, enum mt_trans t, int ld, int i, int l)
{
    return t == MT_TRANS_N ? x[(size_t)i * ld + l] : x[(size_t)l * ld + i];
}

/* C = alpha * op(A) op(B) + beta * C for each batch entry.
 * op(A) (m,k), op(B) (k,n), C (m,n); ld and strides as in struct mt_gemm_args. */
void mt_cpu_ref_gemm(mt_backend *be, const struct mt_gemm_args *g)
{
    (void)be;
    for (int p = 0; p < g->batch; p++) {
        const float *a = g->a + p * g->stride_a;
        const float *b = g->b + p * g->stride_b;
        float *c = g->c + p * g->stride_c;
        for (int i = 0; i < g->m; i++) {
            for (int j = 0; j < g->n; j++) {
                double acc = 0.0;
                for (int l = 0; l < g->k; l++)
                    acc += (double)op_at(a, g->ta, g->lda, i, l) *
                           (double)op_at(b, g->tb, g->ldb, l, j);
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

/* out (B,T,C), tok (B,T), wte (V_local,C) this shard's rows, wpe (maxT,C) or NULL */
void mt_cpu_ref_embed_fwd(mt_backend *be, float *out, const int32_t *tok, const float *wte,
                          const float *wpe, int B, int T, int C, int pos0, int vocab_offset,
                          int V_local)
{
    (void)be;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            int row = tok[b * T + t] - vocab_offset; /* row of this shard, if any */
            int here = row >= 0 && row < V_local;
            for (int c = 0; c < C; c++) {
                float v = here ? wte[(size_t)row * C + c] : 0.0f;
                if (wpe) v += wpe[(size_t)(pos0 + t) * C + c];
                o[c] = v;
            }
        }
    }
}

/* dwte (V_local,C) +=, dwpe (maxT,C) += or NULL, dout (B,T,C), tok (B,T) */
void mt_cpu_ref_embed_bwd(mt_backend *be, float *dwte, float *dwpe, const float *dout,
                          const int32_t *tok, int B, int T, int C, int vocab_offset,
                          int V_local)
{
    (void)be;
    /* forward: out[b,t,:] = wte[tok[b,t] - vocab_offset, :] + wpe[t, :]
     * Rows are visited in (b,t) order, the order the contract fixes. */
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            int row = tok[b * T + t] - vocab_offset;
            if (row >= 0 && row < V_local)
                for (int c = 0; c < C; c++) dwte[(size_t)row * C + c] += d[c];
            if (dwpe)
                for (int c = 0; c < C; c++) dwpe[(size_t)t * C + c] += d[c];
        }
    }
}

/* ---- layernorm --------------------------------------------------------------- */

/* out, inp (N,C); mean, rstd (N); w, b (C) */
void mt_cpu_ref_layernorm_fwd(mt_backend *be, float *out, float *mean, float *rstd,
                              const float *inp, const float *w, const float *b, int N, int C)
{
    (void)be;
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double s = 0.0;
        for (int c = 0; c < C; c++) s += x[c];
        double mu = s / C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (x[c] - mu) * (x[c] - mu);
        double r = 1.0 / sqrt(ss / C + 1e-5); /* biased variance, as torch */
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = (float)((x[c] - mu) * r * w[c] + b[c]);
        mean[n] = (float)mu;
        rstd[n] = (float)r;
    }
}

/* dinp (N,C) +=, dw, db (C) +=; dout, inp (N,C); w (C); mean, rstd (N) */
void mt_cpu_ref_layernorm_bwd(mt_backend *be, float *dinp, float *dw, float *db,
                              const float *dout, const float *inp, const float *w,
                              const float *mean, const float *rstd, int N, int C)
{
    (void)be;
    /* forward: norm = (inp - mean) * rstd;  out = norm * w + b
     * dnorm = dout * w;  dinp += rstd * (dnorm - mean_c(dnorm) - norm * mean_c(dnorm * norm)) */
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

/* ---- bias, gelu, elementwise ----------------------------------------------------- */

/* y (N,C) +=  bias (C) broadcast over rows */
void mt_cpu_ref_bias_add(mt_backend *be, float *y, const float *bias, int N, int C)
{
    (void)be;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) y[(size_t)n * C + c] += bias[c];
}

/* dbias (C) += column sums of dy (N,C), rows in order */
void mt_cpu_ref_bias_bwd(mt_backend *be, float *dbias, const float *dy, int N, int C)
{
    (void)be;
    for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (int n = 0; n < N; n++) s += dy[(size_t)n * C + c];
        dbias[c] += (float)s;
    }
}

/* GELU, tanh approximation (Hendrycks & Gimpel 2016; torch approximate='tanh'). */
#define GELU_K 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_A 0.044715

/* out, inp (n) */
void mt_cpu_ref_gelu_fwd(mt_backend *be, float *out, const float *inp, size_t n)
{
    (void)be;
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        out[i] = (float)(0.5 * x * (1.0 + tanh(GELU_K * (x + GELU_A * x * x * x))));
    }
}

/* dinp = gelu'(inp) * dout, overwrites; dinp may alias dout. All (n). */
void mt_cpu_ref_gelu_bwd(mt_backend *be, float *dinp, const float *inp, const float *dout,
                         size_t n)
{
    (void)be;
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        double th = tanh(GELU_K * (x + GELU_A * x * x * x));
        double du = GELU_K * (1.0 + 3.0 * GELU_A * x * x); /* d(inner)/dx */
        double grad = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du;
        dinp[i] = (float)(grad * dout[i]); /* read dout[i] before the aliased write */
    }
}

/* out = a + b, all (n); out may alias a or b */
void mt_cpu_ref_add(mt_backend *be, float *out, const float *a, const float *b, size_t n)
{
    (void)be;
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* x (n) *= s */
void mt_cpu_ref_scale(mt_backend *be, float *x, float s, size_t n)
{
    (void)be;
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* ---- attention ----------------------------------------------------------------- */

/* Start of the q (which = 0), k (1) or v (2) vector of token (b,t), head h. */
static size_t qkv_at(int b, int t, int h, int which, int T, int NH, int HS)
{
    return ((((size_t)b * T + t) * NH + h) * 3 + which) * HS;
}

/* out (B,T-t0,NH,HS), att (B,NH,T-t0,T), qkv (B,T,NH,3,HS) */
void mt_cpu_ref_attn_fwd(mt_backend *be, float *out, float *att, const float *qkv, int B, int T,
                         int t0, int NH, int HS)
{
    (void)be;
    int Tq = T - t0; /* number of query positions */
    double scale = 1.0 / sqrt((double)HS);
    double *s = xcalloc((size_t)T, sizeof *s); /* one row of scores (T) */
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int i = 0; i < Tq; i++) {
                int t = t0 + i; /* absolute position of the query: it sees keys 0..t */
                const float *q = qkv + qkv_at(b, t, h, 0, T, NH, HS);
                double mx = -INFINITY;
                for (int j = 0; j <= t; j++) {
                    const float *k = qkv + qkv_at(b, j, h, 1, T, NH, HS);
                    double dot = 0.0;
                    for (int d = 0; d < HS; d++) dot += (double)q[d] * k[d];
                    s[j] = dot * scale;
                    if (s[j] > mx) mx = s[j];
                }
                double sum = 0.0;
                for (int j = 0; j <= t; j++) {
                    s[j] = exp(s[j] - mx);
                    sum += s[j];
                }
                float *a = att + (((size_t)b * NH + h) * Tq + i) * T;
                for (int j = 0; j < T; j++) a[j] = j <= t ? (float)(s[j] / sum) : 0.0f;
                float *o = out + (((size_t)b * Tq + i) * NH + h) * HS;
                for (int d = 0; d < HS; d++) {
                    double acc = 0.0;
                    for (int j = 0; j <= t; j++)
                        acc += s[j] / sum * qkv[qkv_at(b, j, h, 2, T, NH, HS) + d];
                    o[d] = (float)acc;
                }
            }
        }
    }
    free(s);
}

/* dqkv (B,T,NH,3,HS) overwritten, datt (B,NH,T,T) scratch, dout (B,T,NH,HS),
 * qkv (B,T,NH,3,HS), att (B,NH,T,T); t0 = 0 */
void mt_cpu_ref_attn_bwd(mt_backend *be, float *dqkv, float *datt, const float *dout,
                         const float *qkv, const float *att, int B, int T, int NH, int HS)
{
    (void)be;
    /* forward, per (b,h):  s[i,j] = scale * q_i.k_j (j <= i);  att = softmax_j(s);
     *                      out_i = sum_j att[i,j] v_j
     * backward:            datt[i,j] = dout_i.v_j;  dv_j = sum_i att[i,j] dout_i
     *                      ds[i,j] = att[i,j] (datt[i,j] - sum_l att[i,l] datt[i,l])
     *                      dq_i = scale sum_j ds[i,j] k_j;  dk_j = scale sum_i ds[i,j] q_i */
    double scale = 1.0 / sqrt((double)HS);
    size_t th = (size_t)T * HS;
    double *dq = xcalloc(th, sizeof *dq); /* (T,HS) for one (b,h) */
    double *dk = xcalloc(th, sizeof *dk);
    double *dv = xcalloc(th, sizeof *dv);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            memset(dq, 0, th * sizeof *dq);
            memset(dk, 0, th * sizeof *dk);
            memset(dv, 0, th * sizeof *dv);
            for (int i = 0; i < T; i++) {
                const float *a = att + (((size_t)b * NH + h) * T + i) * T;
                float *da = datt + (((size_t)b * NH + h) * T + i) * T;
                const float *dout_i = dout + (((size_t)b * T + i) * NH + h) * HS;
                const float *q = qkv + qkv_at(b, i, h, 0, T, NH, HS);
                double row = 0.0; /* sum_l att[i,l] datt[i,l] */
                for (int j = 0; j < T; j++) {
                    if (j > i) {
                        da[j] = 0.0f;
                        continue;
                    }
                    const float *v = qkv + qkv_at(b, j, h, 2, T, NH, HS);
                    double dot = 0.0;
                    for (int d = 0; d < HS; d++) {
                        dot += (double)dout_i[d] * v[d];
                        dv[(size_t)j * HS + d] += (double)a[j] * dout_i[d];
                    }
                    da[j] = (float)dot;
                    row += (double)a[j] * dot;
                }
                for (int j = 0; j <= i; j++) {
                    const float *k = qkv + qkv_at(b, j, h, 1, T, NH, HS);
                    double ds = (double)a[j] * ((double)da[j] - row);
                    for (int d = 0; d < HS; d++) {
                        dq[(size_t)i * HS + d] += scale * ds * k[d];
                        dk[(size_t)j * HS + d] += scale * ds * q[d];
                    }
                }
            }
            for (int t = 0; t < T; t++) {
                for (int d = 0; d < HS; d++) {
                    dqkv[qkv_at(b, t, h, 0, T, NH, HS) + d] = (float)dq[(size_t)t * HS + d];
                    dqkv[qkv_at(b, t, h, 1, T, NH, HS) + d] = (float)dk[(size_t)t * HS + d];
                    dqkv[qkv_at(b, t, h, 2, T, NH, HS) + d] = (float)dv[(size_t)t * HS + d];
                }
            }
        }
    }
    free(dq);
    free(dk);
    free(dv);
}

/* ---- softmax cross-entropy (vocab-parallel order, see backend.h) ---------------- */

/* rowmax (N); logits (N,ld), V_local columns used */
void mt_cpu_ref_xent_max(mt_backend *be, float *rowmax, const float *logits, int N, int V_local,
                         int ld)
{
    (void)be;
    for (int n = 0; n < N; n++) {
        float mx = -INFINITY;
        for (int c = 0; c < V_local; c++) {
            float v = logits[(size_t)n * ld + c];
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
void mt_cpu_ref_xent_sumexp(mt_backend *be, float *sumexp, float *tgt, const float *logits,
                            const float *rowmax, const int32_t *targets, int N, int V_local,
                            int vocab_offset, int ld)
{
    (void)be;
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * ld;
        double s = 0.0;
        for (int c = 0; c < V_local; c++) s += exp((double)l[c] - rowmax[n]);
        sumexp[n] = (float)s;
        int c = local_target(targets[n], vocab_offset, V_local);
        tgt[n] = c >= 0 ? l[c] : 0.0f;
    }
}

/* losses, rowmax, sumexp, tgt (N) */
void mt_cpu_ref_xent_loss(mt_backend *be, float *losses, const float *rowmax,
                          const float *sumexp, const float *tgt, int N)
{
    (void)be;
    for (int n = 0; n < N; n++)
        losses[n] = (float)(log((double)sumexp[n]) + rowmax[n] - tgt[n]);
}

/* dlogits (N,ld) overwritten in the V_local used columns, may alias logits (N,ld);
 * dlosses, rowmax, sumexp, targets (N) */
void mt_cpu_ref_xent_bwd(mt_backend *be, float *dlogits, const float *dlosses,
                         const float *logits, const float *rowmax, const float *sumexp,
                         const int32_t *targets, int N, int V_local, int vocab_offset, int ld)
{
    (void)be;
    for (int n = 0; n < N; n++) {
        int tc = local_target(targets[n], vocab_offset, V_local);
        for (int c = 0; c < V_local; c++) {
            size_t at = (size_t)n * ld + c;
            double p = exp((double)logits[at] - rowmax[n]) / sumexp[n];
            dlogits[at] = (float)((p - (c == tc ? 1.0 : 0.0)) * dlosses[n]);
        }
    }
}

/* ---- optimizer and reductions ------------------------------------------------------ */

/* param, grad, m, v (n) */
void mt_cpu_ref_adamw(mt_backend *be, float *param, float *grad, float *m, float *v, size_t n,
                      const struct mt_adamw_args *a, int zero_grad)
{
    (void)be;
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

/* out1[0] = sum x^2 over x (n); the fixed block order of backend.h, which the
 * fast backend reproduces bit for bit. */
void mt_cpu_ref_sum_squares(mt_backend *be, double *out1, const float *x, size_t n)
{
    (void)be;
    double total = 0.0;
    for (size_t b0 = 0; b0 < n; b0 += MT_REDUCE_BLOCK) {
        size_t b1 = n - b0 < MT_REDUCE_BLOCK ? n : b0 + MT_REDUCE_BLOCK;
        double s = 0.0;
        for (size_t i = b0; i < b1; i++) s += (double)x[i] * (double)x[i];
        total += s;
    }
    out1[0] = total;
}

/* out1[0] = number of inf or nan elements of x (n) */
void mt_cpu_ref_count_nonfinite(mt_backend *be, double *out1, const float *x, size_t n)
{
    (void)be;
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) count++;
    out1[0] = (double)count;
}
