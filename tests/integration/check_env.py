#!/usr/bin/env python3
"""check_env.py PROGRAM CASE - tracing switched on by the environment only.

it_env never calls stageprof_start(). CASE is one of:

  enable     STAGEPROF_ENABLE=1 and STAGEPROF_DIR: one complete trace in
             the directory at exit, holding everything recorded
  alias      ENABLE_WORKFLOWS_PROFILING=True (the Roboflow name): the same
  default    STAGEPROF_ENABLE=1, no STAGEPROF_DIR: the trace goes to
             ./inference_profiling under the working directory
  unset      no STAGEPROF_ENABLE: nothing written anywhere
  off        STAGEPROF_ENABLE=0: nothing written, nothing logged as wrong
  garbage    STAGEPROF_ENABLE=garbage with STAGEPROF_LOG_FILE: nothing
             written, and the log file says which setting was bad and why
  idle       STAGEPROF_ENABLE=1, and the program records nothing: a trace
             is still written at exit, complete, with no event but the
             metadata, so "tracing was on and nothing ran" is visible
"""
import os
import sys

import tracecheck as tc
from tracecheck import ensure


def check_trace(path, res, argv, before, after, src_enable):
    t = tc.load(path)
    tc.check_events(t)
    tc.check_summary(t, complete=True)
    tc.check_metadata(t, argv, before, after)
    cfg = t.meta["config"]
    ensure(cfg["enable"] == 1 and cfg["sources"]["enable"] == src_enable,
           "enable should come from %s: %r" % (src_enable, cfg))
    tc.check_counts(t, {"env_thread_work": res["thread_spans"],
                        "env_main_work": res["main_spans"],
                        "env_in_run": 1})
    tc.check_nesting(t)
    ensure(tc.check_expect_run(t) == res["main_spans"] + 1,
           "expect_run arguments missing")
    pairs = tc.check_async(t)
    ensure(list(pairs) == [("run", "0x2a", "env_run")],
           "runs %r" % list(pairs))
    tc.check_thread_names(t, ["env-main", "env-worker"])
    vals = [e["args"]["value"] for e in t.named("C", "env_counter")]
    ensure(vals == list(range(res["main_spans"])), "counter values %r" % vals)
    ensure(t.summary["events_dropped"] == 0 and
           not any(t.summary["misuse"].values()), "summary %r" % t.summary)


def body(work):
    prog, case = sys.argv[1], sys.argv[2]
    cwd = os.path.join(work, "cwd")
    out = os.path.join(work, "traces")
    log = os.path.join(work, "stageprof.log")
    os.mkdir(cwd)
    default_dir = os.path.join(cwd, "inference_profiling")
    env = {
        "enable": dict(STAGEPROF_ENABLE="1", STAGEPROF_DIR=out),
        "alias": dict(ENABLE_WORKFLOWS_PROFILING="True", STAGEPROF_DIR=out),
        "default": dict(STAGEPROF_ENABLE="1"),
        "unset": dict(STAGEPROF_DIR=out, STAGEPROF_LOG_FILE=log),
        "off": dict(STAGEPROF_ENABLE="0", STAGEPROF_DIR=out,
                    STAGEPROF_LOG_FILE=log),
        "garbage": dict(STAGEPROF_ENABLE="garbage", STAGEPROF_DIR=out,
                        STAGEPROF_LOG_FILE=log),
        "idle": dict(STAGEPROF_ENABLE="1", STAGEPROF_DIR=out),
    }[case]
    argv = [os.path.abspath(prog)] + (["idle"] if case == "idle" else [])
    before = tc.now_pair()
    res, p = tc.run_json(argv, env=tc.clean_env(**env), cwd=cwd)
    after = tc.now_pair()

    if case == "idle":
        ensure(res["tracing"] == 0, "tracing started without an event")
        t = tc.load(tc.only_trace(out))
        tc.check_events(t)
        tc.check_summary(t, complete=True)
        ensure(t.summary["events_written"] == len(t.events),
               "events_written %r" % t.summary["events_written"])
        ensure(all(e["ph"] == "M" for e in t.events),
               "events in an idle trace: %r" % t.events)
        ensure(t.meta["config"]["enable"] == 1, "config %r" % t.meta)
        return

    if case in ("enable", "alias", "default"):
        ensure(res["tracing"] == 1, "tracing was not on: %r" % res)
        where = default_dir if case == "default" else out
        check_trace(tc.only_trace(where), res, argv, before, after, "env")
        others = sorted(os.listdir(cwd))
        ensure(others == (["inference_profiling"] if case == "default"
                          else []),
               "unexpected files in the working directory: %r" % others)
        return

    ensure(res["tracing"] == 0, "tracing was on: %r" % res)
    ensure(not os.path.exists(out), "a trace directory was created: %r"
           % tc.trace_files(out))
    ensure(os.listdir(cwd) == [], "files written in the working directory: "
           "%r" % os.listdir(cwd))
    ensure(p.stderr == "", "the library printed: %r" % p.stderr)
    if case == "garbage":
        ensure(os.path.exists(log), "no log file: the bad value went "
               "unreported")
        text = open(log, encoding="utf-8", errors="replace").read()
        ensure("STAGEPROF_ENABLE" in text and "garbage" in text,
               "the log does not say what was wrong: %r" % text)
        lines = [l for l in text.splitlines() if "STAGEPROF_ENABLE" in l]
        ensure(len(lines) == 1, "reported %d times, wanted once: %r"
               % (len(lines), text))
    elif os.path.exists(log):
        text = open(log, encoding="utf-8", errors="replace").read()
        ensure("STAGEPROF_ENABLE" not in text,
               "a valid setting was reported as bad: %r" % text)


if __name__ == "__main__":
    tc.main(body)
