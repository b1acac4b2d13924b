/* kernels.cu: the compute members of the CUDA backend (struct mt_backend_i).
 *
 * First version, written for correctness against cpu-ref rather than speed:
 * the arithmetic mirrors backends/cpu/cpu_ref_ops.c (double accumulators
 * where the reference uses them). Everything runs on the backend's stream.
 * Determinism (doc/backend-api.md): no atomics anywhere. Column reductions
 * (bias_bwd, layernorm dw/db, embed_bwd) give each output element one
 * thread that sums the rows in index order; in-row reductions use a fixed
 * shared-memory tree; sum_squares / count_nonfinite sum each MT_REDUCE_BLOCK
 * chunk sequentially in one thread and one thread adds the chunk sums in
 * order (bit-identical to cpu-ref: unfused multiply and add). */
#include "cuda/cuda_common.cuh"
#include <math.h>

#define NT 256 /* threads per block; a power of two (the reduction trees need it) */

static unsigned grid_for(size_t n)
{
    size_t g = (n + NT - 1) / NT;
    if (g > (1u << 20)) g = 1u << 20; /* grid-stride loops cover the rest */
    return (unsigned)(g ? g : 1);
}

#define STREAM(be) (mt_cuda_ctx_of(be)->stream)

/* Fixed-order block reductions over NT threads (all threads must call). */
__device__ static double block_sum(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = NT / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] = sh[threadIdx.x] + sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

__device__ static double block_max(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = NT / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s && sh[threadIdx.x + s] > sh[threadIdx.x])
            sh[threadIdx.x] = sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* ---- embedding ------------------------------------------------------------------ */

__global__ static void k_embed_fwd(float *out, const int32_t *tok, const float *wte,
                                   const float *wpe, int T, int C, int pos0, int off, int V,
                                   size_t total)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / C;
        int c = (int)(i % C);
        int t = (int)(n % T);
        int row = tok[n] - off;
        float v = (row >= 0 && row < V) ? wte[(size_t)row * C + c] : 0.0f;
        if (wpe) v += wpe[(size_t)(pos0 + t) * C + c];
        out[i] = v;
    }
}

void mt_cuda_embed_fwd(mt_backend *be, float *out, const int32_t *tok, const float *wte,
                       const float *wpe, int B, int T, int C, int pos0, int vocab_offset,
                       int V_local)
{
    size_t total = (size_t)B * T * C;
    k_embed_fwd<<<grid_for(total), NT, 0, STREAM(be)>>>(out, tok, wte, wpe, T, C, pos0,
                                                       vocab_offset, V_local, total);
    CUDA_CHECK_LAUNCH();
}

/* one block per wte row; each thread owns columns and scans the tokens in
 * (b,t) order, adding into the running value as the reference does */
__global__ static void k_embed_bwd_wte(float *dwte, const float *dout, const int32_t *tok,
                                       int N, int C, int off)
{
    int row = blockIdx.x;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = dwte[(size_t)row * C + c];
        for (int n = 0; n < N; n++)
            if (tok[n] - off == row) acc += dout[(size_t)n * C + c];
        dwte[(size_t)row * C + c] = acc;
    }
}

__global__ static void k_embed_bwd_wpe(float *dwpe, const float *dout, int B, int T, int C)
{
    size_t total = (size_t)T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        float acc = dwpe[i];
        for (int b = 0; b < B; b++) acc += dout[(size_t)b * total + i];
        dwpe[i] = acc;
    }
}

void mt_cuda_embed_bwd(mt_backend *be, float *dwte, float *dwpe, const float *dout,
                       const int32_t *tok, int B, int T, int C, int vocab_offset, int V_local)
{
    if (V_local > 0) {
        k_embed_bwd_wte<<<V_local, NT, 0, STREAM(be)>>>(dwte, dout, tok, B * T, C,
                                                       vocab_offset);
        CUDA_CHECK_LAUNCH();
    }
    if (dwpe) {
        k_embed_bwd_wpe<<<grid_for((size_t)T * C), NT, 0, STREAM(be)>>>(dwpe, dout, B, T, C);
        CUDA_CHECK_LAUNCH();
    }
}

/* ---- layernorm ------------------------------------------------------------------- */

__global__ static void k_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp,
                                       const float *w, const float *b, int C)
{
    __shared__ double sh[NT];
    size_t n = blockIdx.x;
    const float *x = inp + n * C;
    double s = 0.0;
    for (int c = threadIdx.x; c < C; c += NT) s += x[c];
    double mu = block_sum(s, sh) / C;
    double ss = 0.0;
    for (int c = threadIdx.x; c < C; c += NT) ss += (x[c] - mu) * (x[c] - mu);
    double r = 1.0 / sqrt(block_sum(ss, sh) / C + 1e-5);
    float *o = out + n * C;
    for (int c = threadIdx.x; c < C; c += NT) o[c] = (float)((x[c] - mu) * r * w[c] + b[c]);
    if (threadIdx.x == 0) {
        mean[n] = (float)mu;
        rstd[n] = (float)r;
    }
}

void mt_cuda_layernorm_fwd(mt_backend *be, float *out, float *mean, float *rstd,
                           const float *inp, const float *w, const float *b, int N, int C)
{
    k_layernorm_fwd<<<N, NT, 0, STREAM(be)>>>(out, mean, rstd, inp, w, b, C);
    CUDA_CHECK_LAUNCH();
}

/* dinp += per row (one block per row) */
__global__ static void k_layernorm_bwd_dinp(float *dinp, const float *dout, const float *inp,
                                            const float *w, const float *mean,
                                            const float *rstd, int C)
{
    __shared__ double sh[NT];
    size_t n = blockIdx.x;
    const float *x = inp + n * C, *d = dout + n * C;
    double mu = mean[n], r = rstd[n];
    double s1 = 0.0, s2 = 0.0;
    for (int c = threadIdx.x; c < C; c += NT) {
        double norm = (x[c] - mu) * r;
        double dn = (double)d[c] * w[c];
        s1 += dn;
        s2 += dn * norm;
    }
    double mean_dn = block_sum(s1, sh) / C;
    double mean_dn_norm = block_sum(s2, sh) / C;
    float *di = dinp + n * C;
    for (int c = threadIdx.x; c < C; c += NT) {
        double norm = (x[c] - mu) * r;
        double dn = (double)d[c] * w[c];
        di[c] += (float)(r * (dn - mean_dn - norm * mean_dn_norm));
    }
}

/* dw, db += column sums, one thread per column, rows in order */
__global__ static void k_layernorm_bwd_dwdb(float *dw, float *db, const float *dout,
                                            const float *inp, const float *mean,
                                            const float *rstd, int N, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double aw = 0.0, ab = 0.0;
    for (int n = 0; n < N; n++) {
        double norm = (inp[(size_t)n * C + c] - (double)mean[n]) * (double)rstd[n];
        float d = dout[(size_t)n * C + c];
        aw += (double)d * norm;
        ab += d;
    }
    dw[c] += (float)aw;
    db[c] += (float)ab;
}

void mt_cuda_layernorm_bwd(mt_backend *be, float *dinp, float *dw, float *db,
                           const float *dout, const float *inp, const float *w,
                           const float *mean, const float *rstd, int N, int C)
{
    k_layernorm_bwd_dinp<<<N, NT, 0, STREAM(be)>>>(dinp, dout, inp, w, mean, rstd, C);
    CUDA_CHECK_LAUNCH();
    k_layernorm_bwd_dwdb<<<(C + NT - 1) / NT, NT, 0, STREAM(be)>>>(dw, db, dout, inp, mean,
                                                                   rstd, N, C);
    CUDA_CHECK_LAUNCH();
}

/* ---- bias, gelu, elementwise ---------------------------------------------------------- */

__global__ static void k_bias_add(float *y, const float *bias, int C, size_t total)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] += bias[i % C];
}

void mt_cuda_bias_add(mt_backend *be, float *y, const float *bias, int N, int C)
{
    size_t total = (size_t)N * C;
    k_bias_add<<<grid_for(total), NT, 0, STREAM(be)>>>(y, bias, C, total);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_bias_bwd(float *dbias, const float *dy, int N, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0.0;
    for (int n = 0; n < N; n++) s += dy[(size_t)n * C + c];
    dbias[c] += (float)s;
}

void mt_cuda_bias_bwd(mt_backend *be, float *dbias, const float *dy, int N, int C)
{
    k_bias_bwd<<<(C + NT - 1) / NT, NT, 0, STREAM(be)>>>(dbias, dy, N, C);
    CUDA_CHECK_LAUNCH();
}

#define GELU_K 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_A 0.044715

__global__ static void k_gelu_fwd(float *out, const float *inp, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        double x = inp[i];
        out[i] = (float)(0.5 * x * (1.0 + tanh(GELU_K * (x + GELU_A * x * x * x))));
    }
}

void mt_cuda_gelu_fwd(mt_backend *be, float *out, const float *inp, size_t n)
{
    k_gelu_fwd<<<grid_for(n), NT, 0, STREAM(be)>>>(out, inp, n);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_gelu_bwd(float *dinp, const float *inp, const float *dout, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        double x = inp[i];
        double th = tanh(GELU_K * (x + GELU_A * x * x * x));
        double du = GELU_K * (1.0 + 3.0 * GELU_A * x * x);
        double grad = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du;
        dinp[i] = (float)(grad * dout[i]); /* dout read before the (aliased) write */
    }
}

void mt_cuda_gelu_bwd(mt_backend *be, float *dinp, const float *inp, const float *dout,
                      size_t n)
{
    k_gelu_bwd<<<grid_for(n), NT, 0, STREAM(be)>>>(dinp, inp, dout, n);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_add(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

void mt_cuda_add(mt_backend *be, float *out, const float *a, const float *b, size_t n)
{
    k_add<<<grid_for(n), NT, 0, STREAM(be)>>>(out, a, b, n);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_scale(float *x, float s, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] *= s;
}

void mt_cuda_scale(mt_backend *be, float *x, float s, size_t n)
{
    k_scale<<<grid_for(n), NT, 0, STREAM(be)>>>(x, s, n);
    CUDA_CHECK_LAUNCH();
}

/* ---- attention ------------------------------------------------------------------------ */

__device__ static size_t qkv_at(int b, int t, int h, int which, int T, int NH, int HS)
{
    return ((((size_t)b * T + t) * NH + h) * 3 + which) * HS;
}

/* one block per (b, h, query i); the row of scores lives in dynamic shared
 * memory (T doubles) */
__global__ static void k_attn_fwd(float *out, float *att, const float *qkv, int T, int t0,
                                  int NH, int HS)
{
    extern __shared__ double s[]; /* T */
    __shared__ double sh[NT];
    int Tq = T - t0;
    int i = blockIdx.x % Tq;
    int h = (blockIdx.x / Tq) % NH;
    int b = blockIdx.x / (Tq * NH);
    int t = t0 + i;
    double scale = 1.0 / sqrt((double)HS);
    const float *q = qkv + qkv_at(b, t, h, 0, T, NH, HS);
    double mx = -INFINITY;
    for (int j = threadIdx.x; j <= t; j += NT) {
        const float *k = qkv + qkv_at(b, j, h, 1, T, NH, HS);
        double dot = 0.0;
        for (int d = 0; d < HS; d++) dot += (double)q[d] * k[d];
        s[j] = dot * scale;
        if (s[j] > mx) mx = s[j];
    }
    mx = block_max(mx, sh);
    double sum = 0.0;
    for (int j = threadIdx.x; j <= t; j += NT) {
        s[j] = exp(s[j] - mx);
        sum += s[j];
    }
    sum = block_sum(sum, sh); /* also a barrier: s[] complete */
    float *a = att + (((size_t)b * NH + h) * Tq + i) * T;
    for (int j = threadIdx.x; j < T; j += NT) a[j] = j <= t ? (float)(s[j] / sum) : 0.0f;
    float *o = out + (((size_t)b * Tq + i) * NH + h) * HS;
    for (int d = threadIdx.x; d < HS; d += NT) {
        double acc = 0.0;
        for (int j = 0; j <= t; j++) acc += s[j] / sum * qkv[qkv_at(b, j, h, 2, T, NH, HS) + d];
        o[d] = (float)acc;
    }
}

static void attn_smem(const void *kernel, size_t bytes)
{
    static size_t opted; /* largest dynamic size asked for so far (one device) */
    if (bytes <= 48 * 1024 || bytes <= opted) return;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)bytes));
    opted = bytes;
}

void mt_cuda_attn_fwd(mt_backend *be, float *out, float *att, const float *qkv, int B, int T,
                      int t0, int NH, int HS)
{
    size_t smem = (size_t)T * sizeof(double);
    attn_smem((const void *)k_attn_fwd, smem);
    k_attn_fwd<<<B * NH * (T - t0), NT, smem, STREAM(be)>>>(out, att, qkv, T, t0, NH, HS);
    CUDA_CHECK_LAUNCH();
}

/* pass 1, one block per (b, h, i): datt[i,j] = dout_i . v_j (j <= i, else 0),
 * rowsum[i] = sum_j att[i,j] datt[i,j], dq_i = scale sum_j ds[i,j] k_j */
__global__ static void k_attn_bwd_q(float *dqkv, float *datt, double *rowsum, const float *dout,
                                    const float *qkv, const float *att, int T, int NH, int HS)
{
    __shared__ double sh[NT];
    int i = blockIdx.x % T;
    int h = (blockIdx.x / T) % NH;
    int b = blockIdx.x / (T * NH);
    double scale = 1.0 / sqrt((double)HS);
    size_t rowoff = (((size_t)b * NH + h) * T + i) * T;
    const float *a = att + rowoff;
    float *da = datt + rowoff;
    const float *dout_i = dout + (((size_t)b * T + i) * NH + h) * HS;
    double row = 0.0;
    for (int j = threadIdx.x; j < T; j += NT) {
        if (j > i) {
            da[j] = 0.0f;
            continue;
        }
        const float *v = qkv + qkv_at(b, j, h, 2, T, NH, HS);
        double dot = 0.0;
        for (int d = 0; d < HS; d++) dot += (double)dout_i[d] * v[d];
        da[j] = (float)dot;
        row += (double)a[j] * dot;
    }
    row = block_sum(row, sh); /* barrier: da[] written by this block is visible */
    if (threadIdx.x == 0) rowsum[((size_t)b * NH + h) * T + i] = row;
    float *dq = dqkv + qkv_at(b, i, h, 0, T, NH, HS);
    for (int d = threadIdx.x; d < HS; d += NT) {
        double acc = 0.0;
        for (int j = 0; j <= i; j++) {
            double ds = (double)a[j] * ((double)da[j] - row);
            acc += scale * ds * qkv[qkv_at(b, j, h, 1, T, NH, HS) + d];
        }
        dq[d] = (float)acc;
    }
}

/* pass 2, one block per (b, h, key j): dk_j = scale sum_{i>=j} ds[i,j] q_i,
 * dv_j = sum_{i>=j} att[i,j] dout_i (i in order) */
__global__ static void k_attn_bwd_kv(float *dqkv, const float *datt, const double *rowsum,
                                     const float *dout, const float *qkv, const float *att,
                                     int T, int NH, int HS)
{
    int j = blockIdx.x % T;
    int h = (blockIdx.x / T) % NH;
    int b = blockIdx.x / (T * NH);
    double scale = 1.0 / sqrt((double)HS);
    size_t bh = (size_t)b * NH + h;
    float *dk = dqkv + qkv_at(b, j, h, 1, T, NH, HS);
    float *dv = dqkv + qkv_at(b, j, h, 2, T, NH, HS);
    for (int d = threadIdx.x; d < HS; d += blockDim.x) {
        double ak = 0.0, av = 0.0;
        for (int i = j; i < T; i++) {
            size_t at = (bh * T + i) * T + j;
            double ds = (double)att[at] * ((double)datt[at] - rowsum[bh * T + i]);
            ak += scale * ds * qkv[qkv_at(b, i, h, 0, T, NH, HS) + d];
            av += (double)att[at] * dout[(((size_t)b * T + i) * NH + h) * HS + d];
        }
        dk[d] = (float)ak;
        dv[d] = (float)av;
    }
}

void mt_cuda_attn_bwd(mt_backend *be, float *dqkv, float *datt, const float *dout,
                      const float *qkv, const float *att, int B, int T, int NH, int HS)
{
    double *rowsum = (double *)mt_cuda_scratch(be, (size_t)B * NH * T * sizeof(double));
    int blocks = B * NH * T;
    k_attn_bwd_q<<<blocks, NT, 0, STREAM(be)>>>(dqkv, datt, rowsum, dout, qkv, att, T, NH, HS);
    CUDA_CHECK_LAUNCH();
    int nt = HS < NT ? ((HS + 31) / 32) * 32 : NT;
    k_attn_bwd_kv<<<blocks, nt, 0, STREAM(be)>>>(dqkv, datt, rowsum, dout, qkv, att, T, NH, HS);
    CUDA_CHECK_LAUNCH();
}

/* ---- softmax cross-entropy over a vocabulary shard ----------------------------------- */

__global__ static void k_xent_max(float *rowmax, const float *logits, int V, int ld)
{
    __shared__ double sh[NT];
    const float *l = logits + (size_t)blockIdx.x * ld;
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < V; c += NT)
        if (l[c] > mx) mx = l[c];
    double r = block_max(mx, sh);
    if (threadIdx.x == 0) rowmax[blockIdx.x] = (float)r;
}

void mt_cuda_xent_max(mt_backend *be, float *rowmax, const float *logits, int N, int V_local,
                      int ld)
{
    k_xent_max<<<N, NT, 0, STREAM(be)>>>(rowmax, logits, V_local, ld);
    CUDA_CHECK_LAUNCH();
}

__device__ static int local_target(int32_t target, int off, int V)
{
    int c = target - off;
    return c >= 0 && c < V ? c : -1;
}

__global__ static void k_xent_sumexp(float *sumexp, float *tgt, const float *logits,
                                     const float *rowmax, const int32_t *targets, int V, int off,
                                     int ld)
{
    __shared__ double sh[NT];
    int n = blockIdx.x;
    const float *l = logits + (size_t)n * ld;
    double mx = rowmax[n], s = 0.0;
    for (int c = threadIdx.x; c < V; c += NT) s += exp((double)l[c] - mx);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) {
        sumexp[n] = (float)s;
        int c = local_target(targets[n], off, V);
        tgt[n] = c >= 0 ? l[c] : 0.0f;
    }
}

void mt_cuda_xent_sumexp(mt_backend *be, float *sumexp, float *tgt, const float *logits,
                         const float *rowmax, const int32_t *targets, int N, int V_local,
                         int vocab_offset, int ld)
{
    k_xent_sumexp<<<N, NT, 0, STREAM(be)>>>(sumexp, tgt, logits, rowmax, targets, V_local,
                                           vocab_offset, ld);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_xent_loss(float *losses, const float *rowmax, const float *sumexp,
                                   const float *tgt, int N)
{
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n < N) losses[n] = (float)(log((double)sumexp[n]) + rowmax[n] - tgt[n]);
}

void mt_cuda_xent_loss(mt_backend *be, float *losses, const float *rowmax, const float *sumexp,
                       const float *tgt, int N)
{
    k_xent_loss<<<(N + NT - 1) / NT, NT, 0, STREAM(be)>>>(losses, rowmax, sumexp, tgt, N);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_xent_bwd(float *dlogits, const float *dlosses, const float *logits,
                                  const float *rowmax, const float *sumexp,
                                  const int32_t *targets, int V, int off, int ld, size_t total)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / V;
        int c = (int)(i % V);
        size_t at = n * ld + c;
        int tc = local_target(targets[n], off, V);
        double p = exp((double)logits[at] - rowmax[n]) / sumexp[n];
        dlogits[at] = (float)((p - (c == tc ? 1.0 : 0.0)) * dlosses[n]);
    }
}

void mt_cuda_xent_bwd(mt_backend *be, float *dlogits, const float *dlosses, const float *logits,
                      const float *rowmax, const float *sumexp, const int32_t *targets, int N,
                      int V_local, int vocab_offset, int ld)
{
    size_t total = (size_t)N * V_local;
    k_xent_bwd<<<grid_for(total), NT, 0, STREAM(be)>>>(dlogits, dlosses, logits, rowmax, sumexp,
                                                      targets, V_local, vocab_offset, ld, total);
    CUDA_CHECK_LAUNCH();
}

/* ---- optimizer and reductions -------------------------------------------------------- */

struct adamw_k {
    double lr, beta1, beta2, eps, wd, gscale, bc1, bc2;
};

__global__ static void k_adamw(float *param, float *grad, float *m, float *v, size_t n,
                               struct adamw_k a, int zero_grad)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        double g = (double)grad[i] * a.gscale;
        double p = param[i] * (1.0 - a.lr * a.wd);
        double mi = a.beta1 * (double)m[i] + (1.0 - a.beta1) * g;
        double vi = a.beta2 * (double)v[i] + (1.0 - a.beta2) * g * g;
        p -= a.lr * (mi / a.bc1) / (sqrt(vi / a.bc2) + a.eps);
        param[i] = (float)p;
        m[i] = (float)mi;
        v[i] = (float)vi;
        if (zero_grad) grad[i] = 0.0f;
    }
}

void mt_cuda_adamw(mt_backend *be, float *param, float *grad, float *m, float *v, size_t n,
                   const struct mt_adamw_args *a, int zero_grad)
{
    /* the same float -> double conversions as cpu-ref */
    struct adamw_k k;
    k.lr = a->lr;
    k.beta1 = a->beta1;
    k.beta2 = a->beta2;
    k.eps = a->eps;
    k.wd = a->weight_decay; /* (1 - lr * wd) is formed on the device */
    k.gscale = a->grad_scale;
    k.bc1 = 1.0 - pow(a->beta1, a->step);
    k.bc2 = 1.0 - pow(a->beta2, a->step);
    k_adamw<<<grid_for(n), NT, 0, STREAM(be)>>>(param, grad, m, v, n, k, zero_grad);
    CUDA_CHECK_LAUNCH();
}

/* one thread per MT_REDUCE_BLOCK chunk, summed sequentially in double;
 * __dmul_rn / __dadd_rn keep the compiler from fusing into an FMA, so the
 * bits equal cpu-ref's */
__global__ static void k_sumsq_chunks(double *partial, const float *x, size_t n, size_t nchunks)
{
    size_t ch = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (ch >= nchunks) return;
    size_t b0 = ch * MT_REDUCE_BLOCK, b1 = b0 + MT_REDUCE_BLOCK < n ? b0 + MT_REDUCE_BLOCK : n;
    double s = 0.0;
    for (size_t i = b0; i < b1; i++) s = __dadd_rn(s, __dmul_rn((double)x[i], (double)x[i]));
    partial[ch] = s;
}

__global__ static void k_count_chunks(double *partial, const float *x, size_t n, size_t nchunks)
{
    size_t ch = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (ch >= nchunks) return;
    size_t b0 = ch * MT_REDUCE_BLOCK, b1 = b0 + MT_REDUCE_BLOCK < n ? b0 + MT_REDUCE_BLOCK : n;
    double s = 0.0;
    for (size_t i = b0; i < b1; i++)
        if (!isfinite(x[i])) s += 1.0;
    partial[ch] = s;
}

/* the chunk sums added in index order by one thread */
__global__ static void k_sum_in_order(double *out1, const double *partial, size_t nchunks)
{
    double total = 0.0;
    for (size_t i = 0; i < nchunks; i++) total = __dadd_rn(total, partial[i]);
    out1[0] = total;
}

static void chunked_reduce(mt_backend *be, double *out1, const float *x, size_t n, int count)
{
    size_t nchunks = (n + MT_REDUCE_BLOCK - 1) / MT_REDUCE_BLOCK;
    if (nchunks == 0) {
        CUDA_CHECK(cudaMemsetAsync(out1, 0, sizeof(double), STREAM(be)));
        return;
    }
    double *partial = (double *)mt_cuda_scratch(be, nchunks * sizeof(double));
    unsigned g = (unsigned)((nchunks + NT - 1) / NT);
    if (count) k_count_chunks<<<g, NT, 0, STREAM(be)>>>(partial, x, n, nchunks);
    else k_sumsq_chunks<<<g, NT, 0, STREAM(be)>>>(partial, x, n, nchunks);
    CUDA_CHECK_LAUNCH();
    k_sum_in_order<<<1, 1, 0, STREAM(be)>>>(out1, partial, nchunks);
    CUDA_CHECK_LAUNCH();
}

void mt_cuda_sum_squares(mt_backend *be, double *out1, const float *x, size_t n)
{
    chunked_reduce(be, out1, x, n, 0);
}

void mt_cuda_count_nonfinite(mt_backend *be, double *out1, const float *x, size_t n)
{
    chunked_reduce(be, out1, x, n, 1);
}

/* ---- GEMM helper ------------------------------------------------------------------- */

/* C = beta * C over batch (m x n, ldc) matrices; beta = 0 writes zeros even
 * over NaN. Used for k = 0, where op(A) op(B) is empty. */
__global__ static void k_scale_matrix(float *c, int m, int n, int ldc, int64_t stride_c,
                                      float beta, size_t total)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t p = i / ((size_t)m * n), r = (i / n) % m, col = i % n;
        float *x = c + p * stride_c + r * ldc + col;
        *x = beta == 0.0f ? 0.0f : beta * *x;
    }
}

void mt_cuda_gemm_beta_only(mt_backend *be, float *c, int m, int n, int ldc, int64_t stride_c,
                            int batch, float beta)
{
    size_t total = (size_t)m * n * (batch > 1 ? batch : 1);
    if (!total || beta == 1.0f) return;
    k_scale_matrix<<<grid_for(total), NT, 0, STREAM(be)>>>(c, m, n, ldc, stride_c, beta, total);
    CUDA_CHECK_LAUNCH();
}
