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
    void P##_embed_fwd(mt_backend *be, float *out, const int32_t *tok, const float *wte, \
                       const float *wpe, int B, int T, int C, int pos0, int vocab_offset, \
                       int V_local); \
    void P##_embed_bwd(mt_backend *be, float *dwte, float *dwpe, const float *dout, \
                       const int32_t *tok, int B, int T, int C, int vocab_offset, int V_local); \
    void P##_layernorm_fwd(mt_backend *be, float *out, float *mean, float *rstd, \
                           const float *inp, const float *w, const float *b, int N, int C); \
    void P##_layernorm_bwd(mt_backend *be, float *dinp, float *dw, float *db, \
                           const float *dout, const float *inp, const float *w, \
                           const float *mean, const float *rstd, int N, int C); \
    void P##_bias_add(mt_backend *be, float *y, const float *bias, int N, int C); \
    void P##_bias_bwd(mt_backend *be, float *dbias, const float *dy, int N, int C); \
    void P##_gelu_fwd(mt_backend *be, float *out, const float *inp, size_t n); \
    void P##_gelu_bwd(mt_backend *be, float *dinp, const float *inp, const float *dout, \
                      size_t n); \
    void P##_add(mt_backend *be, float *out, const float *a, const float *b, size_t n); \
    void P##_scale(mt_backend *be, float *x, float s, size_t n); \
    void P##_attn_fwd(mt_backend *be, float *out, float *att, const float *qkv, int B, int T, \
                      int t0, int NH, int HS); \
    void P##_attn_bwd(mt_backend *be, float *dqkv, float *datt, const float *dout, \
                      const float *qkv, const float *att, int B, int T, int NH, int HS); \
    void P##_xent_max(mt_backend *be, float *rowmax, const float *logits, int N, int V_local, \
                      int ld); \
    void P##_xent_sumexp(mt_backend *be, float *sumexp, float *tgt, const float *logits, \
                         const float *rowmax, const int32_t *targets, int N, int V_local, \
                         int vocab_offset, int ld); \
    void P##_xent_loss(mt_backend *be, float *losses, const float *rowmax, \
                       const float *sumexp, const float *tgt, int N); \
    void P##_xent_bwd(mt_backend *be, float *dlogits, const float *dlosses, \
                      const float *logits, const float *rowmax, const float *sumexp, \
                      const int32_t *targets, int N, int V_local, int vocab_offset, int ld); \
    void P##_adamw(mt_backend *be, float *param, float *grad, float *m, float *v, size_t n, \
                   const struct mt_adamw_args *a, int zero_grad); \
    void P##_sum_squares(mt_backend *be, double *out1, const float *x, size_t n); \
    void P##_count_nonfinite(mt_backend *be, double *out1, const float *x, size_t n);

/* Designated initializers for the compute members of a vtable instance (C;
 * C++ before C++20 has no designated initializers: cuda_backend.cu lists
 * them in order). */
#define MT_BACKEND_COMPUTE_MEMBERS(P) \
    .gemm = P##_gemm, .embed_fwd = P##_embed_fwd, .embed_bwd = P##_embed_bwd, \
    .layernorm_fwd = P##_layernorm_fwd, .layernorm_bwd = P##_layernorm_bwd, \
    .bias_add = P##_bias_add, .bias_bwd = P##_bias_bwd, .gelu_fwd = P##_gelu_fwd, \
    .gelu_bwd = P##_gelu_bwd, .add = P##_add, .scale = P##_scale, .attn_fwd = P##_attn_fwd, \
    .attn_bwd = P##_attn_bwd, .xent_max = P##_xent_max, .xent_sumexp = P##_xent_sumexp, \
    .xent_loss = P##_xent_loss, .xent_bwd = P##_xent_bwd, .adamw = P##_adamw, \
    .sum_squares = P##_sum_squares, .count_nonfinite = P##_count_nonfinite

#endif /* MT_BACKEND_IMPL_H */
