/*
 * session_util.h - helpers of the sessionizer tests (test_session.c,
 * test_session_live.c): UTC dates worked out independently of the library,
 * events built in one line, and checks on collected sessions. Functions are
 * static and marked unused, so each test binary builds with -Werror.
 */
#ifndef OPECOM_TEST_SESSION_UTIL_H
#define OPECOM_TEST_SESSION_UTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "opecom.h"

#define SU_UNUSED __attribute__((unused))

#define DEFAULT_MODEL "models/shoppers-tabm-k4.opm"
#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* ===================================================================== *
 * Helpers
 * ===================================================================== */

/* Unix ms of a UTC date and time (written independently of the library). */
SU_UNUSED static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    static const int before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int64_t days = 0;
    for (int yy = 1970; yy < y; yy++)
        days += (yy % 4 == 0 && (yy % 100 != 0 || yy % 400 == 0)) ? 366 : 365;
    days += before[mo - 1] + (d - 1);
    if (mo > 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
        days++;
    return ((days * 24 + h) * 60 + mi) * 60 * SEC + s * SEC;
}

/* 2026-03-10, a Tuesday, 10:00 UTC: no special day near. */
#define T0 utc(2026, 3, 10, 10, 0, 0)

SU_UNUSED static opecom_sessionizer *make(const opecom_session_config *cfg)
{
    opecom_sessionizer *s = NULL;
    opecom_error err;
    assert_int_equal(opecom_sessionizer_create(cfg, &s, &err), OPECOM_OK);
    assert_non_null(s);
    return s;
}

SU_UNUSED static opecom_event view(const char *visitor, const char *session, int64_t t,
                                  opecom_page_type type, const char *page, double duration)
{
    opecom_event e;
    memset(&e, 0, sizeof e);
    e.visitor_id = visitor;
    e.session_id = session;
    e.time_ms = t;
    e.kind = OPECOM_EVENT_PAGE_VIEW;
    e.page_type = type;
    e.page_id = page;
    e.has_duration = duration >= 0;
    e.duration_s = duration >= 0 ? duration : 0;
    return e;
}

SU_UNUSED static opecom_event buy(const char *visitor, const char *session, int64_t t,
                                  double revenue)
{
    opecom_event e;
    memset(&e, 0, sizeof e);
    e.visitor_id = visitor;
    e.session_id = session;
    e.time_ms = t;
    e.kind = OPECOM_EVENT_PURCHASE;
    e.revenue = revenue;
    return e;
}

SU_UNUSED static void add(opecom_sessionizer *s, opecom_event e)
{
    opecom_error err;
    memset(&err, 0, sizeof err);
    opecom_status st = opecom_sessionizer_add(s, &e, NULL, &err);
    if (st != OPECOM_OK)
        fail_msg("add: %s", err.message);
}

/* Adds e, which must succeed. @return what became of it. */
SU_UNUSED static opecom_event_outcome add_outcome(opecom_sessionizer *s, opecom_event e)
{
    opecom_error err;
    memset(&err, 0, sizeof err);
    opecom_event_outcome o = (opecom_event_outcome)0;
    opecom_status st = opecom_sessionizer_add(s, &e, &o, &err);
    if (st != OPECOM_OK)
        fail_msg("add: %s", err.message);
    return o;
}

#define ADM OPECOM_PAGE_ADMINISTRATIVE
#define INF OPECOM_PAGE_INFORMATIONAL
#define PRD OPECOM_PAGE_PRODUCT_RELATED
#define UNKNOWN (-1.0)

/* Finishes and collects every session (at most max). */
SU_UNUSED static size_t finish_all(opecom_sessionizer *s, opecom_session *out, size_t max)
{
    assert_int_equal(opecom_sessionizer_finish(s, NULL), OPECOM_OK);
    size_t n = 0;
    while (n < max && opecom_sessionizer_next(s, &out[n]))
        n++;
    assert_int_equal(opecom_sessionizer_next(s, &out[0]) && n == max, 0);
    return n;
}

SU_UNUSED static const opecom_session *by_visitor(const opecom_session *all, size_t n,
                                                 const char *v)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(all[i].visitor_id, v) == 0)
            return &all[i];
    }
    fail_msg("no session of visitor %s", v);
    return NULL;
}

SU_UNUSED static void near(double got, double want)
{
    if (fabs(got - want) > 1e-9)
        fail_msg("got %.12g, want %.12g", got, want);
}

#endif
