/* config.h: the transformer configuration, one description for every model.
 *
 * Megatron-core describes GPT, Llama-style decoders and BERT with one
 * TransformerConfig plus a few model-level switches; this struct is that,
 * with Megatron-core's field names (the training flag that sets each field
 * is in its comment). GPT-2 is the defaults; a Llama-style model sets RoPE,
 * RMSNorm, SwiGLU, grouped-query attention, an untied output layer and no
 * biases. The parameter table, the views and the activation buffers are
 * all generated from it (model/layout.h).
 *
 * Derived widths (mt_config_*): head dim kv_channels, query heads
 * num_attention_heads sharing num_query_groups key/value heads, the fused
 * QKV rows (heads + 2 groups) * kv_channels in Megatron's per-group
 * [q..., k, v] order, fc1 rows ffn_hidden_size (twice that with SwiGLU:
 * [gate; up]). */
#ifndef MT_MODEL_CONFIG_H
#define MT_MODEL_CONFIG_H
#include <stddef.h>

enum mt_normalization { MT_NORM_LAYERNORM, MT_NORM_RMSNORM };
enum mt_position_embedding { MT_POS_LEARNED_ABSOLUTE, MT_POS_ROPE, MT_POS_NONE };
/* causal: a decoder (GPT); none: bidirectional (BERT's encoder; padding
 * at the end of a sequence is masked by its length) */
enum mt_attn_mask { MT_ATTN_MASK_CAUSAL, MT_ATTN_MASK_NONE };
/* the MLP's (and BERT's LM head's) activation: GPT-2's tanh approximation
 * (Hugging Face gelu_new, Megatron --openai-gelu) or the exact erf GELU
 * (BERT's, Megatron's default) */
enum mt_activation { MT_ACTIVATION_GELU_TANH, MT_ACTIVATION_GELU };
/* The language-model head on the last stage: GPT's output layer on the
 * final norm; BERT's masked-LM head (dense, GELU, LayerNorm, then the
 * output layer with a bias); or none (a classifier). */
enum mt_lm_head { MT_LM_HEAD_GPT, MT_LM_HEAD_BERT, MT_LM_HEAD_NONE };
/* The sequence head: none; BERT's binary (sentence-order) head, 2 classes;
 * or a classification head of num_classes (fine-tuning). It reads one
 * position of each sequence: the first ([CLS], through the pooler) or the
 * last real token (GPT). */
enum mt_seq_head { MT_SEQ_HEAD_NONE, MT_SEQ_HEAD_BINARY, MT_SEQ_HEAD_CLASSIFY };
enum mt_seq_token { MT_SEQ_TOKEN_FIRST, MT_SEQ_TOKEN_LAST };

struct mt_transformer_config {
    int num_layers;                /* --num-layers */
    int hidden_size;               /* --hidden-size */
    int num_attention_heads;       /* --num-attention-heads */
    int num_query_groups;          /* --num-query-groups (with --group-query-attention); = heads */
    int kv_channels;               /* --kv-channels: head dim; hidden / heads */
    int ffn_hidden_size;           /* --ffn-hidden-size; 4 hidden, or 8/3 hidden rounded to 64 with SwiGLU */
    int gated_linear_unit;         /* --swiglu: fc1 gives [gate; up], out = silu(gate) up */
    enum mt_normalization normalization; /* --normalization LayerNorm | RMSNorm */
    double layernorm_epsilon;      /* --norm-epsilon (1e-5) */
    enum mt_position_embedding position_embedding_type; /* --position-embedding-type */
    double rotary_base;            /* --rotary-base (10000) */
    double rotary_percent;         /* --rotary-percent (1.0): share of each head rotated */
    int rope_scaling;              /* --use-rope-scaling: Llama 3.x's frequency scaling */
    double rope_scaling_factor;    /* --rope-scaling-factor (8.0) */
    int add_bias_linear;           /* 1 unless --disable-bias-linear */
    int add_qkv_bias;              /* --add-qkv-bias (also 1 when add_bias_linear) */
    int untie_embeddings_and_output_weights; /* --untie-embeddings-and-output-weights */
    float hidden_dropout;          /* --hidden-dropout (Megatron 0.1) */
    float attention_dropout;       /* --attention-dropout (Megatron 0.1) */
    enum mt_attn_mask attn_mask_type;
    int max_position_embeddings;   /* --max-position-embeddings: position table / rope rows */
    int vocab_size;                /* the tokenizer's vocabulary */
    int padded_vocab_size;         /* rounded up to --make-vocab-size-divisible-by */
    float init_method_std;         /* --init-method-std (0.02) */
    /* BERT and classifiers (GPT-2's values first) */
    enum mt_activation activation; /* gelu_tanh | gelu */
    int type_vocab_size;           /* token types (BERT 2; 0: no token-type embedding) */
    int post_layernorm;            /* --post-layernorm: x = norm(x + sublayer(x)), the
                                    * embedding normalised, no final norm (Google's and
                                    * Hugging Face's BERT) */
    enum mt_lm_head lm_head;
    int add_pooler;                /* BERT's pooler: dense + tanh on the first token */
    enum mt_seq_head seq_head;
    int num_classes;               /* classes of the sequence head (binary: 2) */
    enum mt_seq_token seq_token;
};

/* GPT-2 / Megatron defaults for everything but the sizes (which are 0):
 * LayerNorm eps 1e-5, learned absolute positions, GELU, biases, tied
 * output layer, causal, no dropout (the train command sets Megatron's 0.1
 * where Megatron would), init std 0.02, rotary base 10000 and percent 1. */
void mt_config_defaults(struct mt_transformer_config *c);
/* Fills what is derived when left 0: num_query_groups = heads, kv_channels
 * = hidden / heads, ffn_hidden_size (Megatron's rule), add_qkv_bias |=
 * add_bias_linear. */
void mt_config_derive(struct mt_transformer_config *c);
/* 0 if the configuration is consistent; else -1 and a message naming the
 * flags and numbers (heads not divisible by groups, odd rotary width, ...). */
int mt_config_check(const struct mt_transformer_config *c, char *err, size_t errlen);
/* 0 if it can be split tp x pp ways (Megatron's divide(): heads, groups,
 * ffn, padded vocabulary by tp; layers by pp); else -1 and a message. */
int mt_config_check_parallel(const struct mt_transformer_config *c, int tp, int pp, char *err,
                             size_t errlen);

/* Derived widths (global; divide by tp for a shard). */
int mt_config_qkv_width(const struct mt_transformer_config *c);  /* (heads + 2 groups) kv */
int mt_config_attn_width(const struct mt_transformer_config *c); /* heads kv */
int mt_config_fc1_width(const struct mt_transformer_config *c);  /* ffn, 2 ffn with SwiGLU */
/* Dimensions of a head rotated by RoPE (even; 0 without RoPE). */
int mt_config_rotary_dim(const struct mt_transformer_config *c);
/* vocab_size rounded up to a multiple of divisible_by (Megatron vocab_utils). */
int mt_config_padded_vocab(int vocab_size, int divisible_by);
/* The sequence head's classes (0 without one). */
int mt_config_seq_classes(const struct mt_transformer_config *c);
/* Number of parameters of the whole model (tied output counted once). */
size_t mt_config_param_count(const struct mt_transformer_config *c);
/* Megatron's num_floating_point_operations (training.py): the FLOPs of one
 * training iteration (forward and backward) over global_batch sequences of
 * seq tokens, the formula Megatron's --log-throughput divides by time:
 * 12 B s L h^2 [(1 + g/n + s/h) q/h + (ffn/h)(3/2 with SwiGLU) + V/(2 L h)],
 * g key/value groups, n heads, q the query projection width, V the padded
 * vocabulary. */
double mt_config_flops(const struct mt_transformer_config *c, int global_batch, int seq);
/* "LayerNorm" | "RMSNorm"; "learned_absolute" | "rope" | "none". */
const char *mt_normalization_name(enum mt_normalization n);
const char *mt_position_embedding_name(enum mt_position_embedding p);
int mt_normalization_parse(const char *s);          /* -1 if unknown */
int mt_position_embedding_parse(const char *s);     /* -1 if unknown */

/* The fields, as a table: checkpoint metadata and the comparison on --load
 * iterate it, so a field added to the struct is added here once. */
enum mt_field_type { MT_FIELD_INT, MT_FIELD_FLOAT, MT_FIELD_DOUBLE, MT_FIELD_ENUM };
struct mt_config_field {
    const char *key;   /* metadata key: Megatron's argument name */
    const char *flag;  /* the flag that sets it */
    enum mt_field_type type;
    size_t offset;
    const char *const *names; /* MT_FIELD_ENUM: the value names, in enum order, NULL-ended */
    const char *legacy;       /* value assumed when an older checkpoint lacks the key; NULL: required */
    int function;             /* 1: changes the function the weights compute (--load compares it) */
};
const struct mt_config_field *mt_config_fields(int *n);
/* The field's value as text ("%d", "%.9g" or the enum name) into buf. */
void mt_config_field_format(const struct mt_transformer_config *c,
                            const struct mt_config_field *f, char *buf, size_t n);
/* Parses text into the field; 0, or -1 when it is not a valid value. */
int mt_config_field_parse(struct mt_transformer_config *c, const struct mt_config_field *f,
                          const char *text);

#endif /* MT_MODEL_CONFIG_H */
