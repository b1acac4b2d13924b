#!/bin/sh
# Bad input: each case must exit non-zero with a message naming the problem.
. "$(dirname "$0")/common.sh"
B=$MT_BIN

expect_error "unknown flag" "unknown flag for 'megatron-c train': --num-layer" $B train --num-layer 2
expect_error "unknown flag suggests" "did you mean --num-layers" $B train --num-layer 2
# a Megatron script's unknown flags, all in one message; values skipped;
# a suggestion only when close (none for --tf17 from --bf16's neighbours)
expect_error "all unknown flags at once" \
  "unknown flags for 'megatron-c train': --num-layer (did you mean --num-layers?), --foo-bar, --xyzzy$" \
  $B train --num-layer 2 --foo-bar 1 2 --seq-length 32 --xyzzy
expect_error "no far-fetched suggestion" "unknown flag for 'megatron-c train': --tf17$" $B train --tf17
for cmd in train generate eval tokenize preprocess compare convert forward finetune; do
  [ "$($B $cmd --version)" = "$($B --version)" ] || fail "$cmd --version: $($B $cmd --version 2>&1 | head -n 1)"
done
pass "--version on every subcommand"
$B help train | head -n 1 | grep -q "usage: megatron-c train" && pass "megatron-c help train is train --help" \
  || fail "megatron-c help train: $($B help train 2>&1 | head -n 1)"
expect_error "help for an unknown command" "unknown command 'nope'" $B help nope
# train --help: Megatron's argument groups, wrapped to the terminal
COLUMNS=80 $B train --help > "$TMP/help" 2>&1
long=$(awk 'length($0) > 80' "$TMP/help" | wc -l)
groups=$(grep -c -E '^(model|training|learning rate|checkpointing|mixed precision|distributed|validation|data|logging):$' "$TMP/help")
# a flag without its description beside it has it on the next line
bare=$(awk 'prev && !/^                                     [^ ]/ { n++ } { prev = /^  --[^ ]+( [A-Z.,]+)? *$/ } END { print n+0 }' "$TMP/help")
[ "$long" = 0 ] && [ "$groups" = 9 ] && [ "$bare" = 0 ] \
  && pass "train --help: 9 groups, no line over 80 columns, every flag described" \
  || fail "train --help: $long lines over 80, $groups groups, $bare flags without a description"

# every flag that takes a value says its default (or that it has none) in
# parentheses at the end of its description, in every command's help
nodefault=""
for cmd in train generate eval tokenize preprocess compare convert forward finetune serve plot; do
  nodefault="$nodefault$(COLUMNS=250 $B $cmd --help 2>&1 | grep -E '^  --[a-z0-9-]+ [A-Z]' \
    | grep -v -E '\)[[:space:]]*$' | awk -v c=$cmd '{ printf "%s %s, ", c, $1 }')"
done
[ -z "$nodefault" ] && pass "--help of every command: every flag with a value names its default" \
  || fail "flags without a default in --help: $nodefault"

expect_error "unknown command" "unknown command 'trian'" $B trian
expect_error "malformed number" "--lr expects a finite number, got 'fast'" $B train --lr fast
expect_error "missing value" "'--seq-length' needs a value" $B train --seq-length
expect_error "heads do not divide hidden" "--hidden-size (30) is not divisible by --num-attention-heads (4)" \
  $B train --hidden-size 30 --num-attention-heads 4
expect_error "seq above max positions" "--seq-length (128) is larger than --max-position-embeddings (64)" \
  $B train --seq-length 128 --max-position-embeddings 64
expect_error "missing data file" "cannot open $TMP/nope.txt" $B train $TINY --data-path "$TMP/nope.txt" --train-iters 1
: > "$TMP/empty.txt"
expect_error "empty data file" "data file $TMP/empty.txt is empty" $B train $TINY --data-path "$TMP/empty.txt" --train-iters 1
printf 'tiny' > "$TMP/small.txt"
expect_error "too little data" "too few tokens" $B train $TINY --data-path "$TMP/small.txt" --train-iters 1
expect_error "required flags" "--num-layers is required" $B train --data-path "$MT_DATA_DIR/tinyshakespeare/input.txt"
expect_error "batch not a multiple" "--global-batch-size (6) is not a multiple of --micro-batch-size (4)" \
  $B train $TINY --global-batch-size 6 --train-iters 1
expect_error "unknown backend" "unknown backend 'gpu'" $B train $TINY --backend gpu --train-iters 1
expect_error "unknown GEMM library" "MT_CPU_GEMM='mkl' is not a GEMM library" \
  env MT_CPU_GEMM=mkl $B train $TINY --train-iters 1
expect_error "layout larger than the world" "world size 1 is not divisible by tensor-model-parallel-size 2" $B train $TINY --tensor-model-parallel-size 2 --train-iters 1
if [ "${MT_HAVE_MPI:-no}" = no ]; then
  # what mpiexec sets for each of 2 processes
  expect_error "launched as 2 processes without MPI" "built without MPI, but it was launched as one of 2 processes" \
    env PMI_SIZE=2 PMI_RANK=1 $B train $TINY --train-iters 1
fi
expect_error "diverging training" "is not finite; stopped before updating the weights" $B train $TINY --train-iters 20 --lr 1e30 --clip-grad 0

# checkpoints: make a good one, then damage copies of it
$B train $TINY --train-iters 2 --save "$TMP/ck" >/dev/null 2>"$TMP/err" || { cat "$TMP/err"; exit 99; }
f="$TMP/ck/iter_0000002/model_optim_rng.mtc"
[ -f "$f" ] || { echo "checkpoint not written"; exit 99; }
mkdir -p "$TMP/trunc/iter_0000002" "$TMP/magic/iter_0000002" "$TMP/crc/iter_0000002"
size=$(wc -c < "$f")
head -c $((size / 2)) "$f" > "$TMP/trunc/iter_0000002/model_optim_rng.mtc"
echo 2 > "$TMP/trunc/latest_checkpointed_iteration.txt"
expect_error "truncated checkpoint" "is truncated" $B train $TINY --train-iters 4 --load "$TMP/trunc"
{ printf 'NOTACKPT'; tail -c +9 "$f"; } > "$TMP/magic/iter_0000002/model_optim_rng.mtc"
echo 2 > "$TMP/magic/latest_checkpointed_iteration.txt"
expect_error "wrong magic" "wrong magic number" $B train $TINY --train-iters 4 --load "$TMP/magic"
# flip one byte well inside the tensor data
cp "$f" "$TMP/crc/iter_0000002/model_optim_rng.mtc"
printf '\377' | dd of="$TMP/crc/iter_0000002/model_optim_rng.mtc" bs=1 seek=$((size - 100)) conv=notrunc 2>/dev/null
echo 2 > "$TMP/crc/latest_checkpointed_iteration.txt"
expect_error "corrupted checkpoint" "checksum mismatch" $B train $TINY --train-iters 4 --load "$TMP/crc"
expect_error "config mismatch names fields" "--num-layers: 3 in this run, 2 in the checkpoint" \
  $B train $TINY --num-layers 3 --hidden-size 64 --train-iters 4 --load "$TMP/ck"
expect_error "config mismatch names every field" "--hidden-size: 64 in this run, 32 in the checkpoint" \
  $B train $TINY --num-layers 3 --hidden-size 64 --train-iters 4 --load "$TMP/ck"
expect_error "tokenizer mismatch on --load" "--tokenizer-type: GPT2BPETokenizer in this run, CharLevel in the checkpoint" \
  $B train $TINY --tokenizer-type GPT2BPETokenizer --train-iters 4 --load "$TMP/ck"
# Megatron: --save D --load D on a first run starts from scratch
# (--save makes D first, so --load then finds it empty)
if $B train $TINY --train-iters 2 --load "$TMP/none" --save "$TMP/none" > "$TMP/out" 2> "$TMP/err" &&
   grep -q "starting from scratch" "$TMP/err" && [ -d "$TMP/none/iter_0000002" ]; then
  pass "--save D --load D on a first run: starts from scratch with a warning"
else fail "--save D --load D on a first run"; cat "$TMP/err"; fi
if $B train $TINY --train-iters 2 --load "$TMP/none3" > "$TMP/out" 2> "$TMP/err" &&
   grep -q "directory $TMP/none3 does not exist: starting from scratch" "$TMP/err"; then
  pass "--load of a directory that does not exist: starts from scratch with a warning"
else fail "--load missing dir"; cat "$TMP/err"; fi
# a run that does not resume from --save's own checkpoints would overwrite them
$B train $TINY --train-iters 2 --save "$TMP/own" > /dev/null 2>&1 || fail "a first --save run"
expect_error "--save over another run's checkpoints" "already holds 1 checkpoint (newest iter_0000002) that this run would overwrite" \
  $B train $TINY --train-iters 2 --save "$TMP/own"
expect_error "--finetune into its own --load" "(--finetune: from iteration 0)" \
  $B train $TINY --train-iters 2 --save "$TMP/own" --load "$TMP/own" --finetune
$B train $TINY --train-iters 4 --save "$TMP/own" --load "$TMP/own" > "$TMP/out" 2>&1 && [ -d "$TMP/own/iter_0000004" ] \
  && pass "--save D --load D resumes and saves on" || { fail "--save D --load D resume"; cat "$TMP/out"; }
expect_error "load missing dir with a step" "does not exist" \
  $B train $TINY --train-iters 4 --load "$TMP/none2" --ckpt-step 3
expect_error "generate without checkpoint" "no checkpoint in $TMP" $B generate --load "$TMP"
expect_error "bad tracker" "cannot parse" sh -c "mkdir -p '$TMP/bt' && echo garbage > '$TMP/bt/latest_checkpointed_iteration.txt' && $B generate --load '$TMP/bt'"
finish
