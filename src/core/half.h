/* half.h: the 16-bit floating-point formats, bf16 and IEEE fp16: conversion
 * from and to f32 with round to nearest even, and rounding an f32 to the
 * nearest value of either format (what mixed precision stores).
 *
 * One definition for every user: the safetensors reader and writer, and
 * the round kernels of every backend (the CUDA ones compile these as
 * __host__ __device__ functions), so that all of them round bitwise alike.
 * fp16: values beyond its range become +-infinity (the overflow a loss
 * scaler detects), below it subnormals, then zero; NaN stays NaN. bf16 has
 * f32's range: only NaN needs care. */
#ifndef MT_HALF_H
#define MT_HALF_H
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define MT_HALF_FN static inline __host__ __device__
#else
#define MT_HALF_FN static inline
#endif

MT_HALF_FN uint32_t mt_bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

MT_HALF_FN float mt_float_of(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

MT_HALF_FN uint16_t mt_f32_to_bf16(float x)
{
    uint32_t u = mt_bits_of(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

MT_HALF_FN float mt_bf16_to_f32(uint16_t h) { return mt_float_of((uint32_t)h << 16); }

MT_HALF_FN uint16_t mt_f32_to_f16(float f)
{
    const uint32_t x = mt_bits_of(f), sign = (x >> 16) & 0x8000u, exp = (x >> 23) & 0xffu;
    uint32_t mant = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0));
    const int e = (int)exp - 127 + 15;
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00u); /* overflow: infinity */
    uint32_t half, rem, mid;
    if (e <= 0) { /* a subnormal half, or zero */
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000u;
        const int shift = 14 - e;
        half = mant >> shift;
        rem = mant & ((1u << shift) - 1);
        mid = 1u << (shift - 1);
    } else {
        half = ((uint32_t)e << 10) | (mant >> 13);
        rem = mant & 0x1fffu;
        mid = 0x1000u;
    }
    if (rem > mid || (rem == mid && (half & 1u))) half++; /* a carry may reach infinity: right */
    return (uint16_t)(sign | half);
}

MT_HALF_FN float mt_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return mt_float_of(sign | 0x7f800000u | (mant << 13));
    if (exp != 0) return mt_float_of(sign | ((exp + 112) << 23) | (mant << 13));
    if (mant == 0) return mt_float_of(sign);
    int k = 0; /* a subnormal: normalise */
    while (!(mant & 0x400u)) mant <<= 1, k++;
    return mt_float_of(sign | ((uint32_t)(113 - k) << 23) | ((mant & 0x3ffu) << 13));
}

/* x rounded to the nearest bf16 / fp16 value, kept as an f32 */
MT_HALF_FN float mt_round_bf16(float x) { return mt_bf16_to_f32(mt_f32_to_bf16(x)); }
MT_HALF_FN float mt_round_f16(float x) { return mt_f16_to_f32(mt_f32_to_f16(x)); }

#endif
