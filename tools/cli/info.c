/*
 * info.c - `opecom info`: what is inside a model file.
 *
 * Architecture, sizes, threshold and kernel come from opecom_model_describe;
 * the feature schema (types, transforms, valid ranges, categories) from
 * opecom_model_feature and opecom_model_category; the drift reference's size
 * from opecom_drift_describe. The training metadata and
 * validation metrics are not part of the API's structs: they travel in the
 * spec JSON stored in the model (opecom_model_info.spec_json), whose
 * "training" object is shown as it is, whatever keys the trainer wrote.
 * JSON is read and written with jansson.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char info_usage[] =
    "Usage: opecom info --model MODEL.opm [--json]\n"
    "\n"
    "Describes a model file: architecture (TabM, k members, blocks and width),\n"
    "the features it expects with their types, transforms, valid ranges and\n"
    "categories, the decision threshold, the explanation baseline and drift\n"
    "reference it carries, the training metadata and validation metrics stored\n"
    "with it, its file size, format version and the kernel the library uses\n"
    "for it on this machine.\n"
    "\n"
    "Options:\n"
    "  -m, --model FILE   model file (.opm); required (or as the argument)\n"
    "  -j, --json         print one JSON object instead of the report\n"
    "  -h, --help         show this help and exit\n"
    "\n"
    "Exit status: 0 success, 1 output error, 2 usage error, 3 the model could\n"
    "not be loaded.\n";

static const char *transform_name(opecom_transform t) {
    switch (t) {
    case OPECOM_TRANSFORM_NONE: return "none";
    case OPECOM_TRANSFORM_LOG1P: return "log1p";
    case OPECOM_TRANSFORM_QUANTILE_NORMAL: return "quantile_normal";
    }
    return "unknown";
}

/* The spec's string at obj.key, or NULL. */
static const char *spec_string(json_t *obj, const char *key) {
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ===================================================================== *
 * JSON report
 * ===================================================================== */

/* json_real refuses nothing, but JSON has no inf or NaN: null instead. */
static json_t *real_or_null(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *feature_json(const opecom_model *model, uint32_t f, const opecom_feature_info *fi) {
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(fi->name));
    if (fi->type == OPECOM_FEATURE_NUMERIC) {
        json_object_set_new(o, "type", json_string("numeric"));
        json_object_set_new(o, "transform", json_string(transform_name(fi->transform)));
        json_object_set_new(o, "min", fi->has_min ? real_or_null(fi->min) : json_null());
        json_object_set_new(o, "max", fi->has_max ? real_or_null(fi->max) : json_null());
        json_object_set_new(o, "mean", real_or_null(fi->mean));
        json_object_set_new(o, "std", real_or_null(fi->std));
        if (fi->transform == OPECOM_TRANSFORM_QUANTILE_NORMAL)
            json_object_set_new(o, "n_quantiles", json_integer(fi->n_quantiles));
    } else {
        json_t *cats = json_array();
        uint32_t c;
        for (c = 0; c < fi->n_categories; c++) {
            const char *text = opecom_model_category(model, f, c);
            json_array_append_new(cats, json_string(text ? text : ""));
        }
        json_object_set_new(o, "type", json_string("categorical"));
        json_object_set_new(o, "categories", cats);
    }
    return o;
}

static int print_json(const char *path, const opecom_model *model, const opecom_model_info *mi,
                      json_t *spec) {
    json_t *root = json_object();
    json_t *arch = json_object();
    json_t *features = json_array();
    json_t *arch_spec = spec ? json_object_get(spec, "architecture") : NULL;
    json_t *training = spec ? json_object_get(spec, "training") : NULL;
    const char *activation = spec_string(arch_spec, "activation");
    opecom_drift_info di;
    uint32_t f;
    char *text;
    int rc = CLI_EXIT_OK;

    json_object_set_new(root, "path", json_string(path));
    json_object_set_new(root, "file_size", json_integer((json_int_t)mi->file_size));
    json_object_set_new(root, "format_version", json_integer(mi->format_version));
    json_object_set_new(arch, "type", json_string("tabm"));
    json_object_set_new(arch, "k", json_integer(mi->k));
    json_object_set_new(arch, "n_blocks", json_integer(mi->n_blocks));
    json_object_set_new(arch, "d_block", json_integer(mi->d_block));
    json_object_set_new(arch, "d_in", json_integer(mi->d_in));
    json_object_set_new(arch, "activation", activation ? json_string(activation) : json_null());
    json_object_set_new(arch, "n_params", json_integer((json_int_t)mi->n_params));
    json_object_set_new(root, "architecture", arch);
    json_object_set_new(root, "threshold", json_real((double)mi->threshold));
    json_object_set_new(root, "kernel", json_string(mi->kernel ? mi->kernel : ""));
    json_object_set_new(root, "n_baseline", json_integer(mi->n_baseline));
    if (opecom_drift_describe(model, &di, NULL) == OPECOM_OK) {
        json_t *drift = json_object();
        json_object_set_new(drift, "n_dims", json_integer(di.n_dims));
        json_object_set_new(drift, "n_counts", json_integer(di.n_counts));
        json_object_set_new(drift, "n_rows", json_integer((json_int_t)di.n_rows));
        json_object_set_new(root, "drift", drift);
    } else {
        json_object_set_new(root, "drift", json_null());
    }
    json_object_set_new(root, "n_features", json_integer(mi->n_features));
    for (f = 0; f < mi->n_features; f++) {
        opecom_feature_info fi;
        if (opecom_model_feature(model, f, &fi) == OPECOM_OK)
            json_array_append_new(features, feature_json(model, f, &fi));
    }
    json_object_set_new(root, "features", features);
    json_object_set(root, "training", json_is_object(training) ? training : json_null());

    text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    if (text == NULL) {
        cli_error("out of memory");
        rc = CLI_EXIT_DATA;
    } else {
        fputs(text, stdout);
        putc('\n', stdout);
        free(text);
    }
    json_decref(root);
    return rc;
}

/* ===================================================================== *
 * Text report
 * ===================================================================== */

/* Prints a JSON value from the training metadata: scalars on the key's line,
 * arrays of scalars inline, objects as an indented block. */
static void print_value(const char *key, json_t *v, int indent) {
    const char *k;
    json_t *child;
    size_t i;
    if (json_is_object(v)) {
        printf("%*s%s\n", indent, "", key);
        json_object_foreach(v, k, child)
            print_value(k, child, indent + 2);
        return;
    }
    printf("%*s%-*s ", indent, "", 26 - indent > 1 ? 26 - indent : 1, key);
    if (json_is_array(v)) {
        json_array_foreach(v, i, child) {
            char *t = json_dumps(child, JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
            printf("%s%s", i ? ", " : "", t ? t : "?");
            free(t);
        }
        putchar('\n');
    } else if (json_is_string(v)) {
        printf("%s\n", json_string_value(v));
    } else if (json_is_real(v)) {
        printf("%.10g\n", json_real_value(v));
    } else {
        char *t = json_dumps(v, JSON_ENCODE_ANY);
        printf("%s\n", t ? t : "?");
        free(t);
    }
}

static void print_range(const opecom_feature_info *fi) {
    char lo[32] = "(-inf";
    char hi[32] = "inf)";
    char both[70];
    if (fi->has_min)
        snprintf(lo, sizeof(lo), "[%g", fi->min);
    if (fi->has_max)
        snprintf(hi, sizeof(hi), "%g]", fi->max);
    snprintf(both, sizeof(both), "%s, %s", lo, hi);
    printf("%-14s", both);
}

static void print_text(const char *path, const opecom_model *model, const opecom_model_info *mi,
                       json_t *spec) {
    json_t *arch_spec = spec ? json_object_get(spec, "architecture") : NULL;
    json_t *training = spec ? json_object_get(spec, "training") : NULL;
    const char *activation = spec_string(arch_spec, "activation");
    opecom_drift_info di;
    const char *k;
    json_t *v;
    uint32_t f;

    printf("model            %s\n", path);
    printf("file size        %llu bytes\n", (unsigned long long)mi->file_size);
    printf("format version   %u\n", mi->format_version);
    printf("architecture     TabM: k = %u members, %u blocks of width %u%s%s\n", mi->k,
           mi->n_blocks, mi->d_block, activation ? ", " : "", activation ? activation : "");
    printf("input width      %u (numeric features + one-hot categories)\n", mi->d_in);
    printf("parameters       %llu\n", (unsigned long long)mi->n_params);
    printf("threshold        %.9g\n", (double)mi->threshold);
    printf("kernel           %s\n", mi->kernel ? mi->kernel : "?");
    if (mi->n_baseline > 0)
        printf("baseline         %u rows (explanations are relative to them)\n", mi->n_baseline);
    else
        printf("baseline         none (opecom explain needs one)\n");
    if (opecom_drift_describe(model, &di, NULL) == OPECOM_OK)
        printf("drift reference  %u dims, %u bins, from %llu training rows (PSI monitoring)\n",
               di.n_dims, di.n_counts, (unsigned long long)di.n_rows);
    else
        printf("drift reference  none (no PSI monitoring)\n");

    printf("\nfeatures (%u)\n", mi->n_features);
    printf("  %3s  %-24s %-12s %-16s %-14s %s\n", "#", "name", "type", "transform",
           "valid range", "categories");
    for (f = 0; f < mi->n_features; f++) {
        opecom_feature_info fi;
        if (opecom_model_feature(model, f, &fi) != OPECOM_OK)
            continue;
        printf("  %3u  %-24s ", f, fi.name);
        if (fi.type == OPECOM_FEATURE_NUMERIC) {
            printf("%-12s %-16s ", "numeric", transform_name(fi.transform));
            print_range(&fi);
            putchar('\n');
        } else {
            uint32_t c;
            printf("%-12s %-16s %-14s %u:", "categorical", "", "", fi.n_categories);
            for (c = 0; c < fi.n_categories; c++) {
                const char *text = opecom_model_category(model, f, c);
                printf(" %s", text ? text : "?");
            }
            putchar('\n');
        }
    }

    printf("\ntraining\n");
    if (!json_is_object(training)) {
        printf("  (no training metadata in this model)\n");
        return;
    }
    json_object_foreach(training, k, v)
        print_value(k, v, 2);
}

/* ===================================================================== *
 * Command
 * ===================================================================== */

int cli_info(int argc, char **argv) {
    const char *model_path = NULL;
    int json = 0;
    opecom_model *model = NULL;
    opecom_model_info mi;
    json_t *spec = NULL;
    const cli_option opts[] = {{"--model", "-m", &model_path, NULL, 1},
                               {"--json", "-j", NULL, &json, 0},
                               {NULL, NULL, NULL, NULL, 0}};
    int rc = cli_args_parse(argc, argv, info_usage, opts, &model_path, "model");

    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    rc = cli_load_model(model_path, &model);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (opecom_model_describe(model, &mi) != OPECOM_OK) {
        cli_error("%s: cannot describe the model", model_path);
        opecom_model_free(model);
        return CLI_EXIT_MODEL;
    }
    if (mi.spec_json != NULL && mi.spec_json[0] != '\0') {
        json_error_t jerr;
        spec = json_loads(mi.spec_json, 0, &jerr);
        if (spec == NULL || !json_is_object(spec)) {
            /* The numbers above do not depend on it: warn and go on. */
            cli_error("warning: %s: the stored spec JSON is unreadable (%s); no training "
                      "metadata shown", model_path, spec ? "not an object" : jerr.text);
            json_decref(spec);
            spec = NULL;
        }
    }
    if (json)
        rc = print_json(model_path, model, &mi, spec);
    else
        print_text(model_path, model, &mi, spec);
    if (rc == CLI_EXIT_OK && (fflush(stdout) != 0 || ferror(stdout))) {
        cli_error("<stdout>: write error");
        rc = CLI_EXIT_DATA;
    }
    json_decref(spec);
    opecom_model_free(model);
    return rc;
}
