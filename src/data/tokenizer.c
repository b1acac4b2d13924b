/* tokenizer.c: the tokenizer registry and the CharLevel tokenizer
 * (GPT2BPETokenizer lives in bpe.c). */
#include "data/tokenizer.h"
#include "core/error.h"
#include "core/io.h"
#include "data/bpe.h"
#include "data/wordpiece.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void grow(int32_t **ids, size_t need, size_t *cap)
{
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    int32_t *p = realloc(*ids, c * sizeof **ids);
    if (!p) mt_die("out of memory while tokenizing (%zu tokens)", need);
    *ids = p;
    *cap = c;
}

/* CharLevel: token id = byte value. Like GPT-NeoX's CharLevelTokenizer but
 * over bytes, so any UTF-8 text round-trips exactly. */
static void char_encode(const struct mt_tokenizer *t, const char *text, size_t len,
                        int32_t **ids, size_t *n, size_t *cap)
{
    (void)t;
    grow(ids, *n + len, cap);
    for (size_t i = 0; i < len; i++) (*ids)[(*n)++] = (unsigned char)text[i];
}

static size_t char_decode_token(const struct mt_tokenizer *t, int32_t id, char *buf)
{
    (void)t;
    if (id < 0 || id > 255) return 0;
    buf[0] = (char)id;
    return 1;
}

static void char_free(struct mt_tokenizer *t) { (void)t; }

/* NullTokenizer (Megatron's _NullTokenizer): the text "12 7 3" is the ids
 * 12, 7, 3. Anything else is an error that names the word. */
static void null_encode(const struct mt_tokenizer *t, const char *text, size_t len, int32_t **ids,
                        size_t *n, size_t *cap)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) i++;
        if (i == len) break;
        size_t j = i;
        long v = 0;
        while (j < len && text[j] >= '0' && text[j] <= '9' && v <= t->vocab_size)
            v = 10 * v + (text[j++] - '0');
        if (j == i || (j < len && text[j] != ' ' && text[j] != '\n' && text[j] != '\t' &&
                       text[j] != '\r') || v >= t->vocab_size) {
            size_t k = i;
            while (k < len && k < i + 24 && text[k] != ' ' && text[k] != '\n') k++;
            char hint[128];
            snprintf(hint, sizeof hint, "NullTokenizer text is token ids in [0, %d) separated by spaces",
                     t->vocab_size);
            mt_user_error(hint, "NullTokenizer: '%.*s' is not a token id", (int)(k - i), text + i);
        }
        grow(ids, *n + 1, cap);
        (*ids)[(*n)++] = (int32_t)v;
        i = j;
    }
}

/* " 12": a space before each id, so that ids decoded one by one after a
 * prompt ("1 2 3" + " 48") read as Megatron's ' '.join of the ids */
static size_t null_decode_token(const struct mt_tokenizer *t, int32_t id, char *buf)
{
    if (id < 0 || id >= t->vocab_size) return 0;
    return (size_t)snprintf(buf, MT_TOKEN_MAX_BYTES, " %d", (int)id);
}

const char *mt_tokenizer_types(void)
{
    return "GPT2BPETokenizer, BertWordPieceLowerCase, BertWordPieceCase, CharLevel, NullTokenizer";
}

/* What a vocabulary file looks like: 'j' JSON (an object), 'w' one
 * token per line with capitals among its tokens, 'u' without. */
static int vocab_kind(const char *path)
{
    size_t len;
    char *text = mt_read_file(path, &len, "--vocab-file");
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) i++;
    int kind = i < len && text[i] == '{' ? 'j' : 'u';
    /* cased WordPiece vocabularies hold words with capitals (bert-base-cased:
     * thousands); uncased ones only the [CLS]-style specials */
    for (size_t k = 0, caps = 0, in_special = 0; kind == 'u' && k < len; k++) {
        const char c = text[k];
        if (c == '[') in_special = 1;
        else if (c == ']' || c == '\n') in_special = 0;
        else if (c >= 'A' && c <= 'Z' && !in_special && ++caps > 100) kind = 'w';
    }
    free(text);
    return kind;
}

const char *mt_tokenizer_infer(const char *given, const char *vocab_file, const char *merge_file)
{
    if (!vocab_file && !merge_file) return given;
    const int kind = vocab_file ? vocab_kind(vocab_file) : 'j';
    const char *inferred = merge_file || kind == 'j' ? "GPT2BPETokenizer"
                           : kind == 'w'             ? "BertWordPieceCase"
                                                     : "BertWordPieceLowerCase";
    if (!given) return inferred;
    const int bpe_given = strcmp(given, "GPT2BPETokenizer") == 0;
    const int wp_given = strncmp(given, "BertWordPiece", 13) == 0;
    if (bpe_given && vocab_file && kind != 'j')
        mt_user_error("GPT2BPETokenizer reads GPT-2's encoder.json (a JSON object) with --merge-file; "
                      "a vocab.txt of one token per line is BERT's (--tokenizer-type BertWordPieceLowerCase)",
                      "--vocab-file %s is not a BPE vocabulary for --tokenizer-type %s", vocab_file, given);
    if (wp_given && (merge_file || kind == 'j'))
        mt_user_error("BERT's WordPiece reads a vocab.txt of one token per line and no --merge-file; "
                      "encoder.json and merges are GPT-2's (--tokenizer-type GPT2BPETokenizer)",
                      "%s %s does not fit --tokenizer-type %s", merge_file ? "--merge-file" : "--vocab-file",
                      merge_file ? merge_file : vocab_file, given);
    if (!bpe_given && !wp_given)
        mt_user_error("drop --vocab-file and --merge-file, or choose the tokenizer they belong to",
                      "--tokenizer-type %s reads no vocabulary files (given %s)", given,
                      vocab_file ? vocab_file : merge_file);
    return given;
}

void mt_tokenizer_open(struct mt_tokenizer *t, const char *type, const char *vocab_file,
                       const char *merge_file, int vocab_size)
{
    memset(t, 0, sizeof *t);
    t->cls = t->sep = t->pad = t->mask = -1;
    if (strcmp(type, "NullTokenizer") == 0) {
        if (vocab_size < 1)
            mt_user_error("give --vocab-size N: ids 0..N-1, and N the end of document (Megatron's rule)",
                          "--tokenizer-type NullTokenizer needs --vocab-size");
        t->type = "NullTokenizer";
        t->vocab_size = vocab_size + 1;
        t->eod = vocab_size;
        t->encode = null_encode;
        t->decode_token = null_decode_token;
        t->free = char_free;
        return;
    }
    if (strcmp(type, "GPT2BPETokenizer") == 0) {
        /* without --vocab-file / --merge-file: the GPT-2 files shipped in data/ */
        char vbuf[4200], mbuf[4200];
        if (!vocab_file) {
            snprintf(vbuf, sizeof vbuf, "%s/gpt2-vocab/encoder.json", mt_data_dir());
            vocab_file = vbuf;
        }
        if (!merge_file) {
            snprintf(mbuf, sizeof mbuf, "%s/gpt2-vocab/vocab.bpe", mt_data_dir());
            merge_file = mbuf;
        }
        mt_bpe_tokenizer_open(t, vocab_file, merge_file);
        return;
    }
    if (strcmp(type, "BertWordPieceLowerCase") == 0 || strcmp(type, "BertWordPieceCase") == 0) {
        /* without --vocab-file: the uncased vocabulary shipped in data/ (for
         * the cased tokenizer give the cased vocabulary) */
        char vbuf[4200];
        if (!vocab_file) {
            if (strcmp(type, "BertWordPieceCase") == 0)
                mt_user_error("give the cased vocabulary with --vocab-file (data/ ships the uncased one)",
                              "--tokenizer-type BertWordPieceCase needs --vocab-file");
            snprintf(vbuf, sizeof vbuf, "%s/bert-vocab/vocab.txt", mt_data_dir());
            vocab_file = vbuf;
        }
        mt_wordpiece_tokenizer_open(t, type, vocab_file);
        return;
    }
    if (strcmp(type, "CharLevel") == 0) {
        t->type = "CharLevel";
        t->vocab_size = 256;
        t->eod = -1;
        t->encode = char_encode;
        t->decode_token = char_decode_token;
        t->free = char_free;
        return;
    }
    char hint[160];
    snprintf(hint, sizeof hint, "known tokenizer types: %s", mt_tokenizer_types());
    mt_user_error(hint, "unknown --tokenizer-type '%s'", type);
}

void mt_tokenizer_close(struct mt_tokenizer *t)
{
    if (t->free) t->free(t);
    memset(t, 0, sizeof *t);
}

int32_t *mt_tokenizer_encode_all(const struct mt_tokenizer *t, const char *text, size_t len,
                                 size_t *n_out)
{
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    t->encode(t, text, len, &ids, &n, &cap);
    *n_out = n;
    return ids;
}

int32_t *mt_tokenizer_encode_prompt(const struct mt_tokenizer *t, const char *text, size_t *n_out)
{
    int32_t *ids = mt_tokenizer_encode_all(t, text, strlen(text), n_out);
    if (*n_out == 0 && t->eod >= 0) {
        free(ids);
        ids = malloc(sizeof *ids);
        if (!ids) mt_die("out of memory");
        ids[0] = t->eod;
        *n_out = 1;
    }
    return ids;
}
