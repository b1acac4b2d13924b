/* cuda_backend.cu: the CUDA backend's vtable, memory members, GEMM and
 * constructor. One device (the rank's, see mt_backend_cuda_create), one
 * stream, one cuBLAS handle; fp32 with TF32 off unless set_tf32 asks. Kernels are in kernels.cu, the
 * communicators in comm.cu. The only exported entry point is
 * mt_backend_cuda_create, called by src/backend/backend.c. */
#include "cuda/cuda_common.cuh"
#include "process/process.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mt_cublas_status_string(cublasStatus_t s)
{
    return cublasGetStatusString(s);
}

void *mt_cuda_scratch(mt_backend *be, size_t nbytes)
{
    struct mt_cuda_ctx *x = mt_cuda_ctx_of(be);
    if (nbytes > x->scratch_bytes) {
        if (x->scratch) CUDA_CHECK(cudaFree(x->scratch)); /* synchronises the device */
        size_t want = nbytes < (1u << 20) ? (1u << 20) : nbytes;
        CUDA_CHECK(cudaMalloc(&x->scratch, want));
        x->scratch_bytes = want;
    }
    return x->scratch;
}

/* ---- lifetime ----------------------------------------------------------------- */

static const char *cu_name(const mt_backend *be)
{
    return mt_cuda_ctx_of(be)->name;
}

static void cu_free(mt_backend *be)
{
    struct mt_cuda_ctx *x = mt_cuda_ctx_of(be);
    CUDA_CHECK(cudaStreamSynchronize(x->stream));
    mt_cuda_comm_destroy_world(be);
    if (x->scratch) CUDA_CHECK(cudaFree(x->scratch));
    CUBLAS_CHECK(cublasDestroy(x->cublas));
    CUDA_CHECK(cudaStreamDestroy(x->stream));
    free(x);
    free(be);
}

/* ---- memory ------------------------------------------------------------------- */

static void *cu_alloc(mt_backend *be, size_t nbytes)
{
    (void)be;
    void *p = NULL;
    /* cudaMalloc aligns to 256 bytes; size 0 still gets a real pointer */
    cudaError_t e = cudaMalloc(&p, nbytes ? nbytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* clear the sticky-free error state */
        return NULL;
    }
    return p;
}

static void cu_dealloc(mt_backend *be, void *p)
{
    (void)be;
    if (p) CUDA_CHECK(cudaFree(p));
}

static void cu_memset0(mt_backend *be, void *dst, size_t nbytes)
{
    if (nbytes) CUDA_CHECK(cudaMemsetAsync(dst, 0, nbytes, mt_cuda_ctx_of(be)->stream));
}

/* Synchronous: the host buffer may be reused as soon as the call returns. */
static void cu_upload(mt_backend *be, void *dst, const void *host_src, size_t nbytes)
{
    cudaStream_t s = mt_cuda_ctx_of(be)->stream;
    if (!nbytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, host_src, nbytes, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
}

static void cu_download(mt_backend *be, void *host_dst, const void *src, size_t nbytes)
{
    cudaStream_t s = mt_cuda_ctx_of(be)->stream;
    if (!nbytes) return;
    CUDA_CHECK(cudaMemcpyAsync(host_dst, src, nbytes, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
}

static void cu_copy_2d(mt_backend *be, void *dst, size_t dst_pitch, const void *src,
                       size_t src_pitch, size_t row_bytes, size_t rows)
{
    cudaStream_t s = mt_cuda_ctx_of(be)->stream;
    if (!rows || !row_bytes) return;
    if (rows == 1)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, row_bytes, cudaMemcpyDeviceToDevice, s));
    else
        CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, rows,
                                     cudaMemcpyDeviceToDevice, s));
}

static void cu_synchronize(mt_backend *be)
{
    CUDA_CHECK(cudaStreamSynchronize(mt_cuda_ctx_of(be)->stream));
}

/* ---- GEMM ------------------------------------------------------------------------ */

/* Row-major C (m x n) = op(A) op(B) is column-major C^T (n x m) = op(B)^T op(A)^T:
 * the same buffers and leading dimensions, operands swapped, the same
 * transpose flags (a row-major matrix read column-major is its transpose). */
void mt_cuda_gemm(mt_backend *be, const struct mt_gemm_args *g)
{
    cublasHandle_t h = mt_cuda_ctx_of(be)->cublas;
    cublasOperation_t opa = g->ta == MT_TRANS_T ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = g->tb == MT_TRANS_T ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (g->m == 0 || g->n == 0) return;
    const float *A = (const float *)g->a, *B = (const float *)g->b;
    float *C = (float *)g->c;
    if (g->k == 0) { /* no products: C = beta C, without relying on cuBLAS's k = 0 case */
        mt_cuda_gemm_beta_only(be, C, g->m, g->n, g->ldc, g->stride_c, g->batch, g->beta);
        return;
    }
    if (g->a_type != MT_DTYPE_F32) {
        /* bf16 / f16 inputs, f32 C and sums: cublasGemmEx on the tensor cores */
        const cudaDataType t = g->a_type == MT_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
        if (g->batch <= 1)
            CUBLAS_CHECK(cublasGemmEx(h, opb, opa, g->n, g->m, g->k, &g->alpha, g->b, t, g->ldb, g->a, t,
                                      g->lda, &g->beta, C, CUDA_R_32F, g->ldc, CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
        else
            CUBLAS_CHECK(cublasGemmStridedBatchedEx(
                h, opb, opa, g->n, g->m, g->k, &g->alpha, g->b, t, g->ldb, (long long)g->stride_b, g->a, t,
                g->lda, (long long)g->stride_a, &g->beta, C, CUDA_R_32F, g->ldc, (long long)g->stride_c,
                g->batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        return;
    }
    if (g->batch <= 1)
        CUBLAS_CHECK(cublasSgemm(h, opb, opa, g->n, g->m, g->k, &g->alpha, B, g->ldb, A, g->lda,
                                 &g->beta, C, g->ldc));
    else
        CUBLAS_CHECK(cublasSgemmStridedBatched(h, opb, opa, g->n, g->m, g->k, &g->alpha, B,
                                               g->ldb, (long long)g->stride_b, A, g->lda,
                                               (long long)g->stride_a, &g->beta, C, g->ldc,
                                               (long long)g->stride_c, g->batch));
}

/* fp32 by default, so that a GPU run can be compared with a CPU run;
 * --tf32 lets cuBLAS round GEMM inputs to TF32 (10-bit mantissa) and use
 * the tensor cores. Kernels are unaffected. */
static void cu_set_tf32(mt_backend *be, int on)
{
    CUBLAS_CHECK(cublasSetMathMode(mt_cuda_ctx_of(be)->cublas,
                                   on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

/* f32 everywhere, and GEMMs with bf16 / f16 inputs (cublasGemmEx) */
static int cu_supports(const mt_backend *be, enum mt_op op, enum mt_dtype t)
{
    (void)be;
    return t == MT_DTYPE_F32 || (op == MT_OP_GEMM && (t == MT_DTYPE_BF16 || t == MT_DTYPE_F16));
}

/* ---- the vtable -------------------------------------------------------------------- */

static const struct mt_backend_i cuda_iface = {
    /* lifetime */ cu_name, cu_free,
    /* memory */ cu_alloc, cu_dealloc, cu_memset0, cu_upload, cu_download, cu_copy_2d,
    cu_synchronize, cu_supports,
    /* gemm */ mt_cuda_gemm,
    /* kernels */ mt_cuda_embed_fwd, mt_cuda_embed_bwd, mt_cuda_layernorm_fwd,
    mt_cuda_layernorm_bwd, mt_cuda_rmsnorm_fwd, mt_cuda_rmsnorm_bwd, mt_cuda_bias_add,
    mt_cuda_bias_bwd, mt_cuda_act_fwd, mt_cuda_act_bwd, mt_cuda_swiglu_fwd, mt_cuda_swiglu_bwd,
    mt_cuda_add, mt_cuda_scale, mt_cuda_round_half, mt_cuda_to_half, mt_cuda_dropout, mt_cuda_rope, mt_cuda_attn_fwd,
    mt_cuda_attn_bwd, mt_cuda_flash_attn_fwd, mt_cuda_flash_attn_bwd, mt_cuda_xent_max, mt_cuda_xent_sumexp, mt_cuda_xent_loss, mt_cuda_xent_bwd,
    mt_cuda_adamw, mt_cuda_sgd, mt_cuda_sq_sums, mt_cuda_adafactor_precond,
    mt_cuda_adafactor_apply, mt_cuda_sum_squares, mt_cuda_sum, mt_cuda_count_nonfinite,
    /* communicators */ mt_cuda_comm_world, mt_cuda_comm_split, mt_cuda_comm_free,
    mt_cuda_comm_rank, mt_cuda_comm_size, mt_cuda_all_reduce, mt_cuda_all_gather,
    mt_cuda_reduce_scatter, mt_cuda_broadcast, mt_cuda_send, mt_cuda_recv, mt_cuda_sendrecv,
    /* options */ cu_set_tf32,
};

#ifdef MT_CUDA_EMU
extern "C" const char mt_backend_cuda_kind[] = "emulated on the CPU";
#else
extern "C" const char mt_backend_cuda_kind[] = "cuda";
#endif


static mt_backend *refuse(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    (void)cudaGetLastError();
    return NULL;
}

/* One GPU per rank: the rank's position among the ranks of its host picks
 * the device (NCCL cannot put two ranks of one communicator on one GPU). */
extern "C" mt_backend *mt_backend_cuda_create(char *err, size_t errlen)
{
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0)
        return refuse(err, errlen, "backend 'cuda': no CUDA device available (%s)",
                      e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found 0");
    /* the process layer starts the job (MPI, abort hook, rank prefix) */
    mt_proc_comm *w = mt_proc_world();
    const int rank = mt_proc_rank(w), size = mt_proc_size(w);
    int local_rank = 0, local_size = 1;
    mt_proc_node_local(&local_rank, &local_size);
#ifndef MT_CUDA_EMU
#ifndef HAVE_NCCL
    if (size > 1)
        return refuse(err, errlen,
                      "backend 'cuda': %d ranks, but this build has no NCCL for their "
                      "collectives; install NCCL and rebuild with ./configure --with-nccl",
                      size);
#endif
#endif
    if (local_size > ndev)
        return refuse(err, errlen,
                      "backend 'cuda': %d ranks on this host but %d GPU%s visible; the CUDA "
                      "backend runs one rank per GPU (launch at most %d ranks per host, or use "
                      "--backend=cpu)",
                      local_size, ndev, ndev == 1 ? "" : "s", ndev);
    struct mt_cuda_ctx *x = (struct mt_cuda_ctx *)calloc(1, sizeof *x);
    mt_backend *be = (mt_backend *)calloc(1, sizeof *be);
    if (!x || !be) mt_die("cuda backend: out of host memory");
    x->device = local_rank;
    x->world_rank = rank;
    x->world_size = size;
#ifdef MT_CUDA_EMU
    snprintf(x->name, sizeof x->name, "cuda-emu");
#else
    snprintf(x->name, sizeof x->name, "cuda");
#endif
    CUDA_CHECK(cudaSetDevice(x->device));
    CUDA_CHECK(cudaStreamCreate(&x->stream));
    CUBLAS_CHECK(cublasCreate(&x->cublas));
    CUBLAS_CHECK(cublasSetStream(x->cublas, x->stream));
    be->iface = &cuda_iface;
    be->context = x;
    cu_set_tf32(be, 0); /* plain fp32 unless asked */
    return be;
}
