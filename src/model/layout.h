/* layout.h: the one description of what a model holds.
 *
 * Each list below is written once, as an X-macro, and everything else is
 * generated from it: the parameter table (names, global shapes,
 * tensor-parallel splits, initialisation), the views of a flat buffer
 * (struct mt_layer_view / mt_model_view: a tensor per entry), and the
 * activation buffers of a micro-batch. A tensor whose condition does not
 * hold for the configuration (a bias under --disable-bias-linear, the
 * LayerNorm bias under RMSNorm, the position table under RoPE, BERT's
 * token types, embedding norm and heads under GPT) is absent: not in the
 * table, and its view has data == NULL, which the layer code reads as "no
 * such term". A new kind of tensor is a new line here and the code that
 * uses it.
 *
 * Parameters, in the order of the flat buffer and of the checkpoint:
 * MT_PRE_PARAMS (first stage), every layer's MT_LAYER_PARAMS, then
 * MT_POST_PARAMS (last stage). Names are Megatron-core's
 * (decoder.layers.3.self_attention.linear_qkv.weight). Columns:
 *   field   the view's member
 *   name    the parameter's name (layers: after "decoder.layers.N.")
 *   d0, d1  global shape; d1 NONE for a vector of d0
 *   split   REPL replicated over tensor parallelism; COL split d0
 *           (column-parallel weights and their biases, the vocabulary);
 *           ROW split d1 (row-parallel weights); GLU split d0 in two
 *           chunks under SwiGLU ([gate; up] stay together)
 *   init    NORMAL N(0, init_method_std), SCALED N(0, std / sqrt(2L))
 *           (Megatron's output projections), ONES, ZEROS
 *   when    the condition for the tensor to exist */
#ifndef MT_MODEL_LAYOUT_H
#define MT_MODEL_LAYOUT_H
#include "backend/backend.h"
#include "model/config.h"
#include "model/params.h"

#define MT_PRE_PARAMS(X) \
    X(word, "embedding.word_embeddings.weight", VOCAB, HIDDEN, COL, NORMAL, WORD) \
    X(pos, "embedding.position_embeddings.weight", MAXPOS, HIDDEN, REPL, NORMAL, LEARNED_POS) \
    X(tokentype, "embedding.tokentype_embeddings.weight", TYPES, HIDDEN, REPL, NORMAL, TOKENTYPES) \
    X(emb_ln_w, "embedding.layernorm.weight", HIDDEN, NONE, REPL, ONES, EMB_NORM) \
    X(emb_ln_b, "embedding.layernorm.bias", HIDDEN, NONE, REPL, ZEROS, EMB_NORM_BIAS)

#define MT_LAYER_PARAMS(X) \
    X(ln1_w, "input_layernorm.weight", HIDDEN, NONE, REPL, ONES, ALWAYS) \
    X(ln1_b, "input_layernorm.bias", HIDDEN, NONE, REPL, ZEROS, NORM_BIAS) \
    X(qkv_w, "self_attention.linear_qkv.weight", QKV, HIDDEN, COL, NORMAL, ALWAYS) \
    X(qkv_b, "self_attention.linear_qkv.bias", QKV, NONE, COL, ZEROS, QKV_BIAS) \
    X(proj_w, "self_attention.linear_proj.weight", HIDDEN, ATTN, ROW, SCALED, ALWAYS) \
    X(proj_b, "self_attention.linear_proj.bias", HIDDEN, NONE, REPL, ZEROS, LINEAR_BIAS) \
    X(ln2_w, "pre_mlp_layernorm.weight", HIDDEN, NONE, REPL, ONES, ALWAYS) \
    X(ln2_b, "pre_mlp_layernorm.bias", HIDDEN, NONE, REPL, ZEROS, NORM_BIAS) \
    X(fc1_w, "mlp.linear_fc1.weight", FC1, HIDDEN, GLU, NORMAL, ALWAYS) \
    X(fc1_b, "mlp.linear_fc1.bias", FC1, NONE, GLU, ZEROS, LINEAR_BIAS) \
    X(fc2_w, "mlp.linear_fc2.weight", HIDDEN, FFN, ROW, SCALED, ALWAYS) \
    X(fc2_b, "mlp.linear_fc2.bias", HIDDEN, NONE, REPL, ZEROS, LINEAR_BIAS)

#define MT_POST_PARAMS(X) \
    X(lnf_w, "decoder.final_layernorm.weight", HIDDEN, NONE, REPL, ONES, FINAL_NORM) \
    X(lnf_b, "decoder.final_layernorm.bias", HIDDEN, NONE, REPL, ZEROS, FINAL_NORM_BIAS) \
    X(lm_dense_w, "lm_head.dense.weight", HIDDEN, HIDDEN, REPL, NORMAL, BERT_LM) \
    X(lm_dense_b, "lm_head.dense.bias", HIDDEN, NONE, REPL, ZEROS, BERT_LM) \
    X(lm_ln_w, "lm_head.layer_norm.weight", HIDDEN, NONE, REPL, ONES, BERT_LM) \
    X(lm_ln_b, "lm_head.layer_norm.bias", HIDDEN, NONE, REPL, ZEROS, BERT_LM_NORM_BIAS) \
    X(output, "output_layer.weight", VOCAB, HIDDEN, COL, NORMAL, LAST_UNTIED) \
    X(output_b, "output_layer.bias", VOCAB, NONE, COL, ZEROS, BERT_LM) \
    X(pool_w, "pooler.dense.weight", HIDDEN, HIDDEN, REPL, NORMAL, POOLER) \
    X(pool_b, "pooler.dense.bias", HIDDEN, NONE, REPL, ZEROS, POOLER) \
    X(binary_w, "binary_head.weight", CLASSES, HIDDEN, REPL, NORMAL, BINARY_HEAD) \
    X(binary_b, "binary_head.bias", CLASSES, NONE, REPL, ZEROS, BINARY_HEAD) \
    X(class_w, "classification_head.weight", CLASSES, HIDDEN, REPL, NORMAL, CLASS_HEAD) \
    X(class_b, "classification_head.bias", CLASSES, NONE, REPL, ZEROS, CLASS_HEAD)

/* Activations of one layer for one micro-batch (local widths: a tensor-
 * parallel rank's heads and columns), saved for the backward pass.
 * X(field, rows, cols, when); TOKENS = B*T rows, ATT_ROWS = B * local
 * heads * T (the probabilities); per-token statistics are (TOKENS, ONE)
 * columns, so that the first N rows of any buffer are the view of a
 * micro-batch of N tokens (mt_rows). */
#define MT_LAYER_ACTS(X) \
    X(ln1, TOKENS, HIDDEN, ALWAYS)          /* input norm */ \
    X(ln1_mean, TOKENS, ONE, LAYERNORM) \
    X(ln1_rstd, TOKENS, ONE, ALWAYS) \
    X(qkv, TOKENS, QKV, ALWAYS)             /* rotated q, k; the KV cache when decoding */ \
    X(att, ATT_ROWS, ATT_COLS, ALWAYS)      /* softmax probabilities, or (flash) their rows' log-sum-exp */ \
    X(attn_out, TOKENS, ATTN, ALWAYS)       /* the local heads' outputs */ \
    X(resid2, TOKENS, HIDDEN, ALWAYS)       /* residual after attention */ \
    X(ln2, TOKENS, HIDDEN, ALWAYS)          /* pre-MLP norm */ \
    X(ln2_mean, TOKENS, ONE, LAYERNORM) \
    X(ln2_rstd, TOKENS, ONE, ALWAYS) \
    X(fc1, TOKENS, FC1, ALWAYS)             /* fc1 output (gate and up with SwiGLU) */ \
    X(act, TOKENS, FFN, ALWAYS)             /* GELU or SwiGLU output */ \
    X(resid3, TOKENS, HIDDEN, ALWAYS)       /* residual after the MLP = the layer's output */

/* The last stage's final norm and language-model head. VOCAB_REAL: the
 * vocabulary columns of this shard that are real tokens (padding rows of
 * the output weight take no part in the softmax). */
#define MT_HEAD_ACTS(X) \
    X(lnf, TOKENS, HIDDEN, FINAL_NORM)      /* the hidden state the heads read (pre-norm layout) */ \
    X(lnf_mean, TOKENS, ONE, FINAL_NORM_MEAN) \
    X(lnf_rstd, TOKENS, ONE, FINAL_NORM) \
    X(lm_in, TOKENS, HIDDEN, BERT_LM)       /* BERT training: the masked rows of the hidden state */ \
    X(lm_dense, TOKENS, HIDDEN, BERT_LM)    /* BERT's LM head: dense output, GELU, LayerNorm */ \
    X(lm_act, TOKENS, HIDDEN, BERT_LM) \
    X(lm_ln, TOKENS, HIDDEN, BERT_LM) \
    X(lm_ln_mean, TOKENS, ONE, BERT_LM) \
    X(lm_ln_rstd, TOKENS, ONE, BERT_LM) \
    X(logits, TOKENS, VOCAB_REAL, LM)       /* overwritten by dlogits in backward */ \
    X(rowmax, TOKENS, ONE, LM) \
    X(sumexp_tgt, TOKENS2, ONE, LM)         /* sumexp then target logit: one all-reduce */ \
    X(losses, TOKENS, ONE, LM) \
    X(seq_in, SEQS, HIDDEN, SEQ)            /* the row of each sequence the sequence head reads */ \
    X(pool_dense, SEQS, HIDDEN, POOLER) \
    X(pooled, SEQS, HIDDEN, POOLER)         /* tanh(dense(seq_in)) */ \
    X(seq_logits, SEQS, CLASSES, SEQ)       /* overwritten by their gradient in backward */ \
    X(seq_rowmax, SEQS, ONE, SEQ) \
    X(seq_sumexp_tgt, SEQS2, ONE, SEQ) \
    X(seq_losses, SEQS, ONE, SEQ)

/* The embedding's LayerNorm (post-norm layout): the sum it normalises. */
#define MT_EMBED_ACTS(X) \
    X(emb_sum, TOKENS, HIDDEN, POST_LN) \
    X(emb_mean, TOKENS, ONE, POST_LN) \
    X(emb_rstd, TOKENS, ONE, POST_LN)

/* Backward scratch, shared by the micro-batches. */
#define MT_GRAD_BUFS(X) \
    X(dresid, TOKENS, HIDDEN, ALWAYS)       /* residual-stream gradient; the stage's input gradient */ \
    X(dbuf, TOKENS, HIDDEN, ALWAYS) \
    X(ddrop, TOKENS, HIDDEN, ALWAYS)        /* a sublayer output's gradient through dropout */ \
    X(dattn, TOKENS, ATTN, ALWAYS)          /* the local heads' output gradient */ \
    X(dqkv, TOKENS, QKV, ALWAYS) \
    X(datt, ATT_ROWS, ATT_COLS, ALWAYS)     /* their gradient, or (flash) dout . out per row */ \
    X(dfc1, TOKENS, FC1, ALWAYS) \
    X(dact, TOKENS, FFN, ALWAYS) \
    X(dlosses, TOKENS, ONE, ALWAYS) \
    X(dhead, TOKENS, HIDDEN, ALWAYS)        /* the heads' input gradient */ \
    X(dlm, TOKENS, HIDDEN, BERT_LM)         /* inside BERT's LM head */ \
    X(dlm_in, TOKENS, HIDDEN, BERT_LM)      /* the gradient of its gathered rows */ \
    X(dlm2, TOKENS, HIDDEN, BERT_LM) \
    X(dseq, SEQS, HIDDEN, SEQ)              /* inside the sequence head */ \
    X(dseq2, SEQS, HIDDEN, SEQ) \
    X(dseq_losses, SEQS, ONE, SEQ)

#define MT_VIEW_FIELD_(field, ...) mt_tensor field;

struct mt_layer_view {
    MT_LAYER_PARAMS(MT_VIEW_FIELD_)
};
struct mt_model_view {
    MT_PRE_PARAMS(MT_VIEW_FIELD_)
    MT_POST_PARAMS(MT_VIEW_FIELD_)
    struct mt_layer_view *layers; /* the stage's layers, local index */
};
struct mt_layer_acts {
    MT_LAYER_ACTS(MT_VIEW_FIELD_)
};
struct mt_head_acts {
    MT_HEAD_ACTS(MT_VIEW_FIELD_)
};
struct mt_embed_acts {
    MT_EMBED_ACTS(MT_VIEW_FIELD_)
};
struct mt_grad_bufs {
    MT_GRAD_BUFS(MT_VIEW_FIELD_)
};

/* Where a parameter table is built for: the whole model (tp = 1), or one
 * rank's stage of it and its shards. */
struct mt_stage {
    int tp, tp_rank;
    int first, last;     /* holds the embedding / the output layer */
    int layer0, nlayers; /* global layers [layer0, layer0 + nlayers) */
};

/* The table of one stage (a rank's shards). On a last stage that is not the
 * first, a tied output layer is a copy of embedding.word_embeddings.weight
 * marked shared (its gradient is summed with the first stage's). */
void mt_layout_stage_table(const struct mt_transformer_config *c, const struct mt_stage *s,
                           struct mt_param_table *t);
/* The whole model's table (tp = 1) in the order of the flat buffer and the
 * checkpoint, the stages of a pp-way split one after another, each tensor
 * once; owner_stage[i] (may be NULL) gets the stage that owns tensor i.
 * mt_layout_max_tensors bounds t->n (to size owner_stage). */
void mt_layout_global_table(const struct mt_transformer_config *c, int pp,
                            struct mt_param_table *t, int *owner_stage);
int mt_layout_max_tensors(const struct mt_transformer_config *c);

/* The views of a flat buffer (parameters or gradients) with the table's
 * offsets, for the stage's layers; absent tensors have data == NULL. The
 * output view is the word embedding's when they are tied. Free with
 * mt_layout_free_views. */
void mt_layout_views(const struct mt_transformer_config *c, const struct mt_stage *s,
                     const struct mt_param_table *t, float *base, struct mt_model_view *v);
void mt_layout_free_views(struct mt_model_view *v);

/* The sizes activation buffers are made for: B x T tokens, this rank's widths. */
struct mt_act_dims {
    int64_t tokens, seq, att_rows;       /* B*T, T, B * local heads * T */
    int64_t att_cols;                    /* T, or 1 with flash attention */
    int64_t hidden, qkv, attn, fc1, ffn; /* local widths */
    int64_t vocab_real;                  /* real vocabulary columns of the shard */
    int64_t seqs, classes;               /* B sequences; the sequence head's classes */
};
void mt_layout_act_dims(const struct mt_transformer_config *c, int tp, int tp_rank, int B, int T,
                        int flash, struct mt_act_dims *d);
/* Allocate (contents undefined) and free the activation sets. */
void mt_layout_alloc_layer_acts(mt_backend *be, const struct mt_transformer_config *c,
                                const struct mt_act_dims *d, struct mt_layer_acts *a);
void mt_layout_free_layer_acts(mt_backend *be, struct mt_layer_acts *a);
/* Part of a layer's set, for activation recompute (model/model.h): only
 * its output (resid3; ln2 in the post-norm layout), or all but the
 * attention probabilities; the rest stay NULL. Freed as the whole set. */
enum mt_layer_part { MT_LAYER_OUTPUT, MT_LAYER_ALL_BUT_ATT };
/* Bytes of one layer's whole set. */
size_t mt_layout_layer_acts_bytes(const struct mt_transformer_config *c, const struct mt_act_dims *d);
void mt_layout_alloc_layer_part(mt_backend *be, const struct mt_transformer_config *c,
                                const struct mt_act_dims *d, struct mt_layer_acts *a,
                                enum mt_layer_part part);
void mt_layout_alloc_head_acts(mt_backend *be, const struct mt_transformer_config *c,
                               const struct mt_act_dims *d, struct mt_head_acts *a);
void mt_layout_free_head_acts(mt_backend *be, struct mt_head_acts *a);
void mt_layout_alloc_embed_acts(mt_backend *be, const struct mt_transformer_config *c,
                                const struct mt_act_dims *d, struct mt_embed_acts *a);
void mt_layout_free_embed_acts(mt_backend *be, struct mt_embed_acts *a);
void mt_layout_alloc_grad_bufs(mt_backend *be, const struct mt_transformer_config *c,
                               const struct mt_act_dims *d, struct mt_grad_bufs *g);
void mt_layout_free_grad_bufs(mt_backend *be, struct mt_grad_bufs *g);

#endif /* MT_MODEL_LAYOUT_H */
