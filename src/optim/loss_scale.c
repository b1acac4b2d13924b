/* loss_scale.c: see loss_scale.h */
#include "optim/loss_scale.h"

void mt_loss_scaler_dynamic(struct mt_loss_scaler *s, double initial, double min_scale, int window,
                            int hysteresis)
{
    *s = (struct mt_loss_scaler){1, initial, min_scale, window, hysteresis, 0, hysteresis};
}

void mt_loss_scaler_constant(struct mt_loss_scaler *s, double scale)
{
    *s = (struct mt_loss_scaler){0, scale, scale, 0, 0, 0, 0};
}

void mt_loss_scaler_update(struct mt_loss_scaler *s, int found_inf)
{
    if (!s->dynamic) return;
    if (found_inf) {
        s->growth = 0;
        s->hysteresis_left--;
        if (s->hysteresis_left <= 0) {
            const double lowered = s->scale * 0.5;
            s->scale = lowered > s->min_scale ? lowered : s->min_scale;
        }
        return;
    }
    if (++s->growth == s->window) {
        s->growth = 0;
        s->hysteresis_left = s->hysteresis;
        s->scale *= 2.0;
    }
}
