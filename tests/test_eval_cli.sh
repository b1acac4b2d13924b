#!/bin/sh
# megatron-c eval: WikiText perplexity and LAMBADA accuracy of a tiny
# CharLevel checkpoint on small generated files; the JSON result; errors.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
$B train $TINY --train-iters 10 --save "$TMP/ck" > "$TMP/t.log" 2>&1 || { cat "$TMP/t.log"; exit 99; }

# a small WikiText-style file (raw, as wiki.test.tokens)
cat > "$TMP/wiki.txt" <<'EOF'
 
 = Robert Boulter = 
 
 Robert Boulter is an English film , television and theatre actor . He had a guest @-@ starring role on the television series The Bill in 2000 . 
 In 2006 , Boulter starred alongside Whishaw in the play " Citizenship " written by Mark Ravenhill ( 2006 ) . 
 
 = = Career = = 
 
 The 1 @,@ 000 seat theatre was 2 @.@ 5 km from the station ; it opened in N . 
EOF
# a small LAMBADA-style file (JSON lines)
cat > "$TMP/lam.jsonl" <<'EOF'
{"text": "In my palm is a clear stone, and inside it is a small ivory statuette. A guardian angel.\n\"Figured if you're going to be out at night getting hit by cars, you might as well have some backup.\"\nI look at him, feeling stunned. Like this is some sort of sign. But as I stare at Harlin, his mouth curved in a confident grin, I don't care about signs"}
{"text": "Give me a minute to change and I'll meet you at the docks.\" She'd forced those words through her teeth.\n\"No need to change. We won't be that long.\"\nShane gripped her arm and started leading her to the dock"}
{"text": "\"Only one source I know of that would be likely to cough up enough money to finance a phony sleep research facility and pay people big bucks to solve crimes in their dreams,\" Farrell concluded dryly.\n\"Who's that?\" Mac asked.\n\"The government"}

{"text": "the cat sat on the mat and the dog sat on the log"}
EOF

ev() { $B eval --load "$TMP/ck" --no-progress "$@"; }
finite() { echo "$1" | grep -Eq '^-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?$'; }
# rel_close A B TOL: |A - B| <= TOL * |B|
rel_close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(d <= t * m) }'; }

# ---- wikitext ----
ev --task wikitext --data "$TMP/wiki.txt" --log-json "$TMP/w.json" > "$TMP/w.out" 2>"$TMP/err" \
  || { cat "$TMP/err"; fail "eval --task wikitext"; finish; }
[ "$(wc -l < "$TMP/w.json")" -eq 1 ] && pass "wikitext: one JSON object" || fail "wikitext: JSON has $(wc -l < "$TMP/w.json") lines"
ok=1
for k in loss ppl adjusted_ppl num_tokenized_tokens num_original_tokens; do
  v=$(json_field "$TMP/w.json" $k)
  finite "$v" || { fail "wikitext: field $k is '$v'"; ok=0; }
done
[ $ok -eq 1 ] && pass "wikitext: loss, ppl, adjusted_ppl, token counts present and finite"
grep -q '"task": "wikitext"' "$TMP/w.json" && pass "wikitext: task named" || fail "wikitext: no task field"
loss=$(json_field "$TMP/w.json" loss); ppl=$(json_field "$TMP/w.json" ppl)
e=$(awk -v l="$loss" 'BEGIN { printf "%.12g", exp(l < 20 ? l : 20) }')
rel_close "$ppl" "$e" 1e-6 && pass "ppl $ppl = exp(loss $loss)" || fail "ppl $ppl != exp(loss) $e"
grep -q "validation results on WIKITEXT | avg loss:" "$TMP/w.out" && pass "wikitext: Megatron-style result line" \
  || fail "wikitext: no result line"
# the original token count is len(text.strip().split(" ")) of the raw file
norig=$(json_field "$TMP/w.json" num_original_tokens)
want=$(awk 'BEGIN { RS = "\001" } { gsub(/^[ \t\n\r\f\v]+|[ \t\n\r\f\v]+$/, ""); print gsub(/ /, " ") + 1 }' "$TMP/wiki.txt")
[ "$norig" = "$want" ] && pass "num_original_tokens $norig" || fail "num_original_tokens $norig, expected $want"
# CharLevel without the detokenizer: one token per byte of the file
ev --task wikitext --data "$TMP/wiki.txt" --no-detokenize --log-json "$TMP/raw.json" > /dev/null || fail "--no-detokenize"
n=$(json_field "$TMP/raw.json" num_tokenized_tokens)
[ "$n" -eq "$(wc -c < "$TMP/wiki.txt")" ] && pass "--no-detokenize: $n tokens = bytes" || fail "--no-detokenize: $n tokens"
ntok=$(json_field "$TMP/w.json" num_tokenized_tokens)
[ "$ntok" -lt "$n" ] && pass "the detokenizer shortens the text ($n -> $ntok bytes)" || fail "detokenized $ntok >= raw $n"
# overlapping windows, micro-batches and backends
ev --task wikitext --data "$TMP/wiki.txt" --overlapping-eval 8 --micro-batch-size 3 --log-json "$TMP/o.json" > /dev/null \
  || fail "--overlapping-eval 8"
lo=$(json_field "$TMP/o.json" loss)
finite "$lo" && [ "$(json_field "$TMP/o.json" num_tokenized_tokens)" = "$ntok" ] \
  && pass "--overlapping-eval 8: loss $lo" || fail "--overlapping-eval 8: loss '$lo'"
ev --task wikitext --data "$TMP/wiki.txt" --micro-batch-size 1 --backend cpu-ref --log-json "$TMP/r.json" > /dev/null \
  || fail "--backend cpu-ref"
lr=$(json_field "$TMP/r.json" loss)
rel_close "$lr" "$loss" 1e-5 && pass "cpu-ref, micro batch 1: loss $lr = $loss" || fail "cpu-ref loss $lr != $loss"
ev --task wikitext --data "$TMP/wiki.txt" --max-examples 2 --log-json "$TMP/p.json" > /dev/null || fail "--max-examples"
grep -q '"partial": true' "$TMP/p.json" && [ "$(json_field "$TMP/p.json" num_tokenized_tokens)" -eq 65 ] \
  && pass "--max-examples 2: a partial run over 2 windows (65 tokens)" || fail "--max-examples 2: $(cat "$TMP/p.json")"

# ---- lambada ----
ev --task lambada --data "$TMP/lam.jsonl" --log-json "$TMP/l.json" > "$TMP/l.out" 2>"$TMP/err" \
  || { cat "$TMP/err"; fail "eval --task lambada"; finish; }
acc=$(json_field "$TMP/l.json" accuracy); c=$(json_field "$TMP/l.json" correct); t=$(json_field "$TMP/l.json" total)
finite "$acc" && finite "$c" && [ "$t" = 4 ] && awk -v a="$acc" -v c="$c" 'BEGIN { exit !(a == c / 4) }' \
  && pass "lambada: accuracy $acc = $c / $t (blank line skipped)" || fail "lambada: accuracy '$acc' correct '$c' total '$t'"
grep -q '"task": "lambada"' "$TMP/l.json" && pass "lambada: task named" || fail "lambada: no task field"
grep -q "validation results on LAMBADA | number correct:" "$TMP/l.out" && pass "lambada: Megatron-style result line" \
  || fail "lambada: no result line"
ev --task lambada --data "$TMP/lam.jsonl" --strict-lambada --seq-length 16 --max-examples 2 --log-json "$TMP/s.json" \
  > "$TMP/s.out" || fail "--strict-lambada"
[ "$(json_field "$TMP/s.json" total)" = 2 ] && grep -q '"strict": true' "$TMP/s.json" \
  && [ "$(json_field "$TMP/s.json" truncated)" = 2 ] \
  && pass "--strict-lambada --seq-length 16 --max-examples 2: 2 examples, both cut" || fail "--strict-lambada: $(cat "$TMP/s.json")"

# ---- errors ----
expect_error "missing --data file" "nofile.txt" ev --task wikitext --data "$TMP/nofile.txt"
printf '{"text": "one two three"}\n\n{"text": "unterminated}\n' > "$TMP/bad.jsonl"
expect_error "malformed LAMBADA line" "bad.jsonl:3: malformed JSON" ev --task lambada --data "$TMP/bad.jsonl"
printf '{"text": "one two three"}\n{"passage": "x y"}\n' > "$TMP/nokey.jsonl"
expect_error "LAMBADA line without text" 'nokey.jsonl:2: no "text" key' ev --task lambada --data "$TMP/nokey.jsonl"
printf '{"text": "one two three"}\n{"text": "single"}\n' > "$TMP/one.jsonl"
expect_error "LAMBADA passage of one word" "one.jsonl:2:" ev --task lambada --strict-lambada --data "$TMP/one.jsonl"
expect_error "unknown task" "unknown --task 'squad'" ev --task squad --data "$TMP/wiki.txt"
expect_error "no --task" "needs --task" ev --data "$TMP/wiki.txt"
expect_error "stride above seq" "overlapping-eval 64" ev --task wikitext --data "$TMP/wiki.txt" --overlapping-eval 64
expect_error "seq above position table" "longer than the position table" ev --task wikitext --data "$TMP/wiki.txt" --seq-length 33
expect_error "no checkpoint" "no checkpoint in" $B eval --load "$TMP/none" --task wikitext --data "$TMP/wiki.txt"
printf 'x' > "$TMP/tiny.txt"
expect_error "text of one token" "nothing to score" ev --task wikitext --data "$TMP/tiny.txt"
finish
