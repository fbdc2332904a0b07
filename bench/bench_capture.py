#!/usr/bin/env python3
"""bench_capture.py - throughput of the example server while it is captured.

    python3 bench/bench_capture.py [--pairs N] [--seconds S] [--build DIR]
                                   [--server PATH] [--stageprof PATH]
                                   [--wrk PATH] [--conns N] [--workers W]
                                   [--input S] [--topk K]
                                   [--capture-ms MS]

    make bench-capture              # 6 pairs of 10 s runs: about 2.5 min
    python3 bench/bench_capture.py --pairs 3 --seconds 8   # a short run

What it measures: requests per second of examples/detect_server (metrics
mode: STAGEPROF_HTTP on a free loopback port, nothing else of stageprof's
set) under wrk (examples/detect_server/post.lua posting darknet's dog.jpg
over --conns connections), with and without `stageprof capture` pulling
windows from it. One server serves the whole benchmark; after an uncounted
warm-up run of 3 s come --pairs pairs of --seconds runs each, in the order
with,without then without,with alternately, so a drift of the machine
weighs on both alike:

    without   wrk alone
    with      wrk, and `stageprof capture ADDR --duration-ms MS -o FILE`
              run back to back from wrk's start until its end (a new
              capture starts as soon as the previous one exits; the last
              one may end after wrk)

Per pair: the ratio of requests per second with/without (wrk's own count
over its own duration, from post.lua's figures). The median of the ratios
gets a distribution-free interval from order statistics, as
bench/bench_workflow.c does: with n pairs the k-th smallest and k-th
largest ratio bound the median with probability 1 - 2 P(B <= k - 1),
B ~ Binomial(n, 1/2), k the largest rank keeping that >= 95 % (6 pairs at
least; with fewer, the range of the ratios is printed with its coverage,
1 - 2^(1-n)). Target: ratio >= 0.95.

Beside it, per run: the server's CPU time per request (/proc/PID/stat),
the CPU the capture clients used (each reaped with wait4: the client runs
on this machine too, and prints the report of every window), how many
CPUs other processes used (/proc/stat busy time less the server, wrk and
the clients; pairs above 0.1 CPUs are marked *), and for the with-runs
the captures made, the share of the run their windows covered and the
events each held. A run in which wrk saw an error or a non-2xx answer, or
a capture exited non-zero, is reported and makes the exit status 1.
"""
import argparse
import json
import math
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA = os.path.join(ROOT, "examples", "detect_server", "post.lua")
DOG = "/usr/share/darknet/data/dog.jpg"
TARGET = 0.95
OTHERS_MAX = 0.1
TICK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


def die_with_parent():
    """Run in a child before exec: SIGKILL when the bench dies."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # DEATHSIG


def clean_env(**extra):
    """This environment without stageprof's or the server's settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STAGEPROF_", "DETECT_SERVER_",
                                "ENABLE_WORKFLOWS_PROFILING",
                                "WORKFLOWS_PROFILER_"))}
    env.update(extra)
    return env


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine_busy():
    """Busy CPU seconds of the whole machine (/proc/stat, all CPUs)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / TICK


def proc_cpu(pid):
    """utime + stime of process @pid, seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# ---------------------------------------------------------------------------
# The server, wrk and the capture loop


class Server:
    def __init__(self, argv, work, environ, timeout=60):
        self.err = open(os.path.join(work, "server.err"), "w")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                  stderr=self.err, cwd=work, env=environ,
                                  preexec_fn=die_with_parent)
        fd, line = self.p.stdout.fileno(), b""
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise BenchError("%s printed no port within %d s"
                                 % (argv[0], timeout))
            if select.select([fd], [], [], left)[0]:
                b = os.read(fd, 1)
                if not b:
                    self.kill()
                    raise BenchError("%s exited before listening (see %s)"
                                     % (argv[0], self.err.name))
                line += b
        m = re.fullmatch(rb"listening on 127\.0\.0\.1:(\d+)\n", line)
        if m is None:
            self.kill()
            raise BenchError("first line %r" % line)
        self.port = int(m.group(1))

    def stop(self, timeout=60):
        self.p.send_signal(signal.SIGTERM)
        try:
            out, _ = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError("the server did not exit within %d s" % timeout)
        self.err.close()
        return self.p.returncode, out.decode(errors="replace")

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=30)
        self.err.close()


def wrk_run(wrk, port, seconds, conns):
    """Run wrk for @seconds; post.lua's figures, and wrk's text."""
    p = subprocess.Popen(
        [wrk, "-t2", "-c%d" % conns, "-d%ds" % seconds, "--timeout", "20s",
         "-s", LUA, "http://127.0.0.1:%d/v1/detect" % port, "--", DOG],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=clean_env(), preexec_fn=die_with_parent)
    try:
        out, _ = p.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise BenchError("wrk did not finish within %d s" % (seconds + 60))
    m = re.search(r"^post\.lua: (\{.*\})$", out, re.M)
    if p.returncode != 0 or m is None:
        raise BenchError("wrk exited %d without figures:\n%s"
                         % (p.returncode, out))
    r = json.loads(m.group(1))
    r["clean"] = ("Socket errors" not in out and "Non-2xx" not in out and
                  not any(r["errors"].values()))
    return r, out


class CaptureLoop(threading.Thread):
    """`stageprof capture` back to back until stop() is called."""

    def __init__(self, cli, addr, ms, work):
        super().__init__(daemon=True)
        self.argv = [cli, "capture", addr, "--duration-ms", str(ms),
                     "--retries", "0", "--timeout-s", "30",
                     "-o", os.path.join(work, "window.json")]
        self.log = os.path.join(work, "capture.log")
        self.ms = ms
        self.done = threading.Event()
        self.captures = 0
        self.failed = []
        self.events = []
        self.cpu = 0.0
        self.error = None

    def run(self):
        try:
            while not self.done.is_set():
                self._one()
        except BaseException as e:  # reported by the main thread
            self.error = e

    def _one(self):
        with open(self.log, "w") as log:
            p = subprocess.Popen(self.argv, stdout=log, stderr=log,
                                 env=clean_env(), preexec_fn=die_with_parent)
        deadline = time.monotonic() + self.ms / 1000 + 60
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                p.returncode = -9
                raise BenchError("stageprof capture did not exit in time")
            time.sleep(0.002)
        p.returncode = os.waitstatus_to_exitcode(status)
        self.cpu += ru.ru_utime + ru.ru_stime
        self.captures += 1
        with open(self.log) as f:
            text = f.read()
        m = re.search(r"^trace: .* \((\d+) events, (\d+) dropped\)$", text,
                      re.M)
        if p.returncode != 0 or m is None:
            self.failed.append("exit %d: %s" % (p.returncode,
                                                text.strip()[-300:]))
        else:
            self.events.append(int(m.group(1)))

    def stop(self, timeout=90):
        self.done.set()
        self.join(timeout)
        if self.is_alive():
            raise BenchError("the capture loop did not stop within %d s"
                             % timeout)
        if self.error is not None:
            raise self.error


def one_run(opts, srv, addr, with_capture, work):
    """One wrk run, with or without captures: its figures."""
    busy0, srv0, kids0 = machine_busy(), proc_cpu(srv.p.pid), children_cpu()
    t0 = time.monotonic()
    loop = None
    if with_capture:
        loop = CaptureLoop(opts.stageprof, addr, opts.capture_ms, work)
        loop.start()
    try:
        r, out = wrk_run(opts.wrk, srv.port, opts.seconds, opts.conns)
    finally:
        if loop is not None:
            loop.stop()
    wall = time.monotonic() - t0
    busy = machine_busy() - busy0
    server = proc_cpu(srv.p.pid) - srv0
    kids = children_cpu() - kids0
    client = loop.cpu if loop else 0.0
    res = {"rps": r["rps"], "requests": r["requests"], "clean": r["clean"],
           "wrk_out": out, "cpu_per_req": server / max(r["requests"], 1),
           "client_cpu": client,
           "others": max(0.0, busy - server - kids) / wall}
    if loop is not None:
        res.update(captures=loop.captures, failed=loop.failed,
                   events=loop.events,
                   covered=loop.captures * opts.capture_ms / 1000 /
                   opts.seconds)
    return res


# ---------------------------------------------------------------------------
# Statistics


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def binom_half_cdf(n, j):
    """P(B <= j), B ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(j + 1)) / 2 ** n


def median_interval(xs):
    """(lo, hi, k, coverage): the order-statistics interval of the median;
    k 0 when even the extremes cover less than 95 % (then lo, hi are the
    extremes and coverage theirs)."""
    s, n = sorted(xs), len(xs)
    k, cover = 0, 1 - 2 * binom_half_cdf(n, 0)
    for kk in range(1, n // 2 + 1):
        c = 1 - 2 * binom_half_cdf(n, kk - 1)
        if c < 0.95:
            break
        k, cover = kk, c
    if k == 0:
        return s[0], s[-1], 0, 1 - 2 * binom_half_cdf(n, 0)
    return s[k - 1], s[n - k], k, cover


# ---------------------------------------------------------------------------
# Main


def find(path, what):
    if path is None or not (os.path.isfile(path) and
                            os.access(path, os.X_OK)):
        raise BenchError("%s not found (%s): build first, or name it"
                         % (what, path))
    return os.path.abspath(path)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main():
    ap = argparse.ArgumentParser(
        description="throughput of examples/detect_server under wrk with "
        "and without `stageprof capture`")
    ap.add_argument("--pairs", type=int, default=6,
                    help="pairs of runs (6; 6 or more give a 95%% interval)")
    ap.add_argument("--seconds", type=int, default=10,
                    help="length of each run (10)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="build directory (build/)")
    ap.add_argument("--server", help="detect_server (BUILD/examples/"
                    "detect_server/detect_server)")
    ap.add_argument("--stageprof", help="the CLI (BUILD/stageprof)")
    ap.add_argument("--wrk", default=shutil.which("wrk"),
                    help="wrk (from PATH)")
    ap.add_argument("--conns", type=int, default=4,
                    help="wrk's connections (4)")
    ap.add_argument("--workers", type=int, default=2,
                    help="server workers (2)")
    ap.add_argument("--input", type=int, default=128,
                    help="server --input (128)")
    ap.add_argument("--topk", type=int, default=1, help="server --topk (1)")
    ap.add_argument("--capture-ms", type=int, default=1000,
                    help="--duration-ms of each capture (1000)")
    opts = ap.parse_args()
    if opts.pairs < 1 or opts.seconds < 1 or opts.capture_ms < 1:
        ap.error("--pairs, --seconds and --capture-ms must be positive")
    opts.server = find(opts.server or os.path.join(
        opts.build, "examples", "detect_server", "detect_server"),
        "detect_server")
    opts.stageprof = find(opts.stageprof or os.path.join(opts.build,
                                                         "stageprof"),
                          "stageprof")
    opts.wrk = find(opts.wrk, "wrk")
    if not os.path.exists(DOG):
        raise BenchError("%s is missing: darknet's data (make deps)" % DOG)

    work = tempfile.mkdtemp(prefix="bench-capture-")
    addr = "127.0.0.1:%d" % free_port()
    argv = [opts.server, "--port", "0", "--workers", str(opts.workers),
            "--input", str(opts.input), "--topk", str(opts.topk)]
    print("bench_capture: %s, %d CPUs usable" % (cpu_model(),
                                                 len(os.sched_getaffinity(0))))
    print("server: STAGEPROF_HTTP=%s %s" % (addr, " ".join(
        [os.path.relpath(argv[0], ROOT)] + argv[1:])))
    print("load: wrk -t2 -c%d -d%ds, post.lua with dog.jpg; with: `stageprof "
          "capture --duration-ms %d` back to back" % (opts.conns,
                                                      opts.seconds,
                                                      opts.capture_ms))
    print("%d pairs, order with,without then without,with alternating, "
          "after a warm-up run of 3 s (not counted)\n" % opts.pairs)
    sys.stdout.flush()

    srv = Server(argv, work, clean_env(STAGEPROF_HTTP=addr))
    bad = []
    try:
        wrk_run(opts.wrk, srv.port, 3, opts.conns)
        print("pair  order          without r/s  with r/s  with/without"
              "  caps  covered  events/cap  client cpu  cpu/req w/wo  "
              "others")
        ratios, cpu_ratios, flagged = [], [], 0
        for i in range(opts.pairs):
            with_first = i % 2 == 0
            runs = {}
            for w in ((True, False) if with_first else (False, True)):
                runs[w] = one_run(opts, srv, addr, w, work)
                if not runs[w]["clean"]:
                    bad.append("pair %d, %s: wrk saw errors:\n%s"
                               % (i + 1, "with" if w else "without",
                                  runs[w]["wrk_out"]))
            a, b = runs[True], runs[False]
            if a["failed"]:
                bad.append("pair %d: %d of %d captures failed, e.g. %s"
                           % (i + 1, len(a["failed"]), a["captures"],
                              a["failed"][0]))
            ratio = a["rps"] / b["rps"]
            cpu_ratio = a["cpu_per_req"] / b["cpu_per_req"]
            ratios.append(ratio)
            cpu_ratios.append(cpu_ratio)
            others = max(a["others"], b["others"])
            flagged += others > OTHERS_MAX
            print("%4d  %-13s %11.3f %9.3f %13.4f %5d %7.0f%% %11.0f "
                  "%9.3f s %13.4f %7.2f%s"
                  % (i + 1, "with,without" if with_first else
                     "without,with", b["rps"], a["rps"], ratio,
                     a["captures"], 100 * a["covered"],
                     median(a["events"]) if a["events"] else 0,
                     a["client_cpu"], cpu_ratio, others,
                     "  *" if others > OTHERS_MAX else ""))
            sys.stdout.flush()
        rc, _ = srv.stop()
        if rc != 0:
            bad.append("the server exited %d after SIGTERM" % rc)
    finally:
        srv.kill()

    print("(r/s: requests per second wrk completed; caps: captures during "
          "the with-run;\n covered: their windows' total length / the run; "
          "client cpu: CPU time of the\n capture clients; cpu/req: the "
          "server's CPU time per request, with / without;\n others: CPUs "
          "used by other processes during the pair's busier run)")
    if flagged:
        print("* %d of %d pairs had other work above %.1f CPUs in a run: "
              "their ratios measure\n  that as much as the captures"
              % (flagged, opts.pairs, OTHERS_MAX))
    n, med = len(ratios), median(ratios)
    lo, hi, k, cover = median_interval(ratios)
    print("\nthroughput with/without, median of %d pairs: %.4f (1 - ratio "
          "%+.2f%%)" % (n, med, 100 * (1 - med)))
    if k:
        print("  95%% interval for the median (order statistics): [%.4f, "
              "%.4f] (ranks %d and %d of %d, coverage %.2f%%)"
              % (lo, hi, k, n + 1 - k, n, 100 * cover))
    else:
        print("  no 95%% interval: it needs at least 6 pairs; the range of "
              "the %d ratios, [%.4f, %.4f], covers the median with "
              "probability %.2f%%" % (n, lo, hi, 100 * cover))
    print("  server CPU per request with/without: median %.4f"
          % median(cpu_ratios))
    if k:
        verdict = ("met (the whole interval is at or above it)"
                   if lo >= TARGET else
                   "MISSED (the whole interval is below it)"
                   if hi < TARGET else
                   "not decided: the interval straddles it")
    else:
        verdict = ("median %s it; too few pairs for an interval"
                   % ("at or above" if med >= TARGET else "BELOW"))
    print("target: throughput during captures >= %.2f x without: %s"
          % (TARGET, verdict))
    shutil.rmtree(work, ignore_errors=True)
    for b in bad:
        print("bench_capture: %s" % b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print("bench_capture: %s" % e, file=sys.stderr)
        sys.exit(1)
