/*
 * test_train.c - the whole pipeline on a tiny model: tools/train_tabm.py
 * (PyTorch) trains a few epochs on a synthetic CSV and exports .npz (stored
 * and deflated) and .safetensors; opecom-convert turns each into a .opm; the
 * three files must be identical and the C library must reproduce PyTorch's
 * probabilities on the trainer's reference rows. The drift reference the
 * trainer computes in Python must bin rows as the library does: the
 * synthetic CSV binned by opecom_drift_bin stays close to it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "testutil.h"

static char dir[512];

static const char *python(void)
{
    const char *p = getenv("PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        print_message("command failed (%d): %s\n", rc, cmd);
    return rc;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s", tu_tmp_path("train"));
    mkdir(dir, 0777);
    if (sh("%s -c 'import torch, numpy, sklearn' 2>/dev/null", python()) != 0) {
        print_message("PyTorch/numpy/sklearn missing for %s: `make test` installs them\n",
                      python());
        return -1;
    }
    /* A synthetic UCI-schema CSV, then a tiny model trained from it. */
    if (sh("%s tools/train_tabm.py --synthetic 1500 --synthetic-seed 3 "
           "--write-synthetic %s/train.csv",
           python(), dir) != 0)
        return -1;
    return sh("%s tools/train_tabm.py --csv %s/train.csv --out-dir %s --name tiny "
              "--d-block 24 --n-blocks 2 --epochs 3 --npz-deflate --no-onnx --quiet "
              "--reference-out %s/reference.csv --reference-rows 1000",
              python(), dir, dir, dir);
}

static void test_three_exports_convert_to_one_file(void **state)
{
    (void)state;
    const char *conv = tu_build_dir();
    assert_int_equal(sh("%s/opecom-convert --weights %s/tiny.npz --spec %s/tiny.spec.json "
                        "-o %s/a.opm >/dev/null",
                        conv, dir, dir, dir), 0);
    assert_int_equal(sh("%s/opecom-convert --weights %s/tiny.deflate.npz "
                        "--spec %s/tiny.spec.json -o %s/b.opm >/dev/null",
                        conv, dir, dir, dir), 0);
    assert_int_equal(sh("%s/opecom-convert --weights %s/tiny.safetensors -o %s/c.opm >/dev/null",
                        conv, dir, dir), 0);
    assert_int_equal(sh("cmp %s/a.opm %s/b.opm && cmp %s/a.opm %s/c.opm", dir, dir, dir, dir), 0);
}

static void test_c_matches_pytorch_on_tiny_model(void **state)
{
    (void)state;
    char model[600], ref[600];
    snprintf(model, sizeof model, "%s/a.opm", dir);
    snprintf(ref, sizeof ref, "%s/reference.csv", dir);
    const char *kernels[] = {"scalar", "auto"};
    for (size_t i = 0; i < 2; i++) {
        size_t n = 0;
        double d = tu_reference_max_diff(model, ref, kernels[i], &n);
        print_message("tiny model, kernel %s: %zu rows, max |C - PyTorch| = %.3g\n", kernels[i],
                      n, d);
        assert_true(d >= 0.0 && d <= 1e-5);
        assert_int_equal(n, 1000);
    }
}

static void test_shipped_model_is_the_conversion_of_its_exports(void **state)
{
    (void)state;
    const char *m = "models/shoppers-tabm-k4";
    assert_int_equal(sh("%s/opecom-convert --weights %s.npz --spec %s.spec.json -o %s/shipped.opm "
                        ">/dev/null && cmp %s.opm %s/shipped.opm",
                        tu_build_dir(), m, m, dir, m, dir), 0);
    assert_int_equal(sh("%s/opecom-convert --weights %s.safetensors -o %s/shipped-st.opm "
                        ">/dev/null && cmp %s.opm %s/shipped-st.opm",
                        tu_build_dir(), m, dir, m, dir), 0);
}

/* Every row of the synthetic CSV (the training rows and the validation part)
 * scored and binned by the library: against the reference the trainer
 * computed on its training rows, every dim's PSI is small. Binning that
 * disagreed with Python's (say, a tie at 0 sent right) would show at once. */
static void test_drift_reference_bins_like_the_library(void **state)
{
    (void)state;
    char path[600], line[4096];
    snprintf(path, sizeof path, "%s/a.opm", dir);
    opecom_model *m = NULL;
    opecom_error err;
    assert_int_equal(opecom_model_load(path, NULL, &m, &err), OPECOM_OK);
    opecom_model_info mi;
    opecom_drift_info di;
    opecom_model_describe(m, &mi);
    assert_int_equal(opecom_drift_describe(m, &di, &err), OPECOM_OK);
    assert_int_equal(di.n_dims, mi.n_features + 1);
    assert_int_equal(di.n_rows, 1275); /* 1500 rows less the 15% validation part */

    snprintf(path, sizeof path, "%s/train.csv", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int32_t col_of[32];
    char *cells[32];
    size_t n_cols = 0, rows = 0;
    uint64_t *counts = calloc(di.n_counts, sizeof *counts);
    assert_non_null(fgets(line, sizeof line, f));
    for (char *c = strtok(line, ",\r\n"); c && n_cols < 32; c = strtok(NULL, ",\r\n"))
        col_of[n_cols++] = opecom_feature_index(m, c);
    while (fgets(line, sizeof line, f)) {
        opecom_value row[32];
        opecom_result res;
        uint32_t index[33];
        size_t n = 0;
        for (char *c = strtok(line, ",\r\n"); c && n < 32; c = strtok(NULL, ",\r\n"))
            cells[n++] = c;
        assert_int_equal(n, n_cols);
        for (size_t c = 0; c < n; c++) {
            opecom_feature_info fi;
            if (col_of[c] < 0)
                continue;
            opecom_model_feature(m, (uint32_t)col_of[c], &fi);
            row[col_of[c]] = fi.type == OPECOM_FEATURE_NUMERIC
                                 ? (opecom_value){strtod(cells[c], NULL), NULL}
                                 : (opecom_value){0, cells[c]};
        }
        assert_int_equal(opecom_predict(m, NULL, row, &res, &err), OPECOM_OK);
        assert_int_equal(opecom_drift_bin(m, row, res.probability, index, &err), OPECOM_OK);
        for (uint32_t d = 0; d < di.n_dims; d++)
            counts[index[d]]++;
        rows++;
    }
    fclose(f);
    assert_int_equal(rows, 1500);
    double psi[33];
    assert_int_equal(opecom_drift_psi(m, counts, psi, &err), OPECOM_OK);
    for (uint32_t d = 0; d < di.n_dims; d++) {
        const char *name;
        opecom_drift_dim(m, d, &name, NULL, NULL, NULL);
        if (!(psi[d] >= 0 && psi[d] < 0.02))
            fail_msg("dim %u (%s): PSI %g of all rows against the training reference", d, name,
                     psi[d]);
    }
    free(counts);
    opecom_model_free(m);
}

static void test_trainer_names_bad_csv_cell(void **state)
{
    (void)state;
    /* Corrupt one cell of the synthetic CSV: line 5, column BounceRates. */
    assert_int_equal(sh("awk -F, 'BEGIN{OFS=\",\"} NR==5{$7=\"0.3x\"} {print}' %s/train.csv "
                        "> %s/bad.csv",
                        dir, dir), 0);
    assert_int_equal(sh("%s tools/train_tabm.py --csv %s/bad.csv --out-dir %s --name bad "
                        "--epochs 1 --no-onnx --quiet 2> %s/bad.err; test $? -ne 0",
                        python(), dir, dir, dir), 0);
    assert_int_equal(sh("grep -q 'line 5' %s/bad.err && grep -q BounceRates %s/bad.err", dir,
                        dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_exports_convert_to_one_file),
        cmocka_unit_test(test_c_matches_pytorch_on_tiny_model),
        cmocka_unit_test(test_shipped_model_is_the_conversion_of_its_exports),
        cmocka_unit_test(test_drift_reference_bins_like_the_library),
        cmocka_unit_test(test_trainer_names_bad_csv_cell),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
