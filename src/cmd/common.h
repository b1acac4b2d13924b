/* common.h: what several commands do alike: open a trained checkpoint for
 * inference (its metadata, its tokenizer, its weights). */
#ifndef MT_CMD_COMMON_H
#define MT_CMD_COMMON_H
#include "ckpt/model_meta.h"
#include "data/tokenizer.h"
#include "model/model.h"

struct mt_checkpoint_ref {
    char path[4200];           /* the checkpoint file */
    struct mt_kv kv;           /* its metadata */
    struct mt_model_desc desc; /* strings point into kv */
};

/* Finds the checkpoint of --load DIR (--ckpt-step N, else the latest) and
 * reads its metadata; `what` names the command in the hint when DIR holds
 * none. */
void mt_cmd_open_checkpoint(struct mt_checkpoint_ref *c, const char *load, long step,
                            const char *what);
/* Opens the checkpoint's tokenizer (vocab/merge files may override the
 * shipped ones) and checks that its vocabulary is the model's. */
void mt_cmd_open_tokenizer(const struct mt_checkpoint_ref *c, struct mt_tokenizer *tok,
                           const char *vocab_file, const char *merge_file);
/* A serial model for micro-batches of B x T on be, with the checkpoint's weights. */
void mt_cmd_load_model(const struct mt_checkpoint_ref *c, struct mt_model *m, mt_backend *be, int B,
                       int T);
void mt_cmd_close_checkpoint(struct mt_checkpoint_ref *c);

#endif /* MT_CMD_COMMON_H */
