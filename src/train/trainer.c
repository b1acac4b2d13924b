/* trainer.c: the training loop (see trainer.h): the model and optimizer it
 * builds, the pipeline schedule of an iteration, validation, the loop; the
 * data, checkpoints and logging are in train_data.c, train_ckpt.c and
 * train_log.c (run.h). */
#include "train/run.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ---- the run ----------------------------------------------------------------------- */

/* ---- checkpoints: whole tensors, gathered to world rank 0 ------------------- */

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
            mt_train_progress_clear(&r->prog);
            mt_user_error(mt_train_resume_hint(r), "iteration %ld: the loss (%g) or the gradient norm (%g) is not "
                          "finite; stopped before updating the weights", r->iteration + 1, fabs(loss), fabs(norm));
        }
        /* scaled: the iteration is skipped and the scale lowered (Megatron) */
        if (r->scaled) mt_loss_scaler_update(&r->scaler, found_inf);
        r->skipped += found_inf;
        r->iteration++;
        r->consumed += (uint64_t)a->global_batch_size;
        mt_train_interval_add(&iv, part, found_inf, !isfinite(loss));
        iv.last_norm = norm;
        mt_train_tb_iteration(r, part, lr, norm);
        if (r->iteration % a->log_interval == 0 || r->iteration == a->train_iters)
            mt_train_log_iteration(r, &iv, lr);
        if (r->has_valid && a->eval_interval > 0 && r->iteration % a->eval_interval == 0 &&
            r->iteration != a->train_iters) {
            double t = mt_now();
            mt_train_log_eval(r, evaluate(r));
            iv.t0 += mt_now() - t; /* validation time is not training time */
        }
        if (a->save && a->save_interval > 0 && r->iteration % a->save_interval == 0) {
            double t = mt_now();
            mt_train_save_checkpoint(r);
            last_saved = r->iteration;
            iv.t0 += mt_now() - t;
        }
        mt_train_progress_show(&r->prog, r->iteration, a->train_iters, it0, (float)loss);
        if (exit_now(r)) {
            /* Megatron: save (when --save), then exit, without the final validation */
            mt_train_progress_clear(&r->prog);
            if (a->save && last_saved != r->iteration) mt_train_save_checkpoint(r);
            SAY(" exiting program at iteration %ld (%s)\n", r->iteration,
                a->exit_interval > 0 && r->iteration % a->exit_interval == 0 ? "--exit-interval"
                                                                              : "--exit-duration-in-mins");
            r->exited = 1;
            mt_train_memory_report(r);
            return;
        }
    }
    mt_train_progress_clear(&r->prog);
    if (r->has_valid) mt_train_log_eval(r, evaluate(r));
    if (a->save && last_saved != r->iteration) mt_train_save_checkpoint(r);
    SAY(" training done: %ld iterations in %.1f s\n", r->iteration - it0, mt_now() - r->prog.t0);
    mt_train_memory_report(r);
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
        mt_train_refuse_foreign_checkpoints(a);
    }
    if (a->tensorboard_dir && r->printer) r->tb = mt_tb_open(a->tensorboard_dir); /* before any work, too */
    mt_train_load_data(r);
    build(r);
    if (a->load) mt_train_load_checkpoint(r);

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
    mt_train_banner(r);
    r->prog.on = r->printer && !a->no_progress && isatty(2) && getenv("TERM") &&
                 strcmp(getenv("TERM"), "dumb") != 0;
    r->prog.t0 = mt_now();
    loop(r);
    if (a->sample_tokens > 0 && r->grp.world_size == 1 && !r->bert && !r->exited) sample(r);

    if (r->json) mt_log_close(r->json, a->log_json);
    if (r->printer) mt_train_draw_curves(r);
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
