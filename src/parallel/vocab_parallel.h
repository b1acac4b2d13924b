/* vocab_parallel.h: the vocabulary-parallel embedding and cross-entropy
 * (Megatron-core VocabParallelEmbedding and vocab_parallel_cross_entropy).
 *
 * The word embedding (padded vocabulary Vp, hidden C) is split by rows:
 * rank r holds rows [r Vp/tp, (r+1) Vp/tp). The lookup takes this rank's
 * rows (zero for ids elsewhere) and the reduce mapping sums the ranks. The
 * output layer is column-parallel over the same split, so the logits are
 * never gathered: the cross-entropy all-reduces the row maximum (MAX),
 * then the sums of exponentials and the target logits (SUM, one call).
 * Only the real vocabulary columns of a shard take part (padding rows
 * compute no logit), so the loss is the softmax over the tokenizer's
 * vocabulary whatever the padding. */
#ifndef MT_PARALLEL_VOCAB_PARALLEL_H
#define MT_PARALLEL_VOCAB_PARALLEL_H
#include "parallel/mappings.h"

/* out (N,C) = rows of table (this rank's Vp/tp rows) for ids (N), summed over tp */
void mt_vocab_embedding_fwd(const struct mt_tp *tp, mt_tensor out, mt_tensor ids, mt_tensor table);
/* dtable += the rows of dout for this rank's ids */
void mt_vocab_embedding_bwd(const struct mt_tp *tp, mt_tensor dtable, mt_tensor dout,
                            mt_tensor ids);

/* The per-token losses of logits (N, V_real) whose column 0 is global id
 * vocab_offset. rowmax (N), sumexp_tgt (2N): saved for the backward. */
struct mt_xent_state {
    mt_tensor rowmax, sumexp_tgt, losses;
};
void mt_vocab_xent_fwd(const struct mt_tp *tp, const struct mt_xent_state *s, mt_tensor logits,
                       mt_tensor targets, int vocab_offset);
/* dlogits (may alias logits) = d sum(losses * dlosses) / d logits */
void mt_vocab_xent_bwd(const struct mt_tp *tp, const struct mt_xent_state *s, mt_tensor dlogits,
                       mt_tensor dlosses, mt_tensor logits, mt_tensor targets, int vocab_offset);

#endif /* MT_PARALLEL_VOCAB_PARALLEL_H */
