/*
 * drift.c - drift monitoring: each model's sliding window of the most
 * recent closed sessions, and how far they moved from the model's training
 * distribution (the population stability index, PSI, of every feature and
 * of the score), for GET /api/drift and GET /metrics.
 *
 * The window. A model file may carry a drift reference (opecom.h, "Drift
 * monitoring"): bins for each feature and for the score, with the training
 * fraction of each. The window of a model keeps, for the last
 * cfg.drift_window sessions binned with it, each session's bin indices in a
 * ring (2 bytes a dim, 4 when a model has more than 65536 bins in all), and
 * a count per bin: a new session adds 1 at each of its bins, the session it
 * pushes out of a full window subtracts 1 at each of its own. Memory is the
 * ring, window x dims, fixed when the model loads. The window lives in the
 * srv_model (score.c) and goes with it: a reload starts an empty window,
 * because the reference it is compared with changed too. A model without a
 * reference has no window.
 *
 * Feeding. live.c's follower sees sessions close with its mutex held; it
 * queues their UCI rows here (drift_queue_push, a copy) and, once the mutex
 * is released, drift_queue_flush scores each with its variant's model (one
 * opecom_predict, no reasons) and bins it (opecom_drift_bin) into that
 * model's window, whose own short mutex covers the update. The queue keeps
 * at most drift_window rows per variant: when more close at once (the
 * replay at start-up closes the whole history), only the newest could stay
 * in the window anyway.
 *
 * Reading. drift_view copies a window's counts under its mutex and turns
 * them into PSI values outside it. A window holding fewer than
 * min(drift_window, SRV_DRIFT_MIN_SESSIONS) sessions shows no PSI: on a
 * handful of sessions every feature looks shifted.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define QUEUE_KEEP 1024 /* queue rows kept allocated between flushes, per variant */

/* ===================================================================== *
 * The window
 * ===================================================================== */

struct srv_drift {
    pthread_mutex_t mu;        /* everything below */
    const opecom_model *model;
    uint32_t n_dims, n_counts, window;
    int wide;                  /* ring entries uint32_t (else uint16_t) */
    void *ring;                /* [window][n_dims] absolute bin indices */
    uint64_t *counts;          /* [n_counts] sessions per bin */
    uint32_t next;             /* the ring slot the next session takes */
    uint32_t sessions;         /* in the window */
    uint64_t binned;           /* added since the window was made */
};

srv_drift *drift_window_new(const opecom_model *model, uint32_t window, opecom_status *status) {
    opecom_drift_info info;
    opecom_status st = opecom_drift_describe(model, &info, NULL);
    if (st != OPECOM_OK) {
        *status = st;
        return NULL;
    }
    if (info.n_dims > SRV_DRIFT_DIMS_MAX || window == 0) {
        *status = OPECOM_EINVAL;
        return NULL;
    }
    srv_drift *d = calloc(1, sizeof *d);
    if (d == NULL) {
        *status = OPECOM_ENOMEM;
        return NULL;
    }
    d->model = model;
    d->n_dims = info.n_dims;
    d->n_counts = info.n_counts;
    d->window = window;
    d->wide = info.n_counts > 65536u;
    d->ring = calloc((size_t)window * info.n_dims, d->wide ? sizeof(uint32_t) : sizeof(uint16_t));
    d->counts = calloc(info.n_counts, sizeof *d->counts);
    if (d->ring == NULL || d->counts == NULL) {
        free(d->ring);
        free(d->counts);
        free(d);
        *status = OPECOM_ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&d->mu, NULL);
    *status = OPECOM_OK;
    return d;
}

void drift_window_free(srv_drift *d) {
    if (d == NULL)
        return;
    pthread_mutex_destroy(&d->mu);
    free(d->ring);
    free(d->counts);
    free(d);
}

void drift_window_add(srv_drift *d, const uint32_t *index) {
    for (uint32_t j = 0; j < d->n_dims; j++)
        if (index[j] >= d->n_counts)
            return; /* the library promises < n_counts; never trust a count index */
    pthread_mutex_lock(&d->mu);
    size_t slot = (size_t)d->next * d->n_dims;
    if (d->wide) {
        uint32_t *r = (uint32_t *)d->ring + slot;
        for (uint32_t j = 0; j < d->n_dims; j++) {
            if (d->sessions == d->window)
                d->counts[r[j]]--;
            r[j] = index[j];
            d->counts[index[j]]++;
        }
    } else {
        uint16_t *r = (uint16_t *)d->ring + slot;
        for (uint32_t j = 0; j < d->n_dims; j++) {
            if (d->sessions == d->window)
                d->counts[r[j]]--;
            r[j] = (uint16_t)index[j];
            d->counts[index[j]]++;
        }
    }
    d->next = d->next + 1 == d->window ? 0 : d->next + 1;
    if (d->sessions < d->window)
        d->sessions++;
    d->binned++;
    pthread_mutex_unlock(&d->mu);
}

/* ===================================================================== *
 * Reading
 * ===================================================================== */

const char *drift_status(double psi) {
    if (isnan(psi))
        return NULL;
    return psi < SRV_DRIFT_WATCH ? "ok" : psi < SRV_DRIFT_ALERT ? "watch" : "alert";
}

int drift_view(srv *s, int v, srv_drift_view *view) {
    memset(view, 0, sizeof *view);
    for (int j = 0; j < SRV_DRIFT_DIMS_MAX; j++)
        view->psi[j] = NAN;
    view->window = (uint32_t)s->cfg.drift_window;
    srv_model *m = score_acquire(s, v);
    view->model = m;
    srv_drift *d = m->drift;
    if (d == NULL)
        return 0;
    uint64_t *counts = malloc(d->n_counts * sizeof *counts);
    if (counts == NULL) {
        drift_view_done(view);
        return -1;
    }
    pthread_mutex_lock(&d->mu);
    memcpy(counts, d->counts, d->n_counts * sizeof *counts);
    view->sessions = d->sessions;
    view->binned = d->binned;
    pthread_mutex_unlock(&d->mu);
    view->has_window = 1;
    view->window = d->window;
    view->n_dims = d->n_dims;
    for (uint32_t j = 0; j < d->n_dims; j++)
        if (opecom_drift_dim(m->model, j, &view->names[j], NULL, NULL, NULL) != OPECOM_OK)
            view->names[j] = "?";
    uint32_t least = d->window < SRV_DRIFT_MIN_SESSIONS ? d->window : SRV_DRIFT_MIN_SESSIONS;
    view->ready = view->sessions >= least;
    if (view->ready && opecom_drift_psi(m->model, counts, view->psi, NULL) != OPECOM_OK) {
        view->ready = 0;
        for (uint32_t j = 0; j < d->n_dims; j++)
            view->psi[j] = NAN;
    }
    free(counts);
    return 0;
}

void drift_view_done(srv_drift_view *view) {
    score_release(view->model);
    view->model = NULL;
}

/* ===================================================================== *
 * The follower's queue
 * ===================================================================== */

typedef opecom_value uci_row[SRV_UCI_FEATURES];

typedef struct queue_ring {
    uci_row *rows;             /* [cap]; the oldest at head */
    uint32_t cap, len, head;
} queue_ring;

struct srv_drift_queue {
    uint32_t max;              /* rows per variant: cfg.drift_window */
    int n_variants;
    queue_ring ring[SRV_MAX_VARIANTS];
};

srv_drift_queue *drift_queue_new(const srv *s) {
    srv_drift_queue *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->max = (uint32_t)s->cfg.drift_window;
    q->n_variants = s->cfg.n_variants;
    return q;
}

void drift_queue_free(srv_drift_queue *q) {
    if (q == NULL)
        return;
    for (int v = 0; v < SRV_MAX_VARIANTS; v++)
        free(q->ring[v].rows);
    free(q);
}

void drift_queue_push(srv_drift_queue *q, int v, const opecom_value *uci) {
    if (q == NULL || v < 0 || v >= q->n_variants)
        return;
    queue_ring *r = &q->ring[v];
    if (r->len == r->cap && r->cap < q->max) {
        uint32_t cap = r->cap ? r->cap * 2 : 64;
        if (cap > q->max)
            cap = q->max;
        uci_row *rows = malloc((size_t)cap * sizeof *rows);
        if (rows == NULL)
            return;
        for (uint32_t i = 0; i < r->len; i++) /* unroll the ring */
            memcpy(rows[i], r->rows[(r->head + i) % r->cap], sizeof *rows);
        free(r->rows);
        r->rows = rows;
        r->cap = cap;
        r->head = 0;
    }
    if (r->len == r->cap) { /* full at max: the oldest gives way */
        memcpy(r->rows[r->head], uci, sizeof *r->rows);
        r->head = (r->head + 1) % r->cap;
        return;
    }
    memcpy(r->rows[(r->head + r->len) % r->cap], uci, sizeof *r->rows);
    r->len++;
}

void drift_queue_flush(srv *s, srv_drift_queue *q) {
    if (q == NULL)
        return;
    for (int v = 0; v < q->n_variants; v++) {
        queue_ring *r = &q->ring[v];
        for (uint32_t i = 0; i < r->len; i++)
            score_drift(s, v, r->rows[(r->head + i) % r->cap]);
        r->len = r->head = 0;
        if (r->cap > QUEUE_KEEP) { /* a burst (the replay): give the memory back */
            free(r->rows);
            r->rows = NULL;
            r->cap = 0;
        }
    }
}
