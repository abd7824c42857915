#!/usr/bin/python3
"""The accuracy protocol behind docs/model-card.md.

Stratified 5-fold cross-validation (StratifiedKFold(5, shuffle=True,
random_state=0)) on the UCI CSV. Inside each fold, a stratified 15% of the
training part (train_test_split, random_state=0) is the validation set used
for early stopping, member selection, hyper-parameter choice (XGBoost,
logistic regression) and the decision threshold (max F1); preprocessing is
fitted on the remaining 85%. Every model is scored on the held-out fold.

Results are cached per (model, fold) in OUT/results.json, so an interrupted
run resumes; OUT/cv-report.md gets the tables. Examples:
  /usr/bin/python3 tools/cv_report.py --out build/cv                 # every entry
  /usr/bin/python3 tools/cv_report.py --out build/cv --models card   # the card's table
  /usr/bin/python3 tools/cv_report.py --out build/cv --confidence    # per-quartile table

--confidence retrains the shipped TabM entry on the same five folds, keeps
every held-out row's member probabilities (OUT/members-tabm-qn.npz) and
writes OUT/confidence.md: accuracy, ROC-AUC, calibration and log loss per
quartile of the library's confidence figure and of the raw spread.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tabm_lib as L  # noqa: E402
from train_tabm import DEFAULT_CSV  # noqa: E402

BASE = dict(k=4, train_k=4, n_blocks=3, d_block=256, dropout=0.1, lr=1e-3,
            weight_decay=3e-4, batch_size=128, epochs=100, patience=16,
            share_batches=False, transform="log1p")


def cfg(**kw):
    c = dict(BASE)
    c.update(kw)
    return c


# Every TabM configuration that was tried, in the order it was tried. Epochs
# are capped at 100 (patience 16); all stopped earlier than the cap.
TABM = {
    "tabm-base": cfg(),
    "tabm-drop0.3": cfg(dropout=0.3),
    "tabm-qn": cfg(transform="quantile_normal"),
    "tabm-qn-lr5e-4": cfg(transform="quantile_normal", lr=5e-4),
    "tabm-qn-drop0.2": cfg(transform="quantile_normal", dropout=0.2),
    "tabm-qn-4x256": cfg(transform="quantile_normal", n_blocks=4),
    "tabm-qn-k32sel4": cfg(transform="quantile_normal", train_k=32),
    "tabm-qn-3x512": cfg(transform="quantile_normal", d_block=512),
    "tabm-qn-2x256": cfg(transform="quantile_normal", n_blocks=2),
    "tabm-qn-3x128": cfg(transform="quantile_normal", d_block=128),
    "tabm-qn-2x128": cfg(transform="quantile_normal", n_blocks=2, d_block=128),
}
CARD = ["xgboost", "logreg"]           # plus the shipped TabM entry, see --models card
SHIPPED = "tabm-qn"


def folds(y):
    skf = StratifiedKFold(5, shuffle=True, random_state=0)
    for f, (train, test) in enumerate(skf.split(np.zeros(len(y)), y)):
        tr, va = train_test_split(train, test_size=0.15, stratify=y[train], random_state=0)
        yield f, np.sort(tr), np.sort(va), test


def encoded(num, cats, transform, rows_fit, parts):
    feats = L.fit_features(num[rows_fit], [cats[i] for i in rows_fit], transform, 0)
    return feats, [L.encode(feats, num[p], [cats[i] for i in p])[0] for p in parts]


def run_tabm(c, num, cats, y, tr, va, te):
    feats, (Xtr, Xva, Xte) = encoded(num, cats, c["transform"], tr, (tr, va, te))
    model, _, info = L.fit_tabm(Xtr, y[tr], Xva, y[va], L.chunks_of(feats), c, 0, verbose=False)
    p_va, p_te = L.predict(model, Xva).mean(1), L.predict(model, Xte).mean(1)
    extra = {"best_epoch": info["best_epoch"], "val_auc": info["val_auc_final"]}
    if info["members"] is not None:
        extra["members"] = info["members"]
        extra["all_members_test_auc"] = float(roc_auc_score(
            y[te], L.predict(info["trained_model"], Xte).mean(1)))
    return p_va, p_te, extra


def run_xgboost(num, cats, y, tr, va, te):
    import xgboost as xgb
    _, (Xtr, Xva, Xte) = encoded(num, cats, "none", tr, (tr, va, te))
    best = None
    for depth in (2, 3, 4, 6):
        for mcw in (1, 5):
            m = xgb.XGBClassifier(n_estimators=2000, learning_rate=0.03, max_depth=depth,
                                  min_child_weight=mcw, subsample=0.8, colsample_bytree=0.8,
                                  tree_method="hist", n_jobs=1, random_state=0,
                                  eval_metric="auc", early_stopping_rounds=100)
            m.fit(Xtr, y[tr], eval_set=[(Xva, y[va])], verbose=False)
            auc = roc_auc_score(y[va], m.predict_proba(Xva)[:, 1])
            if best is None or auc > best[0]:
                best = (auc, m, {"max_depth": depth, "min_child_weight": mcw,
                                 "n_trees": int(m.best_iteration) + 1})
    auc, m, params = best
    return m.predict_proba(Xva)[:, 1], m.predict_proba(Xte)[:, 1], dict(params, val_auc=auc)


def run_logreg(num, cats, y, tr, va, te):
    transform = TABM[SHIPPED]["transform"]            # the shipped model's preprocessing
    _, (Xtr, Xva, Xte) = encoded(num, cats, transform, tr, (tr, va, te))
    best = None
    for C in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0):
        m = LogisticRegression(C=C, max_iter=5000).fit(Xtr, y[tr])
        auc = roc_auc_score(y[va], m.predict_proba(Xva)[:, 1])
        if best is None or auc > best[0]:
            best = (auc, m, C)
    auc, m, C = best
    return (m.predict_proba(Xva)[:, 1], m.predict_proba(Xte)[:, 1],
            {"C": C, "transform": transform, "val_auc": auc})


def evaluate(name, num, cats, y, cache, save):
    for f, tr, va, te in folds(y):
        key = "%s/%d" % (name, f)
        if key in cache:
            continue
        t0 = time.time()
        if name == "xgboost":
            p_va, p_te, extra = run_xgboost(num, cats, y, tr, va, te)
        elif name == "logreg":
            p_va, p_te, extra = run_logreg(num, cats, y, tr, va, te)
        else:
            p_va, p_te, extra = run_tabm(TABM[name], num, cats, y, tr, va, te)
        t = L.choose_threshold(np.asarray(p_va, dtype=np.float64), y[va], "f1")
        res = L.metrics(p_te, y[te], t)
        res.update(extra, threshold=t, seconds=round(time.time() - t0, 1))
        cache[key] = res
        save()
        L.log("%-24s fold %d  roc_auc %.4f  pr_auc %.4f  (%.0fs)"
              % (name, f, res["roc_auc"], res["pr_auc"], res["seconds"]))


def confidence_of(members):
    """The library's confidence (src/predict.c finish_row) from member
    probabilities [n, k]: 1 - spread / sqrt(p (1 - p)), p the members' mean,
    spread their population std; 1 when p (1 - p) is 0."""
    m = np.asarray(members, dtype=np.float64)
    p = m.mean(1)
    var = ((m - p[:, None]) ** 2).mean(1)
    total = p * (1.0 - p)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(total > 0, 1.0 - np.sqrt(var / np.where(total > 0, total, 1.0)), 1.0)
    return np.clip(c, 0.0, 1.0), np.sqrt(var), p


def held_out_members(num, cats, y, out):
    """Member probabilities of every row on the fold that held it out, with
    that fold's threshold; cached in OUT/members-<SHIPPED>.npz."""
    path = os.path.join(out, "members-%s.npz" % SHIPPED)
    if os.path.exists(path):
        z = np.load(path)
        if len(z["members"]) == len(y):
            return z["members"], z["threshold"]
    k = TABM[SHIPPED]["k"]
    members = np.full((len(y), k), np.nan, dtype=np.float32)
    threshold = np.full(len(y), np.nan)
    for f, tr, va, te in folds(y):
        t0 = time.time()
        c = TABM[SHIPPED]
        feats, (Xtr, Xva, Xte) = encoded(num, cats, c["transform"], tr, (tr, va, te))
        model, _, _ = L.fit_tabm(Xtr, y[tr], Xva, y[va], L.chunks_of(feats), c, 0, verbose=False)
        members[te] = L.predict(model, Xte)
        t = L.choose_threshold(L.predict(model, Xva).mean(1).astype(np.float64), y[va], "f1")
        threshold[te] = t
        L.log("%s fold %d  members kept  roc_auc %.4f  (%.0fs)" % (
            SHIPPED, f, roc_auc_score(y[te], members[te].mean(1)), time.time() - t0))
    np.savez(path + ".tmp.npz", members=members, threshold=threshold)
    os.replace(path + ".tmp.npz", path)
    return members, threshold


def confidence_report(members, threshold, y):
    conf, spread, p = confidence_of(members)
    p32 = members.mean(1).astype(np.float64)
    out = ["## Confidence quartiles (held-out folds, %s, %d rows)" % (SHIPPED, len(y)), ""]
    for title, score, low_first in (("confidence", conf, True), ("spread", spread, False)):
        order = np.argsort(score if low_first else -score, kind="stable")
        groups = np.array_split(order, 4)
        out += ["### by %s quartile (Q1 = least confident)" % title, "",
                "| quartile | %s range | count | positives | accuracy | ROC-AUC | mean predicted "
                "| observed rate | calibration gap | log loss |" % title,
                "|---|---|---|---|---|---|---|---|---|---|"]
        for qi, g in enumerate(groups):
            yy, pp = y[g], p32[g]
            acc = float(np.mean((pp >= threshold[g]) == (yy == 1)))
            auc = roc_auc_score(yy, pp) if 0 < yy.sum() < len(yy) else float("nan")
            ll = float(np.mean(-(yy * np.log(np.clip(pp, 1e-7, 1)) +
                                 (1 - yy) * np.log(np.clip(1 - pp, 1e-7, 1)))))
            out.append("| Q%d | %.4f – %.4f | %d | %d | %.4f | %.4f | %.4f | %.4f | %+.4f | %.4f |" % (
                qi + 1, score[g].min(), score[g].max(), len(g), int(yy.sum()), acc, auc,
                pp.mean(), yy.mean(), pp.mean() - yy.mean(), ll))
        out.append("")
    # Confidence falls where scores are middling; does it say more than the
    # score itself? Within fifths of the predicted probability, compare the
    # less and the more confident half.
    out += ["### within fifths of the predicted probability: less vs more confident half", "",
            "| predicted probability | count | accuracy, less / more confident half "
            "| log loss, less / more | calibration gap, less / more |",
            "|---|---|---|---|---|"]
    for g in np.array_split(np.argsort(p32, kind="stable"), 5):
        half = np.array_split(g[np.argsort(conf[g], kind="stable")], 2)
        cells = []
        for fn in (lambda h: np.mean((p32[h] >= threshold[h]) == (y[h] == 1)),
                   lambda h: np.mean(-(y[h] * np.log(np.clip(p32[h], 1e-7, 1)) +
                                       (1 - y[h]) * np.log(np.clip(1 - p32[h], 1e-7, 1)))),
                   lambda h: p32[h].mean() - y[h].mean()):
            cells.append("%.4f / %.4f" % (fn(half[0]), fn(half[1])))
        out.append("| %.4f – %.4f | %d | %s |" % (p32[g].min(), p32[g].max(), len(g),
                                                  " | ".join(cells)))
    out.append("")
    rho = np.corrcoef(np.argsort(np.argsort(conf)), np.argsort(np.argsort(p32)))[0, 1]
    wrong = (p32 >= threshold) != (y == 1)
    out += ["Spearman correlation of confidence with the predicted probability: %.3f. "
            "Mean confidence of wrong predictions %.4f, of right ones %.4f." % (
                rho, conf[wrong].mean(), conf[~wrong].mean()), ""]
    return "\n".join(out)


def summary(cache, name, key):
    v = [cache["%s/%d" % (name, f)][key] for f in range(5)
         if key in cache.get("%s/%d" % (name, f), {})]
    return (float(np.mean(v)), float(np.std(v)), len(v)) if v else None


def describe(c):
    s = "%dx%d, dropout %g, lr %g, wd %g, %s" % (c["n_blocks"], c["d_block"], c["dropout"],
                                                c["lr"], c["weight_decay"], c["transform"])
    if c["train_k"] != c["k"]:
        s += ", k=%d -> best %d" % (c["train_k"], c["k"])
    if c["share_batches"]:
        s += ", shared batches"
    return s


def report(cache):
    cols = [("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("log_loss", "log loss"),
            ("accuracy", "accuracy"), ("f1", "F1"), ("ece", "ECE")]
    out = ["## Held-out folds (mean ± std over 5 folds)", "",
           "| model | " + " | ".join(c[1] for c in cols) + " |",
           "|---" * (len(cols) + 1) + "|"]
    for name, label in ((SHIPPED, "TabM k=4 (%s)" % SHIPPED), ("xgboost", "XGBoost"),
                        ("logreg", "logistic regression")):
        if summary(cache, name, "roc_auc"):
            out.append("| %s | " % label + " | ".join(
                "%.4f ± %.4f" % summary(cache, name, k)[:2] for k, _ in cols) + " |")
    names = [n for n in (SHIPPED, "xgboost", "logreg") if summary(cache, n, "roc_auc")]
    out += ["", "## ROC-AUC per fold", "", "| fold | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|"]
    for f in range(5):
        out.append("| %d | " % f + " | ".join(
            "%.4f" % cache[k]["roc_auc"] if k in cache else "-"
            for k in ("%s/%d" % (n, f) for n in names)) + " |")
    out += ["", "## TabM configurations tried", "",
            "| name | configuration | folds | ROC-AUC | PR-AUC | log loss | best epoch | s/fold |",
            "|---|---|---|---|---|---|---|---|"]
    for name, c in TABM.items():
        s = summary(cache, name, "roc_auc")
        if not s:
            continue
        out.append("| %s | %s | %d | %.4f ± %.4f | %.4f | %.4f | %.1f | %.0f |" % (
            name, describe(c), s[2], s[0], s[1], summary(cache, name, "pr_auc")[0],
            summary(cache, name, "log_loss")[0], summary(cache, name, "best_epoch")[0],
            summary(cache, name, "seconds")[0]))
        if summary(cache, name, "all_members_test_auc"):
            out.append("| (%s, all %d members) | | %d | %.4f | | | | |" % (
                name, c["train_k"], s[2], summary(cache, name, "all_members_test_auc")[0]))
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", default=DEFAULT_CSV)
    ap.add_argument("--out", default="build/cv", help="directory for results.json, cv-report.md")
    ap.add_argument("--models", default="all",
                    help="comma list of: xgboost, logreg, %s; 'card' = the card's three "
                         "models; 'all' = everything" % ", ".join(TABM))
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--confidence", action="store_true",
                    help="only the confidence-quartile table of %s (OUT/confidence.md)" % SHIPPED)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.models == "all":
        names = CARD + list(TABM)
    elif a.models == "card":
        names = [SHIPPED] + CARD
    else:
        names = a.models.split(",")
    for n in names:
        if n not in CARD and n not in TABM:
            ap.error("unknown model " + n)
    try:
        num, cats, y, sha = L.read_csv(a.csv)
    except L.DataError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:
        print("error: cannot read %s: %s" % (e.filename, e.strerror), file=sys.stderr)
        return 1
    os.makedirs(a.out, exist_ok=True)
    if a.confidence:
        members, threshold = held_out_members(num, cats, y, a.out)
        text = confidence_report(members, threshold, y)
        with open(os.path.join(a.out, "confidence.md"), "w") as f:
            f.write(text)
        print(text)
        return 0
    path = os.path.join(a.out, "results.json")
    cache = {}
    if os.path.exists(path):
        with open(path) as f:
            cache = json.load(f)
        if cache.get("data_sha256") != sha:
            cache = {}
    cache["data_sha256"] = sha

    def save():
        with open(path + ".tmp", "w") as f:
            json.dump(cache, f, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)

    if not a.report_only:
        for n in names:
            evaluate(n, num, cats, y, cache, save)
    text = report(cache)
    with open(os.path.join(a.out, "cv-report.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
