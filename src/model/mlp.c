/* mlp.c: the MLP (Megatron-core MLP): fc1 column-parallel, the activation
 * on the rank's columns (GELU, or SwiGLU over fc1's [gate; up] halves),
 * fc2 row-parallel (the one all-reduce of the forward). */
#include "model/model_internal.h"
#include "parallel/linear.h"

void mt_mlp_fwd(const struct mt_fwd *f, const struct mt_layer_view *w, struct mt_layer_acts *a,
                mt_tensor y, mt_tensor x)
{
    const int64_t N = mt_fwd_rows(f);
    const struct mt_linear fc1 = {.w = w->fc1_w, .b = w->fc1_b}, fc2 = {.w = w->fc2_w, .b = w->fc2_b};
    mt_tensor h = mt_rows(a->fc1, 0, N), act = mt_rows(a->act, 0, N);
    mt_column_linear_fwd(f->tp, &fc1, h, x);
    if (f->cfg->gated_linear_unit) mt_swiglu_fwd(f->be, act, h);
    else mt_act_fwd(f->be, act, h, mt_fwd_gelu(f));
    mt_row_linear_fwd(f->tp, &fc2, y, act);
}

void mt_mlp_bwd(const struct mt_fwd *f, const struct mt_layer_view *w,
                const struct mt_layer_view *g, struct mt_layer_acts *a, struct mt_grad_bufs *gb,
                mt_tensor dx, mt_tensor dy, mt_tensor x)
{
    /* y = fc2(act(fc1(x))) */
    const int64_t N = mt_fwd_rows(f);
    const struct mt_linear fc1 = {w->fc1_w, w->fc1_b, g->fc1_w, g->fc1_b};
    const struct mt_linear fc2 = {w->fc2_w, w->fc2_b, g->fc2_w, g->fc2_b};
    mt_tensor h = mt_rows(a->fc1, 0, N), act = mt_rows(a->act, 0, N);
    mt_tensor dh = mt_rows(gb->dfc1, 0, N), dact = mt_rows(gb->dact, 0, N);
    mt_row_linear_bwd(f->tp, &fc2, dact, dy, act);
    if (f->cfg->gated_linear_unit) mt_swiglu_bwd(f->be, dh, h, dact);
    else mt_act_bwd(f->be, dh, h, dact, mt_fwd_gelu(f));
    mt_column_linear_bwd(f->tp, &fc1, dx, dh, x);
}
