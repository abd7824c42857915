/*
 * db_internal.h - what db.c (schema, writer thread, opening and closing)
 * and db_read.c (replay, read-only queries) share: the database state
 * struct srv_db, the writer's job queue and a few helpers. Private to the
 * database module: other modules see only the db_* functions of server.h.
 *
 * Locking: the writer thread alone uses `w` and its statements; `mu`
 * guards the job queue, the pending closed sessions and replay_done;
 * `pool_mu` guards the pool of read-only connections (db_read.c).
 */
#ifndef OPECOM_SERVER_DB_INTERNAL_H
#define OPECOM_SERVER_DB_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "server.h"

#define BUSY_TIMEOUT_MS 5000
#define POOL_MAX 64

/* ===================================================================== *
 * State
 * ===================================================================== */

typedef struct db_job {
    const srv_event *ev;
    size_t n;
    int status;                /* 0 durable, -1 failed */
    int done;
    struct db_job *next;
} db_job;

struct srv_db {
    char path[SRV_PATH_MAX];
    sqlite3 *w;                /* write connection: the writer thread's */
    sqlite3_stmt *st_session, *st_pageview, *st_purchase, *st_feature;
    pthread_t thread;
    int started;

    pthread_mutex_t mu;        /* everything below up to the pool */
    pthread_cond_t wake;       /* the writer waits on it */
    pthread_cond_t done;       /* db_submit callers wait on it */
    db_job *head, *tail;
    int stop;
    int replay_done;           /* the writer ticks only after the replay */
    opecom_session *closed;    /* pending closed sessions */
    size_t n_closed, cap_closed;
    int64_t closed_retry_ms;   /* after a failed write: not before */

    pthread_mutex_t pool_mu;
    sqlite3 *pool[POOL_MAX];
    int n_pool;
};

/* The page_type column's texts, indexed by srv_event.page_type (0: none). */
static const char *const page_type_text[4] = {"", "administrative", "informational",
                                              "product_related"};

/* ===================================================================== *
 * Helpers (db.c)
 * ===================================================================== */

/* snprintf into err (ignored when err is NULL or size 0). */
void db_set_err(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

