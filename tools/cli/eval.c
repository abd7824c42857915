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
    cli_stream s;
    cli_scores pairs;
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
 * Command
 * ===================================================================== */

static int take_row(void *ctx, size_t i) {
    eval_ctx *c = ctx;
    return cli_scores_add(&c->pairs, c->s.batch.result[i].probability, c->s.batch.label[i]);
}

int cli_eval(int argc, char **argv) {
    const char *model_path = NULL;
    const char *input_path = NULL;
    const char *threshold_arg = NULL;
    const char *on_error = NULL;
    const char *threshold_source = "model";
    double threshold = 0.0;
    int json = 0;
    eval_ctx c = {.s = {.ctx = &c, .take_fn = take_row, .label_name = "Revenue",
                        .label_required = 1, .batch_rows = BATCH_ROWS}};
    const cli_option opts[] = {{"--model", "-m", &model_path, NULL, 1},
                               {"--label", "-l", &c.s.label_name, NULL, 0},
                               {"--threshold", "-t", &threshold_arg, NULL, 0},
                               {"--on-error", "-e", &on_error, NULL, 0},
                               {"--json", "-j", NULL, &json, 0},
                               {NULL, NULL, NULL, NULL, 0}};
    cli_metrics m;
    int rc = cli_args_parse(argc, argv, eval_usage, opts, &input_path, "input file");

    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (c.s.label_name[0] == '\0')
        return cli_usage_error(argv[0], "--label needs a column name");
    if (threshold_arg != NULL && strcmp(threshold_arg, "model") != 0) {
        if (cli_parse_threshold(threshold_arg, &threshold) != 0)
            return cli_usage_error(argv[0],
                                   "--threshold '%s': expected a number in [0, 1] or 'model'",
                                   threshold_arg);
        threshold_source = "option";
    }
    if (on_error != NULL && cli_parse_on_error(on_error, &c.s.on_error) != 0)
        return cli_usage_error(argv[0], "--on-error '%s': expected 'stop' or 'skip'", on_error);

    rc = cli_stream_load(&c.s, model_path);
    if (rc == CLI_EXIT_OK && strcmp(threshold_source, "model") == 0)
        threshold = (double)c.s.mi.threshold;
    if (rc == CLI_EXIT_OK)
        rc = cli_stream_open(&c.s, input_path, NULL, BATCH_ROWS);
    if (rc == CLI_EXIT_OK)
        rc = cli_stream_run(&c.s);
    if (rc == CLI_EXIT_OK && c.s.n_skipped > 0)
        cli_error("%llu of %llu rows skipped (bad data), %zu evaluated",
                  (unsigned long long)c.s.n_skipped, (unsigned long long)c.s.n_rows, c.pairs.n);
    if (rc == CLI_EXIT_OK && c.pairs.n == 0) {
        cli_error("%s: no rows to evaluate", c.s.input_name);
        rc = CLI_EXIT_DATA;
    }
    if (rc == CLI_EXIT_OK) {
        cli_metrics_compute(c.pairs.v, c.pairs.n, threshold, &m);
        if (m.positives == 0 || m.positives == m.n)
            cli_error("warning: %s: every label is %s: ROC-AUC is undefined%s", c.s.input_name,
                      m.positives ? "1" : "0", m.positives ? "" : ", and so is PR-AUC");
        if (json)
            print_json(stdout, &m, threshold_source, c.s.n_skipped);
        else
            print_text(stdout, &m, threshold_source, c.s.n_skipped);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            cli_error("<stdout>: write error");
            rc = CLI_EXIT_DATA;
        }
    }
    cli_stream_free(&c.s);
    free(c.pairs.v);
    return rc;
}
