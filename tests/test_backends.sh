#!/bin/sh
# The same run on --backend cpu and --backend cpu-ref: losses and gradient
# norms agree to a relative 1e-4 over 10 iterations (different GEMM
# summation orders), checked with `megatron-c compare`.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
for be in cpu cpu-ref; do
  $B train $TINY --train-iters 10 --backend $be --log-json "$TMP/$be.jsonl" > "$TMP/$be.log" 2>&1 || { cat "$TMP/$be.log"; exit 1; }
done
for key in loss grad_norm; do
  if $B compare "$TMP/cpu.jsonl" "$TMP/cpu-ref.jsonl" --key $key --rtol 1e-4 > "$TMP/cmp" 2>&1; then
    pass "cpu matches cpu-ref ($key): $(grep -E '^(compared|max rel diff)' "$TMP/cmp" | tr '\n' ' ')"
  else fail "cpu vs cpu-ref ($key)"; cat "$TMP/cmp"; fi
done
grep -q "^compared: 10 iterations" "$TMP/cmp" || fail "expected 10 iterations compared"
finish
