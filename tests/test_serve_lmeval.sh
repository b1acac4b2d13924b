#!/bin/sh
# lm-evaluation-harness against `megatron-c serve`: its local-completions
# model (log-likelihoods through echo + logprobs, the tokenizer through the
# server's /tokenize) on a small LAMBADA-style task file must score the
# accuracy `megatron-c eval --task lambada --strict-lambada` gives on the
# same lines. Skips where lm-eval cannot be imported
# (pip install "lm-eval[api]").
. "$(dirname "$0")/common.sh"
B=$MT_BIN
python3 -c "import lm_eval, tenacity, datasets" 2> /dev/null || { echo "skip: no lm-evaluation-harness (pip install 'lm-eval[api]')"; exit 77; }
command -v lm_eval > /dev/null || { echo "skip: no lm_eval command"; exit 77; }
SPID=
trap '[ -n "$SPID" ] && kill "$SPID" 2>/dev/null; rm -rf "$TMP"' EXIT

# The model learns five sentences, so that it gets some lines right: the
# task holds them, one of them with a wrong last word, and four LAMBADA
# test passages (CC BY 4.0, see ../shared/data/PROVENANCE.md) that it gets
# wrong, so the accuracy is neither 0 nor 1.
python3 - "$TMP/syn.txt" "$TMP/lam.jsonl" <<'PY' || exit 99
import json, sys
S = ["the cat sat on the mat.", "a dog ran to the park.", "my friend drank a cup of tea.",
     "the king rode a white horse.", "we sailed across the sea."]
x = 1
with open(sys.argv[1], "w") as f:
    for i in range(3000):
        x = (x * 1103515245 + 12345) % 2**31  # the order fixed on every machine
        f.write(S[(x >> 16) % 5] + " ")
lines = [s[:-1] for s in S] + ["the cat sat on the moon"] + [
    "\u201cHappy to comply,\u201d I said.\n\u201cSo, you\u2019re Ben. Ben what?\u201d \n\u201cNo, I\u2019m Matt\u2026Matt Casale. I live down the street.\u201d\n\u201cWasn\u2019t he just calling you \u2018Ben\u2019 just now?\u201d\n\u201cNo, \u2018Bean\u2019\u2014it\u2019s a nickname",
    "\u201cis that a yes yes, or a Nicky yes?\u201d\n\u201cit's a no.\u201d\n\u201cok. good. so the plan\u2026?\u201d\n\u201cbefore all that, we need to go to the florist.\u201d\ni took a few hits of wine. \u201cwe have to go to the florist",
    "\u201cIt\u2019s right over there,\u201d Mindy said. \u201cIt goes to a hot springs.\u201d She pointed. \u201cIt said it was a mile.\u201d\n\u201cPerfect.\u201d\n\u201cIt said to be \u2018Bear Aware.\u2019 Do we have any bear spray?\u201d\n\u201cUh, that would be a no",
    "He laughed.\n\tSerena laughed, too, \u201cOh, well\u2026make sure you don\u2019t do a pit stop to Singapore or something\u2026\u201d\n\t\u201cI won\u2019t,\u201d He said, \u201cAnd\u2026don\u2019t worry, we\u2019ll find each other.\u201d He went on, \u201cI love you, Serena",
]
with open(sys.argv[2], "w") as f:
    for t in lines:
        f.write(json.dumps({"text": t}) + "\n")
PY
$B train --num-layers 2 --hidden-size 32 --num-attention-heads 4 --seq-length 96 --micro-batch-size 4 \
  --lr 1e-2 --lr-warmup-iters 2 --lr-decay-iters 60 --train-iters 60 --log-interval 20 --eval-interval 0 \
  --sample-tokens 0 --no-progress --tokenizer-type GPT2BPETokenizer \
  --data-path "$TMP/syn.txt" --save "$TMP/ck" > "$TMP/t.log" 2>&1 \
  || { cat "$TMP/t.log"; exit 99; }
$B serve --load "$TMP/ck" --port 0 --quiet > "$TMP/serve.log" 2>&1 &
SPID=$!
i=0
while [ $i -lt 300 ] && ! grep -q "listening on" "$TMP/serve.log" && kill -0 "$SPID" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
PORT=$(sed -n 's|.*http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$TMP/serve.log")
[ -n "$PORT" ] || { cat "$TMP/serve.log"; exit 99; }

mkdir -p "$TMP/tasks"
cat > "$TMP/tasks/lambada_mini.yaml" <<EOF2
task: lambada_mini
dataset_path: json
dataset_kwargs:
  data_files:
    test: $TMP/lam.jsonl
test_split: test
output_type: loglikelihood
doc_to_text: "{{text.split(' ')[:-1]|join(' ')}}"
doc_to_target: "{{' '+text.split(' ')[-1]}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
EOF2

$B eval --load "$TMP/ck" --task lambada --strict-lambada --data "$TMP/lam.jsonl" --no-progress \
  --log-json "$TMP/ev.json" > "$TMP/ev.out" 2>&1 || { cat "$TMP/ev.out"; fail "megatron-c eval"; finish; }
want=$(json_field "$TMP/ev.json" accuracy)
HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 HF_DATASETS_CACHE="$TMP/hf" lm_eval --model local-completions \
  --model_args "base_url=http://127.0.0.1:$PORT/v1/completions,tokenizer_backend=remote,num_concurrent=4,max_retries=1" \
  --tasks lambada_mini --include_path "$TMP/tasks" --output_path "$TMP/lmout" > "$TMP/lm.log" 2>&1 \
  || { tail -30 "$TMP/lm.log"; fail "lm_eval run"; finish; }
got=$(python3 -c "
import glob, json
r = json.load(open(sorted(glob.glob('$TMP/lmout/**/results_*.json', recursive=True))[-1]))
print(r['results']['lambada_mini']['acc,none'])")
echo "lm-evaluation-harness acc $got; megatron-c eval accuracy $want ($(json_field "$TMP/ev.json" correct)/$(json_field "$TMP/ev.json" total))"
awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; exit !(d < 1e-9 && d > -1e-9) }' \
  && pass "lm-eval's accuracy $got equals megatron-c eval's $want" || fail "lm-eval acc $got != eval $want"
awk -v a="$want" 'BEGIN { exit !(a > 0 && a < 1) }' && pass "the accuracy is neither 0 nor 1" || fail "accuracy $want"
kill -TERM "$SPID"; wait "$SPID"; SPID=
finish
