/* gpt_dataset.h: Megatron's GPT sampling over indexed (.bin/.idx) datasets,
 * reproducing megatron/core/datasets (gpt_dataset.py, helpers.cpp,
 * blended_dataset.py, blended_megatron_dataset_builder.py) so that the index
 * arrays are identical to Megatron's for the same data, --split, --seed,
 * --seq-length and sample counts:
 *
 *   split         --split "969,30,1": weights normalised (numpy), cumulative
 *                 bookends, sequences [round(b0*N), round(b1*N)) (Python's
 *                 round: half to even); a split of weight 0 does not exist.
 *   GPTDataset    over a sequence range: num_epochs (smallest e with
 *                 e*tokens >= samples*seq_length + 1), document_index (the
 *                 range tiled per epoch, shuffled; the final epoch shuffled
 *                 apart when it would give < 80% of an epoch's samples),
 *                 sample_index (samples of seq_length+1 tokens overlapping by
 *                 one, crossing documents), shuffle_index (a permutation of
 *                 the samples; the final epoch's apart likewise). All draws
 *                 come from one numpy.random.RandomState(seed), in that order.
 *   BlendedDataset --data-path W1 P1 W2 P2 ...: each component is built with
 *                 ceil(ceil(n*w) * 1.005) samples, the blend has
 *                 sum(ceil(n*w)) samples, picked by the greedy
 *                 build_blending_indices (largest w*(i) - taken first).
 *                 Prefixes without weights: each component is one epoch,
 *                 blended in proportion to its size (capped at the request).
 *
 * Everything is exposed as a struct mt_dataset (data/dataset.h): sample i
 * is Megatron's dataset[i], already shuffled, so the loader must not shuffle
 * again (mt_loader_init(..., shuffle = 0) maps counter -> counter % n).
 * Nothing is cached on disk: building takes well under a second per million
 * samples. Nothing here exits on bad input: functions return -1 with a
 * message naming the file / flag in err. */
#ifndef MT_GPT_DATASET_H
#define MT_GPT_DATASET_H
#include "data/dataset.h"
#include "data/indexed.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- numpy.random.RandomState (legacy MT19937) ------------------------------------ */

struct mt_np_rng {
    uint32_t key[624];
    int pos;
};
/* RandomState(seed) for an integer seed (init_genrand). */
void mt_np_rng_seed(struct mt_np_rng *r, uint32_t seed);
uint32_t mt_np_rng_next32(struct mt_np_rng *r);
/* numpy's legacy random_interval: uniform in [0, max] by masked rejection
 * (32-bit draws when max fits in 32 bits, else two draws hi:lo). */
uint64_t mt_np_rng_interval(struct mt_np_rng *r, uint64_t max);
/* RandomState.random(): 53 bits from two draws, in [0, 1) */
double mt_np_rng_double(struct mt_np_rng *r);
/* RandomState.shuffle of a 1-D array: for i = n-1 down to 1, swap a[i] with
 * a[random_interval(i)]. */
void mt_np_shuffle_i32(struct mt_np_rng *r, int32_t *a, size_t n);
void mt_np_shuffle_u32(struct mt_np_rng *r, uint32_t *a, size_t n);
void mt_np_shuffle_i64(struct mt_np_rng *r, int64_t *a, size_t n);

/* numpy.sum of float64 (pairwise summation), and Megatron's normalize(). */
double mt_np_sum(const double *a, size_t n);
void mt_np_normalize(const double *w, size_t n, double *out);

/* ---- split ------------------------------------------------------------------------ */

/* Megatron's --split over n sequences: present[i] = 0 where the split has
 * weight 0 (Megatron builds no dataset for it); else [begin[i], end[i]).
 * Returns -1 with a message when the string is malformed. */
int mt_gpt_split(const char *split, uint64_t n, int present[3], uint64_t begin[3],
                 uint64_t end[3], char *err, size_t errlen);

/* ---- GPTDataset -------------------------------------------------------------------- */

/* num_samples value meaning Megatron's None: exactly one epoch */
#define MT_GPT_ONE_EPOCH UINT64_MAX

struct mt_gpt_dataset {
    const struct mt_indexed *src; /* not owned */
    char *name;                   /* "train split of PREFIX" */
    int seq_length;
    uint64_t begin, end;          /* sequences [begin, end) of src */
    uint64_t num_samples_requested; /* or MT_GPT_ONE_EPOCH */
    uint64_t tokens_per_epoch;
    int num_epochs;
    int separate_final_epoch;
    uint64_t num_samples;         /* built: len(sample_index) - 1 (>= requested) */
    size_t document_index_len;
    int32_t *document_index;      /* sequence ids, num_epochs * (end - begin) */
    int64_t *sample_index;        /* [num_samples + 1][2]: (position in document_index, offset) */
    uint32_t *shuffle_u32;        /* shuffle_index: uint32 as Megatron, or int64 when */
    int64_t *shuffle_i64;         /* num_samples >= 2^32 - 2; the other is NULL */
    int vocab_size;               /* > 0: get_sample checks every token against it */
    struct mt_dataset ds;         /* ds.impl = this */
};

/* Builds the indices for sequences [begin, end) of src. seed < 2^32. A range
 * without tokens gives an empty dataset (num_samples 0). */
int mt_gpt_dataset_build(struct mt_gpt_dataset *g, const struct mt_indexed *src, uint64_t begin,
                         uint64_t end, uint64_t num_samples, int seq_length, uint32_t seed,
                         const char *name, char *err, size_t errlen);
void mt_gpt_dataset_free(struct mt_gpt_dataset *g);
/* shuffle_index[i] */
uint64_t mt_gpt_dataset_shuffle(const struct mt_gpt_dataset *g, uint64_t i);
/* The seq_length + 1 tokens of the unshuffled sample j (sample_index[j] to
 * sample_index[j+1], plus one). */
void mt_gpt_dataset_raw_sample(const struct mt_gpt_dataset *g, uint64_t j, int32_t *out);

/* ---- BlendedDataset ---------------------------------------------------------------- */

/* helpers.cpp build_blending_indices: weights normalised, size samples. */
void mt_blending_indices(const double *weights, int n, uint64_t size, int16_t *dataset_index,
                         int64_t *dataset_sample_index);
/* helpers.cpp build_exhaustive_blending_indices: exactly sizes[k] from each;
 * sum(sizes) entries. */
void mt_blending_indices_exhaustive(const int64_t *sizes, int n, int16_t *dataset_index,
                                    int64_t *dataset_sample_index);

struct mt_blended_dataset {
    char *name;
    int n;
    struct mt_gpt_dataset **parts; /* not owned */
    double *weights;               /* as used by the greedy pick (normalised), NULL if exhaustive */
    uint64_t size;
    int16_t *dataset_index;
    int64_t *dataset_sample_index;
    struct mt_dataset ds;
};

/* ---- the --data-path entry point --------------------------------------------------- */

/* The words of --data-path: "PREFIX", "W1 P1 W2 P2 ..." or "P1 P2 ..." */
struct mt_blend_spec {
    int n;
    char **prefixes; /* point into the words */
    double *weights; /* NULL: none given */
};
/* 0, or -1 with a message naming flag; free prefixes and weights after. */
int mt_data_parse_blend(int nwords, char **words, const char *flag, struct mt_blend_spec *b,
                        char *err, size_t errlen);

struct mt_gpt_data {
    /* train, valid, test. present[i] = 0: the split does not exist (weight 0 in
     * --split, or no path for it); split[i].num_samples is then 0. */
    struct mt_dataset split[3];
    int present[3];
    int blended[3];                 /* 1 when split[i] is a BlendedDataset */
    /* the pieces, for inspection and tests */
    int nparts[3];
    struct mt_gpt_dataset *parts[3]; /* [nparts[i]]: the component(s) of each split */
    struct mt_blended_dataset blend[3];
    int nsources;
    struct mt_indexed **sources;    /* opened prefixes */
};

/* Megatron's --data-path words: "PREFIX", or "W1 P1 W2 P2 ...", or
 * "P1 P2 ..." (prefixes without .bin/.idx). split: --split string.
 * num_samples: train, valid, test sample counts as Megatron computes them
 * (train_iters*global_batch, (train_iters//eval_interval+1)*eval_iters*
 * global_batch, eval_iters*global_batch); MT_GPT_ONE_EPOCH for None.
 * vocab_size > 0 makes get_sample reject tokens outside [0, vocab_size)
 * (a user error naming the .bin). seed: --seed (< 2^32). Returns 0, or -1
 * with a message in err (out is then freed/zeroed). */
int mt_gpt_data_build(struct mt_gpt_data *out, int nwords, char **words, const char *split,
                      int seq_length, uint64_t seed, const uint64_t num_samples[3],
                      int vocab_size, char *err, size_t errlen);
/* --train-data-path / --valid-data-path / --test-data-path: a separate blend
 * per split (nwords[i] = 0: that split does not exist), each used whole. */
int mt_gpt_data_build_per_split(struct mt_gpt_data *out, const int nwords[3],
                                char **const words[3], int seq_length, uint64_t seed,
                                const uint64_t num_samples[3], int vocab_size, char *err,
                                size_t errlen);
void mt_gpt_data_free(struct mt_gpt_data *d);
/* One line per split: documents, tokens, epochs, samples (for the log). */
void mt_gpt_data_describe(const struct mt_gpt_data *d, FILE *f);

#endif
