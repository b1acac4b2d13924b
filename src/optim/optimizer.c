/* optimizer.c: AdamW, SGD and Adafactor over the parameter table, clipping,
 * the learning-rate schedule. */
#include "optim/optimizer.h"
#include "core/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void mt_adafactor_defaults(struct mt_adafactor_config *c)
{
    *c = (struct mt_adafactor_config){.eps1 = 1e-30f, .eps2 = 1e-3f, .clip_threshold = 1.0f,
                                      .decay_rate = -0.8f, .beta1 = 0.0f, .relative_step = 0,
                                      .scale_parameter = 1, .warmup_init = 0};
}

static const char *const kind_names[] = {"adam", "sgd", "adafactor"};

int mt_optim_parse(const char *name)
{
    for (int k = 0; k < 3; k++)
        if (strcmp(name, kind_names[k]) == 0) return k;
    return -1;
}

const char *mt_optim_name(enum mt_optim_kind k)
{
    return k >= 0 && k <= MT_OPTIM_ADAFACTOR ? kind_names[k] : "?";
}

/* By tensor: [*lo, *hi) of a buffer laid out as `table` that rank r's
 * tensors cover (entry[i]: parameter i's entry in `table`, -1 for none;
 * entry NULL: `table` is the parameters' own); empty when it owns none.
 * Owners rise with the index, so the tensors of one rank are consecutive. */
static void owned_span(const struct mt_optimizer *o, const struct mt_param_table *table, const int *entry,
                       int r, size_t *lo, size_t *hi)
{
    *lo = *hi = 0;
    int first = 1;
    for (int i = 0; i < o->table->n; i++) {
        const int j = entry ? entry[i] : i;
        if (j < 0 || o->shard.owner[i] != r) continue;
        const struct mt_param *p = &table->p[j];
        if (first) *lo = p->offset;
        *hi = p->offset + p->numel;
        first = 0;
    }
}

/* Adafactor's owners: the rank whose main shard holds the tensor's middle */
static void assign_owners(struct mt_optimizer *o)
{
    const struct mt_optim_shard *d = &o->shard;
    o->shard.owner = malloc((size_t)o->table->n * sizeof *o->shard.owner);
    if (!o->shard.owner) mt_die("out of memory");
    for (int i = 0; i < o->table->n; i++) {
        const struct mt_param *p = &o->table->p[i];
        const size_t mid = p->offset + p->numel / 2;
        const size_t r = d->S ? mid / d->S : 0;
        o->shard.owner[i] = r < (size_t)d->dp_size ? (int)r : d->dp_size - 1;
    }
}

static void add_state(struct mt_optimizer *o, const char *name, enum mt_param_view view)
{
    MT_ASSERT(o->nstate < MT_OPTIM_MAX_STATES);
    struct mt_optim_state *s = &o->state[o->nstate++];
    s->name = name;
    s->view = view;
    int *parent = malloc(((size_t)o->table->n + 1) * sizeof *parent);
    s->entry = malloc(((size_t)o->table->n + 1) * sizeof *s->entry);
    if (!parent || !s->entry) mt_die("out of memory");
    mt_params_view(o->table, view, &s->table, parent);
    for (int i = 0; i < o->table->n; i++) s->entry[i] = -1;
    for (int j = 0; j < s->table.n; j++) s->entry[parent[j]] = j;
    free(parent);
    s->held_lo = 0, s->held_n = s->table.total;
    if (o->shard.by_tensor) {
        size_t hi;
        owned_span(o, &s->table, s->entry, o->shard.dp_rank, &s->held_lo, &hi);
        s->held_n = hi - s->held_lo;
    } else if (o->shard.dp) {
        s->held_n = o->shard.S + o->shard.tail;
    }
    const size_t bytes = s->held_n * sizeof(float);
    s->base = mt_alloc(o->be, bytes);
    mt_memset0(o->be, s->base, bytes);
}

void mt_optim_init(struct mt_optimizer *o, const struct mt_optim_config *cfg, mt_backend *be,
                   const struct mt_param_table *table)
{
    mt_optim_init_dist(o, cfg, be, table, NULL);
}

void mt_optim_init_dist(struct mt_optimizer *o, const struct mt_optim_config *cfg, mt_backend *be,
                        const struct mt_param_table *table, mt_comm *dp)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->be = be;
    o->table = table;
    if (dp && mt_comm_size(be, dp) > 1) {
        struct mt_optim_shard *d = &o->shard;
        d->dp = dp;
        d->dp_size = mt_comm_size(be, dp);
        d->dp_rank = mt_comm_rank(be, dp);
        d->S = table->total / (size_t)d->dp_size;
        d->tail = table->total - d->S * (size_t)d->dp_size;
        d->by_tensor = cfg->kind == MT_OPTIM_ADAFACTOR;
        if (d->by_tensor) assign_owners(o);
    }
    switch (cfg->kind) {
    case MT_OPTIM_ADAM:
        add_state(o, "exp_avg", MT_VIEW_PARAMS);
        add_state(o, "exp_avg_sq", MT_VIEW_PARAMS);
        break;
    case MT_OPTIM_SGD:
        if (cfg->sgd_momentum != 0.0f) add_state(o, "momentum_buffer", MT_VIEW_PARAMS);
        break;
    case MT_OPTIM_ADAFACTOR: {
        if (cfg->adafactor.beta1 != 0.0f) add_state(o, "exp_avg", MT_VIEW_PARAMS);
        add_state(o, "exp_avg_sq_row", MT_VIEW_ROWS);
        add_state(o, "exp_avg_sq_col", MT_VIEW_COLS);
        add_state(o, "exp_avg_sq", MT_VIEW_VECTORS);
        size_t most = 1;
        for (int i = 0; i < table->n; i++) {
            const struct mt_param *p = &table->p[i];
            const size_t rc = (size_t)p->local_shape[0] + (size_t)p->local_shape[1];
            if (rc > most) most = rc;
        }
        o->scratch = mt_alloc(be, most * sizeof(float));
        break;
    }
    }
}

void mt_optim_free(struct mt_optimizer *o)
{
    if (!o->be) return;
    for (int i = 0; i < o->nstate; i++) {
        mt_dealloc(o->be, o->state[i].base);
        mt_params_free(&o->state[i].table);
        free(o->state[i].entry);
    }
    if (o->scratch) mt_dealloc(o->be, o->scratch);
    free(o->shard.owner);
    memset(o, 0, sizeof *o);
}

size_t mt_optim_state_bytes(const struct mt_optimizer *o)
{
    size_t n = 0;
    for (int i = 0; i < o->nstate; i++) n += o->state[i].held_n;
    return n * sizeof(float);
}

/* The two pieces of the flat buffers a distributed rank updates: its main
 * shard and the tail, each as [lo, hi) of the whole buffer at local offset
 * `at` of the shard buffers */
struct piece {
    size_t lo, hi, at;
};

static void pieces_of(const struct mt_optim_shard *d, size_t total, struct piece pc[2])
{
    pc[0] = (struct piece){(size_t)d->dp_rank * d->S, (size_t)(d->dp_rank + 1) * d->S, 0};
    pc[1] = (struct piece){total - d->tail, total, d->S};
}

void mt_optim_gather_state(struct mt_optimizer *o, float *const *full)
{
    const struct mt_optim_shard *d = &o->shard;
    for (int i = 0; i < o->nstate; i++) {
        const size_t total = o->state[i].table.total;
        if (!d->dp) {
            mt_copy(o->be, full[i], o->state[i].base, total * sizeof(float));
            continue;
        }
        if (d->by_tensor) { /* each owner's run, from the owner */
            const struct mt_optim_state *s = &o->state[i];
            if (s->held_n) mt_copy(o->be, full[i] + s->held_lo, s->base, s->held_n * sizeof(float));
            for (int r = 0; r < d->dp_size; r++) {
                size_t lo, hi;
                owned_span(o, &s->table, s->entry, r, &lo, &hi);
                if (hi > lo) mt_broadcast(o->be, d->dp, full[i] + lo, hi - lo, MT_DTYPE_F32, r);
            }
            continue;
        }
        mt_all_gather(o->be, d->dp, full[i], o->state[i].base, d->S, MT_DTYPE_F32);
        if (d->tail) mt_copy(o->be, full[i] + total - d->tail, o->state[i].base + d->S, d->tail * sizeof(float));
    }
}

void mt_optim_scatter_state(struct mt_optimizer *o, float *const *full)
{
    const struct mt_optim_shard *d = &o->shard;
    for (int i = 0; i < o->nstate; i++) {
        const size_t total = o->state[i].table.total;
        if (!d->dp || d->by_tensor) {
            const struct mt_optim_state *s = &o->state[i];
            (void)total;
            if (s->held_n) mt_copy(o->be, s->base, full[i] + s->held_lo, s->held_n * sizeof(float));
            continue;
        }
        struct piece pc[2];
        pieces_of(d, total, pc);
        for (int k = 0; k < 2; k++)
            if (pc[k].hi > pc[k].lo)
                mt_copy(o->be, o->state[i].base + pc[k].at, full[i] + pc[k].lo, (pc[k].hi - pc[k].lo) * sizeof(float));
    }
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

/* The run of consecutive tensors from i with the same weight decay as
 * tensor i: [*begin, *begin + *n) of the flat buffers, covering the
 * alignment gaps too (zero gradients, zero params); returns the next i.
 * AdamW and SGD make one backend call per run. */
static int decay_run(const struct mt_param_table *t, int i, size_t *begin, int64_t *n)
{
    int j = i;
    while (j + 1 < t->n && t->p[j + 1].no_weight_decay == t->p[i].no_weight_decay) j++;
    *begin = t->p[i].offset;
    *n = (int64_t)(t->p[j].offset + t->p[j].numel - *begin);
    return j + 1;
}

/* AdamW or SGD on n elements of the flat buffers, the state at offset `at`
 * of the state buffers (the same as the parameters' unless distributed) */
static void update_span(struct mt_optimizer *o, float *param, float *grad, size_t at, int64_t n,
                        float lr, float gs, float wd, int zero_grad)
{
    const mt_tensor P = mt_f32(param, 1, n), G = mt_f32(grad, 1, n);
    if (o->cfg.kind == MT_OPTIM_ADAM) {
        const struct mt_adamw_args a = {.lr = lr, .beta1 = o->cfg.beta1, .beta2 = o->cfg.beta2,
                                        .eps = o->cfg.eps, .weight_decay = wd, .grad_scale = gs,
                                        .step = o->step};
        mt_adamw(o->be, P, G, mt_f32(o->state[0].base + at, 1, n), mt_f32(o->state[1].base + at, 1, n),
                 &a, zero_grad);
    } else {
        const struct mt_sgd_args a = {.lr = lr, .momentum = o->cfg.sgd_momentum, .weight_decay = wd,
                                      .grad_scale = gs};
        mt_sgd(o->be, P, G, o->nstate ? mt_f32(o->state[0].base + at, 1, n) : mt_f32(NULL, 0, 0), &a,
               zero_grad);
    }
}

static float decay_of(const struct mt_optimizer *o, const struct mt_param *p)
{
    return p->no_weight_decay ? 0.0f : o->cfg.weight_decay;
}

/* AdamW or SGD over the whole table, one call per run of tensors with the
 * same weight decay */
static void flat_update(struct mt_optimizer *o, float *params, float *grads, float lr, float gs)
{
    const struct mt_param_table *t = o->table;
    for (int i = 0, next; i < t->n; i = next) {
        size_t b;
        int64_t n;
        next = decay_run(t, i, &b, &n);
        update_span(o, params + b, grads + b, b, n, lr, gs, decay_of(o, &t->p[i]), /* zero_grad */ 1);
    }
}

/* a sum over a tensor's shard, completed over the tensor-parallel group
 * when the tensor is split (every rank of the group then agrees) */
static double tp_total(const struct mt_optimizer *o, const struct mt_param *p, double local)
{
    if (p->split_dim >= 0 && o->tp_comm)
        return mt_all_reduce_scalar(o->be, o->tp_comm, local, MT_REDOP_SUM);
    return local;
}

/* Adafactor's state buffers (NULL: not kept) */
struct adafactor_states {
    const struct mt_optim_state *m, *row, *col, *v;
};

static const struct mt_optim_state *state_named(const struct mt_optimizer *o, const char *name)
{
    for (int i = 0; i < o->nstate; i++)
        if (strcmp(o->state[i].name, name) == 0) return &o->state[i];
    return NULL;
}

/* parameter i's part of a state buffer, NULL when it has none */
static float *state_at(const struct mt_optim_state *s, int i)
{
    return s && s->entry[i] >= 0 ? s->base + (s->table.p[s->entry[i]].offset - s->held_lo) : NULL;
}

/* Adafactor on tensor i (transformers' Adafactor.step, per parameter) */
static void adafactor_tensor(struct mt_optimizer *o, const struct adafactor_states *st, int i,
                             float *params, float *grads, float lr, float gs)
{
    const struct mt_param *p = &o->table->p[i];
    float *param = params + p->offset, *grad = grads + p->offset;
    const struct mt_adafactor_config *c = &o->cfg.adafactor;
    mt_backend *be = o->be;
    const int64_t R = p->local_shape[0], C = p->local_shape[1];
    const double n_global = (double)mt_param_global_numel(p);
    struct mt_adafactor_args a = {.scale = gs, .eps1 = c->eps1, .beta1 = c->beta1};
    a.beta2t = (float)(1.0 - pow((double)o->step, (double)c->decay_rate));
    const mt_tensor g = mt_f32(grad, R, C);
    const mt_tensor none = mt_f32(NULL, 0, 0);
    if (p->ndim == 2) {
        float *row = state_at(st->row, i), *col = state_at(st->col, i);
        float *rs = o->scratch, *cs = o->scratch + R;
        mt_sq_sums(be, mt_f32(rs, 1, R), mt_f32(cs, 1, C), g, gs, c->eps1);
        /* a split dimension's partial sums complete over the group */
        if (o->tp_comm && p->split_dim == 1) mt_all_reduce(be, o->tp_comm, rs, (size_t)R, MT_DTYPE_F32, MT_REDOP_SUM);
        if (o->tp_comm && p->split_dim == 0) mt_all_reduce(be, o->tp_comm, cs, (size_t)C, MT_DTYPE_F32, MT_REDOP_SUM);
        /* the moments: beta2t m + (1 - beta2t) mean */
        mt_scale(be, mt_f32(row, 1, R), a.beta2t);
        mt_scale(be, mt_f32(rs, 1, R), (float)((1.0 - a.beta2t) / (double)p->shape[1]));
        mt_add(be, mt_f32(row, 1, R), mt_f32(row, 1, R), mt_f32(rs, 1, R));
        mt_scale(be, mt_f32(col, 1, C), a.beta2t);
        mt_scale(be, mt_f32(cs, 1, C), (float)((1.0 - a.beta2t) / (double)p->shape[0]));
        mt_add(be, mt_f32(col, 1, C), mt_f32(col, 1, C), mt_f32(cs, 1, C));
        const double row_sum = p->split_dim == 0 ? tp_total(o, p, mt_sum(be, mt_f32(row, 1, R)))
                                                 : mt_sum(be, mt_f32(row, 1, R));
        a.inv_row_mean = (float)((double)p->shape[0] / row_sum);
        mt_adafactor_precond(be, g, mt_f32(row, 1, R), mt_f32(col, 1, C), none, &a);
    } else {
        float *v = state_at(st->v, i);
        mt_adafactor_precond(be, g, none, none, mt_f32(v, R, C), &a);
    }
    const double rms_u = sqrt(tp_total(o, p, mt_sum_squares(be, g)) / n_global);
    a.update_scale = (float)(1.0 / fmax(rms_u / c->clip_threshold, 1.0));
    double step_size = lr;
    if (c->relative_step) {
        const double min_step = c->warmup_init ? 1e-6 * o->step : 1e-2;
        step_size = fmin(min_step, 1.0 / sqrt((double)o->step));
    }
    if (c->scale_parameter) {
        const double rms_p = sqrt(tp_total(o, p, mt_sum_squares(be, mt_f32(param, 1, (int64_t)p->numel))) / n_global);
        step_size *= fmax((double)c->eps2, rms_p);
    }
    a.lr = (float)step_size;
    a.weight_decay = decay_of(o, p);
    float *m = state_at(st->m, i);
    mt_adafactor_apply(be, mt_f32(param, 1, (int64_t)p->numel), mt_f32(grad, 1, (int64_t)p->numel),
                       m ? mt_f32(m, 1, (int64_t)p->numel) : none, &a, 1);
}

/* The part of tensor p inside piece pc: its length (<= 0: none), from *lo */
static int64_t overlap(const struct mt_param *p, const struct piece *pc, size_t *lo)
{
    *lo = p->offset > pc->lo ? p->offset : pc->lo;
    const size_t hi = p->offset + p->numel < pc->hi ? p->offset + p->numel : pc->hi;
    return (int64_t)hi - (int64_t)*lo;
}

/* The distributed step (struct mt_optim_shard): per tensor, the parts of
 * it inside the rank's pieces. */
static double dist_step(struct mt_optimizer *o, float *params, float *grads, float lr, float grad_scale)
{
    const struct mt_param_table *t = o->table;
    struct mt_optim_shard *d = &o->shard;
    mt_backend *be = o->be;
    struct piece pc[2];
    pieces_of(d, t->total, pc);
    /* the data-parallel average, in place: each rank's shard, and the tail
     * everywhere; the other blocks then hold partial sums, zeroed below */
    mt_reduce_scatter(be, d->dp, grads + pc[0].lo, grads, d->S, MT_DTYPE_F32, MT_REDOP_AVG);
    if (d->tail) mt_all_reduce(be, d->dp, grads + pc[1].lo, d->tail, MT_DTYPE_F32, MT_REDOP_AVG);
    /* the norm: each shard's part (the tail on dp rank 0 only), over dp, then over the model */
    double sq = 0.0;
    for (int k = 0; k < 2; k++) {
        if (k == 1 && d->dp_rank != 0) break;
        for (int i = 0; i < t->n; i++) {
            size_t lo;
            const int64_t n = overlap(&t->p[i], &pc[k], &lo);
            if (n > 0 && counted(t, &t->p[i])) sq += mt_sum_squares(be, mt_f32(grads + lo, 1, n));
        }
    }
    sq = mt_all_reduce_scalar(be, d->dp, sq, MT_REDOP_SUM);
    if (o->norm_comm) sq = mt_all_reduce_scalar(be, o->norm_comm, sq, MT_REDOP_SUM);
    const double norm = sqrt(sq) * (double)grad_scale;
    if (isfinite(norm)) {
        const float gs = grad_scale * mt_clip_coeff(norm, o->cfg.clip_grad);
        o->step++;
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < t->n; i++) {
                size_t lo;
                const int64_t n = overlap(&t->p[i], &pc[k], &lo);
                if (n > 0)
                    update_span(o, params + lo, grads + lo, pc[k].at + (lo - pc[k].lo), n, lr, gs,
                                decay_of(o, &t->p[i]), 0);
            }
        /* every rank's updated shard to every rank, in place (the tail is
         * the same everywhere) */
        mt_all_gather(be, d->dp, params, params + pc[0].lo, d->S, MT_DTYPE_F32);
    }
    /* a non-finite norm updates nothing (the caller stops or lowers the scale) */
    mt_memset0(be, grads, t->total * sizeof(float));
    return norm;
}

double mt_optim_step(struct mt_optimizer *o, float *params, float *grads, float lr, float grad_scale)
{
    if (o->shard.dp && !o->shard.by_tensor) return dist_step(o, params, grads, lr, grad_scale);
    const struct mt_param_table *t = o->table;
    /* the norm of the unscaled gradients */
    double norm = mt_grad_norm(o->be, t, grads, o->norm_comm) * (double)grad_scale;
    if (!isfinite(norm)) {
        /* inf/NaN somewhere: no update, not counted as a step (the norm is
         * the same on every rank, so all of them skip) */
        mt_memset0(o->be, grads, t->total * sizeof(float));
        return norm;
    }
    const float gs = grad_scale * mt_clip_coeff(norm, o->cfg.clip_grad);
    o->step++;
    switch (o->cfg.kind) {
    case MT_OPTIM_ADAM:
    case MT_OPTIM_SGD: flat_update(o, params, grads, lr, gs); break;
    case MT_OPTIM_ADAFACTOR: {
        const struct adafactor_states st = {state_named(o, "exp_avg"), state_named(o, "exp_avg_sq_row"),
                                            state_named(o, "exp_avg_sq_col"), state_named(o, "exp_avg_sq")};
        const struct mt_optim_shard *d = &o->shard;
        for (int i = 0; i < t->n; i++)
            if (!d->by_tensor || d->owner[i] == d->dp_rank) adafactor_tensor(o, &st, i, params, grads, lr, gs);
        /* distributed: each rank's updated tensors to every rank, and the
         * gradients of the others' tensors zeroed (the updates zeroed ours) */
        for (int r = 0; d->by_tensor && r < d->dp_size; r++) {
            size_t lo, hi;
            owned_span(o, t, NULL, r, &lo, &hi);
            if (hi > lo) mt_broadcast(o->be, d->dp, params + lo, hi - lo, MT_DTYPE_F32, r);
        }
        if (d->by_tensor) mt_memset0(o->be, grads, t->total * sizeof(float));
        break;
    }
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
