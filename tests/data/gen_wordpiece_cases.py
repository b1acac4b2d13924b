#!/usr/bin/env python3
"""gen_wordpiece_cases.py: writes tests/data/wordpiece_cases.jsonl, the
reference ids of Hugging Face's BertTokenizer (transformers 5, backed by
tokenizers) for test_wordpiece.c, on the uncased BERT vocabulary with
do_lower_case True ("lower") and False ("cased").

Each line is one case: {"name", "text" or "hex" (raw bytes, for invalid
UTF-8: the reference reads them decoded with errors="replace"), "lower",
"cased"}; or a whole file: {"file" (under ../shared/data), "limit" (bytes
read, cut back to a line end), "lower_n", "lower_crc", "cased_n",
"cased_crc"}: the number of ids and the CRC-32 of them as little-endian
int32. Deterministic (fixed seed):

    python3 tests/data/gen_wordpiece_cases.py ../shared/data > tests/data/wordpiece_cases.jsonl
"""
import json
import os
import random
import struct
import sys
import zlib

from transformers import BertTokenizer


def main():
    shared = sys.argv[1]
    vocab = os.path.join(shared, "bert-vocab", "vocab.txt")
    tok = {"lower": BertTokenizer(vocab, do_lower_case=True),
           "cased": BertTokenizer(vocab, do_lower_case=False)}
    rng = random.Random(20261202)
    cases = []

    def add(name, text=None, raw=None):
        cases.append((name, text, raw))

    # prose and punctuation
    prose = [
        "Hello, world!", "The quick brown fox jumps over the lazy dog.",
        "unaffable", "I can't believe it's not butter!", "e-mail: someone@example.com",
        "https://www.example.org/path?query=1&x=y#frag", "3.14159 is pi; 2+2=4.",
        "He said, \"Well... maybe.\"", "(parentheses) [brackets] {braces} <angles>",
        "dollars $100, percent 50%, hash #tag, at @user", "a--b---c", "~!@#$%^&*()_+`-={}|[]\\:\";'<>?,./",
        "Mr. Smith went to Washington D.C. in 1999.", "It's 9:30 a.m. — time to go…",
        "unbelievably antidisestablishmentarianism", "tokenization WordPiece BERT",
        "ALL CAPS SENTENCE HERE", "MiXeD cAsE wOrDs", "word" * 30,
        "the the the the", "   leading and trailing spaces   ", "tabs\tand\nnewlines\r\nhere",
        "multiple     spaces", "", " ", "\n", "a", "A", ".", "##", "##ing", "[", "]", "[]",
    ]
    for i, s in enumerate(prose):
        add("prose %d" % i, s)
    # accents and other Latin
    accents = [
        "Héllo naïve café résumé", "Crème brûlée à la mode", "Ångström Øre Ærø", "Straße groß",
        "İstanbul ıi", "Ελληνικά ΟΔΥΣΣΕΥΣ ὈΔΥΣΣΕΎΣ", "Русский текст", "Čeština Žluťoučký kůň",
        "e\u0301 combining acute", "n\u0303o", "A\u030a", "ﬁ ligature ﬂ", "Ⅻ roman numeral",
        "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ", "ǅ title case", "ΣΑΣ final sigma ς", "Ǆ Ǳ", "ß ẞ",
        "Đặng Thị Ngọc", "Ḁḁ Ḃḃ", "Łódź", "Ἀθῆναι", "עברית", "العربية", "हिन्दी",
        "ภาษาไทย", "한국어 텍스트", "ㄱㄴㄷ", "ᄀ\u1161", "日本語のテキスト", "カタカナ ｶﾀｶﾅ",
    ]
    for i, s in enumerate(accents):
        add("scripts %d" % i, s)
    # CJK
    cjk = ["中文文本", "我爱北京天安门", "漢字かな交じり文", "\u3400\u4dbf", "\U00020000\U0002a6df",
           "\uf900\ufa0a compatibility", "\U0002f800", "中a文b", "，。！？", "【中文】"]
    for i, s in enumerate(cjk):
        add("cjk %d" % i, s)
    # emoji and symbols
    emoji = ["🙂 smile", "👍🏽 thumbs", "👨‍👩‍👧 family", "🇫🇷 flag", "❤️ heart", "©®™", "€£¥₹",
             "½ ¾ ²", "∑∫√∞", "→←↑↓", "🥰🫠", "☃", "♠♣♥♦", "🤖 robots 🚀"]
    for i, s in enumerate(emoji):
        add("emoji %d" % i, s)
    # controls, formats, odd whitespace
    controls = ["a\x00b", "a\x01b\x02c", "a\x7fb", "a\u0085b", "a\u00a0b", "a\u200bb", "a\u200db",
                "a\ufeffb", "a\u2028b\u2029c", "a\u3000b", "a\x0bb\x0cc", "a\ufffdb", "a\u00adb",
                "a\ue000b private", "a\U000e0001b tag", "a\u061cb", "\x1c\x1d\x1e\x1f", "a\u2060b"]
    for i, s in enumerate(controls):
        add("controls %d" % i, s)
    # long words
    add("long 100", "a" * 100)
    add("long 101", "a" * 101)
    add("long 100 accented", "é" * 100)
    add("long 101 accented", "é" * 101)
    add("long word then short", "x" * 250 + " ok")
    add("long unknown pieces", "qzxqzxqzxqzx" * 5)
    # special tokens in text
    specials = ["[CLS] hello [SEP]", "a[MASK]b", "[mask] lower", "[PAD][UNK]", "[SEP", "[[CLS]]",
                "[BOS] [EOS]", "x [UNK] y"]
    for i, s in enumerate(specials):
        add("specials %d" % i, s)
    # invalid UTF-8 (raw bytes)
    raws = [b"ab\xffcd", b"\xc3(", b"\xe2\x82", b"ok\xf0\x9f\x98", b"\xed\xa0\x80 surrogate",
            b"\xc0\xaf overlong", b"caf\xc3\xa9\xff"]
    for i, r in enumerate(raws):
        add("invalid utf-8 %d" % i, raw=r)
    # random mixtures from an alphabet of every class above
    alphabet = list("abcdefXYZ019 ,.!?-'\"\t\n") + list("éüñçØßİΣς中文日本한국") + \
        ["\u0301", "\u200b", "\x00", "\u00a0", "🙂", "👍🏽", "\ufffd", "ﬁ", "Ⅻ", "\u3000", "[MASK]", "##"]
    for i in range(80):
        n = rng.randint(1, 60)
        add("random %d" % i, "".join(rng.choice(alphabet) for _ in range(n)))
    # random words from the vocabulary glued together
    with open(vocab, encoding="utf-8") as f:
        words = [w.rstrip("\n") for w in f][1000:]
    for i in range(30):
        add("vocab glue %d" % i, "".join(rng.choice(words).lstrip("#") for _ in range(rng.randint(1, 6))))

    out = sys.stdout
    for name, text, raw in cases:
        ref = text if raw is None else raw.decode("utf-8", errors="replace")
        rec = {"name": name}
        if raw is None:
            rec["text"] = text
        else:
            rec["hex"] = raw.hex()
        for mode, t in tok.items():
            rec[mode] = t.encode(ref, add_special_tokens=False)
        out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    # whole files
    for rel, limit in (("sst2/train.tsv", 1 << 30), ("spam-assassin/spam_assassin.jsonl", 2 << 20)):
        with open(os.path.join(shared, rel), "rb") as f:
            data = f.read(limit)
        if len(data) == limit:
            data = data[: data.rfind(b"\n") + 1]
        text = data.decode("utf-8", errors="replace")
        rec = {"file": rel, "limit": limit, "bytes": len(data)}
        for mode, t in tok.items():
            ids = t.encode(text, add_special_tokens=False)
            rec[mode + "_n"] = len(ids)
            rec[mode + "_crc"] = zlib.crc32(struct.pack("<%di" % len(ids), *ids))
        out.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
