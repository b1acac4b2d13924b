#!/bin/sh
# convert and forward against the Hugging Face goldens (tests/golden/hf,
# made by tests/golden/gen_hf_golden.py with transformers):
# - HF -> megatron-c -> HF gives back bit-identical tensors (GPT-2, Llama,
#   Llama 3.1's RoPE scaling (llama31_tiny: gen_rope_scaling_golden.py),
#   BertForPreTraining, BertModel, BertForMaskedLM, BertForSequenceClassification;
#   f32, and bf16 / f16 written by torch);
# - f32 written as bf16 / f16 is rounded as torch rounds (the same bytes);
# - forward on the HF directory and on the converted checkpoint: the golden
#   logits, last hidden states (and BERT's sequence-head logits, with token
#   types and padding) to 1e-5, and bitwise the same as each other;
# - bad inputs each give a clear error naming what is wrong.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
G=$MT_SRCDIR/tests/golden/hf
ST=$MT_TESTS/st_tool
[ -f "$G/llama_tiny/model.safetensors" ] || { echo "skip: no goldens in $G"; exit 77; }
[ -x "$ST" ] || { echo "missing $ST"; exit 99; }

run() { "$@" >"$TMP/log" 2>&1 || { fail "$*"; sed 's/^/    /' "$TMP/log"; return 1; }; }

for m in gpt2_tiny llama_tiny llama31_tiny bert_tiny bert_tiny_base bert_tiny_mlm bert_tiny_cls; do
  inputs="$G/${m}_inputs.jsonl"
  case $m in bert_tiny_*) inputs="$G/bert_tiny_inputs.jsonl" ;; esac
  run $B convert --load "$G/$m" --save "$TMP/$m.mc" || continue
  [ -f "$TMP/$m.mc/latest_checkpointed_iteration.txt" ] && pass "$m: converted to megatron-c" \
    || fail "$m: no megatron-c checkpoint written"
  run $B convert --load "$TMP/$m.mc" --save "$TMP/$m.hf" || continue
  $ST diff "$G/$m/model.safetensors" "$TMP/$m.hf/model.safetensors" > "$TMP/d" \
    && pass "$m: HF -> megatron-c -> HF: $(cat "$TMP/d")" || fail "$m round trip: $(cat "$TMP/d")"
  arch=$(sed -n 's/.*"architectures": \["\([A-Za-z0-9]*\)"\].*/\1/p' "$TMP/$m.hf/config.json")
  want=$(tr -d ' \n' < "$G/$m/config.json" | sed -n 's/.*"architectures":\["\([A-Za-z0-9]*\)"\].*/\1/p')
  [ -n "$arch" ] && [ "$arch" = "$want" ] && pass "$m: config.json names $arch" \
    || fail "$m: config.json names '$arch', the source '$want'"

  run $B forward --load "$G/$m" --input "$inputs" --output "$TMP/$m.f1" || continue
  run $B forward --load "$TMP/$m.mc" --input "$inputs" --output "$TMP/$m.f2" --backend cpu-ref || continue
  $ST diff "$TMP/$m.f1" "$G/${m}_forward.safetensors" 1e-5 > "$TMP/d" \
    && pass "$m: forward on the HF directory = transformers: $(cat "$TMP/d")" || fail "$m forward: $(cat "$TMP/d")"
  $ST diff "$TMP/$m.f2" "$G/${m}_forward.safetensors" 1e-5 > "$TMP/d" \
    && pass "$m: forward on the converted checkpoint (cpu-ref) = transformers: $(cat "$TMP/d")" \
    || fail "$m forward (converted, cpu-ref): $(cat "$TMP/d")"
  run $B forward --load "$TMP/$m.mc" --input "$inputs" --output "$TMP/$m.f3" || continue
  $ST diff "$TMP/$m.f1" "$TMP/$m.f3" > "$TMP/d" \
    && pass "$m: forward, HF directory and converted checkpoint: $(cat "$TMP/d")" || fail "$m: $(cat "$TMP/d")"
done

# Llama 3.1's RoPE scaling goes out as Hugging Face's rope_type llama3
grep -q '"rope_type": "llama3", "factor": 8' "$TMP/llama31_tiny.hf/config.json" \
  && pass "llama31_tiny: rope_type llama3 with factor 8 written back" || fail "llama31_tiny: rope scaling lost on export"
# transformers 4.x reads rope_scaling (5.x rope_parameters): both carry it
# (before, 4.46 loaded this export with the plain rotation)
grep -q '"rope_scaling": {"rope_type": "llama3", "factor": 8' "$TMP/llama31_tiny.hf/config.json" \
  && grep -q '"rope_scaling": null' "$TMP/llama_tiny.hf/config.json" \
  && pass "llama31_tiny / llama_tiny: rope_scaling for transformers 4.x written too (llama3 / null)" \
  || fail "rope_scaling missing from the Llama exports (transformers 4.x would use the plain rotation)"
sed 's/"llama3"/"yarn"/' "$G/llama31_tiny/config.json" > "$TMP/yarn.json"
mkdir -p "$TMP/yarn" && cp "$TMP/yarn.json" "$TMP/yarn/config.json" && cp "$G/llama31_tiny/model.safetensors" "$TMP/yarn/"
expect_error "an unsupported rope_type" 'rope_type "yarn"' $B convert --load "$TMP/yarn" --save "$TMP/yarn.mc"

# another vocabulary padding is another checkpoint but the same function
if run $B convert --load "$G/llama_tiny" --save "$TMP/pad64" --make-vocab-size-divisible-by 64 \
   && run $B forward --load "$TMP/pad64" --input "$G/llama_tiny_inputs.jsonl" --output "$TMP/pad64.fwd"; then
  grep -a -q '^padded_vocab_size=64$' "$TMP"/pad64/iter_0000000/*.mtc \
    && pass "--make-vocab-size-divisible-by 64 pads 61 to 64" || fail "padding 64 not recorded"
  $ST diff "$TMP/pad64.fwd" "$TMP/llama_tiny.f1" > "$TMP/d" \
    && pass "padded to 64 or 128: the same logits ($(cat "$TMP/d"))" || fail "padding changed the function: $(cat "$TMP/d")"
fi

# a Llama-style model trained here goes out and comes back as the same
# function, with its tokenizer, and training continues from it
LLAMA="--position-embedding-type rope --normalization RMSNorm --swiglu --group-query-attention \
 --num-query-groups 2 --untie-embeddings-and-output-weights --disable-bias-linear --ffn-hidden-size 48"
printf '{"text": "ROMEO: What light"}\n{"text": "O, be some other name"}\n' > "$TMP/text.jsonl"
if run $B train $TINY $LLAMA --train-iters 10 --save "$TMP/own" && run $B convert --load "$TMP/own" --save "$TMP/own.hf" \
   && run $B convert --load "$TMP/own.hf" --save "$TMP/own.back" \
   && run $B forward --load "$TMP/own" --input "$TMP/text.jsonl" --output "$TMP/own.f1" \
   && run $B forward --load "$TMP/own.back" --input "$TMP/text.jsonl" --output "$TMP/own.f2"; then
  $ST diff "$TMP/own.f1" "$TMP/own.f2" > "$TMP/d" \
    && pass "trained Llama -> HF -> megatron-c, forward on text: $(cat "$TMP/d")" || fail "trained Llama round trip: $(cat "$TMP/d")"
  run $B train $TINY $LLAMA --train-iters 2 --load "$TMP/own.back" --save "$TMP/own.ft" \
    && grep -q "model weights only" "$TMP/log" && pass "training continues from the converted checkpoint" \
    || fail "training from the converted checkpoint"
fi

# fine-tuning a Hugging Face Llama in megatron-c on Megatron data
# (NullTokenizer ids: documents counting up by 3 mod 60) and back out
awk 'BEGIN { for (d = 0; d < 200; d++) { s = (d * 7) % 60; printf "{\"text\": \"";
       for (i = 0; i < 20 + d % 40; i++) printf "%s%d", i ? " " : "", (s + 3 * i) % 60; print "\"}" } }' \
  > "$TMP/ids.jsonl"
NT="--tokenizer-type NullTokenizer --vocab-size 60"
FT="--num-layers 2 --hidden-size 32 --num-attention-heads 4 --group-query-attention --num-query-groups 2 \
 --kv-channels 8 --ffn-hidden-size 48 --swiglu --normalization RMSNorm --position-embedding-type rope \
 --untie-embeddings-and-output-weights --disable-bias-linear --seq-length 16 --max-position-embeddings 16 \
 --micro-batch-size 8 --train-iters 40 --lr 3e-3 --log-interval 10 --eval-interval 20 --eval-iters 4 \
 --split 90,10,0 --no-progress --sample-tokens 8 --log-json $TMP/ft.jsonl"
if run $B preprocess --input "$TMP/ids.jsonl" --output-prefix "$TMP/ids" $NT --append-eod \
   && run $B train --data-path "$TMP/ids_text_document" $NT $FT --load "$TMP/llama_tiny.mc" --save "$TMP/ft"; then
  first=$(json_field "$TMP/ft.jsonl" val_loss | head -n1); last=$(json_field "$TMP/ft.jsonl" val_loss | tail -n1)
  awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.2) }' \
    && pass "fine-tuning the converted Llama: validation loss $first -> $last" \
    || fail "fine-tuning the converted Llama: validation loss $first -> $last"
  grep -q "sample" "$TMP/log" && pass "the end-of-training sample starts from the end of document" \
    || fail "no sample after training with NullTokenizer"
  run $B convert --load "$TMP/ft" --save "$TMP/ft.hf" \
    && grep -q '"megatron_c_tokenizer_type": "NullTokenizer"' "$TMP/ft.hf/config.json" \
    && pass "the fine-tuned model goes out with its tokenizer" || fail "fine-tuned model export"
fi

# 16-bit: torch's files read and written back unchanged; our rounding is torch's
for t in bf16 f16; do
  src=$G/gpt2_tiny_$t
  run $B convert --load "$src" --save "$TMP/$t.mc" || continue
  run $B convert --load "$TMP/$t.mc" --save "$TMP/$t.hf" --save-dtype $t || continue
  $ST diff "$src/model.safetensors" "$TMP/$t.hf/model.safetensors" > "$TMP/d" \
    && pass "$t written by torch -> megatron-c -> $t: $(cat "$TMP/d")" || fail "$t round trip: $(cat "$TMP/d")"
  run $B convert --load "$TMP/gpt2_tiny.mc" --save "$TMP/$t.from32" --save-dtype $t || continue
  $ST diff "$src/model.safetensors" "$TMP/$t.from32/model.safetensors" > "$TMP/d" \
    && pass "f32 -> $t rounds as torch does: $(cat "$TMP/d")" || fail "f32 -> $t: $(cat "$TMP/d")"
  run $B forward --load "$src" --input "$G/gpt2_tiny_inputs.jsonl" --output "$TMP/$t.fwd" || continue
  $ST diff "$TMP/$t.fwd" "$G/gpt2_tiny_forward.safetensors" 2e-2 > "$TMP/d" \
    && pass "forward on the $t weights near the f32 goldens: $(cat "$TMP/d")" || fail "$t forward: $(cat "$TMP/d")"
done

# a sharded checkpoint (model.safetensors.index.json): the output layer in
# a second file
S=$TMP/sharded; mkdir "$S"; cp "$G/llama_tiny/config.json" "$S/"
$ST edit "$G/llama_tiny/model.safetensors" "$S/part-1.safetensors" drop=lm_head.weight
$ST edit "$G/llama_tiny/model.safetensors" "$S/part-2.safetensors" only=lm_head.weight
{ echo '{"metadata": {}, "weight_map": {'
  $ST names "$S/part-1.safetensors" | sed 's/.*/  "&": "part-1.safetensors",/'
  echo '  "lm_head.weight": "part-2.safetensors"}}'; } > "$S/model.safetensors.index.json"
if run $B forward --load "$S" --input "$G/llama_tiny_inputs.jsonl" --output "$TMP/sharded.fwd"; then
  $ST diff "$TMP/sharded.fwd" "$TMP/llama_tiny.f1" > "$TMP/d" \
    && pass "a sharded checkpoint reads as the single file: $(cat "$TMP/d")" || fail "sharded: $(cat "$TMP/d")"
fi

# ---- bad inputs
bad() { # bad NAME: a copy of the Llama directory to break
  rm -rf "$TMP/$1"; mkdir "$TMP/$1"; cp "$G/llama_tiny/config.json" "$TMP/$1/"; echo "$TMP/$1"
}
L=model.layers.0
d=$(bad arch); sed 's/LlamaForCausalLM/MistralForCausalLM/' "$G/llama_tiny/config.json" > "$d/config.json"
cp "$G/llama_tiny/model.safetensors" "$d/"
expect_error "unsupported architecture" "MistralForCausalLM" $B convert --load "$d" --save "$TMP/x1"
d=$(bad missing); $ST edit "$G/llama_tiny/model.safetensors" "$d/model.safetensors" drop=$L.mlp.up_proj.weight
expect_error "missing tensor" "$L.mlp.up_proj.weight" $B convert --load "$d" --save "$TMP/x2"
d=$(bad shape); $ST edit "$G/llama_tiny/model.safetensors" "$d/model.safetensors" transpose=$L.mlp.down_proj.weight
expect_error "wrong shape" "$L.mlp.down_proj.weight.*shape\|shape.*$L.mlp.down_proj.weight" $B convert --load "$d" --save "$TMP/x3"
d=$(bad dtype); cp "$G/llama_tiny/model.safetensors" "$d/"; $ST retype "$d/model.safetensors" model.norm.weight I32
expect_error "wrong dtype" "model.norm.weight.*I32" $B convert --load "$d" --save "$TMP/x4"
d=$(bad extra); $ST edit "$G/llama_tiny/model.safetensors" "$d/model.safetensors" copy=$L.mlp.up_proj.weight:$L.mlp.extra.weight
expect_error "unexpected tensor" "unexpected tensor $L.mlp.extra.weight" $B convert --load "$d" --save "$TMP/x5"
d=$(bad trunc); head -c 40000 "$G/llama_tiny/model.safetensors" > "$d/model.safetensors"
expect_error "truncated safetensors" "model.safetensors" $B convert --load "$d" --save "$TMP/x6"
d=$(bad header); printf '\377\377\377\377\377\377\0\0{' > "$d/model.safetensors"
expect_error "header length past the end" "model.safetensors" $B forward --load "$d" --input "$G/llama_tiny_inputs.jsonl" --output "$TMP/x7"
d=$(bad config); grep -v '"hidden_size"' "$G/llama_tiny/config.json" > "$d/config.json"; cp "$G/llama_tiny/model.safetensors" "$d/"
expect_error "config field missing" "hidden_size" $B convert --load "$d" --save "$TMP/x8"
expect_error "neither format" "latest_checkpointed_iteration.txt" $B convert --load "$TMP" --save "$TMP/x9"
expect_error "bad --save-dtype" "f64" $B convert --load "$G/llama_tiny" --save "$TMP/x10" --save-dtype f64
echo '{"input_ids": [1, 2, 999]}' > "$TMP/big.jsonl"
expect_error "token id out of range" "input_ids\[2\]" $B forward --load "$G/llama_tiny" --input "$TMP/big.jsonl" --output "$TMP/x11"
echo '{"input_ids": [1, 2' > "$TMP/broken.jsonl"
expect_error "broken JSON line" "broken.jsonl:1" $B forward --load "$G/llama_tiny" --input "$TMP/broken.jsonl" --output "$TMP/x12"
expect_error "--save over a checkpoint" "already holds a checkpoint" $B convert --load "$G/llama_tiny" --save "$TMP/llama_tiny.mc"
expect_error "--save over an HF directory" "already holds a checkpoint" $B convert --load "$TMP/llama_tiny.mc" --save "$TMP/llama_tiny.hf"
# a model Hugging Face has no class for
run $B train $TINY --train-iters 1 --position-embedding-type rope --save "$TMP/rope_ln" \
  && expect_error "no HF equivalent" "RoPE without --swiglu" $B convert --load "$TMP/rope_ln" --save "$TMP/x13"
finish
