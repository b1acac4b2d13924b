/* complete.h: one completion with its log-probabilities, what the
 * generation server answers: the prompt's tokens scored (the log-
 * probability of each given the ones before it), then tokens generated
 * with the sampling of generate.h until a length, the end-of-document
 * token or a stop string. Log-probabilities are the model's own (the
 * log-softmax of the logits, before temperature, top-k or top-p), in
 * double, as Megatron's server and OpenAI's API report them. */
#ifndef MT_INFER_COMPLETE_H
#define MT_INFER_COMPLETE_H
#include "core/rng.h"
#include "data/tokenizer.h"
#include "model/model.h"

enum mt_finish { MT_FINISH_LENGTH, MT_FINISH_EOD, MT_FINISH_STOP };

struct mt_complete_params {
    int max_new;               /* tokens to generate (0: score the prompt only) */
    float temperature;         /* 0: greedy */
    int top_k;
    float top_p;
    int score_prompt;          /* log-probabilities of the prompt's tokens too */
    int top_n;                 /* per position also the top_n most likely tokens (0: none) */
    int stop_at_eod;           /* the end-of-document token ends the generation (and is kept) */
    const char *const *stop;   /* strings that end the generation when the generated text holds one */
    int nstop;
};

struct mt_completion {
    int32_t *ids;        /* the prompt's tokens, then the generated ones */
    int n, nprompt;
    double *lp;          /* n: log p(ids[i] | ids[0..i)); NaN for i = 0 and, without
                          * score_prompt, for the prompt's tokens */
    int32_t *top_ids;    /* n x top_n, row i for position i (row 0 unset), best first */
    double *top_lp;
    enum mt_finish finish;
    size_t stop_at;      /* MT_FINISH_STOP: the generated text's bytes before the stop string */
};

/* Runs one completion of prompt[0, nprompt) on m (a serial model with
 * B = 1 whose T is the context). The caller checks that nprompt + max_new
 * fits in m->T; the generation also stops there. */
void mt_complete(struct mt_model *m, const struct mt_tokenizer *tok, const int32_t *prompt, int nprompt,
                 const struct mt_complete_params *p, struct mt_rng *rng, struct mt_completion *out);
void mt_completion_free(struct mt_completion *c);

/* The text of c's tokens from `from` on (0: with the prompt, c->nprompt:
 * the generation alone), cut before the stop string, without the final
 * end-of-document token when drop_eod; malloc'd, length in *len. */
char *mt_completion_text(const struct mt_tokenizer *tok, const struct mt_completion *c, int from,
                         int drop_eod, size_t *len);

#endif /* MT_INFER_COMPLETE_H */
