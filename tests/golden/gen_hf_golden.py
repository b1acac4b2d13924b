#!/usr/bin/env python3
"""gen_hf_golden.py: Hugging Face models and golden values for tests/test_hf.c
and tests/test_convert.sh.

Builds two tiny models with Hugging Face `transformers` and fixed random
weights, saves them as Hugging Face directories (config.json +
model.safetensors, float32), and computes with transformers itself, in
float64, from exactly those float32 weights:

  gpt2_tiny   GPT2LMHeadModel: learned positions, LayerNorm, GELU (tanh),
              biases, tied output layer
  llama_tiny  LlamaForCausalLM: RoPE, RMSNorm, SwiGLU, grouped-query
              attention (4 query heads, 2 key/value heads), untied output
              layer, no biases
  bert_tiny   BertForPreTraining: post-LayerNorm, token types, the exact
              GELU, padding masked by attention_mask (the second sequence
              is 5 of 8 tokens), the masked-LM head (transform, decoder
              tied to the word embedding, bias) and the sentence-order
              (NSP) head on the pooler

For each model, <name>_golden.safetensors holds (all F32):
  tokens, targets            (B, T) one batch (BERT: targets are the MLM
                             labels, -100 where no loss is taken)
  types, lengths, labels     BERT only: token types (B, T), real tokens per
                             sequence (B), sentence-order labels (B)
  seq_logits                 BERT only: (B, 2) the NSP head's logits
  logits                     (B, T, V) of that batch
  last_hidden_state          (B, T, C) after the final norm
  loss                       (1,) mean cross-entropy of logits vs targets
  grad.<hf name>             the gradient of the loss for every parameter
  step.tokens, step.targets  (S, B, T) one batch per optimizer step
  step.loss, step.grad_norm  (S,) the loss before each update, the gradient
                             norm before clipping
  final.<hf name>            every parameter after S steps
  adamw                      (6,) lr, beta1, beta2, eps, weight decay, clip
The optimizer is torch.optim.AdamW, weight decay on the 2-D tensors only
(Megatron's rule: none on biases and norm weights), after
clip_grad_norm_(1.0).

<name>_forward.safetensors holds what `megatron-c forward` writes for
<name>_inputs.jsonl (the two rows of `tokens`; BERT's with their
token_type_ids and attention_mask): logits.<i> (T, V), last_hidden_state.<i>
(T, C) and, for BERT, seq_logits.<i> (1, 2).

gpt2_tiny_bf16/ and gpt2_tiny_f16/ are gpt2_tiny saved by torch in bfloat16
and float16: the reference for megatron-c's 16-bit reading and writing.

bert_tiny_base/ (BertModel: no heads), bert_tiny_mlm/ (BertForMaskedLM: the
MLM head, no pooler) and bert_tiny_cls/ (BertForSequenceClassification, 3
classes, a random classifier) hold bert_tiny's weights under the other BERT
architectures, each with <dir>_forward.safetensors for bert_tiny_inputs.jsonl
(last_hidden_state.<i>; logits.<i> for the MLM; seq_logits.<i> for the
classifier).

Usage:
    python3 tests/golden/gen_hf_golden.py [-o tests/golden/hf]
    python3 tests/golden/gen_hf_golden.py --fp32-drift
        (prints how far transformers in float32 lands from the float64
         values: what an exact fp32 implementation can expect; the basis of
         the tolerances of tests/test_hf.c)

Deterministic: fixed seeds, CPU.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
import transformers
from transformers import (BertConfig, BertForMaskedLM, BertForPreTraining,
                          BertForSequenceClassification, BertModel, GPT2Config, GPT2LMHeadModel,
                          LlamaConfig, LlamaForCausalLM)

V = 61        # vocabulary (megatron-c pads it to 128)
C = 32        # hidden size
B, T = 2, 8   # batch, sequence
NSTEPS = 10
LR, BETA1, BETA2, EPS, WD, CLIP = 1e-2, 0.9, 0.99, 1e-8, 0.1, 1.0
SEED = 20261202


def gpt2_model():
    cfg = GPT2Config(n_layer=2, n_embd=C, n_head=4, n_inner=4 * C, n_positions=16,
                     vocab_size=V, activation_function="gelu_new", layer_norm_epsilon=1e-5,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=V - 1, eos_token_id=V - 1)
    return GPT2LMHeadModel(cfg)


def llama_model():
    cfg = LlamaConfig(hidden_size=C, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                      max_position_embeddings=16, vocab_size=V, rms_norm_eps=1e-5,
                      rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False,
                      mlp_bias=False, attention_dropout=0.0, hidden_act="silu",
                      bos_token_id=0, eos_token_id=V - 1)
    return LlamaForCausalLM(cfg)


def bert_model():
    cfg = BertConfig(vocab_size=V, hidden_size=C, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=4 * C, hidden_act="gelu", hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0, max_position_embeddings=16,
                     type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0)
    return BertForPreTraining(cfg)


BERT_LENGTHS = [T, 5]  # real tokens of the two sequences; padding after


def bert_batch(gen):
    """One BERT batch: ids, token types (segment B from position 3), the
    attention mask of BERT_LENGTHS, MLM labels on about a third of the real
    positions (-100 elsewhere), sentence-order labels."""
    tok = torch.randint(1, V, (B, T), generator=gen)
    types = torch.zeros(B, T, dtype=torch.long)
    types[:, 3:] = 1
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(BERT_LENGTHS):
        mask[b, :n] = 1
        tok[b, n:] = 0
        types[b, n:] = 0
    pick = (torch.rand(B, T, generator=gen) < 0.35) & (mask == 1)
    pick[0, 1] = pick[1, 2] = True  # at least one per sequence
    labels = torch.where(pick, torch.randint(0, V, (B, T), generator=gen), torch.full((B, T), -100))
    nsp = torch.randint(0, 2, (B,), generator=gen)
    return {"input_ids": tok, "token_type_ids": types, "attention_mask": mask, "labels": labels,
            "next_sentence_label": nsp}


def randomize(model, gen):
    """Non-trivial float32 weights: matrices and embeddings N(0, 0.1^2),
    biases 0.1 N(0,1), norm weights 1 + 0.1 N(0,1), norm biases 0.1 N(0,1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "ln" in name or "norm" in name:
                p.copy_(1.0 + 0.1 * r if name.endswith("weight") else 0.1 * r)
            elif p.ndim == 1:
                p.copy_(0.1 * r)
            else:
                p.copy_(0.1 * r)


def loss_of(model, batch):
    """(logits, last hidden state, loss, extra outputs) of one batch"""
    if isinstance(batch, dict):  # BERT: transformers' own pretraining loss (MLM mean + NSP)
        out = model(**batch, output_hidden_states=True)
        return out.prediction_logits, out.hidden_states[-1], out.loss, \
            {"seq_logits": out.seq_relationship_logits.detach().clone()}
    tok, tgt = batch
    out = model(input_ids=tok, output_hidden_states=True)
    logits = out.logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
    return logits, out.hidden_states[-1], loss, {}


def run(model, batches):
    """Forward/backward on batches[0], then NSTEPS AdamW steps on batches[1:]."""
    model.zero_grad()
    logits, hidden, loss, extra = loss_of(model, batches[0])
    loss.backward()
    rec = {"logits": logits.detach().clone(), "last_hidden_state": hidden.detach().clone(),
           "loss": loss.detach().reshape(1).clone(), **extra}
    for n, p in model.named_parameters():
        rec["grad." + n] = p.grad.detach().clone()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(BETA1, BETA2), eps=EPS)
    losses, norms = [], []
    for batch in batches[1:]:
        opt.zero_grad()
        _, _, loss, _ = loss_of(model, batch)
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)))
        losses.append(float(loss))
        opt.step()
    rec["step.loss"] = torch.tensor(losses)
    rec["step.grad_norm"] = torch.tensor(norms)
    for n, p in model.named_parameters():
        rec["final." + n] = p.detach().clone()
    with torch.no_grad():  # leave the model as it started
        for n, p in model.named_parameters():
            p.copy_(start[n])
    return rec


def deviation(a, r):
    return float((a.double() - r.double()).abs().max() / max(float(r.double().abs().max()), 1e-6))


def generate(name, make, outdir, gen, fp32_drift):
    model = make()
    randomize(model, gen)
    model = model.float().eval()
    hfdir = os.path.join(outdir, name)
    model.save_pretrained(hfdir, safe_serialization=True)
    bert = isinstance(model, BertForPreTraining)
    if bert:
        batches = [bert_batch(gen) for _ in range(NSTEPS + 1)]
        tok = torch.stack([b["input_ids"] for b in batches])
        tgt = torch.stack([b["labels"] for b in batches])
    else:
        tok = torch.randint(0, V, (NSTEPS + 1, B, T), generator=gen)
        tgt = torch.randint(0, V, (NSTEPS + 1, B, T), generator=gen)
        batches = [(tok[i], tgt[i]) for i in range(NSTEPS + 1)]

    ref = run(model.double(), batches)
    if fp32_drift:
        got = run(model.float(), batches)
        worst = {}
        for k in ref:
            group = k.split(".")[0]
            d = deviation(got[k], ref[k])
            if d > worst.get(group, (0, ""))[0]:
                worst[group] = (d, k)
        for g, (d, k) in sorted(worst.items()):
            print(f"{name}: fp32 drift {g}: {d:.3g} ({k})")
        model.double()

    out = {k: v.float().contiguous() for k, v in ref.items()}
    out["tokens"], out["targets"] = tok[0].float(), tgt[0].float()
    out["step.tokens"], out["step.targets"] = tok[1:].float(), tgt[1:].float()
    if bert:
        for key, field in (("token_type_ids", "types"), ("next_sentence_label", "labels")):
            out[field] = batches[0][key].float()
            out["step." + field] = torch.stack([b[key] for b in batches[1:]]).float()
        out["lengths"] = torch.tensor(BERT_LENGTHS, dtype=torch.float32)
    out["adamw"] = torch.tensor([LR, BETA1, BETA2, EPS, WD, CLIP], dtype=torch.float32)
    save_file(out, os.path.join(outdir, name + "_golden.safetensors"))
    fwd = {}
    for i in range(B):
        fwd[f"logits.{i}"] = out["logits"][i].contiguous()
        fwd[f"last_hidden_state.{i}"] = out["last_hidden_state"][i].contiguous()
        if bert:
            fwd[f"seq_logits.{i}"] = out["seq_logits"][i:i + 1].contiguous()
    save_file(fwd, os.path.join(outdir, name + "_forward.safetensors"))
    with open(os.path.join(outdir, name + "_inputs.jsonl"), "w") as f:
        for i in range(B):
            line = {"input_ids": tok[0][i].tolist()}
            if bert:
                line["token_type_ids"] = batches[0]["token_type_ids"][i].tolist()
                line["attention_mask"] = batches[0]["attention_mask"][i].tolist()
            f.write(json.dumps(line) + "\n")
    print(f"{name}: loss {float(ref['loss'][0]):.8f}, {len(out)} golden tensors, "
          f"step losses {float(ref['step.loss'][0]):.5f} .. {float(ref['step.loss'][-1]):.5f}")
    return model.float()


def bert_variants(outdir, gen):
    """bert_tiny's weights as BertModel, BertForMaskedLM and
    BertForSequenceClassification, with their forward goldens"""
    src = BertForPreTraining.from_pretrained(os.path.join(outdir, "bert_tiny")).double().eval()
    with open(os.path.join(outdir, "bert_tiny_inputs.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    cfg = src.config
    for tag, cls in (("base", BertModel), ("mlm", BertForMaskedLM), ("cls", BertForSequenceClassification)):
        if cls is BertForSequenceClassification:
            cfg = BertConfig(**{**src.config.to_dict(), "num_labels": 3})
        m = cls(cfg).double().eval()
        with torch.no_grad():
            base = m if cls is BertModel else m.bert
            base.load_state_dict(src.bert.state_dict(), strict=False)
            if cls is BertForMaskedLM:
                m.cls.predictions.load_state_dict(src.cls.predictions.state_dict())
            if cls is BertForSequenceClassification:
                m.classifier.weight.copy_(0.1 * torch.randn(m.classifier.weight.shape, generator=gen))
                m.classifier.bias.copy_(0.1 * torch.randn(m.classifier.bias.shape, generator=gen))
        m.float().save_pretrained(os.path.join(outdir, "bert_tiny_" + tag), safe_serialization=True)
        m.double()
        fwd = {}
        for i, line in enumerate(lines):
            kw = {k: torch.tensor([line[k]]) for k in ("input_ids", "token_type_ids", "attention_mask")}
            out = m(**kw, output_hidden_states=True)
            fwd[f"last_hidden_state.{i}"] = out.hidden_states[-1][0].float().contiguous()
            if cls is BertForMaskedLM:
                fwd[f"logits.{i}"] = out.logits[0].float().contiguous()
            if cls is BertForSequenceClassification:
                fwd[f"seq_logits.{i}"] = out.logits.float().contiguous()
        save_file(fwd, os.path.join(outdir, f"bert_tiny_{tag}_forward.safetensors"))
        print(f"bert_tiny_{tag}: {cls.__name__}, {len(fwd)} forward tensors")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--outdir", default=os.path.join(os.path.dirname(__file__), "hf"))
    ap.add_argument("--fp32-drift", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    gpt2 = generate("gpt2_tiny", gpt2_model, a.outdir, gen, a.fp32_drift)
    gen2 = torch.Generator().manual_seed(SEED + 1)
    generate("llama_tiny", llama_model, a.outdir, gen2, a.fp32_drift)
    gen3 = torch.Generator().manual_seed(SEED + 2)
    generate("bert_tiny", bert_model, a.outdir, gen3, a.fp32_drift)
    bert_variants(a.outdir, torch.Generator().manual_seed(SEED + 3))
    for dtype, tag in ((torch.bfloat16, "bf16"), (torch.float16, "f16")):
        m = gpt2_model()
        m.load_state_dict(gpt2.state_dict())
        m.to(dtype).save_pretrained(os.path.join(a.outdir, "gpt2_tiny_" + tag), safe_serialization=True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")


if __name__ == "__main__":
    sys.exit(main())
