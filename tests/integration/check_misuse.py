#!/usr/bin/env python3
"""check_misuse.py PROGRAM - API misuse is survived, counted and harmless.

See it_misuse.c for the list. The program must exit normally; the trace
must count each kind exactly, stageprof_get_stats must give the total, and
the legitimate spans around each misuse must be intact.
"""
import sys

import tracecheck as tc
from tracecheck import ensure, to_ns

WANT_MISUSE = {
    "span_end_other_thread": 2,
    "span_end_without_begin": 3,
    "span_closed_by_parent": 1,
    "span_too_deep": 2,
    "arg_after_close": 1,
    "run_end_without_begin": 1,
}


def body(work):
    prog = sys.argv[1]
    # The ring off: this checks that everything recorded is written.
    res, _ = tc.run_json([prog, work],
                         env=tc.clean_env(STAGEPROF_BUFFER_RUNS="0"))
    path = tc.only_trace(work)
    ensure(res["last_path"] == path, "last path %r" % res["last_path"])
    t = tc.load(path)
    tc.check_events(t)
    tc.check_summary(t, complete=True)
    misuse = t.summary["misuse"]
    ensure(misuse == WANT_MISUSE, "misuse counts %r, wanted %r"
           % (misuse, WANT_MISUSE))
    ensure(res["stats"]["misuse"] == sum(WANT_MISUSE.values()),
           "stageprof_get_stats().misuse = %d, wanted %d"
           % (res["stats"]["misuse"], sum(WANT_MISUSE.values())))
    ensure(t.summary["events_dropped"] == 0, "drops: %r" % t.summary)

    tc.check_counts(t, {"cross": 1, "t1_work": 1, "twice": 1, "victim": 1,
                        "victim_child": 1, "parent": 1, "orphan": 1,
                        "deep": 128})
    tc.check_nesting(t, {"cross": None, "twice": None, "victim": None,
                         "victim_child": "victim", "parent": None,
                         "orphan": "parent", "t1_work": None})
    names = tc.check_thread_names(t, ["misuse-main", "t1"])

    cross = t.named("X", "cross")[0]
    t1 = t.named("X", "t1_work")[0]
    ensure(names[cross["tid"]] == "misuse-main", "cross ended elsewhere")
    c0 = to_ns(cross["ts"], "ts")
    ensure(c0 <= to_ns(t1["ts"], "ts") and
           to_ns(t1["ts"], "ts") + to_ns(t1["dur"], "dur") <=
           c0 + to_ns(cross["dur"], "dur"),
           "the end from another thread was not ignored: cross ended before "
           "t1 ran")
    twice = t.named("X", "twice")[0]
    ensure("args" not in twice, "an argument after the end was recorded: %r"
           % twice)
    par, orph = t.named("X", "parent")[0], t.named("X", "orphan")[0]
    ensure(to_ns(par["ts"], "ts") + to_ns(par["dur"], "dur") ==
           to_ns(orph["ts"], "ts") + to_ns(orph["dur"], "dur"),
           "a span closed by its parent ends with it")

    ensure(res["deep_recorded"] == 128, "%d deep spans accepted, wanted 128"
           % res["deep_recorded"])
    deep = sorted((s for s in t.slices[cross["tid"]] if s.name == "deep"),
                  key=lambda s: s.depth)
    ensure([s.depth for s in deep] == list(range(128)) and
           all(s.parent is deep[i - 1] for i, s in enumerate(deep) if i),
           "deep spans do not form one chain of 128")

    # The end of the run never begun stays in the trace, unmatched.
    pairs = tc.check_async(t, orphan_ends={("run", "0x309", "job")})
    ensure(list(pairs) == [("run", "0x5", "job")], "runs %r" % list(pairs))
    ensure(len(t.by_ph["e"]) == 2, "run ends: %r" % t.by_ph["e"])


if __name__ == "__main__":
    tc.main(body)
