/* params.h: the parameter table. Parameters, gradients and optimizer moments
 * each live in one flat buffer; this table gives every tensor's name, global
 * shape, tensor-parallel split and offset (identical in all of them).
 * Checkpoints, gradient clipping, weight decay and the optimizer iterate
 * over the table.
 *
 * Under tensor parallelism a rank holds a shard of each split tensor: the
 * global shape is split along split_dim into tp equal blocks, block tp_rank
 * being local (Megatron's partition_dim; column-parallel weights and biases
 * and the vocab-parallel embedding split dim 0, row-parallel weights dim 1).
 * A strided split (Megatron's partition stride) cuts dim 0 into `stride`
 * equal chunks first and splits each chunk: the SwiGLU fc1 weight [gate;
 * up] has stride 2, so a shard keeps the gate rows and the up rows of the
 * same columns. Under pipeline parallelism a rank's table holds only its
 * stage's tensors. */
#ifndef MT_PARAMS_H
#define MT_PARAMS_H
#include <stddef.h>
#include <stdint.h>

#define MT_PARAM_NAME_MAX 80

struct mt_param {
    char name[MT_PARAM_NAME_MAX]; /* Megatron-core names, e.g. decoder.layers.0.mlp.linear_fc1.weight */
    int ndim;                     /* 1 or 2 */
    int64_t shape[2];             /* global shape (row-major); shape[1] = 1 for 1-D */
    int split_dim;                /* -1: replicated over the tp group; 0 or 1: split */
    int split_stride;             /* chunks of dim 0 split separately (1: a plain split) */
    int64_t local_shape[2];       /* this rank's shard */
    size_t offset;                /* element offset in the flat buffers */
    size_t numel;                 /* local elements */
    int no_weight_decay;          /* biases and 1-D tensors (Megatron) */
    int shared;                   /* a pipeline copy of a tensor another stage owns (the tied
                                   * output layer on the last stage): not in norms or checkpoints */
    float init_std;               /* 0: constant init (see init_value) */
    float init_value;             /* for layernorm weights (1) and biases (0) */
};

struct mt_param_table {
    int n, cap;
    struct mt_param *p;
    size_t total;     /* elements */
    int tp, tp_rank;  /* the shard this table describes (1, 0 when serial) */
};

void mt_params_init(struct mt_param_table *t, int tp, int tp_rank);
void mt_params_free(struct mt_param_table *t);
/* Appends a tensor; returns its index. rows = 0 makes it 1-D of size cols.
 * split_dim must divide evenly by the table's tp (times stride for a
 * strided split; the caller checks sizes and reports them to the user
 * first). */
int mt_params_add(struct mt_param_table *t, const char *name, int64_t rows, int64_t cols,
                  float init_std, float init_value, int split_dim, int stride);
/* Index of the tensor with this name, or -1. */
int mt_params_find(const struct mt_param_table *t, const char *name);
size_t mt_param_global_numel(const struct mt_param *p);
/* Tables of per-tensor optimizer statistics derived from a parameter table
 * (global or local), laid out in their own flat buffer. ROWS: each 2-D
 * tensor (R, C) gives a vector (R) (Adafactor's row second moments), split
 * with the rows; COLS: a vector (C), split with the columns; VECTORS: each
 * 1-D tensor as it is. Names are the parameters'; parent[j] (may be NULL)
 * is the index in `in` of entry j. PARAMS is the table itself. */
enum mt_param_view { MT_VIEW_PARAMS, MT_VIEW_ROWS, MT_VIEW_COLS, MT_VIEW_VECTORS };
void mt_params_view(const struct mt_param_table *in, enum mt_param_view view,
                    struct mt_param_table *out, int *parent);
/* Copies this rank's shard out of a whole (global) tensor. */
void mt_param_shard(const struct mt_param *p, int tp, int tp_rank, const float *global,
                    float *local);
/* Assembles the whole tensor from the tp shards stored one after another
 * (block r = rank r's shard, as an all-gather delivers them). */
void mt_param_unshard(const struct mt_param *p, int tp, const float *blocks, float *global);

#endif
