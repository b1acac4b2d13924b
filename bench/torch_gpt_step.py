#!/usr/bin/env python3
"""torch_gpt_step.py: the reference for bench/bench_cuda.sh.

The GPT training step that bench/bench_step times (GPT-2 shape: pre-LN
blocks, fused QKV, tanh GELU, tied embeddings, vocabulary padded to 50304;
cross-entropy, backward, gradient clipping at 1.0, AdamW), written in plain
PyTorch and timed on the same device with the same batch. Prints one line
that bench_cuda.sh reads:

    torch: B=16 T=1024 tokens/s 12345.6 ms/step 1327.1 (fp32, cuda, NVIDIA H100 ...)

fp32 by default with TF32 off (as megatron-c's default); --tf32 allows it
for matmuls; --bf16 / --fp16 run the forward under torch.autocast with that
type (the matmuls in it, f32 weights, optimizer and loss; fp16 with a
GradScaler on CUDA), the reference for megatron-c's --bf16 / --fp16. Attention is F.scaled_dot_product_attention (PyTorch picks its
fastest fp32 kernel). --compile adds torch.compile.
"""
import argparse
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.NH = NH
        self.ln1 = nn.LayerNorm(C)
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C)
        self.fc = nn.Linear(C, 4 * C)
        self.fc_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        HS = C // self.NH
        # megatron-c's fused layout (B, T, NH, 3, HS); the split is a view
        qkv = self.qkv(self.ln1(x)).view(B, T, self.NH, 3, HS)
        q, k, v = (qkv[:, :, :, i].transpose(1, 2) for i in range(3))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, C, NH, V, maxT):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(maxT, C)
        self.blocks = nn.ModuleList(Block(C, NH) for _ in range(L))
        self.lnf = nn.LayerNorm(C)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def forward(self, tok, tgt):
        T = tok.shape[1]
        x = self.wte(tok) + self.wpe(torch.arange(T, device=tok.device))
        for blk in self.blocks:
            x = blk(x)
        logits = self.lnf(x) @ self.wte.weight.t()  # tied output layer
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.view(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50304, help="padded vocabulary (50257 -> 50304)")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--compile", action="store_true")
    half = ap.add_mutually_exclusive_group()
    half.add_argument("--bf16", action="store_true", help="forward under bf16 autocast")
    half.add_argument("--fp16", action="store_true", help="forward under fp16 autocast")
    a = ap.parse_args()

    dev = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.manual_seed(1234)
    model = GPT(a.layers, a.hidden, a.heads, a.vocab, a.seq).to(dev)
    step_model = torch.compile(model) if a.compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.01)
    g = torch.Generator(device="cpu").manual_seed(9)
    V = min(a.vocab, 50257)  # the token ids of the real vocabulary
    tok = torch.randint(0, V, (a.batch, a.seq), generator=g).to(dev)
    tgt = torch.randint(0, V, (a.batch, a.seq), generator=g).to(dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    amp = torch.bfloat16 if a.bf16 else torch.float16 if a.fp16 else None
    scaler = torch.amp.GradScaler(dev.type) if a.fp16 and dev.type == "cuda" else None

    def step():
        with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            loss = step_model(tok, tgt)
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    try:
        for _ in range(2):  # warm-up: allocator, kernel selection, compilation
            loss = step()
        sync()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            loss = step()
        sync()
        dt = (time.perf_counter() - t0) / a.steps
    except torch.cuda.OutOfMemoryError:
        print(f"torch: B={a.batch} T={a.seq} out of memory", file=sys.stderr)
        return 3
    if not math.isfinite(loss.item()):
        print("torch: non-finite loss", file=sys.stderr)
        return 1
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    mode = "bf16 autocast" if a.bf16 else "fp16 autocast" if a.fp16 else "tf32" if a.tf32 else "fp32"
    extra = f", peak memory {torch.cuda.max_memory_allocated(dev) / 2**30:.1f} GiB" \
        if dev.type == "cuda" else ""
    print(f"torch: B={a.batch} T={a.seq} tokens/s {a.batch * a.seq / dt:.1f} ms/step {1e3 * dt:.1f} "
          f"({mode}, {dev.type}, {name}, torch {torch.__version__}{extra})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
