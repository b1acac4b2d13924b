/* generate.c: see generate.h */
#include "infer/generate.h"
#include "core/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- sampling --------------------------------------------------------------- */

struct cand {
    float logit;
    int id;
};

static int cand_desc(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id; /* ties: lower id first, for determinism */
}

int mt_sample_token(const float *logits, int V, float temperature, int top_k, float top_p,
                    struct mt_rng *rng)
{
    if (temperature <= 0.0f) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    struct cand *c = malloc((size_t)V * sizeof *c);
    if (!c) mt_die("out of memory");
    /* sorted by logit (the order of logit / temperature); the division is
     * done in double on the difference from the largest, so that a tiny
     * temperature tends to the greedy choice instead of inf - inf */
    for (int i = 0; i < V; i++) c[i].logit = logits[i], c[i].id = i;
    qsort(c, (size_t)V, sizeof *c, cand_desc);
    int n = V;
    if (top_k > 0 && top_k < n) n = top_k;
    double sum = 0.0;
    double *p = malloc((size_t)n * sizeof *p);
    if (!p) mt_die("out of memory");
    for (int i = 0; i < n; i++)
        sum += p[i] = exp(((double)c[i].logit - (double)c[0].logit) / (double)temperature);
    if (top_p > 0.0f && top_p < 1.0f) {
        double acc = 0.0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            acc += p[i] / sum;
            if (acc >= top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        sum = 0.0;
        for (int i = 0; i < n; i++) sum += p[i];
    }
    double u = mt_rng_double(rng) * sum, acc = 0.0;
    int id = c[n - 1].id;
    for (int i = 0; i < n; i++) {
        acc += p[i];
        if (u < acc) {
            id = c[i].id;
            break;
        }
    }
    free(p);
    free(c);
    return id;
}

void mt_generate(struct mt_model *m, const struct mt_tokenizer *tok, const int32_t *prompt,
                 int nprompt, int max_new, float temperature, int top_k, float top_p,
                 struct mt_rng *rng, FILE *out)
{
    const int Tmax = m->T, V = m->cfg.vocab_size;
    const size_t cap = (size_t)nprompt + (size_t)max_new + 1; /* no int overflow at INT_MAX tokens */
    int32_t *ctx = malloc(cap * sizeof *ctx);
    float *logits = malloc((size_t)V * sizeof *logits);
    if (!ctx || !logits) mt_die("out of memory");
    memcpy(ctx, prompt, (size_t)nprompt * sizeof *ctx);
    int n = nprompt, start = nprompt > Tmax ? nprompt - Tmax : 0;
    mt_tensor dl = mt_model_decode_prefill(m, ctx + start, n - start);
    char buf[MT_TOKEN_MAX_BYTES];
    for (int made = 1; made <= max_new; made++) {
        /* the logits are the real vocabulary's: padding is never sampled */
        mt_tensor_download(m->be, logits, dl);
        int id = mt_sample_token(logits, V, temperature, top_k, top_p, rng);
        ctx[n++] = id;
        size_t nb = tok->decode_token(tok, id, buf);
        fwrite(buf, 1, nb, out);
        fflush(out);
        if (made == max_new) break; /* no forward pass for a token never sampled */
        if (n - start < Tmax) {
            dl = mt_model_decode_step(m, id, n - 1 - start);
        } else {
            /* the position table is full: keep the newest half as context */
            start = n - Tmax / 2;
            if (start >= n) start = n - 1;
            dl = mt_model_decode_prefill(m, ctx + start, n - start);
        }
    }
    free(ctx);
    free(logits);
}

