/* bench_tokenizer.c: single-thread encoding throughput of a tokenizer
 * (mt_tokenizer_encode_all on a whole text). bench_tokenizer.sh runs the
 * GPT-2 BPE next to tiktoken, bench_wordpiece.sh BERT's WordPiece next to
 * Hugging Face's two BertTokenizers, on the same files, with the ratios.
 *
 *   ./bench/bench_tokenizer [--repeat N] [--type NAME] FILE...
 *
 * NAME: GPT2BPETokenizer (default), BertWordPieceLowerCase or
 * BertWordPieceCase. The vocabulary comes from $MT_DATA_DIR/gpt2-vocab or
 * $MT_DATA_DIR/bert-vocab (default: data/).
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
    const char *type = "GPT2BPETokenizer";
    while (first + 1 < argc && argv[first][0] == '-') {
        if (strcmp(argv[first], "--repeat") == 0) repeat = atoi(argv[first + 1]);
        else if (strcmp(argv[first], "--type") == 0) type = argv[first + 1];
        else break;
        first += 2;
    }
    if (first >= argc || repeat < 1) {
        fprintf(stderr, "usage: %s [--repeat N] [--type NAME] FILE...\n", argv[0]);
        return 2;
    }
    const char *dd = getenv("MT_DATA_DIR");
    char vf[4200], mf[4200];
    const int bpe = strcmp(type, "GPT2BPETokenizer") == 0;
    snprintf(vf, sizeof vf, "%s/%s", dd && *dd ? dd : "data",
             bpe ? "gpt2-vocab/encoder.json" : "bert-vocab/vocab.txt");
    snprintf(mf, sizeof mf, "%s/gpt2-vocab/vocab.bpe", dd && *dd ? dd : "data");
    struct mt_tokenizer tok;
    double t0 = mt_now();
    mt_tokenizer_open(&tok, type, vf, bpe ? mf : NULL, 0);
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
