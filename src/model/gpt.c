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

/* Builds the table in the order of the flat buffer: embeddings, then each
 * layer's tensors together (so that a pipeline stage owns a contiguous
 * range), then the final layernorm. */
static void build_table(struct mt_param_table *t, const struct mt_gpt_config *c)
{
    const int C = c->hidden_size, F = c->ffn_hidden_size, L = c->num_layers;
    const float std = c->init_method_std;
    /* Megatron scaled_init_method_normal for the two output projections */
    const float out_std = std / sqrtf(2.0f * (float)L);
    char name[MT_PARAM_NAME_MAX];
    mt_params_init(t);
    mt_params_add(t, "embedding.word_embeddings.weight", c->padded_vocab_size, C, std, 0);
    mt_params_add(t, "embedding.position_embeddings.weight", c->max_position_embeddings, C, std,
                  0);
    for (int l = 0; l < L; l++) {
#define ADD(suffix, rows, cols, s, v) \
    snprintf(name, sizeof name, "decoder.layers.%d.%s", l, suffix); \
    mt_params_add(t, name, rows, cols, s, v)
        ADD("input_layernorm.weight", 0, C, 0, 1);
        ADD("input_layernorm.bias", 0, C, 0, 0);
        ADD("self_attention.linear_qkv.weight", 3 * C, C, std, 0);
        ADD("self_attention.linear_qkv.bias", 0, 3 * C, 0, 0);
        ADD("self_attention.linear_proj.weight", C, C, out_std, 0);
        ADD("self_attention.linear_proj.bias", 0, C, 0, 0);
        ADD("pre_mlp_layernorm.weight", 0, C, 0, 1);
        ADD("pre_mlp_layernorm.bias", 0, C, 0, 0);
        ADD("mlp.linear_fc1.weight", F, C, std, 0);
        ADD("mlp.linear_fc1.bias", 0, F, 0, 0);
        ADD("mlp.linear_fc2.weight", C, F, out_std, 0);
        ADD("mlp.linear_fc2.bias", 0, C, 0, 0);
#undef ADD
    }
    mt_params_add(t, "decoder.final_layernorm.weight", 0, C, 0, 1);
    mt_params_add(t, "decoder.final_layernorm.bias", 0, C, 0, 0);
}

/* Fills a view from a flat buffer, relying on build_table's order. */
static void make_view(struct mt_gpt_view *v, const struct mt_param_table *t, float *base, int L)
{
    int i = 0;
    v->wte = base + t->p[i++].offset;
    v->wpe = base + t->p[i++].offset;
    v->layers = calloc((size_t)L, sizeof *v->layers);
    if (!v->layers) mt_die("out of memory");
    for (int l = 0; l < L; l++) {
        struct mt_gpt_layer_view *lv = &v->layers[l];
        float **slots[] = {&lv->ln1w, &lv->ln1b, &lv->qkvw, &lv->qkvb, &lv->projw, &lv->projb,
                           &lv->ln2w, &lv->ln2b, &lv->fc1w, &lv->fc1b, &lv->fc2w, &lv->fc2b};
        for (size_t s = 0; s < sizeof slots / sizeof slots[0]; s++)
            *slots[s] = base + t->p[i++].offset;
    }
    v->lnfw = base + t->p[i++].offset;
    v->lnfb = base + t->p[i++].offset;
    MT_ASSERT(i == t->n);
}

static float *falloc(mt_backend *be, size_t n) { return mt_alloc(be, n * sizeof(float)); }

void mt_gpt_init(struct mt_gpt *m, const struct mt_gpt_config *cfg, mt_backend *be, int B, int T)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    MT_ASSERT(cfg->hidden_size % cfg->num_heads == 0);
    MT_ASSERT(T <= cfg->max_position_embeddings);
    build_table(&m->table, cfg);
    size_t P = m->table.total;
    m->params = falloc(be, P);
    m->grads = falloc(be, P);
    mt_memset0(be, m->params, P * sizeof(float));
    mt_memset0(be, m->grads, P * sizeof(float));
    make_view(&m->w, &m->table, m->params, cfg->num_layers);
    make_view(&m->g, &m->table, m->grads, cfg->num_layers);

    const size_t C = (size_t)cfg->hidden_size, F = (size_t)cfg->ffn_hidden_size;
    const size_t NH = (size_t)cfg->num_heads, Vp = (size_t)cfg->padded_vocab_size;
    const size_t N = (size_t)B * (size_t)T, BHTT = (size_t)B * NH * (size_t)T * (size_t)T;
    m->B = B;
    m->T = T;
    m->tokens = mt_alloc(be, N * sizeof(int32_t));
    m->targets = mt_alloc(be, N * sizeof(int32_t));
    m->encoded = falloc(be, N * C);
    m->acts = calloc((size_t)cfg->num_layers, sizeof *m->acts);
    if (!m->acts) mt_die("out of memory");
    for (int l = 0; l < cfg->num_layers; l++) {
        struct mt_gpt_layer_acts *a = &m->acts[l];
        a->ln1 = falloc(be, N * C);
        a->ln1_mean = falloc(be, N);
        a->ln1_rstd = falloc(be, N);
        a->qkv = falloc(be, N * 3 * C);
        a->att = falloc(be, BHTT);
        a->atty = falloc(be, N * C);
        a->resid2 = falloc(be, N * C);
        a->ln2 = falloc(be, N * C);
        a->ln2_mean = falloc(be, N);
        a->ln2_rstd = falloc(be, N);
        a->fch = falloc(be, N * F);
        a->fch_gelu = falloc(be, N * F);
        a->resid3 = falloc(be, N * C);
    }
    m->lnf = falloc(be, N * C);
    m->lnf_mean = falloc(be, N);
    m->lnf_rstd = falloc(be, N);
    m->logits = falloc(be, N * Vp);
    m->rowmax = falloc(be, N);
    m->sumexp = falloc(be, N);
    m->tgt = falloc(be, N);
    m->losses = falloc(be, N);
    m->dlosses = falloc(be, N);
    m->dresid = falloc(be, N * C);
    m->dbuf_c = falloc(be, N * C);
    m->dqkv = falloc(be, N * 3 * C);
    m->datt = falloc(be, BHTT);
    m->dfch = falloc(be, N * F);
    m->losses_host = malloc(N * sizeof(float));
    if (!m->losses_host) mt_die("out of memory");
}

void mt_gpt_free(struct mt_gpt *m)
{
    mt_backend *be = m->be;
    if (!be) return;
    for (int l = 0; l < m->cfg.num_layers; l++) {
        struct mt_gpt_layer_acts *a = &m->acts[l];
        float *bufs[] = {a->ln1, a->ln1_mean, a->ln1_rstd, a->qkv,      a->att,
                         a->atty, a->resid2,  a->ln2,      a->ln2_mean, a->ln2_rstd,
                         a->fch,  a->fch_gelu, a->resid3};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mt_dealloc(be, bufs[i]);
    }
    float *bufs[] = {m->params, m->grads,  m->encoded, m->lnf,    m->lnf_mean, m->lnf_rstd,
                     m->logits, m->rowmax, m->sumexp,  m->tgt,    m->losses,   m->dlosses,
                     m->dresid, m->dbuf_c, m->dqkv,    m->datt,   m->dfch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mt_dealloc(be, bufs[i]);
    mt_dealloc(be, m->tokens);
    mt_dealloc(be, m->targets);
    free(m->acts);
    free(m->w.layers);
    free(m->g.layers);
    free(m->losses_host);
    mt_params_free(&m->table);
    memset(m, 0, sizeof *m);
}

void mt_gpt_init_weights(struct mt_gpt *m, uint64_t seed)
{
    struct mt_rng rng;
    mt_rng_seed(&rng, seed, /* purpose: weights */ 1);
    size_t maxn = 0;
    for (int i = 0; i < m->table.n; i++)
        if (m->table.p[i].numel > maxn) maxn = m->table.p[i].numel;
    float *host = malloc(maxn * sizeof(float));
    if (!host) mt_die("out of memory");
    for (int i = 0; i < m->table.n; i++) {
        const struct mt_param *p = &m->table.p[i];
        for (size_t j = 0; j < p->numel; j++)
            host[j] = p->init_std > 0 ? (float)(mt_rng_normal(&rng) * p->init_std) : p->init_value;
        mt_upload(m->be, m->params + p->offset, host, p->numel * sizeof(float));
    }
    free(host);
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

/* One transformer block over rows x (N,C) for B sequences of T positions,
 * queries from t0 (t0 > 0 only when decoding, where qkv rows [0,t0) are the
 * cached keys and values and the other buffers hold rows from t0 on). */
static void block_fwd(struct mt_gpt *m, int l, const float *x, int B, int T, int t0)
{
    mt_backend *be = m->be;
    const struct mt_gpt_config *c = &m->cfg;
    const int C = c->hidden_size, F = c->ffn_hidden_size, NH = c->num_heads, HS = C / NH;
    const int N = B * (T - t0);
    const struct mt_gpt_layer_view *w = &m->w.layers[l];
    struct mt_gpt_layer_acts *a = &m->acts[l];

    mt_layernorm_fwd(be, a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1w, w->ln1b, N, C);
    linear_fwd(be, a->qkv + (size_t)t0 * 3 * C, a->ln1, w->qkvw, w->qkvb, N, C, 3 * C);
    mt_attn_fwd(be, a->atty, a->att, a->qkv, B, T, t0, NH, HS);
    linear_fwd(be, a->resid2, a->atty, w->projw, w->projb, N, C, C);
    mt_add(be, a->resid2, a->resid2, x, (size_t)N * C);
    mt_layernorm_fwd(be, a->ln2, a->ln2_mean, a->ln2_rstd, a->resid2, w->ln2w, w->ln2b, N, C);
    linear_fwd(be, a->fch, a->ln2, w->fc1w, w->fc1b, N, C, F);
    mt_gelu_fwd(be, a->fch_gelu, a->fch, (size_t)N * F);
    linear_fwd(be, a->resid3, a->fch_gelu, w->fc2w, w->fc2b, N, F, C);
    mt_add(be, a->resid3, a->resid3, a->resid2, (size_t)N * C);
}

/* Final layernorm and the tied output layer over N rows of x. */
static void head_fwd(struct mt_gpt *m, const float *x, int N)
{
    const int C = m->cfg.hidden_size, Vp = m->cfg.padded_vocab_size;
    mt_layernorm_fwd(m->be, m->lnf, m->lnf_mean, m->lnf_rstd, x, m->w.lnfw, m->w.lnfb, N, C);
    mt_matmul_xwt(m->be, m->logits, m->lnf, m->w.wte, N, C, Vp, 0.0f);
}

float mt_gpt_forward(struct mt_gpt *m, const int32_t *tokens, const int32_t *targets, int B,
                     int T)
{
    mt_backend *be = m->be;
    const struct mt_gpt_config *c = &m->cfg;
    const int C = c->hidden_size, Vp = c->padded_vocab_size, L = c->num_layers;
    MT_ASSERT(B * T <= m->B * m->T && T <= m->T);
    const int N = B * T;
    m->cur_B = B;
    m->cur_T = T;
    mt_upload(be, m->tokens, tokens, (size_t)N * sizeof(int32_t));
    mt_embed_fwd(be, m->encoded, m->tokens, m->w.wte, m->w.wpe, B, T, C, 0, 0, Vp);
    const float *x = m->encoded;
    for (int l = 0; l < L; l++) {
        block_fwd(m, l, x, B, T, 0);
        x = m->acts[l].resid3;
    }
    head_fwd(m, x, N);
    m->has_targets = targets != NULL;
    if (!targets) return 0.0f;

    mt_upload(be, m->targets, targets, (size_t)N * sizeof(int32_t));
    mt_xent_max(be, m->rowmax, m->logits, N, Vp, Vp);
    mt_xent_sumexp(be, m->sumexp, m->tgt, m->logits, m->rowmax, m->targets, N, Vp, 0, Vp);
    mt_xent_loss(be, m->losses, m->rowmax, m->sumexp, m->tgt, N);
    mt_download(be, m->losses_host, m->losses, (size_t)N * sizeof(float));
    /* mean in double, in index order: the same on every backend */
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += m->losses_host[i];
    return (float)(sum / N);
}

void mt_gpt_backward(struct mt_gpt *m, float dloss_scale)
{
    mt_backend *be = m->be;
    const struct mt_gpt_config *c = &m->cfg;
    const int C = c->hidden_size, F = c->ffn_hidden_size, NH = c->num_heads, HS = C / NH;
    const int Vp = c->padded_vocab_size, L = c->num_layers;
    const int B = m->cur_B, T = m->cur_T, N = B * T;
    MT_ASSERT(m->has_targets);

    /* d mean(losses) / d losses[n] = 1/N, times the micro-batch weight */
    for (int i = 0; i < N; i++) m->losses_host[i] = dloss_scale / (float)N;
    mt_upload(be, m->dlosses, m->losses_host, (size_t)N * sizeof(float));
    /* dlogits overwrite the logits in place (N, Vp) */
    float *dlogits = m->logits;
    mt_xent_bwd(be, dlogits, m->dlosses, m->logits, m->rowmax, m->sumexp, m->targets, N, Vp, 0,
                Vp);
    m->has_targets = 0; /* logits are gone: a second backward needs a new forward */

    /* logits = lnf . wte^T: dwte += dlogits^T lnf ; dlnf = dlogits wte */
    linear_bwd(be, m->dbuf_c, m->g.wte, NULL, dlogits, m->lnf, m->w.wte, N, C, Vp);
    const float *xlast = L > 0 ? m->acts[L - 1].resid3 : m->encoded;
    mt_memset0(be, m->dresid, (size_t)N * C * sizeof(float));
    mt_layernorm_bwd(be, m->dresid, m->g.lnfw, m->g.lnfb, m->dbuf_c, xlast, m->w.lnfw,
                     m->lnf_mean, m->lnf_rstd, N, C);

    for (int l = L - 1; l >= 0; l--) {
        const struct mt_gpt_layer_view *w = &m->w.layers[l];
        const struct mt_gpt_layer_view *g = &m->g.layers[l];
        struct mt_gpt_layer_acts *a = &m->acts[l];
        const float *x = l > 0 ? m->acts[l - 1].resid3 : m->encoded;
        /* dresid = d resid3. resid3 = resid2 + fc2(gelu(fc1(ln2(resid2)))) */
        linear_bwd(be, m->dfch, g->fc2w, g->fc2b, m->dresid, a->fch_gelu, w->fc2w, N, F, C);
        mt_gelu_bwd(be, m->dfch, a->fch, m->dfch, (size_t)N * F);
        linear_bwd(be, m->dbuf_c, g->fc1w, g->fc1b, m->dfch, a->ln2, w->fc1w, N, C, F);
        mt_layernorm_bwd(be, m->dresid, g->ln2w, g->ln2b, m->dbuf_c, a->resid2, w->ln2w,
                         a->ln2_mean, a->ln2_rstd, N, C);
        /* dresid = d resid2. resid2 = x + proj(attn(qkv(ln1(x)))) */
        linear_bwd(be, m->dbuf_c, g->projw, g->projb, m->dresid, a->atty, w->projw, N, C, C);
        mt_attn_bwd(be, m->dqkv, m->datt, m->dbuf_c, a->qkv, a->att, B, T, NH, HS);
        linear_bwd(be, m->dbuf_c, g->qkvw, g->qkvb, m->dqkv, a->ln1, w->qkvw, N, C, 3 * C);
        mt_layernorm_bwd(be, m->dresid, g->ln1w, g->ln1b, m->dbuf_c, x, w->ln1w, a->ln1_mean,
                         a->ln1_rstd, N, C);
        /* dresid = d x */
    }
    mt_embed_bwd(be, m->g.wte, m->g.wpe, m->dresid, m->tokens, B, T, C, 0, Vp);
}

const float *mt_gpt_decode_prefill(struct mt_gpt *m, const int32_t *tokens, int n)
{
    MT_ASSERT(m->B == 1 && n >= 1 && n <= m->T);
    mt_gpt_forward(m, tokens, NULL, 1, n);
    return m->logits + (size_t)(n - 1) * m->cfg.padded_vocab_size;
}

const float *mt_gpt_decode_step(struct mt_gpt *m, int32_t token, int pos)
{
    mt_backend *be = m->be;
    const struct mt_gpt_config *c = &m->cfg;
    const int C = c->hidden_size, Vp = c->padded_vocab_size;
    MT_ASSERT(m->B == 1 && pos >= 1 && pos < m->T);
    mt_upload(be, m->tokens, &token, sizeof token);
    mt_embed_fwd(be, m->encoded, m->tokens, m->w.wte, m->w.wpe, 1, 1, C, pos, 0, Vp);
    const float *x = m->encoded;
    for (int l = 0; l < c->num_layers; l++) {
        /* keys and values of positions [0, pos) are already in acts[l].qkv */
        block_fwd(m, l, x, 1, pos + 1, pos);
        x = m->acts[l].resid3;
    }
    head_fwd(m, x, 1);
    return m->logits;
}

double mt_gpt_gemm_flops(const struct mt_gpt_config *c, int B, int T)
{
    const double C = c->hidden_size, F = c->ffn_hidden_size, Vp = c->padded_vocab_size;
    const double per_token = 2.0 * (c->num_layers * (3 * C * C + C * C + 2 * C * F) + C * Vp);
    /* backward: two GEMMs (weight and input gradient) per forward GEMM */
    return 3.0 * per_token * (double)B * (double)T;
}
