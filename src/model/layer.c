/* layer.c: one transformer layer (Megatron-core TransformerLayer, the
 * pre-norm layout):
 *   resid2 = x + dropout(attention(norm1(x)))
 *   resid3 = resid2 + dropout(mlp(norm2(resid2)))
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
    mt_tensor r2 = mt_rows(a->resid2, 0, N), r3 = mt_rows(a->resid3, 0, N);
    mt_norm_fwd(f, ln1, mt_rows(a->ln1_mean, 0, N), mt_rows(a->ln1_rstd, 0, N), x, w->ln1_w,
                w->ln1_b);
    mt_attention_fwd(f, w, a, layer, r2, ln1);
    dropout_add(f, r2, x, layer, MT_DROP_ATTN_OUT);
    mt_norm_fwd(f, ln2, mt_rows(a->ln2_mean, 0, N), mt_rows(a->ln2_rstd, 0, N), r2, w->ln2_w,
                w->ln2_b);
    mt_mlp_fwd(f, w, a, r3, ln2);
    dropout_add(f, r3, r2, layer, MT_DROP_MLP_OUT);
}

/* The gradient of the sublayer output inside `out = residual + dropout(y)`:
 * dresid itself without dropout, else a copy through the mask (dresid also
 * flows on to the residual, untouched). */
static mt_tensor through_dropout(const struct mt_fwd *f, struct mt_grad_bufs *gb, mt_tensor dresid,
                                 int layer, int site)
{
    struct mt_dropout_args d = mt_fwd_dropout(f, f->cfg->hidden_dropout, layer, site);
    if (d.p <= 0.0f) return dresid;
    mt_tensor dy = mt_rows(gb->ddrop, 0, dresid.rows);
    mt_copy(f->be, dy.data, dresid.data, (size_t)mt_numel(dresid) * sizeof(float));
    mt_dropout_bwd(f->be, dy, &d);
    return dy;
}

void mt_layer_bwd(const struct mt_fwd *f, const struct mt_layer_view *w,
                  const struct mt_layer_view *g, struct mt_layer_acts *a, int layer,
                  struct mt_grad_bufs *gb, mt_tensor x)
{
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
