/*
 * test_embed.c - runs the embedding example ($BUILD/embed) and checks what it
 * prints against opecom_predict on the same session, called here directly.
 *
 * The model is $OPECOM_TEST_MODEL if set, else models/shoppers-tabm-k4.opm.
 * Run from the repository root:
 * BUILD=build build/tests/test_embed
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* The session examples/embed/embed.c scores; keep the two in step. */
static const double embed_num[N_NUMERIC] = {3,      62.0,   1,    18.5, 24,
                                            1105.2, 0.0041, 0.0186, 21.7, 0.0};
static const char *const embed_text[N_UCI - N_NUMERIC] = {
    "Nov", "2", "2", "1", "2", "Returning_Visitor", "FALSE"};

static char model_path[512];
static opecom_model *model;

static int group_setup(void **state) {
    const char *env = getenv("OPECOM_TEST_MODEL");
    opecom_error err;
    (void)state;
    snprintf(model_path, sizeof(model_path), "%s", env && *env ? env : DEFAULT_MODEL);
    if (opecom_model_load(model_path, NULL, &model, &err) != OPECOM_OK) {
        fprintf(stderr, "# cannot load %s: %s\n", model_path, err.message);
        return -1;
    }
    printf("# model: %s\n", model_path);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    opecom_model_free(model);
    return 0;
}

typedef struct embed_out {
    int code;
    double probability;
    double spread;
    double member[OPECOM_MAX_K];
    unsigned n_members;
    int n_probability, n_spread; /* how many such lines were printed */
    char err[1024];
} embed_out;

/* Runs $BUILD/embed PATH and parses its lines. */
static embed_out run_embed(const char *path) {
    char cmd[1200];
    char line[256];
    char err_path[600];
    embed_out o;
    FILE *p;
    FILE *e;
    int st;
    memset(&o, 0, sizeof(o));
    snprintf(err_path, sizeof(err_path), "%s", tu_tmp_path("embed-stderr"));
    snprintf(cmd, sizeof(cmd), "%s/embed '%s' 2>%s", tu_build_dir(), path, err_path);
    p = popen(cmd, "r");
    assert_non_null(p);
    while (fgets(line, sizeof(line), p)) {
        unsigned i;
        double v;
        if (sscanf(line, "probability: %lf", &v) == 1) {
            o.probability = v;
            o.n_probability++;
        } else if (sscanf(line, "spread: %lf", &v) == 1) {
            o.spread = v;
            o.n_spread++;
        } else if (sscanf(line, "member %u: %lf", &i, &v) == 2 && i == o.n_members &&
                   i < OPECOM_MAX_K) {
            o.member[o.n_members++] = v;
        }
    }
    st = pclose(p);
    o.code = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    e = fopen(err_path, "r");
    if (e) {
        size_t n = fread(o.err, 1, sizeof(o.err) - 1, e);
        o.err[n] = '\0';
        fclose(e);
    }
    unlink(err_path);
    return o;
}

static void predict_here(opecom_result *res) {
    opecom_value row[64];
    opecom_model_info info;
    opecom_error err;
    int c;
    opecom_model_describe(model, &info);
    assert_true(info.n_features <= 64);
    memset(row, 0, sizeof(row));
    for (c = 0; c < N_UCI; c++) {
        int32_t f = opecom_feature_index(model, uci_name[c]);
        assert_true(f >= 0);
        if (c < N_NUMERIC)
            row[f].num = embed_num[c];
        else
            row[f].str = embed_text[c - N_NUMERIC];
    }
    assert_int_equal(opecom_predict(model, NULL, row, res, &err), OPECOM_OK);
}

/* Printed to 6 decimals: allow the rounding plus kernel differences. */
#define TOL 2e-6

static void test_probability_in_unit_interval_and_matches_predict(void **state) {
    opecom_result want;
    embed_out o;
    (void)state;
    o = run_embed(model_path);
    assert_int_equal(o.code, 0);
    assert_int_equal(o.n_probability, 1);
    assert_true(o.probability >= 0.0 && o.probability <= 1.0);
    predict_here(&want);
    assert_float_equal(o.probability, want.probability, TOL);
}

static void test_members_and_spread_match_predict(void **state) {
    opecom_result want;
    embed_out o;
    unsigned i;
    (void)state;
    o = run_embed(model_path);
    assert_int_equal(o.code, 0);
    predict_here(&want);
    assert_int_equal(o.n_members, want.k);
    for (i = 0; i < want.k; i++)
        assert_float_equal(o.member[i], want.member[i], TOL);
    assert_int_equal(o.n_spread, 1);
    assert_float_equal(o.spread, want.spread, TOL);
}

static void test_unloadable_model_reports_status_text(void **state) {
    embed_out o;
    (void)state;
    o = run_embed("no/such/model.opm");
    assert_int_not_equal(o.code, 0);
    assert_int_equal(o.n_probability, 0);
    assert_non_null(strstr(o.err, opecom_strerror(OPECOM_EIO)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probability_in_unit_interval_and_matches_predict),
        cmocka_unit_test(test_members_and_spread_match_predict),
        cmocka_unit_test(test_unloadable_model_reports_status_text),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
