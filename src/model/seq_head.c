/* seq_head.c: the sequence head (see model_internal.h): one row of the
 * hidden state per sequence, gathered by its row index (the first token,
 * BERT's [CLS], or the last real one for GPT), BERT's pooler (Megatron's
 * Pooler: dense + tanh) when configured, then the binary head (BERT's
 * sentence-order prediction) or a classification head, and a softmax
 * cross-entropy over its classes. A classification head's input goes
 * through dropout at --hidden-dropout first (Megatron's Classification
 * model and HF's BertForSequenceClassification do so; the binary head has
 * none in either). All of it is replicated over tensor
 * parallelism: every rank computes the same values, so no communication. */
#include "model/model_internal.h"
#include "parallel/linear.h"

static struct mt_linear classifier(const struct mt_model_view *w, const struct mt_model_view *g)
{
    const int binary = w->binary_w.data != NULL;
    struct mt_linear l = {.w = binary ? w->binary_w : w->class_w, .b = binary ? w->binary_b : w->class_b};
    if (g) l.dw = binary ? g->binary_w : g->class_w, l.db = binary ? g->binary_b : g->class_b;
    return l;
}

/* y = x W^T + b on one rank, and its backward (dW, db +=; dx overwritten) */
static void linear_fwd(mt_backend *be, const struct mt_linear *l, mt_tensor y, mt_tensor x)
{
    mt_matmul_xwt(be, y, x, l->w, 0.0f);
    mt_bias_add(be, y, l->b);
}

static void linear_bwd(mt_backend *be, const struct mt_linear *l, mt_tensor dx, mt_tensor dy,
                       mt_tensor x)
{
    mt_matmul_dw(be, l->dw, dy, x, 1.0f);
    mt_bias_bwd(be, l->db, dy);
    mt_matmul_dx(be, dx, dy, l->w, 0.0f);
}

/* the classifier's input: the pooled rows, or the gathered rows themselves */
static mt_tensor classifier_input(const struct mt_model_view *w, const struct mt_head_acts *h,
                                  int64_t B)
{
    return w->pool_w.data ? mt_rows(h->pooled, 0, B) : mt_rows(h->seq_in, 0, B);
}

/* The classification dropout: one row per sequence, so T = 1 and the mask
 * of (sequence b, column c) has coordinates (c, 0, sample0 + b); its stream
 * follows the last layer's. The same on every tensor-parallel rank, as the
 * head is replicated. */
static struct mt_dropout_args classifier_dropout(const struct mt_fwd *f)
{
    if (f->cfg->seq_head != MT_SEQ_HEAD_CLASSIFY) {
        struct mt_dropout_args none = {0};
        return none;
    }
    struct mt_dropout_args d = mt_fwd_dropout(f, f->cfg->hidden_dropout, f->cfg->num_layers, 0);
    d.T = 1;
    return d;
}

void mt_seq_head_fwd(const struct mt_fwd *f, const struct mt_model_view *w,
                     struct mt_head_acts *h, mt_tensor hidden, mt_tensor rows)
{
    const int64_t B = f->B;
    mt_tensor in = mt_rows(h->seq_in, 0, B);
    mt_embed_fwd(f->be, in, rows, hidden, 0, 0); /* in[b] = hidden[rows[b]] */
    if (w->pool_w.data) {
        const struct mt_linear pool = {.w = w->pool_w, .b = w->pool_b};
        mt_tensor pd = mt_rows(h->pool_dense, 0, B);
        linear_fwd(f->be, &pool, pd, in);
        mt_act_fwd(f->be, mt_rows(h->pooled, 0, B), pd, MT_ACT_TANH);
    }
    /* in place: the pooler's backward reads its pre-activation, not pooled */
    const struct mt_dropout_args d = classifier_dropout(f);
    mt_dropout_fwd(f->be, classifier_input(w, h, B), &d);
    const struct mt_linear cls = classifier(w, NULL);
    linear_fwd(f->be, &cls, mt_rows(h->seq_logits, 0, B), classifier_input(w, h, B));
}

void mt_seq_loss_fwd(const struct mt_fwd *f, struct mt_head_acts *h, mt_tensor labels)
{
    /* the backend's cross-entropy over all classes: sumexp then the label's logit */
    const int64_t B = f->B;
    mt_tensor logits = mt_rows(h->seq_logits, 0, B), rowmax = mt_rows(h->seq_rowmax, 0, B);
    mt_tensor se = mt_rows(h->seq_sumexp_tgt, 0, B), tg = mt_rows(h->seq_sumexp_tgt, B, B);
    const int K = (int)logits.cols;
    mt_xent_max(f->be, rowmax, logits, K);
    mt_xent_sumexp(f->be, se, tg, logits, rowmax, labels, K, 0);
    mt_xent_loss(f->be, mt_rows(h->seq_losses, 0, B), rowmax, se, tg);
}

void mt_seq_head_bwd(const struct mt_fwd *f, const struct mt_model_view *w,
                     const struct mt_model_view *g, struct mt_head_acts *h, struct mt_grad_bufs *gb,
                     mt_tensor dhidden, mt_tensor rows, mt_tensor labels, mt_tensor dlosses)
{
    const int64_t B = f->B;
    mt_tensor logits = mt_rows(h->seq_logits, 0, B), se = mt_rows(h->seq_sumexp_tgt, 0, B);
    mt_xent_bwd(f->be, logits, dlosses, logits, mt_rows(h->seq_rowmax, 0, B), se, labels,
                (int)logits.cols, 0);
    const struct mt_linear cls = classifier(w, g);
    mt_tensor din = mt_rows(gb->dseq, 0, B);
    linear_bwd(f->be, &cls, din, logits, classifier_input(w, h, B));
    const struct mt_dropout_args d = classifier_dropout(f);
    mt_dropout_bwd(f->be, din, &d);
    if (w->pool_w.data) {
        /* pooled = tanh(pool_dense), pool_dense = seq_in Wp^T + bp */
        const struct mt_linear pool = {w->pool_w, w->pool_b, g->pool_w, g->pool_b};
        mt_tensor dpd = mt_rows(gb->dseq2, 0, B);
        mt_act_bwd(f->be, dpd, mt_rows(h->pool_dense, 0, B), din, MT_ACT_TANH);
        linear_bwd(f->be, &pool, din, dpd, mt_rows(h->seq_in, 0, B));
    }
    mt_embed_bwd(f->be, dhidden, din, rows, 0); /* dhidden[rows[b]] += din[b] */
}
