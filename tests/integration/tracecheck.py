"""tracecheck.py - semantic checks of stageprof traces, shared by the
integration checkers (check_*.py).

A trace is parsed with Python's json module (not our code) in strict mode:
NaN/Infinity literals and duplicate keys are errors, numbers with a
fraction are kept as Decimal so "3 decimals" can be checked exactly. Times
are turned into integer nanoseconds.

The Trace class indexes the events; the check_* functions raise CheckError
with a message that names the offending event. Beside them are the helpers
the checkers share for running programs (a clean environment, skips) and
for making test pictures (a JPEG's size, read or rewritten). Each checker runs its
program in a fresh temporary directory (kept when the check fails) and
exits 0 on success, 1 on failure, 77 to skip.
"""

import collections
import decimal
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77

# Environment variables that would change a test program's behaviour.
PROFILER_ENV = ("STAGEPROF_", "ENABLE_WORKFLOWS_PROFILING",
                "WORKFLOWS_PROFILER_BUFFER_SIZE")

KNOWN_PHASES = set("XBEbesftCMi")


class CheckError(Exception):
    pass


class Skip(Exception):
    pass


def ensure(cond, msg):
    if not cond:
        raise CheckError(msg)


def short(ev):
    """An event, shortened for messages."""
    text = json.dumps(ev, default=str, sort_keys=True)
    return text if len(text) < 300 else text[:300] + "..."


# ---------------------------------------------------------------------------
# Running programs


def clean_env(drop=(), **extra):
    """This process's environment minus profiler settings and the
    variables starting with @drop (a prefix or a tuple of them: the checked
    program's own settings), with the resource sampler off (its counter
    tracks would join the traces checked), plus @extra (a value of None
    removes the variable)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(PROFILER_ENV) and not k.startswith(drop)}
    env["STAGEPROF_SAMPLE_HZ"] = "0"
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def need_path(path, why):
    """Skip the check unless @path exists; @why says what is missing."""
    if not os.path.exists(path):
        raise Skip(why)


def run(cmd, env=None, cwd=None, timeout=60, expect_rc=0):
    """Run @cmd; fail with its output unless it exits with @expect_rc."""
    try:
        p = subprocess.run(cmd, env=env if env is not None else clean_env(),
                           cwd=cwd, timeout=timeout, capture_output=True,
                           text=True, errors="replace")
    except subprocess.TimeoutExpired:
        raise CheckError("%s: no exit within %d s" % (cmd[0], timeout))
    if expect_rc is not None and p.returncode != expect_rc:
        raise CheckError("%s exited with %d, wanted %d\n--- stdout\n%s"
                         "--- stderr\n%s" % (" ".join(cmd), p.returncode,
                                             expect_rc, p.stdout, p.stderr))
    return p


def run_json(cmd, **kw):
    """Run a test program and parse the JSON object it prints last."""
    p = run(cmd, **kw)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    ensure(lines, "%s printed no JSON result:\n%s" % (cmd[0], p.stdout))
    try:
        return json.loads(lines[-1]), p
    except ValueError as e:
        raise CheckError("%s printed bad JSON (%s): %s" % (cmd[0], e,
                                                            lines[-1]))


def trace_files(d):
    """Trace files in directory @d (other files are reported too)."""
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, f) for f in os.listdir(d))


def only_trace(d):
    files = trace_files(d)
    ensure(len(files) == 1, "wanted exactly one file in %s, found %s"
           % (d, [os.path.basename(f) for f in files]))
    name = os.path.basename(files[0])
    ensure(name.startswith("workflow_execution_") and name.endswith(".json"),
           "unexpected trace file name %r" % name)
    return files[0]


def main(body):
    """Run body(workdir) in a fresh directory; exit 0, 1 or 77."""
    work = tempfile.mkdtemp(prefix="stageprof-it-")
    try:
        body(work)
    except Skip as e:
        print("SKIP: %s" % e)
        shutil.rmtree(work, ignore_errors=True)
        sys.exit(SKIP)
    except CheckError as e:
        print("FAIL: %s" % e)
        print("(files kept in %s)" % work)
        sys.exit(1)
    except Exception:  # a trace too broken for the checks' assumptions
        import traceback
        print("FAIL: checker error on this trace:\n%s"
              % traceback.format_exc())
        print("(files kept in %s)" % work)
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)
    print("PASS")
    sys.exit(0)


# ---------------------------------------------------------------------------
# Pictures


def _jpeg_frame_header(data):
    """Offset of the JPEG @data's frame header (SOF0..SOF2) marker."""
    i = 2
    while i + 9 < len(data):
        ensure(data[i] == 0xFF, "cannot walk the JPEG's markers")
        marker, seglen = data[i + 1], data[i + 2] << 8 | data[i + 3]
        if marker in (0xC0, 0xC1, 0xC2):
            return i
        i += 2 + seglen
    raise CheckError("no frame header in the JPEG")


def jpeg_size(data):
    """(width, height) from the JPEG's frame header."""
    i = _jpeg_frame_header(data)
    return data[i + 7] << 8 | data[i + 8], data[i + 5] << 8 | data[i + 6]


def jpeg_with_size(data, w, h):
    """@data with the frame header's size set to @w x @h."""
    i = _jpeg_frame_header(data)
    b = bytearray(data)
    b[i + 5:i + 9] = bytes([h >> 8, h & 255, w >> 8, w & 255])
    return bytes(b)


# ---------------------------------------------------------------------------
# Parsing


def _no_constants(name):
    raise ValueError("%s is not JSON" % name)


def _no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError("duplicate key %r" % k)
        obj[k] = v
    return obj


def is_num(v):
    return isinstance(v, (int, decimal.Decimal)) and not isinstance(v, bool)


def to_ns(v, what):
    """Microseconds with at most 3 decimals -> integer nanoseconds."""
    ensure(is_num(v), "%s is not a number: %r" % (what, v))
    n = decimal.Decimal(v) * 1000
    ensure(n == n.to_integral_value(),
           "%s = %s has more than 3 decimals (not whole ns)" % (what, v))
    return int(n)


def load(path):
    """Parse the trace at @path (gzip-compressed when it ends in .gz)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckError("%s is not UTF-8: %s" % (path, e))
    try:
        doc = json.loads(text, parse_float=decimal.Decimal,
                         parse_constant=_no_constants,
                         object_pairs_hook=_no_duplicates)
    except ValueError as e:
        raise CheckError("%s is not valid JSON: %s" % (path, e))
    ensure(isinstance(doc, dict), "trace is not in object form")
    ensure(isinstance(doc.get("traceEvents"), list),
           "trace has no traceEvents array")
    return Trace(doc, path)


# ---------------------------------------------------------------------------
# The indexed trace


class Slice:
    def __init__(self, ev, start, end):
        self.ev = ev
        self.name = ev.get("name")
        self.start = start
        self.end = end
        self.parent = None
        self.depth = 0


class Trace:
    def __init__(self, doc, path):
        self.doc = doc
        self.path = path
        self.events = doc["traceEvents"]
        self.meta = doc.get("stageprof")
        self.summary = doc.get("stageprof_summary")
        self.by_ph = collections.defaultdict(list)
        for ev in self.events:
            ensure(isinstance(ev, dict), "event is not an object: %r" % ev)
            self.by_ph[ev.get("ph")].append(ev)
        self.slices = {}  # tid -> [Slice], sorted by start

    def named(self, ph, name):
        return [e for e in self.by_ph[ph] if e.get("name") == name]

    def count(self, ph="X"):
        return collections.Counter(e.get("name") for e in self.by_ph[ph])

    def thread_names(self):
        return {e["tid"]: e["args"]["name"] for e in self.by_ph["M"]
                if e.get("name") == "thread_name"}

    def tids(self):
        return {e["tid"] for e in self.events if e.get("ph") != "M"}

    def enclosing(self, tid, ns):
        """Innermost slice on @tid containing @ns, or None."""
        best = None
        for s in self.slices.get(tid, []):
            if s.start <= ns <= s.end and (best is None or
                                           s.depth > best.depth):
                best = s
        return best


# ---------------------------------------------------------------------------
# Checks


def check_events(t):
    """Every event well-formed for its phase; times in whole ns."""
    pid = t.meta.get("pid") if isinstance(t.meta, dict) else None
    for ev in t.events:
        ph = ev.get("ph")
        ensure(ph in KNOWN_PHASES, "unknown phase in %s" % short(ev))
        ensure(isinstance(ev.get("pid"), int) and ev["pid"] == pid,
               "pid is not the process's (%s): %s" % (pid, short(ev)))
        ensure(isinstance(ev.get("tid"), int), "no tid: %s" % short(ev))
        if "args" in ev:
            ensure(isinstance(ev["args"], dict), "args not an object: %s"
                   % short(ev))
        if ph == "M":
            ensure(ev.get("name") in ("process_name", "thread_name",
                                      "thread_sort_index"),
                   "unknown metadata event %s" % short(ev))
            continue
        ts = to_ns(ev.get("ts"), "ts of %s" % short(ev))
        ensure(ts >= 0, "event before the time base: %s" % short(ev))
        if ph != "E":
            ensure(isinstance(ev.get("name"), str) and ev["name"] != "",
                   "no name: %s" % short(ev))
            ensure(isinstance(ev.get("cat"), str) and ev["cat"] != "",
                   "no cat: %s" % short(ev))
        if ph == "X":
            dur = to_ns(ev.get("dur"), "dur of %s" % short(ev))
            ensure(dur >= 0, "negative dur: %s" % short(ev))
        if ph in "besft":
            ensure(isinstance(ev.get("id"), str) and
                   ev["id"].startswith("0x"), "bad id: %s" % short(ev))
        if ph == "C":
            args = ev.get("args", {})
            ensure(set(args) == {"value"} and is_num(args["value"]),
                   "counter without a numeric value: %s" % short(ev))
        if ph == "i":
            ensure(ev.get("s") in ("t", "p", "g"), "instant scope: %s"
                   % short(ev))


def check_summary(t, complete=True):
    s = t.summary
    ensure(isinstance(s, dict), "no stageprof_summary (trace cut short?)")
    ensure(s.get("events_written") == len(t.events),
           "summary.events_written = %s but the trace holds %d events"
           % (s.get("events_written"), len(t.events)))
    for k in ("events_dropped", "events_dropped_total", "open_spans",
              "open_runs"):
        ensure(isinstance(s.get(k), int) and s[k] >= 0,
               "summary.%s missing or not a count: %r" % (k, s.get(k)))
    ensure(isinstance(s.get("misuse"), dict), "summary.misuse missing")
    ensure(s.get("complete") is complete, "summary.complete is %r, wanted %r"
           % (s.get("complete"), complete))


def check_metadata(t, argv, t_before_ns, t_after_ns, version=None):
    """Top-level metadata describes this host and this run."""
    m = t.meta
    ensure(isinstance(m, dict), "no top-level stageprof object")
    if version is not None:
        ensure(m.get("version") == version, "version %r, library says %r"
               % (m.get("version"), version))
    import socket
    ensure(m.get("host") == socket.gethostname(), "host %r, wanted %r"
           % (m.get("host"), socket.gethostname()))
    cores = os.sysconf("SC_NPROCESSORS_ONLN")
    ensure(m.get("cores") == cores, "cores %r, wanted %d"
           % (m.get("cores"), cores))
    kernel = "%s %s" % (os.uname().sysname, os.uname().release)
    ensure(m.get("kernel") == kernel, "kernel %r, wanted %r"
           % (m.get("kernel"), kernel))
    ensure(m.get("command_line") == list(argv), "command_line %r, wanted %r"
           % (m.get("command_line"), list(argv)))
    clock = m.get("clock")
    ensure(isinstance(clock, dict) and clock.get("source") in
           ("tsc", "monotonic"), "clock.source %r" % (clock,))
    cfg = m.get("config")
    ensure(isinstance(cfg, dict), "no config in the metadata")
    for k in ("enable", "dir", "buffer_bytes", "categories", "sources"):
        ensure(k in cfg, "config.%s missing" % k)
    tb = t.doc.get("time_base")
    ensure(isinstance(tb, dict) and isinstance(tb.get("unix_ns"), int) and
           isinstance(tb.get("monotonic_ns"), int), "bad time_base %r" % tb)
    # Same clocks as Python's: the base lies within the program's lifetime.
    ensure(t_before_ns[1] <= tb["monotonic_ns"] <= t_after_ns[1],
           "time_base.monotonic_ns %d outside the run [%d, %d]"
           % (tb["monotonic_ns"], t_before_ns[1], t_after_ns[1]))
    ensure(t_before_ns[0] - 10**9 <= tb["unix_ns"] <= t_after_ns[0] + 10**9,
           "time_base.unix_ns %d outside the run" % tb["unix_ns"])
    last = max((to_ns(e["ts"], "ts") for e in t.events if e["ph"] != "M"),
               default=0)
    ensure(tb["monotonic_ns"] + last <= t_after_ns[1],
           "an event lies after the program ended (ts %d ns)" % last)


def now_pair():
    return (time.time_ns(), time.monotonic_ns())


def check_nesting(t, parents=None):
    """Slices on each thread nest properly; build the slice tree.

    @parents maps a slice name to the name its parent must have (None: top
    level); names not in the map are not constrained.
    """
    if t.by_ph["B"] or t.by_ph["E"]:
        raise CheckError("unexpected B/E events (open spans): %s"
                         % short((t.by_ph["B"] + t.by_ph["E"])[0]))
    per = collections.defaultdict(list)
    for ev in t.by_ph["X"]:
        start = to_ns(ev["ts"], "ts")
        per[ev["tid"]].append(Slice(ev, start, start + to_ns(ev["dur"],
                                                             "dur")))
    for tid, slices in per.items():
        # Parents first when they start together: longer first.
        slices.sort(key=lambda s: (s.start, -(s.end - s.start)))
        stack = []
        for s in slices:
            # A slice that starts where the top one ends is its sibling,
            # unless it is empty (then it lies inside, at the very end).
            while stack and (stack[-1].end < s.start or
                             (stack[-1].end == s.start and s.end > s.start)):
                stack.pop()
            if stack:
                p = stack[-1]
                ensure(s.end <= p.end,
                       "slices overlap without nesting on tid %d:\n  %s\n  %s"
                       % (tid, short(p.ev), short(s.ev)))
                s.parent = p
                s.depth = p.depth + 1
            stack.append(s)
        t.slices[tid] = slices
    if parents:
        for slices in t.slices.values():
            for s in slices:
                if s.name not in parents:
                    continue
                want = parents[s.name]
                got = s.parent.name if s.parent else None
                ensure(got == want, "%r should be inside %r, is inside %r: %s"
                       % (s.name, want, got, short(s.ev)))


def check_expect_run(t):
    """Events carrying an expect_run argument carry exactly that run."""
    n = 0
    for ev in t.events:
        args = ev.get("args") or {}
        if "expect_run" not in args:
            continue
        n += 1
        want = args["expect_run"]
        if want == 0:
            ensure("run" not in args, "event outside any run carries "
                   "args.run: %s" % short(ev))
        else:
            ensure(args.get("run") == want, "event should carry run %d: %s"
                   % (want, short(ev)))
    return n


def check_flows(t, inside=None):
    """Each flow start has one end: same id, cat and name, on another
    thread, both inside a slice of their thread (named per @inside, a
    (start_slice_name, end_slice_name) pair). Returns {id: (s, f)}."""
    starts, ends = {}, {}
    for ph, table in (("s", starts), ("f", ends)):
        for ev in t.by_ph[ph]:
            key = (ev["id"], ev["cat"], ev["name"])
            ensure(key not in table, "flow %s twice: %s" % (ph, short(ev)))
            table[key] = ev
    ensure(set(starts) == set(ends), "flow starts and ends differ: "
           "starts only %s, ends only %s"
           % (sorted(set(starts) - set(ends))[:5],
              sorted(set(ends) - set(starts))[:5]))
    for key, s in starts.items():
        f = ends[key]
        ensure(s["tid"] != f["tid"], "flow ends on its own thread: %s"
               % short(s))
        ts, tf = to_ns(s["ts"], "ts"), to_ns(f["ts"], "ts")
        ensure(ts <= tf, "flow ends before it starts: %s %s"
               % (short(s), short(f)))
        ensure(f.get("bp") == "e", "flow end not bound to its enclosing "
               "slice: %s" % short(f))
        for ev, ns, want in ((s, ts, inside and inside[0]),
                             (f, tf, inside and inside[1])):
            sl = t.enclosing(ev["tid"], ns)
            ensure(sl is not None, "flow event outside any slice: %s"
                   % short(ev))
            if want:
                ensure(sl.name == want, "flow event inside %r, wanted %r: %s"
                       % (sl.name, want, short(ev)))
    return {k[0]: (s, ends[k]) for k, s in starts.items()}


def check_async(t, allow_open=0, orphan_ends=()):
    """b/e pairs match by cat, id and name; e after b. Returns the pairs
    {(cat, id, name): (b, e)}; at most @allow_open b without e, and no e
    without b but those keyed in @orphan_ends."""
    begins, ends = {}, {}
    for ph, table in (("b", begins), ("e", ends)):
        for ev in t.by_ph[ph]:
            key = (ev["cat"], ev["id"], ev["name"])
            ensure(key not in table, "async %s twice: %s" % (ph, short(ev)))
            table[key] = ev
    for key, e in ends.items():
        if key in orphan_ends:
            ensure(key not in begins, "run %r was begun after all" % (key,))
            continue
        ensure(key in begins, "async end without a begin: %s" % short(e))
        ensure(to_ns(begins[key]["ts"], "ts") <= to_ns(e["ts"], "ts"),
               "async end before its begin: %s" % short(e))
    open_ = [k for k in begins if k not in ends]
    ensure(len(open_) <= allow_open, "%d async begins without an end, e.g. %s"
           % (len(open_), short(begins[open_[0]]) if open_ else ""))
    return {k: (b, ends.get(k)) for k, b in begins.items()}


def check_thread_names(t, expected=None):
    """Every thread that recorded is named; names are @expected if given."""
    names = t.thread_names()
    for tid in t.tids():
        ensure(tid in names, "tid %d recorded events but has no thread_name"
               % tid)
    if expected is not None:
        got = sorted(names[tid] for tid in t.tids())
        ensure(got == sorted(expected), "thread names %s, wanted %s"
               % (got, sorted(expected)))
    procs = [e for e in t.by_ph["M"] if e["name"] == "process_name"]
    ensure(len(procs) == 1, "wanted one process_name event, got %d"
           % len(procs))
    return names


def check_counts(t, want, ph="X"):
    got = t.count(ph)
    for name, n in want.items():
        ensure(got.get(name, 0) == n, "%d %r %s events, wanted %d"
               % (got.get(name, 0), name, ph, n))


def check_frame_pipeline(t, names, frames, reader_stages, depth_max):
    """A reader thread hands frames to worker-N threads through a queue:
    one run "frame" per frame, begun on the reader and ended on the worker
    that recorded the frame's other spans, every span of a run inside its
    begin and end; one flow per frame from a queue_push span on the reader
    to a queue_pop span on a worker; the queue_depth counter twice per
    frame, within 0..@depth_max, on those threads. Returns the run pairs
    {(cat, id, name): (b, e)}."""
    pairs = check_async(t)
    ensure({int(k[1], 16) for k in pairs} == frames and
           all(k[0] == "run" and k[2] == "frame" for k in pairs),
           "runs %r" % sorted(pairs)[:5])
    per_run = collections.defaultdict(list)
    for ev in t.by_ph["X"]:
        r = ev.get("args", {}).get("run")
        if r is not None:
            per_run[r].append(ev)
    for (cat, hid, name), (b, e) in pairs.items():
        rid = int(hid, 16)
        ensure(names[b["tid"]] == "reader" and
               names[e["tid"]].startswith("worker-"),
               "run %d goes %s -> %s" % (rid, names[b["tid"]],
                                         names[e["tid"]]))
        workers = {names[x["tid"]] for x in per_run[rid]
                   if x["name"] not in reader_stages}
        ensure(workers == {names[e["tid"]]}, "frame %d's stages on %r, its "
               "run ended on %s" % (rid, workers, names[e["tid"]]))
        lo, hi = to_ns(b["ts"], "ts"), to_ns(e["ts"], "ts")
        for x in per_run[rid]:
            xs = to_ns(x["ts"], "ts")
            ensure(lo <= xs and xs + to_ns(x["dur"], "dur") <= hi,
                   "span outside its frame's run: %s" % short(x))

    flows = check_flows(t, inside=("queue_push", "queue_pop"))
    ensure({int(i, 16) for i in flows} == frames, "flow ids %r"
           % sorted(flows)[:5])
    for s_ev, f_ev in flows.values():
        ensure(names[s_ev["tid"]] == "reader" and
               names[f_ev["tid"]].startswith("worker-"),
               "flow goes %s -> %s" % (names[s_ev["tid"]],
                                       names[f_ev["tid"]]))

    depth = t.named("C", "queue_depth")
    ensure(len(depth) == 2 * len(frames), "%d queue_depth samples"
           % len(depth))
    ensure(all(isinstance(e["args"]["value"], int) and
               0 <= e["args"]["value"] <= depth_max for e in depth),
           "queue_depth out of range")
    ensure(all(names[e["tid"]] == "reader" or
               names[e["tid"]].startswith("worker-") for e in depth),
           "queue_depth recorded by the wrong thread")
    return pairs
