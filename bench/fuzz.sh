#!/bin/sh
# bench/fuzz.sh [SECONDS] [TARGET...]: builds the libFuzzer targets (fuzz/,
# one per reader of untrusted bytes) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer in a build directory of their own, and runs
# each for SECONDS (default 60) from a corpus of valid files made here
# (kept in $MT_FUZZ_DIR/corpus/TARGET between runs, with anything new the
# fuzzer found). Exit status 0 when no target crashed; a crash leaves its
# input as $MT_FUZZ_DIR/crash-TARGET-* and the fuzzer's report on stdout.
#
#   MT_FUZZ_DIR   work directory (default /tmp/megatron-c-fuzz)
#   CC            the clang to use (default clang)
# Exit 77 when no clang that links libFuzzer is found (tests/test_fuzz.sh
# runs a short smoke of every target under make check).
set -u
SECONDS_EACH=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-"ckpt indexed json safetensors vocab tokenize http"}
SRC=$(cd "$(dirname "$0")/.." && pwd)
W=${MT_FUZZ_DIR:-/tmp/megatron-c-fuzz}
CC=${CC:-clang}
say() { echo "fuzz.sh: $*"; }

printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return (int)(d && n) * 0; }\n' > "${TMPDIR:-/tmp}/mt-fuzz-probe.$$.c"
if ! $CC -fsanitize=fuzzer,address,undefined "${TMPDIR:-/tmp}/mt-fuzz-probe.$$.c" -o "${TMPDIR:-/tmp}/mt-fuzz-probe.$$" 2>/dev/null; then
  rm -f "${TMPDIR:-/tmp}/mt-fuzz-probe.$$"*
  say "$CC cannot link a libFuzzer target (Debian: apt-get install clang libfuzzer-14-dev)"; exit 77
fi
rm -f "${TMPDIR:-/tmp}/mt-fuzz-probe.$$"*

# the build: configure once, then make only the targets. A source tree
# configured in place (./configure && make, as CI does) cannot host another
# build directory: then the sources (git's view of them) are copied first.
mkdir -p "$W/build" || exit 99
TREE=$SRC
if [ -f "$SRC/config.status" ]; then
  command -v git > /dev/null && git -C "$SRC" rev-parse --git-dir > /dev/null 2>&1 ||
    { say "$SRC is configured in place and is not a git checkout: run from a clean tree"; exit 99; }
  TREE="$W/src"
  rm -rf "$TREE" && mkdir -p "$TREE" &&
    (cd "$SRC" && git ls-files -co --exclude-standard | tar -cf - -T -) | (cd "$TREE" && tar -xf -) &&
    (cd "$TREE" && autoreconf -fi > autoreconf.log 2>&1) || { say "could not copy $SRC"; exit 99; }
  rm -f "$W/build/Makefile"
fi
if [ ! -f "$W/build/Makefile" ] || [ "$TREE/configure" -nt "$W/build/Makefile" ]; then
  say "configuring $W/build"
  (cd "$W/build" && "$TREE/configure" CC="$CC" CFLAGS="-g -O1" --enable-fuzz --without-mpi --without-cuda \
     --disable-openmp > configure.log 2>&1) || { cat "$W/build/configure.log"; exit 99; }
fi
say "building"
make -C "$W/build" -j2 fuzz > "$W/build/make.log" 2>&1 || { tail -n 30 "$W/build/make.log"; exit 99; }

# seed corpora: valid inputs of each reader, made by the program itself
B="$W/build/megatron-c"
make -C "$W/build" -j2 megatron-c >> "$W/build/make.log" 2>&1 || { tail -n 30 "$W/build/make.log"; exit 99; }
D="$SRC/data"
S="$W/seed"
if [ ! -d "$S" ]; then
  say "making the seed corpora"
  mkdir -p "$S" && head -c 20000 "$D/tinyshakespeare/input.txt" > "$S/text.txt"
  T="--data-path $S/text.txt --tokenizer-type CharLevel --num-layers 1 --hidden-size 8 --num-attention-heads 2 \
   --seq-length 8 --micro-batch-size 2 --train-iters 1 --eval-iters 0 --lr 1e-3 --sample-tokens 0 --no-progress"
  $B train $T --save "$S/ck" > /dev/null 2>&1 && $B convert --load "$S/ck" --save "$S/hf" > /dev/null 2>&1 &&
    $B preprocess --input "$S/text.txt" --output-prefix "$S/ds" --tokenizer-type CharLevel > /dev/null 2>&1 ||
    { say "could not make the seeds"; rm -rf "$S"; exit 99; }
fi
seed() { # TARGET DIR: fills the corpus directory
  case $1 in
    ckpt) { printf '\000'; cat "$S/ck/iter_0000001/model_optim_rng.mtc"; } > "$2/file"
          f="$S/ck/iter_0000001/model_optim_rng.mtc" # its metadata block: u64 length at 16, text at 24
          { printf '\001'; tail -c +25 "$f" | head -c "$(od -An -tu8 -j16 -N8 "$f" | tr -d ' ')" |
            sed 's/^iteration=.*/iteration=3/'; } > "$2/meta" ;;
    indexed) { printf '\000\000'; cat "$S/ds_text_document.idx"; } > "$2/idx" ;;
    json) cp "$S/hf/config.json" "$2/config.json"; printf '{"a": [1, 2.5e-3, "\\u00e9", true, null, {"b": {}}]}' > "$2/mix" ;;
    safetensors) cp "$S/hf/model.safetensors" "$2/model" ;;
    vocab) { printf '\002'; head -c 3000 "$D/gpt2-vocab/encoder.json"; printf '}\000'; head -n 200 "$D/gpt2-vocab/vocab.bpe"; } > "$2/bpe"
           { printf '\001'; head -n 400 "$D/bert-vocab/vocab.txt"; } > "$2/wordpiece" ;;
    tokenize) head -c 2000 "$S/text.txt" > "$2/text"; printf 'caf\303\251 \344\270\255 \377\376 x' > "$2/mixed" ;;
    http) printf '\001PUT /api?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\nExpect: 100-continue' > "$2/put"
          printf '\000POST http://h/v1/completions HTTP/1.1\r\ncontent-length:  7 \r\nTransfer-Encoding: identity\r\n\r\n' > "$2/post" ;;
  esac
}

status=0
for t in $TARGETS; do
  C="$W/corpus/$t"
  [ -d "$C" ] || { mkdir -p "$C" && seed "$t" "$C"; }
  say "$t: ${SECONDS_EACH} s"
  # in runs of at most 20 s: a refused input leaks what the reader held
  # (fuzz/fuzz_common.h), so a fresh process keeps the memory bounded; the
  # corpus carries what each run found to the next
  left=$SECONDS_EACH runs=0 rc=0
  : > "$W/$t.log"
  while [ "$left" -gt 0 ] && [ $rc -eq 0 ]; do
    chunk=$(( left < 20 ? left : 20 ))
    ASAN_OPTIONS=detect_leaks=0 MT_DATA_DIR="$D" "$W/build/fuzz/fuzz_$t" -max_total_time="$chunk" -detect_leaks=0 \
      -close_fd_mask=2 -rss_limit_mb=2048 -timeout=10 -max_len=65536 -artifact_prefix="$W/crash-$t-" \
      -print_final_stats=1 "$C" > "$W/$t.chunk.log" 2>&1
    rc=$?
    cat "$W/$t.chunk.log" >> "$W/$t.log"
    runs=$(( runs + $(sed -n 's/^stat::number_of_executed_units: *//p' "$W/$t.chunk.log" | tail -n 1 | grep . || echo 0) ))
    left=$(( left - chunk ))
  done
  cov=$(grep -o 'cov: [0-9]*' "$W/$t.log" | tail -n 1)
  if [ $rc -eq 0 ]; then
    say "$t: ok, ${runs:-?} inputs, $cov, corpus $(ls "$C" | wc -l) files"
  else
    say "$t: FAILED (status $rc)"; grep -A 30 "ERROR\|==ERROR\|runtime error\|deadly signal\|Timeout" "$W/$t.log" | head -n 60
    status=1
  fi
done
exit $status
