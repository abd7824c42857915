#!/usr/bin/python3
"""The retraining loop for opecom-server: export, train, compare, promote, roll back.

    retrain.py export   --db URL --out DIR [--holdout-days N | --holdout-fraction F]
    retrain.py train    --data DIR [--out DIR] [-- TRAINER FLAGS...]
    retrain.py compare  --serving PATH --candidate PATH --holdout CSV
    retrain.py promote  --serving PATH --candidate PATH --url URL... [--pid PID...]
    retrain.py rollback --serving PATH --url URL... [--pid PID...]
    retrain.py run      --db URL --work DIR --serving PATH --url URL [-- TRAINER FLAGS...]

export reads the closed sessions of the live database (session_features,
the rows of the sessions_export view, by closing time) and writes the older
ones to train.csv and the most recent ones to holdout.csv, both in the UCI
CSV format train_tabm.py and `opecom eval` read, plus export.json (counts,
the cut in closing time). train runs tools/train_tabm.py on train.csv and
opecom-convert on its exports: candidate.opm. compare runs `opecom eval` on
holdout.csv for the serving and the candidate model and decides. promote
keeps the serving file as PATH.previous, renames the candidate over PATH,
has the server reload it (POST /api/admin/reload with the admin token, or
SIGHUP to a pid; --url and --pid repeat for several servers sharing the
file) and checks that /metrics shows the candidate's id; when a server
refuses the file or does not answer, the old one goes back and promote fails. rollback renames
PATH.previous back over PATH the same way. run does export, train, compare
and, if the candidate is better, promote.

Exit status: 0 done (run: whether it promoted or not), 1 refused or failed
(the message says which step and why), 2 bad command line, 3 compare: the
candidate is not better. Run with /usr/bin/python3 (the trainer needs numpy,
torch and sklearn; everything else here is the standard library). The
documentation is docs/deploy.md, "Retraining loop".
"""

import argparse
import csv
import fcntl
import json
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINER = os.path.join(REPO, "tools", "train_tabm.py")
DAY_MS = 86400 * 1000

# The UCI CSV columns, in file order, and the session_features expression of
# each: the same as the sessions_export view (examples/server/schema.sql).
EXPORT_COLUMNS = [
    ("Administrative", "administrative"),
    ("Administrative_Duration", "administrative_duration"),
    ("Informational", "informational"),
    ("Informational_Duration", "informational_duration"),
    ("ProductRelated", "product_related"),
    ("ProductRelated_Duration", "product_related_duration"),
    ("BounceRates", "bounce_rates"),
    ("ExitRates", "exit_rates"),
    ("PageValues", "page_values"),
    ("SpecialDay", "special_day"),
    ("Month", "month"),
    ("OperatingSystems", "operating_systems"),
    ("Browser", "browser"),
    ("Region", "region"),
    ("TrafficType", "traffic_type"),
    ("VisitorType", "visitor_type"),
    ("Weekend", "weekend"),
    ("Revenue", "revenue"),
]
HEADER = [c for c, _ in EXPORT_COLUMNS]
BOOLEAN_COLUMNS = {"Weekend", "Revenue"}
TEXT_COLUMNS = {"Month", "VisitorType"}
# closed_ms first; the order is the view's, so ties in closing time are cut
# the same way on every run and on both databases
EXPORT_SQL = ("SELECT closed_ms, " + ", ".join(e for _, e in EXPORT_COLUMNS)
              + " FROM session_features ORDER BY closed_ms, start_ms, session, part")

# Defaults, documented in docs/deploy.md
HOLDOUT_FRACTION = 0.2
MIN_TRAIN = 500
MIN_HOLDOUT = 200
MIN_POSITIVES = 20
MARGIN = 0.002          # log loss the candidate must gain
AUC_TOLERANCE = 0.005   # ROC-AUC it may lose
RELOAD_WAIT_S = 10.0    # SIGHUP: how long /metrics may take to show the new id
STEP_TIMEOUT_S = 3600   # one trainer or converter run

# OPM header: magic at 0, the CRC-32 of the file at 28 (docs/model-format.md
# 3.1). The server's model id is that CRC as 8 hex digits.
OPM_MAGIC = b"\x89OPM\r\n\x1a\n"
OPM_CRC_OFFSET = 28


class Refused(Exception):
    """A step refused or failed; the message says why. Exit status 1."""


def say(msg):
    print(msg, flush=True)


# ===================================================================== #
# Export
# ===================================================================== #

def read_sqlite(path):
    """The closed sessions, oldest first, from a SQLite file (read-only, one
    snapshot: the server may write meanwhile)."""
    if not os.path.exists(path):
        raise Refused("export: database %s does not exist" % path)
    uri = "file:%s?mode=ro" % urllib.parse.quote(os.path.abspath(path))
    try:
        db = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            return db.execute(EXPORT_SQL).fetchall()
        finally:
            db.close()
    except sqlite3.Error as e:
        raise Refused("export: %s: %s" % (path, e))


def parse_mariadb_url(url):
    """mariadb://USER:PASSWORD@HOST:PORT/DB[?socket=PATH], as opecom-server
    takes it (docs/server.md)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme != "mariadb" or not u.hostname or not u.path.strip("/"):
        raise Refused("export: --db %s: expected mariadb://USER:PASSWORD@HOST:PORT/DB" % url)
    query = urllib.parse.parse_qs(u.query)
    unknown = set(query) - {"socket"}
    if unknown:
        raise Refused("export: --db: unknown URL parameter(s) %s" % ", ".join(sorted(unknown)))
    return {"user": urllib.parse.unquote(u.username or ""),
            "password": urllib.parse.unquote(u.password or ""),
            "host": u.hostname, "port": u.port, "database": u.path.strip("/"),
            "socket": query.get("socket", [None])[0]}


def read_mariadb(url):
    """The closed sessions through the `mariadb` command-line client in batch
    mode. The password goes in a private option file (mode 0600, removed
    at once), never on the command line where ps would show it."""
    t = parse_mariadb_url(url)
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        raise Refused("export: mariadb:// needs the mariadb client "
                      "(apt-get install -y mariadb-client)")
    quote = lambda v: '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')  # noqa: E731
    with tempfile.NamedTemporaryFile("w", prefix="retrain-client-", suffix=".cnf") as cnf:
        cnf.write("[client]\nuser=%s\npassword=%s\n" % (quote(t["user"]), quote(t["password"])))
        cnf.flush()
        argv = [client, "--defaults-extra-file=" + cnf.name, "--batch", "--raw",
                "--skip-column-names", "--database", t["database"],
                "--execute", EXPORT_SQL + ";"]
        if t["socket"]:
            argv += ["--socket", t["socket"]]
        else:
            argv += ["--host", t["host"], "--protocol", "TCP"]
            if t["port"]:
                argv += ["--port", str(t["port"])]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise Refused("export: the mariadb client did not finish in %d s" % STEP_TIMEOUT_S)
    if p.returncode != 0:
        raise Refused("export: mariadb client: %s" % (p.stderr.strip() or "exit %d" % p.returncode))
    rows = []
    for n, line in enumerate(p.stdout.splitlines(), 1):
        f = line.split("\t")
        if len(f) != 1 + len(EXPORT_COLUMNS):
            raise Refused("export: mariadb client output line %d: %d fields, expected %d"
                          % (n, len(f), 1 + len(EXPORT_COLUMNS)))
        rows.append(tuple(f))
    return rows


def number(v):
    """A feature value as text, the same from either database (SQLite gives
    floats, the mariadb client text): integral values without ".0", others
    as the shortest text that reads back as the same double."""
    x = float(v)
    return "%d" % x if x.is_integer() and abs(x) < 1e15 else repr(x)


def csv_row(raw):
    """One database row (without closed_ms) as UCI CSV fields."""
    out = []
    for (name, _), v in zip(EXPORT_COLUMNS, raw):
        if name in BOOLEAN_COLUMNS:
            out.append("TRUE" if int(v) != 0 else "FALSE")
        elif name in TEXT_COLUMNS:
            out.append(str(v))
        else:
            out.append(number(v))
    return out


def write_csv(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        for r in rows:
            w.writerow(csv_row(r[1:]))
    os.replace(tmp, path)


def split_by_time(rows, holdout_days, holdout_fraction):
    """(train, holdout, cut_ms): holdout = the rows closed at or after cut_ms.
    Rows closed at the same millisecond stay on the same side."""
    closed = [int(r[0]) for r in rows]
    if holdout_days is not None:
        cut = closed[-1] - int(holdout_days * DAY_MS)
    else:
        cut = closed[int(len(rows) * (1 - holdout_fraction))] if rows else 0
    i = next((j for j, c in enumerate(closed) if c >= cut), len(rows))
    return rows[:i], rows[i:], cut


def export(db, out, holdout_days=None, holdout_fraction=HOLDOUT_FRACTION, min_train=MIN_TRAIN,
           min_holdout=MIN_HOLDOUT, min_positives=MIN_POSITIVES):
    if db.startswith("mariadb://"):
        rows = read_mariadb(db)
    elif db.startswith("sqlite:"):
        rows = read_sqlite(db[len("sqlite:"):])
    elif "://" in db:
        raise Refused("export: --db %s: expected sqlite:PATH or mariadb://..." % db)
    else:
        rows = read_sqlite(db)
    if not rows:
        raise Refused("export: no closed sessions in %s yet" % db)
    train, hold, cut = split_by_time(rows, holdout_days, holdout_fraction)
    pos = lambda part: sum(1 for r in part if int(r[-1]) != 0)  # noqa: E731
    for name, part, least in (("training", train, min_train), ("holdout", hold, min_holdout)):
        if len(part) < least:
            raise Refused("export: %d closed sessions in the %s part, at least %d needed "
                          "(%d closed sessions in all); wait for more traffic or change "
                          "--holdout-days/--holdout-fraction/--min-%s"
                          % (len(part), name, least, len(rows),
                             "train" if part is train else "holdout"))
        if pos(part) < min_positives or len(part) - pos(part) < min_positives:
            raise Refused("export: the %s part has %d sessions with a purchase and %d "
                          "without; at least %d of each are needed (--min-positives)"
                          % (name, pos(part), len(part) - pos(part), min_positives))
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, "train.csv"), train)
    write_csv(os.path.join(out, "holdout.csv"), hold)
    info = {"db": db if not db.startswith("mariadb://") else "mariadb://...",
            "cut_closed_ms": cut,
            "train": {"rows": len(train), "positives": pos(train),
                      "first_closed_ms": int(train[0][0]), "last_closed_ms": int(train[-1][0])},
            "holdout": {"rows": len(hold), "positives": pos(hold),
                        "first_closed_ms": int(hold[0][0]), "last_closed_ms": int(hold[-1][0])}}
    with open(os.path.join(out, "export.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    say("export: %d closed sessions; train.csv %d (%d with a purchase), holdout.csv %d "
        "(%d with a purchase), holdout closed from %s UTC"
        % (len(rows), len(train), pos(train), len(hold), pos(hold),
           time.strftime("%Y-%m-%d %H:%M", time.gmtime(cut / 1000))))
    return info


# ===================================================================== #
# Train and convert
# ===================================================================== #

def tool(bin_dir, name):
    """A built tool: BIN_DIR/name, else build/name in the source tree, else PATH."""
    for d in ([bin_dir] if bin_dir else []) + [os.path.join(REPO, "build")]:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    p = shutil.which(name)
    if p is None:
        raise Refused("%s not found: build it (make) or pass --bin-dir" % name)
    return p


def run_step(step, argv, name=None):
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise Refused("%s: %s did not finish in %d s" % (step, argv[0], STEP_TIMEOUT_S))
    if p.returncode != 0:
        tail = (p.stderr.strip() or p.stdout.strip()).splitlines()[-5:]
        raise Refused("%s: %s failed (exit %d): %s"
                      % (step, name or os.path.basename(argv[0]), p.returncode, " | ".join(tail)))
    return p, time.monotonic() - t0


def train(data, out, trainer_args, bin_dir=None):
    """train_tabm.py on DATA/train.csv, then opecom-convert: OUT/candidate.opm."""
    csv_path = os.path.join(data, "train.csv") if os.path.isdir(data) else data
    if not os.path.isfile(csv_path):
        raise Refused("train: %s does not exist (run export first)" % csv_path)
    os.makedirs(out, exist_ok=True)
    argv = [sys.executable, TRAINER, "--csv", csv_path, "--out-dir", out, "--name", "candidate",
            "--no-onnx", "--quiet"] + list(trainer_args)
    p, secs = run_step("train", argv, "train_tabm.py")
    last = [line for line in p.stderr.splitlines() if line.strip()]
    base = os.path.join(out, "candidate")
    target = base + ".opm"
    tmp = target + ".tmp"
    _, csecs = run_step("convert", [tool(bin_dir, "opecom-convert"), "--weights", base + ".npz",
                                    "--spec", base + ".spec.json", "-o", tmp])
    os.replace(tmp, target)
    say("train: %.1f s (%s); convert %.1f s: %s, id %s"
        % (secs, last[-1].strip() if last else "no output", csecs, target, model_id(target)))
    return target


# ===================================================================== #
# Compare
# ===================================================================== #

def model_id(path):
    """The id opecom-server shows for a model file: the CRC-32 in its header."""
    try:
        with open(path, "rb") as f:
            head = f.read(OPM_CRC_OFFSET + 4)
    except OSError as e:
        raise Refused("%s: %s" % (path, e.strerror))
    if len(head) < OPM_CRC_OFFSET + 4 or head[:8] != OPM_MAGIC:
        raise Refused("%s: not an opecom model file (.opm)" % path)
    return "%08x" % struct.unpack_from("<I", head, OPM_CRC_OFFSET)[0]


def evaluate(opecom, model, holdout):
    p, _ = run_step("compare", [opecom, "eval", "--json", "--model", model, holdout])
    r = json.loads(p.stdout)
    if r["roc_auc"] is None:
        raise Refused("compare: %s has a single class: ROC-AUC is undefined" % holdout)
    return r


def compare(serving, candidate, holdout, margin=MARGIN, auc_tolerance=AUC_TOLERANCE,
            bin_dir=None):
    """Both models on the same holdout rows; returns the result, "better" in it."""
    opecom = tool(bin_dir, "opecom")
    s = evaluate(opecom, serving, holdout)
    c = evaluate(opecom, candidate, holdout)
    gain = s["log_loss"] - c["log_loss"]
    d_auc = c["roc_auc"] - s["roc_auc"]
    better = gain >= margin and d_auc >= -auc_tolerance
    why = []
    why.append("log loss %s by %.6f %s margin %.6f"
               % ("lower" if gain >= 0 else "higher", abs(gain),
                  ">=" if gain >= margin else "<", margin))
    why.append("ROC-AUC %+.6f %s -tolerance %.6f"
               % (d_auc, ">=" if d_auc >= -auc_tolerance else "<", auc_tolerance))
    say("compare: holdout %s, %d sessions, %d with a purchase"
        % (holdout, s["n"], s["positives"]))
    say("  %-10s %-10s %-10s %s" % ("model", "ROC-AUC", "log loss", "file"))
    for name, path, r in (("serving", serving, s), ("candidate", candidate, c)):
        say("  %-10s %-10.6f %-10.6f %s (id %s)" % (name, r["roc_auc"], r["log_loss"], path,
                                                     model_id(path)))
    say("  decision: %s (%s)" % ("better" if better else "not better", "; ".join(why)))
    return {"holdout": holdout, "rows": s["n"], "positives": s["positives"],
            "serving": {"path": serving, "id": model_id(serving), "roc_auc": s["roc_auc"],
                        "log_loss": s["log_loss"]},
            "candidate": {"path": candidate, "id": model_id(candidate), "roc_auc": c["roc_auc"],
                          "log_loss": c["log_loss"]},
            "margin": margin, "auc_tolerance": auc_tolerance, "better": better}


# ===================================================================== #
# Reload and the id check
# ===================================================================== #

class Server:
    """The servers serving the file (one, or replicas on this machine sharing
    it): reloaded through the admin route of each URL, or by SIGHUP to each
    pid; /metrics of each URL is where the ids are checked."""

    def __init__(self, urls, token, pids, variant):
        self.urls = [u.rstrip("/") for u in urls]
        self.token = token
        self.pids = pids or []
        self.variant = variant

    @staticmethod
    def get(url):
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.read().decode()
        except (urllib.error.URLError, OSError) as e:
            raise Refused("GET %s: %s" % (url, getattr(e, "reason", e)))

    def ids(self, url):
        """{variant: id} from opecom_model_info in url's /metrics."""
        out = {}
        for line in self.get(url + "/metrics").splitlines():
            if line.startswith("opecom_model_info{"):
                labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line))
                out[labels.get("variant")] = labels.get("id")
        return out

    def post_reload(self, url):
        """None, or the server's reason for refusing the file (422)."""
        body = json.dumps({"variant": self.variant} if self.variant else {}).encode()
        req = urllib.request.Request(url + "/api/admin/reload", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer " + self.token})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                json.load(r)
            return None
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            if e.code == 422:
                try:
                    return "%s: %s" % (url, json.loads(text).get("error", text))
                except ValueError:
                    return "%s: %s" % (url, text)
            raise Refused("POST %s/api/admin/reload: %d %s" % (url, e.code, text.strip()))
        except (urllib.error.URLError, OSError) as e:
            raise Refused("POST %s/api/admin/reload: %s" % (url, getattr(e, "reason", e)))

    def reload(self):
        """Asks every server to reload; None or the first reason for refusing.
        All are asked even after a refusal, so they serve the same file."""
        why = None
        if self.pids:
            for pid in self.pids:
                try:
                    os.kill(pid, signal.SIGHUP)
                except OSError as e:
                    why = why or "SIGHUP to pid %d: %s" % (pid, e.strerror)
            return why
        for url in self.urls:
            why = self.post_reload(url) or why
        return why

    def serving(self, ids, want):
        """True when the variant (or, without --variant, some variant) serves want."""
        if self.variant:
            return ids.get(self.variant) == want
        return want in ids.values()

    def reload_and_check(self, want):
        """Reload, then wait until every /metrics shows id want. None or the
        reason (a SIGHUP reload is asynchronous: up to RELOAD_WAIT_S)."""
        try:
            why = self.reload()
            if why is not None:
                return why
            deadline = time.monotonic() + (RELOAD_WAIT_S if self.pids else 0)
            for url in self.urls:
                while True:
                    ids = self.ids(url)
                    if self.serving(ids, want):
                        break
                    if time.monotonic() >= deadline:
                        return ("after the reload %s/metrics shows %s, not %s (a refused "
                                "SIGHUP reload is in the server's log)"
                                % (url, ", ".join("%s=%s" % kv for kv in sorted(ids.items())),
                                   want))
                    time.sleep(0.1)
            return None
        except Refused as e:  # a server that does not answer: the same as a refusal
            return str(e)


def sync_dir(path):
    fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def same_fs(a, b):
    return os.stat(a).st_dev == os.stat(os.path.dirname(os.path.abspath(b))).st_dev


def swap_in(path, new, server, what):
    """Puts file `new` at `path`, keeping the old one as path.previous, reloads and
    checks the id. On refusal everything is as before (new back in its place) and
    Refused is raised. `path` exists at every moment (renames and links only)."""
    prev = path + ".previous"
    keep = path + ".previous.keep"
    want = model_id(new)
    old = model_id(path)
    if not same_fs(new, path):
        raise Refused("%s: %s and %s are on different file systems; copy the candidate "
                      "beside the serving file first" % (what, new, path))
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise Refused("%s: cannot rename files in %s (run as the user owning it)" % (what, folder))
    if os.path.exists(keep):
        os.unlink(keep)
    if os.path.exists(prev):
        os.rename(prev, keep)           # the earlier previous, until this one is done
    os.link(path, prev)
    os.rename(new, path)
    sync_dir(path)
    why = server.reload_and_check(want)
    if why is None:
        if os.path.exists(keep):
            os.unlink(keep)
        say("%s: %s now serves id %s (was %s); the old file is %s"
            % (what, path, want, old, prev))
        return want
    # refused: new back where it was, the old file at path, the earlier previous back
    os.link(path, new)
    os.rename(prev, path)
    if os.path.exists(keep):
        os.rename(keep, prev)
    sync_dir(path)
    again = server.reload_and_check(old)
    raise Refused("%s: the reload of %s failed: %s; %s is back at %s%s"
                  % (what, new, why, old, path,
                     "" if again is None else " (and the reload of it failed too: %s)" % again))


def locked(serving):
    """One promote or rollback at a time per serving file (a cron job that
    overlaps a manual rollback): an flock on PATH.lock, refused if held."""
    fd = os.open(serving + ".lock", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise Refused("%s.lock is held: another promote or rollback is running" % serving)
    return fd


def promote(serving, candidate, server):
    if not os.path.isfile(candidate):
        raise Refused("promote: %s does not exist" % candidate)
    if not os.path.isfile(serving):
        raise Refused("promote: %s does not exist" % serving)
    fd = locked(serving)
    try:
        return swap_in(serving, candidate, server, "promote")
    finally:
        os.close(fd)


def rollback(serving, server):
    """Swaps PATH and PATH.previous: the model rolled back from becomes
    PATH.previous, so a second rollback undoes the first."""
    prev = serving + ".previous"
    fd = locked(serving)
    if not os.path.isfile(prev):
        os.close(fd)
        raise Refused("rollback: %s does not exist (nothing was promoted)" % prev)
    # a second name for the file to serve, so the swap has its usual shape
    back = serving + ".rollback"
    if os.path.exists(back):
        os.unlink(back)
    os.link(prev, back)
    try:
        return swap_in(serving, back, server, "rollback")
    finally:
        if os.path.exists(back):
            os.unlink(back)
        os.close(fd)


# ===================================================================== #
# Command line
# ===================================================================== #

def add_export_flags(ap):
    ap.add_argument("--db", help="sqlite:PATH (or PATH) or mariadb://USER:PASSWORD@HOST:PORT/DB "
                                 "(default: \"db\" of --config)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--holdout-days", type=float, metavar="N",
                   help="holdout: sessions closed in the N days before the newest one")
    g.add_argument("--holdout-fraction", type=float, default=HOLDOUT_FRACTION, metavar="F",
                   help="holdout: the most recent fraction F of sessions (default %(default)s)")
    ap.add_argument("--min-train", type=int, default=MIN_TRAIN,
                    help="refuse with fewer training sessions (default %(default)s)")
    ap.add_argument("--min-holdout", type=int, default=MIN_HOLDOUT,
                    help="refuse with fewer holdout sessions (default %(default)s)")
    ap.add_argument("--min-positives", type=int, default=MIN_POSITIVES,
                    help="refuse with fewer sessions with, or without, a purchase in either "
                         "part (default %(default)s)")


def add_compare_flags(ap):
    ap.add_argument("--margin", type=float, default=MARGIN,
                    help="the candidate's log loss must be lower by at least this "
                         "(default %(default)s)")
    ap.add_argument("--auc-tolerance", type=float, default=AUC_TOLERANCE,
                    help="its ROC-AUC may be lower by at most this (default %(default)s)")


def add_reload_flags(ap):
    ap.add_argument("--url", "--admin-url", dest="url", metavar="URL", action="append",
                    help="the server, e.g. http://127.0.0.1:8080: its /api/admin/reload "
                         "and /metrics; repeat for replicas sharing the file")
    ap.add_argument("--token-env", default="OPECOM_ADMIN_TOKEN", metavar="VAR",
                    help="environment variable holding the admin token (default %(default)s)")
    ap.add_argument("--pid", type=int, action="append",
                    help="reload with SIGHUP to this process instead (repeatable)")
    ap.add_argument("--variant", help="the variant serving the file (default: any)")


def add_config_flag(ap):
    ap.add_argument("--config", metavar="FILE",
                    help="the server's JSON configuration: its db and admin_token are the "
                         "defaults of --db and the token")


def server_config(a, ap):
    """The server's configuration file (--config), {} without one: its "db"
    and "admin_token" spare the command line a password (ps shows argv)."""
    if not getattr(a, "config", None):
        return {}
    try:
        with open(a.config) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        ap.error("--config %s: %s" % (a.config, e))
    if not isinstance(cfg, dict):
        ap.error("--config %s: not a JSON object" % a.config)
    return cfg


def db_from(a, ap):
    db = a.db or server_config(a, ap).get("db")
    if not isinstance(db, str) or not db:
        ap.error("--db is needed (or a --config with \"db\")")
    return db


def server_from(a, ap):
    if not a.url:
        ap.error("--url is needed: the id check reads its /metrics")
    token = None
    if not a.pid:
        token = os.environ.get(a.token_env) or server_config(a, ap).get("admin_token")
        if not isinstance(token, str) or not token:
            ap.error("the admin token: set %s (or --token-env VAR), pass the server's --config "
                     "with admin_token, or use --pid" % a.token_env)
    return Server(a.url, token, a.pid, a.variant)


def check_fractions(a, ap):
    if not 0 < a.holdout_fraction < 1:
        ap.error("--holdout-fraction must be in (0, 1)")
    if a.holdout_days is not None and a.holdout_days <= 0:
        ap.error("--holdout-days must be above 0")


def parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Trainer flags go after --, e.g. "
                                        "-- --d-block 64 --epochs 50")
    ap.add_argument("--bin-dir", help="where opecom and opecom-convert are (default: build/, "
                                      "then PATH)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("export", help="train.csv and holdout.csv from the database")
    add_export_flags(p)
    add_config_flag(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p = sub.add_parser("train", help="train_tabm.py + opecom-convert: candidate.opm")
    p.add_argument("--data", required=True, metavar="DIR|CSV", help="export folder or train.csv")
    p.add_argument("--out", metavar="DIR", help="default: the export folder")
    p = sub.add_parser("compare", help="serving vs candidate on the holdout")
    p.add_argument("--serving", required=True)
    p.add_argument("--candidate", required=True)
    p.add_argument("--holdout", required=True, metavar="CSV")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    add_compare_flags(p)
    p = sub.add_parser("promote", help="the candidate over the serving file, reload, check")
    p.add_argument("--serving", required=True)
    p.add_argument("--candidate", required=True)
    add_reload_flags(p)
    add_config_flag(p)
    p = sub.add_parser("rollback", help="PATH.previous back over PATH, reload, check")
    p.add_argument("--serving", required=True)
    add_reload_flags(p)
    add_config_flag(p)
    p = sub.add_parser("run", help="export, train, compare, promote if better")
    add_export_flags(p)
    p.add_argument("--work", required=True, metavar="DIR", help="folder for the files of the run")
    p.add_argument("--serving", required=True, metavar="PATH",
                   help="the model file the server serves (its --model, or a variant's)")
    p.add_argument("--dry-run", action="store_true", help="stop after compare")
    add_compare_flags(p)
    add_reload_flags(p)
    add_config_flag(p)
    return ap, sub


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    trainer_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, trainer_args = argv[:i], argv[i + 1:]
    ap, sub = parser()
    a = ap.parse_args(argv)
    sp = sub.choices[a.cmd]
    if trainer_args and a.cmd not in ("train", "run"):
        sp.error("trainer flags after -- are for train and run only")
    try:
        if a.cmd == "export":
            check_fractions(a, sp)
            export(db_from(a, sp), a.out, a.holdout_days, a.holdout_fraction, a.min_train,
                   a.min_holdout, a.min_positives)
        elif a.cmd == "train":
            train(a.data, a.out or (a.data if os.path.isdir(a.data) else os.path.dirname(a.data)),
                  trainer_args, a.bin_dir)
        elif a.cmd == "compare":
            r = compare(a.serving, a.candidate, a.holdout, a.margin, a.auc_tolerance, a.bin_dir)
            if a.json:
                with open(a.json, "w") as f:
                    json.dump(r, f, indent=1)
                    f.write("\n")
            return 0 if r["better"] else 3
        elif a.cmd == "promote":
            promote(a.serving, a.candidate, server_from(a, sp))
        elif a.cmd == "rollback":
            rollback(a.serving, server_from(a, sp))
        elif a.cmd == "run":
            check_fractions(a, sp)
            server = None if a.dry_run else server_from(a, sp)
            t0 = time.monotonic()
            if server is not None:
                # compare against what is served, not a file changed since
                want = model_id(a.serving)
                for url in server.urls:
                    if not server.serving(server.ids(url), want):
                        raise Refused("run: %s does not serve %s (id %s): reload it, or pass "
                                      "the file it serves as --serving" % (url, a.serving, want))
            export(db_from(a, sp), a.work, a.holdout_days, a.holdout_fraction, a.min_train,
                   a.min_holdout, a.min_positives)
            cand = train(a.work, a.work, trainer_args, a.bin_dir)
            r = compare(a.serving, cand, os.path.join(a.work, "holdout.csv"), a.margin,
                        a.auc_tolerance, a.bin_dir)
            with open(os.path.join(a.work, "compare.json"), "w") as f:
                json.dump(r, f, indent=1)
                f.write("\n")
            if not r["better"]:
                say("run: kept the serving model %s (%.1f s)" % (r["serving"]["id"],
                                                                  time.monotonic() - t0))
            elif a.dry_run:
                say("run: --dry-run, not promoted (%.1f s)" % (time.monotonic() - t0))
            else:
                # the candidate is renamed over the serving file: it must sit
                # on the same file system, so it moves beside it first
                beside = a.serving + ".candidate"
                if same_fs(cand, a.serving):
                    os.replace(cand, beside)
                else:
                    shutil.copyfile(cand, beside + ".tmp")
                    with open(beside + ".tmp", "rb") as f:
                        os.fsync(f.fileno())
                    os.replace(beside + ".tmp", beside)
                promote(a.serving, beside, server)
                say("run: promoted %s (%.1f s)" % (r["candidate"]["id"], time.monotonic() - t0))
    except Refused as e:
        print("retrain: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:
        print("retrain: %s: %s" % (e.filename or a.cmd, e.strerror or e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
