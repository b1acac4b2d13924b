/* eval.c: `megatron-c eval`, Megatron-LM's zero-shot GPT evaluations
 * (tasks/zeroshot_gpt): WikiText perplexity with sliding windows
 * (--task wikitext, Megatron's WIKITEXT103) and LAMBADA last-word accuracy
 * (--task lambada). The pieces are in src/eval/tasks.c; the formulas and the
 * differences from Megatron are in doc/evaluation.md. */
#include "core/args.h"
#include "core/error.h"
#include "core/io.h"
#include "data/tokenizer.h"
#include "cmd/commands.h"
#include "cmd/common.h"
#include "eval/tasks.h"
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct eval_args {
    const char *load, *task, *data, *backend, *log_json, *vocab_file, *merge_file;
    long ckpt_step, max_examples;
    int seq_length, overlapping_eval, micro_batch_size;
    int strict_lambada, no_detokenize, no_progress, tf32;
};

#define F(field) offsetof(struct eval_args, field)
static const struct mt_arg_spec SPECS[] = {
    MT_SPECS_LOAD,
    {"task", MT_ARG_STRING, F(task), "S", "wikitext (perplexity) | lambada (accuracy) | classify (accuracy of a fine-tuned classifier; its own flags)"},
    {"data", MT_ARG_STRING, F(data), "FILE", "wikitext: raw WikiText text; lambada: {\"text\": ...} lines (required for those two)"},
    {"seq-length", MT_ARG_INT, F(seq_length), "N", "window/example length (default: the checkpoint's)"},
    {"overlapping-eval", MT_ARG_INT, F(overlapping_eval), "N", "wikitext: window stride = tokens scored per window (32)"},
    {"strict-lambada", MT_ARG_BOOL, F(strict_lambada), NULL, "lambada: predict the whole last word, not its last token"},
    {"no-detokenize", MT_ARG_BOOL, F(no_detokenize), NULL, "wikitext: skip the WikiText detokenizer"},
    {"micro-batch-size", MT_ARG_INT, F(micro_batch_size), "N", "windows or examples per forward pass (4)"},
    {"max-examples", MT_ARG_LONG, F(max_examples), "N", "only the first N windows / examples (0 = all)"},
    MT_SPECS_BACKEND,
    {"log-json", MT_ARG_STRING, F(log_json), "FILE", "also write the result as one JSON object (none)"},
    MT_SPECS_BPE_FILES,
    {"no-progress", MT_ARG_BOOL, F(no_progress), NULL, "no progress display on the terminal"},
};
#undef F
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

static const char *SYNOPSIS =
    "Evaluates a checkpoint zero-shot, as Megatron-LM's tasks/zeroshot_gpt:\n"
    "  --task wikitext: perplexity over the whole --data file (detokenized with\n"
    "    Megatron's WikiText detokenizer, then tokenized) in sliding windows of\n"
    "    --seq-length tokens moving by --overlapping-eval; prints the loss, ppl =\n"
    "    exp(loss) and the word-level adjusted ppl.\n"
    "  --task lambada: last-word accuracy over a JSON-lines file of passages;\n"
    "    correct iff the argmax at every target position is the target token.\n"
    "See doc/evaluation.md.";

/* ---- progress display on a terminal ---------------------------------------------- */

struct progress {
    int on;
    double t0;
    const char *what;
};

static void progress_show(struct progress *p, size_t done, size_t total)
{
    if (!p->on || total == 0) return;
    double el = mt_now() - p->t0;
    double eta = done ? el / (double)done * (double)(total - done) : 0;
    int width = 30, fill = (int)((double)width * (double)done / (double)total);
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r\033[K[%s] %zu/%zu %s  eta %dm%02ds", bar, done, total, p->what,
            (int)eta / 60, (int)eta % 60);
    fflush(stderr);
}

static void progress_clear(struct progress *p)
{
    if (p->on) fputs("\r\033[K", stderr);
}

/* ---- the model ------------------------------------------------------------------------ */

struct evaluator {
    struct eval_args a;
    struct mt_model_source ck;
    struct mt_tokenizer tok;
    mt_backend *be;
    struct mt_model m;
    int seq, B;
    int32_t pad;
    struct progress prog;
    FILE *json;
};

static void load_model(struct evaluator *e)
{
    struct eval_args *a = &e->a;
    mt_cmd_open_source(&e->ck, a->load, a->ckpt_step, "evaluate");
    mt_cmd_need_decoder(&e->ck, "be evaluated on wikitext or lambada");
    const struct mt_transformer_config *g = &e->ck.desc.model;
    mt_cmd_open_tokenizer(&e->ck, &e->tok, a->vocab_file, a->merge_file);
    /* Megatron pads with the end-of-document id; CharLevel has none */
    e->pad = e->tok.eod >= 0 ? e->tok.eod : 0;

    /* --seq-length: given, else the training run's, else the position table */
    e->seq = a->seq_length;
    if (e->seq == 0) {
        const char *v = mt_kv_get(&e->ck.kv, "seq_length");
        char *end = NULL;
        long s = v ? strtol(v, &end, 10) : 0;
        e->seq = (v && *end == 0 && s >= 1 && s <= g->max_position_embeddings)
                     ? (int)s : g->max_position_embeddings;
    }
    if (e->seq < 1) mt_user_error(NULL, "--seq-length must be a positive integer (got %d)", e->seq);
    if (e->seq > g->max_position_embeddings) {
        char hint[160];
        snprintf(hint, sizeof hint, "use --seq-length %d or less", g->max_position_embeddings);
        mt_user_error(hint, "--seq-length %d is longer than the position table of %s (%d positions)",
                      e->seq, e->ck.path, g->max_position_embeddings);
    }

    e->be = mt_backend_open(a->backend, a->tf32);
    mt_cmd_load_model(&e->ck, &e->m, e->be, e->B, e->seq);
}

/* A result line between two rules of its length + 1, as Megatron prints it. */
static void print_boxed(const char *line, int n)
{
    for (int i = 0; i <= n; i++) putchar('-');
    printf("\n%s\n", line);
    for (int i = 0; i <= n; i++) putchar('-');
    printf("\n");
    fflush(stdout);
}

static void print_header(struct evaluator *e, const char *what)
{
    const struct mt_transformer_config *g = &e->ck.desc.model;
    printf("megatron-c eval: %s\n", what);
    printf(" checkpoint %s: GPT %d layers, hidden %d, %d heads, vocab %d (padded %d), %s tokenizer\n",
           e->ck.path, g->num_layers, g->hidden_size, g->num_attention_heads, g->vocab_size,
           g->padded_vocab_size, e->tok.type);
    fflush(stdout);
}

/* a JSON string literal (for paths) */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, const char *key, double v, int last)
{
    if (isfinite(v)) fprintf(f, "\"%s\": %.9g%s", key, v, last ? "" : ", ");
    else fprintf(f, "\"%s\": null%s", key, last ? "" : ", ");
}

/* ---- WikiText perplexity -------------------------------------------------------------- */

static void eval_wikitext(struct evaluator *e, char *raw, size_t rawlen)
{
    struct eval_args *a = &e->a;
    const size_t num_original = mt_count_original_tokens(raw, rawlen);
    char *text = raw;
    size_t len = rawlen;
    if (!a->no_detokenize) text = mt_wikitext_detokenize(raw, rawlen, &len);
    size_t ntok;
    int32_t *tokens = mt_tokenizer_encode_all(&e->tok, text, len, &ntok);
    if (text != raw) free(text);
    if (ntok < 2)
        mt_user_error("give a text of at least two tokens",
                      "%s encodes to %zu token(s): nothing to score", a->data, ntok);

    int stride = a->overlapping_eval;
    if (stride == 0) stride = 32 <= e->seq ? 32 : e->seq; /* the default, capped */
    if (stride < 1 || stride > e->seq) {
        char hint[200];
        snprintf(hint, sizeof hint, "use --overlapping-eval between 1 and %d (--seq-length %d "
                 "scores every token once; smaller strides give each more context)", e->seq, e->seq);
        mt_user_error(hint, "--overlapping-eval %d is outside [1, --seq-length = %d]", stride,
                      e->seq);
    }

    /* --max-examples: the first windows only; the stream is cut after the
     * last token they score and num_original_tokens is scaled to match */
    const size_t ntok_full = ntok;
    size_t nwin = mt_eval_num_windows(ntok, e->seq, stride);
    int partial = 0;
    if (a->max_examples > 0 && (size_t)a->max_examples < nwin) {
        size_t cut = (size_t)(a->max_examples - 1) * (size_t)stride + (size_t)e->seq + 1;
        if (cut < ntok) {
            ntok = cut;
            partial = 1;
        }
        nwin = (size_t)a->max_examples;
    }
    size_t norig = num_original;
    if (partial) norig = (size_t)llround((double)num_original * (double)ntok / (double)ntok_full);

    char what[4400];
    snprintf(what, sizeof what, "WikiText perplexity of %s%s", a->data,
             a->no_detokenize ? " (not detokenized)" : "");
    print_header(e, what);
    printf(" %zu original tokens, %zu tokenized tokens%s; seq length %d, overlapping eval %d: "
           "%zu windows, %d per forward\n", num_original, ntok_full,
           partial ? " (partial run: see below)" : "", e->seq, stride, nwin, e->B);
    fflush(stdout);

    e->prog.what = "windows";
    e->prog.t0 = mt_now();
    double nll = 0.0;
    size_t scored = 0;
    const size_t chunk = (size_t)e->B * 8;
    for (size_t w0 = 0; w0 < nwin; w0 += chunk) {
        size_t w1 = w0 + chunk < nwin ? w0 + chunk : nwin, c;
        nll += mt_eval_lm_nll(&e->m, tokens, ntok, e->seq, stride, w0, w1, e->B, e->pad, &c);
        scored += c;
        progress_show(&e->prog, w1, nwin);
    }
    progress_clear(&e->prog);
    MT_ASSERT(scored == ntok - 1);
    if (!isfinite(nll))
        mt_user_error("the checkpoint's weights are not finite (a diverged run?)",
                      "the loss over %s is not finite (%g)", a->data, nll);

    struct mt_ppl r;
    mt_eval_ppl(nll, ntok, norig, &r);
    if (partial)
        printf(" partial run (--max-examples %ld): the first %zu of %zu tokens; the adjusted ppl "
               "uses %zu original tokens, scaled by the same fraction\n",
               a->max_examples, ntok, ntok_full, norig);
    char adj[64], ratio[64];
    snprintf(adj, sizeof adj, isfinite(r.adjusted_ppl) ? "%.4E" : "n/a", r.adjusted_ppl);
    snprintf(ratio, sizeof ratio, isfinite(r.token_ratio) ? "%.6f" : "n/a", r.token_ratio);
    char line[512];
    int n = snprintf(line, sizeof line,
                     " validation results on WIKITEXT | avg loss: %.4E | ppl: %.4E | adjusted ppl: "
                     "%s | token ratio: %s |", r.loss, r.ppl, adj, ratio);
    print_boxed(line, n);
    if (e->json) {
        fprintf(e->json, "{\"task\": \"wikitext\", ");
        json_num(e->json, "loss", r.loss, 0);
        json_num(e->json, "ppl", r.ppl, 0);
        json_num(e->json, "adjusted_ppl", r.adjusted_ppl, 0);
        json_num(e->json, "token_ratio", r.token_ratio, 0);
        fprintf(e->json, "\"num_tokenized_tokens\": %zu, \"num_original_tokens\": %zu, "
                "\"seq_length\": %d, \"overlapping_eval\": %d, \"windows\": %zu, "
                "\"detokenized\": %s, \"partial\": %s, \"checkpoint\": ",
                ntok, norig, e->seq, stride, nwin, a->no_detokenize ? "false" : "true",
                partial ? "true" : "false");
        json_str(e->json, e->ck.path);
        fprintf(e->json, "}\n");
    }
    free(tokens);
}

/* ---- LAMBADA accuracy ----------------------------------------------------------------- */

static void eval_lambada(struct evaluator *e, char *data, size_t len)
{
    struct eval_args *a = &e->a;
    size_t cap = 1024, nex = 0, ntrunc = 0;
    struct mt_lambada_example *ex = malloc(cap * sizeof *ex);
    if (!ex) mt_die("out of memory");
    /* parse and tokenize every example first: a bad line fails before any work */
    size_t pos = 0;
    long lineno = 0;
    while (pos < len && !(a->max_examples > 0 && nex >= (size_t)a->max_examples)) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl != NULL);
        lineno++;
        size_t k = 0;
        while (k < ll && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k == ll) continue; /* blank line */
        const char *err;
        size_t err_pos, tlen;
        char *text = mt_json_get_string(line, ll, "text", &tlen, &err, &err_pos);
        if (!text) {
            if (strcmp(err, "the key is missing") == 0)
                mt_user_error("each line must be a JSON object with a \"text\" string, like "
                              "{\"text\": \"...\"} (OpenAI's lambada_test.jsonl)",
                              "%s:%ld: no \"text\" key", a->data, lineno);
            mt_user_error("each line must be a JSON object with a \"text\" string, like "
                          "{\"text\": \"...\"} (OpenAI's lambada_test.jsonl)",
                          "%s:%ld: malformed JSON at column %zu: %s", a->data, lineno,
                          err_pos + 1, err);
        }
        int32_t *ctx, *tgt;
        size_t nctx, ntgt;
        if (mt_lambada_split(&e->tok, text, tlen, a->strict_lambada, &ctx, &nctx, &tgt, &ntgt,
                             &err) != 0)
            mt_user_error("every passage needs a context and a last word to predict",
                          "%s:%ld: %s", a->data, lineno, err);
        if (nex == cap) {
            cap *= 2;
            ex = realloc(ex, cap * sizeof *ex);
            if (!ex) mt_die("out of memory");
        }
        if (mt_lambada_example_make(&ex[nex], ctx, nctx, tgt, ntgt, e->seq) != 0) {
            char hint[160];
            snprintf(hint, sizeof hint, "raise --seq-length above %zu (at most the position table, %d)",
                     ntgt, e->ck.desc.model.max_position_embeddings);
            mt_user_error(hint, "%s:%ld: the target alone is %zu tokens, longer than --seq-length %d",
                          a->data, lineno, ntgt, e->seq);
        }
        if (nctx + ntgt > (size_t)e->seq + 1) ntrunc++;
        nex++;
        free(ctx);
        free(tgt);
        free(text);
    }
    if (nex == 0)
        mt_user_error("give a JSON-lines file with one {\"text\": \"...\"} passage per line",
                      "%s holds no LAMBADA example", a->data);

    char what[4400];
    snprintf(what, sizeof what, "LAMBADA accuracy on %s", a->data);
    print_header(e, what);
    printf(" %zu examples%s, target: %s; seq length %d, %d per forward\n", nex,
           a->max_examples > 0 ? " (--max-examples)" : "",
           a->strict_lambada ? "the whole last word (--strict-lambada)" : "the last token",
           e->seq, e->B);
    if (ntrunc)
        printf(" %zu example(s) longer than seq length + 1 tokens: their context was cut from the "
               "left\n", ntrunc);
    fflush(stdout);

    e->prog.what = "examples";
    e->prog.t0 = mt_now();
    size_t correct = 0;
    for (size_t i = 0; i < nex; i += (size_t)e->B) {
        int nb = (int)(nex - i < (size_t)e->B ? nex - i : (size_t)e->B);
        correct += (size_t)mt_eval_lambada_batch(&e->m, ex + i, nb, e->pad, NULL);
        progress_show(&e->prog, i + (size_t)nb, nex);
    }
    progress_clear(&e->prog);
    double acc = (double)correct / (double)nex;
    char line[512];
    int n = snprintf(line, sizeof line,
                     " validation results on LAMBADA | number correct: %.4E | total examples: %.4E "
                     "| avg accuracy: %.4E", (double)correct, (double)nex, acc);
    print_boxed(line, n);
    if (e->json) {
        fprintf(e->json, "{\"task\": \"lambada\", \"accuracy\": %.9g, \"correct\": %zu, "
                "\"total\": %zu, \"strict\": %s, \"seq_length\": %d, \"truncated\": %zu, "
                "\"checkpoint\": ", acc, correct, nex, a->strict_lambada ? "true" : "false", e->seq,
                ntrunc);
        json_str(e->json, e->ck.path);
        fprintf(e->json, "}\n");
    }
    for (size_t i = 0; i < nex; i++) mt_lambada_example_free(&ex[i]);
    free(ex);
}

/* ---- the command ---------------------------------------------------------------------- */

int mt_cmd_eval(int argc, char **argv)
{
    for (int i = 2; i + 1 < argc; i++) /* classify has its own flags */
        if (strcmp(argv[i], "--task") == 0 && strcasecmp(argv[i + 1], "classify") == 0)
            return mt_cmd_eval_classify(argc, argv);
    struct evaluator E, *e = &E;
    memset(e, 0, sizeof *e);
    struct eval_args *a = &e->a;
    a->backend = "cpu";
    a->ckpt_step = -1;
    a->micro_batch_size = 4;
    unsigned char given[NSPECS];
    memset(given, 0, sizeof given);
    mt_args_parse(SPECS, NSPECS, a, given, argc, argv, 2, "eval", SYNOPSIS);

    if (!a->task) mt_user_error("write --task wikitext or --task lambada", "eval needs --task");
    int lambada;
    if (strcasecmp(a->task, "wikitext") == 0 || strcasecmp(a->task, "wikitext103") == 0 ||
        strcasecmp(a->task, "wikitext2") == 0)
        lambada = 0;
    else if (strcasecmp(a->task, "lambada") == 0)
        lambada = 1;
    else
        mt_user_error("the tasks are wikitext (perplexity), lambada (accuracy) and classify",
                      "unknown --task '%s'", a->task);
    if (!a->data)
        mt_user_error(lambada ? "e.g. --data lambada_test.jsonl (OpenAI's LAMBADA test set)"
                              : "e.g. --data wikitext-2/test.txt (the raw wiki.test.tokens)",
                      "eval --task %s needs --data FILE", a->task);
    if (!a->load) mt_user_error("write --load DIR, the --save directory of a training run",
                                "eval needs --load");
    if (a->micro_batch_size < 1)
        mt_user_error(NULL, "--micro-batch-size must be a positive integer (got %d)",
                      a->micro_batch_size);
    if (a->max_examples < 0) mt_user_error(NULL, "--max-examples must not be negative");
    if (given[mt_args_find(SPECS, NSPECS, "seq-length")] && a->seq_length < 1)
        mt_user_error(NULL, "--seq-length must be a positive integer (got %d)", a->seq_length);
    if (given[mt_args_find(SPECS, NSPECS, "overlapping-eval")] && a->overlapping_eval < 1)
        mt_user_error("Megatron clamps it to 1; write --overlapping-eval 1 or more",
                      "--overlapping-eval must be a positive integer (got %d)", a->overlapping_eval);
    if (lambada && a->no_detokenize) mt_warn("--no-detokenize applies to --task wikitext only");
    if (!lambada && a->strict_lambada) mt_warn("--strict-lambada applies to --task lambada only");

    size_t len;
    char *data = mt_read_file(a->data, &len, "--data");
    e->B = a->micro_batch_size;
    load_model(e);
    if (a->log_json) {
        e->json = fopen(a->log_json, "w");
        if (!e->json)
            mt_user_error("check the path given to --log-json", "cannot open %s for writing",
                          a->log_json);
    }
    e->prog.on = !a->no_progress && isatty(2) && getenv("TERM") &&
                 strcmp(getenv("TERM"), "dumb") != 0;

    double t0 = mt_now();
    if (lambada) eval_lambada(e, data, len);
    else eval_wikitext(e, data, len);
    printf(" done in %.1f s\n", mt_now() - t0);

    if (e->json && fclose(e->json) != 0)
        mt_user_error("check the disk", "cannot write %s", a->log_json);
    free(data);
    mt_model_free(&e->m);
    mt_backend_free(e->be);
    mt_tokenizer_close(&e->tok);
    mt_cmd_close_source(&e->ck);
    return 0;
}
