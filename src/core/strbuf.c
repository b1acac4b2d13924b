/* strbuf.c: see strbuf.h */
#include "core/strbuf.h"
#include "core/error.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reserve(struct mt_strbuf *b, size_t more)
{
    if (b->n + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) mt_die("out of memory");
    b->s = s;
    b->cap = cap;
}

void mt_sb_put(struct mt_strbuf *b, const char *s, size_t n)
{
    reserve(b, n);
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

void mt_sb_puts(struct mt_strbuf *b, const char *s) { mt_sb_put(b, s, strlen(s)); }

void mt_sb_printf(struct mt_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) mt_die("mt_sb_printf: bad format '%s'", fmt);
    reserve(b, (size_t)k);
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

size_t mt_utf8_valid_len(const unsigned char *s, size_t n)
{
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

void mt_sb_json_str(struct mt_strbuf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    mt_sb_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            mt_sb_put(b, e, 2);
            i++;
        } else if (c < 0x20) {
            const char *short_form = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
            if (short_form) mt_sb_puts(b, short_form);
            else mt_sb_printf(b, "\\u%04x", c);
            i++;
        } else {
            size_t k = mt_utf8_valid_len(s + i, n - i);
            if (k == 0) {
                mt_sb_put(b, "\xEF\xBF\xBD", 3); /* U+FFFD */
                i++;
            } else {
                mt_sb_put(b, (const char *)s + i, k);
                i += k;
            }
        }
    }
    mt_sb_put(b, "\"", 1);
}

void mt_sb_json_num(struct mt_strbuf *b, double v)
{
    if (isfinite(v)) mt_sb_printf(b, "%.17g", v);
    else mt_sb_puts(b, "null");
}

void mt_sb_free(struct mt_strbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->n = b->cap = 0;
}
