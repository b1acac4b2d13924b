/* forward.c: `megatron-c forward`, the model's outputs for given inputs,
 * to check a model against another implementation or a later version.
 *
 * Each line of --input is a JSON object with "input_ids" (a list of token
 * ids) or "text" (tokenized with the model's tokenizer), and for BERT
 * optionally "token_type_ids" and "attention_mask" (ones, then zeros for
 * the padding) of the same length. --output is a safetensors file holding,
 * for line i, "logits.<i>" (T x vocabulary, the padded vocabulary
 * excluded; models with a language-model head), "last_hidden_state.<i>"
 * (T x hidden, after the final norm) and "seq_logits.<i>" (the classes of
 * a sequence head: BERT's sentence-order head, a classifier), f32, as
 * Hugging Face's model(...).logits (prediction_logits), .hidden_states[-1]
 * (or last_hidden_state of the base model) and seq_relationship_logits (or
 * the classifier's logits) give them. */
#include "cmd/commands.h"
#include "cmd/common.h"
#include "core/args.h"
#include "core/error.h"
#include "core/io.h"
#include "core/json_value.h"
#include "interop/safetensors.h"
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct forward_args {
    const char *load, *input, *output, *backend, *vocab_file, *merge_file;
    long ckpt_step;
    int tf32;
};

#define F(field) offsetof(struct forward_args, field)
static const struct mt_arg_spec SPECS[] = {
    MT_SPECS_LOAD,
    {"input", MT_ARG_STRING, F(input), "FILE", "JSON lines: {\"input_ids\": [...]} or {\"text\": \"...\"} (required)"},
    {"output", MT_ARG_STRING, F(output), "FILE", "the safetensors file to write (required)"},
    MT_SPECS_BACKEND,
    MT_SPECS_BPE_FILES,
};
#undef F
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

struct sequence {
    int32_t *ids, *types; /* types NULL: all 0 */
    size_t n;
    int32_t length;       /* the real tokens (attention_mask), n without a mask */
};

/* an optional list of n integers in [0, limit) under key, or NULL */
static int32_t *int_list(const struct mt_jvalue *v, const char *key, size_t n, int limit,
                         const char *path, long lineno)
{
    const struct mt_jvalue *a = mt_json_get(v, key);
    if (!a) return NULL;
    if (a->type != MT_J_ARRAY || (size_t)a->n != n)
        mt_user_error("give one entry per token", "%s:%ld: \"%s\" is not a list of %zu numbers", path,
                      lineno, key, n);
    int32_t *out = malloc((n ? n : 1) * sizeof *out);
    if (!out) mt_die("out of memory");
    for (int i = 0; i < a->n; i++) {
        const struct mt_jvalue *x = &a->v[i];
        if (x->type != MT_J_NUMBER || x->num != (double)(int64_t)x->num || x->num < 0 || x->num >= limit)
            mt_user_error(NULL, "%s:%ld: %s[%d] is not an integer in [0, %d)", path, lineno, key, i, limit);
        out[i] = (int32_t)x->num;
    }
    return out;
}

/* The ids of one input line (1-based lineno for messages). */
static struct sequence parse_line(const char *path, long lineno, const char *line, size_t len,
                                  const struct mt_tokenizer *tok, int max_len, int types)
{
    struct sequence s = {NULL, NULL, 0, 0};
    struct mt_jvalue v;
    char err[200];
    if (mt_json_parse(line, len, &v, err, sizeof err) != 0)
        mt_user_error("each line is a JSON object: {\"input_ids\": [...]} or {\"text\": \"...\"}",
                      "%s:%ld: %s", path, lineno, err);
    const struct mt_jvalue *ids = mt_json_get(&v, "input_ids");
    const char *text = mt_json_get_str(&v, "text");
    if (ids && ids->type == MT_J_ARRAY) {
        s.n = (size_t)ids->n;
        s.ids = malloc((s.n ? s.n : 1) * sizeof *s.ids);
        if (!s.ids) mt_die("out of memory");
        for (int i = 0; i < ids->n; i++) {
            const struct mt_jvalue *x = &ids->v[i];
            if (x->type != MT_J_NUMBER || x->num != (double)(int64_t)x->num || x->num < 0 ||
                x->num >= tok->vocab_size)
                mt_user_error(NULL, "%s:%ld: input_ids[%d] is not a token id of this model's vocabulary "
                              "[0, %d)", path, lineno, i, tok->vocab_size);
            s.ids[i] = (int32_t)x->num;
        }
    } else if (text) {
        s.ids = mt_tokenizer_encode_all(tok, text, strlen(text), &s.n);
    } else {
        mt_user_error("each line is a JSON object: {\"input_ids\": [...]} or {\"text\": \"...\"}",
                      "%s:%ld: neither \"input_ids\" (a list) nor \"text\" (a string)", path, lineno);
    }
    if (s.n == 0) mt_user_error(NULL, "%s:%ld: the input is empty", path, lineno);
    s.types = int_list(&v, "token_type_ids", s.n, types > 0 ? types : 1, path, lineno);
    int32_t *mask = int_list(&v, "attention_mask", s.n, 2, path, lineno);
    s.length = (int32_t)s.n;
    if (mask) {
        int32_t k = 0;
        while (k < (int32_t)s.n && mask[k]) k++;
        for (size_t i = (size_t)k; i < s.n; i++)
            if (mask[i])
                mt_user_error("padding goes after the tokens", "%s:%ld: attention_mask is not ones "
                              "followed by zeros", path, lineno);
        if (k == 0) mt_user_error(NULL, "%s:%ld: attention_mask masks every token", path, lineno);
        s.length = k;
        free(mask);
    }
    mt_json_free(&v);
    if (s.n > (size_t)max_len) {
        char hint[96];
        snprintf(hint, sizeof hint, "the model has %d positions", max_len);
        mt_user_error(hint, "%s:%ld: %zu tokens is longer than the model's context", path, lineno, s.n);
    }
    return s;
}

int mt_cmd_forward(int argc, char **argv)
{
    struct forward_args a = {.backend = "cpu", .ckpt_step = -1};
    mt_args_parse(SPECS, NSPECS, &a, NULL, argc, argv, 2, "forward",
                  "Writes the logits and the last hidden state of the model for each input line.");
    if (!a.load || !a.input || !a.output)
        mt_user_error("write megatron-c forward --load CKPT --input FILE.jsonl --output OUT.safetensors",
                      "forward needs --load, --input and --output");
    struct mt_model_source src;
    mt_cmd_open_source(&src, a.load, a.ckpt_step, "run forward");
    struct mt_tokenizer tok;
    mt_cmd_open_tokenizer(&src, &tok, a.vocab_file, a.merge_file);
    const struct mt_transformer_config *c = &src.desc.model;

    /* the inputs first: the output's header lists every tensor */
    size_t len;
    char *text = mt_read_file(a.input, &len, "--input");
    struct sequence *seq = NULL;
    int nseq = 0, cap = 0, maxT = 1;
    long lineno = 0;
    for (char *line = text; line < text + len;) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        size_t n = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
        lineno++;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k < n) {
            if (nseq == cap) {
                cap = cap ? 2 * cap : 16;
                seq = realloc(seq, (size_t)cap * sizeof *seq);
                if (!seq) mt_die("out of memory");
            }
            seq[nseq] = parse_line(a.input, lineno, line, n, &tok, c->max_position_embeddings,
                                   c->type_vocab_size);
            if ((int)seq[nseq].n > maxT) maxT = (int)seq[nseq].n;
            nseq++;
        }
        line += n + 1;
    }
    free(text);
    if (nseq == 0) mt_user_error("give one JSON object per line", "%s holds no input", a.input);

    mt_backend *be = mt_backend_open(a.backend, a.tf32);
    struct mt_model m;
    mt_cmd_load_model(&src, &m, be, 1, maxT);
    struct mt_st_writer *w = mt_st_writer_new(a.output);
    mt_st_writer_metadata(w, "source", a.load);
    char name[64];
    const int lm = c->lm_head != MT_LM_HEAD_NONE, K = mt_config_seq_classes(c);
    for (int i = 0; i < nseq; i++) {
        const int64_t lshape[2] = {(int64_t)seq[i].n, c->vocab_size}, hshape[2] = {(int64_t)seq[i].n, c->hidden_size};
        const int64_t sshape[2] = {1, K};
        snprintf(name, sizeof name, "logits.%d", i);
        if (lm) mt_st_writer_declare(w, name, MT_ST_F32, 2, lshape);
        snprintf(name, sizeof name, "last_hidden_state.%d", i);
        mt_st_writer_declare(w, name, MT_ST_F32, 2, hshape);
        snprintf(name, sizeof name, "seq_logits.%d", i);
        if (K) mt_st_writer_declare(w, name, MT_ST_F32, 2, sshape);
    }
    float *host = malloc((size_t)maxT * (size_t)(c->vocab_size > c->hidden_size ? c->vocab_size : c->hidden_size) *
                         sizeof *host);
    if (!host) mt_die("out of memory");
    for (int i = 0; i < nseq; i++) {
        const struct mt_batch b = {1, (int)seq[i].n, seq[i].ids, seq[i].types,
                                   seq[i].length < (int32_t)seq[i].n ? &seq[i].length : NULL, NULL, NULL, NULL,
                                   NULL, NULL};
        mt_model_forward_batch(&m, &b, 0);
        if (lm) {
            mt_tensor_download(be, host, m.logits);
            snprintf(name, sizeof name, "logits.%d", i);
            mt_st_writer_data(w, name, host);
        }
        mt_tensor_download(be, host, mt_model_last_hidden(&m));
        snprintf(name, sizeof name, "last_hidden_state.%d", i);
        mt_st_writer_data(w, name, host);
        if (K) {
            mt_tensor_download(be, host, mt_model_seq_logits(&m));
            snprintf(name, sizeof name, "seq_logits.%d", i);
            mt_st_writer_data(w, name, host);
        }
        free(seq[i].ids);
        free(seq[i].types);
    }
    mt_st_writer_close(w);
    printf("megatron-c forward: %d input%s through %s -> %s\n", nseq, nseq == 1 ? "" : "s", a.load, a.output);
    free(host);
    free(seq);
    mt_model_free(&m);
    mt_backend_free(be);
    mt_tokenizer_close(&tok);
    mt_cmd_close_source(&src);
    return 0;
}
