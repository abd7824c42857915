#!/usr/bin/python3
"""A synthetic shopping history for the demo store, sent through its tracker API.

A new shop has no history: every page's value, bounce and exit rate is 0,
so every live session scores about the same and the checkout pop-up never
shows. `make run` therefore seeds a new database once with this script:
it starts opecom-server on the database, posts a few weeks of synthetic
sessions over the store's own pages (the catalogue is read from
examples/store/shop.js) to POST /api/track, and stops it. On its next
start the server replays the events in time order, and the sessions close
and build the page statistics a live session is scored with.

The simulation: about one session in six comes to buy. It looks at a few
products, puts one to three in the cart, goes through the cart and the
checkout and pays their prices. The others browse the home page,
categories, products and the help pages, and rarely open the cart. A third
of the sessions are returning visitors. Durations are active seconds.
Every session ends at least two hours before now. Nothing in it comes from
a real data set. The same --seed gives the same history, relative to the
time it runs.

    /usr/bin/python3 tools/seed_store.py --server build/opecom-server --db build/demo.db
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SHOP_JS = os.path.join(REPO, "examples", "store", "shop.js")
MODEL = os.path.join(REPO, "models", "shoppers-tabm-k4.opm")
DAY_MS = 86400 * 1000

OS = [("Windows", 5), ("Mac OS", 3), ("Android", 4), ("iOS", 3), ("Linux", 1)]
BROWSERS = [("Chrome", 6), ("Safari", 3), ("Firefox", 1), ("Edge", 1)]
TRAFFIC = [("direct", 4), ("search", 5), ("social", 2), ("referral", 1), ("email", 1)]
REGIONS = [("Europe/Berlin", 4), ("Europe/Paris", 2), ("Europe/Madrid", 1), ("Europe/Rome", 1)]


def catalogue(path):
    """(product id, category, price) of every product in shop.js."""
    text = open(path, encoding="utf-8").read()
    found = re.findall(r"\{\s*id:\s*'([^']+)',\s*name:\s*'[^']*',\s*cat:\s*'([^']+)',"
                       r"\s*price:\s*([0-9.]+)", text)
    if not found:
        sys.exit("seed_store: no products found in %s" % path)
    return [(pid, cat, float(price)) for pid, cat, price in found]


def weighted(rng, items):
    total = sum(w for _, w in items)
    u = rng.random() * total
    for value, w in items:
        u -= w
        if u < 0:
            return value
    return items[-1][0]


class Visitor:
    def __init__(self, rng, n):
        self.id = "v-seed%06d" % n
        self.os = weighted(rng, OS)
        self.browser = weighted(rng, BROWSERS)
        self.region = weighted(rng, REGIONS)
        self.sessions = 0


def session(rng, visitor, start_ms, products, serial):
    """The events of one session, in time order."""
    sid = "s-seed%07d" % serial
    t = start_ms
    traffic = weighted(rng, TRAFFIC)
    events = []

    def view(page_type, page_id, lo, hi):
        nonlocal t
        d = round(rng.uniform(lo, hi), 1)
        ev = {"type": "pageview", "visitor_id": visitor.id, "session_id": sid, "ts": t,
              "page_type": page_type, "page_id": page_id, "duration": d,
              "os": visitor.os, "browser": visitor.browser, "region": visitor.region,
              "traffic_type": traffic}
        events.append(ev)
        t += int(d * 1000) + rng.randint(500, 4000)

    cats = sorted({c for _, c, _ in products})
    buyer = rng.random() < (0.13 if visitor.sessions else 0.2)
    entry = rng.random()
    if entry < 0.5:
        view("product_related", "home", 4, 40)
    elif entry < 0.8:
        view("product_related", "category/" + rng.choice(cats), 5, 50)
    if buyer:
        # buyers compare: many product pages, favourites more than once
        wanted = [products[min(int(rng.expovariate(0.45)), len(products) - 1)]
                  for _ in range(rng.randint(1, 3))]
        for pid, cat, _ in wanted:
            view("product_related", "category/" + cat, 5, 40)
            for _ in range(rng.randint(1, 4)):
                view("product_related", "product/" + rng.choice(products)[0], 10, 80)
            view("product_related", "product/" + pid, 30, 180)
        if rng.random() < 0.2:
            view("informational", rng.choice(["faq", "about"]), 10, 60)
        if visitor.sessions and rng.random() < 0.5:
            view("administrative", "account", 5, 30)
        view("administrative", "cart", 10, 60)
        view("administrative", "checkout", 30, 180)
        revenue = sum(price for _, _, price in wanted)
        events.append({"type": "purchase", "visitor_id": visitor.id, "session_id": sid,
                       "ts": t - 1000, "revenue": round(revenue, 2)})
        for _ in range(rng.choice([0, 0, 1, 2, 3])):   # some browse on
            view("product_related", "product/" + rng.choice(products)[0], 5, 60)
    elif rng.random() < 0.35 and events:
        pass                                            # a bounce
    else:
        for _ in range(rng.randint(1, 6)):
            u = rng.random()
            if u < 0.45:
                view("product_related", "product/" + rng.choice(products)[0], 5, 60)
            elif u < 0.7:
                view("product_related", "category/" + rng.choice(cats), 3, 30)
            elif u < 0.85:
                view("informational", rng.choice(["faq", "about", "contact"]), 5, 80)
            elif u < 0.93:
                view("product_related", "home", 3, 20)
            else:
                view("administrative", rng.choice(["cart", "login", "account"]), 3, 40)
    visitor.sessions += 1
    return events


def history(rng, products, n_sessions, days, now_ms):
    visitors = []
    out = []
    first = now_ms - days * DAY_MS
    span = days * DAY_MS - 2 * 3600 * 1000 - 3600 * 1000
    starts = sorted(first + int(rng.random() * span) for _ in range(n_sessions))
    for i, start in enumerate(starts):
        if visitors and rng.random() < 0.33:
            v = rng.choice(visitors)
        else:
            v = Visitor(rng, len(visitors))
            visitors.append(v)
        out.extend(session(rng, v, start, products, i))
    out.sort(key=lambda e: e["ts"])
    return out, len(visitors)


def post(url, events):
    body = json.dumps({"events": events}).encode()
    req = urllib.request.Request(url + "/api/track", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["accepted"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", required=True, help="the opecom-server binary")
    ap.add_argument("--db", required=True, help="database to seed (created)")
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--sessions", type=int, default=4000)
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)

    products = catalogue(SHOP_JS)
    now_ms = int(time.time() * 1000)
    events, n_visitors = history(random.Random(a.seed), products, a.sessions, a.days, now_ms)
    proc = subprocess.Popen([a.server, "--port", "0", "--db", a.db, "--model", a.model],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    url = None
    for line in proc.stdout:
        m = re.search(r"store (http://[0-9.]+:\d+)/", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        sys.exit("seed_store: %s did not start (exit %s)" % (a.server, proc.wait()))
    try:
        accepted = 0
        for i in range(0, len(events), 500):
            accepted += post(url, events[i:i + 500])
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    if rc != 0 or accepted != len(events):
        sys.exit("seed_store: server exit %d, %d of %d events accepted"
                 % (rc, accepted, len(events)))
    buys = sum(1 for e in events if e["type"] == "purchase")
    print("seeded %s with %d synthetic sessions of %d visitors over %d days "
          "(%d events, %d purchases)" % (a.db, a.sessions, n_visitors, a.days, len(events), buys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
