/* bert_dataset.c: see bert_dataset.h */
#include "data/bert_dataset.h"
#include "core/error.h"
#include "data/gpt_dataset.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LONG_SENTENCE_LEN 512 /* helpers.cpp: documents with a longer sentence are skipped */

/* ---- std::mt19937_64 ------------------------------------------------------------------ */

void mt_mt64_seed(struct mt_mt64 *g, uint64_t seed)
{
    g->mt[0] = seed;
    for (int i = 1; i < 312; i++)
        g->mt[i] = 6364136223846793005ULL * (g->mt[i - 1] ^ (g->mt[i - 1] >> 62)) + (uint64_t)i;
    g->i = 312;
}

uint64_t mt_mt64_next(struct mt_mt64 *g)
{
    static const uint64_t MAG[2] = {0, 0xB5026F5AA96619E9ULL};
    const uint64_t UM = 0xFFFFFFFF80000000ULL, LM = 0x7FFFFFFFULL;
    if (g->i >= 312) {
        int k;
        for (k = 0; k < 312 - 156; k++) {
            const uint64_t x = (g->mt[k] & UM) | (g->mt[k + 1] & LM);
            g->mt[k] = g->mt[k + 156] ^ (x >> 1) ^ MAG[x & 1];
        }
        for (; k < 311; k++) {
            const uint64_t x = (g->mt[k] & UM) | (g->mt[k + 1] & LM);
            g->mt[k] = g->mt[k + (156 - 312)] ^ (x >> 1) ^ MAG[x & 1];
        }
        const uint64_t x = (g->mt[311] & UM) | (g->mt[0] & LM);
        g->mt[311] = g->mt[155] ^ (x >> 1) ^ MAG[x & 1];
        g->i = 0;
    }
    uint64_t x = g->mt[g->i++];
    x ^= (x >> 29) & 0x5555555555555555ULL;
    x ^= (x << 17) & 0x71D67FFFEDA60000ULL;
    x ^= (x << 37) & 0xFFF7EEE000000000ULL;
    x ^= x >> 43;
    return x;
}

/* ---- the mapping (helpers.cpp build_mapping) -------------------------------------------- */

/* get_target_sample_len: a short target with probability 1/ratio */
static int64_t target_len(int32_t ratio, int32_t max_len, struct mt_np_rng *g)
{
    if (ratio == 0) return max_len;
    const uint32_t r = mt_np_rng_next32(g);
    if (r % (uint32_t)ratio == 0) return 2 + r % (uint32_t)(max_len - 1);
    return max_len;
}

/* One pass over the epochs; counts the samples, or writes them when map != NULL. */
static uint64_t mapping_pass(const struct mt_bert_dataset *d, uint64_t min_samples, int64_t *map)
{
    const struct mt_indexed *x = d->src;
    const int32_t max_len = d->cfg.seq_length - 3, min_sent = d->cfg.binary_head ? 2 : 1;
    const int32_t ratio = d->cfg.short_seq_prob > 0 ? (int32_t)nearbyint(1.0 / d->cfg.short_seq_prob) : 0;
    struct mt_np_rng g; /* std::mt19937(seed): the same generator as numpy's */
    mt_np_rng_seed(&g, (uint32_t)d->cfg.seed);
    uint64_t n = 0;
    for (int epoch = 0;; epoch++) {
        if (n >= min_samples) break;
        const uint64_t before = n;
        for (uint64_t doc = d->doc0; doc < d->doc1; doc++) {
            const int64_t first = mt_indexed_doc_index(x, doc), last = mt_indexed_doc_index(x, doc + 1);
            int64_t remain = last - first, prev = first;
            int long_sentence = 0;
            if (remain > 1)
                for (int64_t s = first; s < last && !long_sentence; s++)
                    long_sentence = mt_indexed_length(x, (uint64_t)s) > LONG_SENTENCE_LEN;
            if (remain < min_sent || long_sentence) continue;
            int64_t seq_len = 0, nsent = 0, target = target_len(ratio, max_len, &g);
            for (int64_t s = first; s < last; s++) {
                seq_len += mt_indexed_length(x, (uint64_t)s);
                nsent++;
                remain--;
                if ((seq_len >= target && remain > 1 && nsent >= min_sent) || remain == 0) {
                    if (map) map[3 * n] = prev, map[3 * n + 1] = s + 1, map[3 * n + 2] = target;
                    n++;
                    prev = s + 1;
                    target = target_len(ratio, max_len, &g);
                    seq_len = nsent = 0;
                }
            }
        }
        if (n == before) break; /* no document gives a sample */
    }
    return n;
}

int mt_bert_dataset_build(struct mt_bert_dataset *d, const struct mt_indexed *src, uint64_t doc0,
                          uint64_t doc1, const struct mt_bert_config *cfg, uint64_t min_samples,
                          const char *name, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    d->src = src;
    d->doc0 = doc0;
    d->doc1 = doc1;
    d->cfg = *cfg;
    if (cfg->seq_length < 5) {
        snprintf(err, errlen, "--seq-length %d is too short for a BERT sample ([CLS] A [SEP] B [SEP])",
                 cfg->seq_length);
        return -1;
    }
    const uint64_t n = mapping_pass(d, min_samples ? min_samples : 1, NULL);
    if (n == 0) {
        snprintf(err, errlen, "%s gives no BERT sample: it needs documents of at least %d sentence%s "
                 "(is it a --split-sentences dataset?), none over %d tokens",
                 name, cfg->binary_head ? 2 : 1, cfg->binary_head ? "s" : "", LONG_SENTENCE_LEN);
        return -1;
    }
    d->map = malloc(3 * n * sizeof *d->map);
    if (!d->map) mt_die("out of memory");
    mapping_pass(d, min_samples ? min_samples : 1, d->map);
    d->num_samples = n;
    struct mt_mt64 g;
    mt_mt64_seed(&g, cfg->seed + 1);
    for (uint64_t i = n - 1; i > 0; i--) {
        const uint64_t j = mt_mt64_next(&g) % (i + 1);
        for (int k = 0; k < 3; k++) {
            const int64_t t = d->map[3 * i + k];
            d->map[3 * i + k] = d->map[3 * j + k];
            d->map[3 * j + k] = t;
        }
    }
    return 0;
}

void mt_bert_dataset_free(struct mt_bert_dataset *d)
{
    free(d->map);
    memset(d, 0, sizeof *d);
}

/* ---- one sample ------------------------------------------------------------------------- */

/* the tokens of sentences [s0, s1) appended to buf at *n */
static void read_sentences(const struct mt_indexed *x, int64_t s0, int64_t s1, int32_t *buf, int64_t *n)
{
    for (int64_t s = s0; s < s1; s++) {
        const int32_t len = mt_indexed_length(x, (uint64_t)s);
        mt_indexed_read(x, (uint64_t)s, 0, (uint64_t)len, buf + *n);
        *n += len;
    }
}

/* whole-word masking (bert_dataset.h) over tokens[0..len) */
static void mask_tokens(const struct mt_bert_config *c, struct mt_np_rng *g, struct mt_bert_sample *s)
{
    const int len = s->length;
    int32_t *word = malloc((size_t)len * sizeof *word), *wlen = malloc((size_t)len * sizeof *wlen);
    unsigned char *chosen = calloc((size_t)len, 1);
    if (!word || !wlen || !chosen) mt_die("out of memory");
    int nw = 0;
    for (int i = 0; i < len; i++) {
        const int32_t t = s->tokens[i];
        if (t == c->cls || t == c->sep) continue;
        const int cont = c->is_cont && t >= 0 && t < c->vocab_size && c->is_cont[t];
        if (cont && nw > 0 && word[nw - 1] + wlen[nw - 1] == i) wlen[nw - 1]++;
        else word[nw] = i, wlen[nw] = 1, nw++;
    }
    int want = (int)nearbyint(c->mask_prob * len);
    if (want < 1) want = 1;
    int32_t *order = malloc((size_t)(nw > 0 ? nw : 1) * sizeof *order);
    if (!order) mt_die("out of memory");
    for (int k = 0; k < nw; k++) order[k] = k;
    mt_np_shuffle_i32(g, order, (size_t)nw);
    int got = 0;
    for (int k = 0; k < nw && got < want; k++) {
        const int w = order[k];
        if (got + wlen[w] > want) continue; /* a word is masked whole or not at all */
        for (int j = 0; j < wlen[w]; j++) chosen[word[w] + j] = 1;
        got += wlen[w];
    }
    free(order);
    for (int i = 0; i < len; i++) {
        if (!chosen[i]) continue;
        s->labels[i] = s->tokens[i];
        s->loss_mask[i] = 1.0f;
        const double r = mt_np_rng_double(g);
        if (r < 0.8) s->tokens[i] = c->mask;
        else if (r >= 0.9) s->tokens[i] = (int32_t)mt_np_rng_interval(g, (uint64_t)(c->vocab_size - 1));
    }
    free(word);
    free(wlen);
    free(chosen);
}

void mt_bert_dataset_sample(const struct mt_bert_dataset *d, uint64_t i, struct mt_bert_sample *s)
{
    const struct mt_bert_config *c = &d->cfg;
    const int T = c->seq_length;
    const int64_t s0 = d->map[3 * i], s1 = d->map[3 * i + 1], target = d->map[3 * i + 2];
    struct mt_np_rng g;
    mt_np_rng_seed(&g, (uint32_t)((c->seed + i) & 0xFFFFFFFFu));
    /* A and B: the sentences cut at the pivot, maybe swapped */
    int64_t nsent = s1 - s0, pivot = nsent, total = 0;
    for (int64_t k = s0; k < s1; k++) total += mt_indexed_length(d->src, (uint64_t)k);
    s->is_random = 0;
    if (c->binary_head) {
        pivot = 1;
        if (nsent >= 3) pivot = 1 + (int64_t)mt_np_rng_interval(&g, (uint64_t)(nsent - 2));
        s->is_random = mt_np_rng_double(&g) < 0.5;
    }
    int32_t *buf = malloc((size_t)(total > 0 ? total : 1) * sizeof *buf);
    if (!buf) mt_die("out of memory");
    int64_t na = 0, nb = 0;
    read_sentences(d->src, s0, s0 + pivot, buf, &na);
    nb = na;
    read_sentences(d->src, s0 + pivot, s1, buf, &nb);
    nb -= na;
    int64_t a0 = 0, b0 = na; /* A = buf[a0, a0 + na), B = buf[b0, b0 + nb) */
    if (s->is_random) {
        const int64_t t0 = a0, tn = na;
        a0 = b0, na = nb, b0 = t0, nb = tn;
    }
    /* trim the longer part from either end until both fit */
    while (na + nb > target) {
        int64_t *start = na > nb ? &a0 : &b0, *len = na > nb ? &na : &nb;
        if (mt_np_rng_double(&g) < 0.5) (*start)++;
        (*len)--;
    }
    int n = 0;
    s->tokens[n] = c->cls, s->types[n++] = 0;
    for (int64_t k = 0; k < na; k++) s->tokens[n] = buf[a0 + k], s->types[n++] = 0;
    s->tokens[n] = c->sep, s->types[n++] = 0;
    if (nb > 0) {
        for (int64_t k = 0; k < nb; k++) s->tokens[n] = buf[b0 + k], s->types[n++] = 1;
        s->tokens[n] = c->sep, s->types[n++] = 1;
    }
    free(buf);
    s->length = n;
    for (int k = 0; k < T; k++) {
        s->labels[k] = 0;
        s->loss_mask[k] = 0.0f;
        if (k >= n) s->tokens[k] = c->pad, s->types[k] = 0;
    }
    if (c->mask_prob > 0) mask_tokens(c, &g, s);
}

/* ---- the --data-path entry point --------------------------------------------------------- */

static const char *const SPLIT_NAMES[3] = {"train", "valid", "test"};

static int build_split(struct mt_bert_data *d, int i, const struct mt_blend_spec *b, const char *split,
                       const struct mt_bert_config *cfg, uint64_t ns, char *err, size_t errlen)
{
    char name[600];
    double *w = NULL;
    d->parts[i] = calloc((size_t)b->n, sizeof *d->parts[i]);
    if (!d->parts[i]) mt_die("out of memory");
    uint64_t size = 0;
    if (b->weights) {
        w = malloc((size_t)b->n * sizeof *w);
        if (!w) mt_die("out of memory");
        mt_np_normalize(b->weights, (size_t)b->n, w);
    }
    for (int k = 0; k < b->n; k++) {
        const struct mt_indexed *x = d->sources[k];
        int present[3];
        uint64_t bb[3], ee[3];
        const uint64_t ndoc = x->num_doc_indices > 0 ? x->num_doc_indices - 1 : 0;
        if (mt_gpt_split(split, ndoc, present, bb, ee, err, errlen) != 0) goto fail;
        if (bb[i] == ee[i] && i > 0) { /* no documents for validation or test: no such split */
            free(w);
            return 0;
        }
        uint64_t want = ns;
        if (w) {
            const uint64_t target = (uint64_t)ceil((double)ns * w[k]);
            want = (uint64_t)ceil((double)target * 1.005);
            size += target;
        }
        snprintf(name, sizeof name, "the %s split of %s (documents %llu to %llu)", SPLIT_NAMES[i],
                 b->prefixes[k], (unsigned long long)bb[i], (unsigned long long)ee[i]);
        if (mt_bert_dataset_build(&d->parts[i][k], x, bb[i], ee[i], cfg, want, name, err, errlen) != 0)
            goto fail;
        if (!w) size = d->parts[i][k].num_samples;
    }
    if (w) {
        d->dataset_index[i] = malloc(size * sizeof *d->dataset_index[i]);
        d->dataset_sample_index[i] = malloc(size * sizeof *d->dataset_sample_index[i]);
        if (!d->dataset_index[i] || !d->dataset_sample_index[i]) mt_die("out of memory");
        mt_blending_indices(w, b->n, size, d->dataset_index[i], d->dataset_sample_index[i]);
    }
    d->size[i] = size;
    d->present[i] = 1;
    free(w);
    return 0;
fail:
    free(w);
    return -1;
}

int mt_bert_data_build(struct mt_bert_data *out, int nwords, char **words, const char *split,
                       const struct mt_bert_config *cfg, const uint64_t num_samples[3], char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct mt_blend_spec b;
    if (mt_data_parse_blend(nwords, words, "--data-path", &b, err, errlen) != 0) return -1;
    int rc = 0;
    if (b.n > 1 && !b.weights)
        rc = mt_errf(err, errlen, "--data-path: give a weight before each of the %d prefixes (W1 P1 W2 P2 ...)",
                     b.n);
    out->nparts = b.n;
    out->sources = calloc((size_t)b.n, sizeof *out->sources);
    if (!out->sources) mt_die("out of memory");
    for (int k = 0; rc == 0 && k < b.n; k++) {
        out->sources[k] = mt_indexed_open(b.prefixes[k], err, errlen);
        if (!out->sources[k]) rc = -1;
        else out->nsources = k + 1;
    }
    int present[3];
    uint64_t bb[3], ee[3];
    if (rc == 0) rc = mt_gpt_split(split, 0, present, bb, ee, err, errlen);
    for (int i = 0; rc == 0 && i < 3; i++)
        if (present[i] && num_samples[i] > 0) rc = build_split(out, i, &b, split, cfg, num_samples[i], err, errlen);
    free(b.prefixes);
    free(b.weights);
    if (rc != 0) mt_bert_data_free(out);
    return rc;
}

void mt_bert_data_free(struct mt_bert_data *d)
{
    for (int i = 0; i < 3; i++) {
        if (d->parts[i])
            for (int k = 0; k < d->nparts; k++) mt_bert_dataset_free(&d->parts[i][k]);
        free(d->parts[i]);
        free(d->dataset_index[i]);
        free(d->dataset_sample_index[i]);
    }
    for (int k = 0; k < d->nsources; k++) mt_indexed_close(d->sources[k]);
    free(d->sources);
    memset(d, 0, sizeof *d);
}

void mt_bert_data_sample(const struct mt_bert_data *d, int split, uint64_t counter,
                         struct mt_bert_sample *s)
{
    MT_ASSERT(d->present[split] && d->size[split] > 0);
    const uint64_t c = counter % d->size[split];
    if (!d->dataset_index[split]) {
        mt_bert_dataset_sample(&d->parts[split][0], c, s);
        return;
    }
    const struct mt_bert_dataset *part = &d->parts[split][d->dataset_index[split][c]];
    mt_bert_dataset_sample(part, (uint64_t)d->dataset_sample_index[split][c] % part->num_samples, s);
}

void mt_bert_data_describe(const struct mt_bert_data *d, FILE *f)
{
    for (int i = 0; i < 3; i++) {
        if (!d->present[i]) {
            fprintf(f, "%s: none\n", SPLIT_NAMES[i]);
            continue;
        }
        fprintf(f, "%s: %llu BERT samples", SPLIT_NAMES[i], (unsigned long long)d->size[i]);
        for (int k = 0; k < d->nparts; k++) {
            const struct mt_bert_dataset *p = &d->parts[i][k];
            fprintf(f, "%s documents [%llu, %llu) of %s: %llu samples", k ? ";" : " from", (unsigned long long)p->doc0,
                    (unsigned long long)p->doc1, p->src->prefix, (unsigned long long)p->num_samples);
        }
        fprintf(f, "\n");
    }
}
