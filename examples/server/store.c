/*
 * store.c - the part of storage that is the same for every database: the
 * URL that picks a backend, the group-commit writer thread, and the queue
 * of closed sessions. The backends (store_sqlite.c, store_mariadb.c) only
 * run statements; see store.h.
 *
 * Writes. One thread (the writer) makes every write. srv_store_append puts
 * the caller's events on a queue (the job lives on the caller's stack) and
 * waits; the writer takes every job queued so far, writes them all in one
 * transaction (backend append), and wakes the callers with its result and
 * log number: an acknowledged event is committed.
 *
 * Closed sessions. srv_store_put_closed only copies them to a pending list
 * (at most CLOSED_MAX; past that they are dropped with a message: the next
 * start-up's replay closes and stores them again). The writer stores the
 * list in a transaction of its own, so a failing features row never makes
 * events fail; after an error the list is kept and retried a second later.
 * Until a session is stored, srv_store_closed_session finds it in the list
 * (or in the batch being written): a session that left the sessionizer is
 * never unknown, also right after a restart's replay closed it.
 * srv_store_close stops the writer only after the queue and the list are
 * written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include "server.h"
#include "store.h"

#define CLOSED_MAX 200000
#define CLOSED_RETRY_MS 1000

typedef struct job {
    const srv_event *ev;
    size_t n;
    int status;                /* 0 durable, -1 failed */
    int64_t seq;
    int done;
    struct job *next;
} job;

struct srv_store {
    const srv_store_backend *be;
    void *db;
    srv_metrics *metrics;
    pthread_t thread;
    int started;

    pthread_mutex_t mu;        /* everything below */
    pthread_cond_t wake;       /* the writer waits on it */
    pthread_cond_t done;       /* srv_store_append callers wait on it */
    job *head, *tail;
    uint64_t queued_events;
    int stop;
    srv_closed *closed;        /* pending closed sessions */
    size_t n_closed, cap_closed;
    const srv_closed *writing; /* the batch the writer is storing */
    size_t n_writing;
    int64_t closed_retry_ms;   /* after a failed write: not before */
    uint64_t closed_dropped;
};

/* The backlog gauge (mu held). */
static void gauge(srv_store *st) {
    metrics_backlog(st->metrics, st->queued_events + st->n_closed);
}

static double mono_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ===================================================================== *
 * The writer
 * ===================================================================== */

static int write_jobs(srv_store *st, job *jobs) {
    srv_store_span stack[64], *spans = stack;
    size_t n = 0;
    for (job *j = jobs; j != NULL; j = j->next)
        n++;
    if (n > sizeof stack / sizeof stack[0] && (spans = malloc(n * sizeof *spans)) == NULL) {
        fprintf(stderr, "opecom-server: storing events: out of memory\n");
        return -1;
    }
    n = 0;
    for (job *j = jobs; j != NULL; j = j->next)
        spans[n++] = (srv_store_span){j->ev, j->n};
    char err[SRV_STORE_ERR];
    int64_t seq = 0;
    double t0 = mono_seconds();
    int rc = st->be->append(st->db, spans, n, &seq, err);
    if (rc == 0)
        metrics_commit(st->metrics, mono_seconds() - t0);
    else
        fprintf(stderr, "opecom-server: %s\n", err);
    for (job *j = jobs; j != NULL; j = j->next)
        j->seq = seq;
    if (spans != stack)
        free(spans);
    return rc;
}

/* Takes the pending closed sessions (mu held): swaps them with the
 * writer's buffer *buf (capacity *cap). @return how many. */
static size_t take_closed(srv_store *st, srv_closed **buf, size_t *cap) {
    size_t n = st->n_closed;
    srv_closed *b = *buf;
    size_t c = *cap;
    *buf = st->closed;
    *cap = st->cap_closed;
    st->closed = b;
    st->cap_closed = c;
    st->n_closed = 0;
    return n;
}

/* Puts sessions whose write failed back in front of the pending list (mu
 * held), within CLOSED_MAX. */
static void put_back_closed(srv_store *st, const srv_closed *c, size_t n) {
    if (n + st->n_closed > CLOSED_MAX) {
        st->closed_dropped += n + st->n_closed - CLOSED_MAX;
        n = CLOSED_MAX - st->n_closed;
    }
    size_t total = n + st->n_closed;
    if (total > st->cap_closed) {
        srv_closed *p = realloc(st->closed, total * sizeof *p);
        if (p == NULL) {
            st->closed_dropped += n;
            return;
        }
        st->closed = p;
        st->cap_closed = total;
    }
    memmove(st->closed + n, st->closed, st->n_closed * sizeof *st->closed);
    memcpy(st->closed, c, n * sizeof *c);
    st->n_closed = total;
}

static void wait_until(srv_store *st, int64_t until_ms) {
    int64_t wait_ms = until_ms - srv_now_ms();
    if (wait_ms < 1)
        wait_ms = 1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(wait_ms / 1000);
    ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&st->wake, &st->mu, &ts);
}

static void *writer_main(void *arg) {
    srv_store *st = arg;
    srv_closed *wbuf = NULL;
    size_t wcap = 0;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        int closed_due = st->n_closed > 0 && (st->stop || srv_now_ms() >= st->closed_retry_ms);
        if (st->head == NULL && !closed_due) {
            if (st->stop)
                break;
            if (st->n_closed > 0)
                wait_until(st, st->closed_retry_ms);
            else
                pthread_cond_wait(&st->wake, &st->mu);
            continue;
        }
        job *jobs = st->head;
        st->head = st->tail = NULL;
        int stopping = st->stop;
        pthread_mutex_unlock(&st->mu);

        /* 1. events: one transaction for every job queued */
        if (jobs != NULL) {
            int status = write_jobs(st, jobs);
            pthread_mutex_lock(&st->mu);
            for (job *j = jobs, *next; j != NULL; j = next) {
                next = j->next; /* j may be gone once done is seen */
                st->queued_events -= j->n;
                j->status = status;
                j->done = 1;
            }
            gauge(st);
            pthread_cond_broadcast(&st->done);
            pthread_mutex_unlock(&st->mu);
        }

        /* 2. closed sessions */
        pthread_mutex_lock(&st->mu);
        if (st->n_closed > 0 && (stopping || srv_now_ms() >= st->closed_retry_ms)) {
            size_t n = take_closed(st, &wbuf, &wcap);
            st->writing = wbuf;
            st->n_writing = n;
            pthread_mutex_unlock(&st->mu);
            char err[SRV_STORE_ERR];
            double t0 = mono_seconds();
            int status = st->be->put_closed(st->db, wbuf, n, err);
            if (status == 0)
                metrics_commit(st->metrics, mono_seconds() - t0);
            else
                fprintf(stderr, "opecom-server: %s\n", err);
            pthread_mutex_lock(&st->mu);
            st->n_writing = 0;
            if (status != 0) {
                if (stopping)
                    fprintf(stderr, "opecom-server: %zu closed sessions not stored\n", n);
                else
                    put_back_closed(st, wbuf, n);
                st->closed_retry_ms = srv_now_ms() + CLOSED_RETRY_MS;
            }
            gauge(st);
        }
    }
    pthread_mutex_unlock(&st->mu);
    free(wbuf);
    return NULL;
}

/* ===================================================================== *
 * Opening and closing
 * ===================================================================== */

static void store_free(srv_store *st) {
    if (st->db)
        st->be->close(st->db);
    free(st->closed);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->wake);
    pthread_cond_destroy(&st->done);
    free(st);
}

srv_store *srv_store_open(const char *url, srv_metrics *metrics, char *err, size_t err_size) {
    const srv_store_backend *be = &srv_store_sqlite;
    const char *target = url;
    if (strncmp(url, "sqlite:", 7) == 0) {
        target = url + 7;
    } else if (strncmp(url, "mariadb://", 10) == 0) {
        be = &srv_store_mariadb;
        target = url + 10;
    } else if (strstr(url, "://") != NULL) {
        snprintf(err, err_size, "database %.*s: unknown scheme (sqlite:PATH or mariadb://...)",
                 (int)(strstr(url, "://") - url), url);
        return NULL;
    }
    srv_store *st = calloc(1, sizeof *st);
    if (st == NULL) {
        snprintf(err, err_size, "database: out of memory");
        return NULL;
    }
    st->be = be;
    st->metrics = metrics;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->wake, NULL);
    pthread_cond_init(&st->done, NULL);
    char e[SRV_STORE_ERR] = "";
    if (be->open(target, &st->db, e) != 0) {
        snprintf(err, err_size, "database: %s", e);
        st->db = NULL;
        store_free(st);
        return NULL;
    }
    int rc = pthread_create(&st->thread, NULL, writer_main, st);
    if (rc != 0) {
        snprintf(err, err_size, "database: cannot start the writer thread: %s", strerror(rc));
        store_free(st);
        return NULL;
    }
    st->started = 1;
    return st;
}

void srv_store_close(srv_store *st) {
    if (st == NULL)
        return;
    if (st->started) {
        pthread_mutex_lock(&st->mu);
        st->stop = 1;
        pthread_cond_signal(&st->wake);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->thread, NULL);
    }
    if (st->closed_dropped > 0)
        fprintf(stderr, "opecom-server: %llu closed sessions were not stored (the next start"
                " stores them)\n", (unsigned long long)st->closed_dropped);
    store_free(st);
}

/* ===================================================================== *
 * Writing: callers
 * ===================================================================== */

int srv_store_append(srv_store *st, const srv_event *ev, size_t n, int64_t *seq) {
    if (n == 0) {
        *seq = 0;
        return 0;
    }
    job j = {.ev = ev, .n = n, .status = -1, .seq = 0, .done = 0, .next = NULL};
    pthread_mutex_lock(&st->mu);
    if (st->stop) {
        pthread_mutex_unlock(&st->mu);
        return -1;
    }
    if (st->tail)
        st->tail->next = &j;
    else
        st->head = &j;
    st->tail = &j;
    st->queued_events += n;
    gauge(st);
    pthread_cond_signal(&st->wake);
    while (!j.done)
        pthread_cond_wait(&st->done, &st->mu);
    pthread_mutex_unlock(&st->mu);
    *seq = j.seq;
    return j.status;
}

int srv_store_put_closed(srv_store *st, const srv_closed *c, size_t n) {
    pthread_mutex_lock(&st->mu);
    size_t keep = n;
    if (st->n_closed + keep > CLOSED_MAX)
        keep = CLOSED_MAX - st->n_closed;
    if (st->n_closed + keep > st->cap_closed) {
        size_t cap = st->cap_closed ? st->cap_closed : 64;
        while (cap < st->n_closed + keep)
            cap *= 2;
        srv_closed *p = realloc(st->closed, cap * sizeof *p);
        if (p == NULL)
            keep = 0;
        else {
            st->closed = p;
            st->cap_closed = cap;
        }
    }
    memcpy(st->closed + st->n_closed, c, keep * sizeof *c);
    st->n_closed += keep;
    st->closed_dropped += n - keep;
    gauge(st);
    if (keep > 0)
        pthread_cond_signal(&st->wake);
    pthread_mutex_unlock(&st->mu);
    return keep == n ? 0 : -1;
}

/* ===================================================================== *
 * Reading
 * ===================================================================== */

static int report(int rc, const char *err) {
    if (rc < 0)
        fprintf(stderr, "opecom-server: %s\n", err);
    return rc;
}

int srv_store_read_log(srv_store *st, int64_t after, srv_log_fn fn, void *ctx, int64_t *last) {
    char err[SRV_STORE_ERR];
    return report(st->be->read_log(st->db, after, fn, ctx, last, err), err);
}

int srv_store_variant_counts(srv_store *st, const char *variant, int64_t *sessions,
                             int64_t *conversions) {
    char err[SRV_STORE_ERR];
    *sessions = *conversions = 0;
    return report(st->be->variant_counts(st->db, variant, sessions, conversions, err), err);
}

/* The newest of n closed sessions matching the ids (visitor_id NULL: any
 * visitor) that is newer than *best (NULL: none yet). */
static const srv_closed *newest_closed(const srv_closed *c, size_t n, const char *visitor_id,
                                       const char *session_id, const srv_closed *best) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(c[i].s.session_id, session_id) != 0 ||
            (visitor_id != NULL && strcmp(c[i].s.visitor_id, visitor_id) != 0))
            continue;
        if (best == NULL || c[i].closed_ms > best->closed_ms ||
            (c[i].closed_ms == best->closed_ms && c[i].s.part > best->s.part))
            best = &c[i];
    }
    return best;
}

int srv_store_closed_session(srv_store *st, const char *visitor_id, const char *session_id,
                             opecom_session *out) {
    /* Not stored yet: the pending list and the batch being written (a
     * walk of what waits for the writer, short unless the database is
     * failing; bounded by CLOSED_MAX). */
    pthread_mutex_lock(&st->mu);
    const srv_closed *best = newest_closed(st->closed, st->n_closed, visitor_id, session_id, NULL);
    best = newest_closed(st->writing, st->n_writing, visitor_id, session_id, best);
    if (best != NULL)
        *out = best->s;
    pthread_mutex_unlock(&st->mu);
    if (best != NULL)
        return 1;
    char err[SRV_STORE_ERR];
    return report(st->be->closed_session(st->db, visitor_id, session_id, out, err), err);
}

int srv_store_head(srv_store *st, int64_t *head) {
    char err[SRV_STORE_ERR];
    return report(st->be->head(st->db, head, err), err);
}
