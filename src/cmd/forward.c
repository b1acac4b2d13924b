/* forward.c: `megatron-c forward`, the model's outputs for given inputs,
 * to check a model against another implementation or a later version.
 *
 * Each line of --input is a JSON object with "input_ids" (a list of token
 * ids) or "text" (tokenized with the model's tokenizer). --output is a
 * safetensors file holding, for line i, "logits.<i>" (T x vocabulary, the
 * padded vocabulary excluded) and "last_hidden_state.<i>" (T x hidden,
 * after the final norm), f32, as Hugging Face's model(...).logits and
 * .hidden_states[-1] (or last_hidden_state of the base model) give them. */
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
    int32_t *ids;
    size_t n;
};

/* The ids of one input line (1-based lineno for messages). */
static struct sequence parse_line(const char *path, long lineno, const char *line, size_t len,
                                  const struct mt_tokenizer *tok, int max_len)
{
    struct sequence s = {NULL, 0};
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
    mt_json_free(&v);
    if (s.n == 0) mt_user_error(NULL, "%s:%ld: the input is empty", path, lineno);
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
            seq[nseq] = parse_line(a.input, lineno, line, n, &tok, c->max_position_embeddings);
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
    for (int i = 0; i < nseq; i++) {
        const int64_t lshape[2] = {(int64_t)seq[i].n, c->vocab_size}, hshape[2] = {(int64_t)seq[i].n, c->hidden_size};
        snprintf(name, sizeof name, "logits.%d", i);
        mt_st_writer_declare(w, name, MT_ST_F32, 2, lshape);
        snprintf(name, sizeof name, "last_hidden_state.%d", i);
        mt_st_writer_declare(w, name, MT_ST_F32, 2, hshape);
    }
    float *host = malloc((size_t)maxT * (size_t)(c->vocab_size > c->hidden_size ? c->vocab_size : c->hidden_size) *
                         sizeof *host);
    if (!host) mt_die("out of memory");
    for (int i = 0; i < nseq; i++) {
        mt_model_forward(&m, seq[i].ids, NULL, 1, (int)seq[i].n, 0);
        mt_tensor_download(be, host, m.logits);
        snprintf(name, sizeof name, "logits.%d", i);
        mt_st_writer_data(w, name, host);
        mt_tensor_download(be, host, mt_model_last_hidden(&m));
        snprintf(name, sizeof name, "last_hidden_state.%d", i);
        mt_st_writer_data(w, name, host);
        free(seq[i].ids);
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
