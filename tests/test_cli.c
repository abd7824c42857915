/*
 * test_cli.c - end-to-end tests of `opecom predict`, run as a program.
 *
 * Each test writes a CSV file of generated sessions (never dataset rows),
 * runs $BUILD/opecom through the shell with stdout and stderr sent to files,
 * and checks one property: exit code, the error message, or the output rows.
 * The model is $OPECOM_TEST_MODEL if set, else models/shoppers-tabm-k4.opm.
 * Predictions are compared with opecom_predict called here directly.
 *
 * The shared pieces (running the tool, generated sessions) are in
 * test_cli_harness.h.
 *
 * Run from the repository root: BUILD=build build/tests/test_cli
 */
/* posix_openpt, grantpt, unlockpt, ptsname: to learn whether a
 * pseudo-terminal can be had before asking script(1) for one */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <fcntl.h>

#include "test_cli_harness.h"

static char *expected_header(void) {
    char *h = malloc(64 + 16 * model_k);
    uint32_t j;
    assert_non_null(h);
    strcpy(h, "probability");
    for (j = 0; j < model_k; j++)
        sprintf(h + strlen(h), ",p_member_%u", j);
    strcat(h, ",spread\n");
    return h;
}

/* ===================================================================== *
 * Command line
 * ===================================================================== */

static void test_help_exits_zero(void **state) {
    run_out r = run(NULL, "--help");
    (void)state;
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "predict"));
    run_free(&r);
}

static void test_predict_help_exits_zero(void **state) {
    run_out r = run(NULL, "predict --help");
    (void)state;
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "--model"));
    run_free(&r);
}

static void test_version_prints_library_version(void **state) {
    run_out r = run(NULL, "--version");
    (void)state;
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, opecom_version_string()));
    run_free(&r);
}

static void test_unknown_option_exits_2(void **state) {
    run_out r = run(NULL, "predict --model x.opm --frobnicate in.csv");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--frobnicate"));
    run_free(&r);
}

static void test_unknown_command_exits_2(void **state) {
    run_out r = run(NULL, "frobnicate");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "frobnicate"));
    run_free(&r);
}

static void test_missing_model_option_exits_2(void **state) {
    run_out r = run(NULL, "predict in.csv");
    (void)state;
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--model"));
    run_free(&r);
}

static void test_unloadable_model_exits_3(void **state) {
    run_out r;
    (void)state;
    assert_int_equal(tu_write_file(scratch("junk.opm"), "not a model\n", 12), 0);
    write_csv(scratch("in.csv"), 3, &plain);
    r = run(NULL, "predict --model @D/junk.opm @D/in.csv");
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.err, "junk.opm"));
    assert_string_equal(r.out, "");
    run_free(&r);
}

/* ===================================================================== *
 * Output values
 * ===================================================================== */

/* Scores generated session i here, with the library directly. */
static void predict_direct(uint64_t i, opecom_result *res) {
    char field[N_UCI][32];
    opecom_value row[64];
    opecom_error err;
    opecom_model_info info;
    int c;
    opecom_model_describe(model, &info);
    assert_true(info.n_features <= 64);
    memset(row, 0, sizeof(row));
    session_fields(i, field);
    for (c = 0; c < N_UCI; c++) {
        int32_t f = opecom_feature_index(model, uci_name[c]);
        if (f < 0)
            continue; /* a model may use fewer features */
        if (c < N_NUMERIC)
            row[f].num = strtod(field[c], NULL);
        else
            row[f].str = field[c];
    }
    assert_int_equal(opecom_predict(model, NULL, row, res, &err), OPECOM_OK);
}

static void test_output_matches_direct_predict(void **state) {
    const size_t n = 300; /* more than one internal batch of 256 */
    run_out r;
    const char *line;
    size_t i;
    (void)state;
    write_csv(scratch("in.csv"), n, &plain);
    r = run(NULL, "predict --model @M @D/in.csv");
    assert_int_equal(r.code, 0);
    line = strchr(r.out, '\n');
    assert_non_null(line);
    for (i = 0; i < n; i++) {
        opecom_result want;
        char *end;
        uint32_t j;
        predict_direct(i, &want);
        line++;
        assert_float_equal(strtod(line, &end), want.probability, 1e-5);
        for (j = 0; j < model_k; j++) {
            assert_int_equal(*end, ',');
            assert_float_equal(strtod(end + 1, &end), want.member[j], 1e-5);
        }
        assert_int_equal(*end, ',');
        assert_float_equal(strtod(end + 1, &end), want.spread, 1e-5);
        assert_int_equal(*end, '\n');
        line = end;
    }
    assert_int_equal(line[1], '\0');
    run_free(&r);
}

static void test_header_lists_members(void **state) {
    char *want;
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), 2, &plain);
    r = run(NULL, "predict --model @M @D/in.csv");
    assert_int_equal(r.code, 0);
    want = expected_header();
    assert_memory_equal(r.out, want, strlen(want));
    free(want);
    run_free(&r);
}

static void test_thousand_rows_give_thousand_outputs(void **state) {
    run_out r;
    const char *p;
    (void)state;
    write_csv(scratch("in.csv"), 1000, &plain);
    r = run(NULL, "predict --model @M @D/in.csv");
    assert_int_equal(r.code, 0);
    assert_int_equal(count_lines(r.out), 1001);
    for (p = strchr(r.out, '\n') + 1; *p; p = strchr(p, '\n') + 1) {
        double prob = strtod(p, NULL);
        assert_true(prob >= 0.0 && prob <= 1.0);
    }
    run_free(&r);
}

/* ===================================================================== *
 * Input formats
 * ===================================================================== */

/* Output for `style` must equal the output for the plain file. */
static void assert_same_output_as_plain(const csv_style *style, size_t n) {
    run_out a;
    run_out b;
    write_csv(scratch("plain.csv"), n, &plain);
    write_csv(scratch("styled.csv"), n, style);
    a = run(NULL, "predict --model @M @D/plain.csv");
    b = run(NULL, "predict --model @M @D/styled.csv");
    assert_int_equal(a.code, 0);
    assert_int_equal(b.code, 0);
    assert_int_equal(count_lines(a.out), n + 1);
    assert_string_equal(a.out, b.out);
    run_free(&a);
    run_free(&b);
}

static void test_shuffled_and_extra_columns_same_output(void **state) {
    static const int order[] = {16, EXTRA_REVENUE, 8, 0, 10, 3, 15, 12, 1, 7, EXTRA_NOTE,
                                9,  14,            2, 6, 11, 5, 13, 4};
    const csv_style style = {order, sizeof(order) / sizeof(order[0]), 0, 0, 0};
    (void)state;
    assert_same_output_as_plain(&style, 50);
}

static void test_crlf_same_as_lf(void **state) {
    const csv_style style = {NULL, 0, 1, 0, 0};
    (void)state;
    assert_same_output_as_plain(&style, 50);
}

static void test_quoted_fields_same_output(void **state) {
    static const int order[] = {0, 1, 2, 3, 4, 5, 6, 7, EXTRA_NOTE, 8, 9,
                                10, 11, 12, 13, 14, 15, 16};
    const csv_style style = {order, sizeof(order) / sizeof(order[0]), 1, 1, 0};
    (void)state;
    assert_same_output_as_plain(&style, 50);
}

static void test_missing_final_newline_scores_last_row(void **state) {
    const csv_style style = {NULL, 0, 0, 0, 1};
    (void)state;
    assert_same_output_as_plain(&style, 7);
}

static void test_stdin_input_same_as_file(void **state) {
    run_out a;
    run_out b;
    run_out c;
    (void)state;
    write_csv(scratch("in.csv"), 20, &plain);
    a = run(NULL, "predict --model @M @D/in.csv");
    b = run(scratch("in.csv"), "predict --model @M");
    c = run(scratch("in.csv"), "predict --model @M -");
    assert_int_equal(a.code, 0);
    assert_int_equal(b.code, 0);
    assert_int_equal(c.code, 0);
    assert_string_equal(a.out, b.out);
    assert_string_equal(a.out, c.out);
    run_free(&a);
    run_free(&b);
    run_free(&c);
}

static void test_output_option_writes_file(void **state) {
    run_out a;
    run_out b;
    char *file;
    (void)state;
    write_csv(scratch("in.csv"), 20, &plain);
    unlink(scratch("out.csv"));
    a = run(NULL, "predict --model @M @D/in.csv");
    b = run(NULL, "predict --model @M @D/in.csv -o @D/out.csv");
    assert_int_equal(b.code, 0);
    assert_string_equal(b.out, "");
    file = slurp(scratch("out.csv"));
    assert_string_equal(file, a.out);
    free(file);
    run_free(&a);
    run_free(&b);
}

static void test_header_only_prints_header(void **state) {
    char *want;
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), 0, &plain);
    r = run(NULL, "predict --model @M @D/in.csv");
    assert_int_equal(r.code, 0);
    want = expected_header();
    assert_string_equal(r.out, want);
    free(want);
    run_free(&r);
}

static void test_empty_file_is_error(void **state) {
    run_out r;
    (void)state;
    assert_int_equal(tu_write_file(scratch("empty.csv"), "", 0), 0);
    r = run(NULL, "predict --model @M @D/empty.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "no header"));
    assert_string_equal(r.out, "");
    run_free(&r);
}

/* ===================================================================== *
 * Bad input
 * ===================================================================== */

static void test_missing_column_is_named(void **state) {
    static const int order[] = {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16};
    const csv_style style = {order, sizeof(order) / sizeof(order[0]), 0, 0, 0};
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), 5, &style);
    r = run(NULL, "predict --model @M @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "in.csv: missing column 'PageValues'"));
    run_free(&r);
}

static void test_bad_number_names_line_and_column(void **state) {
    run_out r;
    (void)state;
    /* data row 55 (0-based) is on line 57: the header is line 1 */
    write_csv_with(scratch("in.csv"), 80, 55, 6, "0.3x");
    r = run(NULL, "predict --model @M @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "in.csv:57: column 'BounceRates': '0.3x' is not a number"));
    run_free(&r);
}

static void test_rows_before_an_error_are_written(void **state) {
    run_out r;
    (void)state;
    write_csv_with(scratch("in.csv"), 400, 299, 0, "three");
    r = run(NULL, "predict --model @M @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_int_equal(count_lines(r.out), 1 + 299);
    assert_non_null(strstr(r.err, "in.csv:301: column 'Administrative'"));
    run_free(&r);
}

static void test_nan_names_feature(void **state) {
    run_out r;
    (void)state;
    write_csv_with(scratch("in.csv"), 10, 3, 7, "NaN");
    r = run(NULL, "predict --model @M @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "in.csv:5:"));
    assert_non_null(strstr(r.err, "'ExitRates'"));
    run_free(&r);
}

static void test_out_of_range_value_names_line_and_feature(void **state) {
    opecom_feature_info fi;
    char text[64];
    int32_t f;
    run_out r;
    (void)state;
    f = opecom_feature_index(model, "Administrative_Duration");
    assert_true(f >= 0);
    assert_int_equal(opecom_model_feature(model, (uint32_t)f, &fi), OPECOM_OK);
    assert_true(fi.has_min);
    snprintf(text, sizeof(text), "%g", fi.min - 12.5);
    write_csv_with(scratch("in.csv"), 10, 6, 1, text);
    r = run(NULL, "predict --model @M @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "in.csv:8:"));
    assert_non_null(strstr(r.err, "Administrative_Duration"));
    run_free(&r);
}

static void test_short_row_names_line(void **state) {
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), 3, &plain);
    {
        FILE *f = fopen(scratch("in.csv"), "ab");
        assert_non_null(f);
        fputs("1,2,3\n", f);
        fclose(f);
    }
    r = run(NULL, "predict --model @M @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "in.csv:5: 3 fields"));
    run_free(&r);
}

static void test_failed_run_leaves_no_output_file(void **state) {
    run_out r;
    (void)state;
    write_csv_with(scratch("in.csv"), 10, 4, 2, "");
    unlink(scratch("out.csv"));
    r = run(NULL, "predict --model @M @D/in.csv -o @D/out.csv");
    assert_int_equal(r.code, 1);
    assert_int_equal(access(scratch("out.csv"), F_OK), -1);
    run_free(&r);
}

static void test_unknown_category_is_scored_with_warning(void **state) {
    run_out r;
    (void)state;
    write_csv_with(scratch("in.csv"), 10, 2, 10, "Nox");
    r = run(NULL, "predict --model @M @D/in.csv");
    assert_int_equal(r.code, 0);
    assert_int_equal(count_lines(r.out), 11);
    assert_non_null(strstr(r.err, "in.csv:4: column 'Month': unknown category 'Nox'"));
    run_free(&r);
}

/* ===================================================================== *
 * --threshold, --keep, --format
 * ===================================================================== */

/* The exact float printed with %.9g at p (which round-trips a float). */
static double float_at(const char *p, char **end) {
    return (double)(float)strtod(p, end);
}

/* Points at the start of the last field of the line at p. */
static const char *last_field(const char *p) {
    const char *nl = strchr(p, '\n');
    const char *c = nl;
    assert_non_null(nl);
    while (c > p && c[-1] != ',')
        c--;
    return c;
}

static void test_threshold_adds_label_column(void **state) {
    const size_t n = 300;
    const char *p;
    size_t rows = 0;
    size_t ones = 0;
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), n, &plain);
    r = run(NULL, "predict --model @M --threshold 0.05 @D/in.csv");
    assert_int_equal(r.code, 0);
    p = strchr(r.out, '\n');
    assert_non_null(p);
    assert_memory_equal(p - 6, ",label\n", 7);
    for (p = p + 1; *p; p = strchr(p, '\n') + 1) {
        double prob = float_at(p, NULL);
        const char *label = last_field(p);
        assert_true(label[0] == '0' || label[0] == '1');
        assert_int_equal(label[1], '\n');
        assert_int_equal(label[0] == '1', prob >= 0.05);
        ones += label[0] == '1';
        rows++;
    }
    assert_int_equal(rows, n);
    assert_true(ones > 0 && ones < n); /* the threshold splits the rows */
    run_free(&r);
}

static void test_threshold_model_is_the_library_label(void **state) {
    const size_t n = 300;
    const char *p;
    size_t i = 0;
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), n, &plain);
    r = run(NULL, "predict --model @M -t model @D/in.csv");
    assert_int_equal(r.code, 0);
    for (p = strchr(r.out, '\n') + 1; *p; p = strchr(p, '\n') + 1, i++) {
        opecom_result want;
        predict_direct(i, &want);
        assert_int_equal(last_field(p)[0] - '0', (int)want.label);
    }
    assert_int_equal(i, n);
    run_free(&r);
}

static void test_bad_threshold_exits_2(void **state) {
    static const char *const bad[] = {"1.5", "-0.1", "abc", "0.5x", "", "nan"};
    char args[200];
    size_t i;
    (void)state;
    write_csv(scratch("in.csv"), 3, &plain);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        run_out r;
        snprintf(args, sizeof(args), "predict --model @M --threshold '%s' @D/in.csv", bad[i]);
        r = run(NULL, args);
        assert_int_equal(r.code, 2);
        assert_non_null(strstr(r.err, "--threshold"));
        assert_string_equal(r.out, "");
        run_free(&r);
    }
}

/* Kept fields come first, quoted again where needed; the rest of each row
 * is the plain output. */
static void test_keep_copies_columns_before_predictions(void **state) {
    static const int order[] = {0, 1, 2, 3, 4, 5, 6, 7, EXTRA_NOTE, 8, 9,
                                10, 11, 12, 13, 14, 15, 16};
    const csv_style style = {order, sizeof(order) / sizeof(order[0]), 0, 1, 0};
    const size_t n = 40;
    const char *a;
    const char *b;
    run_out pl;
    run_out r;
    size_t i;
    (void)state;
    write_csv(scratch("plain.csv"), n, &plain);
    write_csv(scratch("in.csv"), n, &style);
    pl = run(NULL, "predict --model @M @D/plain.csv");
    r = run(NULL, "predict --model @M --keep note,Month @D/in.csv");
    assert_int_equal(pl.code, 0);
    assert_int_equal(r.code, 0);
    assert_memory_equal(r.out, "note,Month,", 11);
    a = strchr(pl.out, '\n') + 1;
    b = strchr(r.out, '\n') + 1;
    assert_memory_equal(r.out + 11, pl.out, (size_t)(a - pl.out));
    for (i = 0; i < n; i++) {
        char field[N_UCI][32];
        char want[64];
        const char *a_end = strchr(a, '\n') + 1;
        session_fields(i, field);
        snprintf(want, sizeof(want), "\"a, \"\"b\"\"\nc\",%s,", field[10]);
        assert_memory_equal(b, want, strlen(want));
        b += strlen(want);
        assert_memory_equal(b, a, (size_t)(a_end - a));
        b += a_end - a;
        a = a_end;
    }
    assert_int_equal(*b, '\0');
    run_free(&pl);
    run_free(&r);
}

static void test_keep_all_copies_every_column(void **state) {
    static const int order[] = {16, EXTRA_REVENUE, 8, 0, 10, 3, 15, 12, 1, 7, EXTRA_NOTE,
                                9,  14,            2, 6, 11, 5, 13, 4};
    const csv_style style = {order, sizeof(order) / sizeof(order[0]), 0, 0, 0};
    char *in;
    char *want;
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), 5, &style);
    r = run(NULL, "predict --model @M --keep all @D/in.csv");
    assert_int_equal(r.code, 0);
    in = slurp(scratch("in.csv"));
    want = expected_header();
    /* header: the input's header, then the predictions' */
    assert_memory_equal(r.out, in, (size_t)(strchr(in, '\n') - in));
    assert_int_equal(r.out[strchr(in, '\n') - in], ',');
    assert_memory_equal(r.out + (strchr(in, '\n') - in) + 1, want, strlen(want));
    /* first row: the input's row, then its predictions */
    {
        const char *in_row = strchr(in, '\n') + 1;
        const char *out_row = strchr(r.out, '\n') + 1;
        size_t len = (size_t)(strchr(in_row, '\n') - in_row);
        assert_memory_equal(out_row, in_row, len);
        assert_int_equal(out_row[len], ',');
    }
    assert_int_equal(count_lines(r.out), 6);
    free(in);
    free(want);
    run_free(&r);
}

static void test_keep_missing_column_is_named(void **state) {
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), 5, &plain);
    r = run(NULL, "predict --model @M --keep Month,order_id @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "in.csv: missing column 'order_id' (named in --keep)"));
    assert_string_equal(r.out, "");
    run_free(&r);
}

static void test_keep_empty_name_exits_2(void **state) {
    run_out r;
    (void)state;
    r = run(NULL, "predict --model @M --keep Month,,Region @D/in.csv");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--keep"));
    run_free(&r);
}

/* Every JSON line holds the kept text and the same numbers as the CSV. */
static void test_jsonl_has_csv_values(void **state) {
    const size_t n = 60;
    const char *c;
    const char *j;
    run_out csv;
    run_out js;
    size_t i;
    (void)state;
    write_csv(scratch("in.csv"), n, &plain);
    csv = run(NULL, "predict --model @M -t model @D/in.csv");
    js = run(NULL, "predict --model @M -t model --keep Month --format jsonl @D/in.csv");
    assert_int_equal(csv.code, 0);
    assert_int_equal(js.code, 0);
    assert_int_equal(count_lines(js.out), n); /* no header */
    c = strchr(csv.out, '\n') + 1;
    j = js.out;
    for (i = 0; i < n; i++) {
        char field[N_UCI][32];
        char want[512];
        char *end;
        uint32_t m;
        size_t len;
        session_fields(i, field);
        /* probability,p_member_0..,spread,label -> JSON keys */
        len = (size_t)snprintf(want, sizeof(want), "{\"Month\":\"%s\",\"probability\":%.*s",
                               field[10], (int)strcspn(c, ","), c);
        c += strcspn(c, ",") + 1;
        for (m = 0; m < model_k; m++) {
            len += (size_t)snprintf(want + len, sizeof(want) - len, ",\"p_member_%u\":%.*s", m,
                                    (int)strcspn(c, ","), c);
            c += strcspn(c, ",") + 1;
        }
        len += (size_t)snprintf(want + len, sizeof(want) - len, ",\"spread\":%.*s",
                                (int)strcspn(c, ","), c);
        c += strcspn(c, ",") + 1;
        len += (size_t)snprintf(want + len, sizeof(want) - len, ",\"label\":%c}\n", c[0]);
        end = strchr(c, '\n');
        c = end + 1;
        assert_memory_equal(j, want, len);
        j += len;
    }
    assert_int_equal(*j, '\0');
    run_free(&csv);
    run_free(&js);
}

static void test_jsonl_escapes_text_and_counts_unknown(void **state) {
    static const char csv[] =
        "note,Administrative,Administrative_Duration,Informational,Informational_Duration,"
        "ProductRelated,ProductRelated_Duration,BounceRates,ExitRates,PageValues,SpecialDay,"
        "Month,OperatingSystems,Browser,Region,TrafficType,VisitorType,Weekend\n"
        "\"a, \"\"b\"\"\nc\",0,0,0,0,1,0,0.2,0.2,0,0,Feb,1,1,1,1,Returning_Visitor,FALSE\n"
        "x,0,0,0,0,1,0,0.2,0.2,0,0,Nox,1,1,1,1,Returning_Visitor,FALSE\n";
    const char *second;
    run_out r;
    (void)state;
    assert_int_equal(tu_write_file(scratch("in.csv"), csv, strlen(csv)), 0);
    r = run(NULL, "predict --model @M --keep note -f jsonl @D/in.csv");
    assert_int_equal(r.code, 0);
    assert_int_equal(count_lines(r.out), 2);
    {
        static const char want[] = "{\"note\":\"a, \\\"b\\\"\\nc\",\"probability\":";
        assert_memory_equal(r.out, want, strlen(want));
    }
    second = strchr(r.out, '\n') + 1;
    assert_true(strstr(r.out, "unknown") > second); /* only the second row */
    assert_memory_equal(second, "{\"note\":\"x\",", 12);
    assert_non_null(strstr(second, ",\"unknown\":1}\n"));
    run_free(&r);
}

static void test_bad_format_and_on_error_exit_2(void **state) {
    run_out r;
    (void)state;
    r = run(NULL, "predict --model @M --format xml in.csv");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--format 'xml'"));
    run_free(&r);
    r = run(NULL, "predict --model @M --on-error ignore in.csv");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--on-error 'ignore'"));
    run_free(&r);
}

/* ===================================================================== *
 * --on-error skip
 * ===================================================================== */

typedef struct subst {
    size_t row;       /* data row, 0-based */
    int col;          /* UCI column, or -1: replace the whole record */
    const char *text;
} subst;

/* Writes n generated rows with the substitutions applied. */
static void write_csv_subst(const char *path, size_t n, const subst *sub, size_t n_sub) {
    FILE *f = fopen(path, "wb");
    size_t i;
    int c;
    assert_non_null(f);
    for (c = 0; c < N_UCI; c++)
        fprintf(f, "%s%s", c ? "," : "", uci_name[c]);
    fputc('\n', f);
    for (i = 0; i < n; i++) {
        char field[N_UCI][32];
        size_t k;
        int whole = 0;
        session_fields(i, field);
        for (k = 0; k < n_sub; k++) {
            if (sub[k].row != i)
                continue;
            if (sub[k].col < 0) {
                fprintf(f, "%s\n", sub[k].text);
                whole = 1;
            } else {
                snprintf(field[sub[k].col], 32, "%s", sub[k].text);
            }
        }
        if (whole)
            continue;
        for (c = 0; c < N_UCI; c++)
            fprintf(f, "%s%s", c ? "," : "", field[c]);
        fputc('\n', f);
    }
    assert_int_equal(fclose(f), 0);
}

/* Bad rows of every kind are reported by line and left out; every other
 * row is written exactly as without them. */
static void test_skip_leaves_bad_rows_out(void **state) {
    static const subst sub[] = {
        {10, 6, "0.3x"},                    /* not a number: line 12 */
        {20, 1, "-5"},                      /* below the valid minimum: line 22 */
        {21, 7, "1.5"},                     /* above the maximum, same batch: line 23 */
        {30, -1, "1,2,3"},                  /* 3 fields: line 32 */
        {299, 0, ""},                       /* empty number, second batch: line 301 */
    };
    const size_t n = 320;
    const char *a;
    const char *b;
    run_out pl;
    run_out r;
    size_t i;
    (void)state;
    write_csv(scratch("plain.csv"), n, &plain);
    write_csv_subst(scratch("in.csv"), n, sub, sizeof(sub) / sizeof(sub[0]));
    pl = run(NULL, "predict --model @M @D/plain.csv");
    r = run(NULL, "predict --model @M --on-error skip @D/in.csv");
    assert_int_equal(pl.code, 0);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.err, "in.csv:12: column 'BounceRates': '0.3x' is not a number"));
    assert_non_null(strstr(r.err, "in.csv:22: "));
    assert_non_null(strstr(r.err, "Administrative_Duration"));
    assert_non_null(strstr(r.err, "in.csv:23: "));
    assert_non_null(strstr(r.err, "ExitRates"));
    assert_non_null(strstr(r.err, "in.csv:32: 3 fields, but the header has 17"));
    assert_non_null(strstr(r.err, "in.csv:301: column 'Administrative'"));
    assert_non_null(strstr(r.err, "5 of 320 rows skipped (bad data), 315 scored"));
    /* messages in input order */
    assert_true(strstr(r.err, "in.csv:12:") < strstr(r.err, "in.csv:22:"));
    assert_true(strstr(r.err, "in.csv:22:") < strstr(r.err, "in.csv:23:"));
    assert_true(strstr(r.err, "in.csv:23:") < strstr(r.err, "in.csv:32:"));
    /* the other rows are exactly the plain output */
    a = strchr(pl.out, '\n') + 1;
    b = strchr(r.out, '\n') + 1;
    assert_memory_equal(r.out, pl.out, (size_t)(a - pl.out));
    for (i = 0; i < n; i++) {
        const char *a_end = strchr(a, '\n') + 1;
        size_t k;
        int bad = 0;
        for (k = 0; k < sizeof(sub) / sizeof(sub[0]); k++)
            bad |= sub[k].row == i;
        if (!bad) {
            assert_memory_equal(b, a, (size_t)(a_end - a));
            b += a_end - a;
        }
        a = a_end;
    }
    assert_int_equal(*b, '\0');
    run_free(&pl);
    run_free(&r);
}

static void test_skip_with_no_good_row_exits_1(void **state) {
    static const subst sub[] = {{0, 0, "x"}, {1, 1, "-1"}, {2, -1, "1,2"}};
    run_out r;
    (void)state;
    write_csv_subst(scratch("in.csv"), 3, sub, 3);
    unlink(scratch("out.csv"));
    r = run(NULL, "predict --model @M -e skip @D/in.csv -o @D/out.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "3 of 3 rows skipped (bad data), 0 scored"));
    assert_int_equal(access(scratch("out.csv"), F_OK), -1);
    run_free(&r);
}

static void test_skip_header_only_exits_0(void **state) {
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), 0, &plain);
    r = run(NULL, "predict --model @M --on-error skip @D/in.csv");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.err, "");
    run_free(&r);
}

static void test_skip_still_stops_on_malformed_csv(void **state) {
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), 3, &plain);
    {
        FILE *f = fopen(scratch("in.csv"), "ab");
        assert_non_null(f);
        fputs("1,\"2,3\n", f); /* a quote never closed */
        fclose(f);
    }
    r = run(NULL, "predict --model @M --on-error skip @D/in.csv");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "in.csv:5: quoted field never closed"));
    run_free(&r);
}

/* ===================================================================== *
 * Progress line
 * ===================================================================== */

static void test_no_stderr_when_not_a_terminal(void **state) {
    run_out r;
    (void)state;
    write_csv(scratch("in.csv"), 3000, &plain);
    r = run(NULL, "predict --model @M @D/in.csv");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.err, ""); /* not one byte: no bar, no escape codes */
    run_free(&r);
}

/* Whether a pseudo-terminal can be opened here (a chroot or container
 * without /dev/pts mounted has none). On failure `why` says which step. */
static int pty_available(char *why, size_t n) {
    const char *name;
    int m;
    int s;
    m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0) {
        snprintf(why, n, "posix_openpt: %s", strerror(errno));
        return 0;
    }
    if (grantpt(m) != 0 || unlockpt(m) != 0 || (name = ptsname(m)) == NULL) {
        snprintf(why, n, "grantpt/unlockpt/ptsname: %s", strerror(errno));
        close(m);
        return 0;
    }
    s = open(name, O_RDWR | O_NOCTTY);
    if (s < 0) {
        snprintf(why, n, "%s: %s", name, strerror(errno));
        close(m);
        return 0;
    }
    close(s);
    close(m);
    return 1;
}

/* Under a pseudo-terminal (script(1)) and an input that stalls for a second
 * (a FIFO fed in two parts), the bar shows rows/s and is erased at the end.
 * Skipped, saying why, where no pseudo-terminal can be had. If script(1)
 * fails before opecom opens the FIFO, the writer would wait on it forever:
 * it is killed, and script(1) itself runs under a time limit. */
static void test_progress_on_a_terminal(void **state) {
    char cmd[4096];
    char why[256];
    char *ts;
    char *out;
    int st;
    (void)state;
    if (!pty_available(why, sizeof(why))) {
        fprintf(stderr, "test_progress_on_a_terminal: skipped: cannot open a pseudo-terminal "
                        "(%s); mount devpts on /dev/pts to run it\n", why);
        skip();
    }
    write_csv(scratch("in.csv"), 3000, &plain);
    unlink(scratch("fifo"));
    assert_int_equal(mkfifo(scratch("fifo"), 0600), 0);
    snprintf(cmd, sizeof(cmd),
             "(head -n 1001 %s/in.csv; sleep 1; tail -n +1002 %s/in.csv) > %s/fifo & w=$!; "
             "timeout -k 5 60 script -qefc \"%s/opecom predict --model '%s' %s/fifo -o %s/out.csv\" "
             "/dev/null </dev/null >%s/typescript 2>&1; st=$?; "
             "[ $st -eq 0 ] || kill $w 2>/dev/null; wait; exit $st",
             dir, dir, dir, tu_build_dir(), model_path, dir, dir, dir);
    st = system(cmd);
    assert_true(st != -1 && WIFEXITED(st));
    if (WEXITSTATUS(st) != 0) {
        ts = slurp(scratch("typescript"));
        fprintf(stderr, "script(1) exited %d%s; its output:\n%s\n", WEXITSTATUS(st),
                WEXITSTATUS(st) == 124 ? " (timed out after 60 s)" : "", ts);
        free(ts);
    }
    assert_int_equal(WEXITSTATUS(st), 0);
    ts = slurp(scratch("typescript"));
    out = slurp(scratch("out.csv"));
    assert_int_equal(count_lines(out), 3001);
    assert_non_null(strstr(ts, " rows/s\033[K"));
    assert_non_null(strstr(ts, " rows "));
    assert_int_equal(ts[0], '\r');
    /* erased at the end: the last thing written */
    assert_true(strlen(ts) >= 4);
    assert_string_equal(ts + strlen(ts) - 4, "\r\033[K");
    free(ts);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_exits_zero),
        cmocka_unit_test(test_predict_help_exits_zero),
        cmocka_unit_test(test_version_prints_library_version),
        cmocka_unit_test(test_unknown_option_exits_2),
        cmocka_unit_test(test_unknown_command_exits_2),
        cmocka_unit_test(test_missing_model_option_exits_2),
        cmocka_unit_test(test_unloadable_model_exits_3),
        cmocka_unit_test(test_output_matches_direct_predict),
        cmocka_unit_test(test_header_lists_members),
        cmocka_unit_test(test_thousand_rows_give_thousand_outputs),
        cmocka_unit_test(test_shuffled_and_extra_columns_same_output),
        cmocka_unit_test(test_crlf_same_as_lf),
        cmocka_unit_test(test_quoted_fields_same_output),
        cmocka_unit_test(test_missing_final_newline_scores_last_row),
        cmocka_unit_test(test_stdin_input_same_as_file),
        cmocka_unit_test(test_output_option_writes_file),
        cmocka_unit_test(test_header_only_prints_header),
        cmocka_unit_test(test_empty_file_is_error),
        cmocka_unit_test(test_missing_column_is_named),
        cmocka_unit_test(test_bad_number_names_line_and_column),
        cmocka_unit_test(test_rows_before_an_error_are_written),
        cmocka_unit_test(test_nan_names_feature),
        cmocka_unit_test(test_out_of_range_value_names_line_and_feature),
        cmocka_unit_test(test_short_row_names_line),
        cmocka_unit_test(test_failed_run_leaves_no_output_file),
        cmocka_unit_test(test_unknown_category_is_scored_with_warning),
        cmocka_unit_test(test_threshold_adds_label_column),
        cmocka_unit_test(test_threshold_model_is_the_library_label),
        cmocka_unit_test(test_bad_threshold_exits_2),
        cmocka_unit_test(test_keep_copies_columns_before_predictions),
        cmocka_unit_test(test_keep_all_copies_every_column),
        cmocka_unit_test(test_keep_missing_column_is_named),
        cmocka_unit_test(test_keep_empty_name_exits_2),
        cmocka_unit_test(test_jsonl_has_csv_values),
        cmocka_unit_test(test_jsonl_escapes_text_and_counts_unknown),
        cmocka_unit_test(test_bad_format_and_on_error_exit_2),
        cmocka_unit_test(test_skip_leaves_bad_rows_out),
        cmocka_unit_test(test_skip_with_no_good_row_exits_1),
        cmocka_unit_test(test_skip_header_only_exits_0),
        cmocka_unit_test(test_skip_still_stops_on_malformed_csv),
        cmocka_unit_test(test_no_stderr_when_not_a_terminal),
        cmocka_unit_test(test_progress_on_a_terminal),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
