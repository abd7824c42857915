/*
 * metrics.c - the server's counters and histograms and GET /metrics.
 *
 * Every label set is fixed when the server starts (routes, status codes,
 * variants, deciles, event types), so the storage is a few arrays of
 * relaxed atomics: recording a value is one or two atomic adds and never
 * takes a lock, which keeps the request path cheap. Histogram buckets are
 * stored per bucket and summed into Prometheus' cumulative form only when
 * /metrics renders; sums are kept in nanoseconds as integers so they can be
 * added atomically. The text format is Prometheus' exposition format 0.0.4
 * (`promtool check metrics` passes), as listed in docs/server.md.
 */
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

/* ===================================================================== *
 * Label sets
 * ===================================================================== */

/* Route labels: srv_routes' paths, then "static" for files and "unmatched"
 * for unknown API paths. */
#define N_ROUTES SRV_ROUTES_MAX

static const char *route_name(size_t r) {
    return r < srv_n_routes ? srv_routes[r].path : r == srv_n_routes ? "static" : "unmatched";
}

/* Status codes the server answers; any other is counted under "other". */
static const int codes[] = {200, 301, 304, 400, 401, 403, 404, 405, 413, 415, 422, 500, 503};
#define N_CODES (sizeof(codes) / sizeof(codes[0]))

/* Request durations (seconds). */
static const double req_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                    0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
#define N_REQ_BOUNDS (sizeof(req_bounds) / sizeof(req_bounds[0]))

/* Commit durations (seconds): fsync-bound, so slower. */
static const double commit_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,   0.5,   1,    2.5};
#define N_COMMIT_BOUNDS (sizeof(commit_bounds) / sizeof(commit_bounds[0]))

typedef struct histogram {
    atomic_uint_fast64_t bucket[16]; /* per bucket, not cumulative; last = +Inf */
    atomic_uint_fast64_t sum_ns;
    atomic_uint_fast64_t count;
} histogram;

struct srv_metrics {
    atomic_uint_fast64_t requests[N_ROUTES][N_CODES + 1]; /* last: other codes */
    histogram request_duration[N_ROUTES];
    atomic_uint_fast64_t predictions[SRV_MAX_VARIANTS][10];
    atomic_uint_fast64_t events[2]; /* pageview, purchase */
    atomic_uint_fast64_t late;
    histogram commit;
    atomic_uint_fast64_t active;
    atomic_uint_fast64_t backlog;
    atomic_uint_fast64_t reloads[SRV_MAX_VARIANTS][2]; /* failed, ok */
};

/* ===================================================================== *
 * Recording
 * ===================================================================== */

static void observe(histogram *h, const double *bounds, size_t n, double seconds) {
    size_t i = 0;
    if (!(seconds >= 0))
        seconds = 0;
    while (i < n && seconds > bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint_fast64_t)(seconds * 1e9 + 0.5),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

int metrics_open(srv *s) {
    srv_metrics *m;
    size_t i, j;
    if (srv_n_routes + 2 > N_ROUTES)
        return -1;
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -1;
    /* calloc's zero bytes are a valid zero for lock-free atomics; init
     * anyway so the code does not rely on it. */
    for (i = 0; i < N_ROUTES; i++) {
        for (j = 0; j <= N_CODES; j++)
            atomic_init(&m->requests[i][j], 0);
    }
    s->metrics = m;
    return 0;
}

void metrics_close(srv *s) {
    free(s->metrics);
    s->metrics = NULL;
}

void metrics_request(srv_metrics *m, size_t route, int status, double seconds) {
    size_t r, c;
    if (m == NULL)
        return;
    r = route <= srv_n_routes ? route : srv_n_routes + 1;
    for (c = 0; c < N_CODES && codes[c] != status; c++)
        ;
    atomic_fetch_add_explicit(&m->requests[r][c], 1, memory_order_relaxed);
    observe(&m->request_duration[r], req_bounds, N_REQ_BOUNDS, seconds);
}

void metrics_prediction(srv_metrics *m, int variant, double probability) {
    int b;
    if (m == NULL || variant < 0 || variant >= SRV_MAX_VARIANTS || !(probability >= 0))
        return;
    b = (int)(probability * 10);
    if (b > 9)
        b = 9;
    atomic_fetch_add_explicit(&m->predictions[variant][b], 1, memory_order_relaxed);
}

void metrics_events(srv_metrics *m, int type, uint64_t n) {
    if (m == NULL || (type != SRV_PAGEVIEW && type != SRV_PURCHASE))
        return;
    atomic_fetch_add_explicit(&m->events[type == SRV_PAGEVIEW ? 0 : 1], n, memory_order_relaxed);
}

void metrics_late(srv_metrics *m, uint64_t n) {
    if (m != NULL)
        atomic_fetch_add_explicit(&m->late, n, memory_order_relaxed);
}

void metrics_commit(srv_metrics *m, double seconds) {
    if (m != NULL)
        observe(&m->commit, commit_bounds, N_COMMIT_BOUNDS, seconds);
}

void metrics_active(srv_metrics *m, uint64_t n) {
    if (m != NULL)
        atomic_store_explicit(&m->active, n, memory_order_relaxed);
}

void metrics_backlog(srv_metrics *m, uint64_t n) {
    if (m != NULL)
        atomic_store_explicit(&m->backlog, n, memory_order_relaxed);
}

void metrics_reload(srv_metrics *m, int variant, int ok) {
    if (m != NULL && variant >= 0 && variant < SRV_MAX_VARIANTS)
        atomic_fetch_add_explicit(&m->reloads[variant][ok != 0], 1, memory_order_relaxed);
}

int64_t srv_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ===================================================================== *
 * Rendering
 * ===================================================================== */

typedef struct text {
    char *p;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(text *t, const char *fmt, ...) {
    va_list ap;
    int n;
    if (t->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        {
            size_t cap = t->cap * 2 + (size_t)n;
            char *p = realloc(t->p, cap);
            if (p == NULL) {
                t->failed = 1;
                return;
            }
            t->p = p;
            t->cap = cap;
        }
    }
}

/* A label value with the exposition format's escapes (\\, \", \n). */
static void put_label(text *t, const char *v) {
    char buf[2 * SRV_PATH_MAX];
    size_t o = 0;
    for (; v != NULL && *v != '\0' && o + 3 < sizeof(buf); v++) {
        if (*v == '\\' || *v == '"') {
            buf[o++] = '\\';
            buf[o++] = *v;
        } else if (*v == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *v;
        }
    }
    buf[o] = '\0';
    put(t, "%s", buf);
}

static uint64_t load(atomic_uint_fast64_t *a) {
    return (uint64_t)atomic_load_explicit(a, memory_order_relaxed);
}

/* One histogram's series; labels: "" or `route="...",`-style prefix. */
static void put_histogram(text *t, const char *name, const char *labels, histogram *h,
                          const double *bounds, size_t n) {
    uint64_t cum = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        cum += load(&h->bucket[i]);
        put(t, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, bounds[i], (unsigned long long)cum);
    }
    cum += load(&h->bucket[n]);
    put(t, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
    if (labels[0] != '\0') {
        char l[256];
        size_t len = strlen(labels);
        snprintf(l, sizeof(l), "%.*s", (int)(len - 1), labels); /* drop the comma */
        put(t, "%s_sum{%s} %.9f\n", name, l, (double)load(&h->sum_ns) / 1e9);
        put(t, "%s_count{%s} %llu\n", name, l, (unsigned long long)load(&h->count));
    } else {
        put(t, "%s_sum %.9f\n", name, (double)load(&h->sum_ns) / 1e9);
        put(t, "%s_count %llu\n", name, (unsigned long long)load(&h->count));
    }
}

/* The drift windows (drift.c): sessions in each variant's window, and the
 * PSI of each dim once the window holds enough sessions to mean something.
 * The names and labels are what alert rules match: keep them. */
static void put_drift(srv *s, text *t) {
    srv_drift_view dv[SRV_MAX_VARIANTS];
    int n = 0;
    for (; n < s->cfg.n_variants && n < SRV_MAX_VARIANTS; n++)
        if (drift_view(s, n, &dv[n]) != 0) {
            t->failed = 1;
            break;
        }
    put(t, "# HELP opecom_drift_window_sessions Closed sessions in the variant's drift "
           "window: the last drift_window sessions scored with its current model (a reload "
           "starts an empty window). No series for a model without a drift reference.\n"
           "# TYPE opecom_drift_window_sessions gauge\n");
    for (int v = 0; v < n; v++) {
        if (!dv[v].has_window)
            continue;
        put(t, "opecom_drift_window_sessions{variant=\"");
        put_label(t, s->cfg.variants[v].name);
        put(t, "\"} %u\n", dv[v].sessions);
    }
    put(t, "# HELP opecom_drift_psi Population stability index of a feature (or the score) "
           "over the drift window against the model's training distribution: below 0.1 ok, "
           "0.1 to 0.25 watch, from 0.25 alert. Shown once the window holds min(drift_window, "
           "%d) sessions; no series for a model without a drift reference.\n"
           "# TYPE opecom_drift_psi gauge\n",
        SRV_DRIFT_MIN_SESSIONS);
    for (int v = 0; v < n; v++) {
        for (uint32_t j = 0; dv[v].ready && j < dv[v].n_dims; j++) {
            if (isnan(dv[v].psi[j]))
                continue;
            put(t, "opecom_drift_psi{variant=\"");
            put_label(t, s->cfg.variants[v].name);
            put(t, "\",feature=\"");
            put_label(t, dv[v].names[j]);
            put(t, "\"} %.6f\n", dv[v].psi[j]);
        }
        drift_view_done(&dv[v]);
    }
}

void metrics_render(srv *s, srv_reply *out) {
    srv_metrics *m = s->metrics;
    text t = {NULL, 0, 0, 0};
    size_t r, c;
    int v;
    t.cap = 16384;
    t.p = malloc(t.cap);
    if (t.p == NULL || m == NULL) {
        free(t.p);
        srv_reply_error(out, 500, NULL, "out of memory");
        return;
    }
    t.p[0] = '\0';

    put(&t, "# HELP opecom_http_requests_total HTTP requests answered, by route and status.\n"
            "# TYPE opecom_http_requests_total counter\n");
    for (r = 0; r < srv_n_routes + 2; r++) {
        for (c = 0; c <= N_CODES; c++) {
            uint64_t n = load(&m->requests[r][c]);
            if (n == 0)
                continue;
            if (c < N_CODES)
                put(&t, "opecom_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                    route_name(r), codes[c], (unsigned long long)n);
            else
                put(&t, "opecom_http_requests_total{route=\"%s\",code=\"other\"} %llu\n",
                    route_name(r), (unsigned long long)n);
        }
    }

    put(&t, "# HELP opecom_http_request_duration_seconds Time from a request's headers to "
            "its answer.\n"
            "# TYPE opecom_http_request_duration_seconds histogram\n");
    for (r = 0; r < srv_n_routes + 2; r++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "route=\"%s\",", route_name(r));
        put_histogram(&t, "opecom_http_request_duration_seconds", labels,
                      &m->request_duration[r], req_bounds, N_REQ_BOUNDS);
    }

    put(&t, "# HELP opecom_predictions_total Predictions made, by variant and score decile.\n"
            "# TYPE opecom_predictions_total counter\n");
    for (v = 0; v < s->cfg.n_variants && v < SRV_MAX_VARIANTS; v++) {
        int b;
        for (b = 0; b < 10; b++) {
            put(&t, "opecom_predictions_total{variant=\"");
            put_label(&t, s->cfg.variants[v].name);
            put(&t, "\",bucket=\"0.%d\"} %llu\n", b,
                (unsigned long long)load(&m->predictions[v][b]));
        }
    }

    put(&t, "# HELP opecom_events_ingested_total Tracker events stored, by type.\n"
            "# TYPE opecom_events_ingested_total counter\n"
            "opecom_events_ingested_total{type=\"pageview\"} %llu\n"
            "opecom_events_ingested_total{type=\"purchase\"} %llu\n",
        (unsigned long long)load(&m->events[0]), (unsigned long long)load(&m->events[1]));
    put(&t, "# HELP opecom_events_late_total Events the sessionizer dropped as late.\n"
            "# TYPE opecom_events_late_total counter\n"
            "opecom_events_late_total %llu\n",
        (unsigned long long)load(&m->late));

    put(&t, "# HELP opecom_db_commit_duration_seconds Time of one database commit (a group "
            "of event batches).\n"
            "# TYPE opecom_db_commit_duration_seconds histogram\n");
    put_histogram(&t, "opecom_db_commit_duration_seconds", "", &m->commit, commit_bounds,
                  N_COMMIT_BOUNDS);

    put(&t, "# HELP opecom_sessions_active Sessions open in the sessionizer.\n"
            "# TYPE opecom_sessions_active gauge\n"
            "opecom_sessions_active %llu\n",
        (unsigned long long)load(&m->active));

    put(&t, "# HELP opecom_store_queue_events Events and closed sessions waiting for the "
            "database writer.\n"
            "# TYPE opecom_store_queue_events gauge\n"
            "opecom_store_queue_events %llu\n",
        (unsigned long long)load(&m->backlog));

    put(&t, "# HELP opecom_model_info The model each variant serves (always 1); id is the "
            "file's checksum.\n"
            "# TYPE opecom_model_info gauge\n");
    for (v = 0; v < s->cfg.n_variants; v++) {
        srv_model *mod = score_acquire(s, v);
        put(&t, "opecom_model_info{variant=\"");
        put_label(&t, s->cfg.variants[v].name);
        put(&t, "\",model=\"");
        put_label(&t, mod->name);
        put(&t, "\",id=\"%s\",kernel=\"", mod->id);
        put_label(&t, mod->kernel != NULL ? mod->kernel : "");
        put(&t, "\",k=\"%u\",version=\"%s\"} 1\n", mod->k, opecom_version_string());
        score_release(mod);
    }
    put(&t, "# HELP opecom_model_reloads_total Model reloads (SIGHUP or POST "
            "/api/admin/reload), by variant and result; a failed one left the old model "
            "serving.\n"
            "# TYPE opecom_model_reloads_total counter\n");
    for (v = 0; v < s->cfg.n_variants && v < SRV_MAX_VARIANTS; v++) {
        for (int ok = 0; ok < 2; ok++) {
            put(&t, "opecom_model_reloads_total{variant=\"");
            put_label(&t, s->cfg.variants[v].name);
            put(&t, "\",result=\"%s\"} %llu\n", ok ? "ok" : "failed",
                (unsigned long long)load(&m->reloads[v][ok]));
        }
    }

    put_drift(s, &t);

    if (t.failed) {
        free(t.p);
        srv_reply_error(out, 500, NULL, "out of memory");
        return;
    }
    srv_reply_json(out, 200, t.p);
    out->len = t.len;
    out->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
