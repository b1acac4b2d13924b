/* cpu_gemm.c: the "cpu" backend's f32 GEMM, C = alpha op(A) op(B) + beta C
 * per matrix of a batch, through one of three libraries:
 *
 *   blas     cblas_sgemm (OpenBLAS preferred, configure --with-blas)
 *   dnnl     oneDNN's dnnl_sgemm (configure --with-dnnl)
 *   builtin  the cache-blocked, OpenMP-parallel GEMM below, always built
 *
 * Chosen per call by the shape (AUTO, the default): oneDNN for GEMMs of at
 * most DNNL_MAX_MACS multiply-adds, BLAS for larger ones, the built-in one
 * where neither is built. Measured on 2 cores (AMD EPYC, AVX2; OpenBLAS
 * 0.3.21, oneDNN 2.6; OMP_NUM_THREADS=2), GFLOP/s of OpenBLAS -> oneDNN:
 * the teaching shape's GEMMs (768 x 128..512 x 128..512, all transposes)
 * 55-100 -> 95-155, 1.3-2.4x, and the 124M shape's (256 x 768..50304 x
 * 768..3072, 4.5e8 to 1e10 multiply-adds) 120-160 on both, within 10 %
 * either way except one case where oneDNN is at half (256 x 3072 x 768,
 * NN). The rule depends on the shape alone, never on a timing, so a run
 * repeats bitwise; the two libraries' sums differ in order, so switching
 * one changes results by f32 rounding (cpu vs cpu-ref tolerances hold for
 * each, tests/test_ops.c).
 *
 * MT_CPU_GEMM=auto|blas|dnnl|builtin in the environment forces one library
 * (benchmarks; tests call mt_cpu_gemm_set_library). Neither library is
 * ever called inside an OpenMP parallel region: nested threading
 * oversubscribes the cores, and OpenBLAS issue #5806 reports that its
 * thread-count setting is overridden in OpenMP builds. Their threading is
 * their business (OpenBLAS splits m and n, not k; oneDNN may split k for
 * thin shapes), which is why make check pins OMP_NUM_THREADS. */
#ifdef HAVE_CONFIG_H
#include "config.h" /* HAVE_BLAS, HAVE_DNNL */
#endif
#include "cpu/cpu_internal.h"
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_BLAS
#include <cblas.h>
#endif
#ifdef HAVE_DNNL
#include <dnnl.h>
#endif

/* The largest GEMM (m n k) that AUTO gives to oneDNN: above the teaching
 * shape's 5e7, below the 124M shape's smallest, 4.5e8 (256 x 768 x 768 is
 * 1.5e8 and a tie). */
#define DNNL_MAX_MACS (1.0 * (1 << 27))

static enum mt_cpu_gemm_lib gemm_lib = MT_CPU_GEMM_AUTO;

int mt_cpu_gemm_available(enum mt_cpu_gemm_lib lib)
{
    switch (lib) {
    case MT_CPU_GEMM_AUTO:
    case MT_CPU_GEMM_BUILTIN: return 1;
#ifdef HAVE_BLAS
    case MT_CPU_GEMM_BLAS: return 1;
#endif
#ifdef HAVE_DNNL
    case MT_CPU_GEMM_DNNL: return 1;
#endif
    default: return 0;
    }
}

enum mt_cpu_gemm_lib mt_cpu_gemm_set_library(enum mt_cpu_gemm_lib lib)
{
    MT_ASSERT(mt_cpu_gemm_available(lib));
    enum mt_cpu_gemm_lib old = gemm_lib;
    gemm_lib = lib;
    return old;
}

void mt_cpu_gemm_init(void)
{
    static const char *const names[] = {"auto", "blas", "dnnl", "builtin"};
    static int done;
    if (done) return;
    done = 1;
    const char *v = getenv("MT_CPU_GEMM");
    if (!v || !*v) return;
    for (int i = 0; i < 4; i++)
        if (!strcmp(v, names[i])) {
            if (!mt_cpu_gemm_available((enum mt_cpu_gemm_lib)i))
                mt_user_error("unset MT_CPU_GEMM or name a library this build has",
                              "MT_CPU_GEMM=%s: this build has no %s (configure did not find it)", v,
                              i == MT_CPU_GEMM_BLAS ? "BLAS library" : "oneDNN");
            gemm_lib = (enum mt_cpu_gemm_lib)i;
            return;
        }
    mt_user_error("use auto (the default), blas, dnnl or builtin",
                  "MT_CPU_GEMM='%s' is not a GEMM library", v);
}

const char *mt_cpu_gemm_describe(void)
{
    switch (gemm_lib) {
    case MT_CPU_GEMM_BLAS: return "cblas_sgemm (MT_CPU_GEMM=blas)";
    case MT_CPU_GEMM_DNNL: return "oneDNN dnnl_sgemm (MT_CPU_GEMM=dnnl)";
    case MT_CPU_GEMM_BUILTIN: return "built-in blocked GEMM (MT_CPU_GEMM=builtin)";
    default: break;
    }
#if defined(HAVE_DNNL) && defined(HAVE_BLAS)
    return "oneDNN dnnl_sgemm up to 2^27 multiply-adds, cblas_sgemm above";
#elif defined(HAVE_DNNL)
    return "oneDNN dnnl_sgemm";
#elif defined(HAVE_BLAS)
    return "cblas_sgemm";
#else
    return "built-in blocked GEMM (no BLAS, no oneDNN)";
#endif
}

/* C = beta * C for one (m,n) matrix; beta = 0 writes zeros without reading C. */
static void scale_c(float *c, int ldc, int m, int n, float beta)
{
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * ldc;
        if (beta == 0.0f)
            memset(ci, 0, (size_t)n * sizeof *ci);
        else if (beta != 1.0f)
            for (int j = 0; j < n; j++) ci[j] *= beta;
    }
}

/* Goto-style blocking. C is cut into MC x NC tiles, the unit of parallel work
 * (no two threads write the same element, and each element's k-sum runs in
 * the same order whatever the thread count). Per tile and per KC slice of k,
 * op(A) is packed into MR-row panels and op(B) into NR-column panels,
 * contiguous and zero-padded, so the micro-kernel reads both with unit
 * stride and keeps an MR x NR block of C in registers: 6 x 16 is 6 AVX-512
 * or 12 AVX registers, and 6 x 8 is 12 of the 16 SSE registers (6 x 16 with
 * SSE spills: 43 instead of 65 GFLOP/s on 2 cores). KC x NR floats of B stay
 * in L1 and the packed MC x KC block of A (96 KB) in L2. */
#if defined(__AVX__)
enum { GEMM_NR = 16 };
#else
enum { GEMM_NR = 8 };
#endif
enum { GEMM_MR = 6, GEMM_MC = 96, GEMM_KC = 256, GEMM_NC = 512 };

/* The MR x NR block of C only stays in registers if the loops over its rows
 * are unrolled completely; gcc does that at -O3 but not at -O2 (where the
 * block lived in memory: 45 instead of 75 GFLOP/s with SSE2, and 90 instead
 * of 270 with AVX-512), so ask for it. */
#if defined(__GNUC__)
#define MT_UNROLL_MR _Pragma("GCC unroll 6")
#else
#define MT_UNROLL_MR
#endif

/* acc (MR,NR) = ap (KC panel, MR per k) x bp (KC panel, NR per k) */
static void gemm_micro(int kc, const float *restrict ap, const float *restrict bp,
                       float *restrict acc)
{
    float c[GEMM_MR][GEMM_NR];
    MT_UNROLL_MR
    for (int i = 0; i < GEMM_MR; i++)
        for (int j = 0; j < GEMM_NR; j++) c[i][j] = 0.0f;
    for (int l = 0; l < kc; l++) {
        const float *brow = bp + (size_t)l * GEMM_NR;
        const float *acol = ap + (size_t)l * GEMM_MR;
        MT_UNROLL_MR
        for (int i = 0; i < GEMM_MR; i++) {
            float ai = acol[i];
            OMP(simd)
            for (int j = 0; j < GEMM_NR; j++) c[i][j] += ai * brow[j];
        }
    }
    MT_UNROLL_MR
    for (int i = 0; i < GEMM_MR; i++)
        for (int j = 0; j < GEMM_NR; j++) acc[i * GEMM_NR + j] = c[i][j];
}

/* Packs rows [i0, i0+mc) and k range [l0, l0+kc) of op(A) into MR-row panels:
 * ap[panel][l][i]. Rows past mc are zero. */
static void pack_a(float *restrict ap, const float *a, int lda, enum mt_trans ta, int i0,
                   int mc, int l0, int kc)
{
    for (int r0 = 0; r0 < mc; r0 += GEMM_MR) {
        float *dst = ap + (size_t)r0 * kc;
        int rows = mc - r0 < GEMM_MR ? mc - r0 : GEMM_MR;
        if (ta == MT_TRANS_N) { /* row i of op(A) is row i of A */
            for (int i = 0; i < GEMM_MR; i++) {
                const float *src = a + (size_t)(i0 + r0 + i) * lda + l0;
                for (int l = 0; l < kc; l++) dst[l * GEMM_MR + i] = i < rows ? src[l] : 0.0f;
            }
        } else { /* row i of op(A) is column i of A */
            for (int l = 0; l < kc; l++) {
                const float *src = a + (size_t)(l0 + l) * lda + i0 + r0;
                for (int i = 0; i < GEMM_MR; i++) dst[l * GEMM_MR + i] = i < rows ? src[i] : 0.0f;
            }
        }
    }
}

/* Packs k range [l0, l0+kc) and columns [j0, j0+nc) of op(B) into NR-column
 * panels: bp[panel][l][j]. Columns past nc are zero. */
static void pack_b(float *restrict bp, const float *b, int ldb, enum mt_trans tb, int l0,
                   int kc, int j0, int nc)
{
    for (int s0 = 0; s0 < nc; s0 += GEMM_NR) {
        float *dst = bp + (size_t)s0 * kc;
        int cols = nc - s0 < GEMM_NR ? nc - s0 : GEMM_NR;
        if (tb == MT_TRANS_N) { /* row l of op(B) is row l of B */
            for (int l = 0; l < kc; l++) {
                const float *src = b + (size_t)(l0 + l) * ldb + j0 + s0;
                for (int j = 0; j < GEMM_NR; j++) dst[l * GEMM_NR + j] = j < cols ? src[j] : 0.0f;
            }
        } else { /* column j of op(B) is row j of B */
            for (int j = 0; j < GEMM_NR; j++) {
                const float *src = b + (size_t)(j0 + s0 + j) * ldb + l0;
                for (int l = 0; l < kc; l++) dst[l * GEMM_NR + j] = j < cols ? src[l] : 0.0f;
            }
        }
    }
}

/* Adds one micro-tile acc (MR,NR) into C (rows x cols valid). The first k
 * slice applies beta (beta = 0 overwrites, never reading C); later slices
 * accumulate. */
static void store_tile(float *c, int ldc, const float *acc, int rows, int cols, float alpha,
                       float beta, int first)
{
    for (int i = 0; i < rows; i++) {
        float *ci = c + (size_t)i * ldc;
        const float *ai = acc + i * GEMM_NR;
        if (!first || beta == 1.0f) {
            for (int j = 0; j < cols; j++) ci[j] += alpha * ai[j];
        } else if (beta == 0.0f) {
            for (int j = 0; j < cols; j++) ci[j] = alpha * ai[j];
        } else {
            for (int j = 0; j < cols; j++) ci[j] = alpha * ai[j] + beta * ci[j];
        }
    }
}

/* the whole batch; m, n, k >= 1 and alpha != 0 (mt_cpu_gemm sees to it) */
static void gemm_builtin(const struct mt_gemm_args *g)
{
    int m = g->m, n = g->n, k = g->k;
    int mt = (m + GEMM_MC - 1) / GEMM_MC, nt = (n + GEMM_NC - 1) / GEMM_NC;
    long tiles = (long)g->batch * mt * nt;
    int kc_max = k < GEMM_KC ? k : GEMM_KC;
    double flops = 2.0 * m * n * k * g->batch;
    (void)flops; /* only read by the OpenMP if clause */
    OMP(parallel if (tiles > 1 && flops > 4e6))
    {
        float *ap = mt_cpu_xmalloc(sizeof(float) * (size_t)GEMM_MC * kc_max);
        float *bp = mt_cpu_xmalloc(sizeof(float) * (size_t)GEMM_NC * kc_max);
        float acc[GEMM_MR * GEMM_NR];
        OMP(for schedule(dynamic, 1))
        for (long tile = 0; tile < tiles; tile++) {
            int p = (int)(tile / ((long)mt * nt));
            int rem = (int)(tile % ((long)mt * nt));
            int i0 = (rem / nt) * GEMM_MC, j0 = (rem % nt) * GEMM_NC;
            int mc = m - i0 < GEMM_MC ? m - i0 : GEMM_MC;
            int nc = n - j0 < GEMM_NC ? n - j0 : GEMM_NC;
            const float *a = (const float *)g->a + p * g->stride_a;
            const float *b = (const float *)g->b + p * g->stride_b;
            float *c = (float *)g->c + p * g->stride_c;
            for (int l0 = 0; l0 < k; l0 += GEMM_KC) {
                int kc = k - l0 < GEMM_KC ? k - l0 : GEMM_KC;
                pack_a(ap, a, g->lda, g->ta, i0, mc, l0, kc);
                pack_b(bp, b, g->ldb, g->tb, l0, kc, j0, nc);
                for (int s0 = 0; s0 < nc; s0 += GEMM_NR) {
                    for (int r0 = 0; r0 < mc; r0 += GEMM_MR) {
                        gemm_micro(kc, ap + (size_t)r0 * kc, bp + (size_t)s0 * kc, acc);
                        int rows = mc - r0 < GEMM_MR ? mc - r0 : GEMM_MR;
                        int cols = nc - s0 < GEMM_NR ? nc - s0 : GEMM_NR;
                        store_tile(c + (size_t)(i0 + r0) * g->ldc + j0 + s0, g->ldc, acc, rows,
                                   cols, g->alpha, g->beta, l0 == 0);
                    }
                }
            }
        }
        free(ap);
        free(bp);
    }
}

/* the library this call goes to */
static enum mt_cpu_gemm_lib pick(const struct mt_gemm_args *g)
{
    (void)g; /* read only when both libraries are built */
    if (gemm_lib != MT_CPU_GEMM_AUTO) return gemm_lib;
#if defined(HAVE_DNNL) && defined(HAVE_BLAS)
    return (double)g->m * g->n * g->k > DNNL_MAX_MACS ? MT_CPU_GEMM_BLAS : MT_CPU_GEMM_DNNL;
#elif defined(HAVE_DNNL)
    return MT_CPU_GEMM_DNNL;
#elif defined(HAVE_BLAS)
    return MT_CPU_GEMM_BLAS;
#else
    return MT_CPU_GEMM_BUILTIN;
#endif
}

void mt_cpu_gemm(mt_backend *be, const struct mt_gemm_args *g)
{
    (void)be;
    if (g->m <= 0 || g->n <= 0 || g->batch <= 0) return;
    /* k = 0 or alpha = 0: C = beta * C. Done here because the libraries
     * reject lda < 1, which a caller may legitimately pass for an empty A. */
    if (g->k <= 0 || g->alpha == 0.0f) {
        for (int p = 0; p < g->batch; p++)
            scale_c((float *)g->c + p * g->stride_c, g->ldc, g->m, g->n, g->beta);
        return;
    }
    const enum mt_cpu_gemm_lib lib = pick(g);
    if (lib == MT_CPU_GEMM_BUILTIN) {
        gemm_builtin(g);
        return;
    }
    for (int p = 0; p < g->batch; p++) {
        const float *a = (const float *)g->a + p * g->stride_a;
        const float *b = (const float *)g->b + p * g->stride_b;
        float *c = (float *)g->c + p * g->stride_c;
#ifdef HAVE_DNNL
        if (lib == MT_CPU_GEMM_DNNL) {
            /* row-major, as cblas with CblasRowMajor */
            dnnl_status_t st = dnnl_sgemm(g->ta == MT_TRANS_N ? 'N' : 'T', g->tb == MT_TRANS_N ? 'N' : 'T',
                                          g->m, g->n, g->k, g->alpha, a, g->lda, b, g->ldb, g->beta, c,
                                          g->ldc);
            if (st != dnnl_success)
                mt_die("cpu: oneDNN's dnnl_sgemm failed (status %d) for m=%d n=%d k=%d lda=%d ldb=%d "
                       "ldc=%d; MT_CPU_GEMM=blas avoids it", (int)st, g->m, g->n, g->k, g->lda,
                       g->ldb, g->ldc);
            continue;
        }
#endif
#ifdef HAVE_BLAS
        cblas_sgemm(CblasRowMajor, g->ta == MT_TRANS_N ? CblasNoTrans : CblasTrans,
                    g->tb == MT_TRANS_N ? CblasNoTrans : CblasTrans, g->m, g->n, g->k, g->alpha, a,
                    g->lda, b, g->ldb, g->beta, c, g->ldc);
#else
        (void)a, (void)b, (void)c;
        MT_ASSERT(!"no BLAS built in"); /* pick() and set_library never choose it */
#endif
    }
}
