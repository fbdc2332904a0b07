#!/usr/bin/env python3
"""check_diff.py STAGEPROF MODE [ARG] - `stageprof diff` end to end.

MODE:
  synthetic   traces written here, with seeded log-normal durations per
              stage and a per-repetition drift, in the layout stageprof
              writes. Each scenario checks the exit status, the JSON
              document (docs/cli/stageprof-diff.md) and the text:
                - 5 against 5 repetitions of the same workload pass
                  --fail-on 'p95:+5%' with every stage "no change";
                - the same with one stage 30% slower fails the gate,
                  naming that stage and no other, verdict "slower";
                - a 20% throughput drop fires 'throughput:-3%';
                - one trace per side: a block bootstrap, said to be
                  optimistic; 2 against 2: "too few to judge", a rule
                  "not judged", exit 0;
                - another host or CPU: flagged loudly (cross_machine);
                  another clock and settings: listed;
                - other producers (a side of plain Chrome traces) and
                  unrelated workloads (no stage in common): warnings,
                  stages on one side listed;
                - unreadable, empty or missing inputs, rules that do not
                  parse, a page that cannot be written: exit 2 with a
                  message naming the side, the file or the grammar;
                - --format md and --html (the page: valid, one interval
                  row per compared stage, names escaped).
  workflow    ARG is examples/detect_workflow's program: 4 repetitions of
              the same build twice, then 4 with --slow detect:30 (30% more
              work in one stage). The two same-build sets pass
              --fail-on 'p95:+5%'; the slowed set fails it, naming detect.
  kineto      ARG is the folder holding trace_diff/control and
              trace_diff/test (real PyTorch traces of a job before and
              after a change): one trace per side, so the block bootstrap;
              the end-to-end steps are slower, and the output says the
              interval is optimistic. Skips when the folder is absent.

Exit status: 0 pass, 1 fail, 77 skip.
"""
import gzip
import json
import math
import os
import random
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tracecheck as tc  # noqa: E402
from tracecheck import ensure  # noqa: E402

STAGES = {"read": ("io", 2.0), "decode": ("data", 6.0),
          "preprocess": ("preprocess", 4.0), "infer": ("compute", 30.0),
          "postprocess": ("postprocess", 1.5), "serialize": ("serve", 0.5)}


def write_trace(path, seed, runs=60, slow=None, factor=1.0, host="box1",
                cpu="Test CPU", clock="tsc", config=None, producer="stageprof",
                stages=STAGES, names=None, unit=None, header=None):
    """A trace of @runs runs through @stages (ms means), log-normal with
    sigma 0.15 and a per-repetition drift of 2%; stage @slow takes @factor
    times as long. @names renames stages (hostile names)."""
    rng = random.Random(seed)
    drift = math.exp(rng.gauss(0, 0.02))
    ev = [{"ph": "M", "name": "process_name", "pid": 1, "tid": 0,
           "args": {"name": "synthetic"}},
          {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1,
           "args": {"name": "worker"}}]
    t = 1000.0
    for r in range(1, runs + 1):
        begin = t
        if producer == "stageprof":
            ev.append({"ph": "b", "name": "request", "cat": "run",
                       "id": hex(r), "ts": round(t, 3), "pid": 1, "tid": 1,
                       "args": {"run": r}})
        for name, (cat, mean_ms) in stages.items():
            ms = mean_ms * drift * math.exp(rng.gauss(0, 0.15))
            if name == slow:
                ms *= factor
            e = {"ph": "X", "name": (names or {}).get(name, name), "cat": cat,
                 "ts": round(t, 3), "dur": round(ms * 1000, 3), "pid": 1,
                 "tid": 1}
            if producer == "stageprof":
                e["args"] = {"run": r}
            ev.append(e)
            t += ms * 1000 + 5
        if producer == "stageprof":
            ev.append({"ph": "e", "name": "request", "cat": "run",
                       "id": hex(r), "ts": round(t, 3), "pid": 1, "tid": 1,
                       "args": {"run": r}})
        else:
            # A Chrome trace without run ids: a top-level span per run.
            ev.append({"ph": "X", "name": "step", "cat": "top",
                       "ts": round(begin - 1, 3),
                       "dur": round(t - begin + 2, 3), "pid": 1, "tid": 2})
        t += 200
    doc = {"traceEvents": ev}
    if unit:
        doc["displayTimeUnit"] = unit
    if producer == "stageprof":
        doc["stageprof"] = {
            "format": 1, "version": "0.1.0", "pid": 1, "host": host,
            "cpu_model": cpu, "cores": 2, "kernel": "Linux 6.1",
            "command_line": ["./pipeline", "--frames", str(runs)],
            "clock": {"source": clock},
            "config": config or {"enable": 1, "dir": "/tmp/x",
                                 "buffer_runs": 64, "sample_runs": 1}}
        doc["stageprof"].update(header or {})
        doc["stageprof_summary"] = {"complete": True,
                                    "events_dropped_total": 0}
    with open(path, "w") as f:
        json.dump(doc, f)


def side(work, name, reps, seed, **kw):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    for i in range(reps):
        write_trace(os.path.join(d, "rep%02d.json" % i), seed * 1000 + i, **kw)
    return d


def diff(cli, args, expect_rc):
    p = subprocess.run([cli, "diff"] + args, capture_output=True, text=True,
                       timeout=120, env=tc.clean_env(), errors="replace")
    ensure(p.returncode == expect_rc,
           "stageprof diff %s: exit %d, wanted %d\nstdout:\n%s\nstderr:\n%s"
           % (" ".join(args), p.returncode, expect_rc, p.stdout[-4000:],
              p.stderr[-2000:]))
    return p


def diff_json(cli, args, expect_rc):
    p = diff(cli, args + ["--format", "json"], expect_rc)
    try:
        doc = json.loads(p.stdout)
    except ValueError as e:
        raise tc.CheckError("diff --format json printed bad JSON (%s):\n%s"
                            % (e, p.stdout[:2000]))
    check_schema(doc)
    ensure(doc["exit_status"] == expect_rc, "exit_status %r, exit %d"
           % (doc["exit_status"], expect_rc))
    return doc, p


def check_schema(doc):
    """The members docs/cli/stageprof-diff.md promises, with their types."""
    for k in ("stageprof_diff", "base", "new", "method", "environment",
              "stages", "runs", "throughput", "only_base", "only_new",
              "rules", "exit_status"):
        ensure(k in doc, "no %r in the JSON document" % k)
    m = doc["method"]
    ensure(m["mode"] in ("repetitions", "block_bootstrap", "too_few") and
           m["confidence"] == 0.95 and isinstance(m["resamples"], int),
           "method %r" % m)
    for s in doc["stages"] + [doc["runs"]]:
        for k in ("name", "category", "verdict", "base", "new", "changes"):
            ensure(k in s, "stage without %r: %r" % (k, s))
        for sd in ("base", "new"):
            for k in ("count", "repetitions", "mean_ns", "p50_ns", "p95_ns",
                      "p99_ns"):
                ensure(k in s[sd], "side without %r: %r" % (k, s[sd]))
        for stat, c in s["changes"].items():
            ensure(stat in ("mean", "p50", "p95", "p99"), "stat %r" % stat)
            for k in ("abs_ns", "rel", "lo", "hi", "p", "p_holm", "verdict"):
                ensure(k in c, "change without %r: %r" % (k, c))
            # An interval is both ends or none, in order; a verdict of
            # slower or faster needs it on one side of 0.
            ensure((c["lo"] is None) == (c["hi"] is None) and
                   (c["lo"] is None or c["lo"] <= c["hi"]), "interval %r" % c)
            if c["verdict"] == "slower":
                ensure(c["lo"] > 0, "slower with %r" % c)
            if c["verdict"] == "faster":
                ensure(c["hi"] < 0, "faster with %r" % c)


def stage(doc, name):
    got = [s for s in doc["stages"] if s["name"] == name]
    ensure(len(got) == 1, "stage %r: %d entries" % (name, len(got)))
    return got[0]


def synthetic(cli, work):
    # 8 a side: with 5 the exact test's smallest p, 2/C(10,5), cannot
    # pass Holm's correction across 8 comparisons (checked below).
    base = side(work, "base", 8, 1)
    same = side(work, "same", 8, 2)
    slow = side(work, "slow", 8, 3, slow="infer", factor=1.3)

    # Same workload: the gate passes, nothing changed.
    doc, p = diff_json(cli, [base, same, "--fail-on", "p95:+5%"], 0)
    ensure(doc["method"]["mode"] == "repetitions", "mode %r" % doc["method"])
    # The runs' own spans ("request", async) are the runs entry.
    ensure(sorted(s["name"] for s in doc["stages"]) == sorted(STAGES),
           "stages %r" % [s["name"] for s in doc["stages"]])
    for s in doc["stages"] + [doc["runs"]]:
        ensure(s["verdict"] == "no change", "same build, %s: %s %r"
               % (s["name"], s["verdict"], s["changes"].get("p50")))
    ensure(doc["rules"][0]["fired"] is False and doc["rules"][0]["judged"],
           "rule %r" % doc["rules"][0])
    ensure(doc["environment"]["differences"] == [] and
           not doc["environment"]["cross_machine"],
           "environment %r" % doc["environment"])
    # Counts and figures are those of the traces: 5 x 60 spans each side.
    infer = stage(doc, "infer")
    ensure(infer["base"]["count"] == 480 and infer["new"]["count"] == 480 and
           infer["base"]["repetitions"] == 8, "infer %r" % infer)
    ensure(doc["method"]["reps_needed_for_verdicts"] == 0, doc["method"])
    ensure(20e6 < infer["base"]["p50_ns"] < 45e6, "infer p50 %r"
           % infer["base"]["p50_ns"])

    # One stage 30% slower: the gate fires on it alone.
    doc, p = diff_json(cli, [base, slow, "--fail-on", "p95:+5%",
                             "--fail-on", "stage=decode,p99:+10%"], 1)
    infer = stage(doc, "infer")
    ensure(infer["verdict"] == "slower" and
           0.2 < infer["changes"]["p50"]["rel"] < 0.4 and
           infer["changes"]["p50"]["lo"] > 0.05, "infer %r" % infer)
    ensure(doc["stages"][0]["name"] == "infer",
           "regressions are not listed first: %r"
           % [s["name"] for s in doc["stages"]])
    r0, r1 = doc["rules"]
    on = sorted(h["name"] for h in r0["on"])
    ensure(r0["fired"] and on == ["infer"],
           "'p95:+5%%' fired on %r, wanted infer alone" % on)
    ensure(not r1["fired"], "stage=decode rule fired: %r" % r1)
    t = diff(cli, [base, slow, "--fail-on", "p95:+5%"], 1).stdout
    ensure(re.search(r"gate: FIRED 'p95:\+5%' on infer \(compute\): p95 "
                     r"\+\d+\.\d% \[\+\d+\.\d%, \+\d+\.\d%\], beyond "
                     r"\+5\.0%", t), "no FIRED line naming infer:\n%s" % t)
    ensure(t.index("infer (compute)") < t.index("decode (data)"),
           "the slower stage is not printed first:\n%s" % t)

    # 5 a side: the interval still gates, the verdicts are out of reach
    # and the output says how many repetitions would do.
    five_a, five_b = side(work, "five_a", 5, 14), side(
        work, "five_b", 5, 15, slow="infer", factor=1.3)
    doc, _ = diff_json(cli, [five_a, five_b, "--fail-on", "p95:+5%"], 1)
    ensure(doc["method"]["reps_needed_for_verdicts"] == 6 and
           stage(doc, "infer")["verdict"] == "no change" and
           doc["rules"][0]["fired"], "5 vs 5: %r %r"
           % (doc["method"], stage(doc, "infer")["changes"]["p50"]))
    t = diff(cli, [five_a, five_b], 0).stdout
    ensure("Run 6 or more repetitions per side" in t, t[:1500])

    # Throughput: every stage 25% slower, throughput drops 20%.
    slower_all = side(work, "slower_all", 8, 4,
                      stages={k: (c, m * 1.25) for k, (c, m) in
                              STAGES.items()})
    doc, _ = diff_json(cli, [base, slower_all, "--fail-on",
                             "throughput:-3%"], 1)
    ensure(doc["throughput"]["verdict"] == "lower" and
           doc["throughput"]["rel"] < -0.1 and doc["rules"][0]["fired"],
           "throughput %r, rule %r" % (doc["throughput"], doc["rules"][0]))
    ensure(doc["runs"]["verdict"] == "slower", "runs %r"
           % doc["runs"]["verdict"])

    # One trace per side: block bootstrap, optimistic.
    one_a = side(work, "one_a", 1, 5)
    one_b = side(work, "one_b", 1, 6, slow="infer", factor=1.3)
    doc, _ = diff_json(cli, [one_a, one_b], 0)
    ensure(doc["method"]["mode"] == "block_bootstrap" and
           doc["method"]["optimistic"] and doc["method"]["block_len"] >= 1,
           "method %r" % doc["method"])
    ensure(stage(doc, "infer")["verdict"] == "slower", "one trace: infer %r"
           % stage(doc, "infer"))
    t = diff(cli, [one_a, one_b], 0).stdout
    ensure("OPTIMISTIC" in t, "the text does not say the interval is "
           "optimistic:\n%s" % t[:2000])

    # Two against two: too few to judge, the rule cannot fire.
    two_a = side(work, "two_a", 2, 7)
    two_b = side(work, "two_b", 2, 8, slow="infer", factor=1.3)
    doc, _ = diff_json(cli, [two_a, two_b, "--fail-on", "p95:+5%"], 0)
    ensure(doc["method"]["mode"] == "too_few" and
           all(s["verdict"] == "too few to judge" for s in doc["stages"]) and
           doc["rules"][0]["judged"] is False, "2 vs 2: %r / %r"
           % (doc["method"], doc["rules"]))
    t = diff(cli, [two_a, two_b, "--fail-on", "p95:+5%"], 0).stdout
    ensure("TOO FEW TO JUDGE" in t and "not judged" in t, t[:2000])

    # Another machine, clock and settings.
    other = side(work, "other", 8, 9, host="box2", cpu="Other CPU",
                 clock="monotonic",
                 config={"enable": 1, "dir": "/elsewhere", "buffer_runs": 8,
                         "sample_runs": 1})
    doc, _ = diff_json(cli, [base, other], 0)
    fields = {d["field"]: d for d in doc["environment"]["differences"]}
    ensure(doc["environment"]["cross_machine"] and
           set(fields) == {"host", "cpu_model", "clock", "config"},
           "environment %r" % doc["environment"])
    ensure(fields["config"]["base"] == "buffer_runs=64" and
           fields["config"]["new"] == "buffer_runs=8",
           "config difference %r (dir is no setting)" % fields["config"])
    t = diff(cli, [base, other], 0).stdout
    ensure(t.index("WARNING: the sides ran on different machines") <
           t.index("infer"), "the machine warning is not first:\n%s" % t)

    # Other producers: plain Chrome traces on one side.
    chrome = side(work, "chrome", 8, 10, producer="chrome")
    doc, p = diff_json(cli, [base, chrome], 0)
    ensure(doc["environment"]["mixed_producers"] and
           {s["name"] for s in doc["stages"]} == set(STAGES) and
           doc["only_base"] == [] and
           [s["name"] for s in doc["only_new"]] == ["step"],
           "mixed producers: %r / %r / %r"
           % (doc["environment"], doc["only_base"], doc["only_new"]))
    t = diff(cli, [base, chrome], 0).stdout
    ensure("traces of different producers" in t and
           "only in new: step (top)"
           in t, t[-1500:])

    # A displayTimeUnit changes nothing but a warning: the same traces
    # (same seeds) with "ns" compare equal to the digit.
    ns = side(work, "ns", 8, 1, unit="ns")
    p = diff(cli, [base, ns], 0)
    ensure("different displayTimeUnit" in p.stderr, p.stderr)
    doc, _ = diff_json(cli, [base, ns], 0)
    ensure(doc["environment"]["mixed_time_units"] and
           all(s["changes"]["p50"]["rel"] == 0 for s in doc["stages"]),
           "displayTimeUnit rescaled something: %r" % doc["stages"][0])

    # A hostile header: values of the wrong kinds, nesting, a huge argv.
    odd = side(work, "odd", 8, 1, header={
        "host": {"nested": [1, 2]}, "cores": "two", "cpu_model": 7,
        "command_line": ["x" * 100000, {"a": [1]}, None, True, 1e300],
        "config": {"sources": {"deep": [[[]]]}, "buffer_runs": "64",
                   "long": "y" * 5000}, "clock": "tsc"})
    doc, _ = diff_json(cli, [base, odd], 0)
    fields = {d["field"]: d for d in doc["environment"]["differences"]}
    ensure({"host", "cpu_model", "cores", "command_line", "config", "clock"}
           <= set(fields) and len(fields["command_line"]["new"]) < 1100 and
           fields["cores"]["new"] == "(unknown)", "odd header: %r" % fields)

    # Unrelated workloads: no stage in common.
    unrelated = side(work, "unrelated", 8, 11,
                     stages={"tokenize": ("data", 3.0), "generate":
                             ("compute", 40.0)})
    p = diff(cli, [base, unrelated], 0)
    ensure("no stage in common" in p.stderr, "stderr: %r" % p.stderr)
    doc, _ = diff_json(cli, [base, unrelated], 0)
    ensure(doc["stages"] == [] and len(doc["only_new"]) == 2,
           "unrelated: %r %r" % (doc["stages"], doc["only_new"]))

    # Bad input: every one exit 2 with a clear message.
    bad = os.path.join(work, "bad")
    os.mkdir(bad)
    with open(os.path.join(bad, "cut.json"), "w") as f:
        f.write('{"traceEvents":[{"ph":"X","name":"a","ts":1,"dur":"x"')
    with open(os.path.join(bad, "garbage.json"), "w") as f:
        f.write("this is not a trace")
    empty = os.path.join(work, "empty")
    os.mkdir(empty)
    for args, words in (
            ([base, bad], ["new side:", "cut.json", "not a number"]),
            ([empty, base], ["base side:", empty, "no *.json"]),
            ([base, os.path.join(work, "missing")], ["new side:", "missing"]),
            ([base], ["wants two inputs"]),
            ([base, same, "--fail-on", "p95:5%"],
             ["must start with + or -", "RULE is"]),
            ([base, same, "--fail-on", "p97:+5%"], ["no statistic"]),
            ([base, same, "--fail-on", "stage=,p95:+5%"], ["stage=NAME"]),
            ([base, same, "--fail-on", "throughput:+3%"], ["a drop"]),
            ([base, same, "--fail-on", "p95:+5"], ["followed by %"]),
            ([base, same, "--fail-on", "p95:+1e999%"], ["number of percent"]),
            ([base, same, "--resamples", "5"], ["--resamples"]),
            ([base, same, "--html", os.path.join(work, "no", "dir.html")],
             ["cannot write", "dir.html"])):
        p = diff(cli, args, 2)
        for w in words:
            ensure(w in p.stderr, "stageprof diff %s: %r not in stderr:\n%s"
                   % (" ".join(args), w, p.stderr))

    # Markdown and the page.
    t = diff(cli, [base, slow, "--format", "md"], 0).stdout
    ensure(t.startswith("## stageprof diff") and
           "| stage | verdict | count | mean ms | p50 ms | p95 ms | p99 ms |"
           in t and re.search(r"\| infer \(compute\) \| slower \|", t), t)
    page = os.path.join(work, "diff.html")
    evil = side(work, "evil", 8, 12, slow="infer", factor=1.3,
                names={"infer": "<script>alert(1)</script>"})
    evil_base = side(work, "evil_base", 8, 13,
                     names={"infer": "<script>alert(1)</script>"})
    diff(cli, [evil_base, evil, "--html", page, "--fail-on", "p95:+5%"], 1)
    html = open(page).read()
    ensure("<script>" not in html and "&lt;script&gt;alert(1)" in html,
           "the hostile name is not escaped in the page")
    ensure(html.count('<svg class="chart interval"') == 2 and
           html.count('<g class="row"') == 2 * (len(STAGES) + 1) and
           'data-verdict="slower"' in html, "page charts")
    ensure(not os.path.exists(page + ".tmp"), "diff.html.tmp left behind")
    print("synthetic: 10 scenarios and 12 kinds of bad input checked")


REPS = 6  # a side: 2/C(12,6) after Holm over the stages can reach 0.05


def run_workflow(prog, work, name, reps, extra=()):
    d = os.path.join(work, name)
    for i in range(reps):
        env = tc.clean_env(STAGEPROF_ENABLE="1", STAGEPROF_DIR=d,
                           STAGEPROF_SAMPLE_HZ="0")
        tc.run([prog, "--frames", "32", "--workers", "1", "--input", "96",
                "--topk", "1", "--out", os.path.join(work, "out")] +
               list(extra), env=env, cwd=work, timeout=120)
    return d


def workflow(cli, prog, work):
    tc.need_path("/usr/share/darknet/cfg/yolov3-tiny.cfg", "darknet")
    # Interleaved, so that the machine's drift favours no side.
    a, b, slow = (os.path.join(work, n) for n in ("a", "b", "slow"))
    for _ in range(REPS):
        run_workflow(prog, work, "a", 1)
        run_workflow(prog, work, "b", 1)
        run_workflow(prog, work, "slow", 1, ("--slow", "detect:30"))
    doc, _ = diff_json(cli, [a, b, "--fail-on", "p95:+5%"], 0)
    changed = [s["name"] for s in doc["stages"] if s["verdict"] != "no change"]
    doc, p = diff_json(cli, [a, slow, "--fail-on", "p95:+5%"], 1)
    on = sorted({h["name"] for h in doc["rules"][0]["on"]})
    ensure("detect" in on, "the slowed stage is not named: %r" % on)
    det = stage(doc, "detect")
    ensure(det["verdict"] == "slower", "detect %r" % det)
    print("workflow: same build passes (stages called changed: %r); "
          "--slow detect:30 fails on %r, detect p95 %+.1f%% [%+.1f%%, %+.1f%%]"
          % (changed, on, 100 * det["changes"]["p95"]["rel"],
             100 * det["changes"]["p95"]["lo"],
             100 * det["changes"]["p95"]["hi"]))


def kineto(cli, folder, work):
    control = os.path.join(folder, "trace_diff", "control")
    test = os.path.join(folder, "trace_diff", "test")
    if not os.path.isdir(control) or not os.path.isdir(test):
        raise tc.Skip("%s absent" % control)
    doc, _ = diff_json(cli, [control, test], 0)
    ensure(doc["method"]["mode"] == "block_bootstrap" and
           doc["method"]["optimistic"], "method %r" % doc["method"])
    ensure(doc["base"]["traces"][0]["producer"] == "pytorch", doc["base"])
    runs = doc["runs"]
    ensure(runs["base"]["count"] == runs["new"]["count"] > 0, "runs %r" % runs)
    ensure(runs["verdict"] == "slower" and runs["changes"]["p50"]["lo"] > 0,
           "the test job's steps are not slower: %r" % runs)
    ensure(doc["throughput"]["verdict"] == "too few to judge" and
           doc["throughput"]["rel"] < 0, "throughput %r" % doc["throughput"])
    slower = [s for s in doc["stages"] if s["verdict"] == "slower"]
    ensure(slower and doc["stages"][0]["verdict"] == "slower",
           "no slower stage first")
    t = diff(cli, [control, test], 0).stdout
    ensure("OPTIMISTIC" in t and "pytorch" in t, t[:1500])
    print("kineto: steps p50 %+.1f%% [%+.1f%%, %+.1f%%] (optimistic, one "
          "trace a side); %d stages slower, first %s"
          % (100 * runs["changes"]["p50"]["rel"],
             100 * runs["changes"]["p50"]["lo"],
             100 * runs["changes"]["p50"]["hi"], len(slower),
             doc["stages"][0]["name"]))


def body(work):
    cli, mode = os.path.abspath(sys.argv[1]), sys.argv[2]
    if mode == "synthetic":
        synthetic(cli, work)
    elif mode == "workflow":
        workflow(cli, os.path.abspath(sys.argv[3]), work)
    elif mode == "kineto":
        kineto(cli, sys.argv[3], work)
    else:
        raise tc.CheckError("unknown mode %r" % mode)


if __name__ == "__main__":
    tc.main(body)
