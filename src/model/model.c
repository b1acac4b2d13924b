/* model.c: the model's parts composed into pipeline stages (see model.h):
 * buffers, initialisation, the forward and backward of a stage, and
 * incremental decoding. */
#include "model/model_internal.h"
#include "core/error.h"
#include "core/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct mt_dropout_args mt_fwd_dropout(const struct mt_fwd *f, float p, int layer, int site)
{
    struct mt_dropout_args d;
    memset(&d, 0, sizeof d);
    d.T = f->T;
    if (!f->dropout || !(p > 0.0f)) return d;
    d.p = p;
    d.seed = f->seed;
    d.stream = (uint32_t)((layer + 1) * 4 + site); /* the embedding is layer -1 */
    d.sample0 = f->sample0;
    return d;
}

/* The call context of slot s over B sequences of T positions from t0. */
static struct mt_fwd fwd_of(const struct mt_model *m, const struct mt_model_slot *s, int B, int T,
                            int t0)
{
    struct mt_fwd f;
    f.be = m->be;
    f.cfg = &m->cfg;
    f.tp = &m->tp;
    f.B = B;
    f.T = T;
    f.t0 = t0;
    f.heads = m->cfg.num_attention_heads / m->tp.size;
    f.groups = m->cfg.num_query_groups / m->tp.size;
    f.rope = m->rope;
    f.lengths = s->has_lengths ? mt_ip(s->lengths) : NULL;
    f.doc_start = s->has_docs && t0 == 0 ? mt_ip(s->doc_start) : NULL;
    f.positions = s->has_positions && t0 == 0 ? mt_ip(s->positions) : NULL;
    f.dropout = s->dropout;
    f.seed = m->dropout_seed;
    f.sample0 = s->sample0;
    f.flash = m->attn == MT_ATTN_FLASH;
    f.recompute_attn = m->rc.granularity == MT_RECOMPUTE_SELECTIVE && !f.flash;
    return f;
}

/* ---- lifetime --------------------------------------------------------------------- */

/* Llama 3.x's scaling of one inverse frequency (--use-rope-scaling), as
 * Megatron's RotaryEmbedding._apply_scaling and Hugging Face's llama3 rope
 * compute it in float32: wavelengths above the original context (8192 /
 * low factor 1) slow down by the factor, those below 8192 / high factor 4
 * stay, and the band between is interpolated. */
static float llama3_scaled(float inv, float factor)
{
    const float old_len = 8192.0f, low = 1.0f, high = 4.0f;
    const float low_wavelen = old_len / low, high_wavelen = old_len / high;
    const float wavelen = (float)(2.0 * 3.14159265358979323846) / inv;
    const float llama = wavelen > low_wavelen ? inv / factor : inv;
    if (wavelen < high_wavelen || wavelen > low_wavelen) return llama;
    const float smooth = (old_len / wavelen - low) / (high - low);
    return (1.0f - smooth) * llama / factor + smooth * llama;
}

/* cos and sin of the rotary angles t * inv_freq[i], one row per position,
 * computed as Megatron and Hugging Face do in float32 (inv_freq = 1 /
 * base^(2i/R), Llama 3.x-scaled with --use-rope-scaling, angle = t
 * inv_freq), then cos and sin rounded once */
static mt_tensor rope_table(mt_backend *be, const struct mt_transformer_config *c)
{
    const int R = mt_config_rotary_dim(c), P = c->max_position_embeddings;
    if (R == 0) return mt_f32(NULL, 0, 0);
    float *h = malloc((size_t)P * R * sizeof *h);
    if (!h) mt_die("out of memory");
    for (int i = 0; i < R / 2; i++) {
        float inv = 1.0f / powf((float)c->rotary_base, (float)(2 * i) / (float)R);
        if (c->rope_scaling) inv = llama3_scaled(inv, (float)c->rope_scaling_factor);
        for (int t = 0; t < P; t++) {
            const float angle = (float)t * inv;
            h[(size_t)t * R + i] = (float)cos((double)angle);
            h[(size_t)t * R + R / 2 + i] = (float)sin((double)angle);
        }
    }
    mt_tensor t = mt_tensor_alloc(be, MT_DTYPE_F32, P, R);
    mt_tensor_upload(be, t, h);
    free(h);
    return t;
}

static void slot_alloc(struct mt_model *m, struct mt_model_slot *s)
{
    mt_backend *be = m->be;
    const int64_t N = m->dims.tokens;
    s->tokens = mt_tensor_alloc(be, MT_DTYPE_I32, N, 1);
    s->targets = mt_tensor_alloc(be, MT_DTYPE_I32, N, 1);
    s->positions = mt_tensor_alloc(be, MT_DTYPE_I32, N, 1);
    s->doc_start = mt_tensor_alloc(be, MT_DTYPE_I32, N, 1);
    if (m->cfg.type_vocab_size > 0) s->types = mt_tensor_alloc(be, MT_DTYPE_I32, N, 1);
    s->lengths = mt_tensor_alloc(be, MT_DTYPE_I32, m->B, 1);
    if (m->cfg.lm_head == MT_LM_HEAD_BERT) s->lm_rows = mt_tensor_alloc(be, MT_DTYPE_I32, N, 1);
    s->seq_rows = mt_tensor_alloc(be, MT_DTYPE_I32, m->B, 1);
    s->labels = mt_tensor_alloc(be, MT_DTYPE_I32, m->B, 1);
    s->dlosses_host = malloc((size_t)N * sizeof *s->dlosses_host);
    if (!s->dlosses_host) mt_die("out of memory");
    s->input = mt_tensor_alloc(be, MT_DTYPE_F32, N, m->cfg.hidden_size);
    if (m->stage.first) mt_layout_alloc_embed_acts(be, &m->cfg, &m->dims, &s->emb);
    s->acts = calloc((size_t)(m->stage.nlayers > 0 ? m->stage.nlayers : 1), sizeof *s->acts);
    if (!s->acts) mt_die("out of memory");
    mt_recompute_alloc_slot(m, s);
    if (m->stage.last) mt_layout_alloc_head_acts(be, &m->cfg, &m->dims, &s->head);
}

static void slot_free(struct mt_model *m, struct mt_model_slot *s)
{
    mt_backend *be = m->be;
    mt_recompute_free_slot(m, s);
    if (m->stage.last) mt_layout_free_head_acts(be, &s->head);
    if (m->stage.first) mt_layout_free_embed_acts(be, &s->emb);
    mt_tensor *t[] = {&s->tokens, &s->targets, &s->positions, &s->doc_start, &s->types, &s->lengths,
                      &s->seq_rows, &s->labels, &s->lm_rows, &s->input};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) mt_tensor_free(be, t[i]);
    free(s->acts);
    free(s->dlosses_host);
}

void mt_model_init(struct mt_model *m, const struct mt_transformer_config *cfg, mt_backend *be,
                   int B, int T, const struct mt_model_par *par, int nslots)
{
    mt_model_init_opts(m, cfg, be, B, T, par, nslots, NULL);
}

int mt_attn_impl_parse(const char *s)
{
    if (strcmp(s, "flash") == 0 || strcmp(s, "fused") == 0 || strcmp(s, "auto") == 0) return MT_ATTN_FLASH;
    if (strcmp(s, "unfused") == 0 || strcmp(s, "local") == 0) return MT_ATTN_UNFUSED;
    return -1;
}

void mt_model_init_opts(struct mt_model *m, const struct mt_transformer_config *cfg, mt_backend *be,
                        int B, int T, const struct mt_model_par *par, int nslots,
                        const struct mt_model_opts *o)
{
    char err[256];
    memset(m, 0, sizeof *m);
    if (o) m->rc = o->rc, m->attn = o->attn;
    m->cfg = *cfg;
    m->be = be;
    if (!par) {
        /* a group of one of our own: the tensor-parallel collectives are no-ops */
        mt_comm *world = mt_comm_world(be);
        m->own_comm = mt_comm_split(be, world, mt_comm_rank(be, world), 0);
        m->par = (struct mt_model_par){m->own_comm, 1, 0, 1, 0};
    } else {
        m->par = *par;
    }
    MT_ASSERT(T >= 1 && T <= cfg->max_position_embeddings && B >= 1 && nslots >= 1);
    if (mt_config_check(cfg, err, sizeof err) != 0 ||
        mt_config_check_parallel(cfg, m->par.tp, m->par.pp, err, sizeof err) != 0)
        mt_user_error("choose sizes that fit together", "%s", err);
    m->tp = (struct mt_tp){be, m->par.tp_comm, m->par.tp, m->par.tp_rank};
    const int per = cfg->num_layers / m->par.pp;
    m->stage = (struct mt_stage){m->par.tp, m->par.tp_rank, m->par.pp_rank == 0,
                                 m->par.pp_rank == m->par.pp - 1, m->par.pp_rank * per, per};
    mt_layout_stage_table(cfg, &m->stage, &m->table);
    const size_t P = m->table.total;
    m->params = mt_alloc(be, P * sizeof(float));
    m->grads = mt_alloc(be, P * sizeof(float));
    mt_memset0(be, m->params, P * sizeof(float));
    mt_memset0(be, m->grads, P * sizeof(float));
    mt_layout_views(cfg, &m->stage, &m->table, m->params, &m->w);
    mt_layout_views(cfg, &m->stage, &m->table, m->grads, &m->g);

    m->B = B;
    m->T = T;
    mt_layout_act_dims(cfg, m->par.tp, m->par.tp_rank, B, T, m->attn == MT_ATTN_FLASH, &m->dims);
    m->nslots = nslots;
    m->slots = calloc((size_t)nslots, sizeof *m->slots);
    if (!m->slots) mt_die("out of memory");
    mt_recompute_alloc(m); /* before the slots: selective's shared buffer */
    for (int k = 0; k < nslots; k++) slot_alloc(m, &m->slots[k]);
    mt_layout_alloc_grad_bufs(be, cfg, &m->dims, &m->gb);
    m->rope = rope_table(be, cfg);
    m->logits = m->slots[0].head.logits;
    m->losses_host = malloc((size_t)m->dims.tokens * sizeof(float));
    m->ids_host = malloc((size_t)m->dims.tokens * sizeof(int32_t));
    if (!m->losses_host || !m->ids_host) mt_die("out of memory");
}

void mt_model_free(struct mt_model *m)
{
    mt_backend *be = m->be;
    if (!be) return;
    for (int k = 0; k < m->nslots; k++) slot_free(m, &m->slots[k]);
    mt_recompute_free(m);
    mt_layout_free_grad_bufs(be, &m->gb);
    mt_tensor_free(be, &m->rope);
    mt_dealloc(be, m->params);
    mt_dealloc(be, m->grads);
    free(m->slots);
    mt_layout_free_views(&m->w);
    mt_layout_free_views(&m->g);
    free(m->losses_host);
    free(m->ids_host);
    mt_params_free(&m->table);
    if (m->own_comm) mt_comm_free(be, m->own_comm);
    memset(m, 0, sizeof *m);
}

void mt_model_init_weights(struct mt_model *m, uint64_t seed)
{
    /* draw every tensor of the whole model in global order, keep ours */
    struct mt_param_table g;
    mt_layout_global_table(&m->cfg, 1, &g, NULL);
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

void mt_model_set_training(struct mt_model *m, int on, uint64_t seed)
{
    m->training = on;
    m->dropout_seed = seed;
}

void mt_model_get_param(struct mt_model *m, int idx, float *host)
{
    const struct mt_param *p = &m->table.p[idx];
    mt_download(m->be, host, m->params + p->offset, p->numel * sizeof(float));
}

void mt_model_set_param(struct mt_model *m, int idx, const float *host)
{
    const struct mt_param *p = &m->table.p[idx];
    mt_upload(m->be, m->params + p->offset, host, p->numel * sizeof(float));
}

void mt_model_get_grad(struct mt_model *m, int idx, float *host)
{
    const struct mt_param *p = &m->table.p[idx];
    mt_download(m->be, host, m->grads + p->offset, p->numel * sizeof(float));
}

void mt_model_zero_grad(struct mt_model *m)
{
    mt_memset0(m->be, m->grads, m->table.total * sizeof(float));
}

int mt_model_tied_index(const struct mt_model *m)
{
    if (m->cfg.untie_embeddings_and_output_weights) return -1;
    return mt_params_find(&m->table, "embedding.word_embeddings.weight");
}

/* ---- forward and backward of a stage -------------------------------------------------- */

/* Uploads n ids (host) into the first n rows of t. */
static void upload_ids(mt_backend *be, mt_tensor t, const int32_t *ids, int64_t n)
{
    mt_tensor_upload(be, mt_rows(t, 0, n), ids);
}

/* positions t of the rows of B sequences of T tokens, from pos0 */
static void upload_positions(struct mt_model *m, struct mt_model_slot *s, int B, int T, int pos0)
{
    for (int i = 0; i < B * T; i++) m->ids_host[i] = pos0 + i % T;
    upload_ids(m->be, s->positions, m->ids_host, (int64_t)B * T);
}

/* the slot's ids the embedding reads */
static struct mt_embed_ids embed_ids(const struct mt_model_slot *s, int64_t N)
{
    struct mt_embed_ids ids = {mt_rows(s->tokens, 0, N), mt_rows(s->positions, 0, N),
                               s->types.data ? mt_rows(s->types, 0, N) : s->types};
    return ids;
}

/* the hidden state the heads read: the final norm's output (pre-norm), or
 * the stage's output itself (post-norm) */
static mt_tensor head_input(struct mt_model *m, struct mt_model_slot *s, int64_t N)
{
    if (m->cfg.post_layernorm) return mt_model_stage_output(m, (int)(s - m->slots), s->B, s->T);
    return mt_rows(s->head.lnf, 0, N);
}

/* the rows the sequence head reads: each sequence's first token, or its last real one */
static void upload_seq_rows(struct mt_model *m, struct mt_model_slot *s, const struct mt_batch *b)
{
    for (int i = 0; i < b->B; i++) {
        const int len = b->lengths ? b->lengths[i] : b->T;
        m->ids_host[i] = i * b->T + (m->cfg.seq_token == MT_SEQ_TOKEN_LAST ? len - 1 : 0);
    }
    upload_ids(m->be, s->seq_rows, m->ids_host, b->B);
}

/* The call context of the LM head over its R rows (one "sequence" of them) */
static struct mt_fwd rows_fwd(const struct mt_fwd *f, int64_t R)
{
    struct mt_fwd g = *f;
    g.B = 1;
    g.T = (int)R;
    g.t0 = 0;
    return g;
}

/* The LM head and its loss. A BERT training forward computes it only on
 * the rows the loss mask weights (15 % of them): gathered into lm_in, and
 * scattered back in the backward; elsewhere on every row (the logits of
 * all positions are the result). The loss is the weighted mean
 * sum(mask l) / sum(mask) in double, in row order. */
static void lm_forward(struct mt_model *m, struct mt_model_slot *s, const struct mt_fwd *f,
                       const struct mt_batch *b, mt_tensor hidden)
{
    mt_backend *be = m->be;
    const int64_t N = (int64_t)b->B * b->T;
    s->lm_sparse = m->training && b->targets && b->loss_mask && m->cfg.lm_head == MT_LM_HEAD_BERT;
    int64_t R = N;
    mt_tensor in = hidden;
    if (s->lm_sparse) {
        R = 0;
        for (int64_t i = 0; i < N; i++)
            if (b->loss_mask[i] != 0.0f) m->ids_host[R++] = (int32_t)i;
        if (R == 0) { /* no token has a loss: nothing to compute, a zero gradient */
            s->nlm = 0;
            s->has_targets = b->targets != NULL;
            return;
        }
        upload_ids(be, s->lm_rows, m->ids_host, R);
        in = mt_rows(s->head.lm_in, 0, R);
        mt_embed_fwd(be, in, mt_rows(s->lm_rows, 0, R), hidden, 0, 0); /* in[k] = hidden[rows[k]] */
    }
    s->nlm = R;
    const struct mt_fwd g = rows_fwd(f, R);
    mt_lm_head_fwd(&g, &m->w, &s->head, in);
    m->logits = mt_rows(s->head.logits, 0, R);
    if (!b->targets) return;
    s->has_targets = 1;
    int32_t *tg = malloc((size_t)R * sizeof *tg);
    float *wt = malloc((size_t)R * sizeof *wt);
    if (!tg || !wt) mt_die("out of memory");
    for (int64_t k = 0; k < R; k++) {
        const int64_t i = s->lm_sparse ? m->ids_host[k] : k;
        tg[k] = b->targets[i];
        wt[k] = b->loss_mask ? b->loss_mask[i] : 1.0f;
    }
    upload_ids(be, s->targets, tg, R);
    mt_lm_loss_fwd(&g, &m->w, &s->head, mt_rows(s->targets, 0, R));
    mt_tensor_download(be, m->losses_host, mt_rows(s->head.losses, 0, R));
    double sum = 0.0, den = 0.0;
    for (int64_t k = 0; k < R; k++) {
        sum += (double)wt[k] * m->losses_host[k];
        den += wt[k];
    }
    s->lm_loss = den > 0 ? sum / den : 0.0;
    s->lm_masked = b->loss_mask != NULL;
    if (s->lm_masked)
        for (int64_t k = 0; k < R; k++) s->dlosses_host[k] = den > 0 ? (float)(wt[k] / den) : 0.0f;
    free(tg);
    free(wt);
}

/* The last stage: the final norm, then the heads and their losses (the LM
 * loss in lm_forward; the sequence loss, the mean over sequences in double,
 * here): the same on every backend and layout. */
static double heads_forward(struct mt_model *m, struct mt_model_slot *s, const struct mt_fwd *f,
                            const struct mt_batch *b, mt_tensor x)
{
    mt_backend *be = m->be;
    const int64_t N = (int64_t)b->B * b->T;
    if (!m->cfg.post_layernorm)
        mt_norm_fwd(f, mt_rows(s->head.lnf, 0, N), mt_rows(s->head.lnf_mean, 0, N),
                    mt_rows(s->head.lnf_rstd, 0, N), x, m->w.lnf_w, m->w.lnf_b);
    mt_tensor hidden = head_input(m, s, N);
    s->lm_loss = s->seq_loss = 0.0;
    s->has_targets = s->has_labels = 0;
    if (m->cfg.lm_head != MT_LM_HEAD_NONE) lm_forward(m, s, f, b, hidden);
    if (m->cfg.seq_head != MT_SEQ_HEAD_NONE) {
        upload_seq_rows(m, s, b);
        mt_seq_head_fwd(f, &m->w, &s->head, hidden, mt_rows(s->seq_rows, 0, b->B));
        if (b->labels) {
            s->has_labels = 1;
            upload_ids(be, s->labels, b->labels, b->B);
            mt_seq_loss_fwd(f, &s->head, mt_rows(s->labels, 0, b->B));
            mt_tensor_download(be, m->losses_host, mt_rows(s->head.seq_losses, 0, b->B));
            double sum = 0.0;
            for (int i = 0; i < b->B; i++) sum += m->losses_host[i];
            s->seq_loss = sum / b->B;
        }
    }
    return s->lm_loss + s->seq_loss;
}

float mt_model_stage_forward_batch(struct mt_model *m, int slot, const struct mt_batch *b,
                                   int64_t sample0)
{
    mt_backend *be = m->be;
    MT_ASSERT(slot >= 0 && slot < m->nslots);
    const int B = b->B, T = b->T;
    MT_ASSERT((int64_t)B * T <= m->dims.tokens && T <= m->T && B <= m->B);
    struct mt_model_slot *s = &m->slots[slot];
    const int64_t N = (int64_t)B * T;
    s->B = B;
    s->T = T;
    s->sample0 = sample0;
    s->dropout = m->training && (m->cfg.hidden_dropout > 0 || m->cfg.attention_dropout > 0);
    s->has_lengths = b->lengths != NULL;
    if (b->lengths) upload_ids(be, s->lengths, b->lengths, B);
    s->has_docs = b->doc_start != NULL;
    if (b->doc_start) upload_ids(be, s->doc_start, b->doc_start, N);
    s->has_positions = b->positions != NULL;
    if (b->positions) upload_ids(be, s->positions, b->positions, N);
    const struct mt_fwd f = fwd_of(m, s, B, T, 0);
    mt_tensor x = mt_rows(s->input, 0, N);
    if (m->stage.first) {
        upload_ids(be, s->tokens, b->tokens, N);
        if (m->w.pos.data && !b->positions) upload_positions(m, s, B, T, 0);
        if (m->w.tokentype.data) {
            if (b->types) {
                upload_ids(be, s->types, b->types, N);
            } else {
                for (int64_t i = 0; i < N; i++) m->ids_host[i] = 0;
                upload_ids(be, s->types, m->ids_host, N);
            }
        }
        const struct mt_embed_ids ids = embed_ids(s, N);
        mt_embedding_fwd(&f, &m->w, &s->emb, x, &ids);
    }
    for (int l = 0; l < m->stage.nlayers; l++) {
        struct mt_layer_acts tmp, *a = mt_recompute_acts(m, s, l, &tmp);
        mt_layer_fwd(&f, &m->w.layers[l], a, m->stage.layer0 + l, x);
        x = mt_layer_output(&m->cfg, a, 0, N);
    }
    s->has_targets = s->has_labels = 0;
    if (!m->stage.last) return 0.0f;
    return (float)heads_forward(m, s, &f, b, x);
}

float mt_model_stage_forward(struct mt_model *m, int slot, const int32_t *tokens,
                             const int32_t *targets, int B, int T, int64_t sample0)
{
    const struct mt_batch b = {B, T, tokens, NULL, NULL, targets, NULL, NULL, NULL, NULL};
    return mt_model_stage_forward_batch(m, slot, &b, sample0);
}

mt_tensor mt_model_stage_input(struct mt_model *m, int slot, int B, int T)
{
    return mt_rows(m->slots[slot].input, 0, (int64_t)B * T);
}

mt_tensor mt_model_stage_output(struct mt_model *m, int slot, int B, int T)
{
    struct mt_model_slot *s = &m->slots[slot];
    const int64_t N = (int64_t)B * T;
    return m->stage.nlayers > 0 ? mt_layer_output(&m->cfg, &s->acts[m->stage.nlayers - 1], 0, N)
                                : mt_rows(s->input, 0, N);
}

mt_tensor mt_model_stage_dinput(struct mt_model *m, int B, int T)
{
    return mt_rows(m->gb.dresid, 0, (int64_t)B * T);
}

mt_tensor mt_model_last_hidden(struct mt_model *m)
{
    MT_ASSERT(m->stage.last);
    struct mt_model_slot *s = &m->slots[0];
    return head_input(m, s, (int64_t)s->B * s->T);
}

mt_tensor mt_model_seq_logits(struct mt_model *m)
{
    MT_ASSERT(m->stage.last && m->cfg.seq_head != MT_SEQ_HEAD_NONE);
    return mt_rows(m->slots[0].head.seq_logits, 0, m->slots[0].B);
}

/* The last stage's heads backward: dresid = d(stage output). */
static void heads_backward(struct mt_model *m, struct mt_model_slot *s, const struct mt_fwd *f,
                           float dloss_scale)
{
    mt_backend *be = m->be;
    const int B = s->B, T = s->T;
    const int64_t N = (int64_t)B * T;
    MT_ASSERT(s->has_targets || s->has_labels);
    mt_tensor hidden = head_input(m, s, N), x = mt_model_stage_output(m, (int)(s - m->slots), B, T);
    mt_tensor dhidden = mt_rows(m->gb.dhead, 0, N), dresid = mt_rows(m->gb.dresid, 0, N);
    if (s->has_targets && s->nlm > 0) {
        /* d loss / d losses[k] = the mask's weight (1/N without one), times the
         * micro-batch weight */
        const int64_t R = s->nlm;
        for (int64_t k = 0; k < R; k++)
            m->losses_host[k] = s->lm_masked ? dloss_scale * s->dlosses_host[k] : dloss_scale / (float)N;
        mt_tensor dlosses = mt_rows(m->gb.dlosses, 0, R);
        mt_tensor_upload(be, dlosses, m->losses_host);
        const struct mt_fwd g = rows_fwd(f, R);
        if (!s->lm_sparse) {
            mt_lm_head_bwd(&g, &m->w, &m->g, &s->head, &m->gb, dhidden, hidden,
                           mt_rows(s->targets, 0, R), dlosses);
        } else {
            mt_tensor din = mt_rows(m->gb.dlm_in, 0, R), rows = mt_rows(s->lm_rows, 0, R);
            mt_lm_head_bwd(&g, &m->w, &m->g, &s->head, &m->gb, din, mt_rows(s->head.lm_in, 0, R),
                           mt_rows(s->targets, 0, R), dlosses);
            mt_tensor_zero(be, dhidden);
            mt_embed_bwd(be, dhidden, din, rows, 0); /* dhidden[rows[k]] += din[k] */
        }
    } else {
        mt_tensor_zero(be, dhidden);
    }
    if (s->has_labels) {
        for (int i = 0; i < B; i++) m->losses_host[i] = dloss_scale / (float)B;
        mt_tensor dl = mt_rows(m->gb.dseq_losses, 0, B);
        mt_tensor_upload(be, dl, m->losses_host);
        mt_seq_head_bwd(f, &m->w, &m->g, &s->head, &m->gb, dhidden, mt_rows(s->seq_rows, 0, B),
                        mt_rows(s->labels, 0, B), dl);
    }
    if (m->cfg.post_layernorm) {
        mt_copy(be, dresid.data, dhidden.data, (size_t)mt_numel(dresid) * sizeof(float));
    } else {
        mt_tensor_zero(be, dresid);
        mt_norm_bwd(f, dresid, m->g.lnf_w, m->g.lnf_b, dhidden, x, m->w.lnf_w,
                    mt_rows(s->head.lnf_mean, 0, N), mt_rows(s->head.lnf_rstd, 0, N));
    }
    s->has_targets = s->has_labels = 0; /* the logits are gone: a second backward needs a new forward */
}

void mt_model_stage_backward(struct mt_model *m, int slot, float dloss_scale)
{
    struct mt_model_slot *s = &m->slots[slot];
    const int B = s->B, T = s->T;
    const int64_t N = (int64_t)B * T;
    const struct mt_fwd f = fwd_of(m, s, B, T, 0);
    if (m->stage.last) heads_backward(m, s, &f, dloss_scale);
    /* else: the caller received d(stage output) into the stage's dinput */
    for (int l = m->stage.nlayers - 1; l >= 0; l--) {
        mt_recompute_chunk(m, s, &f, l);
        struct mt_layer_acts tmp, prev, *a = mt_recompute_acts(m, s, l, &tmp);
        mt_tensor x = l > 0 ? mt_layer_output(&m->cfg, mt_recompute_acts(m, s, l - 1, &prev), 0, N)
                            : mt_rows(s->input, 0, N);
        mt_layer_bwd(&f, &m->w.layers[l], &m->g.layers[l], a, m->stage.layer0 + l, &m->gb, x);
    }
    if (m->stage.first) {
        const struct mt_embed_ids ids = embed_ids(s, N);
        mt_embedding_bwd(&f, &m->w, &m->g, &s->emb, mt_rows(m->gb.dresid, 0, N),
                         mt_rows(m->gb.dbuf, 0, N), &ids);
    }
}

float mt_model_forward_batch(struct mt_model *m, const struct mt_batch *b, int64_t sample0)
{
    MT_ASSERT(m->stage.first && m->stage.last);
    return mt_model_stage_forward_batch(m, 0, b, sample0);
}

float mt_model_forward(struct mt_model *m, const int32_t *tokens, const int32_t *targets, int B,
                       int T, int64_t sample0)
{
    MT_ASSERT(m->stage.first && m->stage.last);
    return mt_model_stage_forward(m, 0, tokens, targets, B, T, sample0);
}

void mt_model_backward(struct mt_model *m, float dloss_scale)
{
    MT_ASSERT(m->stage.first && m->stage.last);
    mt_model_stage_backward(m, 0, dloss_scale);
}

/* ---- incremental decoding ----------------------------------------------------------------- */

mt_tensor mt_model_decode_prefill(struct mt_model *m, const int32_t *tokens, int n)
{
    MT_ASSERT(m->B == 1 && n >= 1 && n <= m->T);
    MT_ASSERT(m->rc.granularity == MT_RECOMPUTE_NONE); /* the KV cache is each layer's qkv */
    const int training = m->training;
    m->training = 0;
    mt_model_forward(m, tokens, NULL, 1, n, 0);
    m->training = training;
    return mt_rows(m->logits, n - 1, 1);
}

void mt_batch_documents(const int32_t *tokens, int B, int T, int32_t eod, int32_t *doc_start,
                        int32_t *positions)
{
    for (int b = 0; b < B; b++) {
        int start = 0;
        for (int t = 0; t < T; t++) {
            const size_t i = (size_t)b * T + t;
            if (doc_start) doc_start[i] = start;
            if (positions) positions[i] = t - start;
            if (tokens[i] == eod) start = t + 1; /* the next token begins a document */
        }
    }
}

mt_tensor mt_model_decode_step(struct mt_model *m, int32_t token, int pos)
{
    MT_ASSERT(m->B == 1 && pos >= 1 && pos < m->T && m->stage.first && m->stage.last);
    struct mt_model_slot *s = &m->slots[0];
    s->dropout = 0;
    const struct mt_fwd f = fwd_of(m, s, 1, pos + 1, pos);
    upload_ids(m->be, s->tokens, &token, 1);
    int32_t p = pos;
    upload_ids(m->be, s->positions, &p, 1);
    mt_tensor x = mt_rows(s->input, 0, 1);
    const struct mt_embed_ids ids = embed_ids(s, 1);
    mt_embedding_fwd(&f, &m->w, &s->emb, x, &ids);
    for (int l = 0; l < m->stage.nlayers; l++) {
        /* keys and values of positions [0, pos) are already in acts[l].qkv */
        mt_layer_fwd(&f, &m->w.layers[l], &s->acts[l], m->stage.layer0 + l, x);
        x = mt_layer_output(&m->cfg, &s->acts[l], 0, 1);
    }
    if (!m->cfg.post_layernorm) {
        mt_norm_fwd(&f, mt_rows(s->head.lnf, 0, 1), mt_rows(s->head.lnf_mean, 0, 1),
                    mt_rows(s->head.lnf_rstd, 0, 1), x, m->w.lnf_w, m->w.lnf_b);
        x = mt_rows(s->head.lnf, 0, 1);
    }
    mt_lm_head_fwd(&f, &m->w, &s->head, x);
    m->logits = mt_rows(s->head.logits, 0, 1);
    return m->logits;
}
