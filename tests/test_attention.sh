#!/bin/sh
# --attention-backend: flash attention (the default; it keeps one
# log-sum-exp per query row and recomputes the probabilities in the
# backward) against the unfused form (it keeps them, B x heads x T x T):
#  - GPT with dropout, a Llama-style model (RoPE, grouped-query attention)
#    and BERT (bidirectional, padding mask): the losses and gradient norms
#    of 20 iterations agree to 1e-5, and are not bitwise the same (the
#    other arithmetic does run);
#  - flash repeats bitwise (the checkpoint bytes), and Megatron's names
#    auto / fused / local choose the forms they name here;
#  - at T 256 the peak memory is lower with flash, by at least the
#    probabilities it does not keep;
#  - the CUDA backend's kernels (on the CPU emulation when built, and on a
#    GPU when there is one) agree with its unfused path to 1e-5 on the same
#    runs;
#  - an unknown name is refused.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
EMU=$MT_TESTS/megatron-c-emu
P="$TINY --global-batch-size 8 --train-iters 20 --hidden-dropout 0.1 --attention-dropout 0.1"
LLAMA="--group-query-attention --num-query-groups 2 --position-embedding-type rope --normalization RMSNorm \
 --swiglu --untie-embeddings-and-output-weights --disable-bias-linear"

peak() { sed -n 's/.*memory peak (rank 0): \([0-9.]*\) MB.*/\1/p' "$1"; }
run() { # NAME BIN ARGS... (its own variable names: callers loop over $name)
  rn=$1; rbin=$2; shift 2
  $rbin train "$@" --log-json "$TMP/$rn.jsonl" > "$TMP/$rn.log" 2>&1 \
    || { fail "$rn: run failed"; tail -n 5 "$TMP/$rn.log"; return 1; }
}
# agree TITLE A B: losses and grad norms within 1e-5, and not all equal
agree() {
  title=$1; a=$2; b=$3
  if $B compare "$TMP/$a.jsonl" "$TMP/$b.jsonl" --rtol 1e-5 > "$TMP/cmp" 2>&1 &&
     $B compare "$TMP/$a.jsonl" "$TMP/$b.jsonl" --rtol 1e-5 --key grad_norm > "$TMP/cmpg" 2>&1; then
    if $B compare "$TMP/$a.jsonl" "$TMP/$b.jsonl" --rtol 0 --key grad_norm > /dev/null 2>&1; then
      fail "$title: bitwise equal (is the other form running?)"
    else pass "$title: $(grep '^max rel diff' "$TMP/cmp") / grad norm $(grep '^max rel diff' "$TMP/cmpg")"; fi
  else fail "$title"; cat "$TMP/cmp" "$TMP/cmpg"; fi
}

for m in "gpt:" "llama:$LLAMA"; do
  name=${m%%:*}; flags=${m#*:}
  run "$name.flash" "$B" $P $flags --save "$TMP/$name.ck" || continue
  run "$name.unfused" "$B" $P $flags --attention-backend unfused || continue
  agree "$name flash vs unfused, 20 iterations with dropout" "$name.flash" "$name.unfused"
done

# BERT: no causal mask, padded sequences (the keys past a sample's length)
$B preprocess --input "$MT_DATA_DIR/tinyshakespeare/input.txt" --output-prefix "$TMP/ts" \
  --tokenizer-type BertWordPieceLowerCase --split-sentences > "$TMP/pre" 2>&1 || { cat "$TMP/pre"; exit 99; }
BERT="--model bert --data-path $TMP/ts_text_sentence --tokenizer-type BertWordPieceLowerCase --num-layers 2 \
 --hidden-size 32 --num-attention-heads 4 --seq-length 32 --micro-batch-size 4 --global-batch-size 8 --lr 2e-3 \
 --log-interval 1 --eval-iters 0 --no-progress --train-iters 20"
run bert.flash "$B" $BERT && run bert.unfused "$B" $BERT --attention-backend unfused \
  && agree "BERT flash vs unfused, 20 iterations" bert.flash bert.unfused

# bitwise repeat, and the names
run gpt.again "$B" $P --attention-backend fused --save "$TMP/again.ck" \
  && cmp -s "$TMP/gpt.ck/iter_0000020/model_optim_rng.mtc" "$TMP/again.ck/iter_0000020/model_optim_rng.mtc" \
  && pass "flash repeated (as --attention-backend fused): the same checkpoint bytes" \
  || fail "flash attention does not repeat bitwise"
run gpt.auto "$B" $P --attention-backend auto && run gpt.local "$B" $P --attention-backend local \
  && $B compare "$TMP/gpt.auto.jsonl" "$TMP/gpt.flash.jsonl" --rtol 0 > /dev/null 2>&1 \
  && $B compare "$TMP/gpt.local.jsonl" "$TMP/gpt.unfused.jsonl" --rtol 0 > /dev/null 2>&1 \
  && pass "auto is flash and local is unfused, bitwise" || fail "auto / local do not pick flash / unfused"

# memory: T 256, 4 heads, micro-batch 4, 2 layers: the unfused form keeps
# 4 x 4 x 256 x 256 floats (4.19 MB) a layer and as much backward scratch,
# flash 4 x 4 x 256 (0.016 MB) of each: 3 x 4.18 = 12.5 MB less
M="--num-layers 2 --hidden-size 32 --num-attention-heads 4 --seq-length 256 --max-position-embeddings 256 \
 --micro-batch-size 4 --global-batch-size 4 --lr 1e-3 --train-iters 2 --log-interval 1 --eval-interval 0 \
 --eval-iters 1 --sample-tokens 0 --no-progress"
if run mem.flash "$B" $M && run mem.unfused "$B" $M --attention-backend unfused; then
  pf=$(peak "$TMP/mem.flash.log"); pu=$(peak "$TMP/mem.unfused.log")
  awk -v f="$pf" -v u="$pu" 'BEGIN { exit !(f > 0 && u - f >= 12.5) }' \
    && pass "peak memory at T 256: flash $pf MB, unfused $pu MB (at least the 12.5 MB of probabilities and their gradient less)" \
    || fail "peak memory at T 256: flash $pf MB, unfused $pu MB"
fi

# the CUDA kernels, on the emulation and on a GPU: flash against the
# backend's own unfused path
cudas=""
[ -x "$EMU" ] && cudas="emulated:$EMU" || echo "SKIP: tests/megatron-c-emu not built: the emulated CUDA kernels not run"
if $B train $TINY --train-iters 1 --backend cuda > "$TMP/probe" 2>&1; then cudas="$cudas gpu:$B"
else echo "SKIP: no GPU run: $(grep -m1 error "$TMP/probe")"; fi
for c in $cudas; do
  where=${c%%:*}; cbin=${c#*:}
  for m in "gpt:" "llama:$LLAMA"; do
    name=$where.${m%%:*}; flags=${m#*:}
    run "$name.cflash" "$cbin" $P $flags --train-iters 10 --backend cuda || continue
    run "$name.cunfused" "$cbin" $P $flags --train-iters 10 --backend cuda --attention-backend unfused || continue
    agree "cuda ($where) ${m%%:*} flash vs unfused, 10 iterations with dropout" "$name.cflash" "$name.cunfused"
  done
done

expect_error "unknown name" "unknown --attention-backend 'sdpa'" $B train $TINY --attention-backend sdpa
finish
