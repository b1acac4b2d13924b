/* finite.h: counting non-finite floats, for the loaders that refuse a
 * diverged model (a checkpoint or Hugging Face file holding inf or NaN). */
#ifndef MT_FINITE_H
#define MT_FINITE_H
#include <math.h>
#include <stddef.h>

static inline size_t mt_nonfinite_count(const float *x, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !isfinite(x[i]);
    return bad;
}

#endif
