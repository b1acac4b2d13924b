/* fuzz_indexed: Megatron's .idx/.bin reader (data/indexed.h). The first
 * two bytes of the input give the .bin's size (mod 4096), the rest is the
 * .idx; every sequence the reader accepts is then read whole. */
#include "fuzz_common.h"
#include "data/indexed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    fuzz_setup();
    static uint8_t bin[4096];
    const size_t nbin = ((size_t)data[0] | (size_t)data[1] << 8) % sizeof bin;
    for (size_t i = 0; i < nbin; i++) bin[i] = (uint8_t)(i * 37u);
    fuzz_file("d.bin", bin, nbin);
    const char *idx = fuzz_file("d.idx", data + 2, size - 2);
    char prefix[256], err[512];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(idx) - 4), idx);
    struct mt_indexed *x = mt_indexed_open(prefix, err, sizeof err);
    if (!x) return 0;
    static int32_t out[4096];
    for (uint64_t i = 0; i < x->num_sequences && i < 64; i++) {
        const int32_t n = mt_indexed_length(x, i);
        if (n > 0 && n <= 4096) mt_indexed_read(x, i, 0, (uint64_t)n, out);
    }
    for (uint64_t j = 0; j < x->num_doc_indices && j < 64; j++) (void)mt_indexed_doc_index(x, j);
    mt_indexed_close(x);
    return 0;
}
