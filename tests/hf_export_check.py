#!/usr/bin/env python3
"""hf_export_check.py DIR FORWARD INPUTS: loads the Hugging Face directory DIR
(written by `megatron-c convert`) with transformers' from_pretrained, fails on
missing, unexpected or mismatched keys, and compares its logits and last
hidden states on the JSON lines INPUTS with megatron-c's (FORWARD, written by
`megatron-c forward`). Used by tests/test_hf_export.sh; exit 0 when they
agree to 1e-5 (relative to each tensor's largest magnitude)."""
import json
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main(d, fwd, inputs):
    model, info = AutoModelForCausalLM.from_pretrained(d, output_loading_info=True, dtype=torch.float32)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        print(f"{d}: from_pretrained reports {bad}")
        return 1
    ours = load_file(fwd)
    worst = 0.0
    with open(inputs) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    for i, line in enumerate(lines):
        ids = torch.tensor([line["input_ids"]])
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True)
        for name, ref in ((f"logits.{i}", out.logits[0]), (f"last_hidden_state.{i}", out.hidden_states[-1][0])):
            a = ours[name]
            if a.shape != ref.shape:
                print(f"{name}: shape {tuple(a.shape)} vs transformers {tuple(ref.shape)}")
                return 1
            worst = max(worst, float((a - ref).abs().max() / ref.abs().max().clamp_min(1e-6)))
    print(f"{type(model).__name__} from {d}: no missing or unexpected keys; "
          f"{len(lines)} inputs, max rel deviation from megatron-c {worst:.3g}")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
