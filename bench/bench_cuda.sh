#!/bin/sh
# bench_cuda.sh: the GPT-2 124M training step (12 layers, hidden 768, 12
# heads, vocabulary 50257 padded to 50304, sequence 1024; forward, backward,
# clipping, AdamW) on the GPU: megatron-c --backend cuda in fp32, TF32 and
# bf16 (flash attention, the default), fp32 again with the unfused
# attention, and the same model, batch and step in PyTorch on the same GPU
# (bench/torch_gpt_step.py: eager; bf16 through autocast), all in one
# invocation. Prints tokens/s, the ratio megatron-c / PyTorch, the peak
# memory of each and the model FLOPs utilisation (MFU: 6 N + 12 L d T FLOPs
# a token, nanoGPT's and PaLM's count, over the GPU's dense peak for the
# mode, where the GPU is one this script knows).
#   sh bench/bench_cuda.sh [path/to/bench_step] [steps]
# The micro-batch is the largest of $BATCHES (default "16 8 4 2 1") at which
# both programs run in fp32; set PROFILE=1 for megatron-c's per-op breakdown.
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
GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
[ -n "$GPU" ] && echo "GPU: $GPU"

ours() { # B [bench_step flags]: tokens/s of megatron-c, or nothing; its peak in $TMP/ours.mem
  b=$1; shift
  "$BIN" --backend cuda --config 124m --seq "$SEQ" --batch "$b" "$@" --steps "$STEPS" > "$TMP/ours" 2>&1 \
    || { tail -n 3 "$TMP/ours" >&2; return 1; }
  sed -n 's/^124M *memory *peak \([0-9.]*\) GiB.*/\1/p' "$TMP/ours" > "$TMP/ours.mem"
  sed -n 's/^124M *cuda[a-z-]* *\([0-9.]*\) tokens\/s.*/\1/p' "$TMP/ours"
}
theirs() { # B [torch_gpt_step flags]; its peak in $TMP/torch.mem
  b=$1; shift
  $PY "$HERE/torch_gpt_step.py" --batch "$b" --seq "$SEQ" --steps "$STEPS" \
    --device "${TORCH_DEVICE:-cuda}" "$@" > "$TMP/torch" 2>&1 \
    || { tail -n 3 "$TMP/torch" >&2; return 1; }
  sed -n 's/.*peak memory \([0-9.]*\) GiB.*/\1/p' "$TMP/torch" > "$TMP/torch.mem"
  sed -n 's/^torch: .* tokens\/s \([0-9.]*\) .*/\1/p' "$TMP/torch"
}

for B in ${BATCHES:-16 8 4 2 1}; do
  o32=$(ours "$B") || continue
  t32=$(theirs "$B") || continue
  break
done
[ -n "${o32:-}" ] && [ -n "${t32:-}" ] || { echo "bench_cuda: no micro-batch ran on both"; exit 1; }
ROWS=$TMP/rows
row() { # MODE OURS THEIRS: one line of the table, peaks from the last runs
  om=$(cat "$TMP/ours.mem" 2>/dev/null); tm=$(cat "$TMP/torch.mem" 2>/dev/null)
  echo "$1 ${2:--} ${3:--} ${om:--} ${tm:--}" >> "$ROWS"
}
cat "$TMP/ours" "$TMP/torch"; row fp32 "$o32" "$t32"
o=$(ours "$B" --tf32) && cat "$TMP/ours"; t=$(theirs "$B" --tf32) && cat "$TMP/torch"; row tf32 "$o" "$t"
o=$(ours "$B" --bf16) && cat "$TMP/ours"; t=$(theirs "$B" --bf16) && cat "$TMP/torch"; row bf16 "$o" "$t"
rm -f "$TMP/torch.mem"
o=$(ours "$B" --attention-backend unfused) && cat "$TMP/ours"; row fp32-unfused "$o" ""

# dense peak FLOP/s by mode (fp32 SIMT, TF32 and bf16 tensor cores), from
# NVIDIA's data sheets for the SXM parts; MFU is left out for other GPUs
case "$GPU" in
  *H100*|*H200*) PEAK="fp32=67e12 tf32=494.7e12 bf16=989.4e12" ;;
  *A100*) PEAK="fp32=19.5e12 tf32=156e12 bf16=312e12" ;;
  *) PEAK="" ;;
esac
echo
echo "GPT-2 124M, sequence $SEQ, micro-batch $B, $STEPS timed steps each (peak memory in GiB):"
awk -v T="$SEQ" -v peaks="$PEAK" '
  BEGIN {
    L = 12; d = 768; N = 50304 * d + 1024 * d + L * (12 * d * d + 13 * d) + 2 * d
    per_token = 6 * N + 12 * L * d * T
    n = split(peaks, p, " "); for (i = 1; i <= n; i++) { split(p[i], kv, "="); peak[kv[1]] = kv[2] }
    printf "%-13s %12s %12s %7s %8s %8s %6s\n", "mode", "megatron-c", "PyTorch", "ratio", "mem ours", "mem torch", "MFU"
  }
  {
    mode = $1; base = mode; sub(/-.*/, "", base)
    ratio = ($2 != "-" && $3 != "-") ? sprintf("%.3f", $2 / $3) : "-"
    mfu = ($2 != "-" && (base in peak)) ? sprintf("%.1f%%", 100 * $2 * per_token / peak[base]) : "-"
    printf "%-13s %12s %12s %7s %8s %8s %6s\n", mode, $2, $3, ratio, $4, $5, mfu
  }' "$ROWS"
if [ "${PROFILE:-0}" = 1 ]; then
  "$BIN" --backend cuda --config 124m --seq "$SEQ" --batch "$B" --steps 2 --profile | grep -A40 profile
fi
exit 0
