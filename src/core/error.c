/* error.c: see error.h */
#include "core/error.h"
#include <stdarg.h>
#include <stdlib.h>

static mt_abort_hook_fn abort_hook;

void mt_set_abort_hook(mt_abort_hook_fn fn) { abort_hook = fn; }

void mt_exit(int status)
{
    fflush(stdout);
    fflush(stderr);
    if (abort_hook) abort_hook(status);
    exit(status);
}

void mt_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "megatron-c: internal error: assertion `%s' failed at %s:%d\n", cond, file,
            line);
    fflush(stderr);
    if (abort_hook) abort_hook(134);
    abort();
}

void mt_die(const char *fmt, ...)
{
    va_list ap;
    fputs("megatron-c: fatal: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    mt_exit(2);
}

void mt_user_error(const char *hint, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("megatron-c: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (hint && *hint) fprintf(stderr, "  hint: %s\n", hint);
    mt_exit(1);
}

void mt_warn(const char *fmt, ...)
{
    va_list ap;
    fputs("megatron-c: warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
