#!/usr/bin/env python3
"""gen_tokenizer_cases.py: writes tests/data/tokenizer_extra.jsonl, extra
reference cases for the GPT-2 BPE tokenizer (tests/test_tokenizer.c), on top
of the 32 cases of tokenizer_cases.jsonl.

Each line is {"name": "...", "hex": "<the input bytes in hex>", "ids": [...]}
(hex, so that invalid UTF-8 fits in JSON too).

Ground truth:
  * valid UTF-8: tiktoken's gpt2 encoding, encode_ordinary(text). tiktoken
    cannot download its files here, so the Encoding is built offline from the
    shipped data/gpt2-vocab/encoder.json + vocab.bpe (the same files tiktoken's
    gpt2 loader checks by sha256) with the gpt2 pattern.
  * invalid UTF-8 (tiktoken's str API cannot take it): each invalid byte is a
    character of class "other", as when the bytes are decoded with Python's
    surrogateescape (lone surrogates are category Cs): the pieces come from
    the `regex` module with the same pattern on that string, and each piece
    is BPE'd by tiktoken (_encode_single_piece). Where the invalid bytes end
    the text, this is checked to equal tiktoken's own bytes API
    (_encode_bytes), which differs only when valid text follows an invalid byte.

Needs: pip install tiktoken regex.   Usage: python3 tests/data/gen_tokenizer_cases.py
Deterministic (fixed seeds): re-running gives the same file.
"""
import json
import os
import random

import regex
import tiktoken
import tiktoken.load

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = os.path.join(HERE, "..", "..", "data", "gpt2-vocab")
OUT = os.path.join(HERE, "tokenizer_extra.jsonl")
# tiktoken_ext/openai_public.py's gpt2 pattern (the same language as GPT-2's
# original 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)
PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def encoding():
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=os.path.join(VOCAB, "vocab.bpe"),
        encoder_json_file=os.path.join(VOCAB, "encoder.json"))
    return tiktoken.Encoding(name="gpt2-offline", explicit_n_vocab=50257, pat_str=PAT,
                             mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})


ENC = encoding()
REGEX = regex.compile(PAT)


def ref_bytes(data):
    """Reference ids for any bytes."""
    try:
        return ENC.encode_ordinary(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", "surrogateescape")
    ids = []
    for piece in REGEX.findall(text):
        ids += ENC._encode_single_piece(piece.encode("utf-8", "surrogateescape"))
    return ids


CASES = []


def add(name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    ids = ref_bytes(data)
    assert ENC.decode_bytes(ids) == data, name
    CASES.append({"name": name, "hex": data.hex(), "ids": ids})


# invalid cases whose invalid bytes end the text (see the docstring)
AT_END = {"lone continuation", "lone lead", "bad bytes at end", "truncated 3-byte at end",
          "truncated 4-byte at end", "overlong nul", "f5 ff bytes", "valid then truncated"}


def fixed_cases():
    # whitespace: \s+(?!\S) gives back the last space before a word
    for name, t in [
        ("space before newline", "a \nb"), ("spaces before newline", "a   \n  b"),
        ("trailing spaces", "end   "), ("trailing newline spaces", "x\n   "),
        ("only newlines", "\n\n\n"), ("newlines then word", "\n\n\nword"),
        ("spaces then newlines", "  \n\n  "), ("tabs before word", "\t\tword"),
        ("tab space mix", "a \t b\t \tc"), ("crlf runs", "a\r\n\r\nb\r\n"),
        ("vertical tab form feed", "a\x0b\x0cb \x0b c"), ("leading spaces", "    indented"),
        ("space digit", "a 1 22 333 4444"), ("space punct", "a ! ?? ... ,"),
        ("double space word", "two  spaces"), ("space at end after word", "word "),
        ("single space", " "), ("single newline", "\n"), ("single tab", "\t"),
        ("unicode spaces", "a\u2003b\u3000c\u2028d\u2029e\u205ff\u1680g\u0085h"),
        ("em space runs", "x\u2003\u2003\u2003y"),
        ("nbsp", "a\u00a0b"), ("nbsp runs", "a\u00a0\u00a0 b\u00a0 \u00a0c"),
        ("nbsp before word", "\u00a0word \u00a0word"), ("narrow nbsp", "10\u202fkm"),
        ("zero width space", "a\u200bb \u200b c"), ("bom", "\ufeffhello"),
        ("information separators", "a\x1cb\x1d c\x1e\x1f d"),
        ("control chars", "a\x00b\x01\x7f c\x1b[0m"),
        # contractions: case-sensitive, only after the apostrophe
        ("contractions", "I'm you're he's we've they'll she'd it't"),
        ("upper contractions", "DON'T I'M YOU'RE HE'S WE'VE THEY'LL SHE'D"),
        ("mixed case contractions", "Don'T don'T You'Re we'Ve"),
        ("contractions alone", "'s 't 're 've 'm 'll 'd"),
        ("contraction prefixes", "'sa 'tb 'rex 'vex 'mm 'llama 'dd 'r 'v 'l"),
        ("quotes and apostrophes", "''s '''t \"'s\" 'quoted' rock'n'roll"),
        ("apostrophe at end", "dogs'"), ("apostrophe space", "' s ' t"),
        ("typographic apostrophe", "don\u2019t it\u2019s"),
        ("punct then contraction", "?'s !'ll .'re"),
        # digits next to letters
        ("digits letters", "abc123def 4x4 H2O mp3 3rd 1st 2nd 100km"),
        ("long number", "12345678901234567890"), ("decimal", "3.14159 -2.5e10 1,000,000"),
        ("unicode digits", "\u0661\u0662\u0663 \u0967\u0968 \uff11\uff12 \u2460\u2461 \u00bd\u00b2"),
        ("roman numerals", "\u2160\u2161\u2162 chapter \u2163"),
        ("superscripts", "x\u00b2+y\u00b3 H\u2082O"),
        # scripts
        ("greek", "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5"),
        ("cyrillic", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! 123"),
        ("thai", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a"),
        ("devanagari marks", "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e"),
        ("combining marks", "e\u0301 a\u0300\u0301\u0302 n\u0303o"),
        ("vietnamese", "Ti\u1ebfng Vi\u1ec7t c\u00f3 d\u1ea5u"),
        ("hangul jamo", "\u1100\u1161\u11a8 \ud55c\uad6d\uc5b4"),
        ("cjk punctuation", "\u4f60\u597d\uff0c\u4e16\u754c\u3002\u300c\u5f15\u7528\u300d"),
        ("cjk ext b", "\U00020000\U0002a6d6 \U00020001"),
        ("math letters", "\U0001d400\U0001d401 \U0001d7ce\U0001d7cf"),
        ("ethiopic", "\u1230\u120b\u121d \u1369\u136a"),
        ("georgian armenian", "\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0 \u0532\u0561\u0580\u0565\u0582"),
        ("tamil", "\u0bb5\u0ba3\u0b95\u0bcd\u0b95\u0bae\u0bcd"),
        ("cherokee", "\u13a3\u13b3\u13a9"),
        # symbols and emoji
        ("emoji zwj", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 family"),
        ("emoji skin tone", "\U0001f44d\U0001f3fd \U0001f44b\U0001f3ff"),
        ("flags", "\U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5 \U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"),
        ("keycap", "1\ufe0f\u20e3 #\ufe0f\u20e3"),
        ("emoji next to letters", "hi\U0001f600there \U0001f600\U0001f600!"),
        ("private use", "\ue000\uf8ff \U000f0000"),
        ("unassigned", "\u0378\u0379 \U0002fffe x\U000e0080"),
        ("noncharacters", "\ufdd0\ufffe\uffff"),
        ("replacement char", "\ufffd\ufffd"),
        ("max code point", "\U0010ffff"),
        ("endoftext as text", "<|endoftext|> and <|endoftext|>"),
        ("long token", "=" * 40 + " " + "-" * 70),
        ("repeated letter", "a" * 300),
        ("repeated space", " " * 200 + "x"),
        ("repeated newline", "\n" * 100),
        ("long word", "pneumonoultramicroscopicsilicovolcanoconiosis" * 3),
        ("code", "def f(x):\n\treturn x**2  # square\n\nif __name__ == '__main__':\n    f(3)\n"),
        ("markdown", "# Title\n\n* item\n* **bold** _it_\n\n```\ncode\n```\n"),
    ]:
        add(name, t)
    # invalid UTF-8: each bad byte is a 1-byte "other" character
    for name, data in [
        ("lone continuation", b"\x80"), ("lone lead", b"\xc3"),
        ("bad bytes at end", b"hello \xff\xfe"), ("truncated 3-byte at end", b"ok \xe2\x82"),
        ("truncated 4-byte at end", b"emoji \xf0\x9f\x98"),
        ("invalid between words", b"ab\xffcd"), ("invalid after space", b"a \xff b"),
        ("overlong slash", b"x\xc0\xafy"), ("overlong nul", b"\xc0\x80"),
        ("overlong 3-byte", b"\xe0\x80\xaf"), ("surrogate encoded", b"a\xed\xa0\x80b"),
        ("above max", b"\xf4\x90\x80\x80z"), ("f5 ff bytes", b"\xf5\xf8\xfc\xfe\xff"),
        ("invalid in digits", b"12\x9934"), ("invalid before newline", b"a\xff\n b"),
        ("invalid runs", b"\x80\x81\x82 \x83\x84 \xff"),
        ("latin1 text", "caf\u00e9 na\u00efve r\u00e9sum\u00e9".encode("latin-1")),
        ("valid then truncated", "\u4f60\u597d".encode() + b"\xe4\xbd"),
        ("contraction then invalid", b"it's\xff's"),
    ]:
        add(name, data)
        try:
            data.decode("utf-8")
            raise AssertionError(name + " is valid UTF-8")
        except UnicodeDecodeError:
            pass
        if name in AT_END:  # tiktoken's own bytes API agrees there
            assert ENC._encode_bytes(data) == CASES[-1]["ids"], name


# a pool of characters from many scripts, classes and planes
POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list(" \t\n\r.,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`") + [" "] * 12 + ["'s", "'t", "'re", "'ll"]
    + [chr(c) for c in range(0xA0, 0x250)] + [chr(c) for c in range(0x370, 0x3FF)]
    + [chr(c) for c in range(0x400, 0x4FF)] + [chr(c) for c in range(0x591, 0x5F4)]
    + [chr(c) for c in range(0x600, 0x6FF)] + [chr(c) for c in range(0x900, 0x97F)]
    + [chr(c) for c in range(0xE00, 0xE5B)] + [chr(c) for c in range(0x1100, 0x11FF)]
    + [chr(c) for c in range(0x2000, 0x206F)] + [chr(c) for c in range(0x2100, 0x218B)]
    + [chr(c) for c in range(0x3000, 0x30FF)] + [chr(c) for c in range(0x4E00, 0x4F00)]
    + [chr(c) for c in range(0xAC00, 0xAD00)] + [chr(c) for c in range(0xFF00, 0xFFEF)]
    + [chr(c) for c in range(0x1F300, 0x1F650)] + [chr(c) for c in range(0x1D400, 0x1D500)]
    + ["\u200d", "\ufe0f", "\u00a0", "\u3000", "\u2028"]
)


def random_cases():
    rng = random.Random(20240611)
    for k in range(300):
        n = rng.choice([1, 2, 3, 5, 8, 13, 30, 60, 120])
        add("random mix %d" % k, "".join(rng.choice(POOL) for _ in range(n)))
    # random code points from anywhere in Unicode (no surrogates), between ASCII
    for k in range(200):
        parts = []
        for _ in range(rng.randint(1, 12)):
            c = rng.randrange(0x110000 - 0x800)
            if c >= 0xD800:
                c += 0x800
            parts.append(chr(c))
            parts.append(rng.choice(["", " ", "a", "1", "!", "  ", "\n", "x y"]))
        add("random code points %d" % k, "".join(parts))
    # long pieces (more than 64 bytes: the heap-based merge loop)
    for k in range(12):
        n = rng.choice([65, 100, 200, 400, 1000])
        alpha = rng.choice(["abcdefghijklmnopqrstuvwxyz", "etaoinshr", "ab", "0123456789",
                            "!?.-=*", "\u0430\u0431\u0432\u0433\u0434\u0435"])
        add("long piece %d" % k, "".join(rng.choice(alpha) for _ in range(n)))
    # random bytes mixing ASCII, valid and invalid UTF-8
    for k in range(100):
        data = b"".join(rng.choice([b"a", b" ", b"1", b"'s", b"\n", b"\xff", b"\x80", b"\xc3",
                                    b"\xe2\x82", "\u00e9".encode(), "\u4f60".encode(),
                                    b"\xf0\x9f\x98\x80", b"\xed\xa0\x80", b"!"])
                        for _ in range(rng.randint(1, 20)))
        add("random bytes %d" % k, data)


def main():
    fixed_cases()
    random_cases()
    with open(OUT, "w", encoding="ascii") as f:
        for c in CASES:
            f.write(json.dumps(c, ensure_ascii=True, separators=(",", ":")) + "\n")
    print("wrote %s: %d cases" % (OUT, len(CASES)))


if __name__ == "__main__":
    main()
