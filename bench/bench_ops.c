/* bench_ops.c: time each compute member of "cpu" against "cpu-ref" at the
 * GPT-2 124M training shapes (B=4, T=64, C=768, NH=12, HS=64, Vp=50304,
 * N=B*T=256, L=12 layers, 124M parameters), then estimate how a training
 * step divides between GEMM and everything else.
 *
 * Part 1, per op: mean wall time per call in ms on each backend and the
 * ratio ref/cpu; GEMMs also give GFLOP/s. Each op is warmed up once and
 * timed over 5 windows of >= 0.1 s, keeping the best window (see time_op);
 * cpu-ref GEMMs above 2 GFLOP run once.
 * Part 2, the step: (a) the sum of part-1 times weighted by how often a step
 * calls each op, and (b) the same op sequence actually run back to back on
 * distinct per-layer buffers (so BLAS and OpenMP threads take turns as in
 * training), timing the GEMM calls inside it.
 *
 * Not a test. Run: OMP_NUM_THREADS=2 bench/bench_ops [--quick] [--step-only]
 *   --quick       skip cpu-ref on GEMMs above 2 GFLOP (tens of seconds each)
 *   --step-only   only the back-to-back step sequence */
#ifdef HAVE_CONFIG_H
#include "config.h" /* HAVE_BLAS and friends, when built by configure */
#endif
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "cpu/cpu_internal.h"

enum { B = 4, T = 64, C = 768, NH = 12, HS = 64, V = 50304, N = B * T, L = 12 };
static const size_t NPARAM = 124439808; /* GPT-2 124M with Vp = 50304 */

static mt_backend *fast, *ref;
static int quick, step_only;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static uint64_t rng_state = 42;
static float urand(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((z >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* Both backends use host memory, so one buffer serves both. */
static float *buf(size_t n, float scale)
{
    float *p = fast->iface->alloc(fast, n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_ops: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = scale * urand();
    return p;
}

static void release(void *p) { fast->iface->dealloc(fast, p); }

/* ---- part 1: one op at a time ---------------------------------------------------------- */

typedef void (*op_fn)(mt_backend *be, void *arg);

/* Seconds per call: one warm-up, then 5 windows of at least min_time/5 (and
 * at least one call) each; the best window's mean. The best rather than the
 * mean because the host shares its CPUs: a descheduled OpenMP thread stalls
 * a parallel region for a scheduler tick or two (4-8 ms), seen here even in a
 * plain OpenMP loop with nothing else running in this machine. */
static double time_op(mt_backend *be, op_fn fn, void *arg, double min_time)
{
    fn(be, arg);
    double best = 1e30;
    for (int w = 0; w < 5; w++) {
        int reps = 0;
        double t0 = now(), t;
        do {
            fn(be, arg);
            reps++;
            t = now() - t0;
        } while (t < min_time / 5);
        if (t / reps < best) best = t / reps;
    }
    return best;
}

/* time on cpu and cpu-ref and print a row; returns cpu seconds per call */
static double report(const char *op, const char *shape, op_fn fn, void *arg, double gflop, int ref_once,
                     int skip_ref)
{
    if (step_only) return 0; /* buffers only */
    double tf = time_op(fast, fn, arg, 0.5);
    double tr = -1;
    if (!skip_ref) {
        if (ref_once) { /* no warm-up: one call is long enough to measure */
            double t0 = now();
            fn(ref, arg);
            tr = now() - t0;
        } else {
            tr = time_op(ref, fn, arg, 0.5);
        }
    }
    printf("%-16s %-34s %10.3f ", op, shape, tf * 1e3);
    if (tr >= 0)
        printf("%10.3f %8.1fx", tr * 1e3, tr / tf);
    else
        printf("%10s %9s", "-", "-");
    if (gflop > 0) printf("  %6.1f GFLOP/s (cpu)", gflop / tf);
    if (gflop > 0 && tr >= 0) printf(" %5.2f (ref)", gflop / tr);
    printf("\n");
    fflush(stdout);
    return tf;
}

struct gemm_arg {
    struct mt_gemm_args g;
};
static void run_gemm(mt_backend *be, void *arg) { be->iface->gemm(be, &((struct gemm_arg *)arg)->g); }

/* y (m,n) = x (m,k) W^T, W (n,k): the forward of a linear layer */
static struct gemm_arg gemm_xwt(float *y, const float *x, const float *w, int m, int n, int k, float beta)
{
    struct gemm_arg a = {{.ta = MT_TRANS_N, .tb = MT_TRANS_T, .m = m, .n = n, .k = k, .batch = 1, .alpha = 1.0f,
                          .beta = beta, .a = x, .lda = k, .b = w, .ldb = k, .c = y, .ldc = n}};
    return a;
}
/* dx (m,k) = dy (m,n) W (n,k) */
static struct gemm_arg gemm_dx(float *dx, const float *dy, const float *w, int m, int n, int k)
{
    struct gemm_arg a = {{.ta = MT_TRANS_N, .tb = MT_TRANS_N, .m = m, .n = k, .k = n, .batch = 1, .alpha = 1.0f,
                          .a = dy, .lda = n, .b = w, .ldb = k, .c = dx, .ldc = k}};
    return a;
}
/* dW (n,k) += dy (m,n)^T x (m,k) */
static struct gemm_arg gemm_dw(float *dw, const float *dy, const float *x, int m, int n, int k)
{
    struct gemm_arg a = {{.ta = MT_TRANS_T, .tb = MT_TRANS_N, .m = n, .n = k, .k = m, .batch = 1, .alpha = 1.0f,
                          .beta = 1.0f, .a = dy, .lda = n, .b = x, .ldb = k, .c = dw, .ldc = k}};
    return a;
}

/* the arguments of every non-GEMM op, for the callbacks */
static struct {
    float *x, *y, *w, *b, *mean, *rstd, *dx, *dw, *db, *dy;
    float *g_in, *g_out, *g_d;
    float *qkv, *att, *aout, *dqkv, *datt, *daout;
    float *logits, *rowmax, *sumexp, *tgt, *losses, *dlosses;
    int32_t *targets, *tok, *pos;
    float *wte, *wpe, *dwte, *dwpe;
    float *p, *pg, *pm, *pv;
    double *out1;
    size_t np;
} A;

/* tensors over the buffers: (rows, cols) f32, an i32 row of ids */
#define TS(p, r, c) mt_f32((p), (r), (c))
#define TI(p, n) mt_i32((p), 1, (n))
static const struct mt_attn_args ATTN = {B, T, 0, NH, NH, HS, 1, NULL, {0.0f, 0, 0, 0, 1, 0}};
static void op_ln_fwd(mt_backend *be, void *u) { (void)u; be->iface->layernorm_fwd(be, TS(A.y, N, C), TS(A.mean, 1, N), TS(A.rstd, 1, N), TS(A.x, N, C), TS(A.w, 1, C), TS(A.b, 1, C), 1e-5); }
static void op_ln_bwd(mt_backend *be, void *u) { (void)u; be->iface->layernorm_bwd(be, TS(A.dx, N, C), TS(A.dw, 1, C), TS(A.db, 1, C), TS(A.dy, N, C), TS(A.x, N, C), TS(A.w, 1, C), TS(A.mean, 1, N), TS(A.rstd, 1, N)); }
static void op_bias_add(mt_backend *be, void *u) { (void)u; be->iface->bias_add(be, TS(A.g_out, N, 4 * C), TS(A.b, 1, 4 * C)); }
static void op_bias_bwd(mt_backend *be, void *u) { (void)u; be->iface->bias_bwd(be, TS(A.db, 1, 4 * C), TS(A.g_d, N, 4 * C)); }
static void op_gelu_fwd(mt_backend *be, void *u) { (void)u; be->iface->act_fwd(be, TS(A.g_out, N, 4 * C), TS(A.g_in, N, 4 * C), MT_ACT_GELU_TANH); }
static void op_gelu_bwd(mt_backend *be, void *u) { (void)u; be->iface->act_bwd(be, TS(A.g_out, N, 4 * C), TS(A.g_in, N, 4 * C), TS(A.g_d, N, 4 * C), MT_ACT_GELU_TANH); }
static void op_add(mt_backend *be, void *u) { (void)u; be->iface->add(be, TS(A.y, N, C), TS(A.y, N, C), TS(A.x, N, C)); }
static void op_attn_fwd(mt_backend *be, void *u) { (void)u; be->iface->attn_fwd(be, TS(A.aout, N, C), TS(A.att, B * NH * T, T), TS(A.qkv, N, 3 * C), &ATTN); }
static void op_attn_bwd(mt_backend *be, void *u) { (void)u; be->iface->attn_bwd(be, TS(A.dqkv, N, 3 * C), TS(A.datt, B * NH * T, T), TS(A.daout, N, C), TS(A.qkv, N, 3 * C), TS(A.att, B * NH * T, T), &ATTN); }
static void op_xent_max(mt_backend *be, void *u) { (void)u; be->iface->xent_max(be, TS(A.rowmax, 1, N), TS(A.logits, N, V), V); }
static void op_xent_sumexp(mt_backend *be, void *u) { (void)u; be->iface->xent_sumexp(be, TS(A.sumexp, 1, N), TS(A.tgt, 1, N), TS(A.logits, N, V), TS(A.rowmax, 1, N), TI(A.targets, N), V, 0); }
static void op_xent_loss(mt_backend *be, void *u) { (void)u; be->iface->xent_loss(be, TS(A.losses, 1, N), TS(A.rowmax, 1, N), TS(A.sumexp, 1, N), TS(A.tgt, 1, N)); }
/* into a separate buffer, so that every repetition sees the same logits */
static void op_xent_bwd(mt_backend *be, void *u) { be->iface->xent_bwd(be, TS((float *)u, N, V), TS(A.dlosses, 1, N), TS(A.logits, N, V), TS(A.rowmax, 1, N), TS(A.sumexp, 1, N), TI(A.targets, N), V, 0); }
static void op_embed_fwd(mt_backend *be, void *u) { (void)u; be->iface->embed_fwd(be, TS(A.y, N, C), TI(A.tok, N), TS(A.wte, V, C), 0, 0); }
static void op_embed_bwd(mt_backend *be, void *u) { (void)u; be->iface->embed_bwd(be, TS(A.dwte, V, C), TS(A.dy, N, C), TI(A.tok, N), 0); }
static const struct mt_adamw_args ADAM = {.lr = 6e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .grad_scale = 1.0f, .step = 10};
static void op_adamw(mt_backend *be, void *u) { (void)u; be->iface->adamw(be, TS(A.p, 1, A.np), TS(A.pg, 1, A.np), TS(A.pm, 1, A.np), TS(A.pv, 1, A.np), &ADAM, 1); }
static void op_ssq(mt_backend *be, void *u) { (void)u; be->iface->sum_squares(be, A.out1, TS(A.pg, 1, A.np)); }
static void op_nonfinite(mt_backend *be, void *u) { (void)u; be->iface->count_nonfinite(be, A.out1, TS(A.pg, 1, A.np)); }

/* per-step call counts for the weighted estimate */
struct cost {
    const char *name;
    double sec, calls;
    int is_gemm;
};
static struct cost COSTS[64];
static int ncosts;
static void cost(const char *name, double sec, double calls, int is_gemm)
{
    COSTS[ncosts++] = (struct cost){name, sec, calls, is_gemm};
}

static void part1(void)
{
    printf("%-16s %-34s %10s %10s %9s\n", "op", "shape", "cpu ms", "ref ms", "ref/cpu");
    /* GEMMs: the four linear layers of a block and the tied LM head,
     * forward (x W^T), backward dx (dy W) and dW (dy^T x, beta 1) */
    static const struct {
        const char *name;
        int in, out, per_step;
    } lin[] = {{"qkv", C, 3 * C, L}, {"attn proj", C, C, L}, {"fc", C, 4 * C, L}, {"fc proj", 4 * C, C, L}, {"lm head", C, V, 1}};
    for (int i = 0; i < 5; i++) {
        int in = lin[i].in, out = lin[i].out;
        float *x = buf((size_t)N * in, 1.0f), *w = buf((size_t)out * in, 0.05f), *y = buf((size_t)N * out, 0.0f);
        double gf = 2.0 * N * in * out * 1e-9;
        int big = gf > 2.0;
        char shape[64];
        struct gemm_arg a = gemm_xwt(y, x, w, N, out, in, 0.0f);
        snprintf(shape, sizeof shape, "(%dx%d)x(%dx%d)^T", N, in, out, in);
        cost(lin[i].name, report("gemm fwd", shape, run_gemm, &a, gf, big, big && quick), lin[i].per_step, 1);
        a = gemm_dx(x, y, w, N, out, in);
        snprintf(shape, sizeof shape, "dx (%dx%d)x(%dx%d)", N, out, out, in);
        cost(lin[i].name, report("gemm bwd dx", shape, run_gemm, &a, gf, 1, 1), lin[i].per_step, 1);
        a = gemm_dw(w, y, x, N, out, in);
        snprintf(shape, sizeof shape, "dW (%dx%d)^Tx(%dx%d)", N, out, N, in);
        cost(lin[i].name, report("gemm bwd dW", shape, run_gemm, &a, gf, 1, 1), lin[i].per_step, 1);
        release(x), release(w), release(y);
    }
    /* layernorm, residual add */
    A.x = buf((size_t)N * C, 1.0f), A.y = buf((size_t)N * C, 1.0f), A.dx = buf((size_t)N * C, 0.1f), A.dy = buf((size_t)N * C, 0.1f);
    A.w = buf(C, 1.0f), A.b = buf(C, 1.0f), A.dw = buf(C, 0.1f), A.db = buf(4 * C, 0.1f), A.mean = buf(N, 0.0f), A.rstd = buf(N, 0.0f);
    cost("layernorm", report("layernorm_fwd", "N=256 C=768", op_ln_fwd, NULL, 0, 0, 0), 2 * L + 1, 0);
    cost("layernorm", report("layernorm_bwd", "N=256 C=768", op_ln_bwd, NULL, 0, 0, 0), 2 * L + 1, 0);
    cost("add", report("add (residual)", "n=256*768", op_add, NULL, 0, 0, 0), 2 * L, 0);
    /* bias and gelu at the fc width (the widest); the estimate scales by width */
    A.g_in = buf((size_t)N * 4 * C, 2.0f), A.g_out = buf((size_t)N * 4 * C, 1.0f), A.g_d = buf((size_t)N * 4 * C, 0.1f);
    cost("bias", report("bias_add", "N=256 C=3072", op_bias_add, NULL, 0, 0, 0), L * (3 + 1 + 4 + 1) / 4.0, 0);
    cost("bias", report("bias_bwd", "N=256 C=3072", op_bias_bwd, NULL, 0, 0, 0), L * (3 + 1 + 4 + 1) / 4.0, 0);
    cost("gelu", report("gelu_fwd", "n=256*3072", op_gelu_fwd, NULL, 0, 0, 0), L, 0);
    cost("gelu", report("gelu_bwd", "n=256*3072", op_gelu_bwd, NULL, 0, 0, 0), L, 0);
    /* attention */
    A.qkv = buf((size_t)N * 3 * C, 1.0f), A.att = buf((size_t)B * NH * T * T, 0.0f), A.aout = buf((size_t)N * C, 0.0f);
    A.dqkv = buf((size_t)N * 3 * C, 0.0f), A.datt = buf((size_t)B * NH * T * T, 0.0f), A.daout = buf((size_t)N * C, 0.1f);
    cost("attention", report("attn_fwd", "B=4 T=64 NH=12 HS=64", op_attn_fwd, NULL, 0, 0, 0), L, 0);
    cost("attention", report("attn_bwd", "B=4 T=64 NH=12 HS=64", op_attn_bwd, NULL, 0, 0, 0), L, 0);
    /* cross-entropy */
    A.logits = buf((size_t)N * V, 3.0f);
    float *dlog = buf((size_t)N * V, 0.0f);
    A.rowmax = buf(N, 0), A.sumexp = buf(N, 0), A.tgt = buf(N, 0), A.losses = buf(N, 0), A.dlosses = buf(N, 0);
    for (int n = 0; n < N; n++) A.dlosses[n] = 1.0f / N;
    A.targets = fast->iface->alloc(fast, N * sizeof(int32_t));
    for (int n = 0; n < N; n++) A.targets[n] = (n * 7919) % V;
    cost("xent", report("xent_max", "N=256 V=50304", op_xent_max, NULL, 0, 0, 0), 1, 0);
    cost("xent", report("xent_sumexp", "N=256 V=50304", op_xent_sumexp, NULL, 0, 0, 0), 1, 0);
    cost("xent", report("xent_loss", "N=256", op_xent_loss, NULL, 0, 0, 0), 1, 0);
    cost("xent", report("xent_bwd", "N=256 V=50304", op_xent_bwd, dlog, 0, 0, 0), 1, 0);
    release(dlog);
    /* embedding */
    A.wte = buf((size_t)V * C, 0.02f), A.wpe = buf((size_t)1024 * C, 0.02f), A.dwte = buf((size_t)V * C, 0.0f), A.dwpe = buf((size_t)1024 * C, 0.0f);
    A.tok = fast->iface->alloc(fast, N * sizeof(int32_t));
    A.pos = fast->iface->alloc(fast, N * sizeof(int32_t));
    for (int n = 0; n < N; n++) A.tok[n] = (n * 104729) % V, A.pos[n] = n % T;
    cost("embed", report("embed_fwd", "B=4 T=64 C=768", op_embed_fwd, NULL, 0, 0, 0), 1, 0);
    cost("embed", report("embed_bwd", "B=4 T=64 C=768", op_embed_bwd, NULL, 0, 0, 0), 1, 0);
    /* optimizer and reductions over all parameters */
    A.np = NPARAM;
    A.p = buf(A.np, 0.02f), A.pg = buf(A.np, 0.01f), A.pm = buf(A.np, 0.001f), A.pv = buf(A.np, 0.0f);
    for (size_t i = 0; i < A.np; i++) A.pv[i] = 1e-6f;
    A.out1 = fast->iface->alloc(fast, sizeof(double));
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", A.np);
    cost("adamw", report("adamw", shape, op_adamw, NULL, 0, 0, 0), 1, 0);
    cost("sum_squares", report("sum_squares", shape, op_ssq, NULL, 0, 0, 0), 1, 0);
    report("count_nonfinite", shape, op_nonfinite, NULL, 0, 0, 0); /* only with loss scaling: not in the step */
}

static void part2_estimate(void)
{
    double gemm = 0, other = 0;
    printf("\nestimated step from the times above (cpu):\n");
    const char *seen[64];
    int nseen = 0;
    for (int i = 0; i < ncosts; i++) {
        int dup = 0;
        for (int j = 0; j < nseen; j++) dup |= strcmp(seen[j], COSTS[i].name) == 0;
        if (dup) continue;
        seen[nseen++] = COSTS[i].name;
        double s = 0;
        for (int j = 0; j < ncosts; j++)
            if (strcmp(COSTS[j].name, COSTS[i].name) == 0) s += COSTS[j].sec * COSTS[j].calls;
        printf("  %-12s %9.1f ms%s\n", COSTS[i].name, s * 1e3, COSTS[i].is_gemm ? "  (gemm)" : "");
        if (COSTS[i].is_gemm)
            gemm += s;
        else
            other += s;
    }
    printf("  total %.1f ms, gemm %.1f ms = %.1f%%\n", (gemm + other) * 1e3, gemm * 1e3, 100 * gemm / (gemm + other));
}

/* ---- part 2b: the step's op sequence, back to back ---------------------------------------- */

static double gemm_seconds;
static void gemm_t(struct gemm_arg a)
{
    double t0 = now();
    fast->iface->gemm(fast, &a.g);
    gemm_seconds += now() - t0;
}

static void part2_sequence(void)
{
    /* per layer: parameters, gradients and the activations backward needs */
    struct layer {
        float *ln1w, *ln1b, *qkvw, *qkvb, *projw, *projb, *ln2w, *ln2b, *fcw, *fcb, *fcpw, *fcpb;
        float *d[12]; /* gradients of the above, same order */
        float *res, *ln1, *ln1m, *ln1r, *qkv, *att, *atty, *res2, *ln2, *ln2m, *ln2r, *fch, *fchg;
    } ly[L];
    size_t psz[12] = {C, C, 3 * C * C, 3 * C, C * C, C, C, C, 4 * C * C, 4 * C, 4 * C * C, C};
    for (int l = 0; l < L; l++) {
        struct layer *y = &ly[l];
        float **p = &y->ln1w;
        for (int j = 0; j < 12; j++) p[j] = buf(psz[j], 0.02f), y->d[j] = buf(psz[j], 0.0f);
        y->res = buf((size_t)N * C, 1), y->ln1 = buf((size_t)N * C, 1), y->ln1m = buf(N, 0), y->ln1r = buf(N, 0);
        y->qkv = buf((size_t)N * 3 * C, 1), y->att = buf((size_t)B * NH * T * T, 0), y->atty = buf((size_t)N * C, 0);
        y->res2 = buf((size_t)N * C, 1), y->ln2 = buf((size_t)N * C, 1), y->ln2m = buf(N, 0), y->ln2r = buf(N, 0);
        y->fch = buf((size_t)N * 4 * C, 1), y->fchg = buf((size_t)N * 4 * C, 1);
    }
    float *wte = A.wte, *wpe = A.wpe, *dwte = A.dwte, *dwpe = A.dwpe;
    float *lnfw = buf(C, 1), *lnfb = buf(C, 0), *dlnfw = buf(C, 0), *dlnfb = buf(C, 0);
    float *resf = buf((size_t)N * C, 1), *lnf = buf((size_t)N * C, 1), *lnfm = buf(N, 0), *lnfr = buf(N, 0);
    float *logits = buf((size_t)N * V, 0), *proj = buf((size_t)N * C, 0);
    float *dres = buf((size_t)N * C, 0), *dln = buf((size_t)N * C, 0), *dbig = buf((size_t)N * 4 * C, 0);
    float *dbig2 = buf((size_t)N * 4 * C, 0), *dqkv = buf((size_t)N * 3 * C, 0), *datt = buf((size_t)B * NH * T * T, 0);
    mt_backend *be = fast;
    const struct mt_backend_i *f = be->iface;
    double best = 1e30, best_gemm = 0, best_opt = 0;
    for (int rep = 0; rep < 6; rep++) { /* first is warm-up */
        gemm_seconds = 0;
        double t0 = now();
        /* forward */
        f->embed_fwd(be, TS(ly[0].res, N, C), TI(A.tok, N), TS(wte, V, C), 0, 0);
        f->embed_fwd(be, TS(ly[0].res, N, C), TI(A.pos, N), TS(wpe, 1024, C), 0, 1);
        for (int l = 0; l < L; l++) {
            struct layer *y = &ly[l];
            float *out = l + 1 < L ? ly[l + 1].res : resf;
            f->layernorm_fwd(be, TS(y->ln1, N, C), TS(y->ln1m, 1, N), TS(y->ln1r, 1, N), TS(y->res, N, C), TS(y->ln1w, 1, C), TS(y->ln1b, 1, C), 1e-5);
            gemm_t(gemm_xwt(y->qkv, y->ln1, y->qkvw, N, 3 * C, C, 0));
            f->bias_add(be, TS(y->qkv, N, 3 * C), TS(y->qkvb, 1, 3 * C));
            f->attn_fwd(be, TS(y->atty, N, C), TS(y->att, B * NH * T, T), TS(y->qkv, N, 3 * C), &ATTN);
            gemm_t(gemm_xwt(proj, y->atty, y->projw, N, C, C, 0));
            f->bias_add(be, TS(proj, N, C), TS(y->projb, 1, C));
            f->add(be, TS(y->res2, N, C), TS(y->res, N, C), TS(proj, N, C));
            f->layernorm_fwd(be, TS(y->ln2, N, C), TS(y->ln2m, 1, N), TS(y->ln2r, 1, N), TS(y->res2, N, C), TS(y->ln2w, 1, C), TS(y->ln2b, 1, C), 1e-5);
            gemm_t(gemm_xwt(y->fch, y->ln2, y->fcw, N, 4 * C, C, 0));
            f->bias_add(be, TS(y->fch, N, 4 * C), TS(y->fcb, 1, 4 * C));
            f->act_fwd(be, TS(y->fchg, N, 4 * C), TS(y->fch, N, 4 * C), MT_ACT_GELU_TANH);
            gemm_t(gemm_xwt(proj, y->fchg, y->fcpw, N, C, 4 * C, 0));
            f->bias_add(be, TS(proj, N, C), TS(y->fcpb, 1, C));
            f->add(be, TS(out, N, C), TS(y->res2, N, C), TS(proj, N, C));
        }
        f->layernorm_fwd(be, TS(lnf, N, C), TS(lnfm, 1, N), TS(lnfr, 1, N), TS(resf, N, C), TS(lnfw, 1, C), TS(lnfb, 1, C), 1e-5);
        gemm_t(gemm_xwt(logits, lnf, wte, N, V, C, 0));
        f->xent_max(be, TS(A.rowmax, 1, N), TS(logits, N, V), V);
        f->xent_sumexp(be, TS(A.sumexp, 1, N), TS(A.tgt, 1, N), TS(logits, N, V), TS(A.rowmax, 1, N), TI(A.targets, N), V, 0);
        f->xent_loss(be, TS(A.losses, 1, N), TS(A.rowmax, 1, N), TS(A.sumexp, 1, N), TS(A.tgt, 1, N));
        /* backward */
        f->xent_bwd(be, TS(logits, N, V), TS(A.dlosses, 1, N), TS(logits, N, V), TS(A.rowmax, 1, N), TS(A.sumexp, 1, N), TI(A.targets, N), V, 0);
        gemm_t(gemm_dx(dln, logits, wte, N, V, C));
        gemm_t(gemm_dw(dwte, logits, lnf, N, V, C));
        f->memset0(be, dres, (size_t)N * C * sizeof(float));
        f->layernorm_bwd(be, TS(dres, N, C), TS(dlnfw, 1, C), TS(dlnfb, 1, C), TS(dln, N, C), TS(resf, N, C), TS(lnfw, 1, C), TS(lnfm, 1, N), TS(lnfr, 1, N));
        for (int l = L - 1; l >= 0; l--) {
            struct layer *y = &ly[l];
            /* fc proj: dres is the gradient of its output */
            gemm_t(gemm_dx(dbig, dres, y->fcpw, N, C, 4 * C));
            gemm_t(gemm_dw(y->d[10], dres, y->fchg, N, C, 4 * C));
            f->bias_bwd(be, TS(y->d[11], 1, C), TS(dres, N, C));
            f->act_bwd(be, TS(dbig2, N, 4 * C), TS(y->fch, N, 4 * C), TS(dbig, N, 4 * C), MT_ACT_GELU_TANH);
            gemm_t(gemm_dx(dln, dbig2, y->fcw, N, 4 * C, C));
            gemm_t(gemm_dw(y->d[8], dbig2, y->ln2, N, 4 * C, C));
            f->bias_bwd(be, TS(y->d[9], 1, 4 * C), TS(dbig2, N, 4 * C));
            f->layernorm_bwd(be, TS(dres, N, C), TS(y->d[6], 1, C), TS(y->d[7], 1, C), TS(dln, N, C), TS(y->res2, N, C), TS(y->ln2w, 1, C), TS(y->ln2m, 1, N), TS(y->ln2r, 1, N));
            gemm_t(gemm_dx(dln, dres, y->projw, N, C, C));
            gemm_t(gemm_dw(y->d[4], dres, y->atty, N, C, C));
            f->bias_bwd(be, TS(y->d[5], 1, C), TS(dres, N, C));
            f->attn_bwd(be, TS(dqkv, N, 3 * C), TS(datt, B * NH * T, T), TS(dln, N, C), TS(y->qkv, N, 3 * C), TS(y->att, B * NH * T, T), &ATTN);
            gemm_t(gemm_dx(dln, dqkv, y->qkvw, N, 3 * C, C));
            gemm_t(gemm_dw(y->d[2], dqkv, y->ln1, N, 3 * C, C));
            f->bias_bwd(be, TS(y->d[3], 1, 3 * C), TS(dqkv, N, 3 * C));
            f->layernorm_bwd(be, TS(dres, N, C), TS(y->d[0], 1, C), TS(y->d[1], 1, C), TS(dln, N, C), TS(y->res, N, C), TS(y->ln1w, 1, C), TS(y->ln1m, 1, N), TS(y->ln1r, 1, N));
        }
        f->embed_bwd(be, TS(dwte, V, C), TS(dres, N, C), TI(A.tok, N), 0);
        f->embed_bwd(be, TS(dwpe, 1024, C), TS(dres, N, C), TI(A.pos, N), 0);
        /* optimizer: one flat buffer of all parameters in training; here the
         * part-1 buffers of the same size stand in for it */
        double t_opt = now();
        f->sum_squares(be, A.out1, TS(A.pg, 1, A.np));
        f->adamw(be, TS(A.p, 1, A.np), TS(A.pg, 1, A.np), TS(A.pm, 1, A.np), TS(A.pv, 1, A.np), &ADAM, 1);
        double t = now() - t0;
        t_opt = now() - t_opt;
        if (rep > 0 && t < best) best = t, best_gemm = gemm_seconds, best_opt = t_opt;
    }
    printf("\nstep op sequence run back to back on cpu (best of 5): %.1f ms, gemm %.1f ms = %.1f%%\n", best * 1e3,
           best_gemm * 1e3, 100 * best_gemm / best);
    printf("  of which optimizer (sum_squares + adamw) %.1f ms; forward + backward alone: gemm = %.1f%%\n",
           best_opt * 1e3, 100 * best_gemm / (best - best_opt));
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        quick |= strcmp(argv[i], "--quick") == 0;
        step_only |= strcmp(argv[i], "--step-only") == 0;
    }
    fast = mt_backend_cpu_create(0);
    ref = mt_backend_cpu_create(1);
#ifdef _OPENMP
    printf("# OpenMP threads: %d\n", omp_get_max_threads());
#else
    printf("# built without OpenMP\n");
#endif
    mt_cpu_gemm_init();
    printf("# cpu gemm: %s\n", mt_cpu_gemm_describe());
    part1();
    if (!step_only) part2_estimate();
    part2_sequence();
    fast->iface->free(fast);
    ref->iface->free(ref);
    return 0;
}
