#!/usr/bin/env python3
"""Generator of tests/golden/loss_scale.txt (tests/test_loss_scale.c).

Runs Megatron-core's own DynamicGradScaler (megatron/core/optimizer/
grad_scaler.py, `pip install megatron-core`) over fixed sequences of
found-inf flags and writes its state {scale, growth_tracker,
hysteresis_tracker} after every update. The scaler keeps its scale in a CUDA
tensor; without a GPU the tensors are made on the CPU instead (the
arithmetic is the same float32 torch arithmetic).

Format (text, '#' comments):
    config INITIAL MIN WINDOW HYSTERESIS STEPS
    then STEPS lines: FOUND_INF SCALE GROWTH HYSTERESIS_LEFT
Deterministic: rerunning gives the same file.

    python3 tests/golden/gen_loss_scale_golden.py   # writes tests/golden/loss_scale.txt
"""
import os
import random
import sys

import torch

_tensor = torch.tensor


def _cpu_tensor(*args, **kw):
    if not torch.cuda.is_available():
        kw.pop("device", None)
    return _tensor(*args, **kw)


torch.tensor = _cpu_tensor
from megatron.core.optimizer.grad_scaler import DynamicGradScaler  # noqa: E402

# (initial, min, window, hysteresis, flags)
rng = random.Random(20261203)
CONFIGS = [
    # Megatron's defaults with a short window: an fp16 start (overflows
    # until the scale fits), clean runs that grow it, isolated infs that only
    # spend hysteresis
    (2.0**32, 1.0, 20, 2, [1] * 25 + [0] * 45 + [1, 0, 1] + [0] * 25 + [1, 1, 1] + [0] * 30),
    # the floor: the scale clamps at min and stays there
    (64.0, 4.0, 5, 1, [1] * 10 + [0] * 12 + [1] * 3),
    # random flags, hysteresis 3
    (1024.0, 1.0, 7, 3, [1 if rng.random() < 0.3 else 0 for _ in range(300)]),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "loss_scale.txt")
    lines = ["# Megatron-core DynamicGradScaler, written by gen_loss_scale_golden.py",
             "# growth factor 2, backoff factor 0.5 (Megatron's hard-coded values)"]
    for initial, mn, window, hyst, flags in CONFIGS:
        s = DynamicGradScaler(initial_scale=initial, min_scale=mn, growth_factor=2.0, backoff_factor=0.5,
                              growth_interval=window, hysteresis=hyst)
        lines.append("config %.17g %.17g %d %d %d" % (initial, mn, window, hyst, len(flags)))
        for f in flags:
            s.update(bool(f))
            lines.append("%d %.17g %d %d" % (f, float(s.scale.item()), s._growth_tracker, s._hysteresis_tracker))
    with open(out, "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
