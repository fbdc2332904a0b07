#!/bin/sh
# compile.sh - build one program against the public header.
#
#   compile.sh --compiler CC --lang c|c++ --std STD --disable 0|1
#              --source FILE --include DIR --lib LIBSTAGEPROF_A
#              [--extra "FLAGS"] [--libs "LIBS"] --work DIR
#
# Compiles FILE as LANG/STD with -Wall -Wextra -Werror (and -Wpedantic).
# With --disable 1 the program is compiled with -DSTAGEPROF_DISABLE and
# only compiled; otherwise it is linked against the static library and run,
# once with tracing off and once with STAGEPROF_ENABLE=1. LIBS are what the
# static library itself links (default: -pthread -lm -lz).
set -eu

compiler='' lang='' std='' disable=0 source='' include='' lib='' extra='' work=''
libs='-pthread -lm -lz'
while [ $# -gt 0 ]; do
    case "$1" in
    --compiler) compiler=$2 ;;
    --lang) lang=$2 ;;
    --std) std=$2 ;;
    --disable) disable=$2 ;;
    --source) source=$2 ;;
    --include) include=$2 ;;
    --lib) lib=$2 ;;
    --extra) extra=$2 ;;
    --libs) libs=$2 ;;
    --work) work=$2 ;;
    *) echo "compile.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift 2
done

if [ ! -f "$source" ]; then
    echo "compile.sh: $source does not exist yet" >&2
    exit 77
fi
if ! command -v "$compiler" >/dev/null 2>&1; then
    echo "compile.sh: compiler $compiler not found" >&2
    exit 77
fi

rm -rf "$work"
mkdir -p "$work"

flags="-std=$std -Wall -Wextra -Werror -Wpedantic -I$include"
if [ "$lang" = c ]; then
    flags="$flags -Wstrict-prototypes -Wshadow"
fi
if [ "$disable" = 1 ]; then
    flags="$flags -DSTAGEPROF_DISABLE"
fi

run() {
    echo "+ $*"
    "$@"
}

# shellcheck disable=SC2086 # flag lists are split on purpose
run "$compiler" -x "$lang" $flags $extra -c "$source" -o "$work/api.o"

if [ "$disable" = 1 ]; then
    # Compiled out: the program must not need any symbol of the library for
    # the macros; its own calls to functions are allowed, so only compile.
    echo "compile.sh: $lang/$std with STAGEPROF_DISABLE compiled"
    exit 0
fi

# The static library's own dependencies: pthreads, libm, zlib.
# shellcheck disable=SC2086
run "$compiler" $extra "$work/api.o" "$lib" $libs -o "$work/api"

run "$work/api"
mkdir -p "$work/trace"
STAGEPROF_ENABLE=1 STAGEPROF_DIR="$work/trace" run "$work/api"
if [ -z "$(find "$work/trace" -type f -name '*.json*' -size +0)" ]; then
    echo "compile.sh: tracing on, but no trace file in $work/trace" >&2
    exit 1
fi
echo "compile.sh: $lang/$std built, linked and ran"
