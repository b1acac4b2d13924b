/* trace.h: a training run's --log-json trace read back for plotting: per
 * logged iteration the training loss, learning rate and tokens/s, and the
 * validation losses at their iterations. Values written as null (a
 * non-finite loss) are NaN. */
#ifndef MT_PLOT_TRACE_H
#define MT_PLOT_TRACE_H
#include <stddef.h>

struct mt_series {
    double *x, *y; /* iterations and values */
    int n, cap;
};

struct mt_trace {
    char name[128];          /* the legend: the file's name without directory and .jsonl */
    struct mt_series loss, val_loss, lr, tokens_per_sec;
};

/* Appends the point (x, y). */
void mt_series_push(struct mt_series *s, double x, double y);

/* Reads a --log-json file; exits with a user error naming the file and
 * line when it is not one (malformed JSON, no "iteration"), or when it
 * holds no training or validation loss at all. */
void mt_trace_read(struct mt_trace *t, const char *path);
void mt_trace_free(struct mt_trace *t);

#endif /* MT_PLOT_TRACE_H */
