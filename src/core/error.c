/* error.c: see error.h */
#include "core/error.h"
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

static mt_abort_hook_fn abort_hook;
static char error_prefix[64]; /* "" or e.g. "[rank 3] " (mt_set_error_prefix) */

void mt_set_error_prefix(const char *prefix)
{
    snprintf(error_prefix, sizeof error_prefix, "%s", prefix ? prefix : "");
}

void mt_set_abort_hook(mt_abort_hook_fn fn) { abort_hook = fn; }

static char remove_path[4400]; /* mt_remove_on_error; "" for none */

void mt_remove_on_error(const char *path)
{
    snprintf(remove_path, sizeof remove_path, "%s", path ? path : "");
}

static void remove_partial(void)
{
    if (*remove_path) unlink(remove_path);
    *remove_path = 0;
}

void mt_exit(int status)
{
    remove_partial();
    fflush(stdout);
    fflush(stderr);
    if (abort_hook) abort_hook(status);
    exit(status);
}

void mt_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "%smegatron-c: internal error: assertion `%s' failed at %s:%d\n",
            error_prefix, cond, file, line);
    fflush(stderr);
    remove_partial();
    if (abort_hook) abort_hook(134);
    abort();
}

void mt_die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%smegatron-c: fatal: ", error_prefix);
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
    fprintf(stderr, "%smegatron-c: error: ", error_prefix);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (hint && *hint) fprintf(stderr, "%s  hint: %s\n", error_prefix, hint);
    mt_exit(1);
}

void mt_warn(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%smegatron-c: warning: ", error_prefix);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int mt_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}
