#!/usr/bin/env python3
"""check_demo.py DEMO MODE - the demo pipeline, end to end.

  trace     STAGEPROF_ENABLE=1: the demo prints its trace's path and where
            to open it; the trace holds one run per frame crossing from the
            reader to a worker, one flow per frame from queue_push to
            queue_pop, the queue depth counter, named threads, every stage
            once per frame in its run, load_model outside any run, and
            infer as the most expensive stage
  untraced  no STAGEPROF_ENABLE: runs, says tracing is off, writes nothing
  usage     bad arguments exit 2 with a usage message on stderr
"""
import os
import sys

import tracecheck as tc
from tracecheck import ensure, short, to_ns

FRAMES, WORKERS = 24, 3
STAGES = {"decode": "data", "preprocess": "preprocess", "infer": "compute",
          "postprocess": "postprocess", "serialize": "serve"}


def check_trace(work, demo):
    out = os.path.join(work, "traces")
    argv = [demo, "--frames", str(FRAMES), "--workers", str(WORKERS)]
    before = tc.now_pair()
    p = tc.run(argv, env=tc.clean_env(STAGEPROF_ENABLE="1",
                                      STAGEPROF_DIR=out), cwd=work)
    after = tc.now_pair()
    path = tc.only_trace(out)
    ensure("trace written to %s\n" % path in p.stdout,
           "the demo did not print the trace path:\n%s" % p.stdout)
    ensure("https://ui.perfetto.dev" in p.stdout and
           "chrome://tracing" in p.stdout,
           "the demo does not say where to open the trace:\n%s" % p.stdout)
    ensure("%d frames" % FRAMES in p.stdout, "summary line:\n%s" % p.stdout)

    t = tc.load(path)
    tc.check_events(t)
    tc.check_summary(t, complete=True)
    tc.check_metadata(t, argv, before, after)
    ensure(t.summary["events_dropped"] == 0 and
           not any(t.summary["misuse"].values()), "summary %r" % t.summary)

    names = tc.check_thread_names(
        t, ["main", "reader"] + ["worker-%d" % i for i in range(WORKERS)])
    proc = [e for e in t.by_ph["M"] if e["name"] == "process_name"][0]
    ensure(proc["args"]["name"] == "stageprof_demo", "process name %r"
           % proc["args"])

    want = {s: FRAMES for s in STAGES}
    want.update({"load_model": 1, "queue_push": FRAMES,
                 "queue_pop": FRAMES + WORKERS})
    tc.check_counts(t, want)
    tc.check_nesting(t, {s: None for s in want})
    frames = set(range(1, FRAMES + 1))
    for stage, cat in STAGES.items():
        evs = t.named("X", stage)
        ensure(all(e["cat"] == cat for e in evs), "%s not in category %s"
               % (stage, cat))
        runs = sorted(e.get("args", {}).get("run", 0) for e in evs)
        ensure(runs == sorted(frames), "%s spans do not carry each frame's "
               "run once" % stage)
        where = "reader" if stage == "decode" else "worker-"
        ensure(all(names[e["tid"]].startswith(where) for e in evs),
               "%s recorded outside %s" % (stage, where))
    lm = t.named("X", "load_model")[0]
    ensure(lm["cat"] == "engine" and "run" not in lm.get("args", {}) and
           names[lm["tid"]] == "main", "load_model: %s" % short(lm))
    pushes = t.named("X", "queue_push")
    ensure(sorted(e["args"]["run"] for e in pushes) == sorted(frames),
           "queue_push spans carry their frame's run")
    ensure(all("run" not in e.get("args", {}) for e in
               t.named("X", "queue_pop")),
           "queue_pop begins before the frame is known: no run")

    # One run per frame, from the reader to a worker, around its stages.
    tc.check_frame_pipeline(t, names, frames, ("decode", "queue_push"), 8)

    total = {s: sum(to_ns(e["dur"], "dur") for e in t.named("X", s))
             for s in STAGES}
    top = max(total, key=total.get)
    ensure(top == "infer", "infer should dominate, %s does: %r"
           % (top, total))


def check_untraced(work, demo):
    p = tc.run([demo, "--frames", "5"], cwd=work)
    ensure("tracing is off" in p.stdout and "5 frames" in p.stdout,
           "output without tracing:\n%s" % p.stdout)
    ensure(os.listdir(work) == [], "files written: %r" % os.listdir(work))


def check_usage(work, demo):
    bad = [["--frames", "0"], ["--frames", "-3"], ["--frames", "12x"],
           ["--frames", ""], ["--frames"], ["--workers", "0"],
           ["--workers", "65"], ["--workers", "abc"], ["--bogus"],
           ["extra"], ["--frames", "99999999999999999999"]]
    for args in bad:
        p = tc.run([demo] + args, cwd=work, expect_rc=2)
        ensure("usage:" in p.stderr and p.stdout == "",
               "%r: no usage message on stderr" % args)
    p = tc.run([demo, "--help"], cwd=work)
    ensure("usage:" in p.stdout, "--help prints no usage")
    p = tc.run([demo, "--frames", "1", "--workers", "1"], cwd=work)
    ensure("1 frames, 1 workers" in p.stdout, "smallest run: %s" % p.stdout)
    ensure(os.listdir(work) == [], "files written: %r" % os.listdir(work))


def body(work):
    demo, mode = os.path.abspath(sys.argv[1]), sys.argv[2]
    {"trace": check_trace, "untraced": check_untraced,
     "usage": check_usage}[mode](work, demo)


if __name__ == "__main__":
    tc.main(body)
