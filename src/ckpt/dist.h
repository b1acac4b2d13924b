/* dist.h: checkpoints of a model split over the rank grid.
 *
 * The file holds whole tensors (ckpt/checkpoint.h), so any layout can load
 * any checkpoint. Saving walks the whole model's table (model/layout.h) in
 * file order on every rank: the stage that owns a tensor gathers its
 * tensor-parallel shards, the stage's (tp 0, dp 0) rank assembles the
 * whole tensor and sends it to world rank 0, which writes. Loading: every
 * rank reads the (shared) file itself and keeps its shards. */
#ifndef MT_CKPT_DIST_H
#define MT_CKPT_DIST_H
#include "ckpt/checkpoint.h"
#include "model/config.h"
#include "parallel/grid.h"

/* One flat buffer stored under a name prefix, with the offsets of the
 * rank's table or of a view of it (model/params.h): the parameters
 * ("model/"), the optimizer's state ("optim/exp_avg/", Adafactor's
 * "optim/exp_avg_sq_row/" as the ROWS view, ...). */
struct mt_ckpt_buffer {
    const char *prefix;
    float *base;
    enum mt_param_view view; /* MT_VIEW_PARAMS (0): the parameters' layout */
};

/* Collective over the world: writes DIR/iter_N/... with meta and the
 * buffers' tensors (every rank calls it with the same arguments). */
void mt_ckpt_save_dist(const char *dir, long iteration, const struct mt_kv *meta,
                       const struct mt_transformer_config *cfg, const struct mt_param_table *local,
                       const struct mt_groups *g, mt_backend *be,
                       const struct mt_ckpt_buffer *bufs, int nbufs);

/* The path of the checkpoint to load from DIR: iteration `step`, or the
 * latest when step < 0. Returns 0 with the path; -1 when DIR holds no
 * tracker file (for training, a first run: start from scratch); -2 when DIR
 * does not exist. Exits with a message when the iteration's file is missing. */
int mt_ckpt_resolve(const char *dir, long step, char *path, size_t n);
/* The complete checkpoints (iter_N directories) in dir, and the newest N
 * (-1: none). */
int mt_ckpt_count(const char *dir, long *newest);

#endif /* MT_CKPT_DIST_H */
