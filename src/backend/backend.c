/* backend.c: the backend registry and the validating wrappers. Arguments
 * are checked here once (sizes, pointers), optional members get their
 * defaults, then the call goes to the backend. */
#include "backend/backend.h"
#include "backend/watchdog.h"
#include "core/error.h"
#include "core/io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/* Backend constructors. Declared here rather than included: src/ never
 * includes headers from backends/ (doc/architecture.md, dependency rules).
 * The CUDA constructor comes from one of three archives, chosen at link
 * time: libmt_cuda.a (the backend), libmt_cuda_none.a (configure found no
 * CUDA: the constructor explains) or libmt_cuda_emu.a (the backend's source
 * run on the CPU, for tests). mt_backend_cuda_kind is "" for the second. */
mt_backend *mt_backend_cpu_create(int reference);
mt_backend *mt_backend_cuda_create(char *err, size_t errlen);
extern const char mt_backend_cuda_kind[];

const char *mt_backend_list(void)
{
    return mt_backend_cuda_kind[0] ? "cpu, cpu-ref, cuda" : "cpu, cpu-ref";
}

int mt_backend_set_tf32(mt_backend *be, int on)
{
    if (!be->iface->set_tf32) return 0;
    be->iface->set_tf32(be, on);
    return 1;
}

int mt_backend_iface_complete(const struct mt_backend_i *i, const char **missing)
{
#define REQ(f) \
    if (!i->f) { \
        if (missing) *missing = #f; \
        return 0; \
    }
    REQ(name) REQ(free) REQ(alloc) REQ(dealloc) REQ(memset0) REQ(upload) REQ(download)
    REQ(copy_2d) REQ(gemm) REQ(embed_fwd) REQ(embed_bwd) REQ(layernorm_fwd) REQ(layernorm_bwd)
    REQ(rmsnorm_fwd) REQ(rmsnorm_bwd) REQ(bias_add) REQ(bias_bwd) REQ(act_fwd) REQ(act_bwd)
    REQ(swiglu_fwd) REQ(swiglu_bwd) REQ(add) REQ(scale) REQ(round_half) REQ(to_half) REQ(dropout) REQ(rope) REQ(attn_fwd)
    REQ(attn_bwd) REQ(flash_attn_fwd) REQ(flash_attn_bwd) REQ(xent_max) REQ(xent_sumexp) REQ(xent_loss) REQ(xent_bwd) REQ(adamw)
    REQ(sgd) REQ(sq_sums) REQ(adafactor_precond) REQ(adafactor_apply) REQ(sum)
    REQ(sum_squares) REQ(count_nonfinite) REQ(comm_world) REQ(comm_split) REQ(comm_free)
    REQ(comm_rank) REQ(comm_size) REQ(all_reduce) REQ(all_gather) REQ(reduce_scatter)
    REQ(broadcast) REQ(send) REQ(recv)
#undef REQ
    return 1;
}

mt_backend *mt_backend_init(const char *name, char *err, size_t errlen)
{
    mt_backend *be = NULL;
    if (err && errlen) err[0] = 0;
    if (strcmp(name, "cpu") == 0) be = mt_backend_cpu_create(0);
    else if (strcmp(name, "cpu-ref") == 0) be = mt_backend_cpu_create(1);
    else if (strcmp(name, "cuda") == 0) be = mt_backend_cuda_create(err, errlen);
    else {
        if (err)
            snprintf(err, errlen, "unknown backend '%s' (this build has: %s)", name,
                     mt_backend_list());
        return NULL;
    }
    if (!be) return NULL;
    const char *missing = NULL;
    if (!mt_backend_iface_complete(be->iface, &missing))
        mt_die("backend '%s' does not implement mandatory member '%s'", name, missing);
    return be;
}

mt_backend *mt_backend_open(const char *name, int tf32)
{
    char err[320];
    mt_backend *be = mt_backend_init(name, err, sizeof err);
    if (!be) {
        char hint[160];
        if (strcmp(name, "cuda") == 0 && strstr(mt_backend_list(), "cuda"))
            snprintf(hint, sizeof hint,
                     "run where nvidia-smi shows a GPU, one per rank, or use --backend cpu");
        else
            snprintf(hint, sizeof hint, "use --backend with one of: %s", mt_backend_list());
        mt_user_error(hint, "%s", err);
    }
    if (tf32 && !mt_backend_set_tf32(be, 1))
        mt_warn("--tf32 has no effect on backend %s (its GEMMs are fp32)", mt_backend_name(be));
    return be;
}

/* Live allocations as an unordered list: a run makes a few hundred, most
 * at start, so a linear search on free costs nothing that shows. */
struct mt_mem_track {
    size_t n, cap, live, peak;
    void **ptr;
    size_t *size;
};

static void track_add(mt_backend *be, void *p, size_t nbytes)
{
    struct mt_mem_track *t = be->mem;
    if (!t && !(t = be->mem = calloc(1, sizeof *t))) mt_die("out of memory");
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->ptr = realloc(t->ptr, t->cap * sizeof *t->ptr);
        t->size = realloc(t->size, t->cap * sizeof *t->size);
        if (!t->ptr || !t->size) mt_die("out of memory");
    }
    t->ptr[t->n] = p;
    t->size[t->n++] = nbytes;
    t->live += nbytes;
    if (t->live > t->peak) t->peak = t->live;
}

static void track_remove(mt_backend *be, void *p)
{
    struct mt_mem_track *t = be->mem;
    for (size_t i = 0; t && i < t->n; i++)
        if (t->ptr[i] == p) {
            t->live -= t->size[i];
            t->ptr[i] = t->ptr[--t->n];
            t->size[i] = t->size[t->n];
            return;
        }
}

void mt_backend_mem(const mt_backend *be, struct mt_mem_stats *out)
{
    *out = (struct mt_mem_stats){be->mem ? be->mem->live : 0, be->mem ? be->mem->peak : 0};
}

void mt_backend_free(mt_backend *be)
{
    if (!be) return;
    if (be->scalar) be->iface->dealloc(be, be->scalar);
    if (be->gemm_scratch) be->iface->dealloc(be, be->gemm_scratch);
    if (be->mem) {
        free(be->mem->ptr);
        free(be->mem->size);
        free(be->mem);
    }
    be->iface->free(be);
}

const char *mt_backend_name(const mt_backend *be) { return be->iface->name(be); }

static mt_op_hook_fn op_hook;
static void *op_hook_user;

void mt_backend_set_op_hook(mt_op_hook_fn fn, void *user)
{
    op_hook = fn;
    op_hook_user = user;
}

/* A compute member's call, between the profiling hook's two calls. */
#define DISPATCH(be, name, call) \
    do { \
        if (op_hook) op_hook(op_hook_user, be, name, 0); \
        call; \
        if (op_hook) op_hook(op_hook_user, be, name, 1); \
    } while (0)

static mt_gemm_hook_fn gemm_hook;
static void *gemm_hook_user;

void mt_backend_set_gemm_hook(mt_gemm_hook_fn fn, void *user)
{
    gemm_hook = fn;
    gemm_hook_user = user;
}

/* ---- memory ---------------------------------------------------------------- */

void *mt_alloc(mt_backend *be, size_t nbytes)
{
    if (nbytes == 0) nbytes = 64;
    void *p = be->iface->alloc(be, nbytes);
    if (!p)
        mt_user_error("reduce --micro-batch-size, --seq-length or the model size",
                      "backend '%s' could not allocate %.1f MiB", mt_backend_name(be),
                      (double)nbytes / (1024.0 * 1024.0));
    track_add(be, p, nbytes);
    return p;
}

void mt_dealloc(mt_backend *be, void *p)
{
    if (!p) return;
    track_remove(be, p);
    be->iface->dealloc(be, p);
}

void mt_memset0(mt_backend *be, void *dst, size_t nbytes)
{
    if (nbytes) be->iface->memset0(be, dst, nbytes);
}

void mt_upload(mt_backend *be, void *dst, const void *host_src, size_t nbytes)
{
    if (nbytes) be->iface->upload(be, dst, host_src, nbytes);
}

void mt_download(mt_backend *be, void *host_dst, const void *src, size_t nbytes)
{
    if (nbytes) be->iface->download(be, host_dst, src, nbytes);
}

void mt_copy(mt_backend *be, void *dst, const void *src, size_t nbytes)
{
    if (nbytes && dst != src) be->iface->copy_2d(be, dst, nbytes, src, nbytes, nbytes, 1);
}

void mt_copy_2d(mt_backend *be, void *dst, size_t dst_pitch, const void *src, size_t src_pitch,
                size_t row_bytes, size_t rows)
{
    MT_ASSERT(row_bytes <= dst_pitch || rows <= 1);
    MT_ASSERT(row_bytes <= src_pitch || rows <= 1);
    if (rows && row_bytes) be->iface->copy_2d(be, dst, dst_pitch, src, src_pitch, row_bytes, rows);
}

void mt_synchronize(mt_backend *be)
{
    if (be->iface->synchronize) be->iface->synchronize(be);
}

/* ---- tensors ----------------------------------------------------------------- */

const char *mt_op_name(enum mt_op op)
{
    static const char *names[MT_OP_COUNT] = {
        "gemm", "embedding", "layernorm", "rmsnorm", "bias", "activation", "swiglu", "add", "scale",
        "dropout", "rope", "attention", "cross-entropy", "optimizer", "reduction"};
    return op >= 0 && op < MT_OP_COUNT ? names[op] : "?";
}

int mt_backend_supports(const mt_backend *be, enum mt_op op, enum mt_dtype t)
{
    if (be->iface->supports) return be->iface->supports(be, op, t);
    return t == MT_DTYPE_F32;
}

/* A backend declines an (op, type) it lacks: say which, and what to do. */
static void need_type(mt_backend *be, enum mt_op op, enum mt_dtype t)
{
    if (!mt_backend_supports(be, op, t))
        mt_user_error("this version computes every op in f32 on every backend; use f32 tensors",
                      "backend '%s' has no %s kernel for %s tensors", mt_backend_name(be),
                      mt_op_name(op), mt_dtype_name(t));
}

mt_tensor mt_tensor_alloc(mt_backend *be, enum mt_dtype t, int64_t rows, int64_t cols)
{
    MT_ASSERT(rows >= 0 && cols >= 0);
    return mt_tensor_of(mt_alloc(be, (size_t)(rows * cols) * mt_dtype_size(t)), t, rows, cols);
}

void mt_tensor_free(mt_backend *be, mt_tensor *t)
{
    mt_dealloc(be, t->data);
    t->data = NULL;
}

static size_t nbytes_of(mt_tensor t) { return (size_t)mt_numel(t) * mt_dtype_size(t.dtype); }

void mt_tensor_zero(mt_backend *be, mt_tensor t) { mt_memset0(be, t.data, nbytes_of(t)); }

void mt_tensor_upload(mt_backend *be, mt_tensor t, const void *host)
{
    mt_upload(be, t.data, host, nbytes_of(t));
}

void mt_tensor_download(mt_backend *be, void *host, mt_tensor t)
{
    mt_download(be, host, t.data, nbytes_of(t));
}

mt_tensor mt_rows(mt_tensor t, int64_t r0, int64_t n)
{
    if (!t.data) return t;
    MT_ASSERT(r0 >= 0 && n >= 0 && r0 + n <= t.rows);
    t.data = (char *)t.data + (size_t)(r0 * t.cols) * mt_dtype_size(t.dtype);
    t.rows = n;
    return t;
}

mt_tensor mt_prefix(mt_tensor t, int64_t rows2, int64_t cols2)
{
    if (!t.data) return t;
    MT_ASSERT(rows2 >= 0 && cols2 >= 0 && rows2 * cols2 <= mt_numel(t));
    t.rows = rows2;
    t.cols = cols2;
    return t;
}

mt_tensor mt_reshape(mt_tensor t, int64_t rows2, int64_t cols2)
{
    MT_ASSERT(rows2 >= 0 && cols2 >= 0 && rows2 * cols2 == mt_numel(t));
    t.rows = rows2;
    t.cols = cols2;
    return t;
}

/* Shape agreement, the extents a wrapper can check: an internal invariant
 * (the model builds every view), so a failure is a bug, not bad input. */
#define SAME_SHAPE(a, b) MT_ASSERT((a).rows == (b).rows && (a).cols == (b).cols)
#define SAME_TYPE(a, b) MT_ASSERT((a).dtype == (b).dtype)
#define IS_VEC(v, n) MT_ASSERT(mt_numel(v) == (n))
#define IS_F32(v) MT_ASSERT((v).dtype == MT_DTYPE_F32)
#define IS_I32(v) MT_ASSERT((v).dtype == MT_DTYPE_I32)

/* ---- GEMM ------------------------------------------------------------------ */

/* ---- GEMMs in half precision ------------------------------------------------------
 * The inputs are rounded to the half type in copies (the f32 originals,
 * master weights among them, are kept): half storage where the backend
 * multiplies half values (supports(MT_OP_GEMM, bf16 / f16): cuda through
 * cublasGemmEx, on the tensor cores; cpu-ref), else f32 copies holding the
 * rounded values, which the f32 GEMM multiplies (cpu). Either way the
 * products are exact (bf16 and fp16 products fit in f32) and summed in f32
 * (f64 on cpu-ref), and the product alpha op(A) op(B) is rounded to the
 * half type before beta C is added (in f32): the result a half GEMM with
 * f32 accumulation stores, as cuBLAS's with a half C does. */

enum mt_dtype mt_backend_set_gemm_precision(mt_backend *be, enum mt_dtype t)
{
    MT_ASSERT(t == MT_DTYPE_F32 || t == MT_DTYPE_BF16 || t == MT_DTYPE_F16);
    const enum mt_dtype old = be->gemm_math;
    be->gemm_math = t;
    return old;
}

/* Elements from the first to one past the last a stored matrix (or batch
 * of them) touches: rows of cols elements, ld apart, batches stride apart. */
static size_t stored_span(int batch, int64_t stride, int rows, int cols, int ld)
{
    if (rows == 0 || cols == 0) return 0;
    return (size_t)(batch - 1) * (size_t)stride + (size_t)(rows - 1) * (size_t)ld + (size_t)cols;
}

static float *gemm_scratch(mt_backend *be, size_t floats)
{
    if (floats > be->gemm_scratch_floats) {
        if (be->gemm_scratch) mt_dealloc(be, be->gemm_scratch);
        be->gemm_scratch = mt_alloc(be, floats * sizeof(float));
        be->gemm_scratch_floats = floats;
    }
    return be->gemm_scratch;
}

/* a copy of the n f32 elements at src, rounded: in half storage when
 * native, else in f32 */
static const void *rounded_copy(mt_backend *be, float *dst, const void *src, size_t n, int native)
{
    if (native) {
        mt_to_half(be, mt_tensor_of(dst, be->gemm_math, 1, (int64_t)n), mt_f32((float *)src, 1, (int64_t)n));
        return dst;
    }
    mt_copy(be, dst, src, n * sizeof(float));
    mt_round_half(be, mt_f32(dst, 1, (int64_t)n), be->gemm_math);
    return dst;
}

/* the floats of scratch a copy of n elements takes, 64-byte aligned */
static size_t copy_floats(size_t n, int native)
{
    const size_t f = native ? (n + 1) / 2 : n;
    return (f + 15) / 16 * 16;
}

static void gemm_rounded(mt_backend *be, const struct mt_gemm_args *g)
{
    const size_t na = stored_span(g->batch, g->stride_a, g->ta == MT_TRANS_N ? g->m : g->k,
                                  g->ta == MT_TRANS_N ? g->k : g->m, g->lda);
    const size_t nb = stored_span(g->batch, g->stride_b, g->tb == MT_TRANS_N ? g->k : g->n,
                                  g->tb == MT_TRANS_N ? g->n : g->k, g->ldb);
    const size_t mn = (size_t)g->m * (size_t)g->n, nc = mn * (size_t)g->batch;
    /* C written whole and contiguous (beta = 0): the product goes there */
    const int direct = g->beta == 0.0f && g->ldc == g->n && (g->batch == 1 || g->stride_c == (int64_t)mn);
    const int native = mt_backend_supports(be, MT_OP_GEMM, be->gemm_math);
    const size_t fa = copy_floats(na, native), fb = copy_floats(nb, native);
    float *s = gemm_scratch(be, fa + fb + (direct ? 0 : nc));
    struct mt_gemm_args r = *g;
    r.a = g->k ? rounded_copy(be, s, g->a, na, native) : g->a;
    r.b = g->k ? rounded_copy(be, s + fa, g->b, nb, native) : g->b;
    if (native && g->k) r.a_type = r.b_type = be->gemm_math;
    if (!direct) {
        r.c = s + fa + fb, r.ldc = g->n, r.stride_c = (int64_t)mn;
        r.beta = 0.0f;
    }
    DISPATCH(be, "gemm", be->iface->gemm(be, &r));
    mt_round_half(be, mt_f32((float *)r.c, 1, (int64_t)nc), be->gemm_math);
    if (direct) return;
    /* C = beta C + the rounded product, row by row (one call when contiguous) */
    const int rows_at_once = g->ldc == g->n ? g->m : 1;
    for (int p = 0; p < g->batch; p++)
        for (int i = 0; i < g->m; i += rows_at_once) {
            mt_tensor c = mt_f32((float *)g->c + (size_t)p * (size_t)g->stride_c + (size_t)i * (size_t)g->ldc,
                                 rows_at_once, g->n);
            mt_tensor prod = mt_f32((float *)r.c + (size_t)p * mn + (size_t)i * (size_t)g->n, rows_at_once, g->n);
            if (g->beta == 0.0f) mt_copy(be, c.data, prod.data, (size_t)mt_numel(c) * sizeof(float));
            else {
                if (g->beta != 1.0f) mt_scale(be, c, g->beta);
                mt_add(be, c, c, prod);
            }
        }
}

void mt_gemm(mt_backend *be, const struct mt_gemm_args *g)
{
    MT_ASSERT(g->m >= 0 && g->n >= 0 && g->k >= 0 && g->batch >= 1);
    /* the stored matrices: A is (m,k) or (k,m) for TRANS_T; rows of length lda */
    MT_ASSERT(g->lda >= (g->ta == MT_TRANS_N ? g->k : g->m));
    MT_ASSERT(g->ldb >= (g->tb == MT_TRANS_N ? g->n : g->k));
    MT_ASSERT(g->ldc >= g->n);
    MT_ASSERT(g->a && g->b && g->c);
    need_type(be, MT_OP_GEMM, g->a_type);
    if (g->b_type != g->a_type) need_type(be, MT_OP_GEMM, g->b_type);
    if (g->c_type != g->a_type) need_type(be, MT_OP_GEMM, g->c_type);
    if (g->compute_type != MT_DTYPE_F32) need_type(be, MT_OP_GEMM, g->compute_type);
    if (g->m == 0 || g->n == 0) return;
    if (gemm_hook) gemm_hook(gemm_hook_user, g);
    if (be->gemm_math != MT_DTYPE_F32 && g->a_type == MT_DTYPE_F32) {
        gemm_rounded(be, g);
        return;
    }
    DISPATCH(be, "gemm", be->iface->gemm(be, g));
}

static struct mt_gemm_args gemm_of(mt_tensor a, mt_tensor b, mt_tensor c)
{
    struct mt_gemm_args g;
    memset(&g, 0, sizeof g);
    g.batch = 1;
    g.alpha = 1.0f;
    g.a = a.data, g.lda = (int)a.cols, g.a_type = a.dtype;
    g.b = b.data, g.ldb = (int)b.cols, g.b_type = b.dtype;
    g.c = c.data, g.ldc = (int)c.cols, g.c_type = c.dtype;
    g.compute_type = MT_DTYPE_F32;
    return g;
}

void mt_matmul_xwt(mt_backend *be, mt_tensor y, mt_tensor x, mt_tensor w, float beta)
{
    /* y (N,out) = x (N,in) . w (out,in)^T */
    MT_ASSERT(y.rows == x.rows && x.cols == w.cols && y.cols == w.rows);
    struct mt_gemm_args g = gemm_of(x, w, y);
    g.ta = MT_TRANS_N, g.tb = MT_TRANS_T;
    g.m = (int)x.rows, g.n = (int)w.rows, g.k = (int)x.cols, g.beta = beta;
    mt_gemm(be, &g);
}

void mt_matmul_dw(mt_backend *be, mt_tensor dw, mt_tensor dy, mt_tensor x, float beta)
{
    /* dw (out,in) = dy (N,out)^T . x (N,in) */
    MT_ASSERT(dy.rows == x.rows && dw.rows == dy.cols && dw.cols == x.cols);
    struct mt_gemm_args g = gemm_of(dy, x, dw);
    g.ta = MT_TRANS_T, g.tb = MT_TRANS_N;
    g.m = (int)dy.cols, g.n = (int)x.cols, g.k = (int)dy.rows, g.beta = beta;
    mt_gemm(be, &g);
}

void mt_matmul_dx(mt_backend *be, mt_tensor dx, mt_tensor dy, mt_tensor w, float beta)
{
    /* dx (N,in) = dy (N,out) . w (out,in) */
    MT_ASSERT(dx.rows == dy.rows && dy.cols == w.rows && dx.cols == w.cols);
    struct mt_gemm_args g = gemm_of(dy, w, dx);
    g.ta = MT_TRANS_N, g.tb = MT_TRANS_N;
    g.m = (int)dy.rows, g.n = (int)w.cols, g.k = (int)dy.cols, g.beta = beta;
    mt_gemm(be, &g);
}

/* ---- kernels ----------------------------------------------------------------- */

void mt_embed_fwd(mt_backend *be, mt_tensor out, mt_tensor ids, mt_tensor table,
                  int vocab_offset, int accumulate)
{
    IS_I32(ids);
    SAME_TYPE(out, table);
    MT_ASSERT(mt_numel(ids) == out.rows && out.cols == table.cols && vocab_offset >= 0);
    need_type(be, MT_OP_EMBED, out.dtype);
    if (out.rows)
        DISPATCH(be, "embed_fwd",
                 be->iface->embed_fwd(be, out, ids, table, vocab_offset, accumulate));
}

void mt_embed_bwd(mt_backend *be, mt_tensor dtable, mt_tensor dout, mt_tensor ids,
                  int vocab_offset)
{
    IS_I32(ids);
    SAME_TYPE(dout, dtable);
    MT_ASSERT(mt_numel(ids) == dout.rows && dout.cols == dtable.cols && vocab_offset >= 0);
    need_type(be, MT_OP_EMBED, dout.dtype);
    if (dout.rows)
        DISPATCH(be, "embed_bwd", be->iface->embed_bwd(be, dtable, dout, ids, vocab_offset));
}

/* the statistics vectors of a norm over x (N, C) */
static void norm_stats(mt_tensor x, mt_tensor stat) { IS_F32(stat); IS_VEC(stat, x.rows); }

void mt_layernorm_fwd(mt_backend *be, mt_tensor out, mt_tensor mean, mt_tensor rstd,
                      mt_tensor inp, mt_tensor w, mt_tensor b, double eps)
{
    SAME_SHAPE(out, inp);
    IS_VEC(w, inp.cols);
    IS_VEC(b, inp.cols);
    norm_stats(inp, mean);
    norm_stats(inp, rstd);
    MT_ASSERT(inp.rows > 0 && inp.cols > 0 && eps >= 0);
    need_type(be, MT_OP_LAYERNORM, inp.dtype);
    DISPATCH(be, "layernorm_fwd", be->iface->layernorm_fwd(be, out, mean, rstd, inp, w, b, eps));
}

void mt_layernorm_bwd(mt_backend *be, mt_tensor dinp, mt_tensor dw, mt_tensor db, mt_tensor dout,
                      mt_tensor inp, mt_tensor w, mt_tensor mean, mt_tensor rstd)
{
    SAME_SHAPE(dinp, inp);
    SAME_SHAPE(dout, inp);
    IS_VEC(w, inp.cols);
    IS_VEC(dw, inp.cols);
    IS_VEC(db, inp.cols);
    norm_stats(inp, mean);
    norm_stats(inp, rstd);
    need_type(be, MT_OP_LAYERNORM, inp.dtype);
    DISPATCH(be, "layernorm_bwd",
             be->iface->layernorm_bwd(be, dinp, dw, db, dout, inp, w, mean, rstd));
}

void mt_rmsnorm_fwd(mt_backend *be, mt_tensor out, mt_tensor rstd, mt_tensor inp, mt_tensor w,
                    double eps)
{
    SAME_SHAPE(out, inp);
    IS_VEC(w, inp.cols);
    norm_stats(inp, rstd);
    MT_ASSERT(inp.rows > 0 && inp.cols > 0 && eps >= 0);
    need_type(be, MT_OP_RMSNORM, inp.dtype);
    DISPATCH(be, "rmsnorm_fwd", be->iface->rmsnorm_fwd(be, out, rstd, inp, w, eps));
}

void mt_rmsnorm_bwd(mt_backend *be, mt_tensor dinp, mt_tensor dw, mt_tensor dout, mt_tensor inp,
                    mt_tensor w, mt_tensor rstd)
{
    SAME_SHAPE(dinp, inp);
    SAME_SHAPE(dout, inp);
    IS_VEC(w, inp.cols);
    IS_VEC(dw, inp.cols);
    norm_stats(inp, rstd);
    need_type(be, MT_OP_RMSNORM, inp.dtype);
    DISPATCH(be, "rmsnorm_bwd", be->iface->rmsnorm_bwd(be, dinp, dw, dout, inp, w, rstd));
}

void mt_bias_add(mt_backend *be, mt_tensor y, mt_tensor bias)
{
    IS_VEC(bias, y.cols);
    need_type(be, MT_OP_BIAS, y.dtype);
    if (mt_numel(y)) DISPATCH(be, "bias_add", be->iface->bias_add(be, y, bias));
}

void mt_bias_bwd(mt_backend *be, mt_tensor dbias, mt_tensor dy)
{
    IS_VEC(dbias, dy.cols);
    need_type(be, MT_OP_BIAS, dy.dtype);
    if (mt_numel(dy)) DISPATCH(be, "bias_bwd", be->iface->bias_bwd(be, dbias, dy));
}

void mt_act_fwd(mt_backend *be, mt_tensor out, mt_tensor inp, enum mt_act act)
{
    SAME_SHAPE(out, inp);
    need_type(be, MT_OP_ACT, inp.dtype);
    if (mt_numel(inp)) DISPATCH(be, "act_fwd", be->iface->act_fwd(be, out, inp, act));
}

void mt_act_bwd(mt_backend *be, mt_tensor dinp, mt_tensor inp, mt_tensor dout, enum mt_act act)
{
    SAME_SHAPE(dinp, inp);
    SAME_SHAPE(dout, inp);
    need_type(be, MT_OP_ACT, inp.dtype);
    if (mt_numel(inp)) DISPATCH(be, "act_bwd", be->iface->act_bwd(be, dinp, inp, dout, act));
}

void mt_swiglu_fwd(mt_backend *be, mt_tensor out, mt_tensor inp)
{
    MT_ASSERT(out.rows == inp.rows && inp.cols == 2 * out.cols);
    need_type(be, MT_OP_SWIGLU, inp.dtype);
    if (mt_numel(out)) DISPATCH(be, "swiglu_fwd", be->iface->swiglu_fwd(be, out, inp));
}

void mt_swiglu_bwd(mt_backend *be, mt_tensor dinp, mt_tensor inp, mt_tensor dout)
{
    SAME_SHAPE(dinp, inp);
    MT_ASSERT(dout.rows == inp.rows && inp.cols == 2 * dout.cols);
    need_type(be, MT_OP_SWIGLU, inp.dtype);
    if (mt_numel(dout)) DISPATCH(be, "swiglu_bwd", be->iface->swiglu_bwd(be, dinp, inp, dout));
}

void mt_add(mt_backend *be, mt_tensor out, mt_tensor a, mt_tensor b)
{
    SAME_SHAPE(out, a);
    SAME_SHAPE(out, b);
    need_type(be, MT_OP_ADD, out.dtype);
    if (mt_numel(out)) DISPATCH(be, "add", be->iface->add(be, out, a, b));
}

void mt_scale(mt_backend *be, mt_tensor x, float s)
{
    need_type(be, MT_OP_SCALE, x.dtype);
    if (mt_numel(x)) DISPATCH(be, "scale", be->iface->scale(be, x, s));
}

void mt_round_half(mt_backend *be, mt_tensor x, enum mt_dtype to)
{
    IS_F32(x);
    MT_ASSERT(to == MT_DTYPE_BF16 || to == MT_DTYPE_F16);
    if (mt_numel(x)) DISPATCH(be, "round_half", be->iface->round_half(be, x, to));
}

void mt_to_half(mt_backend *be, mt_tensor dst, mt_tensor src)
{
    IS_F32(src);
    MT_ASSERT(dst.dtype == MT_DTYPE_BF16 || dst.dtype == MT_DTYPE_F16);
    MT_ASSERT(mt_numel(dst) == mt_numel(src));
    if (mt_numel(src)) DISPATCH(be, "to_half", be->iface->to_half(be, dst, src));
}

static void dropout(mt_backend *be, mt_tensor x, const struct mt_dropout_args *d, const char *nm)
{
    MT_ASSERT(d->p >= 0.0f && d->p < 1.0f);
    if (d->p == 0.0f || !mt_numel(x)) return; /* the identity */
    MT_ASSERT(d->T >= 1 && x.rows % d->T == 0 && d->col0 >= 0);
    need_type(be, MT_OP_DROPOUT, x.dtype);
    DISPATCH(be, nm, be->iface->dropout(be, x, d));
}

void mt_dropout_fwd(mt_backend *be, mt_tensor x, const struct mt_dropout_args *d)
{
    dropout(be, x, d, "dropout_fwd");
}

void mt_dropout_bwd(mt_backend *be, mt_tensor dx, const struct mt_dropout_args *d)
{
    dropout(be, dx, d, "dropout_bwd");
}

static int qkv_width(const struct mt_attn_args *a)
{
    return a->groups * (a->heads / a->groups + 2) * a->head_dim;
}

static void check_attn(mt_tensor qkv, const struct mt_attn_args *a)
{
    MT_ASSERT(a->B > 0 && a->T > 0 && a->t0 >= 0 && a->t0 < a->T);
    MT_ASSERT(a->heads > 0 && a->groups > 0 && a->heads % a->groups == 0 && a->head_dim > 0);
    MT_ASSERT(qkv.rows == (int64_t)a->B * a->T && qkv.cols == qkv_width(a));
    MT_ASSERT(a->dropout.p >= 0.0f && a->dropout.p < 1.0f);
    MT_ASSERT((!a->doc_start && !a->positions) || a->t0 == 0);
}

static void rope(mt_backend *be, mt_tensor qkv, mt_tensor table, const struct mt_attn_args *a,
                 int inverse)
{
    check_attn(qkv, a);
    IS_F32(table);
    MT_ASSERT(table.rows >= a->T && table.cols % 2 == 0 && table.cols <= a->head_dim);
    need_type(be, MT_OP_ROPE, qkv.dtype);
    if (table.cols)
        DISPATCH(be, inverse ? "rope_bwd" : "rope_fwd", be->iface->rope(be, qkv, table, a, inverse));
}

void mt_rope_fwd(mt_backend *be, mt_tensor qkv, mt_tensor table, const struct mt_attn_args *a)
{
    rope(be, qkv, table, a, 0);
}

void mt_rope_bwd(mt_backend *be, mt_tensor dqkv, mt_tensor table, const struct mt_attn_args *a)
{
    rope(be, dqkv, table, a, 1);
}

void mt_attn_fwd(mt_backend *be, mt_tensor out, mt_tensor att, mt_tensor qkv,
                 const struct mt_attn_args *a)
{
    check_attn(qkv, a);
    const int64_t Tq = a->T - a->t0;
    MT_ASSERT(out.rows == a->B * Tq && out.cols == (int64_t)a->heads * a->head_dim);
    MT_ASSERT(att.rows == a->B * a->heads * Tq && att.cols == a->T);
    MT_ASSERT(a->causal || a->t0 == 0);
    need_type(be, MT_OP_ATTENTION, qkv.dtype);
    DISPATCH(be, "attn_fwd", be->iface->attn_fwd(be, out, att, qkv, a));
}

void mt_attn_bwd(mt_backend *be, mt_tensor dqkv, mt_tensor datt, mt_tensor dout, mt_tensor qkv,
                 mt_tensor att, const struct mt_attn_args *a)
{
    check_attn(qkv, a);
    MT_ASSERT(a->t0 == 0);
    SAME_SHAPE(dqkv, qkv);
    SAME_SHAPE(datt, att);
    MT_ASSERT(dout.rows == (int64_t)a->B * a->T && dout.cols == (int64_t)a->heads * a->head_dim);
    MT_ASSERT(att.rows == (int64_t)a->B * a->heads * a->T && att.cols == a->T);
    need_type(be, MT_OP_ATTENTION, qkv.dtype);
    DISPATCH(be, "attn_bwd", be->iface->attn_bwd(be, dqkv, datt, dout, qkv, att, a));
}

void mt_flash_attn_fwd(mt_backend *be, mt_tensor out, mt_tensor lse, mt_tensor qkv,
                       const struct mt_attn_args *a)
{
    check_attn(qkv, a);
    const int64_t Tq = a->T - a->t0;
    MT_ASSERT(out.rows == a->B * Tq && out.cols == (int64_t)a->heads * a->head_dim);
    IS_F32(lse);
    MT_ASSERT(mt_numel(lse) == a->B * a->heads * Tq);
    MT_ASSERT(a->causal || a->t0 == 0);
    need_type(be, MT_OP_ATTENTION, qkv.dtype);
    DISPATCH(be, "flash_attn_fwd", be->iface->flash_attn_fwd(be, out, lse, qkv, a));
}

void mt_flash_attn_bwd(mt_backend *be, mt_tensor dqkv, mt_tensor rowdot, mt_tensor dout,
                       mt_tensor qkv, mt_tensor out, mt_tensor lse, const struct mt_attn_args *a)
{
    check_attn(qkv, a);
    MT_ASSERT(a->t0 == 0);
    SAME_SHAPE(dqkv, qkv);
    SAME_SHAPE(dout, out);
    IS_F32(lse);
    IS_F32(rowdot);
    MT_ASSERT(out.rows == (int64_t)a->B * a->T && out.cols == (int64_t)a->heads * a->head_dim);
    MT_ASSERT(mt_numel(lse) == (int64_t)a->B * a->heads * a->T && mt_numel(rowdot) == mt_numel(lse));
    need_type(be, MT_OP_ATTENTION, qkv.dtype);
    DISPATCH(be, "flash_attn_bwd", be->iface->flash_attn_bwd(be, dqkv, rowdot, dout, qkv, out, lse, a));
}

/* logits (N, ld) with V_local <= ld used columns; the (1,N) f32 vectors */
static void check_xent(mt_backend *be, mt_tensor logits, int V_local, int vocab_offset)
{
    MT_ASSERT(logits.rows > 0 && V_local >= 0 && V_local <= logits.cols && vocab_offset >= 0);
    need_type(be, MT_OP_XENT, logits.dtype);
}

#define ROWVEC(v, logits) \
    do { \
        IS_F32(v); \
        IS_VEC(v, (logits).rows); \
    } while (0)

void mt_xent_max(mt_backend *be, mt_tensor rowmax, mt_tensor logits, int V_local)
{
    check_xent(be, logits, V_local, 0);
    ROWVEC(rowmax, logits);
    DISPATCH(be, "xent_max", be->iface->xent_max(be, rowmax, logits, V_local));
}

void mt_xent_sumexp(mt_backend *be, mt_tensor sumexp, mt_tensor tgt, mt_tensor logits,
                    mt_tensor rowmax, mt_tensor targets, int V_local, int vocab_offset)
{
    check_xent(be, logits, V_local, vocab_offset);
    ROWVEC(sumexp, logits);
    ROWVEC(tgt, logits);
    ROWVEC(rowmax, logits);
    IS_I32(targets);
    IS_VEC(targets, logits.rows);
    DISPATCH(be, "xent_sumexp",
             be->iface->xent_sumexp(be, sumexp, tgt, logits, rowmax, targets, V_local,
                                    vocab_offset));
}

void mt_xent_loss(mt_backend *be, mt_tensor losses, mt_tensor rowmax, mt_tensor sumexp,
                  mt_tensor tgt)
{
    MT_ASSERT(mt_numel(losses) > 0);
    IS_F32(losses);
    ROWVEC(rowmax, losses);
    ROWVEC(sumexp, losses);
    ROWVEC(tgt, losses);
    DISPATCH(be, "xent_loss", be->iface->xent_loss(be, losses, rowmax, sumexp, tgt));
}

void mt_xent_bwd(mt_backend *be, mt_tensor dlogits, mt_tensor dlosses, mt_tensor logits,
                 mt_tensor rowmax, mt_tensor sumexp, mt_tensor targets, int V_local,
                 int vocab_offset)
{
    check_xent(be, logits, V_local, vocab_offset);
    SAME_SHAPE(dlogits, logits);
    ROWVEC(dlosses, logits);
    ROWVEC(rowmax, logits);
    ROWVEC(sumexp, logits);
    IS_I32(targets);
    IS_VEC(targets, logits.rows);
    DISPATCH(be, "xent_bwd",
             be->iface->xent_bwd(be, dlogits, dlosses, logits, rowmax, sumexp, targets, V_local,
                                 vocab_offset));
}

void mt_adamw(mt_backend *be, mt_tensor param, mt_tensor grad, mt_tensor m, mt_tensor v,
              const struct mt_adamw_args *a, int zero_grad)
{
    MT_ASSERT(a->step >= 1);
    const int64_t n = mt_numel(param);
    need_type(be, MT_OP_ADAMW, param.dtype);
    IS_F32(param);
    IS_F32(grad);
    IS_F32(m);
    IS_F32(v);
    IS_VEC(grad, n);
    IS_VEC(m, n);
    IS_VEC(v, n);
    if (n) DISPATCH(be, "adamw", be->iface->adamw(be, param, grad, m, v, a, zero_grad));
}

void mt_sgd(mt_backend *be, mt_tensor param, mt_tensor grad, mt_tensor buf,
            const struct mt_sgd_args *a, int zero_grad)
{
    const int64_t n = mt_numel(param);
    need_type(be, MT_OP_ADAMW, param.dtype);
    IS_F32(param);
    IS_F32(grad);
    IS_VEC(grad, n);
    if (a->momentum != 0.0f) {
        IS_F32(buf);
        IS_VEC(buf, n);
    }
    if (n) DISPATCH(be, "sgd", be->iface->sgd(be, param, grad, buf, a, zero_grad));
}

void mt_sq_sums(mt_backend *be, mt_tensor rows, mt_tensor cols, mt_tensor x, float scale, float eps)
{
    need_type(be, MT_OP_ADAMW, x.dtype);
    IS_F32(x);
    IS_F32(rows);
    IS_F32(cols);
    IS_VEC(rows, x.rows);
    IS_VEC(cols, x.cols);
    if (mt_numel(x)) DISPATCH(be, "sq_sums", be->iface->sq_sums(be, rows, cols, x, scale, eps));
}

void mt_adafactor_precond(mt_backend *be, mt_tensor grad, mt_tensor R, mt_tensor C, mt_tensor V,
                          const struct mt_adafactor_args *a)
{
    need_type(be, MT_OP_ADAMW, grad.dtype);
    IS_F32(grad);
    if (mt_numel(V)) {
        IS_F32(V);
        IS_VEC(V, mt_numel(grad));
    } else {
        IS_F32(R);
        IS_F32(C);
        IS_VEC(R, grad.rows);
        IS_VEC(C, grad.cols);
    }
    if (mt_numel(grad))
        DISPATCH(be, "adafactor_precond", be->iface->adafactor_precond(be, grad, R, C, V, a));
}

void mt_adafactor_apply(mt_backend *be, mt_tensor param, mt_tensor upd, mt_tensor M,
                        const struct mt_adafactor_args *a, int zero_grad)
{
    const int64_t n = mt_numel(param);
    need_type(be, MT_OP_ADAMW, param.dtype);
    IS_F32(param);
    IS_F32(upd);
    IS_VEC(upd, n);
    if (a->beta1 != 0.0f) {
        IS_F32(M);
        IS_VEC(M, n);
    }
    if (n) DISPATCH(be, "adafactor_apply", be->iface->adafactor_apply(be, param, upd, M, a, zero_grad));
}

/* The backend's one device double, allocated on first use and kept (an
 * allocation per call would synchronise a GPU each time: cudaFree does). */
static double *scalar_of(mt_backend *be)
{
    if (!be->scalar) be->scalar = mt_alloc(be, sizeof(double));
    return be->scalar;
}

/* The reduction writes device memory; the result comes back to the host. */
static double reduce_to_host(mt_backend *be, mt_tensor x,
                             void (*fn)(mt_backend *, double *, mt_tensor))
{
    double *d = scalar_of(be), h = 0.0;
    need_type(be, MT_OP_REDUCE, x.dtype);
    fn(be, d, x);
    mt_download(be, &h, d, sizeof h);
    return h;
}

double mt_sum_squares(mt_backend *be, mt_tensor x)
{
    return mt_numel(x) ? reduce_to_host(be, x, be->iface->sum_squares) : 0.0;
}

double mt_sum(mt_backend *be, mt_tensor x)
{
    return mt_numel(x) ? reduce_to_host(be, x, be->iface->sum) : 0.0;
}

double mt_count_nonfinite(mt_backend *be, mt_tensor x)
{
    return mt_numel(x) ? reduce_to_host(be, x, be->iface->count_nonfinite) : 0.0;
}

/* ---- communicators ------------------------------------------------------- */

/* Bytes this process sent (its payload: a collective of n bytes counts n) and
 * seconds spent in collectives and point-to-point calls, for the log line. */
static double comm_seconds;
static uint64_t comm_bytes;

void mt_comm_stats(uint64_t *bytes, double *seconds)
{
    *bytes = comm_bytes;
    *seconds = comm_seconds;
}

/* every call timed for the log and watched (--distributed-timeout-minutes) */
#define TIMED_OP(op, nbytes, peer, comm, call) TIMED_MSG(op, nbytes, nbytes, peer, comm, call)
/* sent: the bytes this process sends; msg: the message's size, for the watchdog */
#define TIMED_MSG(op, sent, msg, peer, comm, call) \
    do { \
        double t0_ = mt_now(); \
        mt_watch_begin(op, (size_t)(msg), peer, be->iface->comm_size(comm)); \
        call; \
        mt_watch_end(); \
        comm_seconds += mt_now() - t0_; \
        comm_bytes += (uint64_t)(sent); \
    } while (0)

void mt_comm_set_timeout(mt_backend *be, double seconds)
{
    mt_comm *w = mt_comm_world(be);
    if (be->iface->comm_size(w) > 1) mt_watch_start(seconds, be->iface->comm_rank(w));
}

mt_comm *mt_comm_world(mt_backend *be) { return be->iface->comm_world(be); }

mt_comm *mt_comm_split(mt_backend *be, mt_comm *parent, int color, int key)
{
    return be->iface->comm_split(be, parent, color, key);
}

void mt_comm_free(mt_backend *be, mt_comm *c)
{
    if (c) be->iface->comm_free(be, c);
}

int mt_comm_rank(mt_backend *be, const mt_comm *c)
{
    (void)be;
    return be->iface->comm_rank(c);
}

int mt_comm_size(mt_backend *be, const mt_comm *c)
{
    (void)be;
    return be->iface->comm_size(c);
}

void mt_all_reduce(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t,
                   enum mt_redop op)
{
    if (count == 0 || be->iface->comm_size(c) == 1) return; /* Megatron _reduce: no-op */
    TIMED_OP("all_reduce", count * mt_dtype_size(t), -1, c, be->iface->all_reduce(be, c, buf, count, t, op));
}

void mt_all_gather(mt_backend *be, mt_comm *c, void *recv, const void *send,
                   size_t count_per_rank, enum mt_dtype t)
{
    if (count_per_rank == 0) return;
    TIMED_OP("all_gather", count_per_rank * mt_dtype_size(t), -1, c,
             be->iface->all_gather(be, c, recv, send, count_per_rank, t));
}

void mt_reduce_scatter(mt_backend *be, mt_comm *c, void *recv, const void *send,
                       size_t count_per_rank, enum mt_dtype t, enum mt_redop op)
{
    if (count_per_rank == 0) return;
    TIMED_OP("reduce_scatter", count_per_rank * mt_dtype_size(t) * (size_t)be->iface->comm_size(c), -1, c,
             be->iface->reduce_scatter(be, c, recv, send, count_per_rank, t, op));
}

void mt_broadcast(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t, int root)
{
    if (count == 0 || be->iface->comm_size(c) == 1) return;
    MT_ASSERT(root >= 0 && root < be->iface->comm_size(c));
    TIMED_OP("broadcast", count * mt_dtype_size(t), root, c, be->iface->broadcast(be, c, buf, count, t, root));
}

void mt_send(mt_backend *be, mt_comm *c, const void *buf, size_t count, enum mt_dtype t, int peer)
{
    MT_ASSERT(peer >= 0 && peer < be->iface->comm_size(c));
    TIMED_OP("send", count * mt_dtype_size(t), peer, c, be->iface->send(be, c, buf, count, t, peer));
}

void mt_recv(mt_backend *be, mt_comm *c, void *buf, size_t count, enum mt_dtype t, int peer)
{
    MT_ASSERT(peer >= 0 && peer < be->iface->comm_size(c));
    TIMED_MSG("recv", 0, count * mt_dtype_size(t), peer, c, be->iface->recv(be, c, buf, count, t, peer));
}

static void sendrecv_in_order(mt_backend *be, mt_comm *c, const void *sbuf, int dst, void *rbuf, int src,
                              size_t count, enum mt_dtype t, int send_first)
{
    if (send_first) be->iface->send(be, c, sbuf, count, t, dst);
    be->iface->recv(be, c, rbuf, count, t, src);
    if (!send_first) be->iface->send(be, c, sbuf, count, t, dst);
}

void mt_sendrecv(mt_backend *be, mt_comm *c, const void *sbuf, int dst, void *rbuf, int src,
                 size_t count, enum mt_dtype t)
{
    const int size = be->iface->comm_size(c), rank = be->iface->comm_rank(c);
    MT_ASSERT(dst >= 0 && dst < size && src >= 0 && src < size);
    if (be->iface->sendrecv) {
        TIMED_OP("sendrecv", count * mt_dtype_size(t), src, c,
                 be->iface->sendrecv(be, c, sbuf, dst, rbuf, src, count, t));
        return;
    }
    /* default: the lower rank sends first, which is deadlock-free for a pair
     * exchanging with each other (the pipeline's only use) */
    TIMED_OP("sendrecv", count * mt_dtype_size(t), src, c, sendrecv_in_order(be, c, sbuf, dst, rbuf, src, count, t, rank < dst));
}

double mt_all_reduce_scalar(mt_backend *be, mt_comm *c, double v, enum mt_redop op)
{
    if (be->iface->comm_size(c) == 1) return v;
    double *d = scalar_of(be);
    mt_upload(be, d, &v, sizeof v);
    mt_all_reduce(be, c, d, 1, MT_DTYPE_F64, op);
    mt_download(be, &v, d, sizeof v);
    return v;
}
