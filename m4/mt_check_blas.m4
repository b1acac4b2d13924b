# mt_check_blas.m4 -- find a CBLAS for the CPU backend.       -*- Autoconf -*-
#
# MT_CHECK_BLAS
#
#   Option:   --with-blas[=check|yes|no]           (default: check)
#   Output:   have_blas=yes|no, mt_blas_desc (one line for the summary),
#             BLAS_CFLAGS, BLAS_LIBS (AC_SUBST, also precious: a user may set
#             them on the command line), HAVE_BLAS in config.h.
#
#   Candidates, in order; the first one that both compiles `#include <cblas.h>'
#   and links a call to cblas_sgemm wins:
#     0. BLAS_CFLAGS/BLAS_LIBS given by the user (then only those are tried)
#     1. pkg-config openblas
#     2. -lopenblas
#     3. -lcblas, -lcblas -lblas, -lblas  (Debian's netlib libblas3 carries
#        the cblas_* symbols; ATLAS splits them into -lcblas)
#
#   --with-blas=check degrades to the naive GEMM with a notice; --with-blas
#   (=yes) or user-given BLAS_LIBS that do not work stop configure.
#
#   pkg-config is found with a plain AC_PATH_TOOL rather than pkg.m4's
#   PKG_CHECK_MODULES, so that autoreconf works on a machine that has
#   autotools but not pkg-config (pkg.m4 ships with pkgconf, not autoconf).

# _MT_BLAS_TRY(DESCRIPTION, CFLAGS, LIBS)
# ---------------------------------------
# Sets mt_blas_ok=yes|no.  Not cached: it is run for several candidates.
AC_DEFUN([_MT_BLAS_TRY], [
  AC_MSG_CHECKING([for cblas_sgemm and cblas.h with $1])
  mt_blas_save_CPPFLAGS=$CPPFLAGS
  mt_blas_save_LIBS=$LIBS
  CPPFLAGS="$CPPFLAGS $2"
  LIBS="$3 $LIBS"
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <cblas.h>]], [[
    float a[1] = {1.0f}, b[1] = {2.0f}, c[1] = {0.0f};
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1,
                1.0f, a, 1, b, 1, 0.0f, c, 1);
    return c[0] != 2.0f;]])],
    [mt_blas_ok=yes], [mt_blas_ok=no])
  CPPFLAGS=$mt_blas_save_CPPFLAGS
  LIBS=$mt_blas_save_LIBS
  AC_MSG_RESULT([$mt_blas_ok])
])

AC_DEFUN([MT_CHECK_BLAS], [
AC_ARG_WITH([blas],
  [AS_HELP_STRING([--with-blas@<:@=check|yes|no@:>@],
    [use a CBLAS library (OpenBLAS preferred) for GEMM in the CPU backend;
     without one the CPU backend uses its naive GEMM @<:@default=check@:>@])],
  [], [with_blas=check])
AC_ARG_VAR([BLAS_CFLAGS], [C preprocessor flags for CBLAS, overriding detection])
AC_ARG_VAR([BLAS_LIBS], [linker flags for CBLAS, overriding detection])
AC_ARG_VAR([PKG_CONFIG], [path to the pkg-config utility])

have_blas=no
mt_blas_desc="no (--without-blas: naive GEMM)"
case $with_blas in
  yes|no|check) ;;
  *) AC_MSG_ERROR([--with-blas takes yes, no or check, not '$with_blas'; use BLAS_CFLAGS=... BLAS_LIBS=... for a specific library]) ;;
esac

AS_IF([test "x$with_blas" != xno], [
  mt_blas_ok=no
  AS_IF([test -n "$BLAS_LIBS$BLAS_CFLAGS"], [
    dnl The user named the library: try exactly that, and fail if it does not work.
    _MT_BLAS_TRY([BLAS_CFLAGS/BLAS_LIBS], [$BLAS_CFLAGS], [$BLAS_LIBS])
    AS_IF([test "x$mt_blas_ok" = xno],
      [AC_MSG_FAILURE([BLAS_CFLAGS='$BLAS_CFLAGS' BLAS_LIBS='$BLAS_LIBS' do not give a usable cblas.h and cblas_sgemm])])
    mt_blas_desc="yes (user: $BLAS_CFLAGS $BLAS_LIBS)"
  ], [
    AC_PATH_TOOL([PKG_CONFIG], [pkg-config])
    AS_IF([test -n "$PKG_CONFIG" && $PKG_CONFIG --exists openblas 2>/dev/null], [
      mt_blas_pc_cflags=`$PKG_CONFIG --cflags openblas 2>/dev/null`; mt_blas_pc_cflags=`echo $mt_blas_pc_cflags`
      mt_blas_pc_libs=`$PKG_CONFIG --libs openblas 2>/dev/null`; mt_blas_pc_libs=`echo $mt_blas_pc_libs`
      _MT_BLAS_TRY([pkg-config openblas], [$mt_blas_pc_cflags], [$mt_blas_pc_libs])
      AS_IF([test "x$mt_blas_ok" = xyes], [
        BLAS_CFLAGS=$mt_blas_pc_cflags
        BLAS_LIBS=$mt_blas_pc_libs
        mt_blas_desc="yes (pkg-config openblas: $BLAS_LIBS)"
      ])
    ])
    for mt_blas_try in "-lopenblas" "-lcblas" "-lcblas -lblas" "-lblas"; do
      test "x$mt_blas_ok" = xyes && break
      _MT_BLAS_TRY([$mt_blas_try], [], [$mt_blas_try])
      AS_IF([test "x$mt_blas_ok" = xyes], [
        BLAS_CFLAGS=
        BLAS_LIBS=$mt_blas_try
        mt_blas_desc="yes ($BLAS_LIBS)"
      ])
    done
  ])

  AS_IF([test "x$mt_blas_ok" = xyes], [have_blas=yes], [
    AS_IF([test "x$with_blas" = xyes],
      [AC_MSG_ERROR([--with-blas given, but no library provides both cblas.h and cblas_sgemm.
  On Debian/Ubuntu: apt-get install libopenblas-openmp-dev (or libopenblas-dev).
  Elsewhere: pass BLAS_CFLAGS=-I... BLAS_LIBS='-L... -lopenblas'.])])
    AC_MSG_NOTICE([no CBLAS found: the CPU backend will use its naive GEMM (correct, slow)])
    mt_blas_desc="no (not found: naive GEMM)"
  ])
])

AS_IF([test "x$have_blas" = xyes],
  [AC_DEFINE([HAVE_BLAS], [1], [Define to 1 if the CPU backend can call cblas_sgemm from <cblas.h>.])],
  [BLAS_CFLAGS=; BLAS_LIBS=])
AC_SUBST([BLAS_CFLAGS])
AC_SUBST([BLAS_LIBS])
])
