/* ckpt_diff.c: compares two megatron-c checkpoints tensor by tensor (a test
 * helper, not installed). Prints, per group (model/ and each of the
 * optimizer's states, optim/exp_avg/, ...), the largest deviation max|a-b| / max|b| over the
 * tensors and the tensor where it occurs; exits 1 when any deviation
 * exceeds its tolerance.
 *   ckpt_diff FILE_A FILE_B [TOL [PART=TOL2 ...]]
 * (files: DIR/iter_N/model_optim_rng.mtc). PART=TOL2 gives the tensors whose
 * name contains PART their own tolerance, so that one tensor known to drift
 * (tests/cuda_run.sh) does not loosen the check of all the others. */
#include "backend/backend.h"
#include "ckpt/model_meta.h"
#include "model/layout.h"
#include "optim/optimizer.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double tol_of(const char *name, int n, char **parts, double tol)
{
    for (int k = 0; k < n; k++) {
        const char *eq = strchr(parts[k], '=');
        if (eq) {
            char part[256];
            snprintf(part, sizeof part, "%.*s", (int)(eq - parts[k]), parts[k]);
            if (strstr(name, part)) return atof(eq + 1);
        }
    }
    return tol;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s A.mtc B.mtc [tol]\n", argv[0]);
        return 2;
    }
    double tol = argc > 3 ? atof(argv[3]) : 1e-5;
    /* the tolerance of a tensor: the first PART=TOL2 its name contains, else tol */
#define TOL_OF(name) tol_of(name, argc - 4, argv + 4, tol)
    char err[256];
    mt_backend *be = mt_backend_init("cpu-ref", err, sizeof err);
    struct mt_kv kv[2] = {{0}, {0}};
    struct mt_model_desc d[2];
    struct mt_param_table t;
    for (int f = 0; f < 2; f++) {
        mt_ckpt_read_meta(argv[1 + f], &kv[f]);
        mt_model_desc_from_kv(&d[f], &kv[f], argv[1 + f]);
    }
    mt_model_desc_check(&d[0], &d[1], argv[2]);
    const char *kind = mt_kv_get(&kv[1], "optimizer");
    if (!kind) kind = "adam"; /* older checkpoints */
    if (mt_optim_parse(kind) < 0) {
        fprintf(stderr, "%s: unknown optimizer '%s'\n", argv[2], kind);
        return 2;
    }
    mt_layout_global_table(&d[0].model, 1, &t, NULL);
    /* every state the optimizer can have; the optional ones (SGD momentum,
     * Adafactor's first moment) compare only when both files hold them */
    struct mt_optim_config oc = {.kind = (enum mt_optim_kind)mt_optim_parse(kind), .sgd_momentum = 0.9f};
    mt_adafactor_defaults(&oc.adafactor);
    oc.adafactor.beta1 = 0.9f;
    struct mt_optimizer opt[2];
    float *params[2];
    unsigned loaded[2];
    struct mt_ckpt_group groups[2][1 + MT_OPTIM_MAX_STATES];
    char prefix[1 + MT_OPTIM_MAX_STATES][64] = {"model/"};
    int ng = 0;
    for (int f = 0; f < 2; f++) {
        mt_optim_init(&opt[f], &oc, be, &t);
        params[f] = mt_alloc(be, t.total * sizeof(float));
        mt_memset0(be, params[f], t.total * sizeof(float));
        groups[f][0] = (struct mt_ckpt_group){prefix[0], params[f], 1, NULL};
        ng = 1 + opt[f].nstate;
        for (int g = 1; g < ng; g++) {
            const struct mt_optim_state *st = &opt[f].state[g - 1];
            snprintf(prefix[g], sizeof prefix[g], "optim/%s/", st->name);
            groups[f][g] = (struct mt_ckpt_group){prefix[g], st->base, 0, &st->table};
        }
        loaded[f] = mt_ckpt_read_tensors(argv[1 + f], &t, NULL, groups[f], ng, be);
    }
    int bad = 0;
    for (int g = 0; g < ng; g++) {
        if (!(loaded[0] >> g & loaded[1] >> g & 1)) {
            if ((loaded[0] ^ loaded[1]) >> g & 1) {
                printf("%s: in one file only\n", prefix[g]);
                bad = 1;
            }
            continue;
        }
        const struct mt_param_table *gt = groups[0][g].table ? groups[0][g].table : &t;
        double worst = 0;
        const char *where = "";
        for (int i = 0; i < gt->n; i++) {
            const struct mt_param *p = &gt->p[i];
            const float *a = groups[0][g].base + p->offset, *b = groups[1][g].base + p->offset;
            double dmax = 0, bmax = 0;
            for (size_t j = 0; j < p->numel; j++) {
                dmax = fmax(dmax, fabs((double)a[j] - b[j]));
                bmax = fmax(bmax, fabs((double)b[j]));
            }
            double dev = dmax / fmax(bmax, 1e-30);
            if (bmax == 0 && dmax == 0) dev = 0;
            if (dev > TOL_OF(p->name)) {
                printf("%s%s: deviation %.3g above its tolerance %g\n", prefix[g], p->name, dev, TOL_OF(p->name));
                bad = 1;
            }
            if (dev > worst) worst = dev, where = p->name;
        }
        printf("%-22s max deviation %.3g (%s)\n", prefix[g], worst, where);
    }
    /* everything freed, so that --enable-asan's leak check stays quiet */
    for (int f = 0; f < 2; f++) {
        mt_optim_free(&opt[f]);
        mt_dealloc(be, params[f]);
        mt_kv_free(&kv[f]);
    }
    mt_params_free(&t);
    mt_backend_free(be);
    return bad;
}
