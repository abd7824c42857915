/*
 * test_session_live.c - what a live server needs from the sessionizer:
 * opecom_sessionizer_peek (the features of an open session, as if it closed
 * now, leaving nothing changed), opecom_sessionizer_advance (closing idle
 * sessions by the clock when no event comes), the outcome of each
 * opecom_sessionizer_add, and opecom_sessionizer_open_next (the walk over the
 * open sessions, checked against a model of what should be open). Linked
 * with -Wl,--wrap=malloc,calloc,realloc to count allocations.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "opecom.h"
#include "testutil.h"

#include "session_util.h"

/* ===================================================================== *
 * Allocation counter (linked with -Wl,--wrap=malloc,calloc,realloc)
 * ===================================================================== */

static long n_allocs;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n)
{
    n_allocs++;
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
    n_allocs++;
    return __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
    n_allocs++;
    return __real_realloc(p, n);
}

/* ===================================================================== *
 * Peek and advance
 * ===================================================================== */

/* Every field of two sessions, compared. */
static void same_session(const opecom_session *a, const opecom_session *b)
{
    assert_string_equal(a->visitor_id, b->visitor_id);
    assert_string_equal(a->session_id, b->session_id);
    assert_int_equal(a->part, b->part);
    assert_int_equal(a->n_events, b->n_events);
    assert_int_equal(a->start_ms, b->start_ms);
    assert_int_equal(a->end_ms, b->end_ms);
    near(a->revenue_total, b->revenue_total);
    near(a->administrative, b->administrative);
    near(a->administrative_duration, b->administrative_duration);
    near(a->informational, b->informational);
    near(a->informational_duration, b->informational_duration);
    near(a->product_related, b->product_related);
    near(a->product_related_duration, b->product_related_duration);
    near(a->bounce_rates, b->bounce_rates);
    near(a->exit_rates, b->exit_rates);
    near(a->page_values, b->page_values);
    near(a->special_day, b->special_day);
    assert_string_equal(a->month, b->month);
    assert_string_equal(a->visitor_type, b->visitor_type);
    assert_int_equal(a->operating_systems, b->operating_systems);
    assert_int_equal(a->browser, b->browser);
    assert_int_equal(a->region, b->region);
    assert_int_equal(a->traffic_type, b->traffic_type);
    assert_int_equal(a->weekend, b->weekend);
    assert_int_equal(a->revenue, b->revenue);
}

/* A history that gives pages non-zero statistics: "a" buys after H, P. */
static void history(opecom_sessionizer *s)
{
    add(s, view("a", "s1", T0, ADM, "H", 5));
    add(s, view("a", "s1", T0 + 10 * SEC, PRD, "P", 7));
    add(s, buy("a", "s1", T0 + 20 * SEC, 100));
    opecom_error err;
    assert_int_equal(opecom_sessionizer_advance(s, T0 + 1 * HOUR, &err), OPECOM_OK);
    opecom_session o;
    assert_int_equal(opecom_sessionizer_next(s, &o), 1);
}

static void test_peek_equals_the_session_when_it_closes(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    history(s);
    add(s, view("a", "s2", T0 + 2 * HOUR, ADM, "H", 4));
    add(s, view("a", "s2", T0 + 2 * HOUR + 10 * SEC, PRD, "P", 9));
    opecom_session peeked, closed;
    assert_int_equal(opecom_sessionizer_peek(s, "a", "s2", &peeked), 1);
    /* H: bounce 0/1, exit 0/1, value 100; P: exit 1/1, value 100 */
    near(peeked.product_related, 1);
    near(peeked.product_related_duration, 9);
    near(peeked.exit_rates, 0.5);
    near(peeked.page_values, 100);
    assert_string_equal(peeked.visitor_type, "Returning_Visitor");
    assert_int_equal(opecom_sessionizer_advance(s, T0 + 3 * HOUR, NULL), OPECOM_OK);
    assert_int_equal(opecom_sessionizer_next(s, &closed), 1);
    same_session(&peeked, &closed);
    opecom_sessionizer_free(s);
}

/* Peeking many times changes neither the statistics nor the history: two
 * sessionizers fed alike, one peeked at every step, close the same sessions. */
static void test_peek_changes_nothing(void **state)
{
    (void)state;
    opecom_sessionizer *plain = make(NULL), *peeked = make(NULL);
    static const char *const pages[] = {"H", "P", "Q", "H", "F"};
    for (int i = 0; i < 40; i++) {
        char v[16], sid[16];
        snprintf(v, sizeof v, "v%d", i % 7);
        snprintf(sid, sizeof sid, "s%d", i / 3);
        opecom_event e = (i % 5 == 4) ? buy(v, sid, T0 + i * 11 * MIN, 10.0 * i)
                                      : view(v, sid, T0 + i * 11 * MIN,
                                             (opecom_page_type)(1 + i % 3), pages[i % 5], i);
        add(plain, e);
        add(peeked, e);
        opecom_session o;
        assert_int_equal(opecom_sessionizer_peek(peeked, v, sid, &o), 1);
        assert_int_equal(opecom_sessionizer_peek(peeked, "nobody", sid, &o), 0);
    }
    opecom_session a[64], b[64];
    size_t n = finish_all(plain, a, 64);
    assert_int_equal(finish_all(peeked, b, 64), n);
    for (size_t i = 0; i < n; i++)
        same_session(&a[i], &b[i]);
    opecom_session_stats sa, sb;
    opecom_sessionizer_stats(plain, &sa);
    opecom_sessionizer_stats(peeked, &sb);
    assert_int_equal(sa.visitors, sb.visitors);
    assert_int_equal(sa.pages, sb.pages);
    opecom_sessionizer_free(plain);
    opecom_sessionizer_free(peeked);
}

/* A first session peeked is New_Visitor, and stays so when it closes; the
 * visitor's next session is Returning_Visitor. */
static void test_peek_does_not_make_a_visitor_returning(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    add(s, view("n", "s1", T0, ADM, "H", 1));
    opecom_session o;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(opecom_sessionizer_peek(s, "n", "s1", &o), 1);
        assert_string_equal(o.visitor_type, "New_Visitor");
    }
    add(s, view("n", "s2", T0 + 1 * HOUR, ADM, "H", 1));
    assert_int_equal(opecom_sessionizer_next(s, &o), 1);
    assert_string_equal(o.visitor_type, "New_Visitor");
    assert_int_equal(opecom_sessionizer_peek(s, "n", "s2", &o), 1);
    assert_string_equal(o.visitor_type, "Returning_Visitor");
    opecom_sessionizer_free(s);
}

static void test_peek_misses_closed_unknown_and_overlong_keys(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    opecom_session o;
    assert_int_equal(opecom_sessionizer_peek(s, "x", "y", &o), 0); /* empty sessionizer */
    add(s, view("x", "y", T0, ADM, "H", 1));
    assert_int_equal(opecom_sessionizer_peek(s, "x", "y", &o), 1);
    assert_int_equal(opecom_sessionizer_peek(s, "x", "z", &o), 0);
    assert_int_equal(opecom_sessionizer_peek(s, "x", NULL, &o), 0);
    char long_id[OPECOM_ID_MAX + 8];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_int_equal(opecom_sessionizer_peek(s, long_id, "y", &o), 0);
    assert_int_equal(opecom_sessionizer_peek(NULL, "x", "y", &o), 0);
    assert_int_equal(opecom_sessionizer_peek(s, "x", "y", NULL), 0);
    assert_int_equal(opecom_sessionizer_advance(s, T0 + 31 * MIN, NULL), OPECOM_OK);
    assert_int_equal(opecom_sessionizer_peek(s, "x", "y", &o), 0); /* closed now */
    assert_int_equal(opecom_sessionizer_next(s, &o), 1);
    opecom_sessionizer_free(s);
}

static void test_advance_closes_idle_sessions_by_the_clock(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    opecom_session o;
    add(s, view("v", "s", T0, ADM, "H", 1));
    add(s, view("w", "s", T0 + 10 * MIN, ADM, "H", 1));
    assert_int_equal(opecom_sessionizer_advance(s, T0 + 30 * MIN, NULL), OPECOM_OK);
    assert_int_equal(opecom_sessionizer_next(s, &o), 0); /* exactly the deadline */
    assert_int_equal(opecom_sessionizer_advance(s, T0 + 30 * MIN + 1, NULL), OPECOM_OK);
    assert_int_equal(opecom_sessionizer_next(s, &o), 1);
    assert_string_equal(o.visitor_id, "v");
    assert_int_equal(opecom_sessionizer_next(s, &o), 0);
    /* the clock never goes back: an earlier time changes nothing */
    assert_int_equal(opecom_sessionizer_advance(s, T0, NULL), OPECOM_OK);
    assert_int_equal(opecom_sessionizer_advance(s, T0 + 41 * MIN, NULL), OPECOM_OK);
    assert_int_equal(opecom_sessionizer_next(s, &o), 1);
    assert_string_equal(o.visitor_id, "w");
    /* an event an idle timeout behind the clock is late */
    add(s, view("z", "s", T0 + 5 * MIN, ADM, "H", 1));
    opecom_session_stats st;
    opecom_sessionizer_stats(s, &st);
    assert_int_equal(st.late_events, 1);
    assert_int_equal(st.open_sessions, 0);
    opecom_sessionizer_free(s);
}

static void test_advance_rejects_a_time_out_of_range(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    opecom_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(opecom_sessionizer_advance(s, -1, &err), OPECOM_EINVAL);
    assert_non_null(strstr(err.message, "time_ms"));
    assert_int_equal(opecom_sessionizer_advance(s, 253402300800000LL, &err), OPECOM_EINVAL);
    assert_int_equal(opecom_sessionizer_advance(NULL, T0, &err), OPECOM_EINVAL);
    opecom_sessionizer_free(s);
}

/* ===================================================================== *
 * What opecom_sessionizer_add did with an event
 * ===================================================================== */

static void test_outcome_started_then_joined(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    assert_int_equal(add_outcome(s, view("v", "s", T0, ADM, "H", 1)), OPECOM_EVENT_STARTED);
    assert_int_equal(add_outcome(s, view("v", "s", T0 + 5 * MIN, PRD, "P", 1)),
                     OPECOM_EVENT_JOINED);
    /* out of order, still within the timeout of the session's span */
    assert_int_equal(add_outcome(s, buy("v", "s", T0 - 10 * MIN, 5)), OPECOM_EVENT_JOINED);
    /* another key, at the same time, starts its own session */
    assert_int_equal(add_outcome(s, view("w", "s", T0, ADM, "H", 1)), OPECOM_EVENT_STARTED);
    assert_int_equal(add_outcome(s, view("v", NULL, T0, ADM, "H", 1)), OPECOM_EVENT_STARTED);
    opecom_session_stats st;
    opecom_sessionizer_stats(s, &st);
    assert_int_equal(st.events, 5);
    assert_int_equal(st.open_sessions, 3);
    assert_int_equal(st.late_events, 0);
    opecom_sessionizer_free(s);
}

static void test_outcome_of_an_idle_split_is_started(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    assert_int_equal(add_outcome(s, view("v", "s", T0, ADM, "H", 1)), OPECOM_EVENT_STARTED);
    /* 30 min 1 s later under the same id: a new part */
    assert_int_equal(add_outcome(s, view("v", "s", T0 + 30 * MIN + SEC, ADM, "H", 1)),
                     OPECOM_EVENT_STARTED);
    assert_int_equal(add_outcome(s, view("v", "s", T0 + 31 * MIN, ADM, "H", 1)),
                     OPECOM_EVENT_JOINED);
    opecom_session_stats st;
    opecom_sessionizer_stats(s, &st);
    assert_int_equal(st.idle_splits, 1);
    assert_int_equal(st.open_sessions, 1);
    uint64_t cur = 0;
    opecom_open_session o;
    assert_int_equal(opecom_sessionizer_open_next(s, &cur, &o), 1);
    assert_int_equal(o.part, 1);
    assert_int_equal(o.n_events, 2);
    assert_int_equal(opecom_sessionizer_open_next(s, &cur, &o), 0);
    opecom_sessionizer_free(s);
}

static void test_outcome_late_is_counted(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    assert_int_equal(add_outcome(s, view("v", "s", T0, ADM, "H", 1)), OPECOM_EVENT_STARTED);
    assert_int_equal(opecom_sessionizer_advance(s, T0 + 40 * MIN, NULL), OPECOM_OK);
    /* behind the closed session: late, not a new session */
    assert_int_equal(add_outcome(s, view("v", "s", T0 + 1 * MIN, ADM, "H", 1)),
                     OPECOM_EVENT_LATE);
    /* a key never seen, more than the timeout behind the watermark */
    assert_int_equal(add_outcome(s, view("u", "s", T0 + 5 * MIN, ADM, "H", 1)),
                     OPECOM_EVENT_LATE);
    opecom_session_stats st;
    opecom_sessionizer_stats(s, &st);
    assert_int_equal(st.late_events, 2);
    assert_int_equal(st.events, 1);
    assert_int_equal(st.open_sessions, 0);
    opecom_sessionizer_free(s);
}

static void test_outcome_may_be_null_and_is_untouched_on_error(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    opecom_error err;
    opecom_event e = view("v", "s", T0, ADM, "H", 1);
    assert_int_equal(opecom_sessionizer_add(s, &e, NULL, &err), OPECOM_OK);
    e.time_ms = T0 + 40 * MIN;
    assert_int_equal(opecom_sessionizer_add(s, &e, NULL, &err), OPECOM_OK);
    e.time_ms = T0 + 1 * MIN; /* late, with nowhere to say so */
    assert_int_equal(opecom_sessionizer_add(s, &e, NULL, &err), OPECOM_OK);
    opecom_session_stats st;
    opecom_sessionizer_stats(s, &st);
    assert_int_equal(st.events, 2);
    assert_int_equal(st.late_events, 1);

    const opecom_event_outcome unset = (opecom_event_outcome)77;
    opecom_event_outcome o = unset;
    opecom_event bad = view("v", "s", T0 + 41 * MIN, ADM, "", 1); /* empty page id */
    assert_int_equal(opecom_sessionizer_add(s, &bad, &o, &err), OPECOM_EINVAL);
    assert_int_equal(err.feature, OPECOM_FIELD_PAGE_ID);
    assert_int_equal(o, unset);
    bad = view("v", "s", -1, ADM, "H", 1);
    assert_int_equal(opecom_sessionizer_add(s, &bad, &o, &err), OPECOM_EINVAL);
    assert_int_equal(o, unset);
    assert_int_equal(opecom_sessionizer_add(s, NULL, &o, &err), OPECOM_EINVAL);
    assert_int_equal(o, unset);
    assert_int_equal(opecom_sessionizer_add(NULL, &e, &o, &err), OPECOM_EINVAL);
    assert_int_equal(o, unset);
    opecom_sessionizer_stats(s, &st);
    assert_int_equal(st.events, 2);
    assert_int_equal(st.late_events, 1);
    opecom_sessionizer_free(s);
}

/* ===================================================================== *
 * Walking the open sessions
 * ===================================================================== */

/* One session as the tests expect it. */
typedef struct want_session {
    char visitor[16], session[16];
    uint32_t part, n_events;
    int64_t first, last;
    int open;
    int seen; /* times the walk yielded it */
} want_session;

/* Walks s and checks it yields each open session of want[0..n) exactly
 * once, with its key, part, event count and span, and nothing else. */
static void check_walk(const opecom_sessionizer *s, want_session *want, size_t n)
{
    size_t n_open = 0;
    for (size_t i = 0; i < n; i++) {
        want[i].seen = 0;
        n_open += want[i].open != 0;
    }
    uint64_t cur = 0;
    opecom_open_session o;
    size_t walked = 0;
    while (opecom_sessionizer_open_next(s, &cur, &o)) {
        walked++;
        assert_true(walked <= n_open);
        size_t i = 0;
        while (i < n && !(want[i].open && strcmp(want[i].visitor, o.visitor_id) == 0 &&
                          strcmp(want[i].session, o.session_id) == 0))
            i++;
        if (i == n)
            fail_msg("walk yielded %s/%s part %u, which is not open", o.visitor_id,
                     o.session_id, o.part);
        want_session *w = &want[i];
        w->seen++;
        assert_int_equal(w->seen, 1);
        assert_int_equal(o.part, w->part);
        assert_int_equal(o.n_events, w->n_events);
        assert_int_equal(o.start_ms, w->first);
        assert_int_equal(o.end_ms, w->last);
    }
    assert_int_equal(walked, n_open);
    /* the end stays the end */
    assert_int_equal(opecom_sessionizer_open_next(s, &cur, &o), 0);
    opecom_session_stats st;
    opecom_sessionizer_stats(s, &st);
    assert_int_equal(st.open_sessions, n_open);
}

/* check gives add's verdict, status, field and message, and changes nothing:
 * the statistics and the open sessions stay as they were. */
static void test_check_is_add_without_adding(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    opecom_event ok = view("v", "s", T0, ADM, "H", 1);
    ok.os = "7";
    ok.browser = "Firefox"; /* text: looked up, the default code when unknown */
    opecom_event bad[6];
    for (int i = 0; i < 6; i++)
        bad[i] = ok;
    bad[0].os = "0";          /* a number is a code: 1..999 */
    bad[1].region = "1000";
    bad[2].page_id = "";
    bad[3].time_ms = -1;
    bad[4].duration_s = -2;
    bad[5].kind = (opecom_event_kind)9;
    opecom_error ec, ea;
    assert_int_equal(opecom_sessionizer_check(s, &ok, &ec), OPECOM_OK);
    opecom_session_stats before, after;
    opecom_sessionizer_stats(s, &before);
    assert_int_equal(before.events, 0);
    for (int i = 0; i < 6; i++) {
        memset(&ec, 0, sizeof ec);
        memset(&ea, 0, sizeof ea);
        assert_int_equal(opecom_sessionizer_check(s, &bad[i], &ec), OPECOM_EINVAL);
        assert_int_equal(opecom_sessionizer_add(s, &bad[i], NULL, &ea), OPECOM_EINVAL);
        assert_int_equal(ec.feature, ea.feature);
        assert_string_equal(ec.message, ea.message);
    }
    assert_int_equal(bad[0].os[0], '0');
    opecom_error e0;
    opecom_sessionizer_check(s, &bad[0], &e0);
    assert_int_equal(e0.feature, OPECOM_FIELD_OS);
    opecom_sessionizer_check(s, &bad[1], &e0);
    assert_int_equal(e0.feature, OPECOM_FIELD_REGION);
    opecom_sessionizer_stats(s, &after);
    assert_memory_equal(&before, &after, sizeof before);
    uint64_t cursor = 0;
    opecom_open_session os;
    assert_int_equal(opecom_sessionizer_open_next(s, &cursor, &os), 0);
    assert_int_equal(opecom_sessionizer_check(NULL, &ok, &ec), OPECOM_EINVAL);
    assert_int_equal(opecom_sessionizer_check(s, NULL, &ec), OPECOM_EINVAL);
    opecom_sessionizer_free(s);
}

static void test_walk_of_an_empty_sessionizer_yields_nothing(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    uint64_t cur = 0;
    opecom_open_session o;
    assert_int_equal(opecom_sessionizer_open_next(s, &cur, &o), 0);
    assert_int_equal(cur, 0);
    assert_int_equal(opecom_sessionizer_open_next(NULL, &cur, &o), 0);
    add(s, view("v", "s", T0, ADM, "H", 1));
    assert_int_equal(opecom_sessionizer_open_next(s, NULL, &o), 0);
    assert_int_equal(opecom_sessionizer_open_next(s, &cur, NULL), 0);
    assert_int_equal(cur, 0);
    /* finished: nothing open any more */
    assert_int_equal(opecom_sessionizer_finish(s, NULL), OPECOM_OK);
    assert_int_equal(opecom_sessionizer_open_next(s, &cur, &o), 0);
    opecom_sessionizer_free(s);
}

/* 4 visitors x 3 session ids (one of them none), plus sessions with no
 * visitor id; event counts 1..5, events out of order; then an advance that
 * closes the older half. */
static void test_walk_yields_each_open_session_once(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    static const char *const sids[] = {"a", "b", ""};
    want_session want[16];
    size_t n = 0;
    for (int v = 0; v < 5; v++) {
        for (int k = 0; k < 3; k++) {
            if (v == 4 && k == 2)
                continue; /* no visitor and no session id: not an event */
            want_session *w = &want[n];
            memset(w, 0, sizeof *w);
            if (v < 4)
                snprintf(w->visitor, sizeof w->visitor, "visitor-%d", v);
            snprintf(w->session, sizeof w->session, "%s", sids[k]);
            w->n_events = 1 + (uint32_t)(n % 5);
            /* the first 7 sessions end before T0 + 10 min, the rest after */
            int64_t base = T0 + (n < 7 ? 0 : 20 * MIN) + (int64_t)n * SEC;
            w->first = base;
            w->last = base + (w->n_events - 1) * MIN;
            w->open = 1;
            /* last event first, then the rest in reverse */
            for (uint32_t e = w->n_events; e-- > 0;)
                add(s, view(w->visitor, w->session, base + e * MIN, PRD, "P", 1));
            n++;
        }
    }
    assert_int_equal(n, 14);
    check_walk(s, want, n);

    /* the first 7 end by T0 + 5 min: closed 30 min after */
    assert_int_equal(opecom_sessionizer_advance(s, T0 + 40 * MIN, NULL), OPECOM_OK);
    size_t closed = 0;
    opecom_session c;
    while (opecom_sessionizer_next(s, &c))
        closed++;
    assert_int_equal(closed, 7);
    for (size_t i = 0; i < 7; i++)
        want[i].open = 0;
    check_walk(s, want, n);

    /* a new part of a closed key shows with its part number */
    add(s, view("visitor-0", "a", T0 + 40 * MIN, ADM, "H", 1));
    want[0].open = 1;
    want[0].part = 1;
    want[0].n_events = 1;
    want[0].first = want[0].last = T0 + 40 * MIN;
    check_walk(s, want, n);
    opecom_sessionizer_free(s);
}

/* A model of the sessionizer's rules (docs/features.md): per key at most one
 * open session; an event joins it when within T of its span, is late when a
 * remembered closed session of its key claims it or it is more than T behind
 * the watermark, and starts a new part otherwise. Closed sessions are
 * remembered while last + 2T >= watermark (for the part numbers). */
#define RAND_KEYS 9
#define RAND_EVENTS 1500

static void test_walk_matches_a_model_randomized(void **state)
{
    (void)state;
    static const char *const visitors[RAND_KEYS] = {"v0", "v0", "v0", "v1", "v1", "v2",
                                                    "", "", "v3"};
    static const char *const sessions[RAND_KEYS] = {"", "a", "b", "", "a", "a", "a", "b", ""};
    tu_rng rng = {tu_seed("open walk vs model", 20261203)};
    static want_session model[RAND_EVENTS];
    size_t tally[4] = {0, 0, 0, 0}, later_parts = 0; /* the model is exercised in full */
    for (int round = 0; round < 8; round++) {
        opecom_session_config cfg;
        opecom_session_config_default(&cfg);
        cfg.idle_timeout_s = 1 + (int64_t)(tu_next(&rng) % 120);
        const int64_t T = cfg.idle_timeout_s * SEC;
        opecom_sessionizer *s = make(&cfg);
        size_t n = 0;
        int64_t w = -1; /* watermark; -1: none yet */
        for (int i = 0; i < RAND_EVENTS; i++) {
            if (tu_next(&rng) % 16 == 0) { /* the clock moves, maybe backwards */
                int64_t t = (w < 0 ? T0 : w) + (int64_t)(tu_next(&rng) % (uint64_t)(2 * T)) - T;
                assert_int_equal(opecom_sessionizer_advance(s, t, NULL), OPECOM_OK);
                if (t > w)
                    w = t;
            } else {
                size_t k = tu_next(&rng) % RAND_KEYS;
                int64_t t = (w < 0 ? T0 : w) + (int64_t)(tu_next(&rng) % (uint64_t)(T * 5 / 2)) -
                            T * 8 / 5;
                /* what the model says */
                want_session *open = NULL;
                int has_prev = 0, claimed = 0;
                uint32_t prev_part = 0;
                for (size_t j = 0; j < n; j++) {
                    want_session *x = &model[j];
                    if (strcmp(x->visitor, visitors[k]) != 0 ||
                        strcmp(x->session, sessions[k]) != 0)
                        continue;
                    if (!x->open && x->last + 2 * T < w)
                        continue; /* forgotten */
                    if (!has_prev || x->part > prev_part)
                        prev_part = x->part;
                    has_prev = 1;
                    if (x->open)
                        open = x;
                    else if (t >= x->first - T && t <= x->last + T)
                        claimed = 1;
                }
                int join = open && t >= open->first - T && t <= open->last + T;
                opecom_event_outcome want_o =
                    join ? OPECOM_EVENT_JOINED
                         : (claimed || (w >= 0 && t + T < w)) ? OPECOM_EVENT_LATE
                                                              : OPECOM_EVENT_STARTED;
                opecom_event_outcome got = add_outcome(
                    s, view(visitors[k], sessions[k], t, PRD, i % 2 ? "P" : "Q", 1));
                if (got != want_o)
                    fail_msg("round %d event %d (key %zu, t %+lld ms from watermark): outcome %d, "
                             "model says %d", round, i, k, (long long)(t - w), got, want_o);
                tally[want_o]++;
                if (want_o == OPECOM_EVENT_JOINED) {
                    open->n_events++;
                    open->first = t < open->first ? t : open->first;
                    open->last = t > open->last ? t : open->last;
                } else if (want_o == OPECOM_EVENT_STARTED) {
                    assert_true(n < RAND_EVENTS);
                    want_session *x = &model[n++];
                    memset(x, 0, sizeof *x);
                    snprintf(x->visitor, sizeof x->visitor, "%s", visitors[k]);
                    snprintf(x->session, sizeof x->session, "%s", sessions[k]);
                    x->part = has_prev ? prev_part + 1 : 0;
                    later_parts += x->part > 0;
                    x->n_events = 1;
                    x->first = x->last = t;
                    x->open = 1;
                }
                if (want_o != OPECOM_EVENT_LATE && t > w)
                    w = t;
            }
            for (size_t j = 0; j < n; j++) {
                if (model[j].open && model[j].last + T < w)
                    model[j].open = 0;
            }
            if (i % 4 == 0) { /* the caller drains the closed sessions now and then */
                opecom_session c;
                while (opecom_sessionizer_next(s, &c)) {
                }
            }
            check_walk(s, model, n);
        }
        opecom_sessionizer_free(s);
    }
    printf("# joined %zu, started %zu (%zu later parts), late %zu\n",
           tally[OPECOM_EVENT_JOINED], tally[OPECOM_EVENT_STARTED], later_parts,
           tally[OPECOM_EVENT_LATE]);
    assert_true(tally[OPECOM_EVENT_JOINED] > 100 && tally[OPECOM_EVENT_STARTED] > 100 &&
                tally[OPECOM_EVENT_LATE] > 100 && later_parts > 100);
}

/* The walk neither allocates nor changes the memory held, and peeking at
 * each session it yields leaves the walk valid. */
static void test_walk_allocates_nothing(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    for (int i = 0; i < 300; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        add(s, view(v, "s", T0 + i * SEC, ADM, "H", 1));
        add(s, view(v, "s", T0 + i * SEC + 1, PRD, "P", 1));
    }
    opecom_session_stats before, after;
    opecom_sessionizer_stats(s, &before);
    assert_int_equal(before.open_sessions, 300);
    long allocs = n_allocs;
    size_t walked = 0;
    for (int pass = 0; pass < 3; pass++) {
        uint64_t cur = 0;
        opecom_open_session o;
        while (opecom_sessionizer_open_next(s, &cur, &o)) {
            walked++;
            assert_int_equal(o.n_events, 2);
            if (pass == 2) {
                opecom_session p;
                assert_int_equal(opecom_sessionizer_peek(s, o.visitor_id, o.session_id, &p), 1);
                assert_int_equal(p.n_events, 2);
                assert_int_equal(p.start_ms, o.start_ms);
            }
        }
    }
    assert_int_equal(n_allocs, allocs);
    assert_int_equal(walked, 900);
    opecom_sessionizer_stats(s, &after);
    assert_int_equal(after.memory_bytes, before.memory_bytes);
    assert_int_equal(after.open_sessions, 300);
    opecom_sessionizer_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_equals_the_session_when_it_closes),
        cmocka_unit_test(test_peek_changes_nothing),
        cmocka_unit_test(test_peek_does_not_make_a_visitor_returning),
        cmocka_unit_test(test_peek_misses_closed_unknown_and_overlong_keys),
        cmocka_unit_test(test_advance_closes_idle_sessions_by_the_clock),
        cmocka_unit_test(test_advance_rejects_a_time_out_of_range),
        cmocka_unit_test(test_outcome_started_then_joined),
        cmocka_unit_test(test_outcome_of_an_idle_split_is_started),
        cmocka_unit_test(test_outcome_late_is_counted),
        cmocka_unit_test(test_outcome_may_be_null_and_is_untouched_on_error),
        cmocka_unit_test(test_check_is_add_without_adding),
        cmocka_unit_test(test_walk_of_an_empty_sessionizer_yields_nothing),
        cmocka_unit_test(test_walk_yields_each_open_session_once),
        cmocka_unit_test(test_walk_matches_a_model_randomized),
        cmocka_unit_test(test_walk_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
