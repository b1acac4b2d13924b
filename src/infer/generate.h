/* generate.h: text generation from a model: sampling a token from logits,
 * and the decoding loop over the model's KV cache. */
#ifndef MT_INFER_GENERATE_H
#define MT_INFER_GENERATE_H
#include "core/rng.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include <stdio.h>

/* Samples a token id < vocab_size from logits (host, vocab_size entries):
 * temperature 0 = greedy (lowest id on ties); top_k > 0 keeps the k most
 * likely; 0 < top_p < 1 keeps the smallest set with probability >= top_p. */
int mt_sample_token(const float *logits, int vocab_size, float temperature, int top_k,
                    float top_p, struct mt_rng *rng);

/* Generates up to max_new tokens after the prompt ids with the model (which
 * must have B = 1), writing decoded bytes to out as they come. The context
 * slides by half of the model's T when it fills. */
void mt_generate(struct mt_model *m, const struct mt_tokenizer *tok, const int32_t *prompt,
                 int nprompt, int max_new, float temperature, int top_k, float top_p,
                 struct mt_rng *rng, FILE *out);

#endif /* MT_INFER_GENERATE_H */
