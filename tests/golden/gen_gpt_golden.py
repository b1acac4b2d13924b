#!/usr/bin/env python3
"""gen_gpt_golden.py: golden values for tests/test_golden.c.

An independent float64 PyTorch (autograd) implementation of the megatron-c GPT
(src/model/gpt.h) on a tiny configuration with fixed random weights. Writes
the logits, the loss and every parameter gradient for one batch, then the
losses, pre-clip gradient norms and final parameters of 10 AdamW steps
(torch.optim.AdamW + clip_grad_norm_), each step on its own batch.

Usage:
    python3 tests/golden/gen_gpt_golden.py [-o tests/golden/gpt_tiny.bin]
    python3 tests/golden/gen_gpt_golden.py --fp32-drift
        (also runs everything in float32 and prints the deviations from the
         float64 reference: what an exact fp32 implementation can expect;
         used to choose the tolerances of tests/test_golden.c)

Deterministic: fixed seed, CPU, float64. The file format is described in
tests/golden/README.
"""
import argparse
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------- config
L = 2          # num_layers
C = 32         # hidden_size
NH = 4         # num_heads
HS = C // NH   # head size
FF = 128       # ffn_hidden_size
MAXPOS = 16    # max_position_embeddings
V = 61         # vocab_size
VP = 64        # padded_vocab_size
B = 2          # micro-batch
T = 8          # sequence length (< MAXPOS: position rows T.. are unused)
NSTEPS = 10
SEED = 20240601

LR = 1e-2
BETA1, BETA2 = 0.9, 0.99
EPS = 1e-8
WD = 0.1
CLIP = 1.0

MAGIC = b"MTGOLD01"


def param_specs():
    """(name, shape, kind) in megatron-c table order. kind: w (matrix),
    b (bias), lnw (layernorm weight), lnb (layernorm bias), emb (table)."""
    s = [("embedding.word_embeddings.weight", (VP, C), "emb"),
         ("embedding.position_embeddings.weight", (MAXPOS, C), "emb")]
    for i in range(L):
        p = f"decoder.layers.{i}."
        s += [(p + "input_layernorm.weight", (C,), "lnw"),
              (p + "input_layernorm.bias", (C,), "lnb"),
              (p + "self_attention.linear_qkv.weight", (3 * C, C), "w"),
              (p + "self_attention.linear_qkv.bias", (3 * C,), "b"),
              (p + "self_attention.linear_proj.weight", (C, C), "w"),
              (p + "self_attention.linear_proj.bias", (C,), "b"),
              (p + "pre_mlp_layernorm.weight", (C,), "lnw"),
              (p + "pre_mlp_layernorm.bias", (C,), "lnb"),
              (p + "mlp.linear_fc1.weight", (FF, C), "w"),
              (p + "mlp.linear_fc1.bias", (FF,), "b"),
              (p + "mlp.linear_fc2.weight", (C, FF), "w"),
              (p + "mlp.linear_fc2.bias", (C,), "b")]
    s += [("decoder.final_layernorm.weight", (C,), "lnw"),
          ("decoder.final_layernorm.bias", (C,), "lnb")]
    return s


def make_params(gen):
    """float32 draws (so every value is exact in fp32), returned as float32."""
    out = {}
    for name, shape, kind in param_specs():
        r = torch.randn(shape, generator=gen, dtype=torch.float32)
        out[name] = (1.0 + 0.1 * r) if kind == "lnw" else 0.1 * r
    return out


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def layernorm(x, w, b):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased
    return (x - mean) / torch.sqrt(var + 1e-5) * w + b


def forward(P, tok, tgt):
    """P: dict name -> tensor (requires_grad). Returns (logits, loss)."""
    Bn, Tn = tok.shape
    pos = torch.arange(Tn)
    x = P["embedding.word_embeddings.weight"][tok] + P["embedding.position_embeddings.weight"][pos]
    mask = torch.ones(Tn, Tn, dtype=torch.bool).tril()
    for i in range(L):
        p = f"decoder.layers.{i}."
        h = layernorm(x, P[p + "input_layernorm.weight"], P[p + "input_layernorm.bias"])
        qkv = h @ P[p + "self_attention.linear_qkv.weight"].T + P[p + "self_attention.linear_qkv.bias"]
        # Megatron fused QKV: per token (NH, 3, HS), i.e. [q_j, k_j, v_j] per head j
        qkv = qkv.view(Bn, Tn, NH, 3, HS)
        q = qkv[:, :, :, 0, :].transpose(1, 2)  # (B, NH, T, HS)
        k = qkv[:, :, :, 1, :].transpose(1, 2)
        v = qkv[:, :, :, 2, :].transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(HS)
        s = s.masked_fill(~mask, float("-inf"))
        a = torch.softmax(s, dim=-1)
        y = (a @ v).transpose(1, 2).reshape(Bn, Tn, C)  # heads concatenated in order
        x = x + (y @ P[p + "self_attention.linear_proj.weight"].T + P[p + "self_attention.linear_proj.bias"])
        h = layernorm(x, P[p + "pre_mlp_layernorm.weight"], P[p + "pre_mlp_layernorm.bias"])
        f = gelu_tanh(h @ P[p + "mlp.linear_fc1.weight"].T + P[p + "mlp.linear_fc1.bias"])
        x = x + (f @ P[p + "mlp.linear_fc2.weight"].T + P[p + "mlp.linear_fc2.bias"])
    x = layernorm(x, P["decoder.final_layernorm.weight"], P["decoder.final_layernorm.bias"])
    # tied output layer over the real vocabulary: the VP - V padding rows of the
    # embedding make no logit, (B, T, V)
    logits = x @ P["embedding.word_embeddings.weight"][:V].T
    # cross-entropy over the V real columns, mean over B*T
    loss = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), reduction="mean")
    return logits, loss


def run(params32, tok, tgt, step_tok, step_tgt, dtype):
    """Everything in `dtype`. Returns a dict of results (as float64 tensors)."""
    names = [n for n, _, _ in param_specs()]
    P = {n: params32[n].to(dtype).clone().requires_grad_(True) for n in names}
    res = {}
    logits, loss = forward(P, tok, tgt)
    loss.backward()
    res["logits"] = logits.detach().double()
    res["loss"] = loss.detach().double().reshape(1)
    res["grads"] = {n: P[n].grad.detach().double().clone() for n in names}
    for n in names:
        P[n].grad = None

    decay = [P[n] for n, shape, _ in param_specs() if len(shape) == 2]
    no_decay = [P[n] for n, shape, _ in param_specs() if len(shape) != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(BETA1, BETA2), eps=EPS,
                            foreach=False, fused=False)
    losses, norms = [], []
    for s in range(NSTEPS):
        opt.zero_grad(set_to_none=True)
        _, l = forward(P, step_tok[s], step_tgt[s])
        l.backward()
        gn = torch.nn.utils.clip_grad_norm_([P[n] for n in names], CLIP, foreach=False)
        opt.step()
        losses.append(l.item())
        norms.append(gn.item())
    res["step_loss"] = torch.tensor(losses, dtype=torch.float64)
    res["step_grad_norm"] = torch.tensor(norms, dtype=torch.float64)
    res["final"] = {n: P[n].detach().double().clone() for n in names}
    return res


class Writer:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(MAGIC)
        self.n = 0

    def rec(self, name, t):
        t = torch.as_tensor(t).detach().to(torch.float64).contiguous()
        dims = list(t.shape) if t.dim() > 0 else [1]
        nb = name.encode("ascii")
        self.f.write(struct.pack("<I", len(nb)))
        self.f.write(nb)
        self.f.write(struct.pack("<I", len(dims)))
        self.f.write(struct.pack("<%dI" % len(dims), *dims))
        self.f.write(t.numpy().astype("<f8").tobytes())
        self.n += 1
        print("  %-56s %s" % (name, "x".join(str(d) for d in dims)))

    def close(self):
        self.f.close()


def maxrel(a, r):
    """max |a - r| / max(max |r|, 1e-6): the measure tests/test_golden.c uses."""
    return ((a - r).abs().max() / max(r.abs().max().item(), 1e-6)).item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("-o", "--output", default=os.path.join(here, "gpt_tiny.bin"))
    ap.add_argument("--fp32-drift", action="store_true",
                    help="also run in float32 and print its deviation from float64")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(SEED)
    params32 = make_params(gen)
    tok = torch.randint(0, V, (B, T), generator=gen)
    tgt = torch.randint(0, V, (B, T), generator=gen)
    step_tok = torch.randint(0, V, (NSTEPS, B, T), generator=gen)
    step_tgt = torch.randint(0, V, (NSTEPS, B, T), generator=gen)

    res = run(params32, tok, tgt, step_tok, step_tgt, torch.float64)

    print("writing %s" % args.output)
    w = Writer(args.output)
    w.rec("config", torch.tensor([L, C, NH, FF, MAXPOS, V, VP, B, T, NSTEPS]))
    w.rec("adamw", torch.tensor([LR, BETA1, BETA2, EPS, WD, CLIP], dtype=torch.float64))
    for n, _, _ in param_specs():
        w.rec("param/" + n, params32[n])
    w.rec("tokens", tok)
    w.rec("targets", tgt)
    w.rec("logits", res["logits"])
    w.rec("loss", res["loss"])
    for n, _, _ in param_specs():
        w.rec("grad/" + n, res["grads"][n])
    w.rec("step/tokens", step_tok)
    w.rec("step/targets", step_tgt)
    w.rec("step/loss", res["step_loss"])
    w.rec("step/grad_norm", res["step_grad_norm"])
    for n, _, _ in param_specs():
        w.rec("final/" + n, res["final"][n])
    w.close()
    print("%d records, %d bytes" % (w.n, os.path.getsize(args.output)))
    print("loss %.17g" % res["loss"].item())
    print("step losses     " + " ".join("%.6f" % x for x in res["step_loss"].tolist()))
    print("step grad norms " + " ".join("%.6f" % x for x in res["step_grad_norm"].tolist()))

    if args.fp32_drift:
        r32 = run(params32, tok, tgt, step_tok, step_tgt, torch.float32)
        print("float32 torch vs float64 reference (max|a-r|/max|r| per tensor, worst):")
        print("  logits          %.3g" % maxrel(r32["logits"], res["logits"]))
        print("  loss            %.3g" % maxrel(r32["loss"], res["loss"]))
        g = max((maxrel(r32["grads"][n], res["grads"][n]), n) for n in res["grads"])
        print("  grad            %.3g (%s)" % g)
        sl = ((r32["step_loss"] - res["step_loss"]).abs() / res["step_loss"].abs()).max().item()
        sn = ((r32["step_grad_norm"] - res["step_grad_norm"]).abs()
              / res["step_grad_norm"].abs()).max().item()
        print("  step loss       %.3g (relative, elementwise)" % sl)
        print("  step grad norm  %.3g (relative, elementwise)" % sn)
        fp = max((maxrel(r32["final"][n], res["final"][n]), n) for n in res["final"])
        print("  final params    %.3g (%s)" % fp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
