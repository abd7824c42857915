/*
 * store_mariadb.h - what the files of the MariaDB store share: its state,
 * the parsed target, the Connector/C binding helpers, and the functions
 * one file gives the others. Private to them (the server sees only
 * srv_store_mariadb, store.h).
 *
 *   store_mariadb.c        the target, connections and their pool, the
 *                          schema, open and close, the backend table
 *   store_mariadb_write.c  the writer's connection: append, put_closed
 *   store_mariadb_read.c   the reads, on pooled connections
 *
 * Locking: the writer thread alone uses `w` and its statements; `pool_mu`
 * guards the pool of read connections.
 */
#ifndef OPECOM_SERVER_STORE_MARIADB_H
#define OPECOM_SERVER_STORE_MARIADB_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>

#include "server.h"
#include "store.h"

#define POOL_MAX 16 /* read connections open at once */

/* The page_type column's texts, indexed by srv_event.page_type. */
static const char *const page_type_text[4] = {"", "administrative", "informational",
                                              "product_related"};

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

static inline void set_err(char *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void set_err(char *err, const char *fmt, ...) {
    if (err == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SRV_STORE_ERR, fmt, ap);
    va_end(ap);
}

/* Errors after which the connection is gone (the server rolled back its
 * open transaction). */
static inline int is_lost(unsigned code) {
    return code == CR_SERVER_GONE_ERROR || code == CR_SERVER_LOST ||
           code == CR_SERVER_LOST_EXTENDED || code == CR_CONNECTION_ERROR ||
           code == CR_CONN_HOST_ERROR || code == CR_ERR_NET_READ || code == CR_ERR_NET_WRITE ||
           code == ER_CONNECTION_KILLED || code == ER_SERVER_SHUTDOWN;
}

static inline void bind_text(MYSQL_BIND *b, const char *s) {
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = (void *)s;
    b->buffer_length = (unsigned long)strlen(s);
}

/* A device text, NULL when empty (as in the SQLite backend). */
static inline void bind_text_or_null(MYSQL_BIND *b, const char *s) {
    bind_text(b, s);
    if (s[0] == '\0')
        b->buffer_type = MYSQL_TYPE_NULL;
}

static inline void bind_i64(MYSQL_BIND *b, const int64_t *v) {
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = (void *)v;
}

static inline void bind_f64(MYSQL_BIND *b, const double *v) {
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

static inline void bind_out_text(MYSQL_BIND *b, md_col *c) {
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = c->buf;
    b->buffer_length = c->size;
    b->length = &c->len;
    b->is_null = &c->null;
    b->error = &c->error;
}

/* Copies a text column; -1 when it does not fit dst. */
static inline int copy_col(char *dst, size_t size, const md_col *c) {
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

static inline void bind_out_i64(MYSQL_BIND *b, int64_t *v, my_bool *null) {
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = v;
    b->is_null = null;
}

static inline void bind_out_f64(MYSQL_BIND *b, double *v, my_bool *null) {
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_DOUBLE;
    b->buffer = v;
    b->is_null = null;
}

/* ===================================================================== *
 * Between the files
 * ===================================================================== */

/* store_mariadb.c: a new connection with the session settings, or NULL. */
MYSQL *mdb_connect(const md_target *t, char *err);
/* store_mariadb.c: a read connection (at most POOL_MAX open), or NULL;
 * mdb_reader_put gives it back (keep 0: closes it; c NULL: closed already). */
MYSQL *mdb_reader_get(md_db *d, char *err);
void mdb_reader_put(md_db *d, MYSQL *c, int keep);

/* store_mariadb_write.c */
int mdb_writer_ready(md_db *d, char *err);
void mdb_writer_drop(md_db *d);
int mdb_append(void *db, const srv_store_span *spans, size_t n_spans, int64_t *seq, char *err);
int mdb_put_closed(void *db, const srv_closed *c, size_t n, char *err);

/* store_mariadb_read.c */
int mdb_read_log(void *db, int64_t after, srv_log_fn fn, void *ctx, int64_t *last, char *err);
int mdb_variant_counts(void *db, const char *variant, int64_t *sessions, int64_t *conversions,
                       char *err);
int mdb_closed_session(void *db, const char *visitor_id, const char *session_id,
                       opecom_session *out, char *err);
int mdb_head(void *db, int64_t *head, char *err);

#endif
