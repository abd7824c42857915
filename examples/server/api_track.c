/*
 * api_track.c - POST /api/track: a JSON batch of tracker events, validated
 * as a whole (one bad event rejects the batch: 422 naming the field, e.g.
 * `events[3].page_type`), shifted by sent_at onto the server's clock, then
 * handed to track_submit, which answers once the events are committed.
 *
 * Rules (docs/server.md, "POST /api/track"): 1..SRV_MAX_EVENTS events;
 * type pageview | purchase; ids 1..127 bytes of printable ASCII; ts an
 * integer in ms, after the shift not before 2000-01-01 nor more than a day
 * ahead of the server; pageview: page_type, page_id (1..255 printable
 * ASCII), duration 0..86400 s; purchase: revenue 0..1e9; os, browser,
 * region, traffic_type optional: text up to 63 bytes or a code 1..999 (a
 * text of digits is a code too). Any other key is an error. Last, every
 * event goes through the sessionizer's own check (live_check): a batch is
 * acknowledged only if the follower will take every event of it.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define TS_MIN 946684800000LL        /* 2000-01-01T00:00:00Z */
#define TS_MAX 253402300799999LL     /* 9999-12-31T23:59:59.999Z */
#define FUTURE_MS (24LL * 3600 * 1000)
#define DURATION_MAX 86400.0
#define REVENUE_MAX 1e9

typedef struct problem {
    char field[64];
    char message[192];
} problem;

static int fail(problem *p, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(problem *p, const char *field, const char *fmt, ...) {
    snprintf(p->field, sizeof p->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof p->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* "events[i].key" */
static const char *path(char *buf, size_t size, size_t i, const char *key) {
    if (key)
        snprintf(buf, size, "events[%zu].%s", i, key);
    else
        snprintf(buf, size, "events[%zu]", i);
    return buf;
}

static int printable(const char *t, size_t len) {
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] < 0x20 || (unsigned char)t[i] > 0x7e)
            return 0;
    return 1;
}

/* A required string of 1..max printable ASCII bytes, copied to dst. */
static int get_id(json_t *ev, size_t i, const char *key, size_t max, char *dst, problem *p) {
    char f[64];
    json_t *v = json_object_get(ev, key);
    if (v == NULL)
        return fail(p, path(f, sizeof f, i, key), "missing");
    if (!json_is_string(v))
        return fail(p, path(f, sizeof f, i, key), "must be a string");
    size_t len = json_string_length(v);
    const char *t = json_string_value(v);
    if (len < 1 || len > max)
        return fail(p, path(f, sizeof f, i, key), "must be 1 to %zu bytes long", max);
    if (!printable(t, len))
        return fail(p, path(f, sizeof f, i, key), "must be printable ASCII");
    memcpy(dst, t, len);
    dst[len] = '\0';
    return 0;
}

/* A required number in [lo, hi]. */
static int get_number(json_t *ev, size_t i, const char *key, double lo, double hi, double *out,
                      problem *p) {
    char f[64];
    json_t *v = json_object_get(ev, key);
    if (v == NULL)
        return fail(p, path(f, sizeof f, i, key), "missing");
    if (!json_is_number(v))
        return fail(p, path(f, sizeof f, i, key), "must be a number");
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return fail(p, path(f, sizeof f, i, key), "must be from %g to %g", lo, hi);
    *out = x;
    return 0;
}

/* An optional device text: absent or null -> "", text up to 63 bytes, or
 * an integer code 1..999 (written as its text). */
static int get_code(json_t *ev, size_t i, const char *key, char *dst, problem *p) {
    char f[64];
    json_t *v = json_object_get(ev, key);
    dst[0] = '\0';
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        json_int_t c = json_integer_value(v);
        if (c < 1 || c > 999)
            return fail(p, path(f, sizeof f, i, key), "a code must be from 1 to 999");
        snprintf(dst, OPECOM_CODE_TEXT_MAX, "%d", (int)c);
        return 0;
    }
    if (!json_is_string(v))
        return fail(p, path(f, sizeof f, i, key), "must be text or a code from 1 to 999");
    size_t len = json_string_length(v);
    const char *t = json_string_value(v);
    if (len > OPECOM_CODE_TEXT_MAX - 1)
        return fail(p, path(f, sizeof f, i, key), "must be at most %d bytes long",
                    OPECOM_CODE_TEXT_MAX - 1);
    for (size_t k = 0; k < len; k++)
        if ((unsigned char)t[k] < 0x20 || t[k] == 0x7f)
            return fail(p, path(f, sizeof f, i, key), "must not hold control characters");
    memcpy(dst, t, len);
    dst[len] = '\0';
    return 0;
}

static const char *const common_keys[] = {"type", "visitor_id", "session_id", "ts", "os",
                                          "browser", "region", "traffic_type"};

static int known_key(const char *key, int type) {
    for (size_t k = 0; k < sizeof common_keys / sizeof *common_keys; k++)
        if (strcmp(key, common_keys[k]) == 0)
            return 1;
    if (type == SRV_PAGEVIEW)
        return strcmp(key, "page_type") == 0 || strcmp(key, "page_id") == 0 ||
               strcmp(key, "duration") == 0;
    return strcmp(key, "revenue") == 0;
}

static int parse_event(json_t *ev, size_t i, int64_t shift, int64_t now, srv_event *e,
                       problem *p) {
    char f[64];
    if (!json_is_object(ev))
        return fail(p, path(f, sizeof f, i, NULL), "must be an object");

    json_t *v = json_object_get(ev, "type");
    const char *type = json_string_value(v); /* NULL unless a string */
    if (v == NULL)
        return fail(p, path(f, sizeof f, i, "type"), "missing");
    if (type && strcmp(type, "pageview") == 0)
        e->type = SRV_PAGEVIEW;
    else if (type && strcmp(type, "purchase") == 0)
        e->type = SRV_PURCHASE;
    else
        return fail(p, path(f, sizeof f, i, "type"), "must be pageview or purchase");

    if (get_id(ev, i, "visitor_id", OPECOM_ID_MAX - 1, e->visitor_id, p) ||
        get_id(ev, i, "session_id", OPECOM_ID_MAX - 1, e->session_id, p))
        return -1;

    v = json_object_get(ev, "ts");
    if (v == NULL)
        return fail(p, path(f, sizeof f, i, "ts"), "missing");
    if (!json_is_integer(v))
        return fail(p, path(f, sizeof f, i, "ts"), "must be an integer (Unix time in ms)");
    json_int_t ts = json_integer_value(v);
    if (ts < 0 || ts > TS_MAX || ts + shift < TS_MIN || ts + shift > now + FUTURE_MS)
        return fail(p, path(f, sizeof f, i, "ts"),
                    "must lie between 2000-01-01 and one day ahead of the server's clock"
                    " (after the sent_at shift)");
    /* a time ahead of the server's clock (a fast client clock without
     * sent_at) is taken as now: it would move the sessionizer's clock and
     * close every other open session early */
    e->ts = (int64_t)ts + shift < now ? (int64_t)ts + shift : now;

    e->page_type = 0;
    e->page_id[0] = '\0';
    e->duration = 0;
    e->revenue = 0;
    if (e->type == SRV_PAGEVIEW) {
        v = json_object_get(ev, "page_type");
        const char *pt = json_string_value(v);
        if (v == NULL)
            return fail(p, path(f, sizeof f, i, "page_type"), "missing");
        if (pt && strcmp(pt, "administrative") == 0)
            e->page_type = OPECOM_PAGE_ADMINISTRATIVE;
        else if (pt && strcmp(pt, "informational") == 0)
            e->page_type = OPECOM_PAGE_INFORMATIONAL;
        else if (pt && strcmp(pt, "product_related") == 0)
            e->page_type = OPECOM_PAGE_PRODUCT_RELATED;
        else
            return fail(p, path(f, sizeof f, i, "page_type"),
                        "must be one of administrative, informational, product_related");
        if (get_id(ev, i, "page_id", OPECOM_PAGE_ID_MAX - 1, e->page_id, p) ||
            get_number(ev, i, "duration", 0, DURATION_MAX, &e->duration, p))
            return -1;
    } else if (get_number(ev, i, "revenue", 0, REVENUE_MAX, &e->revenue, p)) {
        return -1;
    }
    if (get_code(ev, i, "os", e->os, p) || get_code(ev, i, "browser", e->browser, p) ||
        get_code(ev, i, "region", e->region, p) ||
        get_code(ev, i, "traffic_type", e->traffic_type, p))
        return -1;

    const char *key;
    json_t *val;
    json_object_foreach(ev, key, val) {
        if (!known_key(key, e->type))
            return fail(p, path(f, sizeof f, i, key), "unknown field for a %s event", type);
    }
    return 0;
}

void api_track(srv *s, const srv_request *rq, srv_reply *out) {
    const char *body = rq->body;
    size_t len = rq->len;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        srv_reply_error(out, 400, NULL, "invalid JSON at line %d, column %d: %s", jerr.line,
                        jerr.column, jerr.text);
        return;
    }
    srv_event *ev = NULL;
    problem p;
    if (!json_is_object(root)) {
        srv_reply_error(out, 400, NULL, "the body must be a JSON object");
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "events") != 0 && strcmp(key, "sent_at") != 0) {
            srv_reply_error(out, 422, key, "unknown field");
            goto done;
        }
    }
    int64_t now = srv_now_ms(), shift = 0;
    json_t *sent = json_object_get(root, "sent_at");
    if (sent != NULL && !json_is_null(sent)) {
        if (!json_is_integer(sent) || json_integer_value(sent) < 0 ||
            json_integer_value(sent) > TS_MAX) {
            srv_reply_error(out, 422, "sent_at", "must be an integer (Unix time in ms)");
            goto done;
        }
        shift = now - (int64_t)json_integer_value(sent);
    }
    json_t *events = json_object_get(root, "events");
    if (events == NULL) {
        srv_reply_error(out, 422, "events", "missing");
        goto done;
    }
    if (!json_is_array(events)) {
        srv_reply_error(out, 422, "events", "must be an array");
        goto done;
    }
    size_t n = json_array_size(events);
    if (n < 1 || n > SRV_MAX_EVENTS) {
        srv_reply_error(out, 422, "events", "must hold 1 to %d events, not %zu",
                        SRV_MAX_EVENTS, n);
        goto done;
    }
    ev = malloc(n * sizeof *ev);
    if (ev == NULL) {
        srv_reply_json(out, 500, NULL);
        goto done;
    }
    uint64_t n_type[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        if (parse_event(json_array_get(events, i), i, shift, now, &ev[i], &p) != 0) {
            srv_reply_error(out, 422, p.field, "%s", p.message);
            goto done;
        }
        n_type[ev[i].type]++;
    }
    /* what is acknowledged must be what the sessionizer takes: its own
     * rules, once more (a code text "0" or "1000" passes the checks above) */
    for (size_t i = 0; i < n; i++) {
        static const char *const field[] = {"visitor_id", "session_id", "ts",  "type",
                                          "page_type",  "page_id",    "duration", "revenue",
                                          "os",         "browser",    "region", "traffic_type"};
        opecom_error oe;
        if (live_check(s, &ev[i], &oe) != 0) {
            char f[64];
            int k = oe.feature >= 0 && oe.feature < 12 ? oe.feature : 3;
            srv_reply_error(out, 422, path(f, sizeof f, i, field[k]), "%s", oe.message);
            goto done;
        }
    }
    if (track_submit(s, ev, n) != 0) {
        srv_reply_error(out, 503, NULL, "database: the events could not be stored");
        goto done;
    }
    srv_reply_object(out, 200, json_pack("{s:I}", "accepted", (json_int_t)n), 17);
done:
    free(ev);
    json_decref(root);
}
