/* train_ckpt.c: saving and resuming a run: the model, the optimizer, the
 * loss scaler and the data position, with their checks (run.h). */
#include "train/run.h"
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>

/* the hint of a run that diverged: where to resume from */
const char *mt_train_resume_hint(const struct run *r)
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

void mt_train_save_checkpoint(struct run *r)
{
    const struct mt_train_args *a = r->a;
    const struct mt_groups *G = &r->grp;
    /* finite or nothing: a diverged model never replaces a good checkpoint
     * (the norm is summed over the model-parallel group: every rank agrees) */
    const double pnorm = mt_grad_norm(r->be, &r->model.table, r->model.params, r->opt.norm_comm);
    if (!isfinite(pnorm)) {
        mt_train_progress_clear(&r->prog);
        mt_user_error(mt_train_resume_hint(r), "iteration %ld: the weights are not finite (norm %g), so they "
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
void mt_train_load_checkpoint(struct run *r)
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

/* A run that does not resume from --save's own checkpoints would write
 * its iterations over them (and move the tracker back): refused. */
void mt_train_refuse_foreign_checkpoints(const struct mt_train_args *a)
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

