/* test_ckpt_integrity: the checkpoint reader (src/ckpt/checkpoint.h)
 * believes nothing it cannot check.
 *  - A written file reads back: metadata and tensors.
 *  - Every single-bit flip anywhere in the file (header, metadata, tensor
 *    headers, data, checksums, trailer) is refused with an error; none is
 *    read as a different checkpoint.
 *  - Every truncation is refused.
 *  - Metadata whose iteration is not its directory's (iter_N) is refused.
 *  - A tensor holding a NaN or an inf is refused, naming the tensor.
 *  - A version-1 file (no header checksum, per-tensor crc over the data)
 *    written byte by byte here still reads.
 * The reader exits through mt_user_error; the test catches that with the
 * abort hook (longjmp) and silences stderr while it flips. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#endif
#include "backend/backend.h"
#include "ckpt/checkpoint.h"
#include "core/error.h"
#include "core/io.h"
#include "tap.h"
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static jmp_buf on_error;
static void hook(int status)
{
    (void)status;
    longjmp(on_error, 1);
}

static struct mt_param_table table;
static mt_backend *be;
static const float W[6] = {0.5f, -1.25f, 2.0f, 3.5f, -0.125f, 7.0f}, Bv[3] = {1.0f, 2.0f, 3.0f};

static void make_table(void)
{
    mt_params_init(&table, 1, 0);
    mt_params_add(&table, "w", 2, 3, 0.02f, 0.0f, -1, 1);
    mt_params_add(&table, "b", 0, 3, 0.0f, 0.0f, -1, 1);
}

static void write_ckpt(const char *dir, long iteration, const char *meta_iteration, const float *w)
{
    struct mt_kv kv = {0};
    mt_kv_set(&kv, "iteration", "%s", meta_iteration);
    mt_kv_set(&kv, "consumed_train_samples", "96");
    mt_kv_set(&kv, "optimizer_step", "3");
    struct mt_ckpt_writer *wr = mt_ckpt_writer_open(dir, iteration, &kv, 2);
    mt_ckpt_writer_tensor(wr, "model/w", &table.p[0], w);
    mt_ckpt_writer_tensor(wr, "model/b", &table.p[1], Bv);
    mt_ckpt_writer_close(wr);
    mt_kv_free(&kv);
}

/* Reads path fully: 0 and the values on success, -1 when the reader refused. */
static int try_read(const char *path, float *out, char *iteration, size_t n)
{
    float *dev = mt_alloc(be, table.total * sizeof(float));
    struct mt_kv kv = {0};
    volatile int rc = 0;
    const int next_fd = dup(0); /* the descriptor the reader's fopen will get */
    close(next_fd);
    if (setjmp(on_error) == 0) {
        mt_ckpt_read_meta(path, &kv);
        const struct mt_ckpt_group g[] = {{"model/", dev, 1, NULL}};
        mt_ckpt_read_tensors(path, &table, NULL, g, 1, be);
        mt_download(be, out, dev, table.total * sizeof(float));
        snprintf(iteration, n, "%s", mt_kv_get(&kv, "iteration") ? mt_kv_get(&kv, "iteration") : "");
    } else {
        rc = -1; /* the reader's FILE was left open by the jump: close its descriptor */
        close(next_fd);
    }
    mt_kv_free(&kv);
    mt_dealloc(be, dev);
    return rc;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

static int quiet_stderr(void)
{
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    close(null);
    return saved;
}

static void restore_stderr(int saved)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

static int same_values(const float *got)
{
    return memcmp(got, W, sizeof W) == 0 && memcmp(got + table.p[1].offset, Bv, sizeof Bv) == 0;
}

/* version 1, byte by byte as that format had it */
static void put(FILE *f, const void *p, size_t n) { fwrite(p, 1, n, f); }
static void put32(FILE *f, uint32_t x) { put(f, &x, 4); }
static void put64(FILE *f, uint64_t x) { put(f, &x, 8); }
static void v1_tensor(FILE *f, const char *name, int ndim, const int64_t *dims, const float *d, size_t n)
{
    put32(f, (uint32_t)strlen(name));
    put(f, name, strlen(name));
    put32(f, 0);
    put32(f, (uint32_t)ndim);
    for (int i = 0; i < ndim; i++) put64(f, (uint64_t)dims[i]);
    put64(f, n * 4);
    put(f, d, n * 4);
    put32(f, mt_crc32(0, d, n * 4));
}

int main(void)
{
    char tmpl[] = "/tmp/mt-ckpt-XXXXXX", dir[64], path[4200], path2[4200], it[64];
    if (!mkdtemp(tmpl)) return 99;
    snprintf(dir, sizeof dir, "%s", tmpl);
    char err[128];
    be = mt_backend_init("cpu-ref", err, sizeof err);
    make_table();
    mt_set_abort_hook(hook);
    float got[64];

    write_ckpt(dir, 3, "3", W);
    snprintf(path, sizeof path, "%s", mt_ckpt_path(dir, 3));
    tap_ok(try_read(path, got, it, sizeof it) == 0 && same_values(got) && strcmp(it, "3") == 0,
           "a written checkpoint reads back (iteration %s)", it);
    tap_ok(mt_ckpt_latest(dir) == 3, "the tracker names iteration 3");

    /* every single-bit flip, every truncation */
    size_t n;
    unsigned char *orig = slurp(path, &n);
    snprintf(path2, sizeof path2, "%s/iter_0000003/damaged.mtc", dir);
    long flips = 0, caught = 0, truncs = 0, tcaught = 0;
    long first_missed = -1;
    int saved = quiet_stderr();
    for (size_t byte = 0; byte < n; byte++)
        for (int bit = 0; bit < 8; bit++) {
            orig[byte] ^= (unsigned char)(1u << bit);
            spit(path2, orig, n);
            orig[byte] ^= (unsigned char)(1u << bit);
            flips++;
            if (try_read(path2, got, it, sizeof it) != 0) caught++;
            else if (first_missed < 0) first_missed = (long)byte;
        }
    for (size_t len = 0; len < n; len++) {
        spit(path2, orig, len);
        truncs++;
        tcaught += try_read(path2, got, it, sizeof it) != 0;
    }
    restore_stderr(saved);
    tap_ok(caught == flips, "single-bit flips: %ld of %ld refused over the %zu bytes of the file%s", caught, flips, n,
           first_missed >= 0 ? " (first missed at a byte shown below)" : "");
    if (first_missed >= 0) tap_diag("first undetected flip in byte %ld", first_missed);
    tap_ok(tcaught == truncs, "truncations: %ld of %ld lengths refused", tcaught, truncs);
    free(orig);

    /* the metadata's iteration must be the directory's */
    write_ckpt(dir, 5, "7", W);
    saved = quiet_stderr();
    const int r5 = try_read(mt_ckpt_path(dir, 5), got, it, sizeof it);
    restore_stderr(saved);
    tap_ok(r5 != 0, "iteration 7 in the metadata of iter_0000005 is refused");

    /* non-finite values */
    float bad[6];
    memcpy(bad, W, sizeof bad);
    bad[4] = NAN;
    write_ckpt(dir, 6, "6", bad);
    bad[4] = INFINITY;
    write_ckpt(dir, 8, "8", bad);
    saved = quiet_stderr();
    const int r6 = try_read(mt_ckpt_path(dir, 6), got, it, sizeof it);
    const int r8 = try_read(mt_ckpt_path(dir, 8), got, it, sizeof it);
    restore_stderr(saved);
    tap_ok(r6 != 0 && r8 != 0, "a tensor holding a NaN or an inf is refused");

    /* version 1 */
    snprintf(path2, sizeof path2, "%s/iter_0000009", dir);
    mkdir(path2, 0777);
    FILE *f = fopen(mt_ckpt_path(dir, 9), "wb");
    const char *meta = "iteration=9\nconsumed_train_samples=1\noptimizer_step=9\n";
    put(f, "MTCKPT\r\n", 8);
    put32(f, 1);
    put32(f, 0);
    put64(f, strlen(meta));
    put(f, meta, strlen(meta));
    put32(f, 2);
    const int64_t dw[2] = {2, 3}, db[1] = {3};
    v1_tensor(f, "model/w", 2, dw, W, 6);
    v1_tensor(f, "model/b", 1, db, Bv, 3);
    put(f, "MTCKEND\n", 8);
    fclose(f);
    tap_ok(try_read(mt_ckpt_path(dir, 9), got, it, sizeof it) == 0 && same_values(got) && strcmp(it, "9") == 0,
           "a version-1 checkpoint still reads");

    mt_set_abort_hook(NULL);
    mt_params_free(&table);
    mt_backend_free(be);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) tap_diag("could not remove %s", dir);
    return tap_done();
}
