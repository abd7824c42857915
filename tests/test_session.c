/*
 * test_session.c - the sessionizer (opecom_sessionizer_*): hand-made event
 * streams whose expected features are worked out here, by hand, in the
 * comments beside each check: counts and durations, the causal per-page
 * bounce rate, exit rate and page value, SpecialDay, Month, Weekend,
 * VisitorType, code tables, out-of-order events, idle splits, late events,
 * the validation of every event field, and flat memory once warm.
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
 * Counts and durations
 * ===================================================================== */

static void test_counts_and_durations_per_page_type(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    add(s, view("v", NULL, T0, ADM, "home", UNKNOWN));                /* 10 s: gap */
    add(s, view("v", NULL, T0 + 10 * SEC, PRD, "p1", UNKNOWN));       /* 30 s: gap */
    add(s, view("v", NULL, T0 + 40 * SEC, PRD, "p2", 25.0));          /* 25 s: given */
    add(s, view("v", NULL, T0 + 100 * SEC, INF, "faq", UNKNOWN));     /* last: 0 */
    opecom_session o[2];
    assert_int_equal(finish_all(s, o, 2), 1);
    near(o[0].administrative, 1);
    near(o[0].administrative_duration, 10);
    near(o[0].product_related, 2);
    near(o[0].product_related_duration, 30 + 25);
    near(o[0].informational, 1);
    near(o[0].informational_duration, 0);
    assert_int_equal(o[0].n_events, 4);
    assert_true(o[0].start_ms == T0 && o[0].end_ms == T0 + 100 * SEC);
    assert_int_equal(o[0].revenue, 0);
    opecom_sessionizer_free(s);
}

static void test_duration_runs_to_a_following_purchase(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    add(s, view("v", NULL, T0, PRD, "p1", UNKNOWN));
    add(s, buy("v", NULL, T0 + 20 * SEC, 50.0));
    opecom_session o[2];
    assert_int_equal(finish_all(s, o, 2), 1);
    near(o[0].product_related_duration, 20); /* the gap to the purchase */
    assert_int_equal(o[0].revenue, 1);
    near(o[0].revenue_total, 50);
    opecom_sessionizer_free(s);
}

static void test_purchase_only_session_has_zero_pages(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    add(s, buy("v", "s1", T0, 12.5));
    opecom_session o[2];
    assert_int_equal(finish_all(s, o, 2), 1);
    near(o[0].administrative + o[0].informational + o[0].product_related, 0);
    near(o[0].bounce_rates + o[0].exit_rates + o[0].page_values, 0);
    assert_int_equal(o[0].revenue, 1);
    opecom_sessionizer_free(s);
}

/* ===================================================================== *
 * Session boundaries: idle timeout, session ids, order, lateness
 * ===================================================================== */

static void test_idle_gap_splits_a_visitor_without_session_id(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    add(s, view("v", NULL, T0, ADM, "home", UNKNOWN));
    add(s, view("v", NULL, T0 + 29 * MIN, PRD, "p1", UNKNOWN)); /* 29 min: same session */
    add(s, view("v", NULL, T0 + 60 * MIN, PRD, "p2", UNKNOWN)); /* 31 min later: a new one */
    opecom_session o[3];
    assert_int_equal(finish_all(s, o, 3), 2);
    near(o[0].administrative + o[0].product_related, 2);
    near(o[0].administrative_duration, 29 * 60);
    near(o[1].product_related, 1);
    assert_string_equal(o[0].visitor_type, "New_Visitor");
    assert_string_equal(o[1].visitor_type, "Returning_Visitor");
    opecom_sessionizer_free(s);
}

static void test_gap_of_exactly_the_timeout_stays_in_the_session(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    add(s, view("v", NULL, T0, ADM, "home", UNKNOWN));
    add(s, view("v", NULL, T0 + 30 * MIN, ADM, "home", UNKNOWN));
    add(s, view("v", NULL, T0 + 60 * MIN + 1, ADM, "home", UNKNOWN)); /* 30 min + 1 ms */
    opecom_session o[3];
    assert_int_equal(finish_all(s, o, 3), 2);
    near(o[0].administrative, 2);
    near(o[1].administrative, 1);
    opecom_sessionizer_free(s);
}

static void test_timeout_is_configurable(void **state)
{
    (void)state;
    opecom_session_config cfg;
    opecom_session_config_default(&cfg);
    assert_int_equal(cfg.idle_timeout_s, 1800);
    cfg.idle_timeout_s = 60;
    opecom_sessionizer *s = make(&cfg);
    add(s, view("v", NULL, T0, ADM, "home", UNKNOWN));
    add(s, view("v", NULL, T0 + 61 * SEC, ADM, "home", UNKNOWN));
    opecom_session o[3];
    assert_int_equal(finish_all(s, o, 3), 2);
    opecom_sessionizer_free(s);
}

static void test_session_ids_separate_one_visitors_sessions(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    add(s, view("v", "a", T0, ADM, "home", UNKNOWN));
    add(s, view("v", "b", T0 + 1 * SEC, PRD, "p1", UNKNOWN));
    add(s, view("v", "a", T0 + 2 * SEC, PRD, "p2", UNKNOWN));
    opecom_session o[3];
    assert_int_equal(finish_all(s, o, 3), 2);
    /* both close at the end, a first: its deadline (last event 2 s) is
     * later than b's (1 s), so b comes first */
    assert_string_equal(o[0].session_id, "b");
    assert_string_equal(o[1].session_id, "a");
    near(o[1].administrative + o[1].product_related, 2);
    near(o[1].administrative_duration, 2); /* gap to the next event of a */
    opecom_sessionizer_free(s);
}

static void test_idle_gap_splits_a_session_id_into_parts(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    add(s, view("v", "a", T0, ADM, "home", UNKNOWN));
    add(s, view("v", "a", T0 + 45 * MIN, ADM, "home", UNKNOWN));
    opecom_session o[3];
    assert_int_equal(finish_all(s, o, 3), 2);
    assert_int_equal(o[0].part, 0);
    assert_int_equal(o[1].part, 1);
    assert_string_equal(o[1].session_id, "a");
    opecom_session_stats st;
    opecom_sessionizer_stats(s, &st);
    assert_int_equal(st.idle_splits, 1);
    opecom_sessionizer_free(s);
}

static void test_out_of_order_events_join_in_time_order(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    /* arrival order: the last event first, the first event second */
    add(s, view("v", NULL, T0 + 20 * SEC, INF, "faq", UNKNOWN));
    add(s, view("v", NULL, T0, ADM, "home", UNKNOWN));
    add(s, view("v", NULL, T0 + 10 * SEC, PRD, "p1", UNKNOWN));
    opecom_session o[2];
    assert_int_equal(finish_all(s, o, 2), 1);
    near(o[0].administrative_duration, 10); /* home: T0 -> T0+10 */
    near(o[0].product_related_duration, 10); /* p1: T0+10 -> T0+20 */
    near(o[0].informational_duration, 0);    /* faq: the last */
    assert_true(o[0].start_ms == T0);
    opecom_sessionizer_free(s);
}

static void test_out_of_order_event_can_open_a_session_earlier(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    /* 20 min early but within the timeout of the first event: it joins */
    add(s, view("v", NULL, T0 + 20 * MIN, PRD, "p1", UNKNOWN));
    add(s, view("v", NULL, T0, ADM, "home", UNKNOWN));
    opecom_session o[2];
    assert_int_equal(finish_all(s, o, 2), 1);
    near(o[0].administrative_duration, 20 * 60);
    opecom_sessionizer_free(s);
}

static void test_event_of_a_closed_session_is_late_and_dropped(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    add(s, view("v", NULL, T0, ADM, "home", UNKNOWN));
    add(s, view("w", NULL, T0 + 31 * MIN, ADM, "home", UNKNOWN)); /* watermark closes v's */
    opecom_session o[4];
    assert_int_equal(opecom_sessionizer_next(s, &o[0]), 1);
    assert_string_equal(o[0].visitor_id, "v");
    add(s, view("v", NULL, T0 + 5 * SEC, PRD, "p1", UNKNOWN));    /* v's session is gone */
    add(s, view("x", NULL, T0, PRD, "p1", UNKNOWN)); /* 31 min behind, nothing to join */
    add(s, view("w", NULL, T0 + 2 * MIN, PRD, "p1", UNKNOWN));    /* joins w's: not late */
    opecom_session_stats st;
    opecom_sessionizer_stats(s, &st);
    assert_int_equal(st.late_events, 2);
    assert_int_equal(st.events, 3);
    assert_int_equal(finish_all(s, o, 4), 1);
    assert_string_equal(o[0].visitor_id, "w");
    near(o[0].administrative + o[0].product_related, 2);
    opecom_sessionizer_free(s);
}

static void test_sessions_close_when_the_watermark_passes(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    opecom_session o;
    add(s, view("v", NULL, T0, ADM, "home", UNKNOWN));
    add(s, view("w", NULL, T0 + 30 * MIN, ADM, "home", UNKNOWN)); /* exactly the deadline */
    assert_int_equal(opecom_sessionizer_next(s, &o), 0);
    add(s, view("w", NULL, T0 + 30 * MIN + 1, ADM, "home", UNKNOWN)); /* 1 ms past it */
    assert_int_equal(opecom_sessionizer_next(s, &o), 1);
    assert_string_equal(o.visitor_id, "v");
    opecom_session_stats st;
    opecom_sessionizer_stats(s, &st);
    assert_int_equal(st.open_sessions, 1);
    opecom_sessionizer_free(s);
}

/* ===================================================================== *
 * Per-page statistics, causal
 * ===================================================================== */

static void test_bounce_exit_and_page_value_from_earlier_sessions(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    /* S1 (a): H, P, purchase 100. No history: all 0.
     * Then H: entrances 1, bounces 0, views 1, exits 0, unique 1, value 100;
     *      P: views 1, exits 1, unique 1, value 100. */
    add(s, view("a", NULL, T0, ADM, "H", UNKNOWN));
    add(s, view("a", NULL, T0 + 10 * SEC, PRD, "P", UNKNOWN));
    add(s, buy("a", NULL, T0 + 20 * SEC, 100));
    /* S2 (b): H only. H's bounce 0/1, exit 0/1, value 100/1.
     * Then H: entrances 2, bounces 1, views 2, exits 1, unique 2, value 100. */
    add(s, view("b", NULL, T0 + 1 * HOUR, ADM, "H", UNKNOWN));
    /* S3 (c): H, P, H. H: bounce 1/2, exit 1/2, value 100/2; P: bounce 0
     * (never an entrance), exit 1/1, value 100/1. Means over the 3 views:
     * bounce (.5 + 0 + .5)/3, exit (.5 + 1 + .5)/3, value (50+100+50)/3.
     * Then H: entrances 3, views 4, exits 2; P: views 2, exits 1, unique 2. */
    add(s, view("c", NULL, T0 + 2 * HOUR, ADM, "H", UNKNOWN));
    add(s, view("c", NULL, T0 + 2 * HOUR + 10 * SEC, PRD, "P", UNKNOWN));
    add(s, view("c", NULL, T0 + 2 * HOUR + 20 * SEC, ADM, "H", UNKNOWN));
    /* S4 (a again): P only. P: bounce 0/0 -> 0, exit 1/2, value 100/2. */
    add(s, view("a", NULL, T0 + 3 * HOUR, PRD, "P", UNKNOWN));
    opecom_session o[5];
    assert_int_equal(finish_all(s, o, 5), 4);
    near(o[0].bounce_rates, 0);
    near(o[0].exit_rates, 0);
    near(o[0].page_values, 0);
    near(o[1].bounce_rates, 0);
    near(o[1].exit_rates, 0);
    near(o[1].page_values, 100);
    near(o[2].bounce_rates, 1.0 / 3);
    near(o[2].exit_rates, 2.0 / 3);
    near(o[2].page_values, 200.0 / 3);
    near(o[3].bounce_rates, 0);
    near(o[3].exit_rates, 0.5);
    near(o[3].page_values, 50);
    assert_string_equal(o[0].visitor_type, "New_Visitor");
    assert_string_equal(o[1].visitor_type, "New_Visitor");
    assert_string_equal(o[2].visitor_type, "New_Visitor");
    assert_string_equal(o[3].visitor_type, "Returning_Visitor");
    opecom_sessionizer_free(s);
}

static void test_page_value_counts_only_revenue_after_the_page(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    /* S1: P1, P1 again, purchase 10, P2. P1 (one unique view) gets 10, P2 0. */
    add(s, view("a", NULL, T0, PRD, "P1", UNKNOWN));
    add(s, view("a", NULL, T0 + 5 * SEC, PRD, "P1", UNKNOWN));
    add(s, buy("a", NULL, T0 + 10 * SEC, 10));
    add(s, view("a", NULL, T0 + 20 * SEC, PRD, "P2", UNKNOWN));
    /* S2: P1, P2: page values 10/1 and 0/1, mean 5. */
    add(s, view("b", NULL, T0 + 1 * HOUR, PRD, "P1", UNKNOWN));
    add(s, view("b", NULL, T0 + 1 * HOUR + 5 * SEC, PRD, "P2", UNKNOWN));
    opecom_session o[3];
    assert_int_equal(finish_all(s, o, 3), 2);
    near(o[1].page_values, 5);
    opecom_sessionizer_free(s);
}

static void test_same_page_id_of_another_type_is_another_page(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    add(s, view("a", NULL, T0, PRD, "x", UNKNOWN)); /* a bounce on product page x */
    add(s, view("b", NULL, T0 + 1 * HOUR, ADM, "x", UNKNOWN)); /* administrative x: new */
    opecom_session o[3];
    assert_int_equal(finish_all(s, o, 3), 2);
    near(o[1].bounce_rates, 0);
    near(o[1].exit_rates, 0);
    opecom_sessionizer_free(s);
}

/* ===================================================================== *
 * Time features
 * ===================================================================== */

/* SpecialDay of a one-event session starting at t under cfg (NULL: default). */
static double special_day_at(const opecom_session_config *cfg, int64_t t)
{
    opecom_sessionizer *s = make(cfg);
    add(s, view("v", NULL, t, ADM, "home", UNKNOWN));
    opecom_session o[2];
    assert_int_equal(finish_all(s, o, 2), 1);
    opecom_sessionizer_free(s);
    return o[0].special_day;
}

static void test_special_day_before_valentines_day(void **state)
{
    (void)state;
    /* days before Feb 14: 12 -> 0.2 ... 6 -> 1 ... 2 -> 0.2, 1 and 0 -> 0 */
    static const struct { int day; double want; } cases[] = {
        {1, 0.0}, {2, 0.2}, {3, 0.2}, {4, 0.4}, {5, 0.6}, {6, 0.8}, {7, 0.8}, {8, 1.0},
        {9, 0.8}, {10, 0.6}, {11, 0.4}, {12, 0.2}, {13, 0.0}, {14, 0.0}, {15, 0.0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double got = special_day_at(NULL, utc(2026, 2, cases[i].day, 12, 0, 0));
        if (fabs(got - cases[i].want) > 1e-12)
            fail_msg("Feb %d: SpecialDay %g, want %g", cases[i].day, got, cases[i].want);
    }
    /* the session's start counts, in UTC: Feb 7 23:59:59 is still Feb 7 */
    near(special_day_at(NULL, utc(2026, 2, 7, 23, 59, 59)), 0.8);
}

static void test_special_day_before_mothers_day(void **state)
{
    (void)state;
    /* 2026: May 1 is a Friday, so the 2nd Sunday is May 10; 6 days before is May 4 */
    near(special_day_at(NULL, utc(2026, 5, 4, 9, 0, 0)), 1.0);
    near(special_day_at(NULL, utc(2026, 5, 8, 9, 0, 0)), 0.2);
    near(special_day_at(NULL, utc(2026, 5, 10, 9, 0, 0)), 0.0);
    /* 2027: May 1 is a Saturday, 2nd Sunday May 9, peak May 3 */
    near(special_day_at(NULL, utc(2027, 5, 3, 9, 0, 0)), 1.0);
    /* the default calendar is the UCI data's: nothing before Christmas */
    near(special_day_at(NULL, utc(2026, 12, 19, 9, 0, 0)), 0.0);
}

static void test_special_day_calendar_is_configurable(void **state)
{
    (void)state;
    static const opecom_special_day retail[] = {
        {11, 0, 4, 4, 1}, /* Black Friday: 4th Thursday of November + 1 */
        {12, 25, 0, 0, 0}, /* Christmas */
        {5, 0, 1, -1, 0}, /* Memorial Day: last Monday of May */
    };
    opecom_session_config cfg;
    opecom_session_config_default(&cfg);
    cfg.special_days = retail;
    cfg.n_special_days = 3;
    /* 2026: Nov 1 is a Sunday, Thanksgiving Nov 26, Black Friday Nov 27 */
    near(special_day_at(&cfg, utc(2026, 11, 21, 9, 0, 0)), 1.0);
    near(special_day_at(&cfg, utc(2026, 12, 19, 9, 0, 0)), 1.0);
    /* May 31 2026 is a Sunday: last Monday May 25, peak May 19 */
    near(special_day_at(&cfg, utc(2026, 5, 19, 9, 0, 0)), 1.0);
    near(special_day_at(&cfg, utc(2026, 2, 8, 9, 0, 0)), 0.0); /* Valentine's is gone */
    /* a special day early in January counts from December */
    static const opecom_special_day jan3[] = {{1, 3, 0, 0, 0}};
    cfg.special_days = jan3;
    cfg.n_special_days = 1;
    near(special_day_at(&cfg, utc(2026, 12, 28, 9, 0, 0)), 1.0);
}

static void test_month_weekend_and_utc_offset(void **state)
{
    (void)state;
    opecom_session_config cfg;
    opecom_session_config_default(&cfg);
    opecom_sessionizer *s = make(NULL);
    add(s, view("sat", NULL, utc(2026, 6, 13, 10, 0, 0), ADM, "h", UNKNOWN)); /* a Saturday */
    add(s, view("mon", NULL, utc(2026, 6, 15, 10, 0, 0), ADM, "h", UNKNOWN)); /* a Monday */
    add(s, view("jan", NULL, utc(2027, 1, 4, 10, 0, 0), ADM, "h", UNKNOWN));
    add(s, view("apr", NULL, utc(2027, 4, 4, 10, 0, 0), ADM, "h", UNKNOWN)); /* a Sunday */
    opecom_session o[5];
    assert_int_equal(finish_all(s, o, 5), 4);
    assert_string_equal(by_visitor(o, 4, "sat")->month, "June");
    assert_int_equal(by_visitor(o, 4, "sat")->weekend, 1);
    assert_int_equal(by_visitor(o, 4, "mon")->weekend, 0);
    assert_string_equal(by_visitor(o, 4, "jan")->month, "Jan");
    assert_string_equal(by_visitor(o, 4, "apr")->month, "Apr");
    assert_int_equal(by_visitor(o, 4, "apr")->weekend, 1);
    opecom_sessionizer_free(s);

    /* UTC+1: Sunday 2026-06-14 23:30Z is Monday 00:30 local; June 30
     * 23:30Z is July 1 local */
    cfg.utc_offset_min = 60;
    s = make(&cfg);
    add(s, view("sun", NULL, utc(2026, 6, 14, 23, 30, 0), ADM, "h", UNKNOWN));
    add(s, view("jun", NULL, utc(2026, 6, 30, 23, 30, 0), ADM, "h", UNKNOWN));
    assert_int_equal(finish_all(s, o, 5), 2);
    assert_int_equal(by_visitor(o, 2, "sun")->weekend, 0);
    assert_string_equal(by_visitor(o, 2, "jun")->month, "Jul");
    opecom_sessionizer_free(s);
}

/* ===================================================================== *
 * VisitorType and codes
 * ===================================================================== */

static void test_visitor_type_new_returning_other(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    add(s, view("v", "s1", T0, ADM, "h", UNKNOWN));
    add(s, view("", "s2", T0 + 1 * HOUR, ADM, "h", UNKNOWN));
    add(s, view("v", "s3", T0 + 2 * HOUR, ADM, "h", UNKNOWN));
    add(s, view(NULL, "s4", T0 + 3 * HOUR, ADM, "h", UNKNOWN));
    opecom_session o[5];
    assert_int_equal(finish_all(s, o, 5), 4);
    assert_string_equal(o[0].visitor_type, "New_Visitor");
    assert_string_equal(o[1].visitor_type, "Other");
    assert_string_equal(o[2].visitor_type, "Returning_Visitor");
    assert_string_equal(o[3].visitor_type, "Other");
    opecom_sessionizer_free(s);
}

static void test_codes_numbers_table_unknown_and_earliest_event(void **state)
{
    (void)state;
    static const opecom_code_entry table[] = {
        {OPECOM_CODE_BROWSER, "Firefox", 4},
        {OPECOM_CODE_REGION, "EU-West", 7},
    };
    opecom_session_config cfg;
    opecom_session_config_default(&cfg);
    cfg.codes = table;
    cfg.n_codes = 2;
    opecom_sessionizer *s = make(&cfg);
    opecom_event late_first = view("v", NULL, T0 + 10 * SEC, ADM, "h", UNKNOWN);
    late_first.os = "5";
    late_first.browser = "Firefox";
    late_first.traffic_type = "newsletter"; /* not in the table */
    add(s, late_first);
    opecom_event early = view("v", NULL, T0, ADM, "h", UNKNOWN);
    early.os = "3"; /* earlier in time: wins over "5" */
    add(s, early);
    opecom_event other = view("w", NULL, T0, ADM, "h", UNKNOWN); /* nothing given */
    add(s, other);
    opecom_session o[3];
    assert_int_equal(finish_all(s, o, 3), 2);
    const opecom_session *v = by_visitor(o, 2, "v"), *w = by_visitor(o, 2, "w");
    assert_int_equal(v->operating_systems, 3);
    assert_int_equal(v->browser, 4);
    assert_int_equal(v->region, 1);       /* none: the default unknown code */
    assert_int_equal(v->traffic_type, 2); /* unknown text: the unknown code */
    assert_int_equal(w->operating_systems, 2);
    assert_int_equal(w->browser, 2);
    assert_int_equal(w->region, 1);
    assert_int_equal(w->traffic_type, 2);
    opecom_sessionizer_free(s);
}

/* ===================================================================== *
 * Validation
 * ===================================================================== */

static void expect_bad(opecom_sessionizer *s, opecom_event e, opecom_event_field field,
                       const char *name)
{
    opecom_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(opecom_sessionizer_add(s, &e, NULL, &err), OPECOM_EINVAL);
    assert_int_equal(err.status, OPECOM_EINVAL);
    if (err.feature != (int32_t)field || strstr(err.message, name) == NULL)
        fail_msg("field %s: got feature %d, message '%s'", name, err.feature, err.message);
}

static void test_every_bad_field_is_named(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    char long_id[200];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    char long_page[300];
    memset(long_page, 'p', sizeof long_page - 1);
    long_page[sizeof long_page - 1] = '\0';
    opecom_event e;

    expect_bad(s, view("", "", T0, ADM, "h", UNKNOWN), OPECOM_FIELD_VISITOR_ID, "visitor_id");
    expect_bad(s, view(NULL, NULL, T0, ADM, "h", UNKNOWN), OPECOM_FIELD_VISITOR_ID, "visitor_id");
    expect_bad(s, view(long_id, NULL, T0, ADM, "h", UNKNOWN), OPECOM_FIELD_VISITOR_ID,
               "visitor_id");
    expect_bad(s, view("v", long_id, T0, ADM, "h", UNKNOWN), OPECOM_FIELD_SESSION_ID,
               "session_id");
    expect_bad(s, view("v", NULL, -1, ADM, "h", UNKNOWN), OPECOM_FIELD_TIME, "time_ms");
    expect_bad(s, view("v", NULL, INT64_MAX, ADM, "h", UNKNOWN), OPECOM_FIELD_TIME, "time_ms");
    e = view("v", NULL, T0, ADM, "h", UNKNOWN);
    e.kind = (opecom_event_kind)0;
    expect_bad(s, e, OPECOM_FIELD_KIND, "kind");
    expect_bad(s, view("v", NULL, T0, (opecom_page_type)9, "h", UNKNOWN), OPECOM_FIELD_PAGE_TYPE,
               "page_type");
    expect_bad(s, view("v", NULL, T0, ADM, "", UNKNOWN), OPECOM_FIELD_PAGE_ID, "page_id");
    expect_bad(s, view("v", NULL, T0, ADM, NULL, UNKNOWN), OPECOM_FIELD_PAGE_ID, "page_id");
    expect_bad(s, view("v", NULL, T0, ADM, long_page, UNKNOWN), OPECOM_FIELD_PAGE_ID, "page_id");
    e = view("v", NULL, T0, ADM, "h", 1.0);
    e.duration_s = -1.0;
    expect_bad(s, e, OPECOM_FIELD_DURATION, "duration_s");
    e.duration_s = NAN;
    expect_bad(s, e, OPECOM_FIELD_DURATION, "duration_s");
    e.duration_s = INFINITY;
    expect_bad(s, e, OPECOM_FIELD_DURATION, "duration_s");
    expect_bad(s, buy("v", NULL, T0, NAN), OPECOM_FIELD_REVENUE, "revenue");
    expect_bad(s, buy("v", NULL, T0, -5), OPECOM_FIELD_REVENUE, "revenue");
    static const char *const bad_codes[] = {"0", "1000", "99999999999999999999"};
    for (size_t i = 0; i < 3; i++) {
        e = view("v", NULL, T0, ADM, "h", UNKNOWN);
        e.os = bad_codes[i];
        expect_bad(s, e, OPECOM_FIELD_OS, "os");
        e.os = NULL;
        e.browser = bad_codes[i];
        expect_bad(s, e, OPECOM_FIELD_BROWSER, "browser");
        e.browser = NULL;
        e.region = bad_codes[i];
        expect_bad(s, e, OPECOM_FIELD_REGION, "region");
        e.region = NULL;
        e.traffic_type = bad_codes[i];
        expect_bad(s, e, OPECOM_FIELD_TRAFFIC_TYPE, "traffic_type");
    }
    e = view("v", NULL, T0, ADM, "h", UNKNOWN);
    e.browser = long_id;
    expect_bad(s, e, OPECOM_FIELD_BROWSER, "browser");

    /* nothing was taken in */
    opecom_session_stats st;
    opecom_sessionizer_stats(s, &st);
    assert_int_equal(st.events, 0);
    assert_int_equal(st.open_sessions, 0);
    assert_int_equal(st.late_events, 0);
    opecom_error err;
    assert_int_equal(opecom_sessionizer_add(s, NULL, NULL, &err), OPECOM_EINVAL);
    opecom_sessionizer_free(s);
    opecom_sessionizer_free(NULL);
}

static void expect_bad_config(const opecom_session_config *cfg, const char *word)
{
    opecom_sessionizer *s = (opecom_sessionizer *)1;
    opecom_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(opecom_sessionizer_create(cfg, &s, &err), OPECOM_EINVAL);
    assert_null(s);
    if (strstr(err.message, word) == NULL)
        fail_msg("config error '%s' does not name '%s'", err.message, word);
}

static void test_bad_configuration_is_named(void **state)
{
    (void)state;
    opecom_session_config cfg;
    opecom_session_config_default(&cfg);
    cfg.idle_timeout_s = 0;
    expect_bad_config(&cfg, "idle_timeout_s");
    opecom_session_config_default(&cfg);
    cfg.utc_offset_min = 2000;
    expect_bad_config(&cfg, "utc_offset_min");
    opecom_special_day bad_day = {13, 1, 0, 0, 0};
    cfg.utc_offset_min = 0;
    cfg.special_days = &bad_day;
    cfg.n_special_days = 1;
    expect_bad_config(&cfg, "special_days[0]");
    opecom_special_day bad_rule = {5, 0, 7, 2, 0}; /* weekday 7 */
    cfg.special_days = &bad_rule;
    expect_bad_config(&cfg, "special_days[0]");
    opecom_session_config_default(&cfg);
    opecom_code_entry dup[] = {{OPECOM_CODE_OS, "Linux", 3}, {OPECOM_CODE_OS, "Linux", 4}};
    cfg.codes = dup;
    cfg.n_codes = 2;
    expect_bad_config(&cfg, "twice");
    opecom_code_entry zero[] = {{OPECOM_CODE_OS, "Linux", 0}};
    cfg.codes = zero;
    cfg.n_codes = 1;
    expect_bad_config(&cfg, "codes[0]");
    opecom_session_config_default(&cfg);
    cfg.unknown_code[OPECOM_CODE_REGION] = 0;
    expect_bad_config(&cfg, "unknown_code[2]");
}

/* ===================================================================== *
 * Rows for models
 * ===================================================================== */

static void test_columns_are_the_uci_order(void **state)
{
    (void)state;
    static const char *const uci[OPECOM_SESSION_COLUMNS] = {
        "Administrative", "Administrative_Duration", "Informational", "Informational_Duration",
        "ProductRelated", "ProductRelated_Duration", "BounceRates", "ExitRates", "PageValues",
        "SpecialDay", "Month", "OperatingSystems", "Browser", "Region", "TrafficType",
        "VisitorType", "Weekend", "Revenue"};
    for (int32_t i = 0; i < OPECOM_SESSION_COLUMNS; i++) {
        assert_string_equal(opecom_session_column_name(i), uci[i]);
        assert_int_equal(opecom_session_column(uci[i]), i);
    }
    assert_null(opecom_session_column_name(OPECOM_SESSION_COLUMNS));
    assert_null(opecom_session_column_name(-1));
    assert_int_equal(opecom_session_column("administrative"), -1);
    assert_int_equal(opecom_session_column(NULL), -1);
}

static void test_session_row_scores_with_the_shipped_model(void **state)
{
    (void)state;
    opecom_model *m = NULL;
    opecom_error err;
    if (opecom_model_load(DEFAULT_MODEL, NULL, &m, &err) != OPECOM_OK)
        fail_msg("cannot load %s: %s", DEFAULT_MODEL, err.message);
    opecom_model_info info;
    assert_int_equal(opecom_model_describe(m, &info), OPECOM_OK);
    int32_t cols[64];
    assert_true(info.n_features <= 64);
    assert_int_equal(opecom_session_bind(m, cols, &err), OPECOM_OK);

    opecom_sessionizer *s = make(NULL);
    opecom_event e = view("v", NULL, utc(2026, 11, 20, 10, 0, 0), PRD, "p1", UNKNOWN);
    e.browser = "13";
    add(s, e);
    add(s, view("v", NULL, utc(2026, 11, 20, 10, 1, 0), PRD, "p2", UNKNOWN));
    opecom_session o[2];
    assert_int_equal(finish_all(s, o, 2), 1);
    opecom_value row[64];
    assert_int_equal(opecom_session_row(&o[0], cols, info.n_features, row, &err), OPECOM_OK);
    int32_t month = opecom_feature_index(m, "Month");
    int32_t browser = opecom_feature_index(m, "Browser");
    int32_t pr = opecom_feature_index(m, "ProductRelated_Duration");
    assert_string_equal(row[month].str, "Nov");
    assert_null(row[browser].str);
    near(row[browser].num, 13);
    near(row[pr].num, 60);
    opecom_result r;
    assert_int_equal(opecom_predict(m, NULL, row, &r, &err), OPECOM_OK);
    assert_int_equal(r.n_unknown, 0); /* every category known to the model */
    assert_true(r.probability > 0 && r.probability < 1);

    int32_t bad_col = OPECOM_SESSION_COLUMNS;
    assert_int_equal(opecom_session_row(&o[0], &bad_col, 1, row, &err), OPECOM_EINVAL);
    opecom_sessionizer_free(s);
    opecom_model_free(m);
}

static void test_bind_rejects_a_model_with_other_features(void **state)
{
    (void)state;
    tu_model d;
    static const tu_model_shape shape = {2, 1, 4, 2, 1, 3, 0};
    tu_model_make(&d, &shape, 7);
    opecom_model *m = tu_model_load_desc(&d.desc, "scalar");
    assert_non_null(m);
    int32_t cols[8];
    opecom_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(opecom_session_bind(m, cols, &err), OPECOM_EINVAL);
    assert_int_equal(err.feature, 0);
    assert_non_null(strstr(err.message, "not a session column"));
    opecom_model_free(m);
    tu_model_free(&d);
}

/* ===================================================================== *
 * Memory
 * ===================================================================== */

/* Feeds `n` events of a steady synthetic shop (500 visitors, 200 pages,
 * sessions of 10 events, 40 sessions open at a time) from event `from`. */
static void feed_steady(opecom_sessionizer *s, uint64_t from, uint64_t n)
{
    char visitor[16], session[16], page[16];
    for (uint64_t i = from; i < from + n; i++) {
        uint64_t sess = i / 10;
        uint64_t slot = sess % 40;
        int64_t t = T0 + (int64_t)(sess / 40) * 40 * MIN + (int64_t)slot * SEC +
                    (int64_t)(i % 10) * 2 * MIN;
        snprintf(visitor, sizeof visitor, "v%llu", (unsigned long long)(sess % 500));
        snprintf(session, sizeof session, "s%llu", (unsigned long long)sess);
        snprintf(page, sizeof page, "p%llu", (unsigned long long)((i * 7919) % 200));
        if (i % 10 == 9)
            add(s, buy(visitor, session, t, 5));
        else
            add(s, view(visitor, session, t, (opecom_page_type)(1 + i % 3), page, UNKNOWN));
        opecom_session o;
        while (opecom_sessionizer_next(s, &o))
            ;
    }
}

static void test_memory_is_flat_once_warm(void **state)
{
    (void)state;
    opecom_sessionizer *s = make(NULL);
    feed_steady(s, 0, 100000);
    opecom_session_stats a, b;
    opecom_sessionizer_stats(s, &a);
    feed_steady(s, 100000, 200000);
    opecom_sessionizer_stats(s, &b);
    assert_int_equal(b.events, 300000);
    assert_int_equal(b.late_events, 0);
    assert_true(b.sessions >= 29000);
    assert_true(b.open_sessions <= 80);
    if (b.memory_bytes != a.memory_bytes)
        fail_msg("memory grew from %llu to %llu bytes", (unsigned long long)a.memory_bytes,
                 (unsigned long long)b.memory_bytes);
    print_message("# %llu events, %llu sessions, %llu bytes held\n",
                  (unsigned long long)b.events, (unsigned long long)b.sessions,
                  (unsigned long long)b.memory_bytes);
    opecom_sessionizer_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_durations_per_page_type),
        cmocka_unit_test(test_duration_runs_to_a_following_purchase),
        cmocka_unit_test(test_purchase_only_session_has_zero_pages),
        cmocka_unit_test(test_idle_gap_splits_a_visitor_without_session_id),
        cmocka_unit_test(test_gap_of_exactly_the_timeout_stays_in_the_session),
        cmocka_unit_test(test_timeout_is_configurable),
        cmocka_unit_test(test_session_ids_separate_one_visitors_sessions),
        cmocka_unit_test(test_idle_gap_splits_a_session_id_into_parts),
        cmocka_unit_test(test_out_of_order_events_join_in_time_order),
        cmocka_unit_test(test_out_of_order_event_can_open_a_session_earlier),
        cmocka_unit_test(test_event_of_a_closed_session_is_late_and_dropped),
        cmocka_unit_test(test_sessions_close_when_the_watermark_passes),
        cmocka_unit_test(test_bounce_exit_and_page_value_from_earlier_sessions),
        cmocka_unit_test(test_page_value_counts_only_revenue_after_the_page),
        cmocka_unit_test(test_same_page_id_of_another_type_is_another_page),
        cmocka_unit_test(test_special_day_before_valentines_day),
        cmocka_unit_test(test_special_day_before_mothers_day),
        cmocka_unit_test(test_special_day_calendar_is_configurable),
        cmocka_unit_test(test_month_weekend_and_utc_offset),
        cmocka_unit_test(test_visitor_type_new_returning_other),
        cmocka_unit_test(test_codes_numbers_table_unknown_and_earliest_event),
        cmocka_unit_test(test_every_bad_field_is_named),
        cmocka_unit_test(test_bad_configuration_is_named),
        cmocka_unit_test(test_columns_are_the_uci_order),
        cmocka_unit_test(test_session_row_scores_with_the_shipped_model),
        cmocka_unit_test(test_bind_rejects_a_model_with_other_features),
        cmocka_unit_test(test_memory_is_flat_once_warm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
