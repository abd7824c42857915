/*
 * session_features.c - the parts of a session's features that do not
 * depend on other sessions: Month, Weekend and SpecialDay from the start
 * time and a calendar of special days; the OperatingSystems / Browser /
 * Region / TrafficType code tables; the default configuration; and the
 * session columns in UCI order with the row helper for models.
 * docs/features.md is the reference for every definition here.
 */
#include <stdlib.h>
#include <string.h>

#include "session.h"

/* ===================================================================== *
 * Calendar arithmetic (proleptic Gregorian, days since 1970-01-01)
 * ===================================================================== */

/* Howard Hinnant's days_from_civil / civil_from_days. */
int64_t opecom_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* 0 Sunday .. 6 Saturday; 1970-01-01 was a Thursday. */
static unsigned weekday_of(int64_t days)
{
    int64_t w = (days + 4) % 7;
    return (unsigned)(w < 0 ? w + 7 : w);
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return dm[m - 1] + (m == 2 && leap);
}

/* The date of special day `sd` in year y (days since epoch); 0 when the
 * rule has no such day that year (Feb 30, a 5th Monday). */
static int special_date(const opecom_special_day *sd, int64_t y, int64_t *out)
{
    unsigned dim = days_in_month(y, sd->month);
    int64_t day;
    if (sd->day != 0) {
        if (sd->day > dim)
            return 0;
        day = opecom_days_from_civil(y, sd->month, sd->day);
    } else if (sd->nth > 0) {
        int64_t first = opecom_days_from_civil(y, sd->month, 1);
        unsigned shift = (sd->weekday + 7 - weekday_of(first)) % 7;
        unsigned dom = 1 + shift + 7 * (unsigned)(sd->nth - 1);
        if (dom > dim)
            return 0;
        day = first + dom - 1;
    } else {
        int64_t last = opecom_days_from_civil(y, sd->month, dim);
        day = last - (int64_t)((weekday_of(last) + 7 - sd->weekday) % 7);
    }
    *out = day + sd->offset_days;
    return 1;
}

/* SpecialDay d days before a special day. The UCI description: non-zero
 * from 12 to 2 days before (Valentine's Day: Feb 2 .. Feb 12), 1 at 6 days
 * before (Feb 8), in steps of 0.2. We take a linear rise over the 7 days
 * before the peak and a linear fall over the 5 after it, each rounded to
 * the nearest 0.2. */
double opecom_special_day_value(int64_t d)
{
    static const double table[13] = {
        0.0, 0.0, 0.2, 0.4, 0.6, 0.8, /* d = 0..5: falling from the peak */
        1.0,                          /* d = 6: the peak */
        0.8, 0.8, 0.6, 0.4, 0.2, 0.2  /* d = 7..12: rising to it */
    };
    return d >= 0 && d <= 12 ? table[d] : 0.0;
}

const char *opecom_month_name(unsigned m)
{
    static const char *const names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "June",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    return m >= 1 && m <= 12 ? names[m - 1] : "Jan";
}

void opecom_time_features(int64_t local_ms, const opecom_special_day *cal, uint32_t n_cal,
                          const char **month, int *weekend, double *special_day)
{
    int64_t days = local_ms / OPECOM_MS_PER_DAY - (local_ms % OPECOM_MS_PER_DAY < 0);
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    *month = opecom_month_name(m);
    unsigned wd = weekday_of(days);
    *weekend = wd == 0 || wd == 6;
    double best = 0.0;
    for (uint32_t i = 0; i < n_cal; i++) {
        /* a special day up to 12 days ahead may fall in the next year, and
         * one with a negative offset in the previous */
        for (int64_t yy = y - 1; yy <= y + 1; yy++) {
            int64_t sd;
            if (!special_date(&cal[i], yy, &sd))
                continue;
            double v = opecom_special_day_value(sd - days);
            if (v > best)
                best = v;
        }
    }
    *special_day = best;
}

/* ===================================================================== *
 * Default configuration
 * ===================================================================== */

/* The UCI data's calendar: its SpecialDay is non-zero only in February and
 * May (all of November and December are 0). */
static const opecom_special_day uci_calendar[] = {
    {2, 14, 0, 0, 0}, /* Valentine's Day */
    {5, 0, 0, 2, 0},  /* Mother's Day (US): 2nd Sunday of May */
};

void opecom_session_config_default(opecom_session_config *cfg)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->idle_timeout_s = 1800;
    cfg->utc_offset_min = 0;
    cfg->special_days = uci_calendar;
    cfg->n_special_days = sizeof uci_calendar / sizeof uci_calendar[0];
    cfg->codes = NULL;
    cfg->n_codes = 0;
    cfg->unknown_code[OPECOM_CODE_OS] = 2;
    cfg->unknown_code[OPECOM_CODE_BROWSER] = 2;
    cfg->unknown_code[OPECOM_CODE_REGION] = 1;
    cfg->unknown_code[OPECOM_CODE_TRAFFIC_TYPE] = 2;
}

/* ===================================================================== *
 * Code tables
 * ===================================================================== */

static const char *const code_field_name[4] = {"os", "browser", "region", "traffic_type"};

static int cmp_entry(const void *a, const void *b)
{
    const opecom_code_entry *x = a, *y = b;
    if (x->field != y->field)
        return x->field < y->field ? -1 : 1;
    return strcmp(x->text, y->text);
}

opecom_status opecom_code_table_init(opecom_code_table *t, const opecom_code_entry *e,
                                     uint32_t n, opecom_error *err)
{
    memset(t, 0, sizeof *t);
    if (n == 0)
        return OPECOM_OK;
    if (e == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "config codes: NULL with n_codes %u", n);
    size_t bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t len = e[i].text ? strlen(e[i].text) : 0;
        if ((unsigned)e[i].field > OPECOM_CODE_TRAFFIC_TYPE)
            return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                               "config codes[%u]: field %d is not an opecom_code_field", i,
                               (int)e[i].field);
        if (len == 0 || len >= OPECOM_CODE_TEXT_MAX)
            return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                               "config codes[%u]: text must have 1 to %d bytes", i,
                               OPECOM_CODE_TEXT_MAX - 1);
        if (e[i].code < 1 || e[i].code > 999)
            return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                               "config codes[%u]: code %u is outside 1..999", i, e[i].code);
        bytes += len + 1;
    }
    t->entries = malloc(n * sizeof *t->entries);
    t->text = malloc(bytes);
    if (t->entries == NULL || t->text == NULL) {
        opecom_code_table_free(t);
        return opecom_fail(err, OPECOM_ENOMEM, -1, -1, -1, "out of memory for the code table");
    }
    char *p = t->text;
    for (uint32_t i = 0; i < n; i++) {
        size_t len = strlen(e[i].text);
        memcpy(p, e[i].text, len + 1);
        t->entries[i] = e[i];
        t->entries[i].text = p;
        p += len + 1;
    }
    t->n = n;
    qsort(t->entries, n, sizeof *t->entries, cmp_entry);
    for (uint32_t i = 1; i < n; i++) {
        if (cmp_entry(&t->entries[i - 1], &t->entries[i]) == 0) {
            opecom_status st = opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                                           "config codes: '%s' appears twice for %s",
                                           t->entries[i].text,
                                           code_field_name[t->entries[i].field]);
            opecom_code_table_free(t);
            return st;
        }
    }
    return OPECOM_OK;
}

void opecom_code_table_free(opecom_code_table *t)
{
    free(t->entries);
    free(t->text);
    memset(t, 0, sizeof *t);
}

opecom_status opecom_code_resolve(const opecom_code_table *t, opecom_code_field field,
                                  const char *text, uint16_t unknown, uint16_t *code,
                                  opecom_error *err)
{
    const int32_t at = OPECOM_FIELD_OS + (int32_t)field;
    *code = 0;
    if (text == NULL || text[0] == '\0')
        return OPECOM_OK;
    size_t len = strnlen(text, OPECOM_CODE_TEXT_MAX);
    if (len >= OPECOM_CODE_TEXT_MAX)
        return opecom_fail(err, OPECOM_EINVAL, at, -1, -1,
                           "event field '%s': longer than %d bytes", code_field_name[field],
                           OPECOM_CODE_TEXT_MAX - 1);
    size_t digits = strspn(text, "0123456789");
    if (digits == len) {
        unsigned long v = len <= 6 ? strtoul(text, NULL, 10) : 1000000;
        if (v < 1 || v > 999)
            return opecom_fail(err, OPECOM_EINVAL, at, -1, -1,
                               "event field '%s': code '%s' is outside 1..999",
                               code_field_name[field], text);
        *code = (uint16_t)v;
        return OPECOM_OK;
    }
    uint32_t lo = 0, hi = t->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const opecom_code_entry *e = &t->entries[mid];
        int c = e->field != field ? (e->field < field ? -1 : 1) : strcmp(e->text, text);
        if (c == 0) {
            *code = e->code;
            return OPECOM_OK;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *code = unknown;
    return OPECOM_OK;
}

/* ===================================================================== *
 * Session columns
 * ===================================================================== */

static const char *const column_name[OPECOM_SESSION_COLUMNS] = {
    "Administrative", "Administrative_Duration", "Informational", "Informational_Duration",
    "ProductRelated", "ProductRelated_Duration", "BounceRates", "ExitRates", "PageValues",
    "SpecialDay", "Month", "OperatingSystems", "Browser", "Region", "TrafficType",
    "VisitorType", "Weekend", "Revenue"};

int32_t opecom_session_column(const char *name)
{
    if (name == NULL)
        return -1;
    for (int32_t i = 0; i < OPECOM_SESSION_COLUMNS; i++) {
        if (strcmp(name, column_name[i]) == 0)
            return i;
    }
    return -1;
}

const char *opecom_session_column_name(int32_t col)
{
    return col >= 0 && col < OPECOM_SESSION_COLUMNS ? column_name[col] : NULL;
}

opecom_status opecom_session_bind(const opecom_model *model, int32_t *cols, opecom_error *err)
{
    if (model == NULL || cols == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "model and cols must not be NULL");
    for (uint32_t i = 0; i < model->n_features; i++) {
        cols[i] = opecom_session_column(model->features[i].name);
        if (cols[i] < 0)
            return opecom_fail(err, OPECOM_EINVAL, (int32_t)i, -1, -1,
                               "feature '%s' is not a session column (a UCI column name)",
                               model->features[i].name);
    }
    return OPECOM_OK;
}

opecom_status opecom_session_row(const opecom_session *s, const int32_t *cols, uint32_t n,
                                 opecom_value *row, opecom_error *err)
{
    if (s == NULL || (n > 0 && (cols == NULL || row == NULL)))
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "s, cols and row must not be NULL");
    for (uint32_t i = 0; i < n; i++) {
        opecom_value *v = &row[i];
        v->num = 0.0;
        v->str = NULL;
        switch (cols[i]) {
        case 0: v->num = s->administrative; break;
        case 1: v->num = s->administrative_duration; break;
        case 2: v->num = s->informational; break;
        case 3: v->num = s->informational_duration; break;
        case 4: v->num = s->product_related; break;
        case 5: v->num = s->product_related_duration; break;
        case 6: v->num = s->bounce_rates; break;
        case 7: v->num = s->exit_rates; break;
        case 8: v->num = s->page_values; break;
        case 9: v->num = s->special_day; break;
        case 10: v->str = s->month ? s->month : "Jan"; break;
        case 11: v->num = s->operating_systems; break;
        case 12: v->num = s->browser; break;
        case 13: v->num = s->region; break;
        case 14: v->num = s->traffic_type; break;
        case 15: v->str = s->visitor_type ? s->visitor_type : "Other"; break;
        case 16: v->str = s->weekend ? "TRUE" : "FALSE"; break;
        case 17: v->str = s->revenue ? "TRUE" : "FALSE"; break;
        default:
            return opecom_fail(err, OPECOM_EINVAL, -1, (int64_t)i, -1,
                               "cols[%u] = %d is not a session column (0..%d)", i, (int)cols[i],
                               OPECOM_SESSION_COLUMNS - 1);
        }
    }
    return OPECOM_OK;
}
