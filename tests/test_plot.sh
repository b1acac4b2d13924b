#!/bin/sh
# megatron-c plot and train --plot: the SVG's structure and geometry for
# known traces (a null loss breaks the line; equal steps in loss are equal
# steps in pixels; a falling loss is drawn falling), two runs overlaid with
# a legend, the teaching default's sparkline and picture, the PNG (cairo
# builds; decoded and checked for ink) or its refusal, and bad input.
. "$(dirname "$0")/common.sh"
B=$MT_BIN
command -v python3 > /dev/null || { echo "skip: no python3"; exit 77; }

# ---- a known trace ----
cat > "$TMP/known.jsonl" <<'EOF2'
{"iteration": 1, "loss": 4.0, "lr": 0.001, "grad_norm": 1, "tokens_per_sec": 100.0}
{"iteration": 2, "loss": 3.0, "lr": 0.002, "grad_norm": 1, "tokens_per_sec": 110.0}
{"iteration": 3, "loss": 2.0, "lr": 0.003, "grad_norm": 1, "tokens_per_sec": 120.0}
{"iteration": 4, "loss": null, "lr": 0.003, "grad_norm": null, "tokens_per_sec": 120.0}
{"iteration": 5, "loss": 1.0, "lr": 0.002, "grad_norm": 1, "tokens_per_sec": 130.0}
{"iteration": 6, "loss": 0.5, "lr": 0.001, "grad_norm": 1, "tokens_per_sec": 125.0}
{"iteration": 6, "val_loss": 1.5, "val_ppl": 4.48}
EOF2
$B plot "$TMP/known.jsonl" --output "$TMP/known.svg" > "$TMP/p.out" 2>&1 || { cat "$TMP/p.out"; fail "plot known"; finish; }
python3 - "$TMP/known.svg" <<'PY' && pass "known trace: valid SVG, the loss line broken at the null, equal loss steps equal in pixels, falling drawn falling, three panels" || fail "known trace SVG"
import sys, xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(sys.argv[1]).getroot()
lines = [p for p in root.iter("{http://www.w3.org/2000/svg}polyline") if p.get("stroke") == "#1f77b4"]
solid = [p for p in lines if not p.get("stroke-dasharray")]
pts = [[tuple(map(float, q.split(","))) for q in p.get("points").split()] for p in solid]
# the loss panel: two pieces, 3 points (iterations 1-3) and 2 (5-6); then lr (6) and tokens/s (6); legend 2
assert [len(p) for p in pts] == [3, 2, 2, 6, 6], [len(p) for p in pts]
a, b = pts[0], pts[1]
xs = [p[0] for p in a + b]
assert xs == sorted(xs), xs
step = a[1][0] - a[0][0]
assert abs((b[0][0] - a[2][0]) - 2 * step) < 0.2, "the gap spans iteration 4"
dy1, dy2 = a[1][1] - a[0][1], a[2][1] - a[1][1]
assert dy1 > 0 and abs(dy1 - dy2) < 0.2, (dy1, dy2)      # falling loss: y grows downwards
dashed = [p for p in lines if p.get("stroke-dasharray")]
assert len(dashed) == 1, "one validation mark"
texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
for want in ("loss", "learning rate", "tokens/s", "iteration", "known", "validation (dashed)"):
    assert want in texts, want
PY
grep -q "known loss .* 4 at iteration 1 -> 0.5 at iteration 6" "$TMP/p.out" && pass "the report line: $(head -n1 "$TMP/p.out")" \
  || fail "report line: $(cat "$TMP/p.out")"
grep -q '▇\|█' "$TMP/p.out" && grep -q '▁' "$TMP/p.out" && pass "a sparkline from ▁ to █" || fail "no sparkline"

# ---- two real runs overlaid ----
$B train $TINY --train-iters 12 --eval-interval 6 --log-json "$TMP/run-a.jsonl" > /dev/null 2>&1 || fail "train a"
$B train $TINY --train-iters 12 --eval-interval 6 --lr 1e-3 --log-json "$TMP/run-b.jsonl" > /dev/null 2>&1 || fail "train b"
$B plot "$TMP/run-a.jsonl" "$TMP/run-b.jsonl" --output "$TMP/ab.svg" > "$TMP/ab.out" 2>&1 || { cat "$TMP/ab.out"; fail "plot two runs"; }
python3 - "$TMP/ab.svg" <<'PY' && pass "two runs: one colour each in every panel, both in the legend" || fail "two-run SVG"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
P = "{http://www.w3.org/2000/svg}"
by = {}
for p in root.iter(P + "polyline"):
    by.setdefault((p.get("stroke"), bool(p.get("stroke-dasharray"))), []).append(len(p.get("points").split()))
for c in ("#1f77b4", "#d62728"):
    assert by[(c, False)].count(12) == 3, (c, by[(c, False)])   # loss, lr, tokens/s: 12 logged iterations each
    assert by[(c, True)] == [2], (c, by[(c, True)])              # validation at 6 and 12
texts = [t.text for t in root.iter(P + "text")]
assert "run-a" in texts and "run-b" in texts
PY
[ "$(grep -c "^ run-[ab] loss" "$TMP/ab.out")" = 2 ] && pass "a report line per run" || fail "report: $(cat "$TMP/ab.out")"
# a rasteriser, where one is installed, draws something from the SVG
if command -v rsvg-convert > /dev/null; then
  rsvg-convert -o "$TMP/ab-r.png" "$TMP/ab.svg" && [ -s "$TMP/ab-r.png" ] \
    && pass "rsvg-convert rasterises the SVG ($(wc -c < "$TMP/ab-r.png") bytes)" || fail "rsvg-convert could not rasterise"
elif convert -version 2> /dev/null | grep -q ImageMagick; then
  convert "$TMP/ab.svg" "$TMP/ab-r.png" && [ -s "$TMP/ab-r.png" ] \
    && pass "ImageMagick rasterises the SVG ($(wc -c < "$TMP/ab-r.png") bytes)" || fail "convert could not rasterise"
fi

# ---- PNG: drawn by cairo where the build has it, else refused ----
if $B plot "$TMP/run-a.jsonl" "$TMP/run-b.jsonl" --output "$TMP/ab.png" > "$TMP/png.out" 2> "$TMP/png.err"; then
  python3 - "$TMP/ab.png" <<'PY' && pass "PNG: decoded, mostly white, with both runs' colours" || fail "PNG content"
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n"
i, idat, w = 8, b"", 0
while i < len(d):
    n, typ = struct.unpack(">I4s", d[i:i + 8])
    body = d[i + 8:i + 8 + n]
    if typ == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and ctype in (2, 6), (depth, ctype)
        bpp = 3 if ctype == 2 else 4
    if typ == b"IDAT":
        idat += body
    i += 12 + n
raw = zlib.decompress(idat)
stride, prev, px = w * bpp, bytearray(w * bpp), []
rows = []
for y in range(h):   # undo the PNG filters
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b, c = prev[x], prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line); prev = line
white = blue = red = 0
for line in rows:
    for x in range(0, stride, bpp):
        r, g, b = line[x], line[x + 1], line[x + 2]
        white += r > 250 and g > 250 and b > 250
        blue += b > 150 and r < 90 and g < 160
        red += r > 180 and g < 90 and b < 90
total = w * h
assert white > total * 0.5 and blue > 200 and red > 200, (white, blue, red, total)
PY
else
  grep -q "no PNG writer (cairo)" "$TMP/png.err" && pass "PNG refused in a build without cairo: $(head -n1 "$TMP/png.err")" \
    || fail "PNG: $(cat "$TMP/png.err")"
fi

# ---- the teaching default: a sparkline, and the picture next to its log ----
$B train $TINY --train-iters 10 --log-json "$TMP/teach.jsonl" > "$TMP/teach.out" 2>&1 || fail "teaching run"
grep -q "loss .*▁" "$TMP/teach.out" && pass "teaching default: $(grep 'loss .*▁' "$TMP/teach.out")" || fail "no sparkline: $(tail -3 "$TMP/teach.out")"
[ -s "$TMP/teach.svg" ] && python3 -c "import xml.etree.ElementTree as E; E.parse('$TMP/teach.svg')" \
  && grep -q "loss curves drawn in $TMP/teach.svg" "$TMP/teach.out" && pass "teaching default: teach.svg next to teach.jsonl" \
  || fail "no teach.svg"
$B train $TINY --train-iters 10 --plot "$TMP/own.svg" > /dev/null 2>&1 && [ -s "$TMP/own.svg" ] \
  && pass "--plot without --log-json" || fail "--plot own.svg"
expect_error "--plot of an unknown type" "unknown picture type" $B train $TINY --train-iters 2 --plot "$TMP/x.txt"

# ---- bad input ----
expect_error "plot without files" "plot needs a trace file" $B plot --output "$TMP/x.svg"
expect_error "plot without --output" "plot needs --output" $B plot "$TMP/known.jsonl"
expect_error "a missing trace" "nofile.jsonl" $B plot "$TMP/nofile.jsonl" --output "$TMP/x.svg"
printf '{"iteration": 1, "loss": 2.0}\n{"iteration": 2, "loss": \n' > "$TMP/bad.jsonl"
expect_error "a malformed line" "bad.jsonl:2:" $B plot "$TMP/bad.jsonl" --output "$TMP/x.svg"
printf '{"iteration": 1, "lr": 2.0}\n' > "$TMP/noloss.jsonl"
expect_error "a trace without a loss" 'holds no "loss"' $B plot "$TMP/noloss.jsonl" --output "$TMP/x.svg"
expect_error "an unknown picture type" "unknown picture type" $B plot "$TMP/known.jsonl" --output "$TMP/x.jpg"
expect_error "an unwritable picture" "cannot write" $B plot "$TMP/known.jsonl" --output "$TMP/nodir/x.svg"
finish
