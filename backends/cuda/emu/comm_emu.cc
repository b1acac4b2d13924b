/* The CUDA backend's comm.cu compiled for the CPU emulation (cuda_emu.h). */
#include "../comm.cu"
