/*
 * test_server.c - end-to-end tests of opecom-server's HTTP API, run against
 * the real program ($BUILD/opecom-server) over loopback.
 *
 * One server (variants a and b, a scratch store and dashboard) serves most
 * tests; the experiment test starts its own. What is checked: every route
 * and its status codes; each validation rule of POST /api/predict with the
 * `field` it names; scores equal to the library's own opecom_predict on the
 * same row; static files and path traversal attempts (never the file);
 * 405 / 413 / 415; /api/experiments against statistics computed here from
 * the visitors' variants (FNV-1a computed here too), before and after a
 * restart; /metrics through promtool. Start-up, bad settings and the
 * configuration file: test_server_config.c.
 *
 * Every test runs twice, once per storage backend (server_backends.h): the
 * group "sqlite" on a scratch file, the group "mariadb" on a private
 * mariadbd (skipped, with the reason, when mariadb-server is missing).
 *
 * Run from the repository root: BUILD=build build/tests/test_server
 */
#include "server_backends.h" /* first: it sets _XOPEN_SOURCE */

#include <math.h>

static sh_server server;            /* the shared server */
static opecom_model *model;         /* the same model, to check scores */
static const double ab_weights[2] = {1, 1};

static const char *makefile_marker = "libopecom - one Makefile";

/* ===================================================================== *
 * Fixture
 * ===================================================================== */

static int group_setup(void **state) {
    char store[600], target[4096];
    opecom_error err;
    (void)state;
    if (sh_make_dir() != 0)
        return -1;
    if (opecom_model_load(SH_MODEL, NULL, &model, &err) != OPECOM_OK) {
        fprintf(stderr, "# cannot load %s: %s\n", SH_MODEL, err.message);
        return -1;
    }
    /* A store and a dashboard of our own, with a symlink leading out. */
    snprintf(store, sizeof(store), "%s/store", sh_dir);
    mkdir(store, 0777);
    mkdir(sh_path("store/sub"), 0777);
    mkdir(sh_path("dash"), 0777);
    {
        FILE *f;
        if ((f = fopen(sh_path("store/index.html"), "w")) == NULL)
            return -1;
        fputs("<h1>store</h1>\n", f);
        fclose(f);
        if ((f = fopen(sh_path("store/style.css"), "w")) == NULL)
            return -1;
        fputs("h1 { color: red }\n", f);
        fclose(f);
        if ((f = fopen(sh_path("store/sub/index.html"), "w")) == NULL)
            return -1;
        fputs("<p>sub</p>\n", f);
        fclose(f);
        if ((f = fopen(sh_path("dash/index.html"), "w")) == NULL)
            return -1;
        fputs("<p>dashboard</p>\n", f);
        fclose(f);
    }
    if (realpath("Makefile", target) == NULL || symlink(target, sh_path("store/link")) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state) {
    int rc = 0;
    (void)state;
    /* A sanitizer report in the server shows up as its exit status. */
    if (server.pid > 0 && sh_stop(&server) != 0) {
        char *e = sh_slurp(server.err_path);
        fprintf(stderr, "# the shared server did not exit with 0; stderr:\n%s", e);
        free(e);
        rc = -1;
    }
    opecom_model_free(model);
    sh_remove_dir();
    return rc;
}

/* The shared server, started by the first test that needs it. */
static int shared(void) {
    if (server.pid <= 0) {
        char m1[700], m2[700];
        char *args[12];
        snprintf(m1, sizeof(m1), "a=%s:1", SH_MODEL);
        snprintf(m2, sizeof(m2), "b=%s:1", SH_MODEL);
        args[0] = "--variant";
        args[1] = m1;
        args[2] = "--variant";
        args[3] = m2;
        args[4] = "--store-dir";
        args[5] = (char *)sh_path("store");
        args[6] = "--dashboard-dir";
        args[7] = (char *)sh_path("dash");
        args[8] = "--threads";
        args[9] = "4";
        args[10] = NULL;
        sh_start(&server, "shared.db", args);
    }
    return server.port;
}

/* sh_base_row with `del` removed and the keys of the object `set` put in. */
static char *row_with(const char *del, const char *set) {
    json_t *o = json_loads(sh_base_row, JSON_PRESERVE_ORDER, NULL);
    char *s;
    assert_non_null(o);
    if (del != NULL)
        json_object_del(o, del);
    if (set != NULL) {
        json_t *x = json_loads(set, 0, NULL);
        assert_non_null(x);
        json_object_update(o, x);
        json_decref(x);
    }
    s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(o);
    assert_non_null(s);
    return s;
}

/* The library's own probability for sh_base_row with Month = `month`. */
static double library_probability(const char *month) {
    opecom_value uci[17] = {{2, NULL},    {40.5, NULL}, {0, NULL}, {0, NULL},   {18, NULL},
                            {620, NULL},  {0.01, NULL}, {0.03, NULL}, {12.4, NULL}, {0, NULL},
                            {0, month},   {2, NULL},    {2, NULL}, {1, NULL},   {2, NULL},
                            {0, "Returning_Visitor"},   {0, "FALSE"}};
    opecom_value row[32];
    int32_t cols[32];
    opecom_model_info info;
    opecom_result res;
    uint32_t i;
    opecom_model_describe(model, &info);
    assert_int_equal(opecom_session_bind(model, cols, NULL), OPECOM_OK);
    for (i = 0; i < info.n_features; i++)
        row[i] = uci[cols[i]];
    assert_int_equal(opecom_predict(model, NULL, row, &res, NULL), OPECOM_OK);
    return res.probability;
}

/* ===================================================================== *
 * Health, readiness, URLs
 * ===================================================================== */

static void test_health(void **state) {
    int port = shared();
    char line[128];
    sh_resp r;
    (void)state;
    snprintf(line, sizeof(line), "opecom-server: dashboard http://127.0.0.1:%d/dashboard/\n", port);
    assert_non_null(strstr(server.urls, line));
    snprintf(line, sizeof(line), "opecom-server: metrics http://127.0.0.1:%d/metrics\n", port);
    assert_non_null(strstr(server.urls, line));
    r = sh_get(port, "/healthz");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    sh_resp_free(&r);
    r = sh_get(port, "/readyz");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ready\n");
    sh_resp_free(&r);
}

/* ===================================================================== *
 * POST /api/predict
 * ===================================================================== */

static void test_predict_raw(void **state) {
    int port = shared();
    sh_resp r = sh_post(port, "/api/predict", sh_base_row);
    json_t *o, *reasons;
    double p;
    (void)state;
    assert_int_equal(r.status, 200);
    assert_string_equal(sh_header(&r, "Content-Type"), "application/json");
    assert_string_equal(sh_header(&r, "Cache-Control"), "no-store");
    o = sh_json(&r);
    p = json_number_value(json_object_get(o, "probability"));
    assert_true(fabs(p - library_probability("Nov")) < 1e-6);
    assert_int_equal(json_array_size(json_object_get(o, "members")), 4);
    assert_true(json_is_number(json_object_get(o, "spread")));
    assert_true(json_is_number(json_object_get(o, "confidence")));
    assert_true(json_is_boolean(json_object_get(o, "label")));
    assert_true(json_is_number(json_object_get(o, "threshold")));
    assert_string_equal(json_string_value(json_object_get(o, "variant")), "a");
    assert_string_equal(json_string_value(json_object_get(o, "model")), "shoppers-tabm-k4");
    assert_non_null(json_string_value(json_object_get(o, "kernel")));
    assert_string_equal(json_string_value(json_object_get(o, "action")),
                        p >= 0.2 && p < 0.6 ? "discount" : "none");
    reasons = json_object_get(o, "reasons");
    assert_int_equal(json_array_size(reasons), 3);
    assert_non_null(json_string_value(json_object_get(json_array_get(reasons, 0), "feature")));
    assert_non_null(json_string_value(json_object_get(json_array_get(reasons, 0), "text")));
    assert_true(fabs(json_number_value(json_object_get(json_array_get(reasons, 0),
                                                       "contribution"))) >=
                fabs(json_number_value(json_object_get(json_array_get(reasons, 2),
                                                       "contribution"))));
    assert_int_equal(json_array_size(json_object_get(o, "unknown")), 0);
    json_decref(o);
    sh_resp_free(&r);
}

/* Accepted spellings, options and an unseen category. */
static void test_predict_forms(void **state) {
    static const struct {
        const char *set;
        const char *variant;   /* expected variant; NULL: not checked */
        int n_reasons;         /* -1: not checked */
        const char *unknown;   /* expected unknown[0] or NULL for none */
    } cases[] = {
        {"{\"Revenue\": true}", "a", 3, NULL},
        {"{\"Weekend\": \"FALSE\", \"Browser\": \"2\", \"Region\": \"1\"}", "a", 3, NULL},
        {"{\"reasons\": 0}", "a", 0, NULL},
        {"{\"reasons\": 17}", "a", 17, NULL},
        {"{\"variant\": \"b\"}", "b", 3, NULL},
        {"{\"Month\": \"Smarch\"}", "a", -1, "Month"},
        {"{\"Browser\": 999}", "a", -1, "Browser"},
    };
    int port = shared();
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *body = row_with(NULL, cases[i].set);
        sh_resp r = sh_post(port, "/api/predict", body);
        json_t *o;
        if (r.status != 200)
            fail_msg("case %zu (%s): status %d: %s", i, cases[i].set, r.status, r.body);
        o = sh_json(&r);
        assert_string_equal(json_string_value(json_object_get(o, "variant")), cases[i].variant);
        if (cases[i].n_reasons >= 0)
            assert_int_equal(json_array_size(json_object_get(o, "reasons")),
                             cases[i].n_reasons);
        if (cases[i].unknown == NULL) {
            assert_int_equal(json_array_size(json_object_get(o, "unknown")), 0);
            assert_true(fabs(json_number_value(json_object_get(o, "probability")) -
                             library_probability("Nov")) < 1e-6);
        } else {
            assert_string_equal(
                json_string_value(json_array_get(json_object_get(o, "unknown"), 0)),
                cases[i].unknown);
        }
        json_decref(o);
        sh_resp_free(&r);
        free(body);
    }
}

/* visitor_id picks the visitor's variant (FNV-1a, computed here). */
static void test_predict_visitor_variant(void **state) {
    int port = shared();
    int seen[2] = {0, 0};
    int i;
    (void)state;
    for (i = 0; i < 12; i++) {
        char set[128], vid[32];
        char *body;
        sh_resp r;
        json_t *o;
        int v;
        snprintf(vid, sizeof(vid), "visitor-%d", i);
        snprintf(set, sizeof(set), "{\"visitor_id\": \"%s\", \"reasons\": 0}", vid);
        body = row_with(NULL, set);
        r = sh_post(port, "/api/predict", body);
        assert_int_equal(r.status, 200);
        o = sh_json(&r);
        v = sh_variant_for(vid, ab_weights, 2);
        seen[v]++;
        assert_string_equal(json_string_value(json_object_get(o, "variant")), v ? "b" : "a");
        json_decref(o);
        sh_resp_free(&r);
        free(body);
    }
    assert_true(seen[0] > 0 && seen[1] > 0);
}

static void test_predict_errors(void **state) {
    static const struct {
        const char *del;   /* key removed from sh_base_row */
        const char *set;   /* keys put in */
        int status;
        const char *field; /* NULL: "field": null */
    } cases[] = {
        {"Administrative", NULL, 422, "Administrative"},
        {"Weekend", NULL, 422, "Weekend"},
        {"Month", NULL, 422, "Month"},
        {NULL, "{\"Foo\": 1}", 422, "Foo"},
        {NULL, "{\"Administrative\": \"2\"}", 422, "Administrative"},
        {NULL, "{\"Administrative\": -1}", 422, "Administrative"},
        {NULL, "{\"ProductRelated_Duration\": -0.5}", 422, "ProductRelated_Duration"},
        {NULL, "{\"BounceRates\": 1.5}", 422, "BounceRates"},
        {NULL, "{\"ExitRates\": -0.1}", 422, "ExitRates"},
        {NULL, "{\"SpecialDay\": 2}", 422, "SpecialDay"},
        {NULL, "{\"PageValues\": null}", 422, "PageValues"},
        {NULL, "{\"Informational\": true}", 422, "Informational"},
        {NULL, "{\"Month\": []}", 422, "Month"},
        {NULL, "{\"Browser\": {}}", 422, "Browser"},
        {NULL, "{\"Browser\": \"\"}", 422, "Browser"},
        {NULL, "{\"VisitorType\": null}", 422, "VisitorType"},
        {NULL, "{\"Weekend\": \"maybe\"}", 422, "Weekend"},
        {NULL, "{\"Weekend\": 1}", 422, "Weekend"},
        {NULL, "{\"reasons\": 18}", 422, "reasons"},
        {NULL, "{\"reasons\": -1}", 422, "reasons"},
        {NULL, "{\"reasons\": 1.5}", 422, "reasons"},
        {NULL, "{\"variant\": \"nope\"}", 422, "variant"},
        {NULL, "{\"variant\": 3}", 422, "variant"},
        {NULL, "{\"visitor_id\": 5}", 422, "visitor_id"},
        {NULL, "{\"visitor_id\": \"tab\\there\"}", 422, "visitor_id"},
        {NULL, "{\"session_id\": \"s-1\"}", 422, "Administrative"},
    };
    static const struct {
        const char *body;
        int status;
        const char *field;
    } raw[] = {
        {"not json", 400, NULL},
        {"", 400, NULL},
        {"[1, 2]", 400, NULL},
        {"{\"Administrative\": NaN}", 400, NULL},
        {"{\"Administrative\": 1e999}", 400, NULL},
        {"{\"session_id\": \"no-such-session\"}", 404, "session_id"},
        {"{\"session_id\": \"\"}", 422, "session_id"},
        {"{\"session_id\": 7}", 422, "session_id"},
        {"{\"session_id\": \"x\", \"reasons\": 99}", 422, "reasons"},
        {"{\"session_id\": \"x\", \"variant\": \"zz\"}", 422, "variant"},
        {"{}", 422, "Administrative"},
    };
    int port = shared();
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]) + sizeof(raw) / sizeof(raw[0]); i++) {
        size_t n = sizeof(cases) / sizeof(cases[0]);
        char *body = i < n ? row_with(cases[i].del, cases[i].set) : strdup(raw[i - n].body);
        int status = i < n ? cases[i].status : raw[i - n].status;
        const char *field = i < n ? cases[i].field : raw[i - n].field;
        sh_resp r = sh_post(port, "/api/predict", body);
        json_t *o, *f;
        if (r.status != status)
            fail_msg("%s: status %d, expected %d: %s", body, r.status, status, r.body);
        o = sh_json(&r);
        f = json_object_get(o, "field");
        assert_true(json_is_string(json_object_get(o, "error")));
        if (field == NULL) {
            if (!json_is_null(f))
                fail_msg("%s: field should be null: %s", body, r.body);
        } else {
            if (!json_is_string(f) || strcmp(json_string_value(f), field) != 0)
                fail_msg("%s: field should be %s: %s", body, field, r.body);
            /* The message starts with the field. */
            assert_int_equal(strncmp(json_string_value(json_object_get(o, "error")), field,
                                     strlen(field)), 0);
        }
        json_decref(o);
        sh_resp_free(&r);
        free(body);
    }
}

/* A session the server knows: tracked first, then scored by id. */
static void test_predict_session(void **state) {
    int port = shared();
    char body[1024];
    long long now = (long long)time(NULL) * 1000;
    sh_resp r;
    json_t *o, *features;
    (void)state;
    snprintf(body, sizeof(body),
             "{\"events\": [{\"type\": \"pageview\", \"visitor_id\": \"v-sess\", "
             "\"session_id\": \"s-sess\", \"ts\": %lld, \"page_type\": \"product_related\", "
             "\"page_id\": \"product/cup\", \"duration\": 12.5, \"os\": \"Linux\", "
             "\"browser\": \"Firefox\", \"traffic_type\": \"search\"},"
             "{\"type\": \"pageview\", \"visitor_id\": \"v-sess\", \"session_id\": \"s-sess\", "
             "\"ts\": %lld, \"page_type\": \"administrative\", \"page_id\": \"cart\", "
             "\"duration\": 3}]}",
             now - 5000, now - 1000);
    r = sh_post(port, "/api/track", body);
    assert_int_equal(r.status, 200);
    sh_resp_free(&r);
    r = sh_post(port, "/api/predict", "{\"session_id\": \"s-sess\", \"visitor_id\": \"v-sess\"}");
    if (r.status != 200)
        fail_msg("status %d: %s", r.status, r.body);
    o = sh_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "session_id")), "s-sess");
    assert_string_equal(json_string_value(json_object_get(o, "visitor_id")), "v-sess");
    assert_true(json_is_true(json_object_get(o, "open")));
    assert_string_equal(json_string_value(json_object_get(o, "variant")),
                        sh_variant_for("v-sess", ab_weights, 2) ? "b" : "a");
    features = json_object_get(o, "features");
    assert_int_equal(json_object_size(features), 17);
    assert_true(json_number_value(json_object_get(features, "ProductRelated")) == 1);
    assert_true(json_number_value(json_object_get(features, "Administrative")) == 1);
    assert_true(json_number_value(json_object_get(features, "ProductRelated_Duration")) == 12.5);
    /* The default code table: Linux 4, Firefox 5, search 2. */
    assert_true(json_number_value(json_object_get(features, "OperatingSystems")) == 4);
    assert_true(json_number_value(json_object_get(features, "Browser")) == 5);
    assert_true(json_number_value(json_object_get(features, "TrafficType")) == 2);
    assert_int_equal(json_array_size(json_object_get(o, "reasons")), 3);
    json_decref(o);
    sh_resp_free(&r);
    /* Without the visitor id too; with a variant override. */
    r = sh_post(port, "/api/predict",
                "{\"session_id\": \"s-sess\", \"variant\": \"b\", \"reasons\": 0}");
    assert_int_equal(r.status, 200);
    o = sh_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "variant")), "b");
    assert_string_equal(json_string_value(json_object_get(o, "visitor_id")), "v-sess");
    json_decref(o);
    sh_resp_free(&r);
}

/* ===================================================================== *
 * Other routes, methods and limits
 * ===================================================================== */

static void test_get_routes(void **state) {
    int port = shared();
    sh_resp r;
    json_t *o;
    (void)state;
    r = sh_get(port, "/api/sessions?limit=5");
    assert_int_equal(r.status, 200);
    assert_string_equal(sh_header(&r, "Cache-Control"), "no-store");
    o = sh_json(&r);
    assert_true(json_is_array(json_object_get(o, "sessions")));
    assert_true(json_array_size(json_object_get(o, "sessions")) <= 5);
    json_decref(o);
    sh_resp_free(&r);
    r = sh_get(port, "/api/experiments");
    assert_int_equal(r.status, 200);
    o = sh_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "control")), "a");
    assert_int_equal(json_array_size(json_object_get(o, "variants")), 2);
    json_decref(o);
    sh_resp_free(&r);
    r = sh_get(port, "/api/nope");
    assert_int_equal(r.status, 404);
    o = sh_json(&r);
    assert_true(json_is_null(json_object_get(o, "field")));
    json_decref(o);
    sh_resp_free(&r);
    r = sh_request_raw(port, "POST", "/api/nope", "Content-Type: application/json\r\n", "{}", 2,
                       1);
    assert_int_equal(r.status, 404);
    sh_resp_free(&r);
}

static void test_methods(void **state) {
    static const struct {
        const char *method, *path, *allow;
    } cases[] = {
        {"GET", "/api/predict", "POST"},     {"PUT", "/api/track", "POST"},
        {"POST", "/api/sessions", "GET, HEAD"}, {"DELETE", "/api/experiments", "GET, HEAD"},
        {"POST", "/metrics", "GET, HEAD"},   {"POST", "/healthz", "GET, HEAD"},
        {"POST", "/", "GET, HEAD"},          {"PUT", "/style.css", "GET, HEAD"},
    };
    int port = shared();
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sh_resp r = sh_request_raw(port, cases[i].method, cases[i].path,
                                   "Content-Type: application/json\r\n", "{}", 2, 1);
        if (r.status != 405)
            fail_msg("%s %s: status %d", cases[i].method, cases[i].path, r.status);
        assert_non_null(sh_header(&r, "Allow"));
        assert_string_equal(sh_header(&r, "Allow"), cases[i].allow);
        sh_resp_free(&r);
    }
}

static void test_body_limits(void **state) {
    int port = shared();
    size_t big = 1024 * 1024 + 1, i;
    char *body = malloc(big + 64 * 1024);
    char *chunked;
    size_t clen = 0;
    sh_resp r;
    (void)state;
    assert_non_null(body);
    /* Declared too large: answered from the headers, no body sent. */
    r = sh_request_raw(port, "POST", "/api/predict",
                       "Content-Type: application/json\r\nContent-Length: 2000000\r\n", NULL, 0, 0);
    assert_int_equal(r.status, 413);
    sh_resp_free(&r);
    /* Sent too large. */
    memset(body, ' ', big);
    r = sh_request_raw(port, "POST", "/api/track", "Content-Type: application/json\r\n", body, big,
                       1);
    assert_int_equal(r.status, 413);
    sh_resp_free(&r);
    /* Chunked, growing past the limit: 17 chunks of 64 KiB plus their
     * size lines and the last chunk. */
    chunked = malloc(17 * (0x10000 + 16) + 16);
    assert_non_null(chunked);
    for (i = 0; i < 17; i++) {
        clen += (size_t)sprintf(chunked + clen, "10000\r\n");
        memset(chunked + clen, ' ', 0x10000);
        clen += 0x10000;
        clen += (size_t)sprintf(chunked + clen, "\r\n");
    }
    clen += (size_t)sprintf(chunked + clen, "0\r\n\r\n");
    r = sh_request_raw(port, "POST", "/api/predict",
                       "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", chunked,
                       clen, 0);
    assert_int_equal(r.status, 413);
    sh_resp_free(&r);
    free(chunked);
    free(body);
}

static void test_content_types(void **state) {
    static const struct {
        const char *headers;
        int unsupported;
    } cases[] = {
        {"Content-Type: text/html\r\n", 1},
        {"", 1},
        {"Content-Type: application/x-www-form-urlencoded\r\n", 1},
        {"Content-Type: application/jsonx\r\n", 1},
        {"Content-Type: application/json\r\n", 0},
        {"Content-Type: application/json; charset=utf-8\r\n", 0},
        {"Content-Type: text/plain;charset=UTF-8\r\n", 0},
    };
    int port = shared();
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sh_resp r = sh_request_raw(port, "POST", "/api/predict", cases[i].headers, sh_base_row,
                                   strlen(sh_base_row), 1);
        if (cases[i].unsupported ? r.status != 415 : r.status != 200)
            fail_msg("\"%s\": status %d", cases[i].headers, r.status);
        sh_resp_free(&r);
    }
}

/* ===================================================================== *
 * Static files
 * ===================================================================== */

static void test_static(void **state) {
    static const struct {
        const char *path;
        int status;
        const char *type;     /* Content-Type, or Location for 301 */
        const char *body;
    } cases[] = {
        {"/", 200, "text/html; charset=utf-8", "<h1>store</h1>\n"},
        {"/index.html", 200, "text/html; charset=utf-8", "<h1>store</h1>\n"},
        {"/style.css", 200, "text/css; charset=utf-8", "h1 { color: red }\n"},
        {"/sub", 301, "/sub/", NULL},
        {"/sub/", 200, "text/html; charset=utf-8", "<p>sub</p>\n"},
        {"/dashboard", 301, "/dashboard/", NULL},
        {"/dashboard/", 200, "text/html; charset=utf-8", "<p>dashboard</p>\n"},
        {"/dashboard/index.html", 200, "text/html; charset=utf-8", "<p>dashboard</p>\n"},
        {"/%73tyle.css", 200, "text/css; charset=utf-8", "h1 { color: red }\n"},
        {"/nope.html", 404, NULL, NULL},
        {"/dashboard/style.css", 404, NULL, NULL},
    };
    int port = shared();
    size_t i;
    sh_resp r;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r = sh_get(port, cases[i].path);
        if (r.status != cases[i].status)
            fail_msg("%s: status %d, expected %d", cases[i].path, r.status, cases[i].status);
        if (cases[i].status == 301)
            assert_string_equal(sh_header(&r, "Location"), cases[i].type);
        else if (cases[i].type != NULL)
            assert_string_equal(sh_header(&r, "Content-Type"), cases[i].type);
        if (cases[i].body != NULL)
            assert_string_equal(r.body, cases[i].body);
        sh_resp_free(&r);
    }
    r = sh_request_raw(port, "HEAD", "/style.css", NULL, NULL, 0, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(sh_header(&r, "Content-Length"), "18");
    sh_resp_free(&r);
}

static void test_traversal(void **state) {
    static const char *const paths[] = {
        "/../Makefile",
        "/%2e%2e/Makefile",
        "/%2E%2E/Makefile",
        "/..%2fMakefile",
        "/%2e%2e%2fMakefile",
        "/dashboard/../../Makefile",
        "/dashboard/%2e%2e/%2e%2e/Makefile",
        "/sub/../../../Makefile",
        "/../../../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..\\..\\Makefile",
        "/index.html%00.css",
        "/./index.html",
        "/link",
        "/dashboard/../link",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
    };
    int port = shared();
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        sh_resp r = sh_get(port, paths[i]);
        if (r.status != 400 && r.status != 404)
            fail_msg("%s: status %d, expected 400 or 404", paths[i], r.status);
        if (strstr(r.body, makefile_marker) != NULL || strstr(r.body, "root:") != NULL)
            fail_msg("%s: served a file outside the root", paths[i]);
        sh_resp_free(&r);
    }
}

/* ===================================================================== *
 * /metrics
 * ===================================================================== */

static void test_metrics(void **state) {
    int port = shared();
    sh_resp r;
    char cmd[800];
    int st;
    (void)state;
    r = sh_post(port, "/api/predict", sh_base_row); /* at least one prediction */
    sh_resp_free(&r);
    r = sh_get(port, "/metrics");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(sh_header(&r, "Content-Type"), "text/plain"));
    assert_non_null(strstr(r.body, "# TYPE opecom_http_requests_total counter\n"));
    assert_non_null(strstr(r.body, "opecom_http_requests_total{route=\"/api/predict\",code=\"200\"} "));
    assert_non_null(strstr(r.body, "# TYPE opecom_http_request_duration_seconds histogram\n"));
    assert_non_null(
        strstr(r.body, "opecom_http_request_duration_seconds_bucket{route=\"/api/predict\",le=\"+Inf\"} "));
    assert_non_null(strstr(r.body, "opecom_predictions_total{variant=\"a\",bucket=\"0.0\"} "));
    assert_non_null(strstr(r.body, "opecom_predictions_total{variant=\"b\",bucket=\"0.9\"} "));
    assert_non_null(strstr(r.body, "opecom_events_ingested_total{type=\"pageview\"} "));
    assert_non_null(strstr(r.body, "opecom_events_late_total "));
    assert_non_null(strstr(r.body, "opecom_db_commit_duration_seconds_count "));
    assert_non_null(strstr(r.body, "opecom_sessions_active "));
    assert_non_null(strstr(r.body, "opecom_model_info{variant=\"b\",model=\"shoppers-tabm-k4\","));
    /* Every bucket series is cumulative: +Inf equals _count. */
    {
        const char *inf = strstr(r.body, "opecom_http_request_duration_seconds_bucket{route=\"/api/predict\",le=\"+Inf\"} ");
        const char *cnt = strstr(r.body, "opecom_http_request_duration_seconds_count{route=\"/api/predict\"} ");
        assert_non_null(cnt);
        assert_int_equal(atoll(strchr(inf, '}') + 2), atoll(strchr(cnt, '}') + 2));
        assert_true(atoll(strchr(cnt, '}') + 2) >= 1);
    }
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        printf("# promtool is not installed (apt-get install prometheus): check skipped\n");
    } else {
        FILE *f = fopen(sh_path("metrics.txt"), "w");
        assert_non_null(f);
        fwrite(r.body, 1, r.body_len, f);
        fclose(f);
        snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' > '%s' 2>&1",
                 sh_path("metrics.txt"), sh_path("promtool.txt"));
        st = system(cmd);
        if (st != 0) {
            char *out = sh_slurp(sh_path("promtool.txt"));
            fail_msg("promtool check metrics failed:\n%s", out);
        }
    }
    sh_resp_free(&r);
}

/* ===================================================================== *
 * /api/experiments against statistics computed here
 * ===================================================================== */

#define N_VISITORS 90

static void check_experiments(int port, const int64_t *n, const int64_t *c) {
    sh_resp r = sh_get(port, "/api/experiments");
    json_t *o, *vars;
    int v;
    assert_int_equal(r.status, 200);
    o = sh_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "control")), "a");
    vars = json_object_get(o, "variants");
    assert_int_equal(json_array_size(vars), 2);
    for (v = 0; v < 2; v++) {
        json_t *x = json_array_get(vars, (size_t)v);
        double nn = (double)n[v], rate = (double)c[v] / nn, z2 = 1.959963984540054 * 1.959963984540054;
        double centre = (rate + z2 / (2 * nn)) / (1 + z2 / nn);
        double half = 1.959963984540054 * sqrt(rate * (1 - rate) / nn + z2 / (4 * nn * nn)) /
                      (1 + z2 / nn);
        assert_string_equal(json_string_value(json_object_get(x, "name")), v ? "b" : "a");
        assert_string_equal(json_string_value(json_object_get(x, "model")), "shoppers-tabm-k4");
        assert_true(json_number_value(json_object_get(x, "weight")) == 1);
        assert_int_equal(json_integer_value(json_object_get(x, "sessions")), n[v]);
        assert_int_equal(json_integer_value(json_object_get(x, "conversions")), c[v]);
        assert_true(fabs(json_number_value(json_object_get(x, "rate")) - rate) < 1e-12);
        assert_true(fabs(json_number_value(json_object_get(x, "ci_low")) - (centre - half)) < 1e-9);
        assert_true(fabs(json_number_value(json_object_get(x, "ci_high")) - (centre + half)) < 1e-9);
        if (v == 0) {
            assert_true(json_is_null(json_object_get(x, "z")));
            assert_true(json_is_null(json_object_get(x, "p_value")));
        } else {
            double p = (double)(c[0] + c[1]) / (double)(n[0] + n[1]);
            double se = sqrt(p * (1 - p) * (1 / (double)n[0] + 1 / (double)n[1]));
            double z = ((double)c[1] / (double)n[1] - (double)c[0] / (double)n[0]) / se;
            double pv = erfc(fabs(z) / sqrt(2.0));
            assert_true(fabs(json_number_value(json_object_get(x, "z")) - z) < 1e-9);
            assert_true(fabs(json_number_value(json_object_get(x, "p_value")) - pv) < 1e-9);
        }
    }
    json_decref(o);
    sh_resp_free(&r);
}

static void test_experiments(void **state) {
    char m1[700], m2[700];
    char *args[] = {"--variant", m1, "--variant", m2, NULL};
    int64_t n[2] = {0, 0}, c[2] = {0, 0};
    long long now = (long long)time(NULL) * 1000;
    size_t cap = 400 * N_VISITORS, len = 0;
    char *body = malloc(cap);
    sh_server sv;
    sh_resp r;
    int i;
    (void)state;
    assert_non_null(body);
    snprintf(m1, sizeof(m1), "a=%s:1", SH_MODEL);
    snprintf(m2, sizeof(m2), "b=%s:1", SH_MODEL);
    sh_start(&sv, "experiments.db", args);
    /* Before any session: nothing is defined. */
    r = sh_get(sv.port, "/api/experiments");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"sessions\":0"));
    assert_non_null(strstr(r.body, "\"rate\":null"));
    sh_resp_free(&r);

    len += (size_t)snprintf(body + len, cap - len, "{\"events\": [");
    for (i = 0; i < N_VISITORS; i++) {
        char vid[32];
        int v, buys;
        snprintf(vid, sizeof(vid), "exp-visitor-%d", i);
        v = sh_variant_for(vid, ab_weights, 2);
        buys = i % 5 == 0 || (v == 1 && i % 5 == 1);
        n[v]++;
        c[v] += buys;
        len += (size_t)snprintf(body + len, cap - len,
                                "%s{\"type\": \"pageview\", \"visitor_id\": \"%s\", "
                                "\"session_id\": \"s1\", \"ts\": %lld, \"page_type\": "
                                "\"product_related\", \"page_id\": \"product/%d\", "
                                "\"duration\": 4}",
                                i ? "," : "", vid, now - 60000 + i, i % 7);
        if (buys)
            len += (size_t)snprintf(body + len, cap - len,
                                    ",{\"type\": \"purchase\", \"visitor_id\": \"%s\", "
                                    "\"session_id\": \"s1\", \"ts\": %lld, \"revenue\": 20}",
                                    vid, now - 30000 + i);
    }
    snprintf(body + len, cap - len, "]}");
    assert_true(n[0] > 0 && n[1] > 0);
    r = sh_post(sv.port, "/api/track", body);
    if (r.status != 200)
        fail_msg("track: %d %s", r.status, r.body);
    sh_resp_free(&r);
    check_experiments(sv.port, n, c);

    /* Shutdown commits everything; a restart replays the same database. */
    assert_int_equal(sh_stop(&sv), 0);
    sh_start(&sv, "experiments.db", args);
    check_experiments(sv.port, n, c);
    assert_int_equal(sh_stop(&sv), 0);
    free(body);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_predict_raw),
        cmocka_unit_test(test_predict_forms),
        cmocka_unit_test(test_predict_visitor_variant),
        cmocka_unit_test(test_predict_errors),
        cmocka_unit_test(test_predict_session),
        cmocka_unit_test(test_get_routes),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_body_limits),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_static),
        cmocka_unit_test(test_traversal),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_experiments),
    };
    int failed = 0;
    for (int b = 0; b < SB_COUNT; b++) {
        int begun = sb_begin(b);
        if (begun == 0)
            failed += cmocka_run_group_tests_name(sb_name(), tests, group_setup, group_teardown);
        failed += sb_end(begun);
    }
    mysql_library_end();
    return failed ? 1 : 0;
}
