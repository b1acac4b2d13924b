/* mappings.h: the tensor-parallel mappings (Megatron-core
 * tensor_parallel/mappings.py), written out because C has no autograd:
 * each mapping is a pair, the forward and the backward, and the layers
 * (parallel/linear.h, vocab_parallel.h) call the pair so that model code
 * names the layer and never the collective.
 *
 *   mapping        forward                         backward
 *   copy   ("f")   identity                        all-reduce SUM over tp
 *   reduce ("g")   all-reduce SUM over tp          identity
 *   gather         all-gather of the last dim      this rank's slice of it
 *   scatter        this rank's slice of the last   all-gather of the last dim
 *                  dim
 *
 * Each returns at once for a group of one, so the serial model calls them
 * unconditionally. Tensors are (N, cols) row-major; the last dimension is
 * split into tp equal blocks, block r on rank r. */
#ifndef MT_PARALLEL_MAPPINGS_H
#define MT_PARALLEL_MAPPINGS_H
#include "backend/backend.h"

/* A tensor-parallel group as the layers see it. */
struct mt_tp {
    mt_backend *be;
    mt_comm *comm;
    int size, rank;
};

void mt_tp_copy_fwd(const struct mt_tp *tp, mt_tensor x);
void mt_tp_copy_bwd(const struct mt_tp *tp, mt_tensor dx);
void mt_tp_reduce_fwd(const struct mt_tp *tp, mt_tensor x);
void mt_tp_reduce_bwd(const struct mt_tp *tp, mt_tensor dx);
/* out (N, size * cols) = the ranks' x (N, cols) side by side */
void mt_tp_gather_fwd(const struct mt_tp *tp, mt_tensor out, mt_tensor x);
/* dx (N, cols) = this rank's block of dout (N, size * cols) */
void mt_tp_gather_bwd(const struct mt_tp *tp, mt_tensor dx, mt_tensor dout);
/* out (N, cols / size) = this rank's block of x (N, cols) */
void mt_tp_scatter_fwd(const struct mt_tp *tp, mt_tensor out, mt_tensor x);
/* dx (N, cols) = the ranks' dout (N, cols / size) side by side */
void mt_tp_scatter_bwd(const struct mt_tp *tp, mt_tensor dx, mt_tensor dout);

#endif /* MT_PARALLEL_MAPPINGS_H */
