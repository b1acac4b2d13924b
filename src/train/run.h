/* run.h: the state of one training run and the functions the files of
 * src/train/ share (trainer.c the loop and the schedule, train_data.c the
 * data, train_ckpt.c the checkpoints, train_log.c what is printed and
 * logged). Not for other callers: train/trainer.h is the interface. */
#ifndef MT_TRAIN_RUN_H
#define MT_TRAIN_RUN_H
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
#include "config.h"
#include <stdint.h>
#include <stdio.h>

struct progress {
    int on;
    double t0;
};

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

/* validation: the mean loss, and BERT's two parts */
struct val {
    double loss, lm, sop;
};

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

#define SAY(...) \
    do { \
        if (r->printer) { \
            mt_train_progress_clear(&r->prog); \
            printf(__VA_ARGS__); \
            mt_log_flush(stdout, "standard output"); \
        } \
    } while (0)

/* train_log.c */
void mt_train_progress_clear(struct progress *p);
void mt_train_progress_show(struct progress *p, long it, long total, long it0, float loss);
void mt_train_banner(struct run *r);
void mt_train_memory_report(struct run *r);
void mt_train_interval_add(struct interval *iv, const double part[3], int skipped, int nan);
void mt_train_tb_iteration(struct run *r, const double part[3], float lr, double norm);
void mt_train_log_iteration(struct run *r, struct interval *iv, float lr);
void mt_train_log_eval(struct run *r, struct val v);
void mt_train_draw_curves(struct run *r);
/* train_data.c: the tokens, datasets and loaders of --data-path (or the
 * shipped text) */
void mt_train_load_data(struct run *r);
/* train_ckpt.c */
const char *mt_train_resume_hint(const struct run *r);
void mt_train_save_checkpoint(struct run *r);
void mt_train_load_checkpoint(struct run *r);
void mt_train_refuse_foreign_checkpoints(const struct mt_train_args *a);

#endif
