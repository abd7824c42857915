#!/usr/bin/python3
"""Train the libopecom TabM conversion model and export it.

Reads the UCI "Online Shoppers Purchasing Intention" CSV (or generates a
synthetic one), holds out a stratified 15% validation part for early
stopping, member selection and the decision threshold, trains TabM on the
rest, and writes NAME.npz, NAME.safetensors, NAME.spec.json and NAME.onnx
into --out-dir, in the layout docs/model-card.md and DESIGN "Exported
tensors" describe. The spec carries the explanation baseline
(tools/baseline.py) and the drift reference (tools/drift.py), both computed
on the training rows. Run with /usr/bin/python3; deterministic per --seed.

Examples:
  /usr/bin/python3 tools/train_tabm.py --out-dir models --name shoppers-tabm-k4 \\
      --reference-out tests/data/reference.csv
  /usr/bin/python3 tools/train_tabm.py --synthetic 1500 --out-dir /tmp/m --name tiny \\
      --d-block 24 --n-blocks 2 --epochs 10 --lr 3e-3 --batch-size 64 \\
      --reference-out /tmp/m/tiny.reference.csv --reference-rows 1000   # ~3 s
  /usr/bin/python3 tools/train_tabm.py --write-synthetic /tmp/synthetic.csv --synthetic 1500
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tabm_lib as L  # noqa: E402
import baseline as BL  # noqa: E402
import drift as DR  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CSV = os.path.normpath(os.path.join(REPO, "..", "shared", "data",
                                            "online_shoppers_intention.csv"))

# Shipped configuration (chosen by tools/cv_report.py, see docs/model-card.md).
DEFAULTS = dict(k=4, select_from=0, n_blocks=3, d_block=256, dropout=0.1, lr=1e-3,
                weight_decay=3e-4, batch_size=128, epochs=200, patience=16,
                transform="quantile_normal", seed=0)


def parse_args(argv):
    d = DEFAULTS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", default=DEFAULT_CSV, help="UCI-format CSV (default: %(default)s)")
    ap.add_argument("--out-dir", help="directory for the exported files")
    ap.add_argument("--name", default="shoppers-tabm-k4", help="base name of the exports")
    ap.add_argument("--k", type=int, default=d["k"], help="members in the exported model")
    ap.add_argument("--select-from", type=int, default=d["select_from"], metavar="K",
                    help="train K members, keep the best --k greedily on validation (0: off)")
    ap.add_argument("--n-blocks", type=int, default=d["n_blocks"])
    ap.add_argument("--d-block", type=int, default=d["d_block"])
    ap.add_argument("--dropout", type=float, default=d["dropout"])
    ap.add_argument("--lr", type=float, default=d["lr"])
    ap.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    ap.add_argument("--batch-size", type=int, default=d["batch_size"])
    ap.add_argument("--epochs", type=int, default=d["epochs"], help="maximum epochs")
    ap.add_argument("--patience", type=int, default=d["patience"])
    ap.add_argument("--share-batches", action="store_true",
                    help="one batch for all members (default: a permutation per member)")
    ap.add_argument("--transform", default=d["transform"],
                    choices=["none", "log1p", "quantile_normal", "auto"],
                    help="numeric transform; auto trains log1p and quantile_normal and "
                         "keeps the better validation ROC-AUC")
    ap.add_argument("--seed", type=int, default=d["seed"])
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("--threshold-metric", default="f1", choices=["f1", "accuracy", "youden"])
    ap.add_argument("--synthetic", type=int, metavar="N",
                    help="use N synthetic rows with a planted signal instead of --csv")
    ap.add_argument("--synthetic-seed", type=int, default=1)
    ap.add_argument("--write-synthetic", metavar="PATH",
                    help="write the --synthetic rows (default 1000) as a UCI-format CSV and exit")
    ap.add_argument("--npz-deflate", action="store_true", help="also write NAME.deflate.npz")
    ap.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    ap.add_argument("--reference-out", metavar="PATH",
                    help="write synthetic reference rows with the model's outputs")
    ap.add_argument("--reference-rows", type=int, default=1200)
    ap.add_argument("--reference-seed", type=int, default=12345)
    ap.add_argument("--reference-from", metavar="MODEL.safetensors",
                    help="no training: write --reference-out for an exported model")
    ap.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    a = ap.parse_args(argv)
    if a.reference_from and not a.reference_out:
        ap.error("--reference-from needs --reference-out")
    if a.write_synthetic is None and a.out_dir is None and not a.reference_from:
        ap.error("--out-dir is required (or use --write-synthetic PATH or --reference-from)")
    if a.reference_out and a.reference_rows < 1000:
        ap.error("--reference-rows must be >= 1000")
    if a.select_from and a.select_from < a.k:
        ap.error("--select-from must be >= --k")
    if min(a.k, a.n_blocks, a.d_block, a.batch_size, a.epochs) < 1:
        ap.error("--k, --n-blocks, --d-block, --batch-size, --epochs must be >= 1")
    return a


def hyper_params(a):
    return {"k": a.k, "train_k": a.select_from or a.k, "n_blocks": a.n_blocks,
            "d_block": a.d_block, "dropout": a.dropout, "lr": a.lr,
            "weight_decay": a.weight_decay, "batch_size": a.batch_size,
            "epochs": a.epochs, "patience": a.patience,
            "share_batches": bool(a.share_batches)}


def load_data(a):
    if a.synthetic:
        num, cats, y = L.synthetic_rows(a.synthetic, a.synthetic_seed)
        text = L.rows_to_csv(num, cats, y).encode()
        import hashlib
        return num, cats, y, {"synthetic_rows": a.synthetic, "synthetic_seed": a.synthetic_seed,
                              "data_sha256": hashlib.sha256(text).hexdigest()}
    num, cats, y, sha = L.read_csv(a.csv)
    return num, cats, y, {"data": os.path.basename(a.csv), "data_sha256": sha}


def fit_one(transform, num, cats, y, tr, va, hp, a):
    feats = L.fit_features(num[tr], [cats[i] for i in tr], transform, a.seed)
    Xtr, _ = L.encode(feats, num[tr], [cats[i] for i in tr])
    Xva, _ = L.encode(feats, num[va], [cats[i] for i in va])
    L.log("transform %s: d_in %d, train %d rows, validation %d rows"
          % (transform, Xtr.shape[1], len(tr), len(va)), not a.quiet)
    model, tensors, info = L.fit_tabm(Xtr, y[tr], Xva, y[va], L.chunks_of(feats), hp,
                                      a.seed, verbose=not a.quiet)
    return feats, model, tensors, info, Xva


def check_exports(base, tensors, spec, model, feats, onnx=True):
    """Re-read every export and compare with what was trained."""
    z = np.load(base + ".npz")
    st, meta = L.read_safetensors(base + ".safetensors")
    for name, t in tensors.items():
        assert z[name].dtype == np.float32 and np.array_equal(z[name], t), name
        assert np.array_equal(st[name], t), name
    assert set(z.files) == set(tensors) == set(st)
    assert json.loads(meta["opecom_spec"]) == spec
    with open(base + ".spec.json") as f:
        assert json.load(f) == spec
    num, cats = L.reference_rows(feats, 1000, 7)
    X, _ = L.encode(feats, num, cats)
    again = L.model_from_tensors({n: np.array(a) for n, a in st.items()},
                                 spec["architecture"]["n_blocks"], spec["architecture"]["d_block"])
    P = L.predict(model, X)
    assert np.array_equal(P, L.predict(again, X))
    if onnx:
        prob, members = L.run_onnx(base + ".onnx", X)
        assert members.shape == P.shape and prob.shape == (len(X),)
        assert np.abs(members - P).max() < 1e-5 and np.abs(prob - P.mean(1)).max() < 1e-5


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(1)
    if a.write_synthetic:
        num, cats, y = L.synthetic_rows(a.synthetic or 1000, a.synthetic_seed)
        with open(a.write_synthetic, "w", newline="") as f:
            f.write(L.rows_to_csv(num, cats, y))
        L.log("wrote %d synthetic rows to %s" % (len(y), a.write_synthetic))
        return 0
    if a.reference_from:
        tensors, meta = L.read_safetensors(a.reference_from)
        spec = json.loads(meta["opecom_spec"])
        arch = spec["architecture"]
        model = L.model_from_tensors({n: np.array(t) for n, t in tensors.items()},
                                     arch["n_blocks"], arch["d_block"])
        L.write_reference(a.reference_out, model, spec["features"], a.reference_rows,
                          a.reference_seed)
        L.log("wrote %d reference rows to %s" % (a.reference_rows, a.reference_out))
        return 0
    try:
        num, cats, y, data_info = load_data(a)
    except L.DataError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:
        print("error: cannot read %s: %s" % (e.filename, e.strerror), file=sys.stderr)
        return 1
    idx = np.arange(len(y))
    tr, va = train_test_split(idx, test_size=a.val_fraction, stratify=y, random_state=a.seed)
    tr, va = np.sort(tr), np.sort(va)
    hp = hyper_params(a)
    transforms = ["log1p", "quantile_normal"] if a.transform == "auto" else [a.transform]
    runs = [fit_one(t, num, cats, y, tr, va, hp, a) for t in transforms]
    best = max(range(len(runs)), key=lambda i: (runs[i][3]["val_auc_final"], -i))
    feats, model, tensors, info, Xva = runs[best]
    p_va = L.predict(model, Xva).mean(1)
    threshold = L.choose_threshold(p_va, y[va], a.threshold_metric)
    val_metrics = L.metrics(p_va, y[va], threshold)
    hp_out = {key: v for key, v in hp.items() if key not in ("k", "train_k")}
    training = dict(data_info)
    training.update({
        "rows": int(len(y)), "positives": int(y.sum()),
        "split": "stratified train/validation split of all rows (sklearn train_test_split, "
                 "test_size=%g, random_state=%d): %d training rows, %d validation rows; "
                 "preprocessing fitted on the training rows; early stopping, member "
                 "selection and threshold on the validation rows"
                 % (a.val_fraction, a.seed, len(tr), len(va)),
        "validation_metrics": val_metrics,
        "threshold_metric": a.threshold_metric,
        "hyper_parameters": hp_out,
        "transform": transforms[best],
        "transforms_tried": {t: runs[i][3]["val_auc_final"] for i, t in enumerate(transforms)},
        "seed": a.seed, "select_from": a.select_from, "members_kept": info["members"],
        "best_epoch": info["best_epoch"], "epochs_run": info["epochs_run"],
        "trainer": "tools/train_tabm.py (PyTorch %s)" % torch.__version__.split("+")[0],
    })
    cats_tr = [cats[i] for i in tr]
    p_tr = L.predict(model, L.encode(feats, num[tr], cats_tr)[0]).mean(1)
    spec = {"format": "opecom-spec/1", "task": "binary",
            "architecture": {"type": "tabm", "k": a.k, "n_blocks": a.n_blocks,
                             "d_block": a.d_block, "activation": "relu"},
            "features": feats, "threshold": threshold, "training": training,
            "baseline": BL.choose_baseline(feats, num[tr], cats_tr, y[tr], seed=a.seed),
            "drift": DR.drift_reference(feats, num[tr], cats_tr, p_tr)}
    os.makedirs(a.out_dir, exist_ok=True)
    base = os.path.join(a.out_dir, a.name)
    np.savez(base + ".npz", **tensors)
    if a.npz_deflate:
        np.savez_compressed(base + ".deflate.npz", **tensors)
    L.write_safetensors(base + ".safetensors", tensors, spec)
    with open(base + ".spec.json", "w") as f:
        f.write(L.spec_text(spec))
    if not a.no_onnx:
        L.write_onnx(base + ".onnx", model, L.d_in_of(feats), spec)
    check_exports(base, tensors, spec, model, feats, not a.no_onnx)
    if a.reference_out:
        L.write_reference(a.reference_out, model, feats, a.reference_rows, a.reference_seed)
    L.log("validation: " + ", ".join("%s %.4f" % kv for kv in val_metrics.items())
          + "; threshold %.4f; wrote %s.*" % (threshold, base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
