#!/usr/bin/env python3
"""run_case.py - run golden test cases of the stageprof program.

    run_case.py --stageprof BIN [--version-header FILE] CASE_DIR...
    run_case.py --stageprof BIN --all
    run_case.py --stageprof BIN --update CASE_DIR...

A case is a folder tests/cli/<command>/<behaviour>/ holding:

    args             required. The argument line, in sh syntax: quotes and
                     $(...) work, so '""' is an empty argument and
                     --format=$(printf '%0100000d' 0) a very long one. An
                     empty file runs the program without arguments.
    status           expected exit status (default 0).
    stdout           expected standard output, byte for byte after
                     normalisation.
    stdout.part.json like stdout.json, for the object keys it holds only:
                     the program may print more keys, not other values.
    stdout.json      standard output must be one JSON document equal (after
                     normalisation) to this one; key order does not matter.
    stderr           expected standard error, byte for byte after
                     normalisation.
    stderr.contains  every non-empty line must occur in standard error.
    stdin            optional: given to the program as standard input.
    (other files)    inputs the args name; the program runs in the case's
                     folder.

Without stdout or stdout.json the program must print nothing on stdout;
without stderr or stderr.contains, nothing on stderr.

Normalisation replaces the volatile parts of the output by placeholders
before comparing: the version read from include/stageprof/version.h
becomes @VERSION@ (so a case never holds a copied version number, and a
program reporting another version fails).

Exit status: 0 when every case passed, 1 when one failed, 2 on bad use or
a malformed case. --update rewrites the stdout, stderr and status files of
the given cases from what the program does now (never stdout.json or
stderr.contains); review the result before keeping it.
"""

import argparse
import difflib
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_HEADER = os.path.join(HERE, "..", "..", "include", "stageprof",
                              "version.h")


class CaseError(Exception):
    """A malformed case folder or header: not a test failure."""


def read_version(header):
    """The version string of version.h, checked against its parts."""
    try:
        with open(header, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise CaseError(f"cannot read {header}: {e.strerror}") from e
    parts = {}
    for part in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(rf"^#define STAGEPROF_VERSION_{part}\s+(\d+)\s*$", text,
                      re.M)
        if not m:
            raise CaseError(f"{header}: no STAGEPROF_VERSION_{part}")
        parts[part] = m.group(1)
    m = re.search(r'^#define STAGEPROF_VERSION_STRING\s+"([^"]*)"', text, re.M)
    if not m:
        raise CaseError(f"{header}: no STAGEPROF_VERSION_STRING")
    version = m.group(1)
    expected = "{MAJOR}.{MINOR}.{PATCH}".format(**parts)
    if version != expected:
        raise CaseError(f"{header}: STAGEPROF_VERSION_STRING {version!r} "
                        f"disagrees with its parts {expected!r}")
    return version


def normaliser(version):
    """A function replacing the volatile parts of a text."""
    pattern = re.compile(r"(?<![\w.])" + re.escape(version) + r"(?![\w.])")

    def normalise(text):
        return pattern.sub("@VERSION@", text)

    return normalise


def normalise_json(value, normalise):
    if isinstance(value, str):
        return normalise(value)
    if isinstance(value, list):
        return [normalise_json(v, normalise) for v in value]
    if isinstance(value, dict):
        return {normalise(k): normalise_json(v, normalise)
                for k, v in value.items()}
    return value


def read_text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="surrogateescape")


def split_args(line):
    """The words of an sh argument line, expanded by sh itself."""
    script = 'eval "set -- $1" && for a in "$@"; do printf "%s\\0" "$a"; done'
    p = subprocess.run(["sh", "-c", script, "sh", line],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       check=False)
    if p.returncode != 0:
        raise CaseError("args: sh cannot parse it: "
                        + p.stderr.decode(errors="replace").strip())
    out = p.stdout.decode("utf-8", errors="surrogateescape")
    return out.split("\0")[:-1] if out else []


def shown(args):
    """The argument list shortened for a report."""
    words = []
    for a in args:
        r = repr(a)
        words.append(r if len(r) <= 40 else r[:30] + f"...' ({len(a)} chars)")
    return " ".join(words)


def diff(expected, actual, name):
    lines = difflib.unified_diff(expected.splitlines(keepends=True),
                                 actual.splitlines(keepends=True),
                                 f"expected {name}", f"actual {name}")
    return "".join(lines)


def only_keys_of(expected, actual):
    """@actual cut down to the object keys @expected has, at every level
    (lists keep their length: a missing or extra element still shows)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: only_keys_of(expected[k], actual[k])
                for k in expected if k in actual}
    if isinstance(expected, list) and isinstance(actual, list):
        return [only_keys_of(e, a) for e, a in zip(expected, actual)] + \
            actual[len(expected):]
    return actual


def run_case(binary, case_dir, normalise, update=False):
    """Run one case; returns a list of failure descriptions."""
    case_dir = os.path.normpath(case_dir)

    def path(name):
        return os.path.join(case_dir, name)

    if not os.path.isfile(path("args")):
        raise CaseError(f"{case_dir}: no args file")
    line = read_text(path("args")).rstrip("\n")
    if "\n" in line:
        raise CaseError(f"{case_dir}/args: more than one line")
    args = split_args(line)

    status = 0
    if os.path.exists(path("status")):
        text = read_text(path("status")).strip()
        if not re.fullmatch(r"\d+", text):
            raise CaseError(f"{case_dir}/status: not a number: {text!r}")
        status = int(text)

    # The program runs in the case's folder (args name its files as they
    # are), with the file "stdin" as standard input when there is one.
    feed = {"stdin": subprocess.DEVNULL}
    if os.path.exists(path("stdin")):
        with open(path("stdin"), "rb") as f:
            feed = {"input": f.read()}
    try:
        p = subprocess.run([os.path.abspath(binary)] + args,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60, check=False, cwd=case_dir, **feed)
    except subprocess.TimeoutExpired:
        return [f"timed out: stageprof {shown(args)}"]
    except OSError as e:
        raise CaseError(f"cannot run {binary}: {e.strerror}") from e
    out = normalise(p.stdout.decode("utf-8", errors="surrogateescape"))
    err = normalise(p.stderr.decode("utf-8", errors="surrogateescape"))

    if update:
        for name, actual in (("stdout", out), ("stderr", err)):
            if os.path.exists(path(name)) or (
                    actual and not os.path.exists(path(name + ".json"))
                    and not os.path.exists(path(name + ".contains"))):
                with open(path(name), "wb") as f:
                    f.write(actual.encode("utf-8", errors="surrogateescape"))
        if p.returncode != status:
            with open(path("status"), "w", encoding="utf-8") as f:
                f.write(f"{p.returncode}\n")
        return []

    failures = []
    if p.returncode != status:
        failures.append(f"exit status {p.returncode}, expected {status}")

    if os.path.exists(path("stdout")):
        expected = read_text(path("stdout"))
        if out != expected:
            failures.append("stdout differs:\n" + diff(expected, out, "stdout"))
    elif os.path.exists(path("stdout.json")) or \
            os.path.exists(path("stdout.part.json")):
        name = "stdout.json" if os.path.exists(path("stdout.json")) \
            else "stdout.part.json"
        try:
            expected = json.loads(read_text(path(name)))
        except ValueError as e:
            raise CaseError(f"{case_dir}/{name}: {e}") from e
        try:
            actual = normalise_json(json.loads(p.stdout), normalise)
        except ValueError as e:
            failures.append(f"stdout is not JSON ({e}):\n{out}")
        else:
            if name == "stdout.part.json":
                actual = only_keys_of(expected, actual)
            if actual != expected:
                a = json.dumps(actual, indent=1, sort_keys=True) + "\n"
                e = json.dumps(expected, indent=1, sort_keys=True) + "\n"
                failures.append("stdout JSON differs:\n"
                                + diff(e, a, name))
    elif out:
        failures.append("stdout should be empty, got:\n" + out)

    if os.path.exists(path("stderr")):
        expected = read_text(path("stderr"))
        if err != expected:
            failures.append("stderr differs:\n" + diff(expected, err, "stderr"))
    elif os.path.exists(path("stderr.contains")):
        for want in read_text(path("stderr.contains")).splitlines():
            if want and want not in err:
                failures.append(f"stderr lacks {want!r}; stderr was:\n{err}")
    elif err:
        failures.append("stderr should be empty, got:\n" + err)

    return [f"stageprof {shown(args)}\n{f}" for f in failures]


def all_cases():
    found = []
    for root, _dirs, files in os.walk(HERE):
        if "args" in files:
            found.append(root)
    return sorted(found)


def main():
    ap = argparse.ArgumentParser(description="Run stageprof CLI golden cases.")
    ap.add_argument("--stageprof", required=True, help="the program to test")
    ap.add_argument("--version-header", default=DEFAULT_HEADER,
                    help="include/stageprof/version.h")
    ap.add_argument("--all", action="store_true",
                    help="run every case under " + HERE)
    ap.add_argument("--update", action="store_true",
                    help="rewrite the expected output of the cases")
    ap.add_argument("cases", nargs="*", help="case folders")
    opts = ap.parse_args()

    cases = all_cases() if opts.all else opts.cases
    if not cases:
        ap.error("no case given (a folder, or --all)")

    failed = 0
    try:
        normalise = normaliser(read_version(opts.version_header))
        for case in cases:
            name = os.path.relpath(case, HERE)
            failures = run_case(opts.stageprof, case, normalise, opts.update)
            if failures:
                failed += 1
                print(f"FAIL {name}")
                for f in failures:
                    print("  " + f.replace("\n", "\n  ").rstrip())
            elif len(cases) > 1 or opts.update:
                print(("updated " if opts.update else "ok   ") + name)
    except CaseError as e:
        print(f"run_case.py: {e}", file=sys.stderr)
        return 2
    if opts.update:
        print(f"{len(cases)} case(s) updated: review them with git diff")
    elif len(cases) > 1:
        print(f"{len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
