/* common.h: what several commands do alike: open a trained model for
 * inference or conversion, from a megatron-c checkpoint directory or a
 * Hugging Face model directory (detected), with its tokenizer. */
#ifndef MT_CMD_COMMON_H
#define MT_CMD_COMMON_H
#include "ckpt/model_meta.h"
#include "data/tokenizer.h"
#include "interop/hf.h"
#include "model/model.h"

struct mt_model_source {
    int hf;                    /* a Hugging Face directory */
    char path[4200];           /* the checkpoint file, or the Hugging Face directory */
    struct mt_kv kv;           /* megatron-c: the checkpoint's metadata (empty for Hugging Face) */
    struct mt_model_desc desc; /* strings point into kv (megatron-c) */
    struct mt_hf_model hfm;    /* Hugging Face: the model read whole */
};

/* Opens --load DIR: a Hugging Face directory (its config and weights are
 * read at once), or a megatron-c checkpoint directory (--ckpt-step N, else
 * the latest; its metadata). `what` names the command in the hint when DIR
 * holds neither. */
void mt_cmd_open_source(struct mt_model_source *s, const char *load, long step, const char *what);
/* Opens a Hugging Face directory with the vocabulary padded to a multiple
 * of divisible_by and the tokenizer recorded as tokenizer_type (NULL: as
 * mt_hf_read picks it); mt_cmd_open_source uses 128 and NULL. */
void mt_cmd_open_hf(struct mt_model_source *s, const char *dir, int divisible_by, const char *tokenizer_type);
/* Opens the model's tokenizer (vocab/merge files may override the shipped
 * ones) and checks that its vocabulary is the model's. */
void mt_cmd_open_tokenizer(const struct mt_model_source *s, struct mt_tokenizer *tok,
                           const char *vocab_file, const char *merge_file);
/* A serial model for micro-batches of B x T on be, with the source's weights. */
void mt_cmd_load_model(const struct mt_model_source *s, struct mt_model *m, mt_backend *be, int B,
                       int T);
/* The weights as whole host tensors in the order of the global table *t
 * (made here); free both with mt_cmd_free_weights. */
float *mt_cmd_weights(const struct mt_model_source *s, struct mt_param_table *t);
void mt_cmd_free_weights(const struct mt_model_source *s, struct mt_param_table *t, float *w);
void mt_cmd_close_source(struct mt_model_source *s);
/* Stops with a message unless the model is a decoder with a language-model
 * head (GPT, Llama): what generate and the zero-shot evaluations need. */
void mt_cmd_need_decoder(const struct mt_model_source *s, const char *what);

#endif /* MT_CMD_COMMON_H */
