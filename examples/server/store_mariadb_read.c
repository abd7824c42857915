/*
 * store_mariadb_read.c - the MariaDB store's reading side (store_mariadb.h):
 * the log, streamed row by row (the binary protocol without storing the
 * result: the client holds one chunk of events, whatever the log's size),
 * the variant counts, a closed session's features and the log's head. Each runs
 * on a pooled connection and is retried once on a new one when the
 * connection was lost before anything reached the caller.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store_mariadb.h"

static const char *const month_text[12] = {"Jan", "Feb", "Mar", "Apr", "May", "June",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const visitor_type_text[3] = {"New_Visitor", "Returning_Visitor", "Other"};

/* ===================================================================== *
 * Reading
 * ===================================================================== */

typedef struct read_status {
    unsigned code;  /* the error's number */
    int keep;       /* 1 the connection goes back to the pool, 0 closed, -1 already closed */
    int delivered;  /* something reached the caller: no retry */
} read_status;

typedef int (*read_body)(MYSQL *c, void *ctx, read_status *rs, char *err);

/* Runs body on a pooled connection; once more on a new one when the
 * connection was lost before anything was delivered. */
static int with_reader(md_db *d, read_body body, void *ctx, char *err) {
    for (int attempt = 0;; attempt++) {
        MYSQL *c = mdb_reader_get(d, err);
        if (c == NULL)
            return -1;
        read_status rs = {0, 1, 0};
        int rc = body(c, ctx, &rs, err);
        int lost = rc != 0 && is_lost(rs.code);
        /* keep -1: the body closed it already */
        mdb_reader_put(d, rs.keep < 0 ? NULL : c, rs.keep > 0 && !lost);
        if (rc == 0 || !lost || rs.delivered || attempt > 0)
            return rc;
    }
}

/* Prepares sql, binds params and results and executes it. @return the
 * statement, or NULL with the error in rs and err. */
static MYSQL_STMT *run_query(MYSQL *c, const char *sql, MYSQL_BIND *params, MYSQL_BIND *results,
                             const char *what, read_status *rs, char *err) {
    MYSQL_STMT *st = mysql_stmt_init(c);
    if (st == NULL) {
        rs->code = mysql_errno(c);
        set_err(err, "mariadb: %s: out of memory", what);
        return NULL;
    }
    if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)) != 0 ||
        (params != NULL && mysql_stmt_bind_param(st, params) != 0) ||
        mysql_stmt_bind_result(st, results) != 0 || mysql_stmt_execute(st) != 0) {
        rs->code = mysql_stmt_errno(st);
        set_err(err, "mariadb: %s: %s", what, mysql_stmt_error(st));
        mysql_stmt_close(st);
        return NULL;
    }
    return st;
}

/* Fetches a row: 1 a row, 0 no more, -1 error (in rs and err). A value
 * too long for its buffer is caught by copy_col. */
static int fetch(MYSQL_STMT *st, const char *what, read_status *rs, char *err) {
    int rc = mysql_stmt_fetch(st);
    if (rc == 0 || rc == MYSQL_DATA_TRUNCATED)
        return 1;
    if (rc == MYSQL_NO_DATA)
        return 0;
    rs->code = mysql_stmt_errno(st);
    set_err(err, "mariadb: %s: %s", what, mysql_stmt_error(st));
    return -1;
}

/* ---- the log ---- */

/* The log is read in ranges of LOG_STEP commits, each one query: the
 * server sorts a bounded range (through the (seq, ts, id) indexes) instead
 * of the whole log at once, which could outlast IO_TIMEOUT_S before the
 * first row on a large log. */
#define LOG_STEP 256

static const char sql_head[] = "SELECT seq FROM log_head WHERE one = 1";
static const char sql_log[] =
    "SELECT e.seq, e.kind, e.ts, s.visitor_id, s.session_id, e.page_type, e.page_id,"
    " e.duration, e.revenue, s.os, s.browser, s.region, s.traffic_type"
    " FROM (SELECT session, seq, ts, 1 AS kind, id, page_type, page_id, duration,"
    "              CAST(0 AS DOUBLE) AS revenue FROM page_views WHERE seq > ? AND seq <= ?"
    "       UNION ALL"
    "       SELECT session, seq, ts, 2, id, NULL, NULL, CAST(0 AS DOUBLE), revenue"
    "       FROM purchases WHERE seq > ? AND seq <= ?) e"
    " JOIN sessions s ON s.id = e.session"
    " ORDER BY e.seq, e.ts, e.kind, e.id";

typedef struct log_ctx {
    int64_t after;
    srv_log_fn fn;
    void *ctx;
    int64_t last;
    srv_event *chunk;
} log_ctx;

enum { L_VISITOR, L_SESSION, L_PAGE_TYPE, L_PAGE_ID, L_OS, L_BROWSER, L_REGION, L_TRAFFIC, L_N };

/* The log's head: every commit up to it is visible to what follows (it
 * was committed before the one that wrote the head took the row lock). */
static int log_head(MYSQL *c, int64_t *head, read_status *rs, char *err) {
    static const char what[] = "reading the log head";
    my_bool nul;
    MYSQL_BIND r[1];
    bind_out_i64(&r[0], head, &nul);
    MYSQL_STMT *st = run_query(c, sql_head, NULL, r, what, rs, err);
    if (st == NULL)
        return -1;
    int rc = fetch(st, what, rs, err);
    mysql_stmt_close(st);
    if (rc == 0)
        set_err(err, "mariadb: %s: log_head has no row", what);
    return rc == 1 ? 0 : -1;
}

/* Streams the rows after lc->after up to the head, range by range (the
 * binary protocol fetches rows one at a time from the socket: nothing is
 * held but the chunk). */
static int log_body(MYSQL *c, void *ctx, read_status *rs, char *err) {
    log_ctx *lc = ctx;
    static const char what[] = "reading the log";
    char vbuf[OPECOM_ID_MAX], sbuf[OPECOM_ID_MAX], tbuf[16], pbuf[OPECOM_PAGE_ID_MAX];
    char dev[4][OPECOM_CODE_TEXT_MAX];
    md_col col[L_N] = {{vbuf, sizeof vbuf, 0, 0, 0},  {sbuf, sizeof sbuf, 0, 0, 0},
                       {tbuf, sizeof tbuf, 0, 0, 0},  {pbuf, sizeof pbuf, 0, 0, 0},
                       {dev[0], sizeof dev[0], 0, 0, 0}, {dev[1], sizeof dev[1], 0, 0, 0},
                       {dev[2], sizeof dev[2], 0, 0, 0}, {dev[3], sizeof dev[3], 0, 0, 0}};
    int64_t head = 0, lo = lc->after, hi = 0, seq = 0, kind = 0, ts = 0;
    double duration = 0, revenue = 0;
    if (log_head(c, &head, rs, err) != 0)
        return -1;
    if (head <= lc->after)
        return 0;
    my_bool nul[5];
    MYSQL_BIND p[4], r[13];
    bind_i64(&p[0], &lo);
    bind_i64(&p[1], &hi);
    bind_i64(&p[2], &lo);
    bind_i64(&p[3], &hi);
    bind_out_i64(&r[0], &seq, &nul[0]);
    bind_out_i64(&r[1], &kind, &nul[1]);
    bind_out_i64(&r[2], &ts, &nul[2]);
    bind_out_text(&r[3], &col[L_VISITOR]);
    bind_out_text(&r[4], &col[L_SESSION]);
    bind_out_text(&r[5], &col[L_PAGE_TYPE]);
    bind_out_text(&r[6], &col[L_PAGE_ID]);
    bind_out_f64(&r[7], &duration, &nul[3]);
    bind_out_f64(&r[8], &revenue, &nul[4]);
    for (int k = 0; k < 4; k++)
        bind_out_text(&r[9 + k], &col[L_OS + k]);
    MYSQL_STMT *st = NULL;
    size_t n = 0;
    int rc = 0, status = 0, stopped = 0;
    for (; status == 0 && !stopped && lo < head; lo = hi) {
        hi = head - lo > LOG_STEP ? lo + LOG_STEP : head;
        if (st == NULL) {
            if ((st = run_query(c, sql_log, p, r, what, rs, err)) == NULL)
                return -1;
        } else if (mysql_stmt_execute(st) != 0) {
            rs->code = mysql_stmt_errno(st);
            set_err(err, "mariadb: %s: %s", what, mysql_stmt_error(st));
            status = -1;
            break;
        }
        while ((rc = fetch(st, what, rs, err)) == 1) {
            srv_event *e = &lc->chunk[n];
            memset(e, 0, sizeof *e);
            e->type = kind == 1 ? SRV_PAGEVIEW : SRV_PURCHASE;
            e->ts = ts;
            int bad = copy_col(e->visitor_id, sizeof e->visitor_id, &col[L_VISITOR]) |
                      copy_col(e->session_id, sizeof e->session_id, &col[L_SESSION]) |
                      copy_col(e->os, sizeof e->os, &col[L_OS]) |
                      copy_col(e->browser, sizeof e->browser, &col[L_BROWSER]) |
                      copy_col(e->region, sizeof e->region, &col[L_REGION]) |
                      copy_col(e->traffic_type, sizeof e->traffic_type, &col[L_TRAFFIC]);
            if (e->type == SRV_PAGEVIEW) {
                char pt[16];
                bad |= copy_col(pt, sizeof pt, &col[L_PAGE_TYPE]) |
                       copy_col(e->page_id, sizeof e->page_id, &col[L_PAGE_ID]);
                for (int k = 1; k <= 3; k++)
                    if (strcmp(pt, page_type_text[k]) == 0)
                        e->page_type = k;
                e->duration = duration;
            } else {
                e->revenue = revenue;
            }
            if (bad) {
                set_err(err, "mariadb: %s: a stored text at log number %lld is longer than"
                             " an event holds", what, (long long)seq);
                status = -1;
                break;
            }
            if (++n == SRV_STORE_LOG_CHUNK) {
                rs->delivered = 1;
                stopped = lc->fn(lc->ctx, lc->chunk, n, seq) != 0;
                lc->last = seq;
                n = 0;
                if (stopped)
                    break;
            }
        }
        if (rc < 0)
            status = -1;
    }
    if (status == 0 && !stopped && n > 0) {
        rs->delivered = 1;
        lc->fn(lc->ctx, lc->chunk, n, seq);
        lc->last = seq;
    }
    if (rc == 1) {
        /* rows left unread: closing the connection is quicker than
         * reading them all off the socket */
        mysql_close(c);
        rs->keep = -1;
    }
    if (st != NULL)
        mysql_stmt_close(st);
    return status;
}

int mdb_read_log(void *db, int64_t after, srv_log_fn fn, void *ctx, int64_t *last,
                       char *err) {
    *last = after;
    log_ctx lc = {after, fn, ctx, after, malloc(SRV_STORE_LOG_CHUNK * sizeof(srv_event))};
    if (lc.chunk == NULL) {
        set_err(err, "mariadb: reading the log: out of memory");
        return -1;
    }
    int rc = with_reader(db, log_body, &lc, err);
    *last = lc.last;
    free(lc.chunk);
    return rc;
}

/* ---- variant counts ---- */

typedef struct counts_ctx {
    const char *variant;
    int64_t sessions, conversions;
} counts_ctx;

static int counts_body(MYSQL *c, void *ctx, read_status *rs, char *err) {
    counts_ctx *cc = ctx;
    static const char what[] = "counting a variant's sessions";
    my_bool nul[2];
    MYSQL_BIND p[1], r[2];
    bind_text(&p[0], cc->variant);
    bind_out_i64(&r[0], &cc->sessions, &nul[0]);
    bind_out_i64(&r[1], &cc->conversions, &nul[1]);
    MYSQL_STMT *st = run_query(c,
                               "SELECT CAST(COUNT(*) AS SIGNED),"
                               " CAST(COALESCE(SUM(purchases > 0), 0) AS SIGNED)"
                               " FROM sessions WHERE variant = ?",
                               p, r, what, rs, err);
    if (st == NULL)
        return -1;
    int rc = fetch(st, what, rs, err);
    if (rc == 0)
        set_err(err, "mariadb: %s: no row", what);
    mysql_stmt_close(st);
    return rc == 1 ? 0 : -1;
}

int mdb_variant_counts(void *db, const char *variant, int64_t *sessions,
                             int64_t *conversions, char *err) {
    counts_ctx cc = {variant, 0, 0};
    int rc = with_reader(db, counts_body, &cc, err);
    *sessions = rc == 0 ? cc.sessions : 0;
    *conversions = rc == 0 ? cc.conversions : 0;
    return rc;
}

/* ---- a closed session ---- */

#define SQL_CLOSED_COLUMNS                                                                   \
    "SELECT s.visitor_id, s.session_id, f.part, f.n_events, f.start_ms, f.end_ms,"           \
    " f.revenue_total, f.administrative, f.administrative_duration, f.informational,"        \
    " f.informational_duration, f.product_related, f.product_related_duration,"              \
    " f.bounce_rates, f.exit_rates, f.page_values, f.special_day, f.month,"                  \
    " f.operating_systems, f.browser, f.region, f.traffic_type, f.visitor_type,"             \
    " f.weekend, f.revenue"                                                                  \
    " FROM session_features f JOIN sessions s ON s.id = f.session WHERE s.session_id = ?"
#define SQL_CLOSED_LAST " ORDER BY f.closed_ms DESC, f.part DESC LIMIT 1"

typedef struct closed_read_ctx {
    const char *visitor_id, *session_id;
    opecom_session *out;
    int found;
} closed_read_ctx;

/* The static text equal to t among table[n], or table[fallback]. */
static const char *static_text(const char *t, const char *const *table, int n, int fallback) {
    for (int i = 0; i < n; i++)
        if (strcmp(t, table[i]) == 0)
            return table[i];
    return table[fallback];
}

static int closed_read_body(MYSQL *c, void *ctx, read_status *rs, char *err) {
    closed_read_ctx *cc = ctx;
    static const char what[] = "reading a closed session";
    opecom_session *o = cc->out;
    char vbuf[OPECOM_ID_MAX], sbuf[OPECOM_ID_MAX], mbuf[8], tbuf[24];
    md_col col[4] = {{vbuf, sizeof vbuf, 0, 0, 0},
                     {sbuf, sizeof sbuf, 0, 0, 0},
                     {mbuf, sizeof mbuf, 0, 0, 0},
                     {tbuf, sizeof tbuf, 0, 0, 0}};
    int64_t part = 0, n_events = 0, codes[4] = {0}, weekend = 0, revenue = 0;
    double *num[10] = {&o->administrative, &o->administrative_duration, &o->informational,
                       &o->informational_duration, &o->product_related,
                       &o->product_related_duration, &o->bounce_rates, &o->exit_rates,
                       &o->page_values, &o->special_day};
    my_bool nul[25];
    MYSQL_BIND p[2], r[25];
    memset(o, 0, sizeof *o);
    bind_text(&p[0], cc->session_id);
    if (cc->visitor_id)
        bind_text(&p[1], cc->visitor_id);
    bind_out_text(&r[0], &col[0]);
    bind_out_text(&r[1], &col[1]);
    bind_out_i64(&r[2], &part, &nul[2]);
    bind_out_i64(&r[3], &n_events, &nul[3]);
    bind_out_i64(&r[4], &o->start_ms, &nul[4]);
    bind_out_i64(&r[5], &o->end_ms, &nul[5]);
    bind_out_f64(&r[6], &o->revenue_total, &nul[6]);
    for (int k = 0; k < 10; k++)
        bind_out_f64(&r[7 + k], num[k], &nul[7 + k]);
    bind_out_text(&r[17], &col[2]);
    for (int k = 0; k < 4; k++)
        bind_out_i64(&r[18 + k], &codes[k], &nul[18 + k]);
    bind_out_text(&r[22], &col[3]);
    bind_out_i64(&r[23], &weekend, &nul[23]);
    bind_out_i64(&r[24], &revenue, &nul[24]);
    MYSQL_STMT *st = run_query(
        c, cc->visitor_id ? SQL_CLOSED_COLUMNS " AND s.visitor_id = ?" SQL_CLOSED_LAST
                          : SQL_CLOSED_COLUMNS SQL_CLOSED_LAST,
        p, r, what, rs, err);
    if (st == NULL)
        return -1;
    int rc = fetch(st, what, rs, err);
    mysql_stmt_close(st);
    if (rc < 0)
        return -1;
    cc->found = rc;
    if (rc == 0)
        return 0;
    char month[8], vtype[24];
    if (copy_col(o->visitor_id, sizeof o->visitor_id, &col[0]) != 0 ||
        copy_col(o->session_id, sizeof o->session_id, &col[1]) != 0 ||
        copy_col(month, sizeof month, &col[2]) != 0 ||
        copy_col(vtype, sizeof vtype, &col[3]) != 0) {
        set_err(err, "mariadb: %s: a stored text is longer than a session holds", what);
        return -1;
    }
    o->part = (uint32_t)part;
    o->n_events = (uint32_t)n_events;
    o->month = static_text(month, month_text, 12, 0);
    o->operating_systems = (uint16_t)codes[0];
    o->browser = (uint16_t)codes[1];
    o->region = (uint16_t)codes[2];
    o->traffic_type = (uint16_t)codes[3];
    o->visitor_type = static_text(vtype, visitor_type_text, 3, 2);
    o->weekend = weekend != 0;
    o->revenue = revenue != 0;
    return 0;
}

int mdb_closed_session(void *db, const char *visitor_id, const char *session_id,
                             opecom_session *out, char *err) {
    closed_read_ctx cc = {visitor_id, session_id, out, 0};
    if (with_reader(db, closed_read_body, &cc, err) != 0)
        return -1;
    return cc.found;
}

/* ---- the head (readiness, read-your-writes) ---- */

static int head_body(MYSQL *c, void *ctx, read_status *rs, char *err) {
    return log_head(c, ctx, rs, err);
}

int mdb_head(void *db, int64_t *head, char *err) {
    return with_reader(db, head_body, head, err);
}
