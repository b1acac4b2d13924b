/* fuzz_ckpt: the megatron-c checkpoint reader (ckpt/checkpoint.h) and the
 * model description it carries (ckpt/model_meta.h), against a two-tensor
 * table, as DIR/iter_0000003/model_optim_rng.mtc. An input whose first
 * byte is even is the file; an odd one is the metadata of a file built
 * around it with valid checksums and two valid tensors, so that the
 * metadata parsers are reached (a mutated file rarely keeps its CRC). */
#include "fuzz_common.h"
#include "backend/backend.h"
#include "ckpt/checkpoint.h"
#include "ckpt/model_meta.h"
#include "core/io.h"

static size_t put(uint8_t *out, size_t at, const void *p, size_t n)
{
    memcpy(out + at, p, n);
    return at + n;
}

/* the version-2 layout of checkpoint.h around metadata m[0..n) */
static uint8_t *wrap(const uint8_t *m, size_t n, size_t *len)
{
    static const float w[6] = {1, 2, 3, 4, 5, 6}, b[3] = {7, 8, 9};
    uint8_t *o = malloc(n + 512);
    const uint32_t version = 2, zero = 0, two = 2;
    const uint64_t mlen = n;
    size_t at = put(o, 0, "MTCKPT\r\n", 8);
    at = put(o, at, &version, 4);
    at = put(o, at, &zero, 4);
    at = put(o, at, &mlen, 8);
    at = put(o, at, m, n);
    at = put(o, at, &two, 4);
    uint32_t crc = mt_crc32(0, o, at);
    at = put(o, at, &crc, 4);
    const struct { const char *name; uint32_t ndim; uint64_t dims[2]; const float *data; uint64_t nbytes; } t[2] = {
        {"model/w", 2, {2, 3}, w, sizeof w}, {"model/b", 1, {3, 0}, b, sizeof b}};
    for (int k = 0; k < 2; k++) {
        const size_t start = at;
        const uint32_t nl = (uint32_t)strlen(t[k].name);
        at = put(o, at, &nl, 4);
        at = put(o, at, t[k].name, nl);
        at = put(o, at, &zero, 4);
        at = put(o, at, &t[k].ndim, 4);
        at = put(o, at, t[k].dims, 8 * t[k].ndim);
        at = put(o, at, &t[k].nbytes, 8);
        at = put(o, at, t[k].data, t[k].nbytes);
        crc = mt_crc32(0, o + start, at - start);
        at = put(o, at, &crc, 4);
    }
    at = put(o, at, "MTCKEND\n", 8);
    *len = at;
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mt_backend *be;
    static struct mt_param_table table;
    static float *dev;
    if (!be) {
        char err[128];
        be = mt_backend_init("cpu-ref", err, sizeof err);
        mt_params_init(&table, 1, 0);
        mt_params_add(&table, "w", 2, 3, 0.02f, 0.0f, -1, 1);
        mt_params_add(&table, "b", 0, 3, 0.0f, 0.0f, -1, 1);
        dev = mt_alloc(be, table.total * sizeof(float));
    }
    if (size < 1) return 0;
    size_t len = size - 1;
    uint8_t *built = data[0] & 1 ? wrap(data + 1, size - 1, &len) : NULL;
    const char *path = fuzz_file("iter_0000003/model_optim_rng.mtc", built ? built : data + 1, len);
    free(built);
    static struct mt_kv kv;
    mt_kv_free(&kv); /* the previous input's, if its read jumped out */
    FUZZ_GUARD({
        mt_ckpt_read_meta(path, &kv);
        struct mt_model_desc d;
        mt_model_desc_from_kv(&d, &kv, path);
    });
    mt_kv_free(&kv);
    FUZZ_GUARD({
        const struct mt_ckpt_group g[] = {{"model/", dev, 1, NULL}};
        mt_ckpt_read_tensors(path, &table, NULL, g, 1, be);
    });
    return 0;
}
