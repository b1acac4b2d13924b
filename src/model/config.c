/* config.c: see config.h */
#include "model/config.h"
#include <limits.h>
#include "core/error.h"
#include "model/layout.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mt_config_defaults(struct mt_transformer_config *c)
{
    memset(c, 0, sizeof *c);
    c->normalization = MT_NORM_LAYERNORM;
    c->layernorm_epsilon = 1e-5;
    c->position_embedding_type = MT_POS_LEARNED_ABSOLUTE;
    c->rotary_base = 10000.0;
    c->rotary_percent = 1.0;
    c->rope_scaling_factor = 8.0;
    c->add_bias_linear = 1;
    c->add_qkv_bias = 1;
    c->attn_mask_type = MT_ATTN_MASK_CAUSAL;
    c->init_method_std = 0.02f;
    c->activation = MT_ACTIVATION_GELU_TANH;
    c->lm_head = MT_LM_HEAD_GPT;
    c->seq_head = MT_SEQ_HEAD_NONE;
    c->seq_token = MT_SEQ_TOKEN_FIRST;
}

int mt_config_seq_classes(const struct mt_transformer_config *c)
{
    return c->seq_head == MT_SEQ_HEAD_BINARY ? 2 : c->seq_head == MT_SEQ_HEAD_CLASSIFY ? c->num_classes : 0;
}

void mt_config_derive(struct mt_transformer_config *c)
{
    if (c->num_query_groups == 0) c->num_query_groups = c->num_attention_heads;
    if (c->kv_channels == 0 && c->num_attention_heads > 0)
        c->kv_channels = c->hidden_size / c->num_attention_heads;
    if (c->ffn_hidden_size == 0) {
        /* Megatron arguments.py: SwiGLU's two fc1 halves keep the parameter
         * count near the 4h MLP's, as a multiple of 64 */
        const double f = c->gated_linear_unit ? floor((4.0 * c->hidden_size * 2 / 3) / 64) * 64
                                              : 4.0 * c->hidden_size;
        /* beyond an int: -1, which mt_config_check refuses (no overflow) */
        c->ffn_hidden_size = f <= INT_MAX ? (int)f : -1;
    }
    if (c->add_bias_linear) c->add_qkv_bias = 1;
}

int mt_config_check(const struct mt_transformer_config *c, char *err, size_t errlen)
{
#define POS(v, flag) \
    if ((v) < 1) return mt_errf(err, errlen, "%s must be a positive integer (got %d)", flag, (int)(v))
    POS(c->num_layers, "--num-layers");
    POS(c->hidden_size, "--hidden-size");
    POS(c->num_attention_heads, "--num-attention-heads");
    POS(c->num_query_groups, "--num-query-groups");
    POS(c->kv_channels, "--kv-channels");
    if (c->ffn_hidden_size == -1) /* mt_config_derive: 4 x hidden beyond an int */
        return mt_errf(err, errlen, "--hidden-size %d makes the default MLP width (4 x hidden) too large; give "
                       "--ffn-hidden-size or a smaller --hidden-size", c->hidden_size);
    POS(c->ffn_hidden_size, "--ffn-hidden-size");
    POS(c->max_position_embeddings, "--max-position-embeddings");
    POS(c->vocab_size, "the vocabulary size");
#undef POS
    if (c->num_attention_heads % c->num_query_groups != 0)
        return mt_errf(err, errlen,
                       "--num-attention-heads (%d) is not divisible by --num-query-groups (%d)",
                       c->num_attention_heads, c->num_query_groups);
    if (c->padded_vocab_size < c->vocab_size)
        return mt_errf(err, errlen, "the padded vocabulary (%d) is smaller than the vocabulary (%d)",
                       c->padded_vocab_size, c->vocab_size);
    if (!(c->layernorm_epsilon >= 0)) return mt_errf(err, errlen, "--norm-epsilon must not be negative");
    if (!(c->hidden_dropout >= 0 && c->hidden_dropout < 1) ||
        !(c->attention_dropout >= 0 && c->attention_dropout < 1))
        return mt_errf(err, errlen, "--hidden-dropout (%g) and --attention-dropout (%g) must lie in [0, 1)",
                       c->hidden_dropout, c->attention_dropout);
    if (c->seq_head == MT_SEQ_HEAD_CLASSIFY && c->num_classes < 2)
        return mt_errf(err, errlen, "--num-classes must be at least 2 (got %d)", c->num_classes);
    if (c->type_vocab_size < 0 || c->type_vocab_size > 1000)
        return mt_errf(err, errlen, "the number of token types must lie in [0, 1000] (got %d)",
                       c->type_vocab_size);
    if (c->add_pooler && c->seq_token != MT_SEQ_TOKEN_FIRST)
        return mt_errf(err, errlen, "the pooler reads the first token");
    if (c->position_embedding_type == MT_POS_ROPE) {
        if (!(c->rotary_percent > 0 && c->rotary_percent <= 1))
            return mt_errf(err, errlen, "--rotary-percent must lie in (0, 1] (got %g)", c->rotary_percent);
        if (mt_config_rotary_dim(c) < 2)
            return mt_errf(err, errlen, "--rotary-percent %g of a head of %d rotates no pair of dimensions",
                           c->rotary_percent, c->kv_channels);
        if (!(c->rotary_base > 0)) return mt_errf(err, errlen, "--rotary-base must be positive");
        if (c->rope_scaling && !(c->rope_scaling_factor >= 1 && c->rope_scaling_factor < 1e6))
            return mt_errf(err, errlen, "--rope-scaling-factor must lie in [1, 1e6) (got %g)", c->rope_scaling_factor);
    } else if (c->rope_scaling) {
        return mt_errf(err, errlen, "--use-rope-scaling needs --position-embedding-type rope");
    }
    return 0;
}

int mt_config_check_parallel(const struct mt_transformer_config *c, int tp, int pp, char *err,
                             size_t errlen)
{
    /* Megatron's divide(): each split must be exact; say which numbers */
#define DIV(what, n, d, flag) \
    if ((n) % (d) != 0) \
        return mt_errf(err, errlen, "%s (%d) is not divisible by %s (%d)", what, n, flag, d)
    DIV("--num-attention-heads", c->num_attention_heads, tp, "--tensor-model-parallel-size");
    DIV("--num-query-groups", c->num_query_groups, tp, "--tensor-model-parallel-size");
    DIV("--ffn-hidden-size", c->ffn_hidden_size, tp, "--tensor-model-parallel-size");
    DIV("the padded vocabulary", c->padded_vocab_size, tp, "--tensor-model-parallel-size");
    DIV("--num-layers", c->num_layers, pp, "--pipeline-model-parallel-size");
#undef DIV
    return 0;
}

int mt_config_qkv_width(const struct mt_transformer_config *c)
{
    return (c->num_attention_heads + 2 * c->num_query_groups) * c->kv_channels;
}

int mt_config_attn_width(const struct mt_transformer_config *c)
{
    return c->num_attention_heads * c->kv_channels;
}

int mt_config_fc1_width(const struct mt_transformer_config *c)
{
    return (c->gated_linear_unit ? 2 : 1) * c->ffn_hidden_size;
}

int mt_config_rotary_dim(const struct mt_transformer_config *c)
{
    if (c->position_embedding_type != MT_POS_ROPE) return 0;
    /* Megatron RotaryEmbedding: dim = int(kv_channels * rotary_percent) */
    return (int)(c->kv_channels * c->rotary_percent) & ~1;
}

int mt_config_padded_vocab(int vocab_size, int divisible_by)
{
    if (divisible_by < 1) divisible_by = 1;
    return (vocab_size + divisible_by - 1) / divisible_by * divisible_by;
}

double mt_config_flops(const struct mt_transformer_config *c, int global_batch, int seq)
{
    const double h = c->hidden_size, L = c->num_layers, s = seq, n = c->num_attention_heads;
    const double q = (double)c->kv_channels * n, g = c->num_query_groups;
    const double glu = c->gated_linear_unit ? 1.5 : 1.0;
    return 12.0 * global_batch * s * L * h * h *
           ((1.0 + g / n + s / h) * (q / h) + (c->ffn_hidden_size / h) * glu + c->padded_vocab_size / (2.0 * L * h));
}

size_t mt_config_param_count(const struct mt_transformer_config *c)
{
    struct mt_param_table t;
    mt_layout_global_table(c, 1, &t, NULL);
    size_t n = 0;
    for (int i = 0; i < t.n; i++) n += t.p[i].numel;
    mt_params_free(&t);
    return n;
}

static const char *const NORM_NAMES[] = {"LayerNorm", "RMSNorm", NULL};
static const char *const POS_NAMES[] = {"learned_absolute", "rope", "none", NULL};
static const char *const MASK_NAMES[] = {"causal", "none", NULL};
static const char *const ACT_NAMES[] = {"gelu_tanh", "gelu", NULL};
static const char *const LM_HEAD_NAMES[] = {"gpt", "bert", "none", NULL};
static const char *const SEQ_HEAD_NAMES[] = {"none", "binary", "classification", NULL};
static const char *const SEQ_TOKEN_NAMES[] = {"first", "last", NULL};

const char *mt_normalization_name(enum mt_normalization n) { return NORM_NAMES[n]; }
const char *mt_position_embedding_name(enum mt_position_embedding p) { return POS_NAMES[p]; }

static int parse_name(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

int mt_normalization_parse(const char *s) { return parse_name(NORM_NAMES, s); }
int mt_position_embedding_parse(const char *s) { return parse_name(POS_NAMES, s); }

#define F(field) offsetof(struct mt_transformer_config, field)
static const struct mt_config_field FIELDS[] = {
    {"num_layers", "--num-layers", MT_FIELD_INT, F(num_layers), NULL, NULL, 1},
    {"hidden_size", "--hidden-size", MT_FIELD_INT, F(hidden_size), NULL, NULL, 1},
    {"num_attention_heads", "--num-attention-heads", MT_FIELD_INT, F(num_attention_heads), NULL, NULL, 1},
    /* absent before grouped-query attention: 0, which mt_config_derive fills */
    {"num_query_groups", "--num-query-groups", MT_FIELD_INT, F(num_query_groups), NULL, "0", 1},
    {"kv_channels", "--kv-channels", MT_FIELD_INT, F(kv_channels), NULL, "0", 1},
    {"ffn_hidden_size", "--ffn-hidden-size", MT_FIELD_INT, F(ffn_hidden_size), NULL, NULL, 1},
    {"swiglu", "--swiglu", MT_FIELD_INT, F(gated_linear_unit), NULL, "0", 1},
    {"normalization", "--normalization", MT_FIELD_ENUM, F(normalization), NORM_NAMES, "LayerNorm", 1},
    {"norm_epsilon", "--norm-epsilon", MT_FIELD_DOUBLE, F(layernorm_epsilon), NULL, "1e-05", 1},
    {"position_embedding_type", "--position-embedding-type", MT_FIELD_ENUM,
     F(position_embedding_type), POS_NAMES, "learned_absolute", 1},
    {"rotary_base", "--rotary-base", MT_FIELD_DOUBLE, F(rotary_base), NULL, "10000", 1},
    {"rotary_percent", "--rotary-percent", MT_FIELD_DOUBLE, F(rotary_percent), NULL, "1", 1},
    {"rope_scaling", "--use-rope-scaling", MT_FIELD_INT, F(rope_scaling), NULL, "0", 1},
    {"rope_scaling_factor", "--rope-scaling-factor", MT_FIELD_DOUBLE, F(rope_scaling_factor), NULL, "8", 1},
    {"add_bias_linear", "--disable-bias-linear", MT_FIELD_INT, F(add_bias_linear), NULL, "1", 1},
    {"add_qkv_bias", "--add-qkv-bias", MT_FIELD_INT, F(add_qkv_bias), NULL, "1", 1},
    {"untie_embeddings_and_output_weights", "--untie-embeddings-and-output-weights", MT_FIELD_INT,
     F(untie_embeddings_and_output_weights), NULL, "0", 1},
    {"attn_mask_type", "the attention mask", MT_FIELD_ENUM, F(attn_mask_type), MASK_NAMES, "causal", 1},
    {"max_position_embeddings", "--max-position-embeddings", MT_FIELD_INT, F(max_position_embeddings),
     NULL, NULL, 1},
    {"vocab_size", "the vocabulary size", MT_FIELD_INT, F(vocab_size), NULL, NULL, 1},
    {"padded_vocab_size", "the padded vocabulary size", MT_FIELD_INT, F(padded_vocab_size), NULL, NULL, 1},
    /* training settings, kept for the record: a fine-tune may change them */
    {"hidden_dropout", "--hidden-dropout", MT_FIELD_FLOAT, F(hidden_dropout), NULL, "0", 0},
    {"attention_dropout", "--attention-dropout", MT_FIELD_FLOAT, F(attention_dropout), NULL, "0", 0},
    {"init_method_std", "--init-method-std", MT_FIELD_FLOAT, F(init_method_std), NULL, "0.02", 0},
    {"activation", "the activation (--openai-gelu)", MT_FIELD_ENUM, F(activation), ACT_NAMES, "gelu_tanh", 1},
    {"num_tokentypes", "the token types", MT_FIELD_INT, F(type_vocab_size), NULL, "0", 1},
    {"post_layernorm", "--post-layernorm", MT_FIELD_INT, F(post_layernorm), NULL, "0", 1},
    {"lm_head", "the language-model head", MT_FIELD_ENUM, F(lm_head), LM_HEAD_NAMES, "gpt", 1},
    {"add_pooler", "the pooler", MT_FIELD_INT, F(add_pooler), NULL, "0", 1},
    {"sequence_head", "the sequence head (--bert-no-binary-head, finetune)", MT_FIELD_ENUM, F(seq_head),
     SEQ_HEAD_NAMES, "none", 1},
    {"num_classes", "--num-classes", MT_FIELD_INT, F(num_classes), NULL, "0", 1},
    {"sequence_token", "the position the sequence head reads", MT_FIELD_ENUM, F(seq_token),
     SEQ_TOKEN_NAMES, "first", 1},
};
#undef F

const struct mt_config_field *mt_config_fields(int *n)
{
    *n = (int)(sizeof FIELDS / sizeof FIELDS[0]);
    return FIELDS;
}

void mt_config_field_format(const struct mt_transformer_config *c,
                            const struct mt_config_field *f, char *buf, size_t n)
{
    const char *p = (const char *)c + f->offset;
    switch (f->type) {
    case MT_FIELD_INT: snprintf(buf, n, "%d", *(const int *)p); break;
    case MT_FIELD_FLOAT: snprintf(buf, n, "%.9g", *(const float *)p); break;
    case MT_FIELD_DOUBLE: snprintf(buf, n, "%.17g", *(const double *)p); break;
    case MT_FIELD_ENUM: snprintf(buf, n, "%s", f->names[*(const int *)p]); break;
    }
}

int mt_config_field_parse(struct mt_transformer_config *c, const struct mt_config_field *f,
                          const char *text)
{
    char *p = (char *)c + f->offset, *end = NULL;
    errno = 0;
    switch (f->type) {
    case MT_FIELD_INT: {
        long v = strtol(text, &end, 10);
        if (end == text || *end || errno || v < 0 || v > 1000000000) return -1;
        *(int *)p = (int)v;
        return 0;
    }
    case MT_FIELD_FLOAT:
    case MT_FIELD_DOUBLE: {
        double v = strtod(text, &end);
        if (end == text || *end || errno || !isfinite(v)) return -1;
        if (f->type == MT_FIELD_FLOAT) *(float *)p = (float)v;
        else *(double *)p = v;
        return 0;
    }
    case MT_FIELD_ENUM: {
        int v = parse_name(f->names, text);
        if (v < 0) return -1;
        *(int *)p = v;
        return 0;
    }
    }
    return -1;
}
