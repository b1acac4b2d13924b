#!/bin/sh
# Megatron-LM's launch scripts run unchanged but for their sizes:
#  - the flags of examples/pretrain_gpt.sh (345M), of the Llama-3.1-8B
#    model arguments of examples/post_training/modelopt, and of
#    examples/gpt3/train_gpt3_175b_distributed.sh (its batch-size ramp
#    aside: --rampup-batch-size / --step-batch-size-schedule are refused),
#    sizes shrunk, 2 iterations on the shipped text preprocessed into a
#    .bin/.idx dataset, with --save D --load D on a first run, no
#    --tokenizer-type (inferred from --vocab-file / --merge-file), and the
#    GPU-only and W&B flags accepted with one note each, TensorBoard written;
#  - the compatibility behaviours one by one: all unknown flags in one
#    message (tests/test_errors.sh), the tokenizer inferred (BPE, WordPiece
#    lower-case and cased) and a mismatch refused, a .bin / .idx / binary
#    --data-path refused, --lr-warmup-fraction and the sample-based schedule
#    giving Megatron's learning rates, --exit-interval and
#    --exit-duration-in-mins saving and stopping, --log-params-norm,
#    --log-throughput (Megatron's FLOPs formula), --eod-mask-loss, the
#    per-split data paths (--train-data-path, --valid-data-path);
#  - --reset-attention-mask and --reset-position-ids (packed documents)
#    change the loss, for GPT and a RoPE model, and agree across backends
#    (the CUDA emulation) and layouts (pp 2, whose middle and last stages
#    need the documents too, and tp 2) to 1e-5.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
V="$MT_DATA_DIR/gpt2-vocab/encoder.json"
M="$MT_DATA_DIR/gpt2-vocab/vocab.bpe"
$B preprocess --input "$MT_DATA_DIR/tinyshakespeare/input.txt" --output-prefix "$TMP/ts" \
  --vocab-file "$V" --merge-file "$M" > "$TMP/pre.log" 2>&1 || { cat "$TMP/pre.log"; exit 99; }
DATA="$TMP/ts_text_document"
[ -f "$DATA.idx" ] || { echo "preprocess wrote no $DATA.idx"; exit 99; }

script_run() { # NAME FLAGS...: the script's flags must all be taken
  name=$1; shift
  if $B train "$@" > "$TMP/$name.log" 2> "$TMP/$name.err"; then
    pass "$name: runs ($(grep -c ' iteration ' "$TMP/$name.log") iterations logged)"
  else fail "$name: refused or failed"; cat "$TMP/$name.err"; fi
}

# examples/pretrain_gpt.sh (core_v0.5.0), sizes shrunk: 24 -> 2 layers,
# 1024 -> 64 hidden, 16 -> 4 heads, sequence 1024 -> 64, 500000 -> 2 iterations
CK="$TMP/ck345"
script_run pretrain_gpt.sh --num-layers 2 --hidden-size 64 --num-attention-heads 4 --seq-length 64 \
  --max-position-embeddings 64 --micro-batch-size 4 --global-batch-size 8 --lr 0.00015 --train-iters 2 \
  --lr-decay-iters 320 --lr-decay-style cosine --min-lr 1.0e-5 --weight-decay 1e-2 --lr-warmup-fraction .01 \
  --clip-grad 1.0 --fp16 --data-path "$DATA" --vocab-file "$V" --merge-file "$M" --split 949,50,1 \
  --log-interval 1 --save-interval 10000 --eval-interval 1000 --eval-iters 1 --save "$CK" --load "$CK"
grep -q "GPT2BPETokenizer" "$TMP/pretrain_gpt.sh.log" && pass "pretrain_gpt.sh: the BPE tokenizer inferred from the files" \
  || fail "pretrain_gpt.sh: tokenizer not inferred"
grep -q "starting from scratch" "$TMP/pretrain_gpt.sh.err" && [ -d "$CK/iter_0000002" ] \
  && pass "pretrain_gpt.sh: --save D --load D starts from scratch, then saves" || fail "pretrain_gpt.sh: save/load"
grep -q "loss scale: " "$TMP/pretrain_gpt.sh.log" && pass "pretrain_gpt.sh: --fp16 with dynamic loss scaling" \
  || fail "pretrain_gpt.sh: no loss scale in the log"

# examples/gpt3/train_gpt3_175b_distributed.sh, sizes shrunk (96 -> 2 layers,
# 12288 -> 96 hidden, 96 -> 4 heads, 2048 -> 64 positions, tp 8 x pp 16 -> 1,
# batch 1536 -> 4), without its batch-size ramp
script_run gpt3_175b.sh --num-layers 2 --hidden-size 96 --num-attention-heads 4 --seq-length 64 \
  --max-position-embeddings 64 --attention-backend auto --micro-batch-size 1 --global-batch-size 4 \
  --train-iters 2 --weight-decay 0.1 --adam-beta1 0.9 --adam-beta2 0.95 --init-method-std 0.006 \
  --clip-grad 1.0 --fp16 --lr 6.0e-5 --lr-decay-style cosine --min-lr 6.0e-6 --lr-warmup-fraction .001 \
  --lr-decay-iters 430 --tensor-model-parallel-size 1 --pipeline-model-parallel-size 1 --data-path "$DATA" \
  --vocab-file "$V" --merge-file "$M" --split 949,50,1 --log-interval 1 --save-interval 10000 \
  --eval-interval 1000 --eval-iters 1 --save "$TMP/ck175" --load "$TMP/ck175" --tensorboard-dir "$TMP/tb" \
  --distributed-backend nccl --use-mcore-models --transformer-impl local --use-flash-attn \
  --overlap-grad-reduce --overlap-param-gather --wandb-project p --wandb-exp-name e
grep -q "use-flash-attn.*ignores them" "$TMP/gpt3_175b.sh.err" && grep -q "wandb-project.*Weights & Biases" "$TMP/gpt3_175b.sh.err" \
  && ls "$TMP/tb"/events.out.tfevents.* > /dev/null 2>&1 \
  && pass "gpt3_175b.sh: one note for the kernel and backend choices, one for W&B; --tensorboard-dir written" \
  || { fail "gpt3_175b.sh: notes"; cat "$TMP/gpt3_175b.sh.err"; }
# examples/post_training/modelopt/conf/meta-llama/Llama-3.1-8B-Instruct.sh (Megatron-LM), its
# MODEL_ARGS with sizes shrunk (32 -> 2 layers, 4096 -> 64 hidden, 14336 -> 224 MLP, 32 -> 8 heads,
# 8 -> 2 query groups, sequence 4096 -> 64, 8192 -> 128 positions) and the shipped GPT-2 BPE in place
# of --tokenizer-type HuggingFaceTokenizer; --use-rope-scaling is Llama 3.1's RoPE
script_run llama31_8b.sh --save-interval 100000 --micro-batch-size 1 --bf16 --no-masked-softmax-fusion \
  --disable-bias-linear --untie-embeddings-and-output-weights --use-rotary-position-embeddings \
  --rotary-percent 1.0 --no-rope-fusion --no-position-embedding --normalization RMSNorm --swiglu \
  --num-layers 2 --hidden-size 64 --ffn-hidden-size 224 --num-attention-heads 8 --group-query-attention \
  --num-query-groups 2 --seq-length 64 --max-position-embeddings 128 --vocab-file "$V" --merge-file "$M" \
  --make-vocab-size-divisible-by 1 --use-mcore-models --rotary-base 500000 --use-rope-scaling \
  --data-path "$DATA" --train-iters 2 --lr 1e-4 --log-interval 1 --eval-iters 1 --eval-interval 2 \
  --save "$TMP/ck31"
grep -a -q '^rope_scaling=1$' "$TMP"/ck31/iter_0000002/*.mtc && grep -a -q '^rope_scaling_factor=8$' "$TMP"/ck31/iter_0000002/*.mtc \
  && pass "llama31_8b.sh: the checkpoint records Llama 3.1's RoPE scaling (factor 8)" || fail "llama31_8b.sh: no rope_scaling in the checkpoint"
expect_error "--use-rope-scaling without RoPE" "needs --position-embedding-type rope" $B train $TINY --use-rope-scaling --train-iters 1
expect_error "the 175B script's batch-size ramp: refused with its reason" \
  "--rampup-batch-size: a batch-size ramp-up is not implemented" $B train --rampup-batch-size 16 16 5859375 --num-layers 2

# ---- tokenizer inference -------------------------------------------------------------
T="--num-layers 2 --hidden-size 32 --num-attention-heads 4 --seq-length 32 --micro-batch-size 4 --lr 3e-3 \
 --log-interval 1 --eval-iters 0 --sample-tokens 0 --no-progress"
$B train $T --train-iters 1 --vocab-file "$MT_DATA_DIR/bert-vocab/vocab.txt" > "$TMP/wp.log" 2>&1 \
  && grep -q "BertWordPieceLowerCase tokenizer" "$TMP/wp.log" && pass "an uncased vocab.txt: BertWordPieceLowerCase" \
  || { fail "WordPiece inference"; cat "$TMP/wp.log"; }
# a cased vocabulary: capitals in its words (bert-base-cased has thousands)
{ printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n'; sed -n '1000,20000p' "$MT_DATA_DIR/bert-vocab/vocab.txt" |
  awk 'length($0) > 2 && /^[a-z]+$/ { print; print toupper(substr($0,1,1)) substr($0,2) }' | head -n 600; } \
  > "$TMP/cased.txt"
$B train $T --train-iters 1 --vocab-file "$TMP/cased.txt" > "$TMP/cased.log" 2>&1 \
  && grep -q "BertWordPieceCase tokenizer" "$TMP/cased.log" \
  && pass "a vocabulary with capitals: BertWordPieceCase" || { fail "cased inference"; cat "$TMP/cased.log"; }
expect_error "BPE type, WordPiece file" "is not a BPE vocabulary" \
  $B train $T --train-iters 1 --tokenizer-type GPT2BPETokenizer --vocab-file "$MT_DATA_DIR/bert-vocab/vocab.txt"
expect_error "WordPiece type, BPE files" "does not fit --tokenizer-type BertWordPieceLowerCase" \
  $B train $T --train-iters 1 --tokenizer-type BertWordPieceLowerCase --vocab-file "$V" --merge-file "$M"

# ---- --data-path that is not text ---------------------------------------------------------
expect_error ".bin given for a prefix" "give the prefix without the extension" $B train $T --train-iters 1 --data-path "$DATA.bin"
expect_error ".idx given for a prefix" "names one file of the dataset" $B train $T --train-iters 1 --data-path "$DATA.idx"
head -c 4000 "$DATA.bin" > "$TMP/tokens.bin"
expect_error "a token file (nanoGPT, llm.c)" "without its .idx partner" $B train $T --train-iters 1 --data-path "$TMP/tokens.bin"
cp "$TMP/tokens.bin" "$TMP/tokens.dat"
expect_error "a binary file" "is not text (it holds NUL bytes)" $B train $T --train-iters 1 --data-path "$TMP/tokens.dat"

# ---- schedules ----------------------------------------------------------------------------------
lr_at() { sed -n "$2p" "$1" | sed -n 's/.*"lr": \([^,}]*\).*/\1/p'; }
# warmup fraction 0.25 of 8 decay iterations = 2 warmup iterations: lr 0, peak/2, peak
$B train $T --train-iters 4 --lr-decay-iters 8 --lr-warmup-fraction 0.25 --lr-decay-style constant \
  --log-json "$TMP/wf.jsonl" > /dev/null 2>&1
[ "$(lr_at "$TMP/wf.jsonl" 1)" = 0 ] && [ "$(lr_at "$TMP/wf.jsonl" 2)" = 0.00150000001 ] && [ "$(lr_at "$TMP/wf.jsonl" 3)" = 0.00300000003 ] \
  && pass "--lr-warmup-fraction 0.25 of 8 iterations: lr 0, 1.5e-3, 3e-3" \
  || fail "--lr-warmup-fraction: $(lr_at "$TMP/wf.jsonl" 1) $(lr_at "$TMP/wf.jsonl" 2) $(lr_at "$TMP/wf.jsonl" 3)"
# samples: 16 samples / global batch 4 = 4 iterations; warmup 6 samples = 1.5 iterations
# (Megatron counts samples: iteration 1 at 4 of 6 warmup samples has lr 2/3 peak)
$B train $T --train-samples 16 --lr-warmup-samples 6 --lr-decay-samples 16 --lr-decay-style linear \
  --log-json "$TMP/ts.jsonl" > "$TMP/ts.log" 2>&1
n=$(grep -c '"iteration"' "$TMP/ts.jsonl"); l2=$(lr_at "$TMP/ts.jsonl" 2)
[ "$n" = 4 ] && awk -v l="$l2" 'BEGIN { exit !(l > 0.001999 && l < 0.002001) }' \
  && pass "--train-samples 16: 4 iterations; 6 warmup samples give lr 2e-3 at iteration 2 (Megatron's sample count)" \
  || { fail "--train-samples: $n iterations, lr $l2"; tail -n 3 "$TMP/ts.log"; }
expect_error "iterations and samples" "exclude each other" $B train $T --train-iters 4 --train-samples 16
expect_error "fraction and iterations" "--lr-warmup-fraction excludes" $B train $T --train-iters 4 --lr-warmup-fraction 0.1 --lr-warmup-iters 2
expect_error "samples without --train-samples" "need --train-samples" $B train $T --train-iters 4 --lr-decay-samples 8

# ---- exits ----------------------------------------------------------------------------------------
$B train $T --train-iters 10 --exit-interval 3 --save "$TMP/ex" > "$TMP/ex.log" 2>&1
grep -q "exiting program at iteration 3 (--exit-interval)" "$TMP/ex.log" && [ -d "$TMP/ex/iter_0000003" ] \
  && [ ! -d "$TMP/ex/iter_0000010" ] && pass "--exit-interval 3: saves iteration 3 and stops" \
  || { fail "--exit-interval"; tail -n 3 "$TMP/ex.log"; }
$B train $T --train-iters 100000 --exit-duration-in-mins 0.02 > "$TMP/ed.log" 2>&1
grep -q "exiting program at iteration .* (--exit-duration-in-mins)" "$TMP/ed.log" \
  && pass "--exit-duration-in-mins 0.02: stops after about a second ($(grep -o 'iteration [0-9]* (--exit' "$TMP/ed.log"))" \
  || { fail "--exit-duration-in-mins"; tail -n 3 "$TMP/ed.log"; }

# ---- log fields ---------------------------------------------------------------------------------------
$B train $T --train-iters 2 --log-params-norm --log-throughput --log-json "$TMP/lf.jsonl" > "$TMP/lf.log" 2>&1
grep -q "params norm: [0-9.]* |" "$TMP/lf.log" && grep -q "throughput per GPU (TFLOP/s/GPU): [0-9.]* |" "$TMP/lf.log" \
  && grep -q '"params_norm"' "$TMP/lf.jsonl" && pass "--log-params-norm and --log-throughput: Megatron's fields" \
  || { fail "log fields"; tail -n 2 "$TMP/lf.log"; }
# Megatron's formula by hand for this model (GPT-2 shape: 72 B s L h^2 (1 + s/6h + V/12Lh)), vocabulary
# 256 padded to 256, against the logged TFLOP/s x ms
awk -v tf="$(sed -n 's/.*"tflops_per_rank": \([^,}]*\).*/\1/p' "$TMP/lf.jsonl" | tail -n 1)" \
    -v ms="$(sed -n 's/.*"ms_per_iter": \([^,}]*\).*/\1/p' "$TMP/lf.jsonl" | tail -n 1)" 'BEGIN {
  B = 4; s = 32; L = 2; h = 32; V = 256
  f = 72 * B * s * L * h * h * (1 + s / (6 * h) + V / (12 * L * h))
  got = tf * 1e12 * ms / 1000
  exit !(got > 0.99 * f && got < 1.01 * f) }' && pass "--log-throughput uses Megatron's FLOPs per iteration" \
  || fail "--log-throughput: the FLOPs do not match Megatron's formula"

# ---- --eod-mask-loss -----------------------------------------------------------------------------------
# short documents, each ended by the end-of-document token (preprocess
# --append-eod, as Megatron's): masking those positions changes the loss
head -n 3000 "$MT_DATA_DIR/tinyshakespeare/input.txt" | awk 'NF { gsub(/["\\]/, ""); printf "{\"text\": \"%s\"}\n", $0 }' \
  > "$TMP/docs.jsonl"
$B preprocess --input "$TMP/docs.jsonl" --output-prefix "$TMP/docs" --append-eod > "$TMP/docs.log" 2>&1 \
  || { cat "$TMP/docs.log"; exit 99; }
E="$T --tokenizer-type GPT2BPETokenizer --data-path $TMP/docs_text_document --split 100,0,0 --train-iters 2"
$B train $E --log-json "$TMP/e0.jsonl" > /dev/null 2>&1
$B train $E --eod-mask-loss --log-json "$TMP/e1.jsonl" > /dev/null 2>&1
l0=$(sed -n 1p "$TMP/e0.jsonl" | sed -n 's/.*"loss": \([^,}]*\).*/\1/p'); l1=$(sed -n 1p "$TMP/e1.jsonl" | sed -n 's/.*"loss": \([^,}]*\).*/\1/p')
[ -n "$l0" ] && [ -n "$l1" ] && [ "$l0" != "$l1" ] && pass "--eod-mask-loss changes the loss on documents with end-of-document tokens ($l0 -> $l1)" \
  || fail "--eod-mask-loss: $l0 vs $l1"

# ---- --reset-attention-mask / --reset-position-ids ---------------------------------------------------
# (tests/test_model.c checks the definition: a packed sequence's logits are
# its documents' run alone.) Here: the flags reach the model everywhere.
R="--reset-attention-mask --reset-position-ids"
ROPE="--position-embedding-type rope --normalization RMSNorm --swiglu"
first_loss() { sed -n 1p "$1" | sed -n 's/.*"loss": \([^,}]*\).*/\1/p'; }
for m in "gpt:" "rope:$ROPE"; do
  name=${m%%:*}; flags=${m#*:}
  $B train $E $flags --log-json "$TMP/$name.r0.jsonl" > "$TMP/$name.r0.log" 2>&1 || { fail "$name without the resets"; continue; }
  $B train $E $flags $R --log-json "$TMP/$name.r1.jsonl" > "$TMP/$name.r1.log" 2>&1 \
    || { fail "$name with $R"; tail -n 3 "$TMP/$name.r1.log"; continue; }
  a=$(first_loss "$TMP/$name.r0.jsonl"); b=$(first_loss "$TMP/$name.r1.jsonl")
  [ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ] && pass "$name: $R changes the loss on packed documents ($a -> $b)" \
    || fail "$name: $R: $a vs $b"
done
EMU=$MT_TESTS/megatron-c-emu
if [ -x "$EMU" ]; then
  $EMU train $E $ROPE $R --backend cuda --log-json "$TMP/rope.r1c.jsonl" > "$TMP/r1c.log" 2>&1 \
    && $B compare "$TMP/rope.r1c.jsonl" "$TMP/rope.r1.jsonl" --rtol 1e-5 > "$TMP/cmp" 2>&1 \
    && pass "$R on cuda (emulated) vs cpu: $(grep '^max rel diff' "$TMP/cmp")" \
    || { fail "$R on cuda (emulated) vs cpu"; cat "$TMP/cmp"; tail -n 3 "$TMP/r1c.log"; }
else echo "SKIP: tests/megatron-c-emu not built"; fi
. "$(dirname "$0")/mpi_common.sh"
if [ "$MT_HAVE_MPI" = yes ] && [ -n "$MPIEXEC" ]; then
  for layout in "pp2:--pipeline-model-parallel-size 2" "tp2:--tensor-model-parallel-size 2"; do
    lname=${layout%%:*}; lflags=${layout#*:}
    mpi_run 2 $B train $E $ROPE $R $lflags --log-json "$TMP/rope.$lname.jsonl" > "$TMP/$lname.log" 2>&1 \
      && $B compare "$TMP/rope.$lname.jsonl" "$TMP/rope.r1.jsonl" --rtol 1e-5 > "$TMP/cmp" 2>&1 \
      && pass "$R under $lname vs serial: $(grep '^max rel diff' "$TMP/cmp")" \
      || { fail "$R under $lname vs serial"; cat "$TMP/cmp"; tail -n 3 "$TMP/$lname.log"; }
  done
else echo "SKIP: no MPI: $R under pp 2 and tp 2 not run"; fi
expect_error "BERT with the resets" "are for GPT's packed documents" $B train $T --train-iters 1 --model bert \
  --data-path "$DATA" --tokenizer-type BertWordPieceLowerCase --reset-attention-mask

# ---- --train-data-path / --valid-data-path / --test-data-path ------------------------------------------
# Megatron's blend per split: the training data used whole is --data-path with --split 100,0,0, bitwise;
# the validation data is its own dataset
$B train $E --eval-iters 0 --log-json "$TMP/s0.jsonl" > /dev/null 2>&1
S="$T --tokenizer-type GPT2BPETokenizer --train-data-path $TMP/docs_text_document --train-iters 2"
$B train $S --eval-iters 0 --log-json "$TMP/s1.jsonl" > "$TMP/s1.log" 2>&1 || { cat "$TMP/s1.log"; fail "--train-data-path"; }
$B compare "$TMP/s1.jsonl" "$TMP/s0.jsonl" --rtol 0 > /dev/null && pass "--train-data-path P = --data-path P --split 100,0,0, bitwise" \
  || fail "--train-data-path: losses differ from --split 100,0,0"
$B train $S --valid-data-path "$DATA" --eval-interval 2 --eval-iters 1 --log-json "$TMP/s2.jsonl" > "$TMP/s2.log" 2>&1
grep -q '"val_loss"' "$TMP/s2.jsonl" && grep -q "validation" "$TMP/s2.log" \
  && pass "--valid-data-path: validated on its own dataset" || { fail "--valid-data-path"; tail -n 5 "$TMP/s2.log"; }
expect_error "--data-path with --train-data-path" "per-split data paths together" $B train $S --data-path "$DATA"
expect_error "--valid-data-path alone" "need --train-data-path" $B train $T --valid-data-path "$DATA"
finish
