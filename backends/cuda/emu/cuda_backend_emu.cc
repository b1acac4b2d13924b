/* The CUDA backend's cuda_backend.cu compiled for the CPU emulation (cuda_emu.h). */
#include "../cuda_backend.cu"
