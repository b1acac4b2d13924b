/* model_meta.h: what a checkpoint says about its model: the transformer
 * configuration (every field of model/config.h's table), the vocabulary
 * padding rule and the tokenizer, as checkpoint metadata. */
#ifndef MT_CKPT_MODEL_META_H
#define MT_CKPT_MODEL_META_H
#include "ckpt/checkpoint.h"
#include "model/config.h"

/* Everything that fixes the model's function and its vocabulary. */
struct mt_model_desc {
    struct mt_transformer_config model;
    int make_vocab_size_divisible_by;
    const char *tokenizer_type;
};

void mt_model_desc_to_kv(const struct mt_model_desc *d, struct mt_kv *kv);
/* Reads the description from checkpoint metadata (path names the file in
 * messages); fields an older checkpoint lacks take their legacy values.
 * Strings point into kv. Exits with a message on a missing or bad field. */
void mt_model_desc_from_kv(struct mt_model_desc *d, const struct mt_kv *kv, const char *path);
/* Compares a run's description with a checkpoint's; on any difference in
 * what the weights compute, exits with one message naming every field. */
void mt_model_desc_check(const struct mt_model_desc *run, const struct mt_model_desc *ckpt,
                         const char *path);

#endif /* MT_CKPT_MODEL_META_H */
