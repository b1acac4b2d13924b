/* dataset.h: GPT samples over a token stream, and the deterministic loader.
 *
 * A dataset is a sequence of samples of seq_length + 1 tokens (inputs and
 * shifted targets); consecutive samples overlap by one token, as in
 * Megatron's GPTDataset. The loader maps a global sample counter
 * (Megatron's consumed_samples) to a sample: epoch = counter / num_samples,
 * position in a per-epoch permutation drawn from (seed, epoch). The whole
 * data position is therefore one integer, which checkpoints store; a
 * data-parallel rank takes its slice of each global batch by offsetting the
 * counter. The indexed .bin/.idx dataset plugs in behind get_sample. */
#ifndef MT_DATASET_H
#define MT_DATASET_H
#include <stddef.h>
#include <stdint.h>

struct mt_dataset {
    const char *name;       /* for messages, e.g. "train split of data/x.txt" */
    size_t num_samples;
    int seq_length;
    void *impl;
    /* writes seq_length + 1 tokens of sample i < num_samples */
    void (*get_sample)(const struct mt_dataset *d, size_t i, int32_t *out);
};

/* A contiguous range [begin, end) of an in-memory token array (not owned). */
struct mt_stream_range {
    const int32_t *tokens;
    size_t begin, end;
};
/* Sets up d over the range; returns 0, or -1 when it holds fewer than
 * seq_length + 1 tokens (not even one sample). */
int mt_dataset_stream(struct mt_dataset *d, struct mt_stream_range *r, const char *name,
                      int seq_length);

/* Megatron --split "a,b,c": the token ranges of train / valid / test for
 * ntok tokens. Returns 0, or -1 when the string is malformed. */
int mt_split_ranges(const char *split, size_t ntok, size_t begin[3], size_t end[3]);

struct mt_loader {
    const struct mt_dataset *ds;
    uint64_t seed;
    int shuffle;            /* 0 for validation: samples in order */
    long cached_epoch;
    uint32_t *perm;         /* permutation of the cached epoch */
};

void mt_loader_init(struct mt_loader *l, const struct mt_dataset *ds, uint64_t seed, int shuffle);
void mt_loader_free(struct mt_loader *l);
/* Fills tokens and targets (B x T each, T = seq_length) with the samples
 * counter, counter+1, ..., counter+B-1. */
void mt_loader_batch(struct mt_loader *l, uint64_t counter, int B, int32_t *tokens,
                     int32_t *targets);
/* The dataset sample index that global sample `counter` maps to. */
size_t mt_loader_index(struct mt_loader *l, uint64_t counter);

#endif
