/* sentences.c: see sentences.h */
#include "data/sentences.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

/* abbreviations after which a period does not end a sentence (lowercase) */
static const char *const ABBREV[] = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "rev", "hon", "gen", "col", "lt",
    "sgt", "capt", "gov", "sen", "rep", "pres", "vs", "etc", "e.g", "i.e", "cf", "al", "approx",
    "no", "nos", "fig", "figs", "vol", "vols", "p", "pp", "ch", "sec", "inc", "ltd", "co", "corp",
    "bros", "dept", "univ", "assn", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
    "oct", "nov", "dec", "u.s", "u.k", "a.m", "p.m", "ph.d", "b.a", "m.a", "d.c"};

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_lower(char c) { return c >= 'a' && c <= 'z'; }
static int is_alpha(char c) { return is_lower(c) || (c >= 'A' && c <= 'Z'); }
static int is_closer(char c) { return c == '"' || c == '\'' || c == ')' || c == ']' || c == '}'; }

/* the bytes of a closing curly quote or guillemet at s (n bytes left), or 0 */
static size_t utf8_closer(const char *s, size_t n)
{
    static const char *const Q[] = {"\xe2\x80\x9d", "\xe2\x80\x99", "\xc2\xbb"}; /* ” ’ » */
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(Q[k]);
        if (l <= n && memcmp(s, Q[k], l) == 0) return l;
    }
    return 0;
}

/* does the word that ends with the '.' at text[dot] stop a sentence there? */
static int abbreviation_before(const char *text, size_t dot, size_t begin)
{
    size_t w = dot;
    while (w > begin && (is_alpha(text[w - 1]) || (text[w - 1] == '.' && w - 1 > begin &&
                                                    is_alpha(text[w - 2]))))
        w--;
    const size_t n = dot - w;
    if (n == 0) return 0;
    if (n == 1) return 1; /* an initial */
    if (n > 8) return 0;
    char word[10];
    for (size_t i = 0; i < n; i++) word[i] = (char)(text[w + i] | (is_alpha(text[w + i]) ? 0x20 : 0));
    word[n] = 0;
    for (size_t k = 0; k < sizeof ABBREV / sizeof ABBREV[0]; k++)
        if (strcmp(word, ABBREV[k]) == 0) return 1;
    return 0;
}

static void push(struct mt_span **spans, size_t *n, size_t *cap, const char *text, size_t b, size_t e)
{
    while (b < e && is_space(text[b])) b++;
    while (e > b && is_space(text[e - 1])) e--;
    if (b == e) return;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        struct mt_span *p = realloc(*spans, c * sizeof *p);
        if (!p) mt_die("out of memory");
        *spans = p;
        *cap = c;
    }
    (*spans)[(*n)++] = (struct mt_span){b, e};
}

size_t mt_split_sentences(const char *text, size_t len, struct mt_span **spans, size_t *cap)
{
    size_t n = 0, begin = 0;
    for (size_t i = 0; i < len;) {
        const char c = text[i];
        if (c == '\n') {
            /* rule 3: a blank line */
            size_t j = i + 1;
            while (j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r')) j++;
            if (j < len && text[j] == '\n') {
                push(spans, &n, cap, text, begin, i);
                begin = j;
                i = j;
                continue;
            }
            i++;
            continue;
        }
        if (c != '.' && c != '!' && c != '?') {
            i++;
            continue;
        }
        /* rule 1: the run of terminators and closers */
        const size_t first = i;
        size_t e = i;
        while (e < len && (text[e] == '.' || text[e] == '!' || text[e] == '?')) e++;
        const int single_period = c == '.' && e == first + 1;
        for (;;) {
            size_t q;
            if (e < len && is_closer(text[e])) e++;
            else if (e < len && (q = utf8_closer(text + e, len - e)) > 0) e += q;
            else break;
        }
        i = e;
        if (e < len && !is_space(text[e])) continue;
        size_t next = e;
        while (next < len && is_space(text[next])) next++;
        if (next < len && (is_lower(text[next]) || text[next] == ',' || text[next] == ';' ||
                           text[next] == ':'))
            continue;
        /* rule 2: a single '.' after an abbreviation or an initial */
        if (single_period && abbreviation_before(text, first, begin)) continue;
        push(spans, &n, cap, text, begin, e);
        begin = e;
    }
    push(spans, &n, cap, text, begin, len);
    return n;
}
