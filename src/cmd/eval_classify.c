/* eval_classify.c: `megatron-c eval --task classify`: a fine-tuned
 * classifier (finetune's --save) over labelled texts: the accuracy, the
 * confusion matrix (rows: the true class, columns: the predicted one), and
 * with --output the predicted class of every example, one per line (its
 * label name when the checkpoint has names). A file without labels is
 * accepted with --output (prediction only). */
#include "cmd/commands.h"
#include "cmd/common.h"
#include "core/args.h"
#include "core/error.h"
#include "data/classify_data.h"
#include "eval/classify.h"
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct classify_args {
    const char *load, *task, *data, *output, *labels, *backend, *vocab_file, *merge_file, *log_json;
    long ckpt_step;
    int micro_batch_size, seq_length, tf32;
};

#define F(field) offsetof(struct classify_args, field)
static const struct mt_arg_spec SPECS[] = {
    MT_SPECS_LOAD,
    {"task", MT_ARG_STRING, F(task), "S", "classify"},
    {"data", MT_ARG_STRING, F(data), "FILE", "TSV (text<TAB>label) or JSON lines {\"text\", \"label\"} (required)"},
    {"output", MT_ARG_STRING, F(output), "FILE", "write the predicted class of each example, one per line"},
    {"labels", MT_ARG_STRING, F(labels), "A,B,...", "class names as the data writes them (default: the checkpoint's)"},
    {"seq-length", MT_ARG_INT, F(seq_length), "N", "tokens per example (default: the checkpoint's)"},
    {"micro-batch-size", MT_ARG_INT, F(micro_batch_size), "N", "examples per forward pass (32)"},
    MT_SPECS_BACKEND,
    {"log-json", MT_ARG_STRING, F(log_json), "FILE", "also write the result as one JSON object"},
    MT_SPECS_BPE_FILES,
};
#undef F
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

static void print_matrix(const struct mt_class_score *s, const char *const *names)
{
    char name[16];
    printf(" confusion matrix (rows: true class, columns: predicted):\n %10s ", "");
    for (int j = 0; j < s->K; j++) {
        snprintf(name, sizeof name, "%d", j);
        printf(" %10.10s", names ? names[j] : name);
    }
    printf("\n");
    for (int i = 0; i < s->K; i++) {
        snprintf(name, sizeof name, "%d", i);
        printf(" %10.10s ", names ? names[i] : name);
        for (int j = 0; j < s->K; j++) printf(" %10ld", s->confusion[(size_t)i * s->K + j]);
        printf("\n");
    }
}

int mt_cmd_eval_classify(int argc, char **argv)
{
    struct classify_args a = {.backend = "cpu", .ckpt_step = -1, .micro_batch_size = 32};
    mt_args_parse(SPECS, NSPECS, &a, NULL, argc, argv, 2, "eval --task classify",
                  "Accuracy and confusion matrix of a fine-tuned classifier over labelled texts.");
    if (!a.load || !a.data)
        mt_user_error("write eval --task classify --load DIR --data FILE", "eval --task classify needs --load and --data");
    if (a.micro_batch_size < 1) mt_user_error(NULL, "--micro-batch-size must be positive");
    struct mt_model_source src;
    mt_cmd_open_source(&src, a.load, a.ckpt_step, "evaluate");
    const struct mt_transformer_config *c = &src.desc.model;
    if (c->seq_head != MT_SEQ_HEAD_CLASSIFY)
        mt_user_error("evaluate a checkpoint written by megatron-c finetune (or a Hugging Face "
                      "BertForSequenceClassification)", "%s has no classification head", a.load);
    const int K = c->num_classes;
    const char *names[64];
    int nnames = 0;
    char buf[512] = "";
    const char *labels = a.labels ? a.labels : mt_kv_get(&src.kv, "class_labels");
    if (labels) {
        snprintf(buf, sizeof buf, "%s", labels);
        nnames = mt_class_names(buf, names, 64);
        if (nnames != K)
            mt_user_error("give one name per class", "--labels names %d classes, the model has %d", nnames, K);
    }
    struct mt_tokenizer tok;
    mt_cmd_open_tokenizer(&src, &tok, a.vocab_file, a.merge_file);
    struct mt_class_read ro = {K, names, nnames, "text", "label", 0, a.output != NULL};
    struct mt_class_data d;
    mt_class_data_read(&d, a.data, &tok, &ro);
    long saved_T = 0;
    const char *st = mt_kv_get(&src.kv, "seq_length");
    if (st) saved_T = strtol(st, NULL, 10);
    const int T = a.seq_length > 0 ? a.seq_length : saved_T > 0 ? (int)saved_T : c->max_position_embeddings;
    if (T > c->max_position_embeddings)
        mt_user_error("lower --seq-length", "--seq-length %d is longer than the model's %d positions", T,
                      c->max_position_embeddings);
    mt_backend *be = mt_backend_open(a.backend, a.tf32);
    struct mt_model m;
    mt_cmd_load_model(&src, &m, be, a.micro_batch_size, T);
    int *pred = malloc(d.n * sizeof *pred);
    if (!pred) mt_die("out of memory");
    mt_classify_predict(&m, &tok, &d, pred);
    struct mt_class_score s;
    mt_classify_score(&d, pred, K, &s);
    printf("megatron-c eval --task classify: %s on %s: %zu examples\n", a.load, a.data, d.n);
    if (s.total) {
        printf(" accuracy %.4f (%zu / %zu)\n", (double)s.correct / (double)s.total, s.correct, s.total);
        print_matrix(&s, nnames ? names : NULL);
    }
    if (a.output) {
        FILE *f = fopen(a.output, "w");
        if (!f) mt_user_error("check the path given to --output", "cannot open %s for writing", a.output);
        for (size_t i = 0; i < d.n; i++) {
            if (nnames) fprintf(f, "%s\n", names[pred[i]]);
            else fprintf(f, "%d\n", pred[i]);
        }
        if (fclose(f) != 0) mt_user_error("check the disk", "cannot write %s", a.output);
    }
    if (a.log_json) {
        FILE *f = fopen(a.log_json, "w");
        if (!f) mt_user_error("check the path given to --log-json", "cannot open %s for writing", a.log_json);
        fprintf(f, "{\"task\": \"classify\", \"accuracy\": %.9g, \"correct\": %zu, \"total\": %zu, \"confusion\": [",
                s.total ? (double)s.correct / (double)s.total : 0.0, s.correct, s.total);
        for (int i = 0; i < K * K; i++) fprintf(f, "%s%ld", i ? ", " : "", s.confusion[i]);
        fprintf(f, "]}\n");
        if (fclose(f) != 0) mt_user_error("check the disk", "cannot write %s", a.log_json);
    }
    mt_classify_score_free(&s);
    free(pred);
    mt_class_data_free(&d);
    mt_model_free(&m);
    mt_backend_free(be);
    mt_tokenizer_close(&tok);
    mt_cmd_close_source(&src);
    return 0;
}
