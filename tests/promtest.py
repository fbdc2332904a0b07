"""promtest.py - a real Prometheus for the test suite, shared by
tests/deploy/check_dashboard.py and tests/integration/check_server.py.

Prometheus (Debian package prometheus) is started on a free loopback port
with its own temporary storage, a scrape interval of 1 s and the given
scrape jobs and rule files; it is queried through its HTTP API and stopped
(killed if it does not stop) when the `with` block ends. Every wait is
bounded; a failure raises PromError naming the log file.
"""

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

# The variables Grafana fills in itself.
GRAFANA_VARS = {"__rate_interval", "__interval", "__range"}


class PromError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def grafana_query(expr, rate_interval="1m"):
    """A dashboard expression made runnable: $__rate_interval becomes
    @rate_interval, every other variable matches anything."""
    q = expr.replace("$__rate_interval", rate_interval)
    return re.sub(r"\$\{?(\w+)\}?", ".*", q)


class Prometheus:
    """Prometheus at @binary, its files in @work (which must exist).

    @jobs maps a job name to the host:port it scrapes, or to None for
    Prometheus itself. @rule_files are loaded as rule_files, evaluated
    every second.
    """

    def __init__(self, binary, work, jobs, rule_files=(), start_timeout=90):
        self.binary = binary
        self.work = work
        self.jobs = jobs
        self.rule_files = list(rule_files)
        self.start_timeout = start_timeout
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(work, "prometheus.log")
        self.proc = None
        self.log = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def _config(self):
        lines = ["global:", "  scrape_interval: 1s",
                 "  evaluation_interval: 1s"]
        if self.rule_files:
            lines.append("rule_files:")
            lines += ["  - '%s'" % os.path.abspath(f)
                      for f in self.rule_files]
        lines.append("scrape_configs:")
        for job, target in self.jobs.items():
            if target is None:
                target = "127.0.0.1:%d" % self.port
            lines += ["  - job_name: '%s'" % job, "    static_configs:",
                      "      - targets: ['%s']" % target]
        return "\n".join(lines) + "\n"

    def start(self):
        cfg = os.path.join(self.work, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(self._config())
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [self.binary, "--config.file=" + cfg,
             "--storage.tsdb.path=" + os.path.join(self.work, "db"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + self.start_timeout
        while True:
            try:
                get(self.base + "/-/ready", 1)
                return
            except Exception:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise PromError("Prometheus did not start; see %s"
                                    % self.log_path)
                time.sleep(0.2)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.log is not None:
            self.log.close()
            self.log = None

    def api(self, path, **params):
        """GET /api/v1/@path; the decoded answer, errors included."""
        url = self.base + "/api/v1/" + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            return json.loads(get(url))
        except urllib.error.HTTPError as err:
            return json.loads(err.read().decode())

    def query(self, expr):
        return self.api("query", query=expr)

    def wait_until(self, what, check, timeout):
        """Call @check() until it returns a true value (returned), at most
        @timeout seconds."""
        deadline = time.time() + timeout
        while True:
            got = check()
            if got:
                return got
            if time.time() > deadline or self.proc.poll() is not None:
                raise PromError("%s: not within %d s; see %s"
                                % (what, timeout, self.log_path))
            time.sleep(0.5)
