/* tokenize.c: `megatron-c tokenize`, the tokenizer as a filter.
 *   encode (default): all of standard input is one text; prints its ids as
 *                     decimal numbers separated by single spaces, then '\n'.
 *   --decode:         reads whitespace-separated ids, writes their bytes.
 * Meant for checking a tokenizer against another implementation and for
 * inspecting what the model sees. */
#include "core/args.h"
#include "core/error.h"
#include "core/io.h"
#include "data/tokenizer.h"
#include "cmd/commands.h"
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct tokenize_args {
    const char *tokenizer_type, *vocab_file, *merge_file;
    int vocab_size;
    int decode;
};

#define F(field) offsetof(struct tokenize_args, field)
static const struct mt_arg_spec SPECS[] = {
    {"tokenizer-type", MT_ARG_STRING, F(tokenizer_type), "NAME",
     MT_TOKENIZER_TYPES_HELP " (GPT2BPETokenizer)"},
    MT_SPECS_BPE_FILES,
    MT_SPECS_VOCAB_SIZE,
    {"decode", MT_ARG_BOOL, F(decode), NULL, "read ids from standard input and write the text"},
};
#undef F
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

/* All of standard input (binary), NUL-terminated; *len excludes the NUL. */
static char *read_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) mt_die("out of memory reading standard input");
    for (;;) {
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) break;
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) mt_die("out of memory reading standard input (%zu bytes so far)", n);
            buf = nb;
        }
    }
    if (ferror(stdin)) mt_user_error(NULL, "error reading standard input");
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Fills in the shipped GPT-2 files for flags not given. */
static void encode(const struct mt_tokenizer *tok)
{
    size_t len, n;
    char *text = read_stdin(&len);
    int32_t *ids = mt_tokenizer_encode_all(tok, text, len, &n);
    free(text);
    /* at most 11 characters per id ("-2147483648" or digits + a space) */
    char *out = malloc(n * 12 + 2);
    if (!out) mt_die("out of memory printing %zu token ids", n);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char digits[12];
        int k = 0;
        uint32_t v = (uint32_t)ids[i];
        do {
            digits[k++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        if (i) out[o++] = ' ';
        while (k) out[o++] = digits[--k];
    }
    out[o++] = '\n';
    mt_fwrite_all(stdout, out, o, "standard output");
    free(out);
    free(ids);
}

static int is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void decode(const struct mt_tokenizer *tok)
{
    size_t len;
    char *in = read_stdin(&len);
    /* check every id before writing anything */
    size_t cap = 1024, n = 0, count = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) mt_die("out of memory");
    const char *hint = "give token ids as decimal numbers separated by whitespace, as "
                       "'megatron-c tokenize' prints them";
    for (size_t i = 0; i < len;) {
        if (is_space(in[i])) {
            i++;
            continue;
        }
        size_t a = i;
        while (i < len && !is_space(in[i])) i++;
        int w = (int)(i - a > 40 ? 40 : i - a);
        count++;
        long long v = 0;
        int digits = 1;
        for (size_t k = a; k < i; k++) {
            if (in[k] < '0' || in[k] > '9') digits = 0;
            else if (v <= 1000000000000LL) v = v * 10 + (in[k] - '0');
        }
        if (!digits) {
            if (in[a] == '-' && i - a > 1 && strspn(in + a + 1, "0123456789") == i - a - 1)
                mt_user_error(hint, "--decode: token %zu ('%.*s') is out of range: the %s "
                              "vocabulary has ids 0..%d", count, w, in + a, tok->type,
                              tok->vocab_size - 1);
            mt_user_error(hint, "--decode: token %zu ('%.*s') is not a number", count, w,
                          in + a);
        }
        if (v >= tok->vocab_size)
            mt_user_error(hint, "--decode: token %zu ('%.*s') is out of range: the %s "
                          "vocabulary has ids 0..%d", count, w, in + a, tok->type,
                          tok->vocab_size - 1);
        if (n == cap) {
            cap *= 2;
            int32_t *p = realloc(ids, cap * sizeof *ids);
            if (!p) mt_die("out of memory");
            ids = p;
        }
        ids[n++] = (int32_t)v;
    }
    free(in);
    size_t ocap = 1 << 16, o = 0;
    char *out = malloc(ocap);
    if (!out) mt_die("out of memory");
    for (size_t i = 0; i < n; i++) {
        if (ocap - o < MT_TOKEN_MAX_BYTES) {
            mt_fwrite_all(stdout, out, o, "standard output");
            o = 0;
        }
        o += tok->decode_token(tok, ids[i], out + o);
    }
    mt_fwrite_all(stdout, out, o, "standard output");
    free(out);
    free(ids);
}

int mt_cmd_tokenize(int argc, char **argv)
{
    struct tokenize_args a = {.tokenizer_type = "GPT2BPETokenizer"};
    mt_args_parse(SPECS, NSPECS, &a, NULL, argc, argv, 2, "tokenize",
                  "Encodes standard input (one text) and prints the token ids separated by "
                  "spaces;\nwith --decode, reads ids and writes the text.");
    struct mt_tokenizer tok;
    mt_tokenizer_open(&tok, a.tokenizer_type, a.vocab_file, a.merge_file, a.vocab_size);
    if (a.decode) decode(&tok);
    else encode(&tok);
    if (fflush(stdout) != 0) mt_user_error(NULL, "cannot write to standard output");
    mt_tokenizer_close(&tok);
    return 0;
}
