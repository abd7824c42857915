/*
 * score.c - POST /api/predict, and srv_score (predict + reasons + action)
 * shared with live.c.
 *
 * Hot path: a raw-feature request with "reasons": 0. It costs one jansson
 * parse, one opecom_predict in this thread's workspace and one snprintf'd
 * reply: no lock (the workspaces are per thread, found through a pthread
 * key whose destructor frees them when libmicrohttpd's threads exit) and no
 * allocation besides jansson's tree and the reply itself.
 *
 * Validation follows docs/server.md: every UCI column except Revenue is
 * required; numbers must be numbers (counts and durations >= 0, rates and
 * SpecialDay in [0, 1]); categories may be text or numbers; Weekend is a
 * boolean or "TRUE"/"FALSE". Each failure is a 422 naming the key. Values
 * the library still refuses (its feature ranges) come back as OPECOM_EINVAL
 * with err.feature, and are named the same way.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "server.h"

#define N_UCI 17        /* feature columns; 17 is Revenue, ignored */
#define WS_ROWS 64      /* workspace rows: explanations batch coalitions */
#define MAX_FEATURES 64

/* ===================================================================== *
 * Per-thread workspaces
 * ===================================================================== */

typedef struct thread_ws {
    opecom_workspace *ws[SRV_MAX_VARIANTS];
} thread_ws;

static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static int ws_key_ok;

static void thread_ws_free(void *p) {
    thread_ws *t = p;
    int i;
    for (i = 0; i < SRV_MAX_VARIANTS; i++)
        opecom_workspace_free(t->ws[i]);
    free(t);
}

static void ws_key_make(void) {
    ws_key_ok = pthread_key_create(&ws_key, thread_ws_free) == 0;
}

/* This thread's workspace for variant v, made on first use; NULL: out of
 * memory (the caller then scores with the library's stack buffer). */
static opecom_workspace *thread_workspace(srv *s, int v) {
    thread_ws *t;
    pthread_once(&ws_once, ws_key_make);
    if (!ws_key_ok)
        return NULL;
    t = pthread_getspecific(ws_key);
    if (t == NULL) {
        t = calloc(1, sizeof(*t));
        if (t == NULL || pthread_setspecific(ws_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    if (t->ws[v] == NULL &&
        opecom_workspace_create(s->cfg.variants[v].model, WS_ROWS, &t->ws[v], NULL) != OPECOM_OK)
        t->ws[v] = NULL;
    return t->ws[v];
}

/* ===================================================================== *
 * Scoring
 * ===================================================================== */

opecom_status srv_score(srv *s, int v, const opecom_value *row, uint32_t n_reasons,
                        srv_score_result *out, opecom_error *err) {
    const srv_variant *var = &s->cfg.variants[v];
    opecom_workspace *ws = thread_workspace(s, v);
    opecom_status st;
    double p;
    out->variant = v;
    out->n_reasons = 0;
    st = opecom_predict(var->model, ws, row, &out->r, err);
    if (st != OPECOM_OK)
        return st;
    p = out->r.probability;
    out->action = (p >= s->cfg.min_p && p < s->cfg.max_p) ? s->cfg.action : "none";
    metrics_prediction(s, v, p);
    if (n_reasons > 0) {
        double contrib[MAX_FEATURES];
        int used[MAX_FEATURES] = {0};
        opecom_explanation ex;
        uint32_t n = var->n_features < MAX_FEATURES ? var->n_features : MAX_FEATURES;
        uint32_t i, j;
        if (n_reasons > n)
            n_reasons = n;
        if (n_reasons > 32)
            n_reasons = 32;
        st = opecom_explain(var->model, ws, row, NULL, &ex, contrib, err);
        if (st == OPECOM_ENOBASELINE)
            return OPECOM_OK; /* no reasons without a baseline; not an error */
        if (st != OPECOM_OK)
            return st;
        for (j = 0; j < n_reasons; j++) {
            int best = -1;
            for (i = 0; i < n; i++)
                if (!used[i] && (best < 0 || fabs(contrib[i]) > fabs(contrib[best])))
                    best = (int)i;
            used[best] = 1;
            out->reasons[j].feature = (uint32_t)best;
            out->reasons[j].contribution = contrib[best];
            if (opecom_reason(var->model, row, (uint32_t)best, contrib[best],
                              out->reasons[j].text, sizeof(out->reasons[j].text),
                              NULL) != OPECOM_OK)
                out->reasons[j].text[0] = '\0';
        }
        out->n_reasons = n_reasons;
    }
    return OPECOM_OK;
}

opecom_status srv_session_row(const srv *s, int v, const opecom_session *ses, opecom_value *row,
                              opecom_error *err) {
    const srv_variant *var = &s->cfg.variants[v];
    return opecom_session_row(ses, var->cols, var->n_features, row, err);
}

/* ===================================================================== *
 * Reply text
 * ===================================================================== */

typedef struct out_buf {
    char *p;
    size_t len, cap;
    int full;
} out_buf;

static void add(out_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(out_buf *b, const char *fmt, ...) {
    va_list ap;
    int n;
    if (b->full)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->full = 1;
        return;
    }
    b->len += (size_t)n;
}

/* A JSON string literal (quotes included). */
static void add_str(out_buf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    if (b->full)
        return;
    if (s == NULL) {
        add(b, "null");
        return;
    }
    if (b->len + 2 >= b->cap) {
        b->full = 1;
        return;
    }
    b->p[b->len++] = '"';
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (b->len + 7 >= b->cap) {
            b->full = 1;
            return;
        }
        if (c == '"' || c == '\\') {
            b->p[b->len++] = '\\';
            b->p[b->len++] = (char)c;
        } else if (c < 0x20) {
            b->p[b->len++] = '\\';
            b->p[b->len++] = 'u';
            b->p[b->len++] = '0';
            b->p[b->len++] = '0';
            b->p[b->len++] = hex[c >> 4];
            b->p[b->len++] = hex[c & 15];
        } else {
            b->p[b->len++] = (char)c;
        }
    }
    b->p[b->len++] = '"';
    b->p[b->len] = '\0';
}

static void add_result(out_buf *b, srv *s, const srv_score_result *res) {
    const srv_variant *var = &s->cfg.variants[res->variant];
    opecom_model_info info;
    uint32_t i;
    int first = 1;
    float threshold = 0.5f;
    if (opecom_model_describe(var->model, &info) == OPECOM_OK)
        threshold = info.threshold;
    add(b, "\"probability\":%.9g,\"spread\":%.9g,\"confidence\":%.9g,\"members\":[",
        (double)res->r.probability, (double)res->r.spread, (double)res->r.confidence);
    for (i = 0; i < res->r.k; i++)
        add(b, "%s%.9g", i ? "," : "", (double)res->r.member[i]);
    add(b, "],\"label\":%s,\"threshold\":%.9g,\"variant\":", res->r.label ? "true" : "false",
        (double)threshold);
    add_str(b, var->name);
    add(b, ",\"model\":");
    add_str(b, var->model_name);
    add(b, ",\"kernel\":");
    add_str(b, var->kernel);
    add(b, ",\"action\":");
    add_str(b, res->action);
    add(b, ",\"reasons\":[");
    for (i = 0; i < res->n_reasons; i++) {
        opecom_feature_info fi;
        const char *name = "?";
        if (opecom_model_feature(var->model, res->reasons[i].feature, &fi) == OPECOM_OK)
            name = fi.name;
        add(b, "%s{\"feature\":", i ? "," : "");
        add_str(b, name);
        add(b, ",\"contribution\":%.6g,\"text\":", res->reasons[i].contribution);
        add_str(b, res->reasons[i].text);
        add(b, "}");
    }
    add(b, "],\"unknown\":[");
    for (i = 0; i < 64 && res->r.n_unknown > 0; i++) {
        opecom_feature_info fi;
        if (!(res->r.unknown_mask >> i & 1) ||
            opecom_model_feature(var->model, i, &fi) != OPECOM_OK)
            continue;
        if (!first)
            add(b, ",");
        add_str(b, fi.name);
        first = 0;
    }
    add(b, "]");
}

/* ===================================================================== *
 * POST /api/predict
 * ===================================================================== */

/* 1: 0..max bytes of printable ASCII (min 1 when nonempty is set). */
static int printable_id(json_t *v, int nonempty) {
    const char *s;
    size_t n, i;
    if (!json_is_string(v))
        return 0;
    s = json_string_value(v);
    n = json_string_length(v);
    if (n >= OPECOM_ID_MAX || (nonempty && n == 0))
        return 0;
    for (i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return 0;
    return 1;
}

/* Column rules: 0 count, 1 duration, 2 rate in [0, 1], 3 value >= 0,
 * 4 category, 5 Weekend. */
static const unsigned char col_rule[N_UCI] = {0, 1, 0, 1, 0, 1, 2, 2, 3, 2, 4, 4, 4, 4, 4, 4, 5};

/* Reads column col of the request into *val; 0, or -1 after a 422. */
static int read_column(int col, json_t *v, opecom_value *val, srv_reply *out) {
    const char *key = opecom_session_column_name(col);
    val->num = 0;
    val->str = NULL;
    switch (col_rule[col]) {
    case 0:
    case 1:
    case 2:
    case 3: {
        double x;
        if (!json_is_number(v)) {
            srv_reply_error(out, 422, key, "must be a number");
            return -1;
        }
        x = json_number_value(v);
        if (!isfinite(x)) {
            srv_reply_error(out, 422, key, "must be a finite number");
            return -1;
        }
        if (x < 0) {
            srv_reply_error(out, 422, key, "must not be negative");
            return -1;
        }
        if (col_rule[col] == 2 && x > 1) {
            srv_reply_error(out, 422, key, "must be in [0, 1]");
            return -1;
        }
        val->num = x;
        return 0;
    }
    case 4:
        if (json_is_string(v)) {
            if (json_string_length(v) == 0 || json_string_length(v) >= OPECOM_CODE_TEXT_MAX ||
                strlen(json_string_value(v)) != json_string_length(v)) {
                srv_reply_error(out, 422, key, "must be a text of 1 to %d bytes or a number",
                                OPECOM_CODE_TEXT_MAX - 1);
                return -1;
            }
            val->str = json_string_value(v);
            return 0;
        }
        if (json_is_number(v) && isfinite(json_number_value(v))) {
            val->num = json_number_value(v);
            return 0;
        }
        srv_reply_error(out, 422, key, "must be a text or a number");
        return -1;
    default: /* Weekend */
        if (json_is_boolean(v)) {
            val->str = json_is_true(v) ? "TRUE" : "FALSE";
            return 0;
        }
        if (json_is_string(v) && strcasecmp(json_string_value(v), "TRUE") == 0) {
            val->str = "TRUE";
            return 0;
        }
        if (json_is_string(v) && strcasecmp(json_string_value(v), "FALSE") == 0) {
            val->str = "FALSE";
            return 0;
        }
        srv_reply_error(out, 422, key, "must be true/false or \"TRUE\"/\"FALSE\"");
        return -1;
    }
}

static void features_json(out_buf *b, const opecom_session *ses) {
    static const int32_t all[N_UCI] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    opecom_value row[N_UCI];
    int i;
    if (opecom_session_row(ses, all, N_UCI, row, NULL) != OPECOM_OK) {
        add(b, "null");
        return;
    }
    add(b, "{");
    for (i = 0; i < N_UCI; i++) {
        add(b, "%s", i ? "," : "");
        add_str(b, opecom_session_column_name(i));
        add(b, ":");
        if (i == 16)
            add(b, "%s", row[i].str != NULL && strcmp(row[i].str, "TRUE") == 0 ? "true" : "false");
        else if (row[i].str != NULL)
            add_str(b, row[i].str);
        else
            add(b, "%.9g", row[i].num);
    }
    add(b, "}");
}

void srv_predict(srv *s, const char *body, size_t len, srv_reply *out) {
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *v, *session_id = NULL, *visitor = NULL;
    opecom_value uci[N_UCI], row[MAX_FEATURES];
    uint32_t seen = 0; /* bit per UCI column */
    uint32_t n_reasons = 3;
    int variant = -1, is_open = 0, col, i;
    opecom_session ses;
    srv_score_result res;
    opecom_error err;
    opecom_status st;
    const char *key;
    char text[16384];
    out_buf b = {text, 0, sizeof(text), 0};

    if (root == NULL) {
        srv_reply_error(out, 400, NULL, "body is not JSON: line %d, column %d: %s", jerr.line,
                        jerr.column, jerr.text);
        return;
    }
    if (!json_is_object(root)) {
        srv_reply_error(out, 400, NULL, "body must be a JSON object");
        goto done;
    }
    session_id = json_object_get(root, "session_id");
    /* Keys: options, then the features (raw mode only). */
    json_object_foreach(root, key, v) {
        if (strcmp(key, "reasons") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 17) {
                srv_reply_error(out, 422, "reasons", "must be an integer in [0, 17]");
                goto done;
            }
            n_reasons = (uint32_t)json_integer_value(v);
        } else if (strcmp(key, "variant") == 0) {
            if (!json_is_string(v) || (variant = srv_variant_index(s, json_string_value(v))) < 0) {
                srv_reply_error(out, 422, "variant", "must be the name of a variant (the "
                                "control is \"%s\")", s->cfg.variants[0].name);
                goto done;
            }
        } else if (strcmp(key, "visitor_id") == 0) {
            if (!printable_id(v, 0)) {
                srv_reply_error(out, 422, "visitor_id", "must be a text of 0 to %d printable "
                                "ASCII bytes", OPECOM_ID_MAX - 1);
                goto done;
            }
            visitor = v;
        } else if (strcmp(key, "session_id") == 0) {
            if (!printable_id(v, 1)) {
                srv_reply_error(out, 422, "session_id", "must be a text of 1 to %d printable "
                                "ASCII bytes", OPECOM_ID_MAX - 1);
                goto done;
            }
        } else if ((col = opecom_session_column(key)) >= 0) {
            if (session_id != NULL) {
                srv_reply_error(out, 422, key, "features are not allowed with session_id");
                goto done;
            }
            if (col >= N_UCI)
                continue; /* Revenue: the label, ignored */
            if (read_column(col, v, &uci[col], out) != 0)
                goto done;
            seen |= 1u << col;
        } else {
            srv_reply_error(out, 422, key, "unknown key");
            goto done;
        }
    }

    if (session_id == NULL) {
        /* Raw features. */
        const srv_variant *var;
        for (col = 0; col < N_UCI; col++) {
            if (!(seen >> col & 1)) {
                srv_reply_error(out, 422, opecom_session_column_name(col), "missing");
                goto done;
            }
        }
        if (variant < 0)
            variant = visitor != NULL ? srv_variant_for(s, json_string_value(visitor)) : 0;
        var = &s->cfg.variants[variant];
        for (i = 0; i < (int)var->n_features && i < MAX_FEATURES; i++)
            row[i] = var->cols[i] >= 0 && var->cols[i] < N_UCI ? uci[var->cols[i]]
                                                               : (opecom_value){0, NULL};
    } else {
        const char *vid = visitor != NULL ? json_string_value(visitor) : NULL;
        int found = live_session(s, vid, json_string_value(session_id), &ses, &is_open);
        if (found < 0) {
            srv_reply_error(out, 503, NULL, "the session store failed; try again");
            goto done;
        }
        if (found == 0) {
            srv_reply_error(out, 404, "session_id", "unknown session \"%s\"",
                            json_string_value(session_id));
            goto done;
        }
        if (variant < 0)
            variant = srv_variant_for(s, ses.visitor_id);
        if (srv_session_row(s, variant, &ses, row, &err) != OPECOM_OK) {
            srv_reply_error(out, 500, NULL, "cannot build the session's row: %s", err.message);
            goto done;
        }
    }

    st = srv_score(s, variant, row, n_reasons, &res, &err);
    if (st == OPECOM_EINVAL && err.feature >= 0) {
        opecom_feature_info fi;
        const char *name = opecom_model_feature(s->cfg.variants[variant].model,
                                                (uint32_t)err.feature, &fi) == OPECOM_OK
                               ? fi.name
                               : "?";
        srv_reply_error(out, 422, name, "%s", err.message);
        goto done;
    }
    if (st != OPECOM_OK) {
        srv_reply_error(out, 500, NULL, "scoring failed: %s", opecom_strerror(st));
        goto done;
    }

    add(&b, "{");
    add_result(&b, s, &res);
    if (session_id != NULL) {
        add(&b, ",\"session_id\":");
        add_str(&b, ses.session_id);
        add(&b, ",\"visitor_id\":");
        add_str(&b, ses.visitor_id);
        add(&b, ",\"open\":%s,\"features\":", is_open ? "true" : "false");
        features_json(&b, &ses);
    }
    add(&b, "}");
    if (b.full) {
        srv_reply_error(out, 500, NULL, "reply too long");
        goto done;
    }
    {
        char *p = malloc(b.len + 1);
        if (p != NULL)
            memcpy(p, text, b.len + 1);
        srv_reply_json(out, 200, p);
    }
done:
    json_decref(root);
}
