/* test_safetensors: the 16-bit float conversions and the safetensors
 * reader and writer of src/interop/safetensors.h.
 *
 * Conversions: every F16 and BF16 bit pattern widens to the value an
 * independent decoder (ldexp) gives and narrows back to itself; random and
 * hand-picked f32 values (ties, the largest finite values, subnormals,
 * underflow) narrow to the value an independent round-to-nearest-even in
 * double arithmetic gives. Files: a written file reads back (names, dtypes,
 * shapes, values, metadata skipped), and malformed headers are refused
 * with a message naming the file and the fault. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#endif
#include "interop/safetensors.h"
#include "tap.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- independent oracles ---------------------------------------------------------------- */

static double decode16(uint16_t h, int ebits, int mbits)
{
    const int bias = (1 << (ebits - 1)) - 1, e = (h >> mbits) & ((1 << ebits) - 1);
    const double s = h >> 15 ? -1.0 : 1.0, m = h & ((1 << mbits) - 1);
    if (e == (1 << ebits) - 1) return m ? NAN : s * INFINITY;
    if (e == 0) return s * ldexp(m, 1 - bias - mbits);
    return s * ldexp(1.0 + ldexp(m, -mbits), e - bias);
}

/* x rounded to the nearest value with mbits mantissa bits and exponents
 * from emin (subnormals below), ties to even; beyond max + ulp/2: infinity */
static double round16(double x, int emin, int emax, int mbits)
{
    if (isnan(x) || isinf(x)) return x;
    const double a = fabs(x);
    if (a == 0) return x;
    int k;
    frexp(a, &k); /* a = f 2^k, f in [0.5, 1) */
    int e = k - 1;
    if (e < emin) e = emin;
    const double ulp = ldexp(1.0, e - mbits);
    double q = nearbyint(a / ulp) * ulp; /* the default rounding: ties to even */
    const double max = ldexp(2.0 - ldexp(1.0, -mbits), emax);
    if (q > max) q = INFINITY;
    return copysign(q, x);
}
#define F16_ROUND(x) round16((x), -14, 15, 10)
#define BF16_ROUND(x) round16((x), -126, 127, 7)

static uint32_t rng_state = 12345u;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static float f32_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int same(double a, double b) { return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b)); }

static void test_conversions(void)
{
    int bad16 = 0, badbf = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        double r = decode16((uint16_t)h, 5, 10);
        float f = mt_f16_to_f32((uint16_t)h);
        if (!same(f, r) || (!isnan(r) && mt_f32_to_f16(f) != h) || (isnan(r) && !isnan(mt_f16_to_f32(mt_f32_to_f16(f)))))
            bad16++;
        r = decode16((uint16_t)h, 8, 7);
        f = mt_bf16_to_f32((uint16_t)h);
        if (!same(f, r) || (!isnan(r) && mt_f32_to_bf16(f) != h) || (isnan(r) && !isnan(mt_bf16_to_f32(mt_f32_to_bf16(f)))))
            badbf++;
    }
    tap_ok(bad16 == 0, "all 65536 F16 patterns widen exactly and narrow back (%d wrong)", bad16);
    tap_ok(badbf == 0, "all 65536 BF16 patterns widen exactly and narrow back (%d wrong)", badbf);

    /* random bit patterns, and random values in the 16-bit formats' ranges */
    int n16 = 0, nbf = 0, first16 = -1;
    float first_x = 0;
    for (int i = 0; i < 2000000; i++) {
        float x = i % 2 ? f32_of(rnd()) : ldexpf((float)(rnd() >> 8) / (1 << 24), (int)(rnd() % 60) - 40);
        if (i % 4 == 2) x = -x;
        if (!same(mt_f16_to_f32(mt_f32_to_f16(x)), F16_ROUND(x))) {
            if (first16 < 0) first16 = i, first_x = x;
            n16++;
        }
        if (!same(mt_bf16_to_f32(mt_f32_to_bf16(x)), BF16_ROUND(x))) nbf++;
    }
    tap_ok(n16 == 0, "2M f32 values narrow to F16 as round-to-nearest-even says (%d wrong, first %.9g)", n16,
           first_x);
    tap_ok(nbf == 0, "2M f32 values narrow to BF16 as round-to-nearest-even says (%d wrong)", nbf);

    /* the edges, by name */
    struct { float x; uint16_t h; const char *what; } f16[] = {
        {65504.0f, 0x7bff, "the largest F16"},
        {65519.99f, 0x7bff, "just below the rounding edge to infinity"},
        {65520.0f, 0x7c00, "the tie above the largest F16 rounds to infinity"},
        {1e10f, 0x7c00, "overflow"},
        {ldexpf(1, -24), 0x0001, "the smallest subnormal"},
        {ldexpf(1, -25), 0x0000, "half of it: a tie, to even (zero)"},
        {ldexpf(1.5f, -25), 0x0001, "three quarters of it: up"},
        {ldexpf(3, -25), 0x0002, "a tie between 1 and 2 subnormal ulps: to even (2)"},
        {1.0f + ldexpf(1, -11), 0x3c00, "1 + half an ulp: to even (1)"},
        {1.0f + ldexpf(3, -11), 0x3c02, "1 + 1.5 ulp: to even (1 + 2 ulp)"},
        {-0.0f, 0x8000, "negative zero"},
    };
    int e16 = 0;
    for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++)
        if (mt_f32_to_f16(f16[i].x) != f16[i].h) e16++, tap_diag("F16 %s: 0x%04x", f16[i].what, mt_f32_to_f16(f16[i].x));
    tap_ok(e16 == 0, "F16 edges: largest, infinity, subnormals, ties, negative zero");
    struct { uint32_t x; uint16_t h; const char *what; } bf[] = {
        {0x3f808000u, 0x3f80, "a tie below an even mantissa stays"},
        {0x3f818000u, 0x3f82, "a tie below an odd mantissa goes up"},
        {0x3f808001u, 0x3f81, "just above a tie goes up"},
        {0x7f7fffffu, 0x7f80, "the largest f32 rounds to infinity"},
        {0x7f7f7fffu, 0x7f7f, "the largest BF16 stays"},
        {0x00000001u, 0x0000, "the smallest f32 subnormal flushes to zero by rounding"},
        {0x7fc00001u, 0x7fc0, "a quiet NaN stays NaN"},
        {0x7f800001u, 0x7fc0, "a signalling NaN with a low payload stays NaN (not infinity)"},
    };
    int ebf = 0;
    for (size_t i = 0; i < sizeof bf / sizeof bf[0]; i++)
        if (mt_f32_to_bf16(f32_of(bf[i].x)) != bf[i].h)
            ebf++, tap_diag("BF16 %s: 0x%04x", bf[i].what, mt_f32_to_bf16(f32_of(bf[i].x)));
    tap_ok(ebf == 0, "BF16 edges: ties, infinity, subnormals, NaN payloads");
}

/* ---- files --------------------------------------------------------------------------------- */

static char dir[] = "/tmp/mt_test_st_XXXXXX";

static void write_raw(const char *path, const char *header, size_t data_bytes)
{
    FILE *f = fopen(path, "wb");
    const uint64_t n = strlen(header);
    for (int i = 0; i < 8; i++) fputc((int)((n >> (8 * i)) & 0xff), f);
    fputs(header, f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
    fclose(f);
}

static void expect_refused(const char *header, size_t data_bytes, const char *needle, const char *what)
{
    char path[200], err[600];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    write_raw(path, header, data_bytes);
    struct mt_st_file s;
    int rc = mt_st_open(&s, path, err, sizeof err);
    tap_ok(rc != 0 && strstr(err, needle) && strstr(err, path), "%s: refused (%s)", what, rc ? err : "accepted");
    if (rc == 0) mt_st_close(&s);
    unlink(path);
}

static void test_files(void)
{
    char path[200], err[600];
    snprintf(path, sizeof path, "%s/ok.safetensors", dir);
    const float a[6] = {1, -2.5f, 3.25f, 1e-3f, 65504, -0.0f}, b[3] = {0.1f, 0.2f, 0.3f};
    const int64_t sa[2] = {2, 3}, sb[1] = {3};
    struct mt_st_writer *w = mt_st_writer_new(path);
    mt_st_writer_metadata(w, "note", "a \"quoted\" value");
    mt_st_writer_declare(w, "a.f32", MT_ST_F32, 2, sa);
    mt_st_writer_declare(w, "a.f16", MT_ST_F16, 2, sa);
    mt_st_writer_declare(w, "b.bf16", MT_ST_BF16, 1, sb);
    mt_st_writer_data(w, "a.f32", a);
    mt_st_writer_data(w, "a.f16", a);
    mt_st_writer_data(w, "b.bf16", b);
    mt_st_writer_close(w);

    struct mt_st_file s;
    int ok = mt_st_open(&s, path, err, sizeof err) == 0;
    tap_ok(ok, "a written file opens (%s)", ok ? "3 tensors" : err);
    if (!ok) return;
    tap_ok(s.n == 3 && s.data_start % 8 == 0, "3 tensors (the metadata is no tensor), the header padded to 8 bytes");
    struct mt_st_tensor *t32 = mt_st_find(&s, "a.f32"), *t16 = mt_st_find(&s, "a.f16"), *tb = mt_st_find(&s, "b.bf16");
    tap_ok(t32 && t16 && tb && t32->dtype == MT_ST_F32 && t16->dtype == MT_ST_F16 && tb->dtype == MT_ST_BF16 &&
               t16->ndim == 2 && t16->shape[0] == 2 && t16->shape[1] == 3 && tb->ndim == 1 && tb->shape[0] == 3,
           "names, dtypes and shapes read back");
    float r[8];
    int eq = t32 && mt_st_read_f32(&s, t32, r, err, sizeof err) == 0 && memcmp(r, a, sizeof a) == 0;
    tap_ok(eq, "F32 values read back bit for bit");
    eq = t16 && mt_st_read_f32(&s, t16, r, err, sizeof err) == 0;
    for (int i = 0; eq && i < 6; i++) eq = same(r[i], F16_ROUND(a[i]));
    tap_ok(eq, "F16 values read back as the rounded values");
    eq = tb && mt_st_read_f32(&s, tb, r, err, sizeof err) == 0;
    for (int i = 0; eq && i < 3; i++) eq = same(r[i], BF16_ROUND(b[i]));
    tap_ok(eq, "BF16 values read back as the rounded values");
    mt_st_close(&s);
    unlink(path);

    expect_refused("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "JSON", "unterminated header");
    expect_refused("[1,2]", 0, "not a JSON object", "a header that is no object");
    expect_refused("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "bytes for shape",
                   "a shape the bytes do not hold");
    expect_refused("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "outside",
                   "data past the end of the file");
    expect_refused("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap",
                   "overlapping tensors");
    expect_refused("{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "lacks", "an entry without data_offsets");
    /* an unknown dtype opens (the reader lists it) but does not read as floats */
    snprintf(path, sizeof path, "%s/u8.safetensors", dir);
    write_raw(path, "{\"x\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
    ok = mt_st_open(&s, path, err, sizeof err) == 0;
    int refused = ok && mt_st_read_f32(&s, &s.t[0], r, err, sizeof err) != 0 && strstr(err, "U8");
    tap_ok(refused, "a U8 tensor is listed but not read as floats (%s)", refused ? err : "read");
    if (ok) mt_st_close(&s);
    unlink(path);
}

int main(void)
{
    test_conversions();
    if (!mkdtemp(dir)) {
        printf("Bail out! cannot create a temporary directory\n");
        return 99;
    }
    test_files();
    rmdir(dir);
    return tap_done();
}
