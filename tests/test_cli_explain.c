/*
 * test_cli_explain.c - end-to-end tests of `opecom explain`, run as a program.
 *
 * The CSV outputs are parsed here; the JSONL ones by Python's json module
 * ($PYTHON, else /usr/bin/python3) in a small checker that prints "ok" or
 * what is wrong. Numbers are checked against the library on the same rows
 * (opecom_predict for the probability, the contributions adding up to
 * probability - baseline). Input rows are generated sessions, never dataset
 * rows. Run from the repository root: BUILD=build build/tests/test_cli_explain
 */
#include "test_cli_harness.h"

static const char *python(void) {
    const char *p = getenv("PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

/* Runs the checker `code` (Python) with the arguments `args` (shell words);
 * fails the test unless it prints "ok". */
static void python_check(const char *code, const char *args) {
    char cmd[2400];
    char *out;
    assert_int_equal(tu_write_file(scratch("check.py"), code, strlen(code)), 0);
    snprintf(cmd, sizeof(cmd), "%s %s/check.py %s >%s/check.out 2>&1", python(), dir, args, dir);
    if (system(cmd) == -1)
        fail_msg("cannot run %s", python());
    out = slurp(scratch("check.out"));
    if (strcmp(out, "ok\n") != 0)
        fail_msg("checker (%s): %s", args, out);
    free(out);
}

enum { EXIT_DATA = 1, EXIT_USAGE = 2, EXIT_MODEL = 3 }; /* docs/cli.md */

/* Splits a CSV line without quotes-in-quotes subtleties: quoted fields may
 * hold commas. Returns the field count; fields point into line. */
static size_t split(char *line, char **fields, size_t cap) {
    size_t n = 0;
    char *p = line;
    while (n < cap) {
        if (*p == '"') {
            char *end = strchr(p + 1, '"');
            assert_non_null(end);
            fields[n++] = p + 1;
            *end = '\0';
            p = end + 1;
        } else {
            fields[n++] = p;
            p += strcspn(p, ",");
        }
        if (*p != ',') {
            *p = '\0';
            break;
        }
        *p++ = '\0';
    }
    return n;
}

/* ===================================================================== *
 * Per-row output
 * ===================================================================== */

static void test_top_contributions_csv(void **state) {
    char in[600];
    snprintf(in, sizeof(in), "%s", scratch("top.csv"));
    run_out r, p;
    char *line, *save = NULL, *pline, *psave = NULL;
    size_t rows = 0;
    (void)state;
    write_csv(in, 50, &plain);
    r = run(in, "explain --model @M --top 4");
    p = run(in, "predict --model @M");
    assert_int_equal(r.code, 0);
    assert_int_equal(p.code, 0);
    assert_string_equal(r.err, "");
    line = strtok_r(r.out, "\n", &save);
    assert_string_equal(line, "probability,baseline,feature_1,value_1,contribution_1,reason_1,"
                              "feature_2,value_2,contribution_2,reason_2,feature_3,value_3,"
                              "contribution_3,reason_3,feature_4,value_4,contribution_4,"
                              "reason_4");
    pline = strtok_r(p.out, "\n", &psave);
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        char *f[64], *pf[64];
        size_t n = split(line, f, 64), i;
        double prev = 1e9;
        pline = strtok_r(NULL, "\n", &psave);
        assert_non_null(pline);
        split(pline, pf, 64);
        assert_int_equal(n, 2 + 4 * 4);
        /* the same probability as predict (which prints a float) */
        assert_true(fabs(strtod(f[0], NULL) - strtod(pf[0], NULL)) < 1e-7);
        assert_true(strtod(f[1], NULL) > 0.0 && strtod(f[1], NULL) < 1.0);
        for (i = 0; i < 4; i++) {
            const char *c = f[2 + 4 * i + 2];
            double v = fabs(strtod(c, NULL));
            assert_true(opecom_feature_index(model, f[2 + 4 * i]) >= 0);
            assert_true(c[0] == '+' || c[0] == '-'); /* signed */
            assert_true(v <= prev);                  /* largest first */
            assert_true(strlen(f[2 + 4 * i + 3]) > 0);
            prev = v;
        }
        rows++;
    }
    assert_int_equal(rows, 50);
    run_free(&r);
    run_free(&p);
}

static const char check_top_py[] =
    "import json, sys\n"
    "n = 0\n"
    "for line in open(sys.argv[1]):\n"
    "    o = json.loads(line)\n"
    "    assert set(o) == {'probability', 'baseline', 'top'}, o.keys()\n"
    "    assert len(o['top']) == 3\n"
    "    sizes = [abs(t['contribution']) for t in o['top']]\n"
    "    assert sizes == sorted(sizes, reverse=True), sizes\n"
    "    for t in o['top']:\n"
    "        assert set(t) == {'feature', 'value', 'contribution', 'reason'}, t\n"
    "        assert t['reason'], t\n"
    "        assert isinstance(t['value'], str if t['feature'] in ('Month', 'VisitorType', "
    "'Weekend', 'OperatingSystems', 'Browser', 'Region', 'TrafficType') else (int, float))\n"
    "    n += 1\n"
    "assert n == 40, n\n"
    "print('ok')\n";

static void test_top_contributions_jsonl(void **state) {
    char in[600];
    snprintf(in, sizeof(in), "%s", scratch("top.csv"));
    run_out r;
    (void)state;
    write_csv(in, 40, &plain);
    r = run(in, "explain --model @M --format jsonl");
    assert_int_equal(r.code, 0);
    assert_int_equal(tu_write_file(scratch("top.jsonl"), r.out, strlen(r.out)), 0);
    python_check(check_top_py, scratch("top.jsonl"));
    run_free(&r);
}

static const char check_all_py[] =
    "import json, sys\n"
    "names = sys.argv[2].split(',')\n"
    "n = 0\n"
    "for line in open(sys.argv[1]):\n"
    "    o = json.loads(line)\n"
    "    assert set(o) == {'probability', 'baseline', 'contributions'}, o.keys()\n"
    "    c = o['contributions']\n"
    "    assert list(c) == names, list(c)\n"
    "    gap = sum(c.values()) - (o['probability'] - o['baseline'])\n"
    "    assert abs(gap) < 1e-7, gap\n"
    "    n += 1\n"
    "assert n == 30, n\n"
    "print('ok')\n";

static void test_all_maps_every_feature(void **state) {
    char in[600];
    snprintf(in, sizeof(in), "%s", scratch("all.csv"));
    char names[1024] = "";
    char args[1800];
    size_t len = 0;
    uint32_t f;
    run_out r;
    (void)state;
    for (f = 0; f < N_UCI; f++) {
        opecom_feature_info fi;
        opecom_model_feature(model, f, &fi);
        len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", f ? "," : "", fi.name);
    }
    write_csv(in, 30, &plain);
    r = run(in, "explain --model @M --all --format jsonl");
    assert_int_equal(r.code, 0);
    assert_int_equal(tu_write_file(scratch("all.jsonl"), r.out, strlen(r.out)), 0);
    snprintf(args, sizeof(args), "%s %s", scratch("all.jsonl"), names);
    python_check(check_all_py, args);
    run_free(&r);

    /* CSV: one column per feature, in model order */
    r = run(in, "explain --model @M --all");
    assert_int_equal(r.code, 0);
    assert_true(strncmp(r.out, "probability,baseline,", 21) == 0);
    assert_true(strncmp(r.out + 21, names, strlen(names)) == 0);
    assert_int_equal(count_lines(r.out), 31);
    run_free(&r);
}

/* ===================================================================== *
 * Global importance
 * ===================================================================== */

static void test_global_importance_on_generated_rows(void **state) {
    char in[600];
    snprintf(in, sizeof(in), "%s", scratch("global.csv"));
    char *line, *save = NULL;
    double prev = 1e9;
    int seen[N_UCI] = {0};
    size_t n = 0;
    run_out r;
    (void)state;
    write_csv(in, 300, &plain);
    r = run(in, "explain --model @M --global");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.err, "");
    line = strtok_r(r.out, "\n", &save);
    assert_string_equal(line, "feature,importance");
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        char *f[4];
        int32_t idx;
        double v;
        assert_int_equal(split(line, f, 4), 2);
        idx = opecom_feature_index(model, f[0]);
        assert_true(idx >= 0 && !seen[idx]);
        seen[idx] = 1;
        v = strtod(f[1], NULL);
        assert_true(v >= 0.0 && v <= prev);
        prev = v;
        n++;
    }
    assert_int_equal(n, N_UCI);
    run_free(&r);

    r = run(in, "explain --model @M --global --format jsonl");
    assert_int_equal(r.code, 0);
    assert_int_equal(count_lines(r.out), N_UCI);
    assert_true(strncmp(r.out, "{\"feature\":\"", 12) == 0);
    run_free(&r);
}

/* ===================================================================== *
 * Errors and options
 * ===================================================================== */

static void test_model_without_baseline_is_refused(void **state) {
    char cmd[1600];
    run_out r;
    (void)state;
    /* the shipped exports without the "baseline" key */
    snprintf(cmd, sizeof(cmd),
             "%s -c \"import json,sys; s=json.load(open('models/shoppers-tabm-k4.spec.json')); "
             "s.pop('baseline', None); json.dump(s, open('%s/nobase.spec.json','w'))\" && "
             "%s/opecom-convert --weights models/shoppers-tabm-k4.npz --spec %s/nobase.spec.json "
             "-o %s/nobase.opm >/dev/null",
             python(), dir, tu_build_dir(), dir, dir);
    assert_int_equal(system(cmd), 0);
    write_csv(scratch("few.csv"), 3, &plain);
    r = run(scratch("few.csv"), "explain --model @D/nobase.opm");
    assert_int_equal(r.code, EXIT_MODEL);
    assert_non_null(strstr(r.err, "no explanation baseline"));
    assert_string_equal(r.out, "");
    run_free(&r);
}

static void test_bad_row_names_its_line(void **state) {
    char in[600];
    snprintf(in, sizeof(in), "%s", scratch("bad.csv"));
    run_out r;
    (void)state;
    write_csv_with(in, 10, 6, 6, "-0.5"); /* BounceRates below 0, data line 7 = file line 8 */
    r = run(in, "explain --model @M");
    assert_int_equal(r.code, EXIT_DATA);
    assert_non_null(strstr(r.err, ":8: "));
    assert_non_null(strstr(r.err, "BounceRates"));
    assert_int_equal(count_lines(r.out), 1 + 6); /* header and the rows before */
    run_free(&r);
}

static void test_usage_errors(void **state) {
    static const char *const bad[] = {
        "explain --model @M --top 0",      "explain --model @M --all --global",
        "explain --model @M --top 2 --all", "explain --model @M --format xml",
        "explain --model @M --estimator magic", "explain --model @M --evals 0",
        "explain --model @M --seed x",     "explain",
        "explain --model @M a.csv b.csv",
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        run_out r = run(NULL, bad[i]);
        if (r.code != EXIT_USAGE)
            fail_msg("'%s': exit %d, want %d (%s)", bad[i], r.code, EXIT_USAGE, r.err);
        run_free(&r);
    }
}

static void test_options_reach_the_library(void **state) {
    char in[600];
    snprintf(in, sizeof(in), "%s", scratch("opts.csv"));
    run_out a, b, c;
    (void)state;
    write_csv(in, 5, &plain);
    a = run(in, "explain --model @M --all --estimator permutation --evals 300 --seed 7");
    b = run(in, "explain --model @M --all --estimator permutation --evals 300 --seed 7");
    c = run(in, "explain --model @M --all --estimator permutation --evals 300 --seed 8");
    assert_int_equal(a.code, 0);
    assert_string_equal(a.out, b.out);          /* same seed, same output */
    assert_true(strcmp(a.out, c.out) != 0);     /* another seed samples otherwise */
    run_free(&a);
    run_free(&b);
    run_free(&c);
    a = run(NULL, "explain --help");
    assert_int_equal(a.code, 0);
    assert_non_null(strstr(a.out, "--global"));
    run_free(&a);
    a = run(NULL, "--help");
    assert_non_null(strstr(a.out, "explain"));
    run_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_top_contributions_csv),
        cmocka_unit_test(test_top_contributions_jsonl),
        cmocka_unit_test(test_all_maps_every_feature),
        cmocka_unit_test(test_global_importance_on_generated_rows),
        cmocka_unit_test(test_model_without_baseline_is_refused),
        cmocka_unit_test(test_bad_row_names_its_line),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_options_reach_the_library),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
