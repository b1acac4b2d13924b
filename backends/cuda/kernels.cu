/* kernels.cu: the compute members of the CUDA backend (struct mt_backend_i).
 *
 * Every member computes f32 tensors (the backend has no `supports` member).
 * Written for agreement with cpu-ref first and speed second: the arithmetic
 * mirrors backends/cpu/cpu_ref_ops.c, with double accumulators where the
 * reference uses them; attention leans on cuBLAS (see there). Everything
 * runs on the backend's stream. Determinism (doc/backend-api.md): no atomics
 * anywhere. Column reductions (bias_bwd, layernorm dw/db) sum fixed chunks of
 * rows in order and then the chunks in order; embed_bwd adds each id's
 * rows in row order; in-row reductions use a fixed shared-memory tree;
 * sum_squares / count_nonfinite sum each MT_REDUCE_BLOCK chunk sequentially
 * in one thread and one thread adds the chunk sums in order (bit-identical to
 * cpu-ref: unfused multiply and add).
 *
 * Launches are written MT_LAUNCH(kernel, grid, block, smem, stream)(args) so
 * that the same source runs on the CPU emulation (emu/cuda_emu.h), which
 * checks the launch configuration and, at every __syncthreads(), switches
 * the threads of a block as the device would interleave them. */
#include "cuda/cuda_common.cuh"
#include "core/half.h"
#include "core/philox.h"
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

__global__ static void k_embed_fwd(float *out, const int32_t *ids, const float *table, int C,
                                   int off, int V, int accumulate, size_t total)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / C;
        int c = (int)(i % C);
        int row = ids[n] - off;
        float v = (row >= 0 && row < V) ? table[(size_t)row * C + c] : 0.0f;
        if (accumulate) out[i] += v;
        else out[i] = v;
    }
}

void mt_cuda_embed_fwd(mt_backend *be, mt_tensor out, mt_tensor ids, mt_tensor table,
                       int vocab_offset, int accumulate)
{
    size_t total = (size_t)mt_numel(out);
    MT_LAUNCH(k_embed_fwd, grid_for(total), NT, 0, STREAM(be))
        (mt_fp(out), mt_ip(ids), mt_fp(table), (int)out.cols, vocab_offset, (int)table.rows,
         accumulate, total);
    CUDA_CHECK_LAUNCH();
}

/* dtable: one block per row n that holds the first occurrence of its id
 * (k_embed_first marks them); the block adds the dout rows of every
 * occurrence of that id into the table row, in n order, as the reference
 * does. No atomics, and O(N^2) id comparisons instead of a pass over the
 * whole vocabulary per row. */
__global__ static void k_embed_first(int32_t *first, const int32_t *ids, int N, int off, int V)
{
    for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < N; n += gridDim.x * blockDim.x) {
        int row = ids[n] - off;
        int f = row >= 0 && row < V;
        for (int m = 0; f && m < n; m++)
            if (ids[m] == ids[n]) f = 0;
        first[n] = f;
    }
}

__global__ static void k_embed_bwd(float *dtable, const float *dout, const int32_t *ids,
                                   const int32_t *first, int N, int C, int off)
{
    int n0 = blockIdx.x;
    if (!first[n0]) return;
    int32_t id = ids[n0];
    float *row = dtable + (size_t)(id - off) * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = row[c];
        for (int n = n0; n < N; n++)
            if (ids[n] == id) acc += dout[(size_t)n * C + c];
        row[c] = acc;
    }
}

void mt_cuda_embed_bwd(mt_backend *be, mt_tensor dtable, mt_tensor dout, mt_tensor ids,
                       int vocab_offset)
{
    const int N = (int)dout.rows, V = (int)dtable.rows;
    if (V == 0) return;
    int32_t *first = (int32_t *)mt_cuda_scratch(be, (size_t)N * sizeof(int32_t));
    MT_LAUNCH(k_embed_first, grid_for((size_t)N), NT, 0, STREAM(be))(first, mt_ip(ids), N,
                                                                     vocab_offset, V);
    CUDA_CHECK_LAUNCH();
    MT_LAUNCH(k_embed_bwd, N, NT, 0, STREAM(be))(mt_fp(dtable), mt_fp(dout), mt_ip(ids), first, N,
                                                (int)dout.cols, vocab_offset);
    CUDA_CHECK_LAUNCH();
}

/* ---- layernorm and RMSNorm --------------------------------------------------------- */

__global__ static void k_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp,
                                       const float *w, const float *b, int C, double eps)
{
    __shared__ double sh[NT];
    size_t n = blockIdx.x;
    const float *x = inp + n * C;
    double s = 0.0;
    for (int c = threadIdx.x; c < C; c += NT) s += x[c];
    double mu = block_sum(s, sh) / C;
    double ss = 0.0;
    for (int c = threadIdx.x; c < C; c += NT) ss += (x[c] - mu) * (x[c] - mu);
    double r = 1.0 / sqrt(block_sum(ss, sh) / C + eps);
    float *o = out + n * C;
    for (int c = threadIdx.x; c < C; c += NT) o[c] = (float)((x[c] - mu) * r * w[c] + b[c]);
    if (threadIdx.x == 0) {
        mean[n] = (float)mu;
        rstd[n] = (float)r;
    }
}

void mt_cuda_layernorm_fwd(mt_backend *be, mt_tensor out, mt_tensor mean, mt_tensor rstd,
                           mt_tensor inp, mt_tensor w, mt_tensor b, double eps)
{
    MT_LAUNCH(k_layernorm_fwd, (unsigned)inp.rows, NT, 0, STREAM(be))
        (mt_fp(out), mt_fp(mean), mt_fp(rstd), mt_fp(inp), mt_fp(w), mt_fp(b), (int)inp.cols, eps);
    CUDA_CHECK_LAUNCH();
}

/* dinp += per row (one block per row); mean NULL: RMSNorm (no centring, no
 * mean-of-dnorm term) */
__global__ static void k_norm_bwd_dinp(float *dinp, const float *dout, const float *inp,
                                       const float *w, const float *mean, const float *rstd,
                                       int C)
{
    __shared__ double sh[NT];
    size_t n = blockIdx.x;
    const float *x = inp + n * C, *d = dout + n * C;
    double mu = mean ? (double)mean[n] : 0.0, r = rstd[n];
    double s1 = 0.0, s2 = 0.0;
    for (int c = threadIdx.x; c < C; c += NT) {
        double norm = (x[c] - mu) * r;
        double dn = (double)d[c] * w[c];
        s1 += dn;
        s2 += dn * norm;
    }
    double mean_dn = mean ? block_sum(s1, sh) / C : 0.0;
    double mean_dn_norm = block_sum(s2, sh) / C;
    float *di = dinp + n * C;
    for (int c = threadIdx.x; c < C; c += NT) {
        double norm = (x[c] - mu) * r;
        double dn = (double)d[c] * w[c];
        di[c] += (float)(r * (dn - mean_dn - norm * mean_dn_norm));
    }
}

/* Column sums (bias and norm weight gradients) in two fixed-order stages:
 * COL_CHUNKS chunks of consecutive rows are summed in row order by one
 * thread per (chunk, column), in double, then one thread per column adds
 * the chunk sums in chunk order. Deterministic, no atomics, and enough
 * threads to fill the GPU (one thread per column would give 768 threads). */
#define COL_CHUNKS 64

static int rows_per_chunk(int N) { return (N + COL_CHUNKS - 1) / COL_CHUNKS; }

/* partial sums of dy (part_b) and of dy * norm(inp) (part_w, when given);
 * norm = (inp - mean) * rstd, mean NULL for RMSNorm. grid (column blocks, chunks) */
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
        if (part_w) {
            double mu = mean ? (double)mean[n] : 0.0;
            aw += (double)d * ((inp[(size_t)n * C + c] - mu) * (double)rstd[n]);
        }
    }
    if (part_b) part_b[(size_t)ch * C + c] = ab;
    if (part_w) part_w[(size_t)ch * C + c] = aw;
}

__global__ static void k_colsum_finish(float *db, float *dw, const double *part_b,
                                       const double *part_w, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double ab = 0.0, aw = 0.0;
    for (int ch = 0; ch < COL_CHUNKS; ch++) {
        if (db) ab += part_b[(size_t)ch * C + c];
        if (dw) aw += part_w[(size_t)ch * C + c];
    }
    if (db) db[c] += (float)ab;
    if (dw) dw[c] += (float)aw;
}

/* db += column sums of dy (db may be NULL); with dw, also dw += column sums
 * of dy * norm(inp) */
static void column_sums(mt_backend *be, float *db, float *dw, const float *dy, const float *inp,
                        const float *mean, const float *rstd, int N, int C)
{
    size_t one = (size_t)COL_CHUNKS * C;
    double *part = (double *)mt_cuda_scratch(be, 2 * one * sizeof(double));
    double *part_b = db ? part : NULL, *part_w = dw ? part + one : NULL;
    dim3 grid((C + NT - 1) / NT, COL_CHUNKS);
    MT_LAUNCH(k_colsum_chunks, grid, NT, 0, STREAM(be))(part_b, part_w, dy, inp, mean, rstd, N,
                                                        C, rows_per_chunk(N));
    CUDA_CHECK_LAUNCH();
    MT_LAUNCH(k_colsum_finish, (C + NT - 1) / NT, NT, 0, STREAM(be))(db, dw, part_b, part_w, C);
    CUDA_CHECK_LAUNCH();
}

void mt_cuda_layernorm_bwd(mt_backend *be, mt_tensor dinp, mt_tensor dw, mt_tensor db,
                           mt_tensor dout, mt_tensor inp, mt_tensor w, mt_tensor mean,
                           mt_tensor rstd)
{
    const int N = (int)inp.rows, C = (int)inp.cols;
    MT_LAUNCH(k_norm_bwd_dinp, N, NT, 0, STREAM(be))(mt_fp(dinp), mt_fp(dout), mt_fp(inp),
                                                    mt_fp(w), mt_fp(mean), mt_fp(rstd), C);
    CUDA_CHECK_LAUNCH();
    column_sums(be, mt_fp(db), mt_fp(dw), mt_fp(dout), mt_fp(inp), mt_fp(mean), mt_fp(rstd), N,
                C);
}

__global__ static void k_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w,
                                     int C, double eps)
{
    __shared__ double sh[NT];
    size_t n = blockIdx.x;
    const float *x = inp + n * C;
    double ss = 0.0;
    for (int c = threadIdx.x; c < C; c += NT) ss += (double)x[c] * x[c];
    double r = 1.0 / sqrt(block_sum(ss, sh) / C + eps);
    float *o = out + n * C;
    for (int c = threadIdx.x; c < C; c += NT) o[c] = (float)(x[c] * r * w[c]);
    if (threadIdx.x == 0) rstd[n] = (float)r;
}

void mt_cuda_rmsnorm_fwd(mt_backend *be, mt_tensor out, mt_tensor rstd, mt_tensor inp,
                         mt_tensor w, double eps)
{
    MT_LAUNCH(k_rmsnorm_fwd, (unsigned)inp.rows, NT, 0, STREAM(be))
        (mt_fp(out), mt_fp(rstd), mt_fp(inp), mt_fp(w), (int)inp.cols, eps);
    CUDA_CHECK_LAUNCH();
}

void mt_cuda_rmsnorm_bwd(mt_backend *be, mt_tensor dinp, mt_tensor dw, mt_tensor dout,
                         mt_tensor inp, mt_tensor w, mt_tensor rstd)
{
    const int N = (int)inp.rows, C = (int)inp.cols;
    MT_LAUNCH(k_norm_bwd_dinp, N, NT, 0, STREAM(be))(mt_fp(dinp), mt_fp(dout), mt_fp(inp),
                                                    mt_fp(w), (const float *)NULL, mt_fp(rstd), C);
    CUDA_CHECK_LAUNCH();
    column_sums(be, NULL, mt_fp(dw), mt_fp(dout), mt_fp(inp), NULL, mt_fp(rstd), N, C);
}

/* ---- bias, activations, elementwise ------------------------------------------------- */

__global__ static void k_bias_add(float *y, const float *bias, int C, size_t total)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] += bias[i % C];
}

void mt_cuda_bias_add(mt_backend *be, mt_tensor y, mt_tensor bias)
{
    size_t total = (size_t)mt_numel(y);
    MT_LAUNCH(k_bias_add, grid_for(total), NT, 0, STREAM(be))(mt_fp(y), mt_fp(bias),
                                                             (int)y.cols, total);
    CUDA_CHECK_LAUNCH();
}

void mt_cuda_bias_bwd(mt_backend *be, mt_tensor dbias, mt_tensor dy)
{
    column_sums(be, mt_fp(dbias), NULL, mt_fp(dy), NULL, NULL, NULL, (int)dy.rows, (int)dy.cols);
}

#define GELU_K 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_A 0.044715

/* the activations of enum mt_act and their slopes, in double */
__device__ static double act_value(double x, int act)
{
    if (act == MT_ACT_GELU) return 0.5 * x * (1.0 + erf(x * 0.7071067811865476));
    if (act == MT_ACT_TANH) return tanh(x);
    return 0.5 * x * (1.0 + tanh(GELU_K * (x + GELU_A * x * x * x)));
}

__device__ static double act_slope(double x, int act)
{
    if (act == MT_ACT_GELU)
        return 0.5 * (1.0 + erf(x * 0.7071067811865476)) +
               x * 0.3989422804014327 * exp(-0.5 * x * x);
    if (act == MT_ACT_TANH) {
        double t = tanh(x);
        return 1.0 - t * t;
    }
    double th = tanh(GELU_K * (x + GELU_A * x * x * x));
    double du = GELU_K * (1.0 + 3.0 * GELU_A * x * x);
    return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du;
}

__global__ static void k_act_fwd(float *out, const float *inp, size_t n, int act)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = (float)act_value(inp[i], act);
}

void mt_cuda_act_fwd(mt_backend *be, mt_tensor out, mt_tensor inp, enum mt_act act)
{
    size_t n = (size_t)mt_numel(inp);
    MT_LAUNCH(k_act_fwd, grid_for(n), NT, 0, STREAM(be))(mt_fp(out), mt_fp(inp), n, (int)act);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_act_bwd(float *dinp, const float *inp, const float *dout, size_t n,
                                 int act)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dinp[i] = (float)(act_slope(inp[i], act) * dout[i]); /* dout read before the aliased write */
}

void mt_cuda_act_bwd(mt_backend *be, mt_tensor dinp, mt_tensor inp, mt_tensor dout, enum mt_act act)
{
    size_t n = (size_t)mt_numel(inp);
    MT_LAUNCH(k_act_bwd, grid_for(n), NT, 0, STREAM(be))
        (mt_fp(dinp), mt_fp(inp), mt_fp(dout), n, (int)act);
    CUDA_CHECK_LAUNCH();
}

/* out (N,F) = silu(gate) up over rows [gate | up] of inp (N,2F) */
__global__ static void k_swiglu_fwd(float *out, const float *inp, int F, size_t total)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / F, j = i % F;
        double g = inp[n * 2 * F + j], u = inp[n * 2 * F + F + j];
        out[i] = (float)(g / (1.0 + exp(-g)) * u);
    }
}

void mt_cuda_swiglu_fwd(mt_backend *be, mt_tensor out, mt_tensor inp)
{
    size_t total = (size_t)mt_numel(out);
    MT_LAUNCH(k_swiglu_fwd, grid_for(total), NT, 0, STREAM(be))(mt_fp(out), mt_fp(inp),
                                                               (int)out.cols, total);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_swiglu_bwd(float *dinp, const float *inp, const float *dout, int F,
                                    size_t total)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / F, j = i % F;
        double g = inp[n * 2 * F + j], u = inp[n * 2 * F + F + j], d = dout[i];
        double sg = 1.0 / (1.0 + exp(-g));
        dinp[n * 2 * F + j] = (float)(d * u * sg * (1.0 + g * (1.0 - sg)));
        dinp[n * 2 * F + F + j] = (float)(d * sg * g);
    }
}

void mt_cuda_swiglu_bwd(mt_backend *be, mt_tensor dinp, mt_tensor inp, mt_tensor dout)
{
    size_t total = (size_t)mt_numel(dout);
    MT_LAUNCH(k_swiglu_bwd, grid_for(total), NT, 0, STREAM(be))
        (mt_fp(dinp), mt_fp(inp), mt_fp(dout), (int)dout.cols, total);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_add(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

void mt_cuda_add(mt_backend *be, mt_tensor out, mt_tensor a, mt_tensor b)
{
    size_t n = (size_t)mt_numel(out);
    MT_LAUNCH(k_add, grid_for(n), NT, 0, STREAM(be))(mt_fp(out), mt_fp(a), mt_fp(b), n);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_scale(float *x, float s, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] *= s;
}

void mt_cuda_scale(mt_backend *be, mt_tensor x, float s)
{
    size_t n = (size_t)mt_numel(x);
    MT_LAUNCH(k_scale, grid_for(n), NT, 0, STREAM(be))(mt_fp(x), s, n);
    CUDA_CHECK_LAUNCH();
}

/* the same bit manipulation as the CPU backends (core/half.h), not the
 * intrinsics, so that every backend rounds bitwise alike */
__global__ static void k_round_half(float *x, int bf16, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] = bf16 ? mt_round_bf16(x[i]) : mt_round_f16(x[i]);
}

void mt_cuda_round_half(mt_backend *be, mt_tensor x, enum mt_dtype to)
{
    size_t n = (size_t)mt_numel(x);
    MT_LAUNCH(k_round_half, grid_for(n), NT, 0, STREAM(be))(mt_fp(x), to == MT_DTYPE_BF16, n);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_to_half(uint16_t *h, const float *x, int bf16, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        h[i] = bf16 ? mt_f32_to_bf16(x[i]) : mt_f32_to_f16(x[i]);
}

void mt_cuda_to_half(mt_backend *be, mt_tensor dst, mt_tensor src)
{
    size_t n = (size_t)mt_numel(src);
    MT_LAUNCH(k_to_half, grid_for(n), NT, 0, STREAM(be))((uint16_t *)dst.data, mt_fp(src),
                                                          dst.dtype == MT_DTYPE_BF16, n);
    CUDA_CHECK_LAUNCH();
}

/* ---- dropout ------------------------------------------------------------------------ */

/* x (N,C) in place: element (n,c) kept with coordinates (col0 + c, n % T,
 * sample0 + n / T, 0), core/philox.h */
__global__ static void k_dropout(float *x, int C, struct mt_dropout_args d, uint32_t thr,
                                 float scale, size_t total)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / C;
        int c = (int)(i % C);
        int keep = mt_dropout_keep(d.seed, d.stream, thr, (uint32_t)(d.col0 + c),
                                   (uint32_t)(n % d.T), (uint32_t)(d.sample0 + (int64_t)(n / d.T)), 0);
        x[i] = keep ? x[i] * scale : 0.0f;
    }
}

void mt_cuda_dropout(mt_backend *be, mt_tensor x, const struct mt_dropout_args *d)
{
    size_t total = (size_t)mt_numel(x);
    MT_LAUNCH(k_dropout, grid_for(total), NT, 0, STREAM(be))
        (mt_fp(x), (int)x.cols, *d, mt_dropout_threshold(d->p), mt_dropout_scale(d->p), total);
    CUDA_CHECK_LAUNCH();
}

/* ---- rotary embedding -------------------------------------------------------------- */

/* One thread per (row of positions t0.., rotated head, pair i < R/2). */
__global__ static void k_rope(float *qkv, const float *table, const int32_t *positions, int R, int T,
                              int t0, int heads, int groups, int head_dim, float sgn, size_t total)
{
    const int hR = R / 2, per = heads / groups, W = groups * (per + 2) * head_dim;
    const int nheads = heads + groups, Tq = T - t0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int pair = (int)(i % hR);
        int k = (int)((i / hR) % nheads);
        size_t r = i / ((size_t)hR * nheads);
        int b = (int)(r / Tq), t = t0 + (int)(r % Tq);
        /* query head k of group k / per, or the key of group k - heads */
        int off = k < heads ? ((k / per) * (per + 2) + k % per) * head_dim
                            : ((k - heads) * (per + 2) + per) * head_dim;
        float *x = qkv + ((size_t)b * T + t) * W + off;
        const size_t row = positions ? (size_t)positions[(size_t)b * T + t] : (size_t)t;
        float c = table[row * R + pair], s = sgn * table[row * R + hR + pair];
        float x1 = x[pair], x2 = x[hR + pair];
        x[pair] = x1 * c - x2 * s;
        x[hR + pair] = x2 * c + x1 * s;
    }
}

void mt_cuda_rope(mt_backend *be, mt_tensor qkv, mt_tensor table, const struct mt_attn_args *a,
                  int inverse)
{
    const int R = (int)table.cols;
    size_t total = (size_t)a->B * (a->T - a->t0) * (a->heads + a->groups) * (R / 2);
    MT_LAUNCH(k_rope, grid_for(total), NT, 0, STREAM(be))
        (mt_fp(qkv), mt_fp(table), a->positions, R, a->T, a->t0, a->heads, a->groups, a->head_dim,
         inverse ? -1.0f : 1.0f, total);
    CUDA_CHECK_LAUNCH();
}

/* ---- attention ------------------------------------------------------------------------
 * The products are cuBLAS strided-batched GEMMs (one call per sequence b,
 * product and query head j of a group, batched over the groups): in the
 * qkv layout the rows of one head are W = groups*(per+2)*head_dim floats
 * apart and the same head of consecutive groups (per+2)*head_dim apart. The
 * softmax and its backward are row kernels. Entries above the diagonal are
 * exact zeros in att (and in ds), so the products run over whole rows; that
 * doubles their FLOPs but keeps them on cuBLAS, far ahead of any hand-
 * written kernel in fp32. With --tf32 these GEMMs use TF32 too. Attention
 * dropout multiplies the probabilities into a scratch copy used by the
 * products (att keeps them undropped, for the softmax backward). Per (b,h):
 *   forward   S = scale Q K^T;  att = softmax over j <= t (or all j);
 *             out = (att f) V   (f: dropout factors)
 *   backward  datt = f (dout V^T);  ds = att (datt - sum_j att datt);
 *             dq = scale ds K;  dk += scale ds^T Q;  dv += (att f)^T dout */

static void head_gemm(mt_backend *be, enum mt_trans ta, enum mt_trans tb, int m, int n, int k,
                      float alpha, const float *a, int lda, int64_t sa, const float *b, int ldb,
                      int64_t sb, float beta, float *c, int ldc, int64_t sc, int batch)
{
    /* fields in declaration order (backend.h); the element types stay f32 */
    const struct mt_gemm_args g = {ta, tb, m, n, k, batch, alpha, beta, a, lda, sa, b, ldb, sb,
                                   c, ldc, sc, MT_DTYPE_F32, MT_DTYPE_F32, MT_DTYPE_F32,
                                   MT_DTYPE_F32};
    mt_cuda_gemm(be, &g);
}

/* one block per row of att (b, h, query i) of B x heads x Tq: softmax of
 * the scores over the keys j <= t0 + i (causal) or all keys, and below the
 * sequence's length; zeros beyond */
__global__ static void k_softmax_rows(float *att, int T, int Tq, int t0, int causal, int heads,
                                      const int32_t *lengths, const int32_t *doc_start)
{
    __shared__ double sh[NT];
    const int i = blockIdx.x % Tq, b = blockIdx.x / (Tq * heads);
    int t = causal ? t0 + i : T - 1;
    if (lengths && t >= lengths[b]) t = lengths[b] - 1;
    const int j0 = doc_start ? doc_start[(size_t)b * T + t0 + i] : 0; /* its document's first key */
    float *a = att + (size_t)blockIdx.x * T;
    double mx = -INFINITY;
    for (int j = j0 + threadIdx.x; j <= t; j += NT)
        if (a[j] > mx) mx = a[j];
    mx = block_max(mx, sh);
    double sum = 0.0;
    for (int j = j0 + threadIdx.x; j <= t; j += NT) sum += exp((double)a[j] - mx);
    sum = block_sum(sum, sh);
    for (int j = threadIdx.x; j < T; j += NT)
        a[j] = j >= j0 && j <= t ? (float)(exp((double)a[j] - mx) / sum) : 0.0f;
}

/* y = x * f over rows of att: f = 1/(1-p) for kept entries, 0 for dropped;
 * row r is (b, h, query i) of B x heads x Tq rows, coordinates as in
 * struct mt_attn_args */
__global__ static void k_attn_dropout(float *y, const float *x, int T, int Tq, int t0,
                                      int heads, struct mt_dropout_args d, uint32_t thr,
                                      float scale, size_t total)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int j = (int)(i % T);
        size_t r = i / T;
        int q = t0 + (int)(r % Tq), h = (int)((r / Tq) % heads), b = (int)(r / ((size_t)Tq * heads));
        int keep = mt_dropout_keep(d.seed, d.stream, thr, (uint32_t)j, (uint32_t)q,
                                   (uint32_t)(d.sample0 + b), (uint32_t)(d.col0 + h));
        y[i] = keep ? x[i] * scale : 0.0f;
    }
}

/* y (B*heads*Tq, T) = att with the dropout factors of a applied */
static void attn_dropout(mt_backend *be, float *y, const float *x, const struct mt_attn_args *a)
{
    const int Tq = a->T - a->t0;
    size_t total = (size_t)a->B * a->heads * Tq * a->T;
    MT_LAUNCH(k_attn_dropout, grid_for(total), NT, 0, STREAM(be))
        (y, x, a->T, Tq, a->t0, a->heads, a->dropout, mt_dropout_threshold(a->dropout.p),
         mt_dropout_scale(a->dropout.p), total);
    CUDA_CHECK_LAUNCH();
}

void mt_cuda_attn_fwd(mt_backend *be, mt_tensor out_, mt_tensor att_, mt_tensor qkv_,
                      const struct mt_attn_args *a)
{
    const int T = a->T, t0 = a->t0, Tq = T - t0, HS = a->head_dim, NH = a->heads;
    const int G = a->groups, per = NH / G, ld = mt_qkv_width(a), gs = (per + 2) * HS;
    const float scale = 1.0f / sqrtf((float)HS);
    const float *qkv = mt_fp(qkv_);
    float *att = mt_fp(att_), *out = mt_fp(out_);
    const int64_t tt = (int64_t)Tq * T;
    for (int b = 0; b < a->B; b++) {
        const float *base = qkv + (size_t)b * T * ld;
        float *ab = att + (size_t)b * NH * tt;
        /* S = scale Q K^T: queries t0.., all keys; head h = g*per + j */
        for (int j = 0; j < per; j++)
            head_gemm(be, MT_TRANS_N, MT_TRANS_T, Tq, T, HS, scale,
                      base + (size_t)t0 * ld + (size_t)j * HS, ld, gs, base + (size_t)per * HS, ld,
                      gs, 0.0f, ab + (size_t)j * tt, T, (int64_t)per * tt, G);
    }
    MT_LAUNCH(k_softmax_rows, a->B * NH * Tq, NT, 0, STREAM(be))(att, T, Tq, t0, a->causal, NH,
                                                               a->lengths, a->doc_start);
    CUDA_CHECK_LAUNCH();
    const float *p = att;
    if (a->dropout.p > 0.0f) {
        float *dropped = (float *)mt_cuda_scratch(be, (size_t)a->B * NH * tt * sizeof(float));
        attn_dropout(be, dropped, att, a);
        p = dropped;
    }
    for (int b = 0; b < a->B; b++) {
        const float *base = qkv + (size_t)b * T * ld;
        /* out = (att f) V */
        for (int j = 0; j < per; j++)
            head_gemm(be, MT_TRANS_N, MT_TRANS_N, Tq, HS, T, 1.0f,
                      p + (size_t)b * NH * tt + (size_t)j * tt, T, (int64_t)per * tt,
                      base + (size_t)(per + 1) * HS, ld, gs, 0.0f,
                      out + (size_t)b * Tq * NH * HS + (size_t)j * HS, NH * HS, (int64_t)per * HS,
                      G);
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

void mt_cuda_attn_bwd(mt_backend *be, mt_tensor dqkv_, mt_tensor datt_, mt_tensor dout_,
                      mt_tensor qkv_, mt_tensor att_, const struct mt_attn_args *a)
{
    const int T = a->T, HS = a->head_dim, NH = a->heads, G = a->groups, per = NH / G;
    const int ld = mt_qkv_width(a), ldo = NH * HS, gs = (per + 2) * HS;
    const int64_t tt = (int64_t)T * T;
    const float scale = 1.0f / sqrtf((float)HS);
    const float *qkv = mt_fp(qkv_), *dout = mt_fp(dout_), *att = mt_fp(att_);
    float *dqkv = mt_fp(dqkv_), *datt = mt_fp(datt_);
    const int drop = a->dropout.p > 0.0f;
    for (int b = 0; b < a->B; b++) {
        const float *base = qkv + (size_t)b * T * ld, *dob = dout + (size_t)b * T * ldo;
        /* datt = dout V^T */
        for (int j = 0; j < per; j++)
            head_gemm(be, MT_TRANS_N, MT_TRANS_T, T, T, HS, 1.0f, dob + (size_t)j * HS, ldo,
                      (int64_t)per * HS, base + (size_t)(per + 1) * HS, ld, gs, 0.0f,
                      datt + (size_t)b * NH * tt + (size_t)j * tt, T, (int64_t)per * tt, G);
    }
    if (drop) attn_dropout(be, datt, datt, a); /* datt = f (dout V^T) */
    MT_LAUNCH(k_softmax_bwd, a->B * NH * T, NT, 0, STREAM(be))(datt, att, T);
    CUDA_CHECK_LAUNCH();
    const float *p = att;
    if (drop) {
        float *dropped = (float *)mt_cuda_scratch(be, (size_t)a->B * NH * tt * sizeof(float));
        attn_dropout(be, dropped, att, a);
        p = dropped;
    }
    for (int b = 0; b < a->B; b++) {
        const float *base = qkv + (size_t)b * T * ld, *dob = dout + (size_t)b * T * ldo;
        const float *ds = datt + (size_t)b * NH * tt, *pb = p + (size_t)b * NH * tt;
        float *dbase = dqkv + (size_t)b * T * ld;
        for (int j = 0; j < per; j++) {
            const float beta = j == 0 ? 0.0f : 1.0f; /* the group's heads add up in order */
            /* dq = scale ds K */
            head_gemm(be, MT_TRANS_N, MT_TRANS_N, T, HS, T, scale, ds + (size_t)j * tt, T,
                      (int64_t)per * tt, base + (size_t)per * HS, ld, gs, 0.0f,
                      dbase + (size_t)j * HS, ld, gs, G);
            /* dk += scale ds^T Q */
            head_gemm(be, MT_TRANS_T, MT_TRANS_N, T, HS, T, scale, ds + (size_t)j * tt, T,
                      (int64_t)per * tt, base + (size_t)j * HS, ld, gs, beta,
                      dbase + (size_t)per * HS, ld, gs, G);
            /* dv += (att f)^T dout */
            head_gemm(be, MT_TRANS_T, MT_TRANS_N, T, HS, T, 1.0f, pb + (size_t)j * tt, T,
                      (int64_t)per * tt, dob + (size_t)j * HS, ldo, (int64_t)per * HS, beta,
                      dbase + (size_t)(per + 1) * HS, ld, gs, G);
        }
    }
}

/* ---- flash attention ------------------------------------------------------------------
 * FlashAttention-2's schedule (Dao 2023) in plain fp32 SIMT code: a block
 * takes a tile of TILE queries of one (b, head) through the key tiles in
 * order, with the online softmax (running max m, running sum l, the output
 * rescaled by exp(m_old - m_new) at each tile), and saves only each row's
 * log-sum-exp m + log l. Nothing of size T x T exists. The backward
 * recomputes the probabilities exp(s - lse) tile by tile in two kernels
 * instead of FlashAttention-2's one with atomic dq adds, so that every sum
 * has a fixed order: one block per key tile of a (b, group) accumulates its
 * dk, dv over the group's heads and the query tiles in order; one block per
 * query tile of a (b, head) accumulates its dq over the key tiles in order.
 * D_i = dout_i . out_i (the softmax backward's row sum) comes first, from
 * the kept output. Tiles live in dynamic shared memory: K and V rows padded
 * to HS + 1 floats where threads read them down a column (bank conflicts).
 * The unfused path above stays: it is the reference the tests hold this one
 * to. No tensor cores here (the emulation cannot run warp-level MMA): a
 * faster kernel must first pass the same tests. */

#define FA_NT 128 /* threads of a flash-attention block */

struct fa_params {
    int T, t0, Tq, NH, per, HS, ld, ldo; /* ld: qkv row width; ldo: heads * HS */
    int causal;
    const int32_t *lengths, *doc_start;
    float scale;                          /* 1/sqrt(HS) */
    struct mt_dropout_args drop;
    uint32_t thr;                         /* dropout threshold and factor; drop.p > 0 only */
    float dscale;
};

/* the last key query position t of sequence b sees (mt_attn_last_key) */
__device__ static int fa_last_key(const struct fa_params &p, int b, int t)
{
    int jmax = p.causal ? t : p.T - 1;
    if (p.lengths && jmax >= p.lengths[b]) jmax = p.lengths[b] - 1;
    return jmax;
}

/* whether query position t of sequence b sees key j (mt_attn_first_key too) */
__device__ static int fa_sees(const struct fa_params &p, int b, int t, int j)
{
    return j <= fa_last_key(p, b, t) && (!p.doc_start || j >= p.doc_start[(size_t)b * p.T + t]);
}

/* the first key tile a query tile from position t sees: the tile of its
 * first row's document start (documents are contiguous) */
__device__ static int fa_first_tile(const struct fa_params &p, int b, int t, int tile)
{
    return p.doc_start ? p.doc_start[(size_t)b * p.T + t] / tile * tile : 0;
}

/* the dropout factor of probability (b, h, query t, key j): 1 without dropout */
__device__ static float fa_factor(const struct fa_params &p, int b, int h, int t, int j)
{
    if (p.drop.p <= 0.0f) return 1.0f;
    return mt_dropout_keep(p.drop.seed, p.drop.stream, p.thr, (uint32_t)j, (uint32_t)t,
                           (uint32_t)(p.drop.sample0 + b), (uint32_t)(p.drop.col0 + h))
               ? p.dscale
               : 0.0f;
}

__device__ static int fa_q_offset(const struct fa_params &p, int h)
{
    return ((h / p.per) * (p.per + 2) + h % p.per) * p.HS;
}
__device__ static int fa_k_offset(const struct fa_params &p, int g)
{
    return (g * (p.per + 2) + p.per) * p.HS;
}

/* rows [r0, r0 + TILE) of a head's columns (offset col) of the rows of
 * `base` (row length ld) into dst (row pitch pitch); zeros past n rows */
template <int TILE>
__device__ static void fa_load(float *dst, int pitch, const float *base, int ld, int col, int r0, int n, int HS)
{
    for (int e = threadIdx.x; e < TILE * HS; e += FA_NT) {
        const int r = e / HS, d = e % HS;
        dst[r * pitch + d] = r0 + r < n ? base[(size_t)(r0 + r) * ld + col + d] : 0.0f;
    }
}

/* grid (query tiles of Tq, B * NH) */
template <int TILE>
__global__ static void k_flash_fwd(float *out, float *lse, const float *qkv, struct fa_params p)
{
    MT_DYNAMIC_SHARED(float, sm);
    const int HS = p.HS, HP = HS + 1, SP = TILE + 1;
    float *Q = sm, *O = Q + TILE * HS, *V = O + TILE * HS, *K = V + TILE * HS; /* K: pitch HP */
    float *S = K + TILE * HP, *mrow = S + TILE * SP, *lrow = mrow + TILE, *alpha = lrow + TILE;
    const int bh = blockIdx.y, b = bh / p.NH, h = bh % p.NH, i0 = blockIdx.x * TILE;
    const int qo = fa_q_offset(p, h), ko = fa_k_offset(p, h / p.per), vo = ko + HS;
    const float *base = qkv + (size_t)b * p.T * p.ld;
    const int nq = p.Tq - i0 < TILE ? p.Tq - i0 : TILE; /* the tile's real queries */
    fa_load<TILE>(Q, HS, base + (size_t)(p.t0 + i0) * p.ld, p.ld, qo, 0, nq, HS);
    for (int e = threadIdx.x; e < TILE * HS; e += FA_NT) O[e] = 0.0f;
    for (int i = threadIdx.x; i < TILE; i += FA_NT) mrow[i] = -INFINITY, lrow[i] = 0.0f;
    const int jend = fa_last_key(p, b, p.t0 + i0 + nq - 1); /* the last key any row sees */
    for (int j0 = fa_first_tile(p, b, p.t0 + i0, TILE); j0 <= jend; j0 += TILE) {
        __syncthreads(); /* the previous tile's readers are done */
        fa_load<TILE>(K, HP, base, p.ld, ko, j0, p.T, HS);
        fa_load<TILE>(V, HS, base, p.ld, vo, j0, p.T, HS);
        __syncthreads();
        for (int e = threadIdx.x; e < TILE * TILE; e += FA_NT) {
            const int i = e / TILE, r = e % TILE;
            float s = -INFINITY;
            if (i < nq && fa_sees(p, b, p.t0 + i0 + i, j0 + r)) {
                float acc = 0.0f;
                for (int d = 0; d < HS; d++) acc += Q[i * HS + d] * K[r * HP + d];
                s = acc * p.scale;
            }
            S[i * SP + r] = s;
        }
        __syncthreads();
        /* the online softmax, one thread per row: S becomes the (dropped)
         * unnormalised probabilities of this tile */
        for (int i = threadIdx.x; i < TILE; i += FA_NT) {
            float *srow = S + i * SP, mx = mrow[i], sum = 0.0f, a = 1.0f;
            for (int r = 0; r < TILE; r++) mx = srow[r] > mx ? srow[r] : mx;
            if (mx != -INFINITY) {
                a = expf(mrow[i] - mx);
                for (int r = 0; r < TILE; r++) {
                    const float e = expf(srow[r] - mx);
                    sum += e;
                    srow[r] = e == 0.0f ? 0.0f : e * fa_factor(p, b, h, p.t0 + i0 + i, j0 + r);
                }
            } else {
                for (int r = 0; r < TILE; r++) srow[r] = 0.0f;
            }
            mrow[i] = mx, lrow[i] = lrow[i] * a + sum, alpha[i] = a;
        }
        __syncthreads();
        for (int e = threadIdx.x; e < TILE * HS; e += FA_NT) {
            const int i = e / HS, d = e % HS;
            const float *srow = S + i * SP;
            float acc = 0.0f;
            for (int r = 0; r < TILE; r++) acc += srow[r] * V[r * HS + d];
            O[e] = O[e] * alpha[i] + acc;
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < nq * HS; e += FA_NT) {
        const int i = e / HS, d = e % HS;
        out[((size_t)b * p.Tq + i0 + i) * p.ldo + (size_t)h * HS + d] = O[e] / lrow[i];
    }
    for (int i = threadIdx.x; i < nq; i += FA_NT)
        lse[(size_t)bh * p.Tq + i0 + i] = mrow[i] + logf(lrow[i]);
}

/* D[(b*NH + h)*T + t] = dout . out over head h of token (b, t) */
__global__ static void k_flash_rowdot(float *D, const float *dout, const float *out, int T, int NH,
                                      int HS, size_t rows)
{
    for (size_t r = blockIdx.x * (size_t)blockDim.x + threadIdx.x; r < rows;
         r += (size_t)gridDim.x * blockDim.x) {
        const size_t t = r % T, h = (r / T) % NH, b = r / ((size_t)T * NH);
        const size_t o = (b * T + t) * (size_t)NH * HS + h * HS;
        float acc = 0.0f;
        for (int d = 0; d < HS; d++) acc += dout[o + d] * out[o + d];
        D[r] = acc;
    }
}

/* P (dropped probabilities) and dS = p (dp f - D) of queries [i0, i0 + TILE)
 * (tile rows Q, dO, with lse, D) against keys [j0, j0 + TILE) (K, V at
 * pitch HP) of sequence b, head h; zeros where a query does not see a key */
template <int TILE>
__device__ static void fa_probs(float *P, float *dS, const float *Q, const float *dO, const float *L,
                                const float *D, const float *K, const float *V,
                                const struct fa_params &p, int b, int h, int i0, int j0)
{
    const int HS = p.HS, HP = HS + 1, SP = TILE + 1;
    for (int e = threadIdx.x; e < TILE * TILE; e += FA_NT) {
        const int i = e / TILE, r = e % TILE, t = i0 + i, j = j0 + r;
        float pr = 0.0f, ds = 0.0f;
        if (t < p.T && fa_sees(p, b, t, j)) {
            float qk = 0.0f, dp = 0.0f;
            for (int d = 0; d < HS; d++) {
                qk += Q[i * HS + d] * K[r * HP + d];
                dp += dO[i * HS + d] * V[r * HP + d];
            }
            const float pu = expf(qk * p.scale - L[i]), f = fa_factor(p, b, h, t, j);
            pr = pu * f;
            ds = pu * (dp * f - D[i]);
        }
        if (P) P[i * SP + r] = pr;
        dS[i * SP + r] = ds;
    }
}

/* grid (key tiles of T, B * groups): dk, dv of the group's key tile */
template <int TILE>
__global__ static void k_flash_bwd_kv(float *dqkv, const float *dout, const float *qkv,
                                      const float *lse, const float *D, struct fa_params p)
{
    MT_DYNAMIC_SHARED(float, sm);
    const int HS = p.HS, HP = HS + 1, SP = TILE + 1, G = p.NH / p.per;
    float *K = sm, *V = K + TILE * HP, *dK = V + TILE * HP, *dV = dK + TILE * HS;
    float *Q = dV + TILE * HS, *dO = Q + TILE * HS, *P = dO + TILE * HS, *dS = P + TILE * SP;
    float *L = dS + TILE * SP, *Dt = L + TILE;
    const int b = blockIdx.y / G, g = blockIdx.y % G, j0 = blockIdx.x * TILE;
    const int ko = fa_k_offset(p, g), vo = ko + HS;
    const float *base = qkv + (size_t)b * p.T * p.ld;
    const float *dbase = dout + (size_t)b * p.T * p.ldo;
    fa_load<TILE>(K, HP, base, p.ld, ko, j0, p.T, HS);
    fa_load<TILE>(V, HP, base, p.ld, vo, j0, p.T, HS);
    for (int e = threadIdx.x; e < TILE * HS; e += FA_NT) dK[e] = 0.0f, dV[e] = 0.0f;
    const int ibeg = p.causal ? j0 / TILE * TILE : 0; /* earlier queries see none of these keys */
    for (int h = g * p.per; h < (g + 1) * p.per; h++) {
        const size_t row0 = (size_t)(b * p.NH + h) * p.T;
        for (int i0 = ibeg; i0 < p.T; i0 += TILE) {
            /* the documents after these keys' last one see none of them */
            if (p.doc_start && p.doc_start[(size_t)b * p.T + i0] > j0 + TILE - 1) break;
            __syncthreads();
            fa_load<TILE>(Q, HS, base, p.ld, fa_q_offset(p, h), i0, p.T, HS);
            fa_load<TILE>(dO, HS, dbase, p.ldo, h * HS, i0, p.T, HS);
            for (int i = threadIdx.x; i < TILE; i += FA_NT) {
                L[i] = i0 + i < p.T ? lse[row0 + i0 + i] : 0.0f;
                Dt[i] = i0 + i < p.T ? D[row0 + i0 + i] : 0.0f;
            }
            __syncthreads();
            fa_probs<TILE>(P, dS, Q, dO, L, Dt, K, V, p, b, h, i0, j0);
            __syncthreads();
            for (int e = threadIdx.x; e < TILE * HS; e += FA_NT) {
                const int r = e / HS, d = e % HS;
                float av = 0.0f, ak = 0.0f;
                for (int i = 0; i < TILE; i++) {
                    av += P[i * SP + r] * dO[i * HS + d];
                    ak += dS[i * SP + r] * Q[i * HS + d];
                }
                dV[e] += av;
                dK[e] += ak * p.scale;
            }
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < TILE * HS; e += FA_NT) {
        const int r = e / HS, d = e % HS;
        if (j0 + r >= p.T) continue;
        float *row = dqkv + ((size_t)b * p.T + j0 + r) * p.ld;
        row[ko + d] = dK[e];
        row[vo + d] = dV[e];
    }
}

/* grid (query tiles of T, B * NH): dq of the head's query tile */
template <int TILE>
__global__ static void k_flash_bwd_q(float *dqkv, const float *dout, const float *qkv,
                                     const float *lse, const float *D, struct fa_params p)
{
    MT_DYNAMIC_SHARED(float, sm);
    const int HS = p.HS, HP = HS + 1, SP = TILE + 1;
    float *Q = sm, *dO = Q + TILE * HS, *dQ = dO + TILE * HS, *K = dQ + TILE * HS, *V = K + TILE * HP;
    float *dS = V + TILE * HP, *L = dS + TILE * SP, *Dt = L + TILE;
    const int bh = blockIdx.y, b = bh / p.NH, h = bh % p.NH, i0 = blockIdx.x * TILE;
    const int qo = fa_q_offset(p, h), ko = fa_k_offset(p, h / p.per);
    const float *base = qkv + (size_t)b * p.T * p.ld;
    const size_t row0 = (size_t)bh * p.T;
    fa_load<TILE>(Q, HS, base, p.ld, qo, i0, p.T, HS);
    fa_load<TILE>(dO, HS, dout + (size_t)b * p.T * p.ldo, p.ldo, h * HS, i0, p.T, HS);
    for (int e = threadIdx.x; e < TILE * HS; e += FA_NT) dQ[e] = 0.0f;
    for (int i = threadIdx.x; i < TILE; i += FA_NT) {
        L[i] = i0 + i < p.T ? lse[row0 + i0 + i] : 0.0f;
        Dt[i] = i0 + i < p.T ? D[row0 + i0 + i] : 0.0f;
    }
    const int nq = p.T - i0 < TILE ? p.T - i0 : TILE;
    const int jend = fa_last_key(p, b, i0 + nq - 1);
    for (int j0 = fa_first_tile(p, b, i0, TILE); j0 <= jend; j0 += TILE) {
        __syncthreads();
        fa_load<TILE>(K, HP, base, p.ld, ko, j0, p.T, HS);
        fa_load<TILE>(V, HP, base, p.ld, ko + HS, j0, p.T, HS);
        __syncthreads();
        fa_probs<TILE>(NULL, dS, Q, dO, L, Dt, K, V, p, b, h, i0, j0);
        __syncthreads();
        for (int e = threadIdx.x; e < TILE * HS; e += FA_NT) {
            const int i = e / HS, d = e % HS;
            float acc = 0.0f;
            for (int r = 0; r < TILE; r++) acc += dS[i * SP + r] * K[r * HP + d];
            dQ[e] += acc;
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < nq * HS; e += FA_NT) {
        const int i = e / HS, d = e % HS;
        dqkv[((size_t)b * p.T + i0 + i) * p.ld + qo + d] = dQ[e] * p.scale;
    }
}

static struct fa_params fa_params_of(const struct mt_attn_args *a)
{
    struct fa_params p;
    p.T = a->T, p.t0 = a->t0, p.Tq = a->T - a->t0, p.NH = a->heads, p.per = a->heads / a->groups;
    p.HS = a->head_dim, p.ld = mt_qkv_width(a), p.ldo = a->heads * a->head_dim;
    p.causal = a->causal, p.lengths = a->lengths, p.doc_start = a->doc_start;
    p.scale = 1.0f / sqrtf((float)a->head_dim);
    p.drop = a->dropout;
    p.thr = a->dropout.p > 0.0f ? mt_dropout_threshold(a->dropout.p) : 0;
    p.dscale = a->dropout.p > 0.0f ? mt_dropout_scale(a->dropout.p) : 1.0f;
    return p;
}

/* the tile for a head size: 32 rows up to 128 dims, 16 up to 256 (the
 * backward's shared memory, ~100 KiB at the largest, fits sm_80 and later) */
static int fa_tile(int HS)
{
    if (HS > 256)
        mt_user_error("use --attention-backend unfused for wider heads",
                      "cuda flash attention takes heads of up to 256 dimensions, not %d", HS);
    return HS <= 128 ? 32 : 16;
}

/* dynamic shared memory above 48 KiB must be asked for, per kernel */
static void fa_smem(const void *kernel, size_t bytes)
{
    if (bytes > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

static unsigned tiles_of(int n, int tile) { return (unsigned)((n + tile - 1) / tile); }

template <int TILE>
static void flash_fwd(mt_backend *be, float *out, float *lse, const float *qkv, const struct fa_params &p, int B)
{
    const int HS = p.HS;
    const size_t smem = sizeof(float) * ((size_t)TILE * (3 * HS + HS + 1) + TILE * (TILE + 1) + 3 * TILE);
    fa_smem((const void *)k_flash_fwd<TILE>, smem);
    MT_LAUNCH(k_flash_fwd<TILE>, dim3(tiles_of(p.Tq, TILE), (unsigned)(B * p.NH)), FA_NT, smem,
              STREAM(be))(out, lse, qkv, p);
    CUDA_CHECK_LAUNCH();
}

template <int TILE>
static void flash_bwd(mt_backend *be, float *dqkv, const float *dout, const float *qkv, const float *lse,
                      const float *D, const struct fa_params &p, int B)
{
    const size_t HS = (size_t)p.HS, HP = HS + 1, SP = TILE + 1;
    const size_t kv = sizeof(float) * (TILE * (2 * HP + 4 * HS) + 2 * TILE * SP + 2 * TILE);
    const size_t q = sizeof(float) * (TILE * (3 * HS + 2 * HP) + TILE * SP + 2 * TILE);
    fa_smem((const void *)k_flash_bwd_kv<TILE>, kv);
    fa_smem((const void *)k_flash_bwd_q<TILE>, q);
    MT_LAUNCH(k_flash_bwd_kv<TILE>, dim3(tiles_of(p.T, TILE), (unsigned)(B * (p.NH / p.per))), FA_NT, kv,
              STREAM(be))(dqkv, dout, qkv, lse, D, p);
    CUDA_CHECK_LAUNCH();
    MT_LAUNCH(k_flash_bwd_q<TILE>, dim3(tiles_of(p.T, TILE), (unsigned)(B * p.NH)), FA_NT, q,
              STREAM(be))(dqkv, dout, qkv, lse, D, p);
    CUDA_CHECK_LAUNCH();
}

void mt_cuda_flash_attn_fwd(mt_backend *be, mt_tensor out, mt_tensor lse, mt_tensor qkv,
                            const struct mt_attn_args *a)
{
    const struct fa_params p = fa_params_of(a);
    if (fa_tile(p.HS) == 32) flash_fwd<32>(be, mt_fp(out), mt_fp(lse), mt_fp(qkv), p, a->B);
    else flash_fwd<16>(be, mt_fp(out), mt_fp(lse), mt_fp(qkv), p, a->B);
}

void mt_cuda_flash_attn_bwd(mt_backend *be, mt_tensor dqkv, mt_tensor rowdot, mt_tensor dout,
                            mt_tensor qkv, mt_tensor out, mt_tensor lse, const struct mt_attn_args *a)
{
    const struct fa_params p = fa_params_of(a);
    const size_t rows = (size_t)a->B * a->heads * a->T;
    MT_LAUNCH(k_flash_rowdot, grid_for(rows), NT, 0, STREAM(be))(mt_fp(rowdot), mt_fp(dout), mt_fp(out),
                                                                a->T, a->heads, a->head_dim, rows);
    CUDA_CHECK_LAUNCH();
    if (fa_tile(p.HS) == 32)
        flash_bwd<32>(be, mt_fp(dqkv), mt_fp(dout), mt_fp(qkv), mt_fp(lse), mt_fp(rowdot), p, a->B);
    else
        flash_bwd<16>(be, mt_fp(dqkv), mt_fp(dout), mt_fp(qkv), mt_fp(lse), mt_fp(rowdot), p, a->B);
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

void mt_cuda_xent_max(mt_backend *be, mt_tensor rowmax, mt_tensor logits, int V_local)
{
    MT_LAUNCH(k_xent_max, (unsigned)logits.rows, NT, 0, STREAM(be))
        (mt_fp(rowmax), mt_fp(logits), V_local, (int)logits.cols);
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

void mt_cuda_xent_sumexp(mt_backend *be, mt_tensor sumexp, mt_tensor tgt, mt_tensor logits,
                         mt_tensor rowmax, mt_tensor targets, int V_local, int vocab_offset)
{
    MT_LAUNCH(k_xent_sumexp, (unsigned)logits.rows, NT, 0, STREAM(be))
        (mt_fp(sumexp), mt_fp(tgt), mt_fp(logits), mt_fp(rowmax), mt_ip(targets), V_local,
         vocab_offset, (int)logits.cols);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_xent_loss(float *losses, const float *rowmax, const float *sumexp,
                                   const float *tgt, int N)
{
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n < N) losses[n] = (float)(log((double)sumexp[n]) + rowmax[n] - tgt[n]);
}

void mt_cuda_xent_loss(mt_backend *be, mt_tensor losses, mt_tensor rowmax, mt_tensor sumexp,
                       mt_tensor tgt)
{
    const int N = (int)mt_numel(losses);
    MT_LAUNCH(k_xent_loss, (N + NT - 1) / NT, NT, 0, STREAM(be))
        (mt_fp(losses), mt_fp(rowmax), mt_fp(sumexp), mt_fp(tgt), N);
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

void mt_cuda_xent_bwd(mt_backend *be, mt_tensor dlogits, mt_tensor dlosses, mt_tensor logits,
                      mt_tensor rowmax, mt_tensor sumexp, mt_tensor targets, int V_local,
                      int vocab_offset)
{
    size_t total = (size_t)logits.rows * V_local;
    if (!total) return;
    MT_LAUNCH(k_xent_bwd, grid_for(total), NT, 0, STREAM(be))
        (mt_fp(dlogits), mt_fp(dlosses), mt_fp(logits), mt_fp(rowmax), mt_fp(sumexp),
         mt_ip(targets), V_local, vocab_offset, (int)logits.cols, total);
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

void mt_cuda_adamw(mt_backend *be, mt_tensor param, mt_tensor grad, mt_tensor m, mt_tensor v,
                   const struct mt_adamw_args *a, int zero_grad)
{
    const size_t n = (size_t)mt_numel(param);
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
    MT_LAUNCH(k_adamw, grid_for(n), NT, 0, STREAM(be))(mt_fp(param), mt_fp(grad), mt_fp(m),
                                                      mt_fp(v), n, k, zero_grad);
    CUDA_CHECK_LAUNCH();
}

/* SGD and Adafactor in double, as cpu-ref */
__global__ static void k_sgd(float *param, float *grad, float *buf, size_t n, double lr, double mom,
                             double wd, double gs, int zero_grad)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        double g = __dadd_rn(__dmul_rn((double)grad[i], gs), __dmul_rn(wd, (double)param[i]));
        if (mom != 0.0) {
            g = __dadd_rn(__dmul_rn(mom, (double)buf[i]), g);
            buf[i] = (float)g;
        }
        param[i] = (float)__dsub_rn((double)param[i], __dmul_rn(lr, g));
        if (zero_grad) grad[i] = 0.0f;
    }
}

void mt_cuda_sgd(mt_backend *be, mt_tensor param, mt_tensor grad, mt_tensor buf,
                 const struct mt_sgd_args *a, int zero_grad)
{
    const size_t n = (size_t)mt_numel(param);
    MT_LAUNCH(k_sgd, grid_for(n), NT, 0, STREAM(be))(mt_fp(param), mt_fp(grad), mt_fp(buf), n, a->lr,
                                                    a->momentum, a->weight_decay, a->grad_scale,
                                                    zero_grad);
    CUDA_CHECK_LAUNCH();
}

/* one thread per row (by_row) or per column, summed in index order */
__global__ static void k_sq_sums(float *out, const float *x, int64_t R, int64_t C, double sc,
                                 double eps, int by_row)
{
    const int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, n = by_row ? C : R;
    if (k >= (by_row ? R : C)) return;
    double s = 0.0;
    for (int64_t l = 0; l < n; l++) {
        double g = __dmul_rn((double)x[by_row ? k * C + l : l * C + k], sc);
        s = __dadd_rn(s, __dadd_rn(__dmul_rn(g, g), eps));
    }
    out[k] = (float)s;
}

void mt_cuda_sq_sums(mt_backend *be, mt_tensor rows, mt_tensor cols, mt_tensor x, float scale,
                     float eps)
{
    const int64_t R = x.rows, C = x.cols;
    MT_LAUNCH(k_sq_sums, (unsigned)((R + NT - 1) / NT), NT, 0, STREAM(be))
        (mt_fp(rows), mt_fp(x), R, C, scale, eps, 1);
    CUDA_CHECK_LAUNCH();
    MT_LAUNCH(k_sq_sums, (unsigned)((C + NT - 1) / NT), NT, 0, STREAM(be))
        (mt_fp(cols), mt_fp(x), R, C, scale, eps, 0);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_af_precond(float *g, const float *R, const float *C, float *V, int64_t cols,
                                    size_t n, double s, double eps1, double b2, double inv_mean)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        double gi = __dmul_rn((double)g[i], s);
        if (V) {
            double v = __dadd_rn(__dmul_rn(b2, (double)V[i]),
                                 __dmul_rn(1.0 - b2, __dadd_rn(__dmul_rn(gi, gi), eps1)));
            V[i] = (float)v;
            g[i] = (float)(gi / sqrt((double)V[i]));
        } else {
            double r = 1.0 / sqrt(__dmul_rn((double)R[i / cols], inv_mean));
            g[i] = (float)(__dmul_rn(gi, r) / sqrt((double)C[i % cols]));
        }
    }
}

void mt_cuda_adafactor_precond(mt_backend *be, mt_tensor grad, mt_tensor R, mt_tensor C, mt_tensor V,
                               const struct mt_adafactor_args *a)
{
    const size_t n = (size_t)mt_numel(grad);
    float *v = mt_numel(V) ? mt_fp(V) : NULL;
    MT_LAUNCH(k_af_precond, grid_for(n), NT, 0, STREAM(be))
        (mt_fp(grad), v ? NULL : mt_fp(R), v ? NULL : mt_fp(C), v, grad.cols, n, a->scale, a->eps1,
         a->beta2t, a->inv_row_mean);
    CUDA_CHECK_LAUNCH();
}

__global__ static void k_af_apply(float *p, float *u, float *M, size_t n, double step, double b1,
                                  double wd_lr, int zero_grad)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        double ui = __dmul_rn(step, (double)u[i]);
        if (b1 != 0.0) {
            ui = __dadd_rn(__dmul_rn(b1, (double)M[i]), __dmul_rn(1.0 - b1, ui));
            M[i] = (float)ui;
        }
        p[i] = (float)__dsub_rn(__dsub_rn((double)p[i], __dmul_rn(wd_lr, (double)p[i])), ui);
        if (zero_grad) u[i] = 0.0f;
    }
}

void mt_cuda_adafactor_apply(mt_backend *be, mt_tensor param, mt_tensor upd, mt_tensor M,
                             const struct mt_adafactor_args *a, int zero_grad)
{
    const size_t n = (size_t)mt_numel(param);
    /* the products as cpu-ref forms them */
    const double step = (double)a->lr * a->update_scale, wd_lr = (double)a->weight_decay * a->lr;
    MT_LAUNCH(k_af_apply, grid_for(n), NT, 0, STREAM(be))
        (mt_fp(param), mt_fp(upd), a->beta1 != 0.0f ? mt_fp(M) : NULL, n, step, a->beta1, wd_lr,
         zero_grad);
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

__global__ static void k_sum_chunks(double *partial, const float *x, size_t n, size_t nchunks)
{
    size_t ch = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (ch >= nchunks) return;
    size_t b0 = ch * MT_REDUCE_BLOCK, b1 = b0 + MT_REDUCE_BLOCK < n ? b0 + MT_REDUCE_BLOCK : n;
    double s = 0.0;
    for (size_t i = b0; i < b1; i++) s = __dadd_rn(s, (double)x[i]);
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

enum reduce_kind { RED_SUMSQ, RED_COUNT, RED_SUM };

static void chunked_reduce(mt_backend *be, double *out1, const float *x, size_t n, enum reduce_kind kind)
{
    size_t nchunks = (n + MT_REDUCE_BLOCK - 1) / MT_REDUCE_BLOCK;
    if (nchunks == 0) {
        CUDA_CHECK(cudaMemsetAsync(out1, 0, sizeof(double), STREAM(be)));
        return;
    }
    double *partial = (double *)mt_cuda_scratch(be, nchunks * sizeof(double));
    unsigned g = (unsigned)((nchunks + NT - 1) / NT);
    if (kind == RED_COUNT) MT_LAUNCH(k_count_chunks, g, NT, 0, STREAM(be))(partial, x, n, nchunks);
    else if (kind == RED_SUM) MT_LAUNCH(k_sum_chunks, g, NT, 0, STREAM(be))(partial, x, n, nchunks);
    else MT_LAUNCH(k_sumsq_chunks, g, NT, 0, STREAM(be))(partial, x, n, nchunks);
    CUDA_CHECK_LAUNCH();
    MT_LAUNCH(k_sum_in_order, 1, 1, 0, STREAM(be))(out1, partial, nchunks);
    CUDA_CHECK_LAUNCH();
}

void mt_cuda_sum_squares(mt_backend *be, double *out1, mt_tensor x)
{
    chunked_reduce(be, out1, mt_fp(x), (size_t)mt_numel(x), RED_SUMSQ);
}

void mt_cuda_sum(mt_backend *be, double *out1, mt_tensor x)
{
    chunked_reduce(be, out1, mt_fp(x), (size_t)mt_numel(x), RED_SUM);
}

void mt_cuda_count_nonfinite(mt_backend *be, double *out1, mt_tensor x)
{
    chunked_reduce(be, out1, mt_fp(x), (size_t)mt_numel(x), RED_COUNT);
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
