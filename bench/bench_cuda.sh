#!/bin/sh
# bench_cuda.sh: the GPT-2 124M training step (12 layers, hidden 768, 12
# heads, vocabulary 50257 padded to 50304, sequence 1024; forward, backward,
# clipping, AdamW) on the GPU: megatron-c --backend cuda in fp32 and with
# TF32, and the same model, batch and step in PyTorch on the same GPU
# (bench/torch_gpt_step.py), all in one invocation. Prints tokens/s of each
# and the ratios megatron-c / PyTorch.
#   sh bench/bench_cuda.sh [path/to/bench_step] [steps]
# The micro-batch is the largest of $BATCHES (default "16 8 4 2 1") at which
# both programs run; set PROFILE=1 for megatron-c's per-op breakdown.
# SEQ and TORCH_DEVICE (defaults 1024 and cuda) exist to try the script
# itself without a GPU (with bench/bench_step_emu and PyTorch on the CPU).
BIN=${1:-./bench/bench_step}
STEPS=${2:-10}
PY=${PYTHON:-python3}
SEQ=${SEQ:-1024}
HERE=$(dirname "$0")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
[ -x "$BIN" ] || { echo "bench_cuda: $BIN not built (make bench)"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/GPU: /'

ours() { # B [--tf32]: tokens/s of megatron-c, or nothing
  "$BIN" --backend cuda --config 124m --seq "$SEQ" --batch "$@" --steps "$STEPS" > "$TMP/ours" 2>&1 \
    || { tail -n 3 "$TMP/ours" >&2; return 1; }
  sed -n 's/^124M *cuda[a-z-]* *\([0-9.]*\) tokens\/s.*/\1/p' "$TMP/ours"
}
theirs() { # B [--tf32]
  B=$1; shift
  $PY "$HERE/torch_gpt_step.py" --batch "$B" --seq "$SEQ" --steps "$STEPS" \
    --device "${TORCH_DEVICE:-cuda}" "$@" > "$TMP/torch" 2>&1 \
    || { tail -n 3 "$TMP/torch" >&2; return 1; }
  sed -n 's/^torch: .* tokens\/s \([0-9.]*\) .*/\1/p' "$TMP/torch"
}

for B in ${BATCHES:-16 8 4 2 1}; do
  o32=$(ours "$B") || continue
  t32=$(theirs "$B") || continue
  break
done
[ -n "${o32:-}" ] && [ -n "${t32:-}" ] || { echo "bench_cuda: no micro-batch ran on both"; exit 1; }
cat "$TMP/ours"
cat "$TMP/torch"
o16=$(ours "$B" --tf32) && cat "$TMP/ours"
t16=$(theirs "$B" --tf32) && cat "$TMP/torch"
echo
echo "GPT-2 124M, sequence $SEQ, micro-batch $B, $STEPS timed steps each:"
printf '%-6s %18s %18s %8s\n' mode "megatron-c tok/s" "PyTorch tok/s" ratio
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
printf '%-6s %18.1f %18.1f %8s\n' fp32 "$o32" "$t32" "$(ratio "$o32" "$t32")"
[ -n "$o16" ] && [ -n "$t16" ] &&
  printf '%-6s %18.1f %18.1f %8s\n' tf32 "$o16" "$t16" "$(ratio "$o16" "$t16")"
if [ "${PROFILE:-0}" = 1 ]; then
  "$BIN" --backend cuda --config 124m --seq "$SEQ" --batch "$B" --steps 2 --profile | grep -A40 profile
fi
exit 0
