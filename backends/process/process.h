/* process.h: the process layer, shared by every backend.
 *
 * What a multi-process job needs before any device is touched, and the
 * collectives over host memory that the CPU backend uses as its
 * communicators and the CUDA backend uses to start NCCL:
 *   - start-up: the world of processes (MPI when the build has it, a world
 *     of one otherwise);
 *   - failure: an abort hook (core/error.h) that ends every rank when one
 *     fails, so no peer waits forever in a collective, and the "[rank R] "
 *     prefix on every message in a world of more than one rank;
 *   - placement: the rank among the ranks of its host (which GPU to use);
 *   - host collectives with MPI's semantics.
 *
 * Exactly one implementation is linked: process_self.c (a world of one) or
 * process_mpi.c. Each defines struct mt_proc_comm privately. Buffers are host
 * memory. Argument checking (count, dtype, root and peer in range) is the
 * caller's job (the backend wrappers in src/backend/backend.c); the layer
 * asserts only what it cannot do.
 *
 * In-place forms as in backend.h: all_gather with send equal to this rank's
 * block of recv (send == recv + rank * count), reduce_scatter with recv equal
 * to block `rank` of send.
 *
 * Who may include this: files under backends/ (src/ reaches communicators
 * only through backend/backend.h; doc/architecture.md, dependency rules). */
#ifndef MT_PROCESS_H
#define MT_PROCESS_H
#include "backend/backend.h" /* enum mt_dtype, enum mt_redop */
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct mt_proc_comm mt_proc_comm;

/* Name of the linked layer, for messages: "self" | "mpi". */
const char *mt_proc_kind(void);
/* The world. The first call starts the layer (the MPI layer initialises MPI,
 * installs the abort hook and the rank prefix); the object lives until exit
 * and mt_proc_free ignores it. */
mt_proc_comm *mt_proc_world(void);
/* MPI_Comm_split semantics; color >= 0. Collective over parent. */
mt_proc_comm *mt_proc_split(mt_proc_comm *parent, int color, int key);
/* Frees a communicator made by mt_proc_split (the world is left alone). */
void mt_proc_free(mt_proc_comm *c);
int mt_proc_rank(const mt_proc_comm *c);
int mt_proc_size(const mt_proc_comm *c);

void mt_proc_all_reduce(mt_proc_comm *c, void *buf, size_t count, enum mt_dtype t,
                        enum mt_redop op);
void mt_proc_all_gather(mt_proc_comm *c, void *recv, const void *send, size_t count_per_rank,
                        enum mt_dtype t);
void mt_proc_reduce_scatter(mt_proc_comm *c, void *recv, const void *send,
                            size_t count_per_rank, enum mt_dtype t, enum mt_redop op);
void mt_proc_broadcast(mt_proc_comm *c, void *buf, size_t count, enum mt_dtype t, int root);
void mt_proc_send(mt_proc_comm *c, const void *buf, size_t count, enum mt_dtype t, int peer);
void mt_proc_recv(mt_proc_comm *c, void *buf, size_t count, enum mt_dtype t, int peer);
/* Sends count elements of sbuf to dst while receiving count elements from src
 * into rbuf (MPI_Sendrecv); sbuf and rbuf must not overlap unless equal.
 * dst and src may be this rank (the self layer accepts nothing else). */
void mt_proc_sendrecv(mt_proc_comm *c, const void *sbuf, int dst, void *rbuf, int src,
                      size_t count, enum mt_dtype t);

/* This process's place among the processes of its host (same host name):
 * local_rank counts the world ranks below it on the host, local_size all of
 * them. Collective over the world (process_common.c). */
void mt_proc_node_local(int *local_rank, int *local_size);

#ifdef __cplusplus
}
#endif
#endif /* MT_PROCESS_H */
