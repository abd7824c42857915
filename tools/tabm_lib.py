"""Shared code for the libopecom TabM trainer (tools/train_tabm.py) and the
cross-validation protocol (tools/cv_report.py).

Sections: schema and CSV reading, preprocessing (the exact float64 -> float32
encoding the C library reproduces), synthetic data, the TabM model, training,
metrics, and the exporters (npz, safetensors, spec JSON, ONNX, reference CSV).
Everything is deterministic for a given seed when torch runs on one thread.
"""

import copy
import csv
import hashlib
import io
import json
import math
import re
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.special import ndtri
from sklearn.metrics import (accuracy_score, average_precision_score, f1_score,
                             log_loss, roc_auc_score)

# ---------------------------------------------------------------- schema --

NUMERIC = ["Administrative", "Administrative_Duration", "Informational",
           "Informational_Duration", "ProductRelated", "ProductRelated_Duration",
           "BounceRates", "ExitRates", "PageValues", "SpecialDay"]
CATEGORICAL = ["Month", "OperatingSystems", "Browser", "Region", "TrafficType",
               "VisitorType", "Weekend"]
TARGET = "Revenue"
COLUMNS = NUMERIC + CATEGORICAL + [TARGET]      # UCI file order
BOUNDED = {"BounceRates", "ExitRates", "SpecialDay"}   # valid range [0, 1]
BOOLEAN = {"Weekend", TARGET}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class DataError(Exception):
    """A problem with the input CSV; the message names line and column."""


def numeric_bounds(name):
    return (0, 1) if name in BOUNDED else (0, None)


def category_sort_key(values):
    """Deterministic category order: all-integer codes ascending by value,
    anything else by plain code-point (ASCII) order."""
    if all(re.fullmatch(r"[+-]?\d+", v) for v in values):
        return sorted(values, key=lambda v: (int(v), v))
    return sorted(values)


def _parse_number(text, line, col):
    if not _NUMBER.match(text):
        raise DataError("line %d, column '%s': '%s' is not a number" % (line, col, text))
    x = float(text)
    if not math.isfinite(x):
        raise DataError("line %d, column '%s': '%s' is not finite" % (line, col, text))
    lo, hi = numeric_bounds(col)
    if x < lo or (hi is not None and x > hi):
        rng = "[%g, %g]" % (lo, hi) if hi is not None else ">= %g" % lo
        raise DataError("line %d, column '%s': %s is outside the valid range %s"
                        % (line, col, text, rng))
    return x


def read_rows(text, source="<csv>"):
    """Parse UCI-format CSV text. Returns (num float64 [n,10], cats list of
    tuples of 7 strings, y int array [n]). The header must hold exactly the 18
    UCI columns, in any order; a missing, duplicated or extra column is an error."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError("%s: empty file, expected a header line" % source)
    header = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in header]
    extra = [h for h in header if h not in COLUMNS]
    dups = sorted({h for h in header if header.count(h) > 1})
    if missing or extra or dups:
        parts = []
        if missing: parts.append("missing column(s) " + ", ".join(missing))
        if extra: parts.append("unexpected column(s) " + ", ".join(repr(e) for e in extra))
        if dups: parts.append("duplicated column(s) " + ", ".join(dups))
        raise DataError("line 1 (header): " + "; ".join(parts))
    pos = {c: header.index(c) for c in COLUMNS}
    num, cats, ys = [], [], []
    for lineno, row in enumerate(reader, start=2):
        if len(row) != len(COLUMNS):
            raise DataError("line %d: expected %d fields, got %d"
                            % (lineno, len(COLUMNS), len(row)))
        num.append([_parse_number(row[pos[c]], lineno, c) for c in NUMERIC])
        crow = []
        for c in CATEGORICAL:
            v = row[pos[c]]
            if v == "" or v != v.strip():
                raise DataError("line %d, column '%s': empty or padded value '%s'" % (lineno, c, v))
            if c in BOOLEAN and v not in ("TRUE", "FALSE"):
                raise DataError("line %d, column '%s': '%s' is not TRUE or FALSE" % (lineno, c, v))
            crow.append(v)
        cats.append(tuple(crow))
        t = row[pos[TARGET]]
        if t not in ("TRUE", "FALSE"):
            raise DataError("line %d, column '%s': '%s' is not TRUE or FALSE" % (lineno, TARGET, t))
        ys.append(1 if t == "TRUE" else 0)
    if not ys:
        raise DataError("%s: no data rows" % source)
    y = np.array(ys, dtype=np.int64)
    if y.min() == y.max():
        raise DataError("%s: column '%s' has a single class" % (source, TARGET))
    return np.array(num, dtype=np.float64), cats, y


def read_csv(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError("%s: not UTF-8 text (%s)" % (path, e))
    num, cats, y = read_rows(text, path)
    return num, cats, y, hashlib.sha256(raw).hexdigest()


# --------------------------------------------------------- preprocessing --

QT_BOUND = 1e-7


def np_interp(x, xp, fp):
    """numpy.interp spelled out (the C port follows this): for xp[0] <= x <
    xp[-1], j = the LARGEST index with xp[j] <= x; if xp[j] == x the result
    is fp[j], else linear between j and j+1. x < xp[0] -> fp[0]; x >= xp[-1] -> fp[-1]."""
    x = np.asarray(x, dtype=np.float64)
    j = np.searchsorted(xp, x, side="right") - 1
    jc = np.clip(j, 0, len(xp) - 2)
    x0, x1, f0, f1 = xp[jc], xp[jc + 1], fp[jc], fp[jc + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(x == x0, f0, f0 + (f1 - f0) / (x1 - x0) * (x - x0))
    out = np.where(j < 0, fp[0], out)
    out = np.where(x >= xp[-1], fp[-1], out)
    return out


def quantile_normal(x, q):
    """sklearn QuantileTransformer(output_distribution='normal')._transform_col,
    computed from the exported quantile grid q (non-decreasing, len >= 2)."""
    q = np.asarray(q, dtype=np.float64)
    refs = np.linspace(0.0, 1.0, len(q))
    x = np.asarray(x, dtype=np.float64)
    u = 0.5 * (np_interp(x, q, refs) - np_interp(-x, -q[::-1], -refs[::-1]))
    u = np.where(x + QT_BOUND > q[-1], 1.0, u)
    u = np.where(x - QT_BOUND < q[0], 0.0, u)          # lower bound wins
    eps = np.spacing(1)
    with np.errstate(divide="ignore"):
        z = ndtri(u)
    return np.clip(z, ndtri(QT_BOUND - eps), ndtri(1 - (QT_BOUND - eps)))


def fit_quantiles(col, seed):
    """Quantile grid as in the TabM paper: n = max(min(N//30, 1000), 10),
    fitted by sklearn on the column plus N(0, 1e-5) noise (breaks ties)."""
    from sklearn.preprocessing import QuantileTransformer
    n_q = max(min(len(col) // 30, 1000), 10)
    rng = np.random.RandomState(seed)
    noisy = col + rng.normal(0.0, 1e-5, size=col.shape)
    qt = QuantileTransformer(n_quantiles=n_q, output_distribution="normal",
                             subsample=10 ** 9, random_state=seed)
    qt.fit(noisy.reshape(-1, 1))
    return [float(v) for v in qt.quantiles_[:, 0]]


def transform_plan(name):
    """'none' | 'log1p' | 'quantile_normal' -> per-feature transforms. log1p
    applies to the unbounded columns only; rates and SpecialDay stay 'none'."""
    def plan(f):
        if name == "none":
            return "none"
        if name == "log1p":
            return "none" if f in BOUNDED else "log1p"
        if name == "quantile_normal":
            return "quantile_normal"
        raise ValueError("unknown transform " + name)
    return plan


def apply_transform(feat, x):
    t = feat["transform"]
    if t == "none":
        return np.asarray(x, dtype=np.float64)
    if t == "log1p":
        return np.log1p(np.asarray(x, dtype=np.float64))
    if t == "quantile_normal":
        return quantile_normal(x, feat["quantiles"])
    raise ValueError(t)


def fit_features(num, cats, transform, seed=0):
    """Build the spec 'features' list from TRAINING rows only."""
    plan = transform_plan(transform)
    feats = []
    for j, name in enumerate(NUMERIC):
        f = {"name": name, "type": "numeric", "transform": plan(name)}
        if f["transform"] == "quantile_normal":
            f["quantiles"] = fit_quantiles(num[:, j], seed + j)
        z = apply_transform(f, num[:, j])
        mean, std = float(z.mean()), float(z.std())
        f["mean"], f["std"] = mean, (std if std > 0 else 1.0)
        lo, hi = numeric_bounds(name)
        f["min"] = lo
        if hi is not None:
            f["max"] = hi
        if "quantiles" in f:                           # keep key order tidy
            f["quantiles"] = f.pop("quantiles")
        feats.append(f)
    for j, name in enumerate(CATEGORICAL):
        values = category_sort_key(sorted({c[j] for c in cats}))
        feats.append({"name": name, "type": "categorical", "categories": values})
    return feats


def d_in_of(features):
    return sum(1 if f["type"] == "numeric" else len(f["categories"]) for f in features)


def chunks_of(features):
    return [1 if f["type"] == "numeric" else len(f["categories"]) for f in features]


def encode(features, num, cats):
    """Raw rows -> float32 [n, d_in] and a per-row 'unknown category' flag.
    Numerics: transform and standardise in float64, then cast to float32."""
    n = len(cats)
    cols, unknown = [], np.zeros(n, dtype=bool)
    numeric = [f for f in features if f["type"] == "numeric"]
    for j, f in enumerate(numeric):
        z = (apply_transform(f, num[:, j]) - f["mean"]) / f["std"]
        cols.append(z.astype(np.float32).reshape(-1, 1))
    for j, f in enumerate(f for f in features if f["type"] == "categorical"):
        index = {v: i for i, v in enumerate(f["categories"])}
        block = np.zeros((n, len(index)), dtype=np.float32)
        for r, c in enumerate(cats):
            i = index.get(c[j])
            if i is None:
                unknown[r] = True
            else:
                block[r, i] = 1.0
        cols.append(block)
    return np.concatenate(cols, axis=1), unknown


# ------------------------------------------------------------ synthetic --

UCI_MONTHS = ["Feb", "Mar", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
VISITORS = ["Returning_Visitor", "New_Visitor", "Other"]
CODE_RANGES = {"OperatingSystems": 8, "Browser": 13, "Region": 9, "TrafficType": 20}


def fmt_num(x):
    """Repr-exact text: integers without a fraction, otherwise Python repr
    (shortest round-trip form, parsed back to the same double by strtod)."""
    x = float(x)
    if x == int(x) and abs(x) < 1e15:
        return "%d" % int(x)
    return repr(x)


def synthetic_rows(n, seed):
    """n rows in the UCI schema with a planted signal (PageValues, ExitRates,
    Month=Nov, New_Visitor, ProductRelated) so a short run learns something."""
    rng = np.random.RandomState(seed)
    adm = rng.poisson(2.0, n) * (rng.rand(n) < 0.6)
    inf = rng.poisson(0.6, n) * (rng.rand(n) < 0.4)
    prod = 1 + rng.negative_binomial(2, 0.07, n)
    adm_d = np.round(adm * rng.exponential(35.0, n), 4)
    inf_d = np.round(inf * rng.exponential(50.0, n), 4)
    prod_d = np.round(prod * rng.exponential(38.0, n), 4)
    bounce = np.round(np.clip(rng.exponential(0.02, n), 0, 0.2) * (rng.rand(n) < 0.6), 6)
    exit_ = np.round(np.clip(bounce + rng.exponential(0.025, n), 0, 0.2), 6)
    pv = np.round(rng.exponential(25.0, n) * (rng.rand(n) < 0.25), 6)
    special = rng.choice([0, 0, 0, 0, 0, 0, 0.2, 0.4, 0.6, 0.8, 1.0], n)
    month = rng.choice(UCI_MONTHS, n, p=[.02, .15, .27, .03, .04, .04, .04, .04, .24, .13])
    codes = {c: rng.randint(1, m + 1, n) for c, m in CODE_RANGES.items()}
    visitor = rng.choice(VISITORS, n, p=[0.85, 0.14, 0.01])
    weekend = rng.rand(n) < 0.23
    logit = (-3.4 + 4.0 * np.log1p(pv) / np.log1p(25.0) - 25.0 * exit_
             + 1.5 * (month == "Nov") + 1.0 * (visitor == "New_Visitor")
             + 0.3 * np.log1p(prod) - 1.5 * (codes["TrafficType"] == 13)
             - 2.0 * special)
    y = rng.rand(n) < 1.0 / (1.0 + np.exp(-logit))
    num = np.stack([adm, adm_d, inf, inf_d, prod, prod_d, bounce, exit_, pv, special],
                   axis=1).astype(np.float64)
    cats = [(month[i], str(codes["OperatingSystems"][i]), str(codes["Browser"][i]),
             str(codes["Region"][i]), str(codes["TrafficType"][i]), visitor[i],
             "TRUE" if weekend[i] else "FALSE") for i in range(n)]
    return num, cats, y.astype(np.int64)


def rows_to_csv(num, cats, y):
    """UCI-format CSV text (UCI column order, CRLF line ends)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(COLUMNS)
    for i in range(len(cats)):
        w.writerow([fmt_num(v) for v in num[i]] + list(cats[i])
                   + ["TRUE" if y[i] else "FALSE"])
    return out.getvalue()


# ----------------------------------------------------------------- model --

class Block(nn.Module):
    """One BatchEnsemble linear layer: z_i = s_i * (W (r_i * h_i)) + bias_i."""

    def __init__(self, k, d_in, d_out, r_init):
        super().__init__()
        bound = 1.0 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(d_out, d_in).uniform_(-bound, bound))
        self.r = nn.Parameter(r_init)
        self.s = nn.Parameter(torch.ones(k, d_out))
        self.bias = nn.Parameter(torch.empty(d_out).uniform_(-bound, bound).repeat(k, 1))

    def forward(self, h):                  # h: [B, k, d_in] or [B, 1, d_in] (shared)
        return torch.matmul(h * self.r, self.weight.t()) * self.s + self.bias


class Head(nn.Module):
    def __init__(self, k, d):
        super().__init__()
        bound = 1.0 / math.sqrt(d)
        self.weight = nn.Parameter(torch.empty(k, 1, d).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(k, 1).uniform_(-bound, bound))

    def forward(self, h):                              # [B, k, d] -> [B, k]
        return (h * self.weight[:, 0, :]).sum(-1) + self.bias[:, 0]


class TabM(nn.Module):
    """TabM (k members, BatchEnsemble MLP, ReLU + dropout, one logit each).
    forward() returns logits [B, k]; input [B, d_in] (shared) or [B, k, d_in]."""

    def __init__(self, d_in, k, n_blocks, d_block, dropout, chunks):
        super().__init__()
        self.k, self.dropout = k, dropout
        signs = torch.where(torch.rand(k, len(chunks)) < 0.5, -1.0, 1.0)
        r0 = torch.repeat_interleave(signs, torch.tensor(chunks), dim=1)
        assert r0.shape[1] == d_in
        blocks, dims = [], [d_in] + [d_block] * n_blocks
        for j in range(n_blocks):
            r = r0 if j == 0 else torch.ones(k, dims[j])
            blocks.append(Block(k, dims[j], dims[j + 1], r))
        self.blocks = nn.ModuleList(blocks)
        self.head = Head(k, d_block)

    def forward(self, x):
        h = x.unsqueeze(1) if x.dim() == 2 else x     # broadcast over members
        for blk in self.blocks:
            h = F.dropout(F.relu(blk(h)), self.dropout, self.training)
        return self.head(h)


def export_tensors(model, members=None):
    """Contract tensors (float32, C order); optionally keep only some members."""
    out = {}
    for name, p in model.state_dict().items():
        a = p.detach().cpu().numpy().astype(np.float32)
        shared = name.startswith("blocks.") and name.endswith(".weight")
        if members is not None and not shared:
            a = a[list(members)]
        out[name] = np.ascontiguousarray(a)
    return out


def model_from_tensors(tensors, n_blocks, d_block):
    k, d_in = tensors["blocks.0.r"].shape
    m = TabM(d_in, k, n_blocks, d_block, 0.0, [d_in])
    m.load_state_dict({n: torch.from_numpy(a) for n, a in tensors.items()})
    return m.eval()


def predict(model, X, batch=4096):
    """Member probabilities [n, k] (float32 forward, eval mode)."""
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(X), batch):
            outs.append(torch.sigmoid(model(torch.from_numpy(X[i:i + batch]))))
    return torch.cat(outs).numpy()


# -------------------------------------------------------------- training --

def log(msg, verbose=True):
    if verbose:
        print(msg, file=sys.stderr, flush=True)


def train(Xtr, ytr, Xva, yva, chunks, hp, seed, verbose=True):
    """Train TabM with early stopping on the validation ROC-AUC of the
    member-averaged probability. Returns (model at best epoch, info dict)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    gen = torch.Generator().manual_seed(seed)
    k = hp["train_k"]
    model = TabM(Xtr.shape[1], k, hp["n_blocks"], hp["d_block"], hp["dropout"], chunks)
    decay = [p for n, p in model.named_parameters() if not n.endswith("bias")]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=hp["lr"])
    X, Y = torch.from_numpy(Xtr), torch.from_numpy(ytr.astype(np.float32))
    n, B = len(X), hp["batch_size"]
    best, best_epoch, best_state, epoch = -1.0, -1, None, 0
    for epoch in range(1, hp["epochs"] + 1):
        model.train()
        if hp.get("share_batches"):
            perm = torch.randperm(n, generator=gen).unsqueeze(0).expand(k, -1)
        else:
            perm = torch.stack([torch.randperm(n, generator=gen) for _ in range(k)])
        total, steps = 0.0, 0
        for t in range(0, n, B):
            idx = perm[:, t:t + B]                     # [k, b]
            xb, yb = X[idx].transpose(0, 1), Y[idx].t()   # [b, k, F], [b, k]
            loss = F.binary_cross_entropy_with_logits(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total, steps = total + loss.item(), steps + 1
        auc = roc_auc_score(yva, predict(model, Xva).mean(1))
        if auc > best:
            best, best_epoch, best_state = auc, epoch, copy.deepcopy(model.state_dict())
        log("epoch %3d  train_loss %.5f  val_auc %.5f  best %.5f @ %d"
            % (epoch, total / steps, auc, best, best_epoch), verbose)
        if epoch - best_epoch >= hp["patience"]:
            break
    model.load_state_dict(best_state)
    return model.eval(), {"best_epoch": best_epoch, "epochs_run": epoch, "val_auc": best}


def greedy_select(P, y, m):
    """Caruana-style forward selection without replacement: add the member
    that maximises the validation ROC-AUC of the averaged probability."""
    chosen = []
    for _ in range(m):
        cand = [(roc_auc_score(y, P[:, chosen + [i]].mean(1)), -i, i)
                for i in range(P.shape[1]) if i not in chosen]
        chosen.append(max(cand)[2])
    return sorted(chosen)


def choose_threshold(p, y, metric="f1"):
    """Threshold on validation probabilities; positive iff probability >= t."""
    cand = np.unique(p.astype(np.float64))
    best_t, best_v = 0.5, -1.0
    for t in cand:
        pred = p >= t
        if metric == "f1":
            v = f1_score(y, pred, zero_division=0)
        elif metric == "accuracy":
            v = accuracy_score(y, pred)
        elif metric == "youden":
            v = pred[y == 1].mean() - pred[y == 0].mean()
        else:
            raise ValueError(metric)
        if v > best_v:
            best_t, best_v = float(t), v
    return best_t


def fit_tabm(Xtr, ytr, Xva, yva, chunks, hp, seed, verbose=True):
    """Train, then (if select_from) keep hp['k'] members greedily. Returns
    (export model with hp['k'] members, members kept, info)."""
    model, info = train(Xtr, ytr, Xva, yva, chunks, hp, seed, verbose)
    members = None
    if hp["train_k"] != hp["k"]:
        members = greedy_select(predict(model, Xva), yva, hp["k"])
        log("selected members %s of %d" % (members, hp["train_k"]), verbose)
    tensors = export_tensors(model, members)
    small = model_from_tensors(tensors, hp["n_blocks"], hp["d_block"])
    info["members"] = members
    if members is not None:
        info["trained_model"] = model                  # all members, for reports
    info["val_auc_final"] = float(roc_auc_score(yva, predict(small, Xva).mean(1)))
    return small, tensors, info


# --------------------------------------------------------------- metrics --

def ece(p, y, bins=10):
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(total)


def metrics(p, y, threshold):
    p = np.asarray(p, dtype=np.float64)
    pred = p >= threshold
    return {"roc_auc": float(roc_auc_score(y, p)),
            "pr_auc": float(average_precision_score(y, p)),
            "log_loss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7))),
            "accuracy": float(accuracy_score(y, pred)),
            "f1": float(f1_score(y, pred, zero_division=0)),
            "ece": ece(p, y)}


# ------------------------------------------------------------- exporters --

def spec_text(spec):
    """Indented JSON with every list of plain values kept on one line."""
    def inline(m):
        return re.sub(r"\s*\n\s*", " ", m.group(0)).replace("[ ", "[").replace(" ]", "]")
    text = json.dumps(spec, indent=1)
    return re.sub(r"\[[^\[\]{}]*\]", inline, text) + "\n"


def write_safetensors(path, tensors, spec):
    header, offset = {}, 0
    for name in sorted(tensors):
        a = tensors[name]
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    header["__metadata__"] = {"opecom_spec": spec_text(spec)}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name in sorted(tensors):
            f.write(np.ascontiguousarray(tensors[name], dtype="<f4").tobytes())


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__")
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4").reshape(h["shape"])
    return out, meta


class _OnnxWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        p = torch.sigmoid(self.model(x))
        return p.mean(1), p


def write_onnx(path, model, d_in, spec):
    import onnx
    model.eval()
    torch.onnx.export(_OnnxWrapper(model), torch.zeros(2, d_in), path,
                      input_names=["x"],
                      output_names=["probability", "member_probabilities"],
                      dynamic_axes={"x": {0: "batch"}, "probability": {0: "batch"},
                                    "member_probabilities": {0: "batch"}},
                      opset_version=13, do_constant_folding=True)
    m = onnx.load(path)
    m.doc_string = "libopecom TabM: encoded float32 input [batch, d_in] -> probability"
    entry = m.metadata_props.add()
    entry.key, entry.value = "opecom_spec", spec_text(spec)
    onnx.checker.check_model(m)
    onnx.save(m, path)


def run_onnx(path, X):
    """Evaluate our exported ONNX graph in numpy (only the ops it uses), to
    check the file computes what the PyTorch model does."""
    import onnx
    from onnx import numpy_helper
    g = onnx.load(path).graph
    env = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    env[g.input[0].name] = X
    for nd in g.node:
        i = [env[n] for n in nd.input]
        at = {a.name: onnx.helper.get_attribute_value(a) for a in nd.attribute}
        op = nd.op_type
        if op == "Constant":
            o = numpy_helper.to_array(at["value"])
        elif op == "Unsqueeze":
            o = np.expand_dims(i[0], tuple(int(v) for v in i[1]))
        elif op in ("Mul", "Add", "MatMul"):
            o = {"Mul": np.multiply, "Add": np.add, "MatMul": np.matmul}[op](i[0], i[1])
        elif op == "Relu":
            o = np.maximum(i[0], 0)
        elif op == "Sigmoid":
            o = 1 / (1 + np.exp(-i[0]))
        elif op in ("ReduceSum", "ReduceMean"):
            axes = tuple(i[1]) if len(i) > 1 else tuple(at["axes"])
            f = np.sum if op == "ReduceSum" else np.mean
            o = f(i[0], axis=axes, keepdims=bool(at.get("keepdims", 1)))
        else:
            raise ValueError("run_onnx: unsupported op " + op)
        env[nd.output[0]] = o.astype(np.float32) if o.dtype.kind == "f" else o
    return [env[o.name] for o in g.output]


# ------------------------------------------------------- reference rows --

def reference_rows(features, n, seed):
    """n synthetic raw rows covering every category, zeros, huge values,
    the range bounds, and unseen categories (never dataset rows)."""
    rng = np.random.RandomState(seed)
    num, cats, _ = synthetic_rows(n, seed)
    cat_feats = [f for f in features if f["type"] == "categorical"]
    unseen = {"Month": "Jan", "OperatingSystems": "99", "Browser": "99", "Region": "99",
              "TrafficType": "99", "VisitorType": "Robot"}   # Weekend stays TRUE/FALSE
    cats = [list(c) for c in cats]
    for i in range(n):          # first rows cycle every category, then random
        for j, f in enumerate(cat_feats):
            cs = f["categories"]
            cats[i][j] = cs[i % len(cs)] if i < 48 else cs[rng.randint(len(cs))]
    big = {"Administrative": 1000, "Administrative_Duration": 1e6, "Informational": 1000,
           "Informational_Duration": 1e6, "ProductRelated": 10000,
           "ProductRelated_Duration": 1e6, "PageValues": 1e4}
    special = []
    for j, name in enumerate(NUMERIC):                 # one-at-a-time extremes
        lo, hi = numeric_bounds(name)
        special += [(j, lo), (j, hi if hi is not None else big[name]), (j, 1e-9)]
    base = 60
    for t, (j, v) in enumerate(special):
        num[base + t, j] = v
    r = base + len(special)
    num[r] = 0.0                                       # all zeros
    num[r + 1] = [big.get(c, 1.0) for c in NUMERIC]    # all at the upper ends
    num[r + 2] = [big.get(c, 0.0) for c in NUMERIC]
    r += 3
    cols = [j for j, f in enumerate(cat_feats) if f["name"] in unseen]
    for t, j in enumerate(cols):                       # each unseen alone, then all
        cats[r + t][j] = unseen[cat_feats[j]["name"]]
        cats[r + len(cols)][j] = unseen[cat_feats[j]["name"]]
    for i in range(r + len(cols) + 1, n, 37):          # scattered unseen values
        j = cols[i % len(cols)]
        cats[i][j] = unseen[cat_feats[j]["name"]]
    return num, [tuple(c) for c in cats]


def write_reference(path, model, features, n, seed):
    num, cats = reference_rows(features, n, seed)
    X, unknown = encode(features, num, cats)
    P = predict(model, X)
    k = P.shape[1]
    prob = torch.from_numpy(P).mean(1).numpy()
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(NUMERIC + CATEGORICAL + ["p_member_%d" % i for i in range(k)]
               + ["probability", "unknown"])
    for i in range(n):
        w.writerow([fmt_num(v) for v in num[i]] + list(cats[i])
                   + ["%.9g" % v for v in P[i]] + ["%.9g" % prob[i], int(unknown[i])])
    with open(path, "w", newline="") as f:
        f.write(out.getvalue())
    return P, unknown
