/* optimizer.h: the optimizers (AdamW, SGD, Adafactor) over the parameter
 * table, global-norm gradient clipping, and Megatron's learning-rate
 * schedule. */
#ifndef MT_OPTIMIZER_H
#define MT_OPTIMIZER_H
#include "backend/backend.h"
#include "model/params.h"

enum mt_optim_kind { MT_OPTIM_ADAM, MT_OPTIM_SGD, MT_OPTIM_ADAFACTOR };

/* Adafactor's settings, named and defaulted as transformers' Adafactor */
struct mt_adafactor_config {
    float eps1, eps2;     /* regularises the squared gradient (1e-30), floors the parameter scale (1e-3) */
    float clip_threshold; /* an update's RMS is clipped to this (1.0) */
    float decay_rate;     /* second-moment decay 1 - step^decay_rate (-0.8) */
    float beta1;          /* first moment; 0: none (transformers' None) */
    int relative_step;    /* lr = min(1e-2, 1/sqrt(step)) instead of the schedule's */
    int scale_parameter;  /* lr times max(eps2, RMS(param)) (1) */
    int warmup_init;      /* with relative_step: min(1e-6 step, 1/sqrt(step)) */
};

struct mt_optim_config {
    float beta1, beta2, eps, weight_decay; /* Adam; Megatron: 0.9, 0.999, 1e-8, 0.01 */
    float clip_grad;                       /* global L2 norm; <= 0 disables. Megatron: 1.0 */
    enum mt_optim_kind kind;               /* MT_OPTIM_ADAM unless set */
    float sgd_momentum;                    /* Megatron: 0.9 */
    struct mt_adafactor_config adafactor;
};
/* transformers' Adafactor defaults, with the schedule's lr (relative_step 0) */
void mt_adafactor_defaults(struct mt_adafactor_config *c);
/* "adam" | "sgd" | "adafactor" -> kind; -1 if unknown */
int mt_optim_parse(const char *name);
const char *mt_optim_name(enum mt_optim_kind k);

/* One buffer of optimizer state, as stored in checkpoints under
 * "optim/<name>/<parameter>": laid out as the parameters (view PARAMS) or
 * as a view of them (model/params.h: Adafactor's factored moments). */
struct mt_optim_state {
    const char *name; /* PyTorch's state key: exp_avg, exp_avg_sq, momentum_buffer, ... */
    enum mt_param_view view;
    float *base;      /* device; distributed: the rank's shard, then the tail (by
                       * tensor: [held_lo, held_lo + held_n) of the whole buffer) */
    struct mt_param_table table; /* the view's (whole) layout (PARAMS: a copy of the parameters') */
    int *entry;       /* entry[i]: the table index of parameter i; -1 where the view has none */
    size_t held_lo, held_n; /* the part of the whole buffer in base (all of it unless distributed) */
};
enum { MT_OPTIM_MAX_STATES = 4 };

/* The distributed optimizer (Megatron's --use-distributed-optimizer, ZeRO
 * stage 1) over a data-parallel group of dp ranks: the flat buffers are cut
 * into dp equal main shards [r S, (r+1) S), S = total / dp, and a tail
 * [dp S, total) of fewer than dp elements that every rank keeps. A rank's
 * state covers its shard and the tail; a step reduce-scatters the
 * gradients (the tail is all-reduced), updates the shard and the tail,
 * and all-gathers the parameters.
 *
 * Adafactor is sharded by whole tensors instead (by_tensor), because its
 * statistics (row and column means, the update's RMS) are per tensor: the
 * tensor whose middle element lies in [r S, (r+1) S) belongs to rank r, so
 * each rank owns one run of consecutive tensors and keeps their state
 * alone; the gradients are all-reduced as without it (full on every rank),
 * each rank updates its tensors, and each run of parameters is broadcast
 * from its owner. Bitwise the run without it; state per rank 1/dp give or
 * take a tensor. */
struct mt_optim_shard {
    mt_comm *dp;      /* NULL: not distributed */
    int dp_size, dp_rank;
    size_t S, tail;   /* main shard and tail lengths; state length S + tail */
    int by_tensor;    /* Adafactor: whole tensors per rank, owner[i] */
    int *owner;
};

struct mt_optimizer {
    struct mt_optim_config cfg;
    mt_backend *be;
    const struct mt_param_table *table;
    struct mt_optim_state state[MT_OPTIM_MAX_STATES];
    int nstate;
    float *scratch;     /* Adafactor: a tensor's row and column sums */
    int step;           /* number of updates applied so far */
    mt_comm *norm_comm; /* model-parallel group (tp x pp) the norm is summed over; NULL: none */
    mt_comm *tp_comm;   /* Adafactor: the tensor-parallel group a split tensor's statistics
                         * are summed over; NULL: none */
    struct mt_optim_shard shard;
};

void mt_optim_init(struct mt_optimizer *o, const struct mt_optim_config *cfg, mt_backend *be,
                   const struct mt_param_table *table);
/* The same, distributed over the data-parallel group dp (dp of one: not
 * distributed). With Adam and SGD, mt_optim_step takes the gradients
 * before the data-parallel reduction and does that reduction itself; with
 * Adafactor (by_tensor) after it, as without distribution. */
void mt_optim_init_dist(struct mt_optimizer *o, const struct mt_optim_config *cfg, mt_backend *be,
                        const struct mt_param_table *table, mt_comm *dp);
/* A distributed optimizer's state as whole buffers (the parameters' layout):
 * all-gathers them into full[i] (state i, table->total elements each;
 * collective over dp), or keeps this rank's part of full[i]. Without
 * distribution, copies. */
void mt_optim_gather_state(struct mt_optimizer *o, float *const *full);
void mt_optim_scatter_state(struct mt_optimizer *o, float *const *full);
void mt_optim_free(struct mt_optimizer *o);
/* Bytes of optimizer state on this rank */
size_t mt_optim_state_bytes(const struct mt_optimizer *o);

/* Global L2 norm of the gradients (deterministic order). Each tensor counts
 * once in the whole model: replicated tensors only on tensor-parallel rank 0,
 * and a stage's shared copy of the tied embedding not at all (Megatron's
 * param_is_not_tensor_parallel_duplicate / param_is_not_shared); the squares
 * are then summed over comm (the model-parallel group; NULL: none). */
double mt_grad_norm(mt_backend *be, const struct mt_param_table *table, const float *grads,
                    mt_comm *comm);
/* Megatron clip coefficient: max_norm / (norm + 1e-6) when below 1, else 1. */
float mt_clip_coeff(double norm, float max_norm);

/* One optimizer step: computes the gradient norm (returned), clips, applies
 * the update (AdamW with decoupled weight decay, SGD with coupled weight
 * decay, or Adafactor; no weight decay on no_weight_decay tensors), and
 * zeroes the gradients. lr is the schedule's (Adafactor with relative_step
 * ignores it). grad_scale multiplies the gradients first (1 / loss
 * scale; 1 in fp32). A non-finite norm (an inf or NaN gradient anywhere)
 * skips the update: parameters, moments and the step count stay as they
 * were, the gradients are zeroed, and the norm is returned for the caller
 * to stop (fp32) or lower the loss scale. */
double mt_optim_step(struct mt_optimizer *o, float *params, float *grads, float lr,
                     float grad_scale);

enum mt_lr_decay { MT_LR_CONSTANT, MT_LR_LINEAR, MT_LR_COSINE };

struct mt_lr_schedule {
    float max_lr, min_lr;
    /* in iterations, counted from 0 (decay includes warmup); fractional
     * when Megatron's sample-based schedule ends between iterations */
    double warmup_iters, decay_iters;
    enum mt_lr_decay style;
};

/* Megatron OptimizerParamScheduler.get_lr after `steps` optimizer steps
 * (iteration k, 1-based, uses mt_lr_at(s, k - 1), as Megatron does). */
float mt_lr_at(const struct mt_lr_schedule *s, long steps);
/* "constant" | "linear" | "cosine" -> enum; -1 if unknown */
int mt_lr_decay_parse(const char *name);
const char *mt_lr_decay_name(enum mt_lr_decay d);

#endif
