/* gpt_dataset.c: see gpt_dataset.h */
#include "data/gpt_dataset.h"
#include "core/error.h"
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n, size_t size, const char *what)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) mt_die("out of memory for %s (%zu x %zu bytes)", what, n, size);
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (!p) mt_die("out of memory");
    memcpy(p, s, n);
    return p;
}

/* ---- numpy.random.RandomState -------------------------------------------------- */

#define MT_N 624
#define MT_M 397

void mt_np_rng_seed(struct mt_np_rng *r, uint32_t seed)
{
    r->key[0] = seed;
    for (int i = 1; i < MT_N; i++)
        r->key[i] = 1812433253U * (r->key[i - 1] ^ (r->key[i - 1] >> 30)) + (uint32_t)i;
    r->pos = MT_N;
}

static void mt_generate(struct mt_np_rng *r)
{
    const uint32_t UPPER = 0x80000000U, LOWER = 0x7fffffffU, A = 0x9908b0dfU;
    uint32_t *k = r->key;
    int i;
    for (i = 0; i < MT_N - MT_M; i++) {
        uint32_t y = (k[i] & UPPER) | (k[i + 1] & LOWER);
        k[i] = k[i + MT_M] ^ (y >> 1) ^ ((0U - (y & 1U)) & A);
    }
    for (; i < MT_N - 1; i++) {
        uint32_t y = (k[i] & UPPER) | (k[i + 1] & LOWER);
        k[i] = k[i + MT_M - MT_N] ^ (y >> 1) ^ ((0U - (y & 1U)) & A);
    }
    uint32_t y = (k[MT_N - 1] & UPPER) | (k[0] & LOWER);
    k[MT_N - 1] = k[MT_M - 1] ^ (y >> 1) ^ ((0U - (y & 1U)) & A);
    r->pos = 0;
}

uint32_t mt_np_rng_next32(struct mt_np_rng *r)
{
    if (r->pos >= MT_N) mt_generate(r);
    uint32_t y = r->key[r->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= y >> 18;
    return y;
}

double mt_np_rng_double(struct mt_np_rng *r)
{
    const uint32_t a = mt_np_rng_next32(r) >> 5, b = mt_np_rng_next32(r) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
}

uint64_t mt_np_rng_interval(struct mt_np_rng *r, uint64_t max)
{
    if (max == 0) return 0;
    uint64_t mask = max, v;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    mask |= mask >> 32;
    if (max <= 0xffffffffULL) {
        while ((v = (mt_np_rng_next32(r) & mask)) > max) {}
    } else {
        do {
            uint64_t hi = mt_np_rng_next32(r);
            v = (hi << 32 | mt_np_rng_next32(r)) & mask;
        } while (v > max);
    }
    return v;
}

#define DEFINE_SHUFFLE(name, T) \
    void name(struct mt_np_rng *r, T *a, size_t n) \
    { \
        for (size_t i = n; i-- > 1;) { \
            size_t j = (size_t)mt_np_rng_interval(r, i); \
            T t = a[i]; \
            a[i] = a[j]; \
            a[j] = t; \
        } \
    }
DEFINE_SHUFFLE(mt_np_shuffle_i32, int32_t)
DEFINE_SHUFFLE(mt_np_shuffle_u32, uint32_t)
DEFINE_SHUFFLE(mt_np_shuffle_i64, int64_t)

/* numpy's pairwise summation (umath loops: 8 accumulators, blocks of 128) */
static double pairwise(const double *a, size_t n)
{
    if (n < 8) {
        double res = 0.;
        for (size_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        size_t i;
        for (int k = 0; k < 8; k++) r[k] = a[k];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int k = 0; k < 8; k++) r[k] += a[i + k];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise(a, n2) + pairwise(a + n2, n - n2);
}

double mt_np_sum(const double *a, size_t n)
{
    /* the reduction runs over buffers of 8192 elements, added to an initial 0 */
    double s = 0.;
    for (size_t i = 0; i < n; i += 8192) s += pairwise(a + i, n - i < 8192 ? n - i : 8192);
    return s;
}

void mt_np_normalize(const double *w, size_t n, double *out)
{
    double s = mt_np_sum(w, n);
    for (size_t i = 0; i < n; i++) out[i] = w[i] / s;
}

/* ---- split ------------------------------------------------------------------------ */

int mt_gpt_split(const char *split, uint64_t n, int present[3], uint64_t begin[3],
                 uint64_t end[3], char *err, size_t errlen)
{
    const char *what = "expected up to three non-negative numbers, e.g. \"969,30,1\"";
    double w[3] = {0, 0, 0};
    int k = 0;
    if (!split) return mt_errf(err, errlen, "--split: no value");
    for (const char *p = split; *p;) {
        if (*p == ',' || *p == '/' || *p == ' ' || *p == '\t') {
            p++;
            continue;
        }
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return mt_errf(err, errlen, "--split '%s': unexpected '%c': %s", split, *p, what);
        size_t len = strspn(p, "0123456789.");
        char buf[64];
        char *e;
        if (len >= sizeof buf)
            return mt_errf(err, errlen, "--split '%s': number too long: %s", split, what);
        memcpy(buf, p, len);
        buf[len] = 0;
        double v = strtod(buf, &e);
        if (*e || e == buf || !isfinite(v))
            return mt_errf(err, errlen, "--split '%s': '%s' is not a number: %s", split, buf, what);
        if (k == 3) return mt_errf(err, errlen, "--split '%s': more than three weights: %s", split, what);
        w[k++] = v;
        p += len;
    }
    if (k == 0) return mt_errf(err, errlen, "--split '%s': %s", split, what);
    double sum = mt_np_sum(w, 3);
    if (!(sum > 0))
        return mt_errf(err, errlen, "--split '%s': the weights add up to 0: %s", split, what);
    double nw[3], ex[4];
    mt_np_normalize(w, 3, nw);
    ex[0] = 0;
    for (int i = 0; i < 3; i++) ex[i + 1] = ex[i] + nw[i];
    for (int i = 0; i < 3; i++) {
        present[i] = ex[i + 1] > ex[i];
        begin[i] = end[i] = 0;
        if (!present[i]) continue;
        /* int(round(b * float(n))): Python rounds halves to even, as nearbyint */
        double b = nearbyint(ex[i] * (double)n), e = nearbyint(ex[i + 1] * (double)n);
        begin[i] = (uint64_t)b;
        end[i] = (uint64_t)e;
        if (end[i] > n) end[i] = n;
        if (begin[i] > end[i]) begin[i] = end[i];
    }
    return 0;
}

/* ---- GPTDataset -------------------------------------------------------------------- */

uint64_t mt_gpt_dataset_shuffle(const struct mt_gpt_dataset *g, uint64_t i)
{
    MT_ASSERT(i < g->num_samples);
    return g->shuffle_u32 ? g->shuffle_u32[i] : (uint64_t)g->shuffle_i64[i];
}

void mt_gpt_dataset_raw_sample(const struct mt_gpt_dataset *g, uint64_t j, int32_t *out)
{
    MT_ASSERT(j < g->num_samples);
    const int64_t *s = g->sample_index + 2 * j;
    int64_t d0 = s[0], o0 = s[1], d1 = s[2], o1 = s[3];
    uint64_t want = (uint64_t)g->seq_length + 1, got = 0;
    for (int64_t d = d0; d <= d1; d++) {
        uint64_t seq = (uint64_t)g->document_index[d];
        uint64_t off = d == d0 ? (uint64_t)o0 : 0;
        uint64_t len = d < d1 ? (uint64_t)mt_indexed_length(g->src, seq) - off
                              : (uint64_t)o1 + 1 - off;
        MT_ASSERT(got + len <= want);
        mt_indexed_read(g->src, seq, off, len, out + got);
        got += len;
    }
    MT_ASSERT(got == want);
    if (g->vocab_size > 0)
        for (uint64_t k = 0; k < want; k++)
            if (out[k] < 0 || out[k] >= g->vocab_size) {
                /* find the sequence holding it, for the message */
                uint64_t pos = 0, seq = 0;
                for (int64_t d = d0; d <= d1; d++) {
                    seq = (uint64_t)g->document_index[d];
                    uint64_t off = d == d0 ? (uint64_t)o0 : 0;
                    uint64_t len = d < d1 ? (uint64_t)mt_indexed_length(g->src, seq) - off
                                          : (uint64_t)o1 + 1 - off;
                    if (k < pos + len) break;
                    pos += len;
                }
                mt_user_error("preprocess the data with the tokenizer the model is trained "
                              "with (--tokenizer-type, --vocab-file)",
                              "%s: sequence %llu holds token id %d, outside the model's "
                              "vocabulary (ids 0..%d)",
                              g->src->bin_path, (unsigned long long)seq, out[k],
                              g->vocab_size - 1);
            }
}

static void gpt_get_sample(const struct mt_dataset *d, size_t i, int32_t *out)
{
    const struct mt_gpt_dataset *g = d->impl;
    mt_gpt_dataset_raw_sample(g, mt_gpt_dataset_shuffle(g, i), out);
}

/* helpers.cpp build_sample_idx with drop_last_partial_sequence and
 * add_extra_token_to_sequence = 1 */
static void build_sample_index(struct mt_gpt_dataset *g)
{
    const int64_t seq = g->seq_length;
    const size_t ndi = g->document_index_len;
    int64_t *si = g->sample_index;
    uint64_t k = 0;
    size_t di = 0;
    int64_t off = 0;
    si[0] = 0;
    si[1] = 0;
    k = 1;
    while (k <= g->num_samples) {
        int64_t remaining = seq + 1;
        while (remaining != 0) {
            int64_t doc_len = mt_indexed_length(g->src, (uint64_t)g->document_index[di]) - off;
            remaining -= doc_len;
            if (remaining <= 0) {
                off += remaining + doc_len - 1;
                remaining = 0;
            } else {
                if (di == ndi - 1) {
                    MT_ASSERT(k == g->num_samples);
                    off = mt_indexed_length(g->src, (uint64_t)g->document_index[di]) - 1;
                    break;
                }
                di++;
                off = 0;
            }
        }
        si[2 * k] = (int64_t)di;
        si[2 * k + 1] = off;
        k++;
    }
}

static void tile_shuffle(int32_t *out, uint64_t begin, uint64_t end, int epochs,
                         struct mt_np_rng *rng)
{
    size_t nd = (size_t)(end - begin), p = 0;
    for (int e = 0; e < epochs; e++)
        for (size_t d = 0; d < nd; d++) out[p++] = (int32_t)(begin + d);
    mt_np_shuffle_i32(rng, out, p);
}

static void arange_shuffle(struct mt_gpt_dataset *g, uint64_t a, uint64_t b,
                           struct mt_np_rng *rng)
{
    if (g->shuffle_u32) {
        for (uint64_t i = a; i < b; i++) g->shuffle_u32[i] = (uint32_t)i;
        mt_np_shuffle_u32(rng, g->shuffle_u32 + a, (size_t)(b - a));
    } else {
        for (uint64_t i = a; i < b; i++) g->shuffle_i64[i] = (int64_t)i;
        mt_np_shuffle_i64(rng, g->shuffle_i64 + a, (size_t)(b - a));
    }
}

static void empty_get_sample(const struct mt_dataset *d, size_t i, int32_t *out)
{
    (void)out;
    mt_assert_fail("sample of an empty dataset", d->name ? d->name : "?", (int)i);
}

int mt_gpt_dataset_build(struct mt_gpt_dataset *g, const struct mt_indexed *src, uint64_t begin,
                         uint64_t end, uint64_t num_samples, int seq_length, uint32_t seed,
                         const char *name, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    g->src = src;
    g->name = xstrdup(name);
    g->seq_length = seq_length;
    g->begin = begin;
    g->end = end;
    g->num_samples_requested = num_samples;
    g->ds.name = g->name;
    g->ds.seq_length = seq_length;
    g->ds.impl = g;
    g->ds.get_sample = empty_get_sample;
    MT_ASSERT(begin <= end && end <= src->num_sequences);
    if (seq_length < 1) return mt_errf(err, errlen, "--seq-length %d: must be at least 1", seq_length);
    if (end > (uint64_t)INT32_MAX)
        return mt_errf(err, errlen, "%s: %llu sequences; at most 2^31-1 are supported",
                    src->idx_path, (unsigned long long)end);
    uint64_t T = 0;
    for (uint64_t i = begin; i < end; i++) T += (uint64_t)mt_indexed_length(src, i);
    g->tokens_per_epoch = T;
    if (T == 0) return 0; /* nothing to sample: an empty dataset */

    /* _get_num_epochs */
    uint64_t E = 1;
    if (num_samples != MT_GPT_ONE_EPOCH) {
        if (num_samples > (UINT64_MAX / 2 - 1) / (uint64_t)seq_length)
            return mt_errf(err, errlen, "%s: %llu samples of %d tokens is too many", name,
                        (unsigned long long)num_samples, seq_length);
        uint64_t want = num_samples * (uint64_t)seq_length + 1;
        E = (want + T - 1) / T;
        if (E < 1) E = 1;
    }
    uint64_t nd = end - begin;
    if (E > (uint64_t)INT32_MAX || E * nd > ((uint64_t)1 << 31))
        return mt_errf(err, errlen,
                    "%s: %llu samples of %d tokens need %llu passes (epochs) over its %llu "
                    "tokens; that is too many: use more data or fewer samples",
                    name, (unsigned long long)num_samples, seq_length, (unsigned long long)E,
                    (unsigned long long)T);
    g->num_epochs = (int)E;

    uint64_t sans = 0;
    if (E > 1) {
        sans = ((E - 1) * T - 1) / (uint64_t)seq_length;
        uint64_t from_final = num_samples - sans;
        uint64_t per_epoch = (T - 1) / (uint64_t)seq_length;
        MT_ASSERT(num_samples >= sans && from_final <= per_epoch + 1);
        g->separate_final_epoch = (int64_t)from_final < (int64_t)(0.80 * (double)per_epoch);
    }

    struct mt_np_rng rng;
    mt_np_rng_seed(&rng, seed);

    /* _build_document_index */
    g->document_index_len = (size_t)(E * nd);
    g->document_index = xcalloc(g->document_index_len, sizeof *g->document_index,
                                "the document index");
    if (!g->separate_final_epoch) {
        tile_shuffle(g->document_index, begin, end, (int)E, &rng);
    } else {
        tile_shuffle(g->document_index, begin, end, (int)E - 1, &rng);
        tile_shuffle(g->document_index + (E - 1) * nd, begin, end, 1, &rng);
    }

    /* build_sample_idx */
    g->num_samples = (E * T - 1) / (uint64_t)seq_length;
    g->sample_index = xcalloc((size_t)(2 * (g->num_samples + 1)), sizeof *g->sample_index,
                              "the sample index");
    build_sample_index(g);

    /* _build_shuffle_index */
    uint64_t total = g->num_samples;
    if (total >= (uint64_t)UINT32_MAX - 1)
        g->shuffle_i64 = xcalloc((size_t)total, sizeof *g->shuffle_i64, "the shuffle index");
    else
        g->shuffle_u32 = xcalloc((size_t)total, sizeof *g->shuffle_u32, "the shuffle index");
    if (g->separate_final_epoch) {
        arange_shuffle(g, 0, sans, &rng);
        arange_shuffle(g, sans, total, &rng);
    } else {
        arange_shuffle(g, 0, total, &rng);
    }
    g->ds.num_samples = (size_t)g->num_samples;
    if (g->num_samples > 0) g->ds.get_sample = gpt_get_sample;
    return 0;
}

void mt_gpt_dataset_free(struct mt_gpt_dataset *g)
{
    if (!g) return;
    free(g->name);
    free(g->document_index);
    free(g->sample_index);
    free(g->shuffle_u32);
    free(g->shuffle_i64);
    memset(g, 0, sizeof *g);
}

/* ---- BlendedDataset ---------------------------------------------------------------- */

void mt_blending_indices(const double *weights, int n, uint64_t size, int16_t *dataset_index,
                         int64_t *dataset_sample_index)
{
    int64_t *cur = xcalloc((size_t)n, sizeof *cur, "blending");
    for (uint64_t s = 0; s < size; s++) {
        double x = (double)s > 1.0 ? (double)s : 1.0;
        int best = 0;
        double best_err = weights[0] * x - (double)cur[0];
        for (int k = 1; k < n; k++) {
            double e = weights[k] * x - (double)cur[k];
            if (e > best_err) {
                best_err = e;
                best = k;
            }
        }
        dataset_index[s] = (int16_t)best;
        dataset_sample_index[s] = cur[best]++;
    }
    free(cur);
}

void mt_blending_indices_exhaustive(const int64_t *sizes, int n, int16_t *dataset_index,
                                    int64_t *dataset_sample_index)
{
    int64_t total = 0;
    int64_t *cnt = xcalloc((size_t)n, sizeof *cnt, "blending");
    double *w = xcalloc((size_t)n, sizeof *w, "blending");
    char *live = xcalloc((size_t)n, 1, "blending");
    int nlive = 0;
    for (int k = 0; k < n; k++) total += sizes[k];
    for (int k = 0; k < n; k++) {
        w[k] = (double)sizes[k] / (double)total;
        /* (Megatron would loop forever on an empty component; it never wins here) */
        live[k] = sizes[k] > 0;
        nlive += live[k];
    }
    int64_t s = 0;
    while (nlive > 0) {
        double x = (double)s > 1.0 ? (double)s : 1.0;
        int best = -1;
        double best_err = -HUGE_VAL;
        for (int k = 0; k < n; k++) {
            if (!live[k]) continue;
            double e = w[k] * x - (double)cnt[k];
            if (best < 0 || e > best_err) {
                best_err = e;
                best = k;
            }
        }
        dataset_index[s] = (int16_t)best;
        dataset_sample_index[s] = cnt[best]++;
        if (cnt[best] == sizes[best]) {
            live[best] = 0;
            nlive--;
        }
        s++;
    }
    MT_ASSERT(s == total);
    free(cnt);
    free(w);
    free(live);
}

static void blended_get_sample(const struct mt_dataset *d, size_t i, int32_t *out)
{
    const struct mt_blended_dataset *b = d->impl;
    MT_ASSERT(i < b->size);
    const struct mt_gpt_dataset *g = b->parts[b->dataset_index[i]];
    g->ds.get_sample(&g->ds, (size_t)b->dataset_sample_index[i], out);
}

static void blended_free(struct mt_blended_dataset *b)
{
    free(b->name);
    free(b->parts);
    free(b->weights);
    free(b->dataset_index);
    free(b->dataset_sample_index);
    memset(b, 0, sizeof *b);
}

/* ---- --data-path ------------------------------------------------------------------- */

static const char *SPLIT_NAME[3] = {"train", "valid", "test"};


static int parse_number(const char *s, double *v)
{
    char *e;
    if (!*s) return 0;
    *v = strtod(s, &e);
    return *e == 0 && e != s;
}

int mt_data_parse_blend(int nwords, char **words, const char *flag, struct mt_blend_spec *b,
                        char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    if (nwords <= 0) return mt_errf(err, errlen, "%s: no dataset prefix given", flag);
    int weighted = 0;
    if (nwords % 2 == 0) {
        int nnum = 0;
        double v;
        for (int i = 0; i < nwords; i += 2) nnum += parse_number(words[i], &v);
        if (nnum == nwords / 2) weighted = 1;
        else if (nnum > 0)
            return mt_errf(err, errlen,
                        "%s: some of the words in weight position are numbers and some are "
                        "not: give either 'WEIGHT PREFIX WEIGHT PREFIX ...' or 'PREFIX PREFIX "
                        "...'",
                        flag);
    }
    if (weighted) {
        b->n = nwords / 2;
        b->prefixes = xcalloc((size_t)b->n, sizeof *b->prefixes, "the blend");
        b->weights = xcalloc((size_t)b->n, sizeof *b->weights, "the blend");
        for (int k = 0; k < b->n; k++) {
            parse_number(words[2 * k], &b->weights[k]);
            b->prefixes[k] = words[2 * k + 1];
            if (!(b->weights[k] >= 0) || !isfinite(b->weights[k])) {
                free(b->prefixes);
                free(b->weights);
                return mt_errf(err, errlen, "%s: weight '%s' of %s must be a non-negative number",
                            flag, words[2 * k], words[2 * k + 1]);
            }
        }
        if (!(mt_np_sum(b->weights, (size_t)b->n) > 0)) {
            free(b->prefixes);
            free(b->weights);
            return mt_errf(err, errlen, "%s: the weights add up to 0", flag);
        }
    } else {
        b->n = nwords;
        b->prefixes = xcalloc((size_t)b->n, sizeof *b->prefixes, "the blend");
        for (int k = 0; k < nwords; k++) b->prefixes[k] = words[k];
    }
    if (b->n >= 32767) {
        free(b->prefixes);
        free(b->weights);
        return mt_errf(err, errlen, "%s: %d datasets; a blend holds at most 32766", flag, b->n);
    }
    return 0;
}

static const struct mt_indexed *get_source(struct mt_gpt_data *d, const char *prefix,
                                           const char *flag, char *err, size_t errlen)
{
    for (int k = 0; k < d->nsources; k++)
        if (strcmp(d->sources[k]->prefix, prefix) == 0) return d->sources[k];
    size_t len = strlen(prefix);
    if (len > 4 && (strcmp(prefix + len - 4, ".bin") == 0 || strcmp(prefix + len - 4, ".idx") == 0)) {
        /* a common slip: the file name instead of the prefix */
        char *p = xstrdup(prefix);
        p[len - 4] = 0;
        char *idx = malloc(len + 1);
        if (!idx) mt_die("out of memory");
        snprintf(idx, len + 1, "%s.idx", p);
        FILE *f = fopen(idx, "rb");
        free(idx);
        if (f) {
            fclose(f);
            mt_errf(err, errlen,
                 "%s: '%s' names a file; give the dataset prefix without .bin/.idx, as "
                 "Megatron does: %s",
                 flag, prefix, p);
            free(p);
            return NULL;
        }
        free(p);
    }
    char e2[1024];
    struct mt_indexed *x = mt_indexed_open(prefix, e2, sizeof e2);
    if (!x) {
        mt_errf(err, errlen, "%s: %s", flag, e2);
        return NULL;
    }
    struct mt_indexed **s = realloc(d->sources, (size_t)(d->nsources + 1) * sizeof *s);
    if (!s) mt_die("out of memory");
    d->sources = s;
    d->sources[d->nsources++] = x;
    return x;
}

/* One split i from a blend; split == NULL: each dataset used whole. */
static int build_split(struct mt_gpt_data *d, int i, const struct mt_blend_spec *b,
                       const char *split, const char *flag, int seq_length, uint32_t seed,
                       uint64_t ns, int vocab_size, char *err, size_t errlen)
{
    char name[512];
    const struct mt_indexed **src = xcalloc((size_t)b->n, sizeof *src, "the blend");
    uint64_t *beg = xcalloc((size_t)b->n, sizeof *beg, "the blend");
    uint64_t *end = xcalloc((size_t)b->n, sizeof *end, "the blend");
    int rc = -1;
    double *w = NULL, *bw = NULL;
    uint64_t *want = NULL;
    for (int k = 0; k < b->n; k++) {
        if (!(src[k] = get_source(d, b->prefixes[k], flag, err, errlen))) goto out;
        if (split) {
            int present[3];
            uint64_t bb[3], ee[3];
            if (mt_gpt_split(split, src[k]->num_sequences, present, bb, ee, err, errlen) != 0)
                goto out;
            MT_ASSERT(present[i]);
            beg[k] = bb[i];
            end[k] = ee[i];
        } else {
            beg[k] = 0;
            end[k] = src[k]->num_sequences;
        }
    }
    d->nparts[i] = b->n;
    d->parts[i] = xcalloc((size_t)b->n, sizeof *d->parts[i], "the datasets");
    d->present[i] = 1;

    /* the number of samples each component is built with */
    want = xcalloc((size_t)b->n, sizeof *want, "the blend");
    uint64_t size = 0;
    if (b->weights) {
        if (ns == MT_GPT_ONE_EPOCH) {
            mt_errf(err, errlen, "%s: weights need a number of %s samples", flag, SPLIT_NAME[i]);
            goto out;
        }
        w = xcalloc((size_t)b->n, sizeof *w, "the blend");
        mt_np_normalize(b->weights, (size_t)b->n, w);
        for (int k = 0; k < b->n; k++) {
            uint64_t target = (uint64_t)ceil((double)ns * w[k]);
            want[k] = (uint64_t)ceil((double)target * (1.0 + 0.005));
            size += target;
        }
    } else {
        for (int k = 0; k < b->n; k++) want[k] = b->n == 1 ? ns : MT_GPT_ONE_EPOCH;
    }
    for (int k = 0; k < b->n; k++) {
        snprintf(name, sizeof name, "%s split of %s", SPLIT_NAME[i], b->prefixes[k]);
        if (mt_gpt_dataset_build(&d->parts[i][k], src[k], beg[k], end[k], want[k], seq_length,
                                 seed, name, err, errlen) != 0)
            goto out;
        d->parts[i][k].vocab_size = vocab_size;
    }
    if (b->n == 1 && !b->weights) {
        d->split[i] = d->parts[i][0].ds;
        rc = 0;
        goto out;
    }

    /* BlendedDataset */
    struct mt_blended_dataset *bl = &d->blend[i];
    d->blended[i] = 1;
    snprintf(name, sizeof name, "%s split of a blend of %d datasets", SPLIT_NAME[i], b->n);
    bl->name = xstrdup(name);
    bl->n = b->n;
    bl->parts = xcalloc((size_t)b->n, sizeof *bl->parts, "the blend");
    for (int k = 0; k < b->n; k++) bl->parts[k] = &d->parts[i][k];
    bw = xcalloc((size_t)b->n, sizeof *bw, "the blend");
    if (b->weights) {
        mt_np_normalize(w, (size_t)b->n, bw); /* normalised again, as BlendedDataset does */
    } else {
        uint64_t total = 0;
        for (int k = 0; k < b->n; k++) {
            bw[k] = (double)d->parts[i][k].num_samples;
            total += d->parts[i][k].num_samples;
        }
        if (ns != MT_GPT_ONE_EPOCH) {
            size = ns < total ? ns : total;
            double *t = xcalloc((size_t)b->n, sizeof *t, "the blend");
            mt_np_normalize(bw, (size_t)b->n, t);
            free(bw);
            bw = t;
        } else {
            size = total;
            free(bw);
            bw = NULL;
        }
    }
    /* A weighted component whose split holds no tokens cannot give its share
     * (Megatron would loop forever computing its epochs): an error for train,
     * an empty split for valid / test (the default 969,30,1 on a small
     * dataset leaves no test documents). */
    for (int k = 0; b->weights && k < b->n; k++)
        if (want[k] > 0 && d->parts[i][k].tokens_per_epoch == 0) {
            if (i == 0) {
                mt_errf(err, errlen,
                     "%s: the train split of %s (sequences [%llu, %llu)) holds no tokens, but "
                     "its weight is %g: check --split and the data",
                     flag, b->prefixes[k], (unsigned long long)beg[k],
                     (unsigned long long)end[k], b->weights[k]);
                goto out;
            }
            size = 0;
        }
    bl->size = size;
    bl->weights = bw;
    bw = NULL;
    bl->dataset_index = xcalloc((size_t)size, sizeof *bl->dataset_index, "the blend index");
    bl->dataset_sample_index =
        xcalloc((size_t)size, sizeof *bl->dataset_sample_index, "the blend index");
    if (bl->weights) {
        mt_blending_indices(bl->weights, b->n, size, bl->dataset_index, bl->dataset_sample_index);
    } else {
        int64_t *sz = xcalloc((size_t)b->n, sizeof *sz, "the blend");
        for (int k = 0; k < b->n; k++) sz[k] = (int64_t)d->parts[i][k].num_samples;
        mt_blending_indices_exhaustive(sz, b->n, bl->dataset_index, bl->dataset_sample_index);
        free(sz);
    }
    /* a component asked for more samples than it has: Megatron raises here too */
    uint64_t *cnt = xcalloc((size_t)b->n, sizeof *cnt, "the blend");
    for (uint64_t s = 0; s < size; s++) cnt[bl->dataset_index[s]]++;
    for (int k = 0; k < b->n; k++)
        if (cnt[k] > d->parts[i][k].num_samples) {
            mt_errf(err, errlen,
                 "%s: the %s blend takes %llu samples from %s, which has only %llu (%llu "
                 "tokens in its %s split)",
                 flag, SPLIT_NAME[i], (unsigned long long)cnt[k], b->prefixes[k],
                 (unsigned long long)d->parts[i][k].num_samples,
                 (unsigned long long)d->parts[i][k].tokens_per_epoch, SPLIT_NAME[i]);
            free(cnt);
            goto out;
        }
    free(cnt);
    bl->ds.name = bl->name;
    bl->ds.num_samples = (size_t)size;
    bl->ds.seq_length = seq_length;
    bl->ds.impl = bl;
    bl->ds.get_sample = size > 0 ? blended_get_sample : empty_get_sample;
    d->split[i] = bl->ds;
    rc = 0;
out:
    free(src);
    free(beg);
    free(end);
    free(w);
    free(bw);
    free(want);
    return rc;
}

static int check_common(int seq_length, uint64_t seed, char *err, size_t errlen)
{
    if (seq_length < 1) return mt_errf(err, errlen, "--seq-length %d: must be at least 1", seq_length);
    if (seed > 0xffffffffULL)
        return mt_errf(err, errlen,
                    "--seed %llu: Megatron's data indices use numpy.random.RandomState, which "
                    "takes seeds 0..4294967295",
                    (unsigned long long)seed);
    return 0;
}

static void init_empty(struct mt_gpt_data *d, int seq_length)
{
    memset(d, 0, sizeof *d);
    for (int i = 0; i < 3; i++) {
        d->split[i].name = SPLIT_NAME[i];
        d->split[i].seq_length = seq_length;
        d->split[i].get_sample = empty_get_sample;
    }
}

static int check_train(struct mt_gpt_data *d, const uint64_t ns[3], const char *flag, char *err,
                       size_t errlen)
{
    if (d->present[0] && d->split[0].num_samples == 0 && ns[0] > 0) {
        uint64_t T = 0;
        for (int k = 0; k < d->nparts[0]; k++) T += d->parts[0][k].tokens_per_epoch;
        return mt_errf(err, errlen,
                    "%s: the train split holds %llu tokens: not one sample of --seq-length "
                    "%d + 1 tokens (check --split and the data)",
                    flag, (unsigned long long)T, d->split[0].seq_length);
    }
    return 0;
}

int mt_gpt_data_build(struct mt_gpt_data *out, int nwords, char **words, const char *split,
                      int seq_length, uint64_t seed, const uint64_t num_samples[3],
                      int vocab_size, char *err, size_t errlen)
{
    init_empty(out, seq_length);
    if (check_common(seq_length, seed, err, errlen) != 0) return -1;
    struct mt_blend_spec b;
    if (mt_data_parse_blend(nwords, words, "--data-path", &b, err, errlen) != 0) return -1;
    int present[3];
    uint64_t bb[3], ee[3];
    int rc = mt_gpt_split(split, 0, present, bb, ee, err, errlen);
    for (int i = 0; rc == 0 && i < 3; i++)
        if (present[i])
            rc = build_split(out, i, &b, split, "--data-path", seq_length, (uint32_t)seed,
                             num_samples[i], vocab_size, err, errlen);
    if (rc == 0) rc = check_train(out, num_samples, "--data-path", err, errlen);
    free(b.prefixes);
    free(b.weights);
    if (rc != 0) mt_gpt_data_free(out);
    return rc;
}

int mt_gpt_data_build_per_split(struct mt_gpt_data *out, const int nwords[3],
                                char **const words[3], int seq_length, uint64_t seed,
                                const uint64_t num_samples[3], int vocab_size, char *err,
                                size_t errlen)
{
    static const char *FLAG[3] = {"--train-data-path", "--valid-data-path", "--test-data-path"};
    init_empty(out, seq_length);
    if (check_common(seq_length, seed, err, errlen) != 0) return -1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < 3; i++) {
        if (nwords[i] <= 0) continue;
        struct mt_blend_spec b;
        if ((rc = mt_data_parse_blend(nwords[i], words[i], FLAG[i], &b, err, errlen)) != 0) break;
        rc = build_split(out, i, &b, NULL, FLAG[i], seq_length, (uint32_t)seed, num_samples[i],
                         vocab_size, err, errlen);
        free(b.prefixes);
        free(b.weights);
    }
    if (rc == 0) rc = check_train(out, num_samples, FLAG[0], err, errlen);
    if (rc != 0) mt_gpt_data_free(out);
    return rc;
}

void mt_gpt_data_free(struct mt_gpt_data *d)
{
    if (!d) return;
    for (int i = 0; i < 3; i++) {
        blended_free(&d->blend[i]);
        if (d->parts[i])
            for (int k = 0; k < d->nparts[i]; k++) mt_gpt_dataset_free(&d->parts[i][k]);
        free(d->parts[i]);
    }
    for (int k = 0; k < d->nsources; k++) mt_indexed_close(d->sources[k]);
    free(d->sources);
    int seq = d->split[0].seq_length;
    init_empty(d, seq);
}

void mt_gpt_data_describe(const struct mt_gpt_data *d, FILE *f)
{
    for (int i = 0; i < 3; i++) {
        if (!d->present[i]) {
            fprintf(f, "%s: none\n", SPLIT_NAME[i]);
            continue;
        }
        if (d->blended[i])
            fprintf(f, "%s: %zu samples, a blend of %d datasets:\n", SPLIT_NAME[i],
                    d->split[i].num_samples, d->nparts[i]);
        for (int k = 0; k < d->nparts[i]; k++) {
            const struct mt_gpt_dataset *g = &d->parts[i][k];
            fprintf(f, "%s%s: sequences [%llu, %llu) of %s, %llu tokens, %d epoch%s%s, %llu "
                       "samples\n",
                    d->blended[i] ? "  " : "", d->blended[i] ? "component" : SPLIT_NAME[i],
                    (unsigned long long)g->begin, (unsigned long long)g->end, g->src->prefix,
                    (unsigned long long)g->tokens_per_epoch, g->num_epochs,
                    g->num_epochs == 1 ? "" : "s",
                    g->separate_final_epoch ? " (last shuffled apart)" : "",
                    (unsigned long long)g->num_samples);
        }
    }
}
