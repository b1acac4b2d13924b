/* finetune.c: `megatron-c finetune`, a pretrained BERT or GPT fine-tuned
 * as a text classifier (Megatron's tasks/glue and tasks/finetune_utils.py
 * in spirit: a new classification head, epochs over the training set,
 * accuracy on the validation set after each, the best checkpoint kept).
 *
 * The model: the pretrained one (a megatron-c checkpoint or a Hugging Face
 * directory) with its language-model and binary heads dropped and a
 * classification head of --num-classes drawn from N(0, init std): on the
 * pooled first token for BERT (Megatron's Classification model; a pooler
 * the checkpoint lacks is drawn new as well), on the last real token for
 * GPT. Every other tensor is the pretrained one. Serial; AdamW with a
 * linear warmup over --lr-warmup-fraction of the steps and a linear decay
 * to 0. --task sst2 (2 classes) and spam (ham, spam) set the classes and
 * labels; classify takes --num-classes and optional --labels names. */
#include "cmd/commands.h"
#include "cmd/common.h"
#include "ckpt/checkpoint.h"
#include "ckpt/model_meta.h"
#include "core/args.h"
#include "core/error.h"
#include "core/io.h"
#include "core/rng.h"
#include "data/classify_data.h"
#include "eval/classify.h"
#include "optim/optimizer.h"
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct finetune_args {
    const char *task, *train_data, *valid_data, *pretrained, *save, *labels, *backend;
    const char *vocab_file, *merge_file, *log_json;
    long ckpt_step, seed, log_interval;
    int epochs, num_classes, seq_length, micro_batch_size, tf32;
    float lr, weight_decay, clip_grad, warmup_fraction, hidden_dropout;
};

#define F(field) offsetof(struct finetune_args, field)
static const struct mt_arg_spec SPECS[] = {
    {"task", MT_ARG_STRING, F(task), "S", "sst2 | spam | classify (required)"},
    {"train-data", MT_ARG_STRING, F(train_data), "FILE", "TSV (text<TAB>label) or JSON lines {\"text\", \"label\"} (required)"},
    {"valid-data", MT_ARG_STRING, F(valid_data), "FILE", "the same for validation (required; JSON lines with \"split\": its non-train records)"},
    {"pretrained-checkpoint", MT_ARG_STRING, F(pretrained), "DIR", "a megatron-c checkpoint or a Hugging Face directory (required)"},
    {"ckpt-step", MT_ARG_LONG, F(ckpt_step), "N", "megatron-c checkpoint: the iteration (default: the latest)"},
    {"save", MT_ARG_STRING, F(save), "DIR", "where the best checkpoint (highest validation accuracy) is kept (none)"},
    {"epochs", MT_ARG_INT, F(epochs), "N", "passes over the training set (3)"},
    {"num-classes", MT_ARG_INT, F(num_classes), "K", "classes (sst2 2, spam 2)"},
    {"labels", MT_ARG_STRING, F(labels), "A,B,...", "names of the classes 0, 1, ... as the data writes them (spam: ham,spam)"},
    {"seq-length", MT_ARG_INT, F(seq_length), "N", "tokens per example, longer texts cut (128)"},
    {"micro-batch-size", MT_ARG_INT, F(micro_batch_size), "N", "examples per step (32)"},
    {"lr", MT_ARG_FLOAT, F(lr), "X", "peak learning rate (5e-5)"},
    {"lr-warmup-fraction", MT_ARG_FLOAT, F(warmup_fraction), "X", "share of the steps warming up (0.065)"},
    {"weight-decay", MT_ARG_FLOAT, F(weight_decay), "X", "(0.01; none on biases and norms)"},
    {"clip-grad", MT_ARG_FLOAT, F(clip_grad), "X", "global gradient-norm clip (1.0)"},
    {"hidden-dropout", MT_ARG_FLOAT, F(hidden_dropout), "P", "dropout of the embedding, sublayers and attention (0.1)"},
    {"seed", MT_ARG_LONG, F(seed), "N", "new head, example order, dropout (1234)"},
    {"log-interval", MT_ARG_LONG, F(log_interval), "N", "steps per log line (50)"},
    {"log-json", MT_ARG_STRING, F(log_json), "FILE", "also write the log as JSON lines (none)"},
    MT_SPECS_BACKEND,
    MT_SPECS_BPE_FILES,
};
#undef F
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

static const char SYNOPSIS[] =
    "Fine-tunes a pretrained BERT or GPT (megatron-c or Hugging Face) as a text\n"
    "classifier: a new classification head, --epochs over --train-data, the accuracy\n"
    "on --valid-data after each epoch, the best checkpoint kept in --save.";

/* ---- the classifier built on the pretrained model ----------------------------------------- */

struct classifier {
    struct mt_transformer_config cfg;
    int bert; /* BERT: [CLS] ... [SEP], the pooled first token */
};

static struct classifier classifier_of(const struct mt_transformer_config *src, int K, float dropout)
{
    struct classifier c = {*src, src->type_vocab_size > 0 || src->attn_mask_type == MT_ATTN_MASK_NONE};
    c.cfg.lm_head = MT_LM_HEAD_NONE;
    c.cfg.seq_head = MT_SEQ_HEAD_CLASSIFY;
    c.cfg.num_classes = K;
    c.cfg.seq_token = c.bert ? MT_SEQ_TOKEN_FIRST : MT_SEQ_TOKEN_LAST;
    c.cfg.add_pooler = c.bert;
    c.cfg.hidden_dropout = c.cfg.attention_dropout = dropout;
    return c;
}

/* the pretrained tensors the classifier has, by name; the rest stay drawn */
static void load_pretrained(struct mt_model *m, const struct mt_model_source *src)
{
    struct mt_param_table t;
    float *w = mt_cmd_weights(src, &t);
    int loaded = 0;
    char fresh[512] = "";
    for (int i = 0; i < m->table.n; i++) {
        const struct mt_param *p = &m->table.p[i];
        const int k = mt_params_find(&t, p->name);
        if (k >= 0 && t.p[k].numel == p->numel) {
            mt_model_set_param(m, i, w + t.p[k].offset);
            loaded++;
        } else if (strlen(fresh) + strlen(p->name) + 3 < sizeof fresh) {
            snprintf(fresh + strlen(fresh), sizeof fresh - strlen(fresh), "%s%s", *fresh ? ", " : "", p->name);
        }
    }
    printf(" %d tensors from the pretrained model; new: %s\n", loaded, *fresh ? fresh : "none");
    mt_cmd_free_weights(src, &t, w);
}

/* the model's weights as a megatron-c checkpoint (no optimizer state) */
static void save_model(struct mt_model *m, const struct mt_model_desc *d, const char *dir, long epoch,
                       double accuracy, const char *task, const char *labels)
{
    struct mt_kv kv = {0};
    mt_model_desc_to_kv(d, &kv);
    mt_kv_set(&kv, "iteration", "%ld", epoch);
    mt_kv_set(&kv, "consumed_train_samples", "0");
    mt_kv_set(&kv, "optimizer_step", "0");
    mt_kv_set(&kv, "has_optimizer", "0");
    mt_kv_set(&kv, "seq_length", "%d", m->T);
    mt_kv_set(&kv, "finetune_task", "%s", task);
    mt_kv_set(&kv, "valid_accuracy", "%.9g", accuracy);
    if (labels) mt_kv_set(&kv, "class_labels", "%s", labels);
    struct mt_ckpt_writer *w = mt_ckpt_writer_open(dir, epoch, &kv, (uint32_t)m->table.n);
    char name[MT_PARAM_NAME_MAX + 16];
    float *host = NULL;
    size_t cap = 0;
    for (int i = 0; i < m->table.n; i++) {
        const struct mt_param *p = &m->table.p[i];
        if (p->numel > cap) {
            cap = p->numel;
            host = realloc(host, cap * sizeof *host);
            if (!host) mt_die("out of memory");
        }
        mt_model_get_param(m, i, host);
        snprintf(name, sizeof name, "model/%s", p->name);
        mt_ckpt_writer_tensor(w, name, p, host);
    }
    free(host);
    mt_ckpt_writer_close(w);
    mt_kv_free(&kv);
}

/* ---- the task -------------------------------------------------------------------------- */

static void task_defaults(struct finetune_args *a, const unsigned char *given)
{
    if (!a->task) mt_user_error("write --task sst2, spam or classify", "finetune needs --task");
    const int nc_given = given[mt_args_find(SPECS, NSPECS, "num-classes")];
    if (strcasecmp(a->task, "sst2") == 0) {
        if (!nc_given) a->num_classes = 2;
    } else if (strcasecmp(a->task, "spam") == 0) {
        if (!nc_given) a->num_classes = 2;
        if (!a->labels) a->labels = "ham,spam";
    } else if (strcasecmp(a->task, "classify") != 0) {
        mt_user_error("use sst2, spam or classify", "unknown --task '%s'", a->task);
    }
    if (a->num_classes < 2) mt_user_error("give --num-classes K (at least 2)", "--task %s needs --num-classes", a->task);
    if (!a->train_data || !a->valid_data || !a->pretrained)
        mt_user_error("see 'megatron-c finetune --help'",
                      "finetune needs --train-data, --valid-data and --pretrained-checkpoint");
    if (a->epochs < 1 || a->micro_batch_size < 1 || a->seq_length < 4 || a->log_interval < 1)
        mt_user_error(NULL, "--epochs, --micro-batch-size and --log-interval must be positive, --seq-length at least 4");
    if (!(a->lr >= 0) || !(a->warmup_fraction >= 0 && a->warmup_fraction < 1) ||
        !(a->hidden_dropout >= 0 && a->hidden_dropout < 1))
        mt_user_error(NULL, "--lr must not be negative; --lr-warmup-fraction and --hidden-dropout lie in [0, 1)");
}

/* ---- the loop ---------------------------------------------------------------------------- */

struct run {
    struct finetune_args *a;
    struct mt_model m;
    struct mt_optimizer opt;
    struct mt_lr_schedule sched;
    struct mt_tokenizer tok;
    struct mt_class_data train, valid;
    int bert, K;
    FILE *json;
};

/* one pass over the shuffled training set; returns the mean loss */
static double train_epoch(struct run *r, int epoch, long *step, long total)
{
    const struct finetune_args *a = r->a;
    const int B = a->micro_batch_size, T = a->seq_length;
    const size_t n = r->train.n;
    size_t *order = malloc(n * sizeof *order);
    int32_t *tokens = malloc((size_t)B * T * sizeof *tokens), *types = malloc((size_t)B * T * sizeof *types);
    int32_t *lengths = malloc((size_t)B * sizeof *lengths), *labels = malloc((size_t)B * sizeof *labels);
    const struct mt_class_example **ex = malloc((size_t)B * sizeof *ex);
    if (!order || !tokens || !types || !lengths || !labels || !ex) mt_die("out of memory");
    struct mt_rng g;
    mt_rng_seed(&g, (uint64_t)a->seed + (uint64_t)epoch, 5);
    for (size_t i = 0; i < n; i++) order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        const size_t j = (size_t)mt_rng_below(&g, i + 1), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    double sum = 0, interval = 0;
    long nsteps = 0, in_interval = 0;
    const double t0 = mt_now();
    for (size_t i0 = 0; i0 < n; i0 += (size_t)B) {
        const int nb = n - i0 < (size_t)B ? (int)(n - i0) : B;
        for (int b = 0; b < nb; b++) ex[b] = &r->train.ex[order[i0 + (size_t)b]];
        mt_class_batch(&r->tok, ex, nb, T, r->bert, tokens, types, lengths, labels);
        const struct mt_batch batch = {nb, T, tokens, r->m.cfg.type_vocab_size ? types : NULL, lengths,
                                       NULL, NULL, labels, NULL, NULL};
        const float lr = mt_lr_at(&r->sched, *step);
        const double loss = mt_model_forward_batch(&r->m, &batch, (int64_t)(epoch * (long)n + (long)i0));
        mt_model_backward(&r->m, 1.0f);
        const double norm = mt_optim_step(&r->opt, r->m.params, r->m.grads, lr, 1.0f);
        if (!isfinite(loss) || !isfinite(norm))
            mt_user_error("lower --lr", "epoch %d step %ld: loss %g, gradient norm %g are not finite", epoch,
                          *step + 1, loss, norm);
        (*step)++;
        sum += loss, interval += loss;
        nsteps++, in_interval++;
        if (*step % a->log_interval == 0 || *step == total) {
            printf(" epoch %d | step %6ld/%6ld | loss %.6f | learning rate %.6E | grad norm %.3f | %.1f ms/step\n",
                   epoch, *step, total, interval / in_interval, lr, norm, 1000.0 * (mt_now() - t0) / nsteps);
            fflush(stdout);
            if (r->json)
                fprintf(r->json, "{\"epoch\": %d, \"step\": %ld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g}\n",
                        epoch, *step, interval / in_interval, lr, norm);
            interval = 0, in_interval = 0;
        }
    }
    free(order);
    free(tokens);
    free(types);
    free(lengths);
    free(labels);
    free(ex);
    return nsteps ? sum / nsteps : 0.0;
}

static double validate(struct run *r, struct mt_class_score *s)
{
    int *pred = malloc(r->valid.n * sizeof *pred);
    if (!pred) mt_die("out of memory");
    mt_classify_predict(&r->m, &r->tok, &r->valid, pred);
    mt_classify_score(&r->valid, pred, r->K, s);
    free(pred);
    return s->total ? (double)s->correct / (double)s->total : 0.0;
}

int mt_cmd_finetune(int argc, char **argv)
{
    struct finetune_args a = {.backend = "cpu", .ckpt_step = -1, .seed = 1234, .log_interval = 50, .epochs = 3,
                              .seq_length = 128, .micro_batch_size = 32, .lr = 5e-5f, .warmup_fraction = 0.065f,
                              .weight_decay = 0.01f, .clip_grad = 1.0f, .hidden_dropout = 0.1f};
    unsigned char given[NSPECS];
    memset(given, 0, sizeof given);
    mt_args_parse(SPECS, NSPECS, &a, given, argc, argv, 2, "finetune", SYNOPSIS);
    task_defaults(&a, given);
    if (a.save && (mt_hf_is_dir(a.save) || mt_ckpt_latest(a.save) >= 0))
        mt_user_error("give --save a new or empty directory", "%s already holds a checkpoint", a.save);

    struct run R, *r = &R;
    memset(r, 0, sizeof *r);
    r->a = &a;
    struct mt_model_source src;
    mt_cmd_open_source(&src, a.pretrained, a.ckpt_step, "fine-tune");
    mt_cmd_open_tokenizer(&src, &r->tok, a.vocab_file, a.merge_file);
    const struct classifier c = classifier_of(&src.desc.model, a.num_classes, a.hidden_dropout);
    r->bert = c.bert;
    r->K = a.num_classes;
    if (a.seq_length > c.cfg.max_position_embeddings)
        mt_user_error("lower --seq-length", "--seq-length %d is longer than %s's %d positions", a.seq_length,
                      a.pretrained, c.cfg.max_position_embeddings);
    if (c.bert && (r->tok.cls < 0 || r->tok.sep < 0 || r->tok.pad < 0))
        mt_user_error("fine-tune a BERT with its WordPiece vocabulary", "%s is a BERT but its tokenizer %s has "
                      "no [CLS]/[SEP]/[PAD]", a.pretrained, r->tok.type);

    char labels_buf[512] = "";
    const char *names[64];
    int nnames = 0;
    if (a.labels) {
        snprintf(labels_buf, sizeof labels_buf, "%s", a.labels);
        nnames = mt_class_names(labels_buf, names, 64);
        if (nnames != a.num_classes)
            mt_user_error("give one name per class", "--labels names %d classes, --num-classes is %d", nnames,
                          a.num_classes);
    }
    struct mt_class_read ro = {a.num_classes, names, nnames, "text", "label", 1, 0};
    mt_class_data_read(&r->train, a.train_data, &r->tok, &ro);
    ro.want_train = 0;
    mt_class_data_read(&r->valid, a.valid_data, &r->tok, &ro);

    mt_backend *be = mt_backend_open(a.backend, a.tf32);
    mt_model_init(&r->m, &c.cfg, be, a.micro_batch_size, a.seq_length, NULL, 1);
    mt_model_init_weights(&r->m, (uint64_t)a.seed);
    printf("megatron-c finetune: %s (%s, %d layers, hidden %d) as a %d-class classifier on the %s token; "
           "%zu training and %zu validation examples, seq %d, %d epochs\n", a.pretrained,
           c.bert ? "BERT" : "GPT", c.cfg.num_layers, c.cfg.hidden_size, a.num_classes,
           c.bert ? "pooled first" : "last", r->train.n, r->valid.n, a.seq_length, a.epochs);
    load_pretrained(&r->m, &src);
    mt_model_set_training(&r->m, 1, (uint64_t)a.seed);
    const struct mt_optim_config oc = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                                       .weight_decay = a.weight_decay, .clip_grad = a.clip_grad};
    mt_optim_init(&r->opt, &oc, be, &r->m.table);
    const long per_epoch = (long)((r->train.n + (size_t)a.micro_batch_size - 1) / (size_t)a.micro_batch_size);
    const long total = per_epoch * a.epochs;
    r->sched = (struct mt_lr_schedule){a.lr, 0.0f, (int)(a.warmup_fraction * (float)total), (int)total, MT_LR_LINEAR};
    if (a.log_json && !(r->json = fopen(a.log_json, "w")))
        mt_user_error("check the path given to --log-json", "cannot open %s for writing", a.log_json);

    double best = -1;
    long step = 0;
    const double t0 = mt_now();
    for (int e = 1; e <= a.epochs; e++) {
        const double loss = train_epoch(r, e, &step, total);
        struct mt_class_score s;
        const double acc = validate(r, &s);
        const int better = acc > best;
        printf(" epoch %d done | train loss %.6f | validation accuracy %.4f (%zu / %zu)%s | %.1f s\n", e, loss, acc,
               s.correct, s.total, better ? " | best" : "", mt_now() - t0);
        fflush(stdout);
        if (r->json) {
            fprintf(r->json, "{\"epoch\": %d, \"train_loss\": %.9g, \"valid_accuracy\": %.9g}\n", e, loss, acc);
            mt_log_flush(r->json, a.log_json);
        }
        if (better) {
            best = acc;
            if (a.save) {
                struct mt_model_desc d = src.desc;
                d.model = r->m.cfg;
                save_model(&r->m, &d, a.save, e, acc, a.task, a.labels);
            }
        }
        mt_classify_score_free(&s);
    }
    printf(" fine-tuning done: best validation accuracy %.4f%s%s\n", best, a.save ? ", kept in " : "",
           a.save ? a.save : "");
    if (r->json) mt_log_close(r->json, a.log_json);
    mt_optim_free(&r->opt);
    mt_model_free(&r->m);
    mt_class_data_free(&r->train);
    mt_class_data_free(&r->valid);
    mt_tokenizer_close(&r->tok);
    mt_cmd_close_source(&src);
    mt_backend_free(be);
    return 0;
}
