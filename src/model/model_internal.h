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
    const int32_t *lengths;  /* (B) real tokens per sequence (backend memory), or NULL: T */
    int dropout;             /* training forward with dropout */
    uint64_t seed;
    int64_t sample0;         /* the first sample's index in the training stream */
    int flash;               /* flash attention (enum mt_attn_impl) */
    const int32_t *doc_start;  /* (B*T) device: packed documents' starts, or NULL */
    const int32_t *positions;  /* (B*T) device: position ids for RoPE, or NULL (0..T-1) */
    int recompute_attn;      /* selective recompute: attention's backward recomputes its probabilities */
};

/* the configured GELU as the backend's activation */
static inline enum mt_act mt_fwd_gelu(const struct mt_fwd *f)
{
    return f->cfg->activation == MT_ACTIVATION_GELU ? MT_ACT_GELU : MT_ACT_GELU_TANH;
}

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

/* embedding.c: out = word[tokens] (+ pos[positions]) (+ tokentype[types]),
 * normalised in the post-norm layout (e keeps the sum), then dropout. The
 * ids are the slot's (types absent without token types). */
struct mt_embed_ids {
    mt_tensor tokens, positions, types;
};
void mt_embedding_fwd(const struct mt_fwd *f, const struct mt_model_view *w,
                      struct mt_embed_acts *e, mt_tensor out, const struct mt_embed_ids *ids);
/* dout (the embedding output's gradient) is consumed (dropout in place);
 * scratch (N,C) is used by the post-norm layout */
void mt_embedding_bwd(const struct mt_fwd *f, const struct mt_model_view *w,
                      const struct mt_model_view *g, struct mt_embed_acts *e, mt_tensor dout,
                      mt_tensor scratch, const struct mt_embed_ids *ids);

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
 * mt_layer_output (resid3, or ln2 in the post-norm layout). Backward:
 * dresid holds d(output) on entry and d(x) on exit. */
static inline mt_tensor mt_layer_output(const struct mt_transformer_config *c,
                                        const struct mt_layer_acts *a, int64_t r0, int64_t n)
{
    return mt_rows(c->post_layernorm ? a->ln2 : a->resid3, r0, n);
}
void mt_layer_fwd(const struct mt_fwd *f, const struct mt_layer_view *w, struct mt_layer_acts *a,
                  int layer, mt_tensor x);
void mt_layer_bwd(const struct mt_fwd *f, const struct mt_layer_view *w,
                  const struct mt_layer_view *g, struct mt_layer_acts *a, int layer,
                  struct mt_grad_bufs *gb, mt_tensor x);

/* lm_head.c: the language-model head on the hidden state (N,C): GPT's
 * output layer, or BERT's transform (dense, GELU, LayerNorm) then the
 * output layer and its bias; logits (N, real columns of the shard) into
 * h->logits; the per-token loss. Backward from dlosses (N): dhidden = d
 * hidden (overwritten); the logits are overwritten. */
void mt_lm_head_fwd(const struct mt_fwd *f, const struct mt_model_view *w,
                    struct mt_head_acts *h, mt_tensor hidden);
void mt_lm_loss_fwd(const struct mt_fwd *f, const struct mt_model_view *w,
                    struct mt_head_acts *h, mt_tensor targets);
void mt_lm_head_bwd(const struct mt_fwd *f, const struct mt_model_view *w,
                    const struct mt_model_view *g, struct mt_head_acts *h, struct mt_grad_bufs *gb,
                    mt_tensor dhidden, mt_tensor hidden, mt_tensor targets, mt_tensor dlosses);

/* seq_head.c: the sequence head: the row rows[b] of the hidden state for
 * each sequence (its first or last real token), BERT's pooler (dense,
 * tanh) when configured, then the binary or classification layer: logits
 * (B, classes) into h->seq_logits; the per-sequence loss against labels.
 * Backward from dlosses (B): adds into dhidden. Replicated over tensor
 * parallelism (every rank computes the same). */
void mt_seq_head_fwd(const struct mt_fwd *f, const struct mt_model_view *w,
                     struct mt_head_acts *h, mt_tensor hidden, mt_tensor rows);
void mt_seq_loss_fwd(const struct mt_fwd *f, struct mt_head_acts *h, mt_tensor labels);
void mt_seq_head_bwd(const struct mt_fwd *f, const struct mt_model_view *w,
                     const struct mt_model_view *g, struct mt_head_acts *h, struct mt_grad_bufs *gb,
                     mt_tensor dhidden, mt_tensor rows, mt_tensor labels, mt_tensor dlosses);

/* recompute.c (struct mt_recompute): the activations layer l of slot s
 * reads and writes: its own, or in a fully recomputed chunk the chunk's
 * scratch layer, whose output is the slot's kept one at the chunk's end
 * (tmp holds the combination). */
struct mt_layer_acts *mt_recompute_acts(struct mt_model *m, struct mt_model_slot *s, int l,
                                        struct mt_layer_acts *tmp);
/* Backward, before layer l: when l ends a fully recomputed chunk, reruns
 * the chunk's forward from its kept input. */
void mt_recompute_chunk(struct mt_model *m, struct mt_model_slot *s, const struct mt_fwd *f, int l);
/* Allocation: the slot's layer activations and the model's scratch as the
 * recompute setting (m->rc) needs them, and their release. */
void mt_recompute_alloc_slot(struct mt_model *m, struct mt_model_slot *s);
void mt_recompute_free_slot(struct mt_model *m, struct mt_model_slot *s);
void mt_recompute_alloc(struct mt_model *m);
void mt_recompute_free(struct mt_model *m);

#endif /* MT_MODEL_INTERNAL_H */
