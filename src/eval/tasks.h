/* tasks.h: the pieces of `megatron-c eval` (the zero-shot WikiText
 * perplexity and LAMBADA accuracy of Megatron-LM's tasks/zeroshot_gpt),
 * separated from the command so that tests can check each one: the WikiText
 * detokenizer, the sliding-window schedule, the perplexity formulas, the
 * LAMBADA context/target split, a one-key JSON reader, and the two loops that
 * run a model over windows or examples. See doc/evaluation.md. */
#ifndef MT_EVAL_TASKS_H
#define MT_EVAL_TASKS_H
#include "data/tokenizer.h"
#include "model/model.h"
#include <stddef.h>
#include <stdint.h>

/* ---- text helpers (Python semantics) ----------------------------------------- */

/* Python's str.isspace() for one code point (also what \s matches in a
 * Python 3 str regex and what str.split() / str.strip() split and strip on). */
int mt_py_isspace(uint32_t cp);

/* Megatron's wikitext_detokenizer (tasks/zeroshot_gpt/detokenizer.py),
 * applied to the whole text: the same list of replacements in the same
 * order, each a single left-to-right pass like Python's str.replace / re.sub.
 * Returns a malloc'd NUL-terminated string; *out_len gets its length. */
char *mt_wikitext_detokenize(const char *text, size_t len, size_t *out_len);

/* len(text.strip().split(" ")): Megatron's num_original_tokens (the word
 * count of the raw, not detokenized, WikiText). */
size_t mt_count_original_tokens(const char *text, size_t len);

/* ---- WIKITEXT103-style perplexity ---------------------------------------------- */

/* One window of Megatron's _LMDataset over ntokens tokens: the model reads
 * tokens[start, start + nlabels) and predicts tokens[start+1, start+nlabels+1);
 * label positions j in [score_lo, score_hi) of the window are scored
 * (score_hi = nlabels; the rest of the seq_len positions are padding). */
struct mt_eval_window {
    size_t start;
    int nlabels;  /* real labels in the window, <= seq_len (fewer at the end) */
    int score_lo, score_hi;
};

/* Number of windows Megatron builds: max(ceil(max(n-1-stride, 0)/stride)+1, 1)
 * with stride = max(1, overlapping_eval). */
size_t mt_eval_num_windows(size_t ntokens, int seq_len, int stride);
/* Window idx (0-based, < mt_eval_num_windows): start = idx*stride; the first
 * window, and every window when stride >= seq_len, scores all its labels;
 * the others score only their last `stride` label positions. Windows past
 * the data score nothing (score_lo >= score_hi). */
void mt_eval_window_at(size_t ntokens, int seq_len, int stride, size_t idx,
                       struct mt_eval_window *w);

/* Megatron's result formulas from the summed token NLL. */
struct mt_ppl {
    double loss;         /* nll_sum / (num_tokenized - 1) */
    double ppl;          /* exp(min(20, loss)) */
    double token_ratio;  /* (num_tokenized - 1) / (num_original - 1); NAN if num_original < 2 */
    double adjusted_ppl; /* exp(min(20, loss * token_ratio)); NAN if num_original < 2 */
};
void mt_eval_ppl(double nll_sum, size_t num_tokenized, size_t num_original, struct mt_ppl *out);

/* Runs the model over windows [w0, w1) of the schedule, B windows per
 * forward (B <= the model's micro-batch, seq_len <= its T), padding with
 * pad_id, and returns the sum (in double) of the per-token cross-entropy
 * losses at the scored positions; *nscored (may be NULL) gets how many.
 * The loss is the model's: softmax over the padded vocabulary, as Megatron's
 * vocab_parallel_cross_entropy. */
double mt_eval_lm_nll(struct mt_model *m, const int32_t *tokens, size_t ntokens, int seq_len,
                      int stride, size_t w0, size_t w1, int B, int32_t pad_id, size_t *nscored);

/* ---- LAMBADA ---------------------------------------------------------------------- */

/* Splits a passage into context and target ids, as Megatron's
 * _LambadaDataset.get_tokens:
 *   strict = 0: ids = tokenize(text); context = ids[:-1], target = ids[-1:]
 *   strict = 1: w = text.split()[-1]; context = tokenize(text[:rfind(w)].strip()),
 *               target = tokenize(" " + w)
 * Both arrays are malloc'd. Returns 0, or -1 with *err set to a static
 * reason when the text has no target (empty, or only whitespace) or nothing
 * is left for the context. */
int mt_lambada_split(const struct mt_tokenizer *tok, const char *text, size_t len, int strict,
                     int32_t **ctx, size_t *nctx, int32_t **tgt, size_t *ntgt, const char **err);

/* Index of the largest of row[0, n) (the first one on ties, as torch.argmax). */
int mt_argmax(const float *row, int n);

/* LAMBADA's per-example rule on logits rows (n rows of Vp logits, row i
 * predicting labels[i]): 1 iff for every row the argmax over the real
 * vocabulary [0, vocab_size) equals the label (padded ids are never
 * predicted). */
int mt_lambada_correct(const float *rows, int Vp, int vocab_size, const int32_t *labels, int n);

/* One LAMBADA example ready for the model: seq = context + target, cut from
 * the left to its last seq_len + 1 tokens when longer (Megatron does not cut;
 * see doc/evaluation.md). The model reads seq[0, n-1) and the target labels
 * are the last ntgt of seq[1, n). */
struct mt_lambada_example {
    int32_t *seq;
    int n;     /* tokens in seq, 2..seq_len+1 */
    int ntgt;  /* 1..n-1 */
};
/* Builds the example; returns 0, or -1 when the target alone does not fit
 * (ntgt > seq_len) or ctx is empty. */
int mt_lambada_example_make(struct mt_lambada_example *e, const int32_t *ctx, size_t nctx,
                            const int32_t *tgt, size_t ntgt, int seq_len);
void mt_lambada_example_free(struct mt_lambada_example *e);

/* Runs the model on nex examples (nex <= the model's micro-batch, each
 * n - 1 <= its T) in one forward, padding with pad_id, and returns how many
 * are correct; correct_out (may be NULL) gets 0/1 per example. */
int mt_eval_lambada_batch(struct mt_model *m, const struct mt_lambada_example *ex, int nex,
                          int32_t pad_id, int *correct_out);

/* ---- JSON ----------------------------------------------------------------------------- */

/* Reads the string value of `key` in a one-line JSON object, decoding the
 * standard escapes (\uXXXX with surrogate pairs to UTF-8). Returns a malloc'd
 * NUL-terminated string (*out_len = its length; the value may hold NUL
 * bytes), or NULL with *err = a static message (malformed JSON, not an
 * object, key missing, value not a string); *err_pos = byte offset. */
char *mt_json_get_string(const char *line, size_t len, const char *key, size_t *out_len,
                         const char **err, size_t *err_pos);

#endif
