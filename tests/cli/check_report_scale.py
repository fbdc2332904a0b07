#!/usr/bin/env python3
"""check_report_scale.py STAGEPROF MODE - `stageprof report` on inputs too
large for golden files, made here from a fixed seed.

  sketch    20 000 durations (log-uniform from 1 ns to 10 s, some zero)
            in two stages: with the default --exact-limit the percentiles
            equal numpy's linear percentiles computed here; with
            --exact-limit=5000 the second stage comes from the sketch and
            every percentile lies within 0.5 % of the exact value (count,
            total, min and max still exact), the first stays exact, and a
            warning says so
  progress  a 40 MiB trace fed slowly on standard input, with stderr on a
            terminal (a pty), draws a progress line and erases it; with
            stderr not a terminal, or with -q, nothing is drawn
"""
import json
import os
import pty
import random
import select
import subprocess
import sys
import tempfile
import threading
import time


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def percentile(v, p):
    rank = p * (len(v) - 1)
    lo = int(rank)
    if lo + 1 >= len(v):
        return float(v[-1])
    return v[lo] + (rank - lo) * (v[lo + 1] - v[lo])


def write_trace(path, stages):
    with open(path, "w") as f:
        f.write("[\n")
        ts = 0
        first = True
        for name, durs in stages:
            for d in durs:
                f.write("%s{\"ph\":\"X\",\"name\":\"%s\",\"cat\":\"c\","
                        "\"pid\":1,\"tid\":1,\"ts\":%d.%03d,\"dur\":%d.%03d}\n"
                        % ("" if first else ",", name, ts // 1000, ts % 1000,
                           d // 1000, d % 1000))
                first = False
                ts += d + 1
        f.write("]\n")


def report(binary, *args):
    p = subprocess.run([binary, "report", "--format=json"] + list(args),
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        fail("report %r exited %d: %s" % (args, p.returncode, p.stderr))
    return json.loads(p.stdout)


def check_sketch(binary, work):
    rnd = random.Random(7)
    a = sorted(int(10 ** rnd.uniform(0, 10)) for _ in range(4000)) + [0] * 5
    b = [int(10 ** rnd.uniform(0, 10)) for _ in range(15995)] + [0] * 5
    path = os.path.join(work, "t.json")
    write_trace(path, [("a", a), ("b", b)])
    keys = ((0.5, "p50_us"), (0.9, "p90_us"), (0.95, "p95_us"),
            (0.99, "p99_us"), (0.999, "p999_us"))
    exact = {s["name"]: s for s in report(binary, path)["stages"]}
    for name, durs in (("a", a), ("b", b)):
        v = sorted(durs)
        st = exact[name]
        if not st["exact"]:
            fail("%s: not exact under the default limit" % name)
        for p, k in keys:
            want = percentile(v, p) / 1000.0
            if abs(st[k] - want) > 0.0015:
                fail("%s %s: %r, numpy's method gives %r" % (name, k, st[k],
                                                             want))
    r = report(binary, "--exact-limit=5000", path)
    got = {s["name"]: s for s in r["stages"]}
    if not got["a"]["exact"] or got["b"]["exact"]:
        fail("with 5000 kept: a exact %r, b exact %r (want True, False)"
             % (got["a"]["exact"], got["b"]["exact"]))
    for name in ("a", "b"):
        for k in ("count", "total_us", "min_us", "max_us", "self_us"):
            if got[name][k] != exact[name][k]:
                fail("%s %s: %r with the sketch, %r exact" % (
                    name, k, got[name][k], exact[name][k]))
    worst = 0.0
    for p, k in keys:
        e, s = exact["b"][k], got["b"][k]
        rel = abs(s - e) / e if e else abs(s)
        worst = max(worst, rel)
        if rel > 0.005 + 1e-9:
            fail("b %s: sketch %r, exact %r: %.4f%% off" % (k, s, e,
                                                            100 * rel))
    if r["trace"]["exact_limit"] != 5000 or \
            r["trace"]["sketch_relative_error"] != 0.005 or \
            not any("sketch" in w for w in r["trace"]["warnings"]):
        fail("trace %r" % r["trace"])
    print("sketch: worst relative error %.4f%%" % (100 * worst))


def check_progress(binary, work):
    path = os.path.join(work, "big.json")
    ev = ('{"ph":"X","name":"s","cat":"c","pid":1,"tid":1,"ts":%d,'
          '"dur":1}')
    with open(path, "w") as f:
        f.write("[")
        n = 0
        while f.tell() < 40 << 20:
            f.write(("," if n else "") + ev % n + " " * 200 + "\n")
            n += 1
        f.write("]")
    with open(path, "rb") as f:
        data = f.read()
    # Standard input fed slowly (a second and a half in all), stderr on a
    # pty, stdout a pipe.
    master, slave = pty.openpty()
    p = subprocess.Popen([binary, "report", "-"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)

    def feed():
        step = len(data) // 8 + 1
        for i in range(0, len(data), step):
            p.stdin.write(data[i:i + step])
            p.stdin.flush()
            time.sleep(0.2)
        p.stdin.close()

    feeder = threading.Thread(target=feed)
    feeder.start()
    err = b""
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    feeder.join()
    out = p.stdout.read()
    p.wait(timeout=60)
    os.close(master)
    if p.returncode != 0 or b"%d events" % n not in out:
        fail("report on a pty: status %r, stdout %r" % (p.returncode,
                                                         out[:200]))
    text = err.decode(errors="replace")
    if "\rstageprof report: reading -: " not in text or " MiB" not in text \
            or not text.endswith("\r\x1b[K"):
        fail("no progress line drawn and erased on the pty: %r"
             % text[-300:])
    for args in (["report", path], ["-q", "report", path]):
        q = subprocess.run([binary] + args, capture_output=True, timeout=120)
        if q.returncode != 0 or q.stderr:
            fail("%r without a terminal: stderr %r" % (args, q.stderr[:200]))
    print("progress: %d bytes of progress output on the pty" % len(err))


def main():
    binary, mode = os.path.abspath(sys.argv[1]), sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="stageprof-scale-") as work:
        {"sketch": check_sketch, "progress": check_progress}[mode](binary,
                                                                  work)
    print("PASS")


if __name__ == "__main__":
    main()
