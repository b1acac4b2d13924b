#!/bin/sh
# megatron-c tokenize: encode, decode, round trips and clean errors on bad
# input (ids, vocabulary and merge files).
. "$(dirname "$0")/common.sh"
B=$MT_BIN
V="$MT_DATA_DIR/gpt2-vocab"
[ -f "$V/encoder.json" ] && [ -f "$V/vocab.bpe" ] || { echo "missing $V/encoder.json or vocab.bpe"; exit 99; }

# expect_output NAME EXPECTED CMD...: CMD must succeed and print exactly EXPECTED
expect_output() {
  name=$1; want=$2; shift 2
  if ! got=$("$@" 2>"$TMP/err"); then fail "$name: exit status $?"; sed 's/^/    /' "$TMP/err"; return; fi
  if [ "$got" = "$want" ]; then pass "$name"; else fail "$name: got '$got', want '$want'"; fi
}

expect_output "Hello world" "15496 995" sh -c "printf 'Hello world' | $B tokenize"
expect_output "empty input" "" sh -c "printf '' | $B tokenize"
expect_output "contractions and spaces" "40 1101 220 994 13 198" sh -c "printf \"I'm  here.\\n\" | $B tokenize"
expect_output "explicit files" "15496 995" sh -c \
  "printf 'Hello world' | $B tokenize --tokenizer-type GPT2BPETokenizer --vocab-file '$V/encoder.json' --merge-file '$V/vocab.bpe'"
expect_output "CharLevel" "104 105 10" sh -c "printf 'hi\\n' | $B tokenize --tokenizer-type CharLevel"
expect_output "decode" "Hello world" sh -c "printf '15496  995\\n' | $B tokenize --decode"
# NullTokenizer (Megatron's): the text is the ids; --vocab-size N adds the
# end-of-document id N
N="--tokenizer-type NullTokenizer --vocab-size 100"
expect_output "NullTokenizer" "12 7 0 100" sh -c "printf '12 7\\n 0  100' | $B tokenize $N"
expect_output "NullTokenizer decode" " 12 7 100" sh -c "printf '12 7 100' | $B tokenize $N --decode"
expect_error "NullTokenizer: a word" "'7x' is not a token id" sh -c "printf '12 7x' | $B tokenize $N"
expect_error "NullTokenizer: an id past the end" "'101' is not a token id" sh -c "printf '101' | $B tokenize $N"
expect_error "NullTokenizer without --vocab-size" "needs --vocab-size" sh -c "printf '1' | $B tokenize --tokenizer-type NullTokenizer"

# round trips, byte for byte: multilingual text, then bytes that are not UTF-8
printf 'Caf\303\251  \344\275\240\345\245\275 \360\237\230\200!\n\tx   \n' > "$TMP/text"
printf 'ok \377\376 \200a\300\257\n' > "$TMP/bytes"
head -c 20000 "$MT_DATA_DIR/tinyshakespeare/input.txt" > "$TMP/shakespeare"
for f in text bytes shakespeare; do
  if "$B" tokenize < "$TMP/$f" > "$TMP/$f.ids" 2>"$TMP/err" &&
     "$B" tokenize --decode < "$TMP/$f.ids" > "$TMP/$f.out" 2>>"$TMP/err" &&
     cmp -s "$TMP/$f" "$TMP/$f.out"; then
    pass "round trip: $f ($(wc -w < "$TMP/$f.ids") tokens)"
  else
    fail "round trip: $f"; sed 's/^/    /' "$TMP/err"
  fi
done
# the output format: decimal ids, single spaces, one final newline
if grep -qE '^[0-9]+( [0-9]+)*$' "$TMP/shakespeare.ids" && [ "$(wc -l < "$TMP/shakespeare.ids")" -eq 1 ]; then
  pass "output is one line of space-separated ids"
else
  fail "output format"
fi

# bad ids
expect_error "id not a number" "token 3 ('x1') is not a number" sh -c "echo '1 2 x1' | $B tokenize --decode"
expect_error "id out of range" "token 2 ('50257') is out of range" sh -c "echo '0 50257' | $B tokenize --decode"
expect_error "negative id" "token 1 ('-3') is out of range" sh -c "echo '-3' | $B tokenize --decode"
expect_error "CharLevel id out of range" "ids 0..255" sh -c "echo '256' | $B tokenize --decode --tokenizer-type CharLevel"

# bad vocabulary files
expect_error "missing vocab file" "cannot open $TMP/nope.json" sh -c "echo hi | $B tokenize --vocab-file $TMP/nope.json"
expect_error "missing merge file" "cannot open $TMP/nope.bpe" sh -c "echo hi | $B tokenize --merge-file $TMP/nope.bpe"
expect_error "unknown tokenizer type" "unknown --tokenizer-type 'GPT3'" sh -c "echo hi | $B tokenize --tokenizer-type GPT3"
bad_vocab() { # NAME PATTERN CONTENT
  printf '%s' "$3" > "$TMP/bad.json"
  expect_error "vocab: $1" "$2" sh -c "echo hi | $B tokenize --vocab-file $TMP/bad.json"
}
bad_vocab "not an object" "bad.json: offset 0: expected '{'" '[1, 2]'
bad_vocab "bad escape" "bad.json: offset 3: bad escape '\\\\q'" '{"a\q": 0}'
bad_vocab "duplicate id" "bad.json: offset 14: duplicate id 0" '{"a": 0, "b": 0}'
bad_vocab "id out of range" "bad.json: offset 14: id 9 of token \"b\" is out of range" '{"a": 0, "b": 9}'
bad_vocab "truncated" "bad.json: offset 15: unexpected end of file" '{"a": 0, "b": 1'
bad_vocab "no byte tokens" "has no token for byte 0x00" '{"a": 0}'
bad_merges() { # NAME PATTERN CONTENT (printf format)
  printf "$3" > "$TMP/bad.bpe"
  expect_error "merges: $1" "$2" sh -c "echo hi | $B tokenize --merge-file $TMP/bad.bpe"
}
bad_merges "line without a space" "bad.bpe: line 2: no space" '#version: 0.2\n\304\240t\n'
bad_merges "unknown symbol" "bad.bpe: line 2: unknown symbol 'zzqx'" '#version: 0.2\n\304\240 zzqx\n'
bad_merges "merge result not in vocab" "bad.bpe: line 2: merging" '#version: 0.2\n\304\240 \304\240\n'
head -n 1000 "$V/vocab.bpe" > "$TMP/short.bpe"
expect_error "merges: truncated file" "neither a byte nor made by any merge" \
  sh -c "echo hi | $B tokenize --merge-file $TMP/short.bpe"
# BERT WordPiece: the shipped uncased vocabulary by default, Hugging Face's ids
got=$(printf 'Hello, unbelievable world! [MASK]' | $B tokenize --tokenizer-type BertWordPieceLowerCase)
[ "$got" = "7592 1010 23653 2088 999 103" ] && pass "WordPiece encode" || fail "WordPiece encode gave '$got'"
got=$(echo "7592 1010 4895 ##" | sed 's/ ##//' | $B tokenize --decode --tokenizer-type BertWordPieceLowerCase)
[ "$got" = " hello , un" ] && pass "WordPiece decode" || fail "WordPiece decode gave '$got'"
expect_error "cased needs a vocabulary" "BertWordPieceCase needs --vocab-file" \
  sh -c "echo hi | $B tokenize --tokenizer-type BertWordPieceCase"
expect_error "missing WordPiece vocab" "cannot open $TMP/nope.txt" \
  sh -c "echo hi | $B tokenize --tokenizer-type BertWordPieceLowerCase --vocab-file $TMP/nope.txt"
printf 'a\nb\n' > "$TMP/nounk.txt"
expect_error "WordPiece vocab without [UNK]" "nounk.txt: no .UNK. token" \
  sh -c "echo hi | $B tokenize --tokenizer-type BertWordPieceLowerCase --vocab-file $TMP/nounk.txt"
expect_error "BERT tokenizer has no eod" "end-of-document" \
  sh -c "echo hi > $TMP/one.txt && $B preprocess --input $TMP/one.txt --output-prefix $TMP/o --tokenizer-type BertWordPieceLowerCase --append-eod"
finish
