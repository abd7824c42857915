/*
 * server.h - the modules of opecom-server and what they share. The API they
 * serve is docs/server.md; the server uses only the public opecom.h.
 *
 *   main.c        flags, start-up order, signals, shutdown
 *   config.c      flags + JSON config file -> srv_config, a message per bad setting
 *   http.c        libmicrohttpd: routing, bodies (capped), static files, replies
 *   score.c       POST /api/predict; srv_score (predict + reasons + action)
 *   experiment.c  variants: sticky assignment, GET /api/experiments statistics
 *   metrics.c     counters and histograms, GET /metrics
 *   db.c          SQLite (WAL): schema, opening, the group-commit writer thread
 *   db_read.c     replay at start-up, read-only queries, the reader pool
 *                 (db_internal.h: the state db.c and db_read.c share)
 *   live.c        the sessionizer fed by committed events; open sessions and
 *                 their cached scores; GET /api/sessions
 *   track.c       POST /api/track: JSON -> validated srv_event batch -> db
 *
 * Threads: libmicrohttpd's worker pool runs the handlers; db.c's writer
 * thread owns the write connection and, after each commit, hands the batch
 * to live.c (under live's mutex); live.c's scorer thread rescores the open
 * sessions that changed, with the mutex released. Handlers read through a
 * pool of read-only connections.
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

/* ===================================================================== *
 * Configuration (config.c)
 * ===================================================================== */

typedef struct srv_variant {
    char name[SRV_NAME_MAX];
    char path[SRV_PATH_MAX];
    double weight;             /* > 0 */
    /* set by main.c once loaded */
    opecom_model *model;
    int32_t cols[32];          /* opecom_session_bind of the model */
    uint32_t n_features;
    char model_name[SRV_NAME_MAX]; /* file name without folder and .opm */
    const char *kernel;        /* from opecom_model_describe */
} srv_variant;

typedef struct srv_config {
    int port;                  /* 0..65535; 0 = any free port */
    char db[SRV_PATH_MAX];
    int threads;               /* 1..256 */
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
} srv_config;

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
/* An error reply: {"error": "<field>: <message>", "field": "<field>"}
 * (field NULL: "field": null and the message alone). */
void srv_reply_error(srv_reply *r, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ===================================================================== *
 * The server's shared state
 * ===================================================================== */

typedef struct srv_db srv_db;       /* db.c */
typedef struct srv_live srv_live;   /* live.c */
typedef struct srv_metrics srv_metrics; /* metrics.c */

typedef struct srv {
    srv_config cfg;
    srv_db *db;
    srv_live *live;
    srv_metrics *metrics;
    volatile int ready;        /* models loaded, db open, replay done */
} srv;

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

/* POST /api/track. */
void srv_track(srv *s, const char *body, size_t len, srv_reply *out);

/* ===================================================================== *
 * Database (db.c)
 * ===================================================================== */

/* Opens (creates) the database, sets WAL + synchronous=FULL, creates the
 * schema, starts the writer thread. @return 0, or -1 with a message. */
int db_open(srv *s, const char *path, char *err, size_t err_size);
/* Stops the writer (after committing what is queued) and closes. */
void db_close(srv *s);

/* Queues n events and waits until they are committed (or failed): events
 * of concurrent callers share one transaction. After the commit the writer
 * passes the batch to live_feed. Each session row gets the variant
 * srv_variant_for(visitor) when first seen.
 * @return 0 durable, -1 the database failed (nothing acknowledged). */
int db_submit(srv *s, const srv_event *ev, size_t n);

/* Feeds every stored event, in time order, to live_feed (start-up, before
 * the server listens). @return 0 or -1 with a message. */
int db_replay(srv *s, char *err, size_t err_size);

/* Stores the features of a closed session (called by live.c from the
 * writer thread, inside its transaction). */
void db_store_closed(srv *s, const opecom_session *session);

/* Per-variant counts for /api/experiments: sessions and sessions with a
 * purchase. @return 0 or -1. */
int db_variant_counts(srv *s, const char *variant, int64_t *sessions, int64_t *conversions);

/* The features of a closed session, from session_features (the last part).
 * @return 1 found, 0 unknown, -1 database error. */
int db_closed_session(srv *s, const char *visitor_id, const char *session_id,
                      opecom_session *out);

/* ===================================================================== *
 * Live sessions (live.c)
 * ===================================================================== */

/* Makes the sessionizer from cfg.session. @return 0 or -1 with a message. */
int live_open(srv *s, char *err, size_t err_size);
void live_close(srv *s);

/* Adds committed events to the sessionizer, advances it to max(now, the
 * events), stores the sessions that closed (db_store_closed) and updates the
 * open sessions' cached scores. Writer thread only. */
void live_feed(srv *s, const srv_event *ev, size_t n, int64_t now_ms);

/* Moves the clock (the writer thread calls it about once a second). */
void live_tick(srv *s, int64_t now_ms);

/* The features of a session: open (peeked, *open = 1) or closed (from the
 * database, *open = 0). When visitor_id is NULL, the open session with that
 * session id, whatever its visitor.
 * @return 1 found, 0 unknown, -1 error. */
int live_session(srv *s, const char *visitor_id, const char *session_id, opecom_session *out,
                 int *open);

/* GET /api/sessions?limit=N (query: the raw query string or NULL). */
void live_sessions(srv *s, const char *limit, srv_reply *out);

/* ===================================================================== *
 * Scoring (score.c)
 * ===================================================================== */

typedef struct srv_reason {
    uint32_t feature;
    double contribution;
    char text[OPECOM_REASON_MAX];
} srv_reason;

typedef struct srv_score_result {
    opecom_result r;
    int variant;               /* index into cfg.variants */
    const char *action;        /* cfg.action or "none" */
    uint32_t n_reasons;
    srv_reason reasons[32];
} srv_score_result;

/* Scores one raw row (variant's feature order) with variant v, with up to
 * n_reasons reasons (0: no explanation). Thread-safe (per-thread
 * workspaces). Counts the prediction in the metrics.
 * @return OPECOM_OK or the library's status, err naming the feature. */
opecom_status srv_score(srv *s, int v, const opecom_value *row, uint32_t n_reasons,
                        srv_score_result *out, opecom_error *err);

/* Fills row (variant v's features) from a session. */
opecom_status srv_session_row(const srv *s, int v, const opecom_session *ses, opecom_value *row,
                              opecom_error *err);

/* POST /api/predict. */
void srv_predict(srv *s, const char *body, size_t len, srv_reply *out);

/* ===================================================================== *
 * Experiments (experiment.c)
 * ===================================================================== */

/* The variant of a visitor: FNV-1a 64 of the id modulo the weights' sum
 * (weights scaled to integers by 1000), walked in order. An empty id gets 0. */
int srv_variant_for(const srv *s, const char *visitor_id);
/* @return the index of a variant name, or -1. */
int srv_variant_index(const srv *s, const char *name);

/* GET /api/experiments. */
void srv_experiments(srv *s, srv_reply *out);

/* ===================================================================== *
 * Metrics (metrics.c); every call thread-safe and cheap
 * ===================================================================== */

int metrics_open(srv *s);
void metrics_close(srv *s);
void metrics_request(srv *s, const char *route, int status, double seconds);
void metrics_prediction(srv *s, int variant, double probability);
void metrics_events(srv *s, int type, uint64_t n);
void metrics_late(srv *s, uint64_t n);
void metrics_commit(srv *s, double seconds);
void metrics_active(srv *s, uint64_t n);
/* GET /metrics. */
void metrics_render(srv *s, srv_reply *out);

/* Unix time in milliseconds. */
int64_t srv_now_ms(void);

#endif
