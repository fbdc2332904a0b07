#!/usr/bin/env python3
"""check_pytorch.py STAGEPROF [PYTHON] - `stageprof report` on a trace the
PyTorch profiler wrote, against the profiler's own key_averages().

PYTHON (default /usr/bin/python3, the one the distribution's torch is
installed for) runs pytorch_profile.py: a ResNet-18 inference pipeline
with data, preprocess, forward and postprocess stages per iteration,
profiled on the CPU. Then `stageprof report --format=json` reads the
exported trace, and:

  - the read: the whole file, not truncated, no warning, every event
    counted, wall time from the trace's first start to its last end;
    producer "chrome": a torch without Kineto (kineto false in
    key_averages.json) writes the older bare-array layout, which carries
    no producer metadata;
  - every name key_averages() lists is a slice name in the trace, and the
    reverse, except "[memory]": torch's allocation records, kept out of
    the trace (no trace name), with no CPU time;
  - per name (the report's stages summed over their categories; the bare
    layout has none): count and total time equal torch's count and
    cpu_time_total;
  - self time: torch's self_cpu_time_total equals torch's own nesting
    rule applied to the trace (EventList._populate_cpu_children: a slice
    that ends after the innermost open one is not its child and closes
    it); the report's equals the documented rule applied to the trace (a
    child that ends after its parent is clipped at the parent's end, a
    self time is never negative). The two are equal for every name that
    no such slice touches; for the others the difference is printed.

Tolerance 0 µs. The trace holds whole microseconds (checked: a torch
that wrote fractions would need another bound) and torch writes each
event's start and elapsed time exactly as key_averages() adds them up;
the report adds the same integers in nanoseconds. A child sticks out of
its parent because torch truncates start and duration to whole
microseconds separately, so by 1 µs at most (checked too).

Exits 77 when PYTHON cannot import torch and torchvision.
"""
import collections
import decimal
import json
import os
import sys

import tracecheck as tc
from tracecheck import ensure, short

HERE = os.path.dirname(os.path.abspath(__file__))
# key_averages() names that never reach the trace (trace_name None).
NOT_TRACED = {"[memory]", "[OutOfMemory]"}


def load_trace(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    try:
        events = json.loads(text, parse_float=decimal.Decimal)
    except ValueError as e:
        raise tc.CheckError("%s is not valid JSON: %s" % (path, e))
    ensure(isinstance(events, list) and text.lstrip().startswith("["),
           "torch without Kineto should write a bare array; %s is %s"
           % (path, type(events).__name__))
    for ev in events:
        ensure(ev.get("ph") == "X", "not a complete event: %s" % short(ev))
        for k in ("ts", "dur"):
            ensure(type(ev.get(k)) is int,
                   "%s is not whole microseconds: %s" % (k, short(ev)))
        ensure(ev["dur"] >= 0, "negative dur: %s" % short(ev))
    return events


def nest(slices, torch_rule):
    """Parent of each slice (an index, or None) on one thread; @slices are
    (start, end, name, file index) in µs."""
    order = sorted(range(len(slices)),
                   key=lambda i: (slices[i][0], -slices[i][1]))
    parent = [None] * len(slices)
    stack = []
    for i in order:
        start, end = slices[i][0], slices[i][1]
        while stack:
            pend = slices[stack[-1]][1]
            if torch_rule:
                gone = start >= pend or end > pend
            else:
                gone = pend < start or (pend == start and end > start)
            if not gone:
                break
            stack.pop()
        if stack:
            parent[i] = stack[-1]
        stack.append(i)
    return parent


def self_times(slices, parent, torch_rule):
    """Self time per name under either rule; torch's may go negative."""
    child = [0] * len(slices)
    for i, p in enumerate(parent):
        if p is not None:
            end = slices[i][1] if torch_rule else min(slices[i][1],
                                                      slices[p][1])
            child[p] += end - slices[i][0]
    out = collections.Counter()
    for i, s in enumerate(slices):
        own = s[1] - s[0] - child[i]
        out[s[2]] += own if torch_rule else max(0, own)
    return out


def body(work):
    cli = os.path.abspath(sys.argv[1])
    python = sys.argv[2] if len(sys.argv) > 2 else "/usr/bin/python3"
    out = os.path.join(work, "profile")
    p = tc.run([python, os.path.join(HERE, "pytorch_profile.py"), out],
               timeout=600, expect_rc=None)
    if p.returncode == tc.SKIP:
        raise tc.Skip(p.stdout.strip() or p.stderr.strip())
    ensure(p.returncode == 0, "pytorch_profile.py exited with %d:\n%s%s"
           % (p.returncode, p.stdout, p.stderr))
    with open(os.path.join(out, "key_averages.json")) as f:
        ka = json.load(f)
    ensure(not ka["kineto"], "this torch has Kineto: its trace is the object"
           " layout with sub-µs times, which this check does not cover")
    trace = os.path.join(out, "trace.json")
    events = load_trace(trace)

    r = tc.run([cli, "report", "--format=json", trace])
    rep = json.loads(r.stdout, parse_float=decimal.Decimal)
    t = rep["trace"]
    ensure(t["truncated"] is False and t["complete"] is None and
           t["dropped"] == 0 and t["warnings"] == [], "trace %r" % t)
    ensure(t["producer"] == "chrome", "producer %r, wanted chrome (the "
           "bare layout has no metadata)" % t["producer"])
    ensure(t["events"] == len(events), "report read %d events, the file "
           "holds %d" % (t["events"], len(events)))
    first = min(ev["ts"] for ev in events)
    last = max(ev["ts"] + ev["dur"] for ev in events)
    ensure(tc.to_ns(t["wall_us"], "wall") == (last - first) * 1000,
           "wall %s µs, trace %d µs" % (t["wall_us"], last - first))

    # torch, per name (its rows are per name, device and node).
    torch_ = collections.defaultdict(collections.Counter)
    for row in ka["rows"]:
        ensure(not row["is_async"], "async row %r" % row)
        for k in ("count", "cpu_time_total", "self_cpu_time_total"):
            torch_[row["name"]][k] += row[k]
    # The report, per name, summed over categories.
    got = collections.defaultdict(collections.Counter)
    for st in rep["stages"]:
        ensure(st["async"] is False, "async stage %r" % st)
        got[st["name"]]["count"] += st["count"]
        for k in ("total", "self"):
            got[st["name"]][k] += tc.to_ns(st[k + "_us"], k)

    traced = {ev["name"] for ev in events}
    untraced = set(torch_) - traced
    ensure(untraced <= NOT_TRACED, "torch counts names the trace lacks: %s"
           % sorted(untraced - NOT_TRACED))
    for name in untraced:
        ensure(torch_[name]["cpu_time_total"] == 0, "%r has CPU time %r"
               % (name, torch_[name]))
    ensure(not traced - set(torch_), "names torch does not count: %s"
           % sorted(traced - set(torch_))[:5])
    ensure(set(got) == traced, "names only in the report or only in the "
           "trace: %s" % sorted(set(got) ^ traced)[:5])
    for stage in ka["stages"]:
        ensure(torch_[stage]["count"] == ka["iterations"],
               "stage %r counted %d times" % (stage, torch_[stage]["count"]))

    for name in sorted(traced):
        tr, rp = torch_[name], got[name]
        ensure(rp["count"] == tr["count"], "%r: count %d, torch %d"
               % (name, rp["count"], tr["count"]))
        ensure(rp["total"] == tr["cpu_time_total"] * 1000,
               "%r: total %d ns, torch %d µs"
               % (name, rp["total"], tr["cpu_time_total"]))

    # Self time, both rules, from the trace (one thread per tid).
    per = collections.defaultdict(list)
    for i, ev in enumerate(events):
        per[ev["tid"]].append((ev["ts"], ev["ts"] + ev["dur"], ev["name"], i))
    by_torch, by_doc = collections.Counter(), collections.Counter()
    touched = set()   # names whose slices the two rules nest differently
    sticks = 0
    busy = {}
    for tid, sl in per.items():
        pt, pd = nest(sl, True), nest(sl, False)
        by_torch.update(self_times(sl, pt, True))
        by_doc.update(self_times(sl, pd, False))
        for i, s in enumerate(sl):
            if pt[i] == pd[i] or s[0] == s[1]:
                continue  # same parent, or empty: no self time moves
            par = sl[pd[i]]
            over = s[1] - par[1]
            ensure(0 < over <= 1, "a slice sticks out of its parent by %d "
                   "µs, more than torch's rounding explains: %s in %s"
                   % (over, short(events[s[3]]), short(events[par[3]])))
            sticks += 1
            touched.update(sl[j][2] for j in (pt[i], pd[i]) if j is not None)
        covered, b = None, 0
        for i in sorted(range(len(sl)), key=lambda i: (sl[i][0], -sl[i][1])):
            if pd[i] is None and (covered is None or sl[i][1] > covered):
                b += sl[i][1] - (sl[i][0] if covered is None
                                 else max(sl[i][0], covered))
                covered = sl[i][1]
        busy[str(tid)] = b
    ths = {(th["pid"], th["tid"]): th for th in rep["threads"]}
    ensure(set(ths) == {("CPU functions", str(tid)) for tid in per},
           "threads %s" % sorted(ths))
    for (pid, tid), th in ths.items():
        ensure(th["slices"] == len(per[int(tid)]) and
               tc.to_ns(th["busy_us"], "busy") == busy[tid] * 1000,
               "thread %r: report %r, trace %d slices, busy %d µs"
               % (tid, th, len(per[int(tid)]), busy[tid]))

    differ = []
    for name in sorted(traced):
        mine = torch_[name]["self_cpu_time_total"]
        ensure(by_torch[name] == mine, "%r: torch's self %d µs, its rule on "
               "the trace gives %d µs" % (name, mine, by_torch[name]))
        ensure(got[name]["self"] == by_doc[name] * 1000,
               "%r: report's self %d ns, the documented rule on the trace "
               "gives %d µs" % (name, got[name]["self"], by_doc[name]))
        if got[name]["self"] != mine * 1000:
            ensure(name in touched, "%r: self %d ns, torch %d µs, and no "
                   "slice of it sticks out" % (name, got[name]["self"],
                                               mine))
            differ.append(name)
    print("torch %s: %d events, %d names; count and total equal for all; "
          "self equal for %d, differs for %d (%d slices stick out of "
          "their parent by 1 µs):"
          % (ka["torch"], len(events), len(traced), len(traced) - len(differ),
             len(differ), sticks))
    for name in differ:
        print("  %-32s self %9.3f µs, torch %7d µs" % (
            name, got[name]["self"] / 1000,
            torch_[name]["self_cpu_time_total"]))


if __name__ == "__main__":
    tc.main(body)
