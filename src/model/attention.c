/* attention.c: self-attention (Megatron-core SelfAttention): the fused QKV
 * projection, column-parallel so that a rank computes its query groups and
 * their heads; rotary position embedding of the queries and keys (RoPE);
 * the core attention over the rank's heads (causal, or bidirectional with
 * the padded keys masked; grouped-query; attention dropout); the output
 * projection, row-parallel (the one all-reduce of the forward). */
#include "model/model_internal.h"
#include "parallel/linear.h"

static struct mt_attn_args attn_args(const struct mt_fwd *f, int layer)
{
    struct mt_attn_args a;
    a.B = f->B;
    a.T = f->T;
    a.t0 = f->t0;
    a.heads = f->heads;
    a.groups = f->groups;
    a.head_dim = f->cfg->kv_channels;
    a.causal = f->cfg->attn_mask_type == MT_ATTN_MASK_CAUSAL;
    a.lengths = f->lengths;
    a.doc_start = f->doc_start;
    a.positions = f->positions;
    a.dropout = mt_fwd_dropout(f, f->cfg->attention_dropout, layer, MT_DROP_ATTN_PROBS);
    a.dropout.col0 = f->tp->rank * f->heads; /* the global index of local head 0 */
    return a;
}

void mt_attention_fwd(const struct mt_fwd *f, const struct mt_layer_view *w,
                      struct mt_layer_acts *a, int layer, mt_tensor y, mt_tensor x)
{
    const int64_t N = mt_fwd_rows(f), Tq = f->T - f->t0;
    const struct mt_linear qkv = {.w = w->qkv_w, .b = w->qkv_b}, proj = {.w = w->proj_w, .b = w->proj_b};
    const struct mt_attn_args args = attn_args(f, layer);
    /* rows [t0, T) of each sequence; decoding (t0 > 0) has one sequence */
    mt_tensor all = mt_rows(a->qkv, 0, (int64_t)f->B * f->T);
    mt_column_linear_fwd(f->tp, &qkv, mt_rows(a->qkv, f->t0, N), x);
    if (f->rope.data) mt_rope_fwd(f->be, all, f->rope, &args);
    mt_tensor out = mt_rows(a->attn_out, 0, N);
    if (f->flash) mt_flash_attn_fwd(f->be, out, mt_prefix(a->att, (int64_t)f->B * f->heads * Tq, 1), all, &args);
    else mt_attn_fwd(f->be, out, mt_prefix(a->att, (int64_t)f->B * f->heads * Tq, f->T), all, &args);
    mt_row_linear_fwd(f->tp, &proj, y, out);
}

void mt_attention_bwd(const struct mt_fwd *f, const struct mt_layer_view *w,
                      const struct mt_layer_view *g, struct mt_layer_acts *a, int layer,
                      struct mt_grad_bufs *gb, mt_tensor dx, mt_tensor dy, mt_tensor x)
{
    /* y = proj(attn(rope(qkv(x)))) */
    const int64_t N = mt_fwd_rows(f);
    const struct mt_linear qkv = {w->qkv_w, w->qkv_b, g->qkv_w, g->qkv_b};
    const struct mt_linear proj = {w->proj_w, w->proj_b, g->proj_w, g->proj_b};
    const struct mt_attn_args args = attn_args(f, layer);
    mt_tensor out = mt_rows(a->attn_out, 0, N), dout = mt_rows(gb->dattn, 0, N);
    mt_tensor all = mt_rows(a->qkv, 0, N), dqkv = mt_rows(gb->dqkv, 0, N);
    mt_tensor att = mt_prefix(a->att, (int64_t)f->B * f->heads * f->T, f->flash ? 1 : f->T);
    mt_tensor datt = mt_prefix(gb->datt, att.rows, att.cols);
    /* selective recompute (unfused): the probabilities (one buffer for all
     * layers) again from the kept q, k, v; out is rewritten with the same
     * values */
    if (f->recompute_attn) mt_attn_fwd(f->be, out, att, all, &args);
    mt_row_linear_bwd(f->tp, &proj, dout, dy, out);
    if (f->flash) mt_flash_attn_bwd(f->be, dqkv, datt, dout, all, out, att, &args);
    else mt_attn_bwd(f->be, dqkv, datt, dout, all, att, &args);
    if (f->rope.data) mt_rope_bwd(f->be, dqkv, f->rope, &args);
    mt_column_linear_bwd(f->tp, &qkv, dx, dqkv, x);
}
