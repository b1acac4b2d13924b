/* test_model.c: whole-model checks that need no golden file.
 *  - finite differences of the loss with respect to a sample of parameters
 *  - KV-cache decoding equals the full forward pass
 *  - gradient accumulation: 2 micro-batches of 2 == 1 batch of 4
 *  - the learning-rate schedule at closed-form points
 *  - the data loader: permutations, sample contents, splits */
#include "backend/backend.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "model/gpt.h"
#include "optim/optimizer.h"
#include "tap.h"
#include <math.h>
#include <string.h>

static const struct mt_gpt_config TINY = {
    .num_layers = 2, .hidden_size = 16, .num_heads = 2, .ffn_hidden_size = 64,
    .max_position_embeddings = 8, .vocab_size = 20, .padded_vocab_size = 32,
    .init_method_std = 0.25f};

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
static double loss_at(struct mt_gpt *m, size_t off, float value, const int32_t *tok,
                      const int32_t *tgt, int B, int T)
{
    float old;
    mt_download(m->be, &old, m->params + off, 4);
    mt_upload(m->be, m->params + off, &value, 4);
    double l = mt_gpt_forward(m, tok, tgt, B, T);
    mt_upload(m->be, m->params + off, &old, 4);
    return l;
}

static void test_finite_differences(const char *bename)
{
    mt_backend *be = backend(bename);
    struct mt_gpt m;
    const int B = 2, T = 6;
    mt_gpt_init(&m, &TINY, be, B, T);
    mt_gpt_init_weights(&m, 42);
    struct mt_rng r;
    mt_rng_seed(&r, 7, 0);
    int32_t tok[12], tgt[12];
    random_tokens(&r, tok, B * T, TINY.vocab_size);
    random_tokens(&r, tgt, B * T, TINY.vocab_size);
    /* layernorm biases and weights get non-trivial values too */
    for (int i = 0; i < m.table.n; i++) {
        const struct mt_param *p = &m.table.p[i];
        if (p->init_std > 0) continue;
        float *h = malloc(p->numel * 4);
        for (size_t j = 0; j < p->numel; j++) h[j] = p->init_value + 0.2f * (float)mt_rng_normal(&r);
        mt_gpt_set_param(&m, i, h);
        free(h);
    }
    mt_gpt_zero_grad(&m);
    mt_gpt_forward(&m, tok, tgt, B, T);
    mt_gpt_backward(&m, 1.0f);
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
            if (i == 1) j = (size_t)mt_rng_below(&r, (uint64_t)T * TINY.hidden_size), off = p->offset + j;
            double lp = loss_at(&m, off, par[off] + h, tok, tgt, B, T);
            double lm = loss_at(&m, off, par[off] - h, tok, tgt, B, T);
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
    tap_ok(bad == 0, "%s: whole-model gradient vs finite differences, %d elements of %d tensors "
           "(worst err/(|g|+1e-3) %.2g; tol %g + %g|g|)", bename, checked, m.table.n, worst, atol, rtol);
    free(grad);
    free(par);
    mt_gpt_free(&m);
    mt_backend_free(be);
}

static void test_kv_cache(const char *bename)
{
    mt_backend *be = backend(bename);
    struct mt_gpt m;
    const int T = 8, Vp = TINY.padded_vocab_size;
    mt_gpt_init(&m, &TINY, be, 1, T);
    mt_gpt_init_weights(&m, 3);
    struct mt_rng r;
    mt_rng_seed(&r, 11, 0);
    int32_t tok[8];
    random_tokens(&r, tok, T, TINY.vocab_size);
    float full[8 * 32], step[32];
    mt_gpt_forward(&m, tok, NULL, 1, T);
    mt_download(be, full, m.logits, sizeof full);
    double worst = 0;
    mt_gpt_decode_prefill(&m, tok, 3);
    for (int pos = 3; pos < T; pos++) {
        const float *d = mt_gpt_decode_step(&m, tok[pos], pos);
        mt_download(be, step, d, sizeof step);
        for (int v = 0; v < Vp; v++) {
            double e = fabs(step[v] - full[pos * Vp + v]);
            if (e > worst) worst = e;
        }
    }
    tap_ok(worst < 1e-5, "%s: KV-cache decoding equals the full forward (max |diff| %.3g < 1e-5)",
           bename, worst);
    mt_gpt_free(&m);
    mt_backend_free(be);
}

static void test_accumulation(void)
{
    mt_backend *be = backend("cpu-ref");
    struct mt_gpt m;
    mt_gpt_init(&m, &TINY, be, 4, 6);
    mt_gpt_init_weights(&m, 5);
    struct mt_rng r;
    mt_rng_seed(&r, 13, 0);
    int32_t tok[24], tgt[24];
    random_tokens(&r, tok, 24, TINY.vocab_size);
    random_tokens(&r, tgt, 24, TINY.vocab_size);
    size_t P = m.table.total;
    float *g1 = malloc(P * 4), *g2 = malloc(P * 4);
    mt_gpt_zero_grad(&m);
    double l1 = mt_gpt_forward(&m, tok, tgt, 4, 6);
    mt_gpt_backward(&m, 1.0f);
    mt_download(be, g1, m.grads, P * 4);
    mt_gpt_zero_grad(&m);
    double l2 = 0;
    for (int k = 0; k < 2; k++) {
        l2 += 0.5 * mt_gpt_forward(&m, tok + 12 * k, tgt + 12 * k, 2, 6);
        mt_gpt_backward(&m, 0.5f);
    }
    mt_download(be, g2, m.grads, P * 4);
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < P; i++) {
        worst = fmax(worst, fabs(g1[i] - g2[i]));
        gmax = fmax(gmax, fabs(g1[i]));
    }
    tap_ok(fabs(l1 - l2) < 1e-6 * fabs(l1), "accumulation: loss of 2x2 equals 1x4 (%.9g vs %.9g)", l2, l1);
    tap_ok(worst <= 1e-5 * gmax, "accumulation: gradients of 2x2 equal 1x4 (max diff %.3g, max |g| %.3g)",
           worst, gmax);
    free(g1);
    free(g2);
    mt_gpt_free(&m);
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

int main(void)
{
    test_finite_differences("cpu-ref");
    test_finite_differences("cpu");
    test_kv_cache("cpu-ref");
    test_kv_cache("cpu");
    test_accumulation();
    test_lr();
    test_loader();
    return tap_done();
}
