/*
 * score.c - the scoring service: srv_score (predict + reasons + action) for
 * a variant's model, used by POST /api/predict (api_predict.c) and by the
 * live sessions (live.c).
 *
 * No lock on the hot path: the workspaces are per thread, found through a
 * pthread key whose destructor frees them when libmicrohttpd's threads
 * exit, and opecom_predict allocates nothing.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

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
    metrics_prediction(s->metrics, v, p);
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

