#!/bin/sh
# bench_parallel.sh: training-step throughput of the GPT-2 124M shape
# (12 layers, hidden 768, 12 heads, GPT-2 vocabulary, sequence 64,
# micro-batch 4, global batch 8) on 2 MPI ranks x 1 thread as dp=2, tp=2 and
# pp=2, against 1 rank x 2 threads, all in the same invocation. Prints
# tokens/s, the ratio to the single-rank run, and the share of the step
# spent in communication (rank 0's view).
#   sh bench/bench_parallel.sh [path/to/megatron-c] [iterations]
B=${1:-./megatron-c}
IT=${2:-6}
: "${MPIEXEC:=mpiexec}"
export HYDRA_LAUNCHER=${HYDRA_LAUNCHER:-fork}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ARGS="--tokenizer-type GPT2BPETokenizer --num-layers 12 --hidden-size 768 --num-attention-heads 12
 --seq-length 64 --max-position-embeddings 1024 --micro-batch-size 4 --global-batch-size 8 --lr 1e-4
 --train-iters $IT --log-interval $((IT / 2)) --eval-iters 0 --sample-tokens 0 --no-progress --split 100,0,0"
DATA=${MT_DATA_DIR:-$(dirname "$0")/../data}/tinyshakespeare/input.txt
echo "bench_parallel: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}, $IT iterations each, the second half timed"
run() { # NAME NP THREADS ARGS...
  name=$1; np=$2; th=$3; shift 3
  if [ "$np" -eq 1 ]; then OMP_NUM_THREADS=$th $B train $ARGS --data-path "$DATA" "$@" --log-json "$TMP/$name.jsonl" > "$TMP/$name.log" 2>&1
  else OMP_NUM_THREADS=$th $MPIEXEC -n "$np" $B train $ARGS --data-path "$DATA" "$@" --log-json "$TMP/$name.jsonl" > "$TMP/$name.log" 2>&1; fi || { tail "$TMP/$name.log"; exit 1; }
  tail -n 1 "$TMP/$name.jsonl"
}
field() { sed -n "s/.*\"$2\": \([^,}]*\).*/\1/p" "$1" | tail -n 1; }
run serial 1 2 > /dev/null
base=$(field "$TMP/serial.jsonl" tokens_per_sec)
printf '%-28s %10s %8s %10s %12s\n' layout tokens/s ratio comm-share sent-MB/iter
printf '%-28s %10.1f %8.2f %10s %12s\n' "1 rank x 2 threads" "$base" 1 - -
for cfg in "dp=2:" "tp=2:--tensor-model-parallel-size 2" "pp=2:--pipeline-model-parallel-size 2"; do
  name=${cfg%%:*}; extra=${cfg#*:}
  run "$name" 2 1 $extra > /dev/null
  f="$TMP/$name.jsonl"
  tps=$(field "$f" tokens_per_sec); ms=$(field "$f" ms_per_iter); cms=$(field "$f" comm_ms); mb=$(field "$f" comm_mb)
  awk -v n="2 ranks x 1 thread, $name" -v t="$tps" -v b="$base" -v ms="$ms" -v c="$cms" -v mb="$mb" \
    'BEGIN { printf "%-28s %10.1f %8.2f %9.1f%% %12.1f\n", n, t, t / b, 100 * c / ms, mb }'
done
