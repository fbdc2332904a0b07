#!/bin/sh
# check_format.sh - fail when a C file's layout differs from .clang-format.
#
#   scripts/check_format.sh          (from the repository root)
#
# Checks the C sources and headers git knows of (tracked or new, not
# ignored); `make format` rewrites them in place.
set -eu
cf=${CLANG_FORMAT:-clang-format}
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files=$(git ls-files -co --exclude-standard -- \
        'include/*.h' 'src/*.[ch]' 'cli/*.[ch]' 'tests/*.[ch]' \
        'bench/*.[ch]' 'examples/*.[ch]')
else
    # An exported tree without git: every C file of those directories.
    files=$(find include src cli tests bench examples -name '*.[ch]' \
        -not -path '*/node_modules/*' | sort)
fi
if [ -z "$files" ]; then
    echo "check_format.sh: no C files found (run from the repository root)" >&2
    exit 1
fi
# shellcheck disable=SC2086 # file names have no blanks
"$cf" --dry-run --Werror $files
echo "check_format.sh: $(echo "$files" | wc -l) files formatted as .clang-format says"
