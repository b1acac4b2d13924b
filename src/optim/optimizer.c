/* optimizer.c: AdamW over the parameter table, clipping, LR schedule. */
#include "optim/optimizer.h"
#include "core/error.h"
#include <math.h>
#include <string.h>

void mt_adamw_init(struct mt_adamw *o, const struct mt_adamw_config *cfg, mt_backend *be,
                   const struct mt_param_table *table)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->be = be;
    o->table = table;
    size_t bytes = table->total * sizeof(float);
    o->m = mt_alloc(be, bytes);
    o->v = mt_alloc(be, bytes);
    mt_memset0(be, o->m, bytes);
    mt_memset0(be, o->v, bytes);
}

void mt_adamw_free(struct mt_adamw *o)
{
    if (!o->be) return;
    mt_dealloc(o->be, o->m);
    mt_dealloc(o->be, o->v);
    memset(o, 0, sizeof *o);
}

static int counted(const struct mt_param_table *t, const struct mt_param *p)
{
    return !p->shared && (p->split_dim >= 0 || t->tp_rank == 0);
}

double mt_grad_norm(mt_backend *be, const struct mt_param_table *t, const float *grads,
                    mt_comm *comm)
{
    /* one fixed-order pass per run of consecutive counted tensors (the
     * alignment gaps inside a run are zero); serially that is one run */
    double sq = 0.0;
    int i = 0;
    while (i < t->n) {
        if (!counted(t, &t->p[i])) {
            i++;
            continue;
        }
        int j = i;
        while (j + 1 < t->n && counted(t, &t->p[j + 1])) j++;
        size_t begin = t->p[i].offset, end = t->p[j].offset + t->p[j].numel;
        sq += mt_sum_squares(be, mt_f32((float *)grads + begin, 1, (int64_t)(end - begin)));
        i = j + 1;
    }
    if (comm) sq = mt_all_reduce_scalar(be, comm, sq, MT_REDOP_SUM);
    return sqrt(sq);
}

float mt_clip_coeff(double norm, float max_norm)
{
    if (max_norm <= 0) return 1.0f;
    double c = (double)max_norm / (norm + 1e-6);
    return c < 1.0 ? (float)c : 1.0f;
}

double mt_adamw_step(struct mt_adamw *o, float *params, float *grads, float lr, float grad_scale)
{
    const struct mt_param_table *t = o->table;
    /* the norm of the unscaled gradients */
    double norm = mt_grad_norm(o->be, t, grads, o->norm_comm) * (double)grad_scale;
    if (!isfinite(norm)) {
        /* inf/NaN somewhere: no update, not counted as a step (the norm is
         * the same on every rank, so all of them skip) */
        mt_memset0(o->be, grads, t->total * sizeof(float));
        return norm;
    }
    float coeff = mt_clip_coeff(norm, o->cfg.clip_grad);
    o->step++;
    struct mt_adamw_args a = {.lr = lr, .beta1 = o->cfg.beta1, .beta2 = o->cfg.beta2,
                              .eps = o->cfg.eps, .grad_scale = grad_scale * coeff,
                              .step = o->step};
    /* one call per run of consecutive tensors with the same weight decay;
     * the run covers the alignment gaps too (zero gradients, zero params) */
    int i = 0;
    while (i < t->n) {
        int j = i;
        while (j + 1 < t->n && t->p[j + 1].no_weight_decay == t->p[i].no_weight_decay) j++;
        size_t begin = t->p[i].offset, end = t->p[j].offset + t->p[j].numel;
        a.weight_decay = t->p[i].no_weight_decay ? 0.0f : o->cfg.weight_decay;
        const int64_t n = (int64_t)(end - begin);
        mt_adamw(o->be, mt_f32(params + begin, 1, n), mt_f32(grads + begin, 1, n),
                 mt_f32(o->m + begin, 1, n), mt_f32(o->v + begin, 1, n), &a, /* zero_grad */ 1);
        i = j + 1;
    }
    return norm;
}

float mt_lr_at(const struct mt_lr_schedule *s, long steps)
{
    /* Megatron OptimizerParamScheduler.get_lr (lr_warmup_init = 0) */
    if (s->warmup_iters > 0 && steps <= s->warmup_iters)
        return s->max_lr * (float)steps / (float)s->warmup_iters;
    if (s->style == MT_LR_CONSTANT) return s->max_lr;
    if (steps > s->decay_iters) return s->min_lr;
    double ratio = (double)(steps - s->warmup_iters) / (double)(s->decay_iters - s->warmup_iters);
    double coeff = s->style == MT_LR_LINEAR ? 1.0 - ratio : 0.5 * (cos(M_PI * ratio) + 1.0);
    return (float)(s->min_lr + coeff * (s->max_lr - s->min_lr));
}

int mt_lr_decay_parse(const char *name)
{
    if (strcmp(name, "constant") == 0) return MT_LR_CONSTANT;
    if (strcmp(name, "linear") == 0) return MT_LR_LINEAR;
    if (strcmp(name, "cosine") == 0) return MT_LR_COSINE;
    return -1;
}

const char *mt_lr_decay_name(enum mt_lr_decay d)
{
    switch (d) {
    case MT_LR_CONSTANT: return "constant";
    case MT_LR_LINEAR: return "linear";
    case MT_LR_COSINE: return "cosine";
    }
    return "?";
}
