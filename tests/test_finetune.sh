#!/bin/sh
# Fine-tuning and classification:
#  - a tiny BERT pretrained here (40 iterations on tiny Shakespeare) and
#    fine-tuned for spam (tests/data/spam_sample.jsonl: 400 training and 200
#    held-out SpamAssassin messages, 72 % ham) reaches a validation accuracy
#    of at least 0.88 (measured 0.925, with the classification dropout;
#    always predicting ham scores 0.72); the best epoch's checkpoint is kept;
#  - eval --task classify on a hand-made file whose labels are set against
#    the model's own predictions: exactly the accuracy and confusion matrix
#    those labels imply; --output writes one predicted label per line;
#  - a tiny GPT (CharLevel) fine-tunes on the last token;
#  - bad input: a label outside --num-classes, a TSV line without its label,
#    a vocabulary of another size, --seq-length beyond the positions.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
SP="$MT_SRCDIR/tests/data/spam_sample.jsonl"
$B preprocess --input "$MT_DATA_DIR/tinyshakespeare/input.txt" --output-prefix "$TMP/ts" \
  --tokenizer-type BertWordPieceLowerCase --split-sentences > /dev/null 2>&1 || exit 99
$B train --model bert --data-path "$TMP/ts_text_sentence" --tokenizer-type BertWordPieceLowerCase \
  --num-layers 2 --hidden-size 64 --num-attention-heads 4 --seq-length 64 --micro-batch-size 16 \
  --lr 2e-3 --lr-warmup-iters 5 --train-iters 40 --log-interval 40 --eval-iters 0 --save "$TMP/pre" \
  --no-progress > "$TMP/pre.log" 2>&1 || { tail -n 5 "$TMP/pre.log"; exit 99; }
FT="--task spam --train-data $SP --valid-data $SP --epochs 4 --seq-length 64 --micro-batch-size 16 --lr 1e-3 --log-interval 100"

if $B finetune $FT --pretrained-checkpoint "$TMP/pre" --save "$TMP/ft" --log-json "$TMP/ft.jsonl" > "$TMP/ft.log" 2>&1; then
  best=$(sed -n 's/.*best validation accuracy \([0-9.]*\).*/\1/p' "$TMP/ft.log")
  awk -v a="$best" 'BEGIN { exit !(a >= 0.88) }' && pass "BERT spam fine-tuning: best validation accuracy $best (>= 0.88)" ||
    { fail "BERT spam fine-tuning: accuracy $best < 0.88"; cat "$TMP/ft.log"; }
  grep -q "400 training and 200 validation examples" "$TMP/ft.log" && pass "the split field picks 400 training and 200 held-out messages" ||
    fail "train/valid split: $(head -n 1 "$TMP/ft.log")"
  kept=$(cat "$TMP/ft/latest_checkpointed_iteration.txt")
  bestep=$(grep '| best' "$TMP/ft.log" | tail -n 1 | sed -n 's/ epoch \([0-9]*\) done.*/\1/p')
  [ "$kept" = "$bestep" ] && pass "the kept checkpoint is the best epoch's ($kept)" || fail "kept $kept, best epoch $bestep"
  grep -q '"valid_accuracy"' "$TMP/ft.jsonl" && pass "--log-json has the per-epoch accuracy" || fail "no valid_accuracy in --log-json"
else
  fail "BERT fine-tuning failed"; tail -n 5 "$TMP/ft.log"
fi

# eval on a hand-made file: labels set against the model's predictions
printf 'free money now, click here to win\tspam\nthe meeting moved to tuesday\tham\nbuy cheap watches\tspam\nlunch tomorrow?\tham\nviagra offer limited\tspam\nhere are the notes from class\tham\n' > "$TMP/hand.tsv"
if $B eval --task classify --load "$TMP/ft" --data "$TMP/hand.tsv" --output "$TMP/pred" > "$TMP/e0" 2>&1; then
  # relabel: the first four as predicted, the last two the other way
  i=0; : > "$TMP/rel.tsv"; : > "$TMP/want"
  while IFS= read -r p; do
    i=$((i + 1)); text=$(sed -n "${i}p" "$TMP/hand.tsv" | cut -f1)
    if [ $i -le 4 ]; then t=$p; else [ "$p" = ham ] && t=spam || t=ham; fi
    printf '%s\t%s\n' "$text" "$t" >> "$TMP/rel.tsv"; printf '%s %s\n' "$t" "$p" >> "$TMP/want"
  done < "$TMP/pred"
  if $B eval --task classify --load "$TMP/ft" --data "$TMP/rel.tsv" > "$TMP/e1" 2>&1; then
    grep -q "accuracy 0.6667 (4 / 6)" "$TMP/e1" && pass "eval classify: accuracy 4 / 6 as the labels imply" ||
      fail "eval classify accuracy: $(grep accuracy "$TMP/e1")"
    hh=$(grep -c '^ham ham' "$TMP/want"); hs=$(grep -c '^ham spam' "$TMP/want")
    sh=$(grep -c '^spam ham' "$TMP/want"); ss=$(grep -c '^spam spam' "$TMP/want")
    got=$(grep -E '^ +(ham|spam) +[0-9]' "$TMP/e1" | awk '{print $2, $3}' | tr '\n' ' ')
    [ "$got" = "$hh $hs $sh $ss " ] && pass "eval classify: confusion matrix [$got]" ||
      fail "eval classify: matrix '$got', want '$hh $hs $sh $ss '"
  else fail "eval classify failed"; cat "$TMP/e1"; fi
  [ "$(wc -l < "$TMP/pred")" -eq 6 ] && pass "--output: one predicted label per example" || fail "--output lines"
else fail "eval classify --output failed"; cat "$TMP/e0"; fi

# GPT: the last token
$B train --data-path "$MT_DATA_DIR/tinyshakespeare/input.txt" $TINY --train-iters 20 --save "$TMP/gpt" > /dev/null 2>&1 || exit 99
if $B finetune --task spam --train-data "$SP" --valid-data "$SP" --epochs 1 --seq-length 32 --micro-batch-size 16 \
     --lr 1e-3 --pretrained-checkpoint "$TMP/gpt" --save "$TMP/gft" > "$TMP/g.log" 2>&1; then
  grep -q "as a 2-class classifier on the last token" "$TMP/g.log" && grep -q "validation accuracy" "$TMP/g.log" &&
    pass "GPT fine-tunes on its last token: $(grep 'epoch 1 done' "$TMP/g.log" | sed 's/.*validation/validation/')" ||
    fail "GPT fine-tuning log: $(cat "$TMP/g.log")"
else fail "GPT fine-tuning failed"; tail -n 5 "$TMP/g.log"; fi

# bad input
printf 'good text\t1\nbad label\t5\n' > "$TMP/bad.tsv"
expect_error "label outside the classes" "bad.tsv:2: label '5' is not one of the 2 classes" \
  $B finetune --task sst2 --train-data "$TMP/bad.tsv" --valid-data "$TMP/bad.tsv" --pretrained-checkpoint "$TMP/pre" --seq-length 64
printf 'sentence\tlabel\na fine line\t1\nno label here\n' > "$TMP/nocol.tsv"
expect_error "TSV line without a label" "nocol.tsv:3: no tab" \
  $B finetune --task sst2 --train-data "$TMP/nocol.tsv" --valid-data "$TMP/nocol.tsv" --pretrained-checkpoint "$TMP/pre" --seq-length 64
head -n 1000 "$MT_DATA_DIR/bert-vocab/vocab.txt" > "$TMP/small_vocab.txt"
expect_error "a vocabulary of another size" "the tokenizer has 1002 tokens" \
  $B finetune $FT --pretrained-checkpoint "$TMP/pre" --vocab-file "$TMP/small_vocab.txt"
expect_error "longer than the positions" "--seq-length 999 is longer" \
  $B finetune --task spam --train-data "$SP" --valid-data "$SP" --pretrained-checkpoint "$TMP/pre" --seq-length 999
expect_error "classify without classes" "needs --num-classes" \
  $B finetune --task classify --train-data "$SP" --valid-data "$SP" --pretrained-checkpoint "$TMP/pre"
expect_error "eval classify on a model without a classifier" "has no classification head" \
  $B eval --task classify --load "$TMP/pre" --data "$TMP/hand.tsv"
finish
