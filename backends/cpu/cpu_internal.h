/* cpu_internal.h: what the files of the CPU backend share, and nothing else.
 *
 *   cpu_backend.c   context, the two vtable instances "cpu" and "cpu-ref",
 *                   memory members, thin adapters to the communicator layer
 *   cpu_ops.c       fast compute members (OpenMP, cblas_sgemm if HAVE_BLAS)   mt_cpu_*
 *   cpu_ref_ops.c   reference compute members (plain loops, the oracle)      mt_cpu_ref_*
 *   cpu_comm_self.c communicator layer for a world of one
 *   cpu_comm_mpi.c  communicator layer over MPI (linked instead of _self when
 *                   configure found mpicc)
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
    mt_comm *world; /* created with the backend, freed with it; comm_free ignores it */
};

/* ---- compute members ----------------------------------------------------
 * Declared with the shared macro of backend/backend_impl.h. */
MT_BACKEND_DECLARE_COMPUTE(mt_cpu)     /* cpu_ops.c */
MT_BACKEND_DECLARE_COMPUTE(mt_cpu_ref) /* cpu_ref_ops.c */

/* cpu_ops.c: one-time check of the threading set-up, called when a "cpu"
 * backend is created. Warns (mt_warn) when a pthreads OpenBLAS runs beside
 * OpenMP with spinning idle threads, which makes GEMM much slower. */
void mt_cpu_ops_init(void);

/* ---- communicator layer -------------------------------------------------
 * Exactly one implementation is linked: cpu_comm_self.c (a world of one) or
 * cpu_comm_mpi.c. Each defines struct mt_comm privately. Buffers are host
 * memory, so the layer needs no backend. Ownership policy (the world belongs
 * to the backend and outlives every split) lives in cpu_backend.c; the layer
 * only does the mechanics. Argument checking (count, dtype, root and peer in
 * range) is the caller's job (backend.c wrappers); the layer asserts only what
 * it cannot do.
 *
 * In-place is allowed where the vtable allows it: all_gather with send equal
 * to this rank's block of recv (send == recv + rank * count), reduce_scatter
 * with recv equal to block `rank` of send. */

/* Name of the linked layer, for messages and the backend banner: "self" | "mpi". */
const char *mt_cpu_comm_kind(void);
/* The world communicator. The MPI layer initialises MPI on first use and
 * installs an abort hook (mt_set_abort_hook) so a failing rank stops its peers. */
mt_comm *mt_cpu_comm_world_create(void);
/* MPI_Comm_split semantics; color >= 0. Returns a new communicator. */
mt_comm *mt_cpu_comm_split(mt_comm *parent, int color, int key);
/* Frees any communicator, the world included (called by the backend's free). */
void mt_cpu_comm_destroy(mt_comm *c);
int mt_cpu_comm_rank(const mt_comm *c);
int mt_cpu_comm_size(const mt_comm *c);
void mt_cpu_comm_all_reduce(mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                            enum mt_redop op);
void mt_cpu_comm_all_gather(mt_comm *c, void *recv, const void *send, size_t count_per_rank,
                            enum mt_dtype t);
void mt_cpu_comm_reduce_scatter(mt_comm *c, void *recv, const void *send,
                                size_t count_per_rank, enum mt_dtype t, enum mt_redop op);
void mt_cpu_comm_broadcast(mt_comm *c, void *buf, size_t count, enum mt_dtype t, int root);
void mt_cpu_comm_send(mt_comm *c, const void *buf, size_t count, enum mt_dtype t, int peer);
void mt_cpu_comm_recv(mt_comm *c, void *buf, size_t count, enum mt_dtype t, int peer);
/* Sends count elements of sbuf to dst while receiving count elements from src
 * into rbuf (MPI_Sendrecv); sbuf and rbuf must not overlap. dst and src may be
 * this rank (the self layer accepts nothing else). */
void mt_cpu_comm_sendrecv(mt_comm *c, const void *sbuf, int dst, void *rbuf, int src,
                          size_t count, enum mt_dtype t);

#endif /* MT_CPU_INTERNAL_H */
