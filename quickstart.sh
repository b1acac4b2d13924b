#!/bin/sh
# quickstart.sh: installs what is missing on a Debian/Ubuntu machine, builds
# megatron-c, and trains the teaching default (a character-level GPT on tiny
# Shakespeare, a few minutes on 2 cores). MPI (MPICH) is installed too, so
# the build has the parallel layouts. Extra arguments go to `train`. The run
# writes its log as JSON lines to quickstart-loss.jsonl and draws its curves
# into quickstart-loss.svg (unless the arguments name another --log-json).
set -e
cd "$(dirname "$0")"
pkgs="build-essential autoconf automake libtool pkg-config libopenblas-openmp-dev libdnnl-dev mpich libmpich-dev"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "quickstart: installing$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure
make -j"$(nproc 2>/dev/null || echo 2)"
log="--log-json quickstart-loss.jsonl"
for a in "$@"; do case $a in --log-json|--log-json=*) log="" ;; esac; done
exec ./megatron-c train $log "$@"
