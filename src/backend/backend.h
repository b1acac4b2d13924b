/* backend.h: the one interface through which model, optimizer and training
 * code does all tensor work (memory, GEMM, kernels, collectives).
 *
 * Conventions (the full contract is in doc/backend-api.md):
 *  - Kernels take tensors (struct mt_tensor: device pointer, element type,
 *    shape). Pointers are device pointers obtained from `alloc` (host
 *    memory for the CPU backends, device memory for CUDA). Callers never
 *    dereference them; host access goes through upload/download.
 *  - Row-major storage everywhere. GEMM follows cblas semantics.
 *  - Backward kernels ACCUMULATE (+=) into parameter gradients and into the
 *    residual-stream gradient they are documented to accumulate into; other
 *    activation gradients are OVERWRITTEN (=). Each member says which.
 *  - Reductions whose results are compared across backends (sum_squares,
 *    bias and layernorm weight gradients) use a fixed summation order that
 *    does not depend on the thread count.
 *  - Shape letters: B batch, T sequence, C channels, N = B*T rows, F MLP
 *    width, Vp padded vocabulary.
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

/* A tensor as the backend sees it: device memory holding a rows x cols
 * row-major matrix of one element type (a vector is 1 x n). Kernels take
 * tensors, so the element type travels with the data: a backend computes
 * the types it supports (see `supports`) and the wrappers check the types
 * and that the shapes of an op's arguments agree (the extents). Views of
 * part of a buffer come from mt_rows. In this version every activation and
 * parameter is f32; ids and targets are i32. */
typedef struct mt_tensor {
    void *data;
    enum mt_dtype dtype;
    int64_t rows, cols;
} mt_tensor;

static inline mt_tensor mt_tensor_of(void *data, enum mt_dtype t, int64_t rows, int64_t cols)
{
    mt_tensor x;
    x.data = data;
    x.dtype = t;
    x.rows = rows;
    x.cols = cols;
    return x;
}
static inline mt_tensor mt_f32(float *p, int64_t rows, int64_t cols)
{
    return mt_tensor_of(p, MT_DTYPE_F32, rows, cols);
}
static inline mt_tensor mt_i32(int32_t *p, int64_t rows, int64_t cols)
{
    return mt_tensor_of(p, MT_DTYPE_I32, rows, cols);
}
static inline int64_t mt_numel(mt_tensor t) { return t.rows * t.cols; }
/* The f32 data of a tensor (for backends: after the dtype is checked). */
static inline float *mt_fp(mt_tensor t) { return (float *)t.data; }
static inline int32_t *mt_ip(mt_tensor t) { return (int32_t *)t.data; }

/* Row-major, cblas semantics: C = alpha * op(A) * op(B) + beta * C.
 * op(A) is m x k, op(B) is k x n, C is m x n; ld* are row strides in elements
 * of the matrices as stored (before op). batch > 1: strided batched GEMM with
 * stride_* elements between consecutive matrices. beta = 0 overwrites (C may
 * hold garbage, even NaN), beta = 1 accumulates. The element types of A, B
 * and C and the type products are accumulated in (compute_type) are those
 * of cublasGemmEx; zero-initialised arguments mean f32 throughout. The one
 * other combination: A and B both bf16 or both f16 storage, C and compute
 * f32 (the products of the half values summed in f32, in f64 on cpu-ref),
 * for backends whose supports(MT_OP_GEMM, that type) says so; the
 * mixed-precision wrapper (mt_backend_set_gemm_precision) issues it. */
struct mt_gemm_args {
    enum mt_trans ta, tb;
    int m, n, k, batch;
    float alpha, beta;
    const void *a; int lda; int64_t stride_a;
    const void *b; int ldb; int64_t stride_b;
    void *c; int ldc; int64_t stride_c;
    enum mt_dtype a_type, b_type, c_type, compute_type;
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

/* SGD (torch.optim.SGD, Megatron's "sgd": weight decay coupled as an L2 term,
 * no dampening, no Nesterov):
 *   g'  = g * grad_scale + weight_decay * p
 *   buf = momentum * buf + g'          (momentum != 0; buf starts at 0)
 *   p  -= lr * (momentum != 0 ? buf : g')                                   */
struct mt_sgd_args {
    float lr, momentum, weight_decay, grad_scale;
};

/* Adafactor (Shazeer & Stern 2018, as transformers.optimization.Adafactor),
 * one tensor at a time in four ops with the reductions between them done by
 * the optimizer (optim/optimizer.c), so that a tensor-parallel shard can
 * all-reduce them:
 *   sq_sums:  rows[i] = sum_j ((s g[i,j])^2 + eps1), cols[j] = sum_i (...)
 *   precond:  factored (R, C given, 2-D):
 *               u[i,j] = s g[i,j] / sqrt(R[i] * inv_row_mean) / sqrt(C[j])
 *             otherwise (V given):
 *               V = beta2t V + (1 - beta2t) ((s g)^2 + eps1); u = s g / sqrt(V)
 *             u overwrites g
 *   apply:    u' = lr * update_scale * u; with a first moment (beta1 > 0)
 *               M = beta1 M + (1 - beta1) u', u' = M;
 *             p = p - weight_decay * lr * p - u'                              */
struct mt_adafactor_args {
    float scale;          /* s: 1 / loss scale times the clip coefficient */
    float eps1;           /* added to the squared gradient (1e-30) */
    float beta2t;         /* the step's second-moment decay, 1 - step^decay_rate */
    float inv_row_mean;   /* 1 / mean(R) over the whole tensor */
    float lr;             /* the step size, relative or scheduled, times the parameter scale */
    float update_scale;   /* 1 / max(1, rms(u) / clip_threshold) */
    float beta1;          /* 0: no first moment */
    float weight_decay;
};

/* Dropout (inverted: kept elements are scaled by 1/(1-p)). The mask of an
 * element is a pure function of the run's seed, a stream (which dropout in
 * the model) and the element's global coordinates (core/philox.h), the same
 * on every backend, thread count and parallel layout. For a hidden state
 * x (N, C) of samples of T positions, element (n, c) has coordinates
 * (column col0 + c, position n % T, sample sample0 + n / T, 0). */
struct mt_dropout_args {
    float p;          /* drop probability; 0 means identity */
    uint64_t seed;
    uint32_t stream;
    int64_t sample0;  /* index of the micro-batch's first sample in the training stream */
    int T;            /* positions per sample (rows per sample of x) */
    int col0;         /* global column (attention: head) of local column (head) 0 */
};

/* Self-attention of one layer over this rank's heads, for B sequences whose
 * keys are the positions [0, T) and whose queries are [t0, T) (t0 = 0 in
 * training; t0 = T-1 when decoding one token against the KV cache).
 * Grouped-query attention: `heads` query heads share `groups` key/value
 * heads, heads/groups per group. A token's row of the fused qkv tensor
 * (B*T, groups * (heads/groups + 2) * head_dim) holds, group after group,
 * the group's query heads, then its key, then its value (Megatron's
 * per-group [q..., k, v] order; with groups == heads this is [q, k, v] per
 * head). Softmax scale 1/sqrt(head_dim). causal = 1: query t sees keys
 * j <= t; 0: every key. Attention dropout acts on the probabilities with
 * coordinates (key j, query position t, sample sample0 + b, head col0 + h);
 * dropout.T is unused here. */
struct mt_attn_args {
    int B, T, t0;
    int heads, groups, head_dim;
    int causal;
    /* (B) i32 in the backend's memory, or NULL: sequence b has lengths[b]
     * (1..T) real tokens and padding after them, whose keys no query sees
     * (Hugging Face's padding mask; a padded query still attends to the
     * real keys, and its output reaches no loss) */
    const int32_t *lengths;
    struct mt_dropout_args dropout;
    /* (B*T) i32 in the backend's memory, or NULL (0): the first key query
     * position t of sequence b sees is doc_start[b*T + t], the start of its
     * document (Megatron's --reset-attention-mask: no key of an earlier
     * document in the packed sequence); t0 = 0 only. Documents are
     * contiguous: doc_start[t] <= t and never decreases along t. */
    const int32_t *doc_start;
    /* (B*T) i32 in the backend's memory, or NULL (t): the table row rope
     * rotates row t of sequence b by (--reset-position-ids); t0 = 0 only */
    const int32_t *positions;
};

/* Element-wise activations (act_fwd / act_bwd):
 *   MT_ACT_GELU_TANH  0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): GPT-2's
 *                     (Hugging Face gelu_new, torch approximate='tanh')
 *   MT_ACT_GELU       0.5 x (1 + erf(x / sqrt 2)): BERT's and Megatron's
 *                     default (torch.nn.functional.gelu)
 *   MT_ACT_TANH       tanh x: BERT's pooler */
enum mt_act { MT_ACT_GELU_TANH, MT_ACT_GELU, MT_ACT_TANH };

/* Ops and element types, for backends that implement only some of them
 * (the optional member `supports`). */
enum mt_op {
    MT_OP_GEMM, MT_OP_EMBED, MT_OP_LAYERNORM, MT_OP_RMSNORM, MT_OP_BIAS, MT_OP_ACT,
    MT_OP_SWIGLU, MT_OP_ADD, MT_OP_SCALE, MT_OP_DROPOUT, MT_OP_ROPE, MT_OP_ATTENTION,
    MT_OP_XENT, MT_OP_ADAMW, MT_OP_REDUCE,
    MT_OP_COUNT
};
const char *mt_op_name(enum mt_op op);

/* Shapes in the comments: N rows (B*T tokens), C channels, F MLP width,
 * V_local vocabulary columns of this shard, ld the logits' row length. */
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
    /* (optional) 1 if the backend computes op on elements of type t. Absent:
     * every op in f32 only. A wrapper asked for anything else stops with a
     * message naming the backend, the op and the type. */
    int (*supports)(const mt_backend *be, enum mt_op op, enum mt_dtype t);

    /* dense linear algebra ------------------------------------------------- */
    void (*gemm)(mt_backend *be, const struct mt_gemm_args *g);

    /* kernels -------------------------------------------------------------- */
    /* out[n,:] (=, or += when accumulate) table[ids[n] - vocab_offset, :], or
     * zero (nothing added) when ids[n] lies outside [vocab_offset,
     * vocab_offset + table.rows): a lookup in this rank's rows of a
     * vocabulary-parallel table, or of a position table with position ids.
     * out (N,C), ids (1,N) i32, table (V_local,C) */
    void (*embed_fwd)(mt_backend *be, mt_tensor out, mt_tensor ids, mt_tensor table,
                      int vocab_offset, int accumulate);
    /* dtable[ids[n] - vocab_offset, :] += dout[n, :] for the ids of this
     * shard. Deterministic: each row of dtable is summed in n order. */
    void (*embed_bwd)(mt_backend *be, mt_tensor dtable, mt_tensor dout, mt_tensor ids,
                      int vocab_offset);
    /* out = (inp - mean) * rstd * w + b, biased variance, rstd =
     * 1/sqrt(var + eps). out, inp (N,C); mean, rstd (1,N) f32, saved for backward;
     * w, b (1,C) */
    void (*layernorm_fwd)(mt_backend *be, mt_tensor out, mt_tensor mean, mt_tensor rstd,
                          mt_tensor inp, mt_tensor w, mt_tensor b, double eps);
    /* dinp += (accumulates: inp is on the residual stream); dw, db += */
    void (*layernorm_bwd)(mt_backend *be, mt_tensor dinp, mt_tensor dw, mt_tensor db,
                          mt_tensor dout, mt_tensor inp, mt_tensor w, mt_tensor mean,
                          mt_tensor rstd);
    /* out = inp * rstd * w, rstd = 1/sqrt(mean(inp^2) + eps) (RMSNorm, Zhang
     * and Sennrich 2019). out, inp (N,C); rstd (1,N) f32; w (1,C) */
    void (*rmsnorm_fwd)(mt_backend *be, mt_tensor out, mt_tensor rstd, mt_tensor inp,
                        mt_tensor w, double eps);
    /* dinp += (residual stream), dw += */
    void (*rmsnorm_bwd)(mt_backend *be, mt_tensor dinp, mt_tensor dw, mt_tensor dout,
                        mt_tensor inp, mt_tensor w, mt_tensor rstd);
    /* y[n,c] += bias[c]. y (N,C), bias (1,C) */
    void (*bias_add)(mt_backend *be, mt_tensor y, mt_tensor bias);
    /* dbias[c] += sum_n dy[n,c] (rows summed in order) */
    void (*bias_bwd)(mt_backend *be, mt_tensor dbias, mt_tensor dy);
    /* out = act(inp), elementwise (enum mt_act: the tanh GELU, the exact
     * GELU, tanh) */
    void (*act_fwd)(mt_backend *be, mt_tensor out, mt_tensor inp, enum mt_act act);
    /* dinp = act'(inp) * dout (overwrites; dinp may alias dout) */
    void (*act_bwd)(mt_backend *be, mt_tensor dinp, mt_tensor inp, mt_tensor dout, enum mt_act act);
    /* SwiGLU (Shazeer 2020; Megatron's --swiglu): the row of inp (N, 2F) is
     * [gate (F) | up (F)]; out (N,F) = silu(gate) * up, silu(g) = g / (1 + e^-g) */
    void (*swiglu_fwd)(mt_backend *be, mt_tensor out, mt_tensor inp);
    /* dinp (N,2F) = (d gate, d up) (overwrites), inp (N,2F), dout (N,F) */
    void (*swiglu_bwd)(mt_backend *be, mt_tensor dinp, mt_tensor inp, mt_tensor dout);
    /* out = a + b (out may alias a or b), all the same shape */
    void (*add)(mt_backend *be, mt_tensor out, mt_tensor a, mt_tensor b);
    /* x *= s */
    void (*scale)(mt_backend *be, mt_tensor x, float s);
    /* In place: each element of x (f32) becomes the nearest value of type
     * `to` (MT_DTYPE_BF16 or MT_DTYPE_F16), round to nearest even, as
     * core/half.h rounds (fp16 overflow gives +-inf; NaN stays NaN): what
     * a half-precision store keeps, in an f32 container */
    void (*round_half)(mt_backend *be, mt_tensor x, enum mt_dtype to);
    /* dst (bf16 or f16 storage, dst.dtype) = src (f32, as many elements)
     * rounded as round_half rounds: the half copies a GEMM with half inputs
     * reads */
    void (*to_half)(mt_backend *be, mt_tensor dst, mt_tensor src);
    /* In place: x = x * mask / (1 - p) (struct mt_dropout_args). The backward
     * of dropout is the same map on the gradient, so one member serves both. */
    void (*dropout)(mt_backend *be, mt_tensor x, const struct mt_dropout_args *d);
    /* Rotary position embedding (Su et al. 2021) of the query and key heads of
     * the qkv rows of positions [t0, T) of each sequence, in place
     * (a->B, T, t0, heads, groups, head_dim as in struct mt_attn_args; values
     * untouched). table (maxT, R): row t holds cos of R/2 angles, then their
     * sin. The first R dimensions of a head are rotated in Megatron's and
     * Hugging Face's non-interleaved form: for i < R/2,
     *   y[i] = x[i] cos - x[i+R/2] sin,  y[i+R/2] = x[i+R/2] cos + x[i] sin;
     * the others pass through. inverse = 1 rotates by minus the angles (the
     * backward, applied to the gradient). */
    void (*rope)(mt_backend *be, mt_tensor qkv, mt_tensor table, const struct mt_attn_args *a,
                 int inverse);
    /* out (B*(T-t0), heads*head_dim); att (B*heads*(T-t0), T): the softmax
     * probabilities before dropout, saved for backward (masked entries 0) */
    void (*attn_fwd)(mt_backend *be, mt_tensor out, mt_tensor att, mt_tensor qkv,
                     const struct mt_attn_args *a);
    /* t0 = 0 only. dqkv (overwrites), datt scratch (B*heads*T, T), dout as out */
    void (*attn_bwd)(mt_backend *be, mt_tensor dqkv, mt_tensor datt, mt_tensor dout,
                     mt_tensor qkv, mt_tensor att, const struct mt_attn_args *a);
    /* Flash attention (Dao et al. 2022; FlashAttention-2, Dao 2023): the
     * maps of attn_fwd / attn_bwd without the T x T probabilities. The
     * forward saves lse (B*heads*(T-t0), 1) f32, row (b, h, query i) in the
     * order of att's rows: the natural log of the sum of exp(scores) over
     * the keys the query sees (scores scaled, masked ones left out), so that
     * the probability is exp(score - lse). The backward recomputes the
     * probabilities from q, k and lse; rowdot (B*heads*T, 1) f32 is scratch
     * for D_i = dout_i . out_i (the softmax backward's sum_j p_ij dp_ij,
     * dropout included). Equal to the unfused maps up to rounding; each
     * backend's sums have a fixed order (no atomics), so it repeats bitwise. */
    void (*flash_attn_fwd)(mt_backend *be, mt_tensor out, mt_tensor lse, mt_tensor qkv,
                           const struct mt_attn_args *a);
    /* t0 = 0 only. dqkv (overwrites); out and lse as the forward left them */
    void (*flash_attn_bwd)(mt_backend *be, mt_tensor dqkv, mt_tensor rowdot, mt_tensor dout,
                           mt_tensor qkv, mt_tensor out, mt_tensor lse,
                           const struct mt_attn_args *a);
    /* Softmax cross-entropy in the order of Megatron's vocab-parallel
     * cross_entropy.py, so that a vocab-sharded run only inserts all-reduces
     * between the steps. logits (N, ld): the first V_local columns are used
     * (the others, padding, take no part), the first being global column
     * vocab_offset; targets (1,N) i32 global ids. All (1,N) vectors f32.
     *   xent_max:    rowmax[n] = max_c logits[n,c] (-inf for V_local = 0)  (then all_reduce MAX)
     *   xent_sumexp: sumexp[n] = sum_c exp(logits - rowmax);
     *                tgt[n] = logits[n, target - vocab_offset] or 0 if
     *                outside this shard                        (then all_reduce SUM)
     *   xent_loss:   losses[n] = log(sumexp) + rowmax - tgt
     *   xent_bwd:    dlogits = (exp(logits - rowmax) / sumexp - [c == target]) * dlosses[n]
     *                in the V_local columns (overwrites; dlogits may alias logits) */
    void (*xent_max)(mt_backend *be, mt_tensor rowmax, mt_tensor logits, int V_local);
    void (*xent_sumexp)(mt_backend *be, mt_tensor sumexp, mt_tensor tgt, mt_tensor logits,
                        mt_tensor rowmax, mt_tensor targets, int V_local, int vocab_offset);
    void (*xent_loss)(mt_backend *be, mt_tensor losses, mt_tensor rowmax, mt_tensor sumexp,
                      mt_tensor tgt);
    void (*xent_bwd)(mt_backend *be, mt_tensor dlogits, mt_tensor dlosses, mt_tensor logits,
                     mt_tensor rowmax, mt_tensor sumexp, mt_tensor targets, int V_local,
                     int vocab_offset);
    /* see struct mt_adamw_args; param, grad, m, v f32 of one length; may also
     * zero grad afterwards when zero_grad != 0 */
    void (*adamw)(mt_backend *be, mt_tensor param, mt_tensor grad, mt_tensor m, mt_tensor v,
                  const struct mt_adamw_args *a, int zero_grad);
    /* see struct mt_sgd_args; buf empty (0 elements) when momentum is 0 */
    void (*sgd)(mt_backend *be, mt_tensor param, mt_tensor grad, mt_tensor buf,
                const struct mt_sgd_args *a, int zero_grad);
    /* struct mt_adafactor_args: x (R,C); rows (1,R), cols (1,C); each sum in
     * double, in index order, stored f32 */
    void (*sq_sums)(mt_backend *be, mt_tensor rows, mt_tensor cols, mt_tensor x, float scale,
                    float eps);
    /* grad (R,C) in place; R (1,R) and C (1,C) for a factored tensor, else
     * V of grad's shape (the other pair empty) */
    void (*adafactor_precond)(mt_backend *be, mt_tensor grad, mt_tensor R, mt_tensor C,
                              mt_tensor V, const struct mt_adafactor_args *a);
    /* param, upd of one length, M too or empty (beta1 = 0); zeroes upd when
     * zero_grad != 0 */
    void (*adafactor_apply)(mt_backend *be, mt_tensor param, mt_tensor upd, mt_tensor M,
                            const struct mt_adafactor_args *a, int zero_grad);
    /* out1[0] = sum x^2, in double, fixed order (blocks of MT_REDUCE_BLOCK
     * elements summed sequentially, block sums added in order). out1: 1 double */
    void (*sum_squares)(mt_backend *be, double *out1, mt_tensor x);
    /* out1[0] = sum x, in double, in the block order of sum_squares */
    void (*sum)(mt_backend *be, double *out1, mt_tensor x);
    /* out1[0] = number of elements that are inf or nan. out1: 1 double */
    void (*count_nonfinite)(mt_backend *be, double *out1, mt_tensor x);

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
    struct mt_mem_track *mem; /* the wrappers' record of live allocations (backend.c) */
    /* mixed precision (mt_backend_set_gemm_precision): the type GEMMs round
     * to, and the wrappers' scratch for the rounded copies */
    enum mt_dtype gemm_math;
    float *gemm_scratch;
    size_t gemm_scratch_floats;
};

/* Bytes allocated through mt_alloc and not yet freed, now and at most so
 * far (a backend's own internal scratch is not counted). */
struct mt_mem_stats {
    size_t live, peak;
};
void mt_backend_mem(const mt_backend *be, struct mt_mem_stats *out);

/* Registry ------------------------------------------------------------------ */
/* "cpu" | "cpu-ref" | "cuda". Returns NULL and writes a message naming the
 * backends that were built into err (size errlen) when the name is unknown. */
mt_backend *mt_backend_init(const char *name, char *err, size_t errlen);
/* The --backend of a command (and its --tf32): as mt_backend_init, but a
 * usage error naming the backends this build has when it cannot be made;
 * --tf32 on a backend without TF32 warns. */
mt_backend *mt_backend_open(const char *name, int tf32);
void mt_backend_free(mt_backend *be);
const char *mt_backend_name(const mt_backend *be);
/* comma-separated list of the backends compiled in */
const char *mt_backend_list(void);
/* Asks for TF32 GEMMs (see set_tf32); returns 0 when the backend has no such
 * mode (the CPU backends), 1 when it was set. */
int mt_backend_set_tf32(mt_backend *be, int on);
/* Mixed precision's GEMMs (--bf16, --fp16; default f32): with t BF16 or
 * F16, every GEMM on f32 tensors rounds its inputs to t, multiplies with f32
 * (cpu-ref: f64) accumulation and rounds the product alpha op(A) op(B) to t
 * before adding beta C; see doc/numerics.md. Returns the previous setting. */
enum mt_dtype mt_backend_set_gemm_precision(mt_backend *be, enum mt_dtype t);
/* Checks that every mandatory member is set (used by the registry and tests). */
int mt_backend_iface_complete(const struct mt_backend_i *i, const char **missing);

/* Optional hook used by bench/: called with every GEMM before dispatch. */
typedef void (*mt_gemm_hook_fn)(void *user, const struct mt_gemm_args *g);
void mt_backend_set_gemm_hook(mt_gemm_hook_fn fn, void *user);
/* Optional hook used by bench/ (per-op profile): called before (end = 0) and
 * after (end = 1) every compute member dispatched by the wrappers below. */
typedef void (*mt_op_hook_fn)(void *user, mt_backend *be, const char *op, int end);
void mt_backend_set_op_hook(mt_op_hook_fn fn, void *user);

/* Wrappers: validate arguments once (element types, agreeing shapes),
 * then dispatch. ------------------------------------------------------------- */
void *mt_alloc(mt_backend *be, size_t nbytes); /* aborts with a message on failure */
void mt_dealloc(mt_backend *be, void *p);
void mt_memset0(mt_backend *be, void *dst, size_t nbytes);
void mt_upload(mt_backend *be, void *dst, const void *host_src, size_t nbytes);
void mt_download(mt_backend *be, void *host_dst, const void *src, size_t nbytes);
void mt_copy(mt_backend *be, void *dst, const void *src, size_t nbytes);
void mt_copy_2d(mt_backend *be, void *dst, size_t dst_pitch, const void *src, size_t src_pitch,
                size_t row_bytes, size_t rows);
void mt_synchronize(mt_backend *be);
/* Tensors: a new device tensor (contents undefined), its release, and
 * whole-tensor host transfers and zeroing. */
mt_tensor mt_tensor_alloc(mt_backend *be, enum mt_dtype t, int64_t rows, int64_t cols);
void mt_tensor_free(mt_backend *be, mt_tensor *t);
void mt_tensor_zero(mt_backend *be, mt_tensor t);
void mt_tensor_upload(mt_backend *be, mt_tensor t, const void *host);
void mt_tensor_download(mt_backend *be, void *host, mt_tensor t);
/* Rows [r0, r0 + n) of t, as a tensor (asserts they exist; a tensor
 * without data stays so). */
mt_tensor mt_rows(mt_tensor t, int64_t r0, int64_t n);
/* The first rows2 * cols2 elements of t's buffer as a rows2 x cols2 tensor
 * (asserts it holds that many): the view of a smaller problem in a buffer
 * made for the largest. */
mt_tensor mt_prefix(mt_tensor t, int64_t rows2, int64_t cols2);
/* t with its rows x cols elements read as rows2 x cols2 (same count). */
mt_tensor mt_reshape(mt_tensor t, int64_t rows2, int64_t cols2);
/* 1 if be computes op on type t (the backend's `supports`; f32 without it). */
int mt_backend_supports(const mt_backend *be, enum mt_op op, enum mt_dtype t);

void mt_gemm(mt_backend *be, const struct mt_gemm_args *g);
/* y = x * W^T (+ beta*y): x (N,in), W (out,in), y (N,out). The common case. */
void mt_matmul_xwt(mt_backend *be, mt_tensor y, mt_tensor x, mt_tensor w, float beta);
/* The two products of its backward: dW (+)= dy^T x, dx (+)= dy W. */
void mt_matmul_dw(mt_backend *be, mt_tensor dw, mt_tensor dy, mt_tensor x, float beta);
void mt_matmul_dx(mt_backend *be, mt_tensor dx, mt_tensor dy, mt_tensor w, float beta);
void mt_embed_fwd(mt_backend *be, mt_tensor out, mt_tensor ids, mt_tensor table,
                  int vocab_offset, int accumulate);
void mt_embed_bwd(mt_backend *be, mt_tensor dtable, mt_tensor dout, mt_tensor ids,
                  int vocab_offset);
void mt_layernorm_fwd(mt_backend *be, mt_tensor out, mt_tensor mean, mt_tensor rstd,
                      mt_tensor inp, mt_tensor w, mt_tensor b, double eps);
void mt_layernorm_bwd(mt_backend *be, mt_tensor dinp, mt_tensor dw, mt_tensor db, mt_tensor dout,
                      mt_tensor inp, mt_tensor w, mt_tensor mean, mt_tensor rstd);
void mt_rmsnorm_fwd(mt_backend *be, mt_tensor out, mt_tensor rstd, mt_tensor inp, mt_tensor w,
                    double eps);
void mt_rmsnorm_bwd(mt_backend *be, mt_tensor dinp, mt_tensor dw, mt_tensor dout, mt_tensor inp,
                    mt_tensor w, mt_tensor rstd);
void mt_bias_add(mt_backend *be, mt_tensor y, mt_tensor bias);
void mt_bias_bwd(mt_backend *be, mt_tensor dbias, mt_tensor dy);
void mt_act_fwd(mt_backend *be, mt_tensor out, mt_tensor inp, enum mt_act act);
void mt_act_bwd(mt_backend *be, mt_tensor dinp, mt_tensor inp, mt_tensor dout, enum mt_act act);
void mt_swiglu_fwd(mt_backend *be, mt_tensor out, mt_tensor inp);
void mt_swiglu_bwd(mt_backend *be, mt_tensor dinp, mt_tensor inp, mt_tensor dout);
void mt_add(mt_backend *be, mt_tensor out, mt_tensor a, mt_tensor b);
void mt_scale(mt_backend *be, mt_tensor x, float s);
void mt_round_half(mt_backend *be, mt_tensor x, enum mt_dtype to);
void mt_to_half(mt_backend *be, mt_tensor dst, mt_tensor src);
/* dropout_fwd on the activation, dropout_bwd on its gradient: the same map */
void mt_dropout_fwd(mt_backend *be, mt_tensor x, const struct mt_dropout_args *d);
void mt_dropout_bwd(mt_backend *be, mt_tensor dx, const struct mt_dropout_args *d);
void mt_rope_fwd(mt_backend *be, mt_tensor qkv, mt_tensor table, const struct mt_attn_args *a);
void mt_rope_bwd(mt_backend *be, mt_tensor dqkv, mt_tensor table, const struct mt_attn_args *a);
void mt_attn_fwd(mt_backend *be, mt_tensor out, mt_tensor att, mt_tensor qkv,
                 const struct mt_attn_args *a);
void mt_attn_bwd(mt_backend *be, mt_tensor dqkv, mt_tensor datt, mt_tensor dout, mt_tensor qkv,
                 mt_tensor att, const struct mt_attn_args *a);
void mt_flash_attn_fwd(mt_backend *be, mt_tensor out, mt_tensor lse, mt_tensor qkv,
                       const struct mt_attn_args *a);
void mt_flash_attn_bwd(mt_backend *be, mt_tensor dqkv, mt_tensor rowdot, mt_tensor dout,
                       mt_tensor qkv, mt_tensor out, mt_tensor lse, const struct mt_attn_args *a);
void mt_xent_max(mt_backend *be, mt_tensor rowmax, mt_tensor logits, int V_local);
void mt_xent_sumexp(mt_backend *be, mt_tensor sumexp, mt_tensor tgt, mt_tensor logits,
                    mt_tensor rowmax, mt_tensor targets, int V_local, int vocab_offset);
void mt_xent_loss(mt_backend *be, mt_tensor losses, mt_tensor rowmax, mt_tensor sumexp,
                  mt_tensor tgt);
void mt_xent_bwd(mt_backend *be, mt_tensor dlogits, mt_tensor dlosses, mt_tensor logits,
                 mt_tensor rowmax, mt_tensor sumexp, mt_tensor targets, int V_local,
                 int vocab_offset);
void mt_adamw(mt_backend *be, mt_tensor param, mt_tensor grad, mt_tensor m, mt_tensor v,
              const struct mt_adamw_args *a, int zero_grad);
void mt_sgd(mt_backend *be, mt_tensor param, mt_tensor grad, mt_tensor buf,
            const struct mt_sgd_args *a, int zero_grad);
void mt_sq_sums(mt_backend *be, mt_tensor rows, mt_tensor cols, mt_tensor x, float scale, float eps);
void mt_adafactor_precond(mt_backend *be, mt_tensor grad, mt_tensor R, mt_tensor C, mt_tensor V,
                          const struct mt_adafactor_args *a);
void mt_adafactor_apply(mt_backend *be, mt_tensor param, mt_tensor upd, mt_tensor M,
                        const struct mt_adafactor_args *a, int zero_grad);
double mt_sum_squares(mt_backend *be, mt_tensor x);     /* returns on host */
double mt_sum(mt_backend *be, mt_tensor x);             /* returns on host */
double mt_count_nonfinite(mt_backend *be, mt_tensor x); /* returns on host */

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
/* Megatron's --distributed-timeout-minutes: a communication call of this
 * process that has not finished after `seconds` ends the whole job with a
 * message naming the rank and the call (backend/watchdog.h). Only in a
 * world of more than one process; seconds <= 0: no limit. */
void mt_comm_set_timeout(mt_backend *be, double seconds);
/* Cumulative bytes sent and seconds spent in communication by this process. */
void mt_comm_stats(uint64_t *bytes, double *seconds);
void mt_sendrecv(mt_backend *be, mt_comm *c, const void *sbuf, int dst, void *rbuf, int src,
                 size_t count, enum mt_dtype t);

#ifdef __cplusplus
}
#endif
#endif /* MT_BACKEND_H */
