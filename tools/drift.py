#!/usr/bin/python3
"""The drift reference of a libopecom model: training distributions to compare live rows with.

A server bins every row it scores (opecom_drift_bin) and compares the counts
with what the model saw in training through the population stability index
(opecom_drift_psi). This module computes that reference on the TRAINING rows
the model was fitted on, as the spec's "drift" key (docs/model-format.md 2.5):

  numeric feature  10 quantile bins: the inner edges are the deciles taken as
                   observed values (edge j is the smallest training value with
                   at least j/10 of the rows at or below it), repeated edges
                   merged (a heavy tie such as PageValues = 0 becomes one bin
                   holding more than 10%) and an edge equal to the maximum
                   dropped (it would leave an empty top bin). A value x goes to
                   the first bin whose edge is >= x ("x <= edge goes left").
  categorical      the share of each category, in the feature's order, then
                   the share of "other" values (0 on the training rows, whose
                   categories the feature was fitted on).
  score            the same deciles of the model's probability on the rows.

Each fraction is the share of training rows the bin rule puts in the bin, so
the library bins live rows exactly as the reference was made.

Used by tools/train_tabm.py (drift_reference) and, to add a reference to an
already trained model without retraining, from the command line:

  /usr/bin/python3 tools/drift.py --add-to models/shoppers-tabm-k4.spec.json \\
      --csv ../shared/data/online_shoppers_intention.csv

That recomputes the training split from the spec's "training" metadata (as
tools/baseline.py does; the preprocessing refitted on it must equal the
spec's), scores the rows with the weights in NAME.npz, and writes the "drift"
key into NAME.spec.json and into the spec embedded in NAME.safetensors
(tensors untouched) and NAME.onnx when present. Then convert again:
build/opecom-convert --weights NAME.npz --spec NAME.spec.json -o NAME.opm.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tabm_lib as L  # noqa: E402

N_BINS = 10


def quantile_edges(values, n_bins=N_BINS):
    """Inner bin edges of a column: its j/n_bins quantiles (j = 1 .. n_bins-1)
    as observed values, repeated ones merged, any at the maximum dropped."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    edges = []
    for j in range(1, n_bins):
        e = float(x[-(-j * n // n_bins) - 1])        # x[ceil(j n / n_bins) - 1]
        if e < x[-1] and (not edges or e > edges[-1]):
            edges.append(e)
    return edges


def bin_index(edges, values):
    """The library's rule: the first bin whose edge is >= x (x <= edge goes
    left), i.e. the number of edges below x."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64),
                           np.asarray(values, dtype=np.float64), side="left")


def quantile_dim(values, n_bins=N_BINS):
    edges = quantile_edges(values, n_bins)
    counts = np.bincount(bin_index(edges, values), minlength=len(edges) + 1)
    return {"edges": edges, "fractions": [float(c) / len(values) for c in counts]}


def category_dim(categories, values):
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories) + 1, dtype=np.int64)
    for v in values:
        counts[index.get(v, len(categories))] += 1
    return {"fractions": [float(c) / len(values) for c in counts]}


def drift_reference(features, num, cats, probability, n_bins=N_BINS):
    """The spec's "drift" object from TRAINING rows: num float [n, n_numeric],
    cats list of tuples, probability the model's mean probability per row."""
    dims = []
    numeric = [f for f in features if f["type"] == "numeric"]
    categorical = [f for f in features if f["type"] == "categorical"]
    by_name = {}
    for j, f in enumerate(numeric):
        by_name[f["name"]] = quantile_dim(num[:, j], n_bins)
    for j, f in enumerate(categorical):
        by_name[f["name"]] = category_dim(f["categories"], [c[j] for c in cats])
    for f in features:
        dims.append(dict({"name": f["name"]}, **by_name[f["name"]]))
    return {
        "method": "%d quantile bins of the %d training rows per numeric feature and for the "
                  "model's probability (edge j: the smallest value with at least j/%d of the "
                  "rows at or below it; repeated edges merged, an edge at the maximum dropped; "
                  "x <= edge goes left); categorical: the share of each category, then of "
                  "other values" % (n_bins, len(cats), n_bins),
        "rows": len(cats),
        "features": dims,
        "score": quantile_dim(np.asarray(probability, dtype=np.float64), n_bins),
    }


def psi(expected, counts, eps=1e-4):
    """PSI as opecom_drift_psi computes it (for checks and reports)."""
    a = np.asarray(counts, dtype=np.float64)
    a = np.maximum(a / a.sum(), eps)
    e = np.maximum(np.asarray(expected, dtype=np.float64), eps)
    return float(((a - e) * np.log(a / e)).sum())


def add_to(spec_path, csv_path):
    import json
    import baseline as BL
    with open(spec_path) as f:
        spec = json.load(f)
    if not spec_path.endswith(".spec.json"):
        raise SystemExit("error: %s: expected NAME.spec.json beside NAME.npz" % spec_path)
    base = spec_path[:-len(".spec.json")]
    num, cats, y, seed = BL.training_rows(spec, csv_path)
    t = spec.get("training", {})
    refit = L.fit_features(num, cats, t.get("transform", "quantile_normal"), seed)
    if refit != spec["features"]:
        raise SystemExit("error: the preprocessing refitted on the recomputed training rows "
                         "differs from the spec's features: not the rows the model was "
                         "trained on")
    arch = spec["architecture"]
    z = np.load(base + ".npz")
    model = L.model_from_tensors({n: np.array(z[n]) for n in z.files}, arch["n_blocks"],
                                 arch["d_block"])
    X, _ = L.encode(spec["features"], num, cats)
    p = L.predict(model, X).mean(1)
    spec.pop("drift", None)
    spec["drift"] = drift_reference(spec["features"], num, cats, p)
    written = BL.rewrite_spec(spec_path, spec)
    L.log("drift: %d rows, %d bins; wrote %s"
          % (spec["drift"]["rows"],
             sum(len(d["fractions"]) for d in spec["drift"]["features"])
             + len(spec["drift"]["score"]["fractions"]), ", ".join(written)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--add-to", metavar="NAME.spec.json", required=True,
                    help="spec to add the reference to (with NAME.npz, NAME.safetensors and "
                         "NAME.onnx)")
    ap.add_argument("--csv", required=True, help="the CSV the model was trained on")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    try:
        add_to(a.add_to, a.csv)
    except L.DataError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
