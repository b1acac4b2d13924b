/* emu.cc: the CPU emulation of CUDA, cuBLAS and NCCL declared in cuda_emu.h.
 * Test machinery only: it runs the CUDA backend's own code on machines
 * without a GPU (see cuda_emu.h for what is and is not emulated). Errors in
 * the emulated program that a GPU would report as a crash (a host pointer
 * handed to a kernel, a copy past the end of an allocation) stop the program
 * here with a message naming the kernel or call; errors that the CUDA API
 * returns are returned. */
#include "cuda/emu/cuda_emu.h"
#include "core/half.h" /* the 16-bit inputs of cublasGemmEx */
#include <map>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unordered_map>
#include <vector>
extern "C" {
#include "core/error.h"
#include "process/process.h"
}

dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {

/* ---- errors ------------------------------------------------------------------ */

cudaError_t last_error = cudaSuccess;

cudaError_t fail(cudaError_t e, const char *fmt, ...)
{
    /* the device's message is terse; the emulator says what it saw */
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cuda emulator: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    last_error = e;
    return e;
}

/* ---- device memory ---------------------------------------------------------------- */

std::map<uintptr_t, size_t> allocations; /* base -> size */

/* the allocation holding [p, p + n), or none (n = 0 accepts one past the end) */
bool in_device(const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p;
    auto it = allocations.upper_bound(a);
    if (it == allocations.begin()) return false;
    --it;
    return a >= it->first && a + n <= it->first + it->second;
}

bool on_device(const void *p)
{
    return in_device(p, 0);
}

/* ---- fibers: the threads of one block ----------------------------------------------- */

/* A context switch is the emulator's inner loop (every thread of every block
 * at every barrier). On x86-64 it is a dozen instructions below; elsewhere
 * swapcontext, which also saves the signal mask with a system call and is
 * some 20 times slower. */
#if defined(__x86_64__) && !defined(MT_EMU_UCONTEXT)
/* mt_emu_switch(&save, to): pushes the callee-saved registers, stores the
 * stack pointer in *save, and resumes the context whose stack pointer is
 * `to` (made by context_init or saved here). The SSE and x87 control words
 * are not switched: every fiber runs with the program's, which the kernels
 * never change. */
extern "C" void mt_emu_switch(void **save, void *to);
__asm__(".text\n"
        ".globl mt_emu_switch\n"
        ".type mt_emu_switch,@function\n"
        "mt_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size mt_emu_switch, .-mt_emu_switch\n"
        ".section .note.GNU-stack,\"\",@progbits\n"
        ".text\n");

struct context {
    void *sp;
};

/* a fresh context that enters fn() on the given stack */
void context_init(context *c, char *stack, size_t bytes, void (*fn)(void))
{
    uintptr_t top = ((uintptr_t)(stack + bytes)) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = NULL;          /* fn's return address: it never returns */
    *--sp = (void *)fn;    /* where mt_emu_switch's ret goes */
    for (int i = 0; i < 6; i++) *--sp = NULL; /* rbp rbx r12-r15 */
    c->sp = sp;
}

void context_switch(context *from, context *to) { mt_emu_switch(&from->sp, to->sp); }
#else
struct context {
    ucontext_t uc;
};

void context_init(context *c, char *stack, size_t bytes, void (*fn)(void))
{
    if (getcontext(&c->uc) != 0) mt_die("cuda emulator: getcontext failed");
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = bytes;
    c->uc.uc_link = NULL; /* fn never returns */
    makecontext(&c->uc, fn, 0);
}

void context_switch(context *from, context *to)
{
    if (swapcontext(&from->uc, &to->uc) != 0) mt_die("cuda emulator: swapcontext failed");
}
#endif

enum { READY, WAITING, DONE };
struct fiber {
    context ctx;
    char *stack;
    int state;
};
const size_t stack_bytes = 256 << 10;
std::vector<fiber> fibers(1024);
context scheduler;
int current = -1;
bool with_fibers = false, barrier_seen = false;
void (*body_fn)(void *);
void *body_ctx;
const char *kernel_name = "?";
std::vector<char> dyn_smem;
std::unordered_map<const void *, bool> uses_barrier; /* learnt at a kernel's first launch */
std::unordered_map<const void *, int> smem_optin;    /* cudaFuncSetAttribute */

/* MT_CUDA_EMU_REVERSE=1 runs the blocks of a grid, and the threads of a
 * block between barriers, in reverse order. A GPU promises no order, so a
 * kernel whose result changes with it has a race (two blocks or threads
 * updating one element without a barrier or an atomic); the tests compare
 * runs in both orders bit for bit. */
bool reverse_order(void)
{
    static int r = -1;
    if (r < 0) {
        const char *s = getenv("MT_CUDA_EMU_REVERSE");
        r = s && *s && strcmp(s, "0") != 0;
    }
    return r != 0;
}

/* the i-th of n in the chosen order */
unsigned nth(unsigned i, unsigned n) { return reverse_order() ? n - 1 - i : i; }

void set_thread(unsigned t)
{
    threadIdx.x = t % blockDim.x;
    threadIdx.y = (t / blockDim.x) % blockDim.y;
    threadIdx.z = t / (blockDim.x * blockDim.y);
}

void fiber_main(void)
{
    body_fn(body_ctx);
    fibers[current].state = DONE;
    context_switch(&fibers[current].ctx, &scheduler); /* never resumed */
    mt_die("cuda emulator: a finished thread was resumed");
}

void run_block_fibers(unsigned nthreads)
{
    for (unsigned t = 0; t < nthreads; t++) {
        fiber &f = fibers[t];
        if (!f.stack) {
            void *s = mmap(NULL, stack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                           -1, 0);
            if (s == MAP_FAILED) mt_die("cuda emulator: cannot map a fiber stack");
            f.stack = (char *)s;
        }
        context_init(&f.ctx, f.stack, stack_bytes, fiber_main);
        f.state = READY;
    }
    with_fibers = true;
    for (;;) {
        unsigned waiting = 0;
        for (unsigned i = 0; i < nthreads; i++) {
            unsigned t = nth(i, nthreads);
            if (fibers[t].state != READY) continue;
            current = (int)t;
            set_thread(t);
            context_switch(&scheduler, &fibers[t].ctx);
            if (fibers[t].state == WAITING) waiting++;
        }
        if (!waiting) break;
        /* every live thread reached the barrier: release it */
        for (unsigned t = 0; t < nthreads; t++)
            if (fibers[t].state == WAITING) fibers[t].state = READY;
    }
    with_fibers = false;
    current = -1;
}

void run_block_direct(unsigned nthreads)
{
    for (unsigned i = 0; i < nthreads; i++) {
        set_thread(nth(i, nthreads));
        body_fn(body_ctx);
    }
}

/* ---- NCCL state ---------------------------------------------------------------------- */

enum mt_dtype dtype_of(ncclDataType_t t)
{
    switch (t) {
    case ncclInt32: return MT_DTYPE_I32;
    case ncclFloat64: return MT_DTYPE_F64;
    case ncclBfloat16: return MT_DTYPE_BF16;
    case ncclFloat16: return MT_DTYPE_F16;
    default: return MT_DTYPE_F32;
    }
}

enum mt_redop op_of(ncclRedOp_t op)
{
    return op == ncclMax ? MT_REDOP_MAX : op == ncclAvg ? MT_REDOP_AVG : MT_REDOP_SUM;
}

struct p2p {
    bool send;
    void *buf;
    size_t n;
    ncclDataType_t t;
    int peer;
    ncclComm_t comm;
};
int group_depth = 0;
std::vector<p2p> group_ops;
char nccl_msg[256];

ncclResult_t nccl_fail(ncclResult_t r, const char *what)
{
    snprintf(nccl_msg, sizeof nccl_msg, "cuda emulator: %s", what);
    return r;
}

} /* namespace */

/* ---- kernels ---------------------------------------------------------------------- */

void __syncthreads(void)
{
    if (!with_fibers)
        mt_die("cuda emulator: kernel %s reached __syncthreads() in a launch run without fibers "
               "(its first launch never reached a barrier; barriers must not depend on the data)",
               kernel_name);
    barrier_seen = true;
    fibers[current].state = WAITING;
    context_switch(&fibers[current].ctx, &scheduler);
}

void *mt_emu_dynamic_smem(void)
{
    return dyn_smem.data();
}

void mt_emu_check_arg(const char *kernel, int index, const void *p)
{
    if (p && !on_device(p))
        mt_die("cuda emulator: kernel %s, argument %d: %p is not device memory (a GPU would "
               "fault: an illegal memory access)",
               kernel, index, p);
}

void mt_emu_run_grid(const void *key, const char *name, dim3 grid, dim3 block, size_t smem,
                     cudaStream_t st, void (*body)(void *), void *ctx)
{
    (void)st;
    unsigned long long nthreads = (unsigned long long)block.x * block.y * block.z;
    if (nthreads == 0 || nthreads > 1024 || block.z > 64) {
        fail(cudaErrorInvalidConfiguration, "kernel %s: block of %u x %u x %u threads", name,
             block.x, block.y, block.z);
        return;
    }
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 ||
        grid.z > 65535) {
        fail(cudaErrorInvalidConfiguration, "kernel %s: grid of %u x %u x %u blocks", name, grid.x,
             grid.y, grid.z);
        return;
    }
    auto opt = smem_optin.find(key);
    size_t limit = opt != smem_optin.end() && (size_t)opt->second > 48 * 1024
                       ? (size_t)opt->second
                       : 48 * 1024;
    if (smem > limit) {
        fail(cudaErrorInvalidValue,
             "kernel %s: %zu bytes of dynamic shared memory, above the %zu allowed (more than "
             "48 KiB needs cudaFuncSetAttribute)",
             name, smem, limit);
        return;
    }
    dyn_smem.assign(smem ? smem : 1, (char)0xff);
    body_fn = body;
    body_ctx = ctx;
    kernel_name = name;
    gridDim = grid;
    blockDim = block;
    auto known = uses_barrier.find(key);
    bool first = known == uses_barrier.end();
    bool barriers = first || known->second;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = dim3(nth(x, grid.x), nth(y, grid.y), nth(z, grid.z));
                if (barriers) {
                    barrier_seen = false;
                    run_block_fibers((unsigned)nthreads);
                    if (first) {
                        uses_barrier[key] = barrier_seen;
                        barriers = barrier_seen;
                        first = false;
                    }
                } else {
                    run_block_direct((unsigned)nthreads);
                }
            }
}

/* ---- runtime ------------------------------------------------------------------------ */

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    }
    return "unknown error";
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

static int emu_devices(void)
{
    const char *s = getenv("MT_CUDA_EMU_DEVICES"); /* how many GPUs to pretend (default 8) */
    int n = s ? atoi(s) : 8;
    return n < 0 ? 0 : n;
}

static int device_now = 0;

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = emu_devices();
    return *n ? cudaSuccess : cudaErrorNoDevice;
}

cudaError_t cudaSetDevice(int d)
{
    if (d < 0 || d >= emu_devices()) return cudaErrorInvalidDevice;
    device_now = d;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *d)
{
    *d = device_now;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d)
{
    if (d < 0 || d >= emu_devices()) return cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CUDA emulator on the CPU");
    p->totalGlobalMem = (size_t)16 << 30;
    p->major = 9;
    p->multiProcessorCount = 1;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

struct mt_emu_stream {
    int unused;
};

cudaError_t cudaStreamCreate(cudaStream_t *s)
{
    *s = new mt_emu_stream();
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    (void)s;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t n)
{
    /* exactly n bytes (256-aligned as cudaMalloc's), so that a build with
     * AddressSanitizer (--enable-asan) catches a kernel reading or writing
     * past the end of a buffer */
    void *m = NULL;
    if (posix_memalign(&m, 256, n ? n : 1) != 0) return cudaErrorMemoryAllocation;
    memset(m, 0xff, n); /* NaN: reading memory nobody wrote shows */
    allocations[(uintptr_t)m] = n;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (!p) return cudaSuccess;
    auto it = allocations.find((uintptr_t)p);
    if (it == allocations.end())
        return fail(cudaErrorInvalidDevicePointer, "cudaFree(%p): not an allocation", p);
    allocations.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s)
{
    (void)s;
    if (!in_device(p, n))
        return fail(cudaErrorInvalidValue, "cudaMemsetAsync(%p, %zu bytes): outside device memory",
                    p, n);
    memset(p, v, n);
    return cudaSuccess;
}

static cudaError_t check_copy(const char *call, void *dst, size_t dn, const void *src, size_t sn,
                              cudaMemcpyKind k)
{
    bool dst_dev = k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice;
    bool src_dev = k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice;
    if (k == cudaMemcpyDefault || k == cudaMemcpyHostToHost)
        return fail(cudaErrorInvalidMemcpyDirection, "%s: the backend names every direction", call);
    if (dst_dev ? !in_device(dst, dn) : on_device(dst))
        return fail(cudaErrorInvalidValue, "%s: destination %p (%zu bytes) is %s", call, dst, dn,
                    dst_dev ? "not inside one device allocation" : "device memory");
    if (src_dev ? !in_device(src, sn) : on_device(src))
        return fail(cudaErrorInvalidValue, "%s: source %p (%zu bytes) is %s", call, src, sn,
                    src_dev ? "not inside one device allocation" : "device memory");
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t s)
{
    (void)s;
    cudaError_t e = check_copy("cudaMemcpyAsync", dst, n, src, n, k);
    if (e != cudaSuccess) return e;
    memmove(dst, src, n);
    return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
                              size_t width, size_t height, cudaMemcpyKind k, cudaStream_t s)
{
    (void)s;
    if (width > dpitch || width > spitch)
        return fail(cudaErrorInvalidValue, "cudaMemcpy2DAsync: width %zu above a pitch (%zu, %zu)",
                    width, dpitch, spitch);
    if (!height) return cudaSuccess;
    cudaError_t e = check_copy("cudaMemcpy2DAsync", dst, (height - 1) * dpitch + width, src,
                               (height - 1) * spitch + width, k);
    if (e != cudaSuccess) return e;
    for (size_t r = 0; r < height; r++)
        memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute a, int v)
{
    if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || v < 0 || v > 227 * 1024)
        return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: attribute %d value %d", (int)a,
                    v);
    smem_optin[func] = v;
    return cudaSuccess;
}

/* ---- cuBLAS ---------------------------------------------------------------------------- */

struct mt_emu_cublas {
    cublasMath_t math;
};

const char *cublasGetStatusString(cublasStatus_t s)
{
    return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS"
           : s == CUBLAS_STATUS_INVALID_VALUE ? "CUBLAS_STATUS_INVALID_VALUE"
                                              : "CUBLAS_STATUS_NOT_INITIALIZED";
}

cublasStatus_t cublasCreate(cublasHandle_t *h)
{
    *h = new mt_emu_cublas{CUBLAS_DEFAULT_MATH};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t h)
{
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s)
{
    (void)s;
    return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = m;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t *m)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    *m = h->math;
    return CUBLAS_STATUS_SUCCESS;
}

/* TF32 keeps 10 of fp32's 23 mantissa bits (rounded to nearest even here),
 * so that --tf32 changes the emulated results as it changes the device's */
static float to_tf32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u) { /* finite */
        u += 0xfffu + ((u >> 13) & 1u);
        u &= ~0x1fffu;
    }
    memcpy(&x, &u, sizeof x);
    return x;
}

/* extent in bytes of a column-major rows x cols matrix with leading dimension ld */
static size_t extent(int rows, int cols, int ld, size_t esize)
{
    return rows && cols ? ((size_t)(cols - 1) * ld + rows) * esize : 0;
}

/* element e of a matrix of type t, as a float (16-bit types exactly) */
static float elem(const void *x, cudaDataType t, size_t e)
{
    switch (t) {
    case CUDA_R_16BF: return mt_bf16_to_f32(((const uint16_t *)x)[e]);
    case CUDA_R_16F: return mt_f16_to_f32(((const uint16_t *)x)[e]);
    default: return ((const float *)x)[e];
    }
}

/* The one GEMM of the emulation: f32 sums in k order; f32 inputs are
 * rounded to TF32 under CUBLAS_TF32_TENSOR_OP_MATH, 16-bit ones used as
 * they are (their products are exact in f32). C is f32. */
static cublasStatus_t gemm(cublasHandle_t h, const char *who, cublasOperation_t ta, cublasOperation_t tb,
                           int m, int n, int k, float alpha, const void *A, cudaDataType at, int lda,
                           long long sa, const void *B, int ldb, long long sb, float beta, float *C,
                           int ldc, long long sc, int batch)
{
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
    int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
    if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < (ar > 1 ? ar : 1) ||
        ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1)) {
        fprintf(stderr, "cuda emulator: %s: m %d n %d k %d lda %d ldb %d ldc %d\n", who, m, n, k, lda,
                ldb, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    const size_t es = at == CUDA_R_32F ? sizeof(float) : sizeof(uint16_t);
    const bool tf32 = at == CUDA_R_32F && h->math == CUBLAS_TF32_TENSOR_OP_MATH;
    for (int p = 0; p < batch; p++) {
        const char *a = (const char *)A + (size_t)p * sa * es, *b = (const char *)B + (size_t)p * sb * es;
        float *c = C + p * sc;
        if (!in_device(c, extent(m, n, ldc, sizeof(float))) ||
            (k && (!in_device(a, extent(ar, ac, lda, es)) || !in_device(b, extent(br, bc, ldb, es)))))
            mt_die("cuda emulator: %s (batch %d of %d): an operand reaches outside "
                   "device memory (m %d n %d k %d, lda %d ldb %d ldc %d)",
                   who, p, batch, m, n, k, lda, ldb, ldc);
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float acc = 0.0f;
                for (int l = 0; l < k; l++) {
                    float x = elem(a, at, ta == CUBLAS_OP_N ? i + (size_t)l * lda : l + (size_t)i * lda);
                    float y = elem(b, at, tb == CUBLAS_OP_N ? l + (size_t)j * ldb : j + (size_t)l * ldb);
                    acc += tf32 ? to_tf32(x) * to_tf32(y) : x * y;
                }
                float *cij = &c[i + (size_t)j * ldc];
                /* beta = 0: C is not read (it may hold NaN) */
                *cij = beta == 0.0f ? alpha * acc : alpha * acc + beta * *cij;
            }
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda,
                                         long long sa, const float *B, int ldb, long long sb,
                                         const float *beta, float *C, int ldc, long long sc,
                                         int batch)
{
    return gemm(h, "cublasSgemm", ta, tb, m, n, k, *alpha, A, CUDA_R_32F, lda, sa, B, ldb, sb, *beta, C, ldc,
                sc, batch);
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float *alpha, const float *A, int lda,
                           const float *B, int ldb, const float *beta, float *C, int ldc)
{
    return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C,
                                     ldc, 0, 1);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                          int m, int n, int k, const void *alpha, const void *A,
                                          cudaDataType at, int lda, long long sa, const void *B,
                                          cudaDataType bt, int ldb, long long sb, const void *beta,
                                          void *C, cudaDataType ct, int ldc, long long sc, int batch,
                                          cublasComputeType_t compute, cublasGemmAlgo_t algo)
{
    (void)algo;
    if (at != bt || ct != CUDA_R_32F || compute != CUBLAS_COMPUTE_32F) {
        fprintf(stderr, "cuda emulator: cublasGemmEx: types A %d B %d C %d compute %d not emulated\n", at,
                bt, ct, compute);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    return gemm(h, "cublasGemmEx", ta, tb, m, n, k, *(const float *)alpha, A, at, lda, sa, B, ldb, sb,
                *(const float *)beta, (float *)C, ldc, sc, batch);
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType at, int lda,
                            const void *B, cudaDataType bt, int ldb, const void *beta, void *C,
                            cudaDataType ct, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t algo)
{
    return cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, alpha, A, at, lda, 0, B, bt, ldb, 0, beta, C, ct,
                                      ldc, 0, 1, compute, algo);
}

/* ---- NCCL, over the CPU backend's communicator layer ------------------------------------ */

struct mt_emu_nccl {
    mt_proc_comm *cpu;
    int rank, size;
};

const char *ncclGetErrorString(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    default: return "internal error";
    }
}

const char *ncclGetLastError(ncclComm_t c)
{
    (void)c;
    return nccl_msg;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    static unsigned counter;
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "mt-emu-%u", ++counter);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *c, int nranks, ncclUniqueId id, int rank)
{
    (void)id;
    mt_proc_comm *w = mt_proc_world();
    if (mt_proc_size(w) != nranks || mt_proc_rank(w) != rank) {
        return nccl_fail(ncclInvalidUsage, "ncclCommInitRank: only the world communicator is "
                                           "emulated (split it with ncclCommSplit)");
    }
    *c = new mt_emu_nccl{w, rank, nranks};
    return ncclSuccess;
}

ncclResult_t ncclCommSplit(ncclComm_t c, int color, int key, ncclComm_t *nc, ncclConfig_t *cfg)
{
    (void)cfg;
    if (color < 0) return nccl_fail(ncclInvalidArgument, "ncclCommSplit: negative color");
    mt_proc_comm *s = mt_proc_split(c->cpu, color, key);
    *nc = new mt_emu_nccl{s, mt_proc_rank(s), mt_proc_size(s)};
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t c)
{
    if (c) mt_proc_free(c->cpu);
    delete c;
    return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t c, int *n)
{
    *n = c->size;
    return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t c, int *r)
{
    *r = c->rank;
    return ncclSuccess;
}

static bool device_span(const void *p, size_t n, ncclDataType_t t)
{
    return in_device(p, n * mt_dtype_size(dtype_of(t)));
}

#define NCCL_BUF(p, n, t, what) \
    if (!device_span(p, n, t)) return nccl_fail(ncclInvalidArgument, what " is not device memory")

ncclResult_t ncclAllReduce(const void *s, void *r, size_t n, ncclDataType_t t, ncclRedOp_t op,
                           ncclComm_t c, cudaStream_t st)
{
    (void)st;
    NCCL_BUF(s, n, t, "ncclAllReduce: send buffer");
    NCCL_BUF(r, n, t, "ncclAllReduce: receive buffer");
    if (s != r) memmove(r, s, n * mt_dtype_size(dtype_of(t)));
    mt_proc_all_reduce(c->cpu, r, n, dtype_of(t), op_of(op));
    return ncclSuccess;
}

ncclResult_t ncclAllGather(const void *s, void *r, size_t n, ncclDataType_t t, ncclComm_t c,
                           cudaStream_t st)
{
    (void)st;
    NCCL_BUF(s, n, t, "ncclAllGather: send buffer");
    NCCL_BUF(r, n * c->size, t, "ncclAllGather: receive buffer");
    mt_proc_all_gather(c->cpu, r, s, n, dtype_of(t));
    return ncclSuccess;
}

ncclResult_t ncclReduceScatter(const void *s, void *r, size_t n, ncclDataType_t t,
                               ncclRedOp_t op, ncclComm_t c, cudaStream_t st)
{
    (void)st;
    NCCL_BUF(s, n * c->size, t, "ncclReduceScatter: send buffer");
    NCCL_BUF(r, n, t, "ncclReduceScatter: receive buffer");
    mt_proc_reduce_scatter(c->cpu, r, s, n, dtype_of(t), op_of(op));
    return ncclSuccess;
}

ncclResult_t ncclBroadcast(const void *s, void *r, size_t n, ncclDataType_t t, int root,
                           ncclComm_t c, cudaStream_t st)
{
    (void)st;
    NCCL_BUF(r, n, t, "ncclBroadcast: receive buffer");
    if (c->rank == root) {
        NCCL_BUF(s, n, t, "ncclBroadcast: send buffer");
        if (s != r) memmove(r, s, n * mt_dtype_size(dtype_of(t)));
    }
    mt_proc_broadcast(c->cpu, r, n, dtype_of(t), root);
    return ncclSuccess;
}

static void run_p2p(const p2p &o)
{
    if (o.send) mt_proc_send(o.comm->cpu, o.buf, o.n, dtype_of(o.t), o.peer);
    else mt_proc_recv(o.comm->cpu, o.buf, o.n, dtype_of(o.t), o.peer);
}

static ncclResult_t queue_p2p(const p2p &o)
{
    NCCL_BUF(o.buf, o.n, o.t, "ncclSend/ncclRecv: buffer");
    if (group_depth) group_ops.push_back(o);
    else run_p2p(o);
    return ncclSuccess;
}

ncclResult_t ncclSend(const void *s, size_t n, ncclDataType_t t, int peer, ncclComm_t c,
                      cudaStream_t st)
{
    (void)st;
    return queue_p2p(p2p{true, (void *)s, n, t, peer, c});
}

ncclResult_t ncclRecv(void *r, size_t n, ncclDataType_t t, int peer, ncclComm_t c,
                      cudaStream_t st)
{
    (void)st;
    return queue_p2p(p2p{false, r, n, t, peer, c});
}

ncclResult_t ncclGroupStart(void)
{
    group_depth++;
    return ncclSuccess;
}

/* A group of one send and one receive (the pipeline's exchange) becomes one
 * MPI_Sendrecv; any other group runs its calls in order, which is enough for
 * groups that could also run in order on the device. */
ncclResult_t ncclGroupEnd(void)
{
    if (group_depth == 0) return nccl_fail(ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
    if (--group_depth) return ncclSuccess;
    std::vector<p2p> ops;
    ops.swap(group_ops);
    if (ops.size() == 2 && ops[0].send != ops[1].send && ops[0].comm == ops[1].comm &&
        ops[0].n == ops[1].n && ops[0].t == ops[1].t) {
        const p2p &s = ops[0].send ? ops[0] : ops[1], &r = ops[0].send ? ops[1] : ops[0];
        mt_proc_sendrecv(s.comm->cpu, s.buf, s.peer, r.buf, r.peer, s.n, dtype_of(s.t));
        return ncclSuccess;
    }
    for (const p2p &o : ops) run_p2p(o);
    return ncclSuccess;
}
