#!/usr/bin/env python3
"""check_http.py PROGRAM MODE - the /metrics endpoint of a running pipeline.

PROGRAM is it_http: four threads loop over instrumented stages while the
endpoint serves; it prints "port N" and keeps a heartbeat file with the
number of iterations done. MODE:

  hostile  malformed request lines, bad HTTP versions, a 1 MB header, a
           header flood, bodies on GET, 200 idle connections while a good
           client is served, connections beyond the cap closed at once, a
           client that never reads; then, with a 2 s idle timeout, idle and
           half-sent requests closed. Throughout, the heartbeat advances and
           the process's RSS stays bounded.
  token    STAGEPROF_HTTP_TOKEN: no header, a wrong token, a prefix of it, a
           longer one -> 401; the right one -> 200.
  capture  GET /capture while the pipeline runs, in metrics mode and in
           tracing mode: a 500 ms window and a recent capture are valid
           JSON whose event counts match X-Stageprof-Events and the
           "capture" member, gzip inflates to the same trace, a second
           capture during a held one gets 409, and the heartbeat keeps
           advancing during every capture.
  badenv   addresses that cannot be served ("junk", "99999", "-1",
           "1.2.3.4.5:80", a port another process holds): the program keeps
           running, listens nowhere, the other process keeps its port, and
           the log file says why in one line.

Every wait is bounded; the program is killed when a check fails.
"""
import json
import os
import select
import socket
import subprocess
import sys
import time

import tracecheck as tc
from tracecheck import ensure

# RSS may grow by less than this over the hostile run.
RSS_GROWTH_KB = 64 * 1024
# Time a well-behaved client may wait for /metrics while others misbehave.
GOOD_CLIENT_S = 5.0


# ---------------------------------------------------------------------------
# The program


class Pipeline:
    """it_http running with @env; kill() on any failure."""

    def __init__(self, prog, work, name, **env):
        self.work = work
        self.hb = os.path.join(work, name + ".beat")
        self.err_path = os.path.join(work, name + ".stderr")
        self.err = open(self.err_path, "w")
        self.p = subprocess.Popen([prog, self.hb, "85"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.err,
                                  env=tc.clean_env(**env))
        line = self._line(30)
        ensure(line.startswith("port "), "it_http printed %r, wanted "
               "'port N'%s" % (line, self.stderr()))
        self.port = int(line.split()[1])
        self.last_beat = self.beats()

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        buf = b""
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            ensure(left > 0, "it_http printed no line within %d s" % timeout)
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                c = os.read(self.p.stdout.fileno(), 1)
                ensure(c, "it_http closed its stdout%s" % self.stderr())
                buf += c
        return buf.decode(errors="replace").strip()

    def stderr(self):
        self.err.flush()
        with open(self.err_path, errors="replace") as f:
            text = f.read()
        return "\n--- it_http stderr\n" + text if text else ""

    def beats(self):
        for _ in range(50):
            try:
                with open(self.hb) as f:
                    text = f.read().strip()
                if text:
                    return int(text)
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        raise tc.CheckError("no heartbeat file %s" % self.hb)

    def rss_kb(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise tc.CheckError("no VmRSS for pid %d" % self.p.pid)

    def alive(self, what, within=15.0):
        """The process runs and its pipeline completed iterations since
        the last call (waiting up to @within seconds for one)."""
        deadline = time.monotonic() + within
        while True:
            ensure(self.p.poll() is None, "it_http died (status %s) after %s%s"
                   % (self.p.returncode, what, self.stderr()))
            n = self.beats()
            if n > self.last_beat:
                self.last_beat = n
                return
            ensure(time.monotonic() < deadline, "the pipeline made no "
                   "progress for %.0f s after %s (heartbeat stuck at %d)"
                   % (within, what, n))
            time.sleep(0.05)

    def listening_ports(self):
        """TCP ports the process listens on (its sockets in LISTEN)."""
        inodes = set()
        fd_dir = "/proc/%d/fd" % self.p.pid
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        ports = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            if not os.path.exists(table):
                continue
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A" and cols[9] in inodes:
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        return ports

    def finish(self):
        """Close stdin: the program stops its pipeline and the profiler
        and must exit 0 with its iteration count."""
        try:
            out, _ = self.p.communicate(timeout=30)  # closes stdin
        except subprocess.TimeoutExpired:
            self.kill()
            raise tc.CheckError("it_http did not exit within 30 s of its "
                                "stdin closing")
        ensure(self.p.returncode == 0, "it_http exited with %d%s"
               % (self.p.returncode, self.stderr()))
        text = out.decode(errors="replace")
        ensure("iterations " in text, "no final count: %r" % text)
        self.err.close()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=30)
        self.err.close()


# ---------------------------------------------------------------------------
# HTTP over plain sockets


def dial(port, timeout=10.0, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def read_all(s, timeout):
    """Everything the server sends until it closes; (data, closed): closed
    is False when @timeout passed first, "reset" for a reset."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, "reset"
        if not chunk:
            return data, True
        data += chunk


def exchange(port, raw, timeout=10.0, half_close=True):
    """Send @raw, optionally shut our side, read until the server closes.
    A server that closes while we still send is fine (big requests)."""
    s = dial(port, timeout)
    try:
        try:
            s.sendall(raw)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:  # closed while we sent: answered early
            pass
        data, closed = read_all(s, timeout)
    finally:
        s.close()
    ensure(closed, "the server neither answered nor closed within %.0f s "
           "after %r" % (timeout, raw[:80]))
    return data


def parse(data):
    """(status, headers dict lower-cased, body) of one answer."""
    head, sep, body = data.partition(b"\r\n\r\n")
    ensure(sep, "not an HTTP answer: %r" % data[:200])
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    ensure(len(parts) >= 2 and parts[0].startswith("HTTP/1.")
           and parts[1].isdigit(), "bad status line %r" % lines[0])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(parts[1]), headers, body


def get(port, path="/metrics", extra=(), method="GET", timeout=10.0):
    req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
    req += "".join("%s\r\n" % h for h in extra)
    req += "Connection: close\r\n\r\n"
    return parse(exchange(port, req.encode(), timeout, half_close=False))


def good_client(port, what, extra=()):
    """A well-behaved scrape must be answered within GOOD_CLIENT_S."""
    t0 = time.monotonic()
    status, headers, body = get(port, "/metrics", extra, timeout=10.0)
    took = time.monotonic() - t0
    ensure(status == 200, "/metrics answered %d %s (%s)" % (status, body[:200],
                                                            what))
    ensure(headers.get("content-type") ==
           "text/plain; version=0.0.4; charset=utf-8",
           "content type %r" % headers.get("content-type"))
    ensure(took < GOOD_CLIENT_S, "/metrics took %.2f s (%s)" % (took, what))
    return body.decode()


def metric(body, name):
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise tc.CheckError("no %s in /metrics" % name)


def closed_by_server(s):
    """Whether the server closed @s (without waiting)."""
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


# ---------------------------------------------------------------------------
# Modes


MALFORMED = [
    b"\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /metrics\r\n\r\n",
    b"GET /metrics HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    b"GET /metrics FOO/1.1\r\nHost: x\r\n\r\n",
    b"GET  /metrics  HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x00\x01\x02\xff\xfe\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nNoColonHere\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: "
    b"99999999999999999999999999\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
    b"Content-Length: 2\r\n\r\nab",
    b"GET /" + b"a" * 200000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /%00%ff/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /metrics?" + b"x=1&" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\xff" * 100000,
]

BAD_VERSIONS = [b"HTTP/9.9", b"HTTP/2.0", b"HTTP/1", b"HTTP/", b"HTTP/1.1.1",
                b"HTTP/0.9", b"http/1.1", b"HTTP/01.1", b"HTTP/1.10"]


def answer_is_refusal(data, what):
    """An answer to a bad request: nothing, or an error status."""
    if not data:
        return
    status, _, body = parse(data)
    ensure(status >= 400, "%r was answered %d: %r" % (what[:60], status,
                                                      body[:120]))


def hostile_requests(p, idle_s, rss):
    # All at once, each on its own connection, our side shut after it.
    # MHD answers most at once; a few (blank lines, binary) it leaves to
    # the idle timeout.
    raws = MALFORMED + [b"GET /metrics " + v + b"\r\nHost: x\r\n\r\n"
                        for v in BAD_VERSIONS]
    socks = []
    try:
        for raw in raws:
            s = dial(p.port)
            socks.append(s)
            try:
                s.sendall(raw)
                s.shutdown(socket.SHUT_WR)
            except OSError:  # closed while we sent: answered early
                pass
        deadline = time.monotonic() + idle_s + 5.0
        for raw, s in zip(raws, socks):
            data, closed = read_all(s, deadline - time.monotonic())
            ensure(closed, "the server neither answered nor closed within "
                   "%.0f s after %r" % (idle_s + 5.0, raw[:80]))
            answer_is_refusal(data, raw)
    finally:
        for s in socks:
            s.close()
    rss.append(p.rss_kb())
    p.alive("malformed requests and bad HTTP versions")

    # A 1 MB header line and a flood of 100000 small headers: MHD answers
    # once its 32 KiB per connection are full, without reading the rest.
    big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20)
    flood = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-F: y\r\n" * 100000
    for raw, what in ((big + b"\r\n\r\n", "1 MB header"),
                      (flood + b"\r\n", "header flood")):
        for _ in range(3):
            data = exchange(p.port, raw)
            if data:
                status, _, _ = parse(data)
                ensure(status in (400, 413, 431), "%s answered %d"
                       % (what, status))
            rss.append(p.rss_kb())
        p.alive(what)

    # Bodies on GET: refused from the headers, before any of it is read.
    for extra, want in (("Content-Length: 10000000", 413),
                        ("Transfer-Encoding: chunked", 400)):
        s = dial(p.port)
        s.sendall(("GET /metrics HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n"
                   % extra).encode())
        try:
            s.sendall(b"z" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data, closed = read_all(s, 10.0)
        s.close()
        ensure(closed, "a GET with %s was kept open" % extra)
        if data:
            status, headers, body = parse(data)
            ensure(status == want and body.endswith(b"\n") and
                   body.count(b"\n") == 1,
                   "a GET with %s answered %d %r" % (extra, status, body))
        rss.append(p.rss_kb())
    p.alive("bodies on GET")
    good_client(p.port, "after the malformed requests")


def connection_limits(p, cap, rss):
    idle = [dial(p.port) for _ in range(200)]
    extra = []
    try:
        time.sleep(0.2)
        good_client(p.port, "with 200 idle connections open")
        p.alive("200 idle connections")
        ensure(not any(closed_by_server(s) for s in idle),
               "an idle connection under the cap was closed early")

        # 100 more: those beyond the cap are closed at once, not queued.
        extra = [dial(p.port) for _ in range(100)]
        everyone = idle + extra
        want = len(everyone) - cap
        deadline = time.monotonic() + 5.0
        while True:
            closed = sum(closed_by_server(s) for s in everyone)
            if closed >= want or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        ensure(closed >= want, "%d connections over the cap of %d, only %d "
               "closed within 5 s" % (want, cap, closed))
        rss.append(p.rss_kb())
        p.alive("connections beyond the cap")
    finally:
        for s in idle + extra:
            s.close()
    # Slots free again once the server has seen the closes.
    deadline = time.monotonic() + 10.0
    while True:
        try:
            body = good_client(p.port, "after the idle connections closed")
            break
        except tc.CheckError:
            ensure(time.monotonic() < deadline, "no slot came free within "
                   "10 s of closing every connection")
            time.sleep(0.2)
    ensure(metric(body, "stageprof_http_connections_refused_total") >= 44,
           "refused connections not counted")


def slow_reader(p, rss):
    # Asks for /metrics many times over, pipelined, and never reads.
    s = dial(p.port, rcvbuf=4096)
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 64)
        for _ in range(3):
            time.sleep(0.3)
            good_client(p.port, "while a client does not read")
            rss.append(p.rss_kb())
        p.alive("a client that does not read")
    finally:
        s.close()


def idle_timeouts(prog, work):
    p = Pipeline(prog, work, "idle", STAGEPROF_HTTP="127.0.0.1:0",
                 STAGEPROF_HTTP_IDLE_TIMEOUT_S="2")
    try:
        quiet = dial(p.port)
        partial = dial(p.port)
        partial.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        for s, what in ((quiet, "an idle connection"),
                        (partial, "a half-sent request")):
            data, closed = read_all(s, 8.0 - (time.monotonic() - t0))
            took = time.monotonic() - t0
            s.close()
            ensure(closed, "%s still open after %.1f s (idle timeout 2 s)"
                   % (what, took))
            ensure(took >= 1.0, "%s closed after %.2f s, before its idle "
                   "timeout" % (what, took))
            ensure(not data or parse(data)[0] >= 400,
                   "%s was answered %r" % (what, data[:80]))
        p.alive("idle timeouts")
        good_client(p.port, "after the idle timeouts")
        p.finish()
    except BaseException:
        p.kill()
        raise


def mode_hostile(prog, work):
    cap, idle_s = 256, 6
    # The resource sampler runs too: sanitizer builds see it beside the
    # endpoint and the pipeline.
    p = Pipeline(prog, work, "hostile", STAGEPROF_HTTP="127.0.0.1:0",
                 STAGEPROF_SAMPLE_HZ="50",
                 STAGEPROF_HTTP_MAX_CONNECTIONS=str(cap),
                 STAGEPROF_HTTP_IDLE_TIMEOUT_S=str(idle_s),
                 STAGEPROF_LOG_FILE=os.path.join(work, "hostile.log"))
    try:
        good_client(p.port, "at start")
        p.alive("start")
        rss = [p.rss_kb()]
        hostile_requests(p, idle_s, rss)
        connection_limits(p, cap, rss)
        slow_reader(p, rss)
        body = good_client(p.port, "at the end")
        ensure(metric(body, "stageprof_sampler_samples_total") >= 10,
               "the sampler took fewer than 10 samples at 50 Hz")
        ensure(metric(body, "process_cpu_seconds_total") > 0,
               "no process CPU time in /metrics")
        p.alive("the whole run")
        rss.append(p.rss_kb())
        ensure(max(rss) - rss[0] < RSS_GROWTH_KB, "RSS grew from %d kB to %d "
               "kB" % (rss[0], max(rss)))
        print("RSS %d kB at start, at most %d kB" % (rss[0], max(rss)))
        for code in ("200", "400", "413"):
            ensure(metric(body, 'stageprof_http_requests_total{code="%s"}'
                          % code) >= 1, "no %s answers counted" % code)
        ensure(metric(body, "stageprof_http_connections") >= 1,
               "this scrape's own connection is not counted")
        p.finish()
    except BaseException:
        p.kill()
        raise
    # MHD's complaints reach the log, rate-limited, one line each.
    with open(os.path.join(work, "hostile.log")) as f:
        lines = f.read().splitlines()
    mhd = [l for l in lines if "libmicrohttpd" in l]
    print("log:\n  " + "\n  ".join(lines))
    ensure(len(mhd) <= 12, "%d libmicrohttpd lines in the log" % len(mhd))
    idle_timeouts(prog, work)


def mode_token(prog, work):
    token = "tok-3f9a7c1e5b"
    log = os.path.join(work, "token.log")
    p = Pipeline(prog, work, "token", STAGEPROF_HTTP="127.0.0.1:0",
                 STAGEPROF_HTTP_TOKEN=token, STAGEPROF_LOG_FILE=log)
    try:
        wrong = [(), ("Authorization: Bearer nope",),
                 ("Authorization: Bearer " + token[:-1],),
                 ("Authorization: Bearer " + token + "0",),
                 ("Authorization: Bearer " + token + token,),
                 ("Authorization: Bearer",), ("Authorization: " + token,),
                 ("Authorization: Basic " + token,)]
        for extra in wrong:
            for path in ("/metrics", "/healthz", "/nowhere"):
                status, headers, body = get(p.port, path, extra)
                ensure(status == 401, "%s with %r answered %d"
                       % (path, extra, status))
                ensure(headers.get("www-authenticate") == "Bearer",
                       "401 without WWW-Authenticate: Bearer: %r" % headers)
                ensure(token.encode() not in body and body.endswith(b"\n"),
                       "401 body %r" % body)
        good = ("Authorization: Bearer " + token,)
        good_client(p.port, "with the token", good)
        status, _, body = get(p.port, "/healthz", good)
        ensure(status == 200 and body == b"ok\n", "/healthz: %d %r"
               % (status, body))
        p.alive("token checks")
        p.finish()
    except BaseException:
        p.kill()
        raise
    with open(log) as f:
        ensure(token not in f.read(), "the token was written to the log")


def mode_badenv(prog, work):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(8)
    held = holder.getsockname()[1]
    cases = [("junk", 'invalid endpoint address "junk"'),
             ("99999", 'invalid endpoint address "99999"'),
             ("-1", 'invalid endpoint address "-1"'),
             ("1.2.3.4.5:80", 'invalid endpoint address "1.2.3.4.5:80"'),
             ("127.0.0.1:%d" % held, "cannot listen on 127.0.0.1:%d: "
              "Address already in use" % held)]
    try:
        for i, (value, why) in enumerate(cases):
            log = os.path.join(work, "badenv%d.log" % i)
            p = Pipeline(prog, work, "badenv%d" % i, STAGEPROF_HTTP=value,
                         STAGEPROF_LOG_FILE=log)
            try:
                ensure(p.port == 0, "STAGEPROF_HTTP=%r: serving on port %d"
                       % (value, p.port))
                p.alive("STAGEPROF_HTTP=%r" % value)
                ports = p.listening_ports()
                ensure(not ports, "STAGEPROF_HTTP=%r: listening on %s"
                       % (value, sorted(ports)))
                p.alive("STAGEPROF_HTTP=%r" % value)
                p.finish()
            except BaseException:
                p.kill()
                raise
            with open(log) as f:
                lines = [l for l in f.read().splitlines() if "http" in l]
            ensure(len(lines) == 1 and why in lines[0] and
                   lines[0].startswith("stageprof[") and
                   ": warning: " in lines[0],
                   "STAGEPROF_HTTP=%r: the log says %r, wanted one warning "
                   "with %r" % (value, lines, why))
        # The other process still has its port.
        c = dial(held)
        holder.settimeout(5)
        conn, _ = holder.accept()
        conn.close()
        c.close()
    finally:
        holder.close()


def capture_once(p, path, extra=()):
    """One /capture answer, checked: (trace, events)."""
    beat0 = p.beats()
    status, headers, body = get(p.port, path, extra, timeout=30.0)
    ensure(status == 200, "%s answered %d %r" % (path, status, body[:200]))
    ensure(headers.get("content-type") == "application/json",
           "%s content type %r" % (path, headers.get("content-type")))
    if headers.get("content-encoding") == "gzip":
        import gzip
        body = gzip.decompress(body)
    try:
        trace = json.loads(body)
    except ValueError as e:
        raise tc.CheckError("%s: not JSON (%s): %r" % (path, e, body[:200]))
    events = [e for e in trace["traceEvents"] if e.get("ph") != "M"]
    n = int(headers.get("x-stageprof-events", "-1"))
    cap = trace.get("capture", {})
    ensure(n == len(events) == cap.get("events"),
           "%s: header says %d events, trace holds %d, capture member %r"
           % (path, n, len(events), cap.get("events")))
    ensure("x-stageprof-dropped" in headers, "no X-Stageprof-Dropped")
    if n == 0:
        ensure(headers.get("x-stageprof-empty-reason") ==
               cap.get("empty_reason") and cap.get("empty_reason"),
               "%s: empty without a reason: %r" % (path, headers))
    # A window lasts long enough for several beats (every 20 ms).
    ensure("duration_ms" not in path or p.beats() > beat0,
           "%s: the heartbeat did not advance during the capture" % path)
    p.alive(path)
    return trace, events


def mode_capture(prog, work):
    for name, env in (("metrics", {}), ("tracing", {"STAGEPROF_ENABLE": "1",
                                                    "STAGEPROF_DIR": work})):
        p = Pipeline(prog, work, "capture-" + name,
                     STAGEPROF_HTTP="127.0.0.1:0", **env)
        try:
            time.sleep(0.3)
            trace, events = capture_once(p, "/capture?duration_ms=500")
            ensure(events, "%s: a 500 ms window of a busy pipeline is "
                   "empty" % name)
            w = trace["capture"]["window_ns"]
            ensure(400e6 <= w["end"] - w["start"] < 5e9,
                   "%s: window %r" % (name, w))
            for e in events:
                if e["ph"] == "X":
                    ok = e["ts"] * 1e3 <= w["end"] + 1e3 and \
                        (e["ts"] + e["dur"]) * 1e3 >= w["start"] - 1e3
                elif e["ph"] in ("B", "E"):
                    ok = True
                else:
                    ok = w["start"] - 1e3 <= e["ts"] * 1e3 <= w["end"] + 1e3
                ensure(ok, "%s: event outside the window %r: %r"
                       % (name, w, e))
            trace, events = capture_once(p, "/capture?mode=recent")
            if name == "tracing":
                ensure(events, "recent capture of a tracing pipeline empty")
            else:
                ensure(not events and "metrics mode" in
                       trace["capture"]["empty_reason"],
                       "recent in metrics mode: %r" % trace["capture"])
            capture_once(p, "/capture?duration_ms=200&categories=compute",
                         ("Accept-Encoding: gzip",))
            # One at a time.
            held = dial(p.port)
            held.sendall(b"GET /capture?delay_ms=3000&duration_ms=100 "
                         b"HTTP/1.1\r\nHost: x\r\nConnection: close"
                         b"\r\n\r\n")
            time.sleep(0.5)  # the held request reaches the server first
            status, _, body = get(p.port, "/capture?mode=recent")
            ensure(status == 409, "second capture answered %d %r"
                   % (status, body))
            data, closed = read_all(held, 20.0)
            held.close()
            ensure(closed and parse(data)[0] == 200, "held capture: %r"
                   % data[:200])
            p.alive("captures")
            p.finish()
        except BaseException:
            p.kill()
            raise


def body(work):
    prog, mode = sys.argv[1], sys.argv[2]
    {"hostile": mode_hostile, "token": mode_token,
     "badenv": mode_badenv, "capture": mode_capture}[mode](prog, work)


if __name__ == "__main__":
    tc.main(body)
