#!/bin/sh
# bench_wordpiece.sh: BERT WordPiece encoding throughput (MB/s, single
# thread) of megatron-c against Hugging Face transformers' BertTokenizer
# (Rust tokenizers, what transformers 5 calls BertTokenizer and
# BertTokenizerFast) and its Python BertTokenizerLegacy, on the same texts in
# the same run, uncased vocabulary.
#
#   sh bench/bench_wordpiece.sh [BENCH_BIN] [FILE...]
#
# BENCH_BIN: the built bench/bench_tokenizer (default: ./bench/bench_tokenizer).
# FILEs: default the SST-2 training set and WikiText-2's test split from
# shared/data, else tiny Shakespeare. Each side encodes the whole file at once,
# best of 3 (the Python tokenizer: once); the Rust one with
# RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-./bench/bench_tokenizer}
[ $# -gt 0 ] && shift
: "${MT_DATA_DIR:=$here/data}"
export MT_DATA_DIR
if [ $# -eq 0 ]; then
  for d in "$here/../shared/data" /work/shared/data; do
    if [ -f "$d/sst2/train.tsv" ]; then set -- "$d/sst2/train.tsv" "$d/wikitext-2/test.txt"; break; fi
  done
  [ $# -eq 0 ] && set -- "$MT_DATA_DIR/tinyshakespeare/input.txt"
fi
[ -x "$bin" ] || { echo "bench_wordpiece: build $bin first (make bench)"; exit 1; }

out=$(mktemp "${TMPDIR:-/tmp}/mt-bench-wp.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT
"$bin" --repeat 3 --type BertWordPieceLowerCase "$@" > "$out" 2>/dev/null || exit 1

PY=${PYTHON:-python3}
if ! "$PY" -c 'import transformers' 2>/dev/null; then
  echo "transformers is not installed (pip install transformers): megatron-c only"
  awk '{ printf "%-48s megatron-c %8.2f MB/s (%d tokens)\n", $2, $6, $4 }' "$out"
  exit 0
fi

RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false "$PY" - "$MT_DATA_DIR/bert-vocab/vocab.txt" "$out" <<'PYEOF' 2>&1 | grep -v "PyTorch was not found"
import os, sys, time
import transformers
from transformers import BertTokenizer
from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

vocab, results = sys.argv[1], sys.argv[2]
rust = BertTokenizer(vocab, do_lower_case=True)
slow = BertTokenizerLegacy(vocab, do_lower_case=True)
print("transformers %s, single thread; MB = 10^6 bytes" % transformers.__version__)
print("%-22s %11s %11s %11s %8s %8s  %s" % ("file", "megatron-c", "HF Rust", "HF Python",
                                           "vs Rust", "vs Py", "tokens"))
def best(f, n):
    b = 1e30
    for _ in range(n):
        t0 = time.perf_counter(); ids = f(); b = min(b, time.perf_counter() - t0)
    return b, ids
for line in open(results):
    _, path, nbytes, ntok, _, mbs = line.split()
    text = open(path, "rb").read().decode("utf-8", errors="replace")
    mb = int(nbytes) / 1e6
    tr, ids_r = best(lambda: rust.encode(text, add_special_tokens=False), 3)
    ts, ids_s = best(lambda: slow.encode(text, add_special_tokens=False), 1)
    same = "same" if len(ids_r) == int(ntok) else "DIFFERENT (%s vs %d)" % (ntok, len(ids_r))
    legacy = "" if ids_s == ids_r else " (legacy Python: %d ids, differs)" % len(ids_s)
    print("%-22s %6.2f MB/s %6.2f MB/s %6.2f MB/s %7.1fx %7.1fx  %s %s%s" % (
        os.path.basename(os.path.dirname(path)) + "/" + os.path.basename(path),
        float(mbs), mb / tr, mb / ts, float(mbs) / (mb / tr), float(mbs) / (mb / ts),
        ntok, same, legacy))
PYEOF
