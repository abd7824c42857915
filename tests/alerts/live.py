#!/usr/bin/python3
"""live.py - the shipped alerting rules, end to end, with real programs.

First the static checks: promtool checks and unit-tests
examples/deploy/prometheus/opecom-rules.yml, checks prometheus.yml, and
amtool checks alertmanager.yml and its routing by severity. Then the chain
runs for real on 127.0.0.1: $BUILD/opecom-server with its own database,
Prometheus (scrape and evaluation every second) loading the rules, and
Alertmanager (no cluster) whose webhook receivers point at a small HTTP
listener inside this script. A tracker thread posts page views to
/api/track; while it does, OpecomNoEvents must stay silent (not even
pending); once it stops, the alert must reach the warning webhook within a
bound, and once it starts again the resolution must arrive too.

The shipped rules' windows are minutes. The test runs a copy rendered 60
times faster: in every range selector `[Nm]` and every `for: Nm` the unit
becomes seconds (`Nh` becomes minutes); nothing else changes, so the
expressions under test are the shipped ones. The rules are written in
minutes and hours only (checked here), so the substitution covers them all.
The Alertmanager copy gets the listener's address in place of the webhook
URLs and one second for group_wait, group_interval and repeat_interval.

Everything runs under a hard time bound (LIMIT seconds): a broken
environment (a program missing, a port that never answers) fails the test
instead of hanging it. Every process started is killed at the end, even on
failure, and the scratch folder under $BUILD/tmp is removed; the tail of
each program's log is printed when something failed.

Usage: /usr/bin/python3 tests/alerts/live.py   (from the repository root;
run by `make test`). Environment: BUILD (default build). Prints one line per
check and "N passed, N failed"; exit status 1 on any failure.
"""
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

LIMIT = 120            # seconds for the whole test
RULES = "examples/deploy/prometheus/opecom-rules.yml"
RULE_TESTS = "examples/deploy/prometheus/opecom-rules.test.yml"
PROM_CONFIG = "examples/deploy/prometheus/prometheus.yml"
AM_CONFIG = "examples/deploy/alertmanager/alertmanager.yml"
MODEL = "models/shoppers-tabm-k4.opm"
BUILD = os.environ.get("BUILD", "build")

# OpecomNoEvents in the rendered rules: a 15 s window, then `for: 5s`.
NO_EVENTS_WINDOW = 15
NO_EVENTS_FOR = 5
DELIVERY_BOUND = 45    # seconds from the last event to the webhook
RESOLVE_BOUND = 20     # seconds from the first new event to the resolution


class Failed(Exception):
    """A check failed; the message says what was expected and what came."""


class Timeout(Exception):
    """The hard time bound ran out."""


# ===================================================================== #
# Rendering the shipped files for a fast run
# ===================================================================== #

DURATION_SPOTS = re.compile(r"(\[|\bfor:\s*)(\d+)([a-z]+)(\])?")


def render_rules(text):
    """The rules with every window and `for` 60 times shorter."""
    bad = [m.group(0) for m in DURATION_SPOTS.finditer(text) if m.group(3) not in ("m", "h")]
    if bad:
        raise Failed("durations the 60x substitution cannot shorten (use minutes or hours): "
                     + ", ".join(bad))

    def shorter(m):
        return m.group(1) + m.group(2) + {"m": "s", "h": "m"}[m.group(3)] + (m.group(4) or "")

    out, n = DURATION_SPOTS.subn(shorter, text)
    if n == 0 or "increase(opecom_events_ingested_total[15s])" not in out:
        raise Failed("the rendered rules have no OpecomNoEvents window of 15s")
    return out


def render_alertmanager(text, webhook_base):
    """alertmanager.yml pointing at our listener, with one second waits."""
    out, n = re.subn(r"url: http://[^/\s]+/", "url: " + webhook_base + "/", text)
    if n < 2:
        raise Failed("alertmanager.yml: expected at least 2 webhook URLs, found %d" % n)
    out = re.sub(r"\b(group_wait|group_interval|repeat_interval): \S+", r"\1: 1s", out)
    return out


# ===================================================================== #
# Processes, ports, HTTP
# ===================================================================== #

class Proc:
    """A child in its own process group, its output in a log file."""

    def __init__(self, name, argv, log_path):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "wb")
        # setpriv: the child gets SIGKILL if this script dies without
        # cleaning up (kill -9, a crash).
        prefix = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []
        self.p = subprocess.Popen(prefix + argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(5)
        self.log.close()

    def tail(self, n=25):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])


def free_port():
    """A port free on 127.0.0.1 right now (the caller retries on a race)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(method, url, body=None, timeout=3):
    """(status, body text); status -1 when nothing answered."""
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return -1, ""


def wait_for(what, fn, seconds, procs=()):
    """Polls fn() until it returns a true value; fails after `seconds` or
    as soon as one of `procs` has exited."""
    end = time.monotonic() + seconds
    while True:
        v = fn()
        if v:
            return v
        for p in procs:
            if not p.alive():
                raise Failed("%s: %s exited with status %s while waiting" %
                             (what, p.name, p.p.returncode))
        if time.monotonic() > end:
            raise Failed("timed out after %ds waiting for %s" % (seconds, what))
        time.sleep(0.2)


# ===================================================================== #
# The webhook receiver and the tracker
# ===================================================================== #

class Webhook:
    """Records every notification Alertmanager posts: (time, path, JSON)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(min(n, 1 << 20))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsable": raw.decode("utf-8", "replace")}
                with hook.lock:
                    hook.got.append((time.monotonic(), self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self):
        """[(time, path, receiver, status, alert)] for every alert delivered."""
        with self.lock:
            got = list(self.got)
        out = []
        for t, path, body in got:
            for a in body.get("alerts", []):
                out.append((t, path, body.get("receiver"), a.get("status"), a))
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Tracker:
    """Posts a page view to /api/track four times a second, as tracker.js
    would, until stopped; remembers when the last batch was acknowledged."""

    def __init__(self, port):
        self.url = "http://127.0.0.1:%d/api/track" % port
        self.stop_flag = threading.Event()
        self.accepted = 0
        self.errors = []
        self.last_ack = None
        self.first_ack = None
        self.n = 0
        self.thread = None

    def start(self):
        self.stop_flag.clear()
        self.first_ack = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag.is_set():
            self.n += 1
            now = int(time.time() * 1000)
            batch = {"sent_at": now, "events": [{
                "type": "pageview", "visitor_id": "v-alerts-%d" % (self.n % 7),
                "session_id": "s-alerts-%d" % (self.n % 7), "ts": now,
                "page_type": "product_related", "page_id": "product/espresso-cup",
                "duration": 4.5, "os": "Linux", "browser": "Firefox"}]}
            status, body = request("POST", self.url, batch)
            if status == 200:
                self.accepted += 1
                self.last_ack = time.monotonic()
                if self.first_ack is None:
                    self.first_ack = self.last_ack
            elif len(self.errors) < 5:
                self.errors.append("%d %s" % (status, body[:200]))
            self.stop_flag.wait(0.25)

    def stop(self):
        self.stop_flag.set()
        if self.thread is not None:
            self.thread.join(5)


# ===================================================================== #
# The test
# ===================================================================== #

class Run:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.procs = []
        self.tmp = None
        self.hook = None
        self.tracker = None

    def check(self, name, fn):
        """Runs one check; a failure is counted and printed, not raised."""
        try:
            fn()
        except Failed as e:
            self.failed += 1
            print("FAIL %s: %s" % (name, e), flush=True)
            return False
        self.passed += 1
        print("ok   %s" % name, flush=True)
        return True

    def skip_rest(self, names):
        for n in names:
            self.failed += 1
            print("FAIL %s: not run, an earlier step failed" % n, flush=True)

    # ----------------------------------------------------------------- #
    # Static checks
    # ----------------------------------------------------------------- #

    def tool(self, argv, want_rc=0):
        if shutil.which(argv[0]) is None:
            raise Failed("%s is not installed (tools/install-deps.sh test)" % argv[0])
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=30)
        except subprocess.TimeoutExpired:
            raise Failed("%s did not finish in 30 s" % " ".join(argv))
        if r.returncode != want_rc:
            raise Failed("%s exited %d:\n%s%s" % (" ".join(argv), r.returncode, r.stdout,
                                                  r.stderr))
        return r.stdout

    def check_routes(self):
        for severity, receiver in (("page", "opecom-page"), ("warning", "opecom-warning")):
            out = self.tool(["amtool", "config", "routes", "test", "--config.file=" + AM_CONFIG,
                             "severity=" + severity]).strip()
            if out != receiver:
                raise Failed("severity=%s routes to %r, expected %r" % (severity, out, receiver))

    def static_checks(self):
        self.check("promtool check rules " + RULES,
                   lambda: self.tool(["promtool", "check", "rules", RULES]))
        self.check("promtool test rules " + RULE_TESTS,
                   lambda: self.tool(["promtool", "test", "rules", RULE_TESTS]))
        self.check("promtool check config " + PROM_CONFIG,
                   lambda: self.tool(["promtool", "check", "config", PROM_CONFIG]))
        self.check("amtool check-config " + AM_CONFIG,
                   lambda: self.tool(["amtool", "check-config", AM_CONFIG]))
        self.check("alertmanager.yml routes severity=page and severity=warning to their receivers",
                   self.check_routes)

    # ----------------------------------------------------------------- #
    # The live chain
    # ----------------------------------------------------------------- #

    def render(self):
        with open(RULES) as f:
            rules = render_rules(f.read())
        self.rules_path = os.path.join(self.tmp, "opecom-rules.yml")
        with open(self.rules_path, "w") as f:
            f.write(rules)
        self.tool(["promtool", "check", "rules", self.rules_path])
        with open(AM_CONFIG) as f:
            am = render_alertmanager(f.read(), self.hook.base)
        self.am_path = os.path.join(self.tmp, "alertmanager.yml")
        with open(self.am_path, "w") as f:
            f.write(am)
        self.tool(["amtool", "check-config", self.am_path])

    def start_server(self):
        binary = os.path.join(BUILD, "opecom-server")
        if not os.access(binary, os.X_OK):
            raise Failed("%s is missing: run make first" % binary)
        srv = Proc("opecom-server", [binary, "--port", "0", "--db",
                                     os.path.join(self.tmp, "alerts.db"), "--model", MODEL,
                                     "--threads", "4"],
                   os.path.join(self.tmp, "server.log"))
        self.procs.append(srv)

        def port():
            try:
                with open(srv.log_path) as f:
                    m = re.search(r"metrics http://127\.0\.0\.1:(\d+)/metrics", f.read())
            except OSError:
                return None
            return int(m.group(1)) if m else None

        self.port = wait_for("opecom-server's URL lines", port, 20, [srv])
        wait_for("opecom-server /readyz", lambda: request("GET", "http://127.0.0.1:%d/readyz" %
                                                        self.port)[0] == 200, 20, [srv])

    def start_on_free_port(self, name, argv_for, is_ours):
        """Starts a program on a port picked now; if another process took the
        port in between (the program exits), tries again with a new one.
        is_ours(port) tells our program, ready, from anything else there."""
        for attempt in range(3):
            port = free_port()
            p = Proc(name, argv_for(port), os.path.join(self.tmp, "%s-%d.log" % (name, attempt)))
            self.procs.append(p)
            try:
                wait_for(name + " ready", lambda: p.alive() and is_ours(port), 30, [p])
                return port
            except Failed:
                if p.alive() or attempt == 2:
                    raise
        raise Failed("%s did not start" % name)

    @staticmethod
    def answers(port, path, mine):
        """Whether 127.0.0.1:port answers path with JSON that mine() accepts."""
        status, body = request("GET", "http://127.0.0.1:%d%s" % (port, path))
        try:
            return status == 200 and mine(json.loads(body))
        except (ValueError, KeyError, TypeError):
            return False

    def start_alertmanager(self):
        storage = os.path.join(self.tmp, "alertmanager")
        os.mkdir(storage)
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise Failed("Alertmanager is not installed (tools/install-deps.sh test)")
        self.am_port = self.start_on_free_port("alertmanager", lambda port: [
            binary, "--config.file=" + self.am_path, "--storage.path=" + storage,
            "--web.listen-address=127.0.0.1:%d" % port, "--cluster.listen-address=",
            "--log.level=warn"], lambda port: self.answers(
                port, "/api/v2/status", lambda st: self.hook.base in st["config"]["original"]))

    def start_prometheus(self):
        config = os.path.join(self.tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("""# the test's Prometheus: everything every second
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:%d"]
scrape_configs:
  - job_name: opecom
    static_configs:
      - targets: ["127.0.0.1:%d"]
""" % (os.path.basename(self.rules_path), self.am_port, self.port))
        self.tool(["promtool", "check", "config", config])
        storage = os.path.join(self.tmp, "prometheus")
        os.mkdir(storage)
        if shutil.which("prometheus") is None:
            raise Failed("prometheus is not installed (tools/install-deps.sh test)")
        self.prom_port = self.start_on_free_port("prometheus", lambda port: [
            "prometheus", "--config.file=" + config, "--storage.tsdb.path=" + storage,
            "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
            lambda port: self.answers(port, "/api/v1/status/flags",
                                      lambda st: st["data"]["storage.tsdb.path"] == storage))

    def query(self, expr):
        """The instant vector of expr as [(labels, float)]."""
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (
            self.prom_port, urllib.request.quote(expr))
        status, body = request("GET", url)
        if status != 200:
            return []
        return [(r["metric"], float(r["value"][1])) for r in json.loads(body)["data"]["result"]]

    def prom_alerts(self, name):
        """States ("pending"/"firing") of Prometheus' alerts called name."""
        status, body = request("GET", "http://127.0.0.1:%d/api/v1/alerts" % self.prom_port)
        if status != 200:
            raise Failed("Prometheus /api/v1/alerts answered %d" % status)
        return [a["state"] for a in json.loads(body)["data"]["alerts"]
                if a["labels"].get("alertname") == name]

    def chain_up(self):
        self.render()
        self.start_server()
        self.start_alertmanager()
        self.tracker = Tracker(self.port)
        self.tracker.start()
        self.start_prometheus()
        live = self.procs

        def rules_loaded():
            status, body = request("GET", "http://127.0.0.1:%d/api/v1/rules" % self.prom_port)
            return status == 200 and '"OpecomNoEvents"' in body

        wait_for("the rules loaded in Prometheus", rules_loaded, 15, live)
        wait_for("up{job=\"opecom\"} == 1",
                 lambda: any(v == 1 for _, v in self.query('up{job="opecom"}')), 15, live)
        wait_for("Prometheus to see events arrive",
                 lambda: any(v > 0 for _, v in
                             self.query("sum(increase(opecom_events_ingested_total[15s]))")),
                 15, live)
        if self.tracker.errors:
            raise Failed("/api/track failed: %s" % "; ".join(self.tracker.errors))

    def silent_while_events_flow(self):
        # Long enough for the rule to have fired if it were wrong: the
        # window, its `for` and a few evaluations more.
        end = time.monotonic() + NO_EVENTS_WINDOW + NO_EVENTS_FOR + 3
        while time.monotonic() < end:
            states = self.prom_alerts("OpecomNoEvents")
            if states:
                raise Failed("OpecomNoEvents is %s while events arrive (%d accepted)" %
                             (states[0], self.tracker.accepted))
            for p in self.procs:
                if not p.alive():
                    raise Failed("%s exited" % p.name)
            time.sleep(0.5)
        if any(a["labels"].get("alertname") == "OpecomNoEvents"
               for _, _, _, _, a in self.hook.alerts()):
            raise Failed("OpecomNoEvents reached the webhook while events arrived")
        if self.tracker.errors:
            raise Failed("/api/track failed: %s" % "; ".join(self.tracker.errors))

    def delivered(self, status, since):
        for t, path, receiver, st, a in self.hook.alerts():
            if t >= since and st == status and a["labels"].get("alertname") == "OpecomNoEvents":
                return t, path, receiver, a
        return None

    def fires_after_events_stop(self):
        self.tracker.stop()
        stopped = self.tracker.last_ack
        got = wait_for("OpecomNoEvents at the webhook", lambda: self.delivered("firing", stopped),
                       DELIVERY_BOUND, self.procs)
        t, path, receiver, alert = got
        self.fired_after = t - stopped
        print("#    delivered %.1f s after the last event (bound %d s)" % (self.fired_after,
                                                                          DELIVERY_BOUND))
        # It cannot be right sooner than the window plus `for` (less a scrape
        # and an evaluation): earlier would mean the window is not the rule's.
        if self.fired_after < NO_EVENTS_WINDOW + NO_EVENTS_FOR - 2:
            raise Failed("delivered %.1f s after the last event, before the %d s window and "
                         "%d s `for` had passed" % (self.fired_after, NO_EVENTS_WINDOW,
                                                     NO_EVENTS_FOR))
        labels = alert["labels"]
        if receiver != "opecom-warning" or path != "/opecom/warning":
            raise Failed("routed to receiver %r at %s, expected opecom-warning at "
                         "/opecom/warning" % (receiver, path))
        if labels.get("severity") != "warning" or labels.get("job") != "opecom":
            raise Failed("unexpected labels %s" % labels)
        summary = alert.get("annotations", {}).get("summary", "")
        if "No tracker events" not in summary or not alert["annotations"].get("description"):
            raise Failed("annotations missing or wrong: %s" % alert.get("annotations"))

    def resolves_when_events_resume(self):
        self.tracker.start()
        wait_for("the tracker's first new event", lambda: self.tracker.first_ack, 10, self.procs)
        resumed = self.tracker.first_ack
        t, _, receiver, _ = wait_for("the resolution at the webhook",
                                     lambda: self.delivered("resolved", resumed),
                                     RESOLVE_BOUND, self.procs)
        print("#    resolved %.1f s after events resumed" % (t - resumed))
        self.tracker.stop()

    def no_false_alarms(self):
        wrong = sorted({a["labels"].get("alertname") for _, _, _, _, a in self.hook.alerts()
                        if a["labels"].get("alertname") in
                        ("OpecomReplicaDown", "OpecomAllReplicasDown", "OpecomTargetsMissing",
                         "OpecomHighErrorRate")})
        if wrong:
            raise Failed("alerts about a healthy server were delivered: %s" % ", ".join(wrong))

    def live(self):
        steps = ["the chain starts: opecom-server, Alertmanager, Prometheus with the rendered "
                 "rules, events scraped",
                 "OpecomNoEvents stays silent while the tracker sends events",
                 "OpecomNoEvents reaches the warning webhook after the tracker stops",
                 "its resolution reaches the webhook when events resume",
                 "no down, missing-target or error-rate alert for the running server"]
        fns = [self.chain_up, self.silent_while_events_flow, self.fires_after_events_stop,
               self.resolves_when_events_resume, self.no_false_alarms]
        for i, (name, fn) in enumerate(zip(steps, fns)):
            if not self.check(name, fn):
                self.skip_rest(steps[i + 1:])
                return False
        return True

    # ----------------------------------------------------------------- #

    def cleanup(self, show_logs):
        if self.tracker is not None:
            self.tracker.stop()
        for p in reversed(self.procs):
            p.stop()
        if show_logs:
            for p in self.procs:
                print("# --- %s (%s), last lines:\n%s" % (p.name, p.log_path, p.tail()))
        if self.hook is not None:
            self.hook.close()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def on_alarm(signum, frame):
    raise Timeout("the test ran out of its %d s bound" % LIMIT)


def on_term(signum, frame):
    raise Timeout("terminated by signal %d" % signum)


def main():
    if not os.path.exists(RULES):
        print("run from the repository root", file=sys.stderr)
        return 2
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(LIMIT)
    start = time.monotonic()
    run = Run()
    ok = False
    try:
        run.static_checks()
        os.makedirs(os.path.join(BUILD, "tmp"), exist_ok=True)
        run.tmp = tempfile.mkdtemp(prefix="alerts-", dir=os.path.join(BUILD, "tmp"))
        run.hook = Webhook()
        ok = run.live() and run.failed == 0
    except Timeout as e:
        run.failed += 1
        print("FAIL %s" % e, flush=True)
    finally:
        signal.alarm(0)
        run.cleanup(show_logs=not ok)
    print("# %.1f s" % (time.monotonic() - start))
    print("%d passed, %d failed" % (run.passed, run.failed))
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
