/*
 * test_server_track.c - end-to-end tests of opecom-server's event path:
 * POST /api/track (every validation rule, each answered with its status
 * and the field at fault), durability (every acknowledged event is in the
 * database, also under concurrent batches), persistence across a restart
 * (the replay of the event log), the schema (schema.sql = the server's,
 * user_version) and the sessions_export view (exact UCI columns; the values
 * of hand-made sessions worked out below; `opecom eval` reads its CSV),
 * and GET /api/sessions (ranking, histogram, limit).
 *
 * Each test starts $BUILD/opecom-server (default build/) through
 * server_harness.h on a free port with its own database, talks HTTP/1.1
 * over a socket, and reads the database with the same SQL on either
 * backend (server_backends.h). Everything runs twice: the groups "sqlite"
 * (a file in a scratch folder) and "mariadb" (a private mariadbd; skipped,
 * with the reason, when mariadb-server is missing). The schema file
 * against the live SQLite schema, WAL mode and the upgrade of a version 1
 * file are SQLite's own: the MariaDB pass skips them (test_store checks
 * MariaDB's schema).
 */
#include "server_backends.h" /* first: it sets _XOPEN_SOURCE */

#include <math.h>
#include <pthread.h>

/* ===================================================================== *
 * Helpers: server, HTTP as the tracker sends it, database, events
 * ===================================================================== */

/* Wall-clock milliseconds: event times. */
static int64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Starts the server with the model, 4 threads, database `db` (a file in
 * the scratch folder) and an optional JSON configuration text. */
static void start_server(sh_server *sv, const char *db, const char *config_json) {
    char *args[] = {"--model", SH_MODEL, "--threads", "4", NULL};
    if (config_json != NULL)
        sh_start_config(sv, db, config_json, args);
    else
        sh_start(sv, db, args);
}

/* One request with Content-Type: application/json and a Content-Length
 * (also without a body); returns the status and the body (malloc'd) in
 * *resp_body. The answer must be a whole reply, never chunked. */
static int http(const sh_server *sv, const char *method, const char *path, const char *body,
                char **resp_body) {
    sh_resp r = sh_request_raw(sv->port, method, path, "Content-Type: application/json\r\n",
                               body != NULL ? body : "", body != NULL ? strlen(body) : 0, 1);
    int status = r.status;
    if (status < 0)
        fail_msg("%s %s: no HTTP answer", method, path);
    assert_null(strstr(r.headers, "Transfer-Encoding: chunked"));
    if (resp_body) {
        *resp_body = r.body;
        r.body = NULL;
    }
    sh_resp_free(&r);
    return status;
}

/* A request whose answer must be JSON; returns it (decref it). */
static json_t *http_json(const sh_server *sv, const char *method, const char *path,
                         const char *body, int *status) {
    sh_resp r = {-1, NULL, NULL, 0};
    json_t *j;
    r.status = http(sv, method, path, body, &r.body);
    j = sh_json(&r);
    *status = r.status;
    sh_resp_free(&r);
    return j;
}

/* The SQLite file of sv, read-only (the SQLite-only tests). */
static sqlite3 *db_ro(const sh_server *sv) {
    sqlite3 *c = NULL;
    assert_int_equal(sqlite3_open_v2(sv->db_path, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(c, 5000);
    return c;
}

/* One number from sv's database: the same SQL on either backend. */
static int64_t db_int(const sh_server *sv, const char *sql) {
    return sb_int(sv, sql);
}

static double db_double(const sh_server *sv, const char *sql) {
    return sb_double(sv, sql);
}

/* A pageview event as JSON text (no trailing comma). */
static void pageview(char *buf, size_t size, const char *vid, const char *sid, int64_t ts,
                     const char *page_type, const char *page_id, double duration,
                     const char *extra) {
    snprintf(buf, size,
             "{\"type\": \"pageview\", \"visitor_id\": \"%s\", \"session_id\": \"%s\","
             " \"ts\": %lld, \"page_type\": \"%s\", \"page_id\": \"%s\", \"duration\": %.17g%s}",
             vid, sid, (long long)ts, page_type, page_id, duration, extra ? extra : "");
}

static void purchase(char *buf, size_t size, const char *vid, const char *sid, int64_t ts,
                     double revenue) {
    snprintf(buf, size,
             "{\"type\": \"purchase\", \"visitor_id\": \"%s\", \"session_id\": \"%s\","
             " \"ts\": %lld, \"revenue\": %.17g}",
             vid, sid, (long long)ts, revenue);
}

/* Posts {"sent_at": now, "events": [ev...]} (NULL-terminated list) and
 * returns the status. */
static int post_events(const sh_server *sv, const char *first, ...) {
    size_t cap = 1 << 16, n = 0;
    char *body = malloc(cap);
    assert_non_null(body);
    n += (size_t)snprintf(body, cap, "{\"sent_at\": %lld, \"events\": [", (long long)now_ms());
    va_list ap;
    va_start(ap, first);
    for (const char *e = first; e; e = va_arg(ap, const char *)) {
        size_t l = strlen(e);
        assert_true(n + l + 8 < cap);
        if (e != first)
            body[n++] = ',';
        memcpy(body + n, e, l);
        n += l;
    }
    va_end(ap);
    memcpy(body + n, "]}", 3);
    char *resp = NULL;
    int st = http(sv, "POST", "/api/track", body, &resp);
    if (st != 200)
        print_message("POST /api/track %d: %s\n", st, resp);
    free(resp);
    free(body);
    return st;
}

/* ===================================================================== *
 * POST /api/track: validation
 * ===================================================================== */

typedef struct bad_case {
    const char *body;  /* %s: a valid pageview; %V: valid purchase; %T: now */
    int status;
    const char *field; /* NULL: "field": null */
} bad_case;

/* Expands the placeholders of a case. */
static char *expand(const char *tpl, int64_t now) {
    char pv[512], pu[512], ts[32];
    pageview(pv, sizeof pv, "v-ok", "s-ok", now - 1000, "informational", "about", 3, NULL);
    purchase(pu, sizeof pu, "v-ok", "s-ok", now - 500, 10);
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    size_t cap = strlen(tpl) * 2 + 70000, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (const char *p = tpl; *p; p++) {
        const char *ins = NULL;
        if (p[0] == '%' && p[1] == 's')
            ins = pv;
        else if (p[0] == '%' && p[1] == 'V')
            ins = pu;
        else if (p[0] == '%' && p[1] == 'T')
            ins = ts;
        if (ins) {
            size_t l = strlen(ins);
            memcpy(out + n, ins, l);
            n += l;
            p++;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return out;
}

#define EV(fields) "{\"events\": [{" fields "}]}"
#define PV_BASE "\"type\": \"pageview\", \"visitor_id\": \"v\", \"session_id\": \"s\", \"ts\": %T, "
#define PV(extra) EV(PV_BASE "\"page_type\": \"informational\", \"page_id\": \"faq\", \"duration\": 1" extra)
#define PU(extra) EV("\"type\": \"purchase\", \"visitor_id\": \"v\", \"session_id\": \"s\", \"ts\": %T" extra)

static const bad_case bad_cases[] = {
    {"this is not json", 400, NULL},
    {"{\"events\": [", 400, NULL},
    {"[%s]", 400, NULL},
    {"{\"events\": [%s], \"events\": [%s]}", 400, NULL},
    {"{}", 422, "events"},
    {"{\"events\": {}}", 422, "events"},
    {"{\"events\": []}", 422, "events"},
    {"{\"events\": [%s], \"extra\": 1}", 422, "extra"},
    {"{\"events\": [%s], \"sent_at\": \"now\"}", 422, "sent_at"},
    {"{\"events\": [%s], \"sent_at\": 1.5}", 422, "sent_at"},
    {"{\"events\": [%s], \"sent_at\": -1}", 422, "sent_at"},
    {"{\"events\": [%s, 5]}", 422, "events[1]"},
    {EV("\"visitor_id\": \"v\""), 422, "events[0].type"},
    {EV("\"type\": \"click\""), 422, "events[0].type"},
    {EV("\"type\": 1"), 422, "events[0].type"},
    {EV("\"type\": \"pageview\", \"session_id\": \"s\""), 422, "events[0].visitor_id"},
    {EV("\"type\": \"pageview\", \"visitor_id\": \"\""), 422, "events[0].visitor_id"},
    {EV("\"type\": \"pageview\", \"visitor_id\": 7"), 422, "events[0].visitor_id"},
    {EV("\"type\": \"pageview\", \"visitor_id\": \"a\\u0001b\""), 422, "events[0].visitor_id"},
    {EV("\"type\": \"pageview\", \"visitor_id\": \"caf\\u00e9\""), 422, "events[0].visitor_id"},
    {EV("\"type\": \"pageview\", \"visitor_id\": \"v\""), 422, "events[0].session_id"},
    {EV("\"type\": \"pageview\", \"visitor_id\": \"v\", \"session_id\": \"s\""), 422,
     "events[0].ts"},
    {EV("\"type\": \"pageview\", \"visitor_id\": \"v\", \"session_id\": \"s\", \"ts\": 1.5e12"),
     422, "events[0].ts"},
    {EV("\"type\": \"pageview\", \"visitor_id\": \"v\", \"session_id\": \"s\", \"ts\": \"1\""),
     422, "events[0].ts"},
    {EV("\"type\": \"pageview\", \"visitor_id\": \"v\", \"session_id\": \"s\", \"ts\": "
        "946684799999, \"page_type\": \"informational\", \"page_id\": \"faq\", \"duration\": 1"),
     422, "events[0].ts"},
    {EV("\"type\": \"pageview\", \"visitor_id\": \"v\", \"session_id\": \"s\", \"ts\": "
        "99999999999999, \"page_type\": \"informational\", \"page_id\": \"faq\", \"duration\": 1"),
     422, "events[0].ts"},
    {"{\"events\": [%s, {" PV_BASE "\"page_type\": \"home\", \"page_id\": \"x\", \"duration\": 1}]}",
     422, "events[1].page_type"},
    {EV(PV_BASE "\"page_id\": \"x\", \"duration\": 1"), 422, "events[0].page_type"},
    {EV(PV_BASE "\"page_type\": \"informational\", \"duration\": 1"), 422, "events[0].page_id"},
    {EV(PV_BASE "\"page_type\": \"informational\", \"page_id\": \"\", \"duration\": 1"), 422,
     "events[0].page_id"},
    {EV(PV_BASE "\"page_type\": \"informational\", \"page_id\": \"a\\nb\", \"duration\": 1"), 422,
     "events[0].page_id"},
    {EV(PV_BASE "\"page_type\": \"informational\", \"page_id\": \"faq\""), 422,
     "events[0].duration"},
    {PV(", \"duration\": -1"), 400, NULL}, /* duplicate key */
    {EV(PV_BASE "\"page_type\": \"informational\", \"page_id\": \"faq\", \"duration\": -0.5"),
     422, "events[0].duration"},
    {EV(PV_BASE "\"page_type\": \"informational\", \"page_id\": \"faq\", \"duration\": 86400.5"),
     422, "events[0].duration"},
    {EV(PV_BASE "\"page_type\": \"informational\", \"page_id\": \"faq\", \"duration\": \"3\""),
     422, "events[0].duration"},
    {PU(""), 422, "events[0].revenue"},
    {PU(", \"revenue\": -1"), 422, "events[0].revenue"},
    {PU(", \"revenue\": 1e10"), 422, "events[0].revenue"},
    {PU(", \"revenue\": null"), 422, "events[0].revenue"},
    {PV(", \"os\": 0"), 422, "events[0].os"},
    {PV(", \"browser\": 1000"), 422, "events[0].browser"},
    {PV(", \"region\": 2.5"), 422, "events[0].region"},
    {PV(", \"traffic_type\": "
        "\"0123456789012345678901234567890123456789012345678901234567890123\""),
     422, "events[0].traffic_type"},
    {PV(", \"os\": [\"Linux\"]"), 422, "events[0].os"},
    /* a code written as text: the sessionizer's rule (1..999) holds too */
    {PV(", \"os\": \"0\""), 422, "events[0].os"},
    {PV(", \"region\": \"1000\""), 422, "events[0].region"},
    {PV(", \"browser\": \"0000000\""), 422, "events[0].browser"},
    {PV(", \"referrer\": \"x\""), 422, "events[0].referrer"},
    {PV(", \"revenue\": 5"), 422, "events[0].revenue"},
    {PU(", \"revenue\": 5, \"page_id\": \"x\""), 422, "events[0].page_id"},
    /* the whole batch fails when its third event does */
    {"{\"events\": [%s, %V, " "{\"type\": \"purchase\", \"visitor_id\": \"v-ok\", \"session_id\": "
     "\"s-ok\", \"ts\": %T, \"revenue\": -3}]}",
     422, "events[2].revenue"},
};

static void test_track_rejects(void **state) {
    sh_server *sv = *state;
    int64_t now = now_ms();
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const bad_case *c = &bad_cases[i];
        char *body = expand(c->body, now);
        int status;
        json_t *j = http_json(sv, "POST", "/api/track", body, &status);
        const char *err = json_string_value(json_object_get(j, "error"));
        json_t *field = json_object_get(j, "field");
        if (status != c->status || err == NULL ||
            (c->field ? !json_is_string(field) || strcmp(json_string_value(field), c->field) != 0
                      : !json_is_null(field)))
            fail_msg("case %zu %s: got %d %s, expected %d field %s", i, body, status,
                     json_dumps(j, 0), c->status, c->field ? c->field : "null");
        /* the message names the field first */
        if (c->field)
            assert_int_equal(strncmp(err, c->field, strlen(c->field)), 0);
        if (c->status == 400 && strstr(c->body, "not json"))
            assert_non_null(strstr(err, "line 1, column"));
        json_decref(j);
        free(body);
    }
    /* a batch of 501 events is too large, 500 is accepted */
    size_t cap = 600 * 300;
    char *big = malloc(cap), ev[300];
    assert_non_null(big);
    for (int n = 501; n >= 500; n--) {
        size_t len = (size_t)snprintf(big, cap, "{\"events\": [");
        for (int k = 0; k < n; k++) {
            pageview(ev, sizeof ev, "v-big", "s-big", now - 1000 + k, "product_related", "p/1",
                     1, NULL);
            len += (size_t)snprintf(big + len, cap - len, "%s%s", k ? "," : "", ev);
        }
        snprintf(big + len, cap - len, "]}");
        int status;
        json_t *j = http_json(sv, "POST", "/api/track", big, &status);
        if (n == 501) {
            assert_int_equal(status, 422);
            assert_string_equal(json_string_value(json_object_get(j, "field")), "events");
        } else {
            assert_int_equal(status, 200);
            assert_int_equal(json_integer_value(json_object_get(j, "accepted")), 500);
        }
        json_decref(j);
    }
    free(big);
    /* nothing of a rejected batch was stored */
    assert_int_equal(db_int(sv, "SELECT count(*) FROM sessions WHERE visitor_id != 'v-big'"), 0);
    assert_int_equal(db_int(sv, "SELECT count(*) FROM page_views"), 500);
}

static void test_track_accepts_and_shifts(void **state) {
    sh_server *sv = *state;
    /* a client whose clock is 20 years behind: ts lands on the server's clock */
    int64_t now = now_ms(), skew = 20LL * 365 * 86400 * 1000;
    char body[1024];
    snprintf(body, sizeof body,
             "{\"sent_at\": %lld, \"events\": [{\"type\": \"pageview\", \"visitor_id\": "
             "\"v-skew\", \"session_id\": \"s-skew\", \"ts\": %lld, \"page_type\": "
             "\"administrative\", \"page_id\": \"cart\", \"duration\": 0, \"os\": 3, "
             "\"browser\": \"Firefox\", \"region\": null, \"traffic_type\": \"\"}]}",
             (long long)(now - skew), (long long)(now - skew - 5000));
    int status;
    json_t *j = http_json(sv, "POST", "/api/track", body, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "accepted")), 1);
    json_decref(j);
    int64_t ts = db_int(sv, "SELECT ts FROM page_views p JOIN sessions s ON s.id = p.session"
                            " WHERE s.session_id = 's-skew'");
    assert_true(llabs(ts - (now - 5000)) < 3000);
    sb_rows r = sb_query(sv, "SELECT os, browser, region, traffic_type, variant,"
                             " page_views, purchases FROM sessions WHERE session_id = 's-skew'");
    assert_int_equal(r.n_rows, 1);
    assert_string_equal(r.cell[0], "3");
    assert_string_equal(r.cell[1], "Firefox");
    assert_int_equal(r.kind[2], SB_NULL);
    assert_int_equal(r.kind[3], SB_NULL);
    assert_string_equal(r.cell[4], "default");
    assert_string_equal(r.cell[5], "1");
    assert_string_equal(r.cell[6], "0");
    sb_rows_free(&r);

    /* without sent_at, a clock 2 hours fast: stored at the server's time,
     * so it cannot move the sessionizer's clock past other open sessions */
    now = now_ms();
    snprintf(body, sizeof body,
             "{\"events\": [{\"type\": \"pageview\", \"visitor_id\": \"v-fast\", "
             "\"session_id\": \"s-fast\", \"ts\": %lld, \"page_type\": \"informational\", "
             "\"page_id\": \"faq\", \"duration\": 1}]}",
             (long long)(now + 2 * 3600 * 1000));
    j = http_json(sv, "POST", "/api/track", body, &status);
    assert_int_equal(status, 200);
    json_decref(j);
    ts = db_int(sv, "SELECT ts FROM page_views p JOIN sessions s ON s.id = p.session"
                    " WHERE s.session_id = 's-fast'");
    assert_true(ts >= now && ts < now + 3000);
}

/* ===================================================================== *
 * Durability: every acknowledged event is stored
 * ===================================================================== */

typedef struct poster {
    const sh_server *sv;
    int id;
    int batches, acked_events, acked_purchases;
    double acked_revenue;
} poster;

static void *post_batches(void *arg) {
    poster *p = arg;
    size_t cap = 100 * 400;
    char *body = malloc(cap), ev[400];
    if (body == NULL)
        return NULL;
    for (int b = 0; b < p->batches; b++) {
        int64_t now = now_ms();
        size_t len = (size_t)snprintf(body, cap, "{\"sent_at\": %lld, \"events\": [",
                                      (long long)now);
        int n = 20 + (b * 7 + p->id) % 80, purchases = 0;
        double revenue = 0;
        for (int k = 0; k < n; k++) {
            char vid[32], sid[32];
            snprintf(vid, sizeof vid, "v-%d-%d", p->id, (b * 3 + k) % 11);
            snprintf(sid, sizeof sid, "s-%d-%d", p->id, (b * 3 + k) % 11);
            if (k % 10 == 9) {
                purchase(ev, sizeof ev, vid, sid, now - 10000 + k, k);
                purchases++;
                revenue += k;
            } else {
                pageview(ev, sizeof ev, vid, sid, now - 10000 + k, "product_related", "p/7",
                         0.5 * k, NULL);
            }
            len += (size_t)snprintf(body + len, cap - len, "%s%s", k ? "," : "", ev);
        }
        snprintf(body + len, cap - len, "]}");
        char *resp = NULL;
        if (http(p->sv, "POST", "/api/track", body, &resp) == 200) {
            p->acked_events += n;
            p->acked_purchases += purchases;
            p->acked_revenue += revenue;
        }
        free(resp);
    }
    free(body);
    return NULL;
}

static void test_track_durable(void **state) {
    sh_server *sv = *state;
    enum { THREADS = 6 };
    poster p[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        p[i] = (poster){.sv = sv, .id = 100 + i, .batches = 25};
        assert_int_equal(pthread_create(&t[i], NULL, post_batches, &p[i]), 0);
    }
    int events = 0, purchases = 0;
    double revenue = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        events += p[i].acked_events;
        purchases += p[i].acked_purchases;
        revenue += p[i].acked_revenue;
    }
    assert_true(events > 0);
    assert_int_equal(
        db_int(sv, "SELECT count(*) FROM page_views p JOIN sessions s ON s.id = p.session"
                   " WHERE s.visitor_id LIKE 'v-1__-%'") +
            db_int(sv, "SELECT count(*) FROM purchases p JOIN sessions s ON s.id = p.session"
                       " WHERE s.visitor_id LIKE 'v-1__-%'"),
        events);
    assert_int_equal(db_int(sv, "SELECT sum(purchases) FROM sessions"
                                " WHERE visitor_id LIKE 'v-1__-%'"),
                     purchases);
    assert_true(fabs(db_double(sv, "SELECT sum(revenue) FROM sessions"
                                   " WHERE visitor_id LIKE 'v-1__-%'") -
                     revenue) < 1e-6);
    assert_int_equal(db_int(sv, "SELECT count(*) FROM sessions WHERE visitor_id LIKE 'v-1__-%'"),
                     THREADS * 11);
}

/* ===================================================================== *
 * Persistence across a restart
 * ===================================================================== */

static void test_restart(void **state) {
    (void)state;
    sh_server sv;
    start_server(&sv, "restart.db", NULL);
    int64_t now = now_ms();
    char a[512], b[512], c[512];
    pageview(a, sizeof a, "v-r", "s-r", now - 9000, "product_related", "p/1", 4, NULL);
    pageview(b, sizeof b, "v-r", "s-r", now - 6000, "product_related", "p/2", 5, NULL);
    pageview(c, sizeof c, "v-r", "s-r", now - 3000, "informational", "faq", 6, NULL);
    assert_int_equal(post_events(&sv, a, b, c, NULL), 200);
    assert_int_equal(sh_stop(&sv), 0);
    int64_t sessions = db_int(&sv, "SELECT count(*) FROM sessions");
    assert_int_equal(sessions, 1);
    assert_int_equal(db_int(&sv, "SELECT count(*) FROM page_views"), 3);

    start_server(&sv, "restart.db", NULL);
    assert_int_equal(db_int(&sv, "SELECT count(*) FROM sessions"), 1);
    assert_int_equal(db_int(&sv, "SELECT count(*) FROM page_views"), 3);
    /* the replay rebuilt the open session */
    int status;
    json_t *j = http_json(&sv, "POST", "/api/predict", "{\"session_id\": \"s-r\"}", &status);
    assert_int_equal(status, 200);
    assert_true(json_is_true(json_object_get(j, "open")));
    json_t *f = json_object_get(j, "features");
    assert_int_equal((int)json_number_value(json_object_get(f, "ProductRelated")), 2);
    assert_int_equal((int)json_number_value(json_object_get(f, "Informational")), 1);
    assert_true(fabs(json_number_value(json_object_get(f, "ProductRelated_Duration")) - 9) <
                1e-9);
    double p = json_number_value(json_object_get(j, "probability"));
    assert_true(p > 0 && p < 1);
    json_decref(j);
    j = http_json(&sv, "GET", "/api/sessions", NULL, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "active")), 1);
    json_t *s0 = json_array_get(json_object_get(j, "sessions"), 0);
    assert_string_equal(json_string_value(json_object_get(s0, "session_id")), "s-r");
    assert_int_equal(json_integer_value(json_object_get(s0, "page_views")), 3);
    json_decref(j);
    /* new events continue the session */
    pageview(a, sizeof a, "v-r", "s-r", now - 1000, "product_related", "p/3", 7, NULL);
    assert_int_equal(post_events(&sv, a, NULL), 200);
    j = http_json(&sv, "POST", "/api/predict",
                  "{\"session_id\": \"s-r\", \"visitor_id\": \"v-r\", \"reasons\": 0}", &status);
    assert_int_equal(status, 200);
    f = json_object_get(j, "features");
    assert_int_equal((int)json_number_value(json_object_get(f, "ProductRelated")), 3);
    json_decref(j);
    assert_int_equal(sh_stop(&sv), 0);
    assert_int_equal(db_int(&sv, "SELECT count(*) FROM page_views"), 4);
}

/* ===================================================================== *
 * Schema and the sessions_export view
 * ===================================================================== */

static char *schema_dump(sqlite3 *c) {
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(c,
                                        "SELECT type, name, tbl_name, sql FROM sqlite_master"
                                        " WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
                                        -1, &st, NULL),
                     SQLITE_OK);
    size_t cap = 1 << 16, n = 0;
    char *out = calloc(1, cap);
    assert_non_null(out);
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int k = 0; k < 4; k++) {
            const unsigned char *t = sqlite3_column_text(st, k);
            n += (size_t)snprintf(out + n, cap - n, "%s\n", t ? (const char *)t : "");
        }
    sqlite3_finalize(st);
    return out;
}

/* The schema of the first release (version 1, before the event log). */
static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS sessions (\n"
    "    id INTEGER PRIMARY KEY,\n"
    "    visitor_id TEXT NOT NULL,\n"
    "    session_id TEXT NOT NULL,\n"
    "    variant TEXT NOT NULL,\n"
    "    first_ms INTEGER NOT NULL,\n"
    "    last_ms INTEGER NOT NULL,\n"
    "    os TEXT,\n"
    "    browser TEXT,\n"
    "    region TEXT,\n"
    "    traffic_type TEXT,\n"
    "    page_views INTEGER NOT NULL DEFAULT 0,\n"
    "    purchases INTEGER NOT NULL DEFAULT 0,\n"
    "    revenue REAL NOT NULL DEFAULT 0,\n"
    "    UNIQUE (visitor_id, session_id)\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS sessions_variant ON sessions (variant, purchases);\n"
    "CREATE TABLE IF NOT EXISTS page_views (\n"
    "    id INTEGER PRIMARY KEY,\n"
    "    session INTEGER NOT NULL REFERENCES sessions (id),\n"
    "    ts INTEGER NOT NULL,\n"
    "    page_type TEXT NOT NULL\n"
    "        CHECK (page_type IN ('administrative', 'informational', 'product_related')),\n"
    "    page_id TEXT NOT NULL,\n"
    "    duration REAL NOT NULL CHECK (duration >= 0)\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS page_views_ts ON page_views (ts, id);\n"
    "CREATE INDEX IF NOT EXISTS page_views_session ON page_views (session);\n"
    "CREATE TABLE IF NOT EXISTS purchases (\n"
    "    id INTEGER PRIMARY KEY,\n"
    "    session INTEGER NOT NULL REFERENCES sessions (id),\n"
    "    ts INTEGER NOT NULL,\n"
    "    revenue REAL NOT NULL CHECK (revenue >= 0)\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS purchases_ts ON purchases (ts, id);\n"
    "CREATE INDEX IF NOT EXISTS purchases_session ON purchases (session);\n"
    "CREATE TABLE IF NOT EXISTS session_features (\n"
    "    session INTEGER NOT NULL REFERENCES sessions (id),\n"
    "    part INTEGER NOT NULL,\n"
    "    closed_ms INTEGER NOT NULL,\n"
    "    start_ms INTEGER NOT NULL,\n"
    "    end_ms INTEGER NOT NULL,\n"
    "    n_events INTEGER NOT NULL,\n"
    "    revenue_total REAL NOT NULL,\n"
    "    administrative INTEGER NOT NULL,\n"
    "    administrative_duration REAL NOT NULL,\n"
    "    informational INTEGER NOT NULL,\n"
    "    informational_duration REAL NOT NULL,\n"
    "    product_related INTEGER NOT NULL,\n"
    "    product_related_duration REAL NOT NULL,\n"
    "    bounce_rates REAL NOT NULL,\n"
    "    exit_rates REAL NOT NULL,\n"
    "    page_values REAL NOT NULL,\n"
    "    special_day REAL NOT NULL,\n"
    "    month TEXT NOT NULL,\n"
    "    operating_systems INTEGER NOT NULL,\n"
    "    browser INTEGER NOT NULL,\n"
    "    region INTEGER NOT NULL,\n"
    "    traffic_type INTEGER NOT NULL,\n"
    "    visitor_type TEXT NOT NULL,\n"
    "    weekend INTEGER NOT NULL,\n"
    "    revenue INTEGER NOT NULL,\n"
    "    PRIMARY KEY (session, part)\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS session_features_closed ON session_features (closed_ms, start_ms);\n"
    "CREATE VIEW IF NOT EXISTS sessions_export AS\n"
    "SELECT administrative AS Administrative,\n"
    "       administrative_duration AS Administrative_Duration,\n"
    "       informational AS Informational,\n"
    "       informational_duration AS Informational_Duration,\n"
    "       product_related AS ProductRelated,\n"
    "       product_related_duration AS ProductRelated_Duration,\n"
    "       bounce_rates AS BounceRates,\n"
    "       exit_rates AS ExitRates,\n"
    "       page_values AS PageValues,\n"
    "       special_day AS SpecialDay,\n"
    "       month AS Month,\n"
    "       operating_systems AS OperatingSystems,\n"
    "       browser AS Browser,\n"
    "       region AS Region,\n"
    "       traffic_type AS TrafficType,\n"
    "       visitor_type AS VisitorType,\n"
    "       CASE WHEN weekend THEN 'TRUE' ELSE 'FALSE' END AS Weekend,\n"
    "       CASE WHEN revenue THEN 'TRUE' ELSE 'FALSE' END AS Revenue\n"
    "FROM session_features\n"
    "ORDER BY closed_ms, start_ms, session, part;\n"
;

/* A version 1 database is upgraded in place when the server opens it: its
 * events become log number 0, are replayed, and the sessions they make are
 * closed and stored like any other. */
static void test_schema_upgrade_v1(void **state) {
    (void)state;
    sb_only_sqlite("a version 1 file upgraded in place");
    char path[600];
    snprintf(path, sizeof path, "%s/v1.db", sh_dir);
    sqlite3 *c;
    assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c, schema_v1, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(c,
                     "PRAGMA user_version=1;"
                     "INSERT INTO sessions VALUES (1, 'v-old', 's-old', 'default',"
                     " 1500000000000, 1500000060000, NULL, NULL, NULL, NULL, 2, 1, 25.0);"
                     "INSERT INTO page_views (session, ts, page_type, page_id, duration)"
                     " VALUES (1, 1500000000000, 'product_related', '/p/1', 30),"
                     " (1, 1500000030000, 'administrative', '/cart', 20);"
                     "INSERT INTO purchases (session, ts, revenue)"
                     " VALUES (1, 1500000060000, 25.0);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(c);

    sh_server sv;
    sh_start(&sv, "v1.db", NULL);
    sh_resp r = sh_post(sv.port, "/api/predict", "{\"session_id\": \"s-old\", \"reasons\": 0}");
    if (r.status != 200)
        fail_msg("predict s-old: %d %s", r.status, r.body);
    json_t *j = sh_json(&r), *f = json_object_get(j, "features");
    assert_false(json_is_true(json_object_get(j, "open")));
    assert_int_equal((int)json_number_value(json_object_get(f, "ProductRelated")), 1);
    assert_int_equal((int)json_number_value(json_object_get(f, "Administrative")), 1);
    json_decref(j);
    sh_resp_free(&r);
    assert_int_equal(sh_stop(&sv), 0);
    assert_int_equal(db_int(&sv, "PRAGMA user_version"), 2);
    assert_int_equal(db_int(&sv, "SELECT count(*) FROM page_views WHERE seq = 0"), 2);
    assert_int_equal(db_int(&sv, "SELECT seq FROM log_head"), 0);
    assert_int_equal(db_int(&sv, "SELECT count(*) FROM session_features WHERE revenue = 1"), 1);
}

static void test_schema_file_matches(void **state) {
    sh_server *sv = *state;
    sb_only_sqlite("schema.sql against the file's schema, user_version, WAL");
    FILE *f = fopen("examples/server/schema.sql", "r");
    assert_non_null(f);
    char *text = calloc(1, 1 << 16), *sql = calloc(1, 1 << 17);
    assert_non_null(text);
    assert_non_null(sql);
    assert_true(fread(text, 1, (1 << 16) - 1, f) > 0);
    fclose(f);
    /* SQLite's word for the dialect placeholder @ID@ (store_sqlite.c) */
    for (char *r = text, *w = sql, *at;; r = at + 4) {
        at = strstr(r, "@ID@");
        size_t n = at ? (size_t)(at - r) : strlen(r);
        memcpy(w, r, n);
        w += n;
        if (at == NULL)
            break;
        w += sprintf(w, "INTEGER PRIMARY KEY");
    }
    free(text);
    sqlite3 *mem;
    assert_int_equal(sqlite3_open(":memory:", &mem), SQLITE_OK);
    assert_int_equal(sqlite3_exec(mem, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3 *c = db_ro(sv);
    char *a = schema_dump(mem), *b = schema_dump(c);
    assert_string_equal(a, b);
    assert_int_equal(db_int(sv, "PRAGMA user_version"), 2);
    free(a);
    free(b);
    free(sql);
    sqlite3_close(mem);
    sqlite3_close(c);
    char mode[16] = "";
    c = db_ro(sv);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(c, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(c);
    assert_string_equal(mode, "wal");
}

static const char *const uci_columns[18] = {
    "Administrative", "Administrative_Duration", "Informational", "Informational_Duration",
    "ProductRelated", "ProductRelated_Duration", "BounceRates", "ExitRates", "PageValues",
    "SpecialDay", "Month", "OperatingSystems", "Browser", "Region", "TrafficType",
    "VisitorType", "Weekend", "Revenue"};

static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "June",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Waits (up to 10 s) until session_features holds n rows. */
static void wait_closed(const sh_server *sv, int64_t n) {
    for (int i = 0; i < 100; i++) {
        if (db_int(sv, "SELECT count(*) FROM session_features") >= n)
            return;
        sh_sleep_ms(100);
    }
    fail_msg("%lld closed sessions expected, %lld stored", (long long)n,
             (long long)db_int(sv, "SELECT count(*) FROM session_features"));
}

/* One exported row as text, columns joined by '|' (floating values "%g"). */
static void export_row(const sh_server *sv, int row, char *out, size_t size) {
    sb_rows r = sb_query(sv, "SELECT * FROM sessions_export");
    assert_int_equal(r.n_cols, 18);
    for (int k = 0; k < 18; k++)
        assert_string_equal(r.names[k], uci_columns[k]);
    assert_true(r.n_rows > row);
    size_t n = 0;
    out[0] = '\0';
    for (int k = 0; k < 18; k++) {
        const char *t = r.cell[row * 18 + k];
        assert_non_null(t);
        if (r.kind[row * 18 + k] == SB_FLOAT)
            n += (size_t)snprintf(out + n, size - n, "%s%g", k ? "|" : "", strtod(t, NULL));
        else
            n += (size_t)snprintf(out + n, size - n, "%s%s", k ? "|" : "", t);
    }
    sb_rows_free(&r);
}

/* Month and Weekend of a session that starts at ms (UTC). */
static void time_features(int64_t ms, const char **month, const char **weekend) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    *month = month_names[tm.tm_mon];
    *weekend = tm.tm_wday == 0 || tm.tm_wday == 6 ? "TRUE" : "FALSE";
}

/* `opecom eval` with the default model accepts the CSV file csv. */
static void eval_csv(const char *csv) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/opecom eval --model %s '%s' > '%s' 2>&1", tu_build_dir(),
             SH_MODEL, csv, sh_path("eval.out"));
    if (system(cmd) != 0) {
        char *text = sh_slurp(csv), *out = sh_slurp(sh_path("eval.out"));
        fail_msg("opecom eval failed on %s:\n%s%s", csv, text, out);
    }
}

/* A 2-second idle timeout, no special days, UTC: sessions close within
 * about 3 s of their last event, SpecialDay is 0. */
#define EXPORT_CONFIG "{\"session\": {\"idle_timeout_s\": 2, \"utc_offset_min\": 0}, \"special_days\": []}"

static void test_export_view(void **state) {
    (void)state;
    sh_server sv;
    start_server(&sv, "export.db", EXPORT_CONFIG);
    int64_t now = now_ms();
    char e[8][512];
    /* session 1: two administrative views (10 + 5 s), one informational
     * (7.25 s), three product views (20 + 30.5 + 1 s), a purchase of 12.
     * Device codes as numbers pass through unchanged. */
    const char *dev = ", \"os\": 3, \"browser\": \"5\", \"region\": 7, \"traffic_type\": 11";
    pageview(e[0], 512, "vx", "sx1", now - 1600, "administrative", "account", 10, dev);
    pageview(e[1], 512, "vx", "sx1", now - 1500, "administrative", "cart", 5, NULL);
    pageview(e[2], 512, "vx", "sx1", now - 1400, "informational", "faq", 7.25, NULL);
    pageview(e[3], 512, "vx", "sx1", now - 1300, "product_related", "p/1", 20, NULL);
    pageview(e[4], 512, "vx", "sx1", now - 1200, "product_related", "p/2", 30.5, NULL);
    pageview(e[5], 512, "vx", "sx1", now - 1100, "product_related", "p/3", 1, NULL);
    purchase(e[6], 512, "vx", "sx1", now - 1000, 12);
    assert_int_equal(post_events(&sv, e[0], e[1], e[2], e[3], e[4], e[5], e[6], NULL), 200);
    wait_closed(&sv, 1);

    const char *month, *weekend;
    char want[512], got[512];
    time_features(db_int(&sv, "SELECT first_ms FROM sessions WHERE session_id = 'sx1'"), &month,
                  &weekend);
    /* first closed session: no page statistics yet (rates and values 0),
     * the visitor's first session (New_Visitor) */
    snprintf(want, sizeof want, "2|15|1|7.25|3|51.5|0|0|0|0|%s|3|5|7|11|New_Visitor|%s|TRUE",
             month, weekend);
    export_row(&sv, 0, got, sizeof got);
    assert_string_equal(got, want);

    /* session 2, same visitor: p/3 (the page session 1 left from) then
     * account (where it entered). Statistics of session 1:
     *   bounce(p/3) = 0 (no entrances), bounce(account) = 0/1 -> 0
     *   exit(p/3) = 1/1, exit(account) = 0/1 -> ExitRates 0.5
     *   value = 12 / 1 for both (the purchase followed every view) -> 12
     * No purchase; Returning_Visitor. Device codes: the defaults (2, 2, 1, 2). */
    now = now_ms();
    pageview(e[0], 512, "vx", "sx2", now - 1200, "product_related", "p/3", 4, NULL);
    pageview(e[1], 512, "vx", "sx2", now - 1100, "administrative", "account", 6, NULL);
    assert_int_equal(post_events(&sv, e[0], e[1], NULL), 200);
    wait_closed(&sv, 2);
    time_features(db_int(&sv, "SELECT first_ms FROM sessions WHERE session_id = 'sx2'"), &month,
                  &weekend);
    snprintf(want, sizeof want,
             "1|6|0|0|1|4|0|0.5|12|0|%s|2|2|1|2|Returning_Visitor|%s|FALSE", month, weekend);
    export_row(&sv, 1, got, sizeof got);
    assert_string_equal(got, want);

    /* a closed session still answers /api/predict, from its stored features */
    int status;
    json_t *j = http_json(&sv, "POST", "/api/predict",
                          "{\"session_id\": \"sx1\", \"visitor_id\": \"vx\", \"reasons\": 0}",
                          &status);
    assert_int_equal(status, 200);
    assert_true(json_is_false(json_object_get(j, "open")));
    assert_int_equal((int)json_number_value(
                         json_object_get(json_object_get(j, "features"), "ProductRelated")),
                     3);
    json_decref(j);
    assert_int_equal(sh_stop(&sv), 0);

    /* the export is a training CSV that `opecom eval` accepts: as read
     * here (either backend), and as docs/server.md makes it from a SQLite
     * file with the sqlite3 CLI */
    sb_write_csv(&sv, "SELECT * FROM sessions_export", sh_path("live.csv"));
    eval_csv(sh_path("live.csv"));
    if (sb_backend != SB_SQLITE)
        return;
    if (system("command -v sqlite3 >/dev/null 2>&1") != 0) {
        print_message("sqlite3 CLI missing: its export is not checked\n");
        return;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "sqlite3 -header -csv '%s' 'SELECT * FROM sessions_export' > '%s'",
             sv.db_path, sh_path("live-cli.csv"));
    assert_int_equal(system(cmd), 0);
    eval_csv(sh_path("live-cli.csv"));
}

/* ===================================================================== *
 * GET /api/sessions
 * ===================================================================== */

static void test_sessions_api(void **state) {
    (void)state;
    sh_server sv;
    start_server(&sv, "sessions.db", NULL);
    int64_t now = now_ms();
    char e[12][512];
    /* one short visit, one longer browse, one heavy product session with
     * a checkout page */
    pageview(e[0], 512, "va", "sa", now - 9000, "informational", "about", 2, NULL);
    pageview(e[1], 512, "vb", "sb", now - 9000, "product_related", "p/1", 30, NULL);
    pageview(e[2], 512, "vb", "sb", now - 8000, "product_related", "p/2", 45, NULL);
    for (int k = 0; k < 8; k++)
        pageview(e[3 + k], 512, "vc", "sc", now - 8000 + k * 100, k < 6 ? "product_related" : "administrative",
                 k < 6 ? "p/9" : "checkout", 60 + k, NULL);
    assert_int_equal(post_events(&sv, e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8],
                                 e[9], e[10], NULL),
                     200);
    int status;
    json_t *j = http_json(&sv, "GET", "/api/sessions", NULL, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "active")), 3);
    assert_true(json_integer_value(json_object_get(j, "now")) >= now);
    json_t *h = json_object_get(j, "histogram");
    assert_int_equal(json_array_size(h), 10);
    int64_t total = 0;
    for (size_t b = 0; b < 10; b++)
        total += json_integer_value(json_array_get(h, b));
    assert_int_equal(total, 3);
    json_t *list = json_object_get(j, "sessions");
    assert_int_equal(json_array_size(list), 3);
    double prev = 2;
    char top[64];
    snprintf(top, sizeof top, "%s",
             json_string_value(json_object_get(json_array_get(list, 0), "session_id")));
    for (size_t i = 0; i < 3; i++) {
        json_t *s = json_array_get(list, i);
        double p = json_number_value(json_object_get(s, "probability"));
        assert_true(p >= 0 && p <= 1 && p <= prev);
        /* the session's bin holds at least one session */
        int b = p >= 1 ? 9 : (int)(p * 10);
        assert_true(json_integer_value(json_array_get(h, (size_t)b)) >= 1);
        prev = p;
        assert_true(json_is_array(json_object_get(s, "reasons")));
        assert_true(json_array_size(json_object_get(s, "reasons")) >= 1);
        assert_true(json_array_size(json_object_get(s, "reasons")) <= 3);
        assert_string_equal(json_string_value(json_object_get(s, "variant")), "default");
        const char *sid = json_string_value(json_object_get(s, "session_id"));
        int pv = (int)json_integer_value(json_object_get(s, "page_views"));
        double dur = json_number_value(json_object_get(s, "duration"));
        if (strcmp(sid, "sa") == 0) {
            assert_int_equal(pv, 1);
            assert_true(fabs(dur - 2) < 1e-9);
            assert_string_equal(json_string_value(json_object_get(s, "visitor_id")), "va");
        } else if (strcmp(sid, "sb") == 0) {
            assert_int_equal(pv, 2);
            assert_true(fabs(dur - 75) < 1e-9);
            assert_int_equal(json_integer_value(json_object_get(s, "started")),
                             db_int(&sv, "SELECT first_ms FROM sessions WHERE session_id='sb'"));
            assert_int_equal(json_integer_value(json_object_get(s, "last_seen")),
                             db_int(&sv, "SELECT last_ms FROM sessions WHERE session_id='sb'"));
        } else {
            assert_string_equal(sid, "sc");
            assert_int_equal(pv, 8);
        }
        /* the probability is the one /api/predict gives for the session */
        char body[256];
        snprintf(body, sizeof body, "{\"session_id\": \"%s\", \"reasons\": 0}", sid);
        json_t *pj = http_json(&sv, "POST", "/api/predict", body, &status);
        assert_int_equal(status, 200);
        assert_true(fabs(json_number_value(json_object_get(pj, "probability")) - p) < 1e-4);
        json_decref(pj);
    }
    json_decref(j);

    /* limit */
    j = http_json(&sv, "GET", "/api/sessions?limit=1", NULL, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_array_size(json_object_get(j, "sessions")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "active")), 3);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "sessions"), 0), "session_id")),
                        top);
    json_decref(j);
    j = http_json(&sv, "GET", "/api/sessions?limit=1000", NULL, &status);
    assert_int_equal(status, 200);
    json_decref(j);
    static const char *const bad[] = {"0", "1001", "abc", "-1", "", "5x", "1e2", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/sessions?limit=%s", bad[i]);
        j = http_json(&sv, "GET", path, NULL, &status);
        if (status != 422 || !json_is_string(json_object_get(j, "field")) ||
            strcmp(json_string_value(json_object_get(j, "field")), "limit") != 0)
            fail_msg("%s: got %d %s", path, status, json_dumps(j, 0));
        json_decref(j);
    }
    assert_int_equal(sh_stop(&sv), 0);
}

/* ===================================================================== *
 * Fixtures
 * ===================================================================== */

static int shared_up(void **state) {
    static sh_server sv;
    start_server(&sv, "track.db", NULL);
    *state = &sv;
    return 0;
}

static int shared_down(void **state) {
    assert_int_equal(sh_stop(*state), 0);
    return sh_kill_leftovers(state);
}

int main(void) {
    if (sh_make_dir() != 0)
        return 1;
    const struct CMUnitTest shared[] = {
        cmocka_unit_test(test_track_rejects),
        cmocka_unit_test(test_track_accepts_and_shifts),
        cmocka_unit_test(test_track_durable),
        cmocka_unit_test(test_schema_file_matches),
        cmocka_unit_test(test_schema_upgrade_v1),
    };
    const struct CMUnitTest own[] = {
        cmocka_unit_test_teardown(test_restart, sh_kill_leftovers),
        cmocka_unit_test_teardown(test_export_view, sh_kill_leftovers),
        cmocka_unit_test_teardown(test_sessions_api, sh_kill_leftovers),
    };
    int failed = 0;
    for (int b = 0; b < SB_COUNT; b++) {
        int begun = sb_begin(b);
        if (begun == 0) {
            char own_name[64];
            snprintf(own_name, sizeof own_name, "%s: own servers", sb_name());
            failed += cmocka_run_group_tests_name(sb_name(), shared, shared_up, shared_down);
            failed += cmocka_run_group_tests_name(own_name, own, NULL, NULL);
        }
        failed += sb_end(begun);
    }
    mysql_library_end();
    if (failed == 0)
        sh_remove_dir();
    return failed ? 1 : 0;
}
