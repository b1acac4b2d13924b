/* embedding.c: the input embedding (Megatron-core LanguageModelEmbedding):
 * the word embedding, vocabulary-parallel over tensor-parallel ranks, plus
 * the learned absolute position embedding when there is one (with RoPE
 * positions enter in the attention instead) and BERT's token-type
 * embedding; in the post-norm layout (Google's BERT) that sum is
 * normalised; then dropout at --hidden-dropout. */
#include "model/model_internal.h"
#include "parallel/vocab_parallel.h"

void mt_embedding_fwd(const struct mt_fwd *f, const struct mt_model_view *w,
                      struct mt_embed_acts *e, mt_tensor out, const struct mt_embed_ids *ids)
{
    const int64_t N = out.rows;
    const int post = w->emb_ln_w.data != NULL;
    mt_tensor sum = post ? mt_rows(e->emb_sum, 0, N) : out;
    mt_vocab_embedding_fwd(f->tp, sum, ids->tokens, w->word);
    /* positions and types are replicated: added after the reduce, on every rank */
    if (w->pos.data) mt_embed_fwd(f->be, sum, ids->positions, w->pos, 0, 1);
    if (w->tokentype.data) mt_embed_fwd(f->be, sum, ids->types, w->tokentype, 0, 1);
    if (post)
        mt_norm_fwd(f, out, mt_rows(e->emb_mean, 0, N), mt_rows(e->emb_rstd, 0, N), sum,
                    w->emb_ln_w, w->emb_ln_b);
    struct mt_dropout_args d = mt_fwd_dropout(f, f->cfg->hidden_dropout, -1, MT_DROP_EMBEDDING);
    mt_dropout_fwd(f->be, out, &d);
}

void mt_embedding_bwd(const struct mt_fwd *f, const struct mt_model_view *w,
                      const struct mt_model_view *g, struct mt_embed_acts *e, mt_tensor dout,
                      mt_tensor scratch, const struct mt_embed_ids *ids)
{
    /* out = dropout(norm(word[tokens] + pos[positions] + tokentype[types])) */
    const int64_t N = dout.rows;
    struct mt_dropout_args d = mt_fwd_dropout(f, f->cfg->hidden_dropout, -1, MT_DROP_EMBEDDING);
    mt_dropout_bwd(f->be, dout, &d);
    mt_tensor dsum = dout;
    if (w->emb_ln_w.data) {
        dsum = mt_rows(scratch, 0, N);
        mt_tensor_zero(f->be, dsum);
        mt_norm_bwd(f, dsum, g->emb_ln_w, g->emb_ln_b, dout, mt_rows(e->emb_sum, 0, N), w->emb_ln_w,
                    mt_rows(e->emb_mean, 0, N), mt_rows(e->emb_rstd, 0, N));
    }
    mt_vocab_embedding_bwd(f->tp, g->word, dsum, ids->tokens);
    if (g->pos.data) mt_embed_bwd(f->be, g->pos, dsum, ids->positions, 0);
    if (g->tokentype.data) mt_embed_bwd(f->be, g->tokentype, dsum, ids->types, 0);
}
