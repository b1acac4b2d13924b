/* safetensors.c: see safetensors.h */
#ifndef _FILE_OFFSET_BITS
#define _FILE_OFFSET_BITS 64
#endif
#include "interop/safetensors.h"
#include "core/error.h"
#include "core/io.h"
#include "core/json_value.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* The reference implementation refuses headers above 100 MB. */
#define MAX_HEADER ((uint64_t)100 << 20)

static const char *const DTYPES[] = {"F32", "F16", "BF16", "F64", "I64", "I32"};

enum mt_st_dtype mt_st_dtype_parse(const char *s)
{
    for (int i = 0; i < (int)(sizeof DTYPES / sizeof DTYPES[0]); i++)
        if (strcmp(DTYPES[i], s) == 0) return (enum mt_st_dtype)i;
    return MT_ST_OTHER;
}

const char *mt_st_dtype_name(enum mt_st_dtype t) { return t < MT_ST_OTHER ? DTYPES[t] : "?"; }

static size_t dtype_bytes(enum mt_st_dtype t)
{
    switch (t) {
    case MT_ST_F16:
    case MT_ST_BF16: return 2;
    case MT_ST_F32:
    case MT_ST_I32: return 4;
    case MT_ST_F64:
    case MT_ST_I64: return 8;
    default: return 0;
    }
}

/* ---- reading -------------------------------------------------------------------------- */

int64_t mt_st_numel(const struct mt_st_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

static int cmp_begin(const void *a, const void *b)
{
    const struct mt_st_tensor *x = *(struct mt_st_tensor *const *)a, *y = *(struct mt_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* One header entry into t; 0 or -1 with the message. */
static int parse_entry(const char *path, const char *name, const struct mt_jvalue *v,
                       uint64_t data_size, struct mt_st_tensor *t, char *err, size_t errlen)
{
    const char *dt = mt_json_get_str(v, "dtype");
    const struct mt_jvalue *shape = mt_json_get(v, "shape"), *off = mt_json_get(v, "data_offsets");
    if (!dt || !shape || shape->type != MT_J_ARRAY || !off || off->type != MT_J_ARRAY || off->n != 2 ||
        off->v[0].type != MT_J_NUMBER || off->v[1].type != MT_J_NUMBER)
        return mt_errf(err, errlen, "%s: header entry %s lacks dtype, shape or data_offsets", path, name);
    if (shape->n > 8) return mt_errf(err, errlen, "%s: tensor %s has %d dimensions", path, name, shape->n);
    memset(t, 0, sizeof *t);
    t->dtype = mt_st_dtype_parse(dt);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt);
    t->ndim = shape->n;
    for (int d = 0; d < shape->n; d++) {
        if (shape->v[d].type != MT_J_NUMBER || shape->v[d].num < 0 || shape->v[d].num > 1e15)
            return mt_errf(err, errlen, "%s: tensor %s has a bad shape", path, name);
        t->shape[d] = (int64_t)shape->v[d].num;
    }
    const double b = off->v[0].num, e = off->v[1].num;
    if (b < 0 || e < b || e > (double)data_size)
        return mt_errf(err, errlen, "%s: tensor %s: data_offsets [%.0f, %.0f] lie outside the %llu data bytes "
                       "(a truncated file?)", path, name, b, e, (unsigned long long)data_size);
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    const size_t es = dtype_bytes(t->dtype);
    if (es && (uint64_t)mt_st_numel(t) * es != t->end - t->begin)
        return mt_errf(err, errlen, "%s: tensor %s: %llu bytes for shape of %lld %s elements", path, name,
                       (unsigned long long)(t->end - t->begin), (long long)mt_st_numel(t), dt);
    t->name = strdup(name);
    if (!t->name) mt_die("out of memory");
    return 0;
}

static int read_header(struct mt_st_file *s, char *err, size_t errlen)
{
    unsigned char len8[8];
    if (s->size < 8 || fread(len8, 1, 8, s->f) != 8)
        return mt_errf(err, errlen, "%s: too short for a safetensors file (%llu bytes)", s->path,
                       (unsigned long long)s->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
    if (n > MAX_HEADER || n > s->size - 8)
        return mt_errf(err, errlen, "%s: header length %llu does not fit the file of %llu bytes "
                       "(not a safetensors file, or truncated)", s->path, (unsigned long long)n,
                       (unsigned long long)s->size);
    char *h = malloc(n + 1);
    if (!h) mt_die("out of memory");
    if (fread(h, 1, n, s->f) != n) {
        free(h);
        return mt_errf(err, errlen, "%s: cannot read the %llu-byte header", s->path, (unsigned long long)n);
    }
    s->data_start = 8 + n;
    struct mt_jvalue root;
    char jerr[160];
    int rc = mt_json_parse(h, n, &root, jerr, sizeof jerr);
    free(h);
    if (rc != 0) return mt_errf(err, errlen, "%s: the header is not valid JSON: %s", s->path, jerr);
    if (root.type != MT_J_OBJECT) {
        mt_json_free(&root);
        return mt_errf(err, errlen, "%s: the header is not a JSON object", s->path);
    }
    s->t = calloc((size_t)(root.n ? root.n : 1), sizeof *s->t);
    if (!s->t) mt_die("out of memory");
    for (int i = 0; i < root.n && rc == 0; i++) {
        if (strcmp(root.keys[i], "__metadata__") == 0) continue;
        rc = parse_entry(s->path, root.keys[i], &root.v[i], s->size - s->data_start, &s->t[s->n], err,
                         errlen);
        if (rc == 0) s->n++;
    }
    mt_json_free(&root);
    if (rc != 0) return rc;
    /* no two tensors share bytes */
    struct mt_st_tensor **by = malloc((size_t)(s->n ? s->n : 1) * sizeof *by);
    if (!by) mt_die("out of memory");
    for (int i = 0; i < s->n; i++) by[i] = &s->t[i];
    qsort(by, (size_t)s->n, sizeof *by, cmp_begin);
    for (int i = 1; i < s->n && rc == 0; i++)
        if (by[i]->begin < by[i - 1]->end)
            rc = mt_errf(err, errlen, "%s: tensors %s and %s overlap", s->path, by[i - 1]->name, by[i]->name);
    free(by);
    return rc;
}

int mt_st_open(struct mt_st_file *s, const char *path, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    s->f = fopen(path, "rb");
    if (!s->f) return mt_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    if (fseeko(s->f, 0, SEEK_END) != 0) return mt_errf(err, errlen, "cannot seek in %s", path);
    s->size = (uint64_t)ftello(s->f);
    rewind(s->f);
    if (read_header(s, err, errlen) != 0) {
        mt_st_close(s);
        return -1;
    }
    return 0;
}

void mt_st_close(struct mt_st_file *s)
{
    if (s->f) fclose(s->f);
    for (int i = 0; i < s->n; i++) free(s->t[i].name);
    free(s->t);
    memset(s, 0, sizeof *s);
}

struct mt_st_tensor *mt_st_find(struct mt_st_file *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->t[i].name, name) == 0) return &s->t[i];
    return NULL;
}

int mt_st_read_f32(struct mt_st_file *s, const struct mt_st_tensor *t, float *out, char *err,
                   size_t errlen)
{
    const size_t n = (size_t)mt_st_numel(t), es = dtype_bytes(t->dtype);
    if (t->dtype != MT_ST_F32 && t->dtype != MT_ST_F16 && t->dtype != MT_ST_BF16)
        return mt_errf(err, errlen, "%s: tensor %s has dtype %s (F32, F16 or BF16 expected)", s->path,
                       t->name, t->dtype_name);
    if (fseeko(s->f, (off_t)(s->data_start + t->begin), SEEK_SET) != 0)
        return mt_errf(err, errlen, "%s: cannot seek to tensor %s", s->path, t->name);
    if (t->dtype == MT_ST_F32) {
        if (fread(out, 4, n, s->f) != n) goto short_read;
        return 0;
    }
    /* 16-bit: read into the back half of out, widen from the front */
    uint16_t *h = (uint16_t *)(void *)(out + n) - n;
    if (fread(h, es, n, s->f) != n) goto short_read;
    for (size_t i = 0; i < n; i++) {
        uint16_t v = h[i];
        out[i] = t->dtype == MT_ST_F16 ? mt_f16_to_f32(v) : mt_bf16_to_f32(v);
    }
    return 0;
short_read:
    return mt_errf(err, errlen, "%s: tensor %s is truncated", s->path, t->name);
}

/* ---- a checkpoint directory ---------------------------------------------------------------- */

int mt_st_dir_open(struct mt_st_dir *d, const char *dir, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    char path[4300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (mt_file_exists(path)) {
        d->files = calloc(1, sizeof *d->files);
        if (!d->files) mt_die("out of memory");
        if (mt_st_open(&d->files[0], path, err, errlen) != 0) return -1;
        d->nfiles = 1;
        return 0;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (!mt_file_exists(path))
        return mt_errf(err, errlen, "%s has neither model.safetensors nor model.safetensors.index.json", dir);
    size_t len;
    char *text = mt_read_file(path, &len, "--load");
    struct mt_jvalue idx;
    char jerr[160];
    int rc = mt_json_parse(text, len, &idx, jerr, sizeof jerr);
    free(text);
    if (rc != 0) return mt_errf(err, errlen, "%s is not valid JSON: %s", path, jerr);
    const struct mt_jvalue *map = mt_json_get(&idx, "weight_map");
    if (!map || map->type != MT_J_OBJECT) {
        mt_json_free(&idx);
        return mt_errf(err, errlen, "%s has no \"weight_map\" object", path);
    }
    /* the distinct shard files, in first-mention order */
    d->files = calloc((size_t)(map->n ? map->n : 1), sizeof *d->files);
    if (!d->files) mt_die("out of memory");
    for (int i = 0; i < map->n && rc == 0; i++) {
        if (map->v[i].type != MT_J_STRING) {
            rc = mt_errf(err, errlen, "%s: weight_map entry %s is not a file name", path, map->keys[i]);
            break;
        }
        char shard[4300];
        snprintf(shard, sizeof shard, "%s/%s", dir, map->v[i].str);
        int seen = 0;
        for (int k = 0; k < d->nfiles && !seen; k++) seen = strcmp(d->files[k].path, shard) == 0;
        if (seen) continue;
        if (mt_st_open(&d->files[d->nfiles], shard, err, errlen) != 0) rc = -1;
        else d->nfiles++;
    }
    /* every tensor the index names is in its shard */
    for (int i = 0; i < map->n && rc == 0; i++) {
        struct mt_st_file *f = NULL;
        if (!mt_st_dir_find(d, map->keys[i], &f))
            rc = mt_errf(err, errlen, "%s names tensor %s, which no shard holds", path, map->keys[i]);
    }
    mt_json_free(&idx);
    if (rc != 0) mt_st_dir_close(d);
    return rc;
}

void mt_st_dir_close(struct mt_st_dir *d)
{
    for (int i = 0; i < d->nfiles; i++) mt_st_close(&d->files[i]);
    free(d->files);
    memset(d, 0, sizeof *d);
}

struct mt_st_tensor *mt_st_dir_find(struct mt_st_dir *d, const char *name, struct mt_st_file **file)
{
    for (int i = 0; i < d->nfiles; i++) {
        struct mt_st_tensor *t = mt_st_find(&d->files[i], name);
        if (t) {
            if (file) *file = &d->files[i];
            return t;
        }
    }
    return NULL;
}

/* ---- writing ---------------------------------------------------------------------------- */

struct st_decl {
    char *name;
    enum mt_st_dtype dtype;
    int ndim;
    int64_t shape[8];
    uint64_t begin, end;
};

struct mt_st_writer {
    char path[4200], tmp[4300];
    FILE *f;
    int n, cap, next; /* declared, room, next to write */
    struct st_decl *d;
    int nmeta;
    char *meta[16][2];
    uint64_t total;
};

struct mt_st_writer *mt_st_writer_new(const char *path)
{
    struct mt_st_writer *w = calloc(1, sizeof *w);
    if (!w) mt_die("out of memory");
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
    return w;
}

void mt_st_writer_declare(struct mt_st_writer *w, const char *name, enum mt_st_dtype dtype,
                          int ndim, const int64_t *shape)
{
    MT_ASSERT(!w->f && ndim >= 0 && ndim <= 8);
    MT_ASSERT(dtype == MT_ST_F32 || dtype == MT_ST_F16 || dtype == MT_ST_BF16);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->d = realloc(w->d, (size_t)w->cap * sizeof *w->d);
        if (!w->d) mt_die("out of memory");
    }
    struct st_decl *e = &w->d[w->n++];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name) mt_die("out of memory");
    e->dtype = dtype;
    e->ndim = ndim;
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i], numel *= (uint64_t)shape[i];
    e->begin = w->total;
    e->end = w->total + numel * dtype_bytes(dtype);
    w->total = e->end;
}

void mt_st_writer_metadata(struct mt_st_writer *w, const char *key, const char *value)
{
    MT_ASSERT(!w->f && w->nmeta < 16);
    w->meta[w->nmeta][0] = strdup(key);
    w->meta[w->nmeta][1] = strdup(value);
    w->nmeta++;
}

/* a JSON string (the names and values are the writer's own: plain ASCII
 * expected, quotes and backslashes escaped) */
static void put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_header(struct mt_st_writer *w)
{
    /* the header text first, to know its length */
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) mt_die("out of memory");
    fputs("{\"__metadata__\":{\"format\":\"pt\"", m);
    for (int i = 0; i < w->nmeta; i++) {
        fputc(',', m);
        put_str(m, w->meta[i][0]);
        fputc(':', m);
        put_str(m, w->meta[i][1]);
    }
    fputc('}', m);
    for (int i = 0; i < w->n; i++) {
        const struct st_decl *e = &w->d[i];
        fputc(',', m);
        put_str(m, e->name);
        fprintf(m, ":{\"dtype\":\"%s\",\"shape\":[", mt_st_dtype_name(e->dtype));
        for (int k = 0; k < e->ndim; k++) fprintf(m, "%s%lld", k ? "," : "", (long long)e->shape[k]);
        fprintf(m, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)e->begin,
                (unsigned long long)e->end);
    }
    fputc('}', m);
    fclose(m);
    buf = realloc(buf, len + 8);
    if (!buf) mt_die("out of memory");
    while (len % 8) buf[len++] = ' '; /* padded with spaces, as the reference does */
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)len >> (8 * i));
    mt_fwrite_all(w->f, len8, 8, w->tmp);
    mt_fwrite_all(w->f, buf, len, w->tmp);
    free(buf);
}

void mt_st_writer_data(struct mt_st_writer *w, const char *name, const float *data)
{
    if (!w->f) {
        w->f = fopen(w->tmp, "wb");
        if (!w->f) mt_user_error("check that the --save directory is writable", "cannot create %s: %s",
                                 w->tmp, strerror(errno));
        write_header(w);
    }
    MT_ASSERT(w->next < w->n && strcmp(w->d[w->next].name, name) == 0);
    const struct st_decl *e = &w->d[w->next++];
    const size_t es = dtype_bytes(e->dtype), n = (size_t)((e->end - e->begin) / es);
    if (e->dtype == MT_ST_F32) {
        mt_fwrite_all(w->f, data, n * 4, w->tmp);
        return;
    }
    uint16_t chunk[4096];
    for (size_t i = 0; i < n; i += 4096) {
        size_t k = n - i < 4096 ? n - i : 4096;
        for (size_t j = 0; j < k; j++)
            chunk[j] = e->dtype == MT_ST_F16 ? mt_f32_to_f16(data[i + j]) : mt_f32_to_bf16(data[i + j]);
        mt_fwrite_all(w->f, chunk, k * 2, w->tmp);
    }
}

void mt_st_writer_close(struct mt_st_writer *w)
{
    MT_ASSERT(w->next == w->n);
    if (!w->f) { /* no tensors: the header alone */
        w->f = fopen(w->tmp, "wb");
        if (!w->f) mt_user_error(NULL, "cannot create %s: %s", w->tmp, strerror(errno));
        write_header(w);
    }
    if (fflush(w->f) != 0 || fclose(w->f) != 0)
        mt_user_error("check free disk space", "cannot finish writing %s: %s", w->tmp, strerror(errno));
    if (rename(w->tmp, w->path) != 0)
        mt_user_error(NULL, "cannot rename %s to %s: %s", w->tmp, w->path, strerror(errno));
    for (int i = 0; i < w->n; i++) free(w->d[i].name);
    for (int i = 0; i < w->nmeta; i++) free(w->meta[i][0]), free(w->meta[i][1]);
    free(w->d);
    free(w);
}
