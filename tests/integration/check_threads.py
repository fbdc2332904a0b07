#!/usr/bin/env python3
"""check_threads.py PROGRAM - run it_threads and check its trace.

Twelve threads record nested spans with typed arguments, runs that begin on
one thread and end on another, flows between threads, counters and
instants; three threads exit before the others start. The trace must hold
exactly what the program recorded, with every event in its right run.
"""
import sys

import tracecheck as tc
from tracecheck import ensure, short, to_ns


def body(work):
    prog = sys.argv[1]
    argv = [prog, work]
    before = tc.now_pair()
    # The ring off: this checks that everything recorded is written.
    res, _ = tc.run_json(argv, env=tc.clean_env(STAGEPROF_BUFFER_RUNS="0"))
    after = tc.now_pair()
    path = tc.only_trace(work)
    ensure(res["last_path"] == path, "stageprof_get_last_path said %r, the "
           "file is %r" % (res["last_path"], path))
    t = tc.load(path)

    nearly, nprod, ncons, jobs = (res["nearly"], res["nprod"], res["ncons"],
                                  res["jobs"])
    job_ids = {1000 * (p + 1) + j + 1 for p in range(nprod)
               for j in range(jobs)}
    early_ids = {900000 + k for k in range(nearly)}
    njobs = len(job_ids)

    tc.check_events(t)
    tc.check_summary(t, complete=True)
    tc.check_metadata(t, argv, before, after, version=res["version"])
    cfg = t.meta["config"]
    ensure(cfg["enable"] == 1 and cfg["dir"] == work and
           cfg["sources"]["enable"] == "api" and
           cfg["sources"]["dir"] == "api", "config %r" % cfg)
    s = t.summary
    ensure(s["events_dropped"] == 0 and s["open_spans"] == 0 and
           s["open_runs"] == 0 and not any(s["misuse"].values()),
           "summary reports trouble: %r" % s)

    # Library statistics agree with the file.
    st = res["stats"]
    ensure(st["events_written"] == len(t.events) and
           st["traces_written"] == 1 and st["events_dropped"] == 0 and
           st["misuse"] == 0 and st["write_errors"] == 0 and
           st["threads"] == 1 + nearly + nprod + ncons,
           "stats %r disagree with the trace (%d events)"
           % (st, len(t.events)))

    # Threads: all named, early ones too, sort indexes where set.
    names = tc.check_thread_names(
        t, ["it-main"] + ["early-%d" % k for k in range(nearly)] +
        ["prod-%d" % p for p in range(nprod)] +
        ["cons-%d" % c for c in range(ncons)])
    proc = [e for e in t.by_ph["M"] if e["name"] == "process_name"][0]
    ensure(proc["args"]["name"] == "it_threads", "process name %r"
           % proc["args"])
    sort = {names.get(e["tid"]): e["args"]["sort_index"]
            for e in t.by_ph["M"] if e["name"] == "thread_sort_index"}
    want_sort = {"early-%d" % k: 10 + k for k in range(nearly)}
    want_sort.update({"cons-%d" % c: 20 + c for c in range(ncons)})
    ensure(sort == want_sort, "sort indexes %r, wanted %r"
           % (sort, want_sort))
    tid_of = {}
    for tid, name in names.items():
        tid_of[name] = tid

    # Exact span counts per name, and who nests in whom.
    want = {"setup": 1, "manual": 1, "early_outer": nearly,
            "early_mid": nearly, "early_inner": nearly, "early_job": nearly,
            "produce": njobs, "encode": njobs, "push": njobs,
            "pop": njobs + ncons, "consume": njobs, "infer": njobs,
            "kernel": njobs, "finish": njobs}
    for p in range(nprod):
        want["dyn_p%d" % p] = jobs
    tc.check_counts(t, want)
    ensure(sum(t.count("X").values()) == sum(want.values()),
           "unexpected span names: %r" % t.count("X"))
    parents = {"setup": None, "manual": "setup", "early_outer": None,
               "early_mid": "early_outer", "early_inner": "early_mid",
               "early_job": None, "produce": None, "encode": "produce",
               "push": "produce", "pop": None, "consume": None,
               "infer": "consume", "kernel": "infer", "finish": None}
    for p in range(nprod):
        parents["dyn_p%d" % p] = "consume"
    tc.check_nesting(t, parents)

    # Where each span ran.
    for ev in t.by_ph["X"]:
        n, who = ev["name"], names[ev["tid"]]
        role = {"produce": "prod-", "encode": "prod-", "push": "prod-",
                "pop": "cons-", "consume": "cons-", "finish": "cons-",
                "early_outer": "early-", "setup": "it-main"}.get(n)
        if role:
            ensure(who.startswith(role), "%s recorded on %s" % (n, who))
    manual = t.named("X", "manual")[0]
    ensure(to_ns(manual["dur"], "dur") == 12345 and manual["cat"] == "io",
           "explicit-time span should last exactly 12.345 us: %s"
           % short(manual))

    # Every span and instant carries the run the program put it in.
    n = tc.check_expect_run(t)
    ensure(n == sum(want.values()) - 1 + njobs,
           "%d events carry expect_run, wanted every span but 'manual' and "
           "every instant" % n)

    # Arguments arrive with their types and exact values.
    for ev in t.named("X", "early_outer"):
        ensure(ev["args"].get("k") in range(nearly), short(ev))
    ks = sorted(e["args"]["k"] for e in t.named("X", "early_outer"))
    ensure(ks == list(range(nearly)), "early_outer k values %r" % ks)
    thirds = sorted(float(e["args"]["third"])
                    for e in t.named("X", "early_mid"))
    ensure(thirds == sorted(1.0 / 3.0 + k for k in range(nearly)),
           "double arguments changed: %r" % thirds)
    for ev in t.named("X", "early_inner"):
        ensure(ev["args"].get("text") ==
               "quote\" back\\ nl\n tab\t \u00e9 end",
               "string argument changed: %r" % ev["args"].get("text"))
    for ev in t.named("X", "produce"):
        ensure(ev["args"]["producer"] == ev["args"]["run"] // 1000 - 1,
               "producer argument: %s" % short(ev))
        ensure(names[ev["tid"]] == "prod-%d" % ev["args"]["producer"],
               "produce on the wrong thread: %s" % short(ev))

    # Runs: every span in its run, each run begun and ended once.
    pairs = tc.check_async(t)
    got = {(c, int(i, 16), nm) for (c, i, nm) in pairs}
    want_runs = {("run", i, "job") for i in job_ids}
    want_runs |= {("run", i, "early_run") for i in early_ids}
    ensure(got == want_runs, "runs in the trace differ: missing %s, extra %s"
           % (sorted(want_runs - got)[:5], sorted(got - want_runs)[:5]))
    spans_of_run = {}
    for ev in t.by_ph["X"]:
        r = ev.get("args", {}).get("run")
        if r is not None:
            spans_of_run.setdefault(r, []).append(ev)
    for (cat, hid, name), (b, e) in pairs.items():
        rid = int(hid, 16)
        ensure(b["args"].get("run") == rid and e["args"].get("run") == rid,
               "run events must carry their own id: %s" % short(b))
        bw, ew = names[b["tid"]], names[e["tid"]]
        if name == "job":
            ensure(bw == "prod-%d" % (rid // 1000 - 1) and
                   ew.startswith("cons-"),
                   "job %d begun on %s, ended on %s" % (rid, bw, ew))
        else:
            ensure(bw == ew and bw.startswith("early-"),
                   "early run %d on %s/%s" % (rid, bw, ew))
        lo, hi = to_ns(b["ts"], "ts"), to_ns(e["ts"], "ts")
        # A span of the run starts inside the run's interval; on the
        # thread that ends the run it also ends inside (elsewhere it may
        # still be closing when the run ends).
        for ev in spans_of_run.get(rid, []):
            s0 = to_ns(ev["ts"], "ts")
            s1 = s0 + to_ns(ev["dur"], "dur")
            ensure(lo <= s0 <= hi and (ev["tid"] != e["tid"] or s1 <= hi),
                   "span outside its run's interval [%d, %d]: %s"
                   % (lo, hi, short(ev)))
        if name == "job":
            ensure(len(spans_of_run.get(rid, [])) == 8,
                   "job %d: %d spans carry it, wanted 8"
                   % (rid, len(spans_of_run.get(rid, []))))

    # Flows: one per job, from a producer's push to a consumer's pop.
    flows = tc.check_flows(t, inside=("push", "pop"))
    ensure({int(i, 16) for i in flows} == job_ids,
           "flow ids differ from the job ids")
    for hid, (s_ev, f_ev) in flows.items():
        ensure(s_ev["name"] == "handoff" and s_ev["cat"] == "flow",
               short(s_ev))
        ensure(names[s_ev["tid"]].startswith("prod-") and
               names[f_ev["tid"]].startswith("cons-"),
               "flow %s goes %s -> %s" % (hid, names[s_ev["tid"]],
                                          names[f_ev["tid"]]))
        rid = int(hid, 16)
        ensure(s_ev["args"].get("run") == rid and
               f_ev["args"].get("run") == rid,
               "flow events carry the job's run: %s %s"
               % (short(s_ev), short(f_ev)))

    # Instants: inside "consume", carrying their run.
    inst = t.named("i", "checkpoint")
    ensure(len(inst) == njobs, "%d instants, wanted %d" % (len(inst), njobs))
    for ev in inst:
        sl = t.enclosing(ev["tid"], to_ns(ev["ts"], "ts"))
        ensure(sl is not None and sl.name == "consume",
               "instant not inside consume: %s" % short(ev))

    # Counters: queue depth in range, one "consumed" value per job.
    depth = t.named("C", "queue_depth")
    ensure(len(depth) == 2 * njobs, "%d queue_depth samples, wanted %d"
           % (len(depth), 2 * njobs))
    ensure(all(isinstance(e["args"]["value"], int) and
               0 <= e["args"]["value"] <= res["qcap"] for e in depth),
           "queue_depth out of range")
    consumed = sorted(e["args"]["value"] for e in t.named("C", "consumed"))
    ensure(consumed == sorted(tc.decimal.Decimal(i) + tc.decimal.Decimal(
        "0.5") for i in job_ids), "consumed counter values differ")
    prog_vals = sorted(e["args"]["value"]
                       for e in t.named("C", "early_progress"))
    ensure(prog_vals == list(range(1, nearly + 1)), "early_progress %r"
           % prog_vals)
    ensure(all("run" not in e["args"] for e in t.by_ph["C"]),
           "a counter carries a run (it would become a series)")
    ensure(len(t.by_ph["C"]) == 3 * njobs + nearly, "unexpected counters")


if __name__ == "__main__":
    tc.main(body)
