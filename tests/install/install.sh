#!/bin/sh
# install.sh - the installed package works for a consumer.
#
#   install.sh --build DIR --source DIR --cmake CMAKE --cc CC
#              --generator GEN --config CFG --work DIR [--disabled 0|1]
#
# 1. cmake --install the build into WORK/prefix.
# 2. find_package: configure and build examples/hello against the prefix
#    with stageprof::stageprof (static) and with stageprof::stageprof_shared,
#    run both with tracing on and check each wrote a trace file.
# 3. pkg-config: cc hello.c $(pkg-config --cflags --libs --static stageprof)
#    with PKG_CONFIG_PATH into the prefix, run it.
# 4. shared: link against libstageprof.so, check its SONAME and the
#    program's NEEDED entry with readelf, run with LD_LIBRARY_PATH.
#
# With --disabled 1 (a STAGEPROF_DISABLE build) the programs record nothing,
# so they are run but no trace file is expected.
set -eu

build='' source='' cmake=cmake cc=cc generator='' config='' work='' disabled=0
while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$2 ;;
    --source) source=$2 ;;
    --cmake) cmake=$2 ;;
    --cc) cc=$2 ;;
    --generator) generator=$2 ;;
    --config) config=$2 ;;
    --work) work=$2 ;;
    --disabled) disabled=$2 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift 2
done

fail() {
    echo "install.sh: FAIL: $*" >&2
    exit 1
}

run() {
    echo "+ $*"
    "$@"
}

# check_trace DIR - DIR holds at least one non-empty trace file.
check_trace() {
    found=
    for f in "$1"/*.json "$1"/*.json.gz; do
        if [ -s "$f" ]; then
            found=$f
            break
        fi
    done
    [ -n "$found" ] || fail "no trace file written in $1"
    echo "trace: $found"
}

# run_hello PROGRAM NAME [ENV...] - run with tracing on into WORK/trace-NAME.
run_hello() {
    prog=$1
    name=$2
    shift 2
    dir="$work/trace-$name"
    mkdir -p "$dir"
    run env "$@" STAGEPROF_ENABLE=1 STAGEPROF_DIR="$dir" "$prog" ||
        fail "$prog exited with status $?"
    if [ "$disabled" = 1 ]; then
        echo "STAGEPROF_DISABLE build: no trace expected"
    else
        check_trace "$dir"
    fi
}

rm -rf "$work"
mkdir -p "$work"
prefix="$work/prefix"

# 1. install --------------------------------------------------------------
if [ -n "$config" ]; then
    run "$cmake" --install "$build" --prefix "$prefix" --config "$config"
else
    run "$cmake" --install "$build" --prefix "$prefix"
fi
[ -f "$prefix/include/stageprof.h" ] || fail "stageprof.h not installed"
[ -f "$prefix/include/stageprof/version.h" ] || fail "stageprof/version.h not installed"

libdir=
for d in "$prefix"/lib "$prefix"/lib64 "$prefix"/lib/*-linux-gnu*; do
    if [ -f "$d/libstageprof.a" ]; then
        libdir=$d
        break
    fi
done
[ -n "$libdir" ] || fail "libstageprof.a not installed"
[ -f "$libdir/pkgconfig/stageprof.pc" ] || fail "stageprof.pc not installed"
[ -f "$libdir/cmake/stageprof/stageprofConfig.cmake" ] || fail "stageprofConfig.cmake not installed"
[ -f "$libdir/cmake/stageprof/stageprofConfigVersion.cmake" ] || fail "stageprofConfigVersion.cmake not installed"

# 2. find_package ------------------------------------------------------------
hello_src="$source/examples/hello"
for kind in static shared; do
    hb="$work/hello-$kind"
    if [ "$kind" = shared ]; then
        opt=-DHELLO_SHARED=ON
    else
        opt=-DHELLO_SHARED=OFF
    fi
    run "$cmake" -S "$hello_src" -B "$hb" -G "$generator" \
        -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo $opt
    run "$cmake" --build "$hb"
    if [ "$kind" = static ]; then
        if readelf -d "$hb/hello" | grep -q 'libstageprof\.so'; then
            fail "stageprof::stageprof linked the shared library"
        fi
        run_hello "$hb/hello" cmake-static
    else
        readelf -d "$hb/hello" | grep -q 'NEEDED.*\[libstageprof\.so\.0\]' ||
            fail "stageprof::stageprof_shared did not link libstageprof.so.0"
        # The imported target carries the library's path, CMake adds an
        # RPATH in the build tree: no LD_LIBRARY_PATH needed.
        run_hello "$hb/hello" cmake-shared
    fi
done

# 3. pkg-config -------------------------------------------------------------
if command -v pkg-config >/dev/null 2>&1; then
    export PKG_CONFIG_PATH="$libdir/pkgconfig"
    version=$(pkg-config --modversion stageprof)
    echo "pkg-config: stageprof $version"
    pc_flags=$(pkg-config --cflags --libs --static stageprof)
    echo "pkg-config flags: $pc_flags"
    # shellcheck disable=SC2086 # flags are split on purpose
    run "$cc" -std=c11 -Wall -Wextra -Werror "$hello_src/hello.c" \
        -o "$work/hello-pc" $pc_flags
    # -lstageprof picks the shared library when both are installed, as for
    # any pkg-config package; the loader needs to find it then.
    run_hello "$work/hello-pc" pkg-config LD_LIBRARY_PATH="$libdir"
else
    echo "install.sh: pkg-config not found, pkg-config step skipped"
fi

# 4. shared library ------------------------------------------------------------
so="$libdir/libstageprof.so"
[ -e "$so" ] || fail "libstageprof.so not installed"
readelf -d "$so" | grep -q 'SONAME.*\[libstageprof\.so\.0\]' ||
    fail "libstageprof.so has no SONAME libstageprof.so.0"
[ -e "$libdir/libstageprof.so.0" ] || fail "libstageprof.so.0 link not installed"
run "$cc" -std=c11 -Wall -Wextra -Werror "$hello_src/hello.c" \
    -o "$work/hello-so" -I"$prefix/include" -L"$libdir" -lstageprof
readelf -d "$work/hello-so" | grep -q 'NEEDED.*\[libstageprof\.so\.0\]' ||
    fail "hello-so does not need libstageprof.so.0"
run_hello "$work/hello-so" shared LD_LIBRARY_PATH="$libdir"

# The exported symbols are the public API only: nothing internal leaks.
if command -v nm >/dev/null 2>&1; then
    leaked=$(nm -D --defined-only "$so" | awk '{print $3}' |
        grep -v '^stageprof_' | grep -v '^_' || true)
    [ -z "$leaked" ] || fail "libstageprof.so exports non-API symbols: $leaked"
    internal=$(nm -D --defined-only "$so" | awk '{print $3}' |
        grep '^stageprof__' || true)
    [ -z "$internal" ] || fail "libstageprof.so exports internal symbols: $internal"
fi

echo "install.sh: installed package works (CMake static and shared, pkg-config, shared link)"
