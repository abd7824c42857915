#!/usr/bin/python3
"""`make bench`, server part: `opecom-server` under load from `wrk`.

Starts build/opecom-server with the default model on a fresh database and
loads it over loopback with wrk (Debian's package), server and wrk sharing
the machine's two cores, as the demo would run:

  - POST /api/predict with raw features and "reasons": 0, keep-alive,
    2 wrk threads x 64 connections, RUNS runs of SECONDS each: requests/s
    (median of the runs);
  - the same at about half that rate (a fixed delay between each
    connection's requests): p50 and p99 latency as wrk measures them;
  - POST /api/track, batches of 50 page views, every request a new session:
    events/s acknowledged; then the server is stopped and the page views in
    the database are counted: every acknowledged event must be there.

Called by bench.py after the kernel rounds; runs alone too:

    /usr/bin/python3 tools/bench/server_bench.py [--build build] [--runs 3] [--seconds 10]
"""

import argparse
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

from bench import REPO, fmt, log, med, rel

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(REPO, "models", "shoppers-tabm-k4.opm")
PREDICT_TARGET = 30000.0   # requests/s
P99_TARGET_MS = 2.0        # at half the target rate
TRACK_TARGET = 20000.0     # durable events/s
BATCH = 50


class Server:
    def __init__(self, build, db):
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0,1", os.path.join(REPO, build, "opecom-server"), "--port", "0",
             "--db", db, "--model", MODEL, "--threads", "16"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        self.url = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("opecom-server exited: " + self.proc.stderr.read())
            m = re.search(r"store (http://[0-9.]+:\d+)/", line)
            if m:
                self.url = m.group(1)
                break
        if self.url is None:
            raise RuntimeError("opecom-server printed no URL")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


def wrk(url, script, seconds, threads=2, conns=64, env=None):
    cmd = ["taskset", "-c", "0,1", "wrk", "-t%d" % threads, "-c%d" % conns,
           "-d%ds" % seconds, "--timeout", "5s", "-s", os.path.join(HERE, "wrk", script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **(env or {})),
                         check=True).stdout
    m = re.search(r"WRK_RESULT (.*)", out)
    if not m:
        raise RuntimeError("wrk printed no result:\n" + out)
    r = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    r["seconds"] = r["duration_us"] / 1e6
    r["rate"] = r["requests"] / r["seconds"]
    return r


def run(build, runs=3, seconds=10):
    tmp = tempfile.mkdtemp(prefix="opecom-server-bench-")
    R = {"predict": [], "predict_half": [], "track": []}
    # ---- predict ----------------------------------------------------------
    srv = Server(build, os.path.join(tmp, "predict.db"))
    try:
        wrk(srv.url, "predict.lua", 2)  # warm-up
        for i in range(runs):
            R["predict"].append(wrk(srv.url, "predict.lua", seconds))
            log("server: predict run %d: %.0f req/s" % (i + 1, R["predict"][-1]["rate"]))
        full = med([r["rate"] for r in R["predict"]])
        # half the rate: each connection waits `delay` ms, then about 0.5 ms
        # for its answer, so conns x 1000 / (delay + 0.5) requests/s
        half = full / 2
        delay = 2
        conns = max(2, int(round(half * (delay + 0.5) / 1000.0)))
        for i in range(runs):
            R["predict_half"].append(wrk(srv.url, "predict.lua", seconds, conns=conns,
                                         env={"WRK_DELAY_MS": str(delay)}))
            log("server: predict at half rate, run %d: %.0f req/s, p99 %.2f ms"
                % (i + 1, R["predict_half"][-1]["rate"], R["predict_half"][-1]["p99_us"] / 1e3))
    finally:
        srv.stop()
    # ---- track ------------------------------------------------------------
    track_db = os.path.join(tmp, "track.db")
    srv = Server(build, track_db)
    acked = 0
    try:
        for i in range(runs):
            r = wrk(srv.url, "track.lua", seconds, conns=32, env={"WRK_BATCH": str(BATCH)})
            r["events_rate"] = r["acked_batches"] * BATCH / r["seconds"]
            acked += r["acked_batches"] * BATCH
            R["track"].append(r)
            log("server: track run %d: %.0f events/s acknowledged" % (i + 1, r["events_rate"]))
    finally:
        rc = srv.stop()
    con = sqlite3.connect(track_db)
    stored = con.execute("SELECT count(*) FROM page_views").fetchone()[0]
    con.close()

    p_rate = med([r["rate"] for r in R["predict"]])
    h_rate = med([r["rate"] for r in R["predict_half"]])
    h_p50 = med([r["p50_us"] / 1e3 for r in R["predict_half"]])
    h_p99 = med([r["p99_us"] / 1e3 for r in R["predict_half"]])
    t_rate = med([r["events_rate"] for r in R["track"]])
    t_p99 = med([r["p99_us"] / 1e3 for r in R["track"]])
    errors = sum(r["errors"] for k in R for r in R[k])
    ok_p = p_rate >= PREDICT_TARGET
    ok_l = h_p99 < P99_TARGET_MS and h_rate >= 0.4 * p_rate
    ok_t = t_rate >= TRACK_TARGET and stored >= acked
    verdicts = [
        ("PASS" if ok_p else "FAIL", "POST /api/predict ≥ %s req/s" % fmt(PREDICT_TARGET)),
        ("PASS" if ok_l else "FAIL", "p99 < %g ms at half that rate" % P99_TARGET_MS),
        ("PASS" if ok_t else "FAIL", "POST /api/track ≥ %s events/s, all acknowledged stored"
         % fmt(TRACK_TARGET)),
    ]
    rows = [
        ["POST /api/predict, raw features, no reasons", "%s req/s" % fmt(p_rate), "–",
         "≥ %s req/s: %s" % (fmt(PREDICT_TARGET), verdicts[0][0])],
        ["the same at about half the rate (%s req/s)" % fmt(h_rate),
         "p50 %s ms, p99 %s ms" % (fmt(h_p50), fmt(h_p99)), "–",
         "p99 < %g ms: %s" % (P99_TARGET_MS, verdicts[1][0])],
        ["POST /api/track, batches of %d page views" % BATCH, "%s events/s" % fmt(t_rate),
         "p99 %s ms per batch; %d acknowledged, %d in the database" % (fmt(t_p99), acked, stored),
         "≥ %s events/s, none lost: %s" % (fmt(TRACK_TARGET), verdicts[2][0])],
    ]
    notes = [
        "Server table: `build/opecom-server --threads 16` with `%s` on a fresh database, and "
        "wrk (2 threads, keep-alive), both on cores 0-1 over loopback; %d runs of %d s per "
        "line, medians. Predict: 64 connections, 64 different raw rows, `\"reasons\": 0`. "
        "Half rate: %d connections, 2 ms between a connection's requests. Track: 32 "
        "connections, each request a batch of %d page views of a new session, acknowledged "
        "only once committed (WAL, synchronous=FULL); after the runs the server is stopped "
        "(exit %d) and the page views in the database counted. wrk errors: %d."
        % (rel(MODEL), runs, seconds, conns, BATCH, rc, errors),
    ]
    return {"rows": rows, "verdicts": verdicts, "notes": notes,
            "raw": {k: v for k, v in R.items()},
            "header": ["server route (cores 0-1)", "throughput / latency", "detail", "target"]}


def table(res):
    h = res["header"]
    out = ["| " + " | ".join(h) + " |", "|" + "---|" * len(h)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in res["rows"]]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args(argv)
    res = run(a.build, a.runs, a.seconds)
    print("\n".join(table(res)))
    print()
    print("\n".join("- " + n for n in res["notes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
