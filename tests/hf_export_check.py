#!/usr/bin/env python3
"""hf_export_check.py DIR FORWARD INPUTS: loads the Hugging Face directory DIR
(written by `megatron-c convert`) with transformers' from_pretrained as the
architecture its config.json names, fails on missing, unexpected or
mismatched keys, and compares its outputs on the JSON lines INPUTS (with
token_type_ids and attention_mask where a line has them) with megatron-c's
(FORWARD, written by `megatron-c forward`): the last hidden state, the
language-model logits and the sequence head's logits, whichever the
architecture has. Used by tests/test_hf_export.sh; exit 0 when they agree to
1e-5 (relative to each tensor's largest magnitude)."""
import json
import sys

import torch
import transformers
from safetensors.torch import load_file


def outputs(arch, out, n):
    """(megatron-c's name, transformers' tensor) for the first n real positions"""
    hidden = out.hidden_states[-1][0] if out.hidden_states is not None else out.last_hidden_state[0]
    pairs = [("last_hidden_state", hidden[:n])]
    if arch in ("GPT2LMHeadModel", "LlamaForCausalLM", "BertForMaskedLM"):
        pairs.append(("logits", out.logits[0][:n]))
    elif arch == "BertForPreTraining":
        pairs += [("logits", out.prediction_logits[0][:n]), ("seq_logits", out.seq_relationship_logits)]
    elif arch == "BertForSequenceClassification":
        pairs.append(("seq_logits", out.logits))
    return pairs


def main(d, fwd, inputs):
    with open(f"{d}/config.json") as f:
        arch = json.load(f)["architectures"][0]
    cls = getattr(transformers, arch)
    model, info = cls.from_pretrained(d, output_loading_info=True, dtype=torch.float32)
    model.eval()
    bad = {k: v for k, v in info.items() if v}
    if bad:
        print(f"{d}: from_pretrained reports {bad}")
        return 1
    ours = load_file(fwd)
    worst, compared = 0.0, set()
    with open(inputs) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    for i, line in enumerate(lines):
        kw = {k: torch.tensor([line[k]]) for k in ("input_ids", "token_type_ids", "attention_mask") if k in line}
        n = sum(line["attention_mask"]) if "attention_mask" in line else len(line["input_ids"])
        with torch.no_grad():
            out = model(**kw, output_hidden_states=True)
        for name, ref in outputs(arch, out, n):
            if f"{name}.{i}" not in ours:
                print(f"{fwd}: no {name}.{i}, which {arch} gives")
                return 1
            a = ours[f"{name}.{i}"]
            a = a[:n] if name != "seq_logits" else a
            if a.shape != ref.shape:
                print(f"{name}.{i}: shape {tuple(a.shape)} vs transformers {tuple(ref.shape)}")
                return 1
            worst = max(worst, float((a - ref).abs().max() / ref.abs().max().clamp_min(1e-6)))
            compared.add(name)
    print(f"{arch} from {d}: no missing or unexpected keys; {len(lines)} inputs, "
          f"{', '.join(sorted(compared))}: max rel deviation from megatron-c {worst:.3g}")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
