/* linear.c: see linear.h */
#include "parallel/linear.h"

void mt_column_linear_fwd(const struct mt_tp *tp, const struct mt_linear *l, mt_tensor y,
                          mt_tensor x)
{
    mt_tp_copy_fwd(tp, x);
    mt_matmul_xwt(tp->be, y, x, l->w, 0.0f);
    if (l->b.data) mt_bias_add(tp->be, y, l->b);
}

/* the weight and bias gradients of y = x W^T + b, then dx = dy W */
static void linear_bwd(mt_backend *be, const struct mt_linear *l, mt_tensor dx, mt_tensor dy,
                       mt_tensor x)
{
    mt_matmul_dw(be, l->dw, dy, x, 1.0f);
    if (l->b.data) mt_bias_bwd(be, l->db, dy);
    if (dx.data) mt_matmul_dx(be, dx, dy, l->w, 0.0f);
}

void mt_column_linear_bwd(const struct mt_tp *tp, const struct mt_linear *l, mt_tensor dx,
                          mt_tensor dy, mt_tensor x)
{
    linear_bwd(tp->be, l, dx, dy, x);
    if (dx.data) mt_tp_copy_bwd(tp, dx);
}

void mt_row_linear_fwd(const struct mt_tp *tp, const struct mt_linear *l, mt_tensor y,
                       mt_tensor x)
{
    mt_matmul_xwt(tp->be, y, x, l->w, 0.0f);
    mt_tp_reduce_fwd(tp, y);
    if (l->b.data) mt_bias_add(tp->be, y, l->b);
}

void mt_row_linear_bwd(const struct mt_tp *tp, const struct mt_linear *l, mt_tensor dx,
                       mt_tensor dy, mt_tensor x)
{
    mt_tp_reduce_bwd(tp, dy);
    linear_bwd(tp->be, l, dx, dy, x);
}
