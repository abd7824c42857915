/*
 * verify.c - the summary printed by `opecom-convert --verify` (and after a
 * conversion): format version, architecture, size, threshold, kernel, and a
 * table of the raw input features with their encoding and valid range.
 * Everything comes from the public query functions of opecom.h.
 */
#include <stdio.h>
#include <string.h>

#include "convert.h"

#define MAX_SHOWN_CATEGORIES 8

static const char *transform_name(opecom_transform t) {
    switch (t) {
    case OPECOM_TRANSFORM_NONE:
        return "none";
    case OPECOM_TRANSFORM_LOG1P:
        return "log1p";
    case OPECOM_TRANSFORM_QUANTILE_NORMAL:
        return "quantile_normal";
    }
    return "?";
}

static void print_bounds(const opecom_feature_info *f) {
    if (f->has_min && f->has_max)
        printf("[%g, %g]", f->min, f->max);
    else if (f->has_min)
        printf(">= %g", f->min);
    else if (f->has_max)
        printf("<= %g", f->max);
    else
        printf("any");
}

static void print_categories(const opecom_model *model, uint32_t index,
                             const opecom_feature_info *f) {
    printf("%u categories:", (unsigned)f->n_categories);
    for (uint32_t c = 0; c < f->n_categories && c < MAX_SHOWN_CATEGORIES; c++) {
        const char *text = opecom_model_category(model, index, c);
        printf(" %s", text != NULL ? text : "?");
    }
    if (f->n_categories > MAX_SHOWN_CATEGORIES)
        printf(" ... (+%u more)", (unsigned)(f->n_categories - MAX_SHOWN_CATEGORIES));
}

void cv_print_summary(const opecom_model *model) {
    opecom_model_info info;
    memset(&info, 0, sizeof info);
    if (opecom_model_describe(model, &info) != OPECOM_OK) {
        printf("(model summary unavailable)\n");
        return;
    }
    printf("format version  %u\n", (unsigned)info.format_version);
    printf("architecture    TabM, k = %u, n_blocks = %u, d_block = %u, d_in = %u\n",
           (unsigned)info.k, (unsigned)info.n_blocks, (unsigned)info.d_block,
           (unsigned)info.d_in);
    printf("parameters      %llu\n", (unsigned long long)info.n_params);
    printf("threshold       %.7g\n", (double)info.threshold);
    printf("kernel          %s\n", info.kernel != NULL ? info.kernel : "?");
    printf("file size       %llu bytes\n", (unsigned long long)info.file_size);
    printf("features        %u\n", (unsigned)info.n_features);

    int width = 4;
    for (uint32_t i = 0; i < info.n_features; i++) {
        opecom_feature_info f;
        if (opecom_model_feature(model, i, &f) == OPECOM_OK && f.name != NULL &&
            (int)strlen(f.name) > width && strlen(f.name) < 40)
            width = (int)strlen(f.name);
    }
    printf("  %3s  %-*s  %-11s  %s\n", "#", width, "name", "type", "encoding, range");
    for (uint32_t i = 0; i < info.n_features; i++) {
        opecom_feature_info f;
        if (opecom_model_feature(model, i, &f) != OPECOM_OK) {
            printf("  %3u  (unavailable)\n", (unsigned)i);
            continue;
        }
        const char *name = f.name != NULL ? f.name : "?";
        if (f.type == OPECOM_FEATURE_NUMERIC) {
            printf("  %3u  %-*s  %-11s  %s", (unsigned)i, width, name, "numeric",
                   transform_name(f.transform));
            if (f.transform == OPECOM_TRANSFORM_QUANTILE_NORMAL)
                printf(" (%u quantiles)", (unsigned)f.n_quantiles);
            printf(", mean %g, std %g, range ", f.mean, f.std);
            print_bounds(&f);
        } else {
            printf("  %3u  %-*s  %-11s  ", (unsigned)i, width, name, "categorical");
            print_categories(model, i, &f);
        }
        printf("\n");
    }
}
