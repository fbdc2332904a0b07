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
    pairs = tc.check_async(t)
    ensure({int(k[1], 16) for k in pairs} == frames and
           all(k[0] == "run" and k[2] == "frame" for k in pairs),
           "runs %r" % sorted(pairs)[:5])
    per_run = {}
    for ev in t.by_ph["X"]:
        r = ev.get("args", {}).get("run")
        if r:
            per_run.setdefault(r, []).append(ev)
    for (cat, hid, name), (b, e) in pairs.items():
        ensure(names[b["tid"]] == "reader" and
               names[e["tid"]].startswith("worker-"),
               "run %s goes %s -> %s" % (hid, names[b["tid"]],
                                         names[e["tid"]]))
        rid = int(hid, 16)
        ends = {names[x["tid"]] for x in per_run[rid]
                if x["name"] in STAGES and x["name"] != "decode"}
        ensure(ends == {names[e["tid"]]}, "frame %d's stages on %r, its "
               "run ended on %s" % (rid, ends, names[e["tid"]]))
        lo, hi = to_ns(b["ts"], "ts"), to_ns(e["ts"], "ts")
        for x in per_run[rid]:
            ensure(lo <= to_ns(x["ts"], "ts") <= hi,
                   "span outside its frame's run: %s" % short(x))

    flows = tc.check_flows(t, inside=("queue_push", "queue_pop"))
    ensure({int(i, 16) for i in flows} == frames, "flow ids %r"
           % sorted(flows)[:5])
    for s_ev, f_ev in flows.values():
        ensure(names[s_ev["tid"]] == "reader" and
               names[f_ev["tid"]].startswith("worker-"),
               "flow goes %s -> %s" % (names[s_ev["tid"]],
                                       names[f_ev["tid"]]))

    depth = t.named("C", "queue_depth")
    ensure(len(depth) == 2 * FRAMES, "%d queue_depth samples" % len(depth))
    ensure(all(isinstance(e["args"]["value"], int) and
               0 <= e["args"]["value"] <= 8 for e in depth),
           "queue_depth out of range")
    ensure(all(names[e["tid"]] == "reader" or
               names[e["tid"]].startswith("worker-") for e in depth),
           "queue_depth recorded by the wrong thread")

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
