/* params.c: see params.h */
#include "model/params.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

void mt_params_init(struct mt_param_table *t, int tp, int tp_rank)
{
    memset(t, 0, sizeof *t);
    t->tp = tp;
    t->tp_rank = tp_rank;
}

void mt_params_free(struct mt_param_table *t)
{
    free(t->p);
    memset(t, 0, sizeof *t);
}

int mt_params_add(struct mt_param_table *t, const char *name, int64_t rows, int64_t cols,
                  float init_std, float init_value, int split_dim, int stride)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->p = realloc(t->p, (size_t)t->cap * sizeof *t->p);
        if (!t->p) mt_die("out of memory growing the parameter table");
    }
    struct mt_param *p = &t->p[t->n];
    memset(p, 0, sizeof *p);
    MT_ASSERT(strlen(name) < MT_PARAM_NAME_MAX);
    strcpy(p->name, name);
    p->ndim = rows > 0 ? 2 : 1;
    p->shape[0] = rows > 0 ? rows : cols;
    p->shape[1] = rows > 0 ? cols : 1;
    p->split_dim = t->tp > 1 ? split_dim : -1;
    p->split_stride = stride > 1 && split_dim == 0 ? stride : 1;
    p->local_shape[0] = p->shape[0];
    p->local_shape[1] = p->shape[1];
    if (p->split_dim >= 0) {
        MT_ASSERT(p->shape[p->split_dim] % ((int64_t)t->tp * p->split_stride) == 0);
        p->local_shape[p->split_dim] /= t->tp;
    }
    p->numel = (size_t)p->local_shape[0] * (size_t)p->local_shape[1];
    /* Megatron: no weight decay on biases and 1-D parameters (norms). */
    p->no_weight_decay = p->ndim == 1;
    p->init_std = init_std;
    p->init_value = init_value;
    /* every tensor starts 16-element (64-byte) aligned; the gaps stay zero */
    p->offset = (t->total + 15) & ~(size_t)15;
    t->total = p->offset + p->numel;
    return t->n++;
}

void mt_params_view(const struct mt_param_table *in, enum mt_param_view view,
                    struct mt_param_table *out, int *parent)
{
    mt_params_init(out, in->tp, in->tp_rank);
    for (int i = 0; i < in->n; i++) {
        const struct mt_param *p = &in->p[i];
        int64_t len;
        int split = -1, stride = 1;
        if (view == MT_VIEW_PARAMS) {
            mt_params_add(out, p->name, p->ndim == 2 ? p->shape[0] : 0, p->shape[p->ndim == 2],
                          p->init_std, p->init_value, p->split_dim, p->split_stride);
        } else if (view == MT_VIEW_VECTORS) {
            if (p->ndim != 1) continue;
            mt_params_add(out, p->name, 0, p->shape[0], 0, 0, p->split_dim, 1);
        } else {
            if (p->ndim != 2) continue;
            const int dim = view == MT_VIEW_ROWS ? 0 : 1;
            len = p->shape[dim];
            if (p->split_dim == dim) split = 0, stride = dim == 0 ? p->split_stride : 1;
            mt_params_add(out, p->name, 0, len, 0, 0, split, stride);
        }
        struct mt_param *q = &out->p[out->n - 1];
        q->shared = p->shared;
        q->no_weight_decay = p->no_weight_decay;
        if (parent) parent[out->n - 1] = i;
    }
}

int mt_params_find(const struct mt_param_table *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->p[i].name, name) == 0) return i;
    return -1;
}

size_t mt_param_global_numel(const struct mt_param *p)
{
    return (size_t)p->shape[0] * (size_t)p->shape[1];
}

/* dim 0 split with a stride: chunk k of the global rows holds rank r's
 * rows at [k * R/stride + r * R/(stride tp), ... + R/(stride tp)); they go
 * to [k * R/(stride tp), ...) of the shard. to_local copies global -> local. */
static void strided_rows(const struct mt_param *p, int tp, int rank, float *global, float *local,
                         int to_local)
{
    const size_t S = (size_t)p->split_stride, rows = (size_t)p->shape[0] / S / (size_t)tp;
    const size_t width = (size_t)p->shape[1], chunk = (size_t)p->shape[0] / S;
    for (size_t k = 0; k < S; k++) {
        float *g = global + (k * chunk + (size_t)rank * rows) * width, *l = local + k * rows * width;
        if (to_local) memcpy(l, g, rows * width * sizeof *l);
        else memcpy(g, l, rows * width * sizeof *l);
    }
}

void mt_param_shard(const struct mt_param *p, int tp, int tp_rank, const float *global,
                    float *local)
{
    if (p->split_dim < 0 || tp == 1) {
        memcpy(local, global, mt_param_global_numel(p) * sizeof *local);
    } else if (p->split_dim == 0) {
        /* a contiguous block of rows (of each chunk, for a strided split) */
        strided_rows(p, tp, tp_rank, (float *)global, local, 1);
    } else {
        /* a block of columns of every row */
        const size_t R = (size_t)p->shape[0], Cg = (size_t)p->shape[1], Cl = Cg / (size_t)tp;
        for (size_t r = 0; r < R; r++)
            memcpy(local + r * Cl, global + r * Cg + (size_t)tp_rank * Cl, Cl * sizeof *local);
    }
}

void mt_param_unshard(const struct mt_param *p, int tp, const float *blocks, float *global)
{
    if (p->split_dim < 0 || tp == 1) {
        /* replicated: block 0 */
        memcpy(global, blocks, mt_param_global_numel(p) * sizeof *global);
        return;
    }
    if (p->split_dim == 0) {
        for (int k = 0; k < tp; k++)
            strided_rows(p, tp, k, global, (float *)blocks + (size_t)k * p->numel, 0);
        return;
    }
    const size_t R = (size_t)p->shape[0], Cg = (size_t)p->shape[1], Cl = Cg / (size_t)tp;
    for (int k = 0; k < tp; k++)
        for (size_t r = 0; r < R; r++)
            memcpy(global + r * Cg + (size_t)k * Cl, blocks + (size_t)k * p->numel + r * Cl,
                   Cl * sizeof *global);
}
