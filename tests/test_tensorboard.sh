#!/bin/sh
# --tensorboard-dir: the event file a training run writes, read back by an
# independent reader (tests/tb_read.py, the Python standard library: both
# CRC-32C of every record checked, the protobufs decoded by hand) and, where
# pip has installed it, by TensorBoard's own event_accumulator; Megatron's
# tags; the values equal the --log-json trace's (float32); a flipped byte is
# caught by the checksum.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
command -v python3 > /dev/null 2>&1 || { echo "SKIP: no python3 to read the event files"; exit 77; }
R="python3 $MT_SRCDIR/tests/tb_read.py"
T="--num-layers 2 --hidden-size 32 --num-attention-heads 4 --seq-length 32 --micro-batch-size 4 --lr 3e-3 \
 --lr-warmup-iters 2 --log-interval 1 --eval-iters 2 --eval-interval 3 --sample-tokens 0 --no-progress --train-iters 30"
$B train $T --fp16 --tensorboard-dir "$TMP/tb" --log-validation-ppl-to-tensorboard --log-batch-size-to-tensorboard \
  --log-params-norm --log-memory-to-tensorboard --log-world-size-to-tensorboard \
  --log-json "$TMP/run.jsonl" > "$TMP/run.log" 2>&1 || { cat "$TMP/run.log"; exit 1; }
$R "$TMP/tb" > "$TMP/scalars" 2> "$TMP/err" || { fail "the stdlib reader refused the event file"; cat "$TMP/err"; }
for tag in "lm loss" "learning-rate" "batch-size" "loss-scale" "grad-norm" "params-norm" "lm loss validation" \
           "lm loss validation ppl" "lm loss vs samples" "world-size" "world-size vs samples" \
           "mem-allocated-bytes" "mem-max-allocated-bytes"; do
  grep -q "^$tag	" "$TMP/scalars" || fail "no '$tag' scalars"
done
pass "Megatron's tags: $(cut -f1 "$TMP/scalars" | sort -u | tr '\n' ',' | sed 's/,$//')"
awk -F'\t' '$1 == "world-size" && $3 != 1 { bad = 1 } $1 == "mem-allocated-bytes" { a[$2] = $3 }
  $1 == "mem-max-allocated-bytes" { m[$2] = $3 }
  END { for (k in a) { n++; if (!(a[k] > 0 && m[k] >= a[k])) bad = 1 } exit bad || n != 30 }' "$TMP/scalars" \
  && pass "world-size 1; 0 < mem-allocated-bytes <= mem-max-allocated-bytes at all 30 iterations" || fail "world-size / memory scalars"
# every iteration's loss, lr, grad norm and loss scale as in the JSON trace (float32 of it)
python3 - "$TMP/scalars" "$TMP/run.jsonl" <<'PY' && pass "the scalars equal the --log-json trace (loss, lr, grad norm, loss scale; 30 iterations; validation)" || fail "scalars differ from the JSON trace"
import json, struct, sys
tb = {}
for line in open(sys.argv[1]):
    tag, step, value = line.rstrip("\n").split("\t")
    tb[(tag, int(step))] = float(value)
f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
n = 0
for line in open(sys.argv[2]):
    j = json.loads(line)
    it = j["iteration"]
    pairs = [("lm loss validation", j.get("val_loss"))] if "val_loss" in j else [
        ("lm loss", j["loss"]), ("learning-rate", j["lr"]), ("grad-norm", j["grad_norm"]), ("loss-scale", j["loss_scale"])]
    for tag, v in pairs:
        if v is None:  # a skipped iteration's grad norm: none written
            if (tag, it) in tb: sys.exit("%s written at skipped iteration %d" % (tag, it))
            continue
        got = tb.get((tag, it))
        if got is None or abs(got - f32(v)) > 1e-6 * max(1.0, abs(v)):
            sys.exit("%s at %d: %r vs %r" % (tag, it, got, v))
        n += 1
sys.exit(0 if n > 100 else "only %d values compared" % n)
PY
if python3 -c "import tensorboard" 2> /dev/null; then
  $R "$TMP/tb" --tensorboard > "$TMP/scalars.tb" 2> "$TMP/err" && cmp -s "$TMP/scalars" "$TMP/scalars.tb" \
    && pass "TensorBoard's event_accumulator reads the same $(wc -l < "$TMP/scalars") scalars" \
    || { fail "TensorBoard's reader disagrees"; cat "$TMP/err"; diff "$TMP/scalars" "$TMP/scalars.tb" | head; }
else echo "SKIP: tensorboard (pip) not installed: TensorBoard's own reader not run"; fi
# a flipped byte inside a record is caught
f=$(ls "$TMP/tb"/events.out.tfevents.*)
python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[200]^=0x10; open(p,'wb').write(b)" "$f"
$R "$TMP/tb" > /dev/null 2> "$TMP/err" && fail "a corrupted event file was read" \
  || { grep -q "checksum" "$TMP/err" && pass "a flipped byte: $(cat "$TMP/err")" || fail "corruption: $(cat "$TMP/err")"; }
expect_error "an unwritable --tensorboard-dir" "cannot create" $B train $T --train-iters 3 --tensorboard-dir /proc/none/tb
finish
