#!/usr/bin/env python3
"""check_sweep.py STAGEPROF MODE [ARG] - `stageprof sweep` end to end.

MODE:
  fake      a small pipeline written here (Python) that records a
            stageprof-style trace into its STAGEPROF_DIR, its "infer"
            stage SCALE times as long, and appends one line per run to a
            log (its environment and arguments):
              - 2 x 2 variants x 3 repetitions: every run happens once, with
                its parameters in the environment and {NAME} substituted
                in the arguments (other braces left alone); the runs are
                interleaved (each round starts one variant later); the
                documented layout (sweep.state, VARIANT/rep-K with the
                traces, stdout.txt, stderr.txt, summary.json, sweep.html);
              - the comparison: SCALE=1.3 is slower in infer and in
                throughput, with intervals excluding 0; the best variant
                for throughput and p99 has SCALE=1, "the difference is
                real"; the page has one chart row per variant, no script;
              - a variant whose command fails is recorded and reported, the
                sweep goes on, exit 1; a run over --timeout-s is stopped;
              - Ctrl-C (SIGINT to the sweep and its run) keeps what finished,
                says how to resume, exit 130; --resume runs only what was
                left, and a different plan is refused;
              - bad input: --param that does not parse, a command that does
                not exist, no command, --repeat 0, --resume with nothing
                there, a DIR with a sweep already (exit 2 each, a message
                naming the problem).
  workflow  ARG is examples/detect_workflow: DETECT_WORKERS=1,2 x 2
            repetitions of a tiny run (8 frames of 64 pixels): each run
            writes its trace with the number of worker threads asked, the
            comparison and the page are made.

Exit status: 0 pass, 1 fail, 77 skip.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tracecheck as tc  # noqa: E402
from tracecheck import ensure  # noqa: E402

FAKE = r'''#!/usr/bin/env python3
import json, math, os, random, sys, time
d = os.environ["STAGEPROF_DIR"]
scale = float(os.environ.get("SCALE", "1"))
with open(os.environ["SWEEP_LOG"], "a") as log:
    log.write(json.dumps({"SCALE": os.environ.get("SCALE"),
                          "MODE": os.environ.get("MODE"),
                          "enable": os.environ.get("STAGEPROF_ENABLE"),
                          "dir": d, "argv": sys.argv[1:]}) + "\n")
if os.environ.get("MODE") == "fail":
    sys.stderr.write("fake: failing on purpose\n")
    sys.exit(3)
time.sleep(float(os.environ.get("SLEEP", "0")))
rng = random.Random()
ev = [{"ph": "M", "name": "thread_name", "pid": 1, "tid": 1,
       "args": {"name": "worker"}}]
t = 1000.0
for r in range(1, 41):
    ev.append({"ph": "b", "name": "req", "cat": "run", "id": hex(r),
               "ts": t, "pid": 1, "tid": 1, "args": {"run": r}})
    for name, ms in (("decode", 2.0), ("infer", 10.0)):
        dur = ms * 1000 * math.exp(rng.gauss(0, 0.05))
        if name == "infer":
            dur *= scale
        ev.append({"ph": "X", "name": name, "cat": "compute", "ts": round(t, 3),
                   "dur": round(dur, 3), "pid": 1, "tid": 1,
                   "args": {"run": r}})
        t += dur + 5
    ev.append({"ph": "e", "name": "req", "cat": "run", "id": hex(r),
               "ts": round(t, 3), "pid": 1, "tid": 1, "args": {"run": r}})
with open(os.path.join(d, "trace.json"), "w") as f:
    json.dump({"stageprof": {"host": "h"}, "traceEvents": ev}, f)
print("ran", " ".join(sys.argv[1:]))
'''


def sweep(cli, args, expect_rc, env=None, cwd=None, timeout=300):
    p = subprocess.run([cli, "sweep"] + args, capture_output=True, text=True,
                       timeout=timeout, env=env or tc.clean_env(), cwd=cwd,
                       errors="replace")
    ensure(p.returncode == expect_rc,
           "stageprof sweep %s: exit %d, wanted %d\nstdout:\n%s\nstderr:\n%s"
           % (" ".join(args), p.returncode, expect_rc, p.stdout[-3000:],
              p.stderr[-3000:]))
    return p


def log_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fake(cli, work):
    prog = os.path.join(work, "fake.py")
    with open(prog, "w") as f:
        f.write(FAKE)
    os.chmod(prog, 0o755)
    log = os.path.join(work, "runs.log")
    env = tc.clean_env(SWEEP_LOG=log)
    out = os.path.join(work, "s1")

    p = sweep(cli, ["--param", "SCALE=1,1.3", "--param", "MODE=a,b",
                    "--repeat", "3", "-o", out, "--", prog, "--scale",
                    "{SCALE}", "x{MODE}y", "{NOPE}", "{SCALE"], 0, env=env)
    runs = log_lines(log)
    ensure(len(runs) == 12, "%d runs, wanted 12" % len(runs))
    seen = {}
    for r in runs:
        ensure(r["enable"] == "1", "STAGEPROF_ENABLE %r" % r["enable"])
        ensure(r["argv"] == ["--scale", r["SCALE"], "x%sy" % r["MODE"],
                             "{NOPE}", "{SCALE"], "argv %r" % r["argv"])
        key = (r["SCALE"], r["MODE"])
        seen[key] = seen.get(key, 0) + 1
        m = re.search(r"/SCALE=([^/]*),MODE=([^/]*)/rep-(\d)$", r["dir"])
        ensure(m and (m.group(1), m.group(2)) == key, "dir %r" % r["dir"])
    ensure(sorted(seen.values()) == [3, 3, 3, 3], "runs per variant %r"
           % seen)
    # Interleaved: rounds of the four variants, each starting one later.
    order = [(r["SCALE"], r["MODE"]) for r in runs]
    variants = [("1", "a"), ("1", "b"), ("1.3", "a"), ("1.3", "b")]
    want = [variants[(j + rep) % 4] for rep in range(3) for j in range(4)]
    ensure(order == want, "run order %r, wanted %r" % (order, want))
    for v in ("SCALE=1,MODE=a", "SCALE=1.3,MODE=b"):
        for rep in (1, 2, 3):
            d = os.path.join(out, v, "rep-%d" % rep)
            for f in ("trace.json", "stdout.txt", "stderr.txt"):
                ensure(os.path.isfile(os.path.join(d, f)), "no %s in %s"
                       % (f, d))
    with open(os.path.join(out, "SCALE=1,MODE=a", "rep-1", "stdout.txt")) as f:
        ensure(f.read().startswith("ran --scale 1 xay"), "stdout.txt")
    with open(os.path.join(out, "sweep.state")) as f:
        state = f.read().splitlines()
    ensure(state[:4] == ["stageprof-sweep 1", "repeat 3", "param SCALE 1 1.3",
                         "param MODE a b"] and
           sum(1 for s in state if s.startswith("run ")) == 12,
           "sweep.state:\n%s" % "\n".join(state))

    doc = json.load(open(os.path.join(out, "summary.json")))
    vs = {v["variant"]: v for v in doc["variants"]}
    ensure(set(vs) == {"SCALE=1,MODE=a", "SCALE=1,MODE=b", "SCALE=1.3,MODE=a",
                       "SCALE=1.3,MODE=b"}, "variants %r" % list(vs))
    slow = vs["SCALE=1.3,MODE=a"]
    ensure(slow["throughput_change"]["hi"] < 0 and
           slow["runs_p99_change"]["lo"] > 0, "slow variant %r"
           % {k: slow[k] for k in ("throughput_change", "runs_p99_change")})
    infer = [s for s in slow["stages"] if s["name"] == "infer"][0]
    ensure(0.2 < infer["p50_change"]["rel"] < 0.4 and
           infer["p50_change"]["lo"] > 0.1, "infer %r" % infer)
    same = vs["SCALE=1,MODE=b"]
    ensure(same["throughput_change"]["lo"] < 0.05 and
           same["throughput_change"]["hi"] > -0.05, "same %r"
           % same["throughput_change"])
    for k in ("best_throughput", "best_p99"):
        b = doc[k]
        ensure(b["variant"].startswith("SCALE=1,") and
               b["runner_up"].startswith("SCALE=1,"), "%s %r" % (k, b))
    ensure("best for throughput: SCALE=1," in p.stdout, p.stdout)
    html = open(os.path.join(out, "sweep.html")).read()
    ensure("<script" not in html and
           html.count('<svg class="chart interval"') == 2 and
           html.count('<g class="row"') == 8, "sweep.html charts")

    # JSON on stdout equals summary.json; a second --resume reruns nothing.
    n0 = len(log_lines(log))
    p = sweep(cli, ["-o", out, "--resume", "--format", "json", "-q"], 0,
              env=env)
    ensure(json.loads(p.stdout)["variants"] == doc["variants"] and
           len(log_lines(log)) == n0, "resume of a finished sweep")

    # A failing variant: recorded, reported, the sweep goes on, exit 1.
    out2 = os.path.join(work, "s2")
    p = sweep(cli, ["--param", "MODE=ok,fail", "--repeat", "2", "-o", out2,
                    "--", prog], 1, env=env)
    ensure("FAILED" in p.stderr and "exit status 3" in p.stderr, p.stderr)
    doc = json.load(open(os.path.join(out2, "summary.json")))
    fv = [v for v in doc["variants"] if v["variant"] == "MODE=fail"][0]
    ensure([r["state"] for r in fv["runs"]] == ["failed", "failed"] and
           fv["runs"][0]["exit"] == 3 and "throughput" not in fv,
           "failed variant %r" % fv)
    ensure(re.search(r"MODE=fail\s+0/2\s+-\s+\(failed runs\)", p.stdout),
           p.stdout)
    with open(os.path.join(out2, "MODE=fail", "rep-1", "stderr.txt")) as f:
        ensure("failing on purpose" in f.read(), "stderr.txt of a failure")

    # --timeout-s: a run that hangs is stopped (SIGTERM) and recorded.
    out4 = os.path.join(work, "s4")
    p = sweep(cli, ["--param", "SCALE=1", "--repeat", "1", "--timeout-s",
                    "1", "-o", out4, "--", prog], 1,
              env=tc.clean_env(SWEEP_LOG=log, SLEEP="30"), timeout=60)
    doc = json.load(open(os.path.join(out4, "summary.json")))
    r = doc["variants"][0]["runs"][0]
    ensure(r["state"] == "failed" and r["exit"] == 128 + signal.SIGTERM and
           r["seconds"] < 5, "timed-out run %r" % r)

    # Ctrl-C: what finished is kept; --resume does the rest only.
    out3 = os.path.join(work, "s3")
    log3 = os.path.join(work, "runs3.log")
    env3 = tc.clean_env(SWEEP_LOG=log3, SLEEP="0.4")
    q = subprocess.Popen([cli, "sweep", "--param", "SCALE=1,2", "--repeat",
                          "3", "-o", out3, "--", prog], env=env3,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while len(log_lines(log3)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(q.pid, signal.SIGINT)  # as a terminal's Ctrl-C does
    so, se = q.communicate(timeout=60)
    ensure(q.returncode == 130, "after SIGINT: exit %d\n%s" % (q.returncode,
                                                               se))
    m = re.search(r"interrupted: (\d) of 6 runs done.*resume with: "
                  r"stageprof sweep -o (\S+) --resume", se)
    ensure(m and m.group(2) == out3, "no resume hint: %r" % se)
    kept = int(m.group(1))
    ensure(1 <= kept < 6, "%d runs kept" % kept)
    started = len(log_lines(log3))
    sweep(cli, ["-o", out3, "--resume", "-q"], 0, env=env3)
    ensure(len(log_lines(log3)) == started + (6 - kept),
           "resume ran %d runs, wanted %d"
           % (len(log_lines(log3)) - started, 6 - kept))
    p = sweep(cli, ["-o", out3, "--resume", "--param", "SCALE=1,3", "--",
                    prog], 2, env=env3)
    ensure("holds another plan" in p.stderr, p.stderr)

    # Bad input.
    for args, words in (
            (["--param", "SCALE", "--", prog], ["NAME=V1,V2"]),
            (["--param", "=1", "--", prog], ["NAME=V1,V2"]),
            (["--param", "1X=1", "--", prog], ["NAME=V1,V2"]),
            (["--param", "X=", "--", prog], ["values must be"]),
            (["--param", "X=1,,2", "--", prog], ["values must be"]),
            (["--param", "X=1,1", "--", prog], ["given twice"]),
            (["--param", "X=1", "--param", "X=2", "--", prog],
             ["given twice"]),
            (["--param", "X=1", "--", os.path.join(work, "nope")],
             ["no such command"]),
            (["--param", "X=1", "--", "no-such-program-xyz"],
             ["no such command"]),
            (["--param", "X=1"], ["no command"]),
            (["--", prog], ["no --param"]),
            (["--param", "X=1", "--repeat", "0", "--", prog], ["--repeat"]),
            (["-o", os.path.join(work, "none"), "--resume"],
             ["nothing to resume"]),
            (["--param", "SCALE=1", "-o", out, "--", prog],
             ["a sweep is there already"])):
        p = sweep(cli, args, 2, env=env)
        for w in words:
            ensure(w in p.stderr, "sweep %s: %r not in:\n%s"
                   % (" ".join(args), w, p.stderr))
    print("fake: 12 interleaved runs, comparison, failure, Ctrl-C after %d "
          "runs and resume, 14 bad inputs" % kept)


def workflow(cli, prog, work):
    tc.need_path("/usr/share/darknet/cfg/yolov3-tiny.cfg", "darknet")
    out = os.path.join(work, "sweep")
    p = sweep(cli, ["--param", "DETECT_WORKERS=1,2", "--repeat", "2", "-o",
                    out, "--", prog, "--frames", "8", "--input", "64",
                    "--topk", "1", "--out", os.path.join(work, "o{DETECT_WORKERS}")],
              0, cwd=work, timeout=600)
    for w in ("1", "2"):
        ensure(os.path.isdir(os.path.join(work, "o" + w)), "--out o%s" % w)
        for rep in (1, 2):
            d = os.path.join(out, "DETECT_WORKERS=%s" % w, "rep-%d" % rep)
            traces = [f for f in os.listdir(d) if f.endswith(".json")]
            ensure(len(traces) == 1, "%s: %r" % (d, os.listdir(d)))
            t = tc.load(os.path.join(d, traces[0]))
            names = {e["args"]["name"] for e in t.by_ph["M"]
                     if e.get("name") == "thread_name"}
            workers = [n for n in names if n.startswith("worker")]
            ensure(len(workers) == int(w), "%s: threads %r, wanted %s "
                   "workers" % (d, sorted(names), w))
    doc = json.load(open(os.path.join(out, "summary.json")))
    ensure(len(doc["variants"]) == 2 and
           all(v.get("throughput") for v in doc["variants"]) and
           doc["best_throughput"]["variant"].startswith("DETECT_WORKERS="),
           "summary %r" % doc["best_throughput"])
    ensure(os.path.getsize(os.path.join(out, "sweep.html")) > 1000, "page")
    print("workflow: 2 variants x 2 runs; best throughput %s"
          % doc["best_throughput"]["variant"])


def body(work):
    cli, mode = os.path.abspath(sys.argv[1]), sys.argv[2]
    if mode == "fake":
        fake(cli, work)
    elif mode == "workflow":
        workflow(cli, os.path.abspath(sys.argv[3]), work)
    else:
        raise tc.CheckError("unknown mode %r" % mode)


if __name__ == "__main__":
    tc.main(body)
