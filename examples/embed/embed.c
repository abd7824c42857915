/*
 * embed.c - the smallest complete use of libopecom.
 *
 * Loads a model, looks its features up by name once, fills one raw session
 * (numbers as numbers, categories as their text, exactly as in the training
 * CSV), scores it and prints the purchase probability, each ensemble
 * member's probability and their spread. Every call's status is checked.
 *
 *     ./embed [model.opm]        (default: models/shoppers-tabm-k4.opm)
 */
#include <stdio.h>
#include <stdlib.h>

#include "opecom.h"

#define N_NUMERIC 10
#define N_TEXT 7

static const char *const numeric_name[N_NUMERIC] = {
    "Administrative", "Administrative_Duration", "Informational", "Informational_Duration",
    "ProductRelated", "ProductRelated_Duration", "BounceRates", "ExitRates", "PageValues",
    "SpecialDay"};
/* A returning visitor in November who browsed 24 product pages. */
static const double numeric_value[N_NUMERIC] = {
    3, 62.0, 1, 18.5, 24, 1105.2, 0.0041, 0.0186, 21.7, 0.0};

static const char *const text_name[N_TEXT] = {
    "Month", "OperatingSystems", "Browser", "Region", "TrafficType", "VisitorType", "Weekend"};
static const char *const text_value[N_TEXT] = {
    "Nov", "2", "2", "1", "2", "Returning_Visitor", "FALSE"};

static int fail(const char *what, opecom_status st, const opecom_error *err) {
    fprintf(stderr, "embed: %s: %s%s%s%s\n", what, opecom_strerror(st),
            err->message[0] ? " (" : "", err->message, err->message[0] ? ")" : "");
    return 1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "models/shoppers-tabm-k4.opm";
    opecom_model *model = NULL;
    opecom_workspace *ws = NULL;
    opecom_model_info info;
    opecom_value *row;
    opecom_result res;
    opecom_error err = {0};
    opecom_status st;
    uint32_t i;
    int rc = 1;

    st = opecom_model_load(path, NULL, &model, &err);
    if (st != OPECOM_OK)
        return fail(path, st, &err);
    st = opecom_model_describe(model, &info);
    if (st != OPECOM_OK) {
        fail("describe", st, &err);
        goto out;
    }
    row = calloc(info.n_features, sizeof(*row));
    if (row == NULL) {
        fprintf(stderr, "embed: out of memory\n");
        goto out;
    }

    /* Look each feature up once; a real program keeps these indices. */
    for (i = 0; i < N_NUMERIC + N_TEXT; i++) {
        const char *name = i < N_NUMERIC ? numeric_name[i] : text_name[i - N_NUMERIC];
        int32_t f = opecom_feature_index(model, name);
        if (f < 0) {
            fprintf(stderr, "embed: the model has no feature '%s'\n", name);
            goto out_row;
        }
        if (i < N_NUMERIC)
            row[f].num = numeric_value[i];
        else
            row[f].str = text_value[i - N_NUMERIC];
    }

    /* Scratch memory for one row; a server keeps one workspace per thread. */
    st = opecom_workspace_create(model, 1, &ws, &err);
    if (st != OPECOM_OK) {
        fail("workspace", st, &err);
        goto out_row;
    }
    st = opecom_predict(model, ws, row, &res, &err);
    if (st != OPECOM_OK) {
        fail("predict", st, &err);
        goto out_row;
    }
    printf("probability: %.6f\n", (double)res.probability);
    for (i = 0; i < res.k; i++)
        printf("member %u: %.6f\n", i, (double)res.member[i]);
    printf("spread: %.6f\n", (double)res.spread);
    rc = 0;
out_row:
    opecom_workspace_free(ws);
    free(row);
out:
    opecom_model_free(model);
    return rc;
}
