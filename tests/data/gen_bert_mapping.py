#!/usr/bin/env python3
"""gen_bert_mapping.py: the golden of test_bert_data.c, from an independent
Python restatement of Megatron's BERT sampling.

Writes, into tests/data/:
  bert_sentences.bin/.idx   a sentence-level indexed dataset (Megatron's
                            MMIDIDX format, written here with numpy): 40
                            documents of 0 to 12 sentences of 1 to 40 tokens
                            (ids 5..99), one of them with a 600-token sentence
  bert_mapping.jsonl        for each configuration: the sample mapping
                            (first sentence, end sentence, target length) of
                            megatron/core/datasets/helpers.cpp build_mapping,
                            and the first 60 samples as
                            BERTMaskedWordPieceDataset.__getitem__ builds them
                            before masking (tokens, types, is_random)

The mapping is restated from helpers.cpp with a pure-Python MT19937-64 for
std::mt19937_64 and numpy's MT19937 (the same generator as std::mt19937,
seeded alike) for the target lengths; the samples use numpy's RandomState
exactly as bert_dataset.py does. Deterministic:

    python3 tests/data/gen_bert_mapping.py tests/data
"""
import json
import os
import struct
import sys

import numpy as np

CLS, SEP, PAD = 101, 102, 0
LONG_SENTENCE_LEN = 512


class MT64:
    """std::mt19937_64"""

    def __init__(self, seed):
        self.mt = [0] * 312
        self.mt[0] = seed & 0xFFFFFFFFFFFFFFFF
        for i in range(1, 312):
            self.mt[i] = (6364136223846793005 * (self.mt[i - 1] ^ (self.mt[i - 1] >> 62)) + i) \
                & 0xFFFFFFFFFFFFFFFF
        self.i = 312

    def __call__(self):
        if self.i >= 312:
            for k in range(312):
                x = (self.mt[k] & 0xFFFFFFFF80000000) | (self.mt[(k + 1) % 312] & 0x7FFFFFFF)
                xa = x >> 1
                if x & 1:
                    xa ^= 0xB5026F5AA96619E9
                self.mt[k] = self.mt[(k + 156) % 312] ^ xa
            self.i = 0
        x = self.mt[self.i]
        self.i += 1
        x ^= (x >> 29) & 0x5555555555555555
        x ^= (x << 17) & 0x71D67FFFEDA60000
        x ^= (x << 37) & 0xFFF7EEE000000000
        x ^= x >> 43
        return x & 0xFFFFFFFFFFFFFFFF


class MT32:
    """std::mt19937(seed): numpy's MT19937 seeded by init_genrand"""

    def __init__(self, seed):
        self.g = np.random.MT19937(0)
        self.g._legacy_seeding(seed)

    def __call__(self):
        return int(self.g.random_raw())


def build_mapping(docs, sizes, max_num_samples, max_seq_length, short_seq_prob, seed, min_num_sent):
    ratio = int(round(1.0 / short_seq_prob)) if short_seq_prob > 0 else 0
    rand32 = MT32(seed)

    def target():
        if ratio == 0:
            return max_seq_length
        r = rand32()
        if r % ratio == 0:
            return 2 + r % (max_seq_length - 1)
        return max_seq_length

    maps = []
    epoch = 0
    while len(maps) < max_num_samples:
        epoch += 1
        for doc in range(len(docs) - 1):
            first, last = docs[doc], docs[doc + 1]
            prev, remain = first, last - first
            long_sentence = remain > 1 and any(sizes[s] > LONG_SENTENCE_LEN for s in range(first, last))
            if remain >= min_num_sent and not long_sentence:
                seq_len, num_sent, tgt = 0, 0, target()
                for s in range(first, last):
                    seq_len += sizes[s]
                    num_sent += 1
                    remain -= 1
                    if (seq_len >= tgt and remain > 1 and num_sent >= min_num_sent) or remain == 0:
                        maps.append([prev, s + 1, tgt])
                        prev, tgt, seq_len, num_sent = s + 1, target(), 0, 0
    rand64 = MT64(seed + 1)
    for i in range(len(maps) - 1, 0, -1):
        j = rand64() % (i + 1)
        maps[i], maps[j] = maps[j], maps[i]
    return maps


def get_sample(sentences, entry, idx, seed, binary_head):
    """BERTMaskedWordPieceDataset.__getitem__ up to the masking"""
    beg, end, target = entry
    sample = [list(sentences[i]) for i in range(beg, end)]
    rng = np.random.RandomState(seed=(seed + idx) % 2**32)
    pivot, is_random = len(sample), False
    if binary_head:
        pivot = 1
        if len(sample) >= 3:
            pivot = rng.randint(low=1, high=len(sample))
        is_random = rng.random() < 0.5
    a = [t for s in sample[:pivot] for t in s]
    b = [t for s in sample[pivot:] for t in s]
    if is_random:
        a, b = b, a
    while len(a) + len(b) > target:
        part = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del part[0]
        else:
            del part[-1]
    tokens = [CLS, *a, SEP]
    types = [0] * (len(a) + 2)
    if b:
        tokens += [*b, SEP]
        types += [1] * (len(b) + 1)
    return {"tokens": tokens, "types": types, "is_random": int(is_random)}


def write_indexed(prefix, docs_sentences):
    lengths, flat, doc_index = [], [], [0]
    for doc in docs_sentences:
        for s in doc:
            lengths.append(len(s))
            flat.extend(s)
        doc_index.append(len(lengths))
    np.array(flat, dtype=np.uint16).tofile(prefix + ".bin")
    pointers = np.concatenate([[0], np.cumsum(np.array(lengths, dtype=np.int64) * 2)[:-1]])
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", 8))  # uint16
        f.write(struct.pack("<Q", len(lengths)))
        f.write(struct.pack("<Q", len(doc_index)))
        f.write(np.array(lengths, dtype=np.int32).tobytes())
        f.write(pointers.astype(np.int64).tobytes())
        f.write(np.array(doc_index, dtype=np.int64).tobytes())
    return lengths, doc_index


def main():
    out = sys.argv[1]
    rng = np.random.RandomState(1234)
    docs = []
    for d in range(40):
        n = int(rng.randint(0, 13))
        docs.append([list(rng.randint(5, 100, size=int(rng.randint(1, 41)))) for _ in range(n)])
    docs[7] = [list(rng.randint(5, 100, size=20)), list(rng.randint(5, 100, size=600))]  # skipped
    docs[8] = [list(rng.randint(5, 100, size=9))]  # one sentence
    docs[9] = []  # empty
    lengths, doc_index = write_indexed(os.path.join(out, "bert_sentences"), docs)
    sentences = [s for d in docs for s in d]
    configs = [
        {"name": "binary head", "seq_length": 32, "seed": 1234, "short_seq_prob": 0.1,
         "binary_head": 1, "min_samples": 100},
        {"name": "no binary head, long sequences", "seq_length": 128, "seed": 7, "short_seq_prob": 0.1,
         "binary_head": 0, "min_samples": 300},
        {"name": "no short sequences", "seq_length": 20, "seed": 99, "short_seq_prob": 0.0,
         "binary_head": 1, "min_samples": 10},
    ]
    with open(os.path.join(out, "bert_mapping.jsonl"), "w") as f:
        for c in configs:
            maps = build_mapping(doc_index, lengths, c["min_samples"], c["seq_length"] - 3,
                                 c["short_seq_prob"], c["seed"], 2 if c["binary_head"] else 1)
            samples = [get_sample(sentences, maps[i], i, c["seed"], c["binary_head"])
                       for i in range(min(60, len(maps)))]
            f.write(json.dumps({**c, "map": [int(v) for e in maps for v in e],
                                "samples": [{k: [int(t) for t in v] if isinstance(v, list) else v
                                             for k, v in s.items()} for s in samples]}) + "\n")
            print(f"{c['name']}: {len(maps)} samples")


if __name__ == "__main__":
    main()
