/* cuda_none.c: the CUDA constructor of a build without the CUDA backend
 * (configure found no toolkit, or --without-cuda): it explains. */
#include "backend/backend.h"
#include <stdio.h>

const char mt_backend_cuda_kind[] = "";

mt_backend *mt_backend_cuda_create(char *err, size_t errlen)
{
    if (err && errlen)
        snprintf(err, errlen,
                 "backend 'cuda' is not in this build (this build has: cpu, cpu-ref); install the "
                 "CUDA toolkit and rebuild with ./configure --with-cuda");
    return NULL;
}
