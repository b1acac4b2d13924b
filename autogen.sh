#!/bin/sh
# autogen.sh: regenerate ./configure and Makefile.in from a git checkout.
# Needs autoconf >= 2.69 and automake >= 1.13 (not pkg-config, not the
# Autoconf Archive: the macros used are in m4/).  Same as `autoreconf -fi'.
set -e
cd "$(dirname "$0")"
exec autoreconf --force --install --verbose "$@"
