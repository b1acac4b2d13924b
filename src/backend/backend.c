/* backend.c: the backend registry and the validating wrappers. Arguments
 * are checked here once (sizes, pointers), optional members get their
 * defaults, then the call goes to the backend. */
#include "backend/backend.h"
#include "core/error.h"
#include "core/io.h"
#include <stdio.h>
#include <string.h>

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/* Backend constructors. Declared here rather than included: src/ never
 * includes headers from backends/ (doc/architecture.md, dependency rules).
 * The CUDA constructor comes from one of three archives, chosen at link
 * time: libmt_cuda.a (the backend), libmt_cuda_none.a (configure found no
 * CUDA: the constructor explains) or libmt_cuda_emu.a (the backend's source
 * run on the CPU, for tests). mt_backend_cuda_kind is "" for the second. */
mt_backend *mt_backend_cpu_create(int reference);
mt_backend *mt_backend_cuda_create(char *err, size_t errlen);
extern const char mt_backend_cuda_kind[];

const char *mt_backend_list(void)
{
    return mt_backend_cuda_kind[0] ? "cpu, cpu-ref, cuda" : "cpu, cpu-ref";
}

int mt_backend_set_tf32(mt_backend *be, int on)
{
    if (!be->iface->set_tf32) return 0;
    be->iface->set_tf32(be, on);
    return 1;
}

int mt_backend_iface_complete(const struct mt_backend_i *i, const char **missing)
{
#define REQ(f) \
    if (!i->f) { \
        if (missing) *missing = #f; \
        return 0; \
    }
    REQ(name) REQ(free) REQ(alloc) REQ(dealloc) REQ(memset0) REQ(upload) REQ(download)
    REQ(copy_2d) REQ(gemm) REQ(embed_fwd) REQ(embed_bwd) REQ(layernorm_fwd) REQ(layernorm_bwd)
    REQ(bias_add) REQ(bias_bwd) REQ(gelu_fwd) REQ(gelu_bwd) REQ(add) REQ(scale) REQ(attn_fwd)
    REQ(attn_bwd) REQ(xent_max) REQ(xent_sumexp) REQ(xent_loss) REQ(xent_bwd) REQ(adamw)
    REQ(sum_squares) REQ(count_nonfinite) REQ(comm_world) REQ(comm_split) REQ(comm_free)
    REQ(comm_rank) REQ(comm_size) REQ(all_reduce) REQ(all_gather) REQ(reduce_scatter)
    REQ(broadcast) REQ(send) REQ(recv)
#undef REQ
    return 1;
}

mt_backend *mt_backend_init(const char *name, char *err, size_t errlen)
{
    mt_backend *be = NULL;
    if (err && errlen) err[0] = 0;
    if (strcmp(name, "cpu") == 0) be = mt_backend_cpu_create(0);
    else if (strcmp(name, "cpu-ref") == 0) be = mt_backend_cpu_create(1);
    else if (strcmp(name, "cuda") == 0) be = mt_backend_cuda_create(err, errlen);
    else {
        if (err)
            snprintf(err, errlen, "unknown backend '%s' (this build has: %s)", name,
                     mt_backend_list());
        return NULL;
    }
    if (!be) return NULL;
    const char *missing = NULL;
    if (!mt_backend_iface_complete(be->iface, &missing))
        mt_die("backend '%s' does not implement mandatory member '%s'", name, missing);
    return be;
}

void mt_backend_free(mt_backend *be)
{
    if (!be) return;
    if (be->scalar) be->iface->dealloc(be, be->scalar);
    be->iface->free(be);
}

const char *mt_backend_name(const mt_backend *be) { return be->iface->name(be); }

static mt_op_hook_fn op_hook;
static void *op_hook_user;

void mt_backend_set_op_hook(mt_op_hook_fn fn, void *user)
{
    op_hook = fn;
    op_hook_user = user;
}

/* A compute member's call, between the profiling hook's two calls. */
#define DISPATCH(be, name, call) \
    do { \
        if (op_hook) op_hook(op_hook_user, be, name, 0); \
        call; \
        if (op_hook) op_hook(op_hook_user, be, name, 1); \
    } while (0)

static mt_gemm_hook_fn gemm_hook;
static void *gemm_hook_user;

void mt_backend_set_gemm_hook(mt_gemm_hook_fn fn, void *user)
{
    gemm_hook = fn;
    gemm_hook_user = user;
}

/* ---- memory ---------------------------------------------------------------- */

void *mt_alloc(mt_backend *be, size_t nbytes)
{
    if (nbytes == 0) nbytes = 64;
    void *p = be->iface->alloc(be, nbytes);
    if (!p)
        mt_user_error("reduce --micro-batch-size, --seq-length or the model size",
                      "backend '%s' could not allocate %.1f MiB", mt_backend_name(be),
                      (double)nbytes / (1024.0 * 1024.0));
    return p;
}

void mt_dealloc(mt_backend *be, void *p)
{
    if (p) be->iface->dealloc(be, p);
}

void mt_memset0(mt_backend *be, void *dst, size_t nbytes)
{
    if (nbytes) be->iface->memset0(be, dst, nbytes);
}

void mt_upload(mt_backend *be, void *dst, const void *host_src, size_t nbytes)
{
    if (nbytes) be->iface->upload(be, dst, host_src, nbytes);
}

void mt_download(mt_backend *be, void *host_dst, const void *src, size_t nbytes)
{
    if (nbytes) be->iface->download(be, host_dst, src, nbytes);
}

void mt_copy(mt_backend *be, void *dst, const void *src, size_t nbytes)
{
    if (nbytes && dst != src) be->iface->copy_2d(be, dst, nbytes, src, nbytes, nbytes, 1);
}

void mt_copy_2d(mt_backend *be, void *dst, size_t dst_pitch, const void *src, size_t src_pitch,
                size_t row_bytes, size_t rows)
{
    MT_ASSERT(row_bytes <= dst_pitch || rows <= 1);
    MT_ASSERT(row_bytes <= src_pitch || rows <= 1);
    if (rows && row_bytes) be->iface->copy_2d(be, dst, dst_pitch, src, src_pitch, row_bytes, rows);
}

void mt_synchronize(mt_backend *be)
{
    if (be->iface->synchronize) be->iface->synchronize(be);
}

/* ---- GEMM ------------------------------------------------------------------ */

void mt_gemm(mt_backend *be, const struct mt_gemm_args *g)
{
    MT_ASSERT(g->m >= 0 && g->n >= 0 && g->k >= 0 && g->batch >= 1);
    /* the stored matrices: A is (m,k) or (k,m) for TRANS_T; rows of length lda */
    MT_ASSERT(g->lda >= (g->ta == MT_TRANS_N ? g->k : g->m));
    MT_ASSERT(g->ldb >= (g->tb == MT_TRANS_N ? g->n : g->k));
    MT_ASSERT(g->ldc >= g->n);
    MT_ASSERT(g->a && g->b && g->c);
    if (g->m == 0 || g->n == 0) return;
    if (gemm_hook) gemm_hook(gemm_hook_user, g);
    DISPATCH(be, "gemm", be->iface->gemm(be, g));
}

void mt_matmul_xwt(mt_backend *be, float *y, const float *x, const float *w, int N, int in,
                   int out, float beta)
{
    struct mt_gemm_args g = {.ta = MT_TRANS_N, .tb = MT_TRANS_T, .m = N, .n = out, .k = in,
                             .batch = 1, .alpha = 1.0f, .beta = beta,
                             .a = x, .lda = in, .b = w, .ldb = in, .c = y, .ldc = out};
    mt_gemm(be, &g);
}

/* ---- kernels ----------------------------------------------------------------- */

void mt_embed_fwd(mt_backend *be, float *out, const int32_t *tok, const float *wte,
                  const float *wpe, int B, int T, int C, int pos0, int vocab_offset, int V_local)
{
    MT_ASSERT(B > 0 && T > 0 && C > 0 && pos0 >= 0 && vocab_offset >= 0 && V_local > 0);
    DISPATCH(be, "embed_fwd",
             be->iface->embed_fwd(be, out, tok, wte, wpe, B, T, C, pos0, vocab_offset, V_local));
}

void mt_embed_bwd(mt_backend *be, float *dwte, float *dwpe, const float *dout,
                  const int32_t *tok, int B, int T, int C, int vocab_offset, int V_local)
{
    MT_ASSERT(B > 0 && T > 0 && C > 0 && vocab_offset >= 0 && V_local > 0);
    DISPATCH(be, "embed_bwd",
             be->iface->embed_bwd(be, dwte, dwpe, dout, tok, B, T, C, vocab_offset, V_local));
}

void mt_layernorm_fwd(mt_backend *be, float *out, float *mean, float *rstd, const float *inp,
                      const float *w, const float *b, int N, int C)
{
    MT_ASSERT(N > 0 && C > 0);
    DISPATCH(be, "layernorm_fwd", be->iface->layernorm_fwd(be, out, mean, rstd, inp, w, b, N, C));
}

void mt_layernorm_bwd(mt_backend *be, float *dinp, float *dw, float *db, const float *dout,
                      const float *inp, const float *w, const float *mean, const float *rstd,
                      int N, int C)
{
    MT_ASSERT(N > 0 && C > 0);
    DISPATCH(be, "layernorm_bwd",
             be->iface->layernorm_bwd(be, dinp, dw, db, dout, inp, w, mean, rstd, N, C));
}

void mt_bias_add(mt_backend *be, float *y, const float *bias, int N, int C)
{
    MT_ASSERT(N > 0 && C > 0);
    DISPATCH(be, "bias_add", be->iface->bias_add(be, y, bias, N, C));
}

void mt_bias_bwd(mt_backend *be, float *dbias, const float *dy, int N, int C)
{
    MT_ASSERT(N > 0 && C > 0);
    DISPATCH(be, "bias_bwd", be->iface->bias_bwd(be, dbias, dy, N, C));
}

void mt_gelu_fwd(mt_backend *be, float *out, const float *inp, size_t n)
{
    if (n) DISPATCH(be, "gelu_fwd", be->iface->gelu_fwd(be, out, inp, n));
}

void mt_gelu_bwd(mt_backend *be, float *dinp, const float *inp, const float *dout, size_t n)
{
    if (n) DISPATCH(be, "gelu_bwd", be->iface->gelu_bwd(be, dinp, inp, dout, n));
}

void mt_add(mt_backend *be, float *out, const float *a, const float *b, size_t n)
{
    if (n) DISPATCH(be, "add", be->iface->add(be, out, a, b, n));
}

void mt_scale(mt_backend *be, float *x, float s, size_t n)
{
    if (n) DISPATCH(be, "scale", be->iface->scale(be, x, s, n));
}

void mt_attn_fwd(mt_backend *be, float *out, float *att, const float *qkv, int B, int T, int t0,
                 int NH, int HS)
{
    MT_ASSERT(B > 0 && T > 0 && t0 >= 0 && t0 < T && NH > 0 && HS > 0);
    DISPATCH(be, "attn_fwd", be->iface->attn_fwd(be, out, att, qkv, B, T, t0, NH, HS));
}

void mt_attn_bwd(mt_backend *be, float *dqkv, float *datt, const float *dout, const float *qkv,
                 const float *att, int B, int T, int NH, int HS)
{
    MT_ASSERT(B > 0 && T > 0 && NH > 0 && HS > 0);
    DISPATCH(be, "attn_bwd", be->iface->attn_bwd(be, dqkv, datt, dout, qkv, att, B, T, NH, HS));
}

void mt_xent_max(mt_backend *be, float *rowmax, const float *logits, int N, int V_local, int ld)
{
    MT_ASSERT(N > 0 && V_local > 0 && ld >= V_local);
    DISPATCH(be, "xent_max", be->iface->xent_max(be, rowmax, logits, N, V_local, ld));
}

void mt_xent_sumexp(mt_backend *be, float *sumexp, float *tgt, const float *logits,
                    const float *rowmax, const int32_t *targets, int N, int V_local,
                    int vocab_offset, int ld)
{
    MT_ASSERT(N > 0 && V_local > 0 && ld >= V_local && vocab_offset >= 0);
    DISPATCH(be, "xent_sumexp",
             be->iface->xent_sumexp(be, sumexp, tgt, logits, rowmax, targets, N, V_local,
                                    vocab_offset,
                           ld));
}

void mt_xent_loss(mt_backend *be, float *losses, const float *rowmax, const float *sumexp,
                  const float *tgt, int N)
{
    MT_ASSERT(N > 0);
    DISPATCH(be, "xent_loss", be->iface->xent_loss(be, losses, rowmax, sumexp, tgt, N));
}

void mt_xent_bwd(mt_backend *be, float *dlogits, const float *dlosses, const float *logits,
                 const float *rowmax, const float *sumexp, const int32_t *targets, int N,
                 int V_local, int vocab_offset, int ld)
{
    MT_ASSERT(N > 0 && V_local > 0 && ld >= V_local && vocab_offset >= 0);
    DISPATCH(be, "xent_bwd",
             be->iface->xent_bwd(be, dlogits, dlosses, logits, rowmax, sumexp, targets, N, V_local,
                        vocab_offset, ld));
}

void mt_adamw(mt_backend *be, float *param, float *grad, float *m, float *v, size_t n,
              const struct mt_adamw_args *a, int zero_grad)
{
    MT_ASSERT(a->step >= 1);
    if (n) DISPATCH(be, "adamw", be->iface->adamw(be, param, grad, m, v, n, a, zero_grad));
}

/* The backend's one device double, allocated on first use and kept (an
 * allocation per call would synchronise a GPU each time: cudaFree does). */
static double *scalar_of(mt_backend *be)
{
    if (!be->scalar) be->scalar = mt_alloc(be, sizeof(double));
    return be->scalar;
}

/* The reduction writes device memory; the result comes back to the host. */
static double reduce_to_host(mt_backend *be, const float *x, size_t n,
                             void (*fn)(mt_backend *, double *, const float *, size_t))
{
    double *d = scalar_of(be), h = 0.0;
    fn(be, d, x, n);
    mt_download(be, &h, d, sizeof h);
    return h;
}

double mt_sum_squares(mt_backend *be, const float *x, size_t n)
{
    return n ? reduce_to_host(be, x, n, be->iface->sum_squares) : 0.0;
}

double mt_count_nonfinite(mt_backend *be, const float *x, size_t n)
{
    return n ? reduce_to_host(be, x, n, be->iface->count_nonfinite) : 0.0;
}

/* ---- communicators ------------------------------------------------------- */

/* Bytes this process sent (its payload: a collective of n bytes counts n) and
 * seconds spent in collectives and point-to-point calls, for the log line. */
static double comm_seconds;
static uint64_t comm_bytes;

void mt_comm_stats(uint64_t *bytes, double *seconds)
{
    *bytes = comm_bytes;
    *seconds = comm_seconds;
}

#define TIMED(nbytes, call) \
    do { \
        double t0_ = mt_now(); \
        call; \
        comm_seconds += mt_now() - t0_; \
        comm_bytes += (uint64_t)(nbytes); \
    } while (0)

mt_comm *mt_comm_world(mt_backend *be) { return be->iface->comm_world(be); }

mt_comm *mt_comm_split(mt_backend *be, mt_comm *parent, int color, int key)
{
    return be->iface->comm_split(be, parent, color, key);
}

void mt_comm_free(mt_backend *be, mt_comm *c)
{
    if (c) be->iface->comm_free(be, c);
}

int mt_comm_rank(mt_backend *be, const mt_comm *c)
{
    (void)be;
    return be->iface->comm_rank(c);
}

int mt_comm_size(mt_backend *be, const mt_comm *c)
{
    (void)be;
    return be->iface->comm_size(c);
}

void mt_all_reduce(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                   enum mt_redop op)
{
    if (count == 0 || be->iface->comm_size(c) == 1) return; /* Megatron _reduce: no-op */
    TIMED(count * mt_dtype_size(t), be->iface->all_reduce(be, c, buf, count, t, op));
}

void mt_all_gather(mt_backend *be, mt_comm *c, void *recv, const void *send,
                   size_t count_per_rank, enum mt_dtype t)
{
    if (count_per_rank == 0) return;
    TIMED(count_per_rank * mt_dtype_size(t),
          be->iface->all_gather(be, c, recv, send, count_per_rank, t));
}

void mt_reduce_scatter(mt_backend *be, mt_comm *c, void *recv, const void *send,
                       size_t count_per_rank, enum mt_dtype t, enum mt_redop op)
{
    if (count_per_rank == 0) return;
    TIMED(count_per_rank * mt_dtype_size(t) * (size_t)be->iface->comm_size(c),
          be->iface->reduce_scatter(be, c, recv, send, count_per_rank, t, op));
}

void mt_broadcast(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t, int root)
{
    if (count == 0 || be->iface->comm_size(c) == 1) return;
    MT_ASSERT(root >= 0 && root < be->iface->comm_size(c));
    TIMED(count * mt_dtype_size(t), be->iface->broadcast(be, c, buf, count, t, root));
}

void mt_send(mt_backend *be, mt_comm *c, const void *buf, size_t count, enum mt_dtype t, int peer)
{
    MT_ASSERT(peer >= 0 && peer < be->iface->comm_size(c));
    TIMED(count * mt_dtype_size(t), be->iface->send(be, c, buf, count, t, peer));
}

void mt_recv(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t, int peer)
{
    MT_ASSERT(peer >= 0 && peer < be->iface->comm_size(c));
    TIMED(0, be->iface->recv(be, c, buf, count, t, peer));
}

void mt_sendrecv(mt_backend *be, mt_comm *c, const void *sbuf, int dst, void *rbuf, int src,
                 size_t count, enum mt_dtype t)
{
    const int size = be->iface->comm_size(c), rank = be->iface->comm_rank(c);
    MT_ASSERT(dst >= 0 && dst < size && src >= 0 && src < size);
    if (be->iface->sendrecv) {
        TIMED(count * mt_dtype_size(t), be->iface->sendrecv(be, c, sbuf, dst, rbuf, src, count, t));
        return;
    }
    /* default: the lower rank sends first, which is deadlock-free for a pair
     * exchanging with each other (the pipeline's only use) */
    if (rank < dst) {
        be->iface->send(be, c, sbuf, count, t, dst);
        be->iface->recv(be, c, rbuf, count, t, src);
    } else {
        be->iface->recv(be, c, rbuf, count, t, src);
        be->iface->send(be, c, sbuf, count, t, dst);
    }
}

double mt_all_reduce_scalar(mt_backend *be, mt_comm *c, double v, enum mt_redop op)
{
    if (be->iface->comm_size(c) == 1) return v;
    double *d = scalar_of(be);
    mt_upload(be, d, &v, sizeof v);
    mt_all_reduce(be, c, d, 1, MT_DTYPE_F64, op);
    mt_download(be, &v, d, sizeof v);
    return v;
}
