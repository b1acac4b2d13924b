/* tasks.c: see tasks.h and doc/evaluation.md. */
#include "eval/tasks.h"
#include "core/error.h"
#include "core/json.h" /* mt_json_get_string (declared in tasks.h too) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- text helpers ---------------------------------------------------------------- */

int mt_py_isspace(uint32_t c)
{
    /* the code points with Python's str.isspace() true: bidirectional class
     * WS, B or S, or general category Zs */
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Decodes the code point at s[i] (i < n); returns its byte length. An
 * invalid or truncated sequence is one byte with *cp = 0xFFFD (not a space). */
static size_t cp_at(const char *str, size_t n, size_t i, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str + i;
    size_t left = n - i;
    unsigned c = s[0];
    size_t k;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) k = 2, v = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) k = 3, v = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) k = 4, v = c & 0x07, min = 0x10000;
    else goto bad;
    if (left < k) goto bad;
    for (size_t j = 1; j < k; j++) {
        if ((s[j] & 0xc0) != 0x80) goto bad;
        v = (v << 6) | (s[j] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) goto bad;
    *cp = v;
    return k;
bad:
    *cp = 0xfffd;
    return 1;
}

/* Python's s.strip() on s[b, e): narrows [*b, *e) to drop leading and
 * trailing whitespace code points. */
static void py_strip(const char *s, size_t *b, size_t *e)
{
    size_t i = *b, first = *e, last_end = *b;
    int seen = 0;
    while (i < *e) {
        uint32_t cp;
        size_t k = cp_at(s, *e, i, &cp);
        if (!mt_py_isspace(cp)) {
            if (!seen) first = i, seen = 1;
            last_end = i + k;
        }
        i += k;
    }
    if (!seen) {
        *b = *e;
        return;
    }
    *b = first;
    *e = last_end;
}

size_t mt_count_original_tokens(const char *text, size_t len)
{
    size_t b = 0, e = len, n = 1;
    py_strip(text, &b, &e);
    for (size_t i = b; i < e; i++) n += text[i] == ' ';
    return n;
}

/* A growable byte buffer. */
struct sbuf {
    char *p;
    size_t n, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) mt_die("out of memory (%zu bytes)", c);
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

/* First occurrence of pat[0, m) in s[0, n), or NULL (memmem is not ISO C). */
static const char *find(const char *s, size_t n, const char *pat, size_t m)
{
    while (n >= m) {
        const char *c = memchr(s, pat[0], n - m + 1);
        if (!c) return NULL;
        if (memcmp(c, pat, m) == 0) return c;
        n -= (size_t)(c - s) + 1;
        s = c + 1;
    }
    return NULL;
}

/* Python's s.replace(from, to): one left-to-right pass, matches never overlap. */
static char *replace_all(char *s, size_t *n, const char *from, const char *to)
{
    const size_t fl = strlen(from), tl = strlen(to);
    struct sbuf o = {0};
    sb_put(&o, "", 0);
    size_t i = 0;
    while (i < *n) {
        const char *hit = find(s + i, *n - i, from, fl);
        if (!hit) break;
        size_t at = (size_t)(hit - s);
        sb_put(&o, s + i, at - i);
        sb_put(&o, to, tl);
        i = at + fl;
    }
    sb_put(&o, s + i, *n - i);
    free(s);
    *n = o.n;
    return o.p;
}

/* re.sub(r"/' [0-9]/", r"/'[0-9]/", s): the replacement is the literal text
 * "/'[0-9]/" (Megatron's rule, quirks included). */
static char *replace_slash_digit(char *s, size_t *n)
{
    struct sbuf o = {0};
    sb_put(&o, "", 0);
    size_t i = 0, copied = 0;
    while (i + 5 <= *n) {
        if (s[i] == '/' && s[i + 1] == '\'' && s[i + 2] == ' ' && s[i + 3] >= '0' &&
            s[i + 3] <= '9' && s[i + 4] == '/') {
            sb_put(&o, s + copied, i - copied);
            sb_put(&o, "/'[0-9]/", 8);
            i += 5;
            copied = i;
        } else {
            i++;
        }
    }
    sb_put(&o, s + copied, *n - copied);
    free(s);
    *n = o.n;
    return o.p;
}

/* re.sub(r"O\s*([^C]*?)\s*C", r"O\1C", s) for one bracket pair O, C: from
 * each O, the match runs to the first C after it, and the text between loses
 * its leading and trailing whitespace. Without a C after an O nothing later
 * can match either. */
static char *strip_pairs(char *s, size_t *n, char open, char close)
{
    struct sbuf o = {0};
    sb_put(&o, "", 0);
    size_t i = 0;
    while (i < *n) {
        const char *op = memchr(s + i, open, *n - i);
        if (!op) break;
        size_t a = (size_t)(op - s);
        const char *cl = memchr(s + a + 1, close, *n - a - 1);
        if (!cl) break;
        size_t c = (size_t)(cl - s);
        size_t b = a + 1, e = c;
        py_strip(s, &b, &e);
        sb_put(&o, s + i, a + 1 - i); /* up to and including the opener */
        sb_put(&o, s + b, e - b);
        sb_put(&o, &close, 1);
        i = c + 1;
    }
    sb_put(&o, s + i, *n - i);
    free(s);
    *n = o.n;
    return o.p;
}

char *mt_wikitext_detokenize(const char *text, size_t len, size_t *out_len)
{
    size_t n = len;
    char *s = malloc(n + 1);
    if (!s) mt_die("out of memory (%zu bytes)", n + 1);
    memcpy(s, text, n);
    s[n] = 0;
    /* contractions */
    s = replace_all(s, &n, "s '", "s'");
    s = replace_slash_digit(s, &n);
    /* number separators */
    static const char *const first[][2] = {
        {" @-@ ", "-"}, {" @,@ ", ","}, {" @.@ ", "."},
        /* punctuation */
        {" : ", ": "}, {" ; ", "; "}, {" . ", ". "}, {" ! ", "! "}, {" ? ", "? "}, {" , ", ", "}};
    for (size_t k = 0; k < sizeof first / sizeof first[0]; k++)
        s = replace_all(s, &n, first[k][0], first[k][1]);
    /* brackets and quotes */
    s = strip_pairs(s, &n, '(', ')');
    s = strip_pairs(s, &n, '[', ']');
    s = strip_pairs(s, &n, '{', '}');
    s = strip_pairs(s, &n, '"', '"');
    s = strip_pairs(s, &n, '\'', '\'');
    /* headings, degrees, line ends, numbers, possessives */
    static const char *const last[][2] = {
        {"= = = =", "===="}, {"= = =", "==="}, {"= =", "=="},
        {" \xc2\xb0 ", "\xc2\xb0"}, /* " ° " -> "°" (U+00B0) */
        {" \n", "\n"}, {"\n ", "\n"}, {" N ", " 1 "}, {" 's", "'s"}};
    for (size_t k = 0; k < sizeof last / sizeof last[0]; k++)
        s = replace_all(s, &n, last[k][0], last[k][1]);
    *out_len = n;
    return s;
}

/* ---- perplexity windows ------------------------------------------------------------- */

size_t mt_eval_num_windows(size_t ntokens, int seq_len, int stride)
{
    (void)seq_len;
    const size_t s = (size_t)(stride < 1 ? 1 : stride);
    const size_t total_targets = ntokens > 0 ? ntokens - 1 : 0;
    const size_t targets = total_targets > s ? total_targets - s : 0;
    return (targets + s - 1) / s + 1;
}

void mt_eval_window_at(size_t ntokens, int seq_len, int stride, size_t idx,
                       struct mt_eval_window *w)
{
    if (stride < 1) stride = 1;
    w->start = idx * (size_t)stride;
    size_t avail = ntokens > w->start ? ntokens - w->start : 0;
    size_t ntok = avail < (size_t)seq_len + 1 ? avail : (size_t)seq_len + 1;
    w->nlabels = ntok > 0 ? (int)ntok - 1 : 0;
    /* Megatron: pad_mask[:-stride] *= 0 for idx > 0 when stride != seq_len;
     * an empty slice when stride >= seq_len */
    w->score_lo = (idx > 0 && stride < seq_len) ? seq_len - stride : 0;
    w->score_hi = w->nlabels;
    if (w->score_lo > w->score_hi) w->score_lo = w->score_hi;
}

void mt_eval_ppl(double nll_sum, size_t num_tokenized, size_t num_original, struct mt_ppl *o)
{
    o->loss = nll_sum / (double)(num_tokenized - 1);
    o->ppl = exp(fmin(20.0, o->loss));
    if (num_original >= 2) {
        o->token_ratio = (double)(num_tokenized - 1) / (double)(num_original - 1);
        o->adjusted_ppl = exp(fmin(20.0, o->loss * o->token_ratio));
    } else {
        o->token_ratio = NAN;
        o->adjusted_ppl = NAN;
    }
}

double mt_eval_lm_nll(struct mt_model *m, const int32_t *tokens, size_t ntokens, int seq_len,
                      int stride, size_t w0, size_t w1, int B, int32_t pad_id, size_t *nscored)
{
    MT_ASSERT(B >= 1 && B <= m->B && seq_len <= m->T);
    const size_t N = (size_t)B * (size_t)seq_len;
    int32_t *in = malloc(N * sizeof *in), *lab = malloc(N * sizeof *lab);
    struct mt_eval_window *win = malloc((size_t)B * sizeof *win);
    if (!in || !lab || !win) mt_die("out of memory");
    double sum = 0.0;
    size_t count = 0;
    size_t idx = w0;
    while (idx < w1) {
        int nb = 0;
        for (; idx < w1 && nb < B; idx++) {
            struct mt_eval_window w;
            mt_eval_window_at(ntokens, seq_len, stride, idx, &w);
            if (w.score_lo >= w.score_hi) continue; /* past the data: scores nothing */
            win[nb] = w;
            int32_t *x = in + (size_t)nb * seq_len, *y = lab + (size_t)nb * seq_len;
            for (int j = 0; j < seq_len; j++) {
                size_t p = w.start + (size_t)j;
                x[j] = p < ntokens ? tokens[p] : pad_id;
                y[j] = j < w.nlabels ? tokens[p + 1] : pad_id;
            }
            nb++;
        }
        if (nb == 0) break;
        mt_model_forward(m, in, lab, nb, seq_len, 0);
        for (int b = 0; b < nb; b++) {
            const float *l = m->losses_host + (size_t)b * seq_len;
            for (int j = win[b].score_lo; j < win[b].score_hi; j++) sum += l[j];
            count += (size_t)(win[b].score_hi - win[b].score_lo);
        }
    }
    free(in);
    free(lab);
    free(win);
    if (nscored) *nscored = count;
    return sum;
}

/* ---- LAMBADA ------------------------------------------------------------------------ */

int mt_lambada_split(const struct mt_tokenizer *tok, const char *text, size_t len, int strict,
                     int32_t **ctx, size_t *nctx, int32_t **tgt, size_t *ntgt, const char **err)
{
    *ctx = *tgt = NULL;
    *nctx = *ntgt = 0;
    if (!strict) {
        size_t n;
        int32_t *ids = mt_tokenizer_encode_all(tok, text, len, &n);
        if (n < 2) {
            free(ids);
            *err = n == 0 ? "the text is empty" : "the text is a single token: no context before the target";
            return -1;
        }
        *tgt = malloc(sizeof **tgt);
        if (!*tgt) mt_die("out of memory");
        (*tgt)[0] = ids[n - 1];
        *ntgt = 1;
        *ctx = ids;
        *nctx = n - 1;
        return 0;
    }
    /* the last whitespace-separated word: text.split()[-1] */
    size_t i = 0, ws = 0, we = 0;
    int in_word = 0, any = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = cp_at(text, len, i, &cp);
        if (mt_py_isspace(cp)) {
            if (in_word) we = i, in_word = 0;
        } else if (!in_word) {
            ws = i, in_word = 1, any = 1;
        }
        i += k;
    }
    if (in_word) we = len;
    if (!any) {
        *err = "the text has no word";
        return -1;
    }
    /* text.rfind(word) is the last word's own position: nothing after it but
     * whitespace. The context is text[:ws].strip(). */
    size_t b = 0, e = ws;
    py_strip(text, &b, &e);
    if (b == e) {
        *err = "the text is a single word: no context before the target";
        return -1;
    }
    size_t n;
    *ctx = mt_tokenizer_encode_all(tok, text + b, e - b, &n);
    *nctx = n;
    char *w = malloc(we - ws + 2);
    if (!w) mt_die("out of memory");
    w[0] = ' ';
    memcpy(w + 1, text + ws, we - ws);
    *tgt = mt_tokenizer_encode_all(tok, w, we - ws + 1, &n);
    *ntgt = n;
    free(w);
    if (*nctx == 0 || *ntgt == 0) {
        free(*ctx);
        free(*tgt);
        *ctx = *tgt = NULL;
        *nctx = *ntgt = 0;
        *err = "the context or the target encodes to no tokens";
        return -1;
    }
    return 0;
}

int mt_argmax(const float *row, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

int mt_lambada_correct(const float *rows, int Vp, int vocab_size, const int32_t *labels, int n)
{
    for (int i = 0; i < n; i++)
        if (mt_argmax(rows + (size_t)i * Vp, vocab_size) != labels[i]) return 0;
    return 1;
}

int mt_lambada_example_make(struct mt_lambada_example *e, const int32_t *ctx, size_t nctx,
                            const int32_t *tgt, size_t ntgt, int seq_len)
{
    memset(e, 0, sizeof *e);
    if (nctx == 0 || ntgt == 0 || ntgt > (size_t)seq_len) return -1;
    size_t total = nctx + ntgt, keep = total < (size_t)seq_len + 1 ? total : (size_t)seq_len + 1;
    size_t skip = total - keep; /* from the left, all in the context */
    e->seq = malloc(keep * sizeof *e->seq);
    if (!e->seq) mt_die("out of memory");
    memcpy(e->seq, ctx + skip, (nctx - skip) * sizeof *ctx);
    memcpy(e->seq + (nctx - skip), tgt, ntgt * sizeof *tgt);
    e->n = (int)keep;
    e->ntgt = (int)ntgt;
    return 0;
}

void mt_lambada_example_free(struct mt_lambada_example *e)
{
    free(e->seq);
    memset(e, 0, sizeof *e);
}

int mt_eval_lambada_batch(struct mt_model *m, const struct mt_lambada_example *ex, int nex,
                          int32_t pad_id, int *correct_out)
{
    MT_ASSERT(nex >= 1 && nex <= m->B);
    int T = 1, maxt = 1;
    for (int b = 0; b < nex; b++) {
        MT_ASSERT(ex[b].n >= 2 && ex[b].ntgt >= 1 && ex[b].ntgt <= ex[b].n - 1);
        if (ex[b].n - 1 > T) T = ex[b].n - 1;
        if (ex[b].ntgt > maxt) maxt = ex[b].ntgt;
    }
    MT_ASSERT(T <= m->T);
    const int V = m->cfg.vocab_size; /* the logits' columns: the real vocabulary */
    int32_t *in = malloc((size_t)nex * T * sizeof *in);
    float *rows = malloc((size_t)maxt * V * sizeof *rows);
    if (!in || !rows) mt_die("out of memory");
    for (int b = 0; b < nex; b++)
        for (int j = 0; j < T; j++) in[(size_t)b * T + j] = j < ex[b].n - 1 ? ex[b].seq[j] : pad_id;
    mt_model_forward(m, in, NULL, nex, T, 0);
    int correct = 0;
    for (int b = 0; b < nex; b++) {
        /* label positions n-1-ntgt .. n-2 predict seq[n-ntgt .. n-1] */
        const int j0 = ex[b].n - 1 - ex[b].ntgt;
        mt_tensor_download(m->be, rows, mt_rows(m->logits, (int64_t)b * T + j0, ex[b].ntgt));
        int ok = mt_lambada_correct(rows, V, V, ex[b].seq + j0 + 1, ex[b].ntgt);
        if (correct_out) correct_out[b] = ok;
        correct += ok;
    }
    free(in);
    free(rows);
    return correct;
}
