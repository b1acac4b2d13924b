/* loss_scale.h: the loss scaler of fp16 training (Megatron's
 * DynamicGradScaler and ConstantGradScaler, megatron/core/optimizer/
 * grad_scaler.py).
 *
 * The loss is multiplied by the scale before the backward pass, so that
 * small gradients survive fp16's narrow range, and the gradients are
 * divided by it before the update. A dynamic scaler lowers the scale when
 * an iteration's gradients hold inf or NaN (that iteration is skipped:
 * no update) and raises it after `window` clean iterations:
 *   found inf:  growth = 0; hysteresis_left -= 1;
 *               if hysteresis_left <= 0: scale = max(scale * 0.5, min_scale)
 *   clean:      growth += 1; if growth == window:
 *               growth = 0; hysteresis_left = hysteresis; scale *= 2
 * (a single clean iteration does not restore the hysteresis; only a growth
 * does, as in Megatron). A constant scaler never changes. Its state
 * {scale, growth, hysteresis_left} goes into checkpoints. */
#ifndef MT_OPTIM_LOSS_SCALE_H
#define MT_OPTIM_LOSS_SCALE_H

struct mt_loss_scaler {
    int dynamic;            /* 0: a constant scale (--loss-scale) */
    double scale, min_scale;
    int window, hysteresis; /* --loss-scale-window, --hysteresis */
    int growth, hysteresis_left;
};

/* Megatron's defaults: --initial-loss-scale 2^32, --min-loss-scale 1,
 * --loss-scale-window 1000, --hysteresis 2 */
#define MT_LOSS_SCALE_INITIAL 4294967296.0

void mt_loss_scaler_dynamic(struct mt_loss_scaler *s, double initial, double min_scale, int window,
                            int hysteresis);
void mt_loss_scaler_constant(struct mt_loss_scaler *s, double scale);
/* After an iteration: found_inf says whether its gradients held inf/NaN. */
void mt_loss_scaler_update(struct mt_loss_scaler *s, int found_inf);

#endif
