/*
 * live.c - the sessionizer fed with committed events, the open sessions
 * with their cached scores, and GET /api/sessions.
 *
 * One mutex guards the sessionizer and a hash table of the open sessions
 * (key: visitor id + session id; a second chain by session id alone serves
 * /api/predict without a visitor). The writer thread feeds events
 * (live_feed) and moves the clock (live_tick); sessions that close go to
 * db_store_closed, which only queues them, so nothing here ever waits for
 * the writer.
 *
 * An entry that changes gets a new version and joins the dirty list. A
 * scorer thread (and every /api/sessions request, so answers are current)
 * refreshes dirty entries: under the mutex it peeks the session (summary:
 * page views, duration, times, revenue) and builds its model row; with the
 * mutex released it scores the rows (srv_score, no reasons, ~10 us each);
 * then it stores each score if the entry's version did not move meanwhile.
 * Reasons (~1 ms each) are computed only for the sessions /api/sessions
 * returns, and cached until the session changes. Entries are recycled
 * through a free list and freed only by live_close, so a pointer taken
 * under the mutex stays valid; the version (from one counter) tells whether
 * it still is the same session.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

#define LIMIT_DEFAULT 50
#define LIMIT_MAX 1000
#define N_BINS 10
#define N_REASONS 3
#define ROW_MAX 32
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
    char reasons[N_REASONS][OPECOM_REASON_MAX];
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
    uint64_t late_seen;

    pthread_t scorer;
    int scorer_started;
    int stop;
    pthread_cond_t wake;          /* the scorer waits on it */
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
 * Feeding (writer thread)
 * ===================================================================== */

/* Sessions closed by the last add or advance (mu held): stored, and their
 * entries dropped unless the key opened a new part meanwhile. */
static void drain_closed(srv *s, srv_live *l) {
    opecom_session closed, peeked;
    while (opecom_sessionizer_next(l->sz, &closed)) {
        db_store_closed(s, &closed);
        live_entry *e = find(l, closed.visitor_id, closed.session_id);
        if (e == NULL)
            continue;
        if (opecom_sessionizer_peek(l->sz, e->visitor_id, e->session_id, &peeked))
            mark_dirty(l, e);
        else
            remove_entry(l, e);
    }
}

/* After a feed or a tick (mu held): late events and active sessions. */
static void report(srv *s, srv_live *l) {
    opecom_session_stats st;
    opecom_sessionizer_stats(l->sz, &st);
    if (st.late_events > l->late_seen)
        metrics_late(s, st.late_events - l->late_seen);
    l->late_seen = st.late_events;
    metrics_active(s, l->n_entries);
}

static const char *or_null(const char *t) {
    return t[0] ? t : NULL;
}

void live_feed(srv *s, const srv_event *ev, size_t n, int64_t now_ms) {
    srv_live *l = s->live;
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    opecom_session_stats st;
    opecom_sessionizer_stats(l->sz, &st);
    uint64_t late = st.late_events;
    for (size_t i = 0; i < n; i++) {
        const srv_event *e = &ev[i];
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
        opecom_error err;
        if (opecom_sessionizer_add(l->sz, &oe, NULL, &err) != OPECOM_OK) {
            fprintf(stderr, "opecom-server: sessionizer: %s\n", err.message);
            continue;
        }
        opecom_sessionizer_stats(l->sz, &st);
        if (st.late_events != late) { /* dropped: no session to show */
            late = st.late_events;
            continue;
        }
        live_entry *x = find(l, e->visitor_id, e->session_id);
        if (x == NULL)
            x = insert(s, l, e->visitor_id, e->session_id);
        if (x)
            mark_dirty(l, x);
    }
    opecom_error err;
    if (now_ms > 0)
        opecom_sessionizer_advance(l->sz, now_ms, &err);
    drain_closed(s, l);
    report(s, l);
    if (l->dirty_head)
        pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
}

void live_tick(srv *s, int64_t now_ms) {
    srv_live *l = s->live;
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    opecom_error err;
    opecom_sessionizer_advance(l->sz, now_ms, &err);
    drain_closed(s, l);
    report(s, l);
    if (l->dirty_head)
        pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
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
        if (s->cfg.variants[e->variant].model == NULL)
            continue;
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
        if (srv_session_row(s, e->variant, &ses, p[n].row, &err) != OPECOM_OK)
            continue;
        p[n].e = e;
        p[n].version = e->version;
        p[n].variant = e->variant;
        n++;
    }
    metrics_active(s, l->n_entries);
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
    opecom_error oe;
    opecom_status st = opecom_sessionizer_create(&s->cfg.session, &l->sz, &oe);
    if (l->buckets == NULL || l->sid_buckets == NULL || st != OPECOM_OK) {
        snprintf(err, err_size, "sessionizer: %s",
                 st != OPECOM_OK ? oe.message : "out of memory");
        opecom_sessionizer_free(l->sz);
        free(l->buckets);
        free(l->sid_buckets);
        free(l);
        return -1;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->refresh_mu, NULL);
    pthread_cond_init(&l->wake, NULL);
    s->live = l;
    int rc = pthread_create(&l->scorer, NULL, scorer_main, s);
    if (rc != 0) {
        snprintf(err, err_size, "sessionizer: cannot start the scorer thread: %s", strerror(rc));
        s->live = NULL;
        opecom_sessionizer_free(l->sz);
        pthread_mutex_destroy(&l->refresh_mu);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->wake);
        free(l->buckets);
        free(l->sid_buckets);
        free(l);
        return -1;
    }
    l->scorer_started = 1;
    return 0;
}

void live_close(srv *s) {
    srv_live *l = s->live;
    if (l == NULL)
        return;
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
    pthread_mutex_destroy(&l->refresh_mu);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->wake);
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
    int found = 0;
    *open = 0;
    if (l != NULL) {
        pthread_mutex_lock(&l->mu);
        if (visitor_id) {
            found = opecom_sessionizer_peek(l->sz, visitor_id, session_id, out);
        } else {
            live_entry *e = find_sid(l, session_id);
            found = e && opecom_sessionizer_peek(l->sz, e->visitor_id, session_id, out);
        }
        pthread_mutex_unlock(&l->mu);
    }
    if (found) {
        *open = 1;
        return 1;
    }
    /* not under the mutex: the database is read without the writer */
    return db_closed_session(s, visitor_id, session_id, out);
}

/* The value of limit: the raw query string ("limit=5&x=y") or the value
 * alone ("5"). @return 0 with *value (NULL: absent), or -1. */
static void limit_value(const char *q, char *buf, size_t size, const char **value) {
    *value = NULL;
    if (q == NULL)
        return;
    if (strchr(q, '=') == NULL) {
        *value = q;
        return;
    }
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len >= 6 && strncmp(p, "limit=", 6) == 0) {
            size_t vl = len - 6 < size - 1 ? len - 6 : size - 1;
            memcpy(buf, p + 6, vl);
            buf[vl] = '\0';
            *value = buf;
        }
        p = amp ? amp + 1 : NULL;
    }
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

/* One row of the answer, copied out of the table under the mutex. */
typedef struct shown {
    live_entry *e;
    uint64_t version;
    int variant;
    char visitor_id[OPECOM_ID_MAX], session_id[OPECOM_ID_MAX];
    uint32_t page_views;
    double duration, revenue, probability, confidence;
    int64_t first_ms, last_ms;
    int n_reasons;
    char reasons[N_REASONS][OPECOM_REASON_MAX];
    int has_reasons;
} shown;

static double round4(double x) {
    return round(x * 1e4) / 1e4;
}

void live_sessions(srv *s, const char *query, srv_reply *out) {
    srv_live *l = s->live;
    char buf[32];
    const char *v;
    limit_value(query, buf, sizeof buf, &v);
    long limit = LIMIT_DEFAULT;
    if (v != NULL) {
        char *end = NULL;
        errno = 0;
        limit = strtol(v, &end, 10);
        if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || limit < 1 ||
            limit > LIMIT_MAX) {
            srv_reply_error(out, 422, "limit", "must be an integer from 1 to %d", LIMIT_MAX);
            return;
        }
    }
    if (l == NULL) {
        srv_reply_error(out, 503, NULL, "not ready");
        return;
    }
    refresh(s, l);

    /* rank everything, copy out the first `limit` */
    int64_t hist[N_BINS] = {0};
    pthread_mutex_lock(&l->mu);
    size_t n = l->n_entries, k = 0;
    ranked *rk = malloc((n ? n : 1) * sizeof *rk);
    shown *sh = malloc((size_t)limit * sizeof *sh);
    if (rk == NULL || sh == NULL) {
        pthread_mutex_unlock(&l->mu);
        free(rk);
        free(sh);
        srv_reply_json(out, 500, NULL);
        return;
    }
    for (size_t i = 0; i < l->n_buckets; i++)
        for (live_entry *e = l->buckets[i]; e; e = e->next) {
            double p = e->scored ? e->probability : (double)NAN;
            rk[k++] = (ranked){e, p, e->last_ms};
            if (!isnan(p)) {
                int b = (int)(p * N_BINS);
                hist[b < 0 ? 0 : b >= N_BINS ? N_BINS - 1 : b]++;
            }
        }
    qsort(rk, k, sizeof *rk, by_probability);
    size_t m = k < (size_t)limit ? k : (size_t)limit;
    for (size_t i = 0; i < m; i++) {
        live_entry *e = rk[i].e;
        shown *x = &sh[i];
        x->e = e;
        x->version = e->version;
        x->variant = e->variant;
        memcpy(x->visitor_id, e->visitor_id, sizeof x->visitor_id);
        memcpy(x->session_id, e->session_id, sizeof x->session_id);
        x->page_views = e->page_views;
        x->duration = e->duration;
        x->revenue = e->revenue;
        x->probability = e->scored ? e->probability : (double)NAN;
        x->confidence = e->scored ? e->confidence : (double)NAN;
        x->first_ms = e->first_ms;
        x->last_ms = e->last_ms;
        x->has_reasons = e->reasons_version == e->version;
        x->n_reasons = x->has_reasons ? e->n_reasons : 0;
        if (x->has_reasons)
            memcpy(x->reasons, e->reasons, sizeof x->reasons);
    }
    pthread_mutex_unlock(&l->mu);
    free(rk);

    /* reasons for the rows that have none cached: row under the mutex,
     * explanation without it */
    for (size_t i = 0; i < m; i++) {
        shown *x = &sh[i];
        if (x->has_reasons || isnan(x->probability))
            continue;
        opecom_value row[ROW_MAX];
        opecom_session ses;
        opecom_error err;
        pthread_mutex_lock(&l->mu);
        int ok = opecom_sessionizer_peek(l->sz, x->visitor_id, x->session_id, &ses) &&
                 srv_session_row(s, x->variant, &ses, row, &err) == OPECOM_OK;
        pthread_mutex_unlock(&l->mu);
        srv_score_result r;
        if (!ok || srv_score(s, x->variant, row, N_REASONS, &r, &err) != OPECOM_OK)
            continue;
        x->n_reasons = (int)(r.n_reasons < N_REASONS ? r.n_reasons : N_REASONS);
        for (int j = 0; j < x->n_reasons; j++)
            snprintf(x->reasons[j], sizeof x->reasons[j], "%s", r.reasons[j].text);
        pthread_mutex_lock(&l->mu);
        if (x->e->version == x->version) {
            x->e->n_reasons = x->n_reasons;
            memcpy(x->e->reasons, x->reasons, sizeof x->reasons);
            x->e->reasons_version = x->version;
        }
        pthread_mutex_unlock(&l->mu);
    }

    json_t *root = json_object(), *h = json_array(), *list = json_array();
    json_object_set_new(root, "now", json_integer(srv_now_ms()));
    json_object_set_new(root, "active", json_integer((json_int_t)k));
    for (int b = 0; b < N_BINS; b++)
        json_array_append_new(h, json_integer(hist[b]));
    json_object_set_new(root, "histogram", h);
    for (size_t i = 0; i < m; i++) {
        const shown *x = &sh[i];
        json_t *o = json_object(), *rs = json_array();
        json_object_set_new(o, "session_id", json_string(x->session_id));
        json_object_set_new(o, "visitor_id", json_string(x->visitor_id));
        json_object_set_new(o, "variant", json_string(s->cfg.variants[x->variant].name));
        json_object_set_new(o, "probability",
                            isnan(x->probability) ? json_null() : json_real(round4(x->probability)));
        json_object_set_new(o, "confidence",
                            isnan(x->confidence) ? json_null() : json_real(round4(x->confidence)));
        json_object_set_new(o, "page_views", json_integer(x->page_views));
        json_object_set_new(o, "duration", json_real(x->duration));
        json_object_set_new(o, "started", json_integer(x->first_ms));
        json_object_set_new(o, "last_seen", json_integer(x->last_ms));
        json_object_set_new(o, "revenue", json_real(x->revenue));
        for (int j = 0; j < x->n_reasons; j++)
            json_array_append_new(rs, json_string(x->reasons[j]));
        json_object_set_new(o, "reasons", rs);
        json_array_append_new(list, o);
    }
    json_object_set_new(root, "sessions", list);
    free(sh);
    srv_reply_json(out, 200, json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(10)));
    json_decref(root);
}
