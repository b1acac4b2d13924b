/* model.h: the transformer language model, one model for GPT-2 and the
 * Llama family (and, with its own heads and mask, BERT).
 *
 *   embedding     word embedding (vocabulary-parallel) + learned positions,
 *                 dropout                                    model/embedding.c
 *   layers        x + dropout(attention(norm(x))), then
 *                 x + dropout(mlp(norm(x)))                  model/layer.c,
 *                                                            attention.c, mlp.c
 *   final norm    LayerNorm or RMSNorm                        model/norm.c
 *   head          output layer (tied to the word embedding or not) and the
 *                 vocabulary-parallel cross-entropy           model/lm_head.c
 *
 * What the tensors are and which exist comes from the configuration
 * (model/config.h) through one list (model/layout.h). The forward pass of
 * each piece is a list of backend calls and its backward the same list
 * reversed (llm.c style); tensor parallelism is the layers of parallel/
 * (column- and row-parallel linear, vocabulary-parallel embedding and
 * cross-entropy); pipeline parallelism gives each rank a stage (a range of
 * layers, the embedding on the first, the head on the last).
 *
 * Dropout (hidden and attention, training only) draws its masks from the
 * counter-based generator of core/philox.h keyed by the seed, the layer and
 * place, and each element's coordinates, with the sample's index in the
 * training stream: the same masks on every backend and parallel layout,
 * and again on resume.
 *
 * Shape letters: B batch, T sequence, C hidden, N = B*T tokens. */
#ifndef MT_MODEL_MODEL_H
#define MT_MODEL_MODEL_H
#include "backend/backend.h"
#include "model/config.h"
#include "model/layout.h"
#include "model/params.h"
#include "parallel/mappings.h"
#include <stdint.h>

/* Activation recompute (Megatron's --recompute-granularity, --recompute-
 * method, --recompute-num-layers): what a training forward keeps for the
 * backward, which recomputes the rest from it, bitwise as first computed.
 *   full, uniform N: the stage's layers in chunks of N (the last may be
 *     shorter); only each chunk's output is kept (the next chunk's input),
 *     the chunk is rerun in the backward into N layers of scratch shared by
 *     the micro-batches in flight;
 *   full, block N: the stage's first N layers one by one (chunks of 1), the
 *     others kept whole;
 *   selective: the attention probabilities (B x heads x T x T per layer,
 *     Megatron's core_attn) are one buffer for all layers, recomputed from
 *     the kept q, k, v in each layer's backward; with flash attention
 *     (enum mt_attn_impl, the default) there are none to drop, and
 *     selective changes nothing. */
enum mt_recompute_granularity { MT_RECOMPUTE_NONE, MT_RECOMPUTE_FULL, MT_RECOMPUTE_SELECTIVE };
enum mt_recompute_method { MT_RECOMPUTE_UNIFORM, MT_RECOMPUTE_BLOCK };
struct mt_recompute {
    enum mt_recompute_granularity granularity;
    enum mt_recompute_method method; /* full only */
    int num_layers;                  /* full only: N above */
};

/* Core attention's form (Megatron's --attention-backend). flash (the
 * default) keeps each query row's log-sum-exp, B x heads x T floats a layer,
 * and its backward recomputes the probabilities from q, k and it; unfused
 * keeps the B x heads x T x T probabilities themselves. The same results up
 * to rounding (doc/numerics.md); both repeat bitwise. */
enum mt_attn_impl { MT_ATTN_FLASH, MT_ATTN_UNFUSED };
/* "flash" | "unfused" and Megatron's other names: "fused" (its cuDNN fused
 * kernel) is the flash form here, "local" (its plain PyTorch one) unfused,
 * "auto" the default; -1 for anything else */
int mt_attn_impl_parse(const char *s);

/* How a model instance runs (mt_model_init_opts): zero is the default. */
struct mt_model_opts {
    struct mt_recompute rc;
    enum mt_attn_impl attn;
};

/* Where this model instance sits in the parallel layout. Serial: all 1, 0. */
struct mt_model_par {
    mt_comm *tp_comm; /* tensor-parallel group (size tp) */
    int tp, tp_rank;
    int pp, pp_rank;  /* pipeline stages, this stage */
};

/* A micro-batch as the host holds it: B sequences of T tokens. Only tokens
 * are needed (first stage); the rest may be NULL. A stage reads what it
 * uses: the first the tokens and types, every one the lengths, the last
 * the targets, the loss mask and the labels. */
struct mt_batch {
    int B, T;
    const int32_t *tokens;  /* (B*T) */
    const int32_t *types;   /* (B*T) token types (BERT's segments A/B); NULL: all 0 */
    const int32_t *lengths; /* (B) real tokens of each sequence, padding after; NULL: T */
    const int32_t *targets; /* (B*T) the LM head's targets; NULL: no LM loss */
    const float *loss_mask; /* (B*T) weight of each target (Megatron's loss_mask); NULL: all 1 */
    const int32_t *labels;  /* (B) the sequence head's classes; NULL: no sequence loss */
    /* Packed documents (Megatron's --reset-attention-mask and
     * --reset-position-ids; mt_batch_documents makes them from the tokens),
     * read by every stage: doc_start (B*T) the first position of each
     * token's document, before which its attention sees no key; positions
     * (B*T) each token's position id (the learned position embedding's row,
     * RoPE's angle). NULL: one document; positions 0..T-1. */
    const int32_t *doc_start;
    const int32_t *positions;
};

/* Megatron's get_ltor_masks_and_position_ids for B sequences of T tokens:
 * a document ends after each token equal to eod (the end-of-document token
 * belongs to the document it ends). doc_start (B*T, or NULL) receives each
 * token's document start; positions (B*T, or NULL) its position within the
 * document. */
void mt_batch_documents(const int32_t *tokens, int B, int T, int32_t eod, int32_t *doc_start,
                        int32_t *positions);

/* One micro-batch in flight: its inputs and the activations kept for the
 * backward pass. A pipeline stage keeps one per micro-batch in flight
 * (1F1B has at most stages - stage of them); otherwise one. */
struct mt_model_slot {
    mt_tensor tokens, targets, positions, types; /* (N,1) i32 (types: with token types) */
    mt_tensor doc_start;                  /* (N,1) i32: packed documents (struct mt_batch) */
    mt_tensor lengths, seq_rows, labels;  /* (B,1) i32: lengths, the sequence head's rows, classes */
    mt_tensor input;                      /* (N,C) the stage's input: embedding or received */
    struct mt_embed_acts emb;             /* first stage, post-norm layout */
    struct mt_layer_acts *acts;           /* the stage's layers */
    struct mt_head_acts head;             /* last stage */
    int B, T, has_targets, has_labels, has_lengths;
    int has_docs, has_positions;          /* the batch gave doc_start, positions */
    float *dlosses_host;                  /* (N) the LM loss's weights mask / sum(mask) ... */
    int lm_masked;                        /* ... when it had a mask (else 1/N) */
    mt_tensor lm_rows;                    /* (N,1) i32 BERT: the rows the LM head ran on ... */
    int64_t nlm;                          /* ... how many (N unless lm_sparse) */
    int lm_sparse;                        /* ... only the masked ones (training) */
    double lm_loss, seq_loss;             /* last stage: the two parts of its loss */
    int dropout;                          /* this forward applied dropout */
    int64_t sample0;                      /* its first sample's index in the training stream */
};

struct mt_model {
    struct mt_transformer_config cfg;
    struct mt_model_par par;
    struct mt_tp tp;
    mt_comm *own_comm;         /* the size-1 group a serial model creates for itself */
    mt_backend *be;
    struct mt_stage stage;     /* the layers of this rank, first / last */
    struct mt_param_table table; /* this rank's tensors (its stage, its shards) */
    float *params;             /* flat, table.total elements (device) */
    float *grads;              /* flat, same offsets (device) */
    struct mt_model_view w, g; /* views of both; absent tensors have data == NULL */
    int B, T;                  /* activation capacity: micro-batch and sequence */
    struct mt_act_dims dims;   /* the buffers' sizes for B x T */
    int nslots;
    struct mt_model_slot *slots;
    struct mt_grad_bufs gb;    /* backward scratch, shared by the slots */
    mt_tensor rope;            /* (max_position_embeddings, rotary dim) cos | sin; data NULL without RoPE */
    /* dropout: on in training forwards only (mt_model_set_training) */
    int training;
    uint64_t dropout_seed;
    /* the slot of the last forward, for callers that read its results */
    mt_tensor logits;          /* (N, real vocabulary columns of this shard) */
    float *losses_host;        /* (N) host copy of its per-token losses */
    int32_t *ids_host;         /* (N) host staging of position ids */
    /* activation recompute (struct mt_recompute): full's scratch layers
     * (rc_n of them), selective's shared attention probabilities (unfused
     * attention only: flash keeps none) */
    struct mt_recompute rc;
    enum mt_attn_impl attn;
    struct mt_layer_acts *rc_acts;
    int rc_n;
    mt_tensor rc_att;
};

/* Builds the parameter table, allocates parameters, gradients and the
 * activations for micro-batches of up to B x T tokens on one rank of a
 * layout (par NULL: serial), with nslots activation sets. Parameters are
 * zero until mt_model_init_weights or a checkpoint load. Stops with a
 * message when the sizes do not divide (mt_config_check_parallel). */
void mt_model_init(struct mt_model *m, const struct mt_transformer_config *cfg, mt_backend *be,
                   int B, int T, const struct mt_model_par *par, int nslots);
/* The same, with activation recompute and the attention's form (o NULL:
 * the defaults, no recompute and flash attention). */
void mt_model_init_opts(struct mt_model *m, const struct mt_transformer_config *cfg, mt_backend *be,
                        int B, int T, const struct mt_model_par *par, int nslots,
                        const struct mt_model_opts *o);
/* The layer activations recompute saves on this rank (bytes; 0 without). */
size_t mt_model_recompute_saving(const struct mt_model *m);
/* "full" | "selective" and "uniform" | "block" -> the enums, or -1 */
int mt_recompute_granularity_parse(const char *s);
int mt_recompute_method_parse(const char *s);
void mt_model_free(struct mt_model *m);
/* Megatron init (model/layout.h: init column): drawn on the host as whole
 * tensors in global table order from the seed, then each rank keeps its
 * shards, so every layout starts from the same weights. */
void mt_model_init_weights(struct mt_model *m, uint64_t seed);
/* Training forwards apply dropout (masks from seed); off by default (eval). */
void mt_model_set_training(struct mt_model *m, int on, uint64_t seed);

/* Host access to one (local) tensor by table index. */
void mt_model_get_param(struct mt_model *m, int idx, float *host);
void mt_model_set_param(struct mt_model *m, int idx, const float *host);
void mt_model_get_grad(struct mt_model *m, int idx, float *host);
void mt_model_zero_grad(struct mt_model *m);
/* Index in this rank's table of the tied word embedding held on both the
 * first and the last stage (its gradients are summed between them), or -1. */
int mt_model_tied_index(const struct mt_model *m);

/* The forward of a stage over a batch (struct mt_batch) into slot; on the
 * last stage, the loss: the LM loss (the mean of the token losses weighted
 * by the loss mask) plus the sequence head's (their mean over sequences),
 * each when its targets are given; 0 elsewhere. The parts are in the
 * slot's lm_loss and seq_loss. */
float mt_model_stage_forward_batch(struct mt_model *m, int slot, const struct mt_batch *b,
                                   int64_t sample0);
float mt_model_forward_batch(struct mt_model *m, const struct mt_batch *b, int64_t sample0);
/* The sequence head's logits of the last forward (B, classes) (device). */
mt_tensor mt_model_seq_logits(struct mt_model *m);

/* Serial forward over tokens (B,T) (host). With targets (host, may be NULL)
 * computes the per-token losses and returns their mean; without, returns 0
 * and leaves the logits in m->logits. sample0: the index of the first
 * sample in the training stream (dropout coordinates; any value otherwise). */
float mt_model_forward(struct mt_model *m, const int32_t *tokens, const int32_t *targets, int B,
                       int T, int64_t sample0);
/* Backward of the last forward (which must have had targets): accumulates
 * into m->grads the gradient of dloss_scale * mean(losses). Use
 * dloss_scale = 1 / num_micro_batches for gradient accumulation. */
void mt_model_backward(struct mt_model *m, float dloss_scale);

/* Pipeline-stage forms. The first stage embeds tokens (host); a later stage
 * reads its input from mt_model_stage_input (filled by a receive). The last
 * stage computes the loss when targets are given and returns the mean (0 on
 * other stages). mt_model_stage_output is what a non-last stage sends on. */
float mt_model_stage_forward(struct mt_model *m, int slot, const int32_t *tokens,
                             const int32_t *targets, int B, int T, int64_t sample0);
mt_tensor mt_model_stage_input(struct mt_model *m, int slot, int B, int T);  /* (B*T,C) */
mt_tensor mt_model_stage_output(struct mt_model *m, int slot, int B, int T); /* (B*T,C) */
/* The last stage starts from the loss; a later stage's caller first
 * receives the output gradient into mt_model_stage_dinput. Afterwards
 * mt_model_stage_dinput holds the gradient of the stage's input, to send back. */
void mt_model_stage_backward(struct mt_model *m, int slot, float dloss_scale);
mt_tensor mt_model_stage_dinput(struct mt_model *m, int B, int T); /* (N,C) device */
/* The hidden state the heads read in the last forward (last stage): the
 * final norm's output, or the last layer's in the post-norm layout, (N, C). */
mt_tensor mt_model_last_hidden(struct mt_model *m);

/* Incremental decoding with a KV cache (the per-layer qkv activations), for
 * a serial model initialised with B = 1. mt_model_decode_prefill runs the
 * prompt tokens[0..n) and mt_model_decode_step appends one token at position
 * pos; both return the logits (1, vocab_size) of the last position (device). */
mt_tensor mt_model_decode_prefill(struct mt_model *m, const int32_t *tokens, int n);
mt_tensor mt_model_decode_step(struct mt_model *m, int32_t token, int pos);

#endif /* MT_MODEL_MODEL_H */
