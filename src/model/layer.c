/* layer.c: one transformer layer (Megatron-core TransformerLayer). The
 * pre-norm layout (GPT, Llama, Megatron's BERT):
 *   resid2 = x + dropout(attention(norm1(x)))
 *   resid3 = resid2 + dropout(mlp(norm2(resid2)))          output resid3
 * and the post-norm layout of the original Transformer and of Google's and
 * Hugging Face's BERT (--post-layernorm):
 *   ln1 = norm1(resid2),  resid2 = x + dropout(attention(x))
 *   ln2 = norm2(resid3),  resid3 = ln1 + dropout(mlp(ln1))  output ln2
 * with dropout at --hidden-dropout (Megatron's bias-dropout-add). */
#include "model/model_internal.h"

/* out (the sublayer's output, rows of the call) = residual + dropout(out) */
static void dropout_add(const struct mt_fwd *f, mt_tensor out, mt_tensor residual, int layer,
                        int site)
{
    struct mt_dropout_args d = mt_fwd_dropout(f, f->cfg->hidden_dropout, layer, site);
    mt_dropout_fwd(f->be, out, &d);
    mt_add(f->be, out, out, residual);
}

void mt_layer_fwd(const struct mt_fwd *f, const struct mt_layer_view *w, struct mt_layer_acts *a,
                  int layer, mt_tensor x)
{
    const int64_t N = mt_fwd_rows(f);
    mt_tensor ln1 = mt_rows(a->ln1, 0, N), ln2 = mt_rows(a->ln2, 0, N);
    mt_tensor m1 = mt_rows(a->ln1_mean, 0, N), r1 = mt_rows(a->ln1_rstd, 0, N);
    mt_tensor m2 = mt_rows(a->ln2_mean, 0, N), rs2 = mt_rows(a->ln2_rstd, 0, N);
    mt_tensor r2 = mt_rows(a->resid2, 0, N), r3 = mt_rows(a->resid3, 0, N);
    if (f->cfg->post_layernorm) {
        mt_attention_fwd(f, w, a, layer, r2, x);
        dropout_add(f, r2, x, layer, MT_DROP_ATTN_OUT);
        mt_norm_fwd(f, ln1, m1, r1, r2, w->ln1_w, w->ln1_b);
        mt_mlp_fwd(f, w, a, r3, ln1);
        dropout_add(f, r3, ln1, layer, MT_DROP_MLP_OUT);
        mt_norm_fwd(f, ln2, m2, rs2, r3, w->ln2_w, w->ln2_b);
        return;
    }
    mt_norm_fwd(f, ln1, m1, r1, x, w->ln1_w, w->ln1_b);
    mt_attention_fwd(f, w, a, layer, r2, ln1);
    dropout_add(f, r2, x, layer, MT_DROP_ATTN_OUT);
    mt_norm_fwd(f, ln2, m2, rs2, r2, w->ln2_w, w->ln2_b);
    mt_mlp_fwd(f, w, a, r3, ln2);
    dropout_add(f, r3, r2, layer, MT_DROP_MLP_OUT);
}

/* The gradient of the sublayer output inside `out = residual + dropout(y)`:
 * d itself without dropout, else a copy through the mask (d also flows on
 * to the residual, untouched). */
static mt_tensor through_dropout(const struct mt_fwd *f, struct mt_grad_bufs *gb, mt_tensor d,
                                 int layer, int site)
{
    struct mt_dropout_args dr = mt_fwd_dropout(f, f->cfg->hidden_dropout, layer, site);
    if (dr.p <= 0.0f) return d;
    mt_tensor dy = mt_rows(gb->ddrop, 0, d.rows);
    mt_copy(f->be, dy.data, d.data, (size_t)mt_numel(d) * sizeof(float));
    mt_dropout_bwd(f->be, dy, &dr);
    return dy;
}

/* the post-norm layer's backward: dresid = d ln2 on entry, d x on exit;
 * dbuf holds the gradient of each residual sum in turn */
static void post_norm_bwd(const struct mt_fwd *f, const struct mt_layer_view *w,
                          const struct mt_layer_view *g, struct mt_layer_acts *a, int layer,
                          struct mt_grad_bufs *gb, mt_tensor x)
{
    const int64_t N = mt_fwd_rows(f);
    mt_tensor dresid = mt_rows(gb->dresid, 0, N), dbuf = mt_rows(gb->dbuf, 0, N);
    mt_tensor ln1 = mt_rows(a->ln1, 0, N), r2 = mt_rows(a->resid2, 0, N), r3 = mt_rows(a->resid3, 0, N);
    /* ln2 = norm2(resid3): dbuf = d resid3 */
    mt_tensor_zero(f->be, dbuf);
    mt_norm_bwd(f, dbuf, g->ln2_w, g->ln2_b, dresid, r3, w->ln2_w, mt_rows(a->ln2_mean, 0, N),
                mt_rows(a->ln2_rstd, 0, N));
    /* resid3 = ln1 + dropout(mlp(ln1)): dresid = d ln1 */
    mt_tensor dy = through_dropout(f, gb, dbuf, layer, MT_DROP_MLP_OUT);
    mt_mlp_bwd(f, w, g, a, gb, dresid, dy, ln1);
    mt_add(f->be, dresid, dresid, dbuf);
    /* ln1 = norm1(resid2): dbuf = d resid2 */
    mt_tensor_zero(f->be, dbuf);
    mt_norm_bwd(f, dbuf, g->ln1_w, g->ln1_b, dresid, r2, w->ln1_w, mt_rows(a->ln1_mean, 0, N),
                mt_rows(a->ln1_rstd, 0, N));
    /* resid2 = x + dropout(attention(x)): dresid = d x */
    dy = through_dropout(f, gb, dbuf, layer, MT_DROP_ATTN_OUT);
    mt_attention_bwd(f, w, g, a, layer, gb, dresid, dy, x);
    mt_add(f->be, dresid, dresid, dbuf);
}

void mt_layer_bwd(const struct mt_fwd *f, const struct mt_layer_view *w,
                  const struct mt_layer_view *g, struct mt_layer_acts *a, int layer,
                  struct mt_grad_bufs *gb, mt_tensor x)
{
    if (f->cfg->post_layernorm) {
        post_norm_bwd(f, w, g, a, layer, gb, x);
        return;
    }
    const int64_t N = mt_fwd_rows(f);
    mt_tensor dresid = mt_rows(gb->dresid, 0, N), dbuf = mt_rows(gb->dbuf, 0, N);
    mt_tensor ln1 = mt_rows(a->ln1, 0, N), ln2 = mt_rows(a->ln2, 0, N), r2 = mt_rows(a->resid2, 0, N);
    /* dresid = d resid3;  resid3 = resid2 + dropout(mlp(norm2(resid2))) */
    mt_tensor dy = through_dropout(f, gb, dresid, layer, MT_DROP_MLP_OUT);
    mt_mlp_bwd(f, w, g, a, gb, dbuf, dy, ln2);
    mt_norm_bwd(f, dresid, g->ln2_w, g->ln2_b, dbuf, r2, w->ln2_w, mt_rows(a->ln2_mean, 0, N),
                mt_rows(a->ln2_rstd, 0, N));
    /* dresid = d resid2;  resid2 = x + dropout(attention(norm1(x))) */
    dy = through_dropout(f, gb, dresid, layer, MT_DROP_ATTN_OUT);
    mt_attention_bwd(f, w, g, a, layer, gb, dbuf, dy, ln1);
    mt_norm_bwd(f, dresid, g->ln1_w, g->ln1_b, dbuf, x, w->ln1_w, mt_rows(a->ln1_mean, 0, N),
                mt_rows(a->ln1_rstd, 0, N));
    /* dresid = d x */
}
