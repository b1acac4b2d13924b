/* backend.h: the one interface through which model, optimizer and training
 * code does all tensor work (memory, GEMM, kernels, collectives).
 *
 * Conventions (the full contract is in doc/backend-api.md):
 *  - Pointers passed to members are device pointers obtained from `alloc`
 *    (host memory for the CPU backends, device memory for CUDA). Callers never
 *    dereference them; host access goes through upload/download.
 *  - Row-major storage everywhere. GEMM follows cblas semantics.
 *  - Backward kernels ACCUMULATE (+=) into parameter gradients and into the
 *    residual-stream gradient they are documented to accumulate into; other
 *    activation gradients are OVERWRITTEN (=). Each member says which.
 *  - Reductions whose results are compared across backends (sum_squares,
 *    bias and layernorm weight gradients) use a fixed summation order that
 *    does not depend on the thread count.
 *  - Shape letters: B batch, T sequence, C channels, NH heads, HS head size,
 *    N = B*T rows, Vp padded vocabulary.
 */
#ifndef MT_BACKEND_H
#define MT_BACKEND_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct mt_backend mt_backend; /* one device + one stream */
typedef struct mt_comm mt_comm;       /* one process group, owned by a backend */

enum mt_dtype { MT_DTYPE_F32, MT_DTYPE_BF16, MT_DTYPE_F16, MT_DTYPE_I32, MT_DTYPE_F64 };
enum mt_trans { MT_TRANS_N, MT_TRANS_T };
enum mt_redop { MT_REDOP_SUM, MT_REDOP_AVG, MT_REDOP_MAX };

static inline size_t mt_dtype_size(enum mt_dtype t)
{
    return t == MT_DTYPE_BF16 || t == MT_DTYPE_F16 ? 2 : t == MT_DTYPE_F64 ? 8 : 4;
}

/* "f32", "bf16", "f16", "i32", "f64" */
static inline const char *mt_dtype_name(enum mt_dtype t)
{
    switch (t) {
    case MT_DTYPE_F32: return "f32";
    case MT_DTYPE_BF16: return "bf16";
    case MT_DTYPE_F16: return "f16";
    case MT_DTYPE_I32: return "i32";
    case MT_DTYPE_F64: return "f64";
    }
    return "?";
}

/* Row-major, cblas semantics: C = alpha * op(A) * op(B) + beta * C.
 * op(A) is m x k, op(B) is k x n, C is m x n; ld* are row strides in elements
 * of the matrices as stored (before op). batch > 1: strided batched GEMM with
 * stride_* elements between consecutive matrices. beta = 0 overwrites (C may
 * hold garbage, even NaN), beta = 1 accumulates. */
struct mt_gemm_args {
    enum mt_trans ta, tb;
    int m, n, k, batch;
    float alpha, beta;
    const float *a; int lda; int64_t stride_a;
    const float *b; int ldb; int64_t stride_b;
    float *c; int ldc; int64_t stride_c;
};

/* Decoupled weight decay Adam (torch.optim.AdamW / Megatron "adam"):
 *   g' = g * grad_scale
 *   p  = p * (1 - lr * weight_decay)
 *   m  = beta1 * m + (1 - beta1) * g'
 *   v  = beta2 * v + (1 - beta2) * g'^2
 *   p -= lr * (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps)   */
struct mt_adamw_args {
    float lr, beta1, beta2, eps, weight_decay;
    float grad_scale; /* 1 / loss scale times the clip coefficient; 1 when unscaled */
    int step;         /* 1-based, for bias correction */
};

struct mt_backend_i {
    /* lifetime ------------------------------------------------------------ */
    const char *(*name)(const mt_backend *be);
    void (*free)(mt_backend *be);

    /* memory --------------------------------------------------------------- */
    void *(*alloc)(mt_backend *be, size_t nbytes); /* NULL on failure; 64-byte aligned */
    void (*dealloc)(mt_backend *be, void *p);
    void (*memset0)(mt_backend *be, void *dst, size_t nbytes);
    void (*upload)(mt_backend *be, void *dst, const void *host_src, size_t nbytes);
    void (*download)(mt_backend *be, void *host_dst, const void *src, size_t nbytes);
    /* device to device; rows of row_bytes bytes at the given pitches (bytes).
     * A contiguous copy is rows = 1. Regions must not overlap. */
    void (*copy_2d)(mt_backend *be, void *dst, size_t dst_pitch, const void *src,
                    size_t src_pitch, size_t row_bytes, size_t rows);
    void (*synchronize)(mt_backend *be); /* (optional) */

    /* dense linear algebra ------------------------------------------------- */
    void (*gemm)(mt_backend *be, const struct mt_gemm_args *g);

    /* kernels -------------------------------------------------------------- */
    /* out[b,t,:] = wte[tok[b,t] - vocab_offset, :] (zero if the token lies
     * outside [vocab_offset, vocab_offset + V_local)) + wpe[pos0 + t, :]
     * (wpe may be NULL: no position term).
     * out (B,T,C), tok (B,T) int32, wte (V_local,C), wpe (maxT,C) */
    void (*embed_fwd)(mt_backend *be, float *out, const int32_t *tok, const float *wte,
                      const float *wpe, int B, int T, int C, int pos0, int vocab_offset,
                      int V_local);
    /* dwte += scatter of dout rows by token (rows of this shard only);
     * dwpe += sum over b of dout[b,t,:] (dwpe may be NULL). pos0 = 0.
     * Deterministic: each dwte row is summed in (b,t) order. */
    void (*embed_bwd)(mt_backend *be, float *dwte, float *dwpe, const float *dout,
                      const int32_t *tok, int B, int T, int C, int vocab_offset, int V_local);
    /* out = (inp - mean) * rstd * w + b, eps 1e-5, biased variance.
     * out,inp (N,C); mean,rstd (N) saved for backward; w,b (C) */
    void (*layernorm_fwd)(mt_backend *be, float *out, float *mean, float *rstd,
                          const float *inp, const float *w, const float *b, int N, int C);
    /* dinp += (accumulates: inp is on the residual stream); dw, db += */
    void (*layernorm_bwd)(mt_backend *be, float *dinp, float *dw, float *db,
                          const float *dout, const float *inp, const float *w,
                          const float *mean, const float *rstd, int N, int C);
    /* y[n,c] += bias[c]. y (N,C) */
    void (*bias_add)(mt_backend *be, float *y, const float *bias, int N, int C);
    /* dbias[c] += sum_n dy[n,c] (rows summed in order). dy (N,C) */
    void (*bias_bwd)(mt_backend *be, float *dbias, const float *dy, int N, int C);
    /* out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    void (*gelu_fwd)(mt_backend *be, float *out, const float *inp, size_t n);
    /* dinp = gelu'(inp) * dout (overwrites; dinp may alias dout) */
    void (*gelu_bwd)(mt_backend *be, float *dinp, const float *inp, const float *dout,
                     size_t n);
    /* out = a + b (out may alias a or b) */
    void (*add)(mt_backend *be, float *out, const float *a, const float *b, size_t n);
    /* x *= s */
    void (*scale)(mt_backend *be, float *x, float s, size_t n);
    /* Causal multi-head self-attention, softmax scale 1/sqrt(HS).
     * qkv (B,T,NH,3,HS): per token and head the q, k and v vectors side by
     * side (Megatron's fused-QKV layout; a TP shard is a contiguous block).
     * Queries are the positions [t0, T), keys and values [0, T): t0 = 0 in
     * training, t0 = T-1 when decoding one token against a KV cache.
     * out (B,T-t0,NH,HS); att (B,NH,T-t0,T) softmax probabilities, saved
     * for backward (entries above the diagonal are 0). */
    void (*attn_fwd)(mt_backend *be, float *out, float *att, const float *qkv, int B, int T,
                     int t0, int NH, int HS);
    /* t0 = 0 only. dqkv (overwrites), datt scratch (B,NH,T,T), dout (B,T,NH,HS) */
    void (*attn_bwd)(mt_backend *be, float *dqkv, float *datt, const float *dout,
                     const float *qkv, const float *att, int B, int T, int NH, int HS);
    /* Softmax cross-entropy in the order of Megatron's vocab-parallel
     * cross_entropy.py, so that a vocab-sharded run only inserts all-reduces
     * between the steps. logits (N, ld): V_local columns are used, the first
     * being global column vocab_offset; targets (N) int32 global ids.
     *   xent_max:    rowmax[n] = max_c logits[n,c]            (then all_reduce MAX)
     *   xent_sumexp: sumexp[n] = sum_c exp(logits - rowmax);
     *                tgt[n] = logits[n, target - vocab_offset] or 0 if
     *                outside this shard                        (then all_reduce SUM)
     *   xent_loss:   losses[n] = log(sumexp) + rowmax - tgt
     *   xent_bwd:    dlogits = (exp(logits - rowmax) / sumexp - [c == target]) * dlosses[n]
     *                (overwrites; dlogits may alias logits) */
    void (*xent_max)(mt_backend *be, float *rowmax, const float *logits, int N, int V_local,
                     int ld);
    void (*xent_sumexp)(mt_backend *be, float *sumexp, float *tgt, const float *logits,
                        const float *rowmax, const int32_t *targets, int N, int V_local,
                        int vocab_offset, int ld);
    void (*xent_loss)(mt_backend *be, float *losses, const float *rowmax, const float *sumexp,
                      const float *tgt, int N);
    void (*xent_bwd)(mt_backend *be, float *dlogits, const float *dlosses, const float *logits,
                     const float *rowmax, const float *sumexp, const int32_t *targets, int N,
                     int V_local, int vocab_offset, int ld);
    /* see struct mt_adamw_args; may also zero grad afterwards when zero_grad != 0 */
    void (*adamw)(mt_backend *be, float *param, float *grad, float *m, float *v, size_t n,
                  const struct mt_adamw_args *a, int zero_grad);
    /* out1[0] = sum x^2, in double, fixed order (blocks of MT_REDUCE_BLOCK
     * elements summed sequentially, block sums added in order). out1: 1 double */
    void (*sum_squares)(mt_backend *be, double *out1, const float *x, size_t n);
    /* out1[0] = number of elements that are inf or nan. out1: 1 double */
    void (*count_nonfinite)(mt_backend *be, double *out1, const float *x, size_t n);

    /* communicators and collectives ----------------------------------------
     * In-place where send and receive buffers coincide. A world of one makes
     * every collective a copy or a no-op. */
    mt_comm *(*comm_world)(mt_backend *be);
    mt_comm *(*comm_split)(mt_backend *be, mt_comm *parent, int color, int key);
    void (*comm_free)(mt_backend *be, mt_comm *c);
    int (*comm_rank)(const mt_comm *c);
    int (*comm_size)(const mt_comm *c);
    void (*all_reduce)(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                       enum mt_redop op);
    /* recv holds size * count_per_rank elements, rank blocks concatenated */
    void (*all_gather)(mt_backend *be, mt_comm *c, void *recv, const void *send,
                       size_t count_per_rank, enum mt_dtype t);
    /* send holds size * count_per_rank elements; rank r receives block r reduced */
    void (*reduce_scatter)(mt_backend *be, mt_comm *c, void *recv, const void *send,
                           size_t count_per_rank, enum mt_dtype t, enum mt_redop op);
    void (*broadcast)(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                      int root);
    void (*send)(mt_backend *be, mt_comm *c, const void *buf, size_t count, enum mt_dtype t,
                 int peer);
    void (*recv)(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                 int peer);
    /* Sends sbuf to dst and receives rbuf from src at the same time (MPI_Sendrecv,
     * ncclGroupStart/End): the pipeline's send-forward-recv-backward steps use it
     * so that two stages sending to each other cannot deadlock. (optional):
     * the wrapper's default orders a plain send and recv by rank. */
    void (*sendrecv)(mt_backend *be, mt_comm *c, const void *sbuf, int dst, void *rbuf,
                     int src, size_t count, enum mt_dtype t);

    /* options ----------------------------------------------------------------
     * (optional) on != 0 lets GEMMs round their inputs to TF32 (CUDA tensor
     * cores); the default is plain fp32. Absent where it means nothing. */
    void (*set_tf32)(mt_backend *be, int on);
};

/* Elements per block of the fixed-order reductions (sum_squares). */
#define MT_REDUCE_BLOCK 4096

struct mt_backend {
    const struct mt_backend_i *iface;
    void *context; /* private to the backend */
    double *scalar; /* one device double for the wrappers' host results (backend.c) */
};

/* Registry ------------------------------------------------------------------ */
/* "cpu" | "cpu-ref" | "cuda". Returns NULL and writes a message naming the
 * backends that were built into err (size errlen) when the name is unknown. */
mt_backend *mt_backend_init(const char *name, char *err, size_t errlen);
void mt_backend_free(mt_backend *be);
const char *mt_backend_name(const mt_backend *be);
/* comma-separated list of the backends compiled in */
const char *mt_backend_list(void);
/* Asks for TF32 GEMMs (see set_tf32); returns 0 when the backend has no such
 * mode (the CPU backends), 1 when it was set. */
int mt_backend_set_tf32(mt_backend *be, int on);
/* Checks that every mandatory member is set (used by the registry and tests). */
int mt_backend_iface_complete(const struct mt_backend_i *i, const char **missing);

/* Optional hook used by bench/: called with every GEMM before dispatch. */
typedef void (*mt_gemm_hook_fn)(void *user, const struct mt_gemm_args *g);
void mt_backend_set_gemm_hook(mt_gemm_hook_fn fn, void *user);
/* Optional hook used by bench/ (per-op profile): called before (end = 0) and
 * after (end = 1) every compute member dispatched by the wrappers below. */
typedef void (*mt_op_hook_fn)(void *user, mt_backend *be, const char *op, int end);
void mt_backend_set_op_hook(mt_op_hook_fn fn, void *user);

/* Wrappers: validate arguments once, then dispatch. ------------------------ */
void *mt_alloc(mt_backend *be, size_t nbytes); /* aborts with a message on failure */
void mt_dealloc(mt_backend *be, void *p);
void mt_memset0(mt_backend *be, void *dst, size_t nbytes);
void mt_upload(mt_backend *be, void *dst, const void *host_src, size_t nbytes);
void mt_download(mt_backend *be, void *host_dst, const void *src, size_t nbytes);
void mt_copy(mt_backend *be, void *dst, const void *src, size_t nbytes);
void mt_copy_2d(mt_backend *be, void *dst, size_t dst_pitch, const void *src, size_t src_pitch,
                size_t row_bytes, size_t rows);
void mt_synchronize(mt_backend *be);
void mt_gemm(mt_backend *be, const struct mt_gemm_args *g);
/* y = x * W^T (+ beta*y): x (N,in), W (out,in), y (N,out). The common case. */
void mt_matmul_xwt(mt_backend *be, float *y, const float *x, const float *w, int N, int in,
                   int out, float beta);
void mt_embed_fwd(mt_backend *be, float *out, const int32_t *tok, const float *wte,
                  const float *wpe, int B, int T, int C, int pos0, int vocab_offset,
                  int V_local);
void mt_embed_bwd(mt_backend *be, float *dwte, float *dwpe, const float *dout,
                  const int32_t *tok, int B, int T, int C, int vocab_offset, int V_local);
void mt_layernorm_fwd(mt_backend *be, float *out, float *mean, float *rstd, const float *inp,
                      const float *w, const float *b, int N, int C);
void mt_layernorm_bwd(mt_backend *be, float *dinp, float *dw, float *db, const float *dout,
                      const float *inp, const float *w, const float *mean, const float *rstd,
                      int N, int C);
void mt_bias_add(mt_backend *be, float *y, const float *bias, int N, int C);
void mt_bias_bwd(mt_backend *be, float *dbias, const float *dy, int N, int C);
void mt_gelu_fwd(mt_backend *be, float *out, const float *inp, size_t n);
void mt_gelu_bwd(mt_backend *be, float *dinp, const float *inp, const float *dout, size_t n);
void mt_add(mt_backend *be, float *out, const float *a, const float *b, size_t n);
void mt_scale(mt_backend *be, float *x, float s, size_t n);
void mt_attn_fwd(mt_backend *be, float *out, float *att, const float *qkv, int B, int T, int t0,
                 int NH, int HS);
void mt_attn_bwd(mt_backend *be, float *dqkv, float *datt, const float *dout, const float *qkv,
                 const float *att, int B, int T, int NH, int HS);
void mt_xent_max(mt_backend *be, float *rowmax, const float *logits, int N, int V_local, int ld);
void mt_xent_sumexp(mt_backend *be, float *sumexp, float *tgt, const float *logits,
                    const float *rowmax, const int32_t *targets, int N, int V_local,
                    int vocab_offset, int ld);
void mt_xent_loss(mt_backend *be, float *losses, const float *rowmax, const float *sumexp,
                  const float *tgt, int N);
void mt_xent_bwd(mt_backend *be, float *dlogits, const float *dlosses, const float *logits,
                 const float *rowmax, const float *sumexp, const int32_t *targets, int N,
                 int V_local, int vocab_offset, int ld);
void mt_adamw(mt_backend *be, float *param, float *grad, float *m, float *v, size_t n,
              const struct mt_adamw_args *a, int zero_grad);
double mt_sum_squares(mt_backend *be, const float *x, size_t n);     /* returns on host */
double mt_count_nonfinite(mt_backend *be, const float *x, size_t n); /* returns on host */

mt_comm *mt_comm_world(mt_backend *be);
mt_comm *mt_comm_split(mt_backend *be, mt_comm *parent, int color, int key);
void mt_comm_free(mt_backend *be, mt_comm *c);
int mt_comm_rank(mt_backend *be, const mt_comm *c);
int mt_comm_size(mt_backend *be, const mt_comm *c);
void mt_all_reduce(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                   enum mt_redop op);
void mt_all_gather(mt_backend *be, mt_comm *c, void *recv, const void *send,
                   size_t count_per_rank, enum mt_dtype t);
void mt_reduce_scatter(mt_backend *be, mt_comm *c, void *recv, const void *send,
                       size_t count_per_rank, enum mt_dtype t, enum mt_redop op);
void mt_broadcast(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                  int root);
void mt_send(mt_backend *be, mt_comm *c, const void *buf, size_t count, enum mt_dtype t,
             int peer);
void mt_recv(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t, int peer);
/* All-reduce of one host value (through a device scalar). */
double mt_all_reduce_scalar(mt_backend *be, mt_comm *c, double v, enum mt_redop op);
/* Cumulative bytes sent and seconds spent in communication by this process. */
void mt_comm_stats(uint64_t *bytes, double *seconds);
void mt_sendrecv(mt_backend *be, mt_comm *c, const void *sbuf, int dst, void *rbuf, int src,
                 size_t count, enum mt_dtype t);

#ifdef __cplusplus
}
#endif
#endif /* MT_BACKEND_H */
