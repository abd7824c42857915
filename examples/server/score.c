/*
 * score.c - the scoring service: each variant's model, srv_score (predict +
 * reasons + action) for POST /api/predict (api_predict.c) and the live
 * sessions (live.c), and the reload that swaps a model while it serves.
 *
 * Models. A variant's current model is a srv_model with a reference count:
 * the variant holds one while the model is current, score_acquire gives
 * one to a caller until score_release. score_reload loads and checks the
 * new file with no lock held, then swaps the pointer under the lock and
 * publishes the new model's generation: requests that started on the old
 * model finish on it, and whoever drops its last reference frees it. A file that does not load, or does not take the UCI
 * features, is refused and the old model keeps serving. Each model owns its
 * drift window (drift.c), made empty with it: a reload starts a new window.
 *
 * Hot path: no lock. Each thread keeps a reference to the model it last
 * scored with, beside its workspace (found through a pthread key whose
 * destructor gives both back when libmicrohttpd's threads exit), and trades
 * it for the current one only when the variant's published generation
 * moved: one atomic load per prediction. opecom_predict allocates nothing.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define WS_ROWS 64      /* workspace rows: explanations batch coalitions */
#define MAX_FEATURES 64
#define MODEL_MAX (1u << 30) /* bytes of a model file */

static pthread_mutex_t models_mu = PTHREAD_MUTEX_INITIALIZER; /* refs, current */
static uint64_t generations;                                  /* under models_mu */
/* each variant's current model's generation, read without the lock */
static _Atomic uint64_t current_generation[SRV_MAX_VARIANTS];

/* ===================================================================== *
 * Per-thread workspaces
 * ===================================================================== */

typedef struct thread_ws {
    srv_model *held[SRV_MAX_VARIANTS];       /* a reference: the model last used */
    opecom_workspace *ws[SRV_MAX_VARIANTS];  /* made for held[v] */
} thread_ws;


static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static int ws_key_ok;

static void thread_ws_free(void *p) {
    thread_ws *t = p;
    for (int i = 0; i < SRV_MAX_VARIANTS; i++) {
        opecom_workspace_free(t->ws[i]);
        score_release(t->held[i]);
    }
    free(t);
}

static void ws_key_make(void) {
    ws_key_ok = pthread_key_create(&ws_key, thread_ws_free) == 0;
}

/* This thread's state, made on first use; NULL: out of memory. */
static thread_ws *thread_state(void) {
    pthread_once(&ws_once, ws_key_make);
    if (!ws_key_ok)
        return NULL;
    thread_ws *t = pthread_getspecific(ws_key);
    if (t == NULL) {
        t = calloc(1, sizeof(*t));
        if (t == NULL || pthread_setspecific(ws_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    return t;
}

/* ===================================================================== *
 * Models
 * ===================================================================== */

/* The model's name: the file name without folder and ".opm". */
static void model_name(const char *path, char *out, size_t size) {
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && strcmp(base + n - 4, ".opm") == 0)
        n -= 4;
    snprintf(out, size, "%.*s", (int)n, base);
}

static void model_free(srv_model *m) {
    if (m == NULL)
        return;
    drift_window_free(m->drift);
    opecom_model_free(m->model);
    free(m);
}

/* Reads a whole file (at most MODEL_MAX bytes). @return malloc'd bytes or
 * NULL with errno set. */
static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    unsigned char *b = malloc(cap);
    while (b != NULL) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap || cap >= MODEL_MAX)
            break;
        unsigned char *p = realloc(b, cap * 2);
        if (p == NULL) {
            free(b);
            b = NULL;
            break;
        }
        b = p;
        cap *= 2;
    }
    int bad = ferror(f) || (b != NULL && n == cap);
    fclose(f);
    if (bad) {
        free(b);
        errno = b != NULL && n == cap ? EFBIG : EIO;
        return NULL;
    }
    *size = n;
    return b;
}

/* Loads and checks variant v's file. The bytes are read into memory rather
 * than mapped, so an operator who writes into the file in place cannot
 * change (or, cutting it short, crash) the model that serves.
 * @return the model (one reference, for the variant), or NULL with the
 * reason in err. */
static srv_model *model_load(const srv_variant *v, uint32_t window, char *err,
                             size_t size_max) {
    srv_model *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, size_max, "variant %s: out of memory", v->name);
        return NULL;
    }
    opecom_error e;
    size_t size = 0;
    unsigned char *bytes = read_all(v->path, &size);
    if (bytes == NULL) {
        snprintf(err, size_max, "variant %s: cannot load model %s: %s", v->name, v->path,
                 errno == EFBIG ? "larger than 1 GiB" : strerror(errno));
        free(m);
        return NULL;
    }
    opecom_status st = opecom_model_load_buffer(bytes, size, NULL, &m->model, &e);
    free(bytes);
    if (st != OPECOM_OK) {
        snprintf(err, size_max, "variant %s: cannot load model %s: %s", v->name, v->path,
                 e.message[0] != '\0' ? e.message : opecom_strerror(st));
        free(m);
        return NULL;
    }
    opecom_model_info info;
    opecom_model_describe(m->model, &info);
    if (info.n_features > sizeof m->cols / sizeof m->cols[0]) {
        snprintf(err, size_max, "variant %s: model %s has %u features; at most %zu", v->name,
                 v->path, info.n_features, sizeof m->cols / sizeof m->cols[0]);
        model_free(m);
        return NULL;
    }
    if (opecom_session_bind(m->model, m->cols, &e) != OPECOM_OK) {
        snprintf(err, size_max, "variant %s: model %s does not take the UCI features: %s", v->name,
                 v->path, e.message);
        model_free(m);
        return NULL;
    }
    opecom_status dst;
    m->drift = drift_window_new(m->model, window, &dst);
    if (m->drift == NULL && dst != OPECOM_ENODRIFT) {
        snprintf(err, size_max, "variant %s: model %s: no drift window: %s", v->name, v->path,
                 opecom_strerror(dst));
        model_free(m);
        return NULL;
    }
    m->n_features = info.n_features;
    m->kernel = info.kernel;
    m->k = info.k;
    m->threshold = info.threshold;
    snprintf(m->id, sizeof m->id, "%08x", (unsigned)info.checksum);
    model_name(v->path, m->name, sizeof m->name);
    m->refs = 1;
    pthread_mutex_lock(&models_mu);
    m->generation = ++generations;
    pthread_mutex_unlock(&models_mu);
    return m;
}

int score_open(srv *s, char *err, size_t size) {
    for (int i = 0; i < s->cfg.n_variants; i++) {
        s->cfg.variants[i].current =
            model_load(&s->cfg.variants[i], (uint32_t)s->cfg.drift_window, err, size);
        if (s->cfg.variants[i].current == NULL)
            return -1;
        atomic_store(&current_generation[i], s->cfg.variants[i].current->generation);
    }
    return 0;
}

void score_close(srv *s) {
    for (int i = 0; i < s->cfg.n_variants; i++) {
        model_free(s->cfg.variants[i].current);
        s->cfg.variants[i].current = NULL;
    }
}

srv_model *score_acquire(srv *s, int v) {
    pthread_mutex_lock(&models_mu);
    srv_model *m = s->cfg.variants[v].current;
    m->refs++;
    pthread_mutex_unlock(&models_mu);
    return m;
}

void score_release(srv_model *m) {
    if (m == NULL)
        return;
    pthread_mutex_lock(&models_mu);
    int last = --m->refs == 0;
    pthread_mutex_unlock(&models_mu);
    if (last)
        model_free(m);
}

/* Variant v's current model for this thread, and its workspace (*ws;
 * NULL: none, the library then uses its stack buffer). Kept by the thread
 * between calls; *owned = 1 when the caller got a reference of its own
 * instead (no thread state: out of memory) and must give it back. */
static srv_model *thread_model(srv *s, int v, opecom_workspace **ws, int *owned) {
    thread_ws *t = thread_state();
    *ws = NULL;
    *owned = t == NULL;
    if (t == NULL)
        return score_acquire(s, v);
    uint64_t gen = atomic_load_explicit(&current_generation[v], memory_order_acquire);
    if (t->held[v] == NULL || t->held[v]->generation != gen) {
        srv_model *m = score_acquire(s, v);
        opecom_workspace_free(t->ws[v]);
        t->ws[v] = NULL;
        score_release(t->held[v]);
        t->held[v] = m;
    }
    if (t->ws[v] == NULL &&
        opecom_workspace_create(t->held[v]->model, WS_ROWS, &t->ws[v], NULL) != OPECOM_OK)
        t->ws[v] = NULL;
    *ws = t->ws[v];
    return t->held[v];
}

int score_reload(srv *s, int v, char *err, size_t size) {
    int failed = 0;
    for (int i = v < 0 ? 0 : v; i < (v < 0 ? s->cfg.n_variants : v + 1); i++) {
        srv_variant *var = &s->cfg.variants[i];
        char why[1024];
        srv_model *m = model_load(var, (uint32_t)s->cfg.drift_window, why, sizeof why);
        if (m == NULL) {
            fprintf(stderr, "opecom-server: reload refused, the old model keeps serving: %s\n",
                    why);
            metrics_reload(s->metrics, i, 0);
            if (!failed)
                snprintf(err, size, "%s", why);
            failed = 1;
            continue;
        }
        pthread_mutex_lock(&models_mu);
        srv_model *old = var->current;
        var->current = m;
        atomic_store_explicit(&current_generation[i], m->generation, memory_order_release);
        pthread_mutex_unlock(&models_mu);
        fprintf(stderr, "opecom-server: variant %s: now %s (%s), was %s (%s)\n", var->name,
                m->name, m->id, old->name, old->id);
        score_release(old); /* the variant's reference; threads may still hold theirs */
        metrics_reload(s->metrics, i, 1);
    }
    return failed ? -1 : 0;
}

/* ===================================================================== *
 * Scoring
 * ===================================================================== */

/* A UCI-ordered row in model m's feature order. */
static void model_row(const srv_model *m, const opecom_value *uci, opecom_value *row) {
    for (uint32_t i = 0; i < m->n_features; i++)
        row[i] = m->cols[i] >= 0 && m->cols[i] < SRV_UCI_FEATURES ? uci[m->cols[i]]
                                                                  : (opecom_value){0, NULL};
}

opecom_status srv_score(srv *s, int v, const opecom_value *uci, uint32_t n_reasons,
                        srv_score_result *out, opecom_error *err) {
    opecom_workspace *ws;
    srv_model *m = thread_model(s, v, &ws, &out->owned);
    opecom_value row[MAX_FEATURES];
    out->model = m;
    out->variant = v;
    out->n_reasons = 0;
    model_row(m, uci, row);
    opecom_status st = opecom_predict(m->model, ws, row, &out->r, err);
    if (st != OPECOM_OK) {
        /* name the UCI column, not the model's feature index */
        if (err != NULL && err->feature >= 0 && (uint32_t)err->feature < m->n_features)
            err->feature = m->cols[err->feature];
        return st;
    }
    double p = out->r.probability;
    out->action = (p >= s->cfg.min_p && p < s->cfg.max_p) ? s->cfg.action : "none";
    metrics_prediction(s->metrics, v, p);
    if (n_reasons == 0)
        return OPECOM_OK;
    double contrib[MAX_FEATURES];
    int used[MAX_FEATURES] = {0};
    opecom_explanation ex;
    uint32_t n = m->n_features;
    if (n_reasons > n)
        n_reasons = n;
    if (n_reasons > 32)
        n_reasons = 32;
    st = opecom_explain(m->model, ws, row, NULL, &ex, contrib, err);
    if (st == OPECOM_ENOBASELINE)
        return OPECOM_OK; /* no reasons without a baseline; not an error */
    if (st != OPECOM_OK)
        return st;
    for (uint32_t j = 0; j < n_reasons; j++) {
        int best = -1;
        for (uint32_t i = 0; i < n; i++)
            if (!used[i] && (best < 0 || fabs(contrib[i]) > fabs(contrib[best])))
                best = (int)i;
        used[best] = 1;
        out->reasons[j].feature = (uint32_t)best;
        out->reasons[j].contribution = contrib[best];
        if (opecom_reason(m->model, row, (uint32_t)best, contrib[best], out->reasons[j].text,
                          sizeof(out->reasons[j].text), NULL) != OPECOM_OK)
            out->reasons[j].text[0] = '\0';
    }
    out->n_reasons = n_reasons;
    return OPECOM_OK;
}

void srv_score_done(srv_score_result *r) {
    if (r->owned)
        score_release(r->model);
    r->model = NULL;
    r->owned = 0;
}

opecom_status score_drift(srv *s, int v, const opecom_value *uci) {
    opecom_workspace *ws;
    int owned;
    srv_model *m = thread_model(s, v, &ws, &owned);
    opecom_status st = OPECOM_OK;
    if (m->drift == NULL)
        goto done;
    opecom_value row[MAX_FEATURES];
    model_row(m, uci, row);
    opecom_result r;
    uint32_t index[SRV_DRIFT_DIMS_MAX];
    st = opecom_predict(m->model, ws, row, &r, NULL);
    if (st == OPECOM_OK)
        st = opecom_drift_bin(m->model, row, r.probability, index, NULL);
    if (st == OPECOM_OK)
        drift_window_add(m->drift, index);
done:
    if (owned)
        score_release(m);
    return st;
}

opecom_status srv_session_row(const opecom_session *ses, opecom_value *uci, opecom_error *err) {
    static const int32_t all[SRV_UCI_FEATURES] = {0, 1, 2,  3,  4,  5,  6,  7, 8,
                                                  9, 10, 11, 12, 13, 14, 15, 16};
    return opecom_session_row(ses, all, SRV_UCI_FEATURES, uci, err);
}
