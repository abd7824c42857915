/*
 * test_sessionize.c - `opecom sessionize` run as a program: hand-made event
 * logs in both formats whose session rows are worked out by hand here, the
 * error messages (line and column) and --on-error, the generator
 * (tools/gen_events.py: same seed, same bytes; its output sessionizes and
 * scores end to end), the real REES46 sample when present, and flat memory
 * on a million generated events streamed through a pipe.
 *
 * Event logs here are made up; no row of the REES46 file is copied.
 * Run from the repository root: BUILD=build build/tests/test_sessionize
 */
#define _DEFAULT_SOURCE /* wait4 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "opecom.h"
#include "testutil.h"

#define PYTHON "/usr/bin/python3"
#define GEN "tools/gen_events.py"
#define DEFAULT_MODEL "models/shoppers-tabm-k4.opm"
#define REES46_SAMPLE "../shared/data/rees46_2019-Oct_head.csv"

static char dir[400];

#define UCI_HEADER                                                                       \
    "Administrative,Administrative_Duration,Informational,Informational_Duration,"      \
    "ProductRelated,ProductRelated_Duration,BounceRates,ExitRates,PageValues,SpecialDay," \
    "Month,OperatingSystems,Browser,Region,TrafficType,VisitorType,Weekend,Revenue\n"

#define PV_HEADER                                                                        \
    "visitor_id,session_id,timestamp,page_type,page_id,duration_s,revenue,os,browser,"   \
    "region,traffic_type\n"

#define R46_HEADER                                                                       \
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,"   \
    "user_session\n"

/* ===================================================================== *
 * Running commands
 * ===================================================================== */

typedef struct run_out {
    int code;
    char *out;
    char *err;
} run_out;

static char *slurp(const char *path)
{
    size_t n = 0;
    unsigned char *b = tu_read_file(path, &n);
    char *s = malloc(n + 1);
    assert_non_null(s);
    if (b)
        memcpy(s, b, n);
    s[b ? n : 0] = '\0';
    free(b);
    return s;
}

static const char *scratch(const char *name)
{
    static char path[4][600];
    static int i;
    i = (i + 1) % 4;
    snprintf(path[i], sizeof path[i], "%s/%s", dir, name);
    return path[i];
}

/* Runs the shell command `cmd` ("@O" stands for $BUILD/opecom, "@D" for
 * the scratch folder) with stdout and stderr captured. */
static run_out run(const char *cmd)
{
    char expanded[2048];
    char full[4096];
    size_t o = 0;
    for (const char *p = cmd; *p && o + 600 < sizeof expanded; p++) {
        if (p[0] == '@' && p[1] == 'O') {
            o += (size_t)snprintf(expanded + o, sizeof expanded - o, "%s/opecom", tu_build_dir());
            p++;
        } else if (p[0] == '@' && p[1] == 'D') {
            o += (size_t)snprintf(expanded + o, sizeof expanded - o, "%s", dir);
            p++;
        } else {
            expanded[o++] = *p;
        }
    }
    expanded[o] = '\0';
    snprintf(full, sizeof full, "( %s ) >%s/stdout 2>%s/stderr </dev/null", expanded, dir, dir);
    int st = system(full);
    run_out r;
    r.code = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = slurp(scratch("stdout"));
    r.err = slurp(scratch("stderr"));
    return r;
}

static void run_free(run_out *r)
{
    free(r->out);
    free(r->err);
}

static void write_text(const char *name, const char *text)
{
    assert_int_equal(tu_write_file(scratch(name), text, strlen(text)), 0);
}

static void expect_in(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL)
        fail_msg("expected '%s' in:\n%s", needle, hay);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int group_setup(void **state)
{
    char path[600];
    (void)state;
    snprintf(path, sizeof path, "%s/tmp", tu_build_dir());
    mkdir(path, 0777);
    snprintf(dir, sizeof dir, "%s/tmp/sessionize-XXXXXX", tu_build_dir());
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "# cannot make a scratch folder under %s/tmp\n", tu_build_dir());
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[600];
    (void)state;
    if (dir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "# could not remove %s\n", dir);
    }
    return 0;
}

/* ===================================================================== *
 * Hand-made logs
 * ===================================================================== */

/* Visitor a on Saturday 2026-06-13, from 10:00Z: home (30 s to p1), p1 (20 s
 * given), p2 (60 s to checkout), checkout (0: the purchase of 59.90 follows
 * at the same time). The p2 row comes before p1 in the file and uses Unix
 * seconds (1781345100 = 10:05:00Z). Codes from its first event: 3,4,5,6.
 *   -> 2,30,0,0,2,80, rates 0 (no history), June, Weekend TRUE, Revenue TRUE
 * Visitor b, session s9, Monday 2026-06-15 07:00Z (given as 09:00+02:00):
 * faq (45 s), p1 (last: 0). After a's session: p1 has 1 view, 0 exits, no
 * entrance, value 59.9 over 1 unique view; faq is new.
 *   -> 0,0,1,45,1,0, bounce (0+0)/2, exit (0+0)/2, value (0+59.9)/2 = 29.95
 * A late event of a (June 13, two days behind the watermark): dropped.
 * Visitor a again at 08:00Z: closes b's session (idle 59 min), opens a
 * returning one: p2 (value 59.9/1, no exits) -> PageValues 59.9. */
static const char pageviews_log[] =
    PV_HEADER
    "a,,2026-06-13T10:00:00Z,administrative,home,,,3,4,5,6\n"
    "a,,1781345100,product_related,p2,,,,,,\n"
    "a,,2026-06-13T10:00:30Z,product_related,p1,20,,,,,\n"
    "a,,2026-06-13T10:06:00.000Z,administrative,checkout,,59.90,,,,\n"
    "b,s9,2026-06-15T09:00:00+02:00,informational,faq,,,,,,\n"
    "b,s9,2026-06-15T07:00:45Z,product_related,p1,,,,,,\n"
    "a,,2026-06-13T10:07:00Z,product_related,p3,,,,,,\n"
    "a,,2026-06-15T08:00:00Z,product_related,p2,,,,,,\n";

static void test_pageviews_log_gives_the_rows_worked_out_by_hand(void **state)
{
    (void)state;
    write_text("pv.csv", pageviews_log);
    run_out r = run("@O sessionize @D/pv.csv");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out,
                        UCI_HEADER
                        "2,30,0,0,2,80,0,0,0,0,June,3,4,5,6,New_Visitor,TRUE,TRUE\n"
                        "0,0,1,45,1,0,0,0,29.95,0,June,2,2,1,2,New_Visitor,FALSE,FALSE\n"
                        "0,0,0,0,1,0,0,0,59.9,0,June,2,2,1,2,Returning_Visitor,FALSE,FALSE\n");
    expect_in(r.err, "8 events read, 3 sessions written, 1 late events dropped, 0 rows skipped");
    run_free(&r);
}

static void test_crlf_quotes_and_stdin_give_the_same_rows(void **state)
{
    (void)state;
    write_text("pv.csv", pageviews_log);
    run_out a = run("@O sessionize @D/pv.csv");
    /* CRLF line ends and every field quoted, read from standard input */
    run_out b = run("sed -e 's/\\([^,]*\\)/\"\\1\"/g' -e 's/$/\\r/' @D/pv.csv | @O sessionize -");
    assert_int_equal(b.code, 0);
    assert_string_equal(a.out, b.out);
    run_free(&a);
    run_free(&b);
}

static void test_ids_option_adds_leading_id_columns(void **state)
{
    (void)state;
    write_text("pv.csv", pageviews_log);
    run_out r = run("@O sessionize --ids @D/pv.csv");
    assert_int_equal(r.code, 0);
    assert_true(strncmp(r.out, "visitor_id,session_id," UCI_HEADER,
                        strlen("visitor_id,session_id," UCI_HEADER)) == 0);
    expect_in(r.out, "\na,,2,30,0,0,2,80,");
    expect_in(r.out, "\nb,s9,0,0,1,45,");
    run_free(&r);
}

/* Made-up REES46-style events (64-bit category ids, empty fields).
 * User 100, session u1: view 1001 (10 s), view 1002 (60 s to the cart
 * event), cart (administrative page "cart", 30 s to the purchase),
 * purchase of 1002 at 33.20. 2019-10-01 was a Tuesday.
 *   -> 1,30,0,0,2,70, rates 0, Oct, unknown codes 2,2,1,2, Revenue TRUE
 * User 200, session u2: view 1002; after u1, 1002 has 1 view, 0 exits
 * (u1 ended on the cart), value 33.2 over 1 unique view -> PageValues 33.2.
 * No user id, session u3: view 1001 (an entrance without bounce in u1,
 * value 33.2) -> VisitorType Other, PageValues 33.2. */
static const char rees46_log[] =
    R46_HEADER
    "2019-10-01 00:00:00 UTC,view,1001,2053013555631882655,,acme,12.50,100,u1\n"
    "2019-10-01 00:00:10 UTC,view,1002,2232732093077520756,kids.toys,,33.20,100,u1\n"
    "2019-10-01 00:01:10 UTC,cart,1002,2232732093077520756,kids.toys,,33.20,100,u1\n"
    "2019-10-01 00:01:40 UTC,purchase,1002,2232732093077520756,kids.toys,,33.20,100,u1\n"
    "2019-10-01 00:02:00 UTC,view,1002,2232732093077520756,kids.toys,,33.20,200,u2\n"
    "2019-10-01 00:03:00 UTC,view,1001,2053013555631882655,,acme,12.50,,u3\n";

static void test_rees46_log_gives_the_rows_worked_out_by_hand(void **state)
{
    (void)state;
    write_text("r46.csv", rees46_log);
    run_out r = run("@O sessionize --format rees46 @D/r46.csv");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, UCI_HEADER
                        "1,30,0,0,2,70,0,0,0,0,Oct,2,2,1,2,New_Visitor,FALSE,TRUE\n"
                        "0,0,0,0,1,0,0,0,33.2,0,Oct,2,2,1,2,New_Visitor,FALSE,FALSE\n"
                        "0,0,0,0,1,0,0,0,33.2,0,Oct,2,2,1,2,Other,FALSE,FALSE\n");
    expect_in(r.err, "6 events read, 3 sessions written, 0 late events dropped");
    run_free(&r);
}

static void test_timeout_option_splits_sessions(void **state)
{
    (void)state;
    write_text("r46.csv", rees46_log);
    /* 20 s: u1's 60 s and 30 s gaps split it in three (two idle splits) */
    run_out r = run("@O sessionize --format rees46 --timeout 20 @D/r46.csv");
    assert_int_equal(r.code, 0);
    assert_int_equal(count_lines(r.out), 1 + 5);
    expect_in(r.err, "(2 idle splits of a session id)");
    run_free(&r);
}

static void test_calendar_option_switches_special_days(void **state)
{
    (void)state;
    /* 2026-12-19 is 6 days before Christmas: 1 with 'retail', 0 with 'uci' */
    write_text("xmas.csv", PV_HEADER "a,,2026-12-19T10:00:00Z,administrative,home,,,,,,\n");
    run_out u = run("@O sessionize @D/xmas.csv");
    run_out t = run("@O sessionize --calendar retail @D/xmas.csv");
    assert_int_equal(u.code, 0);
    assert_int_equal(t.code, 0);
    expect_in(u.out, "\n1,0,0,0,0,0,0,0,0,0,Dec,");
    expect_in(t.out, "\n1,0,0,0,0,0,0,0,0,1,Dec,");
    run_free(&u);
    run_free(&t);
}

/* ===================================================================== *
 * Errors
 * ===================================================================== */

/* A pageviews log whose data row 3 (line 4) is `bad`. */
static run_out run_with_bad_row(const char *bad, const char *options)
{
    char text[2048];
    char cmd[256];
    snprintf(text, sizeof text,
             PV_HEADER "a,,2026-03-10T10:00:00Z,administrative,home,,,,,,\n"
                       "a,,2026-03-10T10:00:10Z,product_related,p1,,,,,,\n"
                       "%s\n"
                       "a,,2026-03-10T10:00:40Z,product_related,p2,,,,,,\n",
             bad);
    write_text("bad.csv", text);
    snprintf(cmd, sizeof cmd, "@O sessionize %s @D/bad.csv", options);
    return run(cmd);
}

static void test_bad_fields_name_line_and_column(void **state)
{
    (void)state;
    static const struct {
        const char *row;
        const char *message;
    } cases[] = {
        {"a,,yesterday,administrative,home,,,,,,",
         "bad.csv:4: column 'timestamp': 'yesterday' is not a timestamp"},
        {"a,,2026-02-30T10:00:00Z,administrative,home,,,,,,",
         "bad.csv:4: column 'timestamp': '2026-02-30T10:00:00Z' is not a timestamp"},
        {"a,,2026-03-10T10:00:20Z,product,home,,,,,,",
         "bad.csv:4: column 'page_type': 'product' is not administrative, informational"},
        {"a,,2026-03-10T10:00:20Z,administrative,,,,,,,",
         "bad.csv:4: column 'page_id': empty for a page view"},
        {"a,,2026-03-10T10:00:20Z,administrative,home,-3,,,,,",
         "bad.csv:4: column 'duration_s': '-3' is not a number >= 0"},
        {"a,,2026-03-10T10:00:20Z,administrative,home,1e999,,,,,",
         "bad.csv:4: column 'duration_s': '1e999' is not a number >= 0"},
        {"a,,2026-03-10T10:00:20Z,purchase,,,,,,,",
         "bad.csv:4: column 'revenue': a purchase needs its revenue"},
        {"a,,2026-03-10T10:00:20Z,purchase,,,ten,,,,",
         "bad.csv:4: column 'revenue': 'ten' is not a number >= 0"},
        {"a,,2026-03-10T10:00:20Z,administrative,home,,,0,,,",
         "bad.csv:4: column 'os': code '0' is outside 1..999"},
        {"a,,2026-03-10T10:00:20Z,administrative,home,,,,,,1000",
         "bad.csv:4: column 'traffic_type': code '1000' is outside 1..999"},
        {",,2026-03-10T10:00:20Z,administrative,home,,,,,,",
         "bad.csv:4: column 'visitor_id': empty, and so is session_id"},
        {"a,,2026-03-10T10:00:20Z",
         "bad.csv:4: 3 fields, but the header has 11"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_out r = run_with_bad_row(cases[i].row, "");
        if (r.code != 1 || strstr(r.err, cases[i].message) == NULL)
            fail_msg("row '%s': exit %d, stderr:\n%s\nwanted: %s", cases[i].row, r.code, r.err,
                     cases[i].message);
        run_free(&r);
    }
}

static void test_rees46_bad_fields_name_their_columns(void **state)
{
    (void)state;
    write_text("r46bad.csv", R46_HEADER
               "2019-10-01 00:00:00 UTC,view,1001,2053013555631882655,,acme,12.50,100,u1\n"
               "2019-10-01 00:00:05 UTC,click,1001,2053013555631882655,,acme,12.50,100,u1\n");
    run_out r = run("@O sessionize --format rees46 @D/r46bad.csv");
    assert_int_equal(r.code, 1);
    expect_in(r.err, "r46bad.csv:3: column 'event_type': 'click' is not view, cart");
    run_free(&r);
    write_text("r46bad.csv", R46_HEADER
               "2019-10-01 00:00:00 UTC,purchase,1001,2053013555631882655,,acme,,100,u1\n");
    r = run("@O sessionize --format rees46 @D/r46bad.csv");
    assert_int_equal(r.code, 1);
    expect_in(r.err, "r46bad.csv:2: column 'price': '' is not a number >= 0");
    run_free(&r);
    write_text("r46bad.csv", R46_HEADER
               "2019-10-01 00:00:00 UTC,view,,2053013555631882655,,acme,1,100,u1\n");
    r = run("@O sessionize --format rees46 @D/r46bad.csv");
    assert_int_equal(r.code, 1);
    expect_in(r.err, "r46bad.csv:2: column 'product_id': empty for a page view");
    run_free(&r);
}

static void test_missing_column_and_wrong_format_are_reported(void **state)
{
    (void)state;
    write_text("r46.csv", rees46_log);
    run_out r = run("@O sessionize @D/r46.csv"); /* pageviews expected */
    assert_int_equal(r.code, 1);
    expect_in(r.err, "r46.csv: missing column 'visitor_id' (format pageviews)");
    assert_string_equal(r.out, "");
    run_free(&r);
    r = run("@O sessionize --format json @D/r46.csv");
    assert_int_equal(r.code, 2);
    expect_in(r.err, "--format 'json'");
    run_free(&r);
    r = run("@O sessionize --timeout 0 @D/r46.csv");
    assert_int_equal(r.code, 2);
    run_free(&r);
    write_text("empty.csv", "");
    r = run("@O sessionize @D/empty.csv");
    assert_int_equal(r.code, 1);
    expect_in(r.err, "no header");
    run_free(&r);
}

static void test_on_error_skip_reports_and_goes_on(void **state)
{
    (void)state;
    run_out r = run_with_bad_row("a,,soon,administrative,home,,,,,,", "--on-error skip");
    assert_int_equal(r.code, 0);
    expect_in(r.err, "bad.csv:4: column 'timestamp': 'soon' is not a timestamp");
    expect_in(r.err, "4 events read, 1 sessions written, 0 late events dropped, 1 rows skipped");
    /* the other three events still make their session: home, p1, p2 */
    expect_in(r.out, "\n1,10,0,0,2,30,");
    run_free(&r);
}

static void test_failed_run_leaves_no_output_file(void **state)
{
    (void)state;
    run_out r = run_with_bad_row("a,,soon,administrative,home,,,,,,", "-o @D/never.csv");
    assert_int_equal(r.code, 1);
    assert_int_equal(access(scratch("never.csv"), F_OK), -1);
    run_free(&r);
}

/* ===================================================================== *
 * The generator, end to end
 * ===================================================================== */

static void test_generator_is_reproducible(void **state)
{
    (void)state;
    static const char *const formats[] = {"pageviews", "rees46"};
    for (int f = 0; f < 2; f++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 PYTHON " " GEN " --format %s --events 20000 --seed 11 -o @D/g1.csv && "
                 PYTHON " " GEN " --format %s --events 20000 --seed 11 > @D/g2.csv && "
                 PYTHON " " GEN " --format %s --events 20000 --seed 12 -o @D/g3.csv",
                 formats[f], formats[f], formats[f]);
        run_out r = run(cmd);
        assert_int_equal(r.code, 0);
        run_free(&r);
        size_t n1, n2, n3;
        unsigned char *a = tu_read_file(scratch("g1.csv"), &n1);
        unsigned char *b = tu_read_file(scratch("g2.csv"), &n2);
        unsigned char *c = tu_read_file(scratch("g3.csv"), &n3);
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(c);
        assert_true(n1 == n2 && memcmp(a, b, n1) == 0); /* same seed: same bytes */
        assert_false(n1 == n3 && memcmp(a, c, n1) == 0); /* another seed: another log */
        assert_int_equal(count_lines((char *)a) - 1, 20000);
        free(a);
        free(b);
        free(c);
    }
}

static void test_generated_logs_sessionize_and_score(void **state)
{
    (void)state;
    static const char *const formats[] = {"pageviews", "rees46"};
    for (int f = 0; f < 2; f++) {
        char cmd[600];
        snprintf(cmd, sizeof cmd,
                 PYTHON " " GEN " --format %s --events 30000 --seed 5 | "
                 "@O sessionize --format %s | "
                 "@O predict --model " DEFAULT_MODEL " --keep Revenue",
                 formats[f], formats[f]);
        run_out r = run(cmd);
        if (r.code != 0)
            fail_msg("%s: exit %d\n%s", formats[f], r.code, r.err);
        expect_in(r.err, "30000 events read");
        /* one scored row per session written */
        unsigned long long sessions = 0;
        const char *p = strstr(r.err, "events read, ");
        assert_non_null(p);
        sessions = strtoull(p + strlen("events read, "), NULL, 10);
        assert_true(sessions > 1000);
        assert_int_equal(count_lines(r.out), 1 + sessions);
        expect_in(r.out, "Revenue,probability");
        /* the generator makes a few late events and idle splits */
        assert_null(strstr(r.err, " 0 late events"));
        assert_null(strstr(r.err, "(0 idle splits"));
        run_free(&r);
    }
}

/* ===================================================================== *
 * The real REES46 sample
 * ===================================================================== */

static void test_rees46_sample(void **state)
{
    (void)state;
    if (access(REES46_SAMPLE, R_OK) != 0) {
        print_message("# %s is not here: REES46 sample test skipped\n", REES46_SAMPLE);
        skip();
    }
    run_out r = run("@O sessionize --format rees46 --ids " REES46_SAMPLE);
    assert_int_equal(r.code, 0);
    /* 17,434 events. Its README counts 5,066 distinct user_session values;
     * we write 5,068 sessions: one user_session is shared by two user_ids
     * (a session is a visitor's), and one session has a 59.9-minute pause
     * that the 30-minute idle timeout splits. All events are in order: no
     * late events. 200 sessions hold the 214 purchase events. */
    expect_in(r.err, "17434 events read, 5068 sessions written, 0 late events dropped, "
                     "0 rows skipped (1 idle splits of a session id)");
    assert_int_equal(count_lines(r.out), 1 + 5068);
    size_t bought = 0;
    for (const char *p = r.out; (p = strstr(p, ",TRUE\n")) != NULL; p++)
        bought++;
    assert_int_equal(bought, 200);
    print_message("# REES46 sample: 17434 events -> 5068 sessions, 200 with a purchase\n");
    run_free(&r);
}

/* ===================================================================== *
 * Flat memory
 * ===================================================================== */

/* Streams `events` generated events through a pipe into sessionize; returns
 * the sessionize process's peak RSS in KiB and its wall time. */
static long pipe_through_sessionize(long events, double *seconds)
{
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    char n[32];
    snprintf(n, sizeof n, "%ld", events);
    pid_t gen = fork();
    assert_true(gen >= 0);
    if (gen == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl(PYTHON, PYTHON, GEN, "--events", n, "--seed", "3", (char *)NULL);
        _exit(127);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char opecom[600];
    snprintf(opecom, sizeof opecom, "%s/opecom", tu_build_dir());
    pid_t sz = fork();
    assert_true(sz >= 0);
    if (sz == 0) {
        dup2(fd[0], 0);
        close(fd[0]);
        close(fd[1]);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(opecom, opecom, "sessionize", "-", (char *)NULL);
        _exit(127);
    }
    close(fd[0]);
    close(fd[1]);
    int st_sz, st_gen;
    struct rusage ru;
    assert_int_equal(wait4(sz, &st_sz, 0, &ru), sz);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(waitpid(gen, &st_gen, 0), gen);
    assert_true(WIFEXITED(st_gen) && WEXITSTATUS(st_gen) == 0);
    assert_true(WIFEXITED(st_sz) && WEXITSTATUS(st_sz) == 0);
    *seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return ru.ru_maxrss;
}

static void test_memory_stays_flat_on_a_million_events(void **state)
{
    (void)state;
    double small_s, big_s;
    long small = pipe_through_sessionize(50000, &small_s);
    long big = pipe_through_sessionize(1000000, &big_s);
    print_message("# sessionize peak RSS: %ld KiB on 50,000 events, %ld KiB on 1,000,000 "
                  "(%.1f s through the pipe, generator included)\n", small, big, big_s);
    /* 20x the events (about 70 MB of CSV): memory grows by little (open
     * sessions, page statistics and visitors of the larger log), never by
     * the input */
#ifdef __SANITIZE_ADDRESS__
    assert_true(big < 96 * 1024); /* ASan's shadow memory and quarantine */
#else
    assert_true(big < 32 * 1024);
#endif
    assert_true(big < small + 16 * 1024);
    assert_true(big_s < 20.0 * 2); /* generous: the generator shares the 2 cores */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pageviews_log_gives_the_rows_worked_out_by_hand),
        cmocka_unit_test(test_crlf_quotes_and_stdin_give_the_same_rows),
        cmocka_unit_test(test_ids_option_adds_leading_id_columns),
        cmocka_unit_test(test_rees46_log_gives_the_rows_worked_out_by_hand),
        cmocka_unit_test(test_timeout_option_splits_sessions),
        cmocka_unit_test(test_calendar_option_switches_special_days),
        cmocka_unit_test(test_bad_fields_name_line_and_column),
        cmocka_unit_test(test_rees46_bad_fields_name_their_columns),
        cmocka_unit_test(test_missing_column_and_wrong_format_are_reported),
        cmocka_unit_test(test_on_error_skip_reports_and_goes_on),
        cmocka_unit_test(test_failed_run_leaves_no_output_file),
        cmocka_unit_test(test_generator_is_reproducible),
        cmocka_unit_test(test_generated_logs_sessionize_and_score),
        cmocka_unit_test(test_rees46_sample),
        cmocka_unit_test(test_memory_stays_flat_on_a_million_events),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
