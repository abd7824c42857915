/*
 * test_train.c - the whole pipeline on a tiny model: tools/train_tabm.py
 * (PyTorch) trains a few epochs on a synthetic CSV and exports .npz (stored
 * and deflated) and .safetensors; opecom-convert turns each into a .opm; the
 * three files must be identical and the C library must reproduce PyTorch's
 * probabilities on the trainer's reference rows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
        cmocka_unit_test(test_trainer_names_bad_csv_cell),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
