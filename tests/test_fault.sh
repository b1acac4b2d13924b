#!/bin/sh
# Hang safety: when one rank fails, the whole job must end within 30 s with a
# non-zero status, and the message must name the rank. tests/test_comm in
# fault mode: rank R waits a second (so that the others are already blocked
# in an all_reduce that needs R), then fails in one of four ways:
#   exit        exit(3) from anywhere (the MPI layer's exit handler aborts)
#   user-error  mt_user_error (error.c's abort hook calls MPI_Abort)
#   die         mt_die
#   crash       SIGKILL, as from the OOM killer (mpiexec notices; no message
#               from the dead rank is possible, so only the time is checked)
# and a training run whose rank 1 is frozen (SIGSTOP): the watchdog.
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/mpi_common.sh"
mpi_require
T=$MT_TESTS/test_comm
[ -x "$T" ] || { echo "missing $T (make check builds it)"; exit 99; }

LIMIT_MS=30000

# case NRANKS RANK HOW PATTERN
fault_case() {
  n=$1 r=$2 how=$3 pattern=$4
  name="$how on rank $r of $n"
  t0=$(now_ms)
  mpi_run "$n" "$T" --die-rank "$r" --die-after-s 1 --die-how "$how" >"$TMP/out" 2>"$TMP/err"
  rc=$?
  ms=$(( $(now_ms) - t0 ))
  if [ $rc -eq 0 ]; then fail "$name: exit status 0"; return; fi
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then fail "$name: still running after ${MT_MPI_TIMEOUT:-60} s"; return; fi
  if [ $ms -gt $LIMIT_MS ]; then fail "$name: took $ms ms (limit $LIMIT_MS)"; return; fi
  if [ -n "$pattern" ] && ! grep -qF -- "$pattern" "$TMP/err" "$TMP/out"; then
    fail "$name: output lacks '$pattern'"; sed 's/^/    /' "$TMP/err" "$TMP/out" | head -20; return
  fi
  if [ -n "$pattern" ]; then
    pass "$name: ended in $ms ms, status $rc: $(grep -hF -- "$pattern" "$TMP/err" "$TMP/out" | head -n1)"
  else
    pass "$name: ended in $ms ms, status $rc"
  fi
}

fault_case 3 1 exit "[rank 1] megatron-c: fatal: rank 1 of 3 is exiting with status 3"
fault_case 3 1 user-error "[rank 1] megatron-c: error: deliberate failure on rank 1"
fault_case 3 0 user-error "[rank 0] megatron-c: error: deliberate failure on rank 0"
fault_case 3 2 die "[rank 2] megatron-c: fatal: deliberate fatal error on rank 2"
fault_case 3 1 crash ""

# a rank frozen by SIGSTOP in a training run: the others' watchdog
# (--distributed-timeout-minutes, here 3 s) ends the job, naming the call
B=$MT_BIN
S="$MT_DATA_DIR/tinyshakespeare/input.txt"
J="$TMP/frozen.jsonl"
mpi_run 2 $B train --data-path "$S" --tokenizer-type CharLevel $TINY --eval-iters 0 --train-iters 100000 --global-batch-size 8 --distributed-timeout-minutes 0.05 \
  --log-json "$J" > "$TMP/wd.out" 2> "$TMP/wd.err" &
pid=$!
i=0
while [ $i -lt 200 ] && ! grep -q '"iteration": 2,' "$J" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
stopped=""
for p in $(pgrep -f "$J"); do
  tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qE '^(PMI_RANK|OMPI_COMM_WORLD_RANK)=1$' && kill -STOP $p && stopped=$p
done
t0=$(now_ms)
wait $pid
rc=$?
ms=$(( $(now_ms) - t0 ))
if [ -z "$stopped" ]; then
  fail "frozen rank: could not find rank 1"
elif [ $rc -ne 0 ] && [ $ms -lt 30000 ] && grep -q "\[rank 0\] megatron-c: error: .* has not finished after 3 s (--distributed-timeout-minutes 0.05)" "$TMP/wd.err"; then
  pass "a rank frozen by SIGSTOP: the job ended after $ms ms, status $rc: $(grep -h 'has not finished' "$TMP/wd.err" | head -n1)"
else
  fail "frozen rank: status $rc after $ms ms"; cat "$TMP/wd.err"
fi
kill -9 $stopped 2>/dev/null
finish
