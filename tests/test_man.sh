#!/bin/sh
# The man page (megatron-c.1, made by doc/gen_man.sh from the program's own
# --help at build time): every subcommand has its section and every flag of
# every command's --help is in it; groff formats it without a warning.
. "$(dirname "$0")/common.sh"
MAN=$(dirname "$MT_BIN")/megatron-c.1
[ -s "$MAN" ] || { echo "no $MAN (make builds it)"; exit 99; }
cmds=$("$MT_BIN" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }' | grep -v '^version$')
[ "$(echo "$cmds" | wc -l)" -ge 11 ] || fail "only $(echo "$cmds" | wc -l) commands in --help"
missing=0 total=0
for c in $cmds; do
  up=$(echo "$c" | tr a-z A-Z)
  grep -q "^\.SH \"MEGATRON\\\\-C $up\"" "$MAN" || fail "no section for $c"
  for f in $(COLUMNS=100000 "$MT_BIN" "$c" --help | sed -n 's/^  \(--[a-z0-9-]*\).*/\1/p'); do
    total=$((total + 1))
    esc=$(echo "$f" | sed 's/-/\\\\-/g')
    grep -q "^\.B $esc\( \|$\)" "$MAN" || { missing=$((missing + 1)); echo "  $c: $f not in the man page"; }
  done
done
[ $missing -eq 0 ] && pass "all $(echo $cmds | wc -w) commands and their $total flags are in megatron-c.1" || fail "$missing of $total flags missing"
if command -v groff > /dev/null; then
  groff -man -Tutf8 -ww -z "$MAN" > "$TMP/groff" 2>&1
  [ ! -s "$TMP/groff" ] && pass "groff -man -ww: no warning" || { fail "groff warns"; head "$TMP/groff"; }
  n=$(groff -man -Tutf8 "$MAN" 2> /dev/null | wc -l)
  [ "$n" -gt 500 ] && pass "it renders to $n lines" || fail "renders to $n lines"
fi
finish
