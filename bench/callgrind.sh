#!/bin/sh
# callgrind.sh - instructions per span at each cost level, counted by
# valgrind --tool=callgrind (exact and repeatable, unlike times on a shared
# machine).
#
#   bench/callgrind.sh [BIN_DIR]
#
# BIN_DIR holds bench_span and bench_span_disabled (default: build/bench,
# as `make bench` builds them). When they are missing, both are built by hand
# with gcc into a temporary directory.
#
# Each variant runs twice in its fixed-count mode (`--count VARIANT N`), with
# N1 and N2 iterations, collecting only inside the loop function
# (--toggle-collect), and the script prints
#
#     instructions per iteration = (Ir(N2) - Ir(N1)) / (N2 - N1)
#
# so start-up, the first event of the thread and anything else paid once
# cancel. For "on", a second table splits the per-span instructions by
# function (self cost, inlined helpers under the file that holds them).
#
# Environment: N1, N2 (default 100000 and 600000), VALGRIND (default
# valgrind), KEEP=1 keeps the callgrind output files.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/bench}
N1=${N1:-100000}
N2=${N2:-600000}
VALGRIND=${VALGRIND:-valgrind}

command -v "$VALGRIND" >/dev/null 2>&1 || {
    echo "callgrind.sh: valgrind not found (apt-get install valgrind)" >&2
    exit 1
}

work=$(mktemp -d /tmp/stageprof-callgrind.XXXXXX)
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo "callgrind output kept in $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

if [ ! -x "$bin/bench_span" ] || [ ! -x "$bin/bench_span_disabled" ]; then
    echo "building bench_span and bench_span_disabled by hand in $work"
    cflags="-std=c11 -D_GNU_SOURCE -O2 -g -DNDEBUG"
    mkdir -p "$work/obj" "$work/bin"
    for src in "$root"/src/*.c "$root"/src/util/*.c; do
        # shellcheck disable=SC2086 # $cflags is a list of words
        gcc $cflags -fPIC -fvisibility=hidden -DSTAGEPROF_BUILDING \
            -I"$root/include" -I"$root/src" -c "$src" \
            -o "$work/obj/$(basename "$src" .c).o"
    done
    ar rcs "$work/libstageprof.a" "$work"/obj/*.o
    for b in bench_span bench_span_disabled; do
        # shellcheck disable=SC2086 # $cflags is a list of words
        gcc $cflags -I"$root/include" -I"$root/src" "$root/bench/$b.c" \
            "$work/libstageprof.a" -lpthread -lm -o "$work/bin/$b"
    done
    bin=$work/bin
fi

# count PROGRAM VARIANT LOOP_FUNCTION N -> Ir collected inside LOOP_FUNCTION
count() {
    out="$work/$2.$4.out"
    "$VALGRIND" --tool=callgrind --callgrind-out-file="$out" \
        --toggle-collect="$3" "$bin/$1" --count "$2" "$4" \
        >/dev/null 2>"$work/$2.$4.log" || {
        echo "callgrind.sh: $1 --count $2 $4 failed:" >&2
        cat "$work/$2.$4.log" >&2
        exit 1
    }
    sed -n 's/^totals: *//p' "$out"
}

# per_iter PROGRAM VARIANT LOOP_FUNCTION -> instructions per iteration
per_iter() {
    a=$(count "$1" "$2" "$3" "$N1")
    b=$(count "$1" "$2" "$3" "$N2")
    awk -v a="$a" -v b="$b" -v n1="$N1" -v n2="$N2" \
        'BEGIN { printf "%.2f", (b - a) / (n2 - n1) }'
}

echo "instructions per iteration, (Ir(N2) - Ir(N1)) / (N2 - N1)," \
    "N1=$N1 N2=$N2, $("$VALGRIND" --version)"
echo "programs: $bin"
printf '  %-36s %12s %12s\n' variant "instr/iter" "- empty"

empty=$(per_iter bench_span empty bench_loop_empty)
row() {
    v=$(per_iter "$1" "$2" "$3")
    printf '  %-36s %12s %12s\n' "$4" "$v" \
        "$(awk -v v="$v" -v e="$empty" 'BEGIN { printf "%+.2f", v - e }')"
}
printf '  %-36s %12s %12s\n' "empty loop" "$empty" "+0.00"
row bench_span rdtsc2 bench_loop_rdtsc2 "two rdtsc"
row bench_span clock2 bench_loop_clock2 "two clock_gettime(MONOTONIC)"
row bench_span_disabled out_scope out_scope "compiled out: STAGEPROF_SCOPE"
row bench_span_disabled out_begin_end out_begin_end \
    "compiled out: SPAN_BEGIN/END"
row bench_span off_scope span_scope "off: STAGEPROF_SCOPE"
row bench_span off_begin_end span_begin_end "off: SPAN_BEGIN/END"
row bench_span on_scope span_scope "on: STAGEPROF_SCOPE"
row bench_span on_begin_end span_begin_end "on: SPAN_BEGIN/END"

# Where the instructions of one span go: self cost per function in the N2
# run minus the N1 run, per span. Inlined helpers are listed under the file
# that holds them (src/tbuf.h:stageprof_span_begin is tbuf.h code inlined
# into stageprof_span_begin).
if command -v callgrind_annotate >/dev/null 2>&1; then
    echo
    echo "on: STAGEPROF_SCOPE, instructions per span by function (self)"
    for n in "$N1" "$N2"; do
        callgrind_annotate --auto=no --threshold=100 "$work/on_scope.$n.out" |
            sed -n 's/^ *\([0-9,][0-9,]*\) *([ 0-9.%]*) *\([^ ]*:[^ ]*\).*/\2 \1/p' |
            grep -v 'PROGRAM' | sed -E 's/,//g; s#^([^:]*/)?((src|bench|include)/)#\2#' \
            >"$work/split.$n"
    done
    awk -v n1="$N1" -v n2="$N2" '
        FNR == NR { a[$1] = $2; next }
        { d = ($2 - a[$1]) / (n2 - n1); if (d >= 0.05) printf "  %-50s %8.2f\n", $1, d }
    ' "$work/split.$N1" "$work/split.$N2" | sort -k2 -nr
fi
