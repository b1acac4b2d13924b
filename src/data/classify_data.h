/* classify_data.h: labelled texts for fine-tuning and evaluating a
 * classifier (finetune, eval --task classify).
 *
 * A file is either
 *   TSV         TEXT <TAB> LABEL per line (SST-2's layout); a first line
 *               whose label is not a label (SST-2's "sentence<TAB>label") is
 *               a header and skipped; or
 *   JSON lines  {"text": ..., "label": ...} per line (the keys can be
 *               changed); a record with a "split" field is kept only when
 *               it names the split asked for ("train" for training data,
 *               anything else for validation: SpamAssassin's train/test).
 * A label is an integer in [0, num_classes) or one of the label names
 * given (e.g. "ham,spam": ham is 0). Every problem (no tab, a missing key,
 * a label outside the classes, an empty text) is an error naming the file,
 * the line and the value. */
#ifndef MT_CLASSIFY_DATA_H
#define MT_CLASSIFY_DATA_H
#include "data/tokenizer.h"
#include <stddef.h>
#include <stdint.h>

struct mt_class_example {
    int32_t *ids; /* the text's tokens (before [CLS]/[SEP] or truncation) */
    size_t n;
    int label;    /* -1: unknown (a file without labels) */
    long line;
};

struct mt_class_data {
    struct mt_class_example *ex;
    size_t n;
    char path[4200];
};

struct mt_class_read {
    int num_classes;
    const char *const *names; /* nnames label names, or NULL */
    int nnames;
    const char *text_key, *label_key; /* JSON lines: "text", "label" */
    int want_train;           /* records with "split": keep "train" (1) or the others (0) */
    int labels_optional;      /* a record may lack its label (prediction only) */
};

/* The names of a comma-separated list ("ham,spam"), cut in place in buf;
 * returns how many (at most max). */
int mt_class_names(char *buf, const char **names, int max);

/* Reads and tokenizes path. */
void mt_class_data_read(struct mt_class_data *d, const char *path, const struct mt_tokenizer *tok,
                        const struct mt_class_read *opt);
void mt_class_data_free(struct mt_class_data *d);

/* A micro-batch of examples ex[0..B) as the model reads it, T positions:
 * BERT ([CLS] text [SEP], types 0, padded with [PAD]; the text cut to fit)
 * when bert, else the text alone (its first T tokens; a decoder's head
 * reads the last of them). lengths (B), labels (B). */
void mt_class_batch(const struct mt_tokenizer *tok, const struct mt_class_example *const *ex, int B,
                    int T, int bert, int32_t *tokens, int32_t *types, int32_t *lengths, int32_t *labels);

#endif
