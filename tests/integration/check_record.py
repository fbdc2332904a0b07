#!/usr/bin/env python3
"""check_record.py STAGEPROF DEMO IT_CRASH MODE - `stageprof record`, end
to end: the program it runs, the environment it gives it, the exit status
it forwards, the report it prints, the messages it gives.

  demo         the demo under record -o DIR: exit 0, one trace in DIR
               (checked with tracecheck), the demo's own output then the
               report on stdout, with every stage of the demo
  default_dir  without -o: a new directory stageprof_record_<stamp> in the
               working directory per record, even two in the same second
  reuse        -o DIR holding an older trace and another file: only the
               new trace is reported, nothing is removed
  json         report options pass through: --format=json (stages and
               counts of the demo), --top=2, --format=csv --category=compute
  exit_status  sh -c 'exit 3': status 3, the no-trace message
  untraced     /bin/true: status 1, the no-trace message naming each cause,
               nothing left in the working directory
  signal       sh -c 'kill -TERM $$': status 143, SIGTERM named
  sigint       record ignores SIGINT while the program runs (the program
               sends it to record, which still forwards its status 4); the
               program gets SIGINT at its default action (status 130)
  crash        a program that writes a crash dump and dies of SIGABRT:
               status 134 and the report of the dump; the same program
               choosing its own directory through stageprof_config_t: the
               no-trace message names that cause
  env          the caller's STAGEPROF_ENABLE=0, STAGEPROF_DIR and the alias
               are overridden; STAGEPROF_ENABLE=1 in the caller's
               environment makes record itself write no trace
  not_found    a missing command 127, a path to nothing 127, a file that
               is not executable 126, a directory 126
  usage        no command, unknown option, -o without a value, bad report
               option values: status 2 before the program runs; --help;
               the program's own options are left to it
"""
import json
import os
import re
import signal
import subprocess
import sys

import tracecheck as tc
from tracecheck import ensure

FRAMES, WORKERS = 8, 2
STAGES = {"decode": "data", "preprocess": "preprocess", "infer": "compute",
          "postprocess": "postprocess", "serialize": "serve"}
CAUSES = ("libstageprof", "STAGEPROF_DISABLE", "stageprof_config_t")
DIR_RE = re.compile(r"stageprof_record_\d{4}(_\d\d){5}(_\d+)?$")


def record(sp, args, cwd, expect_rc=0, env=None):
    return tc.run([sp, "record"] + args, cwd=cwd, expect_rc=expect_rc,
                  env=env)


def demo_argv(demo):
    return [demo, "--frames", str(FRAMES), "--workers", str(WORKERS)]


def no_trace_message(p, what):
    ensure("wrote no trace" in p.stderr, "%s: no 'wrote no trace' message:"
           "\n%s" % (what, p.stderr))
    for cause in CAUSES:
        ensure(cause in p.stderr, "%s: the message does not name %s:\n%s"
               % (what, cause, p.stderr))
    ensure(not re.search(r"^(\d+ files?, \d+ events|stage )", p.stdout,
                         re.M), "%s: a report was printed:\n%s"
           % (what, p.stdout))


def report_rows(stdout):
    """The text report's stage rows: {name: (category, count)}."""
    lines = stdout.splitlines()
    head = [i for i, l in enumerate(lines) if l.startswith("stage ")]
    ensure(len(head) == 1, "no stage table in:\n%s" % stdout)
    rows = {}
    for line in lines[head[0] + 1:]:
        if not line.strip():
            break
        f = line[29:].split()  # the name column is 28 wide
        rows[line[:28].rstrip()] = (f[0], int(f[1]))
    return rows, head[0]


def check_demo(work, sp, demo, crash):
    out = os.path.join(work, "out")
    before = tc.now_pair()
    p = record(sp, ["-o", "out", "--"] + demo_argv(demo), cwd=work)
    after = tc.now_pair()
    path = tc.only_trace(out)
    t = tc.load(path)
    tc.check_events(t)
    tc.check_summary(t, complete=True)
    tc.check_metadata(t, demo_argv(demo), before, after)
    tc.check_counts(t, {s: FRAMES for s in STAGES})

    rel = os.path.relpath(path, work)
    ensure("trace written to %s\n" % rel in p.stderr,
           "record does not name the trace:\n%s" % p.stderr)
    ensure("%d frames, %d workers" % (FRAMES, WORKERS) in p.stdout,
           "the demo's own output is missing:\n%s" % p.stdout)
    rows, at = report_rows(p.stdout)
    demo_line = [i for i, l in enumerate(p.stdout.splitlines())
                 if "frames," in l][0]
    ensure(demo_line < at, "the report comes before the demo's output")
    ensure(re.search(r"^1 file, %d events, producer stageprof" %
                     len(t.events), p.stdout, re.M),
           "report header:\n%s" % p.stdout)
    for stage, cat in STAGES.items():
        ensure(rows.get(stage) == (cat, FRAMES), "stage %s: %r, wanted %r"
               % (stage, rows.get(stage), (cat, FRAMES)))
    ensure(rows.get("load_model") == ("engine", 1), "load_model: %r"
           % (rows.get("load_model"),))


def check_default_dir(work, sp, demo, crash):
    for _ in range(2):
        record(sp, demo_argv(demo), cwd=work)
    dirs = sorted(os.listdir(work))
    ensure(len(dirs) == 2 and all(DIR_RE.match(d) for d in dirs),
           "wanted two stageprof_record_<stamp> directories, found %r" % dirs)
    for d in dirs:
        tc.check_events(tc.load(tc.only_trace(os.path.join(work, d))))


def check_reuse(work, sp, demo, crash):
    out = os.path.join(work, "out")
    record(sp, ["-o", "out"] + demo_argv(demo), cwd=work)
    old = tc.only_trace(out)
    other = os.path.join(out, "notes.txt")
    with open(other, "w") as f:
        f.write("not a trace\n")
    p = record(sp, ["-o", "out/", "--format=json"] + demo_argv(demo),
               cwd=work)
    report = json.loads(p.stdout.splitlines()[-1])
    files = report["trace"]["files"]
    ensure(len(files) == 1 and os.path.join(work, files[0]) != old,
           "reported %r; the older trace %s must not be" % (files, old))
    ensure(os.path.exists(old) and os.path.exists(other),
           "record removed files it did not write")
    ensure(len(os.listdir(out)) == 3, "out holds %r" % os.listdir(out))


def check_json(work, sp, demo, crash):
    doc, _ = tc.run_json([sp, "record", "-o", "out", "--format=json"]
                         + demo_argv(demo), cwd=work)
    got = {s["name"]: (s["category"], s["count"]) for s in doc["stages"]}
    for stage, cat in STAGES.items():
        ensure(got.get(stage) == (cat, FRAMES), "stage %s in JSON: %r"
               % (stage, got.get(stage)))
    ensure(doc["trace"]["producer"] == "stageprof" and
           doc["trace"]["files"] == [os.path.relpath(
               tc.only_trace(os.path.join(work, "out")), work)],
           "trace: %r" % doc["trace"])
    doc, _ = tc.run_json([sp, "record", "-o", "out3", "--format=json",
                          "--top=2"] + demo_argv(demo), cwd=work)
    ensure(len(doc["stages"]) == 2, "--top=2 gave %d stages"
           % len(doc["stages"]))
    p = record(sp, ["-o", "out4", "--format=csv", "--category=compute"]
               + demo_argv(demo), cwd=work)
    csv = [l for l in p.stdout.splitlines()
           if not l.startswith("stageprof_demo:")]
    ensure(len(csv) == 2 and csv[0].startswith("Stage,Duration_s,Category")
           and csv[1].startswith("infer,") and ",compute,%d," % FRAMES
           in csv[1], "CSV of the compute stages:\n%s" % p.stdout)
    # --html reaches report: the page is written beside the text output.
    p = record(sp, ["-o", "out5", "--html=page.html"] + demo_argv(demo),
               cwd=work)
    page = os.path.join(work, "page.html")
    ensure(os.path.isfile(page) and "bottleneck:" in p.stdout,
           "--html=page.html made no page:\n%s" % p.stdout)
    with open(page, encoding="utf-8") as f:
        html = f.read()
    ensure(html.count("<svg") >= 3 and "infer" in html,
           "the page holds no charts of the demo's stages")


def check_exit_status(work, sp, demo, crash):
    p = record(sp, ["sh", "-c", "exit 3"], cwd=work, expect_rc=3)
    no_trace_message(p, "exit 3")
    ensure("exited with status 3" in p.stderr, "status not said:\n%s"
           % p.stderr)
    ensure(os.listdir(work) == [], "left behind: %r" % os.listdir(work))


def check_untraced(work, sp, demo, crash):
    p = record(sp, ["/bin/true"], cwd=work, expect_rc=1)
    no_trace_message(p, "/bin/true")
    ensure(p.stdout == "", "stdout: %r" % p.stdout)
    ensure(os.listdir(work) == [], "left behind: %r" % os.listdir(work))
    # With -o the directory stays, and the message names it.
    p = record(sp, ["-o", "kept", "true"], cwd=work, expect_rc=1)
    ensure("wrote no trace into kept" in p.stderr, p.stderr)
    ensure(os.listdir(work) == ["kept"], "%r" % os.listdir(work))


def check_signal(work, sp, demo, crash):
    p = record(sp, ["sh", "-c", "kill -TERM $$"], cwd=work, expect_rc=143)
    no_trace_message(p, "SIGTERM")
    ensure("killed by SIGTERM" in p.stderr and "exit status 143" in
           p.stderr, "the signal is not named:\n%s" % p.stderr)


def run_default_sigint(cmd, cwd):
    """Run @cmd with SIGINT at its default action, whatever ours is."""
    p = subprocess.run(cmd, cwd=cwd, env=tc.clean_env(), timeout=60,
                       capture_output=True, text=True, errors="replace",
                       preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                        signal.SIG_DFL))
    return p


def check_sigint(work, sp, demo, crash):
    p = run_default_sigint([sp, "record", "sh", "-c",
                            "kill -INT $PPID; sleep 0.3; exit 4"], work)
    ensure(p.returncode == 4, "record did not outlive SIGINT: status %d\n%s"
           % (p.returncode, p.stderr))
    p = run_default_sigint([sp, "record", "sh", "-c", "kill -INT $$"], work)
    ensure(p.returncode == 130 and "killed by SIGINT" in p.stderr,
           "the program should die of SIGINT: status %d\n%s"
           % (p.returncode, p.stderr))


def check_crash(work, sp, demo, crash):
    env = tc.clean_env(STAGEPROF_CRASH_DUMP="1")
    out = os.path.join(work, "out")
    p = record(sp, ["-o", "out", crash, out, "abort"], cwd=work,
               expect_rc=134, env=env)
    path = tc.only_trace(out)
    ensure(path.endswith("_crash.json"), "not a crash dump: %s" % path)
    ensure("killed by SIGABRT" in p.stderr, "stderr:\n%s" % p.stderr)
    rows, _ = report_rows(p.stdout)
    ensure("step" in rows and "main_setup" in rows, "report of the dump: "
           "%r" % sorted(rows))
    # Its own directory (stageprof_config_t.dir) wins over STAGEPROF_DIR.
    own = os.path.join(work, "own")
    p = record(sp, ["-o", "out2", crash, own, "abort"], cwd=work,
               expect_rc=134, env=env)
    no_trace_message(p, "config dir")
    tc.only_trace(own)
    ensure(os.listdir(os.path.join(work, "out2")) == [], "out2 not empty")


def check_env(work, sp, demo, crash):
    env = tc.clean_env(STAGEPROF_ENABLE="0", STAGEPROF_DIR="elsewhere",
                       ENABLE_WORKFLOWS_PROFILING="0")
    record(sp, ["-o", "out"] + demo_argv(demo), cwd=work, env=env)
    t = tc.load(tc.only_trace(os.path.join(work, "out")))
    cfg = t.meta["config"]
    ensure(cfg["enable"] == 1 and cfg["sources"]["enable"] == "env" and
           cfg["dir"] == os.path.realpath(os.path.join(work, "out")),
           "config of the run: %r" % cfg)
    ensure(sorted(os.listdir(work)) == ["out"], "%r" % os.listdir(work))
    # record is linked with libstageprof: it must not trace itself.
    env = tc.clean_env(STAGEPROF_ENABLE="1")
    record(sp, ["--top=3", "true"], cwd=work, env=env, expect_rc=1)
    ensure(sorted(os.listdir(work)) == ["out"], "record wrote a trace of "
           "its own: %r" % os.listdir(work))


def check_not_found(work, sp, demo, crash):
    p = record(sp, ["no-such-command-stageprof"], cwd=work, expect_rc=127)
    ensure("command not found" in p.stderr, p.stderr)
    p = record(sp, ["./no-such-file"], cwd=work, expect_rc=127)
    ensure("No such file" in p.stderr, p.stderr)
    with open(os.path.join(work, "plain"), "w") as f:
        f.write("echo hi\n")
    os.chmod(os.path.join(work, "plain"), 0o644)
    os.mkdir(os.path.join(work, "adir"))
    for target in ("./plain", "./adir"):
        p = record(sp, [target], cwd=work, expect_rc=126)
        ensure(target in p.stderr, p.stderr)
    ensure(sorted(os.listdir(work)) == ["adir", "plain"],
           "left behind: %r" % os.listdir(work))


def check_usage(work, sp, demo, crash):
    touch = ["sh", "-c", "touch ran"]
    bad = [([], "no command given"),
           (["--bogus", "true"], "unknown option '--bogus'"),
           (["-o"], "needs a value"),
           (["-o", "", "true"], "-o wants a directory"),
           (["--top=0"] + touch, "--top"),
           (["--format=xml"] + touch, "--format"),
           (["--regex"] + touch, "--regex needs --name"),
           (["--name=(", "--regex"] + touch, "regular expression"),
           (["--from=2s", "--to=1s"] + touch, "later than --from"),
           (["--exact-limit=x"] + touch, "--exact-limit")]
    for args, msg in bad:
        p = record(sp, args, cwd=work, expect_rc=2)
        ensure(msg in p.stderr and "stageprof help record" in p.stderr and
               p.stdout == "", "%r: wanted %r on stderr:\n%s"
               % (args, msg, p.stderr))
    ensure(os.listdir(work) == [], "the program ran, or a directory was "
           "made: %r" % os.listdir(work))
    p = record(sp, ["--help"], cwd=work)
    ensure(p.stdout.startswith("usage: stageprof record"), p.stdout)
    # The program's options are its own, even those record also has.
    p = record(sp, ["sh", "-c", 'echo "$@"', "x", "--top=3", "-o", "-v"],
               cwd=work, expect_rc=1)
    ensure(p.stdout == "--top=3 -o -v\n", "the program got %r" % p.stdout)
    p = record(sp, ["-q", "--", "sh", "-c", "exit 0"], cwd=work,
               expect_rc=1)
    ensure(os.listdir(work) == [], "left behind: %r" % os.listdir(work))


def body(work):
    sp, demo, crash = (os.path.abspath(a) for a in sys.argv[1:4])
    mode = sys.argv[4]
    {"demo": check_demo, "default_dir": check_default_dir,
     "reuse": check_reuse, "json": check_json,
     "exit_status": check_exit_status, "untraced": check_untraced,
     "signal": check_signal, "sigint": check_sigint, "crash": check_crash,
     "env": check_env, "not_found": check_not_found,
     "usage": check_usage}[mode](work, sp, demo, crash)


if __name__ == "__main__":
    tc.main(body)
