#!/usr/bin/env python3
"""gen_rope_scaling_golden.py: a tiny Llama-3.1-style LlamaForCausalLM
(rope_type "llama3": factor 8, low/high frequency factors 1 and 4,
original context 8192; rope_theta 500000, so that the scaled, the
interpolated and the unscaled frequency bands all occur in a head of 16)
with fixed random weights, and its logits and last hidden states computed
by Hugging Face transformers in float64 from those float32 weights, for
tests/test_convert.sh (the loop over tests/golden/hf):

  hf/llama31_tiny/                  config.json + model.safetensors (f32)
  hf/llama31_tiny_inputs.jsonl      two sequences of token ids
  hf/llama31_tiny_forward.safetensors  logits.<i>, last_hidden_state.<i>
                                    as `megatron-c forward` writes them

Run: pip install torch transformers safetensors; python3 gen_rope_scaling_golden.py
"""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

V, C, T, B, SEED = 61, 32, 16, 2, 31


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf")
    name = "llama31_tiny"
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192, "rope_theta": 500000.0}
    cfg = LlamaConfig(hidden_size=C, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, head_dim=16, max_position_embeddings=T, vocab_size=V,
                      rms_norm_eps=1e-5, rope_theta=500000.0, rope_parameters=rope, rope_scaling=rope,
                      tie_word_embeddings=False, attention_bias=False, mlp_bias=False, attention_dropout=0.0,
                      hidden_act="silu", bos_token_id=0, eos_token_id=V - 1)
    gen = torch.Generator().manual_seed(SEED)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=gen) if p.dim() > 1 else 1 + 0.1 * torch.randn(p.shape, generator=gen))
    model = model.float().eval()
    model.save_pretrained(os.path.join(out, name), safe_serialization=True)
    inv = model.model.rotary_emb.inv_freq
    default = 1.0 / (500000.0 ** (torch.arange(0, 16, 2, dtype=torch.float32) / 16))
    changed = int((inv != default).sum())
    assert 0 < changed < len(inv), "the scaling must change some frequencies and keep others"
    tok = torch.randint(0, V, (B, T), generator=gen)
    model = model.double()
    fwd = {}
    with torch.no_grad():
        res = model(tok, output_hidden_states=True)
    for i in range(B):
        fwd[f"logits.{i}"] = res.logits[i].float().contiguous()
        fwd[f"last_hidden_state.{i}"] = res.hidden_states[-1][i].float().contiguous()
    save_file(fwd, os.path.join(out, name + "_forward.safetensors"))
    with open(os.path.join(out, name + "_inputs.jsonl"), "w") as f:
        for i in range(B):
            f.write(json.dumps({"input_ids": tok[i].tolist()}) + "\n")
    print(f"{name}: {changed} of {len(inv)} inverse frequencies scaled; logits[0][0][:3] {res.logits[0, 0, :3].tolist()}")


if __name__ == "__main__":
    main()
