/*
 * store.h - storage: one interface, one schema, two databases.
 *
 * The rest of the server sees only the srv_store_* functions below. They
 * run on a backend, a table of functions that each database fills in its
 * own file, the way SQLite's sqlite3_vfs lets one engine run on any OS:
 *
 *   store.c          the URL (sqlite:PATH, mariadb://...), the group-commit
 *                    writer thread, the queue of closed sessions
 *   store_sqlite.c   SQLite in WAL mode (the default, one process)
 *   store_mariadb.c  MariaDB through Connector/C (replicas share one)
 *   schema.sql       the one schema both create (Makefile: schema.c)
 *
 * The event log. Every commit of events takes the next log sequence
 * number (log_head.seq, incremented inside the commit's transaction, so
 * commits are serialised and a number is visible only once every smaller
 * one is). Each stored event carries its commit's number. Reading the log
 * after a number therefore never skips an event that commits later: this
 * is how every replica feeds the same events, in the same order, to its
 * sessionizer, and how a restart rebuilds it.
 *
 * Acknowledged means committed: srv_store_append returns 0 only after the
 * transaction holding the events is durable (SQLite synchronous=FULL in WAL;
 * MariaDB InnoDB with innodb_flush_log_at_trx_commit=1).
 */
#ifndef OPECOM_SERVER_STORE_H
#define OPECOM_SERVER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "opecom.h"

typedef struct srv_event srv_event;     /* server.h */
typedef struct srv_metrics srv_metrics; /* metrics.c */
typedef struct srv_store srv_store;

#define SRV_STORE_LOG_CHUNK 1024   /* events per srv_log_fn call */
#define SRV_STORE_SCHEMA_VERSION 2 /* 1: before the event log (seq) */

/* The schema text (schema.sql with comments removed; Makefile), with the
 * dialect word @ID@ for an auto-numbered 64-bit primary key column. */
extern const char srv_schema_sql[];

/* A closed session and when it closed (its last event + the idle timeout). */
typedef struct srv_closed {
    opecom_session s;
    int64_t closed_ms;
} srv_closed;

/* A part of a group commit: the events of one caller. */
typedef struct srv_store_span {
    const srv_event *ev;
    size_t n;
} srv_store_span;

/* Receives events read from the log, in log order (seq, ts, kind, id), in
 * chunks of at most SRV_STORE_LOG_CHUNK; seq is the commit number of the
 * chunk's last event. @return 0 to go on, non-zero to stop the read. */
typedef int (*srv_log_fn)(void *ctx, const srv_event *ev, size_t n, int64_t seq);

/* ===================================================================== *
 * A backend: every function returns 0 or -1 with a message in err (a
 * buffer of SRV_STORE_ERR bytes), unless it says otherwise. The write
 * functions are called by the writer thread only; the read functions from
 * any thread at once (a backend keeps its own connections for them).
 * ===================================================================== */

#define SRV_STORE_ERR 512

typedef struct srv_store_backend {
    const char *scheme; /* "sqlite", "mariadb" */
    /* Connects (target: the URL after "scheme:"), creates or upgrades the
     * schema (srv_schema_sql, the dialect word replaced), makes sure
     * log_head has its row. */
    int (*open)(const char *target, void **db, char *err);
    void (*close)(void *db);
    /* Writes every event of the spans in one transaction that takes the
     * next log number (*seq); durable on return 0. On -1 nothing of it is
     * stored. Events carry their variant's name; a session row takes it
     * when it is created. */
    int (*append)(void *db, const srv_store_span *spans, size_t n_spans, int64_t *seq,
                  char *err);
    /* Stores the features of closed sessions in one transaction; a part
     * already stored is kept as it is (the first writer wins: replicas and
     * restarts close the same sessions again). */
    int (*put_closed)(void *db, const srv_closed *c, size_t n, char *err);
    /* Streams every event with a log number > after to fn. *last receives
     * the largest log number read (after, when none). */
    int (*read_log)(void *db, int64_t after, srv_log_fn fn, void *ctx, int64_t *last,
                    char *err);
    /* Sessions of a variant, and those with a purchase. */
    int (*variant_counts)(void *db, const char *variant, int64_t *sessions,
                          int64_t *conversions, char *err);
    /* The features of a closed session (its last part); visitor_id NULL:
     * any visitor. @return 1 found, 0 unknown, -1 error. */
    int (*closed_session)(void *db, const char *visitor_id, const char *session_id,
                          opecom_session *out, char *err);
    /* The last log number committed by anyone (*head): one cheap round
     * trip, also the readiness check. */
    int (*head)(void *db, int64_t *head, char *err);
} srv_store_backend;

extern const srv_store_backend srv_store_sqlite;
extern const srv_store_backend srv_store_mariadb;

/* ===================================================================== *
 * The store (store.c)
 * ===================================================================== */

/* Opens the database named by url: "sqlite:PATH", a bare PATH (SQLite), or
 * "mariadb://user:password@host:port/database" (a unix socket with
 * "mariadb://user:password@localhost/database?socket=/path"), and starts the
 * writer thread, which counts its commits in metrics (NULL: nowhere).
 * @return the store, or NULL with a message in err. */
srv_store *srv_store_open(const char *url, srv_metrics *metrics, char *err, size_t err_size);
/* Writes what is queued, stops the writer and closes. Accepts NULL. */
void srv_store_close(srv_store *st);

/* Queues n events and waits until they are committed: events of
 * concurrent callers share one transaction (group commit).
 * @return 0 durable with *seq its log number; -1 failed (nothing stored). */
int srv_store_append(srv_store *st, const srv_event *ev, size_t n, int64_t *seq);
/* Queues closed sessions for the writer (retried a second later when the
 * write fails). Never waits for the database. @return 0, -1 out of memory. */
int srv_store_put_closed(srv_store *st, const srv_closed *c, size_t n);

/* The backend's reads, with errors on stderr. */
int srv_store_read_log(srv_store *st, int64_t after, srv_log_fn fn, void *ctx, int64_t *last);
int srv_store_variant_counts(srv_store *st, const char *variant, int64_t *sessions,
                             int64_t *conversions);
int srv_store_closed_session(srv_store *st, const char *visitor_id, const char *session_id,
                             opecom_session *out);
/* The last log number committed by any replica. @return 0 or -1. */
int srv_store_head(srv_store *st, int64_t *head);

#endif
