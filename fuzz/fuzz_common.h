/* fuzz_common.h: what every libFuzzer target (fuzz/fuzz_*.c) shares.
 *
 * The readers under test report bad input through mt_user_error, which
 * exits; here the abort hook (core/error.h) jumps back instead, so one
 * process tries millions of inputs. An error is the expected outcome for
 * most inputs; what the fuzzer looks for is a crash, a sanitizer report
 * (AddressSanitizer, UndefinedBehaviorSanitizer), a hang or an assertion.
 * Memory the reader held when it refused an input is leaked by the jump,
 * so bench/fuzz.sh runs with -detect_leaks=0 and restarts a target every
 * 20 s (its corpus carries over) to keep memory bounded; it also passes
 * -close_fd_mask=2, which keeps the readers' messages out of the fuzzer's
 * report (libFuzzer and the sanitizers write to a copy of stderr).
 *
 * FUZZ_GUARD(code) runs code and returns from the target on an error;
 * fuzz_file(name, data, size) writes the input to a file in a private
 * directory (the readers take paths) and returns the path. */
#ifndef MT_FUZZ_COMMON_H
#define MT_FUZZ_COMMON_H
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "core/error.h"
#include <fcntl.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static jmp_buf fuzz_jmp;
static int fuzz_ready;
static char fuzz_dir[64];

__attribute__((unused)) static void fuzz_hook(int status)
{
    (void)status;
    longjmp(fuzz_jmp, 1);
}

__attribute__((unused)) static void fuzz_setup(void)
{
    if (fuzz_ready) return;
    snprintf(fuzz_dir, sizeof fuzz_dir, "/tmp/mt-fuzz-%ld", (long)getpid());
    mkdir(fuzz_dir, 0700);
    mt_set_abort_hook(fuzz_hook);
    fuzz_ready = 1;
}

__attribute__((unused)) static const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[4][256];
    static int k;
    fuzz_setup();
    char *p = path[k++ & 3];
    snprintf(p, sizeof path[0], "%s/%s", fuzz_dir, name);
    char *slash = strrchr(p, '/');
    if (slash && slash > p + strlen(fuzz_dir)) { /* a subdirectory (iter_N) */
        *slash = 0;
        mkdir(p, 0700);
        *slash = '/';
    }
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return p;
}

/* descriptors the reader left open when it jumped: close what is above
 * the ones the harness holds */
__attribute__((unused)) static int fuzz_fd_mark(void)
{
    int fd = dup(0);
    close(fd);
    return fd;
}

__attribute__((unused)) static void fuzz_fd_release(int mark)
{
    for (int fd = mark; fd < mark + 8; fd++) close(fd);
}

#define FUZZ_GUARD(...) \
    do { \
        fuzz_setup(); \
        const int mark_ = fuzz_fd_mark(); \
        if (setjmp(fuzz_jmp) == 0) { \
            __VA_ARGS__; \
        } else { \
            fuzz_fd_release(mark_); \
            return 0; \
        } \
    } while (0)

#endif
