/* ckpt_diff.c: compares two megatron-c checkpoints tensor by tensor (a test
 * helper, not installed). Prints, per group (model/, optim/exp_avg/,
 * optim/exp_avg_sq/), the largest deviation max|a-b| / max|b| over the
 * tensors and the tensor where it occurs; exits 1 when any deviation
 * exceeds its tolerance.
 *   ckpt_diff FILE_A FILE_B [TOL [PART=TOL2 ...]]
 * (files: DIR/iter_N/model_optim_rng.mtc). PART=TOL2 gives the tensors whose
 * name contains PART their own tolerance, so that one tensor known to drift
 * (tests/cuda_run.sh) does not loosen the check of all the others. */
#include "backend/backend.h"
#include "ckpt/model_meta.h"
#include "model/layout.h"
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
    float *buf[2][3];
    struct mt_param_table t;
    for (int f = 0; f < 2; f++) {
        mt_ckpt_read_meta(argv[1 + f], &kv[f]);
        mt_model_desc_from_kv(&d[f], &kv[f], argv[1 + f]);
    }
    mt_model_desc_check(&d[0], &d[1], argv[2]);
    mt_layout_global_table(&d[0].model, 1, &t, NULL);
    for (int f = 0; f < 2; f++) {
        for (int g = 0; g < 3; g++) {
            buf[f][g] = mt_alloc(be, t.total * sizeof(float));
            mt_memset0(be, buf[f][g], t.total * sizeof(float));
        }
        const struct mt_ckpt_group groups[] = {{"model/", buf[f][0], 1},
                                               {"optim/exp_avg/", buf[f][1], 1},
                                               {"optim/exp_avg_sq/", buf[f][2], 1}};
        mt_ckpt_read_tensors(argv[1 + f], &t, NULL, groups, 3, be);
    }
    const char *names[3] = {"model/", "optim/exp_avg/", "optim/exp_avg_sq/"};
    int bad = 0;
    for (int g = 0; g < 3; g++) {
        double worst = 0;
        const char *where = "";
        for (int i = 0; i < t.n; i++) {
            const struct mt_param *p = &t.p[i];
            const float *a = buf[0][g] + p->offset, *b = buf[1][g] + p->offset;
            double dmax = 0, bmax = 0;
            for (size_t j = 0; j < p->numel; j++) {
                dmax = fmax(dmax, fabs((double)a[j] - b[j]));
                bmax = fmax(bmax, fabs((double)b[j]));
            }
            double dev = dmax / fmax(bmax, 1e-30);
            if (bmax == 0 && dmax == 0) dev = 0;
            if (dev > TOL_OF(p->name)) {
                printf("%s%s: deviation %.3g above its tolerance %g\n", names[g], p->name, dev, TOL_OF(p->name));
                bad = 1;
            }
            if (dev > worst) worst = dev, where = p->name;
        }
        printf("%-18s max deviation %.3g (%s)\n", names[g], worst, where);
    }
    /* everything freed, so that --enable-asan's leak check stays quiet */
    for (int f = 0; f < 2; f++) {
        for (int g = 0; g < 3; g++) mt_dealloc(be, buf[f][g]);
        mt_kv_free(&kv[f]);
    }
    mt_params_free(&t);
    mt_backend_free(be);
    return bad;
}
