/* fuzz_tokenize: the shipped tokenizers on arbitrary text. Byte-level BPE
 * must give back exactly the input bytes when its ids are decoded (any
 * bytes, valid UTF-8 or not); WordPiece must not fail on any input. */
#include "fuzz_common.h"
#include "core/io.h"
#include "data/bpe.h"
#include "data/tokenizer.h"
#include "data/wordpiece.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mt_bpe *bpe;
    static struct mt_wordpiece *wp;
    if (!bpe) {
        char v[4096], m[4096], w[4096];
        snprintf(v, sizeof v, "%s/gpt2-vocab/encoder.json", mt_data_dir());
        snprintf(m, sizeof m, "%s/gpt2-vocab/vocab.bpe", mt_data_dir());
        snprintf(w, sizeof w, "%s/bert-vocab/vocab.txt", mt_data_dir());
        bpe = mt_bpe_load(v, m);
        wp = mt_wordpiece_load(w, 1);
        fuzz_setup();
    }
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    mt_bpe_encode(bpe, (const char *)data, size, &ids, &n, &cap);
    char *back = malloc(size + MT_TOKEN_MAX_BYTES + 1);
    size_t len = 0;
    for (size_t i = 0; i < n && len <= size; i++) len += mt_bpe_decode_token(bpe, ids[i], back + len);
    if (len != size || memcmp(back, data, size) != 0) abort(); /* the round trip is exact */
    free(back);
    n = 0;
    mt_wordpiece_encode(wp, (const char *)data, size, &ids, &n, &cap);
    free(ids);
    return 0;
}
