#!/bin/sh
# Parallel layouts against the serial run (under mpiexec; skipped without MPI):
#  - tp=2, pp=2, dp=2, tp=2 x pp=2 and pp=4 with 8 micro-batches: the loss of
#    every one of 20 iterations within a relative 1e-5 of the serial run
#    (dp=2 against the serial run with 2 accumulation steps: same global batch);
#  - gradients after one iteration, tensor by tensor (Adam's first moment
#    after one step at lr 0 is 0.1 x the clipped gradient): within 1e-5;
#  - the same layout twice: bitwise identical losses;
#  - save under tp=2 x pp=2, resume under tp=1 pp=1 (and the reverse): the
#    continued losses match the uninterrupted run; a tp=2 save whose largest
#    tensor is replicated equals the serial save.
#  - killing one rank of a training run ends the job within 30 s.
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/mpi_common.sh"
mpi_require
B=$MT_BIN
DIFF=$MT_TESTS/ckpt_diff
[ -x "$DIFF" ] || { echo "missing $DIFF"; exit 99; }
# 4 layers so that pp=4 has a layer per stage; 8 micro-batches of 2
P="--num-layers 4 --hidden-size 32 --num-attention-heads 4 --seq-length 32 --micro-batch-size 2 \
 --global-batch-size 16 --lr 3e-3 --lr-warmup-iters 2 --lr-decay-iters 20 --log-interval 1 \
 --eval-interval 0 --eval-iters 1 --sample-tokens 0 --no-progress --backend cpu-ref"


# invalid layouts are refused before any work, with the numbers
expect_error "heads not divisible by tp" "--num-attention-heads (4) is not divisible by --tensor-model-parallel-size (3)" \
  mpi_run 3 $B train $P --train-iters 1 --tensor-model-parallel-size 3
expect_error "world not divisible by tp x pp" "world size 3 is not divisible by tensor-model-parallel-size 2" \
  mpi_run 3 $B train $P --train-iters 1 --tensor-model-parallel-size 2
expect_error "layers not divisible by pp" "--num-layers (4) is not divisible by --pipeline-model-parallel-size (3)" \
  mpi_run 3 $B train $P --train-iters 1 --pipeline-model-parallel-size 3
expect_error "batch not divisible by dp" "--global-batch-size (16) is not divisible by --micro-batch-size (2) x data-parallel size (3)" \
  mpi_run 3 $B train $P --train-iters 1

mpi_train serial 1 --train-iters 20
mpi_train tp2 2 --train-iters 20 --tensor-model-parallel-size 2
compare_traces "tp=2 vs serial" tp2 serial 1e-5
mpi_train pp2 2 --train-iters 20 --pipeline-model-parallel-size 2
compare_traces "pp=2 vs serial" pp2 serial 1e-5
mpi_train dp2 2 --train-iters 20
compare_traces "dp=2 vs serial (2 accumulation steps)" dp2 serial 1e-5
mpi_train tp2pp2 4 --train-iters 20 --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
compare_traces "tp=2 x pp=2 vs serial" tp2pp2 serial 1e-5
mpi_train pp4 4 --train-iters 20 --pipeline-model-parallel-size 4 --global-batch-size 16
compare_traces "pp=4, 8 micro-batches vs serial" pp4 serial 1e-5
mpi_train tp2pp2b 4 --train-iters 20 --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
cmp -s "$TMP/tp2pp2.loss" "$TMP/tp2pp2b.loss" && pass "tp=2 x pp=2 twice: bitwise identical losses" \
  || fail "tp=2 x pp=2 twice: losses differ"

# gradients tensor by tensor after one iteration
mpi_train g1 1 --train-iters 1 --save "$TMP/g1"
mpi_train gtp 4 --train-iters 1 --save "$TMP/gtp" --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
mpi_train gpp 2 --train-iters 1 --save "$TMP/gpp" --pipeline-model-parallel-size 2
mpi_train gdp 2 --train-iters 1 --save "$TMP/gdp"
for v in gtp gpp gdp; do
  if "$DIFF" "$TMP/g1/iter_0000001/model_optim_rng.mtc" "$TMP/$v/iter_0000001/model_optim_rng.mtc" 1e-5 > "$TMP/$v.diff"; then
    pass "gradients after one iteration, $v vs serial: $(sed -n 2p "$TMP/$v.diff")"
  else fail "gradients after one iteration, $v vs serial"; cat "$TMP/$v.diff"; fi
done

# a save under tp=2 whose largest tensor is replicated (the position table
# at seq 256): it was once gathered tp times into a buffer of one
mpi_train pos1 1 --train-iters 1 --seq-length 256 --global-batch-size 4 --save "$TMP/pos1"
mpi_train pos2 2 --train-iters 1 --seq-length 256 --global-batch-size 4 --save "$TMP/pos2" --tensor-model-parallel-size 2
if "$DIFF" "$TMP/pos1/iter_0000001/model_optim_rng.mtc" "$TMP/pos2/iter_0000001/model_optim_rng.mtc" 1e-5 > "$TMP/pos.diff"; then
  pass "tp=2 save with a replicated largest tensor equals the serial one: $(sed -n 2p "$TMP/pos.diff")"
else fail "tp=2 save with a replicated largest tensor"; cat "$TMP/pos.diff"; fi

# resharding: save under one layout, resume under another
mpi_train a10 4 --train-iters 10 --save "$TMP/a" --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
mpi_train a20 1 --train-iters 20 --load "$TMP/a"
tail -n 10 "$TMP/serial.train.jsonl" > "$TMP/serial_tail.train.jsonl"
compare_traces "saved tp=2 x pp=2, resumed tp=1 pp=1" a20 serial_tail 1e-5
mpi_train b10 1 --train-iters 10 --save "$TMP/b"
mpi_train b20 4 --train-iters 20 --load "$TMP/b" --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
compare_traces "saved tp=1 pp=1, resumed tp=2 x pp=2" b20 serial_tail 1e-5

# a rank killed mid-run (SIGKILL, as by the OOM killer) ends the job
$MPIEXEC $MT_MPIEXEC_FLAGS -n 2 $B train $P --train-iters 100000 --tensor-model-parallel-size 2 \
  --log-json "$TMP/kill.jsonl" > "$TMP/kill.log" 2>&1 &
job=$!
i=0
while [ $i -lt 120 ] && ! grep -q '"iteration": 3,' "$TMP/kill.jsonl" 2>/dev/null; do sleep 0.5; i=$((i + 1)); done
victim=""
for pid in $(pgrep -f "$TMP/kill.jsonl"); do
  [ "$(cat /proc/$pid/comm 2>/dev/null)" = megatron-c ] && victim=$pid
done
if [ -z "$victim" ]; then
  fail "kill: no training rank found"; kill $job 2>/dev/null
else
  t0=$(now_ms)
  kill -9 "$victim"
  # wait for the job, at most 60 s
  i=0
  while kill -0 $job 2>/dev/null && [ $i -lt 120 ]; do sleep 0.5; i=$((i + 1)); done
  ms=$(( $(now_ms) - t0 ))
  if kill -0 $job 2>/dev/null; then
    fail "kill: the job still runs 60 s after a rank was killed"; kill -9 $job 2>/dev/null
    pkill -9 -f "$TMP/kill.jsonl" 2>/dev/null
  else
    wait $job; rc=$?
    if [ $rc -ne 0 ] && [ $ms -le 30000 ]; then pass "kill: one rank killed, the job ended in $ms ms with status $rc"
    else fail "kill: status $rc after $ms ms"; fi
  fi
fi
finish
