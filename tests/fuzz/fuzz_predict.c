/*
 * fuzz_predict.c - opecom_predict on hostile raw values: any bit pattern as
 * a number (NaN, infinities, negatives, huge), any bytes as category text,
 * numbers for categories, text for numbers. Every call returns OK with a
 * probability in [0, 1], or an error that names a feature.
 * Uses the shipped model (run from the repository root).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "opecom.h"

static opecom_model *model;
static uint32_t n_features;

static void load_model(void)
{
    if (model != NULL)
        return;
    opecom_error err;
    if (opecom_model_load("models/shoppers-tabm-k4.opm", NULL, &model, &err) != OPECOM_OK)
        abort(); /* misconfigured: run from the repository root */
    opecom_model_info info;
    opecom_model_describe(model, &info);
    n_features = info.n_features;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_model();
    opecom_value row[64];
    char text[64][16];
    size_t at = 0;
    for (uint32_t f = 0; f < n_features && f < 64; f++) {
        uint8_t tag = at < size ? data[at++] : 0;
        row[f].str = NULL;
        row[f].num = 0.0;
        if (tag % 4 == 0) {
            uint8_t bytes[8] = {0};
            for (int i = 0; i < 8 && at < size; i++)
                bytes[i] = data[at++];
            memcpy(&row[f].num, bytes, sizeof row[f].num);
        } else if (tag % 4 == 1) {
            size_t n = 0;
            while (n < sizeof text[f] - 1 && at < size && data[at] != 0)
                text[f][n++] = (char)data[at++];
            text[f][n] = '\0';
            at++;
            row[f].str = text[f];
        } else if (tag % 4 == 2) {
            row[f].num = (double)(int8_t)(at < size ? data[at++] : 0);
        } else {
            row[f].str = opecom_model_category(model, f, at < size ? data[at++] % 4 : 0);
        }
    }
    opecom_result r[2];
    opecom_error err;
    opecom_value rows[128];
    memcpy(rows, row, sizeof(opecom_value) * n_features);
    memcpy(rows + n_features, row, sizeof(opecom_value) * n_features);
    opecom_status s = opecom_predict(model, NULL, row, &r[0], &err);
    if (s == OPECOM_OK ? !(r[0].probability >= 0.0f && r[0].probability <= 1.0f)
                       : s != OPECOM_EINVAL || err.feature < 0 ||
                             err.feature >= (int32_t)n_features)
        abort();
    opecom_status b = opecom_predict_batch(model, NULL, rows, 2, r, &err);
    if (b != s || (s == OPECOM_OK && r[0].probability != r[1].probability))
        abort();
    return 0;
}
