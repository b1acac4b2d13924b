/* hf.c: see hf.h */
#include "interop/hf.h"
#include "core/finite.h"
#include "core/error.h"
#include "core/io.h"
#include "core/json_value.h"
#include "model/layout.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the name maps --------------------------------------------------------------------- */

enum xform {
    COPY,      /* the same shape */
    TRANSPOSE, /* Conv1D (in, out) <-> (out, in) */
    VOCAB,     /* (V, C) <-> the first V rows of (Vp, C) */
    GPT2_QKV,  /* c_attn [q | k | v] columns <-> per-head [q, k, v] rows (weight: transposed too) */
    LLAMA_QKV, /* q_proj, k_proj, v_proj <-> per-group [q heads, k, v] rows (BERT's query,
                  key, value too: a group per head) */
    CAT2       /* gate_proj, up_proj <-> [gate; up] rows */
};

struct rule {
    const char *ours;  /* megatron-c's name; %d is the layer */
    const char *hf[3]; /* Hugging Face's; %d is the layer; a leading @ stands for the
                        * architecture's base-model prefix ("bert.") */
    enum xform x;
};

#define L_ "decoder.layers.%d."
static const struct rule GPT2_RULES[] = {
    {"embedding.word_embeddings.weight", {"transformer.wte.weight"}, VOCAB},
    {"embedding.position_embeddings.weight", {"transformer.wpe.weight"}, COPY},
    {L_ "input_layernorm.weight", {"transformer.h.%d.ln_1.weight"}, COPY},
    {L_ "input_layernorm.bias", {"transformer.h.%d.ln_1.bias"}, COPY},
    {L_ "self_attention.linear_qkv.weight", {"transformer.h.%d.attn.c_attn.weight"}, GPT2_QKV},
    {L_ "self_attention.linear_qkv.bias", {"transformer.h.%d.attn.c_attn.bias"}, GPT2_QKV},
    {L_ "self_attention.linear_proj.weight", {"transformer.h.%d.attn.c_proj.weight"}, TRANSPOSE},
    {L_ "self_attention.linear_proj.bias", {"transformer.h.%d.attn.c_proj.bias"}, COPY},
    {L_ "pre_mlp_layernorm.weight", {"transformer.h.%d.ln_2.weight"}, COPY},
    {L_ "pre_mlp_layernorm.bias", {"transformer.h.%d.ln_2.bias"}, COPY},
    {L_ "mlp.linear_fc1.weight", {"transformer.h.%d.mlp.c_fc.weight"}, TRANSPOSE},
    {L_ "mlp.linear_fc1.bias", {"transformer.h.%d.mlp.c_fc.bias"}, COPY},
    {L_ "mlp.linear_fc2.weight", {"transformer.h.%d.mlp.c_proj.weight"}, TRANSPOSE},
    {L_ "mlp.linear_fc2.bias", {"transformer.h.%d.mlp.c_proj.bias"}, COPY},
    {"decoder.final_layernorm.weight", {"transformer.ln_f.weight"}, COPY},
    {"decoder.final_layernorm.bias", {"transformer.ln_f.bias"}, COPY},
    {"output_layer.weight", {"lm_head.weight"}, VOCAB},
};

#define LL_ "model.layers.%d."
static const struct rule LLAMA_RULES[] = {
    {"embedding.word_embeddings.weight", {"model.embed_tokens.weight"}, VOCAB},
    {L_ "input_layernorm.weight", {LL_ "input_layernorm.weight"}, COPY},
    {L_ "self_attention.linear_qkv.weight",
     {LL_ "self_attn.q_proj.weight", LL_ "self_attn.k_proj.weight", LL_ "self_attn.v_proj.weight"}, LLAMA_QKV},
    {L_ "self_attention.linear_qkv.bias",
     {LL_ "self_attn.q_proj.bias", LL_ "self_attn.k_proj.bias", LL_ "self_attn.v_proj.bias"}, LLAMA_QKV},
    {L_ "self_attention.linear_proj.weight", {LL_ "self_attn.o_proj.weight"}, COPY},
    {L_ "self_attention.linear_proj.bias", {LL_ "self_attn.o_proj.bias"}, COPY},
    {L_ "pre_mlp_layernorm.weight", {LL_ "post_attention_layernorm.weight"}, COPY},
    {L_ "mlp.linear_fc1.weight", {LL_ "mlp.gate_proj.weight", LL_ "mlp.up_proj.weight"}, CAT2},
    {L_ "mlp.linear_fc1.bias", {LL_ "mlp.gate_proj.bias", LL_ "mlp.up_proj.bias"}, CAT2},
    {L_ "mlp.linear_fc2.weight", {LL_ "mlp.down_proj.weight"}, COPY},
    {L_ "mlp.linear_fc2.bias", {LL_ "mlp.down_proj.bias"}, COPY},
    {"decoder.final_layernorm.weight", {"model.norm.weight"}, COPY},
    {"output_layer.weight", {"lm_head.weight"}, VOCAB},
};
/* BERT (post-norm): the attention block's LayerNorm is our first norm, the
 * MLP block's the second (model/layer.c) */
#define BL_ "@encoder.layer.%d."
static const struct rule BERT_RULES[] = {
    {"embedding.word_embeddings.weight", {"@embeddings.word_embeddings.weight"}, VOCAB},
    {"embedding.position_embeddings.weight", {"@embeddings.position_embeddings.weight"}, COPY},
    {"embedding.tokentype_embeddings.weight", {"@embeddings.token_type_embeddings.weight"}, COPY},
    {"embedding.layernorm.weight", {"@embeddings.LayerNorm.weight"}, COPY},
    {"embedding.layernorm.bias", {"@embeddings.LayerNorm.bias"}, COPY},
    {L_ "self_attention.linear_qkv.weight",
     {BL_ "attention.self.query.weight", BL_ "attention.self.key.weight", BL_ "attention.self.value.weight"},
     LLAMA_QKV},
    {L_ "self_attention.linear_qkv.bias",
     {BL_ "attention.self.query.bias", BL_ "attention.self.key.bias", BL_ "attention.self.value.bias"},
     LLAMA_QKV},
    {L_ "self_attention.linear_proj.weight", {BL_ "attention.output.dense.weight"}, COPY},
    {L_ "self_attention.linear_proj.bias", {BL_ "attention.output.dense.bias"}, COPY},
    {L_ "input_layernorm.weight", {BL_ "attention.output.LayerNorm.weight"}, COPY},
    {L_ "input_layernorm.bias", {BL_ "attention.output.LayerNorm.bias"}, COPY},
    {L_ "mlp.linear_fc1.weight", {BL_ "intermediate.dense.weight"}, COPY},
    {L_ "mlp.linear_fc1.bias", {BL_ "intermediate.dense.bias"}, COPY},
    {L_ "mlp.linear_fc2.weight", {BL_ "output.dense.weight"}, COPY},
    {L_ "mlp.linear_fc2.bias", {BL_ "output.dense.bias"}, COPY},
    {L_ "pre_mlp_layernorm.weight", {BL_ "output.LayerNorm.weight"}, COPY},
    {L_ "pre_mlp_layernorm.bias", {BL_ "output.LayerNorm.bias"}, COPY},
    {"pooler.dense.weight", {"@pooler.dense.weight"}, COPY},
    {"pooler.dense.bias", {"@pooler.dense.bias"}, COPY},
    {"lm_head.dense.weight", {"cls.predictions.transform.dense.weight"}, COPY},
    {"lm_head.dense.bias", {"cls.predictions.transform.dense.bias"}, COPY},
    {"lm_head.layer_norm.weight", {"cls.predictions.transform.LayerNorm.weight"}, COPY},
    {"lm_head.layer_norm.bias", {"cls.predictions.transform.LayerNorm.bias"}, COPY},
    {"output_layer.weight", {"cls.predictions.decoder.weight"}, VOCAB},
    {"output_layer.bias", {"cls.predictions.bias"}, VOCAB},
    {"binary_head.weight", {"cls.seq_relationship.weight"}, COPY},
    {"binary_head.bias", {"cls.seq_relationship.bias"}, COPY},
    {"classification_head.weight", {"classifier.weight"}, COPY},
    {"classification_head.bias", {"classifier.bias"}, COPY},
};
#undef L_
#undef LL_
#undef BL_

/* Buffers Hugging Face checkpoints carry that are no parameters. */
static int ignorable(const char *name)
{
    static const char *const suffix[] = {".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq",
                                         "embeddings.position_ids", "embeddings.token_type_ids"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        size_t k = strlen(suffix[i]);
        if (n >= k && strcmp(name + n - k, suffix[i]) == 0) return 1;
    }
    return 0;
}

/* BERT's heads by architecture (what a checkpoint of it holds) */
enum bert_kind { NOT_BERT, BERT_BASE, BERT_MLM, BERT_PRETRAINING, BERT_CLASSIFIER };

struct arch {
    const char *name, *model_type;
    const struct rule *rules;
    int nrules;
    const char *prefix; /* of the base model's tensors (rules' @) */
    enum bert_kind bert;
};
#define RULES_(r) r, (int)(sizeof r / sizeof r[0])
static const struct arch ARCHS[] = {
    {"GPT2LMHeadModel", "gpt2", RULES_(GPT2_RULES), "", NOT_BERT},
    {"LlamaForCausalLM", "llama", RULES_(LLAMA_RULES), "", NOT_BERT},
    {"BertForPreTraining", "bert", RULES_(BERT_RULES), "bert.", BERT_PRETRAINING},
    {"BertModel", "bert", RULES_(BERT_RULES), "", BERT_BASE},
    {"BertForMaskedLM", "bert", RULES_(BERT_RULES), "bert.", BERT_MLM},
    {"BertForSequenceClassification", "bert", RULES_(BERT_RULES), "bert.", BERT_CLASSIFIER},
};
#undef RULES_

/* Hugging Face's name of source k of rule r for layer */
static void hf_name(const struct arch *a, const struct rule *r, int k, int layer, char *buf, size_t n)
{
    const char *fmt = r->hf[k];
    char tail[MT_PARAM_NAME_MAX + 32];
    snprintf(tail, sizeof tail, fmt[0] == '@' ? fmt + 1 : fmt, layer);
    snprintf(buf, n, "%s%s", fmt[0] == '@' ? a->prefix : "", tail);
}

/* The rule for one of our tensors, and its layer (-1 outside the layers). */
static const struct rule *rule_for(const struct arch *a, const char *ours, int *layer)
{
    char name[MT_PARAM_NAME_MAX];
    *layer = -1;
    if (sscanf(ours, "decoder.layers.%d.", layer) != 1) *layer = -1;
    for (int i = 0; i < a->nrules; i++) {
        snprintf(name, sizeof name, a->rules[i].ours, *layer);
        if (strcmp(name, ours) == 0) return &a->rules[i];
    }
    return NULL;
}

static int nsources(const struct rule *r) { return r->hf[2] ? 3 : r->hf[1] ? 2 : 1; }

/* ---- shapes --------------------------------------------------------------------------------- */

struct shape {
    int ndim;
    int64_t d[2];
};

/* The Hugging Face shape of source k of rule r for our tensor p. */
static struct shape hf_shape(const struct rule *r, int k, const struct mt_param *p,
                             const struct mt_transformer_config *c)
{
    struct shape s = {p->ndim, {p->shape[0], p->ndim == 2 ? p->shape[1] : 0}};
    const int64_t HS = c->kv_channels;
    switch (r->x) {
    case COPY: break;
    case TRANSPOSE:
        s.d[0] = p->shape[1];
        s.d[1] = p->shape[0];
        break;
    case VOCAB: s.d[0] = c->vocab_size; break;
    case GPT2_QKV:
        if (p->ndim == 2) s.d[0] = p->shape[1], s.d[1] = p->shape[0];
        break;
    case LLAMA_QKV: s.d[0] = (k == 0 ? c->num_attention_heads : c->num_query_groups) * HS; break;
    case CAT2: s.d[0] = p->shape[0] / 2; break;
    }
    return s;
}

static void shape_text(char *buf, size_t n, int ndim, const int64_t *d)
{
    if (ndim == 1) snprintf(buf, n, "(%lld)", (long long)d[0]);
    else if (ndim == 2) snprintf(buf, n, "(%lld, %lld)", (long long)d[0], (long long)d[1]);
    else snprintf(buf, n, "(%d dimensions)", ndim);
}

/* ---- the transforms --------------------------------------------------------------------------
 * to_ours builds our tensor (global shape of p) from the sources; to_hf the
 * inverse. `cols` is the width of a row (1 for vectors). */

static size_t width_of(const struct mt_param *p) { return p->ndim == 2 ? (size_t)p->shape[1] : 1; }

static void transpose(float *dst, const float *src, size_t rows, size_t cols)
{
    /* src (rows, cols) -> dst (cols, rows) */
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) dst[j * rows + i] = src[i * cols + j];
}

/* row ro of our GPT-2 QKV (head h, part w in {q,k,v}, dim d) is column
 * w*C + h*HS + d of c_attn */
static size_t gpt2_qkv_col(size_t ro, size_t C, size_t HS)
{
    const size_t h = ro / (3 * HS), w = (ro % (3 * HS)) / HS, d = ro % HS;
    return w * C + h * HS + d;
}

/* row ro of our Llama QKV -> (source k: 0 q, 1 k, 2 v; row in it) */
static void llama_qkv_src(size_t ro, const struct mt_transformer_config *c, int *k, size_t *row)
{
    const size_t HS = (size_t)c->kv_channels, per = (size_t)(c->num_attention_heads / c->num_query_groups);
    const size_t g = ro / ((per + 2) * HS), in = ro % ((per + 2) * HS), slot = in / HS, d = in % HS;
    if (slot < per) *k = 0, *row = (g * per + slot) * HS + d;
    else *k = (int)(slot - per + 1), *row = g * HS + d;
}

static void to_ours(const struct rule *r, const struct mt_param *p, const struct mt_transformer_config *c,
                    float *const *src, float *dst)
{
    const size_t rows = (size_t)p->shape[0], cols = width_of(p), numel = rows * cols;
    switch (r->x) {
    case COPY: memcpy(dst, src[0], numel * sizeof *dst); break;
    case TRANSPOSE: transpose(dst, src[0], cols, rows); break;
    case VOCAB:
        memcpy(dst, src[0], (size_t)c->vocab_size * cols * sizeof *dst);
        memset(dst + (size_t)c->vocab_size * cols, 0, (rows - (size_t)c->vocab_size) * cols * sizeof *dst);
        break;
    case GPT2_QKV:
        for (size_t ro = 0; ro < rows; ro++) {
            const size_t col = gpt2_qkv_col(ro, (size_t)c->hidden_size, (size_t)c->kv_channels);
            for (size_t j = 0; j < cols; j++) /* weight: c_attn (C, 3C); bias: (3C) */
                dst[ro * cols + j] = p->ndim == 2 ? src[0][j * rows + col] : src[0][col];
        }
        break;
    case LLAMA_QKV:
        for (size_t ro = 0; ro < rows; ro++) {
            int k;
            size_t row;
            llama_qkv_src(ro, c, &k, &row);
            memcpy(dst + ro * cols, src[k] + row * cols, cols * sizeof *dst);
        }
        break;
    case CAT2:
        memcpy(dst, src[0], numel / 2 * sizeof *dst);
        memcpy(dst + numel / 2, src[1], numel / 2 * sizeof *dst);
        break;
    }
}

static void to_hf(const struct rule *r, const struct mt_param *p, const struct mt_transformer_config *c,
                  const float *ours, float *const *dst)
{
    const size_t rows = (size_t)p->shape[0], cols = width_of(p), numel = rows * cols;
    switch (r->x) {
    case COPY: memcpy(dst[0], ours, numel * sizeof *ours); break;
    case TRANSPOSE: transpose(dst[0], ours, rows, cols); break;
    case VOCAB: memcpy(dst[0], ours, (size_t)c->vocab_size * cols * sizeof *ours); break;
    case GPT2_QKV:
        for (size_t ro = 0; ro < rows; ro++) {
            const size_t col = gpt2_qkv_col(ro, (size_t)c->hidden_size, (size_t)c->kv_channels);
            for (size_t j = 0; j < cols; j++) {
                if (p->ndim == 2) dst[0][j * rows + col] = ours[ro * cols + j];
                else dst[0][col] = ours[ro];
            }
        }
        break;
    case LLAMA_QKV:
        for (size_t ro = 0; ro < rows; ro++) {
            int k;
            size_t row;
            llama_qkv_src(ro, c, &k, &row);
            memcpy(dst[k] + row * cols, ours + ro * cols, cols * sizeof *ours);
        }
        break;
    case CAT2:
        memcpy(dst[0], ours, numel / 2 * sizeof *ours);
        memcpy(dst[1], ours + numel / 2, numel / 2 * sizeof *ours);
        break;
    }
}

/* ---- config.json ---------------------------------------------------------------------------- */

int mt_hf_is_dir(const char *dir)
{
    char a[4300], b[4300], c[4300];
    snprintf(a, sizeof a, "%s/config.json", dir);
    snprintf(b, sizeof b, "%s/model.safetensors", dir);
    snprintf(c, sizeof c, "%s/model.safetensors.index.json", dir);
    return mt_file_exists(a) && (mt_file_exists(b) || mt_file_exists(c));
}

struct cfg_reader {
    const char *path;
    const struct mt_jvalue *root;
};

static int need_int(const struct cfg_reader *r, const char *key)
{
    long long v;
    if (!mt_json_get_int(r->root, key, &v) || v < 1 || v > 1000000000)
        mt_user_error("the directory's config.json is not a complete Hugging Face config",
                      "%s: \"%s\" is missing or not a positive integer", r->path, key);
    return (int)v;
}

static int opt_int(const struct cfg_reader *r, const char *key, int dflt)
{
    const struct mt_jvalue *v = mt_json_get(r->root, key);
    if (!v || v->type == MT_J_NULL) return dflt;
    return need_int(r, key);
}

static double opt_num(const struct cfg_reader *r, const char *key, double dflt)
{
    double v;
    return mt_json_get_number(r->root, key, &v) ? v : dflt;
}

static int opt_bool(const struct cfg_reader *r, const char *key, int dflt)
{
    int v;
    return mt_json_get_bool(r->root, key, &v) ? v : dflt;
}

#define ARCH_LIST "GPT2LMHeadModel, LlamaForCausalLM, BertModel, BertForMaskedLM, " \
                  "BertForPreTraining and BertForSequenceClassification"

MT_NORETURN static void unsupported(const struct cfg_reader *r, const char *arch, const char *what)
{
    mt_user_error("megatron-c reads " ARCH_LIST " as they are by default",
                  "%s: %s: %s is not supported", r->path, arch, what);
}

static void read_gpt2(const struct cfg_reader *r, struct mt_transformer_config *c)
{
    c->num_layers = need_int(r, "n_layer");
    c->hidden_size = need_int(r, "n_embd");
    c->num_attention_heads = need_int(r, "n_head");
    c->ffn_hidden_size = opt_int(r, "n_inner", 4 * c->hidden_size);
    c->max_position_embeddings = need_int(r, "n_positions");
    c->vocab_size = need_int(r, "vocab_size");
    c->layernorm_epsilon = opt_num(r, "layer_norm_epsilon", 1e-5);
    const char *act = mt_json_get_str(r->root, "activation_function");
    if (act && strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0) {
        char what[96];
        snprintf(what, sizeof what, "activation_function \"%s\" (the tanh GELU, gelu_new, is)", act);
        unsupported(r, "GPT2LMHeadModel", what);
    }
    if (opt_bool(r, "scale_attn_by_inverse_layer_idx", 0))
        unsupported(r, "GPT2LMHeadModel", "scale_attn_by_inverse_layer_idx");
    if (!opt_bool(r, "scale_attn_weights", 1)) unsupported(r, "GPT2LMHeadModel", "scale_attn_weights false");
    if (c->hidden_size % c->num_attention_heads != 0)
        mt_user_error(NULL, "%s: n_embd %d is not divisible by n_head %d", r->path, c->hidden_size,
                      c->num_attention_heads);
    c->untie_embeddings_and_output_weights = !opt_bool(r, "tie_word_embeddings", 1);
    c->hidden_dropout = (float)opt_num(r, "resid_pdrop", 0.1);
    c->attention_dropout = (float)opt_num(r, "attn_pdrop", 0.1);
    c->init_method_std = (float)opt_num(r, "initializer_range", 0.02);
}

/* RoPE: rope_theta (older configs), or rope_parameters / rope_scaling with
 * a rope_type: the plain ("default") rotation, or Llama 3.x's ("llama3")
 * with the constants Megatron's --use-rope-scaling fixes (low and high
 * frequency factors 1 and 4, original context 8192; any factor) */
static void read_rope(const struct cfg_reader *r, struct mt_transformer_config *c)
{
    c->rotary_base = opt_num(r, "rope_theta", 10000.0);
    const char *keys[] = {"rope_parameters", "rope_scaling"};
    for (int i = 0; i < 2; i++) {
        const struct mt_jvalue *p = mt_json_get(r->root, keys[i]);
        if (!p || p->type == MT_J_NULL) continue;
        const char *type = mt_json_get_str(p, "rope_type");
        if (!type) type = mt_json_get_str(p, "type");
        char what[200];
        if (type && strcmp(type, "llama3") == 0) {
            double f = 0, lo = 0, hi = 0, orig = 0;
            if (!mt_json_get_number(p, "factor", &f) || !mt_json_get_number(p, "low_freq_factor", &lo) ||
                !mt_json_get_number(p, "high_freq_factor", &hi) ||
                !mt_json_get_number(p, "original_max_position_embeddings", &orig) || lo != 1 || hi != 4 ||
                orig != 8192) {
                snprintf(what, sizeof what, "%s llama3 with low_freq_factor %g, high_freq_factor %g, "
                         "original_max_position_embeddings %g (Megatron's are 1, 4, 8192)", keys[i], lo, hi, orig);
                unsupported(r, "LlamaForCausalLM", what);
            }
            c->rope_scaling = 1;
            c->rope_scaling_factor = f;
        } else if (type && strcmp(type, "default") != 0) {
            snprintf(what, sizeof what, "%s with rope_type \"%s\" (the default and llama3 rotations are)", keys[i], type);
            unsupported(r, "LlamaForCausalLM", what);
        }
        double t;
        if (mt_json_get_number(p, "rope_theta", &t)) c->rotary_base = t;
    }
}

static void read_llama(const struct cfg_reader *r, struct mt_transformer_config *c)
{
    c->num_layers = need_int(r, "num_hidden_layers");
    c->hidden_size = need_int(r, "hidden_size");
    c->num_attention_heads = need_int(r, "num_attention_heads");
    c->num_query_groups = opt_int(r, "num_key_value_heads", c->num_attention_heads);
    c->kv_channels = opt_int(r, "head_dim", c->hidden_size / c->num_attention_heads);
    c->ffn_hidden_size = need_int(r, "intermediate_size");
    c->max_position_embeddings = need_int(r, "max_position_embeddings");
    c->vocab_size = need_int(r, "vocab_size");
    c->normalization = MT_NORM_RMSNORM;
    c->layernorm_epsilon = opt_num(r, "rms_norm_eps", 1e-6);
    c->position_embedding_type = MT_POS_ROPE;
    read_rope(r, c);
    c->gated_linear_unit = 1;
    const char *act = mt_json_get_str(r->root, "hidden_act");
    if (act && strcmp(act, "silu") != 0) {
        char what[96];
        snprintf(what, sizeof what, "hidden_act \"%s\" (silu is)", act);
        unsupported(r, "LlamaForCausalLM", what);
    }
    const int attn_bias = opt_bool(r, "attention_bias", 0), mlp_bias = opt_bool(r, "mlp_bias", 0);
    if (attn_bias != mlp_bias)
        unsupported(r, "LlamaForCausalLM", "attention_bias without mlp_bias or the reverse (Megatron's "
                                           "--disable-bias-linear is all or nothing)");
    c->add_bias_linear = c->add_qkv_bias = attn_bias;
    c->untie_embeddings_and_output_weights = !opt_bool(r, "tie_word_embeddings", 0);
    c->attention_dropout = (float)opt_num(r, "attention_dropout", 0.0);
    c->hidden_dropout = 0.0f;
    c->init_method_std = (float)opt_num(r, "initializer_range", 0.02);
}

/* BERT: post-norm, learned positions, token types, heads by architecture */
static void read_bert(const struct cfg_reader *r, const struct arch *a, struct mt_transformer_config *c)
{
    c->num_layers = need_int(r, "num_hidden_layers");
    c->hidden_size = need_int(r, "hidden_size");
    c->num_attention_heads = need_int(r, "num_attention_heads");
    c->ffn_hidden_size = need_int(r, "intermediate_size");
    c->max_position_embeddings = need_int(r, "max_position_embeddings");
    c->vocab_size = need_int(r, "vocab_size");
    c->type_vocab_size = opt_int(r, "type_vocab_size", 2);
    c->layernorm_epsilon = opt_num(r, "layer_norm_eps", 1e-12);
    c->post_layernorm = 1;
    c->attn_mask_type = MT_ATTN_MASK_NONE;
    const char *act = mt_json_get_str(r->root, "hidden_act");
    if (!act || strcmp(act, "gelu") == 0) c->activation = MT_ACTIVATION_GELU;
    else if (strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0)
        c->activation = MT_ACTIVATION_GELU_TANH;
    else {
        char what[96];
        snprintf(what, sizeof what, "hidden_act \"%s\" (gelu and gelu_new are)", act);
        unsupported(r, a->name, what);
    }
    const char *pos = mt_json_get_str(r->root, "position_embedding_type");
    if (pos && strcmp(pos, "absolute") != 0) unsupported(r, a->name, "position_embedding_type other than absolute");
    if (opt_bool(r, "is_decoder", 0) || opt_bool(r, "add_cross_attention", 0))
        unsupported(r, a->name, "a decoder BERT (is_decoder, add_cross_attention)");
    if (c->hidden_size % c->num_attention_heads != 0)
        mt_user_error(NULL, "%s: hidden_size %d is not divisible by num_attention_heads %d", r->path,
                      c->hidden_size, c->num_attention_heads);
    c->untie_embeddings_and_output_weights = !opt_bool(r, "tie_word_embeddings", 1);
    c->hidden_dropout = (float)opt_num(r, "hidden_dropout_prob", 0.1);
    c->attention_dropout = (float)opt_num(r, "attention_probs_dropout_prob", 0.1);
    c->init_method_std = (float)opt_num(r, "initializer_range", 0.02);
    c->lm_head = a->bert == BERT_MLM || a->bert == BERT_PRETRAINING ? MT_LM_HEAD_BERT : MT_LM_HEAD_NONE;
    c->add_pooler = a->bert != BERT_MLM;
    c->seq_head = a->bert == BERT_PRETRAINING ? MT_SEQ_HEAD_BINARY
                  : a->bert == BERT_CLASSIFIER ? MT_SEQ_HEAD_CLASSIFY
                                               : MT_SEQ_HEAD_NONE;
    if (a->bert == BERT_CLASSIFIER) {
        const struct mt_jvalue *labels = mt_json_get(r->root, "id2label");
        c->num_classes = opt_int(r, "num_labels", labels && labels->type == MT_J_OBJECT ? (int)labels->n : 2);
        const char *pt = mt_json_get_str(r->root, "problem_type");
        if (pt && strcmp(pt, "single_label_classification") != 0)
            unsupported(r, a->name, "a problem_type other than single_label_classification");
    }
}

/* ---- reading ---------------------------------------------------------------------------- */

static const struct arch *arch_named(const char *name)
{
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (strcmp(ARCHS[i].name, name) == 0 || strcmp(ARCHS[i].model_type, name) == 0) return &ARCHS[i];
    return NULL;
}

static const struct arch *read_config(const char *dir, int divisible_by, const char *tokenizer_type,
                                      struct mt_hf_model *m)
{
    struct mt_model_desc *d = &m->desc;
    char path[4300], err[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *text = mt_read_file(path, &len, "--load");
    struct mt_jvalue root;
    if (mt_json_parse(text, len, &root, err, sizeof err) != 0)
        mt_user_error("config.json must be the JSON Hugging Face writes", "%s: %s", path, err);
    free(text);
    struct cfg_reader r = {path, &root};
    const struct mt_jvalue *archs = mt_json_get(&root, "architectures");
    const char *name = archs && archs->type == MT_J_ARRAY && archs->n > 0 && archs->v[0].type == MT_J_STRING
                           ? archs->v[0].str
                           : mt_json_get_str(&root, "model_type");
    const struct arch *a = name ? arch_named(name) : NULL;
    if (!a)
        mt_user_error("megatron-c converts " ARCH_LIST,
                      "%s: architecture %s is not supported", path, name ? name : "(none given)");
    mt_config_defaults(&d->model);
    if (a->rules == GPT2_RULES) read_gpt2(&r, &d->model);
    else if (a->rules == LLAMA_RULES) read_llama(&r, &d->model);
    else read_bert(&r, a, &d->model);
    const char *recorded = mt_json_get_str(&root, "megatron_c_tokenizer_type");
    snprintf(m->tokenizer_type, sizeof m->tokenizer_type, "%s",
             tokenizer_type ? tokenizer_type
             : recorded     ? recorded
             : a->rules == GPT2_RULES && d->model.vocab_size == 50257 ? "GPT2BPETokenizer"
             : a->bert && d->model.vocab_size == 30522                 ? "BertWordPieceLowerCase"
                                                                       : "NullTokenizer");
    d->tokenizer_type = m->tokenizer_type;
    mt_json_free(&root);
    d->model.padded_vocab_size = mt_config_padded_vocab(d->model.vocab_size, divisible_by);
    mt_config_derive(&d->model);
    if (mt_config_check(&d->model, err, sizeof err) != 0) mt_user_error(NULL, "%s: %s", path, err);
    d->make_vocab_size_divisible_by = divisible_by;
    return a;
}

/* Reads source `name` (expected shape s) into a new buffer. */
static float *read_source(struct mt_st_dir *st, const char *dir, const char *arch, const char *name,
                          struct shape s)
{
    struct mt_st_file *f = NULL;
    struct mt_st_tensor *t = mt_st_dir_find(st, name, &f);
    char want[64], got[64], err[512];
    /* BERT's decoder bias is one parameter under two names; either may be stored */
    if (!t && strcmp(name, "cls.predictions.bias") == 0)
        t = mt_st_dir_find(st, "cls.predictions.decoder.bias", &f);
    if (!t)
        mt_user_error("the checkpoint does not match its config.json, or is of another model",
                      "%s: tensor %s is missing (%s)", dir, name, arch);
    shape_text(want, sizeof want, s.ndim, s.d);
    shape_text(got, sizeof got, t->ndim, t->shape);
    int ok = t->ndim == s.ndim && t->shape[0] == s.d[0] && (s.ndim == 1 || t->shape[1] == s.d[1]);
    if (!ok)
        mt_user_error("the checkpoint does not match its config.json", "%s: tensor %s has shape %s, "
                      "config.json implies %s", dir, name, got, want);
    float *buf = malloc((size_t)mt_st_numel(t) * sizeof(float) + 1);
    if (!buf) mt_die("out of memory");
    if (mt_st_read_f32(f, t, buf, err, sizeof err) != 0) mt_user_error(NULL, "%s", err);
    t->used = 1;
    return buf;
}

void mt_hf_read(const char *dir, int divisible_by, const char *tokenizer_type,
                struct mt_hf_model *out)
{
    memset(out, 0, sizeof *out);
    const struct arch *a = read_config(dir, divisible_by, tokenizer_type, out);
    snprintf(out->architecture, sizeof out->architecture, "%s", a->name);
    const struct mt_transformer_config *c = &out->desc.model;
    struct mt_st_dir st;
    char err[512], name[MT_PARAM_NAME_MAX + 32];
    if (mt_st_dir_open(&st, dir, err, sizeof err) != 0) mt_user_error(NULL, "%s", err);
    /* a BertModel saved without its pooler (add_pooling_layer=False) */
    if (a->bert == BERT_BASE && !mt_st_dir_find(&st, "pooler.dense.weight", NULL))
        out->desc.model.add_pooler = 0;
    mt_layout_global_table(c, 1, &out->table, NULL);
    out->data = calloc(out->table.total + 1, sizeof(float));
    if (!out->data) mt_die("out of memory");
    for (int i = 0; i < out->table.n; i++) {
        const struct mt_param *p = &out->table.p[i];
        int layer;
        const struct rule *r = rule_for(a, p->name, &layer);
        MT_ASSERT(r != NULL); /* the table holds only what the architecture has */
        float *src[3] = {NULL, NULL, NULL};
        for (int k = 0; k < nsources(r); k++) {
            hf_name(a, r, k, layer, name, sizeof name);
            src[k] = read_source(&st, dir, a->name, name, hf_shape(r, k, p, c));
        }
        to_ours(r, p, c, src, out->data + p->offset);
        for (int k = 0; k < 3; k++) free(src[k]);
        const size_t bad = mt_nonfinite_count(out->data + p->offset, p->numel);
        if (bad)
            mt_user_error("a model with inf or NaN weights gives no usable output; use another checkpoint",
                          "%s: %s (%s) holds %zu non-finite values of %zu", dir, p->name, a->name, bad,
                          p->numel);
    }
    /* a tied output layer may be stored too (it is the embedding), and BERT's
     * decoder bias under its second name */
    const char *aliases[] = {"lm_head.weight", "cls.predictions.decoder.weight",
                             "cls.predictions.decoder.bias", "cls.predictions.bias"};
    for (int k = 0; k < 4; k++) {
        struct mt_st_tensor *t = mt_st_dir_find(&st, aliases[k], NULL);
        if (t && (k >= 2 || !c->untie_embeddings_and_output_weights) && (k < 2 || c->lm_head == MT_LM_HEAD_BERT))
            t->used = 1;
    }
    for (int f = 0; f < st.nfiles; f++)
        for (int k = 0; k < st.files[f].n; k++) {
            const struct mt_st_tensor *t = &st.files[f].t[k];
            if (!t->used && !ignorable(t->name))
                mt_user_error("megatron-c reads the parameters of a plain " ARCH_LIST
                              "; this checkpoint holds more",
                              "%s: unexpected tensor %s in %s (%s)", dir, t->name, st.files[f].path, a->name);
        }
    mt_st_dir_close(&st);
}

void mt_hf_model_free(struct mt_hf_model *m)
{
    free(m->data);
    mt_params_free(&m->table);
    memset(m, 0, sizeof *m);
}

/* ---- writing ---------------------------------------------------------------------------- */

/* The BERT architecture of an encoder configuration: by its heads */
static const char *bert_architecture(const struct mt_transformer_config *c, char *why, size_t whylen)
{
    const char *what = !c->post_layernorm ? "a pre-LayerNorm encoder (Hugging Face's BERT is post-norm)"
                       : c->attn_mask_type != MT_ATTN_MASK_NONE ? "a causal BERT"
                       : c->position_embedding_type != MT_POS_LEARNED_ABSOLUTE ? "BERT without learned positions"
                       : c->normalization != MT_NORM_LAYERNORM ? "BERT with RMSNorm"
                       : c->gated_linear_unit ? "BERT with SwiGLU"
                       : !c->add_bias_linear ? "BERT without biases"
                       : c->num_query_groups != c->num_attention_heads ? "BERT with grouped-query attention"
                       : c->kv_channels * c->num_attention_heads != c->hidden_size ? "BERT with --kv-channels"
                       : c->seq_token != MT_SEQ_TOKEN_FIRST ? "a classifier on the last token"
                       : NULL;
    if (!what) {
        const int lm = c->lm_head == MT_LM_HEAD_BERT;
        if (c->lm_head == MT_LM_HEAD_GPT) what = "BERT with GPT's output layer";
        else if (lm && c->seq_head == MT_SEQ_HEAD_BINARY && c->add_pooler) return "BertForPreTraining";
        else if (lm && c->seq_head == MT_SEQ_HEAD_NONE && !c->add_pooler) return "BertForMaskedLM";
        else if (!lm && c->seq_head == MT_SEQ_HEAD_CLASSIFY && c->add_pooler)
            return "BertForSequenceClassification";
        else if (!lm && c->seq_head == MT_SEQ_HEAD_NONE) return "BertModel";
        else what = "this combination of BERT heads";
    }
    snprintf(why, whylen, "%s has no Hugging Face equivalent", what);
    return NULL;
}

const char *mt_hf_architecture(const struct mt_model_desc *d, char *why, size_t whylen)
{
    const struct mt_transformer_config *c = &d->model;
    const int encoder = c->post_layernorm || c->type_vocab_size > 0 || c->lm_head != MT_LM_HEAD_GPT ||
                        c->seq_head != MT_SEQ_HEAD_NONE || c->add_pooler ||
                        c->attn_mask_type != MT_ATTN_MASK_CAUSAL;
    if (encoder) return bert_architecture(c, why, whylen);
    const int gpt2 = c->activation == MT_ACTIVATION_GELU_TANH &&
                     c->position_embedding_type == MT_POS_LEARNED_ABSOLUTE &&
                     c->normalization == MT_NORM_LAYERNORM && !c->gated_linear_unit &&
                     c->num_query_groups == c->num_attention_heads && c->add_bias_linear &&
                     c->kv_channels * c->num_attention_heads == c->hidden_size;
    if (gpt2) return "GPT2LMHeadModel";
    const int llama = c->position_embedding_type == MT_POS_ROPE && c->normalization == MT_NORM_RMSNORM &&
                      c->gated_linear_unit && c->rotary_percent == 1.0 &&
                      c->add_qkv_bias == c->add_bias_linear;
    if (llama) return "LlamaForCausalLM";
    const char *what = c->position_embedding_type == MT_POS_NONE ? "no position embedding"
                       : c->position_embedding_type == MT_POS_ROPE && c->rotary_percent != 1.0
                           ? "--rotary-percent below 1 (LlamaForCausalLM rotates whole heads)"
                       : c->position_embedding_type == MT_POS_ROPE && !c->gated_linear_unit
                           ? "RoPE without --swiglu"
                       : c->position_embedding_type == MT_POS_ROPE && c->normalization != MT_NORM_RMSNORM
                           ? "RoPE with LayerNorm"
                       : c->add_qkv_bias != c->add_bias_linear ? "--add-qkv-bias alone"
                       : "this mix of position embedding, normalization and MLP";
    snprintf(why, whylen, "%s has no Hugging Face equivalent among GPT2LMHeadModel and LlamaForCausalLM",
             what);
    return NULL;
}

static void write_config(const char *dir, const struct mt_model_desc *d, const char *arch,
                         enum mt_st_dtype dtype)
{
    const struct mt_transformer_config *c = &d->model;
    char path[4300];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) mt_user_error("check that --save is writable", "cannot create %s: %s", path, strerror(errno));
    const char *torch_dtype = dtype == MT_ST_BF16 ? "bfloat16" : dtype == MT_ST_F16 ? "float16" : "float32";
    fprintf(f, "{\n  \"architectures\": [\"%s\"],\n", arch);
    if (strcmp(arch, "GPT2LMHeadModel") == 0) {
        fprintf(f, "  \"model_type\": \"gpt2\",\n  \"n_layer\": %d,\n  \"n_embd\": %d,\n  \"n_head\": %d,\n"
                "  \"n_inner\": %d,\n  \"n_positions\": %d,\n  \"n_ctx\": %d,\n  \"vocab_size\": %d,\n"
                "  \"activation_function\": \"gelu_new\",\n  \"layer_norm_epsilon\": %.17g,\n"
                "  \"resid_pdrop\": %.9g,\n  \"embd_pdrop\": %.9g,\n  \"attn_pdrop\": %.9g,\n"
                "  \"scale_attn_weights\": true,\n  \"tie_word_embeddings\": %s,\n",
                c->num_layers, c->hidden_size, c->num_attention_heads, c->ffn_hidden_size,
                c->max_position_embeddings, c->max_position_embeddings, c->vocab_size, c->layernorm_epsilon,
                c->hidden_dropout, c->hidden_dropout, c->attention_dropout,
                c->untie_embeddings_and_output_weights ? "false" : "true");
        /* GPT-2's end of text, and a NullTokenizer's end of document, is the last id */
        fprintf(f, "  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n", c->vocab_size - 1,
                c->vocab_size - 1);
    } else if (strncmp(arch, "Bert", 4) == 0) {
        fprintf(f, "  \"model_type\": \"bert\",\n  \"num_hidden_layers\": %d,\n  \"hidden_size\": %d,\n"
                "  \"num_attention_heads\": %d,\n  \"intermediate_size\": %d,\n"
                "  \"max_position_embeddings\": %d,\n  \"vocab_size\": %d,\n  \"type_vocab_size\": %d,\n"
                "  \"hidden_act\": \"%s\",\n  \"layer_norm_eps\": %.17g,\n  \"hidden_dropout_prob\": %.9g,\n"
                "  \"attention_probs_dropout_prob\": %.9g,\n  \"position_embedding_type\": \"absolute\",\n"
                "  \"tie_word_embeddings\": %s,\n  \"pad_token_id\": 0,\n",
                c->num_layers, c->hidden_size, c->num_attention_heads, c->ffn_hidden_size,
                c->max_position_embeddings, c->vocab_size, c->type_vocab_size,
                c->activation == MT_ACTIVATION_GELU ? "gelu" : "gelu_new", c->layernorm_epsilon,
                c->hidden_dropout, c->attention_dropout,
                c->untie_embeddings_and_output_weights ? "false" : "true");
        if (c->seq_head == MT_SEQ_HEAD_CLASSIFY) {
            fprintf(f, "  \"num_labels\": %d,\n  \"id2label\": {", c->num_classes);
            for (int k = 0; k < c->num_classes; k++) fprintf(f, "%s\"%d\": \"LABEL_%d\"", k ? ", " : "", k, k);
            fprintf(f, "},\n  \"label2id\": {");
            for (int k = 0; k < c->num_classes; k++) fprintf(f, "%s\"LABEL_%d\": %d", k ? ", " : "", k, k);
            fprintf(f, "},\n  \"problem_type\": \"single_label_classification\",\n");
        }
    } else {
        char rope_type[200] = "\"rope_type\": \"default\", ";
        /* transformers >= 5 reads rope_parameters, 4.x rope_scaling (null:
         * the plain rotation); both are written, alike */
        char scaling[240] = "null";
        if (c->rope_scaling) { /* Llama 3.x's, with Megatron's fixed constants */
            snprintf(rope_type, sizeof rope_type, "\"rope_type\": \"llama3\", \"factor\": %.17g, "
                     "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                     "\"original_max_position_embeddings\": 8192, ", c->rope_scaling_factor);
            snprintf(scaling, sizeof scaling, "{%s\"rope_theta\": %.17g}", rope_type, c->rotary_base);
        }
        fprintf(f, "  \"model_type\": \"llama\",\n  \"num_hidden_layers\": %d,\n  \"hidden_size\": %d,\n"
                "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
                "  \"intermediate_size\": %d,\n  \"max_position_embeddings\": %d,\n  \"vocab_size\": %d,\n"
                "  \"hidden_act\": \"silu\",\n  \"rms_norm_eps\": %.17g,\n  \"rope_theta\": %.17g,\n"
                "  \"rope_parameters\": {%s\"rope_theta\": %.17g},\n  \"rope_scaling\": %s,\n"
                "  \"attention_bias\": %s,\n  \"mlp_bias\": %s,\n  \"attention_dropout\": %.9g,\n"
                "  \"tie_word_embeddings\": %s,\n",
                c->num_layers, c->hidden_size, c->num_attention_heads, c->num_query_groups, c->kv_channels,
                c->ffn_hidden_size, c->max_position_embeddings, c->vocab_size, c->layernorm_epsilon,
                c->rotary_base, rope_type, c->rotary_base, scaling, c->add_bias_linear ? "true" : "false",
                c->add_bias_linear ? "true" : "false", c->attention_dropout,
                c->untie_embeddings_and_output_weights ? "false" : "true");
    }
    /* not Hugging Face's: lets a model come back with its tokenizer */
    if (d->tokenizer_type) fprintf(f, "  \"megatron_c_tokenizer_type\": \"%s\",\n", d->tokenizer_type);
    fprintf(f, "  \"initializer_range\": %.9g,\n  \"torch_dtype\": \"%s\",\n  \"use_cache\": true\n}\n",
            c->init_method_std, torch_dtype);
    if (fclose(f) != 0) mt_user_error("check free disk space", "cannot write %s", path);
}

void mt_hf_write(const char *dir, const struct mt_model_desc *d, const struct mt_param_table *table,
                 const float *data, enum mt_st_dtype dtype)
{
    char why[256], path[4300], name[MT_PARAM_NAME_MAX + 32];
    const char *arch = mt_hf_architecture(d, why, sizeof why);
    if (!arch)
        mt_user_error("write it as a megatron-c checkpoint (--save-format megatron-c)", "%s", why);
    const struct arch *a = arch_named(arch);
    const struct mt_transformer_config *c = &d->model;
    if (mt_mkdir_p(dir) != 0)
        mt_user_error("check that --save points to a writable directory", "cannot create %s: %s", dir,
                      strerror(errno));
    write_config(dir, d, arch, dtype);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct mt_st_writer *w = mt_st_writer_new(path);
    mt_st_writer_metadata(w, "converted_by", "megatron-c");
    /* declare every Hugging Face tensor, then write them in that order */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < table->n; i++) {
            const struct mt_param *p = &table->p[i];
            int layer;
            const struct rule *r = rule_for(a, p->name, &layer);
            MT_ASSERT(r != NULL);
            float *dst[3] = {NULL, NULL, NULL};
            for (int k = 0; k < nsources(r); k++) {
                struct shape s = hf_shape(r, k, p, c);
                hf_name(a, r, k, layer, name, sizeof name);
                if (pass == 0) mt_st_writer_declare(w, name, dtype, s.ndim, s.d);
                else {
                    dst[k] = malloc((size_t)(s.d[0] * (s.ndim == 2 ? s.d[1] : 1)) * sizeof(float) + 1);
                    if (!dst[k]) mt_die("out of memory");
                }
            }
            if (pass == 0) continue;
            to_hf(r, p, c, data + p->offset, dst);
            for (int k = 0; k < nsources(r); k++) {
                hf_name(a, r, k, layer, name, sizeof name);
                mt_st_writer_data(w, name, dst[k]);
                free(dst[k]);
            }
        }
    mt_st_writer_close(w);
}
