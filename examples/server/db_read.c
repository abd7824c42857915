/*
 * db_read.c - the reading side of opecom-server's database: the replay of
 * every stored event into the sessionizer at start-up (db_replay), the
 * per-variant counts of /api/experiments (db_variant_counts) and the
 * stored features of a closed session (db_closed_session).
 *
 * Each goes through a read-only connection taken from a small pool (opened
 * on demand, at most POOL_MAX kept); WAL lets them run while db.c's writer
 * commits. The replay feeds live.c in chunks of REPLAY_CHUNK events and,
 * done or failed, lets the writer start moving the sessionizer's clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "db_internal.h"
#include "server.h"

#define REPLAY_CHUNK 1024

static const char *const month_text[12] = {"Jan", "Feb", "Mar", "Apr", "May", "June",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const visitor_type_text[3] = {"New_Visitor", "Returning_Visitor", "Other"};

/* ===================================================================== *
 * Read-only connections
 * ===================================================================== */

static sqlite3 *reader_get(srv_db *d) {
    sqlite3 *c = NULL;
    pthread_mutex_lock(&d->pool_mu);
    if (d->n_pool > 0)
        c = d->pool[--d->n_pool];
    pthread_mutex_unlock(&d->pool_mu);
    if (c != NULL)
        return c;
    if (sqlite3_open_v2(d->path, &c, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        fprintf(stderr, "opecom-server: database %s: %s\n", d->path,
                c ? sqlite3_errmsg(c) : "out of memory");
        sqlite3_close(c);
        return NULL;
    }
    sqlite3_busy_timeout(c, BUSY_TIMEOUT_MS);
    return c;
}

static void reader_put(srv_db *d, sqlite3 *c) {
    pthread_mutex_lock(&d->pool_mu);
    if (d->n_pool < POOL_MAX) {
        d->pool[d->n_pool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&d->pool_mu);
    sqlite3_close(c);
}

/* ===================================================================== *
 * Reading
 * ===================================================================== */

static const char sql_replay[] =
    "SELECT e.kind, e.ts, s.visitor_id, s.session_id, e.page_type, e.page_id, e.duration,"
    " e.revenue, s.os, s.browser, s.region, s.traffic_type"
    " FROM (SELECT session, ts, 1 AS kind, id, page_type, page_id, duration, 0.0 AS revenue"
    "       FROM page_views"
    "       UNION ALL"
    "       SELECT session, ts, 2 AS kind, id, NULL, NULL, 0.0, revenue FROM purchases) e"
    " JOIN sessions s ON s.id = e.session"
    " ORDER BY e.ts, e.kind, e.id";

static void copy_col(char *dst, size_t size, sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", t ? (const char *)t : "");
}

int db_replay(srv *s, char *err, size_t err_size) {
    srv_db *d = s->db;
    if (d == NULL) {
        db_set_err(err, err_size, "replay: the database is not open");
        return -1;
    }
    sqlite3 *c = reader_get(d);
    srv_event *chunk = malloc(REPLAY_CHUNK * sizeof *chunk);
    sqlite3_stmt *st = NULL;
    int status = -1;
    if (c == NULL || chunk == NULL) {
        db_set_err(err, err_size, "replay: %s", c ? "out of memory" : "cannot open the database");
        goto done;
    }
    if (sqlite3_prepare_v2(c, sql_replay, -1, &st, NULL) != SQLITE_OK) {
        db_set_err(err, err_size, "replay: database %s: %s", d->path, sqlite3_errmsg(c));
        goto done;
    }
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        srv_event *e = &chunk[n];
        e->type = sqlite3_column_int(st, 0) == 1 ? SRV_PAGEVIEW : SRV_PURCHASE;
        e->ts = sqlite3_column_int64(st, 1);
        copy_col(e->visitor_id, sizeof e->visitor_id, st, 2);
        copy_col(e->session_id, sizeof e->session_id, st, 3);
        e->page_type = 0;
        e->page_id[0] = '\0';
        e->duration = 0;
        e->revenue = 0;
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
        if (++n == REPLAY_CHUNK) {
            live_feed(s, chunk, n, chunk[n - 1].ts);
            n = 0;
        }
    }
    if (rc != SQLITE_DONE) {
        db_set_err(err, err_size, "replay: database %s: %s", d->path, sqlite3_errmsg(c));
        goto done;
    }
    if (n > 0)
        live_feed(s, chunk, n, chunk[n - 1].ts);
    live_tick(s, srv_now_ms());
    status = 0;
done:
    sqlite3_finalize(st);
    if (c)
        reader_put(d, c);
    free(chunk);
    /* from now on the writer moves the clock (also after a failed replay:
     * the server must not stop closing sessions) */
    pthread_mutex_lock(&d->mu);
    d->replay_done = 1;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->mu);
    return status;
}

int db_variant_counts(srv *s, const char *variant, int64_t *sessions, int64_t *conversions) {
    srv_db *d = s->db;
    *sessions = 0;
    *conversions = 0;
    if (d == NULL)
        return -1;
    sqlite3 *c = reader_get(d);
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
        fprintf(stderr, "opecom-server: database: %s\n", sqlite3_errmsg(c));
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

int db_closed_session(srv *s, const char *visitor_id, const char *session_id,
                      opecom_session *out) {
    srv_db *d = s->db;
    if (d == NULL)
        return -1;
    sqlite3 *c = reader_get(d);
    if (c == NULL)
        return -1;
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
    sqlite3_stmt *st = NULL;
    int status = -1;
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "opecom-server: database: %s\n", sqlite3_errmsg(c));
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
        fprintf(stderr, "opecom-server: database: %s\n", sqlite3_errmsg(c));
    }
    sqlite3_finalize(st);
    reader_put(d, c);
    return status;
}
