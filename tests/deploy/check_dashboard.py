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
import sys
import tempfile

# promtest.py (tests/) starts the Prometheus; no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
import promtest  # noqa: E402
from promtest import GRAFANA_VARS  # noqa: E402

PANEL_TYPES = {"timeseries", "heatmap", "stat", "gauge", "table",
               "bargauge", "text", "row"}


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


def check_queries(prom, exprs):
    work = tempfile.mkdtemp(prefix="stageprof-prom-")
    try:
        with promtest.Prometheus(prom, work, {"prometheus": None}) as p:
            # Scrapes of itself, so that rate() has samples to work on.
            def scraped():
                r = p.query("count_over_time(up[1m])")
                return r["data"]["result"] and \
                    float(r["data"]["result"][0]["value"][1]) >= 3
            p.wait_until("Prometheus scraping itself", scraped, 90)
            answered = 0
            for where, e in exprs:
                q = promtest.grafana_query(e, "1m")
                r = p.query(q)
                if r.get("status") != "success":
                    fail("%s: %s\n  %s" % (where, r.get("error"), q))
                answered += bool(r["data"]["result"])
    except promtest.PromError as e:
        fail("%s (files in %s)" % (e, work))
    print("%d expressions run, %d with data (Prometheus's own metrics)"
          % (len(exprs), answered))
    if answered == 0:
        fail("no expression returned data: the process panels should")
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
