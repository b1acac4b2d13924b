/* vocab_parallel.c: see vocab_parallel.h */
#include "parallel/vocab_parallel.h"
#include "core/error.h"

void mt_vocab_embedding_fwd(const struct mt_tp *tp, mt_tensor out, mt_tensor ids, mt_tensor table)
{
    mt_embed_fwd(tp->be, out, ids, table, tp->rank * (int)table.rows, 0);
    mt_tp_reduce_fwd(tp, out);
}

void mt_vocab_embedding_bwd(const struct mt_tp *tp, mt_tensor dtable, mt_tensor dout,
                            mt_tensor ids)
{
    mt_tp_reduce_bwd(tp, dout);
    mt_embed_bwd(tp->be, dtable, dout, ids, tp->rank * (int)dtable.rows);
}

/* sumexp and the target logit: two halves of one buffer, one all-reduce */
static mt_tensor sumexp_of(const struct mt_xent_state *s, int64_t N) { return mt_rows(s->sumexp_tgt, 0, N); }
static mt_tensor tgt_of(const struct mt_xent_state *s, int64_t N) { return mt_rows(s->sumexp_tgt, N, N); }

void mt_vocab_xent_fwd(const struct mt_tp *tp, const struct mt_xent_state *s, mt_tensor logits,
                       mt_tensor targets, int vocab_offset)
{
    mt_backend *be = tp->be;
    const int64_t N = logits.rows;
    const int V = (int)logits.cols;
    MT_ASSERT(s->sumexp_tgt.rows * s->sumexp_tgt.cols == 2 * N);
    mt_xent_max(be, s->rowmax, logits, V);
    mt_all_reduce(be, tp->comm, s->rowmax.data, (size_t)N, MT_DTYPE_F32, MT_REDOP_MAX);
    mt_xent_sumexp(be, sumexp_of(s, N), tgt_of(s, N), logits, s->rowmax, targets, V, vocab_offset);
    mt_all_reduce(be, tp->comm, s->sumexp_tgt.data, 2 * (size_t)N, MT_DTYPE_F32, MT_REDOP_SUM);
    mt_xent_loss(be, s->losses, s->rowmax, sumexp_of(s, N), tgt_of(s, N));
}

void mt_vocab_xent_bwd(const struct mt_tp *tp, const struct mt_xent_state *s, mt_tensor dlogits,
                       mt_tensor dlosses, mt_tensor logits, mt_tensor targets, int vocab_offset)
{
    /* the softmax of each shard's columns under the global max and sum: no
     * communication (Megatron's backward) */
    mt_xent_bwd(tp->be, dlogits, dlosses, logits, s->rowmax, sumexp_of(s, logits.rows), targets,
                (int)logits.cols, vocab_offset);
}
