#!/usr/bin/env python3
"""check_detect.py PROGRAM MODE - the darknet detection workflow, end to end.

  trace     STAGEPROF_ENABLE=1 on a few small frames: every stage present
            with its category and once per frame (classify once per crop)
            in the frame's run; each run begins on the reader and ends on
            the worker that ran the frame's stages; one flow per frame
            from queue_push to queue_pop; the queue depth counter; model
            loading and the input check on main, outside every run, before
            the first; the trace's per-stage totals agree with the
            program's own clocks; the answers file agrees with the trace
  untraced  no STAGEPROF_ENABLE: answers written, no trace
  slow      --slow and DETECT_SLOW add the asked share of busy work to one
            stage, and the trace shows it in that stage's spans
  env       DETECT_* variables set the workload; a flag wins over them
  usage     bad flags and variables exit 2 with a message naming them
  inputs    missing, empty, garbage, truncated and oversized pictures and
            bad model configs exit 1 with a clear message, before any frame
  report    `stageprof report` (its path the third argument) on the
            workflow's trace: per stage, the count, total, self time,
            min, max and percentiles Python computes from the trace itself;
            the bottleneck it names is the stage the program's own clocks
            say costs most
"""
import json
import math
import os
import sys

import tracecheck as tc
from tracecheck import ensure, short, to_ns

FRAMES, WORKERS, INPUT, TOPK = 6, 2, 128, 2
SMALL = ["--frames", str(FRAMES), "--workers", str(WORKERS),
         "--input", str(INPUT), "--topk", str(TOPK)]
# The categories the workflow promises (its documentation, not its code).
STAGES = {"read": "io", "decode": "data", "queue_push": "queue",
          "queue_pop": "queue", "preprocess": "preprocess",
          "detect": "compute", "postprocess": "postprocess",
          "crop": "preprocess", "classify": "compute",
          "visualize": "visualize", "serialize": "serve"}
READER_STAGES = ("read", "decode", "queue_push")
DARKNET = "/usr/share/darknet"
SAMPLE = os.path.join(DARKNET, "data", "dog.jpg")


def need_darknet():
    tc.need_path(SAMPLE, "darknet's data is not installed (make deps)")


def env(**extra):
    """A clean environment: no profiler and no DETECT_* settings."""
    return tc.clean_env(drop="DETECT_", **extra)


def run_workflow(prog, work, args, expect_rc=0, **extra):
    """Run the workflow in @work; (process, summary or None)."""
    summary = os.path.join(work, "summary.json")
    if os.path.exists(summary):
        os.unlink(summary)
    argv = [prog] + args + ["--out", os.path.join(work, "out"),
                            "--summary-json", summary]
    p = tc.run(argv, env=env(**extra), cwd=work, timeout=240,
               expect_rc=expect_rc)
    s = None
    if os.path.exists(summary):
        with open(summary) as f:
            s = json.load(f)
    return p, s, argv


def answers(work):
    """The JSON lines the workflow wrote, by frame."""
    path = os.path.join(work, "out", "detections.jsonl")
    got = {}
    with open(path) as f:
        for line in f:
            a = json.loads(line)
            ensure(a["frame"] not in got, "frame %d answered twice"
                   % a["frame"])
            got[a["frame"]] = a
    return got


def check_answers(work, frames, topk):
    got = answers(work)
    ensure(sorted(got) == list(range(1, frames + 1)),
           "answers for frames %r, wanted 1..%d" % (sorted(got), frames))
    for a in got.values():
        ensure(a["width"] > 0 and a["height"] > 0 and a["jpeg_bytes"] > 0,
               "frame %d: %r" % (a["frame"], {k: a[k] for k in
                                               ("width", "height",
                                                "jpeg_bytes")}))
        for d in a["detections"]:
            ensure(isinstance(d["label"], str) and d["label"] and
                   0.0 < d["score"] <= 1.0 and
                   all(math.isfinite(v) for v in d["box"]),
                   "frame %d: bad detection %r" % (a["frame"], d))
        ensure(len(a["crops"]) == min(topk, len(a["detections"])),
               "frame %d: %d crops for %d detections, top-%d"
               % (a["frame"], len(a["crops"]), len(a["detections"]), topk))
        for c in a["crops"]:
            ensure(0 <= c["detection"] < len(a["detections"]) and
                   isinstance(c["label"], str) and c["label"] and
                   math.isfinite(c["score"]), "frame %d: bad crop %r"
                   % (a["frame"], c))
        # The crops are of the strongest boxes, strongest first.
        scores = sorted((d["score"] for d in a["detections"]), reverse=True)
        cropped = [a["detections"][c["detection"]]["score"]
                   for c in a["crops"]]
        ensure(cropped == scores[:len(cropped)], "frame %d: crops of boxes "
               "scoring %r, the strongest score %r" % (a["frame"], cropped,
                                                       scores[:topk]))
    return got


def own_stages(summary):
    return {s["name"]: s for s in summary["stages"]}


def check_trace(work, prog):
    need_darknet()
    out = os.path.join(work, "traces")
    before = tc.now_pair()
    p, s, argv = run_workflow(prog, work, SMALL, STAGEPROF_ENABLE="1",
                              STAGEPROF_DIR=out, STAGEPROF_BUFFER_RUNS="0")
    after = tc.now_pair()
    path = tc.only_trace(out)
    ensure("trace written to %s\n" % path in p.stdout,
           "the workflow did not print the trace path:\n%s" % p.stdout)
    ensure(s["trace"] == path and s["frames"] == FRAMES and
           s["frames_failed"] == 0, "summary %r" % s)

    t = tc.load(path)
    tc.check_events(t)
    tc.check_summary(t, complete=True)
    tc.check_metadata(t, argv, before, after)
    ensure(t.summary["events_dropped"] == 0 and
           not any(t.summary["misuse"].values()), "summary %r" % t.summary)
    names = tc.check_thread_names(
        t, ["main", "reader"] + ["worker-%d" % i for i in range(WORKERS)])

    # Every stage, in its category, as often as the program says it ran.
    own = own_stages(s)
    ensure(set(own) == set(STAGES), "own stages %r" % sorted(own))
    crops = s["crops"]
    want = {st: FRAMES for st in STAGES}
    want.update({"queue_pop": FRAMES + WORKERS, "classify": crops,
                 "load_models": 1, "check_inputs": 1})
    tc.check_counts(t, want)
    for st, cat in STAGES.items():
        ensure(own[st]["calls"] == want[st], "%s: program counted %d calls, "
               "wanted %d" % (st, own[st]["calls"], want[st]))
        evs = t.named("X", st)
        ensure(all(e["cat"] == cat for e in evs), "%s not in category %s: %s"
               % (st, cat, short(evs[0])))
        where = "reader" if st in READER_STAGES else "worker-"
        ensure(all(names[e["tid"]].startswith(where) for e in evs),
               "%s recorded outside %s" % (st, where))
    tc.check_nesting(t, {st: None for st in want})

    # Runs: one per frame, reader -> worker, around all of its spans.
    frames = set(range(1, FRAMES + 1))
    pairs = tc.check_frame_pipeline(t, names, frames, READER_STAGES, 4)
    got = check_answers(work, FRAMES, TOPK)
    for st in STAGES:
        if st == "queue_pop":
            continue  # waits before the frame is known: no run
        runs = sorted(e.get("args", {}).get("run", 0)
                      for e in t.named("X", st))
        if st == "classify":
            want_runs = sorted(f for f, a in got.items()
                               for _ in a["crops"])
        else:
            want_runs = sorted(frames)
        ensure(runs == want_runs, "%s spans carry runs %r, wanted %r"
               % (st, runs, want_runs))
    ensure(all("run" not in e.get("args", {})
               for e in t.named("X", "queue_pop")),
           "queue_pop carries a run")
    first_begin = min(to_ns(b["ts"], "ts") for b, _ in pairs.values())

    # Start-up work: on main, in no run, before the first frame.
    for st in ("load_models", "check_inputs"):
        ev = t.named("X", st)[0]
        ensure(ev["cat"] == "engine" and "run" not in ev.get("args", {}) and
               names[ev["tid"]] == "main" and
               to_ns(ev["ts"], "ts") + to_ns(ev["dur"], "dur") <= first_begin,
               "%s is not start-up work outside the runs: %s"
               % (st, short(ev)))

    # The trace's time per stage is the program's own, give or take the
    # cost of the clock reads the span also covers.
    total = {}
    for st in STAGES:
        evs = t.named("X", st)
        total[st] = sum(to_ns(e["dur"], "dur") for e in evs)
        mine = own[st]["total_ns"]
        # 10 ms more once per stage: the thread may lose its core between
        # the span's first clock read and the program's (a timeslice).
        ensure(mine - 50000 * len(evs) <= total[st] <=
               mine * 1.002 + 200000 * len(evs) + 10000000,
               "%s: trace says %d ns, the program's clock %d ns"
               % (st, total[st], mine))
    work_stages = [st for st in STAGES if STAGES[st] != "queue"]
    top_trace = max(work_stages, key=lambda st: total[st])
    top_own = max(work_stages, key=lambda st: own[st]["total_ns"])
    ensure(top_trace == top_own, "the trace's costliest stage is %s, the "
           "program's own clocks say %s" % (top_trace, top_own))

    # The answers file and the trace tell the same story.
    ensure(sum(len(a["crops"]) for a in got.values()) == crops,
           "answers hold %d crops, the summary says %d"
           % (sum(len(a["crops"]) for a in got.values()), crops))
    for ev in t.named("X", "serialize"):
        a = got[ev["args"]["run"]]
        ensure(ev["args"]["detections"] == len(a["detections"]),
               "frame %d: serialize says %d detections, the answer has %d"
               % (a["frame"], ev["args"]["detections"],
                  len(a["detections"])))


def check_untraced(work, prog):
    need_darknet()
    p, s, _ = run_workflow(prog, work, SMALL)
    ensure("tracing is off" in p.stdout and
           "%d frames (0 failed)" % FRAMES in p.stdout,
           "output without tracing:\n%s" % p.stdout)
    ensure(s["trace"] is None, "summary names a trace: %r" % s["trace"])
    ensure(sorted(os.listdir(work)) == ["out", "summary.json"],
           "files written: %r" % os.listdir(work))
    check_answers(work, FRAMES, TOPK)


def check_slow(work, prog):
    need_darknet()
    out = os.path.join(work, "traces")
    for how in ("flag", "env"):
        pct = 300
        if how == "flag":
            args, extra = SMALL + ["--slow", "preprocess:%d" % pct], {}
        else:
            args, extra = SMALL, {"DETECT_SLOW": "preprocess:%d" % pct}
        p, s, _ = run_workflow(prog, work, args, STAGEPROF_ENABLE="1",
                               STAGEPROF_DIR=out, **extra)
        ensure(s["slow"] == {"stage": "preprocess", "pct": pct},
               "%s: summary.slow %r" % (how, s["slow"]))
        ensure("preprocess slowed down by %d%%" % pct in p.stdout,
               "%s: not reported:\n%s" % (how, p.stdout))
        own = own_stages(s)
        pre = own["preprocess"]
        work_ns = pre["cpu_ns"] - pre["busy_cpu_ns"]
        # Busy work of 3x the stage's own CPU time, measured on the thread's
        # CPU clock (waiting for a core counts in neither); the overshoot
        # is one round of the busy loop per call.
        ensure(work_ns > 0 and 3.0 <= pre["busy_cpu_ns"] / work_ns <= 3.05,
               "%s: busy %d ns for %d ns of work" % (how, pre["busy_cpu_ns"],
                                                      work_ns))
        ensure(all(st["busy_cpu_ns"] == 0 for n, st in own.items()
                   if n != "preprocess"), "%s: busy work elsewhere: %r"
               % (how, own))
        t = tc.load(s["trace"])
        spans = sum(to_ns(e["dur"], "dur") for e in
                    t.named("X", "preprocess"))
        ensure(spans >= pre["total_ns"] - 50000 * FRAMES,
               "%s: the trace's preprocess (%d ns) misses the busy work "
               "(%d ns in all)" % (how, spans, pre["total_ns"]))
        os.unlink(s["trace"])


def check_env(work, prog):
    need_darknet()
    p, s, _ = run_workflow(prog, work, [], DETECT_FRAMES="3",
                           DETECT_WORKERS="1", DETECT_INPUT="96",
                           DETECT_TOPK="1")
    ensure((s["frames"], s["workers"], s["input"], s["topk"]) ==
           (3, 1, 96, 1), "variables not applied: %r" % s)
    check_answers(work, 3, 1)
    p, s, _ = run_workflow(prog, work, ["--frames", "2", "--topk", "0"],
                           DETECT_FRAMES="3", DETECT_WORKERS="1",
                           DETECT_INPUT="96", DETECT_TOPK="1")
    ensure((s["frames"], s["topk"], s["crops"]) == (2, 0, 0),
           "flags do not win over the variables: %r" % s)
    check_answers(work, 2, 0)


def check_usage(work, prog):
    bad = [["--frames", "0"], ["--frames", "-3"], ["--frames", "12x"],
           ["--frames", ""], ["--frames"], ["--workers", "0"],
           ["--workers", "65"], ["--input", "100"], ["--input", "32"],
           ["--input", "2048"], ["--topk", "33"], ["--slow", "detect"],
           ["--slow", "nosuch:10"], ["--slow", "detect:0"],
           ["--slow", "detect:1001"], ["--thresh", "1.5"],
           ["--thresh", "nan"], ["--images", ""], ["--images", "a,,b"],
           ["--bogus", "1"], ["extra"], ["--out", ""],
           ["--frames", "99999999999999999999"]]
    for args in bad:
        p = tc.run([prog] + args, env=env(), cwd=work, expect_rc=2)
        ensure("usage:" in p.stderr and args[0] in p.stderr and
               p.stdout == "", "%r: no usage message naming it" % args)
    for var, val in (("DETECT_FRAMES", "many"), ("DETECT_WORKERS", "0"),
                     ("DETECT_INPUT", "100"), ("DETECT_TOPK", "-1"),
                     ("DETECT_SLOW", "detect:"), ("DETECT_FRAMES", "")):
        p = tc.run([prog], env=env(**{var: val}), cwd=work, expect_rc=2)
        ensure("%s='%s'" % (var, val) in p.stderr and p.stdout == "",
               "%s=%r: message %r" % (var, val, p.stderr))
    p = tc.run([prog, "--help"], env=env(), cwd=work)
    ensure("usage:" in p.stdout and "DETECT_FRAMES" in p.stdout,
           "--help prints no usage")
    ensure(os.listdir(work) == [], "files written: %r" % os.listdir(work))


def check_inputs(work, prog):
    need_darknet()
    with open(SAMPLE, "rb") as f:
        dog = f.read()
    files = {"empty.jpg": b"", "garbage.jpg": b"GIF89a not a jpeg" * 100,
             "cut.jpg": dog[:len(dog) // 2],
             "huge.jpg": tc.jpeg_with_size(dog, 60000, 50000),
             "nonet.cfg": b"# no net section\n[convolutional]\nfilters=1\n"}
    for name, data in files.items():
        with open(os.path.join(work, name), "wb") as f:
            f.write(data)
    w = lambda n: os.path.join(work, n)
    cases = [
        (["--images", w("missing.jpg")], "missing.jpg: No such file"),
        (["--images", SAMPLE + "," + w("empty.jpg")], "not a JPEG"),
        (["--images", w("garbage.jpg")], "bad JPEG"),
        (["--images", w("cut.jpg")], "corrupt or truncated JPEG"),
        (["--images", w("huge.jpg")], "larger than 8192x8192"),
        (["--cfg", w("missing.cfg")], "missing.cfg: cannot open"),
        (["--cfg", w("nonet.cfg")], "not a darknet config"),
        (["--classifier-cfg", w("nonet.cfg")], "not a darknet config"),
        (["--weights", w("missing.weights")], "cannot open"),
        (["--cfg", os.path.join(DARKNET, "cfg", "tiny.cfg")],
         "not a detector"),
    ]
    for args, msg in cases:
        p, s, _ = run_workflow(prog, work, ["--frames", "2", "--workers",
                                            "1", "--input", "64"] + args,
                               expect_rc=1, STAGEPROF_ENABLE="1",
                               STAGEPROF_DIR=os.path.join(work, "t"))
        ensure(msg in p.stderr and "detect_workflow:" in p.stderr,
               "%r: wanted %r in the message, got %r" % (args, msg,
                                                         p.stderr))
        answers_file = os.path.join(work, "out", "detections.jsonl")
        ensure(s is None and (not os.path.exists(answers_file) or
                              os.path.getsize(answers_file) == 0),
               "%r: frames were processed" % args)
    # An output directory that cannot be made.
    p = tc.run([prog, "--frames", "1", "--out", w("empty.jpg") + "/sub"],
               env=env(), cwd=work, expect_rc=1)
    ensure("cannot create" in p.stderr, "bad --out: %r" % p.stderr)


def percentile(sorted_ns, p):
    """numpy's default (linear) percentile of integer ns, in ns."""
    rank = p * (len(sorted_ns) - 1)
    lo = int(rank)
    if lo + 1 >= len(sorted_ns):
        return float(sorted_ns[-1])
    return sorted_ns[lo] + (rank - lo) * (sorted_ns[lo + 1] - sorted_ns[lo])


def check_report(work, prog):
    need_darknet()
    cli = os.path.abspath(sys.argv[3])
    out = os.path.join(work, "traces")
    p, s, _ = run_workflow(prog, work, SMALL, STAGEPROF_ENABLE="1",
                           STAGEPROF_DIR=out, STAGEPROF_BUFFER_RUNS="0")
    t = tc.load(s["trace"])
    tc.check_nesting(t)
    r, _ = tc.run_json([cli, "report", "--format=json", out], env=env())
    got = {(st["name"], st["category"]): st for st in r["stages"]}
    us = lambda ns: round(ns / 1000.0, 3)
    slices = [sl for sls in t.slices.values() for sl in sls]
    for key in {(sl.name, sl.ev["cat"]) for sl in slices}:
        mine = [sl for sl in slices if (sl.name, sl.ev["cat"]) == key]
        durs = sorted(sl.end - sl.start for sl in mine)
        selfs = 0
        for sl in mine:
            kids = [c for c in slices if c.parent is sl]
            selfs += max(0, (sl.end - sl.start) -
                         sum(min(c.end, sl.end) - c.start for c in kids))
        st = got.get(key)
        ensure(st is not None, "report has no stage %r" % (key,))
        want = {"count": len(durs), "total_us": us(sum(durs)),
                "self_us": us(selfs), "min_us": us(durs[0]),
                "max_us": us(durs[-1]),
                "p50_us": us(percentile(durs, 0.5)),
                "p90_us": us(percentile(durs, 0.9)),
                "p99_us": us(percentile(durs, 0.99))}
        for k, v in want.items():
            # 1 ns apart at most: interpolated percentiles are rounded.
            ensure(abs(st[k] - v) <= 0.0015, "%r %s: report %r, trace %r"
                   % (key, k, st[k], v))
    runs = got.get(("frame", "run"))
    ensure(runs is not None and runs["async"] and runs["count"] == FRAMES,
           "the frame runs are not an async stage of %d: %r" % (FRAMES, runs))
    starts = min(sl.start for sl in slices)
    ends = max(sl.end for sl in slices)
    ensure(abs(r["trace"]["wall_us"] - us(ends - starts)) <= 0.001,
           "wall %r, trace %r" % (r["trace"]["wall_us"], us(ends - starts)))
    ensure(r["trace"]["producer"] == "stageprof" and
           r["trace"]["complete"] is True and r["trace"]["dropped"] == 0 and
           r["trace"]["events"] == len(t.events), "trace %r" % r["trace"])
    names = {th["name"] for th in r["threads"]}
    ensure(names == {"main", "reader"} |
           {"worker-%d" % i for i in range(WORKERS)}, "threads %r" % names)
    # The verdict names the stage the program's own clocks say costs most.
    work = [st for st in s["stages"] if st["category"] != "queue"]
    own_top = max(work, key=lambda st: st["total_ns"])
    ensure(r["bottleneck"] is not None and
           (r["bottleneck"]["stage"], r["bottleneck"]["category"]) ==
           (own_top["name"], own_top["category"]),
           "bottleneck %r, the program's own clocks say %s"
           % (r["bottleneck"], own_top["name"]))
    ensure(r["runs"]["kind"] == "stageprof" and
           r["runs"]["count"] == FRAMES, "runs %r" % r["runs"])
    path = {c["stage"]: c for c in r["critical_path"]}
    ensure(path.get(own_top["name"], {}).get("runs") == FRAMES,
           "%s is not on every run's critical path: %r"
           % (own_top["name"], path.get(own_top["name"])))
    q = [x for x in r["queues"] if x["name"] == "frame_handoff"]
    ensure(len(q) == 1 and q[0]["count"] == FRAMES,
           "queues %r" % r["queues"])
    depth = [c for c in r["counters"] if c["name"] == "queue_depth"]
    vals = [e["args"]["value"] for e in t.named("C", "queue_depth")]
    ensure(len(depth) == 1 and depth[0]["count"] == len(vals) and
           depth[0]["max"] == max(vals) and depth[0]["min"] == min(vals),
           "queue_depth %r, trace %r" % (depth, vals))


def body(work):
    prog, mode = os.path.abspath(sys.argv[1]), sys.argv[2]
    {"trace": check_trace, "untraced": check_untraced, "slow": check_slow,
     "env": check_env, "usage": check_usage,
     "inputs": check_inputs, "report": check_report}[mode](work, prog)


if __name__ == "__main__":
    tc.main(body)
