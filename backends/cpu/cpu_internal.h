/* cpu_internal.h: what the files of the CPU backend share, and nothing else.
 *
 *   cpu_backend.c   context, the two vtable instances "cpu" and "cpu-ref",
 *                   memory members, the communicators (the process layer's,
 *                   backends/process/process.h, used as they are)
 *   cpu_ops.c       fast compute members (OpenMP, cblas_sgemm if HAVE_BLAS)   mt_cpu_*
 *   cpu_ref_ops.c   reference compute members (plain loops, the oracle)      mt_cpu_ref_*
 *
 * Nothing outside backends/cpu/ and tests/ includes this file; src/ reaches
 * the backend through backend/backend.h and mt_backend_init("cpu"). */
#ifndef MT_CPU_INTERNAL_H
#define MT_CPU_INTERNAL_H
#include "backend/backend_impl.h"

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

#endif /* MT_CPU_INTERNAL_H */
