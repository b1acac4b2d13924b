/* fuzz_safetensors: the safetensors reader (interop/safetensors.h): the
 * header, then every tensor it accepts read as f32. */
#include "fuzz_common.h"
#include "interop/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup();
    const char *path = fuzz_file("model.safetensors", data, size);
    struct mt_st_file s;
    char err[512];
    if (mt_st_open(&s, path, err, sizeof err) != 0) return 0;
    for (int k = 0; k < s.n; k++) {
        const int64_t n = mt_st_numel(&s.t[k]);
        if (n < 0 || n > (1 << 20)) continue;
        float *out = malloc((size_t)n * sizeof *out + 1);
        (void)mt_st_read_f32(&s, &s.t[k], out, err, sizeof err);
        free(out);
    }
    mt_st_close(&s);
    return 0;
}
