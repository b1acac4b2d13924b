/* run.h: pieces shared by the train, generate and eval commands: the model
 * configuration <-> checkpoint metadata, locating the shipped data, and
 * token sampling. */
#ifndef MT_RUN_H
#define MT_RUN_H
#include "core/rng.h"
#include <stdio.h>
#include "data/tokenizer.h"
#include "model/gpt.h"
#include "train/checkpoint.h"

/* The --backend of a command (and its --tf32), or a usage error naming the
 * backends this build has. --tf32 on a backend without TF32 warns. */
mt_backend *mt_run_backend(const char *name, int tf32);

/* Everything that fixes the shape of the model and its vocabulary. */
struct mt_model_desc {
    struct mt_gpt_config gpt;
    int make_vocab_size_divisible_by;
    const char *tokenizer_type;
};

void mt_model_desc_to_kv(const struct mt_model_desc *d, struct mt_kv *kv);
/* Reads the description from checkpoint metadata; path names the file in
 * messages. Strings point into kv. */
void mt_model_desc_from_kv(struct mt_model_desc *d, const struct mt_kv *kv, const char *path);
/* Compares a run's description with a checkpoint's; on any difference,
 * exits with one message naming every field that differs. */
void mt_model_desc_check(const struct mt_model_desc *run, const struct mt_model_desc *ckpt,
                         const char *path);

/* Samples a token id < vocab_size from logits (host, vocab_size entries):
 * temperature 0 = greedy (lowest id on ties); top_k > 0 keeps the k most
 * likely; 0 < top_p < 1 keeps the smallest set with probability >= top_p. */
int mt_sample_token(const float *logits, int vocab_size, float temperature, int top_k,
                    float top_p, struct mt_rng *rng);

/* Generates up to max_new tokens after the prompt ids with the model (which
 * must have B = 1), writing decoded bytes to out as they come. The context
 * slides by half of the model's T when it fills. */
void mt_generate(struct mt_gpt *m, const struct mt_tokenizer *tok, const int32_t *prompt,
                int nprompt, int max_new, float temperature, int top_k, float top_p,
                struct mt_rng *rng, FILE *out);

#endif
