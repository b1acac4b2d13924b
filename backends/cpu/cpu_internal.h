/* cpu_internal.h: what the files of the CPU backend share, and nothing else.
 *
 *   cpu_backend.c   context, the two vtable instances "cpu" and "cpu-ref",
 *                   memory members, the communicators (the process layer's,
 *                   backends/process/process.h, used as they are)
 *   cpu_gemm.c      the fast GEMM: OpenBLAS, oneDNN or built-in, per shape   mt_cpu_gemm
 *   cpu_ops.c       the other fast compute members (OpenMP)                  mt_cpu_*
 *   cpu_ref_ops.c   reference compute members (plain loops, the oracle)      mt_cpu_ref_*
 *
 * Nothing outside backends/cpu/ and tests/ includes this file; src/ reaches
 * the backend through backend/backend.h and mt_backend_init("cpu"). */
#ifndef MT_CPU_INTERNAL_H
#define MT_CPU_INTERNAL_H
#include "backend/backend_impl.h"
#include "core/error.h"
#include <stdlib.h>

/* OMP(parallel for ...) expands to the pragma only when OpenMP is on, so a
 * build without it has no unknown-pragma warnings and runs serially. */
#ifdef _OPENMP
#define MT_PRAGMA_(...) _Pragma(#__VA_ARGS__)
#define OMP(...) MT_PRAGMA_(omp __VA_ARGS__)
#else
#define OMP(...)
#endif

/* scratch of the kernels: malloc or die */
static inline void *mt_cpu_xmalloc(size_t nbytes)
{
    void *p = malloc(nbytes ? nbytes : 1);
    if (!p) mt_die("cpu: out of memory (%zu bytes of scratch)", nbytes);
    return p;
}

/* The one exported constructor. reference = 0 gives "cpu", 1 gives "cpu-ref".
 * Never returns NULL (dies on allocation failure). Free with be->iface->free. */
mt_backend *mt_backend_cpu_create(int reference);

/* Private state behind mt_backend.context. */
struct mt_cpu_ctx {
    int reference; /* 1: cpu-ref */
};

/* ---- compute members ----------------------------------------------------
 * Declared with the shared macro of backend/backend_impl.h. */
MT_BACKEND_DECLARE_COMPUTE(mt_cpu)     /* cpu_ops.c */
MT_BACKEND_DECLARE_COMPUTE(mt_cpu_ref) /* cpu_ref_ops.c */

/* cpu_ops.c: one-time check of the threading set-up, called when a "cpu"
 * backend is created. Warns (mt_warn) when a pthreads OpenBLAS runs beside
 * OpenMP with spinning idle threads, which makes GEMM much slower. */
void mt_cpu_ops_init(void);

/* cpu_gemm.c: the libraries mt_cpu_gemm may call. AUTO picks per shape
 * (oneDNN for small GEMMs, BLAS for the rest, where built); the others
 * force one library for every GEMM (tests, benchmarks; the environment
 * variable MT_CPU_GEMM=auto|blas|dnnl|builtin sets it at start-up). */
enum mt_cpu_gemm_lib { MT_CPU_GEMM_AUTO, MT_CPU_GEMM_BLAS, MT_CPU_GEMM_DNNL, MT_CPU_GEMM_BUILTIN };
/* 1 when LIB is built in (AUTO and BUILTIN always are) */
int mt_cpu_gemm_available(enum mt_cpu_gemm_lib lib);
/* sets the library of every later mt_cpu_gemm call (process-wide);
 * returns the previous one. LIB must be available. */
enum mt_cpu_gemm_lib mt_cpu_gemm_set_library(enum mt_cpu_gemm_lib lib);
/* reads MT_CPU_GEMM once; a value naming a library not built is a user error */
void mt_cpu_gemm_init(void);
/* one line for benchmarks and logs: the libraries and the rule in force */
const char *mt_cpu_gemm_describe(void);

#endif /* MT_CPU_INTERNAL_H */
