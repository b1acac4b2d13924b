#!/bin/sh
# megatron-c compare: the regression check between two --log-json traces.
# Exit status 0 agree, 1 differ, 2 usage error or unreadable/malformed trace.
. "$(dirname "$0")/common.sh"
B=$MT_BIN

# expect_rc NAME RC PATTERN A B [FLAGS...]: compare exits RC and its stdout
# plus stderr contains PATTERN (empty: anything)
expect_rc() {
  name=$1; want=$2; pattern=$3; shift 3
  $B compare "$@" >"$TMP/out" 2>&1
  rc=$?
  if [ $rc -ne "$want" ]; then fail "$name: exit status $rc, expected $want"; sed 's/^/    /' "$TMP/out"; return; fi
  if [ -n "$pattern" ] && ! grep -q -- "$pattern" "$TMP/out"; then
    fail "$name: output lacks '$pattern'"; sed 's/^/    /' "$TMP/out"; return
  fi
  pass "$name"
}

# trace FILE L1 L2 ...: one "iteration:loss" pair per argument, as train writes them
trace() {
  f=$1; shift
  : > "$f"
  for p in "$@"; do
    printf '{"iteration": %s, "loss": %s, "lr": 0.003, "grad_norm": 1.25, "tokens_per_sec": 123.0, "ms_per_iter": 4.100, "consumed_samples": 40, "comm_ms": 0.000, "comm_mb": 0.0000}\n' \
      "${p%%:*}" "${p#*:}" >> "$f"
  done
}

T=$TMP
trace $T/a 1:5.5 2:5.25 3:5.0 4:4.75 5:4.5
trace $T/same 1:5.5 2:5.25 3:5.0 4:4.75 5:4.5
expect_rc "equal traces agree" 0 "result: agree" $T/a $T/same
grep -q "^compared: 5 iterations$" $T/out && pass "reports 5 compared" || fail "compared count: $(cat $T/out)"
expect_rc "a trace agrees with itself" 0 "beyond tolerance: none" $T/a $T/a

# diverging at iteration 4
trace $T/div 1:5.5 2:5.25 3:5.0 4:4.8 5:4.6
expect_rc "divergence exits 1" 1 "first at iteration 4 " $T/a $T/div
grep -q "^max abs diff: 0.1.* at iteration 5 " $T/out && pass "largest abs diff located" || fail "max abs diff: $(cat $T/out)"
grep -q "^beyond tolerance: 2 iterations" $T/out && pass "counts 2 beyond tolerance" || fail "beyond count"
grep -q "^result: differ" $T/out && pass "result line says differ" || fail "no differ result"

# rtol: 5.0 vs 5.00002 is a relative difference of 4e-6
trace $T/r 1:5.5 2:5.25 3:5.00002 4:4.75 5:4.5
expect_rc "4e-6 is within the default rtol 1e-5" 0 "" $T/r $T/a
expect_rc "4e-6 is beyond rtol 1e-6" 1 "first at iteration 3 " $T/r $T/a --rtol 1e-6
expect_rc "--rtol=VALUE form" 0 "rtol: 1e-05" $T/r $T/a --rtol=1e-5
# atol: differences of 0.05 at iteration 2
trace $T/b 1:5.5 2:5.3 3:5.0 4:4.75 5:4.5
expect_rc "0.05 is beyond the default tolerance" 1 "first at iteration 2 " $T/a $T/b
expect_rc "0.05 is within --atol 0.06" 0 "" $T/a $T/b --atol 0.06
expect_rc "0.05 is beyond --atol 0.04" 1 "first at iteration 2 " $T/a $T/b --atol 0.04
expect_rc "flags before the files" 0 "" --atol 0.06 --rtol 0 $T/a $T/b
# B is the reference: rtol * |b|
trace $T/z 1:0 2:5.25 3:5.0 4:4.75 5:4.5
trace $T/z2 1:1e-9 2:5.25 3:5.0 4:4.75 5:4.5
expect_rc "zero reference needs atol" 1 "first at iteration 1 " $T/z2 $T/z --rtol 0.5
expect_rc "zero reference within atol" 0 "" $T/z2 $T/z --atol 1e-8

# different lengths / iteration sets
trace $T/short 1:5.5 2:5.25 3:5.0
expect_rc "shorter B" 1 "missing in B: 2 iterations; first: iteration 4 (A has 5, B has 3)" $T/a $T/short
expect_rc "shorter A" 1 "missing in A: 2 iterations; first: iteration 4 (A has 3, B has 5)" $T/short $T/a
trace $T/gap 1:5.5 2:5.25 4:4.75 5:4.5 6:4.25
expect_rc "a gap and an extra iteration" 1 "missing in B: 1 iteration; first: iteration 3 " $T/a $T/gap
grep -q "missing in A: 1 iteration; first: iteration 6 " $T/out && pass "extra iteration named" || fail "extra: $(cat $T/out)"

# duplicates: a resumed run appends; the last occurrence wins, with a warning
trace $T/resumed 1:5.5 2:5.25 3:9.0 4:9.0 3:5.0 4:4.75 5:4.5
expect_rc "resumed trace: last occurrence wins" 0 "warning: .*iteration 3 on lines 3 and 5" $T/resumed $T/a
trace $T/resumed2 1:5.5 2:5.25 3:5.0 4:4.75 3:9.0 4:9.0 5:4.5
expect_rc "resumed trace: a later bad value counts" 1 "first at iteration 3 " $T/resumed2 $T/a

# validation lines and --key
cat > $T/mixA <<EOF
{"iteration": 1, "loss": 5.5, "lr": 0.003, "grad_norm": 1.25}
{"iteration": 2, "loss": 5.25, "lr": 0.003, "grad_norm": 1.5}
{"iteration": 2, "val_loss": 5.125, "val_ppl": 168.2}
{"iteration": 4, "loss": 5.0, "lr": 0.003, "grad_norm": 1.75}
{"iteration": 4, "val_loss": 4.875, "val_ppl": 130.9}
EOF
sed 's/"loss": 5.25,/"loss": 5.375,/' $T/mixA > $T/mixB
expect_rc "val_loss agrees where loss differs" 0 "compared: 2 iterations" $T/mixA $T/mixB --key val_loss
expect_rc "loss differs on mixed lines" 1 "first at iteration 2 " $T/mixA $T/mixB
grep -q "^compared: 3 iterations$" $T/out && pass "validation lines ignored for loss" || fail "mixed count: $(cat $T/out)"
expect_rc "--key grad_norm" 0 "key: grad_norm" $T/mixA $T/mixB --key grad_norm
sed '/val_loss/d' $T/mixA > $T/noval
expect_rc "val_loss missing from one trace" 1 "missing in B: 2 iterations" $T/mixA $T/noval --key val_loss
expect_rc "a key in neither trace" 2 "neither .* has a \"val_los\" field" $T/mixA $T/mixB --key val_los

# non-finite values as printf writes them
trace $T/n1 1:5.5 2:nan 3:inf 4:-inf 5:4.5
trace $T/n2 1:5.5 2:-nan 3:inf 4:-inf 5:4.5
trace $T/n3 1:5.5 2:nan 3:inf 4:inf 5:4.5
trace $T/n4 1:5.5 2:5.25 3:5.0 4:4.75 5:4.5
expect_rc "nan equals -nan, inf equals inf" 0 "non-finite: 3 iterations, 0 mismatched" $T/n1 $T/n2
expect_rc "-inf differs from inf" 1 "first at iteration 4 (A -inf, B inf: non-finite mismatch)" $T/n1 $T/n3
expect_rc "nan differs from a number, even with a huge atol" 1 "first at iteration 2 (A nan, B 5.25" $T/n1 $T/n4 --atol 1e30

# malformed traces: exit 2 naming file:line
printf '{"iteration": 1, "loss": 5.5}\n\nnot json\n' > $T/bad1
expect_rc "not JSON" 2 "bad1:3: not a JSON object" $T/bad1 $T/a
printf '{"iteration": 1, "loss": 5.5}\n{"loss": 5.25}\n' > $T/bad2
expect_rc "missing iteration" 2 "bad2:2: no \"iteration\" field" $T/bad2 $T/a
printf '{"iteration": 1, "loss": 5.5}\n{"iteration": 2, "loss": "5.25"}\n' > $T/bad3
expect_rc "string value" 2 "bad3:2: the value of \"loss\" is a string" $T/a $T/bad3
printf '{"iteration": 1, "loss": 5.5x}\n' > $T/bad4
expect_rc "non-numeric value" 2 "bad4:1: the value of \"loss\" is not a number: '5.5x'" $T/a $T/bad4
printf '{"iteration": 1, "loss": 5.5}\n{"iteration": 2, "lo' > $T/bad5
expect_rc "truncated last line" 2 "bad5:2: " $T/bad5 $T/a
printf '{"iteration": -1, "loss": 5.5}\n' > $T/bad6
expect_rc "negative iteration" 2 "bad6:1: \"iteration\" must be a non-negative integer" $T/bad6 $T/a

# usage errors and unreadable files: exit 2
expect_rc "missing file" 2 "cannot open $T/nope" $T/a $T/nope
expect_rc "a directory" 2 "error" $T/a $T
expect_rc "one file" 2 "compare needs two trace files, got 1" $T/a
expect_rc "three files" 2 "is a third" $T/a $T/a $T/a
expect_rc "unknown flag" 2 "did you mean --rtol" $T/a $T/a --rtl 1
expect_rc "negative rtol" 2 "non-negative number" $T/a $T/a --rtol -1
expect_rc "flag without a value" 2 "needs a value" $T/a $T/a --atol
expect_rc "--key iteration" 2 "other than \"iteration\"" $T/a $T/a --key iteration
$B compare --help > $T/help 2>&1 && grep -q -- "--rtol" $T/help && pass "--help exits 0" || fail "--help"
$B --help | grep -q "compare" && pass "listed in megatron-c --help" || fail "not listed in --help"

# the real check: the same run on two backends agrees; an edited loss does not
for be in cpu cpu-ref; do
  $B train $TINY --train-iters 5 --backend $be --log-json "$T/$be.jsonl" > "$T/$be.log" 2>&1 ||
    { cat "$T/$be.log"; exit 1; }
done
[ "$(json_field $T/cpu.jsonl loss | wc -l)" -eq 5 ] || { echo "expected 5 loss lines"; cat $T/cpu.jsonl; exit 99; }
expect_rc "cpu vs cpu-ref at rtol 1e-4" 0 "compared: 5 iterations" $T/cpu.jsonl $T/cpu-ref.jsonl --rtol 1e-4
sed '/"iteration": 3,/s/"loss": [^,]*/"loss": 9.87654321/' $T/cpu.jsonl > $T/edited.jsonl
expect_rc "an edited loss is caught" 1 "first at iteration 3 (A 9.87654321" $T/edited.jsonl $T/cpu-ref.jsonl --rtol 1e-4
finish
