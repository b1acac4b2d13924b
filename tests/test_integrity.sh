#!/bin/sh
# Nothing lost, nothing silently wrong (fault injection against the program):
#  - a run that diverges (a learning rate that turns the weights into inf)
#    with --save-interval 1 never saves them: the last good checkpoint stays
#    the tracker's, intact, and the error names it;
#  - generate refuses a model holding a NaN (a Hugging Face directory: a
#    megatron-c checkpoint cannot hold one, test_ckpt_integrity);
#  - a bit flip in a checkpoint's metadata (the iteration, the consumed
#    samples) is refused; a tracker removed while checkpoints exist is
#    refused and nothing is overwritten; a tracker naming an older
#    iteration than the newest complete one is loaded with a warning;
#  - kill -9 at random moments of runs that save every iteration: each time
#    the directory resumes, from the iteration its tracker names;
#  - a log on a full disk (/dev/full), standard output on a full disk: the
#    run finishes and saves, warns, and exits with status 1;
#  - --save that cannot be written is refused before the first iteration;
#  - a .bin truncated while a run reads it: a clear error naming the file,
#    status 1, not SIGBUS;
#  - a device as --data-path, an empty preprocess input (and no partial
#    outputs left), flags out of range (--lr 1e39 beyond f32, negative
#    --clip-grad, --weight-decay, --sample-temperature, --init-method-std 0
#    or 1e30, warmup not below decay, a --hidden-size whose MLP width
#    overflows an int, --max-new-tokens INT_MAX);
#  - generate at --temperature 1e-45 equals greedy (no inf - inf).
# A frozen MPI rank (the watchdog) is tests/test_fault.sh's.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
S="$MT_DATA_DIR/tinyshakespeare/input.txt"
T="--data-path $S --tokenizer-type CharLevel $TINY --eval-iters 0"

# ---- divergence: finite or nothing
$B train $T --train-iters 3 --save "$TMP/div" > /dev/null 2>&1 || { echo "setup: train"; exit 99; }
cp "$TMP/div/iter_0000003/model_optim_rng.mtc" "$TMP/good.mtc"
$B train $T --train-iters 8 --lr 3e38 --lr-warmup-iters 0 --clip-grad 0 --save-interval 1 \
  --save "$TMP/div" --load "$TMP/div" > "$TMP/out" 2> "$TMP/err"
rc=$?
if [ $rc -eq 1 ] && grep -q "the weights are not finite" "$TMP/err" &&
   grep -q "the last good checkpoint is iteration 3 in $TMP/div" "$TMP/err" &&
   [ "$(cat "$TMP/div/latest_checkpointed_iteration.txt")" = 3 ] &&
   cmp -s "$TMP/good.mtc" "$TMP/div/iter_0000003/model_optim_rng.mtc" && [ ! -e "$TMP/div/iter_0000004" ]; then
  pass "diverged run: nothing saved, tracker still 3, iteration 3 intact and named: $(head -n1 "$TMP/err")"
else
  fail "diverged run (status $rc)"; cat "$TMP/err"; ls "$TMP/div"
fi

# ---- a NaN in a Hugging Face model
if $B convert --load "$TMP/div" --save "$TMP/hf" > /dev/null 2>&1; then
  f="$TMP/hf/model.safetensors"
  size=$(wc -c < "$f")
  printf '\000\000\300\177' | dd of="$f" bs=1 seek=$((size - 4)) conv=notrunc 2>/dev/null # the last float: NaN
  expect_error "generate refuses a model holding a NaN" "holds 1 non-finite values" \
    $B generate --load "$TMP/hf" --max-new-tokens 4
else
  fail "convert to HF for the NaN case"
fi

# ---- checkpoint metadata, tracker
flip_digit() { # FILE KEY: flips the lowest bit of the first digit of KEY's value
  off=$(grep -a -b -o "$2=[0-9]" "$1" | head -n1 | cut -d: -f1)
  off=$((off + ${#2} + 1))
  c=$(dd if="$1" bs=1 skip=$off count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
  printf "$(printf '\\%03o' $((c ^ 1)))" | dd of="$1" bs=1 seek=$off conv=notrunc 2>/dev/null
}
for key in iteration consumed_train_samples optimizer_step; do
  rm -rf "$TMP/flip"; mkdir -p "$TMP/flip/iter_0000003"
  cp "$TMP/good.mtc" "$TMP/flip/iter_0000003/model_optim_rng.mtc"; echo 3 > "$TMP/flip/latest_checkpointed_iteration.txt"
  flip_digit "$TMP/flip/iter_0000003/model_optim_rng.mtc" $key
  expect_error "a bit flip in $key is refused" "checksum mismatch in the header" \
    $B train $T --train-iters 5 --load "$TMP/flip"
done
rm -f "$TMP/div/latest_checkpointed_iteration.txt"
expect_error "no tracker but checkpoints: refused" "holds 1 checkpoint directory (newest iter_0000003) but no latest_checkpointed_iteration.txt" \
  $B train $T --train-iters 5 --save "$TMP/div" --load "$TMP/div"
cmp -s "$TMP/good.mtc" "$TMP/div/iter_0000003/model_optim_rng.mtc" && [ ! -e "$TMP/div/iter_0000005" ] &&
  pass "... and nothing was written over them" || fail "checkpoints changed after the refusal"
$B train $T --train-iters 4 --save "$TMP/old" > /dev/null 2>&1 && echo 3 > "$TMP/old/latest_checkpointed_iteration.txt" &&
  mkdir -p "$TMP/old/iter_0000003" && cp "$TMP/good.mtc" "$TMP/old/iter_0000003/model_optim_rng.mtc"
$B train $T --train-iters 5 --load "$TMP/old" > "$TMP/out" 2> "$TMP/err" &&
  grep -q "names iteration 3, but iter_0000004 is newer" "$TMP/err" && grep -q "loaded checkpoint .* at iteration 3" "$TMP/out" &&
  pass "a tracker behind the newest checkpoint loads its iteration with a warning" ||
  { fail "tracker behind the newest checkpoint"; cat "$TMP/err"; }

# ---- kill -9 during runs that save every iteration
BIG="--data-path $S --tokenizer-type CharLevel --num-layers 4 --hidden-size 256 --num-attention-heads 4 \
 --seq-length 32 --micro-batch-size 2 --lr 1e-3 --lr-warmup-iters 0 --log-interval 1 --eval-iters 0 --sample-tokens 0 \
 --no-progress --save-interval 1 --save $TMP/kill --load $TMP/kill"
killed=0 resumed=0
for delay in 0.7 1.1 1.5 1.9 2.3; do
  $B train $BIG --train-iters 100000 > /dev/null 2>&1 &
  pid=$!
  sleep $delay
  kill -9 $pid 2>/dev/null && killed=$((killed + 1))
  wait $pid 2>/dev/null
  want=$(cat "$TMP/kill/latest_checkpointed_iteration.txt" 2>/dev/null || echo none)
  if [ "$want" = none ]; then
    $B train $BIG --train-iters 1 > "$TMP/out" 2> "$TMP/err" && grep -q "starting from scratch" "$TMP/err" &&
      resumed=$((resumed + 1)) || { fail "killed after $delay s before any save: no fresh start"; cat "$TMP/err"; }
  else
    $B train $BIG --train-iters $((want + 1)) > "$TMP/out" 2> "$TMP/err" &&
      grep -q "loaded checkpoint .* at iteration $want" "$TMP/out" && resumed=$((resumed + 1)) ||
      { fail "killed after $delay s (tracker $want): no clean resume"; cat "$TMP/err"; }
  fi
done
[ $resumed -eq 5 ] && pass "kill -9 at 5 moments ($killed killed mid-run): every time the run resumed from its tracker's iteration" ||
  fail "kill -9: $resumed of 5 resumed"

# ---- logs and --save that cannot be written
$B train $T --train-iters 3 --log-json /dev/full --save "$TMP/full" > "$TMP/out" 2> "$TMP/err"
rc=$?
[ $rc -eq 1 ] && grep -q "cannot write /dev/full" "$TMP/err" && [ -f "$TMP/full/iter_0000003/model_optim_rng.mtc" ] &&
  pass "--log-json on a full disk: the run saved, warned and exited 1" || { fail "--log-json /dev/full: status $rc"; cat "$TMP/err"; }
$B train $T --train-iters 3 > /dev/full 2> "$TMP/err"
rc=$?
[ $rc -eq 1 ] && grep -q "cannot write standard output" "$TMP/err" &&
  pass "standard output on a full disk: warned and exited 1" || { fail "stdout /dev/full: status $rc"; cat "$TMP/err"; }
: > "$TMP/plain"
expect_error "--save under a file is refused before training" "cannot create --save directory $TMP/plain/ck" \
  $B train $T --train-iters 3 --save "$TMP/plain/ck"
grep -q "iteration " "$TMP/out" && fail "... but it trained first" || pass "... before any iteration"

# ---- data files
$B preprocess --input "$S" --output-prefix "$TMP/ts" --tokenizer-type GPT2BPETokenizer --append-eod > /dev/null 2>&1 ||
  { echo "setup: preprocess"; exit 99; }
D="$TMP/ts_text_document"
$B train --data-path "$D" --tokenizer-type GPT2BPETokenizer --num-layers 1 --hidden-size 32 --num-attention-heads 2 \
  --seq-length 64 --micro-batch-size 4 --lr 1e-4 --train-iters 100000 --eval-iters 0 --log-interval 1 --no-progress \
  --split 100,0,0 > "$TMP/trunc.out" 2> "$TMP/trunc.err" &
pid=$!
i=0
while [ $i -lt 100 ] && ! grep -q "iteration        3/" "$TMP/trunc.out"; do sleep 0.1; i=$((i + 1)); done
truncate -s 4096 "$D.bin"
wait $pid
rc=$?
[ $rc -eq 1 ] && grep -q "megatron-c: error: $D.bin became shorter while it was being read" "$TMP/trunc.err" &&
  pass ".bin truncated mid-run: status 1, $(head -n1 "$TMP/trunc.err")" || { fail ".bin truncated mid-run: status $rc"; cat "$TMP/trunc.err"; }
expect_error "a device as --data-path" "/dev/zero is a device, not a file" $B train $T --data-path /dev/zero --train-iters 1
: > "$TMP/empty.txt"
expect_error "preprocess of an empty input" "holds nothing to tokenize" \
  $B preprocess --input "$TMP/empty.txt" --output-prefix "$TMP/e" --tokenizer-type CharLevel
ls "$TMP"/e_* > /dev/null 2>&1 && fail "... but it left $(ls "$TMP"/e_*)" || pass "... and left no output files"

# ---- flags
expect_error "--lr beyond f32" "--lr value 1e39 is beyond single precision" $B train $T --lr 1e39 --train-iters 1
expect_error "negative --clip-grad" "--clip-grad must not be negative" $B train $T --clip-grad -1 --train-iters 1
expect_error "negative --weight-decay" "--weight-decay must not be negative" $B train $T --weight-decay -5 --train-iters 1
expect_error "--init-method-std 0" "--init-method-std must lie in" $B train $T --init-method-std 0 --train-iters 1
expect_error "--init-method-std 1e30" "--init-method-std must lie in" $B train $T --init-method-std 1e30 --train-iters 1
expect_error "warmup not below decay" "--lr-warmup-iters (20) is not below --lr-decay-iters (20)" \
  $B train $T --lr-warmup-iters 20 --lr-decay-iters 20 --train-iters 30
expect_error "negative --sample-temperature" "--sample-temperature must not be negative" \
  $B train $T --sample-temperature -1 --train-iters 1
expect_error "a --hidden-size whose 4h MLP overflows an int" "makes the default MLP width (4 x hidden) too large" \
  $B train --hidden-size 1073741824 --num-attention-heads 1 --train-iters 1
# INT_MAX new tokens: the context buffer's size no longer overflows (the
# allocation fails cleanly, or it would generate for a very long time)
expect_error "--max-new-tokens 2147483647" "out of memory" \
  sh -c "ulimit -v 4000000; exec $B generate --load '$TMP/old' --max-new-tokens 2147483647"
$B generate --load "$TMP/old" --max-new-tokens 40 --temperature 0 --prompt "ROMEO" > "$TMP/greedy" 2>/dev/null &&
  $B generate --load "$TMP/old" --max-new-tokens 40 --temperature 1e-45 --prompt "ROMEO" > "$TMP/tiny" 2>/dev/null &&
  cmp -s "$TMP/greedy" "$TMP/tiny" && pass "--temperature 1e-45 samples the greedy tokens" ||
  { fail "--temperature 1e-45 differs from greedy"; cat "$TMP/greedy" "$TMP/tiny"; }

finish
