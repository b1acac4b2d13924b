/* common.c: see common.h */
#include "cmd/common.h"
#include "ckpt/dist.h"
#include "core/error.h"
#include "model/layout.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mt_cmd_open_hf(struct mt_model_source *s, const char *dir, int divisible_by, const char *tokenizer_type)
{
    memset(s, 0, sizeof *s);
    s->hf = 1;
    snprintf(s->path, sizeof s->path, "%s", dir);
    mt_hf_read(dir, divisible_by, tokenizer_type, &s->hfm);
    s->desc = s->hfm.desc;
}

void mt_cmd_open_source(struct mt_model_source *s, const char *load, long step, const char *what)
{
    if (mt_hf_is_dir(load)) {
        mt_cmd_open_hf(s, load, 128, NULL);
        return;
    }
    memset(s, 0, sizeof *s);
    if (mt_ckpt_resolve(load, step, s->path, sizeof s->path) != 0) {
        char hint[200];
        snprintf(hint, sizeof hint, "train with --save DIR first, then %s with --load DIR (or give a "
                 "Hugging Face model directory)", what);
        mt_user_error(hint, "no checkpoint in %s (no latest_checkpointed_iteration.txt)", load);
    }
    mt_ckpt_read_meta(s->path, &s->kv);
    mt_model_desc_from_kv(&s->desc, &s->kv, s->path);
}

void mt_cmd_open_tokenizer(const struct mt_model_source *s, struct mt_tokenizer *tok,
                           const char *vocab_file, const char *merge_file)
{
    /* a NullTokenizer's --vocab-size is the vocabulary before its EOD id */
    const int null_vocab = s->desc.model.vocab_size - 1;
    mt_tokenizer_open(tok, s->desc.tokenizer_type, vocab_file, merge_file, null_vocab);
    /* a model of the vocabulary file's size (Hugging Face's BERT) has no
     * [BOS]/[EOS], which Megatron appends and text never encodes to */
    const int v = s->desc.model.vocab_size;
    if (tok->vocab_size != v && tok->vocab_size - tok->appended != v)
        mt_user_error("use the vocabulary the model was trained with",
                      "the tokenizer has %d tokens but %s was trained with %d", tok->vocab_size, s->path,
                      s->desc.model.vocab_size);
}

void mt_cmd_need_decoder(const struct mt_model_source *s, const char *what)
{
    const struct mt_transformer_config *c = &s->desc.model;
    if (c->attn_mask_type != MT_ATTN_MASK_CAUSAL || c->lm_head != MT_LM_HEAD_GPT)
        mt_user_error("a BERT or a classifier predicts masked tokens or classes, not the next token: "
                      "use eval --task classify or forward",
                      "%s is not a decoder language model: it cannot %s", s->path, what);
}

void mt_cmd_load_model(const struct mt_model_source *s, struct mt_model *m, mt_backend *be, int B,
                       int T)
{
    mt_model_init(m, &s->desc.model, be, B, T, NULL, 1);
    if (s->hf) {
        /* a serial model: its table holds the whole tensors, by name */
        const struct mt_param_table *g = &s->hfm.table;
        for (int i = 0; i < g->n; i++) {
            int k = mt_params_find(&m->table, g->p[i].name);
            MT_ASSERT(k >= 0);
            mt_model_set_param(m, k, s->hfm.data + g->p[i].offset);
        }
        return;
    }
    const struct mt_ckpt_group groups[] = {{"model/", m->params, 1, NULL}};
    mt_ckpt_read_tensors(s->path, &m->table, NULL, groups, 1, be);
}

float *mt_cmd_weights(const struct mt_model_source *s, struct mt_param_table *t)
{
    if (s->hf) {
        *t = s->hfm.table;
        return s->hfm.data;
    }
    char err[256];
    mt_backend *be = mt_backend_init("cpu-ref", err, sizeof err); /* host memory */
    if (!be) mt_die("%s", err);
    mt_layout_global_table(&s->desc.model, 1, t, NULL);
    float *data = mt_alloc(be, t->total * sizeof(float));
    mt_memset0(be, data, t->total * sizeof(float));
    const struct mt_ckpt_group groups[] = {{"model/", data, 1, NULL}};
    mt_ckpt_read_tensors(s->path, t, NULL, groups, 1, be);
    float *host = malloc(t->total * sizeof(float) + 1);
    if (!host) mt_die("out of memory");
    memcpy(host, data, t->total * sizeof(float));
    mt_dealloc(be, data);
    mt_backend_free(be);
    return host;
}

void mt_cmd_free_weights(const struct mt_model_source *s, struct mt_param_table *t, float *w)
{
    if (s->hf) return; /* the source's own */
    free(w);
    mt_params_free(t);
}

void mt_cmd_close_source(struct mt_model_source *s)
{
    mt_kv_free(&s->kv);
    if (s->hf) mt_hf_model_free(&s->hfm);
}
