#!/bin/sh
# The dependency rules of doc/architecture.md, checked over the #include
# lines of the source tree (a grep; no build needed):
#  1. src/ never includes a backend's headers (cpu/, cuda/, process/) nor
#     <mpi.h>, <cblas.h>, <omp.h>, CUDA, cuBLAS, NCCL or oneDNN headers;
#  2. backends/ includes only backend/, core/ and process/ headers from the
#     rest of the tree, and its own folder's; cuda/ and cpu/ never include
#     each other;
#  3. src/core/ includes only core/ (and config.h);
#  4. src/parallel/ knows shards but no model: of src/model/ it includes
#     only model/params.h (the parameter table);
#  5. exactly one main(): src/cli/main.c;
#  6. a file that tests a configure result (#if ... HAVE_*) includes
#     config.h, itself or through one of the project headers it includes:
#     configure's results reach the compiler only through config.h.
# Each rule is also tried on a planted violation, so that a rule that can
# never fail is noticed.
set -u
SRC=${MT_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$SRC" || exit 99
[ -d src ] && [ -d backends ] || { echo "no source tree at $SRC"; exit 99; }
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# includes [-q] DIR...: "file:path" for every #include of the C/C++/CUDA
# sources under DIR; -q: only the quoted ones (the project's own headers)
includes() {
  open='[<"]'
  [ "$1" = -q ] && { open='"'; shift; }
  find "$@" -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.cc' \) \
       -exec grep -H -E "^[[:space:]]*#[[:space:]]*include[[:space:]]*$open" {} + 2>/dev/null |
    sed -E 's/^([^:]*):[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]*)[>"].*/\1:\2/'
}

# rule NAME LIST_CMD: LIST_CMD prints violations ("file:include"), one per line
rule() {
  name=$1; shift
  out=$("$@")
  if [ -z "$out" ]; then pass "$name"
  else fail "$name"; echo "$out" | sed 's/^/    /'; fi
}

r1() { includes ${1:-src} | grep -E ':(cpu|cuda|process)/|:(mpi\.h|cblas\.h|omp\.h|nccl\.h|dnnl.*|cuda.*\.h|cublas.*\.h|cuda_runtime.*)$'; }
r2() {
  includes -q ${1:-backends} | while IFS=: read -r f inc; do
    dir=$(echo "$f" | sed -E 's|^([^/]*/)*backends/([^/]*)/.*|\2|')
    case $inc in
      backend/*|core/*|process/*|config.h) ;;
      cpu/*) [ "$dir" = cpu ] || echo "$f:$inc" ;;
      cuda/*) [ "$dir" = cuda ] || echo "$f:$inc" ;;
      */*) case $inc in ../*) ;; *) echo "$f:$inc" ;; esac ;;
    esac
  done
}
r3() { includes -q ${1:-src/core} | grep -v -E ':(core/[^/]*|config\.h|[^/]*)$'; }
r4() { includes -q ${1:-src/parallel} | grep -E ':model/' | grep -v ':model/params\.h$'; }
r5() {
  grep -rlE '^(int|static int)[[:space:]]+main[[:space:]]*\(' ${1:-src} --include='*.c' | grep -v -x "${2:-src/cli/main.c}"
}

# r6 [DIR...]: files that test HAVE_* but see no config.h (one header deep;
# project headers are found under src/ and backends/ of the tree)
sees_config() { # FILE
  grep -q -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"config\.h"' "$1" && return 0
  for h in $(includes -q "$1" | cut -d: -f2); do
    for d in src backends "$(dirname "$1")"; do
      [ -f "$d/$h" ] && grep -q -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"config\.h"' "$d/$h" && return 0
    done
  done
  return 1
}
r6() {
  grep -rlE '^[[:space:]]*#[[:space:]]*(if|ifdef|ifndef|elif).*HAVE_[A-Z]' ${1:-src backends} \
       --include='*.c' --include='*.cu' --include='*.cc' | while read -r f; do
    sees_config "$f" || echo "$f"
  done
}

rule "src/ includes no backend, MPI, BLAS, OpenMP or CUDA header" r1
rule "backends/ include only backend/, core/, process/ and their own folder" r2
rule "src/core/ includes only core/" r3
rule "src/parallel/ includes no model header but the parameter table" r4
rule "one main(), in src/cli/main.c" r5
rule "every file that tests HAVE_* sees config.h" r6

# the rules catch planted violations
P=$(mktemp -d "${TMPDIR:-/tmp}/mt-layer.XXXXXX") || exit 99
trap 'rm -rf "$P"' EXIT
mkdir -p "$P/src/model" "$P/backends/cuda" "$P/src/core" "$P/src/parallel"
printf '#include "cpu/cpu_internal.h"\n#include <mpi.h>\n' > "$P/src/model/bad.c"
printf '#include "cpu/cpu_internal.h"\n#include "model/gpt.h"\n' > "$P/backends/cuda/bad.cu"
printf '#include "backend/backend.h"\n' > "$P/src/core/bad.c"
printf '#include "model/layer.h"\n' > "$P/src/parallel/bad.c"
printf 'int main(void) { return 0; }\n' > "$P/src/model/bad2.c"
printf '#include "cuda/x.cuh"\n#ifdef HAVE_NCCL\n#endif\n' > "$P/backends/cuda/bad3.cu"
planted() { # NAME RULE DIR [ARG]: RULE must report the planted file
  if [ -n "$("$2" "$3" ${4:-})" ]; then pass "planted violation caught: $1"
  else fail "planted violation not caught: $1"; fi
}
planted "a backend header and <mpi.h> in src/" r1 "$P/src"
planted "cpu/ and model/ included by cuda/" r2 "$P/backends"
planted "backend/ included by core/" r3 "$P/src/core"
planted "a model header in parallel/" r4 "$P/src/parallel"
planted "a second main()" r5 "$P/src" src/cli/main.c
planted "HAVE_NCCL tested without config.h" r6 "$P/backends"

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
exit 0
