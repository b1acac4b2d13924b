/* common.c: see common.h */
#include "cmd/common.h"
#include "ckpt/dist.h"
#include "core/error.h"
#include <stdio.h>
#include <string.h>

void mt_cmd_open_checkpoint(struct mt_checkpoint_ref *c, const char *load, long step,
                            const char *what)
{
    memset(c, 0, sizeof *c);
    if (mt_ckpt_resolve(load, step, c->path, sizeof c->path) != 0) {
        char hint[160];
        snprintf(hint, sizeof hint, "train with --save DIR first, then %s with --load DIR", what);
        mt_user_error(hint, "no checkpoint in %s (no latest_checkpointed_iteration.txt)", load);
    }
    mt_ckpt_read_meta(c->path, &c->kv);
    mt_model_desc_from_kv(&c->desc, &c->kv, c->path);
}

void mt_cmd_open_tokenizer(const struct mt_checkpoint_ref *c, struct mt_tokenizer *tok,
                           const char *vocab_file, const char *merge_file)
{
    mt_tokenizer_open(tok, c->desc.tokenizer_type, vocab_file, merge_file);
    if (tok->vocab_size != c->desc.model.vocab_size)
        mt_user_error("use the vocabulary the model was trained with",
                      "the tokenizer has %d tokens but checkpoint %s was trained with %d",
                      tok->vocab_size, c->path, c->desc.model.vocab_size);
}

void mt_cmd_load_model(const struct mt_checkpoint_ref *c, struct mt_model *m, mt_backend *be, int B,
                       int T)
{
    mt_model_init(m, &c->desc.model, be, B, T, NULL, 1);
    const struct mt_ckpt_group groups[] = {{"model/", m->params, 1}};
    mt_ckpt_read_tensors(c->path, &m->table, NULL, groups, 1, be);
}

void mt_cmd_close_checkpoint(struct mt_checkpoint_ref *c) { mt_kv_free(&c->kv); }
