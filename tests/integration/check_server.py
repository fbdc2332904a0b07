#!/usr/bin/env python3
"""check_server.py PROGRAM MODE [TOOLS...] - the detection server
(examples/detect_server) over real HTTP.

  api         one worker, an ephemeral port, tracing on: /healthz; real
              JPEGs answered with boxes, class numbers, labels and scores
              consistent with darknet's own config and label files, the
              picture's size as its JPEG header gives it, the same answer
              for the same picture; an empty body, garbage, a truncated
              JPEG, an oversized picture, bodies over the limit (announced,
              with Expect: 100-continue, chunked, chunked without end), a
              wrong method, an unknown path and a huge header each get
              their status and a one-line reason, and a good request is
              still answered after them. After SIGTERM: exit 0 and a trace
              in which every request that reached the queue is a run
              holding each stage span in its category, on the right
              thread, carrying the run, one hand-off flow each; the early
              refusals are runs of parse_request alone. Settings from
              DETECT_SERVER_* variables apply, and a flag wins over them.
              A second server with --requests exits by itself.
  usage       bad flags and variables exit 2 with a message naming them
  load        wrk (TOOLS: wrk) drives two workers for 5 s over 4
              connections: no socket errors, no non-2xx answers; /healthz
              answers at once meanwhile; SIGTERM then ends the server
              cleanly, and its count of answers covers wrk's
  prometheus  (TOOLS: wrk prometheus promtool) the library's own
              endpoint (STAGEPROF_HTTP, STAGEPROF_SAMPLE_HZ=10) under wrk
              load, scraped every second by a real Prometheus: target up;
              the p99 of every server stage finite; every stage in its
              category; deploy/prometheus/alerts.yml evaluating without
              error; every query of deploy/grafana/stageprof.json running,
              with data for each metric family the server exposes;
              `promtool check metrics` silent on a scrape
  capture     (TOOLS: wrk stageprof) the library's endpoint in metrics
              mode while wrk drives two workers for 8 s: `stageprof
              capture --duration-ms 1000` after 2 s exits 0 with a valid,
              non-empty trace whose events lie in its capture window and
              hold at least one whole request with its stages; the server
              is back in metrics mode afterwards (its runs counter still
              counts, no trace file is written, `capture --recent` exits 1
              saying metrics mode keeps no runs); wrk saw no error or
              non-2xx answer over the whole run
  tail        (TOOLS: stageprof) tracing with a ring of 8 and the slowest
              run of the hour kept (--slow-requests): bad X-Slow-Ms
              values get 400; one request made 1500 ms slower, then 120
              ordinary ones; `stageprof capture --recent` holds exactly
              the last 8 requests and the slow one, whole, listed in the
              trace's tail as not in the ring; so does the file at exit
"""
import http.client
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

# No __pycache__ in the source tree; promtest.py lives in tests/.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
import promtest  # noqa: E402
import tracecheck as tc  # noqa: E402
from tracecheck import ensure, short, to_ns  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
LUA = os.path.join(ROOT, "examples", "detect_server", "post.lua")
DARKNET = "/usr/share/darknet"
DATA = os.path.join(DARKNET, "data")
DOG = os.path.join(DATA, "dog.jpg")
EAGLE = os.path.join(DATA, "eagle.jpg")
KITE = os.path.join(DATA, "kite.jpg")  # 1.4 MB: over the api limit
MAX_BODY = 400000

# The stages and categories the server promises (its documentation).
STAGES = {"parse_request": "serve", "decode": "data",
          "preprocess": "preprocess", "inference": "compute",
          "postprocess": "postprocess", "crop": "preprocess",
          "classify": "compute", "serialize_response": "serve"}
WORKER_STAGES = [s for s in STAGES if s != "parse_request"]
ONE_LINE_JSON = re.compile(rb"\{[^\n]*\}\n")


def need_darknet():
    tc.need_path(DOG, "darknet's data is not installed (make deps)")


def env(**extra):
    """A clean environment: no profiler and no DETECT_SERVER_* settings."""
    return tc.clean_env(drop="DETECT_SERVER_", **extra)


def die_with_parent():
    """Run in a child before exec: SIGKILL when the checker dies (a test
    timeout kills the checker, not its children)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # DEATHSIG


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------
# The server process


class Server:
    """The server started in @work; the port it printed first."""

    def __init__(self, prog, args, work, environ, timeout=60):
        self.argv = [prog] + args
        self.err_path = os.path.join(work, "server.%d.err" % time.time_ns())
        self.err = open(self.err_path, "w")
        self.p = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                  stderr=self.err, cwd=work, env=environ,
                                  preexec_fn=die_with_parent)
        try:
            line = self._first_line(timeout)
            m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
            ensure(m is not None and 0 < int(m.group(1)) < 65536,
                   "first line %r is not 'listening on 127.0.0.1:PORT'"
                   % line)
            self.port = int(m.group(1))
        except BaseException:
            self.kill()
            raise

    def _first_line(self, timeout):
        fd, got = self.p.stdout.fileno(), b""
        deadline = time.time() + timeout
        while not got.endswith(b"\n"):
            left = deadline - time.time()
            ensure(left > 0, "%s printed no port within %d s (stderr in %s)"
                   % (self.argv[0], timeout, self.err_path))
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                b = os.read(fd, 1)
                if b == b"":
                    raise tc.CheckError(
                        "%s exited before listening (status %r, stderr: %s)"
                        % (self.argv[0], self.p.wait(timeout=30),
                           self.stderr()))
                got += b
        return got.decode()

    def stderr(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.err_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Signal (unless None), wait; (status, rest of stdout)."""
        if sig is not None and self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            out, _ = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise tc.CheckError("%s did not exit within %d s"
                                % (self.argv[0], timeout))
        self.err.close()
        return self.p.returncode, out.decode(errors="replace")

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=30)
        if not self.err.closed:
            self.err.close()


def request(port, method, path, body=None, headers=None, timeout=60):
    """One request on its own connection: (status, headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def raw(port, data, more=(), timeout=30):
    """Send @data, then each of @more (stopping at the first send error),
    and read until the server closes; the bytes received."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = b""
    try:
        try:
            s.sendall(data)
            for piece in more:
                s.sendall(piece)
        except OSError:
            pass
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            got += b
    finally:
        s.close()
    return got


def parse_raw(got):
    """(status, headers, body) of the one response in @got."""
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0] + " ")
    ensure(m is not None, "not an HTTP response: %r" % got[:200])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(m.group(1)), headers, body


def check_error(what, got, status, words=(), run=False):
    """An error answer: the status, and a one-line JSON reason."""
    st, headers, body = got
    ensure(st == status, "%s: status %d, wanted %d (%r)"
           % (what, st, status, body[:200]))
    ensure(ONE_LINE_JSON.fullmatch(body) is not None,
           "%s: the reason is not one line of JSON: %r" % (what, body))
    doc = json.loads(body)
    ensure(doc.get("status") == status and isinstance(doc.get("error"), str)
           and doc["error"], "%s: reason %r" % (what, doc))
    for w in words:
        ensure(w in doc["error"], "%s: %r not in the reason %r"
               % (what, w, doc["error"]))
    ensure(headers.get("content-type") == "application/json",
           "%s: content type %r" % (what, headers.get("content-type")))
    if run:
        ensure(isinstance(doc.get("request"), int) and
               headers.get("x-request-id") == str(doc["request"]),
               "%s: no request id %r / %r" % (what, doc.get("request"),
                                             headers.get("x-request-id")))
    else:
        ensure("request" not in doc, "%s: refused before any run, yet "
               "answered with request %r" % (what, doc.get("request")))
    return doc


# ---------------------------------------------------------------------------
# What an answer must be, from darknet's files and the JPEG itself


def lines(path):
    with open(path) as f:
        return [l.rstrip("\r\n") for l in f]


def detector_classes():
    """classes= of the detector config's last [yolo] section."""
    n = None
    for line in lines(os.path.join(DARKNET, "cfg", "yolov3-tiny.cfg")):
        m = re.fullmatch(r"\s*classes\s*=\s*(\d+)\s*", line)
        if m:
            n = int(m.group(1))
    ensure(n, "no classes= in yolov3-tiny.cfg")
    return n


def label_of(names, cls):
    return names[cls] if 0 <= cls < len(names) else "class_%d" % cls


def check_answer(what, got, data, topk):
    """A 200 answer for the picture @data: its JSON, checked."""
    st, headers, body = got
    ensure(st == 200, "%s: status %d (%r)" % (what, st, body[:300]))
    ensure(headers.get("content-type") == "application/json",
           "%s: content type %r" % (what, headers.get("content-type")))
    a = json.loads(body)
    ensure(set(a) == {"request", "width", "height", "detections", "crops"},
           "%s: keys %r" % (what, sorted(a)))
    ensure(isinstance(a["request"], int) and a["request"] > 0 and
           headers.get("x-request-id") == str(a["request"]),
           "%s: request id %r, header %r" % (what, a["request"],
                                             headers.get("x-request-id")))
    ensure((a["width"], a["height"]) == tc.jpeg_size(data),
           "%s: %dx%d, the JPEG says %dx%d" % ((what, a["width"],
                                                a["height"]) +
                                               tc.jpeg_size(data)))
    classes = detector_classes()
    coco = lines(os.path.join(DATA, "coco.names"))
    imagenet = lines(os.path.join(DATA, "imagenet.shortnames.list"))
    ensure(a["detections"], "%s: no detections (random weights give "
           "hundreds of boxes)" % what)
    for d in a["detections"]:
        ensure(set(d) == {"label", "class", "score", "box"},
               "%s: detection keys %r" % (what, sorted(d)))
        ensure(isinstance(d["class"], int) and 0 <= d["class"] < classes,
               "%s: class %r outside 0..%d" % (what, d["class"], classes - 1))
        ensure(d["label"] == label_of(coco, d["class"]),
               "%s: class %d labelled %r, coco.names says %r"
               % (what, d["class"], d["label"], label_of(coco, d["class"])))
        ensure(0.0 < d["score"] <= 1.0 and len(d["box"]) == 4 and
               all(math.isfinite(v) for v in d["box"]) and
               d["box"][2] >= 0 and d["box"][3] >= 0,
               "%s: bad detection %r" % (what, d))
    ensure(len(a["crops"]) == min(topk, len(a["detections"])),
           "%s: %d crops for %d detections, top-%d"
           % (what, len(a["crops"]), len(a["detections"]), topk))
    for c in a["crops"]:
        ensure(set(c) == {"detection", "label", "class", "score"},
               "%s: crop keys %r" % (what, sorted(c)))
        ensure(0 <= c["detection"] < len(a["detections"]) and
               isinstance(c["class"], int) and c["class"] >= 0 and
               c["label"] == label_of(imagenet, c["class"]) and
               math.isfinite(c["score"]), "%s: bad crop %r" % (what, c))
    # The crops are of the strongest boxes, strongest first, each once.
    scores = sorted((d["score"] for d in a["detections"]), reverse=True)
    cropped = [a["detections"][c["detection"]]["score"] for c in a["crops"]]
    ensure(cropped == scores[:len(cropped)] and
           len({c["detection"] for c in a["crops"]}) == len(a["crops"]),
           "%s: crops of boxes scoring %r, the strongest score %r"
           % (what, cropped, scores[:topk]))
    return a


# ---------------------------------------------------------------------------
# api


def check_trace(path, outcomes, queue_cap):
    """@outcomes: run id -> ("ok", answer) | ("decode", None) |
    ("parse", None), for every answer that carried a request id."""
    t = tc.load(path)
    tc.check_events(t)
    tc.check_summary(t, complete=True)
    ensure(t.summary["events_dropped"] == 0 and
           not any(t.summary["misuse"].values()), "summary %r" % t.summary)
    names = tc.check_thread_names(t, ["main", "http", "worker-0"])
    tc.check_nesting(t, {st: None for st in
                         list(STAGES) + ["queue_pop", "load_models"]})

    pairs = tc.check_async(t)
    ensure(all(k[0] == "run" and k[2] == "request" for k in pairs),
           "runs %r" % sorted(pairs)[:5])
    runs = {int(k[1], 16): v for k, v in pairs.items()}
    ensure(sorted(runs) == sorted(outcomes), "runs %r, requests answered "
           "with ids %r" % (sorted(runs), sorted(outcomes)))

    per_run = {rid: [] for rid in runs}
    for ev in t.by_ph["X"]:
        r = ev.get("args", {}).get("run")
        if r is not None:
            ensure(r in per_run, "span of an unknown run: %s" % short(ev))
            per_run[r].append(ev)
        if ev["name"] in STAGES:
            ensure(ev["cat"] == STAGES[ev["name"]] and r is not None,
                   "%s outside a run or not in %s: %s"
                   % (ev["name"], STAGES[ev["name"]], short(ev)))
    handed = set()
    for rid, (b, e) in runs.items():
        kind, answer = outcomes[rid]
        got = sorted(x["name"] for x in per_run[rid])
        if kind == "ok":
            want = WORKER_STAGES + ["parse_request"] + \
                ["classify"] * (len(answer["crops"]) - 1)
        elif kind == "decode":
            want = ["parse_request", "decode", "serialize_response"]
        else:
            want = ["parse_request"]
        ensure(got == sorted(want), "request %d (%s): spans %r, wanted %r"
               % (rid, kind, got, sorted(want)))
        lo, hi = to_ns(b["ts"], "ts"), to_ns(e["ts"], "ts")
        for x in per_run[rid]:
            xs = to_ns(x["ts"], "ts")
            ensure(lo <= xs and xs + to_ns(x["dur"], "dur") <= hi,
                   "span outside its request's run: %s" % short(x))
            where = "http" if x["name"] == "parse_request" else "worker-0"
            ensure(names[x["tid"]] == where, "%s recorded on %s"
                   % (x["name"], names[x["tid"]]))
        ensure(names[b["tid"]] == "http", "request %d begins on %s"
               % (rid, names[b["tid"]]))
        ensure(names[e["tid"]] == ("http" if kind == "parse"
                                   else "worker-0"),
               "request %d (%s) ends on %s" % (rid, kind, names[e["tid"]]))
        if kind != "parse":
            handed.add(rid)
        for x in per_run[rid]:
            if x["name"] == "serialize_response":
                want_status = 200 if kind == "ok" else 400
                ensure(x["args"].get("status") == want_status,
                       "request %d: serialize_response status %r"
                       % (rid, x["args"].get("status")))
                if kind == "ok":
                    ensure(x["args"].get("detections") ==
                           len(answer["detections"]),
                           "request %d: serialize_response says %r "
                           "detections, the answer has %d"
                           % (rid, x["args"].get("detections"),
                              len(answer["detections"])))

    flows = tc.check_flows(t, inside=("parse_request", "queue_pop"))
    ensure({int(i, 16) for i in flows} == handed, "hand-off flows %r, "
           "requests queued %r" % (sorted(flows), sorted(handed)))
    ensure(all("run" not in e.get("args", {})
               for e in t.named("X", "queue_pop")), "queue_pop in a run")
    depth = t.named("C", "queue_depth")
    ensure(len(depth) == 2 * len(handed) and
           all(0 <= e["args"]["value"] <= queue_cap for e in depth),
           "queue_depth samples %r for %d requests queued"
           % ([e["args"]["value"] for e in depth], len(handed)))
    first = min(to_ns(b["ts"], "ts") for b, _ in runs.values())
    ev = t.named("X", "load_models")
    ensure(len(ev) == 1 and ev[0]["cat"] == "engine" and
           names[ev[0]["tid"]] == "main" and
           "run" not in ev[0].get("args", {}) and
           to_ns(ev[0]["ts"], "ts") + to_ns(ev[0]["dur"], "dur") <= first,
           "load_models is not start-up work on main: %r" % ev)


def check_api(work, prog):
    need_darknet()
    dog, eagle, kite = read(DOG), read(EAGLE), read(KITE)
    ensure(len(dog) < MAX_BODY and len(eagle) < MAX_BODY < len(kite),
           "sample sizes changed: %d %d %d" % (len(dog), len(eagle),
                                               len(kite)))
    traces = os.path.join(work, "traces")
    topk = 3  # not the default
    # Variables set what no flag sets (top-K); flags win over the others.
    e = env(STAGEPROF_ENABLE="1", STAGEPROF_DIR=traces,
            STAGEPROF_BUFFER_RUNS="0", DETECT_SERVER_TOPK=str(topk),
            DETECT_SERVER_WORKERS="3", DETECT_SERVER_MAX_BODY="1000",
            DETECT_SERVER_PORT="1")
    srv = Server(prog, ["--port", "0", "--workers", "1", "--input", "128",
                        "--max-body", str(MAX_BODY), "--queue", "2"],
                 work, e)
    try:
        outcomes = api_requests(srv.port, dog, eagle, kite, topk)
        rc, out = srv.stop()
    except BaseException:
        srv.kill()
        raise
    ensure(rc == 0, "exit status %d after SIGTERM; stdout:\n%s\nstderr:\n%s"
           % (rc, out, srv.stderr()))
    path = tc.only_trace(traces)
    ensure("trace written to %s\n" % path in out,
           "the trace path is not reported:\n%s" % out)
    check_trace(path, outcomes, 2)

    # --requests: exits by itself once that many requests are done.
    srv = Server(prog, ["--port", "0", "--workers", "1", "--input", "64",
                        "--requests", "3", "--slow", "inference:50"],
                 work, env())
    try:
        for i in range(2):
            st, _, _ = request(srv.port, "GET", "/healthz")
            ensure(st == 200, "--requests: /healthz %d" % st)
        check_answer("dog.jpg, inference slowed down", request(
            srv.port, "POST", "/v1/detect", dog), dog, 2)
        rc, out = srv.stop(sig=None, timeout=30)
    except BaseException:
        srv.kill()
        raise
    ensure(rc == 0 and "3 requests done" in out and
           "3 requests answered" in out and
           "inference slowed down by 50%" in out,
           "--requests 3: status %d:\n%s" % (rc, out))


def api_requests(port, dog, eagle, kite, topk):
    outcomes = {}
    st, h, body = request(port, "GET", "/healthz")
    ensure(st == 200 and json.loads(body) == {"status": "ok"},
           "/healthz: %d %r" % (st, body))
    st, h, body = request(port, "HEAD", "/healthz")
    ensure(st == 200 and body == b"", "HEAD /healthz: %d %r" % (st, body))

    hdr = {"Content-Type": "image/jpeg"}
    first = check_answer("dog.jpg", request(port, "POST", "/v1/detect", dog,
                                            hdr), dog, topk)
    outcomes[first["request"]] = ("ok", first)
    a = check_answer("eagle.jpg", request(port, "POST", "/v1/detect", eagle,
                                          hdr), eagle, topk)
    outcomes[a["request"]] = ("ok", a)
    # Several on one keep-alive connection, the last a repeat of the first.
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for data, name in ((eagle, "eagle.jpg"), (dog, "dog.jpg")):
            c.request("POST", "/v1/detect", body=data, headers=hdr)
            r = c.getresponse()
            got = (r.status, {k.lower(): v for k, v in r.getheaders()},
                   r.read())
            a = check_answer(name + " (kept-alive)", got, data, topk)
            outcomes[a["request"]] = ("ok", a)
    finally:
        c.close()
    ensure(a["detections"] == first["detections"] and
           a["crops"] == first["crops"],
           "the same picture got different answers:\n%r\n%r" % (first, a))

    # Bodies that cannot be a picture: refused by parse_request.
    for what, body, words in (("empty body", b"", ["empty"]),
                              ("garbage", b"GIF89a not a jpeg" * 100,
                               ["not a JPEG"])):
        doc = check_error(what, request(port, "POST", "/v1/detect", body,
                                        hdr), 400, words, run=True)
        outcomes[doc["request"]] = ("parse", None)
    # Pictures that do not decode: refused by the worker's decode.
    for what, body, words in (("truncated JPEG", dog[:len(dog) // 2],
                               ["truncated"]),
                              ("JPEG of 60000x50000",
                               tc.jpeg_with_size(dog, 60000, 50000),
                               ["larger than"]),
                              ("corrupt JPEG", dog[:600] + b"\x00" * 5000,
                               ["JPEG"])):
        doc = check_error(what, request(port, "POST", "/v1/detect", body,
                                        hdr), 400, words, run=True)
        outcomes[doc["request"]] = ("decode", None)

    # Over the limit: refused before the body is read, no run.
    limit = str(MAX_BODY)
    check_error("kite.jpg over the limit", parse_raw(raw(
        port, b"POST /v1/detect HTTP/1.1\r\nHost: t\r\nContent-Length: "
        b"%d\r\nContent-Type: image/jpeg\r\n\r\n" % len(kite))), 413,
        [str(len(kite)), limit])
    got = raw(port, b"POST /v1/detect HTTP/1.1\r\nHost: t\r\n"
              b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n"
              % (MAX_BODY + 1))
    ensure(b"100 Continue" not in got, "100 Continue for a body over the "
           "limit: %r" % got[:200])
    check_error("Expect: 100-continue over the limit", parse_raw(got), 413,
                [limit])
    chunk = lambda n: b"%x\r\n%s\r\n" % (n, b"\xff" * n)
    head = (b"POST /v1/detect HTTP/1.1\r\nHost: t\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    check_error("chunked over the limit", parse_raw(raw(
        port, head, [chunk(100000)] * 4 + [chunk(1), b"0\r\n\r\n"])), 413,
        [limit])
    # A chunked body that goes on past twice the limit is cut off.
    got = raw(port, head, [chunk(100000)] * 9 + [b"0\r\n\r\n"])
    ensure(got == b"", "a body past twice the limit was answered: %r"
           % got[:200])

    # Routing.
    check_error("GET /v1/detect", request(port, "GET", "/v1/detect"), 405,
                ["GET"])
    st, h, _ = request(port, "PUT", "/v1/detect", dog, hdr)
    ensure(st == 405 and h.get("allow") == "POST",
           "PUT /v1/detect: %d, Allow %r" % (st, h.get("allow")))
    check_error("DELETE /healthz", request(port, "DELETE", "/healthz"), 405,
                ["DELETE"])
    check_error("unknown path", request(port, "GET", "/v2/nothing"), 404,
                ["/v2/nothing"])
    check_error("POST to an unknown path", request(
        port, "POST", "/detect", dog, hdr), 404, ["/detect"])
    # A header larger than the connection's memory: libmicrohttpd's own
    # answer, 431 with a short HTML reason.
    st, _, body = parse_raw(raw(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
                                b"X-Big: " + b"a" * 100000 + b"\r\n\r\n"))
    ensure(st == 431 and b"too big" in body,
           "huge header: %d %r" % (st, body[:200]))
    # Half a request line, then silence is no harm either.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /v1/det")
    s.close()

    # Still serving, with the same answer as before.
    a = check_answer("dog.jpg at the end", request(port, "POST",
                                                   "/v1/detect", dog, hdr),
                     dog, topk)
    outcomes[a["request"]] = ("ok", a)
    ensure(a["detections"] == first["detections"],
           "the answer changed after the bad requests")
    st, _, _ = request(port, "GET", "/healthz")
    ensure(st == 200, "/healthz at the end: %d" % st)
    return outcomes


# ---------------------------------------------------------------------------
# usage


def check_usage(work, prog):
    bad = [["--port", "65536"], ["--port", "-1"], ["--port", "80x"],
           ["--port"], ["--workers", "0"], ["--workers", "65"],
           ["--queue", "0"], ["--max-body", "0"], ["--max-body", "2G"],
           ["--max-body", "12Q"], ["--max-body", ""], ["--input", "100"],
           ["--topk", "33"], ["--bind", "localhost"], ["--bind", "1.2.3"],
           ["--slow", "detect:10"], ["--slow", "inference"],
           ["--slow", "inference:0"], ["--requests", "-1"],
           ["--timeout", "0"], ["--bogus", "1"], ["extra"]]
    for args in bad:
        p = tc.run([prog] + args, env=env(), cwd=work, expect_rc=2)
        ensure("usage:" in p.stderr and args[0] in p.stderr and
               p.stdout == "", "%r: no usage message naming it" % args)
    for var, val in (("DETECT_SERVER_PORT", "http"),
                     ("DETECT_SERVER_WORKERS", "0"),
                     ("DETECT_SERVER_MAX_BODY", "-5"),
                     ("DETECT_SERVER_BIND", "::zz"),
                     ("DETECT_SERVER_SLOW", "queue_pop"),
                     ("DETECT_SERVER_TOPK", "")):
        p = tc.run([prog], env=env(**{var: val}), cwd=work, expect_rc=2)
        ensure("%s='%s'" % (var, val) in p.stderr and p.stdout == "",
               "%s=%r: message %r" % (var, val, p.stderr))
    p = tc.run([prog, "--help"], env=env(), cwd=work)
    ensure("usage:" in p.stdout and "DETECT_SERVER_" in p.stdout and
           "serialize_response" in p.stdout, "--help prints no usage")
    ensure(os.listdir(work) == [], "files written: %r" % os.listdir(work))


# ---------------------------------------------------------------------------
# load


def run_wrk(wrk, port, seconds, conns=4):
    """Start wrk against /v1/detect with post.lua and dog.jpg."""
    return subprocess.Popen(
        [wrk, "-t2", "-c%d" % conns, "-d%ds" % seconds, "--timeout", "20s",
         "-s", LUA, "http://127.0.0.1:%d/v1/detect" % port, "--", DOG],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=die_with_parent)


def wrk_result(p, timeout):
    """wrk's figures (post.lua's JSON line), checked for errors."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise tc.CheckError("wrk did not finish within %d s" % timeout)
    ensure(p.returncode == 0, "wrk exited %d:\n%s%s" % (p.returncode, out,
                                                        err))
    m = re.search(r"^post\.lua: (\{.*\})$", out, re.M)
    ensure(m is not None, "post.lua printed no figures:\n%s%s" % (out, err))
    r = json.loads(m.group(1))
    ensure("Socket errors" not in out and "Non-2xx" not in out and
           not any(r["errors"].values()),
           "wrk saw errors: %r\n%s" % (r["errors"], out))
    ensure(r["requests"] > 0, "wrk completed no request:\n%s" % out)
    return r, out


def check_load(work, prog):
    need_darknet()
    wrk = sys.argv[3]
    srv = Server(prog, ["--port", "0", "--workers", "2", "--input", "128",
                        "--topk", "1"], work, env())
    try:
        p = run_wrk(wrk, srv.port, 5)
        try:
            # The http thread never waits for a model: /healthz answers
            # at once while both workers compute.
            time.sleep(2)
            t0 = time.monotonic()
            st, _, _ = request(srv.port, "GET", "/healthz", timeout=10)
            took = time.monotonic() - t0
            ensure(st == 200 and took < 0.5, "/healthz under load: %d in "
                   "%.3f s" % (st, took))
            r, out = wrk_result(p, 60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        t0 = time.monotonic()
        rc, sout = srv.stop(timeout=30)
    except BaseException:
        srv.kill()
        raise
    ensure(rc == 0, "exit status %d after SIGTERM:\n%s\n%s"
           % (rc, sout, srv.stderr()))
    m = re.search(r"(\d+) requests answered in [\d.]+ s, 2 workers.*"
                  r"by status: 200 x(\d+)\n", sout)
    ensure(m is not None and m.group(1) == m.group(2),
           "the summary reports answers other than 200:\n%s" % sout)
    # wrk counts what it read before it stopped; the server also answered
    # the requests still in flight then, and the one /healthz.
    ensure(r["requests"] + 1 <= int(m.group(1)) <= r["requests"] + 1 + 4,
           "wrk completed %d requests, the server answered %s"
           % (r["requests"], m.group(1)))
    print("wrk: %d requests in %.1f s, %.2f requests/s, latency p50 %.0f ms"
          " p99 %.0f ms; shutdown took %.2f s"
          % (r["requests"], r["seconds"], r["rps"],
             r["latency_us"]["p50"] / 1000, r["latency_us"]["p99"] / 1000,
             time.monotonic() - t0))


# ---------------------------------------------------------------------------
# prometheus


def families(text):
    """Metric family names a Prometheus text exposition declares."""
    return set(re.findall(r"^# TYPE (\S+) \S+$", text, re.M))


def referenced(expr, known):
    """The families of @known that @expr names (a _bucket, _sum or _count
    series counts for its histogram)."""
    out = set()
    for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        for fam in (name, re.sub(r"_(bucket|sum|count)$", "", name)):
            if fam in known:
                out.add(fam)
    return out


def dashboard_queries(path):
    with open(path) as f:
        d = json.load(f)
    exprs = [("panel %d" % p["id"], t["expr"]) for p in d["panels"]
             for t in p.get("targets", [])]
    for v in d["templating"]["list"]:
        if v.get("type") == "query":
            m = re.fullmatch(r"label_values\((.*), *(\w+)\)",
                             v["definition"])
            ensure(m is not None, "variable %s: %r" % (v["name"],
                                                       v["definition"]))
            exprs.append(("$" + v["name"], m.group(1)))
    return exprs


def check_prometheus(work, prog):
    need_darknet()
    wrk, prom, promtool = sys.argv[3:6]
    started = time.monotonic()
    mport = promtest.free_port()
    metrics_url = "http://127.0.0.1:%d/metrics" % mport
    srv = Server(prog, ["--port", "0", "--workers", "2", "--input", "128",
                        "--topk", "1"], work,
                 env(STAGEPROF_HTTP="127.0.0.1:%d" % mport,
                     STAGEPROF_SAMPLE_HZ="10"))
    p = None
    try:
        text = None
        deadline = time.monotonic() + 10
        while text is None:
            try:
                text = promtest.get(metrics_url, 2)
            except Exception as e:
                ensure(time.monotonic() < deadline and srv.p.poll() is None,
                       "the library's endpoint (STAGEPROF_HTTP=127.0.0.1:%d)"
                       " did not answer %s within 10 s: %s"
                       % (mport, metrics_url, e))
                time.sleep(0.2)
        p = run_wrk(wrk, srv.port, 25)
        pdir = os.path.join(work, "prometheus")
        os.mkdir(pdir)
        alerts = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
        with promtest.Prometheus(prom, pdir,
                                 {"detect_server": "127.0.0.1:%d" % mport},
                                 rule_files=[alerts], start_timeout=30) as pr:
            prometheus_checks(pr, metrics_url, promtool)
        r, _ = wrk_result(p, 60)
        rc, out = srv.stop(timeout=30)
    except promtest.PromError as e:
        raise tc.CheckError(str(e))
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        srv.kill()
    ensure(rc == 0, "exit status %d after SIGTERM:\n%s" % (rc, out))
    took = time.monotonic() - started
    ensure(took < 90, "the check took %.0f s, over its 90 s bound" % took)
    print("prometheus: %d requests under wrk (%.2f/s), checked in %.0f s"
          % (r["requests"], r["rps"], took))


def prometheus_checks(pr, metrics_url, promtool):
    # The target is up.
    def target_up():
        t = pr.api("targets")["data"]["activeTargets"]
        return [x for x in t if x["labels"]["job"] == "detect_server" and
                x["health"] == "up"]
    pr.wait_until("the server's endpoint up in Prometheus", target_up, 20)

    # The p99 of every stage, finite.
    q = ("histogram_quantile(0.99, sum by (le, stage) "
         "(rate(ai_pipeline_stage_duration_seconds_bucket[30s])))")
    last = {}

    def p99s():
        r = pr.query(q)
        ensure(r.get("status") == "success", "%s: %r" % (q, r))
        last.clear()
        last.update({x["metric"].get("stage"): float(x["value"][1])
                     for x in r["data"]["result"]})
        return all(math.isfinite(last.get(st, math.nan)) for st in STAGES)
    try:
        pr.wait_until("a finite p99 for every stage", p99s, 40)
    except promtest.PromError as e:
        raise tc.CheckError("%s; last answer %r" % (e, last))
    r = pr.query("ai_pipeline_stage_duration_seconds_count")
    cats = {}
    for x in r["data"]["result"]:
        cats.setdefault(x["metric"].get("stage"), set()).add(
            x["metric"].get("category"))
    for st, cat in STAGES.items():
        ensure(cats.get(st) == {cat}, "stage %s has categories %r, wanted "
               "%s" % (st, cats.get(st), cat))

    # The alert rules evaluate without error.
    def rules_ok():
        groups = pr.api("rules")["data"]["groups"]
        rules = [x for g in groups for x in g["rules"]]
        bad = [x for x in rules if x.get("health") == "err"]
        ensure(not bad, "rules failing: %r" % [(x["name"], x.get("lastError"))
                                               for x in bad])
        return rules and all(x.get("health") == "ok" for x in rules)
    pr.wait_until("every alert rule evaluated", rules_ok, 15)

    # The dashboard's queries, with data where the server has the metric.
    text = promtest.get(metrics_url, 5)
    exposed = families(text)
    ensure("ai_pipeline_stage_duration_seconds" in exposed,
           "the scrape declares no ai_pipeline_stage_duration_seconds")
    dash = os.path.join(ROOT, "deploy", "grafana", "stageprof.json")
    all_known = exposed | {"ai_pipeline_stage_duration_seconds",
                           "ai_pipeline_run_duration_seconds",
                           "ai_pipeline_runs_total",
                           "stageprof_events_dropped_total",
                           "stageprof_runs_evicted_total",
                           "process_cpu_seconds_total",
                           "process_resident_memory_bytes"}
    for where, expr in dashboard_queries(dash):
        qq = promtest.grafana_query(expr, "30s")
        r = pr.query(qq)
        ensure(r.get("status") == "success", "dashboard %s: %s\n  %s"
               % (where, r.get("error"), qq))
        fams = referenced(expr, all_known)
        if fams and fams <= exposed:
            ensure(r["data"]["result"], "dashboard %s: no data, though the "
                   "server exposes %s\n  %s" % (where, sorted(fams), qq))

    # promtool finds nothing to say about a scrape.
    c = subprocess.run([promtool, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=30)
    ensure(c.returncode == 0 and c.stdout == "" and c.stderr == "",
           "promtool check metrics: status %d\n%s%s"
           % (c.returncode, c.stdout, c.stderr))


# ---------------------------------------------------------------------------
# capture


def runs_total(url):
    """ai_pipeline_runs_total{run="request"} of one scrape of @url."""
    text = promtest.get(url, 5)
    m = re.search(r'^ai_pipeline_runs_total\{run="request"\} (\d+)$', text,
                  re.M)
    ensure(m is not None, "no ai_pipeline_runs_total{run=\"request\"} in "
           "the scrape:\n%s" % text[:2000])
    return int(m.group(1))


def stageprof_capture(cli, args, expect_rc, timeout=30):
    try:
        p = subprocess.run([cli, "capture"] + args, capture_output=True,
                           text=True, timeout=timeout, env=tc.clean_env())
    except subprocess.TimeoutExpired:
        raise tc.CheckError("stageprof capture %s: no exit within %d s"
                            % (" ".join(args), timeout))
    ensure(p.returncode == expect_rc, "stageprof capture %s: exit %d, "
           "wanted %d\nstdout: %s\nstderr: %s"
           % (" ".join(args), p.returncode, expect_rc, p.stdout[-2000:],
              p.stderr[-2000:]))
    return p


def check_capture_trace(path, printed):
    """The trace of a 1 s window in metrics mode: valid, non-empty, every
    event inside the window, at least one whole request inside it. Returns
    (events, whole requests)."""
    t = tc.load(path)
    tc.check_events(t)
    cap = t.doc.get("capture")
    ensure(isinstance(cap, dict) and cap.get("mode") == "window" and
           cap.get("recording") == "metrics_mode_window" and
           cap.get("empty_reason") is None, "capture object %r" % cap)
    events = [e for e in t.events if e.get("ph") != "M"]
    ensure(events and cap.get("events") == len(events) == printed,
           "%d events in the file, %r in its capture object, %d printed"
           % (len(events), cap.get("events"), printed))
    w = cap.get("window_ns")
    ensure(isinstance(w, dict) and isinstance(w.get("start"), int) and
           isinstance(w.get("end"), int), "window_ns %r" % w)
    lo, hi = w["start"], w["end"]
    ensure(0.99e9 <= hi - lo <= 1.1e9, "a window of %d ns for 1000 ms"
           % (hi - lo))
    for ev in events:
        ts = to_ns(ev["ts"], "ts of %s" % short(ev))
        end = ts + (to_ns(ev["dur"], "dur") if ev["ph"] == "X" else 0)
        # A span is in when it overlaps the window; anything else lies in it.
        ensure(ts <= hi and end >= lo, "event outside the window [%d, %d] "
               "ns: %s" % (lo, hi, short(ev)))
        if ev["ph"] != "X":
            ensure(ts >= lo, "event before the window [%d, %d] ns: %s"
                   % (lo, hi, short(ev)))
        if ev.get("name") in STAGES:
            ensure(ev["cat"] == STAGES[ev["name"]], "%s not in %s: %s"
                   % (ev["name"], STAGES[ev["name"]], short(ev)))
    begins = {e["id"]: e for e in t.by_ph["b"]}
    ends = {e["id"]: e for e in t.by_ph["e"]}
    for e in t.by_ph["b"] + t.by_ph["e"]:
        ensure(e["name"] == "request" and e["cat"] == "run",
               "a run other than request: %s" % short(e))
    stages = {}
    for ev in t.by_ph["X"]:
        r = ev.get("args", {}).get("run")
        if r is not None:
            stages.setdefault(r, []).append(ev["name"])
    whole = []
    for rid, b in begins.items():
        if rid not in ends:
            continue
        ensure(to_ns(b["ts"], "ts") <= to_ns(ends[rid]["ts"], "ts"),
               "run %s ends before it begins" % rid)
        got = sorted(stages.get(int(rid, 16), []))
        ensure(got == sorted(STAGES), "request %s, begun and ended in the "
               "window, holds %r, wanted one of each of %r"
               % (rid, got, sorted(STAGES)))
        whole.append(rid)
    ensure(whole, "no request both begun and ended in the window (%d "
           "begun, %d ended)" % (len(begins), len(ends)))
    ensure(t.count("X")["inference"] >= len(whole),
           "%d inference spans for %d whole requests"
           % (t.count("X")["inference"], len(whole)))
    return len(events), len(whole)


def check_capture(work, prog):
    need_darknet()
    wrk, cli = sys.argv[3:5]
    started = time.monotonic()
    mport = promtest.free_port()
    addr = "127.0.0.1:%d" % mport
    metrics_url = "http://%s/metrics" % addr
    # The server's own directory: a metrics-mode server writes no trace.
    sdir = os.path.join(work, "server")
    os.mkdir(sdir)
    srv = Server(prog, ["--port", "0", "--workers", "2", "--input", "128",
                        "--topk", "1"], sdir, env(STAGEPROF_HTTP=addr))
    p = None
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                promtest.get(metrics_url, 2)
                break
            except Exception as e:
                ensure(time.monotonic() < deadline and srv.p.poll() is None,
                       "the library's endpoint (STAGEPROF_HTTP=%s) did not "
                       "answer within 10 s: %s" % (addr, e))
                time.sleep(0.2)
        p = run_wrk(wrk, srv.port, 8)
        time.sleep(2)
        out = os.path.join(work, "window.json")
        c = stageprof_capture(cli, [addr, "--duration-ms", "1000", "-o", out],
                              0)
        m = re.search(r"^trace: (.*) \((\d+) events, (\d+) dropped\)$",
                      c.stdout, re.M)
        ensure(m is not None and m.group(1) == out, "no 'trace: %s (N "
               "events, D dropped)' line:\n%s" % (out, c.stdout))
        nev, nwhole = check_capture_trace(out, int(m.group(2)))

        # Back in metrics mode: the histograms still count, nothing is
        # kept (recent has nothing to give) and no trace file is written.
        before = runs_total(metrics_url)
        r = stageprof_capture(cli, [addr, "--recent", "-o",
                                    os.path.join(work, "recent.json")], 1)
        ensure("holds no events" in r.stderr and "metrics mode" in
               r.stderr and "nothing is kept" in r.stderr,
               "capture --recent in metrics mode: %r" % r.stderr)
        time.sleep(1.5)
        after = runs_total(metrics_url)
        ensure(after > before, "ai_pipeline_runs_total went from %d to %d "
               "in 1.5 s under load after the capture" % (before, after))
        r_wrk, _ = wrk_result(p, 30)
        rc, sout = srv.stop(timeout=30)
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        srv.kill()
    ensure(rc == 0, "exit status %d after SIGTERM:\n%s" % (rc, sout))
    ensure(re.search(r"by status: 200 x\d+\n", sout) is not None,
           "the summary reports answers other than 200:\n%s" % sout)
    left = [f for f in os.listdir(sdir) if not f.startswith("server.")]
    ensure(left == [], "files in the server's directory after captures in "
           "metrics mode: %r" % left)
    took = time.monotonic() - started
    ensure(took < 60, "the check took %.0f s, over its 60 s bound" % took)
    print("capture: %d events, %d whole requests in the 1 s window; wrk: %d "
          "requests, %.2f/s, no errors; checked in %.0f s"
          % (nev, nwhole, r_wrk["requests"], r_wrk["rps"], took))


def detect(port, data, what, headers=None):
    """POST @data; the request id of a 200 answer."""
    st, _, body = request(port, "POST", "/v1/detect", data, headers)
    ensure(st == 200, "%s: status %d %r" % (what, st, body[:300]))
    return json.loads(body)["request"]


def check_tail(work, prog):
    """A slow request, then many ordinary ones through a ring of 8: a
    recent capture holds exactly the last 8 requests and, from the kept
    tail, the slow one whole."""
    need_darknet()
    cli = sys.argv[3]
    dog = read(DOG)
    ring, after = 8, 120
    addr = "127.0.0.1:%d" % promtest.free_port()
    traces = os.path.join(work, "traces")
    srv = Server(prog, ["--port", "0", "--workers", "1", "--input", "64",
                        "--topk", "0", "--slow-requests"], work,
                 env(STAGEPROF_ENABLE="1", STAGEPROF_DIR=traces,
                     STAGEPROF_HTTP=addr, STAGEPROF_BUFFER_RUNS=str(ring),
                     STAGEPROF_KEEP_SLOWEST="1",
                     STAGEPROF_KEEP_WINDOW_S="3600"))
    try:
        for bad in ("0", "10001", "fast", "-5", "1e3"):
            got = request(srv.port, "POST", "/v1/detect", dog,
                          {"X-Slow-Ms": bad})
            ensure(got[0] == 400 and b"X-Slow-Ms must be" in got[2],
                   "X-Slow-Ms: %s answered %d %r" % (bad, got[0], got[2]))
        for i in range(10):
            detect(srv.port, dog, "request %d" % i)
        slow = detect(srv.port, dog, "the slow request", {"X-Slow-Ms": "1500"})
        ids = [detect(srv.port, dog, "request after the slow one")
               for _ in range(after)]
        out = os.path.join(work, "recent.json")
        c = stageprof_capture(cli, [addr, "--recent", "-o", out], 0)
        rc, sout = srv.stop(timeout=30)
    finally:
        srv.kill()
    ensure(rc == 0, "exit status %d after SIGTERM:\n%s" % (rc, sout))
    t = tc.load(out)
    tc.check_events(t)
    runs = sorted(int(e["id"], 16) for e in t.by_ph["b"])
    want = sorted(ids[-ring:] + [slow])
    ensure(runs == want, "runs in the recent capture: %r, wanted the last "
           "%d (%r) and the slow request %d" % (runs, ring, ids[-ring:],
                                                 slow))
    tail = t.doc["stageprof"].get("tail")
    ensure(isinstance(tail, dict) and tail.get("slowest") == 1 and
           tail.get("window_s") == 3600 and tail.get("appended") is True,
           "the trace's tail member: %r" % tail)
    kept = [r for r in tail["runs"] if r["run"] == slow]
    ensure(len(kept) == 1 and kept[0]["why"] == "slowest" and
           kept[0]["in_ring"] is False and kept[0]["dur_ms"] >= 1500,
           "the slow request in the tail list: %r" % tail["runs"])
    # Whole: every stage of the request, the slept inference among them.
    names = sorted(e["name"] for e in t.by_ph["X"]
                   if e.get("args", {}).get("run") == slow)
    ensure(names == sorted(n for n in STAGES if n != "classify"),
           "stages of the kept request: %r" % names)
    inf = [e for e in t.by_ph["X"] if e["name"] == "inference" and
           e["args"].get("run") == slow]
    ensure(to_ns(inf[0]["dur"], "dur") >= 1.5e9 and
           inf[0]["args"].get("slow_ms") == 1500,
           "the slow inference span: %s" % short(inf[0]))
    # The final trace file holds the slow request too.
    final = tc.load(tc.only_trace(traces))
    ensure(any(int(e["id"], 16) == slow for e in final.by_ph["b"]),
           "the slow request is not in the trace written at exit")
    print("tail: request %d (1500 ms) kept through %d later requests in a "
          "ring of %d; the recent capture holds %d events"
          % (slow, after, ring, len(t.events)))


def body(work):
    prog, mode = os.path.abspath(sys.argv[1]), sys.argv[2]
    for tool in sys.argv[3:]:
        if not shutil.which(tool) and not os.path.exists(tool):
            raise tc.Skip("%s not found (make deps)" % tool)
    {"api": check_api, "usage": check_usage, "load": check_load,
     "prometheus": check_prometheus, "capture": check_capture,
     "tail": check_tail}[mode](
        work, prog)


if __name__ == "__main__":
    tc.main(body)
