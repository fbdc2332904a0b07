"""check_crash.py - STAGEPROF_CRASH_DUMP: the dump a dying process writes.

    check_crash.py IT_CRASH MODE [prev|held]

Runs it_crash (see it_crash.c) twice, with STAGEPROF_CRASH_DUMP=1 and with
it unset, each in a fresh directory with core dumps allowed, and checks:

- both runs die of the mode's signal (returncode == -signum), with the same
  wait status (so the same core dump behaviour), and a core file exists
  exactly when the status says one was written;
- with the dump on: exactly one file, named
  workflow_execution_<YYYY_MM_DD_HH_MM_SS>_<pid>_crash.json, no .tmp left;
  it parses (strict JSON), says it was written by the crash handler for
  that signal, and holds on every thread the events recorded before the
  crash: exact counts of spans completed (a "B" closed by an "E"), the open
  spans as "B" without "E" in nesting order, args.run on every span as the
  program expected, instants, counters (doubles exact), flows, runs,
  arguments attached late, thread names, the crash instant;
- with the dump off: no file at all;
- with "prev" (a handler installed by the program before stageprof_start):
  that handler still runs in both runs, and in the dump-on run it runs
  after the dump was complete and renamed (it counts the *_crash.json files
  it sees: 1 on, 0 off);
- with "held" (a writer stuck holding the library's writer lock, see
  it_crash.c): the same dump, beside the (empty) trace that writer wrote;
- throughout (builds without a sanitizer): nothing allocates memory once
  the crash has begun (it_crash's malloc wrappers would exit with 99).

Under sanitizers their own fatal-signal handlers are turned off for the
child (handle_segv=0 ...), so that the death is the signal's.
"""

import collections
import decimal
import glob
import json
import os
import re
import resource
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tracecheck as tc  # noqa: E402

from tracecheck import CheckError, ensure, short, to_ns  # noqa: E402

SIGNALS = {"segv": signal.SIGSEGV, "abort": signal.SIGABRT,
           "fpe": signal.SIGFPE, "bus": signal.SIGBUS, "ill": signal.SIGILL}

SAN_OFF = ("handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_abort=0:"
           "handle_sigill=0")


def child_env(dump):
    env = tc.clean_env()
    for k in ("ASAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS"):
        env[k] = (env[k] + ":" if env.get(k) else "") + SAN_OFF
    if dump is not None:
        env["STAGEPROF_CRASH_DUMP"] = dump
    return env


def allow_core():
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def run_crash(prog, workdir, mode, variant, dump):
    """Run it_crash in @workdir; returns (status, stdout, stderr, tdir)."""
    os.makedirs(workdir)
    tdir = os.path.join(workdir, "traces")
    cmd = [prog, tdir, mode] + ([variant] if variant else [])
    out_path = os.path.join(workdir, "stdout")
    err_path = os.path.join(workdir, "stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(cmd, env=child_env(dump), cwd=workdir,
                             stdout=out, stderr=err, preexec_fn=allow_core)
        # waitpid, not Popen.wait: the status keeps the core dump bit.
        try:
            _, status = os.waitpid(p.pid, 0)
        finally:
            p.returncode = 0  # reaped here; keep Popen from waiting
    with open(out_path, encoding="utf-8", errors="replace") as f:
        stdout = f.read()
    with open(err_path, encoding="utf-8", errors="replace") as f:
        stderr = f.read()
    return status, stdout, stderr, tdir, cmd


def check_death(status, sig, stdout, stderr, workdir, what):
    ensure(os.WIFSIGNALED(status) and os.WTERMSIG(status) == sig,
           "%s: wanted death by %s, got wait status %#x (exit %s)\n"
           "--- stdout\n%s--- stderr\n%s"
           % (what, sig.name, status,
              os.WEXITSTATUS(status) if os.WIFEXITED(status) else "-",
              stdout, stderr))
    cores = glob.glob(os.path.join(workdir, "core*"))
    ensure(bool(cores) == os.WCOREDUMP(status),
           "%s: core dump bit %s but core files %s"
           % (what, os.WCOREDUMP(status), cores))
    for c in cores:
        os.unlink(c)


def program_result(stdout):
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    ensure(lines, "it_crash printed no JSON result:\n%s" % stdout)
    return json.loads(lines[-1])


def pair_spans(t, tid):
    """Replay B/E of @tid: (closed spans by name, open span names in
    nesting order, {name: [E events]})."""
    stack, closed, ends = [], collections.Counter(), collections.defaultdict(
        list)
    for ev in t.events:
        if ev.get("tid") != tid:
            continue
        if ev["ph"] == "B":
            stack.append(ev)
        elif ev["ph"] == "E":
            ensure(stack, "E without an open B on tid %d: %s" % (tid,
                                                                 short(ev)))
            b = stack.pop()
            ensure(to_ns(ev["ts"], "ts") >= to_ns(b["ts"], "ts"),
                   "E before its B: %s %s" % (short(b), short(ev)))
            closed[b["name"]] += 1
            ends[b["name"]].append(ev)
    return closed, [b["name"] for b in stack], ends


def ticks_of(res, k):
    """Instants of worker @k: one every 100 steps from step 0."""
    return (res["steps"][k] + 99) // 100


def check_dump(path, res, argv, before, after, sig):
    name = os.path.basename(path)
    ensure(re.fullmatch(r"workflow_execution_\d{4}(_\d\d){5}_%d_crash\.json"
                        % res["pid"], name), "bad dump name %r" % name)
    t = tc.load(path)
    m = t.meta
    ensure(isinstance(m, dict) and m.get("format") == 1 and
           m.get("pid") == res["pid"], "header: %r" % (m,))
    crash = m.get("crash")
    ensure(isinstance(crash, dict) and crash.get("signal") == sig and
           crash.get("name") == sig.name and
           crash.get("written_by") == "crash handler" and
           crash.get("tid") == res["main_tid"],
           "stageprof.crash is %r" % (crash,))
    tc.check_metadata(t, argv, before, after, version=res["version"])
    tc.check_events(t)
    s = t.summary
    ensure(isinstance(s, dict) and s.get("complete") is False and
           s.get("crash") is True and s.get("truncated") is False,
           "summary: %r" % (s,))
    ensure(s.get("events_written") == len(t.events),
           "summary.events_written %r, the file holds %d"
           % (s.get("events_written"), len(t.events)))
    ensure(s.get("open_spans") == 2 * 3 + 1, "summary.open_spans %r"
           % s.get("open_spans"))
    ensure(s.get("spans_cut") == 0 and s.get("args_dropped") == 0,
           "summary: %r" % (s,))

    names = t.thread_names()
    by_name = {v: k for k, v in names.items()}
    ensure(set(by_name) == {"worker-0", "worker-1", "worker-2", "early",
                            "it-main"}, "thread names %r" % names)
    ensure(by_name["it-main"] == res["main_tid"], "main tid")
    procs = t.named("M", "process_name")
    ensure(len(procs) == 1 and procs[0]["args"]["name"] == "it_crash",
           "process_name %r" % procs)
    sorts = {e["tid"]: e["args"]["sort_index"]
             for e in t.named("M", "thread_sort_index")}
    ensure(sorts == {res["worker_tids"][k]: k + 1 for k in range(3)},
           "sort indexes %r" % sorts)

    # The crash itself: the last thing on the timeline.
    ci = [e for e in t.by_ph["i"] if e.get("cat") == "crash"]
    ensure(len(ci) == 1 and ci[0]["name"] == sig.name and
           ci[0]["tid"] == res["main_tid"] and
           ci[0]["args"] == {"signal": sig}, "crash instant %r" % ci)
    crash_ns = to_ns(ci[0]["ts"], "ts")
    for ev in t.events:
        if ev["ph"] != "M" and to_ns(ev["ts"], "ts") > crash_ns:
            raise CheckError("event after the crash: %s" % short(ev))

    # Spans, per thread: completed ones counted, open ones in order.
    want = {}
    for k in range(3):
        want["worker-%d" % k] = (
            {"step": res["steps"][k], "inner": res["steps"][k],
             "idle_step": res["idle"][k], 'dyn "%d" \\ name' % k: 1,
             "late_parent": 1, "child": 1},
            ["stuck_outer", "stuck_inner"])
    want["early"] = ({"early_step": res["early"]}, [])
    want["it-main"] = ({"main_setup": res["main_setup"], "main_pickup": 1},
                       ["main_open"])
    nb = 0
    for tname, (closed_want, open_want) in want.items():
        tid = by_name[tname]
        closed, still_open, ends = pair_spans(t, tid)
        ensure(dict(closed) == closed_want, "%s: completed spans %r, wanted "
               "%r" % (tname, dict(closed), closed_want))
        ensure(still_open == open_want, "%s: open spans %r, wanted %r"
               % (tname, still_open, open_want))
        nb += sum(closed_want.values()) + len(open_want)
        if tname.startswith("worker"):
            late = ends["late_parent"][0]
            ensure(late.get("args") == {"late": 7},
                   "late argument not on the E: %s" % short(late))
            ensure(all("args" not in e for n, es in ends.items()
                       if n != "late_parent" for e in es),
                   "an E carries arguments it should not")
    ensure(len(t.by_ph["B"]) == nb, "%d B events, wanted %d"
           % (len(t.by_ph["B"]), nb))
    # args.run: every B carries the run its thread was in.
    n = tc.check_expect_run(t)
    ensure(n == nb + sum(ticks_of(res, k) for k in range(3)),
           "%d events carry expect_run" % n)
    i = None
    for ev in t.by_ph["B"]:
        if ev["name"] == "step":
            i = ev["args"]["i"]
        if ev["name"] == "inner":
            ensure(float(ev["args"]["third"]) == i / 3.0,
                   "double argument not exact: %s" % short(ev))
        if ev["name"] == "idle_step":
            ensure(ev["args"]["note"] == "quote\" back\\ nl\n \u00e9",
                   "string argument %r" % ev["args"]["note"])

    # Complete spans, instants, counters, flows, runs.
    for k in range(3):
        tid = res["worker_tids"][k]
        xs = [e for e in t.by_ph["X"] if e["tid"] == tid]
        ensure(len(xs) == 1 and xs[0]["name"] == "manual" and
               to_ns(xs[0]["dur"], "dur") == 2500 and "args" not in xs[0],
               "manual span of worker-%d: %r" % (k, xs))
        ticks = [e for e in t.named("i", "tick") if e["tid"] == tid]
        ensure(len(ticks) == ticks_of(res, k) and
               all(e["args"]["run"] == 1000 + k for e in ticks),
               "ticks of worker-%d" % k)
        cnt = range(0, res["steps"][k], 10)
        prog = [e["args"]["value"] for e in t.named("C", "progress")
                if e["tid"] == tid]
        ensure(prog == list(cnt), "progress of worker-%d" % k)
        ratio = [e["args"]["value"] for e in t.named("C", "ratio")
                 if e["tid"] == tid]
        ensure([float(v) for v in ratio] == [i / 7.0 for i in cnt],
               "ratio of worker-%d: doubles not exact" % k)
        ensure(all(isinstance(v, (int, decimal.Decimal)) for v in ratio),
               "ratio values not numbers")
        fs = [e for e in t.by_ph["s"] if e["tid"] == tid]
        ensure(len(fs) == 1 and fs[0]["id"] == hex(5000 + k) and
               fs[0]["args"] == {"run": 1000 + k}, "flow start %r" % fs)
        bs = sorted(int(e["id"], 16) for e in t.by_ph["b"]
                    if e["tid"] == tid)
        es = [int(e["id"], 16) for e in t.by_ph["e"] if e["tid"] == tid]
        ensure(bs == [1000 + k, 2000 + k] and es == [1000 + k],
               "runs of worker-%d: b %r e %r" % (k, bs, es))
    ff = t.by_ph["f"]
    ensure(sorted(e["id"] for e in ff) == [hex(5000 + k) for k in range(3)]
           and all(e["tid"] == res["main_tid"] and e.get("bp") == "e" and
                   "args" not in e for e in ff), "flow ends %r" % ff)
    for ev in t.by_ph["b"] + t.by_ph["e"]:
        ensure(ev["args"] == {"run": int(ev["id"], 16)}, short(ev))


def body(work):
    prog, mode = sys.argv[1], sys.argv[2]
    variant = sys.argv[3] if len(sys.argv) > 3 else None
    prev = variant == "prev"
    sig = SIGNALS[mode]
    statuses = {}
    for label, dump in (("on", "1"), ("off", None)):
        wd = os.path.join(work, label)
        before = tc.now_pair()
        status, out, err, tdir, cmd = run_crash(prog, wd, mode, variant,
                                                dump)
        after = tc.now_pair()
        check_death(status, sig, out, err, wd, "dump " + label)
        statuses[label] = status
        res = program_result(out)
        ensure(res["signal"] == sig, "program says signal %r" % res["signal"])
        marker = [l for l in out.splitlines() if l.startswith("PREV_")]
        if prev:
            want = "PREV_HANDLER_RAN sig=%d dumps=%d" % (sig, label == "on")
            ensure(marker == [want], "dump %s: previous handler printed %r, "
                   "wanted %r" % (label, marker, want))
        else:
            ensure(not marker, "unexpected %r" % marker)
        files = sorted(os.listdir(tdir)) if os.path.isdir(tdir) else []
        if variant == "held":
            flushed = [f for f in files if re.fullmatch(
                r"workflow_execution_\d{4}(_\d\d){5}_%d\.json" % res["pid"],
                f)]
            ensure(len(flushed) == 1, "held: the flushed trace is missing "
                   "from %r" % files)
            tc.check_summary(tc.load(os.path.join(tdir, flushed[0])))
            files.remove(flushed[0])
        if label == "off":
            ensure(files == [], "dump off, yet files %r" % files)
            continue
        ensure(len(files) == 1, "wanted one dump, found %r" % files)
        check_dump(os.path.join(tdir, files[0]), res, cmd, before, after, sig)
    ensure(statuses["on"] == statuses["off"],
           "wait status %#x with the dump, %#x without"
           % (statuses["on"], statuses["off"]))


if __name__ == "__main__":
    tc.main(body)
