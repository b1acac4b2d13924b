/* tensorboard.c: see tensorboard.h */
#include "core/tensorboard.h"
#include "core/error.h"
#include "core/io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

struct mt_tb {
    FILE *f;
    char path[4400];
};

static uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

static double wall_time(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

/* ---- a protobuf writer: just the wire types the Event needs ---------------------- */

struct pb {
    unsigned char b[512];
    size_t n;
};

static void pb_byte(struct pb *p, unsigned c)
{
    if (p->n < sizeof p->b) p->b[p->n++] = (unsigned char)c;
}

static void pb_varint(struct pb *p, uint64_t v)
{
    do {
        pb_byte(p, (unsigned)(v & 0x7f) | (v >= 0x80 ? 0x80u : 0u));
        v >>= 7;
    } while (v);
}

static void pb_le(struct pb *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) pb_byte(p, (unsigned)(v >> (8 * i)) & 0xff);
}

static void pb_bytes(struct pb *p, int field, const void *data, size_t n)
{
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, n);
    for (size_t i = 0; i < n; i++) pb_byte(p, ((const unsigned char *)data)[i]);
}

static void pb_double(struct pb *p, int field, double x)
{
    uint64_t u;
    memcpy(&u, &x, 8);
    pb_varint(p, (uint64_t)field << 3 | 1);
    pb_le(p, u, 8);
}

static void pb_float(struct pb *p, int field, float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    pb_varint(p, (uint64_t)field << 3 | 5);
    pb_le(p, u, 4);
}

static void record(struct mt_tb *tb, const struct pb *e)
{
    struct pb h = {{0}, 0};
    pb_le(&h, e->n, 8);
    const uint32_t lc = masked(mt_crc32c(0, h.b, 8));
    pb_le(&h, lc, 4);
    struct pb t = {{0}, 0};
    pb_le(&t, masked(mt_crc32c(0, e->b, e->n)), 4);
    if (fwrite(h.b, 1, h.n, tb->f) != h.n || fwrite(e->b, 1, e->n, tb->f) != e->n ||
        fwrite(t.b, 1, t.n, tb->f) != t.n)
        mt_log_flush(tb->f, tb->path); /* reports the failure */
}

struct mt_tb *mt_tb_open(const char *dir)
{
    if (mt_mkdir_p(dir) != 0)
        mt_user_error("give a directory that can be created and written", "cannot create --tensorboard-dir %s", dir);
    struct mt_tb *tb = calloc(1, sizeof *tb);
    if (!tb) mt_die("out of memory");
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(tb->path, sizeof tb->path, "%s/events.out.tfevents.%ld.%s.%ld", dir, (long)wall_time(), host,
             (long)getpid());
    tb->f = fopen(tb->path, "wb");
    if (!tb->f) mt_user_error("check the permissions of --tensorboard-dir", "cannot create %s", tb->path);
    struct pb e = {{0}, 0};
    pb_double(&e, 1, wall_time());
    pb_bytes(&e, 3, "brain.Event:2", 13);
    record(tb, &e);
    mt_log_flush(tb->f, tb->path);
    return tb;
}

void mt_tb_scalar(struct mt_tb *tb, const char *tag, double value, int64_t step)
{
    struct pb v = {{0}, 0}, s = {{0}, 0}, e = {{0}, 0};
    pb_bytes(&v, 1, tag, strlen(tag) < 200 ? strlen(tag) : 200);
    pb_float(&v, 2, (float)value);
    pb_bytes(&s, 1, v.b, v.n);
    pb_double(&e, 1, wall_time());
    pb_varint(&e, 2 << 3 | 0);
    pb_varint(&e, (uint64_t)step);
    pb_bytes(&e, 5, s.b, s.n);
    record(tb, &e);
}

void mt_tb_flush(struct mt_tb *tb) { mt_log_flush(tb->f, tb->path); }

void mt_tb_close(struct mt_tb *tb)
{
    if (!tb) return;
    mt_log_close(tb->f, tb->path);
    free(tb);
}
