# common.sh: sourced by the shell tests. Exit codes: 0 pass, 77 skip,
# 99 hard error in the test's own setup, anything else a failure.
set -u
: "${MT_BIN:?MT_BIN must point at the megatron-c binary (make check sets it)}"
: "${MT_SRCDIR:=$(cd "$(dirname "$0")/.." && pwd)}"
export MT_DATA_DIR="${MT_DATA_DIR:-$MT_SRCDIR/data}"
[ -x "$MT_BIN" ] || { echo "missing binary $MT_BIN"; exit 99; }
[ -f "$MT_DATA_DIR/tinyshakespeare/input.txt" ] || { echo "missing $MT_DATA_DIR/tinyshakespeare/input.txt"; exit 99; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mt-test.XXXXXX") || exit 99
trap 'rm -rf "$TMP"' EXIT
failures=0

# A tiny model on the shipped text: a few seconds per run.
TINY="--num-layers 2 --hidden-size 32 --num-attention-heads 4 --seq-length 32 \
 --micro-batch-size 4 --lr 3e-3 --lr-warmup-iters 2 --lr-decay-iters 20 --log-interval 1 \
 --eval-interval 0 --eval-iters 2 --sample-tokens 0 --no-progress"

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# expect_error NAME PATTERN CMD...: CMD must exit non-zero and print PATTERN on stderr
expect_error() {
  name=$1; pattern=$2; shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ $rc -eq 0 ]; then fail "$name: exit status 0"; return; fi
  if [ $rc -ge 128 ]; then fail "$name: crashed with status $rc"; cat "$TMP/err"; return; fi
  if ! grep -q -- "$pattern" "$TMP/err"; then
    fail "$name: stderr lacks '$pattern'"; sed 's/^/    /' "$TMP/err"; return
  fi
  pass "$name: $(head -n1 "$TMP/err")"
}

# json_field FILE KEY: the values of KEY on the lines that have it
json_field() { sed -n "s/.*\"$2\": \([^,}]*\).*/\1/p" "$1"; }

finish() { [ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }; exit 0; }
