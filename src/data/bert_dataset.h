/* bert_dataset.h: Megatron's BERT samples over a sentence-level indexed
 * dataset (PREFIX_text_sentence.bin/.idx from `preprocess --split-sentences`:
 * one sequence per sentence, documents in the document index).
 *
 *   mapping   megatron/core/datasets/helpers.cpp build_mapping: over the
 *             split's documents, epoch after epoch until the samples asked
 *             for are reached (checked at the start of an epoch, so whole
 *             epochs), consecutive sentences of a document make a sample
 *             once they reach a target length of seq_length - 3 tokens, or
 *             with probability short_seq_prob (as 1 in round(1/p) draws of
 *             std::mt19937(seed)) a random one in [2, seq_length - 3];
 *             documents with fewer than 2 sentences (1 without the binary
 *             head) or a sentence of over 512 tokens are skipped; then the
 *             samples are shuffled by std::mt19937_64(seed + 1).
 *   sample i  BERTMaskedWordPieceDataset.__getitem__ with
 *             numpy.random.RandomState(seed + i): with the binary head the
 *             sentences are cut into A and B at a random pivot (the first
 *             sentence alone when there are two) and swapped with
 *             probability 0.5 (is_random, the sentence-order label); the
 *             longer part loses a token from its front or back (probability
 *             0.5 each) until both fit the target; then
 *             [CLS] A [SEP] B [SEP], token types 0 for A, 1 for B, padded
 *             with [PAD] to seq_length.
 *   masking   (megatron-c's, drawn from the same generator after that): the
 *             candidate positions are all but [CLS] and [SEP], grouped into
 *             whole words (a "##" piece joins the word before it); round(
 *             mask_prob * length) tokens, at least 1, are chosen by taking
 *             words in a shuffled order while they fit; each chosen token
 *             becomes [MASK] with probability 0.8, a random token with 0.1,
 *             or stays itself. Megatron masks n-grams of up to 3 words with
 *             its own draws; the proportions are the same, the positions
 *             are not.
 *
 * Everything about sample i follows from (data, split, seed, seq_length,
 * i): every rank and every resume builds the same batches. */
#ifndef MT_BERT_DATASET_H
#define MT_BERT_DATASET_H
#include "data/indexed.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* std::mt19937_64 (Matsumoto and Nishimura's MT19937-64) */
struct mt_mt64 {
    uint64_t mt[312];
    int i;
};
void mt_mt64_seed(struct mt_mt64 *g, uint64_t seed);
uint64_t mt_mt64_next(struct mt_mt64 *g);

struct mt_bert_config {
    int seq_length;        /* --seq-length */
    uint64_t seed;         /* --seed */
    double short_seq_prob; /* 0.1 */
    double mask_prob;      /* --mask-prob 0.15; 0: no masking (tests) */
    int binary_head;       /* sentence order: 2 sentences at least, A/B split */
    int32_t cls, sep, mask, pad;
    int vocab_size;              /* random replacements are drawn below it */
    const unsigned char *is_cont; /* [vocab_size]: 1 for a "##" continuation piece, or NULL */
};

struct mt_bert_dataset {
    const struct mt_indexed *src;
    uint64_t doc0, doc1; /* the split's documents [doc0, doc1) */
    struct mt_bert_config cfg;
    uint64_t num_samples;
    int64_t *map; /* 3 per sample: first sentence, end sentence, target length */
};

/* One sample, seq_length entries each. */
struct mt_bert_sample {
    int32_t *tokens, *types, *labels; /* labels: the original token where masked, else 0 */
    float *loss_mask;                 /* 1 where masked */
    int length;                       /* real tokens; padding after */
    int is_random;                    /* A and B were swapped */
};

/* Builds the mapping for at least min_samples samples; -1 with a message
 * (naming the dataset) when it gives none. */
int mt_bert_dataset_build(struct mt_bert_dataset *d, const struct mt_indexed *src, uint64_t doc0,
                          uint64_t doc1, const struct mt_bert_config *cfg, uint64_t min_samples,
                          const char *name, char *err, size_t errlen);
void mt_bert_dataset_free(struct mt_bert_dataset *d);
/* Sample i < num_samples into s (arrays of seq_length, the caller's). */
void mt_bert_dataset_sample(const struct mt_bert_dataset *d, uint64_t i, struct mt_bert_sample *s);

/* ---- the --data-path entry point ------------------------------------------------------ */

/* train, valid, test over --data-path "PREFIX" or "W1 P1 W2 P2 ...": each
 * prefix split by --split over its documents (Megatron's masked datasets),
 * each component built with ceil(ceil(n w) 1.005) samples and blended by
 * build_blending_indices as for GPT. */
struct mt_bert_data {
    int present[3];
    uint64_t size[3];              /* samples of each split */
    int nparts;
    struct mt_bert_dataset *parts[3]; /* [nparts] */
    int16_t *dataset_index[3];     /* blends: the component of each sample */
    int64_t *dataset_sample_index[3];
    int nsources;
    struct mt_indexed **sources;
};
/* cfg's seq_length, seed, probabilities, special ids and vocabulary; 0, or
 * -1 with a message naming the flag and the file. */
int mt_bert_data_build(struct mt_bert_data *out, int nwords, char **words, const char *split,
                       const struct mt_bert_config *cfg, const uint64_t num_samples[3], char *err,
                       size_t errlen);
void mt_bert_data_free(struct mt_bert_data *d);
/* Global sample `counter` of split i (taken modulo its size). */
void mt_bert_data_sample(const struct mt_bert_data *d, int split, uint64_t counter,
                         struct mt_bert_sample *s);
void mt_bert_data_describe(const struct mt_bert_data *d, FILE *f);

#endif
