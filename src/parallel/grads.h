/* grads.h: finishing the gradients of an iteration (Megatron-core
 * finalize_model_grads), after the pipeline schedule and before the
 * optimizer:
 *   1. tensors held by more than one pipeline stage (the word embedding,
 *      tied to the output layer, lives on the first and the last stage)
 *      sum their gradients over the embedding group;
 *   2. data-parallel replicas average their gradients, in buckets over the
 *      flat buffer (Megatron's default bucket: max(40M, 1M x dp) elements).
 * The model says which tensors are shared; this file knows no model. */
#ifndef MT_PARALLEL_GRADS_H
#define MT_PARALLEL_GRADS_H
#include "backend/backend.h"
#include "model/params.h"
#include "parallel/grid.h"

/* shared: table index of the tensor shared between the first and the last
 * stage (-1: none); bucket: elements per data-parallel all-reduce (0:
 * Megatron's default); dp_reduce = 0 leaves step 2 to the distributed
 * optimizer (its reduce-scatter, optim/optimizer.h). */
void mt_finalize_grads(mt_backend *be, const struct mt_groups *g, const struct mt_param_table *t,
                       float *grads, int shared, size_t bucket, int dp_reduce);

#endif /* MT_PARALLEL_GRADS_H */
