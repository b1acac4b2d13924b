/* rng.c: see rng.h */
#include "core/rng.h"
#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void mt_rng_seed(struct mt_rng *r, uint64_t seed, uint64_t purpose)
{
    uint64_t x = seed ^ (purpose * 0xd1342543de82ef95ULL);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mt_rng_u64(struct mt_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float mt_rng_float(struct mt_rng *r) { return (float)(mt_rng_u64(r) >> 40) * 0x1.0p-24f; }

double mt_rng_double(struct mt_rng *r) { return (double)(mt_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t mt_rng_below(struct mt_rng *r, uint64_t n)
{
    /* rejection sampling: reject the top partial range */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = mt_rng_u64(r);
    while (x >= limit);
    return x % n;
}

double mt_rng_normal(struct mt_rng *r)
{
    double u1 = mt_rng_double(r), u2 = mt_rng_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
