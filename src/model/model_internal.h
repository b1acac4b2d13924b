/* model_internal.h: what the files of src/model/ share and nothing else:
 * the context of one forward or backward call and the pieces of the model
 * (each in its own file), composed by model.c. */
#ifndef MT_MODEL_INTERNAL_H
#define MT_MODEL_INTERNAL_H
#include "model/model.h"

/* One call over B sequences of T positions (queries from t0; t0 > 0 only
 * when decoding, B = 1), on this rank's heads. */
struct mt_fwd {
    mt_backend *be;
    const struct mt_transformer_config *cfg;
    const struct mt_tp *tp;
    int B, T, t0;
    int heads, groups;       /* this rank's query heads and key/value groups */
    mt_tensor rope;          /* the rotary table, or data NULL */
    int dropout;             /* training forward with dropout */
    uint64_t seed;
    int64_t sample0;         /* the first sample's index in the training stream */
};

/* The N = B * (T - t0) rows that a call computes. */
static inline int64_t mt_fwd_rows(const struct mt_fwd *f) { return (int64_t)f->B * (f->T - f->t0); }

/* Dropout streams: the embedding's, then four places per layer. */
enum { MT_DROP_EMBEDDING, MT_DROP_ATTN_PROBS, MT_DROP_ATTN_OUT, MT_DROP_MLP_OUT };
/* The dropout of place `site` of global layer `layer` (-1: the embedding)
 * over x (rows of samples of f->T positions), with probability p; p = 0 or
 * no training: nothing. */
struct mt_dropout_args mt_fwd_dropout(const struct mt_fwd *f, float p, int layer, int site);

/* norm.c: LayerNorm or RMSNorm as configured; b and mean absent (data
 * NULL) under RMSNorm. Backward: dx += (the residual stream), dw, db += */
void mt_norm_fwd(const struct mt_fwd *f, mt_tensor out, mt_tensor mean, mt_tensor rstd,
                 mt_tensor x, mt_tensor w, mt_tensor b);
void mt_norm_bwd(const struct mt_fwd *f, mt_tensor dx, mt_tensor dw, mt_tensor db,
                 mt_tensor dout, mt_tensor x, mt_tensor w, mt_tensor mean, mt_tensor rstd);

/* embedding.c: out = word[tokens] (+ pos[positions]), then dropout */
void mt_embedding_fwd(const struct mt_fwd *f, const struct mt_model_view *w, mt_tensor out,
                      mt_tensor tokens, mt_tensor positions);
/* dout (the embedding output's gradient) is consumed (dropout in place) */
void mt_embedding_bwd(const struct mt_fwd *f, const struct mt_model_view *g, mt_tensor dout,
                      mt_tensor tokens, mt_tensor positions);

/* attention.c: y (pre-residual, rows of the call) = proj(attention(rope(qkv(x)))).
 * x: the input norm's output; the qkv rows [t0, T) are written (the KV
 * cache holds the others). */
void mt_attention_fwd(const struct mt_fwd *f, const struct mt_layer_view *w,
                      struct mt_layer_acts *a, int layer, mt_tensor y, mt_tensor x);
/* dx = d x (overwritten) from dy = d y */
void mt_attention_bwd(const struct mt_fwd *f, const struct mt_layer_view *w,
                      const struct mt_layer_view *g, struct mt_layer_acts *a, int layer,
                      struct mt_grad_bufs *gb, mt_tensor dx, mt_tensor dy, mt_tensor x);

/* mlp.c: y = fc2(act(fc1(x))), act GELU or SwiGLU */
void mt_mlp_fwd(const struct mt_fwd *f, const struct mt_layer_view *w, struct mt_layer_acts *a,
                mt_tensor y, mt_tensor x);
void mt_mlp_bwd(const struct mt_fwd *f, const struct mt_layer_view *w,
                const struct mt_layer_view *g, struct mt_layer_acts *a, struct mt_grad_bufs *gb,
                mt_tensor dx, mt_tensor dy, mt_tensor x);

/* layer.c: one transformer layer over x (rows of the call); its output is
 * a->resid3. Backward: dresid holds d(output) on entry and d(x) on exit. */
void mt_layer_fwd(const struct mt_fwd *f, const struct mt_layer_view *w, struct mt_layer_acts *a,
                  int layer, mt_tensor x);
void mt_layer_bwd(const struct mt_fwd *f, const struct mt_layer_view *w,
                  const struct mt_layer_view *g, struct mt_layer_acts *a, int layer,
                  struct mt_grad_bufs *gb, mt_tensor x);

/* lm_head.c: the final norm and the output layer, logits (N, real columns
 * of the shard) into h->logits; the loss; their backward into dresid. */
void mt_lm_head_fwd(const struct mt_fwd *f, const struct mt_model_view *w,
                    struct mt_head_acts *h, mt_tensor x);
void mt_lm_loss_fwd(const struct mt_fwd *f, const struct mt_model_view *w,
                    struct mt_head_acts *h, mt_tensor targets);
/* from dlosses (N): dresid = d x (overwritten); the logits are overwritten */
void mt_lm_head_bwd(const struct mt_fwd *f, const struct mt_model_view *w,
                    const struct mt_model_view *g, struct mt_head_acts *h, struct mt_grad_bufs *gb,
                    mt_tensor x, mt_tensor targets, mt_tensor dlosses);

#endif /* MT_MODEL_INTERNAL_H */
