/* recompute.c: activation recompute (struct mt_recompute in model/model.h):
 * which layers a slot keeps whole, the scratch the recomputed ones run in,
 * and the rerun of a chunk's forward in the backward. The rerun makes the
 * same backend calls on the same inputs (weights do not change within an
 * iteration; dropout masks are keyed by coordinates), so the recomputed
 * activations, and the gradients, are bitwise those of a run that kept
 * them. */
#include "model/model_internal.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

int mt_recompute_granularity_parse(const char *s)
{
    if (strcmp(s, "full") == 0) return MT_RECOMPUTE_FULL;
    if (strcmp(s, "selective") == 0) return MT_RECOMPUTE_SELECTIVE;
    return -1;
}

int mt_recompute_method_parse(const char *s)
{
    if (strcmp(s, "uniform") == 0) return MT_RECOMPUTE_UNIFORM;
    if (strcmp(s, "block") == 0) return MT_RECOMPUTE_BLOCK;
    return -1;
}

/* Selective recompute shares one probabilities buffer among the layers;
 * flash attention keeps none, so there it changes nothing. */
static int shares_att(const struct mt_model *m)
{
    return m->rc.granularity == MT_RECOMPUTE_SELECTIVE && m->attn == MT_ATTN_UNFUSED;
}

/* Whether stage layer l is fully recomputed, and its chunk [c0, c1). */
static int chunk_of(const struct mt_model *m, int l, int *c0, int *c1)
{
    const struct mt_recompute *rc = &m->rc;
    if (rc->granularity != MT_RECOMPUTE_FULL) return 0;
    const int n = rc->num_layers, nl = m->stage.nlayers;
    if (rc->method == MT_RECOMPUTE_BLOCK) {
        if (l >= n) return 0;
        *c0 = l, *c1 = l + 1;
        return 1;
    }
    *c0 = l / n * n;
    *c1 = *c0 + n < nl ? *c0 + n : nl;
    return 1;
}

static mt_tensor *output_of(const struct mt_transformer_config *c, struct mt_layer_acts *a)
{
    return c->post_layernorm ? &a->ln2 : &a->resid3;
}

struct mt_layer_acts *mt_recompute_acts(struct mt_model *m, struct mt_model_slot *s, int l,
                                        struct mt_layer_acts *tmp)
{
    int c0, c1;
    if (!chunk_of(m, l, &c0, &c1)) return &s->acts[l];
    *tmp = m->rc_acts[l - c0];
    if (l == c1 - 1) *output_of(&m->cfg, tmp) = *output_of(&m->cfg, &s->acts[l]);
    return tmp;
}

void mt_recompute_chunk(struct mt_model *m, struct mt_model_slot *s, const struct mt_fwd *f, int l)
{
    int c0, c1;
    if (!chunk_of(m, l, &c0, &c1) || l != c1 - 1) return;
    const int64_t N = mt_fwd_rows(f);
    struct mt_layer_acts tmp;
    /* the chunk's input: the previous layer's kept output, or the stage's */
    mt_tensor x = c0 > 0 ? mt_layer_output(&m->cfg, mt_recompute_acts(m, s, c0 - 1, &tmp), 0, N)
                         : mt_rows(s->input, 0, N);
    for (int k = c0; k < c1; k++) {
        struct mt_layer_acts *a = mt_recompute_acts(m, s, k, &tmp);
        mt_layer_fwd(f, &m->w.layers[k], a, m->stage.layer0 + k, x);
        x = mt_layer_output(&m->cfg, a, 0, N);
    }
}

void mt_recompute_alloc_slot(struct mt_model *m, struct mt_model_slot *s)
{
    for (int l = 0; l < m->stage.nlayers; l++) {
        int c0, c1;
        struct mt_layer_acts *a = &s->acts[l];
        if (chunk_of(m, l, &c0, &c1)) {
            memset(a, 0, sizeof *a);
            /* a chunk's end keeps its output: the next chunk's input */
            if (l == c1 - 1) mt_layout_alloc_layer_part(m->be, &m->cfg, &m->dims, a, MT_LAYER_OUTPUT);
        } else if (shares_att(m)) {
            mt_layout_alloc_layer_part(m->be, &m->cfg, &m->dims, a, MT_LAYER_ALL_BUT_ATT);
            a->att = m->rc_att;
        } else {
            mt_layout_alloc_layer_acts(m->be, &m->cfg, &m->dims, a);
        }
    }
}

void mt_recompute_free_slot(struct mt_model *m, struct mt_model_slot *s)
{
    for (int l = 0; l < m->stage.nlayers; l++) {
        if (shares_att(m)) s->acts[l].att.data = NULL; /* the model's */
        mt_layout_free_layer_acts(m->be, &s->acts[l]);
    }
}

void mt_recompute_alloc(struct mt_model *m)
{
    if (shares_att(m))
        m->rc_att = mt_tensor_alloc(m->be, MT_DTYPE_F32, m->dims.att_rows, m->dims.seq);
    if (m->rc.granularity != MT_RECOMPUTE_FULL) return;
    /* scratch for one chunk: N layers (uniform), one (block, when any) */
    const int n = m->rc.method == MT_RECOMPUTE_BLOCK ? m->rc.num_layers > 0 : m->rc.num_layers;
    m->rc_n = n < m->stage.nlayers ? n : m->stage.nlayers;
    if (m->rc_n <= 0) {
        m->rc_n = 0;
        return;
    }
    m->rc_acts = calloc((size_t)m->rc_n, sizeof *m->rc_acts);
    if (!m->rc_acts) mt_die("out of memory");
    for (int k = 0; k < m->rc_n; k++) mt_layout_alloc_layer_acts(m->be, &m->cfg, &m->dims, &m->rc_acts[k]);
}

static size_t set_bytes(const struct mt_layer_acts *a)
{
    const mt_tensor *t = (const mt_tensor *)a;
    size_t n = 0;
    for (size_t k = 0; k < sizeof *a / sizeof *t; k++)
        if (t[k].data) n += (size_t)mt_numel(t[k]) * mt_dtype_size(t[k].dtype);
    return n;
}

size_t mt_model_recompute_saving(const struct mt_model *m)
{
    const size_t whole = mt_layout_layer_acts_bytes(&m->cfg, &m->dims);
    size_t have = 0;
    for (int k = 0; k < m->rc_n; k++) have += set_bytes(&m->rc_acts[k]);
    if (m->rc_att.data) have += (size_t)mt_numel(m->rc_att) * sizeof(float);
    for (int s = 0; s < m->nslots; s++)
        for (int l = 0; l < m->stage.nlayers; l++) {
            struct mt_layer_acts a = m->slots[s].acts[l];
            if (m->rc_att.data) a.att.data = NULL; /* counted once above */
            have += set_bytes(&a);
        }
    const size_t without = whole * (size_t)m->nslots * (size_t)m->stage.nlayers;
    return without > have ? without - have : 0;
}

void mt_recompute_free(struct mt_model *m)
{
    for (int k = 0; k < m->rc_n; k++) mt_layout_free_layer_acts(m->be, &m->rc_acts[k]);
    free(m->rc_acts);
    m->rc_acts = NULL;
    m->rc_n = 0;
    mt_tensor_free(m->be, &m->rc_att);
}
