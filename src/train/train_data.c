/* train_data.c: the training data: the tokenizer's tokens of the shipped
 * text, or Megatron .bin/.idx datasets (GPT, BERT), split and loaded (run.h). */
#include "train/run.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Megatron's get_train_valid_test_num_samples */
static void num_samples(const struct mt_train_args *a, uint64_t ns[3])
{
    const uint64_t gbs = (uint64_t)a->global_batch_size, ei = (uint64_t)a->eval_iters;
    const uint64_t nvalid = (a->eval_interval > 0 ? (uint64_t)(a->train_iters / a->eval_interval) + 1 : 1);
    ns[0] = (uint64_t)a->train_iters * gbs;
    ns[1] = nvalid * ei * gbs;
    ns[2] = ei * gbs;
}

/* BERT: sentence-level .bin/.idx prefixes (data/bert_dataset.h) */
static void load_bert_data(struct run *r)
{
    const struct mt_train_args *a = r->a;
    const struct mt_tokenizer *t = &r->tok;
    r->is_cont = calloc((size_t)t->vocab_size, 1);
    if (!r->is_cont) mt_die("out of memory");
    char piece[MT_TOKEN_MAX_BYTES];
    for (int id = 0; id < t->vocab_size; id++) /* a piece that decodes without its space */
        r->is_cont[id] = t->decode_token(t, id, piece) > 0 && piece[0] != ' ';
    const struct mt_bert_config cfg = {a->seq_length, (uint64_t)a->seed, a->short_seq_prob, a->mask_prob,
                                       !a->bert_no_binary_head, t->cls, t->sep, t->mask, t->pad,
                                       t->vocab_size, r->is_cont};
    uint64_t ns[3];
    num_samples(a, ns);
    ns[2] = 0; /* the test split is not read by training */
    char err[1024];
    if (mt_bert_data_build(&r->bdata, a->data_path.n, a->data_path.v, a->split, &cfg, ns, err, sizeof err) != 0)
        mt_user_error("--model bert reads PREFIX_text_sentence (of PREFIX_text_sentence.bin/.idx written by "
                      "`megatron-c preprocess --split-sentences`) or W1 PREFIX1 W2 PREFIX2 ...", "%s", err);
    r->has_valid = a->eval_iters > 0 && r->bdata.present[1] && r->bdata.size[1] > 0;
    r->data_name = a->data_path.v[0];
    if (r->printer) mt_bert_data_describe(&r->bdata, stdout);
}

/* A --data-path naming a .bin or .idx file: Megatron's prefix given with its
 * extension, or a token file of nanoGPT or llm.c, which would otherwise be
 * read as text. */
static void refuse_token_file(const char *path)
{
    const size_t n = strlen(path);
    if (n < 4 || (strcmp(path + n - 4, ".bin") != 0 && strcmp(path + n - 4, ".idx") != 0)) return;
    const char *partner = strcmp(path + n - 4, ".bin") == 0 ? ".idx" : ".bin";
    char other[4200];
    snprintf(other, sizeof other, "%.*s%s", (int)(n - 4), path, partner);
    if (mt_file_exists(other))
        mt_user_error("give the prefix without the extension, as Megatron does: --data-path PREFIX",
                      "--data-path %s names one file of the dataset %.*s (.bin/.idx)", path, (int)(n - 4), path);
    mt_user_error("megatron-c reads text files and Megatron's .bin/.idx pairs; token files of nanoGPT or llm.c "
                  "are not read: run `megatron-c preprocess` on the text they came from",
                  "--data-path %s is a %s file without its %s partner", path, path + n - 3, partner);
}

/* --data-path is a text file (tokenized here, split by --split) or, as in
 * Megatron, one or more .bin/.idx prefixes with optional weights. */
void mt_train_load_data(struct run *r)
{
    const struct mt_train_args *a = r->a;
    const struct mt_words *dp = &a->data_path;
    static char def[4200], idx[4300];
    const char *path = dp->n ? dp->v[0] : NULL;
    if (path) snprintf(idx, sizeof idx, "%s.idx", path);
    if (r->bert) {
        load_bert_data(r);
        return;
    }
    const int per_split = a->split_path[0].n > 0;
    if (per_split || dp->n > 1 || (path && !mt_file_exists(path) && mt_file_exists(idx))) {
        uint64_t ns[3];
        num_samples(a, ns);
        char err[1024];
        int rc;
        if (per_split) { /* Megatron's blend per split: each dataset used whole, no --split */
            const int nw[3] = {a->split_path[0].n, a->split_path[1].n, a->split_path[2].n};
            char **const ws[3] = {a->split_path[0].v, a->split_path[1].v, a->split_path[2].v};
            rc = mt_gpt_data_build_per_split(&r->gdata, nw, ws, a->seq_length, (uint64_t)a->seed, ns,
                                             r->tok.vocab_size, err, sizeof err);
            path = ws[0][nw[0] > 1 ? 1 : 0];
        } else {
            rc = mt_gpt_data_build(&r->gdata, dp->n, dp->v, a->split, a->seq_length, (uint64_t)a->seed, ns,
                                   r->tok.vocab_size, err, sizeof err);
        }
        if (rc != 0)
            mt_user_error("the data paths take PREFIX (of PREFIX.bin/.idx written by `megatron-c preprocess`) "
                          "or W1 PREFIX1 W2 PREFIX2 ...", "%s", err);
        r->has_gdata = 1;
        r->train_ds = r->gdata.split[0];
        r->has_valid = a->eval_iters > 0 && r->gdata.present[1] && r->gdata.split[1].num_samples > 0;
        if (r->has_valid) r->valid_ds = r->gdata.split[1];
        r->data_name = path;
        r->ntok = 0;
        if (r->printer) {
            mt_gpt_data_describe(&r->gdata, stdout);
            printf(" tokenizer: %s, vocabulary %d\n", r->tok.type, r->tok.vocab_size);
        }
        /* the datasets are already shuffled (Megatron's shuffle_index) */
        mt_loader_init(&r->train_loader, &r->train_ds, (uint64_t)a->seed, 0);
        if (r->has_valid) mt_loader_init(&r->valid_loader, &r->valid_ds, (uint64_t)a->seed, 0);
        return;
    }
    if (!path) {
        snprintf(def, sizeof def, "%s/tinyshakespeare/input.txt", mt_data_dir());
        path = def;
    }
    refuse_token_file(path);
    r->data_name = path;
    size_t len;
    char *text = mt_read_file(path, &len, "--data-path");
    if (len == 0)
        mt_user_error("give a file with training text", "data file %s is empty", path);
    /* text has no NUL bytes; token files and other binaries do */
    if (memchr(text, 0, len < 65536 ? len : 65536))
        mt_user_error("--data-path takes a text file or the PREFIX of a .bin/.idx pair written by "
                      "`megatron-c preprocess` (or Megatron's preprocess_data.py)",
                      "data file %s is not text (it holds NUL bytes)", path);
    r->all_tokens = mt_tokenizer_encode_all(&r->tok, text, len, &r->ntok);
    free(text);
    size_t b[3], e[3];
    if (mt_split_ranges(a->split, r->ntok, b, e) != 0)
        mt_user_error("write three proportions, e.g. --split 969,30,1", "malformed --split '%s'",
                      a->split);
    for (int i = 0; i < 3; i++) r->range[i] = (struct mt_stream_range){r->all_tokens, b[i], e[i]};
    if (mt_dataset_stream(&r->train_ds, &r->range[0], "train", a->seq_length) != 0) {
        char hint[200];
        snprintf(hint, sizeof hint, "the train split needs more than --seq-length (%d) tokens; "
                 "use a larger file or a smaller --seq-length", a->seq_length);
        mt_user_error(hint, "data file %s has too few tokens for training (%zu in the train split of %zu)",
                      path, e[0] - b[0], r->ntok);
    }
    r->has_valid = a->eval_iters > 0 &&
                   mt_dataset_stream(&r->valid_ds, &r->range[1], "valid", a->seq_length) == 0;
    if (a->eval_iters > 0 && !r->has_valid && r->printer)
        mt_warn("the validation split of %s holds fewer than %d tokens: no validation",
                path, a->seq_length + 1);
    mt_loader_init(&r->train_loader, &r->train_ds, (uint64_t)a->seed, 1);
    if (r->has_valid) mt_loader_init(&r->valid_loader, &r->valid_ds, (uint64_t)a->seed, 0);
}

