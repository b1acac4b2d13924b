/* test_wordpiece.c: BERT's WordPiece tokenizer (src/data/wordpiece.c)
 * against Hugging Face's BertTokenizer.
 *
 *  - tests/data/wordpiece_cases.jsonl (gen_wordpiece_cases.py): 233 texts
 *    (prose, punctuation, accents and other scripts, CJK, emoji, controls
 *    and odd whitespace, words of 100 and 101 characters, special tokens in
 *    the text, invalid UTF-8, random mixtures), exact ids uncased and cased,
 *    one TAP line per mode;
 *  - whole files: the SST-2 training set and 2 MB of SpamAssassin, the
 *    count and CRC-32 of all their ids (skipped where ../shared/data is
 *    not there);
 *  - the vocabulary: [BOS] and [EOS] appended (30524 ids), decode pieces;
 *  - encoding one text equals encoding it cut at spaces (state is per word). */
#include "tap.h"
#include "testutil.h"
#include "cases.h"
#include "core/io.h"
#include "data/tokenizer.h"
#include "data/wordpiece.h"
#include <stdlib.h>
#include <string.h>

static char g_src[4096];

static void check_cases(struct mt_tokenizer *lower, struct mt_tokenizer *cased)
{
    size_t n;
    struct case_ *cs = load_cases(g_src, "wordpiece_cases.jsonl", "lower", "cased", &n);
    struct mt_tokenizer *t[2] = {lower, cased};
    const char *mode[2] = {"uncased", "cased"};
    size_t texts = 0;
    for (int m = 0; m < 2; m++) {
        size_t bad = 0;
        texts = 0;
        for (size_t i = 0; i < n; i++) {
            if (strstr(cs[i].line, "\"file\":")) continue;
            texts++;
            size_t ni;
            int32_t *ids = mt_tokenizer_encode_all(t[m], cs[i].text, cs[i].len, &ni);
            if (!same_ids(ids, ni, cs[i].ids[m], cs[i].nids[m]) && bad++ < 10) {
                tap_diag("%s case '%s' differs", mode[m], cs[i].name);
                print_ids("expected", cs[i].ids[m], cs[i].nids[m]);
                print_ids("got", ids, ni);
            }
            free(ids);
        }
        tap_ok(texts >= 200 && bad == 0, "%s: %zu cases give Hugging Face's ids (%zu differ)",
               mode[m], texts, bad);
    }
    free_cases(cs, n);
}

static long num_field(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

static void check_files(struct mt_tokenizer *lower, struct mt_tokenizer *cased)
{
    size_t n;
    struct case_ *cs = load_cases(g_src, "wordpiece_cases.jsonl", NULL, NULL, &n);
    for (size_t i = 0; i < n; i++) {
        char rel[256], path[4500];
        const long rl = json_str_field(cs[i].line, "file", rel);
        if (rl < 0) continue;
        rel[rl] = 0;
        snprintf(path, sizeof path, "%s/../shared/data/%s", g_src, rel);
        if (!mt_file_exists(path)) {
            tap_skip("../shared/data is not here", "whole file %s", rel);
            tap_skip("../shared/data is not here", "whole file %s (cased)", rel);
            continue;
        }
        size_t len;
        char *text = mt_read_file(path, &len, NULL);
        const long bytes = num_field(cs[i].line, "bytes");
        if (bytes >= 0 && (size_t)bytes < len) len = (size_t)bytes;
        struct mt_tokenizer *t[2] = {lower, cased};
        const char *mode[2] = {"lower", "cased"};
        for (int m = 0; m < 2; m++) {
            char kn[32], kc[32];
            snprintf(kn, sizeof kn, "%s_n", mode[m]);
            snprintf(kc, sizeof kc, "%s_crc", mode[m]);
            size_t ni;
            double t0 = mt_now();
            int32_t *ids = mt_tokenizer_encode_all(t[m], text, len, &ni);
            double dt = mt_now() - t0;
            uint32_t crc = mt_crc32(0, ids, ni * sizeof *ids);
            tap_ok((long)ni == num_field(cs[i].line, kn) && (long)crc == num_field(cs[i].line, kc),
                   "whole file %s (%zu bytes, %s): %zu ids, CRC %08x as Hugging Face's (%.1f MB/s)",
                   rel, len, mode[m], ni, crc, (double)len / 1e6 / (dt > 0 ? dt : 1e-9));
            free(ids);
        }
        free(text);
    }
    free_cases(cs, n);
}

static void check_vocab(struct mt_tokenizer *t)
{
    struct mt_wordpiece *w = t->impl;
    tap_ok(t->vocab_size == 30524 && mt_wordpiece_id(w, "[BOS]") == 30522 &&
               mt_wordpiece_id(w, "[EOS]") == 30523 && mt_wordpiece_id(w, "[CLS]") == 101 &&
               mt_wordpiece_id(w, "[MASK]") == 103 && t->eod == -1,
           "vocabulary: 30522 lines + [BOS] [EOS] as Megatron adds them; [CLS] 101, [MASK] 103");
    char buf[MT_TOKEN_MAX_BYTES];
    size_t a = t->decode_token(t, mt_wordpiece_id(w, "un"), buf);
    int ok = a == 3 && memcmp(buf, " un", 3) == 0;
    a = t->decode_token(t, mt_wordpiece_id(w, "##able"), buf);
    ok = ok && a == 4 && memcmp(buf, "able", 4) == 0 && t->decode_token(t, 99999, buf) == 0;
    tap_ok(ok, "decode: a word start gets a space, a ## continuation joins, unknown ids give nothing");
}

/* splitting the input at a space changes nothing */
static void check_split(struct mt_tokenizer *t)
{
    const char *s = "Ünïcode words, [MASK] punctuation!! and 中文 mixed\twith\ncontrols\x01 here";
    size_t n1, n2, n3;
    int32_t *all = mt_tokenizer_encode_all(t, s, strlen(s), &n1);
    const char *cut = strchr(s + 20, ' ');
    int32_t *a = mt_tokenizer_encode_all(t, s, (size_t)(cut - s), &n2);
    int32_t *b = mt_tokenizer_encode_all(t, cut, strlen(cut), &n3);
    int ok = n1 == n2 + n3 && memcmp(all, a, n2 * sizeof *a) == 0 &&
             memcmp(all + n2, b, n3 * sizeof *b) == 0;
    tap_ok(ok, "encoding a text equals encoding its halves cut at a space");
    free(all);
    free(a);
    free(b);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (!mt_test_find_srcdir(argv[0], "tests/data/wordpiece_cases.jsonl", g_src, sizeof g_src))
        tap_skip_all("cannot find the source tree (set MT_SRCDIR)");
    char vocab[4200];
    snprintf(vocab, sizeof vocab, "%s/data/bert-vocab/vocab.txt", g_src);
    struct mt_tokenizer lower, cased;
    mt_tokenizer_open(&lower, "BertWordPieceLowerCase", vocab, NULL, 0);
    mt_tokenizer_open(&cased, "BertWordPieceCase", vocab, NULL, 0);
    check_cases(&lower, &cased);
    check_files(&lower, &cased);
    check_vocab(&lower);
    check_split(&lower);
    check_split(&cased);
    mt_tokenizer_close(&lower);
    mt_tokenizer_close(&cased);
    return tap_done();
}
