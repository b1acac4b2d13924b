/* train_log.c: what a run prints and logs: the banner, the progress bar,
 * the per-iteration line, JSON lines, TensorBoard scalars, validation,
 * memory and the loss curves (run.h). */
#include "train/run.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void mt_train_progress_clear(struct progress *p)
{
    if (p->on) fputs("\r\033[K", stderr);
}

void mt_train_progress_show(struct progress *p, long it, long total, long it0, float loss)
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
void mt_train_tb_iteration(struct run *r, const double part[3], float lr, double norm)
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

void mt_train_log_eval(struct run *r, struct val v)
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

void mt_train_banner(struct run *r)
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
void mt_train_memory_report(struct run *r)
{
    struct mt_mem_stats ms;
    mt_backend_mem(r->be, &ms);
    struct rusage ru;
    double rss = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0) rss = (double)ru.ru_maxrss * 1024.0; /* KiB on Linux */
    SAY(" memory peak (rank 0): %.2f MB allocated by the %s backend (%.2f MB at start), resident set %.2f MB\n",
        (double)ms.peak / 1e6, mt_backend_name(r->be), (double)r->mem_expected / 1e6, rss / 1e6);
}

void mt_train_interval_add(struct interval *iv, const double part[3], int skipped, int nan)
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

void mt_train_log_iteration(struct run *r, struct interval *iv, float lr)
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

/* --plot and the teaching default's sparkline: from the --log-json file
 * when there is one (a resumed run's whole history), else from what this
 * run logged. */
void mt_train_draw_curves(struct run *r)
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

