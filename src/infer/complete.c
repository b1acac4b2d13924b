/* complete.c: see complete.h */
#include "infer/complete.h"
#include "core/error.h"
#include "infer/generate.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* log-probabilities from one row of logits: lp of `id`, and the top_n best */
static double score_row(const float *x, int V, int32_t id, int top_n, int32_t *top_ids, double *top_lp)
{
    double mx = x[0];
    for (int i = 1; i < V; i++)
        if (x[i] > mx) mx = x[i];
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)x[i] - mx);
    const double lse = mx + log(sum);
    int k = 0; /* insertion into the best top_n so far; ties: the lower id first */
    for (int i = 0; i < V && top_n > 0; i++) {
        if (k == top_n && !(x[i] > x[top_ids[k - 1]])) continue;
        int j = k < top_n ? k++ : k - 1;
        while (j > 0 && x[i] > x[top_ids[j - 1]]) {
            top_ids[j] = top_ids[j - 1];
            j--;
        }
        top_ids[j] = i;
    }
    for (int j = 0; j < k; j++) top_lp[j] = (double)x[top_ids[j]] - lse;
    return (double)x[id] - lse;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) mt_die("out of memory");
    return p;
}

/* the first position >= from in s[0, n) where one of the stop strings begins, or -1 */
static long find_stop(const char *s, size_t n, size_t from, const char *const *stop, int nstop)
{
    long best = -1;
    for (int k = 0; k < nstop; k++) {
        const size_t L = strlen(stop[k]);
        if (L == 0 || L > n) continue;
        size_t start = from > L - 1 ? from - (L - 1) : 0;
        for (size_t i = start; i + L <= n; i++)
            if (memcmp(s + i, stop[k], L) == 0) {
                if (best < 0 || (long)i < best) best = (long)i;
                break;
            }
    }
    return best;
}

void mt_complete(struct mt_model *m, const struct mt_tokenizer *tok, const int32_t *prompt, int nprompt,
                 const struct mt_complete_params *p, struct mt_rng *rng, struct mt_completion *c)
{
    const int V = m->cfg.vocab_size, Tmax = m->T, N = p->top_n;
    int cap = nprompt + p->max_new;
    if (cap > Tmax) cap = Tmax > nprompt ? Tmax : nprompt;
    memset(c, 0, sizeof *c);
    c->ids = xmalloc((size_t)cap * sizeof *c->ids);
    c->lp = xmalloc((size_t)cap * sizeof *c->lp);
    c->top_ids = xmalloc((size_t)cap * (size_t)(N ? N : 1) * sizeof *c->top_ids);
    c->top_lp = xmalloc((size_t)cap * (size_t)(N ? N : 1) * sizeof *c->top_lp);
    memcpy(c->ids, prompt, (size_t)nprompt * sizeof *prompt);
    for (int i = 0; i < cap; i++) c->lp[i] = NAN;
    c->n = c->nprompt = nprompt;
    c->finish = MT_FINISH_LENGTH;

    if (p->score_prompt && nprompt > 1) {
        const struct mt_batch b = {1, nprompt, prompt, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
        mt_model_forward_batch(m, &b, 0);
        float *all = xmalloc((size_t)nprompt * (size_t)V * sizeof *all);
        mt_tensor_download(m->be, all, m->logits);
        for (int i = 1; i < nprompt; i++)
            c->lp[i] = score_row(all + (size_t)(i - 1) * V, V, prompt[i], N, c->top_ids + (size_t)i * N,
                                 c->top_lp + (size_t)i * N);
        free(all);
    }
    if (p->max_new <= 0 || nprompt >= Tmax) return;

    float *logits = xmalloc((size_t)V * sizeof *logits);
    char *text = NULL, piece[MT_TOKEN_MAX_BYTES];
    size_t tlen = 0, tcap = 0;
    mt_tensor dl = mt_model_decode_prefill(m, prompt, nprompt);
    while (c->n < cap) {
        mt_tensor_download(m->be, logits, dl);
        const int32_t id = mt_sample_token(logits, V, p->temperature, p->top_k, p->top_p, rng);
        const int i = c->n++;
        c->ids[i] = id;
        c->lp[i] = score_row(logits, V, id, N, c->top_ids + (size_t)i * N, c->top_lp + (size_t)i * N);
        if (p->stop_at_eod && id == tok->eod) {
            c->finish = MT_FINISH_EOD;
            break;
        }
        if (p->nstop > 0) {
            const size_t k = tok->decode_token(tok, id, piece);
            if (tlen + k + 1 > tcap) {
                tcap = 2 * (tlen + k + 1);
                text = realloc(text, tcap);
                if (!text) mt_die("out of memory");
            }
            memcpy(text + tlen, piece, k);
            const long at = find_stop(text, tlen + k, tlen, p->stop, p->nstop);
            tlen += k;
            if (at >= 0) {
                c->finish = MT_FINISH_STOP;
                c->stop_at = (size_t)at;
                break;
            }
        }
        if (c->n == cap) break; /* no forward pass for a token never sampled */
        dl = mt_model_decode_step(m, id, c->n - 1);
    }
    free(text);
    free(logits);
}

char *mt_completion_text(const struct mt_tokenizer *tok, const struct mt_completion *c, int from,
                         int drop_eod, size_t *len)
{
    char *s = xmalloc((size_t)(c->n - from) * MT_TOKEN_MAX_BYTES + 1);
    size_t n = 0, gen = 0; /* gen: where the generated text starts */
    const int end = drop_eod && c->finish == MT_FINISH_EOD ? c->n - 1 : c->n;
    for (int i = from; i < end; i++) {
        if (i == c->nprompt) gen = n;
        n += tok->decode_token(tok, c->ids[i], s + n);
    }
    if (from >= c->nprompt || end <= c->nprompt) gen = from >= c->nprompt ? 0 : n;
    if (c->finish == MT_FINISH_STOP && gen + c->stop_at < n) n = gen + c->stop_at;
    s[n] = '\0';
    *len = n;
    return s;
}

void mt_completion_free(struct mt_completion *c)
{
    free(c->ids);
    free(c->lp);
    free(c->top_ids);
    free(c->top_lp);
    memset(c, 0, sizeof *c);
}
