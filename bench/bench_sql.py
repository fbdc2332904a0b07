#!/usr/bin/env python3
"""bench_sql.py - loading a trace into `stageprof sql` tables against the
sqlite3 shell's own `.import` of the same rows from CSV.

    python3 bench/bench_sql.py [--stageprof PATH] [--sqlite3 PATH]
                               [--dir DIR] [--size-mb N] [--reps N]

    python3 bench/bench_sql.py                 # 256 MiB: about a minute
    python3 bench/bench_sql.py --size-mb 32    # a smoke run

The trace: a Kineto trace of --size-mb MiB made by bench_report.py's
generator (seed 1, kept in --dir and reused), read from the page cache.

What is timed, interleaved --reps times:

    stageprof sql TRACE 'SELECT count(*) FROM slices' --save=DB
        the whole load: reading and parsing the JSON, pairing and nesting,
        every table, the indexes, the file synced and renamed
    sqlite3 DB2 < import.sql
        a fresh database: the same CREATE TABLE statements (read from the
        saved database), one `.import --csv` per table of the very rows
        stageprof stored (written to CSV beforehand, untimed), then the
        same CREATE INDEX statements. The shell's defaults: rollback
        journal, synchronous=FULL (one sync at its commit)
    sqlite3 DB3 < import_fast.sql
        the same with stageprof's settings first (journal_mode=OFF,
        synchronous=OFF, the same cache): the stronger baseline

The target (issue 10): the load takes at most 1.5 x the time of the
import. The ratio is printed against both baselines per round, then the
medians, and "met" or "MISSED" against the faster import. Also printed:
the load without --save (a temporary database), rows per table, and the
rows stageprof stored checked against the trace (X events = slices).

Exit status: 0 done (the target is reported, not asserted), 1 a tool
failed or the rows disagree, 2 bad usage. Python 3 standard library and
the sqlite3 shell (Debian package sqlite3).
"""
import argparse
import csv
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_report as br  # noqa: E402

MIB = 1 << 20
TARGET = 1.5
PRAGMAS = ("PRAGMA journal_mode=OFF;\nPRAGMA synchronous=OFF;\n"
           "PRAGMA temp_store=MEMORY;\nPRAGMA cache_size=-131072;\n")


def trace(dirname, size_mb):
    path = os.path.join(dirname, "bench_sql_%dmb_seed1.json" % size_mb)
    if not os.path.exists(path):
        print("generating %s ..." % path, flush=True)
        br.generate(path, size_mb * MIB, 1)
    return path


def timed(argv, stdin=None):
    """Wall time of one run of @argv (output discarded)."""
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as f:
        t0 = time.perf_counter()
        p = subprocess.run(argv, stdin=f, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stderr.decode(errors="replace")[-2000:])
        raise SystemExit("bench_sql: %s exited with %d" % (argv[0],
                                                           p.returncode))
    return wall


def remove(*paths):
    for p in paths:
        if os.path.exists(p):
            os.unlink(p)


def x_events(path):
    """X events with a dur in the trace, counted by Python's json."""
    with open(path, "rb") as f:
        doc = json.load(f)
    return sum(1 for e in doc["traceEvents"]
               if e.get("ph") == "X" and "dur" in e)


def export(db_path, work):
    """Each table of the saved database as CSV; the import scripts."""
    db = sqlite3.connect(db_path)
    tables = list(db.execute("SELECT name, sql FROM sqlite_schema WHERE "
                             "type = 'table' ORDER BY rowid"))
    indexes = [r[0] for r in db.execute("SELECT sql FROM sqlite_schema "
                                        "WHERE type = 'index' AND sql IS "
                                        "NOT NULL ORDER BY rowid")]
    counts = {}
    lines = []
    for name, create in tables:
        csv_path = os.path.join(work, name + ".csv")
        n = 0
        with open(csv_path, "w", newline="", encoding="utf-8",
                  errors="surrogateescape") as f:
            w = csv.writer(f)
            for row in db.execute("SELECT * FROM %s" % name):
                w.writerow(["" if v is None else v for v in row])
                n += 1
        counts[name] = n
        lines.append(create + ";")
    for name, _ in tables:
        lines.append(".import --csv %s %s" % (os.path.join(work, name +
                                                           ".csv"), name))
    lines += [sql + ";" for sql in indexes]
    db.close()
    plain = os.path.join(work, "import.sql")
    fast = os.path.join(work, "import_fast.sql")
    with open(plain, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(fast, "w") as f:
        f.write(PRAGMAS + "\n".join(lines) + "\n")
    return counts, plain, fast


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--stageprof", default=os.path.join(root, "build",
                                                        "stageprof"))
    ap.add_argument("--sqlite3", default="sqlite3")
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    if args.size_mb < 1 or args.reps < 1:
        ap.error("--size-mb and --reps take whole numbers from 1")
    if not os.access(args.stageprof, os.X_OK):
        ap.error("%s: no such program (make build)" % args.stageprof)
    shell = shutil.which(args.sqlite3)
    if shell is None:
        ap.error("%s: no such program (apt install sqlite3)" % args.sqlite3)
    os.makedirs(args.dir, exist_ok=True)
    path = trace(args.dir, args.size_mb)
    sp = os.path.abspath(args.stageprof)
    work = tempfile.mkdtemp(prefix="bench_sql.", dir=args.dir)
    try:
        version = subprocess.run([shell, "--version"], capture_output=True,
                                 text=True).stdout.split()[0]
        print("machine: %s, %d CPUs" % (br.cpu_model(), os.cpu_count()))
        print("trace: %s, %.0f MiB; sqlite3 shell %s"
              % (path, os.path.getsize(path) / MIB, version))
        saved = os.path.join(work, "sql.sqlite")
        query = "SELECT count(*) FROM slices"
        br.warm_cache(path)
        timed([sp, "sql", "-q", path, query, "--save", saved])
        counts, plain, fast = export(saved, work)
        rows = sum(counts.values())
        print("rows: %d in all (%s)" % (rows, ", ".join(
            "%s %d" % kv for kv in counts.items() if kv[1])))
        want = x_events(path)
        if counts["slices"] != want:
            print("FAIL: %d slices stored, the trace has %d X events"
                  % (counts["slices"], want))
            return 1
        print("slices: %d, as many as the trace's X events" % want)
        loads, temps, imports, fasts = [], [], [], []
        for rep in range(args.reps):
            br.warm_cache(path)
            remove(saved)
            loads.append(timed([sp, "sql", "-q", path, query, "--save",
                                saved]))
            temps.append(timed([sp, "sql", "-q", path, query]))
            for script, out in ((plain, imports), (fast, fasts)):
                db2 = os.path.join(work, "import.sqlite")
                remove(db2)
                out.append(timed([shell, db2], stdin=script))
            print("round %d: load %.3f s (temporary db %.3f s); .import "
                  "%.3f s, with stageprof's pragmas %.3f s: ratio %.2f / "
                  "%.2f" % (rep + 1, loads[-1], temps[-1], imports[-1],
                            fasts[-1], loads[-1] / imports[-1],
                            loads[-1] / fasts[-1]), flush=True)
        load = statistics.median(loads)
        imp = statistics.median(imports)
        imp_fast = statistics.median(fasts)
        base = min(imp, imp_fast)
        ratio = load / base
        print("median: load %.3f s (%.0f rows/s, %.0f MB/s of JSON), "
              "temporary db %.3f s; .import %.3f s, with stageprof's "
              "pragmas %.3f s"
              % (load, rows / load, os.path.getsize(path) / 1e6 / load,
                 statistics.median(temps), imp, imp_fast))
        print("load / fastest .import: %.2f; target <= %.1f: %s"
              % (ratio, TARGET, "met" if ratio <= TARGET else "MISSED"))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
