#!/bin/sh
# bench_memory.sh: memory per rank of the GPT-2 124M shape (12 layers,
# hidden 768, 12 heads, GPT-2 vocabulary, sequence 256, micro-batch 4) for
# fp32 / bf16, flash attention (the default) / unfused, activation
# recompute off / selective / full, and the distributed optimizer off / on
# (2 data-parallel ranks), all in the same
# invocation: the backend's measured peak (rank 0; every allocation of
# parameters, gradients, optimizer state, activations and scratch), the
# part allocated before the first step, the process's resident set, and the
# time per iteration (the step's cost of each choice).
#   sh bench/bench_memory.sh [path/to/megatron-c] [iterations]
# bf16 stores its activations in f32 buffers in this version (the rounding
# is the half type's; doc/numerics.md), so its column equals fp32's but for
# the GEMMs' scratch.
B=${1:-./megatron-c}
IT=${2:-3}
: "${MPIEXEC:=mpiexec}"
export HYDRA_LAUNCHER=${HYDRA_LAUNCHER:-fork}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
DATA=${MT_DATA_DIR:-$(dirname "$0")/../data}/tinyshakespeare/input.txt
ARGS="--tokenizer-type GPT2BPETokenizer --num-layers 12 --hidden-size 768 --num-attention-heads 12
 --seq-length 256 --max-position-embeddings 1024 --micro-batch-size 4 --global-batch-size 8 --lr 1e-4
 --train-iters $IT --log-interval 1 --eval-iters 0 --sample-tokens 0 --no-progress --split 100,0,0
 --data-path $DATA"
echo "bench_memory: GPT-2 124M shape, sequence 256, micro-batch 4, global batch 8, $IT iterations each"
printf '%-44s %12s %12s %12s %10s\n' configuration "peak MB" "at start MB" "RSS MB" "ms/iter"
run() { # NAME NP FLAGS...
  name=$1; np=$2; shift 2
  if [ "$np" -eq 1 ]; then OMP_NUM_THREADS=2 $B train $ARGS "$@" --log-json "$TMP/j" > "$TMP/log" 2>&1
  else OMP_NUM_THREADS=1 $MPIEXEC -n "$np" $B train $ARGS "$@" --log-json "$TMP/j" > "$TMP/log" 2>&1; fi \
    || { printf '%-44s failed: %s\n' "$name" "$(grep error "$TMP/log" | head -n 1)"; return; }
  line=$(grep "memory peak" "$TMP/log")
  peak=$(echo "$line" | sed -n 's/.*(rank 0): \([0-9.]*\) MB allocated.*/\1/p')
  start=$(echo "$line" | sed -n 's/.*(\([0-9.]*\) MB at start).*/\1/p')
  rss=$(echo "$line" | sed -n 's/.*resident set \([0-9.]*\) MB.*/\1/p')
  ms=$(sed -n 's/.*"ms_per_iter": \([^,}]*\).*/\1/p' "$TMP/j" | tail -n 1)
  printf '%-44s %12s %12s %12s %10s\n' "$name" "$peak" "$start" "$rss" "$ms"
}
FULL="--recompute-granularity full --recompute-method uniform --recompute-num-layers 1"
for prec in fp32 bf16; do
  P=""; [ $prec = bf16 ] && P=--bf16
  run "$prec" 1 $P
  run "$prec, unfused attention" 1 $P --attention-backend unfused
  run "$prec, unfused attention, selective recomp." 1 $P --attention-backend unfused --recompute-granularity selective
  run "$prec, full recompute (uniform 1)" 1 $P $FULL
done
if command -v "$MPIEXEC" > /dev/null 2>&1; then
  run "fp32, dp=2" 2
  run "fp32, dp=2, distributed optimizer" 2 --use-distributed-optimizer
  run "bf16, dp=2, distributed optimizer, full rec." 2 --bf16 --use-distributed-optimizer $FULL
else echo "(no $MPIEXEC: the distributed-optimizer rows need 2 MPI ranks)"; fi
