#!/usr/bin/env python3
"""check_days.py PROGRAM RUNS - a service left on with the ring.

Runs it_days with an 8 MiB budget and a ring of 32 runs for RUNS runs, and
checks: nothing dropped; the budget held (bytes buffered at the end, and
the peak resident set growth within the budget plus a fixed 6 MiB for the
rest of the profiler: its thread stacks, the writer's 1 MiB output buffer,
the run table, the program's own C library state); the trace holds exactly
the last 32 runs (each with its receive, infer and post spans, all carrying
their run) plus the pinned start-up span; runs_evicted is RUNS - 32.
"""
import os
import sys

import tracecheck as tc
from tracecheck import ensure

BUDGET = 8 << 20
RING = 32
FIXED = 6 << 20


def body(work):
    prog, runs = sys.argv[1], int(sys.argv[2])
    out = os.path.join(work, "traces")
    res, _ = tc.run_json([prog, out, str(runs)], timeout=120,
                         env=tc.clean_env(STAGEPROF_BUFFER_BYTES="8M",
                                          STAGEPROF_BUFFER_RUNS=str(RING)))
    ensure(res["runs"] == runs, "runs %r" % res)
    ensure(res["dropped"] == 0, "events dropped: %r" % res)
    ensure(res["bytes_buffered"] <= BUDGET, "over budget: %r" % res)
    if not res["rss_checked"]:
        # Sanitizer builds: shadow memory swamps the resident set.
        print("note: resident-set bound not checked in this build")
    if res["rss_checked"]:
        growth = res["rss_growth_kb"] * 1024
        ensure(growth <= BUDGET + FIXED,
               "resident set grew by %d bytes, more than %d + %d"
               % (growth, BUDGET, FIXED))

    t = tc.load(tc.only_trace(out))
    tc.check_events(t)
    tc.check_summary(t, complete=True)
    tc.check_nesting(t)
    ring = t.meta["ring"]
    ensure(ring["capacity"] == RING and ring["runs_kept"] == RING and
           ring["runs_evicted"] == runs - RING and
           ring["runs_in_progress"] == 0, "ring %r" % ring)
    kept = list(range(runs - RING + 1, runs + 1))
    begins = sorted(int(e["id"], 16) for e in t.by_ph.get("b", []))
    ensure(begins == kept, "runs in the trace: %r..., wanted %d..%d"
           % (begins[:5], kept[0], kept[-1]))
    tc.check_counts(t, {"receive": RING, "infer": RING, "post": RING,
                        "load_model": 1})
    ensure(tc.check_expect_run(t) == 3 * RING, "expect_run mismatch")


if __name__ == "__main__":
    tc.main(body)
