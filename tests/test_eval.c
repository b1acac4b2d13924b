/* test_eval.c: the pieces of `megatron-c eval` (src/eval/tasks.c).
 *  - the WikiText detokenizer: hand-written cases from Megatron's rule list,
 *    and excerpts of WikiText-2 test.txt whose expected output comes from
 *    tests/data/gen_detok_cases.py (tests/data/detok_cases.jsonl);
 *    num_original_tokens = len(text.strip().split(" "))
 *  - the window schedule against a literal simulation of Megatron's
 *    _LMDataset.__getitem__, and: every token but the first scored once
 *  - the perplexity formulas
 *  - the windowed loss of a tiny random model equals an independent
 *    computation: for each scored token, the model run on exactly its
 *    window's context and -log softmax(logits)[target] taken in double
 *  - LAMBADA: context/target split (last token; --strict-lambada: ' ' + last
 *    word), truncation, the accuracy rule on crafted logits (padded ids never
 *    predicted, first index on ties), the batched model loop against
 *    per-example runs
 *  - the one-key JSON reader.
 * Finds tests/data from $MT_SRCDIR (set by make check), else from the
 * directory of the binary or the current directory; the GPT-2 vocabulary
 * from $MT_DATA_DIR, else MT_SRCDIR/data (BPE cases are skipped without it). */
#include "tap.h"
#include "testutil.h"
#include "backend/backend.h"
#include "core/io.h"
#include "core/rng.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include "eval/tasks.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char g_src[4096];

/* s with newlines shown as \\n, for test names (k = which of 3 static buffers) */
static const char *shown(const char *s, int k)
{
    static char buf[3][160];
    size_t j = 0;
    for (; *s && j + 3 < sizeof buf[k]; s++) {
        if (*s == '\n') buf[k][j++] = '\\', buf[k][j++] = 'n';
        else buf[k][j++] = *s;
    }
    buf[k][j] = 0;
    return buf[k];
}

/* ---- detokenizer ------------------------------------------------------------------- */

static int detok_is(const char *in, const char *want)
{
    size_t n;
    char *out = mt_wikitext_detokenize(in, strlen(in), &n);
    int ok = n == strlen(want) && memcmp(out, want, n) == 0;
    if (!ok) tap_diag("got \"%s\"", out);
    free(out);
    return ok;
}

static void test_detok_rules(void)
{
    static const char *const cases[][2] = {
        {"a @-@ b", "a-b"},
        {"1 @,@ 000 and 2 @.@ 5", "1,000 and 2.5"},
        {"a : b ; c . d ! e ? f , g", "a: b; c. d! e? f, g"},
        {" . . ", ". . "}, /* one pass: matches do not overlap */
        {"( a b )", "(a b)"},
        {"[ x ]", "[x]"},
        {"{ y }", "{y}"},
        {"\" q \"", "\"q\""},
        {"' r '", "'r'"},
        {"( a ( b ) c )", "(a ( b) c )"}, /* from the first '(' to the first ')' */
        {"f ( x", "f ( x"},               /* unclosed: unchanged */
        {"= = = = H = = = =", "==== H ===="},
        {"= = = H = = =", "=== H ==="},
        {"= = H = =", "== H =="},
        {"50 \xc2\xb0 N", "50\xc2\xb0N"},
        {"a \n b", "a\nb"},
        {"the N years", "the 1 years"},
        {"John 's", "John's"},
        {"the dogs ' bones", "the dogs' bones"},
        {"/' 3/", "/'[0-9]/"}, /* Megatron's replacement is that literal text */
        {"boy 's dog and girl 's cat", "boy's dog and girl's cat"}, /* quote pairing */
        {"He said \" hi \n there \" .\n\" open", "He said \"hi\nthere\" .\n\" open"},
        {"(\xc2\xa0x\xe2\x80\x83)", "(x)"}, /* NBSP and EM SPACE are \s in Python */
        {"( \n )", "()"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tap_ok(detok_is(cases[i][0], cases[i][1]), "detokenize \"%s\"", shown(cases[i][0], 0));
    }
}

static void test_detok_reference(void)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/tests/data/detok_cases.jsonl", g_src);
    size_t len;
    char *data = mt_read_file(path, &len, "detokenizer cases");
    size_t pos = 0;
    int ncases = 0, nok = 0;
    while (pos < len) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + 1;
        if (ll == 0) continue;
        const char *err;
        size_t ep, nname, nin, nout, ngot;
        char *name = mt_json_get_string(line, ll, "name", &nname, &err, &ep);
        char *in = mt_json_get_string(line, ll, "in", &nin, &err, &ep);
        char *out = mt_json_get_string(line, ll, "out", &nout, &err, &ep);
        if (!name || !in || !out) {
            tap_ok(0, "parse %s case %d: %s", path, ncases + 1, err);
            free(name), free(in), free(out);
            continue;
        }
        char *got = mt_wikitext_detokenize(in, nin, &ngot);
        int ok = ngot == nout && memcmp(got, out, nout) == 0;
        tap_ok(ok, "detokenize %s (%zu bytes) as Megatron", name, nin);
        ncases++;
        nok += ok;
        free(got), free(name), free(in), free(out);
    }
    tap_ok(ncases >= 10, "%d reference cases read from %s", ncases, path);
    free(data);
}

static void test_original_tokens(void)
{
    static const struct {
        const char *s;
        size_t n;
    } c[] = {{" = Robert = \n", 3}, {"  a b  c \n", 4}, {"", 1}, {" \n ", 1}, {"x", 1},
             {"\xc2\xa0" "a b\xe2\x80\x83", 2}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        tap_ok(mt_count_original_tokens(c[i].s, strlen(c[i].s)) == c[i].n,
               "num_original_tokens case %zu = %zu", i, c[i].n);
}

/* ---- windows ------------------------------------------------------------------------ */

/* Megatron's _LMDataset, literally: the number of windows and each window's
 * pad_mask (1 = scored) over its seq_len label positions. */
static size_t megatron_num_windows(long ntok, int seq, int ov)
{
    if (ov < 1) ov = 1;
    long total_targets = ntok - 1;
    long targets = total_targets - ov > 0 ? total_targets - ov : 0;
    long k = (long)ceil((double)targets / ov) + 1;
    (void)seq;
    return (size_t)(k > 1 ? k : 1);
}

static void megatron_mask(long ntok, int seq, int ov, long idx, unsigned char *mask)
{
    if (ov < 1) ov = 1;
    long start = idx * ov, end = start + seq;
    long stop = end + 1 < ntok ? end + 1 : ntok; /* tokens[start:end+1] */
    long num = stop > start ? stop - start : 0;
    unsigned char full[4096];
    for (long j = 0; j < seq + 1; j++) full[j] = j < num;
    for (long j = 0; j < seq; j++) mask[j] = full[j + 1]; /* pad_mask[1:] */
    if (ov != seq && idx != 0) {
        /* pad_mask[:-ov] *= 0: Python slices clamp */
        long upto = seq - ov;
        for (long j = 0; j < upto; j++) mask[j] = 0;
    }
}

static void test_windows(void)
{
    static const int seqs[] = {1, 2, 5, 8, 32};
    int all_ok = 1, cover_ok = 1, cases = 0;
    unsigned char mask[64];
    int hits[400];
    for (size_t si = 0; si < sizeof seqs / sizeof seqs[0]; si++)
        for (int ov = 1; ov <= seqs[si] + 3; ov++)
            for (long n = 0; n < 120; n += (n < 20 ? 1 : 7)) {
                const int seq = seqs[si];
                size_t K = mt_eval_num_windows((size_t)n, seq, ov);
                cases++;
                if (K != megatron_num_windows(n, seq, ov)) {
                    if (all_ok) tap_diag("window count n=%ld seq=%d ov=%d", n, seq, ov);
                    all_ok = 0;
                    continue;
                }
                memset(hits, 0, sizeof hits);
                for (size_t k = 0; k < K; k++) {
                    struct mt_eval_window w;
                    mt_eval_window_at((size_t)n, seq, ov, k, &w);
                    megatron_mask(n, seq, ov, (long)k, mask);
                    for (int j = 0; j < seq; j++) {
                        int mine = j >= w.score_lo && j < w.score_hi;
                        if (mine != mask[j]) {
                            if (all_ok)
                                tap_diag("mask n=%ld seq=%d ov=%d window %zu pos %d", n, seq, ov, k, j);
                            all_ok = 0;
                        }
                        if (mine) hits[w.start + (size_t)j + 1]++;
                    }
                    if (w.nlabels > seq || w.start != k * (size_t)ov) all_ok = 0;
                }
                /* with ov <= seq every target 1..n-1 is scored exactly once */
                if (ov <= seq)
                    for (long t = 0; t < n; t++)
                        if (hits[t] != (t >= 1)) {
                            if (cover_ok) tap_diag("coverage n=%ld seq=%d ov=%d token %ld: %d", n, seq, ov, t, hits[t]);
                            cover_ok = 0;
                        }
            }
    tap_ok(all_ok, "window count and scored positions equal Megatron's _LMDataset (%d cases)", cases);
    tap_ok(cover_ok, "overlapping-eval <= seq-length: every token but the first scored exactly once");
}

static void test_ppl_formulas(void)
{
    struct mt_ppl r;
    mt_eval_ppl(10.0, 11, 6, &r);
    tap_ok(fabs(r.loss - 1.0) < 1e-15 && fabs(r.ppl - exp(1.0)) < 1e-12 &&
               fabs(r.token_ratio - 2.0) < 1e-15 && fabs(r.adjusted_ppl - exp(2.0)) < 1e-12,
           "loss = nll / (T-1), ppl = exp(loss), adjusted = exp(loss (T-1)/(O-1))");
    mt_eval_ppl(300.0, 11, 6, &r);
    tap_ok(r.ppl == exp(20.0) && r.adjusted_ppl == exp(20.0), "ppl = exp(min(20, loss))");
    mt_eval_ppl(3.0, 4, 1, &r);
    tap_ok(isnan(r.adjusted_ppl) && fabs(r.ppl - exp(1.0)) < 1e-12,
           "one original token: adjusted ppl undefined (NaN)");
}

/* ---- the model -------------------------------------------------------------------- */

static struct mt_transformer_config tiny(void)
{
    struct mt_transformer_config c;
    mt_config_defaults(&c);
    c.num_layers = 2;
    c.hidden_size = 16;
    c.num_attention_heads = 2;
    c.max_position_embeddings = 8;
    c.vocab_size = 256;
    c.padded_vocab_size = 256;
    c.init_method_std = 0.25f;
    mt_config_derive(&c);
    return c;
}

/* -log softmax(row)[t] over n logits, in double */
static double nll_double(const float *row, int n, int t)
{
    double mx = row[0];
    for (int i = 1; i < n; i++)
        if (row[i] > mx) mx = row[i];
    double s = 0.0;
    for (int i = 0; i < n; i++) s += exp((double)row[i] - mx);
    return -((double)row[t] - mx - log(s));
}

/* the last-position logits of the model on tokens[0, n) */
static void last_logits(struct mt_model *m, const int32_t *tokens, int n, float *row)
{
    mt_model_forward(m, tokens, NULL, 1, n, 0);
    mt_tensor_download(m->be, row, mt_rows(m->logits, n - 1, 1));
}

static void test_model_loss(mt_backend *be)
{
    const struct mt_transformer_config TINY = tiny();
    const int seq = 8, B = 3, Vp = TINY.vocab_size;
    struct mt_model m;
    mt_model_init(&m, &TINY, be, B, seq, NULL, 1);
    mt_model_init_weights(&m, 11);
    struct mt_rng r;
    mt_rng_seed(&r, 5, 0);
    enum { NT = 45 };
    int32_t tok[NT];
    for (int i = 0; i < NT; i++) tok[i] = (int32_t)mt_rng_below(&r, 256);
    float *row = malloc((size_t)Vp * sizeof *row);

    static const int strides[] = {8, 3, 1, 5};
    for (size_t si = 0; si < sizeof strides / sizeof strides[0]; si++) {
        const int ov = strides[si];
        size_t K = mt_eval_num_windows(NT, seq, ov), nscored;
        double got = mt_eval_lm_nll(&m, tok, NT, seq, ov, 0, K, B, 0, &nscored);
        /* independent: token i (1..NT-1) is predicted from the window that
         * scores it: [0, i) while i <= seq, else the window k = ceil((i-seq)/ov)
         * starting at k*ov (non-overlapping: the block of seq holding i-1) */
        double want = 0.0;
        for (int i = 1; i < NT; i++) {
            int start;
            if (ov == seq) start = (i - 1) / seq * seq;
            else if (i <= seq) start = 0;
            else start = (i - seq + ov - 1) / ov * ov;
            last_logits(&m, tok + start, i - start, row);
            want += nll_double(row, Vp, tok[i]);
        }
        double rel = fabs(got - want) / fabs(want);
        tap_ok(nscored == NT - 1 && rel < 1e-5,
               "stride %d: windowed NLL %.9g = independent %.9g (rel %.1e), %zu tokens scored", ov,
               got, want, rel, nscored);
        struct mt_ppl p;
        mt_eval_ppl(got, NT, 10, &p);
        tap_ok(fabs(p.ppl - exp(want / (NT - 1))) <= 1e-5 * p.ppl,
               "stride %d: ppl %.6g = exp(mean NLL) %.6g", ov, p.ppl, exp(want / (NT - 1)));
    }
    /* pieces of the schedule sum to the whole */
    size_t K = mt_eval_num_windows(NT, seq, 3), n1, n2;
    double whole = mt_eval_lm_nll(&m, tok, NT, seq, 3, 0, K, 2, 0, NULL);
    double a = mt_eval_lm_nll(&m, tok, NT, seq, 3, 0, 4, 1, 0, &n1);
    double b = mt_eval_lm_nll(&m, tok, NT, seq, 3, 4, K, 3, 0, &n2);
    tap_ok(fabs(a + b - whole) <= 1e-5 * fabs(whole) && n1 + n2 == NT - 1,
           "windows [0,4) + [4,%zu) = all windows, any micro-batch", K);

    /* LAMBADA batch loop == per-example argmax. Examples of lengths 3..9
     * whose targets are (or are not) the model's own argmax. */
    enum { NEX = 7 };
    struct mt_lambada_example ex[NEX];
    int want_ok[NEX];
    for (int e = 0; e < NEX; e++) {
        int n = 3 + e % 7; /* tokens in seq, model reads n - 1 <= 8 */
        int ntgt = 1 + e % 2;
        int32_t *s = malloc((size_t)n * sizeof *s);
        for (int j = 0; j < n - ntgt; j++) s[j] = (int32_t)mt_rng_below(&r, 256);
        /* fill each target with the argmax given what precedes, except the
         * last target of odd examples, set to something else */
        for (int j = n - ntgt; j < n; j++) {
            last_logits(&m, s, j, row);
            int am = mt_argmax(row, TINY.vocab_size);
            s[j] = (e % 2 == 1 && j == n - 1) ? (am + 1) % 256 : am;
        }
        mt_lambada_example_make(&ex[e], s, (size_t)(n - ntgt), s + n - ntgt, (size_t)ntgt, seq);
        want_ok[e] = e % 2 == 0;
        free(s);
    }
    int ok = 1, total = 0;
    for (int e0 = 0; e0 < NEX; e0 += B) {
        int nb = NEX - e0 < B ? NEX - e0 : B, flags[3];
        total += mt_eval_lambada_batch(&m, ex + e0, nb, 0, flags);
        for (int b = 0; b < nb; b++) ok &= flags[b] == want_ok[e0 + b];
    }
    tap_ok(ok && total == (NEX + 1) / 2,
           "LAMBADA batches of %d padded examples: %d correct, as the per-example argmax", B, total);
    for (int e = 0; e < NEX; e++) mt_lambada_example_free(&ex[e]);
    free(row);
    mt_model_free(&m);
}

/* ---- LAMBADA pieces ------------------------------------------------------------------- */

static int ids_are_bytes(const int32_t *ids, size_t n, const char *s)
{
    if (n != strlen(s)) return 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] != (unsigned char)s[i]) return 0;
    return 1;
}

static void check_split_char(const struct mt_tokenizer *t, const char *text, int strict,
                             const char *ctx, const char *tgt)
{
    int32_t *c, *g;
    size_t nc, ng;
    const char *err = NULL;
    int rc = mt_lambada_split(t, text, strlen(text), strict, &c, &nc, &g, &ng, &err);
    const char *kind = strict ? "strict" : "default";
    if (!ctx) {
        tap_ok(rc == -1 && err, "%s split of \"%s\" is refused (%s)", kind, shown(text, 0),
               err ? err : "");
        return;
    }
    tap_ok(rc == 0 && ids_are_bytes(c, nc, ctx) && ids_are_bytes(g, ng, tgt),
           "%s split of \"%s\": context \"%s\", target \"%s\"", kind, shown(text, 0),
           shown(ctx, 1), shown(tgt, 2));
    free(c);
    free(g);
}

static char *decode(const struct mt_tokenizer *t, const int32_t *ids, size_t n)
{
    char *s = malloc(n * MT_TOKEN_MAX_BYTES + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += t->decode_token(t, ids[i], s + k);
    s[k] = 0;
    return s;
}

static void test_lambada_split(void)
{
    struct mt_tokenizer ch;
    mt_tokenizer_open(&ch, "CharLevel", NULL, NULL, 0);
    check_split_char(&ch, "hello big world", 0, "hello big worl", "d");
    check_split_char(&ch, "hello big world", 1, "hello big", " world");
    check_split_char(&ch, "a b\n c  \n", 1, "a b", " c");
    check_split_char(&ch, "a b\n c  \n", 0, "a b\n c  ", "\n");
    check_split_char(&ch, "  x  y\xc2\xa0z", 1, "x  y", " z"); /* NBSP splits words */
    check_split_char(&ch, "he said\n\"go\"", 1, "he said", " \"go\"");
    check_split_char(&ch, "", 0, NULL, NULL);
    check_split_char(&ch, "a", 0, NULL, NULL);
    check_split_char(&ch, " \n ", 1, NULL, NULL);
    check_split_char(&ch, "  word ", 1, NULL, NULL);
    mt_tokenizer_close(&ch);

    /* GPT-2 BPE: the strict target is every token of " " + the last word */
    const char *dd = getenv("MT_DATA_DIR");
    char data[4200], vf[4300], mf[4300];
    snprintf(data, sizeof data, "%s", dd && *dd ? dd : "");
    if (!*data) snprintf(data, sizeof data, "%s/data", g_src);
    snprintf(vf, sizeof vf, "%s/gpt2-vocab/encoder.json", data);
    snprintf(mf, sizeof mf, "%s/gpt2-vocab/vocab.bpe", data);
    if (!mt_file_exists(vf) || !mt_file_exists(mf)) {
        tap_skip("no GPT-2 vocabulary (set MT_DATA_DIR)", "BPE default split");
        tap_skip("no GPT-2 vocabulary (set MT_DATA_DIR)", "BPE strict split");
        return;
    }
    struct mt_tokenizer bpe;
    mt_tokenizer_open(&bpe, "GPT2BPETokenizer", vf, mf, 0);
    const char *text = "They drove through the county of Worcestershire";
    int32_t *c, *g;
    size_t nc, ng, nall;
    const char *err;
    int32_t *all = mt_tokenizer_encode_all(&bpe, text, strlen(text), &nall);
    int rc = mt_lambada_split(&bpe, text, strlen(text), 0, &c, &nc, &g, &ng, &err);
    tap_ok(rc == 0 && ng == 1 && nc == nall - 1 && g[0] == all[nall - 1] &&
               memcmp(c, all, nc * sizeof *c) == 0,
           "BPE default split: the last of %zu tokens is the target", nall);
    free(c), free(g);
    rc = mt_lambada_split(&bpe, text, strlen(text), 1, &c, &nc, &g, &ng, &err);
    char *cs = rc == 0 ? decode(&bpe, c, nc) : NULL, *gs = rc == 0 ? decode(&bpe, g, ng) : NULL;
    tap_ok(rc == 0 && ng > 1 && strcmp(gs, " Worcestershire") == 0 &&
               strcmp(cs, "They drove through the county of") == 0,
           "BPE strict split: target \" Worcestershire\" is %zu tokens", ng);
    free(cs), free(gs), free(c), free(g), free(all);
    mt_tokenizer_close(&bpe);
}

static void test_lambada_examples(void)
{
    int32_t ctx[10], tgt[2] = {100, 101};
    for (int i = 0; i < 10; i++) ctx[i] = i;
    struct mt_lambada_example e;
    int rc = mt_lambada_example_make(&e, ctx, 10, tgt, 2, 20);
    tap_ok(rc == 0 && e.n == 12 && e.ntgt == 2 && e.seq[0] == 0 && e.seq[10] == 100,
           "example fits: context + target kept whole");
    mt_lambada_example_free(&e);
    rc = mt_lambada_example_make(&e, ctx, 10, tgt, 2, 5);
    tap_ok(rc == 0 && e.n == 6 && e.seq[0] == 6 && e.seq[3] == 9 && e.seq[4] == 100 &&
               e.seq[5] == 101,
           "too long: the last seq_length + 1 tokens are kept (context cut from the left)");
    mt_lambada_example_free(&e);
    tap_ok(mt_lambada_example_make(&e, ctx, 10, tgt, 2, 1) == -1, "target longer than seq_length: refused");
    tap_ok(mt_lambada_example_make(&e, ctx, 0, tgt, 2, 8) == -1, "empty context: refused");
}

static void test_accuracy_rule(void)
{
    enum { VP = 8, V = 6 };
    float rows[3][VP] = {
        {0.1f, 0.9f, 0.2f, 0.3f, 0.0f, 0.0f, 0.0f, 0.0f},
        {0.0f, 0.0f, 2.0f, 0.0f, 1.0f, 0.0f, 0.0f, 9.0f}, /* id 7 is padding */
        {0.0f, 0.5f, 3.0f, 0.0f, 3.0f, 0.0f, 0.0f, 0.0f}, /* tie between 2 and 4 */
    };
    int32_t l1[] = {1};
    tap_ok(mt_lambada_correct(rows[0], VP, V, l1, 1) == 1, "argmax = label: correct");
    int32_t l0[] = {3};
    tap_ok(mt_lambada_correct(rows[0], VP, V, l0, 1) == 0, "argmax != label: wrong");
    int32_t lp[] = {2};
    tap_ok(mt_lambada_correct(rows[1], VP, V, lp, 1) == 1,
           "a padded id with the largest logit is never predicted");
    int32_t lt2[] = {2}, lt4[] = {4};
    tap_ok(mt_lambada_correct(rows[2], VP, V, lt2, 1) == 1 &&
               mt_lambada_correct(rows[2], VP, V, lt4, 1) == 0,
           "ties: the first index is the prediction (torch.argmax)");
    int32_t all_ok[] = {1, 2, 2}, one_bad[] = {1, 2, 4};
    tap_ok(mt_lambada_correct(&rows[0][0], VP, V, all_ok, 3) == 1 &&
               mt_lambada_correct(&rows[0][0], VP, V, one_bad, 3) == 0,
           "several target tokens: correct only if every position matches");
}

/* ---- JSON ---------------------------------------------------------------------------- */

static void test_json(void)
{
    const char *err;
    size_t ep, n;
    const char *l1 = "{\"text\": \"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00\\/\"}";
    char *s = mt_json_get_string(l1, strlen(l1), "text", &n, &err, &ep);
    tap_ok(s && n == 13 && memcmp(s, "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80/", 13) == 0,
           "JSON escapes, \\u and surrogate pairs decode to UTF-8");
    free(s);
    const char *l2 = " {\"id\": -3.5e2, \"x\": [1, {\"y\": null}, true, \"}\"], \"text\": \"t\"} \r";
    s = mt_json_get_string(l2, strlen(l2), "text", &n, &err, &ep);
    tap_ok(s && n == 1 && s[0] == 't', "other members (numbers, arrays, objects) are skipped");
    free(s);
    const char *l3 = "{\"text\": \"first\", \"text\": \"last\"}";
    s = mt_json_get_string(l3, strlen(l3), "text", &n, &err, &ep);
    tap_ok(s && strcmp(s, "last") == 0, "a repeated key: the last wins (as Python's json)");
    free(s);
    static const char *const bad[] = {
        "[\"text\"]", "{\"txt\": \"x\"}", "{\"text\": \"abc", "{\"text\": 3}", "{\"text\": \"a\"} x",
        "{\"text\": \"a\tb\"}", "{\"text\": \"\\q\"}", "{\"text\" \"a\"}", "{\"text\": \"a\",}", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = NULL;
        s = mt_json_get_string(bad[i], strlen(bad[i]), "text", &n, &err, &ep);
        tap_ok(!s && err, "malformed '%s' -> \"%s\" at %zu", shown(bad[i], 0), err ? err : "(none)", ep);
        free(s);
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    if (!mt_test_find_srcdir(argv[0], "tests/data/detok_cases.jsonl", g_src, sizeof g_src)) {
        printf("Bail out! cannot find tests/data/detok_cases.jsonl (set MT_SRCDIR)\n");
        return 99;
    }
    test_detok_rules();
    test_detok_reference();
    test_original_tokens();
    test_windows();
    test_ppl_formulas();
    char err[256];
    mt_backend *be = mt_backend_init("cpu", err, sizeof err);
    if (!be) {
        printf("Bail out! %s\n", err);
        return 99;
    }
    test_model_loss(be);
    mt_backend_free(be);
    test_lambada_split();
    test_lambada_examples();
    test_accuracy_rule();
    test_json();
    return tap_done();
}
