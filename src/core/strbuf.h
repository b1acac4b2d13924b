/* strbuf.h: a growable byte string, and the JSON pieces written into it
 * (string literals with every byte sequence made valid UTF-8, numbers with
 * non-finite values as null), for answers built in memory: the server's
 * responses. */
#ifndef MT_STRBUF_H
#define MT_STRBUF_H
#include <stddef.h>

struct mt_strbuf {
    char *s;      /* NUL-terminated once anything is written; NULL before */
    size_t n, cap;
};

void mt_sb_put(struct mt_strbuf *b, const char *s, size_t n);
void mt_sb_puts(struct mt_strbuf *b, const char *s);
void mt_sb_printf(struct mt_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal of s[0, n): quotes and controls escaped, and each
 * byte that does not start a valid UTF-8 sequence (a token that is half
 * of a character) written as U+FFFD, as Python's bytes.decode(errors=
 * "replace") does, so that the document always parses. */
void mt_sb_json_str(struct mt_strbuf *b, const char *s, size_t n);
/* A number with round-trip precision (%.17g), or null when non-finite. */
void mt_sb_json_num(struct mt_strbuf *b, double v);
void mt_sb_free(struct mt_strbuf *b);

/* The length of the valid UTF-8 sequence at s[0, n) (1..4), or 0 when the
 * byte there starts none (a stray continuation byte, an overlong form, a
 * surrogate, a truncated sequence). */
size_t mt_utf8_valid_len(const unsigned char *s, size_t n);

#endif /* MT_STRBUF_H */
