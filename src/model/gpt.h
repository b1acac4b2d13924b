/* gpt.h: GPT as in Megatron-LM / GPT-2: learned absolute positions,
 * pre-LayerNorm (eps 1e-5), GELU (tanh), causal self-attention with fused
 * QKV (Megatron's per-head [q,k,v] interleaving), final LayerNorm, output
 * layer tied to the word embedding, vocabulary padded to a multiple of
 * make_vocab_size_divisible_by. fp32 throughout.
 *
 * The forward pass is a list of backend calls; the backward pass is the same
 * list reversed (llm.c style). Shape letters: B batch, T sequence, C hidden,
 * NH heads, HS = C/NH, F = ffn hidden (4C), L layers, Vp padded vocab, N = B*T. */
#ifndef MT_GPT_H
#define MT_GPT_H
#include "backend/backend.h"
#include "model/params.h"
#include <stdint.h>

struct mt_gpt_config {
    int num_layers;
    int hidden_size;
    int num_heads;
    int ffn_hidden_size;         /* 4 * hidden_size */
    int max_position_embeddings; /* rows of the position table */
    int vocab_size;              /* tokenizer vocabulary */
    int padded_vocab_size;       /* vocab_size rounded up to make_vocab_size_divisible_by */
    float init_method_std;       /* 0.02 */
};

/* Rounds vocab_size up to a multiple of divisible_by (Megatron vocab_utils). */
int mt_gpt_padded_vocab(int vocab_size, int divisible_by);

/* Views into a flat buffer (parameters or gradients) for one layer. */
struct mt_gpt_layer_view {
    float *ln1w, *ln1b;   /* (C) */
    float *qkvw, *qkvb;   /* (3C, C), (3C): rows grouped per head as [q(HS), k(HS), v(HS)] */
    float *projw, *projb; /* (C, C), (C) */
    float *ln2w, *ln2b;   /* (C) */
    float *fc1w, *fc1b;   /* (F, C), (F) */
    float *fc2w, *fc2b;   /* (C, F), (C) */
};
struct mt_gpt_view {
    float *wte;           /* (Vp/tp, C) word embedding shard, also the output layer */
    float *wpe;           /* (maxT, C) */
    struct mt_gpt_layer_view *layers; /* the stage's layers, local index */
    float *lnfw, *lnfb;   /* (C) */
};

/* Activations kept for the backward pass, for a micro-batch of B x T. */
struct mt_gpt_layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd; /* (N,C), (N), (N) */
    float *qkv;                       /* (N,3C/tp) local heads; the KV cache when decoding */
    float *att;                       /* (B,NH/tp,T,T) */
    float *atty;                      /* (N,C/tp) attention output of the local heads */
    float *resid2;                    /* (N,C) residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* (N,C), (N), (N) */
    float *fch, *fch_gelu;            /* (N,F/tp) */
    float *resid3;                    /* (N,C) residual after the MLP = next layer's input */
};

/* One set of activations. A pipeline stage keeps one per micro-batch in
 * flight (1F1B has at most stages - stage of them); otherwise one. */
struct mt_gpt_slot {
    int32_t *tokens, *targets;        /* (B,T) device */
    float *encoded;                   /* (N,C) the stage's input: embedding or received */
    struct mt_gpt_layer_acts *acts;   /* local layers */
    float *lnf, *lnf_mean, *lnf_rstd; /* (N,C), (N), (N) */
    float *logits;                    /* (N,Vp/tp); overwritten by dlogits in backward */
    float *rowmax;                    /* (N) */
    float *sumexp_tgt;                /* (2N): sumexp then target logit, one all-reduce */
    float *losses;                    /* (N) */
    int B, T, has_targets;
};

/* Where this model instance sits in the parallel layout. Serial: tp = pp = 1. */
struct mt_gpt_par {
    mt_comm *tp_comm;         /* tensor-parallel group (size tp) */
    int tp, tp_rank;
    int pp, pp_rank;          /* pipeline stages, this stage */
};

struct mt_gpt {
    struct mt_gpt_config cfg;
    struct mt_gpt_par par;
    mt_comm *own_comm;  /* the size-1 group a serial model creates for itself */
    mt_backend *be;
    struct mt_param_table table; /* this rank's tensors (its stage, its shards) */
    float *params;      /* flat, table.total elements (device) */
    float *grads;       /* flat, same offsets (device) */
    struct mt_gpt_view w, g; /* absent tensors (other stages) are NULL */
    int layer0, nlayers;     /* the global layers [layer0, layer0 + nlayers) of this stage */
    int first, last;         /* this stage holds the embedding / the output layer */
    int C_tp, F_tp, NH_tp, Vp_tp; /* local widths */

    int B, T;           /* activation capacity: micro-batch and sequence */
    int nslots;
    struct mt_gpt_slot *slots;
    /* the slot of the last forward, for callers that read results */
    float *logits;      /* (N,Vp/tp) of that slot */
    float *losses_host; /* (N) host copy of its per-token losses */
    /* backward scratch, shared by the slots */
    float *dresid;      /* (N,C) gradient of the residual stream; a stage's input gradient */
    float *dbuf_c;      /* (N,C) */
    float *dqkv;        /* (N,3C/tp) */
    float *datt;        /* (B,NH/tp,T,T) */
    float *dfch;        /* (N,F/tp) */
    float *dlosses;     /* (N) */
};

/* Builds the parameter table, allocates parameters, gradients and the
 * activations for micro-batches of up to B x T tokens. Parameters are
 * zero until mt_gpt_init_weights or a checkpoint load. Serial model. */
void mt_gpt_init(struct mt_gpt *m, const struct mt_gpt_config *cfg, mt_backend *be, int B,
                 int T);
/* The same for one rank of a parallel layout, with nslots activation sets.
 * The sizes must divide (mt_gpt_check_parallel says which do not). */
void mt_gpt_init_parallel(struct mt_gpt *m, const struct mt_gpt_config *cfg, mt_backend *be,
                          int B, int T, const struct mt_gpt_par *par, int nslots);
/* 0 if cfg can be split tp x pp ways; else -1 and a message with the numbers. */
int mt_gpt_check_parallel(const struct mt_gpt_config *cfg, int tp, int pp, char *err,
                          size_t errlen);
/* The whole model's table (tp = pp = 1), in the order of the flat buffer and
 * the checkpoint; owner_stage[i] (may be NULL) gets the pipeline stage that
 * owns tensor i. */
void mt_gpt_global_table(const struct mt_gpt_config *cfg, int pp, struct mt_param_table *t,
                         int *owner_stage);
void mt_gpt_free(struct mt_gpt *m);
/* Megatron init: N(0, std) for weights, std/sqrt(2L) for linear_proj and
 * linear_fc2 weights, zeros for biases, ones for layernorm weights; drawn on
 * the host as whole tensors in global table order from the seed, then each
 * rank keeps its shards, so every layout starts from the same weights. */
void mt_gpt_init_weights(struct mt_gpt *m, uint64_t seed);
/* Host access to one (local) tensor by table index. */
void mt_gpt_get_param(struct mt_gpt *m, int idx, float *host);
void mt_gpt_set_param(struct mt_gpt *m, int idx, const float *host);
void mt_gpt_get_grad(struct mt_gpt *m, int idx, float *host);

/* Serial forward over tokens (B,T) (host). With targets (host, may be NULL)
 * computes the per-token losses and returns their mean; without, returns 0
 * and leaves the logits in m->logits. */
float mt_gpt_forward(struct mt_gpt *m, const int32_t *tokens, const int32_t *targets, int B,
                     int T);
/* Backward of the last forward (which must have had targets): accumulates
 * into m->grads the gradient of dloss_scale * mean(losses). Use
 * dloss_scale = 1 / num_micro_batches for gradient accumulation. */
void mt_gpt_backward(struct mt_gpt *m, float dloss_scale);
void mt_gpt_zero_grad(struct mt_gpt *m);

/* Pipeline-stage forms. The first stage embeds tokens (host); a later stage
 * reads its input from mt_gpt_stage_input (filled by a receive). The last
 * stage computes the loss when targets are given and returns the mean (0 on
 * other stages). mt_gpt_stage_output is what a non-last stage sends on. */
float mt_gpt_stage_forward(struct mt_gpt *m, int slot, const int32_t *tokens,
                           const int32_t *targets, int B, int T);
float *mt_gpt_stage_input(struct mt_gpt *m, int slot);        /* (N,C) device */
const float *mt_gpt_stage_output(struct mt_gpt *m, int slot); /* (N,C) device */
/* The last stage starts from the loss; a later stage's caller first
 * receives the output gradient into mt_gpt_stage_dinput. Afterwards
 * mt_gpt_stage_dinput holds the gradient of the stage's input, to send back. */
void mt_gpt_stage_backward(struct mt_gpt *m, int slot, float dloss_scale);
float *mt_gpt_stage_dinput(struct mt_gpt *m); /* (N,C) device */

/* Incremental decoding with a KV cache (the per-layer qkv activations), for
 * a serial model initialised with B = 1. mt_gpt_decode_prefill runs the
 * prompt tokens[0..n) and mt_gpt_decode_step appends one token at position
 * pos; both return a device pointer to the Vp logits of the last position. */
const float *mt_gpt_decode_prefill(struct mt_gpt *m, const int32_t *tokens, int n);
const float *mt_gpt_decode_step(struct mt_gpt *m, int32_t token, int pos);

/* Number of parameters of the whole model. */
size_t mt_gpt_param_count(const struct mt_gpt_config *cfg);


#endif
