#!/bin/sh
# The CUDA backend in whole runs against the CPU backend (tests/cuda_run.sh);
# skipped where this build has no CUDA backend or no GPU is visible.
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/mpi_common.sh"
CUDA_BIN=$MT_BIN
CUDA_EMU=0
. "$(dirname "$0")/cuda_run.sh"
