#!/usr/bin/env python3
"""check_sql.py STAGEPROF MODE [KINETO_DIR] - `stageprof sql`.

Every expected value is computed here from the trace the checker writes
(or, for the real traces, reads with Python's json module and Decimal),
never taken from the program's own output. Modes:

  queries   a generated trace (X slices nested on several threads, B/E
            pairs in shuffled order, string pids and tids, runs with and
            without their own span, counters, flows, instants, names):
            counts, sums, self times, a join of slices to threads, depth
            and parent of every slice, runs, flows bound to the slices
            they leave and reach, args, ids in the documented order; the
            same answers from the --save file read with Python's sqlite3
  formats   text (exact layout), CSV (Python's csv module), JSON (types,
            null, exact integers, shortest doubles), several statements,
            empty results, statements without rows
  save      --save: the file reopened, replaced whole, a non-SQLite file
            refused, unwritable paths, a failed load or SIGTERM leaving the
            old database and no temporary file, statements that change it
  kineto    the real PyTorch traces in KINETO_DIR (cpu_only, ns_resolution
            and trace_diff/control, whose slices alike in start and length
            test the tie rule; skips without them): slices per name and
            thread, self times, depths, flows, thread names
  errors    SQL syntax and run-time errors (SQLite's message, exit 1, the
            rows printed before), corrupt, truncated, missing traces
  hostile   names with quotes, NULs, control bytes, invalid UTF-8, 200 KB:
            stored byte for byte, printed safely in each format
  prompt    the prompt through a pipe (-i) and in a pseudo-terminal:
            statements over several lines, dot commands, errors that do
            not end it, Ctrl-C while typing and during a long query
  stdin     statements from standard input, the trace from standard input

Exit status 0 pass, 1 fail, 77 skip.
"""
import collections
import csv
import decimal
import gzip
import io
import json
import os
import pty
import random
import select
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import tracecheck as tc
from tracecheck import ensure

SP = None  # the stageprof program
BASE_NS = 1_700_000_000_123_456_789  # times near now: 19 digits of ns


# ---------------------------------------------------------------------------
# Running


def sql(trace, *args, rc=0, stdin=None, timeout=60):
    """Run `stageprof sql TRACE ARGS...`; bytes out, checked exit status."""
    cmd = [SP, "sql", trace] + list(args)
    try:
        p = subprocess.run(cmd, input=stdin, capture_output=True,
                           timeout=timeout, env=tc.clean_env())
    except subprocess.TimeoutExpired:
        raise tc.CheckError("%s: no exit within %d s" % (cmd, timeout))
    if rc is not None and p.returncode != rc:
        raise tc.CheckError(
            "%s exited with %d, wanted %d\n--- stdout\n%s\n--- stderr\n%s"
            % (cmd, p.returncode, rc, p.stdout[:3000].decode(errors="replace"),
               p.stderr[:3000].decode(errors="replace")))
    return p


def rows(trace, query, *args):
    """The rows of one statement, from --format json, as tuples."""
    p = sql(trace, query, "--format=json", *args)
    try:
        doc = json.loads(p.stdout)
    except ValueError as e:
        raise tc.CheckError("bad JSON for %r: %s\n%s" % (query, e, p.stdout))
    return [tuple(r.values()) for r in doc]


def us(ns):
    """Integer ns as the µs text of a trace, exact (3 decimals)."""
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    return "%s%d.%03d" % (sign, ns // 1000, ns % 1000)


def ev_text(**kw):
    """One event as JSON text; ts and dur given in ns, written in µs."""
    parts = []
    for k, v in kw.items():
        if k in ("ts", "dur"):
            parts.append('"%s":%s' % (k, us(v)))
        else:
            parts.append("%s:%s" % (json.dumps(k), json.dumps(v)))
    return "{" + ",".join(parts) + "}"


def write_trace(path, events, tail="]}"):
    with open(path, "w") as f:
        f.write('{"traceEvents":[\n' + ",\n".join(events) + "\n" + tail)


# ---------------------------------------------------------------------------
# A generated trace and what it holds


class Slice:
    def __init__(self, thread, name, cat, ts, dur, run):
        self.thread, self.name, self.cat = thread, name, cat
        self.ts, self.dur, self.run = ts, dur, run
        self.parent, self.depth, self.children = None, 0, []

    @property
    def end(self):
        return self.ts + self.dur

    def key(self):
        return (self.thread, self.ts, self.dur, self.name)

    def self_ns(self):
        child = sum(min(c.end, self.end) - c.ts for c in self.children)
        return max(0, self.dur - child)


NAMES = [("read", "data"), ("decode", "preprocess"), ("resize", "preprocess"),
         ("infer", "compute"), ("nms", "postprocess"), ("send", "io")]


class Generated:
    """A trace with known contents. Threads are keyed by (pid, tid) as
    the trace writes them (numbers or strings)."""

    def __init__(self, seed):
        rng = random.Random(seed)
        self.rng = rng
        self.events = []
        self.slices = []
        self.thread_names = {(100, 1): "main", (100, 2): "worker",
                             ("gpu", "stream 7"): "stream 7"}
        self.process_names = {100: "pipeline"}
        self.runs = {}  # id -> [begin, end, slices, bounds]
        run = 0
        t = BASE_NS
        # Threads 1 (X, shuffled) and 2 (B/E, shuffled): runs of nested
        # trees; every slice of a tree carries the tree's run, but every
        # fifth tree has no run.
        for i in range(60):
            thread = (100, 1 + i % 2)
            dur = rng.randrange(200_000, 2_000_000)
            r = None
            if i % 5 != 4:
                run += 1
                r = run
            self.tree(thread, t, dur, r, 0, None)
            t += dur + rng.randrange(1_000, 50_000)
        # Thread "stream 7" of process "gpu": flat kernels with the run of
        # no one.
        for i in range(40):
            ts = BASE_NS + i * 400_000 + 7
            self.slices.append(Slice(("gpu", "stream 7"), "kernel_%d" % (i % 3),
                                     "kernel", ts, 150_000, None))
        # Thread 5 of process 200: the nesting rules at their edges.
        a = BASE_NS + 10_000_000
        edge = [
            ("outer", 0, 1000),        # parent of the next four
            ("same_start", 0, 400),    # same start, shorter: a child
            ("grandchild", 100, 50),
            ("sibling", 400, 200),     # starts where same_start ends
            ("zero_at_end", 1000, 0),  # zero length at outer's end: child
            ("outer2", 2000, 500),
            ("after", 2500, 300),      # starts where outer2 ends: top level
        ]
        for name, off, dur in edge:
            self.slices.append(Slice((200, 5), name, "edge", a + off, dur,
                                     None))
        # Two slices alike in start and length: the first read is parent.
        self.slices.append(Slice((200, 5), "twin_a", "edge", a + 5000, 100,
                                 None))
        self.slices.append(Slice((200, 5), "twin_b", "edge", a + 5000, 100,
                                 None))
        self.nest()
        self.emit()

    def tree(self, thread, ts, dur, run, depth, parent):
        s = Slice(thread, *self.rng.choice(NAMES), ts, dur, run)
        self.slices.append(s)
        if depth < 4 and dur > 4000:
            k = self.rng.randrange(0, 4)
            if k:
                slot = dur // k
                for j in range(k):
                    lo = ts + j * slot + self.rng.randrange(1, slot // 4 + 2)
                    hi = ts + (j + 1) * slot - self.rng.randrange(1, slot // 4
                                                                  + 2)
                    if hi - lo > 2:
                        self.tree(thread, lo, hi - lo, run, depth + 1, s)

    def nest(self):
        """Depth, parent and children of every slice, by the documented
        rule (start order, the longer first, then the order written)."""
        by = collections.defaultdict(list)
        for i, s in enumerate(self.slices):
            s.order = i
            by[s.thread].append(s)
        self.by_thread = by
        for sl in by.values():
            sl.sort(key=lambda s: (s.ts, -s.dur, s.order))
            stack = []
            for s in sl:
                while stack and (stack[-1].end < s.ts or
                                 (stack[-1].end == s.ts and s.dur > 0)):
                    stack.pop()
                if stack:
                    s.parent = stack[-1]
                    s.depth = len(stack)
                    stack[-1].children.append(s)
                stack.append(s)

    def emit(self):
        rng, ev = self.rng, self.events
        for (pid, tid), name in self.thread_names.items():
            ev.append(ev_text(ph="M", name="thread_name", pid=pid, tid=tid,
                              args={"name": name}))
        for pid, name in self.process_names.items():
            ev.append(ev_text(ph="M", name="process_name", pid=pid,
                              args={"name": name}))
        body = []
        for s in self.slices:
            pid, tid = s.thread
            args = {"run": s.run} if s.run else {}
            if s.thread == (100, 2):
                body.append(ev_text(ph="B", name=s.name, cat=s.cat, ts=s.ts,
                                    pid=pid, tid=tid, args=args))
                body.append(ev_text(ph="E", ts=s.end, pid=pid, tid=tid))
            else:
                body.append(ev_text(ph="X", name=s.name, cat=s.cat, ts=s.ts,
                                    dur=s.dur, pid=pid, tid=tid, args=args))
        # Shuffled, except that the edge thread keeps its written order
        # (it decides which twin is the parent).
        edge = [e for e in body if '"tid":5' in e]
        rest = [e for e in body if '"tid":5' not in e]
        rng.shuffle(rest)
        body = rest + edge
        # Runs: odd ones have their own span (category "run"), wider than
        # their slices; even ones are bounded by their slices.
        extent = {}
        for s in self.slices:
            if s.run:
                b, e, n = extent.get(s.run, (s.ts, s.end, 0))
                extent[s.run] = (min(b, s.ts), max(e, s.end), n + 1)
        self.spans = 0
        for r, (b, e, n) in sorted(extent.items()):
            if r % 2:
                b, e = b - 5000, e + 7000
                self.spans += 1
                body.append(ev_text(ph="b", name="frame", cat="run",
                                    id=hex(r), ts=b, pid=100, tid=1,
                                    args={"run": r}))
                body.append(ev_text(ph="e", name="frame", cat="run",
                                    id=hex(r), ts=e, pid=100, tid=2,
                                    args={"run": r}))
            self.runs[r] = (b, e, e - b, n, "span" if r % 2 else "slices")
        # Counters of process 100: two series.
        self.counters = collections.defaultdict(list)
        for i in range(25):
            v = rng.randrange(0, 9)
            body.append(ev_text(ph="C", name="queue_depth", pid=100,
                                ts=BASE_NS + i * 1_000_000,
                                args={"value": v, "capacity": 8}))
            self.counters[("queue_depth", "value")].append(v)
            self.counters[("queue_depth", "capacity")].append(8)
        # Flows from the middle of a top-level slice of thread 1 to the
        # start of one of thread 2.
        tops = {th: [s for s in self.by_thread[th] if s.parent is None]
                for th in ((100, 1), (100, 2))}
        self.flows = []
        for i in range(12):
            a, b = tops[(100, 1)][i], tops[(100, 2)][i]
            ts_a = a.ts + a.dur // 2
            # Arrivals at a slice's start, and (the last two) at its end:
            # both ends belong to the slice.
            ts_b = b.ts if i < 10 else b.end
            body.append(ev_text(ph="s", name="handoff", cat="flow",
                                id="f%d" % i, ts=ts_a, pid=100, tid=1))
            body.append(ev_text(ph="f", bp="e", name="handoff", cat="flow",
                                id="f%d" % i, ts=ts_b, pid=100, tid=2))
            self.flows.append(("f%d" % i, ts_a, self.deepest((100, 1), ts_a),
                               ts_b, self.deepest((100, 2), ts_b)))
        # Instants on thread 1.
        for i in range(3):
            body.append(ev_text(ph="i", name="mark%d" % i, cat="mark",
                                ts=BASE_NS + i, pid=100, tid=1, s="t"))
        self.events += body

    def deepest(self, thread, ts):
        best = None
        for s in self.by_thread[thread]:
            if s.ts <= ts <= s.end and (best is None or s.depth > best.depth):
                best = s
        return (best.name, best.ts) if best else None


def expect_rows(got, want, what):
    got, want = sorted(got, key=repr), sorted(want, key=repr)
    if got != want:
        extra = [r for r in got if r not in want][:5]
        missing = [r for r in want if r not in got][:5]
        raise tc.CheckError("%s: %d rows, wanted %d; unexpected %s; missing "
                            "%s" % (what, len(got), len(want), extra,
                                    missing))


def check_queries(work):
    g = Generated(7)
    path = os.path.join(work, "gen.json")
    write_trace(path, g.events)
    q = lambda query: rows(path, query)
    sl = g.slices

    ensure(q("SELECT count(*) FROM slices") == [(len(sl),)], "slice count")
    per = collections.defaultdict(lambda: [0, 0, 0])
    for s in sl:
        p = per[(s.name, s.cat)]
        p[0] += 1
        p[1] += s.dur
        p[2] += s.self_ns()
    expect_rows(q("SELECT name, category, count(*), sum(dur_ns), "
                  "sum(self_ns) FROM slices GROUP BY 1, 2"),
                [k + tuple(v) for k, v in per.items()], "per name")
    # A join of slices to threads.
    per_thread = collections.Counter()
    dur_thread = collections.Counter()
    for s in sl:
        per_thread[s.thread] += 1
        dur_thread[s.thread] += s.dur
    expect_rows(q("SELECT t.pid, t.tid, t.name, count(*), sum(s.dur_ns) "
                  "FROM slices s JOIN threads t ON t.id = s.thread "
                  "GROUP BY t.id"),
                [(th[0], th[1], g.thread_names.get(th), per_thread[th],
                  dur_thread[th]) for th in per_thread], "per thread")
    # Every slice: its columns, depth and parent.
    want = []
    for s in sl:
        par = s.parent
        want.append((s.thread[0], s.thread[1], s.name, s.cat, s.ts, s.dur,
                     s.end, s.depth, par.name if par else None,
                     par.ts if par else None, s.run, s.self_ns()))
    expect_rows(q("SELECT s.pid, s.tid, s.name, s.category, s.ts_ns, "
                  "s.dur_ns, s.end_ns, s.depth, p.name, p.ts_ns, s.run, "
                  "s.self_ns FROM slices s LEFT JOIN slices p "
                  "ON p.id = s.parent"), want, "slices")
    ensure(q("SELECT name FROM slices WHERE id = (SELECT parent FROM slices "
             "WHERE name = 'twin_b')") == [("twin_a",)],
           "of two alike slices the first written is the parent")
    ensure(q("SELECT count(*) FROM slices s JOIN slices p ON p.id = s.parent"
             " WHERE s.thread != p.thread OR s.depth != p.depth + 1 "
             "OR s.id <= p.id") == [(0,)], "parents on the thread, above")
    # Ids: thread by thread (in order of first appearance), by start, the
    # longer first.
    ids = q("SELECT id, thread, ts_ns, dur_ns FROM slices ORDER BY id")
    ensure([r[0] for r in ids] == list(range(1, len(sl) + 1)), "ids 1..n")
    ensure(ids == sorted(ids, key=lambda r: (r[1], r[2], -r[3], r[0])),
           "ids follow thread, start, longer first")
    # Runs, args, async slices.
    expect_rows(q("SELECT id, begin_ns, end_ns, dur_ns, slices, bounds "
                  "FROM runs"),
                [(r,) + v for r, v in g.runs.items()], "runs")
    with_run = [s for s in sl if s.run]
    expect_rows(q("SELECT s.name, s.ts_ns, a.key, a.value FROM args a "
                  "JOIN slices s ON s.id = a.slice"),
                [(s.name, s.ts, "run", s.run) for s in with_run], "args")
    expect_rows(q("SELECT name, category, async_id, ts_ns, end_ns, run "
                  "FROM async_slices"),
                [("frame", "run", hex(r), v[0], v[1], r)
                 for r, v in g.runs.items() if v[4] == "span"],
                "async slices")
    # Counters, flows, instants, processes, metadata.
    expect_rows(q("SELECT name, series, count(*), sum(value), "
                  "min(pid) FROM counters GROUP BY 1, 2"),
                [k + (len(v), float(sum(v)), 100)
                 for k, v in g.counters.items()], "counters")
    expect_rows(q("SELECT f.flow_id, f.start_ns, s.name, s.ts_ns, f.end_ns,"
                  " e.name, e.ts_ns, ts.tid, te.tid FROM flows f "
                  "LEFT JOIN slices s ON s.id = f.start_slice "
                  "LEFT JOIN slices e ON e.id = f.end_slice "
                  "JOIN threads ts ON ts.id = f.start_thread "
                  "JOIN threads te ON te.id = f.end_thread"),
                [(i, a, *sa, b, *sb, 1, 2) for i, a, sa, b, sb in g.flows],
                "flows")
    expect_rows(q("SELECT name, ts_ns, tid FROM instants"),
                [("mark%d" % i, BASE_NS + i, 1) for i in range(3)],
                "instants")
    expect_rows(q("SELECT pid, name FROM processes"),
                [(100, "pipeline"), ("gpu", None), (200, None)], "processes")
    meta = dict(q("SELECT name, value FROM metadata"))
    ensure(meta.get("events") == len(g.events) and meta.get("truncated") == 0
           and meta.get("unended_begins") == 0, "metadata %s" % meta)

    # The same answers from the saved file, read by Python's sqlite3.
    db_path = os.path.join(work, "gen.sqlite")
    sql(path, "SELECT 1", "--save", db_path)
    db = sqlite3.connect(db_path)
    for query in ("SELECT name, category, count(*), sum(dur_ns), sum(self_ns)"
                  " FROM slices GROUP BY 1, 2 ORDER BY 1, 2",
                  "SELECT * FROM slices ORDER BY id",
                  "SELECT * FROM runs ORDER BY id",
                  "SELECT * FROM flows ORDER BY id",
                  "SELECT * FROM threads ORDER BY id"):
        ensure([tuple(r) for r in db.execute(query)] == q(query),
               "the saved file and the query disagree: %s" % query)
    db.close()

    # Every numeric argument of a slice: whole numbers as INTEGER (up to
    # 2^53), the others as REAL; strings, objects and booleans left out.
    path = os.path.join(work, "args.json")
    write_trace(path, [
        ev_text(ph="X", name="a", ts=1000, dur=500, pid=1, tid=1,
                args={"run": 7, "input": 416, "score": 0.25, "neg": -3,
                      "big": 2 ** 60, "label": "text", "on": True,
                      "nested": {"x": 1}}),
        ev_text(ph="B", name="b", ts=2000, pid=1, tid=1,
                args={"External id": 12, "ratio": 1.5}),
        ev_text(ph="E", ts=2500, pid=1, tid=1)])
    got = rows(path, "SELECT s.name, a.key, a.value, typeof(a.value) "
                          "FROM args a JOIN slices s ON s.id = a.slice "
                          "ORDER BY s.name, a.key")
    want = [("a", "big", float(2 ** 60), "real"),
            ("a", "input", 416, "integer"), ("a", "neg", -3, "integer"),
            ("a", "run", 7, "integer"), ("a", "score", 0.25, "real"),
            ("b", "External id", 12, "integer"), ("b", "ratio", 1.5, "real")]
    ensure(got == want, "args: %r" % (got,))


# ---------------------------------------------------------------------------
# Formats


def small_trace(work):
    path = os.path.join(work, "small.json")
    write_trace(path, [
        ev_text(ph="M", name="thread_name", pid=1, tid=1,
                args={"name": "main"}),
        ev_text(ph="X", name="outer", cat="compute", ts=0, dur=100_000,
                pid=1, tid=1),
        ev_text(ph="X", name="inner", cat="compute", ts=10_000, dur=30_000,
                pid=1, tid=1),
        ev_text(ph="C", name="c", ts=5, pid=1, args={"v": 0.1}),
    ])
    return path


def check_formats(work):
    path = small_trace(work)
    query = ("SELECT id, name, parent, self_ns FROM slices ORDER BY id; "
             "SELECT value, 1.0/3 AS third, 9223372036854775807 AS big, "
             "-5 AS neg, 'a,b \"c\"' || char(10) || 'd' AS text, '' AS empty, "
             "NULL AS nil, 1e300 * 1e300 AS inf FROM counters")
    text = sql(path, query).stdout.decode()
    want = ("id  name   parent  self_ns\n"
            "--  -----  ------  -------\n"
            " 1  outer    NULL    70000\n"
            " 2  inner       1    30000\n"
            "(2 rows)\n"
            "\n"
            "value               third                  big  neg  text"
            "          empty  nil   inf\n"
            "-----  ------------------  -------------------  ---  "
            "------------  -----  ----  ---\n"
            "  0.1  0.3333333333333333  9223372036854775807   -5  "
            "a,b \"c\"\\x0ad         NULL  Inf\n"
            "(1 row)\n")
    ensure(text == want, "text output:\n%s\nwanted:\n%s" % (text, want))

    out = sql(path, query, "--format=csv").stdout
    blocks = out.decode().split("\r\n\r\n")
    ensure(len(blocks) == 2, "two CSV results, a blank line apart: %r" % out)
    r1 = list(csv.reader(io.StringIO(blocks[0], newline="")))
    ensure(r1 == [["id", "name", "parent", "self_ns"],
                  ["1", "outer", "", "70000"], ["2", "inner", "1", "30000"]],
           "CSV rows %r" % r1)
    r2 = list(csv.reader(io.StringIO(blocks[1], newline="")))
    ensure(r2[1] == ["0.1", "0.3333333333333333", "9223372036854775807", "-5",
                     'a,b "c"\nd', "", "", "Inf"], "CSV values %r" % r2)
    ensure(b',"",,Inf' in out, "CSV: '' quoted, NULL empty: %r" % out)

    out = sql(path, query, "--format=json").stdout.decode()
    docs, at = [], 0
    while at < len(out):
        doc, at = json.JSONDecoder().raw_decode(out, at)
        docs.append(doc)
        at += 1  # the line end after each array
    ensure(len(docs) == 2, "two JSON arrays: %r" % out)
    ensure(docs[0] == [{"id": 1, "name": "outer", "parent": None,
                        "self_ns": 70000},
                       {"id": 2, "name": "inner", "parent": 1,
                        "self_ns": 30000}], "JSON rows %r" % docs[0])
    r = docs[1][0]
    ensure(r["value"] == 0.1 and r["third"] == 1.0 / 3 and
           r["big"] == 9223372036854775807 and isinstance(r["big"], int) and
           r["neg"] == -5 and r["text"] == 'a,b "c"\nd' and r["empty"] == ""
           and r["nil"] is None and r["inf"] is None,
           "JSON values %r" % r)
    # Empty results and statements without rows.
    for fmt, want in (("text", "x\n-\n(0 rows)\n"), ("csv", "x\r\n"),
                      ("json", "[]\n")):
        got = sql(path, "CREATE TEMP TABLE t(x); INSERT INTO t VALUES(1); "
                  "SELECT x FROM t WHERE x > 1", "--format=" + fmt).stdout
        ensure(got.decode() == want, "%s, no rows: %r" % (fmt, got))
    got = sql(path, "CREATE TEMP TABLE t(x)").stdout
    ensure(got == b"", "a statement without rows prints nothing: %r" % got)
    # The table keeps widths measured on its first 1000 rows.
    text = sql(path, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 "
               "FROM c WHERE x < 1500) SELECT x FROM c").stdout.decode()
    lines = text.splitlines()
    ensure(len(lines) == 1503 and lines[2] == "   1" and
           lines[1001] == "1000" and lines[1002] == "1001" and
           lines[-1] == "(1500 rows)", "1500 rows in text: %r" % lines[:4])
    # Long values are cut in the table, whole in the others.
    long = "y" * 100
    got = sql(path, "SELECT '%s' AS v" % long).stdout.decode()
    ensure(got.splitlines()[2] == "y" * 60 + "...", "cut: %r" % got)
    got = sql(path, "SELECT '%s' AS v" % long, "--format=csv").stdout.decode()
    ensure(got == "v\r\n%s\r\n" % long, "CSV whole: %r" % got)


# ---------------------------------------------------------------------------
# --save


def count(db_path, table):
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
    finally:
        db.close()


def check_save(work):
    small = small_trace(work)
    g = Generated(3)
    big = os.path.join(work, "gen.json")
    write_trace(big, g.events)
    out = os.path.join(work, "out.sqlite")

    sql(small, "SELECT 1", "--save", out)
    ensure(count(out, "slices") == 2, "saved slices")
    # Replaced whole, by another trace.
    sql(big, "SELECT 1", "--save=" + out)
    ensure(count(out, "slices") == len(g.slices), "replaced database")
    # The statements run on the saved file: what they change stays.
    sql(small, "CREATE TABLE notes(x); INSERT INTO notes VALUES (42)",
        "--save", out)
    ensure(count(out, "notes") == 1 and count(out, "slices") == 2,
           "statements on the saved file")
    ensure(sorted(os.listdir(work)) == ["gen.json", "out.sqlite",
                                        "small.json"],
           "files left: %s" % os.listdir(work))

    # A failed load leaves the old database and no temporary file.
    bad = os.path.join(work, "bad.json")
    with open(bad, "w") as f:
        f.write('{"traceEvents":[{"ph":"X","ts":1,"dur":2} {}]}')
    p = sql(bad, "SELECT 1", "--save", out, rc=1)
    ensure(b"bad.json: byte " in p.stderr, "reader's message: %r" % p.stderr)
    ensure(count(out, "slices") == 2, "old database kept")
    ensure(sorted(os.listdir(work)) == ["bad.json", "gen.json", "out.sqlite",
                                        "small.json"], "files left: %s"
           % os.listdir(work))

    # Never over a file that is not an SQLite database.
    notes = os.path.join(work, "notes.txt")
    with open(notes, "w") as f:
        f.write("precious\n")
    p = sql(small, "SELECT 1", "--save", notes, rc=1)
    ensure(b"not an SQLite database; not overwritten" in p.stderr,
           "refusal: %r" % p.stderr)
    with open(notes) as f:
        ensure(f.read() == "precious\n", "the text file was changed")
    # An empty file may be replaced.
    empty = os.path.join(work, "empty.sqlite")
    open(empty, "w").close()
    sql(small, "SELECT 1", "--save", empty)
    ensure(count(empty, "slices") == 2, "empty file replaced")
    # Paths that cannot be written.
    for target, msg in ((os.path.join(work, "nodir", "x.sqlite"),
                         b"No such file or directory"),
                        (work, b"not a regular file")):
        p = sql(small, "SELECT 1", "--save", target, rc=1)
        ensure(msg in p.stderr and p.stdout == b"",
               "--save %s: %r" % (target, p.stderr))
    if os.geteuid() != 0:
        ro = os.path.join(work, "ro")
        os.mkdir(ro)
        os.chmod(ro, stat.S_IRUSR | stat.S_IXUSR)
        p = sql(small, "SELECT 1", "--save", os.path.join(ro, "x.sqlite"),
                rc=1)
        ensure(b"Permission denied" in p.stderr, "read-only: %r" % p.stderr)
        os.chmod(ro, stat.S_IRWXU)

    # SIGTERM while the trace is being read (from a pipe held open): the
    # old database stays, the temporary file goes.
    before = sorted(os.listdir(work))
    proc = subprocess.Popen([SP, "sql", "-", "SELECT 1", "--save", out],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=tc.clean_env())
    proc.stdin.write(b'{"traceEvents":[{"ph":"X","name":"a","ts":1,'
                     b'"dur":2,"pid":1,"tid":1},\n')
    proc.stdin.flush()
    deadline = time.time() + 20
    while (not any(n.endswith(".tmp") for n in os.listdir(work)) and
           time.time() < deadline):
        time.sleep(0.02)
    ensure(any(n.endswith(".tmp") for n in os.listdir(work)),
           "no temporary file while loading: %s" % os.listdir(work))
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    ensure(proc.returncode == -signal.SIGTERM,
           "exit after SIGTERM: %d" % proc.returncode)
    ensure(sorted(os.listdir(work)) == before,
           "after SIGTERM: %s" % os.listdir(work))
    ensure(count(out, "slices") == 2, "old database kept after SIGTERM")


# ---------------------------------------------------------------------------
# Real traces


CTX = decimal.Context(prec=80)


def to_ns(v):
    d = CTX.multiply(decimal.Decimal(v), 1000)
    return int(d.to_integral_value(rounding=decimal.ROUND_HALF_UP,
                                   context=CTX))


def ident(v):
    return v if isinstance(v, (str, int)) else None


def kineto_expected(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        doc = json.load(f, parse_float=decimal.Decimal)
    slices = collections.defaultdict(list)  # thread -> [(ts, -dur, i, ...)]
    names, marks = {}, collections.defaultdict(list)
    for i, ev in enumerate(doc["traceEvents"]):
        ph = ev.get("ph")
        th = (ident(ev.get("pid")), ident(ev.get("tid")))
        if ph == "M" and ev.get("name") == "thread_name":
            names[th] = ev["args"]["name"]
        elif ph == "X" and "dur" in ev and "ts" in ev:
            slices[th].append((to_ns(ev["ts"]), to_ns(ev["dur"]),
                               ev.get("name", ""), ev.get("cat", "")))
        elif ph in ("s", "t", "f") and "ts" in ev:
            key = (ev.get("cat", ""), str(ev.get("id", "")),
                   ev.get("name", ""))
            marks[key].append((to_ns(ev["ts"]), i, ph))
    per_name = collections.defaultdict(lambda: [0, 0, 0])
    depth_hist = collections.Counter()
    for th, sl in slices.items():
        sl.sort(key=lambda s: (s[0], -s[1]))  # stable: file order on ties
        child = [0] * len(sl)
        stack = []
        for i, (ts, dur, _, _) in enumerate(sl):
            while stack:
                p = sl[stack[-1]]
                if p[0] + p[1] < ts or (p[0] + p[1] == ts and dur > 0):
                    stack.pop()
                else:
                    break
            if stack:
                p = sl[stack[-1]]
                child[stack[-1]] += min(ts + dur, p[0] + p[1]) - ts
            depth_hist[len(stack)] += 1
            stack.append(i)
        for i, (ts, dur, name, cat) in enumerate(sl):
            e = per_name[(name, cat)]
            e[0] += 1
            e[1] += dur
            e[2] += max(0, dur - child[i])
    flows = arrived = 0
    for evs in marks.values():
        evs.sort()
        open_ = False
        for _, _, ph in evs:
            if open_:
                flows += 1
                arrived += ph != "s"
            open_ = ph != "f"
        flows += open_
    per_thread = {th: (len(sl), names.get(th)) for th, sl in slices.items()}
    return per_name, depth_hist, per_thread, flows, arrived


def check_kineto(work, folder):
    files = []
    for case in ("cpu_only", "ns_resolution", "trace_diff/control"):
        d = os.path.join(folder, case)
        if os.path.isdir(d):
            files += [os.path.join(d, f) for f in sorted(os.listdir(d))
                      if f.endswith(".json.gz")]
    if not files:
        raise tc.Skip("no Kineto traces in %s" % folder)
    for path in files:
        per_name, depth_hist, per_thread, flows, arrived = \
            kineto_expected(path)
        db_path = os.path.join(work, os.path.basename(path) + ".sqlite")
        got = rows(path, "SELECT name, category, count(*), sum(dur_ns), "
                   "sum(self_ns) FROM slices GROUP BY 1, 2", "--save", db_path)
        expect_rows(got, [k + tuple(v) for k, v in per_name.items()],
                    "%s: per name" % path)
        db = sqlite3.connect(db_path)
        got = [tuple(r) for r in db.execute(
            "SELECT depth, count(*) FROM slices GROUP BY 1")]
        expect_rows(got, list(depth_hist.items()), "%s: depths" % path)
        got = [tuple(r) for r in db.execute(
            "SELECT t.pid, t.tid, count(*), t.name FROM slices s "
            "JOIN threads t ON t.id = s.thread GROUP BY t.id")]
        expect_rows(got, [th + v for th, v in per_thread.items()],
                    "%s: threads" % path)
        got = db.execute("SELECT count(*), count(end_ns) FROM flows") \
            .fetchone()
        ensure(got == (flows, arrived), "%s: flows %s, wanted %s"
               % (path, got, (flows, arrived)))
        got = db.execute("SELECT value FROM metadata WHERE name = "
                         "'producer'").fetchone()
        ensure(got == ("pytorch",), "%s: producer %s" % (path, got))
        db.close()


# ---------------------------------------------------------------------------
# Errors and hostile names


def check_errors(work):
    path = small_trace(work)
    p = sql(path, "SELEC name FROM slices", rc=1)
    ensure(p.stdout == b"" and
           p.stderr == b'stageprof sql: near "SELEC": syntax error\n',
           "syntax error: %r" % p.stderr)
    p = sql(path, "SELECT * FROM nope", rc=1)
    ensure(p.stderr == b"stageprof sql: no such table: nope\n",
           "missing table: %r" % p.stderr)
    # The rows of the statements before the failing one are printed.
    p = sql(path, "SELECT count(*) AS n FROM slices; SELECT abs(-92233720"
            "36854775807 - 1)", "--format=csv", rc=1)
    ensure(p.stdout == b"n\r\n2\r\n" and b"integer overflow" in p.stderr,
           "run-time error: %r %r" % (p.stdout, p.stderr))
    # Corrupt: the reader's message with the place.
    bad = os.path.join(work, "bad.json")
    text = ('{"traceEvents":[\n{"ph":"X","ts":1,"dur":2},\n'
            '{"ph":"X" "ts":3}\n]}')
    with open(bad, "w") as f:
        f.write(text)
    at = text.index('"ts":3')  # where a ',' was due
    col = at - text.rindex("\n", 0, at)
    p = sql(bad, "SELECT 1", rc=1)
    want = b"stageprof sql: %s: byte %d (line 3, column %d): " % (
        bad.encode(), at, col)
    ensure(p.stderr.startswith(want) and p.stdout == b"",
           "corrupt trace: %r" % p.stderr)
    # Truncated: what came before the cut, with a warning.
    cut = os.path.join(work, "cut.json.gz")
    text = b'[{"ph":"X","name":"a","ts":1,"dur":2,"pid":1,"tid":1},\n' \
           b'{"ph":"X","name":"b","ts":5,"dur":2,"pid":1,"tid":1},\n' \
           b'{"ph":"X","name":"c","ts":'
    with gzip.open(cut, "wb") as f:
        f.write(text)
    p = sql(cut, "SELECT group_concat(name) AS n FROM slices; SELECT value "
            "FROM metadata WHERE name = 'truncated'", "--format=csv")
    ensure(p.stdout == b"n\r\n\"a,b\"\r\n\r\nvalue\r\n1\r\n" and
           b"truncated" in p.stderr, "truncated: %r %r" % (p.stdout,
                                                           p.stderr))
    # Missing, a directory, not JSON, a truncated gzip stream.
    for target, msg in ((os.path.join(work, "missing.json"),
                         b"No such file or directory"),
                        (work, b"Is a directory")):
        p = sql(target, "SELECT 1", rc=1)
        ensure(msg in p.stderr and target.encode() in p.stderr,
               "%s: %r" % (target, p.stderr))
    gz = os.path.join(work, "broken.json.gz")
    data = gzip.compress(b'{"traceEvents":[' + b'{"ph":"i","ts":1},' * 5000
                         + b'{"ph":"i","ts":1}]}')
    with open(gz, "wb") as f:
        f.write(data[:len(data) // 2])
    p = sql(gz, "SELECT 1", rc=1)
    ensure(b"gzip" in p.stderr, "broken gzip: %r" % p.stderr)


HOSTILE = [
    "it's \"quoted\"; DROP TABLE slices; --",
    "nul\x00inside",
    "esc\x1b[31mred\x1b[0m bell\x07 tab\t nl\n cr\r",
    "c1 \u009b csi",
    "wide 字 and 🙂",
    "long " + "x" * 200_000,
]


def check_hostile(work):
    path = os.path.join(work, "hostile.json")
    evs = [ev_text(ph="M", name="thread_name", pid=1, tid=1,
                   args={"name": HOSTILE[2]})]
    for i, name in enumerate(HOSTILE):
        evs.append(ev_text(ph="X", name=name, cat=HOSTILE[i - 1],
                           ts=i * 10_000, dur=5_000, pid=1, tid=1))
    # Invalid UTF-8 inside a name (bytes the JSON text holds raw).
    raw = b'{"ph":"X","name":"bad \xff\xfe utf8","cat":"c","ts":100,' \
          b'"dur":1,"pid":1,"tid":1}'
    with open(path, "wb") as f:
        f.write(b'{"traceEvents":[' + b",".join(e.encode() for e in evs) +
                b"," + raw + b"]}")
    db_path = os.path.join(work, "hostile.sqlite")
    sql(path, "SELECT 1", "--save", db_path)
    db = sqlite3.connect(db_path)
    db.text_factory = bytes
    got = [r[0] for r in db.execute("SELECT name FROM slices ORDER BY ts_ns")]
    want = [n.encode() for n in HOSTILE] + [b"bad \xff\xfe utf8"]
    ensure(got == want, "names not stored byte for byte: %r" %
           [g[:40] for g in got])
    got = [r[0] for r in db.execute("SELECT category FROM slices "
                                    "ORDER BY ts_ns LIMIT 6")]
    ensure(got == [HOSTILE[i - 1].encode() for i in range(6)], "categories")
    got = db.execute("SELECT name FROM threads").fetchone()[0]
    ensure(got == HOSTILE[2].encode(), "thread name %r" % got)
    db.close()
    # JSON: exact text (invalid UTF-8 as U+FFFD), valid JSON.
    doc = json.loads(sql(path, "SELECT name FROM slices ORDER BY ts_ns",
                         "--format=json").stdout)
    ensure([r["name"] for r in doc] == HOSTILE + ["bad \ufffd\ufffd utf8"],
           "JSON names")
    # Names as parameters in SQL: quotes are data.
    q = "SELECT count(*) AS n FROM slices WHERE name = '%s'" % \
        HOSTILE[0].replace("'", "''")
    ensure(rows(path, q) == [(1,)], "quoted name lookup")
    ensure(rows(path, "SELECT length(CAST(name AS BLOB)) FROM slices WHERE "
                "name LIKE 'nul%'") == [(len("nul\x00inside"),)],
           "a NUL inside a name keeps the length")
    # CSV: bytes as they are, quoted.
    out = sql(path, "SELECT name FROM slices WHERE ts_ns < 30000 "
              "ORDER BY ts_ns", "--format=csv").stdout
    ensure(out == b'name\r\n"it\'s ""quoted""; DROP TABLE slices; --"\r\n'
           b'"nul\x00inside"\r\n"' + HOSTILE[2].encode() + b'"\r\n',
           "CSV %r" % out[:300])
    # Text: no control byte reaches the terminal, long values are cut.
    out = sql(path, "SELECT name, category FROM slices").stdout
    ensure(not any(b < 0x20 and b != 0x0a for b in out) and
           b"\xc2\x9b" not in out and b"\xff" not in out,
           "control bytes in the table: %r" % out[:600])
    for frag in (b"nul\\x00inside", b"esc\\x1b[31mred", b"c1 \\u009b csi",
                 "wide 字 and 🙂".encode(), b"bad \\xff\\xfe utf8",
                 b"long " + b"x" * 55 + b"..."):
        ensure(frag in out, "%r not in the table" % frag)
    ensure(len(out) < 2000, "the long name was not cut: %d bytes" % len(out))


# ---------------------------------------------------------------------------
# The prompt


def check_prompt(work):
    path = small_trace(work)
    script = (b"SELECT 40 + 2\n  AS answer;\n"
              b".tables\n"
              b"SELEC 1;\n"
              b".schema runs\n"
              b".nothing\n"
              b".format csv\n"
              b"SELECT name FROM slices ORDER BY id;\n"
              b"-- a comment alone\n"
              b"\n"
              b".quit\n"
              b"SELECT 'not run';\n")
    p = sql(path, "-i", stdin=script)
    out, err = p.stdout.decode(), p.stderr.decode()
    ensure("sql> ...> answer\n------\n    42\n(1 row)\n" in out,
           "statement over two lines: %r" % out)
    ensure("args  async_slices  counters  flows  instants  metadata  "
           "processes  runs  slices  threads\n" in out, ".tables: %r" % out)
    ensure("CREATE TABLE runs(id INTEGER PRIMARY KEY" in out, ".schema")
    ensure('Error: near "SELEC": syntax error' in err and
           "unknown command .nothing" in err, "errors: %r" % err)
    ensure("name\r\nouter\r\ninner\r\n" in out and "not run" not in out,
           ".format csv, .quit: %r" % out)
    ensure(p.returncode == 0, "exit status")

    # A real terminal: the prompt without -i, Ctrl-C while typing and
    # while a statement runs.
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(SP, [SP, "sql", path], tc.clean_env())
    buf = b""

    def until(text, timeout=20):
        nonlocal buf
        deadline = time.time() + timeout
        while text not in buf:
            left = deadline - time.time()
            r, _, _ = select.select([fd], [], [], max(left, 0))
            if not r:
                raise tc.CheckError("pty: no %r in %r" % (text, buf[-500:]))
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise tc.CheckError("pty: end before %r in %r"
                                    % (text, buf[-500:]))
            buf += chunk
        at = buf.index(text) + len(text)
        seen, buf = buf[:at], buf[at:]
        return seen

    try:
        until(b"sql> ")
        os.write(fd, b"SELECT 6 * 7 AS answer;\n")
        until(b"42")
        until(b"sql> ")
        os.write(fd, b"SELECT 'half\n")
        until(b"...> ")
        os.write(fd, b"\x03")
        until(b"sql> ")
        os.write(fd, b"SELECT 'whole' AS w;\n")
        seen = until(b"sql> ")
        ensure(b"whole" in seen and b"half" not in seen.replace(
            b"SELECT 'half", b""), "Ctrl-C dropped the statement: %r" % seen)
        os.write(fd, b"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT "
                 b"x + 1 FROM c) SELECT count(*) FROM c;\n")
        time.sleep(0.5)
        os.write(fd, b"\x03")
        until(b"interrupted")
        until(b"sql> ")
        os.write(fd, b".quit\n")
        _, status = os.waitpid(pid, 0)
        ensure(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
               "pty exit status %r" % status)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


def check_stdin(work):
    path = small_trace(work)
    p = sql(path, "--format=csv", stdin=b"SELECT count(*) AS n FROM slices;"
            b"\nSELECT name FROM threads;\n")
    ensure(p.stdout == b"n\r\n2\r\n\r\nname\r\nmain\r\n",
           "statements from stdin: %r" % p.stdout)
    with open(path, "rb") as f:
        trace = f.read()
    p = sql("-", "SELECT sum(dur_ns) AS s FROM slices", "--format=json",
            stdin=trace)
    ensure(json.loads(p.stdout) == [{"s": 130000}], "trace from stdin: %r"
           % p.stdout)
    p = sql("-", stdin=trace, rc=2)
    ensure(b"give QUERY" in p.stderr, "both on stdin: %r" % p.stderr)
    p = sql(path, stdin=b"SELECT 1; SELEC 2;", rc=1)
    ensure(p.stdout.startswith(b"1\n-\n1\n(1 row)\n") and
           b"syntax error" in p.stderr, "error from stdin: %r" % p.stderr)


MODES = {"queries": check_queries, "formats": check_formats,
         "save": check_save, "errors": check_errors,
         "hostile": check_hostile, "prompt": check_prompt,
         "stdin": check_stdin}


def main():
    global SP
    if len(sys.argv) < 3 or (sys.argv[2] not in MODES and
                             sys.argv[2] != "kineto"):
        sys.exit("usage: check_sql.py STAGEPROF MODE [KINETO_DIR]")
    SP = os.path.abspath(sys.argv[1])
    mode = sys.argv[2]
    if mode == "kineto":
        folder = sys.argv[3] if len(sys.argv) > 3 else ""
        tc.main(lambda work: check_kineto(work, folder))
    tc.main(MODES[mode])


if __name__ == "__main__":
    main()
