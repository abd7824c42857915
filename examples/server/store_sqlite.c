/*
 * store_sqlite.c - the SQLite backend of store.h: one database file in WAL
 * mode with synchronous=FULL, so a COMMIT that returned is on disk.
 *
 * The writer thread alone uses the write connection and its prepared
 * statements. Reads (the log, the experiment counts, a closed session) take
 * a read-only connection from a small pool; WAL lets them run while the
 * writer commits. The schema version lives in PRAGMA user_version: a
 * version 1 file (before the event log) gains the seq columns on opening,
 * its events all in log number 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <sqlite3.h>

#include "server.h"
#include "store.h"

#define BUSY_TIMEOUT_MS 5000
#define POOL_MAX 64

typedef struct sq {
    char path[SRV_PATH_MAX];
    sqlite3 *w; /* the writer's */
    sqlite3_stmt *st_seq, *st_session, *st_pageview, *st_purchase, *st_feature;
    pthread_mutex_t pool_mu;
    sqlite3 *pool[POOL_MAX];
    int n_pool;
} sq;

static const char *const page_type_text[4] = {"", "administrative", "informational",
                                              "product_related"};
static const char *const month_text[12] = {"Jan", "Feb", "Mar", "Apr", "May", "June",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const visitor_type_text[3] = {"New_Visitor", "Returning_Visitor", "Other"};

static int fail(char *err, sqlite3 *c, const char *what) {
    snprintf(err, SRV_STORE_ERR, "sqlite: %.200s: %.280s", what,
             c ? sqlite3_errmsg(c) : "out of memory");
    return -1;
}

/* ===================================================================== *
 * Opening
 * ===================================================================== */

static int exec(sqlite3 *c, const char *sql, char *err) {
    char *msg = NULL;
    if (sqlite3_exec(c, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, SRV_STORE_ERR, "sqlite: %s", msg ? msg : sqlite3_errmsg(c));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int query_int(sqlite3 *c, const char *sql, sqlite3_int64 *out) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* srv_schema_sql with @ID@ replaced. @return malloc'd text or NULL. */
static char *dialect(void) {
    static const char word[] = "@ID@", id[] = "INTEGER PRIMARY KEY";
    size_t n = 0;
    for (const char *p = srv_schema_sql; (p = strstr(p, word)) != NULL; p += sizeof word - 1)
        n++;
    char *out = malloc(strlen(srv_schema_sql) + n * sizeof id + 1), *w = out;
    if (out == NULL)
        return NULL;
    for (const char *p = srv_schema_sql, *q; ; p = q + sizeof word - 1) {
        q = strstr(p, word);
        size_t len = q ? (size_t)(q - p) : strlen(p);
        memcpy(w, p, len);
        w += len;
        if (q == NULL)
            break;
        memcpy(w, id, sizeof id - 1);
        w += sizeof id - 1;
    }
    *w = '\0';
    return out;
}

/* Creates the schema, or upgrades a version 1 file. */
static int make_schema(sqlite3 *c, const char *path, char *err) {
    sqlite3_int64 version = -1;
    if (query_int(c, "PRAGMA user_version", &version) != 0)
        return fail(err, c, path);
    if (version > SRV_STORE_SCHEMA_VERSION) {
        snprintf(err, SRV_STORE_ERR,
                 "sqlite: %s: schema version %lld is newer than this server's (%d)", path,
                 (long long)version, SRV_STORE_SCHEMA_VERSION);
        return -1;
    }
    if (version == SRV_STORE_SCHEMA_VERSION)
        return 0;
    char *schema = dialect();
    if (schema == NULL)
        return fail(err, NULL, path);
    size_t size = strlen(schema) + 512;
    char *sql = malloc(size);
    if (sql == NULL) {
        free(schema);
        return fail(err, NULL, path);
    }
    /* version 1 had no event log: its events become log number 0 */
    snprintf(sql, size, "BEGIN IMMEDIATE; %s %s INSERT OR IGNORE INTO log_head VALUES (1, 0);"
             " PRAGMA user_version=%d; COMMIT;",
             version == 1 ? "ALTER TABLE page_views ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;"
                            " ALTER TABLE purchases ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;"
                            " DROP INDEX IF EXISTS page_views_ts;"
                            " DROP INDEX IF EXISTS purchases_ts;"
                          : "",
             schema, SRV_STORE_SCHEMA_VERSION);
    free(schema);
    int rc = exec(c, sql, err);
    free(sql);
    if (rc != 0 && !sqlite3_get_autocommit(c))
        sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static const char sql_seq[] = "UPDATE log_head SET seq = seq + 1 WHERE one = 1 RETURNING seq";
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
    "INSERT INTO page_views (session, ts, page_type, page_id, duration, seq)"
    " VALUES (?, ?, ?, ?, ?, ?)";
static const char sql_purchase[] =
    "INSERT INTO purchases (session, ts, revenue, seq) VALUES (?, ?, ?, ?)";
static const char sql_feature[] =
    "INSERT OR IGNORE INTO session_features (session, part, closed_ms, start_ms, end_ms,"
    " n_events, revenue_total, administrative, administrative_duration, informational,"
    " informational_duration, product_related, product_related_duration, bounce_rates,"
    " exit_rates, page_values, special_day, month, operating_systems, browser, region,"
    " traffic_type, visitor_type, weekend, revenue)"
    " SELECT id, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
    " ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26"
    " FROM sessions WHERE visitor_id = ?1 AND session_id = ?2";

static void sq_close(void *db) {
    sq *d = db;
    if (d == NULL)
        return;
    sqlite3_finalize(d->st_seq);
    sqlite3_finalize(d->st_session);
    sqlite3_finalize(d->st_pageview);
    sqlite3_finalize(d->st_purchase);
    sqlite3_finalize(d->st_feature);
    sqlite3_close(d->w);
    for (int i = 0; i < d->n_pool; i++)
        sqlite3_close(d->pool[i]);
    pthread_mutex_destroy(&d->pool_mu);
    free(d);
}

static int sq_open(const char *target, void **db, char *err) {
    *db = NULL;
    if (target[0] == '\0' || strlen(target) >= SRV_PATH_MAX) {
        snprintf(err, SRV_STORE_ERR, "sqlite: the path must be 1 to %d bytes", SRV_PATH_MAX - 1);
        return -1;
    }
    sq *d = calloc(1, sizeof *d);
    if (d == NULL)
        return fail(err, NULL, target);
    snprintf(d->path, sizeof d->path, "%s", target);
    pthread_mutex_init(&d->pool_mu, NULL);
    if (sqlite3_open_v2(target, &d->w, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        fail(err, d->w, target);
        sq_close(d);
        return -1;
    }
    sqlite3_busy_timeout(d->w, BUSY_TIMEOUT_MS);
    sqlite3_stmt *st = NULL;
    const unsigned char *mode = NULL;
    int wal = sqlite3_prepare_v2(d->w, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW && (mode = sqlite3_column_text(st, 0)) != NULL &&
              strcmp((const char *)mode, "wal") == 0;
    sqlite3_finalize(st);
    if (!wal) {
        snprintf(err, SRV_STORE_ERR, "sqlite: %s: cannot switch to WAL mode: %s", target,
                 sqlite3_errmsg(d->w));
        sq_close(d);
        return -1;
    }
    if (exec(d->w, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", err) != 0 ||
        make_schema(d->w, target, err) != 0) {
        sq_close(d);
        return -1;
    }
    const unsigned flags = SQLITE_PREPARE_PERSISTENT;
    if (sqlite3_prepare_v3(d->w, sql_seq, -1, flags, &d->st_seq, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(d->w, sql_session, -1, flags, &d->st_session, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(d->w, sql_pageview, -1, flags, &d->st_pageview, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(d->w, sql_purchase, -1, flags, &d->st_purchase, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(d->w, sql_feature, -1, flags, &d->st_feature, NULL) != SQLITE_OK) {
        fail(err, d->w, target);
        sq_close(d);
        return -1;
    }
    *db = d;
    return 0;
}

/* ===================================================================== *
 * Writing (the writer thread)
 * ===================================================================== */

/* Binds text, or NULL for an empty string (device texts). */
static int bind_text_or_null(sqlite3_stmt *st, int i, const char *text) {
    if (text[0] == '\0')
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
}

/* Runs a statement that returns one row; its first column to *out. */
static int step_row(sqlite3_stmt *st, sqlite3_int64 *out) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    /* every change is made by the first step; reset finishes the statement */
    int rc2 = sqlite3_reset(st);
    return rc == SQLITE_ROW ? rc2 : rc == SQLITE_DONE ? SQLITE_ERROR : rc;
}

/* One event: the session row (created or updated), then its page view or
 * purchase. @return SQLITE_OK or the error. */
static int write_event(sq *d, const srv_event *e, sqlite3_int64 seq) {
    sqlite3_stmt *st = d->st_session;
    int pv = e->type == SRV_PAGEVIEW;
    sqlite3_bind_text(st, 1, e->visitor_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, e->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, e->variant ? e->variant : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, e->ts);
    bind_text_or_null(st, 5, e->os);
    bind_text_or_null(st, 6, e->browser);
    bind_text_or_null(st, 7, e->region);
    bind_text_or_null(st, 8, e->traffic_type);
    sqlite3_bind_int(st, 9, pv);
    sqlite3_bind_int(st, 10, !pv);
    sqlite3_bind_double(st, 11, pv ? 0.0 : e->revenue);
    sqlite3_int64 id = 0;
    int rc = step_row(st, &id);
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
        sqlite3_bind_int64(st, 6, seq);
    } else {
        st = d->st_purchase;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, e->ts);
        sqlite3_bind_double(st, 3, e->revenue);
        sqlite3_bind_int64(st, 4, seq);
    }
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int finish(sq *d, int rc, char *err, const char *what) {
    if (rc == SQLITE_OK && (rc = sqlite3_exec(d->w, "COMMIT", NULL, NULL, NULL)) == SQLITE_OK)
        return 0;
    fail(err, d->w, what);
    if (!sqlite3_get_autocommit(d->w))
        sqlite3_exec(d->w, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static int sq_append(void *db, const srv_store_span *spans, size_t n_spans, int64_t *seq,
                     char *err) {
    sq *d = db;
    sqlite3_int64 s = 0;
    int rc = sqlite3_exec(d->w, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = step_row(d->st_seq, &s);
    for (size_t j = 0; rc == SQLITE_OK && j < n_spans; j++)
        for (size_t i = 0; rc == SQLITE_OK && i < spans[j].n; i++)
            rc = write_event(d, &spans[j].ev[i], s);
    if (finish(d, rc, err, "storing events") != 0)
        return -1;
    *seq = s;
    return 0;
}

static int sq_put_closed(void *db, const srv_closed *c, size_t n, char *err) {
    sq *d = db;
    sqlite3_stmt *st = d->st_feature;
    int rc = sqlite3_exec(d->w, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        const opecom_session *x = &c[i].s;
        sqlite3_bind_text(st, 1, x->visitor_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, x->session_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, x->part);
        sqlite3_bind_int64(st, 4, c[i].closed_ms);
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
    return finish(d, rc, err, "storing closed sessions");
}

/* ===================================================================== *
 * Reading (any thread)
 * ===================================================================== */

static sqlite3 *reader_get(sq *d, char *err) {
    sqlite3 *c = NULL;
    pthread_mutex_lock(&d->pool_mu);
    if (d->n_pool > 0)
        c = d->pool[--d->n_pool];
    pthread_mutex_unlock(&d->pool_mu);
    if (c != NULL)
        return c;
    if (sqlite3_open_v2(d->path, &c, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        fail(err, c, d->path);
        sqlite3_close(c);
        return NULL;
    }
    sqlite3_busy_timeout(c, BUSY_TIMEOUT_MS);
    return c;
}

static void reader_put(sq *d, sqlite3 *c) {
    pthread_mutex_lock(&d->pool_mu);
    if (d->n_pool < POOL_MAX) {
        d->pool[d->n_pool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&d->pool_mu);
    sqlite3_close(c);
}

static const char sql_log[] =
    "SELECT e.kind, e.ts, s.visitor_id, s.session_id, e.page_type, e.page_id, e.duration,"
    " e.revenue, s.os, s.browser, s.region, s.traffic_type, e.seq"
    " FROM (SELECT session, ts, 1 AS kind, id, page_type, page_id, duration, 0.0 AS revenue,"
    "       seq FROM page_views WHERE seq > ?1"
    "       UNION ALL"
    "       SELECT session, ts, 2 AS kind, id, NULL, NULL, 0.0, revenue, seq FROM purchases"
    "       WHERE seq > ?1) e"
    " JOIN sessions s ON s.id = e.session"
    " ORDER BY e.seq, e.ts, e.kind, e.id";

static void copy_col(char *dst, size_t size, sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", t ? (const char *)t : "");
}

static void read_event(sqlite3_stmt *st, srv_event *e) {
    memset(e, 0, sizeof *e);
    e->type = sqlite3_column_int(st, 0) == 1 ? SRV_PAGEVIEW : SRV_PURCHASE;
    e->ts = sqlite3_column_int64(st, 1);
    copy_col(e->visitor_id, sizeof e->visitor_id, st, 2);
    copy_col(e->session_id, sizeof e->session_id, st, 3);
    if (e->type == SRV_PAGEVIEW) {
        const unsigned char *pt = sqlite3_column_text(st, 4);
        for (int k = 1; k <= 3; k++)
            if (pt && strcmp((const char *)pt, page_type_text[k]) == 0)
                e->page_type = k;
        copy_col(e->page_id, sizeof e->page_id, st, 5);
        e->duration = sqlite3_column_double(st, 6);
    } else {
        e->revenue = sqlite3_column_double(st, 7);
    }
    copy_col(e->os, sizeof e->os, st, 8);
    copy_col(e->browser, sizeof e->browser, st, 9);
    copy_col(e->region, sizeof e->region, st, 10);
    copy_col(e->traffic_type, sizeof e->traffic_type, st, 11);
}

static int sq_read_log(void *db, int64_t after, srv_log_fn fn, void *ctx, int64_t *last,
                       char *err) {
    sq *d = db;
    *last = after;
    sqlite3 *c = reader_get(d, err);
    if (c == NULL)
        return -1;
    srv_event *chunk = malloc(SRV_STORE_LOG_CHUNK * sizeof *chunk);
    sqlite3_stmt *st = NULL;
    int status = -1, rc = SQLITE_NOMEM;
    if (chunk == NULL || sqlite3_prepare_v2(c, sql_log, -1, &st, NULL) != SQLITE_OK) {
        fail(err, chunk ? c : NULL, "reading the event log");
        goto done;
    }
    sqlite3_bind_int64(st, 1, after);
    size_t n = 0;
    int64_t seq = after;
    int stop = 0;
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_event(st, &chunk[n]);
        seq = sqlite3_column_int64(st, 12);
        if (++n == SRV_STORE_LOG_CHUNK) {
            stop = fn(ctx, chunk, n, seq);
            *last = seq;
            n = 0;
        }
    }
    if (!stop && rc != SQLITE_DONE) {
        fail(err, c, "reading the event log");
        goto done;
    }
    if (n > 0 && !stop)
        fn(ctx, chunk, n, seq);
    *last = seq;
    status = 0;
done:
    sqlite3_finalize(st);
    reader_put(d, c);
    free(chunk);
    return status;
}

static int sq_variant_counts(void *db, const char *variant, int64_t *sessions,
                             int64_t *conversions, char *err) {
    sq *d = db;
    sqlite3 *c = reader_get(d, err);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = NULL;
    int status = -1;
    if (sqlite3_prepare_v2(c,
                           "SELECT count(*), coalesce(sum(purchases > 0), 0) FROM sessions"
                           " WHERE variant = ?",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_text(st, 1, variant, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        *sessions = sqlite3_column_int64(st, 0);
        *conversions = sqlite3_column_int64(st, 1);
        status = 0;
    } else {
        fail(err, c, "counting sessions");
    }
    sqlite3_finalize(st);
    reader_put(d, c);
    return status;
}

/* The static text equal to t among table[n], or table[fallback]. */
static const char *static_text(const unsigned char *t, const char *const *table, int n,
                               int fallback) {
    for (int i = 0; t != NULL && i < n; i++)
        if (strcmp((const char *)t, table[i]) == 0)
            return table[i];
    return table[fallback];
}

static int sq_closed_session(void *db, const char *visitor_id, const char *session_id,
                             opecom_session *out, char *err) {
    static const char sql[] =
        "SELECT s.visitor_id, s.session_id, f.part, f.n_events, f.start_ms, f.end_ms,"
        " f.revenue_total, f.administrative, f.administrative_duration, f.informational,"
        " f.informational_duration, f.product_related, f.product_related_duration,"
        " f.bounce_rates, f.exit_rates, f.page_values, f.special_day, f.month,"
        " f.operating_systems, f.browser, f.region, f.traffic_type, f.visitor_type,"
        " f.weekend, f.revenue"
        " FROM session_features f JOIN sessions s ON s.id = f.session"
        " WHERE s.session_id = ?2 AND (?1 IS NULL OR s.visitor_id = ?1)"
        " ORDER BY f.closed_ms DESC, f.part DESC LIMIT 1";
    sq *d = db;
    sqlite3 *c = reader_get(d, err);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = NULL;
    int status = -1;
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) != SQLITE_OK) {
        fail(err, c, "reading a closed session");
        reader_put(d, c);
        return -1;
    }
    if (visitor_id)
        sqlite3_bind_text(st, 1, visitor_id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 1);
    sqlite3_bind_text(st, 2, session_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        copy_col(out->visitor_id, sizeof out->visitor_id, st, 0);
        copy_col(out->session_id, sizeof out->session_id, st, 1);
        out->part = (uint32_t)sqlite3_column_int64(st, 2);
        out->n_events = (uint32_t)sqlite3_column_int64(st, 3);
        out->start_ms = sqlite3_column_int64(st, 4);
        out->end_ms = sqlite3_column_int64(st, 5);
        out->revenue_total = sqlite3_column_double(st, 6);
        out->administrative = sqlite3_column_double(st, 7);
        out->administrative_duration = sqlite3_column_double(st, 8);
        out->informational = sqlite3_column_double(st, 9);
        out->informational_duration = sqlite3_column_double(st, 10);
        out->product_related = sqlite3_column_double(st, 11);
        out->product_related_duration = sqlite3_column_double(st, 12);
        out->bounce_rates = sqlite3_column_double(st, 13);
        out->exit_rates = sqlite3_column_double(st, 14);
        out->page_values = sqlite3_column_double(st, 15);
        out->special_day = sqlite3_column_double(st, 16);
        out->month = static_text(sqlite3_column_text(st, 17), month_text, 12, 0);
        out->operating_systems = (uint16_t)sqlite3_column_int(st, 18);
        out->browser = (uint16_t)sqlite3_column_int(st, 19);
        out->region = (uint16_t)sqlite3_column_int(st, 20);
        out->traffic_type = (uint16_t)sqlite3_column_int(st, 21);
        out->visitor_type = static_text(sqlite3_column_text(st, 22), visitor_type_text, 3, 2);
        out->weekend = sqlite3_column_int(st, 23) != 0;
        out->revenue = sqlite3_column_int(st, 24) != 0;
        status = 1;
    } else if (rc == SQLITE_DONE) {
        status = 0;
    } else {
        fail(err, c, "reading a closed session");
    }
    sqlite3_finalize(st);
    reader_put(d, c);
    return status;
}

static int sq_head(void *db, int64_t *head, char *err) {
    sq *d = db;
    sqlite3 *c = reader_get(d, err);
    if (c == NULL)
        return -1;
    sqlite3_int64 v = 0;
    int rc = query_int(c, "SELECT seq FROM log_head", &v);
    if (rc != 0)
        fail(err, c, "reading the log head");
    reader_put(d, c);
    *head = v;
    return rc;
}

const srv_store_backend srv_store_sqlite = {
    .scheme = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .append = sq_append,
    .put_closed = sq_put_closed,
    .read_log = sq_read_log,
    .variant_counts = sq_variant_counts,
    .closed_session = sq_closed_session,
    .head = sq_head,
};
