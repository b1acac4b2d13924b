/* cpu_backend.c: the CPU backend object, its two vtable instances and the
 * members they share.
 *
 *   "cpu"      compute members from cpu_ops.c (OpenMP, cblas_sgemm with BLAS)
 *   "cpu-ref"  compute members from cpu_ref_ops.c (plain loops: the oracle)
 *
 * Both use host memory, so "device" pointers are ordinary pointers and
 * upload/download/copy are memcpy. Both are synchronous (synchronize does
 * nothing). Communicators are the process layer's (backends/process/). */
#ifdef HAVE_CONFIG_H
#include "config.h" /* HAVE_BLAS and friends, when built by configure */
#endif
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* posix_memalign under -std=c11 */
#endif
#include "cpu/cpu_internal.h"
#include "process/process.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

/* 64 bytes: one cache line, and the widest vector (AVX-512) any kernel loads. */
enum { CPU_ALIGN = 64 };

static struct mt_cpu_ctx *ctx_of(const mt_backend *be) { return be->context; }

/* ---- lifetime ----------------------------------------------------------- */

static const char *cpu_name(const mt_backend *be)
{
    return ctx_of(be)->reference ? "cpu-ref" : "cpu";
}

static void cpu_free(mt_backend *be)
{
    if (!be) return;
    struct mt_cpu_ctx *ctx = ctx_of(be);
    free(ctx);
    free(be);
}

/* ---- memory --------------------------------------------------------------- */

static void *cpu_alloc(mt_backend *be, size_t nbytes)
{
    (void)be;
    void *p = NULL;
    /* A zero-byte request still returns a distinct pointer that dealloc accepts,
     * so callers need no special case for empty tensors (e.g. a TP shard). */
    if (posix_memalign(&p, CPU_ALIGN, nbytes ? nbytes : CPU_ALIGN) != 0) return NULL;
    return p;
}

static void cpu_dealloc(mt_backend *be, void *p)
{
    (void)be;
    free(p);
}

static void cpu_memset0(mt_backend *be, void *dst, size_t nbytes)
{
    (void)be;
    if (nbytes) memset(dst, 0, nbytes);
}

static void cpu_upload(mt_backend *be, void *dst, const void *host_src, size_t nbytes)
{
    (void)be;
    if (nbytes) memcpy(dst, host_src, nbytes);
}

static void cpu_download(mt_backend *be, void *host_dst, const void *src, size_t nbytes)
{
    (void)be;
    if (nbytes) memcpy(host_dst, src, nbytes);
}

static void cpu_copy_2d(mt_backend *be, void *dst, size_t dst_pitch, const void *src,
                        size_t src_pitch, size_t row_bytes, size_t rows)
{
    (void)be;
    if (!row_bytes || !rows) return;
    if (dst_pitch == row_bytes && src_pitch == row_bytes) { /* one contiguous block */
        memcpy(dst, src, row_bytes * rows);
        return;
    }
    char *d = dst;
    const char *s = src;
    for (size_t r = 0; r < rows; r++) memcpy(d + r * dst_pitch, s + r * src_pitch, row_bytes);
}

static void cpu_synchronize(mt_backend *be) { (void)be; /* every member is synchronous */ }

/* ---- communicators: the process layer's, as they are ----------------------
 * The CPU backend's buffers are host memory, so an mt_comm of this backend
 * is an mt_proc_comm (process.h) behind the opaque type: the members only
 * convert the pointer. The world belongs to the process layer and lives
 * until exit, so comm_free leaves it alone. */

static mt_proc_comm *pc(mt_comm *c) { return (mt_proc_comm *)c; }
static const mt_proc_comm *cpc(const mt_comm *c) { return (const mt_proc_comm *)c; }

static mt_comm *cpu_comm_world(mt_backend *be)
{
    (void)be;
    return (mt_comm *)mt_proc_world();
}

static mt_comm *cpu_comm_split(mt_backend *be, mt_comm *parent, int color, int key)
{
    (void)be;
    return (mt_comm *)mt_proc_split(pc(parent), color, key);
}

static void cpu_comm_free(mt_backend *be, mt_comm *c)
{
    (void)be;
    mt_proc_free(pc(c));
}

static int cpu_comm_rank(const mt_comm *c) { return mt_proc_rank(cpc(c)); }
static int cpu_comm_size(const mt_comm *c) { return mt_proc_size(cpc(c)); }

static void cpu_all_reduce(mt_backend *be, mt_comm *c, void *buf, size_t count,
                           enum mt_dtype t, enum mt_redop op)
{
    (void)be;
    mt_proc_all_reduce(pc(c), buf, count, t, op);
}

static void cpu_all_gather(mt_backend *be, mt_comm *c, void *recv, const void *send,
                           size_t count_per_rank, enum mt_dtype t)
{
    (void)be;
    mt_proc_all_gather(pc(c), recv, send, count_per_rank, t);
}

static void cpu_reduce_scatter(mt_backend *be, mt_comm *c, void *recv, const void *send,
                               size_t count_per_rank, enum mt_dtype t, enum mt_redop op)
{
    (void)be;
    mt_proc_reduce_scatter(pc(c), recv, send, count_per_rank, t, op);
}

static void cpu_broadcast(mt_backend *be, mt_comm *c, void *buf, size_t count,
                          enum mt_dtype t, int root)
{
    (void)be;
    mt_proc_broadcast(pc(c), buf, count, t, root);
}

static void cpu_send(mt_backend *be, mt_comm *c, const void *buf, size_t count,
                     enum mt_dtype t, int peer)
{
    (void)be;
    mt_proc_send(pc(c), buf, count, t, peer);
}

static void cpu_recv(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                     int peer)
{
    (void)be;
    mt_proc_recv(pc(c), buf, count, t, peer);
}

static void cpu_sendrecv(mt_backend *be, mt_comm *c, const void *sbuf, int dst, void *rbuf,
                         int src, size_t count, enum mt_dtype t)
{
    (void)be;
    mt_proc_sendrecv(pc(c), sbuf, dst, rbuf, src, count, t);
}

/* ---- the two vtable instances ------------------------------------------- */

#define CPU_SHARED_MEMBERS \
    .name = cpu_name, .free = cpu_free, .alloc = cpu_alloc, .dealloc = cpu_dealloc, \
    .memset0 = cpu_memset0, .upload = cpu_upload, .download = cpu_download, \
    .copy_2d = cpu_copy_2d, .synchronize = cpu_synchronize, .comm_world = cpu_comm_world, \
    .comm_split = cpu_comm_split, .comm_free = cpu_comm_free, .comm_rank = cpu_comm_rank, \
    .comm_size = cpu_comm_size, .all_reduce = cpu_all_reduce, .all_gather = cpu_all_gather, \
    .reduce_scatter = cpu_reduce_scatter, .broadcast = cpu_broadcast, .send = cpu_send, \
    .recv = cpu_recv, .sendrecv = cpu_sendrecv

static const struct mt_backend_i cpu_iface = {
    CPU_SHARED_MEMBERS,
    MT_BACKEND_COMPUTE_MEMBERS(mt_cpu),
};

/* cpu-ref: f32 everywhere, and GEMMs with bf16 / f16 inputs (the oracle of
 * the backends that multiply half values natively). cpu computes f32 only:
 * without a bf16 GEMM in hardware, the f32 GEMM of rounded copies is its
 * fastest half GEMM, and the wrapper issues that. */
static int cpu_ref_supports(const mt_backend *be, enum mt_op op, enum mt_dtype t)
{
    (void)be;
    return t == MT_DTYPE_F32 || (op == MT_OP_GEMM && (t == MT_DTYPE_BF16 || t == MT_DTYPE_F16));
}

static const struct mt_backend_i cpu_ref_iface = {
    CPU_SHARED_MEMBERS,
    .supports = cpu_ref_supports,
    MT_BACKEND_COMPUTE_MEMBERS(mt_cpu_ref),
};

mt_backend *mt_backend_cpu_create(int reference)
{
    mt_backend *be = calloc(1, sizeof *be);
    struct mt_cpu_ctx *ctx = malloc(sizeof *ctx);
    if (!be || !ctx) mt_die("cpu backend: out of memory creating the backend");
    if (!reference) {
        mt_cpu_ops_init();
        mt_cpu_gemm_init();
    }
    ctx->reference = reference != 0;
    mt_proc_world(); /* starts the process layer (MPI) with the backend */
    be->iface = reference ? &cpu_ref_iface : &cpu_iface;
    be->context = ctx;
    return be;
}
