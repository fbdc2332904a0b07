#!/usr/bin/env python3
"""check_drops.py PROGRAM - run it_drops with a 16 KiB buffer budget.

The trace must say it is incomplete and how many events were dropped (the
same number stageprof_get_stats gives, before and after the write), still
parse, and still hold balanced, properly nested spans: exactly those the
library accepted, each thread's kept iterations forming an unbroken prefix.
Every kind of call made with the budget full counts one drop. A second
trace must not report the same drops again.
"""
import collections
import sys

import tracecheck as tc
from tracecheck import ensure, short, to_ns


def body(work):
    prog = sys.argv[1]
    res, _ = tc.run_json([prog, work],
    # The ring off: this checks that everything recorded is written.
                         env=tc.clean_env(STAGEPROF_BUFFER_BYTES="16K",
                                          STAGEPROF_BUFFER_RUNS="0"))
    files = tc.trace_files(work)
    ensure(files == sorted([res["last_path"], res["second_path"]]),
           "files %r, the library named %r and %r"
           % (files, res["last_path"], res["second_path"]))
    t = tc.load(res["last_path"])
    tc.check_events(t)
    tc.check_summary(t, complete=False)
    s, st = t.summary, res["stats"]

    cfg = t.meta["config"]
    ensure(cfg["buffer_bytes"] == 16384 and
           cfg["sources"]["buffer_bytes"] == "env",
           "STAGEPROF_BUFFER_BYTES=16K not in force: %r" % cfg)
    ensure(s["events_dropped"] > 0, "nothing dropped: %r" % s)
    ensure(s["events_dropped"] == s["events_dropped_total"] ==
           res["stats_before_stop"]["events_dropped"],
           "drop counts disagree: summary %r, stats before the write %r"
           % (s, res["stats_before_stop"]))
    ensure(st["events_dropped"] == s["events_dropped"],
           "stats after the write say %d dropped, the trace %d (counts of "
           "exited threads lost?)" % (st["events_dropped"],
                                      s["events_dropped"]))
    ensure(st["events_written"] == len(t.events) and
           st["traces_written"] == 1 and st["write_errors"] == 0,
           "stats %r" % st)
    for kind, (calls, counted) in res["phase2"].items():
        ensure(calls == counted, "%d %s calls with a full budget counted %d "
               "drops" % (calls, kind, counted))
    ensure(len(res["phase2"]) == 8, "phase2 %r" % res["phase2"])
    ensure(not any(s["misuse"].values()) and st["misuse"] == 0,
           "dropping is not misuse: %r" % s["misuse"])
    ensure(s["open_spans"] == 0, "spans left open: %r" % s)

    # Exactly the spans the library accepted, properly nested.
    tc.check_counts(t, {"outer": res["outer_kept"],
                        "inner": res["inner_kept"]})
    ensure(0 < res["inner_kept"] <= res["outer_kept"] <
           res["threads"] * res["iter"], "implausible kept counts %r" % res)
    tc.check_nesting(t, {"outer": None, "inner": "outer"})
    tc.check_expect_run(t)

    # Per thread, the kept iterations are 0..k-1: nothing lost in between.
    # Only the last one may lack its arguments (the buffer filled up right
    # after its begin; its end was reserved).
    per = collections.defaultdict(list)
    for ev in t.named("X", "outer"):
        per[ev["tid"]].append(ev)
    ensure(1 <= len(per) <= res["threads"], "outer spans from %d threads"
           % len(per))
    for tid, evs in per.items():
        evs.sort(key=lambda e: to_ns(e["ts"], "ts"))
        for j, ev in enumerate(evs):
            if "i" in ev["args"]:
                ensure(ev["args"]["i"] == j, "tid %d kept iteration %d as "
                       "its number %d: not a prefix" % (tid, ev["args"]["i"],
                                                        j))
            else:
                ensure(j == len(evs) - 1, "an outer span lost its arguments "
                       "before others were kept: %s" % short(ev))
                ensure(j == 0 or ev["args"]["run"] ==
                       evs[j - 1]["args"]["run"] + 1,
                       "last kept span of tid %d is in the wrong run: %s"
                       % (tid, short(ev)))

    # Runs: begun ones end unless counted open; no end without a begin.
    pairs = tc.check_async(t, allow_open=s["open_runs"])
    open_runs = sum(1 for b, e in pairs.values() if e is None)
    ensure(open_runs == s["open_runs"], "%d runs without an end, summary "
           "says %d" % (open_runs, s["open_runs"]))
    # Every thread registered (and is named) even if all it got was drops.
    names = tc.check_thread_names(t)
    ensure(sorted(names.values()) ==
           ["drop-%d" % i for i in range(res["threads"])] + ["drop-main"],
           "thread names %r" % sorted(names.values()))
    for ev in t.by_ph["C"]:
        ensure(isinstance(ev["args"]["value"], int), short(ev))

    # A later trace reports no new drops, and the same total.
    t2 = tc.load(res["second_path"])
    tc.check_events(t2)
    s2 = t2.summary
    ensure(s2["events_dropped"] == 0 and
           s2["events_dropped_total"] == s["events_dropped_total"],
           "second trace: events_dropped %r (wanted 0), total %r (wanted %r)"
           % (s2["events_dropped"], s2["events_dropped_total"],
              s["events_dropped_total"]))
    tc.check_summary(t2, complete=True)


if __name__ == "__main__":
    tc.main(body)
