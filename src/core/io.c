/* io.c: see io.h */
#include "core/io.h"
#include "core/error.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

char *mt_read_file(const char *path, size_t *len, const char *what)
{
    char hint[256];
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(hint, sizeof hint, "check the path given to %s", what ? what : "the command");
        mt_user_error(hint, "cannot open %s: %s", path, strerror(errno));
    }
    /* a file or a pipe; a device such as /dev/zero would be read until
     * memory runs out, a directory gives nothing */
    struct stat st;
    const int have_st = fstat(fileno(f), &st) == 0;
    if (have_st && !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
        snprintf(hint, sizeof hint, "give %s a regular file", what ? what : "the command");
        mt_user_error(hint, "%s is a %s, not a file", path, S_ISDIR(st.st_mode) ? "directory" : "device");
    }
    /* a regular file's size is known: one allocation, no doubling */
    size_t cap = have_st && S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) mt_die("out of memory reading %s", path);
    for (;;) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) mt_die("out of memory reading %s (%zu bytes so far)", path, n);
            buf = nb;
        }
    }
    if (ferror(f)) mt_user_error(NULL, "error reading %s: %s", path, strerror(errno));
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

int mt_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int mt_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int mt_mkdir_p(const char *path)
{
    char tmp[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof tmp) return -1;
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return -1;
    return mt_is_dir(tmp) ? 0 : -1;
}

void mt_fwrite_all(FILE *f, const void *p, size_t n, const char *path)
{
    if (n && fwrite(p, 1, n, f) != n)
        mt_user_error("check free disk space and permissions", "cannot write %s: %s", path,
                      strerror(errno));
}

static FILE *log_failed[8]; /* the files already reported */
static int log_failures;

void mt_log_flush(FILE *f, const char *path)
{
    errno = 0;
    const int ok = fflush(f) == 0 && !ferror(f);
    const int err = errno;
    if (ok) return;
    for (int i = 0; i < log_failures && i < 8; i++)
        if (log_failed[i] == f) return;
    if (log_failures < 8) log_failed[log_failures] = f;
    log_failures++;
    mt_warn("cannot write %s: %s; the run goes on, and megatron-c will exit with status 1",
            path, err ? strerror(err) : "a write failed (disk full or pipe closed?)");
}

void mt_log_close(FILE *f, const char *path)
{
    mt_log_flush(f, path);
    if (fclose(f) != 0 && !log_failures) {
        log_failures++;
        mt_warn("cannot write %s: %s", path, strerror(errno));
    }
}

int mt_log_status(void)
{
    mt_log_flush(stdout, "standard output");
    return log_failures > 0;
}

/* A reflected CRC-32 of the (reversed) polynomial poly, with its table
 * (ready once filled) */
static uint32_t crc_reflected(uint32_t table[256], int *ready, uint32_t poly, uint32_t crc, const void *p,
                              size_t n)
{
    if (!*ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? poly ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        *ready = 1;
    }
    const unsigned char *b = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t mt_crc32(uint32_t crc, const void *p, size_t n)
{
    static uint32_t table[256];
    static int ready;
    return crc_reflected(table, &ready, 0xEDB88320u, crc, p, n);
}

uint32_t mt_crc32c(uint32_t crc, const void *p, size_t n)
{
    static uint32_t table[256];
    static int ready;
    return crc_reflected(table, &ready, 0x82F63B78u, crc, p, n);
}

double mt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *mt_data_dir(void)
{
    static char buf[4096];
    const char *env = getenv("MT_DATA_DIR");
    if (env && *env) return env;
    const char *candidates[] = {
#ifdef MT_SRCDATADIR
        MT_SRCDATADIR,
#endif
#ifdef MT_PKGDATADIR
        MT_PKGDATADIR,
#endif
        "data"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        snprintf(buf, sizeof buf, "%s/tinyshakespeare/input.txt", candidates[i]);
        if (mt_file_exists(buf)) return candidates[i];
    }
    mt_user_error("set MT_DATA_DIR to the data/ directory of megatron-c, or give --data-path",
                  "cannot find the data shipped with megatron-c");
}
