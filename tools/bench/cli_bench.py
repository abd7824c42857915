#!/usr/bin/python3
"""`make bench`, command-line part: `opecom predict`, `opecom sessionize` and
`opecom explain --global`.

Times the `opecom` program as a user runs it, on one core (`taskset -c CPU`),
each figure the median over several runs, and prints a table with the
targets of the command-line issue (PASS/FAIL). Called by bench.py after the
kernel rounds (so nothing overlaps); runs alone too:

    /usr/bin/python3 tools/bench/cli_bench.py [--build build] [--runs 5] [--cpu 0]

Inputs, made in build/bench/ (event logs and the large session file once,
kept; remade when tools/gen_events.py is newer):
  - the UCI CSV, ../shared/data/online_shoppers_intention.csv beside the repo
    (its lines are skipped with a message when it is absent);
  - events-1050000-seed7.csv and events-2100000-seed7.csv
    (`tools/gen_events.py --events N --seed 7`), and their sessions;
  - sessions-synthetic.csv: `gen_events.py --events 5000000 --seed 11 |
    opecom sessionize` (about half a million session rows, no dataset rows);
  - tiny-1x1.opm: the default model's spec and first-layer weights cut to one
    block of width 1, so that `opecom predict` with it costs the CSV reading,
    the preprocessing and the output, and next to nothing for the network.

Peak RSS is GNU time's %M (`/usr/bin/time -f %M`, Debian package `time`), not
os.wait4's ru_maxrss: Python starts children with vfork, and Linux carries the
parent's high-water mark over the exec, so a child's ru_maxrss is never below
the Python process's own.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from bench import REPO, Worker, fmt, log, med, rel

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(REPO, "tools", "gen_events.py")
MODEL = os.path.join(REPO, "models", "shoppers-tabm-k4.opm")
UCI = os.path.normpath(os.path.join(REPO, "..", "shared", "data",
                                    "online_shoppers_intention.csv"))
TIME = "/usr/bin/time"
EVENTS = 1050000          # the target's input size
BIG_EVENTS = 5000000      # -> about half a million sessions
UCI_TARGET_MS = 50.0
ROWS_TARGET = 500000.0
PIPE_TARGET_S = 2.0
GLOBAL_TARGET_S = 15.0    # opecom explain --global over the UCI CSV
FLAT = 1.25               # peak RSS at 2x input within this factor of 1x: flat


def count_rows(path):
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip()) - 1


def stale(path, *sources):
    return not os.path.exists(path) or any(os.path.getmtime(s) > os.path.getmtime(path)
                                           for s in sources)


def make(path, cmd_fn):
    """Writes path through a temporary name, so a failed run leaves nothing."""
    tmp = path + ".tmp"
    t0 = time.time()
    cmd_fn(tmp)
    os.replace(tmp, path)
    log("made %s in %.1f s" % (rel(path), time.time() - t0))


def tiny_model(out_dir, convert):
    """The default model with one block of width 1 (same features, same spec)."""
    import numpy as np
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import tabm_lib as L
    base = os.path.splitext(MODEL)[0]
    z = np.load(base + ".npz")
    with open(base + ".spec.json") as f:
        spec = json.load(f)
    t = {"blocks.0.weight": z["blocks.0.weight"][:1], "blocks.0.r": z["blocks.0.r"],
         "blocks.0.s": z["blocks.0.s"][:, :1], "blocks.0.bias": z["blocks.0.bias"][:, :1],
         "head.weight": z["head.weight"][:, :, :1], "head.bias": z["head.bias"]}
    out = os.path.join(out_dir, "tiny-1x1")
    np.savez(out + ".npz", **{k: np.ascontiguousarray(v) for k, v in t.items()})
    spec["architecture"]["n_blocks"] = 1
    spec["architecture"]["d_block"] = 1
    with open(out + ".spec.json", "w") as f:
        f.write(L.spec_text(spec))
    subprocess.run([convert, "--weights", out + ".npz", "--spec", out + ".spec.json",
                    "-o", out + ".opm"], check=True, stdout=subprocess.DEVNULL)
    return out + ".opm"


def prepare(build, bench_dir):
    opecom = os.path.join(build, "opecom")
    py = sys.executable
    inp = {"opecom": opecom}
    for n in (EVENTS, 2 * EVENTS):
        path = os.path.join(bench_dir, "events-%d-seed7.csv" % n)
        if stale(path, GEN):
            make(path, lambda tmp: subprocess.run(
                [py, GEN, "--events", str(n), "--seed", "7", "-o", tmp], check=True))
        inp["events%d" % n] = path
    big = os.path.join(bench_dir, "sessions-synthetic.csv")
    if stale(big, GEN):
        def mk(tmp):
            g = subprocess.Popen([py, GEN, "--events", str(BIG_EVENTS), "--seed", "11"],
                                 stdout=subprocess.PIPE)
            s = subprocess.run([opecom, "sessionize", "-o", tmp], stdin=g.stdout,
                               stderr=subprocess.DEVNULL)
            g.stdout.close()
            if g.wait() != 0 or s.returncode != 0:
                raise SystemExit("cli_bench: making %s failed" % rel(big))
        make(big, mk)
    inp["big"] = big
    # the sessions of the 1x log, remade every run by the current build
    inp["sessions1x"] = os.path.join(bench_dir, "sessions-%d-seed7.csv" % EVENTS)
    subprocess.run([opecom, "sessionize", "-o", inp["sessions1x"], inp["events%d" % EVENTS]],
                   check=True, stderr=subprocess.DEVNULL)
    # a header and no rows: what a run costs before the first row
    inp["header"] = os.path.join(bench_dir, "sessions-header-only.csv")
    with open(inp["sessions1x"]) as f, open(inp["header"], "w") as g:
        g.write(f.readline())
    inp["tiny"] = tiny_model(bench_dir, os.path.join(build, "opecom-convert"))
    for k in ("big", "sessions1x"):
        inp[k + "_rows"] = count_rows(inp[k])
    inp["uci"] = UCI if os.path.exists(UCI) else None
    if inp["uci"]:
        inp["uci_rows"] = count_rows(UCI)
    r = subprocess.run([opecom, "info", "--json", MODEL], check=True, capture_output=True,
                       text=True)
    inp["model"] = json.loads(r.stdout)
    return inp


def run_timed(stages, env, pin):
    """Runs a pipeline of argv lists, each pinned and under GNU time.
    Returns (wall seconds until the last one exits, [peak RSS KiB per stage])."""
    procs, rss_files, errs = [], [], []
    prev = None
    t0 = time.perf_counter()
    for i, argv in enumerate(stages):
        rf = tempfile.NamedTemporaryFile("r", suffix=".rss")
        ef = tempfile.TemporaryFile("w+")
        p = subprocess.Popen([TIME, "-o", rf.name, "-f", "%M"] + pin + argv,
                             stdin=prev.stdout if prev else subprocess.DEVNULL,
                             stdout=subprocess.PIPE if i < len(stages) - 1
                             else subprocess.DEVNULL, stderr=ef, env=env, cwd=REPO)
        if prev:
            prev.stdout.close()
        procs.append(p)
        rss_files.append(rf)
        errs.append(ef)
        prev = p
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t0
    for argv, c, ef in zip(stages, codes, errs):
        if c != 0:
            ef.seek(0)
            raise SystemExit("cli_bench: '%s' failed (status %d): %s"
                             % (" ".join(argv), c, ef.read()[-2000:]))
    rss = []
    for rf in rss_files:
        rf.seek(0)
        lines = [x for x in rf.read().split() if x.isdigit()]
        rss.append(int(lines[-1]) if lines else None)
        rf.close()
    for ef in errs:
        ef.close()
    return wall, rss


def cpu_set(cpu):
    """taskset -c's list syntax: "0", "0,2", "0-1"."""
    out = set()
    for part in cpu.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def run(build="build", cpu="0", runs=5, uci_runs=7):
    """Measures everything; returns {"rows", "verdicts", "notes", "raw"}.
    This process is pinned to `cpu` meanwhile and its children inherit that
    (what `taskset -c CPU` does, without one more exec per run: starting a
    process costs milliseconds on these machines)."""
    t_start = time.time()
    if not os.access(TIME, os.X_OK):
        raise SystemExit("cli_bench: %s missing (Debian package `time`; "
                         "tools/install-deps.sh bench installs it)" % TIME)
    build = os.path.join(REPO, build)
    bench_dir = os.path.join(REPO, "build", "bench")
    os.makedirs(bench_dir, exist_ok=True)
    inp = prepare(build, bench_dir)
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpu_set(cpu))
    try:
        res = measure(inp, build, cpu, runs, uci_runs)
    finally:
        os.sched_setaffinity(0, old)
    log("cli part: %.0f s" % (time.time() - t_start))
    return res


def measure(inp, build, cpu, runs, uci_runs):
    opecom = inp["opecom"]
    arch = inp["model"]["architecture"]
    auto = inp["model"]["kernel"]
    isa = "avx512" if auto.startswith("avx512") else "avx2"
    pin = []    # inherited: see run()
    env_auto = {k: v for k, v in os.environ.items() if k != "OPECOM_KERNEL"}
    env_avx2 = dict(env_auto, OPECOM_KERNEL="avx2")
    ev1, ev2 = inp["events%d" % EVENTS], inp["events%d" % (2 * EVENTS)]

    def predict(model, path=None):
        return [opecom, "predict", "--model", model] + ([path] if path else [])

    # name -> (stages, env, runs)
    ms = {}
    if inp["uci"]:
        ms["uci"] = ([predict(MODEL, inp["uci"])], env_auto, uci_runs)
        ms["uci-avx2"] = ([predict(MODEL, inp["uci"])], env_avx2, uci_runs)
        ms["uci-tiny"] = ([predict(inp["tiny"], inp["uci"])], env_auto, uci_runs)
        # about 10 s a run: three runs
        ms["global"] = ([[opecom, "explain", "--model", MODEL, "--global", inp["uci"]]],
                        env_auto, min(runs, 3))
    else:
        print("cli: skipped the UCI CSV lines: %s not found" % UCI, flush=True)
    ms["header"] = ([predict(MODEL, inp["header"])], env_auto, uci_runs)
    ms["true"] = ([["/bin/true"]], env_auto, uci_runs)
    ms["big"] = ([predict(MODEL, inp["big"])], env_auto, runs)
    # the slowest two: fewer runs, to keep the CLI part under two minutes
    few = min(runs, max(3, runs // 2 + 1))
    ms["big-avx2"] = ([predict(MODEL, inp["big"])], env_avx2, few)
    ms["sess1"] = ([[opecom, "sessionize", ev1]], env_auto, runs)
    ms["pred1"] = ([predict(MODEL, inp["sessions1x"])], env_auto, runs)
    ms["pred1-tiny"] = ([predict(inp["tiny"], inp["sessions1x"])], env_auto, runs)
    ms["pipe1"] = ([[opecom, "sessionize", ev1], predict(MODEL)], env_auto, runs)
    ms["pipe2"] = ([[opecom, "sessionize", ev2], predict(MODEL)], env_auto, few)

    # the library alone (no CSV, no process start), and the core's FMA peak
    lib = Worker("opecom-bench (cli)", ["taskset", "-c", cpu] + [
        os.path.join(build, "opecom-bench"), "--rows",
        os.path.join(REPO, "tests", "data", "reference.csv"), "--kernels", auto,
        "--model", "default=" + MODEL, "--model", "tiny=" + inp["tiny"]])
    lib.ask("info")
    R = {}
    n_rounds = max(runs, uci_runs)
    order = list(ms)
    for r in range(n_rounds):
        t0 = time.time()
        rot = order[r % len(order):] + order[:r % len(order)]
        for name in rot:
            stages, env, n = ms[name]
            if r >= n:
                continue
            wall, rss = run_timed(stages, env, pin)
            R.setdefault((name, "wall"), []).append(wall)
            for i, v in enumerate(rss):
                R.setdefault((name, "rss", i), []).append(v)
        if r < runs:
            for m in ("default", "tiny"):
                out = lib.ask("thr %s %s 256 0.2" % (m, auto))
                R.setdefault(("lib", m), []).append(out.get("rows_per_s"))
            R.setdefault(("peak",), []).append(lib.ask("peak %s 0.1" % isa).get("gflops"))
        log("cli round %d/%d done in %.1f s" % (r + 1, n_rounds, time.time() - t0))
    lib.close()

    # ---- figures ------------------------------------------------------------
    def M(*key):
        return med(R.get(key, []))

    rows, verdicts = [], []

    def verdict(ok, text):
        v = "PASS" if ok else "FAIL"
        verdicts.append((v, text))
        return "%s: %s" % (v, text)

    def mib(kib):
        return "%s MiB" % fmt(kib / 1024) if kib else "–"

    def rate(name, n):
        w = M(name, "wall")
        return n / w if w else None

    def row(cmd, what, name, n, unit="rows/s", target="", rss=None):
        w = M(name, "wall")
        if rss is None:
            rss = mib(M(name, "rss", 0))
        wall = ("%s ms" % fmt(1000 * w) if w < 1 else "%s s" % fmt(w)) if w else "–"
        rows.append([cmd, what, wall, "%s %s" % (fmt(rate(name, n)), unit), rss, target])

    kname = "default kernel (%s)" % auto
    if inp["uci"]:
        n = inp["uci_rows"]
        w = M("uci", "wall")
        t = verdict(w is not None and 1000 * w < UCI_TARGET_MS,
                    "UCI CSV in < %g ms, parse included (%s ms)" % (UCI_TARGET_MS,
                                                                     fmt(1000 * w)))
        what = "UCI CSV, %s rows" % fmt(n)
        row("`opecom predict`, %s" % kname, what, "uci", n, target=t)
        row("`opecom predict`, `OPECOM_KERNEL=avx2`", what, "uci-avx2", n)
        row("`opecom predict`, tiny model ⁶", what, "uci-tiny", n)
        w = M("global", "wall")
        t = verdict(w is not None and w < GLOBAL_TARGET_S,
                    "`explain --global` over the UCI CSV in < %g s (%s s)"
                    % (GLOBAL_TARGET_S, fmt(w)))
        row("`opecom explain --global`, %s, default options ¹⁰" % kname, what, "global", n,
            target=t)
    w_h, w_t = M("header", "wall"), M("true", "wall")
    rows.append(["fixed cost: `opecom predict`, %s, on a header without rows (process start, "
                 "model load); `/bin/true` started the same way" % kname,
                 "the 18-column header", "%s ms; `/bin/true` %s ms"
                 % (fmt(1000 * w_h), fmt(1000 * w_t)), "–", mib(M("header", "rss", 0)), ""])
    n = inp["big_rows"]
    best = max(("big", "big-avx2"), key=lambda x: rate(x, n) or 0)
    br = rate(best, n)
    fl = 2 * arch["k"] * (arch["d_in"] * arch["d_block"]
                          + (arch["n_blocks"] - 1) * arch["d_block"] ** 2 + arch["d_block"])
    peak = M("peak")
    ceiling = peak * 1e9 / fl if peak else None
    t = verdict(br is not None and br >= ROWS_TARGET,
                "≥ %s rows/s on a large synthetic file, fastest kernel (%s: %s rows/s)"
                % (fmt(ROWS_TARGET), auto if best == "big" else "avx2", fmt(br)))
    if br is not None and br < ROWS_TARGET and ceiling:
        t += "; the FMA peak caps the network alone at %s rows/s (below)" % fmt(ceiling)
    what = "synthetic sessions, %s rows (%s MB)" % (fmt(n), fmt(os.path.getsize(inp["big"])
                                                               / 1e6))
    row("`opecom predict`, %s" % kname, what, "big", n, target=t)
    row("`opecom predict`, `OPECOM_KERNEL=avx2`", what, "big-avx2", n)
    lib_d, lib_t = M("lib", "default"), M("lib", "tiny")
    rows.append(["library alone: `opecom_predict_batch`, batch 256, raw rows, %s "
                 "(`opecom-bench`: no CSV, no process)" % auto,
                 "1200 rows of tests/data/reference.csv, cycled", "–",
                 "%s rows/s (tiny model ⁶: %s)" % (fmt(lib_d), fmt(lib_t)), "–", ""])
    need = ROWS_TARGET * fl / 1e9
    rows.append(["ceiling: the core's FMA peak ÷ the model's FLOPs per row ⁷",
                 "%d×%d model, k=%d: %s MFLOP/row; %s peak %s GFLOP/s"
                 % (arch["n_blocks"], arch["d_block"], arch["k"], fmt(fl / 1e6),
                    "AVX-512" if isa == "avx512" else "AVX2", fmt(peak)), "–",
                 "%s rows/s" % fmt(ceiling), "–",
                 "%s rows/s needs %s GFLOP/s, %s× the peak" % (fmt(ROWS_TARGET), fmt(need),
                                                             fmt(need / peak) if peak else "–")])

    n1, ns = EVENTS, inp["sessions1x_rows"]
    ev_what = "%s events (%s MB), gen_events.py --seed 7" % (fmt(n1),
                                                             fmt(os.path.getsize(ev1) / 1e6))
    row("`opecom sessionize`", ev_what, "sess1", n1, "events/s")
    s_what = "its %s sessions" % fmt(ns)
    row("`opecom predict`, %s" % kname, s_what, "pred1", ns)
    row("`opecom predict`, tiny model ⁶", s_what, "pred1-tiny", ns)
    w1 = M("pipe1", "wall")
    t = verdict(w1 is not None and w1 < PIPE_TARGET_S,
                "sessionize + predict over %s events in < %g s (%s s)"
                % (fmt(n1), PIPE_TARGET_S, fmt(w1)))
    rss1 = (M("pipe1", "rss", 0), M("pipe1", "rss", 1))
    rss2 = (M("pipe2", "rss", 0), M("pipe2", "rss", 1))
    row("`opecom sessionize \\| opecom predict`, both on core %s" % cpu, ev_what, "pipe1", n1,
        "events/s", t, "%s / %s" % (mib(rss1[0]), mib(rss1[1])))
    g = [b / a if a and b else None for a, b in zip(rss1, rss2)]
    t = verdict(all(x is not None and x <= FLAT for x in g),
                "peak RSS flat: 2× the events, each process's peak RSS within %g× "
                "(sessionize %s×, predict %s×)" % (FLAT, fmt(g[0]), fmt(g[1])))
    row("the same pipeline, 2× the input", "%s events (%s MB)"
        % (fmt(2 * n1), fmt(os.path.getsize(ev2) / 1e6)), "pipe2", 2 * n1, "events/s", t,
        "%s / %s" % (mib(rss2[0]), mib(rss2[1])))

    # where the time of `opecom predict` goes, per row
    c_d, c_t = M("pred1", "wall"), M("pred1-tiny", "wall")
    split = None
    if c_d and c_t and lib_d and lib_t:
        us = 1e6 / ns
        split = {"total": c_d * us, "csv": c_t * us - 1e6 / lib_t, "pre": 1e6 / lib_t,
                 "net": 1e6 / lib_d - 1e6 / lib_t}
        split["rest"] = split["total"] - split["csv"] - split["pre"] - split["net"]
        rows.append(["where a row's time goes in `opecom predict` ⁸", s_what,
                     "%s µs/row" % fmt(split["total"]), "–", "–",
                     "CSV read + write %s µs, preprocessing %s µs, network %s µs, other %s µs"
                     % (fmt(split["csv"]), fmt(split["pre"]), fmt(split["net"]),
                        fmt(split["rest"]))])

    notes = [
        "CLI table: every command runs pinned to core %s (the affinity `taskset -c %s` sets, "
        "inherited from the orchestrator; a pipeline's two processes share that core), under "
        "`/usr/bin/time -f %%M` for the peak RSS, output to /dev/null; wall time from "
        "starting `/usr/bin/time` to the last exit, median of %d runs "
        "(%d for the UCI CSV, %d for `OPECOM_KERNEL=avx2` on the large file and for the 2× "
        "pipeline), runs of the different commands interleaved. rows/s = input rows ÷ median "
        "wall time, so process start and model load are included."
        % (cpu, cpu, runs, uci_runs, few),
        "⁶ Tiny model: `build/bench/tiny-1x1.opm`, the default model's spec (same features, "
        "quantiles and categories) with one block of width 1: with it `opecom predict` costs "
        "the CSV reading, the preprocessing and the output and almost nothing for the "
        "network.",
        "⁷ The network's work per row, counted dense: 2·k·[d_in·d + (n_blocks−1)·d² + d] "
        "FLOPs (from `opecom info --json` of `%s`), against the FMA peak of core %s measured "
        "by `opecom-bench` during the CLI runs (median). No kernel can score rows faster than "
        "peak ÷ FLOPs per row, before any parsing or preprocessing; so %s rows/s is out of "
        "reach for this model on this core, whatever the CSV path costs, unless the model "
        "does fewer FLOPs per row." % (rel(MODEL), cpu, fmt(ROWS_TARGET)),
    ]
    if split:
        notes.append(
            "⁸ Per row of the %s-session file, from the medians: CSV read + write = tiny-model "
            "`opecom predict` − the library's preprocessing; preprocessing = the library with "
            "the tiny model (raw features to encoded input, plus a width-1 network); network = "
            "library default − library tiny; other = what the CLI spends beyond the library "
            "batch rate (process start, model load, batch boundaries, the machine's drift)."
            % fmt(ns))
    if inp["uci"]:
        notes.append(
            "¹⁰ `opecom explain --model %s --global` over the UCI CSV: every row explained with "
            "the default options (auto estimator, default budget), the mean |contribution| "
            "per feature printed; median of %d runs, process start and CSV included."
            % (rel(MODEL), min(runs, 3)))
    raw = {"|".join(str(x) for x in k): v for k, v in R.items()}
    raw["inputs"] = {k: (rel(v) if isinstance(v, str) and v.startswith(REPO) else v)
                     for k, v in inp.items() if k != "model"}
    return {"rows": rows, "verdicts": verdicts, "notes": notes, "raw": raw,
            "header": ["command (core %s)" % cpu, "input", "wall, median", "throughput",
                       "peak RSS", "target"]}


def table(res):
    h = res["header"]
    out = ["| " + " | ".join(h) + " |", "|" + "---|" * len(h)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in res["rows"]]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--cpu", default="0")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--uci-runs", type=int, default=7)
    a = ap.parse_args(argv)
    res = run(a.build, a.cpu, a.runs, a.uci_runs)
    print("\n".join(table(res)))
    print()
    print("\n".join("- " + n for n in res["notes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
