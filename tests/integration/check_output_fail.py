#!/usr/bin/env python3
"""check_output_fail.py PROGRAM MODE - failed trace writes, then recovery.

See it_output_fail.c for the modes. The program must survive the failure
(no SIGXFSZ, no crash), get the promised error twice, leave no partial or
temporary file, and once the cause is gone write one complete trace that
holds every event recorded before the failures.
"""
import os
import sys

import tracecheck as tc
from tracecheck import ensure

WANT = {"enotdir": "ENOTDIR", "fsize": "EFBIG", "nofile": "EIO"}


def body(work):
    prog, mode = sys.argv[1], sys.argv[2]
    # The ring off: this checks that everything recorded is written.
    res, _ = tc.run_json([prog, mode, work], timeout=60,
                         env=tc.clean_env(STAGEPROF_BUFFER_RUNS="0"))
    ensure(res["first"] == WANT[mode] and res["second"] == WANT[mode],
           "stop/flush returned %s/%s, wanted %s" % (res["first"],
                                                     res["second"],
                                                     WANT[mode]))
    ensure(res["left_after_failure"] == 0, "%d files left behind by the "
           "failed writes" % res["left_after_failure"])
    path = tc.only_trace(res["dir"])
    ensure(res["last_path"] == path, "last path %r" % res["last_path"])
    st = res["stats"]
    ensure(st["write_errors"] == 2 and st["traces_written"] == 1,
           "stats count %d failed and %d written traces, wanted 2 and 1"
           % (st["write_errors"], st["traces_written"]))

    t = tc.load(path)
    tc.check_events(t)
    tc.check_summary(t, complete=True)
    ensure(st["events_written"] == len(t.events), "stats.events_written %d, "
           "trace holds %d" % (st["events_written"], len(t.events)))
    ensure(os.path.getsize(path) > 1536 << 10, "trace too small (%d bytes) "
           "to cross the file size limit" % os.path.getsize(path))
    ts, ms = res["thread_spans"], res["main_spans"]
    tc.check_counts(t, {"work": 2 * ts + ms, "step": 4 * (2 * ts + ms)})
    tc.check_nesting(t, {"work": None, "step": "work"})
    names = tc.check_thread_names(t, ["fail-main", "early", "late"])
    want_n = {"fail-main": ms, "early": ts, "late": ts}
    per = {}
    for ev in t.named("X", "work"):
        who = names[ev["tid"]]
        ensure(ev["args"]["who"] == who, "span of %s says %r" %
               (who, ev["args"]))
        per.setdefault(who, []).append(ev["args"]["i"])
    for who, its in per.items():
        ensure(sorted(its) == list(range(want_n[who])),
               "%s: %d of %d spans kept" % (who, len(its), want_n[who]))
    ensure(all(len(e["args"]["pad"]) == 64 for e in t.named("X", "step")),
           "string arguments damaged")


if __name__ == "__main__":
    tc.main(body)
