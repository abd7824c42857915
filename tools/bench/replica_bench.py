#!/usr/bin/python3
"""`make bench`, replicas part: opecom-server replicas behind nginx on one MariaDB.

Starts Debian's mariadbd in a scratch folder (private socket), 1, 2 and 3
replicas of build/opecom-server on it (a fresh database each time), and
Debian's nginx in front with examples/deploy/nginx/opecom.conf (the
documented substitutions; its per-address limit_req lines dropped, since
wrk is one address). Then, through nginx, as server_bench.py does directly:

  - POST /api/predict with raw features, "reasons": 0: requests/s;
  - POST /api/track, batches of 50 page views, each a new session: events/s
    acknowledged (committed in MariaDB, innodb_flush_log_at_trx_commit=1).

Everything shares this machine's cores (replicas, nginx, MariaDB and wrk),
so the table shows what one machine does with more processes, not what
more machines would do; docs/deploy.md says which is which.

It also times one Redis GET round trip on loopback (Debian's redis-server,
redis-benchmark with one connection), to set beside one prediction, for the
question whether a cache in front of the model would help.

    /usr/bin/python3 tools/bench/replica_bench.py [--build build] [--runs 3] [--seconds 10]
"""

import argparse
import csv
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from bench import REPO, fmt, log, med
import server_bench
from server_bench import wrk

MODEL = os.path.join(REPO, "models", "shoppers-tabm-k4.opm")
SITE = os.path.join(REPO, "examples", "deploy", "nginx", "opecom.conf")
BATCH = 50
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, log_path, **kw):
    p = subprocess.Popen(argv, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, **kw)
    PROCS.append(p)
    return p


def stop(p, sig=signal.SIGTERM, grace=30):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in PROCS:
        PROCS.remove(p)
    return p.returncode


def wait_until(what, check, seconds=60):
    end = time.time() + seconds
    while time.time() < end:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError("%s did not come up within %d s" % (what, seconds))


# ---------------------------------------------------------------------------
# MariaDB
# ---------------------------------------------------------------------------

def mariadb(tmp):
    data, sock = os.path.join(tmp, "data"), os.path.join(tmp, "mysqld.sock")
    logf = os.path.join(tmp, "mariadb.log")
    os.makedirs(os.path.join(tmp, "tmp"))  # its own temporary folder, apart from others'
    root = ["--tmpdir=" + os.path.join(tmp, "tmp")]
    root += ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=" + data,
                    "--auth-root-authentication-method=normal", "--skip-test-db"] + root,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=120)
    p = spawn(["mariadbd", "--no-defaults", "--datadir=" + data, "--socket=" + sock,
               "--skip-networking", "--innodb-flush-log-at-trx-commit=1",
               "--innodb-buffer-pool-size=256M", "--max-connections=500"] + root, logf)
    client = ["mariadb", "--no-defaults", "-S", sock, "-uroot"]
    wait_until("mariadbd", lambda: subprocess.run(client + ["-e", "SELECT 1"],
                                                 capture_output=True).returncode == 0)
    return p, sock, client


def new_database(client, sock, name):
    subprocess.run(client + ["-e", "CREATE DATABASE %s; CREATE USER IF NOT EXISTS "
                             "'opecom'@'localhost' IDENTIFIED BY 'bench-pw'; GRANT SELECT, "
                             "INSERT, UPDATE, CREATE, INDEX, CREATE VIEW, REFERENCES ON %s.* "
                             "TO 'opecom'@'localhost'" % (name, name)], check=True)
    return "mariadb://opecom:bench-pw@localhost/%s?socket=%s" % (name, sock)


def count(client, name, table):
    out = subprocess.run(client + ["-N", "-B", "-e", "SELECT count(*) FROM %s.%s"
                                   % (name, table)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


# ---------------------------------------------------------------------------
# Replicas and nginx
# ---------------------------------------------------------------------------

def replica(build, tmp, name, url):
    cfg = os.path.join(tmp, name + ".json")
    with open(cfg, "w") as f:
        f.write('{"db": "%s"}' % url)  # the password stays off the command line
    p = subprocess.Popen([os.path.join(REPO, build, "opecom-server"), "--port", "0",
                          "--model", MODEL, "--threads", "16", "--config", cfg],
                         stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, name + ".err"),
                                                             "ab"), text=True, cwd=REPO)
    PROCS.append(p)
    for line in p.stdout:
        m = re.search(r"store http://127\.0\.0\.1:(\d+)/", line)
        if m:
            return p, int(m.group(1))
    raise RuntimeError("replica %s exited: see %s.err" % (name, name))


def nginx(tmp, ports):
    site = open(SITE).read()
    port = free_port()
    logs = os.path.join(tmp, "nginx")
    os.makedirs(logs, exist_ok=True)
    servers = "\n    ".join("server 127.0.0.1:%d max_fails=3 fail_timeout=10s;" % p
                            for p in ports)
    site = site.replace("listen 80;", "listen 127.0.0.1:%d;" % port)
    site = site.replace("server 127.0.0.1:8081 max_fails=3 fail_timeout=10s;", servers)
    site = "\n".join(line for line in site.split("\n")
                     if "server 127.0.0.1:8082 " not in line and "limit_req" not in line)
    site = site.replace("/var/log/nginx", logs)
    with open(os.path.join(logs, "site.conf"), "w") as f:
        f.write(site)
    conf = os.path.join(logs, "nginx.conf")
    temps = "".join("  %s_temp_path %s/%s;\n" % (k, logs, k)
                    for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    with open(conf, "w") as f:
        f.write("pid %s/nginx.pid;\nerror_log %s/error.log warn;\nworker_processes 2;\n"
                "events { worker_connections 4096; }\nhttp {\n%s  access_log off;\n"
                "  include %s/site.conf;\n}\n" % (logs, logs, temps, logs))
    p = spawn(["nginx", "-p", logs, "-c", conf, "-e", os.path.join(logs, "stderr.log"),
               "-g", "daemon off;"], os.path.join(logs, "stdout.log"))

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    wait_until("nginx", up)
    return p, port


# ---------------------------------------------------------------------------
# Redis round trip
# ---------------------------------------------------------------------------

def redis_round_trip(tmp):
    port = free_port()
    p = spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", tmp], os.path.join(tmp, "redis.log"))
    wait_until("redis-server", lambda: subprocess.run(
        ["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG")
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "get", "-n", "100000",
                          "-c", "1", "-P", "1", "--csv"], capture_output=True, text=True,
                         check=True).stdout
    stop(p)
    row = next(r for r in csv.DictReader(io.StringIO(out)) if r["test"] == "GET")
    return float(row["p50_latency_ms"]) * 1e3, float(row["rps"])


# ---------------------------------------------------------------------------

def run(build, runs=3, seconds=10, counts=(1, 2, 3)):
    for tool in ("mariadbd", "mariadb-install-db", "mariadb", "nginx", "redis-server",
                 "redis-benchmark", "wrk"):
        if shutil.which(tool) is None:
            raise RuntimeError("%s is missing (tools/install-deps.sh bench installs it)" % tool)
    tmp = tempfile.mkdtemp(prefix="opecom-replica-bench-")
    res = {"n": [], "predict": [], "track": [], "stored": [], "acked": []}
    db, sock, client = mariadb(tmp)
    try:
        for n in counts:
            name = "bench%d" % n
            url = new_database(client, sock, name)
            reps = [replica(build, tmp, "%s-r%d" % (name, i), url) for i in range(n)]
            proxy, port = nginx(tmp, [p for _, p in reps])
            base = "http://127.0.0.1:%d" % port
            wrk(base, "predict.lua", 2)  # warm-up
            pr = [wrk(base, "predict.lua", seconds)["rate"] for _ in range(runs)]
            tr, acked = [], 0
            for _ in range(runs):
                r = wrk(base, "track.lua", seconds, conns=32, env={"WRK_BATCH": str(BATCH)})
                tr.append(r["acked_batches"] * BATCH / r["seconds"])
                acked += r["acked_batches"] * BATCH
            stop(proxy)
            for p, _ in reps:
                stop(p)
            stored = count(client, name, "page_views")
            log("replicas %d: predict %.0f req/s, track %.0f events/s, %d acknowledged, %d "
                "stored" % (n, med(pr), med(tr), acked, stored))
            res["n"].append(n)
            res["predict"].append(med(pr))
            res["track"].append(med(tr))
            res["acked"].append(acked)
            res["stored"].append(stored)
        res["redis_p50_us"], res["redis_rps"] = redis_round_trip(tmp)
    finally:
        for p in list(PROCS):
            stop(p)
        stop(db)
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def table(res):
    return server_bench.table({
        "header": ["replicas behind nginx (one MariaDB)", "POST /api/predict", "POST /api/track",
                   "acknowledged / stored"],
        "rows": [[n, "%s req/s" % fmt(res["predict"][i]), "%s events/s" % fmt(res["track"][i]),
                  "%d / %d" % (res["acked"][i], res["stored"][i])]
                 for i, n in enumerate(res["n"])]})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args(argv)
    res = run(a.build, a.runs, a.seconds)
    print("\n".join(table(res)))
    print("\nRedis GET round trip on loopback, one connection: p50 %s us (%s requests/s)"
          % (fmt(res["redis_p50_us"]), fmt(res["redis_rps"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
