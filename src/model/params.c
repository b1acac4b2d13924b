/* params.c: see params.h */
#include "model/params.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

void mt_params_init(struct mt_param_table *t) { memset(t, 0, sizeof *t); }

void mt_params_free(struct mt_param_table *t)
{
    free(t->p);
    memset(t, 0, sizeof *t);
}

int mt_params_add(struct mt_param_table *t, const char *name, int64_t rows, int64_t cols,
                  float init_std, float init_value)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->p = realloc(t->p, (size_t)t->cap * sizeof *t->p);
        if (!t->p) mt_die("out of memory growing the parameter table");
    }
    struct mt_param *p = &t->p[t->n];
    memset(p, 0, sizeof *p);
    MT_ASSERT(strlen(name) < MT_PARAM_NAME_MAX);
    strcpy(p->name, name);
    if (rows > 0) {
        p->ndim = 2;
        p->shape[0] = rows;
        p->shape[1] = cols;
    } else {
        p->ndim = 1;
        p->shape[0] = cols;
        p->shape[1] = 1;
    }
    p->numel = (size_t)p->shape[0] * (size_t)p->shape[1];
    /* Megatron: no weight decay on biases and 1-D parameters (norms). */
    p->no_weight_decay = p->ndim == 1;
    p->init_std = init_std;
    p->init_value = init_value;
    /* keep every tensor 16-element aligned (64 bytes) so that kernels can
     * assume aligned rows of each tensor start */
    p->offset = (t->total + 15) & ~(size_t)15;
    t->total = p->offset + p->numel;
    return t->n++;
}

int mt_params_find(const struct mt_param_table *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->p[i].name, name) == 0) return i;
    return -1;
}
