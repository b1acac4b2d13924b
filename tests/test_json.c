/* test_json: the shared JSON reader (src/core/json.h): string escapes and
 * surrogate pairs, lone surrogates, skipping nested values, numbers, and
 * mt_json_get_string's errors (missing key, wrong type, truncated input). */
#include "core/json.h"
#include "tap.h"
#include <stdlib.h>
#include <string.h>

/* decodes the string literal at the start of js; returns the bytes or NULL */
static char *str(const char *js, unsigned flags, size_t *len, struct mt_json *p)
{
    mt_json_init(p, js, strlen(js));
    p->flags = flags;
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    if (mt_json_string(p, &buf, len, &cap) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void test_strings(void)
{
    struct mt_json p;
    size_t n;
    char *s = str("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", 0, &n, &p);
    tap_ok(s && n == 12 && memcmp(s, "a\"b\\c/d\b\f\n\r\t", 12) == 0 && s[n] == 0,
           "the simple escapes decode (and the result is NUL-terminated)");
    free(s);
    s = str("\"\\u0041\\u00e9\\u20AC\"", 0, &n, &p);
    tap_ok(s && n == 6 && memcmp(s, "A\xc3\xa9\xe2\x82\xac", 6) == 0, "\\u escapes: 1, 2, 3 UTF-8 bytes");
    free(s);
    s = str("\"\\ud83d\\ude00!\"", 0, &n, &p);
    tap_ok(s && n == 5 && memcmp(s, "\xf0\x9f\x98\x80!", 5) == 0, "a surrogate pair: one 4-byte character");
    free(s);
    s = str("\"\xc3\xa9 raw\" tail", 0, &n, &p);
    tap_ok(s && n == 6 && p.i == 8, "raw UTF-8 is copied; the cursor stops after the quote (%zu)", p.i);
    free(s);
    s = str("\"\"", 0, &n, &p);
    tap_ok(s && n == 0 && s[0] == 0, "the empty string: an empty, allocated buffer");
    free(s);

    s = str("\"x\\ud800y\"", 0, &n, &p);
    tap_ok(!s && p.code == MT_JSON_E_SURROGATE && p.err_cp == 0xd800 && p.err_at == 2,
           "a lone high surrogate is refused at its backslash (%zu)", p.err_at);
    s = str("\"\\udc00\"", 0, &n, &p);
    tap_ok(!s && p.code == MT_JSON_E_SURROGATE && p.err_cp == 0xdc00, "a lone low surrogate is refused");
    s = str("\"\\ud800\\u0041\"", 0, &n, &p);
    tap_ok(!s && p.code == MT_JSON_E_SURROGATE && p.err_at == 1,
           "a high surrogate followed by a non-surrogate \\u is refused");
    s = str("\"\\ud800\\u0041\"", MT_JSON_SURROGATE_FFFD, &n, &p);
    tap_ok(s && n == 4 && memcmp(s, "\xef\xbf\xbd" "A", 4) == 0,
           "MT_JSON_SURROGATE_FFFD: a lone surrogate decodes to U+FFFD");
    free(s);

    static const struct {
        const char *js;
        int code;
        size_t at;
    } bad[] = {
        {"abc", MT_JSON_E_STRING, 0},          {"\"abc", MT_JSON_E_UNTERMINATED, 4},
        {"\"ab\\", MT_JSON_E_ESCAPE_END, 4},   {"\"a\tb\"", MT_JSON_E_CONTROL, 2},
        {"\"a\\qb\"", MT_JSON_E_ESCAPE, 2},    {"\"\\u12\"", MT_JSON_E_U_TRUNCATED, 3},
        {"\"\\u12g4\"", MT_JSON_E_U_HEX, 3},   {"\"\\ud800\\u12", MT_JSON_E_U_TRUNCATED, 9},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        s = str(bad[k].js, 0, &n, &p);
        tap_ok(!s && p.code == bad[k].code && p.err_at == bad[k].at && p.err &&
                   strcmp(p.err, mt_json_message(bad[k].code)) == 0,
               "bad string #%zu: \"%s\" at %zu", k, p.err ? p.err : "(none)", p.err_at);
    }
    static const char *const mine[MT_JSON_NCODES] = {[MT_JSON_E_UNTERMINATED] = "my text"};
    mt_json_init(&p, "\"abc", 4);
    p.msgs = mine;
    mt_json_skip(&p, 0);
    tap_ok(p.err && strcmp(p.err, "my text") == 0, "a caller's table replaces the text");
    mt_json_init(&p, "\"a\\qb\"", 6);
    p.msgs = mine;
    mt_json_skip(&p, 0);
    tap_ok(p.err && strcmp(p.err, mt_json_message(MT_JSON_E_ESCAPE)) == 0,
           "a NULL entry keeps the default text");
}

static int skip(const char *js, unsigned flags, int max_depth, struct mt_json *p)
{
    mt_json_init(p, js, strlen(js));
    p->flags = flags;
    if (max_depth) p->max_depth = max_depth;
    return mt_json_skip(p, 0);
}

static void test_skip(void)
{
    struct mt_json p;
    const char *js = " {\"a\": [1, -2.5e+3, {\"b\": [true, false, null]}, \"]}\"], \"c\": {}} ,";
    tap_ok(skip(js, 0, 0, &p) == 0 && p.i == strlen(js) - 2, "nested objects and arrays are skipped whole");
    tap_ok(skip("[[[[1]]]]", 0, 4, &p) == 0, "nesting up to max_depth is accepted");
    tap_ok(skip("[[[[[1]]]]]", 0, 4, &p) != 0 && p.code == MT_JSON_E_DEPTH, "deeper is refused");
    tap_ok(skip("[1, 2", 0, 0, &p) != 0 && p.code == MT_JSON_E_ARRAY_EOF, "a truncated array");
    tap_ok(skip("{\"a\": 1", 0, 0, &p) != 0 && p.code == MT_JSON_E_OBJECT_EOF, "a truncated object");
    tap_ok(skip("{\"a\" 1}", 0, 0, &p) != 0 && p.code == MT_JSON_E_COLON, "a missing ':'");
    tap_ok(skip("{\"a\": 1 \"b\"}", 0, 0, &p) != 0 && p.code == MT_JSON_E_OBJECT_SEP && p.i == 8,
           "a missing ','");
    tap_ok(skip("[1 2]", 0, 0, &p) != 0 && p.code == MT_JSON_E_ARRAY_SEP, "a missing ',' in an array");
    tap_ok(skip("  ", 0, 0, &p) != 0 && p.code == MT_JSON_E_VALUE_END, "no value: the end");
    tap_ok(skip("tru", 0, 0, &p) != 0 && p.code == MT_JSON_E_VALUE, "a truncated literal");
    tap_ok(skip("NaN", 0, 0, &p) != 0 && p.code == MT_JSON_E_VALUE, "NaN is not JSON");
    tap_ok(skip("[NaN, Infinity, -Infinity]", MT_JSON_NAN_INFINITY, 0, &p) == 0,
           "MT_JSON_NAN_INFINITY: NaN, Infinity, -Infinity (as Python)");
    tap_ok(skip("-", 0, 0, &p) != 0 && p.code == MT_JSON_E_NUMBER && p.i == 0 && p.err_at == 1,
           "a bare '-': a malformed number (cursor back at its start)");
    tap_ok(skip("1.e5", 0, 0, &p) != 0 && p.code == MT_JSON_E_NUMBER && p.err_at == 2,
           "no digits after '.'");
    tap_ok(skip("1e+", 0, 0, &p) != 0 && p.code == MT_JSON_E_NUMBER, "no exponent digits");
    tap_ok(skip("007", 0, 0, &p) == 0 && p.i == 1, "strict: a number stops after a leading 0");
    tap_ok(skip("007", MT_JSON_LEADING_ZEROS, 0, &p) == 0 && p.i == 3,
           "MT_JSON_LEADING_ZEROS: 007 is one number");

    long long v = 0;
    mt_json_init(&p, "-12345,", 7);
    tap_ok(mt_json_int(&p, &v) == 0 && v == -12345 && p.i == 6, "mt_json_int: -12345");
    mt_json_init(&p, "1.5", 3);
    tap_ok(mt_json_int(&p, &v) != 0 && p.code == MT_JSON_E_NUMBER && p.i == 0, "mt_json_int: 1.5 refused");
    mt_json_init(&p, "99999999999999999999", 20);
    tap_ok(mt_json_int(&p, &v) != 0 && p.code == MT_JSON_E_NUMBER, "mt_json_int: overflow refused");
    mt_json_init(&p, "x", 1);
    tap_ok(mt_json_int(&p, &v) != 0, "mt_json_int: no digits refused");
}

/* mt_json_get_string of key "text" in a NUL-terminated line */
static char *get_text(const char *line, size_t *n, const char **err, size_t *ep)
{
    return mt_json_get_string(line, strlen(line), "text", n, err, ep);
}

static void test_get_string(void)
{
    const char *err;
    size_t n, ep;
    char *s = get_text("{\"id\": [1, {\"text\": \"inner\"}], \"text\": \"a\\u00e9\\ud83d\\ude00\", \"z\": null}",
                       &n, &err, &ep);
    tap_ok(s && n == 7 && memcmp(s, "a\xc3\xa9\xf0\x9f\x98\x80", 7) == 0,
           "get_string: the top-level key, not the nested one");
    free(s);
    static const struct {
        const char *line, *err;
        size_t pos;
    } bad[] = {
        {"{\"txt\": \"x\"}", "the key is missing", 0},
        {"{\"text\": 3}", "the value is not a string", 9},
        {"{\"text\": [\"a\"]}", "the value is not a string", 9},
        {"{\"text\": \"abc", "unterminated string", 13},
        {"{\"text\": \"abc\"", "unterminated object", 14},
        {"{\"x\": [1, 2", "unterminated object or array", 11},
        {"[\"text\"]", "not a JSON object (a line must look like {\"text\": \"...\"})", 0},
        {"{\"text\": \"a\"} x", "extra characters after the object", 14},
        {"{\"text\": \"\\q\"}", "unknown escape in a string", 12},
        {"{\"text\" \"a\"}", "expected ':' after a key", 8},
        {"", "not a JSON object (a line must look like {\"text\": \"...\"})", 0},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        err = NULL;
        ep = 999;
        s = get_text(bad[k].line, &n, &err, &ep);
        tap_ok(!s && err && strcmp(err, bad[k].err) == 0 && ep == bad[k].pos,
               "get_string error #%zu: \"%s\" at %zu", k, err ? err : "(none)", ep);
        free(s);
    }
    s = get_text("{\"text\": \"\\udc00\"}", &n, &err, &ep);
    tap_ok(s && n == 3 && memcmp(s, "\xef\xbf\xbd", 3) == 0, "get_string: a lone surrogate is U+FFFD");
    free(s);
}

int main(void)
{
    test_strings();
    test_skip();
    test_get_string();
    return tap_done();
}
