#!/bin/sh
# The collectives of the cpu backend (tests/test_comm.c) on a world of one
# (no launcher: the MPI build initialises itself as a singleton, the build
# without MPI uses the self layer), then on 2, 3 and 4 ranks under $MPIEXEC,
# then on 2 ranks with every message above 999 elements split into chunks
# (MT_MPI_MAX_COUNT, the layer's testing knob for the INT_MAX limit).
# Rank 0 prints the TAP lines; each must be "ok" and their number must match
# the table below.
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/mpi_common.sh"
T=$MT_TESTS/test_comm
[ -x "$T" ] || { echo "missing $T (make check builds it)"; exit 99; }

# TAP lines per world size: 43 on the world, and for each grid layout among
# (tp,pp) = (2,1) (1,2) (2,2) (1,3) (3,1) (1,4) (4,1) that divides the world
# 26 (+6 for the embedding group when pp > 1).  Update with test_comm.c.
expected() {
  case $1 in
    1) echo 43 ;;
    2) echo 101 ;;  # 43 + (2,1) 26 + (1,2) 32
    3) echo 101 ;;  # 43 + (1,3) 32 + (3,1) 26
    4) echo 191 ;;  # 43 + 26 + 32 + 32 + 32 + 26
  esac
}

# check NAME RC N: the run's exit status and rank 0's TAP output in $TMP/out
check() {
  name=$1 rc=$2 n=$3
  want=$(expected "$n")
  plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$TMP/out")
  oks=$(grep -c '^ok ' "$TMP/out")
  nots=$(grep -c '^not ok' "$TMP/out")
  if [ "$rc" -ne 0 ]; then
    fail "$name: exit status $rc"; sed 's/^/    /' "$TMP/err" | head -20
  elif [ "$nots" -ne 0 ]; then
    fail "$name: $nots check(s) failed"; grep '^not ok' "$TMP/out" | sed 's/^/    /'
    sed 's/^/    /' "$TMP/err" | head -20
  elif [ "$plan" != "$want" ] || [ "$oks" -ne "$want" ]; then
    fail "$name: plan '$plan' and $oks ok lines, expected $want"
  else
    pass "$name: $oks checks ($(grep '^# .*checks:' "$TMP/out" | sed 's/^# //' | tr '\n' ' '))"
  fi
}

"$T" >"$TMP/out" 2>"$TMP/err"
check "1 rank, no launcher" $? 1

mpi_require
for n in 2 3 4; do
  mpi_run $n "$T" >"$TMP/out" 2>"$TMP/err"
  check "$n ranks" $? $n
done
MT_MPI_MAX_COUNT=999 mpi_run 2 "$T" >"$TMP/out" 2>"$TMP/err"
check "2 ranks, messages chunked at 999 elements" $? 2
finish
