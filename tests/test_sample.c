/* test_sample.c: mt_sample_token (infer/generate.c) against a direct
 * implementation of its definition: the candidates sorted by a comparison
 * sort (logit descending, ties by ascending id), the top k, the top-p
 * prefix, the draw over the remaining probabilities. Both are fed the same
 * random stream, so they must return the same ids draw for draw: over
 * vocabularies with ties, +0 / -0 and huge ranges, every combination of
 * temperature, top_k and top_p the server and generate pass.
 *
 * Run: tests/test_sample */
#include "core/rng.h"
#include "infer/generate.h"
#include "tap.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cand {
    float logit;
    int id;
};

static int cand_desc(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

/* the definition, with qsort */
static int ref_sample(const float *logits, int V, float temperature, int top_k, float top_p, struct mt_rng *rng)
{
    if (temperature <= 0.0f) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    struct cand *c = malloc((size_t)V * sizeof *c);
    for (int i = 0; i < V; i++) c[i].logit = logits[i], c[i].id = i;
    qsort(c, (size_t)V, sizeof *c, cand_desc);
    int n = top_k > 0 && top_k < V ? top_k : V;
    double *p = malloc((size_t)n * sizeof *p), sum = 0.0;
    for (int i = 0; i < n; i++) sum += p[i] = exp(((double)c[i].logit - (double)c[0].logit) / (double)temperature);
    if (top_p > 0.0f && top_p < 1.0f) {
        double acc = 0.0;
        int keep = n;
        for (int i = 0; i < n; i++)
            if ((acc += p[i] / sum) >= top_p) {
                keep = i + 1;
                break;
            }
        n = keep;
        sum = 0.0;
        for (int i = 0; i < n; i++) sum += p[i];
    }
    double u = mt_rng_double(rng) * sum, acc = 0.0;
    int id = c[n - 1].id;
    for (int i = 0; i < n; i++)
        if (u < (acc += p[i])) {
            id = c[i].id;
            break;
        }
    free(p), free(c);
    return id;
}

/* logits of one kind: 0 normal(0, 3); 1 few distinct values (many ties,
 * +0 and -0 among them); 2 magnitudes from 1e-30 to 1e30 of both signs */
static void fill(float *x, int V, int kind, struct mt_rng *r)
{
    for (int i = 0; i < V; i++) {
        const double g = mt_rng_normal(r);
        if (kind == 0) x[i] = (float)(3.0 * g);
        else if (kind == 1) x[i] = (float)((int)(4.0 * mt_rng_double(r)) - 2) * 0.5f * (i % 3 ? 1.0f : -1.0f);
        else x[i] = (float)((g < 0 ? -1.0 : 1.0) * pow(10.0, 60.0 * mt_rng_double(r) - 30.0));
    }
    if (kind == 1 && V > 3) x[1] = -0.0f, x[2] = 0.0f;
}

int main(void)
{
    static const int vocab[] = {1, 7, 256, 50304};
    static const float temps[] = {1.0f, 0.7f, 1e-3f, 0.0f};
    static const int topk[] = {0, 1, 5, 40, 100000};
    static const float topp[] = {0.0f, 0.5f, 0.9f};
    struct mt_rng gen;
    mt_rng_seed(&gen, 7, 1);
    for (size_t v = 0; v < sizeof vocab / sizeof *vocab; v++)
        for (int kind = 0; kind < 3; kind++) {
            const int V = vocab[v];
            float *x = malloc((size_t)V * sizeof *x);
            fill(x, V, kind, &gen);
            long draws = 0, differ = 0;
            for (size_t t = 0; t < sizeof temps / sizeof *temps; t++)
                for (size_t k = 0; k < sizeof topk / sizeof *topk; k++)
                    for (size_t q = 0; q < sizeof topp / sizeof *topp; q++) {
                        struct mt_rng a, b;
                        mt_rng_seed(&a, 1000 + t * 31 + k * 7 + q, 2);
                        b = a;
                        const int n = V > 256 ? 8 : 60;
                        for (int d = 0; d < n; d++, draws++) {
                            const int got = mt_sample_token(x, V, temps[t], topk[k], topp[q], &a);
                            const int want = ref_sample(x, V, temps[t], topk[k], topp[q], &b);
                            if (got != want && differ++ == 0)
                                tap_diag("V=%d kind %d temperature %g top_k %d top_p %g draw %d: %d, the "
                                         "definition %d", V, kind, temps[t], topk[k], topp[q], d, got, want);
                        }
                    }
            tap_ok(differ == 0, "V=%d logits of kind %d: the definition's ids in %ld draws (%ld differ)", V, kind,
                   draws, differ);
            free(x);
        }
    return tap_done();
}
