#!/usr/bin/env python3
"""check_top.py STAGEPROF IT_HTTP MODE - `stageprof top` against real and
scripted /metrics endpoints.

STAGEPROF is the CLI, IT_HTTP the pipeline that serves real /metrics (see
check_http.py). MODE:

  quantiles  a scripted server answers two scrapes with known histograms:
             `top --once --format json` must give the rate, the mean, the
             busy figure, the p50/p95/p99 that histogram_quantile's rule
             gives (computed here, independently), "> last bound" for a
             rank in the +Inf bucket, the order by busy time, a series that
             appears between the scrapes, run throughput, CPU, RSS, drops;
             the text frame of the same answers.
  reset      counters that go down, or a new process start time: the frame
             says "reset" and the next one starts from the new baseline.
  live       it_http: `top --iterations 2 --format json` shows its four
             stages with positive rates; then the server is killed while
             top runs: the later frames say down, top keeps going and
             exits 1 after its frames; text frames too.
  tty        top in a real terminal (tmux, 120x30): header and stage rows
             on screen, a resize re-lays it out, `q` ends it within 2 s
             (status 0), and so does Ctrl-C (130); each time the
             terminal's mode and screen are given back.
  errors     bad URLs and options (exit 2 with a usage message), a refused
             port, a timeout, 401 without the token (and 200 with it, from
             --token and from STAGEPROF_HTTP_TOKEN), 404, 500, an answer
             that is not Prometheus text (exit 1, one line on stderr).

Every wait is bounded; servers are stopped whatever happens.
"""
import http.server
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import tracecheck as tc
from tracecheck import ensure
from check_http import Pipeline

BOUNDS = [0.001, 0.005, 0.01, 0.05, math.inf]


# ---------------------------------------------------------------------------
# A scripted /metrics server


class Script:
    """Answers request n with answers[min(n, last)]: (status, body, delay)."""

    def __init__(self, answers, token=None):
        self.answers = answers
        self.token = token
        self.n = 0
        self.lock = threading.Lock()
        script = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with script.lock:
                    i = min(script.n, len(script.answers) - 1)
                    script.n += 1
                status, body, delay = script.answers[i]
                if delay:
                    time.sleep(delay)
                want = "Bearer " + script.token if script.token else None
                if want and self.headers.get("Authorization") != want:
                    status, body = 401, "missing or wrong bearer token\n"
                elif self.path != "/metrics":
                    status, body = 404, "no such path\n"
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeouts)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d/metrics" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def le_text(b):
    return "+Inf" if math.isinf(b) else repr(b)


def exposition(stages, runs=None, cpu=None, rss=None, drops=None,
               start=None):
    """Prometheus text of @stages: {(stage, category): (cumulative bucket
    counts over BOUNDS, sum)}; the other figures when given."""
    out = ["# HELP ai_pipeline_stage_duration_seconds Stage latency.",
           "# TYPE ai_pipeline_stage_duration_seconds histogram"]
    for (stage, cat), (counts, total) in stages.items():
        labels = 'stage="%s",category="%s"' % (stage, cat)
        # Written out of order, as a hostile server might: top sorts them.
        for b, c in reversed(list(zip(BOUNDS, counts))):
            out.append('ai_pipeline_stage_duration_seconds_bucket{%s,le="%s"}'
                       ' %d' % (labels, le_text(b), c))
        out.append("ai_pipeline_stage_duration_seconds_sum{%s} %r"
                   % (labels, total))
        out.append("ai_pipeline_stage_duration_seconds_count{%s} %d"
                   % (labels, counts[-1]))
    if runs is not None:
        out += ["# TYPE ai_pipeline_runs_total counter"]
        out += ['ai_pipeline_runs_total{run="%s"} %d' % kv
                for kv in runs.items()]
    for name, kind, v in (("process_cpu_seconds_total", "counter", cpu),
                          ("process_resident_memory_bytes", "gauge", rss),
                          ("stageprof_events_dropped_total", "counter", drops),
                          ("process_start_time_seconds", "gauge", start)):
        if v is not None:
            out += ["# TYPE %s %s" % (name, kind), "%s %r" % (name, v)]
    out.append("garbage line that top must skip {")
    return "\n".join(out) + "\n"


def histogram_quantile(q, bounds, cum):
    """Prometheus's rule (promql/quantile.go), written independently:
    (value, above) with above when the rank falls in the +Inf bucket."""
    total = cum[-1]
    if total <= 0:
        return None, False
    rank = q * total
    b = next(i for i, c in enumerate(cum) if c >= rank or i == len(cum) - 1)
    if b == len(cum) - 1:
        return bounds[-2], True
    lo = 0.0 if b == 0 else bounds[b - 1]
    below = 0.0 if b == 0 else cum[b - 1]
    return lo + (bounds[b] - lo) * (rank - below) / (cum[b] - below), False


def near(a, b, rel=1e-9):
    return a is not None and abs(a - b) <= rel * max(1.0, abs(b))


def run_top(stageprof, args, timeout=30, env=None, expect_rc=None):
    return tc.run([stageprof, "top"] + args, env=env, timeout=timeout,
                  expect_rc=expect_rc)


def frames_of(p):
    out = []
    for line in p.stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            raise tc.CheckError("not a JSON frame: %r\n--- stderr\n%s"
                                % (line, p.stderr))
    return out


# ---------------------------------------------------------------------------
# Modes


def mode_quantiles(stageprof, it_http, work):
    first = {("infer", "compute"): ([10, 20, 30, 40, 40], 1.0),
             ("decode", "data"): ([0, 0, 0, 1, 1], 0.03),
             ("idle", "engine"): ([1, 1, 1, 1, 1], 0.0005)}
    second = {("infer", "compute"): ([10, 60, 130, 150, 152], 1.5),
              ("decode", "data"): ([0, 0, 0, 5, 6], 1.53),
              ("idle", "engine"): ([1, 1, 1, 1, 1], 0.0005),
              ("late", "io"): ([2, 4, 4, 4, 4], 0.004)}
    texts = [exposition(first, runs={"frame": 100, "batch": 7}, cpu=1.0,
                        rss=12345678, drops=3, start=1000.0),
             exposition(second, runs={"frame": 150, "batch": 7}, cpu=1.5,
                        rss=23456789, drops=7, start=1000.0)]
    srv = Script([(200, t, 0) for t in texts])
    try:
        p = run_top(stageprof, ["--once", "--format", "json",
                                "--interval-s", "0.5", srv.url], expect_rc=0)
    finally:
        srv.close()
    frames = frames_of(p)
    ensure(len(frames) == 1, "--once printed %d frames" % len(frames))
    f = frames[0]
    ensure(f["status"] == "up" and f["error"] is None, "frame: %r" % f)
    dt = f["interval_s"]
    ensure(0.4 <= dt <= 5, "interval_s %r for --interval-s 0.5" % dt)
    ensure(srv.n == 2, "top scraped %d times for --once" % srv.n)

    want = {}
    for key, (counts, total) in second.items():
        c0, t0 = first.get(key, ([0] * len(BOUNDS), 0.0))
        d = [b - a for a, b in zip(c0, counts)]
        dsum = total - t0
        want[key] = (d, dsum)
    order = sorted(want, key=lambda k: (-(want[k][1] / dt), -want[k][0][-1],
                                        k))
    got = [(s["stage"], s["category"]) for s in f["stages"]]
    ensure(got == order, "stage order %r, wanted by busy time %r"
           % (got, order))
    # Busy time, not rate, decides: decode (5 spans) above infer (112).
    ensure(got[0] == ("decode", "data"), "decode should lead: %r" % got)
    for s in f["stages"]:
        d, dsum = want[(s["stage"], s["category"])]
        n = d[-1]
        ensure(s["count"] == n, "%s count %r, wanted %r" % (s["stage"],
                                                            s["count"], n))
        ensure(near(s["rate"], n / dt), "%s rate %r, wanted %r"
               % (s["stage"], s["rate"], n / dt))
        if n == 0:
            ensure(s["mean_s"] is None and s["p50_s"] is None and
                   s["busy"] == 0, "idle stage: %r" % s)
            continue
        ensure(near(s["mean_s"], dsum / n), "%s mean %r, wanted %r"
               % (s["stage"], s["mean_s"], dsum / n))
        ensure(near(s["busy"], dsum / dt), "%s busy %r" % (s["stage"],
                                                            s["busy"]))
        for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            v, above = histogram_quantile(q, BOUNDS, d)
            ensure(near(s[name + "_s"], v) and s[name + "_above"] == above,
                   "%s %s = %r (above %r), wanted %r (above %r)"
                   % (s["stage"], name, s[name + "_s"], s[name + "_above"],
                      v, above))
    infer = next(s for s in f["stages"] if s["stage"] == "infer")
    # Hand-checked: deltas 0,40,100,110,112 -> p50 in (0.005, 0.01].
    ensure(near(infer["p50_s"], 0.005 + 0.005 * 16 / 60), "infer p50 %r"
           % infer["p50_s"])
    ensure(infer["p99_above"] and infer["p99_s"] == 0.05,
           "infer p99 should be > 0.05: %r" % infer)
    runs = {r["run"]: r["rate"] for r in f["runs"]}
    ensure(near(runs.get("frame"), 50 / dt) and runs.get("batch") == 0,
           "runs %r" % f["runs"])
    ensure(near(f["cpu_cores"], 0.5 / dt), "cpu %r" % f["cpu_cores"])
    ensure(f["rss_bytes"] == 23456789, "rss %r" % f["rss_bytes"])
    ensure(f["dropped"] == 4, "dropped %r" % f["dropped"])

    # The same answers as a text frame.
    srv = Script([(200, t, 0) for t in texts])
    try:
        p = run_top(stageprof, ["--once", "--interval-s", "0.2", srv.url],
                    expect_rc=0)
    finally:
        srv.close()
    lines = p.stdout.splitlines()
    ensure("\033" not in p.stdout, "escape codes in a text frame")
    ensure(lines[0].startswith(srv.url + "  up"), "header %r" % lines[0])
    runs_line = lines[1].split()
    ensure(runs_line[:2] == ["runs/s", "frame"] and
           float(runs_line[2]) > 0 and runs_line[3:] == ["batch", "0.0"],
           "runs line %r" % lines[1])
    ensure(lines[2].startswith("cpu ") and "rss 22.4 MiB" in lines[2] and
           lines[2].endswith("dropped 4"), "figures line %r" % lines[2])
    head = lines[4].split()
    ensure(head == ["STAGE", "CATEGORY", "RATE/S", "P50", "P95", "P99",
                    "MEAN", "BUSY"], "column header %r" % lines[4])
    rows = [l.split() for l in lines[5:]]
    ensure([r[0] for r in rows] == [k[0] for k in order], "text rows %r"
           % rows)
    infer_row = next(r for r in rows if r[0] == "infer")
    ensure(infer_row[3] == "6.33ms" and infer_row[5] == ">50.0ms",
           "infer row %r: wanted p50 6.33ms, p99 >50.0ms" % infer_row)


def mode_reset(stageprof, it_http, work):
    base = {("infer", "compute"): ([10, 20, 30, 40, 40], 1.0)}
    lower = {("infer", "compute"): ([1, 2, 3, 4, 4], 0.1)}
    later = {("infer", "compute"): ([1, 12, 23, 34, 44], 0.5)}
    # 1: counters go down -> reset; 2: deltas from the lower baseline.
    srv = Script([(200, exposition(base, runs={"frame": 10}), 0),
                  (200, exposition(lower, runs={"frame": 1}), 0),
                  (200, exposition(later, runs={"frame": 5}), 0)])
    try:
        p = run_top(stageprof, ["--iterations", "2", "--format", "json",
                                "--interval-s", "0.3", srv.url], expect_rc=0)
    finally:
        srv.close()
    frames = frames_of(p)
    ensure([f["status"] for f in frames] == ["reset", "up"],
           "statuses %r" % [f["status"] for f in frames])
    ensure(frames[0]["stages"] == [] and frames[0]["runs"] == [],
           "a reset frame shows no figures: %r" % frames[0])
    s = frames[1]["stages"][0]
    ensure(s["count"] == 40, "after the reset, count %r, wanted 44 - 4"
           % s["count"])
    v, above = histogram_quantile(0.5, BOUNDS, [0, 10, 20, 30, 40])
    ensure(near(s["p50_s"], v) and not above, "p50 %r, wanted %r"
           % (s["p50_s"], v))
    ensure(near(frames[1]["runs"][0]["rate"] * frames[1]["interval_s"], 4),
           "runs after reset: %r" % frames[1]["runs"])

    # A new process start time with higher counters is a restart too.
    srv = Script([(200, exposition(base, start=1000.0), 0),
                  (200, exposition(later, start=2000.0), 0)])
    try:
        p = run_top(stageprof, ["--once", "--format", "json",
                                "--interval-s", "0.2", srv.url], expect_rc=0)
    finally:
        srv.close()
    ensure(frames_of(p)[0]["status"] == "reset", "new start time: %r"
           % p.stdout)

    srv = Script([(200, exposition(base), 0), (200, exposition(lower), 0)])
    try:
        p = run_top(stageprof, ["--once", "--interval-s", "0.2", srv.url],
                    expect_rc=0)
    finally:
        srv.close()
    ensure("reset: a counter went down" in p.stdout, "text reset frame: %r"
           % p.stdout)


def start_pipeline(it_http, work, name, **env):
    return Pipeline(it_http, work, name, STAGEPROF_HTTP="127.0.0.1:0", **env)


STAGES = {("decode", "data"), ("resize", "preprocess"), ("infer", "compute"),
          ("format", "postprocess")}


def check_live_frame(f, what):
    ensure(f["status"] == "up", "%s: status %r (%r)" % (what, f["status"],
                                                      f["error"]))
    got = {(s["stage"], s["category"]): s for s in f["stages"]}
    ensure(STAGES <= set(got), "%s: stages %r" % (what, sorted(got)))
    for key in STAGES:
        s = got[key]
        ensure(s["rate"] > 0 and s["count"] > 0, "%s: %r not running: %r"
               % (what, key, s))
        ensure(s["p50_s"] is not None and s["p50_s"] <= s["p95_s"] <=
               s["p99_s"], "%s: quantiles of %r: %r" % (what, key, s))
    busy = [s["busy"] for s in f["stages"]]
    ensure(busy == sorted(busy, reverse=True), "%s: not sorted by busy "
           "time: %r" % (what, busy))
    ensure(any(r["run"] == "frame" and r["rate"] > 0 for r in f["runs"]),
           "%s: runs %r" % (what, f["runs"]))
    ensure(f["cpu_cores"] is not None and f["cpu_cores"] > 0,
           "%s: cpu %r" % (what, f["cpu_cores"]))
    ensure(f["rss_bytes"] and f["rss_bytes"] > 0, "%s: rss" % what)
    ensure(f["dropped"] is not None and f["dropped"] >= 0, "%s: drops" % what)


def mode_live(stageprof, it_http, work):
    pipe = start_pipeline(it_http, work, "live")
    try:
        url = "http://127.0.0.1:%d" % pipe.port  # no path: /metrics
        p = run_top(stageprof, ["--iterations", "2", "--format", "json",
                                "--interval-s", "0.5", url], expect_rc=0)
        frames = frames_of(p)
        ensure(len(frames) == 2, "%d frames for --iterations 2"
               % len(frames))
        for i, f in enumerate(frames):
            ensure(f["url"] == url + "/metrics", "url %r" % f["url"])
            check_live_frame(f, "frame %d" % (i + 1))

        # Kill the server while top runs: later frames say down, top goes
        # on with its frames and exits 1.
        top = subprocess.Popen([stageprof, "top", "--iterations", "5",
                                "--format", "json", "--interval-s", "0.5",
                                "--timeout-s", "1", url],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=tc.clean_env())
        try:
            line = top.stdout.readline()
            check_live_frame(json.loads(line), "before the kill")
            pipe.kill()
            rest, err = top.communicate(timeout=30)
        except BaseException:
            top.kill()
            top.wait()
            raise
        frames = [json.loads(l) for l in rest.splitlines()]
        ensure(len(frames) == 4, "%d frames after the kill, wanted 4: %r"
               % (len(frames), rest))
        downs = [f for f in frames if f["status"] == "down"]
        ensure(len(downs) >= 3 and frames[-1]["status"] == "down",
               "after the kill: %r" % [f["status"] for f in frames])
        for f in downs:
            ensure("connect" in f["error"].lower() and f["stages"] == [] and
                   f["last_good_age_s"] > 0, "down frame %r" % f)
        ensure(top.returncode == 1, "exit status %r after failed scrapes"
               % top.returncode)
        ensure("scrapes failed" in err and len(err.splitlines()) == 1,
               "stderr %r" % err)

        # Text frames of a server that is gone.
        p = run_top(stageprof, ["--iterations", "1", "--interval-s", "0.2",
                                url], expect_rc=1)
        ensure(p.stdout.startswith(url + "/metrics  down: ") and
               "last good scrape: never" in p.stdout, "text down frame %r"
               % p.stdout)
    finally:
        pipe.kill()


def mode_tty(stageprof, it_http, work):
    tmux = shutil.which("tmux")
    if tmux is None:
        raise tc.Skip("tmux not found (make deps)")
    pipe = start_pipeline(it_http, work, "tty")
    url = "http://127.0.0.1:%d/metrics" % pipe.port
    try:
        # q quits with 0; Ctrl-C (SIGINT from the terminal) with 130; both
        # give the terminal back.
        tty_session(stageprof, tmux, work, url, "q", "0", resize=True)
        tty_session(stageprof, tmux, work, url, "C-c", "130", resize=False)
    finally:
        pipe.kill()
    # A server that never answers in time: q still ends top at once,
    # in the middle of a scrape.
    srv = Script([(200, "x 1\n", 30)])
    try:
        tty_session(stageprof, tmux, work, srv.url, "q", "0", resize=False,
                    hung=True)
    finally:
        srv.close()


def check_tty_view(text, url):
    lines = text.splitlines()
    ensure(lines[0].startswith(url + "  up, scraped"), "header %r"
           % lines[0])
    ensure(any(l.startswith("runs/s  frame ") for l in lines),
           "no runs line:\n%s" % text)
    ensure(any(l.startswith("cpu ") and " cores  rss " in l
               for l in lines), "no cpu line:\n%s" % text)
    for stage, _ in STAGES:
        ensure(any(l.split()[:1] == [stage] for l in lines),
               "no row for %s:\n%s" % (stage, text))
    ensure("q quit" in lines[-1], "no key help on the last line:\n%s"
           % text)


def tty_session(stageprof, tmux, work, url, key, want_rc, resize,
                hung=False):
    tag = "%s%s" % (key, "-hung" if hung else "")
    sock = "stageprof-top-%d-%s" % (os.getpid(), tag)
    t = [tmux, "-L", sock, "-f", "/dev/null"]
    d = os.path.join(work, "tty-" + tag)
    os.mkdir(d)
    rc_file = os.path.join(d, "rc")
    before, after = os.path.join(d, "before"), os.path.join(d, "after")
    timeout = "--timeout-s 20 " if hung else ""
    # The shell survives the terminal's Ctrl-C (a trap, not an ignore:
    # top gets the default disposition) to record top's status.
    script = ("trap : INT; stty -g > %s; %s top --interval-s 0.5 %s%s; "
              "echo $? > %s.tmp; mv %s.tmp %s; stty -g > %s; sleep 60"
              % (before, stageprof, timeout, url, rc_file, rc_file, rc_file,
                 after))
    env = tc.clean_env(TERM="xterm-256color")
    env.pop("TMUX", None)

    def pane():
        return subprocess.run(t + ["capture-pane", "-p", "-t", "top"],
                              env=env, capture_output=True, text=True,
                              timeout=10).stdout

    def wait_pane(cond, what, within=15.0):
        deadline = time.monotonic() + within
        while True:
            text = pane()
            if cond(text):
                return text
            ensure(time.monotonic() < deadline, "%s within %.0f s; the "
                   "pane shows:\n%s" % (what, within, text))
            time.sleep(0.1)

    try:
        subprocess.run(t + ["new-session", "-d", "-s", "top", "-x", "120",
                            "-y", "30", "sh", "-c", script], env=env,
                       check=True, timeout=10)
        if hung:
            text = wait_pane(lambda s: s.startswith(url + "  connecting..."),
                             "no 'connecting...' on the screen")
            time.sleep(0.5)  # well inside the scrape
        else:
            check_tty_view(wait_pane(lambda s: "infer" in s and "STAGE" in s,
                                     "no stage rows on the screen"), url)
        ensure(not os.path.exists(rc_file), "top ended on its own")

        if resize:
            # A smaller window: the layout follows (SIGWINCH).
            subprocess.run(t + ["resize-window", "-t", "top", "-x", "70",
                                "-y", "12"], env=env, check=True, timeout=10)
            text = wait_pane(lambda s: len(s.splitlines()) <= 12 and
                             "STAGE" in s and "q quit" in s,
                             "no re-layout to 70x12")
            ensure(all(len(l) <= 70 for l in text.splitlines()),
                   "lines wider than 70 columns:\n%s" % text)

        t0 = time.monotonic()
        subprocess.run(t + ["send-keys", "-t", "top", key], env=env,
                       check=True, timeout=10)
        while not os.path.exists(rc_file):
            ensure(time.monotonic() - t0 < 2.0, "top still runs 2 s after "
                   "%s" % key)
            time.sleep(0.02)
        with open(rc_file) as f:
            rc = f.read().strip()
        ensure(rc == want_rc, "top exited with %s after %s, wanted %s"
               % (rc, key, want_rc))
        deadline = time.monotonic() + 5
        while not os.path.exists(after):
            ensure(time.monotonic() < deadline, "the shell did not go on")
            time.sleep(0.05)
        time.sleep(0.1)
        with open(before) as f, open(after) as g:
            a, b = f.read().strip(), g.read().strip()
        ensure(a and a == b, "terminal mode not restored after %s: %r -> %r"
               % (key, a, b))
        text = pane()
        ensure("STAGE" not in text, "the view stayed on the main screen "
               "after %s:\n%s" % (key, text))
    finally:
        subprocess.run(t + ["kill-server"], env=env, capture_output=True,
                       timeout=10)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def one_line_error(p, *needles):
    lines = p.stderr.splitlines()
    ensure(len(lines) == 1 and lines[0].startswith("stageprof top: "),
           "wanted one line on stderr, got %r" % p.stderr)
    for n in needles:
        ensure(n.lower() in lines[0].lower(), "%r not in %r" % (n, lines[0]))
    ensure(p.stdout == "", "stdout %r" % p.stdout)


def mode_errors(stageprof, it_http, work):
    # Usage errors: exit 2, the message and a pointer to the help.
    for args, needle in ((["not a url"], "bad URL"),
                         (["ftp://127.0.0.1/metrics"], "bad URL"),
                         (["http://"], "bad URL"),
                         ([], "missing URL"),
                         (["http://a", "http://b"], "one URL only"),
                         (["--bogus", "http://127.0.0.1:1"], "bogus"),
                         (["--interval-s", "0", "http://a"], "--interval-s"),
                         (["--interval-s", "x", "http://a"], "--interval-s"),
                         (["--iterations", "-1", "http://a"], "--iterations"),
                         (["--timeout-s", "nan", "http://a"], "--timeout-s"),
                         (["--format", "csv", "http://a"], "format"),
                         (["--once", "-n", "2", "http://a"], "exclude"),
                         (["--token", "a\nb", "http://a"], "line break")):
        p = run_top(stageprof, args, expect_rc=2)
        ensure(needle.lower() in p.stderr.lower() and
               "stageprof help top" in p.stderr and p.stdout == "",
               "%r: stderr %r" % (args, p.stderr))
    p = run_top(stageprof, ["--help"], expect_rc=0)
    ensure(p.stdout.startswith("usage: stageprof top"), "--help %r" % p.stdout)

    # Refused.
    port = free_port()
    t0 = time.monotonic()
    p = run_top(stageprof, ["--once", "http://127.0.0.1:%d" % port],
                expect_rc=1)
    one_line_error(p, "connect", str(port))
    ensure(time.monotonic() - t0 < 5, "a refused --once took long")

    # A timeout.
    srv = Script([(200, "x 1\n", 5)])
    try:
        t0 = time.monotonic()
        p = run_top(stageprof, ["--once", "--timeout-s", "0.5", srv.url],
                    expect_rc=1)
        one_line_error(p, "timed out")
        ensure(time.monotonic() - t0 < 4, "--timeout-s 0.5 took %.1f s"
               % (time.monotonic() - t0))
    finally:
        srv.close()

    # 500 and a body that is not Prometheus text.
    srv = Script([(500, "the exporter broke\nsecond line\n", 0)])
    try:
        p = run_top(stageprof, ["--once", srv.url], expect_rc=1)
        one_line_error(p, "HTTP 500: the exporter broke")
        ensure("second line" not in p.stderr, "more than the first line")
    finally:
        srv.close()
    srv = Script([(200, "<html><body>hello</body></html>\n", 0)])
    try:
        p = run_top(stageprof, ["--once", srv.url], expect_rc=1)
        one_line_error(p, "not Prometheus text")
    finally:
        srv.close()

    # The real endpoint with a token: 401 without it, 404 elsewhere.
    token = "tok-7c1e5b3f9a"
    pipe = start_pipeline(it_http, work, "token", STAGEPROF_HTTP_TOKEN=token)
    try:
        base = "http://127.0.0.1:%d" % pipe.port
        p = run_top(stageprof, ["--once", base + "/metrics"], expect_rc=1)
        one_line_error(p, "HTTP 401: missing or wrong bearer token")
        p = run_top(stageprof, ["--once", "--token", "wrong", base],
                    expect_rc=1)
        one_line_error(p, "HTTP 401")
        p = run_top(stageprof, ["--once", "--interval-s", "0.2", "--format",
                                "json", "--token", token, base], expect_rc=0)
        check_live_frame(frames_of(p)[0], "with --token")
        p = run_top(stageprof, ["--once", "--interval-s", "0.2", "--format",
                                "json", base],
                    env=tc.clean_env(STAGEPROF_HTTP_TOKEN=token), expect_rc=0)
        check_live_frame(frames_of(p)[0], "with STAGEPROF_HTTP_TOKEN")
        p = run_top(stageprof, ["--once", "--token", token, base + "/nope"],
                    expect_rc=1)
        one_line_error(p, "HTTP 404: not found")
    finally:
        pipe.kill()


def body(work):
    stageprof, it_http, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    {"quantiles": mode_quantiles, "reset": mode_reset, "live": mode_live,
     "tty": mode_tty, "errors": mode_errors}[mode](stageprof, it_http, work)


if __name__ == "__main__":
    tc.main(body)
