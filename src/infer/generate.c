/* generate.c: see generate.h */
#include "infer/generate.h"
#include "core/error.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- sampling --------------------------------------------------------------- */

struct cand {
    float logit;
    int id;
};

/* The candidates in descending logit order, ties by ascending id: a stable
 * LSD radix sort (4 passes of 8 bits) of the logits' bits mapped to an
 * unsigned order, over the ids in ascending order: the order qsort gave
 * with that comparison (-0 counts as +0, as a comparison does; NaN logits
 * sort as their bits say), in O(V). A draw at the GPT-2 vocabulary took
 * 2.1 ms instead of 8.3 (tests/test_sample.c holds the two equal). */
static void sort_desc(struct cand *c, struct cand *tmp, uint32_t *key, uint32_t *ktmp, int V)
{
    for (int i = 0; i < V; i++) {
        uint32_t u;
        const float x = c[i].logit == 0.0f ? 0.0f : c[i].logit;
        memcpy(&u, &x, sizeof u);
        /* ascending floats -> ascending unsigned, then complemented: descending */
        key[i] = ~(u & 0x80000000u ? ~u : u | 0x80000000u);
    }
    for (int shift = 0; shift < 32; shift += 8) {
        size_t count[257] = {0};
        for (int i = 0; i < V; i++) count[((key[i] >> shift) & 0xffu) + 1]++;
        for (int b = 0; b < 256; b++) count[b + 1] += count[b];
        for (int i = 0; i < V; i++) {
            const size_t at = count[(key[i] >> shift) & 0xffu]++;
            tmp[at] = c[i], ktmp[at] = key[i];
        }
        memcpy(c, tmp, (size_t)V * sizeof *c);
        memcpy(key, ktmp, (size_t)V * sizeof *key);
    }
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
    struct cand *c = malloc(2 * (size_t)V * sizeof *c);
    uint32_t *key = malloc(2 * (size_t)V * sizeof *key);
    if (!c || !key) mt_die("out of memory");
    /* sorted by logit (the order of logit / temperature); the division is
     * done in double on the difference from the largest, so that a tiny
     * temperature tends to the greedy choice instead of inf - inf */
    for (int i = 0; i < V; i++) c[i].logit = logits[i], c[i].id = i;
    sort_desc(c, c + V, key, key + V, V);
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
    free(key);
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

