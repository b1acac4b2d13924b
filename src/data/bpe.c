/* bpe.c: GPT-2's byte-level BPE (see bpe.h).
 *
 * Encoding = pre-tokenization + BPE inside each piece, both exactly as
 * tiktoken's "gpt2" encoding (the reference) does them:
 *
 *  1. Pre-tokenization with GPT-2's pattern
 *       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *     hand-written in mt_bpe_next_piece (no regex engine): the alternatives
 *     are tried in order at each position and each one's greedy match is
 *     taken; the only backtracking is \s+(?!\S), which gives back the last
 *     whitespace character of a run that is followed by a non-space, so that
 *     the next piece can be " word". Classes come from unicode_tables.c
 *     (Unicode 16.0, the version of the Rust regex crate inside tiktoken).
 *     Invalid UTF-8: every byte that does not start a valid, shortest-form
 *     UTF-8 sequence is one character of class "other" (like a lone
 *     surrogate from Python's surrogateescape: category Cs, matched by
 *     [^\s\p{L}\p{N}]). tiktoken's str API cannot take such bytes; its
 *     bytes API (_encode_bytes) gives the same ids as ours when the invalid
 *     bytes come at the end of the text, and otherwise BPEs everything after
 *     the first invalid byte as one piece, which we do not imitate.
 *
 *  2. BPE inside a piece: start from one token per byte and repeatedly merge
 *     the adjacent pair whose concatenated bytes form the token of lowest id
 *     (leftmost first on ties). That is tiktoken's rule: its ranks are
 *     exactly GPT-2's ids (encoder.json is ordered by merge), and a pair
 *     merges whenever its concatenation is a token, whichever merge line made
 *     it. A piece that is a token as a whole maps straight to it (tiktoken
 *     does this first, and the result can differ from running BPE).
 *     Pieces up to SHORT_PIECE bytes use a linear scan per merge (the
 *     common case, cache friendly); longer ones a binary heap of candidate
 *     pairs with lazy deletion, O(m log m) for a piece of m bytes, so even
 *     one 1 MB word stays fast (a scan per merge would be quadratic).
 *
 * Hash maps (own open addressing, linear probing, load <= 1/2): token bytes
 * -> id, and (left id, right id) -> merged id (built from every split of
 * every mergeable token into two mergeable tokens). */
#include "core/utf8.h"
#include "data/bpe.h"
#include "core/error.h"
#include "core/io.h"
#include "core/json.h"
#include "data/tokenizer.h"
#include "data/unicode_tables.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define NO_MERGE UINT32_MAX
#define EMPTY_PAIR UINT64_MAX
#define TOK_EMPTY UINT64_MAX
#define SHORT_PIECE 64 /* bytes: pieces up to this use the linear-scan merge loop */

#define VOCAB_HINT \
    "--vocab-file must be GPT-2's encoder.json (one JSON object mapping token -> id), " \
    "as shipped in data/gpt2-vocab/"
#define MERGE_HINT \
    "--merge-file must be GPT-2's vocab.bpe ('#version' line, then one 'LEFT RIGHT' merge " \
    "per line) from the same vocabulary as --vocab-file; both are shipped in data/gpt2-vocab/"

struct mt_bpe {
    int n;    /* tokens in encoder.json (vocabulary size) */
    int eod;  /* id of "<|endoftext|>" or -1 */
    uint32_t *off;            /* [n + 1]: token i is bytes[off[i] .. off[i+1]) */
    unsigned char *bytes;     /* [off[n]] all tokens' bytes, in id order */
    unsigned char *mergeable; /* [n]: 1 for single bytes and merge results (tiktoken's
                                 mergeable ranks); 0 for special tokens */
    int32_t byte_tok[256];    /* id of each single byte */
    uint64_t *tok_slots;      /* [tok_mask + 1] hash >> 32 << 32 | id, TOK_EMPTY = empty;
                                 the hash half skips most byte compares */
    uint32_t tok_mask;
    uint64_t *pair_keys;      /* [pair_mask + 1] (left << 32 | right), EMPTY_PAIR = empty */
    int32_t *pair_vals;       /* [pair_mask + 1] merged id (= its merge rank) */
    uint32_t pair_mask;
    int pair_shift;           /* 64 - log2(pair_mask + 1) */
};

/* ---- GPT-2's byte <-> unicode alphabet ---------------------------------------- */

/* bytes_to_unicode: printable Latin-1 bytes stand for themselves; the other
 * 68 bytes (controls, space, DEL, NBSP, soft hyphen) map to U+0100.. in byte
 * order, so every token is a printable string. */
static void byte_alphabet(uint16_t b2u[256], int16_t u2b[0x144])
{
    int extra = 0;
    for (int i = 0; i < 0x144; i++) u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        b2u[b] = (uint16_t)(keep ? b : 256 + extra++);
        u2b[b2u[b]] = (int16_t)b;
    }
}

/* ---- UTF-8 and character classes ------------------------------------------------ */


/* ASCII classes, the hot path (same as the generated table below 0x80) */
#define L_ MT_UC_LETTER
#define N_ MT_UC_NUMBER
#define S_ MT_UC_SPACE
static const unsigned char ASCII_CLASS[128] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  S_, S_, S_, S_, S_, 0,  0,  /* \t \n \v \f \r */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    S_, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* space */
    N_, N_, N_, N_, N_, N_, N_, N_, N_, N_, 0,  0,  0,  0,  0,  0,  /* 0-9 */
    0,  L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,  /* A-O */
    L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, 0,  0,  0,  0,  0,   /* P-Z */
    0,  L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,  /* a-o */
    L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, 0,  0,  0,  0,  0,   /* p-z */
};
#undef L_
#undef N_
#undef S_

static int uc_class(uint32_t cp)
{
    int lo = 0, hi = mt_uc_nranges - 1;
    while (lo <= hi) {
        int mid = (lo + hi) >> 1;
        if (cp < mt_uc_ranges[mid].lo) hi = mid - 1;
        else if (cp > mt_uc_ranges[mid].hi) lo = mid + 1;
        else return mt_uc_ranges[mid].cls;
    }
    return MT_UC_OTHER;
}

/* The character at s[i] (i < n): returns its length in bytes and its class;
 * an invalid byte is a 1-byte "other". */
static inline size_t char_at(const unsigned char *s, size_t n, size_t i, int *cls)
{
    if (s[i] < 0x80) {
        *cls = ASCII_CLASS[s[i]];
        return 1;
    }
    uint32_t cp;
    size_t k = mt_utf8_decode(s + i, n - i, &cp);
    if (!k) {
        *cls = MT_UC_OTHER;
        return 1;
    }
    *cls = uc_class(cp);
    return k;
}

size_t mt_bpe_next_piece(const char *text, size_t n, size_t i)
{
    const unsigned char *s = (const unsigned char *)text;
    /* 's|'t|'re|'ve|'m|'ll|'d (case-sensitive: "'S" is not one) */
    if (s[i] == '\'' && i + 1 < n) {
        unsigned d = s[i + 1];
        if (d == 's' || d == 't' || d == 'm' || d == 'd') return i + 2;
        if (i + 2 < n) {
            unsigned e = s[i + 2];
            if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') || (d == 'l' && e == 'l'))
                return i + 3;
        }
    }
    int cls, c2;
    size_t j = i + char_at(s, n, i, &cls);
    /* " ?X+": a space joins the run that follows unless that is whitespace */
    if (s[i] == ' ' && j < n) {
        size_t k2 = char_at(s, n, j, &c2);
        if (c2 != MT_UC_SPACE) {
            cls = c2;
            j += k2;
        }
    }
    if (cls != MT_UC_SPACE) { /* ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ */
        while (j < n) {
            size_t k2 = char_at(s, n, j, &c2);
            if (c2 != cls) break;
            j += k2;
        }
        return j;
    }
    /* \s+(?!\S) | \s+ */
    size_t last = i; /* start of the run's last character */
    while (j < n) {
        size_t k2 = char_at(s, n, j, &c2);
        if (c2 != MT_UC_SPACE) break;
        last = j;
        j += k2;
    }
    if (j == n) return n;     /* the run ends the text: (?!\S) holds at the end */
    if (last > i) return last; /* give back the last one: it may start " word" */
    return j;                  /* a single whitespace character before a non-space */
}

/* ---- hash maps -------------------------------------------------------------- */

static inline uint64_t hash_bytes(const unsigned char *p, size_t n)
{
    /* 8 bytes at a time, multiply-xorshift mixing: tokens and pieces are short */
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t k = 0; k < n; k++) w |= (uint64_t)p[k] << (8 * k);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

/* id of the token with these bytes (any token, special ones too), or -1 */
static int32_t tok_find(const struct mt_bpe *b, const unsigned char *p, size_t n)
{
    uint64_t hash = hash_bytes(p, n), tag = hash >> 32 << 32;
    uint32_t h = (uint32_t)hash & b->tok_mask;
    for (;;) {
        uint64_t v = b->tok_slots[h];
        if (v == TOK_EMPTY) return -1;
        int32_t id = (int32_t)(uint32_t)v;
        if ((v & 0xFFFFFFFF00000000ull) == tag && b->off[id + 1] - b->off[id] == n &&
            memcmp(b->bytes + b->off[id], p, n) == 0)
            return id;
        h = (h + 1) & b->tok_mask;
    }
}

static inline uint32_t pair_slot(const struct mt_bpe *b, uint64_t key)
{
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> b->pair_shift);
}

/* merged id of (l, r), which is also its rank; NO_MERGE when l+r is no token */
static inline uint32_t pair_rank(const struct mt_bpe *b, int32_t l, int32_t r)
{
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    uint32_t h = pair_slot(b, key);
    for (;;) {
        uint64_t k = b->pair_keys[h];
        if (k == key) return (uint32_t)b->pair_vals[h];
        if (k == EMPTY_PAIR) return NO_MERGE;
        h = (h + 1) & b->pair_mask;
    }
}

/* ---- loading: encoder.json ----------------------------------------------------- */

MT_NORETURN MT_PRINTF(3, 4) static void vocab_error(const char *path, size_t off,
                                                    const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mt_user_error(VOCAB_HINT, "%s: offset %zu: %s", path, off, msg);
}

MT_NORETURN MT_PRINTF(3, 4) static void merge_error(const char *path, long line,
                                                    const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mt_user_error(MERGE_HINT, "%s: line %ld: %s", path, line, msg);
}

struct json_entry {
    size_t key_src, key_src_end; /* the key as written in the file, for messages */
    size_t key_off, key_len;     /* its decoded bytes in the arena */
    long long id;
    size_t id_src;               /* file offset of the id */
};

struct json_parser {
    const char *path;
    const unsigned char *s;
    size_t n, i;
    const int16_t *u2b;
};

static void json_ws(struct json_parser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

static unsigned hex4(struct json_parser *p)
{
    if (p->n - p->i < 4) vocab_error(p->path, p->i, "\\u escape needs 4 hex digits");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned c = p->s[p->i + k];
        int d = mt_json_hexval((int)c);
        if (d < 0) vocab_error(p->path, p->i + k, "bad hex digit '%c' in a \\u escape", (int)c);
        v = v << 4 | (unsigned)d;
    }
    p->i += 4;
    return v;
}

/* Parses a JSON string at p->i (at the opening quote) whose characters are
 * all in GPT-2's byte alphabet; appends the token's bytes to out. */
static size_t json_token_string(struct json_parser *p, unsigned char *out, size_t cap)
{
    size_t start = p->i, len = 0;
    p->i++; /* the quote */
    for (;;) {
        if (p->i >= p->n) vocab_error(p->path, start, "unterminated string");
        size_t at = p->i;
        unsigned c = p->s[p->i];
        uint32_t cp;
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20) vocab_error(p->path, at, "raw control character 0x%02X in a string", c);
        if (c == '\\') {
            if (p->i + 1 >= p->n) vocab_error(p->path, at, "unterminated escape");
            unsigned e = p->s[p->i + 1];
            p->i += 2;
            int r = mt_json_escape((int)e); /* one-character escapes; -1 for the rest */
            switch (r >= 0 ? -1 : (int)e) {
            case -1: cp = (uint32_t)r; break;
            case 'u':
                cp = hex4(p);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (p->n - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                        vocab_error(p->path, at, "unpaired surrogate \\u%04X", (unsigned)cp);
                    p->i += 2;
                    unsigned lo = hex4(p);
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        vocab_error(p->path, at, "unpaired surrogate \\u%04X", (unsigned)cp);
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    vocab_error(p->path, at, "unpaired surrogate \\u%04X", (unsigned)cp);
                }
                break;
            default:
                if (e >= 0x21 && e < 0x7F) vocab_error(p->path, at, "bad escape '\\%c'", (int)e);
                vocab_error(p->path, at, "bad escape (byte 0x%02X after '\\')", e);
            }
        } else {
            size_t k = mt_utf8_decode(p->s + p->i, p->n - p->i, &cp);
            if (!k) vocab_error(p->path, at, "invalid UTF-8 (byte 0x%02X)", c);
            p->i += k;
        }
        if (cp >= 0x144 || p->u2b[cp] < 0)
            vocab_error(p->path, at,
                        "character U+%04X is not in GPT-2's byte alphabet (is this a GPT-2 "
                        "byte-level vocabulary?)",
                        (unsigned)cp);
        if (len == cap)
            vocab_error(p->path, start, "token longer than %zu bytes", cap);
        out[len++] = (unsigned char)p->u2b[cp];
    }
    return len;
}

static long long json_int(struct json_parser *p)
{
    size_t at = p->i;
    int neg = 0;
    if (p->i < p->n && p->s[p->i] == '-') {
        neg = 1;
        p->i++;
    }
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
        vocab_error(p->path, at, "expected an integer token id");
    long long v = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        if (v > 100000000000LL) vocab_error(p->path, at, "token id is too large");
        v = v * 10 + (p->s[p->i++] - '0');
    }
    if (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E'))
        vocab_error(p->path, at, "token id is not an integer");
    return neg ? -v : v;
}

static void tok_insert(struct mt_bpe *b, int32_t id)
{
    uint64_t hash = hash_bytes(b->bytes + b->off[id], b->off[id + 1] - b->off[id]);
    uint32_t h = (uint32_t)hash & b->tok_mask;
    while (b->tok_slots[h] != TOK_EMPTY) h = (h + 1) & b->tok_mask;
    b->tok_slots[h] = hash >> 32 << 32 | (uint32_t)id;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) mt_die("out of memory loading the BPE vocabulary (%zu bytes)", n);
    return p;
}

static void load_encoder(struct mt_bpe *b, const char *path, const int16_t *u2b)
{
    size_t len;
    char *src = mt_read_file(path, &len, "--vocab-file");
    struct json_parser p = {path, (const unsigned char *)src, len, 0, u2b};
    size_t ecap = 1024, ne = 0, acap = 1 << 16, alen = 0;
    struct json_entry *e = xmalloc(ecap * sizeof *e);
    unsigned char *arena = xmalloc(acap);

    json_ws(&p);
    if (p.i >= p.n) vocab_error(path, p.i, "the file is empty; expected a JSON object");
    if (p.s[p.i] != '{')
        vocab_error(path, p.i, "expected '{': the file must be one JSON object (token -> id)");
    p.i++;
    json_ws(&p);
    if (p.i < p.n && p.s[p.i] == '}') vocab_error(path, p.i, "the object has no tokens");
    for (;;) {
        json_ws(&p);
        if (p.i >= p.n || p.s[p.i] != '"')
            vocab_error(path, p.i, "expected a string (a token) as the key");
        if (ne == ecap) {
            ecap *= 2;
            struct json_entry *ne2 = realloc(e, ecap * sizeof *e);
            if (!ne2) mt_die("out of memory loading %s", path);
            e = ne2;
        }
        if (acap - alen < MT_TOKEN_MAX_BYTES) {
            acap *= 2;
            unsigned char *a2 = realloc(arena, acap);
            if (!a2) mt_die("out of memory loading %s", path);
            arena = a2;
        }
        struct json_entry *x = &e[ne];
        x->key_src = p.i;
        x->key_off = alen;
        x->key_len = json_token_string(&p, arena + alen, MT_TOKEN_MAX_BYTES);
        x->key_src_end = p.i;
        if (x->key_len == 0) vocab_error(path, x->key_src, "empty token");
        alen += x->key_len;
        json_ws(&p);
        if (p.i >= p.n || p.s[p.i] != ':') vocab_error(path, p.i, "expected ':' after a key");
        p.i++;
        json_ws(&p);
        x->id_src = p.i;
        x->id = json_int(&p);
        ne++;
        json_ws(&p);
        if (p.i < p.n && p.s[p.i] == ',') {
            p.i++;
            continue;
        }
        if (p.i < p.n && p.s[p.i] == '}') {
            p.i++;
            break;
        }
        vocab_error(path, p.i, p.i >= p.n ? "unexpected end of file inside the object"
                                          : "expected ',' or '}' after a token id");
    }
    json_ws(&p);
    if (p.i != p.n) vocab_error(path, p.i, "unexpected text after the JSON object");
    if (ne > (size_t)INT32_MAX / 2) vocab_error(path, 0, "too many tokens (%zu)", ne);

    /* ids must be exactly 0..ne-1 */
    int n = (int)ne;
    size_t *by_id = xmalloc(ne * sizeof *by_id); /* entry index of each id */
    for (size_t k = 0; k < ne; k++) by_id[k] = SIZE_MAX;
    for (size_t k = 0; k < ne; k++) {
        struct json_entry *x = &e[k];
        int kl = (int)(x->key_src_end - x->key_src);
        if (x->id < 0 || x->id >= n)
            vocab_error(path, x->id_src,
                        "id %lld of token %.*s is out of range: with %d tokens the ids must "
                        "be 0..%d",
                        x->id, kl > 60 ? 60 : kl, src + x->key_src, n, n - 1);
        if (by_id[x->id] != SIZE_MAX) {
            struct json_entry *y = &e[by_id[x->id]];
            int yl = (int)(y->key_src_end - y->key_src);
            vocab_error(path, x->id_src, "duplicate id %lld: tokens %.*s and %.*s", x->id,
                        yl > 60 ? 60 : yl, src + y->key_src, kl > 60 ? 60 : kl,
                        src + x->key_src);
        }
        by_id[x->id] = k;
    }
    b->n = n;
    b->off = xmalloc(((size_t)n + 1) * sizeof *b->off);
    b->bytes = xmalloc(alen);
    uint32_t o = 0;
    for (int id = 0; id < n; id++) {
        struct json_entry *x = &e[by_id[id]];
        b->off[id] = o;
        memcpy(b->bytes + o, arena + x->key_off, x->key_len);
        o += (uint32_t)x->key_len;
    }
    b->off[n] = o;

    uint32_t slots = 1024;
    while (slots < 2u * (uint32_t)n) slots *= 2;
    b->tok_mask = slots - 1;
    b->tok_slots = xmalloc(slots * sizeof *b->tok_slots);
    for (uint32_t k = 0; k < slots; k++) b->tok_slots[k] = TOK_EMPTY;
    for (int id = 0; id < n; id++) {
        const unsigned char *tb = b->bytes + b->off[id];
        if (tok_find(b, tb, b->off[id + 1] - b->off[id]) >= 0) {
            struct json_entry *x = &e[by_id[id]];
            int kl = (int)(x->key_src_end - x->key_src);
            vocab_error(path, x->key_src, "token %.*s appears twice", kl > 60 ? 60 : kl,
                        src + x->key_src);
        }
        tok_insert(b, id);
    }
    free(by_id);
    free(arena);
    free(e);
    free(src);
}

/* ---- loading: vocab.bpe ----------------------------------------------------------- */

/* A symbol of vocab.bpe (raw UTF-8 in GPT-2's alphabet) -> token bytes. */
static size_t merge_symbol(const char *path, long line, const unsigned char *s, size_t n,
                           const int16_t *u2b, unsigned char *out)
{
    size_t len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = mt_utf8_decode(s + i, n - i, &cp);
        if (!k) merge_error(path, line, "invalid UTF-8 (byte 0x%02X)", s[i]);
        if (cp >= 0x144 || u2b[cp] < 0)
            merge_error(path, line, "unknown symbol: character U+%04X is not in GPT-2's "
                                    "byte alphabet", (unsigned)cp);
        if (len == MT_TOKEN_MAX_BYTES)
            merge_error(path, line, "symbol longer than %d bytes", MT_TOKEN_MAX_BYTES);
        out[len++] = (unsigned char)u2b[cp];
        i += k;
    }
    return len;
}

static void load_merges(struct mt_bpe *b, const char *path, const char *vocab_path,
                        const int16_t *u2b)
{
    size_t len;
    char *src = mt_read_file(path, &len, "--merge-file");
    const unsigned char *s = (const unsigned char *)src;
    unsigned char lb[MT_TOKEN_MAX_BYTES], rb[MT_TOKEN_MAX_BYTES], cat[2 * MT_TOKEN_MAX_BYTES];
    size_t i = 0;
    long line = 1, nmerges = 0;
    int32_t prev_id = -1;
    if (len > 0 && s[0] == '#') { /* "#version: 0.2" */
        while (i < len && s[i] != '\n') i++;
        i++;
        line++;
    }
    for (; i < len; line++) {
        size_t a = i, end = i;
        while (end < len && s[end] != '\n') end++;
        i = end + 1;
        size_t z = end;
        if (z > a && s[z - 1] == '\r') z--;
        if (z == a) { /* blank lines may only trail */
            size_t k = i;
            while (k < len && (s[k] == '\n' || s[k] == '\r')) k++;
            if (k < len) merge_error(path, line, "empty line");
            break;
        }
        const unsigned char *sp = memchr(s + a, ' ', z - a);
        if (!sp) merge_error(path, line, "no space: expected 'LEFT RIGHT'");
        size_t ls = (size_t)(sp - s);
        if (ls == a || ls + 1 == z || memchr(sp + 1, ' ', z - ls - 1))
            merge_error(path, line, "expected two symbols separated by one space, got '%.*s'",
                        (int)(z - a > 80 ? 80 : z - a), src + a);
        size_t ll = merge_symbol(path, line, s + a, ls - a, u2b, lb);
        size_t rl = merge_symbol(path, line, sp + 1, z - ls - 1, u2b, rb);
        int32_t li = tok_find(b, lb, ll), ri = tok_find(b, rb, rl);
        if (li < 0 || !b->mergeable[li] || ri < 0 || !b->mergeable[ri]) {
            int bad_left = li < 0 || !b->mergeable[li];
            int bl = (int)(bad_left ? ls - a : z - ls - 1);
            const char *bs = bad_left ? src + a : (const char *)sp + 1;
            if ((bad_left ? li : ri) < 0)
                merge_error(path, line, "unknown symbol '%.*s': %s has no such token "
                            "(the two files do not belong together)", bl, bs, vocab_path);
            merge_error(path, line, "unknown symbol '%.*s': it is neither a single byte nor "
                        "made by an earlier merge", bl, bs);
        }
        memcpy(cat, lb, ll);
        memcpy(cat + ll, rb, rl);
        int32_t id = ll + rl <= MT_TOKEN_MAX_BYTES ? tok_find(b, cat, ll + rl) : -1;
        if (id < 0)
            merge_error(path, line, "merging '%.*s' gives a token that %s lacks (the two "
                        "files do not belong together)", (int)(z - a), src + a, vocab_path);
        if (id <= prev_id)
            merge_error(path, line, "'%.*s' makes token id %d, not above the previous "
                        "merge's %d: %s is not ordered by merge rank, so the two files do "
                        "not belong together", (int)(z - a), src + a, id, prev_id, vocab_path);
        prev_id = id;
        b->mergeable[id] = 1;
        nmerges++;
    }
    if (nmerges == 0) merge_error(path, line, "no merges in the file");
    free(src);
}

/* (l, r) -> merged id for every split of every mergeable token */
static void build_pairs(struct mt_bpe *b)
{
    /* collect first (one lookup per split), then size the table */
    size_t np = 0, cap = 1 << 16;
    int32_t (*pairs)[3] = xmalloc(cap * sizeof *pairs);
    for (int id = 0; id < b->n; id++) {
        if (!b->mergeable[id]) continue;
        const unsigned char *t = b->bytes + b->off[id];
        size_t len = b->off[id + 1] - b->off[id];
        for (size_t sp = 1; sp < len; sp++) {
            int32_t l = tok_find(b, t, sp);
            if (l < 0 || !b->mergeable[l]) continue;
            int32_t r = tok_find(b, t + sp, len - sp);
            if (r < 0 || !b->mergeable[r]) continue;
            if (np == cap) {
                cap *= 2;
                int32_t(*p2)[3] = realloc(pairs, cap * sizeof *pairs);
                if (!p2) mt_die("out of memory loading the BPE vocabulary");
                pairs = p2;
            }
            pairs[np][0] = l;
            pairs[np][1] = r;
            pairs[np][2] = id;
            np++;
        }
    }
    uint32_t slots = 1024;
    int bits = 10;
    while (slots < 2 * np) {
        slots *= 2;
        bits++;
    }
    b->pair_mask = slots - 1;
    b->pair_shift = 64 - bits;
    b->pair_keys = xmalloc(slots * sizeof *b->pair_keys);
    b->pair_vals = xmalloc(slots * sizeof *b->pair_vals);
    for (uint32_t k = 0; k < slots; k++) b->pair_keys[k] = EMPTY_PAIR;
    for (size_t k = 0; k < np; k++) {
        uint64_t key = (uint64_t)(uint32_t)pairs[k][0] << 32 | (uint32_t)pairs[k][1];
        uint32_t h = pair_slot(b, key);
        while (b->pair_keys[h] != EMPTY_PAIR) h = (h + 1) & b->pair_mask;
        b->pair_keys[h] = key;
        b->pair_vals[h] = pairs[k][2];
    }
    free(pairs);
}

struct mt_bpe *mt_bpe_load(const char *vocab_file, const char *merge_file)
{
    uint16_t b2u[256];
    int16_t u2b[0x144];
    byte_alphabet(b2u, u2b);
    struct mt_bpe *b = xmalloc(sizeof *b);
    memset(b, 0, sizeof *b);
    load_encoder(b, vocab_file, u2b);
    b->mergeable = xmalloc((size_t)b->n);
    memset(b->mergeable, 0, (size_t)b->n);
    for (int c = 0; c < 256; c++) {
        unsigned char byte = (unsigned char)c;
        int32_t id = tok_find(b, &byte, 1);
        if (id < 0)
            mt_user_error(VOCAB_HINT, "%s has no token for byte 0x%02X (U+%04X in GPT-2's "
                          "byte alphabet): not a byte-level BPE vocabulary", vocab_file, c,
                          (unsigned)b2u[c]);
        b->byte_tok[c] = id;
        b->mergeable[id] = 1;
    }
    load_merges(b, merge_file, vocab_file, u2b);
    /* every other token must be a special one ("<|...|>"): anything else means
     * the merges stop short of the vocabulary (e.g. a truncated vocab.bpe) */
    for (int id = 0; id < b->n; id++) {
        if (b->mergeable[id]) continue;
        const char *tb = (const char *)b->bytes + b->off[id];
        size_t tl = b->off[id + 1] - b->off[id];
        if (tl >= 4 && memcmp(tb, "<|", 2) == 0 && memcmp(tb + tl - 2, "|>", 2) == 0) continue;
        mt_user_error(MERGE_HINT, "%s: token id %d of %s is neither a byte nor made by any "
                      "merge (the two files do not belong together)", merge_file, id,
                      vocab_file);
    }
    static const char EOD[] = "<|endoftext|>";
    b->eod = tok_find(b, (const unsigned char *)EOD, sizeof EOD - 1);
    if (b->eod >= 0 && b->mergeable[b->eod]) b->eod = -1;
    build_pairs(b);
    return b;
}

void mt_bpe_free(struct mt_bpe *b)
{
    if (!b) return;
    free(b->off);
    free(b->bytes);
    free(b->mergeable);
    free(b->tok_slots);
    free(b->pair_keys);
    free(b->pair_vals);
    free(b);
}

int mt_bpe_vocab_size(const struct mt_bpe *b) { return b->n; }
int mt_bpe_eod(const struct mt_bpe *b) { return b->eod; }

size_t mt_bpe_decode_token(const struct mt_bpe *b, int32_t id, char *buf)
{
    if (id < 0 || id >= b->n) return 0;
    size_t len = b->off[id + 1] - b->off[id];
    memcpy(buf, b->bytes + b->off[id], len);
    return len;
}

/* ---- encoding ------------------------------------------------------------------ */

/* BPE of a piece of m (2 <= m <= SHORT_PIECE) bytes; writes the ids to out,
 * returns their count. A scan for the lowest rank per merge: m is small. */
static size_t bpe_short(const struct mt_bpe *b, const unsigned char *p, size_t m, int32_t *out)
{
    uint32_t rank[SHORT_PIECE]; /* rank[k]: of the pair (out[k], out[k+1]) */
    for (size_t k = 0; k < m; k++) out[k] = b->byte_tok[p[k]];
    for (size_t k = 0; k + 1 < m; k++) rank[k] = pair_rank(b, out[k], out[k + 1]);
    size_t cnt = m;
    while (cnt > 1) {
        uint32_t best = NO_MERGE;
        size_t bi = 0;
        for (size_t k = 0; k + 1 < cnt; k++)
            if (rank[k] < best) { /* strict: the leftmost of equal ranks */
                best = rank[k];
                bi = k;
            }
        if (best == NO_MERGE) break;
        out[bi] = (int32_t)best;
        memmove(out + bi + 1, out + bi + 2, (cnt - bi - 2) * sizeof *out);
        memmove(rank + bi, rank + bi + 1, (cnt - bi - 2) * sizeof *rank);
        cnt--;
        if (bi > 0) rank[bi - 1] = pair_rank(b, out[bi - 1], out[bi]);
        if (bi + 1 < cnt) rank[bi] = pair_rank(b, out[bi], out[bi + 1]);
    }
    return cnt;
}

/* Scratch for long pieces, kept across the pieces of one encode call. */
struct long_scratch {
    int32_t *tok;  /* [m] token of the part starting at byte k, -1 when absorbed */
    int32_t *next; /* [m] byte offset of the next part (m = none) */
    int32_t *prev; /* [m] byte offset of the previous part (-1 = none) */
    uint64_t *heap; /* candidate pairs: rank << 32 | left part's byte offset */
    size_t cap, heap_cap;
};

static void heap_push(struct long_scratch *s, size_t *hn, uint64_t v)
{
    if (*hn == s->heap_cap) {
        s->heap_cap = s->heap_cap ? 2 * s->heap_cap : 1024;
        uint64_t *h = realloc(s->heap, s->heap_cap * sizeof *h);
        if (!h) mt_die("out of memory while tokenizing");
        s->heap = h;
    }
    size_t i = (*hn)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent] <= v) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = v;
}

static uint64_t heap_pop(struct long_scratch *s, size_t *hn)
{
    uint64_t top = s->heap[0], v = s->heap[--(*hn)];
    size_t i = 0, n = *hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && s->heap[c + 1] < s->heap[c]) c++;
        if (s->heap[c] >= v) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = v;
    return top;
}

/* BPE of a long piece: pops the (rank, position)-smallest candidate pair; an
 * entry is stale (skipped) unless its left part is alive and the pair there
 * still has that rank. Ordering by (rank, byte offset) = tiktoken's "lowest
 * rank, leftmost" rule. Writes the ids to out[0..m), returns their count. */
static size_t bpe_long(const struct mt_bpe *b, const unsigned char *p, size_t m, int32_t *out,
                       struct long_scratch *s)
{
    if (m > s->cap) {
        free(s->tok);
        free(s->next);
        free(s->prev);
        s->cap = m;
        s->tok = malloc(m * sizeof *s->tok);
        s->next = malloc(m * sizeof *s->next);
        s->prev = malloc(m * sizeof *s->prev);
        if (!s->tok || !s->next || !s->prev) mt_die("out of memory while tokenizing");
    }
    int32_t M = (int32_t)m;
    size_t hn = 0;
    for (int32_t k = 0; k < M; k++) {
        s->tok[k] = b->byte_tok[p[k]];
        s->next[k] = k + 1;
        s->prev[k] = k - 1;
    }
    for (int32_t k = 0; k + 1 < M; k++) {
        uint32_t r = pair_rank(b, s->tok[k], s->tok[k + 1]);
        if (r != NO_MERGE) heap_push(s, &hn, (uint64_t)r << 32 | (uint32_t)k);
    }
    while (hn > 0) {
        uint64_t top = heap_pop(s, &hn);
        uint32_t r = (uint32_t)(top >> 32);
        int32_t i = (int32_t)(uint32_t)top, j = s->next[i];
        if (s->tok[i] < 0 || j >= M || pair_rank(b, s->tok[i], s->tok[j]) != r) continue;
        s->tok[i] = (int32_t)r; /* the merged token's id is its rank */
        s->tok[j] = -1;
        int32_t nj = s->next[j];
        s->next[i] = nj;
        if (nj < M) s->prev[nj] = i;
        int32_t pi = s->prev[i];
        if (pi >= 0) {
            uint32_t r2 = pair_rank(b, s->tok[pi], s->tok[i]);
            if (r2 != NO_MERGE) heap_push(s, &hn, (uint64_t)r2 << 32 | (uint32_t)pi);
        }
        if (nj < M) {
            uint32_t r2 = pair_rank(b, s->tok[i], s->tok[nj]);
            if (r2 != NO_MERGE) heap_push(s, &hn, (uint64_t)r2 << 32 | (uint32_t)i);
        }
    }
    size_t cnt = 0;
    for (int32_t k = 0; k < M; k = s->next[k]) out[cnt++] = s->tok[k];
    return cnt;
}

void mt_bpe_encode(const struct mt_bpe *b, const char *text, size_t len, int32_t **ids,
                   size_t *n, size_t *cap)
{
    const unsigned char *s = (const unsigned char *)text;
    struct long_scratch ls = {0};
    size_t i = 0;
    if (len > (size_t)INT32_MAX) mt_user_error(NULL, "text too long to tokenize at once "
                                                     "(%zu bytes; at most 2 GiB)", len);
    while (i < len) {
        size_t e = mt_bpe_next_piece(text, len, i), m = e - i;
        if (*n + m > *cap) { /* a piece never yields more ids than bytes */
            size_t c = *cap ? *cap : 1024;
            while (c < *n + m) c *= 2;
            int32_t *np = realloc(*ids, c * sizeof **ids);
            if (!np) mt_die("out of memory while tokenizing (%zu tokens)", *n + m);
            *ids = np;
            *cap = c;
        }
        int32_t *out = *ids + *n;
        if (m == 1) {
            out[0] = b->byte_tok[s[i]];
            *n += 1;
        } else {
            int32_t whole = tok_find(b, s + i, m);
            if (whole >= 0 && b->mergeable[whole]) {
                out[0] = whole;
                *n += 1;
            } else if (m <= SHORT_PIECE) {
                *n += bpe_short(b, s + i, m, out);
            } else {
                *n += bpe_long(b, s + i, m, out, &ls);
            }
        }
        i = e;
    }
    free(ls.tok);
    free(ls.next);
    free(ls.prev);
    free(ls.heap);
}

/* ---- the mt_tokenizer interface --------------------------------------------------- */

static void tok_encode(const struct mt_tokenizer *t, const char *text, size_t len,
                       int32_t **ids, size_t *n, size_t *cap)
{
    mt_bpe_encode(t->impl, text, len, ids, n, cap);
}

static size_t tok_decode_token(const struct mt_tokenizer *t, int32_t id, char *buf)
{
    return mt_bpe_decode_token(t->impl, id, buf);
}

static void tok_free(struct mt_tokenizer *t)
{
    mt_bpe_free(t->impl);
    t->impl = NULL;
}

void mt_bpe_tokenizer_open(struct mt_tokenizer *t, const char *vocab_file,
                           const char *merge_file)
{
    if (!vocab_file || !merge_file)
        mt_user_error("give --vocab-file PATH/encoder.json and --merge-file PATH/vocab.bpe "
                      "(GPT-2's are shipped in data/gpt2-vocab/)",
                      "--tokenizer-type GPT2BPETokenizer needs %s",
                      !vocab_file && !merge_file ? "--vocab-file and --merge-file"
                      : !vocab_file              ? "--vocab-file"
                                                 : "--merge-file");
    struct mt_bpe *b = mt_bpe_load(vocab_file, merge_file);
    t->type = "GPT2BPETokenizer";
    t->vocab_size = b->n;
    t->eod = b->eod;
    t->impl = b;
    t->encode = tok_encode;
    t->decode_token = tok_decode_token;
    t->free = tok_free;
}
