#!/bin/sh
# check_format.sh - fail when a C file's layout differs from .clang-format.
#
#   scripts/check_format.sh          (from the repository root)
#
# Checks the C sources and headers git knows of (tracked or new, not
# ignored); `make format` rewrites them in place.
set -eu
cf=${CLANG_FORMAT:-clang-format}
files=$(git ls-files -co --exclude-standard -- \
    'include/*.h' 'src/*.[ch]' 'cli/*.[ch]' 'tests/*.[ch]' 'bench/*.[ch]' \
    'examples/*.[ch]')
if [ -z "$files" ]; then
    echo "check_format.sh: no C files found (run from the repository root)" >&2
    exit 1
fi
# shellcheck disable=SC2086 # file names have no blanks
"$cf" --dry-run --Werror $files
echo "check_format.sh: $(echo "$files" | wc -l) files formatted as .clang-format says"
