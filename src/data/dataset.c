/* dataset.c: see dataset.h */
#include "data/dataset.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/gpt_dataset.h"
#include <stdlib.h>
#include <string.h>

static void stream_get(const struct mt_dataset *d, size_t i, int32_t *out)
{
    const struct mt_stream_range *r = d->impl;
    /* sample i starts at token i * seq_length: samples overlap by one token */
    const int32_t *p = r->tokens + r->begin + i * (size_t)d->seq_length;
    memcpy(out, p, ((size_t)d->seq_length + 1) * sizeof *out);
}

int mt_dataset_stream(struct mt_dataset *d, struct mt_stream_range *r, const char *name,
                      int seq_length)
{
    memset(d, 0, sizeof *d);
    size_t n = r->end - r->begin;
    if (n < (size_t)seq_length + 1) return -1;
    d->name = name;
    d->seq_length = seq_length;
    d->num_samples = (n - 1) / (size_t)seq_length;
    d->impl = r;
    d->get_sample = stream_get;
    return 0;
}

int mt_split_ranges(const char *split, size_t ntok, size_t begin[3], size_t end[3])
{
    /* Megatron's exact bookend rounding (gpt_dataset.c); an absent split
     * (weight 0) is an empty range here */
    int present[3];
    uint64_t b[3], e[3];
    char err[200];
    if (mt_gpt_split(split, ntok, present, b, e, err, sizeof err) != 0) return -1;
    for (int i = 0; i < 3; i++) {
        begin[i] = present[i] ? (size_t)b[i] : (i ? end[i - 1] : 0);
        end[i] = present[i] ? (size_t)e[i] : begin[i];
    }
    return 0;
}

void mt_loader_init(struct mt_loader *l, const struct mt_dataset *ds, uint64_t seed, int shuffle)
{
    memset(l, 0, sizeof *l);
    l->ds = ds;
    l->seed = seed;
    l->shuffle = shuffle;
    l->cached_epoch = -1;
    MT_ASSERT(ds->num_samples > 0 && ds->num_samples < UINT32_MAX);
}

void mt_loader_free(struct mt_loader *l)
{
    free(l->perm);
    memset(l, 0, sizeof *l);
}

size_t mt_loader_index(struct mt_loader *l, uint64_t counter)
{
    size_t ns = l->ds->num_samples;
    long epoch = (long)(counter / ns);
    size_t pos = (size_t)(counter % ns);
    if (!l->shuffle) return pos;
    if (epoch != l->cached_epoch) {
        if (!l->perm) {
            l->perm = malloc(ns * sizeof *l->perm);
            if (!l->perm) mt_die("out of memory for the sample permutation");
        }
        /* Fisher-Yates from a stream of its own per (seed, epoch) */
        struct mt_rng rng;
        mt_rng_seed(&rng, l->seed, 0x5eed0000ULL + (uint64_t)epoch);
        for (size_t i = 0; i < ns; i++) l->perm[i] = (uint32_t)i;
        for (size_t i = ns - 1; i > 0; i--) {
            size_t j = (size_t)mt_rng_below(&rng, i + 1);
            uint32_t t = l->perm[i];
            l->perm[i] = l->perm[j];
            l->perm[j] = t;
        }
        l->cached_epoch = epoch;
    }
    return l->perm[pos];
}

void mt_loader_batch(struct mt_loader *l, uint64_t counter, int B, int32_t *tokens,
                     int32_t *targets)
{
    const int T = l->ds->seq_length;
    int32_t *buf = malloc(((size_t)T + 1) * sizeof *buf);
    if (!buf) mt_die("out of memory");
    for (int b = 0; b < B; b++) {
        l->ds->get_sample(l->ds, mt_loader_index(l, counter + (uint64_t)b), buf);
        memcpy(tokens + (size_t)b * T, buf, (size_t)T * sizeof *buf);
        memcpy(targets + (size_t)b * T, buf + 1, (size_t)T * sizeof *buf);
    }
    free(buf);
}
