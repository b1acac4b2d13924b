/* checkpoint.c: see checkpoint.h for the format. */
#include "ckpt/checkpoint.h"
#include "core/error.h"
#include "core/finite.h"
#include "core/io.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static const char MAGIC[8] = {'M', 'T', 'C', 'K', 'P', 'T', '\r', '\n'};
static const char TRAILER[8] = {'M', 'T', 'C', 'K', 'E', 'N', 'D', '\n'};
static const char *HINT_CORRUPT =
    "the checkpoint is damaged or incomplete; load an earlier iteration with --ckpt-step "
    "or start without --load";

/* ---- key/value metadata --------------------------------------------------- */

void mt_kv_set(struct mt_kv *kv, const char *key, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    MT_ASSERT(!strchr(key, '=') && !strchr(key, '\n') && !strchr(buf, '\n'));
    for (int i = 0; i < kv->n; i++)
        if (strcmp(kv->key[i], key) == 0) {
            free(kv->val[i]);
            kv->val[i] = strdup(buf);
            return;
        }
    if (kv->n == kv->cap) {
        kv->cap = kv->cap ? 2 * kv->cap : 32;
        kv->key = realloc(kv->key, (size_t)kv->cap * sizeof *kv->key);
        kv->val = realloc(kv->val, (size_t)kv->cap * sizeof *kv->val);
        if (!kv->key || !kv->val) mt_die("out of memory");
    }
    kv->key[kv->n] = strdup(key);
    kv->val[kv->n] = strdup(buf);
    kv->n++;
}

const char *mt_kv_get(const struct mt_kv *kv, const char *key)
{
    for (int i = 0; i < kv->n; i++)
        if (strcmp(kv->key[i], key) == 0) return kv->val[i];
    return NULL;
}

void mt_kv_free(struct mt_kv *kv)
{
    for (int i = 0; i < kv->n; i++) {
        free(kv->key[i]);
        free(kv->val[i]);
    }
    free(kv->key);
    free(kv->val);
    memset(kv, 0, sizeof *kv);
}

/* ---- paths ------------------------------------------------------------------ */

const char *mt_ckpt_path(const char *dir, long iteration)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/iter_%07ld/model_optim_rng.mtc", dir, iteration);
    return path;
}

long mt_ckpt_latest(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/latest_checkpointed_iteration.txt", dir);
    if (!mt_file_exists(path)) return -1;
    size_t len;
    char *s = mt_read_file(path, &len, "--load");
    char *end;
    errno = 0;
    long it = strtol(s, &end, 10);
    while (*end == '\n' || *end == ' ' || *end == '\r') end++;
    if (strncmp(s, "release", 7) == 0) it = 0, end = s + len;
    if (end == s || *end || errno || it < 0)
        mt_user_error("the file should hold one iteration number, as Megatron writes it",
                      "%s: cannot parse '%.40s' as an iteration", path, s);
    free(s);
    return it;
}

/* ---- writing ------------------------------------------------------------------ */

struct mt_ckpt_writer {
    FILE *f;
    char dir[4096], tmp[4300], final_path[4200];
    long iteration;
    uint32_t left; /* tensors still to write */
    uint32_t crc;  /* of the bytes since the last checksum written */
};

/* every byte goes through the running checksum */
static void put(struct mt_ckpt_writer *w, const void *p, size_t n)
{
    mt_fwrite_all(w->f, p, n, w->tmp);
    w->crc = mt_crc32(w->crc, p, n);
}
static void put_u32(struct mt_ckpt_writer *w, uint32_t x) { put(w, &x, 4); }
static void put_u64(struct mt_ckpt_writer *w, uint64_t x) { put(w, &x, 8); }
/* the checksum of everything since the previous one, then a fresh start */
static void put_crc(struct mt_ckpt_writer *w)
{
    const uint32_t c = w->crc;
    mt_fwrite_all(w->f, &c, 4, w->tmp);
    w->crc = 0;
}

struct mt_ckpt_writer *mt_ckpt_writer_open(const char *dir, long iteration,
                                           const struct mt_kv *meta, uint32_t ntensors)
{
    struct mt_ckpt_writer *w = calloc(1, sizeof *w);
    if (!w) mt_die("out of memory");
    char sub[4200];
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    w->iteration = iteration;
    w->left = ntensors;
    snprintf(sub, sizeof sub, "%s/iter_%07ld", dir, iteration);
    if (mt_mkdir_p(sub) != 0)
        mt_user_error("check that --save points to a writable directory",
                      "cannot create checkpoint directory %s: %s", sub, strerror(errno));
    snprintf(w->final_path, sizeof w->final_path, "%s", mt_ckpt_path(dir, iteration));
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", w->final_path);
    w->f = fopen(w->tmp, "wb");
    if (!w->f)
        mt_user_error("check that --save points to a writable directory", "cannot create %s: %s",
                      w->tmp, strerror(errno));
    mt_remove_on_error(w->tmp); /* a failed save leaves no partial file */
    put(w, MAGIC, 8);
    put_u32(w, MT_CKPT_VERSION);
    put_u32(w, 0);
    size_t mlen = 0;
    for (int i = 0; i < meta->n; i++) mlen += strlen(meta->key[i]) + strlen(meta->val[i]) + 2;
    put_u64(w, mlen);
    for (int i = 0; i < meta->n; i++) {
        put(w, meta->key[i], strlen(meta->key[i]));
        put(w, "=", 1);
        put(w, meta->val[i], strlen(meta->val[i]));
        put(w, "\n", 1);
    }
    put_u32(w, ntensors);
    put_crc(w); /* the header: magic to tensor count */
    return w;
}

void mt_ckpt_writer_tensor(struct mt_ckpt_writer *w, const char *name, const struct mt_param *p,
                           const float *data)
{
    MT_ASSERT(w->left > 0);
    w->left--;
    put_u32(w, (uint32_t)strlen(name));
    put(w, name, strlen(name));
    put_u32(w, 0); /* dtype f32 */
    put_u32(w, (uint32_t)p->ndim);
    for (int d = 0; d < p->ndim; d++) put_u64(w, (uint64_t)p->shape[d]);
    size_t nbytes = mt_param_global_numel(p) * sizeof(float);
    put_u64(w, nbytes);
    put(w, data, nbytes);
    put_crc(w); /* the tensor's header and data */
}

/* fsync a directory, so that a rename or a new entry in it is durable */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY);
    if (fd < 0) mt_user_error(NULL, "cannot open directory %s: %s", dir, strerror(errno));
    if (fsync(fd) != 0 && errno != EINVAL)
        mt_user_error("check the disk", "cannot sync directory %s: %s", dir, strerror(errno));
    close(fd);
}

void mt_ckpt_writer_close(struct mt_ckpt_writer *w)
{
    char tracker[4200], tracker_tmp[4300], sub[4200];
    MT_ASSERT(w->left == 0);
    mt_fwrite_all(w->f, TRAILER, 8, w->tmp);
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0 || fclose(w->f) != 0)
        mt_user_error("check free disk space", "cannot finish writing %s: %s", w->tmp,
                      strerror(errno));
    if (rename(w->tmp, w->final_path) != 0)
        mt_user_error(NULL, "cannot rename %s to %s: %s", w->tmp, w->final_path, strerror(errno));
    mt_remove_on_error(NULL);
    snprintf(sub, sizeof sub, "%s/iter_%07ld", w->dir, w->iteration);
    sync_dir(sub);
    sync_dir(w->dir); /* the iter_ directory itself */
    /* the tracker last, written whole and renamed: it names a complete file */
    snprintf(tracker, sizeof tracker, "%s/latest_checkpointed_iteration.txt", w->dir);
    snprintf(tracker_tmp, sizeof tracker_tmp, "%s.tmp", tracker);
    FILE *f = fopen(tracker_tmp, "w");
    if (!f) mt_user_error(NULL, "cannot create %s: %s", tracker_tmp, strerror(errno));
    mt_remove_on_error(tracker_tmp);
    fprintf(f, "%ld", w->iteration);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0 || rename(tracker_tmp, tracker) != 0)
        mt_user_error("check free disk space", "cannot write %s: %s", tracker, strerror(errno));
    mt_remove_on_error(NULL);
    sync_dir(w->dir);
    free(w);
}

void mt_ckpt_check_writable(const char *dir, uint64_t bytes)
{
    if (mt_mkdir_p(dir) != 0)
        mt_user_error("check that --save points to a writable directory", "cannot create --save directory %s: %s",
                      dir, strerror(errno));
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.megatron-c-write-test.%ld", dir, (long)getpid());
    FILE *f = fopen(probe, "wb");
    const int ok = f && fputc('x', f) != EOF && fflush(f) == 0;
    const int err = errno;
    if (f) fclose(f);
    unlink(probe);
    if (!ok)
        mt_user_error("check the permissions and free space of --save", "cannot write into --save directory "
                      "%s: %s", dir, strerror(err));
    struct statvfs vs;
    if (statvfs(dir, &vs) == 0) {
        const uint64_t avail = (uint64_t)vs.f_bavail * (uint64_t)vs.f_frsize;
        if (avail < bytes)
            mt_user_error("free space there or choose another --save directory", "--save directory %s has "
                          "%.1f MB free, but one checkpoint of this model takes %.1f MB", dir,
                          (double)avail / 1e6, (double)bytes / 1e6);
    }
}

/* ---- reading --------------------------------------------------------------------- */

struct reader {
    FILE *f;
    const char *path;
    long pos;
    uint32_t version;
    uint32_t crc; /* of the bytes read since the last checksum */
};

static void get(struct reader *r, void *p, size_t n, const char *field)
{
    if (fread(p, 1, n, r->f) != n)
        mt_user_error(HINT_CORRUPT, "%s is truncated: %s (%zu bytes at offset %ld) is missing",
                      r->path, field, n, r->pos);
    r->pos += (long)n;
    r->crc = mt_crc32(r->crc, p, n);
}

static uint32_t get_u32(struct reader *r, const char *field)
{
    uint32_t x;
    get(r, &x, 4, field);
    return x;
}

static uint64_t get_u64(struct reader *r, const char *field)
{
    uint64_t x;
    get(r, &x, 8, field);
    return x;
}

/* the stored checksum of what was read since the previous one: 1 if it
 * matches (version 1 files have none in these places: always 1) */
static int crc_ok(struct reader *r, const char *field)
{
    const uint32_t want = r->crc;
    const uint32_t got = get_u32(r, field);
    r->crc = 0;
    return got == want;
}

static void open_reader(struct reader *r, const char *path)
{
    r->path = path;
    r->pos = 0;
    r->crc = 0;
    r->f = fopen(path, "rb");
    if (!r->f)
        mt_user_error("check --load: it must be a directory written by --save",
                      "cannot open checkpoint %s: %s", path, strerror(errno));
    char magic[8];
    get(r, magic, 8, "magic number");
    if (memcmp(magic, MAGIC, 8) != 0)
        mt_user_error("this is not a megatron-c checkpoint (Megatron-LM .pt files are not read)",
                      "%s: wrong magic number", path);
    r->version = get_u32(r, "version");
    if (r->version != MT_CKPT_VERSION && r->version != 1) {
        char hint[128];
        snprintf(hint, sizeof hint, "this build reads versions 1 to %d; use the megatron-c that wrote it",
                 MT_CKPT_VERSION);
        mt_user_error(hint, "%s: unsupported checkpoint version %u", path, r->version);
    }
    get_u32(r, "reserved field");
}

/* The directory iter_N of a checkpoint file's path: N, or -1 when the file
 * is not in one. */
static long dir_iteration(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return -1;
    const char *p = slash;
    while (p > path && p[-1] != '/') p--;
    if (strncmp(p, "iter_", 5) != 0) return -1;
    char *end;
    long it = strtol(p + 5, &end, 10);
    return end == slash && end > p + 5 ? it : -1;
}

/* The header: metadata and tensor count, checked against its checksum
 * (version 2) before any of it is believed. */
static uint32_t read_header(struct reader *r, struct mt_kv *meta)
{
    uint64_t mlen = get_u64(r, "metadata length");
    struct stat st;
    const uint64_t left = fstat(fileno(r->f), &st) == 0 ? (uint64_t)st.st_size - (uint64_t)r->pos : 0;
    if (mlen > (64u << 20) || mlen > left)
        mt_user_error(HINT_CORRUPT, "%s: metadata length %llu is implausible (%llu bytes follow)", r->path,
                      (unsigned long long)mlen, (unsigned long long)left);
    char *buf = malloc(mlen + 1);
    if (!buf) mt_die("out of memory");
    get(r, buf, mlen, "metadata");
    buf[mlen] = 0;
    const uint32_t nt = get_u32(r, "tensor count");
    if (r->version >= 2 && !crc_ok(r, "header checksum"))
        mt_user_error(HINT_CORRUPT, "%s: checksum mismatch in the header (metadata)", r->path);
    char *line = buf;
    while (*line) {
        char *nl = strchr(line, '\n');
        if (!nl) mt_user_error(HINT_CORRUPT, "%s: metadata is not newline-terminated", r->path);
        *nl = 0;
        char *eq = strchr(line, '=');
        if (!eq) mt_user_error(HINT_CORRUPT, "%s: malformed metadata line '%.60s'", r->path, line);
        *eq = 0;
        mt_kv_set(meta, line, "%s", eq + 1);
        line = nl + 1;
    }
    free(buf);
    /* the iteration must be the directory's (a damaged or moved file) */
    const long dir_it = dir_iteration(r->path);
    const char *it = mt_kv_get(meta, "iteration");
    if (dir_it >= 0 && it) {
        char *end;
        const long x = strtol(it, &end, 10);
        if (*end || end == it || x != dir_it)
            mt_user_error(HINT_CORRUPT, "%s: the metadata says iteration '%s' but the file is in iter_%07ld",
                          r->path, it, dir_it);
    }
    return nt;
}

void mt_ckpt_read_meta(const char *path, struct mt_kv *meta)
{
    struct reader r;
    open_reader(&r, path);
    read_header(&r, meta);
    fclose(r.f);
}

unsigned mt_ckpt_read_tensors(const char *path, const struct mt_param_table *table,
                              const struct mt_param_table *known,
                              const struct mt_ckpt_group *groups, int ngroups, mt_backend *be)
{
    if (!known) known = table;
    struct reader r;
    struct mt_kv meta = {0};
    open_reader(&r, path);
    uint32_t nt = read_header(&r, &meta);
    mt_kv_free(&meta);
    /* seen[g * table->n + i]: tensor i of group g was loaded (a view has
     * no more tensors than the parameters, nor larger ones) */
    unsigned char *seen = calloc((size_t)table->n * (size_t)ngroups + 1, 1);
    size_t maxn = 0;
    for (int i = 0; i < table->n; i++)
        if (mt_param_global_numel(&table->p[i]) > maxn) maxn = mt_param_global_numel(&table->p[i]);
#define GROUP_TABLE(g) (groups[g].table ? groups[g].table : table)
    float *host = malloc(maxn * sizeof(float) + 1), *shard = malloc(maxn * sizeof(float) + 1);
    if (!seen || !host || !shard) mt_die("out of memory");
    for (uint32_t t = 0; t < nt; t++) {
        char name[512];
        r.crc = 0; /* version 2: the tensor's checksum covers its header and data */
        uint32_t nl = get_u32(&r, "tensor name length");
        if (nl == 0 || nl >= sizeof name)
            mt_user_error(HINT_CORRUPT, "%s: tensor %u has a bad name length %u", path, t, nl);
        get(&r, name, nl, "tensor name");
        name[nl] = 0;
        uint32_t dtype = get_u32(&r, name), ndim = get_u32(&r, name);
        if (dtype != 0 || ndim < 1 || ndim > 4)
            mt_user_error(HINT_CORRUPT, "%s: tensor %s has dtype %u / ndim %u (expected f32, 1-4 dims)",
                          path, name, dtype, ndim);
        int64_t dims[4];
        for (uint32_t d = 0; d < ndim; d++) dims[d] = (int64_t)get_u64(&r, name);
        uint64_t nbytes = get_u64(&r, name);
        /* find the group and table entry */
        int gi = -1, pi = -1;
        for (int g = 0; g < ngroups && gi < 0; g++) {
            size_t pl = strlen(groups[g].prefix);
            if (strncmp(name, groups[g].prefix, pl) == 0) {
                pi = mt_params_find(GROUP_TABLE(g), name + pl);
                if (pi >= 0) gi = g;
            }
        }
        if (gi < 0) {
            /* not held here: another stage's tensor, an optimizer group not
             * asked for, or (error) a tensor the model does not have at all */
            if (strncmp(name, "model/", 6) == 0 && mt_params_find(known, name + 6) < 0) {
                mt_user_error("the checkpoint was written for a different model configuration",
                              "%s: tensor %s does not exist in this model", path, name);
            }
            if (fseek(r.f, (long)nbytes + 4, SEEK_CUR) != 0)
                mt_user_error(HINT_CORRUPT, "%s is truncated inside tensor %s", path, name);
            r.pos += (long)nbytes + 4;
            continue;
        }
        const struct mt_param_table *gtab = GROUP_TABLE(gi);
        const struct mt_param *p = &gtab->p[pi];
        int shape_ok = (int)ndim == p->ndim;
        for (int d = 0; shape_ok && d < p->ndim; d++) shape_ok = dims[d] == p->shape[d];
        if (!shape_ok || nbytes != mt_param_global_numel(p) * sizeof(float)) {
            char hint[200];
            snprintf(hint, sizeof hint, "the model here has %s of shape (%lld, %lld)", p->name,
                     (long long)p->shape[0], (long long)(p->ndim > 1 ? p->shape[1] : 1));
            mt_user_error(hint, "%s: tensor %s has shape (%lld, %lld) in the checkpoint", path,
                          name, (long long)dims[0], (long long)(ndim > 1 ? dims[1] : 1));
        }
        get(&r, host, nbytes, name);
        if (r.version < 2) r.crc = mt_crc32(0, host, nbytes); /* version 1: the data alone */
        if (!crc_ok(&r, name))
            mt_user_error(HINT_CORRUPT, "%s: checksum mismatch in tensor %s", path, name);
        const size_t bad = mt_nonfinite_count(host, nbytes / sizeof(float));
        if (bad)
            mt_user_error("the run that wrote it diverged; load an earlier iteration with --ckpt-step",
                          "%s: tensor %s holds %zu non-finite values (inf or NaN) of %zu", path, name, bad,
                          (size_t)(nbytes / sizeof(float)));
        /* whole tensor in the file; this rank keeps its shard */
        mt_param_shard(p, gtab->tp, gtab->tp_rank, host, shard);
        mt_upload(be, groups[gi].base + p->offset, shard, p->numel * sizeof(float));
        seen[gi * table->n + pi] = 1;
    }
    char trailer[8];
    get(&r, trailer, 8, "end marker");
    if (memcmp(trailer, TRAILER, 8) != 0)
        mt_user_error(HINT_CORRUPT, "%s: bad end marker (trailing data or damage)", path);
    fclose(r.f);
    unsigned mask = 0;
    for (int g = 0; g < ngroups; g++) {
        int all = 1;
        const struct mt_param_table *gtab = GROUP_TABLE(g);
        for (int i = 0; i < gtab->n; i++)
            if (!seen[g * table->n + i]) {
                all = 0;
                if (groups[g].required)
                    mt_user_error(HINT_CORRUPT, "%s: tensor %s%s is missing", path,
                                  groups[g].prefix, gtab->p[i].name);
            }
        if (all) mask |= 1u << g;
    }
#undef GROUP_TABLE
    free(seen);
    free(host);
    free(shard);
    return mask;
}
