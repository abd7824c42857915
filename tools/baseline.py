#!/usr/bin/python3
"""The explanation baseline of a libopecom model: a few weighted training rows.

opecom_explain splits a prediction into per-feature Shapley contributions
relative to a baseline stored in the model file (docs/explanations.md). This
module chooses it from the TRAINING rows the model was fitted on: k-medoids
on the encoded input space (the space the network sees; one-hot blocks and
standardised numerics, Euclidean distance), each medoid a real training
session, weighted by the share of training rows closest to it. f(baseline),
the weighted mean of the model's probability on the medoids, is what every
explanation starts from.

Used by tools/train_tabm.py (choose_baseline) and, to add a baseline to an
already trained model without retraining, from the command line:

  /usr/bin/python3 tools/baseline.py --add-to models/shoppers-tabm-k4.spec.json \\
      --csv ../shared/data/online_shoppers_intention.csv

That recomputes the training split from the spec's "training" metadata (the
trainer's sklearn train_test_split with its test_size and random_state,
checked against the recorded row counts and the CSV's sha256), writes the
"baseline" key into NAME.spec.json and into the spec embedded in
NAME.safetensors (tensors untouched) and NAME.onnx when present. Then
convert again: build/opecom-convert --weights NAME.npz --spec NAME.spec.json.
"""

import argparse
import hashlib
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tabm_lib as L  # noqa: E402

DEFAULT_ROWS = 4      # medoids: see docs/explanations.md for the trade-off
CANDIDATES = 256      # medoid candidates per cluster: the rows nearest its mean
ITERATIONS = 30


def _sq_dist(X, C):
    """Squared Euclidean distances [n, k] between rows of X and C."""
    return np.maximum((X * X).sum(1)[:, None] - 2.0 * X @ C.T + (C * C).sum(1)[None, :], 0.0)


def k_medoids(X, k, seed=0):
    """Alternating k-medoids (assign, then re-centre each cluster on the
    member with the least total distance to the others, searched among the
    CANDIDATES members nearest the cluster mean), from a k-means++ start.
    Returns (medoid row indices, cluster sizes), medoids sorted by size,
    largest first. Deterministic for a seed."""
    rng = np.random.RandomState(seed)
    n = len(X)
    k = min(k, n)
    medoids = [rng.randint(n)]
    d2 = _sq_dist(X, X[medoids]).min(1)
    while len(medoids) < k:                        # k-means++ seeding
        total = d2.sum()
        i = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.randint(n))
        medoids.append(i)
        d2 = np.minimum(d2, _sq_dist(X, X[[i]])[:, 0])
    medoids = np.array(medoids)
    for _ in range(ITERATIONS):
        assign = _sq_dist(X, X[medoids]).argmin(1)
        new = medoids.copy()
        for c in range(k):
            members = np.flatnonzero(assign == c)
            if len(members) == 0:
                continue
            M = X[members]
            near = np.argsort(_sq_dist(M, M.mean(0, keepdims=True))[:, 0])[:CANDIDATES]
            cost = np.sqrt(_sq_dist(M[near], M)).sum(1)
            new[c] = members[near[int(np.argmin(cost))]]
        if np.array_equal(new, medoids):
            break
        medoids = new
    assign = _sq_dist(X, X[medoids]).argmin(1)
    sizes = np.bincount(assign, minlength=k)
    order = sorted(range(k), key=lambda c: (-sizes[c], medoids[c]))
    return medoids[order], sizes[order]


def raw_row(features, num, cats):
    """One raw row as the spec stores it: numbers as JSON numbers (integers
    without a fraction), categories as their text."""
    row = {}
    numeric = [f for f in features if f["type"] == "numeric"]
    categorical = [f for f in features if f["type"] == "categorical"]
    for j, f in enumerate(numeric):
        v = float(num[j])
        row[f["name"]] = int(v) if v.is_integer() and abs(v) < 2 ** 53 else v
    for j, f in enumerate(categorical):
        row[f["name"]] = cats[j]
    return {f["name"]: row[f["name"]] for f in features}


def choose_baseline(features, num, cats, y, n_rows=DEFAULT_ROWS, seed=0):
    """The spec's "baseline" object from TRAINING rows (num float [n, n_numeric],
    cats list of tuples, y 0/1 labels): k-medoids on the encoded rows of each
    class, round(n_rows * positive share) (at least 1) medoids among the
    purchases and the rest among the others, so the baseline keeps the class
    balance; a medoid's weight is its class's share times its cluster's share
    of the class."""
    X, _ = L.encode(features, num, cats)
    X = X.astype(np.float64)
    y = np.asarray(y)
    n_pos = min(max(1, int(round(n_rows * y.mean()))), n_rows - 1) if n_rows > 1 else 0
    rows, weights = [], []
    for label, k in ((0, n_rows - n_pos), (1, n_pos)):
        members = np.flatnonzero(y == label)
        if k == 0 or len(members) == 0:
            continue
        idx, sizes = k_medoids(X[members], k, seed)
        for i, size in zip(idx, sizes):
            rows.append(raw_row(features, num[members[i]], cats[members[i]]))
            weights.append(int(size) / len(y) if n_rows > 1 else 1.0)
    if n_rows == 1:
        idx, _ = k_medoids(X, 1, seed)
        rows, weights = [raw_row(features, num[idx[0]], cats[idx[0]])], [1.0]
    return {
        "method": "class-stratified k-medoids (%d medoids among the %d purchases, %d among the "
                  "%d other sessions; seed %d; Euclidean distance on the encoded input) of the "
                  "training rows; each medoid is a training session, weighted by the share of "
                  "training rows nearest to it in its class"
                  % (n_pos, int(y.sum()), len(rows) - n_pos, int(len(y) - y.sum()), seed),
        "rows": rows,
        "weights": weights,
    }


def training_rows(spec, csv_path):
    """The training rows of the trainer's split, recomputed from the spec's
    'training' metadata; checked against the recorded sha256 and counts."""
    from sklearn.model_selection import train_test_split
    t = spec.get("training", {})
    num, cats, y, sha = L.read_csv(csv_path)
    if t.get("data_sha256") not in (None, sha):
        raise SystemExit("error: %s is not the data the model was trained on (sha256 %s, "
                         "the spec says %s)" % (csv_path, sha, t["data_sha256"]))
    split = t.get("split", "")
    m = re.search(r"test_size=([0-9.eE+-]+), random_state=(\d+)\): (\d+) training rows", split)
    if not m:
        raise SystemExit("error: the spec's training.split does not say how the rows were "
                         "split (test_size, random_state, training rows)")
    test_size, seed, n_train = float(m.group(1)), int(m.group(2)), int(m.group(3))
    idx = np.arange(len(y))
    tr, _ = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
    tr = np.sort(tr)
    if len(tr) != n_train:
        raise SystemExit("error: the split gives %d training rows, the spec says %d"
                         % (len(tr), n_train))
    return num[tr], [cats[i] for i in tr], y[tr], seed


def add_to(spec_path, csv_path, n_rows):
    with open(spec_path) as f:
        spec = json.load(f)
    num, cats, y, seed = training_rows(spec, csv_path)
    spec.pop("baseline", None)
    spec["baseline"] = choose_baseline(spec["features"], num, cats, y, n_rows, seed)
    written = rewrite_spec(spec_path, spec)
    L.log("baseline: %d rows, weights %s; wrote %s"
          % (len(spec["baseline"]["rows"]),
             ", ".join("%.3f" % w for w in spec["baseline"]["weights"]), ", ".join(written)))


def rewrite_spec(spec_path, spec):
    """Writes spec to NAME.spec.json and into the spec embedded in
    NAME.safetensors (tensors untouched) and NAME.onnx, when they exist.
    Returns the files written."""
    base = spec_path[:-len(".spec.json")] if spec_path.endswith(".spec.json") else None
    with open(spec_path, "w") as f:
        f.write(L.spec_text(spec))
    written = [spec_path]
    if base and os.path.exists(base + ".safetensors"):
        tensors, _ = L.read_safetensors(base + ".safetensors")
        L.write_safetensors(base + ".safetensors", {n: np.array(t) for n, t in tensors.items()},
                            spec)
        written.append(base + ".safetensors")
    if base and os.path.exists(base + ".onnx"):
        try:
            import onnx
        except ImportError:
            onnx = None
            L.log("warning: no onnx module: %s.onnx keeps its old spec metadata" % base)
        if onnx is not None:
            m = onnx.load(base + ".onnx")
            for entry in m.metadata_props:
                if entry.key == "opecom_spec":
                    entry.value = L.spec_text(spec)
            onnx.save(m, base + ".onnx")
            written.append(base + ".onnx")
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--add-to", metavar="NAME.spec.json", required=True,
                    help="spec to add the baseline to (with NAME.safetensors and NAME.onnx)")
    ap.add_argument("--csv", required=True, help="the CSV the model was trained on")
    ap.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                    help="medoids in the baseline (default %(default)s)")
    a = ap.parse_args(argv)
    if not 1 <= a.rows <= 1024:
        ap.error("--rows must be in 1..1024")
    try:
        add_to(a.add_to, a.csv, a.rows)
    except L.DataError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
