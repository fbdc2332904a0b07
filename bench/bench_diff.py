#!/usr/bin/env python3
"""bench_diff.py - the cost of `stageprof diff` against `report` on the same
large traces.

    python3 bench/bench_diff.py [--stageprof PATH] [--dir DIR]
                                [--size-mb N] [--reps N]

    make bench-diff            # two 256 MiB traces: about a minute
    python3 bench/bench_diff.py --size-mb 32   # a smoke run

Two Kineto traces of --size-mb MiB each are generated with bench_report.py's
generator (seeds 1 and 2, so BASE and NEW differ) and kept in --dir. Then,
interleaved --reps times, from the page cache:

    stageprof report --format=json BASE
    stageprof report --format=json NEW
    stageprof diff --format=json BASE NEW

The target (the diff issue): diff costs at most 2 x (report BASE + report
NEW); the ratio diff / (report BASE + report NEW) is printed per round
with its median, and "met" or "MISSED". One trace per side, so the diff
also runs its block bootstrap over every stage's spans: that is the part
`report` does not do. Wall time is the measure (CPU time beside it); the
machine description comes first, as in docs/benchmarks.md.
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_report as br  # noqa: E402

MIB = 1 << 20


def trace(dirname, size_mb, seed):
    path = os.path.join(dirname, "bench_diff_%dmb_seed%d.json"
                        % (size_mb, seed))
    if not os.path.exists(path):
        print("generating %s ..." % path, flush=True)
        br.generate(path, size_mb * MIB, seed)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--stageprof", default=os.path.join(root, "build",
                                                        "stageprof"))
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    if args.size_mb < 1 or args.reps < 1:
        ap.error("--size-mb and --reps take whole numbers from 1")
    if not os.access(args.stageprof, os.X_OK):
        ap.error("%s: no such program (make build)" % args.stageprof)
    os.makedirs(args.dir, exist_ok=True)
    a = trace(args.dir, args.size_mb, 1)
    b = trace(args.dir, args.size_mb, 2)
    print("machine: %s, %d CPUs" % (br.cpu_model(), os.cpu_count()))
    print("traces: %s and %s, %d MiB each" % (a, b, args.size_mb))
    sp = args.stageprof
    ratios = []
    for rep in range(args.reps):
        for p in (a, b):
            br.warm_cache(p)
        ra = br.run([sp, "report", "--format=json", a])
        rb = br.run([sp, "report", "--format=json", b])
        d = br.run([sp, "diff", "--format=json", a, b])
        ratio = d["wall"] / (ra["wall"] + rb["wall"])
        ratios.append(ratio)
        print("round %d: report BASE %.2f s (cpu %.2f), report NEW %.2f s "
              "(cpu %.2f), diff %.2f s (cpu %.2f, peak RSS %.0f MiB): ratio "
              "%.3f, others %.2f CPUs"
              % (rep + 1, ra["wall"], ra["cpu"], rb["wall"], rb["cpu"],
                 d["wall"], d["cpu"], d["rss"] / MIB, ratio, d["others"]))
    med = statistics.median(ratios)
    print("diff / (report BASE + report NEW): median %.3f over %d rounds "
          "(min %.3f, max %.3f); target <= 2: %s"
          % (med, len(ratios), min(ratios), max(ratios),
             "met" if med <= 2 else "MISSED"))
    return 0 if med <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
