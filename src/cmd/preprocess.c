/* preprocess.c: `megatron-c preprocess`, Megatron's tools/preprocess_data.py:
 * tokenizes a corpus into PREFIX_<key>_document.bin / .idx (see
 * data/indexed.h), byte for byte what preprocess_data.py writes for the
 * same tokenizer and flags. With --split-sentences (BERT) every sentence is
 * a sequence of its document and the output is PREFIX_<key>_sentence; the
 * sentences come from data/sentences.c's rules where Megatron uses NLTK's
 * punkt, so those files can differ from Megatron's where the splitters do.
 *
 * Input:
 *  - JSON lines ("loose JSON", one object per line, as Megatron): for each
 *    --json-keys key, the string under it is one document (a list of strings
 *    gives one sequence per non-empty string, as Megatron). Blank lines are
 *    skipped. Any malformed line, missing key or non-string value is an error
 *    naming the file and the line.
 *  - plain text: the whole file is one document (key "text"); with
 *    --split-sentences a document per paragraph (text between blank lines).
 *  --input-format auto (default) takes JSON when the first non-blank line
 *  starts with '{'.
 * --append-eod adds the tokenizer's end-of-document id to every non-empty
 * document (Megatron skips empty ones). The dtype is uint16 when the
 * vocabulary has fewer than 65500 ids, else int32 (DType.optimal_dtype).
 *
 * Streaming, in bounded memory: JSON is read in batches of lines, plain text
 * in chunks cut only where GPT-2's pre-tokenizer is known to cut (after a
 * newline between two printable ASCII characters), so the tokens equal those
 * of the whole text. With --workers N, N threads tokenize batches and the
 * main thread writes them in input order: the output does not depend on N.
 * Output goes to temporary names and is renamed at the end: a failed run
 * leaves nothing under the final names. */
#include "core/args.h"
#include "core/error.h"
#include "core/io.h"
#include "core/json.h"
#include "data/indexed.h"
#include "data/sentences.h"
#include "data/tokenizer.h"
#include "cmd/commands.h"
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct preprocess_args {
    const char *input, *output_prefix, *tokenizer_type, *vocab_file, *merge_file;
    int vocab_size;
    const char *input_format, *dataset_impl;
    struct mt_words json_keys;
    int append_eod, workers, log_interval, split_sentences, partitions;
};

#define F(field) offsetof(struct preprocess_args, field)
static const struct mt_arg_spec SPECS[] = {
    {"input", MT_ARG_STRING, F(input), "FILE", "the corpus: JSON lines, or plain text (required)"},
    {"output-prefix", MT_ARG_STRING, F(output_prefix), "PREFIX",
     "writes PREFIX_<key>_document.bin/.idx (required)"},
    {"json-keys", MT_ARG_WORDS, F(json_keys), "KEY...", "keys of the JSON objects to tokenize (text)"},
    {"input-format", MT_ARG_STRING, F(input_format), "FMT",
     "json | text | auto: JSON if the first non-blank line starts with '{' (auto)"},
    {"append-eod", MT_ARG_BOOL, F(append_eod), NULL,
     "end every non-empty document with the end-of-document token"},
    {"workers", MT_ARG_INT, F(workers), "N", "tokenizing threads; the output does not depend on N (1)"},
    {"tokenizer-type", MT_ARG_STRING, F(tokenizer_type), "NAME",
     MT_TOKENIZER_TYPES_HELP " (GPT2BPETokenizer)"},
    MT_SPECS_BPE_FILES,
    MT_SPECS_VOCAB_SIZE,
    {"log-interval", MT_ARG_INT, F(log_interval), "N",
     "when standard error is not a terminal: a progress line every N documents (off)"},
    {"split-sentences", MT_ARG_BOOL, F(split_sentences), NULL,
     "one sequence per sentence (BERT): writes PREFIX_<key>_sentence.bin/.idx"},
    {"partitions", MT_ARG_INT, F(partitions), "N",
     "accepted for compatibility; not needed: the input is streamed (1)"},
    {"dataset-impl", MT_ARG_STRING, F(dataset_impl), "IMPL",
     "accepted for compatibility: only mmap, the format written (mmap)"},
};
#undef F
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

#define TEXT_CHUNK (256u << 10) /* plain text: tokenized in pieces of about this size */
#define JSON_BATCH (256u << 10) /* JSON: lines per batch, about this many bytes */
#define MAX_DEPTH 1000          /* JSON nesting (Python's json stops near there too) */

/* marks in a batch's output: n >= 0 appends n tokens to the open sequence */
#define MARK_END_SEQ (-1)
#define MARK_END_DOC (-2)

struct keyout {
    int32_t *tok;
    size_t ntok, captok;
    int64_t *mark;
    size_t nmark, capmark;
};

enum { SLOT_FREE, SLOT_READY, SLOT_BUSY, SLOT_DONE };

struct batch {
    int state;
    char *in;
    size_t len, cap;
    long first_line; /* JSON: line number of the first line */
    long nlines;
    struct keyout *out; /* [nkeys] */
    uint64_t docs;      /* JSON: documents (non-blank lines) */
    int failed;
    char err[1024];
    /* scratch for decoded strings of each key */
    char **sbuf;
    size_t *slen, *scap;
    size_t **soff; /* list values: offsets of the strings (nstr + 1 entries) */
    size_t *nstr, *capstr;
    int *kind;     /* 0: absent, 1: string, 2: list */
    struct mt_span *spans; /* --split-sentences */
    size_t capspans;
};

struct ctx {
    const struct preprocess_args *a;
    const char *input;
    const struct mt_tokenizer *tok;
    int json;
    int nkeys;
    char **keys;
    /* the pipeline */
    struct batch *slots;
    int nslots;
    long next_proc;
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* ---- temporary output removed on any exit ------------------------------------------ */

static struct mt_indexed_writer **g_writers;
static int g_nwriters;

static void abort_writers(void)
{
    for (int k = 0; k < g_nwriters; k++)
        if (g_writers[k]) mt_indexed_writer_abort(g_writers[k]);
    g_nwriters = 0;
}

/* ---- growing buffers ------------------------------------------------------------------ */

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = realloc(p, c * elem);
    if (!q) mt_die("out of memory (%zu bytes)", c * elem);
    *cap = c;
    return q;
}

static void push_mark(struct keyout *o, int64_t m)
{
    o->mark = grow(o->mark, &o->capmark, o->nmark + 1, sizeof *o->mark);
    o->mark[o->nmark++] = m;
}

/* ---- JSON ------------------------------------------------------------------------------ */

/* preprocess's wording of the JSON errors where it differs from core/json.h's */
static const char *const JSON_MSGS[MT_JSON_NCODES] = {
    [MT_JSON_E_ESCAPE_END] = "unterminated string",
    [MT_JSON_E_CONTROL] = "raw control character in a string (write it as an escape)",
    [MT_JSON_E_ESCAPE] = "bad escape (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
    [MT_JSON_E_U_HEX] = "bad \\u escape (expected 4 hex digits)",
    [MT_JSON_E_VALUE_END] = "expected a JSON value, found the end of the line",
    [MT_JSON_E_VALUE] = "expected a JSON value",
    [MT_JSON_E_NUMBER] = "bad number",
    [MT_JSON_E_OBJECT_EOF] = "expected ',' or '}'",
    [MT_JSON_E_ARRAY_EOF] = "expected ',' or ']'",
    [MT_JSON_E_DEPTH] = "nested too deeply",
};

static int value_start(unsigned char c)
{
    return c == '{' || c == '[' || c == '"' || c == 't' || c == 'f' || c == 'n' || c == 'N' ||
           c == 'I' || c == '-' || (c >= '0' && c <= '9');
}

static const char *jtype(unsigned char c)
{
    switch (c) {
    case '{': return "an object";
    case '[': return "a list";
    case '"': return "a string";
    case 't':
    case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
    }
}

/* UTF-8 validity (Python reads the file as UTF-8 and fails on anything else) */
static size_t bad_utf8_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) k = 1, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef) k = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4) k = 3, cp = c & 0x07, min = 0x10000;
        else return i;
        if (i + k >= n) return i;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += k + 1;
    }
    return (size_t)-1;
}

MT_PRINTF(3, 4) static void batch_fail(struct batch *b, long line, const char *fmt, ...)
{
    if (b->failed) return;
    b->failed = 1;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(b->err, sizeof b->err, "line %ld: %s", line, msg);
}

/* The end of the paragraph that starts at s[p]: after the next blank line
 * (a newline, spaces or tabs, a newline), or the end of the text. */
static size_t paragraph_end(const char *s, size_t n, size_t p)
{
    for (size_t i = p; i < n; i++) {
        if (s[i] != '\n') continue;
        size_t j = i + 1;
        while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r')) j++;
        if (j < n && s[j] == '\n') return j + 1;
    }
    return n;
}

/* Appends the tokens of s[0..n) to o as one sequence, or with
 * --split-sentences one per sentence; `more`: the document has a sequence
 * already (it is ended first); `close`: end every sequence (else the last
 * stays open). Returns the tokens added. */
static size_t encode_sequences(const struct ctx *c, struct batch *b, struct keyout *o,
                               const char *s, size_t n, int more, int close)
{
    const struct mt_tokenizer *t = c->tok;
    size_t nspan = 1, added = 0;
    struct mt_span whole = {0, n}, *spans = &whole;
    if (c->a->split_sentences) {
        nspan = mt_split_sentences(s, n, &b->spans, &b->capspans);
        spans = b->spans;
    }
    for (size_t i = 0; i < nspan; i++) {
        const size_t before = o->ntok;
        t->encode(t, s + spans[i].begin, spans[i].end - spans[i].begin, &o->tok, &o->ntok, &o->captok);
        const size_t got = o->ntok - before;
        if (got == 0) continue;
        if (!close && (more || added > 0)) push_mark(o, MARK_END_SEQ);
        push_mark(o, (int64_t)got);
        if (close) push_mark(o, MARK_END_SEQ);
        added += got;
    }
    return added;
}

/* One JSON line: captures the values of the keys, then tokenizes them. */
static int json_line(const struct ctx *c, struct batch *b, const char *line, size_t len,
                     long lineno)
{
    size_t bad = bad_utf8_at((const unsigned char *)line, len);
    if (bad != (size_t)-1) {
        batch_fail(b, lineno, "byte %zu is not valid UTF-8 (Megatron reads the input as UTF-8)",
                   bad + 1);
        return -1;
    }
    struct mt_json p;
    mt_json_init(&p, line, len);
    p.msgs = JSON_MSGS;
    p.flags = MT_JSON_NAN_INFINITY;
    p.max_depth = MAX_DEPTH;
    for (int k = 0; k < c->nkeys; k++) {
        b->kind[k] = 0;
        b->slen[k] = 0;
        b->nstr[k] = 0;
    }
    mt_json_ws(&p);
    if (p.i >= p.n || p.s[p.i] != '{') {
        if (p.i < p.n && !value_start(p.s[p.i]))
            batch_fail(b, lineno, "expected a JSON object ('{'), found '%c' (at byte %zu)",
                       p.s[p.i], p.i + 1);
        else
            batch_fail(b, lineno, "expected a JSON object ('{'), found %s",
                       p.i < p.n ? jtype(p.s[p.i]) : "nothing");
        return -1;
    }
    p.i++;
    mt_json_ws(&p);
    if (p.i < p.n && p.s[p.i] == '}') p.i++;
    else
        for (;;) {
            char *key = NULL;
            size_t klen = 0, kcap = 0;
            if (mt_json_key(&p, &key, &klen, &kcap) != 0) {
                free(key);
                if (p.code == MT_JSON_E_STRING) p.err = "expected a key";
                break;
            }
            int which = -1;
            for (int k = 0; k < c->nkeys; k++)
                if (strlen(c->keys[k]) == klen && memcmp(c->keys[k], key, klen) == 0) which = k;
            free(key);
            if (which >= 0 && p.i < p.n && p.s[p.i] == '"') {
                b->kind[which] = 1; /* a repeated key: the last one wins, as in Python */
                b->slen[which] = 0;
                if (mt_json_string(&p, &b->sbuf[which], &b->slen[which], &b->scap[which]) != 0) break;
            } else if (which >= 0 && p.i < p.n && p.s[p.i] == '[') {
                b->kind[which] = 2;
                b->slen[which] = 0;
                b->nstr[which] = 0;
                p.i++;
                mt_json_ws(&p);
                int ok = 1;
                b->soff[which] = grow(b->soff[which], &b->capstr[which], 1, sizeof(size_t));
                b->soff[which][0] = 0;
                if (p.i < p.n && p.s[p.i] == ']') p.i++;
                else
                    for (;;) {
                        mt_json_ws(&p);
                        if (p.i >= p.n || p.s[p.i] != '"') {
                            if (p.i < p.n && value_start(p.s[p.i])) {
                                batch_fail(b, lineno,
                                           "element %zu of \"%s\" is %s, not a string",
                                           b->nstr[which] + 1, c->keys[which], jtype(p.s[p.i]));
                                return -1;
                            }
                            mt_json_fail(&p, MT_JSON_E_STRING);
                            ok = 0;
                            break;
                        }
                        if (mt_json_string(&p, &b->sbuf[which], &b->slen[which], &b->scap[which]) !=
                            0) {
                            ok = 0;
                            break;
                        }
                        size_t ns = ++b->nstr[which];
                        b->soff[which] =
                            grow(b->soff[which], &b->capstr[which], ns + 1, sizeof(size_t));
                        b->soff[which][ns] = b->slen[which];
                        int r = mt_json_next(&p, ']');
                        if (r > 0) continue;
                        if (r == 0) break;
                        mt_json_fail(&p, MT_JSON_E_ARRAY_SEP);
                        ok = 0;
                        break;
                    }
                if (!ok) break;
            } else if (which >= 0) {
                if (p.i >= p.n || !value_start(p.s[p.i])) {
                    mt_json_fail(&p, MT_JSON_E_VALUE);
                    break;
                }
                batch_fail(b, lineno, "the value of \"%s\" is %s, not a string",
                           c->keys[which], jtype(p.s[p.i]));
                return -1;
            } else if (mt_json_skip(&p, 1) != 0) {
                break;
            }
            int r = mt_json_next(&p, '}');
            if (r > 0) continue;
            if (r == 0) break;
            mt_json_fail_msg(&p, "expected ',' or '}' after a member");
            break;
        }
    if (!p.err) {
        mt_json_ws(&p);
        if (p.i < p.n) mt_json_fail_msg(&p, "extra data after the object (one object per line)");
    }
    if (p.code == MT_JSON_E_SURROGATE) {
        batch_fail(b, lineno,
                   "lone surrogate \\u%04X: not a character (Megatron's tokenizer cannot encode "
                   "it) (at byte %zu)",
                   (unsigned)p.err_cp, p.err_at + 1);
        return -1;
    }
    if (p.err) {
        batch_fail(b, lineno, "%s (at byte %zu)", p.err, p.err_at + 1);
        return -1;
    }
    for (int k = 0; k < c->nkeys; k++) {
        if (!b->kind[k]) {
            batch_fail(b, lineno, "no key \"%s\" in the object", c->keys[k]);
            return -1;
        }
    }
    /* tokenize: one sequence per non-empty string, EOD on the last one */
    const struct mt_tokenizer *t = c->tok;
    for (int k = 0; k < c->nkeys; k++) {
        struct keyout *o = &b->out[k];
        size_t nstr = b->kind[k] == 1 ? 1 : b->nstr[k];
        size_t doc_tokens = 0;
        for (size_t s = 0; s < nstr; s++) {
            size_t a = b->kind[k] == 1 ? 0 : b->soff[k][s];
            size_t e = b->kind[k] == 1 ? b->slen[k] : b->soff[k][s + 1];
            if (e == a) continue;
            doc_tokens += encode_sequences(c, b, o, b->sbuf[k] + a, e - a, doc_tokens > 0, 0);
        }
        if (doc_tokens > 0) {
            if (c->a->append_eod) {
                o->tok = grow(o->tok, &o->captok, o->ntok + 1, sizeof *o->tok);
                o->tok[o->ntok++] = t->eod;
                push_mark(o, 1);
            }
            push_mark(o, MARK_END_SEQ);
        }
        push_mark(o, MARK_END_DOC);
    }
    b->docs++;
    return 0;
}

static void process(const struct ctx *c, struct batch *b)
{
    for (int k = 0; k < c->nkeys; k++) {
        b->out[k].ntok = 0;
        b->out[k].nmark = 0;
    }
    b->docs = 0;
    b->failed = 0;
    b->err[0] = 0;
    if (!c->json) {
        /* one document over all chunks: its one sequence continues (the
         * caller ends it after the last chunk); with --split-sentences a
         * document per paragraph (text between blank lines), its sentences
         * each a sequence (chunks are cut at blank lines) */
        struct keyout *o = &b->out[0];
        if (!c->a->split_sentences) {
            c->tok->encode(c->tok, b->in, b->len, &o->tok, &o->ntok, &o->captok);
            if (o->ntok) push_mark(o, (int64_t)o->ntok);
            return;
        }
        for (size_t p = 0; p < b->len;) {
            const size_t e = paragraph_end(b->in, b->len, p);
            if (encode_sequences(c, b, o, b->in + p, e - p, 0, 1) > 0) {
                push_mark(o, MARK_END_DOC);
                b->docs++;
            }
            p = e;
        }
        return;
    }
    size_t i = 0;
    long lineno = b->first_line;
    while (i < b->len) {
        const char *nl = memchr(b->in + i, '\n', b->len - i);
        size_t e = nl ? (size_t)(nl - b->in) : b->len;
        size_t a = i;
        /* blank lines are skipped (Python's json.loads would fail on them) */
        size_t q = a;
        while (q < e && (b->in[q] == ' ' || b->in[q] == '\t' || b->in[q] == '\r')) q++;
        if (q < e && json_line(c, b, b->in + a, e - a, lineno) != 0) return;
        i = e + 1;
        lineno++;
    }
}

/* ---- reading the input ------------------------------------------------------------ */

struct reader {
    FILE *f;
    const char *path;
    char *line;      /* getline buffer */
    size_t linecap;
    char *pend;      /* bytes read but not yet handed out */
    size_t npend, cappend;
    int eof;
    long lineno;     /* lines handed out so far */
};

static ssize_t read_line(struct reader *r)
{
    errno = 0;
    ssize_t n = getline(&r->line, &r->linecap, r->f);
    if (n < 0) {
        if (ferror(r->f))
            mt_user_error(NULL, "error reading %s: %s", r->path, strerror(errno));
        r->eof = 1;
    }
    return n;
}

static void append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    *buf = grow(*buf, cap, *len + n + 1, 1);
    if (n) memcpy(*buf + *len, p, n);
    *len += n;
}

/* JSON: whole lines, at least one, until about JSON_BATCH bytes */
static int fill_json(struct reader *r, struct batch *b)
{
    b->len = 0;
    b->first_line = r->lineno + 1;
    b->nlines = 0;
    if (r->npend) { /* lines read while detecting the format */
        append(&b->in, &b->len, &b->cap, r->pend, r->npend);
        for (size_t k = 0; k < r->npend; k++) b->nlines += r->pend[k] == '\n';
        if (r->npend && r->pend[r->npend - 1] != '\n') b->nlines++;
        r->npend = 0;
    }
    while (!r->eof && b->len < JSON_BATCH) {
        ssize_t n = read_line(r);
        if (n < 0) break;
        append(&b->in, &b->len, &b->cap, r->line, (size_t)n);
        b->nlines++;
    }
    r->lineno += b->nlines;
    return b->len > 0;
}

static int printable(unsigned char c) { return c > 0x20 && c < 0x7f; }

/* plain text: a chunk of about TEXT_CHUNK bytes ending after a "safe" newline
 * (between two printable ASCII characters: GPT-2's pre-tokenizer cuts there
 * whatever follows, so the chunks tokenize as the whole text would); the
 * rest of the file at the end (possibly empty: an empty file is one empty
 * document). */
static int fill_text(struct reader *r, struct batch *b, int *last, int sentences)
{
    for (;;) {
        size_t cut = 0;
        if (r->eof) {
            cut = r->npend;
            *last = 1;
        } else if (r->npend >= TEXT_CHUNK) {
            /* sentences: after a blank line, where a sentence always ends */
            for (size_t p = r->npend - 1; p >= 2 && !cut; p--)
                if (r->pend[p - 1] == '\n' &&
                    (sentences ? r->pend[p - 2] == '\n'
                               : printable((unsigned char)r->pend[p - 2]) && printable((unsigned char)r->pend[p])))
                    cut = p;
        }
        if (cut || r->eof) {
            b->len = 0;
            append(&b->in, &b->len, &b->cap, r->pend, cut);
            if (r->npend > cut) memmove(r->pend, r->pend + cut, r->npend - cut);
            r->npend -= cut;
            return 1;
        }
        /* read more (no safe cut yet: the chunk grows) */
        r->pend = grow(r->pend, &r->cappend, r->npend + TEXT_CHUNK + 1, 1);
        size_t got = fread(r->pend + r->npend, 1, TEXT_CHUNK, r->f);
        r->npend += got;
        if (got < TEXT_CHUNK) {
            if (ferror(r->f)) mt_user_error(NULL, "error reading %s: %s", r->path, strerror(errno));
            r->eof = 1;
        }
    }
}

/* auto: JSON when the first non-blank line starts with '{'. Lines read on the
 * way stay pending. */
static int detect_json(struct reader *r)
{
    for (;;) {
        ssize_t n = read_line(r);
        if (n < 0) return 0;
        size_t start = r->npend;
        append(&r->pend, &r->npend, &r->cappend, r->line, (size_t)n);
        const char *s = r->pend + start;
        size_t i = 0;
        if (start == 0 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) i = 3;
        while (i < (size_t)n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
            i++;
        if (i < (size_t)n) return s[i] == '{';
    }
}

/* ---- the pipeline ------------------------------------------------------------------ */

static void *worker(void *arg)
{
    struct ctx *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        struct batch *b = &c->slots[c->next_proc % c->nslots];
        while (!c->stop && b->state != SLOT_READY) {
            pthread_cond_wait(&c->cv, &c->mu);
            b = &c->slots[c->next_proc % c->nslots];
        }
        if (c->stop) break;
        b->state = SLOT_BUSY;
        c->next_proc++;
        pthread_mutex_unlock(&c->mu);
        process(c, b);
        pthread_mutex_lock(&c->mu);
        b->state = SLOT_DONE;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

struct progress {
    int tty;
    int interval;
    double t0, last;
    uint64_t docs, bytes, next_log;
};

static void show_progress(struct progress *pg, int final)
{
    double now = mt_now(), dt = now - pg->t0;
    double mbs = dt > 0 ? (double)pg->bytes / dt / 1048576.0 : 0;
    if (pg->tty) {
        if (!final && now - pg->last < 0.2) return;
        pg->last = now;
        fprintf(stderr, "\r%llu documents, %.1f MB, %.1f MB/s   %s",
                (unsigned long long)pg->docs, (double)pg->bytes / 1048576.0, mbs,
                final ? "\n" : "");
        fflush(stderr);
    } else if (pg->interval > 0 && !final) {
        while (pg->docs >= pg->next_log) {
            fprintf(stderr, "Processed %llu documents (%.1f docs/s, %.2f MB/s).\n",
                    (unsigned long long)pg->next_log, dt > 0 ? (double)pg->docs / dt : 0, mbs);
            pg->next_log += (uint64_t)pg->interval;
        }
    }
}

static void die_write(const char *err)
{
    abort_writers();
    mt_user_error("check the output directory: free space and permissions", "%s", err);
}

static void write_batch(struct ctx *c, struct batch *b, struct progress *pg)
{
    char err[1024];
    if (b->failed) {
        abort_writers();
        mt_user_error(c->json ? "each line must be one JSON object holding the --json-keys "
                                "keys as strings (Megatron's loose JSON)"
                              : NULL,
                      "%s: %s", c->input, b->err);
    }
    for (int k = 0; k < c->nkeys; k++) {
        struct mt_indexed_writer *w = g_writers[k];
        const struct keyout *o = &b->out[k];
        size_t pos = 0;
        for (size_t m = 0; m < o->nmark; m++) {
            int rc;
            if (o->mark[m] >= 0) {
                rc = mt_indexed_writer_append(w, o->tok + pos, (size_t)o->mark[m], err,
                                              sizeof err);
                pos += (size_t)o->mark[m];
            } else if (o->mark[m] == MARK_END_SEQ) {
                rc = mt_indexed_writer_end_sequence(w, err, sizeof err);
            } else {
                rc = mt_indexed_writer_end_document(w, err, sizeof err);
            }
            if (rc != 0) die_write(err);
        }
    }
    pg->docs += b->docs;
    pg->bytes += b->len;
    show_progress(pg, 0);
}

int mt_cmd_preprocess(int argc, char **argv)
{
    struct preprocess_args a = {.tokenizer_type = "GPT2BPETokenizer",
                                .input_format = "auto",
                                .workers = 1,
                                .partitions = 1};
    unsigned char given[NSPECS] = {0};
    mt_args_parse(SPECS, NSPECS, &a, given, argc, argv, 2, "preprocess",
                  "Tokenizes a corpus into Megatron's indexed dataset format\n"
                  "(PREFIX_<key>_document.bin/.idx, for --data-path PREFIX_text_document),\n"
                  "as Megatron's tools/preprocess_data.py does for GPT. The input is JSON lines\n"
                  "(one object per line; --json-keys picks the fields) or plain text (the\n"
                  "whole file is one document; with --split-sentences, one per paragraph).");
    const char *hint = "see 'megatron-c preprocess --help'";
    {   /* the tokenizer the vocabulary files describe, or a mismatch */
        const int typed = given[mt_args_find(SPECS, NSPECS, "tokenizer-type")];
        const char *inferred = mt_tokenizer_infer(typed ? a.tokenizer_type : NULL, a.vocab_file, a.merge_file);
        if (!typed && inferred) a.tokenizer_type = inferred;
    }
    if (!a.input) mt_user_error("write --input FILE (JSON lines or plain text)", "--input is required");
    if (!a.output_prefix)
        mt_user_error("write --output-prefix PREFIX: the output is PREFIX_text_document.bin/.idx",
                      "--output-prefix is required");
    if (a.dataset_impl && strcmp(a.dataset_impl, "mmap") != 0)
        mt_user_error("the mmap format (MMIDIDX) is the only one Megatron-Core reads",
                      "--dataset-impl '%s' is not supported (only mmap)", a.dataset_impl);
    if (a.workers < 1 || a.workers > 256)
        mt_user_error(hint, "--workers %d: must be between 1 and 256", a.workers);
    if (a.partitions < 1) mt_user_error(hint, "--partitions %d: must be at least 1", a.partitions);
    if (a.log_interval < 0) mt_user_error(hint, "--log-interval %d: must be >= 0", a.log_interval);
    int fmt_json;
    if (strcmp(a.input_format, "json") == 0) fmt_json = 1;
    else if (strcmp(a.input_format, "text") == 0) fmt_json = 0;
    else if (strcmp(a.input_format, "auto") == 0) fmt_json = -1;
    else mt_user_error("use json, text or auto", "unknown --input-format '%s'", a.input_format);

    struct ctx c;
    memset(&c, 0, sizeof c);
    c.a = &a;
    c.input = a.input;
    if (mt_is_dir(a.input)) mt_user_error("give a file", "--input %s is a directory", a.input);
    FILE *f = fopen(a.input, "rb");
    if (!f) mt_user_error("check the path given to --input", "cannot open %s: %s", a.input,
                          strerror(errno));
    struct reader r;
    memset(&r, 0, sizeof r);
    r.f = f;
    r.path = a.input;
    c.json = fmt_json >= 0 ? fmt_json : detect_json(&r);
    if (c.json && r.npend >= 3 && memcmp(r.pend, "\xef\xbb\xbf", 3) == 0) {
        /* a UTF-8 byte order mark is not part of the first object */
        memmove(r.pend, r.pend + 3, r.npend - 3);
        r.npend -= 3;
    }
    static char *default_key[] = {"text"};
    if (c.json) {
        c.nkeys = given[mt_args_find(SPECS, NSPECS, "json-keys")] ? a.json_keys.n : 1;
        c.keys = given[mt_args_find(SPECS, NSPECS, "json-keys")] ? a.json_keys.v : default_key;
        for (int k = 0; k < c.nkeys; k++)
            for (int j = 0; j < k; j++)
                if (strcmp(c.keys[k], c.keys[j]) == 0)
                    mt_user_error(hint, "--json-keys: '%s' is given twice", c.keys[k]);
    } else {
        if (given[mt_args_find(SPECS, NSPECS, "json-keys")])
            mt_user_error("--json-keys applies to JSON lines; use --input-format json if the "
                          "input is JSON",
                          "%s is plain text, not JSON lines: --json-keys does not apply", a.input);
        c.nkeys = 1;
        c.keys = default_key;
    }

    struct mt_tokenizer tok;
    mt_tokenizer_open(&tok, a.tokenizer_type, a.vocab_file, a.merge_file, a.vocab_size);
    c.tok = &tok;
    if (a.append_eod && tok.eod < 0)
        mt_user_error("drop --append-eod, or use a tokenizer with an end-of-document token "
                      "(GPT2BPETokenizer)",
                      "--append-eod: the %s tokenizer has no end-of-document token", tok.type);
    int dtype = mt_indexed_optimal_dtype(tok.vocab_size);

    /* the writers: PREFIX_<key>_document */
    g_writers = calloc((size_t)c.nkeys, sizeof *g_writers);
    if (!g_writers) mt_die("out of memory");
    atexit(abort_writers);
    char **outp = calloc((size_t)c.nkeys, sizeof *outp);
    for (int k = 0; k < c.nkeys; k++) {
        size_t n = strlen(a.output_prefix) + strlen(c.keys[k]) + 16;
        outp[k] = malloc(n);
        snprintf(outp[k], n, "%s_%s_%s", a.output_prefix, c.keys[k],
                 a.split_sentences ? "sentence" : "document");
        char err[1024];
        g_writers[k] = mt_indexed_writer_open(outp[k], dtype, err, sizeof err);
        g_nwriters = k + 1;
        if (!g_writers[k])
            die_write(err);
    }

    /* the slots */
    c.nslots = a.workers > 1 ? 2 * a.workers + 2 : 1;
    c.slots = calloc((size_t)c.nslots, sizeof *c.slots);
    if (!c.slots) mt_die("out of memory");
    for (int s = 0; s < c.nslots; s++) {
        struct batch *b = &c.slots[s];
        b->out = calloc((size_t)c.nkeys, sizeof *b->out);
        b->sbuf = calloc((size_t)c.nkeys, sizeof *b->sbuf);
        b->slen = calloc((size_t)c.nkeys, sizeof *b->slen);
        b->scap = calloc((size_t)c.nkeys, sizeof *b->scap);
        b->soff = calloc((size_t)c.nkeys, sizeof *b->soff);
        b->nstr = calloc((size_t)c.nkeys, sizeof *b->nstr);
        b->capstr = calloc((size_t)c.nkeys, sizeof *b->capstr);
        b->kind = calloc((size_t)c.nkeys, sizeof *b->kind);
        if (!b->out || !b->sbuf || !b->slen || !b->scap || !b->soff || !b->nstr || !b->capstr ||
            !b->kind)
            mt_die("out of memory");
    }

    struct progress pg = {isatty(2), a.log_interval, mt_now(), 0, 0, 0, 0};
    pg.next_log = a.log_interval > 0 ? (uint64_t)a.log_interval : 0;
    int last = 0; /* text: the chunk that ends the file was read */
    uint64_t text_doc_tokens = 0;
    char err[1024];

    if (a.workers == 1) {
        struct batch *b = &c.slots[0];
        for (;;) {
            int got = c.json ? fill_json(&r, b) : (last ? 0 : fill_text(&r, b, &last, a.split_sentences));
            if (!got) break;
            process(&c, b);
            write_batch(&c, b, &pg);
            if (!c.json) text_doc_tokens += b->out[0].ntok;
        }
    } else {
        pthread_mutex_init(&c.mu, NULL);
        pthread_cond_init(&c.cv, NULL);
        pthread_t *th = calloc((size_t)a.workers, sizeof *th);
        for (int w = 0; w < a.workers; w++)
            if (pthread_create(&th[w], NULL, worker, &c) != 0)
                mt_die("cannot start a worker thread");
        long next_fill = 0, next_write = 0;
        int input_done = 0;
        pthread_mutex_lock(&c.mu);
        for (;;) {
            struct batch *fb = &c.slots[next_fill % c.nslots];
            struct batch *wb = &c.slots[next_write % c.nslots];
            if (!input_done && fb->state == SLOT_FREE) {
                pthread_mutex_unlock(&c.mu);
                int got = c.json ? fill_json(&r, fb) : (last ? 0 : fill_text(&r, fb, &last, a.split_sentences));
                pthread_mutex_lock(&c.mu);
                if (!got) input_done = 1;
                else {
                    fb->state = SLOT_READY;
                    next_fill++;
                    pthread_cond_broadcast(&c.cv);
                }
                continue;
            }
            if (next_write < next_fill && wb->state == SLOT_DONE) {
                pthread_mutex_unlock(&c.mu);
                write_batch(&c, wb, &pg);
                if (!c.json) text_doc_tokens += wb->out[0].ntok;
                pthread_mutex_lock(&c.mu);
                wb->state = SLOT_FREE;
                next_write++;
                continue;
            }
            if (input_done && next_write == next_fill) break;
            pthread_cond_wait(&c.cv, &c.mu);
        }
        c.stop = 1;
        pthread_cond_broadcast(&c.cv);
        pthread_mutex_unlock(&c.mu);
        for (int w = 0; w < a.workers; w++) pthread_join(th[w], NULL);
        free(th);
        pthread_mutex_destroy(&c.mu);
        pthread_cond_destroy(&c.cv);
    }
    fclose(f);

    if (!c.json && !a.split_sentences) { /* the file is one document */
        struct mt_indexed_writer *w = g_writers[0];
        int rc = 0;
        if (text_doc_tokens > 0 && a.append_eod)
            rc = mt_indexed_writer_append(w, &tok.eod, 1, err, sizeof err);
        if (rc == 0 && mt_indexed_writer_pending(w) > 0)
            rc = mt_indexed_writer_end_sequence(w, err, sizeof err);
        if (rc == 0) rc = mt_indexed_writer_end_document(w, err, sizeof err);
        if (rc != 0) die_write(err);
        pg.docs = 1;
    }
    uint64_t docs = mt_indexed_writer_documents(g_writers[0]);
    uint64_t *ntok = calloc((size_t)c.nkeys, sizeof *ntok), *nseq = calloc((size_t)c.nkeys, sizeof *nseq);
    if (!ntok || !nseq) mt_die("out of memory");
    uint64_t all_tokens = 0;
    for (int k = 0; k < c.nkeys; k++) all_tokens += mt_indexed_writer_tokens(g_writers[k]);
    if (all_tokens == 0) /* the partial outputs go with the exit (abort_writers) */
        mt_user_error(c.json ? "check the file and --json-keys: no line has text under them"
                             : "check --input: an empty file makes an empty dataset",
                      "%s holds nothing to tokenize (0 tokens); no dataset written", a.input);
    for (int k = 0; k < c.nkeys; k++) {
        ntok[k] = mt_indexed_writer_tokens(g_writers[k]);
        nseq[k] = mt_indexed_writer_sequences(g_writers[k]);
        struct mt_indexed_writer *w = g_writers[k];
        g_writers[k] = NULL; /* finalize frees it, also on failure */
        if (mt_indexed_writer_finalize(w, err, sizeof err) != 0) die_write(err);
    }
    g_nwriters = 0;
    if (pg.tty) show_progress(&pg, 1);
    double dt = mt_now() - pg.t0;
    for (int k = 0; k < c.nkeys; k++) {
        char sent[48] = "";
        if (a.split_sentences) snprintf(sent, sizeof sent, " %llu sentences,", (unsigned long long)nseq[k]);
        printf("%s_%s_%s: %llu documents,%s %llu tokens (%s), %.2f s, %.1f MB/s\n", a.output_prefix,
               c.keys[k], a.split_sentences ? "sentence" : "document", (unsigned long long)docs, sent,
               (unsigned long long)ntok[k], mt_indexed_dtype_name(dtype), dt,
               dt > 0 ? (double)pg.bytes / dt / 1048576.0 : 0.0);
    }
    if (fflush(stdout) != 0) mt_user_error(NULL, "cannot write to standard output");

    for (int s = 0; s < c.nslots; s++) {
        struct batch *b = &c.slots[s];
        free(b->in);
        for (int k = 0; k < c.nkeys; k++) {
            free(b->out[k].tok);
            free(b->out[k].mark);
            free(b->sbuf[k]);
            free(b->soff[k]);
        }
        free(b->out);
        free(b->sbuf);
        free(b->slen);
        free(b->scap);
        free(b->soff);
        free(b->nstr);
        free(b->capstr);
        free(b->kind);
        free(b->spans);
    }
    free(c.slots);
    for (int k = 0; k < c.nkeys; k++) free(outp[k]);
    free(outp);
    free(ntok);
    free(nseq);
    free(r.line);
    free(r.pend);
    free(g_writers);
    g_writers = NULL;
    mt_tokenizer_close(&tok);
    return 0;
}
