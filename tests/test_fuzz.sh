#!/bin/sh
# A smoke run of every libFuzzer target (bench/fuzz.sh: the checkpoint,
# .idx, JSON, safetensors and vocabulary readers, the tokenizers on any
# text, the server's HTTP head parser) for 10 s each, from seed corpora of
# valid files: no crash, no sanitizer report, no hang. Skips (77) without a clang that links
# libFuzzer. Longer runs: sh bench/fuzz.sh SECONDS.
. "$(dirname "$0")/common.sh"
MT_FUZZ_DIR="$TMP/fuzz" sh "$MT_SRCDIR/bench/fuzz.sh" "${MT_FUZZ_SECONDS:-10}" > "$TMP/fuzz.log" 2>&1
rc=$?
[ $rc -eq 77 ] && { cat "$TMP/fuzz.log"; exit 77; }
grep "^fuzz.sh: .*: ok" "$TMP/fuzz.log" | while read -r line; do pass "${line#fuzz.sh: }"; done
if [ $rc -ne 0 ]; then fail "bench/fuzz.sh exited $rc"; cat "$TMP/fuzz.log"; fi
[ "$(grep -c '^fuzz.sh: .*: ok' "$TMP/fuzz.log")" -eq 7 ] || fail "not every target ran"
finish
