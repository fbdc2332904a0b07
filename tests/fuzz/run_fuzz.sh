#!/bin/sh
# run_fuzz.sh - build fuzz_trace_load with clang and fuzz the trace reader
# of `stageprof report` for a while.
#
#   sh tests/fuzz/run_fuzz.sh --build=DIR [--seconds=N] [--fresh]
#       [--clang=PATH] [--cmake=PATH] [--source=DIR] [--jobs=N]
#       [-- FUZZER-OPTION...]
#
# DIR is a CMake tree of its own (make fuzz: build-fuzz/; the CTest test
# fuzz.trace_load.brief: build-fuzz-brief/ in its binary folder). It is
# configured once with clang and STAGEPROF_SANITIZE=address (ASan and
# UBSan), and the fuzzer is brought up to date on every run. The fuzzer
# works on DIR/fuzz-corpus, seeded from tests/fuzz/corpus/ and the traces
# of tests/cli/report/*/ up to the size limits below; --fresh starts that
# corpus (and DIR/fuzz-artifacts) over, otherwise it keeps what earlier
# runs found. It runs for N seconds (default 600) with tests/fuzz/trace.dict.
# tests/fuzz/regressions/ is not a seed: fuzz.trace_load.regressions and
# fuzz.trace_load.replay read those files.
#
# Exit status: 0 when nothing was found; 1 on a finding (the input is
# saved under DIR/fuzz-artifacts/: copy it into tests/fuzz/regressions/)
# or a build failure; 77 when clang or its libFuzzer runtime is missing
# (Debian: clang libclang-rt-14-dev).
set -eu

src=$(cd "$(dirname "$0")/../.." && pwd)
build=
seconds=600
fresh=0
clang=$(command -v clang 2>/dev/null || true)
cmake=cmake
jobs=2
max_len=16384
max_unpacked=65536

while [ $# -gt 0 ]; do
    arg=$1
    case "$arg" in
    --build=*) build=${arg#*=} ;;
    --seconds=*) seconds=${arg#*=} ;;
    --fresh) fresh=1 ;;
    --clang=*) clang=${arg#*=} ;;
    --cmake=*) cmake=${arg#*=} ;;
    --source=*) src=$(cd "${arg#*=}" && pwd) ;;
    --jobs=*) jobs=${arg#*=} ;;
    --) shift; break ;;
    *)
        echo "run_fuzz.sh: unknown argument '$arg'" >&2
        exit 2
        ;;
    esac
    shift
done
if [ -z "$build" ]; then
    echo "run_fuzz.sh: --build=DIR is required" >&2
    exit 2
fi
case "$seconds" in
'' | *[!0-9]*)
    echo "run_fuzz.sh: --seconds wants a whole number, not '$seconds'" >&2
    exit 2
    ;;
esac

if [ -z "$clang" ] || ! [ -x "$clang" ]; then
    echo "SKIP: clang not found (Debian: apt-get install clang libclang-rt-14-dev)"
    exit 77
fi

mkdir -p "$build"
build=$(cd "$build" && pwd)

# clang may be there without its fuzzing runtime: try a minimal fuzzer.
probe="$build/probe"
mkdir -p "$probe"
cat >"$probe/probe.c" <<'PROBE'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return data != NULL && size > 0 ? 0 : 0;
}
PROBE
if ! "$clang" -fsanitize=fuzzer,address,undefined "$probe/probe.c" \
    -o "$probe/probe" >"$probe/probe.log" 2>&1; then
    sed -n '1,10p' "$probe/probe.log"
    echo "SKIP: $clang cannot build a libFuzzer program" \
        "(Debian: apt-get install libclang-rt-14-dev)"
    exit 77
fi

if ! [ -f "$build/CMakeCache.txt" ]; then
    echo "run_fuzz.sh: configuring $build with $clang"
    if ! "$cmake" -S "$src" -B "$build" \
        -DCMAKE_C_COMPILER="$clang" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSTAGEPROF_SANITIZE=address -DSTAGEPROF_BUILD_TESTS=ON \
        -DSTAGEPROF_BUILD_BENCH=OFF -DSTAGEPROF_BUILD_EXAMPLES=OFF \
        >"$build/configure.log" 2>&1; then
        cat "$build/configure.log"
        rm -f "$build/CMakeCache.txt" # configure again next time
        echo "run_fuzz.sh: configuring $build failed" >&2
        exit 1
    fi
fi
if ! "$cmake" --build "$build" --target fuzz_trace_load -j"$jobs" \
    >"$build/build.log" 2>&1; then
    cat "$build/build.log"
    echo "run_fuzz.sh: building fuzz_trace_load failed" >&2
    exit 1
fi
fuzzer="$build/tests/fuzz/fuzz_trace_load"
if ! [ -x "$fuzzer" ]; then
    grep 'fuzz_trace_load' "$build/configure.log" || true
    echo "run_fuzz.sh: $fuzzer was not built" >&2
    exit 1
fi

# The working corpus: the seeds, and what earlier runs added unless
# --fresh. Traces larger than max_len, or gzip that expands past
# max_unpacked, would slow every round down: the golden cases of huge
# files test those.
corpus="$build/fuzz-corpus"
artifacts="$build/fuzz-artifacts"
if [ "$fresh" -eq 1 ]; then
    rm -rf "$corpus" "$artifacts"
fi
mkdir -p "$corpus" "$artifacts"
for f in "$src"/tests/fuzz/corpus/*; do
    [ -f "$f" ] && cp "$f" "$corpus/seed-${f##*/}"
done
for f in "$src"/tests/cli/report/*/trace.json*; do
    [ -f "$f" ] || continue
    if [ "$(wc -c <"$f")" -gt "$max_len" ] ||
        [ "$(gzip -dcf "$f" 2>/dev/null | head -c "$max_unpacked" | wc -c)" \
            -ge "$max_unpacked" ]; then
        echo "run_fuzz.sh: seed ${f#"$src"/} left out (too large)"
        continue
    fi
    case=${f%/*}
    cp "$f" "$corpus/seed-${case##*/}${f##*/trace}"
done

ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS UBSAN_OPTIONS
log="$build/fuzz.log"
echo "run_fuzz.sh: fuzzing for ${seconds} s on $corpus (log: $log)"
status=0
"$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -max_len="$max_len" -timeout=20 -print_final_stats=1 \
    -dict="$src/tests/fuzz/trace.dict" -artifact_prefix="$artifacts/" \
    "$@" "$corpus" >"$log" 2>&1 || status=$?

if [ "$status" -ne 0 ]; then
    # The report of the finding: the sanitizer's or libFuzzer's own.
    grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|RELOAD)' "$log" | tail -n 60
    echo "run_fuzz.sh: the fuzzer found a problem (status $status);" \
        "inputs in $artifacts:" >&2
    ls -l "$artifacts" >&2
    echo "run_fuzz.sh: keep the input as a regression:" \
        "cp $artifacts/<file> $src/tests/fuzz/regressions/<behaviour>" >&2
    exit 1
fi
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" || true
grep -E '^stat::' "$log" || true
echo "run_fuzz.sh: no finding in ${seconds} s"
