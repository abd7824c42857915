/*
 * live.c - the live sessions service: the sessionizer, fed from the
 * database's event log; its clock; the open sessions' cached scores; the
 * ranking behind GET /api/sessions.
 *
 * The follower. One thread owns the sessionizer's writes: it reads the
 * event log after the last log number it applied (srv_store_read_log) and
 * adds those events, in log order, then moves the clock. Every replica
 * does the same with the same log, so all of them (and a restart) hold the
 * same sessions and the same page statistics. It reads when woken by
 * live_wait (a local commit) and otherwise every cfg.follow_ms (commits of
 * other replicas). Sessions that close go to srv_store_put_closed, which
 * only queues them: nothing here waits for the writer. Their rows also go
 * to the drift queue (drift.c), which the follower empties after each round
 * with no lock of this file held: scoring and binning them into their
 * model's drift window costs one prediction each.
 *
 * Scores. One mutex guards the sessionizer and a hash table of cached
 * scores, one entry per open session (key: visitor id + session id; a
 * second chain by session id alone serves /api/predict without a visitor).
 * An entry is made when opecom_sessionizer_add says an event STARTED a
 * session and dropped when the session closes. An entry that changes gets
 * a new version and joins the dirty list. A scorer thread (and every
 * /api/sessions request, so answers are current) refreshes dirty entries:
 * under the mutex it peeks the session and builds its model row; with the
 * mutex released it scores the rows (srv_score, no reasons, ~10 us each);
 * then it stores each score if the entry's version did not move meanwhile.
 * Reasons (~1 ms each) are computed only for the sessions /api/sessions
 * returns, and cached until the session changes. Entries are recycled
 * through a free list and freed only by live_close, so a pointer taken
 * under the mutex stays valid; the version tells whether it still is the
 * same session.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"
#include "store.h"

#define ROW_MAX 32
#define HEAD_WAIT_MS 2000 /* a session read waits this long for the log at most */
#define SCORER_PERIOD_MS 200

typedef struct live_entry {
    struct live_entry *next;      /* chain by key; free list */
    struct live_entry *next_sid;  /* chain by session id */
    struct live_entry *dprev, *dnext; /* dirty list */
    uint64_t hash, sid_hash;
    uint64_t version;             /* 0: free */
    int dirty;
    int variant;
    char visitor_id[OPECOM_ID_MAX];
    char session_id[OPECOM_ID_MAX];
    /* from the last refresh */
    uint32_t page_views;
    double duration, revenue;
    int64_t first_ms, last_ms;
    int scored;
    double probability, confidence;
    uint64_t reasons_version;     /* reasons valid for this version */
    int n_reasons;
    char reasons[SRV_LIVE_REASONS][OPECOM_REASON_MAX];
} live_entry;

struct srv_live {
    pthread_mutex_t refresh_mu;   /* one refresh at a time, taken before mu:
                                     /api/sessions waits for the scorer's */
    pthread_mutex_t mu;
    opecom_sessionizer *sz;
    live_entry **buckets, **sid_buckets;
    size_t n_buckets;             /* power of two */
    size_t n_entries;
    live_entry *free_list;
    live_entry *dirty_head;
    uint64_t counter;             /* versions */

    pthread_t scorer;
    int scorer_started;
    int stop;
    pthread_cond_t wake;          /* the scorer waits on it */

    pthread_t follower;
    int follower_started;
    srv_drift_queue *drift;       /* closed sessions to bin: the thread that
                                     feeds (live_start, then the follower) */
    pthread_mutex_t follow_mu;    /* the three below */
    pthread_cond_t follow_wake;   /* the follower waits on it */
    pthread_cond_t applied_cv;    /* live_wait waits on it */
    int64_t applied;              /* the last log number applied; -1: none */
    int64_t wanted;               /* a live_wait asks for this one */
    int follow_stop;
};

/* ===================================================================== *
 * The table
 * ===================================================================== */

static uint64_t fnv(uint64_t h, const char *p) {
    for (; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t key_hash(const char *vid, const char *sid) {
    uint64_t h = fnv(14695981039346656037ULL, vid);
    h ^= 0xff; /* separator: ("ab","c") != ("a","bc") */
    h *= 1099511628211ULL;
    return fnv(h, sid);
}

static uint64_t sid_hash(const char *sid) {
    return fnv(14695981039346656037ULL, sid);
}

static live_entry *find(srv_live *l, const char *vid, const char *sid) {
    uint64_t h = key_hash(vid, sid);
    for (live_entry *e = l->buckets[h & (l->n_buckets - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->visitor_id, vid) == 0 && strcmp(e->session_id, sid) == 0)
            return e;
    return NULL;
}

static live_entry *find_sid(srv_live *l, const char *sid) {
    uint64_t h = sid_hash(sid);
    for (live_entry *e = l->sid_buckets[h & (l->n_buckets - 1)]; e; e = e->next_sid)
        if (e->sid_hash == h && strcmp(e->session_id, sid) == 0)
            return e;
    return NULL;
}

/* Doubles the buckets; on no memory the chains just grow longer. */
static void grow(srv_live *l) {
    size_t n = l->n_buckets * 2;
    live_entry **b = calloc(n, sizeof *b), **sb = calloc(n, sizeof *sb);
    if (b == NULL || sb == NULL) {
        free(b);
        free(sb);
        return;
    }
    for (size_t i = 0; i < l->n_buckets; i++) {
        for (live_entry *e = l->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
        for (live_entry *e = l->sid_buckets[i], *next; e; e = next) {
            next = e->next_sid;
            e->next_sid = sb[e->sid_hash & (n - 1)];
            sb[e->sid_hash & (n - 1)] = e;
        }
    }
    free(l->buckets);
    free(l->sid_buckets);
    l->buckets = b;
    l->sid_buckets = sb;
    l->n_buckets = n;
}

static void mark_dirty(srv_live *l, live_entry *e) {
    e->version = ++l->counter;
    if (e->dirty)
        return;
    e->dirty = 1;
    e->dprev = NULL;
    e->dnext = l->dirty_head;
    if (l->dirty_head)
        l->dirty_head->dprev = e;
    l->dirty_head = e;
}

static void unmark_dirty(srv_live *l, live_entry *e) {
    if (!e->dirty)
        return;
    if (e->dprev)
        e->dprev->dnext = e->dnext;
    else
        l->dirty_head = e->dnext;
    if (e->dnext)
        e->dnext->dprev = e->dprev;
    e->dirty = 0;
    e->dprev = e->dnext = NULL;
}

static live_entry *insert(srv *s, srv_live *l, const char *vid, const char *sid) {
    if (l->n_entries >= l->n_buckets)
        grow(l);
    live_entry *e = l->free_list;
    if (e)
        l->free_list = e->next;
    else if ((e = malloc(sizeof *e)) == NULL)
        return NULL;
    memset(e, 0, offsetof(live_entry, reasons));
    snprintf(e->visitor_id, sizeof e->visitor_id, "%s", vid);
    snprintf(e->session_id, sizeof e->session_id, "%s", sid);
    e->hash = key_hash(vid, sid);
    e->sid_hash = sid_hash(sid);
    e->variant = srv_variant_for(s, vid);
    if (e->variant < 0 || e->variant >= s->cfg.n_variants)
        e->variant = 0;
    e->probability = e->confidence = NAN;
    size_t b = e->hash & (l->n_buckets - 1), sb = e->sid_hash & (l->n_buckets - 1);
    e->next = l->buckets[b];
    l->buckets[b] = e;
    e->next_sid = l->sid_buckets[sb];
    l->sid_buckets[sb] = e;
    l->n_entries++;
    return e;
}

static void unlink_chain(live_entry **head, live_entry *e, int by_sid) {
    for (live_entry **p = head; *p; p = by_sid ? &(*p)->next_sid : &(*p)->next) {
        if (*p == e) {
            *p = by_sid ? e->next_sid : e->next;
            return;
        }
    }
}

static void remove_entry(srv_live *l, live_entry *e) {
    unlink_chain(&l->buckets[e->hash & (l->n_buckets - 1)], e, 0);
    unlink_chain(&l->sid_buckets[e->sid_hash & (l->n_buckets - 1)], e, 1);
    unmark_dirty(l, e);
    e->version = 0;
    e->next = l->free_list;
    l->free_list = e;
    l->n_entries--;
}

/* ===================================================================== *
 * Feeding (the follower thread)
 * ===================================================================== */

/* Sessions closed by the last add or advance (mu held): queued for
 * storage and for drift, and their entries dropped unless the key opened a
 * new part. */
static void drain_closed(srv *s, srv_live *l) {
    srv_closed c[64];
    size_t n = 0;
    opecom_session peeked;
    int64_t timeout_ms = s->cfg.session.idle_timeout_s * 1000;
    while (opecom_sessionizer_next(l->sz, &c[n].s)) {
        c[n].closed_ms = c[n].s.end_ms + timeout_ms;
        live_entry *e = find(l, c[n].s.visitor_id, c[n].s.session_id);
        opecom_value row[SRV_UCI_FEATURES];
        int v = e != NULL ? e->variant : srv_variant_for(s, c[n].s.visitor_id);
        if (srv_session_row(&c[n].s, row, NULL) == OPECOM_OK)
            drift_queue_push(l->drift, v, row);
        if (e != NULL) {
            if (opecom_sessionizer_peek(l->sz, e->visitor_id, e->session_id, &peeked))
                mark_dirty(l, e);
            else
                remove_entry(l, e);
        }
        if (++n == sizeof c / sizeof c[0]) {
            srv_store_put_closed(s->store, c, n);
            n = 0;
        }
    }
    if (n > 0)
        srv_store_put_closed(s->store, c, n);
}

static const char *or_null(const char *t) {
    return t[0] ? t : NULL;
}

/* The library's event for a stored one (strings borrowed from e). */
static opecom_event event_of(const srv_event *e) {
    opecom_event oe = {
        .visitor_id = e->visitor_id,
        .session_id = e->session_id,
        .time_ms = e->ts,
        .kind = e->type == SRV_PAGEVIEW ? OPECOM_EVENT_PAGE_VIEW : OPECOM_EVENT_PURCHASE,
        .page_type = (opecom_page_type)e->page_type,
        .page_id = e->type == SRV_PAGEVIEW ? e->page_id : NULL,
        .has_duration = 1,
        .duration_s = e->type == SRV_PAGEVIEW ? e->duration : 0.0,
        .revenue = e->type == SRV_PURCHASE ? e->revenue : 0.0,
        .os = or_null(e->os),
        .browser = or_null(e->browser),
        .region = or_null(e->region),
        .traffic_type = or_null(e->traffic_type),
    };
    return oe;
}

int live_check(srv *s, const srv_event *e, opecom_error *err) {
    opecom_event oe = event_of(e);
    /* no mutex: a check reads only the sessionizer's configuration */
    return opecom_sessionizer_check(s->live->sz, &oe, err) == OPECOM_OK ? 0 : -1;
}

/* srv_log_fn: adds a chunk of the log (mu taken here). */
static int feed(void *ctx, const srv_event *ev, size_t n, int64_t seq) {
    srv *s = ctx;
    srv_live *l = s->live;
    uint64_t late = 0, refused = 0;
    char first[sizeof ((opecom_error *)0)->message] = "";
    (void)seq;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < n; i++) {
        const srv_event *e = &ev[i];
        opecom_event oe = event_of(e);
        opecom_event_outcome outcome;
        opecom_error err;
        if (opecom_sessionizer_add(l->sz, &oe, &outcome, &err) != OPECOM_OK) {
            if (refused++ == 0)
                snprintf(first, sizeof first, "%s", err.message);
            continue;
        }
        if (outcome == OPECOM_EVENT_LATE) {
            late++;
            continue;
        }
        live_entry *x = find(l, e->visitor_id, e->session_id);
        if (x == NULL)
            x = insert(s, l, e->visitor_id, e->session_id);
        if (x)
            mark_dirty(l, x);
    }
    drain_closed(s, l);
    pthread_mutex_unlock(&l->mu);
    if (late > 0)
        metrics_late(s->metrics, late);
    if (refused > 0) /* stored before the events were checked: one line a chunk */
        fprintf(stderr, "opecom-server: sessionizer: %llu stored events refused, the first: %s\n",
                (unsigned long long)refused, first);
    return 0;
}

/* Moves the clock to now_ms (mu taken here). */
static void tick(srv *s, srv_live *l, int64_t now_ms) {
    opecom_error err;
    opecom_session_stats st;
    pthread_mutex_lock(&l->mu);
    opecom_sessionizer_advance(l->sz, now_ms, &err);
    drain_closed(s, l);
    opecom_sessionizer_stats(l->sz, &st);
    if (l->dirty_head)
        pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
    metrics_active(s->metrics, st.open_sessions);
}

/* Applies the log after l->applied, then the clock. Follower thread (or
 * live_start before it exists). @return 0 or -1 (the database failed). */
static int follow_once(srv *s, srv_live *l) {
    pthread_mutex_lock(&l->follow_mu);
    int64_t after = l->applied;
    pthread_mutex_unlock(&l->follow_mu);
    int64_t last = after;
    int rc = srv_store_read_log(s->store, after, feed, s, &last);
    tick(s, l, srv_now_ms());
    pthread_mutex_lock(&l->follow_mu);
    if (last > l->applied)
        l->applied = last;
    pthread_cond_broadcast(&l->applied_cv);
    pthread_mutex_unlock(&l->follow_mu);
    return rc;
}

static void *follower_main(void *arg) {
    srv *s = arg;
    srv_live *l = s->live;
    pthread_mutex_lock(&l->follow_mu);
    while (!l->follow_stop) {
        if (l->wanted <= l->applied) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)s->cfg.follow_ms * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&l->follow_wake, &l->follow_mu, &ts);
            if (l->follow_stop)
                break;
        }
        pthread_mutex_unlock(&l->follow_mu);
        follow_once(s, l);
        drift_queue_flush(s, l->drift); /* no lock held; after live_wait's answer */
        pthread_mutex_lock(&l->follow_mu);
    }
    pthread_mutex_unlock(&l->follow_mu);
    return NULL;
}

int live_wait(srv *s, int64_t seq, int timeout_ms) {
    srv_live *l = s->live;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    int rc = 0;
    pthread_mutex_lock(&l->follow_mu);
    if (seq > l->wanted)
        l->wanted = seq;
    pthread_cond_signal(&l->follow_wake);
    while (l->applied < seq && rc == 0 && !l->follow_stop)
        rc = pthread_cond_timedwait(&l->applied_cv, &l->follow_mu, &ts);
    int ok = l->applied >= seq;
    pthread_mutex_unlock(&l->follow_mu);
    return ok ? 0 : -1;
}

/* ===================================================================== *
 * Scores
 * ===================================================================== */

typedef struct pending_score {
    live_entry *e;
    uint64_t version;
    int variant;
    opecom_value row[ROW_MAX];
} pending_score;

/* Peeks a session and fills the summary of e from it (mu held).
 * @return 1 open, 0 closed. */
static int peek_entry(srv_live *l, live_entry *e, opecom_session *ses) {
    if (!opecom_sessionizer_peek(l->sz, e->visitor_id, e->session_id, ses))
        return 0;
    e->page_views = (uint32_t)(ses->administrative + ses->informational + ses->product_related);
    e->duration = ses->administrative_duration + ses->informational_duration +
                  ses->product_related_duration;
    e->first_ms = ses->start_ms;
    e->last_ms = ses->end_ms;
    e->revenue = ses->revenue_total;
    return 1;
}

/* Scores every dirty entry: rows built under the mutex, scored without it. */
static void refresh(srv *s, srv_live *l) {
    pending_score *p = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&l->refresh_mu);
    pthread_mutex_lock(&l->mu);
    while (l->dirty_head) {
        live_entry *e = l->dirty_head;
        unmark_dirty(l, e);
        opecom_session ses;
        if (!peek_entry(l, e, &ses)) {
            remove_entry(l, e);
            continue;
        }
        if (n == cap) {
            size_t c = cap ? 2 * cap : 64;
            pending_score *q = realloc(p, c * sizeof *q);
            if (q == NULL) { /* try again later */
                mark_dirty(l, e);
                break;
            }
            p = q;
            cap = c;
        }
        opecom_error err;
        if (srv_session_row(&ses, p[n].row, &err) != OPECOM_OK)
            continue;
        p[n].e = e;
        p[n].version = e->version;
        p[n].variant = e->variant;
        n++;
    }
    pthread_mutex_unlock(&l->mu);
    float *prob = n ? malloc(n * 2 * sizeof *prob) : NULL;
    if (prob == NULL) {
        pthread_mutex_unlock(&l->refresh_mu);
        free(p);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        srv_score_result r;
        opecom_error err;
        if (srv_score(s, p[i].variant, p[i].row, 0, &r, &err) == OPECOM_OK) {
            prob[2 * i] = r.r.probability;
            prob[2 * i + 1] = r.r.confidence;
        } else {
            prob[2 * i] = prob[2 * i + 1] = NAN;
        }
        srv_score_done(&r);
    }
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < n; i++) {
        live_entry *e = p[i].e;
        if (e->version != p[i].version || isnan(prob[2 * i]))
            continue;
        e->scored = 1;
        e->probability = prob[2 * i];
        e->confidence = prob[2 * i + 1];
    }
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_unlock(&l->refresh_mu);
    free(prob);
    free(p);
}

static void *scorer_main(void *arg) {
    srv *s = arg;
    srv_live *l = s->live;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        if (l->dirty_head == NULL) {
            pthread_cond_wait(&l->wake, &l->mu);
            continue;
        }
        pthread_mutex_unlock(&l->mu);
        refresh(s, l);
        /* let changes gather: one score per session per period at most */
        struct timespec ts = {0, SCORER_PERIOD_MS * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ===================================================================== *
 * Opening and closing
 * ===================================================================== */

int live_open(srv *s, char *err, size_t err_size) {
    s->live = NULL;
    srv_live *l = calloc(1, sizeof *l);
    if (l == NULL) {
        snprintf(err, err_size, "sessionizer: out of memory");
        return -1;
    }
    l->n_buckets = 1024;
    l->buckets = calloc(l->n_buckets, sizeof *l->buckets);
    l->sid_buckets = calloc(l->n_buckets, sizeof *l->sid_buckets);
    l->drift = drift_queue_new(s);
    opecom_error oe;
    opecom_status st = opecom_sessionizer_create(&s->cfg.session, &l->sz, &oe);
    if (l->buckets == NULL || l->sid_buckets == NULL || l->drift == NULL || st != OPECOM_OK) {
        snprintf(err, err_size, "sessionizer: %s",
                 st != OPECOM_OK ? oe.message : "out of memory");
        drift_queue_free(l->drift);
        opecom_sessionizer_free(l->sz);
        free(l->buckets);
        free(l->sid_buckets);
        free(l);
        return -1;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->refresh_mu, NULL);
    pthread_cond_init(&l->wake, NULL);
    pthread_mutex_init(&l->follow_mu, NULL);
    pthread_cond_init(&l->follow_wake, NULL);
    pthread_cond_init(&l->applied_cv, NULL);
    l->applied = l->wanted = -1; /* log number 0 holds a version 1 file's events */
    s->live = l;
    int rc = pthread_create(&l->scorer, NULL, scorer_main, s);
    if (rc != 0) {
        snprintf(err, err_size, "sessionizer: cannot start the scorer thread: %s", strerror(rc));
        live_close(s);
        return -1;
    }
    l->scorer_started = 1;
    return 0;
}

int live_start(srv *s, char *err, size_t err_size) {
    srv_live *l = s->live;
    if (follow_once(s, l) != 0) {
        snprintf(err, err_size, "replaying the event log failed (see above)");
        return -1;
    }
    int rc = pthread_create(&l->follower, NULL, follower_main, s);
    if (rc != 0) {
        snprintf(err, err_size, "cannot start the log follower thread: %s", strerror(rc));
        return -1;
    }
    l->follower_started = 1;
    return 0;
}

void live_close(srv *s) {
    srv_live *l = s->live;
    if (l == NULL)
        return;
    if (l->follower_started) {
        pthread_mutex_lock(&l->follow_mu);
        l->follow_stop = 1;
        pthread_cond_signal(&l->follow_wake);
        pthread_cond_broadcast(&l->applied_cv);
        pthread_mutex_unlock(&l->follow_mu);
        pthread_join(l->follower, NULL);
    }
    if (l->scorer_started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_signal(&l->wake);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->scorer, NULL);
    }
    for (size_t i = 0; i < l->n_buckets; i++)
        for (live_entry *e = l->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    for (live_entry *e = l->free_list, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    opecom_sessionizer_free(l->sz);
    drift_queue_free(l->drift);
    pthread_mutex_destroy(&l->refresh_mu);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->follow_mu);
    pthread_cond_destroy(&l->follow_wake);
    pthread_cond_destroy(&l->applied_cv);
    free(l->buckets);
    free(l->sid_buckets);
    free(l);
    s->live = NULL;
}

/* ===================================================================== *
 * Reading
 * ===================================================================== */

int live_session(srv *s, const char *visitor_id, const char *session_id, opecom_session *out,
                 int *open) {
    srv_live *l = s->live;
    *open = 0;
    /* Read your writes across replicas: whatever any replica committed
     * before this request is applied here first (bounded wait). */
    int64_t head;
    if (srv_store_head(s->store, &head) != 0)
        return -1;
    live_wait(s, head, HEAD_WAIT_MS);
    pthread_mutex_lock(&l->mu);
    int found;
    if (visitor_id) {
        found = opecom_sessionizer_peek(l->sz, visitor_id, session_id, out);
    } else {
        live_entry *e = find_sid(l, session_id);
        found = e && opecom_sessionizer_peek(l->sz, e->visitor_id, session_id, out);
    }
    pthread_mutex_unlock(&l->mu);
    if (found) {
        *open = 1;
        return 1;
    }
    /* not under the mutex: the database is read without the writer */
    return srv_store_closed_session(s->store, visitor_id, session_id, out);
}

typedef struct ranked {
    live_entry *e;
    double p;
    int64_t last;
} ranked;

static int by_probability(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    int xs = !isnan(x->p), ys = !isnan(y->p);
    if (xs != ys)
        return ys - xs; /* unscored last */
    if (xs && x->p != y->p)
        return x->p < y->p ? 1 : -1;
    if (x->last != y->last)
        return x->last < y->last ? 1 : -1;
    return strcmp(x->e->session_id, y->e->session_id);
}

/* Copies an entry's cached view (mu held). */
static void show(const live_entry *e, srv_live_row *x) {
    memcpy(x->visitor_id, e->visitor_id, sizeof x->visitor_id);
    memcpy(x->session_id, e->session_id, sizeof x->session_id);
    x->variant = e->variant;
    x->version = e->version;
    x->page_views = e->page_views;
    x->duration = e->duration;
    x->revenue = e->revenue;
    x->probability = e->scored ? e->probability : (double)NAN;
    x->confidence = e->scored ? e->confidence : (double)NAN;
    x->first_ms = e->first_ms;
    x->last_ms = e->last_ms;
    int has = e->reasons_version == e->version;
    x->n_reasons = has ? e->n_reasons : -1;
    if (has)
        memcpy(x->reasons, e->reasons, sizeof x->reasons);
}

int live_rank(srv *s, size_t limit, srv_live_view *view) {
    srv_live *l = s->live;
    memset(view, 0, sizeof *view);
    view->now = srv_now_ms();
    refresh(s, l);

    /* rank every open session, copy out the first `limit` */
    pthread_mutex_lock(&l->mu);
    opecom_session_stats st;
    opecom_sessionizer_stats(l->sz, &st);
    size_t k = 0;
    ranked *rk = malloc((st.open_sessions ? st.open_sessions : 1) * sizeof *rk);
    srv_live_row *rows = malloc((limit ? limit : 1) * sizeof *rows);
    if (rk == NULL || rows == NULL) {
        pthread_mutex_unlock(&l->mu);
        free(rk);
        free(rows);
        return -1;
    }
    uint64_t cursor = 0;
    opecom_open_session os;
    while (opecom_sessionizer_open_next(l->sz, &cursor, &os) && k < st.open_sessions) {
        live_entry *e = find(l, os.visitor_id, os.session_id);
        if (e == NULL)
            continue; /* no memory for its entry when it opened */
        double p = e->scored ? e->probability : (double)NAN;
        rk[k++] = (ranked){e, p, e->last_ms};
        if (!isnan(p)) {
            int b = (int)(p * SRV_LIVE_BINS);
            view->histogram[b < 0 ? 0 : b >= SRV_LIVE_BINS ? SRV_LIVE_BINS - 1 : b]++;
        }
    }
    qsort(rk, k, sizeof *rk, by_probability);
    size_t m = k < limit ? k : limit;
    for (size_t i = 0; i < m; i++)
        show(rk[i].e, &rows[i]);
    pthread_mutex_unlock(&l->mu);
    free(rk);

    /* reasons for the rows that have none cached: row under the mutex,
     * explanation without it */
    for (size_t i = 0; i < m; i++) {
        srv_live_row *x = &rows[i];
        if (x->n_reasons >= 0)
            continue;
        x->n_reasons = 0;
        if (isnan(x->probability))
            continue;
        opecom_value row[ROW_MAX];
        opecom_session ses;
        opecom_error err;
        pthread_mutex_lock(&l->mu);
        int ok = opecom_sessionizer_peek(l->sz, x->visitor_id, x->session_id, &ses) &&
                 srv_session_row(&ses, row, &err) == OPECOM_OK;
        pthread_mutex_unlock(&l->mu);
        srv_score_result r;
        if (!ok)
            continue;
        opecom_status rc = srv_score(s, x->variant, row, SRV_LIVE_REASONS, &r, &err);
        srv_score_done(&r);
        if (rc != OPECOM_OK)
            continue;
        x->n_reasons = (int)(r.n_reasons < SRV_LIVE_REASONS ? r.n_reasons : SRV_LIVE_REASONS);
        for (int j = 0; j < x->n_reasons; j++)
            snprintf(x->reasons[j], sizeof x->reasons[j], "%s", r.reasons[j].text);
        pthread_mutex_lock(&l->mu);
        live_entry *e = find(l, x->visitor_id, x->session_id);
        if (e != NULL && e->version == x->version) {
            e->n_reasons = x->n_reasons;
            memcpy(e->reasons, x->reasons, sizeof x->reasons);
            e->reasons_version = x->version;
        }
        pthread_mutex_unlock(&l->mu);
    }
    view->active = k;
    view->rows = rows;
    view->n_rows = m;
    return 0;
}
