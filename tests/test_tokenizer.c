/* test_tokenizer.c: the GPT-2 BPE tokenizer (src/data/bpe.c) against
 * OpenAI's reference (tiktoken's gpt2) and for speed.
 *
 *  - tests/data/tokenizer_cases.jsonl: the 32 reference cases (js-tiktoken),
 *    exact ids and decode(encode(x)) == x, one TAP line each;
 *  - tests/data/tokenizer_extra.jsonl: tiktoken-generated extra cases
 *    (gen_tokenizer_cases.py: whitespace, contractions, scripts, emoji,
 *    long pieces, invalid UTF-8);
 *  - 1000 random byte strings (invalid UTF-8 included) round-trip;
 *  - encoding time is linear in the text (tiny Shakespeare 1x vs 4x), one
 *    1 MB word encodes in well under a second;
 *  - the first 200,000 characters of tiny Shakespeare give 60,826 tokens.
 *
 * Finds its files from $MT_SRCDIR (set by make check), else from the
 * directory of the binary or the current directory; the vocabulary from
 * $MT_DATA_DIR, else MT_SRCDIR/data. */
#include "tap.h"
#include "testutil.h"
#include "core/io.h"
#include "core/json.h"
#include "data/bpe.h"
#include "data/tokenizer.h"
#include "cases.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char g_src[4096], g_data[4200];


/* decode(ids) == bytes */
static int roundtrips(const struct mt_tokenizer *t, const int32_t *ids, size_t n,
                      const char *text, size_t len)
{
    char buf[MT_TOKEN_MAX_BYTES];
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = t->decode_token(t, ids[i], buf);
        if (k == 0 || at + k > len || memcmp(text + at, buf, k) != 0) return 0;
        at += k;
    }
    return at == len;
}

static void check_reference(const struct mt_tokenizer *t)
{
    size_t n;
    struct case_ *cs = load_cases(g_src, "tokenizer_cases.jsonl", "ids", NULL, &n);
    tap_ok(n == 32, "tokenizer_cases.jsonl has the 32 reference cases (%zu)", n);
    for (size_t i = 0; i < n; i++) {
        size_t ni;
        int32_t *ids = mt_tokenizer_encode_all(t, cs[i].text, cs[i].len, &ni);
        int ok = same_ids(ids, ni, cs[i].ids[0], cs[i].nids[0]);
        int rt = roundtrips(t, ids, ni, cs[i].text, cs[i].len);
        if (!tap_ok(ok && rt, "reference case %zu (%zu bytes): exact ids, round trip", i + 1,
                    cs[i].len)) {
            print_ids("expected", cs[i].ids[0], cs[i].nids[0]);
            print_ids("got", ids, ni);
        }
        free(ids);
    }
    free_cases(cs, n);
}

static void check_extra(const struct mt_tokenizer *t)
{
    size_t n, bad = 0, bad_rt = 0;
    struct case_ *cs = load_cases(g_src, "tokenizer_extra.jsonl", "ids", NULL, &n);
    for (size_t i = 0; i < n; i++) {
        size_t ni;
        int32_t *ids = mt_tokenizer_encode_all(t, cs[i].text, cs[i].len, &ni);
        if (!same_ids(ids, ni, cs[i].ids[0], cs[i].nids[0]) && bad++ < 10) {
            tap_diag("extra case '%s' differs", cs[i].name);
            print_ids("expected", cs[i].ids[0], cs[i].nids[0]);
            print_ids("got", ids, ni);
        }
        if (!roundtrips(t, ids, ni, cs[i].text, cs[i].len) && bad_rt++ < 10)
            tap_diag("extra case '%s' does not round-trip", cs[i].name);
        free(ids);
    }
    tap_ok(n >= 500 && bad == 0, "%zu extra tiktoken cases (whitespace, contractions, scripts, "
           "emoji, long pieces, invalid UTF-8): %zu differ", n, bad);
    tap_ok(n >= 500 && bad_rt == 0, "extra cases round-trip (%zu do not)", bad_rt);
    free_cases(cs, n);
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void check_random_roundtrip(const struct mt_tokenizer *t)
{
    /* fragments that make whitespace runs, contractions, multi-byte and
     * invalid sequences likely, plus uniformly random bytes */
    static const char *frag[] = {" ", "  ", "\n", "\t", "'s", "'ll", "a", "Z", "7", "!", "\xc3\xa9",
                                 "\xe4\xbd\xa0", "\xf0\x9f\x98\x80", "\xc2\xa0", "\xe3\x80\x80",
                                 "\xff", "\x80", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf"};
    const size_t nfrag = sizeof frag / sizeof frag[0];
    char buf[1024];
    int fails = 0;
    for (int k = 0; k < 1000; k++) {
        size_t len = 0, want = rnd() % 200;
        while (len < want) {
            if (rnd() % 2) buf[len++] = (char)(rnd() & 0xFF);
            else {
                const char *f = frag[rnd() % nfrag];
                size_t fl = strlen(f);
                if (len + fl > sizeof buf) break;
                memcpy(buf + len, f, fl);
                len += fl;
            }
        }
        size_t ni;
        int32_t *ids = mt_tokenizer_encode_all(t, buf, len, &ni);
        int ok = roundtrips(t, ids, ni, buf, len);
        for (size_t i = 0; i < ni; i++) ok = ok && ids[i] >= 0 && ids[i] < 50256;
        if (!ok && fails++ < 5) tap_diag("random string %d (%zu bytes) does not round-trip", k, len);
        free(ids);
    }
    tap_ok(fails == 0, "1000 random byte strings (invalid UTF-8 included) round-trip (%d fail)",
           fails);
}

/* best of three: the machine may be busy */
static double time_encode(const struct mt_tokenizer *t, const char *s, size_t len, size_t *n)
{
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = mt_now();
        int32_t *ids = mt_tokenizer_encode_all(t, s, len, n);
        double dt = mt_now() - t0;
        free(ids);
        if (dt < best) best = dt;
    }
    return best;
}

static void check_speed(const struct mt_tokenizer *t)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/tinyshakespeare/input.txt", g_data);
    size_t len;
    char *s = mt_read_file(path, &len, NULL);

    size_t n;
    int32_t *ids = mt_tokenizer_encode_all(t, s, len < 200000 ? len : 200000, &n);
    tap_ok(n == 60826, "first 200,000 characters of tiny Shakespeare: %zu tokens (60,826)", n);
    free(ids);

    char *s4 = malloc(4 * len);
    for (int k = 0; k < 4; k++) memcpy(s4 + k * len, s, len);
    size_t n1, n4;
    double t1 = time_encode(t, s, len, &n1), t4 = time_encode(t, s4, 4 * len, &n4);
    tap_diag("tiny Shakespeare: %.1f MB/s (1x %.1f ms, 4x %.1f ms)", len / t1 / 1e6, t1 * 1e3,
             t4 * 1e3);
    /* linear gives 4x, quadratic 16x; 10x leaves room for a busy machine */
    tap_ok(t4 < 10 * t1, "encoding time is linear: 4x the text takes %.2fx the time (< 10)",
           t4 / t1);
    /* the text ends with a newline, so the copies tokenize independently */
    tap_ok(n4 == 4 * n1, "4x the text gives 4x the tokens (%zu, %zu)", n1, n4);
    free(s4);
    free(s);

    /* one 1 MB piece: scanning for the best pair per merge would be quadratic
     * (hours); the limit is loose so that a busy CI machine never trips it */
    size_t big = 1 << 20;
    char *w = malloc(big);
    memset(w, 'a', big);
    double t0 = mt_now();
    ids = mt_tokenizer_encode_all(t, w, big, &n);
    double dt = mt_now() - t0;
    tap_ok(dt < 20.0 && roundtrips(t, ids, n, w, big),
           "1 MB of one letter: %zu tokens in %.3f s (< 20 s), round trip", n, dt);
    free(ids);
    for (size_t i = 0; i < big; i++) w[i] = (char)('a' + rnd() % 26);
    t0 = mt_now();
    ids = mt_tokenizer_encode_all(t, w, big, &n);
    dt = mt_now() - t0;
    tap_ok(dt < 20.0 && roundtrips(t, ids, n, w, big),
           "1 MB of random letters without a space: %zu tokens in %.3f s (< 20 s), round trip",
           n, dt);
    free(ids);
    free(w);
}

static void check_basics(const struct mt_tokenizer *t)
{
    size_t n;
    int32_t *ids = mt_tokenizer_encode_all(t, "Hello world", 11, &n);
    tap_ok(n == 2 && ids[0] == 15496 && ids[1] == 995, "'Hello world' -> 15496 995");
    free(ids);
    tap_ok(t->vocab_size == 50257 && t->eod == 50256, "vocabulary 50257, eod 50256 (%d, %d)",
           t->vocab_size, t->eod);
    char buf[MT_TOKEN_MAX_BYTES];
    size_t k = t->decode_token(t, 50256, buf);
    tap_ok(k == 13 && memcmp(buf, "<|endoftext|>", 13) == 0, "eod decodes to <|endoftext|>");
    tap_ok(t->decode_token(t, 50257, buf) == 0 && t->decode_token(t, -1, buf) == 0,
           "ids out of range decode to nothing");
    size_t longest = 0;
    for (int32_t id = 0; id < t->vocab_size; id++) {
        k = t->decode_token(t, id, buf);
        if (k > longest) longest = k;
    }
    tap_ok(longest <= MT_TOKEN_MAX_BYTES, "longest token %zu bytes <= MT_TOKEN_MAX_BYTES",
           longest);
    /* the pre-tokenizer on its own */
    const char *s = "I'm  here!\n\n x";
    const size_t want[] = {1, 3, 4, 9, 10, 12, 14};
    size_t at = 0, i = 0, len = strlen(s);
    int ok = 1;
    while (at < len && i < sizeof want / sizeof want[0]) {
        at = mt_bpe_next_piece(s, len, at);
        ok = ok && at == want[i++];
    }
    tap_ok(ok && at == len && i == 7, "pieces of \"I'm  here!\\n\\n x\"");
}

int main(int argc, char **argv)
{
    (void)argc;
    if (!mt_test_find_srcdir(argv[0], "tests/data/tokenizer_cases.jsonl", g_src, sizeof g_src)) {
        printf("Bail out! cannot find tests/data/tokenizer_cases.jsonl (set MT_SRCDIR)\n");
        return 99;
    }
    const char *dd = getenv("MT_DATA_DIR");
    snprintf(g_data, sizeof g_data, "%s", dd && *dd ? dd : "");
    if (!*g_data) snprintf(g_data, sizeof g_data, "%s/data", g_src);
    char vf[4300], mf[4300];
    snprintf(vf, sizeof vf, "%s/gpt2-vocab/encoder.json", g_data);
    snprintf(mf, sizeof mf, "%s/gpt2-vocab/vocab.bpe", g_data);

    struct mt_tokenizer t;
    double t0 = mt_now();
    mt_tokenizer_open(&t, "GPT2BPETokenizer", vf, mf, 0);
    tap_diag("vocabulary loaded in %.1f ms", (mt_now() - t0) * 1e3);
    check_basics(&t);
    check_reference(&t);
    check_extra(&t);
    check_random_roundtrip(&t);
    check_speed(&t);
    mt_tokenizer_close(&t);
    return tap_done();
}
