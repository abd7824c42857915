/*
 * eval.c - `opecom eval`: how good is a model on labelled sessions.
 *
 * Rows stream through the same CSV reader and batches as `predict`; of each
 * scored row only (probability, label) is kept, 8 bytes, so memory grows
 * with the row count but never holds the input. At the end the pairs are
 * sorted by probability and every figure is computed here, with
 * scikit-learn's definitions so the two agree on the same predictions:
 *
 *   roc_auc    trapezoids over the ROC points of the distinct scores (tied
 *              scores form one point, as roc_curve makes them); counted in
 *              integers, so exact up to the final division;
 *   pr_auc     average precision: sum over distinct scores, from the highest,
 *              of (recall_k - recall_{k-1}) * precision_k; no interpolation;
 *   log_loss   mean of -log(p) (label 1) or -log(1 - p) (label 0), p clipped
 *              to [eps, 1 - eps] with eps = DBL_EPSILON, as log_loss with its
 *              default eps="auto" does on float64 predictions (sklearn 1.2);
 *   accuracy, precision, recall, f1 at the threshold (label 1 when
 *              probability >= threshold); a ratio whose denominator is 0 is
 *              0, as with sklearn's zero_division="warn";
 *   calibration 10 equal-width bins; bin i holds (i/10, (i+1)/10] (bin 0
 *              also 0), the edges of calibration_curve(strategy="uniform").
 *
 * When every row has the same label, ROC-AUC is undefined (sklearn raises)
 * and is reported as null / "undefined"; so is PR-AUC without positives.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define BATCH_ROWS 256

static const char eval_usage[] =
    "Usage: opecom eval --model MODEL.opm [OPTIONS] [INPUT.csv|-]\n"
    "\n"
    "Scores every row of a labelled CSV file and prints how well the model\n"
    "does: ROC-AUC, PR-AUC (average precision), log loss, accuracy, precision,\n"
    "recall and F1 at the threshold, the confusion matrix and a 10-bin\n"
    "calibration table. The figures follow scikit-learn's definitions.\n"
    "\n"
    "Input: as for 'opecom predict', plus the label column: TRUE/FALSE (any\n"
    "case) or 1/0.\n"
    "\n"
    "Options:\n"
    "  -m, --model FILE      model file (.opm); required\n"
    "  -l, --label COL       label column (default: Revenue)\n"
    "  -t, --threshold T     decision threshold in [0, 1], or 'model' (default:\n"
    "                        the model's own threshold)\n"
    "  -j, --json            print one JSON object instead of the report\n"
    "  -e, --on-error MODE   'stop' (default) or 'skip' bad rows (reported,\n"
    "                        left out of the figures, counted)\n"
    "  -h, --help            show this help and exit\n"
    "\n"
    "ROC-AUC is undefined (null in JSON) when all rows have the same label;\n"
    "PR-AUC is undefined when no row is positive.\n"
    "\n"
    "Exit status: 0 success, 1 bad input data (also: no row to evaluate) or\n"
    "I/O error, 2 usage error, 3 the model could not be loaded.\n";

typedef struct eval_ctx {
    /* options */
    const char *label_name;
    cli_on_error on_error;
    /* model and input */
    const char *input_name;
    const opecom_model *model;
    opecom_workspace *ws;
    uint32_t n_features;
    cli_colmap map;
    cli_batch batch;
    int ready;
    size_t label_col;
    uint32_t label[BATCH_ROWS]; /* label of each batch row */
    cli_progress progress;
    /* results */
    cli_scored *pairs;
    size_t n_pairs, cap_pairs;
    uint64_t n_rows, n_skipped;
} eval_ctx;

/* ===================================================================== *
 * Reports
 * ===================================================================== */

static void put_key(FILE *fp, const char *key, int *first) {
    fprintf(fp, "%s\"%s\":", *first ? "" : ",", key);
    *first = 0;
}

static void print_json(FILE *fp, const cli_metrics *m, const char *threshold_source,
                       uint64_t skipped) {
    int first = 1;
    int i;
    putc('{', fp);
    put_key(fp, "n", &first);
    fprintf(fp, "%llu", (unsigned long long)m->n);
    put_key(fp, "positives", &first);
    fprintf(fp, "%llu", (unsigned long long)m->positives);
    put_key(fp, "skipped", &first);
    fprintf(fp, "%llu", (unsigned long long)skipped);
    put_key(fp, "threshold", &first);
    cli_put_json_number(fp, m->threshold);
    put_key(fp, "threshold_source", &first);
    fprintf(fp, "\"%s\"", threshold_source);
    put_key(fp, "roc_auc", &first);
    cli_put_json_number(fp, m->roc_auc);
    put_key(fp, "pr_auc", &first);
    cli_put_json_number(fp, m->pr_auc);
    put_key(fp, "log_loss", &first);
    cli_put_json_number(fp, m->log_loss);
    put_key(fp, "accuracy", &first);
    cli_put_json_number(fp, m->accuracy);
    put_key(fp, "precision", &first);
    cli_put_json_number(fp, m->precision);
    put_key(fp, "recall", &first);
    cli_put_json_number(fp, m->recall);
    put_key(fp, "f1", &first);
    cli_put_json_number(fp, m->f1);
    put_key(fp, "confusion", &first);
    fprintf(fp, "{\"tn\":%llu,\"fp\":%llu,\"fn\":%llu,\"tp\":%llu}",
            (unsigned long long)m->tn, (unsigned long long)m->fp, (unsigned long long)m->fn,
            (unsigned long long)m->tp);
    put_key(fp, "calibration", &first);
    putc('[', fp);
    for (i = 0; i < CLI_CAL_BINS; i++) {
        const cli_bin *b = &m->bins[i];
        fprintf(fp, "%s{\"lo\":%.1f,\"hi\":%.1f,\"count\":%llu,\"positives\":%llu,"
                    "\"mean_predicted\":",
                i ? "," : "", (double)i / CLI_CAL_BINS, (double)(i + 1) / CLI_CAL_BINS,
                (unsigned long long)b->count, (unsigned long long)b->positives);
        cli_put_json_number(fp, b->count ? b->sum_p / (double)b->count : (double)NAN);
        fputs(",\"observed_rate\":", fp);
        cli_put_json_number(fp, b->count ? (double)b->positives / (double)b->count : (double)NAN);
        putc('}', fp);
    }
    fputs("]}\n", fp);
}

static void print_figure(FILE *fp, const char *name, double v, const char *note) {
    if (isnan(v))
        fprintf(fp, "%-12s undefined%s\n", name, note);
    else
        fprintf(fp, "%-12s %.6f%s\n", name, v, note);
}

static void print_text(FILE *fp, const cli_metrics *m, const char *threshold_source,
                       uint64_t skipped) {
    int i;
    fprintf(fp, "rows         %llu (%llu positive, %.2f%%)", (unsigned long long)m->n,
            (unsigned long long)m->positives, 100.0 * cli_ratio(m->positives, m->n));
    if (skipped)
        fprintf(fp, ", %llu skipped", (unsigned long long)skipped);
    fprintf(fp, "\nthreshold    %.6g (%s)\n\n", m->threshold, threshold_source);
    print_figure(fp, "ROC-AUC", m->roc_auc, m->positives == m->n || m->positives == 0
                                                ? " (only one class in the labels)"
                                                : "");
    print_figure(fp, "PR-AUC", m->pr_auc,
                 m->positives == 0 ? " (no positive label)" : " (average precision)");
    print_figure(fp, "log loss", m->log_loss, "");
    print_figure(fp, "accuracy", m->accuracy, "");
    print_figure(fp, "precision", m->precision, "");
    print_figure(fp, "recall", m->recall, "");
    print_figure(fp, "F1", m->f1, "");
    fprintf(fp, "\nconfusion matrix   predicted 0  predicted 1\n");
    fprintf(fp, "  actual 0        %12llu %12llu\n", (unsigned long long)m->tn,
            (unsigned long long)m->fp);
    fprintf(fp, "  actual 1        %12llu %12llu\n", (unsigned long long)m->fn,
            (unsigned long long)m->tp);
    fprintf(fp, "\ncalibration (10 equal-width bins of predicted probability)\n");
    fprintf(fp, "  bin              rows  mean predicted  observed rate\n");
    for (i = 0; i < CLI_CAL_BINS; i++) {
        const cli_bin *b = &m->bins[i];
        fprintf(fp, "  %c%.1f, %.1f]  %12llu", i ? '(' : '[', (double)i / CLI_CAL_BINS,
                (double)(i + 1) / CLI_CAL_BINS, (unsigned long long)b->count);
        if (b->count)
            fprintf(fp, "  %14.6f  %13.6f\n", b->sum_p / (double)b->count,
                    (double)b->positives / (double)b->count);
        else
            fprintf(fp, "  %14s  %13s\n", "-", "-");
    }
}

/* ===================================================================== *
 * Reading
 * ===================================================================== */

static int keep_pair(eval_ctx *c, float p, uint32_t y) {
    if (c->n_pairs == c->cap_pairs) {
        size_t cap = c->cap_pairs ? c->cap_pairs * 2 : 4096;
        cli_scored *s = realloc(c->pairs, cap * sizeof(*s));
        if (s == NULL) {
            cli_error("out of memory after %zu rows", c->n_pairs);
            return CLI_EXIT_DATA;
        }
        c->pairs = s;
        c->cap_pairs = cap;
    }
    c->pairs[c->n_pairs].p = p;
    c->pairs[c->n_pairs].y = y;
    c->n_pairs++;
    return CLI_EXIT_OK;
}

static int flush(eval_ctx *c) {
    size_t i;
    int rc = CLI_EXIT_OK;
    if (c->on_error == CLI_ON_ERROR_SKIP) {
        size_t n_failed;
        rc = cli_batch_predict_each(&c->batch, c->model, c->ws, c->input_name, &n_failed);
        for (i = 0; rc == CLI_EXIT_OK && i < c->batch.n; i++) {
            if (c->batch.result[i].status == OPECOM_OK)
                rc = keep_pair(c, c->batch.result[i].probability, c->label[i]);
        }
        c->n_skipped += n_failed;
    } else {
        size_t n_ok;
        rc = cli_batch_predict(&c->batch, c->model, c->ws, c->input_name, &n_ok);
        for (i = 0; i < n_ok; i++) {
            if (keep_pair(c, c->batch.result[i].probability, c->label[i]) != CLI_EXIT_OK)
                return CLI_EXIT_DATA;
        }
    }
    cli_batch_clear(&c->batch);
    cli_progress_update(&c->progress, c->n_rows);
    return rc;
}

static int on_header(void *ctx, const cli_csv_record *header) {
    eval_ctx *c = ctx;
    int32_t col = cli_csv_find(header, c->label_name);
    int rc;
    if (col < 0) {
        cli_error("%s: missing label column '%s' (choose another with --label)", c->input_name,
                  c->label_name);
        return CLI_EXIT_DATA;
    }
    c->label_col = (size_t)col;
    rc = cli_colmap_init(&c->map, c->model, header, c->input_name);
    if (rc != CLI_EXIT_OK)
        return rc;
    rc = cli_batch_init(&c->batch, c->n_features, BATCH_ROWS);
    if (rc != CLI_EXIT_OK) {
        cli_colmap_free(&c->map);
        return rc;
    }
    c->ready = 1;
    return CLI_EXIT_OK;
}

static int on_row(void *ctx, const cli_csv_record *rec) {
    eval_ctx *c = ctx;
    char msg[CLI_MSG_SIZE];
    uint32_t y = 0;
    int rc = CLI_EXIT_OK;
    c->n_rows++;
    /* A record with the wrong field count is left to cli_batch_add. */
    if (rec->n_fields == c->map.n_columns &&
        cli_parse_label(rec->field[c->label_col], &y) != 0) {
        const char *s = rec->field[c->label_col];
        size_t len = rec->len[c->label_col];
        snprintf(msg, sizeof(msg),
                 "%s:%llu: column '%s': '%.*s%s' is not a label (TRUE/FALSE or 1/0)",
                 c->input_name, (unsigned long long)rec->line, c->label_name,
                 len > 40 ? 40 : (int)len, s, len > 40 ? "..." : "");
        rc = CLI_EXIT_DATA;
    } else {
        c->label[c->batch.n] = y;
        rc = cli_batch_add(&c->batch, &c->map, rec, c->input_name, msg, sizeof(msg));
    }
    if (rc != CLI_EXIT_OK) {
        if (flush(c) != CLI_EXIT_OK)
            return CLI_EXIT_DATA;
        cli_error("%s", msg);
        if (c->on_error == CLI_ON_ERROR_SKIP) {
            c->n_skipped++;
            return CLI_EXIT_OK;
        }
        return rc;
    }
    if (c->batch.n == c->batch.cap)
        return flush(c);
    return CLI_EXIT_OK;
}

/* ===================================================================== *
 * Command
 * ===================================================================== */

int cli_eval(int argc, char **argv) {
    const char *model_path = NULL;
    const char *input_path = NULL;
    const char *threshold_arg = NULL;
    const char *on_error = NULL;
    const char *threshold_source = "model";
    double threshold = 0.0;
    int json = 0;
    int n_inputs = 0;
    opecom_model *model = NULL;
    opecom_model_info mi;
    opecom_error err;
    eval_ctx c;
    cli_metrics m;
    FILE *in = NULL;
    cli_args a;
    int rc;

    memset(&c, 0, sizeof(c));
    c.label_name = "Revenue";
    cli_args_init(&a, argc, argv);
    while (cli_args_next(&a)) {
        int r;
        if (cli_args_flag(&a, "--help", "-h")) {
            fputs(eval_usage, stdout);
            return CLI_EXIT_OK;
        }
        if (cli_args_flag(&a, "--json", "-j")) {
            json = 1;
            continue;
        }
        if ((r = cli_args_value(&a, "--model", "-m", &model_path)) != 0 ||
            (r = cli_args_value(&a, "--label", "-l", &c.label_name)) != 0 ||
            (r = cli_args_value(&a, "--threshold", "-t", &threshold_arg)) != 0 ||
            (r = cli_args_value(&a, "--on-error", "-e", &on_error)) != 0) {
            if (r < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        if (cli_args_positional(&a)) {
            input_path = a.arg;
            n_inputs++;
            continue;
        }
        return cli_usage_error(argv[0], "unknown option '%s'", a.arg);
    }
    if (model_path == NULL)
        return cli_usage_error(argv[0], "--model is required");
    if (n_inputs > 1)
        return cli_usage_error(argv[0], "one input file at most (got %d)", n_inputs);
    if (c.label_name[0] == '\0')
        return cli_usage_error(argv[0], "--label needs a column name");
    if (threshold_arg != NULL && strcmp(threshold_arg, "model") != 0) {
        if (cli_parse_threshold(threshold_arg, &threshold) != 0)
            return cli_usage_error(argv[0],
                                   "--threshold '%s': expected a number in [0, 1] or 'model'",
                                   threshold_arg);
        threshold_source = "option";
    }
    if (on_error != NULL && cli_parse_on_error(on_error, &c.on_error) != 0)
        return cli_usage_error(argv[0], "--on-error '%s': expected 'stop' or 'skip'", on_error);

    rc = cli_load_model(model_path, &model);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (opecom_model_describe(model, &mi) != OPECOM_OK) {
        cli_error("%s: cannot describe the model", model_path);
        opecom_model_free(model);
        return CLI_EXIT_MODEL;
    }
    if (strcmp(threshold_source, "model") == 0)
        threshold = (double)mi.threshold;
    c.model = model;
    c.n_features = mi.n_features;
    memset(&err, 0, sizeof(err));
    if (opecom_workspace_create(model, BATCH_ROWS, &c.ws, &err) != OPECOM_OK) {
        cli_error("%s: cannot make a workspace: %s", model_path, err.message);
        opecom_model_free(model);
        return CLI_EXIT_DATA;
    }
    rc = cli_open_input(input_path, &in, &c.input_name);
    if (rc != CLI_EXIT_OK) {
        opecom_workspace_free(c.ws);
        opecom_model_free(model);
        return rc;
    }

    cli_progress_start(&c.progress, in);
    rc = cli_csv_read(in, c.input_name, on_header, on_row, &c);
    if (rc == CLI_EXIT_OK && c.ready)
        rc = flush(&c);
    cli_progress_end(&c.progress);
    if (in != stdin)
        fclose(in);
    if (rc == CLI_EXIT_OK && c.n_skipped > 0)
        cli_error("%llu of %llu rows skipped (bad data), %zu evaluated",
                  (unsigned long long)c.n_skipped, (unsigned long long)c.n_rows, c.n_pairs);
    if (rc == CLI_EXIT_OK && c.n_pairs == 0) {
        cli_error("%s: no rows to evaluate", c.input_name);
        rc = CLI_EXIT_DATA;
    }
    if (rc == CLI_EXIT_OK) {
        cli_metrics_compute(c.pairs, c.n_pairs, threshold, &m);
        if (m.positives == 0 || m.positives == m.n)
            cli_error("warning: %s: every label is %s: ROC-AUC is undefined%s", c.input_name,
                      m.positives ? "1" : "0", m.positives ? "" : ", and so is PR-AUC");
        if (json)
            print_json(stdout, &m, threshold_source, c.n_skipped);
        else
            print_text(stdout, &m, threshold_source, c.n_skipped);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            cli_error("<stdout>: write error");
            rc = CLI_EXIT_DATA;
        }
    }

    if (c.ready) {
        cli_batch_free(&c.batch);
        cli_colmap_free(&c.map);
    }
    free(c.pairs);
    opecom_workspace_free(c.ws);
    opecom_model_free(model);
    return rc;
}
