#!/usr/bin/env python3
"""check_dashboard.py PROMETHEUS DASHBOARD - the Grafana dashboard in
deploy/grafana, checked without Grafana (Debian has none).

  structure  a dashboard object (title, uid, schemaVersion, panels); every
             panel with a unique id, a known type, a place on the 24-column
             grid that overlaps no other panel, the ${datasource} variable,
             and targets with unique refIds and a PromQL expression; every
             $variable an expression uses is defined in templating or is
             one of Grafana's own ($__rate_interval, ...)
  queries    a real Prometheus (PROMETHEUS, started here on 127.0.0.1 with
             its own temporary storage, scraping itself) runs every
             expression and every variable's label_values() selector, with
             the variables set to match anything: each must come back with
             status "success". Prometheus's own metrics answer the process
             panels.

Exit 0 pass, 1 fail, 77 when PROMETHEUS is missing.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

PANEL_TYPES = {"timeseries", "heatmap", "stat", "gauge", "table",
               "bargauge", "text", "row"}
GRAFANA_VARS = {"__rate_interval", "__interval", "__range"}


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check_structure(d):
    for k in ("title", "uid", "panels", "templating"):
        if k not in d:
            fail("no %r in the dashboard" % k)
    if not isinstance(d.get("schemaVersion"), int):
        fail("schemaVersion is not a number")
    names = {v["name"] for v in d["templating"]["list"]}
    if "datasource" not in names:
        fail("no datasource variable")
    ids, cells = set(), {}
    exprs = []
    for p in d["panels"]:
        pid = p.get("id")
        if not isinstance(pid, int) or pid in ids:
            fail("panel id %r missing or repeated" % pid)
        ids.add(pid)
        if p.get("type") not in PANEL_TYPES:
            fail("panel %d: unknown type %r" % (pid, p.get("type")))
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in "xywh") or \
                g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24:
            fail("panel %d: bad gridPos %r" % (pid, g))
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    fail("panels %d and %d overlap" % (cells[(x, y)], pid))
                cells[(x, y)] = pid
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail("panel %d does not use ${datasource}" % pid)
        refs = set()
        for t in p.get("targets", []):
            if t.get("refId") in refs or not t.get("expr"):
                fail("panel %d: target %r" % (pid, t))
            refs.add(t["refId"])
            exprs.append((pid, t["expr"]))
        if not refs:
            fail("panel %d has no targets" % pid)
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.*), *(\w+)\)",
                             v["definition"])
            if not m:
                fail("variable %s: %r" % (v["name"], v["definition"]))
            exprs.append(("$" + v["name"], m.group(1)))
    for where, e in exprs:
        for var in re.findall(r"\$\{?(\w+)", e):
            if var not in names and var not in GRAFANA_VARS:
                fail("%s: $%s is not defined" % (where, var))
    return exprs


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def check_queries(prom, exprs):
    work = tempfile.mkdtemp(prefix="stageprof-prom-")
    port = free_port()
    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n"
                "  - job_name: prometheus\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % port)
    log = open(os.path.join(work, "log"), "w")
    p = subprocess.Popen([prom, "--config.file=" + cfg,
                          "--storage.tsdb.path=" + os.path.join(work, "db"),
                          "--web.listen-address=127.0.0.1:%d" % port],
                         stdout=log, stderr=subprocess.STDOUT)
    base = "http://127.0.0.1:%d" % port
    try:
        deadline = time.time() + 90
        while True:
            try:
                get(base + "/-/ready", 1)
                break
            except Exception:
                if p.poll() is not None or time.time() > deadline:
                    fail("Prometheus did not start; see %s" % work)
                time.sleep(0.2)
        # Scrapes of itself, so that rate() has samples to work on.
        q = base + "/api/v1/query?" + urllib.parse.urlencode(
            {"query": "count_over_time(up[1m])"})
        while True:
            r = json.loads(get(q))
            if r["data"]["result"] and \
                    float(r["data"]["result"][0]["value"][1]) >= 3:
                break
            if time.time() > deadline:
                fail("Prometheus did not scrape itself; see %s" % work)
            time.sleep(0.5)
        answered = 0
        for where, e in exprs:
            q = e.replace("$__rate_interval", "1m")
            q = re.sub(r"\$\{?(\w+)\}?", ".*", q)
            url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
            try:
                r = json.loads(get(url))
            except urllib.error.HTTPError as err:
                r = json.loads(err.read().decode())
            if r.get("status") != "success":
                fail("%s: %s\n  %s" % (where, r.get("error"), q))
            answered += bool(r["data"]["result"])
        print("%d expressions run, %d with data (Prometheus's own metrics)"
              % (len(exprs), answered))
        if answered == 0:
            fail("no expression returned data: the process panels should")
    finally:
        p.terminate()
        p.wait(timeout=10)
        log.close()
    shutil.rmtree(work, ignore_errors=True)


def main():
    prom, path = sys.argv[1], sys.argv[2]
    if not shutil.which(prom) and not os.path.exists(prom):
        print("SKIP: %s not found (make deps installs prometheus)" % prom)
        sys.exit(77)
    with open(path) as f:
        d = json.load(f)
    exprs = check_structure(d)
    check_queries(prom, exprs)
    print("PASS")


if __name__ == "__main__":
    main()
