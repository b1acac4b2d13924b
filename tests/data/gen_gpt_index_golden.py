#!/usr/bin/env python3
"""gen_gpt_index_golden.py: reference index arrays for src/data/gpt_dataset.c,
checked by tests/test_indexed.c. Writes, next to this script:

  gpt_golden_a_text_document.{bin,idx}  150 sequences, uint16 (two of them empty)
  gpt_golden_b_text_document.{bin,idx}  149 sequences, int32 (ids above 65535)
  gpt_index_golden.txt                  the expected arrays, as text

Ground truth: Megatron-LM's GPT data pipeline (megatron/core/datasets:
gpt_dataset.py, helpers.cpp build_sample_idx / build_blending_indices /
build_exhaustive_blending_indices, blended_megatron_dataset_builder.py
_get_size_per_split_per_dataset, blended_megatron_dataset_config.py split
parsing, utils.normalize), restated below in plain Python on top of numpy.
Every random draw is numpy's own numpy.random.RandomState(seed).shuffle, as
Megatron uses it, so the C port of MT19937 and of the legacy shuffle is
checked against numpy itself. The .bin/.idx files are written following
Megatron's _IndexWriter layout (not with megatron-c's writer).

Needs: numpy.  Usage: python3 tests/data/gen_gpt_index_golden.py
Deterministic: re-running gives the same files.

Format of gpt_index_golden.txt, one record per line, words separated by
single spaces ('#' lines are comments):
  interval SEED MAX V1 V2 ...        RandomState(SEED).randint(0, MAX+1) draws
                                     (numpy's masked rejection = random_interval)
  shuffle SEED N V1 ... VN           RandomState(SEED).shuffle(arange(N, dtype=int32))
  normalize N W1..WN -> R1..RN       utils.normalize (numpy.sum), as float.hex()
  splitidx SPLIT N B0 E0 B1 E1 B2 E2 split bookends over N sequences (-1 -1: None)
  case NAME                          then, until 'end':
  data WORD...                       --data-path words (prefixes relative to this dir)
  split SPLIT
  seq_length S
  seed SEED
  num_samples A B C                  -1 = None (one epoch)
  present I P BLENDED NPARTS SIZE    per split
  part I K BEGIN END EPOCHS SEPARATE NUM_SAMPLES
  document_index I K N V...
  sample_index I K N V...            N = 2 * (samples + 1) values, row-major
  shuffle_index I K N V...
  dataset_index I N V...
  dataset_sample_index I N V...
  sample I J N T1..TN                tokens of dataset[J] of split I (seq_length+1)
  end
"""
import math
import os
import re
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SPLITS = ["train", "valid", "test"]


# ---- the indexed dataset files (the _IndexWriter layout) ----------------------------

def write_indexed(prefix, seqs, dtype):
    code = {np.uint16: 8, np.int32: 4}[dtype]
    itemsize = np.dtype(dtype).itemsize
    with open(prefix + ".bin", "wb") as f:
        for s in seqs:
            f.write(np.array(s, dtype=dtype).tobytes(order="C"))
    lengths = [len(s) for s in seqs]
    pointers, pos = [], 0
    for n in lengths:
        pointers.append(pos)
        pos += n * itemsize
    doc_indices = list(range(len(seqs) + 1))
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", code))
        f.write(struct.pack("<Q", len(lengths)))
        f.write(struct.pack("<Q", len(doc_indices)))
        f.write(np.array(lengths, dtype=np.int32).tobytes(order="C"))
        f.write(np.array(pointers, dtype=np.int64).tobytes(order="C"))
        f.write(np.array(doc_indices, dtype=np.int64).tobytes(order="C"))
    return np.array(lengths, dtype=np.int32), seqs


def make_data():
    rs = np.random.RandomState(20240601)
    a = []
    for i in range(150):
        n = int(rs.randint(1, 41))
        if i in (17, 88):
            n = 0  # empty sequences: not written by preprocess, but legal in the format
        a.append([(i * 31 + k * 7) % 50000 + 1 for k in range(n)])
    b = []
    for i in range(149):
        n = int(rs.randint(1, 30))
        b.append([70000 + i * 101 + k for k in range(n)])
    da = write_indexed(os.path.join(HERE, "gpt_golden_a_text_document"), a, np.uint16)
    db = write_indexed(os.path.join(HERE, "gpt_golden_b_text_document"), b, np.int32)
    return {"gpt_golden_a_text_document": da, "gpt_golden_b_text_document": db}


# ---- Megatron's pipeline, restated ---------------------------------------------------

def normalize(weights):
    w = np.array(weights, dtype=np.float64)
    return (w / np.sum(w)).tolist()


def split_matrix(split):
    vec = list(map(float, re.findall(r"[.0-9]+", split)))
    vec = vec + [0.0] * (3 - len(vec))
    vec = normalize(vec)
    ex = [0]
    for v in vec:
        ex.append(ex[-1] + v)
    out = []
    for i in range(3):
        a, b = ex[i], ex[i + 1]
        out.append(None if b <= a else (a, b))
    return out


def split_range(bookend, n):
    return int(round(bookend[0] * float(n))), int(round(bookend[1] * float(n)))


def build_sample_idx(sizes, doc_idx, seq_length, num_epochs, tokens_per_epoch):
    num_samples = (num_epochs * tokens_per_epoch - 1) // seq_length
    out = np.zeros((num_samples + 1, 2), dtype=np.int64)
    k, di, off = 1, 0, 0
    while k <= num_samples:
        remaining = seq_length + 1
        while remaining != 0:
            doc_len = int(sizes[doc_idx[di]]) - off
            remaining -= doc_len
            if remaining <= 0:
                off += remaining + doc_len - 1
                remaining = 0
            else:
                if di == len(doc_idx) - 1:
                    assert k == num_samples
                    off = int(sizes[doc_idx[di]]) - 1
                    break
                di += 1
                off = 0
        out[k] = (di, off)
        k += 1
    return out


class GPT:
    def __init__(self, lengths, seqs, begin, end, num_samples, seq_length, seed):
        self.lengths, self.seqs, self.seq_length = lengths, seqs, seq_length
        self.begin, self.end = begin, end
        docs = np.arange(begin, end, dtype=np.int32)
        T = int(np.sum(lengths[docs]))
        self.T = T
        if T == 0:
            self.E, self.sep, self.n = 0, 0, 0
            self.doc_idx = np.zeros(0, np.int32)
            self.sample_idx = np.zeros((1, 2), np.int64)
            self.shuffle_idx = np.zeros(0, np.uint32)
            return
        E, tok = 1, T
        if num_samples is not None:
            want = num_samples * seq_length + 1
            while tok < want:
                E += 1
                tok += T
        sep = False
        if E > 1:
            sans = ((E - 1) * T - 1) // seq_length
            final = num_samples - sans
            per_epoch = (T - 1) // seq_length
            assert 0 <= final <= per_epoch + 1
            sep = final < int(0.80 * per_epoch)
        rs = np.random.RandomState(seed)

        def doc_index(epochs):
            d = np.tile(docs, epochs).astype(np.int32)
            rs.shuffle(d)
            return d

        if not sep:
            doc_idx = doc_index(E)
        else:
            doc_idx = np.concatenate((doc_index(E - 1), doc_index(1)))
        sample_idx = build_sample_idx(lengths, doc_idx, seq_length, E, T)
        total = sample_idx.shape[0] - 1
        dt = np.uint32 if total < np.iinfo(np.uint32).max - 1 else np.int64
        first = sans if sep else total
        sh = np.arange(0, first, dtype=dt)
        rs.shuffle(sh)
        if first != total:
            sh2 = np.arange(first, total, dtype=dt)
            rs.shuffle(sh2)
            sh = np.concatenate((sh, sh2))
        self.E, self.sep, self.n = E, int(sep), total
        self.doc_idx, self.sample_idx, self.shuffle_idx = doc_idx, sample_idx, sh

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        j = int(self.shuffle_idx[i])
        (d0, o0), (d1, o1) = self.sample_idx[j], self.sample_idx[j + 1]
        parts = []
        for d in range(d0, d1 + 1):
            s = self.seqs[self.doc_idx[d]]
            a = o0 if d == d0 else 0
            b = len(s) if d < d1 else o1 + 1
            parts.extend(s[a:b])
        assert len(parts) == self.seq_length + 1
        return parts


def blending(weights, size):
    cur = [0] * len(weights)
    di, dsi = [], []
    for s in range(size):
        x = max(float(s), 1.0)
        best, best_err = 0, weights[0] * x - float(cur[0])
        for k in range(1, len(weights)):
            e = weights[k] * x - float(cur[k])
            if e > best_err:
                best, best_err = k, e
        di.append(best)
        dsi.append(cur[best])
        cur[best] += 1
    return di, dsi


def blending_exhaustive(sizes):
    total = sum(sizes)
    w = [s / float(total) for s in sizes]
    cnt = [0] * len(sizes)
    live = [k for k in range(len(sizes)) if sizes[k] > 0]
    di, dsi, s = [], [], 0
    while live:
        x = max(float(s), 1.0)
        best, best_err = -1, -math.inf
        for k in live:  # ascending, as std::set
            e = w[k] * x - float(cnt[k])
            if e > best_err:
                best, best_err = k, e
        di.append(best)
        dsi.append(cnt[best])
        cnt[best] += 1
        if cnt[best] == sizes[best]:
            live.remove(best)
        s += 1
    return di, dsi


class Blend:
    def __init__(self, parts, di, dsi):
        self.parts, self.di, self.dsi = parts, di, dsi

    def __len__(self):
        return len(self.di)

    def __getitem__(self, j):
        return self.parts[self.di[j]][self.dsi[j]]


def parse_blend(words):
    if len(words) % 2 == 1:
        return words, None
    try:
        return words[1::2], [float(w) for w in words[0::2]]
    except ValueError:
        return words, None


def build(data, words, split, seq_length, seed, sizes):
    prefixes, weights = parse_blend(words)
    matrix = split_matrix(split)
    res = []
    for i in range(3):
        if matrix[i] is None:
            res.append(None)
            continue
        ns = sizes[i]
        rng = []
        for p in prefixes:
            lengths, _ = data[p]
            rng.append(split_range(matrix[i], len(lengths)))
        if len(prefixes) == 1 and weights is None:
            lengths, seqs = data[prefixes[0]]
            g = GPT(lengths, seqs, rng[0][0], rng[0][1], ns, seq_length, seed)
            res.append({"parts": [g], "blended": False, "top": g})
            continue
        if weights is not None:
            w = normalize(weights)
            target = [int(math.ceil(ns * x)) for x in w]
            buffer = [int(math.ceil(math.ceil(ns * x) * (1 + 0.005))) for x in w]
            parts = [GPT(*data[p], r[0], r[1], b, seq_length, seed)
                     for p, r, b in zip(prefixes, rng, buffer)]
            size = sum(target)
            di, dsi = blending(normalize(w), size)
        else:
            parts = [GPT(*data[p], r[0], r[1], None, seq_length, seed)
                     for p, r in zip(prefixes, rng)]
            lens = [len(g) for g in parts]
            if ns is not None:
                size = min(ns, sum(lens))
                di, dsi = blending(normalize(lens), size)
            else:
                di, dsi = blending_exhaustive(lens)
        for k in range(len(parts)):
            assert di.count(k) <= len(parts[k])

        res.append({"parts": parts, "blended": True, "top": Blend(parts, di, dsi), "di": di,
                    "dsi": dsi})
    return res


# ---- output --------------------------------------------------------------------------

def ints(xs):
    return " ".join(str(int(x)) for x in xs)


def main():
    data = make_data()
    out = ["# generated by gen_gpt_index_golden.py (numpy %s); do not edit" % np.__version__]

    for seed, mx in [(1234, 6), (7, 1000), (7, 2**40 + 12345), (3000000000, 2**33)]:
        rs = np.random.RandomState(seed)
        v = rs.randint(0, mx + 1, size=8, dtype=np.int64)
        out.append("interval %d %d %s" % (seed, mx, ints(v)))
    for seed, n in [(0, 10), (1234, 300), (4294967295, 50)]:
        a = np.arange(n, dtype=np.int32)
        np.random.RandomState(seed).shuffle(a)
        out.append("shuffle %d %d %s" % (seed, n, ints(a)))
    for w in [[0.3, 0.7], [969.0, 30.0, 1.0], [0.1, 0.2, 0.3],
              [1e16, 1.0, 1.0], [1.0] * 9 + [1e16] + [1.0] * 20,
              [0.1 * k for k in range(1, 140)]]:
        r = normalize(w)
        out.append("normalize %d %s -> %s" % (len(w), " ".join(float(x).hex() for x in w),
                                               " ".join(float(x).hex() for x in r)))
    for split, n in [("969,30,1", 150), ("969, 30, 1", 1000), ("1,1,0", 149),
                     ("1,1,1", 10), ("0.3,0.3,0.4", 149), ("99,1,0", 7), ("100", 5),
                     ("2,2,1", 25), ("0,1,0", 9)]:
        m = split_matrix(split)
        bounds = []
        for bk in m:
            bounds += [-1, -1] if bk is None else list(split_range(bk, n))
        out.append("splitidx %s %d %s" % (split.replace(" ", ""), n, ints(bounds)))

    A, B = "gpt_golden_a_text_document", "gpt_golden_b_text_document"
    cases = [
        ("single", [A], "969,30,1", 16, 1234, [500, 60, 20]),
        ("single_sep", [A], "80,20,0", 7, 42, [720, 13, 0]),
        ("single_none", [B], "1,1,0", 5, 3000000000, [200, None, None]),
        ("single_frac", [B], "0.3,0.3,0.4", 9, 1, [31, 45, 2]),
        ("blend_w", ["0.3", A, "0.7", B], "90,8,2", 8, 1234, [1000, 50, 10]),
        ("blend_one", ["1.0", A], "90,10,0", 12, 5, [300, 30, 0]),
        ("blend_sizes", [A, B], "98,2,0", 6, 99, [400, None, None]),
        ("blend_sizes_cap", [A, B], "98,2,0", 6, 99, [100000, 3, 0]),
    ]
    for name, words, split, S, seed, sizes in cases:
        out.append("case " + name)
        out.append("data " + " ".join(words))
        out.append("split " + split)
        out.append("seq_length %d" % S)
        out.append("seed %d" % seed)
        out.append("num_samples " + " ".join("-1" if x is None else str(x) for x in sizes))
        res = build(data, words, split, S, seed, sizes)
        for i, r in enumerate(res):
            if r is None:
                out.append("present %d 0 0 0 0" % i)
                continue
            top = r["top"]
            out.append("present %d 1 %d %d %d" % (i, int(r["blended"]), len(r["parts"]),
                                                  len(top)))
            for k, g in enumerate(r["parts"]):
                out.append("part %d %d %d %d %d %d %d" % (i, k, g.begin, g.end, g.E, g.sep,
                                                          len(g)))
                out.append("document_index %d %d %d %s" % (i, k, len(g.doc_idx),
                                                           ints(g.doc_idx)))
                si = g.sample_idx.reshape(-1)
                out.append("sample_index %d %d %d %s" % (i, k, len(si), ints(si)))
                out.append("shuffle_index %d %d %d %s" % (i, k, len(g.shuffle_idx),
                                                         ints(g.shuffle_idx)))
            if r["blended"]:
                out.append("dataset_index %d %d %s" % (i, len(r["di"]), ints(r["di"])))
                out.append("dataset_sample_index %d %d %s" % (i, len(r["dsi"]),
                                                             ints(r["dsi"])))
            n = len(top)
            for j in sorted(set([0, 1, 2, n // 2, n - 1])):
                if 0 <= j < n:
                    t = top[j]
                    out.append("sample %d %d %d %s" % (i, j, len(t), ints(t)))
        out.append("end")
    with open(os.path.join(HERE, "gpt_index_golden.txt"), "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
