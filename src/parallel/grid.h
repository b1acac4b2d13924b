/* grid.h: the rank grid and its process groups (Megatron's parallel_state,
 * minus context and expert parallelism).
 *
 * world_size = tp * dp * pp ranks are laid out with the tensor-parallel index
 * varying fastest, then data-parallel, then pipeline (Megatron's order
 * "tp-dp-pp"):
 *
 *     rank = tp_rank + tp * (dp_rank + dp * pp_rank)
 *
 * so a tensor-parallel group is a run of consecutive ranks (one node).
 * Every group is made with comm_split(world, colour, key) and its key is the
 * rank's coordinate in that group, so the rank inside a group equals the
 * coordinate: mt_comm_rank(be, g->tp) == g->tp_rank, and so on.
 *
 *   group  members                                  colour                 key (= rank in group)
 *   tp     same (dp_rank, pp_rank), tp_size ranks   dp_rank + dp*pp_rank   tp_rank
 *   dp     same (tp_rank, pp_rank), dp_size ranks   tp_rank + tp*pp_rank   dp_rank
 *   pp     same (tp_rank, dp_rank), pp_size ranks   tp_rank + tp*dp_rank   pp_rank
 *   embd   first and last stage of a pp group       as pp                  0 first, 1 last
 *   mp     same dp_rank: tp_size * pp_size ranks    dp_rank                tp_rank + tp*pp_rank
 *
 * doc/parallelism.md has the worked 8-rank example; mt_groups_describe()
 * prints the same table for any sizes. */
#ifndef MT_PARALLEL_GRID_H
#define MT_PARALLEL_GRID_H
#include "backend/backend.h"
#include <stddef.h>

struct mt_groups {
    mt_comm *world; /* the backend's world: not owned, never freed here */
    mt_comm *tp;    /* tensor-model-parallel group */
    mt_comm *dp;    /* data-parallel group */
    mt_comm *pp;    /* pipeline-model-parallel group; stage = pp_rank */
    /* first and last pipeline stage of this (tp, dp) column, for the tied
     * embedding gradient (rank 0 = first stage, 1 = last stage). NULL when
     * pp_size == 1 or this rank is a middle stage. */
    mt_comm *embd;
    /* model-parallel group: the tp_size * pp_size ranks holding one replica
     * of the model (same dp_rank); for the gradient norm of clipping */
    mt_comm *mp;
    int world_rank, world_size;
    int tp_rank, tp_size;
    int dp_rank, dp_size;
    int pp_rank, pp_size;
};

/* Checks the layout and builds every group (collective over the world: every
 * rank calls it with the same tp and pp). Returns 0, or -1 with a message in
 * err (nothing created) when tp or pp is below 1 or world_size is not
 * divisible by tp * pp, e.g. "world size 6 is not divisible by
 * tensor-model-parallel-size 4 x pipeline-model-parallel-size 1". */
int mt_groups_init(struct mt_groups *g, mt_backend *be, int tp, int pp, char *err,
                   size_t errlen);
/* Frees the groups made by mt_groups_init (not the world) and zeroes *g. */
void mt_groups_free(struct mt_groups *g, mt_backend *be);

/* The layout check alone: 0, or -1 with the message of mt_groups_init. */
int mt_groups_check(int world_size, int tp, int pp, char *err, size_t errlen);

/* Pure functions of the sizes (no communication): coordinates of a world rank
 * and back. */
void mt_grid_coords(int rank, int tp, int dp, int *tp_rank, int *dp_rank, int *pp_rank);
int mt_grid_rank(int tp, int dp, int tp_rank, int dp_rank, int pp_rank);

/* Writes the table of every group of a (world_size, tp, pp) layout into buf
 * (always NUL-terminated, truncated to n bytes), one line per kind:
 *
 *   world size 8 = tensor-model-parallel 2 x data-parallel 2 x pipeline-model-parallel 2
 *   rank = tp_rank + 2 * (dp_rank + 2 * pp_rank)
 *   tensor-model-parallel groups: [0, 1] [2, 3] [4, 5] [6, 7]
 *   data-parallel groups: [0, 2] [1, 3] [4, 6] [5, 7]
 *   pipeline-model-parallel groups: [0, 4] [1, 5] [2, 6] [3, 7]
 *   embedding groups: [0, 4] [1, 5] [2, 6] [3, 7]
 *   model-parallel groups: [0, 1, 4, 5] [2, 3, 6, 7]
 *
 * Groups are listed by their lowest rank, members in group-rank order
 * ("embedding groups: none" when pp == 1). When g is not NULL a last line
 * names this rank's coordinates: "this rank: 5 = tp 1, dp 0, pp 1".
 * An invalid layout writes the mt_groups_check message. Returns the length
 * the full text needs (like snprintf). */
int mt_groups_describe(const struct mt_groups *g, int world_size, int tp, int pp, char *buf,
                       size_t n);

#endif /* MT_PARALLEL_GRID_H */
