/* The CUDA backend's kernels.cu compiled for the CPU emulation (cuda_emu.h). */
#include "../kernels.cu"
