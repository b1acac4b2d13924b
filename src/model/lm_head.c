/* lm_head.c: the language-model head on the hidden state (the final norm's
 * output, or the last layer's in the post-norm layout): the output layer,
 * column-parallel over the vocabulary (the word embedding when tied, else
 * output_layer.weight), and the vocabulary-parallel cross-entropy. BERT's
 * masked-LM head first transforms the hidden state (dense, GELU,
 * LayerNorm: Megatron's BertLMHead, replicated) and adds a vocabulary
 * bias. Only the real vocabulary's rows of the output weight make logits:
 * padding rows take no part in the softmax, so a model converted from
 * Hugging Face computes the same loss whatever padding megatron-c adds. */
#include "model/model_internal.h"
#include "parallel/linear.h"
#include "parallel/vocab_parallel.h"

/* the output layer on the real vocabulary rows of the shard */
static struct mt_linear output_layer(const struct mt_model_view *w, const struct mt_model_view *g,
                                     const struct mt_head_acts *h)
{
    const int64_t V = h->logits.cols;
    struct mt_linear l = {.w = mt_rows(w->output, 0, V)};
    if (w->output_b.data) l.b = mt_prefix(w->output_b, 1, V);
    if (g) {
        l.dw = mt_rows(g->output, 0, V);
        if (g->output_b.data) l.db = mt_prefix(g->output_b, 1, V);
    }
    return l;
}

static int vocab_offset(const struct mt_fwd *f, const struct mt_model_view *w)
{
    return f->tp->rank * (int)w->output.rows;
}

static struct mt_xent_state xent_state(const struct mt_head_acts *h, int64_t N)
{
    struct mt_xent_state s = {mt_rows(h->rowmax, 0, N), mt_rows(h->sumexp_tgt, 0, 2 * N),
                              mt_rows(h->losses, 0, N)};
    return s;
}

/* BERT's transform: lm_ln = LayerNorm(gelu(dense(hidden))) */
static void bert_transform_fwd(const struct mt_fwd *f, const struct mt_model_view *w,
                               struct mt_head_acts *h, mt_tensor hidden)
{
    const int64_t N = mt_fwd_rows(f);
    mt_tensor dense = mt_rows(h->lm_dense, 0, N), act = mt_rows(h->lm_act, 0, N);
    mt_matmul_xwt(f->be, dense, hidden, w->lm_dense_w, 0.0f);
    mt_bias_add(f->be, dense, w->lm_dense_b);
    mt_act_fwd(f->be, act, dense, mt_fwd_gelu(f));
    mt_norm_fwd(f, mt_rows(h->lm_ln, 0, N), mt_rows(h->lm_ln_mean, 0, N),
                mt_rows(h->lm_ln_rstd, 0, N), act, w->lm_ln_w, w->lm_ln_b);
}

/* from d lm_ln (in gb->dlm): dhidden = d hidden (overwritten) */
static void bert_transform_bwd(const struct mt_fwd *f, const struct mt_model_view *w,
                               const struct mt_model_view *g, struct mt_head_acts *h,
                               struct mt_grad_bufs *gb, mt_tensor dhidden, mt_tensor hidden)
{
    const int64_t N = mt_fwd_rows(f);
    mt_tensor dln = mt_rows(gb->dlm, 0, N), dact = mt_rows(gb->dlm2, 0, N);
    mt_tensor dense = mt_rows(h->lm_dense, 0, N), act = mt_rows(h->lm_act, 0, N);
    mt_tensor_zero(f->be, dact);
    mt_norm_bwd(f, dact, g->lm_ln_w, g->lm_ln_b, dln, act, w->lm_ln_w, mt_rows(h->lm_ln_mean, 0, N),
                mt_rows(h->lm_ln_rstd, 0, N));
    mt_act_bwd(f->be, dact, dense, dact, mt_fwd_gelu(f)); /* now d dense */
    mt_matmul_dw(f->be, g->lm_dense_w, dact, hidden, 1.0f);
    mt_bias_bwd(f->be, g->lm_dense_b, dact);
    mt_matmul_dx(f->be, dhidden, dact, w->lm_dense_w, 0.0f);
}

void mt_lm_head_fwd(const struct mt_fwd *f, const struct mt_model_view *w,
                    struct mt_head_acts *h, mt_tensor hidden)
{
    const int64_t N = mt_fwd_rows(f);
    mt_tensor in = hidden;
    if (w->lm_dense_w.data) {
        bert_transform_fwd(f, w, h, hidden);
        in = mt_rows(h->lm_ln, 0, N);
    }
    const struct mt_linear out = output_layer(w, NULL, h);
    mt_column_linear_fwd(f->tp, &out, mt_rows(h->logits, 0, N), in);
}

void mt_lm_loss_fwd(const struct mt_fwd *f, const struct mt_model_view *w,
                    struct mt_head_acts *h, mt_tensor targets)
{
    const int64_t N = mt_fwd_rows(f);
    const struct mt_xent_state s = xent_state(h, N);
    mt_vocab_xent_fwd(f->tp, &s, mt_rows(h->logits, 0, N), targets, vocab_offset(f, w));
}

void mt_lm_head_bwd(const struct mt_fwd *f, const struct mt_model_view *w,
                    const struct mt_model_view *g, struct mt_head_acts *h, struct mt_grad_bufs *gb,
                    mt_tensor dhidden, mt_tensor hidden, mt_tensor targets, mt_tensor dlosses)
{
    /* losses = xent(in W^T (+ b)): dlogits overwrite the logits in place */
    const int64_t N = mt_fwd_rows(f);
    const struct mt_xent_state s = xent_state(h, N);
    mt_tensor logits = mt_rows(h->logits, 0, N);
    mt_vocab_xent_bwd(f->tp, &s, logits, dlosses, logits, targets, vocab_offset(f, w));
    const struct mt_linear out = output_layer(w, g, h);
    if (!w->lm_dense_w.data) {
        mt_column_linear_bwd(f->tp, &out, dhidden, logits, hidden);
        return;
    }
    mt_column_linear_bwd(f->tp, &out, mt_rows(gb->dlm, 0, N), logits, mt_rows(h->lm_ln, 0, N));
    bert_transform_bwd(f, w, g, h, gb, dhidden, hidden);
}
