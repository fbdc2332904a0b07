#!/bin/sh
# check_banned.sh - refuse C library calls that have no bounds or no error
# reporting.
#
#   scripts/check_banned.sh [DIR|FILE]...     (default: src cli include)
#
# Scans *.c and *.h for calls to the banned functions below, as whole words
# followed by "(", ignoring comments and string literals. Prints file:line
# for each call and exits 1 when there is any, 0 otherwise.
#
#   sprintf vsprintf   -> snprintf, vsnprintf
#   strcpy strcat      -> memcpy with a known length, snprintf, a strbuf
#   gets               -> fgets
#   atoi atol          -> strtol/strtoll with an end pointer and errno
#   strtok             -> strtok_r or a hand-written scanner
set -eu

banned='sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|strtok'

cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
    set -- src cli include
fi

files=$(for p in "$@"; do
    if [ -d "$p" ]; then
        find "$p" -type f \( -name '*.c' -o -name '*.h' \)
    elif [ -f "$p" ]; then
        echo "$p"
    fi
done | sort)

if [ -z "$files" ]; then
    echo "check_banned: no C files under $*"
    exit 0
fi

# awk removes comments and the contents of string and character literals
# (keeping line numbers), then reports lines calling a banned function.
# shellcheck disable=SC2086 # one file name per word
hits=$(awk -v banned="$banned" '
    FNR == 1 { in_comment = 0 }
    {
        line = $0
        out = ""
        i = 1
        n = length(line)
        while (i <= n) {
            c = substr(line, i, 1)
            two = substr(line, i, 2)
            if (in_comment) {
                if (two == "*/") { in_comment = 0; i += 2 } else { i++ }
                continue
            }
            if (two == "/*") { in_comment = 1; i += 2; out = out " "; continue }
            if (two == "//") break
            if (c == "\"" || c == "\047") {
                q = c
                out = out q
                i++
                while (i <= n) {
                    d = substr(line, i, 1)
                    if (d == "\\") { i += 2; continue }
                    if (d == q) break
                    i++
                }
                out = out q
                i++
                continue
            }
            out = out c
            i++
        }
        re = "(^|[^A-Za-z0-9_])(" banned ")[ \t]*\\("
        if (out ~ re) {
            s = out
            name = ""
            if (match(s, re)) {
                name = substr(s, RSTART, RLENGTH)
                gsub(/^[^A-Za-z_]*/, "", name)
                gsub(/[ \t]*\($/, "", name)
            }
            printf "%s:%d: banned function %s: %s\n", FILENAME, FNR, name, $0
        }
    }
' $files)

if [ -n "$hits" ]; then
    echo "$hits"
    count=$(echo "$hits" | wc -l)
    echo "check_banned: $count call(s) to banned functions ($banned)" >&2
    exit 1
fi
echo "check_banned: $(echo "$files" | wc -l) files clean"
