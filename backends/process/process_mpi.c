/* process_mpi.c: the process layer over MPI.
 *
 * Linked instead of process_self.c when configure found an MPI C compiler
 * (the whole program is then built with mpicc). Run without mpiexec, the
 * program is a world of one through MPI's singleton initialisation.
 * The interface is described in process.h.
 *
 * Life cycle
 *   - The first call of mt_proc_world initialises MPI (MPI_Init_thread with
 *     MPI_THREAD_FUNNELED: OpenMP threads compute, only the main thread
 *     talks to MPI) unless someone already did, and then
 *       * sets MPI_ERRORS_RETURN, so that a failing call comes back to
 *         MPI_CHECK, which names the call, file, line and MPI's message;
 *       * installs the abort hook of core/error.h: in a world of more than
 *         one rank every mt_die / mt_user_error / MT_ASSERT ends in
 *         MPI_Abort(MPI_COMM_WORLD, status), so no peer is left waiting in
 *         a collective (a world of one just exits);
 *       * sets the error prefix "[rank R] " (world of more than one rank),
 *         so every error line names the rank it came from;
 *       * registers an exit handler that calls MPI_Finalize on a normal
 *         exit. A non-zero exit status in a multi-rank world (a bare
 *         exit(3) somewhere, or main returning failure) turns into
 *         MPI_Abort instead: MPI_Finalize would wait for peers that are
 *         themselves waiting for this rank, and the job would hang. The
 *         status is only known through glibc's on_exit(); elsewhere atexit()
 *         is used and such an exit relies on mpiexec noticing it. (A rank
 *         that exits with status 0 while its peers still wait for it in a
 *         collective is a program bug that no layer can repair: it waits in
 *         MPI_Finalize.)
 *   - The world communicator is MPI_COMM_WORLD itself, not a duplicate:
 *     creating a backend stays a local operation (a test may create a
 *     "cpu-ref" backend on one rank only); the wrapper is made once and
 *     lives until exit, and since the program is the only
 *     user of MPI and every call is blocking, sharing it is safe. Splits are
 *     collective over their parent, as in MPI.
 *
 * Types and operations
 *   f32 -> MPI_FLOAT, f64 -> MPI_DOUBLE, i32 -> MPI_INT32_T. bf16 and f16
 *   travel as 2-byte units (MPI_UINT16_T) in gathers, broadcasts and
 *   point-to-point; MPI has no arithmetic on them, so reducing them dies
 *   with a message.
 *   AVG is SUM followed by a division by the group size (f32, f64; an i32
 *   average would truncate, so it dies).
 *
 * Large messages
 *   MPI counts are int. Every call moves at most max_count elements
 *   (INT_MAX, or MT_MPI_MAX_COUNT from the environment: a testing knob that
 *   makes small messages take the chunked paths). All-reduce, broadcast and
 *   point-to-point loop over chunks; all-gather and reduce-scatter blocks
 *   above the limit are done one root at a time with broadcasts and reduces.
 *   In-place reduce-scatter reduces into a temporary of one block (one chunk
 *   on the chunked path) and copies it into place; nothing else allocates.
 *
 * Point-to-point messages use one tag; MPI keeps messages between a pair of
 * ranks in order, so a chunked send matches a chunked recv of the same count.
 * A recv whose sender sent a different count dies naming both counts. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "process/process.h"
#include "core/error.h"
#include <mpi.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mt_proc_comm {
    MPI_Comm comm;
    int rank, size;
    int is_world; /* MPI_COMM_WORLD itself: never freed */
};

enum { MT_MPI_TAG = 0x6d74 }; /* "mt": the one tag of point-to-point traffic */

static struct {
    int set_up;           /* hooks, prefix and limits installed */
    int initialised_here; /* this layer called MPI_Init_thread */
    int world_rank, world_size;
    size_t max_count;     /* elements per MPI call, <= INT_MAX */
} g;

/* ---- errors ------------------------------------------------------------- */

MT_NORETURN static void mpi_fail(const char *call, const char *file, int line, int rc)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error code %d", rc);
    mt_die("MPI call %s failed at %s:%d: %s", call, file, line, msg);
}

/* Every MPI call after initialisation goes through this. */
#define MPI_CHECK(call) \
    do { \
        int mt_mpi_rc_ = (call); \
        if (mt_mpi_rc_ != MPI_SUCCESS) mpi_fail(#call, __FILE__, __LINE__, mt_mpi_rc_); \
    } while (0)

static int mpi_live(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

/* MPI_Abort after a short pause: mpiexec (hydra's proxy) forwards each
 * rank's stderr through a pipe and may tear the job down before it has read
 * the error message just written; without the pause the message, the one
 * thing the user needs, is lost now and then on a loaded machine. */
static void abort_world(int status)
{
    fflush(stdout);
    fflush(stderr);
    const struct timespec pause = {0, 250 * 1000 * 1000};
    nanosleep(&pause, NULL);
    MPI_Abort(MPI_COMM_WORLD, status);
}

/* core/error.h abort hook: called by mt_exit and mt_assert_fail before they
 * exit. A world of one exits normally (the exit handler finalises). */
static void mpi_abort_hook(int status)
{
    if (status == 0 || g.world_size <= 1 || !mpi_live()) return;
    abort_world(status);
}

static void mpi_exit_common(int status)
{
    if (!mpi_live()) return;
    if (status != 0 && g.world_size > 1) {
        fprintf(stderr,
                "[rank %d] megatron-c: fatal: rank %d of %d is exiting with status %d; "
                "aborting the job so that the other ranks do not wait for it\n",
                g.world_rank, g.world_rank, g.world_size, status);
        abort_world(status);
    }
    MPI_Finalize();
}

#if defined(__GLIBC__)
static void mpi_on_exit(int status, void *arg)
{
    (void)arg;
    mpi_exit_common(status);
}
#else
static void mpi_atexit(void) { mpi_exit_common(0); }
#endif

/* ---- helpers -------------------------------------------------------------- */

static MPI_Datatype mpi_type(enum mt_dtype t)
{
    switch (t) {
    case MT_DTYPE_F32: return MPI_FLOAT;
    case MT_DTYPE_F64: return MPI_DOUBLE;
    case MT_DTYPE_I32: return MPI_INT32_T;
    case MT_DTYPE_BF16:
    case MT_DTYPE_F16: return MPI_UINT16_T; /* moved as 2-byte units, never reduced */
    }
    mt_die("process layer (mpi): unknown dtype %d", (int)t);
}

static const char *redop_name(enum mt_redop op)
{
    return op == MT_REDOP_SUM ? "SUM" : op == MT_REDOP_AVG ? "AVG" : "MAX";
}

/* The MPI operation for a reduction, or death when MPI cannot do it. */
static MPI_Op mpi_op(const char *what, enum mt_dtype t, enum mt_redop op)
{
    if (t == MT_DTYPE_BF16 || t == MT_DTYPE_F16)
        mt_die("%s(%s) on %s: MPI has no arithmetic on 16-bit floats, so the MPI layer cannot "
               "reduce them; reduce an f32 copy instead",
               what, redop_name(op), mt_dtype_name(t));
    if (t == MT_DTYPE_I32 && op == MT_REDOP_AVG)
        mt_die("%s(AVG) on i32: an integer average would truncate; reduce with SUM and divide",
               what);
    switch (op) {
    case MT_REDOP_SUM:
    case MT_REDOP_AVG: return MPI_SUM; /* AVG divides afterwards */
    case MT_REDOP_MAX: return MPI_MAX;
    }
    mt_die("%s: unknown reduction %d", what, (int)op);
}

/* AVG = SUM / size, element by element, in the buffer's type. */
static void divide_by(void *buf, size_t count, enum mt_dtype t, int size)
{
    if (t == MT_DTYPE_F32) {
        float *x = buf;
        const float d = (float)size;
        for (size_t i = 0; i < count; i++) x[i] /= d;
    } else if (t == MT_DTYPE_F64) {
        double *x = buf;
        const double d = (double)size;
        for (size_t i = 0; i < count; i++) x[i] /= d;
    } else {
        MT_ASSERT(!"AVG on a type that mpi_op lets through only for f32/f64");
    }
}

/* Elements in the next call: at most max_count. */
static int chunk(size_t remaining) { return (int)(remaining < g.max_count ? remaining : g.max_count); }

static char *at(void *p, size_t elems, enum mt_dtype t) { return (char *)p + elems * mt_dtype_size(t); }
static const char *cat(const void *p, size_t elems, enum mt_dtype t)
{
    return (const char *)p + elems * mt_dtype_size(t);
}

static mt_proc_comm *comm_wrap(MPI_Comm mc, int is_world)
{
    mt_proc_comm *c = malloc(sizeof *c);
    if (!c) mt_die("process layer (mpi): out of memory allocating a communicator");
    c->comm = mc;
    c->is_world = is_world;
    MPI_CHECK(MPI_Comm_rank(mc, &c->rank));
    MPI_CHECK(MPI_Comm_size(mc, &c->size));
    return c;
}

static size_t max_count_from_env(void)
{
    const char *s = getenv("MT_MPI_MAX_COUNT");
    if (!s || !*s) return (size_t)INT_MAX;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 1 || v > INT_MAX)
        mt_user_error("MT_MPI_MAX_COUNT (a testing knob) limits the elements per MPI call; unset it "
                      "for the default INT_MAX",
                      "MT_MPI_MAX_COUNT must be an integer in [1, %d], got '%s'", INT_MAX, s);
    return (size_t)v;
}

/* ---- communicators ---------------------------------------------------------- */

const char *mt_proc_kind(void) { return "mpi"; }

mt_proc_comm *mt_proc_world(void)
{
    static mt_proc_comm *world; /* lives until exit; the exit handler finalises MPI */
    if (world) return world;
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (fin) mt_die("process layer (mpi): the world was asked for after MPI_Finalize");
    if (!init) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) mt_die("MPI_Init_thread failed with error code %d", rc);
        g.initialised_here = 1;
        if (provided < MPI_THREAD_FUNNELED)
            mt_warn("MPI provides thread level %d, below MPI_THREAD_FUNNELED (%d); OpenMP threads "
                    "beside MPI may misbehave",
                    provided, MPI_THREAD_FUNNELED);
#if defined(__GLIBC__)
        if (on_exit(mpi_on_exit, NULL) != 0) mt_die("process layer (mpi): on_exit failed");
#else
        if (atexit(mpi_atexit) != 0) mt_die("process layer (mpi): atexit failed");
#endif
    }
    if (!g.set_up) {
        MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
        MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &g.world_rank));
        MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &g.world_size));
        g.max_count = max_count_from_env();
        if (g.world_size > 1) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "[rank %d] ", g.world_rank);
            mt_set_error_prefix(prefix);
        }
        mt_set_abort_hook(mpi_abort_hook);
        g.set_up = 1;
    }
    world = comm_wrap(MPI_COMM_WORLD, 1);
    return world;
}

mt_proc_comm *mt_proc_split(mt_proc_comm *parent, int color, int key)
{
    MT_ASSERT(parent != NULL && color >= 0);
    MPI_Comm nc;
    MPI_CHECK(MPI_Comm_split(parent->comm, color, key, &nc));
    MPI_CHECK(MPI_Comm_set_errhandler(nc, MPI_ERRORS_RETURN));
    return comm_wrap(nc, 0);
}

void mt_proc_free(mt_proc_comm *c)
{
    if (!c || c->is_world) return;
    /* after MPI_Finalize (a backend freed from a later exit handler) only
     * the wrapper is left to free */
    if (mpi_live()) MPI_CHECK(MPI_Comm_free(&c->comm));
    free(c);
}

int mt_proc_rank(const mt_proc_comm *c) { return c->rank; }
int mt_proc_size(const mt_proc_comm *c) { return c->size; }

/* ---- collectives ------------------------------------------------------------- */

void mt_proc_all_reduce(mt_proc_comm *c, void *buf, size_t count, enum mt_dtype t,
                            enum mt_redop op)
{
    const MPI_Op mop = mpi_op("all_reduce", t, op);
    const MPI_Datatype mt = mpi_type(t);
    for (size_t off = 0; off < count;) {
        const int n = chunk(count - off);
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, at(buf, off, t), n, mt, mop, c->comm));
        off += (size_t)n;
    }
    if (op == MT_REDOP_AVG) divide_by(buf, count, t, c->size);
}

void mt_proc_broadcast(mt_proc_comm *c, void *buf, size_t count, enum mt_dtype t, int root)
{
    const MPI_Datatype mt = mpi_type(t);
    for (size_t off = 0; off < count;) {
        const int n = chunk(count - off);
        MPI_CHECK(MPI_Bcast(at(buf, off, t), n, mt, root, c->comm));
        off += (size_t)n;
    }
}

void mt_proc_all_gather(mt_proc_comm *c, void *recv, const void *send, size_t count_per_rank,
                            enum mt_dtype t)
{
    const MPI_Datatype mt = mpi_type(t);
    const size_t cnt = count_per_rank;
    char *mine = at(recv, (size_t)c->rank * cnt, t);
    const int in_place = (const char *)send == mine;
    if (cnt <= g.max_count) {
        if (in_place)
            MPI_CHECK(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, recv, (int)cnt, mt,
                                    c->comm));
        else
            MPI_CHECK(MPI_Allgather(send, (int)cnt, mt, recv, (int)cnt, mt, c->comm));
        return;
    }
    /* Blocks above the per-call limit: put this rank's block in place, then
     * every rank broadcasts its block in chunks. */
    if (!in_place) memmove(mine, send, cnt * mt_dtype_size(t));
    for (int r = 0; r < c->size; r++) mt_proc_broadcast(c, at(recv, (size_t)r * cnt, t), cnt, t, r);
}

void mt_proc_reduce_scatter(mt_proc_comm *c, void *recv, const void *send,
                                size_t count_per_rank, enum mt_dtype t, enum mt_redop op)
{
    const MPI_Op mop = mpi_op("reduce_scatter", t, op);
    const MPI_Datatype mt = mpi_type(t);
    const size_t cnt = count_per_rank, es = mt_dtype_size(t);
    const int in_place = (const char *)recv == cat(send, (size_t)c->rank * cnt, t);
    /* In place, the result goes through a temporary: with MPI_IN_PLACE, MPI
     * would leave it in block 0 and may use the rest of the buffer as
     * scratch, but the contract is that only block `rank` changes. (The
     * chunked path cannot use MPI_IN_PLACE at the root of MPI_Reduce either:
     * MPICH 4.0.2 crashes on it when the root is not rank 0.) The temporary
     * holds one block, or one chunk of a block on the chunked path. */
    void *tmp = NULL;
    if (in_place) {
        const size_t tmp_elems = cnt <= g.max_count ? cnt : g.max_count;
        tmp = malloc(tmp_elems * es);
        if (!tmp) mt_die("reduce_scatter: out of memory for a %zu-byte temporary", tmp_elems * es);
    }
    if (cnt <= g.max_count) {
        MPI_CHECK(MPI_Reduce_scatter_block(send, in_place ? tmp : recv, (int)cnt, mt, mop,
                                           c->comm));
        if (in_place) memcpy(recv, tmp, cnt * es);
    } else {
        /* Blocks above the per-call limit: block r is reduced to rank r, chunk
         * by chunk. */
        for (int r = 0; r < c->size; r++) {
            for (size_t off = 0; off < cnt;) {
                const int n = chunk(cnt - off);
                const char *sb = cat(send, (size_t)r * cnt + off, t);
                if (r != c->rank) {
                    MPI_CHECK(MPI_Reduce(sb, NULL, n, mt, mop, r, c->comm));
                } else if (in_place) {
                    MPI_CHECK(MPI_Reduce(sb, tmp, n, mt, mop, r, c->comm));
                    memcpy(at(recv, off, t), tmp, (size_t)n * es);
                } else {
                    MPI_CHECK(MPI_Reduce(sb, at(recv, off, t), n, mt, mop, r, c->comm));
                }
                off += (size_t)n;
            }
        }
    }
    free(tmp);
    if (op == MT_REDOP_AVG) divide_by(recv, cnt, t, c->size);
}

/* ---- point to point ------------------------------------------------------- */

static void check_received(const MPI_Status *st, MPI_Datatype mt, int want, int peer,
                           const char *what)
{
    int got = 0;
    MPI_CHECK(MPI_Get_count(st, mt, &got));
    if (got != want)
        mt_die("%s from rank %d: expected %d elements in this message, the sender sent %d "
               "(the two sides disagree on the count)",
               what, peer, want, got);
}

void mt_proc_send(mt_proc_comm *c, const void *buf, size_t count, enum mt_dtype t, int peer)
{
    const MPI_Datatype mt = mpi_type(t);
    size_t off = 0;
    do { /* count 0 still sends one empty message, so that it matches a recv of 0 */
        const int n = chunk(count - off);
        MPI_CHECK(MPI_Send(cat(buf, off, t), n, mt, peer, MT_MPI_TAG, c->comm));
        off += (size_t)n;
    } while (off < count);
}

void mt_proc_recv(mt_proc_comm *c, void *buf, size_t count, enum mt_dtype t, int peer)
{
    const MPI_Datatype mt = mpi_type(t);
    size_t off = 0;
    do {
        const int n = chunk(count - off);
        MPI_Status st;
        MPI_CHECK(MPI_Recv(at(buf, off, t), n, mt, peer, MT_MPI_TAG, c->comm, &st));
        check_received(&st, mt, n, peer, "recv");
        off += (size_t)n;
    } while (off < count);
}

void mt_proc_sendrecv(mt_proc_comm *c, const void *sbuf, int dst, void *rbuf, int src,
                          size_t count, enum mt_dtype t)
{
    const MPI_Datatype mt = mpi_type(t);
    size_t off = 0;
    do {
        const int n = chunk(count - off);
        MPI_Status st;
        if ((const void *)rbuf == sbuf) {
            MPI_CHECK(MPI_Sendrecv_replace(at(rbuf, off, t), n, mt, dst, MT_MPI_TAG, src,
                                           MT_MPI_TAG, c->comm, &st));
        } else {
            MPI_CHECK(MPI_Sendrecv(cat(sbuf, off, t), n, mt, dst, MT_MPI_TAG, at(rbuf, off, t),
                                   n, mt, src, MT_MPI_TAG, c->comm, &st));
        }
        check_received(&st, mt, n, src, "sendrecv");
        off += (size_t)n;
    } while (off < count);
}
