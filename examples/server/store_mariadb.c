/*
 * store_mariadb.c - the MariaDB backend of the store (store.h), through
 * MariaDB Connector/C: the database several replicas of opecom-server
 * share.
 *
 * Target (what follows "mariadb://"):
 *   user[:password]@host[:port]/database
 *   user[:password]@localhost/database?socket=/path/to.sock
 * User, password and socket path are percent-decoded. A message about a
 * malformed target names the part at fault and never quotes the target:
 * a password typed with an unencoded '@' or '/' would show up in it.
 *
 * Connections. The writer thread owns one connection and its prepared
 * statements; reads take one from a pool (at most POOL_MAX open, a reader
 * waits at most POOL_WAIT_MS for one). Every connection runs in strict
 * sql_mode and READ COMMITTED, so each read sees every commit made before
 * it began: a replica polling the log sees the other replicas' commits.
 * Lost connections are replaced by this file (not by MYSQL_OPT_RECONNECT,
 * which would silently drop the session's settings and transaction): a
 * write whose connection was lost before COMMIT was sent is retried once
 * at once on a new connection (the server rolled back what the lost one
 * had begun); otherwise the next call reconnects. A read retries once
 * when it had delivered nothing yet.
 *
 * The log. append numbers its transaction with UPDATE log_head SET seq =
 * LAST_INSERT_ID(seq + 1): the row lock is held until COMMIT, so commits
 * of every replica are numbered in commit order, and a reader never sees
 * a number before every smaller one is committed (store.h).
 *
 * Text columns use utf8mb4_nopad_bin, MariaDB's collation that compares
 * bytes as SQLite does: ids that differ in case or in trailing spaces are
 * different sessions, as they are with SQLite.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>

#include "server.h"
#include "store.h"

#define POOL_MAX 16          /* read connections open at once */
#define POOL_WAIT_MS 5000    /* a reader's wait for one of them */
#define CONNECT_TIMEOUT_S 5
#define IO_TIMEOUT_S 30      /* one read or write on the socket */
#define LOCK_WAIT_S 20       /* < IO_TIMEOUT_S: a lock wait ends with its own error */
#define SCHEMA_LOCK_S 30     /* replicas starting together create the schema in turn */

static const char table_options[] =
    " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin";
static const char id_type[] = "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY";

static const char *const page_type_text[4] = {"", "administrative", "informational",
                                              "product_related"};
static const char *const month_text[12] = {"Jan", "Feb", "Mar", "Apr", "May", "June",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const visitor_type_text[3] = {"New_Visitor", "Returning_Visitor", "Other"};

/* ===================================================================== *
 * State
 * ===================================================================== */

typedef struct md_target {
    char user[128];
    char password[256];
    char host[256];
    unsigned port;           /* 0: the default */
    char database[65];
    char socket[108];        /* "": none (sun_path's size) */
} md_target;

typedef struct md_db {
    md_target t;
    MYSQL *w;                /* the writer's connection; NULL after a loss */
    MYSQL_STMT *st_seq, *st_session, *st_pageview, *st_purchase, *st_feature;

    pthread_mutex_t pool_mu; /* the pool below */
    pthread_cond_t pool_cv;
    MYSQL *idle[POOL_MAX];
    int n_idle, n_open;
} md_db;

/* ===================================================================== *
 * Helpers
 * ===================================================================== */

static void set_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char *err, const char *fmt, ...) {
    if (err == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SRV_STORE_ERR, fmt, ap);
    va_end(ap);
}

static void wipe(void *p, size_t n) {
    volatile unsigned char *b = p;
    while (n--)
        *b++ = 0;
}

/* Errors after which the connection is gone (the server rolled back its
 * open transaction). */
static int is_lost(unsigned code) {
    return code == CR_SERVER_GONE_ERROR || code == CR_SERVER_LOST ||
           code == CR_SERVER_LOST_EXTENDED || code == CR_CONNECTION_ERROR ||
           code == CR_CONN_HOST_ERROR || code == CR_ERR_NET_READ || code == CR_ERR_NET_WRITE ||
           code == ER_CONNECTION_KILLED || code == ER_SERVER_SHUTDOWN;
}

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_failed;

/* mysql_init would do it on first use, but not safely from two threads. */
static void lib_init(void) {
    lib_failed = mysql_library_init(0, NULL, NULL) != 0;
}

static void bind_text(MYSQL_BIND *b, const char *s) {
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = (void *)s;
    b->buffer_length = (unsigned long)strlen(s);
}

/* A device text, NULL when empty (as in the SQLite backend). */
static void bind_text_or_null(MYSQL_BIND *b, const char *s) {
    bind_text(b, s);
    if (s[0] == '\0')
        b->buffer_type = MYSQL_TYPE_NULL;
}

static void bind_i64(MYSQL_BIND *b, const int64_t *v) {
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = (void *)v;
}

static void bind_f64(MYSQL_BIND *b, const double *v) {
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_DOUBLE;
    b->buffer = (void *)v;
}

/* A result column read as text into buf (size bytes, NUL included). */
typedef struct md_col {
    char *buf;
    unsigned long size, len;
    my_bool null, error;
} md_col;

static void bind_out_text(MYSQL_BIND *b, md_col *c) {
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = c->buf;
    b->buffer_length = c->size;
    b->length = &c->len;
    b->is_null = &c->null;
    b->error = &c->error;
}

/* Copies a text column; -1 when it does not fit dst. */
static int copy_col(char *dst, size_t size, const md_col *c) {
    if (c->null) {
        dst[0] = '\0';
        return 0;
    }
    if (c->len >= size || c->len >= c->size)
        return -1;
    memcpy(dst, c->buf, c->len);
    dst[c->len] = '\0';
    return 0;
}

static void bind_out_i64(MYSQL_BIND *b, int64_t *v, my_bool *null) {
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = v;
    b->is_null = null;
}

static void bind_out_f64(MYSQL_BIND *b, double *v, my_bool *null) {
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_DOUBLE;
    b->buffer = v;
    b->is_null = null;
}

/* ===================================================================== *
 * The target
 * ===================================================================== */

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out. @return 0, -1 bad escape or %00,
 * -2 too long. */
static int pct_decode(const char *s, size_t n, char *out, size_t size) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= size)
            return -2;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

static int url_fail(char *err, const char *what) {
    set_err(err, "mariadb URL: %s (expected user:password@host[:port]/database or"
                 " user:password@localhost/database?socket=/path)",
            what);
    return -1;
}

static int parse_target(const char *s, md_target *t, char *err) {
    memset(t, 0, sizeof *t);
    const char *at = strchr(s, '@');
    if (at == NULL)
        return url_fail(err, "no user: user:password@ is missing");
    /* user and password */
    if (strcspn(s, "/?#") < (size_t)(at - s))
        return url_fail(err, "user or password: '/', '?', '#' and '@' in them must be"
                             " percent-encoded");
    const char *colon = memchr(s, ':', (size_t)(at - s));
    const char *uend = colon ? colon : at;
    if (uend == s)
        return url_fail(err, "user: empty");
    int rc = pct_decode(s, (size_t)(uend - s), t->user, sizeof t->user);
    if (rc != 0)
        return url_fail(err, rc == -1 ? "user: bad percent-encoding" : "user: too long");
    if (colon) {
        rc = pct_decode(colon + 1, (size_t)(at - colon - 1), t->password, sizeof t->password);
        if (rc != 0)
            return url_fail(err, rc == -1 ? "password: bad percent-encoding ('%' must be"
                                            " followed by two hex digits, not 00)"
                                          : "password: longer than 255 bytes");
    }
    /* host: a name, an IPv4 address or [IPv6] */
    const char *h = at + 1, *p;
    size_t hn;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        if (close == NULL)
            return url_fail(err, "host: '[' without ']'");
        h++;
        hn = (size_t)(close - h);
        if (hn == 0 || strspn(h, "0123456789abcdefABCDEF:.") != hn)
            return url_fail(err, "host: not an IPv6 address inside [ ]");
        p = close + 1;
    } else {
        hn = strcspn(h, ":/?#");
        if (hn == 0)
            return url_fail(err, "host: empty");
        if (strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != hn)
            return url_fail(err, "host: only letters, digits, '.', '-' and '_' (a password"
                                 " with '@' must be percent-encoded)");
        p = h + hn;
    }
    if (hn >= sizeof t->host)
        return url_fail(err, "host: too long");
    memcpy(t->host, h, hn);
    t->host[hn] = '\0';
    /* port */
    if (*p == ':') {
        p++;
        unsigned long port = 0;
        size_t nd = strspn(p, "0123456789");
        for (size_t i = 0; i < nd && port <= 65535; i++)
            port = port * 10 + (unsigned long)(p[i] - '0');
        if (nd == 0 || port == 0 || port > 65535 || (p[nd] != '/' && p[nd] != '\0'))
            return url_fail(err, "port: not a number 1..65535");
        t->port = (unsigned)port;
        p += nd;
    }
    /* database */
    if (*p != '/')
        return url_fail(err, "database: '/database' after the host is missing");
    p++;
    size_t dn = strcspn(p, "?#");
    if (dn == 0)
        return url_fail(err, "database: empty name");
    if (dn >= sizeof t->database ||
        strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$") != dn)
        return url_fail(err, "database: a name of 1..64 letters, digits, '_' or '$'");
    memcpy(t->database, p, dn);
    p += dn;
    /* parameters */
    if (*p == '#')
        return url_fail(err, "a '#' fragment is not allowed");
    while (*p == '?' || *p == '&') {
        p++;
        size_t pn = strcspn(p, "&#");
        if (pn > 7 && strncmp(p, "socket=", 7) == 0) {
            if (t->socket[0])
                return url_fail(err, "socket: given twice");
            rc = pct_decode(p + 7, pn - 7, t->socket, sizeof t->socket);
            if (rc != 0)
                return url_fail(err, rc == -1 ? "socket: bad percent-encoding"
                                              : "socket: path longer than 107 bytes");
            if (t->socket[0] != '/')
                return url_fail(err, "socket: not an absolute path");
        } else if (pn == 7 && strncmp(p, "socket=", 7) == 0) {
            return url_fail(err, "socket: empty path");
        } else {
            return url_fail(err, "unknown parameter (socket=/path is the only one)");
        }
        p += pn;
    }
    if (*p != '\0')
        return url_fail(err, "a '#' fragment is not allowed");
    if (t->socket[0] && strcmp(t->host, "localhost") != 0)
        return url_fail(err, "socket: only with host localhost");
    if (t->socket[0] && t->port)
        return url_fail(err, "socket: not together with a port");
    return 0;
}

/* ===================================================================== *
 * Connections
 * ===================================================================== */

static int exec_sql(MYSQL *c, const char *sql, const md_target *t, char *err) {
    if (mysql_real_query(c, sql, (unsigned long)strlen(sql)) != 0) {
        set_err(err, "mariadb %s@%s/%s: %s", t->user, t->host, t->database, mysql_error(c));
        return -1;
    }
    MYSQL_RES *r = mysql_store_result(c); /* a SET or DDL has none */
    mysql_free_result(r);
    return 0;
}

/* A new connection with this file's session settings, or NULL. */
static MYSQL *md_connect(const md_target *t, char *err) {
    pthread_once(&lib_once, lib_init);
    MYSQL *c = lib_failed ? NULL : mysql_init(NULL);
    if (c == NULL) {
        set_err(err, "mariadb: cannot start Connector/C (out of memory)");
        return NULL;
    }
    unsigned connect_s = CONNECT_TIMEOUT_S, io_s = IO_TIMEOUT_S, off = 0;
    my_bool on = 1;
    mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
    mysql_options(c, MYSQL_OPT_READ_TIMEOUT, &io_s);
    mysql_options(c, MYSQL_OPT_WRITE_TIMEOUT, &io_s);
    mysql_options(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(c, MYSQL_REPORT_DATA_TRUNCATION, &on);
    mysql_options(c, MYSQL_OPT_LOCAL_INFILE, &off);
    if (!mysql_real_connect(c, t->host, t->user, t->password, t->database, t->port,
                            t->socket[0] ? t->socket : NULL, 0)) {
        set_err(err, "mariadb %s@%s/%s: %s", t->user, t->host, t->database, mysql_error(c));
        mysql_close(c);
        return NULL;
    }
    char sql[512];
    snprintf(sql, sizeof sql,
             "SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,"
             "NO_ZERO_DATE,NO_ZERO_IN_DATE,NO_ENGINE_SUBSTITUTION,ONLY_FULL_GROUP_BY',"
             " SESSION innodb_lock_wait_timeout = %d, SESSION net_write_timeout = %d,"
             " SESSION net_read_timeout = %d",
             LOCK_WAIT_S, IO_TIMEOUT_S, IO_TIMEOUT_S);
    if (exec_sql(c, sql, t, err) != 0 ||
        exec_sql(c, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", t, err) != 0) {
        mysql_close(c);
        return NULL;
    }
    return c;
}

static MYSQL *reader_get(md_db *d, char *err) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += POOL_WAIT_MS / 1000;
    MYSQL *c = NULL;
    pthread_mutex_lock(&d->pool_mu);
    while (d->n_idle == 0 && d->n_open >= POOL_MAX)
        if (pthread_cond_timedwait(&d->pool_cv, &d->pool_mu, &until) != 0 && d->n_idle == 0 &&
            d->n_open >= POOL_MAX) {
            pthread_mutex_unlock(&d->pool_mu);
            set_err(err, "mariadb: all %d read connections stayed busy for %d ms", POOL_MAX,
                    POOL_WAIT_MS);
            return NULL;
        }
    if (d->n_idle > 0) {
        c = d->idle[--d->n_idle];
        pthread_mutex_unlock(&d->pool_mu);
        return c;
    }
    d->n_open++;
    pthread_mutex_unlock(&d->pool_mu);
    c = md_connect(&d->t, err);
    if (c == NULL) {
        pthread_mutex_lock(&d->pool_mu);
        d->n_open--;
        pthread_cond_signal(&d->pool_cv);
        pthread_mutex_unlock(&d->pool_mu);
    }
    return c;
}

/* Gives a connection back; closes it (c may be NULL: closed) when it is not
 * to be used again. */
static void reader_put(md_db *d, MYSQL *c, int keep) {
    pthread_mutex_lock(&d->pool_mu);
    if (keep)
        d->idle[d->n_idle++] = c;
    else
        d->n_open--;
    pthread_cond_signal(&d->pool_cv);
    pthread_mutex_unlock(&d->pool_mu);
    if (!keep && c != NULL)
        mysql_close(c);
}

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

static void writer_drop(md_db *d) {
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
static int writer_ready(md_db *d, char *err) {
    if (d->w != NULL)
        return 0;
    d->w = md_connect(&d->t, err);
    if (d->w == NULL || prepare(d->w, &d->st_seq, sql_seq, err) != 0 ||
        prepare(d->w, &d->st_session, sql_session, err) != 0 ||
        prepare(d->w, &d->st_pageview, sql_pageview, err) != 0 ||
        prepare(d->w, &d->st_purchase, sql_purchase, err) != 0 ||
        prepare(d->w, &d->st_feature, sql_feature, err) != 0) {
        writer_drop(d);
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

/* Runs body in one transaction on the writer's connection. A connection
 * lost before COMMIT was sent is replaced and the transaction run once
 * more; a connection that cannot roll back is dropped (the next call
 * reconnects). */
static int in_transaction(md_db *d, tx_body body, void *ctx, const char *what,
                          char *err) {
    for (int attempt = 0;; attempt++) {
        if (writer_ready(d, err) != 0)
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
        if (is_lost(code) || mysql_rollback(d->w) != 0)
            writer_drop(d);
        if (!is_lost(code) || committing || attempt > 0)
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
            if ((!pv && e->type != SRV_PURCHASE) || (pv && (e->page_type < 1 || e->page_type > 3))) {
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

/* ===================================================================== *
 * Opening: the schema
 * ===================================================================== */

/* One schema statement: @ID@ replaced, table options added to a table. */
static int schema_statement(MYSQL *c, const md_target *t, const char *s, size_t n, char *err) {
    size_t cap = 2 * n + sizeof table_options + 64, o = 0;
    char *sql = malloc(cap);
    if (sql == NULL) {
        set_err(err, "mariadb: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n;) {
        if (n - i >= 4 && memcmp(s + i, "@ID@", 4) == 0) {
            memcpy(sql + o, id_type, sizeof id_type - 1);
            o += sizeof id_type - 1;
            i += 4;
        } else {
            sql[o++] = s[i++];
        }
    }
    sql[o] = '\0';
    if (strncmp(sql, "CREATE TABLE", 12) == 0)
        memcpy(sql + o, table_options, sizeof table_options);
    int rc = exec_sql(c, sql, t, err);
    free(sql);
    return rc;
}

/* Every statement of srv_schema_sql; one ends with ';' at a line end. */
static int create_schema(MYSQL *c, const md_target *t, char *err) {
    const char *s = srv_schema_sql;
    while (*s) {
        s += strspn(s, " \t\r\n");
        const char *end = s;
        while (*end && !(end[0] == ';' && (end[1] == '\n' || end[1] == '\0')))
            end++;
        if (end > s && schema_statement(c, t, s, (size_t)(end - s), err) != 0)
            return -1;
        s = *end ? end + 1 : end;
    }
    return 0;
}

/* The first column of the first row as an integer: 1, 0 no row, -1 error. */
static int query_int(MYSQL *c, const md_target *t, const char *sql, long long *v, char *err) {
    if (mysql_real_query(c, sql, (unsigned long)strlen(sql)) != 0) {
        set_err(err, "mariadb %s@%s/%s: %s", t->user, t->host, t->database, mysql_error(c));
        return -1;
    }
    MYSQL_RES *r = mysql_store_result(c);
    if (r == NULL) {
        set_err(err, "mariadb %s@%s/%s: %s", t->user, t->host, t->database, mysql_error(c));
        return -1;
    }
    MYSQL_ROW row = mysql_fetch_row(r);
    int found = row != NULL && row[0] != NULL;
    if (found)
        *v = strtoll(row[0], NULL, 10);
    mysql_free_result(r);
    return found;
}

/* Under a named lock, so replicas starting together do it in turn. */
static int setup_schema(MYSQL *c, const md_target *t, char *err) {
    char sql[256];
    long long got = 0, version = 0;
    snprintf(sql, sizeof sql, "SELECT GET_LOCK(CONCAT('opecom-schema.', DATABASE()), %d)",
             SCHEMA_LOCK_S);
    int rc = query_int(c, t, sql, &got, err);
    if (rc <= 0 || got != 1) {
        if (rc >= 0)
            set_err(err, "mariadb %s@%s/%s: another server held the schema lock for %d s",
                    t->user, t->host, t->database, SCHEMA_LOCK_S);
        return -1;
    }
    int status = -1;
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS schema_version (one INTEGER NOT NULL PRIMARY KEY"
             " CHECK (one = 1), version INTEGER NOT NULL)%s",
             table_options);
    if (exec_sql(c, sql, t, err) != 0)
        goto done;
    rc = query_int(c, t, "SELECT version FROM schema_version WHERE one = 1", &version, err);
    if (rc < 0)
        goto done;
    if (rc == 1 && version > SRV_STORE_SCHEMA_VERSION) {
        set_err(err, "mariadb %s@%s/%s: schema version %lld is newer than this server's (%d):"
                     " run a newer opecom-server",
                t->user, t->host, t->database, version, SRV_STORE_SCHEMA_VERSION);
        goto done;
    }
    if (rc == 1 && version < SRV_STORE_SCHEMA_VERSION) {
        set_err(err, "mariadb %s@%s/%s: schema version %lld cannot be upgraded to %d"
                     " (MariaDB databases start at version %d)",
                t->user, t->host, t->database, version, SRV_STORE_SCHEMA_VERSION,
                SRV_STORE_SCHEMA_VERSION);
        goto done;
    }
    if (rc == 0) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO schema_version (one, version) VALUES (1, %d)",
                 SRV_STORE_SCHEMA_VERSION);
        if (create_schema(c, t, err) != 0 || exec_sql(c, sql, t, err) != 0)
            goto done;
    }
    if (exec_sql(c, "INSERT INTO log_head (one, seq) VALUES (1, 0)"
                    " ON DUPLICATE KEY UPDATE seq = seq", t, err) != 0)
        goto done;
    /* a table made by hand in another engine would not be transactional */
    if (mysql_query(c, "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES"
                       " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
                       " AND TABLE_NAME IN ('schema_version', 'log_head', 'sessions',"
                       " 'page_views', 'purchases', 'session_features')"
                       " AND ENGINE <> 'InnoDB'") != 0) {
        set_err(err, "mariadb: checking the tables' engine: %s", mysql_error(c));
        goto done;
    }
    MYSQL_RES *r = mysql_store_result(c);
    MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
    if (r == NULL || row != NULL) {
        set_err(err, "mariadb %s@%s/%s: table %s uses the %s engine, not InnoDB",
                t->user, t->host, t->database, row ? row[0] : "?", row ? row[1] : "?");
        mysql_free_result(r);
        goto done;
    }
    mysql_free_result(r);
    status = 0;
done:
    exec_sql(c, "DO RELEASE_LOCK(CONCAT('opecom-schema.', DATABASE()))", t, NULL);
    return status;
}

/* Commits are durable only with these; the server runs anyway, told. */
static void check_durability(MYSQL *c, const md_target *t) {
    long long flush = 1, log_bin = 0, sync_binlog = 1;
    if (query_int(c, t, "SELECT @@innodb_flush_log_at_trx_commit", &flush, NULL) == 1 &&
        flush != 1)
        fprintf(stderr, "opecom-server: warning: mariadb innodb_flush_log_at_trx_commit is %lld,"
                        " not 1: an acknowledged event can be lost in a crash\n", flush);
    if (query_int(c, t, "SELECT @@log_bin", &log_bin, NULL) == 1 && log_bin &&
        query_int(c, t, "SELECT @@sync_binlog", &sync_binlog, NULL) == 1 && sync_binlog != 1)
        fprintf(stderr, "opecom-server: warning: mariadb sync_binlog is %lld, not 1: the binary"
                        " log can lose acknowledged events in a crash\n", sync_binlog);
}

/* ===================================================================== *
 * The backend
 * ===================================================================== */

static void md_close(void *db) {
    md_db *d = db;
    if (d == NULL)
        return;
    writer_drop(d);
    for (int i = 0; i < d->n_idle; i++)
        mysql_close(d->idle[i]);
    pthread_mutex_destroy(&d->pool_mu);
    pthread_cond_destroy(&d->pool_cv);
    wipe(d->t.password, sizeof d->t.password);
    free(d);
}

static int md_open(const char *target, void **db, char *err) {
    *db = NULL;
    md_db *d = calloc(1, sizeof *d);
    if (d == NULL) {
        set_err(err, "mariadb: out of memory");
        return -1;
    }
    pthread_mutex_init(&d->pool_mu, NULL);
    pthread_cond_init(&d->pool_cv, NULL);
    if (parse_target(target, &d->t, err) != 0) {
        md_close(d);
        return -1;
    }
    MYSQL *c = md_connect(&d->t, err);
    if (c == NULL || setup_schema(c, &d->t, err) != 0) {
        if (c)
            mysql_close(c);
        md_close(d);
        return -1;
    }
    check_durability(c, &d->t);
    mysql_close(c);
    if (writer_ready(d, err) != 0) {
        md_close(d);
        return -1;
    }
    *db = d;
    return 0;
}

static int md_append(void *db, const srv_store_span *spans, size_t n_spans, int64_t *seq,
                     char *err) {
    append_ctx a = {spans, n_spans, 0};
    if (in_transaction(db, append_body, &a, "storing events", err) != 0)
        return -1;
    *seq = a.seq;
    return 0;
}

static int md_put_closed(void *db, const srv_closed *c, size_t n, char *err) {
    closed_ctx a = {c, n};
    return in_transaction(db, closed_body, &a, "storing closed sessions", err);
}

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
        MYSQL *c = reader_get(d, err);
        if (c == NULL)
            return -1;
        read_status rs = {0, 1, 0};
        int rc = body(c, ctx, &rs, err);
        int lost = rc != 0 && is_lost(rs.code);
        /* keep -1: the body closed it already */
        reader_put(d, rs.keep < 0 ? NULL : c, rs.keep > 0 && !lost);
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

static const char sql_log[] =
    "SELECT e.seq, e.kind, e.ts, s.visitor_id, s.session_id, e.page_type, e.page_id,"
    " e.duration, e.revenue, s.os, s.browser, s.region, s.traffic_type"
    " FROM (SELECT session, seq, ts, 1 AS kind, id, page_type, page_id, duration,"
    "              CAST(0 AS DOUBLE) AS revenue FROM page_views WHERE seq > ?"
    "       UNION ALL"
    "       SELECT session, seq, ts, 2, id, NULL, NULL, CAST(0 AS DOUBLE), revenue"
    "       FROM purchases WHERE seq > ?) e"
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

/* Streams the rows (the binary protocol fetches them one at a time from
 * the socket: nothing is held but the chunk). */
static int log_body(MYSQL *c, void *ctx, read_status *rs, char *err) {
    log_ctx *lc = ctx;
    static const char what[] = "reading the log";
    char vbuf[OPECOM_ID_MAX], sbuf[OPECOM_ID_MAX], tbuf[16], pbuf[OPECOM_PAGE_ID_MAX];
    char dev[4][OPECOM_CODE_TEXT_MAX];
    md_col col[L_N] = {{vbuf, sizeof vbuf, 0, 0, 0},  {sbuf, sizeof sbuf, 0, 0, 0},
                       {tbuf, sizeof tbuf, 0, 0, 0},  {pbuf, sizeof pbuf, 0, 0, 0},
                       {dev[0], sizeof dev[0], 0, 0, 0}, {dev[1], sizeof dev[1], 0, 0, 0},
                       {dev[2], sizeof dev[2], 0, 0, 0}, {dev[3], sizeof dev[3], 0, 0, 0}};
    int64_t seq = 0, kind = 0, ts = 0;
    double duration = 0, revenue = 0;
    my_bool nul[5];
    MYSQL_BIND p[2], r[13];
    bind_i64(&p[0], &lc->after);
    bind_i64(&p[1], &lc->after);
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
    MYSQL_STMT *st = run_query(c, sql_log, p, r, what, rs, err);
    if (st == NULL)
        return -1;
    size_t n = 0;
    int rc, status = 0, stopped = 0;
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
            set_err(err, "mariadb: %s: a stored text at log number %lld is longer than an"
                         " event holds", what, (long long)seq);
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
    mysql_stmt_close(st);
    return status;
}

static int md_read_log(void *db, int64_t after, srv_log_fn fn, void *ctx, int64_t *last,
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

static int md_variant_counts(void *db, const char *variant, int64_t *sessions,
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

static int md_closed_session(void *db, const char *visitor_id, const char *session_id,
                             opecom_session *out, char *err) {
    closed_read_ctx cc = {visitor_id, session_id, out, 0};
    if (with_reader(db, closed_read_body, &cc, err) != 0)
        return -1;
    return cc.found;
}

/* ---- readiness ---- */

static int ping_body(MYSQL *c, void *ctx, read_status *rs, char *err) {
    (void)ctx;
    if (mysql_ping(c) == 0)
        return 0;
    rs->code = mysql_errno(c);
    set_err(err, "mariadb: ping: %s", mysql_error(c));
    return -1;
}

static int md_ping(void *db, char *err) {
    return with_reader(db, ping_body, NULL, err);
}

const srv_store_backend srv_store_mariadb = {
    "mariadb",       md_open,           md_close,          md_append, md_put_closed,
    md_read_log,     md_variant_counts, md_closed_session, md_ping,
};
