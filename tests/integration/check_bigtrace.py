#!/usr/bin/env python3
"""check_bigtrace.py PROGRAM - a multi-MiB trace survives the writer intact.

See it_bigtrace.c. Every name and argument must come back byte for byte
(or cut to exactly 1024 bytes where the contract says so), whatever point
of the event the writer's output pieces were flushed at.
"""
import sys

import tracecheck as tc
from tracecheck import ensure, short


def pattern(n, seed):
    """The string it_bigtrace.c's pattern() makes."""
    return "%06d-" % seed + "".join(chr(ord("a") + (i * 7 + seed) % 26)
                                    for i in range(7, n))


def body(work):
    prog = sys.argv[1]
    # The ring off: this checks that everything recorded is written.
    res, _ = tc.run_json([prog, work],
                         env=tc.clean_env(STAGEPROF_BUFFER_RUNS="0"))
    path = tc.only_trace(work)
    t = tc.load(path)
    tc.check_events(t)
    tc.check_summary(t, complete=True)
    ensure(t.summary["strings_truncated"] == res["trunc"] + 1,
           "strings_truncated %d, wanted %d" %
           (t.summary["strings_truncated"], res["trunc"] + 1))

    named = [e for e in t.by_ph["X"] if e["cat"] == "compute"]
    ensure(len(named) == res["named"], "%d named spans, wanted %d"
           % (len(named), res["named"]))
    for ev in named:
        i = ev["args"].get("i")
        ensure(isinstance(i, int) and ev["args"] == {"i": i},
               "bad args: %s" % short(ev))
        want = pattern(1000, i)
        ensure(ev["name"] == want, "name of span %d damaged: %s"
               % (i, short(ev)))
    ensure(sorted(e["args"]["i"] for e in named) ==
           list(range(res["named"])), "named spans missing or repeated")

    in_run = t.named("X", "in_run")
    ensure(sorted(e["args"]["i"] for e in in_run) ==
           list(range(res["run_spans"])) and
           all(e["args"]["run"] == 7 for e in in_run),
           "in_run spans damaged")

    fat = t.named("X", "fat")
    ensure(len(fat) == res["fat"], "%d fat spans" % len(fat))
    seen = set()
    for ev in fat:
        args = ev["args"]
        ensure(sorted(args) == ["k%d" % k for k in range(8)],
               "fat span keys %r" % sorted(args))
        seed = int(args["k0"][:6])
        for k in range(8):
            ensure(args["k%d" % k] == pattern(1000, seed + k),
                   "fat span argument k%d damaged" % k)
        seen.add(seed // 8)
    ensure(seen == set(range(res["fat"])), "fat spans repeated")

    trunc = t.named("X", "trunc")
    ensure(sorted(e["args"]["long"] for e in trunc) ==
           sorted(pattern(1500, i)[:1024] for i in range(res["trunc"])),
           "long string arguments not cut to exactly 1024 bytes")
    longname = [e for e in t.by_ph["X"] if e["cat"] == "io" and
                e["name"] != "trunc"]
    ensure(len(longname) == 1 and
           longname[0]["name"] == pattern(1500, 99)[:1024],
           "1500-byte name not cut to exactly 1024 bytes")

    ticks = t.named("i", "tick")
    ensure(sorted(e["args"]["i"] for e in ticks) ==
           list(range(res["ticks"])) and
           all(e["args"]["s"] == 'x"y' for e in ticks),
           "instant arguments damaged")
    tc.check_nesting(t)
    ensure(len(t.by_ph["X"]) == res["named"] + res["run_spans"] +
           res["fat"] + res["trunc"] + 1, "unexpected spans")


if __name__ == "__main__":
    tc.main(body)
