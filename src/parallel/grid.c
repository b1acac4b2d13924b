/* grid.c: see grid.h */
#include "parallel/grid.h"
#include "core/error.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int mt_groups_check(int world_size, int tp, int pp, char *err, size_t errlen)
{
    if (tp < 1 || pp < 1) {
        snprintf(err, errlen,
                 "tensor-model-parallel-size (%d) and pipeline-model-parallel-size (%d) must be "
                 "at least 1",
                 tp, pp);
        return -1;
    }
    if (world_size < 1 || world_size % (tp * pp) != 0) {
        snprintf(err, errlen,
                 "world size %d is not divisible by tensor-model-parallel-size %d x "
                 "pipeline-model-parallel-size %d",
                 world_size, tp, pp);
        return -1;
    }
    return 0;
}

void mt_grid_coords(int rank, int tp, int dp, int *tp_rank, int *dp_rank, int *pp_rank)
{
    *tp_rank = rank % tp;
    *dp_rank = (rank / tp) % dp;
    *pp_rank = rank / (tp * dp);
}

int mt_grid_rank(int tp, int dp, int tp_rank, int dp_rank, int pp_rank)
{
    return tp_rank + tp * (dp_rank + dp * pp_rank);
}

/* comm_split, then check that the split put this rank where the table says */
static mt_comm *split(mt_backend *be, mt_comm *world, int color, int key, int want_size)
{
    mt_comm *c = mt_comm_split(be, world, color, key);
    MT_ASSERT(mt_comm_rank(be, c) == key);
    MT_ASSERT(mt_comm_size(be, c) == want_size);
    return c;
}

int mt_groups_init(struct mt_groups *g, mt_backend *be, int tp, int pp, char *err,
                   size_t errlen)
{
    memset(g, 0, sizeof *g);
    mt_comm *world = mt_comm_world(be);
    const int size = mt_comm_size(be, world), rank = mt_comm_rank(be, world);
    if (mt_groups_check(size, tp, pp, err, errlen) != 0) return -1;
    const int dp = size / (tp * pp);

    g->world = world;
    g->world_rank = rank;
    g->world_size = size;
    g->tp_size = tp;
    g->dp_size = dp;
    g->pp_size = pp;
    mt_grid_coords(rank, tp, dp, &g->tp_rank, &g->dp_rank, &g->pp_rank);
    const int t = g->tp_rank, d = g->dp_rank, p = g->pp_rank;

    /* Every rank makes the same splits in the same order (they are collective). */
    g->tp = split(be, world, d + dp * p, t, tp);
    g->dp = split(be, world, t + tp * p, d, dp);
    g->pp = split(be, world, t + tp * d, p, pp);
    g->mp = split(be, world, d, t + tp * p, tp * pp);
    if (pp > 1) {
        /* First and last stage share the colour of their pipeline column;
         * middle stages get a colour of their own and drop their group. */
        const int edge = p == 0 || p == pp - 1;
        const int color = edge ? t + tp * d : tp * dp + rank;
        mt_comm *e = mt_comm_split(be, world, color, p);
        if (edge) {
            MT_ASSERT(mt_comm_size(be, e) == 2 && mt_comm_rank(be, e) == (p == 0 ? 0 : 1));
            g->embd = e;
        } else {
            mt_comm_free(be, e);
        }
    }
    return 0;
}

void mt_groups_free(struct mt_groups *g, mt_backend *be)
{
    if (!g) return;
    mt_comm_free(be, g->embd);
    mt_comm_free(be, g->mp);
    mt_comm_free(be, g->pp);
    mt_comm_free(be, g->dp);
    mt_comm_free(be, g->tp);
    memset(g, 0, sizeof *g);
}

/* ---- the table ------------------------------------------------------------ */

struct sbuf {
    char *buf;
    size_t n;
    int len; /* what the full text needs */
};

MT_PRINTF(2, 3) static void put(struct sbuf *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const size_t used = (size_t)s->len < s->n ? (size_t)s->len : s->n;
    int k = vsnprintf(s->buf ? s->buf + used : NULL, s->buf ? s->n - used : 0, fmt, ap);
    va_end(ap);
    if (k > 0) s->len += k;
}

/* One line: "<name> groups: [..] [..]". Group `grp` has members
 * member(grp, i) for i in [0, size); groups come in lowest-rank order. */
enum kind { K_TP, K_DP, K_PP, K_EMBD, K_MP };

static int member(enum kind k, int tp, int dp, int pp, int grp, int i)
{
    switch (k) {
    case K_TP: /* grp = dp_rank + dp * pp_rank */
        return mt_grid_rank(tp, dp, i, grp % dp, grp / dp);
    case K_DP: /* grp = tp_rank + tp * pp_rank */
        return mt_grid_rank(tp, dp, grp % tp, i, grp / tp);
    case K_PP: /* grp = tp_rank + tp * dp_rank */
        return mt_grid_rank(tp, dp, grp % tp, grp / tp, i);
    case K_EMBD:
        return mt_grid_rank(tp, dp, grp % tp, grp / tp, i == 0 ? 0 : pp - 1);
    case K_MP: /* grp = dp_rank; member i = tp_rank + tp * pp_rank */
        return mt_grid_rank(tp, dp, i % tp, grp, i / tp);
    }
    return -1;
}

static void put_groups(struct sbuf *s, const char *name, enum kind k, int tp, int dp, int pp,
                       int ngroups, int gsize)
{
    put(s, "%s groups:", name);
    for (int grp = 0; grp < ngroups; grp++) {
        put(s, " [");
        for (int i = 0; i < gsize; i++) put(s, "%s%d", i ? ", " : "", member(k, tp, dp, pp, grp, i));
        put(s, "]");
    }
    put(s, "\n");
}

int mt_groups_describe(const struct mt_groups *g, int world_size, int tp, int pp, char *buf,
                       size_t n)
{
    struct sbuf s = {n ? buf : NULL, n, 0};
    if (n) buf[0] = '\0';
    char err[200];
    if (mt_groups_check(world_size, tp, pp, err, sizeof err) != 0) {
        put(&s, "%s\n", err);
        return s.len;
    }
    const int dp = world_size / (tp * pp);
    put(&s,
        "world size %d = tensor-model-parallel %d x data-parallel %d x pipeline-model-parallel "
        "%d\n",
        world_size, tp, dp, pp);
    put(&s, "rank = tp_rank + %d * (dp_rank + %d * pp_rank)\n", tp, dp);
    put_groups(&s, "tensor-model-parallel", K_TP, tp, dp, pp, dp * pp, tp);
    put_groups(&s, "data-parallel", K_DP, tp, dp, pp, tp * pp, dp);
    put_groups(&s, "pipeline-model-parallel", K_PP, tp, dp, pp, tp * dp, pp);
    if (pp > 1)
        put_groups(&s, "embedding", K_EMBD, tp, dp, pp, tp * dp, 2);
    else
        put(&s, "embedding groups: none\n");
    put_groups(&s, "model-parallel", K_MP, tp, dp, pp, dp, tp * pp);
    if (g)
        put(&s, "this rank: %d = tp %d, dp %d, pp %d\n", g->world_rank, g->tp_rank, g->dp_rank,
            g->pp_rank);
    return s.len;
}
