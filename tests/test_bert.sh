#!/bin/sh
# BERT pretraining end to end, serially: a sentence-level dataset of the
# shipped tiny Shakespeare, `train --model bert` (pre-norm, and post-norm
# without the binary head): the masked-LM loss falls; the log has lm and
# sop losses; saved at 10 and resumed to 20 it repeats the uninterrupted
# run's losses bitwise; clear errors for data and tokenizers that do not
# fit BERT.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
S="$MT_DATA_DIR/tinyshakespeare/input.txt"
$B preprocess --input "$S" --output-prefix "$TMP/ts" --tokenizer-type BertWordPieceLowerCase \
  --split-sentences > "$TMP/pre" 2>&1 || { cat "$TMP/pre"; exit 99; }
D="$TMP/ts_text_sentence"
P="--model bert --data-path $D --tokenizer-type BertWordPieceLowerCase --num-layers 2 --hidden-size 64 \
 --num-attention-heads 4 --seq-length 64 --micro-batch-size 8 --global-batch-size 16 --lr 2e-3 \
 --lr-warmup-iters 5 --lr-decay-iters 40 --log-interval 1 --eval-interval 0 --eval-iters 1 --no-progress"

# the loss falls
if $B train $P --train-iters 40 --log-json "$TMP/a.jsonl" > "$TMP/a.log" 2>&1; then
  first=$(json_field "$TMP/a.jsonl" loss | head -n 1)
  last=$(grep -v val_loss "$TMP/a.jsonl" | json_field /dev/stdin loss | tail -n 1)
  awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 1.0) }' &&
    pass "BERT pre-norm: masked-LM loss falls from $first to $last in 40 iterations" ||
    fail "BERT pre-norm: masked-LM loss $first -> $last"
  grep -q "lm loss: .* | sop loss: " "$TMP/a.log" && grep -q '"sop_loss"' "$TMP/a.jsonl" &&
    pass "BERT log lines carry lm loss and sop loss" || fail "BERT log lines: $(grep iteration "$TMP/a.log" | head -n 1)"
  grep -q "megatron-c train: BERT 2 layers.*pre-norm, masked LM + sentence order" "$TMP/a.log" &&
    pass "banner names BERT, its layout and heads" || fail "banner: $(grep 'megatron-c train' "$TMP/a.log")"
else
  fail "BERT pre-norm run failed"; tail -n 5 "$TMP/a.log"
fi

# post-norm, no binary head
if $B train $P --train-iters 15 --post-layernorm --bert-no-binary-head --log-json "$TMP/p.jsonl" > "$TMP/p.log" 2>&1; then
  grep -q "sop loss" "$TMP/p.log" && fail "--bert-no-binary-head still logs a sop loss" ||
    pass "post-norm BERT without the binary head trains, no sop loss ($(json_field "$TMP/p.jsonl" loss | tail -n 1))"
else
  fail "post-norm BERT run failed"; tail -n 5 "$TMP/p.log"
fi

# resume: bitwise
R="$P --hidden-dropout 0.1 --attention-dropout 0.1"
if $B train $R --train-iters 20 --log-json "$TMP/full.jsonl" > /dev/null 2>&1 &&
   $B train $R --train-iters 10 --save "$TMP/ck" > /dev/null 2>&1 &&
   $B train $R --train-iters 20 --load "$TMP/ck" --log-json "$TMP/res.jsonl" > "$TMP/res.log" 2>&1; then
  json_field "$TMP/full.jsonl" loss | tail -n 10 > "$TMP/full10"
  json_field "$TMP/res.jsonl" loss > "$TMP/res10"
  cmp -s "$TMP/full10" "$TMP/res10" && pass "BERT saved at 10, resumed to 20: the losses bitwise" ||
    fail "BERT resume: losses differ"
else
  fail "BERT resume runs failed"; tail -n 5 "$TMP/res.log"
fi

# errors
$B preprocess --input "$S" --output-prefix "$TMP/doc" --tokenizer-type BertWordPieceLowerCase > /dev/null 2>&1
expect_error "a document-level dataset" "gives no BERT sample" \
  $B train $P --train-iters 1 --data-path "$TMP/doc_text_document"
expect_error "BERT with a GPT tokenizer" "needs a BERT tokenizer" \
  $B train --model bert --data-path "$D" --num-layers 2 --hidden-size 64 --num-attention-heads 4 \
  --seq-length 64 --micro-batch-size 8 --train-iters 1 --lr 1e-3
expect_error "BERT without data" "--model bert needs --data-path" $B train --model bert
expect_error "unknown --model" "unknown --model 't5'" $B train --model t5
expect_error "--post-layernorm for GPT" "BERT's" $B train --post-layernorm --train-iters 1
expect_error "generate from a BERT" "is not a decoder language model" $B generate --load "$TMP/ck" --prompt hi
expect_error "zero-shot eval of a BERT" "is not a decoder language model" \
  $B eval --task lambada --load "$TMP/ck" --data "$S"
finish
