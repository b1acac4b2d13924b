#!/bin/sh
# Models trained by megatron-c, exported with `convert --save-format hf`,
# load in Hugging Face transformers (from_pretrained: no missing or
# unexpected keys) and give megatron-c's logits and last hidden states
# (tests/hf_export_check.py). Needs python3 with torch and transformers;
# skips without them (CI has neither; tests/test_hf.c and test_convert.sh
# check the same mapping against committed goldens).
. "$(dirname "$0")/common.sh"
B=$MT_BIN
python3 -c "import torch, transformers, safetensors" 2>/dev/null || { echo "skip: no python3 with torch and transformers"; exit 77; }
LLAMA="--position-embedding-type rope --normalization RMSNorm --swiglu --group-query-attention \
 --num-query-groups 2 --untie-embeddings-and-output-weights --disable-bias-linear --ffn-hidden-size 48"
printf '{"input_ids": [82, 79, 77, 69, 79, 58, 32, 87]}\n{"input_ids": [74, 85, 76, 73, 69, 84, 58, 10, 255, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24]}\n' > "$TMP/in.jsonl"
for m in gpt2 llama; do
  flags=""; [ $m = llama ] && flags=$LLAMA
  $B train $TINY --train-iters 5 $flags --save "$TMP/$m" > "$TMP/log" 2>&1 || { cat "$TMP/log"; fail "$m: train"; continue; }
  $B convert --load "$TMP/$m" --save "$TMP/$m.hf" > "$TMP/log" 2>&1 || { cat "$TMP/log"; fail "$m: convert"; continue; }
  $B forward --load "$TMP/$m" --input "$TMP/in.jsonl" --output "$TMP/$m.fwd" > "$TMP/log" 2>&1 || { cat "$TMP/log"; fail "$m: forward"; continue; }
  python3 "$MT_SRCDIR/tests/hf_export_check.py" "$TMP/$m.hf" "$TMP/$m.fwd" "$TMP/in.jsonl" > "$TMP/log" 2>&1 \
    && pass "$m: $(tail -n1 "$TMP/log")" || { fail "$m: transformers disagrees"; cat "$TMP/log"; }
done
finish
