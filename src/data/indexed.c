/* indexed.c: see indexed.h */
#include "data/indexed.h"
#include "core/mapped.h"
#include "core/error.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const unsigned char MAGIC[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
#define HEADER_SIZE 34

int mt_indexed_optimal_dtype(int vocab_size)
{
    return vocab_size < 65500 ? MT_IDX_UINT16 : MT_IDX_INT32;
}

const char *mt_indexed_dtype_name(int code)
{
    static const char *const names[] = {"?",     "uint8",   "int8",    "int16",  "int32",
                                        "int64", "float64", "float32", "uint16"};
    return code >= 1 && code <= 8 ? names[code] : "unknown";
}

static int itemsize_of(int code)
{
    return code == MT_IDX_UINT16 ? 2 : code == MT_IDX_INT32 ? 4 : 0;
}

static char *str_cat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s) mt_die("out of memory");
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

/* the file name without its directories, for messages that name two files */
static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = v << 8 | p[k];
    return v;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int k = 0; k < 8; k++) p[k] = (unsigned char)(v >> (8 * k));
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> (8 * k));
}

/* ---- reader ------------------------------------------------------------------- */

int32_t mt_indexed_length(const struct mt_indexed *x, uint64_t i)
{
    return (int32_t)get_u32(x->idx + HEADER_SIZE + 4 * i);
}

int64_t mt_indexed_pointer(const struct mt_indexed *x, uint64_t i)
{
    return (int64_t)get_u64(x->idx + HEADER_SIZE + 4 * x->num_sequences + 8 * i);
}

int64_t mt_indexed_doc_index(const struct mt_indexed *x, uint64_t j)
{
    return (int64_t)get_u64(x->idx + HEADER_SIZE + 12 * x->num_sequences + 8 * j);
}

/* Maps (or reads) a whole file; size 0 gives a non-NULL empty buffer. */
static int load_file(const char *path, const unsigned char **data, size_t *size, int *mapped,
                     char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return mt_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mt_errf(err, errlen, "%s is not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    *size = n;
    *mapped = 0;
    if (n > 0) {
        void *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            *data = p;
            *mapped = 1;
            mt_mapped_register(p, n, path);
            close(fd);
            return 0;
        }
    }
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return mt_errf(err, errlen, "out of memory reading %s (%zu bytes)", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            close(fd);
            return mt_errf(err, errlen, "error reading %s: %s", path,
                        r < 0 ? strerror(errno) : "file shrank while reading");
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    return 0;
}

static int check_index(struct mt_indexed *x, char *err, size_t errlen)
{
    const char *ip = x->idx_path;
    const unsigned char *h = x->idx;
    size_t size = x->idx_size;
    if (size < 9 || memcmp(h, MAGIC, 9) != 0) {
        if (size >= 6 && memcmp(h, "TNTIDX", 6) == 0)
            return mt_errf(err, errlen,
                        "%s: legacy \"TNTIDX\" (fairseq lazy/cached) index; only the "
                        "\"MMIDIDX\" format is read: re-run preprocessing with the mmap format",
                        ip);
        if (size < 9)
            return mt_errf(err, errlen,
                        "%s: truncated: %zu bytes, shorter than the 34-byte header", ip, size);
        return mt_errf(err, errlen,
                    "%s: wrong magic: not a Megatron indexed dataset index (expected "
                    "\"MMIDIDX\\0\\0\")",
                    ip);
    }
    if (size < HEADER_SIZE)
        return mt_errf(err, errlen, "%s: truncated: %zu bytes, shorter than the 34-byte header",
                    ip, size);
    uint64_t version = get_u64(h + 9);
    if (version != 1)
        return mt_errf(err, errlen, "%s: version %llu is not supported (only version 1)", ip,
                    (unsigned long long)version);
    int code = h[17];
    if (code != MT_IDX_UINT16 && code != MT_IDX_INT32) {
        if (code >= 1 && code <= 8)
            return mt_errf(err, errlen,
                        "%s: dtype code %d (%s) is not a token type: only 8 (uint16) and 4 "
                        "(int32) are read",
                        ip, code, mt_indexed_dtype_name(code));
        return mt_errf(err, errlen, "%s: unknown dtype code %d (known: 1..8)", ip, code);
    }
    x->dtype = code;
    x->itemsize = itemsize_of(code);
    uint64_t n = get_u64(h + 18), m = get_u64(h + 26);
    x->num_sequences = n;
    x->num_doc_indices = m;
    uint64_t room = (uint64_t)(size - HEADER_SIZE);
    if (n > room / 12 || m > (room - 12 * n) / 8)
        return mt_errf(err, errlen,
                    "%s: truncated or corrupt: sequence_count = %llu and document_count = %llu "
                    "do not fit in its %zu bytes",
                    ip, (unsigned long long)n, (unsigned long long)m, size);
    uint64_t want = HEADER_SIZE + 12 * n + 8 * m;
    if (size != want && size != want + n)
        return mt_errf(err, errlen,
                    "%s: size %zu bytes does not match sequence_count = %llu and document_count "
                    "= %llu (expected %llu bytes)",
                    ip, size, (unsigned long long)n, (unsigned long long)m,
                    (unsigned long long)want);
    if (m < 1)
        return mt_errf(err, errlen, "%s: document_count = 0: document_indices must hold at least "
                    "the leading 0", ip);
    /* lengths and pointers: consecutive, non-overlapping, inside .bin */
    uint64_t end = 0;
    for (uint64_t i = 0; i < n; i++) {
        int32_t len = mt_indexed_length(x, i);
        int64_t ptr = mt_indexed_pointer(x, i);
        if (len < 0)
            return mt_errf(err, errlen, "%s: sequence_lengths[%llu] = %d is negative", ip,
                        (unsigned long long)i, len);
        if (ptr < 0 || (uint64_t)ptr < end)
            return mt_errf(err, errlen,
                        "%s: sequence_pointers[%llu] = %lld overlaps the previous sequence "
                        "(which ends at byte %llu of %s)",
                        ip, (unsigned long long)i, (long long)ptr, (unsigned long long)end,
                        base_name(x->bin_path));
        end = (uint64_t)ptr + (uint64_t)len * (uint64_t)x->itemsize;
        if ((uint64_t)ptr > x->bin_size)
            return mt_errf(err, errlen,
                        "%s: sequence_pointers[%llu] = %lld points past the end of %s (%llu "
                        "bytes)",
                        ip, (unsigned long long)i, (long long)ptr, base_name(x->bin_path),
                        (unsigned long long)x->bin_size);
        if (end > x->bin_size)
            return mt_errf(err, errlen,
                        "%s: sequence %llu (sequence_pointers[%llu] = %lld, sequence_lengths = "
                        "%d tokens of %d bytes) runs past the end of %s (%llu bytes)",
                        ip, (unsigned long long)i, (unsigned long long)i, (long long)ptr, len,
                        x->itemsize, base_name(x->bin_path), (unsigned long long)x->bin_size);
    }
    if (end != x->bin_size)
        return mt_errf(err, errlen,
                    "%s: the index describes %llu bytes of tokens but %s has %llu: the two "
                    "files do not belong together",
                    ip, (unsigned long long)end, base_name(x->bin_path),
                    (unsigned long long)x->bin_size);
    int64_t prev = 0;
    for (uint64_t j = 0; j < m; j++) {
        int64_t d = mt_indexed_doc_index(x, j);
        if (j == 0 && d != 0)
            return mt_errf(err, errlen, "%s: document_indices[0] = %lld (must be 0)", ip,
                        (long long)d);
        if (d < prev || (uint64_t)d > n)
            return mt_errf(err, errlen,
                        "%s: document_indices[%llu] = %lld is out of order (previous %lld, "
                        "sequence_count %llu)",
                        ip, (unsigned long long)j, (long long)d, (long long)prev,
                        (unsigned long long)n);
        prev = d;
    }
    if ((uint64_t)prev != n)
        return mt_errf(err, errlen,
                    "%s: document_indices ends at %lld but sequence_count = %llu (the last "
                    "entry must equal it)",
                    ip, (long long)prev, (unsigned long long)n);
    return 0;
}

struct mt_indexed *mt_indexed_open(const char *prefix, char *err, size_t errlen)
{
    struct mt_indexed *x = calloc(1, sizeof *x);
    if (!x) mt_die("out of memory");
    x->bin_fd = -1;
    x->prefix = str_cat(prefix, "");
    x->idx_path = str_cat(prefix, ".idx");
    x->bin_path = str_cat(prefix, ".bin");
    if (load_file(x->idx_path, &x->idx, &x->idx_size, &x->idx_mapped, err, errlen) != 0) {
        x->idx = NULL;
        mt_indexed_close(x);
        return NULL;
    }
    x->bin_fd = open(x->bin_path, O_RDONLY);
    struct stat st;
    if (x->bin_fd < 0 || fstat(x->bin_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (x->bin_fd < 0)
            mt_errf(err, errlen, "cannot open %s: %s (it goes with %s)", x->bin_path,
                 strerror(errno), base_name(x->idx_path));
        else
            mt_errf(err, errlen, "%s is not a regular file", x->bin_path);
        mt_indexed_close(x);
        return NULL;
    }
    x->bin_size = (uint64_t)st.st_size;
    if (check_index(x, err, errlen) != 0) {
        mt_indexed_close(x);
        return NULL;
    }
    if (x->bin_size > 0) {
        void *p = mmap(NULL, (size_t)x->bin_size, PROT_READ, MAP_SHARED, x->bin_fd, 0);
        if (p != MAP_FAILED) { /* else: pread */
            x->bin = p;
            mt_mapped_register(p, (size_t)x->bin_size, x->bin_path);
        }
    }
    return x;
}

void mt_indexed_close(struct mt_indexed *x)
{
    if (!x) return;
    if (x->idx) {
        if (x->idx_mapped) {
            mt_mapped_unregister(x->idx);
            munmap((void *)x->idx, x->idx_size);
        }
        else free((void *)x->idx);
    }
    if (x->bin) {
        mt_mapped_unregister(x->bin);
        munmap((void *)x->bin, (size_t)x->bin_size);
    }
    if (x->bin_fd >= 0) close(x->bin_fd);
    free(x->prefix);
    free(x->idx_path);
    free(x->bin_path);
    free(x);
}

static void convert(const struct mt_indexed *x, const unsigned char *p, uint64_t len,
                    int32_t *out)
{
    if (x->dtype == MT_IDX_UINT16)
        for (uint64_t k = 0; k < len; k++)
            out[k] = (int32_t)((uint32_t)p[2 * k] | (uint32_t)p[2 * k + 1] << 8);
    else
        for (uint64_t k = 0; k < len; k++) out[k] = (int32_t)get_u32(p + 4 * k);
}

void mt_indexed_read(const struct mt_indexed *x, uint64_t i, uint64_t offset, uint64_t len,
                     int32_t *out)
{
    MT_ASSERT(i < x->num_sequences);
    MT_ASSERT(offset + len <= (uint64_t)mt_indexed_length(x, i));
    if (len == 0) return;
    uint64_t start = (uint64_t)mt_indexed_pointer(x, i) + offset * (uint64_t)x->itemsize;
    uint64_t nbytes = len * (uint64_t)x->itemsize;
    if (x->bin) {
        convert(x, x->bin + start, len, out);
        return;
    }
    unsigned char buf[8192];
    uint64_t done = 0; /* tokens */
    while (done < len) {
        uint64_t chunk = len - done;
        if (chunk * (uint64_t)x->itemsize > sizeof buf) chunk = sizeof buf / (uint64_t)x->itemsize;
        size_t want = (size_t)(chunk * (uint64_t)x->itemsize), got = 0;
        while (got < want) {
            ssize_t r = pread(x->bin_fd, buf + got, want - got,
                              (off_t)(start + done * (uint64_t)x->itemsize + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0)
                mt_user_error("check that the file is not being modified while training",
                              "error reading %s at byte %llu: %s", x->bin_path,
                              (unsigned long long)(start + done * (uint64_t)x->itemsize + got),
                              r < 0 ? strerror(errno) : "unexpected end of file");
            got += (size_t)r;
        }
        convert(x, buf, chunk, out + done);
        done += chunk;
    }
    (void)nbytes;
}

/* ---- writer ------------------------------------------------------------------- */

struct mt_indexed_writer {
    char *prefix;
    char *bin_final, *idx_final, *bin_tmp, *idx_tmp, *len_tmp, *doc_tmp;
    FILE *bin, *len, *doc; /* .bin, and the lengths / document_indices spilled to disk */
    int dtype, itemsize;
    uint64_t nseq, ndoc_idx, ntok, ndocs, pending;
    unsigned char *buf;
    size_t bufcap;
};

static char *tmp_name(const char *final, const char *what)
{
    char *s = malloc(strlen(final) + 64);
    if (!s) mt_die("out of memory");
    sprintf(s, "%s%s.tmp-%ld", final, what, (long)getpid());
    return s;
}

static void writer_free(struct mt_indexed_writer *w)
{
    if (w->bin) fclose(w->bin);
    if (w->len) fclose(w->len);
    if (w->doc) fclose(w->doc);
    free(w->prefix);
    free(w->bin_final);
    free(w->idx_final);
    free(w->bin_tmp);
    free(w->idx_tmp);
    free(w->len_tmp);
    free(w->doc_tmp);
    free(w->buf);
    free(w);
}

void mt_indexed_writer_abort(struct mt_indexed_writer *w)
{
    if (!w) return;
    if (w->bin) fclose(w->bin);
    if (w->len) fclose(w->len);
    if (w->doc) fclose(w->doc);
    w->bin = w->len = w->doc = NULL;
    remove(w->bin_tmp);
    remove(w->idx_tmp);
    remove(w->len_tmp);
    remove(w->doc_tmp);
    writer_free(w);
}

static int wr(FILE *f, const void *p, size_t n, const char *path, char *err, size_t errlen)
{
    if (n && fwrite(p, 1, n, f) != n)
        return mt_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

struct mt_indexed_writer *mt_indexed_writer_open(const char *prefix, int dtype, char *err,
                                                 size_t errlen)
{
    if (dtype != MT_IDX_UINT16 && dtype != MT_IDX_INT32) {
        mt_errf(err, errlen, "indexed writer: dtype code %d is not a token type", dtype);
        return NULL;
    }
    struct mt_indexed_writer *w = calloc(1, sizeof *w);
    if (!w) mt_die("out of memory");
    w->prefix = str_cat(prefix, "");
    w->bin_final = str_cat(prefix, ".bin");
    w->idx_final = str_cat(prefix, ".idx");
    w->bin_tmp = tmp_name(w->bin_final, "");
    w->idx_tmp = tmp_name(w->idx_final, "");
    w->len_tmp = tmp_name(w->idx_final, ".lengths");
    w->doc_tmp = tmp_name(w->idx_final, ".docs");
    w->dtype = dtype;
    w->itemsize = itemsize_of(dtype);
    const char *bad = NULL;
    if (!(w->bin = fopen(w->bin_tmp, "wb"))) bad = w->bin_final;
    else if (!(w->len = fopen(w->len_tmp, "w+b"))) bad = w->idx_final;
    else if (!(w->doc = fopen(w->doc_tmp, "w+b"))) bad = w->idx_final;
    if (bad) {
        mt_errf(err, errlen, "cannot create %s: %s", bad, strerror(errno));
        mt_indexed_writer_abort(w);
        return NULL;
    }
    /* document_indices starts with 0 */
    unsigned char z[8];
    put_u64(z, 0);
    if (wr(w->doc, z, 8, w->doc_tmp, err, errlen) != 0) {
        mt_indexed_writer_abort(w);
        return NULL;
    }
    w->ndoc_idx = 1;
    return w;
}

int mt_indexed_writer_append(struct mt_indexed_writer *w, const int32_t *ids, size_t n,
                             char *err, size_t errlen)
{
    if (n == 0) return 0;
    if (n > (uint64_t)INT32_MAX - w->pending)
        return mt_errf(err, errlen, "%s: document %llu has more than 2^31-1 tokens: a sequence "
                    "cannot hold them", w->bin_final, (unsigned long long)w->ndocs);
    size_t need = n * (size_t)w->itemsize;
    if (need > w->bufcap) {
        free(w->buf);
        w->bufcap = need > 65536 ? need : 65536;
        w->buf = malloc(w->bufcap);
        if (!w->buf) mt_die("out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        int32_t v = ids[k];
        if (w->dtype == MT_IDX_UINT16) {
            if (v < 0 || v > 65535)
                return mt_errf(err, errlen,
                            "%s: token id %d (document %llu) does not fit the uint16 dtype",
                            w->bin_final, v, (unsigned long long)w->ndocs);
            w->buf[2 * k] = (unsigned char)v;
            w->buf[2 * k + 1] = (unsigned char)(v >> 8);
        } else {
            put_u32(w->buf + 4 * k, (uint32_t)v);
        }
    }
    if (wr(w->bin, w->buf, need, w->bin_tmp, err, errlen) != 0) return -1;
    w->pending += n;
    w->ntok += n;
    return 0;
}

int mt_indexed_writer_end_sequence(struct mt_indexed_writer *w, char *err, size_t errlen)
{
    unsigned char b[4];
    put_u32(b, (uint32_t)w->pending);
    if (wr(w->len, b, 4, w->len_tmp, err, errlen) != 0) return -1;
    w->nseq++;
    w->pending = 0;
    return 0;
}

int mt_indexed_writer_end_document(struct mt_indexed_writer *w, char *err, size_t errlen)
{
    unsigned char b[8];
    MT_ASSERT(w->pending == 0);
    put_u64(b, w->nseq);
    if (wr(w->doc, b, 8, w->doc_tmp, err, errlen) != 0) return -1;
    w->ndoc_idx++;
    w->ndocs++;
    return 0;
}

int mt_indexed_writer_add(struct mt_indexed_writer *w, const int32_t *ids, size_t n, char *err,
                          size_t errlen)
{
    MT_ASSERT(w->pending == 0);
    if (n > 0 && (mt_indexed_writer_append(w, ids, n, err, errlen) != 0 ||
                  mt_indexed_writer_end_sequence(w, err, errlen) != 0))
        return -1;
    return mt_indexed_writer_end_document(w, err, errlen);
}

uint64_t mt_indexed_writer_pending(const struct mt_indexed_writer *w) { return w->pending; }
uint64_t mt_indexed_writer_documents(const struct mt_indexed_writer *w) { return w->ndocs; }
uint64_t mt_indexed_writer_tokens(const struct mt_indexed_writer *w) { return w->ntok; }
uint64_t mt_indexed_writer_sequences(const struct mt_indexed_writer *w) { return w->nseq; }

/* copies the whole of src (rewound) to dst; with pointers != 0, writes the
 * running byte offsets of the int32 lengths in src instead */
static int copy_stream(FILE *src, const char *src_path, FILE *dst, const char *dst_path,
                       int pointers, int itemsize, char *err, size_t errlen)
{
    if (fflush(src) != 0 || fseek(src, 0, SEEK_SET) != 0)
        return mt_errf(err, errlen, "cannot rewind %s: %s", src_path, strerror(errno));
    unsigned char in[65536], out[2 * 65536];
    uint64_t pos = 0;
    size_t r;
    while ((r = fread(in, 1, sizeof in, src)) > 0) {
        if (!pointers) {
            if (wr(dst, in, r, dst_path, err, errlen) != 0) return -1;
            continue;
        }
        MT_ASSERT(r % 4 == 0);
        for (size_t k = 0; k < r / 4; k++) {
            put_u64(out + 8 * k, pos);
            pos += (uint64_t)get_u32(in + 4 * k) * (uint64_t)itemsize;
        }
        if (wr(dst, out, 2 * r, dst_path, err, errlen) != 0) return -1;
    }
    if (ferror(src)) return mt_errf(err, errlen, "error reading %s: %s", src_path, strerror(errno));
    return 0;
}

int mt_indexed_writer_finalize(struct mt_indexed_writer *w, char *err, size_t errlen)
{
    FILE *idx = NULL;
    MT_ASSERT(w->pending == 0);
    if (fflush(w->bin) != 0 || ferror(w->bin)) {
        mt_errf(err, errlen, "cannot write %s: %s", w->bin_tmp, strerror(errno));
        goto bad;
    }
    if (fclose(w->bin) != 0) {
        w->bin = NULL;
        mt_errf(err, errlen, "cannot write %s: %s", w->bin_tmp, strerror(errno));
        goto bad;
    }
    w->bin = NULL;
    idx = fopen(w->idx_tmp, "wb");
    if (!idx) {
        mt_errf(err, errlen, "cannot create %s: %s", w->idx_tmp, strerror(errno));
        goto bad;
    }
    unsigned char h[HEADER_SIZE];
    memcpy(h, MAGIC, 9);
    put_u64(h + 9, 1);
    h[17] = (unsigned char)w->dtype;
    put_u64(h + 18, w->nseq);
    put_u64(h + 26, w->ndoc_idx);
    if (wr(idx, h, sizeof h, w->idx_tmp, err, errlen) != 0 ||
        copy_stream(w->len, w->len_tmp, idx, w->idx_tmp, 0, 0, err, errlen) != 0 ||
        copy_stream(w->len, w->len_tmp, idx, w->idx_tmp, 1, w->itemsize, err, errlen) != 0 ||
        copy_stream(w->doc, w->doc_tmp, idx, w->idx_tmp, 0, 0, err, errlen) != 0)
        goto bad;
    if (fflush(idx) != 0 || ferror(idx)) {
        mt_errf(err, errlen, "cannot write %s: %s", w->idx_tmp, strerror(errno));
        goto bad;
    }
    int rc = fclose(idx);
    idx = NULL;
    if (rc != 0) {
        mt_errf(err, errlen, "cannot write %s: %s", w->idx_tmp, strerror(errno));
        goto bad;
    }
    if (rename(w->bin_tmp, w->bin_final) != 0) {
        mt_errf(err, errlen, "cannot rename %s to %s: %s", w->bin_tmp, w->bin_final,
             strerror(errno));
        goto bad;
    }
    if (rename(w->idx_tmp, w->idx_final) != 0) {
        mt_errf(err, errlen, "cannot rename %s to %s: %s", w->idx_tmp, w->idx_final,
             strerror(errno));
        remove(w->bin_final); /* a .bin without its .idx would only mislead */
        goto bad;
    }
    fclose(w->len);
    fclose(w->doc);
    w->len = w->doc = NULL;
    remove(w->len_tmp);
    remove(w->doc_tmp);
    writer_free(w);
    return 0;
bad:
    if (idx) fclose(idx);
    mt_indexed_writer_abort(w);
    return -1;
}
