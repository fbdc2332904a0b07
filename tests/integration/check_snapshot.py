#!/usr/bin/env python3
"""check_snapshot.py PROGRAM MODE - snapshots, gzip and retention.

signals    STAGEPROF_SNAPSHOT_SIGNAL=USR2: while two threads of it_snapshot
           record, SIGUSR2 is sent in 20 bursts of 50, 0.1 s apart. The process
           must live and exit normally; snapshots must appear (fewer than
           the signals: requests during a write coalesce), each a whole
           trace whose events are a prefix of what the final trace holds;
           the final trace holds every span recorded.
gzip       STAGEPROF_GZIP=1: the snapshot and the final trace are .json.gz
           files that Python's gzip module opens, holding valid JSON with
           every event.
retention  STAGEPROF_MAX_FILES=2: of six files only the last two remain;
           a file of someone else's, named like a trace, is untouched.

Every trace states its overhead (cost per event, events, share of time).
"""
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time

import tracecheck as tc
from tracecheck import ensure

BURSTS, PER_BURST = 20, 50

NAME = re.compile(r"workflow_execution_(\d{4}(?:_\d\d){5})_(\d+)(?:_(\d+))?"
                  r"\.json(\.gz)?$")


def write_order(path):
    """Sort key: the stamp, then the same-second suffix."""
    m = NAME.search(os.path.basename(path))
    ensure(m, "unexpected trace file name %r" % path)
    return (m.group(1), int(m.group(3) or 0))


def traces(d):
    return sorted((f for f in tc.trace_files(d) if NAME.search(f)),
                  key=write_order)


def num(v):
    return tc.is_num(v) or isinstance(v, float)


def check_overhead(t):
    o = t.summary.get("overhead")
    ensure(isinstance(o, dict) and set(o) == {"ns_per_event", "events",
                                             "recording_share"},
           "summary.overhead %r" % (o,))
    ensure(num(o["ns_per_event"]) and 0 < o["ns_per_event"] < 1e5,
           "overhead.ns_per_event %r" % o["ns_per_event"])
    ensure(isinstance(o["events"], int) and
           o["events"] >= t.summary["events_written"],
           "overhead.events %r below the file's %d events"
           % (o["events"], t.summary["events_written"]))
    ensure(num(o["recording_share"]) and
           0 < o["recording_share"] < 1, "overhead.recording_share %r"
           % o["recording_share"])


class Quick:
    """A snapshot parsed with the json module as it is."""

    def __init__(self, path):
        with open(path, "rb") as f:
            doc = json.loads(f.read())
        self.path = path
        self.meta = doc["stageprof"]
        self.summary = doc["stageprof_summary"]
        self.events = doc["traceEvents"]

    def thread_names(self):
        return {e["tid"]: e["args"]["name"] for e in self.events
                if e["ph"] == "M" and e["name"] == "thread_name"}

    def named(self, ph, name):
        return [e for e in self.events
                if e["ph"] == ph and e.get("name") == name]


def spans_by_thread(t):
    names = t.thread_names()
    per = {}
    for ev in t.named("X", "work"):
        per.setdefault(names[ev["tid"]], []).append(ev["args"]["i"])
    return per


def signals(prog, work):
    env = tc.clean_env(STAGEPROF_SNAPSHOT_SIGNAL="USR2",
                       STAGEPROF_BUFFER_RUNS="0")
    p = subprocess.Popen([prog, "signals", work], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        ensure(p.stdout.readline().strip() == "ready",
               "it_snapshot did not get ready")
        # Bursts: most signals of a burst arrive while the snapshot the
        # first one asked for is being written.
        sent = 0
        for burst in range(BURSTS):
            for _ in range(PER_BURST):
                os.kill(p.pid, signal.SIGUSR2)
                sent += 1
            time.sleep(0.1)
            ensure(p.poll() is None, "the process died of the signals "
                   "(exit %r)" % p.returncode)
        out, err = p.communicate(input="", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    ensure(p.returncode == 0, "exit %d, stderr:\n%s" % (p.returncode, err))
    res = json.loads([l for l in out.splitlines()
                         if l.startswith("{")][-1])

    files = traces(work)
    ensure(len(tc.trace_files(work)) == len(files),
           "other files left: %s" % tc.trace_files(work))
    # The final trace gets every check; the many snapshots are parsed with
    # the plain (fast) json module.
    final = tc.load(files[-1])
    ensure(final.meta["final"] is True, "the last file is not the final "
           "trace: %s" % files[-1])
    snaps = [Quick(f) for f in files[:-1]]
    ensure(all(t.meta["final"] is False for t in snaps),
           "a final trace before the last file")
    ensure(BURSTS <= len(snaps) <= sent // 5, "%d snapshots for %d signals "
           "in %d bursts" % (len(snaps), sent, BURSTS))
    st = res["stats"]
    ensure(st["traces_written"] == len(files) and st["write_errors"] == 0,
           "stats %r, %d files" % (st, len(files)))

    want = res["spans"]
    tc.check_events(final)
    tc.check_summary(final, complete=True)
    tc.check_nesting(final, {"work": None, "step": "work"})
    per = spans_by_thread(final)
    for who, n in want.items():
        ensure(sorted(per.get(who, [])) == list(range(n)),
               "final trace: %s has %d of %d spans"
               % (who, len(per.get(who, [])), n))
    # Each snapshot: whole, and a prefix of each thread's spans, growing.
    seen = {who: 0 for who in want}
    for t in snaps:
        ensure(t.summary["events_written"] == len(t.events),
               "%s: summary.events_written %d, %d events"
               % (t.path, t.summary["events_written"], len(t.events)))
        check_overhead(t)
        for who, its in spans_by_thread(t).items():
            ensure(sorted(its) == list(range(len(its))),
                   "%s: snapshot %s is not a prefix" % (who, t.path))
            ensure(len(its) >= seen[who], "%s: snapshot %s has fewer spans "
                   "than the one before" % (who, t.path))
            seen[who] = len(its)
    check_overhead(final)
    print("%d signals, %d snapshots" % (sent, len(snaps)))


def gz(prog, work):
    res, _ = tc.run_json([prog, "gzip", work],
                         env=tc.clean_env(STAGEPROF_GZIP="1",
                                          STAGEPROF_BUFFER_RUNS="0"))
    files = tc.trace_files(work)
    ensure(sorted(files) == sorted([res["snapshot"], res["final"]]),
           "files %s" % files)
    for path, n, final in ((res["snapshot"], res["snap_spans"], False),
                           (res["final"],
                            res["snap_spans"] + res["rest_spans"], True)):
        ensure(path.endswith(".json.gz"), "not a .json.gz name: %s" % path)
        with gzip.open(path, "rb") as f:
            text = f.read().decode("utf-8")
        ensure(text.endswith("}}\n"), "%s does not end the trace" % path)
        t = tc.load(path)
        tc.check_events(t)
        tc.check_summary(t, complete=True)
        tc.check_nesting(t, {"work": None, "step": "work"})
        tc.check_counts(t, {"work": n, "step": n})
        ensure(t.meta["final"] is final, "%s: final %r" %
               (path, t.meta["final"]))
        check_overhead(t)
        ensure(os.path.getsize(path) * 4 < len(text), "%s is not compressed"
               % path)


def retention(prog, work):
    d = os.path.join(work, "traces")
    os.mkdir(d)
    foreign = os.path.join(d, "workflow_execution_2000_01_01_00_00_00_1.json")
    with open(foreign, "w") as f:
        f.write('{"traceEvents":[]}\n')
    res, _ = tc.run_json([prog, "retention", d],
                         env=tc.clean_env(STAGEPROF_MAX_FILES="2"))
    paths = [list(p.values())[0] for p in res["paths"]]
    ensure(len(paths) == 6 and len(set(paths)) == 6, "paths %r" % paths)
    left = sorted(tc.trace_files(d))
    ensure(left == sorted(paths[-2:] + [foreign]),
           "left %s, wanted the last two and the foreign file" % left)
    for path in paths[-2:]:
        t = tc.load(path)
        tc.check_summary(t, complete=True)
        check_overhead(t)


def body(work):
    prog, mode = sys.argv[1], sys.argv[2]
    {"signals": signals, "gzip": gz, "retention": retention}[mode](prog,
                                                                    work)


if __name__ == "__main__":
    tc.main(body)
