/*
 * session.c - the sessionizer: raw events in, closed sessions with their
 * UCI features out (see "Sessions from raw events" in opecom.h and
 * docs/features.md).
 *
 * Shape. Every open session is a record in `recs`, found through a chained
 * hash table on its key (visitor id, session id) and kept in a min-heap on
 * its deadline (last event + idle timeout). Its events are stored in
 * fixed-size chunks taken from a pool. When the watermark (the largest event
 * time seen) passes a deadline, the session closes: its events are sorted by
 * time, its features computed from the per-page statistics as they stand,
 * then its own page views are added to those statistics. A closed session
 * leaves a tombstone (key and time span, no events) for twice the idle
 * timeout, so that an event arriving after its session closed is recognised
 * as late instead of starting a bogus session.
 *
 * Memory: records, chunks, heap and output queue grow to the largest number
 * of sessions open at once and are then reused: once warm, an event costs no
 * allocation. Only the page statistics and the visitor set grow with the
 * history (per distinct page and visitor). Every allocation an event needs
 * is made before anything changes, so a failed add leaves the sessionizer as
 * it was, and closing a session never fails.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

#define NONE OPECOM_NONE
#define CHUNK_EVENTS OPECOM_CHUNK_EVENTS
#define SLAB_CHUNKS 256
#define MAX_TIME_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */

/* ===================================================================== *
 * Small helpers
 * ===================================================================== */

static uint64_t key_hash(const char *v, size_t vlen, const char *s, size_t slen)
{
    uint64_t h = hash_bytes(OPECOM_FNV_BASIS, v, vlen);
    h = hash_bytes(h ^ 0xff, s, slen);
    return mix64(h);
}

/* Grows *p (an array of `size`-byte items, capacity *cap) to hold `need`. */
int opecom_grow(void **p, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    uint64_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    if (c > UINT32_MAX - 1)
        return -1;
    void *q = realloc(*p, (size_t)c * size);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = (uint32_t)c;
    return 0;
}

static opecom_status oom(opecom_error *err)
{
    return opecom_fail(err, OPECOM_ENOMEM, -1, -1, -1, "sessionizer: out of memory");
}

/* ===================================================================== *
 * Deadline heap of open sessions
 * ===================================================================== */

/* 1 when session a closes before session b. */
static int before(const opecom_sessionizer *s, uint32_t a, uint32_t b)
{
    const srec *x = &s->recs[a], *y = &s->recs[b];
    if (x->last != y->last)
        return x->last < y->last;
    if (x->first != y->first)
        return x->first < y->first;
    return x->seq < y->seq;
}

static void heap_set(opecom_sessionizer *s, uint32_t i, uint32_t r)
{
    s->heap[i] = r;
    s->recs[r].heap_pos = i;
}

static void heap_up(opecom_sessionizer *s, uint32_t i)
{
    uint32_t r = s->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(s, r, s->heap[parent]))
            break;
        heap_set(s, i, s->heap[parent]);
        i = parent;
    }
    heap_set(s, i, r);
}

static void heap_down(opecom_sessionizer *s, uint32_t i)
{
    uint32_t r = s->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= s->heap_n)
            break;
        if (c + 1 < s->heap_n && before(s, s->heap[c + 1], s->heap[c]))
            c++;
        if (!before(s, s->heap[c], r))
            break;
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, r);
}

static uint32_t heap_pop(opecom_sessionizer *s)
{
    uint32_t top = s->heap[0];
    s->heap_n--;
    if (s->heap_n > 0) {
        heap_set(s, 0, s->heap[s->heap_n]);
        heap_down(s, 0);
    }
    return top;
}

/* ===================================================================== *
 * Session records and their hash table
 * ===================================================================== */

static int rehash(opecom_sessionizer *s, uint32_t n_buckets)
{
    uint32_t *b = malloc((size_t)n_buckets * sizeof *b);
    if (b == NULL)
        return -1;
    for (uint32_t i = 0; i < n_buckets; i++)
        b[i] = NONE;
    for (uint32_t r = 0; r < s->n_recs; r++) {
        srec *x = &s->recs[r];
        if (x->state == REC_FREE)
            continue;
        uint32_t at = (uint32_t)(x->hash & (n_buckets - 1));
        x->next = b[at];
        b[at] = r;
    }
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = n_buckets;
    return 0;
}

/* Makes sure one more record can be created without allocating. */
static int reserve_rec(opecom_sessionizer *s)
{
    if (s->free_rec == NONE &&
        opecom_grow((void **)&s->recs, &s->cap_recs, s->n_recs + 1, sizeof *s->recs) != 0)
        return -1;
    if ((uint64_t)(s->n_live + 1) * 4 > (uint64_t)s->n_buckets * 3 &&
        rehash(s, s->n_buckets ? s->n_buckets * 2 : 64) != 0)
        return -1;
    return 0;
}

static uint32_t rec_new(opecom_sessionizer *s, uint64_t hash)
{
    uint32_t r;
    if (s->free_rec != NONE) {
        r = s->free_rec;
        s->free_rec = s->recs[r].next;
    } else {
        r = s->n_recs++;
    }
    srec *x = &s->recs[r];
    memset(x, 0, offsetof(srec, visitor));
    x->hash = hash;
    uint32_t at = (uint32_t)(hash & (s->n_buckets - 1));
    x->next = s->buckets[at];
    s->buckets[at] = r;
    s->n_live++;
    return r;
}

static void rec_delete(opecom_sessionizer *s, uint32_t r)
{
    uint32_t *link = &s->buckets[s->recs[r].hash & (s->n_buckets - 1)];
    while (*link != r)
        link = &s->recs[*link].next;
    *link = s->recs[r].next;
    s->recs[r].state = REC_FREE;
    s->recs[r].next = s->free_rec;
    s->free_rec = r;
    s->n_live--;
}

/* ===================================================================== *
 * Event chunks
 * ===================================================================== */

static int reserve_chunk(opecom_sessionizer *s)
{
    if (s->free_chunks != NULL)
        return 0;
    if (opecom_grow((void **)&s->slabs, &s->cap_slabs, s->n_slabs + 1, sizeof *s->slabs) != 0)
        return -1;
    chunk *slab = malloc(SLAB_CHUNKS * sizeof *slab);
    if (slab == NULL)
        return -1;
    s->slabs[s->n_slabs++] = slab;
    for (uint32_t i = 0; i < SLAB_CHUNKS; i++) {
        slab[i].next = s->free_chunks;
        s->free_chunks = &slab[i];
    }
    return 0;
}

/* 1 when appending to record r needs a new chunk. */
static int needs_chunk(const srec *x)
{
    return x->tail == NULL || x->tail->n == CHUNK_EVENTS;
}

static void rec_append(opecom_sessionizer *s, srec *x, const sev *e)
{
    if (needs_chunk(x)) {
        chunk *c = s->free_chunks;
        s->free_chunks = c->next;
        c->next = NULL;
        c->n = 0;
        if (x->tail)
            x->tail->next = c;
        else
            x->head = c;
        x->tail = c;
    }
    x->tail->ev[x->tail->n++] = *e;
    x->n_events++;
}

static void rec_release_events(opecom_sessionizer *s, srec *x)
{
    chunk *c = x->head;
    while (c != NULL) {
        chunk *next = c->next;
        c->next = s->free_chunks;
        s->free_chunks = c;
        c = next;
    }
    x->head = x->tail = NULL;
}

/* Closes record r: its session goes to the output queue, the record
 * becomes a tombstone. */
static void close_rec(opecom_sessionizer *s, uint32_t r)
{
    opecom_session *o = &s->outq[(s->out_head + s->out_n) % s->out_cap];
    s->out_n++;
    opecom_session_close_features(s, r, o, 1);
    srec *x = &s->recs[r];
    rec_release_events(s, x);
    x->state = REC_TOMB;
    s->tombs[(s->tomb_head + s->tomb_n) % s->tomb_cap] = r;
    s->tomb_n++;
    s->stats.sessions++;
}

/* Moves the watermark to t (if later), forgets expired tombstones and
 * closes every session whose deadline it passed. */
static void advance(opecom_sessionizer *s, int64_t t)
{
    if (!s->has_watermark || t > s->watermark) {
        s->watermark = t;
        s->has_watermark = 1;
    }
    const int64_t w = s->watermark;
    while (s->tomb_n > 0) {
        uint32_t r = s->tombs[s->tomb_head];
        if (s->recs[r].last + 2 * s->timeout_ms >= w)
            break;
        s->tomb_head = (s->tomb_head + 1) % s->tomb_cap;
        s->tomb_n--;
        rec_delete(s, r);
    }
    while (s->heap_n > 0 && s->recs[s->heap[0]].last + s->timeout_ms < w)
        close_rec(s, heap_pop(s));
}

/* ===================================================================== *
 * Public API
 * ===================================================================== */

static void init_stats_memory(const opecom_sessionizer *s, opecom_session_stats *st)
{
    uint64_t m = sizeof *s;
    m += (uint64_t)s->cap_recs * sizeof(srec) + (uint64_t)s->n_buckets * 4;
    m += (uint64_t)s->heap_cap * 4 + (uint64_t)s->tomb_cap * 4;
    m += (uint64_t)s->n_slabs * SLAB_CHUNKS * sizeof(chunk) + (uint64_t)s->cap_slabs * 8;
    m += (uint64_t)s->cap_pages * sizeof(page) + (uint64_t)s->n_page_buckets * 4;
    for (const text_block *b = s->text; b != NULL; b = b->next)
        m += sizeof *b;
    m += s->cap_visitors * 8;
    m += (uint64_t)s->out_cap * sizeof(opecom_session);
    m += (uint64_t)s->cap_scratch * (sizeof(sortev) + sizeof(double));
    m += (uint64_t)s->n_calendar * sizeof(opecom_special_day);
    st->memory_bytes = m;
}

opecom_status opecom_sessionizer_create(const opecom_session_config *cfg,
                                        opecom_sessionizer **out, opecom_error *err)
{
    opecom_session_config def;
    if (out == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "out must not be NULL");
    *out = NULL;
    if (cfg == NULL) {
        opecom_session_config_default(&def);
        cfg = &def;
    }
    if (cfg->idle_timeout_s < 1 || cfg->idle_timeout_s > 366LL * 86400)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                           "config idle_timeout_s %lld is outside 1 .. 31622400 (a year)",
                           (long long)cfg->idle_timeout_s);
    if (cfg->utc_offset_min < -1440 || cfg->utc_offset_min > 1440)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                           "config utc_offset_min %d is outside -1440 .. 1440",
                           (int)cfg->utc_offset_min);
    if (cfg->n_special_days > 64 || (cfg->n_special_days > 0 && cfg->special_days == NULL))
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                           "config special_days: %u entries (at most 64, and not NULL)",
                           cfg->n_special_days);
    for (uint32_t i = 0; i < cfg->n_special_days; i++) {
        const opecom_special_day *d = &cfg->special_days[i];
        int ok = d->month >= 1 && d->month <= 12 && d->day <= 31 && d->offset_days >= -31 &&
                 d->offset_days <= 31 &&
                 (d->day != 0 || (d->weekday <= 6 && (d->nth == -1 || (d->nth >= 1 && d->nth <= 5))));
        if (!ok)
            return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                               "config special_days[%u]: month %u, day %u, weekday %u, nth %d, "
                               "offset %d is not a valid rule",
                               i, d->month, d->day, d->weekday, d->nth, d->offset_days);
    }
    if (cfg->n_codes > 4096)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "config codes: %u entries (at most 4096)",
                           cfg->n_codes);
    for (int f = 0; f < 4; f++) {
        if (cfg->unknown_code[f] < 1 || cfg->unknown_code[f] > 999)
            return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                               "config unknown_code[%d] = %u is outside 1..999", f,
                               cfg->unknown_code[f]);
    }

    opecom_sessionizer *s = calloc(1, sizeof *s);
    if (s == NULL)
        return oom(err);
    s->free_rec = NONE;
    s->timeout_ms = cfg->idle_timeout_s * 1000;
    s->offset_ms = (int64_t)cfg->utc_offset_min * 60000;
    memcpy(s->unknown_code, cfg->unknown_code, sizeof s->unknown_code);
    opecom_status st = opecom_code_table_init(&s->codes, cfg->codes, cfg->n_codes, err);
    if (st != OPECOM_OK) {
        free(s);
        return st;
    }
    if (cfg->n_special_days > 0) {
        s->calendar = malloc(cfg->n_special_days * sizeof *s->calendar);
        if (s->calendar == NULL) {
            opecom_sessionizer_free(s);
            return oom(err);
        }
        memcpy(s->calendar, cfg->special_days, cfg->n_special_days * sizeof *s->calendar);
        s->n_calendar = cfg->n_special_days;
    }
    if (rehash(s, 64) != 0 || opecom_visitors_reserve(s, 1) != 0) {
        opecom_sessionizer_free(s);
        return oom(err);
    }
    *out = s;
    return OPECOM_OK;
}

void opecom_sessionizer_free(opecom_sessionizer *s)
{
    if (s == NULL)
        return;
    for (uint32_t i = 0; i < s->n_slabs; i++)
        free(s->slabs[i]);
    free(s->slabs);
    while (s->text != NULL) {
        text_block *next = s->text->next;
        free(s->text);
        s->text = next;
    }
    opecom_code_table_free(&s->codes);
    free(s->calendar);
    free(s->recs);
    free(s->buckets);
    free(s->heap);
    free(s->tombs);
    free(s->pages);
    free(s->page_buckets);
    free(s->visitors);
    free(s->outq);
    free(s->scratch);
    free(s->suffix);
    free(s);
}

static const char *const field_name[] = {
    "visitor_id", "session_id", "time_ms", "kind", "page_type", "page_id",
    "duration_s", "revenue", "os", "browser", "region", "traffic_type"};

static opecom_status bad(opecom_error *err, opecom_event_field f, const char *what)
{
    return opecom_fail(err, OPECOM_EINVAL, (int32_t)f, -1, -1, "event field '%s': %s",
                       field_name[f], what);
}

/* Checks every field; resolves the four codes. */
static opecom_status validate(const opecom_sessionizer *s, const opecom_event *ev,
                              size_t *vlen, size_t *slen, size_t *plen, uint16_t code[4],
                              opecom_error *err)
{
    *vlen = ev->visitor_id ? strnlen(ev->visitor_id, OPECOM_ID_MAX) : 0;
    *slen = ev->session_id ? strnlen(ev->session_id, OPECOM_ID_MAX) : 0;
    *plen = 0;
    if (*vlen >= OPECOM_ID_MAX)
        return bad(err, OPECOM_FIELD_VISITOR_ID, "longer than 127 bytes");
    if (*slen >= OPECOM_ID_MAX)
        return bad(err, OPECOM_FIELD_SESSION_ID, "longer than 127 bytes");
    if (*vlen == 0 && *slen == 0)
        return bad(err, OPECOM_FIELD_VISITOR_ID,
                   "empty, and so is session_id: an event needs at least one of them");
    if (ev->time_ms < 0 || ev->time_ms > MAX_TIME_MS)
        return bad(err, OPECOM_FIELD_TIME, "outside 1970-01-01 .. 9999-12-31");
    if (ev->kind == OPECOM_EVENT_PAGE_VIEW) {
        if (ev->page_type != OPECOM_PAGE_ADMINISTRATIVE &&
            ev->page_type != OPECOM_PAGE_INFORMATIONAL &&
            ev->page_type != OPECOM_PAGE_PRODUCT_RELATED)
            return bad(err, OPECOM_FIELD_PAGE_TYPE,
                       "not administrative, informational or product_related");
        *plen = ev->page_id ? strnlen(ev->page_id, OPECOM_PAGE_ID_MAX) : 0;
        if (*plen == 0)
            return bad(err, OPECOM_FIELD_PAGE_ID, "empty for a page view");
        if (*plen >= OPECOM_PAGE_ID_MAX)
            return bad(err, OPECOM_FIELD_PAGE_ID, "longer than 255 bytes");
        if (ev->has_duration && !(isfinite(ev->duration_s) && ev->duration_s >= 0))
            return bad(err, OPECOM_FIELD_DURATION, "not a finite number >= 0");
    } else if (ev->kind == OPECOM_EVENT_PURCHASE) {
        if (!(isfinite(ev->revenue) && ev->revenue >= 0))
            return bad(err, OPECOM_FIELD_REVENUE, "not a finite number >= 0");
    } else {
        return bad(err, OPECOM_FIELD_KIND, "not a page view or a purchase");
    }
    const char *text[4] = {ev->os, ev->browser, ev->region, ev->traffic_type};
    for (int f = 0; f < 4; f++) {
        opecom_status st = opecom_code_resolve(&s->codes, (opecom_code_field)f, text[f],
                                               s->unknown_code[f], &code[f], err);
        if (st != OPECOM_OK)
            return st;
    }
    return OPECOM_OK;
}

/* Makes sure closing every open session plus one more never allocates,
 * and that a session of `events` events can be sorted. */
static int reserve_closing(opecom_sessionizer *s, uint32_t extra_sessions, uint32_t events)
{
    uint32_t sessions = s->heap_n + extra_sessions;
    if (opecom_grow((void **)&s->heap, &s->heap_cap, sessions, sizeof *s->heap) != 0)
        return -1;
    if (opecom_visitors_reserve(s, sessions) != 0)
        return -1;
    if (events > s->cap_scratch) {
        uint32_t cap = s->cap_scratch;
        if (opecom_grow((void **)&s->scratch, &cap, events, sizeof *s->scratch) != 0)
            return -1;
        double *suf = realloc(s->suffix, (size_t)cap * sizeof *suf);
        if (suf == NULL)
            return -1;
        s->suffix = suf;
        s->cap_scratch = cap;
    }
    /* the rings must hold every session that may close before the caller
     * drains them, and every tombstone */
    uint32_t out_need = s->out_n + sessions;
    uint32_t tomb_need = s->tomb_n + sessions;
    if (out_need > s->out_cap) {
        uint32_t cap = s->out_cap ? s->out_cap : 16;
        while (cap < out_need)
            cap *= 2;
        opecom_session *q = malloc((size_t)cap * sizeof *q);
        if (q == NULL)
            return -1;
        for (uint32_t i = 0; i < s->out_n; i++)
            q[i] = s->outq[(s->out_head + i) % s->out_cap];
        free(s->outq);
        s->outq = q;
        s->out_head = 0;
        s->out_cap = cap;
    }
    if (tomb_need > s->tomb_cap) {
        uint32_t cap = s->tomb_cap ? s->tomb_cap : 16;
        while (cap < tomb_need)
            cap *= 2;
        uint32_t *q = malloc((size_t)cap * sizeof *q);
        if (q == NULL)
            return -1;
        for (uint32_t i = 0; i < s->tomb_n; i++)
            q[i] = s->tombs[(s->tomb_head + i) % s->tomb_cap];
        free(s->tombs);
        s->tombs = q;
        s->tomb_head = 0;
        s->tomb_cap = cap;
    }
    return 0;
}

static void take_codes(srec *x, const uint16_t code[4], int64_t t)
{
    for (int f = 0; f < 4; f++) {
        if (code[f] != 0 && (x->code[f] == 0 || t < x->code_t[f])) {
            x->code[f] = code[f];
            x->code_t[f] = t;
        }
    }
}

opecom_status opecom_sessionizer_check(const opecom_sessionizer *s, const opecom_event *ev,
                                       opecom_error *err)
{
    if (s == NULL || ev == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "s and ev must not be NULL");
    size_t vlen, slen, plen;
    uint16_t code[4];
    return validate(s, ev, &vlen, &slen, &plen, code, err);
}

opecom_status opecom_sessionizer_add(opecom_sessionizer *s, const opecom_event *ev,
                                     opecom_event_outcome *outcome, opecom_error *err)
{
    if (s == NULL || ev == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "s and ev must not be NULL");
    size_t vlen, slen, plen;
    uint16_t code[4];
    opecom_status st = validate(s, ev, &vlen, &slen, &plen, code, err);
    if (st != OPECOM_OK)
        return st;

    const int64_t t = ev->time_ms;
    const int64_t T = s->timeout_ms;
    const char *vid = ev->visitor_id ? ev->visitor_id : "";
    const char *sid = ev->session_id ? ev->session_id : "";
    uint64_t h = key_hash(vid, vlen, sid, slen);

    /* the open session of this key, and whether a closed one claims t */
    uint32_t open = NONE;
    uint32_t prev_part = 0;
    int has_prev = 0, claimed = 0;
    for (uint32_t r = s->buckets[h & (s->n_buckets - 1)]; r != NONE; r = s->recs[r].next) {
        const srec *x = &s->recs[r];
        if (x->hash != h || x->vlen != vlen || x->slen != slen ||
            memcmp(x->visitor, vid, vlen) != 0 || memcmp(x->session, sid, slen) != 0)
            continue;
        if (!has_prev || x->part >= prev_part)
            prev_part = x->part;
        has_prev = 1;
        if (x->state == REC_OPEN)
            open = r;
        else if (t >= x->first - T && t <= x->last + T)
            claimed = 1;
    }

    int join = open != NONE && t >= s->recs[open].first - T && t <= s->recs[open].last + T;
    if (!join && (claimed || (s->has_watermark && t + T < s->watermark))) {
        s->stats.late_events++;
        if (outcome != NULL)
            *outcome = OPECOM_EVENT_LATE;
        return OPECOM_OK;
    }

    /* reserve everything first: from here on nothing can fail */
    sev e;
    e.t = t;
    e.flags = 0;
    if (ev->kind == OPECOM_EVENT_PAGE_VIEW) {
        e.page = opecom_page_get(s, ev->page_type, ev->page_id, plen);
        if (e.page == NONE)
            return oom(err);
        e.val = ev->has_duration ? ev->duration_s : 0.0;
        e.flags = ev->has_duration ? EV_HAS_DURATION : 0;
    } else {
        e.page = NONE;
        e.val = ev->revenue;
    }
    uint32_t n_events = join ? s->recs[open].n_events + 1 : 1;
    if (reserve_chunk(s) != 0 || reserve_closing(s, join ? 0 : 1, n_events) != 0 ||
        (!join && reserve_rec(s) != 0))
        return oom(err);

    s->stats.events++;
    if (join) {
        srec *x = &s->recs[open];
        if (t < x->last)
            x->unsorted = 1;
        rec_append(s, x, &e);
        take_codes(x, code, t);
        if (t > x->last)
            x->last = t;
        if (t < x->first)
            x->first = t;
        heap_up(s, x->heap_pos);
        heap_down(s, s->recs[open].heap_pos);
        advance(s, t);
        if (outcome != NULL)
            *outcome = OPECOM_EVENT_JOINED;
        return OPECOM_OK;
    }

    /* a new session; an open one of the same key is idle past t and closes
     * as the watermark moves */
    advance(s, t);
    uint32_t r = rec_new(s, h);
    srec *x = &s->recs[r];
    x->seq = s->seq++;
    x->first = x->last = t;
    x->state = REC_OPEN;
    x->part = has_prev ? prev_part + 1 : 0;
    x->vlen = (uint8_t)vlen;
    x->slen = (uint8_t)slen;
    memcpy(x->visitor, vid, vlen);
    memcpy(x->session, sid, slen);
    x->visitor[vlen] = '\0'; /* opecom_sessionizer_open_next lends them as C strings */
    x->session[slen] = '\0';
    rec_append(s, x, &e);
    take_codes(x, code, t);
    if (has_prev && slen > 0)
        s->stats.idle_splits++;
    s->heap[s->heap_n++] = r;
    heap_up(s, s->heap_n - 1);
    if (outcome != NULL)
        *outcome = OPECOM_EVENT_STARTED;
    return OPECOM_OK;
}

opecom_status opecom_sessionizer_finish(opecom_sessionizer *s, opecom_error *err)
{
    if (s == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "s must not be NULL");
    while (s->heap_n > 0)
        close_rec(s, heap_pop(s));
    return OPECOM_OK;
}

opecom_status opecom_sessionizer_advance(opecom_sessionizer *s, int64_t time_ms,
                                         opecom_error *err)
{
    if (s == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "s must not be NULL");
    if (time_ms < 0 || time_ms > MAX_TIME_MS)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                           "time_ms %lld is outside 1970-01-01 .. 9999-12-31", (long long)time_ms);
    advance(s, time_ms);
    return OPECOM_OK;
}

int opecom_sessionizer_peek(opecom_sessionizer *s, const char *visitor_id, const char *session_id,
                            opecom_session *out)
{
    if (s == NULL || out == NULL)
        return 0;
    const char *vid = visitor_id ? visitor_id : "";
    const char *sid = session_id ? session_id : "";
    size_t vlen = strnlen(vid, OPECOM_ID_MAX), slen = strnlen(sid, OPECOM_ID_MAX);
    if (vlen == OPECOM_ID_MAX || slen == OPECOM_ID_MAX || s->n_buckets == 0)
        return 0;
    uint64_t h = key_hash(vid, vlen, sid, slen);
    for (uint32_t r = s->buckets[h & (s->n_buckets - 1)]; r != NONE; r = s->recs[r].next) {
        const srec *x = &s->recs[r];
        if (x->state == REC_OPEN && x->hash == h && x->vlen == vlen && x->slen == slen &&
            memcmp(x->visitor, vid, vlen) == 0 && memcmp(x->session, sid, slen) == 0) {
            opecom_session_close_features(s, r, out, 0);
            return 1;
        }
    }
    return 0;
}

int opecom_sessionizer_next(opecom_sessionizer *s, opecom_session *out)
{
    if (s == NULL || out == NULL || s->out_n == 0)
        return 0;
    *out = s->outq[s->out_head];
    s->out_head = (s->out_head + 1) % s->out_cap;
    s->out_n--;
    return 1;
}

/* The open sessions are exactly heap[0 .. heap_n): the cursor is an index
 * into the heap, which only add, advance and finish reorder. */
int opecom_sessionizer_open_next(const opecom_sessionizer *s, uint64_t *cursor,
                                 opecom_open_session *out)
{
    if (s == NULL || cursor == NULL || out == NULL || *cursor >= s->heap_n)
        return 0;
    const srec *x = &s->recs[s->heap[*cursor]];
    out->visitor_id = x->visitor;
    out->session_id = x->session;
    out->part = x->part;
    out->n_events = x->n_events;
    out->start_ms = x->first;
    out->end_ms = x->last;
    (*cursor)++;
    return 1;
}

void opecom_sessionizer_stats(const opecom_sessionizer *s, opecom_session_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof *out);
    if (s == NULL)
        return;
    *out = s->stats;
    out->open_sessions = s->heap_n;
    out->pages = s->n_pages;
    out->visitors = s->n_visitors;
    init_stats_memory(s, out);
}
