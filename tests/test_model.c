/* test_model.c: whole-model checks that need no golden file, on a tiny
 * GPT, a tiny Llama-style model (RoPE, RMSNorm, SwiGLU, grouped-query
 * attention, untied output, no biases) and tiny BERTs (Megatron's pre-norm
 * and the post-norm of Google's; token types, padding, MLM loss mask,
 * pooler and sentence-order head, exact GELU):
 *  - finite differences of the loss with respect to a sample of parameters
 *    (also with dropout on: the masks are fixed by the sample index)
 *  - BERT: what padding holds does not change the loss of the real tokens;
 *    a training forward, which runs the LM head on the masked rows only,
 *    gives the loss and gradients of the forward over every row
 *  - KV-cache decoding equals the full forward pass
 *  - packed documents (--reset-attention-mask, --reset-position-ids): the
 *    logits of a packed sequence are those of its documents run alone,
 *    flash and unfused; and the gradient with them vs finite differences
 *  - gradient accumulation: 2 micro-batches of 2 == 1 batch of 4
 *  - the generated parameter table: which tensors exist for a configuration
 *  - the learning-rate schedule at closed-form points
 *  - the data loader: permutations, sample contents, splits */
#include "backend/backend.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "model/model.h"
#include "optim/optimizer.h"
#include "tap.h"
#include <math.h>
#include <string.h>

/* the tiny models: a GPT, a Llama-style one whose padded vocabulary
 * (20 of 32) and grouped heads (4 over 2 groups) are exercised too, and
 * BERT pre-norm (kind 2) and post-norm (kind 3), and the fine-tuning
 * classifiers (3 classes): BERT on its pooled first token, GPT on its last */
enum { GPT, LLAMA, BERT, BERT_POST, BERT_CLS, GPT_CLS };
static struct mt_transformer_config tiny(int kind, float dropout)
{
    const int llama = kind == LLAMA;
    struct mt_transformer_config c;
    mt_config_defaults(&c);
    c.num_layers = 2;
    c.hidden_size = 16;
    c.num_attention_heads = llama ? 4 : 2;
    c.ffn_hidden_size = llama ? 24 : 64;
    c.max_position_embeddings = 8;
    c.vocab_size = 20;
    c.padded_vocab_size = 32;
    c.init_method_std = 0.25f;
    if (llama) {
        c.num_query_groups = 2;
        c.position_embedding_type = MT_POS_ROPE;
        c.normalization = MT_NORM_RMSNORM;
        c.layernorm_epsilon = 1e-6;
        c.gated_linear_unit = 1;
        c.untie_embeddings_and_output_weights = 1;
        c.add_bias_linear = 0;
        c.add_qkv_bias = 0;
    }
    if (kind >= BERT && kind != GPT_CLS) {
        c.type_vocab_size = 2;
        c.attn_mask_type = MT_ATTN_MASK_NONE;
        c.activation = MT_ACTIVATION_GELU;
        c.lm_head = MT_LM_HEAD_BERT;
        c.add_pooler = 1;
        c.seq_head = MT_SEQ_HEAD_BINARY;
        c.post_layernorm = kind == BERT_POST;
    }
    if (kind >= BERT_CLS) { /* as finetune makes them */
        c.lm_head = MT_LM_HEAD_NONE;
        c.seq_head = MT_SEQ_HEAD_CLASSIFY;
        c.num_classes = 3;
        c.add_pooler = kind == BERT_CLS;
        c.seq_token = kind == BERT_CLS ? MT_SEQ_TOKEN_FIRST : MT_SEQ_TOKEN_LAST;
    }
    c.hidden_dropout = c.attention_dropout = dropout;
    mt_config_derive(&c);
    return c;
}
static const char *NAMES[] = {"gpt", "llama", "bert", "bert post-norm", "bert classifier", "gpt classifier"};

/* a batch of B x T: BERT's with token types, the second sequence padded
 * after 4 tokens, an MLM mask on every third real token, labels */
struct tbatch {
    struct mt_batch b;
    int32_t tok[12], tgt[12], types[12], lengths[2], labels[2], doc_start[12], positions[12];
    float mask[12];
};

/* make_batch packs documents into GPT and Llama batches: 1 while set */
static int packed_docs;

static void make_batch(struct tbatch *t, struct mt_rng *r, int kind, int V)
{
    const int B = 2, T = 6;
    for (int i = 0; i < B * T; i++) {
        t->tok[i] = (int32_t)mt_rng_below(r, (uint64_t)V);
        t->tgt[i] = (int32_t)mt_rng_below(r, (uint64_t)V);
        t->types[i] = i % T >= 3;
        t->mask[i] = i % 3 == 1 && !(i / T == 1 && i % T >= 4);
    }
    t->lengths[0] = T, t->lengths[1] = 4;
    t->labels[0] = kind >= BERT_CLS ? 2 : 1, t->labels[1] = 0;
    t->b = (struct mt_batch){B, T, t->tok, NULL, NULL, t->tgt, NULL, NULL, NULL, NULL};
    if (kind >= BERT) {
        t->b.types = kind == GPT_CLS ? NULL : t->types, t->b.lengths = t->lengths;
        t->b.loss_mask = kind >= BERT_CLS ? NULL : t->mask;
        t->b.targets = kind >= BERT_CLS ? NULL : t->tgt;
        t->b.labels = t->labels;
    }
    if (packed_docs && kind <= LLAMA) { /* documents ending after tokens 2 (row 0) and 1, 3 (row 1) */
        static const int32_t eod_after[12] = {0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0};
        for (int i = 0; i < B * T; i++) t->tok[i] = eod_after[i] ? V - 1 : t->tok[i] % (V - 1);
        mt_batch_documents(t->tok, B, T, V - 1, t->doc_start, t->positions);
        t->b.doc_start = t->doc_start, t->b.positions = t->positions;
    }
}

static mt_backend *backend(const char *name)
{
    char err[256];
    mt_backend *be = mt_backend_init(name, err, sizeof err);
    if (!be) {
        printf("Bail out! %s\n", err);
        exit(99);
    }
    return be;
}

static void random_tokens(struct mt_rng *r, int32_t *x, int n, int V)
{
    for (int i = 0; i < n; i++) x[i] = (int32_t)mt_rng_below(r, (uint64_t)V);
}

/* loss(param + delta at one element) */
static double loss_at(struct mt_model *m, size_t off, float value, const struct mt_batch *b)
{
    float old;
    mt_download(m->be, &old, m->params + off, 4);
    mt_upload(m->be, m->params + off, &value, 4);
    double l = mt_model_forward_batch(m, b, 100);
    mt_upload(m->be, m->params + off, &old, 4);
    return l;
}

static void test_finite_differences(const char *bename, int kind, float dropout)
{
    mt_backend *be = backend(bename);
    struct mt_model m;
    const int B = 2, T = 6;
    const struct mt_transformer_config TINY = tiny(kind, dropout);
    mt_model_init(&m, &TINY, be, B, T, NULL, 1);
    mt_model_init_weights(&m, 42);
    /* dropout on: the same masks in every forward (the same sample index) */
    mt_model_set_training(&m, dropout > 0, 99);
    struct mt_rng r;
    mt_rng_seed(&r, 7, 0);
    struct tbatch tb;
    make_batch(&tb, &r, kind, TINY.vocab_size);
    /* layernorm biases and weights get non-trivial values too */
    for (int i = 0; i < m.table.n; i++) {
        const struct mt_param *p = &m.table.p[i];
        if (p->init_std > 0) continue;
        float *h = malloc(p->numel * 4);
        for (size_t j = 0; j < p->numel; j++) h[j] = p->init_value + 0.2f * (float)mt_rng_normal(&r);
        mt_model_set_param(&m, i, h);
        free(h);
    }
    mt_model_zero_grad(&m);
    mt_model_forward_batch(&m, &tb.b, 100);
    mt_model_backward(&m, 1.0f);
    float *grad = malloc(m.table.total * 4), *par = malloc(m.table.total * 4);
    mt_download(be, grad, m.grads, m.table.total * 4);
    mt_download(be, par, m.params, m.table.total * 4);
    /* tolerance: float32 loss (~3e-7 abs) over 2h = 2e-2 gives ~2e-5 noise,
     * plus O(h^2) truncation; a wrong formula is off by far more */
    const float h = 1e-2f;
    const double rtol = 2e-2, atol = 1e-4;
    int checked = 0, bad = 0;
    double worst = 0;
    for (int i = 0; i < m.table.n; i++) {
        const struct mt_param *p = &m.table.p[i];
        for (int s = 0; s < 3; s++) {
            size_t j = (size_t)mt_rng_below(&r, p->numel), off = p->offset + j;
            /* rows the batch uses: positions below T, real vocabulary ids */
            if (strstr(p->name, "position_embeddings"))
                j = (size_t)mt_rng_below(&r, (uint64_t)T * TINY.hidden_size), off = p->offset + j;
            if (strstr(p->name, "word_embeddings") || strstr(p->name, "output_layer"))
                j = (size_t)mt_rng_below(&r, (uint64_t)TINY.vocab_size * TINY.hidden_size), off = p->offset + j;
            if (strstr(p->name, "tokentype_embeddings"))
                j = (size_t)mt_rng_below(&r, (uint64_t)2 * TINY.hidden_size), off = p->offset + j;
            double lp = loss_at(&m, off, par[off] + h, &tb.b);
            double lm = loss_at(&m, off, par[off] - h, &tb.b);
            double fd = (lp - lm) / (2.0 * h), an = grad[off];
            double err = fabs(fd - an);
            if (err > atol + rtol * fabs(an)) {
                bad++;
                tap_diag("%s[%zu]: analytic %.6g finite difference %.6g", p->name, j, an, fd);
            }
            double rel = err / (fabs(an) + 1e-3);
            if (rel > worst) worst = rel;
            checked++;
        }
    }
    tap_ok(bad == 0, "%s %s%s%s: whole-model gradient vs finite differences, %d elements of %d tensors "
           "(worst err/(|g|+1e-3) %.2g; tol %g + %g|g|)", NAMES[kind], bename,
           dropout > 0 ? " dropout 0.1" : "", packed_docs ? " packed documents" : "", checked, m.table.n,
           worst, atol, rtol);
    free(grad);
    free(par);
    mt_model_free(&m);
    mt_backend_free(be);
}

/* A sequence packing documents [0, 3) (ended by the end-of-document token)
 * and [3, 8), with their starts and restarted positions: each token's
 * logits are those of its document run alone from position 0. */
static void test_packed_documents(const char *bename, int kind, enum mt_attn_impl impl)
{
    mt_backend *be = backend(bename);
    const struct mt_transformer_config c = tiny(kind, 0.0f);
    const int T = 8, V = c.vocab_size, Vl = (int)c.vocab_size, eod = V - 1;
    const struct mt_model_opts o = {{MT_RECOMPUTE_NONE, MT_RECOMPUTE_UNIFORM, 0}, impl};
    struct mt_model m;
    mt_model_init_opts(&m, &c, be, 1, T, NULL, 1, &o);
    mt_model_init_weights(&m, 5);
    struct mt_rng r;
    mt_rng_seed(&r, 11, 0);
    int32_t tok[8], tgt[8], start[8], pos[8];
    for (int i = 0; i < T; i++) tok[i] = (int32_t)mt_rng_below(&r, (uint64_t)eod), tgt[i] = tok[(i + 1) % T];
    tok[2] = eod;
    mt_batch_documents(tok, 1, T, eod, start, pos);
    const int docs_ok = start[2] == 0 && start[3] == 3 && pos[3] == 0 && pos[7] == 4;
    const struct mt_batch packed = {1, T, tok, NULL, NULL, tgt, NULL, NULL, start, pos};
    float *all = malloc((size_t)T * Vl * sizeof *all), *alone = malloc((size_t)T * Vl * sizeof *alone);
    mt_model_forward_batch(&m, &packed, 0);
    mt_tensor_download(be, all, m.logits);
    double worst = 0.0;
    for (int d = 0; d < 2; d++) {
        const int t0 = d ? 3 : 0, n = d ? T - 3 : 3;
        const struct mt_batch one = {1, n, tok + t0, NULL, NULL, tgt + t0, NULL, NULL, NULL, NULL};
        mt_model_forward_batch(&m, &one, 0);
        mt_tensor_download(be, alone, mt_rows(m.logits, 0, n));
        for (int i = 0; i < n * Vl; i++) {
            const double e = fabs((double)alone[i] - all[(size_t)t0 * Vl + i]);
            worst = e > worst || e != e ? e : worst;
        }
    }
    /* without the starts the second document sees the first: different logits */
    const struct mt_batch plain = {1, T, tok, NULL, NULL, tgt, NULL, NULL, NULL, pos};
    mt_model_forward_batch(&m, &plain, 0);
    mt_tensor_download(be, alone, m.logits);
    double leak = 0.0;
    for (int i = 3 * Vl; i < T * Vl; i++) leak = fmax(leak, fabs((double)alone[i] - all[i]));
    tap_ok(docs_ok && worst < 1e-5 && leak > 1e-3,
           "%s %s %s attention: a packed sequence's logits are its documents' run alone (max |diff| %.2g < 1e-5; "
           "without the document starts %.2g)", NAMES[kind], bename, impl == MT_ATTN_FLASH ? "flash" : "unfused",
           worst, leak);
    free(all), free(alone);
    mt_model_free(&m);
    mt_backend_free(be);
}

/* BERT: the tokens and types written in the padding change nothing */
static void test_padding(const char *bename, int kind)
{
    mt_backend *be = backend(bename);
    struct mt_model m;
    const struct mt_transformer_config TINY = tiny(kind, 0.0f);
    mt_model_init(&m, &TINY, be, 2, 6, NULL, 1);
    mt_model_init_weights(&m, 5);
    struct mt_rng r;
    mt_rng_seed(&r, 11, 0);
    struct tbatch tb;
    make_batch(&tb, &r, kind, TINY.vocab_size);
    const double l1 = mt_model_forward_batch(&m, &tb.b, 0);
    float h1[6 * 16], h2[6 * 16];
    mt_tensor_download(be, h1, mt_rows(mt_model_last_hidden(&m), 6, 4));
    for (int i = 6 + 4; i < 12; i++) tb.tok[i] = (tb.tok[i] + 7) % TINY.vocab_size, tb.types[i] ^= 1;
    const double l2 = mt_model_forward_batch(&m, &tb.b, 0);
    mt_tensor_download(be, h2, mt_rows(mt_model_last_hidden(&m), 6, 4));
    tap_ok(l1 == l2 && memcmp(h1, h2, 4 * 16 * sizeof(float)) == 0,
           "%s %s: other tokens in the padding leave the loss (%.9g, %.9g) and the real tokens' "
           "hidden states unchanged", NAMES[kind], bename, l1, l2);
    mt_model_free(&m);
    mt_backend_free(be);
}

/* BERT: the LM head on the masked rows (training) against all rows (eval) */
static void test_sparse_lm(const char *bename, int kind)
{
    mt_backend *be = backend(bename);
    struct mt_model m;
    const struct mt_transformer_config TINY = tiny(kind, 0.0f);
    mt_model_init(&m, &TINY, be, 2, 6, NULL, 1);
    mt_model_init_weights(&m, 9);
    struct mt_rng r;
    mt_rng_seed(&r, 13, 0);
    struct tbatch tb;
    make_batch(&tb, &r, kind, TINY.vocab_size);
    const size_t P = m.table.total;
    float *g[2] = {malloc(P * 4), malloc(P * 4)};
    double l[2];
    int sparse[2];
    for (int k = 0; k < 2; k++) {
        mt_model_set_training(&m, k == 0, 1); /* no dropout in this configuration */
        mt_model_zero_grad(&m);
        l[k] = mt_model_forward_batch(&m, &tb.b, 0);
        sparse[k] = m.slots[0].lm_sparse;
        mt_model_backward(&m, 1.0f);
        mt_download(be, g[k], m.grads, P * 4);
    }
    double worst = 0, scale = 0;
    for (size_t i = 0; i < P; i++) {
        worst = fmax(worst, fabs((double)g[0][i] - g[1][i]));
        scale = fmax(scale, fabs((double)g[1][i]));
    }
    tap_ok(sparse[0] && !sparse[1] && fabs(l[0] - l[1]) <= 1e-6 * fabs(l[1]) && worst <= 1e-5 * scale,
           "%s %s: the LM head on the masked rows gives the loss (%.9g vs %.9g) and gradients (max diff "
           "%.2g of %.2g) of all rows", NAMES[kind], bename, l[0], l[1], worst, scale);
    free(g[0]);
    free(g[1]);
    mt_model_free(&m);
    mt_backend_free(be);
}

static void test_kv_cache(const char *bename, int llama)
{
    mt_backend *be = backend(bename);
    struct mt_model m;
    const struct mt_transformer_config TINY = tiny(llama, 0.0f);
    const int T = 8, V = TINY.vocab_size;
    mt_model_init(&m, &TINY, be, 1, T, NULL, 1);
    mt_model_init_weights(&m, 3);
    struct mt_rng r;
    mt_rng_seed(&r, 11, 0);
    int32_t tok[8];
    random_tokens(&r, tok, T, TINY.vocab_size);
    float full[8 * 20], step[20];
    mt_model_forward(&m, tok, NULL, 1, T, 0);
    tap_ok(m.logits.rows == T && m.logits.cols == V, "%s %s: logits are (T, vocabulary), padding excluded",
           NAMES[llama], bename);
    mt_tensor_download(be, full, m.logits);
    double worst = 0;
    mt_model_decode_prefill(&m, tok, 3);
    for (int pos = 3; pos < T; pos++) {
        mt_tensor d = mt_model_decode_step(&m, tok[pos], pos);
        mt_tensor_download(be, step, d);
        for (int v = 0; v < V; v++) {
            double e = fabs(step[v] - full[pos * V + v]);
            if (e > worst) worst = e;
        }
    }
    tap_ok(worst < 1e-5, "%s %s: KV-cache decoding equals the full forward (max |diff| %.3g < 1e-5)",
           NAMES[llama], bename, worst);
    mt_model_free(&m);
    mt_backend_free(be);
}

static void test_accumulation(int llama)
{
    mt_backend *be = backend("cpu-ref");
    struct mt_model m;
    const struct mt_transformer_config TINY = tiny(llama, 0.1f);
    mt_model_init(&m, &TINY, be, 4, 6, NULL, 1);
    mt_model_init_weights(&m, 5);
    /* with dropout: a micro-batch's masks follow its samples' indices */
    mt_model_set_training(&m, 1, 77);
    struct mt_rng r;
    mt_rng_seed(&r, 13, 0);
    int32_t tok[24], tgt[24];
    random_tokens(&r, tok, 24, TINY.vocab_size);
    random_tokens(&r, tgt, 24, TINY.vocab_size);
    size_t P = m.table.total;
    float *g1 = malloc(P * 4), *g2 = malloc(P * 4);
    mt_model_zero_grad(&m);
    double l1 = mt_model_forward(&m, tok, tgt, 4, 6, 40);
    mt_model_backward(&m, 1.0f);
    mt_download(be, g1, m.grads, P * 4);
    mt_model_zero_grad(&m);
    double l2 = 0;
    for (int k = 0; k < 2; k++) {
        l2 += 0.5 * mt_model_forward(&m, tok + 12 * k, tgt + 12 * k, 2, 6, 40 + 2 * k);
        mt_model_backward(&m, 0.5f);
    }
    mt_download(be, g2, m.grads, P * 4);
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < P; i++) {
        worst = fmax(worst, fabs(g1[i] - g2[i]));
        gmax = fmax(gmax, fabs(g1[i]));
    }
    tap_ok(fabs(l1 - l2) < 1e-6 * fabs(l1), "%s accumulation with dropout: loss of 2x2 equals 1x4 (%.9g vs %.9g)",
           NAMES[llama], l2, l1);
    tap_ok(worst <= 1e-5 * gmax, "%s accumulation with dropout: gradients of 2x2 equal 1x4 (max diff %.3g, max |g| %.3g)",
           NAMES[llama], worst, gmax);
    free(g1);
    free(g2);
    mt_model_free(&m);
    mt_backend_free(be);
}

static int close_to(double a, double b) { return fabs(a - b) <= 1e-6 * fmax(1.0, fabs(b)); }

static void test_lr(void)
{
    struct mt_lr_schedule s = {1e-3f, 1e-4f, 100, 2000, MT_LR_COSINE};
    tap_ok(mt_lr_at(&s, 0) == 0.0f, "lr: 0 at step 0 with warmup (Megatron)");
    tap_ok(close_to(mt_lr_at(&s, 50), 5e-4), "lr: half way through warmup is lr/2");
    tap_ok(close_to(mt_lr_at(&s, 100), 1e-3), "lr: peak at the end of warmup");
    tap_ok(close_to(mt_lr_at(&s, 1050), 5.5e-4), "lr: cosine midpoint is (max+min)/2");
    tap_ok(close_to(mt_lr_at(&s, 2000), 1e-4) && close_to(mt_lr_at(&s, 5000), 1e-4),
           "lr: min-lr at and after the decay horizon");
    s.style = MT_LR_LINEAR;
    tap_ok(close_to(mt_lr_at(&s, 1050), 5.5e-4) && close_to(mt_lr_at(&s, 575), 7.75e-4),
           "lr: linear decay");
    s.style = MT_LR_CONSTANT;
    tap_ok(close_to(mt_lr_at(&s, 1500), 1e-3), "lr: constant after warmup");
    tap_ok(mt_clip_coeff(4.0, 1.0f) < 0.25f && mt_clip_coeff(0.5, 1.0f) == 1.0f &&
           mt_clip_coeff(4.0, 0.0f) == 1.0f, "clip coefficient max/(norm+1e-6), only below 1");
}

static void test_loader(void)
{
    enum { NT = 1001, T = 10 };
    int32_t toks[NT];
    for (int i = 0; i < NT; i++) toks[i] = i;
    struct mt_stream_range rg = {toks, 0, NT};
    struct mt_dataset ds;
    tap_ok(mt_dataset_stream(&ds, &rg, "t", T) == 0 && ds.num_samples == 100,
           "stream dataset: (1001-1)/10 = 100 samples");
    struct mt_loader a, b, c, v;
    mt_loader_init(&a, &ds, 1234, 1);
    mt_loader_init(&b, &ds, 1234, 1);
    mt_loader_init(&c, &ds, 99, 1);
    mt_loader_init(&v, &ds, 1234, 0);
    int seen[100] = {0}, same = 1, diffseed = 0, diffepoch = 0, inorder = 1, seen1[100] = {0};
    for (uint64_t k = 0; k < 100; k++) {
        size_t i = mt_loader_index(&a, k);
        seen[i]++;
        same &= i == mt_loader_index(&b, k);
        diffseed |= i != mt_loader_index(&c, k);
        inorder &= mt_loader_index(&v, k) == k;
    }
    for (uint64_t k = 100; k < 200; k++) {
        size_t i = mt_loader_index(&a, k);
        seen1[i]++;
        diffepoch |= i != mt_loader_index(&b, k - 100);
    }
    int once = 1;
    for (int i = 0; i < 100; i++) once &= seen[i] == 1 && seen1[i] == 1;
    tap_ok(once, "loader: every sample exactly once per epoch (epochs 0 and 1)");
    tap_ok(same, "loader: same seed, same order");
    tap_ok(diffseed && diffepoch, "loader: other seed or epoch, other order");
    tap_ok(inorder, "loader: validation (no shuffle) reads in order");
    int32_t x[3 * T], y[3 * T];
    mt_loader_batch(&v, 7, 3, x, y);
    int ok = 1;
    for (int b2 = 0; b2 < 3; b2++)
        for (int t = 0; t < T; t++)
            ok &= x[b2 * T + t] == (7 + b2) * T + t && y[b2 * T + t] == (7 + b2) * T + t + 1;
    tap_ok(ok, "loader: samples overlap by one token and targets are shifted inputs");
    mt_loader_free(&a);
    mt_loader_free(&b);
    mt_loader_free(&c);
    mt_loader_free(&v);

    size_t bg[3], en[3];
    tap_ok(mt_split_ranges("90,10,0", 1000, bg, en) == 0 && en[0] == 900 && bg[1] == 900 &&
           en[1] == 1000 && bg[2] == 1000 && en[2] == 1000, "split 90,10,0");
    tap_ok(mt_split_ranges("969,30,1", 1000, bg, en) == 0 && en[0] == 969 && en[1] == 999 &&
           en[2] == 1000, "split 969,30,1");
    tap_ok(mt_split_ranges("9x", 1000, bg, en) != 0 && mt_split_ranges("0,0,0", 1000, bg, en) != 0 &&
           mt_split_ranges("1,2,3,4", 1000, bg, en) != 0, "split: malformed strings rejected");
}

/* The generated table: GPT-2's 12 tensors per layer and the tied output;
 * the Llama-style model without biases, LayerNorm biases and positions,
 * with an output layer of its own, and a tied copy of the embedding on a
 * later pipeline stage only when tied. */
static void test_table(void)
{
    struct mt_transformer_config g = tiny(0, 0), l = tiny(1, 0);
    struct mt_param_table t;
    mt_layout_global_table(&g, 1, &t, NULL);
    int ok = t.n == 2 + 12 * 2 + 2 && mt_params_find(&t, "output_layer.weight") < 0 &&
             mt_params_find(&t, "embedding.position_embeddings.weight") >= 0;
    mt_params_free(&t);
    tap_ok(ok, "gpt table: embeddings, 12 tensors per layer, final LayerNorm; output tied");
    mt_layout_global_table(&l, 1, &t, NULL);
    int fc1 = mt_params_find(&t, "decoder.layers.1.mlp.linear_fc1.weight");
    int qkv = mt_params_find(&t, "decoder.layers.0.self_attention.linear_qkv.weight");
    ok = t.n == 1 + 6 * 2 + 2 && mt_params_find(&t, "output_layer.weight") >= 0 &&
         mt_params_find(&t, "embedding.position_embeddings.weight") < 0 &&
         mt_params_find(&t, "decoder.final_layernorm.bias") < 0 &&
         mt_params_find(&t, "decoder.layers.0.self_attention.linear_qkv.bias") < 0 && fc1 >= 0 &&
         t.p[fc1].shape[0] == 2 * 24 && qkv >= 0 && t.p[qkv].shape[0] == (4 + 2 * 2) * 4;
    mt_params_free(&t);
    tap_ok(ok, "llama table: no biases, no positions, untied output, fc1 [gate; up], qkv (heads + 2 groups) x kv");
    /* the last of two stages of a tied model holds a shared copy */
    struct mt_stage s1 = {1, 0, 0, 1, 1, 1};
    mt_layout_stage_table(&g, &s1, &t);
    int w = mt_params_find(&t, "embedding.word_embeddings.weight");
    ok = w >= 0 && t.p[w].shared;
    mt_params_free(&t);
    mt_layout_stage_table(&l, &s1, &t);
    ok &= mt_params_find(&t, "embedding.word_embeddings.weight") < 0;
    mt_params_free(&t);
    tap_ok(ok, "pipeline: the last stage holds a shared copy of a tied embedding, none when untied");
    /* SwiGLU's fc1 under tp = 2: a shard keeps its gate rows and its up rows */
    struct mt_stage s2 = {2, 1, 1, 1, 0, 2};
    mt_layout_stage_table(&l, &s2, &t);
    const struct mt_param *p = &t.p[mt_params_find(&t, "decoder.layers.0.mlp.linear_fc1.weight")];
    float global[48 * 16], local[24 * 16];
    for (int i = 0; i < 48 * 16; i++) global[i] = (float)(i / 16); /* the row index */
    mt_param_shard(p, 2, 1, global, local);
    ok = p->split_stride == 2 && local[0] == 12 && local[11 * 16] == 23 && local[12 * 16] == 36 &&
         local[23 * 16] == 47;
    float back[48 * 16], blocks[48 * 16];
    mt_param_shard(p, 2, 0, global, blocks);
    memcpy(blocks + 24 * 16, local, sizeof local);
    mt_param_unshard(p, 2, blocks, back);
    ok &= memcmp(back, global, sizeof back) == 0;
    mt_params_free(&t);
    tap_ok(ok, "tp=2 shard of SwiGLU fc1: gate rows 12..23 then up rows 36..47; unshard inverts it");
}

int main(void)
{
    test_table();
    for (int llama = 0; llama < 2; llama++) {
        test_finite_differences("cpu-ref", llama, 0.0f);
        test_finite_differences("cpu", llama, 0.0f);
        test_finite_differences("cpu-ref", llama, 0.1f);
        test_kv_cache("cpu-ref", llama);
        test_kv_cache("cpu", llama);
        test_accumulation(llama);
        for (int impl = 0; impl < 2; impl++) {
            test_packed_documents("cpu-ref", llama, (enum mt_attn_impl)impl);
            test_packed_documents("cpu", llama, (enum mt_attn_impl)impl);
        }
        packed_docs = 1;
        test_finite_differences("cpu-ref", llama, 0.1f);
        test_finite_differences("cpu", llama, 0.0f);
        packed_docs = 0;
    }
    for (int kind = BERT; kind <= BERT_POST; kind++) {
        test_finite_differences("cpu-ref", kind, 0.0f);
        test_finite_differences("cpu", kind, 0.0f);
        test_finite_differences("cpu-ref", kind, 0.1f);
        test_padding("cpu-ref", kind);
        test_padding("cpu", kind);
        test_sparse_lm("cpu-ref", kind);
        test_sparse_lm("cpu", kind);
    }
    /* the classifiers; with dropout, the head's input is dropped too */
    for (int kind = BERT_CLS; kind <= GPT_CLS; kind++) {
        test_finite_differences("cpu-ref", kind, 0.0f);
        test_finite_differences("cpu", kind, 0.0f);
        test_finite_differences("cpu-ref", kind, 0.1f);
        test_padding("cpu-ref", kind);
    }
    test_lr();
    test_loader();
    return tap_done();
}
