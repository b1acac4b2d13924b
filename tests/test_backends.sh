#!/bin/sh
# The same run on --backend cpu and --backend cpu-ref: losses agree to a
# relative 1e-4 over 10 iterations (different GEMM summation orders).
. "$(dirname "$0")/common.sh"
B=$MT_BIN
for be in cpu cpu-ref; do
  $B train $TINY --train-iters 10 --backend $be --log-json "$TMP/$be.jsonl" > "$TMP/$be.log" 2>&1 || { cat "$TMP/$be.log"; exit 1; }
  json_field "$TMP/$be.jsonl" loss > "$TMP/$be.loss"
done
worst=$(paste "$TMP/cpu.loss" "$TMP/cpu-ref.loss" | awk '{ d = ($1 - $2) / $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "%.3g", m }')
echo "largest relative loss difference cpu vs cpu-ref: $worst"
awk -v w="$worst" 'BEGIN { exit !(w <= 1e-4) }' && pass "cpu matches cpu-ref" || fail "cpu vs cpu-ref differ by $worst"
[ "$(wc -l < "$TMP/cpu.loss")" -eq 10 ] || fail "expected 10 loss lines"
finish
