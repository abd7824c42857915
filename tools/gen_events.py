#!/usr/bin/python3
"""Synthetic shop event logs for `opecom sessionize` tests and benchmarks.

Writes a CSV event log in one of the two formats `opecom sessionize` reads:

  pageviews  visitor_id,session_id,timestamp,page_type,page_id,duration_s,
             revenue,os,browser,region,traffic_type
  rees46     event_time,event_type,product_id,category_id,category_code,
             brand,price,user_id,user_session

The simulation: sessions start as a Poisson process; each belongs to a new
visitor or to a returning one (visitors keep their OS, browser, region and
traffic source); a session walks between administrative, informational and
product pages. About one session in six comes to buy: it looks at more
products, mostly from the popular head of the catalogue, puts some in the
cart and checks out (pageviews: cart, checkout with the revenue, a
confirmation page; REES46: cart and purchase events), sometimes browsing on
afterwards. The others browse, mostly the long tail, and rarely use the
cart. A few sessions pause for longer than the 30-minute idle timeout under
the same session id, and a few events arrive late (a small delay, rarely more
than the idle timeout), so the file is mostly but not entirely in time order.

Reproducible: the same --seed and options give the same bytes (only
random.Random.random() is used, whose sequence Python keeps stable).

    /usr/bin/python3 tools/gen_events.py --events 1050000 --seed 7 > events.csv
    /usr/bin/python3 tools/gen_events.py --format rees46 --events 1000 -o ev.csv
"""
import argparse
import heapq
import math
import sys

# browsing; "checkout" and "confirmation" are only reached by buying
ADMIN_PAGES = ["home", "home", "account", "login", "orders", "wishlist", "cart"]
INFO_PAGES = ["about", "faq", "contact", "shipping", "returns", "privacy"]
N_PRODUCTS = 5000
CATEGORIES = ["electronics.smartphone", "electronics.audio.headphone", "appliances.kitchen.kettle",
              "computers.notebook", "apparel.shoes", "furniture.living_room.sofa", ""]
BRANDS = ["samsung", "apple", "xiaomi", "huawei", "lenovo", "bosch", ""]
# (weight, code): rough shapes of the UCI code frequencies
OS_W = [(2585, 1), (6601, 2), (2555, 3), (478, 4), (19, 6), (79, 8)]
BROWSER_W = [(2462, 1), (7961, 2), (105, 3), (736, 4), (467, 5), (174, 6), (163, 10), (61, 13)]
REGION_W = [(4780, 1), (1136, 2), (2403, 3), (1182, 4), (318, 5), (805, 6), (761, 7), (434, 8),
            (511, 9)]
TRAFFIC_W = [(2451, 1), (3913, 2), (2052, 3), (1069, 4), (260, 5), (444, 6), (343, 8), (450, 10),
             (247, 11), (738, 13), (198, 20)]


def cumulative(weights):
    total = float(sum(w for w, _ in weights))
    acc, out = 0.0, []
    for w, code in weights:
        acc += w / total
        out.append((acc, code))
    return out


def pick(cum, u):
    for edge, code in cum:
        if u < edge:
            return code
    return cum[-1][1]


def price(p):
    return 5.0 + (p * 7919 % 50000) / 100.0


def rees_line(when, event_type, p, user, sid):
    return "%s,%s,%d,%d,%s,%s,%.2f,%s,%s\n" % (
        when, event_type, 1000000 + p, 2053013552326770000 + (p % 97) * 1000003,
        CATEGORIES[p % 7], BRANDS[p % 7], price(p), user, sid)


def days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


class Clock:
    """Formats Unix milliseconds, caching the date part per day."""

    def __init__(self, iso):
        self.iso = iso
        self.day = None
        self.prefix = ""

    def text(self, ms):
        day, rest = divmod(ms, 86400000)
        if day != self.day:
            y, m, d = civil_from_days(day)
            self.day = day
            self.prefix = "%04d-%02d-%02d%s" % (y, m, d, "T" if self.iso else " ")
        sec, milli = divmod(rest, 1000)
        h, sec = divmod(sec, 3600)
        mi, sec = divmod(sec, 60)
        if self.iso:
            return "%s%02d:%02d:%02d.%03dZ" % (self.prefix, h, mi, sec, milli)
        return "%s%02d:%02d:%02d UTC" % (self.prefix, h, mi, sec)


def parse_start(s):
    try:
        y, m, d = (int(x) for x in s[:10].split("-"))
        return days_from_civil(y, m, d) * 86400000
    except ValueError:
        raise SystemExit("gen_events.py: --start wants YYYY-MM-DD, got %r" % s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--format", choices=["pageviews", "rees46"], default="pageviews")
    ap.add_argument("--events", type=int, default=100000, help="events to write (exactly)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", default="2026-11-02", help="first day, YYYY-MM-DD (UTC)")
    ap.add_argument("--session-gap", type=float, default=2.0,
                    help="mean seconds between session starts (default 2)")
    ap.add_argument("-o", "--output", default="-", help="output file, '-' for stdout")
    args = ap.parse_args()
    if args.events < 0:
        ap.error("--events must be >= 0")

    out = sys.stdout if args.output == "-" else open(args.output, "w", newline="\n")
    r = __import__("random").Random(args.seed)
    rnd = r.random
    log = math.log
    rees = args.format == "rees46"
    clock = Clock(iso=not rees)
    os_c, br_c, rg_c, tt_c = (cumulative(w) for w in (OS_W, BROWSER_W, REGION_W, TRAFFIC_W))

    if rees:
        out.write("event_time,event_type,product_id,category_id,category_code,brand,price,"
                  "user_id,user_session\n")
    else:
        out.write("visitor_id,session_id,timestamp,page_type,page_id,duration_s,revenue,os,"
                  "browser,region,traffic_type\n")

    visitors = []  # per visitor: (os, browser, region, traffic)
    heap = []
    buf = []
    written = 0
    seq = 0
    n_sessions = 0
    now = parse_start(args.start)
    gap_ms = args.session_gap * 1000.0
    target = args.events

    def emit(t, line):
        nonlocal seq
        # arrival = event time + delay: most events in order, some a little
        # late, a very few later than the idle timeout
        u = rnd()
        if u < 0.03:
            t += int(rnd() * 120000)
        elif u < 0.0305:
            t += 2400000 + int(rnd() * 3600000)
        seq += 1
        heapq.heappush(heap, (t, seq, line))

    while written < target:
        now += int(-log(1.0 - rnd()) * gap_ms) + 1
        # everything due before this session's start is final: write it
        while heap and heap[0][0] <= now and written < target:
            buf.append(heapq.heappop(heap)[2])
            written += 1
            if len(buf) >= 8192:
                out.write("".join(buf))
                buf.clear()
        if written >= target:
            break

        # the visitor: new (30%) or returning
        if not visitors or rnd() < 0.3:
            visitors.append((pick(os_c, rnd()), pick(br_c, rnd()), pick(rg_c, rnd()),
                             pick(tt_c, rnd())))
            v = len(visitors) - 1
        else:
            v = int(rnd() * len(visitors))
        vos, vbr, vrg, vtt = visitors[v]
        n_sessions += 1
        if rees:
            user = str(512000000 + v)
            h = int(rnd() * 2**62) ^ n_sessions
            sid = "%08x-%04x-4%03x-%04x-%012x" % (h & 0xFFFFFFFF, (h >> 32) & 0xFFFF,
                                                   (h >> 48) & 0xFFF, 0x8000 | (n_sessions & 0x3FFF),
                                                   int(rnd() * 2**48))
        else:
            user = "v%d" % v
            sid = "s%d" % n_sessions
        # a session: a walk over pages; about one in six comes to buy, looks
        # at more products, mostly popular ones, and ends at the checkout
        buyer = rnd() < 0.16
        if buyer:
            n_pages = 3 + int(-log(1.0 - rnd()) * 18)
        else:
            n_pages = 1 if rnd() < 0.25 else 2 + int(-log(1.0 - rnd()) * 8)
        t = now
        # 0 administrative, 1 informational, 2 product; buyers go for products
        kind = 2 if buyer else (0 if rnd() < 0.35 else (1 if rnd() < 0.15 else 2))
        products = []
        cart = []
        for i in range(n_pages):
            if i == n_pages // 2 and rnd() < 0.02:
                t += 2100000 + int(rnd() * 3600000)  # a long pause: the session goes idle
            if kind == 2:
                if buyer or rnd() < 0.2:
                    p = int(N_PRODUCTS * 0.3 * rnd() ** 2)  # the popular head
                else:
                    p = int(N_PRODUCTS * (0.3 + 0.7 * rnd()))  # the long tail
                dwell = -log(1.0 - rnd()) * 45.0
                products.append(p)
                if rees:
                    emit(t, rees_line(clock.text(t), "view", p, user, sid))
                    if rnd() < (0.15 if buyer else 0.03):
                        cart.append(p)
                        emit(t + 2000, rees_line(clock.text(t + 2000), "cart", p, user, sid))
                else:
                    known = rnd() < 0.5
                    emit(t, "%s,%s,%s,product_related,p%d,%s,,%d,%d,%d,%d\n" % (
                        user, sid, clock.text(t), p, ("%.1f" % dwell) if known else "",
                        vos, vbr, vrg, vtt))
            else:
                dwell = -log(1.0 - rnd()) * (20.0 if kind == 0 else 30.0)
                if not rees:
                    page = ADMIN_PAGES[int(rnd() * 7)] if kind == 0 else INFO_PAGES[int(rnd() * 6)]
                    if page == "cart" and not buyer and rnd() < 0.7:
                        page = "home"
                    if page == "cart" and products:
                        cart.append(products[-1])
                    emit(t, "%s,%s,%s,%s,%s,%s,,%d,%d,%d,%d\n" % (
                        user, sid, clock.text(t), "administrative" if kind == 0 else
                        "informational", page, ("%.1f" % dwell) if rnd() < 0.5 else "",
                        vos, vbr, vrg, vtt))
            t += int(dwell * 1000) + 1000
            u = rnd()
            kind = 2 if buyer or u < 0.7 else (0 if u < 0.92 else 1)
        if buyer and products:
            bought = cart or products[-2:]
            if rees:
                for p in bought:
                    if p not in cart:
                        emit(t, rees_line(clock.text(t), "cart", p, user, sid))
                t += 20000 + int(-log(1.0 - rnd()) * 60000)
                for p in bought:
                    emit(t, rees_line(clock.text(t), "purchase", p, user, sid))
            else:
                revenue = sum(price(p) for p in bought)
                emit(t, "%s,%s,%s,administrative,cart,%.1f,,%d,%d,%d,%d\n" % (
                    user, sid, clock.text(t), 20.0, vos, vbr, vrg, vtt))
                t += 20000 + int(-log(1.0 - rnd()) * 60000)
                emit(t, "%s,%s,%s,administrative,checkout,%.1f,%.2f,%d,%d,%d,%d\n" % (
                    user, sid, clock.text(t), -log(1.0 - rnd()) * 60.0, revenue,
                    vos, vbr, vrg, vtt))
                t += 60000 + int(-log(1.0 - rnd()) * 30000)
                emit(t, "%s,%s,%s,administrative,confirmation,,,%d,%d,%d,%d\n" % (
                    user, sid, clock.text(t), vos, vbr, vrg, vtt))
            # some go on browsing after buying
            for _ in range(int(rnd() * 3) if rnd() < 0.4 else 0):
                t += 5000 + int(-log(1.0 - rnd()) * 40000)
                p = int(N_PRODUCTS * 0.3 * rnd() ** 2)
                if rees:
                    emit(t, rees_line(clock.text(t), "view", p, user, sid))
                else:
                    emit(t, "%s,%s,%s,product_related,p%d,,,%d,%d,%d,%d\n" % (
                        user, sid, clock.text(t), p, vos, vbr, vrg, vtt))
        elif rees and cart and rnd() < 0.3:
            emit(t, rees_line(clock.text(t), "remove_from_cart", cart[0], user, sid))

    while heap and written < target:
        buf.append(heapq.heappop(heap)[2])
        written += 1
    out.write("".join(buf))
    out.flush()
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(1)
