/* embedding.c: the input embedding (Megatron-core LanguageModelEmbedding):
 * the word embedding, vocabulary-parallel over tensor-parallel ranks, plus
 * the learned absolute position embedding when there is one (with RoPE
 * positions enter in the attention instead), then dropout at
 * --hidden-dropout. */
#include "model/model_internal.h"
#include "parallel/vocab_parallel.h"

void mt_embedding_fwd(const struct mt_fwd *f, const struct mt_model_view *w, mt_tensor out,
                      mt_tensor tokens, mt_tensor positions)
{
    mt_vocab_embedding_fwd(f->tp, out, tokens, w->word);
    /* positions are replicated: added after the reduce, on every rank */
    if (w->pos.data) mt_embed_fwd(f->be, out, positions, w->pos, 0, 1);
    struct mt_dropout_args d = mt_fwd_dropout(f, f->cfg->hidden_dropout, -1, MT_DROP_EMBEDDING);
    mt_dropout_fwd(f->be, out, &d);
}

void mt_embedding_bwd(const struct mt_fwd *f, const struct mt_model_view *g, mt_tensor dout,
                      mt_tensor tokens, mt_tensor positions)
{
    /* out = dropout(word[tokens] + pos[positions]) */
    struct mt_dropout_args d = mt_fwd_dropout(f, f->cfg->hidden_dropout, -1, MT_DROP_EMBEDDING);
    mt_dropout_bwd(f->be, dout, &d);
    mt_vocab_embedding_bwd(f->tp, g->word, dout, tokens);
    if (g->pos.data) mt_embed_bwd(f->be, g->pos, dout, positions, 0);
}
