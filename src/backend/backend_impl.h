/* backend_impl.h: for the files that implement a backend (backends/), not
 * for its callers.
 *
 * Every backend defines each compute member of struct mt_backend_i under a
 * prefix (mt_cpu_gemm, mt_cpu_ref_gemm, mt_cuda_gemm, ...). The signatures
 * are written once here, so that the compiler checks every definition
 * against the vtable and a member added to backend.h is declared for every
 * backend in one place. Contracts and tensor shapes are documented at the
 * member in backend.h. */
#ifndef MT_BACKEND_IMPL_H
#define MT_BACKEND_IMPL_H
#include "backend/backend.h"

#define MT_BACKEND_DECLARE_COMPUTE(P) \
    void P##_gemm(mt_backend *be, const struct mt_gemm_args *g); \
    void P##_embed_fwd(mt_backend *be, mt_tensor out, mt_tensor ids, mt_tensor table, \
                       int vocab_offset, int accumulate); \
    void P##_embed_bwd(mt_backend *be, mt_tensor dtable, mt_tensor dout, mt_tensor ids, \
                       int vocab_offset); \
    void P##_layernorm_fwd(mt_backend *be, mt_tensor out, mt_tensor mean, mt_tensor rstd, \
                           mt_tensor inp, mt_tensor w, mt_tensor b, double eps); \
    void P##_layernorm_bwd(mt_backend *be, mt_tensor dinp, mt_tensor dw, mt_tensor db, \
                           mt_tensor dout, mt_tensor inp, mt_tensor w, mt_tensor mean, \
                           mt_tensor rstd); \
    void P##_rmsnorm_fwd(mt_backend *be, mt_tensor out, mt_tensor rstd, mt_tensor inp, \
                         mt_tensor w, double eps); \
    void P##_rmsnorm_bwd(mt_backend *be, mt_tensor dinp, mt_tensor dw, mt_tensor dout, \
                         mt_tensor inp, mt_tensor w, mt_tensor rstd); \
    void P##_bias_add(mt_backend *be, mt_tensor y, mt_tensor bias); \
    void P##_bias_bwd(mt_backend *be, mt_tensor dbias, mt_tensor dy); \
    void P##_act_fwd(mt_backend *be, mt_tensor out, mt_tensor inp, enum mt_act act); \
    void P##_act_bwd(mt_backend *be, mt_tensor dinp, mt_tensor inp, mt_tensor dout, \
                     enum mt_act act); \
    void P##_swiglu_fwd(mt_backend *be, mt_tensor out, mt_tensor inp); \
    void P##_swiglu_bwd(mt_backend *be, mt_tensor dinp, mt_tensor inp, mt_tensor dout); \
    void P##_add(mt_backend *be, mt_tensor out, mt_tensor a, mt_tensor b); \
    void P##_scale(mt_backend *be, mt_tensor x, float s); \
    void P##_round_half(mt_backend *be, mt_tensor x, enum mt_dtype to); \
    void P##_to_half(mt_backend *be, mt_tensor dst, mt_tensor src); \
    void P##_dropout(mt_backend *be, mt_tensor x, const struct mt_dropout_args *d); \
    void P##_rope(mt_backend *be, mt_tensor qkv, mt_tensor table, \
                  const struct mt_attn_args *a, int inverse); \
    void P##_attn_fwd(mt_backend *be, mt_tensor out, mt_tensor att, mt_tensor qkv, \
                      const struct mt_attn_args *a); \
    void P##_attn_bwd(mt_backend *be, mt_tensor dqkv, mt_tensor datt, mt_tensor dout, \
                      mt_tensor qkv, mt_tensor att, const struct mt_attn_args *a); \
    void P##_flash_attn_fwd(mt_backend *be, mt_tensor out, mt_tensor lse, mt_tensor qkv, \
                            const struct mt_attn_args *a); \
    void P##_flash_attn_bwd(mt_backend *be, mt_tensor dqkv, mt_tensor rowdot, mt_tensor dout, \
                            mt_tensor qkv, mt_tensor out, mt_tensor lse, \
                            const struct mt_attn_args *a); \
    void P##_xent_max(mt_backend *be, mt_tensor rowmax, mt_tensor logits, int V_local); \
    void P##_xent_sumexp(mt_backend *be, mt_tensor sumexp, mt_tensor tgt, mt_tensor logits, \
                         mt_tensor rowmax, mt_tensor targets, int V_local, \
                         int vocab_offset); \
    void P##_xent_loss(mt_backend *be, mt_tensor losses, mt_tensor rowmax, mt_tensor sumexp, \
                       mt_tensor tgt); \
    void P##_xent_bwd(mt_backend *be, mt_tensor dlogits, mt_tensor dlosses, mt_tensor logits, \
                      mt_tensor rowmax, mt_tensor sumexp, mt_tensor targets, int V_local, \
                      int vocab_offset); \
    void P##_adamw(mt_backend *be, mt_tensor param, mt_tensor grad, mt_tensor m, mt_tensor v, \
                   const struct mt_adamw_args *a, int zero_grad); \
    void P##_sgd(mt_backend *be, mt_tensor param, mt_tensor grad, mt_tensor buf, \
                 const struct mt_sgd_args *a, int zero_grad); \
    void P##_sq_sums(mt_backend *be, mt_tensor rows, mt_tensor cols, mt_tensor x, float scale, \
                     float eps); \
    void P##_adafactor_precond(mt_backend *be, mt_tensor grad, mt_tensor R, mt_tensor C, \
                               mt_tensor V, const struct mt_adafactor_args *a); \
    void P##_adafactor_apply(mt_backend *be, mt_tensor param, mt_tensor upd, mt_tensor M, \
                             const struct mt_adafactor_args *a, int zero_grad); \
    void P##_sum_squares(mt_backend *be, double *out1, mt_tensor x); \
    void P##_sum(mt_backend *be, double *out1, mt_tensor x); \
    void P##_count_nonfinite(mt_backend *be, double *out1, mt_tensor x);

/* Designated initializers for the compute members of a vtable instance (C;
 * C++ before C++20 has no designated initializers: cuda_backend.cu lists
 * them in order). */
#define MT_BACKEND_COMPUTE_MEMBERS(P) \
    .gemm = P##_gemm, .embed_fwd = P##_embed_fwd, .embed_bwd = P##_embed_bwd, \
    .layernorm_fwd = P##_layernorm_fwd, .layernorm_bwd = P##_layernorm_bwd, \
    .rmsnorm_fwd = P##_rmsnorm_fwd, .rmsnorm_bwd = P##_rmsnorm_bwd, \
    .bias_add = P##_bias_add, .bias_bwd = P##_bias_bwd, .act_fwd = P##_act_fwd, \
    .act_bwd = P##_act_bwd, .swiglu_fwd = P##_swiglu_fwd, .swiglu_bwd = P##_swiglu_bwd, \
    .add = P##_add, .scale = P##_scale, .round_half = P##_round_half, .to_half = P##_to_half, \
    .dropout = P##_dropout, .rope = P##_rope, \
    .attn_fwd = P##_attn_fwd, .attn_bwd = P##_attn_bwd, \
    .flash_attn_fwd = P##_flash_attn_fwd, .flash_attn_bwd = P##_flash_attn_bwd, .xent_max = P##_xent_max, \
    .xent_sumexp = P##_xent_sumexp, .xent_loss = P##_xent_loss, .xent_bwd = P##_xent_bwd, \
    .adamw = P##_adamw, .sgd = P##_sgd, .sq_sums = P##_sq_sums, \
    .adafactor_precond = P##_adafactor_precond, .adafactor_apply = P##_adafactor_apply, \
    .sum_squares = P##_sum_squares, .sum = P##_sum, \
    .count_nonfinite = P##_count_nonfinite

/* The attention layout of struct mt_attn_args, for the kernels: per token a
 * row of groups * (heads/groups + 2) * head_dim; query head h belongs to
 * group h / (heads/groups). Offsets in elements within a token's row. */
static inline int mt_qkv_width(const struct mt_attn_args *a)
{
    return a->groups * (a->heads / a->groups + 2) * a->head_dim;
}
static inline int mt_q_offset(const struct mt_attn_args *a, int h)
{
    const int per = a->heads / a->groups;
    return ((h / per) * (per + 2) + h % per) * a->head_dim;
}
static inline int mt_k_offset(const struct mt_attn_args *a, int g)
{
    const int per = a->heads / a->groups;
    return (g * (per + 2) + per) * a->head_dim;
}
static inline int mt_v_offset(const struct mt_attn_args *a, int g)
{
    return mt_k_offset(a, g) + a->head_dim;
}

/* the first key query position t of sequence b sees: its document's start
 * (doc_start), else 0 */
static inline int mt_attn_first_key(const struct mt_attn_args *a, int b, int t)
{
    return a->doc_start ? a->doc_start[(size_t)b * a->T + t] : 0;
}

/* the rope table row of position t of sequence b */
static inline int mt_rope_row(const struct mt_attn_args *a, int b, int t)
{
    return a->positions ? a->positions[(size_t)b * a->T + t] : t;
}

/* the last key query position t of sequence b sees: t when causal, else
 * T-1, and never a padded key (lengths) */
static inline int mt_attn_last_key(const struct mt_attn_args *a, int b, int t)
{
    int jmax = a->causal ? t : a->T - 1;
    if (a->lengths && jmax >= a->lengths[b]) jmax = a->lengths[b] - 1;
    return jmax;
}

#endif /* MT_BACKEND_IMPL_H */
