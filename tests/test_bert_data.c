/* test_bert_data.c: BERT's samples (src/data/bert_dataset.c) against an
 * independent Python restatement of Megatron's (tests/data/
 * gen_bert_mapping.py: helpers.cpp build_mapping, and
 * BERTMaskedWordPieceDataset.__getitem__ up to the masking), and the
 * masking by its statistics:
 *  - std::mt19937_64's known first output;
 *  - for three configurations (binary head, none, no short sequences):
 *    the whole sample mapping and the first 60 samples (tokens, types,
 *    sentence-order label) exactly;
 *  - masking over more than 100k tokens: 15 % of the tokens, of them 80 %
 *    [MASK], 10 % random, 10 % unchanged, each within 1 point; only real
 *    tokens, never [CLS]/[SEP]/padding; whole words; labels and loss mask
 *    agree; a sample is the same when drawn twice. */
#include "core/io.h"
#include "core/json_value.h"
#include "data/bert_dataset.h"
#include "data/indexed.h"
#include "tap.h"
#include "testutil.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { CLS = 101, SEP = 102, PAD = 0, MASK = 103, VOCAB = 128 };

struct bufs {
    int32_t tokens[512], types[512], labels[512];
    float mask[512];
    struct mt_bert_sample s;
};

static void bufs_init(struct bufs *b)
{
    b->s = (struct mt_bert_sample){b->tokens, b->types, b->labels, b->mask, 0, 0};
}

static struct mt_bert_config config_of(const struct mt_jvalue *c)
{
    long long v;
    double d;
    struct mt_bert_config cfg = {0};
    mt_json_get_int(c, "seq_length", &v), cfg.seq_length = (int)v;
    mt_json_get_int(c, "seed", &v), cfg.seed = (uint64_t)v;
    mt_json_get_number(c, "short_seq_prob", &d), cfg.short_seq_prob = d;
    mt_json_get_int(c, "binary_head", &v), cfg.binary_head = (int)v;
    cfg.cls = CLS, cfg.sep = SEP, cfg.pad = PAD, cfg.mask = MASK, cfg.vocab_size = VOCAB;
    return cfg;
}

static int same_ints(const struct mt_jvalue *a, const int32_t *x, int n)
{
    if (!a || a->n != n) return 0;
    for (int i = 0; i < n; i++)
        if ((int32_t)a->v[i].num != x[i]) return 0;
    return 1;
}

static void check_golden(const struct mt_indexed *x, const char *src)
{
    char path[4300], err[512];
    snprintf(path, sizeof path, "%s/tests/data/bert_mapping.jsonl", src);
    size_t len;
    char *text = mt_read_file(path, &len, NULL);
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = 0;
        struct mt_jvalue c;
        if (mt_json_parse(line, strlen(line), &c, err, sizeof err) != 0) {
            tap_ok(0, "golden line: %s", err);
            continue;
        }
        long long minimum;
        mt_json_get_int(&c, "min_samples", &minimum);
        const struct mt_bert_config cfg = config_of(&c);
        const char *name = mt_json_get_str(&c, "name");
        struct mt_bert_dataset d;
        const uint64_t ndoc = x->num_doc_indices - 1;
        if (mt_bert_dataset_build(&d, x, 0, ndoc, &cfg, (uint64_t)minimum, "bert_sentences", err,
                                  sizeof err) != 0) {
            tap_ok(0, "%s: %s", name, err);
            mt_json_free(&c);
            continue;
        }
        const struct mt_jvalue *map = mt_json_get(&c, "map");
        int ok = map && (uint64_t)map->n == 3 * d.num_samples;
        for (uint64_t i = 0; ok && i < 3 * d.num_samples; i++) ok = (int64_t)map->v[i].num == d.map[i];
        tap_ok(ok, "%s: the sample mapping of %llu samples is Megatron's", name,
               (unsigned long long)d.num_samples);
        const struct mt_jvalue *samples = mt_json_get(&c, "samples");
        int bad = 0;
        struct bufs b;
        bufs_init(&b);
        for (int i = 0; samples && i < samples->n; i++) {
            const struct mt_jvalue *g = &samples->v[i];
            mt_bert_dataset_sample(&d, (uint64_t)i, &b.s);
            long long rnd;
            mt_json_get_int(g, "is_random", &rnd);
            if (!same_ints(mt_json_get(g, "tokens"), b.tokens, b.s.length) ||
                !same_ints(mt_json_get(g, "types"), b.types, b.s.length) || rnd != b.s.is_random) {
                if (bad++ < 3) tap_diag("%s: sample %d differs (length %d)", name, i, b.s.length);
            }
            for (int k = b.s.length; k < cfg.seq_length; k++)
                if (b.tokens[k] != PAD || b.types[k] != 0) bad += !bad;
        }
        tap_ok(samples && samples->n > 0 && bad == 0,
               "%s: the first %d samples (A/B split, order swap, trimming, [CLS] A [SEP] B [SEP], "
               "types, padding) are Megatron's", name, samples ? samples->n : 0);
        mt_bert_dataset_free(&d);
        mt_json_free(&c);
    }
    free(text);
}

static void check_masking(const struct mt_indexed *x)
{
    /* ids 50..99 are "##" pieces: words of several tokens */
    static unsigned char cont[VOCAB];
    for (int t = 50; t < 100; t++) cont[t] = 1;
    struct mt_bert_config cfg = {64, 4321, 0.1, 0.15, 1, CLS, SEP, MASK, PAD, VOCAB, cont};
    struct mt_bert_dataset d;
    char err[512];
    const uint64_t ndoc = x->num_doc_indices - 1;
    if (mt_bert_dataset_build(&d, x, 0, ndoc, &cfg, 4000, "bert_sentences", err, sizeof err) != 0) {
        tap_ok(0, "masking dataset: %s", err);
        return;
    }
    struct bufs b, again;
    bufs_init(&b);
    bufs_init(&again);
    long tokens = 0, masked = 0, as_mask = 0, as_same = 0, as_random = 0, bad_place = 0, split_words = 0;
    long unequal = 0;
    for (uint64_t i = 0; i < d.num_samples; i++) {
        mt_bert_dataset_sample(&d, i, &b.s);
        if (i < 50) {
            mt_bert_dataset_sample(&d, i, &again.s);
            unequal += memcmp(b.tokens, again.tokens, sizeof b.tokens) != 0 ||
                       memcmp(b.mask, again.mask, sizeof b.mask) != 0;
        }
        tokens += b.s.length;
        for (int k = 0; k < cfg.seq_length; k++) {
            if (b.mask[k] == 0.0f) {
                bad_place += b.labels[k] != 0;
                continue;
            }
            masked++;
            const int32_t orig = b.labels[k];
            bad_place += k >= b.s.length || orig == CLS || orig == SEP;
            if (b.tokens[k] == MASK) as_mask++;
            else if (b.tokens[k] == orig) as_same++;
            else as_random++;
            /* whole words: the word's pieces around a masked one are masked too */
            if (k + 1 < b.s.length) {
                const int32_t next = b.mask[k + 1] > 0 ? b.labels[k + 1] : b.tokens[k + 1];
                split_words += next >= 0 && next < VOCAB && cont[next] && b.mask[k + 1] == 0.0f;
            }
            if (orig >= 0 && orig < VOCAB && cont[orig] && k > 0) {
                const int32_t prev = b.mask[k - 1] > 0 ? b.labels[k - 1] : b.tokens[k - 1];
                split_words += prev != CLS && prev != SEP && b.mask[k - 1] == 0.0f;
            }
        }
    }
    const double f = (double)masked / tokens, fm = (double)as_mask / masked,
                 fr = (double)as_random / masked, fs = (double)as_same / masked;
    tap_ok(tokens >= 100000 && fabs(f - 0.15) <= 0.01,
           "masking: %.4f of %ld tokens masked (0.15 +- 0.01)", f, tokens);
    /* a random replacement may draw the token itself: the expected share of
     * 'unchanged' is 0.1 + 0.1 / 128 */
    tap_ok(fabs(fm - 0.8) <= 0.01 && fabs(fr - 0.1) <= 0.01 && fabs(fs - 0.1) <= 0.01,
           "masking: of %ld masked, %.4f [MASK], %.4f random, %.4f unchanged (0.8 / 0.1 / 0.1 +- 0.01)",
           masked, fm, fr, fs);
    tap_ok(bad_place == 0, "masking: only real tokens, never [CLS], [SEP] or padding; labels only "
           "where the loss mask is 1 (%ld wrong)", bad_place);
    tap_ok(split_words == 0, "masking: whole words (%ld words cut)", split_words);
    tap_ok(unequal == 0, "a sample drawn twice is the same (%ld differ)", unequal);
    mt_bert_dataset_free(&d);
}

int main(int argc, char **argv)
{
    char src[4096], prefix[4300], err[512];
    if (!mt_test_find_srcdir(argv[0], "tests/data/bert_mapping.jsonl", src, sizeof src))
        tap_skip_all("cannot find the source tree (set MT_SRCDIR)");
    (void)argc;
    struct mt_mt64 g;
    mt_mt64_seed(&g, 5489);
    tap_ok(mt_mt64_next(&g) == 14514284786278117030ULL, "std::mt19937_64's first output for seed 5489");
    snprintf(prefix, sizeof prefix, "%s/tests/data/bert_sentences", src);
    struct mt_indexed *x = mt_indexed_open(prefix, err, sizeof err);
    if (!x) {
        printf("Bail out! %s\n", err);
        return 99;
    }
    check_golden(x, src);
    check_masking(x);
    mt_indexed_close(x);
    return tap_done();
}
