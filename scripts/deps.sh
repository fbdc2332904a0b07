#!/bin/sh
# deps.sh - install what building and testing stageprof needs, and nothing
# that is already there.
#
#   scripts/deps.sh
#
# Debian packages are installed with apt-get only when missing (and the
# package lists are refreshed only then). The npm packages the browser test
# uses are installed into tests/browser/node_modules from the pinned
# package-lock.json, only when node_modules is missing or older than the
# lock file. Safe to run any number of times; `make build` runs it.
set -eu

cd "$(dirname "$0")/.."

# Debian packages: the toolchain, zlib (gzip traces), the test tools
# (clang-format checks the code's layout), the browser for the
# trace-viewer test, darknet with libjpeg for the detection workflow
# (examples/detect_workflow) that `make run`, its test and its benchmark
# drive, PyTorch (its profiler writes the real traces `report` is checked
# on), clang with its runtime for the reader's fuzzer, jq, which the
# reader's benchmark sets beside `report`, prometheus, whose promtool
# checks the alert rules in deploy/ and whose server scrapes the tests'
# endpoints, libmicrohttpd for the library's /metrics endpoint and the
# example model server, wrk, which loads that server, libcurl (OpenSSL
# flavour), the CLI's HTTP client (`stageprof top`, later `capture`),
# tmux, the real terminal that top's interactive test runs in, and SQLite
# (the library for `stageprof sql` and `history`, the sqlite3 shell whose
# .import the sql benchmark sets beside the loader).
packages="build-essential cmake pkg-config zlib1g-dev python3 valgrind git
ca-certificates clang-format nodejs npm chromium darknet libjpeg-dev
python3-torch python3-torchvision clang libclang-rt-14-dev jq prometheus
libmicrohttpd-dev wrk libcurl4-openssl-dev tmux libsqlite3-dev sqlite3"

# have_package NAME - the package is installed, or (for tools that may come
# from another source, e.g. a nodejs that bundles npm) its program is.
have_package() {
    if dpkg-query -W -f='${Status}' "$1" 2>/dev/null |
        grep -q '^install ok installed$'; then
        return 0
    fi
    case "$1" in
    nodejs) command -v node >/dev/null 2>&1 ;;
    npm) command -v npm >/dev/null 2>&1 ;;
    python3) command -v python3 >/dev/null 2>&1 ;;
    chromium) command -v chromium >/dev/null 2>&1 ;;
    cmake) command -v cmake >/dev/null 2>&1 ;;
    clang-format) command -v clang-format >/dev/null 2>&1 ;;
    jq) command -v jq >/dev/null 2>&1 ;;
    git) command -v git >/dev/null 2>&1 ;;
    *) return 1 ;;
    esac
}

missing=
for p in $packages; do
    if ! have_package "$p"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "deps: installing Debian packages:$missing"
    if [ "$(id -u)" -ne 0 ]; then
        sudo=sudo
    else
        sudo=
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    # shellcheck disable=SC2086 # one package per word
    $sudo apt-get install -y -q --no-install-recommends $missing
else
    echo "deps: Debian packages present"
fi

# npm packages for the browser test ----------------------------------------
browser=tests/browser
if [ -f "$browser/package.json" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "deps: npm not found, cannot install $browser/node_modules" >&2
        exit 1
    fi
    stamp="$browser/node_modules/.package-lock.json"
    lock="$browser/package-lock.json"
    if [ ! -f "$stamp" ] ||
        { [ -f "$lock" ] && [ -n "$(find "$lock" -newer "$stamp")" ]; }; then
        echo "deps: installing npm packages into $browser/node_modules"
        if [ -f "$lock" ]; then
            (cd "$browser" && npm ci --no-audit --no-fund)
        else
            (cd "$browser" && npm install --no-audit --no-fund)
        fi
    else
        echo "deps: npm packages present"
    fi
fi
