/* trainer.c: the training loop (see trainer.h). */
#include "train/trainer.h"
#include "plot/chart.h"
#include "ckpt/dist.h"
#include "ckpt/model_meta.h"
#include "core/error.h"
#include "core/io.h"
#include "core/rng.h"
#include "core/tensorboard.h"
#include "data/bert_dataset.h"
#include "data/dataset.h"
#include "data/gpt_dataset.h"
#include "data/tokenizer.h"
#include "infer/generate.h"
#include "model/model.h"
#include "optim/loss_scale.h"
#include "optim/optimizer.h"
#include "parallel/grads.h"
#include "parallel/grid.h"
#include "parallel/pipeline.h"
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

void mt_train_config(const struct mt_train_args *a, int vocab_size,
                     struct mt_transformer_config *c)
{
    mt_config_defaults(c);
    c->num_layers = a->num_layers;
    c->hidden_size = a->hidden_size;
    c->num_attention_heads = a->num_heads;
    /* Megatron: --num-query-groups counts only with --group-query-attention */
    c->num_query_groups = a->group_query_attention ? a->num_query_groups : 0;
    c->kv_channels = a->kv_channels;
    c->ffn_hidden_size = a->ffn_hidden_size;
    c->gated_linear_unit = a->swiglu;
    c->normalization = (enum mt_normalization)mt_normalization_parse(a->normalization);
    c->layernorm_epsilon = a->norm_epsilon;
    c->position_embedding_type =
        (enum mt_position_embedding)mt_position_embedding_parse(a->position_embedding_type);
    /* the older spellings (Megatron: deprecated) */
    if (a->use_rotary_position_embeddings) c->position_embedding_type = MT_POS_ROPE;
    else if (a->no_position_embedding && c->position_embedding_type == MT_POS_LEARNED_ABSOLUTE)
        c->position_embedding_type = MT_POS_NONE;
    c->rotary_base = a->rotary_base;
    c->rotary_percent = a->rotary_percent;
    c->rope_scaling = a->use_rope_scaling;
    c->rope_scaling_factor = a->rope_scaling_factor;
    c->add_bias_linear = !a->disable_bias_linear;
    c->add_qkv_bias = a->add_qkv_bias;
    c->untie_embeddings_and_output_weights = a->untie_embeddings;
    c->hidden_dropout = a->hidden_dropout;
    c->attention_dropout = a->attention_dropout;
    c->max_position_embeddings = a->max_pos;
    c->vocab_size = vocab_size;
    c->padded_vocab_size = mt_config_padded_vocab(vocab_size, a->make_vocab_divisible_by);
    c->init_method_std = a->init_method_std;
    if (a->model && strcmp(a->model, "bert") == 0) {
        /* Megatron's BertModel: token types, bidirectional, the masked-LM
         * head, the pooler and the binary head unless --bert-no-binary-head */
        c->type_vocab_size = 2;
        c->attn_mask_type = MT_ATTN_MASK_NONE;
        c->activation = a->openai_gelu ? MT_ACTIVATION_GELU_TANH : MT_ACTIVATION_GELU;
        c->post_layernorm = a->post_layernorm;
        c->lm_head = MT_LM_HEAD_BERT;
        c->add_pooler = !a->bert_no_binary_head;
        c->seq_head = a->bert_no_binary_head ? MT_SEQ_HEAD_NONE : MT_SEQ_HEAD_BINARY;
    }
    mt_config_derive(c);
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
    struct mt_train_args *a;
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
    int bert;                 /* --model bert: BERT samples (bdata) */
    struct mt_bert_data bdata;
    unsigned char *is_cont;   /* the tokenizer's "##" pieces, for whole-word masking */
    int split;                /* the split being scheduled: 0 train, 1 valid */
    int32_t *types, *lengths, *labels;
    int32_t *doc_start, *positions; /* --reset-attention-mask, --reset-position-ids */
    float *loss_mask;
    double lm_sum, sop_sum;   /* the last stage's loss parts over the scheduled micro-batches */
    struct mt_model_desc desc;
    struct mt_model model;
    struct mt_optimizer opt;
    struct mt_lr_schedule sched;
    enum mt_dtype precision;  /* of the GEMMs: f32, or bf16 / f16 (--bf16, --fp16) */
    int scaled;               /* a loss scaler is in use (--fp16, or --loss-scale) */
    struct mt_loss_scaler scaler;
    long skipped;             /* iterations skipped for inf/NaN gradients: the lr schedule counts the others */
    struct mt_trace curve;    /* what the log lines said, for --plot and the sparkline */
    int exited;               /* stopped by --exit-interval or --exit-duration-in-mins */
    struct mt_pp_action *sched_actions, *eval_actions;
    int n_actions, n_eval_actions;
    long iteration;
    uint64_t consumed;
    long last_good;      /* iteration of the last checkpoint saved or loaded; -1: none */
    int last_good_saved; /* ... and it is in --save (else in --load) */
    size_t mem_expected; /* backend bytes allocated before the first step */
    uint64_t dropout_seed;
    int32_t *tokens, *targets;
    FILE *json;
    struct mt_tb *tb;         /* --tensorboard-dir, rank 0 */
    struct progress prog;
    const char *data_name;
    /* the step being scheduled (pp_ops) */
    struct mt_loader *loader;
    uint64_t base;
};

#define SAY(...) \
    do { \
        if (r->printer) { \
            progress_clear(&r->prog); \
            printf(__VA_ARGS__); \
            mt_log_flush(stdout, "standard output"); \
        } \
    } while (0)

/* Megatron's get_train_valid_test_num_samples */
static void num_samples(const struct mt_train_args *a, uint64_t ns[3])
{
    const uint64_t gbs = (uint64_t)a->global_batch_size, ei = (uint64_t)a->eval_iters;
    const uint64_t nvalid = (a->eval_interval > 0 ? (uint64_t)(a->train_iters / a->eval_interval) + 1 : 1);
    ns[0] = (uint64_t)a->train_iters * gbs;
    ns[1] = nvalid * ei * gbs;
    ns[2] = ei * gbs;
}

/* BERT: sentence-level .bin/.idx prefixes (data/bert_dataset.h) */
static void load_bert_data(struct run *r)
{
    const struct mt_train_args *a = r->a;
    const struct mt_tokenizer *t = &r->tok;
    r->is_cont = calloc((size_t)t->vocab_size, 1);
    if (!r->is_cont) mt_die("out of memory");
    char piece[MT_TOKEN_MAX_BYTES];
    for (int id = 0; id < t->vocab_size; id++) /* a piece that decodes without its space */
        r->is_cont[id] = t->decode_token(t, id, piece) > 0 && piece[0] != ' ';
    const struct mt_bert_config cfg = {a->seq_length, (uint64_t)a->seed, a->short_seq_prob, a->mask_prob,
                                       !a->bert_no_binary_head, t->cls, t->sep, t->mask, t->pad,
                                       t->vocab_size, r->is_cont};
    uint64_t ns[3];
    num_samples(a, ns);
    ns[2] = 0; /* the test split is not read by training */
    char err[1024];
    if (mt_bert_data_build(&r->bdata, a->data_path.n, a->data_path.v, a->split, &cfg, ns, err, sizeof err) != 0)
        mt_user_error("--model bert reads PREFIX_text_sentence (of PREFIX_text_sentence.bin/.idx written by "
                      "`megatron-c preprocess --split-sentences`) or W1 PREFIX1 W2 PREFIX2 ...", "%s", err);
    r->has_valid = a->eval_iters > 0 && r->bdata.present[1] && r->bdata.size[1] > 0;
    r->data_name = a->data_path.v[0];
    if (r->printer) mt_bert_data_describe(&r->bdata, stdout);
}

/* A --data-path naming a .bin or .idx file: Megatron's prefix given with its
 * extension, or a token file of nanoGPT or llm.c, which would otherwise be
 * read as text. */
static void refuse_token_file(const char *path)
{
    const size_t n = strlen(path);
    if (n < 4 || (strcmp(path + n - 4, ".bin") != 0 && strcmp(path + n - 4, ".idx") != 0)) return;
    const char *partner = strcmp(path + n - 4, ".bin") == 0 ? ".idx" : ".bin";
    char other[4200];
    snprintf(other, sizeof other, "%.*s%s", (int)(n - 4), path, partner);
    if (mt_file_exists(other))
        mt_user_error("give the prefix without the extension, as Megatron does: --data-path PREFIX",
                      "--data-path %s names one file of the dataset %.*s (.bin/.idx)", path, (int)(n - 4), path);
    mt_user_error("megatron-c reads text files and Megatron's .bin/.idx pairs; token files of nanoGPT or llm.c "
                  "are not read: run `megatron-c preprocess` on the text they came from",
                  "--data-path %s is a %s file without its %s partner", path, path + n - 3, partner);
}

/* --data-path is a text file (tokenized here, split by --split) or, as in
 * Megatron, one or more .bin/.idx prefixes with optional weights. */
static void load_data(struct run *r)
{
    const struct mt_train_args *a = r->a;
    const struct mt_words *dp = &a->data_path;
    static char def[4200], idx[4300];
    const char *path = dp->n ? dp->v[0] : NULL;
    if (path) snprintf(idx, sizeof idx, "%s.idx", path);
    if (r->bert) {
        load_bert_data(r);
        return;
    }
    const int per_split = a->split_path[0].n > 0;
    if (per_split || dp->n > 1 || (path && !mt_file_exists(path) && mt_file_exists(idx))) {
        uint64_t ns[3];
        num_samples(a, ns);
        char err[1024];
        int rc;
        if (per_split) { /* Megatron's blend per split: each dataset used whole, no --split */
            const int nw[3] = {a->split_path[0].n, a->split_path[1].n, a->split_path[2].n};
            char **const ws[3] = {a->split_path[0].v, a->split_path[1].v, a->split_path[2].v};
            rc = mt_gpt_data_build_per_split(&r->gdata, nw, ws, a->seq_length, (uint64_t)a->seed, ns,
                                             r->tok.vocab_size, err, sizeof err);
            path = ws[0][nw[0] > 1 ? 1 : 0];
        } else {
            rc = mt_gpt_data_build(&r->gdata, dp->n, dp->v, a->split, a->seq_length, (uint64_t)a->seed, ns,
                                   r->tok.vocab_size, err, sizeof err);
        }
        if (rc != 0)
            mt_user_error("the data paths take PREFIX (of PREFIX.bin/.idx written by `megatron-c preprocess`) "
                          "or W1 PREFIX1 W2 PREFIX2 ...", "%s", err);
        r->has_gdata = 1;
        r->train_ds = r->gdata.split[0];
        r->has_valid = a->eval_iters > 0 && r->gdata.present[1] && r->gdata.split[1].num_samples > 0;
        if (r->has_valid) r->valid_ds = r->gdata.split[1];
        r->data_name = path;
        r->ntok = 0;
        if (r->printer) {
            mt_gpt_data_describe(&r->gdata, stdout);
            printf(" tokenizer: %s, vocabulary %d\n", r->tok.type, r->tok.vocab_size);
        }
        /* the datasets are already shuffled (Megatron's shuffle_index) */
        mt_loader_init(&r->train_loader, &r->train_ds, (uint64_t)a->seed, 0);
        if (r->has_valid) mt_loader_init(&r->valid_loader, &r->valid_ds, (uint64_t)a->seed, 0);
        return;
    }
    if (!path) {
        snprintf(def, sizeof def, "%s/tinyshakespeare/input.txt", mt_data_dir());
        path = def;
    }
    refuse_token_file(path);
    r->data_name = path;
    size_t len;
    char *text = mt_read_file(path, &len, "--data-path");
    if (len == 0)
        mt_user_error("give a file with training text", "data file %s is empty", path);
    /* text has no NUL bytes; token files and other binaries do */
    if (memchr(text, 0, len < 65536 ? len : 65536))
        mt_user_error("--data-path takes a text file or the PREFIX of a .bin/.idx pair written by "
                      "`megatron-c preprocess` (or Megatron's preprocess_data.py)",
                      "data file %s is not text (it holds NUL bytes)", path);
    r->all_tokens = mt_tokenizer_encode_all(&r->tok, text, len, &r->ntok);
    free(text);
    size_t b[3], e[3];
    if (mt_split_ranges(a->split, r->ntok, b, e) != 0)
        mt_user_error("write three proportions, e.g. --split 969,30,1", "malformed --split '%s'",
                      a->split);
    for (int i = 0; i < 3; i++) r->range[i] = (struct mt_stream_range){r->all_tokens, b[i], e[i]};
    if (mt_dataset_stream(&r->train_ds, &r->range[0], "train", a->seq_length) != 0) {
        char hint[200];
        snprintf(hint, sizeof hint, "the train split needs more than --seq-length (%d) tokens; "
                 "use a larger file or a smaller --seq-length", a->seq_length);
        mt_user_error(hint, "data file %s has too few tokens for training (%zu in the train split of %zu)",
                      path, e[0] - b[0], r->ntok);
    }
    r->has_valid = a->eval_iters > 0 &&
                   mt_dataset_stream(&r->valid_ds, &r->range[1], "valid", a->seq_length) == 0;
    if (a->eval_iters > 0 && !r->has_valid && r->printer)
        mt_warn("the validation split of %s holds fewer than %d tokens: no validation",
                path, a->seq_length + 1);
    mt_loader_init(&r->train_loader, &r->train_ds, (uint64_t)a->seed, 1);
    if (r->has_valid) mt_loader_init(&r->valid_loader, &r->valid_ds, (uint64_t)a->seed, 0);
}

/* ---- checkpoints: whole tensors, gathered to world rank 0 ------------------- */

/* the hint of a run that diverged: where to resume from */
static const char *resume_hint(const struct run *r)
{
    static char hint[4400];
    if (r->last_good >= 0)
        snprintf(hint, sizeof hint, "the last good checkpoint is iteration %ld in %s: resume from it "
                 "(--load, --ckpt-step %ld) with a lower --lr, or keep --clip-grad", r->last_good,
                 r->last_good_saved ? r->a->save : r->a->load, r->last_good);
    else
        snprintf(hint, sizeof hint, "no checkpoint was written; lower --lr or keep --clip-grad");
    return hint;
}

/* The optimizer's state as whole buffers for a checkpoint: its own
 * buffers, or, distributed, gathered ones (gather = 1; 0 only allocates,
 * for a load to fill and scatter) */
static void whole_state(struct run *r, float **whole, int gather)
{
    for (int i = 0; i < r->opt.nstate; i++) {
        whole[i] = r->opt.state[i].base;
        if (!r->opt.shard.dp) continue;
        const size_t bytes = r->opt.state[i].table.total * sizeof(float);
        whole[i] = mt_alloc(r->be, bytes);
        mt_memset0(r->be, whole[i], bytes);
    }
    if (gather && r->opt.shard.dp) mt_optim_gather_state(&r->opt, whole);
}

static void whole_state_free(struct run *r, float **whole)
{
    for (int i = 0; r->opt.shard.dp && i < r->opt.nstate; i++) mt_dealloc(r->be, whole[i]);
}

static void save_checkpoint(struct run *r)
{
    const struct mt_train_args *a = r->a;
    const struct mt_groups *G = &r->grp;
    /* finite or nothing: a diverged model never replaces a good checkpoint
     * (the norm is summed over the model-parallel group: every rank agrees) */
    const double pnorm = mt_grad_norm(r->be, &r->model.table, r->model.params, r->opt.norm_comm);
    if (!isfinite(pnorm)) {
        progress_clear(&r->prog);
        mt_user_error(resume_hint(r), "iteration %ld: the weights are not finite (norm %g), so they "
                      "were not saved to %s", r->iteration, pnorm, a->save);
    }
    struct mt_kv kv = {0};
    mt_model_desc_to_kv(&r->desc, &kv);
    mt_kv_set(&kv, "seq_length", "%d", a->seq_length);
    mt_kv_set(&kv, "iteration", "%ld", r->iteration);
    mt_kv_set(&kv, "consumed_train_samples", "%llu", (unsigned long long)r->consumed);
    mt_kv_set(&kv, "optimizer_step", "%d", r->opt.step);
    mt_kv_set(&kv, "has_optimizer", "1");
    mt_kv_set(&kv, "optimizer", "%s", mt_optim_name(r->opt.cfg.kind));
    mt_kv_set(&kv, "precision", "%s", mt_dtype_name(r->precision));
    mt_kv_set(&kv, "skipped_iterations", "%ld", r->skipped);
    if (r->scaled) { /* Megatron's grad_scaler state */
        mt_kv_set(&kv, "grad_scaler.scale", "%.17g", r->scaler.scale);
        mt_kv_set(&kv, "grad_scaler.growth_tracker", "%d", r->scaler.growth);
        mt_kv_set(&kv, "grad_scaler.hysteresis_tracker", "%d", r->scaler.hysteresis_left);
    }
    mt_kv_set(&kv, "seed", "%ld", a->seed);
    /* dropout masks are a function of this seed and the sample counter */
    mt_kv_set(&kv, "rng_seed", "%llu", (unsigned long long)r->dropout_seed);
    mt_kv_set(&kv, "global_batch_size", "%d", a->global_batch_size);
    mt_kv_set(&kv, "lr", "%.9g", a->lr);
    mt_kv_set(&kv, "min_lr", "%.9g", a->min_lr);
    mt_kv_set(&kv, "lr_decay_style", "%s", a->lr_decay_style);
    mt_kv_set(&kv, "lr_warmup_iters", "%.17g", r->sched.warmup_iters);
    mt_kv_set(&kv, "lr_decay_iters", "%.17g", r->sched.decay_iters);
    mt_kv_set(&kv, "data_path", "%s", r->data_name);
    mt_kv_set(&kv, "backend", "%s", mt_backend_name(r->be));
    mt_kv_set(&kv, "saved_layout", "tp=%d pp=%d dp=%d", G->tp_size, G->pp_size, G->dp_size);
    mt_kv_set(&kv, "megatron_c_version", "%s", PACKAGE_VERSION);
    struct mt_ckpt_buffer bufs[1 + MT_OPTIM_MAX_STATES] = {{"model/", r->model.params, MT_VIEW_PARAMS}};
    char prefix[MT_OPTIM_MAX_STATES][64];
    float *whole[MT_OPTIM_MAX_STATES];
    whole_state(r, whole, 1);
    for (int i = 0; i < r->opt.nstate; i++) {
        snprintf(prefix[i], sizeof prefix[i], "optim/%s/", r->opt.state[i].name);
        bufs[1 + i] = (struct mt_ckpt_buffer){prefix[i], whole[i], r->opt.state[i].view};
    }
    mt_ckpt_save_dist(a->save, r->iteration, &kv, &r->desc.model, &r->model.table, G, r->be, bufs,
                      1 + r->opt.nstate);
    whole_state_free(r, whole);
    mt_kv_free(&kv);
    r->last_good = r->iteration;
    r->last_good_saved = 1;
    SAY(" saved checkpoint at iteration %7ld to %s\n", r->iteration, a->save);
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

/* A checkpoint's optimizer state resumes only the optimizer that wrote it
 * (those of older checkpoints, which do not say, were Adam's). */
static void check_optimizer(const struct run *r, const struct mt_kv *kv, const char *path)
{
    const char *saved = mt_kv_get(kv, "optimizer");
    if (!saved) saved = "adam";
    const char *here = mt_optim_name(r->opt.cfg.kind);
    if (strcmp(saved, here) != 0) {
        char hint[160];
        snprintf(hint, sizeof hint, "pass --optimizer %s to resume it, or --no-load-optim to start "
                 "%s from fresh state on these weights", saved, here);
        mt_user_error(hint, "%s was saved by the %s optimizer, but this run uses --optimizer %s",
                      path, saved, here);
    }
}

/* State a checkpoint may lack without damage: SGD's momentum and
 * Adafactor's first moment, absent when saved without them (they start at
 * zero, as PyTorch's do) */
static int optional_state(const struct run *r, const struct mt_optim_state *st)
{
    return strcmp(st->name, "momentum_buffer") == 0 ||
           (r->opt.cfg.kind == MT_OPTIM_ADAFACTOR && strcmp(st->name, "exp_avg") == 0);
}

/* A dynamic loss scaler resumes where it was (with the optimizer's state,
 * as in Megatron); a checkpoint without one (fp32, bf16) leaves it at its
 * initial scale. */
static void load_scaler(struct run *r, const struct mt_kv *kv, const char *path)
{
    const char *s = mt_kv_get(kv, "grad_scaler.scale");
    long growth, hyst;
    if (!r->scaled || !r->scaler.dynamic || !s) return;
    char *end;
    const double scale = strtod(s, &end);
    if (*end || !(scale > 0 && isfinite(scale)) || !kv_long(kv, "grad_scaler.growth_tracker", &growth) ||
        !kv_long(kv, "grad_scaler.hysteresis_tracker", &hyst))
        mt_user_error("the checkpoint is damaged; --no-load-optim starts the scaler afresh",
                      "%s: the loss scaler's state (grad_scaler.*) is incomplete or malformed", path);
    r->scaler.scale = scale;
    r->scaler.growth = (int)growth;
    r->scaler.hysteresis_left = (int)hyst;
}

/* Every rank reads the (shared) checkpoint file itself and keeps its shards. */
static void load_checkpoint(struct run *r)
{
    const struct mt_train_args *a = r->a;
    char path[4200];
    const int found = mt_ckpt_resolve(a->load, a->ckpt_step, path, sizeof path);
    if (found == -2) {
        /* Megatron: a --load directory that does not exist starts from
         * scratch (the usual --save DIR --load DIR launch script on its
         * first run); a --ckpt-step there is an error: it asks for a step */
        if (a->ckpt_step >= 0)
            mt_user_error("check the path", "--load directory %s does not exist (asked for --ckpt-step %ld)",
                          a->load, a->ckpt_step);
        if (r->printer)
            mt_warn("--load directory %s does not exist: starting from scratch (check the path if this run "
                    "was to resume)", a->load);
        return;
    }
    if (found != 0) {
        /* Megatron: a --load directory without a tracker starts from scratch
         * (the usual --save DIR --load DIR launch script on its first run) */
        if (r->printer)
            mt_warn("no checkpoint in %s (no latest_checkpointed_iteration.txt): starting from scratch",
                    a->load);
        return;
    }
    struct mt_kv kv = {0};
    mt_ckpt_read_meta(path, &kv);
    struct mt_model_desc ck;
    mt_model_desc_from_kv(&ck, &kv, path);
    mt_model_desc_check(&r->desc, &ck, path);
    /* a converted model (megatron-c convert) has weights only: it starts a
     * fine-tune, as Megatron's --finetune would */
    long has_optim = 1;
    kv_long(&kv, "has_optimizer", &has_optim);
    const int finetune = a->finetune || !has_optim;
    if (!has_optim && !a->finetune && r->printer)
        mt_warn("%s holds model weights only (no optimizer state): training starts at iteration 0",
                path);
    const int with_optim = !finetune && !a->no_load_optim;
    if (with_optim) check_optimizer(r, &kv, path);
    struct mt_ckpt_group groups[1 + MT_OPTIM_MAX_STATES] = {{"model/", r->model.params, 1, NULL}};
    char prefix[MT_OPTIM_MAX_STATES][64];
    float *whole[MT_OPTIM_MAX_STATES];
    whole_state(r, whole, 0);
    for (int i = 0; i < r->opt.nstate; i++) {
        const struct mt_optim_state *st = &r->opt.state[i];
        snprintf(prefix[i], sizeof prefix[i], "optim/%s/", st->name);
        groups[1 + i] = (struct mt_ckpt_group){prefix[i], whole[i], !optional_state(r, st), &st->table};
    }
    const int ngroups = with_optim ? 1 + r->opt.nstate : 1;
    struct mt_param_table known;
    mt_layout_global_table(&r->desc.model, 1, &known, NULL);
    const unsigned loaded = mt_ckpt_read_tensors(path, &r->model.table, &known, groups, ngroups, r->be);
    mt_params_free(&known);
    if (r->opt.shard.dp) mt_optim_scatter_state(&r->opt, whole);
    whole_state_free(r, whole);
    for (int g = 1; g < ngroups; g++)
        if (!(loaded >> g & 1) && r->printer)
            mt_warn("%s has no optimizer state %s (saved with other %s settings): it starts at zero",
                    path, r->opt.state[g - 1].name, mt_optim_name(r->opt.cfg.kind));
    if (!finetune) {
        long iter = 0, consumed = 0, step = 0;
        if (!kv_long(&kv, "iteration", &iter) || !kv_long(&kv, "consumed_train_samples", &consumed) ||
            !kv_long(&kv, "optimizer_step", &step))
            mt_user_error("the checkpoint is damaged", "%s: iteration, consumed_train_samples or "
                          "optimizer_step is missing", path);
        r->iteration = iter;
        r->consumed = (uint64_t)consumed;
        if (with_optim) r->opt.step = (int)step;
        long skipped = 0;
        kv_long(&kv, "skipped_iterations", &skipped);
        r->skipped = skipped;
        if (with_optim) load_scaler(r, &kv, path);
        const char *rs = mt_kv_get(&kv, "rng_seed");
        if (rs && !a->no_load_rng) r->dropout_seed = strtoull(rs, NULL, 10);
        long gbs;
        if (kv_long(&kv, "global_batch_size", &gbs) && gbs != a->global_batch_size && r->printer)
            mt_warn("--global-batch-size is %d here but was %ld when %s was saved",
                    a->global_batch_size, gbs, path);
    }
    if (!finetune) r->last_good = r->iteration;
    const char *layout = mt_kv_get(&kv, "saved_layout");
    SAY(" loaded checkpoint %s at iteration %ld (consumed samples %llu%s%s)\n", path, r->iteration,
        (unsigned long long)r->consumed, layout ? ", saved under " : "", layout ? layout : "");
    mt_kv_free(&kv);
}

/* ---- one iteration: the pipeline schedule, then finalize the gradients ------ */

/* Global sample counter of micro-batch k of this data-parallel rank
 * (Megatron's sampler: chunks of mbs x dp, rank d takes [d*mbs, (d+1)*mbs)).
 * It is also the index of the micro-batch's first sample in the stream,
 * which the dropout masks are keyed by. */
static uint64_t micro_counter(const struct run *r, uint64_t base, int k)
{
    const uint64_t mbs = (uint64_t)r->a->micro_batch_size;
    return base + (uint64_t)k * mbs * (uint64_t)r->grp.dp_size + (uint64_t)r->grp.dp_rank * mbs;
}

/* the stage's side of the pipeline executor (parallel/pipeline.h) */
/* The BERT micro-batch at sample `at` into the run's buffers (every stage
 * reads the lengths; the first the tokens and types, the last the rest). */
static void bert_batch(struct run *r, uint64_t at, struct mt_batch *b)
{
    const int B = r->a->micro_batch_size, T = r->a->seq_length;
    for (int i = 0; i < B; i++) {
        struct mt_bert_sample s = {r->tokens + (size_t)i * T, r->types + (size_t)i * T,
                                   r->targets + (size_t)i * T, r->loss_mask + (size_t)i * T, 0, 0};
        mt_bert_data_sample(&r->bdata, r->split, at + (uint64_t)i, &s);
        r->lengths[i] = s.length;
        r->labels[i] = s.is_random;
    }
    *b = (struct mt_batch){B, T, r->tokens, r->types, r->lengths, r->targets, r->loss_mask,
                           r->a->bert_no_binary_head ? NULL : r->labels, NULL, NULL};
}

/* what the loss is multiplied by before the backward pass */
static double loss_scale_of(const struct run *r) { return r->scaled ? r->scaler.scale : 1.0; }

static double pp_forward(void *u, int slot, int micro)
{
    struct run *r = u;
    struct mt_model *m = &r->model;
    const uint64_t at = micro_counter(r, r->base, micro);
    if (r->bert) {
        struct mt_batch b;
        bert_batch(r, at, &b);
        const double loss = mt_model_stage_forward_batch(m, slot, &b, (int64_t)at);
        r->lm_sum += m->slots[slot].lm_loss;
        r->sop_sum += m->slots[slot].seq_loss;
        return loss;
    }
    /* the first stage needs the tokens, the last the targets; middle stages
     * neither, unless every layer needs the documents */
    const int B = r->a->micro_batch_size, T = r->a->seq_length;
    const int docs = r->a->reset_attention_mask || r->a->reset_position_ids;
    if (m->stage.first || m->stage.last || docs) mt_loader_batch(r->loader, at, B, r->tokens, r->targets);
    if (!docs && !(r->a->eod_mask_loss && m->stage.last))
        return mt_model_stage_forward(m, slot, r->tokens, r->targets, B, T, (int64_t)at);
    /* Megatron's get_ltor_masks_and_position_ids: no loss where the input
     * token is the end of document; documents end after it */
    struct mt_batch b = {B, T, r->tokens, NULL, NULL, r->targets, NULL, NULL, NULL, NULL};
    if (r->a->eod_mask_loss) {
        for (size_t i = 0; i < (size_t)B * T; i++) r->loss_mask[i] = r->tokens[i] == r->tok.eod ? 0.0f : 1.0f;
        b.loss_mask = r->loss_mask;
    }
    if (docs) {
        mt_batch_documents(r->tokens, B, T, r->tok.eod, r->a->reset_attention_mask ? r->doc_start : NULL,
                           r->a->reset_position_ids ? r->positions : NULL);
        if (r->a->reset_attention_mask) b.doc_start = r->doc_start;
        if (r->a->reset_position_ids) b.positions = r->positions;
    }
    return mt_model_stage_forward_batch(m, slot, &b, (int64_t)at);
}

static void pp_backward(void *u, int slot, int micro)
{
    struct run *r = u;
    (void)micro;
    mt_model_stage_backward(&r->model, slot, (float)(loss_scale_of(r) / r->n_micro));
}

static mt_tensor pp_input(void *u, int slot)
{
    struct run *r = u;
    return mt_model_stage_input(&r->model, slot, r->a->micro_batch_size, r->a->seq_length);
}

static mt_tensor pp_output(void *u, int slot)
{
    struct run *r = u;
    return mt_model_stage_output(&r->model, slot, r->a->micro_batch_size, r->a->seq_length);
}

static mt_tensor pp_dinput(void *u)
{
    struct run *r = u;
    return mt_model_stage_dinput(&r->model, r->a->micro_batch_size, r->a->seq_length);
}

/* Runs the schedule over the global batch at sample `base`; the sum of the
 * last stage's micro-batch losses (0 elsewhere). */
static double run_schedule(struct run *r, struct mt_loader *loader, uint64_t base, int backward,
                           const struct mt_pp_action *act, int nact)
{
    r->loader = loader;
    r->split = loader == &r->valid_loader;
    r->base = base;
    r->lm_sum = r->sop_sum = 0.0;
    const struct mt_pp_stage_ops ops = {r, r->model.nslots, pp_forward, pp_backward,
                                        pp_input, pp_output, pp_dinput};
    return mt_pp_execute(r->be, r->grp.pp, r->grp.pp_rank, act, nact, backward, &ops);
}

/* The mean over micro-batches and data-parallel ranks of the last stage's
 * losses, on every rank. */
static double reduce_loss(struct run *r, double loss_sum)
{
    double v = r->model.stage.last ? loss_sum / r->n_micro : 0.0;
    v = mt_all_reduce_scalar(r->be, r->grp.pp, v, MT_REDOP_SUM);
    return mt_all_reduce_scalar(r->be, r->grp.dp, v, MT_REDOP_AVG);
}

/* validation: the mean loss, and BERT's two parts */
struct val {
    double loss, lm, sop;
};

static struct val evaluate(struct run *r)
{
    struct val v = {0, 0, 0};
    const int training = r->model.training;
    r->model.training = 0; /* no dropout in validation (Megatron: model.eval()) */
    for (long e = 0; e < r->a->eval_iters; e++) {
        v.loss += reduce_loss(r, run_schedule(r, &r->valid_loader, (uint64_t)e * r->a->global_batch_size,
                                              0, r->eval_actions, r->n_eval_actions));
        v.lm += reduce_loss(r, r->lm_sum);
        v.sop += reduce_loss(r, r->sop_sum);
    }
    r->model.training = training;
    const double n = (double)r->a->eval_iters;
    v.loss /= n, v.lm /= n, v.sop /= n;
    return v;
}

/* TensorBoard: Megatron's tag, against the iteration and, as "TAG vs
 * samples", against the consumed samples */
static void tb_scalar(struct run *r, const char *tag, double v)
{
    char vs[128];
    mt_tb_scalar(r->tb, tag, v, r->iteration);
    snprintf(vs, sizeof vs, "%s vs samples", tag);
    mt_tb_scalar(r->tb, vs, v, (int64_t)r->consumed);
}

/* Megatron's training_log scalars of one iteration */
static void tb_iteration(struct run *r, const double part[3], float lr, double norm)
{
    const struct mt_train_args *a = r->a;
    if (!r->tb || r->iteration % a->tensorboard_log_interval != 0) return;
    tb_scalar(r, "learning-rate", lr);
    if (a->log_batch_size_to_tensorboard) tb_scalar(r, "batch-size", a->global_batch_size);
    tb_scalar(r, "lm loss", r->bert ? part[1] : part[0]);
    if (r->bert && !a->bert_no_binary_head) tb_scalar(r, "sop loss", part[2]);
    if (r->scaled && !a->no_log_loss_scale_to_tensorboard) tb_scalar(r, "loss-scale", r->scaler.scale);
    if (isfinite(norm)) tb_scalar(r, "grad-norm", norm);
    if (a->log_params_norm)
        tb_scalar(r, "params-norm", mt_grad_norm(r->be, &r->model.table, r->model.params, r->opt.norm_comm));
    if (a->log_world_size_to_tensorboard) tb_scalar(r, "world-size", r->grp.world_size);
    if (a->log_memory_to_tensorboard) { /* Megatron's names, of this rank's backend (no "vs samples") */
        struct mt_mem_stats m;
        mt_backend_mem(r->be, &m);
        mt_tb_scalar(r->tb, "mem-allocated-bytes", (double)m.live, r->iteration);
        mt_tb_scalar(r->tb, "mem-max-allocated-bytes", (double)m.peak, r->iteration);
    }
    mt_tb_flush(r->tb);
}

static void log_eval(struct run *r, struct val v)
{
    /* BERT: Megatron's lm loss is the masked LM's alone, then the sop loss */
    const double lm = r->bert ? v.lm : v.loss;
    char sop[96] = "";
    if (r->bert && !r->a->bert_no_binary_head)
        snprintf(sop, sizeof sop, " sop loss value: %.6E |", v.sop);
    SAY(" validation loss at iteration %ld | lm loss value: %.6E | lm loss PPL: %.6E |%s\n",
        r->iteration, lm, exp(fmin(20.0, lm)), sop);
    if (r->tb) {
        tb_scalar(r, "lm loss validation", lm);
        if (r->a->log_validation_ppl_to_tensorboard) tb_scalar(r, "lm loss validation ppl", exp(fmin(20.0, lm)));
        if (*sop) tb_scalar(r, "sop loss validation", v.sop);
        mt_tb_flush(r->tb);
    }
    mt_series_push(&r->curve.val_loss, (double)r->iteration, lm);
    if (r->json) {
        fprintf(r->json, "{\"iteration\": %ld, \"val_loss\": %.9g, \"val_ppl\": %.9g", r->iteration, lm,
                exp(fmin(20.0, lm)));
        if (*sop) fprintf(r->json, ", \"val_sop_loss\": %.9g", v.sop);
        fprintf(r->json, "}\n");
        mt_log_flush(r->json, r->a->log_json);
    }
}

static void setup_parallel(struct run *r)
{
    const struct mt_train_args *a = r->a;
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
    if (mt_config_check_parallel(&r->desc.model, a->tp, a->pp, err, sizeof err) != 0)
        mt_user_error("choose sizes that divide evenly", "%s", err);
}

/* Mixed precision: the GEMMs' type and the loss scaler (Megatron: a
 * dynamic scaler for fp16, a constant one when --loss-scale is given, none
 * for bf16 otherwise). */
static void setup_precision(struct run *r)
{
    const struct mt_train_args *a = r->a;
    r->precision = a->bf16 ? MT_DTYPE_BF16 : a->fp16 ? MT_DTYPE_F16 : MT_DTYPE_F32;
    mt_backend_set_gemm_precision(r->be, r->precision);
    if (r->precision != MT_DTYPE_F32 && a->loss_scale > 0) {
        mt_loss_scaler_constant(&r->scaler, a->loss_scale);
        r->scaled = 1;
    } else if (a->fp16) {
        mt_loss_scaler_dynamic(&r->scaler, a->initial_loss_scale, a->min_loss_scale, a->loss_scale_window,
                               a->hysteresis);
        r->scaled = 1;
    }
}

/* The model, the optimizer, the schedules. */
static void build(struct run *r)
{
    const struct mt_train_args *a = r->a;
    const struct mt_groups *G = &r->grp;
    const int mbs = a->micro_batch_size, T = a->seq_length, n_micro = r->n_micro;
    struct mt_model_par par = {G->tp, G->tp_size, G->tp_rank, G->pp_size, G->pp_rank};
    /* 1F1B keeps at most (stages - stage) micro-batches in flight */
    int nslots = G->pp_size - G->pp_rank < n_micro ? G->pp_size - G->pp_rank : n_micro;
    struct mt_model_opts mo = {{MT_RECOMPUTE_NONE, MT_RECOMPUTE_UNIFORM, 0}, MT_ATTN_FLASH};
    struct mt_recompute *rc = &mo.rc;
    if (a->recompute_granularity) {
        rc->granularity = (enum mt_recompute_granularity)mt_recompute_granularity_parse(a->recompute_granularity);
        if (a->recompute_method)
            rc->method = (enum mt_recompute_method)mt_recompute_method_parse(a->recompute_method);
        rc->num_layers = a->recompute_num_layers;
    }
    if (a->attention_backend) mo.attn = (enum mt_attn_impl)mt_attn_impl_parse(a->attention_backend);
    mt_model_init_opts(&r->model, &r->desc.model, r->be, mbs, T, &par, nslots, &mo);
    r->dropout_seed = (uint64_t)a->seed;
    const struct mt_optim_config oc = {
        .beta1 = a->adam_beta1, .beta2 = a->adam_beta2, .eps = a->adam_eps,
        .weight_decay = a->weight_decay, .clip_grad = a->clip_grad,
        .kind = (enum mt_optim_kind)mt_optim_parse(a->optimizer), .sgd_momentum = a->sgd_momentum,
        .adafactor = {.eps1 = a->adafactor_eps1, .eps2 = a->adafactor_eps2,
                      .clip_threshold = a->adafactor_clip_threshold,
                      .decay_rate = a->adafactor_decay_rate, .beta1 = a->adafactor_beta1,
                      .relative_step = a->adafactor_relative_step,
                      .scale_parameter = !a->no_adafactor_scale_parameter,
                      .warmup_init = a->adafactor_warmup_init}};
    mt_optim_init_dist(&r->opt, &oc, r->be, &r->model.table,
                       a->use_distributed_optimizer ? G->dp : NULL);
    r->opt.norm_comm = G->mp;
    r->opt.tp_comm = G->tp_size > 1 ? G->tp : NULL;
    r->sched = (struct mt_lr_schedule){a->lr, a->min_lr, a->sched_warmup, a->sched_decay,
                                       (enum mt_lr_decay)mt_lr_decay_parse(a->lr_decay_style)};
    int cap = MT_PP_MAX_ACTIONS(n_micro);
    r->sched_actions = malloc((size_t)cap * sizeof *r->sched_actions);
    r->eval_actions = malloc((size_t)cap * sizeof *r->eval_actions);
    if (!r->sched_actions || !r->eval_actions) mt_die("out of memory");
    r->n_actions = mt_pp_schedule_1f1b(r->sched_actions, cap, G->pp_size, G->pp_rank, n_micro);
    r->n_eval_actions = mt_pp_schedule_forward(r->eval_actions, cap, G->pp_size, G->pp_rank, n_micro);
    MT_ASSERT(r->n_actions > 0 && r->n_eval_actions > 0);
    mt_model_init_weights(&r->model, (uint64_t)a->seed);
    setup_precision(r);
}

static void banner(struct run *r)
{
    const struct mt_train_args *a = r->a;
    const struct mt_transformer_config *g = &r->desc.model;
    const struct mt_groups *G = &r->grp;
    char variant[160] = "";
    if (g->position_embedding_type != MT_POS_LEARNED_ABSOLUTE || g->normalization != MT_NORM_LAYERNORM ||
        g->gated_linear_unit || g->num_query_groups != g->num_attention_heads ||
        g->untie_embeddings_and_output_weights || !g->add_bias_linear)
        snprintf(variant, sizeof variant, " (%s, %s%s%s%s%s)",
                 mt_position_embedding_name(g->position_embedding_type),
                 mt_normalization_name(g->normalization), g->gated_linear_unit ? ", SwiGLU" : "",
                 g->num_query_groups != g->num_attention_heads ? ", grouped-query attention" : "",
                 g->untie_embeddings_and_output_weights ? ", untied output" : "",
                 g->add_bias_linear ? "" : ", no biases");
    if (r->bert)
        snprintf(variant, sizeof variant, " (%s, %s)", g->post_layernorm ? "post-norm" : "pre-norm",
                 g->seq_head == MT_SEQ_HEAD_BINARY ? "masked LM + sentence order" : "masked LM");
    SAY("megatron-c train: %s %d layers, hidden %d, %d heads, seq %d, vocab %d (padded %d), "
        "%.2fM parameters%s\n", r->bert ? "BERT" : "GPT", g->num_layers, g->hidden_size, g->num_attention_heads, a->seq_length,
        g->vocab_size, g->padded_vocab_size, (double)mt_config_param_count(g) / 1e6, variant);
    if (g->hidden_dropout > 0 || g->attention_dropout > 0)
        SAY(" dropout: hidden %g, attention %g\n", g->hidden_dropout, g->attention_dropout);
    if (!r->has_gdata)
        SAY(" data: %s (%s tokenizer, %zu tokens; %zu train / %zu valid samples)\n", r->data_name,
            r->tok.type, r->ntok, r->train_ds.num_samples, r->has_valid ? r->valid_ds.num_samples : 0);
    SAY(" backend %s%s | %d process%s: tensor-parallel %d x pipeline-parallel %d x data-parallel %d | "
        "micro batch %d x %d micro-batches x %d = global batch %d | %ld iterations\n",
        mt_backend_name(r->be), a->tf32 ? " (TF32 GEMMs)" : "", G->world_size, G->world_size > 1 ? "es" : "",
        G->tp_size, G->pp_size, G->dp_size, a->micro_batch_size, r->n_micro, G->dp_size,
        a->global_batch_size, a->train_iters);
    const struct mt_recompute *rc = &r->model.rc;
    if (rc->granularity == MT_RECOMPUTE_SELECTIVE && r->model.attn == MT_ATTN_FLASH)
        SAY(" activation recompute: selective (flash attention keeps no probabilities: nothing to recompute)\n");
    else if (rc->granularity == MT_RECOMPUTE_SELECTIVE)
        SAY(" activation recompute: selective (the attention probabilities, recomputed in each layer's "
            "backward)\n");
    else if (rc->granularity == MT_RECOMPUTE_FULL)
        SAY(" activation recompute: full, %s %d (%s)\n", rc->method == MT_RECOMPUTE_BLOCK ? "block" : "uniform",
            rc->num_layers, rc->method == MT_RECOMPUTE_BLOCK ? "the first layers of each stage, one by one"
                                                             : "chunks of layers, each rerun from its input");
    if (r->precision != MT_DTYPE_F32)
        SAY(" mixed precision: %s GEMMs (inputs and products rounded to %s, f32 accumulation), f32 master "
            "weights, gradients and optimizer state\n", mt_dtype_name(r->precision), mt_dtype_name(r->precision));
    if (r->scaled && r->scaler.dynamic)
        SAY(" loss scale: dynamic from %.1f (min %.1f, window %d, hysteresis %d)\n", r->scaler.scale,
            r->scaler.min_scale, r->scaler.window, r->scaler.hysteresis);
    else if (r->scaled)
        SAY(" loss scale: constant %.1f\n", r->scaler.scale);
    SAY(" optimizer: %s, state %.2f MB per rank%s\n", mt_optim_name(r->opt.cfg.kind),
        (double)mt_optim_state_bytes(&r->opt) / 1e6,
        !r->opt.shard.dp        ? ""
        : r->opt.shard.by_tensor ? " (distributed over the data-parallel group by whole tensors)"
                                 : " (distributed over the data-parallel group)");
    /* what the step will use: everything is allocated before it (Megatron's
     * theoretical memory report, from the allocations themselves) */
    struct mt_mem_stats ms;
    mt_backend_mem(r->be, &ms);
    const double mb = 1e6, pg = (double)r->model.table.total * sizeof(float);
    const double st = (double)mt_optim_state_bytes(&r->opt);
    r->mem_expected = ms.live;
    const size_t saved = mt_model_recompute_saving(&r->model);
    char without[96] = "";
    if (r->model.rc.granularity != MT_RECOMPUTE_NONE)
        snprintf(without, sizeof without, "; without recompute %.2f MB more: %.2f MB", (double)saved / mb,
                 ((double)ms.live + (double)saved) / mb);
    SAY(" memory per rank (rank 0, f32): parameters %.2f MB, gradients %.2f MB, optimizer state %.2f MB, "
        "activations and buffers %.2f MB (%d micro-batch%s in flight): %.2f MB%s\n", pg / mb, pg / mb,
        st / mb, ((double)ms.live - 2 * pg - st) / mb, r->model.nslots, r->model.nslots > 1 ? "es" : "",
        (double)ms.live / mb, without);
}

/* The measured peak, at the end: the backend's allocations and the process's
 * resident set (the host's whole footprint: data, tokenizer, libraries) */
static void memory_report(struct run *r)
{
    struct mt_mem_stats ms;
    mt_backend_mem(r->be, &ms);
    struct rusage ru;
    double rss = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0) rss = (double)ru.ru_maxrss * 1024.0; /* KiB on Linux */
    SAY(" memory peak (rank 0): %.2f MB allocated by the %s backend (%.2f MB at start), resident set %.2f MB\n",
        (double)ms.peak / 1e6, mt_backend_name(r->be), (double)r->mem_expected / 1e6, rss / 1e6);
}

/* The log interval's sums. The losses are averaged over the iterations
 * that updated the weights (Megatron's "advanced" ones); an interval
 * whose iterations were all skipped shows theirs instead (Megatron would
 * print 0). */
struct interval {
    double sum[3], skipped_sum[3]; /* loss, BERT's lm and sop parts */
    double t0, comm_s0;
    uint64_t comm_b0;
    long n, skipped, nan;
    double last_norm;
};

static void interval_add(struct interval *iv, const double part[3], int skipped, int nan)
{
    for (int i = 0; i < 3; i++) (skipped ? iv->skipped_sum : iv->sum)[i] += part[i];
    iv->n++;
    iv->skipped += skipped;
    iv->nan += nan;
}

static double interval_mean(const struct interval *iv, int i)
{
    const long adv = iv->n - iv->skipped;
    return adv > 0 ? iv->sum[i] / (double)adv : iv->skipped_sum[i] / (double)iv->n;
}

static void log_iteration(struct run *r, struct interval *iv, float lr)
{
    const struct mt_train_args *a = r->a;
    double dt = mt_now() - iv->t0, comm_s;
    uint64_t comm_b;
    mt_comm_stats(&comm_b, &comm_s);
    double ms = 1000.0 * dt / (double)iv->n;
    double tps = (double)iv->n * a->global_batch_size * a->seq_length / dt;
    const double avg = interval_mean(iv, r->bert ? 1 : 0), norm = iv->last_norm;
    char sop[64] = "", sop_json[64] = "";
    if (r->bert && !a->bert_no_binary_head) {
        snprintf(sop, sizeof sop, " sop loss: %.6E |", interval_mean(iv, 2));
        snprintf(sop_json, sizeof sop_json, ", \"sop_loss\": %.9g", interval_mean(iv, 2));
    }
    /* Megatron's fields: the scale after this iteration's update, no grad
     * norm for a skipped iteration, and the interval's skip counts */
    char scale[48] = "", gnorm[40] = "", skips[96] = "", scale_json[128] = "", norm_json[40] = "null";
    char extra[64] = "", extra_json[64] = "", tput[64] = "", tput_json[64] = "";
    if (a->log_params_norm) {
        /* summed over the model-parallel group: every rank agrees */
        const double pn = mt_grad_norm(r->be, &r->model.table, r->model.params, r->opt.norm_comm);
        snprintf(extra, sizeof extra, " params norm: %.3f |", pn);
        snprintf(extra_json, sizeof extra_json, ", \"params_norm\": %.9g", pn);
    }
    if (a->log_throughput) {
        /* Megatron's num_floating_point_operations per second and rank */
        const double tf = mt_config_flops(&r->desc.model, a->global_batch_size, a->seq_length) /
                          (ms / 1000.0) / 1e12 / (double)r->grp.world_size;
        snprintf(tput, sizeof tput, " throughput per GPU (TFLOP/s/GPU): %.1f |", tf);
        snprintf(tput_json, sizeof tput_json, ", \"tflops_per_rank\": %.9g", tf);
    }
    if (r->scaled) {
        snprintf(scale, sizeof scale, " loss scale: %.1f |", r->scaler.scale);
        snprintf(skips, sizeof skips, " number of skipped iterations: %3ld | number of nan iterations: %3ld |",
                 iv->skipped, iv->nan);
        snprintf(scale_json, sizeof scale_json, ", \"loss_scale\": %.17g, \"skipped_iterations\": %ld, "
                 "\"nan_iterations\": %ld", r->scaler.scale, iv->skipped, iv->nan);
    }
    if (isfinite(norm)) {
        snprintf(gnorm, sizeof gnorm, " grad norm: %.3f |", norm);
        snprintf(norm_json, sizeof norm_json, "%.9g", norm);
    }
    /* JSON has no NaN: a non-finite loss (a skipped fp16 iteration) is null */
    char loss_json[40] = "null";
    if (isfinite(avg)) snprintf(loss_json, sizeof loss_json, "%.9g", avg);
    double comm_ms = 1000.0 * (comm_s - iv->comm_s0) / (double)iv->n;
    double comm_mb = (double)(comm_b - iv->comm_b0) / (double)iv->n / 1e6;
    char comm[96] = "";
    if (r->grp.world_size > 1)
        snprintf(comm, sizeof comm, " comm (ms): %.1f | comm sent (MB): %.2f |", comm_ms, comm_mb);
    SAY(" iteration %8ld/%8ld | consumed samples: %10llu | elapsed time per iteration (ms): %.1f |%s "
        "tokens/s: %.0f | learning rate: %.6E | global batch size: %5d | lm loss: %.6E |%s%s%s%s%s%s\n",
        r->iteration, a->train_iters, (unsigned long long)r->consumed, ms, tput, tps, lr, a->global_batch_size,
        avg, sop, scale, gnorm, extra, skips, comm);
    mt_series_push(&r->curve.loss, (double)r->iteration, avg);
    mt_series_push(&r->curve.lr, (double)r->iteration, lr);
    mt_series_push(&r->curve.tokens_per_sec, (double)r->iteration, tps);
    if (r->json) {
        fprintf(r->json, "{\"iteration\": %ld, \"loss\": %s%s, \"lr\": %.9g, \"grad_norm\": %s%s, "
                "\"tokens_per_sec\": %.1f, \"ms_per_iter\": %.3f, \"consumed_samples\": %llu, "
                "\"comm_ms\": %.3f, \"comm_mb\": %.4f%s%s}\n", r->iteration, loss_json, sop_json, lr, norm_json,
                scale_json, tps, ms, (unsigned long long)r->consumed, comm_ms, comm_mb, extra_json, tput_json);
        mt_log_flush(r->json, r->a->log_json);
    }
    memset(iv->sum, 0, sizeof iv->sum);
    memset(iv->skipped_sum, 0, sizeof iv->skipped_sum);
    iv->n = iv->skipped = iv->nan = 0;
    iv->t0 = mt_now();
    iv->comm_s0 = comm_s;
    iv->comm_b0 = comm_b;
}

/* A short sample from the trained model, continuing a newline (or the
 * end of a document, for a tokenizer without newlines). */
static void sample(struct run *r)
{
    const struct mt_train_args *a = r->a;
    size_t np;
    int32_t *prompt = mt_tokenizer_encode_prompt(&r->tok, "\n", &np);
    if (np == 0) { /* nothing to start from */
        free(prompt);
        return;
    }
    struct mt_model gen;
    mt_model_init(&gen, &r->desc.model, r->be, 1, a->max_pos, NULL, 1);
    mt_copy(r->be, gen.params, r->model.params, r->model.table.total * sizeof(float));
    struct mt_rng rng;
    mt_rng_seed(&rng, (uint64_t)a->seed, 3);
    printf(" sample (temperature %.2f):\n", a->sample_temperature);
    fflush(stdout);
    mt_generate(&gen, &r->tok, prompt, (int)np, a->sample_tokens, a->sample_temperature, 0, 1.0f,
                &rng, stdout);
    printf("\n");
    free(prompt);
    mt_model_free(&gen);
}

/* --exit-interval and --exit-duration-in-mins (every rank agrees: the
 * clocks of ranks differ, so rank 0's decides) */
static int exit_now(struct run *r)
{
    const struct mt_train_args *a = r->a;
    if (r->iteration >= a->train_iters) return 0;
    if (a->exit_interval > 0 && r->iteration % a->exit_interval == 0) return 1;
    if (a->exit_duration_in_mins <= 0) return 0;
    double late = r->printer && (mt_now() - r->prog.t0) / 60.0 > a->exit_duration_in_mins;
    return mt_all_reduce_scalar(r->be, r->grp.world, late, MT_REDOP_MAX) > 0;
}

static void loop(struct run *r)
{
    const struct mt_train_args *a = r->a;
    const long it0 = r->iteration;
    struct interval iv;
    memset(&iv, 0, sizeof iv);
    iv.t0 = mt_now();
    mt_comm_stats(&iv.comm_b0, &iv.comm_s0);
    long last_saved = -1;
    mt_model_set_training(&r->model, 1, r->dropout_seed);
    const int shared = r->grp.embd ? mt_model_tied_index(&r->model) : -1;
    while (r->iteration < a->train_iters) {
        /* Megatron: the lr of the updates so far (skipped iterations do not
         * advance the schedule) */
        const float lr = mt_lr_at(&r->sched, r->iteration - r->skipped);
        double loss = run_schedule(r, &r->train_loader, r->consumed, 1, r->sched_actions, r->n_actions);
        mt_finalize_grads(r->be, &r->grp, &r->model.table, r->model.grads, shared,
                          (size_t)a->ddp_bucket_size,
                          /* dp reduction, unless the optimizer does it */ !r->opt.shard.dp || r->opt.shard.by_tensor);
        double part[3] = {reduce_loss(r, loss), 0, 0};
        loss = part[0];
        if (r->bert) {
            part[1] = reduce_loss(r, r->lm_sum);
            part[2] = reduce_loss(r, r->sop_sum);
        }
        /* the step skips itself on a non-finite gradient norm (every rank
         * agrees on it and on the loss) and zeroes the gradients */
        double norm = NAN;
        if (isfinite(loss))
            norm = mt_optim_step(&r->opt, r->model.params, r->model.grads, lr, (float)(1.0 / loss_scale_of(r)));
        else
            mt_memset0(r->be, r->model.grads, r->model.table.total * sizeof(float));
        const int found_inf = !isfinite(norm);
        if (found_inf && !r->scaled) {
            /* unscaled, inf/NaN means divergence: stop before any update */
            progress_clear(&r->prog);
            mt_user_error(resume_hint(r), "iteration %ld: the loss (%g) or the gradient norm (%g) is not "
                          "finite; stopped before updating the weights", r->iteration + 1, fabs(loss), fabs(norm));
        }
        /* scaled: the iteration is skipped and the scale lowered (Megatron) */
        if (r->scaled) mt_loss_scaler_update(&r->scaler, found_inf);
        r->skipped += found_inf;
        r->iteration++;
        r->consumed += (uint64_t)a->global_batch_size;
        interval_add(&iv, part, found_inf, !isfinite(loss));
        iv.last_norm = norm;
        tb_iteration(r, part, lr, norm);
        if (r->iteration % a->log_interval == 0 || r->iteration == a->train_iters)
            log_iteration(r, &iv, lr);
        if (r->has_valid && a->eval_interval > 0 && r->iteration % a->eval_interval == 0 &&
            r->iteration != a->train_iters) {
            double t = mt_now();
            log_eval(r, evaluate(r));
            iv.t0 += mt_now() - t; /* validation time is not training time */
        }
        if (a->save && a->save_interval > 0 && r->iteration % a->save_interval == 0) {
            double t = mt_now();
            save_checkpoint(r);
            last_saved = r->iteration;
            iv.t0 += mt_now() - t;
        }
        progress_show(&r->prog, r->iteration, a->train_iters, it0, (float)loss);
        if (exit_now(r)) {
            /* Megatron: save (when --save), then exit, without the final validation */
            progress_clear(&r->prog);
            if (a->save && last_saved != r->iteration) save_checkpoint(r);
            SAY(" exiting program at iteration %ld (%s)\n", r->iteration,
                a->exit_interval > 0 && r->iteration % a->exit_interval == 0 ? "--exit-interval"
                                                                              : "--exit-duration-in-mins");
            r->exited = 1;
            memory_report(r);
            return;
        }
    }
    progress_clear(&r->prog);
    if (r->has_valid) log_eval(r, evaluate(r));
    if (a->save && last_saved != r->iteration) save_checkpoint(r);
    SAY(" training done: %ld iterations in %.1f s\n", r->iteration - it0, mt_now() - r->prog.t0);
    memory_report(r);
}

/* A run that does not resume from --save's own checkpoints would write
 * its iterations over them (and move the tracker back): refused. */
static void refuse_foreign_checkpoints(const struct mt_train_args *a)
{
    char s[PATH_MAX], l[PATH_MAX];
    long newest;
    const int n = mt_ckpt_count(a->save, &newest);
    if (n == 0) return;
    const int resumes = a->load && realpath(a->save, s) && realpath(a->load, l) && strcmp(s, l) == 0;
    if (resumes && !a->finetune) return;
    mt_user_error("resume them with --load (the same directory), choose another --save, or move them away",
                  "--save %s already holds %d checkpoint%s (newest iter_%07ld) that this run%s would overwrite",
                  a->save, n, n == 1 ? "" : "s", newest, resumes ? " (--finetune: from iteration 0)" : "");
}

/* --plot and the teaching default's sparkline: from the --log-json file
 * when there is one (a resumed run's whole history), else from what this
 * run logged. */
static void draw_curves(struct run *r)
{
    const struct mt_train_args *a = r->a;
    if (!a->plot && !a->loss_sparkline) return;
    struct mt_trace whole;
    const struct mt_trace *t = &r->curve;
    if (a->log_json) {
        mt_trace_read(&whole, a->log_json);
        t = &whole;
    } else {
        snprintf(r->curve.name, sizeof r->curve.name, "train");
    }
    if (t->loss.n + t->val_loss.n > 0) {
        mt_chart_report(t, stdout);
        if (a->plot) {
            mt_chart_write(t, 1, a->plot); /* train.c checked the type */
            printf(" loss curves drawn in %s\n", a->plot);
        }
        fflush(stdout);
    }
    if (t == &whole) mt_trace_free(&whole);
}

int mt_train_run(struct mt_train_args *a)
{
    struct run R, *r = &R;
    memset(r, 0, sizeof *r);
    r->a = a;
    r->last_good = -1;
    r->bert = a->model && strcmp(a->model, "bert") == 0;
    r->be = mt_backend_open(a->backend, a->tf32);
    mt_comm_set_timeout(r->be, 60.0 * a->distributed_timeout_minutes);
    mt_tokenizer_open(&r->tok, a->tokenizer_type, a->vocab_file, a->merge_file, a->vocab_size);
    mt_train_config(a, r->tok.vocab_size, &r->desc.model);
    char err[256];
    if (mt_config_check(&r->desc.model, err, sizeof err) != 0)
        mt_user_error("see 'megatron-c train --help'", "%s", err);
    r->desc.make_vocab_size_divisible_by = a->make_vocab_divisible_by;
    r->desc.tokenizer_type = r->tok.type;
    /* the layout and --save are checked before any work */
    setup_parallel(r);
    if (a->save && r->printer) {
        /* parameters and the optimizer's state, in f32: Adam's two moments,
         * SGD's momentum, Adafactor's first moment and (at most one
         * parameter's worth of) factored moments */
        const int kind = mt_optim_parse(a->optimizer);
        const unsigned states = kind == MT_OPTIM_ADAM ? 2
                                : kind == MT_OPTIM_SGD ? (a->sgd_momentum != 0.0f)
                                                       : 1 + (a->adafactor_beta1 != 0.0f);
        mt_ckpt_check_writable(a->save, 4u * (1 + states) * (uint64_t)mt_config_param_count(&r->desc.model) +
                                            (1u << 20));
        refuse_foreign_checkpoints(a);
    }
    if (a->tensorboard_dir && r->printer) r->tb = mt_tb_open(a->tensorboard_dir); /* before any work, too */
    load_data(r);
    build(r);
    if (a->load) load_checkpoint(r);

    if (a->log_json && r->printer) {
        r->json = fopen(a->log_json, r->iteration > 0 ? "a" : "w");
        if (!r->json) mt_user_error("check the path given to --log-json", "cannot open %s for writing",
                                    a->log_json);
    }
    const size_t N = (size_t)a->micro_batch_size * (size_t)a->seq_length;
    r->tokens = malloc(N * sizeof(int32_t));
    r->targets = malloc(N * sizeof(int32_t));
    r->types = malloc(N * sizeof(int32_t));
    r->loss_mask = malloc(N * sizeof(float));
    r->doc_start = malloc(N * sizeof(int32_t));
    r->positions = malloc(N * sizeof(int32_t));
    r->lengths = malloc((size_t)a->micro_batch_size * sizeof(int32_t));
    r->labels = malloc((size_t)a->micro_batch_size * sizeof(int32_t));
    if (!r->tokens || !r->targets || !r->types || !r->loss_mask || !r->doc_start || !r->positions || !r->lengths ||
        !r->labels)
        mt_die("out of memory");
    banner(r);
    r->prog.on = r->printer && !a->no_progress && isatty(2) && getenv("TERM") &&
                 strcmp(getenv("TERM"), "dumb") != 0;
    r->prog.t0 = mt_now();
    loop(r);
    if (a->sample_tokens > 0 && r->grp.world_size == 1 && !r->bert && !r->exited) sample(r);

    if (r->json) mt_log_close(r->json, a->log_json);
    if (r->printer) draw_curves(r);
    mt_trace_free(&r->curve);
    mt_tb_close(r->tb);
    free(r->tokens);
    free(r->targets);
    free(r->types);
    free(r->loss_mask);
    free(r->doc_start);
    free(r->positions);
    free(r->lengths);
    free(r->labels);
    free(r->is_cont);
    if (r->bert) mt_bert_data_free(&r->bdata);
    free(r->sched_actions);
    free(r->eval_actions);
    mt_loader_free(&r->train_loader);
    if (r->has_valid) mt_loader_free(&r->valid_loader);
    free(r->all_tokens);
    if (r->has_gdata) mt_gpt_data_free(&r->gdata);
    mt_optim_free(&r->opt);
    mt_model_free(&r->model);
    mt_groups_free(&r->grp, r->be);
    mt_tokenizer_close(&r->tok);
    mt_backend_free(r->be);
    return 0;
}
