/* optimizer.h: AdamW over the parameter table, global-norm gradient
 * clipping, and Megatron's learning-rate schedule. */
#ifndef MT_OPTIMIZER_H
#define MT_OPTIMIZER_H
#include "backend/backend.h"
#include "model/params.h"

struct mt_adamw_config {
    float beta1, beta2, eps, weight_decay; /* Megatron: 0.9, 0.999, 1e-8, 0.01 */
    float clip_grad;                       /* global L2 norm; <= 0 disables. Megatron: 1.0 */
};

struct mt_adamw {
    struct mt_adamw_config cfg;
    mt_backend *be;
    const struct mt_param_table *table;
    float *m, *v; /* flat moments (device), same offsets as the parameters */
    int step;     /* number of updates applied so far */
    mt_comm *norm_comm; /* model-parallel group (tp x pp) the norm is summed over; NULL: none */
};

void mt_adamw_init(struct mt_adamw *o, const struct mt_adamw_config *cfg, mt_backend *be,
                   const struct mt_param_table *table);
void mt_adamw_free(struct mt_adamw *o);

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
 * AdamW with decoupled weight decay (none on no_weight_decay tensors), and
 * zeroes the gradients. grad_scale multiplies the gradients first (1 / loss
 * scale; 1 in fp32). A non-finite norm (an inf or NaN gradient anywhere)
 * skips the update: parameters, moments and the step count stay as they
 * were, the gradients are zeroed, and the norm is returned for the caller
 * to stop (fp32) or lower the loss scale. */
double mt_adamw_step(struct mt_adamw *o, float *params, float *grads, float lr,
                     float grad_scale);

enum mt_lr_decay { MT_LR_CONSTANT, MT_LR_LINEAR, MT_LR_COSINE };

struct mt_lr_schedule {
    float max_lr, min_lr;
    int warmup_iters, decay_iters; /* decay_iters counts from 0, includes warmup */
    enum mt_lr_decay style;
};

/* Megatron OptimizerParamScheduler.get_lr after `steps` optimizer steps
 * (iteration k, 1-based, uses mt_lr_at(s, k - 1), as Megatron does). */
float mt_lr_at(const struct mt_lr_schedule *s, long steps);
/* "constant" | "linear" | "cosine" -> enum; -1 if unknown */
int mt_lr_decay_parse(const char *name);
const char *mt_lr_decay_name(enum mt_lr_decay d);

#endif
