/* params.h: the parameter table. Parameters, gradients and optimizer moments
 * each live in one flat buffer; this table gives every tensor's name, global
 * shape and offset (identical in all of them). Checkpoints, gradient
 * clipping, weight decay and the optimizer iterate over the table. */
#ifndef MT_PARAMS_H
#define MT_PARAMS_H
#include <stddef.h>
#include <stdint.h>

#define MT_PARAM_NAME_MAX 80

struct mt_param {
    char name[MT_PARAM_NAME_MAX]; /* Megatron-core names, e.g. decoder.layers.0.mlp.linear_fc1.weight */
    int ndim;                     /* 1 or 2 */
    int64_t shape[2];             /* global shape (row-major) */
    size_t offset;                /* element offset in the flat buffers */
    size_t numel;
    int no_weight_decay;          /* biases and 1-D tensors (Megatron) */
    float init_std;               /* 0: constant init (see init_value) */
    float init_value;             /* for layernorm weights (1) and biases (0) */
};

struct mt_param_table {
    int n, cap;
    struct mt_param *p;
    size_t total; /* elements */
};

void mt_params_init(struct mt_param_table *t);
void mt_params_free(struct mt_param_table *t);
/* Appends a tensor; returns its index. rows = 0 makes it 1-D of size cols. */
int mt_params_add(struct mt_param_table *t, const char *name, int64_t rows, int64_t cols,
                  float init_std, float init_value);
/* Index of the tensor with this name, or -1. */
int mt_params_find(const struct mt_param_table *t, const char *name);

#endif
