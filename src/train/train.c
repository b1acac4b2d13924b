/* train.c: `megatron-c train`, the training loop.
 *
 * With no --data-path, trains the teaching default: a character-level GPT on
 * the tiny Shakespeare text shipped in data/ (flags given on the command line
 * still override each setting). With --data-path, every default is
 * Megatron-LM's and the model-shape flags are required, as in Megatron. */
#include "core/args.h"
#include "core/error.h"
#include "core/io.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/gpt_dataset.h"
#include "data/tokenizer.h"
#include "model/gpt.h"
#include "optim/optimizer.h"
#include "parallel/grid.h"
#include "parallel/pipeline.h"
#include "train/checkpoint.h"
#include "train/commands.h"
#include "train/run.h"
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

struct train_args {
    int num_layers, hidden_size, num_heads, ffn_hidden_size, seq_length, max_pos;
    int make_vocab_divisible_by;
    float init_method_std;
    int micro_batch_size, global_batch_size;
    long train_iters;
    float lr, min_lr;
    long lr_warmup_iters, lr_decay_iters;
    const char *lr_decay_style;
    float adam_beta1, adam_beta2, adam_eps, weight_decay, clip_grad;
    const char *optimizer;
    long seed;
    long log_interval, eval_interval, eval_iters;
    const char *log_json;
    const char *save, *load;
    long save_interval, ckpt_step;
    int no_load_optim, no_load_rng, finetune;
    struct mt_words data_path;
    const char *split, *tokenizer_type, *vocab_file, *merge_file;
    const char *backend;
    int tp, pp;
    int tf32;
    long ddp_bucket_size;
    int sample_tokens;
    float sample_temperature;
    int no_progress;
};

#define F(field) offsetof(struct train_args, field)
static const struct mt_arg_spec SPECS[] = {
    {"num-layers", MT_ARG_INT, F(num_layers), "N", "transformer layers"},
    {"hidden-size", MT_ARG_INT, F(hidden_size), "N", "model width"},
    {"num-attention-heads", MT_ARG_INT, F(num_heads), "N", "attention heads (divides --hidden-size)"},
    {"ffn-hidden-size", MT_ARG_INT, F(ffn_hidden_size), "N", "MLP width (default 4 x hidden)"},
    {"seq-length", MT_ARG_INT, F(seq_length), "N", "training sequence length"},
    {"max-position-embeddings", MT_ARG_INT, F(max_pos), "N", "position table size (>= --seq-length; default --seq-length)"},
    {"make-vocab-size-divisible-by", MT_ARG_INT, F(make_vocab_divisible_by), "N", "pad the vocabulary to a multiple of N (128)"},
    {"init-method-std", MT_ARG_FLOAT, F(init_method_std), "X", "weight init std (0.02)"},
    {"micro-batch-size", MT_ARG_INT, F(micro_batch_size), "N", "sequences per forward/backward"},
    {"global-batch-size", MT_ARG_INT, F(global_batch_size), "N", "sequences per optimizer step (default micro batch; a multiple gives gradient accumulation)"},
    {"train-iters", MT_ARG_LONG, F(train_iters), "N", "optimizer steps to train for"},
    {"lr", MT_ARG_FLOAT, F(lr), "X", "peak learning rate"},
    {"min-lr", MT_ARG_FLOAT, F(min_lr), "X", "final learning rate (0)"},
    {"lr-warmup-iters", MT_ARG_LONG, F(lr_warmup_iters), "N", "linear warmup steps (0)"},
    {"lr-decay-iters", MT_ARG_LONG, F(lr_decay_iters), "N", "decay horizon (default --train-iters)"},
    {"lr-decay-style", MT_ARG_STRING, F(lr_decay_style), "S", "constant | linear | cosine (linear)"},
    {"optimizer", MT_ARG_STRING, F(optimizer), "S", "adam (AdamW, decoupled weight decay)"},
    {"adam-beta1", MT_ARG_FLOAT, F(adam_beta1), "X", "(0.9)"},
    {"adam-beta2", MT_ARG_FLOAT, F(adam_beta2), "X", "(0.999)"},
    {"adam-eps", MT_ARG_FLOAT, F(adam_eps), "X", "(1e-8)"},
    {"weight-decay", MT_ARG_FLOAT, F(weight_decay), "X", "(0.01; none on biases and norms)"},
    {"clip-grad", MT_ARG_FLOAT, F(clip_grad), "X", "global gradient-norm clip (1.0; 0 disables)"},
    {"seed", MT_ARG_LONG, F(seed), "N", "random seed for weights and data order (1234)"},
    {"log-interval", MT_ARG_LONG, F(log_interval), "N", "iterations per log line (100)"},
    {"eval-interval", MT_ARG_LONG, F(eval_interval), "N", "iterations between validations (1000; 0 = only at the end)"},
    {"eval-iters", MT_ARG_LONG, F(eval_iters), "N", "global batches per validation (100; 0 disables)"},
    {"log-json", MT_ARG_STRING, F(log_json), "FILE", "also write the log as JSON lines"},
    {"save", MT_ARG_STRING, F(save), "DIR", "checkpoint directory to write"},
    {"save-interval", MT_ARG_LONG, F(save_interval), "N", "iterations between checkpoints (also saved at the end)"},
    {"load", MT_ARG_STRING, F(load), "DIR", "checkpoint directory to resume from"},
    {"ckpt-step", MT_ARG_LONG, F(ckpt_step), "N", "load this iteration instead of the latest"},
    {"no-load-optim", MT_ARG_BOOL, F(no_load_optim), NULL, "do not load the optimizer state"},
    {"no-load-rng", MT_ARG_BOOL, F(no_load_rng), NULL, "do not load the RNG state"},
    {"finetune", MT_ARG_BOOL, F(finetune), NULL, "load weights only; start at iteration 0"},
    {"data-path", MT_ARG_WORDS, F(data_path), "PATH", "a text file, or [W1] PREFIX1 [W2 PREFIX2 ...] of .bin/.idx datasets (default: the shipped tiny Shakespeare)"},
    {"split", MT_ARG_STRING, F(split), "A,B,C", "train,valid,test proportions (969,30,1)"},
    {"tokenizer-type", MT_ARG_STRING, F(tokenizer_type), "S", "CharLevel"},
    MT_SPECS_BPE_FILES,
    MT_SPECS_BACKEND,
    {"tensor-model-parallel-size", MT_ARG_INT, F(tp), "N", "tensor parallelism (1)"},
    {"pipeline-model-parallel-size", MT_ARG_INT, F(pp), "N", "pipeline parallelism (1)"},
    {"ddp-bucket-size", MT_ARG_LONG, F(ddp_bucket_size), "N", "elements per data-parallel gradient all-reduce (default max(40M, 1M x dp))"},
    {"sample-tokens", MT_ARG_INT, F(sample_tokens), "N", "tokens of text generated at the end (200; 0 = none)"},
    {"sample-temperature", MT_ARG_FLOAT, F(sample_temperature), "X", "temperature of that sample (0.8)"},
    {"no-progress", MT_ARG_BOOL, F(no_progress), NULL, "no progress display on the terminal"},
};
#undef F
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

static const char *SYNOPSIS =
    "Trains a GPT. Without --data-path: the teaching default, a character-level\n"
    "model on the shipped tiny Shakespeare (4 layers, 4 heads, hidden 128,\n"
    "sequence 64, micro-batch 12, 2000 iterations, lr 1e-3 with 100 warmup\n"
    "iterations and cosine decay to 1e-4, AdamW beta2 0.99); any flag given\n"
    "overrides that setting. With --data-path, defaults are Megatron-LM's and\n"
    "--num-layers, --hidden-size, --num-attention-heads, --seq-length,\n"
    "--micro-batch-size, --train-iters and --lr are required.";

static void set_megatron_defaults(struct train_args *a)
{
    memset(a, 0, sizeof *a);
    a->make_vocab_divisible_by = 128;
    a->init_method_std = 0.02f;
    a->lr = -1;
    a->min_lr = 0.0f;
    a->lr_decay_style = "linear";
    a->optimizer = "adam";
    a->adam_beta1 = 0.9f;
    a->adam_beta2 = 0.999f;
    a->adam_eps = 1e-8f;
    a->weight_decay = 0.01f;
    a->clip_grad = 1.0f;
    a->seed = 1234;
    a->log_interval = 100;
    a->eval_interval = 1000;
    a->eval_iters = 100;
    a->ckpt_step = -1;
    a->split = "969,30,1";
    a->tokenizer_type = "CharLevel";
    a->backend = "cpu";
    a->tp = a->pp = 1;
    a->sample_tokens = 200;
    a->sample_temperature = 0.8f;
}

/* The teaching preset, applied to every flag the user did not give. */
static void apply_teaching_preset(struct train_args *a, const unsigned char *given)
{
#define SET(flag, field, value) \
    if (!given[mt_args_find(SPECS, NSPECS, flag)]) a->field = value
    SET("num-layers", num_layers, 4);
    SET("num-attention-heads", num_heads, 4);
    SET("hidden-size", hidden_size, 128);
    SET("seq-length", seq_length, 64);
    SET("micro-batch-size", micro_batch_size, 12);
    SET("train-iters", train_iters, 2000);
    SET("lr", lr, 1e-3f);
    SET("min-lr", min_lr, 1e-4f);
    SET("lr-warmup-iters", lr_warmup_iters, 100);
    SET("lr-decay-style", lr_decay_style, "cosine");
    SET("adam-beta2", adam_beta2, 0.99f);
    SET("split", split, "90,10,0");
    SET("eval-interval", eval_interval, 500);
    SET("eval-iters", eval_iters, 20);
#undef SET
}

static void require(const unsigned char *given)
{
    const char *req[] = {"num-layers", "hidden-size", "num-attention-heads", "seq-length",
                         "micro-batch-size", "train-iters", "lr"};
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
        if (!given[mt_args_find(SPECS, NSPECS, req[i])])
            mt_user_error("with --data-path the model and run are described by flags, as in Megatron-LM; "
                          "without --data-path the teaching default fills them in",
                          "--%s is required with --data-path", req[i]);
}

static void validate(struct train_args *a)
{
    char hint[256];
#define POS(flag, v) \
    if ((v) < 1) mt_user_error(NULL, "--%s must be a positive integer (got %ld)", flag, (long)(v))
    POS("num-layers", a->num_layers);
    POS("hidden-size", a->hidden_size);
    POS("num-attention-heads", a->num_heads);
    POS("seq-length", a->seq_length);
    POS("micro-batch-size", a->micro_batch_size);
    POS("train-iters", a->train_iters);
    POS("make-vocab-size-divisible-by", a->make_vocab_divisible_by);
    POS("log-interval", a->log_interval);
#undef POS
    if (a->hidden_size % a->num_heads != 0) {
        snprintf(hint, sizeof hint, "choose --num-attention-heads dividing %d, e.g. %d",
                 a->hidden_size, a->hidden_size % 4 == 0 ? 4 : 1);
        mt_user_error(hint, "--hidden-size (%d) is not divisible by --num-attention-heads (%d)",
                      a->hidden_size, a->num_heads);
    }
    if (a->ffn_hidden_size == 0) a->ffn_hidden_size = 4 * a->hidden_size;
    if (a->ffn_hidden_size < 1) mt_user_error(NULL, "--ffn-hidden-size must be positive");
    if (a->max_pos == 0) a->max_pos = a->seq_length;
    if (a->seq_length > a->max_pos) {
        snprintf(hint, sizeof hint, "raise --max-position-embeddings to at least %d or lower --seq-length",
                 a->seq_length);
        mt_user_error(hint, "--seq-length (%d) is larger than --max-position-embeddings (%d)",
                      a->seq_length, a->max_pos);
    }
    if (a->global_batch_size == 0) a->global_batch_size = a->micro_batch_size;
    if (a->global_batch_size < 1 || a->global_batch_size % a->micro_batch_size != 0) {
        snprintf(hint, sizeof hint, "use a multiple of %d, e.g. %d", a->micro_batch_size,
                 a->micro_batch_size * 2);
        mt_user_error(hint, "--global-batch-size (%d) is not a multiple of --micro-batch-size (%d)",
                      a->global_batch_size, a->micro_batch_size);
    }
    if (!(a->lr >= 0)) mt_user_error(NULL, "--lr must be given and non-negative");
    if (a->min_lr < 0 || a->min_lr > a->lr)
        mt_user_error("--min-lr must lie between 0 and --lr", "--min-lr %g is not in [0, %g]",
                      a->min_lr, a->lr);
    if (mt_lr_decay_parse(a->lr_decay_style) < 0)
        mt_user_error("use constant, linear or cosine", "unknown --lr-decay-style '%s'",
                      a->lr_decay_style);
    if (a->lr_decay_iters == 0) a->lr_decay_iters = a->train_iters;
    if (a->lr_warmup_iters < 0 || a->lr_decay_iters < 0)
        mt_user_error(NULL, "--lr-warmup-iters and --lr-decay-iters must not be negative");
    if (strcmp(a->optimizer, "adam") != 0)
        mt_user_error("this version has --optimizer adam (AdamW)", "unknown --optimizer '%s'",
                      a->optimizer);
    if (a->adam_beta1 < 0 || a->adam_beta1 >= 1 || a->adam_beta2 < 0 || a->adam_beta2 >= 1)
        mt_user_error(NULL, "--adam-beta1 and --adam-beta2 must lie in [0, 1)");
    if (a->adam_eps <= 0) mt_user_error(NULL, "--adam-eps must be positive");
    if (a->eval_interval < 0 || a->eval_iters < 0 || a->save_interval < 0)
        mt_user_error(NULL, "--eval-interval, --eval-iters and --save-interval must not be negative");
    if (a->save_interval > 0 && !a->save)
        mt_user_error("add --save DIR", "--save-interval needs --save");
    if (a->tp < 1 || a->pp < 1)
        mt_user_error(NULL, "--tensor-model-parallel-size and --pipeline-model-parallel-size must be positive");
    if (a->ddp_bucket_size < 0) mt_user_error(NULL, "--ddp-bucket-size must not be negative");
    if (a->sample_tokens < 0) mt_user_error(NULL, "--sample-tokens must not be negative");
}

/* ---- progress display --------------------------------------------------------- */

struct progress {
    int on;
    double t0;
};

static void progress_clear(struct progress *p)
{
    if (p->on) fputs("\r\033[K", stderr);
}

static void progress_show(struct progress *p, long it, long total, long it0, float loss)
{
    if (!p->on) return;
    double el = mt_now() - p->t0;
    double eta = it > it0 ? el / (double)(it - it0) * (double)(total - it) : 0;
    int width = 30, fill = (int)((double)width * (double)it / (double)total);
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r\033[K[%s] %ld/%ld loss %.4f  eta %dm%02ds", bar, it, total, loss,
            (int)eta / 60, (int)eta % 60);
    fflush(stderr);
}

/* ---- the run ----------------------------------------------------------------------- */

struct run {
    struct train_args a;
    mt_backend *be;
    struct mt_groups grp;
    int printer;           /* world rank 0 prints; the others stay quiet */
    int n_micro;           /* micro-batches per iteration on this data-parallel rank */
    struct mt_tokenizer tok;
    int32_t *all_tokens;
    size_t ntok;
    struct mt_stream_range range[3];
    struct mt_dataset train_ds, valid_ds;
    int has_valid;
    struct mt_loader train_loader, valid_loader;
    struct mt_gpt_data gdata; /* Megatron .bin/.idx datasets */
    int has_gdata;
    struct mt_model_desc desc;
    struct mt_gpt model;
    struct mt_adamw opt;
    struct mt_lr_schedule sched;
    struct mt_pp_action *sched_actions;
    int n_actions;
    long iteration;
    uint64_t consumed;
    int32_t *tokens, *targets;
    FILE *json;
    struct progress prog;
    const char *data_name;
};

#define SAY(...) \
    do { \
        if (r->printer) { \
            progress_clear(&r->prog); \
            printf(__VA_ARGS__); \
            fflush(stdout); \
        } \
    } while (0)

/* --data-path is a text file (tokenized here, split by --split) or, as in
 * Megatron, one or more .bin/.idx prefixes with optional weights. */
static void load_data(struct run *r)
{
    struct mt_words *dp = &r->a.data_path;
    static char def[4200], idx[4300];
    const char *path = dp->n ? dp->v[0] : NULL;
    if (path) snprintf(idx, sizeof idx, "%s.idx", path);
    if (dp->n > 1 || (path && !mt_file_exists(path) && mt_file_exists(idx))) {
        const struct train_args *a = &r->a;
        const uint64_t gbs = (uint64_t)a->global_batch_size, ei = (uint64_t)a->eval_iters;
        const uint64_t nvalid = (a->eval_interval > 0 ? (uint64_t)(a->train_iters / a->eval_interval) + 1 : 1);
        /* Megatron's get_train_valid_test_num_samples */
        const uint64_t ns[3] = {(uint64_t)a->train_iters * gbs, nvalid * ei * gbs, ei * gbs};
        char err[1024];
        if (mt_gpt_data_build(&r->gdata, dp->n, dp->v, a->split, a->seq_length, (uint64_t)a->seed, ns,
                              r->tok.vocab_size, err, sizeof err) != 0)
            mt_user_error("--data-path takes PREFIX (of PREFIX.bin/.idx written by `megatron-c preprocess`) "
                          "or W1 PREFIX1 W2 PREFIX2 ...", "%s", err);
        r->has_gdata = 1;
        r->train_ds = r->gdata.split[0];
        r->has_valid = r->a.eval_iters > 0 && r->gdata.present[1] && r->gdata.split[1].num_samples > 0;
        if (r->has_valid) r->valid_ds = r->gdata.split[1];
        r->data_name = path;
        r->ntok = 0;
        if (r->printer) mt_gpt_data_describe(&r->gdata, stdout);
        /* the datasets are already shuffled (Megatron's shuffle_index) */
        mt_loader_init(&r->train_loader, &r->train_ds, (uint64_t)r->a.seed, 0);
        if (r->has_valid) mt_loader_init(&r->valid_loader, &r->valid_ds, (uint64_t)r->a.seed, 0);
        return;
    }
    if (!path) {
        snprintf(def, sizeof def, "%s/tinyshakespeare/input.txt", mt_data_dir());
        path = def;
    }
    r->data_name = path;
    size_t len;
    char *text = mt_read_file(path, &len, "--data-path");
    if (len == 0)
        mt_user_error("give a file with training text", "data file %s is empty", path);
    r->all_tokens = mt_tokenizer_encode_all(&r->tok, text, len, &r->ntok);
    free(text);
    size_t b[3], e[3];
    if (mt_split_ranges(r->a.split, r->ntok, b, e) != 0)
        mt_user_error("write three proportions, e.g. --split 969,30,1", "malformed --split '%s'",
                      r->a.split);
    for (int i = 0; i < 3; i++) r->range[i] = (struct mt_stream_range){r->all_tokens, b[i], e[i]};
    if (mt_dataset_stream(&r->train_ds, &r->range[0], "train", r->a.seq_length) != 0) {
        char hint[200];
        snprintf(hint, sizeof hint, "the train split needs more than --seq-length (%d) tokens; "
                 "use a larger file or a smaller --seq-length", r->a.seq_length);
        mt_user_error(hint, "data file %s has too few tokens for training (%zu in the train split of %zu)",
                      path, e[0] - b[0], r->ntok);
    }
    r->has_valid = r->a.eval_iters > 0 &&
                   mt_dataset_stream(&r->valid_ds, &r->range[1], "valid", r->a.seq_length) == 0;
    if (r->a.eval_iters > 0 && !r->has_valid && r->printer)
        mt_warn("the validation split of %s holds fewer than %d tokens: no validation",
                path, r->a.seq_length + 1);
    mt_loader_init(&r->train_loader, &r->train_ds, (uint64_t)r->a.seed, 1);
    if (r->has_valid) mt_loader_init(&r->valid_loader, &r->valid_ds, (uint64_t)r->a.seed, 0);
}

/* ---- checkpoints: whole tensors, gathered to world rank 0 ------------------- */

static void save_checkpoint(struct run *r)
{
    mt_backend *be = r->be;
    const struct mt_groups *G = &r->grp;
    struct mt_kv kv = {0};
    mt_model_desc_to_kv(&r->desc, &kv);
    mt_kv_set(&kv, "seq_length", "%d", r->a.seq_length);
    mt_kv_set(&kv, "iteration", "%ld", r->iteration);
    mt_kv_set(&kv, "consumed_train_samples", "%llu", (unsigned long long)r->consumed);
    mt_kv_set(&kv, "optimizer_step", "%d", r->opt.step);
    mt_kv_set(&kv, "seed", "%ld", r->a.seed);
    mt_kv_set(&kv, "global_batch_size", "%d", r->a.global_batch_size);
    mt_kv_set(&kv, "lr", "%.9g", r->a.lr);
    mt_kv_set(&kv, "min_lr", "%.9g", r->a.min_lr);
    mt_kv_set(&kv, "lr_decay_style", "%s", r->a.lr_decay_style);
    mt_kv_set(&kv, "lr_warmup_iters", "%ld", r->a.lr_warmup_iters);
    mt_kv_set(&kv, "lr_decay_iters", "%ld", r->a.lr_decay_iters);
    mt_kv_set(&kv, "data_path", "%s", r->data_name);
    mt_kv_set(&kv, "backend", "%s", mt_backend_name(be));
    mt_kv_set(&kv, "saved_layout", "tp=%d pp=%d dp=%d", G->tp_size, G->pp_size, G->dp_size);
    mt_kv_set(&kv, "megatron_c_version", "%s", PACKAGE_VERSION);

    /* every rank walks the global table in the same order: the owner stage's
     * tp group gathers the shards, its (tp 0, dp 0) rank sends the whole
     * tensor to world rank 0, which writes it */
    struct mt_param_table gt;
    /* 12 tensors per layer plus 6 at most outside the layers */
    int *owner = malloc(((size_t)r->desc.gpt.num_layers * 12 + 8) * sizeof *owner);
    if (!owner) mt_die("out of memory");
    mt_gpt_global_table(&r->desc.gpt, G->pp_size, &gt, owner);
    size_t maxn = 0;
    for (int i = 0; i < gt.n; i++)
        if (gt.p[i].numel > maxn) maxn = gt.p[i].numel;
    float *host = malloc(maxn * sizeof(float)), *blocks_h = malloc(maxn * sizeof(float));
    float *dev = mt_alloc(be, maxn * sizeof(float));
    if (!host || !blocks_h) mt_die("out of memory");
    float *bases[3] = {r->model.params, r->opt.m, r->opt.v};
    const char *prefixes[3] = {"model/", "optim/exp_avg/", "optim/exp_avg_sq/"};
    struct mt_ckpt_writer *w = NULL;
    if (G->world_rank == 0) w = mt_ckpt_writer_open(r->a.save, r->iteration, &kv, (uint32_t)(3 * gt.n));
    for (int grp = 0; grp < 3; grp++)
        for (int i = 0; i < gt.n; i++) {
            const struct mt_param *gp = &gt.p[i];
            const int stage = owner[i];
            const int src = mt_grid_rank(G->tp_size, G->dp_size, 0, 0, stage);
            if (G->pp_rank == stage && G->dp_rank == 0) {
                const struct mt_param *p =
                    &r->model.table.p[mt_params_find(&r->model.table, gp->name)];
                mt_all_gather(be, G->tp, dev, bases[grp] + p->offset, p->numel, MT_DTYPE_F32);
                if (G->tp_rank == 0) {
                    /* the owner knows the split: it assembles the whole tensor */
                    mt_download(be, blocks_h, dev, gp->numel * sizeof(float));
                    mt_param_unshard(p, G->tp_size, blocks_h, host);
                    if (src != 0) {
                        mt_upload(be, dev, host, gp->numel * sizeof(float));
                        mt_send(be, G->world, dev, gp->numel, MT_DTYPE_F32, 0);
                    }
                }
            }
            if (G->world_rank == 0) {
                if (src != 0) {
                    mt_recv(be, G->world, dev, gp->numel, MT_DTYPE_F32, src);
                    mt_download(be, host, dev, gp->numel * sizeof(float));
                }
                char name[256];
                snprintf(name, sizeof name, "%s%s", prefixes[grp], gp->name);
                mt_ckpt_writer_tensor(w, name, gp, host);
            }
        }
    if (w) mt_ckpt_writer_close(w);
    mt_dealloc(be, dev);
    free(host);
    free(blocks_h);
    free(owner);
    mt_params_free(&gt);
    mt_kv_free(&kv);
    SAY(" saved checkpoint at iteration %7ld to %s\n", r->iteration, r->a.save);
}

static int kv_long(const struct mt_kv *kv, const char *key, long *out)
{
    const char *v = mt_kv_get(kv, key);
    if (!v) return 0;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || end == v) return 0;
    *out = x;
    return 1;
}

/* Every rank reads the (shared) checkpoint file itself and keeps its shards. */
static void load_checkpoint(struct run *r)
{
    long it = r->a.ckpt_step >= 0 ? r->a.ckpt_step : mt_ckpt_latest(r->a.load);
    if (it < 0) {
        if (!mt_is_dir(r->a.load))
            mt_user_error("check the path, or drop --load to start from scratch",
                          "--load directory %s does not exist", r->a.load);
        /* Megatron: a --load directory without a tracker starts from scratch
         * (the usual --save DIR --load DIR launch script on its first run) */
        if (r->printer)
            mt_warn("no checkpoint in %s (no latest_checkpointed_iteration.txt): starting from scratch",
                    r->a.load);
        return;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s", mt_ckpt_path(r->a.load, it));
    struct mt_kv kv = {0};
    mt_ckpt_read_meta(path, &kv);
    struct mt_model_desc ck;
    mt_model_desc_from_kv(&ck, &kv, path);
    mt_model_desc_check(&r->desc, &ck, path);
    int with_optim = !r->a.finetune && !r->a.no_load_optim;
    const struct mt_ckpt_group groups[] = {{"model/", r->model.params, 1},
                                           {"optim/exp_avg/", r->opt.m, with_optim},
                                           {"optim/exp_avg_sq/", r->opt.v, with_optim}};
    struct mt_param_table known;
    mt_gpt_global_table(&r->desc.gpt, 1, &known, NULL);
    mt_ckpt_read_tensors(path, &r->model.table, &known, groups, with_optim ? 3 : 1, r->be);
    mt_params_free(&known);
    if (!r->a.finetune) {
        long iter = 0, consumed = 0, step = 0;
        if (!kv_long(&kv, "iteration", &iter) || !kv_long(&kv, "consumed_train_samples", &consumed) ||
            !kv_long(&kv, "optimizer_step", &step))
            mt_user_error("the checkpoint is damaged", "%s: iteration, consumed_train_samples or "
                          "optimizer_step is missing", path);
        r->iteration = iter;
        r->consumed = (uint64_t)consumed;
        if (with_optim) r->opt.step = (int)step;
        long gbs;
        if (kv_long(&kv, "global_batch_size", &gbs) && gbs != r->a.global_batch_size && r->printer)
            mt_warn("--global-batch-size is %d here but was %ld when %s was saved",
                    r->a.global_batch_size, gbs, path);
    }
    const char *layout = mt_kv_get(&kv, "saved_layout");
    SAY(" loaded checkpoint %s at iteration %ld (consumed samples %llu%s%s)\n", path, r->iteration,
        (unsigned long long)r->consumed, layout ? ", saved under " : "", layout ? layout : "");
    mt_kv_free(&kv);
}

/* ---- one iteration: the pipeline schedule, then finalize the gradients ------ */

/* Global sample counter of micro-batch k of this data-parallel rank
 * (Megatron's sampler: chunks of mbs x dp, rank d takes [d*mbs, (d+1)*mbs)). */
static uint64_t micro_counter(const struct run *r, uint64_t base, int k)
{
    const uint64_t mbs = (uint64_t)r->a.micro_batch_size;
    return base + (uint64_t)k * mbs * (uint64_t)r->grp.dp_size + (uint64_t)r->grp.dp_rank * mbs;
}

/* Runs this stage's actions. Forward and backward micro-batches are counted
 * here (1F1B finishes them in order), so the combined send/receive steps
 * know which buffers they move. Returns the sum of the micro-batch losses
 * (last stage; 0 elsewhere). */
static double run_schedule(struct run *r, struct mt_loader *loader, uint64_t base, int n_micro,
                           int backward, const struct mt_pp_action *act, int nact)
{
    mt_backend *be = r->be;
    struct mt_gpt *m = &r->model;
    const int mbs = r->a.micro_batch_size, T = r->a.seq_length;
    const size_t nc = (size_t)mbs * T * r->desc.gpt.hidden_size;
    const int prev = r->grp.pp_rank - 1, next = r->grp.pp_rank + 1;
    mt_comm *pp = r->grp.pp;
    int nf = 0, nb = 0;
    double loss = 0.0;
    for (int i = 0; i < nact; i++) {
        const int fslot = nf % m->nslots, lslot = (nf + m->nslots - 1) % m->nslots;
        switch (act[i].kind) {
        case MT_PP_RECV_FWD: mt_recv(be, pp, mt_gpt_stage_input(m, fslot), nc, MT_DTYPE_F32, prev); break;
        case MT_PP_FWD:
            /* the first stage needs the tokens, the last the targets; middle stages neither */
            if (m->first || m->last)
                mt_loader_batch(loader, micro_counter(r, base, nf), mbs, r->tokens, r->targets);
            loss += mt_gpt_stage_forward(m, fslot, r->tokens, r->targets, mbs, T);
            nf++;
            break;
        case MT_PP_SEND_FWD: mt_send(be, pp, mt_gpt_stage_output(m, lslot), nc, MT_DTYPE_F32, next); break;
        case MT_PP_RECV_BWD: mt_recv(be, pp, mt_gpt_stage_dinput(m), nc, MT_DTYPE_F32, next); break;
        case MT_PP_BWD:
            MT_ASSERT(backward);
            mt_gpt_stage_backward(m, nb % m->nslots, 1.0f / (float)n_micro);
            nb++;
            break;
        case MT_PP_SEND_BWD: mt_send(be, pp, mt_gpt_stage_dinput(m), nc, MT_DTYPE_F32, prev); break;
        case MT_PP_SEND_FWD_RECV_BWD:
            mt_sendrecv(be, pp, mt_gpt_stage_output(m, lslot), next, mt_gpt_stage_dinput(m), next, nc,
                        MT_DTYPE_F32);
            break;
        case MT_PP_SEND_BWD_RECV_FWD:
            mt_sendrecv(be, pp, mt_gpt_stage_dinput(m), prev, mt_gpt_stage_input(m, fslot), prev, nc,
                        MT_DTYPE_F32);
            break;
        }
    }
    MT_ASSERT(nf == n_micro && nb == (backward ? n_micro : 0));
    return loss;
}

/* Forward-only schedule (validation): each micro-batch goes down the stages. */
static int forward_only_actions(const struct run *r, struct mt_pp_action *act, int n_micro)
{
    int n = 0;
    for (int k = 0; k < n_micro; k++) {
        if (r->grp.pp_rank > 0) act[n++] = (struct mt_pp_action){MT_PP_RECV_FWD, k, -1};
        act[n++] = (struct mt_pp_action){MT_PP_FWD, k, -1};
        if (r->grp.pp_rank < r->grp.pp_size - 1) act[n++] = (struct mt_pp_action){MT_PP_SEND_FWD, k, -1};
    }
    return n;
}

/* The mean over micro-batches and data-parallel ranks of the last stage's
 * losses, on every rank. */
static double reduce_loss(struct run *r, double loss_sum, int n_micro)
{
    double v = r->model.last ? loss_sum / n_micro : 0.0;
    v = mt_all_reduce_scalar(r->be, r->grp.pp, v, MT_REDOP_SUM);
    return mt_all_reduce_scalar(r->be, r->grp.dp, v, MT_REDOP_AVG);
}

/* Megatron finalize_model_grads: the tied embedding's two copies (first and
 * last stage) sum their gradients; data-parallel replicas average theirs in
 * buckets over the flat buffer. */
static void finalize_grads(struct run *r)
{
    mt_backend *be = r->be;
    struct mt_gpt *m = &r->model;
    if (r->grp.embd) {
        const struct mt_param *p = &m->table.p[mt_params_find(&m->table, "embedding.word_embeddings.weight")];
        mt_all_reduce(be, r->grp.embd, m->grads + p->offset, p->numel, MT_DTYPE_F32, MT_REDOP_SUM);
    }
    if (r->grp.dp_size > 1) {
        /* Megatron's default bucket: max(40M, 1M x dp) elements */
        size_t bucket = (size_t)r->a.ddp_bucket_size;
        if (bucket == 0) bucket = r->grp.dp_size > 40 ? (size_t)r->grp.dp_size * 1000000 : 40000000;
        for (size_t off = 0; off < m->table.total; off += bucket) {
            size_t n = m->table.total - off < bucket ? m->table.total - off : bucket;
            mt_all_reduce(be, r->grp.dp, m->grads + off, n, MT_DTYPE_F32, MT_REDOP_AVG);
        }
    }
}

static double evaluate(struct run *r)
{
    const int n_micro = r->n_micro;
    struct mt_pp_action *act = malloc((size_t)n_micro * 3 * sizeof *act);
    if (!act) mt_die("out of memory");
    int nact = forward_only_actions(r, act, n_micro);
    double sum = 0.0;
    for (long e = 0; e < r->a.eval_iters; e++)
        sum += reduce_loss(r, run_schedule(r, &r->valid_loader, (uint64_t)e * r->a.global_batch_size,
                                           n_micro, 0, act, nact), n_micro);
    free(act);
    return sum / (double)r->a.eval_iters;
}

static void log_eval(struct run *r, double val)
{
    SAY(" validation loss at iteration %ld | lm loss value: %.6E | lm loss PPL: %.6E |\n",
        r->iteration, val, exp(fmin(20.0, val)));
    if (r->json) {
        fprintf(r->json, "{\"iteration\": %ld, \"val_loss\": %.9g, \"val_ppl\": %.9g}\n",
                r->iteration, val, exp(fmin(20.0, val)));
        fflush(r->json);
    }
}

static void setup_parallel(struct run *r)
{
    struct train_args *a = &r->a;
    char err[256];
    if (mt_groups_init(&r->grp, r->be, a->tp, a->pp, err, sizeof err) != 0) {
        int ws = mt_comm_size(r->be, mt_comm_world(r->be));
        char hint[200];
        snprintf(hint, sizeof hint, "launch a multiple of %d processes with mpiexec -n N%s", a->tp * a->pp,
                 ws == 1 ? " (a build without MPI runs one process: ./configure --with-mpi)" : "");
        mt_user_error(hint, "%s", err);
    }
    r->printer = r->grp.world_rank == 0;
    const int dp = r->grp.dp_size;
    if (a->global_batch_size % (a->micro_batch_size * dp) != 0) {
        char hint[160];
        snprintf(hint, sizeof hint, "use a multiple of %d, e.g. %d", a->micro_batch_size * dp,
                 a->micro_batch_size * dp * 2);
        mt_user_error(hint, "--global-batch-size (%d) is not divisible by --micro-batch-size (%d) x "
                      "data-parallel size (%d)", a->global_batch_size, a->micro_batch_size, dp);
    }
    r->n_micro = a->global_batch_size / (a->micro_batch_size * dp);
    if (mt_gpt_check_parallel(&r->desc.gpt, a->tp, a->pp, err, sizeof err) != 0)
        mt_user_error("choose sizes that divide evenly", "%s", err);
}

int mt_cmd_train(int argc, char **argv)
{
    struct run R, *r = &R;
    memset(r, 0, sizeof *r);
    struct train_args *a = &r->a;
    unsigned char given[NSPECS];
    memset(given, 0, sizeof given);
    set_megatron_defaults(a);
    mt_args_parse(SPECS, NSPECS, a, given, argc, argv, 2, "train", SYNOPSIS);
    if (!a->data_path.n) apply_teaching_preset(a, given);
    else require(given);
    validate(a);

    r->be = mt_run_backend(a->backend, a->tf32);
    mt_tokenizer_open(&r->tok, a->tokenizer_type, a->vocab_file, a->merge_file);

    struct mt_gpt_config *g = &r->desc.gpt;
    g->num_layers = a->num_layers;
    g->hidden_size = a->hidden_size;
    g->num_heads = a->num_heads;
    g->ffn_hidden_size = a->ffn_hidden_size;
    g->max_position_embeddings = a->max_pos;
    g->vocab_size = r->tok.vocab_size;
    g->padded_vocab_size = mt_gpt_padded_vocab(r->tok.vocab_size, a->make_vocab_divisible_by);
    g->init_method_std = a->init_method_std;
    r->desc.make_vocab_size_divisible_by = a->make_vocab_divisible_by;
    r->desc.tokenizer_type = r->tok.type;
    /* the layout is checked before any work */
    setup_parallel(r);
    load_data(r);

    const int mbs = a->micro_batch_size, T = a->seq_length, n_micro = r->n_micro;
    const struct mt_groups *G = &r->grp;
    struct mt_gpt_par par = {G->tp, G->tp_size, G->tp_rank, G->pp_size, G->pp_rank};
    /* 1F1B keeps at most (stages - stage) micro-batches in flight */
    int nslots = G->pp_size - G->pp_rank < n_micro ? G->pp_size - G->pp_rank : n_micro;
    mt_gpt_init_parallel(&r->model, g, r->be, mbs, T, &par, nslots);
    struct mt_adamw_config oc = {a->adam_beta1, a->adam_beta2, a->adam_eps, a->weight_decay,
                                 a->clip_grad};
    mt_adamw_init(&r->opt, &oc, r->be, &r->model.table);
    r->opt.norm_comm = G->mp;
    r->sched = (struct mt_lr_schedule){a->lr, a->min_lr, (int)a->lr_warmup_iters,
                                       (int)a->lr_decay_iters,
                                       (enum mt_lr_decay)mt_lr_decay_parse(a->lr_decay_style)};
    int cap = MT_PP_MAX_ACTIONS(n_micro);
    r->sched_actions = malloc((size_t)cap * sizeof *r->sched_actions);
    if (!r->sched_actions) mt_die("out of memory");
    r->n_actions = mt_pp_schedule_1f1b(r->sched_actions, cap, G->pp_size, G->pp_rank, n_micro);
    MT_ASSERT(r->n_actions > 0);
    mt_gpt_init_weights(&r->model, (uint64_t)a->seed);
    if (a->load) load_checkpoint(r);

    if (a->log_json && r->printer) {
        r->json = fopen(a->log_json, r->iteration > 0 ? "a" : "w");
        if (!r->json) mt_user_error("check the path given to --log-json", "cannot open %s for writing",
                                    a->log_json);
    }
    r->tokens = malloc((size_t)mbs * T * sizeof(int32_t));
    r->targets = malloc((size_t)mbs * T * sizeof(int32_t));
    if (!r->tokens || !r->targets) mt_die("out of memory");

    SAY("megatron-c train: GPT %d layers, hidden %d, %d heads, seq %d, vocab %d (padded %d), "
        "%.2fM parameters\n", g->num_layers, g->hidden_size, g->num_heads, T, g->vocab_size,
        g->padded_vocab_size, (double)mt_gpt_param_count(g) / 1e6);
    if (!r->has_gdata)
        SAY(" data: %s (%s tokenizer, %zu tokens; %zu train / %zu valid samples)\n", r->data_name,
            r->tok.type, r->ntok, r->train_ds.num_samples, r->has_valid ? r->valid_ds.num_samples : 0);
    SAY(" backend %s%s | %d process%s: tensor-parallel %d x pipeline-parallel %d x data-parallel %d | "
        "micro batch %d x %d micro-batches x %d = global batch %d | %ld iterations\n",
        mt_backend_name(r->be), a->tf32 ? " (TF32 GEMMs)" : "", G->world_size, G->world_size > 1 ? "es" : "", G->tp_size,
        G->pp_size, G->dp_size, mbs, n_micro, G->dp_size, a->global_batch_size, a->train_iters);

    r->prog.on = r->printer && !a->no_progress && isatty(2) && getenv("TERM") &&
                 strcmp(getenv("TERM"), "dumb") != 0;
    r->prog.t0 = mt_now();
    const long it0 = r->iteration;
    double loss_sum = 0.0, t_interval = mt_now(), comm_s0;
    uint64_t comm_b0;
    mt_comm_stats(&comm_b0, &comm_s0);
    long n_interval = 0;
    long last_saved = -1;
    while (r->iteration < a->train_iters) {
        const float lr = mt_lr_at(&r->sched, r->iteration); /* Megatron: lr of step k-1 */
        double loss = run_schedule(r, &r->train_loader, r->consumed, n_micro, 1, r->sched_actions,
                                   r->n_actions);
        finalize_grads(r);
        loss = reduce_loss(r, loss, n_micro);
        double norm = mt_adamw_step(&r->opt, r->model.params, r->model.grads, lr, 1.0f);
        if (!isfinite(loss) || !isfinite(norm)) {
            progress_clear(&r->prog);
            mt_user_error("lower --lr, keep --clip-grad, or resume from the last checkpoint; "
                          "nothing was saved after this point",
                          "iteration %ld: loss %g, gradient norm %g are not finite", r->iteration + 1,
                          loss, norm);
        }
        r->iteration++;
        r->consumed += (uint64_t)a->global_batch_size;
        loss_sum += loss;
        n_interval++;

        if (r->iteration % a->log_interval == 0 || r->iteration == a->train_iters) {
            double dt = mt_now() - t_interval, comm_s;
            uint64_t comm_b;
            mt_comm_stats(&comm_b, &comm_s);
            double ms = 1000.0 * dt / (double)n_interval;
            double tps = (double)n_interval * a->global_batch_size * T / dt;
            double avg = loss_sum / (double)n_interval;
            double comm_ms = 1000.0 * (comm_s - comm_s0) / (double)n_interval;
            double comm_mb = (double)(comm_b - comm_b0) / (double)n_interval / 1e6;
            if (G->world_size > 1)
                SAY(" iteration %8ld/%8ld | consumed samples: %10llu | elapsed time per iteration (ms): %.1f | "
                    "tokens/s: %.0f | learning rate: %.6E | global batch size: %5d | lm loss: %.6E | "
                    "grad norm: %.3f | comm (ms): %.1f | comm sent (MB): %.2f |\n", r->iteration,
                    a->train_iters, (unsigned long long)r->consumed, ms, tps, lr, a->global_batch_size,
                    avg, norm, comm_ms, comm_mb);
            else
                SAY(" iteration %8ld/%8ld | consumed samples: %10llu | elapsed time per iteration (ms): %.1f | "
                    "tokens/s: %.0f | learning rate: %.6E | global batch size: %5d | lm loss: %.6E | "
                    "grad norm: %.3f |\n", r->iteration, a->train_iters, (unsigned long long)r->consumed,
                    ms, tps, lr, a->global_batch_size, avg, norm);
            if (r->json) {
                fprintf(r->json, "{\"iteration\": %ld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, "
                        "\"tokens_per_sec\": %.1f, \"ms_per_iter\": %.3f, \"consumed_samples\": %llu, "
                        "\"comm_ms\": %.3f, \"comm_mb\": %.4f}\n", r->iteration, avg, lr, norm, tps, ms,
                        (unsigned long long)r->consumed, comm_ms, comm_mb);
                fflush(r->json);
            }
            loss_sum = 0;
            n_interval = 0;
            t_interval = mt_now();
            comm_s0 = comm_s;
            comm_b0 = comm_b;
        }
        if (r->has_valid && a->eval_interval > 0 && r->iteration % a->eval_interval == 0 &&
            r->iteration != a->train_iters) {
            double t = mt_now();
            log_eval(r, evaluate(r));
            t_interval += mt_now() - t; /* validation time is not training time */
        }
        if (a->save && a->save_interval > 0 && r->iteration % a->save_interval == 0) {
            double t = mt_now();
            save_checkpoint(r);
            last_saved = r->iteration;
            t_interval += mt_now() - t;
        }
        progress_show(&r->prog, r->iteration, a->train_iters, it0, (float)loss);
    }
    progress_clear(&r->prog);
    if (r->has_valid) log_eval(r, evaluate(r));
    if (a->save && last_saved != r->iteration) save_checkpoint(r);
    SAY(" training done: %ld iterations in %.1f s\n", r->iteration - it0, mt_now() - r->prog.t0);

    if (a->sample_tokens > 0 && G->world_size == 1) {
        /* a short sample from the trained model, continuing a newline */
        struct mt_gpt gen;
        mt_gpt_init(&gen, g, r->be, 1, a->max_pos);
        mt_copy(r->be, gen.params, r->model.params, r->model.table.total * sizeof(float));
        struct mt_rng rng;
        mt_rng_seed(&rng, (uint64_t)a->seed, 3);
        size_t np;
        int32_t *prompt = mt_tokenizer_encode_all(&r->tok, "\n", 1, &np);
        printf(" sample (temperature %.2f):\n", a->sample_temperature);
        fflush(stdout);
        mt_generate(&gen, &r->tok, prompt, (int)np, a->sample_tokens, a->sample_temperature, 0,
                    1.0f, &rng, stdout);
        printf("\n");
        free(prompt);
        mt_gpt_free(&gen);
    }

    if (r->json) fclose(r->json);
    free(r->tokens);
    free(r->targets);
    free(r->sched_actions);
    mt_loader_free(&r->train_loader);
    if (r->has_valid) mt_loader_free(&r->valid_loader);
    free(r->all_tokens);
    if (r->has_gdata) mt_gpt_data_free(&r->gdata);
    mt_adamw_free(&r->opt);
    mt_gpt_free(&r->model);
    mt_groups_free(&r->grp, r->be);
    mt_tokenizer_close(&r->tok);
    mt_backend_free(r->be);
    return 0;
}
