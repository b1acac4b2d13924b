#!/bin/sh
# Every optional library that configure found is really in the program:
# for each HAVE_* that config.h defines, megatron-c references (or holds)
# the library's symbols. A configure result that never reaches the
# compiler (as HAVE_NCCL once did: "NCCL: yes" in the summary, -lnccl on the
# link line, and no NCCL call compiled into comm.cu) leaves the program
# without them; this test then names the library and the missing symbol.
# The check itself is also run on a program known to lack the symbols
# (/bin/sh), so that a check that can never fail is noticed.
set -u
: "${MT_BIN:?MT_BIN must point at the megatron-c binary (make check sets it)}"
CONFIG_H=${MT_CONFIG_H:-$(dirname "$MT_BIN")/config.h}
[ -f "$CONFIG_H" ] || { echo "no config.h beside $MT_BIN (set MT_CONFIG_H)"; exit 99; }
command -v nm >/dev/null 2>&1 || { echo "SKIP: no nm (binutils) to read the program's symbols"; exit 77; }
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# The symbols each library's code calls, one per library's job: a build
# where the calls are compiled out lacks them.
symbols_of() {
  case $1 in
    HAVE_BLAS) echo "cblas_sgemm" ;;
    HAVE_MPI)  echo "MPI_Init_thread MPI_Allreduce MPI_Comm_split" ;;
    HAVE_CUDA) echo "cudaMalloc cublasSgemm_v2" ;;
    HAVE_NCCL) echo "ncclCommInitRank ncclAllReduce ncclCommSplit" ;;
    HAVE_DNNL) echo "dnnl_sgemm" ;;
    HAVE_CAIRO) echo "cairo_image_surface_create cairo_surface_write_to_png" ;;
  esac
}

# the names the program defines or references, static and dynamic tables
names() { { nm "$1" 2>/dev/null; nm -D "$1" 2>/dev/null; } | awk '{ print $NF }' | sed 's/@.*//' | sort -u; }

# missing PROGRAM SYMBOL...: the symbols PROGRAM neither defines nor references
missing() {
  prog=$1; shift
  names "$prog" >"$tmp_names"
  for s in "$@"; do grep -qx "$s" "$tmp_names" || printf '%s ' "$s"; done
}

tmp_names=$(mktemp "${TMPDIR:-/tmp}/mt-linked.XXXXXX") || exit 99
trap 'rm -f "$tmp_names"' EXIT

found=$(sed -n 's/^#define \(HAVE_[A-Z]*\) 1$/\1/p' "$CONFIG_H")
checked=0
for have in $found; do
  syms=$(symbols_of "$have")
  [ -n "$syms" ] || continue
  checked=$((checked + 1))
  lack=$(missing "$MT_BIN" $syms)
  if [ -z "$lack" ]; then pass "$have: $(basename "$MT_BIN") has $syms"
  else fail "$have: configure found it (config.h) but $(basename "$MT_BIN") lacks $lack- its calls were compiled out"
  fi
done
[ "$checked" -gt 0 ] || echo "note: configure found none of the optional libraries (nothing to check)"

# the planted violation: a program without any of these libraries
lack=$(missing /bin/sh ncclAllReduce cblas_sgemm)
if [ "$lack" = "ncclAllReduce cblas_sgemm " ]; then pass "the check notices a program that lacks the symbols (/bin/sh)"
else fail "the check did not notice /bin/sh lacks ncclAllReduce and cblas_sgemm (got '$lack')"
fi

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
exit 0
