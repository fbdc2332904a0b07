#!/usr/bin/env python3
"""check_kineto.py STAGEPROF DIR CASE - `stageprof report` on real PyTorch
Kineto traces (the object layout torch 2.x writes, gzip-compressed).

DIR holds the traces, one per case folder:

  cpu_only             a CPU-only distributed run: a few gloo annotations
  ns_resolution        a GPU training step whose times carry nanosecond
                       digits (1712195495519689.047 µs: 19 significant
                       digits, more than a double holds)
  trace_diff.control   two larger GPU traces with whole-µs times (about
  trace_diff.test      100k events, 35 MB of JSON each)

`stageprof report --format=json` runs on the case's file and on its folder
(the same numbers); everything is compared with a computation made here
from the same file, with Python's json module and Decimal, following
docs/cli/stageprof-report.md:

  - times: µs to integer ns from the decimal digits (digits below 1 ns
    rounded half away from zero), never through a double;
  - per stage (name, category) over X slices and paired B/E: count, total,
    self (per thread, slices sorted by start, longer first; a child is
    clipped at its parent's end; never below zero), min, max, mean and the
    percentiles (linear interpolation, as numpy). Slices with the same
    start and length keep their file order, the parent first, as in
    torch's own nesting (a stable sort); the trace_diff traces have over a
    thousand such pairs with different names, unsorted in the file;
  - the stage order (largest total first, then name, then category);
  - per thread (pid, tid as text): slices, busy time (union of top-level
    slices), the thread_name; wall time, shares, event count, producer
    "pytorch", not truncated, and exactly the warnings the file calls for.

Count, total, self, min, max and wall must match to the nanosecond: both
sides add the same integers. Mean and percentiles come out of binary
floating point in the report and may be 1 ns off.

Exits 77 when DIR is absent.
"""
import collections
import decimal
import gzip
import json
import os
import sys

import tracecheck as tc
from tracecheck import ensure, short

CASES = {"cpu_only": "cpu_only", "ns_resolution": "ns_resolution",
         "trace_diff.control": os.path.join("trace_diff", "control"),
         "trace_diff.test": os.path.join("trace_diff", "test")}
PCTS = (("p50_us", 0.50), ("p90_us", 0.90), ("p95_us", 0.95),
        ("p99_us", 0.99), ("p999_us", 0.999))
SKIPPED = set("nTpiIstfONDPRc")  # no duration: skipped without a warning
CTX = decimal.Context(prec=80)   # far more digits than any time has


def to_ns(v):
    """A JSON time in µs as integer ns, and whether digits were dropped."""
    d = CTX.multiply(decimal.Decimal(v), 1000)
    n = d.to_integral_value(rounding=decimal.ROUND_HALF_UP, context=CTX)
    return int(n), n != d


def is_num(v):
    return isinstance(v, (int, decimal.Decimal)) and not isinstance(v, bool)


def ident(v):
    """pid or tid as the report prints it: numbers in decimal, strings as
    they are."""
    if v is None:
        return ""
    return v if isinstance(v, str) else str(v)


class Expected:
    """What the report should say about one trace, computed here."""

    def __init__(self, doc):
        self.events = len(doc["traceEvents"])
        self.rounded = False
        self.warn = collections.Counter()
        self.unknown = set()
        self.names = {}                              # (pid, tid) -> name
        self.slices = collections.defaultdict(list)  # (pid, tid) -> [...]
        be = collections.defaultdict(list)
        for seq, ev in enumerate(doc["traceEvents"]):
            ensure(isinstance(ev, dict), "event is not an object: %r" % ev)
            ph = ev.get("ph")
            ensure(isinstance(ph, str) and len(ph) == 1,
                   "event without a one-letter phase: %s" % short(ev))
            thread = (ident(ev.get("pid")), ident(ev.get("tid")))
            if ph == "M":
                args = ev.get("args")
                if (ev.get("name") == "thread_name" and
                        isinstance(args, dict) and
                        isinstance(args.get("name"), str)):
                    self.names[thread] = args["name"]
                continue
            if ph in SKIPPED:
                continue
            # Async spans and counters have their own checks elsewhere;
            # none of these traces has them.
            ensure(ph not in "beSFC", "phase %s not covered by this checker:"
                   " %s" % (ph, short(ev)))
            if ph not in "XBE":
                self.unknown.add(ph)
                continue
            if not is_num(ev.get("ts")):
                self.warn["no_ts"] += 1
                continue
            ts = self.ns(ev["ts"])
            stage = (ev.get("name", ""), ev.get("cat", ""))
            if ph == "X":
                if not is_num(ev.get("dur")):
                    self.warn["no_dur"] += 1
                    continue
                dur = self.ns(ev["dur"])
                if dur < 0:
                    self.warn["bad_dur"] += 1
                    continue
                self.slices[thread].append((ts, dur, stage))
            else:
                be[thread].append((ts, seq, ph, stage))
        # B/E: per thread, a stable sort by time, then a stack.
        for thread, evs in be.items():
            evs.sort(key=lambda e: (e[0], e[1]))
            stack = []
            for ts, _, ph, stage in evs:
                if ph == "B":
                    stack.append((ts, stage))
                elif stack:
                    b_ts, b_stage = stack.pop()
                    self.slices[thread].append((b_ts, ts - b_ts, b_stage))
                else:
                    self.warn["orphan_e"] += 1
            self.warn["open_b"] += len(stack)
        self.nest()

    def ns(self, v):
        n, rounded = to_ns(v)
        self.rounded |= rounded
        return n

    def nest(self):
        durs = collections.defaultdict(list)
        selfs = collections.Counter()
        self.busy, self.count = {}, {}
        first = last = None
        for thread, sl in self.slices.items():
            # Stable: slices with the same start and length keep file order.
            sl.sort(key=lambda s: (s[0], -s[1]))
            child = [0] * len(sl)
            stack = []
            busy, covered = 0, None
            for i, (start, dur, _) in enumerate(sl):
                end = start + dur
                while stack:
                    p = sl[stack[-1]]
                    pend = p[0] + p[1]
                    if pend < start or (pend == start and dur > 0):
                        stack.pop()
                    else:
                        break
                if stack:
                    p = sl[stack[-1]]
                    child[stack[-1]] += min(end, p[0] + p[1]) - start
                elif covered is None or end > covered:
                    busy += end - (start if covered is None
                                   else max(start, covered))
                    covered = end
                stack.append(i)
            for i, (start, dur, stage) in enumerate(sl):
                durs[stage].append(dur)
                selfs[stage] += max(0, dur - child[i])
                first = start if first is None else min(first, start)
                last = start + dur if last is None else max(last, start + dur)
            self.busy[thread] = busy
            self.count[thread] = len(sl)
        self.wall = last - first if first is not None else 0
        self.stages = {}
        for stage, d in durs.items():
            d.sort()
            self.stages[stage] = {"count": len(d), "total": sum(d),
                                  "self": selfs[stage], "min": d[0],
                                  "max": d[-1], "durs": d}

    def warnings(self, path):
        """The warnings the report must give, as message fragments."""
        w = []
        if self.rounded:
            w.append("%s: times below 1 ns were rounded" % path)
        what = {"no_dur": "complete events (X) without a numeric dur",
                "bad_dur": "events with a negative duration",
                "no_ts": "events without a numeric ts",
                "open_b": "B events never ended",
                "orphan_e": "E events without a B"}
        for k, text in what.items():
            if self.warn[k]:
                w.append("%d %s" % (self.warn[k], text))
        if self.unknown:
            w.append("events of unknown phases skipped: ")
        return w


def percentile(d, p):
    """numpy's linear percentile, computed in doubles as the report does."""
    rank = p * (len(d) - 1)
    lo = int(rank)
    if lo + 1 >= len(d):
        return float(d[-1])
    return d[lo] + (rank - lo) * (d[lo + 1] - d[lo])


def report(cli, path):
    p = tc.run([cli, "report", "--format=json", path], timeout=300)
    try:
        return json.loads(p.stdout, parse_float=decimal.Decimal)
    except ValueError as e:
        raise tc.CheckError("report printed bad JSON (%s): %.300s"
                            % (e, p.stdout))


def us(v, what):
    return tc.to_ns(v, what)


def compare(r, want, path):
    t = r["trace"]
    ensure(t["truncated"] is False and t["complete"] is None and
           t["dropped"] == 0, "trace %r" % t)
    ensure(t["producer"] == "pytorch", "producer %r, wanted pytorch (Kineto"
           " metadata)" % t["producer"])
    ensure(t["events"] == want.events, "report read %d events, the file holds"
           " %d" % (t["events"], want.events))
    ensure(us(t["wall_us"], "wall") == want.wall, "wall %s µs, trace %d ns"
           % (t["wall_us"], want.wall))
    warn = want.warnings(path)
    ensure(len(t["warnings"]) == len(warn) and
           all(any(x in g for g in t["warnings"]) for x in warn),
           "warnings %r, wanted %r" % (t["warnings"], warn))
    ensure(not r["counters"], "counters %r in a trace without C events"
           % r["counters"][:3])

    got = {}
    for st in r["stages"]:
        key = (st["name"], st["category"])
        ensure(key not in got, "stage %r twice" % (key,))
        ensure(st["async"] is False, "stage %r async" % (key,))
        got[key] = st
    ensure(set(got) == set(want.stages), "stages only in the report: %s; "
           "only in the trace: %s"
           % (sorted(set(got) - set(want.stages))[:5],
              sorted(set(want.stages) - set(got))[:5]))
    order = sorted(want.stages, key=lambda k: (-want.stages[k]["total"],
                                               k[0].encode(), k[1].encode()))
    ensure([(s["name"], s["category"]) for s in r["stages"]] == order,
           "stages not in the documented order")
    for key, w in want.stages.items():
        st = got[key]
        ensure(st["count"] == w["count"], "%r: count %d, trace %d"
               % (key, st["count"], w["count"]))
        for k in ("total", "self", "min", "max"):
            ensure(us(st[k + "_us"], k) == w[k], "%r: %s %s µs, trace %d ns"
                   % (key, k, st[k + "_us"], w[k]))
        near = [("mean_us", w["total"] / w["count"])]
        near += [(k, percentile(w["durs"], p)) for k, p in PCTS]
        for k, v in near:
            ensure(abs(us(st[k], k) - v) <= 1, "%r: %s %s µs, trace %.1f ns"
                   % (key, k, st[k], v))
        share = w["total"] / want.wall
        ensure(abs(float(st["share"]) - share) <= 1e-12 * share,
               "%r: share %s, trace %r" % (key, st["share"], share))

    # Runs: the ProfilerStep#N spans when there are any (each one a run,
    # its latency its duration), else every top-level span.
    steps = [k for k in want.stages if k[0].startswith("ProfilerStep#")]
    runs = r["runs"]
    if steps:
        lat = sorted(d for k in steps for d in want.stages[k]["durs"])
        ensure(runs["kind"] == "profiler_step" and
               runs["count"] == len(lat) and
               us(runs["max_us"], "max") == lat[-1] and
               abs(us(runs["p50_us"], "p50") - percentile(lat, 0.5)) <= 1,
               "runs %r; the trace has %d ProfilerStep spans, longest %d ns"
               % (runs, len(lat), lat[-1]))
    else:
        ensure(runs["kind"] == "top_level" and runs["count"] > 0,
               "runs %r in a trace without ProfilerStep spans" % runs)
    ensure(r["bottleneck"] is not None and r["bottleneck"]["stage"] in
           {k[0] for k in want.stages}, "bottleneck %r" % r["bottleneck"])

    threads = {(th["pid"], th["tid"]): th for th in r["threads"]}
    ensure(set(threads) == set(want.count), "threads %s, trace %s"
           % (sorted(threads), sorted(want.count)))
    for key, th in threads.items():
        ensure(th["slices"] == want.count[key] and
               us(th["busy_us"], "busy") == want.busy[key] and
               th["name"] == want.names.get(key),
               "thread %r: %r; trace: %d slices, busy %d ns, name %r"
               % (key, th, want.count[key], want.busy[key],
                  want.names.get(key)))


def check_fractions(r, want, doc):
    """The nanosecond digits survive: some stages' figures have them, and
    the wall time is the exact one, not what doubles would give."""
    frac = [st for st in r["stages"]
            if us(st["min_us"], "min") % 1000 and
            us(st["total_us"], "total") % 1000]
    ensure(len(frac) >= len(r["stages"]) // 2,
           "only %d of %d stages have sub-µs digits in min and total"
           % (len(frac), len(r["stages"])))
    ensure(us(r["trace"]["wall_us"], "wall") % 1000, "wall %s has no sub-µs "
           "digits" % r["trace"]["wall_us"])
    ends = [(float(e["ts"]) * 1000, (float(e["ts"]) + float(e["dur"])) * 1000)
            for e in doc["traceEvents"] if e.get("ph") == "X"]
    as_double = max(e for _, e in ends) - min(s for s, _ in ends)
    st = max(frac, key=lambda st: st["count"])
    print("%s: min %s µs, total %s µs; wall %s µs (through doubles: %.3f)"
          % (st["name"][:40], st["min_us"], st["total_us"],
             r["trace"]["wall_us"], as_double / 1000))


def body(work):
    cli, root, case = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    ensure(case in CASES, "unknown case %r (known: %s)"
           % (case, ", ".join(CASES)))
    folder = os.path.join(root, CASES[case])
    if not os.path.isdir(folder):
        raise tc.Skip("%s is absent" % folder)
    files = [f for f in sorted(os.listdir(folder)) if f.endswith(".json.gz")]
    ensure(len(files) == 1, "wanted one trace in %s, found %s"
           % (folder, files))
    path = os.path.join(folder, files[0])
    with gzip.open(path, "rb") as f:
        doc = json.loads(f.read().decode("utf-8"),
                         parse_float=decimal.Decimal)
    ensure(isinstance(doc, dict) and isinstance(doc.get("traceEvents"), list),
           "%s is not in the Kineto object layout" % path)
    want = Expected(doc)
    r = report(cli, path)
    compare(r, want, path)
    # The folder stands for its one file: the same numbers.
    rd = report(cli, folder)
    ensure(rd["trace"]["files"] == [path], "files %r" % rd["trace"]["files"])
    rd["trace"]["files"] = r["trace"]["files"]
    rd["trace"]["warnings"] = r["trace"]["warnings"]  # they name the path
    ensure(rd == r, "the folder's report differs from the file's")
    if case == "ns_resolution":
        check_fractions(r, want, doc)
    nsl = sum(want.count.values())
    print("%s: %d events, %d slices on %d threads, %d stages; wall %s µs"
          % (case, want.events, nsl, len(want.count), len(want.stages),
             r["trace"]["wall_us"]))


if __name__ == "__main__":
    tc.main(body)
