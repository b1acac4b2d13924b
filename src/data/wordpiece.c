/* wordpiece.c: BERT's WordPiece tokenizer (see wordpiece.h).
 *
 * One pass over the text: characters are normalised as they are decoded
 * (ASCII through a 128-entry table, the rest through the generated range
 * and map tables) straight into the current word, which is cut into
 * vocabulary pieces when a space or a punctuation character ends it. The
 * vocabulary is an open-addressing hash of the token strings. */
#include "data/wordpiece.h"
#include "core/error.h"
#include "core/io.h"
#include "core/json.h"
#include "core/utf8.h"
#include "data/tokenizer.h"
#include "data/wordpiece_tables.h"
#include <stdlib.h>
#include <string.h>

#define MAX_WORD_CHARS 100 /* longer words are [UNK] (BERT's max_input_chars_per_word) */

static const char *const SPECIALS[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
enum { NSPECIAL = 5 };

struct mt_wordpiece {
    int lower;
    int n;            /* ids */
    int nfile;        /* of them, the file's lines (the rest: [BOS], [EOS] appended) */
    char **tok;       /* id -> token, NUL-terminated */
    char *pool;       /* the file's bytes, lines cut in place */
    int32_t *slot;    /* hash slots: id, or -1 when empty */
    uint32_t mask;
    int unk;
    int special[NSPECIAL];
    signed char ascii[128];      /* what an ASCII byte becomes: -1 removed */
    unsigned char punct_ascii[128];
    const struct mt_wp_range *ranges;
    int nranges;
    const struct mt_wp_map *maps;
    int nmaps, hangul;
};

/* ---- the vocabulary ---------------------------------------------------------------- */

static uint32_t hash_bytes(uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}
#define HASH0 2166136261u

/* id of "##"[0..pre) + s[0..n), or -1 */
static int lookup(const struct mt_wordpiece *w, int cont, const char *s, size_t n)
{
    uint32_t h = hash_bytes(cont ? hash_bytes(HASH0, "##", 2) : HASH0, s, n);
    const size_t want = n + (cont ? 2 : 0);
    for (uint32_t i = h & w->mask;; i = (i + 1) & w->mask) {
        int id = w->slot[i];
        if (id < 0) return -1;
        const char *t = w->tok[id];
        if (strlen(t) == want && (!cont || (t[0] == '#' && t[1] == '#')) &&
            memcmp(t + (cont ? 2 : 0), s, n) == 0)
            return id;
    }
}

static void insert(struct mt_wordpiece *w, int id)
{
    const char *t = w->tok[id];
    uint32_t h = hash_bytes(HASH0, t, strlen(t));
    for (uint32_t i = h & w->mask;; i = (i + 1) & w->mask) {
        if (w->slot[i] < 0 || strcmp(w->tok[w->slot[i]], t) == 0) {
            w->slot[i] = id; /* a token listed twice: the later line wins, as in Hugging Face */
            return;
        }
    }
}

int mt_wordpiece_id(const struct mt_wordpiece *w, const char *token)
{
    return lookup(w, 0, token, strlen(token));
}

int mt_wordpiece_vocab_size(const struct mt_wordpiece *w) { return w->n; }

/* ---- character classes ------------------------------------------------------------- */

static int range_kind(const struct mt_wp_range *r, int n, uint32_t cp)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid].lo) hi = mid - 1;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return r[mid].kind;
    }
    return MT_WP_KEEP;
}

static const char *map_of(const struct mt_wordpiece *w, uint32_t cp)
{
    int lo = 0, hi = w->nmaps - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < w->maps[mid].cp) hi = mid - 1;
        else if (cp > w->maps[mid].cp) lo = mid + 1;
        else return w->maps[mid].utf8;
    }
    return NULL;
}

static int is_punct(uint32_t cp) { return range_kind(mt_wp_punct_ranges, mt_wp_punct_nranges, cp); }

/* one character at s (n > 0 bytes); invalid UTF-8 reads as U+FFFD, one byte consumed */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *used)
{
    uint32_t cp;
    *used = mt_utf8_decode(s, n, &cp);
    if (*used) return cp;
    *used = 1;
    return 0xFFFD;
}

/* ---- encoding ---------------------------------------------------------------------- */

/* the word being built and where its ids go */
struct enc {
    const struct mt_wordpiece *w;
    char *word;
    size_t len, cap;
    int nchars;
    int32_t **ids;
    size_t *n, *cap_ids;
};

static void push_id(struct enc *e, int32_t id)
{
    if (*e->n == *e->cap_ids) {
        size_t c = *e->cap_ids ? 2 * *e->cap_ids : 1024;
        int32_t *p = realloc(*e->ids, c * sizeof *p);
        if (!p) mt_die("out of memory while tokenizing");
        *e->ids = p;
        *e->cap_ids = c;
    }
    (*e->ids)[(*e->n)++] = id;
}

/* the word into greedy longest-match pieces */
static void flush(struct enc *e)
{
    if (e->len == 0) return;
    const struct mt_wordpiece *w = e->w;
    const size_t n0 = *e->n;
    if (e->nchars > MAX_WORD_CHARS) {
        push_id(e, w->unk);
    } else {
        size_t start = 0;
        while (start < e->len) {
            size_t end = e->len;
            int id = -1;
            while (end > start) {
                id = lookup(w, start > 0, e->word + start, end - start);
                if (id >= 0) break;
                do end--; /* back to the previous character boundary */
                while (end > start && ((unsigned char)e->word[end] & 0xC0) == 0x80);
            }
            if (id < 0) {
                *e->n = n0; /* no piece fits: the whole word is unknown */
                push_id(e, w->unk);
                break;
            }
            push_id(e, id);
            start = end;
        }
    }
    e->len = 0;
    e->nchars = 0;
}

static void append(struct enc *e, const char *s, size_t n)
{
    if (e->len + n > e->cap) {
        size_t c = e->cap ? 2 * e->cap : 256;
        while (c < e->len + n) c *= 2;
        char *p = realloc(e->word, c);
        if (!p) mt_die("out of memory while tokenizing");
        e->word = p;
        e->cap = c;
    }
    memcpy(e->word + e->len, s, n);
    e->len += n;
    e->nchars++;
}

/* a normalised character: ends the word (space), stands alone (punctuation)
 * or extends it */
static void emit(struct enc *e, uint32_t cp)
{
    char b[4];
    if (cp == ' ') {
        flush(e);
    } else if (cp < 128 ? e->w->punct_ascii[cp] : is_punct(cp)) {
        flush(e);
        append(e, b, mt_json_utf8(b, cp));
        flush(e);
    } else {
        append(e, b, mt_json_utf8(b, cp));
    }
}

static void emit_utf8(struct enc *e, const char *s)
{
    const size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t used;
        emit(e, utf8_next((const unsigned char *)s + i, n - i, &used));
        i += used;
    }
}

/* one character of the input, normalised */
static void normalise(struct enc *e, uint32_t cp)
{
    const struct mt_wordpiece *w = e->w;
    switch (range_kind(w->ranges, w->nranges, cp)) {
    case MT_WP_REMOVE: return;
    case MT_WP_SPACE: flush(e); return;
    case MT_WP_CJK:
        flush(e);
        emit(e, cp);
        flush(e);
        return;
    default: break;
    }
    if (w->hangul && cp >= 0xAC00 && cp <= 0xD7A3) {
        /* NFD of a syllable: leading consonant, vowel, trailing consonant */
        const uint32_t s = cp - 0xAC00, t = s % 28;
        emit(e, 0x1100 + s / 588);
        emit(e, 0x1161 + (s % 588) / 28);
        if (t) emit(e, 0x11A7 + t);
        return;
    }
    const char *m = w->nmaps ? map_of(w, cp) : NULL;
    if (m) emit_utf8(e, m);
    else emit(e, cp);
}

static void encode_segment(struct enc *e, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            const int c = e->w->ascii[s[i++]];
            if (c >= 0) emit(e, (uint32_t)c);
            continue;
        }
        size_t used;
        uint32_t cp = utf8_next(s + i, n - i, &used);
        i += used;
        normalise(e, cp);
    }
    flush(e);
}

/* the special token starting at s (n bytes left), or -1 */
static int special_at(const struct mt_wordpiece *w, const char *s, size_t n, size_t *len)
{
    for (int k = 0; k < NSPECIAL; k++) {
        const size_t l = strlen(SPECIALS[k]);
        if (w->special[k] >= 0 && l <= n && memcmp(s, SPECIALS[k], l) == 0) {
            *len = l;
            return w->special[k];
        }
    }
    return -1;
}

void mt_wordpiece_encode(const struct mt_wordpiece *w, const char *text, size_t len,
                         int32_t **ids, size_t *n, size_t *cap)
{
    struct enc e = {w, NULL, 0, 0, 0, ids, n, cap};
    size_t pos = 0, i = 0;
    while (i < len) {
        const char *b = memchr(text + i, '[', len - i);
        if (!b) break;
        i = (size_t)(b - text);
        size_t l;
        int id = special_at(w, b, len - i, &l);
        if (id < 0) {
            i++;
            continue;
        }
        encode_segment(&e, (const unsigned char *)text + pos, i - pos);
        push_id(&e, id);
        pos = i = i + l;
    }
    encode_segment(&e, (const unsigned char *)text + pos, len - pos);
    free(e.word);
}

size_t mt_wordpiece_decode_token(const struct mt_wordpiece *w, int32_t id, char *buf)
{
    if (id < 0 || id >= w->n) return 0;
    const char *t = w->tok[id];
    size_t l = strlen(t);
    if (l > 2 && t[0] == '#' && t[1] == '#') {
        memcpy(buf, t + 2, l - 2);
        return l - 2;
    }
    buf[0] = ' ';
    memcpy(buf + 1, t, l);
    return l + 1;
}

/* ---- loading ----------------------------------------------------------------------- */

static void tables_for(struct mt_wordpiece *w)
{
    w->ranges = w->lower ? mt_wp_uncased_ranges : mt_wp_cased_ranges;
    w->nranges = w->lower ? mt_wp_uncased_nranges : mt_wp_cased_nranges;
    w->maps = w->lower ? mt_wp_uncased_maps : mt_wp_cased_maps;
    w->nmaps = w->lower ? mt_wp_uncased_nmaps : mt_wp_cased_nmaps;
    w->hangul = w->lower ? mt_wp_uncased_hangul : mt_wp_cased_hangul;
    for (uint32_t c = 0; c < 128; c++) {
        const int k = range_kind(w->ranges, w->nranges, c);
        const char *m = w->nmaps ? map_of(w, c) : NULL;
        w->ascii[c] = (signed char)(k == MT_WP_REMOVE ? -1 : k == MT_WP_SPACE ? ' '
                                    : m ? m[0] : (int)c);
        w->punct_ascii[c] = (unsigned char)is_punct(c);
    }
}

struct mt_wordpiece *mt_wordpiece_load(const char *vocab_file, int lower)
{
    size_t len;
    char *pool = mt_read_file(vocab_file, &len, "WordPiece vocabulary (--vocab-file)");
    struct mt_wordpiece *w = calloc(1, sizeof *w);
    if (!w) mt_die("out of memory");
    w->lower = lower;
    w->pool = pool;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += pool[i] == '\n';
    const char *extra[] = {"[BOS]", "[EOS]"}; /* Megatron adds both when absent */
    w->tok = malloc((lines + 3) * sizeof *w->tok);
    if (!w->tok) mt_die("out of memory");
    for (size_t i = 0, line = 1; i < len; line++) {
        char *s = pool + i, *nl = memchr(s, '\n', len - i);
        size_t l = nl ? (size_t)(nl - s) : len - i;
        i += l + 1;
        if (nl) *nl = '\0'; /* the last line ends at the file's terminating NUL */
        while (l > 0 && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t')) s[--l] = '\0';
        if (!nl && l == 0) break;
        if (l + 2 > MT_TOKEN_MAX_BYTES)
            mt_user_error("a WordPiece vocabulary holds one short token per line",
                          "%s:%zu: a token of %zu bytes (at most %d)", vocab_file, line, l,
                          MT_TOKEN_MAX_BYTES - 2);
        w->tok[w->n++] = s;
        if (!nl) break;
    }
    uint32_t cap = 1;
    while (cap < 4u * (uint32_t)(w->n + 2)) cap <<= 1;
    w->mask = cap - 1;
    w->slot = malloc(cap * sizeof *w->slot);
    if (!w->slot) mt_die("out of memory");
    memset(w->slot, 0xff, cap * sizeof *w->slot);
    for (int id = 0; id < w->n; id++) insert(w, id);
    w->nfile = w->n;
    for (int k = 0; k < 2; k++)
        if (mt_wordpiece_id(w, extra[k]) < 0) {
            w->tok[w->n] = (char *)extra[k];
            insert(w, w->n++);
        }
    w->unk = mt_wordpiece_id(w, "[UNK]");
    if (w->unk < 0)
        mt_user_error("give BERT's vocab.txt (data/bert-vocab/vocab.txt is the uncased one)",
                      "%s: no [UNK] token: not a WordPiece vocabulary", vocab_file);
    for (int k = 0; k < NSPECIAL; k++) w->special[k] = mt_wordpiece_id(w, SPECIALS[k]);
    tables_for(w);
    return w;
}

void mt_wordpiece_free(struct mt_wordpiece *w)
{
    if (!w) return;
    free(w->tok);
    free(w->slot);
    free(w->pool);
    free(w);
}

/* ---- as a tokenizer ---------------------------------------------------------------- */

static void tok_encode(const struct mt_tokenizer *t, const char *text, size_t len, int32_t **ids,
                       size_t *n, size_t *cap)
{
    mt_wordpiece_encode(t->impl, text, len, ids, n, cap);
}

static size_t tok_decode(const struct mt_tokenizer *t, int32_t id, char *buf)
{
    return mt_wordpiece_decode_token(t->impl, id, buf);
}

static void tok_free(struct mt_tokenizer *t) { mt_wordpiece_free(t->impl); }

void mt_wordpiece_tokenizer_open(struct mt_tokenizer *t, const char *type, const char *vocab_file)
{
    const int lower = strcmp(type, "BertWordPieceLowerCase") == 0;
    struct mt_wordpiece *w = mt_wordpiece_load(vocab_file, lower);
    t->type = lower ? "BertWordPieceLowerCase" : "BertWordPieceCase";
    t->vocab_size = w->n;
    t->appended = w->n - w->nfile;
    t->eod = -1; /* Megatron's BERT tokenizer has no end of document */
    t->cls = mt_wordpiece_id(w, "[CLS]");
    t->sep = mt_wordpiece_id(w, "[SEP]");
    t->pad = mt_wordpiece_id(w, "[PAD]");
    t->mask = mt_wordpiece_id(w, "[MASK]");
    t->impl = w;
    t->encode = tok_encode;
    t->decode_token = tok_decode;
    t->free = tok_free;
}
