/* run.c: see run.h */
#include "train/run.h"
#include "core/error.h"
#include "core/io.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

void mt_model_desc_to_kv(const struct mt_model_desc *d, struct mt_kv *kv)
{
    const struct mt_gpt_config *g = &d->gpt;
    mt_kv_set(kv, "model_type", "GPT");
    mt_kv_set(kv, "num_layers", "%d", g->num_layers);
    mt_kv_set(kv, "hidden_size", "%d", g->hidden_size);
    mt_kv_set(kv, "num_attention_heads", "%d", g->num_heads);
    mt_kv_set(kv, "ffn_hidden_size", "%d", g->ffn_hidden_size);
    mt_kv_set(kv, "max_position_embeddings", "%d", g->max_position_embeddings);
    mt_kv_set(kv, "vocab_size", "%d", g->vocab_size);
    mt_kv_set(kv, "padded_vocab_size", "%d", g->padded_vocab_size);
    mt_kv_set(kv, "make_vocab_size_divisible_by", "%d", d->make_vocab_size_divisible_by);
    mt_kv_set(kv, "init_method_std", "%.9g", g->init_method_std);
    mt_kv_set(kv, "tokenizer_type", "%s", d->tokenizer_type);
}

static int get_int(const struct mt_kv *kv, const char *key, const char *path)
{
    const char *v = mt_kv_get(kv, key);
    char *end;
    if (!v) mt_user_error("the checkpoint is incomplete", "%s: metadata field %s is missing", path, key);
    long x = strtol(v, &end, 10);
    if (*end || end == v || x < 0 || x > 1000000000)
        mt_user_error("the checkpoint is damaged", "%s: metadata field %s='%s' is not a valid count",
                      path, key, v);
    return (int)x;
}

void mt_model_desc_from_kv(struct mt_model_desc *d, const struct mt_kv *kv, const char *path)
{
    memset(d, 0, sizeof *d);
    const char *type = mt_kv_get(kv, "model_type");
    if (!type || strcmp(type, "GPT") != 0)
        mt_user_error("this command needs a GPT checkpoint", "%s: model_type is '%s'", path,
                      type ? type : "(missing)");
    struct mt_gpt_config *g = &d->gpt;
    g->num_layers = get_int(kv, "num_layers", path);
    g->hidden_size = get_int(kv, "hidden_size", path);
    g->num_heads = get_int(kv, "num_attention_heads", path);
    g->ffn_hidden_size = get_int(kv, "ffn_hidden_size", path);
    g->max_position_embeddings = get_int(kv, "max_position_embeddings", path);
    g->vocab_size = get_int(kv, "vocab_size", path);
    g->padded_vocab_size = get_int(kv, "padded_vocab_size", path);
    d->make_vocab_size_divisible_by = get_int(kv, "make_vocab_size_divisible_by", path);
    const char *std = mt_kv_get(kv, "init_method_std");
    g->init_method_std = std ? strtof(std, NULL) : 0.02f;
    d->tokenizer_type = mt_kv_get(kv, "tokenizer_type");
    if (!d->tokenizer_type) mt_user_error("the checkpoint is incomplete", "%s: tokenizer_type is missing", path);
    if (g->num_layers < 1 || g->num_heads < 1 || g->hidden_size % g->num_heads != 0 ||
        g->padded_vocab_size < g->vocab_size || g->max_position_embeddings < 1)
        mt_user_error("the checkpoint is damaged", "%s: inconsistent model configuration", path);
}

void mt_model_desc_check(const struct mt_model_desc *run, const struct mt_model_desc *ck,
                         const char *path)
{
    char msg[2048] = "";
    size_t n = 0;
#define CMP(flag, field) \
    if (run->field != ck->field) \
        n += (size_t)snprintf(msg + n, sizeof msg - n, "\n  %s: %d in this run, %d in the checkpoint", \
                              flag, run->field, ck->field)
    CMP("--num-layers", gpt.num_layers);
    CMP("--hidden-size", gpt.hidden_size);
    CMP("--num-attention-heads", gpt.num_heads);
    CMP("--ffn-hidden-size", gpt.ffn_hidden_size);
    CMP("--max-position-embeddings", gpt.max_position_embeddings);
    CMP("vocabulary size", gpt.vocab_size);
    CMP("padded vocabulary size", gpt.padded_vocab_size);
    CMP("--make-vocab-size-divisible-by", make_vocab_size_divisible_by);
#undef CMP
    if (strcmp(run->tokenizer_type, ck->tokenizer_type) != 0 && n < sizeof msg)
        n += (size_t)snprintf(msg + n, sizeof msg - n, "\n  --tokenizer-type: %s in this run, %s in the checkpoint",
                              run->tokenizer_type, ck->tokenizer_type);
    if (n)
        mt_user_error("pass the same model flags as the run that saved it, or --load another directory",
                      "the model configuration differs from checkpoint %s:%s", path, msg);
}

/* ---- sampling --------------------------------------------------------------- */

struct cand {
    float logit;
    int id;
};

static int cand_desc(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id; /* ties: lower id first, for determinism */
}

int mt_sample_token(const float *logits, int V, float temperature, int top_k, float top_p,
                    struct mt_rng *rng)
{
    if (temperature <= 0.0f) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    struct cand *c = malloc((size_t)V * sizeof *c);
    if (!c) mt_die("out of memory");
    for (int i = 0; i < V; i++) c[i].logit = logits[i] / temperature, c[i].id = i;
    qsort(c, (size_t)V, sizeof *c, cand_desc);
    int n = V;
    if (top_k > 0 && top_k < n) n = top_k;
    double sum = 0.0;
    double *p = malloc((size_t)n * sizeof *p);
    if (!p) mt_die("out of memory");
    for (int i = 0; i < n; i++) sum += p[i] = exp((double)c[i].logit - (double)c[0].logit);
    if (top_p > 0.0f && top_p < 1.0f) {
        double acc = 0.0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            acc += p[i] / sum;
            if (acc >= top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        sum = 0.0;
        for (int i = 0; i < n; i++) sum += p[i];
    }
    double u = mt_rng_double(rng) * sum, acc = 0.0;
    int id = c[n - 1].id;
    for (int i = 0; i < n; i++) {
        acc += p[i];
        if (u < acc) {
            id = c[i].id;
            break;
        }
    }
    free(p);
    free(c);
    return id;
}

void mt_generate(struct mt_gpt *m, const struct mt_tokenizer *tok, const int32_t *prompt,
                int nprompt, int max_new, float temperature, int top_k, float top_p,
                struct mt_rng *rng, FILE *out)
{
    const int Tmax = m->T, V = m->cfg.vocab_size, Vp = m->cfg.padded_vocab_size;
    int cap = nprompt + max_new + 1;
    int32_t *ctx = malloc((size_t)cap * sizeof *ctx);
    float *logits = malloc((size_t)Vp * sizeof *logits);
    if (!ctx || !logits) mt_die("out of memory");
    memcpy(ctx, prompt, (size_t)nprompt * sizeof *ctx);
    int n = nprompt, start = nprompt > Tmax ? nprompt - Tmax : 0;
    const float *dl = mt_gpt_decode_prefill(m, ctx + start, n - start);
    char buf[MT_TOKEN_MAX_BYTES];
    for (int made = 1; made <= max_new; made++) {
        mt_download(m->be, logits, dl, (size_t)Vp * sizeof *logits);
        /* padded vocabulary entries are never sampled */
        int id = mt_sample_token(logits, V, temperature, top_k, top_p, rng);
        ctx[n++] = id;
        size_t nb = tok->decode_token(tok, id, buf);
        fwrite(buf, 1, nb, out);
        fflush(out);
        if (made == max_new) break; /* no forward pass for a token never sampled */
        if (n - start < Tmax) {
            dl = mt_gpt_decode_step(m, id, n - 1 - start);
        } else {
            /* the position table is full: keep the newest half as context */
            start = n - Tmax / 2;
            if (start >= n) start = n - 1;
            dl = mt_gpt_decode_prefill(m, ctx + start, n - start);
        }
    }
    free(ctx);
    free(logits);
}

mt_backend *mt_run_backend(const char *name, int tf32)
{
    char err[320];
    mt_backend *be = mt_backend_init(name, err, sizeof err);
    if (!be) {
        char hint[160];
        if (strcmp(name, "cuda") == 0 && strstr(mt_backend_list(), "cuda"))
            snprintf(hint, sizeof hint,
                     "run where nvidia-smi shows a GPU, one per rank, or use --backend cpu");
        else
            snprintf(hint, sizeof hint, "use --backend with one of: %s", mt_backend_list());
        mt_user_error(hint, "%s", err);
    }
    if (tf32 && !mt_backend_set_tf32(be, 1))
        mt_warn("--tf32 has no effect on backend %s (its GEMMs are fp32)", mt_backend_name(be));
    return be;
}
