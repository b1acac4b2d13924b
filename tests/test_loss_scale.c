/* test_loss_scale.c: the loss scaler (optim/loss_scale.h) against
 * Megatron-core's own DynamicGradScaler, whose state after every update of
 * fixed found-inf sequences tests/golden/gen_loss_scale_golden.py wrote to
 * tests/golden/loss_scale.txt; and the constant scaler, which never moves.
 *
 * Run: tests/test_loss_scale  (MT_SRCDIR names the source tree; make check sets it) */
#include "optim/loss_scale.h"
#include "tap.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void golden(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        tap_ok(0, "golden file %s opens", path);
        return;
    }
    char line[256];
    struct mt_loss_scaler s;
    int configs = 0;
    long steps = 0, left = 0, bad = 0;
    double initial = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        double mn;
        int window, hyst;
        if (sscanf(line, "config %lf %lf %d %d %ld", &initial, &mn, &window, &hyst, &steps) == 5) {
            mt_loss_scaler_dynamic(&s, initial, mn, window, hyst);
            left = steps;
            bad = 0;
            configs++;
            continue;
        }
        int found, growth, hl;
        double scale;
        if (sscanf(line, "%d %lf %d %d", &found, &scale, &growth, &hl) != 4 || left <= 0) {
            tap_ok(0, "golden line '%.60s' parses", line);
            break;
        }
        mt_loss_scaler_update(&s, found);
        if ((s.scale != scale || s.growth != growth || s.hysteresis_left != hl) && bad++ == 0)
            tap_diag("  step %ld: scale %.17g growth %d hysteresis %d, Megatron %.17g %d %d", steps - left + 1,
                     s.scale, s.growth, s.hysteresis_left, scale, growth, hl);
        if (--left == 0)
            tap_ok(bad == 0, "dynamic scaler from %.17g: %ld updates equal Megatron's DynamicGradScaler (%ld differ)",
                   initial, steps, bad);
    }
    fclose(f);
    tap_ok(configs == 3 && left == 0, "the golden file holds its 3 sequences whole (%d read)", configs);
}

int main(void)
{
    const char *src = getenv("MT_SRCDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/loss_scale.txt", src ? src : ".");
    golden(path);

    struct mt_loss_scaler c;
    mt_loss_scaler_constant(&c, 65536.0);
    for (int i = 0; i < 50; i++) mt_loss_scaler_update(&c, i % 3 == 0);
    tap_ok(c.scale == 65536.0 && !c.dynamic, "a constant scaler keeps its scale through infs and clean steps");

    /* the default configuration's first fp16 steps, from the rule itself:
     * hysteresis 2 spends one inf, then every inf halves */
    struct mt_loss_scaler d;
    mt_loss_scaler_dynamic(&d, MT_LOSS_SCALE_INITIAL, 1.0, 1000, 2);
    mt_loss_scaler_update(&d, 1);
    const int kept = d.scale == MT_LOSS_SCALE_INITIAL;
    mt_loss_scaler_update(&d, 1);
    tap_ok(kept && d.scale == MT_LOSS_SCALE_INITIAL / 2, "2^32, hysteresis 2: the first inf keeps the scale, the "
           "second halves it (%.17g)", d.scale);
    return tap_done();
}
