/*
 * test_cli_harness.h - what the end-to-end tests of the `opecom` tool share
 * (test_cli.c for predict, test_cli_eval.c, test_cli_info.c, ...).
 *
 * Each test binary includes it once. It provides: the model under test
 * ($OPECOM_TEST_MODEL or the shipped one) loaded in `model`, a scratch
 * folder, run() to run "$BUILD/opecom ARGS" through the shell with stdout and
 * stderr captured, and generated sessions written as CSV in various styles
 * (never dataset rows). Functions are static and marked unused, so a test
 * binary that needs only some of them still builds with -Werror.
 */
#ifndef OPECOM_TEST_CLI_HARNESS_H
#define OPECOM_TEST_CLI_HARNESS_H

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

#define CT_UNUSED __attribute__((unused))

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

CT_UNUSED static const char *category_text(uint32_t col, uint32_t c, char *buf, size_t size) {
    if (col == 10)
        return months[c];
    if (col == 15)
        return visitor_types[c];
    if (col == 16)
        return weekend[c];
    snprintf(buf, size, "%u", c + 1);
    return buf;
}

CT_UNUSED static int group_setup(void **state) {
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

CT_UNUSED static int group_teardown(void **state) {
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

CT_UNUSED static char *slurp(const char *path) {
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
CT_UNUSED static run_out run(const char *in, const char *args) {
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

CT_UNUSED static void run_free(run_out *r) {
    free(r->out);
    free(r->err);
}

CT_UNUSED static const char *scratch(const char *name) {
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
CT_UNUSED static void session_fields(uint64_t i, char field[N_UCI][32]) {
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

/* Knobs of write_csv for eval: the Revenue column's text of row i
 * (revenue_text[i], else "FALSE"), and rows that repeat the same sessions
 * (row i is session i % session_period when set) so that scores tie. */
static const char *const *revenue_text;
static size_t session_period;

#define EXTRA_NOTE (-1)    /* free text, with commas, quotes and a newline when quoted */
#define EXTRA_REVENUE (-2) /* the label column of the UCI file */

typedef struct csv_style {
    const int *order; /* columns: 0..16 UCI, or an EXTRA_*; NULL: the 17 in order */
    size_t n_cols;
    int crlf;
    int quote_all;
    int no_final_newline;
} csv_style;

CT_UNUSED static const csv_style plain = {NULL, 0, 0, 0, 0};

CT_UNUSED static void put_field(FILE *f, const char *s, int quote) {
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
CT_UNUSED static void write_csv(const char *path, size_t n, const csv_style *st) {
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
        session_fields(session_period ? i % session_period : i, field);
        for (c = 0; c < n_cols; c++) {
            const char *s = order[c] == EXTRA_NOTE ? (st->quote_all ? "a, \"b\"\nc" : "x")
                            : order[c] == EXTRA_REVENUE
                                ? (revenue_text ? revenue_text[i] : "FALSE")
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
CT_UNUSED static void write_csv_with(const char *path, size_t n, size_t bad_row, int col,
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

CT_UNUSED static size_t count_lines(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

#endif /* OPECOM_TEST_CLI_HARNESS_H */
