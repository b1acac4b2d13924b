/* philox.h: the counter-based random numbers behind dropout.
 *
 * Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers:
 * as easy as 1, 2, 3", SC 2011; the generator of curand and of PyTorch's
 * CUDA dropout): a pure function of a 128-bit counter and a 64-bit key, so
 * every backend, thread and rank computes the same number for the same
 * element without sharing any state, in any order. Dropout masks are keyed
 * by the run's seed and a stream (layer and place in the layer), and the
 * counter holds the element's global coordinates (column or key position,
 * query position, sample index in the training stream, head): the mask of
 * an element does not depend on the backend, the thread count or how the
 * model is split over ranks, and a resumed run draws the same masks.
 *
 * Header-only, plain C that also compiles as C++ and as CUDA device code
 * (the CUDA backend's kernels include it; MT_HOSTDEV marks the functions for
 * nvcc). Integer arithmetic only: the keep decision is bit-identical
 * everywhere. */
#ifndef MT_PHILOX_H
#define MT_PHILOX_H
#include <stdint.h>

#if defined(__CUDACC__)
#define MT_HOSTDEV __host__ __device__
#else
#define MT_HOSTDEV
#endif

/* One Philox4x32-10 block: out[0..3] from counter c[0..3] and key k[0..1]. */
static inline MT_HOSTDEV void mt_philox4x32(const uint32_t c[4], const uint32_t k[2],
                                            uint32_t out[4])
{
    uint32_t x0 = c[0], x1 = c[1], x2 = c[2], x3 = c[3], k0 = k[0], k1 = k[1];
    for (int round = 0; round < 10; round++) {
        const uint64_t p0 = (uint64_t)0xD2511F53u * x0, p1 = (uint64_t)0xCD9E8D57u * x2;
        const uint32_t y0 = (uint32_t)(p1 >> 32) ^ x1 ^ k0, y2 = (uint32_t)(p0 >> 32) ^ x3 ^ k1;
        x1 = (uint32_t)p1;
        x3 = (uint32_t)p0;
        x0 = y0;
        x2 = y2;
        k0 += 0x9E3779B9u; /* the Weyl key schedule */
        k1 += 0xBB67AE85u;
    }
    out[0] = x0;
    out[1] = x1;
    out[2] = x2;
    out[3] = x3;
}

/* The random bits of elements (4 a4 + i, b, c, d), i = 0..3, of stream
 * `stream` of `seed`: one Philox block, whose four words serve four
 * consecutive elements, so a kernel walking a row needs one block per four
 * elements. */
static inline MT_HOSTDEV void mt_philox_block(uint64_t seed, uint32_t stream, uint32_t a4,
                                              uint32_t b, uint32_t c, uint32_t d, uint32_t out[4])
{
    const uint32_t ctr[4] = {a4, b, c, d};
    /* distinct streams give distinct keys: x -> x * odd is a bijection */
    const uint32_t key[2] = {(uint32_t)seed ^ (stream * 0x9E3779B9u), (uint32_t)(seed >> 32)};
    mt_philox4x32(ctr, key, out);
}

/* The 32 random bits of element (a, b, c, d). */
static inline MT_HOSTDEV uint32_t mt_philox_bits(uint64_t seed, uint32_t stream, uint32_t a,
                                                 uint32_t b, uint32_t c, uint32_t d)
{
    uint32_t out[4];
    mt_philox_block(seed, stream, a >> 2, b, c, d, out);
    return out[a & 3];
}

/* Dropout of probability p keeps an element when its bits are at least
 * mt_dropout_threshold(p) = floor(p * 2^32) (so it keeps it with
 * probability 1 - p to within 2^-32); kept elements are multiplied by
 * 1 / (1 - p) rounded to float once, on the host, for every backend. */
static inline uint32_t mt_dropout_threshold(double p)
{
    double t = p * 4294967296.0;
    return t <= 0.0 ? 0u : t >= 4294967295.0 ? 4294967295u : (uint32_t)t;
}

static inline float mt_dropout_scale(double p) { return (float)(1.0 / (1.0 - p)); }

static inline MT_HOSTDEV int mt_dropout_keep(uint64_t seed, uint32_t stream, uint32_t threshold,
                                             uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    return mt_philox_bits(seed, stream, a, b, c, d) >= threshold;
}

#endif /* MT_PHILOX_H */
