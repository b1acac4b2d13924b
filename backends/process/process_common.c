/* process_common.c: the parts of the process layer (process.h) written once
 * over its collectives, whichever implementation is linked. */
#include "process/process.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { HOST_BYTES = 64 }; /* a multiple of 4: the names travel as int32 */

/* Ranks on the same host are the ones with the same host name; the local
 * rank is the number of such ranks below this one. */
void mt_proc_node_local(int *local_rank, int *local_size)
{
    mt_proc_comm *w = mt_proc_world();
    const int rank = mt_proc_rank(w), size = mt_proc_size(w);
    *local_rank = 0;
    *local_size = 1;
    if (size == 1) return;
    char *names = calloc((size_t)size, HOST_BYTES);
    if (!names) mt_die("process layer: out of memory");
    char *mine = names + (size_t)rank * HOST_BYTES;
    if (gethostname(mine, HOST_BYTES - 1) != 0) strcpy(mine, "?");
    mt_proc_all_gather(w, names, mine, HOST_BYTES / 4, MT_DTYPE_I32);
    *local_size = 0;
    for (int r = 0; r < size; r++)
        if (memcmp(names + (size_t)r * HOST_BYTES, mine, HOST_BYTES) == 0) {
            if (r < rank) ++*local_rank;
            ++*local_size;
        }
    free(names);
}
