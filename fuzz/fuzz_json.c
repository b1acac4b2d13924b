/* fuzz_json: the JSON reader (core/json_value.h) on arbitrary bytes, and
 * the lookups callers make on what it accepts. */
#include "fuzz_common.h"
#include "core/json_value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup();
    char err[256];
    struct mt_jvalue v;
    if (mt_json_parse((const char *)data, size, &v, err, sizeof err) != 0) return 0;
    double d;
    long long i;
    int b;
    (void)mt_json_get_number(&v, "n_embd", &d);
    (void)mt_json_get_int(&v, "vocab_size", &i);
    (void)mt_json_get_bool(&v, "tie_word_embeddings", &b);
    (void)mt_json_get_str(&v, "model_type");
    (void)mt_json_get(&v, "architectures");
    mt_json_free(&v);
    return 0;
}
