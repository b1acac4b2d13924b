/* error.h: the three kinds of failure (see doc/architecture.md).
 *  - MT_ASSERT(cond): a broken internal invariant. Always compiled; prints the
 *    condition, file and line, then aborts the whole job (all ranks).
 *  - mt_die(fmt, ...): a failing library or system call we cannot recover from.
 *  - mt_user_error(hint, fmt, ...): a user mistake (bad flag, missing file,
 *    wrong magic). Prints "megatron-c: error: <msg>" and "  hint: <hint>" on
 *    stderr and exits with status 1. Never used for internal bugs. */
#ifndef MT_ERROR_H
#define MT_ERROR_H
#include <stdio.h>

#if defined(__GNUC__)
#define MT_NORETURN __attribute__((noreturn))
#define MT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MT_NORETURN
#define MT_PRINTF(a, b)
#endif

MT_NORETURN void mt_assert_fail(const char *cond, const char *file, int line);
MT_NORETURN MT_PRINTF(1, 2) void mt_die(const char *fmt, ...);
MT_NORETURN MT_PRINTF(2, 3) void mt_user_error(const char *hint, const char *fmt, ...);
/* Formats a message into err (errlen bytes; err may be NULL) and returns -1:
 * for library functions that report bad input to a caller that decides. */
MT_PRINTF(3, 4) int mt_errf(char *err, size_t errlen, const char *fmt, ...);
/* Non-fatal warning on stderr ("megatron-c: warning: ..."). */
MT_PRINTF(1, 2) void mt_warn(const char *fmt, ...);

/* Called before exiting on any error; the MPI layer installs a hook that
 * aborts the other ranks so that nothing hangs. */
typedef void (*mt_abort_hook_fn)(int status);
void mt_set_abort_hook(mt_abort_hook_fn fn);
/* Text put in front of every line that error.c prints (errors, hints,
 * warnings, assertion failures); NULL or "" for none. The MPI layer sets
 * "[rank R] " in a world of more than one rank so that each message names
 * the rank it came from. The string is copied (at most 63 bytes kept). */
void mt_set_error_prefix(const char *prefix);
/* A file (a partial temporary) that an exit on error removes; NULL clears
 * it once the file is complete. One at a time; the path is copied. */
void mt_remove_on_error(const char *path);
/* Exit through the hook (used by mt_die / mt_user_error). */
MT_NORETURN void mt_exit(int status);

#define MT_ASSERT(cond) \
    do { \
        if (!(cond)) mt_assert_fail(#cond, __FILE__, __LINE__); \
    } while (0)

#endif
