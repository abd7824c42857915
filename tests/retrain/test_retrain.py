#!/usr/bin/python3
"""test_retrain.py - the retraining loop (tools/retrain.py) end to end.

A real opecom-server runs on a free loopback port over a temporary SQLite
database that tools/seed_store.py filled with a synthetic shopping history
(the server replays it and closes the sessions), with an admin token in a
temporary configuration file and a temporary copy of
models/shoppers-tabm-k4.opm as its model; a second one (its own empty
database) serves the same file, as a replica on the same machine would, so
every reload and id check is made on both. Then:

- export: refused (exit 1, nothing written) with too few sessions or too few
  purchases; otherwise train.csv and holdout.csv have the UCI columns, hold
  together exactly the rows of the sessions_export view in its order, and
  every holdout session closed after every training one (--holdout-fraction
  and --holdout-days);
- export from MariaDB: the same rows loaded into a real mariadbd (Debian's
  mariadb-server in a scratch folder, schema.sql, a user whose password
  needs percent-encoding and quoting) give byte for byte the same files
  through mariadb://; a wrong password is exit 1 with the client's reason.
  Skipped, with the reason, when mariadb-server is not installed;
- run with a margin no candidate can reach: not better, nothing promoted,
  the serving file and the server's model id unchanged; compare's numbers
  are those of `opecom eval` run here on the same files;
- run with the default margin and a tiny fast trainer configuration: better,
  promoted: /metrics shows the candidate's id (its header CRC), the server's
  prediction for a fixed session changes, the old file is PATH.previous;
- rollback: the old id and the old prediction are back; a second rollback,
  by SIGHUP to the server's pid, brings the candidate back;
- promote of a truncated candidate: the server refuses it, promote exits 1,
  the serving file, PATH.previous and the model id are as before and the
  truncated file is back where it was.

Every process started here is stopped and every temporary folder removed,
also on failure or timeout; the whole run is bounded to 240 s.

Usage: BUILD=build /usr/bin/python3 tests/retrain/test_retrain.py  (make test)
Prints one line per check, the timings and "N passed, N failed"; exit
status 1 on failure.
"""
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
PYTHON = "/usr/bin/python3"
RETRAIN = os.path.join(ROOT, "tools", "retrain.py")
MODEL = os.path.join(ROOT, "models", "shoppers-tabm-k4.opm")
TIME_LIMIT = 240
TOKEN = "retrain-test-token-0123456789"
SESSIONS = 3000
# the trainer's fast configuration (tools/train_tabm.py's docstring): ~3 s
TINY = ["--d-block", "24", "--n-blocks", "2", "--epochs", "10", "--lr", "3e-3",
        "--batch-size", "64"]
UCI = ["Administrative", "Administrative_Duration", "Informational", "Informational_Duration",
       "ProductRelated", "ProductRelated_Duration", "BounceRates", "ExitRates", "PageValues",
       "SpecialDay", "Month", "OperatingSystems", "Browser", "Region", "TrafficType",
       "VisitorType", "Weekend", "Revenue"]
PREDICT = {
    "Administrative": 2, "Administrative_Duration": 40.5, "Informational": 0,
    "Informational_Duration": 0, "ProductRelated": 18, "ProductRelated_Duration": 620,
    "BounceRates": 0.01, "ExitRates": 0.03, "PageValues": 12.4, "SpecialDay": 0,
    "Month": "Nov", "OperatingSystems": 2, "Browser": 2, "Region": 1, "TrafficType": 2,
    "VisitorType": "Returning_Visitor", "Weekend": False, "reasons": 0,
}

# ===================================================================== #
# Results, processes, clean-up
# ===================================================================== #

passed = []
failed = []
procs = []
tmpdirs = []
timings = []


def check(name, ok, detail=""):
    (passed if ok else failed).append(name)
    print(("ok      " if ok else "FAILED  ") + name + ("" if ok or not detail else ": " + detail),
          flush=True)
    return ok


def stop(p, grace=5.0):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)   # its own group: the trainer too
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(2)
    except subprocess.TimeoutExpired:
        pass


def cleanup():
    for p in reversed(procs):
        stop(p)
    procs.clear()
    for d in tmpdirs:
        shutil.rmtree(d, ignore_errors=True)
    tmpdirs.clear()


def on_signal(signum, _frame):
    raise TimeoutError("time limit of %d s reached" % TIME_LIMIT if signum == signal.SIGALRM
                       else "stopped by signal %d" % signum)


def retrain(*args, env=None, timeout=120, label=None):
    """tools/retrain.py ARGS: (exit status, stdout, stderr), timed."""
    t0 = time.monotonic()
    p = subprocess.Popen([PYTHON, RETRAIN, "--bin-dir", BUILD] + list(args), cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, env=dict(os.environ, **(env or {})))
    procs.append(p)
    out, err = p.communicate(timeout=timeout)
    procs.remove(p)
    timings.append(("retrain.py " + (label or args[0]), time.monotonic() - t0))
    sys.stdout.write("".join("    | " + line + "\n" for line in out.splitlines()))
    sys.stdout.write("".join("    ! " + line + "\n" for line in err.splitlines()))
    return p.returncode, out, err


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def crc_id(path):
    with open(path, "rb") as f:
        return "%08x" % int.from_bytes(f.read(32)[28:32], "little")


# ===================================================================== #
# The server
# ===================================================================== #

class Shop:
    def __init__(self, tmp):
        self.tmp = tmp
        self.db = os.path.join(tmp, "shop.db")
        self.model = os.path.join(tmp, "serving", "model.opm")
        os.makedirs(os.path.dirname(self.model))
        shutil.copyfile(MODEL, self.model)
        self.config = os.path.join(tmp, "config.json")
        with open(self.config, "w") as f:
            json.dump({"admin_token": TOKEN}, f)
        t0 = time.monotonic()
        seed = subprocess.run([PYTHON, os.path.join(ROOT, "tools", "seed_store.py"),
                               "--server", os.path.join(BUILD, "opecom-server"), "--db", self.db,
                               "--model", MODEL, "--sessions", str(SESSIONS)],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
        if seed.returncode != 0:
            raise RuntimeError("seed_store: " + seed.stderr.strip())
        timings.append(("seed_store.py (%d sessions)" % SESSIONS, time.monotonic() - t0))
        t0 = time.monotonic()
        self.err = open(os.path.join(tmp, "server.err"), "wb")
        self.proc = subprocess.Popen([os.path.join(BUILD, "opecom-server"), "--port", "0",
                                      "--db", self.db, "--model", self.model, "--config",
                                      self.config, "--threads", "4"], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=self.err,
                                     start_new_session=True)
        procs.append(self.proc)
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", self.proc.stdout.readline().decode())
        if not m:
            raise RuntimeError("opecom-server did not start: " + self.log())
        self.url = "http://127.0.0.1:%s" % m.group(1)
        # ready = replayed; the closed sessions' features are then being written
        self.wait(lambda: self.http("/readyz")[0] == 200, "ready")
        self.wait(lambda: self.closed() >= SESSIONS, "%d closed sessions" % SESSIONS)
        timings.append(("server start and replay", time.monotonic() - t0))
        # a second server on the same model file, as a replica on the same
        # machine would be (its own empty database: only its model matters)
        self.replica = subprocess.Popen([os.path.join(BUILD, "opecom-server"), "--port", "0",
                                         "--db", os.path.join(tmp, "replica.db"), "--model",
                                         self.model, "--config", self.config, "--threads", "2"],
                                        cwd=ROOT, stdout=subprocess.PIPE, stderr=self.err,
                                        start_new_session=True)
        procs.append(self.replica)
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", self.replica.stdout.readline().decode())
        if not m:
            raise RuntimeError("the second opecom-server did not start: " + self.log())
        self.replica_url = "http://127.0.0.1:%s" % m.group(1)

    def log(self):
        self.err.flush()
        return open(os.path.join(self.tmp, "server.err")).read()[-2000:]

    def wait(self, cond, what, seconds=30):
        end = time.monotonic() + seconds
        while not cond():
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError("server: no %s after %d s: %s" % (what, seconds, self.log()))
            time.sleep(0.1)

    def closed(self):
        db = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True)
        try:
            return db.execute("SELECT count(*) FROM session_features").fetchone()[0]
        finally:
            db.close()

    def http(self, path, body=None, url=None):
        req = urllib.request.Request((url or self.url) + path, data=None if body is None else
                                     json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def model_id(self):
        """The id both servers show, or what each shows when they differ."""
        ids = []
        for url in (self.url, self.replica_url):
            text = self.http("/metrics", url=url)[1]
            m = re.search(r'opecom_model_info\{variant="default",[^}]*id="([0-9a-f]{8})"', text)
            ids.append(m.group(1) if m else None)
        return ids[0] if ids[0] == ids[1] else "server %s, replica %s" % tuple(ids)

    def probability(self):
        st, body = self.http("/api/predict", PREDICT)
        return json.loads(body)["probability"] if st == 200 else None

    def reload_flags(self):
        return ["--serving", self.model, "--url", self.url, "--url", self.replica_url]


# ===================================================================== #
# The checks
# ===================================================================== #

def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def view_rows(db):
    """The sessions_export view, as values, and each row's closing time."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        rows = [tuple(r) for r in con.execute("SELECT * FROM sessions_export")]
        closed = [r[0] for r in con.execute(
            "SELECT closed_ms FROM session_features ORDER BY closed_ms, start_ms, session, part")]
    finally:
        con.close()
    return rows, closed


def as_values(row):
    """A CSV row back as the view's values (numbers as numbers)."""
    out = []
    for v in row:
        try:
            x = float(v)
            out.append(int(x) if re.fullmatch(r"-?\d+", v) else x)
        except ValueError:
            out.append(v)
    return tuple(out)


def test_export(shop, tmp):
    out = os.path.join(tmp, "refused")
    rc, _, err = retrain("export", "--db", "sqlite:" + shop.db, "--out", out,
                         "--min-train", "100000", label="export, too few sessions")
    check("export refuses too few sessions (exit 1, nothing written)",
          rc == 1 and "at least 100000" in err and not os.path.exists(out), "%d %s" % (rc, err))
    rc, _, err = retrain("export", "--db", "sqlite:" + shop.db, "--out", out,
                         "--min-positives", "5000", label="export, too few purchases")
    check("export refuses too few purchases (exit 1, nothing written)",
          rc == 1 and "with a purchase" in err and not os.path.exists(out), "%d %s" % (rc, err))

    view, closed = view_rows(shop.db)
    for flags, what in ((["--holdout-fraction", "0.25"], "--holdout-fraction 0.25"),
                        (["--holdout-days", "5"], "--holdout-days 5")):
        out = os.path.join(tmp, "export-" + flags[0].strip("-"))
        rc, _, err = retrain("export", "--db", "sqlite:" + shop.db, "--out", out, *flags,
                             label="export " + what)
        if not check("export %s exits 0" % what, rc == 0, err):
            continue
        h1, train = read_csv(os.path.join(out, "train.csv"))
        h2, hold = read_csv(os.path.join(out, "holdout.csv"))
        check("export %s: both files have the 18 UCI columns in order" % what,
              h1 == UCI and h2 == UCI, "%s %s" % (h1, h2))
        got = [as_values(r) for r in train + hold]
        check("export %s: train + holdout = the sessions_export view, in order (%d rows)"
              % (what, len(view)), got == view,
              "%d rows vs %d" % (len(got), len(view)))
        n = len(train)
        ok = 0 < n < len(closed) and max(closed[:n]) < min(closed[n:])
        if flags[0] == "--holdout-fraction":
            ok = ok and abs(len(hold) - 0.25 * len(view)) <= 2
        else:
            ok = ok and min(closed[n:]) >= closed[-1] - 5 * 86400000 > max(closed[:n])
        check("export %s: every holdout session closed after every training one "
              "(%d train, %d holdout)" % (what, n, len(hold)), ok)


def sql_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return "%.17e" % v      # a double literal, exact
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("\\", "\\\\").replace("'", "''") + "'"


def test_mariadb(shop, tmp):
    """The same rows in a real mariadbd (schema.sql, loaded from the SQLite
    file): export through mariadb:// gives byte for byte the same files."""
    progs = {n: shutil.which(n, path="/usr/sbin:/usr/bin:/sbin:/bin")
             for n in ("mariadbd", "mariadb-install-db", "mariadb")}
    if not all(progs.values()):
        print("skipped export from MariaDB: %s missing (apt-get install -y mariadb-server)"
              % ", ".join(n for n, p in progs.items() if not p))
        return
    t0 = time.monotonic()
    d = os.path.join(tmp, "mariadb")
    os.makedirs(d)
    sock = os.path.join(d, "sock")
    os.makedirs(d + "/tmp")  # its own: another mariadbd's temporary files stay apart
    user = ["--user=root", "--tmpdir=" + d + "/tmp"] if os.geteuid() == 0 else ["--tmpdir=" + d + "/tmp"]
    inst = subprocess.run([progs["mariadb-install-db"], "--no-defaults", "--datadir=" + d + "/data",
                           "--auth-root-authentication-method=normal", "--skip-test-db",
                           "--skip-name-resolve"] + user, capture_output=True, text=True,
                          timeout=60)
    if not check("mariadb-install-db", inst.returncode == 0, inst.stderr[-500:]):
        return
    p = subprocess.Popen([progs["mariadbd"], "--no-defaults", "--datadir=" + d + "/data",
                          "--socket=" + sock, "--pid-file=" + d + "/pid",
                          "--log-error=" + d + "/err.log", "--skip-networking",
                          "--skip-name-resolve", "--innodb-buffer-pool-size=64M"] + user,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    procs.append(p)

    def root(sql, db=None):
        return subprocess.run([progs["mariadb"], "--no-defaults", "--socket", sock, "--user",
                               "root"] + ([db] if db else []), input=sql, capture_output=True,
                              text=True, timeout=60)
    end = time.monotonic() + 30
    while root("SELECT 1").returncode != 0:
        if time.monotonic() > end or p.poll() is not None:
            check("mariadbd starts", False, open(d + "/err.log").read()[-500:])
            return
        time.sleep(0.1)
    # a password that needs percent-encoding in the URL and quoting in an option file
    password = 's3cr:t@/pw%"q'
    url_pw = urllib.parse.quote(password, safe="")
    with open(os.path.join(ROOT, "examples", "server", "schema.sql")) as f:
        schema = f.read().replace("@ID@", "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY")
    sq = sqlite3.connect("file:%s?mode=ro" % shop.db, uri=True)
    load = []
    for table in ("sessions", "session_features"):
        cur = sq.execute("SELECT * FROM " + table)
        cols = ",".join(c[0] for c in cur.description)
        rows = cur.fetchall()
        for i in range(0, len(rows), 500):
            load.append("INSERT INTO %s (%s) VALUES %s;" % (table, cols, ",".join(
                "(" + ",".join(sql_literal(v) for v in r) + ")" for r in rows[i:i + 500])))
    sq.close()
    r = root("DELETE FROM mysql.global_priv WHERE User = ''; FLUSH PRIVILEGES;"
             "CREATE USER 'opecom'@'localhost' IDENTIFIED BY '%s';"
             "CREATE DATABASE opecom; GRANT SELECT ON opecom.* TO 'opecom'@'localhost';"
             % password.replace("'", "''"))
    r2 = root(schema + "\n" + "\n".join(load), "opecom") if r.returncode == 0 else r
    if not check("MariaDB has the schema and the closed sessions", r2.returncode == 0,
                 r.stderr + r2.stderr):
        return
    out = os.path.join(tmp, "export-mariadb")
    rc, _, err = retrain("export", "--db", "mariadb://opecom:%s@localhost/opecom?socket=%s"
                         % (url_pw, sock), "--out", out, "--holdout-fraction", "0.25",
                         label="export from MariaDB")
    same = rc == 0 and all(
        open(os.path.join(out, n), "rb").read()
        == open(os.path.join(tmp, "export-holdout-fraction", n), "rb").read()
        for n in ("train.csv", "holdout.csv"))
    check("export from MariaDB = export from SQLite, byte for byte", same, err)
    rc, _, err = retrain("export", "--db", "mariadb://opecom:wrong@localhost/opecom?socket="
                         + sock, "--out", out + "-denied", label="export from MariaDB, denied")
    check("export from MariaDB with a wrong password: exit 1, the client's reason",
          rc == 1 and "Access denied" in err and not os.path.exists(out + "-denied"), err)
    stop(p)
    procs.remove(p)
    timings.append(("MariaDB part (install, start, load, 2 exports)", time.monotonic() - t0))


def eval_by_hand(model, holdout):
    p = subprocess.run([os.path.join(BUILD, "opecom"), "eval", "--json", "-m", model, holdout],
                       capture_output=True, text=True, timeout=60)
    r = json.loads(p.stdout)
    return r["roc_auc"], r["log_loss"]


def check_compare(work, what, shop):
    """compare.json's figures against `opecom eval` run here, for both models,
    found by their ids (a promoted candidate now is the serving file, the
    model it replaced PATH.previous)."""
    with open(os.path.join(work, "compare.json")) as f:
        r = json.load(f)
    hold = os.path.join(work, "holdout.csv")
    places = [os.path.join(work, "candidate.opm"), shop.model, shop.model + ".previous"]
    found = 0
    same = True
    for side in ("serving", "candidate"):
        path = next((p for p in places if os.path.exists(p) and crc_id(p) == r[side]["id"]), None)
        if path is None:
            continue
        found += 1
        auc, ll = eval_by_hand(path, hold)
        same = same and auc == r[side]["roc_auc"] and ll == r[side]["log_loss"]
    check("%s: compare's ROC-AUC and log loss = opecom eval by hand on the same files" % what,
          found == 2 and same, json.dumps(r))
    return r


def test_loop(shop, tmp):
    first_id = shop.model_id()
    first_p = shop.probability()
    first_sha = sha(shop.model)
    check("server serves the copy of the default model (id %s)" % first_id,
          first_id == crc_id(MODEL) and first_p is not None)

    # not better: a margin of 1.0 in log loss cannot be met
    work = os.path.join(tmp, "run-kept")
    rc, out, err = retrain("run", "--db", "sqlite:" + shop.db, "--work", work,
                           *shop.reload_flags(), "--margin", "1.0", "--", *TINY,
                           env={"OPECOM_ADMIN_TOKEN": TOKEN}, label="run --margin 1.0 (kept)")
    check("run --margin 1.0 exits 0 and keeps the serving model",
          rc == 0 and "decision: not better" in out and "run: kept" in out, out + err)
    r = check_compare(work, "run --margin 1.0", shop)
    check("run --margin 1.0: file, PATH.previous and server id unchanged",
          sha(shop.model) == first_sha and not os.path.exists(shop.model + ".previous")
          and shop.model_id() == first_id and not r["better"])
    # run compares against what the servers serve: another file is refused
    rc, _, err = retrain("run", "--db", "sqlite:" + shop.db, "--work", work + "-wrong",
                         "--serving", os.path.join(work, "candidate.opm"), "--url", shop.url,
                         "--", *TINY, env={"OPECOM_ADMIN_TOKEN": TOKEN},
                         label="run, --serving not served")
    check("run refuses a --serving file the server does not serve (exit 1, nothing done)",
          rc == 1 and "does not serve" in err and not os.path.exists(work + "-wrong"), err)
    # compare alone says so in its exit status
    rc, _, _ = retrain("compare", "--serving", shop.model, "--candidate",
                       os.path.join(work, "candidate.opm"), "--holdout",
                       os.path.join(work, "holdout.csv"), "--margin", "1.0",
                       label="compare --margin 1.0")
    check("compare --margin 1.0 exits 3 (not better)", rc == 3)
    rc, _, _ = retrain("compare", "--serving", shop.model, "--candidate",
                       os.path.join(work, "candidate.opm"), "--holdout",
                       os.path.join(work, "holdout.csv"), label="compare")
    check("compare with the default margin exits 0 (better)", rc == 0)

    # better: default margin
    work = os.path.join(tmp, "run-promoted")
    rc, out, err = retrain("run", "--db", "sqlite:" + shop.db, "--work", work,
                           *shop.reload_flags(), "--", *TINY, env={"OPECOM_ADMIN_TOKEN": TOKEN},
                           label="run (promoted)")
    check("run exits 0 and promotes", rc == 0 and "decision: better" in out
          and "run: promoted" in out, out + err)
    r = check_compare(work, "run", shop)
    new_id = crc_id(shop.model)
    new_p = shop.probability()
    check("promoted: /metrics of both servers shows the candidate's id %s (was %s)"
          % (new_id, first_id),
          r["better"] and new_id == r["candidate"]["id"] != first_id
          and shop.model_id() == new_id, "metrics %s" % shop.model_id())
    check("promoted: the prediction changes (%.6f -> %.6f)" % (first_p, new_p or -1),
          new_p is not None and new_p != first_p)
    check("promoted: the old file is PATH.previous",
          os.path.exists(shop.model + ".previous") and sha(shop.model + ".previous") == first_sha)

    # rollback over the admin route, then again by SIGHUP
    # the token from the server's configuration file this time
    rc, out, err = retrain("rollback", *shop.reload_flags(), "--config", shop.config,
                           label="rollback (admin route)")
    check("rollback restores the old id %s and prediction" % first_id,
          rc == 0 and shop.model_id() == first_id and sha(shop.model) == first_sha
          and shop.probability() == first_p, out + err)
    rc, out, err = retrain("rollback", *shop.reload_flags(), "--pid", str(shop.proc.pid),
                           "--pid", str(shop.replica.pid),
                           label="rollback (SIGHUP)")
    check("a second rollback (SIGHUP to the pid) brings %s back" % new_id,
          rc == 0 and shop.model_id() == new_id and shop.probability() == new_p, out + err)

    # refused: a truncated candidate
    bad = os.path.join(os.path.dirname(shop.model), "truncated.opm")
    with open(shop.model, "rb") as f:
        data = f.read()
    with open(bad, "wb") as f:
        f.write(data[:len(data) // 2])
    before = (sha(shop.model), sha(shop.model + ".previous"), sha(bad))
    rc, out, err = retrain("promote", "--candidate", bad, *shop.reload_flags(),
                           env={"OPECOM_ADMIN_TOKEN": TOKEN}, label="promote truncated (refused)")
    check("promote of a truncated candidate is refused (exit 1, the server's reason)",
          rc == 1 and "refused" in err, "%d %s" % (rc, out + err))
    after = (sha(shop.model), sha(shop.model + ".previous"),
             sha(bad) if os.path.exists(bad) else None)
    check("refused: serving file, PATH.previous and the truncated file as before; id %s"
          % new_id, after == before and shop.model_id() == new_id
          and shop.probability() == new_p, "metrics %s" % shop.model_id())
    check("both servers still running", shop.proc.poll() is None and shop.replica.poll() is None,
          shop.log())


# ===================================================================== #
# Main
# ===================================================================== #

def main():
    signal.signal(signal.SIGALRM, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.alarm(TIME_LIMIT)
    start = time.monotonic()
    try:
        for prog in ("opecom-server", "opecom", "opecom-convert"):
            if not os.access(os.path.join(BUILD, prog), os.X_OK):
                raise RuntimeError("%s/%s is missing: make first" % (BUILD, prog))
        tmp = tempfile.mkdtemp(prefix="opecom-retrain-")
        tmpdirs.append(tmp)
        shop = Shop(tmp)
        test_export(shop, tmp)
        test_mariadb(shop, tmp)
        test_loop(shop, tmp)
    except Exception as e:  # a timeout or a broken step: one failure, then clean up
        check("retrain test ran to the end", False, "%s: %s" % (type(e).__name__, e))
    finally:
        signal.alarm(0)
        cleanup()
    for what, secs in timings:
        print("  %-48s %6.1f s" % (what, secs))
    print("retrain: %.1f s" % (time.monotonic() - start))
    print("%d passed, %d failed" % (len(passed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
