/* trainer.h: the training loop behind `megatron-c train`.
 *
 * The command (src/cmd/train.c) parses and checks the flags into struct
 * mt_train_args; mt_train_run builds the model (model/), the optimizer
 * (optim/), the data (data/), the rank grid and the pipeline schedule
 * (parallel/), and runs the iterations: schedule, finalize the gradients,
 * optimizer step, log, validate, save. */
#ifndef MT_TRAIN_TRAINER_H
#define MT_TRAIN_TRAINER_H
#include "core/args.h"
#include "model/config.h"

/* The flags of `megatron-c train`, with Megatron's names (fields in the
 * order of the --help listing). */
struct mt_train_args {
    /* model */
    const char *model;      /* "gpt" | "bert" (Megatron: pretrain_gpt.py / pretrain_bert.py) */
    int bert_no_binary_head, post_layernorm, openai_gelu;
    double mask_prob, short_seq_prob;
    int num_layers, hidden_size, num_heads, ffn_hidden_size, seq_length, max_pos;
    int kv_channels, num_query_groups, group_query_attention;
    const char *position_embedding_type, *normalization;
    int use_rotary_position_embeddings, no_position_embedding;
    double rotary_base, rotary_percent, norm_epsilon;
    int use_rope_scaling;           /* Llama 3.x RoPE scaling, by rope_scaling_factor */
    double rope_scaling_factor;
    int swiglu, untie_embeddings, disable_bias_linear, add_qkv_bias;
    float hidden_dropout, attention_dropout;
    int make_vocab_divisible_by;
    float init_method_std;
    /* batch and schedule */
    int micro_batch_size, global_batch_size;
    long train_iters;
    float lr, min_lr;
    long lr_warmup_iters, lr_decay_iters;
    float lr_warmup_fraction;          /* < 0: not given */
    long train_samples, lr_decay_samples, lr_warmup_samples; /* 0: not given */
    double sched_warmup, sched_decay;  /* the schedule in iterations (fractional after samples), set by train.c */
    long exit_interval;
    float exit_duration_in_mins;       /* 0: none */
    int log_params_norm, log_throughput, eod_mask_loss;
    int reset_attention_mask, reset_position_ids; /* packed documents (Megatron's) */
    const char *tensorboard_dir;
    long tensorboard_log_interval;
    int log_validation_ppl_to_tensorboard, no_log_loss_scale_to_tensorboard, log_batch_size_to_tensorboard;
    int log_memory_to_tensorboard, log_world_size_to_tensorboard;
    int log_learning_rate_to_tensorboard, log_loss_scale_to_tensorboard; /* accepted: the defaults here */
    const char *lr_decay_style;
    /* optimizer */
    float adam_beta1, adam_beta2, adam_eps, weight_decay, clip_grad;
    const char *optimizer; /* adam | sgd | adafactor */
    float sgd_momentum;
    float adafactor_beta1, adafactor_decay_rate, adafactor_clip_threshold, adafactor_eps1,
        adafactor_eps2;
    int adafactor_relative_step, adafactor_warmup_init, no_adafactor_scale_parameter;
    int use_distributed_optimizer; /* ZeRO-1 over the data-parallel group */
    long seed;
    /* logging, validation, checkpoints */
    long log_interval, eval_interval, eval_iters;
    const char *log_json;
    const char *plot;       /* at the end: the run's curves into this .svg / .png (megatron-c's) */
    int loss_sparkline;     /* at the end: the loss as a sparkline (the teaching default) */
    const char *save, *load;
    long save_interval, ckpt_step;
    int no_load_optim, no_load_rng, finetune;
    /* data */
    struct mt_words data_path;
    struct mt_words split_path[3]; /* --train-data-path, --valid-data-path, --test-data-path */
    const char *split, *tokenizer_type, *vocab_file, *merge_file;
    int vocab_size; /* --vocab-size, NullTokenizer */
    /* system */
    const char *backend;
    int tp, pp;
    int tf32;
    /* mixed precision: --bf16 / --fp16, and the loss scaler (optim/loss_scale.h) */
    int bf16, fp16;
    double loss_scale; /* > 0: constant; 0: dynamic under --fp16, none under --bf16 */
    double initial_loss_scale, min_loss_scale;
    int loss_scale_window, hysteresis;
    /* activation recompute (model/model.h struct mt_recompute) */
    const char *recompute_granularity, *recompute_method;
    const char *attention_backend; /* model/model.h mt_attn_impl_parse; NULL: flash */
    struct mt_words recompute_modules; /* selective: only core_attn here */
    int recompute_activations, recompute_num_layers; /* -1: not given */
    long ddp_bucket_size;
    float distributed_timeout_minutes; /* the watchdog (backend.h mt_comm_set_timeout) */
    int sample_tokens;
    float sample_temperature;
    int no_progress;
};

/* The transformer configuration the flags describe, for a tokenizer of
 * vocab_size tokens (Megatron's defaults and derived sizes filled in). */
void mt_train_config(const struct mt_train_args *a, int vocab_size,
                     struct mt_transformer_config *c);

/* Runs the training the flags describe; returns the exit status. */
int mt_train_run(struct mt_train_args *a);

#endif /* MT_TRAIN_TRAINER_H */
