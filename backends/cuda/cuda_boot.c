/* cuda_boot.c: what the CUDA backend borrows from the CPU backend's
 * communicator layer (cpu_comm_mpi.c or cpu_comm_self.c): process start-up
 * (MPI initialisation, the abort hook that stops every rank when one fails,
 * the "[rank R] " error prefix), the node-local rank that picks this
 * process's GPU, and the broadcast of NCCL's unique id. Plain C, so that the
 * CUDA sources never include MPI or the CPU backend's headers. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "cpu/cpu_internal.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void mt_cuda_boot(int *rank, int *size, int *local_rank, int *local_size);
void mt_cuda_boot_broadcast(void *buf, size_t nbytes);

static mt_comm *boot_world; /* lives until exit (the layer finalises MPI) */

enum { HOST_BYTES = 64 };

/* Ranks on the same host are the ones with the same host name; the local
 * rank is the number of such ranks below this one. Collective over the world
 * (every rank creates its backend at start-up). */
void mt_cuda_boot(int *rank, int *size, int *local_rank, int *local_size)
{
    if (!boot_world) boot_world = mt_cpu_comm_world_create();
    *rank = mt_cpu_comm_rank(boot_world);
    *size = mt_cpu_comm_size(boot_world);
    *local_rank = 0;
    *local_size = 1;
    if (*size == 1) return;
    char *names = calloc((size_t)*size, HOST_BYTES);
    if (!names) mt_die("cuda backend: out of host memory");
    char *mine = names + (size_t)*rank * HOST_BYTES;
    if (gethostname(mine, HOST_BYTES - 1) != 0) strcpy(mine, "?");
    mt_cpu_comm_all_gather(boot_world, names, mine, HOST_BYTES / 4, MT_DTYPE_I32);
    *local_size = 0;
    for (int r = 0; r < *size; r++)
        if (memcmp(names + (size_t)r * HOST_BYTES, mine, HOST_BYTES) == 0) {
            if (r < *rank) ++*local_rank;
            ++*local_size;
        }
    free(names);
}

void mt_cuda_boot_broadcast(void *buf, size_t nbytes)
{
    MT_ASSERT(boot_world != NULL && nbytes % 4 == 0);
    mt_cpu_comm_broadcast(boot_world, buf, nbytes / 4, MT_DTYPE_I32, 0);
}
