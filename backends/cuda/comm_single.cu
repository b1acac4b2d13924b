/* comm_single.cu: the CUDA backend's communicators for a world of one GPU.
 *
 * Every group has one member, so each collective is a device copy or
 * nothing (as backends/cpu/cpu_comm_self.c does on the host). Point-to-point
 * traffic has no peer: send and recv stop with a message. An NCCL version
 * with the same mt_cuda_* functions replaces this file. */
#include "cuda/cuda_common.cuh"
#include <stdlib.h>

struct mt_comm {
    int color, key; /* as given to split (world: 0, 0) */
};

static mt_comm *comm_new(int color, int key)
{
    mt_comm *c = (mt_comm *)malloc(sizeof *c);
    if (!c) mt_die("cuda comm: out of memory allocating a communicator");
    c->color = color;
    c->key = key;
    return c;
}

mt_comm *mt_cuda_comm_world(mt_backend *be)
{
    struct mt_cuda_ctx *x = mt_cuda_ctx_of(be);
    if (!x->world) x->world = comm_new(0, 0);
    return x->world;
}

void mt_cuda_comm_destroy_world(mt_backend *be)
{
    struct mt_cuda_ctx *x = mt_cuda_ctx_of(be);
    free(x->world);
    x->world = NULL;
}

mt_comm *mt_cuda_comm_split(mt_backend *be, mt_comm *parent, int color, int key)
{
    (void)be;
    MT_ASSERT(parent != NULL);
    return comm_new(color, key);
}

void mt_cuda_comm_free(mt_backend *be, mt_comm *c)
{
    if (c && c != mt_cuda_ctx_of(be)->world) free(c); /* the world is the backend's */
}

int mt_cuda_comm_rank(const mt_comm *c)
{
    (void)c;
    return 0;
}

int mt_cuda_comm_size(const mt_comm *c)
{
    (void)c;
    return 1;
}

static void dcopy(mt_backend *be, void *dst, const void *src, size_t nbytes)
{
    if (dst != src && nbytes)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice,
                                   mt_cuda_ctx_of(be)->stream));
}

void mt_cuda_all_reduce(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                        enum mt_redop op)
{
    /* SUM, AVG and MAX of one contribution: the identity */
    (void)be, (void)c, (void)buf, (void)count, (void)t, (void)op;
}

void mt_cuda_all_gather(mt_backend *be, mt_comm *c, void *recv, const void *send,
                        size_t count_per_rank, enum mt_dtype t)
{
    (void)c;
    dcopy(be, recv, send, count_per_rank * mt_dtype_size(t));
}

void mt_cuda_reduce_scatter(mt_backend *be, mt_comm *c, void *recv, const void *send,
                            size_t count_per_rank, enum mt_dtype t, enum mt_redop op)
{
    (void)c, (void)op;
    dcopy(be, recv, send, count_per_rank * mt_dtype_size(t));
}

void mt_cuda_broadcast(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                       int root)
{
    (void)be, (void)c, (void)buf, (void)count, (void)t;
    MT_ASSERT(root == 0);
}

void mt_cuda_send(mt_backend *be, mt_comm *c, const void *buf, size_t count, enum mt_dtype t,
                  int peer)
{
    (void)be, (void)c, (void)buf, (void)t;
    mt_die("cuda backend: send of %zu elements to rank %d: this CUDA backend has no NCCL "
           "communicators yet, so the world is one GPU and there is no peer",
           count, peer);
}

void mt_cuda_recv(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                  int peer)
{
    (void)be, (void)c, (void)buf, (void)t;
    mt_die("cuda backend: recv of %zu elements from rank %d: this CUDA backend has no NCCL "
           "communicators yet, so the world is one GPU and there is no peer",
           count, peer);
}

void mt_cuda_sendrecv(mt_backend *be, mt_comm *c, const void *sbuf, int dst, void *rbuf,
                      int src, size_t count, enum mt_dtype t)
{
    (void)c;
    if (dst != 0 || src != 0)
        mt_die("cuda backend: sendrecv of %zu elements (to rank %d, from rank %d): this CUDA "
               "backend has no NCCL communicators yet, so the only peer is rank 0 itself",
               count, dst, src);
    dcopy(be, rbuf, sbuf, count * mt_dtype_size(t));
}
