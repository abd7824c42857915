/*
 * test_session_live.c - what a live server needs from the sessionizer:
 * opecom_sessionizer_peek (the features of an open session, as if it closed
 * now, leaving nothing changed) and opecom_sessionizer_advance (closing idle
 * sessions by the clock when no event comes).
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_equals_the_session_when_it_closes),
        cmocka_unit_test(test_peek_changes_nothing),
        cmocka_unit_test(test_peek_does_not_make_a_visitor_returning),
        cmocka_unit_test(test_peek_misses_closed_unknown_and_overlong_keys),
        cmocka_unit_test(test_advance_closes_idle_sessions_by_the_clock),
        cmocka_unit_test(test_advance_rejects_a_time_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
