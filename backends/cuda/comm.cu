/* comm.cu: the CUDA backend's communicators: NCCL, one GPU per rank.
 *
 * The world communicator is created from a unique id that rank 0 makes and
 * broadcasts over the process layer (MPI; backends/process/); every other group comes
 * from ncclCommSplit, collective over its parent like MPI_Comm_split. All
 * collectives run on the backend's stream. A group of one never calls NCCL:
 * its collectives are copies or nothing, so a single GPU needs no NCCL at
 * all, and a build without NCCL (--without-nccl) runs single-GPU jobs and
 * refuses larger worlds when the backend is created.
 *
 * dtypes: f32, bf16, i32 and f64 map onto NCCL's; AVG uses ncclAvg (an i32
 * average would truncate, so it is refused, as the CPU layer does). In-place
 * forms are NCCL's: all_gather with send at this rank's block of recv,
 * reduce_scatter with recv at this rank's block of send. */
#include "cuda/cuda_common.cuh"
#include "process/process.h"
#if defined(HAVE_NCCL) && !defined(MT_CUDA_EMU)
#include <nccl.h>
#endif
#include <stdlib.h>

#if defined(HAVE_NCCL) || defined(MT_CUDA_EMU)
#define MT_WITH_NCCL 1
#endif

struct mt_comm {
#ifdef MT_WITH_NCCL
    ncclComm_t nccl; /* NULL for a group of one */
#endif
    int rank, size;
};


#ifdef MT_WITH_NCCL
#define NCCL_CHECK(c, call) \
    do { \
        ncclResult_t mt_nr_ = (call); \
        if (mt_nr_ != ncclSuccess) \
            mt_die("cuda backend: %s failed at %s:%d: %s (%d): %s", #call, __FILE__, __LINE__, \
                   ncclGetErrorString(mt_nr_), (int)mt_nr_, ncclGetLastError(c)); \
    } while (0)

static ncclDataType_t nccl_type(enum mt_dtype t)
{
    switch (t) {
    case MT_DTYPE_BF16: return ncclBfloat16;
    case MT_DTYPE_F16: return ncclFloat16;
    case MT_DTYPE_I32: return ncclInt32;
    case MT_DTYPE_F64: return ncclFloat64;
    default: return ncclFloat32;
    }
}

static ncclRedOp_t nccl_op(const char *what, enum mt_dtype t, enum mt_redop op)
{
    if (op == MT_REDOP_AVG && t == MT_DTYPE_I32)
        mt_die("cuda backend: %s: an average of int32 values would truncate", what);
    return op == MT_REDOP_MAX ? ncclMax : op == MT_REDOP_AVG ? ncclAvg : ncclSum;
}
#endif

static mt_comm *comm_new(int rank, int size)
{
    mt_comm *c = (mt_comm *)calloc(1, sizeof *c);
    if (!c) mt_die("cuda comm: out of memory allocating a communicator");
    c->rank = rank;
    c->size = size;
    return c;
}

mt_comm *mt_cuda_comm_world(mt_backend *be)
{
    struct mt_cuda_ctx *x = mt_cuda_ctx_of(be);
    if (x->world) return x->world;
    mt_comm *c = comm_new(x->world_rank, x->world_size);
#ifdef MT_WITH_NCCL
    if (c->size > 1) {
        ncclUniqueId id;
        if (c->rank == 0) NCCL_CHECK(NULL, ncclGetUniqueId(&id));
        static_assert(sizeof id % 4 == 0, "the id travels as int32");
        mt_proc_broadcast(mt_proc_world(), &id, sizeof id / 4, MT_DTYPE_I32, 0);
        NCCL_CHECK(NULL, ncclCommInitRank(&c->nccl, c->size, id, c->rank));
    }
#else
    /* mt_backend_cuda_create refused worlds larger than one */
    MT_ASSERT(c->size == 1);
#endif
    x->world = c;
    return c;
}

static void comm_destroy(mt_backend *be, mt_comm *c)
{
    if (!c) return;
#ifdef MT_WITH_NCCL
    if (c->nccl) {
        CUDA_CHECK(cudaStreamSynchronize(mt_cuda_ctx_of(be)->stream));
        NCCL_CHECK(c->nccl, ncclCommDestroy(c->nccl));
    }
#else
    (void)be;
#endif
    free(c);
}

void mt_cuda_comm_destroy_world(mt_backend *be)
{
    struct mt_cuda_ctx *x = mt_cuda_ctx_of(be);
    comm_destroy(be, x->world);
    x->world = NULL;
}

mt_comm *mt_cuda_comm_split(mt_backend *be, mt_comm *parent, int color, int key)
{
    (void)be;
    MT_ASSERT(parent != NULL && color >= 0);
    if (parent->size == 1) return comm_new(0, 1);
#ifdef MT_WITH_NCCL
    ncclComm_t nc = NULL;
    NCCL_CHECK(parent->nccl, ncclCommSplit(parent->nccl, color, key, &nc, NULL));
    int rank = 0, size = 0;
    NCCL_CHECK(nc, ncclCommUserRank(nc, &rank));
    NCCL_CHECK(nc, ncclCommCount(nc, &size));
    mt_comm *c = comm_new(rank, size);
    c->nccl = nc;
    return c;
#else
    (void)key;
    mt_die("cuda comm: a group of %d ranks without NCCL", parent->size);
#endif
}

void mt_cuda_comm_free(mt_backend *be, mt_comm *c)
{
    if (c && c != mt_cuda_ctx_of(be)->world) comm_destroy(be, c); /* the world is the backend's */
}

int mt_cuda_comm_rank(const mt_comm *c) { return c->rank; }
int mt_cuda_comm_size(const mt_comm *c) { return c->size; }

static cudaStream_t stream_of(mt_backend *be) { return mt_cuda_ctx_of(be)->stream; }

static void dcopy(mt_backend *be, void *dst, const void *src, size_t nbytes)
{
    if (dst != src && nbytes)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, stream_of(be)));
}

/* A group of more than one rank only exists with NCCL (see above). */
#ifdef MT_WITH_NCCL
#define NCCL_OR_DIE(call) NCCL_CHECK(c->nccl, call)
#else
#define NCCL_OR_DIE(call) mt_die("cuda comm: %s without NCCL", #call)
#endif

void mt_cuda_all_reduce(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                        enum mt_redop op)
{
    if (c->size == 1) return; /* SUM, AVG and MAX of one contribution: the identity */
    NCCL_OR_DIE(ncclAllReduce(buf, buf, count, nccl_type(t), nccl_op("all_reduce", t, op),
                              c->nccl, stream_of(be)));
}

void mt_cuda_all_gather(mt_backend *be, mt_comm *c, void *recv, const void *send,
                        size_t count_per_rank, enum mt_dtype t)
{
    if (c->size == 1) {
        dcopy(be, recv, send, count_per_rank * mt_dtype_size(t));
        return;
    }
    NCCL_OR_DIE(ncclAllGather(send, recv, count_per_rank, nccl_type(t), c->nccl, stream_of(be)));
}

void mt_cuda_reduce_scatter(mt_backend *be, mt_comm *c, void *recv, const void *send,
                            size_t count_per_rank, enum mt_dtype t, enum mt_redop op)
{
    if (c->size == 1) {
        dcopy(be, recv, send, count_per_rank * mt_dtype_size(t));
        return;
    }
    NCCL_OR_DIE(ncclReduceScatter(send, recv, count_per_rank, nccl_type(t),
                                  nccl_op("reduce_scatter", t, op), c->nccl, stream_of(be)));
}

void mt_cuda_broadcast(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                       int root)
{
    if (c->size == 1) return;
    NCCL_OR_DIE(ncclBroadcast(buf, buf, count, nccl_type(t), root, c->nccl, stream_of(be)));
}

void mt_cuda_send(mt_backend *be, mt_comm *c, const void *buf, size_t count, enum mt_dtype t,
                  int peer)
{
    if (c->size == 1)
        mt_die("cuda comm: send of %zu elements to rank %d in a group of one", count, peer);
    NCCL_OR_DIE(ncclSend(buf, count, nccl_type(t), peer, c->nccl, stream_of(be)));
}

void mt_cuda_recv(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                  int peer)
{
    if (c->size == 1)
        mt_die("cuda comm: recv of %zu elements from rank %d in a group of one", count, peer);
    NCCL_OR_DIE(ncclRecv(buf, count, nccl_type(t), peer, c->nccl, stream_of(be)));
}

/* one NCCL group, so that two ranks sending to each other cannot deadlock */
void mt_cuda_sendrecv(mt_backend *be, mt_comm *c, const void *sbuf, int dst, void *rbuf,
                      int src, size_t count, enum mt_dtype t)
{
    if (c->size == 1) {
        dcopy(be, rbuf, sbuf, count * mt_dtype_size(t));
        return;
    }
#ifdef MT_WITH_NCCL
    NCCL_CHECK(c->nccl, ncclGroupStart());
    NCCL_CHECK(c->nccl, ncclSend(sbuf, count, nccl_type(t), dst, c->nccl, stream_of(be)));
    NCCL_CHECK(c->nccl, ncclRecv(rbuf, count, nccl_type(t), src, c->nccl, stream_of(be)));
    NCCL_CHECK(c->nccl, ncclGroupEnd());
#else
    (void)dst, (void)src;
    mt_die("cuda comm: sendrecv without NCCL");
#endif
}
