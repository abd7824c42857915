/*
 * test_cli_eval.c - end-to-end tests of `opecom eval`, run as a program.
 *
 * The figures are checked against scikit-learn: generated sessions (some
 * repeated, so scores tie) get labels drawn from a seeded generator with a
 * probability rising with the model's own score; `opecom predict` gives the
 * probabilities, and a Python script computes roc_auc_score,
 * average_precision_score, log_loss, accuracy/precision/recall/f1,
 * confusion_matrix and calibration_curve on them and compares each with
 * `opecom eval --json` to 1e-6. Python is $PYTHON, else /usr/bin/python3
 * (Debian's, with numpy and sklearn); without sklearn the test fails.
 *
 * The other tests cover the error paths: missing label column, bad label
 * (line and column named), one-class labels, empty input, header only, CRLF
 * and quoted fields, --on-error skip.
 *
 * Run from the repository root: BUILD=build build/tests/test_cli_eval
 */
#include "test_cli_harness.h"

#define N_ROWS 3000
#define PERIOD 1100 /* row i is session i % PERIOD: ~2.7 copies of each */

static const int with_label[] = {0, 1, 2,  3,  4,  5,  6,  7,  8,            9,
                                 10, 11, 12, 13, 14, 15, 16, EXTRA_REVENUE};
static const csv_style labelled = {with_label, sizeof(with_label) / sizeof(with_label[0]), 0, 0,
                                   0};

static const char *labels[N_ROWS];

/* scikit-learn's figures on (labels of INPUT, probability of PRED) against
 * EVAL_JSON; prints them and every mismatch; exit 1 on any mismatch. */
static const char sklearn_check[] =
    "import csv, json, sys\n"
    "import numpy as np\n"
    "from sklearn import metrics as M\n"
    "from sklearn.calibration import calibration_curve\n"
    "inp, pred, ev = sys.argv[1:4]\n"
    "label_col = sys.argv[4] if len(sys.argv) > 4 else 'Revenue'\n"
    "val = {'true': 1, '1': 1, 'false': 0, '0': 0}\n"
    "with open(inp, newline='') as f:\n"
    "    y = np.array([val[r[label_col].lower()] for r in csv.DictReader(f)])\n"
    "with open(pred, newline='') as f:\n"
    "    # %.9g gives back the exact float32 the library computed\n"
    "    p = np.array([float(r['probability']) for r in csv.DictReader(f)],\n"
    "                 dtype=np.float32).astype(np.float64)\n"
    "e = json.load(open(ev))\n"
    "t = e['threshold']\n"
    "yh = (p >= t).astype(int)\n"
    "one_class = len(set(y.tolist())) < 2\n"
    "want = {\n"
    "    'n': len(y), 'positives': int(y.sum()),\n"
    "    'roc_auc': None if one_class else M.roc_auc_score(y, p),\n"
    "    'pr_auc': None if y.sum() == 0 else M.average_precision_score(y, p),\n"
    "    'log_loss': M.log_loss(y, p, labels=[0, 1]),\n"
    "    'accuracy': M.accuracy_score(y, yh),\n"
    "    'precision': M.precision_score(y, yh, zero_division=0),\n"
    "    'recall': M.recall_score(y, yh, zero_division=0),\n"
    "    'f1': M.f1_score(y, yh, zero_division=0),\n"
    "}\n"
    "bad = []\n"
    "for k, v in want.items():\n"
    "    got = e.get(k, 'absent')\n"
    "    ok = got is None if v is None else (\n"
    "        isinstance(got, (int, float)) and abs(got - v) <= 1e-6)\n"
    "    print('#   %-10s opecom %-22r sklearn %r' % (k, got, v))\n"
    "    if not ok: bad.append(k)\n"
    "tn, fp, fn, tp = (int(x) for x in M.confusion_matrix(y, yh, labels=[0, 1]).ravel())\n"
    "if e['confusion'] != {'tn': tn, 'fp': fp, 'fn': fn, 'tp': tp}:\n"
    "    bad.append('confusion %r != %r' % (e['confusion'], (tn, fp, fn, tp)))\n"
    "cal = e['calibration']\n"
    "edges = np.linspace(0.0, 1.0, 11)\n"
    "ids = np.searchsorted(edges[1:-1], p)\n"
    "counts = np.bincount(ids, minlength=10)\n"
    "pos = np.bincount(ids, weights=y, minlength=10)\n"
    "if [b['count'] for b in cal] != counts.tolist(): bad.append('bin counts')\n"
    "if [b['positives'] for b in cal] != [int(x) for x in pos]: bad.append('bin positives')\n"
    "if not one_class:\n"
    "    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy='uniform')\n"
    "    full = [b for b in cal if b['count'] > 0]\n"
    "    if len(full) != len(prob_true): bad.append('calibration bins')\n"
    "    else:\n"
    "        for b, pt, pp in zip(full, prob_true, prob_pred):\n"
    "            if abs(b['observed_rate'] - pt) > 1e-6 or abs(b['mean_predicted'] - pp) > 1e-6:\n"
    "                bad.append('calibration bin %r' % b)\n"
    "if any(b['count'] == 0 and b['mean_predicted'] is not None for b in cal):\n"
    "    bad.append('empty bin with a mean')\n"
    "ties = len(p) - len(np.unique(p))\n"
    "print('#   %d rows, %d positive, %d tied scores, threshold %r' % (len(y), y.sum(), ties, t))\n"
    "if len(sys.argv) <= 5 and ties == 0: bad.append('no ties: the test lost its point')\n"
    "if bad:\n"
    "    print('# MISMATCH: ' + ', '.join(bad))\n"
    "    sys.exit(1)\n";

static const char *python(void) {
    const char *p = getenv("PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

/* Runs the sklearn check; its report goes to our stdout. @return exit code. */
static int sklearn_compare(const char *input, const char *pred, const char *eval_json,
                           const char *extra_args) {
    char cmd[2400];
    int st;
    assert_int_equal(tu_write_file(scratch("check.py"), sklearn_check, strlen(sklearn_check)),
                     0);
    snprintf(cmd, sizeof(cmd), "%s %s/check.py %s %s %s %s", python(), dir, input, pred,
             eval_json, extra_args ? extra_args : "");
    fflush(stdout);
    st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Writes the labelled file: features as generated, Revenue drawn with
 * probability min(1, 1.5 p + 0.03) from the model's own scores, written in
 * both spellings (TRUE/FALSE, 1/0). Returns the number of positives. */
static size_t write_labelled(const char *path, size_t n, uint64_t seed) {
    run_out r;
    const char *p;
    tu_rng rng;
    size_t i = 0;
    size_t pos = 0;
    rng.s = seed;
    session_period = PERIOD;
    write_csv(scratch("features.csv"), n, &plain);
    r = run(NULL, "predict --model @M @D/features.csv");
    assert_int_equal(r.code, 0);
    for (p = strchr(r.out, '\n') + 1; *p && i < n; p = strchr(p, '\n') + 1, i++) {
        double prob = strtod(p, NULL);
        double q = 1.5 * prob + 0.03;
        int y = tu_uniform(&rng, 0.0, 1.0) < (q > 1.0 ? 1.0 : q);
        labels[i] = i % 3 == 0 ? (y ? "1" : "0") : (y ? "TRUE" : "FALSE");
        pos += (size_t)y;
    }
    assert_int_equal(i, n);
    run_free(&r);
    revenue_text = labels;
    write_csv(path, n, &labelled);
    revenue_text = NULL;
    session_period = 0;
    return pos;
}

/* ===================================================================== *
 * Against scikit-learn
 * ===================================================================== */

static void test_figures_match_sklearn_at_model_threshold(void **state) {
    uint64_t seed = tu_seed("eval vs sklearn", 20240531);
    run_out pred;
    run_out ev;
    (void)state;
    write_labelled(scratch("in.csv"), N_ROWS, seed);
    pred = run(NULL, "predict --model @M @D/in.csv -o @D/pred.csv");
    assert_int_equal(pred.code, 0);
    ev = run(NULL, "eval --model @M --json @D/in.csv");
    assert_int_equal(ev.code, 0);
    assert_string_equal(ev.err, "");
    assert_non_null(strstr(ev.out, "\"threshold_source\":\"model\""));
    assert_int_equal(tu_write_file(scratch("eval.json"), ev.out, strlen(ev.out)), 0);
    assert_int_equal(sklearn_compare(scratch("in.csv"), scratch("pred.csv"),
                                     scratch("eval.json"), NULL),
                     0);
    run_free(&pred);
    run_free(&ev);
}

static void test_figures_match_sklearn_at_given_threshold(void **state) {
    uint64_t seed = tu_seed("eval vs sklearn, threshold 0.3", 77);
    run_out pred;
    run_out ev;
    (void)state;
    write_labelled(scratch("in.csv"), N_ROWS, seed);
    pred = run(NULL, "predict --model @M @D/in.csv -o @D/pred.csv");
    assert_int_equal(pred.code, 0);
    ev = run(NULL, "eval --model @M --json --threshold 0.3 @D/in.csv");
    assert_int_equal(ev.code, 0);
    assert_non_null(strstr(ev.out, "\"threshold\":0.29999999999999999,"));
    assert_non_null(strstr(ev.out, "\"threshold_source\":\"option\""));
    assert_int_equal(tu_write_file(scratch("eval.json"), ev.out, strlen(ev.out)), 0);
    assert_int_equal(sklearn_compare(scratch("in.csv"), scratch("pred.csv"),
                                     scratch("eval.json"), NULL),
                     0);
    run_free(&pred);
    run_free(&ev);
}

/* One class only: ROC-AUC is null (sklearn raises), PR-AUC too without a
 * positive; the other figures still match sklearn; a warning says why. */
static void test_one_class_labels(void **state) {
    static const char *const values[2] = {"FALSE", "TRUE"};
    int v;
    (void)state;
    for (v = 0; v < 2; v++) {
        run_out pred;
        run_out ev;
        size_t i;
        for (i = 0; i < 200; i++)
            labels[i] = values[v];
        revenue_text = labels;
        write_csv(scratch("in.csv"), 200, &labelled);
        revenue_text = NULL;
        pred = run(NULL, "predict --model @M @D/in.csv -o @D/pred.csv");
        assert_int_equal(pred.code, 0);
        ev = run(NULL, "eval --model @M --json @D/in.csv");
        assert_int_equal(ev.code, 0);
        assert_non_null(strstr(ev.out, "\"roc_auc\":null,"));
        assert_non_null(strstr(ev.err, "ROC-AUC is undefined"));
        if (v == 0)
            assert_non_null(strstr(ev.out, "\"pr_auc\":null,"));
        else
            assert_non_null(strstr(ev.out, "\"pr_auc\":1,"));
        assert_int_equal(tu_write_file(scratch("eval.json"), ev.out, strlen(ev.out)), 0);
        assert_int_equal(sklearn_compare(scratch("in.csv"), scratch("pred.csv"),
                                         scratch("eval.json"), "Revenue no-ties"),
                         0);
        run_free(&pred);
        run_free(&ev);
    }
}

/* ===================================================================== *
 * Reports and options
 * ===================================================================== */

static void test_text_report_has_every_part(void **state) {
    static const char *const parts[] = {
        "rows         500 (", "threshold    ", "ROC-AUC      0.", "PR-AUC       0.",
        "log loss     0.", "accuracy     0.", "precision    ", "recall       ", "F1           ",
        "confusion matrix", "actual 0", "actual 1", "calibration", "[0.0, 0.1]", "(0.9, 1.0]"};
    run_out r;
    size_t i;
    (void)state;
    write_labelled(scratch("in.csv"), 500, 5);
    r = run(NULL, "eval --model @M @D/in.csv");
    assert_int_equal(r.code, 0);
    for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (strstr(r.out, parts[i]) == NULL)
            fail_msg("report lacks '%s':\n%s", parts[i], r.out);
    }
    assert_string_equal(r.err, "");
    run_free(&r);
}

static void test_label_option_names_the_column(void **state) {
    run_out a;
    run_out b;
    char *text;
    char *hdr;
    (void)state;
    write_labelled(scratch("in.csv"), 300, 9);
    text = slurp(scratch("in.csv"));
    hdr = strstr(text, "Revenue");
    assert_true(hdr != NULL && hdr < strchr(text, '\n'));
    memcpy(hdr, "Bought!", 7);
    assert_int_equal(tu_write_file(scratch("renamed.csv"), text, strlen(text)), 0);
    free(text);
    a = run(NULL, "eval --model @M --json @D/in.csv");
    b = run(NULL, "eval --model @M --json --label 'Bought!' @D/renamed.csv");
    assert_int_equal(a.code, 0);
    assert_int_equal(b.code, 0);
    assert_string_equal(a.out, b.out);
    run_free(&a);
    run_free(&b);
}

static void test_crlf_and_quoted_same_figures(void **state) {
    const csv_style crlf = {with_label, sizeof(with_label) / sizeof(with_label[0]), 1, 0, 0};
    const csv_style quoted = {with_label, sizeof(with_label) / sizeof(with_label[0]), 1, 1, 1};
    run_out a;
    run_out b;
    run_out c;
    (void)state;
    write_labelled(scratch("in.csv"), 400, 11);
    /* the same rows and labels in other spellings of the file */
    revenue_text = labels;
    session_period = PERIOD;
    write_csv(scratch("crlf.csv"), 400, &crlf);
    write_csv(scratch("quoted.csv"), 400, &quoted);
    revenue_text = NULL;
    session_period = 0;
    a = run(NULL, "eval --model @M --json @D/in.csv");
    b = run(NULL, "eval --model @M --json @D/crlf.csv");
    c = run(scratch("quoted.csv"), "eval --model @M --json -");
    assert_int_equal(a.code, 0);
    assert_int_equal(b.code, 0);
    assert_int_equal(c.code, 0);
    assert_non_null(strstr(a.out, "\"n\":400,"));
    assert_string_equal(a.out, b.out);
    assert_string_equal(a.out, c.out);
    run_free(&a);
    run_free(&b);
    run_free(&c);
}

static void test_help_and_usage_errors(void **state) {
    run_out r;
    (void)state;
    r = run(NULL, "eval --help");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "--label"));
    run_free(&r);
    r = run(NULL, "eval in.csv");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--model is required"));
    run_free(&r);
    r = run(NULL, "eval --model @M --threshold 2 in.csv");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--threshold '2'"));
    run_free(&r);
    r = run(NULL, "eval --model @M --on-error maybe in.csv");
    assert_int_equal(r.code, 2);
    run_free(&r);
    r = run(NULL, "eval --model @M --bogus in.csv");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--bogus"));
    run_free(&r);
}

static void test_unloadable_model_exits_3(void **state) {
    run_out r;
    (void)state;
    write_labelled(scratch("in.csv"), 3, 1);
    r = run(NULL, "eval --model @D/absent.opm @D/in.csv");
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.err, "absent.opm"));
    run_free(&r);
}

/* ===================================================================== *
 * Bad input
 * ===================================================================== */

static void test_missing_label_column_is_named(void **state) {
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), 10, &plain);
    r = run(NULL, "eval --model @M @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "in.csv: missing label column 'Revenue'"));
    assert_string_equal(r.out, "");
    run_free(&r);
    r = run(NULL, "eval --model @M --label Converted @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "missing label column 'Converted'"));
    run_free(&r);
}

static void test_missing_feature_column_is_named(void **state) {
    static const int order[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16,
                                EXTRA_REVENUE};
    const csv_style style = {order, sizeof(order) / sizeof(order[0]), 0, 0, 0};
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), 5, &style);
    r = run(NULL, "eval --model @M @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "in.csv: missing column 'VisitorType'"));
    run_free(&r);
}

static void test_bad_label_names_line_and_column(void **state) {
    run_out r;
    (void)state;
    {
        size_t i;
        for (i = 0; i < 20; i++)
            labels[i] = i == 6 ? "yes" : "FALSE";
        labels[3] = "TRUE";
    }
    revenue_text = labels;
    write_csv(scratch("in.csv"), 20, &labelled);
    revenue_text = NULL;
    r = run(NULL, "eval --model @M @D/in.csv");
    assert_int_equal(r.code, 1);
    /* data row 6 is on line 8 */
    assert_non_null(
        strstr(r.err, "in.csv:8: column 'Revenue': 'yes' is not a label (TRUE/FALSE or 1/0)"));
    assert_string_equal(r.out, "");
    run_free(&r);
}

static void test_skip_leaves_bad_rows_out(void **state) {
    run_out r;
    size_t i;
    char *text;
    char *p;
    (void)state;
    for (i = 0; i < 30; i++)
        labels[i] = i % 4 == 0 ? "TRUE" : "FALSE";
    labels[6] = "2";
    revenue_text = labels;
    write_csv(scratch("in.csv"), 30, &labelled);
    revenue_text = NULL;
    /* and a bad number on data row 20 (line 22): its first field */
    text = slurp(scratch("in.csv"));
    for (p = text, i = 0; i < 21; i++)
        p = strchr(p, '\n') + 1;
    p[0] = 'x';
    assert_int_equal(tu_write_file(scratch("in.csv"), text, strlen(text)), 0);
    free(text);
    r = run(NULL, "eval --model @M --json --on-error skip @D/in.csv");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"n\":28,"));
    assert_non_null(strstr(r.out, "\"skipped\":2,"));
    assert_non_null(strstr(r.err, "in.csv:8: column 'Revenue': '2' is not a label"));
    assert_non_null(strstr(r.err, "in.csv:22: column 'Administrative'"));
    assert_non_null(strstr(r.err, "2 of 30 rows skipped (bad data), 28 evaluated"));
    run_free(&r);
    r = run(NULL, "eval --model @M --json @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_string_equal(r.out, "");
    run_free(&r);
}

static void test_out_of_range_value_names_line(void **state) {
    run_out r;
    size_t i;
    char *text;
    char *p;
    (void)state;
    for (i = 0; i < 10; i++)
        labels[i] = "0";
    revenue_text = labels;
    write_csv(scratch("in.csv"), 10, &labelled);
    revenue_text = NULL;
    /* ExitRates (column 7) of data row 4 (line 6) set to 3 */
    text = slurp(scratch("in.csv"));
    for (p = text, i = 0; i < 5; i++)
        p = strchr(p, '\n') + 1;
    for (i = 0; i < 7; i++)
        p = strchr(p, ',') + 1;
    {
        char rebuilt[1 << 14];
        snprintf(rebuilt, sizeof(rebuilt), "%.*s3%s", (int)(p - text), text, strchr(p, ','));
        assert_int_equal(tu_write_file(scratch("in.csv"), rebuilt, strlen(rebuilt)), 0);
    }
    free(text);
    r = run(NULL, "eval --model @M @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "in.csv:6: "));
    assert_non_null(strstr(r.err, "ExitRates"));
    run_free(&r);
}

static void test_empty_file_is_error(void **state) {
    run_out r;
    (void)state;
    assert_int_equal(tu_write_file(scratch("empty.csv"), "", 0), 0);
    r = run(NULL, "eval --model @M @D/empty.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "empty.csv: empty input: no header row"));
    assert_string_equal(r.out, "");
    run_free(&r);
}

static void test_header_only_is_error(void **state) {
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), 0, &labelled);
    r = run(NULL, "eval --model @M --json @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "in.csv: no rows to evaluate"));
    assert_string_equal(r.out, "");
    run_free(&r);
}

static void test_short_row_names_line(void **state) {
    run_out r;
    (void)state;
    write_labelled(scratch("in.csv"), 4, 3);
    {
        FILE *f = fopen(scratch("in.csv"), "ab");
        assert_non_null(f);
        fputs("1,2,TRUE\n", f);
        fclose(f);
    }
    r = run(NULL, "eval --model @M @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "in.csv:6: 3 fields, but the header has 18"));
    run_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_figures_match_sklearn_at_model_threshold),
        cmocka_unit_test(test_figures_match_sklearn_at_given_threshold),
        cmocka_unit_test(test_one_class_labels),
        cmocka_unit_test(test_text_report_has_every_part),
        cmocka_unit_test(test_label_option_names_the_column),
        cmocka_unit_test(test_crlf_and_quoted_same_figures),
        cmocka_unit_test(test_help_and_usage_errors),
        cmocka_unit_test(test_unloadable_model_exits_3),
        cmocka_unit_test(test_missing_label_column_is_named),
        cmocka_unit_test(test_missing_feature_column_is_named),
        cmocka_unit_test(test_bad_label_names_line_and_column),
        cmocka_unit_test(test_skip_leaves_bad_rows_out),
        cmocka_unit_test(test_out_of_range_value_names_line),
        cmocka_unit_test(test_empty_file_is_error),
        cmocka_unit_test(test_header_only_is_error),
        cmocka_unit_test(test_short_row_names_line),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
