/* fuzz_vocab: the tokenizer files: GPT-2 BPE (encoder.json and vocab.bpe,
 * the input split at its first NUL byte) or, when the input's first byte
 * is odd, a WordPiece vocab.txt; each vocabulary the loader accepts then
 * encodes a fixed text. */
#include "fuzz_common.h"
#include "data/bpe.h"
#include "data/wordpiece.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char text[] = "Hello, world! It's 2026 -- caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 unaffable [MASK]";
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    if (data[0] & 1) {
        const char *vocab = fuzz_file("vocab.txt", data + 1, size - 1);
        static struct mt_wordpiece *w;
        FUZZ_GUARD({
            w = mt_wordpiece_load(vocab, data[0] & 2);
            mt_wordpiece_encode(w, text, sizeof text - 1, &ids, &n, &cap);
        });
        mt_wordpiece_free(w);
        w = NULL;
    } else {
        const uint8_t *nul = memchr(data + 1, 0, size - 1);
        const size_t a = nul ? (size_t)(nul - data - 1) : size - 1;
        const char *enc = fuzz_file("encoder.json", data + 1, a);
        const char *merges = fuzz_file("vocab.bpe", nul ? nul + 1 : data + size, nul ? size - 2 - a : 0);
        static struct mt_bpe *b;
        FUZZ_GUARD({
            b = mt_bpe_load(enc, merges);
            mt_bpe_encode(b, text, sizeof text - 1, &ids, &n, &cap);
        });
        mt_bpe_free(b);
        b = NULL;
    }
    free(ids);
    return 0;
}
