/*
 * store_mariadb_write.c - the MariaDB store's writing side (store_mariadb.h):
 * the writer thread's connection and prepared statements, kept across
 * calls, and the two writes, each one transaction (append, put_closed).
 * A lost connection is replaced (see in_transaction).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store_mariadb.h"

/* ===================================================================== *
 * The writer's connection
 * ===================================================================== */

static const char sql_seq[] = "UPDATE log_head SET seq = LAST_INSERT_ID(seq + 1) WHERE one = 1";
/* The session row, created or merged as the SQLite backend does; the
 * LAST_INSERT_ID(id) makes the row's id the statement's insert id either way. */
static const char sql_session[] =
    "INSERT INTO sessions (visitor_id, session_id, variant, first_ms, last_ms, os, browser,"
    " region, traffic_type, page_views, purchases, revenue)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id),"
    " first_ms = LEAST(first_ms, VALUES(first_ms)), last_ms = GREATEST(last_ms, VALUES(last_ms)),"
    " os = COALESCE(os, VALUES(os)), browser = COALESCE(browser, VALUES(browser)),"
    " region = COALESCE(region, VALUES(region)),"
    " traffic_type = COALESCE(traffic_type, VALUES(traffic_type)),"
    " page_views = page_views + VALUES(page_views),"
    " purchases = purchases + VALUES(purchases), revenue = revenue + VALUES(revenue)";
static const char sql_pageview[] =
    "INSERT INTO page_views (session, ts, page_type, page_id, duration, seq)"
    " VALUES (?, ?, ?, ?, ?, ?)";
static const char sql_purchase[] =
    "INSERT INTO purchases (session, ts, revenue, seq) VALUES (?, ?, ?, ?)";
/* The first writer wins: a duplicate part changes nothing (unlike INSERT
 * IGNORE, every other error is still one). */
static const char sql_feature[] =
    "INSERT INTO session_features (session, part, closed_ms, start_ms, end_ms,"
    " n_events, revenue_total, administrative, administrative_duration, informational,"
    " informational_duration, product_related, product_related_duration, bounce_rates,"
    " exit_rates, page_values, special_day, month, operating_systems, browser, region,"
    " traffic_type, visitor_type, weekend, revenue)"
    " SELECT id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
    " FROM sessions WHERE visitor_id = ? AND session_id = ?"
    " ON DUPLICATE KEY UPDATE part = part";

void mdb_writer_drop(md_db *d) {
    MYSQL_STMT **st[] = {&d->st_seq, &d->st_session, &d->st_pageview, &d->st_purchase,
                         &d->st_feature};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        if (*st[i])
            mysql_stmt_close(*st[i]);
        *st[i] = NULL;
    }
    if (d->w)
        mysql_close(d->w);
    d->w = NULL;
}

static int prepare(MYSQL *c, MYSQL_STMT **st, const char *sql, char *err) {
    *st = mysql_stmt_init(c);
    if (*st == NULL) {
        set_err(err, "mariadb: out of memory");
        return -1;
    }
    if (mysql_stmt_prepare(*st, sql, (unsigned long)strlen(sql)) != 0) {
        set_err(err, "mariadb: preparing a statement: %s", mysql_stmt_error(*st));
        return -1;
    }
    return 0;
}

/* Connects the writer when it has no connection. */
int mdb_writer_ready(md_db *d, char *err) {
    if (d->w != NULL)
        return 0;
    d->w = mdb_connect(&d->t, err);
    if (d->w == NULL || prepare(d->w, &d->st_seq, sql_seq, err) != 0 ||
        prepare(d->w, &d->st_session, sql_session, err) != 0 ||
        prepare(d->w, &d->st_pageview, sql_pageview, err) != 0 ||
        prepare(d->w, &d->st_purchase, sql_purchase, err) != 0 ||
        prepare(d->w, &d->st_feature, sql_feature, err) != 0) {
        mdb_writer_drop(d);
        return -1;
    }
    return 0;
}

static int stmt_run(MYSQL_STMT *st, MYSQL_BIND *b, unsigned *code, const char *what, char *err) {
    if ((b != NULL && mysql_stmt_bind_param(st, b) != 0) || mysql_stmt_execute(st) != 0) {
        *code = mysql_stmt_errno(st);
        set_err(err, "mariadb: %s: %s", what, mysql_stmt_error(st));
        return -1;
    }
    return 0;
}

typedef int (*tx_body)(md_db *d, void *ctx, unsigned *code, char *err);

/* Runs body in one transaction on the writer's connection. The server
 * undid all of it when the connection was lost before COMMIT was sent
 * (replaced, then the transaction runs once more) and when InnoDB chose
 * it as a deadlock's victim (a replica's put_closed against another's
 * append: runs once more). A connection that cannot roll back is dropped
 * (the next call reconnects). A lost COMMIT is not retried: it may have
 * been applied. */
static int in_transaction(md_db *d, tx_body body, void *ctx, const char *what,
                          char *err) {
    for (int attempt = 0;; attempt++) {
        if (mdb_writer_ready(d, err) != 0)
            return -1;
        unsigned code = 0;
        int committing = 0;
        if (mysql_real_query(d->w, "START TRANSACTION", 17) != 0) {
            code = mysql_errno(d->w);
            set_err(err, "mariadb: %s: %s", what, mysql_error(d->w));
        } else if (body(d, ctx, &code, err) == 0) {
            committing = 1;
            if (mysql_commit(d->w) == 0)
                return 0;
            code = mysql_errno(d->w);
            set_err(err, "mariadb: %s: COMMIT: %s", what, mysql_error(d->w));
        }
        int lost = is_lost(code);
        if (lost || mysql_rollback(d->w) != 0)
            mdb_writer_drop(d);
        int undone = (lost && !committing) || code == ER_LOCK_DEADLOCK;
        if (!undone || attempt > 0)
            return -1;
    }
}

typedef struct append_ctx {
    const srv_store_span *spans;
    size_t n_spans;
    int64_t seq;
} append_ctx;

static int append_body(md_db *d, void *ctx, unsigned *code, char *err) {
    append_ctx *a = ctx;
    const srv_store_span *spans = a->spans;

    if (stmt_run(d->st_seq, NULL, code, "taking the next log number", err) != 0)
        return -1;
    if (mysql_stmt_affected_rows(d->st_seq) != 1) {
        set_err(err, "mariadb: log_head has no row (the schema is incomplete)");
        return -1;
    }
    int64_t s = (int64_t)mysql_stmt_insert_id(d->st_seq);
    MYSQL_BIND b[12];
    for (size_t k = 0; k < a->n_spans; k++)
        for (size_t i = 0; i < spans[k].n; i++) {
            const srv_event *e = &spans[k].ev[i];
            int pv = e->type == SRV_PAGEVIEW;
            if ((!pv && e->type != SRV_PURCHASE) ||
                (pv && (e->page_type < 1 || e->page_type > 3))) {
                set_err(err, "mariadb: storing events: event %zu of part %zu: %s", i, k,
                        pv ? "page_type is not 1..3" : "type is not page view or purchase");
                return -1;
            }
            int64_t npv = pv, npu = !pv;
            double rev = pv ? 0.0 : e->revenue;
            bind_text(&b[0], e->visitor_id);
            bind_text(&b[1], e->session_id);
            bind_text(&b[2], e->variant ? e->variant : "");
            bind_i64(&b[3], &e->ts);
            bind_i64(&b[4], &e->ts);
            bind_text_or_null(&b[5], e->os);
            bind_text_or_null(&b[6], e->browser);
            bind_text_or_null(&b[7], e->region);
            bind_text_or_null(&b[8], e->traffic_type);
            bind_i64(&b[9], &npv);
            bind_i64(&b[10], &npu);
            bind_f64(&b[11], &rev);
            if (stmt_run(d->st_session, b, code, "storing a session", err) != 0)
                return -1;
            int64_t id = (int64_t)mysql_stmt_insert_id(d->st_session);
            if (pv) {
                bind_i64(&b[0], &id);
                bind_i64(&b[1], &e->ts);
                bind_text(&b[2], page_type_text[e->page_type]);
                bind_text(&b[3], e->page_id);
                bind_f64(&b[4], &e->duration);
                bind_i64(&b[5], &s);
                if (stmt_run(d->st_pageview, b, code, "storing a page view", err) != 0)
                    return -1;
            } else {
                bind_i64(&b[0], &id);
                bind_i64(&b[1], &e->ts);
                bind_f64(&b[2], &e->revenue);
                bind_i64(&b[3], &s);
                if (stmt_run(d->st_purchase, b, code, "storing a purchase", err) != 0)
                    return -1;
            }
        }
    a->seq = s;
    return 0;
}

typedef struct closed_ctx {
    const srv_closed *c;
    size_t n;
} closed_ctx;

static int closed_body(md_db *d, void *ctx, unsigned *code, char *err) {
    const srv_closed *c = ((closed_ctx *)ctx)->c;
    size_t n = ((closed_ctx *)ctx)->n;
    MYSQL_BIND b[26];
    for (size_t i = 0; i < n; i++) {
        const opecom_session *x = &c[i].s;
        int64_t part = x->part, n_events = x->n_events;
        int64_t codes[4] = {x->operating_systems, x->browser, x->region, x->traffic_type};
        int64_t weekend = x->weekend != 0, revenue = x->revenue != 0;
        /* page counts are INTEGER columns */
        int64_t adm = (int64_t)x->administrative, inf = (int64_t)x->informational;
        int64_t pro = (int64_t)x->product_related;
        bind_i64(&b[0], &part);
        bind_i64(&b[1], &c[i].closed_ms);
        bind_i64(&b[2], &x->start_ms);
        bind_i64(&b[3], &x->end_ms);
        bind_i64(&b[4], &n_events);
        bind_f64(&b[5], &x->revenue_total);
        bind_i64(&b[6], &adm);
        bind_f64(&b[7], &x->administrative_duration);
        bind_i64(&b[8], &inf);
        bind_f64(&b[9], &x->informational_duration);
        bind_i64(&b[10], &pro);
        bind_f64(&b[11], &x->product_related_duration);
        bind_f64(&b[12], &x->bounce_rates);
        bind_f64(&b[13], &x->exit_rates);
        bind_f64(&b[14], &x->page_values);
        bind_f64(&b[15], &x->special_day);
        bind_text(&b[16], x->month ? x->month : "Jan");
        for (int k = 0; k < 4; k++)
            bind_i64(&b[17 + k], &codes[k]);
        bind_text(&b[21], x->visitor_type ? x->visitor_type : "Other");
        bind_i64(&b[22], &weekend);
        bind_i64(&b[23], &revenue);
        bind_text(&b[24], x->visitor_id);
        bind_text(&b[25], x->session_id);
        if (stmt_run(d->st_feature, b, code, "storing closed sessions", err) != 0)
            return -1;
    }
    return 0;
}

int mdb_append(void *db, const srv_store_span *spans, size_t n_spans, int64_t *seq,
                     char *err) {
    append_ctx a = {spans, n_spans, 0};
    if (in_transaction(db, append_body, &a, "storing events", err) != 0)
        return -1;
    *seq = a.seq;
    return 0;
}

int mdb_put_closed(void *db, const srv_closed *c, size_t n, char *err) {
    closed_ctx a = {c, n};
    return in_transaction(db, closed_body, &a, "storing closed sessions", err);
}
