/*
 * test_cli_report.c - end-to-end tests of `opecom report`, run as a program.
 *
 * On generated sessions (never dataset rows) with seeded labels: the page is
 * well-formed (Python's html.parser sees every tag closed in order, and each
 * inline <svg> parses as XML with xml.etree), holds each plot (svg ids roc,
 * pr, calibration, scores, importance), and its metrics are those of
 * `opecom eval --json` on the same file, to the printed precision. Without
 * the label column: no metrics or curves, a note, still the scores and the
 * importance. The explain sample is every k-th row and the same on every
 * run. Errors: missing model (3), a bad -o folder (1, no file left), usage
 * errors (2), a bad label (1).
 *
 * Python is $PYTHON, else /usr/bin/python3 (standard library only).
 * Run from the repository root: BUILD=build build/tests/test_cli_report
 */
#include "test_cli_harness.h"

#define N_ROWS 600

static const int with_label[] = {0, 1, 2,  3,  4,  5,  6,  7,  8,            9,
                                 10, 11, 12, 13, 14, 15, 16, EXTRA_REVENUE};
static const csv_style labelled = {with_label, sizeof(with_label) / sizeof(with_label[0]), 0, 0,
                                   0};

static const char *labels[N_ROWS];

/* Exit 0 when the page at argv[1] is well-formed and has the svg ids of
 * argv[2] (comma-separated) and none of argv[3]; prints what is wrong. */
static const char page_check[] =
    "import sys, re, xml.etree.ElementTree as ET\n"
    "from html.parser import HTMLParser\n"
    "page = open(sys.argv[1], encoding='utf-8').read()\n"
    "want = [x for x in sys.argv[2].split(',') if x]\n"
    "absent = [x for x in sys.argv[3].split(',') if x] if len(sys.argv) > 3 else []\n"
    "VOID = {'meta', 'br', 'img', 'hr', 'link', 'input'}\n"
    "bad = []\n"
    "class P(HTMLParser):\n"
    "    def __init__(s):\n"
    "        super().__init__(); s.stack = []\n"
    "    def handle_starttag(s, tag, attrs):\n"
    "        if tag not in VOID: s.stack.append(tag)\n"
    "    def handle_startendtag(s, tag, attrs): pass\n"
    "    def handle_endtag(s, tag):\n"
    "        if not s.stack or s.stack[-1] != tag:\n"
    "            bad.append('</%s> closes %r' % (tag, s.stack[-1:])); return\n"
    "        s.stack.pop()\n"
    "p = P(); p.feed(page); p.close()\n"
    "if p.stack: bad.append('unclosed: %r' % p.stack)\n"
    "if not page.startswith('<!DOCTYPE html>'): bad.append('no doctype')\n"
    "if re.search(r'<script|https?://(?!www.w3.org/2000/svg)', page):\n"
    "    bad.append('script or link')\n"
    "ids = []\n"
    "for frag in re.findall(r'<svg\\b.*?</svg>', page, re.S):\n"
    "    try:\n"
    "        root = ET.fromstring(frag)\n"
    "        ids.append(root.get('id'))\n"
    "    except ET.ParseError as e:\n"
    "        bad.append('svg %r: %s' % (frag[:40], e))\n"
    "for w in want:\n"
    "    if w not in ids: bad.append('no svg ' + w)\n"
    "for a in absent:\n"
    "    if a in ids: bad.append('unexpected svg ' + a)\n"
    "print('#   svg plots: %s' % ' '.join(str(i) for i in ids))\n"
    "if bad:\n"
    "    print('# BAD PAGE: ' + '; '.join(bad)); sys.exit(1)\n";

static const char *python(void) {
    const char *p = getenv("PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

static int check_page(const char *page, const char *want, const char *absent) {
    char cmd[2000];
    int st;
    assert_int_equal(tu_write_file(scratch("check.py"), page_check, strlen(page_check)), 0);
    snprintf(cmd, sizeof(cmd), "%s %s/check.py '%s' '%s' '%s'", python(), dir, page, want,
             absent);
    fflush(stdout);
    st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Generated sessions with seeded labels in both spellings; about a third
 * positive, more often among sessions with page value. */
static void write_labelled(const char *path, size_t n, uint64_t seed) {
    tu_rng rng;
    size_t i;
    rng.s = seed;
    for (i = 0; i < n; i++) {
        char field[N_UCI][32];
        int y;
        session_fields(i, field);
        y = tu_uniform(&rng, 0.0, 1.0) < (strtod(field[8], NULL) > 0 ? 0.7 : 0.2);
        labels[i] = i % 3 == 0 ? (y ? "1" : "0") : (y ? "TRUE" : "FALSE");
    }
    revenue_text = labels;
    write_csv(path, n, &labelled);
    revenue_text = NULL;
}

/* The text of the element with id="ID" in page (up to its '<'). */
static void cell(const char *page, const char *id, char *buf, size_t size) {
    char key[64];
    const char *p;
    size_t n = 0;
    snprintf(key, sizeof(key), "id=\"%s\">", id);
    p = strstr(page, key);
    assert_non_null(p);
    p += strlen(key);
    while (p[n] && p[n] != '<' && n + 1 < size)
        n++;
    memcpy(buf, p, n);
    buf[n] = '\0';
}

/* The number after "KEY": in a JSON object. */
static double json_number(const char *json, const char *key) {
    char k[64];
    const char *p;
    snprintf(k, sizeof(k), "\"%s\":", key);
    p = strstr(json, k);
    assert_non_null(p);
    return strtod(p + strlen(k), NULL);
}

/* ===================================================================== */

static void test_labelled_page_is_well_formed_with_every_plot(void **state) {
    run_out r;
    char *page;
    (void)state;
    write_labelled(scratch("in.csv"), N_ROWS, tu_seed("report labelled", 11));
    r = run(NULL, "report --model @M --explain-rows 100 @D/in.csv -o @D/report.html");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.err, "");
    assert_string_equal(r.out, "");
    assert_int_equal(check_page(scratch("report.html"), "roc,pr,calibration,scores,importance",
                                ""),
                     0);
    page = slurp(scratch("report.html"));
    assert_non_null(strstr(page, "id=\"metrics\""));
    assert_non_null(strstr(page, "ROC curve (AUC = 0."));
    assert_non_null(strstr(page, "Precision-recall curve (AP = 0."));
    assert_non_null(strstr(page, "PageValues"));
    assert_null(strstr(page, "id=\"no-labels\""));
    free(page);
    run_free(&r);
}

static void test_metrics_equal_eval_json(void **state) {
    static const char *const keys[] = {"roc_auc", "pr_auc", "log_loss", "accuracy",
                                       "precision", "recall", "f1"};
    static const char *const counts[] = {"tn", "fp", "fn", "tp"};
    run_out ev;
    run_out r;
    char *page;
    char got[64];
    char want[64];
    size_t i;
    (void)state;
    write_labelled(scratch("in.csv"), N_ROWS, tu_seed("report vs eval", 12));
    ev = run(NULL, "eval --model @M --json @D/in.csv");
    assert_int_equal(ev.code, 0);
    r = run(NULL, "report --model @M --no-explain -o @D/report.html @D/in.csv");
    assert_int_equal(r.code, 0);
    page = slurp(scratch("report.html"));
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char id[32];
        snprintf(id, sizeof(id), "m-%s", keys[i]);
        cell(page, id, got, sizeof(got));
        snprintf(want, sizeof(want), "%.6f", json_number(ev.out, keys[i]));
        printf("#   %-10s page %s, eval %s\n", keys[i], got, want);
        assert_string_equal(got, want);
    }
    for (i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof(id), "m-%s", counts[i]);
        cell(page, id, got, sizeof(got));
        snprintf(want, sizeof(want), "%.0f", json_number(ev.out, counts[i]));
        assert_string_equal(got, want);
    }
    cell(page, "rows", got, sizeof(got));
    assert_int_equal(strtol(got, NULL, 10), N_ROWS);
    free(page);
    run_free(&r);
    run_free(&ev);
}

static void test_without_labels_only_scores_and_importance(void **state) {
    run_out r;
    char *page;
    (void)state;
    write_csv(scratch("plain.csv"), 300, &plain);
    r = run(NULL, "report --model @M -n 50 @D/plain.csv -o @D/plain.html");
    assert_int_equal(r.code, 0);
    assert_int_equal(check_page(scratch("plain.html"), "scores,importance", "roc,pr,calibration"),
                     0);
    page = slurp(scratch("plain.html"));
    assert_non_null(strstr(page, "id=\"no-labels\""));
    assert_null(strstr(page, "id=\"metrics\""));
    assert_null(strstr(page, "id=\"m-roc_auc\""));
    free(page);
    run_free(&r);
    /* also to standard output, from standard input */
    r = run(scratch("plain.csv"), "report --model @M --no-explain");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "<svg id=\"scores\""));
    assert_non_null(strstr(r.out, "Left out: --no-explain"));
    assert_null(strstr(r.out, "<svg id=\"importance\""));
    run_free(&r);
}

/* 600 rows, at most 100 explained: one row in 8 (rows 1, 9, ... 593), 75
 * rows; the same importance on every run. */
static void test_explain_sample_is_every_kth_row_and_repeatable(void **state) {
    run_out a;
    run_out b;
    const char *ia;
    const char *ib;
    (void)state;
    write_labelled(scratch("in.csv"), N_ROWS, tu_seed("report sample", 13));
    a = run(NULL, "report --model @M --explain-rows 100 @D/in.csv");
    b = run(NULL, "report --model @M --explain-rows=100 @D/in.csv");
    assert_int_equal(a.code, 0);
    assert_int_equal(b.code, 0);
    assert_non_null(strstr(a.out, "a sample of 75 of the 600 rows: one row in 8"));
    ia = strstr(a.out, "<svg id=\"importance\"");
    ib = strstr(b.out, "<svg id=\"importance\"");
    assert_non_null(ia);
    assert_non_null(ib);
    assert_string_equal(ia, ib);
    run_free(&a);
    run_free(&b);
    a = run(NULL, "report --model @M --explain-rows 0 @D/in.csv");
    assert_int_equal(a.code, 0);
    assert_non_null(strstr(a.out, "over all 600 rows"));
    run_free(&a);
}

static void test_errors_exit_with_documented_codes(void **state) {
    run_out r;
    struct stat sb;
    (void)state;
    write_labelled(scratch("in.csv"), 50, 14);
    r = run(NULL, "report --model @D/no-such.opm @D/in.csv -o @D/x.html");
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.err, "cannot load model"));
    assert_int_not_equal(stat(scratch("x.html"), &sb), 0);
    run_free(&r);
    r = run(NULL, "report --model @M @D/in.csv -o @D/no-such-dir/x.html");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "no-such-dir"));
    run_free(&r);
    r = run(NULL, "report --model @M @D/no-such.csv -o @D/x.html");
    assert_int_equal(r.code, 1);
    assert_int_not_equal(stat(scratch("x.html"), &sb), 0);
    run_free(&r);
    r = run(NULL, "report @D/in.csv");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--model is required"));
    run_free(&r);
    r = run(NULL, "report --model @M --explain-rows x @D/in.csv");
    assert_int_equal(r.code, 2);
    run_free(&r);
    r = run(NULL, "report --model @M --bogus @D/in.csv");
    assert_int_equal(r.code, 2);
    run_free(&r);
    r = run(NULL, "report --help");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "--explain-rows"));
    run_free(&r);
}

static void test_bad_label_and_empty_input_exit_1_without_a_page(void **state) {
    static const char *bad[20];
    run_out r;
    struct stat sb;
    size_t i;
    (void)state;
    for (i = 0; i < 20; i++)
        bad[i] = i == 6 ? "yes" : "FALSE";
    revenue_text = bad;
    write_csv(scratch("bad.csv"), 20, &labelled);
    revenue_text = NULL;
    r = run(NULL, "report --model @M @D/bad.csv -o @D/bad.html");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "bad.csv:8: column 'Revenue': 'yes' is not a label"));
    assert_int_not_equal(stat(scratch("bad.html"), &sb), 0);
    run_free(&r);
    write_csv(scratch("header.csv"), 0, &labelled);
    r = run(NULL, "report --model @M @D/header.csv -o @D/header.html");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "no rows"));
    assert_int_not_equal(stat(scratch("header.html"), &sb), 0);
    run_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labelled_page_is_well_formed_with_every_plot),
        cmocka_unit_test(test_metrics_equal_eval_json),
        cmocka_unit_test(test_without_labels_only_scores_and_importance),
        cmocka_unit_test(test_explain_sample_is_every_kth_row_and_repeatable),
        cmocka_unit_test(test_errors_exit_with_documented_codes),
        cmocka_unit_test(test_bad_label_and_empty_input_exit_1_without_a_page),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
