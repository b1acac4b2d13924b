#!/usr/bin/env python3
"""gen_optim_golden.py: golden values of the SGD and Adafactor optimizers
for tests/test_hf.c, computed by PyTorch (torch.optim.SGD) and Hugging Face
(transformers.optimization.Adafactor) themselves.

For gpt2_tiny and llama_tiny of tests/golden/hf (written by
gen_hf_golden.py; this script reads them and does not change them), in
float64 from their float32 weights, 10 steps on the 10 step batches of
<name>_golden.safetensors, each: forward, backward, clip_grad_norm_(1.0),
the optimizer's step. Three optimizers, each from the same start:

  sgd            torch.optim.SGD(lr 0.05, momentum 0.9), weight decay 0.01
                 on the 2-D tensors, 0 on the 1-D ones (Megatron's rule)
  adafactor      Adafactor(lr 1e-2, relative_step False, scale_parameter
                 True, beta1 0.9, clip_threshold 1.0, decay_rate -0.8,
                 eps (1e-30, 1e-3)), weight decay 0.01 on the 2-D tensors
  adafactor_rel  Adafactor(lr None, relative_step True, scale_parameter
                 True, warmup_init False, beta1 None), no weight decay

<name>_optim.safetensors holds (all F32):
  step.tokens, step.targets    (S, B, T) the step batches (copied)
  <opt>.hyper                  the settings: sgd (lr, momentum, wd, clip);
                               adafactor* (lr, beta1, wd, clip, relative_step,
                               scale_parameter, warmup_init, clip_threshold,
                               decay_rate, eps1, eps2)
  <opt>.step.loss, <opt>.step.grad_norm  (S,) before each update
  <opt>.final.<hf name>        every parameter after S steps

Adafactor factors the 2-D tensors as Hugging Face stores them (GPT-2's
Conv1D weights transposed against megatron-c's): its update is the same for
a matrix and its transpose, and for any order of its rows and columns, so
the stores agree. megatron-c must load the models unpadded
(--make-vocab-size-divisible-by 1): padded vocabulary rows would enter the
column statistics of the embedding.

Usage: python3 tests/golden/gen_optim_golden.py [-d tests/golden/hf]
Deterministic (CPU, float64).
"""
import argparse
import os

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from torch.func import functional_call
from transformers.optimization import Adafactor

CLIP = 1.0
SGD = dict(lr=0.05, momentum=0.9, wd=0.01)
ADAFACTOR = dict(lr=1e-2, beta1=0.9, wd=0.01, relative_step=0, scale_parameter=1, warmup_init=0,
                 clip_threshold=1.0, decay_rate=-0.8, eps1=1e-30, eps2=1e-3)
ADAFACTOR_REL = dict(lr=0.0, beta1=0.0, wd=0.0, relative_step=1, scale_parameter=1, warmup_init=0,
                     clip_threshold=1.0, decay_rate=-0.8, eps1=1e-30, eps2=1e-3)


# Megatron's (and megatron-c's) fused tensors of a Llama layer, made of
# Hugging Face's separate ones: Adafactor's statistics are per tensor, so it
# must see the fused ones (the row order inside them does not matter)
FUSED = {"self_attn.linear_qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
         "mlp.linear_fc1": ("mlp.gate_proj", "mlp.up_proj")}


def leaves_of(model):
    """The tensors the optimizer steps: megatron-c's (fused) ones, as leaves"""
    hf = dict(model.named_parameters())
    leaves, parts = {}, {}
    for n, p in hf.items():
        fused = None
        for fname, members in FUSED.items():
            for k, m in enumerate(members):
                if n.endswith("." + m + ".weight"):
                    fused = (n[: -len(m + ".weight")] + fname + ".weight", k, members)
        if fused is None:
            leaves[n] = torch.nn.Parameter(p.detach().clone())
            continue
        fname, k, members = fused
        parts[n] = (fname, k)
        if fname not in leaves:
            prefix = fname[: -len(fname.split(".", 3)[-1])]
            base = n[: -len(members[k] + ".weight")]
            leaves[fname] = torch.nn.Parameter(torch.cat([hf[base + m + ".weight"].detach()
                                                          for m in members]))
    return leaves, parts


def hf_params(model, leaves, parts):
    """Hugging Face's tensors as slices of the leaves"""
    out = {}
    for n, p in model.named_parameters():
        if n not in parts:
            out[n] = leaves[n]
            continue
        fname, k = parts[n]
        rows = p.shape[0]
        start = sum(q.shape[0] for m, q in model.named_parameters()
                    if m in parts and parts[m][0] == fname and parts[m][1] < k)
        out[n] = leaves[fname][start:start + rows]
    return out


def groups(leaves, wd):
    decay = [p for p in leaves.values() if p.ndim >= 2]
    no_decay = [p for p in leaves.values() if p.ndim < 2]
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(kind, leaves):
    if kind == "sgd":
        return torch.optim.SGD(groups(leaves, SGD["wd"]), lr=SGD["lr"], momentum=SGD["momentum"])
    h = ADAFACTOR if kind == "adafactor" else ADAFACTOR_REL
    return Adafactor(groups(leaves, h["wd"]), lr=h["lr"] if not h["relative_step"] else None,
                     eps=(h["eps1"], h["eps2"]), clip_threshold=h["clip_threshold"],
                     decay_rate=h["decay_rate"], beta1=h["beta1"] or None,
                     weight_decay=h["wd"], scale_parameter=bool(h["scale_parameter"]),
                     relative_step=bool(h["relative_step"]), warmup_init=bool(h["warmup_init"]))


def hyper(kind):
    if kind == "sgd":
        return [SGD["lr"], SGD["momentum"], SGD["wd"], CLIP]
    h = ADAFACTOR if kind == "adafactor" else ADAFACTOR_REL
    return [h["lr"], h["beta1"], h["wd"], CLIP, h["relative_step"], h["scale_parameter"],
            h["warmup_init"], h["clip_threshold"], h["decay_rate"], h["eps1"], h["eps2"]]


def run(hfdir, kind, tok, tgt, dtype):
    model = AutoModelForCausalLM.from_pretrained(hfdir, dtype=torch.float32).to(dtype).eval()
    leaves, parts = leaves_of(model)
    opt = make_optimizer(kind, leaves)
    losses, norms = [], []
    for k in range(tok.shape[0]):
        opt.zero_grad()
        logits = functional_call(model, hf_params(model, leaves, parts), (tok[k],)).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt[k].reshape(-1))
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(leaves.values()), CLIP)))
        losses.append(float(loss.detach()))
        opt.step()
    out = {f"{kind}.step.loss": torch.tensor(losses), f"{kind}.step.grad_norm": torch.tensor(norms),
           f"{kind}.hyper": torch.tensor(hyper(kind), dtype=torch.float64)}
    for n, p in hf_params(model, leaves, parts).items():
        out[f"{kind}.final.{n}"] = p.detach().clone()
    print(f"{os.path.basename(hfdir)} {kind}: losses {losses[0]:.6f} .. {losses[-1]:.6f}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-d", "--dir", default=os.path.join(os.path.dirname(__file__), "hf"))
    ap.add_argument("--fp32-drift", action="store_true",
                    help="print how far the same run in float32 lands from float64 (writes nothing)")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    for name in ("gpt2_tiny", "llama_tiny"):
        gold = load_file(os.path.join(args.dir, name + "_golden.safetensors"))
        tok, tgt = gold["step.tokens"].long(), gold["step.targets"].long()
        out = {"step.tokens": gold["step.tokens"], "step.targets": gold["step.targets"]}
        for kind in ("sgd", "adafactor", "adafactor_rel"):
            ref = run(os.path.join(args.dir, name), kind, tok, tgt, torch.float64)
            if args.fp32_drift:
                got = run(os.path.join(args.dir, name), kind, tok, tgt, torch.float32)
                worst = {}
                for k, r in ref.items():
                    g = k.split(".")[1]
                    d = float((got[k].double() - r.double()).abs().max() / max(float(r.abs().max()), 1e-6))
                    if d > worst.get(g, (0, ""))[0]:
                        worst[g] = (d, k)
                for g, (d, k) in sorted(worst.items()):
                    print(f"{name} {kind}: fp32 drift {g}: {d:.3g} ({k})")
            out.update(ref)
        if args.fp32_drift:
            continue
        out = {k: v.float().contiguous() for k, v in out.items()}
        path = os.path.join(args.dir, name + "_optim.safetensors")
        save_file(out, path)
        os.chmod(path, 0o644)


if __name__ == "__main__":
    main()
