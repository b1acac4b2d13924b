/* linear.h: column- and row-parallel linear layers (Megatron-core
 * tensor_parallel/layers.py), y = x W^T + b with W stored (out, in).
 *
 *   column-parallel: W split by output rows. x is replicated over the
 *     tensor-parallel group; y_local = x W_local^T + b_local holds this
 *     rank's outputs (heads, MLP columns, vocabulary). Backward: dW_local
 *     += dy_local^T x, db_local += sum dy_local, dx = dy_local W_local, a
 *     partial sum that the copy mapping's backward all-reduces.
 *   row-parallel: W split by input columns. x_local holds this rank's
 *     inputs; y = reduce(x_local W_local^T) + b, the bias replicated and
 *     added once, after the all-reduce. Backward (reduce's is identity):
 *     dW_local += dy^T x_local, db += sum dy, dx_local = dy W_local.
 *
 * One all-reduce per sublayer in each direction (Megatron's layout):
 * attention is column (qkv) then row (proj), the MLP column (fc1) then row
 * (fc2). A bias with data == NULL is absent (--disable-bias-linear). */
#ifndef MT_PARALLEL_LINEAR_H
#define MT_PARALLEL_LINEAR_H
#include "parallel/mappings.h"

struct mt_linear {
    mt_tensor w, b;   /* this rank's shard: (out_local, in) or (out, in_local); b may be absent */
    mt_tensor dw, db; /* their gradients (accumulated) */
};

void mt_column_linear_fwd(const struct mt_tp *tp, const struct mt_linear *l, mt_tensor y,
                          mt_tensor x);
/* dx is overwritten (data == NULL: not wanted) */
void mt_column_linear_bwd(const struct mt_tp *tp, const struct mt_linear *l, mt_tensor dx,
                          mt_tensor dy, mt_tensor x);
void mt_row_linear_fwd(const struct mt_tp *tp, const struct mt_linear *l, mt_tensor y,
                       mt_tensor x);
/* dx is overwritten */
void mt_row_linear_bwd(const struct mt_tp *tp, const struct mt_linear *l, mt_tensor dx,
                       mt_tensor dy, mt_tensor x);

#endif /* MT_PARALLEL_LINEAR_H */
