/* norm.c: the normalisation of a layer's inputs and the final norm:
 * LayerNorm (GPT-2, BERT) or RMSNorm (Llama), --normalization. */
#include "model/model_internal.h"

void mt_norm_fwd(const struct mt_fwd *f, mt_tensor out, mt_tensor mean, mt_tensor rstd,
                 mt_tensor x, mt_tensor w, mt_tensor b)
{
    if (f->cfg->normalization == MT_NORM_RMSNORM)
        mt_rmsnorm_fwd(f->be, out, rstd, x, w, f->cfg->layernorm_epsilon);
    else
        mt_layernorm_fwd(f->be, out, mean, rstd, x, w, b, f->cfg->layernorm_epsilon);
}

void mt_norm_bwd(const struct mt_fwd *f, mt_tensor dx, mt_tensor dw, mt_tensor db,
                 mt_tensor dout, mt_tensor x, mt_tensor w, mt_tensor mean, mt_tensor rstd)
{
    if (f->cfg->normalization == MT_NORM_RMSNORM)
        mt_rmsnorm_bwd(f->be, dx, dw, dout, x, w, rstd);
    else
        mt_layernorm_bwd(f->be, dx, dw, db, dout, x, w, mean, rstd);
}
