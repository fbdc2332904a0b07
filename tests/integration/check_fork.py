#!/usr/bin/env python3
"""check_fork.py PROGRAM MODE - fork() while tracing.

  follow  each child writes its own trace at exit, named with its pid,
          holding only what the child recorded (none of the parent's
          events); the parent's trace holds all of the parent's events and
          none of the children's
  off     STAGEPROF_FOLLOW_FORK=0: the children write nothing, the parent
          is unaffected
"""
import os
import sys

import tracecheck as tc
from tracecheck import ensure


def body(work):
    prog, mode = sys.argv[1], sys.argv[2]
    out = os.path.join(work, "traces")
    argv = [prog, out] + (["off"] if mode == "off" else [])
    res, _ = tc.run_json(argv)
    files = sorted(tc.trace_files(out))
    by_pid = {}
    for f in files:
        t = tc.load(f)
        tc.check_events(t)
        tc.check_summary(t, complete=True)
        tc.check_nesting(t)
        pid = t.meta["pid"]
        ensure("_%d.json" % pid in os.path.basename(f),
               "%s does not carry its pid %d" % (f, pid))
        ensure(pid not in by_pid, "two traces of pid %d" % pid)
        by_pid[pid] = t

    parent = by_pid.get(res["parent"])
    ensure(parent is not None, "no trace of the parent: %r" % files)
    tc.check_counts(parent, {"parent_before": res["before"],
                             "parent_after": res["after"],
                             "fork_call": res["forks"],
                             "parent_worker_span": res["worker"],
                             "child_span": 0, "child_in_run": 0})
    ensure(all(e["pid"] == res["parent"] for e in parent.events),
           "foreign pid in the parent's trace")

    children = res["children"]
    if mode == "off":
        ensure(len(by_pid) == 1, "children wrote traces with "
               "STAGEPROF_FOLLOW_FORK=0: %r" % files)
        return
    ensure(len(by_pid) == 1 + len(children),
           "wanted %d traces, got %r" % (1 + len(children), files))
    for k, pid in enumerate(children):
        t = by_pid.get(pid)
        ensure(t is not None, "no trace of child %d (pid %d)" % (k, pid))
        tc.check_counts(t, {"child_span": res["child_spans"],
                            "child_in_run": 1, "parent_before": 0,
                            "parent_after": 0, "parent_worker_span": 0,
                            "fork_call": 0})
        whos = {e["args"]["who"] for e in t.named("X", "child_span")}
        ensure(whos == {k}, "child %d holds spans of %r" % (k, whos))
        ensure(all(e["pid"] == pid for e in t.events),
               "foreign pid in child %d's trace" % k)
        ensure(t.doc["time_base"] == parent.doc["time_base"],
               "child %d has its own time base %r, not the parent's %r"
               % (k, t.doc["time_base"], parent.doc["time_base"]))


if __name__ == "__main__":
    tc.main(body)
