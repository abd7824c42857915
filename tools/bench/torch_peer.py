#!/usr/bin/python3
"""PyTorch eager peer of `make bench`.

Loads each model's npz into the PyTorch TabM of tools/tabm_lib.py (the
training code's own module), on one thread, and serves measurement commands
from stdin, one JSON line per command (see tools/bench/bench.c for the
protocol):

  info                         versions, BLAS in use, accuracy check
  lat MODEL SECONDS            one row per call: p50, p99 (us)
  thr MODEL BATCH SECONDS      BATCH rows per call, each timed: BATCH / median
                               call time (rows/s), and the plain mean
  quit

Input is the ENCODED float32 rows written by prepare.py (preprocessing is not
timed: PyTorch would need a separate encoder). Each call computes what the
ONNX export and opecom return: sigmoid per member and their mean, under
torch.inference_mode(). Run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
unset (bench.py does: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`).

Usage: torch_peer.py build/bench/models.json [--once]
"""

import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import tabm_lib as L  # noqa: E402

MAX_BATCH = 4096


def blas_info():
    config = torch.__config__.show()
    words = config.replace(",", " ").split()
    info = {"torch": torch.__version__,
            "blas_info": next((w.split("=", 1)[1] for w in words
                               if w.startswith("BLAS_INFO=")), "?"),
            "cpu_capability": next((ln.split(":", 1)[1].strip() for ln in config.splitlines()
                                    if "CPU capability usage" in ln), "?"),
            "num_threads": torch.get_num_threads(),
            "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                    "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}}
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = [{k: p.get(k) for k in ("internal_api", "version", "architecture",
                                                     "num_threads", "filepath")}
                               for p in threadpool_info()]
    except Exception as e:  # threadpoolctl missing or failing: say so
        info["threadpools"] = "threadpoolctl: %s" % e
    return info


class Peer:
    def __init__(self, manifest):
        with open(manifest) as f:
            self.models = {m["name"]: m for m in json.load(f)["models"]}
        self.net, self.x, self.err = {}, {}, {}
        for name, m in self.models.items():
            z = np.load(m["npz"])
            self.net[name] = L.model_from_tensors({t: z[t] for t in z.files}, m["n_blocks"],
                                                  m["d_block"])
            X = np.fromfile(m["x"], dtype=np.float32).reshape(m["rows"], m["d_in"])
            n = len(X)
            ext = np.concatenate([X, X[np.arange(MAX_BATCH) % n]])   # windows never wrap
            self.x[name] = torch.from_numpy(np.ascontiguousarray(ext))
            expect = np.fromfile(m["prob"], dtype=np.float32)
            with torch.inference_mode():
                got = self.forward(name, self.x[name][:n]).numpy()
            self.err[name] = float(np.abs(got - expect).max())

    def forward(self, name, x):
        return torch.sigmoid(self.net[name](x)).mean(1)

    def lat(self, name, seconds):
        x, n = self.x[name], self.models[name]["rows"]
        rows = [x[i:i + 1] for i in range(n)]
        fwd, clock = self.forward, time.perf_counter_ns
        samples = []
        with torch.inference_mode():
            for i in range(20):
                fwd(name, rows[i % n])
            t0 = t = clock()
            i = 0
            while t - t0 < seconds * 1e9 or len(samples) < 100:
                a = clock()
                fwd(name, rows[i])
                t = clock()
                samples.append(t - a)
                i = (i + 1) % n
        s = np.sort(np.array(samples, dtype=np.float64)) / 1e3
        pick = lambda p: float(s[min(len(s), int(np.ceil(p * len(s)))) - 1])  # noqa: E731
        return {"p50_us": pick(0.50), "p99_us": pick(0.99), "n": len(s)}

    def thr(self, name, batch, seconds):
        x, n = self.x[name], self.models[name]["rows"]
        wins = [x[o:o + batch] for o in range(0, n, batch)]
        fwd, clock = self.forward, time.perf_counter_ns
        samples = []
        with torch.inference_mode():
            for w in wins[:2]:
                fwd(name, w)
            t0 = t = clock()
            while t - t0 < seconds * 1e9 or len(samples) < 3:
                a = clock()
                fwd(name, wins[len(samples) % len(wins)])
                t = clock()
                samples.append(t - a)
        dt = (t - t0) / 1e9
        return {"rows_per_s": batch / (float(np.median(samples)) / 1e9),
                "rows_per_s_mean": len(samples) * batch / dt, "calls": len(samples), "seconds": dt}

    def command(self, line):
        a = line.split()
        if not a:
            return None
        try:
            if a[0] == "info":
                info = blas_info()
                info["max_err_expected"] = self.err
                return info
            if a[0] == "lat" and len(a) == 3:
                return self.lat(a[1], float(a[2]))
            if a[0] == "thr" and len(a) == 4:
                return self.thr(a[1], int(a[2]), float(a[3]))
        except KeyError as e:
            return {"error": "no such model %s" % e}
        return {"error": "unknown command"}


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    peer = Peer(argv[0])
    if "--once" in argv[1:]:
        cmds = ["info"]
        for m in peer.models:
            cmds += ["lat %s 0.05" % m, "thr %s 1 0.05" % m, "thr %s 256 0.05" % m]
        for cmd in cmds:
            print(cmd, "->", json.dumps(peer.command(cmd)))
        return 0
    for line in sys.stdin:
        if line.startswith("quit"):
            break
        out = peer.command(line)
        if out is not None:
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
