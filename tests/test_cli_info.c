/*
 * test_cli_info.c - end-to-end tests of `opecom info`, run as a program.
 *
 * The report and the JSON object are checked against what the library says
 * about the same model (opecom_model_describe, opecom_model_feature,
 * opecom_model_category) and against the file's size. The JSON is parsed by
 * Python's json module ($PYTHON, else /usr/bin/python3), which prints it
 * back flattened, one "key value" line each, for the checks here.
 *
 * Run from the repository root: BUILD=build build/tests/test_cli_info
 */
#include "test_cli_harness.h"

static const char flatten_py[] =
    "import json, sys\n"
    "o = json.load(open(sys.argv[1]))\n"
    "def walk(p, v):\n"
    "    if isinstance(v, dict):\n"
    "        for k, x in v.items(): walk(p + [k], x)\n"
    "    elif isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v):\n"
    "        print('.'.join(p), ','.join(str(x) for x in v))\n"
    "    elif isinstance(v, list):\n"
    "        for i, x in enumerate(v): walk(p + [str(i)], x)\n"
    "    else:\n"
    "        print('.'.join(p), json.dumps(v))\n"
    "walk([], o)\n";

static const char *python(void) {
    const char *p = getenv("PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

/* `opecom info --json` of `model_file` (quoted shell text), flattened by
 * Python. Fails the test when either step fails. Free the result. */
static char *info_flat(const char *model_file, const char *env) {
    char args[1200];
    char cmd[2400];
    run_out r;
    int st;
    snprintf(args, sizeof(args), "info --model %s --json", model_file);
    if (env != NULL) {
        /* run() runs "$BUILD/opecom ARGS": put the variable in front */
        snprintf(cmd, sizeof(cmd), "%s %s/opecom %s >%s/info.json 2>%s/info.err", env,
                 tu_build_dir(), args, dir, dir);
        st = system(cmd);
        assert_true(st != -1 && WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    } else {
        r = run(NULL, args);
        assert_int_equal(r.code, 0);
        assert_string_equal(r.err, "");
        assert_int_equal(tu_write_file(scratch("info.json"), r.out, strlen(r.out)), 0);
        run_free(&r);
    }
    assert_int_equal(tu_write_file(scratch("flat.py"), flatten_py, strlen(flatten_py)), 0);
    snprintf(cmd, sizeof(cmd), "%s %s/flat.py %s/info.json >%s/flat.txt", python(), dir, dir,
             dir);
    st = system(cmd);
    assert_true(st != -1 && WIFEXITED(st));
    if (WEXITSTATUS(st) != 0)
        fail_msg("info --json is not valid JSON (see %s/info.json)", dir);
    return slurp(scratch("flat.txt"));
}

/* Fails unless `flat` has the line "key value". */
static void has_line(const char *flat, const char *key, const char *value) {
    char want[1024];
    const char *p = flat;
    size_t len = (size_t)snprintf(want, sizeof(want), "%s %s\n", key, value);
    for (;;) {
        if (strncmp(p, want, len) == 0)
            return;
        p = strchr(p, '\n');
        if (p == NULL || *++p == '\0')
            fail_msg("no line '%s %s' in info --json", key, value);
    }
}

static off_t file_size(const char *path) {
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

/* ===================================================================== *
 * Tests
 * ===================================================================== */

static void test_json_matches_library(void **state) {
    opecom_model_info mi;
    char quoted[600];
    char key[128];
    char value[1024];
    char *flat;
    uint32_t f;
    (void)state;
    assert_int_equal(opecom_model_describe(model, &mi), OPECOM_OK);
    snprintf(quoted, sizeof(quoted), "'%s'", model_path);
    flat = info_flat(quoted, NULL);
    snprintf(value, sizeof(value), "%lld", (long long)file_size(model_path));
    has_line(flat, "file_size", value);
    snprintf(value, sizeof(value), "%u", mi.format_version);
    has_line(flat, "format_version", value);
    has_line(flat, "architecture.type", "\"tabm\"");
    snprintf(value, sizeof(value), "%u", mi.k);
    has_line(flat, "architecture.k", value);
    snprintf(value, sizeof(value), "%u", mi.n_blocks);
    has_line(flat, "architecture.n_blocks", value);
    snprintf(value, sizeof(value), "%u", mi.d_block);
    has_line(flat, "architecture.d_block", value);
    snprintf(value, sizeof(value), "%u", mi.d_in);
    has_line(flat, "architecture.d_in", value);
    snprintf(value, sizeof(value), "%llu", (unsigned long long)mi.n_params);
    has_line(flat, "architecture.n_params", value);
    snprintf(value, sizeof(value), "\"%s\"", mi.kernel);
    has_line(flat, "kernel", value);
    snprintf(value, sizeof(value), "%u", mi.n_features);
    has_line(flat, "n_features", value);
    snprintf(value, sizeof(value), "%u", mi.n_baseline);
    has_line(flat, "n_baseline", value);
    {
        opecom_drift_info di;
        assert_int_equal(opecom_drift_describe(model, &di, NULL), OPECOM_OK);
        snprintf(value, sizeof(value), "%u", di.n_dims);
        has_line(flat, "drift.n_dims", value);
        snprintf(value, sizeof(value), "%u", di.n_counts);
        has_line(flat, "drift.n_counts", value);
        snprintf(value, sizeof(value), "%llu", (unsigned long long)di.n_rows);
        has_line(flat, "drift.n_rows", value);
    }
    /* the threshold round-trips: Python prints repr() of the same double */
    {
        char *line = strstr(flat, "\nthreshold ");
        assert_non_null(line);
        assert_true(strtod(line + 11, NULL) == (double)mi.threshold);
    }
    for (f = 0; f < mi.n_features; f++) {
        opecom_feature_info fi;
        assert_int_equal(opecom_model_feature(model, f, &fi), OPECOM_OK);
        snprintf(key, sizeof(key), "features.%u.name", f);
        snprintf(value, sizeof(value), "\"%s\"", fi.name);
        has_line(flat, key, value);
        snprintf(key, sizeof(key), "features.%u.type", f);
        has_line(flat, key, fi.type == OPECOM_FEATURE_NUMERIC ? "\"numeric\"" : "\"categorical\"");
        if (fi.type == OPECOM_FEATURE_NUMERIC) {
            snprintf(key, sizeof(key), "features.%u.min", f);
            if (fi.has_min) {
                char *line;
                char k2[140];
                snprintf(k2, sizeof(k2), "\n%s ", key);
                line = strstr(flat, k2);
                assert_non_null(line);
                assert_true(strtod(line + strlen(k2), NULL) == fi.min);
            } else {
                has_line(flat, key, "null");
            }
            snprintf(key, sizeof(key), "features.%u.max", f);
            if (!fi.has_max)
                has_line(flat, key, "null");
        } else {
            size_t len = 0;
            uint32_t c;
            for (c = 0; c < fi.n_categories; c++)
                len += (size_t)snprintf(value + len, sizeof(value) - len, "%s%s", c ? "," : "",
                                        opecom_model_category(model, f, c));
            snprintf(key, sizeof(key), "features.%u.categories", f);
            has_line(flat, key, value);
        }
    }
    free(flat);
}

/* The shipped model carries its training metadata; it is shown. */
static void test_training_metadata_is_shown(void **state) {
    opecom_model_info mi;
    char quoted[600];
    char *flat;
    run_out r;
    (void)state;
    assert_int_equal(opecom_model_describe(model, &mi), OPECOM_OK);
    if (mi.spec_json == NULL || strstr(mi.spec_json, "\"training\"") == NULL)
        fail_msg("%s has no training metadata to show", model_path);
    snprintf(quoted, sizeof(quoted), "'%s'", model_path);
    flat = info_flat(quoted, NULL);
    assert_non_null(strstr(flat, "\ntraining."));
    assert_non_null(strstr(flat, "\ntraining.validation_metrics.roc_auc 0."));
    free(flat);
    r = run(NULL, "info --model @M");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\ntraining\n"));
    assert_non_null(strstr(r.out, "  validation_metrics\n"));
    assert_non_null(strstr(r.out, "    roc_auc "));
    run_free(&r);
}

static void test_text_report_lists_model_and_features(void **state) {
    opecom_model_info mi;
    char want[256];
    run_out r;
    uint32_t f;
    (void)state;
    assert_int_equal(opecom_model_describe(model, &mi), OPECOM_OK);
    r = run(NULL, "info --model @M");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.err, "");
    snprintf(want, sizeof(want), "file size        %lld bytes\n",
             (long long)file_size(model_path));
    assert_non_null(strstr(r.out, want));
    snprintf(want, sizeof(want), "TabM: k = %u members, %u blocks of width %u", mi.k,
             mi.n_blocks, mi.d_block);
    assert_non_null(strstr(r.out, want));
    snprintf(want, sizeof(want), "kernel           %s\n", mi.kernel);
    assert_non_null(strstr(r.out, want));
    snprintf(want, sizeof(want), "baseline         %u rows", mi.n_baseline);
    assert_non_null(strstr(r.out, want));
    {
        opecom_drift_info di;
        assert_int_equal(opecom_drift_describe(model, &di, NULL), OPECOM_OK);
        snprintf(want, sizeof(want), "drift reference  %u dims, %u bins, from %llu training rows",
                 di.n_dims, di.n_counts, (unsigned long long)di.n_rows);
        assert_non_null(strstr(r.out, want));
    }
    snprintf(want, sizeof(want), "format version   %u\n", mi.format_version);
    assert_non_null(strstr(r.out, want));
    snprintf(want, sizeof(want), "features (%u)\n", mi.n_features);
    assert_non_null(strstr(r.out, want));
    for (f = 0; f < mi.n_features; f++) {
        opecom_feature_info fi;
        assert_int_equal(opecom_model_feature(model, f, &fi), OPECOM_OK);
        snprintf(want, sizeof(want), " %s ", fi.name);
        assert_non_null(strstr(r.out, want));
        if (fi.type == OPECOM_FEATURE_CATEGORICAL) {
            snprintf(want, sizeof(want), "%u: %s ", fi.n_categories,
                     opecom_model_category(model, f, 0));
            assert_non_null(strstr(r.out, want));
        }
    }
    if (opecom_feature_index(model, "BounceRates") >= 0)
        assert_non_null(strstr(r.out, "[0, 1]"));
    run_free(&r);
}

static void test_kernel_reported_is_the_one_in_use(void **state) {
    char quoted[600];
    char *flat;
    (void)state;
    snprintf(quoted, sizeof(quoted), "'%s'", model_path);
    flat = info_flat(quoted, "OPECOM_KERNEL=scalar");
    has_line(flat, "kernel", "\"scalar\"");
    free(flat);
}

/* A model saved without training metadata: said so, null in JSON. */
static void test_model_without_training_metadata(void **state) {
    const tu_model_shape shape = {2, 1, 8, 3, 2, 3, 0};
    tu_model m;
    opecom_error err;
    char quoted[600];
    char *flat;
    run_out r;
    (void)state;
    tu_model_make(&m, &shape, 42);
    m.desc.spec_json = NULL;
    assert_int_equal(opecom_model_save(&m.desc, scratch("bare.opm"), &err), OPECOM_OK);
    tu_model_free(&m);
    r = run(NULL, "info @D/bare.opm");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "TabM: k = 2 members, 1 blocks of width 8"));
    assert_non_null(strstr(r.out, "(no training metadata in this model)"));
    assert_non_null(strstr(r.out, "drift reference  none (no PSI monitoring)\n"));
    run_free(&r);
    snprintf(quoted, sizeof(quoted), "%s/bare.opm", dir);
    flat = info_flat(quoted, NULL);
    has_line(flat, "training", "null");
    has_line(flat, "drift", "null");
    has_line(flat, "architecture.activation", "null");
    free(flat);
}

static void test_usage_errors_and_bad_model(void **state) {
    run_out r;
    (void)state;
    r = run(NULL, "info --help");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "--json"));
    run_free(&r);
    r = run(NULL, "info");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--model is required"));
    run_free(&r);
    r = run(NULL, "info --model @M --verbose");
    assert_int_equal(r.code, 2);
    run_free(&r);
    assert_int_equal(tu_write_file(scratch("junk.opm"), "junk", 4), 0);
    r = run(NULL, "info --model @D/junk.opm");
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.err, "junk.opm: cannot load model"));
    assert_string_equal(r.out, "");
    run_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_matches_library),
        cmocka_unit_test(test_training_metadata_is_shown),
        cmocka_unit_test(test_text_report_lists_model_and_features),
        cmocka_unit_test(test_kernel_reported_is_the_one_in_use),
        cmocka_unit_test(test_model_without_training_metadata),
        cmocka_unit_test(test_usage_errors_and_bad_model),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
