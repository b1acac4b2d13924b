/* rng.h: host-side random numbers. xoshiro256** seeded through splitmix64:
 * small, fast, and its whole state (4 x uint64) fits in a checkpoint, so a
 * resumed run draws exactly the numbers the uninterrupted run would. */
#ifndef MT_RNG_H
#define MT_RNG_H
#include <stdint.h>

struct mt_rng {
    uint64_t s[4];
};

/* Seeds a stream from (seed, purpose): different purposes (weights, data
 * order, sampling) give independent streams from one --seed. */
void mt_rng_seed(struct mt_rng *r, uint64_t seed, uint64_t purpose);
uint64_t mt_rng_u64(struct mt_rng *r);
/* uniform in [0, 1) with 24 bits (float) / 53 bits (double) */
float mt_rng_float(struct mt_rng *r);
double mt_rng_double(struct mt_rng *r);
/* uniform integer in [0, n), unbiased */
uint64_t mt_rng_below(struct mt_rng *r, uint64_t n);
/* standard normal (Box-Muller, one value per call; deterministic) */
double mt_rng_normal(struct mt_rng *r);

#endif
