#!/bin/sh
# A tiny Llama-style model (RoPE, RMSNorm, SwiGLU, grouped-query attention
# with 4 heads in 2 groups, untied output, no biases) with hidden and
# attention dropout 0.1, under parallel layouts against the serial run
# (under mpiexec; skipped without MPI):
#  - tp=2, pp=2, dp=2 and tp=2 x pp=2: the loss of every one of 20
#    iterations within a relative 1e-6 of the serial run (dp=2 against the
#    serial run with 2 accumulation steps: same global batch). The dropout
#    masks are keyed by each sample's place in the stream, not by the rank;
#  - the same layout twice: bitwise identical losses;
#  - resume at iteration 10 (serial and tp=2 x pp=2): bitwise the losses of
#    the uninterrupted run; saved under tp=2 x pp=2 and resumed serially:
#    within 1e-6;
#  - dropout is really on: the same run without it has other losses;
#  - tensor parallelism that does not divide the query groups is refused.
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/mpi_common.sh"
mpi_require
B=$MT_BIN
P="--num-layers 4 --hidden-size 32 --num-attention-heads 4 --group-query-attention --num-query-groups 2 \
 --position-embedding-type rope --normalization RMSNorm --swiglu --untie-embeddings-and-output-weights \
 --disable-bias-linear --hidden-dropout 0.1 --attention-dropout 0.1 \
 --seq-length 32 --micro-batch-size 2 --global-batch-size 8 --lr 3e-3 --lr-warmup-iters 2 \
 --lr-decay-iters 20 --log-interval 1 --eval-interval 0 --eval-iters 1 --sample-tokens 0 --no-progress \
 --backend cpu-ref"


expect_error "tp not dividing the query groups" \
  "--num-query-groups (2) is not divisible by --tensor-model-parallel-size (4)" \
  mpi_run 4 $B train $P --train-iters 1 --num-attention-heads 8 --tensor-model-parallel-size 4

mpi_train serial 1 --train-iters 20
mpi_train tp2 2 --train-iters 20 --tensor-model-parallel-size 2
compare_traces "tp=2 vs serial, dropout 0.1" tp2 serial 1e-6
mpi_train pp2 2 --train-iters 20 --pipeline-model-parallel-size 2
compare_traces "pp=2 vs serial, dropout 0.1" pp2 serial 1e-6
mpi_train dp2 2 --train-iters 20
compare_traces "dp=2 vs serial (2 accumulation steps), dropout 0.1" dp2 serial 1e-6
mpi_train tp2pp2 4 --train-iters 20 --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
compare_traces "tp=2 x pp=2 vs serial, dropout 0.1" tp2pp2 serial 1e-6
mpi_train tp2pp2b 4 --train-iters 20 --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
cmp -s "$TMP/tp2pp2.loss" "$TMP/tp2pp2b.loss" && pass "tp=2 x pp=2 twice: bitwise identical losses" \
  || fail "tp=2 x pp=2 twice: losses differ"
mpi_train serialb 1 --train-iters 20
cmp -s "$TMP/serial.loss" "$TMP/serialb.loss" && pass "serial twice: bitwise identical losses" \
  || fail "serial twice: losses differ"

# resume: bitwise on the same layout, within 1e-6 across layouts
tail -n 10 "$TMP/serial.train.jsonl" > "$TMP/serial_tail.train.jsonl"
tail -n 10 "$TMP/tp2pp2.train.jsonl" > "$TMP/tp2pp2_tail.train.jsonl"
mpi_train s10 1 --train-iters 10 --save "$TMP/s"
mpi_train s20 1 --train-iters 20 --load "$TMP/s"
compare_traces "serial: saved at 10, resumed to 20, bitwise" s20 serial_tail 0
mpi_train t10 4 --train-iters 10 --save "$TMP/t" --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
mpi_train t20 4 --train-iters 20 --load "$TMP/t" --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
compare_traces "tp=2 x pp=2: saved at 10, resumed to 20, bitwise" t20 tp2pp2_tail 0
mpi_train ts20 1 --train-iters 20 --load "$TMP/t"
compare_traces "saved tp=2 x pp=2, resumed serially" ts20 serial_tail 1e-6

# the test can fail: without dropout the losses differ
mpi_train nodrop 1 --train-iters 5 --hidden-dropout 0 --attention-dropout 0
head -n 5 "$TMP/serial.loss" > "$TMP/serial5.loss"
if cmp -s "$TMP/serial5.loss" "$TMP/nodrop.loss"; then fail "dropout had no effect on the losses"
else pass "dropout is on: without it the first 5 losses differ ($(head -n1 "$TMP/nodrop.loss") vs $(head -n1 "$TMP/serial.loss"))"; fi
finish
