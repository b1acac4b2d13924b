/* cuda_common.cuh: shared declarations of the CUDA backend (backends/cuda/).
 *
 * One device, one stream, one cuBLAS handle per backend. Every CUDA runtime
 * and cuBLAS call goes through CUDA_CHECK / CUBLAS_CHECK, which stop the
 * program (mt_die) naming the call, file, line and the library's message.
 * Only mt_backend_cuda_create is exported (see cuda_backend.cu). */
#ifndef MT_CUDA_COMMON_CUH
#define MT_CUDA_COMMON_CUH
#ifdef HAVE_CONFIG_H
/* HAVE_NCCL: configure's results reach the .cu files only through here */
#include "config.h"
#endif
#ifdef MT_CUDA_EMU
/* compiled as C++ for the CPU emulation (tests only): see emu/cuda_emu.h */
#include "cuda/emu/cuda_emu.h"
#else
#include <cuda_runtime.h>
#include <cublas_v2.h>
/* kernel launches and dynamic shared memory are written through these two
 * macros so that the emulation can replace the syntax nvcc alone parses */
#define MT_LAUNCH(k, grid, block, smem, stream) k<<<grid, block, smem, stream>>>
#define MT_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif
#include <stddef.h>
#include <stdint.h>
#include "backend/backend_impl.h" /* backend.h has its own extern "C" guards */
extern "C" {
#include "core/error.h"
}

const char *mt_cublas_status_string(cublasStatus_t s);

/* One template for both libraries: the call text, where, and the message. */
#define MT_GPU_CHECK(call, status_t, ok, to_string) \
    do { \
        status_t mt_st_ = (call); \
        if (mt_st_ != (ok)) \
            mt_die("cuda backend: %s failed at %s:%d: %s (%d)", #call, __FILE__, __LINE__, \
                   to_string(mt_st_), (int)mt_st_); \
    } while (0)
#define CUDA_CHECK(call) MT_GPU_CHECK(call, cudaError_t, cudaSuccess, cudaGetErrorString)
#define CUBLAS_CHECK(call) \
    MT_GPU_CHECK(call, cublasStatus_t, CUBLAS_STATUS_SUCCESS, mt_cublas_status_string)
/* after a kernel launch */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

struct mt_cuda_ctx {
    int device;
    int world_rank, world_size; /* of the world (backends/process/) */
    cudaStream_t stream;
    cublasHandle_t cublas;
    char name[16];
    mt_comm *world;
    void *scratch;
    size_t scratch_bytes;
};

static inline struct mt_cuda_ctx *mt_cuda_ctx_of(const mt_backend *be)
{
    return (struct mt_cuda_ctx *)be->context;
}

/* Device scratch owned by the backend, grown on demand (contents undefined;
 * valid until the next call that asks for scratch). */
void *mt_cuda_scratch(mt_backend *be, size_t nbytes);

/* the compute members: mt_cuda_gemm in cuda_backend.cu, the rest in
 * kernels.cu (backend/backend_impl.h) */
MT_BACKEND_DECLARE_COMPUTE(mt_cuda)

/* kernels.cu: C = beta C, for the GEMM with k = 0 */
void mt_cuda_gemm_beta_only(mt_backend *be, float *c, int m, int n, int ldc, int64_t stride_c,
                            int batch, float beta);

/* comm.cu */
mt_comm *mt_cuda_comm_world(mt_backend *be);
mt_comm *mt_cuda_comm_split(mt_backend *be, mt_comm *parent, int color, int key);
void mt_cuda_comm_free(mt_backend *be, mt_comm *c);
void mt_cuda_comm_destroy_world(mt_backend *be);
int mt_cuda_comm_rank(const mt_comm *c);
int mt_cuda_comm_size(const mt_comm *c);
void mt_cuda_all_reduce(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                        enum mt_redop op);
void mt_cuda_all_gather(mt_backend *be, mt_comm *c, void *recv, const void *send,
                        size_t count_per_rank, enum mt_dtype t);
void mt_cuda_reduce_scatter(mt_backend *be, mt_comm *c, void *recv, const void *send,
                            size_t count_per_rank, enum mt_dtype t, enum mt_redop op);
void mt_cuda_broadcast(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                       int root);
void mt_cuda_send(mt_backend *be, mt_comm *c, const void *buf, size_t count, enum mt_dtype t,
                  int peer);
void mt_cuda_recv(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                  int peer);
void mt_cuda_sendrecv(mt_backend *be, mt_comm *c, const void *sbuf, int dst, void *rbuf,
                      int src, size_t count, enum mt_dtype t);

#endif
