#!/usr/bin/env python3
"""check_capture.py STAGEPROF IT_HTTP MODE - `stageprof capture` against a
running pipeline (it_http serving STAGEPROF_HTTP). MODE:

  window   metrics mode: a 500 ms window is written to -o FILE, valid JSON
           whose events match the count the command prints, followed by the
           report of it; the pipeline keeps going.
  recent   tracing mode: --recent writes the runs the process keeps.
  empty    a category filter that keeps nothing: asked again --retries
           times with the server's reason each time, then exit 1 with the
           reason, and the empty trace still written.
  errors   a refused port, a token the server wants (401 without it, the
           capture with it), a capture while another runs (409), bad usage
           (exit 2): each with its one-line message.

Every wait is bounded; the program is killed when a check fails.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time

import tracecheck as tc
from tracecheck import ensure
from check_http import Pipeline, dial


def capture(cli, args, expect_rc, timeout=60):
    p = subprocess.run([cli, "capture"] + args, capture_output=True,
                       text=True, timeout=timeout, env=tc.clean_env())
    ensure(p.returncode == expect_rc, "stageprof capture %s: exit %d, wanted "
           "%d\nstdout: %s\nstderr: %s" % (" ".join(args), p.returncode,
                                           expect_rc, p.stdout[-2000:],
                                           p.stderr[-2000:]))
    return p


def events_of(path):
    with open(path) as f:
        trace = json.load(f)
    return trace, [e for e in trace["traceEvents"] if e.get("ph") != "M"]


def mode_window(cli, it, work):
    p = Pipeline(it, work, "window", STAGEPROF_HTTP="127.0.0.1:0")
    try:
        out = os.path.join(work, "w.json")
        beats = p.beats()
        r = capture(cli, ["127.0.0.1:%d" % p.port, "--duration-ms", "500",
                          "-o", out], 0)
        m = re.search(r"^trace: (.*) \((\d+) events, (\d+) dropped\)$",
                      r.stdout, re.M)
        ensure(m is not None and m.group(1) == out,
               "no 'trace: FILE (N events, D dropped)' line:\n%s" % r.stdout)
        trace, events = events_of(out)
        ensure(len(events) == int(m.group(2)) > 0,
               "the file holds %d events, the command said %s"
               % (len(events), m.group(2)))
        ensure(trace["capture"]["events"] == len(events),
               "capture object %r" % trace["capture"])
        ensure("stage" in r.stdout and "bottleneck" in r.stdout,
               "no report after the trace line:\n%s" % r.stdout)
        ensure(p.beats() > beats, "the pipeline stopped during the capture")
        p.alive("the capture")
        p.finish()
    except BaseException:
        p.kill()
        raise


def mode_recent(cli, it, work):
    p = Pipeline(it, work, "recent", STAGEPROF_HTTP="127.0.0.1:0",
                 STAGEPROF_ENABLE="1", STAGEPROF_DIR=work)
    try:
        time.sleep(0.5)
        out = os.path.join(work, "r.json")
        r = capture(cli, ["http://127.0.0.1:%d/" % p.port, "--recent", "-o",
                          out], 0)
        trace, events = events_of(out)
        ensure(events and trace["capture"]["mode"] == "recent",
               "recent capture: %r, %d events" % (trace.get("capture"),
                                                  len(events)))
        ensure("%d events" % len(events) in r.stdout, r.stdout)
        p.alive("the recent capture")
        p.finish()
    except BaseException:
        p.kill()
        raise


def mode_empty(cli, it, work):
    p = Pipeline(it, work, "empty", STAGEPROF_HTTP="127.0.0.1:0")
    try:
        out = os.path.join(work, "e.json")
        r = capture(cli, ["127.0.0.1:%d" % p.port, "--duration-ms", "100",
                          "--categories", "no_such_category", "--retries",
                          "2", "-o", out], 1)
        asked = re.findall(r"empty capture \((.+)\); asking again \((\d) of "
                           r"2\)", r.stderr)
        ensure([n for _, n in asked] == ["1", "2"],
               "retries not reported:\n%s" % r.stderr)
        ensure(asked[0][0] == "the category filter removed every event",
               "reason %r" % asked[0][0])
        ensure(re.search(r"holds no events: .*category", r.stderr),
               "final message:\n%s" % r.stderr)
        trace, events = events_of(out)
        ensure(not events and trace["capture"]["empty_reason"],
               "the empty trace: %r" % trace.get("capture"))
        p.finish()
    except BaseException:
        p.kill()
        raise


def mode_errors(cli, it, work):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = capture(cli, ["127.0.0.1:%d" % port, "--duration-ms", "10"], 1)
    ensure(r.stderr.startswith("stageprof capture: ") and
           r.stderr.count("\n") == 1, "refused port: %r" % r.stderr)
    for args, word in ((["ftp://x"], "http"), ([], "no URL"),
                       (["a", "b"], "one URL"),
                       (["x:1", "--duration-ms", "0"], "--duration-ms"),
                       (["x:1", "--duration-ms", "1e3"], "--duration-ms"),
                       (["x:1", "--retries", "-1"], "--retries"),
                       (["x:1", "--recent", "--delay-ms", "5"], "--recent"),
                       (["x:1", "--bogus"], "bogus")):
        r = capture(cli, args, 2)
        ensure(word in r.stderr, "%r: %r" % (args, r.stderr))

    p = Pipeline(it, work, "token", STAGEPROF_HTTP="127.0.0.1:0",
                 STAGEPROF_HTTP_TOKEN="open-sesame")
    try:
        url = "127.0.0.1:%d" % p.port
        r = capture(cli, [url, "--duration-ms", "50", "-o",
                          os.path.join(work, "t.json")], 1)
        ensure("answered 401" in r.stderr, r.stderr)
        capture(cli, [url, "--duration-ms", "200", "--token", "open-sesame",
                      "-o", os.path.join(work, "t.json")], 0)
        # A capture held by another client: 409 with the server's reason.
        held = dial(p.port)
        held.sendall(b"GET /capture?delay_ms=3000&duration_ms=100 HTTP/1.1"
                     b"\r\nHost: x\r\nAuthorization: Bearer open-sesame\r\n"
                     b"Connection: close\r\n\r\n")
        time.sleep(0.5)
        r = capture(cli, [url, "--recent", "--token", "open-sesame", "-o",
                          os.path.join(work, "c.json")], 1)
        ensure("answered 409" in r.stderr, r.stderr)
        held.close()
        p.alive("the refused captures")
        p.finish()
    except BaseException:
        p.kill()
        raise


def body(work):
    cli, it, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    {"window": mode_window, "recent": mode_recent, "empty": mode_empty,
     "errors": mode_errors}[mode](cli, it, work)


if __name__ == "__main__":
    tc.main(body)
