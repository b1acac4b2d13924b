/* grads.c: see grads.h */
#include "parallel/grads.h"

void mt_finalize_grads(mt_backend *be, const struct mt_groups *g, const struct mt_param_table *t,
                       float *grads, int shared, size_t bucket, int dp_reduce)
{
    if (g->embd && shared >= 0) {
        const struct mt_param *p = &t->p[shared];
        mt_all_reduce(be, g->embd, grads + p->offset, p->numel, MT_DTYPE_F32, MT_REDOP_SUM);
    }
    if (g->dp_size > 1 && dp_reduce) {
        if (bucket == 0) bucket = g->dp_size > 40 ? (size_t)g->dp_size * 1000000 : 40000000;
        for (size_t off = 0; off < t->total; off += bucket) {
            size_t n = t->total - off < bucket ? t->total - off : bucket;
            mt_all_reduce(be, g->dp, grads + off, n, MT_DTYPE_F32, MT_REDOP_AVG);
        }
    }
}
