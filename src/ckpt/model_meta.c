/* model_meta.c: see model_meta.h */
#include "ckpt/model_meta.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

void mt_model_desc_to_kv(const struct mt_model_desc *d, struct mt_kv *kv)
{
    int nf;
    const struct mt_config_field *f = mt_config_fields(&nf);
    char buf[64];
    mt_kv_set(kv, "model_type", "GPT");
    for (int i = 0; i < nf; i++) {
        mt_config_field_format(&d->model, &f[i], buf, sizeof buf);
        mt_kv_set(kv, f[i].key, "%s", buf);
    }
    mt_kv_set(kv, "make_vocab_size_divisible_by", "%d", d->make_vocab_size_divisible_by);
    mt_kv_set(kv, "tokenizer_type", "%s", d->tokenizer_type);
}

void mt_model_desc_from_kv(struct mt_model_desc *d, const struct mt_kv *kv, const char *path)
{
    memset(d, 0, sizeof *d);
    const char *type = mt_kv_get(kv, "model_type");
    if (!type || strcmp(type, "GPT") != 0)
        mt_user_error("this command needs a GPT-family checkpoint", "%s: model_type is '%s'", path,
                      type ? type : "(missing)");
    mt_config_defaults(&d->model);
    int nf;
    const struct mt_config_field *f = mt_config_fields(&nf);
    for (int i = 0; i < nf; i++) {
        const char *v = mt_kv_get(kv, f[i].key);
        if (!v) v = f[i].legacy;
        if (!v) mt_user_error("the checkpoint is incomplete", "%s: metadata field %s is missing", path, f[i].key);
        if (mt_config_field_parse(&d->model, &f[i], v) != 0)
            mt_user_error("the checkpoint is damaged", "%s: metadata field %s='%s' is not a valid value",
                          path, f[i].key, v);
    }
    mt_config_derive(&d->model); /* older checkpoints: groups and head dim from the heads */
    const char *div = mt_kv_get(kv, "make_vocab_size_divisible_by");
    d->make_vocab_size_divisible_by = div ? atoi(div) : 128;
    d->tokenizer_type = mt_kv_get(kv, "tokenizer_type");
    if (!d->tokenizer_type) mt_user_error("the checkpoint is incomplete", "%s: tokenizer_type is missing", path);
    char err[256];
    if (mt_config_check(&d->model, err, sizeof err) != 0)
        mt_user_error("the checkpoint is damaged", "%s: inconsistent model configuration: %s", path, err);
}

/* "--num-layers" for num_layers; "add_bias_linear (--disable-bias-linear)"
 * where the flag is not the field's name */
static void field_label(const struct mt_config_field *f, char *buf, size_t n)
{
    char flag[96];
    snprintf(flag, sizeof flag, "--%s", f->key);
    for (char *p = flag; *p; p++)
        if (*p == '_') *p = '-';
    if (strcmp(flag, f->flag) == 0) snprintf(buf, n, "%s", f->flag);
    else snprintf(buf, n, "%s (%s)", f->key, f->flag);
}

void mt_model_desc_check(const struct mt_model_desc *run, const struct mt_model_desc *ck,
                         const char *path)
{
    char label[160];
    char msg[3072] = "", a[64], b[64];
    size_t n = 0;
    int nf;
    const struct mt_config_field *f = mt_config_fields(&nf);
    for (int i = 0; i < nf && n < sizeof msg; i++) {
        if (!f[i].function) continue;
        mt_config_field_format(&run->model, &f[i], a, sizeof a);
        mt_config_field_format(&ck->model, &f[i], b, sizeof b);
        if (strcmp(a, b) == 0) continue;
        field_label(&f[i], label, sizeof label);
        n += (size_t)snprintf(msg + n, sizeof msg - n, "\n  %s: %s in this run, %s in the checkpoint",
                              label, a, b);
    }
    if (run->make_vocab_size_divisible_by != ck->make_vocab_size_divisible_by && n < sizeof msg)
        n += (size_t)snprintf(msg + n, sizeof msg - n,
                              "\n  --make-vocab-size-divisible-by: %d in this run, %d in the checkpoint",
                              run->make_vocab_size_divisible_by, ck->make_vocab_size_divisible_by);
    if (strcmp(run->tokenizer_type, ck->tokenizer_type) != 0 && n < sizeof msg)
        n += (size_t)snprintf(msg + n, sizeof msg - n, "\n  --tokenizer-type: %s in this run, %s in the checkpoint",
                              run->tokenizer_type, ck->tokenizer_type);
    if (n)
        mt_user_error("pass the same model flags as the run that saved it, or --load another directory",
                      "the model configuration differs from checkpoint %s:%s", path, msg);
}
