#!/usr/bin/env python3
"""gen_detok_cases.py: writes tests/data/detok_cases.jsonl, reference cases
for the WikiText detokenizer of `megatron-c eval` (src/eval/tasks.c,
checked by tests/test_eval.c).

Each line is {"name": "...", "in": "<raw WikiText>", "out": "<detokenized>"}.

Ground truth: the rules of Megatron-LM's wikitext_detokenizer
(tasks/zeroshot_gpt/detokenizer.py, core_v0.12.0), restated below as a table
and applied with Python's own str.replace and re.sub, which define the
semantics the C code has to match (single left-to-right passes, lazy groups,
Unicode \\s). Inputs are excerpts of WikiText-2 test.txt (Merity et al. 2016,
CC BY-SA 3.0; see shared/data/PROVENANCE.md), whole lines with their
leading space and trailing " \\n", plus one run of consecutive lines so that
quote pairing across lines is covered.

Usage: python3 tests/data/gen_detok_cases.py [path/to/wikitext-2/test.txt]
(default /work/shared/data/wikitext-2/test.txt). Deterministic.
With --check FILE: prints the detokenization of the whole FILE to stdout
(for comparing with the C implementation on full files).
"""
import json
import os
import re
import sys

# (kind, pattern, replacement), applied in this order
RULES = [
    ("str", "s '", "s'"),
    ("re", r"/' [0-9]/", r"/'[0-9]/"),
    ("str", " @-@ ", "-"),
    ("str", " @,@ ", ","),
    ("str", " @.@ ", "."),
    ("str", " : ", ": "),
    ("str", " ; ", "; "),
    ("str", " . ", ". "),
    ("str", " ! ", "! "),
    ("str", " ? ", "? "),
    ("str", " , ", ", "),
    ("re", r"\(\s*([^\)]*?)\s*\)", r"(\1)"),
    ("re", r"\[\s*([^\]]*?)\s*\]", r"[\1]"),
    ("re", r"{\s*([^}]*?)\s*}", r"{\1}"),
    ("re", r"\"\s*([^\"]*?)\s*\"", r'"\1"'),
    ("re", r"'\s*([^']*?)\s*'", r"'\1'"),
    ("str", "= = = =", "===="),
    ("str", "= = =", "==="),
    ("str", "= =", "=="),
    ("str", " \u00b0 ", "\u00b0"),
    ("str", " \n", "\n"),
    ("str", "\n ", "\n"),
    ("str", " N ", " 1 "),
    ("str", " 's", "'s"),
]


def detokenize(text):
    for kind, pat, rep in RULES:
        text = text.replace(pat, rep) if kind == "str" else re.sub(pat, rep, text)
    return text


# 1-based line numbers of test.txt: headings, quotes, brackets, degrees,
# " N " and "N @-@", numbers with @,@ and @.@
SINGLE_LINES = [2, 4, 165, 276, 907, 1436, 1534, 1606, 1634, 1659, 1666, 1985]
RUN = (1, 24)  # lines 1..24 as one text


def main():
    args = sys.argv[1:]
    if args[:1] == ["--check"]:
        with open(args[1], "rb") as f:
            sys.stdout.buffer.write(detokenize(f.read().decode("utf-8")).encode("utf-8"))
        return
    src = args[0] if args else "/work/shared/data/wikitext-2/test.txt"
    with open(src, "rb") as f:
        lines = f.read().decode("utf-8").split("\n")
    lines = [l + "\n" for l in lines[:-1]]
    cases = []
    for n in SINGLE_LINES:
        cases.append(("test.txt line %d" % n, lines[n - 1]))
    a, b = RUN
    cases.append(("test.txt lines %d-%d" % (a, b), "".join(lines[a - 1:b])))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "detok_cases.jsonl")
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for name, text in cases:
            f.write(json.dumps({"name": name, "in": text, "out": detokenize(text)},
                               ensure_ascii=False) + "\n")
    print("wrote %d cases to %s" % (len(cases), out))


if __name__ == "__main__":
    main()
