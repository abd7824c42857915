/*
 * test_cli.c - end-to-end tests of `opecom predict`, run as a program.
 *
 * Each test writes a CSV file of generated sessions (never dataset rows),
 * runs $BUILD/opecom through the shell with stdout and stderr sent to files,
 * and checks one property: exit code, the error message, or the output rows.
 * The model is $OPECOM_TEST_MODEL if set, else models/shoppers-tabm-k4.opm.
 * Predictions are compared with opecom_predict called here directly.
 *
 * Run from the repository root: BUILD=build build/tests/test_cli
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "opecom.h"
#include "testutil.h"

#define DEFAULT_MODEL "models/shoppers-tabm-k4.opm"
#define N_UCI 17
#define N_NUMERIC 10

static const char *const uci_name[N_UCI] = {
    "Administrative", "Administrative_Duration", "Informational", "Informational_Duration",
    "ProductRelated", "ProductRelated_Duration", "BounceRates", "ExitRates", "PageValues",
    "SpecialDay", "Month", "OperatingSystems", "Browser", "Region", "TrafficType",
    "VisitorType", "Weekend"};

static const char *const months[] = {"Feb", "Mar", "May", "June", "Jul",
                                     "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const visitor_types[] = {"Returning_Visitor", "New_Visitor", "Other"};
static const char *const weekend[] = {"FALSE", "TRUE"};
/* category counts of the categorical columns 10..16 */
static const uint32_t n_cats[7] = {10, 8, 13, 9, 20, 3, 2};

static char dir[400];        /* per-run scratch folder */
static char model_path[512]; /* model under test */
static opecom_model *model;  /* the same model, loaded here */
static uint32_t model_k;

/* ===================================================================== *
 * Fixture: the model and a scratch folder
 * ===================================================================== */

static const char *category_text(uint32_t col, uint32_t c, char *buf, size_t size) {
    if (col == 10)
        return months[c];
    if (col == 15)
        return visitor_types[c];
    if (col == 16)
        return weekend[c];
    snprintf(buf, size, "%u", c + 1);
    return buf;
}

static int group_setup(void **state) {
    const char *env = getenv("OPECOM_TEST_MODEL");
    opecom_model_info info;
    opecom_error err;
    char cmd[600];
    (void)state;
    snprintf(cmd, sizeof(cmd), "%s/tmp", tu_build_dir());
    mkdir(cmd, 0777);
    snprintf(dir, sizeof(dir), "%s/tmp/cli-XXXXXX", tu_build_dir());
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "# cannot make a scratch folder under %s/tmp\n", tu_build_dir());
        return -1;
    }
    snprintf(model_path, sizeof(model_path), "%s", env && *env ? env : DEFAULT_MODEL);
    if (opecom_model_load(model_path, NULL, &model, &err) != OPECOM_OK) {
        fprintf(stderr, "# cannot load %s: %s\n", model_path, err.message);
        return -1;
    }
    opecom_model_describe(model, &info);
    model_k = info.k;
    printf("# model: %s (k=%u, kernel %s)\n", model_path, info.k, info.kernel);
    return 0;
}

static int group_teardown(void **state) {
    char cmd[600];
    (void)state;
    opecom_model_free(model);
    if (dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "# could not remove %s\n", dir);
    }
    return 0;
}

/* ===================================================================== *
 * Running the CLI
 * ===================================================================== */

typedef struct run_out {
    int code;  /* exit status, -1 if killed */
    char *out; /* stdout, NUL-terminated */
    char *err; /* stderr */
} run_out;

static char *slurp(const char *path) {
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

/* Runs "$BUILD/opecom ARGS" with stdin from `in` (NULL: /dev/null). In ARGS,
 * "@M" stands for the quoted model path and "@D" for the scratch folder. */
static run_out run(const char *in, const char *args) {
    char expanded[2048];
    char cmd[4096];
    char out_path[600];
    char err_path[600];
    size_t o = 0;
    const char *p;
    run_out r;
    int st;
    for (p = args; *p && o + 600 < sizeof(expanded); p++) {
        if (p[0] == '@' && p[1] == 'M') {
            o += (size_t)snprintf(expanded + o, sizeof(expanded) - o, "'%s'", model_path);
            p++;
        } else if (p[0] == '@' && p[1] == 'D') {
            o += (size_t)snprintf(expanded + o, sizeof(expanded) - o, "%s", dir);
            p++;
        } else {
            expanded[o++] = *p;
        }
    }
    expanded[o] = '\0';
    snprintf(out_path, sizeof(out_path), "%s/stdout", dir);
    snprintf(err_path, sizeof(err_path), "%s/stderr", dir);
    snprintf(cmd, sizeof(cmd), "%s/opecom %s <%s >%s 2>%s", tu_build_dir(), expanded,
             in ? in : "/dev/null", out_path, err_path);
    st = system(cmd);
    r.code = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    return r;
}

static void run_free(run_out *r) {
    free(r->out);
    free(r->err);
}

static const char *scratch(const char *name) {
    static char path[4][600];
    static int i;
    i = (i + 1) % 4;
    snprintf(path[i], sizeof(path[i]), "%s/%s", dir, name);
    return path[i];
}

/* ===================================================================== *
 * Generated sessions
 * ===================================================================== */

/* The text of each UCI column for generated session `i` (same i, same text). */
static void session_fields(uint64_t i, char field[N_UCI][32]) {
    tu_rng r = {0x9E3779B97F4A7C15ull * (i + 1)};
    uint32_t c;
    int j;
    for (j = 0; j < 4; j++)
        tu_next(&r);
    snprintf(field[0], 32, "%d", (int)(tu_next(&r) % 12));
    snprintf(field[1], 32, "%.2f", field[0][0] == '0' ? 0.0 : tu_uniform(&r, 0, 400));
    snprintf(field[2], 32, "%d", (int)(tu_next(&r) % 4));
    snprintf(field[3], 32, "%.1f", field[2][0] == '0' ? 0.0 : tu_uniform(&r, 0, 300));
    snprintf(field[4], 32, "%d", 1 + (int)(tu_next(&r) % 80));
    snprintf(field[5], 32, "%.4f", tu_uniform(&r, 0, 3000));
    {
        double bounce = tu_uniform(&r, 0, 0.2);
        /* Some rates in the exponent notation spreadsheets write. */
        snprintf(field[6], 32, bounce < 0.01 ? "%.2E" : "%.5f", bounce);
    }
    snprintf(field[7], 32, "%.5f", tu_uniform(&r, 0.001, 0.2));
    snprintf(field[8], 32, "%.3f", tu_next(&r) % 4 == 0 ? tu_uniform(&r, 0, 120) : 0.0);
    snprintf(field[9], 32, "%.1f", tu_next(&r) % 5 == 0 ? 0.2 * (double)(tu_next(&r) % 6) : 0.0);
    for (c = 0; c < 7; c++) {
        char buf[16];
        snprintf(field[N_NUMERIC + c], 32, "%s",
                 category_text(N_NUMERIC + c, (uint32_t)(tu_next(&r) % n_cats[c]), buf,
                               sizeof(buf)));
    }
}

#define EXTRA_NOTE (-1)    /* free text, with commas, quotes and a newline when quoted */
#define EXTRA_REVENUE (-2) /* the label column of the UCI file */

typedef struct csv_style {
    const int *order; /* columns: 0..16 UCI, or an EXTRA_*; NULL: the 17 in order */
    size_t n_cols;
    int crlf;
    int quote_all;
    int no_final_newline;
} csv_style;

static const csv_style plain = {NULL, 0, 0, 0, 0};

static void put_field(FILE *f, const char *s, int quote) {
    if (!quote) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* Writes a header and rows first .. first+n-1 of the generated sessions. */
static void write_csv(const char *path, size_t n, const csv_style *st) {
    int in_order[N_UCI];
    const int *order = st->order;
    size_t n_cols = st->n_cols;
    const char *eol = st->crlf ? "\r\n" : "\n";
    FILE *f = fopen(path, "wb");
    size_t i;
    size_t c;
    assert_non_null(f);
    if (order == NULL) {
        for (c = 0; c < N_UCI; c++)
            in_order[c] = (int)c;
        order = in_order;
        n_cols = N_UCI;
    }
    for (c = 0; c < n_cols; c++) {
        const char *name = order[c] == EXTRA_NOTE      ? "note"
                           : order[c] == EXTRA_REVENUE ? "Revenue"
                                                       : uci_name[order[c]];
        if (c)
            fputc(',', f);
        put_field(f, name, st->quote_all);
    }
    fputs(eol, f);
    for (i = 0; i < n; i++) {
        char field[N_UCI][32];
        session_fields(i, field);
        for (c = 0; c < n_cols; c++) {
            const char *s = order[c] == EXTRA_NOTE      ? (st->quote_all ? "a, \"b\"\nc" : "x")
                            : order[c] == EXTRA_REVENUE ? "FALSE"
                                                        : field[order[c]];
            if (c)
                fputc(',', f);
            put_field(f, s, st->quote_all);
        }
        if (i + 1 < n || !st->no_final_newline)
            fputs(eol, f);
    }
    assert_int_equal(fclose(f), 0);
}

/* Writes the generated rows with row `bad_row` (0-based) column `col`
 * replaced by `text`. */
static void write_csv_with(const char *path, size_t n, size_t bad_row, int col,
                           const char *text) {
    FILE *f = fopen(path, "wb");
    size_t i;
    int c;
    assert_non_null(f);
    for (c = 0; c < N_UCI; c++)
        fprintf(f, "%s%s", c ? "," : "", uci_name[c]);
    fputc('\n', f);
    for (i = 0; i < n; i++) {
        char field[N_UCI][32];
        session_fields(i, field);
        for (c = 0; c < N_UCI; c++)
            fprintf(f, "%s%s", c ? "," : "", i == bad_row && c == col ? text : field[c]);
        fputc('\n', f);
    }
    assert_int_equal(fclose(f), 0);
}

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

static size_t count_lines(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
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
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
