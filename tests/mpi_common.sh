# mpi_common.sh: sourced by the MPI tests, after common.sh.
#
#   mpi_require              exit 77 (skip) unless the build linked the MPI
#                            communicator (MT_HAVE_MPI=yes, exported by
#                            make check) and configure found a launcher
#                            (MPIEXEC)
#   mpi_run N CMD...         CMD on N ranks under $MPIEXEC, killed after
#                            $MT_MPI_TIMEOUT seconds (default 60); exit
#                            status 124 means it was killed
#   now_ms                   wall clock in milliseconds (seconds * 1000
#                            where date has no %N)
#
# One OpenMP thread per rank: the tests start up to 4 ranks on small machines.
# HYDRA_LAUNCHER=fork keeps MPICH's launcher off ssh on one machine.
: "${MT_HAVE_MPI:=no}"
: "${MPIEXEC:=}"
OMP_NUM_THREADS=1; export OMP_NUM_THREADS
HYDRA_LAUNCHER=${HYDRA_LAUNCHER:-fork}; export HYDRA_LAUNCHER
: "${MT_TESTS:=$(cd "$(dirname "$0")" && pwd)}"

mpi_require() {
  if [ "$MT_HAVE_MPI" != yes ]; then
    echo "SKIP: this build has no MPI (configure found no mpicc, or --without-mpi)"; exit 77
  fi
  if [ -z "$MPIEXEC" ]; then
    echo "SKIP: configure found no mpiexec/mpirun (set MPIEXEC=...)"; exit 77
  fi
}

# Open MPI refuses to run as root or to put more ranks than cores on a machine
# unless told to; MPICH needs nothing.
MT_MPIEXEC_FLAGS=${MT_MPIEXEC_FLAGS:-}
if [ -n "$MPIEXEC" ] && $MPIEXEC --version 2>&1 | grep -q "Open MPI"; then
  MT_MPIEXEC_FLAGS="$MT_MPIEXEC_FLAGS --oversubscribe"
  [ "$(id -u)" = 0 ] && MT_MPIEXEC_FLAGS="$MT_MPIEXEC_FLAGS --allow-run-as-root"
fi

mpi_run() {
  _n=$1; shift
  if command -v timeout >/dev/null 2>&1; then
    timeout "${MT_MPI_TIMEOUT:-60}" $MPIEXEC $MT_MPIEXEC_FLAGS -n "$_n" "$@"
  else
    $MPIEXEC $MT_MPIEXEC_FLAGS -n "$_n" "$@"
  fi
}

# mpi_train NAME NPROC ARGS...: megatron-c train $P ARGS on NPROC ranks (1:
# without mpiexec); leaves NAME.jsonl, NAME.train.jsonl (the training lines
# only: validation lines share the iteration numbers) and NAME.loss (the
# losses as printed) in $TMP. Exits the test on failure.
mpi_train() {
  _name=$1; _np=$2; shift 2
  if [ "$_np" -eq 1 ]; then $MT_BIN train $P "$@" --log-json "$TMP/$_name.jsonl" > "$TMP/$_name.log" 2>&1
  else MT_MPI_TIMEOUT=300 mpi_run "$_np" $MT_BIN train $P "$@" --log-json "$TMP/$_name.jsonl" > "$TMP/$_name.log" 2>&1; fi
  _rc=$?
  [ $_rc -eq 0 ] || { echo "run $_name failed ($_rc):"; tail -n 20 "$TMP/$_name.log"; exit 1; }
  grep -v '"val_loss"' "$TMP/$_name.jsonl" > "$TMP/$_name.train.jsonl"
  json_field "$TMP/$_name.train.jsonl" loss > "$TMP/$_name.loss"
}

# compare_traces TITLE NAME REF TOL: NAME's training trace against REF's
# (megatron-c compare, relative tolerance TOL)
compare_traces() {
  if $MT_BIN compare "$TMP/$2.train.jsonl" "$TMP/$3.train.jsonl" --rtol "$4" > "$TMP/cmp" 2>&1; then
    pass "$1: $(grep -E '^(compared|max rel diff)' "$TMP/cmp" | tr '\n' ' ')(rtol $4)"
  else fail "$1"; cat "$TMP/cmp"; fi
}

now_ms() {
  _t=$(date +%s%N 2>/dev/null)
  case $_t in
    *N|'') echo $(( $(date +%s) * 1000 )) ;;
    *) echo $(( _t / 1000000 )) ;;
  esac
}
