/* cuda_emu.h: a CPU emulation of the part of CUDA, cuBLAS and NCCL that the
 * CUDA backend uses, so that the backend's own source (kernels, launches,
 * GEMM mapping, communicators) runs and is tested on machines without a GPU.
 *
 * The same .cu files are compiled as C++ with MT_CUDA_EMU defined
 * (the files backends/cuda/emu/NAME_emu.cc include them); cuda_common.cuh then includes
 * this header instead of the toolkit's. What it does:
 *   - kernels: MT_LAUNCH runs every block of the grid in turn; the threads of
 *     a block are fibers (ucontext), switched at __syncthreads(), so that
 *     shared-memory reductions behave as on the device. Kernels that never
 *     reach a barrier (learnt on their first launch) run as plain calls.
 *   - launch checks the device would make: block size <= 1024, grid limits,
 *     dynamic shared memory > 48 KiB only after cudaFuncSetAttribute, and
 *     every non-null pointer argument must point into a cudaMalloc block.
 *   - memory: cudaMalloc returns host memory filled with 0xff bytes (NaN as
 *     float), so reading memory nobody wrote shows up in the results; copies
 *     check their direction and bounds against the allocation table.
 *   - cuBLAS: column-major SGEMM (plain and strided batched) as loops, with
 *     cuBLAS's argument checks.
 *   - NCCL: communicators over the CPU backend's communicator layer (MPI when
 *     built with it), so multi-rank runs of the CUDA code run under mpiexec.
 * Everything is synchronous: a stream is a name. Not emulated: warps and
 * their intrinsics, atomics, texture memory, events, graphs. */
#ifndef MT_CUDA_EMU_H
#define MT_CUDA_EMU_H
#include <cmath>
#include <stddef.h>
#include <stdint.h>
#include <tuple>
#include <utility>

/* ---- language ------------------------------------------------------------ */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static /* one block runs at a time */
#define MT_DYNAMIC_SHARED(type, name) type *name = (type *)mt_emu_dynamic_smem()
#define MT_LAUNCH(k, grid, block, smem, stream) mt_emu_launcher(k, #k, grid, block, smem, stream)

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
extern dim3 threadIdx, blockIdx, blockDim, gridDim;

void __syncthreads(void);
/* the emulation is built with -ffp-contract=off: no fused multiply-adds */
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
using std::isfinite;

/* ---- runtime ------------------------------------------------------------- */
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
};
typedef struct mt_emu_stream *cudaStream_t;
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor, multiProcessorCount;
};

const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaMalloc(void **p, size_t n);
template <typename T> static inline cudaError_t cudaMalloc(T **p, size_t n)
{
    return cudaMalloc((void **)p, n);
}
cudaError_t cudaFree(void *p);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k,
                            cudaStream_t s);
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
                              size_t width, size_t height, cudaMemcpyKind k, cudaStream_t s);
cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute a, int v);

/* ---- cuBLAS -------------------------------------------------------------- */
enum cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_INVALID_VALUE = 7,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasMath_t { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };
typedef struct mt_emu_cublas *cublasHandle_t;
const char *cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m);
cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t *m);
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float *alpha, const float *A, int lda,
                           const float *B, int ldb, const float *beta, float *C, int ldc);
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda,
                                         long long sa, const float *B, int ldb, long long sb,
                                         const float *beta, float *C, int ldc, long long sc,
                                         int batch);
/* cublasGemmEx: bf16 or f16 A and B with f32 C and f32 sums (what the
 * backend issues), or f32 throughout; anything else is refused */
enum cudaDataType { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType at, int lda,
                            const void *B, cudaDataType bt, int ldb, const void *beta, void *C,
                            cudaDataType ct, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t algo);
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                          int m, int n, int k, const void *alpha, const void *A,
                                          cudaDataType at, int lda, long long sa, const void *B,
                                          cudaDataType bt, int ldb, long long sb, const void *beta,
                                          void *C, cudaDataType ct, int ldc, long long sc, int batch,
                                          cublasComputeType_t compute, cublasGemmAlgo_t algo);

/* ---- NCCL ------------------------------------------------------------------ */
#define NCCL_MAJOR 2
#define NCCL_MINOR 28
#define NCCL_VERSION_CODE 22800
#define NCCL_VERSION(X, Y, Z) ((X) * 10000 + (Y) * 100 + (Z))
#define NCCL_SPLIT_NOCOLOR -1
enum ncclResult_t {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
};
enum ncclDataType_t { ncclInt32 = 2, ncclFloat16 = 6, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9 };
enum ncclRedOp_t { ncclSum = 0, ncclMax = 3, ncclAvg = 4 };
typedef struct {
    char internal[128];
} ncclUniqueId;
typedef struct mt_emu_nccl *ncclComm_t;
typedef struct {
    int blocking;
} ncclConfig_t;
const char *ncclGetErrorString(ncclResult_t r);
const char *ncclGetLastError(ncclComm_t c);
ncclResult_t ncclGetUniqueId(ncclUniqueId *id);
ncclResult_t ncclCommInitRank(ncclComm_t *c, int nranks, ncclUniqueId id, int rank);
ncclResult_t ncclCommSplit(ncclComm_t c, int color, int key, ncclComm_t *nc, ncclConfig_t *cfg);
ncclResult_t ncclCommDestroy(ncclComm_t c);
ncclResult_t ncclCommCount(const ncclComm_t c, int *n);
ncclResult_t ncclCommUserRank(const ncclComm_t c, int *r);
ncclResult_t ncclAllReduce(const void *s, void *r, size_t n, ncclDataType_t t, ncclRedOp_t op,
                           ncclComm_t c, cudaStream_t st);
ncclResult_t ncclAllGather(const void *s, void *r, size_t n, ncclDataType_t t, ncclComm_t c,
                           cudaStream_t st);
ncclResult_t ncclReduceScatter(const void *s, void *r, size_t n, ncclDataType_t t,
                               ncclRedOp_t op, ncclComm_t c, cudaStream_t st);
ncclResult_t ncclBroadcast(const void *s, void *r, size_t n, ncclDataType_t t, int root,
                           ncclComm_t c, cudaStream_t st);
ncclResult_t ncclSend(const void *s, size_t n, ncclDataType_t t, int peer, ncclComm_t c,
                      cudaStream_t st);
ncclResult_t ncclRecv(void *r, size_t n, ncclDataType_t t, int peer, ncclComm_t c,
                      cudaStream_t st);
ncclResult_t ncclGroupStart(void);
ncclResult_t ncclGroupEnd(void);

/* ---- kernel launch ----------------------------------------------------------- */
void *mt_emu_dynamic_smem(void);
/* Runs body(ctx) once per thread of the grid; name and key identify the kernel. */
void mt_emu_run_grid(const void *key, const char *name, dim3 grid, dim3 block, size_t smem,
                     cudaStream_t st, void (*body)(void *), void *ctx);
/* Records an error (as a failed launch would) unless p is null or device memory. */
void mt_emu_check_arg(const char *kernel, int index, const void *p);

template <typename T> static inline void mt_emu_check_one(const char *, int, const T &) {}
template <typename T> static inline void mt_emu_check_one(const char *k, int i, T *const &p)
{
    mt_emu_check_arg(k, i, (const void *)p);
}

template <typename... P> struct mt_emu_launch {
    void (*kernel)(P...);
    const char *name;
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    template <typename... A> void operator()(A &&...a)
    {
        std::tuple<P...> args(std::forward<A>(a)...); /* the kernel's parameter types */
        check(args, std::index_sequence_for<P...>{});
        struct call {
            void (*k)(P...);
            std::tuple<P...> *args;
            static void run(void *c)
            {
                call *x = (call *)c;
                std::apply(x->k, *x->args); /* each thread gets its own copies */
            }
        } c = {kernel, &args};
        mt_emu_run_grid((const void *)kernel, name, grid, block, smem, stream, call::run, &c);
    }
    template <size_t... I> void check(const std::tuple<P...> &t, std::index_sequence<I...>)
    {
        (mt_emu_check_one(name, (int)I, std::get<I>(t)), ...);
    }
};

template <typename... P>
static inline mt_emu_launch<P...> mt_emu_launcher(void (*k)(P...), const char *name, dim3 grid,
                                                  dim3 block, size_t smem, cudaStream_t st)
{
    return mt_emu_launch<P...>{k, name, grid, block, smem, st};
}

#endif
