/* tap.h: a minimal TAP (Test Anything Protocol) emitter for the compiled
 * tests, read by automake's tap-driver.sh. Header-only.
 *
 *   tap_plan(n)                "1..n" up front (or let tap_done() print it last)
 *   tap_ok(cond, fmt, ...)     "ok 3 - ..." / "not ok 3 - ..."; returns cond
 *   tap_skip(reason, fmt, ...) "ok 4 - ... # SKIP reason": this check cannot run here
 *   tap_diag(fmt, ...)         "# ...": a comment, kept in the test log
 *   tap_skip_all(reason)       "1..0 # SKIP reason", exit 0: nothing can run here
 *   tap_done()                 the plan if not printed yet; returns the exit
 *                              status: 0 iff at least one check ran and none failed */
#ifndef MT_TAP_H
#define MT_TAP_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__GNUC__)
#define TAP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TAP_PRINTF(a, b)
#endif

static int tap_count, tap_failed, tap_planned;

static inline void tap_plan(int n) { printf("1..%d\n", n), tap_planned = 1; }

static inline void tap_line_(int ok, const char *skip, const char *fmt, va_list ap)
{
    printf("%sok %d - ", ok ? "" : "not ", ++tap_count);
    vprintf(fmt, ap);
    if (skip) printf(" # SKIP %s", skip);
    putchar('\n');
    fflush(stdout);
}

TAP_PRINTF(2, 3) static inline int tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_line_(cond, NULL, fmt, ap);
    va_end(ap);
    if (!cond) tap_failed++;
    return cond;
}

TAP_PRINTF(2, 3) static inline void tap_skip(const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_line_(1, reason, fmt, ap);
    va_end(ap);
}

TAP_PRINTF(1, 2) static inline void tap_diag(const char *fmt, ...)
{
    va_list ap;
    fputs("# ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static inline void tap_skip_all(const char *reason)
{
    printf("1..0 # SKIP %s\n", reason);
    exit(0);
}

static inline int tap_done(void)
{
    if (!tap_planned) printf("1..%d\n", tap_count);
    fflush(stdout);
    return tap_failed == 0 && tap_count > 0 ? 0 : 1;
}

#endif /* MT_TAP_H */
