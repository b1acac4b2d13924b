/* gpt.c: the GPT model as a list of backend calls (forward) and the same
 * list reversed (backward). See gpt.h for the architecture and shapes. */
#include "model/gpt.h"
#include "core/error.h"
#include "core/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mt_gpt_padded_vocab(int vocab_size, int divisible_by)
{
    if (divisible_by < 1) divisible_by = 1;
    return (vocab_size + divisible_by - 1) / divisible_by * divisible_by;
}

int mt_gpt_check_parallel(const struct mt_gpt_config *c, int tp, int pp, char *err,
                          size_t errlen)
{
    /* Megatron's divide(): each split must be exact; say which numbers */
#define DIV(what, n, d, flag) \
    if ((n) % (d) != 0) { \
        snprintf(err, errlen, "%s (%d) is not divisible by %s (%d)", what, n, flag, d); \
        return -1; \
    }
    DIV("--num-attention-heads", c->num_heads, tp, "--tensor-model-parallel-size");
    DIV("--ffn-hidden-size", c->ffn_hidden_size, tp, "--tensor-model-parallel-size");
    DIV("the padded vocabulary", c->padded_vocab_size, tp, "--tensor-model-parallel-size");
    DIV("--num-layers", c->num_layers, pp, "--pipeline-model-parallel-size");
#undef DIV
    return 0;
}

/* Adds the tensors of one model stage to t, in the order of the flat buffer:
 * embeddings, then each layer's tensors together, then the final layernorm
 * (so that a pipeline stage owns a contiguous range of the global order).
 * The tied output layer of a last stage that lacks the embedding is a
 * shared copy of embedding.word_embeddings.weight. */
static void add_stage(struct mt_param_table *t, const struct mt_gpt_config *c, int first,
                      int last, int tied_copy, int l0, int l1, int *owner, int stage)
{
    const int C = c->hidden_size, F = c->ffn_hidden_size, L = c->num_layers;
    const float std = c->init_method_std;
    /* Megatron scaled_init_method_normal for the two output projections */
    const float out_std = std / sqrtf(2.0f * (float)L);
    char name[MT_PARAM_NAME_MAX];
#define OWN() if (owner) owner[t->n - 1] = stage
    if (first || (last && tied_copy)) {
        /* the vocab-parallel embedding and output layer: split rows */
        int i = mt_params_add(t, "embedding.word_embeddings.weight", c->padded_vocab_size, C, std, 0, 0);
        t->p[i].shared = !first;
        OWN();
    }
    if (first) {
        mt_params_add(t, "embedding.position_embeddings.weight", c->max_position_embeddings, C,
                      std, 0, -1);
        OWN();
    }
    for (int l = l0; l < l1; l++) {
#define ADD(suffix, rows, cols, s, v, split) \
    snprintf(name, sizeof name, "decoder.layers.%d.%s", l, suffix); \
    mt_params_add(t, name, rows, cols, s, v, split); \
    OWN()
        /* column-parallel layers split their output rows (and bias), row-parallel
         * layers their input columns; layernorms and row biases are replicated */
        ADD("input_layernorm.weight", 0, C, 0, 1, -1);
        ADD("input_layernorm.bias", 0, C, 0, 0, -1);
        ADD("self_attention.linear_qkv.weight", 3 * C, C, std, 0, 0);
        ADD("self_attention.linear_qkv.bias", 0, 3 * C, 0, 0, 0);
        ADD("self_attention.linear_proj.weight", C, C, out_std, 0, 1);
        ADD("self_attention.linear_proj.bias", 0, C, 0, 0, -1);
        ADD("pre_mlp_layernorm.weight", 0, C, 0, 1, -1);
        ADD("pre_mlp_layernorm.bias", 0, C, 0, 0, -1);
        ADD("mlp.linear_fc1.weight", F, C, std, 0, 0);
        ADD("mlp.linear_fc1.bias", 0, F, 0, 0, 0);
        ADD("mlp.linear_fc2.weight", C, F, out_std, 0, 1);
        ADD("mlp.linear_fc2.bias", 0, C, 0, 0, -1);
#undef ADD
    }
    if (last) {
        mt_params_add(t, "decoder.final_layernorm.weight", 0, C, 0, 1, -1);
        OWN();
        mt_params_add(t, "decoder.final_layernorm.bias", 0, C, 0, 0, -1);
        OWN();
    }
#undef OWN
}

void mt_gpt_global_table(const struct mt_gpt_config *c, int pp, struct mt_param_table *t,
                         int *owner_stage)
{
    /* the stages one after another, without the last stage's shared copy of
     * the tied output layer: every tensor once, in flat-buffer order */
    mt_params_init(t, 1, 0);
    const int per = c->num_layers / pp;
    for (int s = 0; s < pp; s++)
        add_stage(t, c, s == 0, s == pp - 1, 0, s * per, (s + 1) * per, owner_stage, s);
}

/* Fills a view from a flat buffer by name. */
static float *find(const struct mt_param_table *t, float *base, const char *name)
{
    int i = mt_params_find(t, name);
    return i < 0 ? NULL : base + t->p[i].offset;
}

static void make_view(struct mt_gpt_view *v, const struct mt_param_table *t, float *base,
                      int layer0, int nlayers)
{
    char name[MT_PARAM_NAME_MAX];
    v->wte = find(t, base, "embedding.word_embeddings.weight");
    v->wpe = find(t, base, "embedding.position_embeddings.weight");
    v->lnfw = find(t, base, "decoder.final_layernorm.weight");
    v->lnfb = find(t, base, "decoder.final_layernorm.bias");
    v->layers = calloc((size_t)(nlayers > 0 ? nlayers : 1), sizeof *v->layers);
    if (!v->layers) mt_die("out of memory");
    for (int k = 0; k < nlayers; k++) {
        struct mt_gpt_layer_view *lv = &v->layers[k];
        static const char *suffix[] = {
            "input_layernorm.weight", "input_layernorm.bias",
            "self_attention.linear_qkv.weight", "self_attention.linear_qkv.bias",
            "self_attention.linear_proj.weight", "self_attention.linear_proj.bias",
            "pre_mlp_layernorm.weight", "pre_mlp_layernorm.bias",
            "mlp.linear_fc1.weight", "mlp.linear_fc1.bias",
            "mlp.linear_fc2.weight", "mlp.linear_fc2.bias"};
        float **slots[] = {&lv->ln1w, &lv->ln1b, &lv->qkvw, &lv->qkvb, &lv->projw, &lv->projb,
                           &lv->ln2w, &lv->ln2b, &lv->fc1w, &lv->fc1b, &lv->fc2w, &lv->fc2b};
        for (size_t s = 0; s < sizeof slots / sizeof slots[0]; s++) {
            snprintf(name, sizeof name, "decoder.layers.%d.%s", layer0 + k, suffix[s]);
            *slots[s] = find(t, base, name);
            MT_ASSERT(*slots[s]);
        }
    }
}

static float *falloc(mt_backend *be, size_t n) { return mt_alloc(be, n * sizeof(float)); }

static void slot_alloc(struct mt_gpt *m, struct mt_gpt_slot *s)
{
    mt_backend *be = m->be;
    const size_t C = (size_t)m->cfg.hidden_size, N = (size_t)m->B * (size_t)m->T;
    const size_t BHTT = (size_t)m->B * m->NH_tp * (size_t)m->T * (size_t)m->T;
    s->tokens = mt_alloc(be, N * sizeof(int32_t));
    s->targets = mt_alloc(be, N * sizeof(int32_t));
    s->encoded = falloc(be, N * C);
    s->acts = calloc((size_t)(m->nlayers > 0 ? m->nlayers : 1), sizeof *s->acts);
    if (!s->acts) mt_die("out of memory");
    for (int l = 0; l < m->nlayers; l++) {
        struct mt_gpt_layer_acts *a = &s->acts[l];
        a->ln1 = falloc(be, N * C);
        a->ln1_mean = falloc(be, N);
        a->ln1_rstd = falloc(be, N);
        a->qkv = falloc(be, N * 3 * m->C_tp);
        a->att = falloc(be, BHTT);
        a->atty = falloc(be, N * m->C_tp);
        a->resid2 = falloc(be, N * C);
        a->ln2 = falloc(be, N * C);
        a->ln2_mean = falloc(be, N);
        a->ln2_rstd = falloc(be, N);
        a->fch = falloc(be, N * m->F_tp);
        a->fch_gelu = falloc(be, N * m->F_tp);
        a->resid3 = falloc(be, N * C);
    }
    if (m->last) {
        s->lnf = falloc(be, N * C);
        s->lnf_mean = falloc(be, N);
        s->lnf_rstd = falloc(be, N);
        s->logits = falloc(be, N * m->Vp_tp);
        s->rowmax = falloc(be, N);
        s->sumexp_tgt = falloc(be, 2 * N);
        s->losses = falloc(be, N);
    }
}

static void slot_free(struct mt_gpt *m, struct mt_gpt_slot *s)
{
    mt_backend *be = m->be;
    for (int l = 0; l < m->nlayers; l++) {
        struct mt_gpt_layer_acts *a = &s->acts[l];
        float *bufs[] = {a->ln1, a->ln1_mean, a->ln1_rstd, a->qkv,      a->att,
                         a->atty, a->resid2,  a->ln2,      a->ln2_mean, a->ln2_rstd,
                         a->fch,  a->fch_gelu, a->resid3};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mt_dealloc(be, bufs[i]);
    }
    float *bufs[] = {s->encoded, s->lnf, s->lnf_mean, s->lnf_rstd, s->logits,
                     s->rowmax, s->sumexp_tgt, s->losses};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mt_dealloc(be, bufs[i]);
    mt_dealloc(be, s->tokens);
    mt_dealloc(be, s->targets);
    free(s->acts);
}

void mt_gpt_init_parallel(struct mt_gpt *m, const struct mt_gpt_config *cfg, mt_backend *be,
                          int B, int T, const struct mt_gpt_par *par, int nslots)
{
    char err[256];
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->par = *par;
    m->be = be;
    MT_ASSERT(cfg->hidden_size % cfg->num_heads == 0);
    MT_ASSERT(T <= cfg->max_position_embeddings && nslots >= 1);
    if (mt_gpt_check_parallel(cfg, par->tp, par->pp, err, sizeof err) != 0)
        mt_user_error("choose sizes that divide evenly", "%s", err);
    const int per = cfg->num_layers / par->pp;
    m->layer0 = par->pp_rank * per;
    m->nlayers = per;
    m->first = par->pp_rank == 0;
    m->last = par->pp_rank == par->pp - 1;
    m->C_tp = cfg->hidden_size / par->tp;
    m->F_tp = cfg->ffn_hidden_size / par->tp;
    m->NH_tp = cfg->num_heads / par->tp;
    m->Vp_tp = cfg->padded_vocab_size / par->tp;

    mt_params_init(&m->table, par->tp, par->tp_rank);
    add_stage(&m->table, cfg, m->first, m->last, 1, m->layer0, m->layer0 + per, NULL, 0);
    size_t P = m->table.total;
    m->params = falloc(be, P);
    m->grads = falloc(be, P);
    mt_memset0(be, m->params, P * sizeof(float));
    mt_memset0(be, m->grads, P * sizeof(float));
    make_view(&m->w, &m->table, m->params, m->layer0, m->nlayers);
    make_view(&m->g, &m->table, m->grads, m->layer0, m->nlayers);

    const size_t C = (size_t)cfg->hidden_size, N = (size_t)B * (size_t)T;
    const size_t BHTT = (size_t)B * m->NH_tp * (size_t)T * (size_t)T;
    m->B = B;
    m->T = T;
    m->nslots = nslots;
    m->slots = calloc((size_t)nslots, sizeof *m->slots);
    if (!m->slots) mt_die("out of memory");
    for (int k = 0; k < nslots; k++) slot_alloc(m, &m->slots[k]);
    m->logits = m->slots[0].logits;
    m->dresid = falloc(be, N * C);
    m->dbuf_c = falloc(be, N * C);
    m->dqkv = falloc(be, N * 3 * m->C_tp);
    m->datt = falloc(be, BHTT);
    m->dfch = falloc(be, N * m->F_tp);
    m->dlosses = falloc(be, N);
    m->losses_host = malloc(N * sizeof(float));
    if (!m->losses_host) mt_die("out of memory");
}

void mt_gpt_init(struct mt_gpt *m, const struct mt_gpt_config *cfg, mt_backend *be, int B, int T)
{
    /* a group of one of our own: the tensor-parallel collectives become no-ops */
    mt_comm *world = mt_comm_world(be);
    mt_comm *self = mt_comm_split(be, world, mt_comm_rank(be, world), 0);
    struct mt_gpt_par par = {self, 1, 0, 1, 0};
    mt_gpt_init_parallel(m, cfg, be, B, T, &par, 1);
    m->own_comm = self;
}

void mt_gpt_free(struct mt_gpt *m)
{
    mt_backend *be = m->be;
    if (!be) return;
    for (int k = 0; k < m->nslots; k++) slot_free(m, &m->slots[k]);
    float *bufs[] = {m->params, m->grads, m->dresid, m->dbuf_c, m->dqkv, m->datt, m->dfch,
                     m->dlosses};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mt_dealloc(be, bufs[i]);
    free(m->slots);
    free(m->w.layers);
    free(m->g.layers);
    free(m->losses_host);
    mt_params_free(&m->table);
    if (m->own_comm) mt_comm_free(be, m->own_comm);
    memset(m, 0, sizeof *m);
}

void mt_gpt_init_weights(struct mt_gpt *m, uint64_t seed)
{
    /* draw every tensor of the whole model in global order, keep ours */
    struct mt_param_table g;
    mt_gpt_global_table(&m->cfg, 1, &g, NULL);
    struct mt_rng rng;
    mt_rng_seed(&rng, seed, /* purpose: weights */ 1);
    size_t maxn = 0;
    for (int i = 0; i < g.n; i++)
        if (g.p[i].numel > maxn) maxn = g.p[i].numel;
    float *host = malloc(maxn * sizeof(float)), *shard = malloc(maxn * sizeof(float));
    if (!host || !shard) mt_die("out of memory");
    for (int i = 0; i < g.n; i++) {
        const struct mt_param *gp = &g.p[i];
        for (size_t j = 0; j < gp->numel; j++)
            host[j] = gp->init_std > 0 ? (float)(mt_rng_normal(&rng) * gp->init_std) : gp->init_value;
        int k = mt_params_find(&m->table, gp->name);
        if (k < 0) continue;
        const struct mt_param *p = &m->table.p[k];
        mt_param_shard(p, m->par.tp, m->par.tp_rank, host, shard);
        mt_upload(m->be, m->params + p->offset, shard, p->numel * sizeof(float));
    }
    free(host);
    free(shard);
    mt_params_free(&g);
}

void mt_gpt_get_param(struct mt_gpt *m, int idx, float *host)
{
    const struct mt_param *p = &m->table.p[idx];
    mt_download(m->be, host, m->params + p->offset, p->numel * sizeof(float));
}

void mt_gpt_set_param(struct mt_gpt *m, int idx, const float *host)
{
    const struct mt_param *p = &m->table.p[idx];
    mt_upload(m->be, m->params + p->offset, host, p->numel * sizeof(float));
}

void mt_gpt_get_grad(struct mt_gpt *m, int idx, float *host)
{
    const struct mt_param *p = &m->table.p[idx];
    mt_download(m->be, host, m->grads + p->offset, p->numel * sizeof(float));
}

void mt_gpt_zero_grad(struct mt_gpt *m)
{
    mt_memset0(m->be, m->grads, m->table.total * sizeof(float));
}

/* y (N,out) = x (N,in) . w (out,in)^T + b (out) */
static void linear_fwd(mt_backend *be, float *y, const float *x, const float *w, const float *b,
                       int N, int in, int out)
{
    mt_matmul_xwt(be, y, x, w, N, in, out, 0.0f);
    if (b) mt_bias_add(be, y, b, N, out);
}

/* Backward of linear_fwd: dw += dy^T x ; db += colsum(dy) ; dx = dy w (overwrites) */
static void linear_bwd(mt_backend *be, float *dx, float *dw, float *db, const float *dy,
                       const float *x, const float *w, int N, int in, int out)
{
    struct mt_gemm_args g = {
        .ta = MT_TRANS_T, .tb = MT_TRANS_N, .m = out, .n = in, .k = N, .batch = 1,
        .alpha = 1.0f, .beta = 1.0f,
        .a = dy, .lda = out, .b = x, .ldb = in, .c = dw, .ldc = in};
    mt_gemm(be, &g);
    if (db) mt_bias_bwd(be, db, dy, N, out);
    if (dx) {
        struct mt_gemm_args d = {
            .ta = MT_TRANS_N, .tb = MT_TRANS_N, .m = N, .n = in, .k = out, .batch = 1,
            .alpha = 1.0f, .beta = 0.0f,
            .a = dy, .lda = out, .b = w, .ldb = in, .c = dx, .ldc = in};
        mt_gemm(be, &d);
    }
}

/* The tensor-parallel mappings (Megatron mappings.py). "g": forward
 * all-reduce after a row-parallel layer; "f": backward all-reduce of the
 * input gradient of a column-parallel layer. Group of one: nothing. */
static void tp_all_reduce(struct mt_gpt *m, float *x, size_t n)
{
    mt_all_reduce(m->be, m->par.tp_comm, x, n, MT_DTYPE_F32, MT_REDOP_SUM);
}

/* One transformer block over rows x (N,C) for B sequences of T positions,
 * queries from t0 (t0 > 0 only when decoding, where qkv rows [0,t0) are the
 * cached keys and values and the other buffers hold rows from t0 on).
 * Column-parallel QKV and fc1 produce this rank's heads / columns;
 * row-parallel proj and fc2 produce partial sums, all-reduced before the
 * bias (added once) and the residual. */
static void block_fwd(struct mt_gpt *m, struct mt_gpt_layer_acts *a,
                      const struct mt_gpt_layer_view *w, const float *x, int B, int T, int t0)
{
    mt_backend *be = m->be;
    const int C = m->cfg.hidden_size, Ct = m->C_tp, Ft = m->F_tp, NHt = m->NH_tp;
    const int HS = C / m->cfg.num_heads, N = B * (T - t0);

    mt_layernorm_fwd(be, a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1w, w->ln1b, N, C);
    linear_fwd(be, a->qkv + (size_t)t0 * 3 * Ct, a->ln1, w->qkvw, w->qkvb, N, C, 3 * Ct);
    mt_attn_fwd(be, a->atty, a->att, a->qkv, B, T, t0, NHt, HS);
    mt_matmul_xwt(be, a->resid2, a->atty, w->projw, N, Ct, C, 0.0f);
    tp_all_reduce(m, a->resid2, (size_t)N * C);
    mt_bias_add(be, a->resid2, w->projb, N, C);
    mt_add(be, a->resid2, a->resid2, x, (size_t)N * C);
    mt_layernorm_fwd(be, a->ln2, a->ln2_mean, a->ln2_rstd, a->resid2, w->ln2w, w->ln2b, N, C);
    linear_fwd(be, a->fch, a->ln2, w->fc1w, w->fc1b, N, C, Ft);
    mt_gelu_fwd(be, a->fch_gelu, a->fch, (size_t)N * Ft);
    mt_matmul_xwt(be, a->resid3, a->fch_gelu, w->fc2w, N, Ft, C, 0.0f);
    tp_all_reduce(m, a->resid3, (size_t)N * C);
    mt_bias_add(be, a->resid3, w->fc2b, N, C);
    mt_add(be, a->resid3, a->resid3, a->resid2, (size_t)N * C);
}

/* Vocab-parallel embedding: each rank looks up the rows of its shard (zero
 * elsewhere), tp rank 0 adds the positions, then all-reduce. */
static void embed_fwd(struct mt_gpt *m, float *out, const int32_t *tok, int B, int T, int pos0)
{
    const int C = m->cfg.hidden_size;
    mt_embed_fwd(m->be, out, tok, m->w.wte, m->par.tp_rank == 0 ? m->w.wpe : NULL, B, T, C,
                 pos0, m->par.tp_rank * m->Vp_tp, m->Vp_tp);
    tp_all_reduce(m, out, (size_t)B * T * C);
}

/* Final layernorm and the tied output layer (column-parallel over the
 * vocabulary: this rank's Vp/tp logits of each row; never gathered). */
static void head_fwd(struct mt_gpt *m, struct mt_gpt_slot *s, const float *x, int N)
{
    const int C = m->cfg.hidden_size;
    mt_layernorm_fwd(m->be, s->lnf, s->lnf_mean, s->lnf_rstd, x, m->w.lnfw, m->w.lnfb, N, C);
    mt_matmul_xwt(m->be, s->logits, s->lnf, m->w.wte, N, C, m->Vp_tp, 0.0f);
}

/* Vocab-parallel cross-entropy (Megatron cross_entropy.py): max, then sum of
 * exponentials and the target logit, each all-reduced over the tp group. */
static float loss_fwd(struct mt_gpt *m, struct mt_gpt_slot *s, int N)
{
    mt_backend *be = m->be;
    const int V = m->Vp_tp, off = m->par.tp_rank * m->Vp_tp;
    mt_xent_max(be, s->rowmax, s->logits, N, V, V);
    mt_all_reduce(be, m->par.tp_comm, s->rowmax, (size_t)N, MT_DTYPE_F32, MT_REDOP_MAX);
    mt_xent_sumexp(be, s->sumexp_tgt, s->sumexp_tgt + N, s->logits, s->rowmax, s->targets, N, V,
                   off, V);
    tp_all_reduce(m, s->sumexp_tgt, 2 * (size_t)N);
    mt_xent_loss(be, s->losses, s->rowmax, s->sumexp_tgt, s->sumexp_tgt + N, N);
    mt_download(be, m->losses_host, s->losses, (size_t)N * sizeof(float));
    /* mean in double, in index order: the same on every backend and layout */
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += m->losses_host[i];
    return (float)(sum / N);
}

float *mt_gpt_stage_input(struct mt_gpt *m, int slot) { return m->slots[slot].encoded; }

const float *mt_gpt_stage_output(struct mt_gpt *m, int slot)
{
    struct mt_gpt_slot *s = &m->slots[slot];
    return m->nlayers > 0 ? s->acts[m->nlayers - 1].resid3 : s->encoded;
}

float *mt_gpt_stage_dinput(struct mt_gpt *m) { return m->dresid; }

float mt_gpt_stage_forward(struct mt_gpt *m, int slot, const int32_t *tokens,
                           const int32_t *targets, int B, int T)
{
    mt_backend *be = m->be;
    MT_ASSERT(slot >= 0 && slot < m->nslots);
    MT_ASSERT(B * T <= m->B * m->T && T <= m->T);
    struct mt_gpt_slot *s = &m->slots[slot];
    const int N = B * T;
    s->B = B;
    s->T = T;
    if (m->first) {
        mt_upload(be, s->tokens, tokens, (size_t)N * sizeof(int32_t));
        embed_fwd(m, s->encoded, s->tokens, B, T, 0);
    }
    const float *x = s->encoded;
    for (int l = 0; l < m->nlayers; l++) {
        block_fwd(m, &s->acts[l], &m->w.layers[l], x, B, T, 0);
        x = s->acts[l].resid3;
    }
    s->has_targets = 0;
    if (!m->last) return 0.0f;
    head_fwd(m, s, x, N);
    m->logits = s->logits;
    if (!targets) return 0.0f;
    s->has_targets = 1;
    mt_upload(be, s->targets, targets, (size_t)N * sizeof(int32_t));
    return loss_fwd(m, s, N);
}

void mt_gpt_stage_backward(struct mt_gpt *m, int slot, float dloss_scale)
{
    mt_backend *be = m->be;
    const int C = m->cfg.hidden_size, HS = C / m->cfg.num_heads;
    const int Ct = m->C_tp, Ft = m->F_tp, NHt = m->NH_tp, Vt = m->Vp_tp;
    struct mt_gpt_slot *s = &m->slots[slot];
    const int B = s->B, T = s->T, N = B * T;

    if (m->last) {
        MT_ASSERT(s->has_targets);
        /* d mean(losses) / d losses[n] = 1/N, times the micro-batch weight */
        for (int i = 0; i < N; i++) m->losses_host[i] = dloss_scale / (float)N;
        mt_upload(be, m->dlosses, m->losses_host, (size_t)N * sizeof(float));
        /* dlogits overwrite the logits in place (N, Vp/tp) */
        float *dlogits = s->logits;
        mt_xent_bwd(be, dlogits, m->dlosses, s->logits, s->rowmax, s->sumexp_tgt, s->targets, N,
                    Vt, m->par.tp_rank * Vt, Vt);
        s->has_targets = 0; /* the logits are gone: a second backward needs a new forward */
        /* logits = lnf . wte^T: dwte += dlogits^T lnf ; dlnf = dlogits wte (partial: f) */
        linear_bwd(be, m->dbuf_c, m->g.wte, NULL, dlogits, s->lnf, m->w.wte, N, C, Vt);
        tp_all_reduce(m, m->dbuf_c, (size_t)N * C);
        const float *xlast = mt_gpt_stage_output(m, slot);
        mt_memset0(be, m->dresid, (size_t)N * C * sizeof(float));
        mt_layernorm_bwd(be, m->dresid, m->g.lnfw, m->g.lnfb, m->dbuf_c, xlast, m->w.lnfw,
                         s->lnf_mean, s->lnf_rstd, N, C);
    }
    /* else: the caller received d(stage output) into m->dresid */

    for (int l = m->nlayers - 1; l >= 0; l--) {
        const struct mt_gpt_layer_view *w = &m->w.layers[l];
        const struct mt_gpt_layer_view *g = &m->g.layers[l];
        struct mt_gpt_layer_acts *a = &s->acts[l];
        const float *x = l > 0 ? s->acts[l - 1].resid3 : s->encoded;
        /* dresid = d resid3. resid3 = resid2 + fc2(gelu(fc1(ln2(resid2)))) */
        linear_bwd(be, m->dfch, g->fc2w, g->fc2b, m->dresid, a->fch_gelu, w->fc2w, N, Ft, C);
        mt_gelu_bwd(be, m->dfch, a->fch, m->dfch, (size_t)N * Ft);
        linear_bwd(be, m->dbuf_c, g->fc1w, g->fc1b, m->dfch, a->ln2, w->fc1w, N, C, Ft);
        tp_all_reduce(m, m->dbuf_c, (size_t)N * C);
        mt_layernorm_bwd(be, m->dresid, g->ln2w, g->ln2b, m->dbuf_c, a->resid2, w->ln2w,
                         a->ln2_mean, a->ln2_rstd, N, C);
        /* dresid = d resid2. resid2 = x + proj(attn(qkv(ln1(x)))) */
        linear_bwd(be, m->dbuf_c, g->projw, g->projb, m->dresid, a->atty, w->projw, N, Ct, C);
        mt_attn_bwd(be, m->dqkv, m->datt, m->dbuf_c, a->qkv, a->att, B, T, NHt, HS);
        linear_bwd(be, m->dbuf_c, g->qkvw, g->qkvb, m->dqkv, a->ln1, w->qkvw, N, C, 3 * Ct);
        tp_all_reduce(m, m->dbuf_c, (size_t)N * C);
        mt_layernorm_bwd(be, m->dresid, g->ln1w, g->ln1b, m->dbuf_c, x, w->ln1w, a->ln1_mean,
                         a->ln1_rstd, N, C);
        /* dresid = d x */
    }
    if (m->first)
        mt_embed_bwd(be, m->g.wte, m->g.wpe, m->dresid, s->tokens, B, T, C,
                     m->par.tp_rank * Vt, Vt);
}

float mt_gpt_forward(struct mt_gpt *m, const int32_t *tokens, const int32_t *targets, int B,
                     int T)
{
    MT_ASSERT(m->first && m->last);
    return mt_gpt_stage_forward(m, 0, tokens, targets, B, T);
}

void mt_gpt_backward(struct mt_gpt *m, float dloss_scale)
{
    MT_ASSERT(m->first && m->last);
    mt_gpt_stage_backward(m, 0, dloss_scale);
}

const float *mt_gpt_decode_prefill(struct mt_gpt *m, const int32_t *tokens, int n)
{
    MT_ASSERT(m->B == 1 && n >= 1 && n <= m->T);
    mt_gpt_forward(m, tokens, NULL, 1, n);
    return m->logits + (size_t)(n - 1) * m->Vp_tp;
}

const float *mt_gpt_decode_step(struct mt_gpt *m, int32_t token, int pos)
{
    MT_ASSERT(m->B == 1 && pos >= 1 && pos < m->T && m->first && m->last);
    struct mt_gpt_slot *s = &m->slots[0];
    mt_upload(m->be, s->tokens, &token, sizeof token);
    embed_fwd(m, s->encoded, s->tokens, 1, 1, pos);
    const float *x = s->encoded;
    for (int l = 0; l < m->nlayers; l++) {
        /* keys and values of positions [0, pos) are already in acts[l].qkv */
        block_fwd(m, &s->acts[l], &m->w.layers[l], x, 1, pos + 1, pos);
        x = s->acts[l].resid3;
    }
    head_fwd(m, s, x, 1);
    m->logits = s->logits;
    return s->logits;
}

size_t mt_gpt_param_count(const struct mt_gpt_config *cfg)
{
    struct mt_param_table t;
    mt_gpt_global_table(cfg, 1, &t, NULL);
    size_t n = 0;
    for (int i = 0; i < t.n; i++) n += t.p[i].numel;
    mt_params_free(&t);
    return n;
}
