/* test_comm.c: the collectives of the "cpu" backend, on any number of ranks.
 *
 *   mpiexec -n 4 tests/test_comm            (tests/test_comm.sh runs 1..4 ranks)
 *   MT_MPI_MAX_COUNT=999 mpiexec -n 3 ...   same, every large message chunked
 *
 * Inputs are functions of the rank (in the communicator under test) and the
 * element index, so each result is known in closed form: the sum of ranks is
 * size*(size-1)/2, a gathered block r holds rank r's values, and so on.
 * Every rank checks its own results; each TAP line is the MAX over all ranks
 * of the failure flags (reduced through the backend's own all_reduce), and
 * only world rank 0 prints it. Failures are described on stderr by the rank
 * that saw them ("[rank R] ...").
 *
 * Sizes 1, 7, 1000 and 100003 elements (the last not divisible by any rank
 * count used); dtypes f32, f64, i32 (bf16 only where it is moved, not
 * reduced); in-place variants; then the same on the groups of every grid
 * layout (tp, pp) that the world size allows, after checking the groups'
 * membership against the formula rank = tp_rank + tp * (dp_rank + dp * pp_rank).
 *
 * Fault mode, for tests/test_fault.sh:
 *   test_comm --die-rank R --die-after-s S --die-how exit|user-error|die|crash
 * Rank R sleeps S seconds and then exits with status 3 (exit), calls
 * mt_user_error or mt_die, or kills itself with SIGKILL (crash); all other
 * ranks wait in an all_reduce that can never complete. The job must still end. */
#include "backend/backend.h"
#include "core/error.h"
#include "parallel/grid.h"
#include "parallel/mappings.h"
#include "tap.h"
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static mt_backend *be;
static mt_comm *world;
static int wrank, wsize;

static const size_t sizes[] = {1, 7, 1000, 100003};
enum { NSIZES = sizeof sizes / sizeof sizes[0] };
static const enum mt_dtype types[] = {MT_DTYPE_F32, MT_DTYPE_F64, MT_DTYPE_I32};
static const char *tname(enum mt_dtype t)
{
    return t == MT_DTYPE_F32 ? "f32" : t == MT_DTYPE_F64 ? "f64" : t == MT_DTYPE_I32 ? "i32" : "bf16";
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- reporting ------------------------------------------------------------ */

static int bad; /* failures seen by this rank in the current check */

TAP_PRINTF(1, 2) static void note(const char *fmt, ...)
{
    if (bad++ > 3) return; /* the first few are enough */
    va_list ap;
    fprintf(stderr, "# [rank %d] ", wrank);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* One TAP line: ok iff no rank saw a failure. Collective over the world. */
TAP_PRINTF(1, 2) static void report(const char *fmt, ...)
{
    int32_t *d = mt_alloc(be, sizeof *d);
    int32_t flag = bad != 0;
    mt_upload(be, d, &flag, sizeof flag);
    mt_all_reduce(be, world, d, 1, MT_DTYPE_I32, MT_REDOP_MAX);
    mt_download(be, &flag, d, sizeof flag);
    mt_dealloc(be, d);
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (wrank == 0) tap_ok(!flag, "%s", name);
    else if (flag) tap_failed++;
    bad = 0;
}

/* ---- typed host buffers ----------------------------------------------------- */

static void *halloc(size_t n, enum mt_dtype t)
{
    void *p = calloc(n ? n : 1, mt_dtype_size(t));
    if (!p) mt_die("test_comm: out of memory");
    return p;
}

static void hset(void *p, enum mt_dtype t, size_t i, double v)
{
    switch (t) {
    case MT_DTYPE_F32: ((float *)p)[i] = (float)v; break;
    case MT_DTYPE_F64: ((double *)p)[i] = v; break;
    case MT_DTYPE_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case MT_DTYPE_BF16:
    case MT_DTYPE_F16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    }
}

static double hget(const void *p, enum mt_dtype t, size_t i)
{
    switch (t) {
    case MT_DTYPE_F32: return ((const float *)p)[i];
    case MT_DTYPE_F64: return ((const double *)p)[i];
    case MT_DTYPE_I32: return ((const int32_t *)p)[i];
    case MT_DTYPE_BF16:
    case MT_DTYPE_F16: return ((const uint16_t *)p)[i];
    }
    return 0;
}

/* The value of element i on rank r: small integers, exact in every dtype
 * (bf16 is moved as raw 16-bit patterns, so any integer below 65536 works). */
static double val(int r, size_t i) { return (double)((r * 7919 + (long)i * 31) % 1000) - 300; }

/* device buffer holding host data */
static void *dev_from(const void *h, size_t n, enum mt_dtype t)
{
    void *d = mt_alloc(be, n * mt_dtype_size(t));
    mt_upload(be, d, h, n * mt_dtype_size(t));
    return d;
}

static void *dev_to_host(const void *d, size_t n, enum mt_dtype t)
{
    void *h = halloc(n, t);
    mt_download(be, h, d, n * mt_dtype_size(t));
    return h;
}

/* compare n elements of got against want(i), exactly */
static void expect(const char *what, const void *got, enum mt_dtype t, size_t n,
                   double (*want)(size_t i, const void *ctx), const void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        double w = want(i, ctx), g = hget(got, t, i);
        if (g != w) {
            note("%s: element %zu of %zu is %.9g, expected %.9g", what, i, n, g, w);
            return;
        }
    }
}

/* ---- expected values ------------------------------------------------------------ */

struct red_ctx {
    int size;
    enum mt_redop op;
    enum mt_dtype t;
    size_t offset; /* element offset into the rank's input (reduce_scatter block) */
};

/* the reduction over ranks 0..size-1 of val(r, offset + i), rounded to t the
 * way the layer does it: exact integer SUM, then one division for AVG */
static double want_red(size_t i, const void *c)
{
    const struct red_ctx *x = c;
    double s = 0, m = -1e300;
    for (int r = 0; r < x->size; r++) {
        double v = val(r, x->offset + i);
        s += v;
        if (v > m) m = v;
    }
    if (x->op == MT_REDOP_MAX) return m;
    if (x->op == MT_REDOP_SUM) return s;
    if (x->t == MT_DTYPE_F32) return (double)((float)s / (float)x->size);
    return s / (double)x->size;
}

struct gather_ctx {
    size_t count;
};
static double want_gather(size_t i, const void *c)
{
    const struct gather_ctx *x = c;
    return val((int)(i / x->count), i % x->count);
}

struct rank_ctx {
    int r;
};
static double want_rankval(size_t i, const void *c)
{
    return val(((const struct rank_ctx *)c)->r, i);
}

/* ---- the checks, on one communicator ------------------------------------------- */

static const char *redop_name(enum mt_redop op)
{
    return op == MT_REDOP_SUM ? "SUM" : op == MT_REDOP_AVG ? "AVG" : "MAX";
}

static void check_sum_of_ranks(mt_comm *c, const char *cname)
{
    const int cr = mt_comm_rank(be, c), cs = mt_comm_size(be, c);
    for (size_t k = 0; k < NSIZES; k++) {
        const size_t n = sizes[k];
        float *h = halloc(n, MT_DTYPE_F32);
        for (size_t i = 0; i < n; i++) h[i] = (float)cr;
        float *d = dev_from(h, n, MT_DTYPE_F32);
        mt_all_reduce(be, c, d, n, MT_DTYPE_F32, MT_REDOP_SUM);
        mt_download(be, h, d, n * sizeof *h);
        for (size_t i = 0; i < n; i++)
            if (h[i] != (float)(cs * (cs - 1) / 2)) {
                note("sum of ranks on %s, %zu elements: element %zu is %g, expected %d", cname, n,
                     i, h[i], cs * (cs - 1) / 2);
                break;
            }
        mt_dealloc(be, d);
        free(h);
    }
    report("%s: all_reduce SUM of the ranks = size*(size-1)/2", cname);
}

static void check_all_reduce(mt_comm *c, const char *cname, enum mt_dtype t, enum mt_redop op)
{
    const int cr = mt_comm_rank(be, c), cs = mt_comm_size(be, c);
    for (size_t k = 0; k < NSIZES; k++) {
        const size_t n = sizes[k];
        void *h = halloc(n, t);
        for (size_t i = 0; i < n; i++) hset(h, t, i, val(cr, i));
        void *d = dev_from(h, n, t);
        mt_all_reduce(be, c, d, n, t, op);
        void *g = dev_to_host(d, n, t);
        struct red_ctx x = {cs, op, t, 0};
        char what[64];
        snprintf(what, sizeof what, "%zu elements", n);
        expect(what, g, t, n, want_red, &x);
        mt_dealloc(be, d);
        free(h), free(g);
    }
    report("%s: all_reduce %s %s", cname, redop_name(op), tname(t));
}

static void check_all_gather(mt_comm *c, const char *cname, enum mt_dtype t, int in_place)
{
    const int cr = mt_comm_rank(be, c), cs = mt_comm_size(be, c);
    const size_t es = mt_dtype_size(t);
    for (size_t k = 0; k < NSIZES; k++) {
        const size_t n = sizes[k];
        void *hs = halloc(n, t);
        for (size_t i = 0; i < n; i++) hset(hs, t, i, val(cr, i) + (t == MT_DTYPE_BF16 ? 300 : 0));
        char *recv = mt_alloc(be, n * (size_t)cs * es);
        mt_memset0(be, recv, n * (size_t)cs * es);
        void *send;
        if (in_place) {
            send = recv + (size_t)cr * n * es;
            mt_upload(be, send, hs, n * es);
        } else {
            send = dev_from(hs, n, t);
        }
        mt_all_gather(be, c, recv, send, n, t);
        void *g = dev_to_host(recv, n * (size_t)cs, t);
        struct gather_ctx x = {n};
        char what[64];
        snprintf(what, sizeof what, "%zu elements per rank", n);
        if (t == MT_DTYPE_BF16) {
            for (size_t i = 0; i < n * (size_t)cs; i++)
                if (hget(g, t, i) != val((int)(i / n), i % n) + 300) {
                    note("%s: element %zu is %g, expected %g", what, i, hget(g, t, i),
                         val((int)(i / n), i % n) + 300);
                    break;
                }
        } else {
            expect(what, g, t, n * (size_t)cs, want_gather, &x);
        }
        if (!in_place) mt_dealloc(be, send);
        mt_dealloc(be, recv);
        free(hs), free(g);
    }
    report("%s: all_gather %s%s", cname, tname(t), in_place ? " in place" : "");
}

static void check_reduce_scatter(mt_comm *c, const char *cname, enum mt_dtype t, enum mt_redop op,
                                 int in_place)
{
    const int cr = mt_comm_rank(be, c), cs = mt_comm_size(be, c);
    const size_t es = mt_dtype_size(t);
    for (size_t k = 0; k < NSIZES; k++) {
        const size_t n = sizes[k], total = n * (size_t)cs;
        /* rank cr's input: element j of the whole buffer is val(cr, j) */
        void *hs = halloc(total, t);
        for (size_t j = 0; j < total; j++) hset(hs, t, j, val(cr, j));
        char *send = dev_from(hs, total, t);
        void *recv = in_place ? send + (size_t)cr * n * es : mt_alloc(be, n * es);
        mt_reduce_scatter(be, c, recv, send, n, t, op);
        void *g = dev_to_host(recv, n, t);
        struct red_ctx x = {cs, op, t, (size_t)cr * n};
        char what[64];
        snprintf(what, sizeof what, "%zu elements per rank", n);
        expect(what, g, t, n, want_red, &x);
        if (in_place) { /* the other blocks are left as they were */
            void *all = dev_to_host(send, total, t);
            for (size_t j = 0; j < total; j++) {
                if (j / n == (size_t)cr) continue;
                if (hget(all, t, j) != val(cr, j)) {
                    note("%s in place: element %zu outside this rank's block changed", what, j);
                    break;
                }
            }
            free(all);
        } else {
            mt_dealloc(be, recv);
        }
        mt_dealloc(be, send);
        free(hs), free(g);
    }
    report("%s: reduce_scatter %s %s%s", cname, redop_name(op), tname(t),
           in_place ? " in place" : "");
}

static void check_broadcast(mt_comm *c, const char *cname, enum mt_dtype t)
{
    const int cr = mt_comm_rank(be, c), cs = mt_comm_size(be, c);
    for (int root = 0; root < cs; root++)
        for (size_t k = 0; k < NSIZES; k++) {
            const size_t n = sizes[k];
            void *h = halloc(n, t);
            for (size_t i = 0; i < n; i++)
                hset(h, t, i, cr == root ? val(root, i) + 300 : 7); /* +300: bf16 patterns >= 0 */
            void *d = dev_from(h, n, t);
            mt_broadcast(be, c, d, n, t, root);
            void *g = dev_to_host(d, n, t);
            for (size_t i = 0; i < n; i++)
                if (hget(g, t, i) != val(root, i) + 300) {
                    note("broadcast from %d, %zu elements: element %zu is %g", root, n, i,
                         hget(g, t, i));
                    break;
                }
            mt_dealloc(be, d);
            free(h), free(g);
        }
    report("%s: broadcast %s from every root", cname, tname(t));
}

/* Ring with plain send/recv: rank 0 sends first, the others receive first,
 * so blocking sends cannot deadlock. Needs 2 ranks at least. */
static void check_send_recv_ring(mt_comm *c, const char *cname, enum mt_dtype t)
{
    const int cr = mt_comm_rank(be, c), cs = mt_comm_size(be, c);
    if (cs > 1)
        for (size_t k = 0; k < NSIZES; k++) {
            const size_t n = sizes[k];
            const int next = (cr + 1) % cs, prev = (cr + cs - 1) % cs;
            void *h = halloc(n, t);
            for (size_t i = 0; i < n; i++) hset(h, t, i, val(cr, i));
            void *s = dev_from(h, n, t), *r = mt_alloc(be, n * mt_dtype_size(t));
            if (cr == 0) {
                mt_send(be, c, s, n, t, next);
                mt_recv(be, c, r, n, t, prev);
            } else {
                mt_recv(be, c, r, n, t, prev);
                mt_send(be, c, s, n, t, next);
            }
            void *g = dev_to_host(r, n, t);
            struct rank_ctx x = {prev};
            char what[64];
            snprintf(what, sizeof what, "recv of %zu elements from %d", n, prev);
            expect(what, g, t, n, want_rankval, &x);
            mt_dealloc(be, s), mt_dealloc(be, r);
            free(h), free(g);
        }
    report("%s: send/recv ring %s%s", cname, tname(t), cs > 1 ? "" : " (one rank: nothing to do)");
}

/* sendrecv: pairs (0,1), (2,3), ... exchange (an odd rank out exchanges with
 * itself), then a ring where every rank sends right and receives from the
 * left at once, which plain blocking sends could not do. */
static void check_sendrecv(mt_comm *c, const char *cname, enum mt_dtype t, int ring, int same_buf)
{
    const int cr = mt_comm_rank(be, c), cs = mt_comm_size(be, c);
    for (size_t k = 0; k < NSIZES; k++) {
        const size_t n = sizes[k];
        int dst, src;
        if (ring) {
            dst = (cr + 1) % cs, src = (cr + cs - 1) % cs;
        } else {
            dst = src = (cr ^ 1) < cs ? (cr ^ 1) : cr;
        }
        void *h = halloc(n, t);
        for (size_t i = 0; i < n; i++) hset(h, t, i, val(cr, i) + 300);
        void *s = dev_from(h, n, t);
        void *r = same_buf ? s : mt_alloc(be, n * mt_dtype_size(t));
        mt_sendrecv(be, c, s, dst, r, src, n, t);
        void *g = dev_to_host(r, n, t);
        for (size_t i = 0; i < n; i++)
            if (hget(g, t, i) != val(src, i) + 300) {
                note("sendrecv of %zu elements from %d: element %zu is %g", n, src, i,
                     hget(g, t, i));
                break;
            }
        if (!same_buf) mt_dealloc(be, r);
        mt_dealloc(be, s);
        free(h), free(g);
    }
    report("%s: sendrecv %s %s%s", cname, ring ? "ring" : "pairs", tname(t),
           same_buf ? " (same send and receive buffer)" : "");
}

static void check_all(mt_comm *c, const char *cname)
{
    check_sum_of_ranks(c, cname);
    for (int ti = 0; ti < 3; ti++) {
        const enum mt_dtype t = types[ti];
        check_all_reduce(c, cname, t, MT_REDOP_SUM);
        if (t != MT_DTYPE_I32) check_all_reduce(c, cname, t, MT_REDOP_AVG);
        check_all_reduce(c, cname, t, MT_REDOP_MAX);
        check_all_gather(c, cname, t, 0);
        check_all_gather(c, cname, t, 1);
        check_reduce_scatter(c, cname, t, MT_REDOP_SUM, 0);
        if (t != MT_DTYPE_I32) check_reduce_scatter(c, cname, t, MT_REDOP_AVG, 0);
        check_reduce_scatter(c, cname, t, MT_REDOP_MAX, 0);
        check_reduce_scatter(c, cname, t, MT_REDOP_SUM, 1);
        check_broadcast(c, cname, t);
        check_send_recv_ring(c, cname, t);
        check_sendrecv(c, cname, t, 0, 0);
        check_sendrecv(c, cname, t, 1, 0);
    }
    check_sendrecv(c, cname, MT_DTYPE_F32, 1, 1);
    check_all_gather(c, cname, MT_DTYPE_BF16, 0);
    check_broadcast(c, cname, MT_DTYPE_BF16);
    check_sendrecv(c, cname, MT_DTYPE_BF16, 1, 0);
}

/* A smaller set on a group (the grid's groups), where what matters is that
 * the group has the right members and collectives stay inside it. */
static void check_group(mt_comm *c, const char *cname)
{
    check_sum_of_ranks(c, cname);
    check_all_reduce(c, cname, MT_DTYPE_F32, MT_REDOP_SUM);
    check_all_gather(c, cname, MT_DTYPE_F32, 1);
    check_reduce_scatter(c, cname, MT_DTYPE_F64, MT_REDOP_SUM, 0);
    check_broadcast(c, cname, MT_DTYPE_I32);
    check_sendrecv(c, cname, MT_DTYPE_F32, 1, 0);
}

/* Each member of a group gathers the world ranks of the group; they must be
 * the ranks the formula names, in group-rank order. */
static void check_members(const struct mt_groups *g, mt_comm *c, const char *cname, int tp,
                          int dp, int pp)
{
    if (c) {
        const int cs = mt_comm_size(be, c);
        int32_t *d = mt_alloc(be, sizeof(int32_t) * (size_t)cs);
        int32_t mine = wrank;
        int32_t *s = dev_from(&mine, 1, MT_DTYPE_I32);
        mt_all_gather(be, c, d, s, 1, MT_DTYPE_I32);
        int32_t *got = dev_to_host(d, (size_t)cs, MT_DTYPE_I32);
        for (int i = 0; i < cs; i++) {
            int want;
            const int t = g->tp_rank, dd = g->dp_rank, p = g->pp_rank;
            if (!strcmp(cname, "tp")) want = mt_grid_rank(tp, dp, i, dd, p);
            else if (!strcmp(cname, "dp")) want = mt_grid_rank(tp, dp, t, i, p);
            else if (!strcmp(cname, "pp")) want = mt_grid_rank(tp, dp, t, dd, i);
            else if (!strcmp(cname, "embd")) want = mt_grid_rank(tp, dp, t, dd, i == 0 ? 0 : pp - 1);
            else want = mt_grid_rank(tp, dp, i % tp, dd, i / tp); /* mp */
            if (got[i] != want) {
                note("%s group member %d is world rank %d, expected %d", cname, i, got[i], want);
                break;
            }
        }
        mt_dealloc(be, d), mt_dealloc(be, s);
        free(got);
    }
}

/* ---- the tensor-parallel mappings (parallel/mappings.h) over a group ---------- */

struct map_ctx {
    int size, rank, cols;
    size_t N;
};
/* element (n, j) of rank r's local (N, cols) tensor */
static double local_val(int r, size_t n, int j) { return val(r, n * 1000 + (size_t)j); }
static double want_sum_local(size_t i, const void *c)
{
    const struct map_ctx *m = c;
    double s = 0;
    for (int r = 0; r < m->size; r++) s += local_val(r, i / (size_t)m->cols, (int)(i % (size_t)m->cols));
    return s;
}
static double want_own_local(size_t i, const void *c)
{
    const struct map_ctx *m = c;
    return local_val(m->rank, i / (size_t)m->cols, (int)(i % (size_t)m->cols));
}
/* element (n, k) of the (N, size * cols) tensor made of the ranks' blocks */
static double want_side_by_side(size_t i, const void *c)
{
    const struct map_ctx *m = c;
    const size_t w = (size_t)m->size * (size_t)m->cols, n = i / w;
    const int k = (int)(i % w);
    return local_val(k / m->cols, n, k % m->cols);
}

static mt_tensor local_tensor(const struct map_ctx *m, int rank)
{
    float *h = halloc(m->N * (size_t)m->cols, MT_DTYPE_F32);
    for (size_t n = 0; n < m->N; n++)
        for (int j = 0; j < m->cols; j++) h[n * (size_t)m->cols + (size_t)j] = (float)local_val(rank, n, j);
    mt_tensor t = mt_f32(dev_from(h, m->N * (size_t)m->cols, MT_DTYPE_F32), (int64_t)m->N, m->cols);
    free(h);
    return t;
}

static mt_tensor whole_tensor(const struct map_ctx *m)
{
    const size_t n = m->N * (size_t)m->size * (size_t)m->cols;
    float *h = halloc(n, MT_DTYPE_F32);
    for (size_t i = 0; i < n; i++) h[i] = (float)want_side_by_side(i, m);
    mt_tensor t = mt_f32(dev_from(h, n, MT_DTYPE_F32), (int64_t)m->N, m->size * m->cols);
    free(h);
    return t;
}

static void expect_tensor(const char *what, mt_tensor t, double (*want)(size_t, const void *),
                          const struct map_ctx *m)
{
    float *h = dev_to_host(t.data, (size_t)mt_numel(t), MT_DTYPE_F32);
    expect(what, h, MT_DTYPE_F32, (size_t)mt_numel(t), want, m);
    free(h);
    mt_dealloc(be, t.data);
}

/* Each mapping's forward and backward against its definition: copy and
 * reduce (identity / all-reduce SUM), gather and scatter (side by side /
 * this rank's block), on local tensors of N x cols. */
static void check_mappings(mt_comm *c, const char *cname)
{
    const struct mt_tp tp = {be, c, mt_comm_size(be, c), mt_comm_rank(be, c)};
    const struct map_ctx m = {tp.size, tp.rank, 5, 3};
    mt_tensor x = local_tensor(&m, tp.rank);
    mt_tp_copy_fwd(&tp, x);
    expect_tensor("copy forward (identity)", x, want_own_local, &m);
    x = local_tensor(&m, tp.rank);
    mt_tp_copy_bwd(&tp, x);
    expect_tensor("copy backward (all-reduce)", x, want_sum_local, &m);
    x = local_tensor(&m, tp.rank);
    mt_tp_reduce_fwd(&tp, x);
    expect_tensor("reduce forward (all-reduce)", x, want_sum_local, &m);
    x = local_tensor(&m, tp.rank);
    mt_tp_reduce_bwd(&tp, x);
    expect_tensor("reduce backward (identity)", x, want_own_local, &m);

    x = local_tensor(&m, tp.rank);
    mt_tensor whole = mt_f32(mt_alloc(be, m.N * (size_t)tp.size * (size_t)m.cols * 4), (int64_t)m.N,
                             tp.size * m.cols);
    mt_tp_gather_fwd(&tp, whole, x);
    mt_dealloc(be, x.data);
    expect_tensor("gather forward (side by side)", whole, want_side_by_side, &m);
    whole = whole_tensor(&m);
    x = mt_f32(mt_alloc(be, m.N * (size_t)m.cols * 4), (int64_t)m.N, m.cols);
    mt_tp_gather_bwd(&tp, x, whole);
    mt_dealloc(be, whole.data);
    expect_tensor("gather backward (own block)", x, want_own_local, &m);

    whole = whole_tensor(&m);
    x = mt_f32(mt_alloc(be, m.N * (size_t)m.cols * 4), (int64_t)m.N, m.cols);
    mt_tp_scatter_fwd(&tp, x, whole);
    mt_dealloc(be, whole.data);
    expect_tensor("scatter forward (own block)", x, want_own_local, &m);
    x = local_tensor(&m, tp.rank);
    whole = mt_f32(mt_alloc(be, m.N * (size_t)tp.size * (size_t)m.cols * 4), (int64_t)m.N, tp.size * m.cols);
    mt_tp_scatter_bwd(&tp, whole, x);
    mt_dealloc(be, x.data);
    expect_tensor("scatter backward (side by side)", whole, want_side_by_side, &m);
    report("%s: tensor-parallel mappings copy, reduce, gather, scatter (forward and backward)", cname);
}

static void check_grid(int tp, int pp)
{
    struct mt_groups g;
    char err[256];
    if (mt_groups_init(&g, be, tp, pp, err, sizeof err) != 0) {
        note("mt_groups_init: %s", err);
        report("grid tp %d pp %d: groups built", tp, pp);
        return;
    }
    const int dp = wsize / (tp * pp);
    int t, d, p;
    mt_grid_coords(wrank, tp, dp, &t, &d, &p);
    if (g.tp_rank != t || g.dp_rank != d || g.pp_rank != p || g.dp_size != dp ||
        mt_comm_rank(be, g.tp) != t || mt_comm_rank(be, g.dp) != d || mt_comm_rank(be, g.pp) != p ||
        mt_comm_size(be, g.tp) != tp || mt_comm_size(be, g.dp) != dp ||
        mt_comm_size(be, g.pp) != pp || mt_comm_size(be, g.mp) != tp * pp)
        note("coordinates (%d,%d,%d) or group sizes wrong", g.tp_rank, g.dp_rank, g.pp_rank);
    const int edge = pp > 1 && (p == 0 || p == pp - 1);
    if ((g.embd != NULL) != edge) note("embedding group is %s", g.embd ? "set" : "NULL");
    check_members(&g, g.tp, "tp", tp, dp, pp);
    check_members(&g, g.dp, "dp", tp, dp, pp);
    check_members(&g, g.pp, "pp", tp, dp, pp);
    check_members(&g, g.mp, "mp", tp, dp, pp);
    check_members(&g, g.embd, "embd", tp, dp, pp);
    report("grid tp %d pp %d dp %d: coordinates and members of every group", tp, pp, dp);

    char name[64];
    mt_comm *groups[] = {g.tp, g.dp, g.pp, g.mp};
    const char *names[] = {"tp", "dp", "pp", "mp"};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "grid tp %d pp %d, %s group", tp, pp, names[i]);
        check_group(groups[i], name);
    }
    snprintf(name, sizeof name, "grid tp %d pp %d, tp group", tp, pp);
    check_mappings(g.tp, name);
    if (pp > 1) {
        /* only the first and last stage take part; the rest just report */
        snprintf(name, sizeof name, "grid tp %d pp %d, embd group", tp, pp);
        if (g.embd) {
            check_group(g.embd, name);
        } else {
            /* same number of report() calls as check_group */
            for (int i = 0; i < 6; i++) report("%s", name);
        }
    }
    mt_groups_free(&g, be);
}

/* ---- fault mode --------------------------------------------------------------- */

static int fault_mode(int die_rank, int after_s, const char *how)
{
    if (wrank == die_rank) {
        sleep((unsigned)after_s);
        if (!strcmp(how, "exit")) exit(3);
        if (!strcmp(how, "crash")) raise(SIGKILL); /* as if killed by the OOM killer */
        if (!strcmp(how, "user-error"))
            mt_user_error("this failure is deliberate (tests/test_fault.sh)",
                          "deliberate failure on rank %d after %d s", wrank, after_s);
        mt_die("deliberate fatal error on rank %d after %d s", wrank, after_s);
    }
    /* everyone else waits for a contribution that never comes */
    float *d = mt_alloc(be, sizeof(float));
    mt_memset0(be, d, sizeof(float));
    mt_all_reduce(be, world, d, 1, MT_DTYPE_F32, MT_REDOP_SUM);
    fprintf(stderr, "[rank %d] test_comm: the all_reduce returned without rank %d\n", wrank,
            die_rank);
    return 4;
}

int main(int argc, char **argv)
{
    int die_rank = -1, die_after = 1;
    const char *die_how = "exit";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--die-rank") && i + 1 < argc) die_rank = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--die-after-s") && i + 1 < argc) die_after = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--die-how") && i + 1 < argc) die_how = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--die-rank R --die-after-s S --die-how exit|user-error|die|crash]\n",
                    argv[0]);
            return 99;
        }
    }
    char err[256];
    be = mt_backend_init("cpu", err, sizeof err);
    if (!be) {
        fprintf(stderr, "%s\n", err);
        return 99;
    }
    world = mt_comm_world(be);
    wrank = mt_comm_rank(be, world);
    wsize = mt_comm_size(be, world);
    if (die_rank >= 0) return fault_mode(die_rank, die_after, die_how);

    if (wrank == 0) tap_diag("%d rank(s)", wsize);
    double t0 = now();
    check_all(world, "world");
    check_mappings(world, "world");
    if (wrank == 0) tap_diag("world checks: %.2f s", now() - t0);
    /* every layout among these that the world size allows */
    const int layouts[][2] = {{2, 1}, {1, 2}, {2, 2}, {1, 3}, {3, 1}, {1, 4}, {4, 1}};
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        const int tp = layouts[i][0], pp = layouts[i][1];
        if (wsize % (tp * pp) != 0) continue;
        t0 = now();
        check_grid(tp, pp);
        if (wrank == 0) tap_diag("grid tp %d pp %d checks: %.2f s", tp, pp, now() - t0);
    }
    int status = wrank == 0 ? tap_done() : (tap_failed != 0);
    mt_backend_free(be);
    return status;
}
