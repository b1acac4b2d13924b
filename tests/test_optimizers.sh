#!/bin/sh
# --optimizer sgd and adafactor in training runs (their numerics against
# PyTorch and transformers are tests/test_hf.c's):
#  - each learns on the tiny run (the loss falls);
#  - exact resume: 12 iterations in one run equal 6 + resume + 6, bitwise,
#    and the final checkpoints (weights and every optimizer state) are equal;
#  - a checkpoint resumes only its own optimizer: another is refused with a
#    hint naming --no-load-optim, which then works; bad settings are refused;
#  - under MPI: Adafactor with tp=2 (its statistics summed over the shards)
#    and SGD with dp=2 against the serial run, losses within 1e-5 over 12
#    iterations and the saved weights and optimizer state within 1e-5;
#  - --use-distributed-optimizer (Adam, SGD): dp=2, dp=4, tp=2 x dp=2, pp=2 x dp=2
#    equal the same layout without it (1e-6; the checkpoints too), the state
#    per rank is halved under dp=2, and its checkpoint resumes serially;
#    Adafactor (sharded by whole tensors): dp=2 and tp=2 x dp=2 bitwise the
#    layout without it, less state per rank, resumed serially.
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/mpi_common.sh"
B=$MT_BIN
DIFF=$MT_TESTS/ckpt_diff
[ -x "$DIFF" ] || { echo "missing $DIFF"; exit 99; }
P="$TINY --global-batch-size 8 --backend cpu-ref"
SGD="--optimizer sgd --lr 0.3"
# Adafactor's step is --lr times the parameter's RMS (~0.02 here)
AF="--optimizer adafactor --adafactor-beta1 0.9 --lr 0.3"

for opt in sgd af; do
  [ $opt = sgd ] && O=$SGD || O=$AF
  $B train $P $O --train-iters 12 --save "$TMP/$opt.full" --log-json "$TMP/$opt.full.jsonl" \
    > "$TMP/$opt.log" 2>&1 || { cat "$TMP/$opt.log"; exit 1; }
  json_field "$TMP/$opt.full.jsonl" loss > "$TMP/$opt.loss"
  first=$(head -n1 "$TMP/$opt.loss"); last=$(tail -n1 "$TMP/$opt.loss")
  awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.2) }' && pass "$opt: loss falls ($first -> $last)" \
    || fail "$opt: loss did not fall: $first -> $last"
  $B train $P $O --train-iters 6 --save "$TMP/$opt.ck" --log-json "$TMP/$opt.part.jsonl" \
    > "$TMP/$opt.a.log" 2>&1 || { cat "$TMP/$opt.a.log"; exit 1; }
  $B train $P $O --train-iters 12 --load "$TMP/$opt.ck" --save "$TMP/$opt.ck" \
    --log-json "$TMP/$opt.part.jsonl" > "$TMP/$opt.b.log" 2>&1 || { cat "$TMP/$opt.b.log"; exit 1; }
  if $B compare "$TMP/$opt.part.jsonl" "$TMP/$opt.full.jsonl" --rtol 0 > "$TMP/cmp" 2>&1; then
    pass "$opt: resumed run bitwise equal ($(grep '^compared' "$TMP/cmp"))"
  else fail "$opt: resumed run differs"; cat "$TMP/cmp"; fi
  if "$DIFF" "$TMP/$opt.full/iter_0000012/model_optim_rng.mtc" "$TMP/$opt.ck/iter_0000012/model_optim_rng.mtc" 0 \
    > "$TMP/$opt.diff"; then pass "$opt: final checkpoints equal: $(tr '\n' ' ' < "$TMP/$opt.diff")"
  else fail "$opt: final checkpoints differ"; cat "$TMP/$opt.diff"; fi
done
grep -q "optim/exp_avg_sq_row/" "$TMP/af.diff" && grep -q "optim/exp_avg/" "$TMP/af.diff" \
  && pass "adafactor: the factored moments and the first moment are in the checkpoint" \
  || fail "adafactor: checkpoint lacks its state"
grep -q "optim/momentum_buffer/" "$TMP/sgd.diff" && pass "sgd: the momentum buffer is in the checkpoint" \
  || fail "sgd: checkpoint lacks its momentum buffer"

# another optimizer on a checkpoint: refused, then --no-load-optim
expect_error "adam on an adafactor checkpoint" "--no-load-optim" \
  $B train $P --train-iters 14 --load "$TMP/af.ck"
$B train $P --train-iters 14 --load "$TMP/af.ck" --no-load-optim > "$TMP/nlo.log" 2>&1 \
  && grep -q "loaded checkpoint .*iteration 12" "$TMP/nlo.log" && pass "--no-load-optim: adam continues an adafactor run" \
  || { fail "--no-load-optim"; cat "$TMP/nlo.log"; }
expect_error "unknown optimizer" "unknown --optimizer 'lamb'" $B train $P --train-iters 1 --optimizer lamb
expect_error "momentum out of range" "--sgd-momentum must lie in" $B train $P --train-iters 1 --optimizer sgd --sgd-momentum 1
expect_error "decay rate" "--adafactor-decay-rate must be negative" $B train $P --train-iters 1 --optimizer adafactor --adafactor-decay-rate 0.5
expect_error "warmup-init alone" "needs --adafactor-relative-step" $B train $P --train-iters 1 --optimizer adafactor --adafactor-warmup-init

# parallel layouts (skipped without MPI)
if [ "$MT_HAVE_MPI" = yes ] && [ -n "$MPIEXEC" ]; then
  P="$P --global-batch-size 8"
  # no biases: the key part of the QKV bias has a zero gradient, so its
  # Adafactor update is rounding noise over sqrt(eps1 = 1e-30), different
  # under every summation order (see tests/test_hf.c); the losses agree
  # either way
  mpi_train afs 1 $AF --train-iters 12 --save "$TMP/afs" --disable-bias-linear
  mpi_train aftp 2 $AF --train-iters 12 --save "$TMP/aftp" --disable-bias-linear --tensor-model-parallel-size 2
  compare_traces "adafactor tp=2 vs serial" aftp afs 1e-5
  if "$DIFF" "$TMP/afs/iter_0000012/model_optim_rng.mtc" "$TMP/aftp/iter_0000012/model_optim_rng.mtc" 1e-5 > "$TMP/aftp.diff"; then
    pass "adafactor tp=2: weights and state within 1e-5 of serial: $(tr '\n' ' ' < "$TMP/aftp.diff")"
  else fail "adafactor tp=2 checkpoint vs serial"; cat "$TMP/aftp.diff"; fi
  mpi_train sgds 1 $SGD --train-iters 12
  mpi_train sgddp 2 $SGD --train-iters 12
  compare_traces "sgd dp=2 vs serial" sgddp sgds 1e-5
  # the distributed optimizer: the same run as without it, half the state
  DO=--use-distributed-optimizer
  for opt in adam sgd; do
    [ $opt = sgd ] && O=$SGD || O=
    mpi_train $opt.dp2 2 $O --train-iters 12 --save "$TMP/$opt.dp2"
    mpi_train $opt.do2 2 $O $DO --train-iters 12 --save "$TMP/$opt.do2"
    compare_traces "$opt --use-distributed-optimizer dp=2 vs dp=2 without" $opt.do2 $opt.dp2 1e-6
    if "$DIFF" "$TMP/$opt.dp2/iter_0000012/model_optim_rng.mtc" "$TMP/$opt.do2/iter_0000012/model_optim_rng.mtc" 1e-6 \
      > "$TMP/$opt.do.diff"; then pass "$opt distributed: checkpoint within 1e-6: $(tr '\n' ' ' < "$TMP/$opt.do.diff")"
    else fail "$opt distributed: checkpoint differs"; cat "$TMP/$opt.do.diff"; fi
    full=$(sed -n 's/.*optimizer: [a-z]*, state \([0-9.]*\) MB.*/\1/p' "$TMP/$opt.dp2.log")
    half=$(sed -n 's/.*optimizer: [a-z]*, state \([0-9.]*\) MB per rank (distributed.*/\1/p' "$TMP/$opt.do2.log")
    awk -v f="$full" -v h="$half" 'BEGIN { exit !(h > 0 && h <= f / 2 + 0.01) }' \
      && pass "$opt distributed: state per rank $half MB against $full MB" || fail "$opt distributed: state $half MB vs $full MB"
    # and the backend's allocations for the step fall by what the state
    # saves (no other buffers; a save gathers whole tensors for a moment)
    p0=$(sed -n 's/.*memory per rank.* in flight): \([0-9.]*\) MB.*/\1/p' "$TMP/$opt.dp2.log")
    p1=$(sed -n 's/.*memory per rank.* in flight): \([0-9.]*\) MB.*/\1/p' "$TMP/$opt.do2.log")
    awk -v a="$p0" -v b="$p1" -v f="$full" -v h="$half" 'BEGIN { exit !(b > 0 && b <= a - (f - h) + 0.02) }' \
      && pass "$opt distributed: backend memory for the step $p1 MB against $p0 MB" || fail "$opt distributed: memory $p1 MB vs $p0 MB"
  done
  # 4 ranks (a tail of the flat buffers on every rank), tp=2 x dp=2, and a
  # distributed dp=2 checkpoint resumed serially without it
  mpi_train adam.dp4 4 --train-iters 12 --global-batch-size 16
  mpi_train adam.do4 4 $DO --train-iters 12 --global-batch-size 16
  compare_traces "adam distributed dp=4 vs dp=4 without" adam.do4 adam.dp4 1e-6
  mpi_train adam.tpdp 4 --train-iters 12 --tensor-model-parallel-size 2
  mpi_train adam.tpdo 4 $DO --train-iters 12 --tensor-model-parallel-size 2
  compare_traces "adam distributed tp=2 x dp=2 vs without" adam.tpdo adam.tpdp 1e-6
  mpi_train adam.ppdp 4 --train-iters 12 --pipeline-model-parallel-size 2
  mpi_train adam.ppdo 4 $DO --train-iters 12 --pipeline-model-parallel-size 2
  compare_traces "adam distributed pp=2 x dp=2 (the tied embedding on two stages) vs without" adam.ppdo adam.ppdp 1e-6
  # Adafactor, sharded by whole tensors: bitwise the run without it (the
  # same all-reduced gradients, each tensor updated by its owner), every
  # rank holding less than the whole state; under tp=2 x dp=2 too; saved
  # distributed, resumed serially
  AFD="$AF --disable-bias-linear"
  mpi_train af.dp2 2 $AFD --train-iters 12 --save "$TMP/af.dp2"
  mpi_train af.do2 2 $AFD $DO --train-iters 12 --save "$TMP/af.do2"
  compare_traces "adafactor --use-distributed-optimizer dp=2 vs dp=2 without" af.do2 af.dp2 0
  if "$DIFF" "$TMP/af.dp2/iter_0000012/model_optim_rng.mtc" "$TMP/af.do2/iter_0000012/model_optim_rng.mtc" 0 \
    > "$TMP/af.do.diff"; then pass "adafactor distributed: checkpoint bitwise: $(tr '\n' ' ' < "$TMP/af.do.diff")"
  else fail "adafactor distributed: checkpoint differs"; cat "$TMP/af.do.diff"; fi
  full=$(sed -n 's/.*optimizer: [a-z]*, state \([0-9.]*\) MB.*/\1/p' "$TMP/af.dp2.log")
  part=$(sed -n 's/.*optimizer: [a-z]*, state \([0-9.]*\) MB per rank (distributed.*by whole tensors.*/\1/p' "$TMP/af.do2.log")
  awk -v f="$full" -v h="$part" 'BEGIN { exit !(h > 0 && h < f) }' \
    && pass "adafactor distributed: state on rank 0 $part MB against $full MB" || fail "adafactor distributed: state $part MB vs $full MB"
  mpi_train af.tpdp 4 $AFD --train-iters 12 --tensor-model-parallel-size 2
  mpi_train af.tpdo 4 $AFD $DO --train-iters 12 --tensor-model-parallel-size 2
  compare_traces "adafactor distributed tp=2 x dp=2 vs without" af.tpdo af.tpdp 0
  mpi_train af.half 2 $AFD $DO --train-iters 6 --save "$TMP/af.half"
  mpi_train af.rest 1 $AFD --train-iters 12 --load "$TMP/af.half" --global-batch-size 8
  sed -n '7,12p' "$TMP/af.dp2.train.jsonl" > "$TMP/af.tail.train.jsonl"
  compare_traces "adafactor saved distributed under dp=2, resumed serially, vs uninterrupted dp=2" \
    af.rest af.tail 1e-5
  mpi_train adam.half 2 $DO --train-iters 6 --save "$TMP/adam.half"
  mpi_train adam.rest 1 --train-iters 12 --load "$TMP/adam.half" --global-batch-size 8
  sed -n '7,12p' "$TMP/adam.dp2.train.jsonl" > "$TMP/adam.tail.train.jsonl"
  compare_traces "saved distributed under dp=2, resumed serially without it, vs uninterrupted dp=2" \
    adam.rest adam.tail 1e-5
else
  echo "(MPI parts skipped: no MPI in this build)"
fi
finish
