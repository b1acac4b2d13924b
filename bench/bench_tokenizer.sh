#!/bin/sh
# bench_tokenizer.sh: GPT-2 BPE encoding throughput (MB/s, single thread) of
# megatron-c against tiktoken, on the same texts in the same run.
#
#   sh bench/bench_tokenizer.sh [BENCH_BIN] [FILE...]
#
# BENCH_BIN: the built bench/bench_tokenizer (default: ./bench/bench_tokenizer).
# FILEs: default tiny Shakespeare and, when present, WikiText-2's test split
# from shared/data. tiktoken (pip install tiktoken) is built offline from the
# shipped data/gpt2-vocab files; without it only megatron-c is measured.
# Both sides: the whole file encoded at once, best of 5; tiktoken with
# encode_ordinary (no special tokens), which is one thread.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-./bench/bench_tokenizer}
[ $# -gt 0 ] && shift
: "${MT_DATA_DIR:=$here/data}"
export MT_DATA_DIR
if [ $# -eq 0 ]; then
  set -- "$MT_DATA_DIR/tinyshakespeare/input.txt"
  for w in "$here/../shared/data/wikitext-2/test.txt" /work/shared/data/wikitext-2/test.txt; do
    if [ -f "$w" ]; then set -- "$@" "$w"; break; fi
  done
fi
[ -x "$bin" ] || { echo "bench_tokenizer: build $bin first (make bench)"; exit 1; }

out=$(mktemp "${TMPDIR:-/tmp}/mt-bench-tok.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT
"$bin" "$@" > "$out" || exit 1

PY=${PYTHON:-python3}
if ! "$PY" -c 'import tiktoken' 2>/dev/null; then
  echo "tiktoken is not installed (pip install tiktoken): megatron-c only"
  awk '{ printf "%-48s megatron-c %8.2f MB/s (%d tokens)\n", $2, $6, $4 }' "$out"
  exit 0
fi

"$PY" - "$MT_DATA_DIR/gpt2-vocab" "$out" <<'EOF'
import os, sys, time
import tiktoken, tiktoken.load

vocab, results = sys.argv[1], sys.argv[2]
ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
    vocab_bpe_file=os.path.join(vocab, "vocab.bpe"),
    encoder_json_file=os.path.join(vocab, "encoder.json"))
enc = tiktoken.Encoding(
    name="gpt2-offline", explicit_n_vocab=50257, mergeable_ranks=ranks,
    special_tokens={"<|endoftext|>": 50256},
    pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
print("tiktoken %s, single thread; MB = 10^6 bytes; best of 5" % tiktoken.__version__)
print("%-40s %12s %12s %8s  %s" % ("file", "megatron-c", "tiktoken", "ratio", "tokens"))
for line in open(results):
    _, path, nbytes, ntok, _, mbs = line.split()
    text = open(path, "rb").read().decode("utf-8")
    enc.encode_ordinary(text[:1000])  # warm up
    best = 1e30
    for _ in range(5):
        t0 = time.perf_counter()
        ids = enc.encode_ordinary(text)
        best = min(best, time.perf_counter() - t0)
    tk = int(nbytes) / best / 1e6
    same = "same" if len(ids) == int(ntok) else "DIFFERENT (%d vs %d)" % (int(ntok), len(ids))
    print("%-40s %7.2f MB/s %7.2f MB/s %7.2fx  %s %s" % (
        os.path.basename(os.path.dirname(path)) + "/" + os.path.basename(path),
        float(mbs), tk, float(mbs) / tk, ntok, same))
EOF
