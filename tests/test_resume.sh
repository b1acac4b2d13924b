#!/bin/sh
# Exact resume: 20 iterations in one run give bitwise the same losses and
# gradient norms as 10 iterations, save, resume, 10 more (same backend and
# thread count). Also: a checkpoint loaded and saved again is byte-identical.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
ARGS="$TINY --global-batch-size 8"

$B train $ARGS --train-iters 20 --log-json "$TMP/full.jsonl" > "$TMP/full.log" 2>&1 || { cat "$TMP/full.log"; exit 1; }
$B train $ARGS --train-iters 10 --save "$TMP/ck" --log-json "$TMP/part.jsonl" > "$TMP/a.log" 2>&1 || { cat "$TMP/a.log"; exit 1; }
$B train $ARGS --train-iters 20 --load "$TMP/ck" --save "$TMP/ck" --log-json "$TMP/part.jsonl" > "$TMP/b.log" 2>&1 || { cat "$TMP/b.log"; exit 1; }
grep -q "loaded checkpoint .*iteration 10" "$TMP/b.log" || fail "resume did not report loading iteration 10"

for key in loss grad_norm lr; do
  json_field "$TMP/full.jsonl" $key > "$TMP/full.$key"
  json_field "$TMP/part.jsonl" $key > "$TMP/part.$key"
  n=$(wc -l < "$TMP/full.$key")
  [ "$n" -eq 20 ] || fail "expected 20 $key values in the full run, got $n"
  if cmp -s "$TMP/full.$key" "$TMP/part.$key"; then pass "$key identical over 20 iterations"
  else fail "$key differs after resume"; paste "$TMP/full.$key" "$TMP/part.$key" | head -n 25; fi
done

# the loss must fall on this tiny run (learning happens at all)
first=$(head -n1 "$TMP/full.loss"); last=$(tail -n1 "$TMP/full.loss")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.3) }' && pass "loss falls ($first -> $last)" \
  || fail "loss did not fall: $first -> $last"

# round trip: load iteration 10 and save it again unchanged
$B train $ARGS --train-iters 10 --load "$TMP/ck" --ckpt-step 10 --save "$TMP/ck2" > "$TMP/c.log" 2>&1 || { cat "$TMP/c.log"; exit 1; }
if cmp -s "$TMP/ck/iter_0000010/model_optim_rng.mtc" "$TMP/ck2/iter_0000010/model_optim_rng.mtc"; then
  pass "checkpoint round trip is byte-identical"
else fail "checkpoint changed in a load/save round trip"; fi
[ "$(cat "$TMP/ck/latest_checkpointed_iteration.txt")" = 20 ] && pass "tracker file says 20" || fail "tracker file"

# the same with a Megatron .bin/.idx dataset: the data position (consumed
# samples into Megatron's shuffled sample index) is restored exactly
awk 'BEGIN { RS = ""; ORS = "\n" } { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); gsub(/\n/, "\\n"); printf "{\"text\": \"%s\"}\n", $0 }' \
  "$MT_DATA_DIR/tinyshakespeare/input.txt" > "$TMP/paras.jsonl"
$B preprocess --input "$TMP/paras.jsonl" --output-prefix "$TMP/shk" --tokenizer-type CharLevel > "$TMP/pp.log" 2>&1 \
  || { cat "$TMP/pp.log"; exit 99; }
D="--data-path $TMP/shk_text_document --split 90,10,0"
$B train $ARGS $D --train-iters 20 --log-json "$TMP/ifull.jsonl" > "$TMP/i1.log" 2>&1 || { cat "$TMP/i1.log"; exit 1; }
$B train $ARGS $D --train-iters 10 --save "$TMP/ick" --log-json "$TMP/ipart.jsonl" > "$TMP/i2.log" 2>&1 || { cat "$TMP/i2.log"; exit 1; }
$B train $ARGS $D --train-iters 20 --load "$TMP/ick" --log-json "$TMP/ipart.jsonl" > "$TMP/i3.log" 2>&1 || { cat "$TMP/i3.log"; exit 1; }
for key in loss grad_norm; do
  if $B compare "$TMP/ipart.jsonl" "$TMP/ifull.jsonl" --key $key --rtol 0 > "$TMP/icmp" 2>&1; then
    pass "indexed dataset: $key bitwise identical after resume ($(grep '^compared' "$TMP/icmp"))"
  else fail "indexed dataset: $key differs after resume"; cat "$TMP/icmp"; fi
done
finish
