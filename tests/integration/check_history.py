#!/usr/bin/env python3
"""check_history.py STAGEPROF MODE - `stageprof history` end to end.

Traces are written here in the layout stageprof writes, with durations
drawn from a seeded generator in whole nanoseconds, so every figure the
history stores can be computed here exactly (type 7 percentiles, as the
report computes them).

MODE:
  roundtrip   add (one trace, several traces as one entry, a directory,
              labels, the default file and $STAGEPROF_HISTORY_DB), list
              and show in text and JSON, against figures computed here;
              the schema (version, application id, tables) read back with
              Python's sqlite3; show --html: written, no script, hostile
              stage names escaped.
  check       30 entries of a stable noisy workload: check stays quiet at
              the end and (at most one false alarm in all) along the way;
              its band agrees with median +/- max(K x 1.4826 x MAD, 5%)
              computed here; a step in one stage fires (exit 1) naming that
              stage; too little history is said so (exit 0); --window,
              --k, --label filters.
  migrate     a file of schema version 1 (written here with that
              version's schema): read as it is, migrated to version 2 by
              the next add (its rows kept, digests from then on), a failed
              migration leaving it byte for byte as it was; the same file
              added twice is said so.
  concurrent  8 processes adding 10 entries each at once, while others
              list: every add succeeds, every row is there once, and the
              file passes SQLite's integrity check.
  badinput    a file of garbage bytes, a newer schema, another program's
              database, a database locked by another process (waited for,
              then refused; nothing lost), a read-only file and a
              read-only directory (run as an unprivileged user when this
              runs as root), bad labels and options, an unknown stage, an
              unreadable trace among good ones: each a clear message, the
              exit status documented, the file byte for byte as it was.

Exit status: 0 pass, 1 fail, 77 skip.
"""
import hashlib
import json
import math
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tracecheck as tc  # noqa: E402
from tracecheck import ensure  # noqa: E402

CLI = None

STAGES = {"load": ("io", 3000.0), "resize": ("preprocess", 5000.0),
          "infer": ("compute", 20000.0), "nms": ("postprocess", 1500.0)}


# ---------------------------------------------------------------------------
# Traces and the figures expected from them


def q7(values, q):
    """Type 7 quantile (the report's percentiles)."""
    v = sorted(values)
    h = (len(v) - 1) * q
    lo = math.floor(h)
    if lo + 1 >= len(v):
        return float(v[-1])
    return v[lo] + (h - lo) * (v[lo + 1] - v[lo])


def summary(durs):
    return {"count": len(durs), "total": sum(durs),
            "mean": sum(durs) / len(durs), "p50": q7(durs, 0.5),
            "p95": q7(durs, 0.95), "p99": q7(durs, 0.99)}


def write_trace(path, seed, runs=40, scale=None, names=None, host="box1",
                sigma=0.15):
    """A stageprof trace of @runs runs through STAGES, log-normal
    durations in whole ns; @scale maps a stage to a factor, @names renames
    stages. Returns the expected figures: per (name, category) and for
    the runs."""
    rng = random.Random(seed)
    drift = math.exp(rng.gauss(0, 0.02))
    ev = [{"ph": "M", "name": "thread_name", "pid": 1, "tid": 1,
           "args": {"name": "worker"}}]
    durs = {}
    lat = []
    t = 1_000_000  # ns
    first = t
    for r in range(1, runs + 1):
        begin = t
        ev.append({"ph": "b", "name": "request", "cat": "run", "id": hex(r),
                   "ts": t / 1000, "pid": 1, "tid": 1, "args": {"run": r}})
        for name, (cat, us) in STAGES.items():
            d = int(us * 1000 * drift * math.exp(rng.gauss(0, sigma)))
            d = int(d * (scale or {}).get(name, 1.0))
            shown = (names or {}).get(name, name)
            ev.append({"ph": "X", "name": shown, "cat": cat, "ts": t / 1000,
                       "dur": d / 1000, "pid": 1, "tid": 1,
                       "args": {"run": r}})
            durs.setdefault((shown, cat), []).append(d)
            t += d + 5000
        ev.append({"ph": "e", "name": "request", "cat": "run", "id": hex(r),
                   "ts": t / 1000, "pid": 1, "tid": 1, "args": {"run": r}})
        lat.append(t - begin)
        last = t
        t += 100_000
    doc = {"traceEvents": ev,
           "stageprof": {"format": 1, "version": "0.1.0", "pid": 1,
                         "host": host, "cpu_model": "Test CPU", "cores": 4,
                         "kernel": "Linux 6.1",
                         "command_line": ["./pipe", "--runs", str(runs)],
                         "clock": {"source": "tsc"},
                         "config": {"enable": 1, "buffer_runs": 64}},
           "stageprof_summary": {"complete": True,
                                 "events_dropped_total": 0}}
    with open(path, "w") as f:
        json.dump(doc, f)
    exp = {k: summary(v) for k, v in durs.items()}
    exp["runs"] = summary(lat)
    exp["runs"]["throughput"] = len(lat) * 1e9 / (last - first)
    return exp


# ---------------------------------------------------------------------------
# Running the command


def run(args, rc=0, env=None, timeout=120, user=None, cwd=None):
    kw = {}
    if user is not None:
        kw["user"] = user
        kw["group"] = user
        kw["extra_groups"] = []
    p = subprocess.run([CLI, "history"] + args, capture_output=True,
                       text=True, timeout=timeout, cwd=cwd,
                       env=env if env is not None else tc.clean_env(),
                       errors="replace", **kw)
    if rc is not None and p.returncode != rc:
        raise tc.CheckError(
            "stageprof history %s: exit %d, wanted %d\nstdout:\n%s\n"
            "stderr:\n%s" % (" ".join(args), p.returncode, rc,
                             p.stdout[-3000:], p.stderr[-2000:]))
    return p


def run_json(args, rc=0, **kw):
    p = run(args + ["--format", "json"], rc, **kw)
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        raise tc.CheckError("history %s --format json: bad JSON (%s):\n%s"
                            % (" ".join(args), e, p.stdout[:2000]))


def close(a, b, what, rel=1e-9):
    ensure(a is not None and b is not None and
           abs(a - b) <= rel * max(abs(a), abs(b), 1.0),
           "%s: %r, expected %r" % (what, a, b))


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def rows(db, sql):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def added_id(p):
    words = p.stdout.split()
    ensure(words[:2] == ["added", "entry"],
           "add printed %r, not 'added entry N ...'" % p.stdout)
    return int(words[2])


# ---------------------------------------------------------------------------
# roundtrip


def check_schema(db):
    con = sqlite3.connect(db)
    try:
        ensure(con.execute("PRAGMA user_version").fetchone()[0] == 2,
               "schema version is not 2")
        ensure(con.execute("PRAGMA application_id").fetchone()[0]
               == 0x73706831, "application id is not 'sph1'")
        tables = {r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        ensure(tables == {"entries", "labels", "traces", "stages"},
               "tables %s" % sorted(tables))
        cols = {t: [r[1] for r in con.execute("PRAGMA table_info(%s)" % t)]
                for t in tables}
        for t, want in {
                "entries": ["id", "added_at", "stageprof_version"],
                "labels": ["entry_id", "key", "value"],
                "stages": ["trace_id", "name", "category", "async", "count",
                           "total_ns", "mean_ns", "p50_ns", "p95_ns",
                           "p99_ns"]}.items():
            ensure(cols[t] == want, "%s columns %s" % (t, cols[t]))
        for c in ("entry_id", "seq", "path", "producer", "host", "cpu_model",
                  "cores", "kernel", "version", "clock", "config",
                  "command_line", "runs", "run_p95_ns", "throughput",
                  "digest"):
            ensure(c in cols["traces"], "traces has no column %s" % c)
        ensure(con.execute("PRAGMA journal_mode").fetchone()[0] == "delete",
               "journal mode is not the rollback journal")
    finally:
        con.close()


def mode_roundtrip(work):
    db = os.path.join(work, "h.sqlite")
    t1 = os.path.join(work, "one.json")
    e1 = write_trace(t1, 1)
    p = run(["add", t1, "--db", db, "--label", "commit=abc123",
             "--label", "branch=main"])
    ensure(added_id(p) == 1, "first entry is not 1: %r" % p.stdout)
    check_schema(db)

    # Three repetitions as one entry, given as a directory.
    reps = os.path.join(work, "reps")
    os.makedirs(reps)
    e_reps = [write_trace(os.path.join(reps, "r%d.json" % i), 10 + i,
                          runs=30 + 10 * i, host="box2") for i in range(3)]
    p = run(["add", reps, "--db", db, "--label", "commit=def456",
             "--label", "note=three reps, one entry"])
    ensure(added_id(p) == 2 and "3 traces" in p.stdout, p.stdout)

    # Stored rows: one per stage per trace, figures as computed here.
    st = rows(db, "SELECT t.seq, s.name, s.category, s.count, s.total_ns,"
                  " s.mean_ns, s.p50_ns, s.p95_ns, s.p99_ns FROM stages s"
                  " JOIN traces t ON t.id = s.trace_id WHERE t.entry_id = 1")
    ensure(len(st) == len(STAGES), "entry 1 holds %d stage rows" % len(st))
    for seq, name, cat, count, total, mean, p50, p95, p99 in st:
        x = e1[(name, cat)]
        ensure(count == x["count"] and total == x["total"],
               "%s count/total %d/%d, expected %d/%d"
               % (name, count, total, x["count"], x["total"]))
        for k, v in (("mean", mean), ("p50", p50), ("p95", p95),
                     ("p99", p99)):
            close(v, x[k], "%s %s" % (name, k))
    tr = rows(db, "SELECT entry_id, seq, path, producer, host, cpu_model,"
                  " cores, kernel, clock, command_line, runs, run_p50_ns,"
                  " run_p95_ns, run_p99_ns, run_mean_ns, throughput,"
                  " complete, dropped FROM traces ORDER BY entry_id, seq")
    ensure(len(tr) == 4, "%d trace rows, expected 4" % len(tr))
    for row, x in zip(tr, [e1] + e_reps):
        (entry, seq, path, producer, host, cpu, cores, kernel, clock, cmd,
         nruns, p50, p95, p99, mean, thr, complete, dropped) = row
        ensure(os.path.isabs(path) and os.path.exists(path),
               "stored path %r" % path)
        ensure(producer == "stageprof" and cpu == "Test CPU" and cores == 4
               and kernel == "Linux 6.1" and clock == "tsc"
               and cmd.startswith("./pipe --runs") and complete == 1
               and dropped == 0, "trace metadata %r" % (row,))
        ensure(host == ("box1" if entry == 1 else "box2"), "host %r" % host)
        r = x["runs"]
        ensure(nruns == r["count"], "runs %d, expected %d"
               % (nruns, r["count"]))
        close(p50, r["p50"], "runs p50")
        close(p95, r["p95"], "runs p95")
        close(p99, r["p99"], "runs p99")
        close(mean, r["mean"], "runs mean")
        close(thr, r["throughput"], "throughput", rel=1e-6)

    # list: JSON and text.
    doc = run_json(["list", "--db", db])
    ents = doc["entries"]
    ensure([e["id"] for e in ents] == [1, 2], "list ids %r" % ents)
    ensure(ents[0]["labels"] == {"branch": "main", "commit": "abc123"},
           "labels %r" % ents[0]["labels"])
    ensure(ents[1]["labels"]["note"] == "three reps, one entry",
           "label with spaces %r" % ents[1]["labels"])
    ensure(len(ents[1]["traces"]) == 3 and
           all(t["stages"] == len(STAGES) and t["complete"] is True
               and t["truncated"] is False for t in ents[1]["traces"]),
           "entry 2 traces %r" % ents[1]["traces"])
    t0 = ents[0]["traces"][0]
    ensure(t0["runs"] == 40 and t0["host"] == "box1" and t0["seq"] == 0 and
           t0["producer"] == "stageprof", "entry 1 trace %r" % t0)
    for k in ("mean", "p50", "p95", "p99"):
        close(t0["run_%s_ns" % k], e1["runs"][k], "list run_%s_ns" % k,
              rel=1e-15)
    text = run(["list", "--db", db]).stdout
    ensure("commit=abc123" in text and "box2" in text, "list text:\n" + text)
    filt = run_json(["list", "--db", db, "--label", "commit=def456"])
    ensure([e["id"] for e in filt["entries"]] == [2],
           "--label filter %r" % filt)

    # show: the entry's figure is the median over its traces.
    for stat in ("p50", "p95", "p99", "mean"):
        doc = run_json(["show", "--db", db, "--stage", "infer", "--stat",
                        stat])
        ensure(doc["stage"] == {"name": "infer", "category": "compute"},
               "show stage %r" % doc["stage"])
        vals = [e["value_ns"] for e in doc["entries"]]
        close(vals[0], e1[("infer", "compute")][stat], "show %s #1" % stat)
        close(vals[1], statistics.median(
            x[("infer", "compute")][stat] for x in e_reps),
            "show %s #2 (median of 3)" % stat)
        ensure(doc["entries"][1]["count"] == sum(
            x[("infer", "compute")]["count"] for x in e_reps), "show count")
    doc = run_json(["show", "--db", db, "--runs", "--stat", "p95"])
    close(doc["entries"][0]["value_ns"], e1["runs"]["p95"], "show --runs")
    text = run(["show", "--db", db, "--stage", "infer"]).stdout
    ensure("stage infer (compute), p50 over 2 entries" in text,
           "show text:\n" + text)
    spark = text.splitlines()[1].split()[0]
    ensure(len(spark) == 2 and all("\u2581" <= c <= "\u2588" for c in spark),
           "sparkline %r" % spark)

    # More entries: --last, a stage missing from one, hostile names.
    hostile = '<script>alert("x")</script>&'
    t3 = os.path.join(work, "three.json")
    write_trace(t3, 3, names={"infer": hostile})
    run(["add", t3, "--db", db, "--label", "commit=ghi"])
    doc = run_json(["show", "--db", db, "--stage", "infer", "--last", "2"])
    ensure([e["id"] for e in doc["entries"]] == [2, 3] and
           doc["entries"][1]["value_ns"] is None,
           "--last 2 with a gap: %r" % doc["entries"])
    html = os.path.join(work, "trend.html")
    run(["show", "--db", db, "--stage", hostile, "--html", html])
    with open(html, encoding="utf-8") as f:
        page = f.read()
    ensure("<script" not in page.lower() and "&lt;script&gt;" in page,
           "page not self-contained or name not escaped")
    ensure("http://" not in page and "https://" not in page and
           "src=" not in page, "page fetches something")
    ensure(page.count('class="point"') == 1 and "<svg" in page,
           "page chart: %d points" % page.count('class="point"'))
    html2 = os.path.join(work, "infer.html")
    run(["show", "--db", db, "--stage", "infer", "--html", html2])
    with open(html2, encoding="utf-8") as f:
        page = f.read()
    ensure(page.count('class="point"') == 2 and
           page.count('<polyline class="trend"') == 1,
           "infer page: points or line missing")
    ensure(not os.path.exists(html2 + ".tmp"), "temporary page left")

    # The default file and $STAGEPROF_HISTORY_DB.
    cwd = os.path.join(work, "cwd")
    os.makedirs(cwd)
    run(["add", t1], cwd=cwd)
    ensure(os.path.exists(os.path.join(cwd, "stageprof-history.sqlite")),
           "no ./stageprof-history.sqlite")
    envdb = os.path.join(work, "env.sqlite")
    env = tc.clean_env(STAGEPROF_HISTORY_DB=envdb)
    run(["add", t1], env=env, cwd=cwd)
    ensure(len(rows(envdb, "SELECT id FROM entries")) == 1,
           "$STAGEPROF_HISTORY_DB not used")
    ensure(len(rows(os.path.join(cwd, "stageprof-history.sqlite"),
                    "SELECT id FROM entries")) == 1,
           "the default file got the entry meant for $STAGEPROF_HISTORY_DB")
    # --db wins over the variable.
    run(["add", t1, "--db", db], env=env, cwd=cwd)
    ensure(len(rows(envdb, "SELECT id FROM entries")) == 1 and
           len(rows(db, "SELECT id FROM entries")) == 4, "--db did not win")


# ---------------------------------------------------------------------------
# check


def band(values, k=5.0, floor=0.05):
    m = statistics.median(values)
    mad = statistics.median(abs(v - m) for v in values)
    half = max(k * 1.4826 * mad, floor * abs(m))
    return m, mad, m - half, m + half


def mode_check(work):
    db = os.path.join(work, "h.sqlite")
    series = {}  # (name, cat) or "runs" -> p95 per entry
    # Two entries: too little history, said so, exit 0.
    for i in range(2):
        exp = write_trace(os.path.join(work, "s%02d.json" % i), 100 + i)
        run(["add", os.path.join(work, "s%02d.json" % i), "--db", db,
             "--label", "branch=main", "--label", "commit=c%02d" % i])
        for key, x in exp.items():
            series.setdefault(key, []).append(x["p95"])
    p = run(["check", "--db", db])
    ensure("too little history to judge" in p.stdout,
           "no 'too little history':\n" + p.stdout)
    doc = run_json(["check", "--db", db])
    ensure(doc["too_little_history"] is True and doc["flagged"] == 0 and
           all(s["verdict"] == "too little history" for s in doc["stages"]),
           "check JSON with 2 entries: %r" % doc)

    # 30 entries of the same workload: quiet at the end, and checked
    # after every add from the 11th on (at most one false alarm in all).
    alarms = []
    for i in range(2, 30):
        path = os.path.join(work, "s%02d.json" % i)
        exp = write_trace(path, 100 + i)
        run(["add", path, "--db", db, "--label", "branch=main",
             "--label", "commit=c%02d" % i])
        for key, x in exp.items():
            series[key].append(x["p95"])
        if i >= 10:
            p = run(["check", "--db", db, "--format", "json"], rc=None)
            ensure(p.returncode in (0, 1), "check exit %d" % p.returncode)
            doc = json.loads(p.stdout)
            alarms += [(i, s["name"]) for s in doc["stages"]
                       if s["verdict"] in ("above", "below")]
            ensure((p.returncode == 1) == (doc["flagged"] > 0),
                   "exit status and flagged disagree")
    print("stable series: %d of %d judgments outside the band %r"
          % (len(alarms), 20 * (len(STAGES) + 1), alarms))
    ensure(len(alarms) <= 1, "false alarms on a stable series: %r" % alarms)
    p = run(["check", "--db", db])
    ensure("all 5 judged within the band" in p.stdout,
           "check on the stable series:\n" + p.stdout)

    # The band as documented, computed here from the 20 entries before
    # the newest.
    doc = run_json(["check", "--db", db])
    ensure(doc["window"] == 20 and doc["k"] == 5 and doc["min_band"] == 0.05
           and doc["stat"] == "p95" and doc["entry"]["id"] == 30,
           "check defaults %r" % {k: doc.get(k) for k in
                                  ("window", "k", "min_band", "stat")})
    for s in doc["stages"]:
        key = "runs" if s["runs"] else (s["name"], s["category"])
        hist = series[key][-21:-1]
        m, mad, lo, hi = band(hist)
        ensure(s["history"] == 20, "history %r" % s)
        close(s["value_ns"], series[key][-1], "%s value" % (key,))
        close(s["median_ns"], m, "%s median" % (key,))
        close(s["mad_ns"], mad, "%s MAD" % (key,))
        close(s["lo_ns"], lo, "%s band low" % (key,))
        close(s["hi_ns"], hi, "%s band high" % (key,))
        ensure(s["verdict"] == "within", "%s verdict %s" % (key, s))

    # A narrower window with a tighter K flags what the rule says.
    doc = run_json(["check", "--db", db, "--window", "8", "--k", "0.5",
                    "--min-band", "0"], rc=None)
    for s in doc["stages"]:
        key = "runs" if s["runs"] else (s["name"], s["category"])
        m, mad, lo, hi = band(series[key][-9:-1], 0.5, 0.0)
        v = series[key][-1]
        want = "above" if v > hi else "below" if v < lo else "within"
        ensure(s["verdict"] == want, "--k 0.5 %s: %s, expected %s"
               % (key, s["verdict"], want))

    # A step: infer 40% slower in the newest entry.
    step = os.path.join(work, "step.json")
    exp = write_trace(step, 999, scale={"infer": 1.4})
    run(["add", step, "--db", db, "--label", "branch=main",
         "--label", "commit=slow"])
    p = run(["check", "--db", db], rc=1)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("infer ")]
    ensure(line and "ABOVE the band" in line[0],
           "the step in infer not flagged:\n" + p.stdout)
    doc = run_json(["check", "--db", db], rc=1)
    flagged = sorted(s["name"] or "runs" for s in doc["stages"]
                     if s["verdict"] != "within")
    ensure(flagged == ["infer", "runs"], "flagged %r" % flagged)
    infer = [s for s in doc["stages"] if s["name"] == "infer"][0]
    close(infer["value_ns"], exp[("infer", "compute")]["p95"], "step value")
    ensure(infer["change"] > 0.25, "change %r" % infer["change"])

    # Entries of another branch are left out with --label.
    other = os.path.join(work, "other.json")
    write_trace(other, 5, scale={"load": 3.0})
    run(["add", other, "--db", db, "--label", "branch=exp"])
    run(["check", "--db", db, "--label", "branch=main"], rc=1)
    p = run(["check", "--db", db, "--label", "branch=exp"])
    ensure("too little history" in p.stdout, "branch=exp:\n" + p.stdout)
    p = run(["check", "--db", db], rc=1)
    ensure("load (io)" in p.stdout and "ABOVE" in p.stdout,
           "load x3 in the newest entry not flagged:\n" + p.stdout)

    # A series that never moves: the floor, not a zero-width band.
    flat = os.path.join(work, "flat.sqlite")
    for i in range(12):
        write_trace(os.path.join(work, "f.json"), 7)
        run(["add", os.path.join(work, "f.json"), "--db", flat])
    doc = run_json(["check", "--db", flat])
    ensure(doc["flagged"] == 0 and all(
        s["mad_ns"] == 0 and s["hi_ns"] > s["value_ns"] for s in
        doc["stages"]), "flat series: %r" % doc["stages"][:2])
    write_trace(os.path.join(work, "f.json"), 7, scale={"nms": 1.03})
    run(["check", "--db", flat])
    run(["add", os.path.join(work, "f.json"), "--db", flat])
    p = run(["check", "--db", flat])  # +3% is inside the 5% floor
    write_trace(os.path.join(work, "f.json"), 7, scale={"nms": 1.2})
    run(["add", os.path.join(work, "f.json"), "--db", flat])
    p = run(["check", "--db", flat], rc=1)
    ensure("nms (postprocess)" in p.stdout, p.stdout)


# ---------------------------------------------------------------------------
# concurrent


# The schema of version 1 exactly as that version created it: the input of
# the migration test (a file written before digests existed).
SCHEMA_V1 = """
CREATE TABLE entries (id INTEGER PRIMARY KEY, added_at TEXT NOT NULL,
  stageprof_version TEXT NOT NULL);
CREATE TABLE labels (entry_id INTEGER NOT NULL REFERENCES entries(id)
  ON DELETE CASCADE, key TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (entry_id, key)) WITHOUT ROWID;
CREATE INDEX labels_by_key ON labels(key, value);
CREATE TABLE traces (id INTEGER PRIMARY KEY, entry_id INTEGER NOT NULL
  REFERENCES entries(id) ON DELETE CASCADE, seq INTEGER NOT NULL,
  path TEXT NOT NULL, producer TEXT NOT NULL, events INTEGER NOT NULL,
  truncated INTEGER NOT NULL, complete INTEGER, dropped INTEGER, host TEXT,
  cpu_model TEXT, cores INTEGER, kernel TEXT, arch TEXT, version TEXT,
  clock TEXT, config TEXT, command_line TEXT, runs INTEGER NOT NULL,
  run_mean_ns REAL, run_p50_ns REAL, run_p95_ns REAL, run_p99_ns REAL,
  throughput REAL, UNIQUE (entry_id, seq));
CREATE TABLE stages (trace_id INTEGER NOT NULL REFERENCES traces(id)
  ON DELETE CASCADE, name TEXT NOT NULL, category TEXT NOT NULL,
  async INTEGER NOT NULL, count INTEGER NOT NULL, total_ns INTEGER NOT NULL,
  mean_ns REAL, p50_ns REAL, p95_ns REAL, p99_ns REAL,
  PRIMARY KEY (trace_id, name, category)) WITHOUT ROWID;
CREATE INDEX stages_by_name ON stages(name, category);
PRAGMA application_id = 1936746545;
PRAGMA user_version = 1;
"""


def mode_migrate(work):
    """A version 1 file: read as it is; the next add migrates it to 2 in
    its own transaction (old rows kept, digests from then on); a migration
    that fails leaves the file as it was; the same file added twice is
    said so."""
    db = os.path.join(work, "v1.sqlite")
    con = sqlite3.connect(db)
    con.executescript(SCHEMA_V1)
    con.execute("INSERT INTO entries VALUES (1, '2026-01-01T00:00:00Z', "
                "'0.0.9')")
    con.execute("INSERT INTO labels VALUES (1, 'commit', 'old')")
    con.execute("INSERT INTO traces (id, entry_id, seq, path, producer, "
                "events, truncated, runs, run_p95_ns) VALUES "
                "(1, 1, 0, '/old.json', 'stageprof', 10, 0, 4, 5e6)")
    con.execute("INSERT INTO stages VALUES (1, 'infer', 'compute', 0, 4, "
                "16000000, 4e6, 4e6, 5e6, 5e6)")
    con.commit()
    con.close()
    # Read as it is: nothing written.
    before = digest(db)
    doc = run_json(["list", "--db", db, "--format", "json"])
    ensure(len(doc["entries"]) == 1 and
           doc["entries"][0]["labels"] == {"commit": "old"},
           "list of a version 1 file: %r" % doc)
    run(["show", "--db", db, "--stage", "infer"])
    untouched(db, before, "reading a version 1 file")

    trace = os.path.join(work, "t.json")
    write_trace(trace, 7)
    p = run(["add", trace, "--db", db, "--label", "commit=new"])
    con = sqlite3.connect(db)
    try:
        ensure(con.execute("PRAGMA user_version").fetchone()[0] == 2,
               "not migrated to version 2")
        rows_ = con.execute("SELECT id, digest FROM traces ORDER BY id"
                            ).fetchall()
        ensure(rows_[0] == (1, None) and rows_[1][1] and
               re.fullmatch(r"\d+:[0-9a-f]{8}", rows_[1][1]),
               "traces after the migration: %r" % rows_)
        size = os.path.getsize(trace)
        with open(trace, "rb") as f:
            crc = zlib.crc32(f.read())
        ensure(rows_[1][1] == "%d:%08x" % (size, crc),
               "digest %r, wanted size and CRC-32 of the file" % rows_[1][1])
        ensure(con.execute("SELECT count(*) FROM stages WHERE trace_id = 1"
                           ).fetchone()[0] == 1, "old stage rows lost")
    finally:
        con.close()
    check_schema(db)
    ensure("was added before" not in p.stderr, p.stderr)

    # The same file again: stored, and said so, naming the entry.
    p = run(["add", trace, "--db", db])
    ensure(re.search(r"was added before, in entry 2: stored again",
                     p.stderr), "no warning for a second add: %r" % p.stderr)

    # A migration that fails (an index of that name is there already)
    # leaves the version 1 file as it was.
    bad = os.path.join(work, "v1bad.sqlite")
    con = sqlite3.connect(bad)
    con.executescript(SCHEMA_V1)
    con.execute("CREATE INDEX traces_by_digest ON traces(path)")
    con.commit()
    con.close()
    before = digest(bad)
    p = run(["add", trace, "--db", bad], rc=1)
    ensure("nothing was added" in p.stderr, p.stderr)
    untouched(bad, before, "a failed migration")
    con = sqlite3.connect(bad)
    ensure(con.execute("PRAGMA user_version").fetchone()[0] == 1,
           "a failed migration changed the version")
    con.close()


def mode_concurrent(work):
    db = os.path.join(work, "h.sqlite")
    trace = os.path.join(work, "t.json")
    write_trace(trace, 1, runs=10)
    jobs, per = 8, 10
    failures = []
    stop = threading.Event()

    def adder(j):
        for i in range(per):
            p = subprocess.run(
                [CLI, "history", "add", trace, "--db", db, "--label",
                 "job=%d" % j, "--label", "rep=%d" % i],
                capture_output=True, text=True, env=tc.clean_env(),
                timeout=120)
            if p.returncode != 0:
                failures.append((j, i, p.returncode, p.stderr))

    def reader():
        while not stop.is_set():
            p = subprocess.run([CLI, "history", "list", "--db", db],
                               capture_output=True, text=True,
                               env=tc.clean_env(), timeout=120)
            # Before the first add commits the file may not exist yet.
            if p.returncode != 0 and "no history" not in p.stderr and \
                    "is empty" not in p.stdout:
                failures.append(("list", p.returncode, p.stderr))

    threads = [threading.Thread(target=adder, args=(j,)) for j in range(jobs)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads[:jobs]:
        t.join()
    stop.set()
    for t in threads[jobs:]:
        t.join()
    print("%d adds from %d processes at once: %.1f s"
          % (jobs * per, jobs, time.time() - t0))
    ensure(not failures, "failures: %r" % failures[:3])
    ensure(rows(db, "PRAGMA integrity_check") == [("ok",)],
           "integrity check failed")
    n = jobs * per
    ensure(rows(db, "SELECT count(*) FROM entries") == [(n,)],
           "entries: %r" % rows(db, "SELECT count(*) FROM entries"))
    ensure(rows(db, "SELECT count(*) FROM traces") == [(n,)], "traces")
    ensure(rows(db, "SELECT count(*) FROM stages") == [(n * len(STAGES),)],
           "stages")
    pairs = rows(db, "SELECT a.value, b.value FROM labels a JOIN labels b"
                     " ON a.entry_id = b.entry_id AND a.key = 'job' AND"
                     " b.key = 'rep'")
    ensure(sorted(pairs) == sorted(("%d" % j, "%d" % i) for j in range(jobs)
                                   for i in range(per)),
           "labels lost or doubled")
    ids = [r[0] for r in rows(db, "SELECT id FROM entries ORDER BY id")]
    ensure(ids == list(range(1, n + 1)), "entry ids not 1..%d" % n)


# ---------------------------------------------------------------------------
# badinput


def expect_error(args, rc, *needles, **kw):
    p = run(args, rc, **kw)
    for s in needles:
        ensure(s in p.stderr, "history %s: %r not in stderr:\n%s"
               % (" ".join(args), s, p.stderr))
    return p


def untouched(path, before, what):
    ensure(digest(path) == before, "%s changed the file" % what)
    for side in ("-journal", "-wal"):
        ensure(not os.path.exists(path + side),
               "%s left %s%s behind" % (what, path, side))


def all_commands(db, trace):
    return [(["add", trace, "--db", db], 1),
            (["list", "--db", db], 1),
            (["show", "--db", db, "--stage", "infer"], 1),
            (["check", "--db", db], 2)]


def as_other_user():
    """The uid to run as so that file permissions apply, or None when
    this process is not root (they apply already)."""
    if os.geteuid() != 0:
        return None
    return 65534


def mode_badinput(work):
    os.chmod(work, 0o755)
    trace = os.path.join(work, "t.json")
    write_trace(trace, 1, runs=10)
    os.chmod(trace, 0o644)

    # Garbage bytes.
    junk = os.path.join(work, "junk.sqlite")
    with open(junk, "wb") as f:
        f.write(random.Random(3).randbytes(8192))
    before = digest(junk)
    for args, rc in all_commands(junk, trace):
        expect_error(args, rc, "junk.sqlite is not an SQLite database")
        untouched(junk, before, args[0])

    # A good history, then a damaged copy of it (a page of zeros).
    db = os.path.join(work, "h.sqlite")
    for i in range(3):
        run(["add", trace, "--db", db, "--label", "n=%d" % i])
    with open(db, "rb") as f:
        good = f.read()
    dmg = os.path.join(work, "damaged.sqlite")
    with open(dmg, "wb") as f:
        f.write(good[:4096] + b"\xff" * (len(good) - 4096))
    before = digest(dmg)
    p = run(["add", trace, "--db", dmg], rc=1)
    ensure("damaged" in p.stderr or "not an SQLite" in p.stderr or
           "malformed" in p.stderr, "damaged file: " + p.stderr)
    untouched(dmg, before, "add to a damaged file")

    # A newer schema: refused by every command, file unchanged.
    newer = os.path.join(work, "newer.sqlite")
    with open(newer, "wb") as f:
        f.write(good)
    con = sqlite3.connect(newer)
    con.execute("PRAGMA user_version = 3")
    con.execute("CREATE TABLE future (x)")
    con.commit()
    con.close()
    before = digest(newer)
    for args, rc in all_commands(newer, trace):
        expect_error(args, rc, "schema version 3, newer than this stageprof "
                               "knows (2)")
        untouched(newer, before, args[0])

    # Another program's database.
    foreign = os.path.join(work, "foreign.sqlite")
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE notes (x)")
    con.execute("INSERT INTO notes VALUES ('keep me')")
    con.commit()
    con.close()
    before = digest(foreign)
    for args, rc in all_commands(foreign, trace):
        expect_error(args, rc, "not a stageprof history")
        untouched(foreign, before, args[0])

    # Locked by another process: waited for, refused, nothing lost.
    con = sqlite3.connect(db, isolation_level=None, timeout=0)
    con.execute("BEGIN EXCLUSIVE")
    try:
        for args, rc in ((["add", trace, "--db", db], 1),
                         (["list", "--db", db], 1),
                         (["check", "--db", db], 2)):
            t0 = time.time()
            expect_error(args + ["--busy-timeout", "400"], rc,
                         "is locked by another process",
                         "waiting 400 ms")
            took = time.time() - t0
            ensure(took >= 0.35, "%s gave up after %.2f s, before the "
                   "busy timeout" % (args[0], took))
    finally:
        con.execute("ROLLBACK")
        con.close()
    ensure(rows(db, "SELECT count(*) FROM entries") == [(3,)],
           "entries lost or added under the lock")
    # A lock released within the timeout is waited for.
    con = sqlite3.connect(db, isolation_level=None, timeout=0,
                          check_same_thread=False)
    con.execute("BEGIN EXCLUSIVE")
    timer = threading.Timer(0.3, lambda: con.execute("ROLLBACK"))
    timer.start()
    try:
        run(["add", trace, "--db", db, "--busy-timeout", "5000"])
    finally:
        timer.join()
        con.close()
    ensure(rows(db, "SELECT count(*) FROM entries") == [(4,)],
           "the add after the lock was released is missing")

    # A writer killed in the middle of its transaction leaves a journal:
    # the next reader rolls it back, and nothing committed is lost.
    pid = os.fork()
    if pid == 0:
        con = sqlite3.connect(db, isolation_level=None)
        con.execute("PRAGMA cache_size = 10")
        con.execute("BEGIN IMMEDIATE")
        for i in range(400):
            con.execute("INSERT INTO labels VALUES (1, ?, ?)",
                        ("k%d" % i, "v" * 400))
        os._exit(0)
    os.waitpid(pid, 0)
    ensure(os.path.exists(db + "-journal"), "no journal left to test with")
    doc = run_json(["list", "--db", db])
    ensure(len(doc["entries"]) == 4 and len(doc["entries"][0]["labels"]) == 1,
           "after a killed writer: %r" % doc["entries"][:1])
    ensure(not os.path.exists(db + "-journal"), "journal not rolled back")
    ensure(rows(db, "PRAGMA integrity_check") == [("ok",)],
           "integrity after a killed writer")

    # Read-only file, read-only directory.
    user = as_other_user()
    rodir = os.path.join(work, "ro")
    os.makedirs(rodir)
    os.chmod(rodir, 0o755)
    ro = os.path.join(rodir, "h.sqlite")
    with open(ro, "wb") as f:
        f.write(good)
    os.chmod(ro, 0o444)
    before = digest(ro)
    expect_error(["add", trace, "--db", ro], 1, "is read-only",
                 "nothing was added", user=user)
    untouched(ro, before, "add to a read-only file")
    p = run(["list", "--db", ro, "--format", "json"], user=user)
    ensure(len(json.loads(p.stdout)["entries"]) == 3,
           "a read-only history cannot be listed")
    os.chmod(ro, 0o666)
    os.chmod(rodir, 0o555)
    try:
        expect_error(["add", trace, "--db", ro], 1, "nothing was added",
                     user=user)
        untouched(ro, before, "add in a read-only directory")
        run(["list", "--db", ro], user=user)
        expect_error(["add", trace, "--db", os.path.join(rodir, "new.db")],
                     1, "cannot open or create", user=user)
        ensure(not os.path.exists(os.path.join(rodir, "new.db")),
               "a file was created in a read-only directory")
    finally:
        os.chmod(rodir, 0o755)

    # Bad labels and options: exit 2, nothing written.
    before = digest(db)
    for label, why in (("commit", "wants KEY=VALUE"),
                       ("=x", "the key must start"),
                       ("1x=y", "the key must start"),
                       ("a b=c", "the key must start"),
                       ("k" * 65 + "=v", "the key must start"),
                       ("k=", "the value is empty"),
                       ("k=a\tb", "control character"),
                       ("k=" + "v" * 1025, "longer than 1024")):
        expect_error(["add", trace, "--db", db, "--label", label], 2, why)
    expect_error(["add", trace, "--db", db, "--label", "k=1", "--label",
                  "k=2"], 2, "given twice")
    for args, why in ((["check", "--window", "2"], "--window wants a whole "
                       "number from 3 to 1000, not '2'"),
                      (["check", "--window", "x"], "--window"),
                      (["check", "--k", "0"], "--k wants a number above 0,"),
                      (["check", "--k", "-1"], "--k"),
                      (["check", "--min-band", "101"], "--min-band"),
                      (["show", "--stage", "infer", "--stat", "p90"],
                       "--stat wants mean, p50, p95 or p99"),
                      (["show"], "show wants --stage"),
                      (["list", "--window", "3"], "takes no --window"),
                      (["add"], "at least one trace"),
                      (["frob"], "unknown subcommand")):
        expect_error(args + ["--db", db], 2, why)
    untouched(db, before, "bad usage")

    # Unknown stage; a stage name in two categories.
    expect_error(["show", "--db", db, "--stage", "nope"], 1,
                 "no stage named 'nope'", "stages: infer, load, nms")
    two = os.path.join(work, "two.json")
    write_trace(two, 2, names={"load": "infer"})
    run(["add", two, "--db", db])
    expect_error(["show", "--db", db, "--stage", "infer"], 1,
                 "several categories (compute, io)")
    run(["show", "--db", db, "--stage", "infer", "--category", "io"])
    expect_error(["show", "--db", db, "--stage", "infer", "--category",
                  "x"], 1, "has no category 'x'")

    # A bad trace among good ones: nothing added.
    before = digest(db)
    bad = os.path.join(work, "bad.json")
    with open(bad, "w") as f:
        f.write('{"traceEvents": 5}')
    expect_error(["add", trace, bad, "--db", db], 1, "bad.json",
                 "nothing was added")
    # Cut before its first event: a trace, but nothing to store.
    with open(bad, "w") as f:
        f.write('{"traceEvents":[{"ph":"X","name":')
    expect_error(["add", trace, bad, "--db", db], 1, "bad.json",
                 "holds no stage and no run", "nothing was added")
    expect_error(["add", trace, os.path.join(work, "missing.json"), "--db",
                  db], 1, "missing.json", "nothing was added")
    untouched(db, before, "an add with a bad trace")

    # Read commands never create the file; check says a wrong path loudly.
    nope = os.path.join(work, "nope.sqlite")
    expect_error(["list", "--db", nope], 1, "no history at")
    expect_error(["check", "--db", nope], 2, "no history at")
    ensure(not os.path.exists(nope), "a read command created the file")


MODES = {"roundtrip": mode_roundtrip, "check": mode_check,
         "concurrent": mode_concurrent, "badinput": mode_badinput,
         "migrate": mode_migrate}


def main():
    global CLI
    if len(sys.argv) != 3 or sys.argv[2] not in MODES:
        print("usage: check_history.py STAGEPROF %s" % "|".join(MODES))
        sys.exit(2)
    CLI = os.path.abspath(sys.argv[1])
    t0 = time.time()
    mode = MODES[sys.argv[2]]

    def body(work):
        mode(work)
        print("%s: %.1f s" % (sys.argv[2], time.time() - t0))

    tc.main(body)


if __name__ == "__main__":
    main()
