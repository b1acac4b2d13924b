#!/bin/sh
# gpu_check.sh: everything that needs an NVIDIA GPU, as one script for a
# short lease of a GPU machine (see doc/cuda.md): builds with the CUDA
# backend, runs the CUDA op tests and whole runs against the CPU, then the
# 124M benchmark against PyTorch. Logs go to $OUT (default /tmp/gpu_check).
#   sh bench/gpu_check.sh [steps]
# Needs the generated build files (configure, Makefile.in, config.h.in,
# aclocal.m4, build-aux/) or autoreconf.
set -u
OUT=${OUT:-/tmp/gpu_check}
STEPS=${1:-10}
mkdir -p "$OUT"
cd "$(dirname "$0")/.." || exit 1
J=$(nproc 2>/dev/null || echo 4)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} HYDRA_LAUNCHER=fork
step() { echo "=== gpu_check: $* ($(date +%T))"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
step "build"
[ -x configure ] || autoreconf -fi > "$OUT/autoreconf.log" 2>&1 || { tail "$OUT/autoreconf.log"; exit 1; }
./configure --with-cuda-arch="${CUDA_ARCH:-90}" > "$OUT/configure.log" 2>&1 \
  || { tail -n 30 "$OUT/configure.log"; exit 1; }
sed -n '/configured/,/backends built/p' "$OUT/configure.log"
make -j"$J" > "$OUT/make.log" 2>&1 || { grep -B2 -A8 -i error "$OUT/make.log" | head -60; exit 1; }
make -j"$J" check TESTS= > /dev/null 2>&1  # builds the test programs only
step "op tests: every vtable op on cuda against cpu-ref"
tests/test_ops > "$OUT/test_ops.log" 2>&1
echo "test_ops exit $?: $(grep '^ok' "$OUT/test_ops.log" | grep -vc '# SKIP') passed, $(grep -c '^not ok' "$OUT/test_ops.log") failed, $(grep -c '# SKIP' "$OUT/test_ops.log") skipped"
grep '^not ok' "$OUT/test_ops.log" | head -20
sed -n '/vtable "cuda"/,$p' "$OUT/test_ops.log" | grep -E 'gpt2-slice|gemm NN m=64' | head -40
step "whole runs: cpu vs cuda (tests/test_cuda.sh)"
MT_BIN=$PWD/megatron-c MT_TESTS=$PWD/tests MT_SRCDIR=$PWD MT_HAVE_MPI=$(grep -q '^#define HAVE_MPI 1' config.h && echo yes || echo no) \
  MPIEXEC=$(sed -n 's/^MPIEXEC = //p' Makefile) sh tests/test_cuda.sh > "$OUT/test_cuda.log" 2>&1
echo "test_cuda.sh exit $?"
cat "$OUT/test_cuda.log"
step "flash attention against the unfused path on cuda (tests/test_attention.sh)"
MT_BIN=$PWD/megatron-c MT_TESTS=$PWD/tests MT_SRCDIR=$PWD sh tests/test_attention.sh > "$OUT/test_attention.log" 2>&1
echo "test_attention.sh exit $?"
grep -E '^(ok|FAIL|SKIP)' "$OUT/test_attention.log"
step "benchmark: 124M, sequence 1024, against PyTorch"
make -j"$J" bench > /dev/null 2>&1
PROFILE=1 sh bench/bench_cuda.sh bench/bench_step "$STEPS" 2>&1 | tee "$OUT/bench_cuda.log"
step "done"
