/* layout.c: the tables generated from the lists of layout.h. */
#include "model/layout.h"
#include "core/error.h"
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the parameter specs ------------------------------------------------------ */

enum dim { NONE, HIDDEN, QKV, ATTN, FFN, FC1, VOCAB, MAXPOS, TYPES, CLASSES };
enum split { REPL, COL, ROW, GLU };
enum init { ONES, ZEROS, NORMAL, SCALED };
enum when {
    ALWAYS, NORM_BIAS, QKV_BIAS, LINEAR_BIAS, LEARNED_POS, WORD, TOKENTYPES, EMB_NORM,
    EMB_NORM_BIAS, FINAL_NORM, FINAL_NORM_BIAS, BERT_LM, BERT_LM_NORM_BIAS, LAST_UNTIED, POOLER,
    BINARY_HEAD, CLASS_HEAD
};

struct param_spec {
    const char *name;
    enum dim d0, d1;
    enum split split;
    enum init init;
    enum when when;
    size_t view_offset; /* of the tensor in its view struct */
};

#define PRE_SPEC_(field, name, d0, d1, split, init, when) \
    {name, d0, d1, split, init, when, offsetof(struct mt_model_view, field)},
#define LAYER_SPEC_(field, name, d0, d1, split, init, when) \
    {name, d0, d1, split, init, when, offsetof(struct mt_layer_view, field)},
static const struct param_spec PRE[] = {MT_PRE_PARAMS(PRE_SPEC_)};
static const struct param_spec LAYER[] = {MT_LAYER_PARAMS(LAYER_SPEC_)};
static const struct param_spec POST[] = {MT_POST_PARAMS(PRE_SPEC_)};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int64_t param_dim(const struct mt_transformer_config *c, enum dim d)
{
    switch (d) {
    case NONE: return 0;
    case HIDDEN: return c->hidden_size;
    case QKV: return mt_config_qkv_width(c);
    case ATTN: return mt_config_attn_width(c);
    case FFN: return c->ffn_hidden_size;
    case FC1: return mt_config_fc1_width(c);
    case VOCAB: return c->padded_vocab_size;
    case MAXPOS: return c->max_position_embeddings;
    case TYPES: return c->type_vocab_size;
    case CLASSES: return mt_config_seq_classes(c);
    }
    return 0;
}

/* Whether a tensor exists on a stage. The tied output layer: the word
 * embedding lives on the first stage, and a last stage that is not the
 * first holds a copy (in the global table, only the first stage's). */
static int present(const struct mt_transformer_config *c, enum when w, int first, int last,
                   int global)
{
    const int lm = c->lm_head != MT_LM_HEAD_NONE, bert_lm = c->lm_head == MT_LM_HEAD_BERT;
    const int tied = !c->untie_embeddings_and_output_weights && lm;
    const int layernorm = c->normalization == MT_NORM_LAYERNORM, post = c->post_layernorm;
    switch (w) {
    case ALWAYS: return 1;
    case NORM_BIAS: return layernorm;
    case QKV_BIAS: return c->add_qkv_bias || c->add_bias_linear;
    case LINEAR_BIAS: return c->add_bias_linear;
    case LEARNED_POS: return first && c->position_embedding_type == MT_POS_LEARNED_ABSOLUTE;
    case WORD: return first || (!global && last && tied);
    case TOKENTYPES: return first && c->type_vocab_size > 0;
    case EMB_NORM: return first && post;
    case EMB_NORM_BIAS: return first && post && layernorm;
    case FINAL_NORM: return last && !post;
    case FINAL_NORM_BIAS: return last && !post && layernorm;
    case BERT_LM: return last && bert_lm;
    case BERT_LM_NORM_BIAS: return last && bert_lm && layernorm;
    case LAST_UNTIED: return last && lm && c->untie_embeddings_and_output_weights;
    case POOLER: return last && c->add_pooler;
    case BINARY_HEAD: return last && c->seq_head == MT_SEQ_HEAD_BINARY;
    case CLASS_HEAD: return last && c->seq_head == MT_SEQ_HEAD_CLASSIFY;
    }
    return 0;
}

static void add_spec(struct mt_param_table *t, const struct mt_transformer_config *c,
                     const struct param_spec *sp, const char *name, int *owner, int stage)
{
    const int64_t d0 = param_dim(c, sp->d0), d1 = param_dim(c, sp->d1);
    const float std = c->init_method_std;
    float init_std = 0.0f, init_value = sp->init == ONES ? 1.0f : 0.0f;
    if (sp->init == NORMAL) init_std = std;
    /* Megatron scaled_init_method_normal for the output projections */
    if (sp->init == SCALED) init_std = std / sqrtf(2.0f * (float)c->num_layers);
    const int split = sp->split == REPL ? -1 : sp->split == ROW ? 1 : 0;
    const int stride = sp->split == GLU && c->gated_linear_unit ? 2 : 1;
    int i = d1 ? mt_params_add(t, name, d0, d1, init_std, init_value, split, stride)
               : mt_params_add(t, name, 0, d0, init_std, init_value, split, stride);
    if (owner) owner[i] = stage;
}

/* Appends the tensors of stage s to t (global: the global table's part). */
static void add_stage(struct mt_param_table *t, const struct mt_transformer_config *c,
                      const struct mt_stage *s, int global, int *owner, int stage)
{
    char name[MT_PARAM_NAME_MAX];
    for (int k = 0; k < COUNT(PRE); k++)
        if (present(c, PRE[k].when, s->first, s->last, global)) {
            add_spec(t, c, &PRE[k], PRE[k].name, owner, stage);
            /* the last stage's copy of the tied word embedding */
            if (PRE[k].when == WORD && !s->first) t->p[t->n - 1].shared = 1;
        }
    for (int l = s->layer0; l < s->layer0 + s->nlayers; l++)
        for (int k = 0; k < COUNT(LAYER); k++)
            if (present(c, LAYER[k].when, s->first, s->last, global)) {
                snprintf(name, sizeof name, "decoder.layers.%d.%s", l, LAYER[k].name);
                add_spec(t, c, &LAYER[k], name, owner, stage);
            }
    for (int k = 0; k < COUNT(POST); k++)
        if (present(c, POST[k].when, s->first, s->last, global))
            add_spec(t, c, &POST[k], POST[k].name, owner, stage);
}

void mt_layout_stage_table(const struct mt_transformer_config *c, const struct mt_stage *s,
                           struct mt_param_table *t)
{
    mt_params_init(t, s->tp, s->tp_rank);
    add_stage(t, c, s, 0, NULL, 0);
}

void mt_layout_global_table(const struct mt_transformer_config *c, int pp,
                            struct mt_param_table *t, int *owner_stage)
{
    mt_params_init(t, 1, 0);
    const int per = c->num_layers / pp;
    for (int k = 0; k < pp; k++) {
        struct mt_stage s = {1, 0, k == 0, k == pp - 1, k * per, per};
        add_stage(t, c, &s, 1, owner_stage, k);
    }
}

int mt_layout_max_tensors(const struct mt_transformer_config *c)
{
    return COUNT(PRE) + COUNT(POST) + c->num_layers * COUNT(LAYER);
}

/* ---- views ------------------------------------------------------------------ */

static mt_tensor view_of(const struct mt_param_table *t, float *base, const char *name)
{
    int i = mt_params_find(t, name);
    if (i < 0) return mt_f32(NULL, 0, 0);
    const struct mt_param *p = &t->p[i];
    return mt_f32(base + p->offset, p->ndim == 1 ? 1 : p->local_shape[0],
                  p->ndim == 1 ? p->local_shape[0] : p->local_shape[1]);
}

static void fill(void *view, const struct param_spec *specs, int n, const struct mt_param_table *t,
                 float *base, int layer)
{
    char name[MT_PARAM_NAME_MAX];
    for (int k = 0; k < n; k++) {
        if (layer >= 0) snprintf(name, sizeof name, "decoder.layers.%d.%s", layer, specs[k].name);
        else snprintf(name, sizeof name, "%s", specs[k].name);
        *(mt_tensor *)((char *)view + specs[k].view_offset) = view_of(t, base, name);
    }
}

void mt_layout_views(const struct mt_transformer_config *c, const struct mt_stage *s,
                     const struct mt_param_table *t, float *base, struct mt_model_view *v)
{
    memset(v, 0, sizeof *v);
    fill(v, PRE, COUNT(PRE), t, base, -1);
    fill(v, POST, COUNT(POST), t, base, -1);
    if (s->last && !c->untie_embeddings_and_output_weights && c->lm_head != MT_LM_HEAD_NONE)
        v->output = v->word;
    v->layers = calloc((size_t)(s->nlayers > 0 ? s->nlayers : 1), sizeof *v->layers);
    if (!v->layers) mt_die("out of memory");
    for (int k = 0; k < s->nlayers; k++) fill(&v->layers[k], LAYER, COUNT(LAYER), t, base, s->layer0 + k);
}

void mt_layout_free_views(struct mt_model_view *v)
{
    free(v->layers);
    v->layers = NULL;
}

/* ---- activation buffers ------------------------------------------------------- */

enum act_dim {
    ONE, TOKENS, TOKENS2, SEQ, ATT_ROWS, ATT_COLS, A_HIDDEN, A_QKV, A_ATTN, A_FC1, A_FFN, VOCAB_REAL, SEQS,
    SEQS2, A_CLASSES
};
enum act_when {
    A_ALWAYS, A_LAYERNORM, A_FINAL_NORM, A_FINAL_NORM_MEAN, A_LM, A_BERT_LM, A_SEQ, A_POOLER,
    A_POST_LN
};

struct act_spec {
    enum act_dim rows, cols;
    enum act_when when;
    size_t offset;
};

/* the widths named in layout.h, mapped onto the local dims */
#define ACT_DIM_HIDDEN A_HIDDEN
#define ACT_DIM_QKV A_QKV
#define ACT_DIM_ATTN A_ATTN
#define ACT_DIM_FC1 A_FC1
#define ACT_DIM_FFN A_FFN
#define ACT_DIM_ONE ONE
#define ACT_DIM_TOKENS TOKENS
#define ACT_DIM_TOKENS2 TOKENS2
#define ACT_DIM_SEQ SEQ
#define ACT_DIM_ATT_ROWS ATT_ROWS
#define ACT_DIM_ATT_COLS ATT_COLS
#define ACT_DIM_VOCAB_REAL VOCAB_REAL
#define ACT_DIM_SEQS SEQS
#define ACT_DIM_SEQS2 SEQS2
#define ACT_DIM_CLASSES A_CLASSES
#define ACT_WHEN_ALWAYS A_ALWAYS
#define ACT_WHEN_LAYERNORM A_LAYERNORM
#define ACT_WHEN_FINAL_NORM A_FINAL_NORM
#define ACT_WHEN_FINAL_NORM_MEAN A_FINAL_NORM_MEAN
#define ACT_WHEN_LM A_LM
#define ACT_WHEN_BERT_LM A_BERT_LM
#define ACT_WHEN_SEQ A_SEQ
#define ACT_WHEN_POOLER A_POOLER
#define ACT_WHEN_POST_LN A_POST_LN
#define LAYER_ACT_(field, rows, cols, when) \
    {ACT_DIM_##rows, ACT_DIM_##cols, ACT_WHEN_##when, offsetof(struct mt_layer_acts, field)},
#define HEAD_ACT_(field, rows, cols, when) \
    {ACT_DIM_##rows, ACT_DIM_##cols, ACT_WHEN_##when, offsetof(struct mt_head_acts, field)},
#define GRAD_BUF_(field, rows, cols, when) \
    {ACT_DIM_##rows, ACT_DIM_##cols, ACT_WHEN_##when, offsetof(struct mt_grad_bufs, field)},
static const struct act_spec LAYER_ACTS[] = {MT_LAYER_ACTS(LAYER_ACT_)};
static const struct act_spec HEAD_ACTS[] = {MT_HEAD_ACTS(HEAD_ACT_)};
static const struct act_spec GRAD_BUFS[] = {MT_GRAD_BUFS(GRAD_BUF_)};
#define EMBED_ACT_(field, rows, cols, when) \
    {ACT_DIM_##rows, ACT_DIM_##cols, ACT_WHEN_##when, offsetof(struct mt_embed_acts, field)},
static const struct act_spec EMBED_ACTS[] = {MT_EMBED_ACTS(EMBED_ACT_)};

void mt_layout_act_dims(const struct mt_transformer_config *c, int tp, int tp_rank, int B, int T,
                        int flash, struct mt_act_dims *d)
{
    const int64_t vshard = c->padded_vocab_size / tp, v0 = (int64_t)tp_rank * vshard;
    int64_t real = c->vocab_size - v0;
    d->tokens = (int64_t)B * T;
    d->seq = T;
    d->att_rows = (int64_t)B * (c->num_attention_heads / tp) * T;
    d->att_cols = flash ? 1 : T;
    d->hidden = c->hidden_size;
    d->qkv = mt_config_qkv_width(c) / tp;
    d->attn = mt_config_attn_width(c) / tp;
    d->fc1 = mt_config_fc1_width(c) / tp;
    d->ffn = c->ffn_hidden_size / tp;
    d->vocab_real = real < 0 ? 0 : real > vshard ? vshard : real;
    d->seqs = B;
    d->classes = mt_config_seq_classes(c);
}

static int64_t act_dim(const struct mt_act_dims *d, enum act_dim a)
{
    switch (a) {
    case ONE: return 1;
    case TOKENS: return d->tokens;
    case TOKENS2: return 2 * d->tokens;
    case SEQ: return d->seq;
    case ATT_ROWS: return d->att_rows;
    case ATT_COLS: return d->att_cols;
    case A_HIDDEN: return d->hidden;
    case A_QKV: return d->qkv;
    case A_ATTN: return d->attn;
    case A_FC1: return d->fc1;
    case A_FFN: return d->ffn;
    case VOCAB_REAL: return d->vocab_real;
    case SEQS: return d->seqs;
    case SEQS2: return 2 * d->seqs;
    case A_CLASSES: return d->classes;
    }
    return 0;
}

static int act_present(const struct mt_transformer_config *c, enum act_when w)
{
    const int layernorm = c->normalization == MT_NORM_LAYERNORM;
    switch (w) {
    case A_ALWAYS: return 1;
    case A_LAYERNORM: return layernorm;
    case A_FINAL_NORM: return !c->post_layernorm;
    case A_FINAL_NORM_MEAN: return !c->post_layernorm && layernorm;
    case A_LM: return c->lm_head != MT_LM_HEAD_NONE;
    case A_BERT_LM: return c->lm_head == MT_LM_HEAD_BERT;
    case A_SEQ: return c->seq_head != MT_SEQ_HEAD_NONE;
    case A_POOLER: return c->add_pooler;
    case A_POST_LN: return c->post_layernorm;
    }
    return 0;
}

/* keep(offset): whether the member at that offset is allocated (NULL: all) */
static void alloc_set_if(mt_backend *be, const struct mt_transformer_config *c, const struct mt_act_dims *d,
                         const struct act_spec *specs, int n, void *set, int (*keep)(size_t, size_t),
                         size_t arg)
{
    memset(set, 0, (size_t)n * sizeof(mt_tensor));
    for (int k = 0; k < n; k++) {
        mt_tensor *t = (mt_tensor *)((char *)set + specs[k].offset);
        if (!act_present(c, specs[k].when) || (keep && !keep(specs[k].offset, arg))) continue;
        *t = mt_tensor_alloc(be, MT_DTYPE_F32, act_dim(d, specs[k].rows), act_dim(d, specs[k].cols));
    }
}

static void alloc_set(mt_backend *be, const struct mt_transformer_config *c,
                      const struct mt_act_dims *d, const struct act_spec *specs, int n, void *set)
{
    alloc_set_if(be, c, d, specs, n, set, NULL, 0);
}

size_t mt_layout_layer_acts_bytes(const struct mt_transformer_config *c, const struct mt_act_dims *d)
{
    size_t n = 0;
    for (int k = 0; k < COUNT(LAYER_ACTS); k++)
        if (act_present(c, LAYER_ACTS[k].when))
            n += (size_t)(act_dim(d, LAYER_ACTS[k].rows) * act_dim(d, LAYER_ACTS[k].cols));
    return n * sizeof(float);
}

static int is_member(size_t offset, size_t which) { return offset == which; }
static int not_member(size_t offset, size_t which) { return offset != which; }

void mt_layout_alloc_layer_part(mt_backend *be, const struct mt_transformer_config *c,
                                const struct mt_act_dims *d, struct mt_layer_acts *a,
                                enum mt_layer_part part)
{
    const size_t out = c->post_layernorm ? offsetof(struct mt_layer_acts, ln2)
                                         : offsetof(struct mt_layer_acts, resid3);
    if (part == MT_LAYER_OUTPUT)
        alloc_set_if(be, c, d, LAYER_ACTS, COUNT(LAYER_ACTS), a, is_member, out);
    else
        alloc_set_if(be, c, d, LAYER_ACTS, COUNT(LAYER_ACTS), a, not_member, offsetof(struct mt_layer_acts, att));
}

static void free_set(mt_backend *be, const struct act_spec *specs, int n, void *set)
{
    for (int k = 0; k < n; k++) mt_tensor_free(be, (mt_tensor *)((char *)set + specs[k].offset));
}

void mt_layout_alloc_layer_acts(mt_backend *be, const struct mt_transformer_config *c,
                                const struct mt_act_dims *d, struct mt_layer_acts *a)
{
    alloc_set(be, c, d, LAYER_ACTS, COUNT(LAYER_ACTS), a);
}

void mt_layout_free_layer_acts(mt_backend *be, struct mt_layer_acts *a)
{
    free_set(be, LAYER_ACTS, COUNT(LAYER_ACTS), a);
}

void mt_layout_alloc_head_acts(mt_backend *be, const struct mt_transformer_config *c,
                               const struct mt_act_dims *d, struct mt_head_acts *a)
{
    alloc_set(be, c, d, HEAD_ACTS, COUNT(HEAD_ACTS), a);
}

void mt_layout_free_head_acts(mt_backend *be, struct mt_head_acts *a)
{
    free_set(be, HEAD_ACTS, COUNT(HEAD_ACTS), a);
}

void mt_layout_alloc_embed_acts(mt_backend *be, const struct mt_transformer_config *c,
                                const struct mt_act_dims *d, struct mt_embed_acts *a)
{
    alloc_set(be, c, d, EMBED_ACTS, COUNT(EMBED_ACTS), a);
}

void mt_layout_free_embed_acts(mt_backend *be, struct mt_embed_acts *a)
{
    free_set(be, EMBED_ACTS, COUNT(EMBED_ACTS), a);
}

void mt_layout_alloc_grad_bufs(mt_backend *be, const struct mt_transformer_config *c,
                               const struct mt_act_dims *d, struct mt_grad_bufs *g)
{
    alloc_set(be, c, d, GRAD_BUFS, COUNT(GRAD_BUFS), g);
}

void mt_layout_free_grad_bufs(mt_backend *be, struct mt_grad_bufs *g)
{
    free_set(be, GRAD_BUFS, COUNT(GRAD_BUFS), g);
}
