/* mappings.c: see mappings.h */
#include "parallel/mappings.h"
#include "core/error.h"

static void all_reduce(const struct mt_tp *tp, mt_tensor x)
{
    mt_all_reduce(tp->be, tp->comm, x.data, (size_t)mt_numel(x), x.dtype, MT_REDOP_SUM);
}

void mt_tp_copy_fwd(const struct mt_tp *tp, mt_tensor x) { (void)tp, (void)x; }
void mt_tp_copy_bwd(const struct mt_tp *tp, mt_tensor dx) { all_reduce(tp, dx); }
void mt_tp_reduce_fwd(const struct mt_tp *tp, mt_tensor x) { all_reduce(tp, x); }
void mt_tp_reduce_bwd(const struct mt_tp *tp, mt_tensor dx) { (void)tp, (void)dx; }

/* column block k of wide (N, size * cols) <-> narrow (N, cols) */
static void copy_block(mt_backend *be, mt_tensor wide, mt_tensor narrow, int k, int to_wide)
{
    const size_t es = mt_dtype_size(narrow.dtype), row = (size_t)narrow.cols * es;
    char *w = (char *)wide.data + (size_t)k * row;
    if (to_wide) mt_copy_2d(be, w, (size_t)wide.cols * es, narrow.data, row, row, (size_t)narrow.rows);
    else mt_copy_2d(be, narrow.data, row, w, (size_t)wide.cols * es, row, (size_t)narrow.rows);
}

/* wide (N, size * cols) from every rank's narrow (N, cols): the all-gather
 * concatenates whole blocks, which are then put side by side */
static void gather_cols(const struct mt_tp *tp, mt_tensor wide, mt_tensor narrow)
{
    MT_ASSERT(wide.rows == narrow.rows && wide.cols == narrow.cols * tp->size);
    if (tp->size == 1) {
        mt_copy(tp->be, wide.data, narrow.data, (size_t)mt_numel(narrow) * mt_dtype_size(narrow.dtype));
        return;
    }
    mt_tensor blocks = mt_tensor_alloc(tp->be, narrow.dtype, narrow.rows * tp->size, narrow.cols);
    mt_all_gather(tp->be, tp->comm, blocks.data, narrow.data, (size_t)mt_numel(narrow), narrow.dtype);
    for (int k = 0; k < tp->size; k++)
        copy_block(tp->be, wide, mt_rows(blocks, k * narrow.rows, narrow.rows), k, 1);
    mt_tensor_free(tp->be, &blocks);
}

void mt_tp_gather_fwd(const struct mt_tp *tp, mt_tensor out, mt_tensor x) { gather_cols(tp, out, x); }

void mt_tp_gather_bwd(const struct mt_tp *tp, mt_tensor dx, mt_tensor dout)
{
    MT_ASSERT(dout.rows == dx.rows && dout.cols == dx.cols * tp->size);
    copy_block(tp->be, dout, dx, tp->rank, 0);
}

void mt_tp_scatter_fwd(const struct mt_tp *tp, mt_tensor out, mt_tensor x)
{
    MT_ASSERT(x.rows == out.rows && x.cols == out.cols * tp->size);
    copy_block(tp->be, x, out, tp->rank, 0);
}

void mt_tp_scatter_bwd(const struct mt_tp *tp, mt_tensor dx, mt_tensor dout) { gather_cols(tp, dx, dout); }
