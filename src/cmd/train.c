/* train.c: `megatron-c train`: the flags, their defaults and checks; the
 * loop is src/train/trainer.c.
 *
 * With no --data-path, trains the teaching default: a character-level GPT on
 * the tiny Shakespeare text shipped in data/ (flags given on the command line
 * still override each setting). With --data-path, every default is
 * Megatron-LM's and the model-shape flags are required, as in Megatron. */
#include "cmd/commands.h"
#include "plot/chart.h"
#include "core/args.h"
#include "core/error.h"
#include "model/config.h"
#include "model/model.h"
#include "data/tokenizer.h"
#include "optim/loss_scale.h"
#include "optim/optimizer.h"
#include "train/trainer.h"
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* The command line: the run's arguments, and Megatron flags that choose a
 * kernel, a fusion or an overlap. Those change how Megatron computes, not
 * what: they are accepted so that Megatron's scripts run, and named in a
 * note (megatron-c has one implementation of each). */
struct train_cli {
    struct mt_train_args a;
    int kernel_choice;
    const char *kernel_choice_value;
    int logging_choice;
    const char *logging_choice_value;
};

#define F(field) offsetof(struct train_cli, a.field)
#define K(flag) {flag, MT_ARG_BOOL, offsetof(struct train_cli, kernel_choice), NULL, \
                 "accepted for Megatron scripts; no effect here (a kernel choice)"}
#define KV(flag) {flag, MT_ARG_STRING, offsetof(struct train_cli, kernel_choice_value), "S", \
                  "accepted for Megatron scripts; no effect here (a kernel choice)"}
#define L(flag) {flag, MT_ARG_BOOL, offsetof(struct train_cli, logging_choice), NULL, \
                 "accepted for Megatron scripts; not written here (a TensorBoard or W&B option)"}
#define LV(flag) {flag, MT_ARG_STRING, offsetof(struct train_cli, logging_choice_value), "S", \
                  "accepted for Megatron scripts; not written here (a TensorBoard or W&B option)"}
static const struct mt_arg_spec SPECS[] = {
    MT_ARG_GROUP_("model"),
    {"model", MT_ARG_STRING, F(model), "S", "gpt | bert: what is trained, as Megatron's pretrain_gpt.py and pretrain_bert.py (gpt)"},
    {"bert-no-binary-head", MT_ARG_BOOL, F(bert_no_binary_head), NULL, "BERT without the sentence-order head (its loss is the masked LM's alone)"},
    {"post-layernorm", MT_ARG_BOOL, F(post_layernorm), NULL, "the original post-norm layout, x = norm(x + sublayer(x)), of Google's and Hugging Face's BERT (default: pre-norm, Megatron's)"},
    {"openai-gelu", MT_ARG_BOOL, F(openai_gelu), NULL, "the tanh GELU (GPT-2's, and the GPT default here); BERT's default is the exact one"},
    {"num-layers", MT_ARG_INT, F(num_layers), "N", "transformer layers (required with --data-path; teaching default 4)"},
    {"hidden-size", MT_ARG_INT, F(hidden_size), "N", "model width (required with --data-path; teaching default 128)"},
    {"num-attention-heads", MT_ARG_INT, F(num_heads), "N", "attention heads, dividing --hidden-size (required with --data-path; teaching default 4)"},
    {"ffn-hidden-size", MT_ARG_INT, F(ffn_hidden_size), "N", "MLP width (4 x hidden; with --swiglu 8/3 x hidden rounded down to 64)"},
    {"kv-channels", MT_ARG_INT, F(kv_channels), "N", "head dimension (hidden / heads)"},
    {"group-query-attention", MT_ARG_BOOL, F(group_query_attention), NULL, "grouped-query attention: heads share --num-query-groups key/value heads"},
    {"num-query-groups", MT_ARG_INT, F(num_query_groups), "G", "key/value heads with --group-query-attention (1)"},
    {"position-embedding-type", MT_ARG_STRING, F(position_embedding_type), "S", "learned_absolute | rope | none (learned_absolute)"},
    {"use-rotary-position-embeddings", MT_ARG_BOOL, F(use_rotary_position_embeddings), NULL, "the older spelling of --position-embedding-type rope"},
    {"no-position-embedding", MT_ARG_BOOL, F(no_position_embedding), NULL, "the older spelling of --position-embedding-type none"},
    {"rotary-base", MT_ARG_DOUBLE, F(rotary_base), "X", "RoPE base (10000)"},
    {"rotary-percent", MT_ARG_DOUBLE, F(rotary_percent), "X", "share of each head RoPE rotates (1.0)"},
    {"use-rope-scaling", MT_ARG_BOOL, F(use_rope_scaling), NULL, "Llama 3.x's RoPE frequency scaling (low/high frequency factors 1 and 4, original context 8192)"},
    {"rope-scaling-factor", MT_ARG_DOUBLE, F(rope_scaling_factor), "X", "its factor (8.0)"},
    {"normalization", MT_ARG_STRING, F(normalization), "S", "LayerNorm | RMSNorm (LayerNorm)"},
    {"norm-epsilon", MT_ARG_DOUBLE, F(norm_epsilon), "X", "epsilon of the norms (1e-5)"},
    {"swiglu", MT_ARG_BOOL, F(swiglu), NULL, "gated MLP: silu(gate) * up (Llama); default GELU"},
    {"untie-embeddings-and-output-weights", MT_ARG_BOOL, F(untie_embeddings), NULL, "an output layer of its own instead of the word embedding"},
    {"disable-bias-linear", MT_ARG_BOOL, F(disable_bias_linear), NULL, "no biases in the linear layers"},
    {"add-qkv-bias", MT_ARG_BOOL, F(add_qkv_bias), NULL, "keep the QKV bias under --disable-bias-linear"},
    {"max-position-embeddings", MT_ARG_INT, F(max_pos), "N", "position table size (>= --seq-length; default --seq-length)"},
    {"make-vocab-size-divisible-by", MT_ARG_INT, F(make_vocab_divisible_by), "N", "pad the vocabulary to a multiple of N (128)"},
    {"init-method-std", MT_ARG_FLOAT, F(init_method_std), "X", "weight init std (0.02)"},
    {"hidden-dropout", MT_ARG_FLOAT, F(hidden_dropout), "P", "dropout of the embedding and of each sublayer output (0.1; teaching default 0)"},
    {"attention-dropout", MT_ARG_FLOAT, F(attention_dropout), "P", "dropout of the attention probabilities (0.1; teaching default 0)"},
    MT_ARG_GROUP_("training"),
    {"micro-batch-size", MT_ARG_INT, F(micro_batch_size), "N", "sequences per forward/backward (required with --data-path; teaching default 12)"},
    {"global-batch-size", MT_ARG_INT, F(global_batch_size), "N", "sequences per optimizer step (default micro batch; a multiple gives gradient accumulation)"},
    {"train-iters", MT_ARG_LONG, F(train_iters), "N", "optimizer steps to train for (required with --data-path; teaching default 2000)"},
    {"train-samples", MT_ARG_LONG, F(train_samples), "N", "samples to train for, instead of --train-iters (iterations = N / global batch)"},
    {"exit-interval", MT_ARG_LONG, F(exit_interval), "N", "stop (saving first, with --save) at the first iteration divisible by N (none)"},
    {"exit-duration-in-mins", MT_ARG_FLOAT, F(exit_duration_in_mins), "M", "stop (saving first, with --save) once training has run M minutes (none)"},
    {"optimizer", MT_ARG_STRING, F(optimizer), "S", "adam (AdamW, decoupled weight decay) | sgd | adafactor (adam)"},
    {"adam-beta1", MT_ARG_FLOAT, F(adam_beta1), "X", "(0.9)"},
    {"adam-beta2", MT_ARG_FLOAT, F(adam_beta2), "X", "(0.999; teaching default 0.99)"},
    {"adam-eps", MT_ARG_FLOAT, F(adam_eps), "X", "(1e-8)"},
    {"sgd-momentum", MT_ARG_FLOAT, F(sgd_momentum), "X", "SGD momentum (0.9; 0: none)"},
    {"adafactor-beta1", MT_ARG_FLOAT, F(adafactor_beta1), "X", "Adafactor first-moment decay (0: no first moment)"},
    {"adafactor-decay-rate", MT_ARG_FLOAT, F(adafactor_decay_rate), "X", "second-moment decay 1 - step^X (-0.8)"},
    {"adafactor-clip-threshold", MT_ARG_FLOAT, F(adafactor_clip_threshold), "X", "clip each update's RMS to X (1.0)"},
    {"adafactor-eps1", MT_ARG_FLOAT, F(adafactor_eps1), "X", "added to the squared gradient (1e-30)"},
    {"adafactor-eps2", MT_ARG_FLOAT, F(adafactor_eps2), "X", "floor of the parameter scale (1e-3)"},
    {"adafactor-relative-step", MT_ARG_BOOL, F(adafactor_relative_step), NULL, "step size min(1e-2, 1/sqrt(step)) instead of --lr's schedule"},
    {"adafactor-warmup-init", MT_ARG_BOOL, F(adafactor_warmup_init), NULL, "with --adafactor-relative-step: min(1e-6 step, 1/sqrt(step))"},
    {"no-adafactor-scale-parameter", MT_ARG_BOOL, F(no_adafactor_scale_parameter), NULL, "do not scale the step size by the parameter's RMS"},
    {"weight-decay", MT_ARG_FLOAT, F(weight_decay), "X", "(0.01; none on biases and norms)"},
    {"clip-grad", MT_ARG_FLOAT, F(clip_grad), "X", "global gradient-norm clip (1.0; 0 disables)"},
    {"seed", MT_ARG_LONG, F(seed), "N", "random seed for weights and data order (1234)"},
    {"recompute-granularity", MT_ARG_STRING, F(recompute_granularity), "S", "activation recompute: full (whole layers) | selective (the attention probabilities) (none)"},
    {"recompute-method", MT_ARG_STRING, F(recompute_method), "S", "full recompute: uniform (chunks of --recompute-num-layers) | block (the first --recompute-num-layers layers of each stage) (required with full)"},
    {"recompute-num-layers", MT_ARG_INT, F(recompute_num_layers), "N", "full recompute: layers per chunk (uniform) or per stage (block) (required with full)"},
    {"recompute-activations", MT_ARG_BOOL, F(recompute_activations), NULL, "the older spelling of --recompute-granularity selective"},
    {"recompute-modules", MT_ARG_WORDS, F(recompute_modules), "M", "selective recompute: what is recomputed; core_attn only (core_attn)"},
    {"attention-backend", MT_ARG_STRING, F(attention_backend), "S", "core attention: flash (or auto, fused) keeps a log-sum-exp per query and recomputes "
     "the probabilities | unfused (or local) keeps them (auto)"},
    {"eod-mask-loss", MT_ARG_BOOL, F(eod_mask_loss), NULL, "no loss at positions whose input token is the end of document"},
    {"reset-attention-mask", MT_ARG_BOOL, F(reset_attention_mask), NULL, "a token attends only to its own document of the packed sequence (after each end of document)"},
    {"reset-position-ids", MT_ARG_BOOL, F(reset_position_ids), NULL, "position ids restart at 0 after each end-of-document token"},
    MT_ARG_GROUP_("learning rate"),
    {"lr", MT_ARG_FLOAT, F(lr), "X", "peak learning rate (required with --data-path; teaching default 1e-3)"},
    {"min-lr", MT_ARG_FLOAT, F(min_lr), "X", "final learning rate (0; teaching default 1e-4)"},
    {"lr-decay-style", MT_ARG_STRING, F(lr_decay_style), "S", "constant | linear | cosine (linear; teaching default cosine)"},
    {"lr-warmup-iters", MT_ARG_LONG, F(lr_warmup_iters), "N", "linear warmup steps (0; teaching default 100)"},
    {"lr-decay-iters", MT_ARG_LONG, F(lr_decay_iters), "N", "decay horizon (default --train-iters)"},
    {"lr-warmup-fraction", MT_ARG_FLOAT, F(lr_warmup_fraction), "X", "warmup over this share of the decay horizon (instead of --lr-warmup-iters)"},
    {"lr-decay-samples", MT_ARG_LONG, F(lr_decay_samples), "N", "with --train-samples: the decay horizon in samples (default --train-samples)"},
    {"lr-warmup-samples", MT_ARG_LONG, F(lr_warmup_samples), "N", "with --train-samples: the warmup in samples (0)"},
    MT_ARG_GROUP_("checkpointing"),
    {"save", MT_ARG_STRING, F(save), "DIR", "checkpoint directory to write (none: no checkpoints)"},
    {"save-interval", MT_ARG_LONG, F(save_interval), "N", "iterations between checkpoints (also saved at the end)"},
    {"load", MT_ARG_STRING, F(load), "DIR", "checkpoint directory to resume from (none: from scratch)"},
    {"ckpt-step", MT_ARG_LONG, F(ckpt_step), "N", "load this iteration instead of the latest (the latest)"},
    {"no-load-optim", MT_ARG_BOOL, F(no_load_optim), NULL, "do not load the optimizer state"},
    {"no-load-rng", MT_ARG_BOOL, F(no_load_rng), NULL, "do not load the RNG state"},
    {"finetune", MT_ARG_BOOL, F(finetune), NULL, "load weights only; start at iteration 0"},
    MT_ARG_GROUP_("mixed precision"),
    {"bf16", MT_ARG_BOOL, F(bf16), NULL, "mixed precision: bf16 GEMMs over fp32 master weights and gradients (no loss scaling unless --loss-scale)"},
    {"fp16", MT_ARG_BOOL, F(fp16), NULL, "mixed precision: fp16 GEMMs over fp32 master weights and gradients, with dynamic loss scaling"},
    {"loss-scale", MT_ARG_DOUBLE, F(loss_scale), "X", "a constant loss scale instead of the dynamic one (--fp16, --bf16)"},
    {"initial-loss-scale", MT_ARG_DOUBLE, F(initial_loss_scale), "X", "dynamic loss scaling: the first scale (2^32)"},
    {"min-loss-scale", MT_ARG_DOUBLE, F(min_loss_scale), "X", "dynamic loss scaling: the lowest scale (1.0)"},
    {"loss-scale-window", MT_ARG_INT, F(loss_scale_window), "N", "dynamic loss scaling: clean iterations before the scale doubles (1000)"},
    {"hysteresis", MT_ARG_INT, F(hysteresis), "N", "dynamic loss scaling: overflowing iterations before the scale halves (2)"},
    MT_ARG_GROUP_("distributed"),
    {"tensor-model-parallel-size", MT_ARG_INT, F(tp), "N", "tensor parallelism (1)"},
    {"pipeline-model-parallel-size", MT_ARG_INT, F(pp), "N", "pipeline parallelism (1)"},
    {"use-distributed-optimizer", MT_ARG_BOOL, F(use_distributed_optimizer), NULL,
     "shard the optimizer state over the data-parallel group (ZeRO-1; adafactor by whole tensors)"},
    {"ddp-bucket-size", MT_ARG_LONG, F(ddp_bucket_size), "N", "elements per data-parallel gradient all-reduce (max(40M, 1M x dp))"},
    {"distributed-timeout-minutes", MT_ARG_FLOAT, F(distributed_timeout_minutes), "M",
     "end the job when a communication call waits longer (10; fractions allowed)"},
    MT_SPECS_BACKEND,
    MT_ARG_GROUP_("validation"),
    {"eval-interval", MT_ARG_LONG, F(eval_interval), "N", "iterations between validations (1000, 0 = only at the end; teaching default 500)"},
    {"eval-iters", MT_ARG_LONG, F(eval_iters), "N", "global batches per validation (100, 0 disables; teaching default 20)"},
    MT_ARG_GROUP_("data"),
    {"data-path", MT_ARG_WORDS, F(data_path), "PATH", "a text file, or [W1] PREFIX1 [W2 PREFIX2 ...] of .bin/.idx datasets (default: the shipped tiny Shakespeare)"},
    {"split", MT_ARG_STRING, F(split), "A,B,C", "train,valid,test proportions (969,30,1; teaching default 90,10,0)"},
    {"train-data-path", MT_ARG_WORDS, F(split_path[0]), "PATH", "instead of --data-path and --split: the training data alone, [W1] PREFIX1 [W2 PREFIX2 ...] used whole (none)"},
    {"valid-data-path", MT_ARG_WORDS, F(split_path[1]), "PATH", "with --train-data-path: the validation data (default: none)"},
    {"test-data-path", MT_ARG_WORDS, F(split_path[2]), "PATH", "with --train-data-path: the test data (default: none)"},
    {"seq-length", MT_ARG_INT, F(seq_length), "N", "training sequence length (required with --data-path; teaching default 64)"},
    {"tokenizer-type", MT_ARG_STRING, F(tokenizer_type), "S", MT_TOKENIZER_TYPES_HELP " (CharLevel)"},
    MT_SPECS_BPE_FILES,
    MT_SPECS_VOCAB_SIZE,
    {"mask-prob", MT_ARG_DOUBLE, F(mask_prob), "P", "BERT: share of the tokens masked (0.15)"},
    {"short-seq-prob", MT_ARG_DOUBLE, F(short_seq_prob), "P", "BERT: probability of a shorter sample (0.1)"},
    MT_ARG_GROUP_("logging"),
    {"log-interval", MT_ARG_LONG, F(log_interval), "N", "iterations per log line (100)"},
    {"log-json", MT_ARG_STRING, F(log_json), "FILE", "also write the log as JSON lines (none)"},
    {"plot", MT_ARG_STRING, F(plot), "FILE", "at the end, draw the loss, learning rate and tokens/s into FILE.svg (or .png with cairo); "
     "the teaching default draws next to --log-json (megatron-c's)"},
    {"log-params-norm", MT_ARG_BOOL, F(log_params_norm), NULL, "add the parameters' L2 norm to the log line"},
    {"log-throughput", MT_ARG_BOOL, F(log_throughput), NULL, "add Megatron's throughput per rank (TFLOP/s, its FLOPs formula) to the log line"},
    {"tensorboard-dir", MT_ARG_STRING, F(tensorboard_dir), "DIR", "also write TensorBoard event files with Megatron's scalar tags (none)"},
    {"tensorboard-log-interval", MT_ARG_LONG, F(tensorboard_log_interval), "N", "iterations between TensorBoard scalars (1)"},
    {"log-validation-ppl-to-tensorboard", MT_ARG_BOOL, F(log_validation_ppl_to_tensorboard), NULL, "also the validation perplexity"},
    {"no-log-loss-scale-to-tensorboard", MT_ARG_BOOL, F(no_log_loss_scale_to_tensorboard), NULL, "leave the loss scale out"},
    {"log-batch-size-to-tensorboard", MT_ARG_BOOL, F(log_batch_size_to_tensorboard), NULL, "also the global batch size"},
    {"log-learning-rate-to-tensorboard", MT_ARG_BOOL, F(log_learning_rate_to_tensorboard), NULL, "the learning rate (always written here)"},
    {"log-loss-scale-to-tensorboard", MT_ARG_BOOL, F(log_loss_scale_to_tensorboard), NULL, "the loss scale (written by default)"},
    {"log-memory-to-tensorboard", MT_ARG_BOOL, F(log_memory_to_tensorboard), NULL, "also the backend's allocated and peak bytes (mem-allocated-bytes, mem-max-allocated-bytes)"},
    {"log-world-size-to-tensorboard", MT_ARG_BOOL, F(log_world_size_to_tensorboard), NULL, "also the number of ranks (world-size)"},
    {"sample-tokens", MT_ARG_INT, F(sample_tokens), "N", "tokens of text generated at the end (200; 0 = none)"},
    {"sample-temperature", MT_ARG_FLOAT, F(sample_temperature), "X", "temperature of that sample (0.8)"},
    {"no-progress", MT_ARG_BOOL, F(no_progress), NULL, "no progress display on the terminal"},
    MT_ARG_GROUP_("accepted for Megatron scripts, without effect here"),
    K("use-mcore-models"), K("use-flash-attn"), K("attention-softmax-in-fp32"),
    K("no-masked-softmax-fusion"), K("no-bias-gelu-fusion"), K("no-bias-swiglu-fusion"),
    K("no-bias-dropout-fusion"), K("no-rope-fusion"), K("no-gradient-accumulation-fusion"),
    K("cross-entropy-loss-fusion"), K("no-persist-layer-norm"), K("overlap-grad-reduce"),
    K("overlap-param-gather"), K("accumulate-allreduce-grads-in-fp32"), K("fp32-residual-connection"), K("no-async-tensor-model-parallel-allreduce"), K("manual-gc"),
    KV("transformer-impl"), KV("num-workers"), KV("distributed-backend"),
    KV("data-cache-path"), KV("timing-log-level"),
    /* logging destinations (after the kernel choices: their own note) */
    LV("tensorboard-queue-size"), L("log-timers-to-tensorboard"), LV("wandb-project"), LV("wandb-exp-name"), LV("wandb-save-dir"),
};
#undef F
#undef K
#undef KV
#undef L
#undef LV
#define FIRST_KERNEL_CHOICE mt_args_find(SPECS, NSPECS, "use-mcore-models")
#define FIRST_LOGGING_CHOICE mt_args_find(SPECS, NSPECS, "tensorboard-queue-size")
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

static const char *SYNOPSIS =
    "Trains a GPT, a Llama-style model (--position-embedding-type rope\n"
    "--normalization RMSNorm --swiglu --group-query-attention ...) or BERT\n"
    "(--model bert) with Megatron-LM's flags. Without --data-path: the teaching\n"
    "default, a character-level model on the shipped tiny Shakespeare (4 layers,\n"
    "4 heads, hidden 128, sequence 64, micro-batch 12, 2000 iterations, lr 1e-3\n"
    "with 100 warmup iterations and cosine decay to 1e-4, AdamW beta2 0.99); any\n"
    "flag given overrides that setting. With --data-path, defaults are\n"
    "Megatron-LM's and --num-layers, --hidden-size, --num-attention-heads,\n"
    "--seq-length, --micro-batch-size, --train-iters (or --train-samples) and\n"
    "--lr are required. `megatron-c help train` prints this.";

static void set_megatron_defaults(struct mt_train_args *a)
{
    memset(a, 0, sizeof *a);
    a->model = "gpt";
    a->mask_prob = 0.15;
    a->short_seq_prob = 0.1;
    a->make_vocab_divisible_by = 128;
    a->num_query_groups = 1;
    a->position_embedding_type = "learned_absolute";
    a->normalization = "LayerNorm";
    a->norm_epsilon = 1e-5;
    a->rotary_base = 10000.0;
    a->rotary_percent = 1.0;
    a->rope_scaling_factor = 8.0;
    a->hidden_dropout = 0.1f;
    a->attention_dropout = 0.1f;
    a->init_method_std = 0.02f;
    a->lr = -1;
    a->min_lr = 0.0f;
    a->lr_decay_style = "linear";
    a->optimizer = "adam";
    a->adam_beta1 = 0.9f;
    a->adam_beta2 = 0.999f;
    a->adam_eps = 1e-8f;
    a->sgd_momentum = 0.9f;
    {
        struct mt_adafactor_config af;
        mt_adafactor_defaults(&af);
        a->adafactor_beta1 = af.beta1;
        a->adafactor_decay_rate = af.decay_rate;
        a->adafactor_clip_threshold = af.clip_threshold;
        a->adafactor_eps1 = af.eps1;
        a->adafactor_eps2 = af.eps2;
    }
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
    a->distributed_timeout_minutes = 10.0f;
    a->sample_tokens = 200;
    a->sample_temperature = 0.8f;
    a->initial_loss_scale = MT_LOSS_SCALE_INITIAL;
    a->min_loss_scale = 1.0;
    a->loss_scale_window = 1000;
    a->hysteresis = 2;
    a->recompute_num_layers = -1;
    a->lr_warmup_fraction = -1.0f; /* not given */
    a->tensorboard_log_interval = 1;
}

/* The teaching preset, applied to every flag the user did not give. */
static void apply_teaching_preset(struct mt_train_args *a, const unsigned char *given)
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
    /* a small model that has seen little data: dropout only slows it */
    SET("hidden-dropout", hidden_dropout, 0.0f);
    SET("attention-dropout", attention_dropout, 0.0f);
#undef SET
}

/* The teaching default ends with the loss as a sparkline, and, when it
 * writes a --log-json trace, draws the curves next to it (FILE.svg). */
static void teaching_pictures(struct mt_train_args *a)
{
    a->loss_sparkline = 1;
    if (a->plot || !a->log_json) return;
    static char svg[4200];
    const char *dot = strrchr(a->log_json, '.'), *slash = strrchr(a->log_json, '/');
    const size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - a->log_json) : strlen(a->log_json);
    snprintf(svg, sizeof svg, "%.*s.svg", (int)(stem < 4000 ? stem : 4000), a->log_json);
    if (strcmp(svg, a->log_json) == 0) snprintf(svg, sizeof svg, "%s.svg", a->log_json); /* never the log itself */
    a->plot = svg;
}

/* --train/valid/test-data-path: Megatron's blend per split, which replaces
 * --data-path and --split (its assertion), for .bin/.idx prefixes */
static void check_split_paths(const struct mt_train_args *a)
{
    const int any = a->split_path[0].n || a->split_path[1].n || a->split_path[2].n;
    if (!any) return;
    if (a->data_path.n)
        mt_user_error("give either --data-path (with --split) or --train-data-path [--valid-data-path] "
                      "[--test-data-path], as in Megatron", "--data-path and the per-split data paths together");
    if (!a->split_path[0].n)
        mt_user_error("add --train-data-path PREFIX", "--valid-data-path and --test-data-path need --train-data-path");
    if (strcmp(a->model, "gpt") != 0)
        mt_user_error("give --data-path with --split", "--model %s does not take per-split data paths", a->model);
}

static void require(const unsigned char *given)
{
    const char *req[] = {"num-layers", "hidden-size", "num-attention-heads", "seq-length",
                         "micro-batch-size", "train-iters", "lr"};
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
        if (!given[mt_args_find(SPECS, NSPECS, req[i])] &&
            !(strcmp(req[i], "train-iters") == 0 && given[mt_args_find(SPECS, NSPECS, "train-samples")]))
            mt_user_error("with --data-path the model and run are described by flags, as in Megatron-LM; "
                          "without --data-path the teaching default fills them in",
                          "--%s is required with --data-path", req[i]);
}

static void validate_attention(const struct mt_train_args *a)
{
    if (a->attention_backend && mt_attn_impl_parse(a->attention_backend) < 0)
        mt_user_error("use flash (or its other names here, auto and fused) or unfused (or local)",
                      "unknown --attention-backend '%s'", a->attention_backend);
}

/* Activation recompute, with Megatron's checks (TransformerConfig): full
 * needs a method and a layer count, selective takes neither. */
static void validate_recompute(struct mt_train_args *a)
{
    if (a->recompute_activations) {
        if (a->recompute_granularity && strcmp(a->recompute_granularity, "selective") != 0)
            mt_user_error("give one of them", "--recompute-activations (selective) contradicts "
                          "--recompute-granularity %s", a->recompute_granularity);
        a->recompute_granularity = "selective";
    }
    const char *g = a->recompute_granularity;
    if (!g) {
        if (a->recompute_method || a->recompute_num_layers >= 0 || a->recompute_modules.n)
            mt_user_error("add --recompute-granularity full (or selective)",
                          "--recompute-method, --recompute-num-layers and --recompute-modules need "
                          "--recompute-granularity");
        return;
    }
    const int gran = mt_recompute_granularity_parse(g);
    if (gran < 0) mt_user_error("use full or selective", "unknown --recompute-granularity '%s'", g);
    if (gran == MT_RECOMPUTE_SELECTIVE) {
        if (a->recompute_method || a->recompute_num_layers >= 0)
            mt_user_error("drop them, or use --recompute-granularity full",
                          "--recompute-method and --recompute-num-layers are for --recompute-granularity full");
        for (int i = 0; i < a->recompute_modules.n; i++)
            if (strcmp(a->recompute_modules.v[i], "core_attn") != 0)
                mt_user_error("megatron-c recomputes the core attention (core_attn) only",
                              "--recompute-modules %s is not supported", a->recompute_modules.v[i]);
        return;
    }
    if (a->recompute_modules.n)
        mt_user_error("drop it, or use --recompute-granularity selective",
                      "--recompute-modules is for --recompute-granularity selective");
    if (!a->recompute_method || mt_recompute_method_parse(a->recompute_method) < 0)
        mt_user_error("add --recompute-method uniform (chunks of layers) or block (the first layers of each stage)",
                      "--recompute-granularity full needs --recompute-method uniform or block%s%s%s",
                      a->recompute_method ? " (got '" : "", a->recompute_method ? a->recompute_method : "",
                      a->recompute_method ? "')" : "");
    const int per_stage = a->num_layers / (a->pp > 0 ? a->pp : 1);
    const int block = mt_recompute_method_parse(a->recompute_method) == MT_RECOMPUTE_BLOCK;
    if (a->recompute_num_layers < 0)
        mt_user_error(block ? "e.g. --recompute-num-layers 1: the first layer of each stage"
                            : "e.g. --recompute-num-layers 1: every layer rerun from its own input",
                      "--recompute-granularity full needs --recompute-num-layers");
    if (block ? a->recompute_num_layers > per_stage
              : (a->recompute_num_layers < 1 || a->recompute_num_layers > per_stage))
        mt_user_error(NULL, "--recompute-num-layers %d must lie in [%d, %d] (the layers of a pipeline stage) "
                      "with --recompute-method %s", a->recompute_num_layers, block ? 0 : 1, per_stage,
                      a->recompute_method);
}

/* The learning-rate schedule in iterations (fractional where Megatron's
 * sample-based one falls between iterations): iteration-based flags, or
 * sample-based ones with --train-samples (divided by the global batch),
 * and the warmup as a fraction of the decay horizon; Megatron's rules on
 * which combine. */
static void validate_schedule(struct mt_train_args *a, const unsigned char *given)
{
    char hint[256];
#define GIVEN(flag) given[mt_args_find(SPECS, NSPECS, flag)]
    const int by_samples = GIVEN("train-samples"), fraction = GIVEN("lr-warmup-fraction");
    if (by_samples && GIVEN("train-iters"))
        mt_user_error("give one of them", "--train-iters and --train-samples exclude each other");
    if (by_samples && (GIVEN("lr-decay-iters") || GIVEN("lr-warmup-iters")))
        mt_user_error("with --train-samples use --lr-decay-samples and --lr-warmup-samples (or --lr-warmup-fraction)",
                      "--lr-decay-iters and --lr-warmup-iters are iteration-based; this run counts samples");
    if (!by_samples && (GIVEN("lr-decay-samples") || GIVEN("lr-warmup-samples")))
        mt_user_error("add --train-samples, or use --lr-decay-iters and --lr-warmup-iters",
                      "--lr-decay-samples and --lr-warmup-samples need --train-samples");
    if (fraction && (GIVEN("lr-warmup-iters") || GIVEN("lr-warmup-samples")))
        mt_user_error("give one of them", "--lr-warmup-fraction excludes --lr-warmup-iters and --lr-warmup-samples");
    if (fraction && !(a->lr_warmup_fraction >= 0 && a->lr_warmup_fraction < 1))
        mt_user_error(NULL, "--lr-warmup-fraction must lie in [0, 1) (got %g)", a->lr_warmup_fraction);
    if (a->train_samples < 0 || a->lr_decay_samples < 0 || a->lr_warmup_samples < 0 || a->lr_warmup_iters < 0 ||
        a->lr_decay_iters < 0)
        mt_user_error(NULL, "--train-samples, --lr-*-samples and --lr-*-iters must not be negative");
    const double gbs = (double)a->global_batch_size;
    if (by_samples) {
        if (a->lr_decay_samples == 0) a->lr_decay_samples = a->train_samples;
        a->sched_decay = (double)a->lr_decay_samples / gbs;
        a->sched_warmup = (double)a->lr_warmup_samples / gbs;
    } else {
        if (a->lr_decay_iters == 0) a->lr_decay_iters = a->train_iters;
        a->sched_decay = (double)a->lr_decay_iters;
        a->sched_warmup = (double)a->lr_warmup_iters;
    }
    if (fraction) a->sched_warmup = a->lr_warmup_fraction * a->sched_decay; /* replaces the preset's warmup */
    if ((GIVEN("lr-warmup-iters") || GIVEN("lr-warmup-samples")) && a->sched_warmup > 0 &&
        a->sched_warmup >= a->sched_decay) {
        /* Megatron asserts lr_warmup_steps < lr_decay_steps; the teaching
         * preset's 100 may exceed a short run's iterations (it then warms
         * up for the whole run) */
        if (by_samples)
            mt_user_error("use fewer --lr-warmup-samples than --lr-decay-samples (default --train-samples)",
                          "--lr-warmup-samples (%ld) is not below --lr-decay-samples (%ld)", a->lr_warmup_samples,
                          a->lr_decay_samples);
        snprintf(hint, sizeof hint, "use fewer warmup iterations than %ld (--lr-decay-iters, default "
                 "--train-iters)", a->lr_decay_iters);
        mt_user_error(hint, "--lr-warmup-iters (%ld) is not below --lr-decay-iters (%ld)", a->lr_warmup_iters,
                      a->lr_decay_iters);
    }
    if (GIVEN("exit-duration-in-mins") && !(a->exit_duration_in_mins > 0))
        mt_user_error(NULL, "--exit-duration-in-mins must be positive (got %g)", a->exit_duration_in_mins);
    if (a->exit_interval < 0) mt_user_error(NULL, "--exit-interval must not be negative");
    if (a->tensorboard_log_interval < 1) mt_user_error(NULL, "--tensorboard-log-interval must be positive");
#undef GIVEN
}

/* --bf16, --fp16 and the loss scaler's flags (Megatron's checks) */
static void validate_precision(const struct mt_train_args *a, const unsigned char *given)
{
    if (a->bf16 && a->fp16) mt_user_error("choose one", "--bf16 and --fp16 exclude each other");
    if (given[mt_args_find(SPECS, NSPECS, "loss-scale")] && !(a->loss_scale > 0 && isfinite(a->loss_scale)))
        mt_user_error("a power of two such as 65536", "--loss-scale must be a positive number (got %g)",
                      a->loss_scale);
    if (!(a->initial_loss_scale > 0 && isfinite(a->initial_loss_scale)) ||
        !(a->min_loss_scale > 0 && a->min_loss_scale <= a->initial_loss_scale))
        mt_user_error("Megatron's defaults are 2^32 and 1", "--initial-loss-scale (%g) must be positive and "
                      "finite, --min-loss-scale (%g) positive and at most it", a->initial_loss_scale,
                      a->min_loss_scale);
    if (a->loss_scale_window < 1 || a->hysteresis < 1)
        mt_user_error("Megatron's defaults are 1000 and 2", "--loss-scale-window (%d) and --hysteresis (%d) "
                      "must be positive", a->loss_scale_window, a->hysteresis);
    if (a->loss_scale > 0 && !a->bf16 && !a->fp16)
        mt_warn("--loss-scale has no effect without --fp16 or --bf16 (fp32 training is not scaled)");
}

static void validate(struct mt_train_args *a, const unsigned char *given)
{
    char hint[256];
#define POS(flag, v) \
    if ((v) < 1) mt_user_error(NULL, "--%s must be a positive integer (got %ld)", flag, (long)(v))
    POS("num-layers", a->num_layers);
    POS("hidden-size", a->hidden_size);
    POS("num-attention-heads", a->num_heads);
    POS("seq-length", a->seq_length);
    POS("micro-batch-size", a->micro_batch_size);
    if (a->train_samples > 0) { /* Megatron: train_samples // global batch */
        const long gbs = a->global_batch_size > 0 ? a->global_batch_size : a->micro_batch_size > 0 ? a->micro_batch_size : 1;
        a->train_iters = a->train_samples / gbs;
    }
    POS("train-iters", a->train_iters);
    POS("make-vocab-size-divisible-by", a->make_vocab_divisible_by);
    POS("log-interval", a->log_interval);
#undef POS
    if (a->kv_channels == 0 && a->hidden_size % a->num_heads != 0) {
        snprintf(hint, sizeof hint, "choose --num-attention-heads dividing %d, e.g. %d, or give --kv-channels",
                 a->hidden_size, a->hidden_size % 4 == 0 ? 4 : 1);
        mt_user_error(hint, "--hidden-size (%d) is not divisible by --num-attention-heads (%d)",
                      a->hidden_size, a->num_heads);
    }
    if (a->ffn_hidden_size < 0 || a->kv_channels < 0)
        mt_user_error(NULL, "--ffn-hidden-size and --kv-channels must be positive");
    if (a->group_query_attention && a->num_query_groups < 1)
        mt_user_error(NULL, "--num-query-groups must be a positive integer (got %d)", a->num_query_groups);
    if (mt_position_embedding_parse(a->position_embedding_type) < 0)
        mt_user_error("use learned_absolute, rope or none", "unknown --position-embedding-type '%s'",
                      a->position_embedding_type);
    if (mt_normalization_parse(a->normalization) < 0)
        mt_user_error("use LayerNorm or RMSNorm", "unknown --normalization '%s'", a->normalization);
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
    validate_schedule(a, given);
    if (a->weight_decay < 0) mt_user_error("0 disables it", "--weight-decay must not be negative (got %g)",
                                           a->weight_decay);
    if (a->clip_grad < 0) mt_user_error("0 disables clipping", "--clip-grad must not be negative (got %g)",
                                        a->clip_grad);
    if (!(a->init_method_std > 0 && a->init_method_std <= 10))
        mt_user_error("Megatron's default is 0.02", "--init-method-std must lie in (0, 10] (got %g)",
                      a->init_method_std);
    if (a->sample_temperature < 0)
        mt_user_error("0 samples greedily", "--sample-temperature must not be negative (got %g)",
                      a->sample_temperature);
    if (mt_optim_parse(a->optimizer) < 0)
        mt_user_error("use adam (AdamW), sgd or adafactor", "unknown --optimizer '%s'", a->optimizer);
    if (!(a->sgd_momentum >= 0 && a->sgd_momentum < 1))
        mt_user_error("Megatron's default is 0.9", "--sgd-momentum must lie in [0, 1) (got %g)",
                      a->sgd_momentum);
    if (!(a->adafactor_beta1 >= 0 && a->adafactor_beta1 < 1))
        mt_user_error("0 means no first moment", "--adafactor-beta1 must lie in [0, 1) (got %g)",
                      a->adafactor_beta1);
    if (!(a->adafactor_decay_rate < 0))
        mt_user_error("the paper's and transformers' value is -0.8",
                      "--adafactor-decay-rate must be negative (got %g)", a->adafactor_decay_rate);
    if (!(a->adafactor_clip_threshold > 0) || a->adafactor_eps1 < 0 || a->adafactor_eps2 < 0)
        mt_user_error(NULL, "--adafactor-clip-threshold must be positive and --adafactor-eps1, "
                      "--adafactor-eps2 not negative");
    if (a->adafactor_warmup_init && !a->adafactor_relative_step)
        mt_user_error("add --adafactor-relative-step", "--adafactor-warmup-init needs --adafactor-relative-step");
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
    if (!(a->distributed_timeout_minutes > 0))
        mt_user_error("Megatron's default is 10", "--distributed-timeout-minutes must be positive (got %g)",
                      a->distributed_timeout_minutes);
    if (a->sample_tokens < 0) mt_user_error(NULL, "--sample-tokens must not be negative");
    validate_precision(a, given);
    validate_recompute(a);
    validate_attention(a);
    if (strcmp(a->model, "gpt") != 0 && strcmp(a->model, "bert") != 0)
        mt_user_error("use gpt or bert", "unknown --model '%s'", a->model);
    const int bert = strcmp(a->model, "bert") == 0;
    if (bert && !a->data_path.n)
        mt_user_error("preprocess a corpus with --split-sentences and give its PREFIX_text_sentence",
                      "--model bert needs --data-path (a sentence-level .bin/.idx dataset)");
    if (bert && strcmp(a->tokenizer_type, "BertWordPieceLowerCase") != 0 &&
        strcmp(a->tokenizer_type, "BertWordPieceCase") != 0)
        mt_user_error("add --tokenizer-type BertWordPieceLowerCase (or BertWordPieceCase with its vocabulary)",
                      "--model bert needs a BERT tokenizer (given --tokenizer-type %s)", a->tokenizer_type);
    if (!(a->mask_prob > 0 && a->mask_prob < 1) || !(a->short_seq_prob >= 0 && a->short_seq_prob <= 1))
        mt_user_error(NULL, "--mask-prob must lie in (0, 1) and --short-seq-prob in [0, 1]");
    if ((a->bert_no_binary_head || a->post_layernorm) && !bert)
        mt_user_error("add --model bert", "--bert-no-binary-head and --post-layernorm are BERT's");
    if (bert && (a->reset_attention_mask || a->reset_position_ids || a->eod_mask_loss))
        mt_user_error("drop it: a BERT sample is one or two sentences with its own padding mask",
                      "--reset-attention-mask, --reset-position-ids and --eod-mask-loss are for GPT's packed documents");
    if (!(a->hidden_dropout >= 0 && a->hidden_dropout < 1) ||
        !(a->attention_dropout >= 0 && a->attention_dropout < 1))
        mt_user_error(NULL, "--hidden-dropout and --attention-dropout must lie in [0, 1)");
}

/* The given flags of SPECS[from, to) as "--a, --b" into list (empty if none). */
static size_t given_list(const unsigned char *given, int from, int to, char *list, size_t size)
{
    size_t len = 0;
    list[0] = 0;
    for (int i = from; i < to; i++)
        if (given[i] && len < size - 64)
            len += (size_t)snprintf(list + len, size - len, "%s--%s", len ? ", " : "", SPECS[i].name);
    return len;
}

/* One note naming the kernel-choice flags given, one the logging ones. */
static void note_kernel_choices(const unsigned char *given)
{
    char list[768];
    if (given_list(given, FIRST_KERNEL_CHOICE, FIRST_LOGGING_CHOICE, list, sizeof list))
        mt_warn("%s: Megatron kernel, fusion, overlap or backend choices; megatron-c has one implementation "
                "of each and ignores them (the result is the same)", list);
    if (given_list(given, FIRST_LOGGING_CHOICE, NSPECS, list, sizeof list))
        mt_warn("%s: megatron-c writes no Weights & Biases logs and no TensorBoard timers, memory or world "
                "size yet; --tensorboard-dir gets the losses, learning rate, batch size, norms and loss scale, "
                "and the log is on standard output and, with --log-json FILE, in JSON lines", list);
}

/* Megatron flags that change what is computed and are not implemented:
 * refused, each with its reason, before the parser would call them
 * unknown. */
static const struct {
    const char *flag, *reason;
} REFUSED[] = {
    {"rampup-batch-size", "a batch-size ramp-up is not implemented; give the final --global-batch-size"},
    {"step-batch-size-schedule", "a batch-size schedule is not implemented; give the final --global-batch-size"},
    {"fp8-format", "fp8 is not implemented; --bf16 is the closest"},
    {"apply-layernorm-1p", "the zero-centred LayerNorm weight (1 + w) is not implemented"},
    {"num-experts", "mixture-of-experts layers are not implemented"},
    {"context-parallel-size", "context parallelism is not implemented; tensor, pipeline and data parallelism are"},
    {"num-layers-per-virtual-pipeline-stage", "the interleaved pipeline schedule is not implemented (1F1B is)"},
};

static void refuse_unimplemented(int argc, char **argv)
{
    char list[1024] = "";
    size_t len = 0;
    for (int i = 2; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) continue;
        const size_t n = strcspn(argv[i] + 2, "=");
        for (size_t k = 0; k < sizeof REFUSED / sizeof REFUSED[0]; k++)
            if (strlen(REFUSED[k].flag) == n && strncmp(argv[i] + 2, REFUSED[k].flag, n) == 0 &&
                len < sizeof list - 200)
                len += (size_t)snprintf(list + len, sizeof list - len, "\n  --%s: %s", REFUSED[k].flag,
                                        REFUSED[k].reason);
    }
    if (len)
        mt_user_error("drop these flags; the rest of a Megatron script runs as it is",
                      "Megatron flags that megatron-c does not implement:%s", list);
}

int mt_cmd_train(int argc, char **argv)
{
    struct train_cli cli;
    struct mt_train_args *a = &cli.a;
    unsigned char given[NSPECS];
    memset(given, 0, sizeof given);
    memset(&cli, 0, sizeof cli);
    set_megatron_defaults(a);
    refuse_unimplemented(argc, argv);
    mt_args_parse(SPECS, NSPECS, &cli, given, argc, argv, 2, "train", SYNOPSIS);
    check_split_paths(a);
    if (!a->data_path.n && !a->split_path[0].n) {
        apply_teaching_preset(a, given);
        teaching_pictures(a);
    } else {
        require(given);
    }
    /* the tokenizer the vocabulary files describe, or a mismatch, before any work */
    const int typed = given[mt_args_find(SPECS, NSPECS, "tokenizer-type")];
    const char *inferred = mt_tokenizer_infer(typed ? a->tokenizer_type : NULL, a->vocab_file, a->merge_file);
    if (!typed && inferred) a->tokenizer_type = inferred;
    validate(a, given);
    if (a->plot) mt_chart_check_output("--plot", a->plot);
    note_kernel_choices(given);
    return mt_train_run(a);
}
