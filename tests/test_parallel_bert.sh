#!/bin/sh
# BERT (pre-norm, masked LM + sentence order, token types, padding,
# dropout 0.1) under parallel layouts against the serial run, on the
# sentence-level dataset of tests/data (under mpiexec; skipped without MPI):
#  - tp=2, pp=2, dp=2 and tp=2 x pp=2: the loss (masked LM) and gradient
#    norm of every one of 20 iterations within a relative 1e-6 of the
#    serial run (dp=2 against 2 accumulation steps: the same global batch);
#  - the post-norm layout under tp=2 x pp=2 likewise;
#  - the same layout twice: bitwise identical losses.
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/mpi_common.sh"
mpi_require
B=$MT_BIN
P="--model bert --data-path $MT_SRCDIR/tests/data/bert_sentences --tokenizer-type BertWordPieceLowerCase \
 --num-layers 4 --hidden-size 32 --num-attention-heads 4 --seq-length 32 --micro-batch-size 2 \
 --global-batch-size 8 --lr 3e-3 --lr-warmup-iters 2 --lr-decay-iters 20 --log-interval 1 \
 --eval-interval 0 --eval-iters 1 --split 90,10,0 --no-progress --backend cpu"

mpi_train serial 1 --train-iters 20
mpi_train tp2 2 --train-iters 20 --tensor-model-parallel-size 2
compare_traces "BERT tp=2 vs serial" tp2 serial 1e-6
mpi_train pp2 2 --train-iters 20 --pipeline-model-parallel-size 2
compare_traces "BERT pp=2 vs serial" pp2 serial 1e-6
mpi_train dp2 2 --train-iters 20
compare_traces "BERT dp=2 vs serial (2 accumulation steps)" dp2 serial 1e-6
mpi_train tp2pp2 4 --train-iters 20 --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
compare_traces "BERT tp=2 x pp=2 vs serial" tp2pp2 serial 1e-6
for k in grad_norm sop_loss; do
  if $B compare "$TMP/tp2pp2.train.jsonl" "$TMP/serial.train.jsonl" --key $k --rtol 1e-6 > "$TMP/cmp" 2>&1; then
    pass "BERT tp=2 x pp=2 vs serial, $k: $(grep -E '^max rel diff' "$TMP/cmp")"
  else fail "BERT tp=2 x pp=2 $k"; cat "$TMP/cmp"; fi
done
mpi_train tp2pp2b 4 --train-iters 20 --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
cmp -s "$TMP/tp2pp2.loss" "$TMP/tp2pp2b.loss" && pass "BERT tp=2 x pp=2 twice: bitwise identical losses" \
  || fail "BERT tp=2 x pp=2 twice: losses differ"
mpi_train post 1 --train-iters 20 --post-layernorm
mpi_train post4 4 --train-iters 20 --post-layernorm --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
compare_traces "post-norm BERT tp=2 x pp=2 vs serial" post4 post 1e-6
finish
