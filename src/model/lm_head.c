/* lm_head.c: the final norm and the language-model head: the output layer,
 * column-parallel over the vocabulary (the word embedding when tied, else
 * output_layer.weight), and the vocabulary-parallel cross-entropy. Only
 * the real vocabulary's rows of the output weight make logits: padding
 * rows take no part in the softmax, so a model converted from Hugging Face
 * computes the same loss whatever padding megatron-c adds. */
#include "model/model_internal.h"
#include "parallel/linear.h"
#include "parallel/vocab_parallel.h"

/* the output weight's rows that are real tokens, and their vocabulary offset */
static mt_tensor real_rows(mt_tensor w, const struct mt_head_acts *h)
{
    return mt_rows(w, 0, h->logits.cols);
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

void mt_lm_head_fwd(const struct mt_fwd *f, const struct mt_model_view *w,
                    struct mt_head_acts *h, mt_tensor x)
{
    const int64_t N = mt_fwd_rows(f);
    mt_tensor lnf = mt_rows(h->lnf, 0, N);
    mt_norm_fwd(f, lnf, mt_rows(h->lnf_mean, 0, N), mt_rows(h->lnf_rstd, 0, N), x, w->lnf_w, w->lnf_b);
    const struct mt_linear out = {.w = real_rows(w->output, h)};
    mt_column_linear_fwd(f->tp, &out, mt_rows(h->logits, 0, N), lnf);
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
                    mt_tensor x, mt_tensor targets, mt_tensor dlosses)
{
    /* losses = xent(lnf(x) W^T): dlogits overwrite the logits in place */
    const int64_t N = mt_fwd_rows(f);
    const struct mt_xent_state s = xent_state(h, N);
    mt_tensor logits = mt_rows(h->logits, 0, N), lnf = mt_rows(h->lnf, 0, N);
    mt_tensor dbuf = mt_rows(gb->dbuf, 0, N), dresid = mt_rows(gb->dresid, 0, N);
    mt_vocab_xent_bwd(f->tp, &s, logits, dlosses, logits, targets, vocab_offset(f, w));
    const struct mt_linear out = {.w = real_rows(w->output, h), .dw = real_rows(g->output, h)};
    mt_column_linear_bwd(f->tp, &out, dbuf, logits, lnf);
    mt_tensor_zero(f->be, dresid);
    mt_norm_bwd(f, dresid, g->lnf_w, g->lnf_b, dbuf, x, w->lnf_w, mt_rows(h->lnf_mean, 0, N),
                mt_rows(h->lnf_rstd, 0, N));
}
