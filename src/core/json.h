/* json.h: the pieces of a JSON reader shared by the loose-JSON readers
 * (preprocess's input lines, the LAMBADA jsonl of eval): a cursor over a
 * buffer, whitespace, strings decoded to UTF-8, skipping any value, numbers.
 *
 * Errors: the first failure is kept (code, text, position) and every later
 * one is ignored, so a caller can report it once at the end. The texts come
 * from the caller's table (msgs, indexed by enum mt_json_code; NULL or a NULL
 * entry takes the default wording), so each tool keeps its own messages. */
#ifndef MT_JSON_H
#define MT_JSON_H
#include <stddef.h>
#include <stdint.h>

enum mt_json_code {
    MT_JSON_OK = 0,
    MT_JSON_E_STRING,       /* expected a string (no opening quote) */
    MT_JSON_E_UNTERMINATED, /* the input ends inside a string */
    MT_JSON_E_ESCAPE_END,   /* the input ends right after a backslash */
    MT_JSON_E_CONTROL,      /* a raw control character inside a string */
    MT_JSON_E_ESCAPE,       /* an unknown escape; err_at: its backslash */
    MT_JSON_E_U_TRUNCATED,  /* fewer than 4 characters after \u */
    MT_JSON_E_U_HEX,        /* a bad hex digit after \u; err_at: the first digit */
    MT_JSON_E_SURROGATE,    /* a lone surrogate (err_cp); err_at: its backslash */
    MT_JSON_E_VALUE_END,    /* expected a value, found the end */
    MT_JSON_E_VALUE,        /* expected a value, found something else */
    MT_JSON_E_NUMBER,       /* a malformed number; i: back at its start */
    MT_JSON_E_COLON,        /* expected ':' after a key */
    MT_JSON_E_OBJECT_SEP,   /* expected ',' or '}' */
    MT_JSON_E_ARRAY_SEP,    /* expected ',' or ']' */
    MT_JSON_E_OBJECT_EOF,   /* the input ends inside an object */
    MT_JSON_E_ARRAY_EOF,    /* the input ends inside an array */
    MT_JSON_E_DEPTH,        /* nested deeper than max_depth */
    MT_JSON_E_OTHER,        /* a caller's own text (mt_json_fail_msg) */
    MT_JSON_NCODES
};

/* flags: the dialect */
#define MT_JSON_NAN_INFINITY 1u  /* accept NaN, Infinity, -Infinity (as Python's json) */
#define MT_JSON_LEADING_ZEROS 2u /* accept 007 (else a number stops after a leading 0) */
#define MT_JSON_SURROGATE_FFFD 4u /* a lone surrogate decodes to U+FFFD (else an error) */

struct mt_json {
    const unsigned char *s;
    size_t n, i;                /* the buffer and the cursor */
    const char *const *msgs;    /* texts per code (see above) */
    unsigned flags;
    int max_depth;              /* mt_json_skip: nesting limit */
    int code;                   /* the first error, or MT_JSON_OK */
    const char *err;            /* its text */
    size_t err_at;              /* where it was found (i at the failure, except as noted) */
    uint32_t err_cp;            /* MT_JSON_E_SURROGATE: the surrogate */
};

/* A cursor over s[0, n) with the default texts, no flags and max_depth 64. */
void mt_json_init(struct mt_json *p, const char *s, size_t n);
/* Records an error (the first one only); returns -1. */
int mt_json_fail(struct mt_json *p, int code);
int mt_json_fail_msg(struct mt_json *p, const char *msg);
/* The default text of a code. */
const char *mt_json_message(int code);

/* Skips JSON whitespace (space, tab, CR, LF). */
void mt_json_ws(struct mt_json *p);
/* A hex digit's value, or -1. */
int mt_json_hexval(int c);
/* What the one-character escape \\c stands for (\\" \\\\ \\/ \\b \\f \\n \\r \\t), or -1
 * (for 'u' too: \\uXXXX is not a one-character escape). */
int mt_json_escape(int c);
/* After whitespace: a ',' (skipped; returns 1), `close` (skipped; 0), or
 * anything else or the end (-1, the cursor on it; nothing recorded). */
int mt_json_next(struct mt_json *p, char close);
/* Writes cp as UTF-8 into out (4 bytes of room); returns the length. */
size_t mt_json_utf8(char *out, uint32_t cp);

/* A string at p->i (the opening quote). With buf != NULL its decoded UTF-8
 * bytes are appended to *buf (*len bytes used of *cap, grown as needed and
 * kept NUL-terminated). 0, or -1 on an error. */
int mt_json_string(struct mt_json *p, char **buf, size_t *len, size_t *cap);
/* An object member's key (a string, decoded into *buf from *len = 0 as
 * mt_json_string does) and its ':', with the whitespace around them: the
 * cursor ends on the value. 0, or -1 on an error. */
int mt_json_key(struct mt_json *p, char **buf, size_t *len, size_t *cap);
/* Skips (and validates) one value after optional whitespace; depth is the
 * value's nesting level (a member of a top-level object: 1). 0 or -1. */
int mt_json_skip(struct mt_json *p, int depth);
/* A number at p->i: the JSON grammar (see the flags); 0 or -1. */
int mt_json_number(struct mt_json *p);
/* An integer at p->i ([-]digits, no fraction or exponent) into *v; -1 with
 * MT_JSON_E_NUMBER when there are no digits, it has a fraction or exponent,
 * or it does not fit in a long long. */
int mt_json_int(struct mt_json *p, long long *v);

/* The string value of top-level key `key` of the JSON object line[0, len),
 * decoded to UTF-8 (malloc'd, NUL-terminated, length in *out_len); a repeated
 * key: the last one wins (as Python's json). NULL on an error (not an object,
 * malformed, the key missing, the value not a string) with *err (static text)
 * and *err_pos (byte offset). Lone surrogates decode to U+FFFD. */
char *mt_json_get_string(const char *line, size_t len, const char *key, size_t *out_len,
                         const char **err, size_t *err_pos);

#endif
