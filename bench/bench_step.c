/* bench_step.c: tokens/s of the training step (forward, backward, AdamW) on
 * each backend, and the fraction of the sgemm limit the step reaches.
 *
 * The sgemm limit: every GEMM one step issues is recorded (shapes,
 * transposes, strides, beta) and replayed alone on the same backend; the sum
 * of those times is the step's GEMM time at the library's speed, and
 * limit / step time is the fraction reached. Run through `make bench`:
 *   ./bench/bench_step [--config teaching|124m|both] [--steps N] [--ref-steps N]
 *                      [--backend cpu|cuda] [--seq N] [--batch N] [--tf32] [--bf16|--fp16]
 *                      [--profile]
 * --backend cuda times the CUDA backend (cuBLAS is then the GEMM limit) and
 * skips cpu-ref; --seq and --batch change the shape of the chosen configs;
 * --bf16 / --fp16 time the mixed-precision step (train's --bf16 / --fp16:
 * the GEMMs in the half type over f32 weights; the sgemm limit stays f32);
 * --profile adds the time of every backend op per step (each op between two
 * synchronisations, so the sum exceeds the plain step time on a GPU).
 * bench/bench_cuda.sh runs the 124M step at sequence 1024 on the GPU
 * against PyTorch. */
#include "backend/backend.h"
#include "core/io.h"
#include "core/rng.h"
#include "model/model.h"
#include "optim/optimizer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rec {
    int n, cap;
    struct mt_gemm_args *g;
};

static void record(void *user, const struct mt_gemm_args *g)
{
    struct rec *r = user;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->g = realloc(r->g, (size_t)r->cap * sizeof *r->g);
    }
    r->g[r->n++] = *g;
}

struct shape {
    const char *name;
    struct mt_transformer_config cfg;
    int B, T;
};

/* GPT-2 of L layers, width C, NH heads, maxT positions, V tokens padded to Vp */
static struct mt_transformer_config gpt_config(int L, int C, int NH, int maxT, int V, int Vp)
{
    struct mt_transformer_config c;
    mt_config_defaults(&c);
    c.num_layers = L;
    c.hidden_size = C;
    c.num_attention_heads = NH;
    c.max_position_embeddings = maxT;
    c.vocab_size = V;
    c.padded_vocab_size = Vp;
    mt_config_derive(&c);
    return c;
}

/* --attention-backend: the model's attention form (flash by default) */
static enum mt_attn_impl attn_impl = MT_ATTN_FLASH;

static void random_batch(struct mt_rng *rng, int32_t *x, int n, int V)
{
    for (int i = 0; i < n; i++) x[i] = (int32_t)mt_rng_below(rng, (uint64_t)V);
}

/* Seconds per training step over `steps` steps (after one warm-up step). */
static double time_steps(mt_backend *be, const struct shape *s, int steps, struct rec *rec)
{
    struct mt_model m;
    const struct mt_model_opts mo = {{MT_RECOMPUTE_NONE, MT_RECOMPUTE_UNIFORM, 0}, attn_impl};
    mt_model_init_opts(&m, &s->cfg, be, s->B, s->T, NULL, 1, &mo);
    mt_model_init_weights(&m, 1234);
    struct mt_optimizer o;
    struct mt_optim_config oc = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f, .clip_grad = 1.0f};
    mt_optim_init(&o, &oc, be, &m.table);
    int N = s->B * s->T;
    int32_t *tok = malloc((size_t)N * sizeof *tok), *tgt = malloc((size_t)N * sizeof *tgt);
    struct mt_rng rng;
    mt_rng_seed(&rng, 1, 9);
    random_batch(&rng, tok, N, s->cfg.vocab_size);
    random_batch(&rng, tgt, N, s->cfg.vocab_size);
    double t = 0;
    for (int i = 0; i <= steps; i++) {
        if (i == 1) t = mt_now();
        if (i == 0 && rec) mt_backend_set_gemm_hook(record, rec);
        mt_model_forward(&m, tok, tgt, s->B, s->T, 0);
        mt_model_backward(&m, 1.0f);
        mt_optim_step(&o, m.params, m.grads, 1e-4f, 1.0f);
        if (i == 0) mt_backend_set_gemm_hook(NULL, NULL);
        mt_synchronize(be);
    }
    double per = steps > 0 ? (mt_now() - t) / steps : 0;
    free(tok);
    free(tgt);
    mt_optim_free(&o);
    mt_model_free(&m);
    return per;
}

/* Replays the recorded GEMMs on scratch buffers; returns seconds for one
 * pass (best of `reps`) and the FLOPs. */
static double replay(mt_backend *be, const struct rec *r, int reps, double *flops)
{
    size_t maxa = 0, maxb = 0, maxc = 0;
    *flops = 0;
    for (int i = 0; i < r->n; i++) {
        const struct mt_gemm_args *g = &r->g[i];
        size_t ra = g->ta == MT_TRANS_N ? (size_t)g->m : (size_t)g->k;
        size_t rb = g->tb == MT_TRANS_N ? (size_t)g->k : (size_t)g->n;
        size_t sa = (size_t)(g->batch - 1) * (size_t)g->stride_a + ra * (size_t)g->lda;
        size_t sb = (size_t)(g->batch - 1) * (size_t)g->stride_b + rb * (size_t)g->ldb;
        size_t sc = (size_t)(g->batch - 1) * (size_t)g->stride_c + (size_t)g->m * (size_t)g->ldc;
        if (sa > maxa) maxa = sa;
        if (sb > maxb) maxb = sb;
        if (sc > maxc) maxc = sc;
        *flops += 2.0 * g->m * (double)g->n * g->k * g->batch;
    }
    float *a = mt_alloc(be, maxa * 4), *b = mt_alloc(be, maxb * 4), *c = mt_alloc(be, maxc * 4);
    float *h = malloc((maxa > maxb ? maxa : maxb) * 4);
    for (size_t i = 0; i < (maxa > maxb ? maxa : maxb); i++) h[i] = 0.01f * (float)(i % 97);
    mt_upload(be, a, h, maxa * 4);
    mt_upload(be, b, h, maxb * 4);
    mt_memset0(be, c, maxc * 4);
    double best = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        mt_synchronize(be);
        double t = mt_now();
        for (int i = 0; i < r->n; i++) {
            struct mt_gemm_args g = r->g[i];
            g.a = a;
            g.b = b;
            g.c = c;
            mt_gemm(be, &g);
        }
        mt_synchronize(be);
        double dt = mt_now() - t;
        if (dt < best) best = dt;
    }
    mt_dealloc(be, a);
    mt_dealloc(be, b);
    mt_dealloc(be, c);
    free(h);
    return best;
}

/* --profile: seconds per op name, each op fenced by synchronisations */
enum { MAX_OPS = 32 };
static struct {
    const char *name[MAX_OPS];
    double sec[MAX_OPS], t0;
    long calls[MAX_OPS];
    int n;
} prof;

static void op_hook(void *user, mt_backend *be, const char *op, int end)
{
    (void)user;
    mt_synchronize(be);
    if (!end) {
        prof.t0 = mt_now();
        return;
    }
    int i = 0;
    while (i < prof.n && strcmp(prof.name[i], op) != 0) i++;
    if (i == prof.n) {
        if (prof.n == MAX_OPS) return;
        prof.name[prof.n++] = op;
    }
    prof.sec[i] += mt_now() - prof.t0;
    prof.calls[i]++;
}

static void profile_shape(mt_backend *be, const struct shape *s, int steps)
{
    memset(&prof, 0, sizeof prof);
    mt_backend_set_op_hook(op_hook, NULL);
    double t = time_steps(be, s, steps, NULL);
    mt_backend_set_op_hook(NULL, NULL);
    double total = 0;
    for (int i = 0; i < prof.n; i++) total += prof.sec[i];
    /* the warm-up step is counted too: steps + 1 */
    printf("%-9s profile (ms per step, ops fenced; fenced step %.1f ms):\n", s->name, 1e3 * t);
    for (int i = 0; i < prof.n; i++)
        printf("%-9s   %-14s %9.2f ms  %5.1f%%  (%ld calls)\n", s->name, prof.name[i],
               1e3 * prof.sec[i] / (steps + 1), 100.0 * prof.sec[i] / total,
               prof.calls[i] / (steps + 1));
}

/* --bf16 / --fp16: the GEMM precision of the timed steps */
static enum mt_dtype precision = MT_DTYPE_F32;

static void run_shape(const struct shape *s, const char *backend, int tf32, int steps,
                      int ref_steps, int profile)
{
    char err[256];
    mt_backend *cpu = mt_backend_init(backend, err, sizeof err);
    if (!cpu) {
        fprintf(stderr, "bench_step: %s\n", err);
        exit(1);
    }
    if (tf32 && !mt_backend_set_tf32(cpu, 1)) fprintf(stderr, "bench_step: --tf32 ignored by %s\n", backend);
    const char *nm = mt_backend_name(cpu);
    mt_backend *ref = ref_steps > 0 ? mt_backend_init("cpu-ref", err, sizeof err) : NULL;
    mt_backend_set_gemm_precision(cpu, precision);
    if (ref) mt_backend_set_gemm_precision(ref, precision);
    const double tokens = (double)s->B * s->T;
    struct rec rec = {0};
    double t_cpu = time_steps(cpu, s, steps, &rec);
    struct mt_mem_stats ms; /* the training's peak, before the GEMM replay allocates */
    mt_backend_mem(cpu, &ms);
    double flops;
    mt_backend_set_gemm_precision(cpu, MT_DTYPE_F32); /* the library's own speed */
    double t_gemm = replay(cpu, &rec, 3, &flops);
    mt_backend_set_gemm_precision(cpu, precision);
    printf("%-9s B=%d T=%d %s%s%s\n", s->name, s->B, s->T, nm, tf32 ? " (TF32)" : "",
           precision == MT_DTYPE_BF16 ? " (bf16 GEMMs)" : precision == MT_DTYPE_F16 ? " (fp16 GEMMs)" : "");
    printf("%-9s %-8s %9.1f tokens/s  (%.1f ms/step)\n", s->name, nm, tokens / t_cpu, 1e3 * t_cpu);
    printf("%-9s sgemm    %9.1f GFLOP/s over the step's %d GEMMs (%.1f GFLOP); limit %.1f tokens/s\n",
           s->name, flops / t_gemm / 1e9, rec.n, flops / 1e9, tokens / t_gemm);
    printf("%-9s fraction of the sgemm limit reached: %.1f%%\n", s->name, 100.0 * t_gemm / t_cpu);
    printf("%-9s memory   peak %.3f GiB of %s allocations (%s attention)\n", s->name, (double)ms.peak / (1 << 30), nm,
           attn_impl == MT_ATTN_FLASH ? "flash" : "unfused");
    if (profile) profile_shape(cpu, s, steps);
    if (ref_steps > 0) {
        double t_ref = time_steps(ref, s, ref_steps, NULL);
        printf("%-9s cpu-ref  %9.1f tokens/s  (%.1f ms/step)\n", s->name, tokens / t_ref, 1e3 * t_ref);
        printf("%-9s speed-up %s / cpu-ref: %.1fx\n", s->name, nm, t_ref / t_cpu);
    }
    fflush(stdout);
    free(rec.g);
    mt_backend_free(cpu);
    mt_backend_free(ref);
}

int main(int argc, char **argv)
{
    const char *config = "both", *backend = "cpu";
    int steps = 5, ref_steps = 1, seq = 0, batch = 0, tf32 = 0, profile = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ref-steps") && i + 1 < argc) ref_steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--seq") && i + 1 < argc) seq = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tf32")) tf32 = 1;
        else if (!strcmp(argv[i], "--bf16")) precision = MT_DTYPE_BF16;
        else if (!strcmp(argv[i], "--fp16")) precision = MT_DTYPE_F16;
        else if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (!strcmp(argv[i], "--attention-backend") && i + 1 < argc && mt_attn_impl_parse(argv[i + 1]) >= 0)
            attn_impl = (enum mt_attn_impl)mt_attn_impl_parse(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--config teaching|124m|both] [--steps N] [--ref-steps N]\n"
                            "       [--backend cpu|cuda] [--seq N] [--batch N] [--tf32] [--bf16|--fp16]\n"
                            "       [--profile] [--attention-backend flash|unfused]\n",
                    argv[0]);
            return 2;
        }
    }
    const char *ct = getenv("OPENBLAS_CORETYPE"), *omp = getenv("OMP_NUM_THREADS");
    const char *lib = getenv("MT_CPU_GEMM");
    printf("bench_step: OPENBLAS_CORETYPE=%s OMP_NUM_THREADS=%s MT_CPU_GEMM=%s\n", ct ? ct : "(unset)",
           omp ? omp : "(unset)", lib ? lib : "(unset: auto)");
    struct shape teaching = {"teaching", gpt_config(4, 128, 4, 64, 256, 256), 12, 64};
    struct shape gpt124m = {"124M", gpt_config(12, 768, 12, 1024, 50257, 50304), 4, 64};
    if (strcmp(backend, "cpu") != 0) ref_steps = 0; /* cpu-ref is only the CPU's yardstick */
    struct shape *shapes[] = {&teaching, &gpt124m};
    for (int i = 0; i < 2; i++) {
        if (seq > 0) shapes[i]->T = seq;
        if (batch > 0) shapes[i]->B = batch;
        if (shapes[i]->T > shapes[i]->cfg.max_position_embeddings) shapes[i]->cfg.max_position_embeddings = shapes[i]->T;
    }
    if (!strcmp(config, "teaching") || !strcmp(config, "both"))
        run_shape(&teaching, backend, tf32, steps * 4, ref_steps * 4, profile);
    if (!strcmp(config, "124m") || !strcmp(config, "both"))
        run_shape(&gpt124m, backend, tf32, steps, ref_steps, profile);
    return 0;
}
