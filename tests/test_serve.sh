#!/bin/sh
# megatron-c serve: every endpoint with real HTTP clients (curl and
# Python's http.client through tests/serve_client.py), Megatron's PUT /api
# checks, OpenAI-style completions (echo log-probabilities against
# `forward`, seeded text against `generate`), limits, malformed input,
# concurrency, a stalled client, and SIGTERM with a request in flight.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
command -v curl > /dev/null || { echo "skip: no curl"; exit 77; }
command -v python3 > /dev/null || { echo "skip: no python3"; exit 77; }
CLIENT="python3 $MT_SRCDIR/tests/serve_client.py"
SPID=
trap '[ -n "$SPID" ] && kill "$SPID" 2>/dev/null; rm -rf "$TMP"' EXIT

$B train --num-layers 2 --hidden-size 32 --num-attention-heads 4 --seq-length 64 --micro-batch-size 4 \
  --lr 3e-3 --lr-warmup-iters 2 --lr-decay-iters 40 --train-iters 40 --log-interval 10 --eval-interval 0 \
  --sample-tokens 0 --no-progress --tokenizer-type GPT2BPETokenizer \
  --data-path "$MT_DATA_DIR/tinyshakespeare/input.txt" --save "$TMP/ck" > "$TMP/t.log" 2>&1 \
  || { cat "$TMP/t.log"; exit 99; }

# start_server LOG FLAGS...: starts serve on a free port; sets SPID, PORT, U
start_server() {
  log=$1; shift
  $B serve --load "$TMP/ck" --port 0 "$@" > "$log" 2> "$log.err" &
  SPID=$!
  i=0
  while [ $i -lt 300 ] && ! grep -q "listening on" "$log" && kill -0 "$SPID" 2>/dev/null; do
    sleep 0.1; i=$((i + 1))
  done
  PORT=$(sed -n 's|.*http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$log")
  [ -n "$PORT" ] || { echo "the server did not start"; cat "$log" "$log.err"; exit 99; }
  U=http://127.0.0.1:$PORT
}
# req METHOD PATH BODY: the body of the answer in $TMP/r, its status in $TMP/s
req() { curl -s -o "$TMP/r" -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' "$U$2" ${3:+-d "$3"} > "$TMP/s"; }
status() { cat "$TMP/s"; }
# expect_status NAME CODE PATTERN METHOD PATH BODY
expect_status() {
  name=$1; code=$2; pat=$3; shift 3
  req "$@"
  if [ "$(status)" = "$code" ] && grep -q -- "$pat" "$TMP/r"; then pass "$name: $code $(head -c 120 "$TMP/r")"
  else fail "$name: status $(status), body $(head -c 300 "$TMP/r")"; fi
}
# py EXPR: evaluates EXPR with j = the JSON answer in $TMP/r
py() { python3 -c "import json,sys; j=json.load(open('$TMP/r')); print($1)"; }

start_server "$TMP/serve.log" --max-request-bytes 65536 --served-model-name tiny-gpt
grep -q "listening on http://127.0.0.1:" "$TMP/serve.log" && pass "loopback by default" || fail "not on 127.0.0.1"

# ---- the small endpoints ----
expect_status "GET /health" 200 '"status": "ok"' GET /health
expect_status "GET /v1/models" 200 '"id": "tiny-gpt"' GET /v1/models
[ "$(py "j['data'][0]['max_model_len']")" = 64 ] && pass "/v1/models: max_model_len 64" || fail "max_model_len $(cat "$TMP/r")"
expect_status "GET /tokenizer_info" 200 '"eos_token": "<|endoftext|>"' GET /tokenizer_info
expect_status "POST /tokenize" 200 '"tokens": \[5303, 50256, 8117\]' POST /tokenize '{"prompt": "hi<|endoftext|>there"}'
expect_status "POST /detokenize" 200 '"prompt": "hi<|endoftext|>there"' POST /detokenize '{"tokens": [5303, 50256, 8117]}'

# ---- Megatron's PUT /api ----
expect_status "PUT /api, the reference's curl example" 200 '"text": \["Hello world' PUT /api \
  '{"prompts":["Hello world"], "tokens_to_generate":1}'
req PUT /api '{"prompts": ["ROMEO:", "JULIET: O"], "tokens_to_generate": 5, "top_k": 1, "logprobs": true}'
[ "$(status)" = 200 ] && [ "$(py "[len(s) for s in j['segments']]")" = "[8, 11]" ] \
  && [ "$(py "[len(l) for l in j['logprobs']]")" = "[7, 10]" ] \
  && [ "$(py "j['text'][0].startswith('ROMEO:') and j['text'][1].startswith('JULIET: O')")" = True ] \
  && [ "$(py "''.join(j['segments'][1]) == j['text'][1]")" = True ] \
  && pass "PUT /api: two prompts, text = prompt + 5 tokens, segments join to the text, one logprob per token after the first" \
  || fail "PUT /api answer: $(status) $(cat "$TMP/r")"
req PUT /api '{"prompts": ["ROMEO: I will"], "tokens_to_generate": 0, "logprobs": true}'
[ "$(py "(len(j['segments'][0]), len(j['logprobs'][0]), all(x < 0 for x in j['logprobs'][0]))")" = "(5, 4, True)" ] \
  && pass "PUT /api tokens_to_generate 0: the prompt scored" || fail "scoring: $(cat "$TMP/r")"
expect_status "/api: no prompts" 400 '"prompts argument required"' PUT /api '{"tokens_to_generate": 3}'
expect_status "/api: prompts not strings" 400 'prompts is not a list of strings' PUT /api '{"prompts": [1]}'
expect_status "/api: 0 tokens without logprobs" 400 'tokens_to_generate=0 implies logprobs' PUT /api \
  '{"prompts": ["a"], "tokens_to_generate": 0}'
expect_status "/api: top-k with top-p" 400 'cannot set both top-k and top-p' PUT /api '{"prompts": ["a"], "top_k": 5, "top_p": 0.5}'
expect_status "/api: temperature 0" 400 'temperature must be a positive number' PUT /api '{"prompts": ["a"], "temperature": 0}'
expect_status "/api: top_k 1001" 400 'top_k must be equal to or greater than 0' PUT /api '{"prompts": ["a"], "top_k": 1001}'
many=$(python3 -c "import json; print(json.dumps({'prompts': ['a'] * 129}))")
expect_status "/api: 129 prompts" 400 'Maximum number of prompts is 128' PUT /api "$many"
expect_status "/api: past the context" 400 "exceeds the model's 64 positions" PUT /api '{"prompts": ["a b"], "tokens_to_generate": 63}'
expect_status "/api: malformed JSON" 400 'the body is not a JSON object' PUT /api '{"prompts": ['

# ---- OpenAI-style completions ----
echo '{"text": "ROMEO: I will not be so"}' > "$TMP/in.jsonl"
$B forward --load "$TMP/ck" --input "$TMP/in.jsonl" --output "$TMP/f.st" > /dev/null || fail "forward"
$CLIENT echo 127.0.0.1 "$PORT" "$TMP/f.st" "ROMEO: I will not be so" && pass "echo vs forward" || fail "echo vs forward"
req POST /v1/completions '{"prompt": "ROMEO:", "max_tokens": 4, "temperature": 0, "logprobs": 2}'
[ "$(py "(j['object'], j['model'], len(j['choices'][0]['logprobs']['tokens']), j['usage'])")" = \
  "('text_completion', 'tiny-gpt', 4, {'prompt_tokens': 3, 'completion_tokens': 4, 'total_tokens': 7})" ] \
  && [ "$(py "all(len(t) == 2 for t in j['choices'][0]['logprobs']['top_logprobs'])")" = True ] \
  && pass "completions: 4 tokens, 2 top log-probabilities each, usage counted" || fail "completions: $(cat "$TMP/r")"
req POST /completions '{"prompt": [[49, 50, 51], "ROMEO:"], "max_tokens": 2, "n": 2, "seed": 3}'
[ "$(py "[c['index'] for c in j['choices']]")" = "[0, 1, 2, 3]" ] && [ "$(py "j['usage']['prompt_tokens']")" = 12 ] \
  && pass "/completions: token-id and text prompts, n 2: four choices" || fail "prompt list: $(cat "$TMP/r")"
req POST /v1/completions '{"prompt": [49, 50, 51], "max_tokens": 1, "echo": true}'
[ "$(py "j['choices'][0]['text'][:3]")" = "RST" ] && pass "a prompt of token ids, echoed" || fail "ids prompt: $(cat "$TMP/r")"
req POST /v1/completions '{"prompt": "ROMEO:", "max_tokens": 8, "temperature": 0, "stop": ["\n"]}'
[ "$(py "(j['choices'][0]['text'], j['choices'][0]['finish_reason'])")" = "('', 'stop')" ] \
  && pass "stop: the greedy newline ends the text before it" || fail "stop: $(cat "$TMP/r")"
# seeded sampling is generate's, token for token
$B generate --load "$TMP/ck" --prompt "ROMEO:" --seed 7 --temperature 0.8 --max-new-tokens 12 > "$TMP/gen" 2>&1
req POST /v1/completions '{"prompt": "ROMEO:", "max_tokens": 12, "temperature": 0.8, "seed": 7, "echo": true, "ignore_eos": true}'
py "j['choices'][0]['text']" > "$TMP/c1"
req PUT /api '{"prompts": ["ROMEO:"], "tokens_to_generate": 12, "temperature": 0.8, "random_seed": 7}'
py "j['text'][0]" > "$TMP/c2"
cmp -s "$TMP/gen" "$TMP/c1" && cmp -s "$TMP/gen" "$TMP/c2" && pass "seed 7, temperature 0.8: generate, /v1/completions and /api write the same text" \
  || fail "seeded texts differ: $(cat "$TMP/gen" "$TMP/c1" "$TMP/c2")"
expect_status "completions: no prompt" 400 'prompt is required' POST /v1/completions '{"max_tokens": 3}'
expect_status "completions: max_tokens over the limit" 400 'max_tokens must be an integer in \[0, 64\]' POST /v1/completions '{"prompt": "a", "max_tokens": 1000}'
expect_status "completions: past the context" 400 "maximum context length is 64 tokens" POST /v1/completions '{"prompt": "a b c", "max_tokens": 62}'
expect_status "completions: a token id outside the vocabulary" 400 'prompt\[0\]\[1\] is not a token id' POST /v1/completions '{"prompt": [1, 60000]}'
expect_status "completions: stream" 400 'stream is not supported' POST /v1/completions '{"prompt": "a", "stream": true}'
expect_status "completions: malformed JSON" 400 '"type": "invalid_request_error"' POST /v1/completions '{"prompt": "a",'
expect_status "completions: not an object" 400 'not an object' POST /v1/completions '[1, 2]'
expect_status "completions: empty body" 400 'it is empty' POST /v1/completions ''
expect_status "unknown path" 404 'no endpoint /v2/chat' GET /v2/chat
curl -s -D "$TMP/h" -o /dev/null -X DELETE "$U/api"
grep -q "405" "$TMP/h" && grep -qi "^Allow: PUT" "$TMP/h" && pass "DELETE /api: 405 with Allow: PUT" || fail "405: $(cat "$TMP/h")"
python3 -c "import json; print(json.dumps({'prompt': 'x' * 70000}))" > "$TMP/big.json"
code=$(curl -s -o "$TMP/r" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$TMP/big.json" "$U/v1/completions")
[ "$code" = 413 ] && grep -q "exceeds the limit of 65536" "$TMP/r" && pass "a 70 kB body: 413" || fail "big body: $code $(cat "$TMP/r")"
expect_status "still serving after the bad requests" 200 '"status": "ok"' GET /health

# ---- many clients, a stalled client, raw bad requests (http.client and sockets) ----
$CLIENT concurrency 127.0.0.1 "$PORT" 16 4 || fail "concurrency"
$CLIENT slow 127.0.0.1 "$PORT" || fail "stalled and malformed clients"
grep -q '127.0.0.1 "POST /v1/completions" 200' "$TMP/serve.log" && pass "access log on stdout" || fail "no access log"

# ---- SIGTERM with a request in flight: it is answered, then a clean exit ----
long=$(python3 -c "import json; print(json.dumps({'prompts': ['ROMEO:'] * 16, 'tokens_to_generate': 30}))")
curl -s -o "$TMP/long" -w '%{http_code}' -X PUT "$U/api" -d "$long" > "$TMP/long.s" &
CPID=$!
sleep 0.5
kill -TERM "$SPID"
wait "$CPID"
wait "$SPID"; rc=$?
SPID=
[ "$rc" = 0 ] && pass "SIGTERM: exit status 0" || fail "SIGTERM: exit status $rc"
[ "$(cat "$TMP/long.s")" = 200 ] && python3 -c "import json; assert len(json.load(open('$TMP/long'))['text']) == 16" \
  && pass "the request in flight at SIGTERM was answered (16 prompts, 30 sampled tokens each)" || fail "in-flight request: $(cat "$TMP/long.s") $(head -c 200 "$TMP/long")"
grep -q "stopped after" "$TMP/serve.log" && pass "$(grep 'stopped after' "$TMP/serve.log")" || fail "no stop line"

# ---- flags ----
expect_error "--port 70000" "is not a port" $B serve --load "$TMP/ck" --port 70000
expect_error "no --load" "serve needs --load" $B serve
expect_error "a missing checkpoint" "no checkpoint" $B serve --load "$TMP/none"
start_server "$TMP/s2.log" --quiet --max-connections 2
expect_error "the port in use" "choose another with --port" $B serve --load "$TMP/ck" --port "$PORT"
$CLIENT full 127.0.0.1 "$PORT" 2 || fail "--max-connections 2"
kill -INT "$SPID"; wait "$SPID"; rc=$?; SPID=
[ "$rc" = 0 ] && pass "SIGINT: exit status 0" || fail "SIGINT: exit status $rc"
finish
