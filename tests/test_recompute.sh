#!/bin/sh
# Activation recompute (--recompute-granularity full | selective,
# --recompute-method uniform | block, --recompute-num-layers,
# --recompute-activations): the same run with and without it
#  - repeats the losses and gradient norms bitwise, with dropout on, for
#    every method (uniform chunks of 1 and 3 of 4 layers, a shorter last
#    chunk; block 2 and 0), selective (which recomputes the probabilities of
#    --attention-backend unfused; flash attention keeps none), and under
#    --bf16;
#  - saves bitwise the same checkpoint (weights and optimizer state);
#  - allocates less: the measured peak is lower, least with full uniform 1,
#    and the startup report's "without recompute" total is the plain run's;
#  - in post-norm BERT (the layer output is the second norm's);
#  - under MPI: pp=2 (1F1B, several micro-batches in flight) and tp=2 with
#    recompute equal the same layouts without it, bitwise;
#  - Megatron's checks refuse inconsistent flags.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
DIFF=$MT_TESTS/ckpt_diff
[ -x "$DIFF" ] || { echo "missing $DIFF"; exit 99; }
P="--num-layers 4 --hidden-size 32 --num-attention-heads 4 --seq-length 32 --micro-batch-size 4 \
 --global-batch-size 8 --lr 3e-3 --lr-warmup-iters 2 --lr-decay-iters 20 --log-interval 1 --eval-interval 0 \
 --eval-iters 1 --sample-tokens 0 --no-progress --hidden-dropout 0.1 --attention-dropout 0.1 --train-iters 8"

peak() { sed -n 's/.*memory peak (rank 0): \([0-9.]*\) MB.*/\1/p' "$1"; }

# same NAME BASE FLAGS...: the run NAME with FLAGS equals the run BASE, bitwise
same() {
  name=$1; base=$2; shift 2
  $B train $P "$@" --log-json "$TMP/$name.jsonl" --save "$TMP/$name.ck" > "$TMP/$name.log" 2>&1 \
    || { fail "$name: run failed"; tail -n 5 "$TMP/$name.log"; return; }
  if $B compare "$TMP/$name.jsonl" "$TMP/$base.jsonl" --rtol 0 > "$TMP/cmp" 2>&1 &&
     $B compare "$TMP/$name.jsonl" "$TMP/$base.jsonl" --rtol 0 --key grad_norm > /dev/null 2>&1 &&
     "$DIFF" "$TMP/$name.ck/iter_0000008/model_optim_rng.mtc" "$TMP/$base.ck/iter_0000008/model_optim_rng.mtc" 0 \
       > "$TMP/diff" 2>&1; then
    pass "$name: losses, grad norms and the checkpoint bitwise the run without recompute (peak $(peak "$TMP/$name.log") MB, without $(peak "$TMP/$base.log") MB)"
  else fail "$name: differs from $base"; cat "$TMP/cmp" "$TMP/diff"; fi
}

$B train $P --log-json "$TMP/none.jsonl" --save "$TMP/none.ck" > "$TMP/none.log" 2>&1 || { cat "$TMP/none.log"; exit 1; }
same uniform1 none --recompute-granularity full --recompute-method uniform --recompute-num-layers 1
same uniform3 none --recompute-granularity full --recompute-method uniform --recompute-num-layers 3
same block2 none --recompute-granularity full --recompute-method block --recompute-num-layers 2
same block0 none --recompute-granularity full --recompute-method block --recompute-num-layers 0
same selective none --recompute-granularity selective
same activations none --recompute-activations
U="--attention-backend unfused"
$B train $P $U --log-json "$TMP/unfused.jsonl" --save "$TMP/unfused.ck" > "$TMP/unfused.log" 2>&1 || { cat "$TMP/unfused.log"; exit 1; }
same selective_unfused unfused $U --recompute-granularity selective
same uniform1_unfused unfused $U --recompute-granularity full --recompute-method uniform --recompute-num-layers 1
$B train $P --bf16 --log-json "$TMP/bf16.jsonl" --save "$TMP/bf16.ck" > "$TMP/bf16.log" 2>&1 || { cat "$TMP/bf16.log"; exit 1; }
same bf16_uniform1 bf16 --bf16 --recompute-granularity full --recompute-method uniform --recompute-num-layers 1

grep -q "activation recompute: full, uniform 1" "$TMP/uniform1.log" && grep -q "activation recompute: selective" "$TMP/activations.log" \
  && grep -q "selective (flash attention keeps no probabilities" "$TMP/selective.log" \
  && grep -q "selective (the attention probabilities" "$TMP/selective_unfused.log" \
  && pass "the banner names the recompute setting (and that selective has nothing to do with flash attention)" \
  || fail "no recompute line in the banner"
p0=$(peak "$TMP/none.log"); p1=$(peak "$TMP/uniform1.log"); p3=$(peak "$TMP/uniform3.log"); ps=$(peak "$TMP/selective.log")
pb=$(peak "$TMP/block0.log"); pu=$(peak "$TMP/unfused.log"); psu=$(peak "$TMP/selective_unfused.log")
awk -v n="$p0" -v a="$p1" -v c="$p3" -v s="$ps" -v b="$pb" -v u="$pu" -v su="$psu" \
  'BEGIN { exit !(a < c && c < n && s == n && b == n && su < u && n < su) }' \
  && pass "peak memory: full uniform 1 $p1 < uniform 3 $p3 < none $p0 MB = selective = block 0 (flash); unfused $pu MB > selective $psu MB > flash" \
  || fail "peak memory: none $p0, uniform 1 $p1, uniform 3 $p3, selective $ps, block 0 $pb; unfused $pu, its selective $psu MB"

# the startup report's "without recompute" total is what the run without it allocates
total() { sed -n 's/.*memory per rank.*: \([0-9.]*\) MB$/\1/p; s/.*memory per rank.*without recompute [0-9.]* MB more: \([0-9.]*\) MB$/\1/p' "$1" | tail -n 1; }
t0=$(total "$TMP/none.log"); tw=$(total "$TMP/uniform1.log"); tu=$(total "$TMP/unfused.log"); ts=$(total "$TMP/selective_unfused.log")
[ -n "$t0" ] && [ "$tw" = "$t0" ] && [ -n "$tu" ] && [ "$ts" = "$tu" ] \
  && pass "the memory report's total without recompute ($tw, $ts MB) is the run without it ($t0, $tu MB)" \
  || fail "memory report without recompute: $tw / $ts MB, the run without it $t0 / $tu MB"

# post-norm BERT: the layer's output is ln2
$B preprocess --input "$MT_DATA_DIR/tinyshakespeare/input.txt" --output-prefix "$TMP/ts" \
  --tokenizer-type BertWordPieceLowerCase --split-sentences > "$TMP/pre" 2>&1 || { cat "$TMP/pre"; exit 99; }
BERT="--model bert --data-path $TMP/ts_text_sentence --tokenizer-type BertWordPieceLowerCase --num-layers 2 \
 --hidden-size 32 --num-attention-heads 4 --seq-length 32 --micro-batch-size 4 --global-batch-size 8 --lr 2e-3 \
 --log-interval 1 --eval-iters 0 --no-progress --train-iters 4 --post-layernorm"
$B train $BERT --log-json "$TMP/bert0.jsonl" > "$TMP/bert0.log" 2>&1 || { cat "$TMP/bert0.log"; exit 1; }
$B train $BERT --recompute-granularity full --recompute-method uniform --recompute-num-layers 1 \
  --log-json "$TMP/bert1.jsonl" > "$TMP/bert1.log" 2>&1 || { cat "$TMP/bert1.log"; exit 1; }
$B compare "$TMP/bert1.jsonl" "$TMP/bert0.jsonl" --rtol 0 > "$TMP/cmp" 2>&1 \
  && $B compare "$TMP/bert1.jsonl" "$TMP/bert0.jsonl" --rtol 0 --key sop_loss > /dev/null 2>&1 \
  && pass "post-norm BERT with full recompute: bitwise the run without it" \
  || { fail "post-norm BERT with recompute differs"; cat "$TMP/cmp"; }

expect_error "full without a method" "needs --recompute-method" $B train $P --recompute-granularity full
expect_error "full without a count" "needs --recompute-num-layers" $B train $P --recompute-granularity full --recompute-method block
expect_error "uniform 0" "must lie in \[1, 4\]" $B train $P --recompute-granularity full --recompute-method uniform --recompute-num-layers 0
expect_error "block beyond the stage" "must lie in \[0, 4\]" $B train $P --recompute-granularity full --recompute-method block --recompute-num-layers 5
expect_error "selective with a method" "are for --recompute-granularity full" $B train $P --recompute-granularity selective --recompute-method uniform
expect_error "unknown granularity" "unknown --recompute-granularity 'half'" $B train $P --recompute-granularity half
expect_error "a method alone" "need --recompute-granularity" $B train $P --recompute-method uniform
expect_error "another module" "--recompute-modules mlp is not supported" $B train $P --recompute-granularity selective --recompute-modules mlp
expect_error "two granularities" "contradicts" $B train $P --recompute-activations --recompute-granularity full --recompute-method block --recompute-num-layers 1

. "$(dirname "$0")/mpi_common.sh"
if [ "$MT_HAVE_MPI" = yes ] && [ -n "$MPIEXEC" ]; then
  # 4 micro-batches: 1F1B keeps two in flight on the first stage; unfused
  # attention, so that selective recomputes something
  Q="$P --micro-batch-size 2 --attention-backend unfused"
  for layout in "pp2:--pipeline-model-parallel-size 2" "tp2:--tensor-model-parallel-size 2"; do
    name=${layout%%:*}; flags=${layout#*:}
    mpi_run 2 $B train $Q $flags --log-json "$TMP/$name.jsonl" > "$TMP/$name.log" 2>&1 \
      || { fail "$name: run failed"; cat "$TMP/$name.log"; continue; }
    for rc in "full:--recompute-granularity full --recompute-method uniform --recompute-num-layers 1" \
              "block:--recompute-granularity full --recompute-method block --recompute-num-layers 1" \
              "selective:--recompute-granularity selective"; do
      rn=${rc%%:*}; rf=${rc#*:}
      mpi_run 2 $B train $Q $flags $rf --log-json "$TMP/$name.$rn.jsonl" > "$TMP/$name.$rn.log" 2>&1 \
        || { fail "$name $rn: run failed"; cat "$TMP/$name.$rn.log"; continue; }
      $B compare "$TMP/$name.$rn.jsonl" "$TMP/$name.jsonl" --rtol 0 > "$TMP/cmp" 2>&1 \
        && $B compare "$TMP/$name.$rn.jsonl" "$TMP/$name.jsonl" --rtol 0 --key grad_norm > /dev/null 2>&1 \
        && pass "$name with $rn recompute: bitwise $name without it" \
        || { fail "$name $rn differs"; cat "$TMP/cmp"; }
    done
  done
else echo "SKIP: no MPI: recompute under pp=2 and tp=2 not run"; fi
finish
