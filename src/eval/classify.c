/* classify.c: see classify.h */
#include "eval/classify.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

void mt_classify_predict(struct mt_model *m, const struct mt_tokenizer *tok,
                         const struct mt_class_data *d, int *pred)
{
    const int B = m->B, T = m->T, K = mt_config_seq_classes(&m->cfg);
    const int bert = m->cfg.seq_token == MT_SEQ_TOKEN_FIRST;
    MT_ASSERT(K > 0);
    int32_t *tokens = malloc((size_t)B * T * sizeof *tokens), *types = malloc((size_t)B * T * sizeof *types);
    int32_t *lengths = malloc((size_t)B * sizeof *lengths), *labels = malloc((size_t)B * sizeof *labels);
    const struct mt_class_example **ex = malloc((size_t)B * sizeof *ex);
    float *logits = malloc((size_t)B * K * sizeof *logits);
    if (!tokens || !types || !lengths || !labels || !ex || !logits) mt_die("out of memory");
    const int training = m->training;
    m->training = 0;
    for (size_t i0 = 0; i0 < d->n; i0 += (size_t)B) {
        const int nb = d->n - i0 < (size_t)B ? (int)(d->n - i0) : B;
        for (int b = 0; b < nb; b++) ex[b] = &d->ex[i0 + (size_t)b];
        mt_class_batch(tok, ex, nb, T, bert, tokens, m->cfg.type_vocab_size ? types : NULL, lengths, labels);
        const struct mt_batch batch = {nb, T, tokens, m->cfg.type_vocab_size ? types : NULL, lengths,
                                       NULL, NULL, NULL, NULL, NULL};
        mt_model_forward_batch(m, &batch, 0);
        mt_tensor_download(m->be, logits, mt_model_seq_logits(m));
        for (int b = 0; b < nb; b++) {
            int best = 0;
            for (int k = 1; k < K; k++)
                if (logits[(size_t)b * K + k] > logits[(size_t)b * K + best]) best = k;
            pred[i0 + (size_t)b] = best;
        }
    }
    m->training = training;
    free(tokens);
    free(types);
    free(lengths);
    free(labels);
    free(ex);
    free(logits);
}

void mt_classify_score(const struct mt_class_data *d, const int *pred, int K, struct mt_class_score *s)
{
    memset(s, 0, sizeof *s);
    s->K = K;
    s->confusion = calloc((size_t)K * K, sizeof *s->confusion);
    if (!s->confusion) mt_die("out of memory");
    for (size_t i = 0; i < d->n; i++) {
        const int y = d->ex[i].label;
        if (y < 0) continue;
        s->total++;
        s->correct += pred[i] == y;
        s->confusion[(size_t)y * K + pred[i]]++;
    }
}

void mt_classify_score_free(struct mt_class_score *s)
{
    free(s->confusion);
    memset(s, 0, sizeof *s);
}
