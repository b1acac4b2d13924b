/* testutil.h: small helpers shared by the compiled tests (header-only). */
#ifndef MT_TESTUTIL_H
#define MT_TESTUTIL_H
#include "core/io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Finds the source tree: $MT_SRCDIR (set by make check), else the parent of
 * the test binary's directory, the binary's directory, ".", "..": the first
 * one holding the file `probe` (relative to the tree) is written to out.
 * Returns 1 when found. Out-of-tree and direct runs both work this way. */
static inline int mt_test_find_srcdir(const char *argv0, const char *probe, char *out, size_t n)
{
    char path[4600], bindir[4096], up[4200];
    const char *env = getenv("MT_SRCDIR");
    snprintf(bindir, sizeof bindir, "%s", argv0);
    char *slash = strrchr(bindir, '/');
    if (slash) *slash = 0;
    else snprintf(bindir, sizeof bindir, ".");
    snprintf(up, sizeof up, "%s/..", bindir);
    const char *cands[] = {env ? env : "", up, bindir, ".", ".."};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        if (!*cands[i]) continue;
        snprintf(path, sizeof path, "%s/%s", cands[i], probe);
        if (mt_file_exists(path)) {
            snprintf(out, n, "%s", cands[i]);
            return 1;
        }
    }
    return 0;
}

#endif
