/* kernels.cu: the compute members of the CUDA backend (struct mt_backend_i).
 *
 * Written for agreement with cpu-ref first and speed second: the arithmetic
 * mirrors backends/cpu/cpu_ref_ops.c, with double accumulators where the
 * reference uses them; attention leans on cuBLAS (see there). Everything
 * runs on the backend's stream. Determinism (doc/backend-api.md): no atomics
 * anywhere. Column reductions (bias_bwd, layernorm dw/db) sum fixed chunks of
 * rows in order and then the chunks in order; embed_bwd adds each token's
 * rows in position order; in-row reductions use a fixed shared-memory tree;
 * sum_squares / count_nonfinite sum each MT_REDUCE_BLOCK chunk sequentially
 * in one thread and one thread adds the chunk sums in order (bit-identical to
 * cpu-ref: unfused multiply and add).
 *
 * Launches are written MT_LAUNCH(kernel, grid, block, smem, stream)(args) so
 * that the same source runs on the CPU emulation (emu/cuda_emu.h), which
 * checks the launch configuration and, at every __syncthreads(), switches
 * the threads of a block as the device would interleave them. */
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
    MT_LAUNCH(k_embed_fwd, grid_for(total), NT, 0, STREAM(be))(out, tok, wte, wpe, T, C, pos0,
                                                       vocab_offset, V_local, total);
    CUDA_CHECK_LAUNCH();
}

/* dwte: one block per position n that holds the first occurrence of its
 * token (k_embed_first marks them); the block adds the dout rows of every
 * occurrence of that token into the wte row, in position order, as the
 * reference does. No atomics, and O(N^2) token comparisons instead of a
 * pass over the whole vocabulary per row. */
__global__ static void k_embed_first(int32_t *first, const int32_t *tok, int N, int off, int V)
{
    for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < N; n += gridDim.x * blockDim.x) {
        int row = tok[n] - off;
        int f = row >= 0 && row < V;
        for (int m = 0; f && m < n; m++)
            if (tok[m] == tok[n]) f = 0;
        first[n] = f;
    }
}

__global__ static void k_embed_bwd_wte(float *dwte, const float *dout, const int32_t *tok,
                                       const int32_t *first, int N, int C, int off)
{
    int n0 = blockIdx.x;
    if (!first[n0]) return;
    int32_t token = tok[n0];
    float *row = dwte + (size_t)(token - off) * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = row[c];
        for (int n = n0; n < N; n++)
            if (tok[n] == token) acc += dout[(size_t)n * C + c];
        row[c] = acc;
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
    int N = B * T;
    if (V_local > 0) {
        int32_t *first = (int32_t *)mt_cuda_scratch(be, (size_t)N * sizeof(int32_t));
        MT_LAUNCH(k_embed_first, grid_for((size_t)N), NT, 0, STREAM(be))(first, tok, N,
                                                                         vocab_offset, V_local);
        CUDA_CHECK_LAUNCH();
        MT_LAUNCH(k_embed_bwd_wte, N, NT, 0, STREAM(be))(dwte, dout, tok, first, N, C,
                                                        vocab_offset);
        CUDA_CHECK_LAUNCH();
    }
    if (dwpe) {
        MT_LAUNCH(k_embed_bwd_wpe, grid_for((size_t)T * C), NT, 0, STREAM(be))(dwpe, dout, B, T,
                                                                               C);
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
    MT_LAUNCH(k_layernorm_fwd, N, NT, 0, STREAM(be))(out, mean, rstd, inp, w, b, C);
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

/* Column sums (bias and layernorm weight gradients) in two fixed-order
 * stages: COL_CHUNKS chunks of consecutive rows are summed in row order by
 * one thread per (chunk, column), in double, then one thread per column adds
 * the chunk sums in chunk order. Deterministic, no atomics, and enough
 * threads to fill the GPU (one thread per column would give 768 threads). */
#define COL_CHUNKS 64

static int rows_per_chunk(int N) { return (N + COL_CHUNKS - 1) / COL_CHUNKS; }

/* partial[chunk][c] (and partial2 for dw): grid (column blocks, chunks) */
__global__ static void k_colsum_chunks(double *part_b, double *part_w, const float *dy,
                                       const float *inp, const float *mean, const float *rstd,
                                       int N, int C, int rows)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x, ch = blockIdx.y;
    if (c >= C) return;
    int n0 = ch * rows, n1 = n0 + rows < N ? n0 + rows : N;
    double ab = 0.0, aw = 0.0;
    for (int n = n0; n < n1; n++) {
        float d = dy[(size_t)n * C + c];
        ab += d;
        if (part_w)
            aw += (double)d * ((inp[(size_t)n * C + c] - (double)mean[n]) * (double)rstd[n]);
    }
    part_b[(size_t)ch * C + c] = ab;
    if (part_w) part_w[(size_t)ch * C + c] = aw;
}

__global__ static void k_colsum_finish(float *db, float *dw, const double *part_b,
                                       const double *part_w, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double ab = 0.0, aw = 0.0;
    for (int ch = 0; ch < COL_CHUNKS; ch++) {
        ab += part_b[(size_t)ch * C + c];
        if (dw) aw += part_w[(size_t)ch * C + c];
    }
    db[c] += (float)ab;
    if (dw) dw[c] += (float)aw;
}

/* db += column sums of dy; with dw, also dw += column sums of dy * norm(inp) */
static void column_sums(mt_backend *be, float *db, float *dw, const float *dy, const float *inp,
                        const float *mean, const float *rstd, int N, int C)
{
    size_t one = (size_t)COL_CHUNKS * C;
    double *part = (double *)mt_cuda_scratch(be, (dw ? 2 : 1) * one * sizeof(double));
    double *part_w = dw ? part + one : NULL;
    dim3 grid((C + NT - 1) / NT, COL_CHUNKS);
    MT_LAUNCH(k_colsum_chunks, grid, NT, 0, STREAM(be))(part, part_w, dy, inp, mean, rstd, N, C,
                                                        rows_per_chunk(N));
    CUDA_CHECK_LAUNCH();
    MT_LAUNCH(k_colsum_finish, (C + NT - 1) / NT, NT, 0, STREAM(be))(db, dw, part, part_w, C);
    CUDA_CHECK_LAUNCH();
}

void mt_cuda_layernorm_bwd(mt_backend *be, float *dinp, float *dw, float *db,
                           const float *dout, const float *inp, const float *w,
                           const float *mean, const float *rstd, int N, int C)
{
    MT_LAUNCH(k_layernorm_bwd_dinp, N, NT, 0, STREAM(be))(dinp, dout, inp, w, mean, rstd, C);
    CUDA_CHECK_LAUNCH();
    column_sums(be, db, dw, dout, inp, mean, rstd, N, C);
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
    MT_LAUNCH(k_bias_add, grid_for(total), NT, 0, STREAM(be))(y, bias, C, total);
    CUDA_CHECK_LAUNCH();
}

void mt_cuda_bias_bwd(mt_backend *be, float *dbias, const float *dy, int N, int C)
{
    column_sums(be, dbias, NULL, dy, NULL, NULL, NULL, N, C);
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
    MT_LAUNCH(k_gelu_fwd, grid_for(n), NT, 0, STREAM(be))(out, inp, n);
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
    MT_LAUNCH(k_gelu_bwd, grid_for(n), NT, 0, STREAM(be))(dinp, inp, dout, n);
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
    MT_LAUNCH(k_add, grid_for(n), NT, 0, STREAM(be))(out, a, b, n);
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
    MT_LAUNCH(k_scale, grid_for(n), NT, 0, STREAM(be))(x, s, n);
    CUDA_CHECK_LAUNCH();
}

/* ---- attention ------------------------------------------------------------------------
 * The products are cuBLAS strided-batched GEMMs over the heads of one
 * sequence (one call per b and product): in the qkv layout (B,T,NH,3,HS) the
 * rows of Q, K or V of one head are 3*NH*HS floats apart and consecutive
 * heads 3*HS apart. The softmax and its backward are row kernels. Entries
 * above the diagonal are exact zeros in att (and in ds), so the products run
 * over whole rows; that doubles their FLOPs but keeps them on cuBLAS, far
 * ahead of any hand-written kernel in fp32. With --tf32 these GEMMs use TF32
 * too. Per (b,h):
 *   forward   S = scale Q K^T;  att = softmax over j <= t;  out = att V
 *   backward  datt = dout V^T;  ds = att (datt - sum_j att datt);
 *             dq = scale ds K;  dk = scale ds^T Q;  dv = att^T dout */

static void head_gemm(mt_backend *be, enum mt_trans ta, enum mt_trans tb, int m, int n, int k,
                      float alpha, const float *a, int lda, int64_t sa, const float *b, int ldb,
                      int64_t sb, float *c, int ldc, int64_t sc, int batch)
{
    /* fields in declaration order (backend.h); beta = 0: C is overwritten */
    const struct mt_gemm_args g = {ta, tb, m, n, k, batch, alpha, 0.0f, a, lda, sa,
                                   b, ldb, sb, c, ldc, sc};
    mt_cuda_gemm(be, &g);
}

/* one block per row of att (b, h, query i): softmax of the scores over the
 * keys j <= t0 + i, zeros beyond */
__global__ static void k_softmax_causal(float *att, int T, int Tq, int t0)
{
    __shared__ double sh[NT];
    int i = blockIdx.x % Tq, t = t0 + i;
    float *a = att + (size_t)blockIdx.x * T;
    double mx = -INFINITY;
    for (int j = threadIdx.x; j <= t; j += NT)
        if (a[j] > mx) mx = a[j];
    mx = block_max(mx, sh);
    double sum = 0.0;
    for (int j = threadIdx.x; j <= t; j += NT) sum += exp((double)a[j] - mx);
    sum = block_sum(sum, sh);
    for (int j = threadIdx.x; j < T; j += NT)
        a[j] = j <= t ? (float)(exp((double)a[j] - mx) / sum) : 0.0f;
}

void mt_cuda_attn_fwd(mt_backend *be, float *out, float *att, const float *qkv, int B, int T,
                      int t0, int NH, int HS)
{
    const int Tq = T - t0, ld = 3 * NH * HS;
    const float scale = 1.0f / sqrtf((float)HS);
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * ld;
        float *ab = att + (size_t)b * NH * Tq * T;
        /* S = scale Q K^T: queries t0.., all keys */
        head_gemm(be, MT_TRANS_N, MT_TRANS_T, Tq, T, HS, scale, base + (size_t)t0 * ld, ld,
                  3 * HS, base + HS, ld, 3 * HS, ab, T, (int64_t)Tq * T, NH);
    }
    MT_LAUNCH(k_softmax_causal, B * NH * Tq, NT, 0, STREAM(be))(att, T, Tq, t0);
    CUDA_CHECK_LAUNCH();
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * ld;
        /* out = att V */
        head_gemm(be, MT_TRANS_N, MT_TRANS_N, Tq, HS, T, 1.0f, att + (size_t)b * NH * Tq * T, T,
                  (int64_t)Tq * T, base + 2 * HS, ld, 3 * HS, out + (size_t)b * Tq * NH * HS,
                  NH * HS, HS, NH);
    }
}

/* one block per row: datt <- att (datt - sum_j att datt) in place */
__global__ static void k_softmax_bwd(float *datt, const float *att, int T)
{
    __shared__ double sh[NT];
    const float *a = att + (size_t)blockIdx.x * T;
    float *d = datt + (size_t)blockIdx.x * T;
    double row = 0.0;
    for (int j = threadIdx.x; j < T; j += NT) row += (double)a[j] * d[j];
    row = block_sum(row, sh);
    for (int j = threadIdx.x; j < T; j += NT) d[j] = (float)((double)a[j] * ((double)d[j] - row));
}

void mt_cuda_attn_bwd(mt_backend *be, float *dqkv, float *datt, const float *dout,
                      const float *qkv, const float *att, int B, int T, int NH, int HS)
{
    const int ld = 3 * NH * HS, ldo = NH * HS;
    const int64_t tt = (int64_t)T * T;
    const float scale = 1.0f / sqrtf((float)HS);
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * ld, *dob = dout + (size_t)b * T * ldo;
        /* datt = dout V^T */
        head_gemm(be, MT_TRANS_N, MT_TRANS_T, T, T, HS, 1.0f, dob, ldo, HS, base + 2 * HS, ld,
                  3 * HS, datt + (size_t)b * NH * tt, T, tt, NH);
    }
    MT_LAUNCH(k_softmax_bwd, B * NH * T, NT, 0, STREAM(be))(datt, att, T);
    CUDA_CHECK_LAUNCH();
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * ld, *dob = dout + (size_t)b * T * ldo;
        const float *ds = datt + (size_t)b * NH * tt, *ab = att + (size_t)b * NH * tt;
        float *dbase = dqkv + (size_t)b * T * ld;
        /* dq = scale ds K;  dk = scale ds^T Q;  dv = att^T dout */
        head_gemm(be, MT_TRANS_N, MT_TRANS_N, T, HS, T, scale, ds, T, tt, base + HS, ld, 3 * HS,
                  dbase, ld, 3 * HS, NH);
        head_gemm(be, MT_TRANS_T, MT_TRANS_N, T, HS, T, scale, ds, T, tt, base, ld, 3 * HS,
                  dbase + HS, ld, 3 * HS, NH);
        head_gemm(be, MT_TRANS_T, MT_TRANS_N, T, HS, T, 1.0f, ab, T, tt, dob, ldo, HS,
                  dbase + 2 * HS, ld, 3 * HS, NH);
    }
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
    MT_LAUNCH(k_xent_max, N, NT, 0, STREAM(be))(rowmax, logits, V_local, ld);
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
    MT_LAUNCH(k_xent_sumexp, N, NT, 0, STREAM(be))(sumexp, tgt, logits, rowmax, targets, V_local,
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
    MT_LAUNCH(k_xent_loss, (N + NT - 1) / NT, NT, 0, STREAM(be))(losses, rowmax, sumexp, tgt, N);
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
    MT_LAUNCH(k_xent_bwd, grid_for(total), NT, 0, STREAM(be))
        (dlogits, dlosses, logits, rowmax, sumexp, targets, V_local, vocab_offset, ld, total);
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
    MT_LAUNCH(k_adamw, grid_for(n), NT, 0, STREAM(be))(param, grad, m, v, n, k, zero_grad);
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
    if (count) MT_LAUNCH(k_count_chunks, g, NT, 0, STREAM(be))(partial, x, n, nchunks);
    else MT_LAUNCH(k_sumsq_chunks, g, NT, 0, STREAM(be))(partial, x, n, nchunks);
    CUDA_CHECK_LAUNCH();
    MT_LAUNCH(k_sum_in_order, 1, 1, 0, STREAM(be))(out1, partial, nchunks);
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
    MT_LAUNCH(k_scale_matrix, grid_for(total), NT, 0, STREAM(be))
        (c, m, n, ldc, stride_c, beta, total);
    CUDA_CHECK_LAUNCH();
}
