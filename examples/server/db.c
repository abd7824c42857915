/*
 * db.c - opecom-server's SQLite database, writing side: the schema, opening
 * and closing, and the group-commit writer thread. The reading side (the
 * replay at start-up, the handlers' queries, the pool of read-only
 * connections) is db_read.c; the state both share is db_internal.h.
 *
 * Writes. One thread (the writer) owns the write connection. db_submit puts
 * the caller's events on a queue (the job lives on the caller's stack) and
 * waits; the writer takes every job queued so far, writes them all in one
 * BEGIN IMMEDIATE .. COMMIT (WAL, synchronous=FULL: durable once COMMIT
 * returns), hands the batches to live_feed and only then wakes the callers:
 * an acknowledged event is on disk and in the sessionizer. Any SQLite error
 * rolls the transaction back and every caller of it gets -1.
 *
 * Closed sessions. live_feed and live_tick (writer thread; db_replay on the
 * caller's thread at start-up) call db_store_closed, which only copies the
 * session to a pending list. The writer writes the pending list in a small
 * transaction of its own right after the feed or tick that produced it, so
 * a failing features row never makes events fail; on an error the list is
 * kept and retried a second later. Closing features are recomputed by the
 * replay at each start, so INSERT OR REPLACE keeps one row per part.
 * db_close stops the writer only after the queue and the pending list are
 * written; it does not tick any more.
 *
 * Reads (db_variant_counts, db_closed_session, db_replay: db_read.c) go
 * through read-only connections taken from a small pool; WAL lets them run
 * while the writer commits.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "db_internal.h"
#include "server.h"

#define SCHEMA_VERSION 1
#define TICK_MS 1000
#define CLOSED_RETRY_MS 1000

/* examples/server/schema.sql without its comments (the test checks that
 * both make the same schema). */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS sessions (\n"
    "    id INTEGER PRIMARY KEY,\n"
    "    visitor_id TEXT NOT NULL,\n"
    "    session_id TEXT NOT NULL,\n"
    "    variant TEXT NOT NULL,\n"
    "    first_ms INTEGER NOT NULL,\n"
    "    last_ms INTEGER NOT NULL,\n"
    "    os TEXT,\n"
    "    browser TEXT,\n"
    "    region TEXT,\n"
    "    traffic_type TEXT,\n"
    "    page_views INTEGER NOT NULL DEFAULT 0,\n"
    "    purchases INTEGER NOT NULL DEFAULT 0,\n"
    "    revenue REAL NOT NULL DEFAULT 0,\n"
    "    UNIQUE (visitor_id, session_id)\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS sessions_variant ON sessions (variant, purchases);\n"
    "CREATE TABLE IF NOT EXISTS page_views (\n"
    "    id INTEGER PRIMARY KEY,\n"
    "    session INTEGER NOT NULL REFERENCES sessions (id),\n"
    "    ts INTEGER NOT NULL,\n"
    "    page_type TEXT NOT NULL\n"
    "        CHECK (page_type IN ('administrative', 'informational', 'product_related')),\n"
    "    page_id TEXT NOT NULL,\n"
    "    duration REAL NOT NULL CHECK (duration >= 0)\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS page_views_ts ON page_views (ts, id);\n"
    "CREATE INDEX IF NOT EXISTS page_views_session ON page_views (session);\n"
    "CREATE TABLE IF NOT EXISTS purchases (\n"
    "    id INTEGER PRIMARY KEY,\n"
    "    session INTEGER NOT NULL REFERENCES sessions (id),\n"
    "    ts INTEGER NOT NULL,\n"
    "    revenue REAL NOT NULL CHECK (revenue >= 0)\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS purchases_ts ON purchases (ts, id);\n"
    "CREATE INDEX IF NOT EXISTS purchases_session ON purchases (session);\n"
    "CREATE TABLE IF NOT EXISTS session_features (\n"
    "    session INTEGER NOT NULL REFERENCES sessions (id),\n"
    "    part INTEGER NOT NULL,\n"
    "    closed_ms INTEGER NOT NULL,\n"
    "    start_ms INTEGER NOT NULL,\n"
    "    end_ms INTEGER NOT NULL,\n"
    "    n_events INTEGER NOT NULL,\n"
    "    revenue_total REAL NOT NULL,\n"
    "    administrative INTEGER NOT NULL,\n"
    "    administrative_duration REAL NOT NULL,\n"
    "    informational INTEGER NOT NULL,\n"
    "    informational_duration REAL NOT NULL,\n"
    "    product_related INTEGER NOT NULL,\n"
    "    product_related_duration REAL NOT NULL,\n"
    "    bounce_rates REAL NOT NULL,\n"
    "    exit_rates REAL NOT NULL,\n"
    "    page_values REAL NOT NULL,\n"
    "    special_day REAL NOT NULL,\n"
    "    month TEXT NOT NULL,\n"
    "    operating_systems INTEGER NOT NULL,\n"
    "    browser INTEGER NOT NULL,\n"
    "    region INTEGER NOT NULL,\n"
    "    traffic_type INTEGER NOT NULL,\n"
    "    visitor_type TEXT NOT NULL,\n"
    "    weekend INTEGER NOT NULL,\n"
    "    revenue INTEGER NOT NULL,\n"
    "    PRIMARY KEY (session, part)\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS session_features_closed ON session_features (closed_ms, start_ms);\n"
    "CREATE VIEW IF NOT EXISTS sessions_export AS\n"
    "SELECT administrative AS Administrative,\n"
    "       administrative_duration AS Administrative_Duration,\n"
    "       informational AS Informational,\n"
    "       informational_duration AS Informational_Duration,\n"
    "       product_related AS ProductRelated,\n"
    "       product_related_duration AS ProductRelated_Duration,\n"
    "       bounce_rates AS BounceRates,\n"
    "       exit_rates AS ExitRates,\n"
    "       page_values AS PageValues,\n"
    "       special_day AS SpecialDay,\n"
    "       month AS Month,\n"
    "       operating_systems AS OperatingSystems,\n"
    "       browser AS Browser,\n"
    "       region AS Region,\n"
    "       traffic_type AS TrafficType,\n"
    "       visitor_type AS VisitorType,\n"
    "       CASE WHEN weekend THEN 'TRUE' ELSE 'FALSE' END AS Weekend,\n"
    "       CASE WHEN revenue THEN 'TRUE' ELSE 'FALSE' END AS Revenue\n"
    "FROM session_features\n"
    "ORDER BY closed_ms, start_ms, session, part;\n";

/* ===================================================================== *
 * Helpers
 * ===================================================================== */

void db_set_err(char *err, size_t size, const char *fmt, ...) {
    if (err == NULL || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
}

static double mono_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Binds text, or NULL for an empty string (device texts). */
static int bind_text_or_null(sqlite3_stmt *st, int i, const char *text) {
    if (text[0] == '\0')
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
}

/* ===================================================================== *
 * The writer
 * ===================================================================== */

static const char sql_session[] =
    "INSERT INTO sessions (visitor_id, session_id, variant, first_ms, last_ms, os, browser,"
    " region, traffic_type, page_views, purchases, revenue)"
    " VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    " ON CONFLICT (visitor_id, session_id) DO UPDATE SET"
    " first_ms = min(first_ms, excluded.first_ms), last_ms = max(last_ms, excluded.last_ms),"
    " os = coalesce(os, excluded.os), browser = coalesce(browser, excluded.browser),"
    " region = coalesce(region, excluded.region),"
    " traffic_type = coalesce(traffic_type, excluded.traffic_type),"
    " page_views = page_views + excluded.page_views,"
    " purchases = purchases + excluded.purchases, revenue = revenue + excluded.revenue"
    " RETURNING id";
static const char sql_pageview[] =
    "INSERT INTO page_views (session, ts, page_type, page_id, duration) VALUES (?, ?, ?, ?, ?)";
static const char sql_purchase[] = "INSERT INTO purchases (session, ts, revenue) VALUES (?, ?, ?)";
static const char sql_feature[] =
    "INSERT OR REPLACE INTO session_features (session, part, closed_ms, start_ms, end_ms,"
    " n_events, revenue_total, administrative, administrative_duration, informational,"
    " informational_duration, product_related, product_related_duration, bounce_rates,"
    " exit_rates, page_values, special_day, month, operating_systems, browser, region,"
    " traffic_type, visitor_type, weekend, revenue)"
    " SELECT id, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
    " ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26"
    " FROM sessions WHERE visitor_id = ?1 AND session_id = ?2";

/* One event: the session row (created or updated), then its page view or
 * purchase. @return SQLITE_OK or the error. */
static int write_event(srv *s, srv_db *d, const srv_event *e) {
    sqlite3_stmt *st = d->st_session;
    int v = srv_variant_for(s, e->visitor_id);
    if (v < 0 || v >= s->cfg.n_variants)
        v = 0;
    int pv = e->type == SRV_PAGEVIEW;
    sqlite3_bind_text(st, 1, e->visitor_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, e->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s->cfg.variants[v].name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, e->ts);
    bind_text_or_null(st, 5, e->os);
    bind_text_or_null(st, 6, e->browser);
    bind_text_or_null(st, 7, e->region);
    bind_text_or_null(st, 8, e->traffic_type);
    sqlite3_bind_int(st, 9, pv);
    sqlite3_bind_int(st, 10, !pv);
    sqlite3_bind_double(st, 11, pv ? 0.0 : e->revenue);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? SQLITE_ERROR : rc;
    }
    sqlite3_int64 id = sqlite3_column_int64(st, 0);
    /* every change is made by the first step; reset finishes the statement */
    rc = sqlite3_reset(st);
    if (rc != SQLITE_OK)
        return rc;

    if (pv) {
        st = d->st_pageview;
        int pt = e->page_type >= 1 && e->page_type <= 3 ? e->page_type : 0;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, e->ts);
        sqlite3_bind_text(st, 3, page_type_text[pt], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, e->page_id, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 5, e->duration);
    } else {
        st = d->st_purchase;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, e->ts);
        sqlite3_bind_double(st, 3, e->revenue);
    }
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void rollback(srv_db *d) {
    if (!sqlite3_get_autocommit(d->w))
        sqlite3_exec(d->w, "ROLLBACK", NULL, NULL, NULL);
}

/* Writes every event of the jobs in one transaction. @return 0 or -1. */
static int write_jobs(srv *s, srv_db *d, db_job *jobs) {
    double t0 = mono_seconds();
    int rc = sqlite3_exec(d->w, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (db_job *j = jobs; rc == SQLITE_OK && j != NULL; j = j->next)
        for (size_t i = 0; rc == SQLITE_OK && i < j->n; i++)
            rc = write_event(s, d, &j->ev[i]);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(d->w, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "opecom-server: database: storing events failed: %s\n",
                sqlite3_errmsg(d->w));
        rollback(d);
        return -1;
    }
    metrics_commit(s, mono_seconds() - t0);
    return 0;
}

static int write_closed(srv *s, srv_db *d, const opecom_session *c, size_t n) {
    sqlite3_stmt *st = d->st_feature;
    double t0 = mono_seconds();
    int64_t timeout_ms = s->cfg.session.idle_timeout_s * 1000;
    int rc = sqlite3_exec(d->w, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        const opecom_session *x = &c[i];
        sqlite3_bind_text(st, 1, x->visitor_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, x->session_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, x->part);
        sqlite3_bind_int64(st, 4, x->end_ms + timeout_ms);
        sqlite3_bind_int64(st, 5, x->start_ms);
        sqlite3_bind_int64(st, 6, x->end_ms);
        sqlite3_bind_int64(st, 7, x->n_events);
        sqlite3_bind_double(st, 8, x->revenue_total);
        sqlite3_bind_int64(st, 9, (sqlite3_int64)x->administrative);
        sqlite3_bind_double(st, 10, x->administrative_duration);
        sqlite3_bind_int64(st, 11, (sqlite3_int64)x->informational);
        sqlite3_bind_double(st, 12, x->informational_duration);
        sqlite3_bind_int64(st, 13, (sqlite3_int64)x->product_related);
        sqlite3_bind_double(st, 14, x->product_related_duration);
        sqlite3_bind_double(st, 15, x->bounce_rates);
        sqlite3_bind_double(st, 16, x->exit_rates);
        sqlite3_bind_double(st, 17, x->page_values);
        sqlite3_bind_double(st, 18, x->special_day);
        sqlite3_bind_text(st, 19, x->month ? x->month : "Jan", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 20, x->operating_systems);
        sqlite3_bind_int(st, 21, x->browser);
        sqlite3_bind_int(st, 22, x->region);
        sqlite3_bind_int(st, 23, x->traffic_type);
        sqlite3_bind_text(st, 24, x->visitor_type ? x->visitor_type : "Other", -1,
                          SQLITE_STATIC);
        sqlite3_bind_int(st, 25, x->weekend != 0);
        sqlite3_bind_int(st, 26, x->revenue != 0);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(d->w, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "opecom-server: database: storing closed sessions failed: %s\n",
                sqlite3_errmsg(d->w));
        rollback(d);
        return -1;
    }
    metrics_commit(s, mono_seconds() - t0);
    return 0;
}

/* Takes the pending closed sessions (mu held): swaps them with the
 * writer's buffer *buf (capacity *cap). @return how many. */
static size_t take_closed(srv_db *d, opecom_session **buf, size_t *cap) {
    size_t n = d->n_closed;
    opecom_session *b = *buf;
    size_t c = *cap;
    *buf = d->closed;
    *cap = d->cap_closed;
    d->closed = b;
    d->cap_closed = c;
    d->n_closed = 0;
    return n;
}

/* Puts sessions whose write failed back in front of the pending list (mu
 * held). Dropped, with a message, when memory runs out. */
static void put_back_closed(srv_db *d, const opecom_session *c, size_t n) {
    size_t total = n + d->n_closed;
    if (total > d->cap_closed) {
        opecom_session *p = realloc(d->closed, total * sizeof *p);
        if (p == NULL) {
            fprintf(stderr, "opecom-server: out of memory: %zu closed sessions lost\n", n);
            return;
        }
        d->closed = p;
        d->cap_closed = total;
    }
    memmove(d->closed + n, d->closed, d->n_closed * sizeof *d->closed);
    memcpy(d->closed, c, n * sizeof *c);
    d->n_closed = total;
}

static void *writer_main(void *arg) {
    srv *s = arg;
    srv_db *d = s->db;
    opecom_session *wbuf = NULL;
    size_t wcap = 0;
    int64_t last_tick = srv_now_ms();

    pthread_mutex_lock(&d->mu);
    for (;;) {
        /* wait for jobs, closed sessions to write, the next tick or stop */
        for (;;) {
            int64_t now = srv_now_ms();
            int tick_due = !d->stop && d->replay_done && now - last_tick >= TICK_MS;
            int closed_due = d->n_closed > 0 && (d->stop || now >= d->closed_retry_ms);
            if (d->head != NULL || closed_due || tick_due || d->stop)
                break;
            int64_t until = last_tick + TICK_MS;
            if (d->n_closed > 0 && d->closed_retry_ms < until)
                until = d->closed_retry_ms;
            if (until <= now)
                until = now + 10;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait_ms = until - now;
            ts.tv_sec += (time_t)(wait_ms / 1000);
            ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&d->wake, &d->mu, &ts);
        }
        db_job *jobs = d->head;
        d->head = d->tail = NULL;
        int stopping = d->stop;
        int ticking = d->replay_done && !stopping;
        pthread_mutex_unlock(&d->mu);

        /* 1. events: one transaction for every job queued */
        if (jobs != NULL) {
            int status = write_jobs(s, d, jobs);
            if (status == 0) {
                int64_t now = srv_now_ms();
                for (db_job *j = jobs; j != NULL; j = j->next)
                    live_feed(s, j->ev, j->n, now);
            }
            pthread_mutex_lock(&d->mu);
            for (db_job *j = jobs, *next; j != NULL; j = next) {
                next = j->next; /* j may be gone once done is seen */
                j->status = status;
                j->done = 1;
            }
            pthread_cond_broadcast(&d->done);
            pthread_mutex_unlock(&d->mu);
        }

        /* 2. the clock */
        int64_t now = srv_now_ms();
        if (ticking && now - last_tick >= TICK_MS) {
            live_tick(s, now);
            last_tick = now;
        }

        /* 3. sessions closed by 1. or 2. (or by the replay) */
        pthread_mutex_lock(&d->mu);
        if (d->n_closed > 0 && (stopping || now >= d->closed_retry_ms)) {
            size_t n = take_closed(d, &wbuf, &wcap);
            pthread_mutex_unlock(&d->mu);
            int status = write_closed(s, d, wbuf, n);
            pthread_mutex_lock(&d->mu);
            if (status != 0) {
                if (stopping)
                    fprintf(stderr, "opecom-server: %zu closed sessions not stored\n", n);
                else
                    put_back_closed(d, wbuf, n);
                d->closed_retry_ms = srv_now_ms() + CLOSED_RETRY_MS;
            }
        }
        if (stopping && d->head == NULL && d->n_closed == 0)
            break;
    }
    pthread_mutex_unlock(&d->mu);
    free(wbuf);
    return NULL;
}

/* ===================================================================== *
 * Opening and closing
 * ===================================================================== */

static int exec_sql(sqlite3 *c, const char *sql, char *err, size_t err_size, const char *path) {
    char *msg = NULL;
    if (sqlite3_exec(c, sql, NULL, NULL, &msg) != SQLITE_OK) {
        db_set_err(err, err_size, "database %s: %s", path, msg ? msg : sqlite3_errmsg(c));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* @return the first column of the first row of sql as an integer or text
 * (into buf), or -1. */
static int query_one(sqlite3 *c, const char *sql, sqlite3_int64 *num, char *buf, size_t size) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (num)
            *num = sqlite3_column_int64(st, 0);
        if (buf) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            snprintf(buf, size, "%s", t ? (const char *)t : "");
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

static void db_free(srv_db *d) {
    if (d == NULL)
        return;
    sqlite3_finalize(d->st_session);
    sqlite3_finalize(d->st_pageview);
    sqlite3_finalize(d->st_purchase);
    sqlite3_finalize(d->st_feature);
    sqlite3_close(d->w);
    for (int i = 0; i < d->n_pool; i++)
        sqlite3_close(d->pool[i]);
    free(d->closed);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->pool_mu);
    pthread_cond_destroy(&d->wake);
    pthread_cond_destroy(&d->done);
    free(d);
}

int db_open(srv *s, const char *path, char *err, size_t err_size) {
    s->db = NULL;
    if (strlen(path) >= SRV_PATH_MAX) {
        db_set_err(err, err_size, "database %s: path too long", path);
        return -1;
    }
    srv_db *d = calloc(1, sizeof *d);
    if (d == NULL) {
        db_set_err(err, err_size, "database %s: out of memory", path);
        return -1;
    }
    snprintf(d->path, sizeof d->path, "%s", path);
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->pool_mu, NULL);
    pthread_cond_init(&d->wake, NULL);
    pthread_cond_init(&d->done, NULL);

    if (sqlite3_open_v2(path, &d->w, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        db_set_err(err, err_size, "database %s: %s", path,
                d->w ? sqlite3_errmsg(d->w) : "out of memory");
        db_free(d);
        return -1;
    }
    sqlite3_busy_timeout(d->w, BUSY_TIMEOUT_MS);
    char mode[32] = "";
    if (query_one(d->w, "PRAGMA journal_mode=WAL", NULL, mode, sizeof mode) != 0 ||
        strcmp(mode, "wal") != 0) {
        db_set_err(err, err_size, "database %s: cannot switch to WAL mode: %s", path,
                mode[0] ? mode : sqlite3_errmsg(d->w));
        db_free(d);
        return -1;
    }
    if (exec_sql(d->w, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", err, err_size,
                 path) != 0) {
        db_free(d);
        return -1;
    }
    sqlite3_int64 version = -1;
    if (query_one(d->w, "PRAGMA user_version", &version, NULL, 0) != 0) {
        db_set_err(err, err_size, "database %s: %s", path, sqlite3_errmsg(d->w));
        db_free(d);
        return -1;
    }
    if (version > SCHEMA_VERSION) {
        db_set_err(err, err_size,
                "database %s: schema version %lld is newer than this server's (%d)", path,
                (long long)version, SCHEMA_VERSION);
        db_free(d);
        return -1;
    }
    if (version < SCHEMA_VERSION) {
        char sql[sizeof schema_sql + 128];
        snprintf(sql, sizeof sql, "BEGIN IMMEDIATE; %s PRAGMA user_version=%d; COMMIT;",
                 schema_sql, SCHEMA_VERSION);
        if (exec_sql(d->w, sql, err, err_size, path) != 0) {
            rollback(d);
            db_free(d);
            return -1;
        }
    }
    if (sqlite3_prepare_v3(d->w, sql_session, -1, SQLITE_PREPARE_PERSISTENT, &d->st_session,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(d->w, sql_pageview, -1, SQLITE_PREPARE_PERSISTENT, &d->st_pageview,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(d->w, sql_purchase, -1, SQLITE_PREPARE_PERSISTENT, &d->st_purchase,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(d->w, sql_feature, -1, SQLITE_PREPARE_PERSISTENT, &d->st_feature,
                           NULL) != SQLITE_OK) {
        db_set_err(err, err_size, "database %s: %s", path, sqlite3_errmsg(d->w));
        db_free(d);
        return -1;
    }
    s->db = d;
    int rc = pthread_create(&d->thread, NULL, writer_main, s);
    if (rc != 0) {
        db_set_err(err, err_size, "database %s: cannot start the writer thread: %s", path,
                strerror(rc));
        s->db = NULL;
        db_free(d);
        return -1;
    }
    d->started = 1;
    return 0;
}

void db_close(srv *s) {
    srv_db *d = s->db;
    if (d == NULL)
        return;
    if (d->started) {
        pthread_mutex_lock(&d->mu);
        d->stop = 1;
        pthread_cond_signal(&d->wake);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
    }
    s->db = NULL;
    db_free(d);
}

/* ===================================================================== *
 * Writing: callers
 * ===================================================================== */

int db_submit(srv *s, const srv_event *ev, size_t n) {
    srv_db *d = s->db;
    if (d == NULL)
        return -1;
    if (n == 0)
        return 0;
    db_job job = {.ev = ev, .n = n, .status = -1, .done = 0, .next = NULL};
    pthread_mutex_lock(&d->mu);
    if (d->stop) {
        pthread_mutex_unlock(&d->mu);
        return -1;
    }
    if (d->tail)
        d->tail->next = &job;
    else
        d->head = &job;
    d->tail = &job;
    pthread_cond_signal(&d->wake);
    while (!job.done)
        pthread_cond_wait(&d->done, &d->mu);
    pthread_mutex_unlock(&d->mu);
    return job.status;
}

void db_store_closed(srv *s, const opecom_session *session) {
    srv_db *d = s->db;
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    if (d->n_closed == d->cap_closed) {
        size_t cap = d->cap_closed ? 2 * d->cap_closed : 64;
        opecom_session *p = realloc(d->closed, cap * sizeof *p);
        if (p == NULL) {
            pthread_mutex_unlock(&d->mu);
            fprintf(stderr, "opecom-server: out of memory: closed session %s lost\n",
                    session->session_id);
            return;
        }
        d->closed = p;
        d->cap_closed = cap;
    }
    d->closed[d->n_closed++] = *session;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->mu);
}
