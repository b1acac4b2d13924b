/* json.c: see json.h. */
#include "core/json.h"
#include "core/error.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

const char *mt_json_message(int code)
{
    switch (code) {
    case MT_JSON_OK: return "no error";
    case MT_JSON_E_STRING: return "expected a string";
    case MT_JSON_E_UNTERMINATED: return "unterminated string";
    case MT_JSON_E_ESCAPE_END: return "unterminated escape";
    case MT_JSON_E_CONTROL: return "control character inside a string (write it as an escape)";
    case MT_JSON_E_ESCAPE: return "unknown escape in a string";
    case MT_JSON_E_U_TRUNCATED: return "truncated \\u escape";
    case MT_JSON_E_U_HEX: return "bad hex digit in a \\u escape";
    case MT_JSON_E_SURROGATE: return "lone surrogate";
    case MT_JSON_E_VALUE_END: return "expected a value";
    case MT_JSON_E_VALUE: return "unexpected character";
    case MT_JSON_E_NUMBER: return "malformed number";
    case MT_JSON_E_COLON: return "expected ':' after a key";
    case MT_JSON_E_OBJECT_SEP: return "expected ',' or '}'";
    case MT_JSON_E_ARRAY_SEP: return "expected ',' or ']'";
    case MT_JSON_E_OBJECT_EOF: return "unterminated object or array";
    case MT_JSON_E_ARRAY_EOF: return "unterminated object or array";
    case MT_JSON_E_DEPTH: return "nesting too deep";
    case MT_JSON_E_OTHER: return "malformed JSON";
    default: return "malformed JSON";
    }
}

void mt_json_init(struct mt_json *p, const char *s, size_t n)
{
    memset(p, 0, sizeof *p);
    p->s = (const unsigned char *)s;
    p->n = n;
    p->max_depth = 64;
}

static int fail_at(struct mt_json *p, int code, size_t at)
{
    if (p->code == MT_JSON_OK) {
        p->code = code;
        p->err = p->msgs && code < MT_JSON_NCODES && p->msgs[code] ? p->msgs[code]
                                                                    : mt_json_message(code);
        p->err_at = at;
    }
    return -1;
}

int mt_json_fail(struct mt_json *p, int code) { return fail_at(p, code, p->i); }

int mt_json_fail_msg(struct mt_json *p, const char *msg)
{
    if (p->code == MT_JSON_OK) {
        p->code = MT_JSON_E_OTHER;
        p->err = msg;
        p->err_at = p->i;
    }
    return -1;
}

void mt_json_ws(struct mt_json *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

int mt_json_hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int mt_json_escape(int c)
{
    switch (c) {
    case '"': return '"';
    case '\\': return '\\';
    case '/': return '/';
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    default: return -1;
    }
}

int mt_json_next(struct mt_json *p, char close)
{
    mt_json_ws(p);
    if (p->i < p->n && p->s[p->i] == ',') {
        p->i++;
        return 1;
    }
    if (p->i < p->n && p->s[p->i] == (unsigned char)close) {
        p->i++;
        return 0;
    }
    return -1;
}

size_t mt_json_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* appends s[0, k) to *buf, keeping room for a NUL after it */
static void put(char **buf, size_t *len, size_t *cap, const void *s, size_t k)
{
    if (*len + k + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + k + 1) c *= 2;
        char *q = realloc(*buf, c);
        if (!q) mt_die("out of memory (%zu bytes)", c);
        *buf = q;
        *cap = c;
    }
    memcpy(*buf + *len, s, k);
    *len += k;
    (*buf)[*len] = 0;
}

/* 4 hex digits at p->i; on a bad digit the cursor stops after it */
static int hex4(struct mt_json *p, uint32_t *v)
{
    if (p->n - p->i < 4) return mt_json_fail(p, MT_JSON_E_U_TRUNCATED);
    size_t at = p->i;
    uint32_t x = 0;
    for (int k = 0; k < 4; k++) {
        int h = mt_json_hexval(p->s[p->i++]);
        if (h < 0) return fail_at(p, MT_JSON_E_U_HEX, at);
        x = x << 4 | (uint32_t)h;
    }
    *v = x;
    return 0;
}

/* \\uXXXX (and a pair's low half) after the 'u' */
static int uescape(struct mt_json *p, uint32_t *cp)
{
    if (hex4(p, cp) != 0) return -1;
    if (*cp >= 0xd800 && *cp <= 0xdbff && p->n - p->i >= 2 && p->s[p->i] == '\\' &&
        p->s[p->i + 1] == 'u') {
        size_t save = p->i;
        uint32_t lo;
        p->i += 2;
        if (hex4(p, &lo) != 0) return -1;
        if (lo >= 0xdc00 && lo <= 0xdfff) {
            *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
            return 0;
        }
        p->i = save;
    }
    if (*cp < 0xd800 || *cp > 0xdfff) return 0;
    if (p->flags & MT_JSON_SURROGATE_FFFD) {
        *cp = 0xfffd;
        return 0;
    }
    p->i -= 6;
    if (p->code == MT_JSON_OK) p->err_cp = *cp;
    return mt_json_fail(p, MT_JSON_E_SURROGATE);
}

int mt_json_string(struct mt_json *p, char **buf, size_t *len, size_t *cap)
{
    if (p->i >= p->n || p->s[p->i] != '"') return mt_json_fail(p, MT_JSON_E_STRING);
    p->i++;
    if (buf) put(buf, len, cap, "", 0);
    for (;;) {
        size_t a = p->i;
        while (p->i < p->n && p->s[p->i] != '"' && p->s[p->i] != '\\' && p->s[p->i] >= 0x20)
            p->i++;
        if (buf && p->i > a) put(buf, len, cap, p->s + a, p->i - a);
        if (p->i >= p->n) return mt_json_fail(p, MT_JSON_E_UNTERMINATED);
        unsigned char c = p->s[p->i];
        if (c == '"') {
            p->i++;
            return 0;
        }
        if (c < 0x20) return mt_json_fail(p, MT_JSON_E_CONTROL);
        if (++p->i >= p->n) return mt_json_fail(p, MT_JSON_E_ESCAPE_END);
        c = p->s[p->i++];
        int r = mt_json_escape(c);
        uint32_t cp = (uint32_t)r;
        if (r < 0 && c != 'u') return fail_at(p, MT_JSON_E_ESCAPE, p->i - 2);
        if (c == 'u' && uescape(p, &cp) != 0) return -1;
        if (buf) {
            char u[4];
            put(buf, len, cap, u, mt_json_utf8(u, cp));
        }
    }
}

static int digits(struct mt_json *p)
{
    size_t a = p->i;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    return p->i > a ? 0 : -1;
}

int mt_json_number(struct mt_json *p)
{
    size_t start = p->i;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    if (!(p->flags & MT_JSON_LEADING_ZEROS) && p->i < p->n && p->s[p->i] == '0') p->i++;
    else if (digits(p) != 0) goto bad;
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        if (digits(p) != 0) goto bad;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (digits(p) != 0) goto bad;
    }
    return 0;
bad:
    mt_json_fail(p, MT_JSON_E_NUMBER);
    p->i = start;
    return -1;
}

int mt_json_int(struct mt_json *p, long long *v)
{
    size_t start = p->i;
    int neg = p->i < p->n && p->s[p->i] == '-';
    p->i += (size_t)neg;
    long long x = 0;
    size_t a = p->i;
    for (; p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9'; p->i++) {
        int d = p->s[p->i] - '0';
        if (x > (LLONG_MAX - d) / 10) goto bad;
        x = x * 10 + d;
    }
    if (p->i == a) goto bad;
    if (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E')) goto bad;
    *v = neg ? -x : x;
    return 0;
bad:
    mt_json_fail(p, MT_JSON_E_NUMBER);
    p->i = start;
    return -1;
}

static int literal(struct mt_json *p, const char *w)
{
    size_t n = strlen(w);
    if (p->n - p->i >= n && memcmp(p->s + p->i, w, n) == 0) {
        p->i += n;
        return 0;
    }
    return mt_json_fail(p, MT_JSON_E_VALUE);
}

int mt_json_skip(struct mt_json *p, int depth)
{
    if (depth > p->max_depth) return mt_json_fail(p, MT_JSON_E_DEPTH);
    mt_json_ws(p);
    if (p->i >= p->n) return mt_json_fail(p, MT_JSON_E_VALUE_END);
    unsigned char c = p->s[p->i];
    if (c == '"') return mt_json_string(p, NULL, NULL, NULL);
    if (c == '{' || c == '[') {
        const int obj = c == '{';
        const unsigned char close = obj ? '}' : ']';
        p->i++;
        mt_json_ws(p);
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            return 0;
        }
        for (;;) {
            mt_json_ws(p);
            if (obj) {
                if (mt_json_string(p, NULL, NULL, NULL) != 0) return -1;
                mt_json_ws(p);
                if (p->i >= p->n || p->s[p->i] != ':') return mt_json_fail(p, MT_JSON_E_COLON);
                p->i++;
            }
            if (mt_json_skip(p, depth + 1) != 0) return -1;
            int r = mt_json_next(p, (char)close);
            if (r > 0) continue;
            if (r == 0) return 0;
            if (p->i >= p->n)
                return mt_json_fail(p, obj ? MT_JSON_E_OBJECT_EOF : MT_JSON_E_ARRAY_EOF);
            return mt_json_fail(p, obj ? MT_JSON_E_OBJECT_SEP : MT_JSON_E_ARRAY_SEP);
        }
    }
    if (c == 't') return literal(p, "true");
    if (c == 'f') return literal(p, "false");
    if (c == 'n') return literal(p, "null");
    if (p->flags & MT_JSON_NAN_INFINITY) {
        if (c == 'N') return literal(p, "NaN");
        if (c == 'I') return literal(p, "Infinity");
        if (c == '-' && p->i + 1 < p->n && p->s[p->i + 1] == 'I') {
            p->i++;
            return literal(p, "Infinity");
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) return mt_json_number(p);
    return mt_json_fail(p, MT_JSON_E_VALUE);
}

int mt_json_key(struct mt_json *p, char **buf, size_t *len, size_t *cap)
{
    mt_json_ws(p);
    *len = 0;
    if (mt_json_string(p, buf, len, cap) != 0) return -1;
    mt_json_ws(p);
    if (p->i >= p->n || p->s[p->i] != ':') return mt_json_fail(p, MT_JSON_E_COLON);
    p->i++;
    mt_json_ws(p);
    return 0;
}

char *mt_json_get_string(const char *line, size_t len, const char *key, size_t *out_len,
                         const char **err, size_t *err_pos)
{
    struct mt_json p;
    mt_json_init(&p, line, len);
    p.flags = MT_JSON_LEADING_ZEROS | MT_JSON_SURROGATE_FFFD;
    char *val = NULL, *k = NULL;
    size_t vlen = 0, vcap = 0, klen = 0, kcap = 0;
    int found = 0;
    mt_json_ws(&p);
    if (p.i >= p.n || p.s[p.i] != '{') {
        mt_json_fail_msg(&p, "not a JSON object (a line must look like {\"text\": \"...\"})");
        goto fail;
    }
    p.i++;
    mt_json_ws(&p);
    if (p.i < p.n && p.s[p.i] == '}') p.i++;
    else
        for (;;) {
            if (mt_json_key(&p, &k, &klen, &kcap)) goto fail;
            if (klen == strlen(key) && memcmp(k, key, klen) == 0) {
                if (p.i >= p.n || p.s[p.i] != '"') {
                    mt_json_fail_msg(&p, "the value is not a string");
                    goto fail;
                }
                vlen = 0; /* a repeated key: the last one wins, as in Python */
                if (mt_json_string(&p, &val, &vlen, &vcap)) goto fail;
                found = 1;
            } else if (mt_json_skip(&p, 1)) {
                goto fail;
            }
            int r = mt_json_next(&p, '}');
            if (r > 0) continue;
            if (r == 0) break;
            if (p.i < p.n) mt_json_fail(&p, MT_JSON_E_OBJECT_SEP);
            else mt_json_fail_msg(&p, "unterminated object");
            goto fail;
        }
    mt_json_ws(&p);
    if (p.i < p.n) {
        mt_json_fail_msg(&p, "extra characters after the object");
        goto fail;
    }
    if (!found) {
        p.i = 0;
        mt_json_fail_msg(&p, "the key is missing");
        goto fail;
    }
    free(k);
    *out_len = vlen;
    return val;
fail:
    free(k);
    free(val);
    *err = p.err;
    *err_pos = p.i;
    return NULL;
}
