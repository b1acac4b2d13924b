#!/bin/sh
# The CUDA backend's source on the CPU emulation of CUDA, cuBLAS and NCCL
# (backends/cuda/emu), in whole runs against the CPU backend
# (tests/cuda_run.sh): runs everywhere, GPU or not.
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/mpi_common.sh"
CUDA_BIN=$MT_TESTS/megatron-c-emu
[ -x "$CUDA_BIN" ] || { echo "SKIP: tests/megatron-c-emu not built (no C++17 compiler)"; exit 77; }
CUDA_EMU=1
. "$(dirname "$0")/cuda_run.sh"
