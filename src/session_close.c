/*
 * session_close.c - what happens when a session closes: its events sorted
 * by time, its UCI features computed from the per-page statistics of the
 * sessions closed before it, then its own page views added to those
 * statistics; plus the page table and the visitor history it reads.
 * docs/features.md defines every feature computed here.
 */
#include <stdlib.h>
#include <string.h>

#include "session.h"

/* ===================================================================== *
 * Pages and visitors
 * ===================================================================== */

static const char *text_copy(opecom_sessionizer *s, const char *t, size_t len)
{
    if (s->text == NULL || OPECOM_TEXT_BLOCK - s->text->used < len + 1) {
        text_block *b = malloc(sizeof *b);
        if (b == NULL)
            return NULL;
        b->next = s->text;
        b->used = 0;
        s->text = b;
    }
    char *p = s->text->data + s->text->used;
    memcpy(p, t, len);
    p[len] = '\0';
    s->text->used += len + 1;
    return p;
}

static int page_rehash(opecom_sessionizer *s, uint32_t n)
{
    uint32_t *b = malloc((size_t)n * sizeof *b);
    if (b == NULL)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        b[i] = OPECOM_NONE;
    for (uint32_t p = 0; p < s->n_pages; p++) {
        uint32_t at = (uint32_t)(s->pages[p].hash & (n - 1));
        s->pages[p].next = b[at];
        b[at] = p;
    }
    free(s->page_buckets);
    s->page_buckets = b;
    s->n_page_buckets = n;
    return 0;
}

uint32_t opecom_page_get(opecom_sessionizer *s, opecom_page_type type, const char *id, size_t len)
{
    uint64_t h = mix64(hash_bytes(OPECOM_FNV_BASIS ^ (uint64_t)type, id, len));
    if (s->n_page_buckets) {
        for (uint32_t p = s->page_buckets[h & (s->n_page_buckets - 1)]; p != OPECOM_NONE;
             p = s->pages[p].next) {
            const page *q = &s->pages[p];
            if (q->hash == h && q->type == type && q->len == len && memcmp(q->id, id, len) == 0)
                return p;
        }
    }
    if ((uint64_t)(s->n_pages + 1) * 4 > (uint64_t)s->n_page_buckets * 3 &&
        page_rehash(s, s->n_page_buckets ? s->n_page_buckets * 2 : 256) != 0)
        return OPECOM_NONE;
    if (opecom_grow((void **)&s->pages, &s->cap_pages, s->n_pages + 1, sizeof *s->pages) != 0)
        return OPECOM_NONE;
    const char *copy = text_copy(s, id, len);
    if (copy == NULL)
        return OPECOM_NONE;
    uint32_t p = s->n_pages++;
    page *q = &s->pages[p];
    memset(q, 0, sizeof *q);
    q->hash = h;
    q->type = (uint8_t)type;
    q->id = copy;
    q->len = (uint32_t)len;
    uint32_t at = (uint32_t)(h & (s->n_page_buckets - 1));
    q->next = s->page_buckets[at];
    s->page_buckets[at] = p;
    return p;
}

/* Room for `more` new visitors at a load factor of at most 1/2. */
int opecom_visitors_reserve(opecom_sessionizer *s, uint64_t more)
{
    if ((s->n_visitors + more) * 2 <= s->cap_visitors)
        return 0;
    uint64_t cap = s->cap_visitors ? s->cap_visitors : 1024;
    while ((s->n_visitors + more) * 2 > cap)
        cap *= 2;
    uint64_t *t = calloc((size_t)cap, sizeof *t);
    if (t == NULL)
        return -1;
    for (uint64_t i = 0; i < s->cap_visitors; i++) {
        uint64_t h = s->visitors[i];
        if (h == 0)
            continue;
        uint64_t at = h & (cap - 1);
        while (t[at] != 0)
            at = (at + 1) & (cap - 1);
        t[at] = h;
    }
    free(s->visitors);
    s->visitors = t;
    s->cap_visitors = cap;
    return 0;
}

/* @return 1 if the visitor was already in the history; adds it if not and
 * `add` is set. */
static int visitor_seen(opecom_sessionizer *s, const char *v, size_t len, int add)
{
    uint64_t h = mix64(hash_bytes(OPECOM_FNV_BASIS, v, len));
    if (h == 0)
        h = 1;
    uint64_t at = h & (s->cap_visitors - 1);
    while (s->visitors[at] != 0) {
        if (s->visitors[at] == h)
            return 1;
        at = (at + 1) & (s->cap_visitors - 1);
    }
    if (!add)
        return 0;
    s->visitors[at] = h;
    s->n_visitors++;
    return 0;
}

/* ===================================================================== *
 * Closing a session
 * ===================================================================== */

static int cmp_sortev(const void *a, const void *b)
{
    const sortev *x = a, *y = b;
    if (x->e.t != y->e.t)
        return x->e.t < y->e.t ? -1 : 1;
    return x->ord < y->ord ? -1 : x->ord > y->ord;
}

static double ratio(double num, uint64_t den) { return den ? num / (double)den : 0.0; }

void opecom_session_close_features(opecom_sessionizer *s, uint32_t r, opecom_session *o,
                                   int commit)
{
    srec *x = &s->recs[r];
    sortev *ev = s->scratch;
    uint32_t n = 0;
    for (chunk *c = x->head; c != NULL; c = c->next) {
        for (uint32_t i = 0; i < c->n; i++, n++) {
            ev[n].e = c->ev[i];
            ev[n].ord = n;
        }
    }
    if (x->unsorted)
        qsort(ev, n, sizeof *ev, cmp_sortev);

    memset(o, 0, sizeof *o);
    memcpy(o->visitor_id, x->visitor, x->vlen);
    memcpy(o->session_id, x->session, x->slen);
    o->part = x->part;
    o->n_events = n;
    o->start_ms = x->first;
    o->end_ms = x->last;

    /* counts, durations and the page averages, from earlier sessions only */
    double count[4] = {0, 0, 0, 0}, dur[4] = {0, 0, 0, 0};
    double sum_bounce = 0, sum_exit = 0, sum_value = 0;
    uint32_t n_views = 0, first_view = OPECOM_NONE, last_view = OPECOM_NONE;
    for (uint32_t j = 0; j < n; j++) {
        const sev *e = &ev[j].e;
        if (e->page == OPECOM_NONE) {
            o->revenue = 1;
            o->revenue_total += e->val;
            continue;
        }
        const page *p = &s->pages[e->page];
        double d = (e->flags & EV_HAS_DURATION) ? e->val
                   : j + 1 < n                  ? (double)(ev[j + 1].e.t - e->t) / 1000.0
                                                : 0.0;
        count[p->type] += 1;
        dur[p->type] += d;
        sum_bounce += ratio((double)p->bounces, p->entrances);
        sum_exit += ratio((double)p->exits, p->views);
        sum_value += ratio(p->value, p->uniq);
        if (first_view == OPECOM_NONE)
            first_view = j;
        last_view = j;
        n_views++;
    }
    o->administrative = count[OPECOM_PAGE_ADMINISTRATIVE];
    o->administrative_duration = dur[OPECOM_PAGE_ADMINISTRATIVE];
    o->informational = count[OPECOM_PAGE_INFORMATIONAL];
    o->informational_duration = dur[OPECOM_PAGE_INFORMATIONAL];
    o->product_related = count[OPECOM_PAGE_PRODUCT_RELATED];
    o->product_related_duration = dur[OPECOM_PAGE_PRODUCT_RELATED];
    o->bounce_rates = n_views ? sum_bounce / n_views : 0.0;
    o->exit_rates = n_views ? sum_exit / n_views : 0.0;
    o->page_values = n_views ? sum_value / n_views : 0.0;

    opecom_time_features(x->first + s->offset_ms, s->calendar, s->n_calendar, &o->month,
                         &o->weekend, &o->special_day);
    o->operating_systems = x->code[0] ? x->code[0] : s->unknown_code[0];
    o->browser = x->code[1] ? x->code[1] : s->unknown_code[1];
    o->region = x->code[2] ? x->code[2] : s->unknown_code[2];
    o->traffic_type = x->code[3] ? x->code[3] : s->unknown_code[3];
    if (x->vlen == 0)
        o->visitor_type = "Other";
    else
        o->visitor_type = visitor_seen(s, x->visitor, x->vlen, commit) ? "Returning_Visitor"
                                                                : "New_Visitor";

    /* this session's contribution to the page statistics */
    if (commit && n_views > 0) {
        page *entry = &s->pages[ev[first_view].e.page];
        entry->entrances++;
        if (n_views == 1)
            entry->bounces++;
        s->pages[ev[last_view].e.page].exits++;
        double after = 0.0;
        for (uint32_t j = n; j-- > 0;) {
            if (ev[j].e.page == OPECOM_NONE)
                after += ev[j].e.val;
            s->suffix[j] = after;
        }
        s->close_serial++;
        for (uint32_t j = 0; j < n; j++) {
            if (ev[j].e.page == OPECOM_NONE)
                continue;
            page *p = &s->pages[ev[j].e.page];
            p->views++;
            if (p->mark != s->close_serial) {
                p->mark = s->close_serial;
                p->uniq++;
                p->value += s->suffix[j];
            }
        }
    }
}

