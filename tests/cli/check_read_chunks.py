#!/usr/bin/env python3
"""check_read_chunks.py STAGEPROF CASES_DIR - the reader's answers do not
depend on where its reads end.

`stageprof report` reads its input in chunks (1 MiB; STAGEPROF_READ_CHUNK
sets fewer bytes). For every golden case of `report` under CASES_DIR (its
args run in its folder, as run_case.py does), the output and exit status
with chunks of 1 to 16, 31, 64 and 1000 bytes must equal those with the
default size, so that every name, number, escape, literal and member
separator lands across a chunk boundary somewhere. The default-size
answers are themselves checked by the golden files.
"""
import os
import shlex
import subprocess
import sys

SIZES = list(range(1, 17)) + [31, 64, 1000]


def run(binary, case, chunk):
    env = dict(os.environ)
    env.pop("STAGEPROF_READ_CHUNK", None)
    if chunk:
        env["STAGEPROF_READ_CHUNK"] = str(chunk)
    with open(os.path.join(case, "args")) as f:
        args = shlex.split(f.read())
    stdin = subprocess.DEVNULL
    if os.path.exists(os.path.join(case, "stdin")):
        stdin = open(os.path.join(case, "stdin"), "rb")
    try:
        p = subprocess.run([binary] + args, cwd=case, env=env, stdin=stdin,
                           capture_output=True, timeout=60)
    finally:
        if stdin is not subprocess.DEVNULL:
            stdin.close()
    return p.returncode, p.stdout, p.stderr


def main():
    binary, cases = os.path.abspath(sys.argv[1]), sys.argv[2]
    failures = checked = 0
    for name in sorted(os.listdir(cases)):
        case = os.path.join(cases, name)
        if not os.path.exists(os.path.join(case, "args")):
            continue
        if os.path.getsize(case) and any(
                os.path.getsize(os.path.join(case, f)) > 4 << 20
                for f in os.listdir(case)
                if os.path.isfile(os.path.join(case, f))):
            continue  # large inputs: read 1 byte at a time takes minutes
        want = run(binary, case, 0)
        for n in SIZES:
            got = run(binary, case, n)
            checked += 1
            if got != want:
                failures += 1
                print("FAIL %s with %d-byte reads: status %d (default %d)"
                      % (name, n, got[0], want[0]))
                print("  stdout: %r\n  default: %r" % (got[1][:300],
                                                       want[1][:300]))
                print("  stderr: %r\n  default: %r" % (got[2][:300],
                                                       want[2][:300]))
                break
    print("%d runs, %d failed" % (checked, failures))
    sys.exit(1 if failures or checked == 0 else 0)


if __name__ == "__main__":
    main()
