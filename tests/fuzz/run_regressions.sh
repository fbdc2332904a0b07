#!/bin/sh
# run_regressions.sh - `stageprof report` over every file of a folder of
# hostile traces; fails when one of them makes it crash or a sanitizer
# report.
#
#   sh tests/fuzz/run_regressions.sh STAGEPROF DIR
#
# Each file is read three ways: `report FILE`, `report --format=json FILE`
# and `report --format=csv --from=1us --to=1s --thread=1 --exact-limit=2
# FILE` (the options fuzz_trace_load.c also uses). Exit
# statuses 0 (a report) and 1 (the trace was refused with a message) are
# both fine; a signal, a status above 2 or a sanitizer report is not. The
# sanitizers are made to exit with 86 so their reports cannot pass for an
# ordinary refusal. Registered as the CTest test
# fuzz.trace_load.regressions in every build.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: run_regressions.sh STAGEPROF DIR" >&2
    exit 2
fi
prog=$1
dir=$2

ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=86"
TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}exitcode=86"
export ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS

err=$(mktemp "${TMPDIR:-/tmp}/run_regressions.XXXXXX")
trap 'rm -f "$err"' EXIT

files=0
failed=0
for f in "$dir"/*; do
    [ -f "$f" ] || continue
    files=$((files + 1))
    for way in plain json window; do
        status=0
        case "$way" in
        plain) "$prog" report "$f" >/dev/null 2>"$err" || status=$? ;;
        json) "$prog" report --format=json "$f" >/dev/null 2>"$err" ||
            status=$? ;;
        window) "$prog" report --format=csv --from=1us --to=1s --thread=1 \
            --exact-limit=2 "$f" >/dev/null 2>"$err" || status=$? ;;
        esac
        if [ "$status" -le 2 ] &&
            ! grep -q -E 'Sanitizer|runtime error:' "$err"; then
            continue
        fi
        failed=$((failed + 1))
        echo "FAIL: ${f##*/} ($way): exit status $status"
        sed -n '1,40p' "$err"
    done
done
if [ "$files" -eq 0 ]; then
    echo "run_regressions.sh: no files in $dir"
    exit 0
fi
echo "run_regressions.sh: $files files, 3 readings each, $failed failed"
[ "$failed" -eq 0 ]
