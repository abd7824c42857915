/*
 * test_server_drift.c - drift monitoring in opecom-server, run against the
 * real program with traffic sent through POST /api/track.
 *
 * The main test samples sessions from the default model's own drift
 * reference (read here through the library: opecom_drift_dim and
 * opecom_drift_reference), for the features a tracker controls: the page
 * counts and durations of each page type (that many page views, durations
 * summing to the sampled total) and the four codes (sent as numbers in the
 * events' os / browser / region / traffic_type). The others come from the
 * clock (Month, Weekend, SpecialDay), from history (BounceRates, ExitRates,
 * PageValues) or from the visitor (every session here is a new visitor), so
 * they are not asserted. With "session": {"idle_timeout_s": 1} sessions
 * close a second after their events, and "drift_window": 1000 keeps the
 * last 1000.
 *   phase 1: 1000 sessions as in training: every sampled dim has PSI < 0.1;
 *   phase 2: 1000 more with Region always the rarest training code and
 *            ProductRelated counts times 4: those two PSI >= 0.25 ("alert"),
 *            the other sampled dims still < 0.1; Region's PSI is exactly
 *            that of a window holding phase 2 only; /metrics has the same
 *            numbers; a reload empties the window.
 * The other tests: a window shows no PSI below min(drift_window, 200)
 * sessions and never holds more than drift_window; drift_window out of its
 * range stops the server with a message naming the key.
 *
 * Randomised: the seed is printed, OPECOM_TEST_SEED replays one.
 * Run from the repository root: BUILD=build build/tests/test_server_drift
 */
#include "server_harness.h" /* first: it sets _XOPEN_SOURCE */

#include <math.h>

#define TOKEN "drift-test-token-0123456789"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"
#define WINDOW 1000
#define BATCH_EVENTS 500 /* the server's limit per /api/track batch */
#define WAIT_MS 120000   /* sessions to close and be binned (sanitizer builds are slow) */

static opecom_model *model;

static int group_setup(void **state) {
    opecom_error err;
    (void)state;
    if (opecom_model_load(SH_MODEL, NULL, &model, &err) != OPECOM_OK) {
        fprintf(stderr, "# cannot load %s: %s\n", SH_MODEL, err.message);
        return -1;
    }
    return sh_make_dir();
}

static int group_teardown(void **state) {
    sh_kill_leftovers(state);
    sh_remove_dir();
    opecom_model_free(model);
    return 0;
}

/* ===================================================================== *
 * The sampler: the model's drift reference
 * ===================================================================== */

typedef struct ref_dim {
    uint32_t d, n_bins;
    const double *edges;       /* NULL: categorical */
    const double *fractions;
} ref_dim;

static ref_dim ref_get(const char *name) {
    opecom_drift_info info;
    ref_dim r = {0, 0, NULL, NULL};
    assert_int_equal(opecom_drift_describe(model, &info, NULL), OPECOM_OK);
    for (uint32_t d = 0; d < info.n_dims; d++) {
        const char *n;
        assert_int_equal(opecom_drift_dim(model, d, &n, &r.n_bins, NULL, NULL), OPECOM_OK);
        if (strcmp(n, name) == 0) {
            r.d = d;
            assert_int_equal(opecom_drift_reference(model, d, &r.edges, &r.fractions, NULL),
                             OPECOM_OK);
            return r;
        }
    }
    fail_msg("the model's drift reference has no dim %s", name);
    return r;
}

/* A bin drawn with the weights w[0..n-1] (not necessarily normalised). */
static uint32_t draw(tu_rng *rng, const double *w, uint32_t n) {
    double total = 0, acc = 0;
    for (uint32_t b = 0; b < n; b++)
        total += w[b];
    double u = tu_uniform(rng, 0, total);
    for (uint32_t b = 0; b + 1 < n; b++) {
        acc += w[b];
        if (u < acc)
            return b;
    }
    return n - 1;
}

/* A whole number in count bin b: bin 0 is x <= e0, bin i is e(i-1) < x <=
 * e(i), the last x > e(n-2) (drawn up to half as far again). `least` is the
 * smallest value allowed. */
static long count_in(tu_rng *rng, const ref_dim *r, uint32_t b, long least) {
    long lo = b == 0 ? least : (long)floor(r->edges[b - 1]) + 1;
    long hi;
    if (b + 1 < r->n_bins) {
        hi = (long)floor(r->edges[b]);
    } else {
        long span = (long)(r->edges[b - 1] / 2);
        hi = lo + (span > 3 ? span : 3);
    }
    if (lo < least)
        lo = least;
    assert_true(hi >= lo);
    return lo + (long)(tu_next(rng) % (uint64_t)(hi - lo + 1));
}

/* A real number in duration bin b (bin 0 with edge 0 is exactly 0). */
static double duration_in(tu_rng *rng, const ref_dim *r, uint32_t b) {
    if (b == 0)
        return r->edges[0] <= 0 ? 0.0 : tu_uniform(rng, 0, r->edges[0]);
    double lo = r->edges[b - 1];
    double hi = b + 1 < r->n_bins ? r->edges[b] : 2 * lo + 1;
    double x = tu_uniform(rng, lo, hi);
    return x > lo ? x : (lo + hi) / 2;
}

/* A page type's count and total duration with the training marginals. A
 * duration whose first bin is "0 s" is drawn given the count: 0 pages take
 * 0 s; otherwise bin 0 gets the training mass left over after the sessions
 * without pages (fraction(d = 0) - fraction(count = 0)), every other bin
 * its own, which gives back exactly the training fractions of both. */
static void page_type_draw(tu_rng *rng, const ref_dim *cnt, const ref_dim *dur, long least,
                           long *count, double *duration) {
    uint32_t cb = draw(rng, cnt->fractions, cnt->n_bins);
    *count = count_in(rng, cnt, cb, least);
    if (dur->edges[0] > 0) {
        *duration = duration_in(rng, dur, draw(rng, dur->fractions, dur->n_bins));
        return;
    }
    if (*count == 0) {
        *duration = 0;
        return;
    }
    double w[OPECOM_DRIFT_MAX_BINS];
    double zero = cnt->edges[0] <= 0 ? cnt->fractions[0] : 0;
    for (uint32_t b = 0; b < dur->n_bins; b++)
        w[b] = dur->fractions[b];
    w[0] = w[0] > zero ? w[0] - zero : 0;
    *duration = duration_in(rng, dur, draw(rng, w, dur->n_bins));
}

/* The code text of categorical dim r's bin b ("1", "2", ...) as a number. */
static int code_of(const ref_dim *r, uint32_t b) {
    const char *t = opecom_model_category(model, r->d, b);
    assert_non_null(t);
    return atoi(t);
}

static int code_draw(tu_rng *rng, const ref_dim *r) {
    uint32_t b = draw(rng, r->fractions, r->n_bins - 1); /* not "other": 0 in training */
    return code_of(r, b);
}

/* The dims the sampler steers, as /api/drift names them. */
static const char *const sampled[] = {
    "Administrative",         "Administrative_Duration", "Informational",
    "Informational_Duration", "ProductRelated",          "ProductRelated_Duration",
    "OperatingSystems",       "Browser",                 "Region",
    "TrafficType"};
#define N_SAMPLED (sizeof sampled / sizeof sampled[0])

typedef struct sampler {
    ref_dim adm, adm_d, inf, inf_d, pr, pr_d, os, browser, region, traffic;
} sampler;

static sampler sampler_make(void) {
    sampler s = {ref_get("Administrative"),   ref_get("Administrative_Duration"),
                 ref_get("Informational"),    ref_get("Informational_Duration"),
                 ref_get("ProductRelated"),   ref_get("ProductRelated_Duration"),
                 ref_get("OperatingSystems"), ref_get("Browser"),
                 ref_get("Region"),           ref_get("TrafficType")};
    return s;
}

/* ===================================================================== *
 * Traffic
 * ===================================================================== */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void add(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n + 1;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
}

static int64_t wall_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* One session: its page views as JSON events, appended to b. */
typedef struct session_plan {
    long pages[3];             /* administrative, informational, product_related */
    double duration[3];
    int os, browser, region, traffic;
} session_plan;

static long plan_events(const session_plan *p) {
    return p->pages[0] + p->pages[1] + p->pages[2];
}

static void plan_json(buf *b, const session_plan *p, const char *visitor, int64_t ts) {
    static const char *const type[3] = {"administrative", "informational", "product_related"};
    static const int n_pages[3] = {5, 4, 40};
    for (int t = 0; t < 3; t++)
        for (long k = 0; k < p->pages[t]; k++)
            add(b,
                "%s{\"type\":\"pageview\",\"visitor_id\":\"%s\",\"session_id\":\"s-%s\","
                "\"ts\":%lld,\"page_type\":\"%s\",\"page_id\":\"/%s/%ld\",\"duration\":%.17g,"
                "\"os\":%d,\"browser\":%d,\"region\":%d,\"traffic_type\":%d}",
                b->len > 1 ? "," : "", visitor, visitor, (long long)ts, type[t], type[t],
                k % n_pages[t], p->duration[t] / (double)p->pages[t], p->os, p->browser,
                p->region, p->traffic);
}

static void post_batch(int port, buf *b) {
    add(b, "]}");
    char *body = malloc(b->len + 16);
    assert_non_null(body);
    snprintf(body, b->len + 16, "{\"events\":%s", b->p);
    sh_resp r = sh_post(port, "/api/track", body);
    if (r.status != 200)
        fail_msg("/api/track answered %d: %s", r.status, r.body ? r.body : "");
    sh_resp_free(&r);
    free(body);
    b->len = 0;
    add(b, "[");
}

/* Sends n sessions, each a new visitor "<tag>-<i>", in batches of whole
 * sessions (one session never spans two batches, so none is split by the
 * one-second idle timeout). shift: Region always `region` and the product
 * page count times 4; else as sampled. */
static void send_sessions(int port, tu_rng *rng, const sampler *sm, const char *tag, int n,
                          int shift, int region) {
    buf b = {NULL, 0, 0};
    long in_batch = 0;
    add(&b, "[");
    for (int i = 0; i < n; i++) {
        session_plan p;
        page_type_draw(rng, &sm->adm, &sm->adm_d, 0, &p.pages[0], &p.duration[0]);
        page_type_draw(rng, &sm->inf, &sm->inf_d, 0, &p.pages[1], &p.duration[1]);
        /* at least one product page: a session needs an event */
        page_type_draw(rng, &sm->pr, &sm->pr_d, 1, &p.pages[2], &p.duration[2]);
        p.os = code_draw(rng, &sm->os);
        p.browser = code_draw(rng, &sm->browser);
        p.region = code_draw(rng, &sm->region);
        p.traffic = code_draw(rng, &sm->traffic);
        if (shift) {
            p.pages[2] *= 4;
            p.region = region;
        }
        assert_true(plan_events(&p) <= BATCH_EVENTS);
        if (in_batch + plan_events(&p) > BATCH_EVENTS) {
            post_batch(port, &b);
            in_batch = 0;
        }
        char visitor[64];
        snprintf(visitor, sizeof visitor, "%s-%d", tag, i);
        plan_json(&b, &p, visitor, wall_ms());
        in_batch += plan_events(&p);
    }
    if (in_batch > 0)
        post_batch(port, &b);
    free(b.p);
}

/* ===================================================================== *
 * Reading the server
 * ===================================================================== */

/* GET /api/drift's first variant (json_decref the returned root). */
static json_t *drift_get(int port, json_t **variant) {
    sh_resp r = sh_get(port, "/api/drift");
    assert_int_equal(r.status, 200);
    json_t *root = sh_json(&r);
    sh_resp_free(&r);
    *variant = json_array_get(json_object_get(root, "variants"), 0);
    assert_non_null(*variant);
    return root;
}

static json_int_t int_of(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("/api/drift: %s is not an integer", key);
    return json_integer_value(v);
}

/* Waits until the window binned `binned` sessions in all. */
static void wait_binned(int port, json_int_t binned) {
    int64_t end = sh_ms() + WAIT_MS;
    json_int_t seen = -1;
    for (;;) {
        json_t *v;
        json_t *root = drift_get(port, &v);
        seen = int_of(v, "binned");
        json_decref(root);
        if (seen >= binned || sh_ms() > end)
            break;
        sh_sleep_ms(100);
    }
    if (seen != binned)
        fail_msg("the drift window binned %lld sessions, expected %lld", (long long)seen,
                 (long long)binned);
}

/* The dim `name` of a variant of /api/drift. */
static json_t *dim_of(json_t *variant, const char *name) {
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(variant, "dims"), i, d) {
        if (strcmp(json_string_value(json_object_get(d, "name")), name) == 0)
            return d;
    }
    fail_msg("/api/drift has no dim %s", name);
    return NULL;
}

static double psi_of(json_t *variant, const char *name) {
    json_t *p = json_object_get(dim_of(variant, name), "psi");
    if (!json_is_number(p))
        fail_msg("/api/drift: %s has no PSI", name);
    return json_number_value(p);
}

/* The value of `opecom_drift_psi{variant="default",feature="<name>"}` in
 * /metrics text m; NAN when absent. */
static double metric_psi(const char *m, const char *name) {
    char key[160];
    snprintf(key, sizeof key, "opecom_drift_psi{variant=\"default\",feature=\"%s\"} ", name);
    const char *p = strstr(m, key);
    return p != NULL ? strtod(p + strlen(key), NULL) : (double)NAN;
}

static char *metrics_get(int port) {
    sh_resp r = sh_get(port, "/metrics");
    assert_int_equal(r.status, 200);
    char *body = r.body;
    r.body = NULL;
    sh_resp_free(&r);
    return body;
}

/* ===================================================================== *
 * Tests
 * ===================================================================== */

static void test_drift_flags_the_shifted_features(void **state) {
    (void)state;
    int64_t t0 = sh_ms();
    tu_rng rng = {tu_seed("drift", 20261203)};
    sampler sm = sampler_make();
    /* the rarest Region code in training */
    uint32_t rare = 0;
    for (uint32_t b = 1; b + 1 < sm.region.n_bins; b++)
        if (sm.region.fractions[b] < sm.region.fractions[rare])
            rare = b;
    int rare_code = code_of(&sm.region, rare);
    fprintf(stderr, "# phase 2: Region %d (training fraction %.4f), ProductRelated x 4\n",
            rare_code, sm.region.fractions[rare]);

    sh_server sv;
    sh_start_config(&sv, "drift.db",
                    "{\"session\": {\"idle_timeout_s\": 1}, \"drift_window\": 1000,"
                    " \"admin_token\": \"" TOKEN "\"}",
                    NULL);
    json_t *v, *root = drift_get(sv.port, &v);
    assert_true(json_is_true(json_object_get(v, "reference")));
    assert_int_equal(int_of(v, "window"), WINDOW);
    assert_int_equal(int_of(v, "sessions"), 0);
    json_decref(root);

    /* phase 1: as in training */
    send_sessions(sv.port, &rng, &sm, "p1", WINDOW, 0, 0);
    wait_binned(sv.port, WINDOW);
    json_t *v1, *root1 = drift_get(sv.port, &v1);
    assert_int_equal(int_of(v1, "sessions"), WINDOW);
    assert_true(json_is_true(json_object_get(v1, "ready")));
    int64_t t1 = sh_ms();

    /* phase 2: Region and ProductRelated moved */
    send_sessions(sv.port, &rng, &sm, "p2", WINDOW, 1, rare_code);
    wait_binned(sv.port, 2 * WINDOW);
    json_t *v2, *root2 = drift_get(sv.port, &v2);
    assert_int_equal(int_of(v2, "sessions"), WINDOW);
    int64_t t2 = sh_ms();

    fprintf(stderr, "# %-24s %10s %8s %10s %8s\n", "dim", "phase 1", "", "phase 2", "");
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(v2, "dims"), i, d) {
        const char *name = json_string_value(json_object_get(d, "name"));
        json_t *d1 = dim_of(v1, name);
        fprintf(stderr, "# %-24s %10.4f %-8s %10.4f %-8s\n", name,
                json_number_value(json_object_get(d1, "psi")),
                json_string_value(json_object_get(d1, "status")),
                json_number_value(json_object_get(d, "psi")),
                json_string_value(json_object_get(d, "status")));
    }
    fprintf(stderr, "# phase 1 took %.1f s, phase 2 %.1f s\n", (double)(t1 - t0) / 1000,
            (double)(t2 - t1) / 1000);

    for (size_t k = 0; k < N_SAMPLED; k++) {
        double p1 = psi_of(v1, sampled[k]), p2 = psi_of(v2, sampled[k]);
        int moved = strcmp(sampled[k], "Region") == 0 || strcmp(sampled[k], "ProductRelated") == 0;
        if (!(p1 < 0.1))
            fail_msg("phase 1: %s has PSI %.4f, expected < 0.1", sampled[k], p1);
        assert_string_equal(json_string_value(json_object_get(dim_of(v1, sampled[k]), "status")),
                            "ok");
        if (moved && !(p2 >= 0.25))
            fail_msg("phase 2: %s has PSI %.4f, expected >= 0.25", sampled[k], p2);
        if (moved)
            assert_string_equal(
                json_string_value(json_object_get(dim_of(v2, sampled[k]), "status")), "alert");
        if (!moved && !(p2 < 0.1))
            fail_msg("phase 2: %s has PSI %.4f, expected < 0.1", sampled[k], p2);
    }

    /* Every session in the window now has the rare Region, so its PSI is
     * known exactly (one bin at 1, the others at the floor): this fails if
     * the phase 1 sessions the window pushed out were still counted. */
    double exact = 0;
    for (uint32_t b = 0; b < sm.region.n_bins; b++) {
        double a = b == rare ? 1.0 : OPECOM_DRIFT_EPSILON;
        double e = sm.region.fractions[b] > OPECOM_DRIFT_EPSILON ? sm.region.fractions[b]
                                                                 : OPECOM_DRIFT_EPSILON;
        exact += (a - e) * log(a / e);
    }
    if (!(fabs(psi_of(v2, "Region") - exact) < 1e-5))
        fail_msg("phase 2: Region PSI %.6f, expected %.6f (the window holds phase 2 only)",
                 psi_of(v2, "Region"), exact);

    /* /metrics: the same numbers, every dim, the window's size */
    char *m = metrics_get(sv.port);
    assert_non_null(strstr(m, "opecom_drift_window_sessions{variant=\"default\"} 1000\n"));
    json_array_foreach(json_object_get(v2, "dims"), i, d) {
        const char *name = json_string_value(json_object_get(d, "name"));
        double x = metric_psi(m, name), y = json_number_value(json_object_get(d, "psi"));
        if (!(fabs(x - y) <= 2e-6))
            fail_msg("/metrics: %s PSI %g, /api/drift %g", name, x, y);
    }
    free(m);
    json_decref(root1);
    json_decref(root2);

    /* a reload starts an empty window */
    sh_resp r = sh_request_raw(sv.port, "POST", "/api/admin/reload",
                               "Content-Type: application/json\r\n" AUTH, "{}", 2, 1);
    assert_int_equal(r.status, 200);
    sh_resp_free(&r);
    root = drift_get(sv.port, &v);
    assert_int_equal(int_of(v, "sessions"), 0);
    assert_int_equal(int_of(v, "binned"), 0);
    assert_true(json_is_null(json_object_get(dim_of(v, "Region"), "psi")));
    json_decref(root);
    m = metrics_get(sv.port);
    assert_non_null(strstr(m, "opecom_drift_window_sessions{variant=\"default\"} 0\n"));
    assert_null(strstr(m, "opecom_drift_psi{"));
    free(m);
    assert_int_equal(sh_stop(&sv), 0);
}

/* drift_window 100: no PSI before 100 sessions (min(window, 200)), PSI of
 * every dim at 100, and never more than 100 sessions in the window. */
static void test_drift_needs_a_full_enough_window(void **state) {
    (void)state;
    tu_rng rng = {tu_seed("drift-small", 7)};
    sampler sm = sampler_make();
    sh_server sv;
    sh_start_config(&sv, "small.db",
                    "{\"session\": {\"idle_timeout_s\": 1}, \"drift_window\": 100}", NULL);
    send_sessions(sv.port, &rng, &sm, "a", 99, 0, 0);
    wait_binned(sv.port, 99);
    json_t *v, *root = drift_get(sv.port, &v);
    assert_true(json_is_false(json_object_get(v, "ready")));
    assert_true(json_is_null(json_object_get(dim_of(v, "score"), "psi")));
    assert_true(json_is_null(json_object_get(dim_of(v, "score"), "status")));
    json_decref(root);
    char *m = metrics_get(sv.port);
    assert_non_null(strstr(m, "opecom_drift_window_sessions{variant=\"default\"} 99\n"));
    assert_null(strstr(m, "opecom_drift_psi{"));
    free(m);

    send_sessions(sv.port, &rng, &sm, "b", 21, 0, 0);
    wait_binned(sv.port, 120);
    root = drift_get(sv.port, &v);
    assert_true(json_is_true(json_object_get(v, "ready")));
    assert_int_equal(int_of(v, "sessions"), 100);
    size_t n = json_array_size(json_object_get(v, "dims"));
    assert_int_equal(n, 18); /* 17 features + the score */
    json_decref(root);
    m = metrics_get(sv.port);
    assert_non_null(strstr(m, "opecom_drift_window_sessions{variant=\"default\"} 100\n"));
    size_t lines = 0;
    for (const char *p = m; (p = strstr(p, "\nopecom_drift_psi{")) != NULL; p++)
        lines++;
    assert_int_equal(lines, n);
    assert_false(isnan(metric_psi(m, "score")));
    free(m);
    assert_int_equal(sh_stop(&sv), 0);
}

static void test_drift_window_out_of_range(void **state) {
    static const char *const bad[] = {"99", "1000001", "\"5000\"", "5000.5"};
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"drift_window\": %s}", bad[i]);
        sh_write(sh_path("bad.json"), text);
        char *args[] = {"--port", "0", "--db", (char *)sh_path("bad.db"), "--config",
                        (char *)sh_path("bad.json"), NULL};
        sh_run r = sh_run_server(args);
        assert_int_equal(r.code, 1);
        if (strstr(r.err, "drift_window: must be an integer in [100, 1000000]") == NULL)
            fail_msg("drift_window %s: stderr was: %s", bad[i], r.err);
        sh_run_free(&r);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drift_window_out_of_range),
        cmocka_unit_test(test_drift_needs_a_full_enough_window),
        cmocka_unit_test(test_drift_flags_the_shifted_features),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
