/*
 * server.h - the modules of opecom-server and what they share. The API they
 * serve is docs/server.md; the server uses only the public opecom.h.
 * README.md beside this file draws the module map. Calls go one way:
 *
 *   http        http.c        libmicrohttpd: routing by the table, bodies
 *                             (capped per route), static files, replies
 *               routes.c      the route table; small handlers
 *               api_track.c   POST /api/track: parse and check a batch
 *               api_predict.c POST /api/predict: parse, score, render
 *   services    track.c       a checked batch -> store -> live
 *               live.c        the sessionizer fed from the event log, its
 *                             clock, cached scores, the ranking
 *               score.c       models, predictions, reasons, actions
 *               drift.c       each model's window of closed sessions, PSI
 *               experiment.c  variants: assignment and statistics
 *   storage     store.h       one interface (store.c: the writer thread);
 *                             store_sqlite.c, store_mariadb.c; schema.sql
 *   throughout  metrics.c     counters and histograms, GET /metrics text
 *               config.c      flags + JSON config file -> srv_config
 *               main.c        start-up order, signals, shutdown
 *
 * Threads: libmicrohttpd's worker pool runs the handlers; store.c's writer
 * thread owns the database writes; live.c's follower applies the event log
 * to the sessionizer and moves its clock, and its scorer rescores the open
 * sessions that changed; the follower also bins the sessions that closed
 * into their model's drift window.
 */
#ifndef OPECOM_SERVER_H
#define OPECOM_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "opecom.h"

#define SRV_MAX_VARIANTS 16
#define SRV_NAME_MAX 64
#define SRV_PATH_MAX 1024
#define SRV_MAX_CODES 4096
#define SRV_MAX_EVENTS 500          /* events per /api/track batch */
#define SRV_BODY_MAX (1024 * 1024)  /* request body bytes */
#define SRV_TOKEN_MAX 257           /* operator token bytes, NUL included */

/* ===================================================================== *
 * Configuration (config.c)
 * ===================================================================== */

typedef struct srv_drift srv_drift; /* drift.c */

/* One loaded model file (score.c), shared by the requests that use it. */
typedef struct srv_model {
    opecom_model *model;
    int32_t cols[32];          /* opecom_session_bind: model feature -> UCI column */
    uint32_t n_features;
    char name[SRV_NAME_MAX];   /* the file name without folder and .opm */
    char id[9];                /* the file's checksum, 8 hex digits */
    const char *kernel;        /* from opecom_model_describe */
    uint32_t k;
    double threshold;
    uint64_t generation;       /* one per load */
    int refs;                  /* score.c's lock */
    srv_drift *drift;          /* the sessions binned with this model (drift.c);
                                  NULL: the file has no drift reference */
} srv_model;

typedef struct srv_variant {
    char name[SRV_NAME_MAX];
    char path[SRV_PATH_MAX];
    double weight;             /* > 0 */
    srv_model *current;        /* score.c: take it with score_acquire */
} srv_variant;

typedef struct srv_config {
    int port;                  /* 0..65535; 0 = any free port */
    char db[SRV_PATH_MAX];     /* a store URL (store.h) */
    int threads;               /* 1..256 */
    int follow_ms;             /* reads of the event log when idle: 10..10000 */
    char admin_token[SRV_TOKEN_MAX]; /* operator routes' bearer token; "": they are off */
    char store_dir[SRV_PATH_MAX];
    char dashboard_dir[SRV_PATH_MAX];
    srv_variant variants[SRV_MAX_VARIANTS]; /* [0] is the control */
    int n_variants;
    /* intervention: probability in [min_p, max_p) -> action, else "none" */
    char action[SRV_NAME_MAX];
    double min_p, max_p;
    /* sessionizer settings; special_days and codes point into the arrays
     * below, code texts into code_text */
    opecom_session_config session;
    opecom_special_day special_days[64];
    opecom_code_entry codes[SRV_MAX_CODES];
    char *code_text;           /* owned */
    int drift_window;          /* closed sessions per drift window:
                                  SRV_DRIFT_WINDOW_MIN..SRV_DRIFT_WINDOW_MAX */
} srv_config;

#define SRV_DRIFT_WINDOW_MIN 100
#define SRV_DRIFT_WINDOW_MAX 1000000
#define SRV_DRIFT_WINDOW_DEFAULT 5000

/* Fills cfg from the defaults, then the --config file, then the flags.
 * @return 0; -1 with a message naming the key or file in err; -2 for a bad
 *         flag (usage error: exit status 2). */
int srv_config_parse(int argc, char **argv, srv_config *cfg, char *err, size_t err_size);
void srv_config_free(srv_config *cfg);

/* ===================================================================== *
 * Replies (http.c)
 * ===================================================================== */

typedef struct srv_reply {
    int status;                /* HTTP status */
    char *body;                /* malloc'd JSON (or text), owned by the reply */
    size_t len;
    const char *content_type;  /* static; NULL = application/json */
} srv_reply;

/* Sets a JSON body (takes ownership of a malloc'd string; NULL = out of
 * memory -> 500). */
void srv_reply_json(srv_reply *r, int status, char *json);
/* Renders a JSON value as the body (reals with `digits` significant
 * digits, 1..17) and releases it; NULL = out of memory -> 500. */
typedef struct json_t json_t;
void srv_reply_object(srv_reply *r, int status, json_t *o, int digits);
/* An error reply: {"error": "<field>: <message>", "field": "<field>"}
 * (field NULL: "field": null and the message alone). */
void srv_reply_error(srv_reply *r, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ===================================================================== *
 * Routes (routes.c: the table; http.c: routing by it)
 * ===================================================================== */

typedef struct srv srv;

/* A request as a handler sees it. */
typedef struct srv_request {
    const char *body;          /* POST: the body, NUL-terminated */
    size_t len;
    void *conn;                /* http.c's, for srv_request_arg */
} srv_request;

/* A query argument, decoded; NULL when absent. */
const char *srv_request_arg(const srv_request *rq, const char *name);

typedef enum srv_access {
    SRV_PUBLIC = 0,            /* anyone */
    SRV_OPERATOR = 1           /* "Authorization: Bearer <cfg.admin_token>" */
} srv_access;

typedef struct srv_route {
    const char *path;
    int post;                  /* 1: POST with a JSON body; 0: GET and HEAD */
    srv_access access;
    size_t body_max;           /* POST: the largest body, bytes */
    void (*handle)(srv *s, const srv_request *rq, srv_reply *out);
} srv_route;

#define SRV_ROUTES_MAX 16      /* metrics.c's label slots: routes + static + unmatched */
extern const srv_route srv_routes[];
extern const size_t srv_n_routes;

/* POST /api/track (api_track.c) and POST /api/predict (api_predict.c). */
void api_track(srv *s, const srv_request *rq, srv_reply *out);
void api_predict(srv *s, const srv_request *rq, srv_reply *out);

/* ===================================================================== *
 * The server's shared state
 * ===================================================================== */

typedef struct srv_store srv_store;     /* store.h */
typedef struct srv_live srv_live;       /* live.c */
typedef struct srv_drift_queue srv_drift_queue; /* drift.c */
typedef struct srv_metrics srv_metrics; /* metrics.c */

struct srv {
    srv_config cfg;
    srv_store *store;
    srv_live *live;
    srv_metrics *metrics;
    volatile int ready;        /* models loaded, db open, replay done */
};

/* ===================================================================== *
 * Events (track.c -> db.c -> live.c)
 * ===================================================================== */

enum { SRV_PAGEVIEW = 1, SRV_PURCHASE = 2 };

typedef struct srv_event {
    int type;                  /* SRV_PAGEVIEW or SRV_PURCHASE */
    const char *variant;       /* the visitor's variant name (cfg); NULL read back from the log */
    char visitor_id[OPECOM_ID_MAX];
    char session_id[OPECOM_ID_MAX];
    int64_t ts;                /* Unix ms, already shifted by sent_at */
    int page_type;             /* opecom_page_type, pageview */
    char page_id[OPECOM_PAGE_ID_MAX];
    double duration;           /* pageview: active seconds */
    double revenue;            /* purchase */
    char os[OPECOM_CODE_TEXT_MAX], browser[OPECOM_CODE_TEXT_MAX];
    char region[OPECOM_CODE_TEXT_MAX], traffic_type[OPECOM_CODE_TEXT_MAX];
} srv_event;


/* ===================================================================== *
 * Tracking (track.c)
 * ===================================================================== */

/* Stores a validated batch: each event gets its visitor's variant, the
 * batch is committed (srv_store_append) and, so that the caller's next
 * request sees it, applied by this replica's follower (live_wait).
 * @return 0 committed; -1 the database failed (nothing stored). */
int track_submit(srv *s, srv_event *ev, size_t n);

/* ===================================================================== *
 * Live sessions (live.c)
 * ===================================================================== */

#define SRV_LIVE_REASONS 3
#define SRV_LIVE_BINS 10

/* Makes the sessionizer from cfg.session and starts the scorer thread.
 * @return 0 or -1 with a message. */
int live_open(srv *s, char *err, size_t err_size);
/* Applies the whole event log (the replay), then starts the follower
 * thread that keeps applying it. @return 0 or -1 with a message. */
int live_start(srv *s, char *err, size_t err_size);
/* Stops the threads and frees everything. Accepts s->live NULL. */
void live_close(srv *s);

/* Checks a parsed event by the sessionizer's own rules (what the API
 * acknowledges must be what the follower can add). Any thread.
 * @return 0, or -1 with err->feature the opecom_event_field at fault. */
int live_check(srv *s, const srv_event *e, opecom_error *err);

/* Wakes the follower and waits until it applied log number seq, at most
 * timeout_ms. @return 0 applied, -1 not yet. */
int live_wait(srv *s, int64_t seq, int timeout_ms);

/* The features of a session: open (peeked, *open = 1) or closed (from the
 * database, *open = 0). When visitor_id is NULL, the open session with that
 * session id, whatever its visitor.
 * @return 1 found, 0 unknown, -1 error. */
int live_session(srv *s, const char *visitor_id, const char *session_id, opecom_session *out,
                 int *open);

/* One open session as GET /api/sessions shows it. */
typedef struct srv_live_row {
    char visitor_id[OPECOM_ID_MAX];
    char session_id[OPECOM_ID_MAX];
    int variant;
    uint64_t version;
    uint32_t page_views;
    double duration, revenue;
    double probability, confidence; /* NaN: not scored yet */
    int64_t first_ms, last_ms;
    int n_reasons;
    char reasons[SRV_LIVE_REASONS][OPECOM_REASON_MAX];
} srv_live_row;

typedef struct srv_live_view {
    int64_t now;
    uint64_t active;                /* open sessions */
    int64_t histogram[SRV_LIVE_BINS]; /* scored open sessions by probability */
    srv_live_row *rows;             /* malloc'd: the caller frees it */
    size_t n_rows;
} srv_live_view;

/* The open sessions ranked by probability (then the most recent), the first
 * `limit` with up to SRV_LIVE_REASONS reasons each. @return 0, -1 out of
 * memory. */
int live_rank(srv *s, size_t limit, srv_live_view *view);

/* ===================================================================== *
 * Scoring (score.c)
 * ===================================================================== */

typedef struct srv_reason {
    uint32_t feature;
    double contribution;
    char text[OPECOM_REASON_MAX];
} srv_reason;

#define SRV_UCI_FEATURES 17    /* the UCI columns a model may take (not Revenue) */

typedef struct srv_score_result {
    opecom_result r;
    srv_model *model;          /* valid until srv_score_done */
    int owned;                 /* score.c's: model is a reference of this result's */
    int variant;               /* index into cfg.variants */
    const char *action;        /* cfg.action or "none" */
    uint32_t n_reasons;
    srv_reason reasons[32];    /* feature: the model's feature index */
} srv_score_result;

/* Loads every variant's model. @return 0 or -1 with a message. */
int score_open(srv *s, char *err, size_t err_size);
void score_close(srv *s);
/* Variant v's current model, with a reference: give it back with
 * score_release. */
srv_model *score_acquire(srv *s, int v);
void score_release(srv_model *m);
/* Loads variant v's file again (v < 0: every variant), checks it and swaps
 * it in; requests in flight finish on the old model. A file that fails is
 * refused (logged, counted) and the old model keeps serving.
 * @return 0, or -1 with the (first) reason in err. */
int score_reload(srv *s, int v, char *err, size_t err_size);

/* Scores one raw row in UCI column order (SRV_UCI_FEATURES values) with
 * variant v's current model, with up to n_reasons reasons (0: no
 * explanation). Thread-safe. Counts the prediction in the metrics. The
 * result's model stays valid until srv_score_done (call it, also after a
 * failure) and at least until this thread's next srv_score.
 * @return OPECOM_OK or the library's status; err->feature is then the UCI
 *         column at fault. */
opecom_status srv_score(srv *s, int v, const opecom_value *uci, uint32_t n_reasons,
                        srv_score_result *out, opecom_error *err);
void srv_score_done(srv_score_result *r);

/* Fills uci (SRV_UCI_FEATURES values) from a session. */
opecom_status srv_session_row(const opecom_session *ses, opecom_value *uci, opecom_error *err);

/* Scores a closed session's row (UCI column order) with variant v's current
 * model, without reasons and without counting it as a prediction, and adds
 * its bins to that model's drift window. Nothing when the model has no
 * window. @return OPECOM_OK or the library's status (the row is skipped). */
opecom_status score_drift(srv *s, int v, const opecom_value *uci);

/* ===================================================================== *
 * Drift (drift.c)
 * ===================================================================== */

#define SRV_DRIFT_DIMS_MAX 33     /* a model's features (srv_model.cols) + the score */
#define SRV_DRIFT_MIN_SESSIONS 200 /* fewer in a window: PSI not shown (noise) */
#define SRV_DRIFT_WATCH 0.1       /* PSI from here: "watch" */
#define SRV_DRIFT_ALERT 0.25      /* PSI from here: "alert" */

/* A window for a model's drift reference, `window` sessions long.
 * @return the window; NULL when the model has no drift reference
 *         (*status OPECOM_ENODRIFT) or on no memory (*status OPECOM_ENOMEM). */
srv_drift *drift_window_new(const opecom_model *model, uint32_t window, opecom_status *status);
void drift_window_free(srv_drift *d);
/* Adds one session's bins (n_dims indices from opecom_drift_bin); the
 * oldest session leaves a full window. Thread-safe. */
void drift_window_add(srv_drift *d, const uint32_t *index);

/* The drift of one variant's current model, as /api/drift and /metrics show
 * it. Names point into the model, which the view holds: drift_view_done. */
typedef struct srv_drift_view {
    srv_model *model;
    int has_window;               /* 0: the model has no drift reference (no window) */
    uint32_t window;              /* cfg.drift_window */
    uint32_t sessions;            /* in the window now */
    uint64_t binned;              /* added since the model was loaded */
    int ready;                    /* sessions >= min(window, SRV_DRIFT_MIN_SESSIONS) */
    uint32_t n_dims;
    const char *names[SRV_DRIFT_DIMS_MAX]; /* features in model order, then "score" */
    double psi[SRV_DRIFT_DIMS_MAX];        /* NaN unless ready */
} srv_drift_view;

/* @return 0, or -1 out of memory (view->model is NULL then). */
int drift_view(srv *s, int v, srv_drift_view *view);
void drift_view_done(srv_drift_view *view);
/* "ok", "watch" or "alert" for a PSI (NULL for NaN). */
const char *drift_status(double psi);

/* The follower's queue of closed sessions waiting to be binned: their UCI
 * rows, per variant, at most cfg.drift_window each (older ones would leave
 * the window anyway). live.c fills it under its mutex, and empties it with
 * drift_queue_flush after releasing it. One thread at a time. */
srv_drift_queue *drift_queue_new(const srv *s);
void drift_queue_free(srv_drift_queue *q);
/* Copies a row in (no memory: the row is dropped). */
void drift_queue_push(srv_drift_queue *q, int v, const opecom_value *uci);
/* Scores and bins every queued row (score_drift), oldest first, and empties
 * the queue. */
void drift_queue_flush(srv *s, srv_drift_queue *q);

/* ===================================================================== *
 * Experiments (experiment.c)
 * ===================================================================== */

/* The variant of a visitor: FNV-1a 64 of the id modulo the weights' sum
 * (weights scaled to integers by 1000), walked in order. An empty id gets 0. */
int srv_variant_for(const srv *s, const char *visitor_id);
/* @return the index of a variant name, or -1. */
int srv_variant_index(const srv *s, const char *name);

typedef struct srv_variant_stats {
    int64_t sessions, conversions;
    double rate, ci_low, ci_high; /* NaN when undefined (no sessions) */
    double z, p_value;            /* against the control; NaN for it */
} srv_variant_stats;

/* The statistics of every variant (out: cfg.n_variants of them).
 * @return 0, -1 the database failed. */
int experiment_stats(srv *s, srv_variant_stats *out);

/* ===================================================================== *
 * Metrics (metrics.c); every call thread-safe and cheap
 * ===================================================================== */

int metrics_open(srv *s);
void metrics_close(srv *s);
/* route: an index into srv_routes, srv_n_routes for static files,
 * srv_n_routes + 1 for an unknown API path. */
void metrics_request(srv_metrics *m, size_t route, int status, double seconds);
void metrics_prediction(srv_metrics *m, int variant, double probability);
void metrics_events(srv_metrics *m, int type, uint64_t n);
void metrics_late(srv_metrics *m, uint64_t n);
void metrics_commit(srv_metrics *m, double seconds);
void metrics_backlog(srv_metrics *m, uint64_t n);
void metrics_reload(srv_metrics *m, int variant, int ok);
void metrics_active(srv_metrics *m, uint64_t n);
/* GET /metrics. */
void metrics_render(srv *s, srv_reply *out);

/* Unix time in milliseconds. */
int64_t srv_now_ms(void);

#endif
