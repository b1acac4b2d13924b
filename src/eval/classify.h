/* classify.h: running a classifier (a model with a classification head)
 * over labelled texts: the predicted class of each example (the argmax of
 * its logits, the first on a tie), accuracy and the confusion matrix.
 * Used by `finetune` after each epoch and by `eval --task classify`. */
#ifndef MT_EVAL_CLASSIFY_H
#define MT_EVAL_CLASSIFY_H
#include "data/classify_data.h"
#include "model/model.h"

/* pred[i] for every example of d, in micro-batches of the model's B x T
 * (dropout off while it runs). */
void mt_classify_predict(struct mt_model *m, const struct mt_tokenizer *tok,
                         const struct mt_class_data *d, int *pred);

struct mt_class_score {
    size_t correct, total;
    long *confusion; /* [true * K + predicted], K x K */
    int K;
};
/* Scores pred against the examples' labels (those with one). */
void mt_classify_score(const struct mt_class_data *d, const int *pred, int K, struct mt_class_score *s);
void mt_classify_score_free(struct mt_class_score *s);

#endif
