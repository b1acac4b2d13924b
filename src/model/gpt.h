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
    float *wte;           /* (Vp, C) word embedding, also the output layer */
    float *wpe;           /* (maxT, C) */
    struct mt_gpt_layer_view *layers; /* L */
    float *lnfw, *lnfb;   /* (C) */
};

/* Activations kept for the backward pass, for a micro-batch of B x T. */
struct mt_gpt_layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd; /* (N,C), (N), (N) */
    float *qkv;                       /* (N,3C); the KV cache when decoding */
    float *att;                       /* (B,NH,T,T) */
    float *atty;                      /* (N,C) attention output before the projection */
    float *resid2;                    /* (N,C) residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* (N,C), (N), (N) */
    float *fch, *fch_gelu;            /* (N,F) */
    float *resid3;                    /* (N,C) residual after the MLP = next layer's input */
};

struct mt_gpt {
    struct mt_gpt_config cfg;
    mt_backend *be;
    struct mt_param_table table;
    float *params;      /* flat, table.total elements (device) */
    float *grads;       /* flat, same offsets (device) */
    struct mt_gpt_view w, g;

    int B, T;           /* activation capacity: micro-batch and sequence */
    int32_t *tokens;    /* (B,T) device */
    int32_t *targets;   /* (B,T) device */
    float *encoded;     /* (N,C) embedding output = residual stream input */
    struct mt_gpt_layer_acts *acts; /* L */
    float *lnf, *lnf_mean, *lnf_rstd; /* (N,C), (N), (N) */
    float *logits;      /* (N,Vp); overwritten by dlogits in backward */
    float *rowmax, *sumexp, *tgt, *losses, *dlosses; /* (N) */
    /* backward scratch */
    float *dresid;      /* (N,C) gradient of the residual stream */
    float *dbuf_c;      /* (N,C) */
    float *dqkv;        /* (N,3C) */
    float *datt;        /* (B,NH,T,T) */
    float *dfch;        /* (N,F) */
    float *losses_host; /* (N) host copy */
    int cur_B, cur_T;   /* shape of the last forward */
    int has_targets;    /* last forward computed losses */
};

/* Builds the parameter table, allocates parameters, gradients and the
 * activations for micro-batches of up to B x T tokens. Parameters are
 * zero until mt_gpt_init_weights or a checkpoint load. */
void mt_gpt_init(struct mt_gpt *m, const struct mt_gpt_config *cfg, mt_backend *be, int B,
                 int T);
void mt_gpt_free(struct mt_gpt *m);
/* Megatron init: N(0, std) for weights, std/sqrt(2L) for linear_proj and
 * linear_fc2 weights, zeros for biases, ones for layernorm weights; drawn on
 * the host as whole tensors in table order from the seed, then uploaded. */
void mt_gpt_init_weights(struct mt_gpt *m, uint64_t seed);
/* Host access to one tensor by table index. */
void mt_gpt_get_param(struct mt_gpt *m, int idx, float *host);
void mt_gpt_set_param(struct mt_gpt *m, int idx, const float *host);
void mt_gpt_get_grad(struct mt_gpt *m, int idx, float *host);

/* Forward over tokens (B,T) (host). With targets (host, may be NULL)
 * computes the per-token losses and returns their mean; without, returns 0
 * and leaves the logits in m->logits. */
float mt_gpt_forward(struct mt_gpt *m, const int32_t *tokens, const int32_t *targets, int B,
                     int T);
/* Backward of the last forward (which must have had targets): accumulates
 * into m->grads the gradient of dloss_scale * mean(losses). Use
 * dloss_scale = 1 / num_micro_batches for gradient accumulation. */
void mt_gpt_backward(struct mt_gpt *m, float dloss_scale);
void mt_gpt_zero_grad(struct mt_gpt *m);

/* Incremental decoding with a KV cache (the per-layer qkv activations), for
 * a model initialised with B = 1. mt_gpt_decode_prefill runs the prompt
 * tokens[0..n) and mt_gpt_decode_step appends one token at position pos;
 * both return a device pointer to the Vp logits of the last position. */
const float *mt_gpt_decode_prefill(struct mt_gpt *m, const int32_t *tokens, int n);
const float *mt_gpt_decode_step(struct mt_gpt *m, int32_t token, int pos);

/* Number of floating point operations in the GEMMs of one forward+backward
 * over B x T tokens (for MFU-style reporting). */
double mt_gpt_gemm_flops(const struct mt_gpt_config *cfg, int B, int T);

#endif
