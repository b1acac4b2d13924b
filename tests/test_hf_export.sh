#!/bin/sh
# Models trained by megatron-c, exported with `convert --save-format hf`,
# load in Hugging Face transformers (from_pretrained: no missing or
# unexpected keys) and give megatron-c's logits and last hidden states
# (tests/hf_export_check.py): GPT-2, Llama, a post-norm BERT pretrained
# with and without the binary head (BertForPreTraining, BertForMaskedLM;
# with token types and padding), its encoder alone (BertModel) and a
# fine-tuned classifier (BertForSequenceClassification). Needs python3 with torch and transformers;
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

# BERT, post-norm (Hugging Face's layout): pretrained, then fine-tuned
$B preprocess --input "$MT_DATA_DIR/tinyshakespeare/input.txt" --output-prefix "$TMP/ts" \
  --tokenizer-type BertWordPieceLowerCase --split-sentences > "$TMP/log" 2>&1 || { cat "$TMP/log"; exit 99; }
BERT="--model bert --post-layernorm --data-path $TMP/ts_text_sentence --tokenizer-type BertWordPieceLowerCase \
 --num-layers 2 --hidden-size 32 --num-attention-heads 4 --seq-length 32 --micro-batch-size 4 \
 --train-iters 5 --lr 1e-3 --eval-iters 0 --no-progress"
printf '%s\n' '{"input_ids": [101, 7592, 2088, 102, 2129, 2024, 102], "token_type_ids": [0, 0, 0, 0, 1, 1, 1]}' \
  '{"input_ids": [101, 1996, 3899, 102, 103, 2003, 102, 0, 0], "token_type_ids": [0, 0, 0, 0, 1, 1, 1, 0, 0], "attention_mask": [1, 1, 1, 1, 1, 1, 1, 0, 0]}' \
  > "$TMP/bert.jsonl"
SP="$MT_SRCDIR/tests/data/spam_sample.jsonl"
bert_case() { # NAME: convert $TMP/NAME, compare
  $B convert --load "$TMP/$1" --save "$TMP/$1.hf" > "$TMP/log" 2>&1 || { cat "$TMP/log"; fail "$1: convert"; return; }
  $B forward --load "$TMP/$1" --input "$TMP/bert.jsonl" --output "$TMP/$1.fwd" > "$TMP/log" 2>&1 ||
    { cat "$TMP/log"; fail "$1: forward"; return; }
  python3 "$MT_SRCDIR/tests/hf_export_check.py" "$TMP/$1.hf" "$TMP/$1.fwd" "$TMP/bert.jsonl" > "$TMP/log" 2>&1 &&
    pass "$1: $(tail -n1 "$TMP/log")" || { fail "$1: transformers disagrees"; cat "$TMP/log"; }
}
$B train $BERT --save "$TMP/bert_pretraining" > "$TMP/log" 2>&1 && bert_case bert_pretraining ||
  { cat "$TMP/log"; fail "bert: train"; }
$B train $BERT --bert-no-binary-head --save "$TMP/bert_mlm" > "$TMP/log" 2>&1 && bert_case bert_mlm ||
  { cat "$TMP/log"; fail "bert --bert-no-binary-head: train"; }
# the encoder alone: HF's BertModel read back as megatron-c and exported again
python3 -c "import sys, transformers; transformers.BertModel.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])" \
  "$TMP/bert_pretraining.hf" "$TMP/bert_base.src" > "$TMP/log" 2>&1 &&
  $B convert --load "$TMP/bert_base.src" --save "$TMP/bert_base" > "$TMP/log" 2>&1 && bert_case bert_base ||
  { cat "$TMP/log"; fail "BertModel: import"; }
$B finetune --task spam --pretrained-checkpoint "$TMP/bert_pretraining" --train-data "$SP" --valid-data "$SP" \
  --epochs 1 --seq-length 32 --micro-batch-size 16 --lr 1e-3 --save "$TMP/bert_classifier" > "$TMP/log" 2>&1 &&
  bert_case bert_classifier || { cat "$TMP/log"; fail "bert: finetune"; }
finish
