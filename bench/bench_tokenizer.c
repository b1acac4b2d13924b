/* bench_tokenizer.c: single-thread encoding throughput of the GPT-2 BPE
 * tokenizer (mt_tokenizer_encode_all on a whole text). bench_tokenizer.sh
 * runs it next to tiktoken on the same files and prints the ratio.
 *
 *   ./bench/bench_tokenizer [--repeat N] FILE...
 *
 * The vocabulary comes from $MT_DATA_DIR/gpt2-vocab (default: data/).
 * Prints one line per file:
 *   megatron-c FILE BYTES TOKENS SECONDS MB/S
 * (SECONDS: best of N encodes of the whole file; MB = 10^6 bytes). */
#include "core/io.h"
#include "data/tokenizer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    int repeat = 5, first = 1;
    if (argc > 2 && strcmp(argv[1], "--repeat") == 0) {
        repeat = atoi(argv[2]);
        first = 3;
    }
    if (first >= argc || repeat < 1) {
        fprintf(stderr, "usage: %s [--repeat N] FILE...\n", argv[0]);
        return 2;
    }
    const char *dd = getenv("MT_DATA_DIR");
    char vf[4200], mf[4200];
    snprintf(vf, sizeof vf, "%s/gpt2-vocab/encoder.json", dd && *dd ? dd : "data");
    snprintf(mf, sizeof mf, "%s/gpt2-vocab/vocab.bpe", dd && *dd ? dd : "data");
    struct mt_tokenizer tok;
    double t0 = mt_now();
    mt_tokenizer_open(&tok, "GPT2BPETokenizer", vf, mf, 0);
    fprintf(stderr, "vocabulary loaded in %.1f ms\n", (mt_now() - t0) * 1e3);
    for (int f = first; f < argc; f++) {
        size_t len, n = 0;
        char *text = mt_read_file(argv[f], &len, NULL);
        double best = 1e30;
        for (int r = 0; r < repeat; r++) {
            double s = mt_now();
            int32_t *ids = mt_tokenizer_encode_all(&tok, text, len, &n);
            double dt = mt_now() - s;
            free(ids);
            if (dt < best) best = dt;
        }
        printf("megatron-c %s %zu %zu %.6f %.2f\n", argv[f], len, n, best, len / best / 1e6);
        free(text);
    }
    mt_tokenizer_close(&tok);
    return 0;
}
