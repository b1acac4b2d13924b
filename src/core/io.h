/* io.h: checked file helpers. Failures are user errors naming the file. */
#ifndef MT_IO_H
#define MT_IO_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Reads a whole file into a NUL-terminated malloc'd buffer; exits with a
 * message naming the file (and `what` it is, e.g. "--data-path") on error. */
char *mt_read_file(const char *path, size_t *len, const char *what);
int mt_file_exists(const char *path);
int mt_is_dir(const char *path);
/* mkdir -p; returns 0 on success */
int mt_mkdir_p(const char *path);
/* Writes all bytes or exits naming the file. */
void mt_fwrite_all(FILE *f, const void *p, size_t n, const char *path);
/* Logs (--log-json, standard output): a failed write does not stop a run
 * (its checkpoints matter more) but is reported once per file as a
 * warning, and the program then exits with status 1 (mt_log_status).
 * mt_log_flush flushes f and checks it; mt_log_close also closes it. */
void mt_log_flush(FILE *f, const char *path);
void mt_log_close(FILE *f, const char *path);
/* 1 once any log write failed (standard output is checked here too) */
int mt_log_status(void);
/* CRC-32 (IEEE, as zlib) for checkpoint payloads; CRC-32C (Castagnoli),
 * TensorBoard's TFRecord checksum */
uint32_t mt_crc32(uint32_t crc, const void *p, size_t n);
uint32_t mt_crc32c(uint32_t crc, const void *p, size_t n);
/* Directory of the data shipped with megatron-c (tiny Shakespeare, GPT-2
 * vocabulary): $MT_DATA_DIR, else the source tree's data/ (build tree), else
 * the installed pkgdatadir. Exits with a hint when none exists. */
const char *mt_data_dir(void);
/* Seconds from a monotonic clock. */
double mt_now(void);

#endif
