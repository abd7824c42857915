/*
 * sessionize.c - `opecom sessionize`: raw event logs into session rows in
 * the UCI column order, ready for `opecom predict`, `opecom eval` or
 * retraining.
 *
 * The CSV reader streams records; each record becomes one or two
 * opecom_event (a page view, a purchase, or a page view with a purchase on
 * it) given to the library's sessionizer, which holds only the open
 * sessions. Whenever the watermark closes sessions, they are written at
 * once, so memory stays flat whatever the input size. The two input
 * formats differ only in how a record maps to events (to_event_*). Every
 * definition lives in the library and in docs/features.md; this file parses
 * fields and reports errors with their line and column.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char sessionize_usage[] =
    "Usage: opecom sessionize [OPTIONS] [EVENTS.csv|-]\n"
    "\n"
    "Turns a log of raw shop events into one row per session with the 17\n"
    "features of the UCI Online Shoppers data and Revenue, in the UCI column\n"
    "order (Administrative,...,Weekend,Revenue), ready for 'opecom predict'\n"
    "and 'opecom eval'. Definitions: docs/features.md.\n"
    "\n"
    "Input: CSV with a header row, from EVENTS.csv or standard input ('-' or\n"
    "absent). Events may come in any order; a session ends after the idle\n"
    "timeout, and an event that arrives after its session was closed is\n"
    "counted as late and dropped.\n"
    "  --format pageviews  visitor_id,session_id,timestamp,page_type,page_id,\n"
    "                      duration_s [,revenue,os,browser,region,traffic_type]\n"
    "                      timestamp: ISO-8601 (2026-11-23T10:00:00Z) or Unix\n"
    "                      seconds; page_type: administrative, informational,\n"
    "                      product_related (a revenue > 0 on such a row is a\n"
    "                      purchase made on that page), or purchase (revenue\n"
    "                      required); empty duration_s: the gap to the next event\n"
    "  --format rees46     event_time,event_type,product_id,category_id,\n"
    "                      category_code,brand,price,user_id,user_session\n"
    "                      view: product page product_id; cart and\n"
    "                      remove_from_cart: administrative page 'cart';\n"
    "                      purchase: revenue = price\n"
    "\n"
    "Options:\n"
    "  -f, --format FMT      'pageviews' (default) or 'rees46'\n"
    "  -t, --timeout S       idle timeout in seconds (default 1800)\n"
    "  -o, --output FILE     write to FILE instead of standard output\n"
    "      --ids             add visitor_id,session_id as the first two columns\n"
    "      --calendar CAL    special days: 'uci' (default: Valentine's Day, US\n"
    "                        Mother's Day), 'retail' (those, Black Friday and\n"
    "                        Christmas) or 'none'\n"
    "      --utc-offset MIN  local time for Month, Weekend and SpecialDay, in\n"
    "                        minutes east of UTC (default 0)\n"
    "  -e, --on-error MODE   'stop' (default): the first bad row ends the run;\n"
    "                        'skip': bad rows are reported and left out\n"
    "  -h, --help            show this help and exit\n"
    "\n"
    "A summary (events read, sessions written, late events dropped, rows\n"
    "skipped) goes to standard error.\n"
    "\n"
    "Exit status: 0 success, 1 bad input data or I/O error, 2 usage error.\n";

enum { FMT_PAGEVIEWS, FMT_REES46 };

/* Input columns, by role; -1 when absent. */
enum {
    C_VISITOR, C_SESSION, C_TIME, C_TYPE, C_PAGE, C_DURATION, C_REVENUE,
    C_OS, C_BROWSER, C_REGION, C_TRAFFIC, N_ROLES
};

static const char *const pageviews_names[N_ROLES] = {
    "visitor_id", "session_id", "timestamp", "page_type", "page_id", "duration_s",
    "revenue", "os", "browser", "region", "traffic_type"};
static const int pageviews_required[N_ROLES] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0};

static const char *const rees46_names[N_ROLES] = {
    "user_id", "user_session", "event_time", "event_type", "product_id", NULL,
    "price", NULL, NULL, NULL, NULL};
static const int rees46_required[N_ROLES] = {1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0};

/* The input role behind each opecom_event_field (for error messages). */
static const int field_role[12] = {C_VISITOR, C_SESSION, C_TIME, C_TYPE, C_TYPE, C_PAGE,
                                   C_DURATION, C_REVENUE, C_OS, C_BROWSER, C_REGION,
                                   C_TRAFFIC};

typedef struct sz_ctx {
    /* options */
    int format;
    int ids;
    cli_on_error on_error;
    /* state */
    const char *input_name;
    const char *const *names; /* role -> column name of this format */
    int32_t col[N_ROLES];
    size_t n_columns;
    opecom_sessionizer *s;
    FILE *out;
    cli_progress progress;
    int32_t all_cols[OPECOM_SESSION_COLUMNS];
    uint64_t rows, skipped, written;
} sz_ctx;

/* ===================================================================== *
 * Field parsing
 * ===================================================================== */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* n decimal digits at *p into *v. @return 0, or -1 if not all digits. */
static int digits(const char **p, int n, int *v) {
    int i;
    *v = 0;
    for (i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        *v = *v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return 0;
}

/* Up to 3 fraction digits after a '.' as milliseconds (more are cut). */
static int fraction_ms(const char **p, int64_t *ms) {
    int64_t scale = 100;
    *ms = 0;
    if (**p != '.')
        return 0;
    (*p)++;
    if (**p < '0' || **p > '9')
        return -1;
    while (**p >= '0' && **p <= '9') {
        *ms += (**p - '0') * scale;
        scale /= 10;
        (*p)++;
    }
    return 0;
}

/* A timestamp as Unix milliseconds: Unix seconds ("1763892000",
 * "1763892000.25") or ISO-8601 "YYYY-MM-DD[T| ]HH:MM:SS[.fff]" followed by
 * "Z", "+HH:MM", "-HH:MM", "+HHMM", " UTC" or nothing (UTC).
 * @return 0, or -1 when s is none of these. */
static int parse_time(const char *s, int64_t *out) {
    static const unsigned dim[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y, mo, d, h, mi, se, oh, om;
    int64_t ms, days;
    size_t n = strspn(s, "0123456789");
    if (n > 0 && n <= 12 && (s[n] == '\0' || s[n] == '.')) {
        int64_t sec = 0;
        size_t i;
        for (i = 0; i < n; i++)
            sec = sec * 10 + (s[i] - '0');
        p = s + n;
        if (fraction_ms(&p, &ms) != 0 || *p != '\0')
            return -1;
        *out = sec * 1000 + ms;
        return 0;
    }
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d) || (*p != 'T' && *p != ' ') || (p++, digits(&p, 2, &h)) ||
        *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &se))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || (unsigned)d > dim[mo - 1] || h > 23 || mi > 59 || se > 59)
        return -1;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return -1;
    if (fraction_ms(&p, &ms) != 0)
        return -1;
    days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    ms += (((days * 24 + h) * 60 + mi) * 60 + se) * 1000LL;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '+' ? 1 : -1;
        if (digits(&p, 2, &oh))
            return -1;
        if (*p == ':')
            p++;
        if (digits(&p, 2, &om) || oh > 23 || om > 59)
            return -1;
        ms -= sign * (oh * 60 + om) * 60000LL;
    } else if (strcmp(p, " UTC") == 0) {
        p += 4;
    }
    if (*p != '\0')
        return -1;
    *out = ms;
    return 0;
}

/* ===================================================================== *
 * Output
 * ===================================================================== */

static void put_number(FILE *fp, double v) {
    char buf[40];
    if (v == floor(v) && fabs(v) < 1e15) {
        /* counts and codes: integers, written without the %g machinery */
        long long i = (long long)v;
        char *p = buf + sizeof(buf);
        int neg = i < 0;
        unsigned long long u = neg ? (unsigned long long)-i : (unsigned long long)i;
        *--p = '\0';
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (neg)
            *--p = '-';
        fputs(p, fp);
        return;
    }
    snprintf(buf, sizeof(buf), "%.10g", v);
    fputs(buf, fp);
}

static void write_header(sz_ctx *c) {
    int32_t i;
    if (c->ids)
        fputs("visitor_id,session_id,", c->out);
    for (i = 0; i < OPECOM_SESSION_COLUMNS; i++) {
        if (i)
            putc(',', c->out);
        fputs(opecom_session_column_name(i), c->out);
    }
    putc('\n', c->out);
}

static void write_session(sz_ctx *c, const opecom_session *s) {
    opecom_value row[OPECOM_SESSION_COLUMNS];
    int32_t i;
    opecom_session_row(s, c->all_cols, OPECOM_SESSION_COLUMNS, row, NULL);
    if (c->ids) {
        cli_put_csv_field(c->out, s->visitor_id, strlen(s->visitor_id));
        putc(',', c->out);
        cli_put_csv_field(c->out, s->session_id, strlen(s->session_id));
        putc(',', c->out);
    }
    for (i = 0; i < OPECOM_SESSION_COLUMNS; i++) {
        if (i)
            putc(',', c->out);
        if (row[i].str)
            fputs(row[i].str, c->out);
        else
            put_number(c->out, row[i].num);
    }
    putc('\n', c->out);
    c->written++;
}

static void drain(sz_ctx *c) {
    opecom_session s;
    while (opecom_sessionizer_next(c->s, &s))
        write_session(c, &s);
}

/* ===================================================================== *
 * Records to events
 * ===================================================================== */

static const char *field(const sz_ctx *c, const cli_csv_record *rec, int role) {
    return c->col[role] >= 0 ? rec->field[c->col[role]] : NULL;
}

/* Reports a bad field of the record on `line`. @return CLI_EXIT_DATA. */
static int bad_field(const sz_ctx *c, uint64_t line, int role, const char *value,
                     const char *what) {
    const char *name = c->names[role] ? c->names[role] : "?";
    if (value != NULL)
        cli_error("%s:%llu: column '%s': '%.60s' %s", c->input_name, (unsigned long long)line,
                  name, value, what);
    else
        cli_error("%s:%llu: column '%s': %s", c->input_name, (unsigned long long)line, name,
                  what);
    return CLI_EXIT_DATA;
}

/* Fills ev (and *purchase for a page view carrying revenue > 0) from a
 * pageviews record. @return 0 or CLI_EXIT_DATA after a message. */
static int to_event_pageviews(const sz_ctx *c, const cli_csv_record *rec, opecom_event *ev,
                              double *purchase) {
    const char *type = field(c, rec, C_TYPE);
    const char *dur = field(c, rec, C_DURATION);
    const char *rev = field(c, rec, C_REVENUE);
    double revenue = 0.0;
    *purchase = 0.0;
    if (rev != NULL && rev[0] != '\0' && (cli_parse_number(rev, &revenue) != 0 || revenue < 0))
        return bad_field(c, rec->line, C_REVENUE, rev, "is not a number >= 0");
    ev->os = field(c, rec, C_OS);
    ev->browser = field(c, rec, C_BROWSER);
    ev->region = field(c, rec, C_REGION);
    ev->traffic_type = field(c, rec, C_TRAFFIC);
    if (strcmp(type, "purchase") == 0) {
        if (rev == NULL || rev[0] == '\0')
            return bad_field(c, rec->line, C_REVENUE, NULL,
                             "a purchase needs its revenue (a number >= 0)");
        ev->kind = OPECOM_EVENT_PURCHASE;
        ev->revenue = revenue;
        return 0;
    }
    ev->kind = OPECOM_EVENT_PAGE_VIEW;
    if (strcmp(type, "administrative") == 0)
        ev->page_type = OPECOM_PAGE_ADMINISTRATIVE;
    else if (strcmp(type, "informational") == 0)
        ev->page_type = OPECOM_PAGE_INFORMATIONAL;
    else if (strcmp(type, "product_related") == 0)
        ev->page_type = OPECOM_PAGE_PRODUCT_RELATED;
    else
        return bad_field(c, rec->line, C_TYPE, type,
                         "is not administrative, informational, product_related or purchase");
    ev->page_id = field(c, rec, C_PAGE);
    if (dur[0] != '\0') {
        if (cli_parse_number(dur, &ev->duration_s) != 0 || ev->duration_s < 0)
            return bad_field(c, rec->line, C_DURATION, dur, "is not a number >= 0");
        ev->has_duration = 1;
    }
    *purchase = revenue;
    return 0;
}

static int to_event_rees46(const sz_ctx *c, const cli_csv_record *rec, opecom_event *ev) {
    const char *type = field(c, rec, C_TYPE);
    if (strcmp(type, "view") == 0) {
        ev->kind = OPECOM_EVENT_PAGE_VIEW;
        ev->page_type = OPECOM_PAGE_PRODUCT_RELATED;
        ev->page_id = field(c, rec, C_PAGE);
    } else if (strcmp(type, "cart") == 0 || strcmp(type, "remove_from_cart") == 0) {
        ev->kind = OPECOM_EVENT_PAGE_VIEW;
        ev->page_type = OPECOM_PAGE_ADMINISTRATIVE;
        ev->page_id = "cart";
    } else if (strcmp(type, "purchase") == 0) {
        const char *price = field(c, rec, C_REVENUE);
        ev->kind = OPECOM_EVENT_PURCHASE;
        if (cli_parse_number(price, &ev->revenue) != 0 || ev->revenue < 0)
            return bad_field(c, rec->line, C_REVENUE, price, "is not a number >= 0");
    } else {
        return bad_field(c, rec->line, C_TYPE, type,
                         "is not view, cart, remove_from_cart or purchase");
    }
    return 0;
}

static int add_event(sz_ctx *c, const cli_csv_record *rec, const opecom_event *ev) {
    opecom_error err;
    opecom_status st;
    memset(&err, 0, sizeof(err));
    st = opecom_sessionizer_add(c->s, ev, NULL, &err);
    if (st == OPECOM_OK)
        return 0;
    if (st == OPECOM_EINVAL && err.feature >= 0 && err.feature < 12) {
        /* "event field 'page_id': empty ...": name the column instead */
        const char *what = strstr(err.message, "': ");
        return bad_field(c, rec->line, field_role[err.feature], NULL,
                         what ? what + 3 : err.message);
    }
    cli_error("%s:%llu: %s", c->input_name, (unsigned long long)rec->line, err.message);
    return CLI_EXIT_DATA;
}

/* One record. @return 0, or CLI_EXIT_DATA after a message. */
static int take_record(sz_ctx *c, const cli_csv_record *rec) {
    opecom_event ev;
    double purchase = 0.0;
    const char *when;
    int rc;
    if (rec->n_fields != c->n_columns) {
        cli_error("%s:%llu: %zu field%s, but the header has %zu", c->input_name,
                  (unsigned long long)rec->line, rec->n_fields, rec->n_fields == 1 ? "" : "s",
                  c->n_columns);
        return CLI_EXIT_DATA;
    }
    memset(&ev, 0, sizeof(ev));
    ev.visitor_id = field(c, rec, C_VISITOR);
    ev.session_id = field(c, rec, C_SESSION);
    when = field(c, rec, C_TIME);
    if (parse_time(when, &ev.time_ms) != 0)
        return bad_field(c, rec->line, C_TIME, when,
                         "is not a timestamp (2026-11-23T10:00:00Z or Unix seconds)");
    rc = c->format == FMT_PAGEVIEWS ? to_event_pageviews(c, rec, &ev, &purchase)
                                    : to_event_rees46(c, rec, &ev);
    if (rc != 0)
        return rc;
    rc = add_event(c, rec, &ev);
    if (rc == 0 && purchase > 0) {
        /* a purchase made on the page just viewed, at the same time */
        ev.kind = OPECOM_EVENT_PURCHASE;
        ev.revenue = purchase;
        rc = add_event(c, rec, &ev);
    }
    return rc;
}

static int on_header(void *ctx, const cli_csv_record *header) {
    sz_ctx *c = ctx;
    const int *required = c->format == FMT_PAGEVIEWS ? pageviews_required : rees46_required;
    int r;
    c->names = c->format == FMT_PAGEVIEWS ? pageviews_names : rees46_names;
    c->n_columns = header->n_fields;
    for (r = 0; r < N_ROLES; r++) {
        c->col[r] = c->names[r] ? cli_csv_find(header, c->names[r]) : -1;
        if (c->col[r] < 0 && required[r]) {
            cli_error("%s: missing column '%s' (format %s)", c->input_name, c->names[r],
                      c->format == FMT_PAGEVIEWS ? "pageviews" : "rees46");
            return CLI_EXIT_DATA;
        }
    }
    write_header(c);
    return CLI_EXIT_OK;
}

static int on_row(void *ctx, const cli_csv_record *rec) {
    sz_ctx *c = ctx;
    int rc;
    c->rows++;
    rc = take_record(c, rec);
    drain(c);
    if ((c->rows & 1023) == 0)
        cli_progress_update(&c->progress, c->rows);
    if (rc != 0) {
        if (c->on_error != CLI_ON_ERROR_SKIP)
            return rc;
        c->skipped++;
    }
    return CLI_EXIT_OK;
}

/* ===================================================================== *
 * Command
 * ===================================================================== */

/* The special-day calendars of --calendar. */
static const opecom_special_day retail_calendar[] = {
    {2, 14, 0, 0, 0},  /* Valentine's Day */
    {5, 0, 0, 2, 0},   /* Mother's Day (US): 2nd Sunday of May */
    {11, 0, 4, 4, 1},  /* Black Friday: the day after the 4th Thursday of November */
    {12, 25, 0, 0, 0}, /* Christmas */
};

/* @return 0, -1 after --help, or an exit code after a usage error. */
static int parse_args(sz_ctx *c, opecom_session_config *cfg, int argc, char **argv,
                      const char **input_path, const char **output_path) {
    const char *format = NULL, *timeout = NULL, *calendar = NULL, *offset = NULL;
    const char *on_error = NULL;
    const cli_option opts[] = {{"--format", "-f", &format, NULL, 0},
                               {"--timeout", "-t", &timeout, NULL, 0},
                               {"--output", "-o", output_path, NULL, 0},
                               {"--calendar", NULL, &calendar, NULL, 0},
                               {"--utc-offset", NULL, &offset, NULL, 0},
                               {"--on-error", "-e", &on_error, NULL, 0},
                               {"--ids", NULL, NULL, &c->ids, 0},
                               {NULL, NULL, NULL, NULL, 0}};
    int rc = cli_args_parse(argc, argv, sessionize_usage, opts, input_path, "input file");
    if (rc != 0)
        return rc;
    if (format == NULL || strcmp(format, "pageviews") == 0)
        c->format = FMT_PAGEVIEWS;
    else if (strcmp(format, "rees46") == 0)
        c->format = FMT_REES46;
    else
        return cli_usage_error(argv[0], "--format '%s': expected 'pageviews' or 'rees46'",
                               format);
    if (timeout != NULL) {
        double t;
        if (cli_parse_number(timeout, &t) != 0 || t != floor(t) || t < 1 || t > 366.0 * 86400)
            return cli_usage_error(argv[0], "--timeout '%s': expected whole seconds, 1 to "
                                   "31622400", timeout);
        cfg->idle_timeout_s = (int64_t)t;
    }
    if (offset != NULL) {
        double m;
        if (cli_parse_number(offset, &m) != 0 || m != floor(m) || m < -1440 || m > 1440)
            return cli_usage_error(argv[0], "--utc-offset '%s': expected whole minutes, "
                                   "-1440 to 1440", offset);
        cfg->utc_offset_min = (int32_t)m;
    }
    if (calendar == NULL || strcmp(calendar, "uci") == 0) {
        /* the library's default */
    } else if (strcmp(calendar, "retail") == 0) {
        cfg->special_days = retail_calendar;
        cfg->n_special_days = sizeof(retail_calendar) / sizeof(retail_calendar[0]);
    } else if (strcmp(calendar, "none") == 0) {
        cfg->special_days = NULL;
        cfg->n_special_days = 0;
    } else {
        return cli_usage_error(argv[0], "--calendar '%s': expected 'uci', 'retail' or 'none'",
                               calendar);
    }
    if (on_error != NULL && cli_parse_on_error(on_error, &c->on_error) != 0)
        return cli_usage_error(argv[0], "--on-error '%s': expected 'stop' or 'skip'", on_error);
    return 0;
}

int cli_sessionize(int argc, char **argv) {
    const char *input_path = NULL;
    const char *output_path = NULL;
    opecom_session_config cfg;
    opecom_session_stats st;
    opecom_error err;
    cli_output out;
    FILE *in = NULL;
    sz_ctx c;
    int32_t i;
    int rc;

    memset(&c, 0, sizeof(c));
    opecom_session_config_default(&cfg);
    rc = parse_args(&c, &cfg, argc, argv, &input_path, &output_path);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    for (i = 0; i < OPECOM_SESSION_COLUMNS; i++)
        c.all_cols[i] = i;
    memset(&err, 0, sizeof(err));
    if (opecom_sessionizer_create(&cfg, &c.s, &err) != OPECOM_OK) {
        cli_error("cannot make a sessionizer: %s", err.message);
        return CLI_EXIT_DATA;
    }
    rc = cli_open_input(input_path, &in, &c.input_name);
    if (rc == CLI_EXIT_OK) {
        rc = cli_output_open(&out, output_path);
        if (rc != CLI_EXIT_OK && in != stdin)
            fclose(in);
    }
    if (rc != CLI_EXIT_OK) {
        opecom_sessionizer_free(c.s);
        return rc;
    }
    c.out = out.fp;

    cli_progress_start(&c.progress, in);
    rc = cli_csv_read(in, c.input_name, on_header, on_row, &c);
    if (rc == CLI_EXIT_OK) {
        opecom_sessionizer_finish(c.s, NULL); /* end of input: close every session */
        drain(&c);
    }
    cli_progress_end(&c.progress);
    if (in != stdin)
        fclose(in);

    opecom_sessionizer_stats(c.s, &st);
    fprintf(stderr,
            "opecom sessionize: %llu events read, %llu sessions written, %llu late events "
            "dropped, %llu rows skipped (%llu idle splits of a session id)\n",
            (unsigned long long)c.rows, (unsigned long long)c.written, (unsigned long long)st.late_events,
            (unsigned long long)c.skipped, (unsigned long long)st.idle_splits);
    if (rc == CLI_EXIT_OK && c.skipped > 0 && c.skipped == c.rows)
        rc = CLI_EXIT_DATA; /* nothing usable came in */
    if (rc == CLI_EXIT_OK)
        rc = cli_output_commit(&out);
    else
        cli_output_abort(&out);
    opecom_sessionizer_free(c.s);
    return rc;
}
