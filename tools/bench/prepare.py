#!/usr/bin/python3
"""Prepare the models and inputs of `make bench` in build/bench/.

Models (identical weights for every contender):
  default  models/shoppers-tabm-k4.{opm,npz,spec.json,onnx} as shipped.
  heavy    a TabM with k=4, d_in=75 and 3 blocks of 256 -- or 3 blocks of 512
           when the default model already is 3x256 -- trained for one epoch on
           synthetic rows by tools/train_tabm.py (npz + spec + onnx) and
           converted with opecom-convert. Kept across runs (--force retrains).
  *-minus1 each model without its last hidden block (same tensors otherwise),
           opecom only: the difference in batch time between a model and its
           minus1 twin is the time of one d_block x d_block layer, which gives
           the dense-layer efficiency through the public API.

Inputs: the raw rows of tests/data/reference.csv, encoded by each model's
spec exactly as training encodes them (tabm_lib.encode) into NAME.x.f32
(float32 [rows, d_in], for the PyTorch and ONNX Runtime peers, which take
encoded input), and PyTorch's probabilities for them into NAME.prob.f32 (every
contender is checked against these). Writes build/bench/models.json.
"""

import argparse
import csv
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tools"))
import tabm_lib as L  # noqa: E402


def log(msg):
    print("prepare: " + msg, file=sys.stderr, flush=True)


def run(cmd, quiet=False):
    log(" ".join(os.path.relpath(c, REPO) if os.path.isabs(c) else c for c in cmd))
    r = subprocess.run(cmd, stdout=subprocess.PIPE if quiet else None)
    if r.returncode != 0:
        if quiet:
            sys.stderr.write(r.stdout.decode(errors="replace"))
        raise SystemExit("prepare: command failed with status %d" % r.returncode)


def read_raw_rows(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    num = np.array([[float(r[c]) for c in L.NUMERIC] for r in rows], dtype=np.float64)
    cats = [tuple(r[c] for c in L.CATEGORICAL) for r in rows]
    ref = np.array([float(r["probability"]) for r in rows]) if "probability" in rows[0] else None
    return num, cats, ref


def dense_flops(k, d_in, n_blocks, d):
    """FLOPs per row, dense count: 2 k [d_in d + (n_blocks - 1) d^2 + d]."""
    return 2 * k * (d_in * d + (n_blocks - 1) * d * d + d)


def load_spec(path):
    with open(path) as f:
        return json.load(f)


def convert(convert_bin, npz, spec, opm):
    run([convert_bin, "--weights", npz, "--spec", spec, "-o", opm], quiet=True)


def minus_one(base, out_base, convert_bin):
    """base.{npz,spec.json} without the last hidden block -> out_base.{npz,spec.json,opm}."""
    spec = load_spec(base + ".spec.json")
    n = spec["architecture"]["n_blocks"]
    if n < 2:
        return None
    z = np.load(base + ".npz")
    drop = "blocks.%d." % (n - 1)
    np.savez(out_base + ".npz", **{t: z[t] for t in z.files if not t.startswith(drop)})
    spec["architecture"]["n_blocks"] = n - 1
    with open(out_base + ".spec.json", "w") as f:
        f.write(L.spec_text(spec))
    convert(convert_bin, out_base + ".npz", out_base + ".spec.json", out_base + ".opm")
    return out_base


def encode_and_score(base, out_base, num, cats, write_x=True):
    import torch
    torch.set_num_threads(1)
    spec = load_spec(base + ".spec.json")
    arch = spec["architecture"]
    X, _ = L.encode(spec["features"], num, cats)
    z = np.load(base + ".npz")
    model = L.model_from_tensors({t: z[t] for t in z.files}, arch["n_blocks"], arch["d_block"])
    prob = L.predict(model, X).mean(1).astype(np.float32)
    if write_x:
        X.astype(np.float32).tofile(out_base + ".x.f32")
    prob.tofile(out_base + ".prob.f32")
    return spec, X.shape[1], prob


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", default=os.path.join(REPO, "build", "bench"))
    ap.add_argument("--convert", default=os.path.join(REPO, "build", "opecom-convert"))
    ap.add_argument("--rows", default=os.path.join(REPO, "tests", "data", "reference.csv"))
    ap.add_argument("--default", default=os.path.join(REPO, "models", "shoppers-tabm-k4"),
                    help="base path of the default model's files")
    ap.add_argument("--force", action="store_true", help="retrain the heavy model")
    a = ap.parse_args(argv)
    os.makedirs(a.out_dir, exist_ok=True)
    num, cats, ref_prob = read_raw_rows(a.rows)

    dspec = load_spec(a.default + ".spec.json")["architecture"]
    heavy_d = 512 if (dspec["n_blocks"], dspec["d_block"]) == (3, 256) else 256
    heavy_name = "heavy-tabm-k4-3x%d" % heavy_d
    heavy = os.path.join(a.out_dir, heavy_name)
    if a.force or not all(os.path.exists(heavy + e) for e in
                          (".npz", ".spec.json", ".onnx", ".opm")):
        run([sys.executable, os.path.join(REPO, "tools", "train_tabm.py"), "--synthetic", "4000",
             "--out-dir", a.out_dir, "--name", heavy_name, "--k", "4", "--n-blocks", "3",
             "--d-block", str(heavy_d), "--epochs", "1", "--quiet"])
        convert(a.convert, heavy + ".npz", heavy + ".spec.json", heavy + ".opm")

    models = []
    for name, base, note in [
            ("default", a.default, "the shipped default model"),
            ("heavy", heavy, "synthetic data, 1 epoch (only its shape matters here); "
                             "made because the default model already is 3x256")]:
        if heavy_d == 256 and name == "heavy":
            note = "synthetic data, 1 epoch (only its shape matters here)"
        out = os.path.join(a.out_dir, name)
        spec, d_in, prob = encode_and_score(base, out, num, cats)
        if name == "default" and ref_prob is not None:
            err = float(np.abs(prob - ref_prob).max())
            log("default model: PyTorch vs reference.csv probabilities, max |diff| %.2g" % err)
            if err > 1e-5:
                raise SystemExit("prepare: the default model does not reproduce %s" % a.rows)
        arch = spec["architecture"]
        m1 = minus_one(base, out + "-minus1", a.convert)
        minus = None
        if m1:
            _, _, prob1 = encode_and_score(m1, m1, num, cats, write_x=False)
            minus = {"opm": m1 + ".opm", "prob": m1 + ".prob.f32"}
        models.append({
            "name": name, "note": note, "base": os.path.relpath(base, REPO),
            "opm": base + ".opm", "npz": base + ".npz", "spec": base + ".spec.json",
            "onnx": base + ".onnx", "x": out + ".x.f32", "prob": out + ".prob.f32",
            "rows": len(cats), "k": arch["k"], "n_blocks": arch["n_blocks"],
            "d_block": arch["d_block"], "d_in": d_in,
            "flops_per_row": dense_flops(arch["k"], d_in, arch["n_blocks"], arch["d_block"]),
            "layer_flops_per_row": 2 * arch["k"] * arch["d_block"] ** 2,
            "minus1": minus})
        log("%s: k=%d, %dx%d, d_in=%d, %.3f MFLOP/row (dense count)"
            % (name, arch["k"], arch["n_blocks"], arch["d_block"], d_in,
               models[-1]["flops_per_row"] / 1e6))
    with open(os.path.join(a.out_dir, "models.json"), "w") as f:
        json.dump({"rows_csv": a.rows, "models": models}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
