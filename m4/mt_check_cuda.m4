# mt_check_cuda.m4 -- CUDA toolkit, cuBLAS and NCCL.          -*- Autoconf -*-
#
# MT_CHECK_CUDA
#
#   Options:  --with-cuda[=check|yes|no|PREFIX]     (default: check)
#             --with-cuda-arch=LIST                  (default: "80 90")
#   Output:   have_cuda=yes|no, mt_cuda_desc, NVCC, NVCCFLAGS (precious),
#             CUDA_ARCH_FLAGS, CUDA_CPPFLAGS, CUDA_LDFLAGS, CUDA_LIBS (AC_SUBST),
#             HAVE_CUDA in config.h.
#
#   The default `check' builds the backend whenever nvcc, cudart and cuBLAS
#   are found, and quietly leaves it out otherwise.
#
#   PREFIX is a CUDA toolkit root (PREFIX/bin/nvcc, PREFIX/include,
#   PREFIX/lib64 or PREFIX/lib).  With `yes'/`check' the root is taken from
#   the nvcc found in PATH, then /usr/local/cuda.  No GPU is needed to
#   configure or build: the architectures come from --with-cuda-arch, never
#   from probing nvidia-smi.
#
# MT_CHECK_NCCL  (after MT_CHECK_CUDA)
#
#   Option:   --with-nccl[=check|yes|no|PREFIX]     (default: check)
#   Output:   have_nccl=yes|no, mt_nccl_desc, NCCL_CPPFLAGS, NCCL_LDFLAGS,
#             NCCL_LIBS (AC_SUBST), HAVE_NCCL in config.h.
#   Looked for in PREFIX, else in the CUDA root, else on the default paths.
#   Without CUDA, NCCL is not looked for; asking for it explicitly then is an
#   error.

AC_DEFUN([MT_CHECK_CUDA], [
AC_ARG_WITH([cuda],
  [AS_HELP_STRING([--with-cuda@<:@=PREFIX@:>@],
    [build the CUDA backend (nvcc, cudart, cuBLAS) from the toolkit in PREFIX
     or the nvcc in PATH @<:@default=check@:>@])],
  [], [with_cuda=check])
AC_ARG_WITH([cuda-arch],
  [AS_HELP_STRING([--with-cuda-arch=LIST],
    [SM architectures to compile the CUDA backend for, separated by spaces
     or commas; PTX for the last one is embedded too @<:@default="80 90"@:>@])],
  [], [with_cuda_arch="80 90"])
AC_ARG_VAR([NVCC], [CUDA compiler command])
AC_ARG_VAR([NVCCFLAGS], [flags for NVCC @<:@default: -O2 -g -lineinfo@:>@])

have_cuda=no
mt_cuda_desc="no"
CUDA_ARCH_FLAGS=
CUDA_CPPFLAGS=
CUDA_LDFLAGS=
CUDA_LIBS=
mt_cuda_prefix=

case $with_cuda in
  no)  mt_cuda_desc="no (--without-cuda)" ;;
  yes|check|auto) ;;
  /*)  mt_cuda_prefix=$with_cuda ;;
  *)   AC_MSG_ERROR([--with-cuda takes yes, no, check or an absolute PREFIX, not '$with_cuda']) ;;
esac

AS_IF([test "x$with_cuda" != xno], [
  mt_cuda_fail=

  dnl --- nvcc and the toolkit root
  AS_IF([test -n "$mt_cuda_prefix"],
    [AC_PATH_PROG([NVCC], [nvcc], [], [$mt_cuda_prefix/bin])],
    [AC_PATH_PROG([NVCC], [nvcc], [], [$PATH$PATH_SEPARATOR/usr/local/cuda/bin])])
  AS_IF([test -z "$NVCC"], [mt_cuda_fail="nvcc not found"], [
    AS_IF([test -z "$mt_cuda_prefix"], [
      dnl nvcc may be a symlink (e.g. /usr/bin/nvcc -> /usr/local/cuda-X/bin/nvcc)
      mt_cuda_nvcc_real=`readlink -f "$NVCC" 2>/dev/null || echo "$NVCC"`
      mt_cuda_prefix=`AS_DIRNAME(["$mt_cuda_nvcc_real"])`
      mt_cuda_prefix=`AS_DIRNAME(["$mt_cuda_prefix"])`
    ])
  ])

  dnl --- architectures: "80 90" -> -gencode for each, plus PTX of the last
  AS_IF([test -z "$mt_cuda_fail"], [
    mt_cuda_last=
    for mt_cuda_a in `echo "$with_cuda_arch" | tr ',' ' '`; do
      case $mt_cuda_a in
        sm_*|compute_*) mt_cuda_a=`echo "$mt_cuda_a" | sed 's/^[[a-z]]*_//'` ;;
      esac
      case $mt_cuda_a in
        [[1-9]][[0-9]]|[[1-9]][[0-9]][[0-9]]|[[1-9]][[0-9]]a|[[1-9]][[0-9]][[0-9]]a|[[1-9]][[0-9]][[0-9]]f) ;;
        *) AC_MSG_ERROR([--with-cuda-arch: '$mt_cuda_a' is not an SM number such as 80 or 90a]) ;;
      esac
      CUDA_ARCH_FLAGS="$CUDA_ARCH_FLAGS -gencode arch=compute_$mt_cuda_a,code=sm_$mt_cuda_a"
      mt_cuda_last=$mt_cuda_a
    done
    AS_IF([test -z "$mt_cuda_last"], [AC_MSG_ERROR([--with-cuda-arch is empty])])
    CUDA_ARCH_FLAGS="$CUDA_ARCH_FLAGS -gencode arch=compute_$mt_cuda_last,code=compute_$mt_cuda_last"
    CUDA_ARCH_FLAGS=`echo $CUDA_ARCH_FLAGS`
    AS_IF([test -z "$NVCCFLAGS"], [NVCCFLAGS="-O2 -g -lineinfo"])

    AC_MSG_CHECKING([whether $NVCC compiles for sm $with_cuda_arch])
    cat > conftest.cu <<_MT_EOF
__global__ void mt_k(float *x) { x[[threadIdx.x]] *= 2.0f; }
int main(void) { mt_k<<<1, 1>>>(0); return 0; }
_MT_EOF
    AS_IF([$NVCC $NVCCFLAGS $CUDA_ARCH_FLAGS -c -o conftest.$OBJEXT conftest.cu >&AS_MESSAGE_LOG_FD 2>&1],
      [AC_MSG_RESULT([yes])],
      [AC_MSG_RESULT([no])
       mt_cuda_fail="$NVCC cannot compile for '$with_cuda_arch' (see config.log)"])
    rm -f conftest.cu conftest.$OBJEXT
  ])

  dnl --- headers and libraries, tried with the C compiler
  AS_IF([test -z "$mt_cuda_fail"], [
    CUDA_CPPFLAGS="-I$mt_cuda_prefix/include"
    mt_cuda_libdir=
    for mt_cuda_d in "$mt_cuda_prefix/lib64" "$mt_cuda_prefix/lib" "$mt_cuda_prefix/targets/x86_64-linux/lib" "$mt_cuda_prefix/targets/sbsa-linux/lib"; do
      if test -f "$mt_cuda_d/libcudart.so" || test -f "$mt_cuda_d/libcudart.a"; then
        mt_cuda_libdir=$mt_cuda_d; break
      fi
    done
    AS_IF([test -n "$mt_cuda_libdir"],
      [CUDA_LDFLAGS="-L$mt_cuda_libdir -Wl,-rpath,$mt_cuda_libdir"])
    CUDA_LIBS="-lcublasLt -lcublas -lcudart"

    mt_cuda_save_CPPFLAGS=$CPPFLAGS
    mt_cuda_save_LDFLAGS=$LDFLAGS
    mt_cuda_save_LIBS=$LIBS
    CPPFLAGS="$CPPFLAGS $CUDA_CPPFLAGS"
    LDFLAGS="$LDFLAGS $CUDA_LDFLAGS"
    LIBS="$CUDA_LIBS $LIBS"
    AC_MSG_CHECKING([for cudart and cuBLAS in $mt_cuda_prefix])
    AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <cuda_runtime.h>
#include <cublas_v2.h>]], [[
      int n = 0; cublasHandle_t h;
      (void)cudaGetDeviceCount(&n);
      if (cublasCreate(&h) == CUBLAS_STATUS_SUCCESS) cublasDestroy(h);
      return 0;]])],
      [AC_MSG_RESULT([yes])],
      [AC_MSG_RESULT([no])
       mt_cuda_fail="cuda_runtime.h/cublas_v2.h or -lcudart/-lcublas not usable in $mt_cuda_prefix"])
    CPPFLAGS=$mt_cuda_save_CPPFLAGS
    LDFLAGS=$mt_cuda_save_LDFLAGS
    LIBS=$mt_cuda_save_LIBS
  ])

  AS_IF([test -z "$mt_cuda_fail"], [
    have_cuda=yes
    mt_cuda_version=`$NVCC --version 2>/dev/null | sed -n 's/.*release \([[0-9.]]*\).*/\1/p'`
    mt_cuda_desc="yes (CUDA $mt_cuda_version in $mt_cuda_prefix, sm: $with_cuda_arch)"
  ], [
    AS_IF([test "x$with_cuda" = xcheck || test "x$with_cuda" = xauto],
      [AC_MSG_NOTICE([CUDA backend disabled: $mt_cuda_fail])
       mt_cuda_desc="no ($mt_cuda_fail)"],
      [AC_MSG_ERROR([--with-cuda=$with_cuda given, but $mt_cuda_fail])])
    CUDA_ARCH_FLAGS=; CUDA_CPPFLAGS=; CUDA_LDFLAGS=; CUDA_LIBS=
  ])
])

AS_IF([test "x$have_cuda" = xyes],
  [AC_DEFINE([HAVE_CUDA], [1], [Define to 1 to build the CUDA backend.])])
AC_SUBST([CUDA_ARCH_FLAGS])
AC_SUBST([CUDA_CPPFLAGS])
AC_SUBST([CUDA_LDFLAGS])
AC_SUBST([CUDA_LIBS])
])

AC_DEFUN([MT_CHECK_NCCL], [
AC_REQUIRE([MT_CHECK_CUDA])
AC_ARG_WITH([nccl],
  [AS_HELP_STRING([--with-nccl@<:@=PREFIX@:>@],
    [use NCCL for collectives between GPUs (needs the CUDA backend)
     @<:@default=check when CUDA is built@:>@])],
  [], [with_nccl=check])

have_nccl=no
mt_nccl_desc="no"
NCCL_CPPFLAGS=
NCCL_LDFLAGS=
NCCL_LIBS=
mt_nccl_prefix=
case $with_nccl in
  no|yes|check|auto) ;;
  /*) mt_nccl_prefix=$with_nccl ;;
  *)  AC_MSG_ERROR([--with-nccl takes yes, no, check or an absolute PREFIX, not '$with_nccl']) ;;
esac

AS_IF([test "x$with_nccl" = xno], [mt_nccl_desc="no (--without-nccl)"],
      [test "x$have_cuda" != xyes], [
  AS_CASE([$with_nccl],
    [check|auto], [mt_nccl_desc="no (needs the CUDA backend)"],
    [AC_MSG_ERROR([--with-nccl=$with_nccl given, but NCCL needs the CUDA backend (--with-cuda)])])
], [
  dnl candidate roots: PREFIX if given, else the CUDA root, else default paths
  AS_IF([test -n "$mt_nccl_prefix"], [mt_nccl_roots="$mt_nccl_prefix"],
                                     [mt_nccl_roots="$mt_cuda_prefix NONE"])
  mt_nccl_save_CPPFLAGS=$CPPFLAGS
  mt_nccl_save_LDFLAGS=$LDFLAGS
  mt_nccl_save_LIBS=$LIBS
  for mt_nccl_r in $mt_nccl_roots; do
    mt_nccl_cpp=; mt_nccl_ld=
    dnl NONE: the default paths; the CUDA root: already in the CUDA flags
    if test "x$mt_nccl_r" != xNONE && test "x$mt_nccl_r" != "x$mt_cuda_prefix"; then
      mt_nccl_cpp="-I$mt_nccl_r/include"
      for mt_nccl_d in "$mt_nccl_r/lib64" "$mt_nccl_r/lib"; do
        if test -f "$mt_nccl_d/libnccl.so" || test -f "$mt_nccl_d/libnccl_static.a"; then
          mt_nccl_ld="-L$mt_nccl_d -Wl,-rpath,$mt_nccl_d"; break
        fi
      done
    fi
    CPPFLAGS="$mt_nccl_save_CPPFLAGS $CUDA_CPPFLAGS $mt_nccl_cpp"
    LDFLAGS="$mt_nccl_save_LDFLAGS $CUDA_LDFLAGS $mt_nccl_ld"
    LIBS="-lnccl $CUDA_LIBS $mt_nccl_save_LIBS"
    AS_IF([test "x$mt_nccl_r" = xNONE],
      [AC_MSG_CHECKING([for NCCL >= 2.18 (nccl.h, -lnccl, ncclCommSplit) on the default paths])],
      [AC_MSG_CHECKING([for NCCL >= 2.18 (nccl.h, -lnccl, ncclCommSplit) in $mt_nccl_r])])
    dnl backends/cuda/comm.cu splits communicators with ncclCommSplit (2.18)
    AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <nccl.h>]], [[
      ncclComm_t c = 0, n = 0; (void)ncclCommSplit(c, 0, 0, &n, NULL); return 0;]])],
      [have_nccl=yes], [have_nccl=no])
    AC_MSG_RESULT([$have_nccl])
    AS_IF([test "x$have_nccl" = xyes], [
      NCCL_CPPFLAGS=$mt_nccl_cpp
      NCCL_LDFLAGS=$mt_nccl_ld
      NCCL_LIBS=-lnccl
      AS_IF([test "x$mt_nccl_r" = xNONE], [mt_nccl_desc="yes"], [mt_nccl_desc="yes ($mt_nccl_r)"])
      break
    ])
  done
  CPPFLAGS=$mt_nccl_save_CPPFLAGS
  LDFLAGS=$mt_nccl_save_LDFLAGS
  LIBS=$mt_nccl_save_LIBS
  AS_IF([test "x$have_nccl" = xno], [
    AS_CASE([$with_nccl],
      [check|auto], [AC_MSG_NOTICE([NCCL >= 2.18 not found: the CUDA backend will run single-GPU jobs only])
                     mt_nccl_desc="no (NCCL >= 2.18 not found: single-GPU runs only)"],
      [AC_MSG_ERROR([--with-nccl=$with_nccl given, but NCCL 2.18 or newer (nccl.h, -lnccl with ncclCommSplit) was not found there])])
  ])
])

AS_IF([test "x$have_nccl" = xyes],
  [AC_DEFINE([HAVE_NCCL], [1], [Define to 1 to use NCCL in the CUDA backend.])])
AC_SUBST([NCCL_CPPFLAGS])
AC_SUBST([NCCL_LDFLAGS])
AC_SUBST([NCCL_LIBS])
])
