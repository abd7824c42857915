/*
 * routes.c - the one table of the server's API routes (http.c routes by it,
 * metrics.c labels by it, docs/server.md lists it) and the small handlers
 * (sessions, experiments, drift, reload, metrics, health).
 * A handler parses its request, calls one service, renders the answer; it
 * keeps no state. The larger ones live in api_track.c and api_predict.c.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "server.h"
#include "store.h"

#define SESSIONS_DEFAULT 50
#define SESSIONS_MAX 1000
#define RELOAD_BODY_MAX 1024

/* ===================================================================== *
 * Small handlers
 * ===================================================================== */

static void text(srv_reply *out, int status, const char *t) {
    out->body = strdup(t);
    if (out->body == NULL) {
        srv_reply_json(out, 500, NULL);
        return;
    }
    out->status = status;
    out->len = strlen(t);
    out->content_type = "text/plain; charset=utf-8";
}

static void h_healthz(srv *s, const srv_request *rq, srv_reply *out) {
    (void)s;
    (void)rq;
    text(out, 200, "ok\n");
}

/* Ready: the log is applied and the database answers. */
static void h_readyz(srv *s, const srv_request *rq, srv_reply *out) {
    int64_t head;
    (void)rq;
    if (!s->ready)
        text(out, 503, "not ready: replaying the event log\n");
    else if (srv_store_head(s->store, &head) != 0)
        text(out, 503, "not ready: the database does not answer\n");
    else
        text(out, 200, "ready\n");
}

static void h_metrics(srv *s, const srv_request *rq, srv_reply *out) {
    (void)rq;
    metrics_render(s, out);
}

static json_t *number_or_null(double x) {
    return isfinite(x) ? json_real(x) : json_null();
}

static void h_experiments(srv *s, const srv_request *rq, srv_reply *out) {
    srv_variant_stats st[SRV_MAX_VARIANTS];
    (void)rq;
    if (experiment_stats(s, st) != 0) {
        srv_reply_error(out, 503, NULL, "the database failed; try again");
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < s->cfg.n_variants; i++) {
        const srv_variant *v = &s->cfg.variants[i];
        srv_model *m = score_acquire(s, i);
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:f, s:I, s:I, s:o, s:o, s:o, s:o, s:o}", "name",
                            v->name, "model", m->name, "weight", v->weight, "sessions",
                            (json_int_t)st[i].sessions, "conversions",
                            (json_int_t)st[i].conversions, "rate", number_or_null(st[i].rate),
                            "ci_low", number_or_null(st[i].ci_low), "ci_high",
                            number_or_null(st[i].ci_high), "z", number_or_null(st[i].z),
                            "p_value", number_or_null(st[i].p_value)));
        score_release(m);
    }
    srv_reply_object(out, 200,
                     json_pack("{s:s, s:o}", "control", s->cfg.variants[0].name, "variants", list),
                     17);
}

static double round4(double x) {
    return round(x * 1e4) / 1e4;
}

static json_t *probability_or_null(double x) {
    return isnan(x) ? json_null() : json_real(round4(x));
}

static void h_sessions(srv *s, const srv_request *rq, srv_reply *out) {
    const char *v = srv_request_arg(rq, "limit");
    long limit = SESSIONS_DEFAULT;
    if (v != NULL) {
        char *end = NULL;
        errno = 0;
        limit = strtol(v, &end, 10);
        if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || limit < 1 ||
            limit > SESSIONS_MAX) {
            srv_reply_error(out, 422, "limit", "must be an integer from 1 to %d", SESSIONS_MAX);
            return;
        }
    }
    srv_live_view view;
    if (live_rank(s, (size_t)limit, &view) != 0) {
        srv_reply_json(out, 500, NULL);
        return;
    }
    json_t *h = json_array(), *list = json_array();
    for (int b = 0; b < SRV_LIVE_BINS; b++)
        json_array_append_new(h, json_integer(view.histogram[b]));
    for (size_t i = 0; i < view.n_rows; i++) {
        const srv_live_row *x = &view.rows[i];
        json_t *rs = json_array();
        for (int j = 0; j < x->n_reasons; j++)
            json_array_append_new(rs, json_string(x->reasons[j]));
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:f, s:I, s:I, s:f, s:o}",
                            "session_id", x->session_id, "visitor_id", x->visitor_id,
                            "variant", s->cfg.variants[x->variant].name, "probability",
                            probability_or_null(x->probability), "confidence",
                            probability_or_null(x->confidence), "page_views",
                            (json_int_t)x->page_views, "duration", x->duration, "started",
                            (json_int_t)x->first_ms, "last_seen", (json_int_t)x->last_ms,
                            "revenue", x->revenue, "reasons", rs));
    }
    free(view.rows);
    srv_reply_object(out, 200,
                     json_pack("{s:I, s:I, s:o, s:o}", "now", (json_int_t)view.now, "active",
                               (json_int_t)view.active, "histogram", h, "sessions", list),
                     10);
}

/* GET /api/drift: per variant, its current model's drift window and the
 * PSI of each dim (drift.c). */
static void h_drift(srv *s, const srv_request *rq, srv_reply *out) {
    (void)rq;
    json_t *list = json_array();
    for (int i = 0; i < s->cfg.n_variants; i++) {
        srv_drift_view dv;
        if (drift_view(s, i, &dv) != 0) {
            json_decref(list);
            srv_reply_json(out, 500, NULL);
            return;
        }
        json_t *dims = json_array();
        for (uint32_t j = 0; j < dv.n_dims; j++) {
            const char *st = dv.ready ? drift_status(dv.psi[j]) : NULL;
            json_array_append_new(
                dims, json_pack("{s:s, s:o, s:o}", "name", dv.names[j], "psi",
                                st ? json_real(round(dv.psi[j] * 1e6) / 1e6) : json_null(),
                                "status", st ? json_string(st) : json_null()));
        }
        json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:b, s:o}", "variant",
                              s->cfg.variants[i].name, "model", dv.model->name, "id",
                              dv.model->id, "reference", dv.has_window, "window",
                              (json_int_t)dv.window, "sessions", (json_int_t)dv.sessions,
                              "binned", (json_int_t)dv.binned, "ready", dv.ready, "dims", dims);
        drift_view_done(&dv);
        json_array_append_new(list, o);
    }
    int least = s->cfg.drift_window < SRV_DRIFT_MIN_SESSIONS ? s->cfg.drift_window
                                                               : SRV_DRIFT_MIN_SESSIONS;
    srv_reply_object(out, 200,
                     json_pack("{s:{s:f, s:f, s:i}, s:o}", "thresholds", "watch",
                               SRV_DRIFT_WATCH, "alert", SRV_DRIFT_ALERT, "min_sessions", least,
                               "variants", list),
                     10);
}

/* POST /api/admin/reload: {} or {"variant": NAME}. */
static void h_reload(srv *s, const srv_request *rq, srv_reply *out) {
    int v = -1;
    if (rq->len > 0) {
        json_error_t jerr;
        json_t *root = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &jerr), *x;
        const char *key;
        if (root == NULL || !json_is_object(root)) {
            json_decref(root);
            srv_reply_error(out, 400, NULL, "body must be a JSON object");
            return;
        }
        json_object_foreach(root, key, x) {
            if (strcmp(key, "variant") != 0) {
                srv_reply_error(out, 422, key, "unknown key");
                json_decref(root);
                return;
            }
            if (!json_is_string(x) || (v = srv_variant_index(s, json_string_value(x))) < 0) {
                srv_reply_error(out, 422, "variant", "must be the name of a variant");
                json_decref(root);
                return;
            }
        }
        json_decref(root);
    }
    char why[1024];
    if (score_reload(s, v, why, sizeof why) != 0) {
        srv_reply_error(out, 422, NULL, "reload refused, the old model keeps serving: %s", why);
        return;
    }
    json_t *list = json_array();
    for (int i = v < 0 ? 0 : v; i < (v < 0 ? s->cfg.n_variants : v + 1); i++) {
        srv_model *m = score_acquire(s, i);
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "variant",
                                              s->cfg.variants[i].name, "model", m->name, "id",
                                              m->id, "kernel", m->kernel));
        score_release(m);
    }
    srv_reply_object(out, 200, json_pack("{s:o}", "reloaded", list), 17);
}

/* ===================================================================== *
 * The table
 * ===================================================================== */

const srv_route srv_routes[] = {
    {"/api/track", 1, SRV_PUBLIC, SRV_BODY_MAX, api_track},
    {"/api/predict", 1, SRV_PUBLIC, SRV_BODY_MAX, api_predict},
    {"/api/sessions", 0, SRV_PUBLIC, 0, h_sessions},
    {"/api/experiments", 0, SRV_PUBLIC, 0, h_experiments},
    {"/api/drift", 0, SRV_PUBLIC, 0, h_drift},
    {"/api/admin/reload", 1, SRV_OPERATOR, RELOAD_BODY_MAX, h_reload},
    {"/metrics", 0, SRV_PUBLIC, 0, h_metrics},
    {"/healthz", 0, SRV_PUBLIC, 0, h_healthz},
    {"/readyz", 0, SRV_PUBLIC, 0, h_readyz},
};
const size_t srv_n_routes = sizeof srv_routes / sizeof srv_routes[0];
