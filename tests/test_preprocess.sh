#!/bin/sh
# megatron-c preprocess: Megatron's .bin/.idx from JSON lines and plain text,
# byte for byte; --workers does not change the output; bad input gives a
# clean error naming the file and line, and leaves no file behind.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
G="$MT_SRCDIR/tests/data/golden_text_document"
[ -f "$G.idx" ] && [ -f "$G.bin" ] || { echo "missing $G.idx / .bin"; exit 99; }
[ -f "$MT_DATA_DIR/gpt2-vocab/encoder.json" ] || { echo "missing the GPT-2 vocabulary"; exit 99; }

# u16 FILE: the uint16 tokens of a .bin, one per line
u16() { od -An -v -tu2 "$1" | tr -s ' \n' '\n\n' | sed '/^$/d'; }
# run NAME CMD...: CMD must succeed
run() {
  name=$1; shift
  if "$@" >"$TMP/out" 2>"$TMP/err"; then return 0; fi
  fail "$name: exit status $?"; sed 's/^/    /' "$TMP/err"; return 1
}
same() { # NAME A B: files A and B are identical
  if cmp -s "$2" "$3"; then pass "$1"; else fail "$1: $2 and $3 differ"; fi
}

# 1. the reference's worked example: two documents, --append-eod
printf '{"text": "Hello world"}\n{"text": "I"}\n' > "$TMP/two.jsonl"
if run "golden jsonl" $B preprocess --input "$TMP/two.jsonl" --output-prefix "$TMP/two" --append-eod; then
  same "golden .idx (82 bytes) byte for byte" "$TMP/two_text_document.idx" "$G.idx"
  same "golden .bin (10 bytes) byte for byte" "$TMP/two_text_document.bin" "$G.bin"
  grep -q "2 documents, 5 tokens" "$TMP/out" && pass "summary line: $(cat "$TMP/out")" ||
    fail "summary line: $(cat "$TMP/out")"
fi
# the same with workers, a blank line, CRLF line ends and other keys around
printf '{"id": 1, "text": "Hello world", "meta": {"a": [1, 2.5e3, null]}}\r\n\n{"text": "I", "x": true}\n' > "$TMP/two2.jsonl"
if run "golden jsonl, variant" $B preprocess --input "$TMP/two2.jsonl" --output-prefix "$TMP/two2" \
     --append-eod --workers 2 --json-keys text; then
  same "variant gives the golden .idx" "$TMP/two2_text_document.idx" "$G.idx"
  same "variant gives the golden .bin" "$TMP/two2_text_document.bin" "$G.bin"
fi
ls "$TMP" | grep -q 'tmp-' && fail "temporary files left: $(ls "$TMP")" || pass "no temporary files left"

# 2. escapes: \uXXXX (with a surrogate pair) equals the raw UTF-8
printf '{"text": "Caf\\u00e9 \\ud83d\\ude00 \\"q\\" a\\\\b\\/c\\n"}\n' > "$TMP/esc.jsonl"
printf '{"text": "Caf\303\251 \360\237\230\200 \\"q\\" a\\\\b/c\\n"}\n' > "$TMP/raw.jsonl"
run "escaped" $B preprocess --input "$TMP/esc.jsonl" --output-prefix "$TMP/esc" &&
run "raw" $B preprocess --input "$TMP/raw.jsonl" --output-prefix "$TMP/raw" &&
  same "JSON escapes decode to the same tokens as raw UTF-8" "$TMP/esc_text_document.bin" "$TMP/raw_text_document.bin"
printf 'Caf\303\251 \360\237\230\200 "q" a\\b/c\n' | $B tokenize | tr ' ' '\n' > "$TMP/esc.want"
u16 "$TMP/esc_text_document.bin" > "$TMP/esc.got"
same "... and to what 'tokenize' gives for the text" "$TMP/esc.got" "$TMP/esc.want"

# 3. plain text: the whole file is one document
printf 'Hello world' > "$TMP/hello.txt"
if run "plain text" $B preprocess --input "$TMP/hello.txt" --output-prefix "$TMP/hello" --append-eod; then
  [ "$(u16 "$TMP/hello_text_document.bin" | tr '\n' ' ')" = "15496 995 50256 " ] &&
    pass "plain text: tokens 15496 995 50256" || fail "plain text tokens: $(u16 "$TMP/hello_text_document.bin" | tr '\n' ' ')"
  [ "$(wc -c < "$TMP/hello_text_document.idx")" -eq 62 ] && pass "plain text: one document (62-byte .idx)" ||
    fail "plain text .idx size $(wc -c < "$TMP/hello_text_document.idx")"
fi
: > "$TMP/empty.txt"
# an empty input is an error (an empty dataset only fails later, at training)
if $B preprocess --input "$TMP/empty.txt" --output-prefix "$TMP/empty" --append-eod > /dev/null 2> "$TMP/err"; then
  fail "empty text: accepted"
else
  grep -q "holds nothing to tokenize" "$TMP/err" && [ ! -e "$TMP/empty_text_document.idx" ] &&
    pass "empty text: refused, no output left" || { fail "empty text"; cat "$TMP/err"; }
fi
# a large text (cut into chunks internally) tokenizes exactly as the whole text
S="$MT_DATA_DIR/tinyshakespeare/input.txt"
if run "tinyshakespeare as text" $B preprocess --input "$S" --output-prefix "$TMP/shk" --workers 3; then
  $B tokenize < "$S" | tr ' ' '\n' > "$TMP/shk.want"
  u16 "$TMP/shk_text_document.bin" > "$TMP/shk.got"
  same "plain text in chunks = 'tokenize' of the whole file ($(wc -l < "$TMP/shk.want") tokens)" "$TMP/shk.got" "$TMP/shk.want"
fi
# a text file that starts with '{' is taken for JSON unless told
printf '{not json}\nreally\n' > "$TMP/brace.txt"
expect_error "auto-detected JSON that is not" "brace.txt: line 1" $B preprocess --input "$TMP/brace.txt" --output-prefix "$TMP/brace"
run "--input-format text" $B preprocess --input "$TMP/brace.txt" --output-prefix "$TMP/brace" --input-format text &&
  pass "--input-format text overrides the detection"

# 4. --workers N gives the output of --workers 1 (JSON made from paragraphs of the text)
awk 'BEGIN { p = "" }
     { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); gsub(/\t/, "\\t") }
     /^$/ { if (p != "") print "{\"text\": \"" p "\"}"; p = ""; next }
     { p = (p == "" ? $0 : p "\\n" $0) }
     END { if (p != "") print "{\"text\": \"" p "\"}" }' "$S" > "$TMP/para.jsonl"
n=$(wc -l < "$TMP/para.jsonl")
[ "$n" -gt 2000 ] || { echo "setup: only $n paragraphs"; exit 99; }
run "workers 1" $B preprocess --input "$TMP/para.jsonl" --output-prefix "$TMP/w1" --append-eod --workers 1 &&
run "workers 4" $B preprocess --input "$TMP/para.jsonl" --output-prefix "$TMP/w4" --append-eod --workers 4 &&
{ same "--workers 4 .bin = --workers 1 .bin ($n documents)" "$TMP/w4_text_document.bin" "$TMP/w1_text_document.bin"
  same "--workers 4 .idx = --workers 1 .idx" "$TMP/w4_text_document.idx" "$TMP/w1_text_document.idx"; }
grep -q "$n documents" "$TMP/out" && pass "$n documents counted" || fail "document count: $(cat "$TMP/out")"

# 5. several keys give several datasets
printf '{"title": "A", "text": "Hello world"}\n{"text": "I", "title": "Be"}\n' > "$TMP/keys.jsonl"
if run "two keys" $B preprocess --input "$TMP/keys.jsonl" --output-prefix "$TMP/keys" --json-keys text title --append-eod; then
  same "--json-keys text title: the text dataset" "$TMP/keys_text_document.bin" "$G.bin"
  [ -f "$TMP/keys_title_document.idx" ] && pass "--json-keys text title: the title dataset" || fail "no title dataset"
fi

# 6. errors: file and line named, nothing written, earlier output untouched
cp "$TMP/two_text_document.bin" "$TMP/keep.bin"
printf '{"text": "ok"}\n{"text": "fine"}\n{"text": "broken}\n' > "$TMP/bad.jsonl"
expect_error "malformed line" "bad.jsonl: line 3: unterminated string" \
  $B preprocess --input "$TMP/bad.jsonl" --output-prefix "$TMP/two"
same "a failed run leaves the earlier output alone" "$TMP/two_text_document.bin" "$TMP/keep.bin"
ls "$TMP" | grep -q 'tmp-' && fail "temporary files left after an error" || pass "no temporary files after an error"
printf '{"text": "ok"}\n{"txt": "x"}\n' > "$TMP/nokey.jsonl"
expect_error "missing key" "nokey.jsonl: line 2: no key \"text\"" $B preprocess --input "$TMP/nokey.jsonl" --output-prefix "$TMP/x"
printf '{"text": 12}\n' > "$TMP/num.jsonl"
expect_error "not a string" "line 1: the value of \"text\" is a number" $B preprocess --input "$TMP/num.jsonl" --output-prefix "$TMP/x"
printf '{"text": "a\\ud800"}\n' > "$TMP/sur.jsonl"
expect_error "lone surrogate" "line 1: lone surrogate" $B preprocess --input "$TMP/sur.jsonl" --output-prefix "$TMP/x"
printf '{"text": "a"} {"text": "b"}\n' > "$TMP/two_obj.jsonl"
expect_error "two objects on a line" "line 1: extra data" $B preprocess --input "$TMP/two_obj.jsonl" --output-prefix "$TMP/x"
printf '{"text": "\377"}\n' > "$TMP/latin.jsonl"
expect_error "invalid UTF-8" "line 1: byte 11 is not valid UTF-8" $B preprocess --input "$TMP/latin.jsonl" --output-prefix "$TMP/x"
expect_error "missing input" "cannot open $TMP/nope.jsonl" $B preprocess --input "$TMP/nope.jsonl" --output-prefix "$TMP/x"
expect_error "missing output directory" "cannot create $TMP/no/dir/x_text_document.bin" \
  $B preprocess --input "$TMP/two.jsonl" --output-prefix "$TMP/no/dir/x"
expect_error "no --output-prefix" "--output-prefix is required" $B preprocess --input "$TMP/two.jsonl"
expect_error "EOD without one" "CharLevel tokenizer has no end-of-document token" \
  $B preprocess --input "$TMP/two.jsonl" --output-prefix "$TMP/x" --tokenizer-type CharLevel --append-eod
# --split-sentences: one sequence per sentence, documents in the document index
# idx_i64 FILE OFFSET COUNT / idx_i32: fields of an .idx, one per line
idx_i64() { od -An -v -j "$2" -N $(( $3 * 8 )) -td8 "$1" | tr -s ' \n' '\n\n' | sed '/^$/d' | tr '\n' ' '; }
idx_i32() { od -An -v -j "$2" -N $(( $3 * 4 )) -td4 "$1" | tr -s ' \n' '\n\n' | sed '/^$/d' | tr '\n' ' '; }
printf '{"text": "One here. Two is here! Three?"}\n{"text": "Alone, no split. but lowercase"}\n' > "$TMP/sent.jsonl"
if run "split sentences" $B preprocess --input "$TMP/sent.jsonl" --output-prefix "$TMP/sent" \
     --tokenizer-type BertWordPieceLowerCase --split-sentences; then
  I="$TMP/sent_text_sentence.idx"
  counts=$(idx_i64 "$I" 18 2)
  [ "$counts" = "4 3 " ] && pass "split sentences: 4 sequences, 3 document-index entries" ||
    fail "split sentences: sequences and document-index entries are '$counts'"
  [ "$(idx_i32 "$I" 34 4)" = "3 4 2 8 " ] && pass "split sentences: sentence lengths 3 4 2 8" ||
    fail "split sentences: lengths '$(idx_i32 "$I" 34 4)'"
  [ "$(idx_i64 "$I" $((34 + 12 * 4)) 3)" = "0 3 4 " ] && pass "split sentences: documents start at sentences 0, 3 (index 0 3 4)" ||
    fail "split sentences: document index '$(idx_i64 "$I" $((34 + 12 * 4)) 3)'"
  grep -q "sent_text_sentence: 2 documents, 4 sentences" "$TMP/out" && pass "split sentences: the summary names _sentence" ||
    fail "split sentences summary: $(cat "$TMP/out")"
fi
# GPT-2 with --append-eod: the end of document joins the last sentence (Megatron)
if run "split sentences, eod" $B preprocess --input "$TMP/sent.jsonl" --output-prefix "$TMP/sente" \
     --split-sentences --append-eod; then
  lens=$(idx_i32 "$TMP/sente_text_sentence.idx" 34 4)
  last=$(u16 "$TMP/sente_text_sentence.bin" | tail -n 1)
  [ "$last" = 50256 ] && [ "$(echo $lens | wc -w)" = 4 ] && pass "split sentences: eod ends the last sentence ($lens)" ||
    fail "split sentences with eod: lengths '$lens', last token $last"
fi
# plain text: chunks are cut at blank lines, so --workers changes nothing
S="$MT_DATA_DIR/tinyshakespeare/input.txt"
if run "split text w1" $B preprocess --input "$S" --output-prefix "$TMP/ts1" --split-sentences --workers 1 &&
   run "split text w3" $B preprocess --input "$S" --output-prefix "$TMP/ts3" --split-sentences --workers 3; then
  same "split plain text: --workers 3 gives the --workers 1 .idx" "$TMP/ts1_text_sentence.idx" "$TMP/ts3_text_sentence.idx"
  same "split plain text: --workers 3 gives the --workers 1 .bin" "$TMP/ts1_text_sentence.bin" "$TMP/ts3_text_sentence.bin"
  n=$(idx_i64 "$TMP/ts1_text_sentence.idx" 18 2)
  set -- $n
  [ "$1" -gt 10000 ] && [ "$2" -gt 5000 ] && pass "split plain text: a document per paragraph ($1 sentences, $(( $2 - 1 )) documents)" ||
    fail "split plain text: counts '$n'"
fi
# an invalid run leaves nothing
expect_error "sentence splitting of a bad line" "line 1" \
  sh -c "echo '{bad' > $TMP/bad.jsonl && $B preprocess --input $TMP/bad.jsonl --output-prefix $TMP/x --split-sentences"
[ -e "$TMP/x_text_document.bin" ] || [ -e "$TMP/x_text_document.idx" ] || [ -e "$TMP/x_text_sentence.bin" ] &&
  fail "a failed run left output" || pass "failed runs left no output"
finish
