/* test_indexed.c: Megatron's indexed dataset (.bin/.idx) and GPT sampling.
 *
 *  - the writer reproduces the reference's worked example byte for byte
 *    (tests/data/golden_text_document.{bin,idx}, made from the hex dump);
 *  - the reader reads it back, the int32 path, empty documents;
 *  - every malformed file gives a clean message naming the file and field;
 *  - MT19937 / random_interval / shuffle / normalize / --split equal numpy and
 *    Megatron, and the GPT and blended index arrays equal those of
 *    tests/data/gen_gpt_index_golden.py (Megatron's algorithm on numpy);
 *  - determinism, permutations, every token of a split covered, samples that
 *    straddle documents, blend proportions within 1% over 100k samples.
 *
 * Finds tests/data from $MT_SRCDIR (set by make check), else from the
 * program's directory. Scratch files go to a fresh directory under $TMPDIR. */
#include "core/error.h"
#include "core/io.h"
#include "data/gpt_dataset.h"
#include "data/indexed.h"
#include "tap.h"
#include "testutil.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_src[4096], g_tmp[4096];

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    unsigned char *b = malloc(cap);
    size_t r;
    while ((r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) b = realloc(b, cap *= 2);
    }
    fclose(f);
    *n = len;
    return b;
}

static int spew(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int files_equal(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *pa = slurp(a, &na), *pb = slurp(b, &nb);
    int eq = pa && pb && na == nb && memcmp(pa, pb, na) == 0;
    if (!eq && pa && pb) {
        size_t k = 0;
        while (k < na && k < nb && pa[k] == pb[k]) k++;
        tap_diag("%s (%zu bytes) and %s (%zu bytes) differ at byte %zu", a, na, b, nb, k);
    }
    free(pa);
    free(pb);
    return eq;
}

/* number of entries in a directory (without . and ..) */
static int count_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void rm_dir_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[8192];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            remove(p);
        }
    closedir(d);
}

/* ---- writer and reader ------------------------------------------------------------ */

static void check_writer_golden(void)
{
    char sub[4200], prefix[4300], a[4400], b[4400];
    snprintf(sub, sizeof sub, "%s/w", g_tmp);
    mt_mkdir_p(sub);
    snprintf(prefix, sizeof prefix, "%s/x_text_document", sub);
    char err[512] = "";
    struct mt_indexed_writer *w = mt_indexed_writer_open(prefix, MT_IDX_UINT16, err, sizeof err);
    tap_ok(w != NULL, "writer opens (%s)", err);
    if (!w) return;
    const int32_t d0[] = {15496, 995, 50256}, d1[] = {40, 50256};
    int rc = mt_indexed_writer_add(w, d0, 3, err, sizeof err);
    rc |= mt_indexed_writer_add(w, d1, 2, err, sizeof err);
    tap_ok(count_dir(sub) == 3, "while writing, only temporary files exist (%d)", count_dir(sub));
    tap_ok(mt_indexed_writer_documents(w) == 2 && mt_indexed_writer_tokens(w) == 5,
           "writer counts 2 documents, 5 tokens");
    rc |= mt_indexed_writer_finalize(w, err, sizeof err);
    tap_ok(rc == 0, "writer finalizes (%s)", err);
    snprintf(a, sizeof a, "%s.idx", prefix);
    snprintf(b, sizeof b, "%s/tests/data/golden_text_document.idx", g_src);
    tap_ok(files_equal(a, b), "the .idx equals the reference's 82-byte example byte for byte");
    snprintf(a, sizeof a, "%s.bin", prefix);
    snprintf(b, sizeof b, "%s/tests/data/golden_text_document.bin", g_src);
    tap_ok(files_equal(a, b), "the .bin equals the reference's 10-byte example byte for byte");
    tap_ok(count_dir(sub) == 2, "no temporary file is left (%d entries)", count_dir(sub));

    /* abort leaves nothing */
    snprintf(prefix, sizeof prefix, "%s/y_text_document", sub);
    w = mt_indexed_writer_open(prefix, MT_IDX_INT32, err, sizeof err);
    mt_indexed_writer_add(w, d0, 3, err, sizeof err);
    mt_indexed_writer_abort(w);
    tap_ok(count_dir(sub) == 2, "an aborted writer leaves no file");

    /* uint16 rejects an id that does not fit */
    const int32_t big[] = {1, 70000};
    w = mt_indexed_writer_open(prefix, MT_IDX_UINT16, err, sizeof err);
    rc = mt_indexed_writer_add(w, big, 2, err, sizeof err);
    tap_ok(rc != 0 && strstr(err, "token id 70000") && strstr(err, "uint16"),
           "uint16 writer rejects id 70000: %s", err);
    mt_indexed_writer_abort(w);

    /* missing directory */
    snprintf(prefix, sizeof prefix, "%s/no/such/dir/x", g_tmp);
    w = mt_indexed_writer_open(prefix, MT_IDX_UINT16, err, sizeof err);
    tap_ok(!w && strstr(err, "cannot create") && strstr(err, "no/such/dir"),
           "missing output directory: %s", err);
    rm_dir_files(sub);
}

static void check_reader(void)
{
    char prefix[4300], err[512] = "";
    snprintf(prefix, sizeof prefix, "%s/tests/data/golden_text_document", g_src);
    struct mt_indexed *x = mt_indexed_open(prefix, err, sizeof err);
    tap_ok(x != NULL, "reader opens the golden pair (%s)", err);
    if (!x) return;
    tap_ok(x->dtype == MT_IDX_UINT16 && x->itemsize == 2 && x->num_sequences == 2 &&
               x->num_doc_indices == 3 && x->bin_size == 10,
           "header: uint16, N = 2, M = 3, 10-byte .bin");
    tap_ok(mt_indexed_length(x, 0) == 3 && mt_indexed_length(x, 1) == 2 &&
               mt_indexed_pointer(x, 0) == 0 && mt_indexed_pointer(x, 1) == 6 &&
               mt_indexed_doc_index(x, 0) == 0 && mt_indexed_doc_index(x, 1) == 1 &&
               mt_indexed_doc_index(x, 2) == 2,
           "lengths {3,2}, pointers {0,6}, document_indices {0,1,2}");
    int32_t t[3] = {0};
    mt_indexed_read(x, 0, 0, 3, t);
    int ok = t[0] == 15496 && t[1] == 995 && t[2] == 50256;
    mt_indexed_read(x, 1, 1, 1, t);
    ok &= t[0] == 50256;
    mt_indexed_read(x, 0, 1, 2, t);
    ok &= t[0] == 995 && t[1] == 50256;
    tap_ok(ok, "tokens read back, with offsets");
    mt_indexed_close(x);
}

static void check_int32_and_empty(void)
{
    char prefix[4300], err[512] = "";
    snprintf(prefix, sizeof prefix, "%s/i32", g_tmp);
    struct mt_indexed_writer *w = mt_indexed_writer_open(prefix, MT_IDX_INT32, err, sizeof err);
    const int32_t d0[] = {70000, 0, 2147483647, 5}, d2[] = {123456789};
    int rc = mt_indexed_writer_add(w, d0, 4, err, sizeof err);
    rc |= mt_indexed_writer_add(w, NULL, 0, err, sizeof err); /* an empty document */
    rc |= mt_indexed_writer_add(w, d2, 1, err, sizeof err);
    rc |= mt_indexed_writer_finalize(w, err, sizeof err);
    tap_ok(rc == 0, "int32 writer (%s)", err);
    struct mt_indexed *x = mt_indexed_open(prefix, err, sizeof err);
    tap_ok(x != NULL, "int32 dataset opens (%s)", err);
    if (!x) return;
    int32_t t[4];
    mt_indexed_read(x, 0, 0, 4, t);
    int ok = x->dtype == MT_IDX_INT32 && x->bin_size == 20 && x->num_sequences == 2 &&
             t[0] == 70000 && t[1] == 0 && t[2] == 2147483647 && t[3] == 5;
    mt_indexed_read(x, 1, 0, 1, t);
    ok &= t[0] == 123456789 && mt_indexed_pointer(x, 1) == 16;
    tap_ok(ok, "int32 tokens above 65535 read back; pointers in bytes");
    /* Megatron's builder: an empty document adds a boundary but no sequence */
    tap_ok(x->num_doc_indices == 4 && mt_indexed_doc_index(x, 1) == 1 &&
               mt_indexed_doc_index(x, 2) == 1 && mt_indexed_doc_index(x, 3) == 2,
           "an empty document: document_indices {0,1,1,2}, N = 2");
    mt_indexed_close(x);
    tap_ok(mt_indexed_optimal_dtype(50257) == MT_IDX_UINT16 &&
               mt_indexed_optimal_dtype(65499) == MT_IDX_UINT16 &&
               mt_indexed_optimal_dtype(65500) == MT_IDX_INT32,
           "optimal dtype: uint16 below 65500, else int32");
}

/* writes PREFIX.idx / .bin from bytes and expects an error containing each of
 * the NULL-terminated fragments */
static void expect_bad(const char *name, const unsigned char *idx, size_t nidx,
                       const unsigned char *bin, long nbin, ...)
{
    char prefix[4300], p[4400], err[1024] = "";
    snprintf(prefix, sizeof prefix, "%s/bad_text_document", g_tmp);
    snprintf(p, sizeof p, "%s.idx", prefix);
    remove(p);
    if (idx) spew(p, idx, nidx);
    snprintf(p, sizeof p, "%s.bin", prefix);
    remove(p);
    if (nbin >= 0) spew(p, bin, (size_t)nbin);
    struct mt_indexed *x = mt_indexed_open(prefix, err, sizeof err);
    int ok = x == NULL;
    va_list ap;
    va_start(ap, nbin);
    const char *frag;
    while ((frag = va_arg(ap, const char *)))
        if (!strstr(err, frag)) {
            ok = 0;
            tap_diag("missing '%s'", frag);
        }
    va_end(ap);
    tap_ok(ok, "%s: %s", name, err);
    mt_indexed_close(x);
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int k = 0; k < 8; k++) p[k] = (unsigned char)(v >> (8 * k));
}

static void check_malformed(void)
{
    char path[4300];
    size_t ni, nb;
    snprintf(path, sizeof path, "%s/tests/data/golden_text_document.idx", g_src);
    unsigned char *idx = slurp(path, &ni);
    snprintf(path, sizeof path, "%s/tests/data/golden_text_document.bin", g_src);
    unsigned char *bin = slurp(path, &nb);
    unsigned char m[200], b[64];
    const char *I = "bad_text_document.idx", *B = "bad_text_document.bin";

    expect_bad("idx without its .bin", idx, ni,
               NULL, -1, I, "cannot open", B, NULL);
    static const size_t cuts[] = {0, 5, 9, 17, 20, 33, 34, 40, 60, 81};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        char name[64];
        snprintf(name, sizeof name, "idx truncated to %zu bytes", cuts[c]);
        expect_bad(name, idx, cuts[c], bin, (long)nb, I, cuts[c] < 34 ? "truncated" : "", NULL);
    }
    memcpy(m, idx, ni);
    m[0] = 'X';
    expect_bad("wrong magic", m, ni, bin, (long)nb, I, "wrong magic", NULL);
    memcpy(m, "TNTIDX\0\0", 8);
    expect_bad("legacy TNTIDX", m, ni, bin, (long)nb, I, "TNTIDX", NULL);
    memcpy(m, idx, ni);
    m[9] = 2;
    expect_bad("version 2", m, ni, bin, (long)nb, I, "version 2", NULL);
    memcpy(m, idx, ni);
    m[17] = 6;
    expect_bad("dtype 6", m, ni, bin, (long)nb, I, "dtype code 6 (float64)", NULL);
    m[17] = 99;
    expect_bad("dtype 99", m, ni, bin, (long)nb, I, "unknown dtype code 99", NULL);
    m[17] = 1;
    expect_bad("dtype 1", m, ni, bin, (long)nb, I, "dtype code 1 (uint8)", NULL);
    memcpy(m, idx, ni);
    put64(m + 18, 3);
    expect_bad("sequence_count too large for the file", m, ni, bin, (long)nb, I,
               "sequence_count = 3", NULL);
    memcpy(m, idx, ni);
    put64(m + 18, (uint64_t)1 << 62);
    expect_bad("sequence_count huge", m, ni, bin, (long)nb, I, "sequence_count", NULL);
    memcpy(m, idx, ni);
    put64(m + 26, 0);
    expect_bad("document_count 0 (file size no longer matches)", m, ni, bin, (long)nb, I,
               "document_count = 0", NULL);
    memcpy(m, idx, ni);
    put64(m + 34 + 8 + 8, 123456); /* sequence_pointers[1] */
    expect_bad("pointer past the end of .bin", m, ni, bin, (long)nb, I,
               "sequence_pointers[1] = 123456 points past the end of bad_text_document.bin (10 "
               "bytes)",
               NULL);
    memcpy(m, idx, ni);
    m[34] = 4; /* lengths[0] = 4: overlaps pointer[1] = 6 */
    expect_bad("lengths and pointers inconsistent", m, ni, bin, (long)nb, I,
               "sequence_pointers[1] = 6 overlaps", NULL);
    memcpy(m, idx, ni);
    m[38] = 0xff, m[39] = 0xff, m[40] = 0xff, m[41] = 0xff; /* lengths[1] = -1 */
    expect_bad("negative length", m, ni, bin, (long)nb, I, "sequence_lengths[1] = -1", NULL);
    memcpy(m, idx, ni);
    m[38] = 3; /* lengths[1] = 3: runs past the 10-byte .bin */
    expect_bad("sequence runs past .bin", m, ni, bin, (long)nb, I, "sequence 1",
               "runs past the end of bad_text_document.bin (10 bytes)", NULL);
    memcpy(m, idx, ni);
    put64(m + 34 + 24 + 16, 1); /* document_indices[2] = 1 */
    expect_bad("document_indices not ending at N", m, ni, bin, (long)nb, I,
               "document_indices ends at 1 but sequence_count = 2", NULL);
    memcpy(m, idx, ni);
    put64(m + 34 + 24, 1); /* document_indices[0] = 1 */
    expect_bad("document_indices not starting at 0", m, ni, bin, (long)nb, I,
               "document_indices[0] = 1", NULL);
    memcpy(m, idx, ni);
    put64(m + 34 + 24 + 8, 5); /* document_indices[1] = 5 > N */
    expect_bad("document_indices out of order", m, ni, bin, (long)nb, I,
               "document_indices[1] = 5", NULL);
    expect_bad("missing .bin", idx, ni, NULL, -1, I, "cannot open", B, NULL);
    expect_bad("missing .idx", NULL, 0, bin, (long)nb, "cannot open", I, NULL);
    memcpy(b, bin, nb);
    b[nb] = 0;
    b[nb + 1] = 0;
    expect_bad(".bin longer than the index says", idx, ni, b, (long)nb + 2, I,
               "do not belong together", NULL);
    expect_bad(".bin truncated", idx, ni, bin, (long)nb - 1, I, "runs past the end", NULL);
    memcpy(m, idx, ni);
    memset(m + ni, 0, 3);
    expect_bad("idx with 3 extra bytes", m, ni + 3, bin, (long)nb, I, "does not match", NULL);
    /* a multimodal index (N extra bytes of modes) is accepted */
    char prefix[4300], p2[4400], err[512] = "";
    snprintf(prefix, sizeof prefix, "%s/mm_text_document", g_tmp);
    memcpy(m, idx, ni);
    memset(m + ni, 0, 2);
    snprintf(p2, sizeof p2, "%s.idx", prefix);
    spew(p2, m, ni + 2);
    snprintf(p2, sizeof p2, "%s.bin", prefix);
    spew(p2, bin, nb);
    struct mt_indexed *x = mt_indexed_open(prefix, err, sizeof err);
    tap_ok(x != NULL, "an index with sequence_modes (multimodal) opens (%s)", err);
    mt_indexed_close(x);
    free(idx);
    free(bin);
    rm_dir_files(g_tmp);
}

/* ---- the golden file ------------------------------------------------------------- */

static int64_t *parse_ints(char *s, size_t *n)
{
    size_t cap = 64, k = 0;
    int64_t *v = malloc(cap * sizeof *v);
    char *e;
    while (*s) {
        while (*s == ' ') s++;
        if (!*s || *s == '\n') break;
        long long x = strtoll(s, &e, 10);
        if (e == s) break;
        if (k == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        v[k++] = x;
        s = e;
    }
    *n = k;
    return v;
}

/* compares a golden array with n values against got(i) */
#define CMP_ARRAY(label, vals, nvals, count, expr) \
    do { \
        size_t bad_ = (size_t)-1; \
        int ok_ = (nvals) == (size_t)(count); \
        for (size_t i = 0; ok_ && i < (nvals); i++) \
            if ((int64_t)(expr) != (vals)[i]) { \
                ok_ = 0; \
                bad_ = i; \
            } \
        if (!ok_ && bad_ != (size_t)-1) { \
            size_t i = bad_; \
            tap_diag("first difference at %zu: got %lld, want %lld", i, (long long)(expr), \
                     (long long)(vals)[i]); \
        } else if (!ok_) \
            tap_diag("length %zu, want %zu", (size_t)(count), (size_t)(nvals)); \
        tap_ok(ok_, "%s", label); \
    } while (0)

static void check_rng_line(char *line)
{
    char *rest;
    if (strncmp(line, "interval ", 9) == 0) {
        unsigned long long seed = strtoull(line + 9, &rest, 10);
        unsigned long long max = strtoull(rest, &rest, 10);
        size_t n;
        int64_t *v = parse_ints(rest, &n);
        struct mt_np_rng r;
        mt_np_rng_seed(&r, (uint32_t)seed);
        int ok = n == 8;
        for (size_t i = 0; ok && i < n; i++) ok = (int64_t)mt_np_rng_interval(&r, max) == v[i];
        tap_ok(ok, "RandomState(%llu).randint(0, %llu + 1) = random_interval", seed, max);
        free(v);
    } else if (strncmp(line, "shuffle ", 8) == 0) {
        unsigned long long seed = strtoull(line + 8, &rest, 10);
        unsigned long long n0 = strtoull(rest, &rest, 10);
        size_t n;
        int64_t *v = parse_ints(rest, &n);
        int32_t *a = malloc(n0 * sizeof *a);
        for (size_t i = 0; i < n0; i++) a[i] = (int32_t)i;
        struct mt_np_rng r;
        mt_np_rng_seed(&r, (uint32_t)seed);
        mt_np_shuffle_i32(&r, a, n0);
        char label[128];
        snprintf(label, sizeof label, "RandomState(%llu).shuffle(arange(%llu))", seed, n0);
        CMP_ARRAY(label, v, n, n0, a[i]);
        free(a);
        free(v);
    } else if (strncmp(line, "normalize ", 10) == 0) {
        size_t n = strtoul(line + 10, &rest, 10);
        double *w = malloc(n * sizeof *w), *want = malloc(n * sizeof *want),
               *got = malloc(n * sizeof *got);
        for (size_t i = 0; i < n; i++) w[i] = strtod(rest, &rest);
        rest = strstr(rest, "->") + 2;
        for (size_t i = 0; i < n; i++) want[i] = strtod(rest, &rest);
        mt_np_normalize(w, n, got);
        int ok = 1;
        for (size_t i = 0; i < n; i++) ok &= got[i] == want[i];
        tap_ok(ok, "normalize of %zu weights equals numpy bit for bit", n);
        free(w);
        free(want);
        free(got);
    } else if (strncmp(line, "splitidx ", 9) == 0) {
        char split[64];
        unsigned long long n;
        int off;
        sscanf(line + 9, "%63s %llu%n", split, &n, &off);
        size_t nv;
        int64_t *v = parse_ints(line + 9 + off, &nv);
        int present[3];
        uint64_t b[3], e[3];
        char err[256] = "";
        int rc = mt_gpt_split(split, n, present, b, e, err, sizeof err);
        int ok = rc == 0 && nv == 6;
        for (int i = 0; ok && i < 3; i++) {
            if (v[2 * i] < 0) ok = !present[i];
            else ok = present[i] && (int64_t)b[i] == v[2 * i] && (int64_t)e[i] == v[2 * i + 1];
        }
        tap_ok(ok, "--split %s over %llu sequences: bookends as Megatron (%s)", split, n, err);
        free(v);
    }
}

struct gcase {
    char name[64];
    char *words[16];
    int nwords;
    char split[64];
    int seq_length;
    uint64_t seed;
    uint64_t ns[3];
    int built;
    struct mt_gpt_data d;
};

static void gcase_free(struct gcase *c)
{
    for (int k = 0; k < c->nwords; k++) free(c->words[k]);
    if (c->built) mt_gpt_data_free(&c->d);
    memset(c, 0, sizeof *c);
}

static void check_case_line(struct gcase *c, char *line)
{
    char label[256];
    char *key = line, *rest = strchr(line, ' ');
    if (!rest) return;
    *rest++ = 0;
    if (strcmp(key, "data") == 0) {
        char *tok = strtok(rest, " \n");
        while (tok && c->nwords < 16) {
            char buf[4400];
            if (strncmp(tok, "gpt_golden", 10) == 0)
                snprintf(buf, sizeof buf, "%s/tests/data/%s", g_src, tok);
            else snprintf(buf, sizeof buf, "%s", tok);
            c->words[c->nwords] = malloc(strlen(buf) + 1);
            strcpy(c->words[c->nwords++], buf);
            tok = strtok(NULL, " \n");
        }
        return;
    }
    if (strcmp(key, "split") == 0) {
        sscanf(rest, "%63s", c->split);
        return;
    }
    if (strcmp(key, "seq_length") == 0) {
        c->seq_length = atoi(rest);
        return;
    }
    if (strcmp(key, "seed") == 0) {
        c->seed = strtoull(rest, NULL, 10);
        return;
    }
    if (strcmp(key, "num_samples") == 0) {
        long long a, b, d;
        sscanf(rest, "%lld %lld %lld", &a, &b, &d);
        c->ns[0] = a < 0 ? MT_GPT_ONE_EPOCH : (uint64_t)a;
        c->ns[1] = b < 0 ? MT_GPT_ONE_EPOCH : (uint64_t)b;
        c->ns[2] = d < 0 ? MT_GPT_ONE_EPOCH : (uint64_t)d;
        return;
    }
    if (!c->built) {
        char err[1024] = "";
        double t0 = mt_now();
        int rc = mt_gpt_data_build(&c->d, c->nwords, c->words, c->split, c->seq_length,
                                   c->seed, c->ns, 0, err, sizeof err);
        tap_ok(rc == 0, "case %s builds in %.1f ms (%s)", c->name, (mt_now() - t0) * 1e3, err);
        if (rc != 0) return;
        c->built = 1;
    }
    size_t n;
    int64_t *v = parse_ints(rest, &n);
    const struct mt_gpt_data *d = &c->d;
    int i = n > 0 ? (int)v[0] : 0;
    if (strcmp(key, "present") == 0) {
        int ok = n == 5 && d->present[i] == v[1] && d->blended[i] == v[2] &&
                 d->nparts[i] == v[3] && (int64_t)d->split[i].num_samples == v[4];
        if (!ok)
            tap_diag("got present %d blended %d parts %d samples %zu", d->present[i],
                     d->blended[i], d->nparts[i], d->split[i].num_samples);
        tap_ok(ok, "%s: split %d: present %lld, blended %lld, %lld parts, %lld samples",
               c->name, i, (long long)v[1], (long long)v[2], (long long)v[3], (long long)v[4]);
    } else if (strcmp(key, "part") == 0) {
        const struct mt_gpt_dataset *g = &d->parts[i][v[1]];
        int ok = n == 7 && (int64_t)g->begin == v[2] && (int64_t)g->end == v[3] &&
                 g->num_epochs == v[4] && g->separate_final_epoch == v[5] &&
                 (int64_t)g->num_samples == v[6];
        if (!ok)
            tap_diag("got [%llu, %llu) epochs %d separate %d samples %llu",
                     (unsigned long long)g->begin, (unsigned long long)g->end, g->num_epochs,
                     g->separate_final_epoch, (unsigned long long)g->num_samples);
        tap_ok(ok, "%s: split %d part %lld: sequences [%lld, %lld), %lld epochs, separate %lld, "
                   "%lld samples",
               c->name, i, (long long)v[1], (long long)v[2], (long long)v[3], (long long)v[4],
               (long long)v[5], (long long)v[6]);
    } else if (strcmp(key, "document_index") == 0) {
        const struct mt_gpt_dataset *g = &d->parts[i][v[1]];
        snprintf(label, sizeof label, "%s: split %d part %lld: document_index (%lld)", c->name,
                 i, (long long)v[1], (long long)v[2]);
        CMP_ARRAY(label, v + 3, n - 3, g->document_index_len, g->document_index[i]);
    } else if (strcmp(key, "sample_index") == 0) {
        const struct mt_gpt_dataset *g = &d->parts[i][v[1]];
        snprintf(label, sizeof label, "%s: split %d part %lld: sample_index (%lld)", c->name, i,
                 (long long)v[1], (long long)v[2]);
        if (g->sample_index) CMP_ARRAY(label, v + 3, n - 3, 2 * (g->num_samples + 1), g->sample_index[i]);
        else tap_ok(n - 3 == 2 && v[3] == 0 && v[4] == 0, "%s (empty)", label);
    } else if (strcmp(key, "shuffle_index") == 0) {
        const struct mt_gpt_dataset *g = &d->parts[i][v[1]];
        snprintf(label, sizeof label, "%s: split %d part %lld: shuffle_index (%lld)", c->name,
                 i, (long long)v[1], (long long)v[2]);
        CMP_ARRAY(label, v + 3, n - 3, g->num_samples, mt_gpt_dataset_shuffle(g, i));
    } else if (strcmp(key, "dataset_index") == 0) {
        snprintf(label, sizeof label, "%s: split %d: blend dataset_index (%lld)", c->name, i,
                 (long long)v[1]);
        const struct mt_blended_dataset *bl = &d->blend[i];
        CMP_ARRAY(label, v + 2, n - 2, bl->size, bl->dataset_index[i]);
    } else if (strcmp(key, "dataset_sample_index") == 0) {
        snprintf(label, sizeof label, "%s: split %d: blend dataset_sample_index (%lld)",
                 c->name, i, (long long)v[1]);
        const struct mt_blended_dataset *bl = &d->blend[i];
        CMP_ARRAY(label, v + 2, n - 2, bl->size, bl->dataset_sample_index[i]);
    } else if (strcmp(key, "sample") == 0) {
        size_t j = (size_t)v[1];
        int32_t *t = malloc(((size_t)c->seq_length + 1) * sizeof *t);
        d->split[i].get_sample(&d->split[i], j, t);
        snprintf(label, sizeof label, "%s: split %d: tokens of sample %zu", c->name, i, j);
        CMP_ARRAY(label, v + 3, n - 3, c->seq_length + 1, t[i]);
        free(t);
    }
    free(v);
}

static void check_golden(void)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/tests/data/gpt_index_golden.txt", g_src);
    FILE *f = fopen(path, "r");
    if (!tap_ok(f != NULL, "open %s", path)) return;
    char *line = NULL;
    size_t cap = 0;
    struct gcase c;
    memset(&c, 0, sizeof c);
    int in_case = 0, ncases = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '#' || !line[0]) continue;
        if (strncmp(line, "case ", 5) == 0) {
            gcase_free(&c);
            snprintf(c.name, sizeof c.name, "%s", line + 5);
            in_case = 1;
            ncases++;
        } else if (strcmp(line, "end") == 0) {
            gcase_free(&c);
            in_case = 0;
        } else if (in_case) {
            check_case_line(&c, line);
        } else {
            check_rng_line(line);
        }
    }
    gcase_free(&c);
    free(line);
    fclose(f);
    tap_ok(ncases >= 8, "%d golden cases", ncases);
}

/* ---- properties -------------------------------------------------------------------- */

static void check_properties(void)
{
    char pa[4400], pb[4400], err[1024] = "";
    snprintf(pa, sizeof pa, "%s/tests/data/gpt_golden_a_text_document", g_src);
    snprintf(pb, sizeof pb, "%s/tests/data/gpt_golden_b_text_document", g_src);
    struct mt_indexed *x = mt_indexed_open(pa, err, sizeof err);
    if (!tap_ok(x != NULL, "open golden a (%s)", err)) return;

    /* one epoch: every token covered, samples straddle documents */
    struct mt_gpt_dataset g;
    int rc = mt_gpt_dataset_build(&g, x, 10, 140, MT_GPT_ONE_EPOCH, 5, 77, "one epoch", err,
                                  sizeof err);
    tap_ok(rc == 0 && g.num_epochs == 1 && g.num_samples == (g.tokens_per_epoch - 1) / 5,
           "one epoch: %llu samples of 5 over %llu tokens", (unsigned long long)g.num_samples,
           (unsigned long long)g.tokens_per_epoch);
    int32_t *stream = malloc(g.tokens_per_epoch * sizeof *stream);
    size_t ns = 0;
    for (size_t k = 0; k < g.document_index_len; k++) {
        uint64_t s = (uint64_t)g.document_index[k];
        int32_t L = mt_indexed_length(x, s);
        mt_indexed_read(x, s, 0, (uint64_t)L, stream + ns);
        ns += (size_t)L;
    }
    int ok = ns == g.tokens_per_epoch, straddle = 0;
    int32_t t[6];
    for (uint64_t j = 0; ok && j < g.num_samples; j++) {
        mt_gpt_dataset_raw_sample(&g, j, t);
        ok = memcmp(t, stream + j * 5, sizeof t) == 0;
        straddle += g.sample_index[2 * j] != g.sample_index[2 * j + 2];
    }
    tap_ok(ok, "sample j = tokens [5j, 5j+6) of the shuffled document stream: nothing lost "
               "or repeated, overlap of one");
    tap_ok(straddle > 10, "%d samples straddle documents", straddle);
    /* a permutation */
    char *seen = calloc(g.num_samples, 1);
    ok = 1;
    for (uint64_t i = 0; i < g.num_samples; i++) {
        uint64_t j = mt_gpt_dataset_shuffle(&g, i);
        if (j >= g.num_samples || seen[j]) ok = 0;
        else seen[j] = 1;
    }
    tap_ok(ok, "shuffle_index is a permutation of the samples");
    free(seen);
    /* every sequence of the range appears once in the document index */
    int *cnt = calloc(150, sizeof *cnt);
    for (size_t k = 0; k < g.document_index_len; k++) cnt[g.document_index[k]]++;
    ok = 1;
    for (int s = 0; s < 150; s++) ok &= cnt[s] == (s >= 10 && s < 140);
    tap_ok(ok, "document_index holds each sequence of [10, 140) exactly once");
    free(cnt);
    free(stream);

    /* determinism */
    struct mt_gpt_dataset h;
    mt_gpt_dataset_build(&h, x, 10, 140, MT_GPT_ONE_EPOCH, 5, 77, "again", err, sizeof err);
    tap_ok(h.num_samples == g.num_samples &&
               memcmp(h.document_index, g.document_index,
                      g.document_index_len * sizeof *g.document_index) == 0 &&
               memcmp(h.sample_index, g.sample_index,
                      2 * (g.num_samples + 1) * sizeof *g.sample_index) == 0 &&
               memcmp(h.shuffle_u32, g.shuffle_u32, g.num_samples * sizeof *g.shuffle_u32) == 0,
           "building twice gives identical arrays");
    mt_gpt_dataset_free(&h);
    mt_gpt_dataset_build(&h, x, 10, 140, MT_GPT_ONE_EPOCH, 5, 78, "other seed", err, sizeof err);
    tap_ok(memcmp(h.shuffle_u32, g.shuffle_u32, g.num_samples * sizeof *g.shuffle_u32) != 0,
           "another seed gives another order");
    mt_gpt_dataset_free(&h);
    mt_gpt_dataset_free(&g);

    /* many epochs: each epoch's samples cover the data; every sample valid */
    rc = mt_gpt_dataset_build(&g, x, 0, 150, 5000, 3, 1234, "many", err, sizeof err);
    tap_ok(rc == 0 && g.num_samples >= 5000 && g.num_epochs > 1,
           "5000 samples of 3: %d epochs, %llu samples", g.num_epochs,
           (unsigned long long)g.num_samples);
    mt_gpt_dataset_free(&g);
    mt_indexed_close(x);

    /* blend proportions over 100k samples */
    char w0[] = "0.2", w1[] = "0.5", w2[] = "0.3";
    char *words[] = {w0, pa, w1, pb, w2, pa};
    uint64_t nsamp[3] = {100000, 1000, 100};
    struct mt_gpt_data d;
    double t0 = mt_now();
    rc = mt_gpt_data_build(&d, 6, words, "98,1,1", 4, 1234, nsamp, 0, err, sizeof err);
    tap_ok(rc == 0, "blend of 3 (0.2/0.5/0.3) with 100000 samples builds in %.0f ms (%s)",
           (mt_now() - t0) * 1e3, err);
    if (rc == 0) {
        const double want[3] = {0.2, 0.5, 0.3};
        uint64_t c3[3] = {0, 0, 0};
        const struct mt_blended_dataset *b = &d.blend[0];
        for (uint64_t s = 0; s < b->size; s++) c3[b->dataset_index[s]]++;
        ok = b->size >= 100000;
        for (int k = 0; k < 3; k++) {
            double p = (double)c3[k] / (double)b->size;
            ok &= fabs(p - want[k]) < 0.01;
            tap_diag("component %d: %.5f (want %.1f)", k, p, want[k]);
        }
        tap_ok(ok, "blend proportions within 1%% over %llu samples", (unsigned long long)b->size);
        /* within a component the samples are taken in order 0, 1, 2, ...: none repeated */
        uint64_t nx[3] = {0, 0, 0};
        ok = 1;
        for (uint64_t s = 0; s < b->size; s++) {
            int k = b->dataset_index[s];
            ok &= (uint64_t)b->dataset_sample_index[s] == nx[k]++;
            ok &= nx[k] <= d.parts[0][k].num_samples;
        }
        tap_ok(ok, "each component's samples are drawn once each, within its size");
        /* the blend's sample s is its component's sample: the last one, read both ways */
        int32_t tok[5], direct[5];
        const uint64_t last = b->size - 1;
        const int lk = b->dataset_index[last];
        d.split[0].get_sample(&d.split[0], last, tok);
        const struct mt_dataset *part = &d.parts[0][lk].ds;
        part->get_sample(part, (size_t)b->dataset_sample_index[last], direct);
        tap_ok(memcmp(tok, direct, sizeof tok) == 0,
               "the last blended sample is sample %lld of component %d (%d %d %d %d %d)",
               (long long)b->dataset_sample_index[last], lk, tok[0], tok[1], tok[2], tok[3], tok[4]);
        FILE *devnull = fopen("/dev/null", "w");
        mt_gpt_data_describe(&d, devnull);
        fclose(devnull);
        mt_gpt_data_free(&d);
    }
}

/* ---- errors -------------------------------------------------------------------------- */

static void expect_build_error(const char *name, int nwords, char **words, const char *split,
                               uint64_t seed, const char *frag)
{
    struct mt_gpt_data d;
    char err[1024] = "";
    uint64_t ns[3] = {100, 10, 10};
    int rc = mt_gpt_data_build(&d, nwords, words, split, 8, seed, ns, 0, err, sizeof err);
    tap_ok(rc != 0 && strstr(err, frag), "%s: %s", name, err);
    if (rc == 0) mt_gpt_data_free(&d);
}

static void check_build_errors(void)
{
    char pa[4400], pbin[4500], missing[4400];
    snprintf(pa, sizeof pa, "%s/tests/data/gpt_golden_a_text_document", g_src);
    snprintf(pbin, sizeof pbin, "%s.bin", pa);
    snprintf(missing, sizeof missing, "%s/nope_text_document", g_tmp);
    char w[] = "0.5", bad[] = "x";
    char *one[] = {pa}, *file[] = {pbin}, *miss[] = {missing}, *mixed[] = {w, pa, bad, pa};
    expect_build_error("missing prefix", 1, miss, "969,30,1", 1, "nope_text_document.idx");
    expect_build_error("a file name instead of a prefix", 1, file, "969,30,1", 1,
                       "without .bin/.idx");
    expect_build_error("bad --split", 1, one, "90,-5,5", 1, "--split '90,-5,5'");
    expect_build_error("--split of zeros", 1, one, "0,0,0", 1, "add up to 0");
    expect_build_error("four --split weights", 1, one, "1,1,1,1", 1, "more than three");
    expect_build_error("mixed weights", 4, mixed, "969,30,1", 1, "either");
    expect_build_error("seed too large", 1, one, "969,30,1", 1ULL << 32, "4294967295");
    expect_build_error("empty train split", 1, one, "1,2000,0", 1, "the train split holds 0 tokens");
    char wz[] = "0", *zero[] = {wz, pa};
    expect_build_error("weights adding to 0", 2, zero, "969,30,1", 1, "add up to 0");
    /* an empty train split is an error only when it is present with samples asked */
    struct mt_gpt_data d;
    char err[1024] = "";
    uint64_t ns[3] = {100, 10, 10};
    int rc = mt_gpt_data_build(&d, 1, one, "0,1,0", 8, 1, ns, 0, err, sizeof err);
    tap_ok(rc == 0 && !d.present[0] && d.present[1] && !d.present[2] &&
               d.split[0].num_samples == 0 && d.split[1].num_samples >= 10,
           "--split 0,1,0: no train or test split, a valid split (%s)", err);
    if (rc == 0) mt_gpt_data_free(&d);
    /* a weighted component with an empty valid split: the valid split is empty */
    char pg[4400], h[] = "0.5";
    snprintf(pg, sizeof pg, "%s/tests/data/golden_text_document", g_src);
    char *wb[] = {h, pa, h, pg};
    rc = mt_gpt_data_build(&d, 4, wb, "969,30,1", 8, 1, ns, 0, err, sizeof err);
    tap_ok(rc == 0 && d.present[1] && d.split[1].num_samples == 0 && d.split[0].num_samples == 100,
           "a blend whose component has no valid documents: an empty valid split (%s)", err);
    if (rc == 0) mt_gpt_data_free(&d);
    rc = mt_gpt_data_build(&d, 4, wb, "0.1,99.9,0", 8, 1, ns, 0, err, sizeof err);
    tap_ok(rc != 0 && strstr(err, "the train split of") && strstr(err, "holds no tokens"),
           "... but an empty train component is an error: %s", err);
    if (rc == 0) mt_gpt_data_free(&d);
    /* per-split paths */
    int nw[3] = {1, 1, 0};
    char **ws[3] = {one, one, NULL};
    rc = mt_gpt_data_build_per_split(&d, nw, ws, 8, 1234, ns, 0, err, sizeof err);
    tap_ok(rc == 0 && d.present[0] && d.present[1] && !d.present[2] &&
               d.parts[0][0].begin == 0 && d.parts[0][0].end == 150 &&
               d.parts[1][0].end == 150,
           "per-split data paths use each dataset whole (%s)", err);
    if (rc == 0) mt_gpt_data_free(&d);
}

/* a token outside the model's vocabulary: a user error naming the .bin (run in a child,
 * since user errors exit) */
static void check_vocab_error(void)
{
    char pa[4400];
    snprintf(pa, sizeof pa, "%s/tests/data/gpt_golden_a_text_document", g_src);
    int fds[2];
    if (pipe(fds) != 0) return;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        char *one[] = {pa};
        uint64_t ns[3] = {10, 1, 1};
        struct mt_gpt_data d;
        char err[512];
        if (mt_gpt_data_build(&d, 1, one, "1,0,0", 8, 1, ns, 100, err, sizeof err) != 0) _exit(3);
        int32_t t[9];
        for (size_t i = 0; i < d.split[0].num_samples; i++) d.split[0].get_sample(&d.split[0], i, t);
        _exit(0);
    }
    close(fds[1]);
    char buf[2048];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
    buf[n] = 0;
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 1 &&
               strstr(buf, "gpt_golden_a_text_document.bin: sequence") &&
               strstr(buf, "outside the model's vocabulary (ids 0..99)"),
           "a token id >= vocab_size is a clean user error: %.*s", (int)strcspn(buf, "\n"), buf);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (!mt_test_find_srcdir(argv[0], "tests/data/golden_text_document.idx", g_src, sizeof g_src)) {
        printf("Bail out! cannot find tests/data/golden_text_document.idx (set MT_SRCDIR)\n");
        return 99;
    }
    const char *td = getenv("TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/mt-indexed.XXXXXX", td && *td ? td : "/tmp");
    if (!mkdtemp(g_tmp)) {
        printf("Bail out! cannot create a scratch directory: %s\n", strerror(errno));
        return 99;
    }
    check_writer_golden();
    check_reader();
    check_int32_and_empty();
    check_malformed();
    check_golden();
    check_properties();
    check_build_errors();
    check_vocab_error();
    rm_dir_files(g_tmp);
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/w", g_tmp);
    rmdir(sub);
    rmdir(g_tmp);
    return tap_done();
}
